package web_test

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"
	"github.com/segmentio/ksuid"

	"github.com/mimamori/mimamori/analytics/chtest"
	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/services/app"
	"github.com/mimamori/mimamori/services/config"
	"github.com/mimamori/mimamori/services/platform"
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
	conn, db := chtest.EmptyDatabase(t)
	_ = conn
	b, err := eventlog.StartBroker(eventlog.BrokerConfig{Dir: t.TempDir(), Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	env := map[string]string{
		"MIMAMORI_DATA_DIR": t.TempDir(), "MIMAMORI_INGEST_ADDR": "127.0.0.1:0", "MIMAMORI_PORTAL_ADDR": "127.0.0.1:0",
		"MIMAMORI_ADMIN_ADDR": "127.0.0.1:0", "MIMAMORI_MAILBOX_ADDR": "127.0.0.1:0", "MIMAMORI_KAFKA_PARTITIONS": "3",
		"MIMAMORI_LOG_LEVEL": "warn", "MIMAMORI_KAFKA_BROKERS": b.Addrs()[0],
		"MIMAMORI_CLICKHOUSE_ADDR": chtest.Server(t).Addr(), "MIMAMORI_CLICKHOUSE_DATABASE": db,
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	config.Register(fs)
	cfg, err := config.Load(fs, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := platform.Open(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	a, err := app.New(ctx, p, app.Services)
	if err != nil {
		cancel()
		p.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	prod, err := eventlog.NewProducer(p.Kafka)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		prod.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("services stopped with %v", err)
		}
		p.Close()
	})
	return &stack{p: p, prod: prod}
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
	reTempID = regexp.MustCompile(`Temporary user ID:\s+(\S+)`)
	reTempPW = regexp.MustCompile(`Temporary password:\s+(\S+)`)
)

// tempCredentials reads the first-login mail to email from the embedded
// mailbox's pages, as the customer would.
func (s *stack) tempCredentials(t *testing.T, email string) (string, string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
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
			body := html.UnescapeString(string(b))
			if strings.Contains(body, email) && reTempPW.MatchString(body) {
				return reTempID.FindStringSubmatch(body)[1], reTempPW.FindStringSubmatch(body)[1]
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no first-login mail to %s in the mailbox", email)
	return "", ""
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

// The customer's first day in the portal, in headless Chromium.
func TestBrowserFirstLoginDashboardAlerts(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("%s is missing: run infra/setup.sh (installs Debian's chromium)", chromium)
	}
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
	tempID, tempPW := s.tempCredentials(t, email)
	dir := artifacts(t)
	base := s.p.Endpoints.Portal

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.Headless, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true), chromedp.Flag("disable-default-apps", true),
		chromedp.WindowSize(1280, 900),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer acancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, tcancel := context.WithTimeout(ctx, 3*time.Minute)
	defer tcancel()
	if err := chromedp.Do(ctx); err != nil { // starts the browser on ctx, not on a step's timeout
		t.Fatalf("start %s: %v", chromium, err)
	}

	shot := func(name string) {
		t.Helper()
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".jpg"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
		defer scancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			shot("failed-" + strings.ReplaceAll(what, " ", "-"))
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	fill := func(sel, v string) chromedp.Action[chromedp.Void] { return chromedp.SendKeys(chromedp.CSS(sel), v) }

	// Login with the temporary credentials from the mail.
	do("open the portal", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	if got := text("#page-title"); got != "ログイン" {
		t.Fatalf("default language: title %q", got)
	}
	shot("01-login")
	do("log in", fill("#login-id", tempID), fill("#password", tempPW), chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#change-form")))
	shot("02-change-credentials")
	newPW := "ブラウザで選んだ長い合言葉 2026"
	do("choose ID and password", fill("#new-login-id", "browser-admin"), fill("#new-password", newPW), fill("#new-password2", newPW),
		chromedp.Click(chromedp.CSS("#change-submit")), chromedp.WaitVisible(chromedp.CSS("#choose-totp")))
	shot("03-choose-factor")
	do("start TOTP", chromedp.Click(chromedp.CSS("#choose-totp")), chromedp.WaitVisible(chromedp.CSS("#totp-qr")))
	secret := strings.TrimSpace(text("#totp-secret"))
	loaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("totp-qr").naturalWidth > 100`))
	if err != nil || !loaded {
		t.Fatalf("QR code not shown (%v)", err)
	}
	shot("04-totp-enrol")
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	do("confirm TOTP", fill("#code", code), chromedp.Click(chromedp.CSS("#totp-submit")), chromedp.WaitVisible(chromedp.CSS("#recovery-codes")))
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#recovery-codes li").length`)); n != 10 {
		t.Errorf("%d recovery codes shown, want 10", n)
	}
	shot("05-recovery-codes")
	do("continue", chromedp.Click(chromedp.CSS("#continue")), chromedp.WaitVisible(chromedp.CSS("#nav")))

	// Every dashboard endpoint the pages use must exist.
	has := func(path string) bool {
		t.Helper()
		st, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch("`+path+`").then(r => r.status)`, chromedp.EvalAwaitPromise))
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
		do("dashboard", chromedp.WaitVisible(chromedp.CSS("#status")))
		if got := text("#status-headline"); !strings.Contains(got, "ご利用の環境で問題がみつかりました") {
			t.Errorf("status headline %q", got)
		}
		if got := text("#status-period"); !strings.Contains(got, "期間") {
			t.Errorf("period %q", got)
		}
	}
	if compareP {
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch("/api/v1/compare/participants").then(r => r.text())`, chromedp.EvalAwaitPromise))
		t.Logf("participants: %.300s", body)
		do("participants chart", chromedp.WaitVisible(chromedp.CSS("#chart-participants canvas")))
	}
	if compareD {
		do("own devices chart", chromedp.WaitVisible(chromedp.CSS("#chart-devices canvas")))
		if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#table-devices tbody tr").length`)); n != len(myDevices) {
			t.Errorf("devices compared: %d, want %d", n, len(myDevices))
		}
	}
	shot("06-dashboard-ja")

	// English, remembered across a reload.
	do("switch to English", chromedp.Click(chromedp.CSS("#lang")), chromedp.WaitReady(chromedp.CSS(`html[lang="en"]`)),
		chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#nav")))
	if got := text("#page-title"); got != "Security status" {
		t.Errorf("English title after reload: %q", got)
	}
	if summary {
		do("English dashboard", chromedp.WaitVisible(chromedp.CSS("#status")))
	}
	if compareP {
		do("participants chart (en)", chromedp.WaitVisible(chromedp.CSS("#chart-participants canvas")))
	}
	if compareD {
		do("devices chart (en)", chromedp.WaitVisible(chromedp.CSS("#chart-devices canvas")))
	}
	shot("07-dashboard-en")

	if alerts {
		do("all alerts", chromedp.Navigate(base+"/alerts"), chromedp.WaitVisible(chromedp.CSS("#alert-table .alert-link")))
		shot("08-alerts-en")
		do("alert detail", chromedp.Click(chromedp.CSS("#alert-table .alert-link")), chromedp.WaitVisible(chromedp.CSS("#alert-detail")))
		for _, f := range []string{"id", "detected_at", "severity", "kind", "indicator", "src_ip", "dst_ip", "protocol", "definitions_version"} {
			if got := text(`#alert-detail dd[data-field="` + f + `"]`); got == "" || got == "—" {
				t.Errorf("alert detail field %s is %q", f, got)
			}
		}
		shot("09-alert-detail-en")
	}
	for _, p := range []struct{ path, sel, ep string }{{"/devices", "#device-table, #no-devices", "/api/v1/devices"}, {"/notices", ".notice, #no-notices", "/api/v1/notices"}} {
		if has(p.ep) {
			do("page "+p.path, chromedp.Navigate(base+p.path), chromedp.WaitVisible(chromedp.CSS(p.sel)))
			shot("10-" + strings.TrimPrefix(p.path, "/") + "-en")
		}
	}

	// Phone width: the page still fits.
	do("phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#nav")))
	if w, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > 400 {
		t.Errorf("page is %d px wide on a 390 px phone", w)
	}
	shot("11-phone-en")
	do("desktop", chromedp.EmulateViewport(1280, 900))

	// Logout really ends the session.
	do("log out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	st, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch("/api/v1/me").then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil || st != 401 {
		t.Errorf("after logout /api/v1/me answers %d (%v)", st, err)
	}
	shot("12-logged-out-en")
}
