package uplink

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/retry"
)

const testCredential = "cred123.s3cr3t-do-not-log"

// reply is one scripted answer of the fake gateway.
type reply struct {
	status     int
	retryAfter string
	body       string
}

// gateway emulates the ingest protocol: it authenticates, decodes gzip,
// validates, deduplicates by id and answers 202, unless a scripted reply
// comes first.
type gateway struct {
	t        *testing.T
	srv      *httptest.Server
	mu       sync.Mutex
	script   []reply
	always   *reply // answer every request with this, after the script
	requests int
	encoding []string
	auth     []string
	seen     map[string]events.Alert
	batches  [][]events.Alert
	commands []string
	hang     bool          // block until the client gives up
	stop     chan struct{} // closed at cleanup to free hanging handlers
}

func newGateway(t *testing.T) *gateway {
	t.Helper()
	g := &gateway{t: t, seen: map[string]events.Alert{}, stop: make(chan struct{})}
	g.srv = httptest.NewUnstartedServer(http.HandlerFunc(g.serve))
	g.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake refusals are expected
	g.srv.StartTLS()
	t.Cleanup(func() {
		close(g.stop)
		g.srv.Close()
	})
	return g
}

func (g *gateway) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(g.srv.Certificate())
	return p
}

func (g *gateway) client(t *testing.T, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{BaseURL: g.srv.URL, Credential: testCredential, RootCAs: g.pool(), Timeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (g *gateway) serve(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	g.requests++
	g.encoding = append(g.encoding, r.Header.Get("Content-Encoding"))
	g.auth = append(g.auth, r.Header.Get("Authorization"))
	var next *reply
	if len(g.script) > 0 {
		next = &g.script[0]
		g.script = g.script[1:]
	} else if g.always != nil {
		next = g.always
	}
	hang := g.hang
	g.mu.Unlock()

	if hang {
		// Read the body so the server notices the client hanging up.
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-g.stop:
		}
		return
	}
	if next != nil {
		if next.retryAfter != "" {
			w.Header().Set("Retry-After", next.retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(next.status)
		io.WriteString(w, next.body)
		return
	}
	if r.Method != http.MethodPost {
		writeJSON(w, 405, map[string]string{"error": "method not allowed"})
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+testCredential {
		writeJSON(w, 401, map[string]string{"error": "bad credential"})
		return
	}
	if r.Header.Get("Content-Type") != "application/json" {
		writeJSON(w, 415, map[string]string{"error": "want application/json"})
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			writeJSON(w, 400, map[string]string{"error": "bad gzip"})
			return
		}
		body = zr
	}
	data, err := io.ReadAll(io.LimitReader(body, MaxBatchBytes+1))
	if err != nil {
		writeJSON(w, 400, map[string]string{"error": err.Error()})
		return
	}
	if len(data) > MaxBatchBytes {
		writeJSON(w, 413, map[string]string{"error": "body too large"})
		return
	}
	switch r.URL.Path {
	case "/v1/alerts":
		var req struct {
			Alerts []events.Alert `json:"alerts"`
		}
		if err := json.Unmarshal(data, &req); err != nil {
			writeJSON(w, 400, map[string]string{"error": err.Error()})
			return
		}
		if len(req.Alerts) == 0 || len(req.Alerts) > MaxBatchAlerts {
			writeJSON(w, 400, map[string]string{"error": "need 1 to 1000 alerts", "field": "alerts"})
			return
		}
		for i := range req.Alerts {
			if err := req.Alerts[i].ValidateFromDevice(); err != nil {
				writeJSON(w, 400, map[string]string{"error": err.Error(), "field": fmt.Sprintf("alerts[%d]", i)})
				return
			}
		}
		g.mu.Lock()
		acc, dup := 0, 0
		for _, a := range req.Alerts {
			if _, ok := g.seen[a.ID]; ok {
				dup++
				continue
			}
			g.seen[a.ID] = a
			acc++
		}
		g.batches = append(g.batches, req.Alerts)
		g.mu.Unlock()
		writeJSON(w, 202, map[string]int{"accepted": acc, "duplicates": dup})
	case "/v1/heartbeat":
		var hb events.Heartbeat
		if err := json.Unmarshal(data, &hb); err != nil {
			writeJSON(w, 400, map[string]string{"error": err.Error()})
			return
		}
		if err := hb.ValidateFromDevice(); err != nil {
			writeJSON(w, 400, map[string]string{"error": err.Error()})
			return
		}
		g.mu.Lock()
		cmds := append([]string{}, g.commands...)
		g.mu.Unlock()
		writeJSON(w, 202, map[string][]string{"commands": cmds})
	default:
		writeJSON(w, 404, map[string]string{"error": "not found"})
	}
}

func (g *gateway) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.requests
}

func testAlert(i int) events.Alert {
	return events.Alert{
		ID:                 ksuid.New().String(),
		DetectedAt:         time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second),
		Severity:           1 + i%3,
		Kind:               events.KindDomain,
		Indicator:          "c2.evil.example",
		Label:              "C2 domain",
		Action:             events.ActionBlocked,
		SrcIP:              "192.168.1.23",
		SrcPort:            40000 + i%20000,
		SrcMAC:             "3c:22:fb:01:02:03",
		DstIP:              "192.0.2.53",
		DstPort:            53,
		DstMAC:             "00:1b:21:aa:bb:cc",
		Protocol:           "udp",
		Zones:              "LAN>WAN",
		Domain:             "c2.evil.example",
		DefinitionsVersion: "2026.11.26.1",
		Count:              1,
	}
}

func testAlerts(n int) []events.Alert {
	out := make([]events.Alert, n)
	for i := range out {
		out[i] = testAlert(i)
	}
	return out
}

func testHeartbeat() events.Heartbeat {
	return events.Heartbeat{
		ID: ksuid.New().String(), SentAt: time.Now().UTC(), FirmwareVersion: "1.4.2",
		DefinitionsVersion: "2026.11.26.1", UptimeSeconds: 3600, Clients: 12,
	}
}

// recordSleeps replaces the client's sleep with one that records the wait
// and returns at once; after stopAfter waits (if > 0) it cancels.
func recordSleeps(c *Client, stopAfter int, cancel context.CancelFunc) *[]time.Duration {
	var mu sync.Mutex
	waits := &[]time.Duration{}
	c.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		*waits = append(*waits, d)
		n := len(*waits)
		mu.Unlock()
		if stopAfter > 0 && n >= stopAfter {
			cancel()
		}
		return ctx.Err()
	}
	return waits
}

