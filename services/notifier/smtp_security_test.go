package notifier_test

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
	"github.com/emersion/go-smtp"

	"github.com/mimamori/mimamori/services/notifier"
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

func (s *relaySession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *relaySession) Rcpt(string, *smtp.RcptOptions) error { return nil }

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
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
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

func TestMailerSecurityModes(t *testing.T) {
	for _, mode := range []string{notifier.SecurityStartTLS, notifier.SecurityTLS} {
		t.Run(mode, func(t *testing.T) {
			r, port, clientTLS := startRelay(t, mode == notifier.SecurityTLS)
			m, err := notifier.NewMailer(notifier.SMTPConfig{Host: "127.0.0.1", Port: port, Security: mode,
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
			bad, _ := notifier.NewMailer(notifier.SMTPConfig{Host: "127.0.0.1", Port: port, Security: mode,
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
	m, _ := notifier.NewMailer(notifier.SMTPConfig{Host: "127.0.0.1", Port: port, Security: notifier.SecurityStartTLS,
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
