package portal_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimamori/mimamori/analytics/chtest"
	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/portal-api/portal"
)

// proxied is a login through a client: behind a proxy, X-Forwarded-For
// names the address the proxy saw (empty: none sent).
func proxied(c *client, forwardedFor, loginID, password string) reply {
	c.e.t.Helper()
	var hdr []string
	if forwardedFor != "" {
		hdr = []string{"X-Forwarded-For", forwardedFor}
	}
	return c.do("POST", "/api/v1/login", map[string]string{"login_id": loginID, "password": password}, hdr...)
}

// The portal behind a TLS proxy (127.0.0.2, trusted): every client
// reaches it from the proxy's address. An attacker failing logins over
// many user IDs slows down only the address it comes from (as the proxy
// reports it), and never refuses a right password, even of a user behind
// that very address (one office behind one NAT). An IPv6 /64 is one
// client; a peer that is not a trusted proxy is its own client whatever
// X-Forwarded-For it sends; the audit trail names the client.
func TestLoginLockoutBehindAProxy(t *testing.T) {
	e := newEnv(t, func(d *portal.Deps) { d.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")} })
	_, pw := e.activeClient("a@proxy.example", "office-user")
	proxy := e.from("127.0.0.2")
	const attacker, colleague = "198.51.100.66", "198.51.100.7"
	for i := range 20 {
		want(t, proxied(proxy, attacker, fmt.Sprintf("guess-%d", i), "a wrong password"), 401, "invalid_credentials")
	}
	// A user behind the same proxy, and one behind the attacker's address.
	want(t, proxied(proxy, colleague, "office-user", pw), 200, "")
	want(t, proxied(proxy, attacker, "office-user", pw), 200, "")

	// The attacker's address is slowed: its failures start a user ID's
	// delays at once; another address keeps its free failures.
	slowed := func(c *client, from, loginID string) bool {
		t.Helper()
		want(t, proxied(c, from, loginID, "a wrong password"), 401, "invalid_credentials")
		r := proxied(c, from, loginID, "a wrong password")
		if r.status == 429 && r.header.Get("Retry-After") == "1" {
			return true
		}
		want(t, r, 401, "invalid_credentials")
		return false
	}
	if !slowed(proxy, attacker, "fresh-1") {
		t.Error("the attacker's address is not slowed")
	}
	if slowed(proxy, colleague, "fresh-2") {
		t.Error("the colleague's address is slowed by the attacker's failures")
	}
	// Its failures are forgotten one every 30 seconds.
	e.clock.Add(10 * time.Minute)
	if slowed(proxy, attacker, "fresh-3") {
		t.Error("the attacker's address is still slowed 10 minutes after its failures")
	}

	// IPv6: every address of a /64 is the same client.
	for i := range 20 {
		want(t, proxied(proxy, fmt.Sprintf("2001:db8:7:7::%x", i+1), fmt.Sprintf("v6-guess-%d", i), "a wrong password"), 401, "")
	}
	if !slowed(proxy, "2001:db8:7:7:ffff:ffff:ffff:1", "fresh-4") {
		t.Error("an IPv6 /64 spreading its failures over its addresses is not slowed")
	}

	// A peer that is not a trusted proxy cannot choose its address.
	direct := e.from("127.0.0.3")
	for i := range 20 {
		want(t, proxied(direct, fmt.Sprintf("203.0.113.%d", i+1), fmt.Sprintf("spoof-%d", i), "a wrong password"), 401, "")
	}
	if !slowed(direct, "203.0.113.250", "fresh-5") {
		t.Error("a peer sending made-up X-Forwarded-For addresses is not slowed")
	}
	want(t, proxied(direct, "203.0.113.251", "office-user", "a wrong password"), 401, "invalid_credentials")

	sources := map[string]bool{}
	for _, env := range e.records(events.TopicAccounts) {
		p, err := events.Decode(env)
		if err != nil {
			t.Fatal(err)
		}
		switch v := p.(type) {
		case *events.AccountLoginSucceeded:
			sources[v.SourceIP] = true
		case *events.AccountLoginFailed:
			sources[v.SourceIP] = true
		}
	}
	for _, ip := range []string{colleague, attacker, "127.0.0.3"} {
		if !sources[ip] {
			t.Errorf("no login event from %s; sources %v", ip, sources)
		}
	}
	for ip := range sources {
		if ip == "127.0.0.2" || strings.HasPrefix(ip, "203.0.113.") {
			t.Errorf("a login event names %s: the proxy, or an address a client made up", ip)
		}
	}
}

// A first login cannot be used to find existing user IDs (to lock them or
// guess their passwords): a session is told "taken" 5 times, then waits 10
// minutes for each more; a client address 20 times, then 3 minutes for each
// more. Other addresses are not affected.
func TestLoginIDChecksAreThrottled(t *testing.T) {
	e := newEnv(t)
	e.activeClient("owner@probe.example", "taken-id")
	temp := func(email, ip string) *client {
		t.Helper()
		_, id, pw := e.register(email)
		c := e.from(ip)
		want(t, c.do("POST", "/api/v1/login", map[string]string{"login_id": id, "password": pw}), 200, "")
		return c
	}
	choose := func(c *client, loginID string) reply {
		t.Helper()
		return c.do("POST", "/api/v1/login/credentials", map[string]string{"login_id": loginID, "password": "a long enough passphrase 7"})
	}
	throttled := func(r reply, retryAfter string) {
		t.Helper()
		want(t, r, 429, "throttled")
		if got := r.header.Get("Retry-After"); got != retryAfter {
			t.Errorf("Retry-After %q, want %q", got, retryAfter)
		}
	}
	var probers []*client
	for i := range 5 {
		probers = append(probers, temp(fmt.Sprintf("p%d@probe.example", i), "127.0.0.4"))
	}
	for _, c := range probers[:4] {
		for range 5 {
			want(t, choose(c, "taken-id"), 409, "login_id_taken")
		}
		throttled(choose(c, "free-id-0"), "600") // the session's own limit
	}
	throttled(choose(probers[4], "taken-id"), "180") // the address's
	other := temp("q@probe.example", "127.0.0.5")
	want(t, choose(other, "taken-id"), 409, "login_id_taken")

	e.clock.Add(10 * time.Minute)
	want(t, choose(probers[0], "taken-id"), 409, "login_id_taken")
	throttled(choose(probers[0], "taken-id"), "600")
	want(t, choose(probers[4], "free-id-4"), 200, "")
}

// countingConn counts the queries of the status page.
type countingConn struct {
	driver.Conn
	status atomic.Int64
}

func (c *countingConn) QueryRow(ctx context.Context, query string, args ...any) driver.Row {
	if strings.Contains(query, "alerts_log") {
		c.status.Add(1)
	}
	return c.Conn.QueryRow(ctx, query, args...)
}

// get asks path from a client address and returns the status and
// Retry-After (it may run beside other requests: it only reports).
func get(hc *http.Client, url string) (int, string, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), nil
}

// The public status page costs at most one ClickHouse query every 5
// seconds whatever the traffic, and a client address gets 20 pages at
// once, then one a second; another address is served meanwhile.
func TestStatusPageIsCachedAndRateLimited(t *testing.T) {
	conn, db := chtest.Database(t)
	cc := &countingConn{Conn: conn}
	e := newEnv(t, func(d *portal.Deps) { d.Conn, d.Database, d.Registry = cc, db, prometheus.NewRegistry() })

	var wg sync.WaitGroup
	var served atomic.Int64
	for i := range 10 {
		hc := e.from(fmt.Sprintf("127.0.1.%d", i+1)).hc
		for range 15 {
			wg.Go(func() {
				if st, _, err := get(hc, e.srv.URL+"/api/v1/status"); err == nil && st == 200 {
					served.Add(1)
				}
			})
		}
	}
	wg.Wait()
	if st, _, err := get(e.from("127.0.1.101").hc, e.srv.URL+"/status"); err != nil || st != 200 {
		t.Fatalf("GET /status = %d %v", st, err)
	}
	want(t, e.from("127.0.1.100").do("GET", "/api/v1/status", nil), 200, "")
	if served.Load() != 150 || cc.status.Load() != 1 {
		t.Fatalf("%d of 150 requests served with %d queries, want all with 1", served.Load(), cc.status.Load())
	}
	e.clock.Add(5 * time.Second)
	want(t, e.from("127.0.1.102").do("GET", "/api/v1/status", nil), 200, "")
	want(t, e.from("127.0.1.103").do("GET", "/api/v1/status", nil), 200, "")
	if n := cc.status.Load(); n != 2 {
		t.Fatalf("%d queries after the figures aged, want 2", n)
	}

	flood, calm := e.from("127.0.2.1"), e.from("127.0.2.2")
	for range 20 {
		want(t, flood.do("GET", "/api/v1/status", nil), 200, "")
	}
	r := flood.do("GET", "/api/v1/status", nil)
	want(t, r, 429, "throttled")
	if r.header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q, want 1", r.header.Get("Retry-After"))
	}
	if st, retry, err := get(flood.hc, e.srv.URL+"/status"); err != nil || st != 429 || retry != "1" {
		t.Errorf("GET /status flooded = %d Retry-After %q %v, want 429 and 1", st, retry, err)
	}
	want(t, calm.do("GET", "/api/v1/status", nil), 200, "")
	e.clock.Add(time.Second)
	want(t, flood.do("GET", "/api/v1/status", nil), 200, "")
}

