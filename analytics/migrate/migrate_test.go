package migrate_test

import (
	"context"
	"slices"
	"testing"
	"time"

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
