package accounts

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/infra/testkit/testlog"
)

// sentMail is one mail a memMailer was given.
type sentMail struct{ to, id, subject, body string }

// memMailer keeps the mails it is given, or fails every one with err.
type memMailer struct {
	mu   sync.Mutex
	err  error
	sent []sentMail
}

func (m *memMailer) Send(_ context.Context, to, id, subject, body string, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.sent = append(m.sent, sentMail{to, id, subject, body})
	return nil
}

func (m *memMailer) mails() []sentMail {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]sentMail(nil), m.sent...)
}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// newTestMailer is a mailer over an owner in memory that knows customer
// cu_1 (cu_1@example.com) and its account ac_1 ("alice").
func newTestMailer(t *testing.T) (*mailer, *memMailer, *testClock) {
	t.Helper()
	clk := &testClock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	own, _ := newMemOwner(t, clk.Now)
	cfg := Config{Now: clk.Now, PortalURL: "https://portal.example"}
	cfg.defaults()
	mail := &memMailer{}
	m := newMailer(cfg, mail, own, testlog.New(t))
	if err := own.publish(context.Background(), registered("cu_1"), &events.AccountIssued{CustomerID: "cu_1", AccountID: "ac_1",
		LoginID: "alice", Role: events.RoleCustomerAdmin, PasswordHash: "$argon2id$stand-in", ExpiresAt: clk.Now().Add(time.Hour),
		Reason: "registration", IssuedAt: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	return m, mail, clk
}

// changePassword writes a password change of ac_1 from the settings and
// returns its event ID.
func changePassword(t *testing.T, m *mailer, at time.Time) string {
	t.Helper()
	ids, err := m.own.publishIDs(context.Background(), &events.AccountPasswordChanged{CustomerID: "cu_1", AccountID: "ac_1",
		LoginID: "alice", PasswordHash: "$argon2id$another", Reason: "change", ChangedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	return ids[0]
}

// A change's notice is queued once however often it is asked for, mailed
// with a Message-ID of its event, naming the request's address, and
// recorded sent: no sweep mails it again.
func TestMailerMailsANoticeOnce(t *testing.T) {
	m, mail, clk := newTestMailer(t)
	id := changePassword(t, m, clk.Now())
	m.notifyChange(id, "192.0.2.1")
	m.notifyChange(id, "192.0.2.1")
	m.sweep()
	if n := len(m.notices); n != 1 {
		t.Fatalf("%d notices queued, want 1", n)
	}
	m.mailNotice(context.Background(), <-m.notices)
	got := mail.mails()
	if len(got) != 1 || got[0].to != "cu_1@example.com" || got[0].id != "notice-"+id || !strings.Contains(got[0].body, "192.0.2.1") {
		t.Fatalf("mailed %+v, want one notice to cu_1@example.com naming 192.0.2.1", got)
	}
	if _, unsent := m.own.state.unsentNotice(id); unsent {
		t.Fatal("the notice is not recorded sent")
	}
	m.notifyChange(id, "192.0.2.1")
	m.sweep()
	if n := len(m.notices); n != 0 {
		t.Fatalf("%d notices queued after it was sent", n)
	}
}

// A notice whose tries failed is queued again by the sweep noticeResweep
// after its last try, while it is no older than NoticeRecovery.
func TestMailerRetriesAFailedNoticeLater(t *testing.T) {
	m, mail, clk := newTestMailer(t)
	mail.err = errors.New("relay down")
	id := changePassword(t, m, clk.Now())
	m.notifyChange(id, "192.0.2.1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the owner stops: one try, no waits
	m.mailNotice(ctx, <-m.notices)
	m.sweep()
	if n := len(m.notices); n != 0 {
		t.Fatalf("%d notices queued right after the failure", n)
	}
	clk.Add(noticeResweep)
	m.sweep()
	if n := len(m.notices); n != 1 {
		t.Fatalf("%d notices queued a resweep later, want 1", n)
	}
	mail.err = nil
	m.mailNotice(context.Background(), <-m.notices)
	if got := mail.mails(); len(got) != 1 || got[0].id != "notice-"+id {
		t.Fatalf("mailed %+v", got)
	}

	stale := changePassword(t, m, clk.Now())
	clk.Add(24*time.Hour + time.Second) // Config.NoticeRecovery
	m.sweep()
	if n := len(m.notices); n != 0 {
		t.Fatalf("a notice older than NoticeRecovery was queued (%s)", stale)
	}
}

var reToken = regexp.MustCompile(`https://portal\.example/reset#token=(\S+)`)

// run mails a queued reset link, whose token the state knows by its hash
// only, until its context ends.
func TestMailerSendsResetLinks(t *testing.T) {
	m, mail, clk := newTestMailer(t)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		m.run(ctx)
	}()
	m.queueReset("ac_1")
	for deadline := time.Now().Add(10 * time.Second); len(mail.mails()) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no reset mail after 10 s")
		}
	}
	cancel()
	<-stopped
	got := mail.mails()
	sub := reToken.FindStringSubmatch(got[0].body)
	if len(got) != 1 || got[0].to != "cu_1@example.com" || sub == nil {
		t.Fatalf("mailed %+v, want one reset link to cu_1@example.com", got)
	}
	r, ok := m.own.state.reset(sha256Hex(sub[1]))
	if !ok || r.accountID != "ac_1" || !r.expires.Equal(clk.Now().Add(time.Hour)) {
		t.Fatalf("reset token in the state: %+v, %v", r, ok)
	}
}

// The temporary credentials go to the customer with a Message-ID of the
// account.
func TestMailerMailsCredentials(t *testing.T) {
	m, mail, clk := newTestMailer(t)
	c, _ := m.own.state.customer("cu_1")
	ev := &events.AccountIssued{AccountID: "ac_2", LoginID: "tabcdefghj", ExpiresAt: clk.Now().Add(72 * time.Hour)}
	if err := m.mailCredentials(context.Background(), c, ev, "a temporary secret", clk.Now()); err != nil {
		t.Fatal(err)
	}
	got := mail.mails()
	if len(got) != 1 || got[0].to != "cu_1@example.com" || got[0].id != "acct-ac_2" ||
		!strings.Contains(got[0].body, "tabcdefghj") || !strings.Contains(got[0].body, "a temporary secret") {
		t.Fatalf("mailed %+v", got)
	}
}
