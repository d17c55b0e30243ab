package notifier

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/mimamori/mimamori/events/retry"
)

// permanent marks a failure that retrying cannot cure (a 5xx reply, a
// refused webhook). Anything else is retried with backoff.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

func isPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// later is a temporary failure whose server said when to try again
// (Retry-After).
type later struct {
	error
	after time.Duration
}

func (l later) Unwrap() error { return l.error }

// retryAfter is how long err's server asked to wait, or 0.
func retryAfter(err error) time.Duration {
	var l later
	if errors.As(err, &l) {
		return l.after
	}
	return 0
}

// SMTP security modes.
const (
	SecurityStartTLS      = "starttls"      // STARTTLS required (port 587)
	SecurityTLS           = "tls"           // implicit TLS (port 465)
	SecurityOpportunistic = "opportunistic" // STARTTLS when offered
	SecurityNone          = "none"          // plain text (local relays, the embedded mailbox)
)

// SMTPConfig says how to reach the relay.
type SMTPConfig struct {
	Host     string
	Port     int
	Security string
	User     string
	Password string
	From     string // "mimamori <noreply@example.jp>"
	TLS      *tls.Config
	Timeout  time.Duration
}

// Mailer sends one message per call through go-mail.
type Mailer struct {
	cfg    SMTPConfig
	from   string
	domain string
}

// NewMailer checks the configuration.
func NewMailer(cfg SMTPConfig) (*Mailer, error) {
	if cfg.Host == "" {
		return nil, errors.New("smtp: host is required")
	}
	if cfg.Security == "" {
		cfg.Security = SecurityStartTLS
	}
	if cfg.Port == 0 {
		cfg.Port = map[string]int{SecurityTLS: 465, SecurityNone: 25}[cfg.Security]
		if cfg.Port == 0 {
			cfg.Port = 587
		}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.From == "" {
		cfg.From = "mimamori <noreply@mimamori.local>"
	}
	addr, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("smtp: from address %q: %w", cfg.From, err)
	}
	switch cfg.Security {
	case SecurityStartTLS, SecurityTLS, SecurityOpportunistic, SecurityNone:
	default:
		return nil, fmt.Errorf("smtp: security must be starttls, tls, opportunistic or none, got %q", cfg.Security)
	}
	_, domain, _ := strings.Cut(addr.Address, "@")
	return &Mailer{cfg: cfg, from: cfg.From, domain: domain}, nil
}

// MessageID is the Message-ID of a notification: the same on every
// attempt, so a duplicate caused by a crash is recognisable as one.
func (m *Mailer) MessageID(notificationID string) string { return notificationID + "@" + m.domain }

func (m *Mailer) client() (*gomail.Client, error) {
	opts := []gomail.Option{gomail.WithPort(m.cfg.Port), gomail.WithTimeout(m.cfg.Timeout)}
	switch m.cfg.Security {
	case SecurityTLS:
		opts = append(opts, gomail.WithSSL())
	case SecurityStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case SecurityOpportunistic:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	case SecurityNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if m.cfg.TLS != nil {
		opts = append(opts, gomail.WithTLSConfig(m.cfg.TLS))
	}
	if m.cfg.User != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(m.cfg.User), gomail.WithPassword(m.cfg.Password))
	}
	return gomail.NewClient(m.cfg.Host, opts...)
}

// Send delivers one text message. A permanent failure is wrapped in
// permanent; the error never contains the password.
func (m *Mailer) Send(ctx context.Context, to, notificationID, subject, body string, date time.Time) error {
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(m.from); err != nil {
		return permanent{fmt.Errorf("from: %w", err)}
	}
	if err := msg.To(to); err != nil {
		return permanent{fmt.Errorf("recipient %q: %w", to, err)}
	}
	msg.Subject(subject)
	msg.SetMessageIDWithValue(m.MessageID(notificationID))
	msg.SetDateWithValue(date)
	msg.SetUserAgent("mimamori")
	msg.SetBodyString(gomail.TypeTextPlain, body)
	c, err := m.client()
	if err != nil {
		return permanent{err}
	}
	err = c.DialAndSendWithContext(ctx, msg)
	if err == nil {
		return nil
	}
	var se *gomail.SendError
	if errors.As(err, &se) && !se.IsTemp() && se.ErrorCode() >= 500 && se.ErrorCode() < 600 {
		return permanent{fmt.Errorf("smtp %d: %w", se.ErrorCode(), err)}
	}
	return fmt.Errorf("smtp: %w", err)
}

// WebhookSecret derives a customer's webhook signing secret from the
// notifier's key; bumping version rotates it. The secret is never logged
// nor written to the log.
func WebhookSecret(key []byte, customerID string, version int) string {
	h := hmac.New(sha256.New, key)
	fmt.Fprintf(h, "webhook|%s|%d", customerID, version)
	return "whsec_" + hex.EncodeToString(h.Sum(nil))
}

// Sign is the X-Mimamori-Signature of a webhook body:
// "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)).
func Sign(secret, timestamp string, body []byte) string {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(timestamp))
	h.Write([]byte("."))
	h.Write(body)
	return "sha256=" + hex.EncodeToString(h.Sum(nil))
}

// Webhook header names.
const (
	HeaderSignature = "X-Mimamori-Signature"
	HeaderTimestamp = "X-Mimamori-Timestamp"
	HeaderDelivery  = "X-Mimamori-Delivery" // the notification ID: receivers deduplicate on it
)

func postWebhook(ctx context.Context, hc *http.Client, url, secret, deliveryID string, body []byte, now time.Time) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return permanent{fmt.Errorf("webhook request: %w", err)}
	}
	stamp := strconv.FormatInt(now.Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mimamori-webhook/1")
	req.Header.Set(HeaderTimestamp, stamp)
	req.Header.Set(HeaderDelivery, deliveryID)
	req.Header.Set(HeaderSignature, Sign(secret, stamp, body))
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		err := fmt.Errorf("webhook: HTTP %d", resp.StatusCode)
		if d := retry.RetryAfter(resp.Header.Get("Retry-After"), time.Now()); d > 0 {
			return later{err, d}
		}
		return err
	default:
		return permanent{fmt.Errorf("webhook: HTTP %d", resp.StatusCode)}
	}
}
