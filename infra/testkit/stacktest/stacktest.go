// Package stacktest runs the whole platform inside a test's process, as
// `mimamori run` starts it: an embedded Kafka broker of the test, the
// shared test clickhouse-server (analytics/chtest) and every service on
// local ports. The end-to-end tests (services/e2e) and the portal's
// browser test use it.
package stacktest

import (
	"context"
	"flag"
	"log/slog"
	"testing"

	"github.com/mimamori/mimamori/analytics/chtest"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/services/cmd/mimamori/app"
	"github.com/mimamori/mimamori/services/cmd/mimamori/config"
	"github.com/mimamori/mimamori/services/cmd/mimamori/platform"
)

// Stack is a running platform.
type Stack struct {
	P      *platform.Platform
	Broker *eventlog.Broker
	Prod   *eventlog.Producer // a producer on the stack's Kafka, for the test's own events
}

// Config loads the configuration of a test: a data folder of the test,
// local ports chosen by the system, 3 partitions, warnings only; env
// overrides any of it.
func Config(t testing.TB, env map[string]string) config.Config {
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

// Start starts a broker and runs every service on database db of the
// shared test server (the migrations are applied; the database is the
// test's to drop), with env overriding Config's defaults. Everything stops
// when the test ends.
func Start(t testing.TB, db string, env map[string]string, logger *slog.Logger) *Stack {
	t.Helper()
	b, err := eventlog.StartBroker(eventlog.BrokerConfig{Dir: t.TempDir(), Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	all := map[string]string{
		"MIMAMORI_KAFKA_BROKERS":       b.Addrs()[0],
		"MIMAMORI_CLICKHOUSE_ADDR":     chtest.Server(t).Addr(),
		"MIMAMORI_CLICKHOUSE_DATABASE": db,
	}
	for k, v := range env {
		all[k] = v
	}
	cfg := Config(t, all)
	ctx, cancel := context.WithCancel(context.Background())
	p, err := platform.Open(ctx, cfg, logger)
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
		cancel()
		<-done
		p.Close()
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
	return &Stack{P: p, Broker: b, Prod: prod}
}
