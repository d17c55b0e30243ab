package defs

import (
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// craft signs any body with key under a header line of the given magic
// and version=, as a hostile or broken builder could.
func craft(t testing.TB, magic string, hint uint64, body string, key ed25519.PrivateKey) []byte {
	t.Helper()
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	if _, err := zw.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	h := fmt.Sprintf("%s ed25519 %s %s version=%d\n", magic, KeyID(pub), base64.StdEncoding.EncodeToString(ed25519.Sign(key, z.Bytes())), hint)
	return append([]byte(h), z.Bytes()...)
}

// validHead is a complete mimamori-defs/2 head of version v, created at
// t0, trusting pub.
func validHead(v uint64, pub ed25519.PublicKey) string {
	return fmt.Sprintf("version %d\ncreated %s\nexpires_at %s\ntrust %s\n", v, t0.Format(time.RFC3339),
		t0.Add(DefaultLifetime).Format(time.RFC3339), base64.StdEncoding.EncodeToString(pub))
}

// TestOneVersionForRollbackCheckAndInstall: the version the rollback check
// reads is the version installed. A signed bundle that could be read as
// two versions (two version lines, or a header version= that is not the
// signed one) is refused as malformed and the set in use stays; the same
// crafting with one version installs, and a rollback is refused.
func TestOneVersionForRollbackCheckAndInstall(t *testing.T) {
	key := newKey(t)
	pub := key.Public().(ed25519.PublicKey)
	st := newStore(t, "", pub)
	if _, err := st.Install(build(t, 5, "evil-c2.example 3 c2\n", key)); err != nil {
		t.Fatal(err)
	}
	keep := st.Current()
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"newer version, then an older one", craft(t, bundleMagic, 9, validHead(9, pub)+"version 3\n[domains]\nold.example 3 c2\n", key),
			"line 5: a second version line (the first is line 1)"},
		{"older version, then a newer one", craft(t, bundleMagic, 9, "version 3\n"+validHead(9, pub)+"[domains]\nold.example 3 c2\n", key),
			"line 2: a second version line (the first is line 1)"},
		{"header version= newer than the signed one", craft(t, bundleMagic, 9, validHead(3, pub)+"[domains]\nold.example 3 c2\n", key),
			"the header says version=9, the signed body version 3"},
	} {
		_, err := st.Install(c.b)
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %v naming %q", c.name, err, ErrFormat, c.want)
		}
		if st.Current() != keep || st.Version() != 5 {
			t.Fatalf("%s: version %d in use, want 5 kept", c.name, st.Version())
		}
		if _, _, err := ParseUnverified(c.b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: parsed without the store: %v", c.name, err)
		}
	}
	if _, err := st.Install(build(t, 4, "old.example 3 c2\n", key)); !errors.Is(err, ErrRollback) || st.Version() != 5 {
		t.Fatalf("rollback to 4: %v, version %d in use", err, st.Version())
	}
	one := craft(t, bundleMagic, 9, validHead(9, pub)+"[domains]\nnew.example 3 c2\n", key)
	if info, err := st.Install(one); err != nil || info.Version != 9 || st.Version() != 9 {
		t.Fatalf("crafted with one version: %v, info %d, in use %d", err, info.Version, st.Version())
	}
	if _, ok := st.Current().MatchDomain("new.example"); !ok {
		t.Fatal("the crafted bundle's domain is not matched")
	}
}

