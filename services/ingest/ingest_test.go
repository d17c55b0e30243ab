package ingest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"

	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/ksuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/infra/testkit"
	"github.com/mimamori/mimamori/services/ingest"
	"github.com/mimamori/mimamori/services/registry"
	"github.com/mimamori/mimamori/services/tlsca"
)

// gateway is a running ingest gateway over real HTTPS in front of the
// embedded broker, with one registered, assigned device.
type gateway struct {
	broker   *eventlog.Broker
	kcfg     eventlog.Config
	prod     *eventlog.Producer
	live     *registry.Live
	url      string
	client   *http.Client
	customer string
	device   registry.Registration
	metrics  *prometheus.Registry
	index    *ingest.AlertIndex
	run      func(func(context.Context) error)
}

func newGateway(t *testing.T, cfg ingest.Config) *gateway {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var waits []chan error
	t.Cleanup(func() {
		cancel()
		for _, w := range waits {
			if err := <-w; err != nil {
				t.Error(err)
			}
		}
	})
	run := func(f func(context.Context) error) {
		w := make(chan error, 1)
		waits = append(waits, w)
		go func() { w <- f(ctx) }()
	}

	b, kcfg := testkit.Kafka(t, 2, "t.")
	prod, err := eventlog.NewProducer(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	tctx, tcancel := context.WithTimeout(ctx, 10*time.Second)
	defer tcancel()
	if err := eventlog.EnsureTopics(tctx, prod.Client(), kcfg); err != nil {
		t.Fatal(err)
	}
	live, err := registry.NewLive(kcfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	run(live.Run)

	g := &gateway{broker: b, kcfg: kcfg, prod: prod, live: live, run: run}
	now := time.Now()
	g.customer, err = registry.RegisterCustomer(tctx, prod, "Kato Bakery", "owner@kato.example", "rs_1", now)
	if err != nil {
		t.Fatal(err)
	}
	g.device = g.registerDevice(t, g.customer)
	return g.replica(t, cfg)
}

// replica starts another gateway in front of the same broker and registry,
// with an alert index of its own rebuilt from the log, as a second
// `mimamori serve ingest` would.
func (g *gateway) replica(t *testing.T, cfg ingest.Config) *gateway {
	t.Helper()
	r := *g
	r.metrics = prometheus.NewRegistry()
	r.index = ingest.NewIndex(ingest.IndexConfig{})
	g.run(func(ctx context.Context) error { return r.index.Follow(ctx, g.kcfg, nil) })
	paths, err := tlsca.Ensure(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := tlsca.ServerTLS(paths.ServerCert, paths.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := tlsca.CertPool(paths.CACert)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := ingest.New(cfg, ingest.Deps{Auth: g.live, Pub: g.prod, Registry: r.metrics, Index: r.index})
	srv := ingest.NewServer(ln, tlsCfg, h, nil)
	g.run(srv.Run)
	r.url = "https://" + srv.Addr().String()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	r.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return &r
}

func (g *gateway) registerDevice(t *testing.T, customer string) registry.Registration {
	t.Helper()
	mac := make([]byte, 6)
	rand.Read(mac)
	mac[0] &^= 1
	reg, err := registry.RegisterDevice(context.Background(), g.prod, registry.DeviceSpec{
		Serial: "MM-" + ksuid.New().String()[:8], MAC: net.HardwareAddr(mac).String(), Model: "MM-100",
		ManufacturedOn: "2026-04-01", CustomerID: customer,
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// written counts the records in the appliance topics.
func (g *gateway) written(t *testing.T) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(g.prod.Client()).ListEndOffsets(ctx,
		g.kcfg.Topic(events.TopicAlerts), g.kcfg.Topic(events.TopicHeartbeats))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// records reads n records of a topic from the beginning.
// endOffsets is the number of records written to a topic so far.
func (g *gateway) endOffsets(t *testing.T, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(g.prod.Client()).ListEndOffsets(ctx, g.kcfg.Topic(topic))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

func (g *gateway) records(t *testing.T, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append(g.kcfg.ClientOpts(), kgo.ConsumeTopics(g.kcfg.Topic(topic)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n && ctx.Err() == nil {
		recs = append(recs, cl.PollFetches(ctx).Records()...)
	}
	if len(recs) != n {
		t.Fatalf("%s holds %d records, want %d", topic, len(recs), n)
	}
	return recs
}

type request struct {
	method, path string
	token        string
	contentType  string
	encoding     string
	body         []byte
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (g *gateway) do(t *testing.T, r request) response {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	req, err := http.NewRequest(r.method, g.url+r.path, bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.encoding != "" {
		req.Header.Set("Content-Encoding", r.encoding)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	json.Unmarshal(raw, &out.body)
	return out
}

func alert(mod ...func(map[string]any)) map[string]any {
	a := map[string]any{
		"id": ksuid.New().String(), "detected_at": time.Now().UTC().Format(time.RFC3339Nano),
		"severity": 3, "kind": "domain", "indicator": "evil.example", "label": "C2 server",
		"action": "blocked", "src_ip": "192.168.1.23", "src_port": 51234, "src_mac": "00:11:22:33:44:55",
		"dst_ip": "203.0.113.9", "dst_port": 443, "protocol": "tcp", "zones": "LAN>WAN",
		"domain": "evil.example", "definitions_version": "2026.04.01-1", "count": 1,
	}
	for _, m := range mod {
		m(a)
	}
	return a
}

func heartbeat(mod ...func(map[string]any)) map[string]any {
	h := map[string]any{
		"id": ksuid.New().String(), "sent_at": time.Now().UTC().Format(time.RFC3339Nano),
		"firmware_version": "1.4.2", "definitions_version": "2026.04.01-1", "uptime_seconds": 3600,
		"clients": 12, "packets": 123456, "bytes": 987654321, "alerts": 3, "queue_depth": 0,
	}
	for _, m := range mod {
		m(h)
	}
	return h
}

func set(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }

func alertsBody(alerts ...map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"alerts": alerts})
	return b
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestMalformedRequestsWriteNothing(t *testing.T) {
	g := newGateway(t, ingest.Config{})
	ctx := context.Background()
	unassigned := g.registerDevice(t, "")
	other := g.registerDevice(t, g.customer)
	revoked := g.registerDevice(t, g.customer)
	if err := registry.RevokeCredential(ctx, g.prod, revoked.DeviceID, registry.CredentialID(revoked.Credential), "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := g.live.WaitCaughtUp(wctx); err != nil {
		t.Fatal(err)
	}
	unknown, _ := registry.NewCredential(g.device.DeviceID, time.Now())

	many := make([]map[string]any, 1001)
	for i := range many {
		many[i] = alert()
	}
	huge := alertsBody(alert(set("label", strings.Repeat("x", 5<<20))))
	incompressible := make([]byte, 2<<20)
	rand.Read(incompressible)
	bomb := gz(append([]byte(`{"alerts":[`), make([]byte, 64<<20)...))
	good := alertsBody(alert())
	var three []map[string]any
	for range 3 {
		three = append(three, alert())
	}
	badAt3 := alertsBody(append(three, alert(set("severity", 5)))...)
	tok := g.device.Credential

	tests := []struct {
		name       string
		req        request
		wantStatus int
		wantField  string
		wantMsg    string
	}{
		{"bad JSON", request{path: "/v1/alerts", body: []byte(`{"alerts":[{"id":`)}, 400, "", "invalid JSON"},
		{"not JSON", request{path: "/v1/alerts", body: []byte(`hello`)}, 400, "", "invalid JSON at byte 1"},
		{"empty body", request{path: "/v1/alerts", body: nil}, 400, "", "empty body"},
		{"array body", request{path: "/v1/alerts", body: []byte(`[]`)}, 400, "", "must be a JSON object"},
		{"trailing data", request{path: "/v1/alerts", body: append(good, []byte(`{}`)...)}, 400, "", "unexpected data after"},
		{"unknown top-level field", request{path: "/v1/alerts", body: []byte(`{"alerts":[],"batch":1}`)}, 400, "batch", "batch: unknown field"},
		{"unknown alert field", request{path: "/v1/alerts", body: alertsBody(alert(), alert(set("colour", "red")))}, 400, "alerts[1].colour", "alerts[1].colour: unknown field"},
		{"empty batch", request{path: "/v1/alerts", body: []byte(`{"alerts":[]}`)}, 400, "alerts", "got none"},
		{"no alerts field", request{path: "/v1/alerts", body: []byte(`{}`)}, 400, "alerts", "got none"},
		{"1001 alerts", request{path: "/v1/alerts", body: alertsBody(many...)}, 413, "alerts", "at most 1000 alerts per request, got 1001"},
		{"oversize body", request{path: "/v1/alerts", body: huge}, 413, "", "the body exceeds the limit of 4 MiB"},
		{"oversize compressed", request{path: "/v1/alerts", encoding: "gzip", body: gz(incompressible)}, 413, "", "compressed body exceeds the limit of 1 MiB"},
		{"gzip bomb", request{path: "/v1/alerts", encoding: "gzip", body: bomb}, 413, "", "after decompression exceeds the limit of 4 MiB"},
		{"bad gzip", request{path: "/v1/alerts", encoding: "gzip", body: good}, 400, "", "not valid gzip"},
		{"truncated gzip", request{path: "/v1/alerts", encoding: "gzip", body: gz(good)[:20]}, 400, "", "not valid gzip"},
		{"wrong content type", request{path: "/v1/alerts", contentType: "text/plain", body: good}, 415, "", "Content-Type must be application/json"},
		{"unsupported encoding", request{path: "/v1/alerts", encoding: "br", body: good}, 415, "", `Content-Encoding "br" is not supported`},
		{"missing auth", request{path: "/v1/alerts", token: "-", body: good}, 401, "", "missing credential"},
		{"unknown credential", request{path: "/v1/alerts", token: unknown, body: good}, 401, "", "invalid credential"},
		{"malformed credential", request{path: "/v1/alerts", token: "hunter2", body: good}, 401, "", "invalid credential"},
		{"revoked credential", request{path: "/v1/alerts", token: revoked.Credential, body: good}, 401, "", "invalid credential"},
		{"unassigned device", request{path: "/v1/alerts", token: unassigned.Credential, body: good}, 403, "", "not assigned"},
		{"device_id of another device", request{path: "/v1/alerts", body: alertsBody(alert(), alert(set("device_id", other.DeviceID)))}, 403, "alerts[1].device_id", "not the device this credential belongs to"},
		{"customer_id of another customer", request{path: "/v1/alerts", body: alertsBody(alert(set("customer_id", "cu_other")))}, 403, "alerts[0].customer_id", "not the customer"},
		{"severity out of range at index 3", request{path: "/v1/alerts", body: badAt3}, 400, "alerts[3].severity", "alerts[3].severity: must be 1, 2 or 3, got 5"},
		{"severity of wrong type", request{path: "/v1/alerts", body: alertsBody(alert(set("severity", "high")))}, 400, "alerts[0].severity", "alerts[0].severity: must be an integer, got JSON string"},
		{"missing id", request{path: "/v1/alerts", body: alertsBody(alert(set("id", "")))}, 400, "alerts[0].id", "must be a 27-character KSUID"},
		{"bad kind", request{path: "/v1/alerts", body: alertsBody(alert(set("kind", "virus")))}, 400, "alerts[0].kind", "must be one of"},
		{"bad src_ip", request{path: "/v1/alerts", body: alertsBody(alert(set("src_ip", "999.1.1.1")))}, 400, "alerts[0].src_ip", "IPv4 or IPv6"},
		{"bad port", request{path: "/v1/alerts", body: alertsBody(alert(set("dst_port", 70000)))}, 400, "alerts[0].dst_port", "0 to 65535"},
		{"bad mac", request{path: "/v1/alerts", body: alertsBody(alert(set("src_mac", "xx")))}, 400, "alerts[0].src_mac", "MAC address"},
		{"bad zones", request{path: "/v1/alerts", body: alertsBody(alert(set("zones", "LAN-WAN")))}, 400, "alerts[0].zones", "joined by '>'"},
		{"bad file hash", request{path: "/v1/alerts", body: alertsBody(alert(set("file_sha256", "abc")))}, 400, "alerts[0].file_sha256", "64 hexadecimal"},
		{"zero count", request{path: "/v1/alerts", body: alertsBody(alert(set("count", 0)))}, 400, "alerts[0].count", "at least 1"},
		{"bad time", request{path: "/v1/alerts", body: alertsBody(alert(set("detected_at", "yesterday")))}, 400, "alerts[0]", "RFC 3339"},
		{"detected_at far in the future", request{path: "/v1/alerts", body: alertsBody(alert(set("detected_at", time.Now().Add(25*time.Hour).Format(time.RFC3339))))}, 400, "alerts[0].detected_at", "ahead of the server clock"},
		{"heartbeat unknown field", request{path: "/v1/heartbeat", body: mustJSON(heartbeat(set("temperature", 40)))}, 400, "temperature", "temperature: unknown field"},
		{"heartbeat without id", request{path: "/v1/heartbeat", body: mustJSON(heartbeat(set("id", nil)))}, 400, "id", "KSUID"},
		{"heartbeat negative clients", request{path: "/v1/heartbeat", body: mustJSON(heartbeat(set("clients", -1)))}, 400, "clients", "must not be negative"},
		{"heartbeat of another device", request{path: "/v1/heartbeat", body: mustJSON(heartbeat(set("device_id", other.DeviceID)))}, 403, "device_id", "not the device"},
		{"heartbeat missing auth", request{path: "/v1/heartbeat", token: "-", body: mustJSON(heartbeat())}, 401, "", "missing credential"},
		{"heartbeat wrong content type", request{path: "/v1/heartbeat", contentType: "application/x-www-form-urlencoded", body: mustJSON(heartbeat())}, 415, "", "Content-Type"},
		{"wrong method", request{method: http.MethodGet, path: "/v1/alerts"}, 405, "", "method GET not allowed"},
		{"unknown path", request{path: "/v1/alert", body: good}, 404, "", "no such path /v1/alert"},
	}
	before := g.written(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.req
			switch r.token {
			case "":
				r.token = tok
			case "-":
				r.token = ""
			}
			if r.contentType == "" {
				r.contentType = "application/json"
			}
			got := g.do(t, r)
			if got.status != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", got.status, tt.wantStatus, got.raw)
			}
			msg, _ := got.body["error"].(string)
			field, _ := got.body["field"].(string)
			if !strings.Contains(msg, tt.wantMsg) || field != tt.wantField {
				t.Fatalf("got error %q field %q, want error containing %q, field %q", msg, field, tt.wantMsg, tt.wantField)
			}
			if strings.Contains(got.raw, g.device.Credential) {
				t.Fatal("the response echoes the credential")
			}
			switch tt.wantStatus {
			case 401:
				if !strings.HasPrefix(got.header.Get("WWW-Authenticate"), "Bearer") {
					t.Fatalf("401 without WWW-Authenticate: Bearer (got %q)", got.header.Get("WWW-Authenticate"))
				}
			case 405:
				if got.header.Get("Allow") == "" {
					t.Fatal("405 without Allow")
				}
			}
			if n := g.written(t); n != before {
				t.Fatalf("a refused request wrote %d records to Kafka", n-before)
			}
		})
	}
}

func TestAlertsEndToEnd(t *testing.T) {
	start := time.Now().UTC()
	g := newGateway(t, ingest.Config{PublicMetrics: true}) // reads /metrics
	first, second := alert(set("severity", 1)), alert(set("device_id", g.device.DeviceID), set("received_at", "2001-01-01T00:00:00Z"))
	body := alertsBody(first, second, first) // the repeat is dropped

	got := g.do(t, request{path: "/v1/alerts", token: g.device.Credential, contentType: "application/json; charset=utf-8",
		encoding: "gzip", body: gz(body)})
	if got.status != http.StatusAccepted || got.raw != `{"accepted":2}` {
		t.Fatalf("POST /v1/alerts = %d %s, want 202 {\"accepted\":2}", got.status, got.raw)
	}
	recs := g.records(t, events.TopicAlerts, 2)
	ids := map[string]bool{first["id"].(string): true, second["id"].(string): true}
	for _, r := range recs {
		hdr := map[string]string{}
		for _, h := range r.Headers {
			hdr[h.Key] = string(h.Value)
		}
		want := map[string]string{"ce_source": ingest.Source, "ce_type": events.TypeAlertDetected,
			"ce_specversion": "1.0", "ce_subject": g.device.DeviceID, "content-type": "application/json"}
		for k, v := range want {
			if hdr[k] != v {
				t.Errorf("header %s = %q, want %q", k, hdr[k], v)
			}
		}
		if !ids[hdr["ce_id"]] || string(r.Key) != g.device.DeviceID {
			t.Errorf("record id %q key %q: want an alert id keyed by the device", hdr["ce_id"], r.Key)
		}
		delete(ids, hdr["ce_id"])
		env, err := eventlog.FromRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		p, err := events.Decode(env)
		if err != nil {
			t.Fatal(err)
		}
		a := p.(*events.Alert)
		if a.DeviceID != g.device.DeviceID || a.CustomerID != g.customer {
			t.Errorf("alert stamped %s/%s, want %s/%s", a.DeviceID, a.CustomerID, g.device.DeviceID, g.customer)
		}
		if a.ReceivedAt.Before(start) || a.ReceivedAt.After(time.Now()) {
			t.Errorf("received_at %s not stamped by the server clock", a.ReceivedAt)
		}
	}

	// A resend keeps its id and content: acknowledged, not written again.
	if got := g.do(t, request{path: "/v1/alerts", token: g.device.Credential, contentType: "application/json",
		body: alertsBody(first)}); got.status != http.StatusAccepted || got.raw != `{"accepted":0,"duplicates":1}` {
		t.Fatalf("resend = %d %s, want 202 {\"accepted\":0,\"duplicates\":1}", got.status, got.raw)
	}
	if n := g.endOffsets(t, events.TopicAlerts); n != 2 {
		t.Fatalf("after the resend appliance.alerts holds %d records, want 2", n)
	}

	// Read-your-writes: a device registered a moment ago is accepted.
	fresh := g.registerDevice(t, g.customer)
	if got := g.do(t, request{path: "/v1/heartbeat", token: fresh.Credential, contentType: "application/json",
		body: mustJSON(heartbeat())}); got.status != http.StatusAccepted || got.raw != `{"commands":[]}` {
		t.Fatalf("POST /v1/heartbeat = %d %s, want 202 {\"commands\":[]}", got.status, got.raw)
	}
	hb := g.records(t, events.TopicHeartbeats, 1)[0]
	env, err := eventlog.FromRecord(hb)
	if err != nil {
		t.Fatal(err)
	}
	p, err := events.Decode(env)
	if err != nil {
		t.Fatal(err)
	}
	if h := p.(*events.Heartbeat); h.DeviceID != fresh.DeviceID || h.CustomerID != g.customer || h.ReceivedAt.IsZero() {
		t.Fatalf("heartbeat stamped %+v", h)
	}

	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200} {
		if got := g.do(t, request{method: http.MethodGet, path: path}); got.status != want {
			t.Errorf("GET %s = %d, want %d", path, got.status, want)
		}
	}
	m := g.do(t, request{method: http.MethodGet, path: "/metrics"}).raw
	for _, line := range []string{
		"mimamori_ingest_alerts_accepted_total 2",
		"mimamori_ingest_alerts_duplicate_in_batch_total 1",
		"mimamori_ingest_alerts_resent_total 1",
		"mimamori_ingest_heartbeats_accepted_total 1",
		`mimamori_ingest_requests_total{code="202",route="/v1/alerts"} 2`,
		`mimamori_ingest_publish_duration_seconds_count{outcome="ok"} 2`,
	} {
		if !strings.Contains(m, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

// With Kafka gone the gateway answers 503 and Retry-After, never 2xx.
func TestKafkaDown(t *testing.T) {
	g := newGateway(t, ingest.Config{PublishTimeout: time.Second, PublicMetrics: true}) // reads /readyz
	// The device is known before the broker goes away.
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.live.WaitCaughtUp(wctx); err != nil {
		t.Fatal(err)
	}
	g.broker.Close()
	for _, r := range []request{
		{path: "/v1/alerts", body: alertsBody(alert())},
		{path: "/v1/heartbeat", body: mustJSON(heartbeat())},
	} {
		r.token, r.contentType = g.device.Credential, "application/json"
		got := g.do(t, r)
		if got.status != http.StatusServiceUnavailable || got.header.Get("Retry-After") != "5" || got.body["error"] == nil {
			t.Fatalf("%s with Kafka down = %d Retry-After %q %s, want 503, Retry-After 5 and a JSON error",
				r.path, got.status, got.header.Get("Retry-After"), got.raw)
		}
	}
	if got := g.do(t, request{method: http.MethodGet, path: "/readyz"}); got.status != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with Kafka down = %d", got.status)
	}
	if got := g.do(t, request{method: http.MethodGet, path: "/healthz"}); got.status != http.StatusOK {
		t.Fatalf("/healthz with Kafka down = %d", got.status)
	}
}
