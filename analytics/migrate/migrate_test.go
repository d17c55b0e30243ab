package migrate_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimamori/mimamori/analytics"
	"github.com/mimamori/mimamori/analytics/chtest"
	"github.com/mimamori/mimamori/analytics/migrate"
)

func TestMain(m *testing.M) { chtest.Main(m) }

func TestApplyOnceAndRerunnable(t *testing.T) {
	conn, db := chtest.EmptyDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	all, err := migrate.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range all {
		want = append(want, m.Name)
	}
	if len(want) == 0 {
		t.Fatal("no embedded migrations")
	}

	got, err := migrate.Apply(ctx, conn, db)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("first Apply applied %v, want %v", got, want)
	}
	again, err := migrate.Apply(ctx, conn, db)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 0 {
		t.Fatalf("second Apply applied %v, want nothing", again)
	}
	recorded, err := migrate.Applied(ctx, conn, db)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(recorded, want) {
		t.Fatalf("schema_migrations holds %v, want %v", recorded, want)
	}

	for _, table := range []string{"alerts_log", "alerts", "alerts_daily", "heartbeats", "heartbeats_daily", "devices", "customers"} {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", db, table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("table %s.%s missing", db, table)
		}
	}
}

func TestRejectsUnsafeDatabaseName(t *testing.T) {
	for _, db := range []string{"", "a-b", "x; DROP DATABASE y", "1abc", "a.b"} {
		if err := migrate.ValidDatabase(db); err == nil {
			t.Errorf("ValidDatabase(%q) = nil, want an error", db)
		}
	}
}

func TestSplit(t *testing.T) {
	got := migrate.Split("-- comment; here\nCREATE TABLE a (x String);\n\nCREATE VIEW b AS\nSELECT 1;\n-- trailing\n")
	want := []string{"CREATE TABLE a (x String)", "CREATE VIEW b AS\nSELECT 1"}
	if !slices.Equal(got, want) {
		t.Fatalf("Split = %q, want %q", got, want)
	}
}

// Every process of the platform migrates at start, so replicas starting
// together migrate one database at once: one applies every migration
// (0011 moves alerts_log aside and back, which two runs interleaved would
// lose), the others wait and apply nothing, and the lock is gone after.
func TestConcurrentMigratorsApplyOnce(t *testing.T) {
	conn, db := chtest.EmptyDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	all, err := migrate.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	const migrators = 4
	applied := make([][]string, migrators)
	errs := make([]error, migrators)
	var wg sync.WaitGroup
	for i := range migrators {
		c := chtest.Open(t, analytics.Config{}) // a connection of its own, as another process has
		wg.Go(func() { applied[i], errs[i] = migrate.Apply(ctx, c, db) })
	}
	wg.Wait()
	total := 0
	for i := range migrators {
		if errs[i] != nil {
			t.Fatalf("migrator %d: %v", i, errs[i])
		}
		total += len(applied[i])
	}
	if total != len(all) {
		t.Fatalf("the migrators applied %v between them, want each of the %d migrations once", applied, len(all))
	}
	var tables []string
	rows, err := conn.Query(ctx, "SELECT name FROM system.tables WHERE database = ? AND name LIKE 'alerts_log%' OR database = ? AND name = ?", db, db, migrate.LockTable)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	if !slices.Equal(tables, []string{"alerts_log"}) {
		t.Fatalf("tables after the migrations: %v, want alerts_log alone (no copy left, no lock held)", tables)
	}
}

// A lock whose holder beats is waited for; one whose holder stopped
// beating (a migrator SIGKILLed mid-way) is taken over after LockStale,
// and the migrations are applied.
func TestMigrationLockIsALease(t *testing.T) {
	conn, db := chtest.EmptyDatabase(t)
	ctx := context.Background()
	if err := conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	table := db + "." + migrate.LockTable
	if err := conn.Exec(ctx, "CREATE TABLE "+table+" (holder String, at DateTime) ENGINE = Memory"); err != nil {
		t.Fatal(err)
	}
	beat := func(ago int) {
		t.Helper()
		if err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s (holder, at) SELECT 'other', now() - %d", table, ago)); err != nil {
			t.Fatal(err)
		}
	}
	beat(0) // a live holder
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	_, err := migrate.Apply(wctx, conn, db)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "another process is migrating") {
		t.Fatalf("Apply beside a live holder: %v, want it to wait", err)
	}
	if err := conn.Exec(ctx, "TRUNCATE TABLE "+table); err != nil {
		t.Fatal(err)
	}
	beat(int(migrate.LockStale/time.Second) + 5) // a holder that died
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	applied, err := migrate.Apply(actx, conn, db)
	if err != nil || len(applied) == 0 {
		t.Fatalf("Apply after the holder died: %v, %v", applied, err)
	}
}
