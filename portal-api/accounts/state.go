package accounts

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mimamori/mimamori/events"
)

// Account is the state of one account as rebuilt from the log. It holds
// hashes and sealed values only.
type Account struct {
	ID, CustomerID, LoginID, Role string
	PasswordHash                  string
	PasswordVersion               int  // password changes so far: sessions of an older one have ended
	FactorVersion                 int  // second factors replaced or turned off so far: likewise
	LockVersion                   int  // hard locks so far: sessions from before a lock have ended
	Temporary                     bool // still on the temporary ID and password
	TempExpires                   time.Time
	TempUsed                      bool
	Factor                        string // "" until chosen
	TOTPSealed, PhoneSealed       string
	RecoveryHashes                []string
	LastTOTPStep                  int64
	Failures                      int
	// Locked: hard-locked now. A lock lifts itself LockDuration after the
	// account_locked event (LockedUntil), or at an operator's unlock or a
	// password reset, whichever comes first.
	Locked      bool
	LockedUntil time.Time
}

// LockDuration is how long a hard lock lasts. The lift is no event: it
// follows from the time of the lock event, so every owner, a restarted one
// and `mimamori account list` agree on it. The failures are not forgotten:
// the next one locks the account again at once.
const LockDuration = time.Hour

type customer struct {
	id, name, email string
	firstIssued     bool
}

type resetToken struct {
	accountID, customerID string
	expires               time.Time
}

// State is every customer's accounts, rebuilt by applying the accounts
// topic in order. Applying an event twice (an owner whose tail lags
// applies its own events itself, then the tail delivers them) changes
// nothing.
type State struct {
	now       func() time.Time // when locks lift
	mu        sync.RWMutex
	applied   chan struct{} // closed and replaced at every event applied
	seen      map[string]bool
	customers map[string]*customer
	accounts  map[string]*Account
	byLogin   map[string]string // lower-case login ID → account ID
	requests  map[string]*events.AccountRequested
	fulfilled map[string]bool // request IDs already issued
	resets    map[string]resetToken
	notices   map[string]notice // event ID → the security notice of that event, until its notice_sent
	// operatorOrg is the operator's own organisation: the customer of the
	// first operator account issued. Operator accounts are issued to it
	// only (the first operator request, `mimamori account request --role
	// operator`, names it).
	operatorOrg string
}

// NewState returns an empty state.
func NewState() *State { return newStateAt(time.Now) }

// newStateAt returns an empty state on the clock now.
func newStateAt(now func() time.Time) *State {
	return &State{now: now, applied: make(chan struct{}), seen: map[string]bool{}, customers: map[string]*customer{}, accounts: map[string]*Account{},
		byLogin: map[string]string{}, requests: map[string]*events.AccountRequested{}, fulfilled: map[string]bool{},
		resets: map[string]resetToken{}, notices: map[string]notice{}}
}

