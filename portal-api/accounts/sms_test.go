package accounts_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimamori/mimamori/portal-api/accounts"
)

const gatewayToken = "gw-token-3f9a1c77e2"

// gatewayRequest is what an SMS gateway received.
type gatewayRequest struct {
	Method, Path, ContentType, Auth, IdempotencyKey string
	Fields                                          map[string]any
}

// gateway is an SMS gateway over real HTTP: it records each request and
// answers with status and body.
type gateway struct {
	srv *httptest.Server

	mu     sync.Mutex
	reqs   []gatewayRequest
	status int
	body   string
}

func newGateway(t *testing.T) *gateway {
	t.Helper()
	g := &gateway{status: http.StatusAccepted, body: `{"id":"msg_1"}`}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		req := gatewayRequest{Method: r.Method, Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"),
			Auth: r.Header.Get("Authorization"), IdempotencyKey: r.Header.Get("Idempotency-Key")}
		if err := json.Unmarshal(raw, &req.Fields); err != nil {
			t.Errorf("gateway: body %q is not JSON: %v", raw, err)
		}
		g.mu.Lock()
		g.reqs = append(g.reqs, req)
		status, body := g.status, g.body
		g.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gateway) answer(status int, body string) {
	g.mu.Lock()
	g.status, g.body = status, body
	g.mu.Unlock()
}

func (g *gateway) requests() []gatewayRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]gatewayRequest(nil), g.reqs...)
}

func (g *gateway) sender() *accounts.HTTPGateway {
	return &accounts.HTTPGateway{URL: g.srv.URL + "/v1/messages", Token: gatewayToken}
}

func TestHTTPGatewayRequest(t *testing.T) {
	g := newGateway(t)
	s := g.sender()
	for range 2 {
		if err := s.SendSMS(context.Background(), "+819012345678", "code 123456"); err != nil {
			t.Fatal(err)
		}
	}
	reqs := g.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	got := reqs[0]
	if got.Method != http.MethodPost || got.Path != "/v1/messages" || got.ContentType != "application/json" ||
		got.Auth != "Bearer "+gatewayToken {
		t.Errorf("request %s %s, Content-Type %q, Authorization %q", got.Method, got.Path, got.ContentType, got.Auth)
	}
	if want := map[string]any{"to": "+819012345678", "body": "code 123456"}; !equalJSON(got.Fields, want) {
		t.Errorf("body %v, want exactly %v", got.Fields, want)
	}
	if got.IdempotencyKey == "" || got.IdempotencyKey == reqs[1].IdempotencyKey {
		t.Errorf("Idempotency-Key %q then %q: want one fresh key per message", got.IdempotencyKey, reqs[1].IdempotencyKey)
	}
}

func equalJSON(a, b map[string]any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// Failures name the status and show the start of the gateway's answer,
// but never the token, the number or the code, even when the gateway
// echoes them.
func TestHTTPGatewayErrors(t *testing.T) {
	const to, body = "+819012345678", "みまもり 確認コード: 482913\nmimamori verification code: 482913"
	echo, _ := json.Marshal(map[string]string{"error": "quota exceeded for account 42", "to": to, "body": body,
		"token": gatewayToken, "number": "09012345678"})
	cases := []struct {
		name   string
		status int
		body   string
		want   []string
	}{
		{"server error echoing the request", http.StatusServiceUnavailable, string(echo),
			[]string{"HTTP 503", "quota exceeded for account 42"}},
		{"refused token", http.StatusUnauthorized, "bad token " + gatewayToken, []string{"HTTP 401", "bad token [redacted]"}},
		{"long html page", http.StatusBadGateway, "<html>" + strings.Repeat("upstream down ", 500) + "</html>",
			[]string{"HTTP 502", "<html>upstream down", "…"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newGateway(t)
			g.answer(c.status, c.body)
			err := g.sender().SendSMS(context.Background(), to, body)
			if !errors.Is(err, accounts.ErrSMSGateway) {
				t.Fatalf("got %v, want an ErrSMSGateway", err)
			}
			msg := err.Error()
			t.Log(msg)
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			for _, secret := range []string{gatewayToken, "482913", "9012345678", "確認コード"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q holds %q", msg, secret)
				}
			}
			if len(msg) > 400 {
				t.Errorf("error of %d bytes, want a short excerpt", len(msg))
			}
		})
	}
}

