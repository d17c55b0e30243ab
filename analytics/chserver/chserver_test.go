package chserver_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mimamori/mimamori/analytics"
	"github.com/mimamori/mimamori/analytics/chserver"
	"github.com/mimamori/mimamori/analytics/migrate"
)

func TestMissingBinary(t *testing.T) {
	_, err := chserver.Start(context.Background(), chserver.Config{Dir: t.TempDir(), Binary: filepath.Join(t.TempDir(), "no-such-clickhouse-server")})
	if !errors.Is(err, chserver.ErrNotInstalled) {
		t.Fatalf("err = %v, want ErrNotInstalled", err)
	}
	if want := "install it with apt-get update && apt-get install -y clickhouse-server clickhouse-client"; !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %q, want it to say %q", err, want)
	}
}

// TestRestartKeepsDataAndAnalystIsReadOnly runs one server twice on the same
// folder (starting a server is the slow part, so one test covers both).
func TestRestartKeepsDataAndAnalystIsReadOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	cfg := chserver.Config{Dir: dir, AnalystPassword: "s3cret&<x>", Logger: slog.New(slog.DiscardHandler)}

	srv, err := chserver.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	conn, err := analytics.Open(ctx, analytics.Config{Addr: srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	for _, db := range []string{"mimamori", "other"} {
		if _, err := migrate.Apply(ctx, conn, db); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil { // idempotent
		t.Fatalf("second Close: %v", err)
	}

	srv, err = chserver.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	conn, err = analytics.Open(ctx, analytics.Config{Addr: srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	applied, err := migrate.Apply(ctx, conn, "mimamori")
	if err != nil || len(applied) != 0 {
		t.Fatalf("after restart Apply applied %v, %v; want nothing (data kept)", applied, err)
	}

	analyst, err := analytics.Open(ctx, analytics.Config{Addr: srv.Addr(), User: "analyst", Password: cfg.AnalystPassword, Database: "mimamori"})
	if err != nil {
		t.Fatal(err)
	}
	defer analyst.Close()
	var n uint64
	if err := analyst.QueryRow(ctx, "SELECT count() FROM mimamori.alerts").Scan(&n); err != nil {
		t.Fatalf("analyst reads mimamori.alerts: %v", err)
	}
	for _, stmt := range []string{
		"CREATE TABLE mimamori.x (a String) ENGINE = Memory",
		"DROP TABLE mimamori.customers",
		"INSERT INTO mimamori.customers (customer_id) SELECT 'x'",
	} {
		if err := analyst.Exec(ctx, stmt); err == nil {
			t.Errorf("analyst may run %q, want refused", stmt)
		}
	}
	if err := analyst.QueryRow(ctx, "SELECT count() FROM other.alerts").Scan(&n); err == nil {
		t.Error("analyst reads other.alerts, want refused")
	}
	if _, err := analytics.Open(ctx, analytics.Config{Addr: srv.Addr(), User: "analyst", Password: "wrong", Database: "mimamori"}); err == nil {
		t.Error("analyst with a wrong password connected")
	}
}
