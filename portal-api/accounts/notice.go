package accounts

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/retry"
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

// noticeText is what a notice says changed, Japanese and English, and
// which sessions of the account ended with it.
type noticeText struct {
	jaTitle, enTitle string // the subject
	ja, en           string // the sentence in the body; %s is the method
	ended            string // endedOthers, endedAll or "" (none)
}

const (
	endedOthers = "others" // all but the session that made the change
	endedAll    = "all"    // a reset: its page had no session
)

var noticeTexts = map[string]noticeText{
	noticePasswordChange: {"パスワードが変更されました", "your password was changed",
		"アカウント設定からパスワードが変更されました。", "The password was changed in the account settings.", endedOthers},
	noticePasswordReset: {"パスワードが再設定されました", "your password was reset",
		"パスワード再設定メールのリンクから、パスワードが再設定されました。", "The password was reset with the link of a password reset mail.", endedAll},
	factorSetUp: {"2段階認証が設定されました", "two-step verification was set up",
		"2段階認証が設定されました（方法：%s）。", "Two-step verification was set up (method: %s).", ""},
	factorReplaced: {"2段階認証の方法が変更されました", "two-step verification was replaced",
		"2段階認証の方法が変更されました（新しい方法：%s）。これまでのリカバリーコードは使えなくなりました。",
		"Two-step verification was replaced (new method: %s). The previous recovery codes no longer work.", endedOthers},
	factorTurnedOff: {"2段階認証がオフにされました", "two-step verification was turned off",
		"2段階認証がオフにされました。パスワードだけでログインできる状態です。リカバリーコードも使えなくなりました。",
		"Two-step verification was turned off: the password alone now logs in. The recovery codes no longer work.", endedOthers},
	factorRecoveryCodes: {"リカバリーコードが再発行されました", "new recovery codes were made",
		"2段階認証のリカバリーコードが再発行されました。これまでのコードは使えなくなりました。",
		"New recovery codes for two-step verification were made; the previous ones no longer work.", ""},
}

var methodNames = map[string][2]string{
	events.FactorTOTP: {"認証アプリ", "authenticator app"},
	events.FactorSMS:  {"SMS", "SMS"},
}

// noticeMail is the subject and body of a notice. It names the change, the
// time, the source address and what to do if it was not the customer's
// doing; never a password, code, secret or phone number.
func noticeMail(n notice, portal string) (string, string) {
	tx := noticeTexts[n.kind]
	m := methodNames[n.method]
	ja, en := tx.ja, tx.en
	if strings.Contains(ja, "%s") {
		ja, en = fmt.Sprintf(ja, m[0]), fmt.Sprintf(en, m[1])
	}
	jst := time.FixedZone("JST", 9*3600)
	ipJA, ipEN := n.ip, n.ip
	if n.ip == "" {
		ipJA, ipEN = "不明", "unknown"
	}
	var endedJA, endedEN string
	switch tx.ended {
	case endedOthers:
		endedJA = "\nほかの端末やブラウザでのログインは、すべて終了しました。\n"
		endedEN = "\nEvery other login session of this account was ended.\n"
	case endedAll:
		endedJA = "\nこのアカウントのログインは、すべて終了しました。\n"
		endedEN = "\nEvery login session of this account was ended.\n"
	}
	subject := fmt.Sprintf("【みまもり】セキュリティのお知らせ：%s / Security notice: %s", tx.jaTitle, tx.enTitle)
	body := fmt.Sprintf(`ユーザーID %s のアカウントで、次の変更がありました。

  内容:     %s
  日時:     %s
  操作元:   %s (IPアドレス)
%s
この操作に心当たりがない場合は、第三者にログインされたおそれがあります。
ただちに次のページからパスワードを再設定し、サポート窓口へご連絡ください。
  %s/reset
心当たりがある場合は、対応は不要です。

-- English --
The account of user ID %s was changed.

  What:  %s
  When:  %s
  From:  %s (IP address)
%s
If this was not you, someone else may have logged in to your account: reset
your password at once on the page below, and contact the support desk.
  %s/reset
If it was you, there is nothing to do.
`, n.loginID, ja, n.at.In(jst).Format("2006-01-02 15:04:05 MST"), ipJA, endedJA, portal,
		n.loginID, en, n.at.In(jst).Format("2006-01-02 15:04:05 MST"), ipEN, endedEN, portal)
	return subject, body
}
