package eventlog_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
)

// TestTxProducerFencesTheOlderWriter: a second process claiming the same
// transactional ID becomes the only writer; the first one's next publish
// fails with ErrFenced and nothing of it reaches readers. A tail over the
// transactional topic still catches up (its last entries are transaction
// markers, not records).
func TestTxProducerFencesTheOlderWriter(t *testing.T) {
	_, cfg := newBroker(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	claim := func() *eventlog.TxProducer {
		p, err := eventlog.NewTxProducer(cfg, "t-owner")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		if err := p.Claim(ctx); err != nil {
			t.Fatal(err)
		}
		return p
	}
	first := claim()
	before := alertEnvelope(t, "dv_a")
	if err := first.Publish(ctx, before, alertEnvelope(t, "dv_b")); err != nil {
		t.Fatal(err)
	}
	second := claim()
	late := alertEnvelope(t, "dv_c")
	if err := first.Publish(ctx, late); !errors.Is(err, eventlog.ErrFenced) {
		t.Fatalf("the fenced writer's publish: %v, want ErrFenced", err)
	}
	after := alertEnvelope(t, "dv_d")
	if err := second.Publish(ctx, after); err != nil {
		t.Fatal(err)
	}

	tail, err := eventlog.NewTail(cfg, []string{cfg.Topic(events.TopicAlerts)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	tctx, tcancel := context.WithCancel(ctx)
	defer tcancel()
	go tail.Run(tctx, func(_ *kgo.Record, e events.Envelope) {
		mu.Lock()
		seen[e.ID] = true
		mu.Unlock()
	})
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := tail.WaitCaughtUp(wctx); err != nil {
		t.Fatalf("tail over a transactional topic: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 || !seen[before.ID] || !seen[after.ID] || seen[late.ID] {
		t.Fatalf("readers saw %d events (fenced write seen: %v), want the 3 committed ones", len(seen), seen[late.ID])
	}
}

// A consumer group over a topic written in transactions hands its handler
// the data records only and commits past the transaction markers: once it
// has consumed everything its lag is 0, not one per marker.
func TestConsumerCommitsPastTransactionMarkers(t *testing.T) {
	_, cfg := newBroker(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := eventlog.NewTxProducer(cfg, "t-owner")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Claim(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 6
	for range n {
		if err := p.Publish(ctx, alertEnvelope(t, "dv_same")); err != nil {
			t.Fatal(err)
		}
	}
	topic := cfg.Topic(events.TopicAlerts)
	var mu sync.Mutex
	got, control := 0, 0
	cctx, ccancel := context.WithCancel(ctx)
	c, err := eventlog.NewConsumer(cfg, eventlog.ConsumerConfig{Group: "g-tx", Topics: []string{topic}},
		func(_ context.Context, recs []*kgo.Record) error {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range recs {
				if r.Attrs.IsControl() {
					control++
				}
				got++
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(cctx) }()
	adm := kadm.NewClient(p.Client())
	for {
		lags, err := adm.Lag(ctx, "g-tx")
		if err != nil {
			t.Fatal(err)
		}
		total := int64(-1)
		for _, l := range lags {
			if l.FetchErr == nil && l.DescribeErr == nil && len(l.Lag[topic]) > 0 {
				total = l.Lag.Total()
			}
		}
		mu.Lock()
		finished := got == n && total == 0
		mu.Unlock()
		if finished {
			break
		}
		if ctx.Err() != nil {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("handler got %d records, group lag %d; want %d and 0", got, total, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ccancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if control != 0 {
		t.Fatalf("the handler was given %d transaction markers", control)
	}
}
