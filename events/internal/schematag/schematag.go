// Package schematag reads the schema tag of an event payload field, the one
// place that states what a Go type cannot (limits, enums, formats,
// patterns): schemagen writes it into the JSON Schema and events.New
// enforces it at run time.
package schematag

import (
	"fmt"
	"strconv"
	"strings"
)

// Rules are the items of one schema tag. A nil Minimum or Maximum is no
// limit; an empty Enum, Format or Pattern is none.
type Rules struct {
	Minimum, Maximum *int64
	Enum             []string
	Format           string
	Pattern          string
}

// Parse reads a tag's comma-separated items: minimum=N, maximum=N,
// enum=a|b|c, format=F, and last, as it may hold commas, pattern=RE.
func Parse(tag string) (Rules, error) {
	var r Rules
	for tag != "" {
		item := tag
		if strings.HasPrefix(tag, "pattern=") {
			tag = ""
		} else {
			item, tag, _ = strings.Cut(tag, ",")
		}
		key, val, _ := strings.Cut(item, "=")
		switch key {
		case "minimum", "maximum":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return Rules{}, fmt.Errorf("schema tag %s: %w", item, err)
			}
			if key == "minimum" {
				r.Minimum = &n
			} else {
				r.Maximum = &n
			}
		case "enum":
			r.Enum = strings.Split(val, "|")
		case "format":
			if val != "date" {
				return Rules{}, fmt.Errorf("schema tag %s: the only format a tag gives is date", item)
			}
			r.Format = val
		case "pattern":
			r.Pattern = val
		default:
			return Rules{}, fmt.Errorf("schema tag item %q: want minimum=, maximum=, enum=, format= or pattern=", item)
		}
	}
	return r, nil
}
