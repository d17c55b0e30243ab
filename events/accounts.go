package events

import "time"

// Event types of portal accounts (issue 4, R-30 to R-33). All of them are on
// the accounts topic, keyed by customer ID, written by the accounts owner of
// that customer (portal-api/accounts) or, for requests and unlocks, by the
// operator's command line. No payload carries a secret in clear: passwords,
// recovery codes and tokens appear only as hashes, TOTP secrets and phone
// numbers only sealed with a key held outside the log.
const (
	TypeAccountIssued                 = "mimamori.account.issued.v1"
	TypeAccountRequested              = "mimamori.account.requested.v1"
	TypeAccountPasswordChanged        = "mimamori.account.password_changed.v1"
	TypeAccountLoginSucceeded         = "mimamori.account.login_succeeded.v1"
	TypeAccountLoginFailed            = "mimamori.account.login_failed.v1"
	TypeAccountLocked                 = "mimamori.account.locked.v1"
	TypeAccountUnlocked               = "mimamori.account.unlocked.v1"
	TypeAccountSecondFactorChanged    = "mimamori.account.second_factor_changed.v1"
	TypeAccountPasswordResetRequested = "mimamori.account.password_reset_requested.v1"
	TypeAccountLoggedOut              = "mimamori.account.logged_out.v1"
	TypeOperatorViewedCustomer        = "mimamori.account.operator_viewed_customer.v1"
	TypeAccountNoticeSent             = "mimamori.account.notice_sent.v1"
)

// StepReauthentication is the login step of a logged-in user who enters
// the password again.
const StepReauthentication = "reauthentication"

// Account roles.
const (
	RoleCustomerAdmin = "customer_admin"
	RoleOperator      = "operator"
)

// Second-factor methods; "none" is the customer's explicit choice.
const (
	FactorTOTP = "totp"
	FactorSMS  = "sms"
	FactorNone = "none"
)

func (v *validator) account(customerID, accountID string) {
	v.required("customer_id", customerID)
	v.max("customer_id", customerID, maxShort)
	v.required("account_id", accountID)
	v.max("account_id", accountID, maxShort)
}

// AccountIssued records a new account with a temporary user ID and the
// argon2id hash of its temporary password, which was mailed to the
// customer's registered address. Reason is "registration" for the
// first account of a customer, "request" for one an operator asked for.
type AccountIssued struct {
	CustomerID   string    `json:"customer_id"`
	AccountID    string    `json:"account_id"`
	LoginID      string    `json:"login_id"`
	Role         string    `json:"role"`
	PasswordHash string    `json:"password_hash"`
	ExpiresAt    time.Time `json:"expires_at"`
	Reason       string    `json:"reason"`
	RequestID    string    `json:"request_id"`
	IssuedAt     time.Time `json:"issued_at"`
}

func (*AccountIssued) EventType() string { return TypeAccountIssued }
func (*AccountIssued) Topic() string     { return TopicAccounts }
func (a *AccountIssued) Key() string     { return a.CustomerID }
func (a *AccountIssued) Validate() error {
	var v validator
	v.account(a.CustomerID, a.AccountID)
	v.required("login_id", a.LoginID)
	v.max("login_id", a.LoginID, maxShort)
	v.oneOf("role", a.Role, RoleCustomerAdmin, RoleOperator)
	v.required("password_hash", a.PasswordHash)
	v.max("password_hash", a.PasswordHash, maxShort)
	v.time("expires_at", a.ExpiresAt)
	v.oneOf("reason", a.Reason, "registration", "request")
	v.max("request_id", a.RequestID, maxShort)
	v.time("issued_at", a.IssuedAt)
	return v.err()
}

// AccountRequested records an operator's request for one more account of a
// customer. The accounts owner issues it and mails the temporary
// credentials to the customer's registered address: the operator never sees
// them.
type AccountRequested struct {
	CustomerID  string    `json:"customer_id"`
	RequestID   string    `json:"request_id"`
	Role        string    `json:"role"`
	RequestedBy string    `json:"requested_by"`
	RequestedAt time.Time `json:"requested_at"`
}