// /readyz and /metrics name the dependencies and count the traffic: on
// the portal's listener, which faces the internet, only when asked to.
func TestReadinessAndMetricsOnlyWhenPublic(t *testing.T) {
	conn, db := chtest.Database(t)
	for _, public := range []bool{false, true} {
		e := newEnv(t, func(d *portal.Deps) {
			d.Conn, d.Database, d.Registry, d.PublicMetrics = conn, db, prometheus.NewRegistry(), public
		})
		for path, want := range map[string]int{"/healthz": 200, "/readyz": 404, "/metrics": 404} {
			if public {
				want = 200
			}
			if st, _, err := get(http.DefaultClient, e.srv.URL+path); err != nil || st != want {
				t.Errorf("public %v: GET %s = %d %v, want %d", public, path, st, err, want)
			}
		}
	}
}

// allocated is how many bytes f allocated: an argon2 check allocates its
// 19 MiB.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// Bodies are small JSON objects: a larger one is refused with 413, whether
// announced or sent in chunks. A user ID or password longer than any
// account's is refused at once, without argon2's time and memory.
func TestRequestLimits(t *testing.T) {
	e := newEnv(t)
	c := &client{e: e}
	want(t, c.do("POST", "/api/v1/login", map[string]string{"login_id": "someone", "password": strings.Repeat("x", 1<<20)}),
		413, "request_too_large")
	chunked := io.MultiReader(strings.NewReader(`{"login_id":"someone","password":"`),
		strings.NewReader(strings.Repeat("x", 100<<10)), strings.NewReader(`"}`))
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/login", chunked)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || !strings.Contains(string(body), `"request_too_large"`) {
		t.Errorf("chunked 100 KiB body = %d %s, want 413 request_too_large", resp.StatusCode, body)
	}

	var r reply
	if n := allocated(func() { _, r = e.login("someone", strings.Repeat("x", 300)) }); n > 8<<20 {
		t.Errorf("a 300-character password allocated %d bytes: argon2 ran", n)
	}
	want(t, r, 422, "password_too_long")
	_, r = e.login(strings.Repeat("u", 65), "a wrong password")
	want(t, r, 422, "login_id_invalid")
	if n := allocated(func() { _, r = e.login("someone", "a wrong password") }); n < 16<<20 {
		t.Errorf("a password check allocated %d bytes only: the measure misses argon2", n)
	}
	want(t, r, 401, "invalid_credentials")
}

