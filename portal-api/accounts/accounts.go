// Package accounts is the single writer of portal accounts (R-30 to
// it issues them, checks logins, second factors, password changes
// and resets against state rebuilt from the accounts topic, and mails the
// customers what those change.
package accounts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/segmentio/ksuid"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
)

// Source is the CloudEvents source of the events this package writes.
const Source = "mimamori/accounts"

// Errors a caller maps to responses. ErrInvalidCredentials is the same for
// an unknown user, a wrong password, a spent or expired temporary password
// and a locked account, so that none of them can be told apart.
var (
	ErrInvalidCredentials = errors.New("invalid user ID or password")
	ErrThrottled          = errors.New("too many attempts; wait and try again")
	ErrSMSThrottled       = fmt.Errorf("%w: too many codes sent to this account", ErrThrottled)
	ErrSMSPhoneThrottled  = fmt.Errorf("%w: too many codes sent to this phone number", ErrThrottled)
	ErrInvalidCode        = errors.New("invalid or expired code")
	ErrPasswordTooShort   = fmt.Errorf("password shorter than %d characters", MinPasswordLen)
	ErrPasswordTooLong    = fmt.Errorf("password longer than %d characters", MaxPasswordLen)
	ErrPasswordBreached   = errors.New("password is on the list of common breached passwords")
	ErrLoginIDInvalid     = errors.New("user ID must be 4 to 64 characters: letters, digits, . _ - @")
	ErrLoginIDTaken       = errors.New("user ID is already taken")
	ErrWrongStage         = errors.New("not allowed at this step of the login")
	ErrPhoneInvalid       = errors.New("phone number must be in international form, like +819012345678")
	ErrInvalidToken       = errors.New("invalid or expired reset link")
	ErrWrongPassword      = errors.New("the current password is not correct")
	ErrPasswordSame       = errors.New("the new password is the current one")
	ErrSecondFactorSet    = errors.New("2-step verification is already set up")
	ErrNoSecondFactor     = errors.New("2-step verification is not set up")
	// ErrSessionEnded: the principal no longer stands (Current): its
	// account's password or second factor changed since it was
	// authenticated, in another session, while this request was on its way.
	ErrSessionEnded = errors.New("the session ended: the password or 2-step verification changed")
	// ErrNotOwner: another process took over the accounts (it claimed
	// the same transactional ID); this one writes nothing any more.
	ErrNotOwner = errors.New("accounts are served by another process")
	// ErrOperatorNeedsFactor: operators may not go without 2-step
	// verification; declining it and turning it off are refused.
	ErrOperatorNeedsFactor = errors.New("operator accounts must keep 2-step verification")
	// ErrFactorCodeRequired: turning 2-step verification off, replacing it
	// and new recovery codes need a re-authentication with the password
	// and a code of the current second factor (Reauthenticate).
	ErrFactorCodeRequired = errors.New("enter the password and a code of the current 2-step verification (app, SMS or recovery code) again")
	// ErrOwnAccount: an operator cannot lift the lock of their own account.
	ErrOwnAccount = errors.New("an operator cannot unlock their own account; another operator can")
	// Refusals of RequestAccount (nothing is written).
	ErrUnknownCustomer   = errors.New("no such customer is registered")
	ErrRoleInvalid       = fmt.Errorf("role must be %s or %s", events.RoleCustomerAdmin, events.RoleOperator)
	ErrOperatorElsewhere = errors.New("operator accounts belong to the operator's own organisation only")
	// ErrNowLocked is wrapped, beside the usual error of the step, by the
	// failure that hard-locked the account: a session whose guess it was
	// ends (the portal). A login answers exactly as before.
	ErrNowLocked = errors.New("this failure locked the account")
)

// WaitError is a refusal that passes with time: Wait says when the next
// try is allowed (the portal's Retry-After). Throttled logins and
// re-authentications (ErrThrottled) and SMS sends (ErrSMSThrottled,
// ErrSMSPhoneThrottled) are WaitErrors.
type WaitError struct {
	Err  error
	Wait time.Duration
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("%v (next in %s)", e.Err, e.Wait.Round(time.Second))
}
func (e *WaitError) Unwrap() error { return e.Err }

// Stages of a login. Only StageActive grants access to the portal.
const (
	StageChangeCredentials = "change_credentials"
	StageChooseFactor      = "choose_second_factor"
	StageSecondFactor      = "second_factor"
	StageActive            = "active"
)

