package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mimamori/mimamori/appliance/pcapgen"
	"github.com/mimamori/mimamori/events"
)

// defsFixture makes a key pair and a signed bundle of n generated threat
// domains with the CLI, and returns the key prefix and bundle path.
func defsFixture(t *testing.T, dir string, n int, version string) (key, bundle string) {
	t.Helper()
	key = filepath.Join(dir, "sign")
	if _, err := os.Stat(key + ".key"); err != nil {
		if out, err := mimamori(t, context.Background(), nil, "defs", "keygen", "--out", key); err != nil {
			t.Fatalf("keygen: %v\n%s", err, out)
		}
	}
	var list bytes.Buffer
	if err := pcapgen.WriteDomainList(&list, n); err != nil {
		t.Fatal(err)
	}
	domains := filepath.Join(dir, "domains.txt")
	if err := os.WriteFile(domains, list.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	bundle = filepath.Join(dir, "v"+version+".bundle")
	if out, err := mimamori(t, context.Background(), nil, "defs", "build", "--domains", domains, "--key", key+".key",
		"--out", bundle, "--version", version); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return key, bundle
}

func TestDefsKeygenBuildInspectPublish(t *testing.T) {
	dir := t.TempDir()
	key, b5 := defsFixture(t, dir, 100, "5")
	st, err := os.Stat(key + ".key")
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	if out, err := mimamori(t, context.Background(), nil, "defs", "keygen", "--out", key); err == nil {
		t.Fatalf("keygen overwrote an existing key:\n%s", out)
	}

	out, err := mimamori(t, context.Background(), nil, "defs", "inspect", "--pub", key+".pub", b5)
	if err != nil {
		t.Fatal(err, out)
	}
	var info struct {
		Version   uint64         `json:"version"`
		Counts    map[string]int `json:"counts"`
		Signature string         `json:"signature"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatal(err, out)
	}
	if info.Version != 5 || info.Counts["domains"] != 100 || !strings.HasPrefix(info.Signature, "verified") {
		t.Fatalf("inspect: %+v", info)
	}

	// A tampered copy and a bundle checked against another key fail.
	raw, _ := os.ReadFile(b5)
	tampered := filepath.Join(dir, "tampered.bundle")
	bad := append([]byte(nil), raw...)
	bad[len(bad)-5] ^= 0xff
	_ = os.WriteFile(tampered, bad, 0o644)
	if out, err := mimamori(t, context.Background(), nil, "defs", "inspect", "--pub", key+".pub", tampered); err == nil {
		t.Fatalf("tampered bundle inspected as good:\n%s", out)
	}
	other := filepath.Join(dir, "other")
	if _, err := mimamori(t, context.Background(), nil, "defs", "keygen", "--out", other); err != nil {
		t.Fatal(err)
	}
	if out, err := mimamori(t, context.Background(), nil, "defs", "inspect", "--pub", other+".pub", b5); err == nil {
		t.Fatalf("bundle verified with the wrong key:\n%s", out)
	}

	// Publish: verified, atomic, never backwards; a tampered one never.
	data := filepath.Join(dir, "data")
	env := map[string]string{"MIMAMORI_DATA_DIR": data}
	published := filepath.Join(data, "definitions", "latest.bundle")
	if out, err := mimamori(t, context.Background(), env, "defs", "publish", "--pub", key+".pub", tampered); err == nil {
		t.Fatalf("tampered bundle published:\n%s", out)
	}
	if _, err := os.Stat(published); err == nil {
		t.Fatal("a refused publish left a file behind")
	}
	if out, err := mimamori(t, context.Background(), env, "defs", "publish", "--pub", key+".pub", b5); err != nil {
		t.Fatal(err, out)
	}
	_, b4 := defsFixture(t, dir, 10, "4")
	if out, err := mimamori(t, context.Background(), env, "defs", "publish", "--pub", key+".pub", b4); err == nil || !strings.Contains(err.Error(), "older") {
		t.Fatalf("older bundle published: %v\n%s", err, out)
	}
	got, _ := os.ReadFile(published)
	if !bytes.Equal(got, raw) {
		t.Fatal("published file is not version 5")
	}
}

// TestAgentOfflineWritesAlertsAsJSONLines runs `mimamori agent` on a
// generated pcapng with known threats and checks every alert line.
func TestAgentOfflineWritesAlertsAsJSONLines(t *testing.T) {
	dir := t.TempDir()
	key, bundle := defsFixture(t, dir, 1000, "9")
	var capBuf bytes.Buffer
	tr, err := pcapgen.Write(&capBuf, pcapgen.Config{Seed: 42, Packets: 30000, ThreatEvery: 20, PcapNG: true})
	if err != nil {
		t.Fatal(err)
	}
	capFile := filepath.Join(dir, "office.pcapng")
	_ = os.WriteFile(capFile, capBuf.Bytes(), 0o644)
	alertsFile := filepath.Join(dir, "alerts.jsonl")
	out, err := mimamori(t, context.Background(), nil, "agent", "--read", capFile, "--zone", "lan="+pcapgen.LAN,
		"--zone", "ssid1=192.168.10.0/24", "--defs", bundle, "--defs-pub", key+".pub", "--out", alertsFile, "--fold-window", "10m")
	if err != nil {
		t.Fatal(err, out)
	}
	if !strings.Contains(out, "agent: packets 30") || !strings.Contains(out, "skipped frames 0") || !strings.Contains(out, "packets/s") {
		t.Fatalf("summary: %s", out)
	}

	type key3 struct{ domain, src, dst string }
	want := map[key3]int{}
	for _, d := range tr.Threats {
		want[key3{d.Domain, d.Src, d.Dst}]++
	}
	f, _ := os.Open(alertsFile)
	defer f.Close()
	got := map[key3]int{}
	ids := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var a events.Alert
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if len(a.ID) != 27 || ids[a.ID] {
			t.Fatalf("bad or repeated id %q", a.ID)
		}
		ids[a.ID] = true
		if a.Kind != events.KindDomain || a.Zones != "LAN>WAN" || a.Domain != a.Indicator || a.Severity != 3 || a.Label != "c2" ||
			a.DefinitionsVersion != "9" || a.DetectedAt.Year() != 2026 || a.SrcMAC == "" || a.Action != "detected" {
			t.Fatalf("alert fields: %+v", a)
		}
		if (a.DstPort == 53) != (a.Protocol == "udp") {
			t.Fatalf("protocol %s to port %d", a.Protocol, a.DstPort)
		}
		got[key3{a.Indicator, a.SrcIP, a.DstIP}] += a.Count
	}
	if len(got) != len(want) {
		t.Fatalf("%d distinct detections, want %d", len(got), len(want))
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%v: count %d, want %d", k, got[k], n)
		}
	}
}
