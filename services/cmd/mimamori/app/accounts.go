package app

import (
	"context"
	"net/url"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/portal-api/accounts"
)

// accounts builds the accounts owner served by the portal. It mails through
// the configured relay, or the embedded mailbox.
func (a *App) accounts() (*accounts.Service, error) {
	cfg := a.p.Cfg
	key, err := accounts.LoadOrCreateKey(accounts.KeyFile(cfg.DataDir))
	if err != nil {
		return nil, err
	}
	portalURL, err := a.portalURL()
	if err != nil {
		return nil, err
	}
	mailer, err := a.mailer()
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
	svc, err := accounts.New(accounts.Config{PortalURL: portalURL}, a.p.Kafka, prod, mailer, a.smsSender(),
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
// the embedded sink, which keeps the messages in memory and sends nothing
// (the embedded mailbox's page lists them).
func (a *App) smsSender() accounts.SMSSender {
	if a.sms != nil {
		return a.sms
	}
	cfg := a.p.Cfg
	if cfg.SMSGatewayURL == "" {
		a.p.Log.Info("SMS codes stay in the embedded sink (shown on the mailbox page): set --sms-gateway-url to send them", "service", "accounts")
		a.smsSink = &accounts.SMSSink{}
		a.sms = a.smsSink
		return a.sms
	}
	if u, err := url.Parse(cfg.SMSGatewayURL); err == nil {
		a.p.Log.Info("SMS codes go to the SMS gateway", "service", "accounts", "host", u.Host)
	}
	a.sms = &accounts.HTTPGateway{URL: cfg.SMSGatewayURL, Token: cfg.SMSGatewayToken}
	return a.sms
}
