package accounts

import (
	"strings"
	"sync"
	"time"

	"github.com/mimamori/mimamori/portal-api/ratelimit"
)

// throttles are the caps on what costs a guess, a mailbox or money: the
// delays of login IDs and the failures of source addresses (logins and
// re-authentications), the reset mails of login IDs and source
// addresses, and the SMS codes of accounts and phone numbers. They live
// in memory: a restart forgets them, never a hard lock (an event).
type throttles struct {
	idLim    *limiter           // failures per login ID, known or not
	ipLim    *ratelimit.Limiter // failures per source address, decaying
	resetID  *window            // reset mails per login ID
	resetIP  *window            // reset requests per source address
	smsLim   *window            // codes per account
	smsPhone *window            // enrolment codes per phone number, across accounts
	smsCaps  sync.Mutex         // checks and counts a send against every cap at once
}

// resetWindow is the period of the reset caps (Config.ResetsPerID and
// ResetsPerIP): the life of a reset link, so a customer whose mailbox an
// attacker filled up to the cap holds links that still work.
const resetWindow = time.Hour

func newThrottles(cfg Config) *throttles {
	return &throttles{
		idLim:    newLimiter(cfg.FreeFailures, cfg.ThrottleBase, 15*time.Minute),
		ipLim:    ratelimit.New(cfg.IPFreeFailures, cfg.IPFailureDecay),
		resetID:  newWindow(cfg.ResetsPerID, resetWindow, 0),
		resetIP:  newWindow(cfg.ResetsPerIP, resetWindow, 0),
		smsLim:   newWindow(cfg.SMSPerDay, 24*time.Hour, cfg.SMSInterval),
		smsPhone: newWindow(cfg.SMSPerPhone, 24*time.Hour, 0),
	}
}

// checkLogin checks the delays of a login ID; fail counts a failure against
// it and against the source address (ratelimit.Client: an IPv6 /64 is one
// address). A refusal is a *WaitError of ErrThrottled that says when the
// delay ends; a login ID's delays are the same whether it exists or not.
// The source address never refuses by itself: many users may share one
// (an office behind one NAT), and anyone could make it refuse them all.
// Past its free failures (IPFreeFailures, forgotten one every
// IPFailureDecay) its next failures start the delays of the login IDs they
// name at once, without their free failures.
func (t *throttles) checkLogin(loginID, ip string, now time.Time) (fail func(), err error) {
	idKey, ipKey := loginKey(loginID), ratelimit.Client(ip)
	if wait := t.idLim.wait(idKey, now); wait > 0 {
		return nil, &WaitError{Err: ErrThrottled, Wait: wait}
	}
	return func() {
		hot := t.ipLim.Wait(ipKey, now) > 0
		t.ipLim.Add(ipKey, now)
		t.idLim.fail(idKey, now, hot)
	}, nil
}

func loginKey(loginID string) string { return "id:" + strings.ToLower(loginID) }

// loginPassed forgets the delays of a login ID: its password was right,
// an operator unlocked its account, or its holder reset the password.
func (t *throttles) loginPassed(loginID string) { t.idLim.reset(loginKey(loginID)) }

// resetAllowed checks a reset request against the caps of its source
// address (ratelimit.Client), which counts every request it lets through,
// and of its login ID, which counts only those that then send a mail: a
// flood of one ID uses up its source's allowance, while the ID's own cap
// frees up as soon as its mails age out. An address past its cap still
// gets the first mail of the hour of a login ID: many users may share one
// address, and one of them flooding it must not stop the others' resets.
func (t *throttles) resetAllowed(loginID, ip string, now time.Time) bool {
	id := strings.ToLower(loginID)
	if t.resetIP.take(ratelimit.Client(ip), now) > 0 {
		return t.resetID.takeFirst(id, now)
	}
	return t.resetID.take(id, now) == 0
}

// takeSMS counts a send against the caps, or refuses it and counts
// nothing. Besides the account's caps, a number typed into an enrolment
// gets at most Config.SMSPerPhone codes in 24 hours, whichever account
// asks, so that one number is not pumped through many accounts. Login codes
// go to a number the account verified and are left out of that count:
// otherwise anyone with an account could type a victim's number into
// enrolments until the victim's own login codes stopped.
func (t *throttles) takeSMS(accountID, purpose, phone string, now time.Time) error {
	t.smsCaps.Lock()
	defer t.smsCaps.Unlock()
	if wait := t.smsLim.wait(accountID, now); wait > 0 {
		return &WaitError{Err: ErrSMSThrottled, Wait: wait}
	}
	if purpose == smsEnrol {
		if wait := t.smsPhone.take(phone, now); wait > 0 {
			return &WaitError{Err: ErrSMSPhoneThrottled, Wait: wait}
		}
	}
	t.smsLim.take(accountID, now)
	return nil
}

