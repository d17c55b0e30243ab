package notifier_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/infra/testkit"
	"github.com/mimamori/mimamori/services/mailbox"
	"github.com/mimamori/mimamori/services/notifier"
)

// hangingServer accepts connections and never answers. It counts the
// connections accepted and those the client hung up; release closes it.
func hangingServer(t *testing.T) (url string, accepted, cut *atomic.Int64, release func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted, cut = new(atomic.Int64), new(atomic.Int64)
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				_, _ = io.Copy(io.Discard, c) // until the client hangs up
				cut.Add(1)
			})
		}
	})
	var once sync.Once
	release = func() {
		once.Do(func() {
			_ = ln.Close()
			mu.Lock()
			for _, c := range conns {
				_ = c.Close()
			}
			mu.Unlock()
			wg.Wait()
		})
	}
	t.Cleanup(release)
	return "http://" + ln.Addr().String() + "/hook", accepted, cut, release
}

// statuses lists the records of each notification ID, in log order.
func (e *env) statuses() map[string][]*events.NotificationRecorded {
	out := map[string][]*events.NotificationRecorded{}
	for _, r := range e.records() {
		out[r.NotificationID] = append(out[r.NotificationID], r)
	}
	return out
}

func count(recs []*events.NotificationRecorded, status string) int {
	n := 0
	for _, r := range recs {
		if r.Status == status {
			n++
		}
	}
	return n
}

// failing is three customers nobody can reach: one whose webhook hangs
// (accepts the connection, never answers), one whose webhook answers 500
// for hours, and one whose mailbox refuses mail for the time being.
type failing struct {
	hangID, errID, greyID  string // their notification IDs, once alerted
	hangAccepted, hangCut  *atomic.Int64
	releaseHang            func()
	errCalls, greyRefused  atomic.Int64
	hangDev, errDev, grDev string
	hangURL, errURL        string
	hangCust, errCust, grC string
}

func newFailing(t *testing.T, e *env) *failing {
	t.Helper()
	f := &failing{}
	f.hangURL, f.hangAccepted, f.hangCut, f.releaseHang = hangingServer(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		f.errCalls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	f.errURL = srv.URL + "/hook"
	e.box.SetReject(func(rcpt string) error {
		if rcpt == "grey@x.test" {
			f.greyRefused.Add(1)
			return mailbox.TempFailure("mailbox busy, try later")
		}
		return nil
	})
	f.hangCust, f.hangDev = e.customer("Hang", "hang@x.test", "en", "3,2", f.hangURL)
	f.errCust, f.errDev = e.customer("Err", "err@x.test", "en", "3,2", f.errURL)
	f.grC, f.grDev = e.customer("Grey", "grey@x.test", "en", "3,2", "")
	return f
}

// alert publishes an alert of each and waits until each was attempted.
func (f *failing) alert(t *testing.T, e *env) {
	t.Helper()
	hang, bad, grey := alert(f.hangDev, f.hangCust, 3, "hang.example", t0), alert(f.errDev, f.errCust, 3, "err.example", t0),
		alert(f.grDev, f.grC, 3, "grey.example", t0)
	e.publish(hang, bad, grey)
	f.hangID = notifier.ID(hang.ID, events.ChannelWebhook, f.hangURL)
	f.errID = notifier.ID(bad.ID, events.ChannelWebhook, f.errURL)
	f.greyID = notifier.ID(grey.ID, events.ChannelMail, "grey@x.test")
	testkit.WaitUntil(t, 30*time.Second, "attempt at each failing recipient", func() bool {
		return f.hangAccepted.Load() >= 1 && f.errCalls.Load() >= 1 && f.greyRefused.Load() >= 1
	})
}

// pending fails the test unless each of the three is still being retried.
func (f *failing) pending(t *testing.T, e *env) {
	t.Helper()
	st := e.statuses()
	for _, id := range []string{f.hangID, f.errID, f.greyID} {
		if n := count(st[id], events.NotifySent) + count(st[id], events.NotifyFailed); n != 0 || count(st[id], events.NotifyAttempting) == 0 {
			t.Fatalf("%s before its bound: %d outcomes, %d attempting records; want it still being retried", id, n, count(st[id], events.NotifyAttempting))
		}
	}
}

// A hanging webhook, a webhook answering 500 and a mailbox refusing mail
// beside 100 important alerts of 25 other customers: every other mail
// arrives while the three are still being retried, none of their bounds
// having passed. The test logs the other customers' latency from the
// acknowledged produce to the SMTP server's acceptance.
func TestFailingRecipientsHoldBackNoOneElse(t *testing.T) {
	e := newEnv(t)
	f := newFailing(t, e)
	type other struct{ cust, dev, email string }
	var others []other
	for i := range 25 {
		email := fmt.Sprintf("admin@o%d.test", i)
		c, d := e.customer(fmt.Sprintf("Other%d", i), email, "en", "3,2", "")
		others = append(others, other{c, d, email})
	}
	var mu sync.Mutex
	accepted := map[string]time.Time{}
	e.box.OnAccept(func(m mailbox.Message) {
		mu.Lock()
		accepted[m.MessageID] = time.Now()
		mu.Unlock()
	})
	// An attempt is cut off after a minute: the first one hangs
	// throughout the test (and is let go at its end).
	e.start(notifier.Config{WebhookTimeout: time.Minute})
	defer f.releaseHang()
	f.alert(t, e)

	produced := map[string]time.Time{} // Message-ID → produce acknowledged
	for i := range 100 {
		o := others[i%len(others)]
		a := alert(o.dev, o.cust, 3, fmt.Sprintf("c2-%d.example", i), t0)
		e.publish(a)
		produced[notifier.ID(a.ID, events.ChannelMail, o.email)+"@mimamori.test"] = time.Now()
	}
	testkit.WaitUntil(t, 30*time.Second, "mail for each of the 100 alerts of other customers", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for id := range produced {
			if _, ok := accepted[id]; !ok {
				return false
			}
		}
		return true
	})
	f.pending(t, e)
	if f.hangCut.Load() != 0 {
		t.Fatalf("the hanging webhook's first attempt ended before the other mail arrived")
	}
	var lat []time.Duration
	mu.Lock()
	for id, at := range produced {
		lat = append(lat, accepted[id].Sub(at))
	}
	mu.Unlock()
	slices.Sort(lat)
	t.Logf("100 alerts of other customers beside a hanging webhook, a failing webhook and a refusing mailbox: produce acknowledged → SMTP accepted p50 %s, p99 %s, max %s",
		lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*99/100].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	perID := map[string]int{}
	for _, m := range e.box.Messages() {
		perID[m.MessageID]++
	}
	for id := range produced {
		if perID[id] != 1 {
			t.Errorf("%d mails with Message-ID %s, want 1", perID[id], id)
		}
	}
}

