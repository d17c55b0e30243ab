package ingest

import (
	"sync"
	"time"
)

// limiter is a token bucket of alerts per device: a bucket holds at most
// burst alerts and refills at rate alerts a second. It counts alerts, not
// requests, so a device cannot flood by packing 1,000 alerts a request.
// Buckets live as long as the process, one per device that authenticated
// (a registered device, so their number is bounded by the registry).
type limiter struct {
	rate, burst float64 // rate 0: no limit

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(rate float64, burst int) *limiter {
	if rate <= 0 {
		return &limiter{}
	}
	return &limiter{rate: rate, burst: float64(burst), buckets: map[string]*bucket{}}
}

// take admits n alerts of a device at now and returns 0, or returns how
// long the device should wait before it sends them, taking nothing. A
// request is admitted when the bucket holds its n alerts, or is full: so a
// request larger than the burst still passes (the bucket then goes below
// zero and the device waits for the refill), and no request is refused
// for good.
func (l *limiter) take(device string, n int, now time.Time) time.Duration {
	return l.reserve(device, n, now, true)
}

// check is take without taking: whether n alerts would pass now.
func (l *limiter) check(device string, n int, now time.Time) time.Duration {
	return l.reserve(device, n, now, false)
}

func (l *limiter) reserve(device string, n int, now time.Time, consume bool) time.Duration {
	if l.rate == 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[device]
	if b == nil {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[device] = b
	}
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(l.burst, b.tokens+d.Seconds()*l.rate)
		b.at = now
	}
	need := min(float64(n), l.burst)
	if b.tokens < need {
		return time.Duration((need - b.tokens) / l.rate * float64(time.Second))
	}
	if consume {
		b.tokens -= float64(n)
	}
	return 0
}
