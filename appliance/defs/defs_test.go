package defs

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func lists(t testing.TB, domains string) Lists {
	t.Helper()
	d, err := ParseList(ListDomains, strings.NewReader(domains))
	if err != nil {
		t.Fatal(err)
	}
	ips, err := ParseList(ListIPs, strings.NewReader("198.51.100.23 3 botnet block\n2001:db8:bad::/48 2 bad\n::ffff:203.0.113.9 1 x\n"))
	if err != nil {
		t.Fatal(err)
	}
	return Lists{ListDomains: d, ListIPs: ips}
}

func TestDomainMatchingIsBySuffixLabelNotLookalike(t *testing.T) {
	set, err := Compile(1, t0, lists(t, "# c2 servers\nEvil-C2.Example. 3 c2 block\n"), DefaultPortScan)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"evil-c2.example": true, "a.b.evil-c2.example": true, "notevil-c2.example": false,
		"evil-c2.example.other": false, "vil-c2.example": false, "example": false,
	} {
		m, ok := set.MatchDomain(name)
		if ok != want || (ok && (m.Indicator != "evil-c2.example" || !m.Block || m.Severity != 3)) {
			t.Errorf("%s: got %v %+v", name, ok, m)
		}
	}
}

func TestIPsAndCIDRs(t *testing.T) {
	set, err := Compile(1, t0, lists(t, ""), DefaultPortScan)
	if err != nil {
		t.Fatal(err)
	}
	for a, want := range map[string]string{"198.51.100.23": "198.51.100.23", "2001:db8:bad:1::5": "2001:db8:bad::/48",
		"203.0.113.9": "203.0.113.9", "198.51.100.24": "", "2001:db8:bae::1": ""} {
		m, ok := set.MatchIP(netip.MustParseAddr(a))
		if (want != "") != ok || m.Indicator != want {
			t.Errorf("%s: got %v %q", a, ok, m.Indicator)
		}
	}
}

