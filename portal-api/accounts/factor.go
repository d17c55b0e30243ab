package accounts

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"regexp"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	qrcode "github.com/skip2/go-qrcode"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/schemas/messages"
)

// TOTP parameters (RFC 6238 as authenticator apps expect them).
const (
	totpPeriod = 30
	totpSkew   = 1 // one step of clock drift either way
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// TOTPEnrolment is what the user needs to add the account to an app. The
// secret stays in the server-side session until confirmed.
type TOTPEnrolment struct {
	Secret string `json:"secret"`
	URL    string `json:"otpauth_url"`
	QRPNG  string `json:"qr_png"` // base64 PNG of URL
}

// enrolable is the account of p if it may enrol a second factor: past its
// first change, not locked, and without one yet (at the first choice, or
// later after declining it or turning it off), unless the enrolment
// replaces the factor it has (replace, from the settings). A replaced
// factor works until the new one is confirmed, so an enrolment given up
// halfway leaves the account as it was. A replacement needs the current
// factor: its start (start) a re-authentication with a code of it less
// than ReauthWindow ago, its end one since p's last change (the end
// finishes what the start began, however long the new phone took).
func (s *Service) enrolable(p Principal, replace, start bool) (Account, error) {
	a, err := s.activeAccount(p)
	switch {
	case err != nil:
		return a, err
	case a.Locked:
		return a, ErrWrongStage
	case hasFactor(a) && !replace:
		return a, ErrSecondFactorSet
	case hasFactor(a) && start && !s.factorFresh(p), hasFactor(a) && p.factorAt.IsZero():
		return a, ErrFactorCodeRequired
	}
	return a, nil
}

func hasFactor(a Account) bool { return a.Factor == events.FactorTOTP || a.Factor == events.FactorSMS }

// factorMandatory tells whether a may not go without 2-step verification:
// an operator account sees every customer's data, so its password alone
// is never enough.
func factorMandatory(a Account) bool { return a.Role == events.RoleOperator }

// factorMethod tells whether a login_succeeded method is a second factor.
func factorMethod(m string) bool {
	return m == events.FactorTOTP || m == events.FactorSMS || m == "recovery_code"
}

// ReauthWindow is how long a re-authentication admits the changes it is
// for (the portal's window of the password; here, of the second factor).
const ReauthWindow = 10 * time.Minute

// factorFresh tells whether p passed the account's current second factor
// in a re-authentication less than ReauthWindow ago. A principal made by
// any later step (a change of the factor among them) holds no such proof.
func (s *Service) factorFresh(p Principal) bool {
	return !p.factorAt.IsZero() && s.cfg.Now().Before(p.factorAt.Add(ReauthWindow))
}

// withFactor is the account of p if it has a second factor to turn off or
// new recovery codes to get: past its first change, not locked, and p
// passed that factor in a fresh re-authentication. New recovery codes need
// it too: whoever has the password and a session would otherwise get
// codes that pass for the factor.
func (s *Service) withFactor(p Principal) (Account, error) {
	a, err := s.activeAccount(p)
	switch {
	case err != nil:
		return a, err
	case a.Locked:
		return a, ErrWrongStage
	case !hasFactor(a):
		return a, ErrNoSecondFactor
	case !s.factorFresh(p):
		return a, ErrFactorCodeRequired
	}
	return a, nil
}

// BeginTOTP makes a new TOTP secret for an account; replace admits an
// account that has a second factor, which the new one replaces once
// confirmed (ConfirmTOTP with replace).
func (s *Service) BeginTOTP(p Principal, replace bool) (TOTPEnrolment, error) {
	if _, err := s.enrolable(p, replace, true); err != nil {
		return TOTPEnrolment{}, err
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: s.cfg.Issuer, AccountName: p.LoginID, Period: totpPeriod})
	if err != nil {
		return TOTPEnrolment{}, err
	}
	png, err := qrcode.Encode(key.URL(), qrcode.Medium, 256)
	if err != nil {
		return TOTPEnrolment{}, err
	}
	return TOTPEnrolment{Secret: key.Secret(), URL: key.URL(), QRPNG: base64.StdEncoding.EncodeToString(png)}, nil
}

// totpStep returns the time step a code matches, within one step of drift
// and after the last step accepted, or 0.
func totpStep(secret, code string, now time.Time, last int64) int64 {
	cur := now.Unix() / totpPeriod
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		step := cur + d
		if step <= last {
			continue
		}
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*totpPeriod, 0), totpOpts)
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step
		}
	}
	return 0
}

