package migrate_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/mimamori/mimamori/analytics/chtest"
	"github.com/mimamori/mimamori/analytics/migrate"
)

// applyUpTo applies and records the embedded migrations before name, as an
// older release did.
func applyUpTo(t *testing.T, conn driver.Conn, db, name string) []migrate.Migration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	all, err := migrate.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{"CREATE DATABASE " + db,
		"CREATE TABLE " + db + ".schema_migrations (name String, applied_at DateTime('UTC')) ENGINE = ReplacingMergeTree() ORDER BY name"} {
		if err := conn.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range all {
		if m.Name == name {
			return all[i:]
		}
		run(t, conn, db, m.Statements)
		b, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".schema_migrations (name, applied_at)")
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Append(m.Name, time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("no migration %s", name)
	return nil
}

func run(t *testing.T, conn driver.Conn, db string, stmts []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, s := range stmts {
		if err := conn.Exec(ctx, strings.ReplaceAll(s, migrate.Placeholder, db)); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// insertAlert writes one alerts_log row the way the projector does.
func insertAlert(t *testing.T, conn driver.Conn, db, id, device string, severity int, received time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := fmt.Sprintf(`INSERT INTO %s.alerts_log (id, device_id, customer_id, detected_at, received_at, severity, kind, indicator, label,
		action, src_ip, src_port, src_mac, dst_ip, dst_port, dst_mac, protocol, zones, url, domain, file_name, file_sha256,
		definitions_version, count)
		SELECT '%s', '%s', 'cu_1', toDateTime('2026-11-20 01:02:03', 'UTC'), toDateTime(%d, 'UTC'), %d, 'domain', 'evil.example', '',
		'blocked', '192.168.1.2', 5000, '', '203.0.113.9', 443, '', 'tcp', 'LAN>WAN', '', 'evil.example', '', '', '1', 1`,
		db, id, device, received.Unix(), severity)
	if err := conn.Exec(ctx, q); err != nil {
		t.Fatal(err)
	}
}

func counts(t *testing.T, conn driver.Conn, db string) map[string]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := map[string]uint64{}
	for name, q := range map[string]string{
		"alerts":             "SELECT count() FROM {db}.alerts",
		"alerts of dev-1":    "SELECT count() FROM {db}.alerts WHERE device_id = 'dv_1'",
		"alerts_by_customer": "SELECT count() FROM {db}.alerts_by_customer FINAL",
		"alert_ids":          "SELECT count() FROM {db}.alert_ids FINAL",
		"alerts_daily":       "SELECT sum(alerts) FROM {db}.alerts_daily",
		"alerts_daily_jst":   "SELECT sum(alerts) FROM {db}.alerts_daily_jst",
		"customer day":       "SELECT sum(alerts) FROM {db}.alerts_customer_daily_jst",
		"latest receipt":     "SELECT toUInt64(max(received_at)) FROM {db}.alerts WHERE id = 'id_resent'",
	} {
		var n uint64
		if err := conn.QueryRow(ctx, strings.ReplaceAll(q, migrate.Placeholder, db)).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		out[name] = n
	}
	return out
}

// A database of the release before 0011 keeps its alerts through the
// upgrade, now one per device and id, and every read model is fed again;
// the file applies again over a run that failed right after the swap, and
// again over a complete one, with the same result.
func TestUpgradeKeysAlertsByDevice(t *testing.T) {
	conn, db := chtest.EmptyDatabase(t)
	rest := applyUpTo(t, conn, db, "0011_alerts_keyed_by_device.sql")
	t0 := time.Date(2026, 11, 20, 1, 2, 5, 0, time.UTC)
	insertAlert(t, conn, db, "id_shared", "dv_1", 3, t0)
	insertAlert(t, conn, db, "id_shared", "dv_2", 1, t0.Add(time.Second)) // another device, same customer, same id
	insertAlert(t, conn, db, "id_resent", "dv_1", 2, t0)
	insertAlert(t, conn, db, "id_resent", "dv_1", 2, t0.Add(time.Minute))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	applied, err := migrate.Apply(ctx, conn, db)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(rest) || applied[0] != rest[0].Name {
		t.Fatalf("applied %v, want %d migrations from %s", applied, len(rest), rest[0].Name)
	}
	want := map[string]uint64{"alerts": 3, "alerts of dev-1": 2, "alerts_by_customer": 3, "alert_ids": 3,
		"alerts_daily": 3, "alerts_daily_jst": 3, "customer day": 2, "latest receipt": uint64(t0.Add(time.Minute).Unix())}
	check := func(when string) {
		t.Helper()
		got := counts(t, conn, db)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %d, want %d", when, k, got[k], v)
			}
		}
	}
	check("after the upgrade")
	if err := conn.Exec(ctx, "OPTIMIZE TABLE "+db+".alerts_log FINAL"); err != nil {
		t.Fatal(err)
	}
	check("after merging")

	// The views feed the read models from the new table.
	insertAlert(t, conn, db, "id_new", "dv_2", 3, t0)
	want["alerts"], want["alerts_by_customer"], want["alert_ids"], want["alerts_daily"], want["alerts_daily_jst"], want["customer day"] = 4, 4, 4, 4, 4, 3
	check("after a new alert")

	var stmts []string
	for _, m := range rest {
		if m.Name == "0011_alerts_keyed_by_device.sql" {
			stmts = m.Statements
		}
	}
	var swap int
	for i, s := range stmts {
		if strings.HasPrefix(s, "RENAME TABLE") {
			swap = i
		}
	}
	run(t, conn, db, stmts[:swap+1]) // a run that stopped right after the swap
	run(t, conn, db, stmts)          // and the file applied again
	check("after a failed run and a rerun")
	run(t, conn, db, stmts)
	check("after one more run")
}
