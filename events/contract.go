package events

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mimamori/mimamori/events/internal/schematag"
)

// The schema of a payload is written from its Go type (see README.md): Go
// guarantees the types, the field names and that every field is present,
// so what the JSON Schema adds are the limits of the schema tags. New
// enforces those same tags on every payload, whichever door it came in by
// (ingest, portal, operator commands), with the checks compiled once per
// type; contract_test.go proves that they refuse exactly what the
// published schema refuses.

// fieldCheck is one tagged field's rules, ready to run.
type fieldCheck struct {
	index   int
	name    string // the json name, as errors report the field
	rules   schematag.Rules
	pattern *regexp.Regexp
}

var contracts sync.Map // reflect.Type → []fieldCheck or error

// contractOf compiles the checks of a payload's struct type once.
func contractOf(rt reflect.Type) ([]fieldCheck, error) {
	if c, ok := contracts.Load(rt); ok {
		if err, bad := c.(error); bad {
			return nil, err
		}
		return c.([]fieldCheck), nil
	}
	checks, err := compileContract(rt)
	if err != nil {
		contracts.Store(rt, err)
		return nil, err
	}
	contracts.Store(rt, checks)
	return checks, nil
}

func compileContract(rt reflect.Type) ([]fieldCheck, error) {
	var checks []fieldCheck
	for i := range rt.NumField() {
		f := rt.Field(i)
		tag := f.Tag.Get("schema")
		if tag == "" {
			continue
		}
		r, err := schematag.Parse(tag)
		if err != nil {
			return nil, fmt.Errorf("%s field %s: %w", rt, f.Name, err)
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		c := fieldCheck{index: i, name: name, rules: r}
		if r.Pattern != "" {
			if c.pattern, err = regexp.Compile(r.Pattern); err != nil {
				return nil, fmt.Errorf("%s field %s: %w", rt, f.Name, err)
			}
		}
		checks = append(checks, c)
	}
	return checks, nil
}

// checkContract returns the first field of p that breaks its schema tag.
func checkContract(p Payload) error {
	v := reflect.ValueOf(p)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		v = v.Elem()
	}
	checks, err := contractOf(v.Type())
	if err != nil {
		return err
	}
	for _, c := range checks {
		if problem := c.check(v.Field(c.index)); problem != "" {
			return &FieldError{Field: c.name, Problem: problem}
		}
	}
	return nil
}

// check says what is wrong with one field's value, or "" when nothing is.
// Limits apply to numbers, the rest to strings, as in JSON Schema.
func (c fieldCheck) check(v reflect.Value) string {
	r := c.rules
	switch {
	case v.CanInt():
		if want := limits(r, v.Int()); want != "" {
			return fmt.Sprintf("want %s, got %d", want, v.Int())
		}
	case v.CanUint():
		// Beyond the largest int64 a number is above every limit a tag gives.
		if want := limits(r, int64(min(v.Uint(), math.MaxInt64))); want != "" {
			return fmt.Sprintf("want %s, got %d", want, v.Uint())
		}
	case v.Kind() == reflect.String:
		s := v.String()
		if len(r.Enum) > 0 && !slices.Contains(r.Enum, s) {
			return fmt.Sprintf("want one of %s, got %q", strings.Join(r.Enum, ", "), truncate(s, 40))
		}
		if r.Format == "date" {
			if _, err := time.Parse(time.DateOnly, s); err != nil {
				return fmt.Sprintf("want a date as YYYY-MM-DD, got %q", truncate(s, 40))
			}
		}
		if c.pattern != nil && !c.pattern.MatchString(s) {
			return fmt.Sprintf("want a value matching %s, got %q", r.Pattern, truncate(s, 40))
		}
	}
	return ""
}

// limits says which of a number's limits it breaks, or "" for none.
func limits(r schematag.Rules, n int64) string {
	if r.Minimum != nil && n < *r.Minimum {
		return "at least " + strconv.FormatInt(*r.Minimum, 10)
	}
	if r.Maximum != nil && n > *r.Maximum {
		return "at most " + strconv.FormatInt(*r.Maximum, 10)
	}
	return ""
}
