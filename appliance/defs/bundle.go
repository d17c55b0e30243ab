package defs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A bundle is one signed file:
//
//	mimamori-defs/2 ed25519 KEYID SIGNATURE [ed25519 KEYID SIGNATURE …] version=N\n
//	<gzip of the body>
//
// KEYID is the first 8 bytes of SHA-256 of a public key in hex, and
// SIGNATURE the base64 ed25519 signature of the gzip bytes by that key; a
// bundle signed by several keys (during a key rotation) carries one pair
// per key. The body is text, a head and then the sections:
//
//	version 42
//	created 2026-11-27T09:00:00Z
//	expires_at 2026-12-27T09:00:00Z
//	portscan on 20 10s 2 detect
//	trust BASE64-ED25519-PUBLIC-KEY
//	[domains]
//	evil-c2.example 3 c2 block
//	[ips]
//	…
//
// The signature covers the compressed bytes, so nothing is parsed or even
// decompressed before it is verified. Each head field appears once (trust
// once per key), and one parser (readHead) reads the head for everything
// that asks, so the rollback check, the expiry check and the compiled Set
// cannot see different versions. version= in the header repeats the
// signed version for the cloud, which never parses bundles; a bundle whose
// two disagree is malformed. The trust lines name the keys the appliance
// trusts for the bundles after this one (see Store), and a bundle must be
// signed by one of them.
//
// mimamori-defs/1 bundles (one signature, no expires_at, no trust lines)
// are still read, so an appliance keeps the set it saved before an
// upgrade, but Store.Install refuses them: they never expire.
const (
	bundleMagic = "mimamori-defs/2"
	legacyMagic = "mimamori-defs/1"
)

// Bundle limits: a bundle is refused before parsing when larger, so a
// hostile or broken file cannot exhaust the appliance's memory.
const (
	MaxBundleBytes = 64 << 20  // as stored and transferred
	MaxBodyBytes   = 256 << 20 // decompressed
	MaxSigners     = 4         // signatures in one header
	MaxTrusted     = 8         // trust lines in one head
	maxHeaderLine  = 1024
)

// DefaultLifetime is how long after it was built a bundle is accepted
// when its builder does not say.
const DefaultLifetime = 30 * 24 * time.Hour

// Errors of Open and ParseUnverified.
var (
	ErrSignature = errors.New("definitions bundle: bad signature")
	ErrFormat    = errors.New("definitions bundle: malformed")
)

// jst is business time, for the times in messages.
var jst = time.FixedZone("JST", 9*3600)

// Info is what a bundle says about itself.
type Info struct {
	Format    string         `json:"format"`
	Version   uint64         `json:"version"`
	Created   time.Time      `json:"created"`
	ExpiresAt time.Time      `json:"expires_at,omitzero"` // none in a mimamori-defs/1 bundle
	SignedBy  []string       `json:"signed_by"`           // key IDs of the header's signatures
	Trusts    []string       `json:"trusts,omitempty"`    // key IDs trusted for the bundles after it
	SHA256    string         `json:"sha256"`
	Size      int            `json:"size"`
	Counts    map[string]int `json:"counts"`
	PortScan  string         `json:"portscan"`
}

// KeyID names a public key in bundle headers.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

func hasKey(ring []ed25519.PublicKey, k ed25519.PublicKey) bool {
	return slices.ContainsFunc(ring, func(r ed25519.PublicKey) bool { return bytes.Equal(r, k) })
}

func keyIDs(keys []ed25519.PublicKey) []string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = KeyID(k)
	}
	return ids
}

// Spec is what a bundle says about itself besides its lists; all of it is
// signed.
type Spec struct {
	Version uint64
	Created time.Time
	// ExpiresAt is when appliances stop accepting the bundle; zero means
	// Created + DefaultLifetime.
	ExpiresAt time.Time
	// Trust is the keys appliances trust for the bundles after this one
	// (adding a key introduces it, leaving one out retires it); empty
	// means the keys that sign this one.
	Trust []ed25519.PublicKey
}

