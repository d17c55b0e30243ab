package portal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/portal-api/accounts"
	"github.com/mimamori/mimamori/portal-api/portal"
	"github.com/mimamori/mimamori/services/mailbox"
	"github.com/mimamori/mimamori/services/registry"
	"github.com/mimamori/mimamori/services/smtp"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// env is a real kfake broker, the embedded mailbox over SMTP, the accounts
// owner and the portal over real HTTP, on a clock the test moves.
type env struct {
	t     *testing.T
	kcfg  eventlog.Config
	prod  *eventlog.Producer
	box   *mailbox.Mailbox
	sms   *accounts.SMSSink
	svc   *accounts.Service
	srv   *httptest.Server
	clock *clock
}

func newEnv(t *testing.T, opts ...func(*portal.Deps)) *env {
	t.Helper()
	b, err := eventlog.StartBroker(eventlog.BrokerConfig{Dir: t.TempDir(), Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	kcfg := eventlog.Config{Brokers: b.Addrs(), Partitions: 2, Replication: 1, TopicPrefix: "t."}
	prod, err := eventlog.NewProducer(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	ctx, cancel := context.WithCancel(context.Background())
	if err := eventlog.EnsureTopics(ctx, prod.Client(), kcfg); err != nil {
		t.Fatal(err)
	}
	box, err := mailbox.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = box.Close() })
	host, port, _ := strings.Cut(box.Addr(), ":")
	portN, _ := strconv.Atoi(port)
	mailer, err := smtp.New(smtp.Config{Host: host, Port: portN, Security: smtp.SecurityNone})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
	sms := &accounts.SMSSink{}
	svc, err := accounts.New(accounts.Config{Now: clk.Now, PortalURL: "https://portal.example"}, kcfg, prod, mailer, sms,
		bytes.Repeat([]byte{7}, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	<-svc.Ready()
	deps := portal.Deps{Accounts: svc, Sessions: portal.SessionConfig{Now: clk.Now, Idle: 30 * time.Minute,
		Absolute: 8 * time.Hour}, Now: clk.Now}
	for _, o := range opts {
		o(&deps)
	}
	h, err := portal.New(deps)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Config = portal.HTTPServer(h, portal.ServerConfig{}, nil) // the portal's own server
	srv.Start()
	t.Cleanup(srv.Close)
	return &env{t: t, kcfg: kcfg, prod: prod, box: box, sms: sms, svc: svc, srv: srv, clock: clk}
}

var (
	reTempID = regexp.MustCompile(`Temporary user ID:\s+(\S+)`)
	reTempPW = regexp.MustCompile(`Temporary password:\s+(\S+)`)
)

// register registers a customer and reads its temporary credentials from
// the mail the embedded mailbox received.
func (e *env) register(email string) (customerID, loginID, password string) {
	e.t.Helper()
	id, err := registry.RegisterCustomer(context.Background(), e.prod, "Kato Bakery", email, "rs_1", e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range e.box.Messages() {
			if len(m.To) == 1 && m.To[0] == email && strings.Contains(m.Body, "Temporary password") {
				return id, reTempID.FindStringSubmatch(m.Body)[1], reTempPW.FindStringSubmatch(m.Body)[1]
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("no mail with temporary credentials for %s", email)
	return
}

// client keeps the session cookie by hand, so tests see every rotation.
// Every answer it gets is checked against the OpenAPI document.
type client struct {
	e      *env
	cookie string
	hc     *http.Client // nil: http.DefaultClient
}

type reply struct {
	status int
	body   map[string]any
	raw    string
	header http.Header
}

func (c *client) do(method, path string, body any, hdr ...string) reply {
	c.e.t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, c.e.srv.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: portal.SessionCookie, Value: c.cookie})
	}
	hc := c.hc
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == portal.SessionCookie {
			if !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteStrictMode {
				c.e.t.Errorf("session cookie flags: HttpOnly %v Secure %v SameSite %v", ck.HttpOnly, ck.Secure, ck.SameSite)
			}
			c.cookie = ck.Value
		}
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	c.e.validate(req, resp, buf.Bytes())
	r := reply{status: resp.StatusCode, raw: buf.String(), header: resp.Header}
	_ = json.Unmarshal(buf.Bytes(), &r.body)
	return r
}

func want(t *testing.T, r reply, status int, code string) {
	t.Helper()
	if r.status != status || (code != "" && r.body["error"] != code) {
		t.Fatalf("got %d %s, want %d %s", r.status, r.raw, status, code)
	}
}

func (e *env) login(loginID, password string) (*client, reply) {
	c := &client{e: e}
	return c, c.do("POST", "/api/v1/login", map[string]string{"login_id": loginID, "password": password})
}

// topicBytes is every byte of the accounts topic: keys, headers, values.
func (e *env) topicBytes() []byte {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := eventlog.ReadToEnd(ctx, e.kcfg, []string{e.kcfg.Topic(events.TopicAccounts)}, nil, func(r *kgo.Record, _ events.Envelope) {
		out.Write(r.Key)
		out.Write(r.Value)
		for _, h := range r.Headers {
			out.Write(h.Value)
		}
	}); err != nil {
		e.t.Fatal(err)
	}
	return out.Bytes()
}

// The whole first-use path of with TOTP, and the rules around it.
func TestFirstLoginTOTPFlow(t *testing.T) {
	e := newEnv(t)
	cust, tempID, tempPW := e.register("owner@kato.example")

	c, r := e.login(tempID, tempPW)
	want(t, r, 200, "")
	if r.body["stage"] != accounts.StageChangeCredentials || r.body["customer_id"] != cust {
		t.Fatalf("first login: %s", r.raw)
	}
	first := c.cookie
	// Nothing but the change is allowed.
	want(t, c.do("POST", "/api/v1/2fa/totp/enrol", map[string]string{}), 403, "wrong_stage")
	// Breached, short and fine passwords.
	want(t, c.do("POST", "/api/v1/login/credentials", map[string]string{"login_id": "kato-admin", "password": "password1234"}), 422, "password_breached")
	want(t, c.do("POST", "/api/v1/login/credentials", map[string]string{"login_id": "kato-admin", "password": "short"}), 422, "password_too_short")
	newPW := "correct horse battery staple 北"
	r = c.do("POST", "/api/v1/login/credentials", map[string]string{"login_id": "kato-admin", "password": newPW})
	want(t, r, 200, "")
	if c.cookie == first {
		t.Fatal("session id not rotated after the credential change")
	}
	// The temporary password was single-use.
	_, r = e.login(tempID, tempPW)
	want(t, r, 401, "invalid_credentials")

	// Enrol TOTP; the enrolment code is one step ahead (drift accepted).
	en := c.do("POST", "/api/v1/2fa/totp/enrol", map[string]string{})
	want(t, en, 200, "")
	secret := en.body["secret"].(string)
	if en.body["qr_png"] == "" || !strings.HasPrefix(en.body["otpauth_url"].(string), "otpauth://totp/") {
		t.Fatalf("enrolment: %s", en.raw)
	}
	code := func(d time.Duration) string {
		s, err := totp.GenerateCode(secret, e.clock.Now().Add(d))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	beforeConfirm := c.cookie
	r = c.do("POST", "/api/v1/2fa/totp/confirm", map[string]string{"code": code(30 * time.Second)})
	want(t, r, 200, "")
	recovery := r.body["recovery_codes"].([]any)
	if len(recovery) != 10 || c.cookie == beforeConfirm {
		t.Fatalf("confirm: %s (cookie rotated: %v)", r.raw, c.cookie != beforeConfirm)
	}
	want(t, c.do("GET", "/api/v1/me", nil), 200, "")
	want(t, c.do("POST", "/api/v1/logout", map[string]string{}), 200, "")
	want(t, c.do("GET", "/api/v1/me", nil), 401, "login_required")

	// Next login: password, then the second factor.
	e.clock.Add(30 * time.Second)
	c, r = e.login("KATO-ADMIN", newPW)
	want(t, r, 200, "")
	if r.body["stage"] != accounts.StageSecondFactor {
		t.Fatalf("second login: %s", r.raw)
	}
	want(t, c.do("GET", "/api/v1/me", nil), 200, "")
	// The enrolment code (same step) is never accepted again; two steps of
	// drift are refused; the next step is accepted.
	want(t, c.do("POST", "/api/v1/login/second-factor", map[string]string{"code": code(0)}), 401, "invalid_code")
	want(t, c.do("POST", "/api/v1/login/second-factor", map[string]string{"code": code(60 * time.Second)}), 401, "invalid_code")
	want(t, c.do("POST", "/api/v1/login/second-factor", map[string]string{"code": code(-60 * time.Second)}), 401, "invalid_code")
	pre := c.cookie
	ok := code(30 * time.Second)
	want(t, c.do("POST", "/api/v1/login/second-factor", map[string]string{"code": ok}), 200, "")
	if c.cookie == pre {
		t.Fatal("session id not rotated after the second factor")
	}
	me := c.do("GET", "/api/v1/me", nil)
	if me.body["stage"] != accounts.StageActive || me.body["customer_id"] != cust {
		t.Fatalf("me: %s", me.raw)
	}
	// Replay in a fresh login is refused; a recovery code works once.
	c2, _ := e.login("kato-admin", newPW)
	want(t, c2.do("POST", "/api/v1/login/second-factor", map[string]string{"code": ok}), 401, "invalid_code")
	want(t, c2.do("POST", "/api/v1/login/second-factor", map[string]string{"code": recovery[0].(string)}), 200, "")
	c3, _ := e.login("kato-admin", newPW)
	want(t, c3.do("POST", "/api/v1/login/second-factor", map[string]string{"code": recovery[0].(string)}), 401, "invalid_code")

	// Audit trail, and no secret in the log.
	raw := e.topicBytes()
	for _, typ := range []string{events.TypeAccountIssued, events.TypeAccountLoginSucceeded, events.TypeAccountLoginFailed,
		events.TypeAccountPasswordChanged, events.TypeAccountSecondFactorChanged, events.TypeAccountLoggedOut} {
		if !bytes.Contains(raw, []byte(typ)) {
			t.Errorf("no %s event in the accounts topic", typ)
		}
	}
	for _, s := range []string{tempPW, newPW, secret, recovery[1].(string)} {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("secret %q found in the accounts topic", s)
		}
	}
}

func TestTemporaryPasswordExpires(t *testing.T) {
	e := newEnv(t)
	_, id, pw := e.register("a@expiry.example")
	e.clock.Add(72*time.Hour + time.Minute)
	_, r := e.login(id, pw)
	want(t, r, 401, "invalid_credentials")
}

// Unknown user and wrong password answer alike; throttling, then a hard
// lock that the operator lifts before its hour is up.
func TestThrottleLockAndUnlock(t *testing.T) {
	e := newEnv(t)
	cust, id, pw := e.register("a@lock.example")
	_, unknown := e.login("nobody-here", "whatever password 1")
	_, wrong := e.login(id, "whatever password 1")
	if unknown.status != wrong.status || unknown.raw != wrong.raw {
		t.Fatalf("unknown user %d %s, wrong password %d %s", unknown.status, unknown.raw, wrong.status, wrong.raw)
	}
	// Past the free failures, an immediate retry is throttled.
	e.login(id, "whatever password 2")
	e.login(id, "whatever password 3")
	_, r := e.login(id, "whatever password 4")
	want(t, r, 429, "throttled")
	_, r = e.login("nobody-here", "x")
	e.login("nobody-here", "y")
	e.login("nobody-here", "z")
	_, r = e.login("nobody-here", "w")
	want(t, r, 429, "throttled")
	// Keep failing, waiting out each delay, until the lock.
	for range 7 {
		e.clock.Add(16 * time.Minute)
		_, r = e.login(id, "still wrong password")
		want(t, r, 401, "invalid_credentials")
	}
	e.clock.Add(16 * time.Minute)
	_, r = e.login(id, pw)
	want(t, r, 401, "invalid_credentials") // locked: even the right password
	acc, _ := e.svc.State().ByLogin(id)
	if !acc.Locked {
		t.Fatal("account not locked after 10 failures")
	}
	if err := accounts.Unlock(context.Background(), e.prod, cust, acc.ID, "operator", e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { a, _ := e.svc.State().ByLogin(id); return !a.Locked })
	_, r = e.login(id, pw)
	want(t, r, 200, "")
	raw := e.topicBytes()
	for _, typ := range []string{events.TypeAccountLocked, events.TypeAccountUnlocked} {
		if !bytes.Contains(raw, []byte(typ)) {
			t.Errorf("no %s event", typ)
		}
	}
}

func waitFor(t *testing.T, f func() bool) {
	t.Helper()
	for range 500 {
		if f() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("condition not reached")
}

// activeClient goes through the first login and declines 2-step
// verification, to get an active session quickly.
func (e *env) activeClient(email, loginID string) (*client, string) {
	e.t.Helper()
	_, id, pw := e.register(email)
	c, r := e.login(id, pw)
	want(e.t, r, 200, "")
	newPW := "a long enough passphrase " + loginID
	want(e.t, c.do("POST", "/api/v1/login/credentials", map[string]string{"login_id": loginID, "password": newPW}), 200, "")
	return c, newPW
}

func TestSessionTimeoutsAndCrossSite(t *testing.T) {
	e := newEnv(t)
	c, pw := e.activeClient("a@sess.example", "sess-user")
	want(t, c.do("POST", "/api/v1/2fa/decline", map[string]string{}), 200, "")
	// Cross-site requests are refused before anything else happens.
	want(t, c.do("POST", "/api/v1/logout", map[string]string{}, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"), 403, "cross_site")
	want(t, c.do("POST", "/api/v1/login", map[string]string{}, "Sec-Fetch-Site", "cross-site"), 403, "cross_site")
	// Idle timeout.
	e.clock.Add(29 * time.Minute)
	want(t, c.do("GET", "/api/v1/me", nil), 200, "")
	e.clock.Add(31 * time.Minute)
	want(t, c.do("GET", "/api/v1/me", nil), 401, "login_required")
	// Absolute timeout, however active the session.
	c, r := e.login("sess-user", pw)
	want(t, r, 200, "")
	for range 16 {
		e.clock.Add(29 * time.Minute)
		want(t, c.do("GET", "/api/v1/me", nil), 200, "")
	}
	e.clock.Add(29 * time.Minute) // 8 h 12 min after login
	want(t, c.do("GET", "/api/v1/me", nil), 401, "login_required")
}

func TestSMSEnrolment(t *testing.T) {
	e := newEnv(t)
	c, pw := e.activeClient("a@sms.example", "sms-user")
	lastCode := func() string {
		msgs := e.sms.Messages()
		if len(msgs) == 0 {
			t.Fatal("no SMS sent")
		}
		return regexp.MustCompile(`\d{6}`).FindString(msgs[len(msgs)-1].Body)
	}
	want(t, c.do("POST", "/api/v1/2fa/sms/enrol", map[string]string{"phone": "090-1234"}), 422, "phone_invalid")
	want(t, c.do("POST", "/api/v1/2fa/sms/enrol", map[string]string{"phone": "+819012345678"}), 202, "")
	stale := lastCode()
	e.clock.Add(6 * time.Minute)
	want(t, c.do("POST", "/api/v1/2fa/sms/verify", map[string]string{"code": stale}), 401, "invalid_code")
	want(t, c.do("POST", "/api/v1/2fa/sms/enrol", map[string]string{"phone": "+819012345678"}), 202, "")
	code := lastCode()
	want(t, c.do("POST", "/api/v1/2fa/sms/verify", map[string]string{"code": code}), 200, "")

	c2, r := e.login("sms-user", pw)
	if r.body["stage"] != accounts.StageSecondFactor {
		t.Fatalf("login: %s", r.raw)
	}
	want(t, c2.do("POST", "/api/v1/login/second-factor/sms", map[string]string{}), 202, "")
	code = lastCode()
	want(t, c2.do("POST", "/api/v1/login/second-factor", map[string]string{"code": code}), 200, "")
	c3, _ := e.login("sms-user", pw)
	want(t, c3.do("POST", "/api/v1/login/second-factor", map[string]string{"code": code}), 401, "invalid_code")
	if bytes.Contains(e.topicBytes(), []byte("819012345678")) {
		t.Error("phone number in clear in the accounts topic")
	}
}

func TestPasswordResetByMail(t *testing.T) {
	e := newEnv(t)
	_, _ = e.activeClient("a@reset.example", "reset-user")
	c := &client{e: e}
	want(t, c.do("POST", "/api/v1/password-reset", map[string]string{"login_id": "reset-user"}), 202, "")
	want(t, c.do("POST", "/api/v1/password-reset", map[string]string{"login_id": "no-such-user"}), 202, "")
	var token string
	waitFor(t, func() bool {
		for _, m := range e.box.Messages() {
			if s := regexp.MustCompile(`token=(\S+)`).FindStringSubmatch(m.Body); s != nil && m.To[0] == "a@reset.example" {
				token = s[1]
			}
		}
		return token != ""
	})
	newPW := "a brand new passphrase here"
	want(t, c.do("POST", "/api/v1/password-reset/confirm", map[string]string{"token": token, "password": newPW}), 200, "")
	want(t, c.do("POST", "/api/v1/password-reset/confirm", map[string]string{"token": token, "password": newPW + "x"}), 400, "invalid_token")
	_, r := e.login("reset-user", newPW)
	want(t, r, 200, "")
}

// resetLinks waits for n reset mails to to and returns their links, oldest
// first.
func (e *env) resetLinks(to string, n int) []string {
	e.t.Helper()
	var links []string
	waitFor(e.t, func() bool {
		links = nil
		for _, m := range e.box.Messages() {
			if len(m.To) == 1 && m.To[0] == to {
				if l := regexp.MustCompile(`https://\S+/reset[#?]\S*`).FindString(m.Body); l != "" {
					links = append(links, l)
				}
			}
		}
		return len(links) >= n
	})
	return links
}

// The reset link carries its token in the fragment, which no browser sends
// to a server, so it never reaches the access log of a proxy.
func TestResetLinkCarriesTheTokenInTheFragment(t *testing.T) {
	e := newEnv(t)
	e.activeClient("a@fragment.example", "fragment-user")
	c := &client{e: e}
	want(t, c.do("POST", "/api/v1/password-reset", map[string]string{"login_id": "fragment-user"}), 202, "")
	link := e.resetLinks("a@fragment.example", 1)[0]
	token, ok := strings.CutPrefix(link, "https://portal.example/reset#token=")
	if !ok || strings.Contains(link, "?") || len(token) != 32 {
		t.Fatalf("reset link %q, want https://portal.example/reset#token=<32 characters>", link)
	}
	want(t, c.do("POST", "/api/v1/password-reset/confirm", map[string]string{"token": token, "password": "a passphrase from the fragment"}), 200, "")
}

// A reset ends every session of the account (R-31: whoever held the old
// password is out), and voids every other reset link mailed before it.
func TestPasswordResetEndsEverySession(t *testing.T) {
	e := newEnv(t)
	c1, pw := e.activeClient("a@reset-ends.example", "reset-ends")
	want(t, c1.do("POST", "/api/v1/2fa/decline", map[string]string{}), 200, "")
	c2, r := e.login("reset-ends", pw)
	want(t, r, 200, "")
	old1, old2 := c1.cookie, c2.cookie
	anon := &client{e: e}
	for range 2 {
		want(t, anon.do("POST", "/api/v1/password-reset", map[string]string{"login_id": "reset-ends"}), 202, "")
	}
	links := e.resetLinks("a@reset-ends.example", 2)
	token := func(l string) string { return l[strings.Index(l, "token=")+len("token="):] }
	newPW := "the passphrase after the reset"
	want(t, anon.do("POST", "/api/v1/password-reset/confirm", map[string]string{"token": token(links[1]), "password": newPW}), 200, "")
	for _, ck := range []string{old1, old2} {
		old := &client{e: e, cookie: ck}
		want(t, old.do("GET", "/api/v1/me", nil), 401, "login_required")
		want(t, old.do("GET", "/api/v1/me", nil), 401, "login_required") // and it stays ended
	}
	want(t, anon.do("POST", "/api/v1/password-reset/confirm", map[string]string{"token": token(links[0]), "password": newPW + " 2"}), 400, "invalid_token")
	_, r = e.login("reset-ends", pw)
	want(t, r, 401, "invalid_credentials")
	c3, r := e.login("reset-ends", newPW)
	want(t, r, 200, "")
	want(t, c3.do("GET", "/api/v1/me", nil), 200, "")
}

// A logged-in password change (the settings) asks for the current password
// and applies the rules of every password; the session gets a new
// identifier and every other session of the account ends. Wrong current
// passwords count like failed logins.
func TestPasswordChangeFromSettings(t *testing.T) {
	e := newEnv(t)
	c, pw := e.activeClient("a@change.example", "change-user")
	// Not before the first change is finished and a factor chosen.
	want(t, c.do("POST", "/api/v1/account/password", map[string]string{"current_password": pw, "new_password": "a long new passphrase"}), 403, "wrong_stage")
	want(t, c.do("POST", "/api/v1/2fa/decline", map[string]string{}), 200, "")
	other, r := e.login("change-user", pw)
	want(t, r, 200, "")
	change := func(cur, next string) reply {
		return c.do("POST", "/api/v1/account/password", map[string]string{"current_password": cur, "new_password": next})
	}
	newPW := "the passphrase chosen in the settings"
	for _, tc := range []struct {
		cur, next string
		status    int
		code      string
	}{
		{pw, "short", 422, "password_too_short"},
		{pw, "password1234", 422, "password_breached"},
		{pw, pw, 422, "password_same"},
		{"not my password at all", newPW, 403, "wrong_password"},
	} {
		want(t, change(tc.cur, tc.next), tc.status, tc.code)
	}
	acc, _ := e.svc.State().ByLogin("change-user")
	if acc.Failures != 1 {
		t.Fatalf("failures after one wrong current password: %d, want 1", acc.Failures)
	}
	before := c.cookie
	r = change(pw, newPW)
	want(t, r, 200, "")
	if c.cookie == before || c.cookie == "" {
		t.Fatal("session id not rotated after the password change")
	}
	if a := r.body["account"].(map[string]any); a["stage"] != accounts.StageActive || a["login_id"] != "change-user" {
		t.Fatalf("change: %s", r.raw)
	}
	want(t, c.do("GET", "/api/v1/me", nil), 200, "")
	want(t, (&client{e: e, cookie: before}).do("GET", "/api/v1/me", nil), 401, "login_required")
	want(t, other.do("GET", "/api/v1/me", nil), 401, "login_required")
	_, r = e.login("change-user", pw)
	want(t, r, 401, "invalid_credentials")
	_, r = e.login("change-user", newPW)
	want(t, r, 200, "")

	// Guessing the current password from a session is throttled like logins.
	for range 3 {
		want(t, change("still not my password", "another long passphrase"), 403, "wrong_password")
	}
	r = change("still not my password", "another long passphrase")
	want(t, r, 429, "throttled")
	if got := r.header.Get("Retry-After"); got != "1" {
		t.Errorf("a throttled password change: Retry-After %q, want 1", got)
	}

	raw := e.topicBytes()
	for _, s := range []string{`"reason":"change"`, `"step":"reauthentication"`} {
		if !bytes.Contains(raw, []byte(s)) {
			t.Errorf("no %s in the accounts topic", s)
		}
	}
	if bytes.Contains(raw, []byte(newPW)) {
		t.Error("the new password in clear in the accounts topic")
	}
}

// An account that declined 2-step verification at the first login sets it
// up later from the settings, after entering its password again; the
// recovery codes come once, and later logins ask for the factor.
func TestSecondFactorLaterFromSettings(t *testing.T) {
	e := newEnv(t)
	c, pw := e.activeClient("a@later.example", "later-user")
	want(t, c.do("POST", "/api/v1/account/reauthenticate", map[string]string{"password": pw}), 403, "wrong_stage")
	want(t, c.do("POST", "/api/v1/2fa/decline", map[string]string{}), 200, "")
	other, r := e.login("later-user", pw)
	want(t, r, 200, "")
	if r.body["stage"] != accounts.StageActive || r.body["second_factor"] != "none" {
		t.Fatalf("login after declining: %s", r.raw)
	}

	// Without entering the password again, no enrolment starts.
	want(t, c.do("POST", "/api/v1/2fa/totp/enrol", map[string]string{}), 403, "reauth_required")
	want(t, c.do("POST", "/api/v1/2fa/sms/enrol", map[string]string{"phone": "+819012345678"}), 403, "reauth_required")
	want(t, c.do("POST", "/api/v1/2fa/decline", map[string]string{}), 403, "wrong_stage")
	want(t, c.do("POST", "/api/v1/account/reauthenticate", map[string]string{"password": "a wrong password"}), 403, "wrong_password")
	r = c.do("POST", "/api/v1/account/reauthenticate", map[string]string{"password": pw})
	want(t, r, 200, "")
	if until, _ := time.Parse(time.RFC3339, r.body["reauthenticated_until"].(string)); !until.Equal(e.clock.Now().Add(10 * time.Minute)) {
		t.Fatalf("reauthenticate: %s", r.raw)
	}
	// The window passes.
	e.clock.Add(10*time.Minute + time.Second)
	want(t, c.do("POST", "/api/v1/2fa/totp/enrol", map[string]string{}), 403, "reauth_required")
	want(t, c.do("POST", "/api/v1/account/reauthenticate", map[string]string{"password": pw}), 200, "")
	en := c.do("POST", "/api/v1/2fa/totp/enrol", map[string]string{})
	want(t, en, 200, "")
	secret := en.body["secret"].(string)
	if en.body["qr_png"] == "" || !strings.HasPrefix(en.body["otpauth_url"].(string), "otpauth://totp/") {
		t.Fatalf("enrolment: %s", en.raw)
	}
	code := func(d time.Duration) string {
		s, err := totp.GenerateCode(secret, e.clock.Now().Add(d))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Another session of the account cannot finish what this one started.
	want(t, other.do("POST", "/api/v1/2fa/totp/confirm", map[string]string{"code": code(0)}), 403, "reauth_required")
	want(t, c.do("POST", "/api/v1/2fa/totp/confirm", map[string]string{"code": "000000"}), 401, "invalid_code")
	before := c.cookie
	r = c.do("POST", "/api/v1/2fa/totp/confirm", map[string]string{"code": code(0)})
	want(t, r, 200, "")
	if codes := r.body["recovery_codes"].([]any); len(codes) != 10 || c.cookie == before {
		t.Fatalf("confirm: %s (cookie rotated: %v)", r.raw, c.cookie != before)
	}
	if me := c.do("GET", "/api/v1/me", nil); me.body["stage"] != accounts.StageActive || me.body["second_factor"] != "totp" {
		t.Fatalf("me after enrolling: %s", me.raw)
	}
	// Every session sees the account's factor; none enrols a second one.
	if me := other.do("GET", "/api/v1/me", nil); me.body["second_factor"] != "totp" {
		t.Fatalf("the other session: %s", me.raw)
	}
	want(t, c.do("POST", "/api/v1/account/reauthenticate", map[string]string{"password": pw}), 200, "")
	want(t, c.do("POST", "/api/v1/2fa/totp/enrol", map[string]string{}), 409, "second_factor_set")
	want(t, c.do("POST", "/api/v1/2fa/sms/enrol", map[string]string{"phone": "+819012345678"}), 409, "second_factor_set")

	// The next login asks for the factor.
	want(t, c.do("POST", "/api/v1/logout", map[string]string{}), 200, "")
	c, r = e.login("later-user", pw)
	want(t, r, 200, "")
	if r.body["stage"] != accounts.StageSecondFactor || r.body["second_factor"] != "totp" {
		t.Fatalf("login after enrolling: %s", r.raw)
	}
	want(t, c.do("POST", "/api/v1/login/second-factor", map[string]string{"code": code(30 * time.Second)}), 200, "")

	raw := e.topicBytes()
	if n := bytes.Count(raw, []byte(`"step":"reauthentication"`)); n != 4 {
		t.Errorf("%d reauthentication events, want 4 (one failed, three passed)", n)
	}
	if !bytes.Contains(raw, []byte(`"method":"totp","totp_secret_sealed"`)) || bytes.Contains(raw, []byte(secret)) {
		t.Error("no sealed TOTP enrolment in the accounts topic, or the secret in clear")
	}
}

// The same later enrolment by SMS.
func TestSMSLaterFromSettings(t *testing.T) {
	e := newEnv(t)
	c, pw := e.activeClient("a@sms-later.example", "sms-later")
	want(t, c.do("POST", "/api/v1/2fa/decline", map[string]string{}), 200, "")
	want(t, c.do("POST", "/api/v1/2fa/sms/verify", map[string]string{"code": "123456"}), 403, "reauth_required")
	want(t, c.do("POST", "/api/v1/account/reauthenticate", map[string]string{"password": pw}), 200, "")
	want(t, c.do("POST", "/api/v1/2fa/sms/enrol", map[string]string{"phone": "+81 90-1234-5678"}), 202, "")
	lastCode := func() string {
		msgs := e.sms.Messages()
		return regexp.MustCompile(`\d{6}`).FindString(msgs[len(msgs)-1].Body)
	}
	r := c.do("POST", "/api/v1/2fa/sms/verify", map[string]string{"code": lastCode()})
	want(t, r, 200, "")
	if len(r.body["recovery_codes"].([]any)) != 10 {
		t.Fatalf("verify: %s", r.raw)
	}
	c2, r := e.login("sms-later", pw)
	if r.body["stage"] != accounts.StageSecondFactor || r.body["second_factor"] != "sms" {
		t.Fatalf("login after enrolling: %s", r.raw)
	}
	want(t, c2.do("POST", "/api/v1/login/second-factor/sms", map[string]string{}), 202, "")
	want(t, c2.do("POST", "/api/v1/login/second-factor", map[string]string{"code": lastCode()}), 200, "")
}

// The links of the mails open the web application: the reset link, the
// alerts, devices and notices the notifier links to, and the settings.
func TestMailLinksOpenTheApplication(t *testing.T) {
	h, err := portal.New(portal.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/reset", "/settings", "/alerts/2Lq7aB0000000000000000000b3", "/devices/dv_2Lq7aB", "/notices/nt_2Lq7aB",
		"/operator/customers/cu_1/devices/dv_2Lq7aB", "/operator/customers/cu_1/notices/nt_2Lq7aB"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") || !strings.Contains(rec.Body.String(), "/assets/app.js") {
			t.Errorf("GET %s: %d %s", path, rec.Code, rec.Header().Get("Content-Type"))
		}
		// Only the reset page, whose old links carry the token in the query,
		// sends no Referer at all.
		wantPolicy := "same-origin"
		if path == "/reset" {
			wantPolicy = "no-referrer"
		}
		if got := rec.Header().Get("Referrer-Policy"); got != wantPolicy {
			t.Errorf("GET %s: Referrer-Policy %q, want %q", path, got, wantPolicy)
		}
	}
}

// from is a client whose connections leave from ip (every 127.0.0.0/8
// address is local on Linux): another source address for the throttling.
func (e *env) from(ip string) *client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &client{e: e, hc: &http.Client{Transport: tr}}
}

// resetMails counts the reset mails to an address.
func (e *env) resetMails(to string) int {
	n := 0
	for _, m := range e.box.Messages() {
		if len(m.To) == 1 && m.To[0] == to && strings.Contains(m.Body, "/reset#token=") {
			n++
		}
	}
	return n
}

// Password-reset requests cannot flood a customer's mailbox: one user ID
// (known or not, in any letter case) gets at most 3 mails an hour, one
// source address at most 20 requests an hour, past which it still gets
// each user ID's first mail of the hour (many users may share one
// address). Every answer is the same 202, whether the user exists and
// whether a mail went out.
func TestPasswordResetRequestsAreThrottled(t *testing.T) {
	e := newEnv(t)
	e.activeClient("a@flood.example", "flood-user")
	e.activeClient("b@flood.example", "other-user")
	e.activeClient("c@flood.example", "barrier-user")
	answers := map[string]int{}
	ask := func(c *client, loginID string) {
		t.Helper()
		r := c.do("POST", "/api/v1/password-reset", map[string]string{"login_id": loginID})
		answers[fmt.Sprintf("%d %s", r.status, r.raw)]++
	}
	here, there := e.from("127.0.0.1"), e.from("127.0.0.2")
	// The mails leave in the order asked: once barrier-user's n-th has
	// arrived, every request before it is done with.
	barriers := 0
	settled := func() {
		t.Helper()
		barriers++
		ask(there, "barrier-user")
		waitFor(t, func() bool { return e.resetMails("c@flood.example") == barriers })
	}
	mails := func(to string, n int) {
		t.Helper()
		if got := e.resetMails(to); got != n {
			t.Fatalf("%d reset mails to %s, want %d", got, to, n)
		}
	}

	for i := range 8 {
		ask(here, []string{"flood-user", "FLOOD-User"}[i%2])
		if i%2 == 0 {
			ask(here, "no-such-user")
		}
	}
	settled()
	mails("a@flood.example", 3)
	// Up to 20 requests from one address; past them it gets a user ID's
	// first mail of the hour, and no second; another address still gets
	// through.
	for i := range 8 {
		ask(here, fmt.Sprintf("nobody-%d", i))
	}
	ask(here, "other-user")
	ask(here, "other-user")
	settled()
	mails("b@flood.example", 1)
	ask(there, "other-user")
	settled()
	mails("b@flood.example", 2)
	// An hour later the oldest mails have aged out of the cap (and their
	// links expired).
	e.clock.Add(time.Hour)
	ask(here, "flood-user")
	settled()
	mails("a@flood.example", 4)

	if len(answers) != 1 {
		t.Fatalf("answers differ: %v", answers)
	}
	for a := range answers {
		if !strings.HasPrefix(a, "202 ") {
			t.Fatalf("answer %s, want 202", a)
		}
	}
}

// SMS codes cost money, and an enrolment sends them to any number (SMS
// pumping). An account gets a code at most once a minute while the last
// one is unused and at most 10 in 24 hours, one session at most 5; a
// refusal is 429 throttled, says when to ask again, and sends nothing.
func TestSMSSendsAreThrottled(t *testing.T) {
	e := newEnv(t)
	c, pw := e.activeClient("a@pump.example", "pump-user")
	sent := 0
	check := func(r reply, status int, retryAfter string) {
		t.Helper()
		want(t, r, status, "")
		if status == 202 {
			sent++
		} else {
			// The account's caps pass with time, the session's with a new login.
			say := map[bool]string{true: "wait before asking for another", false: "log in again"}[retryAfter != ""]
			msg, _ := r.body["message"].(string)
			if r.body["error"] != "throttled" || r.header.Get("Retry-After") != retryAfter || !strings.Contains(msg, say) {
				t.Fatalf("refusal %s with Retry-After %q, want throttled saying %q and %q", r.raw, r.header.Get("Retry-After"), say, retryAfter)
			}
		}
		if got := len(e.sms.Messages()); got != sent {
			t.Fatalf("%d messages at the gateway, want %d", got, sent)
		}
	}
	enrol := func(c *client, status int, retryAfter string) {
		t.Helper()
		// A new number every time, as a pump would.
		check(c.do("POST", "/api/v1/2fa/sms/enrol", map[string]string{"phone": fmt.Sprintf("+8190%08d", sent)},
			"Accept-Language", "en"), status, retryAfter)
	}
	login := func() *client {
		t.Helper()
		c, r := e.login("pump-user", pw)
		want(t, r, 200, "")
		return c
	}

	enrol(c, 202, "")
	enrol(c, 429, "60")
	e.clock.Add(30 * time.Second)
	enrol(c, 429, "30")
	for range 4 {
		e.clock.Add(30 * time.Second)
		enrol(c, 202, "")
		e.clock.Add(30 * time.Second)
	}
	e.clock.Add(30 * time.Second)
	enrol(c, 429, "") // the account may have one now, this session had 5: log in again
	c = login()
	for range 5 {
		enrol(c, 202, "")
		e.clock.Add(time.Minute)
	}
	// 10 in 24 hours, sent over 10 minutes: the first ages out in 23 h 50 min.
	enrol(login(), 429, strconv.Itoa(int((24*time.Hour - 10*time.Minute).Seconds())))
	e.clock.Add(24 * time.Hour)
	c = login()
	enrol(c, 202, "")
	code := regexp.MustCompile(`\d{6}`).FindString(e.sms.Messages()[sent-1].Body)
	want(t, c.do("POST", "/api/v1/2fa/sms/verify", map[string]string{"code": code}), 200, "")

	// The login code: the enrolment code was used, so no wait; a repeat
	// within the minute is refused.
	c = login()
	check(c.do("POST", "/api/v1/login/second-factor/sms", map[string]string{}, "Accept-Language", "en"), 202, "")
	check(c.do("POST", "/api/v1/login/second-factor/sms", map[string]string{}, "Accept-Language", "en"), 429, "60")
	code = regexp.MustCompile(`\d{6}`).FindString(e.sms.Messages()[sent-1].Body)
	want(t, c.do("POST", "/api/v1/login/second-factor", map[string]string{"code": code}), 200, "")
}

// A hard lock ends every session of the account, like a change of its
// credentials: a lock reached by failed logins from elsewhere ends the
// sessions the account has, and they stay ended after the unlock; one
// reached by failures inside a session (a wrong current password) ends
// that session and every other one too.
func TestHardLockEndsEverySession(t *testing.T) {
	e := newEnv(t)
	mine, pw := e.activeClient("a@lockout.example", "lockout-user")
	want(t, mine.do("POST", "/api/v1/2fa/decline", map[string]string{}), 200, "")
	locked := func() bool { a, _ := e.svc.State().ByLogin("lockout-user"); return a.Locked }
	unlock := func() {
		t.Helper()
		acc, _ := e.svc.State().ByLogin("lockout-user")
		if err := accounts.Unlock(context.Background(), e.prod, acc.CustomerID, acc.ID, "ac_operator", e.clock.Now()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return !locked() })
	}

	for i := range 10 {
		e.clock.Add(16 * time.Minute)
		want(t, mine.do("GET", "/api/v1/me", nil), 200, "") // until the lock
		_, r := e.login("lockout-user", "not the password at all")
		want(t, r, 401, "invalid_credentials")
		if i < 9 && locked() {
			t.Fatalf("locked after %d failures", i+1)
		}
	}
	if !locked() {
		t.Fatal("not locked after 10 failed logins")
	}
	held := mine.cookie
	want(t, mine.do("GET", "/api/v1/me", nil), 401, "login_required")
	unlock()
	want(t, (&client{e: e, cookie: held}).do("GET", "/api/v1/me", nil), 401, "login_required")

	stolen, r := e.login("lockout-user", pw)
	want(t, r, 200, "")
	other, r := e.login("lockout-user", pw)
	want(t, r, 200, "")
	held = stolen.cookie
	for range 10 {
		e.clock.Add(16 * time.Minute)
		want(t, other.do("GET", "/api/v1/me", nil), 200, "")
		want(t, stolen.do("POST", "/api/v1/account/reauthenticate", map[string]string{"password": "a guess at the password"}), 403, "wrong_password")
	}
	if !locked() {
		t.Fatal("not locked after 10 wrong current passwords")
	}
	if stolen.cookie != "" {
		t.Error("the session cookie was not cleared")
	}
	want(t, (&client{e: e, cookie: held}).do("GET", "/api/v1/me", nil), 401, "login_required")
	want(t, other.do("GET", "/api/v1/me", nil), 401, "login_required")
	unlock()
	e.clock.Add(16 * time.Minute) // the source address's delay after 20 failures
	_, r = e.login("lockout-user", pw)
	want(t, r, 200, "")
}

// enrolTOTP enrols an authenticator app at the first login's choice and
// returns its secret and the recovery codes.
func (e *env) enrolTOTP(c *client) (secret string, recovery []string) {
	e.t.Helper()
	en := c.do("POST", "/api/v1/2fa/totp/enrol", map[string]string{})
	want(e.t, en, 200, "")
	secret = en.body["secret"].(string)
	code, err := totp.GenerateCode(secret, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	r := c.do("POST", "/api/v1/2fa/totp/confirm", map[string]string{"code": code})
	want(e.t, r, 200, "")
	return secret, texts(r.body["recovery_codes"])
}

// texts are the strings of a JSON array.
func texts(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// lastSMS is the code of the newest text message the SMS sink got.
func (e *env) lastSMS() string {
	e.t.Helper()
	msgs := e.sms.Messages()
	if len(msgs) == 0 {
		e.t.Fatal("no SMS sent")
	}
	return regexp.MustCompile(`\d{6}`).FindString(msgs[len(msgs)-1].Body)
}

// factorState is what the settings read of the account's 2-step
// verification: the factor and the recovery codes left.
func factorState(t *testing.T, c *client) (string, int) {
	t.Helper()
	r := c.do("GET", "/api/v1/account/second-factor", nil)
	want(t, r, 200, "")
	return r.body["second_factor"].(string), int(r.body["recovery_codes_left"].(float64))
}

// factorChanges are the second_factor_changed events of an account, in log
// order.
func (e *env) factorChanges(accountID string) []*events.AccountSecondFactorChanged {
	e.t.Helper()
	var out []*events.AccountSecondFactorChanged
	for _, env := range e.records(events.TopicAccounts) {
		if p, err := events.Decode(env); err == nil {
			if v, ok := p.(*events.AccountSecondFactorChanged); ok && v.AccountID == accountID {
				out = append(out, v)
			}
		}
	}
	return out
}

// From the settings, after entering the password again, an account
// replaces its second factor (the app by SMS here; the app stands until
// the SMS number is confirmed) and then turns 2-step verification off,
// which is written as the factor "none". Later logins follow each state;
// each change gives its session a new identifier and ends every other
// session of the account.
func TestSecondFactorReplacedAndTurnedOffFromSettings(t *testing.T) {
	e := newEnv(t)
	c, pw := e.activeClient("a@replace.example", "replace-user")
	_, oldCodes := e.enrolTOTP(c)
	acc, _ := e.svc.State().ByLogin("replace-user")
	if f, n := factorState(t, c); f != "totp" || n != 10 {
		t.Fatalf("after enrolling: %s with %d recovery codes", f, n)
	}
	phone := map[string]any{"phone": "+819012345678", "replace": true}

	// Nothing changes without the password again, and replacing is asked
	// for explicitly.
	want(t, c.do("POST", "/api/v1/2fa/sms/enrol", phone), 403, "reauth_required")
	want(t, c.do("POST", "/api/v1/account/second-factor/disable", map[string]string{}), 403, "reauth_required")
	want(t, c.do("POST", "/api/v1/account/reauthenticate", map[string]string{"password": pw, "code": oldCodes[9]}), 200, "")
	want(t, c.do("POST", "/api/v1/2fa/sms/enrol", map[string]any{"phone": "+819012345678"}), 409, "second_factor_set")
	want(t, c.do("POST", "/api/v1/2fa/sms/enrol", phone), 202, "")
	// Until the new number is confirmed, the app stands.
	pending, r := e.login("replace-user", pw)
	if r.body["stage"] != accounts.StageSecondFactor || r.body["second_factor"] != "totp" {
		t.Fatalf("a login during the replacement: %s", r.raw)
	}
	want(t, c.do("POST", "/api/v1/2fa/sms/verify", map[string]string{"code": "000000"}), 401, "invalid_code")
	before := c.cookie
	r = c.do("POST", "/api/v1/2fa/sms/verify", map[string]string{"code": e.lastSMS()})
	want(t, r, 200, "")
	newCodes := texts(r.body["recovery_codes"])
	if len(newCodes) != 10 || c.cookie == before || r.body["account"].(map[string]any)["second_factor"] != "sms" {
		t.Fatalf("replaced: %s (cookie rotated: %v)", r.raw, c.cookie != before)
	}
	// The replacement ended every other session of the account, the login
	// half-way through with the app too.
	want(t, pending.do("GET", "/api/v1/me", nil), 401, "login_required")
	want(t, (&client{e: e, cookie: before}).do("GET", "/api/v1/me", nil), 401, "login_required")
	if f, n := factorState(t, c); f != "sms" || n != 10 {
		t.Fatalf("after replacing: %s with %d recovery codes", f, n)
	}
	// The next login asks for an SMS code; the old recovery codes are void.
	e.clock.Add(30 * time.Second)
	l, r := e.login("replace-user", pw)
	if r.body["stage"] != accounts.StageSecondFactor || r.body["second_factor"] != "sms" {
		t.Fatalf("login after replacing: %s", r.raw)
	}
	want(t, l.do("POST", "/api/v1/login/second-factor", map[string]string{"code": oldCodes[0]}), 401, "invalid_code")
	want(t, l.do("POST", "/api/v1/login/second-factor/sms", map[string]string{}), 202, "")
	want(t, l.do("POST", "/api/v1/login/second-factor", map[string]string{"code": e.lastSMS()}), 200, "")

	// Turning it off: the replacement gave the session a new identifier,
	// which has to enter the password again, and a code of the factor (an
	// SMS code sent for it).
	want(t, c.do("POST", "/api/v1/account/second-factor/disable", map[string]string{}), 403, "reauth_required")
	want(t, c.do("POST", "/api/v1/account/reauthenticate/sms", map[string]string{}), 202, "")
	want(t, c.do("POST", "/api/v1/account/reauthenticate", map[string]string{"password": pw, "code": e.lastSMS()}), 200, "")
	want(t, l.do("GET", "/api/v1/me", nil), 200, "")
	before = c.cookie
	r = c.do("POST", "/api/v1/account/second-factor/disable", map[string]string{})
	want(t, r, 200, "")
	if r.body["account"].(map[string]any)["second_factor"] != "none" || c.cookie == before {
		t.Fatalf("turned off: %s (cookie rotated: %v)", r.raw, c.cookie != before)
	}
	// The session that turned it off goes on under a new identifier; every
	// other session of the account ended, as after a password change.
	want(t, (&client{e: e, cookie: before}).do("GET", "/api/v1/me", nil), 401, "login_required")
	want(t, l.do("GET", "/api/v1/me", nil), 401, "login_required")
	if f, n := factorState(t, c); f != "none" || n != 0 {
		t.Fatalf("after turning it off: %s with %d recovery codes", f, n)
	}
	want(t, c.do("POST", "/api/v1/account/reauthenticate", map[string]string{"password": pw}), 200, "")
	want(t, c.do("POST", "/api/v1/account/second-factor/disable", map[string]string{}), 409, "no_second_factor")
	want(t, c.do("POST", "/api/v1/account/recovery-codes", map[string]string{}), 409, "no_second_factor")
	// The next login asks for the password only.
	if _, r := e.login("replace-user", pw); r.status != 200 || r.body["stage"] != accounts.StageActive || r.body["second_factor"] != "none" {
		t.Fatalf("login after turning it off: %s", r.raw)
	}
	// And it can be set up again as after a decline, no replacing asked.
	want(t, c.do("POST", "/api/v1/2fa/totp/enrol", map[string]string{}), 200, "")

	var methods []string
	for _, ch := range e.factorChanges(acc.ID) {
		methods = append(methods, ch.Method)
		if ch.Method == events.FactorNone && (ch.RecoveryCodeHashes != "" || ch.TOTPSecretSealed != "" || ch.PhoneSealed != "") {
			t.Errorf("turned off, yet %+v", ch)
		}
	}
	if got := strings.Join(methods, " "); got != "totp sms none" {
		t.Errorf("second_factor_changed events: %s, want totp sms none", got)
	}
	raw := e.topicBytes()
	for _, s := range []string{"819012345678", newCodes[0], oldCodes[1]} {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("%q in clear in the accounts topic", s)
		}
	}
}

// New recovery codes from the settings: the password again, ten new codes
// shown once, the old set void; the settings count the codes left.
func TestNewRecoveryCodesFromSettings(t *testing.T) {
	e := newEnv(t)
	c, pw := e.activeClient("a@codes.example", "codes-user")
	secret, oldCodes := e.enrolTOTP(c)
	acc, _ := e.svc.State().ByLogin("codes-user")
	l, _ := e.login("codes-user", pw)
	want(t, l.do("POST", "/api/v1/login/second-factor", map[string]string{"code": oldCodes[0]}), 200, "")
	if f, n := factorState(t, c); f != "totp" || n != 9 {
		t.Fatalf("after using one: %s with %d recovery codes, want totp with 9", f, n)
	}

	want(t, c.do("POST", "/api/v1/account/recovery-codes", map[string]string{}), 403, "reauth_required")
	want(t, c.do("POST", "/api/v1/account/reauthenticate", map[string]string{"password": "not the password"}), 403, "wrong_password")
	want(t, c.do("POST", "/api/v1/account/recovery-codes", map[string]string{}), 403, "reauth_required")
	e.clock.Add(30 * time.Second)
	appCode, err := totp.GenerateCode(secret, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	want(t, c.do("POST", "/api/v1/account/reauthenticate", map[string]string{"password": pw, "code": appCode}), 200, "")
	r := c.do("POST", "/api/v1/account/recovery-codes", map[string]string{})
	want(t, r, 200, "")
	newCodes := texts(r.body["recovery_codes"])
	if len(newCodes) != 10 || r.body["account"].(map[string]any)["second_factor"] != "totp" {
		t.Fatalf("new codes: %s", r.raw)
	}
	for _, n := range newCodes {
		for _, o := range oldCodes {
			if n == o {
				t.Fatalf("new code %s was an old one", n)
			}
		}
	}
	if f, n := factorState(t, c); f != "totp" || n != 10 {
		t.Fatalf("after new codes: %s with %d recovery codes", f, n)
	}
	// The old set is void; a new code works once; the app works as before.
	l, _ = e.login("codes-user", pw)
	want(t, l.do("POST", "/api/v1/login/second-factor", map[string]string{"code": oldCodes[1]}), 401, "invalid_code")
	want(t, l.do("POST", "/api/v1/login/second-factor", map[string]string{"code": newCodes[0]}), 200, "")
	l, _ = e.login("codes-user", pw)
	want(t, l.do("POST", "/api/v1/login/second-factor", map[string]string{"code": newCodes[0]}), 401, "invalid_code")
	e.clock.Add(30 * time.Second)
	code, err := totp.GenerateCode(secret, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	want(t, l.do("POST", "/api/v1/login/second-factor", map[string]string{"code": code}), 200, "")
	if _, n := factorState(t, c); n != 9 {
		t.Fatalf("%d recovery codes left, want 9", n)
	}

	// The audit trail: the factor as it was, byte for byte, with new hashes.
	ch := e.factorChanges(acc.ID)
	if len(ch) != 2 || ch[1].Method != events.FactorTOTP || ch[1].TOTPSecretSealed != ch[0].TOTPSecretSealed ||
		ch[1].RecoveryCodeHashes == ch[0].RecoveryCodeHashes || len(strings.Split(ch[1].RecoveryCodeHashes, ",")) != 10 {
		t.Fatalf("second_factor_changed events: %+v", ch)
	}
	raw := e.topicBytes()
	for _, s := range append([]string{secret}, newCodes...) {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("%q in clear in the accounts topic", s)
		}
	}
}

// A throttled login says when to try again (Retry-After, in seconds): the
// same for an unknown user ID as for a known one, doubling up to 15
// minutes.
func TestThrottledLoginsSayWhenToRetry(t *testing.T) {
	e := newEnv(t)
	_, id, pw := e.register("a@retry.example")
	try := func(loginID, password string, status int, retryAfter string) reply {
		t.Helper()
		_, r := e.login(loginID, password)
		want(t, r, status, "")
		if got := r.header.Get("Retry-After"); got != retryAfter {
			t.Fatalf("%s: %d with Retry-After %q, want %q", loginID, r.status, got, retryAfter)
		}
		return r
	}
	var throttled []string
	for _, who := range []string{id, "nobody-here"} {
		for range 3 { // the free failures
			try(who, "a wrong password", 401, "")
		}
		throttled = append(throttled, try(who, "a wrong password", 429, "1").raw)
		e.clock.Add(time.Second)
		try(who, "a wrong password", 401, "")
		try(who, pw, 429, "2") // even the right password waits
		e.clock.Add(time.Second)
		try(who, pw, 429, "1")
		e.clock.Add(time.Second)
		try(who, "a wrong password", 401, "")
		try(who, "a wrong password", 429, "4")
	}
	if throttled[0] != throttled[1] {
		t.Errorf("throttled: known user %s, unknown %s", throttled[0], throttled[1])
	}
	e.clock.Add(4 * time.Second)
	try(id, pw, 200, "")
	// Waiting out each delay, the next one doubles, up to 15 minutes.
	wait := 4
	for range 10 {
		e.clock.Add(time.Duration(wait) * time.Second)
		try("nobody-here", "a wrong password", 401, "")
		wait = min(wait*2, 900)
		try("nobody-here", "a wrong password", 429, strconv.Itoa(wait))
	}
	if wait != 900 {
		t.Fatalf("the delay grew to %d s only", wait)
	}
}

// One phone number gets at most 10 enrolment codes in 24 hours, whichever
// accounts ask, so that it cannot be pumped through many accounts; another
// number still gets its code, and so does a login of an account that
// verified the capped number (the cap counts typed numbers only: otherwise
// anyone could stop a victim's login codes by typing the victim's number).
func TestSMSEnrolmentCodesPerPhoneNumberAreCapped(t *testing.T) {
	e := newEnv(t)
	const number = "+819011112222"
	var cs []*client
	var pws []string
	for i := range 3 {
		c, pw := e.activeClient(fmt.Sprintf("a%d@pump-number.example", i), fmt.Sprintf("pump-number-%d", i))
		cs, pws = append(cs, c), append(pws, pw)
	}
	sent := 0
	enrol := func(c *client, phone string, status int, retryAfter string) {
		t.Helper()
		r := c.do("POST", "/api/v1/2fa/sms/enrol", map[string]string{"phone": phone}, "Accept-Language", "en")
		want(t, r, status, "")
		if status == 202 {
			sent++
		} else if msg, _ := r.body["message"].(string); r.body["error"] != "throttled" || r.header.Get("Retry-After") != retryAfter ||
			!strings.Contains(msg, "phone number; wait before asking for another") {
			t.Fatalf("refusal %s with Retry-After %q, want throttled for the number and %s", r.raw, r.header.Get("Retry-After"), retryAfter)
		}
		if got := len(e.sms.Messages()); got != sent {
			t.Fatalf("%d messages at the gateway, want %d", got, sent)
		}
	}
	// Three accounts of three customers, each within its own caps (a code a
	// minute, 5 a session), send 10 codes to one number in 3 minutes.
	for sent < 9 {
		for _, c := range cs {
			enrol(c, number, 202, "")
		}
		e.clock.Add(time.Minute)
	}
	enrol(cs[0], number, 202, "")
	tenth := e.lastSMS()
	enrol(cs[1], number, 429, strconv.Itoa(int((24*time.Hour - 3*time.Minute).Seconds())))
	enrol(cs[1], "+819033334444", 202, "")
	// The tenth code enrols the number for the first account, whose logins
	// then get their codes.
	want(t, cs[0].do("POST", "/api/v1/2fa/sms/verify", map[string]string{"code": tenth}), 200, "")
	l, r := e.login("pump-number-0", pws[0])
	if r.body["stage"] != accounts.StageSecondFactor || r.body["second_factor"] != "sms" {
		t.Fatalf("login: %s", r.raw)
	}
	want(t, l.do("POST", "/api/v1/login/second-factor/sms", map[string]string{}), 202, "")
	sent++
	want(t, l.do("POST", "/api/v1/login/second-factor", map[string]string{"code": e.lastSMS()}), 200, "")
	// A day after the first codes, the number takes enrolments again.
	e.clock.Add(24*time.Hour - 3*time.Minute)
	c, r := e.login("pump-number-2", pws[2])
	if r.body["stage"] != accounts.StageChooseFactor {
		t.Fatalf("login: %s", r.raw)
	}
	enrol(c, number, 202, "")
}

// notices are the security notices mailed to an address so far, oldest
// first.
func (e *env) notices(to string) []mailbox.Message {
	var out []mailbox.Message
	for _, m := range e.box.Messages() {
		if len(m.To) == 1 && m.To[0] == to && strings.Contains(m.Subject, "Security notice") {
			out = append(out, m)
		}
	}
	return out
}

// Every change of an account's credentials mails one security notice to
// the customer's registered address, in Japanese and English: what
// changed, when (JST), from which address, and what to do if it was not
// the customer. The first login's change and a decline mail none. Each
// notice's Message-ID is derived from the ID of the event it tells of, and
// no notice holds a password, code, secret or phone number. Replacing or
// turning off the second factor ends the account's other sessions.
func TestSecurityNoticesOfCredentialChanges(t *testing.T) {
	e := newEnv(t)
	const to = "a@notice.example"
	c, pw1 := e.activeClient(to, "notice-user")
	acc, _ := e.svc.State().ByLogin("notice-user")
	declined, _ := e.activeClient("b@notice.example", "declined-user")
	want(t, declined.do("POST", "/api/v1/2fa/decline", map[string]string{}), 200, "")
	secrets := []string{pw1}
	jst := time.FixedZone("JST", 9*3600)
	// notice waits for the n-th notice and checks what it says.
	notice := func(n int, subject string, says ...string) {
		t.Helper()
		waitFor(t, func() bool { return len(e.notices(to)) >= n })
		m := e.notices(to)[n-1]
		if !strings.Contains(m.Subject, subject) {
			t.Errorf("notice %d: subject %q, want %q", n, m.Subject, subject)
		}
		says = append(says, "notice-user", e.clock.Now().In(jst).Format("2006-01-02 15:04:05 JST"), "127.0.0.1 (IPアドレス)",
			"127.0.0.1 (IP address)", "https://portal.example/reset\n", "サポート窓口", "If this was not you")
		for _, s := range says {
			if !strings.Contains(m.Body, s) {
				t.Errorf("notice %d (%s) does not say %q:\n%s", n, subject, s, m.Body)
			}
		}
	}

	e.clock.Add(time.Minute)
	secret, codes := e.enrolTOTP(c)
	secrets = append(append(secrets, secret), codes...)
	notice(1, "2段階認証が設定されました / Security notice: two-step verification was set up", "方法：認証アプリ", "method: authenticator app")

	e.clock.Add(time.Minute)
	pw2 := "the second passphrase of the notices"
	secrets = append(secrets, pw2)
	want(t, c.do("POST", "/api/v1/account/password", map[string]string{"current_password": pw1, "new_password": pw2}), 200, "")
	notice(2, "パスワードが変更されました / Security notice: your password was changed",
		"アカウント設定からパスワードが変更されました", "ほかの端末やブラウザでのログインは、すべて終了しました", "Every other login session")

	// New recovery codes leave the other sessions alone.
	other, _ := e.login("notice-user", pw2)
	want(t, other.do("POST", "/api/v1/login/second-factor", map[string]string{"code": codes[0]}), 200, "")
	e.clock.Add(time.Minute)
	want(t, c.do("POST", "/api/v1/account/reauthenticate", map[string]string{"password": pw2, "code": codes[1]}), 200, "")
	r := c.do("POST", "/api/v1/account/recovery-codes", map[string]string{})
	want(t, r, 200, "")
	secrets = append(secrets, texts(r.body["recovery_codes"])...)
	notice(3, "リカバリーコードが再発行されました / Security notice: new recovery codes were made", "previous ones no longer work")
	want(t, other.do("GET", "/api/v1/me", nil), 200, "")

	// Replacing the app by SMS ends them.
	e.clock.Add(time.Minute)
	appCode, err := totp.GenerateCode(secret, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	want(t, c.do("POST", "/api/v1/account/reauthenticate", map[string]string{"password": pw2, "code": appCode}), 200, "")
	want(t, c.do("POST", "/api/v1/2fa/sms/enrol", map[string]any{"phone": "+819012345678", "replace": true}), 202, "")
	smsCode := e.lastSMS()
	secrets = append(secrets, "819012345678", "9012345678", smsCode)
	r = c.do("POST", "/api/v1/2fa/sms/verify", map[string]string{"code": smsCode})
	want(t, r, 200, "")
	secrets = append(secrets, texts(r.body["recovery_codes"])...)
	notice(4, "2段階認証の方法が変更されました / Security notice: two-step verification was replaced", "新しい方法：SMS",
		"new method: SMS", "Every other login session")
	want(t, other.do("GET", "/api/v1/me", nil), 401, "login_required")
	want(t, c.do("GET", "/api/v1/me", nil), 200, "")

	// So does turning it off.
	other, _ = e.login("notice-user", pw2)
	want(t, other.do("POST", "/api/v1/login/second-factor/sms", map[string]string{}), 202, "")
	secrets = append(secrets, e.lastSMS())
	want(t, other.do("POST", "/api/v1/login/second-factor", map[string]string{"code": e.lastSMS()}), 200, "")
	e.clock.Add(time.Minute)
	want(t, c.do("POST", "/api/v1/account/reauthenticate/sms", map[string]string{}), 202, "")
	secrets = append(secrets, e.lastSMS())
	want(t, c.do("POST", "/api/v1/account/reauthenticate", map[string]string{"password": pw2, "code": e.lastSMS()}), 200, "")
	want(t, c.do("POST", "/api/v1/account/second-factor/disable", map[string]string{}), 200, "")
	notice(5, "2段階認証がオフにされました / Security notice: two-step verification was turned off",
		"パスワードだけでログインできる状態です", "the password alone now logs in", "Every other login session")
	want(t, other.do("GET", "/api/v1/me", nil), 401, "login_required")
	want(t, c.do("GET", "/api/v1/me", nil), 200, "")

	// A reset by mail.
	anon := &client{e: e}
	want(t, anon.do("POST", "/api/v1/password-reset", map[string]string{"login_id": "notice-user"}), 202, "")
	link := e.resetLinks(to, 1)[0]
	token := link[strings.Index(link, "token=")+len("token="):]
	pw3 := "the third passphrase of the notices"
	secrets = append(secrets, token, pw3)
	e.clock.Add(time.Minute)
	want(t, anon.do("POST", "/api/v1/password-reset/confirm", map[string]string{"token": token, "password": pw3}), 200, "")
	notice(6, "パスワードが再設定されました / Security notice: your password was reset", "パスワード再設定メールのリンクから",
		"with the link of a password reset mail", "Every login session of this account was ended")

	// One more change: had any change above mailed twice, or the first
	// login's change or the decline mailed at all, that mail would have
	// come before this one.
	c, r = e.login("notice-user", pw3)
	want(t, r, 200, "")
	want(t, c.do("POST", "/api/v1/account/reauthenticate", map[string]string{"password": pw3}), 200, "")
	e.clock.Add(time.Minute)
	secret, codes = e.enrolTOTP(c)
	secrets = append(append(secrets, secret), codes...)
	notice(7, "2段階認証が設定されました", "method: authenticator app")
	if n := len(e.notices("b@notice.example")); n != 0 {
		t.Errorf("%d notices for a declined second factor, want none", n)
	}

	// One notice per event, named after it: a retried send carries the same
	// Message-ID, so it shows as the duplicate it is.
	var wantIDs []string
	for _, env := range e.records(events.TopicAccounts) {
		p, err := events.Decode(env)
		if err != nil {
			t.Fatal(err)
		}
		switch v := p.(type) {
		case *events.AccountPasswordChanged:
			if v.AccountID == acc.ID && v.Reason != "first_login" {
				wantIDs = append(wantIDs, "notice-"+env.ID+"@mimamori.local")
			}
		case *events.AccountSecondFactorChanged:
			if v.AccountID == acc.ID {
				wantIDs = append(wantIDs, "notice-"+env.ID+"@mimamori.local")
			}
		}
	}
	var gotIDs []string
	for _, m := range e.notices(to) {
		gotIDs = append(gotIDs, m.MessageID)
		for _, s := range secrets {
			if strings.Contains(m.Body, s) || bytes.Contains(m.Raw, []byte(s)) {
				t.Errorf("notice %q holds the secret %q", m.Subject, s)
			}
		}
	}
	if !slices.Equal(gotIDs, wantIDs) {
		t.Errorf("notice Message-IDs:\n%v\nwant one per event:\n%v", gotIDs, wantIDs)
	}
}
