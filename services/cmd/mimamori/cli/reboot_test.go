package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/appliance/pcapgen"
	"github.com/mimamori/mimamori/appliance/queue"
	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/services/cmd/mimamori/cli"
	"github.com/mimamori/mimamori/services/ingest"
	"github.com/mimamori/mimamori/services/registry"
	"github.com/mimamori/mimamori/services/tlsca"
)

// TestDeviceRebootEndsTheAgent: `mimamori device reboot` records a
// request; `mimamori agent` in uplink mode against a real ingest gets
// "reboot" on a heartbeat reply and returns the reboot error (exit code 1;
// its supervisor starts it again) with its queue closed cleanly: every
// alert it made is either acknowledged by ingest or still in the queue on
// disk.
func TestDeviceRebootEndsTheAgent(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	b, err := eventlog.StartBroker(eventlog.BrokerConfig{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	kcfg := eventlog.Config{Brokers: b.Addrs(), Partitions: 1, Replication: 1}
	prod, err := eventlog.NewProducer(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := eventlog.EnsureTopics(ctx, prod.Client(), kcfg); err != nil {
		t.Fatal(err)
	}
	live, err := registry.NewLive(kcfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	liveDone := make(chan error, 1)
	go func() { liveDone <- live.Run(ctx) }()
	defer func() { cancel(); <-liveDone }()
	cust, err := registry.RegisterCustomer(ctx, prod, "Kato Bakery", "owner@kato.example", "rs_1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dev, err := registry.RegisterDevice(ctx, prod, registry.DeviceSpec{Serial: "MM-REBOOT-1", MAC: "02:00:00:00:00:09",
		Model: "MM-100", ManufacturedOn: "2026-04-01", CustomerID: cust}, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	paths, err := tlsca.Ensure(filepath.Join(dir, "tls"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := tlsca.ServerTLS(paths.ServerCert, paths.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := ingest.NewServer(ln, tlsCfg, ingest.New(ingest.Config{}, ingest.Deps{Auth: live, Pub: prod,
		Registry: prometheus.NewRegistry()}), nil)
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Run(ctx) }()
	defer func() { cancel(); <-srvDone }()

	env := map[string]string{"MIMAMORI_KAFKA_BROKERS": b.Addrs()[0], "MIMAMORI_DATA_DIR": t.TempDir(),
		"MIMAMORI_KAFKA_PARTITIONS": "1"}
	run := func(ctx context.Context, args ...string) (string, error) {
		var out bytes.Buffer
		err := cli.Main(ctx, args, func(k string) string { return env[k] }, &out, io.Discard)
		return out.String(), err
	}
	if _, err := run(ctx, "device", "reboot"); err == nil || cli.ExitCode(err) != 2 {
		t.Fatalf("device reboot without --device: %v, want a usage error", err)
	}
	if _, err := run(ctx, "device", "reboot", "--device", "cu_nope"); err == nil {
		t.Fatal("device reboot of a malformed device ID succeeded")
	}
	out, err := run(ctx, "device", "reboot", "--device", dev.DeviceID, "--reason", "resolver stuck")
	if err != nil {
		t.Fatal(err, out)
	}
	var printed struct{ DeviceID, RequestID string }
	if err := json.Unmarshal([]byte(out), &struct {
		DeviceID  *string `json:"device_id"`
		RequestID *string `json:"request_id"`
	}{&printed.DeviceID, &printed.RequestID}); err != nil || printed.DeviceID != dev.DeviceID || len(printed.RequestID) != 27 {
		t.Fatalf("device reboot printed %s (%v)", out, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for id, _ := live.State().PendingReboot(dev.DeviceID); id != printed.RequestID; id, _ = live.State().PendingReboot(dev.DeviceID) {
		if time.Now().After(deadline) {
			t.Fatal("ingest never read the reboot request")
		}
		time.Sleep(20 * time.Millisecond)
	}

	key, bundle := defsFixture(t, dir, 100, "9")
	var capBuf bytes.Buffer
	if _, err := pcapgen.Write(&capBuf, pcapgen.Config{Seed: 7, Packets: 5000, ThreatEvery: 20, Start: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	capFile := filepath.Join(dir, "office.pcap")
	credFile := filepath.Join(dir, "credential")
	queueDir := filepath.Join(dir, "queue")
	_ = os.WriteFile(capFile, capBuf.Bytes(), 0o644)
	_ = os.WriteFile(credFile, []byte(dev.Credential+"\n"), 0o600)
	// First the appliance works while the cloud is unreachable: its alerts
	// wait in the queue. (The reboot is already pending, and the agent asks
	// for commands at its first heartbeat, possibly before it has read a
	// packet: the queued alerts make the check below meaningful.)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
	pout, _ := mimamori(t, pctx, nil, "agent", "--read", capFile, "--zone", "lan="+pcapgen.LAN, "--defs", bundle,
		"--defs-pub", key+".pub", "--cloud", "https://"+closedAddr, "--credential-file", credFile,
		"--ca-file", paths.CACert, "--queue-dir", queueDir, "--heartbeat-every", "200ms", "--fold-window", "10m")
	pcancel()
	offline := alertsMade(pout)
	if offline == 0 {
		t.Fatalf("the offline run made no alert:\n%s", pout)
	}

	actx, acancel := context.WithTimeout(ctx, 60*time.Second)
	defer acancel()
	out, err = mimamori(t, actx, nil, "agent", "--read", capFile, "--zone", "lan="+pcapgen.LAN, "--defs", bundle,
		"--defs-pub", key+".pub", "--cloud", "https://"+srv.Addr().String(), "--credential-file", credFile,
		"--ca-file", paths.CACert, "--queue-dir", queueDir, "--heartbeat-every", "200ms", "--fold-window", "10m")
	if err == nil || !strings.Contains(err.Error(), "reboot requested by the cloud") || cli.ExitCode(err) != 1 {
		t.Fatalf("agent: err %v, want the reboot error\n%s", err, out)
	}
	if actx.Err() != nil {
		t.Fatal("the agent ran until the test's deadline")
	}

	// Nothing lost: acknowledged alerts plus those still queued are every
	// alert the agent made.
	made := offline + alertsMade(out)
	q, err := queue.Open(queueDir, queue.Config{})
	if err != nil {
		t.Fatalf("reopen the queue after the reboot exit: %v", err)
	}
	depth := q.Depth()
	q.Close()
	ids := map[string]bool{}
	for _, r := range readTopic(t, prod, kcfg, events.TopicAlerts) {
		e, err := eventlog.FromRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		if e.Type == events.TypeAlertDetected {
			ids[e.ID] = true
		}
	}
	t.Logf("alerts made %d, acknowledged %d, still queued %d", made, len(ids), depth)
	if int64(len(ids))+depth != int64(made) {
		t.Fatalf("alerts made %d, acknowledged %d, still queued %d\n%s", made, len(ids), depth, out)
	}
	// The supervisor starts the agent again: no second reboot, and the
	// alerts kept on disk reach ingest with the new run's.
	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	defer rcancel()
	out, err = mimamori(t, rctx, nil, "agent", "--read", capFile, "--zone", "lan="+pcapgen.LAN, "--defs", bundle,
		"--defs-pub", key+".pub", "--cloud", "https://"+srv.Addr().String(), "--credential-file", credFile,
		"--ca-file", paths.CACert, "--queue-dir", queueDir, "--heartbeat-every", "200ms", "--fold-window", "10m")
	if err != nil || !strings.Contains(out, "queue empty, every alert acknowledged") {
		t.Fatalf("restarted agent: %v\n%s", err, out)
	}
	clear(ids)
	for _, r := range readTopic(t, prod, kcfg, events.TopicAlerts) {
		if e, err := eventlog.FromRecord(r); err == nil && e.Type == events.TypeAlertDetected {
			ids[e.ID] = true
		}
	}
	if want := made + alertsMade(out); len(ids) != want {
		t.Fatalf("after the restart ingest holds %d alerts, want %d (every run's)", len(ids), want)
	}
	var delivered int
	for _, r := range readTopic(t, prod, kcfg, events.TopicDevices) {
		if e, err := eventlog.FromRecord(r); err == nil && e.Type == events.TypeDeviceCommandDelivered {
			delivered++
		}
	}
	if delivered != 1 {
		t.Fatalf("%d delivery records, want 1", delivered)
	}
}

func readTopic(t *testing.T, prod *eventlog.Producer, kcfg eventlog.Config, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(prod.Client()).ListEndOffsets(ctx, kcfg.Topic(topic))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	cl, err := kgo.NewClient(append(kcfg.ClientOpts(), kgo.ConsumeTopics(kcfg.Topic(topic)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for int64(len(recs)) < n && ctx.Err() == nil {
		recs = append(recs, cl.PollFetches(ctx).Records()...)
	}
	if int64(len(recs)) != n {
		t.Fatal(errors.New("short read of " + topic))
	}
	return recs
}

// alertsMade reads the alert count from the agent's summary line.
func alertsMade(out string) int {
	var made int
	for _, line := range strings.Split(out, "\n") {
		if i := strings.Index(line, "alerts "); strings.HasPrefix(line, "agent: packets") && i > 0 {
			f := strings.Fields(strings.TrimSuffix(line[i+len("alerts "):], ","))
			if len(f) > 0 {
				_, _ = fmt.Sscan(strings.TrimSuffix(f[0], ","), &made)
			}
		}
	}
	return made
}
