package events

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/mimamori/mimamori/events/internal/schematag"
	"github.com/mimamori/mimamori/schemas/schemacheck"
)

func schemaAlert() Alert {
	at := time.Date(2026, 4, 1, 9, 30, 0, 0, time.UTC)
	return Alert{ID: ksuid.New().String(), DeviceID: "dv_1", CustomerID: "cu_1", DetectedAt: at, ReceivedAt: at.Add(time.Second),
		Severity: 3, Kind: KindDomain, Indicator: "evil.example", Label: "C2", Action: ActionBlocked,
		SrcIP: "192.168.1.2", SrcPort: 5000, SrcMAC: "00:11:22:33:44:55", DstIP: "203.0.113.9", DstPort: 53,
		Protocol: "udp", Zones: "LAN>WAN", Domain: "evil.example", DefinitionsVersion: "1", Count: 1}
}

// forgetful is a contract whose hand-written checks forget its schema tags.
type forgetful struct {
	Level int    `json:"level" schema:"minimum=1,maximum=3"`
	Zones string `json:"zones" schema:"pattern=^(LAN|WAN)>(LAN|WAN)$"`
}

func (*forgetful) EventType() string { return "mimamori.test.forgetful.v1" }
func (*forgetful) Topic() string     { return "test" }
func (*forgetful) Key() string       { return "k" }
func (*forgetful) Validate() error   { return nil }

// A payload that passes its Go checks but breaks its schema tags does not
// become an event, and the error names the field and what it wants.
func TestNewRefusesWhatTheSchemaRefuses(t *testing.T) {
	if _, err := New("test", &forgetful{Level: 3, Zones: "LAN>WAN"}, time.Now()); err != nil {
		t.Fatalf("a valid payload is refused: %v", err)
	}
	for _, c := range []struct {
		p            forgetful
		field, wants string
	}{
		{forgetful{Level: 4, Zones: "LAN>WAN"}, "level", "want at most 3, got 4"},
		{forgetful{Level: 0, Zones: "LAN>WAN"}, "level", "want at least 1, got 0"},
		{forgetful{Level: 1, Zones: "LAN to WAN"}, "zones", `want a value matching ^(LAN|WAN)>(LAN|WAN)$, got "LAN to WAN"`},
	} {
		_, err := New("test", &c.p, time.Now())
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || fe.Problem != c.wants {
			t.Errorf("%+v: want %s: %s, got %v", c.p, c.field, c.wants, err)
		}
	}
}

// The checks events.New runs refuse exactly what the published schema
// refuses. For every known type (so a forgotten one cannot pass), a valid
// payload from its golden file gets, field by field, the values at and
// beyond each rule its schema tag states and a few no rule expects: the
// JSON Schema validator and the run-time check must give the same verdict
// on the same field, and Validate must accept what both allow at a rule.
func TestContractChecksAgreeWithTheSchemas(t *testing.T) {
	for _, typ := range KnownTypes() {
		t.Run(typ, func(t *testing.T) {
			base := goldenPayload(t, typ)
			if err := checkContract(base); err != nil {
				t.Fatalf("the golden payload breaks its contract: %v", err)
			}
			rv := reflect.ValueOf(base).Elem()
			for i := range rv.NumField() {
				f := rv.Type().Field(i)
				if f.Tag.Get("schema") == "" {
					continue // the schema says only the Go type, which Go guarantees
				}
				r, err := schematag.Parse(f.Tag.Get("schema"))
				if err != nil {
					t.Fatal(err)
				}
				refused := 0
				ruled := edgeValues(r, f.Type)
				for j, val := range append(ruled, otherValues(f.Type)...) {
					p := reflect.New(rv.Type())
					p.Elem().Set(rv)
					p.Elem().Field(i).Set(val)
					pay := p.Interface().(Payload)
					data, err := json.Marshal(pay)
					if err != nil {
						t.Fatal(err)
					}
					schemaErr := schemacheck.Validate(typ, data)
					runErr := checkContract(pay)
					if (schemaErr == nil) != (runErr == nil) {
						t.Errorf("%s = %v: schema says %v, events.New says %v", f.Name, val, schemaErr, runErr)
						continue
					}
					if runErr == nil && j < len(ruled) {
						if err := pay.Validate(); err != nil {
							t.Errorf("%s = %v: the schema allows it, Validate refuses: %v", f.Name, val, err)
						}
					}
					if runErr != nil {
						refused++
						var fe *FieldError
						if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); !errors.As(runErr, &fe) || fe.Field != name {
							t.Errorf("%s = %v: want the error on field %s, got %v", f.Name, val, name, runErr)
						}
					}
				}
				if refused == 0 {
					t.Errorf("%s: no value beyond its schema tag %q was tried", f.Name, f.Tag.Get("schema"))
				}
			}
		})
	}
}