func (*AccountRequested) EventType() string { return TypeAccountRequested }
func (*AccountRequested) Topic() string     { return TopicAccounts }
func (a *AccountRequested) Key() string     { return a.CustomerID }
func (a *AccountRequested) Validate() error {
	var v validator
	v.required("customer_id", a.CustomerID)
	v.max("customer_id", a.CustomerID, maxShort)
	v.required("request_id", a.RequestID)
	v.max("request_id", a.RequestID, maxShort)
	v.oneOf("role", a.Role, RoleCustomerAdmin, RoleOperator)
	v.max("requested_by", a.RequestedBy, maxShort)
	v.time("requested_at", a.RequestedAt)
	return v.err()
}

// AccountPasswordChanged records a new password (its argon2id hash) and,
// on the first login, the user ID the customer chose. Reason is
// "first_login", "reset" (a reset names the hash of the token it used) or
// "change" (a logged-in user who entered the current password again). Every
// session the account had before it ends.
type AccountPasswordChanged struct {
	CustomerID     string    `json:"customer_id"`
	AccountID      string    `json:"account_id"`
	LoginID        string    `json:"login_id"`
	PasswordHash   string    `json:"password_hash"`
	Reason         string    `json:"reason"`
	ResetTokenHash string    `json:"reset_token_hash"`
	ChangedAt      time.Time `json:"changed_at"`
}

func (*AccountPasswordChanged) EventType() string { return TypeAccountPasswordChanged }
func (*AccountPasswordChanged) Topic() string     { return TopicAccounts }
func (a *AccountPasswordChanged) Key() string     { return a.CustomerID }
func (a *AccountPasswordChanged) Validate() error {
	var v validator
	v.account(a.CustomerID, a.AccountID)
	v.required("login_id", a.LoginID)
	v.max("login_id", a.LoginID, maxShort)
	v.required("password_hash", a.PasswordHash)
	v.max("password_hash", a.PasswordHash, maxShort)
	v.oneOf("reason", a.Reason, "first_login", "reset", "change")
	if a.Reason == "reset" {
		v.required("reset_token_hash", a.ResetTokenHash)
	}
	v.max("reset_token_hash", a.ResetTokenHash, maxShort)
	v.time("changed_at", a.ChangedAt)
	return v.err()
}

// AccountLoginSucceeded records a passed login step: "password" (the
// first step), "second_factor", or "reauthentication" (a logged-in user
// entered the password again before a sensitive change, such as enrolling
// a second factor from the settings). TOTPStep is the RFC 6238 time step
// of an accepted TOTP code, so that no code is accepted twice, even after
// a restart; RecoveryCodeHash names a recovery code that is now spent (its
// stored hash). A re-authentication that also passed the second factor
// writes a second event of its step with the factor's method.
type AccountLoginSucceeded struct {
	CustomerID       string    `json:"customer_id"`
	AccountID        string    `json:"account_id"`
	SourceIP         string    `json:"source_ip"`
	Step             string    `json:"step"`
	Method           string    `json:"method"`
	TOTPStep         int64     `json:"totp_step"`
	RecoveryCodeHash string    `json:"recovery_code_hash"`
	SucceededAt      time.Time `json:"succeeded_at"`
}

func (*AccountLoginSucceeded) EventType() string { return TypeAccountLoginSucceeded }
func (*AccountLoginSucceeded) Topic() string     { return TopicAccounts }
func (a *AccountLoginSucceeded) Key() string     { return a.CustomerID }
func (a *AccountLoginSucceeded) Validate() error {
	var v validator
	v.account(a.CustomerID, a.AccountID)
	v.ip("source_ip", a.SourceIP, false)
	v.oneOf("step", a.Step, "password", "second_factor", StepReauthentication)
	v.oneOf("method", a.Method, "password", "temporary_password", FactorTOTP, FactorSMS, "recovery_code")
	v.max("recovery_code_hash", a.RecoveryCodeHash, maxShort)
	v.time("succeeded_at", a.SucceededAt)
	return v.err()
}

// AccountLoginFailed records a failed login step of a known account (the
// steps of AccountLoginSucceeded). Failures is the count of consecutive
// failures including this one.
type AccountLoginFailed struct {
	CustomerID string    `json:"customer_id"`
	AccountID  string    `json:"account_id"`
	SourceIP   string    `json:"source_ip"`
	Step       string    `json:"step"`
	Reason     string    `json:"reason"`
	Failures   int       `json:"failures"`
	FailedAt   time.Time `json:"failed_at"`
}

