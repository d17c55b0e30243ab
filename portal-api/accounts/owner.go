package accounts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/events/retry"
)

// owner is the single writer of the accounts: it claims the writer role
// (fencing an owner before it), rebuilds the State from the accounts
// topic, serialises the commands of each customer and keeps login IDs
// unique across customers, and publishes the events of a command so that
// the next command sees them.
type owner struct {
	now   func() time.Time
	pub   Publisher
	state *State
	tail  *eventlog.Tail
	log   *slog.Logger
	lat   latencies

	mu      sync.Mutex
	locks   map[string]*sync.Mutex // one per customer: commands never race
	loginMu sync.Mutex             // login IDs are unique across customers
	ready   chan struct{}
	fenced  atomic.Bool
}

func newOwner(now func() time.Time, pub Publisher, tail *eventlog.Tail, logger *slog.Logger) *owner {
	return &owner{now: now, pub: pub, state: newStateAt(now), tail: tail, log: logger,
		locks: map[string]*sync.Mutex{}, ready: make(chan struct{})}
}

// lock takes the lock of a customer's commands, and returns its unlock.
func (o *owner) lock(customerID string) func() {
	o.mu.Lock()
	m := o.locks[customerID]
	if m == nil {
		m = &sync.Mutex{}
		o.locks[customerID] = m
	}
	o.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// lockLoginIDs takes the lock of the login IDs of every customer, under
// which a command checks an ID is free and takes it; it returns its
// unlock.
func (o *owner) lockLoginIDs() func() {
	o.loginMu.Lock()
	return o.loginMu.Unlock
}

// claim makes the publisher the single writer, if it is a Claimer,
// trying until it succeeds; false when ctx ended first.
func (o *owner) claim(ctx context.Context) bool {
	c, ok := o.pub.(Claimer)
	if !ok {
		return true
	}
	b := retry.New(time.Second, 5*time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := c.Claim(cctx)
		cancel()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		o.log.Warn("accounts: claiming the writer role", "err", err)
		if retry.Wait(ctx, b.NextBackOff()) != nil {
			return false
		}
	}
}

// follow applies the accounts topic to the state until ctx ends, handing
// each event applied to applied; done receives the tail's end. It returns
// once the state has caught up with the log (and closes ready), or ctx
// ended first (false).
func (o *owner) follow(ctx context.Context, applied func(events.Envelope)) (done <-chan error, caughtUp bool) {
	d := make(chan error, 1)
	go func() {
		d <- o.tail.Run(ctx, func(r *kgo.Record, e events.Envelope) {
			if err := o.state.Apply(e); err != nil {
				o.log.Warn("accounts event skipped", "partition", r.Partition, "offset", r.Offset, "err", err)
				return
			}
			applied(e)
		})
	}()
	for {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := o.tail.WaitCaughtUp(wctx)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return d, false
		}
		o.log.Warn("accounts: catching up with the log", "err", err)
	}
	close(o.ready)
	return d, true
}

// applyWait bounds how long a command waits for the tail to deliver the
// events it wrote.
const applyWait = 5 * time.Second

// publish writes the events and returns once the state holds them, so the
// next command of the customer sees them. The tail applies them, in log
// order: an event another writer put before them (an operator's unlock)
// is applied first, exactly as an owner rebuilding from the log will.
// Only if the tail does not deliver them in time (or ctx ends) are they
// applied at once (the tail's copy is then skipped by event ID).
func (o *owner) publish(ctx context.Context, ps ...events.Payload) error {
	_, err := o.publishIDs(ctx, ps...)
	return err
}

// publishIDs is publish, and returns the IDs of the events it wrote.
func (o *owner) publishIDs(ctx context.Context, ps ...events.Payload) ([]string, error) {
	start := time.Now()
	now := o.now()
	envs := make([]events.Envelope, 0, len(ps))
	ids := make([]string, 0, len(ps))
	for _, p := range ps {
		e, err := events.New(Source, p, now)
		if err != nil {
			return nil, err
		}
		envs = append(envs, e)
		ids = append(ids, e.ID)
	}
	if o.fenced.Load() {
		return nil, ErrNotOwner
	}
	if err := o.pub.Publish(ctx, envs...); err != nil {
		if errors.Is(err, eventlog.ErrFenced) {
			if !o.fenced.Swap(true) {
				o.log.Error("accounts: another process took over the accounts; this one writes nothing more", "err", err)
			}
			return nil, fmt.Errorf("%w (%w)", ErrNotOwner, err)
		}
		return nil, fmt.Errorf("accounts: publish: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, applyWait)
	err := o.state.waitApplied(wctx, ids)
	cancel()
	if err == nil {
		o.lat.add(time.Since(start))
		return ids, nil
	}
	lagged := ctx.Err() == nil
	if lagged {
		o.log.Warn("accounts: the tail is behind; applying own events at once", "wait", applyWait)
	}
	for _, e := range envs {
		if err := o.state.Apply(e); err != nil {
			return nil, err
		}
	}
	if lagged { // a slow write is one an unknown user's failure must mimic too
		o.lat.add(time.Since(start))
	}
	return ids, nil
}

func (o *owner) pendingRequest(id string) (events.AccountRequested, bool) {
	o.state.mu.RLock()
	defer o.state.mu.RUnlock()
	r, ok := o.state.requests[id]
	if !ok {
		return events.AccountRequested{}, false
	}
	return *r, true
}

// latencies are the durations of the owner's last writes (a produce and
// its tail's apply). A login failure that writes nothing (an unknown user,
// a locked account) waits one of them, drawn at random, so that it takes
// as long as a wrong password, which writes login_failed: the two draw
// from the same distribution, not merely the same mean.
type latencies struct {
	mu   sync.Mutex
	ring [32]time.Duration
	n    int // filled slots
	next int
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.ring[l.next] = d
	l.next = (l.next + 1) % len(l.ring)
	l.n = min(l.n+1, len(l.ring))
	l.mu.Unlock()
}

// sample is one of the recent durations, or 0 before the first write.
func (l *latencies) sample() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == 0 {
		return 0
	}
	return l.ring[rand.IntN(l.n)]
}

// spinLast is the end of a wait that is spun rather than slept: a timer
// of an idle process wakes up to a millisecond late, longer than a write
// to an in-process broker takes.
const spinLast = 1500 * time.Microsecond

// wait waits for a sample, or until ctx ends.
func (l *latencies) wait(ctx context.Context) {
	d := l.sample()
	end := time.Now().Add(d)
	if d > spinLast {
		t := time.NewTimer(d - spinLast)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	for ctx.Err() == nil && time.Now().Before(end) {
		runtime.Gosched()
	}
}