// Build writes a bundle of the lists signed by each of keys.
func Build(spec Spec, lists Lists, ps PortScan, keys ...ed25519.PrivateKey) ([]byte, error) {
	if spec.Version == 0 {
		return nil, errors.New("definitions bundle: version must be at least 1")
	}
	if len(keys) == 0 || len(keys) > MaxSigners {
		return nil, fmt.Errorf("definitions bundle: sign with 1 to %d keys, not %d", MaxSigners, len(keys))
	}
	created := spec.Created.UTC().Truncate(time.Second)
	expires := spec.ExpiresAt.UTC().Truncate(time.Second)
	if spec.ExpiresAt.IsZero() {
		expires = created.Add(DefaultLifetime)
	}
	if !expires.After(created) {
		return nil, fmt.Errorf("definitions bundle: expires_at %s is not after created %s", expires.In(jst).Format(time.RFC3339), created.In(jst).Format(time.RFC3339))
	}
	var signers []ed25519.PublicKey
	for _, k := range keys {
		pub := k.Public().(ed25519.PublicKey)
		if hasKey(signers, pub) {
			return nil, fmt.Errorf("definitions bundle: signing key %s given twice", KeyID(pub))
		}
		signers = append(signers, pub)
	}
	trust := spec.Trust
	if len(trust) == 0 {
		trust = signers
	}
	for i, k := range trust {
		if len(k) != ed25519.PublicKeySize || hasKey(trust[:i], k) {
			return nil, fmt.Errorf("definitions bundle: trusted key %d is not a distinct ed25519 public key", i+1)
		}
	}
	if len(trust) > MaxTrusted {
		return nil, fmt.Errorf("definitions bundle: at most %d trusted keys, not %d", MaxTrusted, len(trust))
	}
	if !slices.ContainsFunc(signers, func(s ed25519.PublicKey) bool { return hasKey(trust, s) }) {
		// The appliance checks the bundle it keeps with the keys it names.
		return nil, fmt.Errorf("definitions bundle: none of the signing keys (%s) is among the trusted keys (%s)",
			strings.Join(keyIDs(signers), ", "), strings.Join(keyIDs(trust), ", "))
	}
	var body bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&body, gzip.BestSpeed)
	w := bufio.NewWriter(zw)
	fmt.Fprintf(w, "version %d\ncreated %s\nexpires_at %s\n", spec.Version, created.Format(time.RFC3339), expires.Format(time.RFC3339))
	fmt.Fprintf(w, "portscan %s\n", formatPortScan(ps))
	for _, k := range trust {
		fmt.Fprintf(w, "trust %s\n", base64.StdEncoding.EncodeToString(k))
	}
	for _, kind := range []string{ListDomains, ListIPs, ListURLs, ListHashes} {
		fmt.Fprintf(w, "[%s]\n", kind)
		if err := WriteList(w, lists[kind]); err != nil {
			return nil, err
		}
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	out := []byte(bundleMagic)
	for i, k := range keys {
		out = fmt.Appendf(out, " ed25519 %s %s", KeyID(signers[i]), base64.StdEncoding.EncodeToString(ed25519.Sign(k, body.Bytes())))
	}
	out = fmt.Appendf(out, " version=%d\n", spec.Version)
	out = append(out, body.Bytes()...)
	if len(out) > MaxBundleBytes {
		return nil, fmt.Errorf("definitions bundle: %d bytes, at most %d allowed", len(out), MaxBundleBytes)
	}
	return out, nil
}
func formatPortScan(ps PortScan) string {
	if !ps.Enabled {
		return "off"
	}
	act := "detect"
	if ps.Block {
		act = "block"
	}
	return fmt.Sprintf("on %d %s %d %s", ps.Ports, ps.Window, ps.Severity, act)
}

