package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/mimamori/mimamori/analytics"
	"github.com/mimamori/mimamori/analytics/chtest"
	"github.com/mimamori/mimamori/appliance/fleet"
	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/infra/testkit"
	"github.com/mimamori/mimamori/services/notifier"
	"github.com/mimamori/mimamori/services/projector"
	"github.com/mimamori/mimamori/services/replay"
	"github.com/mimamori/mimamori/services/watchdog"
)

// The whole path on real parts: register a customer and an appliance,
// post alerts and a heartbeat with the device credential over HTTPS, read
// them back with analyst SQL as the read-only analyst user.
func TestAlertFromApplianceToAnalystSQL(t *testing.T) {
	s := newAnalystStack(t)
	reg, c := s.device(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)

	gen := fleet.NewGenerator(1)
	var sent []events.Alert
	for i := range 30 {
		a := gen.Alert(now.Add(-time.Duration(i)*time.Second), "")
		a.DeviceID, a.CustomerID = "", ""
		sent = append(sent, a)
	}
	sent[0].CustomerID = "" // the appliance never says whose it is: ingest stamps it
	res, err := c.SendAlerts(ctx, sent)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != len(sent) {
		t.Fatalf("accepted %d of %d", res.Accepted, len(sent))
	}
	hb := events.Heartbeat{ID: ksuid.New().String(), SentAt: now, FirmwareVersion: "1.4.2", DefinitionsVersion: "2026.11.26.1",
		UptimeSeconds: 3600, Clients: 42, Packets: 1000, Bytes: 100000, Alerts: 30, QueueDepth: 0}
	if _, err := c.SendHeartbeat(ctx, hb); err != nil {
		t.Fatal(err)
	}

	analyst := chtest.Open(t, analytics.Config{User: "analyst", Password: chtest.AnalystPassword, Database: s.db})
	testkit.WaitFor(t, 30*time.Second, "alerts in ClickHouse", func() (bool, string) {
		n := countAlerts(t, s, "")
		return n == uint64(len(sent)), fmt.Sprintf("%d rows", n)
	})
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	want := sent[3]
	var got struct {
		DeviceID, CustomerID, Kind, Indicator, Action, SrcIP, DstIP, Zones, SrcMAC string
		Severity                                                                   uint8
		Count                                                                      uint32
		DetectedAt                                                                 time.Time
	}
	err = analyst.QueryRow(qctx, "SELECT device_id, customer_id, kind, indicator, action, src_ip, dst_ip, zones, src_mac, severity, count, detected_at FROM "+
		s.db+".alerts WHERE id = ?", want.ID).Scan(&got.DeviceID, &got.CustomerID, &got.Kind, &got.Indicator, &got.Action,
		&got.SrcIP, &got.DstIP, &got.Zones, &got.SrcMAC, &got.Severity, &got.Count, &got.DetectedAt)
	if err != nil {
		t.Fatal(err)
	}
	if got.DeviceID != reg.DeviceID || got.CustomerID != reg.CustomerID {
		t.Errorf("alert stamped with device %s customer %s, want %s %s", got.DeviceID, got.CustomerID, reg.DeviceID, reg.CustomerID)
	}
	if got.Kind != want.Kind || got.Indicator != want.Indicator || got.Action != want.Action || got.SrcIP != want.SrcIP ||
		got.DstIP != want.DstIP || got.Zones != want.Zones || got.SrcMAC != want.SrcMAC || int(got.Severity) != want.Severity ||
		int(got.Count) != want.Count || !got.DetectedAt.Equal(want.DetectedAt.Truncate(time.Second)) {
		t.Errorf("alert read back differs:\n got %+v\nsent %+v", got, want)
	}

	// Daily counts per severity, through the analysts' aggregate view.
	wantBySev := map[uint8]uint64{}
	for _, a := range sent {
		wantBySev[uint8(a.Severity)]++
	}
	// One INSERT fills alerts_log and, through materialized views, the
	// aggregates; a reader can see the first before the others.
	bySeverity := func() map[uint8]uint64 {
		rows, err := analyst.Query(qctx, "SELECT severity, sum(alerts) FROM "+s.db+".alerts_daily WHERE customer_id = ? GROUP BY severity", reg.CustomerID)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		got := map[uint8]uint64{}
		for rows.Next() {
			var sev uint8
			var n uint64
			if err := rows.Scan(&sev, &n); err != nil {
				t.Fatal(err)
			}
			got[sev] = n
		}
		return got
	}
	testkit.WaitFor(t, 20*time.Second, "alerts_daily by severity", func() (bool, string) {
		got := bySeverity()
		return fmt.Sprint(got) == fmt.Sprint(wantBySev), fmt.Sprintf("%v, want %v", got, wantBySev)
	})
	testkit.WaitFor(t, 20*time.Second, "heartbeat in ClickHouse", func() (bool, string) {
		var n uint64
		_ = analyst.QueryRow(qctx, "SELECT count() FROM "+s.db+".heartbeats WHERE device_id = ? AND clients = 42", reg.DeviceID).Scan(&n)
		return n == 1, fmt.Sprintf("%d heartbeats", n)
	})
	// The analyst user cannot write.
	if err := analyst.Exec(qctx, "DROP TABLE "+s.db+".alerts_log"); err == nil {
		t.Fatal("the analyst user dropped a table")
	}
}

