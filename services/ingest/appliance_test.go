package ingest_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/mimamori/mimamori/appliance/defs"
	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/infra/testkit"
	"github.com/mimamori/mimamori/services/ingest"
	"github.com/mimamori/mimamori/services/registry"
)

// bundle builds a signed definitions bundle of one domain list.
func bundle(t *testing.T, priv ed25519.PrivateKey, version uint64, domains string) []byte {
	t.Helper()
	entries, err := defs.ParseList(defs.ListDomains, bytes.NewBufferString(domains))
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	b, err := defs.Build(defs.Spec{Version: version, Created: created}, defs.Lists{defs.ListDomains: entries}, defs.DefaultPortScan, priv)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDefinitionsDistribution: GET /v1/definitions serves the published
// bundle with an ETag, answers 304 to a device that has it, serves the
// next published version at once (even when it has the same size and
// modification time as the one before, as on a file system with coarse
// timestamps), refuses devices without a credential, and heartbeats of
// devices behind the published version are told to fetch definitions.
func TestDefinitionsDistribution(t *testing.T) {
	dir := t.TempDir()
	g := newGateway(t, ingest.Config{DefinitionsDir: dir})
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	latest := filepath.Join(dir, ingest.LatestBundle)
	get := func(token, etag string) response {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, g.url+"/v1/definitions", nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := g.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var raw bytes.Buffer
		raw.ReadFrom(resp.Body)
		return response{status: resp.StatusCode, header: resp.Header, raw: raw.String()}
	}
	hbCommands := func(version string) string {
		t.Helper()
		r := g.do(t, request{path: "/v1/heartbeat", token: g.device.Credential, contentType: "application/json",
			body: mustJSON(heartbeat(set("definitions_version", version)))})
		if r.status != http.StatusAccepted {
			t.Fatalf("heartbeat = %d %s", r.status, r.raw)
		}
		return r.raw
	}

	if r := get(g.device.Credential, ""); r.status != http.StatusNotFound {
		t.Fatalf("nothing published: GET = %d %s, want 404", r.status, r.raw)
	}
	if got := hbCommands("1"); got != `{"commands":[]}` {
		t.Fatalf("nothing published: heartbeat reply %s", got)
	}

	v1 := bundle(t, priv, 1, "evil-c2.example 3 C2\n")
	if err := defs.WriteFileSync(latest, v1); err != nil {
		t.Fatal(err)
	}
	r := get(g.device.Credential, "")
	etag1 := r.header.Get("ETag")
	if r.status != http.StatusOK || r.raw != string(v1) || etag1 == "" || r.header.Get("X-Definitions-Version") != "1" {
		t.Fatalf("v1: GET = %d, ETag %q, version %q, body matches %v", r.status, etag1, r.header.Get("X-Definitions-Version"), r.raw == string(v1))
	}
	if r := get(g.device.Credential, etag1); r.status != http.StatusNotModified || r.raw != "" || r.header.Get("ETag") != etag1 {
		t.Fatalf("If-None-Match current: GET = %d (%d bytes), ETag %q; want 304, no body", r.status, len(r.raw), r.header.Get("ETag"))
	}
	if r := get(g.device.Credential, `"other", `+etag1); r.status != http.StatusNotModified {
		t.Fatalf("If-None-Match list holding the current tag: GET = %d, want 304", r.status)
	}
	if got := hbCommands("1"); got != `{"commands":[]}` {
		t.Fatalf("device on the published version: heartbeat reply %s", got)
	}

	// v2 of the same size, stamped with v1's modification time.
	v2 := bundle(t, priv, 2, "evil-c2.example 3 C2\n")
	st1, err := os.Stat(latest)
	if err != nil {
		t.Fatal(err)
	}
	if err := defs.WriteFileSync(latest, v2); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(latest, st1.ModTime(), st1.ModTime()); err != nil {
		t.Fatal(err)
	}
	t.Logf("v1 %d bytes, v2 %d bytes", len(v1), len(v2))
	r = get(g.device.Credential, etag1)
	etag2 := r.header.Get("ETag")
	if r.status != http.StatusOK || r.raw != string(v2) || etag2 == etag1 || r.header.Get("X-Definitions-Version") != "2" {
		t.Fatalf("v2 published: GET If-None-Match v1 = %d, ETag %q (v1 %q), version %q, is v2 %v",
			r.status, etag2, etag1, r.header.Get("X-Definitions-Version"), r.raw == string(v2))
	}
	if r := get(g.device.Credential, etag2); r.status != http.StatusNotModified {
		t.Fatalf("If-None-Match v2: GET = %d, want 304", r.status)
	}
	for _, have := range []string{"1", "", "2026.04.01-1"} {
		if got := hbCommands(have); got != `{"commands":["fetch-definitions"]}` {
			t.Fatalf("device on %q, v2 published: heartbeat reply %s", have, got)
		}
	}
	if got := hbCommands("2"); got != `{"commands":[]}` {
		t.Fatalf("device on v2: heartbeat reply %s", got)
	}

	for _, token := range []string{"", "nope.nope", g.device.Credential + "x"} {
		if r := get(token, ""); r.status != http.StatusUnauthorized || bytes.Contains([]byte(r.raw), v2[:20]) {
			t.Fatalf("credential %q: GET = %d %q, want 401", token, r.status, r.raw)
		}
	}
}

// TestGapRecordPublished: POST /v1/gaps publishes one
// mimamori.alert.dropped.v1 event with the exact count, stamped with the
// device and customer; a malformed or unauthenticated one writes nothing.
func TestGapRecordPublished(t *testing.T) {
	g := newGateway(t, ingest.Config{})
	id := ksuid.New().String()
	droppedAt := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	good := mustJSON(map[string]any{"id": id, "dropped": 1234, "dropped_at": droppedAt})
	for _, bad := range []request{
		{path: "/v1/gaps", contentType: "application/json", body: good},
		{path: "/v1/gaps", token: g.device.Credential, contentType: "application/json", body: []byte(`{"id":"x","dropped":1}`)},
		{path: "/v1/gaps", token: g.device.Credential, contentType: "application/json",
			body: mustJSON(map[string]any{"id": id, "dropped": 1, "dropped_at": droppedAt, "surprise": 1})},
	} {
		if r := g.do(t, bad); r.status/100 == 2 {
			t.Fatalf("bad gap %s accepted: %d %s", bad.body, r.status, r.raw)
		}
	}
	if r := g.do(t, request{path: "/v1/gaps", token: g.device.Credential, contentType: "application/json", body: good}); r.status != http.StatusAccepted {
		t.Fatalf("POST /v1/gaps = %d %s", r.status, r.raw)
	}
	recs := g.records(t, events.TopicAlerts, 1)
	env, err := eventlog.FromRecord(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	if env.Type != events.TypeAlertsDropped {
		t.Fatalf("event type %q, want %q", env.Type, events.TypeAlertsDropped)
	}
	p, err := events.Decode(env)
	if err != nil {
		t.Fatal(err)
	}
	d := p.(*events.AlertsDropped)
	if d.ID != id || d.Dropped != 1234 || !d.DroppedAt.Equal(droppedAt) || d.DeviceID != g.device.DeviceID ||
		d.CustomerID != g.customer || d.ReceivedAt.IsZero() || string(recs[0].Key) != g.device.DeviceID {
		t.Fatalf("gap event %+v key %q", d, recs[0].Key)
	}
}

// TestRebootDeliveredOnce: an operator's reboot request reaches the
// device on its next heartbeat reply, the delivery is recorded on the
// devices topic before the reply, and the heartbeat after that does not
// repeat it. A request for a well-formed device ID nobody authenticates as
// is accepted by registry.RequestReboot but never delivered; a malformed
// one is refused.
func TestRebootDeliveredOnce(t *testing.T) {
	g := newGateway(t, ingest.Config{})
	ctx := context.Background()
	dev := g.device.DeviceID
	if _, err := registry.RequestReboot(ctx, g.prod, "not-a-device", "ops", "", time.Now()); err == nil {
		t.Fatal("reboot of a malformed device ID accepted")
	}
	ghost := registry.DevicePrefix + ksuid.New().String()
	if _, err := registry.RequestReboot(ctx, g.prod, ghost, "ops", "ghost", time.Now()); err != nil {
		t.Fatal(err)
	}
	hbReply := func() string {
		t.Helper()
		r := g.do(t, request{path: "/v1/heartbeat", token: g.device.Credential, contentType: "application/json",
			body: mustJSON(heartbeat())})
		if r.status != http.StatusAccepted {
			t.Fatalf("heartbeat = %d %s", r.status, r.raw)
		}
		return r.raw
	}
	if got := hbReply(); got != `{"commands":[]}` {
		t.Fatalf("no request: heartbeat reply %s", got)
	}

	reqID, err := registry.RequestReboot(ctx, g.prod, dev, "ops@mimamori", "resolver stuck", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The request reaches ingest through its tail of the devices topic.
	testkit.WaitUntil(t, 10*time.Second, "ingest to read the reboot request", func() bool {
		id, ok := g.live.State().PendingReboot(dev)
		return ok && id == reqID
	})
	if got := hbReply(); got != `{"commands":["reboot"]}` {
		t.Fatalf("pending reboot: heartbeat reply %s", got)
	}
	for i := 0; i < 2; i++ {
		if got := hbReply(); got != `{"commands":[]}` {
			t.Fatalf("reboot already delivered: heartbeat %d reply %s", i+2, got)
		}
	}

	var delivered []*events.DeviceCommandDelivered
	for _, rec := range g.records(t, events.TopicDevices, int(g.endOffsets(t, events.TopicDevices))) {
		env, err := eventlog.FromRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		if env.Type != events.TypeDeviceCommandDelivered {
			continue
		}
		p, err := events.Decode(env)
		if err != nil {
			t.Fatal(err)
		}
		d := p.(*events.DeviceCommandDelivered)
		if string(rec.Key) != d.DeviceID {
			t.Fatalf("delivery record keyed %q, device %s", rec.Key, d.DeviceID)
		}
		delivered = append(delivered, d)
	}
	if len(delivered) != 1 || delivered[0].DeviceID != dev || delivered[0].RequestID != reqID ||
		delivered[0].Command != events.DeviceCommandReboot || delivered[0].DeliveredAt.IsZero() {
		t.Fatalf("delivery records %+v, want one for request %s of %s", delivered, reqID, dev)
	}

	// A registry rebuilt from the log agrees: nothing pending for the
	// device, and the ghost's request is still undelivered.
	fresh, err := registry.NewLive(g.kcfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- fresh.Run(rctx) }()
	defer func() { cancel(); <-done }()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := fresh.WaitCaughtUp(wctx); err != nil {
		t.Fatal(err)
	}
	if id, ok := fresh.PendingReboot(dev); ok {
		t.Fatalf("rebuilt registry: request %s still pending after delivery", id)
	}
	if _, ok := fresh.PendingReboot(ghost); !ok {
		t.Fatal("rebuilt registry: the unknown device's request is no longer pending")
	}
}
