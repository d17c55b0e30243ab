// Package watchdog decides from heartbeats when an appliance has stopped,
// when it is back and when it is alive but silent, and records those
// judgements as events on the devices topic. It also
// records an appliance's activation (its first heartbeat, R-52).
//
// # One writer per device
//
// The watchdog is a consumer group on appliance.heartbeats, so each
// device's heartbeats (keyed by device ID) belong to exactly one member,
// and only that member writes the device's status events.
//
// A member whose session expired without it noticing (a long GC pause, a
// network partition) may write one more status event before it learns it
// lost the partition; the group's short session timeout bounds that
// window. Status events are not written in a Kafka transaction with the
// offsets because the watchdog uses no offsets (see below).
//
// # State from the log
//
// Nothing is kept on disk and committed offsets are not used. When a
// member gains a partition it reads the partition again from Lookback ago
// (by record timestamp), and it tails the whole devices topic for
// assignments, activations and its own earlier status events. It judges a
// partition only once it has read up to the end offset listed at
// assignment, so a restart or rebalance never sees stale heartbeats and
// raises no storm of false offline events.
//
// # Rules (times are the ingest gateway's received_at, never the
// appliance's clock)
//
//   - Offline: an activated device with no heartbeat received for
//     Threshold (default 10 min) went offline.
//   - Online: an offline device whose newest heartbeat was received after
//     the offline judgement's last heartbeat, and within Threshold, came
//     online.
//   - Debounce: a device gets at most one status event (offline or
//     online) per Debounce window (default 30 min), measured from its
//     previous status event. A change inside the window waits until the
//     window ends and is then judged on the state at that moment: a
//     device that flapped back is not reported at all. So a flapping
//     device yields at most one status mail per window, and a real outage
//     is still reported, at the latest Debounce after the previous event.
//   - Silent: an online device whose packet and byte counters have not
//     moved across heartbeats for SilencePeriod (default 1 h) went silent;
//     one event per silent stretch, named by the time the counters last
//     moved. Counters that move again end the stretch.
package watchdog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/events/retry"
)

// Source is the CloudEvents source of the watchdog's events.
const Source = "mimamori/watchdog"

// Config tunes the watchdog. Zero values take the defaults.
type Config struct {
	Group         string        // consumer group, default mimamori-watchdog
	InstanceID    string        // static group membership (eventlog.ConsumerConfig.InstanceID)
	Threshold     time.Duration // no heartbeat for this long: offline (10 min)
	Debounce      time.Duration // at most one status event per device per window (30 min)
	SilencePeriod time.Duration // counters still for this long: silent (1 h)
	CheckInterval time.Duration // how often the clock is checked (30 s)
	// Lookback is how far back a newly assigned partition is re-read
	// (default 2×SilencePeriod + Threshold).
	Lookback time.Duration
	// Now is the clock (time.Now by default); tests inject one.
	Now func() time.Time

	// endsListed, when set (tests), runs between the two listings of
	// adjust, where a heartbeat written concurrently must not be lost.
	endsListed func()
}

// Group is the consumer group of the service unless configured otherwise.
const Group = "mimamori-watchdog"

