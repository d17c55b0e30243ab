package accounts

import (
	"context"
	"time"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/retry"
	"github.com/mimamori/mimamori/schemas/messages"
)

// Security notices: a mail to the customer's registered address (where the
// reset links go) when an account's credentials change, so that a change
// its owner did not make does not go unnoticed. What changed: the kinds
// below, and the factor changes of factorChange but a decline.
const (
	noticePasswordChange = "password_change" // from the settings (not the first login's)
	noticePasswordReset  = "password_reset"
)

// passwordNotice is the notice kind of a password_changed event's reason.
var passwordNotice = map[string]string{"change": noticePasswordChange, "reset": noticePasswordReset}

// Tries of a notice mail, the first retry after at most noticeRetry,
// doubling (the one retry policy, events/retry); a notice whose tries all
// failed is tried again by the sweep noticeResweep
// later. The Message-ID is the same every time, so a mail delivered
// although its send reported a failure shows as the duplicate it is.
const (
	noticeTries   = 3
	noticeRetry   = time.Second
	noticeResweep = 5 * time.Minute
)

// notice is one security notice, derived from its event when the state
// applies it, queued by the command that wrote the event (with the
// request's address) or by the sweep, and mailed by the owner's loop (Run),
// like the reset mails.
type notice struct {
	eventID    string // the event it tells of: its mail's Message-ID is derived from it
	kind       string // noticePasswordChange, noticePasswordReset or a factorChange
	customerID string
	accountID  string
	loginID    string
	method     string // the new second factor (set up, replaced)
	ip         string // the source address of the request
	at         time.Time
}

// notifyChange queues the security notice of a change just written and
// applied, if it has one (a decline has none), naming ip, the request's
// source address. The caller holds the customer's owner lock.
func (s *Service) notifyChange(eventID, ip string) {
	if n, ok := s.state.unsentNotice(eventID); ok {
		n.ip = ip
		s.notify(n)
	}
}

// notify queues a notice unless it is queued or being mailed already. The
// caller holds the customer's owner lock. A notice that finds the queue
// full is left to the sweep (logged): the change stands either way.
func (s *Service) notify(n notice) {
	s.noticeMu.Lock()
	defer s.noticeMu.Unlock()
	if s.noticeBusy[n.eventID] {
		return
	}
	select {
	case s.notices <- n:
		s.noticeBusy[n.eventID] = true
	default:
		s.log.Error("security notice not queued: too many waiting; tried again later", "account", n.accountID, "event", n.eventID, "kind", n.kind)
	}
}

// sweepNotices queues the notices of the last NoticeRecovery that the log
// has no notice_sent record for and that are not queued already: at the
// start of an owner, those an earlier owner did not get out (it crashed,
// stopped, or the relay was down); later, those whose tries all failed,
// again every noticeResweep. Each is queued under its customer's owner
// lock, so a command that has written a change but not yet queued its
// notice (with the request's address) is waited for, not raced.
func (s *Service) sweepNotices() {
	if s.fenced.Load() {
		return // the new owner mails them
	}
	now := s.cfg.Now()
	for _, n := range s.state.unsentNotices(now.Add(-s.cfg.NoticeRecovery)) {
		s.noticeMu.Lock()
		tried, failed := s.noticeTried[n.eventID]
		s.noticeMu.Unlock()
		if failed && now.Sub(tried) < noticeResweep {
			continue
		}
		unlock := s.owner(n.customerID)
		if _, ok := s.state.unsentNotice(n.eventID); ok {
			s.notify(n)
		}
		unlock()
	}
}

