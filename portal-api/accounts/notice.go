package accounts

import (
	"time"

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

// notice is one security notice, derived from its event when the state
// applies it, queued by the command that wrote the event (with the
// request's address) or by the sweep, and mailed by the mailer's loop,
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
