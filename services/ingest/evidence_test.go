package ingest_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/infra/testkit"
	"github.com/mimamori/mimamori/services/ingest"
	"github.com/mimamori/mimamori/services/registry"
)

func (g *gateway) post(t *testing.T, token string, alerts ...map[string]any) response {
	t.Helper()
	return g.do(t, request{path: "/v1/alerts", token: token, contentType: "application/json", body: alertsBody(alerts...)})
}

func wantRefused(t *testing.T, got response, status int, field string, msg ...string) {
	t.Helper()
	if f, _ := got.body["field"].(string); got.status != status || f != field {
		t.Fatalf("got %d %s, want %d with field %q", got.status, got.raw, status, field)
	}
	for _, m := range msg {
		if e, _ := got.body["error"].(string); !strings.Contains(e, m) {
			t.Fatalf("error %q lacks %q", e, m)
		}
	}
}

// severities reads appliance.alerts and returns the severity of each
// alert id stored, and how many records there are.
func (g *gateway) severities(t *testing.T) (map[string]int, int) {
	t.Helper()
	n := int(g.endOffsets(t, events.TopicAlerts))
	out := map[string]int{}
	for _, r := range g.records(t, events.TopicAlerts, n) {
		env, err := eventlog.FromRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		p, err := events.Decode(env)
		if err != nil {
			t.Fatal(err)
		}
		out[env.ID] = p.(*events.Alert).Severity
	}
	return out, n
}

// An alert id is written once: the same id with other content is refused
// with 409 and nothing of the request is written, by the gateway that
// stored it and by another one that rebuilt its index from the log; a
// resend of the same content (whatever received_at it claims) is
// acknowledged without writing.
func TestAlertIDIsWrittenOnce(t *testing.T) {
	g := newGateway(t, ingest.Config{})
	tok := g.device.Credential
	first := alert(set("severity", 3))
	if got := g.post(t, tok, first); got.status != http.StatusAccepted {
		t.Fatalf("first version: %d %s", got.status, got.raw)
	}
	id := first["id"].(string)
	downgraded := alert(set("id", id), set("severity", 1), set("detected_at", first["detected_at"]))
	other := alert()
	wantStored := func(t *testing.T) {
		t.Helper()
		got, n := g.severities(t)
		if n != 1 || got[id] != 3 {
			t.Fatalf("appliance.alerts holds %d records %v, want only %s with severity 3", n, got, id)
		}
	}

	for name, gw := range map[string]*gateway{"same gateway": g, "another gateway": g.replica(t, ingest.Config{})} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := gw.index.WaitCaughtUp(ctx); err != nil {
				t.Fatal(err)
			}
			wantRefused(t, gw.post(t, tok, downgraded), http.StatusConflict, "alerts[0].id",
				"alerts[0].id: alert "+id+" was received before with other content")
			wantRefused(t, gw.post(t, tok, other, downgraded), http.StatusConflict, "alerts[1].id", id)
			wantStored(t)

			resend := alert(set("id", id), set("severity", 3), set("detected_at", first["detected_at"]),
				set("received_at", "2001-01-01T00:00:00Z"), set("device_id", g.device.DeviceID))
			if got := gw.post(t, tok, resend); got.status != http.StatusAccepted || got.raw != `{"accepted":0,"duplicates":1}` {
				t.Fatalf("resend of the same content: %d %s, want 202 {\"accepted\":0,\"duplicates\":1}", got.status, got.raw)
			}
			wantStored(t)
		})
	}

	// Within one request too: a repeat is dropped, a changed repeat refused.
	x := alert()
	wantRefused(t, g.post(t, tok, x, alert(set("id", x["id"]), set("label", "changed"))), http.StatusConflict, "alerts[1].id",
		"alerts[1].id: alert "+x["id"].(string)+" is also alerts[0], with other content")
	wantStored(t)
	if got := g.post(t, tok, x, x); got.status != http.StatusAccepted || got.raw != `{"accepted":1}` {
		t.Fatalf("a repeat in one request: %d %s", got.status, got.raw)
	}
}

