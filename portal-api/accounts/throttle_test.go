package accounts

import (
	"errors"
	"testing"
	"time"
)

func newTestThrottles(t *testing.T, cfg Config) *throttles {
	t.Helper()
	cfg.defaults()
	return newThrottles(cfg)
}

// A login ID gets its free failures, then waits a delay that doubles with
// each failure, whether it names an account or not and in whatever letter
// case it is typed; a right password forgets the delays.
func TestThrottlesDelayALoginID(t *testing.T) {
	thr := newTestThrottles(t, Config{FreeFailures: 2, ThrottleBase: time.Second})
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	fail := func(id string) {
		t.Helper()
		f, err := thr.checkLogin(id, "192.0.2.1", now)
		if err != nil {
			t.Fatalf("login of %s refused: %v", id, err)
		}
		f()
	}
	fail("Alice")
	fail("alice")
	_, err := thr.checkLogin("ALICE", "198.51.100.7", now) // the delay is the ID's, from any address
	var we *WaitError
	if !errors.As(err, &we) || !errors.Is(err, ErrThrottled) || we.Wait != time.Second {
		t.Fatalf("after the free failures: %v, want ErrThrottled waiting 1s", err)
	}
	now = now.Add(time.Second)
	fail("alice")
	_, err = thr.checkLogin("alice", "192.0.2.1", now.Add(time.Second))
	if !errors.As(err, &we) || we.Wait != time.Second {
		t.Fatalf("a second past the next failure: %v, want a delay of 2s with 1s to go", err)
	}
	if _, err := thr.checkLogin("bob", "192.0.2.1", now); err != nil {
		t.Fatalf("another login ID: %v", err)
	}
	thr.loginPassed("ALICE")
	if _, err := thr.checkLogin("alice", "192.0.2.1", now); err != nil {
		t.Fatalf("after a right password: %v", err)
	}
}

// A source address past its own free failures never refuses by itself,
// but starts the delays of the login IDs it fails at once; another
// address of the same IPv6 /64 is the same source.
func TestThrottlesHotAddressStartsDelaysAtOnce(t *testing.T) {
	thr := newTestThrottles(t, Config{FreeFailures: 3, IPFreeFailures: 2, IPFailureDecay: time.Hour})
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for i, id := range []string{"u1", "u2"} {
		f, err := thr.checkLogin(id, "2001:db8::1", now)
		if err != nil {
			t.Fatalf("failure %d: %v", i, err)
		}
		f()
	}
	f, err := thr.checkLogin("u3", "2001:db8::2", now)
	if err != nil {
		t.Fatalf("a hot address refused by itself: %v", err)
	}
	f()
	if _, err := thr.checkLogin("u3", "192.0.2.1", now); !errors.Is(err, ErrThrottled) {
		t.Fatalf("one failure from a hot address: %v, want the delay at once", err)
	}
	if _, err := thr.checkLogin("u1", "192.0.2.1", now); err != nil {
		t.Fatalf("a failure from the address before it was hot: %v", err)
	}
}

// A login ID gets ResetsPerID mails an hour; a source address
// ResetsPerIP requests, and past them only the first mail of the hour of
// each login ID.
func TestThrottlesCapResets(t *testing.T) {
	thr := newTestThrottles(t, Config{ResetsPerID: 2, ResetsPerIP: 3})
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		id, ip string
		want   bool
	}{
		{"alice", "192.0.2.1", true},
		{"Alice", "192.0.2.2", true},
		{"alice", "192.0.2.3", false}, // the ID's cap
		{"bob", "192.0.2.1", true},
		{"carol", "192.0.2.1", true}, // the address's third
		{"dave", "192.0.2.1", true},  // past the address's cap: dave's first of the hour
		{"dave", "192.0.2.1", false},
		{"dave", "192.0.2.9", true}, // another address
	}
	for i, tt := range tests {
		if got := thr.resetAllowed(tt.id, tt.ip, now); got != tt.want {
			t.Fatalf("request %d (%s from %s): allowed %v, want %v", i, tt.id, tt.ip, got, tt.want)
		}
	}
	if !thr.resetAllowed("alice", "192.0.2.4", now.Add(resetWindow)) {
		t.Fatal("an hour later the login ID is refused still")
	}
}

// An account gets a code once per SMSInterval while the last is unused,
// and SMSPerDay a day; a number typed into enrolments SMSPerPhone a day,
// whichever account asks, login codes left out. A refused send counts
// nothing.
func TestThrottlesCapSMS(t *testing.T) {
	thr := newTestThrottles(t, Config{SMSInterval: time.Minute, SMSPerDay: 3, SMSPerPhone: 2})
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	const phone = "+819012345678"
	if err := thr.takeSMS("ac_1", smsEnrol, phone, now); err != nil {
		t.Fatal(err)
	}
	var we *WaitError
	if err := thr.takeSMS("ac_1", smsLogin, phone, now.Add(time.Second)); !errors.As(err, &we) || !errors.Is(err, ErrSMSThrottled) ||
		we.Wait != time.Minute-time.Second {
		t.Fatalf("a second code at once: %v, want ErrSMSThrottled for 59s", err)
	}
	thr.smsUsed("ac_1")
	if err := thr.takeSMS("ac_1", smsLogin, phone, now.Add(time.Second)); err != nil {
		t.Fatalf("after the code was entered: %v", err)
	}
	if err := thr.takeSMS("ac_2", smsEnrol, phone, now); err != nil {
		t.Fatal(err)
	}
	if err := thr.takeSMS("ac_3", smsEnrol, phone, now); !errors.Is(err, ErrSMSPhoneThrottled) {
		t.Fatalf("a third enrolment of the number: %v, want ErrSMSPhoneThrottled", err)
	}
	if err := thr.takeSMS("ac_3", smsLogin, phone, now); err != nil {
		t.Fatalf("a login code to the number, for an account the refusal counted nothing against: %v", err)
	}
	later := now.Add(2 * time.Minute)
	if err := thr.takeSMS("ac_1", smsLogin, phone, later); err != nil {
		t.Fatal(err)
	}
	if err := thr.takeSMS("ac_1", smsLogin, phone, later.Add(time.Hour)); !errors.Is(err, ErrSMSThrottled) {
		t.Fatalf("a fourth code of the day: %v, want ErrSMSThrottled", err)
	}
	if err := thr.takeSMS("ac_1", smsLogin, phone, now.Add(24*time.Hour)); err != nil {
		t.Fatalf("a day after the first: %v", err)
	}
}
