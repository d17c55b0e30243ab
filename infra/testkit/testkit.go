// Package testkit is the test support every package's tests share: an
// embedded Kafka broker, waiting on a condition (never on a sleep), and a
// clock the test moves.
package testkit

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimamori/mimamori/events/eventlog"
)

// Kafka starts the embedded broker (a real Kafka protocol broker, kfake)
// for one test, persisting to a test folder with the given partitions per
// topic, and returns it with the client settings that reach it under the
// topic prefix. The broker closes when the test ends.
func Kafka(t testing.TB, partitions int32, prefix string) (*eventlog.Broker, eventlog.Config) {
	t.Helper()
	b, err := eventlog.StartBroker(eventlog.BrokerConfig{Dir: t.TempDir(), Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b, eventlog.Config{Brokers: b.Addrs(), Partitions: partitions, Replication: 1, TopicPrefix: prefix}
}

// A wait looks at its condition again after firstPoll, then twice as long
// each time up to maxPoll: quick for what is nearly there, light on a
// database polled for what takes seconds.
const (
	firstPoll = 5 * time.Millisecond
	maxPoll   = 100 * time.Millisecond
)

// WaitUntil returns as soon as cond holds, checking it ever less often, and
// fails the test naming what it waited for if cond still does not hold
// after within.
func WaitUntil(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	WaitFor(t, within, what, func() (bool, string) { return cond(), "" })
}

// WaitFor is WaitUntil for a condition that also says where it stands
// ("3 of 5 mails"): a failure reports its last word beside what was
// awaited.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	if err := Await(within, what, cond); err != nil {
		t.Fatal(err)
	}
}

// Await is the wait itself, for a caller outside the test goroutine (which
// must not call t.Fatal): it returns an error naming what it waited for,
// and for how long, when cond still does not hold after within.
func Await(within time.Duration, what string, cond func() (bool, string)) error {
	deadline := time.Now().Add(within)
	for wait := firstPoll; ; wait = min(2*wait, maxPoll) {
		ok, state := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			if state != "" {
				return fmt.Errorf("waited %s for %s; last: %s", within, what, state)
			}
			return fmt.Errorf("waited %s for %s", within, what)
		}
		time.Sleep(wait)
	}
}

// Clock is a time the test sets and moves, safe for the goroutines of the
// code under test to read. The zero Clock stands at the Unix epoch.
type Clock struct{ ns atomic.Int64 }

// NewClock returns a clock standing at t.
func NewClock(t time.Time) *Clock {
	c := &Clock{}
	c.Set(t)
	return c
}

// Now is the clock's time, in UTC; pass it where the code takes a Now func.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