// The same batch posted five times in a row and five times at once is one
// alert per id, and the daily aggregates do not move.
func TestResentBatchIsOneAlertPerID(t *testing.T) {
	s := newStack(t)
	reg, c := s.device(t)
	ctx := context.Background()
	gen := fleet.NewGenerator(2)
	now := time.Now().UTC()
	var batch []events.Alert
	for range 200 {
		batch = append(batch, gen.Alert(now, ""))
	}
	for range 5 {
		if _, err := c.SendAlerts(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		wg.Go(func() {
			if _, err := c.SendAlerts(ctx, batch); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Wait until the projector has committed everything the ten posts wrote.
	waitProjected(t, s)
	if n := countAlerts(t, s, ""); n != uint64(len(batch)) {
		t.Fatalf("alerts view has %d rows for %d distinct ids", n, len(batch))
	}
	var raw, daily uint64
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.conn.QueryRow(qctx, "SELECT count() FROM "+s.db+".alerts_log").Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if err := s.conn.QueryRow(qctx, "SELECT sum(alerts) FROM "+s.db+".alerts_daily WHERE customer_id = ?", reg.CustomerID).Scan(&daily); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d raw rows before merges for %d alerts", raw, len(batch))
	if daily != uint64(len(batch)) {
		t.Fatalf("alerts_daily counts %d, want %d", daily, len(batch))
	}
}

// waitProjected waits until the projector group has committed every event
// in the log.
func waitProjected(t testing.TB, s *stack) {
	t.Helper()
	// WaitGroup gives up after two minutes itself, naming what lags.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := replay.WaitGroup(ctx, s.p.Kafka, projector.Group); err != nil {
		t.Fatal(err)
	}
}

// Replaying the whole log into a fresh database gives identical tables.
func TestReplayMatchesLive(t *testing.T) {
	s := newStack(t)
	_, c := s.device(t)
	_, c2 := s.device(t)
	ctx := context.Background()
	gen := fleet.NewGenerator(3)
	for i := range 4 {
		var batch []events.Alert
		for range 250 {
			batch = append(batch, gen.Alert(time.Now().UTC().Add(-time.Duration(i)*24*time.Hour), ""))
		}
		cl := c
		if i%2 == 1 {
			cl = c2
		}
		if _, err := cl.SendAlerts(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.SendAlerts(ctx, batch[:50]); err != nil { // a resend: acknowledged, not written again
			t.Fatal(err)
		}
		hb := events.Heartbeat{ID: ksuid.New().String(), SentAt: time.Now().UTC(), FirmwareVersion: "1.4.2",
			DefinitionsVersion: gen.DefinitionsVersion(), UptimeSeconds: int64(60 * i), Clients: 10 + i, Packets: uint64(1000 * i)}
		if _, err := cl.SendHeartbeat(ctx, hb); err != nil {
			t.Fatal(err)
		}
	}
	// The watchdog and the notifier answer alerts and heartbeats with events
	// of their own: let them finish, so the log is quiet when replay reads it.
	for _, g := range []string{watchdog.Group, notifier.Group} {
		wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
		if err := replay.WaitGroup(wctx, s.p.Kafka, g); err != nil {
			t.Fatal(err)
		}
		wcancel()
	}
	rep, err := replay.Run(ctx, s.p.Kafka, s.conn, s.db, replay.Options{LiveGroup: projector.Group}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = replay.Drop(context.Background(), s.conn, rep.FreshDB) })
	for _, r := range rep.Tables {
		t.Log(r)
	}
	if !rep.Match || len(rep.Tables) == 0 {
		t.Fatal("replay does not match the live database")
	}
	if rep.Events < 1000 {
		t.Fatalf("replayed %d events, want at least the 1000 alerts", rep.Events)
	}
	// Tamper with the live database: the check must notice.
	if err := s.conn.Exec(ctx, "ALTER TABLE "+s.db+".alerts_log DELETE WHERE severity = 3"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "the delete mutation", func() (bool, string) {
		n := countAlerts(t, s, "severity = 3")
		return n == 0, fmt.Sprint(n)
	})
	rep2, err := replay.Run(ctx, s.p.Kafka, s.conn, s.db, replay.Options{}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = replay.Drop(context.Background(), s.conn, rep2.FreshDB) })
	if rep2.Match {
		t.Fatal("replay check did not notice alerts deleted from the live database")
	}
}
