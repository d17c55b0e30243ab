package accounts

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/retry"
)

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

// mailer sends the owner's mail to the customers' registered addresses:
// the temporary credentials of an account issued, and, from its own loop
// (run), the reset links RequestReset asks for and the security notices
// of changed credentials. What it mails is recorded through the owner.
type mailer struct {
	now       func() time.Time
	mail      Mailer
	own       *owner
	log       *slog.Logger
	portalURL string
	resetTTL  time.Duration
	recovery  time.Duration // Config.NoticeRecovery

	resets  chan string // account IDs to mail a reset link to
	notices chan notice // security notices to mail
	// The notices queued or being mailed, and when an unsent one last
	// failed: the sweep queues each unsent notice once.
	mu    sync.Mutex
	busy  map[string]bool
	tried map[string]time.Time
}

func newMailer(cfg Config, mail Mailer, own *owner, logger *slog.Logger) *mailer {
	return &mailer{now: cfg.Now, mail: mail, own: own, log: logger, portalURL: cfg.PortalURL, resetTTL: cfg.ResetTTL,
		recovery: cfg.NoticeRecovery, resets: make(chan string, 256), notices: make(chan notice, 256),
		busy: map[string]bool{}, tried: map[string]time.Time{}}
}

// mailCredentials mails the temporary user ID and password of an account
// just issued to its customer.
func (m *mailer) mailCredentials(ctx context.Context, c customer, ev *events.AccountIssued, password string, now time.Time) error {
	subject, body := tempCredentialsMail(c.name, ev.LoginID, password, m.portalURL, ev.ExpiresAt)
	return m.mail.Send(ctx, c.email, "acct-"+ev.AccountID, subject, body, now)
}

// queueReset queues a reset link for an account, or drops it (logged)
// when too many are waiting: the user asks again.
func (m *mailer) queueReset(accountID string) {
	select {
	case m.resets <- accountID:
	default:
		m.log.Warn("password reset dropped: too many waiting", "account", accountID)
	}
}

// run sends the queued reset links and security notices (notify, sweep),
// each queue in order, until ctx ends. Reset requests still waiting then
// are dropped (the user asks again); notices are left to the next owner,
// which mails those without a notice_sent record.
func (m *mailer) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case n := <-m.notices:
					m.log.Warn("security notice not mailed before stopping; the next owner mails it", "account", n.accountID, "event", n.eventID, "kind", n.kind)
				default:
					return
				}
			}
		case id := <-m.resets:
			mctx, cancel := context.WithTimeout(ctx, time.Minute)
			if err := m.mailReset(mctx, id); err != nil {
				m.log.Error("password reset mail failed", "account", id, "err", err)
			}
			cancel()
		case n := <-m.notices:
			m.mailNotice(ctx, n)
		}
	}
}

func (m *mailer) mailReset(ctx context.Context, accountID string) error {
	st := m.own.state
	a, ok := st.Account(accountID)
	if !ok {
		return nil
	}
	defer m.own.lock(a.CustomerID)()
	c, ok := st.customer(a.CustomerID)
	if !ok {
		return nil
	}
	a, _ = st.Account(accountID) // the login ID as it is now
	now := m.now()
	token := randomText(32)
	exp := now.Add(m.resetTTL).UTC()
	if err := m.own.publish(ctx, &events.AccountPasswordResetRequested{CustomerID: a.CustomerID, AccountID: a.ID,
		TokenHash: sha256Hex(token), ExpiresAt: exp, RequestedAt: now.UTC()}); err != nil {
		return err
	}
	// The token travels in the fragment, which browsers never send: it stays
	// out of the access logs of every proxy between the customer and us.
	subject, body := resetMail(a.LoginID, m.portalURL+"/reset#token="+token, exp)
	return m.mail.Send(ctx, c.email, "reset-"+ksuid.New().String(), subject, body, now)
}

// notifyChange queues the security notice of a change just written and
// applied, if it has one (a decline has none), naming ip, the request's
// source address. The caller holds the customer's owner lock.
func (m *mailer) notifyChange(eventID, ip string) {
	if n, ok := m.own.state.unsentNotice(eventID); ok {
		n.ip = ip
		m.notify(n)
	}
}

// notify queues a notice unless it is queued or being mailed already. The
// caller holds the customer's owner lock. A notice that finds the queue
// full is left to the sweep (logged): the change stands either way.
func (m *mailer) notify(n notice) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.busy[n.eventID] {
		return
	}
	select {
	case m.notices <- n:
		m.busy[n.eventID] = true
	default:
		m.log.Error("security notice not queued: too many waiting; tried again later", "account", n.accountID, "event", n.eventID, "kind", n.kind)
	}
}