// Apply folds one event into the state. Events of other types are ignored.
func (s *State) Apply(e events.Envelope) error {
	p, err := events.Decode(e)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[e.ID] {
		return nil
	}
	s.seen[e.ID] = true
	defer func() { // runs before the unlock
		close(s.applied)
		s.applied = make(chan struct{})
	}()
	switch v := p.(type) {
	case *events.CustomerRegistered:
		if s.customers[v.CustomerID] == nil {
			s.customers[v.CustomerID] = &customer{id: v.CustomerID}
		}
		c := s.customers[v.CustomerID]
		c.name, c.email = v.Name, v.Email
	case *events.AccountRequested:
		// An operator account for another customer than the operator's
		// organisation is never issued (RequestAccount refuses to write
		// such a request; an older binary did not).
		if !s.fulfilled[v.RequestID] && s.checkRequestLocked(v.CustomerID, v.Role) == nil {
			s.requests[v.RequestID] = v
		}
	case *events.AccountIssued:
		s.accounts[v.AccountID] = &Account{ID: v.AccountID, CustomerID: v.CustomerID, LoginID: v.LoginID, Role: v.Role,
			PasswordHash: v.PasswordHash, Temporary: true, TempExpires: v.ExpiresAt}
		s.byLogin[strings.ToLower(v.LoginID)] = v.AccountID
		if c := s.customers[v.CustomerID]; c != nil && v.Reason == "registration" {
			c.firstIssued = true
		}
		if v.RequestID != "" {
			s.fulfilled[v.RequestID] = true
			delete(s.requests, v.RequestID)
		}
		if v.Role == events.RoleOperator && s.operatorOrg == "" {
			s.operatorOrg = v.CustomerID
			for id, r := range s.requests { // asked for before the first was issued
				if s.checkRequestLocked(r.CustomerID, r.Role) != nil {
					delete(s.requests, id)
				}
			}
		}
	case *events.AccountNoticeSent:
		delete(s.notices, v.EventID)
	}
	a := s.accountOf(p)
	if a == nil {
		return nil
	}
	switch v := p.(type) {
	case *events.AccountPasswordChanged:
		if kind := passwordNotice[v.Reason]; kind != "" {
			s.notices[e.ID] = notice{eventID: e.ID, kind: kind, customerID: a.CustomerID, accountID: a.ID,
				loginID: v.LoginID, at: v.ChangedAt}
		}
		delete(s.byLogin, strings.ToLower(a.LoginID))
		a.LoginID = v.LoginID
		s.byLogin[strings.ToLower(v.LoginID)] = a.ID
		a.PasswordHash, a.Temporary = v.PasswordHash, false
		a.PasswordVersion++
		if v.Reason == "reset" { // the holder proved the mailbox: a lock has done its work
			a.Locked, a.LockedUntil, a.Failures = false, time.Time{}, 0
		}
		// A new password voids every reset link mailed before it, not only
		// the one a reset used.
		for h, r := range s.resets {
			if r.accountID == a.ID {
				delete(s.resets, h)
			}
		}
	case *events.AccountLoginSucceeded:
		if v.Method == "temporary_password" {
			a.TempUsed = true
		}
		if v.TOTPStep > a.LastTOTPStep {
			a.LastTOTPStep = v.TOTPStep
		}
		if v.RecoveryCodeHash != "" {
			a.RecoveryHashes = remove(a.RecoveryHashes, v.RecoveryCodeHash)
		}
		// A passed password does not clear the failures of an account
		// with a second factor: guessing codes must still end in a lock. A
		// passed factor (at a login or a re-authentication) does.
		if factorMethod(v.Method) || a.Factor == "" || a.Factor == events.FactorNone {
			a.Failures = 0
		}
	case *events.AccountLoginFailed:
		a.Failures = v.Failures
	case *events.AccountLocked:
		a.Locked, a.LockedUntil = true, v.LockedAt.Add(LockDuration)
		a.LockVersion++
	case *events.AccountUnlocked:
		a.Locked, a.LockedUntil, a.Failures = false, time.Time{}, 0
	case *events.AccountSecondFactorChanged:
		c := factorChange(*a, v)
		if c == factorReplaced || c == factorTurnedOff {
			a.FactorVersion++
		}
		if c != factorDeclined {
			s.notices[e.ID] = notice{eventID: e.ID, kind: c, customerID: a.CustomerID, accountID: a.ID,
				loginID: a.LoginID, method: v.Method, at: v.ChangedAt}
		}
		a.Factor, a.TOTPSealed, a.PhoneSealed = v.Method, v.TOTPSecretSealed, v.PhoneSealed
		a.RecoveryHashes = nil
		if v.RecoveryCodeHashes != "" {
			a.RecoveryHashes = strings.Split(v.RecoveryCodeHashes, ",")
		}
	case *events.AccountPasswordResetRequested:
		s.resets[v.TokenHash] = resetToken{accountID: a.ID, customerID: a.CustomerID, expires: v.ExpiresAt}
	}
	return nil
}

// What a second_factor_changed event did to the account it applies to.
const (
	factorDeclined      = "declined"       // no factor before, none chosen (the first login's choice)
	factorSetUp         = "set_up"         // no factor before (none chosen yet, declined or turned off), one now
	factorReplaced      = "replaced"       // a factor before, a new one now (sealed anew, even the same number)
	factorTurnedOff     = "turned_off"     // a factor before, none now
	factorRecoveryCodes = "recovery_codes" // the same factor, byte for byte, with new recovery codes
)

// factorChange tells what v does to the account a as it was before it.
// The log has no field for it: new recovery codes copy the sealed secret
// or number byte for byte, and a replacement seals anew (a fresh nonce), so
// the two are told apart by the sealed values.
func factorChange(a Account, v *events.AccountSecondFactorChanged) string {
	had := hasFactor(a)
	switch {
	case !had && v.Method == events.FactorNone:
		return factorDeclined
	case !had:
		return factorSetUp
	case v.Method == events.FactorNone:
		return factorTurnedOff
	case v.Method == a.Factor && v.TOTPSecretSealed == a.TOTPSealed && v.PhoneSealed == a.PhoneSealed:
		return factorRecoveryCodes
	}
	return factorReplaced
}

// unsentNotices returns the security notices of the changes made at or
// after since that have no notice_sent record yet, oldest first.
func (s *State) unsentNotices(since time.Time) []notice {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []notice
	for _, n := range s.notices {
		if !n.at.Before(since) {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b notice) int { return a.at.Compare(b.at) })
	return out
}

// unsentNotice returns the security notice of an event, if it has one and
// no notice_sent record yet.
func (s *State) unsentNotice(eventID string) (notice, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n, ok := s.notices[eventID]
	return n, ok
}

