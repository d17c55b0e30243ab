package portal

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/mimamori/mimamori/portal-api/accounts"
)

// SessionCookie is the name of the session cookie. The __Host- prefix
// makes browsers take it only with Secure, Path=/ and no Domain, from a
// secure origin: no other host of the domain, nor a man in the middle of
// plain HTTP, can set or shadow it. Browsers treat http://localhost and
// http://127.0.0.1 as secure, so `mimamori run` works without TLS there.
const SessionCookie = "__Host-mimamori_session"

// reauthWindow is how long an active session may start enrolling or
// replacing a second factor, turn it off or get new recovery codes after
// its user entered the password again (the accounts owner also wants a
// code of the current factor for all but enrolling).
const reauthWindow = accounts.ReauthWindow

// smsPerSession caps the SMS codes one session gets sent (enrolment or
// login), below the account's own caps (accounts.Config.SMSPerDay): a
// script that keeps one session asking is cut off early; a person who
// really needs more logs in again.
const smsPerSession = 5

type authAPI struct {
	svc    *accounts.Service
	ss     *sessions
	cop    *http.CrossOriginProtection
	deps   Deps
	probes *idProbes
}

func newAuthAPI(d Deps) *authAPI {
	return &authAPI{svc: d.Accounts, ss: newSessions(d.Sessions), cop: http.NewCrossOriginProtection(), deps: d,
		probes: newIDProbes(d.Now)}
}

// crossSite refuses state-changing requests from other sites (Origin and
// Sec-Fetch-Site, Go's CrossOriginProtection) and requires JSON bodies, which
// a cross-site form cannot send without a CORS preflight.
func (a *authAPI) crossSite(c *gin.Context) {
	if err := a.cop.Check(c.Request); err != nil {
		writeAPIError(c, http.StatusForbidden, "cross_site")
		return
	}
	if c.Request.Method == http.MethodPost && !strings.HasPrefix(c.GetHeader("Content-Type"), "application/json") {
		writeAPIError(c, http.StatusUnsupportedMediaType, "json_required")
		return
	}
	c.Next()
}

// need admits a session at the given stage ("" for any stage). A session
// ends with a change of its account's password made elsewhere (a reset,
// or a change from another session).
func (a *authAPI) need(stage string) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, err := c.Cookie(SessionCookie)
		if err != nil {
			writeAPIError(c, http.StatusUnauthorized, "login_required")
			return
		}
		se, ok := a.ss.get(id)
		if ok {
			if se.p, ok = a.svc.Current(se.p); !ok {
				a.ss.end(id)
			}
		}
		if !ok {
			a.clearCookie(c)
			writeAPIError(c, http.StatusUnauthorized, "login_required")
			return
		}
		if stage != "" && se.p.Stage != stage {
			writeAPIError(c, http.StatusForbidden, "wrong_stage")
			return
		}
		c.Set("sid", id)
		c.Set("session", se)
		c.Next()
	}
}

func current(c *gin.Context) (string, *session) {
	return c.GetString("sid"), c.MustGet("session").(*session)
}

// enrolment admits the enrolment of a second factor: during the first
// login (choose_second_factor), or later from the settings by an active
// session whose user entered the password again less than reauthWindow
// ago to start it (start), and that started it so to finish it. Whether
// the account may enrol, or replace its factor, is the accounts service's
// rule.
func (a *authAPI) enrolment(start bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		_, se := current(c)
		switch {
		case se.p.Stage == accounts.StageChooseFactor:
		case se.p.Stage != accounts.StageActive:
			writeAPIError(c, http.StatusForbidden, "wrong_stage")
			return
		case start && !a.ss.cfg.Now().Before(se.reauthUntil), !start && !se.enrolling:
			writeAPIError(c, http.StatusForbidden, "reauth_required")
			return
		}
		c.Next()
	}
}

// reauthenticated admits an active session whose user entered the
// password again less than reauthWindow ago: a session left open is not
// enough to turn 2-step verification off or to read new recovery codes.
func (a *authAPI) reauthenticated(c *gin.Context) {
	_, se := current(c)
	if !a.ss.cfg.Now().Before(se.reauthUntil) {
		writeAPIError(c, http.StatusForbidden, "reauth_required")
		return
	}
	c.Next()
}

