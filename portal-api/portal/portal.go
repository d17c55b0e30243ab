// Package portal is the HTTP front of mimamori for people: the platform
// status page and its JSON (platform-wide totals only), /healthz (and
// /readyz and /metrics when asked to), and the login API of customer
// accounts under /api/v1 (sessions, second factors, password reset).
// Dashboards build on it.
package portal

import (
	"context"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimamori/mimamori/analytics/migrate"
	"github.com/mimamori/mimamori/infra/admin"
	"github.com/mimamori/mimamori/portal-api/accounts"
	"github.com/mimamori/mimamori/portal-api/dashboard"
	"github.com/mimamori/mimamori/schemas/messages"
)

// Status is the platform-wide summary the status page shows.
type Status struct {
	Customers     uint64    `json:"customers"`
	Devices       uint64    `json:"devices"`
	Alerts24h     uint64    `json:"alerts_24h"`
	Alerts        uint64    `json:"alerts"`
	LastAlertAt   time.Time `json:"last_alert_at"`
	LastHeartbeat time.Time `json:"last_heartbeat_at"`
}

// Deps are what the portal needs.
type Deps struct {
	Conn     driver.Conn
	Database string
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// Accounts, when set, serves the login API; Sessions tunes it.
	Accounts *accounts.Service
	Sessions SessionConfig
	// Fleet, when set, is the process's cache of the participants'
	// comparison, which its owner runs (dashboard.Fleet.Run) to keep the
	// default period computed; without it the dashboards keep a cache of
	// their own, computed on demand.
	Fleet *dashboard.Fleet
	// FleetMaxStale is how long the participants' average may lag new
	// alerts while it is recomputed behind (a minute when zero).
	FleetMaxStale time.Duration
	// TrustedProxies are the peers whose X-Forwarded-For names the client
	// (and whose X-Forwarded-Proto says HTTPS); every other peer is the
	// client itself, whatever it sends.
	TrustedProxies []netip.Prefix
	// PublicMetrics also serves /readyz and /metrics here; by default they
	// are on the admin listener only (Checks), and only /healthz is here.
	PublicMetrics bool
	// Now is the clock of the status page's figures and the portal's own
	// limits (time.Now when nil).
	Now func() time.Time
}

// New returns the portal's handler. routes lists every route in one place.
func New(d Deps) (http.Handler, error) {
	if d.Conn != nil {
		if err := migrate.ValidDatabase(d.Database); err != nil {
			return nil, err
		}
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(recovery(d.Logger), headers(d.TrustedProxies), limitBody)
	// The client address (of throttling, of the events' source_ip) is the
	// peer, or what a trusted proxy reports in X-Forwarded-For: gin walks
	// it from the right and stops at the first address it does not trust.
	proxies := make([]string, 0, len(d.TrustedProxies))
	for _, p := range d.TrustedProxies {
		proxies = append(proxies, p.String())
	}
	if err := r.SetTrustedProxies(proxies); err != nil {
		return nil, err
	}
	r.RemoteIPHeaders = []string{"X-Forwarded-For"}
	routes(r, d)
	return r, nil
}

// Checks are the portal's readiness checks (its /readyz): ClickHouse
// answers, and this process still owns the accounts.
func Checks(d Deps) map[string]admin.Check {
	checks := map[string]admin.Check{}
	if d.Conn != nil {
		checks["clickhouse"] = d.Conn.Ping
	}
	if d.Accounts != nil {
		acc := d.Accounts
		checks["accounts"] = func(context.Context) error {
			if acc.Fenced() {
				return accounts.ErrNotOwner
			}
			return nil
		}
	}
	return checks
}

func readStatus(ctx context.Context, d Deps) (Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var s Status
	q := fmt.Sprintf(`SELECT
		(SELECT uniqExact(customer_id) FROM %[1]s.customers),
		(SELECT uniqExact(device_id) FROM %[1]s.devices),
		(SELECT uniqExact(device_id, id) FROM %[1]s.alerts_log WHERE detected_at >= now() - 86400),
		(SELECT uniqExact(device_id, id) FROM %[1]s.alerts_log),
		(SELECT max(detected_at) FROM %[1]s.alerts_log),
		(SELECT max(received_at) FROM %[1]s.heartbeats)`, d.Database)
	err := d.Conn.QueryRow(ctx, q).Scan(&s.Customers, &s.Devices, &s.Alerts24h, &s.Alerts, &s.LastAlertAt, &s.LastHeartbeat)
	return s, err
}

// page is the status page, in both languages (operators of either read
// it), with its words from the catalogue (schemas/messages, status.*).
var page = template.Must(template.New("status").Funcs(template.FuncMap{
	"when": func(t time.Time) string {
		if t.Unix() <= 0 {
			return "—"
		}
		return t.Local().Format("2006-01-02 15:04:05")
	},
	"tl": messages.Text,
	"both": func(key string) string {
		return messages.Text(messages.Japanese, key) + " / " + messages.Text(messages.English, key)
	},
	// withCode is a text with its {command} set in <code>, both escaped.
	"withCode": func(lang, key, command string) template.HTML {
		return template.HTML(strings.Replace(template.HTMLEscapeString(messages.Text(lang, key)), "{command}",
			"<code>"+template.HTMLEscapeString(command)+"</code>", 1))
	},
}).Parse(`<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>みまもり — {{both "status.title"}}</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:48rem}table{border-collapse:collapse}td,th{padding:.3rem .8rem;border-bottom:1px solid #ddd;text-align:left}</style>
</head><body>
<h1>みまもり {{tl "ja" "status.title"}} <small lang="en">{{tl "en" "status.title"}}</small></h1>
{{if eq .Devices 0}}<p>{{withCode "ja" "status.noDevices" "mimamori device register"}}<br>
<span lang="en">{{withCode "en" "status.noDevices" "mimamori device register"}}</span></p>{{end}}
<table>
<tr><th>{{both "status.customers"}}</th><td>{{.Customers}}</td></tr>
<tr><th>{{both "status.devices"}}</th><td>{{.Devices}}</td></tr>
<tr><th>{{both "status.alerts24h"}}</th><td>{{.Alerts24h}}</td></tr>
<tr><th>{{both "status.alerts"}}</th><td>{{.Alerts}}</td></tr>
<tr><th>{{both "status.lastAlert"}}</th><td>{{when .LastAlertAt}}</td></tr>
<tr><th>{{both "status.lastHeartbeat"}}</th><td>{{when .LastHeartbeat}}</td></tr>
</table>
<p><a href="/api/v1/status">JSON</a> · <a href="/healthz">healthz</a></p>
</body></html>
`))