func (*AccountLoginFailed) EventType() string { return TypeAccountLoginFailed }
func (*AccountLoginFailed) Topic() string     { return TopicAccounts }
func (a *AccountLoginFailed) Key() string     { return a.CustomerID }
func (a *AccountLoginFailed) Validate() error {
	var v validator
	v.account(a.CustomerID, a.AccountID)
	v.ip("source_ip", a.SourceIP, false)
	v.oneOf("step", a.Step, "password", "second_factor", StepReauthentication)
	v.required("reason", a.Reason)
	v.max("reason", a.Reason, maxShort)
	if a.Failures < 1 {
		v.fail("failures", "must be at least 1, got %d", a.Failures)
	}
	v.time("failed_at", a.FailedAt)
	return v.err()
}

// AccountLocked records a hard lock after repeated failures; only an
// operator lifts it (AccountUnlocked).
type AccountLocked struct {
	CustomerID string    `json:"customer_id"`
	AccountID  string    `json:"account_id"`
	Failures   int       `json:"failures"`
	LockedAt   time.Time `json:"locked_at"`
}

func (*AccountLocked) EventType() string { return TypeAccountLocked }
func (*AccountLocked) Topic() string     { return TopicAccounts }
func (a *AccountLocked) Key() string     { return a.CustomerID }
func (a *AccountLocked) Validate() error {
	var v validator
	v.account(a.CustomerID, a.AccountID)
	v.time("locked_at", a.LockedAt)
	return v.err()
}

// AccountUnlocked records an operator lifting a lock.
type AccountUnlocked struct {
	CustomerID string    `json:"customer_id"`
	AccountID  string    `json:"account_id"`
	UnlockedBy string    `json:"unlocked_by"`
	UnlockedAt time.Time `json:"unlocked_at"`
}

func (*AccountUnlocked) EventType() string { return TypeAccountUnlocked }
func (*AccountUnlocked) Topic() string     { return TopicAccounts }
func (a *AccountUnlocked) Key() string     { return a.CustomerID }
func (a *AccountUnlocked) Validate() error {
	var v validator
	v.account(a.CustomerID, a.AccountID)
	v.max("unlocked_by", a.UnlockedBy, maxShort)
	v.time("unlocked_at", a.UnlockedAt)
	return v.err()
}

// AccountSecondFactorChanged records the 2-step verification chosen:
// at the first login, or later from the settings, where a user who entered
// the password again enrols a factor, replaces it (the new method and
// values), turns it off (method "none", as a decline) or gets new recovery
// codes (the method and the sealed values unchanged, byte for byte, with
// new hashes). The event replaces the account's factor and recovery codes
// as a whole. The TOTP secret and the phone number are sealed (AES-256-GCM)
// with a key kept outside the log; RecoveryCodeHashes are the hashes of the
// codes joined by commas (the codes themselves are shown once and never
// stored): argon2id PHC strings with ':' between their parameters, one salt
// per set, or, in sets written before issue 10, SHA-256 hex digests.
type AccountSecondFactorChanged struct {
	CustomerID         string    `json:"customer_id"`
	AccountID          string    `json:"account_id"`
	Method             string    `json:"method"`
	TOTPSecretSealed   string    `json:"totp_secret_sealed"`
	PhoneSealed        string    `json:"phone_sealed"`
	RecoveryCodeHashes string    `json:"recovery_code_hashes"`
	ChangedAt          time.Time `json:"changed_at"`
}

func (*AccountSecondFactorChanged) EventType() string { return TypeAccountSecondFactorChanged }
func (*AccountSecondFactorChanged) Topic() string     { return TopicAccounts }
func (a *AccountSecondFactorChanged) Key() string     { return a.CustomerID }
func (a *AccountSecondFactorChanged) Validate() error {
	var v validator
	v.account(a.CustomerID, a.AccountID)
	v.oneOf("method", a.Method, FactorTOTP, FactorSMS, FactorNone)
	if a.Method == FactorTOTP {
		v.required("totp_secret_sealed", a.TOTPSecretSealed)
	}
	if a.Method == FactorSMS {
		v.required("phone_sealed", a.PhoneSealed)
	}
	v.max("totp_secret_sealed", a.TOTPSecretSealed, maxShort)
	v.max("phone_sealed", a.PhoneSealed, maxShort)
	v.max("recovery_code_hashes", a.RecoveryCodeHashes, maxLong)
	v.time("changed_at", a.ChangedAt)
	return v.err()
}