// TestExpiredBundlesAreRefusedAndReported: a bundle past its expires_at,
// a legacy one without an expiry, and one past the default lifetime are
// refused with an error naming the expiry, and the set in use stays. Once
// the set in use passes its own expiry it stays in use (across a
// restart), reported as expired, until a fresh bundle arrives.
func TestExpiredBundlesAreRefusedAndReported(t *testing.T) {
	key := newKey(t)
	pub := key.Public().(ed25519.PublicKey)
	path := filepath.Join(t.TempDir(), "current.bundle")
	clock := t0.Add(40 * 24 * time.Hour)
	now := func() time.Time { return clock }
	st, err := NewStore(StoreConfig{Keys: []ed25519.PublicKey{pub}, Path: path, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(v uint64, created, expires time.Time) []byte {
		t.Helper()
		b, err := Build(Spec{Version: v, Created: created, ExpiresAt: expires}, lists(t, fmt.Sprintf("v%d.example 3 c2\n", v)), DefaultPortScan, key)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	fresh := mk(2, clock.Add(-time.Hour), clock.Add(24*time.Hour))
	if _, err := st.Install(fresh); err != nil {
		t.Fatal(err)
	}
	if got := st.Current().ReportedVersion(clock); got != "2" {
		t.Fatalf("fresh set reported as %q", got)
	}
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"expired at this instant", mk(3, t0, clock), "version 3 expired at 2027-01-06T18:00:00+09:00"},
		{"default lifetime over", mk(4, t0, time.Time{}), "version 4 expired at 2026-12-27T18:00:00+09:00"},
		{"legacy, no expiry", craft(t, legacyMagic, 5, "version 5\ncreated 2027-01-06T00:00:00Z\n[domains]\nv5.example 3 c2\n", key),
			"version 5 is a mimamori-defs/1 bundle, which has no expires_at"},
	} {
		if _, err := st.Install(c.b); !errors.Is(err, ErrExpired) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %v naming %q", c.name, err, ErrExpired, c.want)
		}
		if st.Version() != 2 {
			t.Fatalf("%s: version %d in use, want 2", c.name, st.Version())
		}
	}

	// The set in use expires: it goes on matching, reported as expired,
	// and a restart keeps it.
	clock = clock.Add(24 * time.Hour)
	if !st.Current().Expired(clock) || st.Current().ReportedVersion(clock) != "2 expired" {
		t.Fatalf("past its expiry: expired %v, reported %q", st.Current().Expired(clock), st.Current().ReportedVersion(clock))
	}
	st2, err := NewStore(StoreConfig{Keys: []ed25519.PublicKey{pub}, Path: path, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st2.Current().MatchDomain("v2.example"); !ok || st2.Current().ReportedVersion(clock) != "2 expired" {
		t.Fatalf("after a restart: match %v, reported %q", ok, st2.Current().ReportedVersion(clock))
	}
	if _, err := st2.Install(mk(6, clock.Add(-time.Hour), clock.Add(time.Hour))); err != nil || st2.Current().ReportedVersion(clock) != "6" {
		t.Fatalf("fresh bundle after the expiry: %v", err)
	}
}

// TestLegacyBundleKeptAcrossUpgrade: a mimamori-defs/1 bundle written by
// the firmware before expiries (testdata, built by commit 86ce934) that
// an appliance saved stays in use after the upgrade, checked with the
// configured key and reported as expired; a new bundle replaces it.
func TestLegacyBundleKeptAcrossUpgrade(t *testing.T) {
	old, err := os.ReadFile("testdata/legacy-v1.bundle")
	if err != nil {
		t.Fatal(err)
	}
	ring, err := LoadKeyRing("testdata/legacy-v1.pub")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "current.bundle")
	if err := os.WriteFile(path, old, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewStore(StoreConfig{Keys: []ed25519.PublicKey{newKey(t).Public().(ed25519.PublicKey)}, Path: path}); !errors.Is(err, ErrSignature) {
		t.Fatalf("legacy bundle loaded with another key: %v", err)
	}
	st := newStore(t, path, ring...)
	m, ok := st.Current().MatchDomain("www.legacy-c2.example")
	if !ok || !m.Block || st.Version() != 4 || st.Current().ReportedVersion(t0) != "4 expired" {
		t.Fatalf("legacy set: match %v %+v, version %d, reported %q", ok, m, st.Version(), st.Current().ReportedVersion(t0))
	}
	if _, err := st.Install(old); !errors.Is(err, ErrSame) {
		t.Fatalf("the legacy bundle offered again: %v", err)
	}
	if info, err := ReadHead(old); err != nil || info.Format != legacyMagic || !info.ExpiresAt.IsZero() || info.Version != 4 {
		t.Fatalf("legacy head: %+v, %v", info, err)
	}
}

// TestKeyRotation: a bundle signed by the old and a new key introduces the
// new one; one signed by the new key alone retires the old, after which a
// bundle signed only by the old key is refused, also after a restart with
// the old key still configured. A key never introduced is refused, the
// introducing bundle cannot be replayed, and an appliance that missed the
// introduction catches up with a bundle signed by both that trusts only
// the new key.
func TestKeyRotation(t *testing.T) {
	k1, k2, k3 := newKey(t), newKey(t), newKey(t)
	pub1, pub2 := k1.Public().(ed25519.PublicKey), k2.Public().(ed25519.PublicKey)
	path := filepath.Join(t.TempDir(), "current.bundle")
	st := newStore(t, path, pub1)
	if _, err := st.Install(build(t, 1, "a.example 3 c2\n", k1)); err != nil {
		t.Fatal(err)
	}
	install := func(st *Store, b []byte, want error) {
		t.Helper()
		before := st.Version()
		_, err := st.Install(b)
		if !errors.Is(err, want) {
			t.Fatalf("got %v, want %v", err, want)
		}
		if err != nil && st.Version() != before {
			t.Fatalf("refused, but version %d in use (was %d)", st.Version(), before)
		}
	}
	install(st, build(t, 2, "a.example 3 c2\n", k2), ErrSignature) // not introduced yet
	introduce := build(t, 2, "a.example 3 c2\n", k1, k2)
	if info, err := ReadHead(introduce); err != nil || !slices.Equal(info.Trusts, []string{KeyID(pub1), KeyID(pub2)}) ||
		!slices.Equal(info.SignedBy, info.Trusts) {
		t.Fatalf("introducing bundle: %+v, %v", info, err)
	}
	install(st, introduce, nil)
	install(st, build(t, 3, "a.example 3 c2\n", k2), nil) // retires k1
	install(st, build(t, 4, "a.example 3 c2\n", k1), ErrSignature)
	install(st, build(t, 4, "a.example 3 c2\n", k3), ErrSignature)

	// A restart with --defs-pub still naming the old key.
	st = newStore(t, path, pub1)
	if st.Version() != 3 {
		t.Fatalf("after a restart: version %d", st.Version())
	}
	_, err := st.Install(build(t, 4, "a.example 3 c2\n", k1))
	if !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), "signed by "+KeyID(pub1)+", none of them trusted (trusted: "+KeyID(pub2)+")") {
		t.Fatalf("old key after a restart: %v", err)
	}
	install(st, introduce, ErrRollback)
	install(st, build(t, 4, "a.example 3 c2\n", k2), nil)

	// An appliance still trusting only k1 (it missed the introduction).
	late := newStore(t, "", pub1)
	catchUp, err := Build(Spec{Version: 5, Created: t0, Trust: []ed25519.PublicKey{pub2}}, lists(t, "a.example 3 c2\n"), DefaultPortScan, k1, k2)
	if err != nil {
		t.Fatal(err)
	}
	install(late, catchUp, nil)
	install(late, build(t, 6, "a.example 3 c2\n", k1), ErrSignature)
	install(late, build(t, 6, "a.example 3 c2\n", k2), nil)

	// A bundle must be signed by a key it trusts, or the appliance could
	// not check it after a restart.
	if _, err := Build(Spec{Version: 7, Created: t0, Trust: []ed25519.PublicKey{pub2}}, lists(t, ""), DefaultPortScan, k1); err == nil {
		t.Fatal("built a bundle trusting none of its signers")
	}
	selfless := craft(t, bundleMagic, 7, validHead(7, pub2)+"[domains]\n", k1)
	if _, err := newStore(t, "", pub1).Install(selfless); !errors.Is(err, ErrSignature) {
		t.Fatalf("crafted bundle trusting none of its signers: %v", err)
	}
}

