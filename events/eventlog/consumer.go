package eventlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mimamori/mimamori/events/retry"
)

// Handler applies a batch of records. It must be idempotent: after a crash
// between the side effect and the offset commit, the same batch comes again.
type Handler func(ctx context.Context, recs []*kgo.Record) error

// ConsumerConfig configures a group consumer.
type ConsumerConfig struct {
	Group  string
	Topics []string // full topic names
	// MaxBatch bounds the records handed to the handler at once.
	MaxBatch int
	// FlushTimeout bounds how long the batch in flight may take to finish
	// after shutdown was asked for.
	FlushTimeout time.Duration
	// InstanceID, when set, makes the consumer a static group member: a
	// restart with the same ID takes its partitions back at once, where a
	// dynamic member's replacement waits for the dead session to expire.
	// Each replica needs its own stable ID.
	InstanceID string
	// Unfinished, when set, is for a handler whose side effects outlive
	// its batch (the notifier's retries): it returns, per topic and
	// partition, the offset of the oldest record whose work is not done.
	// Offsets are committed no further than that, and again every
	// second while nothing new arrives, as that work finishes; a restart
	// or a new owner reads those records again.
	Unfinished func() map[string]map[int32]int64
	Logger     *slog.Logger
}

// idleCommit is how often a consumer with Unfinished commits while no
// records arrive.
const idleCommit = time.Second

// Consumer reads topics as a member of a consumer group, hands batches to
// a handler and commits offsets only after the handler succeeded. A failing
// handler is retried with backoff; its batch is never skipped.
type Consumer struct {
	cl  *kgo.Client
	cfg ConsumerConfig
	h   Handler
}

// NewConsumer joins the group. Reading starts at the committed offsets, or
// at the beginning of each partition for a new group.
func NewConsumer(kcfg Config, cfg ConsumerConfig, h Handler, extra ...kgo.Opt) (*Consumer, error) {
	if err := kcfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Group == "" || len(cfg.Topics) == 0 {
		return nil, errors.New("consumer: group and topics are required")
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 5000
	}
	if cfg.FlushTimeout <= 0 {
		cfg.FlushTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	opts := append(kcfg.ClientOpts(),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers arrive as records: the handler never sees
		// them, but committing past them keeps a transactional topic's
		// lag at 0 once everything is consumed.
		kgo.KeepControlRecords(),
		// A member that died without leaving holds its partitions until
		// its session expires: keep that short so a crashed consumer's
		// replacement takes over within seconds, not the default 45 s.
		kgo.SessionTimeout(10*time.Second),
		kgo.HeartbeatInterval(time.Second),
		kgo.RebalanceTimeout(15*time.Second),
	)
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", cfg.Group, err)
	}
	return &Consumer{cl: cl, cfg: cfg, h: h}, nil
}

// Leave leaves the group without consuming, for a service that cannot
// start after all: a member that joined and never reads would otherwise
// hold its partitions until its session expires. Run must not be called
// after Leave.
func (c *Consumer) Leave() { c.cl.Close() }

// Run consumes until ctx ends. The batch in flight when ctx ends is
// finished (within FlushTimeout) and committed before Run returns.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.cl.Close()
	log := c.cfg.Logger.With("group", c.cfg.Group)
	for {
		fetches := c.poll(ctx)
		if fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				log.Warn("fetch failed", "topic", t, "partition", p, "err", err)
			}
		})
		if recs := fetches.Records(); len(recs) > 0 {
			if err := c.handle(ctx, recs, log); err != nil {
				c.cl.AllowRebalance()
				return err
			}
		} else if c.cfg.Unfinished != nil && ctx.Err() == nil {
			// Rebalances are blocked until AllowRebalance: the
			// partitions committed are still ours.
			if err := c.commit(ctx, nil); err != nil {
				log.Warn("offset commit failed", "err", err)
			}
		}
		c.cl.AllowRebalance()
		if ctx.Err() != nil {
			return nil
		}
	}
}

