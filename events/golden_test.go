package events_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/schemas/schemacheck"
)

// Every version ever written stays decodable: each golden file is an event
// as it was once written to the log. Never edit one; add a new file for a
// new version.
func TestGoldenEventsDecode(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.json")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var e events.Envelope
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimSuffix(filepath.Base(f), ".json"); e.Type != want {
				t.Fatalf("file %s holds type %s", f, e.Type)
			}
			seen[e.Type] = true
			p, err := events.Decode(e)
			if err != nil {
				t.Fatal(err)
			}
			if err := schemacheck.Validate(e.Type, e.Data); err != nil {
				t.Fatalf("golden data does not satisfy its schema: %v", err)
			}
			again, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			var a, b any
			_ = json.Unmarshal(again, &a)
			_ = json.Unmarshal(e.Data, &b)
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			if !bytes.Equal(ja, jb) {
				t.Fatalf("decode+encode changed the payload:\n got %s\nwant %s", ja, jb)
			}
		})
	}
	for _, typ := range events.KnownTypes() {
		if !seen[typ] {
			t.Errorf("no golden file for %s under testdata/golden (run go generate ./events/... with an Example on its contract)", typ)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	cases := []struct {
		name string
		env  events.Envelope
		want string
	}{
		{"unknown type", events.Envelope{ID: "x", Type: "mimamori.nope.v1", SpecVersion: "1.0", Data: []byte(`{}`)}, "unknown event type"},
		{"bad specversion", events.Envelope{ID: "x", Type: events.TypeDeviceAssigned, SpecVersion: "0.3", Data: []byte(`{}`)}, "specversion"},
		{"bad json", events.Envelope{ID: "x", Type: events.TypeDeviceAssigned, SpecVersion: "1.0", Data: []byte(`{`)}, "decode data"},
		{"invalid field", events.Envelope{ID: "x", Type: events.TypeDeviceAssigned, SpecVersion: "1.0",
			Data: []byte(`{"device_id":"d","assigned_at":"2026-01-01T00:00:00Z"}`)}, "customer_id: is required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := events.Decode(c.env)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}
