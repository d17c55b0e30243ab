package defs

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"
	"unsafe"
)

// Meta is what an alert needs from a matched definition.
type Meta struct {
	Indicator string
	Severity  int
	Label     string
	Block     bool
}

// PortScan is the port-scan behaviour rule: one source touching at least
// Ports distinct destination ports of one host within Window. The
// defaults (DefaultPortScan) are 20 ports in 10 seconds at severity 2,
// detect only: well above what browsers and mail clients do, well below
// what nmap's default scan of 1000 ports does in a second.
type PortScan struct {
	Enabled  bool
	Ports    int
	Window   time.Duration
	Severity int
	Block    bool
}

// DefaultPortScan is the rule a bundle gets unless it says otherwise.
var DefaultPortScan = PortScan{Enabled: true, Ports: 20, Window: 10 * time.Second, Severity: 2}

// Set is one immutable, compiled set of definitions. It is safe for
// concurrent use; the agent swaps whole Sets atomically.
type Set struct {
	Version uint64
	Created time.Time
	// ExpiresAt is when its bundle stops being accepted; zero for a
	// mimamori-defs/1 bundle, which has none.
	ExpiresAt time.Time
	PortScan  PortScan

	trust []ed25519.PublicKey // keys its bundle trusts for the next; none in mimamori-defs/1

	labels   []string
	labelIdx map[string]uint16

	// Domains: see domainSet (one arena of names, one open-addressing
	// table, no map or string per entry).
	dom *domainSet

	addrs    map[netip.Addr]meta
	prefixes map[int]map[netip.Prefix]meta // by bits, for v4 and v6 alike
	bits     []int                         // longest first
	urls     map[string]meta
	hashes   map[[32]byte]meta

	counts map[string]int
}

type meta struct {
	severity uint8
	block    bool
	label    uint16
}

func (s *Set) label(l string) uint16 {
	if i, ok := s.labelIdx[l]; ok {
		return i
	}
	i := uint16(len(s.labels))
	s.labels = append(s.labels, l)
	s.labelIdx[l] = i
	return i
}

func (s *Set) meta(e Entry) meta {
	return meta{severity: uint8(e.Severity), block: e.Block, label: s.label(e.Label)}
}

func (s *Set) out(indicator string, m meta) Meta {
	return Meta{Indicator: indicator, Severity: int(m.severity), Label: s.labels[m.label], Block: m.block}
}

// Lists are the parsed indicator lists of a Set, by kind.
type Lists map[string][]Entry

// Compile builds a Set. Entries must be normalised (as ParseList returns
// them); a later duplicate replaces an earlier one.
func Compile(version uint64, created time.Time, lists Lists, ps PortScan) (*Set, error) {
	if len(lists) > 0 {
		for k := range lists {
			if _, err := normaliser(k); err != nil {
				return nil, err
			}
		}
	}
	if err := checkPortScan(ps); err != nil {
		return nil, err
	}
	s := newSet(version, created, ps, len(lists[ListDomains]))
	for _, e := range lists[ListDomains] {
		if err := s.addDomain([]byte(e.Value), s.meta(e)); err != nil {
			return nil, err
		}
	}
	if err := s.addOthers(lists); err != nil {
		return nil, err
	}
	s.finish()
	return s, nil
}

func checkPortScan(ps PortScan) error {
	if ps.Enabled && (ps.Ports < 2 || ps.Window <= 0 || ps.Severity < 1 || ps.Severity > 3) {
		return fmt.Errorf("port scan rule: ports must be ≥ 2, window > 0, severity 1 to 3")
	}
	return nil
}

// newSet starts an empty Set; domains is a size hint.
func newSet(version uint64, created time.Time, ps PortScan, domains int) *Set {
	return &Set{
		Version: version, Created: created, PortScan: ps,
		labelIdx: map[string]uint16{},
		dom:      newDomainSet(domains),
		addrs:    map[netip.Addr]meta{},
		prefixes: map[int]map[netip.Prefix]meta{},
		urls:     map[string]meta{},
		hashes:   map[[32]byte]meta{},
		counts:   map[string]int{},
	}
}

// addDomain adds one normalised domain name; a later duplicate replaces
// an earlier one.
func (s *Set) addDomain(name []byte, m meta) error {
	if len(name) == 0 || len(name) > 255 {
		return fmt.Errorf("domains: %q: not a normalised domain name", truncate(string(name), 40))
	}
	if len(s.dom.entries) >= MaxDomains {
		return fmt.Errorf("domains: more than %d", MaxDomains)
	}
	s.dom.add(name, m)
	return nil
}

