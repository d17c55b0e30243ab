package accounts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
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
// gateway's URL; any 2xx is success.
type HTTPGateway struct {
	URL    string
	Token  string
	Client *http.Client
}

// SendSMS posts one message.
func (g *HTTPGateway) SendSMS(ctx context.Context, to, body string) error {
	b, _ := json.Marshal(map[string]string{"to": to, "body": body})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.URL, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("sms gateway: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if g.Token != "" {
		req.Header.Set("Authorization", "Bearer "+g.Token)
	}
	hc := g.Client
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("sms gateway: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("sms gateway: HTTP %d", resp.StatusCode)
	}
	return nil
}
