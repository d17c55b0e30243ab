package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/services/cmd/mimamori/cli"
	"github.com/mimamori/mimamori/services/notifier"
)

// The operator commands publish fault notices, maintenance announcements
// and notification settings; mistakes are usage errors and publish nothing.
func TestNoticeAndNotifyCommands(t *testing.T) {
	b, err := eventlog.StartBroker(eventlog.BrokerConfig{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	kcfg := eventlog.Config{Brokers: b.Addrs(), Partitions: 1, Replication: 1}
	prod, err := eventlog.NewProducer(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := eventlog.EnsureTopics(context.Background(), prod.Client(), kcfg); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MIMAMORI_KAFKA_BROKERS": b.Addrs()[0], "MIMAMORI_DATA_DIR": t.TempDir(),
		"MIMAMORI_KAFKA_PARTITIONS": "1", "MIMAMORI_NOTIFY_WEBHOOK_KEY": "operator test key"}
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := cli.Main(context.Background(), args, func(k string) string { return env[k] }, &out, io.Discard)
		return out.String(), err
	}
	soon := time.Now().Add(48 * time.Hour).Format(time.RFC3339)
	later := time.Now().Add(40 * 24 * time.Hour).Format(time.RFC3339)
	laterEnd := time.Now().Add(40*24*time.Hour + 2*time.Hour).Format(time.RFC3339)
	for _, bad := range [][]string{
		{"notice", "fault", "--level", "C", "--summary", "x"},
		{"notice", "fault", "--level", "A"},
		{"notice", "maintenance", "--summary", "x", "--starts", soon, "--ends", later},
		{"notice", "maintenance", "--summary", "x", "--starts", "tomorrow", "--ends", later},
		{"notify", "settings", "--customer", "cu_1", "--language", "fr"},
		{"notify", "settings", "--customer", "cu_1", "--severities", "4"},
		{"notify", "settings"},
	} {
		if _, err := run(bad...); err == nil || cli.ExitCode(err) != 2 {
			t.Errorf("%v: err = %v, want a usage error", bad, err)
		}
	}
	if _, err := run("notice", "fault", "--level", "A", "--summary", "通知の遅延", "--details", "調査中"); err != nil {
		t.Fatal(err)
	}
	if _, err := run("notice", "maintenance", "--summary", "定期メンテナンス", "--starts", later, "--ends", laterEnd); err != nil {
		t.Fatal(err)
	}
	if _, err := run("notice", "maintenance", "--summary", "緊急", "--starts", soon, "--ends", later, "--force"); err != nil {
		t.Fatal(err)
	}
	out, err := run("notify", "settings", "--customer", "cu_1", "--language", "en", "--severities", "3", "--webhook-url", "https://hooks.test/x")
	if err != nil {
		t.Fatal(err)
	}
	var printed map[string]string
	if err := json.Unmarshal([]byte(out), &printed); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if printed["webhook_secret"] != notifier.WebhookSecret([]byte("operator test key"), "cu_1", 1) {
		t.Fatalf("printed secret %q is not the one the notifier signs with", printed["webhook_secret"])
	}

	var got []events.Payload
	var raw []string
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err = eventlog.ReadToEnd(ctx, kcfg, []string{events.TopicOperations, events.TopicAccounts}, nil, func(r *kgo.Record, e events.Envelope) {
		if p, err := events.Decode(e); err == nil {
			got, raw = append(got, p), append(raw, string(r.Value))
		}
	})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("%d events published, want 4: %v", len(got), raw)
	}
	kinds := map[string]int{}
	for i, p := range got {
		kinds[p.EventType()]++
		if strings.Contains(raw[i], "whsec_") || strings.Contains(raw[i], "operator test key") {
			t.Fatalf("a secret reached the log: %s", raw[i])
		}
		if s, ok := p.(*events.NotificationSettingsChanged); ok && (s.Language != "en" || s.ImportantSeverities != "3" || s.WebhookURL != "https://hooks.test/x") {
			t.Fatalf("settings = %+v", s)
		}
	}
	if kinds[events.TypeFaultDeclared] != 1 || kinds[events.TypeMaintenanceAnnounced] != 2 || kinds[events.TypeNotificationSettingsChanged] != 1 {
		t.Fatalf("published %v", kinds)
	}
}