// A client that sends its body slowly, or keeps a connection open without
// a request, is cut off.
func TestPortalServerTimeouts(t *testing.T) {
	e := newEnv(t)
	dial := func(cfg portal.ServerConfig) net.Conn {
		t.Helper()
		h := e.srv.Config.Handler
		srv := httptest.NewUnstartedServer(h)
		srv.Config = portal.HTTPServer(h, cfg, nil)
		srv.Start()
		t.Cleanup(srv.Close)
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	closed := func(conn net.Conn) bool {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, err := io.Copy(io.Discard, conn) // until the server closes it
		return err == nil
	}

	slow := dial(portal.ServerConfig{ReadTimeout: 300 * time.Millisecond})
	fmt.Fprintf(slow, "POST /api/v1/login HTTP/1.1\r\nHost: portal\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"login_id\":")
	if !closed(slow) {
		t.Error("a body that never ends holds its connection")
	}

	idle := dial(portal.ServerConfig{IdleTimeout: 300 * time.Millisecond})
	fmt.Fprintf(idle, "GET /api/v1/openapi.json HTTP/1.1\r\nHost: portal\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET on the idle connection: %v", err)
	}
	if !closed(idle) {
		t.Error("an idle kept-alive connection stays open")
	}
}

// The defaults hold in production: the session cookie is __Host- (no
// other host of the domain can set or shadow it), API answers are never
// cached or sniffed, HSTS is sent on HTTPS (TLS, or a trusted proxy saying
// so), and a panic's log carries no cookie or credential.
func TestSecureDefaults(t *testing.T) {
	e := newEnv(t, func(d *portal.Deps) { d.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")} })
	_, id, pw := e.register("a@defaults.example")
	_, r := e.login(id, pw)
	want(t, r, 200, "")
	set := r.header.Get("Set-Cookie")
	if !strings.HasPrefix(set, "__Host-mimamori_session=") || !strings.Contains(set, "; Path=/") ||
		!strings.Contains(set, "; Secure") || strings.Contains(set, "Domain=") {
		t.Errorf("Set-Cookie %q, want __Host-mimamori_session with Path=/, Secure and no Domain", set)
	}
	for name, value := range map[string]string{"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"} {
		if got := r.header.Get(name); got != value {
			t.Errorf("login answer: %s %q, want %q", name, got, value)
		}
	}

	hsts := func(c *client, proto string) string {
		t.Helper()
		return c.do("GET", "/api/v1/openapi.json", nil, "X-Forwarded-Proto", proto).header.Get("Strict-Transport-Security")
	}
	if got := hsts(e.from("127.0.0.1"), "https"); got != "" {
		t.Errorf("plain HTTP from no proxy: HSTS %q", got)
	}
	if got := hsts(e.from("127.0.0.2"), "http"); got != "" {
		t.Errorf("the proxy received plain HTTP: HSTS %q", got)
	}
	if got := hsts(e.from("127.0.0.2"), "https"); !strings.HasPrefix(got, "max-age=") {
		t.Errorf("the proxy received HTTPS: HSTS %q", got)
	}
	ts := httptest.NewUnstartedServer(e.srv.Config.Handler)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	resp, err := ts.Client().Get(ts.URL + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(got, "max-age=") || resp.TLS == nil {
		t.Errorf("over TLS: HSTS %q", got)
	}
}

// panicConn is a ClickHouse connection whose queries panic with the error
// of a reset connection (a driver bug).
type panicConn struct{ driver.Conn }

func (panicConn) QueryRow(context.Context, string, ...any) driver.Row {
	panic(fmt.Errorf("driver bug: %w", syscall.ECONNRESET))
}

// syncBuffer is a buffer written by several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// A panic answers 500 and is logged without the request's cookie or
// Authorization header.
func TestPanicLogHoldsNoCredentials(t *testing.T) {
	var logs syncBuffer
	was := gin.DefaultErrorWriter // where gin's own recovery would print the request
	gin.DefaultErrorWriter = &logs
	t.Cleanup(func() { gin.DefaultErrorWriter = was })
	e := newEnv(t, func(d *portal.Deps) {
		d.Conn, d.Database, d.Registry = panicConn{}, "mimamori", prometheus.NewRegistry()
		d.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/status", nil)
	req.Header.Set("Cookie", portal.SessionCookie+"=cookie-secret-81f3")
	req.Header.Set("Authorization", "Bearer auth-secret-5c2a")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || !strings.Contains(string(body), `"error"`) {
		t.Errorf("panic answered %d %s, want 500 with a JSON error", resp.StatusCode, body)
	}
	out := logs.String()
	if !strings.Contains(out, "driver bug") || !strings.Contains(out, "/api/v1/status") {
		t.Errorf("the panic is not logged with its path:\n%s", out)
	}
	for _, secret := range []string{"cookie-secret-81f3", "auth-secret-5c2a"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds %q:\n%s", secret, out)
		}
	}
}
