package schematag

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	one, three := int64(1), int64(3)
	for _, c := range []struct {
		tag  string
		want Rules
		err  string
	}{
		{tag: ""},
		{tag: "minimum=1,maximum=3", want: Rules{Minimum: &one, Maximum: &three}},
		{tag: "enum=detected|blocked", want: Rules{Enum: []string{"detected", "blocked"}}},
		{tag: "format=date", want: Rules{Format: "date"}},
		{tag: "minimum=1,pattern=^a{1,3}$", want: Rules{Minimum: &one, Pattern: "^a{1,3}$"}},
		{tag: "minimum=one", err: `schema tag minimum=one: strconv.ParseInt: parsing "one": invalid syntax`},
		{tag: "format=email", err: "schema tag format=email: the only format a tag gives is date"},
		{tag: "maxLength=3", err: `schema tag item "maxLength=3": want minimum=, maximum=, enum=, format= or pattern=`},
	} {
		got, err := Parse(c.tag)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Parse(%q) = %v, want error %q", c.tag, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", c.tag, got, err, c.want)
		}
	}
}
