package accounts_test

import (
	"context"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/portal-api/accounts"
)

var reResetToken = regexp.MustCompile(`/reset#token=(\S+)`)

// locks counts the lock and unlock events of the accounts topic.
func (e *env) locks() (locked, unlocked int) {
	e.t.Helper()
	for _, p := range e.topic() {
		switch p.(type) {
		case *events.AccountLocked:
			locked++
		case *events.AccountUnlocked:
			unlocked++
		}
	}
	return locked, unlocked
}

// Anyone who knows a user ID can lock its account with ten wrong
// passwords; its holder gets it back without an operator: the lock lifts
// itself an hour after it was written (no event: every owner, a restarted
// one too, reads the same lift from the lock's time), and a password reset
// lifts it at once. The failures stay counted: after the lift the next one
// locks the account again (a right password clears them).
func TestLockLiftsItself(t *testing.T) {
	e := newEnv(t)
	clk := &clock{now: time.Now()}
	cfg := accounts.Config{Now: clk.Now, FreeFailures: 100}
	svc, stop := e.owner(cfg, &accounts.SMSSink{})
	ctx := context.Background()
	_, id, pw := e.register("a@lift.example")
	fail := func(svc *accounts.Service) {
		t.Helper()
		if _, err := svc.Login(ctx, id, "not the password at all", "192.0.2.1"); !errors.Is(err, accounts.ErrInvalidCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
	}
	refused := func(svc *accounts.Service, password string) {
		t.Helper()
		if _, err := svc.Login(ctx, id, password, "192.0.2.1"); !errors.Is(err, accounts.ErrInvalidCredentials) {
			t.Fatalf("locked account: %v, want the refusal of a wrong password", err)
		}
	}
	for range 10 {
		fail(svc)
	}
	clk.Add(accounts.LockDuration - time.Minute)
	refused(svc, pw)

	stop() // a restarted owner reads the same lock
	svc, _ = e.owner(cfg, &accounts.SMSSink{})
	refused(svc, pw)
	clk.Add(2 * time.Minute)
	// Lifted, but the failures stay counted: the next one locks again.
	fail(svc)
	if a, _ := svc.State().ByLogin(id); !a.Locked {
		t.Fatal("a failure after the lift does not lock the account again")
	}
	clk.Add(accounts.LockDuration + time.Minute)
	if _, err := svc.Login(ctx, id, pw, "192.0.2.1"); err != nil {
		t.Fatalf("an hour after the second lock: %v", err)
	}
	if l, u := e.locks(); l != 2 || u != 0 {
		t.Fatalf("%d lock and %d unlock events, want the two locks only", l, u)
	}

	for range 10 {
		fail(svc)
	}
	if a, _ := svc.State().ByLogin(id); !a.Locked {
		t.Fatal("ten failures after a right password do not lock the account")
	}
	// A reset proves the mailbox: the lock has done its work.
	svc.RequestReset(id, "192.0.2.1")
	var token string
	e.waitFor(func() bool {
		for _, m := range e.box.Messages() {
			if sub := reResetToken.FindStringSubmatch(m.Body); sub != nil {
				token = sub[1]
				return true
			}
		}
		return false
	})
	const newPW = "a brand new passphrase 27"
	if _, err := svc.ConfirmReset(ctx, token, newPW, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Login(ctx, id, newPW, "192.0.2.1"); err != nil {
		t.Fatalf("after a reset of the locked account: %v", err)
	}
}
