package web_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"html"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"
	"github.com/segmentio/ksuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/analytics/chtest"
	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/infra/testkit/stacktest"
	"github.com/mimamori/mimamori/infra/testkit/testlog"
	"github.com/mimamori/mimamori/portal-api/accounts"
	"github.com/mimamori/mimamori/services/cmd/mimamori/platform"
	"github.com/mimamori/mimamori/services/projector"
	"github.com/mimamori/mimamori/services/registry"
	"github.com/mimamori/mimamori/services/replay"
)

func TestMain(m *testing.M) { chtest.Main(m) }

const chromium = "/usr/bin/chromium"

// stack is the whole platform in this process (kfake broker, the shared
// clickhouse-server, ingest, projector, watchdog, notifier with the
// embedded mailbox, portal), as `mimamori run` starts it.
type stack struct {
	p    *platform.Platform
	prod *eventlog.Producer
}

func newStack(t *testing.T) *stack {
	t.Helper()
	_, db := chtest.EmptyDatabase(t)
	st := stacktest.Start(t, db, nil, testlog.New(t))
	return &stack{p: st.P, prod: st.Prod}
}

// seed registers a customer with devices and publishes its heartbeats and
// alerts of the last days to the event log; the projector writes them to
// ClickHouse as in production.
func (s *stack) seed(t *testing.T, name, email string, devices, perDay int) (string, []string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	start := now.Add(-32 * 24 * time.Hour)
	cust, err := registry.RegisterCustomer(ctx, s.prod, name, email, "rs_test", start)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	var seq uint32
	var envs []events.Envelope
	add := func(p events.Payload, at time.Time) {
		e, err := events.New("browser-test", p, at)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, e)
	}
	kinds := []string{events.KindDomain, events.KindIP, events.KindURL, events.KindFile, events.KindBehaviour}
	for d := 0; d < devices; d++ {
		reg, err := registry.RegisterDevice(ctx, s.prod, registry.DeviceSpec{Serial: fmt.Sprintf("SN-%s-%d", cust[len(cust)-6:], d+1),
			MAC: fmt.Sprintf("02:00:00:00:%02x:%02x", len(ids), d), Model: "MU-100", ManufacturedOn: "2026-04-01", CustomerID: cust}, start)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, reg.DeviceID)
		add(&events.DeviceActivated{DeviceID: reg.DeviceID, CustomerID: cust, HeartbeatAt: start, ActivatedAt: start}, start)
		// Heartbeats every day of the default 30-day period (a company
		// takes part on the days it has an active device), alerts on 10.
		for day := 31; day >= 0; day-- {
			at := now.Add(-time.Duration(day)*24*time.Hour - time.Duration(d+1)*time.Minute)
			seq++
			add(&events.Heartbeat{ID: kid(t, at, seq), DeviceID: reg.DeviceID, CustomerID: cust, SentAt: at, ReceivedAt: at,
				FirmwareVersion: "1.4.2", DefinitionsVersion: "2026.11.25", UptimeSeconds: 86400, Clients: 5 + d,
				Packets: 1000, Bytes: 800000}, at)
			for i := 0; day < 10 && i < perDay+(day+d)%3; i++ {
				at := at.Add(-time.Duration(i+1) * 7 * time.Minute)
				seq++
				k := kinds[(i+day+d)%len(kinds)]
				a := events.Alert{ID: kid(t, at, seq), DeviceID: reg.DeviceID, CustomerID: cust, DetectedAt: at, ReceivedAt: at.Add(time.Second),
					Severity: 1 + (i+day)%3, Kind: k, Indicator: "evil-" + k + ".example", Label: "テスト検知 " + k, Action: events.ActionBlocked,
					SrcIP: "192.168.1.10", SrcPort: 51234, SrcMAC: "02:00:00:00:10:10", DstIP: "203.0.113.9", DstPort: 443,
					DstMAC: "02:00:00:00:20:20", Protocol: "tcp", Zones: "LAN>WAN", DefinitionsVersion: "2026.11.25", Count: 1}
				switch k {
				case events.KindDomain:
					a.Domain = a.Indicator
				case events.KindURL:
					a.URL, a.Domain = "http://"+a.Indicator+"/x", a.Indicator
				case events.KindFile:
					a.FileName, a.FileSHA256 = "invoice.exe", strings.Repeat("ab", 32)
				}
				add(&a, a.ReceivedAt)
			}
		}
	}
	if err := s.prod.Publish(ctx, envs...); err != nil {
		t.Fatal(err)
	}
	return cust, ids
}

func kid(t *testing.T, at time.Time, seq uint32) string {
	var payload [16]byte
	binary.BigEndian.PutUint32(payload[12:], seq)
	copy(payload[:8], []byte(fmt.Sprintf("%08d", time.Now().UnixNano()%1e8)))
	k, err := ksuid.FromParts(at, payload[:])
	if err != nil {
		t.Fatal(err)
	}
	return k.String()
}

var (
	reTempID    = regexp.MustCompile(`Temporary user ID:\s+(\S+)`)
	reTempPW    = regexp.MustCompile(`Temporary password:\s+(\S+)`)
	reResetLink = regexp.MustCompile(`https?://\S+/reset#token=\S+`)
	reMailTo    = regexp.MustCompile(`<th>To</th><td>([^<]*)</td>`)
)

