package platform_test

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/services/cmd/mimamori/config"
	"github.com/mimamori/mimamori/services/cmd/mimamori/platform"
)

// A platform started against a cluster whose devices topic has the
// broker's default retention (seven days) refuses to run, before it
// writes anything, and says which command fixes it.
func TestOpenRefusesATopicThatWouldLoseEvents(t *testing.T) {
	b, err := eventlog.StartBroker(eventlog.BrokerConfig{Dir: t.TempDir(), Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopics(ctx, 1, 1, nil, "devices"); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	config.Register(fs)
	env := map[string]string{"MIMAMORI_DATA_DIR": t.TempDir(), "MIMAMORI_KAFKA_BROKERS": strings.Join(b.Addrs(), ","),
		"MIMAMORI_KAFKA_PARTITIONS": "1", "MIMAMORI_CLICKHOUSE_ADDR": "127.0.0.1:1"}
	cfg, err := config.Load(fs, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	p, err := platform.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		p.Close()
		t.Fatal("the platform started on a devices topic that deletes events after seven days")
	}
	for _, s := range []string{"devices: retention.ms=604800000", "kafka-configs.sh --bootstrap-server " + b.Addrs()[0] +
		" --alter --entity-type topics --entity-name devices --add-config retention.ms=-1,retention.bytes=-1,cleanup.policy=delete"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("the refusal does not say %q:\n%v", s, err)
		}
	}
	// The topic is left as the operator made it.
	rcs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, "devices")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rcs[0].Configs {
		if c.Key == "retention.ms" && c.MaybeValue() != "604800000" {
			t.Errorf("the refusal changed the operator's topic: retention.ms=%s", c.MaybeValue())
		}
	}
}
