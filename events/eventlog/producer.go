package eventlog

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
)

// Producer publishes envelopes to their topics with acks=all and
// idempotent writes, so a retried produce never duplicates a record.
type Producer struct {
	cl  *kgo.Client
	cfg Config
}

// NewProducer connects a producer.
func NewProducer(cfg Config, extra ...kgo.Opt) (*Producer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := append(cfg.ClientOpts(),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(cfg.Linger),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	)
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	return &Producer{cl: cl, cfg: cfg}, nil
}

// Publish writes the envelopes and returns once the broker acknowledged
// every one of them, or the first error. Each envelope goes to the topic
// of its type.
func (p *Producer) Publish(ctx context.Context, envs ...events.Envelope) error {
	recs := make([]*kgo.Record, 0, len(envs))
	for _, e := range envs {
		base, ok := events.TopicOf(e.Type)
		if !ok {
			return fmt.Errorf("publish %s: %w %q", e.ID, events.ErrUnknownType, e.Type)
		}
		recs = append(recs, ToRecord(p.cfg.Topic(base), e))
	}
	return p.cl.ProduceSync(ctx, recs...).FirstErr()
}

// Ping checks that a broker answers.
func (p *Producer) Ping(ctx context.Context) error { return p.cl.Ping(ctx) }

// Client exposes the underlying client (for admin calls sharing the connection).
func (p *Producer) Client() *kgo.Client { return p.cl }

// Close flushes nothing (Publish is synchronous) and closes the connection.
func (p *Producer) Close() { p.cl.Close() }

// EnsureTopics creates every mimamori topic that does not exist yet, with
// the configured partitions and replication factor.
func EnsureTopics(ctx context.Context, cl *kgo.Client, cfg Config) error {
	adm := kadm.NewClient(cl)
	names := make([]string, 0, len(events.AllTopics()))
	for _, t := range events.AllTopics() {
		names = append(names, cfg.Topic(t))
	}
	resp, err := adm.CreateTopics(ctx, cfg.Partitions, cfg.Replication, nil, names...)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}
