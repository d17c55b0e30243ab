package notifier_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/ksuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/infra/testkit"
	"github.com/mimamori/mimamori/infra/testkit/testlog"
	"github.com/mimamori/mimamori/services/mailbox"
	"github.com/mimamori/mimamori/services/notifier"
	"github.com/mimamori/mimamori/services/registry"
	"github.com/mimamori/mimamori/services/smtp"
)

type env struct {
	t    *testing.T
	kcfg eventlog.Config
	prod *eventlog.Producer
	box  *mailbox.Mailbox
	clk  *testkit.Clock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	_, kcfg := testkit.Kafka(t, 3, "n.")
	kcfg.Logger = testlog.New(t)
	p, err := eventlog.NewProducer(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := eventlog.EnsureTopics(ctx, p.Client(), kcfg); err != nil {
		t.Fatal(err)
	}
	box, err := mailbox.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = box.Close() })
	return &env{t: t, kcfg: kcfg, prod: p, box: box, clk: testkit.NewClock(time.Now())}
}

func (e *env) mailer() *smtp.Mailer {
	e.t.Helper()
	m, err := smtp.New(smtp.Config{Host: "127.0.0.1", Port: portOf(e.box.Addr()), Security: smtp.SecurityNone,
		From: "mimamori <noreply@mimamori.test>", Timeout: 10 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func portOf(addr string) int {
	var p int
	fmt.Sscan(addr[strings.LastIndex(addr, ":")+1:], &p)
	return p
}

var webhookKey = []byte("test webhook key")

// start runs a notifier until the returned stop is called.
func (e *env) start(cfg notifier.Config) (stop func()) {
	e.t.Helper()
	if cfg.Group == "" {
		cfg.Group = "notifier"
	}
	cfg.PortalURL = "https://portal.mimamori.test"
	cfg.WebhookKey = webhookKey
	if cfg.Now == nil {
		cfg.Now = e.clk.Now
	}
	if cfg.DigestCheck == 0 {
		cfg.DigestCheck = 20 * time.Millisecond
	}
	log := e.kcfg.Logger.With("member", cfg.Group+"-"+ksuid.New().String()[20:])
	n, err := notifier.New(cfg, e.kcfg, e.prod, e.mailer(), log, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !strings.Contains(err.Error(), "before shutdown") {
				e.t.Errorf("notifier: %v", err)
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

func (e *env) publish(ps ...events.Payload) {
	e.t.Helper()
	envs := make([]events.Envelope, 0, len(ps))
	for _, p := range ps {
		ev, err := events.New("test", p, time.Now())
		if err != nil {
			e.t.Fatal(err)
		}
		envs = append(envs, ev)
	}
	if err := e.prod.Publish(context.Background(), envs...); err != nil {
		e.t.Fatal(err)
	}
}

// customer registers a customer with its settings and one activated
// appliance, and returns their IDs.
func (e *env) customer(name, email, lang, severities, webhook string) (string, string) {
	e.t.Helper()
	ctx := context.Background()
	now := time.Now()
	cust, err := registry.RegisterCustomer(ctx, e.prod, name, email, "rs", now)
	if err != nil {
		e.t.Fatal(err)
	}
	reg, err := registry.RegisterDevice(ctx, e.prod, registry.DeviceSpec{Serial: "MU-" + name, MAC: "00:11:22:33:44:55",
		Model: "MU-100", ManufacturedOn: "2026-04-01", CustomerID: cust}, now)
	if err != nil {
		e.t.Fatal(err)
	}
	e.publish(&events.NotificationSettingsChanged{CustomerID: cust, ImportantSeverities: severities, Language: lang,
		WebhookURL: webhook, WebhookSecretVersion: 1, ChangedAt: now},
		&events.DeviceActivated{DeviceID: reg.DeviceID, CustomerID: cust, HeartbeatAt: now, ActivatedAt: now})
	return cust, reg.DeviceID
}

var t0 = time.Date(2026, 11, 2, 1, 2, 3, 0, time.UTC) // 10:02:03 JST

func alert(dev, cust string, sev int, indicator string, at time.Time) *events.Alert {
	return &events.Alert{ID: ksuid.New().String(), DeviceID: dev, CustomerID: cust, DetectedAt: at, ReceivedAt: at,
		Severity: sev, Kind: events.KindDomain, Indicator: indicator, Label: "C2 server", Action: events.ActionBlocked,
		SrcIP: "192.168.10.23", SrcPort: 51514, SrcMAC: "aa:bb:cc:00:11:22", DstIP: "203.0.113.9", DstPort: 443,
		DstMAC: "00:11:22:33:44:55", Protocol: "tcp", Zones: "LAN>WAN", URL: "https://" + indicator + "/gate.php",
		Domain: indicator, FileName: "invoice.pdf.exe", Count: 1}
}

// waitMail waits until the mailbox holds n messages and returns them.
func (e *env) waitMail(n int, within time.Duration) []mailbox.Message {
	e.t.Helper()
	var m []mailbox.Message
	testkit.WaitFor(e.t, within, fmt.Sprintf("%d mails", n), func() (bool, string) {
		m = e.box.Messages()
		return len(m) >= n, fmt.Sprintf("%d in the mailbox", len(m))
	})
	return m
}

// records reads the notifications topic to its end.
func (e *env) records() []*events.NotificationRecorded {
	e.t.Helper()
	var out []*events.NotificationRecorded
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := eventlog.ReadToEnd(ctx, e.kcfg, []string{e.kcfg.Topic(events.TopicNotifications)}, nil, func(_ *kgo.Record, ev events.Envelope) {
		if p, err := events.Decode(ev); err == nil {
			out = append(out, p.(*events.NotificationRecorded))
		}
	})
	cancel()
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// waitDrained waits until the group has committed every source record.
func (e *env) waitDrained(group string, within time.Duration) {
	e.t.Helper()
	adm := kadm.NewClient(e.prod.Client())
	topics := []string{e.kcfg.Topic(events.TopicAlerts), e.kcfg.Topic(events.TopicDevices), e.kcfg.Topic(events.TopicOperations)}
	testkit.WaitFor(e.t, within, "group "+group+" to commit every source record", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ends, err := adm.ListEndOffsets(ctx, topics...)
		if err != nil {
			return false, err.Error()
		}
		committed, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return false, err.Error()
		}
		behind := 0
		ends.Each(func(o kadm.ListedOffset) {
			c, _ := committed.Lookup(o.Topic, o.Partition)
			if o.Offset > 0 && c.At < o.Offset {
				behind++
			}
		})
		return behind == 0, fmt.Sprintf("%d partitions behind", behind)
	})
}

func find(msgs []mailbox.Message, to, subjectPart string) *mailbox.Message {
	for i := range msgs {
		if len(msgs[i].To) == 1 && msgs[i].To[0] == to && strings.Contains(msgs[i].Subject, subjectPart) {
			return &msgs[i]
		}
	}
	return nil
}

func wantIn(t *testing.T, what, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("%s lacks %q:\n%s", what, p, s)
		}
	}
}

// Every kind of mail, in Japanese and in English, against a real SMTP
// server: subject, recipient and body.
func TestMailOfEveryKind(t *testing.T) {
	e := newEnv(t)
	ja, jaDev := e.customer("みまもり商事", "admin@shoji.test", "ja", "3,2", "")
	en, enDev := e.customer("Acme", "it@acme.test", "en", "3", "")
	// An appliance that was never heard from: no mail.
	idle, err := registry.RegisterDevice(context.Background(), e.prod, registry.DeviceSpec{Serial: "MU-idle", MAC: "00:11:22:33:44:77",
		Model: "MU-100", ManufacturedOn: "2026-04-01", CustomerID: ja}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e.start(notifier.Config{})
	high := alert(jaDev, ja, 3, "evil.example", t0)
	medium := alert(jaDev, ja, 2, "phish.example", t0)
	low := alert(jaDev, ja, 1, "ads.example", t0)
	enHigh := alert(enDev, en, 3, "bad.example", t0)
	enMedium := alert(enDev, en, 2, "meh.example", t0) // en customer counts only ★★★
	e.publish(high, medium, low, enHigh, enMedium, alert(idle.DeviceID, ja, 3, "idle.example", t0))
	off := t0.Add(-15 * time.Minute)
	e.publish(
		&events.DeviceWentOffline{DeviceID: jaDev, CustomerID: ja, LastHeartbeatAt: off, ThresholdSeconds: 600, DetectedAt: t0},
		&events.DeviceCameOnline{DeviceID: jaDev, CustomerID: ja, OfflineAt: t0, HeartbeatAt: t0.Add(time.Hour), DetectedAt: t0.Add(time.Hour)},
		&events.DeviceWentSilent{DeviceID: enDev, CustomerID: en, SilentSince: t0, LastHeartbeatAt: t0.Add(time.Hour), PeriodSeconds: 3600, DetectedAt: t0.Add(time.Hour)},
		&events.DeviceWentOffline{DeviceID: enDev, CustomerID: en, LastHeartbeatAt: off, ThresholdSeconds: 600, DetectedAt: t0},
		&events.FaultDeclared{NoticeID: "nt_a", Level: "A", Customers: "*", Summary: "通知の遅延", Details: "調査中です。", StartedAt: t0, DeclaredAt: t0},
		&events.FaultDeclared{NoticeID: "nt_b", Level: "B", Customers: en, Summary: "Some devices unserved", Details: "We are on it.", StartedAt: t0, DeclaredAt: t0},
		&events.FaultDeclared{NoticeID: "nt_z", Level: "Z", Customers: "*", Summary: "backup failed", Details: "-", StartedAt: t0, DeclaredAt: t0},
		&events.MaintenanceAnnounced{NoticeID: "nt_m", Customers: "*", Summary: "定期メンテナンス", Details: "ポータルが停止します。",
			StartsAt: t0.AddDate(0, 1, 5), EndsAt: t0.AddDate(0, 1, 5).Add(2 * time.Hour), AnnouncedAt: t0},
	)
	// ja: high, medium, offline, online, fault A, maintenance = 6; en: high, silent, offline, A, B, maintenance = 6.
	msgs := e.waitMail(12, 30*time.Second)
	e.waitDrained("notifier", 30*time.Second)
	if got := len(e.box.Messages()); got != 12 {
		for _, m := range e.box.Messages() {
			t.Logf("%v %s", m.To, m.Subject)
		}
		t.Fatalf("%d mails, want 12", got)
	}
	msgs = e.box.Messages()

	m := find(msgs, "admin@shoji.test", "【mimamori ★★★】重要アラート: C2 server (MU-みまもり商事)")
	if m == nil {
		t.Fatal("no ★★★ mail in Japanese")
	}
	wantIn(t, "★★★ mail", m.Body, "みまもり商事 御中", "重要度: ★★★", "検知日時: 2026-11-02 10:02:03 JST", "機器: MU-みまもり商事 ("+jaDev+")",
		"検知内容: evil.example", "対応: 遮断しました", "送信元: 192.168.10.23:51514 (MAC aa:bb:cc:00:11:22)",
		"宛先: 203.0.113.9:443 (MAC 00:11:22:33:44:55)", "URL: https://evil.example/gate.php", "ドメイン: evil.example",
		"ファイル名: invoice.pdf.exe", "次にすること", "フルスキャン", "ポータル: https://portal.mimamori.test/alerts/"+high.ID)
	if m.From != "noreply@mimamori.test" || !strings.HasPrefix(m.MessageID, "nf_") || !strings.HasSuffix(m.MessageID, "@mimamori.test") {
		t.Errorf("envelope from %q, Message-ID %q", m.From, m.MessageID)
	}
	if find(msgs, "admin@shoji.test", "【mimamori ★★☆】重要アラート: C2 server") == nil {
		t.Error("no ★★☆ mail in Japanese")
	}
	m = find(msgs, "it@acme.test", "[mimamori ★★★] Important alert: C2 server (MU-Acme)")
	if m == nil {
		t.Fatal("no ★★★ mail in English")
	}
	wantIn(t, "English alert", m.Body, "Dear Acme,", "Severity: ★★★", "Source: 192.168.10.23:51514 (MAC aa:bb:cc:00:11:22)",
		"Destination: 203.0.113.9:443", "Domain: bad.example", "File name: invoice.pdf.exe", "What to do next", "full antivirus scan",
		"Portal: https://portal.mimamori.test/alerts/"+enHigh.ID)
	for _, s := range []string{"ads.example", "meh.example", "idle.example", "backup failed"} {
		for _, m := range msgs {
			if strings.Contains(m.Body, s) || strings.Contains(m.Subject, s) {
				t.Errorf("mail about %s, which is not to be mailed: %s", s, m.Subject)
			}
		}
	}
	m = find(msgs, "admin@shoji.test", "【mimamori】機器停止のお知らせ: MU-みまもり商事")
	if m == nil {
		t.Fatal("no offline mail in Japanese")
	}
	wantIn(t, "offline mail", m.Body, "10 分以上通信がない", "最終通信日時: 2026-11-02 09:47:03 JST", "電源とケーブル", "/devices/"+jaDev)
	if m := find(msgs, "admin@shoji.test", "【mimamori】機器復旧のお知らせ"); m == nil {
		t.Error("no back-online mail in Japanese")
	} else {
		wantIn(t, "online mail", m.Body, "復旧日時: 2026-11-02 11:02:03 JST")
	}
	if m := find(msgs, "it@acme.test", "[mimamori] Appliance stopped: MU-Acme"); m == nil {
		t.Error("no offline mail in English")
	} else {
		wantIn(t, "English offline", m.Body, "for 10 minutes", "Last contact: 2026-11-02 09:47:03 JST")
	}
	if m := find(msgs, "it@acme.test", "[mimamori] Appliance sees no traffic: MU-Acme"); m == nil {
		t.Error("no silent mail in English")
	} else {
		wantIn(t, "silent mail", m.Body, "no network traffic for 60 minutes", "bypassed")
	}
	if m := find(msgs, "admin@shoji.test", "【mimamori 障害レベルA】通知の遅延"); m == nil {
		t.Error("no fault A mail in Japanese")
	} else {
		wantIn(t, "fault mail", m.Body, "主要な機能が利用できません", "調査中です。")
	}
	if find(msgs, "it@acme.test", "[mimamori fault level A] 通知の遅延") == nil || find(msgs, "it@acme.test", "[mimamori fault level B] Some devices unserved") == nil {
		t.Error("fault A/B mails in English missing")
	}
	if m := find(msgs, "admin@shoji.test", "【mimamori】計画メンテナンスのお知らせ (2026-12-07)"); m == nil {
		t.Error("no maintenance mail in Japanese")
	} else {
		wantIn(t, "maintenance mail", m.Body, "開始日時: 2026-12-07 10:02:03 JST", "終了予定: 2026-12-07 12:02:03 JST")
	}
	if find(msgs, "it@acme.test", "[mimamori] Planned maintenance on 2026-12-07") == nil {
		t.Error("no maintenance mail in English")
	}
	// The idle appliance's alert is recorded as skipped, not silently dropped.
	skipped := 0
	for _, r := range e.records() {
		if r.Status == events.NotifySkipped && r.DeviceID == idle.DeviceID {
			skipped++
		}
	}
	if skipped != 1 {
		t.Errorf("%d skipped records for the idle appliance's alert, want 1", skipped)
	}
}

// The notifier is stopped abruptly, again and again, with two members
// sharing the partitions, while 1,000 important alerts flow: the SMTP
// server receives exactly one mail per alert and recipient. Then a member
// of a new group replays every topic from the beginning and sends nothing.
func TestExactlyOnceAcrossAbruptStops(t *testing.T) {
	e := newEnv(t)
	type dev struct{ cust, dev, email string }
	var devs []dev
	for i := range 3 {
		email := fmt.Sprintf("admin%d@c%d.test", i, i)
		c, d := e.customer(fmt.Sprintf("顧客%d", i), email, "ja", "3,2", "")
		devs = append(devs, dev{c, d, email})
	}
	// Abrupt: a batch in flight gets 5 ms to finish after the stop, so
	// most stops abandon batches uncommitted, half-sent.
	cfg := notifier.Config{HourlyCap: -1, FlushTimeout: 5 * time.Millisecond, Workers: 8}
	const total = 1000
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		r := rand.New(rand.NewPCG(1, 2))
		for i := 0; i < total; i += 25 {
			var batch []events.Payload
			for j := range 25 {
				d := devs[r.IntN(len(devs))]
				batch = append(batch, alert(d.dev, d.cust, 2+r.IntN(2), fmt.Sprintf("c2-%d.example", i+j), time.Now()))
			}
			e.publish(batch...)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	r := rand.New(rand.NewPCG(3, 4))
	members := []func(){e.start(cfg), e.start(cfg)}
	stops := 0
	for done := false; !done; {
		select {
		case <-sent:
			done = true
		case <-time.After(time.Duration(50+r.IntN(200)) * time.Millisecond):
		}
		i := r.IntN(2)
		members[i]()
		stops++
		members[i] = e.start(cfg)
	}
	_ = testkit.Await(30*time.Second, "every mail", func() (bool, string) { return len(e.box.Messages()) >= total, "" })
	if got := len(e.box.Messages()); got < total {
		mailed := map[string]bool{}
		for _, m := range e.box.Messages() {
			mailed[strings.TrimSuffix(m.MessageID, "@mimamori.test")] = true
		}
		byID := map[string][]string{}
		for _, r := range e.records() {
			byID[r.NotificationID] = append(byID[r.NotificationID], r.Status)
		}
		shown := 0
		for id, sts := range byID {
			if !mailed[id] && shown < 10 {
				t.Logf("not mailed: %s records %v", id, sts)
				shown++
			}
		}
		t.Logf("%d notification IDs recorded, %d mailed", len(byID), len(mailed))
		e.waitDrained("notifier", 5*time.Second)
		t.Fatalf("mailbox has %d messages after 30s, want %d", got, total)
	}
	e.waitDrained("notifier", time.Minute)
	members[0]()
	members[1]()
	check := func(when string) {
		t.Helper()
		msgs := e.box.Messages()
		perID := map[string]int{}
		for _, m := range msgs {
			perID[m.MessageID]++
		}
		if len(msgs) != total || len(perID) != total {
			t.Fatalf("%s: %d mails with %d distinct Message-IDs, want exactly %d", when, len(msgs), len(perID), total)
		}
	}
	check(fmt.Sprintf("after %d abrupt stops", stops))
	if stops < 10 {
		t.Fatalf("only %d stops happened; the test proved little", stops)
	}
	statuses := map[string]int{}
	for _, rec := range e.records() {
		statuses[rec.Status]++
	}
	t.Logf("%d alerts, %d abrupt stops: %d mails; records by status %v", total, stops, len(e.box.Messages()), statuses)

	// Replay: a new group reads every topic from offset 0.
	stop := e.start(notifier.Config{Group: "replay", HourlyCap: -1})
	e.waitDrained("replay", time.Minute)
	stop()
	check("after a replay of every topic")
}

// A temporary SMTP failure is retried with backoff and delivered once; a
// permanent one is recorded as failed, for operators to see.
func TestSMTPFailuresRetriedOrRecorded(t *testing.T) {
	e := newEnv(t)
	okCust, okDev := e.customer("Retry", "retry@x.test", "en", "3,2", "")
	badCust, badDev := e.customer("Gone", "gone@x.test", "en", "3,2", "")
	var temp atomic.Int64
	e.box.SetReject(func(rcpt string) error {
		switch {
		case rcpt == "retry@x.test" && temp.Add(1) <= 2:
			return mailbox.TempFailure("greylisted, try later")
		case rcpt == "gone@x.test":
			return mailbox.PermFailure("no such mailbox")
		}
		return nil
	})
	e.start(notifier.Config{})
	e.publish(alert(okDev, okCust, 3, "a.example", t0), alert(badDev, badCust, 3, "b.example", t0))
	e.waitMail(1, 30*time.Second)
	e.waitDrained("notifier", 30*time.Second)
	if msgs := e.box.Messages(); len(msgs) != 1 || msgs[0].To[0] != "retry@x.test" {
		t.Fatalf("mails = %+v, want one to retry@x.test", msgs)
	}
	if temp.Load() < 3 {
		t.Fatalf("the relay saw %d attempts, want the 2 refused and 1 accepted", temp.Load())
	}
	var failed, sentRec *events.NotificationRecorded
	for _, r := range e.records() {
		switch {
		case r.Status == events.NotifyFailed:
			failed = r
		case r.Status == events.NotifySent && r.Recipient == "retry@x.test":
			sentRec = r
		}
	}
	if failed == nil || failed.Recipient != "gone@x.test" || !strings.Contains(failed.Reason, "550") {
		t.Fatalf("failed record = %+v, want gone@x.test with the 550", failed)
	}
	if sentRec == nil || sentRec.Attempts != 3 {
		t.Fatalf("sent record = %+v, want 3 attempts", sentRec)
	}
}

// Repeats of one detection within the window become one digest; a
// flood beyond the hourly cap too; the digest says how many.
func TestThrottlingIntoDigests(t *testing.T) {
	e := newEnv(t)
	cust, dev := e.customer("Flood", "flood@x.test", "ja", "3,2", "")
	e.start(notifier.Config{RepeatWindow: 10 * time.Minute, HourlyCap: 4})
	now := e.clk.Now()
	var as []events.Payload
	for i := range 5 { // one detection five times in 5 minutes: 1 mail + 4 in a digest
		as = append(as, alert(dev, cust, 3, "same.example", now.Add(time.Duration(i)*time.Minute)))
	}
	for i := range 6 { // six distinct: 3 more immediate (cap 4 in all), 3 into the digest
		as = append(as, alert(dev, cust, 2, fmt.Sprintf("d%d.example", i), now.Add(time.Duration(5+i)*time.Second)))
	}
	e.publish(as...)
	e.waitDrained("notifier", 30*time.Second)
	msgs := e.waitMail(4, 10*time.Second)
	time.Sleep(200 * time.Millisecond) // digest checks run every 20 ms; none is due yet
	if len(e.box.Messages()) != 4 {
		t.Fatalf("%d mails before the digest is due, want 4", len(e.box.Messages()))
	}
	e.clk.Advance(11 * time.Minute)
	msgs = e.waitMail(5, 10*time.Second)
	d := find(msgs, "flood@x.test", "まとめ")
	if d == nil {
		t.Fatalf("no digest; subjects: %v", subjects(msgs))
	}
	wantIn(t, "digest", d.Subject, "【mimamori ★★★】まとめ: 重要アラート 7 件")
	wantIn(t, "digest", d.Body, "重要アラートが 7 件", "domain: same.example (4)", "/devices/"+dev)
	time.Sleep(200 * time.Millisecond)
	if got := len(e.box.Messages()); got != 5 {
		t.Fatalf("%d mails, want 4 immediate and 1 digest", got)
	}
}

func subjects(ms []mailbox.Message) []string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Subject)
	}
	return s
}

// Webhooks: a JSON POST signed with HMAC-SHA256 under the customer's
// derived secret, retried on 5xx, delivered once; a 4xx is permanent.
func TestWebhookSignedRetriedOnce(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	var got []*http.Request
	var bodies [][]byte
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, bodies = append(got, r), append(bodies, b)
		mu.Unlock()
	}))
	defer srv.Close()
	gone := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusGone) }))
	defer gone.Close()
	cust, dev := e.customer("Hook", "hook@x.test", "en", "3", srv.URL+"/hook")
	badCust, badDev := e.customer("Gone", "gone@x.test", "en", "3", gone.URL)
	e.start(notifier.Config{})
	a := alert(dev, cust, 3, "hook.example", t0)
	e.publish(a, alert(badDev, badCust, 3, "x.example", t0))
	e.waitMail(2, 30*time.Second)
	e.waitDrained("notifier", 30*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("%d successful deliveries, want 1 (after one 503)", len(got))
	}
	r, body := got[0], bodies[0]
	secret := notifier.WebhookSecret(webhookKey, cust, 1)
	if want := notifier.Sign(secret, r.Header.Get(notifier.HeaderTimestamp), body); r.Header.Get(notifier.HeaderSignature) != want {
		t.Fatalf("signature %q, want %q", r.Header.Get(notifier.HeaderSignature), want)
	}
	if notifier.Sign("wrong", r.Header.Get(notifier.HeaderTimestamp), body) == r.Header.Get(notifier.HeaderSignature) {
		t.Fatal("a wrong secret gives the same signature")
	}
	wantIn(t, "webhook body", string(body), a.ID, `"kind":"alert"`, "hook.example", `"customer_id":"`+cust+`"`)
	if id := r.Header.Get(notifier.HeaderDelivery); id != notifier.ID(a.ID, events.ChannelWebhook, srv.URL+"/hook") {
		t.Fatalf("delivery id %q", id)
	}
	var failed int
	for _, rec := range e.records() {
		if rec.Channel == events.ChannelWebhook && rec.Status == events.NotifyFailed && strings.Contains(rec.Reason, "410") {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("%d failed webhook records, want 1 for the 410", failed)
	}
}

