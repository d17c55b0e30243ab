package agent_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mimamori/mimamori/appliance/agent"
	"github.com/mimamori/mimamori/appliance/capture"
	"github.com/mimamori/mimamori/appliance/defs"
	"github.com/mimamori/mimamori/appliance/inspect"
	"github.com/mimamori/mimamori/appliance/pcapgen"
	"github.com/mimamori/mimamori/appliance/queue"
)

// newStore returns a definitions store holding the first n generated
// threat domains plus extra domain list lines.
func newStore(t *testing.T, n int, extra string) *defs.Store {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var list bytes.Buffer
	if err := pcapgen.WriteDomainList(&list, n); err != nil {
		t.Fatal(err)
	}
	list.WriteString(extra)
	entries, err := defs.ParseList(defs.ListDomains, &list)
	if err != nil {
		t.Fatal(err)
	}
	b, err := defs.Build(defs.Spec{Version: 1, Created: time.Now()}, defs.Lists{defs.ListDomains: entries}, defs.DefaultPortScan, priv)
	if err != nil {
		t.Fatal(err)
	}
	s, err := defs.NewStore(defs.StoreConfig{Keys: []ed25519.PublicKey{pub}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Install(b); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAlertsReachTheQueueWithoutClose: every alert emitted is appended
// (written and fsynced) to the queue by the group committer while the
// agent runs; none waits for a batch to fill or for Close, so a power
// loss after this point loses nothing already emitted.
func TestAlertsReachTheQueueWithoutClose(t *testing.T) {
	var capBuf bytes.Buffer
	// A 1 ms fold window: detections close as packet time moves on.
	tr, err := pcapgen.Write(&capBuf, pcapgen.Config{Seed: 11, Packets: 20000, ThreatEvery: 10})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "c.pcap")
	if err := os.WriteFile(p, capBuf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	q, err := queue.Open(dir, queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Config{Zones: inspect.MustZones("lan=" + pcapgen.LAN), Store: newStore(t, 1000, ""),
		FoldWindow: time.Millisecond, Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := capture.ReadFiles(context.Background(), []string{p}, false, func(d []byte, ts time.Time, w int) { a.Process(d, ts, w) }, nil); err != nil {
		t.Fatal(err)
	}
	// No Tick and no Close: the alerts whose fold window closed were
	// emitted by Process alone.
	emitted := a.Alerts()
	if emitted < uint64(len(tr.Threats))/2 {
		t.Fatalf("only %d alerts for %d threat sessions", emitted, len(tr.Threats))
	}
	deadline := time.Now().Add(30 * time.Second)
	for q.Depth() < int64(emitted) && time.Now().Before(deadline) {
		select {
		case <-a.QueueNotify():
		case <-time.After(10 * time.Millisecond):
		}
	}
	// What is on disk now, read by a second queue opened on the same
	// files, as the agent restarted after a power cut would see it.
	q2, err := queue.Open(dir, queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got := q2.Depth(); got != int64(emitted) {
		t.Fatalf("queue on disk holds %d records before Close; %d alerts were emitted", got, emitted)
	}
	q2.Close()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if q.Depth() != int64(a.Alerts()) || a.Alerts() <= emitted {
		t.Fatalf("after Close the queue holds %d, want %d (Close flushes the open fold windows)", q.Depth(), a.Alerts())
	}
	q.Close()
}