func (a *authAPI) setCookie(c *gin.Context, id string) {
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: id, Path: "/", HttpOnly: true,
		Secure: true, SameSite: http.SameSiteStrictMode})
}

func (a *authAPI) clearCookie(c *gin.Context) {
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: true, SameSite: http.SameSiteStrictMode})
}

func bind(c *gin.Context, v any) bool {
	if err := c.ShouldBindJSON(v); err != nil {
		badBody(c, err)
		return false
	}
	return true
}

// badBody answers a body that could not be read: 413 when it is larger
// than MaxBody, 400 otherwise.
func badBody(c *gin.Context, err error) {
	if tooLarge(err) {
		writeAPIError(c, http.StatusRequestEntityTooLarge, "request_too_large")
		return
	}
	writeAPIError(c, http.StatusBadRequest, "bad_request")
}

// bindOptional reads a body whose fields are all optional: an empty body
// is as good as {}.
func bindOptional(c *gin.Context, v any) bool {
	if err := json.NewDecoder(c.Request.Body).Decode(v); err != nil && !errors.Is(err, io.EOF) {
		badBody(c, err)
		return false
	}
	return true
}

// enrolOptions is the body of the routes that start an enrolment.
type enrolOptions struct {
	// Replace replaces the second factor the account has (from the
	// settings); without it such an account gets 409 second_factor_set.
	Replace bool `json:"replace"`
}

func (a *authAPI) login(c *gin.Context) {
	var req struct {
		LoginID  string `json:"login_id"`
		Password string `json:"password"`
	}
	if !bind(c, &req) {
		return
	}
	p, err := a.svc.Login(c.Request.Context(), req.LoginID, req.Password, c.ClientIP())
	if err != nil {
		a.fail(c, err)
		return
	}
	// A new identifier at every login: an old cookie is never promoted.
	if old, err := c.Cookie(SessionCookie); err == nil {
		a.ss.end(old)
	}
	a.setCookie(c, a.ss.create(p))
	c.JSON(http.StatusOK, p)
}

func (a *authAPI) changeCredentials(c *gin.Context) {
	var req struct {
		LoginID  string `json:"login_id"`
		Password string `json:"password"`
	}
	if !bind(c, &req) {
		return
	}
	id, se := current(c)
	if wait := a.probes.wait(id, c.ClientIP()); wait > 0 {
		setRetryAfter(c, wait)
		writeAPIError(c, http.StatusTooManyRequests, "throttled")
		return
	}
	p, err := a.svc.ChangeCredentials(c.Request.Context(), se.p, req.LoginID, req.Password)
	if errors.Is(err, accounts.ErrLoginIDTaken) {
		a.probes.taken(id, c.ClientIP())
	}
	if err != nil {
		a.fail(c, err)
		return
	}
	a.soleSession(c, id, p)
	c.JSON(http.StatusOK, p)
}

func (a *authAPI) totpEnrol(c *gin.Context) {
	var req enrolOptions
	if !bindOptional(c, &req) {
		return
	}
	id, se := current(c)
	en, err := a.svc.BeginTOTP(se.p, req.Replace)
	if err != nil {
		a.fail(c, err)
		return
	}
	a.ss.update(id, func(s *session) { s.totpSecret, s.enrolling, s.replacing = en.Secret, true, req.Replace })
	c.JSON(http.StatusOK, en)
}

func (a *authAPI) totpConfirm(c *gin.Context) {
	var req struct {
		Code string `json:"code"`
	}
	if !bind(c, &req) {
		return
	}
	id, se := current(c)
	if se.totpSecret == "" {
		writeAPIError(c, http.StatusConflict, "wrong_stage")
		return
	}
	p, codes, err := a.svc.ConfirmTOTP(c.Request.Context(), se.p, se.totpSecret, req.Code, se.replacing, c.ClientIP())
	if err != nil {
		a.fail(c, err)
		return
	}
	a.activate(c, id, se.p, p, codes)
}

