package portal_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/ksuid"

	"github.com/mimamori/mimamori/analytics/chtest"
	"github.com/mimamori/mimamori/analytics/projection"
	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/portal-api/portal"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// dashEnv is env with ClickHouse: two logged-in customers A and B with
// known data written through the real projection.
type dashEnv struct {
	*env
	w        *projection.Writer
	a, b     *client
	custA    string
	custB    string
	alertsA  map[string]events.Alert // by name
	alertB   events.Alert
	oldA     events.Alert
	seq      uint32
	now      time.Time
	envelope []events.Envelope
}

func (d *dashEnv) id(at time.Time) string {
	d.seq++
	var p [16]byte
	binary.BigEndian.PutUint32(p[12:], d.seq)
	k, err := ksuid.FromParts(at, p[:])
	if err != nil {
		d.t.Fatal(err)
	}
	return k.String()
}

func (d *dashEnv) add(p events.Payload, at time.Time) {
	e, err := events.New("test", p, at)
	if err != nil {
		d.t.Fatal(err)
	}
	d.envelope = append(d.envelope, e)
}

func (d *dashEnv) flush() {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for range 2 { // twice: duplicates never count
		if err := d.w.Apply(ctx, d.envelope); err != nil {
			d.t.Fatal(err)
		}
	}
	d.envelope = nil
}

func (d *dashEnv) device(id, customer, serial string, mac byte) {
	long := d.now.Add(-200 * 24 * time.Hour)
	d.add(&events.DeviceRegistered{DeviceID: id, Serial: serial, MAC: "02:00:00:00:00:" + string("0123456789"[mac%10]) + "a", Model: "UTM-100",
		ManufacturedOn: "2026-04-01", RegisteredAt: long}, long)
	d.add(&events.DeviceAssigned{DeviceID: id, CustomerID: customer, AssignedAt: long.Add(time.Hour)}, long.Add(time.Hour))
}

func (d *dashEnv) alert(device, customer string, ago time.Duration, sev int, kind, indicator string) events.Alert {
	at := d.now.Add(-ago)
	a := events.Alert{ID: d.id(at), DeviceID: device, CustomerID: customer, DetectedAt: at, ReceivedAt: at.Add(2 * time.Second),
		Severity: sev, Kind: kind, Indicator: indicator, Label: "test " + kind, Action: events.ActionBlocked,
		SrcIP: "192.168.1.10", SrcPort: 51234, SrcMAC: "02:00:00:00:10:10", DstIP: "203.0.113.9", DstPort: 443,
		DstMAC: "02:00:00:00:20:20", Protocol: "tcp", Zones: "LAN>WAN", DefinitionsVersion: "2026.11.25", Count: 1}
	if kind == events.KindDomain {
		a.Domain = indicator
	}
	if kind == events.KindFile {
		a.FileName, a.FileSHA256 = "invoice.exe", indicator
	}
	d.add(&a, at.Add(2*time.Second))
	return a
}

func (d *dashEnv) heartbeat(device, customer string, ago time.Duration, fw string) {
	at := d.now.Add(-ago)
	d.add(&events.Heartbeat{ID: d.id(at), DeviceID: device, CustomerID: customer, SentAt: at, ReceivedAt: at.Add(time.Second),
		FirmwareVersion: fw, DefinitionsVersion: "2026.11.25", UptimeSeconds: 86400, Clients: 12, Packets: 1000, Bytes: 800000}, at.Add(time.Second))
}

// activeCustomer registers a customer through the real accounts flow and
// returns an active session and the customer ID.
func (e *env) activeCustomer(email, loginID string) (*client, string) {
	e.t.Helper()
	cust, id, pw := e.register(email)
	c, r := e.login(id, pw)
	want(e.t, r, 200, "")
	want(e.t, c.do("POST", "/api/v1/login/credentials", map[string]string{"login_id": loginID, "password": "a long enough passphrase " + loginID}), 200, "")
	want(e.t, c.do("POST", "/api/v1/2fa/decline", map[string]string{}), 200, "")
	return c, cust
}

