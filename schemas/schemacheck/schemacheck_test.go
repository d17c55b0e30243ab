package schemacheck_test

import (
	"encoding/json"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/schemas"
	"github.com/mimamori/mimamori/schemas/schemacheck"
)

// The known types, their Go payload types and the schemas all come from
// the one registry (events.KnownTypes, generated from the Go types): the
// test walks it, so a type forgotten anywhere cannot pass.
func TestEveryTypeHasAMatchingSchema(t *testing.T) {
	types, err := schemacheck.Types()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(types)
	known := events.KnownTypes()
	slices.Sort(known)
	if !slices.Equal(types, known) {
		t.Fatalf("schemas for %v, Go types for %v", types, known)
	}
	for _, typ := range known {
		t.Run(typ, func(t *testing.T) {
			v, ok := events.NewPayload(typ)
			if !ok {
				t.Fatalf("known type %s has no payload", typ)
			}
			raw, err := fs.ReadFile(schemas.Events, "events/"+typ+".json")
			if err != nil {
				t.Fatal(err)
			}
			var s struct {
				Properties map[string]struct {
					Type   string `json:"type"`
					Format string `json:"format"`
				} `json:"properties"`
				Required             []string `json:"required"`
				AdditionalProperties bool     `json:"additionalProperties"`
			}
			if err := json.Unmarshal(raw, &s); err != nil {
				t.Fatal(err)
			}
			rt := reflect.TypeOf(v).Elem()
			var fields []string
			for i := range rt.NumField() {
				f := rt.Field(i)
				name := strings.Split(f.Tag.Get("json"), ",")[0]
				fields = append(fields, name)
				p, ok := s.Properties[name]
				if !ok {
					t.Errorf("Go field %s (%s) is missing from the schema", f.Name, name)
					continue
				}
				want := "integer"
				switch {
				case f.Type == reflect.TypeFor[time.Time]():
					want = "string"
					if p.Format != "date-time" {
						t.Errorf("%s: format %q, want date-time", name, p.Format)
					}
				case f.Type.Kind() == reflect.String:
					want = "string"
				}
				if p.Type != want {
					t.Errorf("%s: schema type %q, Go type wants %q", name, p.Type, want)
				}
			}
			for name := range s.Properties {
				if !slices.Contains(fields, name) {
					t.Errorf("schema property %s has no Go field", name)
				}
			}
			slices.Sort(fields)
			slices.Sort(s.Required)
			if !slices.Equal(fields, s.Required) {
				t.Errorf("required %v, Go always writes %v", s.Required, fields)
			}
			if s.AdditionalProperties {
				t.Error("additionalProperties must be false")
			}
		})
	}
}

func TestValidateRejectsWithPlace(t *testing.T) {
	err := schemacheck.Validate(events.TypeDeviceAssigned, []byte(`{"device_id":"d","customer_id":7,"assigned_at":"2026-01-01T00:00:00Z"}`))
	if err == nil || !strings.Contains(err.Error(), "customer_id") {
		t.Fatalf("got %v, want an error naming customer_id", err)
	}
}
