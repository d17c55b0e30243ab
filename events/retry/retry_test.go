package retry

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestBackoffFullJitterWithinCappedCeiling(t *testing.T) {
	tests := []struct {
		name      string
		base, cap time.Duration
		want      []time.Duration // ceilings of the first waits; then cap
	}{
		{"doubling to the cap", 100 * time.Millisecond, 2 * time.Second,
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond, 2 * time.Second}},
		{"cap not a power of two of base", 10 * time.Millisecond, 50 * time.Millisecond,
			[]time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 50 * time.Millisecond}},
		{"base above cap", time.Second, 300 * time.Millisecond, []time.Duration{300 * time.Millisecond}},
		{"zero", 0, 0, []time.Duration{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ceil := func(n int) time.Duration {
				if n < len(tt.want) {
					return tt.want[n]
				}
				return tt.cap
			}
			var top []time.Duration // the largest wait seen at each attempt
			for range 200 {
				b := New(tt.base, tt.cap)
				for n := range 100 {
					d := b.NextBackOff()
					if d < 0 || d > ceil(n) {
						t.Fatalf("wait %d = %v, want within [0, %v]", n, d, ceil(n))
					}
					if n >= len(top) {
						top = append(top, 0)
					}
					top[n] = max(top[n], d)
				}
			}
			// Full jitter reaches well above half its ceiling, which ±x%
			// jitter around half the ceiling would not.
			for n, d := range top[:len(tt.want)] {
				if d < ceil(n)*3/4 {
					t.Errorf("largest wait %d = %v in 200 tries, want near %v", n, d, ceil(n))
				}
			}
		})
	}
}

func TestBackoffFullJitterReachesZero(t *testing.T) {
	low := 0
	for range 1000 {
		if New(time.Second, time.Second).NextBackOff() < 100*time.Millisecond {
			low++
		}
	}
	if low == 0 {
		t.Fatal("no wait below a tenth of the ceiling in 1000 tries, want about 100 (full jitter starts at 0)")
	}
}

func TestBackoffHugeAttemptsStayCapped(t *testing.T) {
	b := New(time.Nanosecond, 5*time.Minute)
	for n := range 10000 {
		if d := b.NextBackOff(); d < 0 || d > 5*time.Minute {
			t.Fatalf("wait %d = %v, want within [0, 5m]", n, d)
		}
	}
}

func TestResetStartsAgain(t *testing.T) {
	b := New(time.Millisecond, time.Hour)
	for range 30 {
		b.NextBackOff()
	}
	b.Reset()
	if d := b.NextBackOff(); d > time.Millisecond {
		t.Fatalf("first wait after Reset = %v, want at most 1ms", d)
	}
}

// Its Retry-After wins over the backoff, and the backoff advances anyway.
func TestNextRetryAfterPrecedence(t *testing.T) {
	b := New(10*time.Millisecond, time.Hour)
	if got := Next(b, 7*time.Second); got != 7*time.Second {
		t.Fatalf("Next with Retry-After 7s = %v, want 7s", got)
	}
	if got := Next(b, 0); got > 20*time.Millisecond {
		t.Fatalf("Next without Retry-After after one attempt = %v, want at most 20ms", got)
	}
	if got := Next(b, 0); got > 40*time.Millisecond {
		t.Fatalf("Next without Retry-After after two attempts = %v, want at most 40ms", got)
	}
}

func TestWait(t *testing.T) {
	if err := Wait(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Wait = %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Wait(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait(0) on an ended context = %v, want Canceled", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Wait(ctx, time.Hour) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait(1h) cancelled = %v, want Canceled", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := Wait(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait(1h) past a deadline = %v, want DeadlineExceeded", err)
	}
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		h    string
		want time.Duration
	}{
		{"", 0}, {"0", 0}, {"-3", 0}, {"junk", 0}, {"5", 5 * time.Second},
		{"999999999999", time.Hour},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-30 * time.Second).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := RetryAfter(tt.h, now); got != tt.want {
			t.Errorf("RetryAfter(%q) = %v, want %v", tt.h, got, tt.want)
		}
	}
}