// mail waits for a mail to the address whose text matches re, after skip
// earlier mails to it that match, reading the embedded mailbox's pages as
// the customer would, and returns the page of that mail.
func (s *stack) mail(t *testing.T, to string, re *regexp.Regexp, skip int) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		seen := 0
		for n := 1; ; n++ {
			resp, err := http.Get(fmt.Sprintf("%s/messages/%d", s.p.Endpoints.Mailbox, n))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				break
			}
			page := html.UnescapeString(string(b))
			if m := reMailTo.FindStringSubmatch(page); m != nil && strings.Contains(m[1], to) && re.MatchString(page) {
				if seen == skip {
					return page
				}
				seen++
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no mail %d to %s matching %s in the mailbox", skip+1, to, re)
	return ""
}

var reSMSCode = regexp.MustCompile(`mimamori verification code: (\d{6})`)

// smsCode waits for the n-th text message (1 the first) the embedded SMS
// gateway kept, reading the mailbox page, which lists them newest first, as
// a person would, and returns its code.
func (s *stack) smsCode(t *testing.T, n int) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.p.Endpoints.Mailbox + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if codes := reSMSCode.FindAllStringSubmatch(html.UnescapeString(string(b)), -1); len(codes) >= n {
			return codes[len(codes)-n][1]
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no text message %d on the mailbox page", n)
	return ""
}

// accountState reads the accounts topic to its end, as `mimamori account`
// does before it requests an account.
func (s *stack) accountState(t *testing.T) *accounts.State {
	t.Helper()
	st := accounts.NewState()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := eventlog.ReadToEnd(ctx, s.p.Kafka, []string{s.p.Kafka.Topic(events.TopicAccounts)}, nil,
		func(_ *kgo.Record, e events.Envelope) { _ = st.Apply(e) }); err != nil {
		t.Fatal(err)
	}
	return st
}

// tempCredentials reads the temporary credentials of a mail to email: the
// first-login mail (skip 0), then those of accounts issued later.
func (s *stack) tempCredentials(t *testing.T, email string, skip int) (string, string) {
	t.Helper()
	page := s.mail(t, email, reTempPW, skip)
	return reTempID.FindStringSubmatch(page)[1], reTempPW.FindStringSubmatch(page)[1]
}

// artifacts is where screenshots go: $MIMAMORI_ARTIFACTS/portal, else
// artifacts/portal at the repository root (ignored by git).
func artifacts(t *testing.T) string {
	dir := os.Getenv("MIMAMORI_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "artifacts")
	}
	dir = filepath.Join(dir, "portal")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	t.Logf("screenshots in %s", abs)
	return abs
}

// browser is one headless Chromium on the portal at base, with the few
// steps the tests are written in. A failing step saves a screenshot.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	dir  string
}

func needChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("%s is missing: run infra/setup.sh (installs Debian's chromium)", chromium)
	}
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	needChromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.Headless, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true), chromedp.Flag("disable-default-apps", true),
		chromedp.WindowSize(1280, 900),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, tcancel := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		tcancel()
		cancel()
		acancel()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser on ctx, not on a step's timeout
		t.Fatalf("start %s: %v", chromium, err)
	}
	return &browser{t: t, ctx: ctx, base: base, dir: artifacts(t)}
}

func (b *browser) shot(name string) {
	b.t.Helper()
	buf, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(90))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, name+".jpg"), buf, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	sctx, scancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer scancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("%s: %v", what, err)
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// eval runs a script in the page, awaiting a promise it returns.
func eval[T any](b *browser, script string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](script, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", script, err)
	}
	return v
}

// fitsPhone checks that the page, at a 390 px phone's width, needs no
// sideways scrolling (10 px of slack), and names the elements that stick
// out when it does.
func (b *browser) fitsPhone(what string) {
	b.t.Helper()
	if w := eval[int](b, `document.documentElement.scrollWidth`); w > 400 {
		wide := eval[string](b, `Array.from(document.querySelectorAll("body *")).filter(function (e) {
			return e.getBoundingClientRect().right > window.innerWidth + 1;
		}).slice(0, 8).map(function (e) {
			var r = e.getBoundingClientRect();
			return e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className ? "." + String(e.className).split(" ").join(".") : "") +
				" " + Math.round(r.left) + "-" + Math.round(r.right) + " " + JSON.stringify((e.textContent || "").slice(0, 40));
		}).join("\n")`)
		b.t.Errorf("%s is %d px wide on a 390 px phone; sticking out:\n%s", what, w, wide)
	}
}

// where is the address the page shows, from the origin on.
func (b *browser) where() string { return strings.TrimPrefix(eval[string](b, `location.href`), b.base) }

func fill(sel, v string) chromedp.Action[chromedp.Void] {
	return chromedp.SendKeys(chromedp.CSS(sel), v)
}

func click(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Click(chromedp.CSS(sel))
}

func visible(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(sel))
}

// until waits for a script's truthy value, trying it every 200 ms.
func until(script string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](script, chromedp.WithPollingInterval(200*time.Millisecond), chromedp.WithPollingTimeout(25*time.Second))
}