func TestSendAlertsGzipDecodedAndDeduplicated(t *testing.T) {
	for _, gz := range []bool{false, true} {
		t.Run(fmt.Sprintf("gzip=%v", gz), func(t *testing.T) {
			g := newGateway(t)
			c := g.client(t, func(cfg *Config) { cfg.Gzip = gz })
			alerts := testAlerts(2500)

			got, err := c.SendAlerts(context.Background(), alerts)
			if err != nil {
				t.Fatalf("SendAlerts: %v", err)
			}
			if want := (Result{Accepted: 2500, Batches: 3}); got != want {
				t.Fatalf("result = %+v, want %+v", got, want)
			}
			wantEnc := ""
			if gz {
				wantEnc = "gzip"
			}
			for i, enc := range g.encoding {
				if enc != wantEnc {
					t.Fatalf("request %d Content-Encoding = %q, want %q", i, enc, wantEnc)
				}
			}
			for _, a := range alerts {
				b := g.seen[a.ID]
				if !b.DetectedAt.Equal(a.DetectedAt) {
					t.Fatalf("alert %s detected_at = %v, want %v", a.ID, b.DetectedAt, a.DetectedAt)
				}
				b.DetectedAt = a.DetectedAt
				if b != a {
					t.Fatalf("alert arrived as %+v, want %+v", b, a)
				}
			}

			got, err = c.SendAlerts(context.Background(), alerts)
			if err != nil {
				t.Fatalf("resend: %v", err)
			}
			if want := (Result{Duplicates: 2500, Batches: 3}); got != want {
				t.Fatalf("resend result = %+v, want %+v", got, want)
			}
		})
	}
}

