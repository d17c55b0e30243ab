package portal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/portal-api/dashboard"
	"github.com/mimamori/mimamori/schemas/messages"
)

// dashAPI serves the dashboards. The customer always comes
// from the session, never from the request.
type dashAPI struct {
	st   *dashboard.Store
	deps Deps
}

// maxPeriodDays bounds a display period.
const maxPeriodDays = 366

func newDashAPI(d Deps) *dashAPI {
	st, err := dashboard.New(d.Conn, d.Database, d.Sessions.Now)
	if err != nil { // New already checked the name
		panic(err)
	}
	if d.Fleet != nil {
		st = st.WithFleet(d.Fleet)
	}
	if d.FleetMaxStale > 0 {
		st.Fleet().SetMaxStale(d.FleetMaxStale)
	}
	return &dashAPI{st: st, deps: d}
}

func customerOf(c *gin.Context) string {
	// Set by the operator's explicit /operator/customers/:customer routes
	// only; a customer's own routes never read a customer from the request.
	if id := c.GetString(viewedCustomer); id != "" {
		return id
	}
	_, se := current(c)
	return se.p.CustomerID
}

// badParam answers 400 naming the parameter.
func badParam(c *gin.Context, name, problem string) {
	writeAPIBody(c, http.StatusBadRequest, apiError{Code: "bad_parameter", Parameter: name, Message: name + ": " + problem})
}

func (h *dashAPI) fail(c *gin.Context, err error) {
	h.deps.Logger.Error("dashboard request failed", "path", c.FullPath(), "err", err)
	writeAPIError(c, http.StatusServiceUnavailable, "unavailable")
}

// period reads from and to (JST dates, default the last 30 days).
func (h *dashAPI) period(c *gin.Context) (dashboard.Period, bool) {
	p := dashboard.LastDays(h.st.Now(), 30)
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"from", &p.From}, {"to", &p.To}} {
		v := c.Query(f.name)
		if v == "" {
			continue
		}
		t, err := time.ParseInLocation(time.DateOnly, v, dashboard.JST)
		if err != nil {
			badParam(c, f.name, "want a date YYYY-MM-DD")
			return p, false
		}
		*f.dst = t
	}
	if c.Query("from") == "" && c.Query("to") != "" {
		p.From = p.To.AddDate(0, 0, -29)
	}
	if p.From.After(p.To) {
		badParam(c, "from", "must not be after to")
		return p, false
	}
	if p.To.Sub(p.From) > maxPeriodDays*24*time.Hour {
		badParam(c, "from", fmt.Sprintf("the period may span at most %d days", maxPeriodDays))
		return p, false
	}
	return p, true
}

func (h *dashAPI) summary(c *gin.Context) {
	p, ok := h.period(c)
	if !ok {
		return
	}
	s, err := h.st.Summary(c.Request.Context(), customerOf(c), p)
	if err != nil {
		h.fail(c, err)
		return
	}
	from, to := dashboard.Day(p.From), dashboard.Day(p.To)
	msg := messages.Pair("dash.noProblems", "from", from, "to", to)
	if s.Total > 0 {
		msg = messages.Pair("dash.problemsFound", "from", from, "to", to)
	}
	bySev := gin.H{}
	for _, v := range dashboard.Severities {
		bySev[strconv.Itoa(v)] = s.BySeverity[v]
	}
	byKind := gin.H{}
	for _, k := range dashboard.Kinds {
		byKind[k] = s.ByKind[k]
	}
	out := gin.H{"from": from, "to": to, "devices": s.Devices, "problems_found": s.Total > 0, "message": msg,
		"important": s.Important, "total": s.Total, "by_severity": bySev, "by_kind": byKind}
	if s.Devices == 0 {
		out["empty_state"] = messages.Pair("dash.noDevices")
	}
	c.JSON(http.StatusOK, out)
}

func (h *dashAPI) alerts(c *gin.Context) {
	p, ok := h.period(c)
	if !ok {
		return
	}
	f := dashboard.Filter{Period: p, Device: c.Query("device"), Text: c.Query("q"), Sort: "detected_at", Desc: true, Page: 1, PageSize: 50}
	if len(f.Text) > 200 {
		badParam(c, "q", "at most 200 bytes")
		return
	}
	if v := c.Query("severity"); v != "" {
		sev, err := events.ParseSeverities(v)
		if err != nil || len(sev) == 0 {
			badParam(c, "severity", "want a comma-separated list of 1, 2 and 3")
			return
		}
		f.Severities = sev
	}
	if v := c.Query("kind"); v != "" {
		for _, k := range strings.Split(v, ",") {
			k = strings.TrimSpace(k)
			valid := false
			for _, known := range dashboard.Kinds {
				valid = valid || k == known
			}
			if !valid {
				badParam(c, "kind", "want a comma-separated list of "+strings.Join(dashboard.Kinds, ", "))
				return
			}
			f.Kinds = append(f.Kinds, k)
		}
	}
	switch v := c.DefaultQuery("sort", "detected_at"); v {
	case "detected_at", "severity":
		f.Sort = v
	default:
		badParam(c, "sort", "want detected_at or severity")
		return
	}
	switch c.DefaultQuery("order", "desc") {
	case "desc":
	case "asc":
		f.Desc = false
	default:
		badParam(c, "order", "want asc or desc")
		return
	}
	for _, q := range []struct {
		name     string
		dst      *int
		min, max int
	}{{"page", &f.Page, 1, 1_000_000}, {"page_size", &f.PageSize, 1, 100}} {
		v := c.Query(q.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < q.min || n > q.max {
			badParam(c, q.name, fmt.Sprintf("want an integer from %d to %d", q.min, q.max))
			return
		}
		*q.dst = n
	}
	items, total, err := h.st.Alerts(c.Request.Context(), customerOf(c), f)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": items, "total": total, "page": f.Page, "page_size": f.PageSize})
}

func notFound(c *gin.Context) { writeAPIError(c, http.StatusNotFound, "not_found") }

func (h *dashAPI) alert(c *gin.Context) {
	byID(h, c, h.st.Alert, func(a dashboard.Alert) any { return a })
}

// byID answers the customer's object named by the path's :id, or 404 for
// any other (another customer's, unknown, or no ID at all).
func byID[T any](h *dashAPI, c *gin.Context, get func(ctx context.Context, customer, id string) (T, error), render func(T) any) {
	id := c.Param("id")
	if id == "" || len(id) > 64 {
		notFound(c)
		return
	}
	v, err := get(c.Request.Context(), customerOf(c), id)
	if errors.Is(err, dashboard.ErrNotFound) {
		notFound(c)
		return
	}
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, render(v))
}

