package messages

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var placeholder = regexp.MustCompile(`\{[A-Za-z_]+\}`)

// TestEveryKeyInEveryLanguage fails when a key exists in one language
// only, or when the two languages of a key take different placeholders.
func TestEveryKeyInEveryLanguage(t *testing.T) {
	ja, en := load().texts[Japanese], load().texts[English]
	for k := range ja {
		if _, ok := en[k]; !ok {
			t.Errorf("%q is in ja.json only", k)
		}
	}
	for k := range en {
		if _, ok := ja[k]; !ok {
			t.Errorf("%q is in en.json only", k)
		}
	}
	for k, j := range ja {
		e, ok := en[k]
		if !ok {
			continue
		}
		pj, pe := placeholders(j), placeholders(e)
		if !slices.Equal(pj, pe) {
			t.Errorf("%q: ja takes %v, en takes %v", k, pj, pe)
		}
	}
}

func placeholders(s string) []string {
	p := placeholder.FindAllString(s, -1)
	slices.Sort(p)
	return slices.Compact(p)
}

// TestCatalogueFilesAreFlatObjects: the web app loads the files as they
// are, so each is one object of strings and no key appears twice (JSON
// would keep the last silently).
func TestCatalogueFilesAreFlatObjects(t *testing.T) {
	for _, lang := range Languages {
		dec := json.NewDecoder(strings.NewReader(string(JSON(lang))))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("%s.json does not start an object: %v %v", lang, tok, err)
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				t.Fatal(err)
			}
			k := tok.(string)
			if seen[k] {
				t.Errorf("%s.json: %q twice", lang, k)
			}
			seen[k] = true
			var v string
			if err := dec.Decode(&v); err != nil {
				t.Errorf("%s.json: %q is not a string: %v", lang, k, err)
			}
		}
	}
}

func TestText(t *testing.T) {
	for _, c := range []struct{ lang, key, want string }{
		{"ja", "api.login_required", "ログインしてください。"},
		{"en-GB,en;q=0.8", "api.login_required", "Please log in."},
		{"fr", "api.login_required", "ログインしてください。"},
		{"en", "pageOf", "1–20 of 45"},
		{"ja", "pageOf", "45件中 1〜20件"},
		{"en", "no.such.key", "no.such.key"},
	} {
		if got := Text(c.lang, c.key, "a", 1, "b", 20, "total", 45); got != c.want {
			t.Errorf("Text(%q, %q) = %q, want %q", c.lang, c.key, got, c.want)
		}
	}
	// A value is put in once, as it is: a placeholder inside a value stays.
	if got := Text("en", "unlockFor", "id", "{id}x"); got != "Unlock {id}x" {
		t.Errorf("value substituted again: %q", got)
	}
}

// sample holds every field any mail template reads.
var sample = map[string]any{
	"Customer": "みまもり商事", "Link": "https://portal.example/alerts/1", "Stars": "★★★", "What": "bad.example",
	"Serial": "MU-1", "DetectedAt": "2026-11-02 10:02:03 JST", "Appliance": "MU-1 (dev-1)", "Kind": "ドメイン",
	"Indicator": "bad.example", "Label": "phishing", "Action": "遮断しました", "Source": "192.168.1.2:5000",
	"Destination": "203.0.113.9:443", "Path": "lan>wan", "URL": "", "Domain": "bad.example", "FileName": "",
	"FileSHA256": "", "Count": 1, "First": "a", "Last": "b", "Detections": []string{"x (2)", "y (1)"},
	"Minutes": 15, "LastContact": "c", "JudgedAt": "d", "OfflineAt": "e", "BackAt": "f", "SilentSince": "g",
	"Level": "A", "LevelText": "A (x)", "StartedAt": "h", "Summary": "sum", "Details": "det", "Day": "2026-12-01",
	"From": "i", "Until": "j", "Company": "co", "ExpiresJST": "k", "Expires": "l", "Portal": "https://portal.example",
	"Login": "user1", "Password": "pw-secret", "Title": "mail.notice.title.replaced",
	"Method": "mail.method.totp", "IP": "", "When": "m", "Ended": "mail.notice.endedOthers",
}

// TestEveryMailRendersInEveryLanguage executes each template with every
// key it names present in the catalogue (a missing one is an error).
func TestEveryMailRendersInEveryLanguage(t *testing.T) {
	kinds := MailKinds()
	if len(kinds) < 10 {
		t.Fatalf("mail kinds: %v", kinds)
	}
	for _, kind := range kinds {
		if kind == "common" {
			continue
		}
		data := sample
		if kind == "notice" {
			data = map[string]any{}
			for k, v := range sample {
				data[k] = v
			}
			data["What"] = "mail.notice.what.replaced"
		}
		for _, lang := range Languages {
			subject, body, err := Mail(kind, lang, data)
			if err != nil {
				t.Errorf("%s: %v", kind, err)
				continue
			}
			if subject == "" || strings.Contains(subject, "\n") || strings.TrimSpace(body) == "" {
				t.Errorf("%s (%s): subject %q, body %q", kind, lang, subject, body)
			}
			if strings.Contains(body, "{") || strings.Contains(subject, "{") {
				t.Errorf("%s (%s): a placeholder is left: %q %q", kind, lang, subject, body)
			}
		}
	}
}

func TestMailOfAnUnknownKind(t *testing.T) {
	if _, _, err := Mail("nope", Japanese, sample); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v", err)
	}
}
