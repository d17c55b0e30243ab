package eventlog_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/ksuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
)

func newBroker(t *testing.T, dir string) (*eventlog.Broker, eventlog.Config) {
	t.Helper()
	b, err := eventlog.StartBroker(eventlog.BrokerConfig{Dir: dir, Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cfg := eventlog.Config{Brokers: b.Addrs(), Partitions: 3, Replication: 1, TopicPrefix: "t."}
	p, err := eventlog.NewProducer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := eventlog.EnsureTopics(ctx, p.Client(), cfg); err != nil {
		t.Fatal(err)
	}
	return b, cfg
}

func alertEnvelope(t *testing.T, device string) events.Envelope {
	t.Helper()
	now := time.Now().UTC()
	a := &events.Alert{ID: ksuid.New().String(), DeviceID: device, CustomerID: "cu_1", DetectedAt: now,
		ReceivedAt: now, Severity: 3, Kind: events.KindDomain, Indicator: "evil.example", Label: "c2",
		Action: events.ActionDetected, SrcIP: "192.168.1.5", DstIP: "203.0.113.9", Protocol: "udp",
		Zones: "LAN>WAN", Domain: "evil.example", Count: 1}
	e, err := events.New("test", a, now)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestRecordRoundTrip(t *testing.T) {
	e := alertEnvelope(t, "dv_1")
	got, err := eventlog.FromRecord(eventlog.ToRecord("appliance.alerts", e))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != e.ID || got.Type != e.Type || got.Subject != "dv_1" || !got.Time.Equal(e.Time) ||
		got.SpecVersion != "1.0" || string(got.Data) != string(e.Data) || got.DataContentType != "application/json" {
		t.Fatalf("round trip changed the envelope:\n got %+v\nwant %+v", got, e)
	}
	if _, err := eventlog.FromRecord(&kgo.Record{Topic: "x", Value: []byte("{}")}); err == nil {
		t.Fatal("a record without ce_ headers was accepted")
	}
}

// A batch whose handler fails is retried, never skipped, and its offsets are
// committed only after success: a new group member starts after it.
func TestConsumerCommitsAfterSideEffect(t *testing.T) {
	_, cfg := newBroker(t, "")
	p, _ := eventlog.NewProducer(cfg)
	defer p.Close()
	ctx := context.Background()
	var sent []events.Envelope
	for range 10 {
		sent = append(sent, alertEnvelope(t, ksuid.New().String()))
	}
	if err := p.Publish(ctx, sent...); err != nil {
		t.Fatal(err)
	}

	var calls, applied atomic.Int64
	seen := make(chan string, 100)
	run := func(failFirst bool) {
		cctx, cancel := context.WithCancel(ctx)
		c, err := eventlog.NewConsumer(cfg, eventlog.ConsumerConfig{Group: "g", Topics: []string{cfg.Topic(events.TopicAlerts)}},
			func(_ context.Context, recs []*kgo.Record) error {
				if calls.Add(1) == 1 && failFirst {
					return errors.New("clickhouse down")
				}
				for _, r := range recs {
					e, _ := eventlog.FromRecord(r)
					seen <- e.ID
					applied.Add(1)
				}
				if applied.Load() >= int64(len(sent)) {
					cancel()
				}
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Run(cctx) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			cancel()
			t.Fatal("consumer did not finish")
		}
	}
	run(true)
	if applied.Load() != int64(len(sent)) {
		t.Fatalf("applied %d records, want %d", applied.Load(), len(sent))
	}
	if calls.Load() < 2 {
		t.Fatalf("failed batch was not retried (calls=%d)", calls.Load())
	}

	// A second member of the same group finds nothing left to do.
	if err := p.Publish(ctx, alertEnvelope(t, "dv_last")); err != nil {
		t.Fatal(err)
	}
	applied.Store(int64(len(sent)) - 1)
	for len(seen) > 0 {
		<-seen
	}
	run(false)
	if got := <-seen; len(seen) != 0 || got == "" {
		t.Fatalf("after commit the group re-read %d old records", len(seen)+1)
	}
}

// A handler whose work outlives its batch holds the commit back at the
// oldest unfinished record; once that work is done the offsets move on
// while nothing new arrives.
func TestConsumerHoldsCommitsAtUnfinishedWork(t *testing.T) {
	_, cfg := newBroker(t, "")
	p, _ := eventlog.NewProducer(cfg)
	defer p.Close()
	ctx := context.Background()
	topic := cfg.Topic(events.TopicAlerts)
	var envs []events.Envelope
	for range 3 {
		envs = append(envs, alertEnvelope(t, "dv_same")) // one key: one partition
	}
	if err := p.Publish(ctx, envs...); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held *kgo.Record // the first record, still being worked on
	handled := 0
	c, err := eventlog.NewConsumer(cfg, eventlog.ConsumerConfig{Group: "held", Topics: []string{topic},
		Unfinished: func() map[string]map[int32]int64 {
			mu.Lock()
			defer mu.Unlock()
			if held == nil {
				return nil
			}
			return map[string]map[int32]int64{held.Topic: {held.Partition: held.Offset}}
		}},
		func(_ context.Context, recs []*kgo.Record) error {
			mu.Lock()
			defer mu.Unlock()
			if handled == 0 {
				held = recs[0]
			}
			handled += len(recs)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(cctx) }()
	defer func() { cancel(); <-done }()
	adm := kadm.NewClient(p.Client())
	var part int32
	committed := func() int64 {
		os, err := adm.FetchOffsets(ctx, "held")
		if err != nil {
			t.Fatal(err)
		}
		o, ok := os.Lookup(topic, part)
		if !ok {
			return -1
		}
		return o.At
	}
	deadline := time.Now().Add(20 * time.Second)
	waitHandled := func(want int) {
		t.Helper()
		for {
			mu.Lock()
			n := handled
			mu.Unlock()
			if n == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("handled %d of %d records", n, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitHandled(len(envs))
	// Two more batches: the first one's commit is done before the second
	// is handled.
	for range 2 {
		envs = append(envs, alertEnvelope(t, "dv_same"))
		if err := p.Publish(ctx, envs[len(envs)-1]); err != nil {
			t.Fatal(err)
		}
		waitHandled(len(envs))
	}
	mu.Lock()
	part, start := held.Partition, held.Offset
	mu.Unlock()
	if got := committed(); got != start {
		t.Fatalf("committed %d while the record at %d is unfinished, want %d", got, start, start)
	}
	mu.Lock()
	held = nil
	mu.Unlock()
	for committed() != start+int64(len(envs)) {
		if time.Now().After(deadline) {
			t.Fatalf("committed %d after the work was done, want %d", committed(), start+int64(len(envs)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTailCatchesUp(t *testing.T) {
	_, cfg := newBroker(t, "")
	p, _ := eventlog.NewProducer(cfg)
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tail, err := eventlog.NewTail(cfg, []string{cfg.Topic(events.TopicAlerts)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	go tail.Run(ctx, func(*kgo.Record, events.Envelope) { n.Add(1) })
	for i := range 5 {
		if err := p.Publish(ctx, alertEnvelope(t, "dv_"+string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		if err := tail.WaitCaughtUp(wctx); err != nil {
			t.Fatal(err)
		}
		wcancel()
		if n.Load() != int64(i+1) {
			t.Fatalf("after publish %d and WaitCaughtUp the tail applied %d", i+1, n.Load())
		}
	}
}

// The embedded broker persists to its data folder and outside Kafka clients
// (kcat) can list and read its topics.
func TestBrokerPersistsAndServesKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is needed for this test: apt-get install -y kcat")
	}
	dir := t.TempDir()
	b, cfg := newBroker(t, dir)
	p, _ := eventlog.NewProducer(cfg)
	e := alertEnvelope(t, "dv_kcat")
	if err := p.Publish(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	p.Close()
	b.Close()

	b2, err := eventlog.StartBroker(eventlog.BrokerConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	addr := b2.Addrs()[0]
	out, err := exec.Command(kcat, "-b", addr, "-L").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat -L: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `topic "t.appliance.alerts"`) {
		t.Fatalf("kcat -L does not list t.appliance.alerts:\n%s", out)
	}
	out, err = exec.Command(kcat, "-b", addr, "-C", "-t", "t.appliance.alerts", "-e", "-q",
		"-f", "%k %h\n").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat -C: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "dv_kcat") || !strings.Contains(string(out), "ce_id="+e.ID) {
		t.Fatalf("kcat did not read the persisted alert with its CloudEvents headers:\n%s", out)
	}
}

// The Kafka clients' own log reaches Config.Logger: the group lifecycle
// at debug only, so a service logging at info is not crowded by it.
func TestClientLogGoesToTheConfiguredLogger(t *testing.T) {
	_, cfg := newBroker(t, "")
	cl, err := kgo.NewClient(cfg.ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		var mu sync.Mutex
		var buf bytes.Buffer
		cfg.Logger = slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return buf.Write(p)
		}), &slog.HandlerOptions{Level: level}))
		ctx, cancel := context.WithCancel(context.Background())
		c, err := eventlog.NewConsumer(cfg, eventlog.ConsumerConfig{Group: "log-" + level.String(), Topics: []string{cfg.Topic(events.TopicAlerts)}},
			func(context.Context, []*kgo.Record) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		joined := func() bool {
			mu.Lock()
			defer mu.Unlock()
			return strings.Contains(buf.String(), `msg="kafka client: synced" group=log-DEBUG`)
		}
		// Whatever the level, wait until the broker has the member in a
		// stable group: the client has been through its join by then.
		deadline := time.Now().Add(10 * time.Second)
		for !stable(t, adm, "log-"+level.String()) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		out := buf.String()
		mu.Unlock()
		if level == slog.LevelDebug && !joined() {
			t.Fatalf("debug logger: no group join logged:\n%s", out)
		}
		if level == slog.LevelInfo && out != "" {
			t.Fatalf("info logger got the client's lifecycle:\n%s", out)
		}
	}
}

func stable(t *testing.T, adm *kadm.Client, group string) bool {
	ds, err := adm.DescribeGroups(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := ds[group]
	return ok && d.State == "Stable" && len(d.Members) == 1
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