func (c *Config) defaults() {
	if c.Group == "" {
		c.Group = Group
	}
	if c.Threshold <= 0 {
		c.Threshold = 10 * time.Minute
	}
	if c.Debounce <= 0 {
		c.Debounce = 30 * time.Minute
	}
	if c.SilencePeriod <= 0 {
		c.SilencePeriod = time.Hour
	}
	if c.CheckInterval <= 0 {
		c.CheckInterval = 30 * time.Second
	}
	if c.Lookback <= 0 {
		c.Lookback = 2*c.SilencePeriod + c.Threshold
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

type device struct {
	customer      string
	activated     bool
	offline       bool
	lastStatusAt  time.Time // detected_at of the newest offline/online event
	offlineLastHB time.Time // last_heartbeat_at of the current offline event
	lastHB        time.Time // newest received_at known
	partition     int32     // heartbeats partition, -1 until seen
	countersSeen  bool
	movedKnown    bool // a counter change was observed (movedAt is exact)
	packets       uint64
	bytes         uint64
	movedAt       time.Time
	silentSince   time.Time // silent_since of the newest went_silent event
}

type partState struct {
	end    int64 // end offset listed at assignment
	pos    int64 // next offset to read
	caught bool
}

// Watchdog is one member of the watchdog group.
type Watchdog struct {
	cfg   Config
	kcfg  eventlog.Config
	pub   *eventlog.Producer
	adm   *kadm.Client
	log   *slog.Logger
	tail  *eventlog.Tail
	cons  *eventlog.Consumer
	topic string
	hash  kgo.TopicPartitioner

	mu     sync.Mutex
	devs   map[string]*device
	parts  map[int32]*partState
	nparts int

	emitted *prometheus.CounterVec
	offline prometheus.Gauge
}

// New connects a watchdog. reg may be nil.
func New(cfg Config, kcfg eventlog.Config, pub *eventlog.Producer, logger *slog.Logger, reg prometheus.Registerer) (*Watchdog, error) {
	cfg.defaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	w := &Watchdog{cfg: cfg, kcfg: kcfg, pub: pub, adm: kadm.NewClient(pub.Client()), log: logger,
		topic: kcfg.Topic(events.TopicHeartbeats), hash: kgo.StickyKeyPartitioner(nil).ForTopic(kcfg.Topic(events.TopicHeartbeats)),
		devs: map[string]*device{}, parts: map[int32]*partState{},
		emitted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mimamori_watchdog_events_total",
			Help: "Status events written by the watchdog, by type."}, []string{"type"}),
		offline: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mimamori_watchdog_devices_offline",
			Help: "Activated devices judged offline, among those this member owns."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{w.emitted, w.offline} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("watchdog metrics: %w", err)
			}
		}
	}
	var err error
	if w.tail, err = eventlog.NewTail(kcfg, []string{kcfg.Topic(events.TopicDevices)}, logger); err != nil {
		return nil, err
	}
	w.cons, err = eventlog.NewConsumer(kcfg, eventlog.ConsumerConfig{Group: cfg.Group, Topics: []string{w.topic}, InstanceID: cfg.InstanceID, Logger: logger},
		w.handle,
		kgo.AdjustFetchOffsetsFn(w.adjust),
		kgo.OnPartitionsRevoked(w.drop),
		kgo.OnPartitionsLost(w.drop),
	)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// Run follows the devices topic, waits until it has read it, then joins
// the group and judges devices until ctx ends.
func (w *Watchdog) Run(ctx context.Context) error {
	err := eventlog.Follow(ctx, w.tail, w.applyDevices, w.cons, w.cfg.CheckInterval, func(ctx context.Context) {
		if err := w.Evaluate(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("watchdog evaluation failed; retrying at the next check", "err", err)
		}
	})
	if err != nil {
		return fmt.Errorf("watchdog: %w", err)
	}
	return nil
}

func (w *Watchdog) dev(id string) *device {
	d := w.devs[id]
	if d == nil {
		d = &device{partition: -1}
		w.devs[id] = d
	}
	return d
}

