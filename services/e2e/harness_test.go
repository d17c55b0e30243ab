package e2e

import (
	"bytes"
	"context"
	"flag"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/mimamori/mimamori/analytics/chtest"
	"github.com/mimamori/mimamori/appliance/uplink"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/services/app"
	"github.com/mimamori/mimamori/services/config"
	"github.com/mimamori/mimamori/services/platform"
	"github.com/mimamori/mimamori/services/registry"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// stack is a whole platform in this process: a kfake broker and the shared
// clickhouse-server, with ingest, projector and portal running on port 0.
type stack struct {
	p      *platform.Platform
	cfg    config.Config
	broker *eventlog.Broker
	db     string
	conn   driver.Conn
	prod   *eventlog.Producer
}

func testConfig(t testing.TB, env map[string]string) config.Config {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	config.Register(fs)
	base := map[string]string{
		"MIMAMORI_DATA_DIR":         t.TempDir(),
		"MIMAMORI_INGEST_ADDR":      "127.0.0.1:0",
		"MIMAMORI_PORTAL_ADDR":      "127.0.0.1:0",
		"MIMAMORI_ADMIN_ADDR":       "127.0.0.1:0",
		"MIMAMORI_MAILBOX_ADDR":     "127.0.0.1:0",
		"MIMAMORI_KAFKA_PARTITIONS": "3",
		"MIMAMORI_LOG_LEVEL":        "warn",
	}
	for k, v := range env {
		base[k] = v
	}
	cfg, err := config.Load(fs, func(k string) string { return base[k] })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

// stackLogger keeps the platform's log (info and above) and prints its
// end when the test fails, so that a failure seen only in CI says what
// the services were doing.
func stackLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return testLogger()
	}
	var mu sync.Mutex
	var buf bytes.Buffer
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		t.Logf("the platform's log, last %d of %d lines:\n%s", min(len(lines), 150), len(lines),
			strings.Join(lines[max(len(lines)-150, 0):], "\n"))
	})
	return slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// newBroker starts a kfake broker persisting to a test folder.
func newBroker(t testing.TB) *eventlog.Broker {
	t.Helper()
	b, err := eventlog.StartBroker(eventlog.BrokerConfig{Dir: t.TempDir(), Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func newStack(t testing.TB) *stack {
	t.Helper()
	conn, db := chtest.EmptyDatabase(t)
	return newStackOn(t, conn, db, nil)
}

// newAnalystStack is newStack on the database `mimamori`, the only one the
// read-only analyst user may read.
func newAnalystStack(t testing.TB) *stack {
	t.Helper()
	conn := chtest.Conn(t)
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS mimamori"); err != nil {
			t.Errorf("drop mimamori: %v", err)
		}
	}
	drop()
	t.Cleanup(drop)
	return newStackOn(t, conn, "mimamori", nil)
}

// newStackOn runs the platform on database db; extra settings override
// the test defaults.
func newStackOn(t testing.TB, conn driver.Conn, db string, extra map[string]string) *stack {
	t.Helper()
	b := newBroker(t)
	env := map[string]string{
		"MIMAMORI_KAFKA_BROKERS":       b.Addrs()[0],
		"MIMAMORI_CLICKHOUSE_ADDR":     chtest.Server(t).Addr(),
		"MIMAMORI_CLICKHOUSE_DATABASE": db,
	}
	for k, v := range extra {
		env[k] = v
	}
	cfg := testConfig(t, env)
	ctx, cancel := context.WithCancel(context.Background())
	p, err := platform.Open(ctx, cfg, stackLogger(t))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	a, err := app.New(ctx, p, app.Services)
	if err != nil {
		cancel()
		p.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	prod, err := eventlog.NewProducer(p.Kafka)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		prod.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("services stopped with %v", err)
		}
		p.Close()
	})
	return &stack{p: p, cfg: cfg, broker: b, db: db, conn: conn, prod: prod}
}

// device registers a customer and an appliance and returns an uplink
// client holding the appliance's credential.
func (s *stack) device(t testing.TB) (registry.Registration, *uplink.Client) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	cust, err := registry.RegisterCustomer(ctx, s.prod, "株式会社テスト", "admin@test.example", "rs_test", now)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.RegisterDevice(ctx, s.prod, registry.DeviceSpec{Serial: "SN-" + cust, MAC: "00:11:22:33:44:55",
		Model: "MU-100", ManufacturedOn: "2026-04-01", CustomerID: cust}, now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := uplink.New(uplink.Config{BaseURL: s.p.Endpoints.Ingest, Credential: reg.Credential,
		CAFile: s.p.Endpoints.IngestCAFile, Gzip: true, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return reg, c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		ok, s := cond()
		if ok {
			return
		}
		last = s
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s (last: %s)", d, what, last)
}

func countAlerts(t testing.TB, s *stack, where string, args ...any) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n uint64
	q := "SELECT count() FROM " + s.db + ".alerts"
	if where != "" {
		q += " WHERE " + where
	}
	if err := s.conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
