package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/mimamori/mimamori/analytics/chtest"
	"github.com/mimamori/mimamori/appliance/uplink"
	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/infra/testkit"
	"github.com/mimamori/mimamori/services/mailbox"
	"github.com/mimamori/mimamori/services/notifier"
	"github.com/mimamori/mimamori/services/registry"
)

// newMailStack is newStack with every service, mailing through a mailbox
// the test owns (a real SMTP server on a local port).
func newMailStack(t testing.TB, extra map[string]string) (*stack, *mailbox.Mailbox) {
	t.Helper()
	box, err := mailbox.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = box.Close() })
	_, port, _ := net.SplitHostPort(box.Addr())
	conn, db := chtest.EmptyDatabase(t)
	env := map[string]string{
		"MIMAMORI_SMTP_HOST":     "127.0.0.1",
		"MIMAMORI_SMTP_PORT":     port,
		"MIMAMORI_SMTP_SECURITY": "none",
		"MIMAMORI_SMTP_FROM":     "mimamori <noreply@mimamori.test>",
		"MIMAMORI_PORTAL_URL":    "https://portal.mimamori.test",
	}
	for k, v := range extra {
		env[k] = v
	}
	return newStackOn(t, conn, db, env), box
}

func importantAlert(sev int, indicator string) events.Alert {
	now := time.Now().UTC()
	return events.Alert{ID: ksuid.New().String(), DetectedAt: now, Severity: sev, Kind: events.KindDomain,
		Indicator: indicator, Label: "C2 server", Action: events.ActionDetected, SrcIP: "192.168.1.20", SrcPort: 50000,
		SrcMAC: "aa:bb:cc:dd:ee:01", DstIP: "198.51.100.7", DstPort: 443, Protocol: "tcp", Zones: "LAN>WAN",
		Domain: indicator, Count: 1}
}

func heartbeat(t testing.TB, c *uplink.Client) {
	t.Helper()
	if _, err := c.SendHeartbeat(context.Background(), events.Heartbeat{ID: ksuid.New().String(), SentAt: time.Now().UTC(),
		FirmwareVersion: "1.0.0", DefinitionsVersion: "1", UptimeSeconds: 60, Packets: 1000, Bytes: 100000}); err != nil {
		t.Fatal(err)
	}
}

func waitMailbox(t testing.TB, box *mailbox.Mailbox, n int, within time.Duration) []mailbox.Message {
	t.Helper()
	var msgs []mailbox.Message
	testkit.WaitFor(t, within, fmt.Sprintf("%d mails", n), func() (bool, string) {
		msgs = box.Messages()
		return len(msgs) >= n, fmt.Sprintf("%d mails", len(msgs))
	})
	return msgs
}

// The whole path: an appliance's heartbeat activates it (watchdog), its
// ★★★ alert goes through HTTPS ingest and Kafka to the notifier, and the
// customer's administrator receives the mail over SMTP; a ★☆☆ alert is
// not mailed.
func TestImportantAlertMailEndToEnd(t *testing.T) {
	s, box := newMailStack(t, nil)
	reg, c := s.device(t)
	heartbeat(t, c)
	ctx := context.Background()
	high := importantAlert(events.SeverityHigh, "e2e-c2.example")
	if _, err := c.SendAlerts(ctx, []events.Alert{importantAlert(events.SeverityLow, "ads.example"), high}); err != nil {
		t.Fatal(err)
	}
	var alertMails []mailbox.Message
	testkit.WaitFor(t, 60*time.Second, "the alert mail", func() (bool, string) {
		alertMails = alertMailsIn(box)
		return len(alertMails) >= 1, fmt.Sprintf("%d alert mails", len(alertMails))
	})
	m := alertMails[0]
	if len(m.To) != 1 || m.To[0] != "admin@test.example" {
		t.Fatalf("mail to %v, want admin@test.example", m.To)
	}
	if !strings.HasPrefix(m.Subject, "【mimamori ★★★】重要アラート: C2 server") {
		t.Fatalf("subject %q", m.Subject)
	}
	for _, want := range []string{"株式会社テスト 御中", "e2e-c2.example", "192.168.1.20:50000 (MAC aa:bb:cc:dd:ee:01)",
		"https://portal.mimamori.test/alerts/" + high.ID, reg.DeviceID} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("body lacks %q:\n%s", want, m.Body)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(alertMailsIn(box)); n != 1 {
		t.Fatalf("%d alert mails; the ★☆☆ alert must not be mailed", n)
	}
}

// alertMailsIn returns the important-alert mails in the mailbox; the
// customer's first-account mail sits beside them.
func alertMailsIn(box *mailbox.Mailbox) []mailbox.Message {
	var out []mailbox.Message
	for _, m := range box.Messages() {
		if strings.Contains(m.Subject, "重要アラート") {
			out = append(out, m)
		}
	}
	return out
}

