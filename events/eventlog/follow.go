package eventlog

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
)

// Follow is the loop of a service whose consumer group decides on state
// rebuilt from other topics (the watchdog, the notifier): it runs tail,
// handing every event to apply; once the tail has read everything written
// before the start it runs cons, and calls tick every interval, until cons
// returns (ctx ended, or it failed). If the tail cannot catch up, cons
// leaves its group without consuming.
//
// The tail outlives ctx until cons has returned: the batch cons finishes
// on shutdown may still wait for state the tail brings.
func Follow(ctx context.Context, tail *Tail, apply func(*kgo.Record, events.Envelope), cons *Consumer,
	interval time.Duration, tick func(context.Context)) error {
	tctx, tcancel := context.WithCancel(context.WithoutCancel(ctx))
	tailDone := make(chan error, 1)
	go func() { tailDone <- tail.Run(tctx, apply) }()
	defer func() { tcancel(); <-tailDone }()
	if err := tail.WaitCaughtUp(ctx); err != nil {
		cons.Leave()
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("read state topics: %w", err)
	}
	consDone := make(chan error, 1)
	go func() { consDone <- cons.Run(ctx) }()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case err := <-consDone:
			return err
		case <-t.C:
			if ctx.Err() == nil {
				tick(ctx)
			}
		}
	}
}
