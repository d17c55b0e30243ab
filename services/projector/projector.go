// Package projector feeds the ClickHouse projections from the event log:
// it reads the appliance, device and account topics as one consumer group,
// batch-inserts what it read and commits offsets only after the insert
// succeeded. The inserts are idempotent, so a batch applied twice after a
// crash changes no number anyone sees.
package projector

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
)

// Group is the consumer group of the projector.
const Group = "mimamori-projector"

// Topics are the base names of the topics projected into ClickHouse.
func Topics() []string {
	return []string{events.TopicAlerts, events.TopicHeartbeats, events.TopicDevices, events.TopicAccounts, events.TopicNotifications, events.TopicOperations}
}

// Applier writes a batch of events into the projections, idempotently.
type Applier interface {
	Apply(ctx context.Context, batch []events.Envelope) error
}

// Config tunes the projector.
type Config struct {
	Group    string // Group when empty
	MaxBatch int    // records per insert, 20000 when zero
	// FlushTimeout bounds finishing the batch in flight on shutdown.
	FlushTimeout time.Duration
	// InstanceID makes the projector a static group member (see
	// eventlog.ConsumerConfig.InstanceID).
	InstanceID string
}

// Projector is the running consumer.
type Projector struct {
	c       *eventlog.Consumer
	log     *slog.Logger
	applied prometheus.Counter
	skipped prometheus.Counter
	batchS  prometheus.Histogram
	lag     prometheus.Gauge
}

// New joins the projector group. reg may be nil.
func New(cfg Config, kcfg eventlog.Config, w Applier, logger *slog.Logger, reg prometheus.Registerer) (*Projector, error) {
	if w == nil {
		return nil, errors.New("projector: no projection writer")
	}
	if cfg.Group == "" {
		cfg.Group = Group
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 20000
	}
	p := &Projector{
		log: logger,
		applied: prometheus.NewCounter(prometheus.CounterOpts{Name: "mimamori_projector_events_applied_total",
			Help: "Events written to ClickHouse (a redelivered event counts again)."}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "mimamori_projector_records_skipped_total",
			Help: "Records that are not CloudEvents and were skipped."}),
		batchS: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mimamori_projector_batch_seconds",
			Help: "Time to write one batch to ClickHouse.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mimamori_projector_last_event_age_seconds",
			Help: "Age of the newest event in the last batch written."}),
	}
	if reg != nil {
		reg.MustRegister(p.applied, p.skipped, p.batchS, p.lag)
	}
	topics := make([]string, 0, len(Topics()))
	for _, t := range Topics() {
		topics = append(topics, kcfg.Topic(t))
	}
	h := func(ctx context.Context, recs []*kgo.Record) error {
		batch := make([]events.Envelope, 0, len(recs))
		for _, r := range recs {
			e, err := eventlog.FromRecord(r)
			if err != nil {
				p.skipped.Inc()
				logger.Warn("skipping record", "err", err)
				continue
			}
			batch = append(batch, e)
		}
		start := time.Now()
		if err := w.Apply(ctx, batch); err != nil {
			return err
		}
		p.batchS.Observe(time.Since(start).Seconds())
		p.applied.Add(float64(len(batch)))
		if n := len(recs); n > 0 {
			p.lag.Set(time.Since(recs[n-1].Timestamp).Seconds())
		}
		return nil
	}
	c, err := eventlog.NewConsumer(kcfg, eventlog.ConsumerConfig{Group: cfg.Group, Topics: topics,
		MaxBatch: cfg.MaxBatch, FlushTimeout: cfg.FlushTimeout, InstanceID: cfg.InstanceID, Logger: logger}, h,
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return nil, err
	}
	p.c = c
	return p, nil
}

// Run projects until ctx ends, then finishes and commits the batch in flight.
func (p *Projector) Run(ctx context.Context) error {
	p.log.Info("projector started")
	defer p.log.Info("projector stopped")
	return p.c.Run(ctx)
}
