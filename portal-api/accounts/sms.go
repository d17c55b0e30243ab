package accounts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// SMSSender delivers one text message to a phone number.
type SMSSender interface {
	SendSMS(ctx context.Context, to, body string) error
}

// SMSMessage is one message the sink accepted.
type SMSMessage struct {
	To   string    `json:"to"`
	Body string    `json:"body"`
	At   time.Time `json:"at"`
}

// SMSSink is the embedded SMS gateway: it stores every message (the local
// default, and what tests read codes from).
type SMSSink struct {
	mu   sync.Mutex
	msgs []SMSMessage
}

// SendSMS stores the message.
func (s *SMSSink) SendSMS(_ context.Context, to, body string) error {
	s.mu.Lock()
	s.msgs = append(s.msgs, SMSMessage{To: to, Body: body, At: time.Now()})
	s.mu.Unlock()
	return nil
}

// Messages returns a copy of every message so far, oldest first.
func (s *SMSSink) Messages() []SMSMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SMSMessage(nil), s.msgs...)
}

// HTTPGateway posts {"to","body"} as JSON with a bearer token to an SMS
// gateway's URL; any 2xx is success. Each message carries a fresh
// Idempotency-Key: net/http then replays the POST once when a reused
// keep-alive connection turns out dead, and the gateway can drop the copy.
// Redirects are not followed (a 3xx is an error): the token and the code
// go to the configured URL only.
type HTTPGateway struct {
	URL     string
	Token   string
	Client  *http.Client  // nil: http.DefaultTransport
	Timeout time.Duration // whole exchange; 0: 10 s
}

// ErrSMSGateway is wrapped by every error of HTTPGateway.SendSMS.
var ErrSMSGateway = errors.New("sms gateway")

// SendSMS posts one message. Its errors never hold the token, the number
// or the text (the text holds a one-time code): they are logged.
func (g *HTTPGateway) SendSMS(ctx context.Context, to, body string) error {
	timeout := g.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	b, err := json.Marshal(struct {
		To   string `json:"to"`
		Body string `json:"body"`
	}{to, body})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSMSGateway, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.URL, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%w: bad URL: %v", ErrSMSGateway, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Idempotency-Key", randomText(26))
	if g.Token != "" {
		req.Header.Set("Authorization", "Bearer "+g.Token)
	}
	hc := http.Client{}
	if g.Client != nil {
		hc = *g.Client
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%w: no answer from %s in time (timeout %s)", ErrSMSGateway, req.URL.Host, timeout)
		}
		// *url.Error names the method and URL (net/http strips a password
		// from it); the body and headers are never part of it.
		return fmt.Errorf("%w: %v", ErrSMSGateway, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		detail := fmt.Sprintf("%s answered HTTP %d", req.URL.Host, resp.StatusCode)
		if resp.StatusCode/100 == 3 {
			detail += " (redirects are not followed)"
		}
		if x := excerpt(raw, g.Token, to, body); x != "" {
			detail += ": " + x
		}
		return fmt.Errorf("%w: %s", ErrSMSGateway, detail)
	}
	return nil
}

// longDigits are runs of digits as long as a code or a phone number.
var longDigits = regexp.MustCompile(`[0-9]{6,}`)

// excerpt is the start of a gateway's answer on one line, for an error
// that will be logged. A gateway may echo the request, so the token, the
// number, the text and every long run of digits (codes, numbers in any
// format) are cut out first.
func excerpt(raw []byte, token, to, body string) string {
	s := strings.ToValidUTF8(string(raw), "?")
	for _, secret := range []string{token, body, to, strings.TrimPrefix(to, "+")} {
		if secret == "" {
			continue
		}
		quoted, _ := json.Marshal(secret) // as echoed in a JSON answer
		s = strings.ReplaceAll(s, strings.Trim(string(quoted), `"`), "[redacted]")
		s = strings.ReplaceAll(s, secret, "[redacted]")
	}
	s = longDigits.ReplaceAllString(s, "[redacted]")
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if utf8.RuneCountInString(s) > 200 {
		s = string([]rune(s)[:200]) + "…"
	}
	return s
}