// ConfirmTOTP enrols the secret when code matches it, and returns the
// principal that stands after it (active) and the recovery codes (shown
// once). With replace it replaces the account's second factor, whichever
// it was, and its recovery codes; the account's other sessions end. ip is
// the request's source address, which the security notice names.
func (s *Service) ConfirmTOTP(ctx context.Context, p Principal, secret, code string, replace bool, ip string) (Principal, []string, error) {
	defer s.own.lock(p.CustomerID)()
	a, err := s.enrolable(p, replace, false)
	if err != nil {
		return p, nil, err
	}
	step := totpStep(secret, strings.TrimSpace(code), s.cfg.Now(), a.LastTOTPStep)
	if step == 0 {
		return p, nil, ErrInvalidCode
	}
	codes, hashes := recoveryCodes()
	now := s.cfg.Now().UTC()
	return s.changeFactor(ctx, p, a, ip, codes,
		&events.AccountSecondFactorChanged{CustomerID: a.CustomerID, AccountID: a.ID, Method: events.FactorTOTP,
			TOTPSecretSealed: s.sec.seal.seal(secret, a.CustomerID, a.ID), RecoveryCodeHashes: hashes, ChangedAt: now},
		&events.AccountLoginSucceeded{CustomerID: a.CustomerID, AccountID: a.ID, SourceIP: ip, Step: "second_factor",
			Method: events.FactorTOTP, TOTPStep: step, SucceededAt: now})
}

// changeFactor writes a change of a's second factor (and the events that
// go with it), queues its security notice (a decline has none) and
// returns the principal of p's login that stands after it, in the active
// stage, with codes. The caller holds the customer's owner lock.
func (s *Service) changeFactor(ctx context.Context, p Principal, a Account, ip string, codes []string, ch *events.AccountSecondFactorChanged,
	more ...events.Payload) (Principal, []string, error) {
	ids, err := s.own.publishIDs(ctx, append([]events.Payload{ch}, more...)...)
	if err != nil {
		return Principal{}, nil, err
	}
	s.out.notifyChange(ids[0], ip)
	a, _ = s.own.state.Account(a.ID)
	return p.next(a, StageActive), codes, nil
}

// The purposes an SMS code is sent for; a code serves its own only.
const (
	smsEnrol  = "enrol"  // verifying a number being enrolled
	smsLogin  = "login"  // the second step of a login
	smsReauth = "reauth" // a re-authentication before a change of 2-step verification
)

var phonePattern = regexp.MustCompile(`^\+[1-9][0-9]{7,14}$`)

// BeginSMS sends a code to phone to verify it for enrolment; replace as
// for BeginTOTP.
func (s *Service) BeginSMS(ctx context.Context, p Principal, phone string, replace bool) error {
	phone = strings.ReplaceAll(strings.ReplaceAll(phone, "-", ""), " ", "")
	if !phonePattern.MatchString(phone) {
		return ErrPhoneInvalid
	}
	a, err := s.enrolable(p, replace, true)
	if err != nil {
		return err
	}
	return s.sendCode(ctx, a.ID, p.attempt, smsEnrol, phone)
}

// SendLoginSMS sends a login code to the enrolled number, for p's login
// attempt only.
func (s *Service) SendLoginSMS(ctx context.Context, p Principal) error {
	a, ok := s.own.state.Account(p.AccountID)
	if !ok || a.Factor != events.FactorSMS || a.Locked {
		return ErrWrongStage
	}
	return s.sendToEnrolled(ctx, a, p.attempt, smsLogin)
}

// SendReauthSMS sends a code to the enrolled number of a logged-in user,
// for a re-authentication of p (Reauthenticate) only.
func (s *Service) SendReauthSMS(ctx context.Context, p Principal) error {
	a, err := s.activeAccount(p)
	if err != nil {
		return err
	}
	if a.Locked || a.Factor != events.FactorSMS {
		return ErrWrongStage
	}
	return s.sendToEnrolled(ctx, a, p.attempt, smsReauth)
}

func (s *Service) sendToEnrolled(ctx context.Context, a Account, attempt, purpose string) error {
	phone, err := s.sec.seal.open(a.PhoneSealed, a.CustomerID, a.ID)
	if err != nil {
		return err
	}
	return s.sendCode(ctx, a.ID, attempt, purpose, phone)
}

