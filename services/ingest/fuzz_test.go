package ingest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/schemas/schemacheck"
)

var fuzzWho = identity{deviceID: "dv_fuzz", customerID: "cu_fuzz"}

// fuzzRequest runs a body through the same reading and decoding as the
// handlers. Every refusal must be a client error with a kind (never a
// panic, never a 500).
func fuzzRequest(t *testing.T, body []byte, gzipped bool, decode func([]byte) error) bool {
	t.Helper()
	r, _ := http.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if gzipped {
		r.Header.Set("Content-Encoding", "gzip")
	}
	cfg := Config{MaxWireBytes: 64 << 10, MaxBodyBytes: 256 << 10}.withDefaults()
	plain, err := readBody(r, cfg)
	if err == nil {
		err = decode(plain)
	}
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) || ae.kind == kindInternal || ae.kind == kindUnavailable {
			t.Fatalf("refusal is not a client error: %#v", err)
		}
		return false
	}
	return true
}

func gzipSeed(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

const seedAlert = `{"id":"2wJ1nXgWcZ9vY0bS3kP8qL4mT6r","detected_at":"2026-04-01T09:30:00Z","severity":3,"kind":"domain",` +
	`"indicator":"evil.example","action":"blocked","src_ip":"192.168.1.23","dst_ip":"203.0.113.9","zones":"LAN>WAN","count":1}`

func FuzzAlertsBody(f *testing.F) {
	for _, s := range []string{
		`{"alerts":[` + seedAlert + `]}`,
		`{"alerts":[` + seedAlert + `,` + seedAlert + `]}`,
		`{"alerts":[]}`, `{"alerts":[null]}`, `{"alerts":[{"severity":5}]}`, `[]`, `null`, `{"alerts":[` + seedAlert + `]}x`,
	} {
		f.Add([]byte(s), false)
		f.Add(gzipSeed([]byte(s)), true)
	}
	now := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	cfg := Config{}.withDefaults()
	f.Fuzz(func(t *testing.T, body []byte, gzipped bool) {
		var batch alertBatch
		ok := fuzzRequest(t, body, gzipped, func(b []byte) error {
			var err error
			batch, err = decodeAlerts(b, fuzzWho, now, cfg)
			return err
		})
		envs := batch.envs
		if !ok {
			return
		}
		// Accepted: it must be a JSON object of 1..1000 alerts, each valid
		// from the device, and what would be published must be valid events
		// stamped with the credential's identity.
		if len(envs) == 0 || len(envs) > cfg.MaxAlerts {
			t.Fatalf("accepted %d alerts", len(envs))
		}
		plain := body
		if gzipped {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("accepted a body that is not gzip: %v", err)
			}
			var buf bytes.Buffer
			buf.ReadFrom(zr)
			plain = buf.Bytes()
		}
		var req struct{ Alerts []events.Alert }
		if err := json.Unmarshal(plain, &req); err != nil {
			t.Fatalf("accepted a body that does not decode: %v", err)
		}
		for i := range req.Alerts {
			if err := req.Alerts[i].ValidateFromDevice(); err != nil {
				t.Fatalf("accepted an invalid alert: %v", err)
			}
		}
		for _, e := range envs {
			p, err := events.Decode(e)
			if err != nil {
				t.Fatalf("would publish an invalid event: %v", err)
			}
			if a := p.(*events.Alert); a.DeviceID != fuzzWho.deviceID || a.CustomerID != fuzzWho.customerID || !a.ReceivedAt.Equal(now) {
				t.Fatalf("alert not stamped: %+v", a)
			}
			if err := schemacheck.Validate(e.Type, e.Data); err != nil {
				t.Fatalf("would publish an event outside its JSON Schema: %v", err)
			}
		}
	})
}

func FuzzHeartbeatBody(f *testing.F) {
	seed := `{"id":"2wJ1nXgWcZ9vY0bS3kP8qL4mT6r","sent_at":"2026-04-01T09:30:00Z","firmware_version":"1.4.2","clients":3}`
	for _, s := range []string{seed, `{}`, `{"id":null}`, `{"clients":-1}`, `[1]`, seed + ` {}`} {
		f.Add([]byte(s), false)
		f.Add(gzipSeed([]byte(s)), true)
	}
	now := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	cfg := Config{}.withDefaults()
	f.Fuzz(func(t *testing.T, body []byte, gzipped bool) {
		var env events.Envelope
		ok := fuzzRequest(t, body, gzipped, func(b []byte) error {
			var err error
			env, err = decodeHeartbeat(b, fuzzWho, now, cfg)
			return err
		})
		if !ok {
			return
		}
		p, err := events.Decode(env)
		if err != nil {
			t.Fatalf("would publish an invalid event: %v", err)
		}
		h := p.(*events.Heartbeat)
		if h.DeviceID != fuzzWho.deviceID || h.CustomerID != fuzzWho.customerID || env.ID != h.ID {
			t.Fatalf("heartbeat not stamped: %+v", h)
		}
		if err := h.ValidateFromDevice(); err != nil {
			t.Fatalf("accepted an invalid heartbeat: %v", err)
		}
		if err := schemacheck.Validate(env.Type, env.Data); err != nil {
			t.Fatalf("would publish an event outside its JSON Schema: %v", err)
		}
	})
}