func TestRetriesAfter503HonouringRetryAfter(t *testing.T) {
	g := newGateway(t)
	g.script = []reply{
		{status: 503, retryAfter: "2", body: `{"error":"kafka unavailable"}`},
		{status: 429, retryAfter: "7", body: `{"error":"slow down"}`},
		{status: 503, body: `{"error":"kafka unavailable"}`}, // no Retry-After: backoff
	}
	c := g.client(t, func(cfg *Config) { cfg.MinBackoff = 10 * time.Millisecond; cfg.MaxBackoff = 50 * time.Millisecond })
	waits := recordSleeps(c, 0, nil)

	got, err := c.SendAlerts(context.Background(), testAlerts(3))
	if err != nil {
		t.Fatalf("SendAlerts: %v", err)
	}
	if got.Accepted != 3 {
		t.Fatalf("accepted = %d, want 3", got.Accepted)
	}
	if g.count() != 4 {
		t.Fatalf("requests = %d, want 4", g.count())
	}
	if len(*waits) != 3 || (*waits)[0] != 2*time.Second || (*waits)[1] != 7*time.Second || (*waits)[2] > 40*time.Millisecond {
		t.Fatalf("waits = %v, want [2s 7s ≤40ms]", *waits)
	}
}

func TestRetryAfterRealWait(t *testing.T) {
	g := newGateway(t)
	g.script = []reply{{status: 503, retryAfter: "1", body: `{"error":"busy"}`}}
	c := g.client(t, nil)
	cmds, err := c.SendHeartbeat(context.Background(), testHeartbeat())
	if err != nil {
		t.Fatalf("SendHeartbeat: %v", err)
	}
	if len(cmds) != 0 || g.count() != 2 {
		t.Fatalf("commands = %v, requests = %d; want none, 2", cmds, g.count())
	}
}

func TestStatusClassification(t *testing.T) {
	tests := []struct {
		status    int
		permanent bool
	}{
		{400, true}, {401, true}, {403, true}, {404, true}, {413, true},
		{429, false}, {500, false}, {502, false}, {503, false}, {504, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			g := newGateway(t)
			g.script = []reply{{status: tt.status, body: `{"error":"nope","field":"alerts[0].severity"}`}}
			c := g.client(t, nil)
			recordSleeps(c, 0, nil)

			_, err := c.SendAlerts(context.Background(), testAlerts(1))
			var perm *PermanentError
			if got := errors.As(err, &perm); got != tt.permanent {
				t.Fatalf("permanent = %v (err %v), want %v", got, err, tt.permanent)
			}
			wantReq := 2
			if tt.permanent {
				wantReq = 1
				if perm.StatusCode != tt.status || perm.Message != "nope" || perm.Field != "alerts[0].severity" {
					t.Fatalf("error = %+v", perm)
				}
				if perm.Unauthorized() != (tt.status == 401 || tt.status == 403) {
					t.Fatalf("Unauthorized() = %v for %d", perm.Unauthorized(), tt.status)
				}
			} else if err != nil {
				t.Fatalf("SendAlerts: %v", err)
			}
			if g.count() != wantReq {
				t.Fatalf("requests = %d, want %d", g.count(), wantReq)
			}
		})
	}
}