// ErrLeftForNextOwner is what a handler returns, wrapped, when shutdown
// came while it waited for something its batch needs, rather than hold
// the shutdown for it: the batch is not committed, so the next owner reads
// it again, and the consumer stops cleanly.
var ErrLeftForNextOwner = errors.New("batch left for the next owner at shutdown")

// handle runs the handler until it succeeds, then commits. After shutdown
// was asked for, it keeps trying until FlushTimeout and then gives up
// without committing: the batch will be read again by the next owner. A
// handler that gives its batch up itself (ErrLeftForNextOwner) is not
// retried, and that is no failure.
func (c *Consumer) handle(ctx context.Context, recs []*kgo.Record, log *slog.Logger) error {
	hctx, cancel := flushContext(ctx, c.cfg.FlushTimeout)
	defer cancel()
	data := make([]*kgo.Record, 0, len(recs))
	for _, r := range recs {
		if !r.Attrs.IsControl() {
			data = append(data, r)
		}
	}
	b := retry.New(100*time.Millisecond, 5*time.Second)
	for len(data) > 0 {
		err := c.h(hctx, data)
		if err == nil {
			break
		}
		if errors.Is(err, ErrLeftForNextOwner) && ctx.Err() != nil {
			log.Info("batch left uncommitted for the next owner", "records", len(data), "reason", err)
			return nil
		}
		wait := b.NextBackOff()
		log.Error("batch failed; retrying", "records", len(data), "err", err, "retry_in", wait)
		if retry.Wait(hctx, wait) != nil {
			return fmt.Errorf("consumer %s: batch of %d not applied before shutdown: %w", c.cfg.Group, len(data), err)
		}
	}
	if err := c.commit(hctx, recs); err != nil {
		// The side effect happened; the next owner re-applies the batch,
		// which the idempotent handler absorbs.
		log.Warn("offset commit failed", "err", err)
	}
	return nil
}

// poll waits for records; with Unfinished, at most idleCommit.
func (c *Consumer) poll(ctx context.Context) kgo.Fetches {
	if c.cfg.Unfinished == nil {
		return c.cl.PollRecords(ctx, c.cfg.MaxBatch)
	}
	pctx, cancel := context.WithTimeout(ctx, idleCommit)
	defer cancel()
	return c.cl.PollRecords(pctx, c.cfg.MaxBatch)
}

// commit commits the records handled. With Unfinished, it commits every
// partition polled so far up to its oldest unfinished record instead.
func (c *Consumer) commit(ctx context.Context, recs []*kgo.Record) error {
	if c.cfg.Unfinished == nil {
		return c.cl.CommitRecords(ctx, recs...)
	}
	held := c.cfg.Unfinished()
	committed := c.cl.CommittedOffsets()
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for t, ps := range c.cl.UncommittedOffsets() {
		for p, head := range ps {
			at := head
			if o, ok := held[t][p]; ok && o < at.Offset {
				at = kgo.EpochOffset{Epoch: -1, Offset: o}
			}
			if prev, ok := committed[t][p]; ok && at.Offset <= prev.Offset {
				continue
			}
			if offsets[t] == nil {
				offsets[t] = map[int32]kgo.EpochOffset{}
			}
			offsets[t][p] = at
		}
	}
	if len(offsets) == 0 {
		return nil
	}
	var rerr error
	c.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			rerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					rerr = err
					return
				}
			}
		}
	})
	return rerr
}

// flushContext is not cancelled when parent is; once parent ends, it ends
// after grace. This lets the batch in flight finish on shutdown.
func flushContext(parent context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	stop := context.AfterFunc(parent, func() {
		t := time.AfterFunc(grace, cancel)
		context.AfterFunc(ctx, func() { t.Stop() })
	})
	return ctx, func() { stop(); cancel() }
}