// TestKeyRingFile: a key ring is key files put together, comments and
// blank lines allowed; a bad line is named.
func TestKeyRingFile(t *testing.T) {
	pub1, pub2 := newKey(t).Public().(ed25519.PublicKey), newKey(t).Public().(ed25519.PublicKey)
	ring := "# ops keys\n" + string(EncodePublicKey(pub1)) + "\n" + string(EncodePublicKey(pub2)) + string(EncodePublicKey(pub1))
	got, err := ParseKeyRing([]byte(ring))
	if err != nil || len(got) != 2 || !got[0].Equal(pub1) || !got[1].Equal(pub2) {
		t.Fatalf("ring: %d keys, %v", len(got), err)
	}
	if _, err := ParseKeyRing([]byte(ring + "mimamori-ed25519-public AAAA\n")); err == nil || !strings.Contains(err.Error(), "line 6") {
		t.Fatalf("bad line: %v", err)
	}
	if _, err := ParseKeyRing([]byte("# nothing\n")); err == nil {
		t.Fatal("an empty ring parsed")
	}
}

// FuzzBundleBody fuzzes the signed text of a bundle (what the byte-level
// FuzzBundle rarely reaches through gzip and the signature): whatever a
// Store installs is installed as the one version every reading of the
// bundle gives.
func FuzzBundleBody(f *testing.F) {
	key := newKey(f)
	pub := key.Public().(ed25519.PublicKey)
	f.Add(uint64(9), validHead(9, pub)+"[domains]\nx.example 1 y\n[ips]\n10.0.0.0/8 2 x\n", false)
	f.Add(uint64(9), validHead(9, pub)+"version 3\n[domains]\nx.example 1 y\n", false)
	f.Add(uint64(9), "portscan on 20 10s 2 block\n"+validHead(9, pub)+"trust "+base64.StdEncoding.EncodeToString(pub)+"\n", false)
	f.Add(uint64(4), "version 4\ncreated 2026-11-20T00:00:00Z\n[domains]\nx.example 1 y\n", true)
	f.Fuzz(func(t *testing.T, hint uint64, body string, legacy bool) {
		magic := bundleMagic
		if legacy {
			magic = legacyMagic
		}
		b := craft(t, magic, hint, body, key)
		set, info, err := ParseUnverified(b)
		if err != nil {
			return
		}
		head, herr := ReadHead(b)
		if herr != nil || head.Version != set.Version || info.Version != set.Version || set.Version != hint {
			t.Fatalf("versions: header %d, head %d (%v), info %d, set %d", hint, head.Version, herr, info.Version, set.Version)
		}
		st := newStore(t, "", pub)
		if got, err := st.Install(b); err == nil && (st.Version() != set.Version || got.Version != set.Version) {
			t.Fatalf("installed as %d (%d), parsed as %d", st.Version(), got.Version, set.Version)
		}
	})
}
