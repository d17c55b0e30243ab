// Package ratelimit holds the decaying per-key limits of the portal (a
// budget of events that refills at a steady rate) and the key that groups
// a source address into one client: an IPv4 address, an IPv6 /64.
package ratelimit

import (
	"net/netip"
	"sync"
	"time"
)

// maxKeys bounds the memory of a Limiter: a flood of made-up keys (every
// address of an IPv6 block, invented login IDs) cannot exhaust it.
const maxKeys = 100000

// Limiter allows a key Burst events at once and one more every Every
// after that (a generic cell rate algorithm: per key, the time at which its
// budget is full again). A key that stops sending events frees up at that
// steady rate; nothing is ever blocked for longer than Burst × Every. It
// lives in memory.
type Limiter struct {
	burst int
	every time.Duration

	mu   sync.Mutex
	full map[string]time.Time // when the key's budget is whole again
}

// New returns a limiter of burst events, refilled one every every.
func New(burst int, every time.Duration) *Limiter {
	return &Limiter{burst: max(burst, 1), every: every, full: map[string]time.Time{}}
}

// Wait is how long key must wait before its next event, counting
// nothing: 0 when it may have one now.
func (l *Limiter) Wait(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waitLocked(key, now)
}

func (l *Limiter) waitLocked(key string, now time.Time) time.Duration {
	f, ok := l.full[key]
	if !ok || !f.After(now) {
		return 0
	}
	return max(f.Sub(now)-time.Duration(l.burst-1)*l.every, 0)
}

// Add counts an event of key, whether it had to wait or not. A key at its
// limit stays there (the count never exceeds the burst), so that it frees
// up at the steady rate once its events stop.
func (l *Limiter) Add(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.addLocked(key, now)
}

func (l *Limiter) addLocked(key string, now time.Time) {
	if len(l.full) >= maxKeys {
		for k, f := range l.full {
			if !f.After(now) {
				delete(l.full, k)
			}
		}
		if len(l.full) >= maxKeys {
			clear(l.full)
		}
	}
	f := l.full[key]
	if f.Before(now) {
		f = now
	}
	f = f.Add(l.every)
	if top := now.Add(time.Duration(l.burst) * l.every); f.After(top) {
		f = top
	}
	l.full[key] = f
}

// Take counts an event of key if it may have one now, and otherwise
// returns how long it must wait (counting nothing).
func (l *Limiter) Take(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d := l.waitLocked(key, now); d > 0 {
		return d
	}
	l.addLocked(key, now)
	return 0
}

// Client is the key of a source address as one client: an IPv4 address as
// it is, an IPv6 address as its /64 (one customer's network gets a /64 or
// more, and can pick any address in it), an IPv4-mapped IPv6 address as
// the IPv4 address. Anything else (no address at all) is returned as is.
func Client(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.String()
}
