package app

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/infra/admin"
	"github.com/mimamori/mimamori/services/mailbox"
	"github.com/mimamori/mimamori/services/notifier"
	"github.com/mimamori/mimamori/services/smtp"
	"github.com/mimamori/mimamori/services/watchdog"
)

// watchdog adds the liveness watchdog.
func (a *App) watchdog() error {
	cfg := a.p.Cfg
	log := a.p.Log.With("service", "watchdog")
	prod, err := eventlog.NewProducer(a.p.Kafka)
	if err != nil {
		return err
	}
	w, err := watchdog.New(watchdog.Config{Threshold: cfg.WatchdogThreshold, Debounce: cfg.WatchdogDebounce,
		SilencePeriod: cfg.WatchdogSilence, InstanceID: cfg.InstanceID}, a.p.Kafka, prod, log, a.reg)
	if err != nil {
		prod.Close()
		return err
	}
	a.parts = append(a.parts, func(ctx context.Context) error {
		defer prod.Close()
		return w.Run(ctx)
	})
	return nil
}

// notifier adds the notifier.
func (a *App) notifier() error {
	cfg := a.p.Cfg
	log := a.p.Log.With("service", "notifier")
	mailer, err := a.mailer()
	if err != nil {
		return err
	}
	key := []byte(cfg.NotifyWebhookKey)
	if len(key) == 0 {
		if key, err = notifier.LoadOrCreateKey(notifier.KeyFile(cfg.DataDir)); err != nil {
			return err
		}
	}
	portalURL, err := a.portalURL()
	if err != nil {
		return err
	}
	prod, err := eventlog.NewProducer(a.p.Kafka)
	if err != nil {
		return err
	}
	n, err := notifier.New(notifier.Config{PortalURL: portalURL, RepeatWindow: cfg.NotifyRepeatWindow,
		HourlyCap: cfg.NotifyHourlyCap, WebhookKey: key, InstanceID: cfg.InstanceID, WebhookTimeout: cfg.NotifyWebhookTimeout,
		WebhookGiveUp: cfg.NotifyWebhookGiveUp, MailGiveUp: cfg.NotifyMailGiveUp}, a.p.Kafka, prod, mailer, log, a.reg)
	if err != nil {
		prod.Close()
		return fmt.Errorf("notifier: %w", err)
	}
	a.parts = append(a.parts, func(ctx context.Context) error {
		defer prod.Close()
		return n.Run(ctx)
	})
	return nil
}

// mailer is a client of the configured relay, or else of the embedded
// mailbox (started at the first call).
func (a *App) mailer() (*smtp.Mailer, error) {
	if err := a.mailbox(); err != nil {
		return nil, err
	}
	return smtp.New(a.smtpConfig())
}

// mailbox starts the embedded mailbox and serves its page, once, when no
// SMTP relay is configured. It closes after every service has stopped
// (App.close), so a batch in flight still reaches it.
func (a *App) mailbox() error {
	cfg := a.p.Cfg
	if cfg.SMTPHost != "" || a.box != nil {
		return nil
	}
	box, err := mailbox.Start(cfg.MailboxSMTPAddr)
	if err != nil {
		return err
	}
	a.closers = append(a.closers, func() { _ = box.Close() })
	ln, err := a.listen(cfg.MailboxAddr)
	if err != nil {
		return err
	}
	a.box = box
	a.p.Endpoints.Mailbox = "http://" + ln.Addr().String()
	a.p.Endpoints.MailboxSMTP = box.Addr()
	// The SMS sink, if any, is made while the services are built; the page
	// reads it when served, after New.
	box.ShowTexts(func() []mailbox.Text {
		if a.smsSink == nil {
			return nil
		}
		var out []mailbox.Text
		for _, m := range a.smsSink.Messages() {
			out = append(out, mailbox.Text{To: m.To, Body: m.Body, At: m.At})
		}
		return out
	})
	a.parts = append(a.parts, func(ctx context.Context) error { return admin.Serve(ctx, ln, box.Handler(), a.p.Log) })
	a.p.Log.Info("embedded mailbox", "page", a.p.Endpoints.Mailbox, "smtp", box.Addr())
	return nil
}

// smtpConfig is how the notifier and the accounts owner reach the relay:
// the configured one, or else the embedded mailbox (plain text, no
// login).
func (a *App) smtpConfig() smtp.Config {
	cfg := a.p.Cfg
	if cfg.SMTPHost == "" {
		host, port, _ := net.SplitHostPort(a.p.Endpoints.MailboxSMTP)
		p, _ := strconv.Atoi(port)
		return smtp.Config{Host: host, Port: p, Security: smtp.SecurityNone, From: cfg.SMTPFrom}
	}
	return smtp.Config{Host: cfg.SMTPHost, Port: cfg.SMTPPort, Security: cfg.SMTPSecurity,
		User: cfg.SMTPUser, Password: cfg.SMTPPassword, From: cfg.SMTPFrom}
}
