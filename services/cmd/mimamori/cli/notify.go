package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/notices"
	"github.com/mimamori/mimamori/services/cmd/mimamori/config"
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

// noticeCmd publishes a fault or a planned maintenance
// notice, which the notifier mails to the customers concerned, or a
// firmware-update notice (portal only).
type noticeCmd struct {
	Fault       noticeFaultCmd       `cmd:"" help:"publish a fault notice of level A, B or Z (A and B are mailed)"`
	Maintenance noticeMaintenanceCmd `cmd:"" help:"announce a planned maintenance (customers are mailed)"`
	Firmware    noticeFirmwareCmd    `cmd:"" help:"announce a firmware update (portal only)"`
}

func (noticeCmd) missing() string {
	return "notice: want `notice fault`, `notice maintenance` or `notice firmware`"
}

// noticeFlags are the flags every kind of notice has.
type noticeFlags struct {
	Customers string `default:"*" help:"customer IDs, comma-separated, or * for all"`
	Summary   string `help:"one-line summary (required)"`
	Details   string `help:"details for the mail body"`
	Settings
}

func (noticeFlags) groups() []config.Group { return kafkaGroups() }

type noticeFaultCmd struct {
	Level   string `help:"fault level A, B or Z (Z is recorded but not mailed)"`
	Started string `help:"fault start, RFC 3339 (default now)"`
	noticeFlags
}

func (c noticeFaultCmd) run(ctx context.Context, e *env) error {
	req := c.request("fault")
	req.Level = c.Level
	if err := parseTimes(timeFlag{"--started", c.Started, &req.Started}); err != nil {
		return err
	}
	return publishNotice(ctx, e, req)
}

type noticeMaintenanceCmd struct {
	Starts string `help:"maintenance start, RFC 3339 (required)"`
	Ends   string `help:"maintenance end, RFC 3339 (required)"`
	Force  bool   `help:"announce even if it starts less than 30 days from now (R-54 asks for one month)"`
	noticeFlags
}

func (c noticeMaintenanceCmd) run(ctx context.Context, e *env) error {
	if c.Summary != "" && (c.Starts == "" || c.Ends == "") {
		return usageError{"notice maintenance: --starts and --ends are required"}
	}
	req := c.request("maintenance")
	req.Force = c.Force
	if err := parseTimes(timeFlag{"--starts", c.Starts, &req.Starts}, timeFlag{"--ends", c.Ends, &req.Ends}); err != nil {
		return err
	}
	return publishNotice(ctx, e, req)
}

type noticeFirmwareCmd struct {
	Version   string `help:"firmware version (required)"`
	Available string `help:"when appliances start updating, RFC 3339 (default now)"`
	noticeFlags
}

func (c noticeFirmwareCmd) run(ctx context.Context, e *env) error {
	req := c.request("firmware")
	req.Version = c.Version
	if err := parseTimes(timeFlag{"--available", c.Available, &req.Available}); err != nil {
		return err
	}
	return publishNotice(ctx, e, req)
}

func (f noticeFlags) request(kind string) notices.Request {
	return notices.Request{Kind: kind, Customers: f.Customers, Summary: f.Summary, Details: f.Details}
}

// timeFlag is a flag holding an RFC 3339 time, and where it goes.
type timeFlag struct {
	flag, v string
	dst     *time.Time
}

func parseTimes(flags ...timeFlag) error {
	for _, t := range flags {
		if t.v == "" {
			continue
		}
		v, err := parseTime(t.flag, t.v)
		if err != nil {
			return err
		}
		*t.dst = v
	}
	return nil
}

func publishNotice(ctx context.Context, e *env, req notices.Request) error {
	if req.Summary == "" {
		return usageError{"notice: --summary is required"}
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

type notifyCmd struct {
	Change notifySettingsCmd `cmd:"" name:"settings" help:"set a customer's notification settings (prints the webhook secret)"`
}

func (notifyCmd) missing() string { return "notify: want `notify settings`" }

// notifySettingsCmd changes a customer's notification settings. The
// settings are replaced as a whole; the webhook secret is printed when a
// webhook is set.
type notifySettingsCmd struct {
	Customer      string `help:"customer ID (required)"`
	Severities    string `default:"3,2" help:"severities mailed as important, comma-separated (3 = ★★★, 2 = ★★☆, 1 = ★☆☆)"`
	Language      string `default:"${lang_default}" help:"language of mail: ja or en"`
	WebhookURL    string `name:"webhook-url" help:"URL that receives signed JSON POSTs (empty: no webhook)"`
	SecretVersion int    `default:"1" help:"webhook secret version; bump it to rotate the secret"`
	Settings
}

func (notifySettingsCmd) groups() []config.Group {
	return []config.Group{config.Data, config.Kafka, config.Notify, config.Log}
}

func (c notifySettingsCmd) run(ctx context.Context, e *env) error {
	if c.Customer == "" {
		return usageError{"notify settings: --customer is required"}
	}
	s := &events.NotificationSettingsChanged{CustomerID: c.Customer, ImportantSeverities: c.Severities, Language: c.Language,
		WebhookURL: c.WebhookURL, WebhookSecretVersion: c.SecretVersion, ChangedAt: time.Now().UTC()}
	if err := s.Validate(); err != nil {
		return usageError{"notify settings: " + err.Error()}
	}
	out := map[string]any{"customer_id": c.Customer, "important_severities": c.Severities, "language": c.Language}
	if c.WebhookURL != "" {
		key := []byte(e.cfg.NotifyWebhookKey)
		if len(key) == 0 {
			k, err := notifier.LoadOrCreateKey(notifier.KeyFile(e.cfg.DataDir))
			if err != nil {
				return err
			}
			key = k
		}
		out["webhook_url"] = c.WebhookURL
		out["webhook_secret"] = notifier.WebhookSecret(key, c.Customer, c.SecretVersion)
		out["webhook_signature"] = `X-Mimamori-Signature: sha256=hex(HMAC-SHA256(secret, X-Mimamori-Timestamp + "." + body))`
	}
	if err := e.publishPayload(ctx, s); err != nil {
		return err
	}
	return e.printJSON(out)
}
