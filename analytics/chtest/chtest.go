// Package chtest gives tests a real, throwaway clickhouse-server: one server
// per test binary, started on first use and stopped when the tests end, and
// a fresh, uniquely named database per test.
//
//	func TestMain(m *testing.M) { chtest.Main(m) }
//
//	func TestX(t *testing.T) {
//		conn, db := chtest.Database(t) // migrated, dropped at cleanup
//		...
//	}
package chtest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/mimamori/mimamori/analytics"
	"github.com/mimamori/mimamori/analytics/chserver"
	"github.com/mimamori/mimamori/analytics/migrate"
)

// AnalystPassword is the analyst user's password on the shared server.
const AnalystPassword = "analyst-test-password"

// shared is the one server of this test binary; package state is what
// TestMain-scoped fixtures need.
var shared struct {
	once   sync.Once
	server *chserver.Server
	dir    string
	err    error
	seq    atomic.Int64
}

// Main runs the tests of a package and stops the shared server afterwards.
// Call it from TestMain; the server starts only if a test asks for it. The
// testing package exits with m.Run's code when TestMain returns.
func Main(m *testing.M) {
	m.Run()
	if shared.server != nil {
		if err := shared.server.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "chtest:", err)
		}
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
}

// Server returns the shared server, starting it on first use.
func Server(tb testing.TB) *chserver.Server {
	tb.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "chtest-")
		if shared.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		shared.server, shared.err = chserver.Start(ctx, chserver.Config{
			Dir:             shared.dir,
			AnalystPassword: AnalystPassword,
			Logger:          slog.New(slog.DiscardHandler),
		})
	})
	if shared.err != nil {
		tb.Fatalf("chtest: start clickhouse-server: %v", shared.err)
	}
	return shared.server
}

// Conn opens a connection to the shared server as the default user, closed
// when the test ends.
func Conn(tb testing.TB) driver.Conn {
	tb.Helper()
	return Open(tb, analytics.Config{Addr: Server(tb).Addr()})
}

// Open connects with cfg (Addr defaults to the shared server), closing the
// connection when the test ends.
func Open(tb testing.TB, cfg analytics.Config) driver.Conn {
	tb.Helper()
	if cfg.Addr == "" {
		cfg.Addr = Server(tb).Addr()
	}
	conn, err := analytics.Open(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("chtest: %v", err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// EmptyDatabase returns a connection and the name of a database that does
// not exist yet, dropped (if created) when the test ends.
func EmptyDatabase(tb testing.TB) (driver.Conn, string) {
	tb.Helper()
	conn := Conn(tb)
	db := fmt.Sprintf("t%d_%d", os.Getpid(), shared.seq.Add(1))
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
			tb.Errorf("chtest: drop %s: %v", db, err)
		}
	})
	return conn, db
}

// Database is EmptyDatabase with every migration applied.
func Database(tb testing.TB) (driver.Conn, string) {
	tb.Helper()
	conn, db := EmptyDatabase(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := migrate.Apply(ctx, conn, db); err != nil {
		tb.Fatalf("chtest: %v", err)
	}
	return conn, db
}
