package smtp_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/mimamori/mimamori/services/smtp"
	"github.com/mimamori/mimamori/services/tlsca"
)

// relay is a real SMTP server that, like a production relay, accepts mail
// only from an authenticated client over TLS.
type relay struct {
	mu       sync.Mutex
	received []string // "tls=<bool> from=<addr> <body>"
	logins   []string
}

type relaySession struct {
	r      *relay
	tls    bool
	authed bool
	from   string
}

func (s *relaySession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *relaySession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		s.r.mu.Lock()
		s.r.logins = append(s.r.logins, user+":"+pass)
		s.r.mu.Unlock()
		if user != "mimamori" || pass != "relay-secret" {
			return errors.New("invalid credentials")
		}
		s.authed = true
		return nil
	}), nil
}

func (s *relaySession) Mail(from string, _ *gosmtp.MailOptions) error {
	if !s.authed {
		return gosmtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *relaySession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if strings.HasPrefix(to, "unknown@") {
		return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
	}
	return nil
}

func (s *relaySession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.r.mu.Lock()
	s.r.received = append(s.r.received, "tls="+strconv.FormatBool(s.tls)+" from="+s.from+" "+string(b))
	s.r.mu.Unlock()
	return nil
}

func (s *relaySession) Reset()        {}
func (s *relaySession) Logout() error { return nil }

// startRelay serves on a fresh port; implicit says TLS from the first byte
// (port 465 style) rather than STARTTLS (port 587 style).
func startRelay(t *testing.T, implicit bool) (*relay, int, *tls.Config) {
	t.Helper()
	paths, err := tlsca.Ensure(t.TempDir(), []string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	srvTLS, err := tlsca.ServerTLS(paths.ServerCert, paths.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := tlsca.CertPool(paths.CACert)
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{}
	s := gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		return &relaySession{r: r, tls: isTLS}, nil
	}))
	s.Domain = "relay.test"
	s.TLSConfig = srvTLS
	s.AllowInsecureAuth = false // AUTH only after TLS
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if implicit {
		ln = tls.NewListener(ln, srvTLS)
	}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	return r, ln.Addr().(*net.TCPAddr).Port, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

func TestSecurityModes(t *testing.T) {
	for _, mode := range []string{smtp.SecurityStartTLS, smtp.SecurityTLS} {
		t.Run(mode, func(t *testing.T) {
			r, port, clientTLS := startRelay(t, mode == smtp.SecurityTLS)
			m, err := smtp.New(smtp.Config{Host: "127.0.0.1", Port: port, Security: mode,
				User: "mimamori", Password: "relay-secret", From: "mimamori <noreply@mimamori.example>",
				TLS: clientTLS, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := m.Send(ctx, "admin@customer.example", "nt_1", "★★★ test", "本文", time.Now()); err != nil {
				t.Fatalf("send over %s with auth: %v", mode, err)
			}
			r.mu.Lock()
			got := append([]string(nil), r.received...)
			r.mu.Unlock()
			if len(got) != 1 || !strings.HasPrefix(got[0], "tls=true from=noreply@mimamori.example") ||
				!strings.Contains(got[0], "Message-ID: <nt_1@mimamori.example>") {
				t.Fatalf("relay received %q, want one message over TLS with the notification's Message-ID", got)
			}

			// A wrong password is refused; the error never shows the password.
			bad, _ := smtp.New(smtp.Config{Host: "127.0.0.1", Port: port, Security: mode,
				User: "mimamori", Password: "wrong-secret", TLS: clientTLS, Timeout: 5 * time.Second})
			err = bad.Send(ctx, "admin@customer.example", "nt_2", "s", "b", time.Now())
			if err == nil {
				t.Fatal("a wrong relay password sent mail")
			}
			if strings.Contains(err.Error(), "wrong-secret") {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}

	// A client that does not trust the relay's certificate sends nothing.
	r, port, _ := startRelay(t, false)
	m, _ := smtp.New(smtp.Config{Host: "127.0.0.1", Port: port, Security: smtp.SecurityStartTLS,
		User: "mimamori", Password: "relay-secret", Timeout: 5 * time.Second})
	if err := m.Send(context.Background(), "a@b.example", "nt_3", "s", "b", time.Now()); err == nil {
		t.Fatal("mail went to a relay whose certificate is not trusted")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.received) != 0 || len(r.logins) != 0 {
		t.Fatalf("the untrusted relay got %d messages and %d logins", len(r.received), len(r.logins))
	}
}

// A relay's 5xx refusal is permanent (the notifier gives up at once);
// a relay that cannot be reached is not.
func TestPermanentFailures(t *testing.T) {
	_, port, clientTLS := startRelay(t, false)
	m, err := smtp.New(smtp.Config{Host: "127.0.0.1", Port: port, User: "mimamori", Password: "relay-secret",
		TLS: clientTLS, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Send(context.Background(), "unknown@customer.example", "nt_4", "s", "b", time.Now())
	if !smtp.IsPermanent(err) {
		t.Fatalf("a 550 to the recipient gave %v, want a permanent error", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	down, _ := smtp.New(smtp.Config{Host: "127.0.0.1", Port: closed, Security: smtp.SecurityNone, Timeout: 5 * time.Second})
	if err := down.Send(context.Background(), "a@b.example", "nt_5", "s", "b", time.Now()); err == nil || smtp.IsPermanent(err) {
		t.Fatalf("a relay that is down gave %v, want a temporary error", err)
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  smtp.Config
		ok   bool
	}{
		{"defaults", smtp.Config{Host: "relay.example"}, true},
		{"no host", smtp.Config{}, false},
		{"unknown security", smtp.Config{Host: "relay.example", Security: "ssl"}, false},
		{"bad from", smtp.Config{Host: "relay.example", From: "not an address"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := smtp.New(tc.cfg)
			if got := err == nil; got != tc.ok {
				t.Fatalf("New: %v, want ok=%v", err, tc.ok)
			}
		})
	}
	m, _ := smtp.New(smtp.Config{Host: "relay.example", From: "mimamori <noreply@mimamori.example>"})
	if got, want := m.MessageID("nf_1"), "nf_1@mimamori.example"; got != want {
		t.Fatalf("MessageID = %q, want %q", got, want)
	}
}
