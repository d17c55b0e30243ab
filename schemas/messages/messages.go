// Package messages is the one catalogue of mimamori's user-facing texts in
// Japanese and English: the portal's server responses, its web app (which
// loads the same catalogue from the server), the status page, and the mail
// bodies, which are templates, one per kind, taking their words from here.
//
// The catalogue is ja.json and en.json, flat objects of key to text with
// {name} placeholders; the mail templates are mail/<kind>.tmpl. A key in one
// language only, a placeholder in one language only, or a template naming a
// key that does not exist fails the package's tests.
package messages

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"text/template"
)

// Japanese and English are the languages; Japanese comes first.
const (
	Japanese = "ja"
	English  = "en"
)

// Languages are the catalogue's languages, Japanese first.
var Languages = []string{Japanese, English}

//go:embed ja.json en.json
var catalogueFiles embed.FS

//go:embed mail/*.tmpl
var mailFiles embed.FS

type catalogue struct {
	raw   map[string][]byte            // the file of each language, as the web app gets it
	texts map[string]map[string]string // language → key → text
	mail  map[string]*template.Template
}

// load reads the embedded catalogue once; an embedded file that does not
// parse is a build mistake the tests catch, so it panics.
var load = sync.OnceValue(func() *catalogue {
	c := &catalogue{raw: map[string][]byte{}, texts: map[string]map[string]string{}, mail: map[string]*template.Template{}}
	for _, lang := range Languages {
		raw, err := catalogueFiles.ReadFile(lang + ".json")
		if err != nil {
			panic(err)
		}
		m := map[string]string{}
		if err := json.Unmarshal(raw, &m); err != nil {
			panic(fmt.Sprintf("messages/%s.json: %v", lang, err))
		}
		c.raw[lang], c.texts[lang] = raw, m
	}
	for _, lang := range Languages {
		t := template.New("mail").Option("missingkey=error").Funcs(funcs(c, lang))
		if _, err := t.ParseFS(mailFiles, "mail/*.tmpl"); err != nil {
			panic(err)
		}
		c.mail[lang] = t
	}
	return c
})

// Lang is the catalogue language for a language tag or an Accept-Language
// header: English for anything that starts with "en", else Japanese.
func Lang(tag string) string {
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(tag)), English) {
		return English
	}
	return Japanese
}

// Has reports whether key exists (in every language: the tests see to it).
func Has(key string) bool {
	_, ok := load().texts[Japanese][key]
	return ok
}

// Text is key's text in lang with each {name} replaced; args are name,
// value pairs. A key that does not exist gives the key itself, so that a
// mistake shows instead of an empty text.
func Text(lang, key string, args ...any) string {
	s, ok := load().texts[Lang(lang)][key]
	if !ok {
		return key
	}
	return fill(s, args)
}

func fill(s string, args []any) string {
	if len(args) == 0 {
		return s
	}
	pairs := make([]string, 0, len(args))
	for i := 0; i+1 < len(args); i += 2 {
		pairs = append(pairs, "{"+fmt.Sprint(args[i])+"}", fmt.Sprint(args[i+1]))
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// Pair is a text in both languages, as the dashboards' JSON carries it.
func Pair(key string, args ...any) map[string]string {
	return map[string]string{Japanese: Text(Japanese, key, args...), English: Text(English, key, args...)}
}

// JSON is the catalogue file of lang, as the web app loads it.
func JSON(lang string) []byte { return load().raw[Lang(lang)] }

// Keys lists the keys of lang's catalogue.
func Keys(lang string) []string {
	m := load().texts[Lang(lang)]
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// MailKinds lists the mail templates (the names of mail/<kind>.tmpl).
func MailKinds() []string {
	files, _ := fs.Glob(mailFiles, "mail/*.tmpl")
	out := make([]string, 0, len(files))
	for _, f := range files {
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(f, "mail/"), ".tmpl"))
	}
	return out
}

// Mail renders the mail of kind in lang from data: its template defines
// "<kind>.subject" and "<kind>.body".
func Mail(kind, lang string, data any) (subject, body string, err error) {
	t := load().mail[Lang(lang)]
	var s, b bytes.Buffer
	if err := t.ExecuteTemplate(&s, kind+".subject", data); err != nil {
		return "", "", fmt.Errorf("mail %s (%s): %w", kind, lang, err)
	}
	if err := t.ExecuteTemplate(&b, kind+".body", data); err != nil {
		return "", "", fmt.Errorf("mail %s (%s): %w", kind, lang, err)
	}
	return s.String(), b.String(), nil
}

// funcs are what the mail templates call: t (a text in the mail's
// language), tl (a text in the language named first, for mails written in
// both; an empty key gives no text), and field (a "label: value" line, or nothing when value is empty).
func funcs(c *catalogue, lang string) template.FuncMap {
	text := func(l, key string, args ...any) (string, error) {
		if key == "" {
			return "", nil // no key, no text: an optional part of a mail
		}
		s, ok := c.texts[l][key]
		if !ok {
			return "", fmt.Errorf("no message %q in %s", key, l)
		}
		return fill(s, args), nil
	}
	return template.FuncMap{
		"t":  func(key string, args ...any) (string, error) { return text(lang, key, args...) },
		"tl": text,
		"field": func(key string, v any) (string, error) {
			s := fmt.Sprint(v)
			if v == nil || s == "" {
				return "", nil
			}
			label, err := text(lang, key)
			return label + ": " + s + "\n", err
		},
	}
}
