package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mimamori/mimamori/appliance/defs"
	"github.com/mimamori/mimamori/appliance/pcapgen"
	"github.com/mimamori/mimamori/services/cmd/mimamori/cli"
)

// inspected is what `defs inspect` prints.
type inspected struct {
	Version   uint64    `json:"version"`
	Created   time.Time `json:"created"`
	ExpiresAt time.Time `json:"expires_at"`
	Expired   bool      `json:"expired"`
	SignedBy  []string  `json:"signed_by"`
	Trusts    []string  `json:"trusts"`
	Signature string    `json:"signature"`
}

func inspectBundle(t *testing.T, bundle string, pubs ...string) inspected {
	t.Helper()
	args := []string{"defs", "inspect"}
	for _, p := range pubs {
		args = append(args, "--pub", p)
	}
	out, err := mimamori(t, context.Background(), nil, append(args, bundle)...)
	if err != nil {
		t.Fatalf("inspect %s: %v\n%s", bundle, err, out)
	}
	var info inspected
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatal(err, out)
	}
	return info
}

// smallCapture writes a short generated capture to inspect.
func smallCapture(t *testing.T, dir string) string {
	t.Helper()
	var c bytes.Buffer
	if _, err := pcapgen.Write(&c, pcapgen.Config{Seed: 3, Packets: 200, ThreatEvery: 10}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "small.pcap")
	if err := os.WriteFile(path, c.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDefsExpiry: `defs build` gives a bundle an expiry, 30 days after the
// build unless --expires says otherwise (a lifetime, a date at 00:00 Japan
// time, an RFC 3339 time); `defs inspect` shows it; a bad or past
// --expires is a usage error naming the flag. A bundle past its expiry is
// refused by `agent --defs` and by `defs publish`, both naming the expiry.
func TestDefsExpiry(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key, b5 := defsFixture(t, dir, 10, "5")
	if i := inspectBundle(t, b5, key+".pub"); i.ExpiresAt.Sub(i.Created) != 30*24*time.Hour || i.Expired {
		t.Fatalf("default expiry: created %s, expires_at %s, expired %v", i.Created, i.ExpiresAt, i.Expired)
	}
	build := func(expires string) (string, error) {
		return mimamori(t, ctx, nil, "defs", "build", "--domains", filepath.Join(dir, "domains.txt"), "--key", key+".key",
			"--out", filepath.Join(dir, "e.bundle"), "--version", "6", "--expires", expires)
	}
	for _, c := range []struct {
		flag string
		want func(created time.Time) time.Time
	}{
		{"720h", func(c time.Time) time.Time { return c.Add(720 * time.Hour) }},
		{"7d", func(c time.Time) time.Time { return c.Add(7 * 24 * time.Hour) }},
		{"2099-01-01", func(time.Time) time.Time { return time.Date(2098, 12, 31, 15, 0, 0, 0, time.UTC) }},
		{"2099-01-01T12:00:00+09:00", func(time.Time) time.Time { return time.Date(2099, 1, 1, 3, 0, 0, 0, time.UTC) }},
	} {
		if out, err := build(c.flag); err != nil {
			t.Fatalf("--expires %s: %v\n%s", c.flag, err, out)
		}
		if i := inspectBundle(t, filepath.Join(dir, "e.bundle"), key+".pub"); !i.ExpiresAt.Equal(c.want(i.Created)) {
			t.Errorf("--expires %s: expires_at %s, created %s", c.flag, i.ExpiresAt, i.Created)
		}
	}
	for flag, want := range map[string]string{"soon": `"soon": want a lifetime`, "0d": `"0d": want a whole number of days`,
		"2020-01-01": `"2020-01-01" is not after the build time`, "-1h": `"-1h" is not after the build time`} {
		out, err := build(flag)
		if err == nil || cli.ExitCode(err) != 2 || !strings.Contains(err.Error(), "--expires: "+want) {
			t.Errorf("--expires %s: %v (exit %d)\n%s; want a usage error with %q", flag, err, cli.ExitCode(err), out, want)
		}
	}
	if out, _ := mimamori(t, ctx, nil, "defs", "build", "--help"); !strings.Contains(out, "-expires") || !strings.Contains(out, "-trust") {
		t.Errorf("defs build --help lacks --expires or --trust:\n%s", out)
	}

	// A bundle that expired (built before; --expires cannot be past).
	priv, err := defs.LoadPrivateKey(key + ".key")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := defs.ParseList(defs.ListDomains, strings.NewReader("old-c2.example 3 c2\n"))
	if err != nil {
		t.Fatal(err)
	}
	old, err := defs.Build(defs.Spec{Version: 7, Created: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC),
		ExpiresAt: time.Date(2026, 10, 31, 0, 0, 0, 0, time.UTC)}, defs.Lists{defs.ListDomains: entries}, defs.DefaultPortScan, priv)
	if err != nil {
		t.Fatal(err)
	}
	expired := filepath.Join(dir, "expired.bundle")
	if err := os.WriteFile(expired, old, 0o644); err != nil {
		t.Fatal(err)
	}
	if i := inspectBundle(t, expired, key+".pub"); !i.Expired {
		t.Fatalf("inspect of an expired bundle: %+v", i)
	}
	const named = "version 7 expired at 2026-10-31T09:00:00+09:00"
	alerts := filepath.Join(dir, "alerts.jsonl")
	out, err := mimamori(t, ctx, nil, "agent", "--read", smallCapture(t, dir), "--zone", "lan="+pcapgen.LAN,
		"--defs", expired, "--defs-pub", key+".pub", "--out", alerts)
	if err == nil || !strings.Contains(err.Error(), named) {
		t.Fatalf("agent with an expired --defs: %v\n%s", err, out)
	}
	if _, err := os.Stat(alerts); err == nil {
		t.Fatal("the refused agent run wrote alerts")
	}
	env := map[string]string{"MIMAMORI_DATA_DIR": filepath.Join(dir, "data")}
	if out, err := mimamori(t, ctx, env, "defs", "publish", "--pub", key+".pub", expired); err == nil || !strings.Contains(err.Error(), named) {
		t.Fatalf("publish of an expired bundle: %v\n%s", err, out)
	}
}

// TestDefsKeyRotation: a bundle signed with `--key` twice introduces the
// second key to an appliance that trusts only the first; one signed by the
// new key alone (trusting only it) is refused by the old key; `--defs-pub`
// and `--pub` take several keys or a key ring file; a bundle trusting none
// of its signers is not built.
func TestDefsKeyRotation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old, _ := defsFixture(t, dir, 50, "1")
	next := filepath.Join(dir, "next")
	if out, err := mimamori(t, ctx, nil, "defs", "keygen", "--out", next); err != nil {
		t.Fatal(err, out)
	}
	oldPub, err := defs.LoadKeyRing(old + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	nextPub, err := defs.LoadKeyRing(next + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	oldID, nextID := defs.KeyID(oldPub[0]), defs.KeyID(nextPub[0])
	build := func(version string, args ...string) (string, error) {
		b := filepath.Join(dir, "v"+version+".bundle")
		out, err := mimamori(t, ctx, nil, append([]string{"defs", "build", "--domains", filepath.Join(dir, "domains.txt"),
			"--out", b, "--version", version}, args...)...)
		return b, withOutput(err, out)
	}
	agent := func(bundle string, pubs ...string) error {
		args := []string{"agent", "--read", smallCapture(t, dir), "--zone", "lan=" + pcapgen.LAN, "--defs", bundle,
			"--out", filepath.Join(dir, "alerts.jsonl")}
		for _, p := range pubs {
			args = append(args, "--defs-pub", p)
		}
		out, err := mimamori(t, ctx, nil, args...)
		return withOutput(err, out)
	}

	intro, err := build("2", "--key", old+".key", "--key", next+".key")
	if err != nil {
		t.Fatal(err)
	}
	i := inspectBundle(t, intro, old+".pub")
	if both := []string{oldID, nextID}; !slices.Equal(i.SignedBy, both) || !slices.Equal(i.Trusts, both) || i.Signature != "verified with key "+oldID {
		t.Fatalf("introducing bundle: %+v", i)
	}
	if err := agent(intro, old+".pub"); err != nil {
		t.Fatalf("appliance trusting the old key, introducing bundle: %v", err)
	}

	retire, err := build("3", "--key", next+".key")
	if err != nil {
		t.Fatal(err)
	}
	if i := inspectBundle(t, retire, next+".pub"); !slices.Equal(i.Trusts, []string{nextID}) {
		t.Fatalf("retiring bundle trusts %v", i.Trusts)
	}
	if err := agent(retire, old+".pub"); err == nil || !strings.Contains(err.Error(), "signed by "+nextID+", none of them trusted (trusted: "+oldID+")") {
		t.Fatalf("old key only, bundle signed by the new: %v", err)
	}
	ring := filepath.Join(dir, "ring.pub")
	a, _ := os.ReadFile(old + ".pub")
	b, _ := os.ReadFile(next + ".pub")
	if err := os.WriteFile(ring, append(append([]byte("# ops keys\n"), a...), b...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := agent(retire, ring); err != nil {
		t.Fatalf("--defs-pub key ring: %v", err)
	}
	if err := agent(retire, old+".pub", next+".pub"); err != nil {
		t.Fatalf("--defs-pub twice: %v", err)
	}
	if i := inspectBundle(t, retire, ring); i.Signature != "verified with key "+nextID {
		t.Fatalf("inspect with a ring: %q", i.Signature)
	}

	if _, err := build("4", "--key", old+".key", "--trust", next+".pub"); err == nil || !strings.Contains(err.Error(), "none of the signing keys") {
		t.Fatalf("bundle trusting none of its signers: %v", err)
	}
	catchUp, err := build("4", "--key", old+".key", "--key", next+".key", "--trust", next+".pub")
	if err != nil {
		t.Fatal(err)
	}
	if i := inspectBundle(t, catchUp, old+".pub"); !slices.Equal(i.Trusts, []string{nextID}) || len(i.SignedBy) != 2 {
		t.Fatalf("catch-up bundle: %+v", i)
	}
}

// withOutput adds a command's output to its error.
func withOutput(err error, out string) error {
	if err == nil {
		return nil
	}
	return &outputError{err, out}
}

type outputError struct {
	err error
	out string
}

func (e *outputError) Error() string { return e.err.Error() + "\n" + e.out }
func (e *outputError) Unwrap() error { return e.err }