func parsePortScan(s string) (PortScan, error) {
	f := strings.Fields(s)
	if len(f) == 1 && f[0] == "off" {
		return PortScan{}, nil
	}
	if len(f) != 5 || f[0] != "on" {
		return PortScan{}, fmt.Errorf("portscan: want `off` or `on PORTS WINDOW SEVERITY block|detect`, got %q", s)
	}
	ports, err1 := strconv.Atoi(f[1])
	win, err2 := time.ParseDuration(f[2])
	sev, err3 := strconv.Atoi(f[3])
	if err := errors.Join(err1, err2, err3); err != nil || (f[4] != "block" && f[4] != "detect") {
		return PortScan{}, fmt.Errorf("portscan: %q: bad field", s)
	}
	return PortScan{Enabled: true, Ports: ports, Window: win, Severity: sev, Block: f[4] == "block"}, nil
}

type signature struct {
	keyID string
	sig   []byte
}

// reader reads one bundle: split its header line, readHead its signed
// head, compile its sections. Every check of a bundle's version, expiry
// and keys reads the info and trust that readHead filled in.
type reader struct {
	body     []byte // the signed gzip bytes
	legacy   bool   // mimamori-defs/1
	hint     uint64 // version= of the header; 0 when absent
	sigs     []signature
	verified map[string]bool // public keys whose signature verified
	info     Info
	trust    []ed25519.PublicKey
	ps       PortScan
	r        *bufio.Reader
	section  []byte // the line that ended the head (a section's), nil at the end
	n        int    // lines read
	read     int64  // bytes read
}

// split separates the header line from the signed gzip bytes.
func split(b []byte) (*reader, error) {
	if len(b) > MaxBundleBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d allowed", ErrFormat, len(b), MaxBundleBytes)
	}
	nl := bytes.IndexByte(b[:min(len(b), maxHeaderLine+1)], '\n')
	if nl < 0 {
		return nil, fmt.Errorf("%w: no header line", ErrFormat)
	}
	bad := fmt.Errorf("%w: header must be %q, ed25519 KEYID SIGNATURE for each signing key, then version=N", ErrFormat, bundleMagic)
	f := strings.Fields(string(b[:nl]))
	if len(f) == 0 || (f[0] != bundleMagic && f[0] != legacyMagic) {
		return nil, bad
	}
	rd := &reader{body: b[nl+1:], legacy: f[0] == legacyMagic, verified: map[string]bool{}}
	sum := sha256.Sum256(b)
	rd.info = Info{Format: f[0], SHA256: hex.EncodeToString(sum[:]), Size: len(b)}
	f = f[1:]
	if n := len(f); n > 0 {
		if v, ok := strings.CutPrefix(f[n-1], "version="); ok {
			hint, err := strconv.ParseUint(v, 10, 64)
			if err != nil || hint == 0 {
				return nil, fmt.Errorf("%w: header: bad version=%q", ErrFormat, truncate(v, 24))
			}
			rd.hint, f = hint, f[:n-1]
		}
	}
	for len(f) >= 3 && f[0] == "ed25519" {
		id := f[1]
		if _, err := hex.DecodeString(id); err != nil || len(id) != 16 || slices.Contains(rd.info.SignedBy, id) {
			return nil, fmt.Errorf("%w: header: %q is not a distinct key ID (16 hex digits)", ErrFormat, truncate(id, 24))
		}
		sig, err := base64.StdEncoding.DecodeString(f[2])
		if err != nil || len(sig) != ed25519.SignatureSize {
			return nil, fmt.Errorf("%w: header: the signature of key %s is not %d bytes of base64", ErrFormat, id, ed25519.SignatureSize)
		}
		rd.sigs = append(rd.sigs, signature{keyID: id, sig: sig})
		rd.info.SignedBy = append(rd.info.SignedBy, id)
		f = f[3:]
	}
	switch {
	case len(f) != 0 || len(rd.sigs) == 0 || (rd.legacy && len(rd.sigs) != 1):
		return nil, bad
	case len(rd.sigs) > MaxSigners:
		return nil, fmt.Errorf("%w: header: %d signatures, at most %d allowed", ErrFormat, len(rd.sigs), MaxSigners)
	case !rd.legacy && rd.hint == 0:
		return nil, fmt.Errorf("%w: header: no version=N", ErrFormat)
	}
	return rd, nil
}

