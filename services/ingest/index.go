package ingest

import (
	"bytes"
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/events/retry"
)

// Defaults of IndexConfig.
const (
	// DefaultIndexWindow: an appliance resends a batch whose reply it lost
	// as soon as the gateway answers again (its backoff is at most 5
	// minutes); a day covers the resends of all but day-long outages.
	DefaultIndexWindow = 24 * time.Hour
	// DefaultIndexPerDevice: an appliance sends its queue in order and
	// removes a batch (at most 1,000 alerts) only once acknowledged, so a
	// resend is always among the last alerts it stored; two requests'
	// worth leaves room for a replacement unit sending beside it.
	DefaultIndexPerDevice = 2 * DefaultMaxAlerts
)

// IndexConfig bounds an AlertIndex. The zero value means the defaults.
type IndexConfig struct {
	// Window is how long an alert is remembered after it was received.
	Window time.Duration
	// PerDevice is how many alerts are remembered per device, the newest.
	PerDevice int
	// Now is the clock the window is measured with (default time.Now).
	Now func() time.Time
}

// AlertIndex remembers, per device, the content of the alerts stored
// recently: a resend (the same id and content) is acknowledged without
// writing it again, and another alert under an id already used is refused
// with 409, so an alert is written once. It learns from this gateway's own
// writes at once and from every gateway's through Follow. Memory is bounded
// by PerDevice entries (about 140 bytes each) per device that sent alerts
// within Window.
//
// The index is the gateway's first line only: two gateways accepting one
// id at the same instant, or an id older than the index, still reach the
// log, and the projection and the notifier keep the first version there.
type AlertIndex struct {
	window    time.Duration
	perDevice int
	now       func() time.Time
	seed      maphash.Seed

	mu      sync.Mutex
	devices map[string]*recentAlerts

	caughtUp chan struct{} // closed when Follow has read what was there at its start
	once     sync.Once
}

// recentAlerts is one device's remembered alerts; ring holds them in the
// order they were learnt, n of them from head on.
type recentAlerts struct {
	byID    map[string]stored
	ring    []slot
	head, n int
	next    uint64
}

type stored struct {
	sum uint64
	at  int64  // received, Unix nanoseconds
	seq uint64 // its slot in ring
}

// slot is an entry of ring; it is stale when byID[id] has another seq
// (the id was learnt again after it expired).
type slot struct {
	id  string
	seq uint64
}

// NewIndex returns an empty index.
func NewIndex(cfg IndexConfig) *AlertIndex {
	if cfg.Window <= 0 {
		cfg.Window = DefaultIndexWindow
	}
	if cfg.PerDevice <= 0 {
		cfg.PerDevice = DefaultIndexPerDevice
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &AlertIndex{window: cfg.Window, perDevice: cfg.PerDevice, now: cfg.Now, seed: maphash.MakeSeed(),
		devices: map[string]*recentAlerts{}, caughtUp: make(chan struct{})}
}

// stampedFields are the members of an alert event's JSON that the gateway
// writes itself, from the credential and its clock; everything else is
// what the appliance sent. events.Alert encodes them in this order, and a
// `,"name":"` cannot occur inside a JSON string (its quote would be
// escaped).
var stampedFields = [][]byte{[]byte(`,"device_id":"`), []byte(`,"customer_id":"`), []byte(`,"received_at":"`)}

// sum is the hash of an alert event's content as the appliance sent it:
// its JSON without the stamped fields, so a resend received later (or
// after the device moved to another customer) has the sum of the first.
// The seed is this process's: sums are never compared across processes.
func (ix *AlertIndex) sum(data []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(ix.seed)
	for _, f := range stampedFields {
		i := bytes.Index(data, f)
		if i < 0 {
			continue
		}
		h.Write(data[:i])
		data = afterString(data[i+len(f):])
	}
	h.Write(data)
	return h.Sum64()
}

// afterString returns what follows the JSON string whose opening quote
// came just before s.
func afterString(s []byte) []byte {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return s[i+1:]
		}
	}
	return nil
}