// sendCode sends a fresh code for one purpose of one login attempt
// (Principal.attempt): a code sent for one login cannot complete another,
// even of the same account. It is sent within the caps: every message costs
// money, and an enrolment chooses the number, so a script could pump
// messages to numbers that pay their operator. An account gets a code at
// most once per Config.SMSInterval while the last one is unused, and at
// most Config.SMSPerDay in 24 hours, whichever purpose and session asks.
// A refused send is a *WaitError of ErrSMSThrottled, or of
// ErrSMSPhoneThrottled for the number's cap (throttles.takeSMS); a send
// the gateway fails still counts.
func (s *Service) sendCode(ctx context.Context, accountID, attempt, purpose, phone string) error {
	now := s.cfg.Now()
	if err := s.thr.takeSMS(accountID, purpose, phone, now); err != nil {
		return err
	}
	code, err := s.sec.newSMSCode(accountID, attempt, purpose, phone, now)
	if err != nil {
		return err
	}
	mins := int(s.cfg.SMSCodeTTL.Minutes())
	body := messages.Text(messages.Japanese, "sms.code", "code", code, "minutes", mins) + "\n" +
		messages.Text(messages.English, "sms.code", "code", code, "minutes", mins)
	return s.sms.SendSMS(ctx, phone, body)
}

// takeCode checks an SMS code sent for purpose to this login attempt and
// returns the phone number it went to; a right code is spent, and so is
// the challenge after five wrong ones.
func (s *Service) takeCode(accountID, attempt, purpose, code string) (string, bool) {
	phone, ok := s.sec.takeSMSCode(accountID, attempt, purpose, code, s.cfg.Now())
	if ok {
		s.thr.smsUsed(accountID)
	}
	return phone, ok
}

// ConfirmSMS enrols the phone number the code was sent to; replace and ip
// as for ConfirmTOTP.
func (s *Service) ConfirmSMS(ctx context.Context, p Principal, code string, replace bool, ip string) (Principal, []string, error) {
	defer s.own.lock(p.CustomerID)()
	a, err := s.enrolable(p, replace, false)
	if err != nil {
		return p, nil, err
	}
	phone, ok := s.takeCode(a.ID, p.attempt, smsEnrol, code)
	if !ok {
		return p, nil, ErrInvalidCode
	}
	codes, hashes := recoveryCodes()
	now := s.cfg.Now().UTC()
	return s.changeFactor(ctx, p, a, ip, codes,
		&events.AccountSecondFactorChanged{CustomerID: a.CustomerID, AccountID: a.ID, Method: events.FactorSMS,
			PhoneSealed: s.sec.seal.seal(phone, a.CustomerID, a.ID), RecoveryCodeHashes: hashes, ChangedAt: now},
		&events.AccountLoginSucceeded{CustomerID: a.CustomerID, AccountID: a.ID, SourceIP: ip, Step: "second_factor",
			Method: events.FactorSMS, SucceededAt: now})
}

// DeclineSecondFactor records the customer's choice not to use 2-step
// verification (R-32 makes it a choice), allowed only at the first choice
// and never to an operator (ErrOperatorNeedsFactor), and returns the
// principal that stands after it (active).
func (s *Service) DeclineSecondFactor(ctx context.Context, p Principal) (Principal, error) {
	defer s.own.lock(p.CustomerID)()
	a, ok := s.own.state.Account(p.AccountID)
	if ok && a.CustomerID == p.CustomerID && factorMandatory(a) {
		return p, ErrOperatorNeedsFactor
	}
	if !ok || a.Temporary || a.Factor != "" {
		return p, ErrWrongStage
	}
	if !stands(a, p) {
		return p, ErrSessionEnded
	}
	p, _, err := s.changeFactor(ctx, p, a, "", nil, &events.AccountSecondFactorChanged{CustomerID: a.CustomerID, AccountID: a.ID,
		Method: events.FactorNone, ChangedAt: s.cfg.Now().UTC()})
	return p, err
}

