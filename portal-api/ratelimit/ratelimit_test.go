package ratelimit_test

import (
	"testing"
	"time"

	"github.com/mimamori/mimamori/portal-api/ratelimit"
)

func TestClient(t *testing.T) {
	for _, c := range []struct{ addr, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"", ""},
	} {
		if got := ratelimit.Client(c.addr); got != c.want {
			t.Errorf("Client(%q) = %q, want %q", c.addr, got, c.want)
		}
	}
}

// A burst at once, then one every period; a key at its limit frees up at
// the steady rate however many events it sent; keys are apart.
func TestLimiterDecays(t *testing.T) {
	l := ratelimit.New(3, 10*time.Second)
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for i := range 3 {
		if got := l.Take("a", t0); got != 0 {
			t.Fatalf("event %d of the burst waits %s", i+1, got)
		}
	}
	if got := l.Take("a", t0); got != 10*time.Second {
		t.Fatalf("past the burst: wait %s, want 10s", got)
	}
	if got := l.Wait("b", t0); got != 0 {
		t.Fatalf("another key waits %s", got)
	}
	for range 100 {
		l.Add("a", t0) // counted past the limit: held at it, not further
	}
	if got := l.Wait("a", t0.Add(10*time.Second)); got != 0 {
		t.Fatalf("a period later: wait %s, want 0", got)
	}
	if got := l.Take("a", t0.Add(15*time.Second)); got != 0 {
		t.Fatalf("a period and a half later: wait %s, want 0", got)
	}
	if got := l.Take("a", t0.Add(15*time.Second)); got != 5*time.Second {
		t.Fatalf("then: wait %s, want 5s", got)
	}
	if got := l.Wait("a", t0.Add(time.Minute)); got != 0 {
		t.Fatalf("a minute later: wait %s", got)
	}
}