// sort splits a request's alerts into those to publish and the number that
// were stored before with the same content, or refuses the request (409,
// nothing written) at the first alert whose id was stored before with
// other content.
func (ix *AlertIndex) sort(device string, b alertBatch) (fresh []events.Envelope, sums []uint64, resent int, err error) {
	sums = make([]uint64, len(b.envs))
	for i := range b.envs {
		sums[i] = ix.sum(b.envs[i].Data)
	}
	horizon := ix.now().Add(-ix.window).UnixNano()
	ix.mu.Lock()
	d := ix.devices[device]
	fresh = b.envs[:0:0]
	keep := sums[:0:0]
	for i, e := range b.envs {
		var s stored
		var ok bool
		if d != nil {
			s, ok = d.byID[e.ID]
		}
		switch {
		case !ok || s.at < horizon:
			fresh, keep = append(fresh, e), append(keep, sums[i])
		case s.sum == sums[i]:
			resent++
		default:
			ix.mu.Unlock()
			path := fmt.Sprintf("alerts[%d].id", b.index[i])
			return nil, nil, 0, errorf(kindConflict, path,
				"%s: alert %s was received before with other content; an alert is written once and never replaced (a new alert needs a new id)", path, e.ID)
		}
	}
	ix.mu.Unlock()
	return fresh, keep, resent, nil
}

// learn remembers alerts of a device stored at `at`. An id already
// remembered keeps its first content: two gateways racing on one id are
// settled downstream by the log's order, not here.
func (ix *AlertIndex) learn(device string, ids []string, sums []uint64, at time.Time) {
	horizon := ix.now().Add(-ix.window).UnixNano()
	ns := at.UnixNano()
	if ns < horizon {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	d := ix.devices[device]
	if d == nil {
		d = &recentAlerts{byID: map[string]stored{}}
		ix.devices[device] = d
	}
	for i, id := range ids {
		if s, ok := d.byID[id]; ok && s.at >= horizon {
			continue
		}
		d.next++
		d.byID[id] = stored{sum: sums[i], at: ns, seq: d.next}
		d.push(slot{id: id, seq: d.next}, ix.perDevice)
	}
	d.trim(ix.perDevice, horizon)
}

// push appends to the ring, growing it up to max slots; a full ring of max
// drops its oldest first.
func (d *recentAlerts) push(sl slot, max int) {
	if d.n == len(d.ring) {
		if len(d.ring) < max {
			grown := make([]slot, min(max, 2*len(d.ring)+16))
			for i := range d.n {
				grown[i] = d.ring[(d.head+i)%len(d.ring)]
			}
			d.ring, d.head = grown, 0
		} else {
			d.pop()
		}
	}
	d.ring[(d.head+d.n)%len(d.ring)] = sl
	d.n++
}

// pop forgets the oldest slot's alert, unless the slot is stale.
func (d *recentAlerts) pop() {
	sl := d.ring[d.head]
	if s, ok := d.byID[sl.id]; ok && s.seq == sl.seq {
		delete(d.byID, sl.id)
	}
	d.ring[d.head] = slot{}
	d.head = (d.head + 1) % len(d.ring)
	d.n--
}

// trim forgets the oldest alerts beyond max and those received before
// horizon. Oldest means learnt first: receipt order, but for the rebuild
// at start, where it is close to it.
func (d *recentAlerts) trim(max int, horizon int64) {
	for d.n > 0 {
		sl := d.ring[d.head]
		s, ok := d.byID[sl.id]
		if ok && s.seq == sl.seq && d.n <= max && s.at >= horizon {
			return
		}
		d.pop()
	}
}

// sweep forgets what is older than the window, and devices with nothing
// left, so a device that stopped sending costs nothing.
func (ix *AlertIndex) sweep() {
	horizon := ix.now().Add(-ix.window).UnixNano()
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for dev, d := range ix.devices {
		d.trim(ix.perDevice, horizon)
		if len(d.byID) == 0 {
			delete(ix.devices, dev)
		}
	}
}

// Follow keeps the index current with what every gateway writes: it reads
// the appliance.alerts topic from Window ago and follows it until ctx
// ends. Until it has read what was there when it started (WaitCaughtUp),
// an id stored before this process started is not known yet, and a
// conflicting alert is accepted (the projection keeps the first version).
func (ix *AlertIndex) Follow(ctx context.Context, kcfg eventlog.Config, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	topic := kcfg.Topic(events.TopicAlerts)
	cl, err := kgo.NewClient(kcfg.ClientOpts()...)
	if err != nil {
		return fmt.Errorf("alert index: %w", err)
	}
	defer cl.Close()
	started := time.Now()
	from, ends, err := ix.startOffsets(ctx, kadm.NewClient(cl), topic, logger)
	if err != nil || ctx.Err() != nil {
		return err
	}
	behind := map[int32]int64{}
	offsets := map[int32]kgo.Offset{}
	from.Each(func(o kadm.ListedOffset) {
		offsets[o.Partition] = kgo.NewOffset().At(o.Offset)
		if end, ok := ends.Lookup(topic, o.Partition); ok && end.Offset > o.Offset {
			behind[o.Partition] = end.Offset
		}
	})
	read := 0
	caughtUp := func() {
		ix.once.Do(func() {
			close(ix.caughtUp)
			logger.Info("alert index rebuilt", "alerts", read, "window", ix.window, "took", time.Since(started).Round(time.Millisecond))
		})
	}
	if len(behind) == 0 {
		caughtUp()
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets})

	var wg sync.WaitGroup
	defer wg.Wait()
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	wg.Go(func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				ix.sweep()
			}
		}
	})
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			logger.Warn("alert index: fetch failed", "topic", t, "partition", p, "err", err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			if ix.record(r) {
				read++
			}
			if end, ok := behind[r.Partition]; ok && r.Offset+1 >= end {
				delete(behind, r.Partition)
				if len(behind) == 0 {
					caughtUp()
				}
			}
		})
	}
}