// Retries are bounded: each attempt at a hanging webhook is cut off (and
// tried again), and once the bounds have passed on the notifier's clock
// (1 h for webhooks, 4 h for mail, counted from the first attempt) the
// hanging webhook, the one answering 500 and the refusing mailbox each
// get one failed record with the reason, and are not tried again.
func TestFailingRecipientsGivenUpOnceAfterTheirBound(t *testing.T) {
	e := newEnv(t)
	f := newFailing(t, e)
	otherCust, otherDev := e.customer("Other", "other@x.test", "en", "3,2", "")
	e.start(notifier.Config{WebhookTimeout: time.Second})
	f.alert(t, e)
	testkit.WaitUntil(t, 30*time.Second, "second attempt at the hanging webhook", func() bool {
		return f.hangCut.Load() >= 1 && f.hangAccepted.Load() >= 2
	})
	e.clk.Advance(time.Hour - time.Minute)
	calls := f.errCalls.Load()
	testkit.WaitUntil(t, 30*time.Second, "attempt after 59 minutes", func() bool { return f.errCalls.Load() > calls })
	f.pending(t, e)

	e.clk.Advance(3*time.Hour + 2*time.Minute) // past both bounds
	testkit.WaitUntil(t, 30*time.Second, "failed record for each of the three", func() bool {
		st := e.statuses()
		return count(st[f.hangID], events.NotifyFailed) > 0 && count(st[f.errID], events.NotifyFailed) > 0 &&
			count(st[f.greyID], events.NotifyFailed) > 0
	})
	calls = f.errCalls.Load()
	// A barrier: one more alert is mailed after the three were given up.
	e.publish(alert(otherDev, otherCust, 3, "last.example", e.clk.Now()))
	testkit.WaitUntil(t, 30*time.Second, "mail after the give-ups", func() bool { return find(e.box.Messages(), "other@x.test", "") != nil })
	e.waitDrained("notifier", 30*time.Second)
	st := e.statuses()
	for id, want := range map[string]string{f.hangID: "Client.Timeout exceeded", f.errID: "HTTP 500", f.greyID: "451"} {
		recs := st[id]
		if count(recs, events.NotifyFailed) != 1 || count(recs, events.NotifySent) != 0 {
			t.Fatalf("%s: %d failed and %d sent records, want exactly one failed", id, count(recs, events.NotifyFailed), count(recs, events.NotifySent))
		}
		last := recs[len(recs)-1]
		if last.Status != events.NotifyFailed || !strings.Contains(last.Reason, want) || !strings.Contains(last.Reason, "not delivered within") {
			t.Errorf("%s ends with %s, reason %q; want failed naming the bound and %q", id, last.Status, last.Reason, want)
		}
	}
	if a := st[f.hangID][len(st[f.hangID])-1].Attempts; a < 2 {
		t.Errorf("hanging webhook given up after %d attempts, want each attempt cut off and retried", a)
	}
	if f.errCalls.Load() != calls {
		t.Errorf("the webhook given up was called %d more times", f.errCalls.Load()-calls)
	}
	if m := find(e.box.Messages(), "grey@x.test", ""); m != nil {
		t.Errorf("mail to the refusing mailbox was accepted: %s", m.Subject)
	}
}