// activate rotates the session into the principal p that a step of it
// reached (a second factor passed, set up, replaced or declined). A step
// that ended the account's other sessions (a replaced factor: p's factor
// version moved on from was's) drops them from the map too.
func (a *authAPI) activate(c *gin.Context, id string, was, p accounts.Principal, codes []string) {
	nid := a.ss.rotate(id, p)
	if p.FactorVersion != was.FactorVersion {
		a.ss.endAccount(p.AccountID, nid)
	}
	a.setCookie(c, nid)
	out := gin.H{"account": p}
	if codes != nil {
		out["recovery_codes"] = codes
	}
	c.JSON(http.StatusOK, out)
}

func (a *authAPI) smsEnrol(c *gin.Context) {
	var req struct {
		Phone string `json:"phone"`
		enrolOptions
	}
	if !bind(c, &req) {
		return
	}
	id, se := current(c)
	if se.smsSent >= smsPerSession {
		writeAPIMessage(c, http.StatusTooManyRequests, "throttled", "sms_session_limit")
		return
	}
	if err := a.svc.BeginSMS(c.Request.Context(), se.p, req.Phone, req.Replace); err != nil {
		a.fail(c, err)
		return
	}
	a.ss.update(id, func(s *session) { s.enrolling, s.replacing, s.smsSent = true, req.Replace, s.smsSent+1 })
	c.JSON(http.StatusAccepted, gin.H{"status": "code_sent"})
}

func (a *authAPI) smsVerify(c *gin.Context) {
	var req struct {
		Code string `json:"code"`
	}
	if !bind(c, &req) {
		return
	}
	id, se := current(c)
	p, codes, err := a.svc.ConfirmSMS(c.Request.Context(), se.p, req.Code, se.replacing, c.ClientIP())
	if err != nil {
		a.fail(c, err)
		return
	}
	a.activate(c, id, se.p, p, codes)
}

func (a *authAPI) decline(c *gin.Context) {
	id, se := current(c)
	p, err := a.svc.DeclineSecondFactor(c.Request.Context(), se.p)
	if err != nil {
		a.fail(c, err)
		return
	}
	a.activate(c, id, se.p, p, nil)
}

func (a *authAPI) sendLoginSMS(c *gin.Context) {
	id, se := current(c)
	if se.smsSent >= smsPerSession {
		writeAPIMessage(c, http.StatusTooManyRequests, "throttled", "sms_session_limit")
		return
	}
	if err := a.svc.SendLoginSMS(c.Request.Context(), se.p); err != nil {
		a.fail(c, err)
		return
	}
	a.ss.update(id, func(s *session) { s.smsSent++ })
	c.JSON(http.StatusAccepted, gin.H{"status": "code_sent"})
}

func (a *authAPI) secondFactor(c *gin.Context) {
	var req struct {
		Code string `json:"code"`
	}
	if !bind(c, &req) {
		return
	}
	id, se := current(c)
	p, err := a.svc.VerifySecondFactor(c.Request.Context(), se.p, req.Code, c.ClientIP())
	if err != nil {
		a.endIfItLocked(c, id, err)
		a.fail(c, err)
		return
	}
	a.activate(c, id, se.p, p, nil)
}

func (a *authAPI) logout(c *gin.Context) {
	id, se := current(c)
	a.ss.end(id)
	a.clearCookie(c)
	if err := a.svc.Logout(c.Request.Context(), se.p); err != nil {
		a.deps.Logger.Warn("logout event not written", "err", err)
	}
	c.JSON(http.StatusOK, gin.H{"status": "logged_out"})
}

func (a *authAPI) me(c *gin.Context) {
	_, se := current(c)
	c.JSON(http.StatusOK, se.p)
}

func (a *authAPI) resetRequest(c *gin.Context) {
	var req struct {
		LoginID string `json:"login_id"`
	}
	if !bind(c, &req) {
		return
	}
	a.svc.RequestReset(req.LoginID, c.ClientIP())
	// The same answer, at once, whether the user exists or not and whether
	// the request was throttled: the mail, if any, leaves later.
	c.JSON(http.StatusAccepted, gin.H{"status": "if_the_user_exists_a_mail_was_sent"})
}

func (a *authAPI) resetConfirm(c *gin.Context) {
	var req struct {
		Token    string `json:"token"`
		Password string `json:"password"`
	}
	if !bind(c, &req) {
		return
	}
	accountID, err := a.svc.ConfirmReset(c.Request.Context(), req.Token, req.Password, c.ClientIP())
	if err != nil {
		a.fail(c, err)
		return
	}
	a.ss.endAccount(accountID, "")
	c.JSON(http.StatusOK, gin.H{"status": "password_changed"})
}

