package dashboard_test

import (
	"context"
	"log/slog"
	"sort"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/mimamori/mimamori/analytics/chtest"
	"github.com/mimamori/mimamori/analytics/projection"
	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/portal-api/dashboard"
)

// Two devices of one customer, and one of another customer, report one
// alert id: the customer's list holds both of its alerts and counts two,
// the detail shows one of its own, and the other customer sees only its
// own alert under that id.
func TestAlertIsItsDevices(t *testing.T) {
	conn, db := chtest.Database(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	now := time.Now().UTC().Truncate(time.Second)
	id := ksuid.New().String()
	at := now.Add(-time.Hour)
	alert := func(device, customer string, sev int, label string) events.Envelope {
		a := events.Alert{ID: id, DeviceID: device, CustomerID: customer, DetectedAt: at, ReceivedAt: at.Add(time.Second),
			Severity: sev, Kind: events.KindDomain, Indicator: "evil.example", Label: label, Action: events.ActionBlocked,
			SrcIP: "192.168.1.2", DstIP: "203.0.113.9", Zones: "LAN>WAN", Domain: "evil.example", Count: 1}
		e, err := events.New("test", &a, a.ReceivedAt)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	w, err := projection.New(conn, db, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]events.Envelope{
		{alert("dv_a1", "cu_a", 3, "a1's")},
		{alert("dv_a2", "cu_a", 1, "a2's"), alert("dv_b", "cu_b", 2, "b's")},
	} {
		if err := w.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	st, err := dashboard.New(conn, db, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	f := dashboard.Filter{Period: dashboard.LastDays(now, 7), Page: 1, PageSize: 50}
	items, total, err := st.Alerts(ctx, "cu_a", f)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range items {
		got = append(got, a.DeviceID+" "+a.Label)
	}
	sort.Strings(got)
	if total != 2 || len(got) != 2 || got[0] != "dv_a1 a1's" || got[1] != "dv_a2 a2's" {
		t.Fatalf("cu_a's alerts: %v (total %d), want dv_a1's and dv_a2's", got, total)
	}
	for cust, want := range map[string]string{"cu_a": "a1's", "cu_b": "b's"} {
		a, err := st.Alert(ctx, cust, id)
		if err != nil || a.Label != want || a.CustomerID != cust {
			t.Fatalf("%s's alert %s: %+v, %v; want its own %q", cust, id, a, err, want)
		}
	}
	if _, err := st.Alert(ctx, "cu_c", id); err != dashboard.ErrNotFound {
		t.Fatalf("a third customer's detail of the id: %v, want ErrNotFound", err)
	}
}
