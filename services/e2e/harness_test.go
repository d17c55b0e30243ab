package e2e

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/mimamori/mimamori/analytics/chtest"
	"github.com/mimamori/mimamori/appliance/uplink"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/infra/testkit"
	"github.com/mimamori/mimamori/infra/testkit/stacktest"
	"github.com/mimamori/mimamori/infra/testkit/testlog"
	"github.com/mimamori/mimamori/services/cmd/mimamori/platform"
	"github.com/mimamori/mimamori/services/registry"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// stack is a whole platform in this process: a kfake broker and the shared
// clickhouse-server, with ingest, projector and portal running on port 0.
type stack struct {
	p    *platform.Platform
	db   string
	conn driver.Conn
	prod *eventlog.Producer
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

// newBroker starts a kfake broker persisting to a test folder.
func newBroker(t testing.TB) *eventlog.Broker {
	t.Helper()
	b, _ := testkit.Kafka(t, 3, "")
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
	st := stacktest.Start(t, db, extra, testlog.New(t))
	return &stack{p: st.P, db: db, conn: conn, prod: st.Prod}
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