// Mailer sends one text mail (smtp.Mailer).
type Mailer interface {
	Send(ctx context.Context, to, id, subject, body string, date time.Time) error
}

// Publisher writes events and returns once Kafka acknowledged them.
type Publisher interface {
	Publish(ctx context.Context, envs ...events.Envelope) error
}

// Claimer is a Publisher that becomes the single writer when it claims
// (eventlog.TxProducer): claiming fences any process that claimed before,
// whose publishes then fail with eventlog.ErrFenced. The owner claims
// before it reads the log, so the state it reads is final.
type Claimer interface {
	Publisher
	Claim(ctx context.Context) error
}

// Config tunes the rules; zero values take the defaults.
type Config struct {
	TempPasswordTTL time.Duration // 72 h
	LockAfter       int           // consecutive failures that lock an account: 10
	FreeFailures    int           // failures per login ID before delays start: 3
	IPFreeFailures  int           // failures a source address (an IPv6 /64) may have before its failures start a login ID's delays at once: 20
	IPFailureDecay  time.Duration // a source address's failures are forgotten one every: 30 s
	ThrottleBase    time.Duration // first delay: 1 s, doubling
	SMSCodeTTL      time.Duration // 5 min
	ResetTTL        time.Duration // 1 h
	ResetsPerID     int           // reset mails per login ID (known or not) an hour: 3
	ResetsPerIP     int           // reset requests per source address an hour: 20 (past it, only a login ID's first mail of the hour)
	SMSInterval     time.Duration // between two codes to an account while the last is unused: 1 min
	SMSPerDay       int           // codes sent to an account in 24 h: 10
	SMSPerPhone     int           // enrolment codes sent to one phone number in 24 h, whichever account asks: 10
	NoticeRecovery  time.Duration // unsent security notices of changes this recent are mailed late; older never: 24 h
	PortalURL       string        // base of links in mail
	Issuer          string        // TOTP issuer shown in authenticator apps
	Now             func() time.Time
}

func (c *Config) defaults() {
	if c.TempPasswordTTL <= 0 {
		c.TempPasswordTTL = 72 * time.Hour
	}
	if c.LockAfter <= 0 {
		c.LockAfter = 10
	}
	if c.FreeFailures <= 0 {
		c.FreeFailures = 3
	}
	if c.IPFreeFailures <= 0 {
		c.IPFreeFailures = 20
	}
	if c.IPFailureDecay <= 0 {
		c.IPFailureDecay = 30 * time.Second
	}
	if c.ThrottleBase <= 0 {
		c.ThrottleBase = time.Second
	}
	if c.SMSCodeTTL <= 0 {
		c.SMSCodeTTL = 5 * time.Minute
	}
	if c.ResetTTL <= 0 {
		c.ResetTTL = time.Hour
	}
	if c.ResetsPerID <= 0 {
		c.ResetsPerID = 3
	}
	if c.ResetsPerIP <= 0 {
		c.ResetsPerIP = 20
	}
	if c.SMSInterval <= 0 {
		c.SMSInterval = time.Minute
	}
	if c.SMSPerDay <= 0 {
		c.SMSPerDay = 10
	}
	if c.SMSPerPhone <= 0 {
		c.SMSPerPhone = 10
	}
	if c.NoticeRecovery <= 0 {
		c.NoticeRecovery = 24 * time.Hour
	}
	if c.Issuer == "" {
		c.Issuer = "mimamori"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Service owns the accounts of every customer this process serves: a
// facade over the command and state owner, the throttles, the secrets and
// the mailer.
type Service struct {
	cfg  Config
	own  *owner
	thr  *throttles
	sec  *secrets
	out  *mailer
	sms  SMSSender
	log  *slog.Logger
	kick chan struct{} // an account may be due: a registration or a request
}

// New builds the service over the accounts topic. key seals TOTP secrets
// and phone numbers (LoadOrCreateKey).
func New(cfg Config, kcfg eventlog.Config, pub Publisher, mail Mailer, sms SMSSender, key []byte, logger *slog.Logger) (*Service, error) {
	cfg.defaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if pub == nil || mail == nil || sms == nil {
		return nil, errors.New("accounts: publisher, mailer and SMS sender are required")
	}
	sec, err := newSecrets(key, cfg.SMSCodeTTL)
	if err != nil {
		return nil, err
	}
	tail, err := eventlog.NewTail(kcfg, []string{kcfg.Topic(events.TopicAccounts)}, logger)
	if err != nil {
		return nil, err
	}
	own := newOwner(cfg.Now, pub, tail, logger)
	return &Service{cfg: cfg, own: own, thr: newThrottles(cfg), sec: sec, out: newMailer(cfg, mail, own, logger), sms: sms,
		log: logger, kick: make(chan struct{}, 1)}, nil
}

// State is the accounts as read so far.
func (s *Service) State() *State { return s.own.state }

// Ready is closed once the state has caught up with the log at start.
func (s *Service) Ready() <-chan struct{} { return s.own.ready }

// Fenced reports whether another process took over the accounts: this one
// then refuses every command with ErrNotOwner and is not ready.
func (s *Service) Fenced() bool { return s.own.fenced.Load() }

// Run follows the accounts topic and issues the accounts that registrations
// and operator requests call for, until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	if !s.own.claim(ctx) {
		return nil
	}
	// Nothing is issued before the whole log is read: a restarted owner must
	// not issue a second first account.
	done, caughtUp := s.own.follow(ctx, s.applied)
	if !caughtUp {
		return <-done
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.out.run(ctx) })
	defer wg.Wait()
	tick := time.NewTicker(30 * time.Second) // retries issues and notices that failed
	defer tick.Stop()
	for {
		s.issuePending(ctx)
		s.out.sweep()
		select {
		case <-ctx.Done():
			return <-done
		case <-s.kick:
		case <-tick.C:
		}
	}
}