// DisableSecondFactor turns 2-step verification off for a logged-in user
// who entered the password and a code of the factor again
// (Reauthenticate): the factor becomes "none", as if declined at the first
// login, and the recovery codes stop working. Later logins ask for the
// password only. Operators cannot (ErrOperatorNeedsFactor). The account's
// other sessions end; the principal returned stands after it. ip as for
// ConfirmTOTP.
func (s *Service) DisableSecondFactor(ctx context.Context, p Principal, ip string) (Principal, error) {
	defer s.own.lock(p.CustomerID)()
	if a, err := s.activeAccount(p); err == nil && factorMandatory(a) {
		return p, ErrOperatorNeedsFactor
	}
	a, err := s.withFactor(p)
	if err != nil {
		return p, err
	}
	np, _, err := s.changeFactor(ctx, p, a, ip, nil, &events.AccountSecondFactorChanged{CustomerID: a.CustomerID, AccountID: a.ID,
		Method: events.FactorNone, ChangedAt: s.cfg.Now().UTC()})
	if err != nil {
		return p, err
	}
	np.Stage = p.Stage
	return np, nil
}

// NewRecoveryCodes replaces the recovery codes of a logged-in user who
// entered the password and a code of the factor again (Reauthenticate)
// and returns the new
// ones, to be shown once; the old ones stop working. The event is the
// account's second_factor_changed with the factor as it is (the same
// method and sealed values) and the new hashes. Sessions go on. ip as for
// ConfirmTOTP.
func (s *Service) NewRecoveryCodes(ctx context.Context, p Principal, ip string) ([]string, error) {
	defer s.own.lock(p.CustomerID)()
	a, err := s.withFactor(p)
	if err != nil {
		return nil, err
	}
	codes, hashes := recoveryCodes()
	_, codes, err = s.changeFactor(ctx, p, a, ip, codes, &events.AccountSecondFactorChanged{CustomerID: a.CustomerID, AccountID: a.ID,
		Method: a.Factor, TOTPSecretSealed: a.TOTPSealed, PhoneSealed: a.PhoneSealed, RecoveryCodeHashes: hashes,
		ChangedAt: s.cfg.Now().UTC()})
	return codes, err
}

// VerifySecondFactor checks a TOTP code, an SMS login code or a recovery
// code. Failures count towards the lock like wrong passwords.
func (s *Service) VerifySecondFactor(ctx context.Context, p Principal, code, ip string) (Principal, error) {
	defer s.own.lock(p.CustomerID)()
	a, ok := s.own.state.Account(p.AccountID)
	if !ok || (a.Factor != events.FactorTOTP && a.Factor != events.FactorSMS) {
		return p, ErrWrongStage
	}
	if !stands(a, p) { // the factor this login was asked for was replaced since
		return p, ErrSessionEnded
	}
	if a.Locked {
		return p, ErrInvalidCode
	}
	now := s.cfg.Now().UTC()
	ev := &events.AccountLoginSucceeded{CustomerID: a.CustomerID, AccountID: a.ID, SourceIP: ip, Step: "second_factor",
		Method: a.Factor, SucceededAt: now}
	ok, err := s.passFactor(a, p.attempt, smsLogin, code, ev)
	if err != nil {
		return p, err
	}
	if !ok {
		return p, s.failed(ctx, a, ip, "second_factor", "wrong_code")
	}
	if err := s.own.publish(ctx, ev); err != nil {
		return p, err
	}
	a, _ = s.own.state.Account(a.ID)
	return p.next(a, StageActive), nil
}

// passFactor checks code against a's second factor: one of its recovery
// codes, a code of its app (a step after the last one accepted), or the
// SMS code sent for purpose to this login attempt. What passed goes on ev
// (the method, the TOTP step, the spent recovery code); the caller writes
// it, so that no code is accepted twice.
func (s *Service) passFactor(a Account, attempt, purpose, code string, ev *events.AccountLoginSucceeded) (bool, error) {
	code = strings.TrimSpace(code)
	if !isOneTimeCode(code) {
		h, ok := matchRecoveryCode(a.RecoveryHashes, code)
		if ok {
			ev.Method, ev.RecoveryCodeHash = "recovery_code", h
		}
		return ok, nil
	}
	if a.Factor == events.FactorTOTP {
		secret, err := s.sec.seal.open(a.TOTPSealed, a.CustomerID, a.ID)
		if err != nil {
			return false, err
		}
		step := totpStep(secret, code, ev.SucceededAt, a.LastTOTPStep)
		ev.TOTPStep = step
		return step != 0, nil
	}
	_, ok := s.takeCode(a.ID, attempt, purpose, code)
	return ok, nil
}
