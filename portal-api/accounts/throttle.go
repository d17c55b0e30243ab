package accounts

import (
	"sync"
	"time"
)

// limiter counts consecutive failures per key (a login ID, known or not,
// or a source address) and, past a free allowance, makes the key wait an
// exponentially growing delay after each failure. It lives in memory: a
// restart forgets the delays, never the hard locks (those are events).
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

// allowed says whether key may try now.
func (l *limiter) allowed(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.keys[key]
	if f == nil || f.n < l.free {
		return true
	}
	wait := l.base << min(f.n-l.free, 20)
	return !now.Before(f.last.Add(min(wait, l.maxWait)))
}

func (l *limiter) fail(key string, now time.Time) {
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
	f.last = now
}

func (l *limiter) reset(key string) {
	l.mu.Lock()
	delete(l.keys, key)
	l.mu.Unlock()
}
