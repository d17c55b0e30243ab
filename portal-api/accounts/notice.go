package accounts

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mimamori/mimamori/events"
)

// Security notices: a mail to the customer's registered address (where the
// reset links go) when an account's credentials change, so that a change
// its owner did not make does not go unnoticed. What changed: the kinds
// below, and the factor changes of factorChange but a decline.
const (
	noticePasswordChange = "password_change" // from the settings (not the first login's)
	noticePasswordReset  = "password_reset"
)

// Tries of a notice mail, the first retry after noticeRetry, doubling. The
// Message-ID is the same every time, so a mail delivered although its send
// reported a failure shows as the duplicate it is.
const (
	noticeTries = 3
	noticeRetry = time.Second
)

// notice is one security notice, queued by the command that wrote its
// event and mailed by the owner's loop (Run), like the reset mails.
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

// notify queues the notice of an event just written. A notice that finds
// the queue full is dropped and logged: the change stands either way.
func (s *Service) notify(n notice) {
	select {
	case s.notices <- n:
	default:
		s.log.Error("security notice dropped: too many waiting", "account", n.accountID, "event", n.eventID, "kind", n.kind)
	}
}

// mailNotice sends a notice, trying noticeTries times. A failure is
// logged; the change it tells of stands.
func (s *Service) mailNotice(ctx context.Context, n notice) {
	c, ok := s.state.customer(n.customerID)
	if !ok {
		return
	}
	subject, body := noticeMail(n, s.cfg.PortalURL)
	wait := noticeRetry
	for try := 1; ; try++ {
		mctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := s.mail.Send(mctx, c.email, "notice-"+n.eventID, subject, body, n.at)
		cancel()
		if err == nil {
			s.log.Info("security notice mailed", "account", n.accountID, "event", n.eventID, "kind", n.kind)
			return
		}
		if try == noticeTries || ctx.Err() != nil {
			s.log.Error("security notice not mailed", "account", n.accountID, "event", n.eventID, "kind", n.kind, "tries", try, "err", err)
			return
		}
		s.log.Warn("security notice mail failed; trying again", "account", n.accountID, "event", n.eventID, "in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			s.log.Error("security notice not mailed: stopping", "account", n.accountID, "event", n.eventID, "kind", n.kind)
			return
		case <-t.C:
		}
		wait *= 2
	}
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