// sweep queues the notices of the last NoticeRecovery that the log has no
// notice_sent record for and that are not queued already: at the start of
// an owner, those an earlier owner did not get out (it crashed, stopped,
// or the relay was down); later, those whose tries all failed, again
// every noticeResweep. Each is queued under its customer's owner lock, so
// a command that has written a change but not yet queued its notice (with
// the request's address) is waited for, not raced.
func (m *mailer) sweep() {
	if m.own.fenced.Load() {
		return // the new owner mails them
	}
	now := m.now()
	for _, n := range m.own.state.unsentNotices(now.Add(-m.recovery)) {
		m.mu.Lock()
		tried, failed := m.tried[n.eventID]
		m.mu.Unlock()
		if failed && now.Sub(tried) < noticeResweep {
			continue
		}
		unlock := m.own.lock(n.customerID)
		if _, ok := m.own.state.unsentNotice(n.eventID); ok {
			m.notify(n)
		}
		unlock()
	}
}

// mailNotice sends a notice, trying noticeTries times, and records it
// sent. A notice not sent stays unsent in the log: the sweep tries it
// again later, or the next owner to start (within NoticeRecovery). A crash
// between the relay's acceptance and the record sends it once more, with
// the same Message-ID.
func (m *mailer) mailNotice(ctx context.Context, n notice) {
	mailed, recorded := false, false
	var lastTry time.Time // the start of the last try: the resweep counts from it
	var gaveUp error      // the last try's error, once all tries failed
	tries := 0
	defer func() {
		m.mu.Lock()
		switch {
		case recorded:
			delete(m.busy, n.eventID)
			delete(m.tried, n.eventID)
		case mailed:
			// Out but not recorded: it stays busy, so this process never
			// mails it again; the next owner does, once, same Message-ID.
		default:
			if lastTry.IsZero() {
				lastTry = m.now()
			}
			delete(m.busy, n.eventID)
			m.tried[n.eventID] = lastTry
		}
		m.mu.Unlock()
		if gaveUp != nil { // logged once the sweep may take it again
			m.log.Error("security notice not mailed; tried again later", "account", n.accountID, "event", n.eventID, "kind", n.kind,
				"tries", tries, "again_in", noticeResweep, "err", gaveUp)
		}
	}()
	if m.own.fenced.Load() {
		return // the new owner mails it
	}
	c, ok := m.own.state.customer(n.customerID)
	if !ok {
		return
	}
	subject, body := noticeMail(n, m.portalURL)
	b := retry.New(noticeRetry, noticeResweep)
	for try := 1; ; try++ {
		lastTry = m.now()
		mctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := m.mail.Send(mctx, c.email, "notice-"+n.eventID, subject, body, n.at)
		cancel()
		if err == nil {
			m.log.Info("security notice mailed", "account", n.accountID, "event", n.eventID, "kind", n.kind)
			mailed, recorded = true, m.noticeSent(n)
			return
		}
		if try == noticeTries || ctx.Err() != nil {
			gaveUp, tries = err, try
			return
		}
		wait := b.NextBackOff()
		m.log.Warn("security notice mail failed; trying again", "account", n.accountID, "event", n.eventID, "in", wait, "err", err)
		if retry.Wait(ctx, wait) != nil {
			m.log.Warn("security notice not mailed before stopping; the next owner mails it", "account", n.accountID, "event", n.eventID, "kind", n.kind)
			return
		}
	}
}

// noticeSent records a notice mailed, and reports whether it could. It is
// written even while the owner stops (the mail is out); if it cannot be
// written, the next owner mails the notice again, with the same
// Message-ID.
func (m *mailer) noticeSent(n notice) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer m.own.lock(n.customerID)()
	if err := m.own.publish(ctx, &events.AccountNoticeSent{CustomerID: n.customerID, AccountID: n.accountID,
		EventID: n.eventID, SentAt: m.now().UTC()}); err != nil {
		m.log.Warn("security notice mailed but not recorded; the next owner may mail it again", "account", n.accountID, "event", n.eventID, "err", err)
		return false
	}
	return true
}

func tempCredentialsMail(company, loginID, password, portal string, expires time.Time) (string, string) {
	return mustMail("credentials", map[string]any{"Company": company, "Login": loginID, "Password": password, "Portal": portal,
		"ExpiresJST": expires.In(jst).Format("2006-01-02 15:04 MST"), "Expires": expires.Format(time.RFC3339)})
}

func resetMail(loginID, link string, expires time.Time) (string, string) {
	return mustMail("reset", map[string]any{"Login": loginID, "Link": link, "Expires": expires.Format(time.RFC3339)})
}