// An alert received right after the appliance's first heartbeat can reach
// the notifier before the watchdog's activation event (a busy watchdog):
// it waits for the activation and is mailed, not skipped as "not
// activated". An appliance never heard from still gets no mail.
func TestFreshAlertWaitsForActivation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	now := time.Now()
	cust, err := registry.RegisterCustomer(ctx, e.prod, "Kato", "kato@shop.test", "rs", now)
	if err != nil {
		t.Fatal(err)
	}
	dev := func(serial, mac string) string {
		reg, err := registry.RegisterDevice(ctx, e.prod, registry.DeviceSpec{Serial: serial, MAC: mac, Model: "MU-100",
			ManufacturedOn: "2026-04-01", CustomerID: cust}, now)
		if err != nil {
			t.Fatal(err)
		}
		return reg.DeviceID
	}
	late, never := dev("MU-late", "00:11:22:33:44:01"), dev("MU-never", "00:11:22:33:44:02")
	e.start(notifier.Config{ActivationWait: 5 * time.Second})
	e.publish(alert(late, cust, 3, "first-hour.example", time.Now().UTC()))
	time.Sleep(time.Second) // the watchdog is slow today
	e.publish(&events.DeviceActivated{DeviceID: late, CustomerID: cust, HeartbeatAt: now, ActivatedAt: time.Now()})
	msgs := e.waitMail(1, 30*time.Second)
	if !strings.Contains(msgs[0].Body, "first-hour.example") {
		t.Fatalf("mail: %s", msgs[0].Body)
	}
	e.publish(alert(never, cust, 3, "idle-1.example", time.Now().UTC()))
	e.waitDrained("notifier", 30*time.Second)
	e.publish(alert(never, cust, 3, "idle-2.example", time.Now().UTC()))
	e.waitDrained("notifier", 30*time.Second)
	if n := len(e.box.Messages()); n != 1 {
		t.Errorf("%d mails, want only the activated appliance's", n)
	}
}