// mailNotice sends a notice, trying noticeTries times, and records it
// sent. A notice not sent stays unsent in the log: the sweep tries it
// again later, or the next owner to start (within NoticeRecovery). A crash
// between the relay's acceptance and the record sends it once more, with
// the same Message-ID.
func (s *Service) mailNotice(ctx context.Context, n notice) {
	mailed, recorded := false, false
	var lastTry time.Time // the start of the last try: the resweep counts from it
	var gaveUp error      // the last try's error, once all tries failed
	tries := 0
	defer func() {
		s.noticeMu.Lock()
		switch {
		case recorded:
			delete(s.noticeBusy, n.eventID)
			delete(s.noticeTried, n.eventID)
		case mailed:
			// Out but not recorded: it stays busy, so this process never
			// mails it again; the next owner does, once, same Message-ID.
		default:
			if lastTry.IsZero() {
				lastTry = s.cfg.Now()
			}
			delete(s.noticeBusy, n.eventID)
			s.noticeTried[n.eventID] = lastTry
		}
		s.noticeMu.Unlock()
		if gaveUp != nil { // logged once the sweep may take it again
			s.log.Error("security notice not mailed; tried again later", "account", n.accountID, "event", n.eventID, "kind", n.kind,
				"tries", tries, "again_in", noticeResweep, "err", gaveUp)
		}
	}()
	if s.fenced.Load() {
		return // the new owner mails it
	}
	c, ok := s.state.customer(n.customerID)
	if !ok {
		return
	}
	subject, body := noticeMail(n, s.cfg.PortalURL)
	b := retry.New(noticeRetry, noticeResweep)
	for try := 1; ; try++ {
		lastTry = s.cfg.Now()
		mctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := s.mail.Send(mctx, c.email, "notice-"+n.eventID, subject, body, n.at)
		cancel()
		if err == nil {
			s.log.Info("security notice mailed", "account", n.accountID, "event", n.eventID, "kind", n.kind)
			mailed, recorded = true, s.noticeSent(n)
			return
		}
		if try == noticeTries || ctx.Err() != nil {
			gaveUp, tries = err, try
			return
		}
		wait := b.NextBackOff()
		s.log.Warn("security notice mail failed; trying again", "account", n.accountID, "event", n.eventID, "in", wait, "err", err)
		if retry.Wait(ctx, wait) != nil {
			s.log.Warn("security notice not mailed before stopping; the next owner mails it", "account", n.accountID, "event", n.eventID, "kind", n.kind)
			return
		}
	}
}

// noticeSent records a notice mailed, and reports whether it could. It is
// written even while the owner stops (the mail is out); if it cannot be
// written, the next owner mails the notice again, with the same
// Message-ID.
func (s *Service) noticeSent(n notice) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer s.owner(n.customerID)()
	if err := s.publish(ctx, &events.AccountNoticeSent{CustomerID: n.customerID, AccountID: n.accountID,
		EventID: n.eventID, SentAt: s.cfg.Now().UTC()}); err != nil {
		s.log.Warn("security notice mailed but not recorded; the next owner may mail it again", "account", n.accountID, "event", n.eventID, "err", err)
		return false
	}
	return true
}

// noticeEnds is which sessions of the account a change ended: a reset
// (its page had no session) all of them, the other changes from the
// settings all but the session that made them; a first factor or new
// recovery codes none.
var noticeEnds = map[string]string{
	noticePasswordChange: "mail.notice.endedOthers",
	noticePasswordReset:  "mail.notice.endedAll",
	factorReplaced:       "mail.notice.endedOthers",
	factorTurnedOff:      "mail.notice.endedOthers",
}

// noticeMail is the subject and body of a notice (the template
// schemas/messages/mail/notice.tmpl). It names the change, the time, the
// source address and what to do if it was not the customer's doing; never
// a password, code, secret or phone number.
func noticeMail(n notice, portal string) (string, string) {
	method := "mail.method." + n.method // the new factor's name; none when turned off
	if !messages.Has(method) {
		method = ""
	}
	return mustMail("notice", map[string]any{
		"Title": "mail.notice.title." + n.kind, "What": "mail.notice.what." + n.kind, "Method": method,
		"Login": n.loginID, "When": n.at.In(jst).Format("2006-01-02 15:04:05 MST"), "IP": n.ip,
		"Ended": noticeEnds[n.kind], "Portal": portal,
	})
}

var jst = time.FixedZone("JST", 9*3600)

// mustMail renders a mail of the catalogue. Its templates and the data
// given them are fixed at build time (the tests render every kind), so a
// failure is a programming error.
func mustMail(kind string, data map[string]any) (string, string) {
	subject, body, err := messages.Mail(kind, messages.Japanese, data)
	if err != nil {
		panic(err)
	}
	return subject, body
}