// smsUsed lifts the gap after an account's last code: it was entered, so
// the next one is no repeat of it.
func (t *throttles) smsUsed(accountID string) { t.smsLim.used(accountID) }

// limiter counts consecutive failures per key (a login ID, known or not)
// and, past a free allowance, makes the key wait an exponentially growing
// delay after each failure. It lives in memory: a restart forgets the
// delays, never the hard locks (those are events).
type limiter struct {
	free    int           // failures allowed without delay
	base    time.Duration // first delay
	maxWait time.Duration

	mu   sync.Mutex
	keys map[string]*failures
}

type failures struct {
	n    int
	last time.Time
}

func newLimiter(free int, base, maxWait time.Duration) *limiter {
	return &limiter{free: free, base: base, maxWait: maxWait, keys: map[string]*failures{}}
}

// wait is how long key must wait before its next try: 0 when it may try
// now.
func (l *limiter) wait(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.keys[key]
	if f == nil || f.n < l.free {
		return 0
	}
	delay := min(l.base<<min(f.n-l.free, 20), l.maxWait)
	return max(f.last.Add(delay).Sub(now), 0)
}

// fail counts a failure of key; a hot one (from a source address past its
// own allowance) uses up the free failures at once.
func (l *limiter) fail(key string, now time.Time, hot bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.keys) > 100000 { // bounded: a flood of made-up names cannot exhaust memory
		clear(l.keys)
	}
	f := l.keys[key]
	if f == nil {
		f = &failures{}
		l.keys[key] = f
	}
	f.n++
	if hot {
		f.n = max(f.n, l.free)
	}
	f.last = now
}

func (l *limiter) reset(key string) {
	l.mu.Lock()
	delete(l.keys, key)
	l.mu.Unlock()
}

// window caps the events of a key (a login ID, a source address, an
// account, a phone number) within a sliding period, and can keep a minimum gap after the
// last one: reset mails and SMS codes, which cost the customer's mailbox
// or money rather than a guess. Like limiter it lives in memory.
type window struct {
	max int           // events within per
	per time.Duration // the sliding period
	gap time.Duration // after an event, before the next one (0: none)

	mu   sync.Mutex
	keys map[string]*recent
}

type recent struct {
	at    []time.Time // within per, oldest first
	noGap bool        // the last event was used up (a code entered): no gap after it
}

func newWindow(n int, per, gap time.Duration) *window {
	return &window{max: n, per: per, gap: gap, keys: map[string]*recent{}}
}

// waitLocked is how long key must wait before its next event: 0 when it
// may have one now.
func (w *window) waitLocked(key string, now time.Time) time.Duration {
	r := w.keys[key]
	if r == nil {
		return 0
	}
	r.prune(now, w.per)
	var d time.Duration
	if n := len(r.at); n >= w.max {
		d = r.at[n-w.max].Add(w.per).Sub(now)
	}
	if n := len(r.at); n > 0 && w.gap > 0 && !r.noGap {
		d = max(d, r.at[n-1].Add(w.gap).Sub(now))
	}
	return max(d, 0)
}

func (w *window) addLocked(key string, now time.Time) {
	if len(w.keys) > 100000 { // bounded: forget what has passed, and all if that is not enough
		for k, r := range w.keys {
			if r.prune(now, w.per); len(r.at) == 0 {
				delete(w.keys, k)
			}
		}
		if len(w.keys) > 100000 {
			clear(w.keys)
		}
	}
	r := w.keys[key]
	if r == nil {
		r = &recent{}
		w.keys[key] = r
	}
	r.at = append(r.at, now)
	r.noGap = false
}

// take counts an event of key if it may have one now, and otherwise
// returns how long it must wait.
func (w *window) take(key string, now time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if d := w.waitLocked(key, now); d > 0 {
		return d
	}
	w.addLocked(key, now)
	return 0
}

// takeFirst counts an event of key if it has had none within the period.
func (w *window) takeFirst(key string, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if r := w.keys[key]; r != nil {
		if r.prune(now, w.per); len(r.at) > 0 {
			return false
		}
	}
	w.addLocked(key, now)
	return true
}

// wait is how long key must wait before its next event, counting
// nothing: 0 when it may have one now.
func (w *window) wait(key string, now time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.waitLocked(key, now)
}

// used lifts the gap after the last event of key: its purpose was served
// (the code it sent was entered), so the next one is no repeat.
func (w *window) used(key string) {
	w.mu.Lock()
	if r := w.keys[key]; r != nil {
		r.noGap = true
	}
	w.mu.Unlock()
}

func (r *recent) prune(now time.Time, per time.Duration) {
	i := 0
	for i < len(r.at) && !r.at[i].Add(per).After(now) {
		i++
	}
	r.at = r.at[i:]
}
