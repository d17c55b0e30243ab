// Package schemacheck validates event payloads against the JSON Schemas in
// schemas/events, which go generate derives from the Go payload types: the
// tests use it to prove that the checks events.New runs on every payload
// refuse exactly what the published contract refuses.
package schemacheck

import (
	"bytes"
	"fmt"
	"io/fs"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/mimamori/mimamori/schemas"
)

var compiled = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	files, err := fs.Glob(schemas.Events, "events/*.json")
	if err != nil {
		return nil, err
	}
	out := map[string]*jsonschema.Schema{}
	for _, f := range files {
		raw, err := fs.ReadFile(schemas.Events, f)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if err := c.AddResource(f, doc); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		s, err := c.Compile(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		typ := f[len("events/") : len(f)-len(".json")]
		out[typ] = s
	}
	return out, nil
})

// Types lists the event types that have a schema.
func Types() ([]string, error) {
	m, err := compiled()
	if err != nil {
		return nil, err
	}
	var ts []string
	for t := range m {
		ts = append(ts, t)
	}
	return ts, nil
}

// Validate checks a JSON payload against the schema of its event type.
func Validate(eventType string, data []byte) error {
	m, err := compiled()
	if err != nil {
		return fmt.Errorf("load schemas: %w", err)
	}
	s, ok := m[eventType]
	if !ok {
		return fmt.Errorf("no schema for event type %q", eventType)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%s: %w", eventType, err)
	}
	if err := s.Validate(doc); err != nil {
		return fmt.Errorf("%s: %w", eventType, err)
	}
	return nil
}