// waitApplied returns once every event ID has been applied, or with the
// error of ctx.
func (s *State) waitApplied(ctx context.Context, ids []string) error {
	for {
		s.mu.RLock()
		all := true
		for _, id := range ids {
			all = all && s.seen[id]
		}
		next := s.applied
		s.mu.RUnlock()
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-next:
		}
	}
}

// accountOf returns the account an account event is about, or nil.
func (s *State) accountOf(p events.Payload) *Account {
	var id string
	switch v := p.(type) {
	case *events.AccountPasswordChanged:
		id = v.AccountID
	case *events.AccountLoginSucceeded:
		id = v.AccountID
	case *events.AccountLoginFailed:
		id = v.AccountID
	case *events.AccountLocked:
		id = v.AccountID
	case *events.AccountUnlocked:
		id = v.AccountID
	case *events.AccountSecondFactorChanged:
		id = v.AccountID
	case *events.AccountPasswordResetRequested:
		id = v.AccountID
	default:
		return nil
	}
	a := s.accounts[id]
	if a == nil || a.CustomerID != p.Key() {
		return nil
	}
	return a
}

func remove(list []string, x string) []string {
	out := list[:0:0]
	for _, v := range list {
		if v != x {
			out = append(out, v)
		}
	}
	return out
}

// Account returns a copy of an account, locked if its lock still lasts.
func (s *State) Account(id string) (Account, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a := s.accounts[id]
	if a == nil {
		return Account{}, false
	}
	c := *a
	c.RecoveryHashes = append([]string(nil), a.RecoveryHashes...)
	c.Locked = a.Locked && s.now().Before(a.LockedUntil)
	return c, true
}

// ByLogin returns the account with a login ID (case-insensitive).
func (s *State) ByLogin(loginID string) (Account, bool) {
	s.mu.RLock()
	id, ok := s.byLogin[strings.ToLower(loginID)]
	s.mu.RUnlock()
	if !ok {
		return Account{}, false
	}
	return s.Account(id)
}

// Accounts lists the accounts of a customer ("" for all).
func (s *State) Accounts(customerID string) []Account {
	s.mu.RLock()
	var ids []string
	for id, a := range s.accounts {
		if customerID == "" || a.CustomerID == customerID {
			ids = append(ids, id)
		}
	}
	s.mu.RUnlock()
	out := make([]Account, 0, len(ids))
	for _, id := range ids {
		if a, ok := s.Account(id); ok {
			out = append(out, a)
		}
	}
	return out
}

func (s *State) customer(id string) (customer, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := s.customers[id]
	if c == nil {
		return customer{}, false
	}
	return *c, true
}

func (s *State) reset(tokenHash string) (resetToken, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.resets[tokenHash]
	return r, ok
}

// pending lists what the owner still has to issue: customers without their
// first account and operator requests not yet fulfilled.
func (s *State) pending() (custs []string, reqs []events.AccountRequested) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for id, c := range s.customers {
		if !c.firstIssued {
			custs = append(custs, id)
		}
	}
	for _, r := range s.requests {
		if s.customers[r.CustomerID] != nil {
			reqs = append(reqs, *r)
		}
	}
	return custs, reqs
}

// CustomerInfo is a customer as the accounts owner knows it.
type CustomerInfo struct{ ID, Name string }

// Customers lists every registered customer, by ID.
func (s *State) Customers() []CustomerInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]CustomerInfo, 0, len(s.customers))
	for _, c := range s.customers {
		out = append(out, CustomerInfo{ID: c.id, Name: c.name})
	}
	slices.SortFunc(out, func(a, b CustomerInfo) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// OperatorOrganisation is the customer ID of the operator's own
// organisation, the only customer operator accounts are issued to: the
// customer of the first operator account issued, "" before that.
func (s *State) OperatorOrganisation() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.operatorOrg
}

// checkRequest refuses a request of an account with role for a customer
// (RequestAccount).
func (s *State) checkRequest(customerID, role string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.customers[customerID] == nil {
		return fmt.Errorf("%w: %q", ErrUnknownCustomer, customerID)
	}
	if role != events.RoleCustomerAdmin && role != events.RoleOperator {
		return fmt.Errorf("%w, not %q", ErrRoleInvalid, role)
	}
	return s.checkRequestLocked(customerID, role)
}

// checkRequestLocked is the operator-role rule; the caller holds s.mu.
func (s *State) checkRequestLocked(customerID, role string) error {
	if role == events.RoleOperator && s.operatorOrg != "" && customerID != s.operatorOrg {
		return fmt.Errorf("%w (%s), not %s", ErrOperatorElsewhere, s.operatorOrg, customerID)
	}
	return nil
}

// HasCustomer tells whether a customer is registered.
func (s *State) HasCustomer(id string) bool {
	_, ok := s.customer(id)
	return ok
}
