package app

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mimamori/mimamori/analytics/chtest"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/infra/testkit"
	"github.com/mimamori/mimamori/services/cmd/mimamori/config"
	"github.com/mimamori/mimamori/services/cmd/mimamori/platform"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// The services share the portal's address, the embedded mailbox and the
// embedded SMS sink; whichever order they are named in, the mail links go
// to the portal this process serves, the SMS codes of the accounts owner
// show on the mailbox page, and mail of both the accounts owner and the
// notifier reaches the embedded mailbox.
func TestServicesMayBeNamedInAnyOrder(t *testing.T) {
	_, db := chtest.Database(t)
	reversed := slices.Clone(Services)
	slices.Reverse(reversed)
	for _, order := range [][]string{Services, reversed} {
		t.Run(strings.Join(order, ","), func(t *testing.T) {
			b, err := eventlog.StartBroker(eventlog.BrokerConfig{Dir: t.TempDir(), Partitions: 1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(b.Close)
			env := map[string]string{"MIMAMORI_DATA_DIR": t.TempDir(), "MIMAMORI_KAFKA_BROKERS": b.Addrs()[0],
				"MIMAMORI_KAFKA_PARTITIONS": "1", "MIMAMORI_CLICKHOUSE_ADDR": chtest.Server(t).Addr(),
				"MIMAMORI_CLICKHOUSE_DATABASE": db, "MIMAMORI_INGEST_ADDR": "127.0.0.1:0", "MIMAMORI_PORTAL_ADDR": "127.0.0.1:0",
				"MIMAMORI_ADMIN_ADDR": "127.0.0.1:0", "MIMAMORI_MAILBOX_ADDR": "127.0.0.1:0"}
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			config.Register(fs)
			cfg, err := config.Load(fs, func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			p, err := platform.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			a, err := New(ctx, p, order)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("the services stopped with %v", err)
				}
			}()

			link, err := a.portalURL()
			if err != nil || link != p.Endpoints.Portal || strings.HasSuffix(link, ":0") {
				t.Fatalf("mail links go to %q (%v), want the portal served here, %q", link, err, p.Endpoints.Portal)
			}
			testkit.WaitFor(t, time.Minute, "the portal answers at the address of the mail links", func() (bool, string) {
				return getOK(link + "/healthz")
			})

			if err := a.smsSender().SendSMS(ctx, "+819012345678", "mimamori code 246810"); err != nil {
				t.Fatal(err)
			}
			for _, service := range []string{"accounts", "notifier"} {
				m, err := a.mailer()
				if err != nil {
					t.Fatal(err)
				}
				if err := m.Send(ctx, "ops@example.jp", service+"-1", "from the "+service, "body", time.Now()); err != nil {
					t.Fatalf("mail of the %s: %v", service, err)
				}
			}
			msgs := a.box.Messages()
			if len(msgs) != 2 || msgs[0].Subject != "from the accounts" || msgs[1].Subject != "from the notifier" {
				t.Fatalf("the embedded mailbox holds %+v, want the mail of the accounts owner and of the notifier", msgs)
			}
			testkit.WaitFor(t, time.Minute, "the mailbox page lists the SMS code", func() (bool, string) {
				ok, page := getOK(p.Endpoints.Mailbox + "/")
				return ok && strings.Contains(page, "mimamori code 246810"), page
			})
		})
	}
}

func getOK(url string) (bool, string) {
	resp, err := http.Get(url)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == http.StatusOK, resp.Status + " " + string(body)
}
