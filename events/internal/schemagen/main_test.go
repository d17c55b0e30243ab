package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
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

// The schema tag and Validate say the same: at each stated limit and for
// each enum value the golden payload stays valid, one step beyond the limit
// or outside the enum it is refused. So the schema never refuses what the
// Go contract accepts there, nor accepts what it refuses.
func TestSchemaTagsAgreeWithValidate(t *testing.T) {
	for _, typ := range events.KnownTypes() {
		raw, err := os.ReadFile(filepath.Join(eventsDir, goldenDir, typ+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var e events.Envelope
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		base, err := events.Decode(e)
		if err != nil {
			t.Fatal(err)
		}
		rt := reflect.TypeOf(base).Elem()
		for i := range rt.NumField() {
			f := rt.Field(i)
			p, err := property(f)
			if err != nil {
				t.Fatal(err)
			}
			if f.Tag.Get("schema") == "" {
				continue
			}
			check := func(set func(reflect.Value), valid bool, what string) {
				t.Helper()
				v := reflect.New(rt)
				v.Elem().Set(reflect.ValueOf(base).Elem())
				set(v.Elem().Field(i))
				err := v.Interface().(events.Payload).Validate()
				if valid && err != nil {
					t.Errorf("%s.%s %s: the schema allows it, Validate refuses: %v", typ, f.Name, what, err)
				}
				if !valid && err == nil {
					t.Errorf("%s.%s %s: the schema refuses it, Validate accepts", typ, f.Name, what)
				}
			}
			setInt := func(n int64) func(reflect.Value) {
				return func(v reflect.Value) {
					if v.CanUint() {
						v.SetUint(uint64(n))
					} else {
						v.SetInt(n)
					}
				}
			}
			if n, ok := p["minimum"].(int64); ok {
				check(setInt(n), true, fmt.Sprint("at minimum ", n))
				if k := f.Type.Kind(); n > 0 || k < reflect.Uint || k > reflect.Uint64 { // nothing is below 0 in a uint
					check(setInt(n-1), false, fmt.Sprint("below minimum ", n))
				}
			}
			if n, ok := p["maximum"].(int64); ok {
				check(setInt(n), true, fmt.Sprint("at maximum ", n))
				check(setInt(n+1), false, fmt.Sprint("above maximum ", n))
			}
			if vals, ok := p["enum"].([]string); ok {
				for _, s := range vals {
					check(func(v reflect.Value) { v.SetString(s) }, true, "= "+s)
				}
				check(func(v reflect.Value) { v.SetString("not-" + vals[0]) }, false, "outside the enum")
			}
		}
	}
}
