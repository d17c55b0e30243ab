// Package web is the customer portal's user interface: a small single-page
// application in plain JavaScript ES modules served as they are (Japanese by
// default, English on request; README.md has the layout), with its styles
// and the vendored chart library, embedded in the binary so that the portal
// needs no CDN and no network. The portal serves the page at every path in
// Pages and the assets under /assets/.
package web

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mimamori/mimamori/schemas/messages"
)

//go:embed static vendor
var files embed.FS

// Pages are the paths the application answers itself (history routing,
// static/lib/routes.js; TestJavaScript checks that the two agree); the
// portal serves the same index page at each. /reset is the link of the
// password reset mail (accounts.RequestReset); /alerts/:id, /devices/:id
// and /notices/:id are the links of the notifier's mails; /operator/... are
// the operator's pages, which the API refuses to other roles.
var Pages = []string{"/", "/login", "/reset", "/settings", "/alerts", "/alerts/:id", "/devices", "/devices/:id",
	"/compare", "/notices", "/notices/:id",
	"/operator", "/operator/notices", "/operator/customers/:customer", "/operator/customers/:customer/summary",
	"/operator/customers/:customer/alerts", "/operator/customers/:customer/alerts/:id",
	"/operator/customers/:customer/devices", "/operator/customers/:customer/devices/:id",
	"/operator/customers/:customer/notices", "/operator/customers/:customer/notices/:id"}

// resetPage carries a reset token: in the fragment of the links mailed now
// (never sent to any server), in the query of links mailed before. Its page
// sends no Referer at all, not even to this origin, so that a token in the
// query is not repeated in the requests for the assets (the script also
// removes the token from the address bar).
const resetPage = "/reset"

// AssetsPrefix is where the portal mounts Assets.
const AssetsPrefix = "/assets/"

// csp admits only this origin: no inline script, no third party.
const csp = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

func headers(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
}

// Index serves the application's page.
func Index() http.Handler {
	page, err := files.ReadFile("static/index.html")
	if err != nil {
		panic(err) // embedded at build time
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers(w)
		if r.URL.Path == resetPage {
			w.Header().Set("Referrer-Policy", "no-referrer")
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(page)
	})
}

// Assets serves the embedded scripts, styles and the vendored library
// under AssetsPrefix: /assets/app.js, /assets/vendor/uplot/uPlot.iife.min.js,
// and the message catalogue at /assets/messages/ja.json and en.json.
func Assets() http.Handler {
	static, _ := fs.Sub(files, "static")
	vendor, _ := fs.Sub(files, "vendor")
	sh := http.FileServerFS(static)
	vh := http.StripPrefix("/vendor", http.FileServerFS(vendor))
	return http.StripPrefix(strings.TrimSuffix(AssetsPrefix, "/"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers(w)
		w.Header().Set("Cache-Control", "no-cache")
		if r.URL.Path == "/index.html" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		if lang, ok := strings.CutPrefix(r.URL.Path, "/messages/"); ok {
			serveCatalogue(w, r, strings.TrimSuffix(lang, ".json"))
			return
		}
		if strings.HasPrefix(r.URL.Path, "/vendor/") {
			vh.ServeHTTP(w, r)
			return
		}
		sh.ServeHTTP(w, r)
	}))
}

// serveCatalogue serves one language of the catalogue the server's own
// texts come from (schemas/messages), so that the web app and the server
// never word the same thing twice.
func serveCatalogue(w http.ResponseWriter, r *http.Request, lang string) {
	if !slices.Contains(messages.Languages, lang) {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	http.ServeContent(w, r, lang+".json", time.Time{}, bytes.NewReader(messages.JSON(lang)))
}