// AccountPasswordResetRequested records that a reset link was mailed to the
// customer's registered address. Only the token's SHA-256 is kept.
type AccountPasswordResetRequested struct {
	CustomerID  string    `json:"customer_id"`
	AccountID   string    `json:"account_id"`
	TokenHash   string    `json:"token_hash"`
	ExpiresAt   time.Time `json:"expires_at"`
	RequestedAt time.Time `json:"requested_at"`
}

func (*AccountPasswordResetRequested) EventType() string { return TypeAccountPasswordResetRequested }
func (*AccountPasswordResetRequested) Topic() string     { return TopicAccounts }
func (a *AccountPasswordResetRequested) Key() string     { return a.CustomerID }
func (a *AccountPasswordResetRequested) Validate() error {
	var v validator
	v.account(a.CustomerID, a.AccountID)
	v.required("token_hash", a.TokenHash)
	v.max("token_hash", a.TokenHash, maxShort)
	v.time("expires_at", a.ExpiresAt)
	v.time("requested_at", a.RequestedAt)
	return v.err()
}

// AccountLoggedOut records the end of a session by the user.
type AccountLoggedOut struct {
	CustomerID  string    `json:"customer_id"`
	AccountID   string    `json:"account_id"`
	LoggedOutAt time.Time `json:"logged_out_at"`
}

func (*AccountLoggedOut) EventType() string { return TypeAccountLoggedOut }
func (*AccountLoggedOut) Topic() string     { return TopicAccounts }
func (a *AccountLoggedOut) Key() string     { return a.CustomerID }
func (a *AccountLoggedOut) Validate() error {
	var v validator
	v.account(a.CustomerID, a.AccountID)
	v.time("logged_out_at", a.LoggedOutAt)
	return v.err()
}

// OperatorViewedCustomer records an operator reading a customer's data in
// the portal (its accounts, dashboards, an alert, a notice), written before
// the data is shown: the customer's own audit trail of who at the
// operations team looked at what. Keyed by the customer viewed; the
// operator is an account of the operator's organisation.
type OperatorViewedCustomer struct {
	CustomerID         string    `json:"customer_id"`
	OperatorCustomerID string    `json:"operator_customer_id"`
	OperatorAccountID  string    `json:"operator_account_id"`
	Route              string    `json:"route"`  // the API route, e.g. /api/v1/operator/customers/:customer/alerts/:id
	Object             string    `json:"object"` // the alert or notice ID of a detail, else ""
	SourceIP           string    `json:"source_ip"`
	ViewedAt           time.Time `json:"viewed_at"`
}

func (*OperatorViewedCustomer) EventType() string { return TypeOperatorViewedCustomer }
func (*OperatorViewedCustomer) Topic() string     { return TopicAccounts }
func (o *OperatorViewedCustomer) Key() string     { return o.CustomerID }
func (o *OperatorViewedCustomer) Validate() error {
	var v validator
	v.required("customer_id", o.CustomerID)
	v.max("customer_id", o.CustomerID, maxShort)
	v.account(o.OperatorCustomerID, o.OperatorAccountID)
	v.required("route", o.Route)
	v.max("route", o.Route, maxShort)
	v.max("object", o.Object, maxShort)
	v.ip("source_ip", o.SourceIP, false)
	v.time("viewed_at", o.ViewedAt)
	return v.err()
}

// AccountNoticeSent records that the security notice of an account event
// (a password changed or reset, a second factor set up, replaced or turned
// off, new recovery codes) was accepted by the mail relay. EventID is the
// ID of that event, and the notice's Message-ID is derived from it. An
// event with a notice and no such record is mailed again by the next
// accounts owner (within its recovery window), so a notice survives a
// crash between the change and its mail.
type AccountNoticeSent struct {
	CustomerID string    `json:"customer_id"`
	AccountID  string    `json:"account_id"`
	EventID    string    `json:"event_id"`
	SentAt     time.Time `json:"sent_at"`
}

func (*AccountNoticeSent) EventType() string { return TypeAccountNoticeSent }
func (*AccountNoticeSent) Topic() string     { return TopicAccounts }
func (a *AccountNoticeSent) Key() string     { return a.CustomerID }
func (a *AccountNoticeSent) Validate() error {
	var v validator
	v.account(a.CustomerID, a.AccountID)
	v.required("event_id", a.EventID)
	v.max("event_id", a.EventID, maxShort)
	v.time("sent_at", a.SentAt)
	return v.err()
}
