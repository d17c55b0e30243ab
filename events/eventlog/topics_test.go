package eventlog_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
)

// Every topic the platform creates keeps its events forever: the broker's
// default (seven days on stock Kafka, and on the embedded broker) would
// delete the log that replay rebuilds the projections from.
func TestTopicsAreCreatedToKeepEventsForever(t *testing.T) {
	_, cfg := newBroker(t, t.TempDir())
	cl := client(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	names := make([]string, 0, len(events.AllTopics()))
	for _, topic := range events.AllTopics() {
		names = append(names, cfg.Topic(topic))
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	if len(rcs) != len(names) {
		t.Fatalf("described %d topics, want %d", len(rcs), len(names))
	}
	for _, rc := range rcs {
		got := map[string]string{}
		for _, c := range rc.Configs {
			got[c.Key] = c.MaybeValue()
		}
		if got["retention.ms"] != "-1" || got["retention.bytes"] != "-1" || got["cleanup.policy"] != "delete" {
			t.Errorf("topic %s: retention.ms=%s retention.bytes=%s cleanup.policy=%s; want -1, -1, delete",
				rc.Name, got["retention.ms"], got["retention.bytes"], got["cleanup.policy"])
		}
	}
	if err := eventlog.CheckTopics(ctx, cl, cfg); err != nil {
		t.Fatal(err)
	}
}

// Topics that exist with the broker's default retention, a size limit or
// compaction are refused, each named with the command that fixes it; once
// the policy is applied they pass.
func TestCheckTopicsRefusesRetentionThatLosesEvents(t *testing.T) {
	b, err := eventlog.StartBroker(eventlog.BrokerConfig{Dir: t.TempDir(), Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cfg := eventlog.Config{Brokers: b.Addrs(), Partitions: 1, Replication: 1, TopicPrefix: "old."}
	cl := client(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	// What an older version (or a hand-made cluster) left: defaults, a
	// compacted topic, a size limit.
	if _, err := adm.CreateTopics(ctx, 1, 1, nil, cfg.Topic(events.TopicDevices)); err != nil {
		t.Fatal(err)
	}
	compact, limit := "compact", "1073741824"
	if _, err := adm.CreateTopics(ctx, 1, 1, map[string]*string{"cleanup.policy": &compact}, cfg.Topic(events.TopicAccounts)); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopics(ctx, 1, 1, map[string]*string{"retention.bytes": &limit}, cfg.Topic(events.TopicAlerts)); err != nil {
		t.Fatal(err)
	}
	if err := eventlog.EnsureTopics(ctx, cl, cfg); err != nil {
		t.Fatal(err)
	}
	err = eventlog.CheckTopics(ctx, cl, cfg)
	var rerr *eventlog.RetentionError
	if !errors.As(err, &rerr) {
		t.Fatalf("CheckTopics = %v, want a *RetentionError", err)
	}
	var bad []string
	for _, p := range rerr.Topics {
		bad = append(bad, p.Topic)
	}
	want := []string{"old.accounts", "old.appliance.alerts", "old.devices"}
	if strings.Join(bad, " ") != strings.Join(want, " ") {
		t.Fatalf("refused topics %v, want %v", bad, want)
	}
	msg := err.Error()
	for _, s := range []string{
		"old.devices: retention.ms=604800000 (want -1: kept forever)",
		"cleanup.policy=compact (want delete: never compacted)",
		"retention.bytes=1073741824 (want -1: no size limit)",
		"kafka-configs.sh --bootstrap-server " + b.Addrs()[0] + " --alter --entity-type topics --entity-name old.devices --add-config retention.ms=-1,retention.bytes=-1,cleanup.policy=delete",
	} {
		if !strings.Contains(msg, s) {
			t.Errorf("the refusal does not say %q:\n%s", s, msg)
		}
	}
	if err := eventlog.ApplyTopicPolicy(ctx, cl, cfg); err != nil {
		t.Fatal(err)
	}
	if err := eventlog.CheckTopics(ctx, cl, cfg); err != nil {
		t.Fatalf("after applying the policy: %v", err)
	}
}

func client(t *testing.T, cfg eventlog.Config) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