// applyDevices folds a devices-topic event into the state. Applying an
// event twice (once locally when written, once from the tail) is harmless.
func (w *Watchdog) applyDevices(_ *kgo.Record, e events.Envelope) {
	p, err := events.Decode(e)
	if err != nil {
		if !errors.Is(err, events.ErrUnknownType) {
			w.log.Warn("devices event skipped", "err", err)
		}
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.applyLocked(p)
}

func (w *Watchdog) applyLocked(p events.Payload) {
	switch p := p.(type) {
	case *events.DeviceAssigned:
		w.dev(p.DeviceID).customer = p.CustomerID
	case *events.DeviceActivated:
		d := w.dev(p.DeviceID)
		d.activated = true
		d.lastHB = later(d.lastHB, p.HeartbeatAt)
		if d.customer == "" {
			d.customer = p.CustomerID
		}
	case *events.DeviceWentOffline:
		d := w.dev(p.DeviceID)
		if !p.DetectedAt.Before(d.lastStatusAt) {
			d.offline, d.lastStatusAt, d.offlineLastHB = true, p.DetectedAt, p.LastHeartbeatAt
		}
	case *events.DeviceCameOnline:
		d := w.dev(p.DeviceID)
		if !p.DetectedAt.Before(d.lastStatusAt) {
			d.offline, d.lastStatusAt = false, p.DetectedAt
		}
		d.lastHB = later(d.lastHB, p.HeartbeatAt)
	case *events.DeviceWentSilent:
		d := w.dev(p.DeviceID)
		d.silentSince = later(d.silentSince, p.SilentSince)
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// adjust starts every newly assigned partition Lookback ago and notes the
// end it must reach before its devices are judged.
//
// The end offsets are listed first and a start is never past its end: a
// heartbeat appended while the offsets are listed lands at or after the
// end listed, so it is read. (Listed the other way round, or unclamped, a
// partition with nothing found by timestamp starts at an end listed a
// moment later, past a heartbeat written in between: the device's first
// heartbeat was lost that way, and with it its activation.)
func (w *Watchdog) adjust(ctx context.Context, offs map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	var starts, ends kadm.ListedOffsets
	// A transient listing error (a leader moving) is retried here rather
	// than failing the join.
	b := retry.New(100*time.Millisecond, 2*time.Second)
	for {
		var err error
		since := w.cfg.Now().Add(-w.cfg.Lookback).UnixMilli()
		if ends, err = w.adm.ListEndOffsets(ctx, w.topic); err == nil {
			err = ends.Error()
		}
		if err == nil && w.cfg.endsListed != nil {
			w.cfg.endsListed()
		}
		if err == nil {
			if starts, err = w.adm.ListOffsetsAfterMilli(ctx, since, w.topic); err == nil {
				err = starts.Error()
			}
		}
		if err == nil {
			break
		}
		w.log.Warn("watchdog: listing offsets for the assigned partitions failed; retrying", "err", err)
		if retry.Wait(ctx, b.NextBackOff()) != nil {
			return nil, fmt.Errorf("watchdog: list offsets: %w", err)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	ends.Each(func(o kadm.ListedOffset) {
		if o.Topic == w.topic {
			n++
		}
	})
	w.nparts = n
	out := map[string]map[int32]kgo.Offset{}
	for topic, ps := range offs {
		out[topic] = map[int32]kgo.Offset{}
		for p := range ps {
			end, _ := ends.Lookup(topic, p)
			start := end.Offset
			if o, ok := starts.Lookup(topic, p); ok && o.Offset >= 0 {
				start = min(o.Offset, end.Offset)
			}
			w.parts[p] = &partState{end: end.Offset, pos: start, caught: start >= end.Offset}
			out[topic][p] = kgo.NewOffset().At(start)
		}
	}
	w.log.Info("watchdog assigned", "partitions", len(w.parts), "lookback", w.cfg.Lookback)
	return out, nil
}

func (w *Watchdog) drop(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range lost[w.topic] {
		delete(w.parts, p)
	}
}

// handle folds a batch of heartbeats into the state, then judges.
func (w *Watchdog) handle(ctx context.Context, recs []*kgo.Record) error {
	w.mu.Lock()
	var activate []events.Payload
	for _, r := range recs {
		if ps := w.parts[r.Partition]; ps != nil {
			ps.pos = max(ps.pos, r.Offset+1)
			ps.caught = ps.caught || ps.pos >= ps.end
		}
		e, err := eventlog.FromRecord(r)
		if err != nil {
			continue
		}
		p, err := events.Decode(e)
		if err != nil {
			continue
		}
		hb, ok := p.(*events.Heartbeat)
		if !ok {
			continue
		}
		d := w.dev(hb.DeviceID)
		d.partition = r.Partition
		if d.customer == "" {
			d.customer = hb.CustomerID
		}
		if !hb.ReceivedAt.Before(d.lastHB) || !d.countersSeen {
			if !d.countersSeen {
				d.countersSeen, d.movedAt = true, hb.ReceivedAt
			} else if hb.Packets != d.packets || hb.Bytes != d.bytes {
				d.movedKnown, d.movedAt = true, hb.ReceivedAt
			}
			d.packets, d.bytes = hb.Packets, hb.Bytes
		}
		d.lastHB = later(d.lastHB, hb.ReceivedAt)
		if !d.activated {
			d.activated = true // locally at once, so a batch activates once
			activate = append(activate, &events.DeviceActivated{DeviceID: hb.DeviceID, CustomerID: hb.CustomerID,
				HeartbeatAt: hb.ReceivedAt, ActivatedAt: w.cfg.Now().UTC()})
		}
	}
	w.mu.Unlock()
	if err := w.publish(ctx, activate); err != nil {
		w.mu.Lock()
		for _, p := range activate {
			w.dev(p.Key()).activated = false
		}
		w.mu.Unlock()
		return err
	}
	return w.Evaluate(ctx)
}

func (w *Watchdog) publish(ctx context.Context, ps []events.Payload) error {
	if len(ps) == 0 {
		return nil
	}
	now := w.cfg.Now()
	envs := make([]events.Envelope, 0, len(ps))
	for _, p := range ps {
		e, err := events.New(Source, p, now)
		if err != nil {
			return err
		}
		envs = append(envs, e)
	}
	if err := w.pub.Publish(ctx, envs...); err != nil {
		return fmt.Errorf("watchdog: publish: %w", err)
	}
	for _, p := range ps {
		w.emitted.WithLabelValues(p.EventType()).Inc()
	}
	return nil
}

// Evaluate judges every device of the partitions this member owns and has
// read up to their end, at the clock's time, and writes the status events
// due. The ticker calls it; tests may call it after moving their clock.
func (w *Watchdog) Evaluate(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.cfg.Now().UTC()
	var out []events.Payload
	offline := 0
	for id, d := range w.devs {
		if !d.activated || d.customer == "" {
			continue
		}
		p := d.partition
		if p < 0 {
			if w.nparts == 0 {
				continue
			}
			p = int32(w.hash.Partition(&kgo.Record{Topic: w.topic, Key: []byte(id)}, w.nparts))
		}
		ps := w.parts[p]
		if ps == nil || !ps.caught {
			continue
		}
		quiet := now.Sub(d.lastHB) >= w.cfg.Threshold
		debounced := !d.lastStatusAt.IsZero() && now.Sub(d.lastStatusAt) < w.cfg.Debounce
		switch {
		case !d.offline && quiet && !debounced:
			out = append(out, &events.DeviceWentOffline{DeviceID: id, CustomerID: d.customer, LastHeartbeatAt: d.lastHB,
				ThresholdSeconds: int(w.cfg.Threshold / time.Second), DetectedAt: now})
		case d.offline && !quiet && d.lastHB.After(d.offlineLastHB) && !debounced:
			out = append(out, &events.DeviceCameOnline{DeviceID: id, CustomerID: d.customer, OfflineAt: d.lastStatusAt,
				HeartbeatAt: d.lastHB, DetectedAt: now})
		}
		if d.offline {
			offline++
		}
		if !d.offline && !quiet && d.countersSeen && d.lastHB.Sub(d.movedAt) >= w.cfg.SilencePeriod {
			reported := d.silentSince.Equal(d.movedAt) || (!d.movedKnown && !d.silentSince.IsZero())
			if !reported && d.silentSince.Before(d.movedAt) {
				out = append(out, &events.DeviceWentSilent{DeviceID: id, CustomerID: d.customer, SilentSince: d.movedAt,
					LastHeartbeatAt: d.lastHB, PeriodSeconds: int(w.cfg.SilencePeriod / time.Second), DetectedAt: now})
			}
		}
	}
	w.offline.Set(float64(offline))
	if len(out) == 0 {
		return nil
	}
	if err := w.publish(ctx, out); err != nil {
		return err
	}
	for _, p := range out {
		w.applyLocked(p)
	}
	return nil
}
