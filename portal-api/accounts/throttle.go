package accounts

import (
	"context"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"
)

// limiter counts consecutive failures per key (a login ID, known or not)
// and, past a free allowance, makes the key wait an exponentially growing
// delay after each failure. It lives in memory: a restart forgets the
// delays, never the hard locks (those are events).
type limiter struct {
	free    int           // failures allowed without delay
	base    time.Duration // first delay
	maxWait time.Duration

	mu   sync.Mutex
	keys map[string]*failures
}

type failures struct {
	n    int
	last time.Time
}

func newLimiter(free int, base, maxWait time.Duration) *limiter {
	return &limiter{free: free, base: base, maxWait: maxWait, keys: map[string]*failures{}}
}

// wait is how long key must wait before its next try: 0 when it may try
// now.
func (l *limiter) wait(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.keys[key]
	if f == nil || f.n < l.free {
		return 0
	}
	delay := min(l.base<<min(f.n-l.free, 20), l.maxWait)
	return max(f.last.Add(delay).Sub(now), 0)
}

// fail counts a failure of key; a hot one (from a source address past its
// own allowance) uses up the free failures at once.
func (l *limiter) fail(key string, now time.Time, hot bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.keys) > 100000 { // bounded: a flood of made-up names cannot exhaust memory
		clear(l.keys)
	}
	f := l.keys[key]
	if f == nil {
		f = &failures{}
		l.keys[key] = f
	}
	f.n++
	if hot {
		f.n = max(f.n, l.free)
	}
	f.last = now
}

func (l *limiter) reset(key string) {
	l.mu.Lock()
	delete(l.keys, key)
	l.mu.Unlock()
}

// window caps the events of a key (a login ID, a source address, an
// account, a phone number) within a sliding period, and can keep a minimum gap after the
// last one: reset mails and SMS codes, which cost the customer's mailbox
// or money rather than a guess. Like limiter it lives in memory.
type window struct {
	max int           // events within per
	per time.Duration // the sliding period
	gap time.Duration // after an event, before the next one (0: none)

	mu   sync.Mutex
	keys map[string]*recent
}

type recent struct {
	at    []time.Time // within per, oldest first
	noGap bool        // the last event was used up (a code entered): no gap after it
}

func newWindow(n int, per, gap time.Duration) *window {
	return &window{max: n, per: per, gap: gap, keys: map[string]*recent{}}
}

// waitLocked is how long key must wait before its next event: 0 when it
// may have one now.
func (w *window) waitLocked(key string, now time.Time) time.Duration {
	r := w.keys[key]
	if r == nil {
		return 0
	}
	r.prune(now, w.per)
	var d time.Duration
	if n := len(r.at); n >= w.max {
		d = r.at[n-w.max].Add(w.per).Sub(now)
	}
	if n := len(r.at); n > 0 && w.gap > 0 && !r.noGap {
		d = max(d, r.at[n-1].Add(w.gap).Sub(now))
	}
	return max(d, 0)
}

func (w *window) addLocked(key string, now time.Time) {
	if len(w.keys) > 100000 { // bounded: forget what has passed, and all if that is not enough
		for k, r := range w.keys {
			if r.prune(now, w.per); len(r.at) == 0 {
				delete(w.keys, k)
			}
		}
		if len(w.keys) > 100000 {
			clear(w.keys)
		}
	}
	r := w.keys[key]
	if r == nil {
		r = &recent{}
		w.keys[key] = r
	}
	r.at = append(r.at, now)
	r.noGap = false
}

// take counts an event of key if it may have one now, and otherwise
// returns how long it must wait.
func (w *window) take(key string, now time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if d := w.waitLocked(key, now); d > 0 {
		return d
	}
	w.addLocked(key, now)
	return 0
}

// takeFirst counts an event of key if it has had none within the period.
func (w *window) takeFirst(key string, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if r := w.keys[key]; r != nil {
		if r.prune(now, w.per); len(r.at) > 0 {
			return false
		}
	}
	w.addLocked(key, now)
	return true
}

// wait is how long key must wait before its next event, counting
// nothing: 0 when it may have one now.
func (w *window) wait(key string, now time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.waitLocked(key, now)
}

// used lifts the gap after the last event of key: its purpose was served
// (the code it sent was entered), so the next one is no repeat.
func (w *window) used(key string) {
	w.mu.Lock()
	if r := w.keys[key]; r != nil {
		r.noGap = true
	}
	w.mu.Unlock()
}

func (r *recent) prune(now time.Time, per time.Duration) {
	i := 0
	for i < len(r.at) && !r.at[i].Add(per).After(now) {
		i++
	}
	r.at = r.at[i:]
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