// A redirect is not followed: the code and the token go nowhere but the
// configured URL.
func TestHTTPGatewayRefusesRedirects(t *testing.T) {
	elsewhere := newGateway(t)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.srv.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirect.Close)
	err := (&accounts.HTTPGateway{URL: redirect.URL, Token: gatewayToken}).SendSMS(context.Background(), "+819012345678", "code 123456")
	if !errors.Is(err, accounts.ErrSMSGateway) || !strings.Contains(err.Error(), "HTTP 307") {
		t.Fatalf("got %v, want an HTTP 307 error", err)
	}
	if n := len(elsewhere.requests()); n != 0 {
		t.Fatalf("the redirect target got %d requests", n)
	}
}

// A gateway that does not answer fails the send instead of holding the
// login step.
func TestHTTPGatewayTimeout(t *testing.T) {
	quit := make(chan struct{})
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // so the server sees the client go
		select {
		case <-r.Context().Done():
		case <-quit:
		}
	}))
	t.Cleanup(stuck.Close)
	t.Cleanup(func() { close(quit) }) // runs first
	s := &accounts.HTTPGateway{URL: stuck.URL, Token: gatewayToken, Timeout: 200 * time.Millisecond}
	err := s.SendSMS(context.Background(), "+819012345678", "code 123456")
	if !errors.Is(err, accounts.ErrSMSGateway) || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("got %v, want a timeout error", err)
	}
}

// SMS enrolment and login through the HTTP gateway: the codes the owner
// sends reach the gateway, and work; a failing gateway fails the step
// without the code in the error.
func TestSMSCodesThroughHTTPGateway(t *testing.T) {
	e := newEnv(t)
	g := newGateway(t)
	svc, _ := e.owner(accounts.Config{}, g.sender())
	ctx := context.Background()
	_, tempID, tempPW := e.register("a@gateway.example")
	p, err := svc.Login(ctx, tempID, tempPW, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	const pw = "a long enough passphrase for sms"
	if p, err = svc.ChangeCredentials(ctx, p, "gw-user", pw); err != nil {
		t.Fatal(err)
	}
	lastCode := func(want int) string {
		t.Helper()
		reqs := g.requests()
		if len(reqs) != want {
			t.Fatalf("the gateway got %d messages, want %d", len(reqs), want)
		}
		r := reqs[want-1]
		if r.Fields["to"] != "+819012345678" || r.Auth != "Bearer "+gatewayToken {
			t.Fatalf("message to %v with Authorization %q", r.Fields["to"], r.Auth)
		}
		code := regexp.MustCompile(`\b\d{6}\b`).FindString(r.Fields["body"].(string))
		if code == "" {
			t.Fatalf("no code in %q", r.Fields["body"])
		}
		return code
	}

	if err := svc.BeginSMS(ctx, p, "+81 90-1234-5678", false); err != nil {
		t.Fatal(err)
	}
	_, codes, err := svc.ConfirmSMS(ctx, p, lastCode(1), false, "192.0.2.1")
	if err != nil || len(codes) != 10 {
		t.Fatalf("confirm with the code the gateway got: %v (%d recovery codes)", err, len(codes))
	}

	p, err = svc.Login(ctx, "gw-user", pw, "192.0.2.1")
	if err != nil || p.Stage != accounts.StageSecondFactor {
		t.Fatalf("login: %+v %v", p, err)
	}
	if err := svc.SendLoginSMS(ctx, p); err != nil {
		t.Fatal(err)
	}
	if p, err = svc.VerifySecondFactor(ctx, p, lastCode(2), "192.0.2.1"); err != nil || p.Stage != accounts.StageActive {
		t.Fatalf("second factor with the code the gateway got: %+v %v", p, err)
	}

	g.answer(http.StatusInternalServerError, `{"error":"internal"}`)
	p, _ = svc.Login(ctx, "gw-user", pw, "192.0.2.1")
	err = svc.SendLoginSMS(ctx, p)
	if !errors.Is(err, accounts.ErrSMSGateway) || !strings.Contains(err.Error(), "HTTP 500") {
		t.Fatalf("failing gateway: %v", err)
	}
	if code := lastCode(3); strings.Contains(err.Error(), code) || strings.Contains(err.Error(), gatewayToken) {
		t.Fatalf("error %q holds the code %s or the token", err, code)
	}
}