// signedBy reports whether one of keys signed the bundle.
func (rd *reader) signedBy(keys []ed25519.PublicKey) bool {
	for _, k := range keys {
		if rd.verified[string(k)] {
			return true
		}
		id := KeyID(k)
		for _, s := range rd.sigs {
			if s.keyID == id && len(k) == ed25519.PublicKeySize && ed25519.Verify(k, rd.body, s.sig) {
				rd.verified[string(k)] = true
				return true
			}
		}
	}
	return false
}

// verify checks that one of the trusted keys signed the bundle.
func (rd *reader) verify(trusted []ed25519.PublicKey) error {
	if rd.signedBy(trusted) {
		return nil
	}
	ids := keyIDs(trusted)
	for _, s := range rd.sigs {
		if slices.Contains(ids, s.keyID) {
			return fmt.Errorf("%w: the signature of key %s does not verify", ErrSignature, s.keyID)
		}
	}
	return fmt.Errorf("%w: signed by %s, none of them trusted (trusted: %s)", ErrSignature,
		strings.Join(rd.info.SignedBy, ", "), strings.Join(ids, ", "))
}

// line reads the next line of the body, without its line end; io.EOF
// after the last. The slice is valid until the next call.
func (rd *reader) line() ([]byte, error) {
	l, err := rd.r.ReadSlice('\n')
	rd.read += int64(len(l))
	switch {
	case rd.read > MaxBodyBytes:
		return nil, fmt.Errorf("%w: body larger than %d bytes", ErrFormat, MaxBodyBytes)
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, fmt.Errorf("%w: line %d too long", ErrFormat, rd.n+1)
	case err == io.EOF && len(l) == 0:
		return nil, io.EOF
	case err != nil && err != io.EOF:
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	rd.n++
	return bytes.TrimRight(l, "\r\n"), nil
}

func isSection(l []byte) bool { return len(l) > 1 && l[0] == '[' && l[len(l)-1] == ']' }

// readHead decompresses the body up to its first section and reads the
// head's fields, each once, into rd.info, rd.trust and rd.ps.
func (rd *reader) readHead() error {
	zr, err := gzip.NewReader(bytes.NewReader(rd.body))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrFormat, err)
	}
	rd.r = bufio.NewReaderSize(io.LimitReader(zr, MaxBodyBytes+1), 64<<10)
	rd.ps = DefaultPortScan
	seen := map[string]int{} // field name → its line
	for {
		l, err := rd.line()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if isSection(l) {
			rd.section = bytes.Clone(l)
			break
		}
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		name, val, _ := strings.Cut(string(l), " ")
		if first, ok := seen[name]; ok && name != "trust" {
			return fmt.Errorf("%w: line %d: a second %s line (the first is line %d)", ErrFormat, rd.n, name, first)
		}
		seen[name] = rd.n
		switch {
		case name == "version":
			v, err := strconv.ParseUint(val, 10, 64)
			if err != nil || v == 0 {
				return fmt.Errorf("%w: line %d: bad version", ErrFormat, rd.n)
			}
			rd.info.Version = v
		case name == "created":
			if rd.info.Created, err = time.Parse(time.RFC3339, val); err != nil {
				return fmt.Errorf("%w: line %d: bad created time", ErrFormat, rd.n)
			}
		case name == "expires_at" && !rd.legacy:
			if rd.info.ExpiresAt, err = time.Parse(time.RFC3339, val); err != nil {
				return fmt.Errorf("%w: line %d: bad expires_at time", ErrFormat, rd.n)
			}
		case name == "portscan":
			if rd.ps, err = parsePortScan(val); err != nil {
				return fmt.Errorf("%w: line %d: %v", ErrFormat, rd.n, err)
			}
		case name == "trust" && !rd.legacy:
			k, err := base64.StdEncoding.DecodeString(val)
			if err != nil || len(k) != ed25519.PublicKeySize || hasKey(rd.trust, k) {
				return fmt.Errorf("%w: line %d: trust: not a distinct base64 ed25519 public key", ErrFormat, rd.n)
			}
			if len(rd.trust) == MaxTrusted {
				return fmt.Errorf("%w: line %d: more than %d trusted keys", ErrFormat, rd.n, MaxTrusted)
			}
			rd.trust = append(rd.trust, k)
		default:
			return fmt.Errorf("%w: line %d: unexpected %q", ErrFormat, rd.n, truncate(string(l), 40))
		}
	}
	inf := &rd.info
	switch {
	case inf.Version == 0:
		return fmt.Errorf("%w: no version line", ErrFormat)
	case rd.hint != 0 && rd.hint != inf.Version:
		return fmt.Errorf("%w: the header says version=%d, the signed body version %d", ErrFormat, rd.hint, inf.Version)
	case rd.legacy:
	case seen["created"] == 0 || seen["expires_at"] == 0:
		return fmt.Errorf("%w: a %s bundle needs created and expires_at lines", ErrFormat, bundleMagic)
	case !inf.ExpiresAt.After(inf.Created):
		return fmt.Errorf("%w: expires_at %s is not after created %s", ErrFormat,
			inf.ExpiresAt.In(jst).Format(time.RFC3339), inf.Created.In(jst).Format(time.RFC3339))
	case len(rd.trust) == 0:
		return fmt.Errorf("%w: no trust line", ErrFormat)
	case !rd.signedBy(rd.trust):
		return fmt.Errorf("%w: not signed by any key it trusts (%s)", ErrSignature, strings.Join(keyIDs(rd.trust), ", "))
	}
	if err := checkPortScan(rd.ps); err != nil {
		return fmt.Errorf("%w: %v", ErrFormat, err)
	}
	inf.Trusts, inf.PortScan = keyIDs(rd.trust), formatPortScan(rd.ps)
	return nil
}