// changePassword sets a new password from the settings. The session gets a
// new identifier; every other session of the account ends.
func (a *authAPI) changePassword(c *gin.Context) {
	var req struct {
		Current  string `json:"current_password"`
		Password string `json:"new_password"`
	}
	if !bind(c, &req) {
		return
	}
	id, se := current(c)
	p, err := a.svc.ChangePassword(c.Request.Context(), se.p, req.Current, req.Password, c.ClientIP())
	if err != nil {
		a.endIfItLocked(c, id, err)
		a.fail(c, err)
		return
	}
	a.soleSession(c, id, p)
	c.JSON(http.StatusOK, gin.H{"account": p})
}

// soleSession gives the session a new identifier for principal p and
// ends every other session of its account: after a credential change.
func (a *authAPI) soleSession(c *gin.Context, id string, p accounts.Principal) {
	nid := a.ss.rotate(id, p)
	a.ss.endAccount(p.AccountID, nid)
	a.setCookie(c, nid)
}

// reauthenticate checks the password again, and with code the current
// second factor too, and lets the session change its 2-step verification
// for reauthWindow: start enrolling a factor with the password alone;
// replace it, turn it off or get new recovery codes with both. The session
// goes on under a new identifier: the one a re-authentication raised is
// never one that was seen before it.
func (a *authAPI) reauthenticate(c *gin.Context) {
	var req struct {
		Password string `json:"password"`
		Code     string `json:"code"`
	}
	if !bind(c, &req) {
		return
	}
	id, se := current(c)
	p, err := a.svc.Reauthenticate(c.Request.Context(), se.p, req.Password, req.Code, c.ClientIP())
	if err != nil {
		a.endIfItLocked(c, id, err)
		if errors.Is(err, accounts.ErrInvalidCode) { // like a wrong password: 401 means the session is gone
			writeAPIError(c, http.StatusForbidden, "invalid_code")
			return
		}
		a.fail(c, err)
		return
	}
	until := a.ss.cfg.Now().Add(reauthWindow)
	nid := a.ss.reissue(id, p, func(s *session) { s.reauthUntil = until })
	if nid == "" { // ended by another request (a logout) meanwhile
		a.clearCookie(c)
		writeAPIError(c, http.StatusUnauthorized, "login_required")
		return
	}
	a.setCookie(c, nid)
	c.JSON(http.StatusOK, gin.H{"status": "reauthenticated", "reauthenticated_until": until.UTC(),
		"second_factor_checked": req.Code != ""})
}

// sendReauthSMS sends the code of an SMS factor for a re-authentication,
// within the session's cap of codes.
func (a *authAPI) sendReauthSMS(c *gin.Context) {
	id, se := current(c)
	if se.smsSent >= smsPerSession {
		writeAPIMessage(c, http.StatusTooManyRequests, "throttled", "sms_session_limit")
		return
	}
	if err := a.svc.SendReauthSMS(c.Request.Context(), se.p); err != nil {
		a.fail(c, err)
		return
	}
	a.ss.update(id, func(s *session) { s.smsSent++ })
	c.JSON(http.StatusAccepted, gin.H{"status": "code_sent"})
}

// secondFactorState is the account's 2-step verification as the settings
// show it: the factor and how many recovery codes are left unused.
func (a *authAPI) secondFactorState(c *gin.Context) {
	_, se := current(c)
	acc, ok := a.svc.State().Account(se.p.AccountID)
	if !ok { // need checked it a moment ago; it cannot go away
		writeAPIError(c, http.StatusUnauthorized, "login_required")
		return
	}
	c.JSON(http.StatusOK, gin.H{"second_factor": acc.Factor, "recovery_codes_left": len(acc.RecoveryHashes)})
}

// disableFactor turns 2-step verification off (the password was entered
// again). The session gets a new identifier; every other session of the
// account ends, as after a password change.
func (a *authAPI) disableFactor(c *gin.Context) {
	id, se := current(c)
	p, err := a.svc.DisableSecondFactor(c.Request.Context(), se.p, c.ClientIP())
	if err != nil {
		a.fail(c, err)
		return
	}
	a.soleSession(c, id, p)
	c.JSON(http.StatusOK, gin.H{"account": p})
}

