package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mimamori/mimamori/appliance/defs"
	"github.com/mimamori/mimamori/appliance/pcapgen"
	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/infra/testkit"
)

// agentRun is one `mimamori agent` process.
type agentRun struct {
	cmd    *exec.Cmd
	stdout *lockedBuffer
	done   chan error
}

type lockedBuffer struct {
	ch  chan struct{}
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.ch <- struct{}{}
	defer func() { <-b.ch }()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.ch <- struct{}{}
	defer func() { <-b.ch }()
	return b.buf.String()
}

func startAgent(t *testing.T, bin, logPath string, args ...string) *agentRun {
	t.Helper()
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lf.Close() })
	r := &agentRun{stdout: &lockedBuffer{ch: make(chan struct{}, 1)}, done: make(chan error, 1)}
	r.cmd = exec.Command(bin, append([]string{"agent"}, args...)...)
	r.cmd.Stdout, r.cmd.Stderr = r.stdout, lf
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() { _ = r.cmd.Process.Kill() })
	return r
}

// waitOutput waits for the agent to print want, failing if it exits first.
func (r *agentRun) waitOutput(t *testing.T, want string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for !strings.Contains(r.stdout.String(), want) {
		select {
		case err := <-r.done:
			t.Fatalf("agent exited (%v) before printing %q:\n%s", err, want, r.stdout.String())
		case <-deadline:
			t.Fatalf("agent did not print %q within %s:\n%s", want, d, r.stdout.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// alertIDs reads the ids of a JSON-lines alert file.
func alertIDs(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var a events.Alert
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	return ids
}

// TestApplianceOfflineThenOnline: the agent processes captures with
// thousands of alerts while the cloud is unreachable and is killed
// (SIGKILL) twice while retrying; started a third time with the cloud
// reachable, it delivers every alert of the three runs exactly once:
// ClickHouse's raw alert log holds each id produced once and no other.
func TestApplianceOfflineThenOnline(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t)
	reg, _ := s.device(t)
	dir := t.TempDir()

	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	var list bytes.Buffer
	_ = pcapgen.WriteDomainList(&list, 2000)
	entries, err := defs.ParseList(defs.ListDomains, &list)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := defs.Build(defs.Spec{Version: 3, Created: time.Now()}, defs.Lists{defs.ListDomains: entries}, defs.DefaultPortScan, priv)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"defs.bundle": bundle, "defs.pub": defs.EncodePublicKey(pub), "credential": []byte(reg.Credential + "\n")}
	for i, seed := range []uint64{1, 2, 3} {
		var c bytes.Buffer
		n := 60000
		if i == 2 {
			n = 5000
		}
		if _, err := pcapgen.Write(&c, pcapgen.Config{Seed: seed, Packets: n, ThreatEvery: 8, Clients: 200, Start: time.Now().Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
		files[[]string{"a.pcap", "b.pcap", "c.pcap"}[i]] = c.Bytes()
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := func(n string) string { return filepath.Join(dir, n) }
	common := func(cloud, capFile, out string) []string {
		return []string{"--read", p(capFile), "--zone", "lan=" + pcapgen.LAN, "--defs", p("defs.bundle"), "--defs-pub", p("defs.pub"),
			"--cloud", cloud, "--credential-file", p("credential"), "--ca-file", s.p.Endpoints.IngestCAFile,
			"--queue-dir", p("queue"), "--out", p(out), "--heartbeat-every", "1s"}
	}
	// Nothing listens on this port: the cloud is unreachable.
	unreachable := "https://" + freePort(t)

	for i, run := range []struct{ capFile, out string }{{"a.pcap", "a.jsonl"}, {"b.pcap", "b.jsonl"}} {
		r := startAgent(t, bin, p("agent.log"), common(unreachable, run.capFile, run.out)...)
		r.waitOutput(t, "agent: sending", 2*time.Minute)
		time.Sleep(500 * time.Millisecond) // let it fail a send or two
		if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-r.done
		if n := len(alertIDs(t, p(run.out))); n < 1000 {
			t.Fatalf("run %d produced %d alerts; want thousands in all", i+1, n)
		}
	}

	r := startAgent(t, bin, p("agent.log"), common(s.p.Endpoints.Ingest, "c.pcap", "c.jsonl")...)
	select {
	case err := <-r.done:
		if err != nil {
			log, _ := os.ReadFile(p("agent.log"))
			t.Fatalf("online agent: %v\n%s\n%s", err, r.stdout.String(), log)
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("online agent did not empty its queue:\n%s", r.stdout.String())
	}
	if !strings.Contains(r.stdout.String(), "every alert acknowledged") {
		t.Fatalf("online agent output:\n%s", r.stdout.String())
	}

	produced := map[string]bool{}
	for _, f := range []string{"a.jsonl", "b.jsonl", "c.jsonl"} {
		for _, id := range alertIDs(t, p(f)) {
			if produced[id] {
				t.Fatalf("id %s produced twice", id)
			}
			produced[id] = true
		}
	}
	t.Logf("%d alerts produced over three runs (two killed offline)", len(produced))
	q := func(query string, dest ...any) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.conn.QueryRow(ctx, query, reg.DeviceID).Scan(dest...); err != nil {
			t.Fatal(err)
		}
	}
	var rows, distinct uint64
	testkit.WaitFor(t, time.Minute, "every alert in ClickHouse", func() (bool, string) {
		q("SELECT count(), uniqExact(id) FROM "+s.db+".alerts_log WHERE device_id = ?", &rows, &distinct)
		var all uint64
		q("SELECT count() FROM "+s.db+".alerts_log WHERE device_id != ?", &all)
		return distinct >= uint64(len(produced)), fmt.Sprintf("%d rows, %d ids of this device; %d rows of others", rows, distinct, all)
	})
	if rows != uint64(len(produced)) || distinct != uint64(len(produced)) {
		t.Fatalf("ClickHouse holds %d rows of %d ids; %d alerts were produced (want each exactly once)", rows, distinct, len(produced))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids, err := s.conn.Query(ctx, "SELECT id FROM "+s.db+".alerts_log WHERE device_id = ?", reg.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	defer ids.Close()
	for ids.Next() {
		var id string
		if err := ids.Scan(&id); err != nil {
			t.Fatal(err)
		}
		if !produced[id] {
			t.Fatalf("ClickHouse holds alert %s that the agent never produced", id)
		}
	}
}
