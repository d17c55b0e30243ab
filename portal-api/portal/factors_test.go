package portal_test

import (
	"context"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimamori/mimamori/analytics/chtest"
	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/portal-api/accounts"
	"github.com/mimamori/mimamori/portal-api/portal"
)

// withClickHouse gives the portal a database of the shared test server,
// which the operator's routes need.
func withClickHouse(t *testing.T) func(*portal.Deps) {
	return func(d *portal.Deps) {
		conn, db := chtest.Database(t)
		d.Conn, d.Database, d.Registry = conn, db, prometheus.NewRegistry()
	}
}

// appCode is a code of the app half a minute on: a step the account has
// not used yet.
func (e *env) appCode(secret string) string {
	e.t.Helper()
	e.clock.Add(30 * time.Second)
	code, err := totp.GenerateCode(secret, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return code
}

// An operator account cannot decline 2-step verification at its first
// login (the principal says the factor is required) nor turn it off from
// the settings, even with the password and a code.
func TestOperatorKeepsTheSecondFactor(t *testing.T) {
	e := newEnv(t)
	_, ops := e.activeCustomer("ops@keep.example", "keep-admin")
	if _, err := accounts.RequestAccount(context.Background(), e.prod, e.svc.State(), ops, events.RoleOperator, "bootstrap", e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	id, tmp := e.newMail("ops@keep.example", 1)
	op, r := e.login(id, tmp)
	want(t, r, 200, "")
	const pw = "a long enough passphrase of the operator"
	want(t, op.do("POST", "/api/v1/login/credentials", map[string]string{"login_id": "keep-operator", "password": pw}), 200, "")
	want(t, op.do("POST", "/api/v1/2fa/decline", map[string]string{}), 403, "operator_needs_second_factor")
	if me := op.do("GET", "/api/v1/me", nil); me.body["stage"] != accounts.StageChooseFactor || me.body["second_factor_required"] != true {
		t.Fatalf("after the refused decline: %s, want choose_second_factor with second_factor_required", me.raw)
	}
	secret, _ := e.enrolTOTP(op)
	want(t, op.do("POST", "/api/v1/account/reauthenticate", map[string]string{"password": pw, "code": e.appCode(secret)}), 200, "")
	want(t, op.do("POST", "/api/v1/account/second-factor/disable", map[string]string{}), 403, "operator_needs_second_factor")
	if f, n := factorState(t, op); f != events.FactorTOTP || n != 10 {
		t.Fatalf("the operator's factor after the refusals: %s with %d codes", f, n)
	}
	// A customer administrator still may: the rule is the operators'.
	admin, adminPW := e.activeClient("b@keep.example", "keep-customer")
	r = admin.do("GET", "/api/v1/me", nil)
	if r.body["second_factor_required"] != false {
		t.Fatalf("a customer administrator: %s", r.raw)
	}
	adminSecret, _ := e.enrolTOTP(admin)
	want(t, admin.do("POST", "/api/v1/account/reauthenticate", map[string]string{"password": adminPW, "code": e.appCode(adminSecret)}), 200, "")
	want(t, admin.do("POST", "/api/v1/account/second-factor/disable", map[string]string{}), 200, "")
}

// An operator cannot lift the lock of their own account through the
// operator's API; a lock ends the locked operator's sessions, and another
// operator lifts it.
func TestOperatorCannotUnlockTheirOwnAccount(t *testing.T) {
	e := newEnv(t, withClickHouse(t))
	_, op, ops, opAcc := e.operator()
	own := "/api/v1/operator/customers/" + ops + "/accounts/" + opAcc + "/unlock"
	want(t, op.do("POST", own, map[string]string{}), 403, "own_account")
	// A second operator, with an app of its own.
	if _, err := accounts.RequestAccount(context.Background(), e.prod, e.svc.State(), ops, events.RoleOperator, "bootstrap", e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	id, tmp := e.newMail("ops@mimamori.example", 2)
	second, r := e.login(id, tmp)
	want(t, r, 200, "")
	const pw2 = "a long enough passphrase of the second operator"
	want(t, second.do("POST", "/api/v1/login/credentials", map[string]string{"login_id": "ops-second", "password": pw2}), 200, "")
	secret, _ := e.enrolTOTP(second)

	// Failed logins lock the first operator: its session ends.
	for range 10 {
		e.clock.Add(16 * time.Minute)
		want(t, op.do("GET", "/api/v1/me", nil), 200, "") // until the lock
		_, r := e.login("ops-operator", "not the operator's password")
		want(t, r, 401, "invalid_credentials")
	}
	if a, _ := e.svc.State().Account(opAcc); !a.Locked {
		t.Fatal("the operator is not locked after 10 failed logins")
	}
	want(t, op.do("POST", own, map[string]string{}), 401, "login_required")
	for _, ev := range e.records(events.TopicAccounts) {
		if p, err := events.Decode(ev); err == nil {
			if v, ok := p.(*events.AccountUnlocked); ok {
				t.Fatalf("an unlock was written: %+v", v)
			}
		}
	}
	second, r = e.login("ops-second", pw2)
	want(t, r, 200, "")
	want(t, second.do("POST", "/api/v1/login/second-factor", map[string]string{"code": e.appCode(secret)}), 200, "")
	want(t, second.do("POST", own, map[string]string{}), 200, "")
	waitFor(t, func() bool { a, _ := e.svc.State().Account(opAcc); return !a.Locked })
}

// Turning 2-step verification off, replacing it and new recovery codes
// need the current factor as well as the password; every
// re-authentication gives the session a new identifier and ends the old
// one.
func TestReauthenticationNeedsTheCurrentFactorAndRotatesTheSession(t *testing.T) {
	e := newEnv(t)
	c, pw := e.activeClient("a@reauth-rotates.example", "rotate-user")
	secret, _ := e.enrolTOTP(c)
	old := c.cookie
	r := c.do("POST", "/api/v1/account/reauthenticate", map[string]string{"password": pw})
	want(t, r, 200, "")
	if c.cookie == old || c.cookie == "" || r.body["second_factor_checked"] != false {
		t.Fatalf("the password alone: %s (cookie rotated: %v)", r.raw, c.cookie != old)
	}
	want(t, (&client{e: e, cookie: old}).do("GET", "/api/v1/me", nil), 401, "login_required")
	want(t, c.do("POST", "/api/v1/account/second-factor/disable", map[string]string{}), 403, "second_factor_code_required")
	want(t, c.do("POST", "/api/v1/account/recovery-codes", map[string]string{}), 403, "second_factor_code_required")
	want(t, c.do("POST", "/api/v1/2fa/totp/enrol", map[string]any{"replace": true}), 403, "second_factor_code_required")
	want(t, c.do("POST", "/api/v1/2fa/sms/enrol", map[string]any{"phone": "+819012345678", "replace": true}), 403, "second_factor_code_required")
	if n := len(e.sms.Messages()); n != 0 {
		t.Fatalf("%d text messages sent for a refused replacement", n)
	}
	want(t, c.do("POST", "/api/v1/account/reauthenticate", map[string]string{"password": pw, "code": "000000"}), 403, "invalid_code")

	old = c.cookie
	r = c.do("POST", "/api/v1/account/reauthenticate", map[string]string{"password": pw, "code": e.appCode(secret)})
	want(t, r, 200, "")
	if c.cookie == old || r.body["second_factor_checked"] != true {
		t.Fatalf("the password and a code: %s (cookie rotated: %v)", r.raw, c.cookie != old)
	}
	want(t, (&client{e: e, cookie: old}).do("GET", "/api/v1/me", nil), 401, "login_required")
	want(t, c.do("POST", "/api/v1/account/second-factor/disable", map[string]string{}), 200, "")
	if f, _ := factorState(t, c); f != events.FactorNone {
		t.Fatalf("factor %s after turning it off", f)
	}
}

// An SMS login code completes the login attempt it was sent for, not
// another login of the same account.
func TestSMSLoginCodeBoundToItsLoginAttempt(t *testing.T) {
	e := newEnv(t)
	c, pw := e.activeClient("a@sms-attempt.example", "attempt-user")
	want(t, c.do("POST", "/api/v1/2fa/sms/enrol", map[string]string{"phone": "+819012345678"}), 202, "")
	want(t, c.do("POST", "/api/v1/2fa/sms/verify", map[string]string{"code": e.lastSMS()}), 200, "")
	mine, r := e.login("attempt-user", pw)
	want(t, r, 200, "")
	theirs, r := e.from("127.0.0.2").loginAs("attempt-user", pw)
	want(t, r, 200, "")
	want(t, mine.do("POST", "/api/v1/login/second-factor/sms", map[string]string{}), 202, "")
	code := e.lastSMS()
	want(t, theirs.do("POST", "/api/v1/login/second-factor", map[string]string{"code": code}), 401, "invalid_code")
	r = mine.do("POST", "/api/v1/login/second-factor", map[string]string{"code": code})
	want(t, r, 200, "")
	if r.body["account"].(map[string]any)["stage"] != accounts.StageActive {
		t.Fatalf("the attempt the code was sent for: %s", r.raw)
	}
}

// loginAs logs c in.
func (c *client) loginAs(loginID, password string) (*client, reply) {
	return c, c.do("POST", "/api/v1/login", map[string]string{"login_id": loginID, "password": password})
}
