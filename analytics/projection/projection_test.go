package projection_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/mimamori/mimamori/analytics/chtest"
	"github.com/mimamori/mimamori/analytics/projection"
	"github.com/mimamori/mimamori/events"
)

func TestMain(m *testing.M) { chtest.Main(m) }

func newWriter(t *testing.T, conn driver.Conn, db string) *projection.Writer {
	t.Helper()
	w, err := projection.New(conn, db, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWritesEveryAlertField(t *testing.T) {
	conn, db := chtest.Database(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := chtest.NewSample(t, time.Now())
	if err := newWriter(t, conn, db).Apply(ctx, s.Events); err != nil {
		t.Fatal(err)
	}

	rows, err := conn.Query(ctx, "SELECT id, device_id, customer_id, detected_at, received_at, severity, kind, indicator, label, action, "+
		"src_ip, src_port, src_mac, dst_ip, dst_port, dst_mac, protocol, zones, url, domain, file_name, file_sha256, definitions_version, count "+
		"FROM "+db+".alerts ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]events.Alert{}
	for rows.Next() {
		var a events.Alert
		var sev uint8
		var sport, dport uint16
		var count uint32
		if err := rows.Scan(&a.ID, &a.DeviceID, &a.CustomerID, &a.DetectedAt, &a.ReceivedAt, &sev, &a.Kind, &a.Indicator, &a.Label, &a.Action,
			&a.SrcIP, &sport, &a.SrcMAC, &a.DstIP, &dport, &a.DstMAC, &a.Protocol, &a.Zones, &a.URL, &a.Domain, &a.FileName, &a.FileSHA256,
			&a.DefinitionsVersion, &count); err != nil {
			t.Fatal(err)
		}
		a.Severity, a.SrcPort, a.DstPort, a.Count = int(sev), int(sport), int(dport), int(count)
		a.DetectedAt, a.ReceivedAt = a.DetectedAt.UTC(), a.ReceivedAt.UTC()
		got[a.ID] = a
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(s.Alerts) {
		t.Fatalf("read %d alerts, want %d", len(got), len(s.Alerts))
	}
	for _, want := range s.Alerts {
		want.DetectedAt, want.ReceivedAt = want.DetectedAt.UTC(), want.ReceivedAt.UTC()
		g, _ := json.Marshal(got[want.ID])
		w, _ := json.Marshal(want)
		if string(g) != string(w) {
			t.Errorf("alert %s\n got %s\nwant %s", want.ID, g, w)
		}
	}

	var serial, customer string
	var manufactured time.Time
	if err := conn.QueryRow(ctx, "SELECT serial, customer_id, manufactured_on FROM "+db+".devices WHERE device_id = 'dev-3'").
		Scan(&serial, &customer, &manufactured); err != nil {
		t.Fatal(err)
	}
	if serial != "SN-0003" || customer != "cust-2" || manufactured.Format(time.DateOnly) != "2026-04-01" {
		t.Errorf("dev-3 = %q %q %v, want SN-0003 cust-2 2026-04-01", serial, customer, manufactured)
	}
	var name string
	if err := conn.QueryRow(ctx, "SELECT name FROM "+db+".customers FINAL WHERE customer_id = 'cust-1'").Scan(&name); err != nil {
		t.Fatal(err)
	}
	if name != "Kobayashi Dental" {
		t.Errorf("cust-1 name = %q", name)
	}
	var packets uint64
	var clients uint32
	if err := conn.QueryRow(ctx, "SELECT packets, clients FROM "+db+".heartbeats FINAL WHERE device_id = 'dev-2'").Scan(&packets, &clients); err != nil {
		t.Fatal(err)
	}
	if packets != 7000 || clients != 12 {
		t.Errorf("dev-2 heartbeat packets=%d clients=%d, want 7000 12", packets, clients)
	}
}

func TestSkipsUnknownAndInvalid(t *testing.T) {
	conn, db := chtest.Database(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := chtest.NewSample(t, time.Now())
	good := s.Events[len(s.Events)-1]
	unknown := good
	unknown.ID, unknown.Type = "x1", "mimamori.something.new.v9"
	broken := good
	broken.ID, broken.Data = "x2", json.RawMessage(`{"id": 12}`)
	w := newWriter(t, conn, db)
	if err := w.Apply(ctx, []events.Envelope{unknown, broken, good, good}); err != nil {
		t.Fatal(err)
	}
	want := projection.Stats{Written: 1, Skipped: 1, Invalid: 1, Duplicate: 1}
	if got := w.Stats(); got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
}

// figures are the numbers a customer can see, read back after each round.
type figures struct {
	Alerts, Daily, Heartbeats, Devices, HeartbeatsDaily uint64
}

func readFigures(t *testing.T, conn driver.Conn, db string) figures {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var f figures
	for _, q := range []struct {
		sql string
		dst *uint64
	}{
		{"SELECT count() FROM " + db + ".alerts", &f.Alerts},
		{"SELECT sum(alerts) FROM " + db + ".alerts_daily", &f.Daily},
		{"SELECT count() FROM " + db + ".heartbeats FINAL", &f.Heartbeats},
		{"SELECT count() FROM " + db + ".devices", &f.Devices},
		{"SELECT sum(heartbeats) FROM " + db + ".heartbeats_daily", &f.HeartbeatsDaily},
	} {
		if err := conn.QueryRow(ctx, q.sql).Scan(q.dst); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	return f
}

func TestIdempotent(t *testing.T) {
	conn, db := chtest.Database(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := chtest.NewSample(t, time.Now())
	w := newWriter(t, conn, db)
	if err := w.Apply(ctx, s.Events); err != nil {
		t.Fatal(err)
	}
	want := readFigures(t, conn, db)
	if want.Alerts != chtest.SampleAlerts || want.Daily != chtest.SampleAlerts || want.Devices != 3 || want.Heartbeats != 25 || want.HeartbeatsDaily != 25 {
		t.Fatalf("after one Apply: %+v", want)
	}

	for i := 0; i < 4; i++ {
		if err := w.Apply(ctx, s.Events); err != nil {
			t.Fatal(err)
		}
	}
	if got := readFigures(t, conn, db); got != want {
		t.Fatalf("after 5 sequential Applies: %+v, want %+v", got, want)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- w.Apply(ctx, s.Events)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := readFigures(t, conn, db); got != want {
		t.Fatalf("after 5 concurrent Applies: %+v, want %+v", got, want)
	}
	var perID uint64
	if err := conn.QueryRow(ctx, "SELECT max(c) FROM (SELECT count() AS c FROM "+db+".alerts GROUP BY id)").Scan(&perID); err != nil {
		t.Fatal(err)
	}
	if perID != 1 {
		t.Fatalf("an alert id has %d rows in alerts, want 1", perID)
	}
}

// Liveness events give each device its current state; notification
// records are kept per status so operators can find failures.
func TestDeviceStatusAndNotifications(t *testing.T) {
	conn, db := chtest.Database(t)
	w := newWriter(t, conn, db)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := chtest.NewSample(t, time.Now())
	for range 2 { // delivered twice
		if err := w.Apply(ctx, s.Events); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := conn.Query(ctx, "SELECT device_id, status FROM "+db+".device_status ORDER BY device_id")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for rows.Next() {
		var d, st string
		if err := rows.Scan(&d, &st); err != nil {
			t.Fatal(err)
		}
		got[d] = st
	}
	if want := map[string]string{"dev-1": "online", "dev-2": "offline"}; len(got) != 2 || got["dev-1"] != want["dev-1"] || got["dev-2"] != want["dev-2"] {
		t.Fatalf("device_status = %v, want %v", got, want)
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".notifications WHERE notification_id = 'nf_sample_1'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d notification rows for nf_sample_1, want attempting and sent", n)
	}
}

// A resent alert is a new event with the same alert id and a later
// received_at. Whether it arrives in the same batch as the original or in
// another, the alerts view shows one row with the latest received_at, so
// a replay (which batches differently) gives the same table.
func TestResentAlertSameResultInAnyBatching(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := chtest.NewSample(t, time.Now())
	orig := s.Alerts[0]
	resent := orig
	resent.ReceivedAt = orig.ReceivedAt.Add(5 * time.Second)
	e1, err := events.New("test", &orig, orig.ReceivedAt)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := events.New("test", &resent, resent.ReceivedAt)
	if err != nil {
		t.Fatal(err)
	}
	for name, batches := range map[string][][]events.Envelope{
		"one batch":   {{e1, e2}},
		"two batches": {{e1}, {e2}},
	} {
		t.Run(name, func(t *testing.T) {
			conn, db := chtest.Database(t)
			w := newWriter(t, conn, db)
			for _, b := range batches {
				if err := w.Apply(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
			var n uint64
			var got time.Time
			if err := conn.QueryRow(ctx, "SELECT count(), max(received_at) FROM "+db+".alerts WHERE id = ?", orig.ID).Scan(&n, &got); err != nil {
				t.Fatal(err)
			}
			if n != 1 || !got.Equal(resent.ReceivedAt.Truncate(time.Second)) {
				t.Fatalf("%d rows, received_at %s; want 1 row with the resend's %s", n, got, resent.ReceivedAt.Truncate(time.Second))
			}
		})
	}
}

func envelope(t *testing.T, a events.Alert) events.Envelope {
	t.Helper()
	e, err := events.New("test", &a, a.ReceivedAt)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// count runs a count() query with args and returns the number.
func count(t *testing.T, conn driver.Conn, q string, args ...any) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var n uint64
	if err := conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// An alert keeps its first version: a later event with its device and id
// but other content (a ★★★ turned ★☆☆, dated three days earlier, stamped
// with the customer the device moved to) is not written, in the raw rows,
// the portal's copies or the daily aggregates, however the events are
// batched; a resend of the first content still records its later receipt.
func TestAlertKeepsItsFirstVersion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := chtest.NewSample(t, time.Now())
	first := s.Alerts[0]
	rewrite := first
	rewrite.Severity, rewrite.Label, rewrite.CustomerID = events.SeverityLow, "nothing to see", "cust-2"
	rewrite.DetectedAt, rewrite.ReceivedAt = first.DetectedAt.Add(-72*time.Hour), first.ReceivedAt.Add(time.Minute)
	resend := first
	resend.ReceivedAt = first.ReceivedAt.Add(2 * time.Minute)
	v1, v2, v3 := envelope(t, first), envelope(t, rewrite), envelope(t, resend)
	for name, batches := range map[string][][]events.Envelope{
		"one batch":          {{v1, v2, v3}},
		"three batches":      {{v1}, {v2}, {v3}},
		"resend, then other": {{v1, v3}, {v2}},
	} {
		t.Run(name, func(t *testing.T) {
			conn, db := chtest.Database(t)
			w := newWriter(t, conn, db)
			for _, b := range batches {
				if err := w.Apply(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
			if st := w.Stats(); st.Rewrites != 1 || st.Written != 2 {
				t.Fatalf("Stats = %+v, want 1 rewrite not written and 2 alerts written", st)
			}
			var n uint64
			var sev uint8
			var label, customer string
			var received time.Time
			if err := conn.QueryRow(ctx, "SELECT count(), any(severity), any(label), any(customer_id), max(received_at) FROM "+db+".alerts WHERE id = ?",
				first.ID).Scan(&n, &sev, &label, &customer, &received); err != nil {
				t.Fatal(err)
			}
			if n != 1 || sev != 3 || label != first.Label || customer != "cust-1" || !received.Equal(resend.ReceivedAt.Truncate(time.Second)) {
				t.Fatalf("alerts: %d rows, severity %d, label %q, customer %s, received %s; want the first version, received at the resend %s",
					n, sev, label, customer, received, resend.ReceivedAt.Truncate(time.Second))
			}
			for _, q := range []string{
				"SELECT count() FROM " + db + ".alerts_by_customer FINAL WHERE id = ? AND severity = 3 AND customer_id = 'cust-1'",
				"SELECT count() FROM " + db + ".alert_ids FINAL WHERE id = ? AND customer_id = 'cust-1'",
				"SELECT sum(alerts) FROM " + db + ".alerts_daily WHERE device_id = 'dev-1' AND severity = 3 AND day = toDate(?)",
			} {
				arg := any(first.ID)
				if strings.Contains(q, "toDate") {
					arg = first.DetectedAt
				}
				if got := count(t, conn, q, arg); got != 1 {
					t.Errorf("%s: %d, want 1", q, got)
				}
			}
			for _, q := range []string{
				"SELECT count() FROM " + db + ".alerts_by_customer FINAL WHERE id = ? AND severity != 3",
				"SELECT count() FROM " + db + ".alert_ids WHERE id = ? AND customer_id != 'cust-1'",
				"SELECT count() FROM " + db + ".alerts_daily WHERE device_id = 'dev-1' AND (severity != 3 OR customer_id != 'cust-1')",
				"SELECT count() FROM " + db + ".alerts_daily_jst WHERE device_id = 'dev-1' AND (severity != 3 OR customer_id != 'cust-1')",
			} {
				var args []any
				if strings.Contains(q, "id = ?") {
					args = append(args, first.ID)
				}
				if got := count(t, conn, q, args...); got != 0 {
					t.Errorf("%s: %d, want 0 (the rewrite reached a read model)", q, got)
				}
			}
		})
	}
}

// Two devices of one customer reporting one id at one instant keep one
// alert each, in one batch or in two: the key is the device and the id.
func TestDevicesDoNotReplaceEachOther(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := chtest.NewSample(t, time.Now())
	a := s.Alerts[0] // dev-1 of cust-1
	b := a
	b.DeviceID, b.Severity, b.Label = "dev-2", events.SeverityLow, "dev-2's own"
	ea, eb := envelope(t, a), envelope(t, b)
	for name, batches := range map[string][][]events.Envelope{"one batch": {{ea, eb}}, "two batches": {{ea}, {eb}}} {
		t.Run(name, func(t *testing.T) {
			conn, db := chtest.Database(t)
			w := newWriter(t, conn, db)
			for _, batch := range batches {
				if err := w.Apply(ctx, batch); err != nil {
					t.Fatal(err)
				}
			}
			if err := conn.Exec(ctx, "OPTIMIZE TABLE "+db+".alerts_log FINAL"); err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{
				"SELECT count() FROM " + db + ".alerts WHERE id = ?",
				"SELECT count() FROM " + db + ".alerts_log WHERE id = ?",
				"SELECT count() FROM " + db + ".alerts_by_customer FINAL WHERE id = ?",
				"SELECT count() FROM " + db + ".alert_ids FINAL WHERE id = ?",
				"SELECT sum(alerts) FROM " + db + ".alerts_daily WHERE customer_id = 'cust-1' AND day = toDate(?)",
			} {
				arg := any(a.ID)
				if strings.Contains(q, "toDate") {
					arg = a.DetectedAt
				}
				if got := count(t, conn, q, arg); got != 2 {
					t.Errorf("%s: %d, want 2 (one per device)", q, got)
				}
			}
			var sev uint8
			if err := conn.QueryRow(ctx, "SELECT severity FROM "+db+".alerts WHERE id = ? AND device_id = 'dev-1'", a.ID).Scan(&sev); err != nil || sev != 3 {
				t.Fatalf("dev-1's alert: severity %d, %v; want its own 3", sev, err)
			}
		})
	}
}
