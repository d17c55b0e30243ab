package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/analytics/chtest"
	"github.com/mimamori/mimamori/appliance/fleet"
	"github.com/mimamori/mimamori/appliance/uplink"
	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/infra/testkit"
	"github.com/mimamori/mimamori/portal-api/dashboard"
	"github.com/mimamori/mimamori/services/projector"
	"github.com/mimamori/mimamori/services/replay"
)

// An alert is written once (issue 10): a ★★★ alert is mailed; the same id
// posted again as ★☆☆ is refused with 409 naming it, and the first version
// stands in Kafka, ClickHouse, the portal and the mail.
func TestAlertFirstVersionStands(t *testing.T) {
	s, box := newMailStack(t, nil)
	reg, c := s.device(t)
	heartbeat(t, c)
	ctx := context.Background()
	high := importantAlert(events.SeverityHigh, "first-version.example")
	if _, err := c.SendAlerts(ctx, []events.Alert{high}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 60*time.Second, "the ★★★ mail", func() (bool, string) {
		n := len(alertMailsIn(box))
		return n == 1, fmt.Sprintf("%d alert mails", n)
	})

	lowered := high
	lowered.Severity, lowered.Label = events.SeverityLow, "nothing to see"
	_, err := c.SendAlerts(ctx, []events.Alert{lowered})
	var perm *uplink.PermanentError
	if !errors.As(err, &perm) || perm.StatusCode != 409 || perm.Field != "alerts[0].id" || !strings.Contains(perm.Message, high.ID) {
		t.Fatalf("the same id with other content: %v, want 409 naming alerts[0].id and %s", err, high.ID)
	}
	// A later alert of the device, read behind the refused one had it been
	// written: once it is mailed and projected, everything before it is.
	control := importantAlert(events.SeverityHigh, "control.example")
	if _, err := c.SendAlerts(ctx, []events.Alert{control}); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := dashboard.New(s.conn, s.db, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	// The portal's detail reads tables filled by views of the alerts
	// table, each insert committed on its own: wait for the detail too.
	testkit.WaitFor(t, 60*time.Second, "the control alert's mail, row and portal detail", func() (bool, string) {
		n, rows := len(alertMailsIn(box)), countAlerts(t, s, "id = ?", control.ID)
		_, err := st.Alert(rctx, reg.CustomerID, control.ID)
		return n >= 2 && rows == 1 && err == nil, fmt.Sprintf("%d alert mails, %d rows, detail: %v", n, rows, err)
	})

	var stored []int
	if err := eventlog.ReadToEnd(rctx, s.p.Kafka, []string{s.p.Kafka.Topic(events.TopicAlerts)}, nil, func(_ *kgo.Record, e events.Envelope) {
		if p, err := events.Decode(e); err == nil && e.ID == high.ID {
			stored = append(stored, p.(*events.Alert).Severity)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if len(stored) != 1 || stored[0] != events.SeverityHigh {
		t.Fatalf("appliance.alerts holds severities %v of %s, want only the first, 3", stored, high.ID)
	}
	var sev uint8
	var label string
	if err := s.conn.QueryRow(rctx, "SELECT severity, label FROM "+s.db+".alerts WHERE id = ?", high.ID).Scan(&sev, &label); err != nil ||
		sev != 3 || label != high.Label {
		t.Fatalf("ClickHouse: severity %d label %q (%v), want the first version", sev, label, err)
	}
	if a, err := st.Alert(rctx, reg.CustomerID, high.ID); err != nil || a.Severity != 3 || a.Label != high.Label {
		t.Fatalf("portal detail: %+v, %v; want the first version", a, err)
	}
	mails := alertMailsIn(box)
	if len(mails) != 2 || !strings.Contains(mails[0].Subject+mails[1].Subject, "★★★") {
		t.Fatalf("%d alert mails, want the first version's and the control's", len(mails))
	}
	for _, m := range mails {
		if strings.Contains(m.Body, "nothing to see") || strings.Contains(m.Subject, "★☆☆") {
			t.Fatalf("a mail shows the refused version: %s", m.Subject)
		}
	}
}

// An appliance over MIMAMORI_INGEST_DEVICE_RATE gets 429 and Retry-After;
// its uplink waits and sends again, and nothing is lost.
func TestDeviceRateLimitLosesNothing(t *testing.T) {
	conn, db := chtest.EmptyDatabase(t)
	s := newStackOn(t, conn, db, map[string]string{"MIMAMORI_INGEST_DEVICE_RATE": "100", "MIMAMORI_INGEST_DEVICE_BURST": "20"})
	reg, dc := s.device(t)
	heartbeat(t, dc) // activated: the notifier does not wait for it
	logs := &lockedBuffer{ch: make(chan struct{}, 1)}
	c, err := uplink.New(uplink.Config{BaseURL: s.p.Endpoints.Ingest, Credential: reg.Credential, CAFile: s.p.Endpoints.IngestCAFile,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	gen := fleet.NewGenerator(5)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sent := 0
	for range 3 { // 50 alerts each, beyond the burst of 20
		var batch []events.Alert
		for range 50 {
			batch = append(batch, gen.Alert(time.Now().UTC(), ""))
		}
		res, err := c.SendAlerts(ctx, batch)
		if err != nil || res.Accepted != len(batch) {
			t.Fatalf("send: %+v, %v", res, err)
		}
		sent += len(batch)
	}
	if l := logs.String(); !strings.Contains(l, "429 Too Many Requests") {
		t.Fatalf("the uplink never met a 429:\n%s", l)
	}
	testkit.WaitFor(t, 30*time.Second, "every alert in ClickHouse", func() (bool, string) {
		n := countAlerts(t, s, "device_id = ?", reg.DeviceID)
		return n == uint64(sent), fmt.Sprintf("%d of %d", n, sent)
	})
}

// Rewrites that reach the log past the ingest (two gateways racing, an id
// older than the ingest's index) are dropped by the live projector and by
// a replay alike, so the replay still matches, first versions included.
func TestReplayKeepsFirstVersions(t *testing.T) {
	s := newStack(t)
	reg, c := s.device(t)
	heartbeat(t, c)
	ctx := context.Background()
	gen := fleet.NewGenerator(9)
	var sent []events.Alert
	for range 200 {
		sent = append(sent, gen.Alert(time.Now().UTC(), ""))
	}
	if _, err := c.SendAlerts(ctx, sent); err != nil {
		t.Fatal(err)
	}
	var rewrites []events.Envelope
	for i, a := range sent[:100] {
		a.DeviceID, a.CustomerID, a.ReceivedAt = reg.DeviceID, reg.CustomerID, time.Now().UTC()
		a.Severity = 1 + a.Severity%3
		a.DetectedAt = a.DetectedAt.Add(-time.Duration(i) * time.Hour)
		e, err := events.New("mimamori/ingest", &a, a.ReceivedAt)
		if err != nil {
			t.Fatal(err)
		}
		rewrites = append(rewrites, e)
	}
	if err := s.prod.Publish(ctx, rewrites...); err != nil {
		t.Fatal(err)
	}
	rep, err := replay.Run(ctx, s.p.Kafka, s.conn, s.db, replay.Options{LiveGroup: projector.Group}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = replay.Drop(context.Background(), s.conn, rep.FreshDB) })
	for _, r := range rep.Tables {
		t.Log(r)
	}
	if !rep.Match {
		t.Fatal("replay does not match the live database")
	}
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rows, err := s.conn.Query(qctx, "SELECT id, severity FROM "+s.db+".alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	want := map[string]int{}
	for _, a := range sent {
		want[a.ID] = a.Severity
	}
	n := 0
	for rows.Next() {
		var id string
		var sev uint8
		if err := rows.Scan(&id, &sev); err != nil {
			t.Fatal(err)
		}
		if int(sev) != want[id] {
			t.Errorf("alert %s has severity %d, want its first version's %d", id, sev, want[id])
		}
		n++
	}
	if n != len(sent) {
		t.Fatalf("alerts holds %d rows, want %d", n, len(sent))
	}
}
