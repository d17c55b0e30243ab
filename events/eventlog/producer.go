package eventlog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

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
	recs, err := records(p.cfg, envs)
	if err != nil {
		return err
	}
	return p.cl.ProduceSync(ctx, recs...).FirstErr()
}

// records makes each envelope a record of the topic of its type.
func records(cfg Config, envs []events.Envelope) ([]*kgo.Record, error) {
	recs := make([]*kgo.Record, 0, len(envs))
	for _, e := range envs {
		base, ok := events.TopicOf(e.Type)
		if !ok {
			return nil, fmt.Errorf("publish %s: %w %q", e.ID, events.ErrUnknownType, e.Type)
		}
		recs = append(recs, ToRecord(cfg.Topic(base), e))
	}
	return recs, nil
}

// Ping checks that a broker answers.
func (p *Producer) Ping(ctx context.Context) error { return p.cl.Ping(ctx) }

// Client exposes the underlying client (for admin calls sharing the connection).
func (p *Producer) Client() *kgo.Client { return p.cl }

// Close flushes nothing (Publish is synchronous) and closes the connection.
func (p *Producer) Close() { p.cl.Close() }

// ErrFenced means another process started with the same transactional ID:
// it is now the only writer, and this producer can write nothing more.
var ErrFenced = errors.New("fenced: another process took over this writer")

// TxProducer writes each Publish in a Kafka transaction under a fixed
// transactional ID, which makes its process the single writer of what it
// owns: a second process starting with the same ID fences the first
// (Kafka's zombie fencing), whose next Publish fails with ErrFenced and
// writes nothing. Readers must read committed records only (Tail and
// Consumer do).
type TxProducer struct {
	mu  sync.Mutex // one transaction at a time
	cl  *kgo.Client
	cfg Config
}

// NewTxProducer connects a transactional producer. Call Claim before
// reading the state it will write on.
func NewTxProducer(cfg Config, transactionalID string, extra ...kgo.Opt) (*TxProducer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if transactionalID == "" {
		return nil, errors.New("kafka transactional producer: empty transactional ID")
	}
	opts := append(cfg.ClientOpts(),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.TransactionalID(transactionalID),
		// A process that dies inside a transaction holds read-committed
		// readers back until the broker aborts it (or the next owner
		// claims): keep that short. Transactions here last milliseconds.
		kgo.TransactionTimeout(10*time.Second),
	)
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka transactional producer: %w", err)
	}
	return &TxProducer{cl: cl, cfg: cfg}, nil
}

// Claim registers the transactional ID with the broker, fencing any other
// process that held it and ending (committing or aborting) its open
// transaction. What was written before Claim returns is final, so state
// read after it is complete.
func (p *TxProducer) Claim(ctx context.Context) error {
	if _, _, err := p.cl.ProducerID(ctx); err != nil {
		return fenced(fmt.Errorf("claim transactional ID: %w", err))
	}
	return nil
}

// Publish writes the envelopes in one transaction: all of them are
// committed, or none is visible to readers.
func (p *TxProducer) Publish(ctx context.Context, envs ...events.Envelope) error {
	recs, err := records(p.cfg, envs)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.cl.BeginTransaction(); err != nil {
		return fenced(fmt.Errorf("begin transaction: %w", err))
	}
	// Ending the transaction has a context of its own: a caller that gave
	// up (a closed request) must not leave it open, which would hold every
	// read-committed reader of the topic back until it times out.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		_ = p.cl.AbortBufferedRecords(ectx)
		if aerr := p.cl.EndTransaction(ectx, kgo.TryAbort); aerr != nil {
			return fenced(fmt.Errorf("produce: %w (abort: %v)", err, aerr))
		}
		return fenced(fmt.Errorf("produce: %w", err))
	}
	if err := p.cl.EndTransaction(ectx, kgo.TryCommit); err != nil {
		return fenced(fmt.Errorf("commit transaction: %w", err))
	}
	return nil
}

// Client exposes the underlying client (for admin calls sharing the connection).
func (p *TxProducer) Client() *kgo.Client { return p.cl }

// Close closes the connection.
func (p *TxProducer) Close() { p.cl.Close() }

// fenced adds ErrFenced to errors that say another producer took the
// transactional ID over.
func fenced(err error) error {
	if errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
		return fmt.Errorf("%w: %w", ErrFenced, err)
	}
	return err
}
