package registry

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
)

// MaxCatchUpWait bounds how long Authenticate waits for the log after a miss.
const MaxCatchUpWait = 2 * time.Second

// Live is a State kept current by tailing the devices and accounts topics.
// A credential registered a moment ago may not have reached the tail yet,
// so a miss makes Authenticate wait for the tail to catch up (bounded, one
// catch-up in flight at a time) and look again: read-your-writes.
type Live struct {
	state *State
	tail  *eventlog.Tail
	log   *slog.Logger

	mu      sync.Mutex
	runCtx  context.Context // set by Run; catch-ups stop with it
	started uint64          // catch-ups started so far
	cur     *catchUp        // the catch-up in flight, if any
}

type catchUp struct {
	seq  uint64
	done chan struct{}
	err  error
}

// Topics are the full names of the topics the registry is rebuilt from.
func Topics(kcfg eventlog.Config) []string {
	return []string{kcfg.Topic(events.TopicDevices), kcfg.Topic(events.TopicAccounts)}
}

// NewLive connects a tail over the registry topics. Call Run to follow them.
func NewLive(kcfg eventlog.Config, logger *slog.Logger, extra ...kgo.Opt) (*Live, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tail, err := eventlog.NewTail(kcfg, Topics(kcfg), logger, extra...)
	if err != nil {
		return nil, err
	}
	return &Live{state: NewState(), tail: tail, log: logger, runCtx: context.Background()}, nil
}

// Run follows the topics until ctx ends. It closes the Kafka connection
// when it returns.
func (l *Live) Run(ctx context.Context) error {
	l.mu.Lock()
	l.runCtx = ctx
	l.mu.Unlock()
	return l.tail.Run(ctx, func(r *kgo.Record, e events.Envelope) {
		if err := l.state.Apply(e); err != nil {
			l.log.Warn("registry event skipped", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
		}
	})
}

// State is the registry as read so far.
func (l *Live) State() *State { return l.state }

// WaitCaughtUp returns once everything written before the call is applied
// (use at startup, before declaring the service ready).
func (l *Live) WaitCaughtUp(ctx context.Context) error { return l.tail.WaitCaughtUp(ctx) }

// Authenticate is State.Authenticate with read-your-writes: an unknown
// credential, or a device not yet assigned, is looked up once more after
// the tail has caught up with the log, waiting at most MaxCatchUpWait.
func (l *Live) Authenticate(ctx context.Context, token string) (deviceID, customerID string, err error) {
	deviceID, customerID, err = l.state.Authenticate(token)
	if !errors.Is(err, errUnknown) && !errors.Is(err, ErrForbidden) {
		return deviceID, customerID, err
	}
	wctx, cancel := context.WithTimeout(ctx, MaxCatchUpWait)
	defer cancel()
	if cerr := l.catchUp(wctx); cerr != nil {
		l.log.Debug("registry catch-up incomplete", "err", cerr)
	}
	return l.state.Authenticate(token)
}

// catchUp waits for a catch-up that started after the call: joining one
// already in flight would not cover a write acknowledged after it listed
// the end offsets. At most one catch-up runs at a time, however many
// requests miss, so a flood of bad credentials costs one offset listing at
// a time.
func (l *Live) catchUp(ctx context.Context) error {
	l.mu.Lock()
	arrived := l.started
	for {
		c := l.cur
		if c == nil {
			l.started++
			c = &catchUp{seq: l.started, done: make(chan struct{})}
			l.cur = c
			go l.runCatchUp(c, l.runCtx)
		}
		l.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if c.seq > arrived {
			return c.err
		}
		l.mu.Lock()
	}
}

// runCatchUp is bounded by MaxCatchUpWait, so it never outlives its
// callers by more than that.
func (l *Live) runCatchUp(c *catchUp, parent context.Context) {
	ctx, cancel := context.WithTimeout(parent, MaxCatchUpWait)
	defer cancel()
	err := l.tail.WaitCaughtUp(ctx)
	l.mu.Lock()
	c.err = err
	l.cur = nil
	l.mu.Unlock()
	close(c.done)
}

// PendingReboot is State.PendingReboot (ingest.Commands).
func (l *Live) PendingReboot(deviceID string) (string, bool) { return l.state.PendingReboot(deviceID) }

// CommandDelivered applies a delivery record this instance has just
// published, so its next heartbeat reply does not repeat the command while
// the tail has not read the record back yet (ingest.Commands). Applying
// it again from the tail changes nothing.
func (l *Live) CommandDelivered(e events.Envelope) error { return l.state.Apply(e) }