// A notifier is stopped while two webhooks are being retried (and other
// mail goes on past them). The next notifier resumes both from the log:
// the one that recovered is delivered once, the one still failing is
// given up on the bound counted from its first attempt before the
// restart, and no mail goes out twice. A replay of every topic then sends
// nothing at all.
func TestPendingRetriesResumeAfterRestart(t *testing.T) {
	e := newEnv(t)
	var down atomic.Bool
	down.Store(true)
	var flakyRefused atomic.Int64
	var mu sync.Mutex
	delivered := map[string]int{} // delivery ID → 2xx answers
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			flakyRefused.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		delivered[r.Header.Get(notifier.HeaderDelivery)]++
		mu.Unlock()
	}))
	t.Cleanup(flaky.Close)
	var deadCalls atomic.Int64
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		deadCalls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(dead.Close)
	flakyCust, flakyDev := e.customer("Flaky", "flaky@x.test", "en", "3,2", flaky.URL)
	deadCust, deadDev := e.customer("Dead", "dead@x.test", "en", "3,2", dead.URL)
	otherCust, otherDev := e.customer("Other", "other@x.test", "en", "3,2", "")

	stop := e.start(notifier.Config{})
	a, b := alert(flakyDev, flakyCust, 3, "flaky.example", t0), alert(deadDev, deadCust, 3, "dead.example", t0)
	e.publish(a, b)
	flakyID, deadID := notifier.ID(a.ID, events.ChannelWebhook, flaky.URL), notifier.ID(b.ID, events.ChannelWebhook, dead.URL)
	testkit.WaitUntil(t, 30*time.Second, "retries at both webhooks", func() bool { return flakyRefused.Load() >= 2 && deadCalls.Load() >= 2 })
	e.publish(alert(otherDev, otherCust, 3, "other.example", t0))
	e.waitMail(3, 30*time.Second) // flaky's, dead's and other's mail
	stop()
	st := e.statuses()
	for _, id := range []string{flakyID, deadID} {
		if n := count(st[id], events.NotifySent) + count(st[id], events.NotifyFailed); n != 0 || count(st[id], events.NotifyAttempting) < 2 {
			t.Fatalf("%s after the stop: %d outcomes, %d attempting records; want it pending", id, n, count(st[id], events.NotifyAttempting))
		}
	}
	before := st[deadID][len(st[deadID])-1].Attempts // the dead webhook's attempts before the restart

	down.Store(false)
	e.clk.Advance(30 * time.Minute)
	stop = e.start(notifier.Config{})
	testkit.WaitUntil(t, 30*time.Second, "delivery of the resumed webhook", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return delivered[flakyID] > 0
	})
	e.clk.Advance(31 * time.Minute) // 61 minutes after the first attempt
	testkit.WaitUntil(t, 30*time.Second, "failed record of the webhook still failing", func() bool {
		return count(e.statuses()[deadID], events.NotifyFailed) > 0
	})
	e.waitDrained("notifier", 30*time.Second)
	stop()
	calls := deadCalls.Load()
	check := func(when string) {
		t.Helper()
		st := e.statuses()
		mu.Lock()
		if len(delivered) != 1 || delivered[flakyID] != 1 {
			t.Errorf("%s: deliveries %v, want one of %s", when, delivered, flakyID)
		}
		mu.Unlock()
		if count(st[flakyID], events.NotifySent) != 1 || count(st[deadID], events.NotifyFailed) != 1 {
			t.Errorf("%s: %d sent records of the resumed webhook, %d failed of the dead one; want 1 and 1", when,
				count(st[flakyID], events.NotifySent), count(st[deadID], events.NotifyFailed))
		}
		if f := st[deadID][len(st[deadID])-1]; f.Attempts <= before {
			t.Errorf("%s: dead webhook given up after %d attempts, want more than the %d before the restart", when, f.Attempts, before)
		}
		if msgs := e.box.Messages(); len(msgs) != 3 {
			t.Errorf("%s: %d mails, want 3 (one per customer)", when, len(msgs))
		}
	}
	check("after the restart")

	stop = e.start(notifier.Config{Group: "replay"})
	e.waitDrained("replay", 30*time.Second)
	stop()
	check("after a replay")
	if deadCalls.Load() != calls {
		t.Errorf("the replay called the given-up webhook %d more times", deadCalls.Load()-calls)
	}
}

// A webhook answering 429 with Retry-After is tried again no sooner than
// it asked, not after the lane's backoff (at most 0.2 s the first time).
func TestWebhookRetryAfterHonoured(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	var at []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		at = append(at, time.Now())
		if len(at) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	cust, dev := e.customer("Later", "later@x.test", "en", "3", srv.URL+"/hook")
	e.start(notifier.Config{})
	a := alert(dev, cust, 3, "later.example", t0)
	e.publish(a)
	id := notifier.ID(a.ID, events.ChannelWebhook, srv.URL+"/hook")
	testkit.WaitUntil(t, 30*time.Second, "webhook delivered", func() bool { return count(e.statuses()[id], events.NotifySent) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if len(at) != 2 {
		t.Fatalf("%d webhook requests, want 2 (one 429, one delivery)", len(at))
	}
	if gap := at[1].Sub(at[0]); gap < time.Second {
		t.Fatalf("tried again %v after a 429 with Retry-After: 1, want at least 1s", gap)
	}
}
