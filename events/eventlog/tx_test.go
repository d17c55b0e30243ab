package eventlog_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

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
