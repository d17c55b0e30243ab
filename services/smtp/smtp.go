// Package smtp sends mail through a relay: one text message per call, with
// a Message-ID the caller derives from its own ID, so that a message sent
// twice (a retry after a lost reply) shows as the duplicate it is. The
// notifier and the accounts owner both mail through it.
package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Security modes of the connection to the relay.
const (
	SecurityStartTLS      = "starttls"      // STARTTLS required (port 587)
	SecurityTLS           = "tls"           // implicit TLS (port 465)
	SecurityOpportunistic = "opportunistic" // STARTTLS when offered
	SecurityNone          = "none"          // plain text (local relays, the embedded mailbox)
)

// Config says how to reach the relay; zero values take the defaults.
type Config struct {
	Host     string
	Port     int    // by Security: 587, 465 for tls, 25 for none
	Security string // SecurityStartTLS unless set
	User     string // no authentication when empty
	Password string
	From     string      // "mimamori <noreply@example.jp>"
	TLS      *tls.Config // the relay's CA (RootCAs) and server name; nil: the system's
	Timeout  time.Duration
}

// Mailer sends one message per call through go-mail.
type Mailer struct {
	cfg    Config
	domain string
}

// New checks the configuration.
func New(cfg Config) (*Mailer, error) {
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
	return &Mailer{cfg: cfg, domain: domain}, nil
}

// PermanentError is a failure that sending again cannot cure: a 5xx reply
// of the relay, an address that does not parse. Its text is its cause's.
type PermanentError struct{ Err error }

func (p *PermanentError) Error() string { return p.Err.Error() }
func (p *PermanentError) Unwrap() error { return p.Err }

// IsPermanent tells whether err holds a PermanentError; any other failure
// is worth retrying.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// MessageID is the Message-ID (without angle brackets) of the message
// with the caller's ID id: the same on every attempt.
func (m *Mailer) MessageID(id string) string { return id + "@" + m.domain }

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

// Send delivers one text message, dated date, whose Message-ID derives
// from id (MessageID). A failure retrying cannot cure is a
// *PermanentError; the error never contains the password. One call is
// one attempt, bounded by Config.Timeout per step and by ctx: retries
// are the caller's.
func (m *Mailer) Send(ctx context.Context, to, id, subject, body string, date time.Time) error {
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(m.cfg.From); err != nil {
		return &PermanentError{fmt.Errorf("from: %w", err)}
	}
	if err := msg.To(to); err != nil {
		return &PermanentError{fmt.Errorf("recipient %q: %w", to, err)}
	}
	msg.Subject(subject)
	msg.SetMessageIDWithValue(m.MessageID(id))
	msg.SetDateWithValue(date)
	msg.SetUserAgent("mimamori")
	msg.SetBodyString(gomail.TypeTextPlain, body)
	c, err := m.client()
	if err != nil {
		return &PermanentError{err}
	}
	err = c.DialAndSendWithContext(ctx, msg)
	if err == nil {
		return nil
	}
	var se *gomail.SendError
	if errors.As(err, &se) && !se.IsTemp() && se.ErrorCode() >= 500 && se.ErrorCode() < 600 {
		return &PermanentError{fmt.Errorf("smtp %d: %w", se.ErrorCode(), err)}
	}
	return fmt.Errorf("smtp: %w", err)
}