// Shutdown does not wait for an activation: a notifier stopped while a
// fresh alert waits for its appliance's activation stops at once and
// cleanly, without committing the alert, and the next owner mails it once
// the appliance activates: nothing lost, nothing doubled.
func TestShutdownLeavesAnAlertWaitingForActivationToTheNextOwner(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	now := time.Now()
	cust, err := registry.RegisterCustomer(ctx, e.prod, "Kato", "kato@shop.test", "rs", now)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.RegisterDevice(ctx, e.prod, registry.DeviceSpec{Serial: "MU-wait", MAC: "00:11:22:33:44:09", Model: "MU-100",
		ManufacturedOn: "2026-04-01", CustomerID: cust}, now)
	if err != nil {
		t.Fatal(err)
	}
	var logged syncBuffer
	log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := notifier.Config{Group: "notifier", PortalURL: "https://portal.mimamori.test", WebhookKey: webhookKey,
		Now: e.clk.Now, DigestCheck: 20 * time.Millisecond, ActivationWait: 10 * time.Minute}
	first, err := notifier.New(cfg, e.kcfg, e.prod, e.mailer(), log, nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- first.Run(runCtx) }()
	e.publish(alert(reg.DeviceID, cust, 3, "while-stopping.example", time.Now().UTC()))
	testkit.WaitUntil(t, 30*time.Second, "the alert to wait for its appliance's activation", func() bool {
		return strings.Contains(logged.String(), "waits for its appliance's activation")
	})
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the notifier stopped with %v, want a clean stop", err)
		}
	case <-time.After(2 * time.Minute): // a hang guard, far below the 10 minutes' wait
		t.Fatal("the notifier still waits for the activation after shutdown")
	}
	if n := len(e.box.Messages()); n != 0 {
		t.Fatalf("%d mails before the activation", n)
	}
	e.start(notifier.Config{ActivationWait: 10 * time.Minute})
	e.publish(&events.DeviceActivated{DeviceID: reg.DeviceID, CustomerID: cust, HeartbeatAt: now, ActivatedAt: time.Now()})
	msgs := e.waitMail(1, 30*time.Second)
	e.waitDrained("notifier", 30*time.Second)
	if len(e.box.Messages()) != 1 || !strings.Contains(msgs[0].Body, "while-stopping.example") {
		t.Fatalf("mails %v, want the one alert mailed once by the next owner", subjects(e.box.Messages()))
	}
}

// syncBuffer is a log the code under test writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