// A device assigned to another customer no longer authenticates with the
// credentials it had: they were issued for the former site. A credential
// issued after the move works and its alerts are the new customer's.
func TestReassignedDeviceOldCredentialRefused(t *testing.T) {
	g := newGateway(t, ingest.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	spare, err := registry.IssueCredential(ctx, g.prod, g.device.DeviceID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{g.device.Credential, spare} {
		if got := g.post(t, tok, alert()); got.status != http.StatusAccepted {
			t.Fatalf("before the move: %d %s", got.status, got.raw)
		}
	}
	buyer, err := registry.RegisterCustomer(ctx, g.prod, "Sato Clinic", "owner@sato.example", "rs_1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := registry.AssignDevice(ctx, g.prod, g.device.DeviceID, buyer, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := g.live.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	before := g.endOffsets(t, events.TopicAlerts)
	for _, tok := range []string{g.device.Credential, spare} {
		wantRefused(t, g.post(t, tok, alert()), http.StatusUnauthorized, "", "invalid credential")
	}
	if n := g.endOffsets(t, events.TopicAlerts); n != before {
		t.Fatalf("refused requests wrote %d alerts", n-before)
	}
	fresh, err := registry.IssueCredential(ctx, g.prod, g.device.DeviceID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := g.post(t, fresh, alert()); got.status != http.StatusAccepted {
		t.Fatalf("credential issued after the move: %d %s", got.status, got.raw)
	}
	r := g.records(t, events.TopicAlerts, int(before)+1)[before]
	env, err := eventlog.FromRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	p, err := events.Decode(env)
	if err != nil {
		t.Fatal(err)
	}
	if c := p.(*events.Alert).CustomerID; c != buyer {
		t.Fatalf("alert after the move stamped with customer %s, want %s", c, buyer)
	}
}

// A device over its alert rate gets 429 with Retry-After and nothing is
// written; alerts count, not requests; other devices are not slowed; the
// bucket refills with time; a request larger than the burst passes when
// the bucket is full, and the device then waits for it to refill.
func TestDeviceRateLimit(t *testing.T) {
	clk := testkit.NewClock(time.Now())
	g := newGateway(t, ingest.Config{DeviceRate: 2, DeviceBurst: 10, Now: clk.Now})
	many := func(n int) []map[string]any {
		out := make([]map[string]any, n)
		for i := range out {
			out[i] = alert()
		}
		return out
	}
	throttled := func(t *testing.T, got response, retryAfter string) {
		t.Helper()
		wantRefused(t, got, http.StatusTooManyRequests, "", "too many alerts from this device: at most 2 a second on average, 10 at once")
		if ra := got.header.Get("Retry-After"); ra != retryAfter {
			t.Fatalf("Retry-After %q, want %q", ra, retryAfter)
		}
	}
	tok := g.device.Credential
	if got := g.post(t, tok, many(10)...); got.status != http.StatusAccepted {
		t.Fatalf("10 alerts within the burst: %d %s", got.status, got.raw)
	}
	before := g.endOffsets(t, events.TopicAlerts)
	throttled(t, g.post(t, tok, alert()), "1")
	if n := g.endOffsets(t, events.TopicAlerts); n != before {
		t.Fatalf("a throttled request wrote %d alerts", n-before)
	}

	other := g.registerDevice(t, g.customer)
	if got := g.post(t, other.Credential, many(10)...); got.status != http.StatusAccepted {
		t.Fatalf("another device: %d %s", got.status, got.raw)
	}

	clk.Advance(2 * time.Second) // 4 alerts' worth
	if got := g.post(t, tok, many(4)...); got.status != http.StatusAccepted {
		t.Fatalf("after the refill: %d %s", got.status, got.raw)
	}
	throttled(t, g.post(t, tok, alert()), "1")

	clk.Advance(time.Hour)
	if got := g.post(t, tok, many(30)...); got.status != http.StatusAccepted {
		t.Fatalf("30 alerts into a full bucket of 10: %d %s", got.status, got.raw)
	}
	throttled(t, g.post(t, tok, alert()), "11") // 20 alerts in debt, and one more
}