func (h *dashAPI) devices(c *gin.Context) {
	ds, err := h.st.Devices(c.Request.Context(), customerOf(c))
	if err != nil {
		h.fail(c, err)
		return
	}
	items := make([]gin.H, 0, len(ds))
	for _, d := range ds {
		var last any
		if !d.LastContact.IsZero() {
			last = d.LastContact.Format(time.RFC3339)
		}
		items = append(items, gin.H{"device_id": d.DeviceID, "serial": d.Serial, "model": d.Model, "status": d.Status,
			"last_contact": last, "firmware_version": d.FirmwareVersion, "definitions_version": d.DefinitionsVersion,
			"clients": d.Clients})
	}
	c.JSON(http.StatusOK, gin.H{"items": items})
}

func (h *dashAPI) participants(c *gin.Context) {
	p, ok := h.period(c)
	if !ok {
		return
	}
	days, n, err := h.st.Participants(c.Request.Context(), customerOf(c), p)
	if err != nil {
		h.fail(c, err)
		return
	}
	available := n >= dashboard.MinParticipants
	out := gin.H{"from": dashboard.Day(p.From), "to": dashboard.Day(p.To), "available": available, "participants": n}
	list := make([]gin.H, 0, len(days))
	for _, d := range days {
		row := gin.H{"day": dashboard.Day(d.Day), "mine": d.Mine}
		if available { // never an average of fewer than five companies
			row["average"] = d.Average
			row["percentile"] = d.Percentile
		}
		list = append(list, row)
	}
	out["days"] = list
	if !available {
		out["reason"] = messages.Pair("dash.averageHidden", "n", dashboard.MinParticipants)
	}
	c.JSON(http.StatusOK, out)
}

func (h *dashAPI) compareDevices(c *gin.Context) {
	p, ok := h.period(c)
	if !ok {
		return
	}
	ds, err := h.st.CompareDevices(c.Request.Context(), customerOf(c), p)
	if err != nil {
		h.fail(c, err)
		return
	}
	list := make([]gin.H, 0, len(ds))
	for _, d := range ds {
		days := make([]gin.H, 0, len(d.Days))
		for _, x := range d.Days {
			days = append(days, gin.H{"day": dashboard.Day(x.Day), "alerts": x.Alerts})
		}
		list = append(list, gin.H{"device_id": d.DeviceID, "serial": d.Serial, "total": d.Total, "days": days})
	}
	c.JSON(http.StatusOK, gin.H{"from": dashboard.Day(p.From), "to": dashboard.Day(p.To), "devices": list})
}

func (h *dashAPI) notices(c *gin.Context) {
	ns, err := h.st.Notices(c.Request.Context(), customerOf(c))
	if err != nil {
		h.fail(c, err)
		return
	}
	items := make([]gin.H, 0, len(ns))
	for _, n := range ns {
		items = append(items, noticeJSON(n))
	}
	c.JSON(http.StatusOK, gin.H{"items": items})
}

// notice is one notice of the customer, or 404 for any other: the page a
// mail about a fault or a maintenance links to.
func (h *dashAPI) notice(c *gin.Context) {
	byID(h, c, h.st.Notice, func(n dashboard.Notice) any { return noticeJSON(n) })
}

func noticeJSON(n dashboard.Notice) gin.H {
	var title map[string]string
	switch n.Kind {
	case "maintenance":
		title = messages.Pair("dash.noticeMaintenance", "summary", n.Summary)
	case "fault":
		title = messages.Pair("dash.noticeFault", "summary", n.Summary)
	default:
		title = messages.Pair("dash.noticeFirmware", "version", n.FirmwareVersion, "summary", n.Summary)
	}
	var ends any
	if !n.EndsAt.IsZero() {
		ends = n.EndsAt.Format(time.RFC3339)
	}
	return gin.H{"id": n.ID, "kind": n.Kind, "title": title, "body": gin.H{"ja": n.Details, "en": n.Details},
		"starts_at": n.StartsAt.Format(time.RFC3339), "ends_at": ends, "published_at": n.PublishedAt.Format(time.RFC3339)}
}
