package eventlog

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
)

// Tail reads whole topics from the beginning, outside any consumer group,
// and keeps following them. Services use it to rebuild in-memory state
// from the log (the ingest gateway's credential table), and replay uses
// it to read everything written so far.
type Tail struct {
	cl     *kgo.Client
	adm    *kadm.Client
	topics []string
	log    *slog.Logger

	mu       sync.Mutex
	pos      map[string]map[int32]int64 // next offset to read
	progress chan struct{}              // closed and replaced on every advance
}

// NewTail connects a tail over the full topic names.
func NewTail(kcfg Config, topics []string, logger *slog.Logger, extra ...kgo.Opt) (*Tail, error) {
	if err := kcfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := append(kcfg.ClientOpts(),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers arrive as records, so the tail's position
		// passes them and WaitCaughtUp can reach the end of a topic
		// written in transactions; Run never hands them to apply.
		kgo.KeepControlRecords(),
	)
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("tail %v: %w", topics, err)
	}
	return &Tail{cl: cl, adm: kadm.NewClient(cl), topics: topics, log: logger,
		pos: map[string]map[int32]int64{}, progress: make(chan struct{})}, nil
}

// Run hands every event to apply, in partition order, until ctx ends.
// Records that are not CloudEvents are logged and skipped.
func (t *Tail) Run(ctx context.Context, apply func(*kgo.Record, events.Envelope)) error {
	defer t.cl.Close()
	for {
		fetches := t.cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			t.log.Warn("tail fetch failed", "topic", topic, "partition", p, "err", err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Attrs.IsControl() {
				return
			}
			e, err := FromRecord(r)
			if err != nil {
				t.log.Warn("skipping record", "err", err)
			} else {
				apply(r, e)
			}
		})
		t.mu.Lock()
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			m := t.pos[p.Topic]
			if m == nil {
				m = map[int32]int64{}
				t.pos[p.Topic] = m
			}
			m[p.Partition] = p.Records[len(p.Records)-1].Offset + 1
		})
		close(t.progress)
		t.progress = make(chan struct{})
		t.mu.Unlock()
	}
}

// ReadToEnd hands apply every event committed to topics (full names)
// before the call, then stops: a one-off read of state from the log
// (`mimamori account list`, the CLI's registry checks, tests). When it
// returns, apply has returned for the last time. ctx bounds the whole read.
func ReadToEnd(ctx context.Context, kcfg Config, topics []string, logger *slog.Logger, apply func(*kgo.Record, events.Envelope)) error {
	t, err := NewTail(kcfg, topics, logger)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- t.Run(rctx, apply) }()
	err = t.WaitCaughtUp(ctx)
	cancel()
	if rerr := <-done; err == nil {
		err = rerr
	}
	return err
}

// WaitCaughtUp returns once everything committed to the topics before the
// call has been applied: read-your-writes for state rebuilt from the log.
// It waits for the last stable offsets, so a transaction still open is
// waited for until it ends; positions count transaction markers too.
func (t *Tail) WaitCaughtUp(ctx context.Context) error {
	ends, err := t.adm.ListCommittedOffsets(ctx, t.topics...)
	if err != nil {
		return fmt.Errorf("list last stable offsets: %w", err)
	}
	if err := ends.Error(); err != nil {
		return fmt.Errorf("list last stable offsets: %w", err)
	}
	began, said := time.Now(), time.Now()
	for {
		t.mu.Lock()
		var behind []string
		ends.Each(func(o kadm.ListedOffset) {
			if at := t.pos[o.Topic][o.Partition]; o.Offset > 0 && at < o.Offset {
				behind = append(behind, fmt.Sprintf("%s/%d at %d of %d", o.Topic, o.Partition, at, o.Offset))
			}
		})
		wait := t.progress
		t.mu.Unlock()
		if len(behind) == 0 {
			return nil
		}
		if time.Since(said) >= 10*time.Second {
			said = time.Now()
			t.log.Warn("tail still catching up", "waited", time.Since(began).Round(time.Second), "behind", behind)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("tail not caught up: %w", ctx.Err())
		case <-wait:
		case <-time.After(time.Second):
		}
	}
}
