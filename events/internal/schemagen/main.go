// Command schemagen writes schemas/events/<type>.json, the JSON Schema of
// every known event type, from its Go payload type, and the golden file of
// a type that has none yet from the example its contract gives. Run it
// with go generate ./events/... (after registrygen, which it relies on).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/internal/schematag"
)

// Directories relative to the events package, where go generate runs.
const (
	schemaDir = "../schemas/events"
	goldenDir = "testdata/golden"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("schemagen: ")
	if err := run("."); err != nil {
		log.Fatal(err)
	}
}

// run writes every schema, removes the schema of a type no longer known
// and writes the golden file of a type that has none.
func run(eventsDir string) error {
	want, err := schemas()
	if err != nil {
		return err
	}
	dir := filepath.Join(eventsDir, schemaDir)
	old, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return err
	}
	for _, f := range old {
		if _, ok := want[strings.TrimSuffix(filepath.Base(f), ".json")]; !ok {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	for typ, s := range want {
		if err := os.WriteFile(filepath.Join(dir, typ+".json"), s, 0o644); err != nil {
			return err
		}
	}
	var errs []error
	for _, typ := range events.KnownTypes() {
		f := filepath.Join(eventsDir, goldenDir, typ+".json")
		if _, err := os.Stat(f); err == nil || !errors.Is(err, os.ErrNotExist) {
			continue // a golden file is written once and never changed
		}
		p, _ := events.NewPayload(typ)
		g, err := golden(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.WriteFile(f, g, 0o644); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// schemas returns the schema file of every known type by type name.
func schemas() (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, typ := range events.KnownTypes() {
		p, _ := events.NewPayload(typ)
		s, err := schema(typ, reflect.TypeOf(p).Elem())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", typ, err)
		}
		out[typ] = s
	}
	return out, nil
}

// schema is the JSON Schema of a payload struct: every field as its json
// tag names it, required (Go always writes every field), no other field,
// and the limits its schema tag states.
func schema(typ string, rt reflect.Type) ([]byte, error) {
	props := map[string]map[string]any{}
	var required []string
	for i := range rt.NumField() {
		f := rt.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			return nil, fmt.Errorf("field %s needs a json name", f.Name)
		}
		p, err := property(f)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name, err)
		}
		props[name] = p
		required = append(required, name)
	}
	doc := map[string]any{
		"$id":                  "https://mimamori.example/schemas/events/" + typ + ".json",
		"$schema":              "https://json-schema.org/draft/2020-12/schema",
		"title":                typ,
		"type":                 "object",
		"properties":           props,
		"required":             required,
		"additionalProperties": false,
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// property maps a Go field to its schema, with what its schema tag adds
// (see package schematag).
func property(f reflect.StructField) (map[string]any, error) {
	p := map[string]any{}
	switch k := f.Type.Kind(); {
	case f.Type == reflect.TypeFor[time.Time]():
		p["type"], p["format"] = "string", "date-time"
	case k == reflect.String:
		p["type"] = "string"
	case k >= reflect.Int && k <= reflect.Int64:
		p["type"] = "integer"
	case k >= reflect.Uint && k <= reflect.Uint64:
		p["type"], p["minimum"] = "integer", 0
	default:
		return nil, fmt.Errorf("type %s has no schema mapping", f.Type)
	}
	r, err := schematag.Parse(f.Tag.Get("schema"))
	if err != nil {
		return nil, err
	}
	if r.Minimum != nil {
		p["minimum"] = *r.Minimum
	}
	if r.Maximum != nil {
		p["maximum"] = *r.Maximum
	}
	if len(r.Enum) > 0 {
		p["enum"] = r.Enum
	}
	if r.Format != "" {
		p["format"] = r.Format
	}
	if r.Pattern != "" {
		p["pattern"] = r.Pattern
	}
	return p, nil
}

// golden is the first golden file of a type: an envelope of the example
// its contract gives (an Example method), at a fixed time.
func golden(p events.Payload) ([]byte, error) {
	ex, ok := p.(interface{ Example() events.Payload })
	if !ok {
		return nil, fmt.Errorf("%s has no golden file under events/%s: give %T an Example method (or write the file)",
			p.EventType(), goldenDir, p)
	}
	e, err := events.New("mimamori/example", ex.Example(), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		return nil, fmt.Errorf("example of %s: %w", p.EventType(), err)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
