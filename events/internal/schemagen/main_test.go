package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mimamori/mimamori/events"
)

// eventsDir is the events package, seen from this test.
var eventsDir = filepath.Join("..", "..")

// The committed schemas are the ones the Go types make, one per known type
// and no other: a field, limit or type changed without go generate fails
// here (and in CI).
func TestSchemasAreCurrent(t *testing.T) {
	want, err := schemas()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(eventsDir, schemaDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var committed []string
	for _, f := range files {
		typ := strings.TrimSuffix(filepath.Base(f), ".json")
		committed = append(committed, typ)
		got, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if w, ok := want[typ]; !ok {
			t.Errorf("schemas/events/%s.json has no Go type: run go generate ./events/...", typ)
		} else if !bytes.Equal(got, w) {
			t.Errorf("schemas/events/%s.json is stale: run go generate ./events/...", typ)
		}
	}
	for typ := range want {
		if !slices.Contains(committed, typ) {
			t.Errorf("schemas/events/%s.json is missing: run go generate ./events/...", typ)
		}
	}
}

// assigned stands for a new contract: a payload with an Example method.
type assigned struct{ events.DeviceAssigned }

func (*assigned) Example() events.Payload {
	return &events.DeviceAssigned{DeviceID: "dv_1", CustomerID: "cu_1", AssignedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// A new type gets its first golden file from its example, and it decodes;
// a type with neither golden file nor example is named with the fix.
func TestGoldenFromExample(t *testing.T) {
	g, err := golden(&assigned{})
	if err != nil {
		t.Fatal(err)
	}
	var e events.Envelope
	if err := json.Unmarshal(g, &e); err != nil {
		t.Fatal(err)
	}
	if _, err := events.Decode(e); err != nil {
		t.Fatalf("golden file made from the example does not decode: %v\n%s", err, g)
	}
	_, err = golden(&events.DeviceAssigned{})
	if err == nil || !strings.Contains(err.Error(), "give *events.DeviceAssigned an Example method") {
		t.Fatalf("got %v, want the missing example named", err)
	}
}