// applied reacts to an event the tail applied to the state.
func (s *Service) applied(e events.Envelope) {
	if e.Type == events.TypeAccountUnlocked || e.Type == events.TypeAccountPasswordChanged {
		s.forgetDelays(e)
	}
	if e.Type == events.TypeCustomerRegistered || e.Type == events.TypeAccountRequested {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// forgetDelays clears the throttling delay of an account an operator
// unlocked or its holder reset the password of (which lifts a lock too), so
// its user can log in at once.
func (s *Service) forgetDelays(e events.Envelope) {
	p, err := events.Decode(e)
	if err != nil {
		return
	}
	var accountID string
	switch v := p.(type) {
	case *events.AccountUnlocked:
		accountID = v.AccountID
	case *events.AccountPasswordChanged:
		if v.Reason != "reset" {
			return
		}
		accountID = v.AccountID
	}
	if a, ok := s.own.state.Account(accountID); ok {
		s.thr.loginPassed(a.LoginID)
	}
}

func (s *Service) issuePending(ctx context.Context) {
	if s.own.fenced.Load() {
		return // the owner now issues them
	}
	custs, reqs := s.own.state.pending()
	for _, c := range custs {
		if err := s.issue(ctx, c, events.RoleCustomerAdmin, "registration", ""); err != nil {
			s.log.Error("issue first account failed", "customer", c, "err", err)
		}
	}
	for _, r := range reqs {
		if err := s.issue(ctx, r.CustomerID, r.Role, "request", r.RequestID); err != nil {
			s.log.Error("issue requested account failed", "customer", r.CustomerID, "request", r.RequestID, "err", err)
		}
	}
}

// issue creates an account with a temporary ID and password and mails them
// to the customer's registered address. The event is written first: a
// crash before the mail leaves an account an operator can re-request,
// never a mailed password that does not work.
func (s *Service) issue(ctx context.Context, customerID, role, reason, requestID string) error {
	defer s.own.lock(customerID)()
	c, ok := s.own.state.customer(customerID)
	if !ok {
		return fmt.Errorf("unknown customer %s", customerID)
	}
	if reason == "registration" && c.firstIssued {
		return nil
	}
	if requestID != "" {
		if _, still := s.own.pendingRequest(requestID); !still {
			return nil
		}
	}
	now := s.cfg.Now()
	loginID := "t" + randomText(9)
	password := randomText(16)
	ev := &events.AccountIssued{CustomerID: customerID, AccountID: "ac_" + ksuid.New().String(), LoginID: loginID,
		Role: role, PasswordHash: hashPassword(password), ExpiresAt: now.Add(s.cfg.TempPasswordTTL).UTC(),
		Reason: reason, RequestID: requestID, IssuedAt: now.UTC()}
	if err := s.own.publish(ctx, ev); err != nil {
		return err
	}
	if err := s.out.mailCredentials(ctx, c, ev, password, now); err != nil {
		return fmt.Errorf("mail temporary credentials of %s: %w", ev.AccountID, err)
	}
	s.log.Info("account issued", "customer", customerID, "account", ev.AccountID, "reason", reason)
	return nil
}

// Principal is who a login step authenticated, and how far.
// PasswordVersion, FactorVersion and LockVersion are the account's when
// that step passed: a session whose principal holds an older one ended
// with the password change, the second factor's replacement or turning
// off, or a hard lock (Current). FactorRequired says that the account may
// not go without 2-step verification (operators): the web app offers no
// decline and no turning off.
type Principal struct {
	AccountID       string `json:"account_id"`
	CustomerID      string `json:"customer_id"`
	LoginID         string `json:"login_id"`
	Role            string `json:"role"`
	Stage           string `json:"stage"`
	Factor          string `json:"second_factor"`
	FactorRequired  bool   `json:"second_factor_required"`
	PasswordVersion int    `json:"-"`
	FactorVersion   int    `json:"-"`
	LockVersion     int    `json:"-"`
	// attempt names the login this principal comes from (Login draws it,
	// every later step keeps it): an SMS code is sent for one attempt and
	// completes that one only. factorAt is when a re-authentication of
	// this principal last passed the account's current second factor
	// (Reauthenticate with a code). Only this package sets them.
	attempt  string
	factorAt time.Time
}

func principal(a Account, stage string) Principal {
	return Principal{AccountID: a.ID, CustomerID: a.CustomerID, LoginID: a.LoginID, Role: a.Role, Stage: stage, Factor: a.Factor,
		FactorRequired: factorMandatory(a), PasswordVersion: a.PasswordVersion, FactorVersion: a.FactorVersion,
		LockVersion: a.LockVersion}
}

// next is the principal a later step of p's login reaches: the same
// attempt, without the proof of a re-authentication.
func (p Principal) next(a Account, stage string) Principal {
	n := principal(a, stage)
	n.attempt = p.attempt
	return n
}

// stands tells whether p still stands for a: its password was not
// changed, its second factor not replaced or turned off, and it was not
// hard-locked since p passed.
func stands(a Account, p Principal) bool {
	return a.PasswordVersion == p.PasswordVersion && a.FactorVersion == p.FactorVersion && a.LockVersion == p.LockVersion
}

// Current returns p with the account's user ID and second factor as they
// are now, and false when p no longer stands: its password was changed
// since (a reset, or a change from another session), or its second factor
// replaced or turned off from another session, so every session holding p
// has ended.
func (s *Service) Current(p Principal) (Principal, bool) {
	a, ok := s.own.state.Account(p.AccountID)
	if !ok || !stands(a, p) {
		return p, false
	}
	p.LoginID, p.Factor = a.LoginID, a.Factor
	return p, true
}

func stageAfterPassword(a Account) string {
	switch {
	case a.Temporary:
		return StageChangeCredentials
	case a.Factor == "", a.Factor == events.FactorNone && factorMandatory(a):
		// An operator that declined before declining was refused to
		// operators sets a factor up now.
		return StageChooseFactor
	case a.Factor == events.FactorNone:
		return StageActive
	}
	return StageSecondFactor
}

// maxLoginIDLen is the longest user ID there can be (loginIDPattern; the
// temporary ones are shorter).
const maxLoginIDLen = 64

// tooLong refuses, before any argon2 work, a user ID or password longer
// than any account can have.
func tooLong(loginID, password string) error {
	switch {
	case len(loginID) > maxLoginIDLen:
		return ErrLoginIDInvalid
	case utf8.RuneCountInString(password) > MaxPasswordLen:
		return ErrPasswordTooLong
	}
	return nil
}

// Login checks a user ID and password from a source address. An unknown
// user costs the same argon2 work as a known one; a user ID or password
// longer than any account can have is refused without it.
func (s *Service) Login(ctx context.Context, loginID, password, ip string) (Principal, error) {
	if err := tooLong(loginID, password); err != nil {
		return Principal{}, err
	}
	now := s.cfg.Now()
	fail, err := s.thr.checkLogin(loginID, ip, now)
	if err != nil {
		return Principal{}, err
	}
	// Failures that write nothing (an unknown user, a locked account)
	// then wait as long as a recent write took: a wrong password writes
	// login_failed, and the answer must not tell them apart by its time.
	found, ok := s.own.state.ByLogin(loginID)
	if !ok {
		s.sec.verifyNoAccount(password)
		fail()
		s.own.lat.wait(ctx)
		return Principal{}, ErrInvalidCredentials
	}
	defer s.own.lock(found.CustomerID)()
	a, _ := s.own.state.Account(found.ID)
	good := verifyPassword(a.PasswordHash, password)
	if a.Locked {
		fail()
		s.own.lat.wait(ctx)
		return Principal{}, ErrInvalidCredentials
	}
	reason := "wrong_password"
	if good && a.Temporary && a.TempUsed {
		good, reason = false, "temporary_password_used"
	}
	if good && a.Temporary && now.After(a.TempExpires) {
		good, reason = false, "temporary_password_expired"
	}
	if !good {
		fail()
		return Principal{}, s.failed(ctx, a, ip, "password", reason)
	}
	method := "password"
	if a.Temporary {
		method = "temporary_password"
	}
	if err := s.own.publish(ctx, &events.AccountLoginSucceeded{CustomerID: a.CustomerID, AccountID: a.ID, SourceIP: ip,
		Step: "password", Method: method, SucceededAt: now.UTC()}); err != nil {
		return Principal{}, err
	}
	s.thr.loginPassed(loginID)
	a, _ = s.own.state.Account(a.ID)
	p := principal(a, stageAfterPassword(a))
	p.attempt = randomText(26)
	return p, nil
}

// failed records a failure and, at the limit, the hard lock. The caller
// holds the customer's owner lock.
func (s *Service) failed(ctx context.Context, a Account, ip, step, reason string) error {
	now := s.cfg.Now().UTC()
	n := a.Failures + 1
	ps := []events.Payload{&events.AccountLoginFailed{CustomerID: a.CustomerID, AccountID: a.ID, SourceIP: ip,
		Step: step, Reason: reason, Failures: n, FailedAt: now}}
	if n >= s.cfg.LockAfter {
		ps = append(ps, &events.AccountLocked{CustomerID: a.CustomerID, AccountID: a.ID, Failures: n, LockedAt: now})
	}
	if err := s.own.publish(ctx, ps...); err != nil {
		return err
	}
	err := ErrInvalidCredentials
	switch {
	case reason == "wrong_code":
		err = ErrInvalidCode
	case step == events.StepReauthentication:
		err = ErrWrongPassword
	}
	if n >= s.cfg.LockAfter {
		return fmt.Errorf("%w (%w)", err, ErrNowLocked)
	}
	return err
}

// reauthenticate checks the password a logged-in user entered again before
// a sensitive change. It is throttled and counted towards the lock exactly
// like a login, so that a stolen session is no way to guess the password.
// The caller holds the customer's owner lock.
func (s *Service) reauthenticate(ctx context.Context, a Account, password, ip string) error {
	if err := tooLong(a.LoginID, password); err != nil {
		return err
	}
	fail, err := s.thr.checkLogin(a.LoginID, ip, s.cfg.Now())
	if err != nil {
		return err
	}
	good := verifyPassword(a.PasswordHash, password)
	if a.Locked {
		fail()
		return ErrWrongPassword
	}
	if !good {
		fail()
		return s.failed(ctx, a, ip, events.StepReauthentication, "wrong_password")
	}
	s.thr.loginPassed(a.LoginID)
	return nil
}

// activeAccount is the account of a logged-in principal, if it still may
// act: past its first change, and p still stands (a change made in
// another session a moment ago ended it). Locks are the caller's to check.
func (s *Service) activeAccount(p Principal) (Account, error) {
	a, ok := s.own.state.Account(p.AccountID)
	if !ok || a.Temporary || a.CustomerID != p.CustomerID {
		return a, ErrWrongStage
	}
	if !stands(a, p) {
		return a, ErrSessionEnded
	}
	return a, nil
}

// Reauthenticate checks the password of a logged-in user again before a
// change of 2-step verification from the settings (enrolling, replacing
// or turning off a factor, new recovery codes), and records the passed
// step; the portal then admits those changes for ReauthWindow. With code
// it checks the account's current second factor too (a code of its app,
// the SMS code SendReauthSMS sent to this login, or a recovery code, which
// is spent), counted towards the lock like a login's: turning the factor
// off, replacing it and new recovery codes need both (factorFresh). It
// returns the principal that stands after it.
func (s *Service) Reauthenticate(ctx context.Context, p Principal, password, code, ip string) (Principal, error) {
	defer s.own.lock(p.CustomerID)()
	a, err := s.activeAccount(p)
	if err != nil {
		return p, err
	}
	code = strings.TrimSpace(code)
	if code != "" && !hasFactor(a) {
		return p, ErrNoSecondFactor
	}
	if err := s.reauthenticate(ctx, a, password, ip); err != nil {
		return p, err
	}
	now := s.cfg.Now().UTC()
	ps := []events.Payload{&events.AccountLoginSucceeded{CustomerID: a.CustomerID, AccountID: a.ID, SourceIP: ip,
		Step: events.StepReauthentication, Method: "password", SucceededAt: now}}
	if code != "" {
		ev := &events.AccountLoginSucceeded{CustomerID: a.CustomerID, AccountID: a.ID, SourceIP: ip,
			Step: events.StepReauthentication, Method: a.Factor, SucceededAt: now}
		ok, err := s.passFactor(a, p.attempt, smsReauth, code, ev)
		if err != nil {
			return p, err
		}
		if !ok {
			return p, s.failed(ctx, a, ip, events.StepReauthentication, "wrong_code")
		}
		ps = append(ps, ev)
	}
	if err := s.own.publish(ctx, ps...); err != nil {
		return p, err
	}
	a, _ = s.own.state.Account(a.ID)
	np := p.next(a, p.Stage)
	if code != "" {
		np.factorAt = now
	}
	return np, nil
}

// ChangePassword sets a new password for a logged-in user who entered the
// current one again. The new one follows the rules of every password and
// must differ from the current one. It returns the principal that stands
// after the change: sessions holding the old one have ended. The customer
// gets a security notice naming ip.
func (s *Service) ChangePassword(ctx context.Context, p Principal, current, password, ip string) (Principal, error) {
	defer s.own.lock(p.CustomerID)()
	a, err := s.activeAccount(p)
	if err != nil {
		return p, err
	}
	if err := s.sec.checkPassword(password, a.LoginID); err != nil {
		return p, err
	}
	if err := s.reauthenticate(ctx, a, current, ip); err != nil {
		return p, err
	}
	if verifyPassword(a.PasswordHash, password) {
		return p, ErrPasswordSame
	}
	now := s.cfg.Now().UTC()
	ids, err := s.own.publishIDs(ctx, &events.AccountPasswordChanged{CustomerID: a.CustomerID, AccountID: a.ID, LoginID: a.LoginID,
		PasswordHash: hashPassword(password), Reason: "change", ChangedAt: now})
	if err != nil {
		return p, err
	}
	s.out.notifyChange(ids[0], ip)
	a, _ = s.own.state.Account(a.ID)
	return p.next(a, p.Stage), nil
}

var loginIDPattern = regexp.MustCompile(`^[A-Za-z0-9._@-]{4,64}$`)

// ChangeCredentials is the only thing a first login may do: choose the
// customer's own user ID and a new password.
func (s *Service) ChangeCredentials(ctx context.Context, p Principal, loginID, password string) (Principal, error) {
	if !loginIDPattern.MatchString(loginID) {
		return p, ErrLoginIDInvalid
	}
	if err := s.sec.checkPassword(password, loginID); err != nil {
		return p, err
	}
	defer s.own.lock(p.CustomerID)()
	a, ok := s.own.state.Account(p.AccountID)
	if !ok || !a.Temporary || a.Locked {
		return p, ErrWrongStage
	}
	defer s.own.lockLoginIDs()()
	if other, taken := s.own.state.ByLogin(loginID); taken && other.ID != a.ID {
		return p, ErrLoginIDTaken
	}
	if strings.HasPrefix(loginID, "t") && len(loginID) == 10 && strings.EqualFold(loginID, a.LoginID) {
		return p, ErrLoginIDInvalid // the temporary ID is not a choice
	}
	if err := s.own.publish(ctx, &events.AccountPasswordChanged{CustomerID: a.CustomerID, AccountID: a.ID, LoginID: loginID,
		PasswordHash: hashPassword(password), Reason: "first_login", ChangedAt: s.cfg.Now().UTC()}); err != nil {
		return p, err
	}
	a, _ = s.own.state.Account(a.ID)
	return p.next(a, StageChooseFactor), nil
}

// Logout records the end of a session.
func (s *Service) Logout(ctx context.Context, p Principal) error {
	return s.own.publish(ctx, &events.AccountLoggedOut{CustomerID: p.CustomerID, AccountID: p.AccountID, LoggedOutAt: s.cfg.Now().UTC()})
}

// RequestReset asks for a single-use reset link mailed to the customer's
// registered address. It answers nothing and at once, whether the user
// exists or not and whether the request was throttled: the mailer's loop
// (started by Run) writes the event and sends the mail afterwards, so that
// not even the time of the answer tells. Within an hour, a source address gets
// Config.ResetsPerIP requests and a login ID (known or not)
// Config.ResetsPerID mails; the requests beyond send nothing, but the
// first mail of the hour of a login ID (resetAllowed).
func (s *Service) RequestReset(loginID, ip string) {
	if !s.thr.resetAllowed(loginID, ip, s.cfg.Now()) {
		s.log.Debug("password reset request throttled", "source", ip)
		return
	}
	a, ok := s.own.state.ByLogin(loginID)
	if !ok {
		return
	}
	s.out.queueReset(a.ID)
}

// ConfirmReset sets a new password with a reset token, once, and returns
// the account's ID: every session of that account has ended. ip is the
// request's source address, which the security notice names.
func (s *Service) ConfirmReset(ctx context.Context, token, password, ip string) (string, error) {
	h := sha256Hex(token)
	r, ok := s.own.state.reset(h)
	if !ok {
		return "", ErrInvalidToken
	}
	defer s.own.lock(r.customerID)()
	r, ok = s.own.state.reset(h)
	if !ok || s.cfg.Now().After(r.expires) {
		return "", ErrInvalidToken
	}
	a, _ := s.own.state.Account(r.accountID)
	if err := s.sec.checkPassword(password, a.LoginID); err != nil {
		return "", err
	}
	now := s.cfg.Now().UTC()
	ids, err := s.own.publishIDs(ctx, &events.AccountPasswordChanged{CustomerID: a.CustomerID, AccountID: a.ID, LoginID: a.LoginID,
		PasswordHash: hashPassword(password), Reason: "reset", ResetTokenHash: h, ChangedAt: now})
	if err != nil {
		return "", err
	}
	s.out.notifyChange(ids[0], ip)
	return a.ID, nil
}

// RequestAccount asks the owner of a customer for one more account (the
// operator's command, R-30). The credentials go to the customer's mail. st
// is the accounts as read so far (the owner's, or read to the end of the
// log by the command line): a customer it does not know, a role other
// than customer_admin or operator, and the operator role for another
// customer than the operator's own organisation are refused, and nothing
// is written. The owner applies the same rule to what it issues (State).
func RequestAccount(ctx context.Context, pub Publisher, st *State, customerID, role, by string, now time.Time) (string, error) {
	if err := st.checkRequest(customerID, role); err != nil {
		return "", err
	}
	id := "rq_" + ksuid.New().String()
	e, err := events.New(Source, &events.AccountRequested{CustomerID: customerID, RequestID: id, Role: role,
		RequestedBy: by, RequestedAt: now.UTC()}, now)
	if err != nil {
		return "", err
	}
	return id, pub.Publish(ctx, e)
}

// Unlock lifts a hard lock (the operator's command). by is who does it;
// an operator's own account (by is its account ID) is refused
// (ErrOwnAccount): another operator lifts it.
func Unlock(ctx context.Context, pub Publisher, customerID, accountID, by string, now time.Time) error {
	if by == accountID {
		return ErrOwnAccount
	}
	e, err := events.New(Source, &events.AccountUnlocked{CustomerID: customerID, AccountID: accountID,
		UnlockedBy: by, UnlockedAt: now.UTC()}, now)
	if err != nil {
		return err
	}
	return pub.Publish(ctx, e)
}

// Publisher is where the service writes its events; operator commands of
// the portal write theirs through it too.
func (s *Service) Publisher() Publisher { return s.own.pub }