// newRecoveryCodes replaces the recovery codes (the password was entered
// again) and shows the new ones, this once.
func (a *authAPI) newRecoveryCodes(c *gin.Context) {
	_, se := current(c)
	codes, err := a.svc.NewRecoveryCodes(c.Request.Context(), se.p, c.ClientIP())
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"account": se.p, "recovery_codes": codes})
}

// endIfItLocked ends the session whose wrong password or code, entered in
// it, locked the account: whoever holds it guessed. A lock caused by login
// failures, which anyone who knows the user ID can cause, ends no session,
// so it cannot log the legitimate user out (DESIGN.md).
func (a *authAPI) endIfItLocked(c *gin.Context, id string, err error) {
	if errors.Is(err, accounts.ErrNowLocked) {
		a.ss.end(id)
		a.clearCookie(c)
	}
}

// fail maps a domain error to a status and a message code, and a refusal
// that passes with time to a Retry-After header.
func (a *authAPI) fail(c *gin.Context, err error) {
	if we, ok := errors.AsType[*accounts.WaitError](err); ok {
		c.Header("Retry-After", strconv.Itoa(max(1, int(math.Ceil(we.Wait.Seconds())))))
	}
	if errors.Is(err, accounts.ErrSessionEnded) { // changed in another session while this request was on its way
		if id := c.GetString("sid"); id != "" {
			a.ss.end(id)
		}
		a.clearCookie(c)
	}
	if errors.Is(err, accounts.ErrSMSThrottled) { // "throttled", with what to do about it
		writeAPIMessage(c, http.StatusTooManyRequests, "throttled", "sms_throttled")
		return
	}
	if errors.Is(err, accounts.ErrSMSPhoneThrottled) {
		writeAPIMessage(c, http.StatusTooManyRequests, "throttled", "sms_phone_throttled")
		return
	}
	codes := []struct {
		err    error
		status int
		code   string
	}{
		{accounts.ErrInvalidCredentials, http.StatusUnauthorized, "invalid_credentials"},
		{accounts.ErrThrottled, http.StatusTooManyRequests, "throttled"},
		{accounts.ErrInvalidCode, http.StatusUnauthorized, "invalid_code"},
		{accounts.ErrPasswordTooShort, http.StatusUnprocessableEntity, "password_too_short"},
		{accounts.ErrPasswordTooLong, http.StatusUnprocessableEntity, "password_too_long"},
		{accounts.ErrPasswordBreached, http.StatusUnprocessableEntity, "password_breached"},
		{accounts.ErrLoginIDInvalid, http.StatusUnprocessableEntity, "login_id_invalid"},
		{accounts.ErrLoginIDTaken, http.StatusConflict, "login_id_taken"},
		{accounts.ErrWrongStage, http.StatusForbidden, "wrong_stage"},
		{accounts.ErrPhoneInvalid, http.StatusUnprocessableEntity, "phone_invalid"},
		{accounts.ErrInvalidToken, http.StatusBadRequest, "invalid_token"},
		{accounts.ErrWrongPassword, http.StatusForbidden, "wrong_password"},
		{accounts.ErrPasswordSame, http.StatusUnprocessableEntity, "password_same"},
		{accounts.ErrSecondFactorSet, http.StatusConflict, "second_factor_set"},
		{accounts.ErrNoSecondFactor, http.StatusConflict, "no_second_factor"},
		{accounts.ErrNotOwner, http.StatusServiceUnavailable, "accounts_moved"},
		{accounts.ErrSessionEnded, http.StatusUnauthorized, "login_required"},
		{accounts.ErrOperatorNeedsFactor, http.StatusForbidden, "operator_needs_second_factor"},
		{accounts.ErrFactorCodeRequired, http.StatusForbidden, "second_factor_code_required"},
		{accounts.ErrOwnAccount, http.StatusForbidden, "own_account"},
	}
	for _, m := range codes {
		if errors.Is(err, m.err) {
			writeAPIError(c, m.status, m.code)
			return
		}
	}
	a.deps.Logger.Error("account request failed", "path", c.Request.URL.Path, "err", err)
	writeAPIError(c, http.StatusServiceUnavailable, "unavailable")
}
