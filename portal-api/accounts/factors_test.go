package accounts_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/portal-api/accounts"
)

// mailed waits for the n-th mail with temporary credentials to an address
// (1 the first) and returns them.
func (e *env) mailed(to string, n int) (loginID, password string) {
	e.t.Helper()
	e.waitFor(func() bool {
		seen := 0
		for _, m := range e.box.Messages() {
			if len(m.To) == 1 && m.To[0] == to && strings.Contains(m.Body, "Temporary password") {
				if seen++; seen == n {
					loginID, password = reTempID.FindStringSubmatch(m.Body)[1], reTempPW.FindStringSubmatch(m.Body)[1]
					return true
				}
			}
		}
		return false
	})
	return loginID, password
}

// publish writes an event as another writer (an older binary, the
// command line) would.
func (e *env) publish(p events.Payload) {
	e.t.Helper()
	env, err := events.New("test", p, time.Now())
	if err == nil {
		err = e.prod.Publish(context.Background(), env)
	}
	if err != nil {
		e.t.Fatal(err)
	}
}

// first logs in with temporary credentials and chooses loginID and pw.
func first(t *testing.T, svc *accounts.Service, tempID, tempPW, loginID, pw string) accounts.Principal {
	t.Helper()
	ctx := context.Background()
	p, err := svc.Login(ctx, tempID, tempPW, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if p, err = svc.ChangeCredentials(ctx, p, loginID, pw); err != nil {
		t.Fatal(err)
	}
	return p
}

// enrolApp sets up an authenticator app and returns the principal after
// it, the secret and the recovery codes.
func enrolApp(t *testing.T, svc *accounts.Service, clk *clock, p accounts.Principal) (accounts.Principal, string, []string) {
	t.Helper()
	en, err := svc.BeginTOTP(p, false)
	if err != nil {
		t.Fatal(err)
	}
	code, _ := totp.GenerateCode(en.Secret, clk.Now())
	np, codes, err := svc.ConfirmTOTP(context.Background(), p, en.Secret, code, false, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	return np, en.Secret, codes
}

// appCode is a code of the app one step after the last, as its user would
// type it half a minute later.
func appCode(clk *clock, secret string) string {
	clk.Add(30 * time.Second)
	code, _ := totp.GenerateCode(secret, clk.Now())
	return code
}

// Operators keep 2-step verification: they cannot decline it at the first
// login, nor turn it off later, and an operator account that declined it
// before (an older version allowed it) is asked to set one up at its next
// login instead of being let in.
func TestOperatorsKeepTheirSecondFactor(t *testing.T) {
	e := newEnv(t)
	clk := &clock{now: time.Now()}
	svc, _ := e.owner(accounts.Config{Now: clk.Now}, &accounts.SMSSink{})
	ctx := context.Background()
	const to = "ops@factor.example"
	ops, _, _ := e.register(to)
	for range 2 {
		if _, err := accounts.RequestAccount(ctx, e.prod, svc.State(), ops, events.RoleOperator, "ac_bootstrap", clk.Now()); err != nil {
			t.Fatal(err)
		}
	}
	id, tmp := e.mailed(to, 2)
	const pw = "a long enough passphrase of an operator"
	p := first(t, svc, id, tmp, "ops-one", pw)
	if p.Stage != accounts.StageChooseFactor || !p.FactorRequired {
		t.Fatalf("operator after the first change: %+v, want choose_second_factor with the factor required", p)
	}
	before := len(e.topic())
	if _, err := svc.DeclineSecondFactor(ctx, p); !errors.Is(err, accounts.ErrOperatorNeedsFactor) {
		t.Fatalf("an operator declines: %v, want ErrOperatorNeedsFactor", err)
	}
	if n := len(e.topic()); n != before {
		t.Fatalf("the refused decline wrote %d events", n-before)
	}
	p, secret, _ := enrolApp(t, svc, clk, p)
	p, err := svc.Reauthenticate(ctx, p, pw, appCode(clk, secret), "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.DisableSecondFactor(ctx, p, "192.0.2.1"); !errors.Is(err, accounts.ErrOperatorNeedsFactor) {
		t.Fatalf("an operator turns it off: %v, want ErrOperatorNeedsFactor", err)
	}
	if a, _ := svc.State().Account(p.AccountID); a.Factor != events.FactorTOTP {
		t.Fatalf("the operator's factor is now %q", a.Factor)
	}

	// The second operator declined under an older version.
	id, tmp = e.mailed(to, 3)
	q := first(t, svc, id, tmp, "ops-two", pw)
	e.publish(&events.AccountSecondFactorChanged{CustomerID: ops, AccountID: q.AccountID, Method: events.FactorNone, ChangedAt: clk.Now()})
	e.waitFor(func() bool { a, _ := svc.State().Account(q.AccountID); return a.Factor == events.FactorNone })
	q, err = svc.Login(ctx, "ops-two", pw, "192.0.2.1")
	if err != nil || q.Stage != accounts.StageChooseFactor {
		t.Fatalf("login of an operator that declined before: %+v %v, want choose_second_factor", q, err)
	}
	if _, err := svc.BeginTOTP(q, false); err != nil {
		t.Fatalf("its enrolment: %v", err)
	}
}

// A hard lock ends every principal of the account (Current), like a
// change of its credentials, and they stay ended after the unlock; an
// operator cannot lift the lock of their own account.
func TestHardLockEndsEveryPrincipal(t *testing.T) {
	e := newEnv(t)
	svc, _ := e.owner(accounts.Config{FreeFailures: 100, IPFreeFailures: 100}, &accounts.SMSSink{})
	ctx := context.Background()
	cust, id, tmp := e.register("a@lock-ends.example")
	const pw = "a long enough passphrase of locks"
	p := first(t, svc, id, tmp, "lock-ends", pw)
	p, err := svc.DeclineSecondFactor(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	for range 9 {
		if _, err := svc.Login(ctx, "lock-ends", "not the password", "192.0.2.9"); !errors.Is(err, accounts.ErrInvalidCredentials) {
			t.Fatal(err)
		}
	}
	if _, ok := svc.Current(p); !ok {
		t.Fatal("the session ended before the lock")
	}
	_, _ = svc.Login(ctx, "lock-ends", "not the password", "192.0.2.9")
	if _, ok := svc.Current(p); ok {
		t.Fatal("the session stands after the hard lock")
	}

	before := len(e.topic())
	if err := accounts.Unlock(ctx, e.prod, cust, p.AccountID, p.AccountID, time.Now()); !errors.Is(err, accounts.ErrOwnAccount) {
		t.Fatalf("unlocking one's own account: %v, want ErrOwnAccount", err)
	}
	if n := len(e.topic()); n != before {
		t.Fatalf("the refused unlock wrote %d events", n-before)
	}
	if err := accounts.Unlock(ctx, e.prod, cust, p.AccountID, "ac_another_operator", time.Now()); err != nil {
		t.Fatal(err)
	}
	e.waitFor(func() bool { a, _ := svc.State().Account(p.AccountID); return !a.Locked })
	if _, ok := svc.Current(p); ok {
		t.Fatal("the session from before the lock stands again after the unlock")
	}
	if _, err := svc.Login(ctx, "lock-ends", pw, "192.0.2.1"); err != nil {
		t.Fatalf("a login after the unlock: %v", err)
	}
	if live, _ := svc.State().Account(p.AccountID); live.LockVersion != 1 {
		t.Errorf("lock version %d, want 1", live.LockVersion)
	}
	if rebuilt, _ := e.rebuild().Account(p.AccountID); rebuilt.LockVersion != 1 {
		t.Errorf("rebuilt lock version %d, want 1", rebuilt.LockVersion)
	}
}

// Operator accounts are issued to the operator's own organisation only
// (the customer of the first operator account): RequestAccount refuses
// one for any other customer and writes nothing, and a request written
// around it (by an older command line) is never issued. Unknown customers
// and roles are refused alike.
func TestOperatorRoleOnlyForTheOperatorsOrganisation(t *testing.T) {
	e := newEnv(t)
	svc, _ := e.owner(accounts.Config{}, &accounts.SMSSink{})
	ctx := context.Background()
	ops, _, _ := e.register("ops@org.example")
	other, _, _ := e.register("b@org.example")
	st := svc.State()
	before := len(e.topic())
	for _, c := range []struct {
		customer, role string
		want           error
	}{
		{"cu_nobody", events.RoleCustomerAdmin, accounts.ErrUnknownCustomer},
		{other, "superuser", accounts.ErrRoleInvalid},
	} {
		if _, err := accounts.RequestAccount(ctx, e.prod, st, c.customer, c.role, "ac_op", time.Now()); !errors.Is(err, c.want) {
			t.Errorf("request %s for %s: %v, want %v", c.role, c.customer, err, c.want)
		}
	}
	if _, err := accounts.RequestAccount(ctx, e.prod, st, ops, events.RoleOperator, "ac_bootstrap", time.Now()); err != nil {
		t.Fatal(err)
	}
	e.waitFor(func() bool { return len(st.Accounts(ops)) == 2 })
	if got := st.OperatorOrganisation(); got != ops {
		t.Fatalf("the operator's organisation is %q, want %s", got, ops)
	}
	before = len(e.topic())
	_, err := accounts.RequestAccount(ctx, e.prod, st, other, events.RoleOperator, "ac_op", time.Now())
	if !errors.Is(err, accounts.ErrOperatorElsewhere) || !strings.Contains(err.Error(), ops) {
		t.Fatalf("an operator account for another customer: %v, want ErrOperatorElsewhere naming %s", err, ops)
	}
	if n := len(e.topic()); n != before {
		t.Fatalf("the refused request wrote %d events", n-before)
	}

	// Written around the check; then a request the owner does issue.
	e.publish(&events.AccountRequested{CustomerID: other, RequestID: "rq_around", Role: events.RoleOperator, RequestedBy: "operator",
		RequestedAt: time.Now()})
	if _, err := accounts.RequestAccount(ctx, e.prod, st, other, events.RoleCustomerAdmin, "ac_op", time.Now()); err != nil {
		t.Fatal(err)
	}
	e.waitFor(func() bool { return len(st.Accounts(other)) == 2 })
	for _, s := range []*accounts.State{st, e.rebuild()} {
		for _, a := range s.Accounts(other) {
			if a.Role != events.RoleCustomerAdmin {
				t.Errorf("%s has an account with role %s", other, a.Role)
			}
		}
	}
	for _, p := range e.topic() {
		if v, ok := p.(*events.AccountIssued); ok && v.RequestID == "rq_around" {
			t.Errorf("the request written around the check was issued: %+v", v)
		}
	}
}

// Turning 2-step verification off, replacing it and new recovery codes
// need the password and a code of the current factor, checked by the
// owner: a re-authentication with the password alone admits none of them;
// a wrong code counts towards the lock; a recovery code passes once; the
// proof lasts ReauthWindow.
func TestReauthenticationWithTheCurrentFactor(t *testing.T) {
	e := newEnv(t)
	clk := &clock{now: time.Now()}
	svc, _ := e.owner(accounts.Config{Now: clk.Now}, &accounts.SMSSink{})
	ctx := context.Background()
	_, id, tmp := e.register("a@reauth-factor.example")
	const pw = "a long enough passphrase of factors"
	p, secret, codes := enrolApp(t, svc, clk, first(t, svc, id, tmp, "reauth-factor", pw))
	refused := func(what string, p accounts.Principal) {
		t.Helper()
		if _, err := svc.DisableSecondFactor(ctx, p, "192.0.2.1"); !errors.Is(err, accounts.ErrFactorCodeRequired) {
			t.Errorf("%s: turning it off: %v, want ErrFactorCodeRequired", what, err)
		}
		if _, err := svc.NewRecoveryCodes(ctx, p, "192.0.2.1"); !errors.Is(err, accounts.ErrFactorCodeRequired) {
			t.Errorf("%s: new recovery codes: %v, want ErrFactorCodeRequired", what, err)
		}
		if _, err := svc.BeginTOTP(p, true); !errors.Is(err, accounts.ErrFactorCodeRequired) {
			t.Errorf("%s: replacing it: %v, want ErrFactorCodeRequired", what, err)
		}
		if err := svc.BeginSMS(ctx, p, "+819012345678", true); !errors.Is(err, accounts.ErrFactorCodeRequired) {
			t.Errorf("%s: replacing it by SMS: %v, want ErrFactorCodeRequired", what, err)
		}
	}
	refused("no re-authentication", p)
	p, err := svc.Reauthenticate(ctx, p, pw, "", "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	refused("the password alone", p)
	if _, err := svc.Reauthenticate(ctx, p, pw, "000000", "192.0.2.1"); !errors.Is(err, accounts.ErrInvalidCode) {
		t.Fatalf("a wrong code: %v, want ErrInvalidCode", err)
	}
	if a, _ := svc.State().Account(p.AccountID); a.Failures != 1 {
		t.Fatalf("failures after a wrong code: %d, want 1", a.Failures)
	}
	if _, err := svc.Reauthenticate(ctx, p, "not the password", codes[0], "192.0.2.1"); !errors.Is(err, accounts.ErrWrongPassword) {
		t.Fatalf("a right code with a wrong password: %v, want ErrWrongPassword", err)
	}

	// A recovery code passes for the factor, once.
	withCode, err := svc.Reauthenticate(ctx, p, pw, strings.ToUpper(codes[0]), "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := svc.State().Account(p.AccountID); a.Failures != 0 || len(a.RecoveryHashes) != 9 {
		t.Fatalf("after a recovery code: failures %d, %d codes left; want 0 and 9", a.Failures, len(a.RecoveryHashes))
	}
	if _, err := svc.Reauthenticate(ctx, p, pw, codes[0], "192.0.2.1"); !errors.Is(err, accounts.ErrInvalidCode) {
		t.Fatalf("the spent recovery code again: %v, want ErrInvalidCode", err)
	}
	if _, err := svc.NewRecoveryCodes(ctx, withCode, "192.0.2.1"); err != nil {
		t.Fatalf("new recovery codes after the password and a code: %v", err)
	}
	clk.Add(accounts.ReauthWindow)
	refused("the window passed", withCode)

	// A code of the app, and it is off.
	p, err = svc.Reauthenticate(ctx, withCode, pw, appCode(clk, secret), "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if p, err = svc.DisableSecondFactor(ctx, p, "192.0.2.1"); err != nil {
		t.Fatalf("turning it off after the password and a code: %v", err)
	}
	if a, _ := svc.State().Account(p.AccountID); a.Factor != events.FactorNone {
		t.Fatalf("factor %q after turning it off", a.Factor)
	}
	// Without a factor there is no code to give, and enrolling again needs
	// the password only.
	if _, err := svc.Reauthenticate(ctx, p, pw, "123456", "192.0.2.1"); !errors.Is(err, accounts.ErrNoSecondFactor) {
		t.Fatalf("a code without a factor: %v, want ErrNoSecondFactor", err)
	}
	if _, err := svc.BeginTOTP(p, false); err != nil {
		t.Fatalf("setting it up again: %v", err)
	}
}

// An SMS code is bound to the login attempt it was sent for: another
// login of the same account (a second browser, someone else who has the
// password) cannot complete its step with it, while the attempt it was
// sent for can.
func TestSMSCodeCompletesOnlyItsLoginAttempt(t *testing.T) {
	e := newEnv(t)
	sms := &accounts.SMSSink{}
	svc, _ := e.owner(accounts.Config{}, sms)
	ctx := context.Background()
	_, id, tmp := e.register("a@sms-bound.example")
	const pw = "a long enough passphrase of sms codes"
	p := first(t, svc, id, tmp, "sms-bound", pw)
	lastCode := func() string {
		msgs := sms.Messages()
		return regexp.MustCompile(`\d{6}`).FindString(msgs[len(msgs)-1].Body)
	}
	if err := svc.BeginSMS(ctx, p, "+819012345678", false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.ConfirmSMS(ctx, p, lastCode(), false, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}

	mine, err := svc.Login(ctx, "sms-bound", pw, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := svc.Login(ctx, "sms-bound", pw, "192.0.2.66")
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.SendLoginSMS(ctx, mine); err != nil {
		t.Fatal(err)
	}
	code := lastCode()
	if _, err := svc.VerifySecondFactor(ctx, theirs, code, "192.0.2.66"); !errors.Is(err, accounts.ErrInvalidCode) {
		t.Fatalf("another login attempt with the code: %v, want ErrInvalidCode", err)
	}
	if got, err := svc.VerifySecondFactor(ctx, mine, code, "192.0.2.1"); err != nil || got.Stage != accounts.StageActive {
		t.Fatalf("the login attempt the code was sent for: %+v %v", got, err)
	}
}

var (
	// 16 characters of 32 (no l, o, 0, 1): 80 bits.
	reRecoveryCode = regexp.MustCompile(`^[a-km-np-z2-9]{4}(-[a-km-np-z2-9]{4}){3}$`)
	reStoredCode   = regexp.MustCompile(`^\$argon2id\$v=19\$m=19456:t=2:p=1\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$`)
)

// Recovery codes carry 80 bits and are stored as salted argon2id hashes
// (one salt per set); a code works once, in any letter case. A set of
// before (50-bit codes, SHA-256) stays usable.
func TestRecoveryCodesAreLongAndSlowlyHashed(t *testing.T) {
	e := newEnv(t)
	clk := &clock{now: time.Now()}
	svc, _ := e.owner(accounts.Config{Now: clk.Now}, &accounts.SMSSink{})
	ctx := context.Background()
	cust, id, tmp := e.register("a@recovery.example")
	const pw = "a long enough passphrase of recovery"
	p, _, codes := enrolApp(t, svc, clk, first(t, svc, id, tmp, "recovery-user", pw))
	seen := map[string]bool{}
	for _, c := range codes {
		if !reRecoveryCode.MatchString(c) || seen[c] {
			t.Errorf("recovery code %q: want 4 groups of 4 of the 32 characters, each code new", c)
		}
		seen[c] = true
	}
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes, want 10", len(codes))
	}
	var stored string
	for _, pl := range e.topic() {
		if v, ok := pl.(*events.AccountSecondFactorChanged); ok && v.AccountID == p.AccountID {
			stored = v.RecoveryCodeHashes
		}
	}
	salts := map[string]bool{}
	for _, h := range strings.Split(stored, ",") {
		m := reStoredCode.FindStringSubmatch(h)
		if m == nil {
			t.Fatalf("stored recovery code %q is not an argon2id hash", h)
		}
		salt, err := base64.RawStdEncoding.DecodeString(m[1])
		if err != nil || len(salt) != 16 {
			t.Fatalf("salt %q of %q: %d bytes, %v", m[1], h, len(salt), err)
		}
		salts[m[1]] = true
	}
	if len(salts) != 1 {
		t.Errorf("%d salts in one set, want one", len(salts))
	}
	for _, c := range codes {
		if strings.Contains(stored, c) || strings.Contains(stored, strings.ReplaceAll(c, "-", "")) {
			t.Fatalf("recovery code %s in clear in the log", c)
		}
	}
	login := func(code string) error {
		t.Helper()
		q, err := svc.Login(ctx, "recovery-user", pw, "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		_, err = svc.VerifySecondFactor(ctx, q, code, "192.0.2.1")
		return err
	}
	if err := login(strings.ToUpper(codes[3])); err != nil {
		t.Fatalf("a recovery code: %v", err)
	}
	if err := login(codes[3]); !errors.Is(err, accounts.ErrInvalidCode) {
		t.Fatalf("the same code again: %v, want ErrInvalidCode", err)
	}

	// A set an older version wrote: the factor as it is, SHA-256 hashes.
	a, _ := svc.State().Account(p.AccountID)
	const old = "abcde-fghij"
	e.publish(&events.AccountSecondFactorChanged{CustomerID: cust, AccountID: a.ID, Method: a.Factor, TOTPSecretSealed: a.TOTPSealed,
		RecoveryCodeHashes: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08," + sha256Hex(old), ChangedAt: clk.Now()})
	e.waitFor(func() bool { a, _ := svc.State().Account(p.AccountID); return len(a.RecoveryHashes) == 2 })
	if err := login(codes[4]); !errors.Is(err, accounts.ErrInvalidCode) {
		t.Fatalf("a code of the replaced set: %v, want ErrInvalidCode", err)
	}
	if err := login(old); err != nil {
		t.Fatalf("a recovery code of before: %v", err)
	}
	if err := login(old); !errors.Is(err, accounts.ErrInvalidCode) {
		t.Fatalf("the code of before again: %v, want ErrInvalidCode", err)
	}
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