func TestPermanent400StopsAndIsRealServerMessage(t *testing.T) {
	g := newGateway(t)
	c := g.client(t, nil)
	a := testAlert(0)
	a.Severity = 9 // the client refuses this itself, so bypass it
	body, _ := json.Marshal(map[string]any{"alerts": []events.Alert{a}})
	err := c.post(context.Background(), c.alertsURL, body, &struct{}{})
	var perm *PermanentError
	if !errors.As(err, &perm) || perm.StatusCode != 400 || !strings.Contains(perm.Message, "severity") {
		t.Fatalf("err = %v, want 400 about severity", err)
	}
	if g.count() != 1 {
		t.Fatalf("requests = %d, want 1", g.count())
	}
	if _, err := c.SendAlerts(context.Background(), []events.Alert{a}); err == nil || g.count() != 1 {
		t.Fatalf("invalid alert: err = %v, requests = %d; want local error, no request", err, g.count())
	}
}

func TestBackoffCapped(t *testing.T) {
	c := &Client{minBackoff: 100 * time.Millisecond, maxBackoff: 2 * time.Second}
	for range 50 {
		b := retry.New(c.minBackoff, c.maxBackoff)
		for attempt := range 300 {
			ceil := min(c.maxBackoff, c.minBackoff<<min(attempt, 20))
			if d := b.NextBackOff(); d < 0 || d > ceil {
				t.Fatalf("backoff(%d) = %v, want within [0, %v]", attempt, d, ceil)
			}
		}
	}

	// Through the client: a gateway down for good never makes it wait
	// longer than MaxBackoff.
	g := newGateway(t)
	g.always = &reply{status: 503, body: `{"error":"down"}`}
	cl := g.client(t, func(cfg *Config) { cfg.MinBackoff = time.Millisecond; cfg.MaxBackoff = 30 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waits := recordSleeps(cl, 40, cancel)
	_, err := cl.SendAlerts(ctx, testAlerts(1))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	var max time.Duration
	for _, w := range *waits {
		if w > 30*time.Millisecond {
			t.Fatalf("wait %v above MaxBackoff", w)
		}
		max = maxDur(max, w)
	}
	if len(*waits) != 40 || max == 0 {
		t.Fatalf("waits = %d, largest %v", len(*waits), max)
	}
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

func TestContextCancelStops(t *testing.T) {
	t.Run("while waiting Retry-After", func(t *testing.T) {
		g := newGateway(t)
		g.always = &reply{status: 503, retryAfter: "3600"}
		c := g.client(t, nil)
		// Long enough for the first attempt on a busy machine; the
		// Retry-After of an hour is what the deadline cuts short.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := c.SendAlerts(ctx, testAlerts(1))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want DeadlineExceeded", err)
		}
		if !strings.Contains(err.Error(), "503") {
			t.Fatalf("err = %v, want the last failure named", err)
		}
	})
	t.Run("while the request hangs", func(t *testing.T) {
		g := newGateway(t)
		g.hang = true
		c := g.client(t, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := c.SendHeartbeat(ctx, testHeartbeat())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want DeadlineExceeded", err)
		}
	})
}

func TestCredentialSentAndNeverLogged(t *testing.T) {
	g := newGateway(t)
	g.script = []reply{{status: 503, body: `{"error":"busy"}`}, {status: 502, body: "<html>bad gateway</html>"}}
	g.commands = []string{"fetch-definitions", "reboot"}
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := Config{BaseURL: g.srv.URL, Credential: testCredential, RootCAs: g.pool(), Logger: logger}
	c := g.client(t, func(c *Config) { *c = cfg })
	recordSleeps(c, 0, nil)
	logger.Info("config", "uplink", cfg)

	cmds, err := c.SendHeartbeat(context.Background(), testHeartbeat())
	if err != nil {
		t.Fatalf("SendHeartbeat: %v", err)
	}
	if strings.Join(cmds, ",") != "fetch-definitions,reboot" {
		t.Fatalf("commands = %v", cmds)
	}
	for i, a := range g.auth {
		if a != "Bearer "+testCredential {
			t.Fatalf("request %d Authorization = %q", i, a)
		}
	}
	if !strings.Contains(logs.String(), "temporary failure") || !strings.Contains(logs.String(), "cred123.***") {
		t.Fatalf("logs lack the retries or the masked config:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "s3cr3t") {
		t.Fatalf("credential secret in logs:\n%s", logs.String())
	}

	// Nor in a permanent error.
	g.script = []reply{{status: 401, body: `{"error":"unknown credential"}`}}
	_, err = c.SendHeartbeat(context.Background(), testHeartbeat())
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("err = %v", err)
	}
}

func TestCAFile(t *testing.T) {
	g := newGateway(t)
	file := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: g.srv.Certificate().Raw})
	if err := os.WriteFile(file, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	c := g.client(t, func(cfg *Config) { cfg.RootCAs = nil; cfg.CAFile = file })
	if _, err := c.SendAlerts(context.Background(), testAlerts(1)); err != nil {
		t.Fatalf("with CA file: %v", err)
	}

	// An untrusted server is never trusted; the client keeps trying until
	// its context ends, and then says why it failed. (The context is long
	// enough for a handshake on a busy machine; the attempt the deadline
	// cuts short does not hide the certificate error.)
	untrusted := g.client(t, func(cfg *Config) { cfg.RootCAs = x509.NewCertPool() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := untrusted.SendAlerts(ctx, testAlerts(1)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted: err = %v, want a certificate error", err)
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no url", Config{Credential: testCredential}},
		{"http", Config{BaseURL: "http://ingest.example", Credential: testCredential}},
		{"no credential", Config{BaseURL: "https://ingest.example"}},
		{"credential without dot", Config{BaseURL: "https://ingest.example", Credential: "abc"}},
		{"credential with newline", Config{BaseURL: "https://ingest.example", Credential: "a.b\r\nX: y"}},
		{"missing CA file", Config{BaseURL: "https://ingest.example", Credential: testCredential, CAFile: "/nonexistent.pem"}},
		{"client and CA", Config{BaseURL: "https://ingest.example", Credential: testCredential, HTTPClient: http.DefaultClient, RootCAs: x509.NewCertPool()}},
	}
	for _, tt := range tests {
		if _, err := New(tt.cfg); err == nil {
			t.Errorf("%s: New succeeded, want an error", tt.name)
		} else if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%s: error shows the secret: %v", tt.name, err)
		}
	}
}

func TestBatches(t *testing.T) {
	alerts := testAlerts(2345)
	one, _ := marshal(&alerts[0])
	tests := []struct {
		name     string
		maxCount int
		maxBytes int
		want     []int
	}{
		{"protocol limits", 0, 0, []int{1000, 1000, 345}},
		{"count", 500, 0, []int{500, 500, 500, 500, 345}},
		{"bytes", 0, batchOverhead + 10*len(one) + 9 + 40, nil}, // checked below
		{"too big alone", 0, 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Batches(alerts, tt.maxCount, tt.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			total := 0
			for _, b := range got {
				if len(b) > 1 || tt.maxBytes > 10 {
					body, _ := marshal(map[string][]events.Alert{"alerts": b})
					limit := tt.maxBytes
					if limit == 0 {
						limit = MaxBatchBytes
					}
					if len(body) > limit {
						t.Fatalf("batch of %d is %d bytes, limit %d", len(b), len(body), limit)
					}
				}
				if &b[0] != &alerts[total] {
					t.Fatalf("batches out of order")
				}
				total += len(b)
			}
			if total != len(alerts) {
				t.Fatalf("batches hold %d alerts, want %d", total, len(alerts))
			}
			if tt.want != nil {
				var sizes []int
				for _, b := range got {
					sizes = append(sizes, len(b))
				}
				if fmt.Sprint(sizes) != fmt.Sprint(tt.want) {
					t.Fatalf("sizes = %v, want %v", sizes, tt.want)
				}
			}
			if tt.name == "too big alone" && len(got) != len(alerts) {
				t.Fatalf("got %d batches, want one per alert", len(got))
			}
		})
	}
	if got, _ := Batches(nil, 0, 0); len(got) != 0 {
		t.Fatalf("Batches(nil) = %v", got)
	}
}