func TestURLNormalisation(t *testing.T) {
	for in, want := range map[string]string{
		"HTTP://Example.COM:80/a/./b/../c?q=%7e&x=%2f#frag": "http://example.com/a/c?q=~&x=%2F",
		"example.com":                   "http://example.com/",
		"https://example.com:443/%41":   "https://example.com/A",
		"http://example.com.:8080/x/..": "http://example.com:8080/",
	} {
		got, err := NormaliseURL(in)
		if err != nil || got != want {
			t.Errorf("%s: got %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestListErrorsNameTheLine(t *testing.T) {
	for _, bad := range []string{"evil.example 4 c2\n", "evil.example 3\n", "a..b 3 x\n", "x.example 3 c2 drop\n"} {
		if _, err := ParseList(ListDomains, strings.NewReader("ok.example 1 fine\n"+bad)); err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := ParseList(ListHashes, strings.NewReader("abcd 3 x\n")); err == nil {
		t.Error("short hash accepted")
	}
}

func newKey(t testing.TB) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newStore is a Store trusting keys, on a clock an hour after t0.
func newStore(t testing.TB, path string, keys ...ed25519.PublicKey) *Store {
	t.Helper()
	st, err := NewStore(StoreConfig{Keys: keys, Path: path, Now: func() time.Time { return t0.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// build is a bundle of version v created at t0 with the default expiry.
func build(t testing.TB, v uint64, domains string, keys ...ed25519.PrivateKey) []byte {
	t.Helper()
	b, err := Build(Spec{Version: v, Created: t0}, lists(t, domains), DefaultPortScan, keys...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStoreRefusesTamperedWrongKeyAndRollback(t *testing.T) {
	key := newKey(t)
	pub := key.Public().(ed25519.PublicKey)
	path := filepath.Join(t.TempDir(), "current.bundle")
	st := newStore(t, path, pub)
	v5 := build(t, 5, "evil-c2.example 3 c2\n", key)
	if _, err := st.Install(v5); err != nil {
		t.Fatal(err)
	}
	keep := st.Current()

	tampered := bytes.Clone(v5)
	tampered[len(tampered)-10] ^= 0x40
	wrong := build(t, 9, "other.example 3 c2\n", newKey(t))
	v4 := build(t, 4, "old.example 3 c2\n", key)
	garbage := append([]byte("mimamori-defs/2 ed25519 0011223344556677 AAAA version=1\n"), 1, 2, 3)
	for name, tc := range map[string]struct {
		b    []byte
		want error
	}{
		"tampered": {tampered, ErrSignature}, "wrongly signed": {wrong, ErrSignature},
		"rolled back": {v4, ErrRollback}, "same version": {v5, ErrSame}, "garbage": {garbage, ErrFormat},
	} {
		if _, err := st.Install(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
		if st.Current() != keep {
			t.Fatalf("%s: the definitions in use changed", name)
		}
	}
	if _, ok := st.Current().MatchDomain("evil-c2.example"); !ok {
		t.Fatal("current set lost its indicators")
	}
	// A restart loads the saved bundle; rollback is still refused.
	st2 := newStore(t, path, pub)
	if st2.Version() != 5 {
		t.Fatalf("reload: version %d", st2.Version())
	}
	if _, err := st2.Install(v4); !errors.Is(err, ErrRollback) {
		t.Fatalf("after restart: %v", err)
	}
	v6, _ := Build(Spec{Version: 6, Created: t0}, lists(t, "new.example 3 c2\n"), PortScan{}, key)
	if _, err := st2.Install(v6); err != nil || st2.Version() != 6 || st2.Current().PortScan.Enabled {
		t.Fatalf("newer bundle: %v", err)
	}
}

func FuzzParseList(f *testing.F) {
	f.Add("evil.example 3 c2 block\n# c\n\nx.example. low y\n", "domains")
	f.Add("10.0.0.0/8 2 x\n::1 1 y detect\n", "ips")
	f.Add("HTTP://A:80/%7e/../b?c 3 u\n", "urls")
	f.Fuzz(func(t *testing.T, s, kind string) {
		es, err := ParseList(kind, strings.NewReader(s))
		if err != nil {
			return
		}
		// What parses must survive a round trip unchanged.
		var buf bytes.Buffer
		if err := WriteList(&buf, es); err != nil {
			t.Fatal(err)
		}
		again, err := ParseList(kind, &buf)
		if err != nil || len(again) != len(es) {
			t.Fatalf("round trip: %v (%d vs %d)", err, len(again), len(es))
		}
		for i := range es {
			if again[i] != es[i] {
				t.Fatalf("round trip changed %+v to %+v", es[i], again[i])
			}
		}
	})
}

// FuzzBundle feeds the bundle parser outside input. Whatever parses must
// read as one version everywhere (the head alone, the compiled Set, the
// header's version=), and a bundle that verifies must parse the same way.
func FuzzBundle(f *testing.F) {
	key, key2 := newKey(f), newKey(f)
	pub := key.Public().(ed25519.PublicKey)
	f.Add(build(f, 3, "evil.example 3 c2\n", key))
	f.Add(build(f, 4, "evil.example 3 c2\n", key, key2))
	f.Add(craft(f, legacyMagic, 9, "version 9\ncreated 2026-11-27T09:00:00Z\n[domains]\nx.example 1 y\n", key))
	f.Add(craft(f, bundleMagic, 9, validHead(9, pub)+"version 3\n[domains]\nx.example 1 y\n", key))
	f.Add(craft(f, bundleMagic, 9, validHead(3, pub)+"[ips]\n10.0.0.0/8 2 x\n[urls]\nhttp://a/ 1 u\n", key))
	f.Add([]byte("mimamori-defs/2 ed25519 0011223344556677 AAAA version=1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		set, info, err := ParseUnverified(b)
		if err == nil {
			if set == nil {
				t.Fatal("nil set without error")
			}
			head, herr := ReadHead(b)
			if herr != nil || head.Version != set.Version || info.Version != set.Version || !head.ExpiresAt.Equal(set.ExpiresAt) {
				t.Fatalf("versions: head %d (%v), info %d, set %d", head.Version, herr, info.Version, set.Version)
			}
			if hint := headerVersion(b); hint != "" && hint != set.VersionString() {
				t.Fatalf("header version=%s, set %d", hint, set.Version)
			}
		}
		vset, _, verr := Open(b, []ed25519.PublicKey{pub})
		if verr == nil && (err != nil || vset.Version != set.Version) {
			// Only bundles we signed verify; they must parse alike.
			t.Fatalf("a verified bundle parsed differently: %v", err)
		}
	})
}

// headerVersion is the version= of a bundle's header line, as the cloud
// reads it.
func headerVersion(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	for _, f := range strings.Fields(string(line)) {
		if v, ok := strings.CutPrefix(f, "version="); ok {
			return v
		}
	}
	return ""
}
