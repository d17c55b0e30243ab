package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/notices"
	"github.com/mimamori/mimamori/services/notifier"
)

// operatorSource is the CloudEvents source of what operators publish.
const operatorSource = "mimamori/operator"

func (e *env) publishPayload(ctx context.Context, p events.Payload) error {
	ev, err := events.New(operatorSource, p, time.Now())
	if err != nil {
		return usageError{err.Error()}
	}
	prod, err := e.producer()
	if err != nil {
		return err
	}
	defer prod.Close()
	return prod.Publish(ctx, ev)
}

func parseTime(flag, v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return t, usageError{fmt.Sprintf("%s: want an RFC 3339 time like 2026-12-20T01:00:00+09:00, got %q", flag, v)}
	}
	return t, nil
}

// cmdNotice publishes a fault or a planned maintenance
// notice; the notifier mails the customers concerned.
func cmdNotice(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || (args[0] != "fault" && args[0] != "maintenance" && args[0] != "firmware") {
		e.flags.Usage()
		return usageError{"notice: want `notice fault`, `notice maintenance` or `notice firmware`"}
	}
	sub := args[0]
	level := e.flags.String("level", "", "fault level A, B or Z (fault; Z is recorded but not mailed)")
	customers := e.flags.String("customers", "*", "customer IDs, comma-separated, or * for all")
	summary := e.flags.String("summary", "", "one-line summary (required)")
	details := e.flags.String("details", "", "details for the mail body")
	started := e.flags.String("started", "", "fault start, RFC 3339 (fault; default now)")
	starts := e.flags.String("starts", "", "maintenance start, RFC 3339 (maintenance, required)")
	ends := e.flags.String("ends", "", "maintenance end, RFC 3339 (maintenance, required)")
	version := e.flags.String("version", "", "firmware version (firmware, required)")
	available := e.flags.String("available", "", "when appliances start updating, RFC 3339 (firmware; default now)")
	force := e.flags.Bool("force", false, "maintenance: announce even if it starts less than 30 days from now (R-54 asks for one month)")
	if _, err := e.parse(args[1:]); err != nil {
		return err
	}
	if *summary == "" {
		return usageError{"notice: --summary is required"}
	}
	if sub == "maintenance" && (*starts == "" || *ends == "") {
		return usageError{"notice maintenance: --starts and --ends are required"}
	}
	req := notices.Request{Kind: sub, Level: *level, Customers: *customers, Summary: *summary, Details: *details,
		Version: *version, Force: *force}
	for _, t := range []struct {
		flag, v string
		dst     *time.Time
	}{{"--started", *started, &req.Started}, {"--starts", *starts, &req.Starts}, {"--ends", *ends, &req.Ends},
		{"--available", *available, &req.Available}} {
		if t.v == "" {
			continue
		}
		v, err := parseTime(t.flag, t.v)
		if err != nil {
			return err
		}
		*t.dst = v
	}
	p, err := notices.Build(req, time.Now())
	if err != nil {
		return usageError{err.Error()}
	}
	if err := e.publishPayload(ctx, p); err != nil {
		return err
	}
	out := map[string]string{"type": p.EventType(), "notice_id": p.Key()}
	if f, ok := p.(*events.FaultDeclared); ok {
		out["level"] = f.Level
		out["mailed"] = map[bool]string{true: "yes", false: "no (level Z is not reported to customers)"}[f.Level != events.FaultLevelZ]
	}
	return e.printJSON(out)
}

// cmdNotify changes a customer's notification settings. The settings are
// replaced as a whole; the webhook secret is printed when a webhook is set.
func cmdNotify(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "settings" {
		e.flags.Usage()
		return usageError{"notify: want `notify settings`"}
	}
	customer := e.flags.String("customer", "", "customer ID (required)")
	sev := e.flags.String("severities", "3,2", "severities mailed as important, comma-separated (3 = ★★★, 2 = ★★☆, 1 = ★☆☆)")
	lang := e.flags.String("language", events.LangJapanese, "language of mail: ja or en")
	hook := e.flags.String("webhook-url", "", "URL that receives signed JSON POSTs (empty: no webhook)")
	version := e.flags.Int("secret-version", 1, "webhook secret version; bump it to rotate the secret")
	if _, err := e.parse(args[1:]); err != nil {
		return err
	}
	if *customer == "" {
		return usageError{"notify settings: --customer is required"}
	}
	s := &events.NotificationSettingsChanged{CustomerID: *customer, ImportantSeverities: *sev, Language: *lang,
		WebhookURL: *hook, WebhookSecretVersion: *version, ChangedAt: time.Now().UTC()}
	if err := s.Validate(); err != nil {
		return usageError{"notify settings: " + err.Error()}
	}
	out := map[string]any{"customer_id": *customer, "important_severities": *sev, "language": *lang}
	if *hook != "" {
		key := []byte(e.cfg.NotifyWebhookKey)
		if len(key) == 0 {
			k, err := notifier.LoadOrCreateKey(notifier.KeyFile(e.cfg.DataDir))
			if err != nil {
				return err
			}
			key = k
		}
		out["webhook_url"] = *hook
		out["webhook_secret"] = notifier.WebhookSecret(key, *customer, *version)
		out["webhook_signature"] = `X-Mimamori-Signature: sha256=hex(HMAC-SHA256(secret, X-Mimamori-Timestamp + "." + body))`
	}
	if err := e.publishPayload(ctx, s); err != nil {
		return err
	}
	return e.printJSON(out)
}
