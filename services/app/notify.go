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

// notifier adds the notifier, and the embedded mailbox when no SMTP relay
// is configured.
func (a *App) notifier() error {
	cfg := a.p.Cfg
	log := a.p.Log.With("service", "notifier")
	var box *mailbox.Mailbox
	if cfg.SMTPHost == "" {
		var err error
		if box, err = mailbox.Start(cfg.MailboxSMTPAddr); err != nil {
			return err
		}
		ln, err := a.listen(cfg.MailboxAddr)
		if err != nil {
			_ = box.Close()
			return err
		}
		a.p.Endpoints.Mailbox = "http://" + ln.Addr().String()
		a.p.Endpoints.MailboxSMTP = box.Addr()
		if sink := a.sms; sink != nil {
			box.ShowTexts(func() []mailbox.Text {
				var out []mailbox.Text
				for _, m := range sink.Messages() {
					out = append(out, mailbox.Text{To: m.To, Body: m.Body, At: m.At})
				}
				return out
			})
		}
		a.parts = append(a.parts, func(ctx context.Context) error { return admin.Serve(ctx, ln, box.Handler(), a.p.Log) })
		log.Info("embedded mailbox", "page", a.p.Endpoints.Mailbox, "smtp", box.Addr())
	}
	closeBox := func() {
		if box != nil {
			_ = box.Close()
		}
	}
	mailer, err := smtp.New(a.smtpConfig())
	if err != nil {
		closeBox()
		return err
	}
	key := []byte(cfg.NotifyWebhookKey)
	if len(key) == 0 {
		if key, err = notifier.LoadOrCreateKey(notifier.KeyFile(cfg.DataDir)); err != nil {
			closeBox()
			return err
		}
	}
	portalURL := cfg.PortalURL
	if portalURL == "" {
		portalURL = a.p.Endpoints.Portal
	}
	if portalURL == "" {
		portalURL = "http://" + cfg.PortalAddr
	}
	prod, err := eventlog.NewProducer(a.p.Kafka)
	if err != nil {
		closeBox()
		return err
	}
	n, err := notifier.New(notifier.Config{PortalURL: portalURL, RepeatWindow: cfg.NotifyRepeatWindow,
		HourlyCap: cfg.NotifyHourlyCap, WebhookKey: key, InstanceID: cfg.InstanceID, WebhookTimeout: cfg.NotifyWebhookTimeout,
		WebhookGiveUp: cfg.NotifyWebhookGiveUp, MailGiveUp: cfg.NotifyMailGiveUp}, a.p.Kafka, prod, mailer, log, a.reg)
	if err != nil {
		prod.Close()
		closeBox()
		return fmt.Errorf("notifier: %w", err)
	}
	a.parts = append(a.parts, func(ctx context.Context) error {
		// The embedded relay stops only after the notifier has finished
		// the batch in flight.
		defer closeBox()
		defer prod.Close()
		return n.Run(ctx)
	})
	return nil
}

// smtpConfig is how the notifier and the accounts owner reach the relay:
// the configured one, or else the embedded mailbox (plain text, no
// login), once the notifier started it.
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