// addOthers adds the IPs, CIDRs, URLs and hashes of lists.
func (s *Set) addOthers(lists Lists) error {
	for _, e := range lists[ListIPs] {
		if p, err := netip.ParsePrefix(e.Value); err == nil {
			m := s.prefixes[p.Bits()]
			if m == nil {
				m = map[netip.Prefix]meta{}
				s.prefixes[p.Bits()] = m
			}
			m[p] = s.meta(e)
			continue
		}
		a, err := netip.ParseAddr(e.Value)
		if err != nil {
			return fmt.Errorf("ips: %q: %w", e.Value, err)
		}
		s.addrs[a] = s.meta(e)
	}
	for _, e := range lists[ListURLs] {
		s.urls[e.Value] = s.meta(e)
	}
	for _, e := range lists[ListHashes] {
		var h [32]byte
		if _, err := hex.Decode(h[:], []byte(e.Value)); err != nil {
			return fmt.Errorf("hashes: %q: %w", e.Value, err)
		}
		s.hashes[h] = s.meta(e)
	}
	return nil
}

// finish completes a Set once every list was added.
func (s *Set) finish() {
	s.dom.build()
	s.bits = s.bits[:0]
	for b := range s.prefixes {
		s.bits = append(s.bits, b)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(s.bits)))
	s.counts[ListDomains] = s.dom.len()
	s.counts[ListIPs] = len(s.addrs)
	for _, m := range s.prefixes {
		s.counts[ListIPs] += len(m)
	}
	s.counts[ListURLs] = len(s.urls)
	s.counts[ListHashes] = len(s.hashes)
}

// Counts says how many indicators of each kind the Set holds.
func (s *Set) Counts() map[string]int {
	out := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// MatchDomain reports the listed domain that name is, or is a subdomain
// of. name must already be lowercase without a trailing dot (see
// NormaliseDomain); a listed domain never matches a name that merely ends
// with the same characters (evil.example does not match notevil.example).
func (s *Set) MatchDomain(name string) (Meta, bool) {
	if s == nil || s.dom.len() == 0 {
		return Meta{}, false
	}
	for n := name; ; {
		if e, ok := s.dom.lookup(n); ok {
			return s.out(strings.Clone(n), entryMeta(e)), true
		}
		dot := indexByte(n, '.')
		if dot < 0 {
			return Meta{}, false
		}
		n = n[dot+1:]
	}
}

// MatchDomainBytes is MatchDomain for a name held in a buffer the caller
// reuses: nothing of name is kept (the returned indicator is a copy).
func (s *Set) MatchDomainBytes(name []byte) (Meta, bool) {
	return s.MatchDomain(unsafe.String(unsafe.SliceData(name), len(name)))
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// MatchIP reports the listed address or the longest listed prefix that
// holds a.
func (s *Set) MatchIP(a netip.Addr) (Meta, bool) {
	if s == nil {
		return Meta{}, false
	}
	a = a.Unmap()
	if m, ok := s.addrs[a]; ok {
		return s.out(a.String(), m), true
	}
	for _, b := range s.bits {
		if b > a.BitLen() {
			continue
		}
		p, err := a.Prefix(b)
		if err != nil {
			continue
		}
		if m, ok := s.prefixes[b][p]; ok {
			return s.out(p.String(), m), true
		}
	}
	return Meta{}, false
}

// HasIPs tells whether any address or prefix is listed, so the hot path
// can skip the lookups.
func (s *Set) HasIPs() bool { return s != nil && (len(s.addrs) > 0 || len(s.bits) > 0) }

// MatchURL reports a listed URL; u must be normalised (NormaliseURL).
func (s *Set) MatchURL(u string) (Meta, bool) {
	if s == nil {
		return Meta{}, false
	}
	m, ok := s.urls[u]
	if !ok {
		return Meta{}, false
	}
	return s.out(u, m), true
}

// HasURLs tells whether any URL is listed.
func (s *Set) HasURLs() bool { return s != nil && len(s.urls) > 0 }

// MatchHash reports a listed file hash.
func (s *Set) MatchHash(h [32]byte) (Meta, bool) {
	if s == nil {
		return Meta{}, false
	}
	m, ok := s.hashes[h]
	if !ok {
		return Meta{}, false
	}
	return s.out(hex.EncodeToString(h[:]), m), true
}

// HasHashes tells whether any file hash is listed, so bodies need hashing.
func (s *Set) HasHashes() bool { return s != nil && len(s.hashes) > 0 }

// VersionString is the version as alerts and heartbeats carry it.
func (s *Set) VersionString() string {
	if s == nil {
		return ""
	}
	return fmt.Sprint(s.Version)
}

// Expired tells whether the set's bundle is past its expiry at now; a
// mimamori-defs/1 bundle, which has none, counts as expired.
func (s *Set) Expired(now time.Time) bool {
	return s != nil && (s.ExpiresAt.IsZero() || !now.Before(s.ExpiresAt))
}

// ReportedVersion is the version as heartbeats carry it: VersionString,
// followed by " expired" when the set is Expired, so the cloud sees an
// appliance inspecting with stale definitions.
func (s *Set) ReportedVersion(now time.Time) string {
	if s.Expired(now) {
		return s.VersionString() + " expired"
	}
	return s.VersionString()
}