// The customer's first day in the portal, in headless Chromium.
func TestBrowserFirstLoginDashboardAlerts(t *testing.T) {
	needChromium(t)
	s := newStack(t)
	email := "owner@browser.example"
	_, myDevices := s.seed(t, "株式会社ブラウザ", email, 2, 3)
	for i := 0; i < 5; i++ { // participants, so the average may be shown
		s.seed(t, fmt.Sprintf("参加企業%d", i+1), fmt.Sprintf("peer%d@browser.example", i+1), 1, 1+i)
	}
	// The dashboard shows what the projector has written: wait for all of it.
	wctx, wcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	if err := replay.WaitGroup(wctx, s.p.Kafka, projector.Group); err != nil {
		t.Fatal(err)
	}
	wcancel()
	tempID, tempPW := s.tempCredentials(t, email, 0)
	base := s.p.Endpoints.Portal
	b := newBrowser(t, base)

	// Login with the temporary credentials from the mail.
	b.do("open the portal", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	if got := b.text("#page-title"); got != "ログイン" {
		t.Fatalf("default language: title %q", got)
	}
	b.shot("01-login")
	b.do("log in", fill("#login-id", tempID), fill("#password", tempPW), chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#change-form")))
	b.shot("02-change-credentials")
	newPW := "ブラウザで選んだ長い合言葉 2026"
	b.do("choose ID and password", fill("#new-login-id", "browser-admin"), fill("#new-password", newPW), fill("#new-password2", newPW),
		chromedp.Click(chromedp.CSS("#change-submit")), chromedp.WaitVisible(chromedp.CSS("#choose-totp")))
	b.shot("03-choose-factor")
	b.do("start TOTP", chromedp.Click(chromedp.CSS("#choose-totp")), chromedp.WaitVisible(chromedp.CSS("#totp-qr")))
	secret := strings.TrimSpace(b.text("#totp-secret"))
	loaded, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`document.getElementById("totp-qr").naturalWidth > 100`))
	if err != nil || !loaded {
		t.Fatalf("QR code not shown (%v)", err)
	}
	b.shot("04-totp-enrol")
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b.do("confirm TOTP", fill("#code", code), chromedp.Click(chromedp.CSS("#totp-submit")), chromedp.WaitVisible(chromedp.CSS("#recovery-codes")))
	if n, _ := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll("#recovery-codes li").length`)); n != 10 {
		t.Errorf("%d recovery codes shown, want 10", n)
	}
	b.shot("05-recovery-codes")
	b.do("continue", chromedp.Click(chromedp.CSS("#continue")), chromedp.WaitVisible(chromedp.CSS("#nav")))

	// Every dashboard endpoint the pages use must exist.
	has := func(path string) bool {
		t.Helper()
		st, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`fetch("`+path+`").then(r => r.status)`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("fetch %s: %v", path, err)
		}
		if st == 404 {
			t.Errorf("missing in the portal API: GET %s answers 404", path)
		}
		return st != 404
	}
	summary, alerts, compareP, compareD := has("/api/v1/dashboard/summary"), has("/api/v1/alerts"),
		has("/api/v1/compare/participants"), has("/api/v1/compare/devices")
	if summary {
		b.do("dashboard", chromedp.WaitVisible(chromedp.CSS("#status")))
		if got := b.text("#status-headline"); !strings.Contains(got, "ご利用の環境で問題がみつかりました") {
			t.Errorf("status headline %q", got)
		}
		if got := b.text("#status-period"); !strings.Contains(got, "期間") {
			t.Errorf("period %q", got)
		}
	}
	if compareP {
		body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`fetch("/api/v1/compare/participants").then(r => r.text())`, chromedp.EvalAwaitPromise))
		t.Logf("participants: %.300s", body)
		// The participants' figures may lag new data for a moment: they are
		// recomputed behind (dashboard.SetFleetMaxStale), and the portal
		// warms them at its start, before this test seeds. Reload until the
		// average shows.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
			b.do("participants section", until(`document.querySelector("#chart-participants canvas, #participants-hidden")`))
			if eval[bool](b, `!!document.querySelector("#chart-participants canvas")`) {
				break
			}
			if time.Now().After(deadline) {
				b.shot("failed-participants-chart")
				t.Fatalf("the participants' chart is not shown: %q", b.text("#compare-participants"))
			}
			b.do("reload the dashboard", chromedp.Reload(), visible("#status"))
		}
	}
	if compareD {
		b.do("own devices chart", chromedp.WaitVisible(chromedp.CSS("#chart-devices canvas")))
		if n, _ := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll("#table-devices tbody tr").length`)); n != len(myDevices) {
			t.Errorf("devices compared: %d, want %d", n, len(myDevices))
		}
	}
	b.shot("06-dashboard-ja")

	// English, remembered across a reload.
	b.do("switch to English", chromedp.Click(chromedp.CSS("#lang")), chromedp.WaitReady(chromedp.CSS(`html[lang="en"]`)),
		chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#nav")))
	if got := b.text("#page-title"); got != "Security status" {
		t.Errorf("English title after reload: %q", got)
	}
	if summary {
		b.do("English dashboard", chromedp.WaitVisible(chromedp.CSS("#status")))
	}
	if compareP {
		b.do("participants chart (en)", chromedp.WaitVisible(chromedp.CSS("#chart-participants canvas")))
	}
	if compareD {
		b.do("devices chart (en)", chromedp.WaitVisible(chromedp.CSS("#chart-devices canvas")))
	}
	b.shot("07-dashboard-en")

	if alerts {
		b.do("all alerts", chromedp.Navigate(base+"/alerts"), chromedp.WaitVisible(chromedp.CSS("#alert-table .alert-link")))
		b.shot("08-alerts-en")
		b.do("alert detail", chromedp.Click(chromedp.CSS("#alert-table .alert-link")), chromedp.WaitVisible(chromedp.CSS("#alert-detail")))
		for _, f := range []string{"id", "detected_at", "severity", "kind", "indicator", "src_ip", "dst_ip", "protocol", "definitions_version"} {
			if got := b.text(`#alert-detail dd[data-field="` + f + `"]`); got == "" || got == "—" {
				t.Errorf("alert detail field %s is %q", f, got)
			}
		}
		b.shot("09-alert-detail-en")
	}
	for _, p := range []struct{ path, sel, ep string }{{"/devices", "#device-table, #no-devices", "/api/v1/devices"}, {"/notices", ".notice, #no-notices", "/api/v1/notices"}} {
		if has(p.ep) {
			b.do("page "+p.path, chromedp.Navigate(base+p.path), chromedp.WaitVisible(chromedp.CSS(p.sel)))
			b.shot("10-" + strings.TrimPrefix(p.path, "/") + "-en")
		}
	}

	// Phone width: the page still fits.
	b.do("phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#nav")))
	b.fitsPhone("the dashboard")
	b.shot("11-phone-en")
	b.do("desktop", chromedp.EmulateViewport(1280, 900))

	// Logout really ends the session, and says so.
	b.do("log out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login-form")), visible("#logged-out"))
	if got := b.text("#logged-out"); got != "You are logged out." {
		t.Errorf("after logout the page says %q", got)
	}
	st, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`fetch("/api/v1/me").then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil || st != 401 {
		t.Errorf("after logout /api/v1/me answers %d (%v)", st, err)
	}
	b.shot("12-logged-out-en")
}

// A customer who declines 2-step verification and later forgets the
// password; an operator who finds that customer, lifts a lock, adds an
// account and publishes notices; the customer, unlocked, reads them, then
// sets up 2-step verification and a new password in the settings, logs in
// with both, gets new recovery codes, replaces the app by SMS, turns 2-step
// verification off, and opens the links of mails about a device and a
// notice.
func TestBrowserResetDeclineOperator(t *testing.T) {
	needChromium(t)
	s := newStack(t)
	ctx := context.Background()
	email, opsEmail := "kanri@reset.example", "ops@mimamori.example"
	cust, devices := s.seed(t, "株式会社リセット", email, 1, 1)
	// The operator's organisation as the portal's operator tests set it up:
	// a registered customer whose administrator's mail receives the
	// credentials of an operator account requested for it.
	ops, err := registry.RegisterCustomer(ctx, s.prod, "みまもり運用チーム", opsEmail, "rs_test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s.tempCredentials(t, opsEmail, 0) // its administrator's account comes first
	if _, err := accounts.RequestAccount(ctx, s.prod, s.accountState(t), ops, events.RoleOperator, "bootstrap", time.Now()); err != nil {
		t.Fatal(err)
	}
	opID, opPW := s.tempCredentials(t, opsEmail, 1)
	tempID, tempPW := s.tempCredentials(t, email, 0)
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	if err := replay.WaitGroup(wctx, s.p.Kafka, projector.Group); err != nil {
		t.Fatal(err)
	}
	wcancel()
	base := s.p.Endpoints.Portal
	b := newBrowser(t, base)
	status := func(id string) string { return `document.getElementById("` + id + `").textContent` }

	// 1. The first login, declining 2-step verification.
	pw := "最初に決めた長いパスワード 2026"
	b.do("first login", chromedp.Navigate(base+"/login"), visible("#login-form"), fill("#login-id", tempID), fill("#password", tempPW),
		click("#login-submit"), visible("#change-form"))
	if missing := eval[string](b, `(() => { const T = window.MIMAMORI_TEXT, ja = Object.keys(T.ja), en = Object.keys(T.en);
		return ja.filter(k => !(k in T.en)).concat(en.filter(k => !(k in T.ja))).join(" "); })()`); missing != "" {
		t.Errorf("texts in one language only: %s", missing)
	}
	b.do("choose ID and password", fill("#new-login-id", "reset-user"), fill("#new-password", pw), fill("#new-password2", pw),
		click("#change-submit"), visible("#decline"))
	if got := b.text("#decline-warning"); !strings.Contains(got, "パスワードが漏れたとき") {
		t.Errorf("the warning next to the decline: %q", got)
	}
	b.shot("13-choose-factor-not-now")
	b.do("not now", click("#decline"), visible("#nav"), visible("#status, #empty-state"))
	if at, me := b.where(), eval[string](b, `fetch("/api/v1/me").then(r => r.json()).then(m => m.stage + " " + m.second_factor)`); at != "/" || me != "active none" {
		t.Errorf("after declining: at %s, session %q", at, me)
	}
	if eval[bool](b, `!!document.getElementById("nav-customers")`) {
		t.Error("a customer sees the operator's menu")
	}

	// 2. The forgotten password: the same answer for an unknown user ID, the
	// mailed link (its token off the address bar and the history at once),
	// a forged link refused, the new password.
	b.do("log out", click("#logout"), visible("#logged-out"))
	b.do("forgot the password", click("#forgot-link"), visible("#reset-form"))
	b.shot("14-reset-request")
	b.do("in English", click("#lang"), until(`document.getElementById("page-title").textContent === "Reset your password"`),
		click("#lang"), until(`document.getElementById("page-title").textContent === "パスワードの再設定"`))
	b.do("ask for an unknown user", fill("#reset-login-id", "nobody-here"), click("#reset-submit"), until(status("reset-sent")))
	neutral := b.text("#reset-sent")
	eval[string](b, `document.getElementById("reset-login-id").value = ""`)
	b.do("ask for the user", fill("#reset-login-id", "reset-user"), click("#reset-submit"))
	link := reResetLink.FindString(s.mail(t, email, reResetLink, 0))
	b.do("the answer", until(status("reset-sent")))
	if got := b.text("#reset-sent"); got != neutral || !strings.Contains(got, "ユーザーIDが登録されていれば") {
		t.Errorf("answers: unknown user %q, known user %q", neutral, got)
	}
	b.shot("15-reset-sent")
	resp, err := http.Get(base + "/reset?token=x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Referrer-Policy"); resp.StatusCode != 200 || got != "no-referrer" {
		t.Errorf("GET /reset: %d, Referrer-Policy %q", resp.StatusCode, got)
	}
	pw2 := "再設定で決めた新しいパスワード 2026"
	// A link of the old form (the token in the query, as mailed before) is
	// still read; this one is forged.
	b.do("a forged link", chromedp.Navigate(base+"/reset?token=forged"), visible("#reset-confirm-form"),
		fill("#reset-password", pw2), fill("#reset-password2", pw2), click("#reset-confirm-submit"), visible("#reset-again"))
	if got := b.text("#reset-confirm-form .error"); !strings.Contains(got, "無効") {
		t.Errorf("a forged link: %q", got)
	}
	// A link opened where the reset page is shown changes the fragment only.
	b.do("a link into the open reset page", chromedp.Evaluate[chromedp.Void](`location.href = "/reset#token=forged-too"`),
		until(`location.href.endsWith("/reset") && document.getElementById("reset-again").hidden`))
	b.do("open the mailed link", chromedp.Navigate("about:blank"), chromedp.Navigate(link), visible("#reset-confirm-form"))
	if got := b.where(); got != "/reset" {
		t.Errorf("the address bar shows %s, want /reset without the token", got)
	}
	hist, err := chromedp.Run(b.ctx, chromedp.NavigationEntries())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range hist.Entries {
		if strings.Contains(e.URL, "token") {
			t.Errorf("the history keeps %s", e.URL)
		}
	}
	b.shot("16-reset-new-password")
	b.do("set the new password", fill("#reset-password", pw2), fill("#reset-password2", pw2), click("#reset-confirm-submit"), visible("#reset-done"))
	if got := b.where(); got != "/login" {
		t.Errorf("after the reset: at %s", got)
	}
	b.shot("17-reset-done")
	b.do("log in with the new password", fill("#login-id", "reset-user"), fill("#password", pw2), click("#login-submit"), visible("#nav"))
	b.do("log out", click("#logout"), visible("#logged-out"))

	// 3. The operator, in English: the customers, a lock lifted, an account
	// added, the customer's pages through the operator routes, two notices.
	opPW2 := "運用担当者が決めた長いパスワード 2026"
	b.do("English", click("#lang"), chromedp.WaitReady(chromedp.CSS(`html[lang="en"]`)), visible("#login-form"))
	b.do("operator's first login", fill("#login-id", opID), fill("#password", opPW), click("#login-submit"), visible("#change-form"))
	b.do("operator's ID and password", fill("#new-login-id", "ops-operator"), fill("#new-password", opPW2), fill("#new-password2", opPW2),
		click("#change-submit"), visible("#choose-totp"), visible("#factor-required"))
	if eval[bool](b, `!!document.getElementById("decline")`) {
		t.Error("an operator is offered to go without 2-step verification")
	}
	b.shot("17a-operator-choose-factor-en")
	b.do("the operator's app", click("#choose-totp"), visible("#totp-qr"))
	opCode, err := totp.GenerateCode(strings.TrimSpace(b.text("#totp-secret")), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b.do("confirm the operator's app", fill("#code", opCode), click("#totp-submit"), visible("#recovery-codes"))
	b.do("the customers", click("#continue"), visible("#customer-table"), visible("#nav-customers"))
	row := `#customer-table tr[data-customer="` + cust + `"]`
	if at, got := b.where(), b.text(row+" th"); at != "/operator" || got != "株式会社リセット" {
		t.Errorf("operator's landing: at %s, customer %q", at, got)
	}
	b.shot("18-operator-customers-en")

	user := `#account-table tr[data-login="reset-user"]`
	b.do("the customer's accounts", click(row+" .customer-link"), visible(user))
	acc := eval[string](b, `document.querySelector('`+user+`').dataset.account`)
	now := time.Now()
	lock, err := events.New("browser-test", &events.AccountLocked{CustomerID: cust, AccountID: acc, Failures: 10, LockedAt: now}, now)
	if err == nil {
		err = s.prod.Publish(ctx, lock)
	}
	if err != nil {
		t.Fatal(err)
	}
	// The accounts owner applies the lock a moment later: reload until shown.
	b.do("the lock shows", until(`(document.getElementById("reload-accounts").click(), document.querySelector('`+user+`[data-locked="true"]'))`))
	b.shot("19-operator-account-locked-en")
	b.do("unlock", click(user+" .unlock"), visible(user+`[data-locked="false"]`), until(status("account-status")+`.includes("is unlocked")`))
	b.do("add an account", click("#add-account"), until(status("account-status")+`.includes("The account is issued")`))
	newID, newPW := s.tempCredentials(t, email, 1)
	b.do("the new account is listed", visible(`#account-table tr[data-login="`+newID+`"]`))
	if strings.Contains(eval[string](b, `document.body.innerText`), newPW) {
		t.Error("the operator's page shows the temporary password")
	}
	b.shot("20-operator-accounts-en")
	b.do("the customer's summary", click("#customer-nav-summary"), visible("#status, #empty-state"))
	b.do("the customer's alerts", click("#customer-nav-alerts"), visible("#alert-table, #no-alerts"))
	b.do("the customer's devices", click("#customer-nav-devices"), visible("#device-table"))
	if got := b.text("#customer-name"); got != "株式会社リセット" {
		t.Errorf("the customer's devices are titled %q", got)
	}
	b.shot("21-operator-customer-devices-en")
	b.do("phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/operator/customers/"+cust), visible("#account-table"))
	b.fitsPhone("the accounts page")
	// Until the customers' names arrive the title shows the customer's ID,
	// one long word: it wraps rather than widening the page.
	eval[string](b, `document.getElementById("customer-name").textContent = "`+cust+`"`)
	b.fitsPhone("the accounts page titled with the customer ID")
	b.shot("22-operator-accounts-phone-en")
	b.do("desktop", chromedp.EmulateViewport(1280, 900))

	local := func(at time.Time) string { return at.Local().Format("2006-01-02T15:04") }
	soon, later := time.Now().Add(3*24*time.Hour), time.Now().Add(40*24*time.Hour)
	b.do("maintenance too soon", click("#nav-publish"), visible("#notice-form"), click("#audience-some"),
		click(`#notice-customers input[value="`+cust+`"]`), fill("#notice-summary", "ルーターの交換作業"),
		fill("#notice-details", "作業中の約10分間、インターネットに接続できません。"),
		chromedp.SetValue(chromedp.CSS("#notice-starts"), local(soon)), chromedp.SetValue(chromedp.CSS("#notice-ends"), local(soon.Add(2*time.Hour))),
		click("#notice-submit"), until(status("notice-error")))
	if got := b.text("#notice-error"); !strings.Contains(got, "less than a month") {
		t.Errorf("maintenance in 3 days: %q", got)
	}
	b.do("a month ahead", chromedp.SetValue(chromedp.CSS("#notice-starts"), local(later)),
		chromedp.SetValue(chromedp.CSS("#notice-ends"), local(later.Add(2*time.Hour))))
	b.shot("23-operator-publish-notice-en")
	b.do("publish the maintenance", click("#notice-submit"), until(status("publish-status")+`.includes("was published")`))
	first := b.text("#publish-status")
	maintenance := regexp.MustCompile(`\((nt_[0-9A-Za-z]+)\)`).FindStringSubmatch(first)
	if maintenance == nil {
		t.Fatalf("no notice ID in %q", first)
	}
	b.do("a firmware update for everyone", click("#kind-firmware"), fill("#notice-summary", "セキュリティ修正"), fill("#notice-version", "1.6.0"),
		click("#notice-submit"), until(status("publish-status")+` !== `+strconv.Quote(first)))

	// 4. The customer, unlocked, reads both notices once projected, and
	// cannot open the operator's pages (still in English).
	b.do("operator logs out", click("#logout"), visible("#logged-out"))
	b.do("the unlocked customer", fill("#login-id", "reset-user"), fill("#password", pw2), click("#login-submit"), visible("#nav"))
	b.do("no operator pages", chromedp.Navigate(base+"/operator"), visible("#main .error"))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		b.do("notices", chromedp.Navigate(base+"/notices"), visible(".notice, #no-notices"))
		got := b.text("#main")
		if strings.Contains(got, "ルーターの交換作業") && strings.Contains(got, "セキュリティ修正") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the customer's notices: %q", got)
		}
	}
	b.shot("24-customer-notices-en")

	// 5. The settings, in Japanese: 2-step verification for the customer who
	// declined it (the password again first, by keyboard), then a new
	// password; the next login asks for both.
	b.do("日本語", click("#lang"), chromedp.WaitReady(chromedp.CSS(`html[lang="ja"]`)))
	b.do("the settings", click(`#nav a[href="/settings"]`), visible("#password-form"), visible("#factor-start"))
	if got := eval[string](b, `document.getElementById("factor-state").dataset.factor + " " + document.getElementById("settings-login-id").textContent`); got != "none reset-user" {
		t.Errorf("the settings show %q", got)
	}
	b.shot("25-settings")
	b.do("set up 2-step verification", click("#factor-start"), visible("#reauth-form"))
	if got := eval[string](b, `document.activeElement.id`); got != "reauth-password" {
		t.Errorf("the focus is on #%s, want the password field", got)
	}
	b.do("a wrong password", fill("#reauth-password", "まちがったパスワード\r"), until(status("reauth-error")+` !== ""`))
	if got := b.text("#reauth-error"); !strings.Contains(got, "現在のパスワードが正しくありません") {
		t.Errorf("a wrong password again: %q", got)
	}
	eval[string](b, `document.getElementById("reauth-password").value = ""`)
	b.do("the password again", fill("#reauth-password", pw2+"\r"), visible("#choose-totp"), visible("#enrol-cancel"))
	if eval[bool](b, `!!document.getElementById("decline")`) {
		t.Error("the settings offer to decline again")
	}
	b.shot("26-settings-choose-factor")
	b.do("the authenticator app", click("#choose-totp"), visible("#totp-qr"))
	secret := strings.TrimSpace(b.text("#totp-secret"))
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b.do("confirm the app", fill("#code", code), click("#totp-submit"), visible("#recovery-codes"))
	listed := `[...document.querySelectorAll("#recovery-codes li")].map(li => li.textContent)`
	firstCodes := eval[[]string](b, listed)
	if len(firstCodes) != 10 {
		t.Fatalf("%d recovery codes shown, want 10", len(firstCodes))
	}
	b.shot("27-settings-recovery-codes")
	b.do("back to the settings", click("#continue"), visible("#factor-done"), visible(`#factor-state[data-factor="totp"]`))
	if b.where() != "/settings" || eval[bool](b, `!!document.getElementById("factor-start")`) {
		t.Errorf("after enrolling: at %s, still offering to set it up: %v", b.where(), eval[bool](b, `!!document.getElementById("factor-start")`))
	}
	b.shot("28-settings-2fa-on")
	pw3 := "設定画面で変えたパスワード 2026"
	b.do("change the password", fill("#current-password", pw2), fill("#new-password", pw3), fill("#new-password2", pw3),
		click("#password-submit"), until(status("password-changed")+` !== ""`))
	if got := b.text("#password-changed"); !strings.Contains(got, "パスワードを変更しました") {
		t.Errorf("after the change: %q", got)
	}
	if st := eval[int](b, `fetch("/api/v1/me").then(r => r.status)`); st != 200 {
		t.Errorf("the session after the change answers %d", st)
	}
	b.shot("29-settings-password-changed")
	b.do("log out", click("#logout"), visible("#logged-out"))
	b.do("log in with the new password", fill("#login-id", "reset-user"), fill("#password", pw3), click("#login-submit"), visible("#second-form"))
	b.shot("30-login-second-factor")
	next, err := totp.GenerateCode(secret, time.Now().Add(30*time.Second)) // the enrolment's code is spent
	if err != nil {
		t.Fatal(err)
	}
	b.do("the app's code", fill("#code", next), click("#second-submit"), visible("#nav"))

	// 5b. Still in the settings: the recovery codes left, a new set (the
	// password again; at the next login the old set is void), the app
	// replaced by SMS, then 2-step verification turned off after a clear
	// warning. Each next login follows.
	b.do("the settings again", click(`#nav a[href="/settings"]`), visible(`#codes-left[data-left="10"]`), visible("#factor-off"))
	b.do("new recovery codes", click("#codes-new"), visible("#reauth-form"))
	if got := b.text("#reauth-hint"); !strings.Contains(got, "使えなくなります") {
		t.Errorf("the hint before new recovery codes: %q", got)
	}
	// A code of the current factor too: one of the recovery codes (the app's
	// next code is a step away yet).
	b.do("the password and a code again", fill("#reauth-code", firstCodes[2]), fill("#reauth-password", pw3+"\r"), visible("#recovery-codes"),
		visible("#recovery-old-void"))
	newCodes := eval[[]string](b, listed)
	if len(newCodes) != 10 || newCodes[0] == firstCodes[0] {
		t.Fatalf("new recovery codes %v, the first ones %v", newCodes, firstCodes)
	}
	b.shot("30a-settings-new-recovery-codes")
	b.do("back to the settings", click("#continue"), visible("#codes-done"), visible(`#codes-left[data-left="10"]`))
	b.do("log out", click("#logout"), visible("#logged-out"))
	b.do("log in", fill("#login-id", "reset-user"), fill("#password", pw3), click("#login-submit"), visible("#second-form"))
	b.do("an old recovery code", fill("#code", firstCodes[1]), click("#second-submit"), until(`document.querySelector("#second-form .error").textContent !== ""`))
	if got := b.text("#second-form .error"); !strings.Contains(got, "確認コードが正しくない") {
		t.Errorf("an old recovery code: %q", got)
	}
	eval[string](b, `document.getElementById("code").value = ""`)
	b.do("a new recovery code", fill("#code", newCodes[0]), click("#second-submit"), visible("#nav"))
	b.do("the codes left", chromedp.Navigate(base+"/settings"), visible(`#codes-left[data-left="9"]`))
	b.shot("30b-settings-codes-left")

	b.do("replace the app", click("#factor-replace"), visible("#reauth-form"), fill("#reauth-code", newCodes[1]), fill("#reauth-password", pw3+"\r"),
		visible("#replace-hint"), visible("#choose-sms"), visible("#enrol-cancel"))
	if got := b.text("#page-title"); got != "2段階認証の変更" {
		t.Errorf("replacing is titled %q", got)
	}
	b.shot("30c-settings-replace-choose")
	b.do("by SMS", click("#choose-sms"), visible("#sms-form"), fill("#phone", "+81 90-1234-5678"), click("#sms-form button[type=submit]"),
		visible("#sms-code-form"))
	b.do("the SMS code", fill("#sms-code", s.smsCode(t, 1)), click("#sms-code-form button[type=submit]"), visible("#recovery-codes"),
		visible("#recovery-old-void"))
	b.shot("30d-settings-replaced-recovery-codes")
	b.do("back to the settings", click("#continue"), visible("#factor-replaced"), visible(`#factor-state[data-factor="sms"]`),
		visible(`#codes-left[data-left="10"]`))
	b.do("log out", click("#logout"), visible("#logged-out"))
	b.do("log in", fill("#login-id", "reset-user"), fill("#password", pw3), click("#login-submit"), visible("#send-sms"))
	b.do("a code by SMS", click("#send-sms"), until(`document.querySelector("#second-form .error").textContent !== ""`))
	b.do("the SMS's code", fill("#code", s.smsCode(t, 2)), click("#second-submit"), visible("#nav"))

	b.do("the settings", click(`#nav a[href="/settings"]`), visible("#factor-off"))
	b.do("turn it off", click("#factor-off"), visible("#reauth-warning"))
	if got, button := b.text("#reauth-warning"), b.text("#reauth-submit"); !strings.Contains(got, "パスワードだけでログインできる") || button != "オフにする" {
		t.Errorf("turning it off warns %q, with the button %q", got, button)
	}
	if got := eval[string](b, `document.activeElement.id`); got != "reauth-password" {
		t.Errorf("the focus is on #%s, want the password field", got)
	}
	b.shot("30e-settings-turn-off-warning")
	b.do("a code by SMS for it", click("#reauth-send-sms"), until(status("reauth-error")+` !== ""`))
	b.do("the password and the code, and off", fill("#reauth-code", s.smsCode(t, 3)), fill("#reauth-password", pw3), click("#reauth-submit"),
		visible("#factor-off-done"),
		visible(`#factor-state[data-factor="none"]`), visible("#factor-start"))
	if eval[bool](b, `!!document.getElementById("codes-left")`) {
		t.Error("recovery codes are counted with 2-step verification off")
	}
	b.shot("30f-settings-2fa-off")
	b.do("log out", click("#logout"), visible("#logged-out"))
	b.do("the password alone", fill("#login-id", "reset-user"), fill("#password", pw3), click("#login-submit"), visible("#nav"))

	// 6. The links of the mails: a device (alert digests, stopped or back
	// online: services/notifier builds <portal>/devices/<id>) and a notice
	// (faults and maintenance: <portal>/notices/<id>).
	b.do("a device's link", chromedp.Navigate(base+"/devices/"+devices[0]), visible("#device-detail"))
	if got := b.text(`#device-detail dd[data-field="device_id"]`); got != devices[0] {
		t.Errorf("the device page shows device %q, want %s", got, devices[0])
	}
	if got := b.text("#device-status"); !strings.Contains(got, "オンライン") && !strings.Contains(got, "オフライン") && !strings.Contains(got, "応答なし") {
		t.Errorf("the device's status: %q", got)
	}
	b.shot("31-device-from-mail")
	b.do("its alerts", click("#device-alerts"), visible("#alert-table, #no-alerts"))
	if got := b.where(); got != "/alerts?device="+devices[0] {
		t.Errorf("the device's alerts are at %s", got)
	}
	b.do("the device list", chromedp.Navigate(base+"/devices"), visible(`#device-table tr[data-device="`+devices[0]+`"] .device-link`))
	b.do("an unknown device", chromedp.Navigate(base+"/devices/dv_unknown"), visible("#no-device"), visible("#back-to-devices"))
	b.shot("32-device-not-found")
	b.do("a notice's link", chromedp.Navigate(base+"/notices/"+maintenance[1]), visible("#notice-detail"))
	if got := b.text("#notice-detail"); !strings.Contains(got, "ルーターの交換作業") {
		t.Errorf("the notice page: %q", got)
	}
	b.shot("33-notice-from-mail")
	b.do("an unknown notice", chromedp.Navigate(base+"/notices/nt_unknown"), visible("#no-notice"), visible("#back-to-notices"))
	b.do("phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/settings"), visible("#password-form"))
	b.fitsPhone("the settings")
	b.shot("34-settings-phone")
	b.do("a device on the phone", chromedp.Navigate(base+"/devices/"+devices[0]), visible("#device-detail"))
	b.fitsPhone("the device page")
	b.shot("35-device-phone")
}