// goldenPayload decodes the payload of a type's golden file.
func goldenPayload(t *testing.T, typ string) Payload {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "golden", typ+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var e Envelope
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	p, err := Decode(e)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// edgeValues are the values of a field's type at and just beyond each rule
// of its tag.
func edgeValues(r schematag.Rules, ft reflect.Type) []reflect.Value {
	var out []reflect.Value
	add := adder(&out, ft)
	switch ft.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		for _, lim := range []*int64{r.Minimum, r.Maximum} {
			if lim != nil {
				add(*lim - 1)
				add(*lim)
				add(*lim + 1)
			}
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		for _, lim := range []*int64{r.Minimum, r.Maximum} {
			if lim != nil && *lim > 0 {
				add(uint64(*lim - 1))
				add(uint64(*lim))
				add(uint64(*lim + 1))
			}
		}
	case reflect.String:
		for _, s := range r.Enum {
			add(s)
			add(strings.ToUpper(s))
			add(s + " ")
		}
		if r.Format == "date" {
			for _, s := range []string{"2024-02-29", "2026-02-29", "2026-04-31", "2026-4-1", "2026/04/01", "2026-04-01T00:00:00Z"} {
				add(s)
			}
		}
		if r.Pattern != "" {
			for _, s := range []string{"LAN>WAN", "SSID2>LAN", "LAN>LAN ", "lan>wan", "WAN>", ksuid.New().String(), ksuid.New().String() + "x"} {
				add(s)
			}
		}
	}
	return out
}

// otherValues are values of a field's type that no rule expects.
func otherValues(ft reflect.Type) []reflect.Value {
	var out []reflect.Value
	add := adder(&out, ft)
	for _, v := range []any{int64(-1), int64(0), int64(1), uint64(1 << 63), "", "x", "2026-13-01", "日本語",
		strings.Repeat("A", 27), strings.Repeat("A", 28)} {
		add(v)
	}
	return out
}

// adder appends a value converted to a field's type, when it converts
// without changing kind.
func adder(out *[]reflect.Value, ft reflect.Type) func(any) {
	return func(v any) {
		rv := reflect.ValueOf(v)
		if (rv.Kind() == reflect.String) == (ft.Kind() == reflect.String) && rv.CanConvert(ft) {
			*out = append(*out, rv.Convert(ft))
		}
	}
}

func ptr[T any](v T) *T { return &v }

// FuzzContractAgreesWithTheSchema feeds arbitrary values to the tagged
// fields of an alert and a device registration: the run-time check and the
// JSON Schema must agree on each.
func FuzzContractAgreesWithTheSchema(f *testing.F) {
	f.Add("LAN>WAN", 3, "domain", "2026-04-01", ksuid.New().String())
	f.Add("WAN>SSID9", 0, "Domain", "2026-02-29", "short")
	f.Fuzz(func(t *testing.T, zones string, severity int, kind, date, id string) {
		a := schemaAlert()
		a.Zones, a.Severity, a.Kind, a.ID = zones, severity, kind, id
		d := DeviceRegistered{DeviceID: "dv_1", Model: "M1", Serial: "S1", ManufacturedOn: date, RegisteredAt: time.Unix(0, 0).UTC()}
		for _, p := range []Payload{&a, &d} {
			data, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			schemaErr := schemacheck.Validate(p.EventType(), data)
			runErr := checkContract(p)
			if (schemaErr == nil) != (runErr == nil) {
				t.Fatalf("%s: schema says %v, events.New says %v", p.EventType(), schemaErr, runErr)
			}
		}
	})
}

// BenchmarkNew prints the cost of events.New beside its floor, the Go
// checks and JSON encoding without the contract check, and beside checking
// the same payload with the JSON Schema validator instead.
func BenchmarkNew(b *testing.B) {
	a := schemaAlert()
	data, err := json.Marshal(&a)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("New", func(b *testing.B) {
		for b.Loop() {
			if _, err := New("bench", &a, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ValidateAndMarshal", func(b *testing.B) {
		for b.Loop() {
			if err := a.Validate(); err != nil {
				b.Fatal(err)
			}
			if _, err := json.Marshal(&a); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ContractCheck", func(b *testing.B) {
		for b.Loop() {
			if err := checkContract(&a); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("JSONSchemaValidator", func(b *testing.B) {
		for b.Loop() {
			if err := schemacheck.Validate(TypeAlertDetected, data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
