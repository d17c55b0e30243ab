package portal

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mimamori/mimamori/schemas/messages"
)

// TestEveryAPIErrorHasItsText reads the portal's source for the error
// codes it answers with (writeAPIError, writeAPIMessage and the table of
// account errors) and fails when the catalogue has no "api.<code>" text
// for one: the user would see the key instead of a sentence.
func TestEveryAPIErrorHasItsText(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	uses := []*regexp.Regexp{
		regexp.MustCompile(`writeAPIError\([^,]+, [^,]+, "([a-z_]+)"\)`),
		regexp.MustCompile(`writeAPIMessage\([^,]+, [^,]+, "[a-z_]+", "([a-z_]+)"\)`),
		regexp.MustCompile(`\{accounts\.Err\w+, http\.Status\w+, "([a-z_]+)"\}`),
	}
	seen := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, re := range uses {
			for _, m := range re.FindAllStringSubmatch(string(src), -1) {
				seen[m[1]] = true
				if !messages.Has("api." + m[1]) {
					t.Errorf("%s answers %q, which has no api.%s in schemas/messages", f, m[1], m[1])
				}
			}
		}
	}
	if len(seen) < 25 {
		t.Fatalf("found only %d error codes in the source: the patterns no longer match it", len(seen))
	}
}

func TestStatusPageSpeaksBothLanguages(t *testing.T) {
	var b strings.Builder
	if err := page.Execute(&b, Status{}); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	for _, want := range []string{"契約企業 / customers", "過去24時間の検知 / alerts, last 24 h",
		"まだ機器が登録されていません。<code>mimamori device register</code> で機器を登録してください。",
		"No appliance is registered yet: register one with <code>mimamori device register</code>."} {
		if !strings.Contains(html, want) {
			t.Errorf("status page lacks %q:\n%s", want, html)
		}
	}
	b.Reset()
	if err := page.Execute(&b, Status{Devices: 3}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "device register") {
		t.Error("the empty state shows although appliances are registered")
	}
}