// record learns an alert read from the log and reports whether it was
// one. This gateway's own writes are known already: they cost a lookup.
func (ix *AlertIndex) record(r *kgo.Record) bool {
	e, err := eventlog.FromRecord(r)
	if err != nil || e.Type != events.TypeAlertDetected {
		return false
	}
	ix.mu.Lock()
	d := ix.devices[string(r.Key)]
	known := false
	if d != nil {
		_, known = d.byID[e.ID]
	}
	ix.mu.Unlock()
	if !known {
		ix.learn(string(r.Key), []string{e.ID}, []uint64{ix.sum(e.Data)}, r.Timestamp)
	}
	return true
}

// startOffsets lists, per partition, the first offset written within the
// window and the end offset, retrying until the topic answers.
func (ix *AlertIndex) startOffsets(ctx context.Context, adm *kadm.Client, topic string, logger *slog.Logger) (from, ends kadm.ListedOffsets, err error) {
	b := retry.New(100*time.Millisecond, 2*time.Second)
	for {
		from, err = adm.ListOffsetsAfterMilli(ctx, ix.now().Add(-ix.window).UnixMilli(), topic)
		if err == nil {
			err = from.Error()
		}
		if err == nil {
			ends, err = adm.ListEndOffsets(ctx, topic)
			if err == nil {
				err = ends.Error()
			}
		}
		if err == nil {
			return from, ends, nil
		}
		if ctx.Err() != nil {
			return nil, nil, nil
		}
		logger.Warn("alert index: cannot list offsets; retrying", "topic", topic, "err", err)
		if retry.Wait(ctx, b.NextBackOff()) != nil {
			return nil, nil, nil
		}
	}
}

// WaitCaughtUp returns once Follow has read every alert that was in the
// log when it started.
func (ix *AlertIndex) WaitCaughtUp(ctx context.Context) error {
	select {
	case <-ix.caughtUp:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("alert index not caught up: %w", ctx.Err())
	}
}
