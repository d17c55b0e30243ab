package watchdog

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/ksuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/infra/testkit"
	"github.com/mimamori/mimamori/infra/testkit/testlog"
)

type fixture struct {
	t    *testing.T
	cfg  eventlog.Config
	prod *eventlog.Producer
	clk  *testkit.Clock
	seen *recorder
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	_, cfg := testkit.Kafka(t, 3, "w.")
	cfg.Logger = testlog.New(t)
	p, err := eventlog.NewProducer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := eventlog.EnsureTopics(ctx, p.Client(), cfg); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, cfg: cfg, prod: p, clk: &testkit.Clock{}}
	f.seen = newRecorder(t, cfg)
	return f
}

// recorder tails the devices topic and keeps the status events.
type recorder struct {
	tail *eventlog.Tail
	mu   sync.Mutex
	evs  []events.Payload
}

func newRecorder(t *testing.T, cfg eventlog.Config) *recorder {
	tail, err := eventlog.NewTail(cfg, []string{cfg.Topic(events.TopicDevices)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{tail: tail}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = tail.Run(ctx, func(_ *kgo.Record, e events.Envelope) {
			p, err := events.Decode(e)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.evs = append(r.evs, p)
			r.mu.Unlock()
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// of returns the events of one type so far, after reading to the end.
func (r *recorder) of(t *testing.T, typ string) []events.Payload {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.tail.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []events.Payload
	for _, p := range r.evs {
		if p.EventType() == typ {
			out = append(out, p)
		}
	}
	return out
}

func (f *fixture) publish(ps ...events.Payload) {
	f.t.Helper()
	for _, p := range ps {
		e, err := events.New("test", p, f.clk.Now())
		if err != nil {
			f.t.Fatal(err)
		}
		if err := f.prod.Publish(context.Background(), e); err != nil {
			f.t.Fatal(err)
		}
	}
}

// heartbeat publishes a heartbeat received now (clock) whose appliance
// clock is far off: a wrong device clock must change nothing.
func (f *fixture) heartbeat(dev string, packets uint64) {
	f.t.Helper()
	now := f.clk.Now()
	f.publish(&events.Heartbeat{ID: ksuid.New().String(), DeviceID: dev, CustomerID: "cu_1",
		SentAt: now.AddDate(-25, 0, 0), ReceivedAt: now, Packets: packets, Bytes: packets * 100})
}

func (f *fixture) start(cfg Config) (*Watchdog, func()) {
	f.t.Helper()
	cfg.Now = f.clk.Now
	cfg.Group = "wd"
	cfg.CheckInterval = 20 * time.Millisecond
	w, err := New(cfg, f.cfg, f.prod, f.cfg.Logger, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			f.t.Errorf("watchdog: %v", err)
		}
	}
	return w, stop
}

// waitSeen waits until the watchdog has read the device's heartbeat
// received at the clock's time and owns a caught-up partition for it.
func (w *Watchdog) waitSeen(t *testing.T, dev string, at time.Time) {
	t.Helper()
	testkit.WaitUntil(t, 20*time.Second, fmt.Sprintf("the watchdog to read the heartbeat of %s received at %s", dev, at), func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		d := w.devs[dev]
		return d != nil && !d.lastHB.Before(at) && d.partition >= 0 && w.parts[d.partition] != nil && w.parts[d.partition].caught
	})
}

func (w *Watchdog) eval(t *testing.T) {
	t.Helper()
	if err := w.Evaluate(context.Background()); err != nil {
		t.Fatal(err)
	}
}

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// A device that stops is reported once the threshold has passed, exactly
// once; heartbeats from an appliance with a clock 25 years off are judged
// by their receive time; a restarted watchdog rebuilds its state from the
// log and raises nothing again; the device coming back is reported once.
func TestOfflineOnceWithinThreshold(t *testing.T) {
	f := newFixture(t)
	f.clk.Set(t0)
	f.publish(&events.DeviceAssigned{DeviceID: "dv_a", CustomerID: "cu_1", AssignedAt: t0})
	w, stop := f.start(Config{Threshold: 10 * time.Minute, Debounce: 30 * time.Minute})
	for i := range 6 {
		f.heartbeat("dv_a", uint64(100*(i+1)))
		w.waitSeen(t, "dv_a", f.clk.Now())
		w.eval(t)
		f.clk.Advance(time.Minute)
	}
	last := t0.Add(5 * time.Minute)
	if got := f.seen.of(t, events.TypeDeviceActivated); len(got) != 1 {
		t.Fatalf("%d activation events, want 1", len(got))
	}
	f.clk.Set(last.Add(10*time.Minute - time.Second))
	w.eval(t)
	if got := f.seen.of(t, events.TypeDeviceWentOffline); len(got) != 0 {
		t.Fatalf("offline reported before the threshold: %+v", got[0])
	}
	f.clk.Set(last.Add(10 * time.Minute))
	w.eval(t)
	for range 5 {
		f.clk.Advance(time.Minute)
		w.eval(t)
	}
	off := f.seen.of(t, events.TypeDeviceWentOffline)
	if len(off) != 1 {
		t.Fatalf("%d offline events, want exactly 1", len(off))
	}
	o := off[0].(*events.DeviceWentOffline)
	if !o.LastHeartbeatAt.Equal(last) || !o.DetectedAt.Equal(last.Add(10*time.Minute)) || o.CustomerID != "cu_1" {
		t.Fatalf("offline event = %+v; want last heartbeat %s detected at %s", o, last, last.Add(10*time.Minute))
	}

	// Restart: a new member rebuilds from the log and raises nothing.
	stop()
	f.clk.Advance(time.Hour)
	w2, stop2 := f.start(Config{Threshold: 10 * time.Minute, Debounce: 30 * time.Minute})
	defer stop2()
	waitCaught(t, w2)
	for range 3 {
		w2.eval(t)
	}
	if n := len(f.seen.of(t, events.TypeDeviceWentOffline)); n != 1 {
		t.Fatalf("after restart %d offline events, want still 1", n)
	}
	if n := len(f.seen.of(t, events.TypeDeviceActivated)); n != 1 {
		t.Fatalf("after restart %d activation events, want still 1", n)
	}
	// Back: one came-online event.
	f.heartbeat("dv_a", 1000)
	w2.waitSeen(t, "dv_a", f.clk.Now())
	w2.eval(t)
	w2.eval(t)
	on := f.seen.of(t, events.TypeDeviceCameOnline)
	if len(on) != 1 || !on[0].(*events.DeviceCameOnline).HeartbeatAt.Equal(f.clk.Now()) {
		t.Fatalf("came-online events = %+v, want one with the new heartbeat", on)
	}
}

func waitCaught(t *testing.T, w *Watchdog) {
	t.Helper()
	testkit.WaitUntil(t, 20*time.Second, "the watchdog to catch up with its 3 partitions", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		ok := len(w.parts) == 3
		for _, p := range w.parts {
			ok = ok && p.caught
		}
		return ok
	})
}

// A device that flaps (12 minutes on, 12 off, for 4 hours) gets at most
// one status event per debounce window, and its outages are still
// reported.
func TestFlappingDebounced(t *testing.T) {
	f := newFixture(t)
	f.clk.Set(t0)
	f.publish(&events.DeviceAssigned{DeviceID: "dv_f", CustomerID: "cu_1", AssignedAt: t0})
	const debounce = 30 * time.Minute
	w, stop := f.start(Config{Threshold: 5 * time.Minute, Debounce: debounce})
	defer stop()
	for m := range 240 {
		if (m/12)%2 == 0 {
			f.heartbeat("dv_f", uint64(m))
			w.waitSeen(t, "dv_f", f.clk.Now())
		}
		w.eval(t)
		f.clk.Advance(time.Minute)
	}
	var times []time.Time
	for _, p := range f.seen.of(t, events.TypeDeviceWentOffline) {
		times = append(times, p.(*events.DeviceWentOffline).DetectedAt)
	}
	offline := len(times)
	for _, p := range f.seen.of(t, events.TypeDeviceCameOnline) {
		times = append(times, p.(*events.DeviceCameOnline).DetectedAt)
	}
	if offline < 2 {
		t.Fatalf("only %d offline events in 10 outages; outages must still be reported", offline)
	}
	for i, a := range times {
		for j, b := range times {
			if i != j && a.Sub(b) >= 0 && a.Sub(b) < debounce {
				t.Fatalf("status events at %s and %s are less than %s apart", b, a, debounce)
			}
		}
	}
	t.Logf("%d status events (%d offline) over 4 hours of flapping", len(times), offline)
}

// Heartbeats whose counters do not move for the silence period raise one
// went-silent event per silent stretch.
func TestOnlineButSilent(t *testing.T) {
	f := newFixture(t)
	f.clk.Set(t0)
	f.publish(&events.DeviceAssigned{DeviceID: "dv_s", CustomerID: "cu_1", AssignedAt: t0})
	w, stop := f.start(Config{Threshold: 10 * time.Minute, SilencePeriod: 30 * time.Minute})
	defer stop()
	beat := func(minutes int, packets uint64) {
		for range minutes {
			f.heartbeat("dv_s", packets)
			w.waitSeen(t, "dv_s", f.clk.Now())
			w.eval(t)
			f.clk.Advance(5 * time.Minute)
		}
	}
	beat(5, 7) // 25 minutes still: not yet
	if n := len(f.seen.of(t, events.TypeDeviceWentSilent)); n != 0 {
		t.Fatalf("silent after 20 minutes: %d events", n)
	}
	beat(5, 7) // 50 minutes still: once
	got := f.seen.of(t, events.TypeDeviceWentSilent)
	if len(got) != 1 || !got[0].(*events.DeviceWentSilent).SilentSince.Equal(t0) {
		t.Fatalf("went-silent events = %+v, want one since %s", got, t0)
	}
	beat(2, 8) // traffic again, then a second still stretch
	moved := f.clk.Now().Add(-5 * time.Minute)
	beat(8, 8)
	got = f.seen.of(t, events.TypeDeviceWentSilent)
	if len(got) != 2 || !got[1].(*events.DeviceWentSilent).SilentSince.Equal(moved.Add(-5*time.Minute)) {
		t.Fatalf("went-silent events = %+v, want a second one", got)
	}
	if n := len(f.seen.of(t, events.TypeDeviceWentOffline)); n != 0 {
		t.Fatalf("a silent device was reported offline %d times", n)
	}
}

// A heartbeat appended while a newly assigned partition's offsets are
// listed is read: here its record's timestamp is too old for the lookup by
// time to find it (as a record not yet readable at that instant is not
// found), so that lookup answers the end offset of a moment later, past
// the heartbeat. The device is activated all the same: the start never
// passes the end listed first.
func TestHeartbeatWrittenDuringAssignmentIsRead(t *testing.T) {
	f := newFixture(t)
	f.clk.Set(t0)
	f.publish(&events.DeviceAssigned{DeviceID: "dv_r", CustomerID: "cu_1", AssignedAt: t0})
	var once sync.Once
	hook := func() {
		once.Do(func() {
			hb := &events.Heartbeat{ID: ksuid.New().String(), DeviceID: "dv_r", CustomerID: "cu_1",
				SentAt: t0, ReceivedAt: t0, Packets: 10, Bytes: 1000}
			e, err := events.New("test", hb, t0.Add(-24*time.Hour)) // the record's timestamp
			if err != nil {
				t.Error(err)
				return
			}
			if err := f.prod.Publish(context.Background(), e); err != nil {
				t.Error(err)
			}
		})
	}
	w, stop := f.start(Config{Threshold: 10 * time.Minute, Lookback: time.Hour, endsListed: hook})
	defer stop()
	w.waitSeen(t, "dv_r", t0)
	if got := f.seen.of(t, events.TypeDeviceActivated); len(got) != 1 {
		t.Fatalf("%d activation events, want 1", len(got))
	}
}
