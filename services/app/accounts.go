package app

import (
	"context"
	"net/url"
	"sync"
	"time"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/portal-api/accounts"
	"github.com/mimamori/mimamori/services/smtp"
)

// accounts builds the accounts owner served by the portal. It mails through
// the configured relay, or the embedded mailbox once the notifier started it.
func (a *App) accounts() (*accounts.Service, error) {
	cfg := a.p.Cfg
	key, err := accounts.LoadOrCreateKey(accounts.KeyFile(cfg.DataDir))
	if err != nil {
		return nil, err
	}
	// One transactional ID for every portal process: the owner that starts
	// last fences the others, which then refuse account commands (503)
	// and report not ready, so two owners never both write.
	prod, err := eventlog.NewTxProducer(a.p.Kafka, a.p.Kafka.Topic(events.TopicAccounts)+".owner")
	if err != nil {
		return nil, err
	}
	portalURL := cfg.PortalURL
	if portalURL == "" {
		portalURL = a.p.Endpoints.Portal
	}
	m := &lazyMailer{a: a}
	svc, err := accounts.New(accounts.Config{PortalURL: portalURL}, a.p.Kafka, prod, m, a.smsSender(),
		key, a.p.Log.With("service", "accounts"))
	if err != nil {
		prod.Close()
		return nil, err
	}
	a.parts = append(a.parts, func(ctx context.Context) error {
		defer prod.Close()
		return svc.Run(ctx)
	})
	return svc, nil
}

// smsSender is the configured SMS gateway (config validated its URL), or
// the embedded sink, which keeps the messages in memory and sends nothing.
func (a *App) smsSender() accounts.SMSSender {
	cfg := a.p.Cfg
	if cfg.SMSGatewayURL == "" {
		a.p.Log.Info("SMS codes stay in the embedded sink (shown on the mailbox page): set --sms-gateway-url to send them", "service", "accounts")
		a.sms = &accounts.SMSSink{}
		return a.sms
	}
	if u, err := url.Parse(cfg.SMSGatewayURL); err == nil {
		a.p.Log.Info("SMS codes go to the SMS gateway", "service", "accounts", "host", u.Host)
	}
	return &accounts.HTTPGateway{URL: cfg.SMSGatewayURL, Token: cfg.SMSGatewayToken}
}

// lazyMailer resolves the SMTP settings at the first mail, when the
// embedded mailbox (started by the notifier) has its address.
type lazyMailer struct {
	a  *App
	mu sync.Mutex
	m  *smtp.Mailer
}

func (l *lazyMailer) Send(ctx context.Context, to, id, subject, body string, date time.Time) error {
	l.mu.Lock()
	if l.m == nil {
		m, err := smtp.New(l.a.smtpConfig())
		if err != nil {
			l.mu.Unlock()
			return err
		}
		l.m = m
	}
	m := l.m
	l.mu.Unlock()
	return m.Send(ctx, to, id, subject, body, date)
}