// compile reads the sections after the head into a Set. Domain lines go
// straight from the decompressor into the Set (the list can hold
// millions); the other sections are small and are gathered, then parsed
// with ParseList.
func (rd *reader) compile() (*Set, error) {
	set := newSet(rd.info.Version, rd.info.Created, rd.ps, 0)
	set.ExpiresAt, set.trust = rd.info.ExpiresAt, rd.trust
	var (
		section  string
		sections = map[string]*bytes.Buffer{}
		domLine  int
	)
	l, err := rd.section, error(nil)
	if l == nil {
		err = io.EOF
	}
	for ; err == nil; l, err = rd.line() {
		switch {
		case isSection(l):
			section = string(l[1 : len(l)-1])
			if _, err := normaliser(section); err != nil {
				return nil, fmt.Errorf("%w: line %d: %v", ErrFormat, rd.n, err)
			}
			if section != ListDomains && sections[section] == nil {
				sections[section] = &bytes.Buffer{}
			}
		case section == ListDomains:
			domLine++
			if err := set.addDomainLine(l, domLine); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrFormat, err)
			}
		default:
			sections[section].Write(l)
			sections[section].WriteByte('\n')
		}
	}
	if err != io.EOF {
		return nil, err
	}
	lists := Lists{}
	for kind, buf := range sections {
		entries, err := ParseList(kind, buf)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrFormat, err)
		}
		lists[kind] = entries
		buf.Reset()
	}
	if err := set.addOthers(lists); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	set.finish()
	rd.info.Counts = set.Counts()
	return set, nil
}

