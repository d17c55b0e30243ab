package dashboard_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/mimamori/mimamori/analytics/chtest"
	"github.com/mimamori/mimamori/infra/testkit"
	"github.com/mimamori/mimamori/portal-api/dashboard"
)

// fleetData writes heartbeats and alerts straight into the projections.
type fleetData struct {
	t    *testing.T
	conn driver.Conn
	db   string
	now  time.Time
	seq  int // insert number, part of the alert IDs
}

// company gives customer c a device that sent a heartbeat an hour ago and
// n alerts detected in the last hour.
func (f *fleetData) company(c string, n int) {
	f.t.Helper()
	ctx := context.Background()
	at := f.now.Add(-time.Hour).Unix()
	// INSERT … SELECT: clickhouse-server 18.16 waits for a data block after
	// an INSERT … VALUES sent with Exec.
	if err := f.conn.Exec(ctx, fmt.Sprintf(`INSERT INTO %[1]s.heartbeats (id, device_id, customer_id, sent_at, received_at,
		firmware_version, definitions_version, uptime_seconds, clients, packets, bytes, alerts, queue_depth)
		SELECT 'hb-%[2]s', 'dev-%[2]s', '%[2]s', toDateTime(%[3]d, 'UTC'), toDateTime(%[3]d, 'UTC'), '1.4.2', '2026.11.25', 60, 1, 1, 1, 0, 0`,
		f.db, c, at)); err != nil {
		f.t.Fatal(err)
	}
	if err := f.conn.Exec(ctx, fmt.Sprintf(`INSERT INTO %[1]s.alerts_log (id, device_id, customer_id, detected_at, received_at,
		severity, kind, indicator) SELECT concat('al-%[2]s-%[4]d-', toString(number)), 'dev-%[2]s', '%[2]s', toDateTime(%[3]d, 'UTC'),
		toDateTime(%[3]d, 'UTC'), 3, 'domain', 'bad.example' FROM system.numbers LIMIT %[5]d`, f.db, c, at, f.seq, n)); err != nil {
		f.t.Fatal(err)
	}
	f.seq++
}

func averageToday(t *testing.T, st *dashboard.Store, customer string, p dashboard.Period) (mine uint64, avg float64) {
	t.Helper()
	days, _, err := st.Participants(context.Background(), customer, p)
	if err != nil {
		t.Fatal(err)
	}
	last := days[len(days)-1]
	return last.Mine, last.Average
}

// TestParticipantsFleetFiguresLag shows what a customer sees while the
// fleet changes: its own count at once, the fleet's average as computed
// before until the background refresh lands, then the new average; with
// the staleness bound passed, or a fleet whose figures are quick to
// compute, the new average at once.
func TestParticipantsFleetFiguresLag(t *testing.T) {
	conn, db := chtest.Database(t)
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	f := &fleetData{t: t, conn: conn, db: db, now: now}
	for i := range 5 {
		f.company(fmt.Sprintf("cust-%d", i), 2) // five companies, two alerts each
	}
	p := dashboard.LastDays(now, 30) // the period WarmFleet computes

	lagging, err := dashboard.New(conn, db, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	lagging.Fleet().SetMaxStale(time.Hour)
	dashboard.SetFleetQuick(lagging, 0) // as if computing took long, as at ten million alerts
	if err := lagging.Fleet().Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	quick, _ := dashboard.New(conn, db, func() time.Time { return now })
	quick.Fleet().SetMaxStale(time.Hour)
	dashboard.SetFleetQuick(quick, time.Hour) // every computation counts as quick
	if err := quick.Fleet().Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	immediate, _ := dashboard.New(conn, db, func() time.Time { return now })
	immediate.Fleet().SetMaxStale(time.Nanosecond)
	if mine, avg := averageToday(t, immediate, "cust-0", p); mine != 2 || avg != 2 {
		t.Fatalf("before: mine %d average %v, want 2 and 2", mine, avg)
	}

	// cust-0 gets 3 more alerts and cust-1 8 more: fleet 5+10+2+2+2 = 21 over 5.
	f.company("cust-0", 3)
	f.company("cust-1", 8)

	if mine, avg := averageToday(t, immediate, "cust-0", p); mine != 5 || avg != 21.0/5 {
		t.Errorf("past the staleness bound: mine %d average %v, want 5 and %v", mine, avg, 21.0/5)
	}
	if mine, avg := averageToday(t, quick, "cust-0", p); mine != 5 || avg != 21.0/5 {
		t.Errorf("quick to compute: mine %d average %v, want 5 and %v", mine, avg, 21.0/5)
	}
	// The lagging store answers from the figures it has, with the
	// customer's own count read now (and used in the average in place of
	// its old one): (5+2+2+2+2)/5.
	mine, avg := averageToday(t, lagging, "cust-0", p)
	if mine != 5 || avg != 13.0/5 {
		t.Errorf("within the staleness bound: mine %d average %v, want 5 and %v", mine, avg, 13.0/5)
	}
	// The request started one refresh behind; a later request sees it.
	testkit.WaitFor(t, 20*time.Second, fmt.Sprintf("the background refresh to give the average %v", 21.0/5), func() (bool, string) {
		_, avg = averageToday(t, lagging, "cust-0", p)
		return avg == 21.0/5, fmt.Sprintf("average %v", avg)
	})
}

// The default period moves on a day at JST midnight: a running Fleet has
// the new period's figures computed a second after it, before any
// customer asks.
func TestFleetKeptWarmAcrossMidnight(t *testing.T) {
	conn, db := chtest.Database(t)
	clk := &struct {
		sync.Mutex
		t time.Time
	}{t: time.Date(2026, 11, 26, 23, 59, 59, 0, dashboard.JST)}
	now := func() time.Time { clk.Lock(); defer clk.Unlock(); return clk.t }
	f := &fleetData{t: t, conn: conn, db: db, now: now()}
	for i := range 5 {
		f.company(fmt.Sprintf("cust-%d", i), 1)
	}
	st, err := dashboard.New(conn, db, now)
	if err != nil {
		t.Fatal(err)
	}
	st.Fleet().SetMaxStale(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = st.Fleet().Run(ctx, slog.New(slog.DiscardHandler)); close(done) }()
	defer func() { cancel(); <-done }()

	today, tomorrow := dashboard.LastDays(now(), 30), dashboard.LastDays(now().Add(time.Hour), 30)
	testkit.WaitUntil(t, 30*time.Second, "today's period computed", func() bool { return dashboard.FleetCached(st, today) })
	if dashboard.FleetCached(st, tomorrow) {
		t.Fatal("tomorrow's period computed before midnight")
	}
	clk.Lock()
	clk.t = clk.t.Add(2 * time.Second) // 00:00:01 JST
	clk.Unlock()
	testkit.WaitUntil(t, 30*time.Second, "tomorrow's period computed after midnight", func() bool { return dashboard.FleetCached(st, tomorrow) })
}
