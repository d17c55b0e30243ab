// Package retry is the platform's one retry policy: capped exponential
// backoff with full jitter, a server's Retry-After first, and waits that
// end with their context. It sits under events/, the one tree the
// appliance, the services and the portal all import, though it holds no
// event types and imports no infrastructure.
package retry

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// MaxRetryAfter bounds a server's Retry-After, so a wrong header cannot
// park a client for days.
const MaxRetryAfter = time.Hour

// Backoff is capped exponential backoff with full jitter: the n-th wait
// (from 0) is uniform in [0, min(cap, base·2^n)], so clients that failed
// together do not come back together. The ceilings come from the
// library's ExponentialBackOff without its own jitter, which is only ±x%
// around the ceiling. It implements backoff.BackOff; like the library's,
// it is not safe for concurrent use.
type Backoff struct {
	exp backoff.ExponentialBackOff
}

var _ backoff.BackOff = (*Backoff)(nil)

// New returns the policy's backoff from base up to cap; a base above cap
// is cap.
func New(base, cap time.Duration) *Backoff {
	b := &Backoff{exp: backoff.ExponentialBackOff{
		InitialInterval: min(base, cap),
		Multiplier:      2,
		MaxInterval:     cap,
	}}
	b.Reset()
	return b
}

// NextBackOff is the next wait.
func (b *Backoff) NextBackOff() time.Duration {
	ceil := b.exp.NextBackOff()
	if ceil <= 0 {
		return 0
	}
	return rand.N(ceil + 1)
}

// Reset starts again from base.
func (b *Backoff) Reset() { b.exp.Reset() }

// Next is the wait before the next attempt: the server's retryAfter when
// it sent one (> 0), otherwise b's next wait. b advances either way, so
// the attempts count the same whoever chose the wait.
func Next(b backoff.BackOff, retryAfter time.Duration) time.Duration {
	d := b.NextBackOff()
	if retryAfter > 0 {
		return retryAfter
	}
	return d
}

// Wait waits d, or until ctx ends, and then returns ctx's error.
func Wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// RetryAfter parses a Retry-After header, seconds or an HTTP date (taken
// relative to now), at most MaxRetryAfter; 0 if absent, unreadable or
// past.
func RetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	}
	if d <= 0 {
		return 0
	}
	return min(d, MaxRetryAfter)
}