// Open verifies that one of the trusted keys signed a bundle and compiles
// it. It does not look at the expiry: Store.Install does.
func Open(b []byte, trusted []ed25519.PublicKey) (*Set, Info, error) {
	rd, err := split(b)
	if err != nil {
		return nil, Info{}, err
	}
	if err := rd.verify(trusted); err != nil {
		return nil, rd.info, err
	}
	if err := rd.readHead(); err != nil {
		return nil, rd.info, err
	}
	set, err := rd.compile()
	return set, rd.info, err
}

// ParseUnverified compiles a bundle without checking that a trusted key
// signed it (a mimamori-defs/2 bundle must still be signed by one of the
// keys it names): for `defs inspect` without a key and for fuzzing the
// parser. The agent only uses Store.
func ParseUnverified(b []byte) (*Set, Info, error) {
	rd, err := split(b)
	if err != nil {
		return nil, Info{}, err
	}
	if err := rd.readHead(); err != nil {
		return nil, rd.info, err
	}
	set, err := rd.compile()
	return set, rd.info, err
}

// ReadHead reads a bundle's header and signed head (version, times, keys)
// without compiling its lists or checking who signed it: to compare a
// bundle with the one published.
func ReadHead(b []byte) (Info, error) {
	rd, err := split(b)
	if err != nil {
		return Info{}, err
	}
	err = rd.readHead()
	return rd.info, err
}
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Key files: one line, "mimamori-ed25519-private BASE64SEED" or
// "mimamori-ed25519-public BASE64KEY".
const (
	privPrefix = "mimamori-ed25519-private "
	pubPrefix  = "mimamori-ed25519-public "
)

// EncodePrivateKey and EncodePublicKey give the key file contents.
func EncodePrivateKey(k ed25519.PrivateKey) []byte {
	return []byte(privPrefix + base64.StdEncoding.EncodeToString(k.Seed()) + "\n")
}

func EncodePublicKey(k ed25519.PublicKey) []byte {
	return []byte(pubPrefix + base64.StdEncoding.EncodeToString(k) + "\n")
}

// LoadPrivateKey reads a key file written by `mimamori defs keygen`.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	s, ok := strings.CutPrefix(strings.TrimSpace(string(b)), privPrefix)
	seed, err := base64.StdEncoding.DecodeString(s)
	if !ok || err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing key %s: not a mimamori ed25519 private key", path)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ParseKeyRing reads public keys, one "mimamori-ed25519-public BASE64KEY"
// line each: a key file written by `defs keygen`, or several of them in
// one file (a key ring). Blank lines and lines starting with # are skipped.
func ParseKeyRing(b []byte) ([]ed25519.PublicKey, error) {
	var ring []ed25519.PublicKey
	for i, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' {
			continue
		}
		s, ok := strings.CutPrefix(l, pubPrefix)
		k, err := base64.StdEncoding.DecodeString(s)
		if !ok || err != nil || len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("line %d: not a mimamori ed25519 public key", i+1)
		}
		if !hasKey(ring, k) {
			ring = append(ring, k)
		}
	}
	if len(ring) == 0 {
		return nil, errors.New("no mimamori ed25519 public key in it")
	}
	return ring, nil
}

// LoadKeyRing reads the public keys of one or more key files.
func LoadKeyRing(paths ...string) ([]ed25519.PublicKey, error) {
	if len(paths) == 0 {
		return nil, errors.New("no public key file given")
	}
	var ring []ed25519.PublicKey
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read public key: %w", err)
		}
		keys, err := ParseKeyRing(b)
		if err != nil {
			return nil, fmt.Errorf("public key %s: %w", p, err)
		}
		for _, k := range keys {
			if !hasKey(ring, k) {
				ring = append(ring, k)
			}
		}
	}
	return ring, nil
}