// `mimamori serve notifier` processes are SIGKILLed again and again while
// 1,000 important alerts flow. SIGKILL can strike between the relay's 250
// and the "sent" record (see the notifier's package doc): then that one
// notification is sent again with the same Message-ID. So: every (alert,
// recipient) arrives, every Message-ID is the one of its notification,
// and duplicates are at most one per kill. The run logs how many there were.
func TestNotifierSIGKILLDuplicatesOnlyMailsInFlight(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	box, err := mailbox.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	_, port, _ := net.SplitHostPort(box.Addr())
	b := newBroker(t)
	kcfg := eventlog.Config{Brokers: b.Addrs(), Partitions: 3, Replication: 1}
	prod, err := eventlog.NewProducer(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	ctx := context.Background()
	if err := eventlog.EnsureTopics(ctx, prod.Client(), kcfg); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	env := []string{"MIMAMORI_KAFKA_BROKERS=" + b.Addrs()[0], "MIMAMORI_KAFKA_PARTITIONS=3",
		"MIMAMORI_CLICKHOUSE_ADDR=" + chtest.Server(t).Addr(), "MIMAMORI_CLICKHOUSE_DATABASE=" + "notify_kill",
		"MIMAMORI_DATA_DIR=" + dataDir, "MIMAMORI_SMTP_HOST=127.0.0.1", "MIMAMORI_SMTP_PORT=" + port,
		"MIMAMORI_SMTP_SECURITY=none", "MIMAMORI_NOTIFY_HOURLY_CAP=-1", "MIMAMORI_LOG_LEVEL=warn"}
	var devs [][2]string
	for i := range 3 {
		cust, err := registry.RegisterCustomer(ctx, prod, fmt.Sprintf("顧客%d", i), fmt.Sprintf("admin@k%d.example", i), "rs", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		reg, err := registry.RegisterDevice(ctx, prod, registry.DeviceSpec{Serial: fmt.Sprint("K", i), MAC: "00:11:22:33:44:55",
			Model: "MU-100", ManufacturedOn: "2026-01-01", CustomerID: cust}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		ev, _ := events.New("test", &events.DeviceActivated{DeviceID: reg.DeviceID, CustomerID: cust, HeartbeatAt: time.Now(), ActivatedAt: time.Now()}, time.Now())
		if err := prod.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
		devs = append(devs, [2]string{cust, reg.DeviceID})
	}
	logf, _ := os.Create(filepath.Join(t.TempDir(), "children.log"))
	defer logf.Close()
	defer func() {
		if t.Failed() {
			out, _ := os.ReadFile(logf.Name())
			t.Logf("last output of the killed processes:\n%s", tailLines(string(out), 40))
		}
	}()
	var kids []*child
	for i := range 2 {
		// Static members, as a deployment would run them: see the projector
		// in TestKillAndRestartLosesAndDoublesNothing.
		kid := &child{t: t, bin: bin, args: []string{"serve", "notifier"}, log: logf,
			env: append(slices.Clone(env), "MIMAMORI_ADMIN_ADDR="+freePort(t), "MIMAMORI_MAILBOX_ADDR=127.0.0.1:0",
				fmt.Sprintf("MIMAMORI_INSTANCE_ID=notifier-%d", i))}
		kid.start()
		defer kid.kill()
		kids = append(kids, kid)
	}
	const total = 1000
	want := map[string]bool{} // Message-IDs expected
	var wmu sync.Mutex
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := 0; i < total; i += 20 {
			var envs []events.Envelope
			for j := range 20 {
				d := devs[(i+j)%3]
				a := importantAlert(events.SeverityHigh, fmt.Sprintf("k%d.example", i+j))
				a.DeviceID, a.CustomerID, a.ReceivedAt = d[1], d[0], time.Now().UTC()
				ev, err := events.New("test", &a, time.Now())
				if err != nil {
					t.Error(err)
					return
				}
				envs = append(envs, ev)
				wmu.Lock()
				want[notifier.ID(a.ID, events.ChannelMail, fmt.Sprintf("admin@k%d.example", (i+j)%3))+"@mimamori.local"] = true
				wmu.Unlock()
			}
			if err := prod.Publish(ctx, envs...); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	kills := 0
	for done := false; !done; {
		select {
		case <-sent:
			done = true
		case <-time.After(300 * time.Millisecond):
		}
		k := kids[kills%2]
		k.kill() // SIGKILL
		k.start()
		kills++
	}
	testkit.WaitFor(t, 2*time.Minute, "a mail for every alert", func() (bool, string) {
		ids := map[string]bool{}
		for _, m := range box.Messages() {
			ids[m.MessageID] = true
		}
		return len(ids) >= total, strconv.Itoa(len(ids)) + " distinct"
	})
	time.Sleep(2 * time.Second) // let redelivered batches finish
	msgs := box.Messages()
	perID := map[string]int{}
	for _, m := range msgs {
		if !want[m.MessageID] {
			t.Fatalf("unexpected Message-ID %q (to %v)", m.MessageID, m.To)
		}
		perID[m.MessageID]++
	}
	dups := len(msgs) - len(perID)
	t.Logf("%d alerts, %d SIGKILLs: %d mails, %d distinct, %d duplicates (same Message-ID)", total, kills, len(msgs), len(perID), dups)
	if len(perID) != total {
		t.Fatalf("%d distinct mails, want %d", len(perID), total)
	}
	// A kill can catch up to DefaultWorkers mails in flight (between the
	// relay's 250 and the sent record); each of them goes out once more.
	if dups > kills*notifier.DefaultWorkers {
		t.Fatalf("%d duplicates after %d kills; at most one per mail in flight (%d) per kill is allowed", dups, kills, notifier.DefaultWorkers)
	}
	if kills < 10 {
		t.Fatalf("only %d kills; the test proved little", kills)
	}
}