func newDashEnv(t *testing.T) *dashEnv {
	conn, db := chtest.Database(t)
	e := newEnv(t, func(d *portal.Deps) {
		d.Conn, d.Database, d.Registry = conn, db, prometheus.NewRegistry()
		// These tests change the data between requests and expect every
		// change at once; the lag itself is tested in package dashboard.
		d.FleetMaxStale = time.Nanosecond
	})
	w, err := projection.New(conn, db, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	d := &dashEnv{env: e, w: w, now: e.clock.Now(), alertsA: map[string]events.Alert{}}
	d.a, d.custA = e.activeCustomer("a@example.jp", "alpha-admin")
	d.b, d.custB = e.activeCustomer("b@example.jp", "bravo-admin")
	h := time.Hour
	// now is 2026-11-26 09:00 UTC, 18:00 JST.
	d.device("dev-a1", d.custA, "SN-A1", 1)
	d.device("dev-a2", d.custA, "SN-A2", 2)
	d.device("dev-b1", d.custB, "SN-B1", 3)
	d.alertsA["a1"] = d.alert("dev-a1", d.custA, 1*h, 3, events.KindDomain, "evil.example")
	d.alertsA["a2"] = d.alert("dev-a1", d.custA, 2*h, 2, events.KindURL, "http://bad.example/x")
	d.alertsA["a3"] = d.alert("dev-a2", d.custA, 30*h, 1, events.KindIP, "198.51.100.7")
	// 2026-11-25 23:00 UTC is 2026-11-26 08:00 JST: today in Japan.
	d.alertsA["a4"] = d.alert("dev-a1", d.custA, 10*h, 3, events.KindFile, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
	d.oldA = d.alert("dev-a1", d.custA, 100*24*h, 3, events.KindDomain, "old.example") // beyond 90 days
	d.alertB = d.alert("dev-b1", d.custB, 1*h, 3, events.KindDomain, "evil.example")
	d.heartbeat("dev-a1", d.custA, 5*time.Minute, "1.4.2")
	d.heartbeat("dev-a1", d.custA, 2*h, "1.4.1")
	d.heartbeat("dev-a2", d.custA, 3*h, "1.4.0")
	d.heartbeat("dev-b1", d.custB, 5*time.Minute, "1.4.2")
	first := d.now.Add(-48 * h)
	d.add(&events.DeviceActivated{DeviceID: "dev-a1", CustomerID: d.custA, HeartbeatAt: first, ActivatedAt: first}, first)
	d.add(&events.DeviceActivated{DeviceID: "dev-a2", CustomerID: d.custA, HeartbeatAt: first, ActivatedAt: first}, first)
	down := d.now.Add(-2 * h)
	d.add(&events.DeviceWentOffline{DeviceID: "dev-a2", CustomerID: d.custA, LastHeartbeatAt: d.now.Add(-3 * h), ThresholdSeconds: 600, DetectedAt: down}, down)
	pub := d.now.Add(-24 * h)
	d.add(&events.MaintenanceAnnounced{NoticeID: "nt_maint", Customers: "*", Summary: "定期メンテナンス", Details: "停止します",
		StartsAt: d.now.Add(40 * 24 * h), EndsAt: d.now.Add(40*24*h + 2*h), AnnouncedAt: pub}, pub)
	d.add(&events.FaultDeclared{NoticeID: "nt_fault_a", Level: "A", Customers: d.custA, Summary: "遅延", Details: "メールが遅れています",
		StartedAt: pub, DeclaredAt: pub.Add(time.Minute)}, pub)
	d.add(&events.FirmwareNoticePublished{NoticeID: "nt_fw_b", Customers: d.custB, FirmwareVersion: "1.5.0", Summary: "新機能",
		Details: "検知の改善", AvailableAt: d.now, PublishedAt: pub.Add(2 * time.Minute)}, pub)
	d.add(&events.FaultDeclared{NoticeID: "nt_fault_z", Level: "Z", Customers: "*", Summary: "internal", StartedAt: pub,
		DeclaredAt: pub.Add(3 * time.Minute)}, pub)
	d.flush()
	return d
}

// get asks path with c's session and checks the answer against the
// OpenAPI document.
func (d *dashEnv) get(c *client, path string, into any) int {
	d.t.Helper()
	req, _ := http.NewRequest("GET", d.srv.URL+path, nil)
	if c != nil {
		req.AddCookie(&http.Cookie{Name: portal.SessionCookie, Value: c.cookie})
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	d.validate(req, resp, body)
	if into != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(body, into); err != nil {
			d.t.Fatalf("%s: %v in %s", path, err, body)
		}
	}
	return resp.StatusCode
}

// openAPI is the portal's OpenAPI document, loaded and checked once per
// test binary.
var openAPI = sync.OnceValues(func() (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromData(portal.OpenAPI)
	if err != nil {
		return nil, err
	}
	return doc, doc.Validate(context.Background())
})

// validate checks an answer of the portal against the OpenAPI document:
// its path, method, status and body.
func (e *env) validate(req *http.Request, resp *http.Response, body []byte) {
	e.t.Helper()
	doc, err := openAPI()
	if err != nil {
		e.t.Fatalf("openapi.json: %v", err)
	}
	u, _ := url.Parse(req.URL.String())
	tmpl, params := "", map[string]string{}
	for _, p := range doc.Paths.InMatchingOrder() {
		if match(p, u.Path, params) {
			tmpl = p
			break
		}
	}
	if tmpl == "" {
		e.t.Errorf("%s %s is not in openapi.json", req.Method, u.Path)
		return
	}
	pi := doc.Paths.Value(tmpl)
	op := pi.GetOperation(req.Method)
	if op == nil {
		e.t.Errorf("%s %s: no operation in openapi.json", req.Method, tmpl)
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params,
			Route: &routers.Route{Spec: doc, Path: tmpl, PathItem: pi, Method: req.Method, Operation: op}},
		Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		e.t.Errorf("%s %s → %d does not match openapi.json: %v\n%s", req.Method, u.Path, resp.StatusCode, err, body)
	}
}

func match(tmpl, path string, params map[string]string) bool {
	ts, ps := strings.Split(tmpl, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i := range ts {
		if strings.HasPrefix(ts[i], "{") {
			params[strings.Trim(ts[i], "{}")] = ps[i]
		} else if ts[i] != ps[i] {
			return false
		}
	}
	return true
}

type summaryJSON struct {
	From, To      string
	Devices       int
	ProblemsFound bool `json:"problems_found"`
	Message       map[string]string
	Important     int
	Total         int
	BySeverity    map[string]int    `json:"by_severity"`
	ByKind        map[string]int    `json:"by_kind"`
	EmptyState    map[string]string `json:"empty_state"`
}

type alertPage struct {
	Items    []events.Alert
	Total    int
	Page     int
	PageSize int `json:"page_size"`
}

func ids(p alertPage) []string {
	var out []string
	for _, a := range p.Items {
		out = append(out, a.ID)
	}
	return out
}

func TestDashboardFigures(t *testing.T) {
	d := newDashEnv(t)
	A := d.alertsA

	var s summaryJSON
	if st := d.get(d.a, "/api/v1/dashboard/summary", &s); st != 200 {
		t.Fatalf("summary %d", st)
	}
	if s.From != "2026-10-28" || s.To != "2026-11-26" || s.Devices != 2 || !s.ProblemsFound || s.Total != 4 || s.Important != 3 ||
		s.BySeverity["1"] != 1 || s.BySeverity["2"] != 1 || s.BySeverity["3"] != 2 ||
		s.ByKind["domain"] != 1 || s.ByKind["url"] != 1 || s.ByKind["ip"] != 1 || s.ByKind["file"] != 1 || s.ByKind["behaviour"] != 0 ||
		!strings.Contains(s.Message["ja"], "ご利用の環境で問題がみつかりました（期間: 2026-10-28〜2026-11-26）") || s.EmptyState != nil {
		t.Errorf("summary %+v", s)
	}
	// JST days: a4 (23:00 UTC on the 25th) belongs to the 26th.
	d.get(d.a, "/api/v1/dashboard/summary?from=2026-11-25&to=2026-11-25", &s)
	if s.Total != 1 || s.BySeverity["1"] != 1 {
		t.Errorf("summary of 2026-11-25: %+v, want only a3", s)
	}
	d.get(d.a, "/api/v1/dashboard/summary?from=2026-11-26&to=2026-11-26", &s)
	if s.Total != 3 || s.Important != 3 {
		t.Errorf("summary of 2026-11-26: %+v, want a1, a2, a4", s)
	}
	d.get(d.a, "/api/v1/dashboard/summary?from=2026-01-01&to=2026-01-31", &s)
	if s.ProblemsFound || s.Total != 0 || !strings.Contains(s.Message["ja"], "みつかりませんでした") {
		t.Errorf("empty period: %+v", s)
	}

	for _, c := range []struct {
		query string
		want  []string
		total int
	}{
		{"", []string{A["a1"].ID, A["a2"].ID, A["a4"].ID, A["a3"].ID}, 4},
		{"?from=2026-07-01", []string{A["a1"].ID, A["a2"].ID, A["a4"].ID, A["a3"].ID}, 4}, // never older than 90 days
		{"?order=asc", []string{A["a3"].ID, A["a4"].ID, A["a2"].ID, A["a1"].ID}, 4},
		{"?severity=3", []string{A["a1"].ID, A["a4"].ID}, 2},
		{"?severity=3,2", []string{A["a1"].ID, A["a2"].ID, A["a4"].ID}, 3},
		{"?kind=ip,url", []string{A["a2"].ID, A["a3"].ID}, 2},
		{"?device=dev-a2", []string{A["a3"].ID}, 1},
		{"?q=EVIL.example", []string{A["a1"].ID}, 1},
		{"?q=invoice", []string{A["a4"].ID}, 1},
		{"?sort=severity&order=asc", []string{A["a3"].ID, A["a2"].ID, A["a1"].ID, A["a4"].ID}, 4},
		{"?sort=severity", []string{A["a1"].ID, A["a4"].ID, A["a2"].ID, A["a3"].ID}, 4},
		{"?page_size=2&page=2", []string{A["a4"].ID, A["a3"].ID}, 4},
		{"?page_size=2&page=3", nil, 4},
		{"?from=2026-11-25&to=2026-11-25", []string{A["a3"].ID}, 1},
		{"?device=dev-b1", nil, 0},
	} {
		var p alertPage
		if st := d.get(d.a, "/api/v1/alerts"+c.query, &p); st != 200 {
			t.Errorf("alerts%s: %d", c.query, st)
			continue
		}
		if !slices.Equal(ids(p), c.want) || p.Total != c.total {
			t.Errorf("alerts%s: %v total %d, want %v total %d", c.query, ids(p), p.Total, c.want, c.total)
		}
	}
	for _, bad := range []struct{ query, param string }{
		{"?from=yesterday", "from"}, {"?to=2026-13-01", "to"}, {"?from=2026-11-20&to=2026-11-10", "from"},
		{"?severity=4", "severity"}, {"?kind=worm", "kind"}, {"?sort=label", "sort"}, {"?order=up", "order"},
		{"?page=0", "page"}, {"?page_size=101", "page_size"},
	} {
		req, _ := http.NewRequest("GET", d.srv.URL+"/api/v1/alerts"+bad.query, nil)
		req.AddCookie(&http.Cookie{Name: portal.SessionCookie, Value: d.a.cookie})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		d.validate(req, resp, body)
		var e map[string]string
		_ = json.Unmarshal(body, &e)
		if resp.StatusCode != 400 || e["parameter"] != bad.param {
			t.Errorf("alerts%s: %d %s, want 400 naming %s", bad.query, resp.StatusCode, body, bad.param)
		}
	}

	var one events.Alert
	if st := d.get(d.a, "/api/v1/alerts/"+A["a4"].ID, &one); st != 200 {
		t.Fatalf("alert detail %d", st)
	}
	if wantA := A["a4"]; one != wantA {
		t.Errorf("alert detail\n got %+v\nwant %+v", one, wantA)
	}
	if st := d.get(d.a, "/api/v1/alerts/"+d.oldA.ID, nil); st != 404 {
		t.Errorf("alert older than 90 days: %d, want 404", st)
	}

	var devs struct {
		Items []struct {
			DeviceID           string  `json:"device_id"`
			Serial             string  `json:"serial"`
			Model              string  `json:"model"`
			Status             string  `json:"status"`
			LastContact        *string `json:"last_contact"`
			FirmwareVersion    string  `json:"firmware_version"`
			DefinitionsVersion string  `json:"definitions_version"`
			Clients            int     `json:"clients"`
		}
	}
	d.get(d.a, "/api/v1/devices", &devs)
	if len(devs.Items) != 2 {
		t.Fatalf("devices %+v", devs)
	}
	d1, d2 := devs.Items[0], devs.Items[1]
	if d1.DeviceID != "dev-a1" || d1.Serial != "SN-A1" || d1.Status != "online" || d1.FirmwareVersion != "1.4.2" || d1.Clients != 12 ||
		d1.LastContact == nil || *d1.LastContact != d.now.Add(-5*time.Minute+time.Second).Format(time.RFC3339) {
		t.Errorf("dev-a1 %+v", d1)
	}
	if d2.DeviceID != "dev-a2" || d2.Status != "offline" || d2.FirmwareVersion != "1.4.0" {
		t.Errorf("dev-a2 %+v", d2)
	}

	var cmp struct {
		Devices []struct {
			DeviceID string `json:"device_id"`
			Serial   string
			Total    int
			Days     []struct {
				Day    string
				Alerts int
			}
		}
	}
	d.get(d.a, "/api/v1/compare/devices", &cmp)
	if len(cmp.Devices) != 2 || cmp.Devices[0].DeviceID != "dev-a1" || cmp.Devices[0].Total != 3 || cmp.Devices[1].Total != 1 ||
		len(cmp.Devices[0].Days) != 30 || cmp.Devices[0].Days[29].Day != "2026-11-26" || cmp.Devices[0].Days[29].Alerts != 3 ||
		cmp.Devices[1].Days[28].Alerts != 1 {
		t.Errorf("compare devices %+v", cmp)
	}

	var notices struct {
		Items []struct {
			ID    string
			Kind  string
			Title map[string]string
		}
	}
	d.get(d.a, "/api/v1/notices", &notices)
	if len(notices.Items) != 2 || notices.Items[0].ID != "nt_fault_a" || notices.Items[1].ID != "nt_maint" ||
		!strings.Contains(notices.Items[1].Title["ja"], "定期メンテナンス") {
		t.Errorf("notices of A %+v", notices)
	}
	d.get(d.b, "/api/v1/notices", &notices)
	if len(notices.Items) != 2 || notices.Items[0].ID != "nt_fw_b" || notices.Items[0].Kind != "firmware" || notices.Items[1].ID != "nt_maint" {
		t.Errorf("notices of B %+v", notices)
	}
}

type participantsJSON struct {
	Available    bool
	Participants int
	Reason       map[string]string
	Days         []struct {
		Day        string
		Mine       int
		Average    *float64
		Percentile *float64
	}
}

func TestParticipantsAverageNeedsFiveCompanies(t *testing.T) {
	d := newDashEnv(t)
	var p participantsJSON
	d.get(d.a, "/api/v1/compare/participants?from=2026-11-26&to=2026-11-26", &p)
	if p.Available || p.Participants != 2 || p.Reason["ja"] == "" || len(p.Days) != 1 || p.Days[0].Mine != 3 || p.Days[0].Average != nil {
		t.Errorf("two companies: %+v", p)
	}
	// Three more companies with a device that sent a heartbeat today; C
	// has 6 alerts, D and E none.
	for i, c := range []string{"cust-c", "cust-d", "cust-e"} {
		dev := "dev-" + c
		d.device(dev, c, "SN-"+c, byte(5+i))
		d.heartbeat(dev, c, time.Hour, "1.4.2")
	}
	for i := range 6 {
		d.alert("dev-cust-c", "cust-c", time.Duration(i+1)*time.Minute, 1, events.KindIP, "198.51.100.1")
	}
	d.flush()
	p = participantsJSON{}
	d.get(d.a, "/api/v1/compare/participants?from=2026-11-26&to=2026-11-26", &p)
	if !p.Available || p.Participants != 5 || p.Reason != nil || len(p.Days) != 1 || p.Days[0].Mine != 3 ||
		p.Days[0].Average == nil || *p.Days[0].Average != 2.0 || *p.Days[0].Percentile != 70 {
		t.Errorf("five companies: %+v", p)
	}
	// The day before had only A and B: over both days it is hidden again.
	d.heartbeat("dev-a1", d.custA, 30*time.Hour, "1.4.2")
	d.flush()
	p = participantsJSON{}
	d.get(d.a, "/api/v1/compare/participants?from=2026-11-25&to=2026-11-26", &p)
	if p.Available || p.Participants != 1 || len(p.Days) != 2 || p.Days[0].Average != nil {
		t.Errorf("a thin day in the period: %+v", p)
	}
}

func TestDashboardEmptyStateAndLogin(t *testing.T) {
	d := newDashEnv(t)
	c, _ := d.activeCustomer("new@example.jp", "newco-admin")
	var s summaryJSON
	d.get(c, "/api/v1/dashboard/summary", &s)
	if s.Devices != 0 || s.Total != 0 || s.EmptyState["ja"] == "" || s.EmptyState["en"] == "" {
		t.Errorf("before any device: %+v", s)
	}
	for _, p := range []string{"/api/v1/dashboard/summary", "/api/v1/alerts", "/api/v1/alerts/x", "/api/v1/devices",
		"/api/v1/compare/participants", "/api/v1/compare/devices", "/api/v1/notices"} {
		if st := d.get(nil, p, nil); st != 401 {
			t.Errorf("%s without a session: %d", p, st)
		}
	}
	// A session that has not finished the first login gets nothing.
	_, id, pw := d.register("half@example.jp")
	half, r := d.login(id, pw)
	want(t, r, 200, "")
	if st := d.get(half, "/api/v1/alerts", nil); st != 403 {
		t.Errorf("session at change_credentials: %d, want 403", st)
	}
	var doc map[string]any
	if st := d.get(nil, "/api/v1/openapi.json", &doc); st != 200 || doc["openapi"] != "3.0.3" {
		t.Errorf("openapi.json: %d", st)
	}
}

// TestTenantIsolation asks every route registered on the engine, with
// customer A's session, for customer B's objects: the answer is 404 or
// holds nothing of B. A route this test does not know fails it.
func TestTenantIsolation(t *testing.T) {
	d := newDashEnv(t)
	conn, db := chtest.Database(t)
	full, err := portal.New(portal.Deps{Accounts: d.svc, Conn: conn, Database: db, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	engine, ok := full.(*gin.Engine)
	if !ok {
		t.Fatalf("portal.New returned %T, want *gin.Engine", full)
	}
	secretsOfB := []string{d.custB, "dev-b1", "SN-B1", d.alertB.ID, "nt_fw_b"}
	// POST routes act on the session's own account only (or on none):
	// none takes an object ID.
	ownAccount := map[string]bool{"/api/v1/login": true, "/api/v1/login/credentials": true, "/api/v1/login/second-factor": true,
		"/api/v1/login/second-factor/sms": true, "/api/v1/2fa/totp/enrol": true, "/api/v1/2fa/totp/confirm": true,
		"/api/v1/2fa/sms/enrol": true, "/api/v1/2fa/sms/verify": true, "/api/v1/2fa/decline": true, "/api/v1/logout": true,
		"/api/v1/password-reset": true, "/api/v1/password-reset/confirm": true,
		"/api/v1/account/password": true, "/api/v1/account/reauthenticate": true, "/api/v1/account/reauthenticate/sms": true,
		"/api/v1/account/second-factor/disable": true, "/api/v1/account/recovery-codes": true}
	// The object of a route with an ID is one of B's: the alert, or the
	// notice addressed to B alone.
	objectOfB := func(path string) string {
		if strings.Contains(path, "/notices/") {
			return "nt_fw_b"
		}
		return d.alertB.ID
	}
	// Query parameters naming B's objects, for every GET route.
	query := "?device=dev-b1&customer=" + url.QueryEscape(d.custB) + "&customer_id=" + url.QueryEscape(d.custB) + "&q=evil"
	asked := 0
	operatorRoutes := 0
	for _, r := range engine.Routes() {
		// Operator routes answer 403 to any customer administrator, for
		// every method and whatever the path names (B's objects here).
		if strings.HasPrefix(r.Path, "/api/v1/operator/") {
			operatorRoutes++
			path := strings.NewReplacer(":customer", d.custB, ":account", "ac_x", ":id", objectOfB(r.Path)).Replace(r.Path)
			st, body := d.send(d.a, r.Method, path+query, map[string]string{"customers": d.custB})
			if st != 403 || !bytes.Contains(body, []byte(`"operator_only"`)) {
				t.Errorf("%s %s with A's session: %d %s, want 403 operator_only", r.Method, path, st, body)
			}
			continue
		}
		if r.Method != "GET" {
			if !ownAccount[r.Path] {
				t.Errorf("route %s %s is not covered by the tenant isolation test", r.Method, r.Path)
			}
			continue
		}
		path := r.Path
		for _, seg := range strings.Split(r.Path, "/") {
			switch {
			case seg == ":id":
				path = strings.Replace(path, seg, objectOfB(r.Path), 1)
			case strings.HasPrefix(seg, ":") || strings.HasPrefix(seg, "*"):
				path = strings.Replace(path, seg, "dev-b1", 1)
			}
		}
		req, _ := http.NewRequest("GET", d.srv.URL+path+query, nil)
		req.AddCookie(&http.Cookie{Name: portal.SessionCookie, Value: d.a.cookie})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		asked++
		if strings.HasPrefix(r.Path, "/api/v1/") {
			d.validate(req, resp, body)
		}
		// Pages of the web UI are shells that load their data from the
		// API; the API answers 404 for another customer's object.
		if strings.HasPrefix(r.Path, "/api/") && strings.Contains(r.Path, ":") && resp.StatusCode != 404 {
			t.Errorf("GET %s with A's session: %d, want 404", path, resp.StatusCode)
		}
		for _, s := range secretsOfB {
			if bytes.Contains(body, []byte(s)) {
				t.Errorf("GET %s with A's session shows B's %q", path, s)
			}
		}
	}
	if operatorRoutes < 10 {
		t.Errorf("only %d operator routes asked", operatorRoutes)
	}
	if asked < 8 {
		t.Errorf("only %d GET routes asked", asked)
	}
	// And B's own session does see them, so the test can tell.
	var p alertPage
	d.get(d.b, "/api/v1/alerts", &p)
	if len(p.Items) != 1 || p.Items[0].ID != d.alertB.ID {
		t.Errorf("B's own alerts: %+v", p)
	}
	if st := d.get(d.b, "/api/v1/alerts/"+d.alertB.ID, nil); st != 200 {
		t.Errorf("B's own alert: %d", st)
	}
	if st := d.get(d.b, "/api/v1/notices/nt_fw_b", nil); st != 200 {
		t.Errorf("B's own notice: %d", st)
	}
}

// A notice by its ID, as the mails about faults and maintenance link to
// it: the customer's own and those for everyone, however old; never
// another customer's nor a fault of level Z.
func TestNoticeDetail(t *testing.T) {
	d := newDashEnv(t)
	var list struct{ Items []map[string]any }
	d.get(d.a, "/api/v1/notices", &list)
	if len(list.Items) != 2 {
		t.Fatalf("A's notices: %+v", list)
	}
	for _, item := range list.Items {
		var one map[string]any
		if st := d.get(d.a, "/api/v1/notices/"+item["id"].(string), &one); st != 200 || !reflect.DeepEqual(one, item) {
			t.Errorf("notice %s: %d %v, the list shows %v", item["id"], st, one, item)
		}
	}
	for _, c := range []struct {
		who    string
		c      *client
		id     string
		status int
	}{
		{"A", d.a, "nt_fault_a", 200}, {"A", d.a, "nt_maint", 200}, {"A", d.a, "nt_fw_b", 404}, {"A", d.a, "nt_fault_z", 404},
		{"A", d.a, "nt_unknown", 404}, {"A", d.a, strings.Repeat("n", 65), 404},
		{"B", d.b, "nt_fw_b", 200}, {"B", d.b, "nt_fault_a", 404}, {"B", d.b, "nt_fault_z", 404}, {"nobody", nil, "nt_maint", 401},
	} {
		if st := d.get(c.c, "/api/v1/notices/"+c.id, nil); st != c.status {
			t.Errorf("%s asks for %s: %d, want %d", c.who, c.id, st, c.status)
		}
	}
	// 200 newer notices for everyone push A's fault out of the list, which
	// shows the newest 200: its mail's link still opens it.
	for i := range 200 {
		at := d.now.Add(-time.Duration(i) * time.Minute)
		d.add(&events.MaintenanceAnnounced{NoticeID: fmt.Sprintf("nt_later_%03d", i), Customers: "*", Summary: "作業",
			StartsAt: d.now.Add(40 * 24 * time.Hour), EndsAt: d.now.Add(41 * 24 * time.Hour), AnnouncedAt: at}, at)
	}
	d.flush()
	list.Items = nil
	d.get(d.a, "/api/v1/notices", &list)
	if len(list.Items) != 200 || list.Items[0]["id"] != "nt_later_000" {
		t.Fatalf("A's notices: %d, first %v", len(list.Items), list.Items[0]["id"])
	}
	var fault struct {
		ID    string
		Kind  string
		Title map[string]string
	}
	if st := d.get(d.a, "/api/v1/notices/nt_fault_a", &fault); st != 200 || fault.ID != "nt_fault_a" || fault.Kind != "fault" ||
		!strings.Contains(fault.Title["ja"], "遅延") {
		t.Errorf("A's fault beyond the list: %d %+v", st, fault)
	}
}
