package portal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/portal-api/accounts"
	"github.com/mimamori/mimamori/portal-api/portal"
)

// send asks method path with c's session and a JSON body, and checks the
// answer against the OpenAPI document.
func (d *dashEnv) send(c *client, method, path string, body any, hdr ...string) (int, []byte) {
	d.t.Helper()
	var rd io.Reader
	if method != "GET" {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, d.srv.URL+path, rd)
	if method != "GET" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if c != nil {
		req.AddCookie(&http.Cookie{Name: portal.SessionCookie, Value: c.cookie})
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	d.validate(req, resp, out)
	return resp.StatusCode, out
}

// newMail waits for a mail to to with temporary credentials that is not
// among the first skip such mails.
func (e *env) newMail(to string, skip int) (loginID, password string) {
	e.t.Helper()
	for range 500 {
		n := 0
		for _, m := range e.box.Messages() {
			if len(m.To) == 1 && m.To[0] == to && strings.Contains(m.Body, "Temporary password") {
				if n++; n > skip {
					return reTempID.FindStringSubmatch(m.Body)[1], reTempPW.FindStringSubmatch(m.Body)[1]
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("no new mail with temporary credentials for %s", to)
	return
}

// operator sets up the operator's organisation the documented way: a
// registered customer whose administrator's mail receives the credentials of
// an operator account requested for it (`mimamori account request --role
// operator`), then the operator's first login.
func (e *env) operator() (admin, op *client, opsCustomer, operatorAccount string) {
	e.t.Helper()
	admin, opsCustomer = e.activeCustomer("ops@mimamori.example", "ops-admin")
	if _, err := accounts.RequestAccount(context.Background(), e.prod, e.svc.State(), opsCustomer, events.RoleOperator, "bootstrap", e.clock.Now()); err != nil {
		e.t.Fatal(err)
	}
	id, pw := e.newMail("ops@mimamori.example", 1)
	op, r := e.login(id, pw)
	want(e.t, r, 200, "")
	want(e.t, op.do("POST", "/api/v1/login/credentials", map[string]string{"login_id": "ops-operator", "password": "a long enough passphrase for ops"}), 200, "")
	e.enrolTOTP(op) // an operator cannot decline it
	acc, _ := e.svc.State().ByLogin("ops-operator")
	if acc.Role != events.RoleOperator {
		e.t.Fatalf("operator account has role %q", acc.Role)
	}
	return admin, op, opsCustomer, acc.ID
}

// records reads every event of a topic so far.
func (e *env) records(topic string) []events.Envelope {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []events.Envelope
	if err := eventlog.ReadToEnd(ctx, e.kcfg, []string{e.kcfg.Topic(topic)}, nil,
		func(_ *kgo.Record, env events.Envelope) { out = append(out, env) }); err != nil {
		e.t.Fatal(err)
	}
	return out
}

type opCustomers struct {
	Items []struct {
		CustomerID string `json:"customer_id"`
		Name       string
		Devices    int
		Alerts30d  int `json:"alerts_30d"`
		OpenLocks  int `json:"open_locks"`
	}
}

type opAccounts struct {
	Items []struct {
		AccountID string `json:"account_id"`
		LoginID   string `json:"login_id"`
		Role      string
		Locked    bool
	}
}

func TestOperatorAPI(t *testing.T) {
	d := newDashEnv(t)
	admin, op, opsCust, opAcc := d.operator()
	// The operator organisation's own administrator is no operator.
	if st, body := d.send(admin, "GET", "/api/v1/operator/customers", nil); st != 403 || !bytes.Contains(body, []byte("operator_only")) {
		t.Fatalf("customer administrator: %d %s", st, body)
	}

	var list opCustomers
	if st := d.get(op, "/api/v1/operator/customers", &list); st != 200 {
		t.Fatalf("customers: %d", st)
	}
	byID := map[string]int{}
	for i, c := range list.Items {
		byID[c.CustomerID] = i
	}
	for _, w := range []struct {
		id              string
		devices, alerts int
	}{{d.custA, 2, 4}, {d.custB, 1, 1}, {opsCust, 0, 0}} {
		i, ok := byID[w.id]
		if !ok {
			t.Fatalf("customer %s not listed: %+v", w.id, list)
		}
		if c := list.Items[i]; c.Devices != w.devices || c.Alerts30d != w.alerts || c.OpenLocks != 0 || c.Name == "" {
			t.Errorf("customer %s: %+v, want %d devices %d alerts", w.id, c, w.devices, w.alerts)
		}
	}

	// One customer's dashboards through the explicit operator routes.
	var mine, viewed summaryJSON
	d.get(d.a, "/api/v1/dashboard/summary", &mine)
	if st := d.get(op, "/api/v1/operator/customers/"+d.custA+"/summary", &viewed); st != 200 || viewed.Total != mine.Total || viewed.Devices != 2 {
		t.Errorf("operator's view of A's summary: %d %+v, A sees %+v", st, viewed, mine)
	}
	var p alertPage
	if st := d.get(op, "/api/v1/operator/customers/"+d.custA+"/alerts", &p); st != 200 || len(p.Items) != 4 {
		t.Errorf("operator's view of A's alerts: %d %v", st, ids(p))
	}
	if st := d.get(op, "/api/v1/operator/customers/"+d.custA+"/alerts/"+d.alertB.ID, nil); st != 404 {
		t.Errorf("B's alert under A: %d, want 404", st)
	}
	if st := d.get(op, "/api/v1/operator/customers/"+d.custB+"/alerts/"+d.alertB.ID, nil); st != 200 {
		t.Errorf("B's alert under B: %d", st)
	}
	if st := d.get(op, "/api/v1/operator/customers/cu_nobody/summary", nil); st != 404 {
		t.Errorf("unknown customer: %d, want 404", st)
	}
	for _, path := range []string{"devices", "notices", "notices/nt_fault_a", "notices/nt_maint"} {
		if st := d.get(op, "/api/v1/operator/customers/"+d.custA+"/"+path, nil); st != 200 {
			t.Errorf("operator's view of A's %s: %d", path, st)
		}
	}
	// A notice as the customer sees it: B's own is not A's.
	if st := d.get(op, "/api/v1/operator/customers/"+d.custA+"/notices/nt_fw_b", nil); st != 404 {
		t.Errorf("B's notice under A: %d, want 404", st)
	}
	var n struct{ ID string }
	if st := d.get(op, "/api/v1/operator/customers/"+d.custB+"/notices/nt_fw_b", &n); st != 200 || n.ID != "nt_fw_b" {
		t.Errorf("B's notice under B: %d %+v", st, n)
	}
	// The operator's own customer routes stay its own organisation's.
	var own alertPage
	if d.get(op, "/api/v1/alerts?customer_id="+d.custA, &own); len(own.Items) != 0 {
		t.Errorf("customer route with a customer_id query shows %v", ids(own))
	}

	// Accounts: listed without secrets; one more requested; mailed to A.
	var accs opAccounts
	st, raw := d.send(op, "GET", "/api/v1/operator/customers/"+d.custA+"/accounts", nil)
	if err := json.Unmarshal(raw, &accs); st != 200 || err != nil || len(accs.Items) != 1 || accs.Items[0].LoginID != "alpha-admin" {
		t.Fatalf("A's accounts: %d %s", st, raw)
	}
	for _, secret := range []string{"argon2", "hash", "sealed", "totp", "phone"} {
		if bytes.Contains(bytes.ToLower(raw), []byte(secret)) {
			t.Errorf("accounts list shows %q: %s", secret, raw)
		}
	}
	if st, body := d.send(op, "POST", "/api/v1/operator/customers/"+d.custA+"/accounts", map[string]string{"role": "operator"}); st != 400 {
		t.Errorf("operator role for a customer: %d %s", st, body)
	}
	st, raw = d.send(op, "POST", "/api/v1/operator/customers/"+d.custA+"/accounts", map[string]string{})
	if st != 202 {
		t.Fatalf("request account: %d %s", st, raw)
	}
	_, pw := d.newMail("a@example.jp", 1)
	if bytes.Contains(raw, []byte(pw)) {
		t.Error("the operator saw the temporary password")
	}
	waitFor(t, func() bool { return len(d.svc.State().Accounts(d.custA)) == 2 })

	// Unlock: lock B's administrator, see the lock, lift it.
	bAcc, _ := d.svc.State().ByLogin("bravo-admin")
	lock, _ := events.New("test", &events.AccountLocked{CustomerID: d.custB, AccountID: bAcc.ID, Failures: 10, LockedAt: d.now}, d.now)
	if err := d.prod.Publish(context.Background(), lock); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { a, _ := d.svc.State().Account(bAcc.ID); return a.Locked })
	d.get(op, "/api/v1/operator/customers", &list)
	for _, c := range list.Items {
		if c.CustomerID == d.custB && c.OpenLocks != 1 {
			t.Errorf("B's open locks: %+v", c)
		}
	}
	if st, _ := d.send(op, "POST", "/api/v1/operator/customers/"+d.custA+"/accounts/"+bAcc.ID+"/unlock", map[string]string{}); st != 404 {
		t.Errorf("B's account unlocked under A: %d, want 404", st)
	}
	if st, body := d.send(op, "POST", "/api/v1/operator/customers/"+d.custB+"/accounts/"+bAcc.ID+"/unlock", map[string]string{}); st != 200 {
		t.Fatalf("unlock: %d %s", st, body)
	}
	waitFor(t, func() bool { a, _ := d.svc.State().Account(bAcc.ID); return !a.Locked })

	// Notices, with the CLI's rules.
	soon, later := d.now.Add(48*time.Hour), d.now.Add(40*24*time.Hour)
	for _, bad := range []map[string]any{
		{"kind": "maintenance", "summary": "x", "starts_at": soon, "ends_at": soon.Add(time.Hour)},
		{"kind": "fault", "level": "C", "summary": "x"},
		{"kind": "fault", "level": "A"},
		{"kind": "firmware", "summary": "x"},
		{"kind": "party", "summary": "x"},
	} {
		if st, body := d.send(op, "POST", "/api/v1/operator/notices", bad); st != 422 {
			t.Errorf("%v: %d %s, want 422", bad, st, body)
		}
	}
	published := map[string]string{}
	for _, good := range []map[string]any{
		{"kind": "maintenance", "summary": "緊急メンテナンス", "starts_at": soon, "ends_at": soon.Add(time.Hour), "force": true},
		{"kind": "maintenance", "summary": "定期", "starts_at": later, "ends_at": later.Add(time.Hour), "customers": d.custA},
		{"kind": "fault", "level": "B", "summary": "遅延", "customers": d.custA},
		{"kind": "firmware", "summary": "更新", "firmware_version": "1.6.0", "customers": d.custA},
	} {
		st, body := d.send(op, "POST", "/api/v1/operator/notices", good)
		var res struct {
			NoticeID string `json:"notice_id"`
			Type     string
		}
		if err := json.Unmarshal(body, &res); st != 201 || err != nil {
			t.Fatalf("%v: %d %s", good, st, body)
		}
		published[res.NoticeID] = res.Type
	}
	// Cross-site protection applies to the operator's POSTs.
	if st, _ := d.send(op, "POST", "/api/v1/operator/notices", map[string]any{"kind": "fault", "level": "A", "summary": "x"},
		"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"); st != 403 {
		t.Errorf("cross-site notice: %d", st)
	}
	if st, _ := d.send(op, "POST", "/api/v1/operator/customers/"+d.custA+"/accounts", map[string]any{},
		"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"); st != 403 {
		t.Errorf("cross-site account request: %d", st)
	}

	// Audit: every action is an event naming the operator's account.
	var ops []events.Envelope
	for _, e := range d.records(events.TopicOperations) {
		if _, ok := published[e.Subject]; ok {
			if e.Source != "mimamori/portal/operator/"+opAcc || e.Type != published[e.Subject] {
				t.Errorf("notice event %s from %s", e.Type, e.Source)
			}
			ops = append(ops, e)
		}
	}
	if len(ops) != len(published) {
		t.Fatalf("%d notice events, want %d", len(ops), len(published))
	}
	requested, unlocked := false, false
	for _, e := range d.records(events.TopicAccounts) {
		p, err := events.Decode(e)
		if err != nil {
			continue
		}
		switch v := p.(type) {
		case *events.AccountRequested:
			requested = requested || (v.CustomerID == d.custA && v.RequestedBy == opAcc && v.Role == events.RoleCustomerAdmin)
		case *events.AccountUnlocked:
			unlocked = unlocked || (v.AccountID == bAcc.ID && v.UnlockedBy == opAcc)
		}
	}
	if !requested || !unlocked {
		t.Errorf("audit events: requested %v, unlocked %v", requested, unlocked)
	}
	// Every read of a customer's data is recorded first, in that customer's
	// audit trail: which route, which alert, by which operator account.
	const base = "/api/v1/operator/customers/:customer"
	views := map[string]int{}
	for _, e := range d.records(events.TopicAccounts) {
		p, err := events.Decode(e)
		if err != nil {
			continue
		}
		if v, ok := p.(*events.OperatorViewedCustomer); ok {
			if v.OperatorAccountID != opAcc || v.OperatorCustomerID != opsCust || v.SourceIP == "" || e.Subject != v.CustomerID {
				t.Errorf("view recorded as %+v (subject %s)", v, e.Subject)
			}
			views[v.CustomerID+" "+strings.TrimPrefix(v.Route, base)+" "+v.Object]++
		}
	}
	for _, want := range []string{d.custA + " /summary ", d.custA + " /alerts ", d.custA + " /alerts/:id " + d.alertB.ID,
		d.custB + " /alerts/:id " + d.alertB.ID, d.custA + " /devices ", d.custA + " /notices ", d.custA + " /accounts ",
		d.custA + " /notices/:id nt_fault_a", d.custB + " /notices/:id nt_fw_b"} {
		if views[want] == 0 {
			t.Errorf("no audit record of %q; recorded: %v", want, views)
		}
	}
	for k := range views {
		if strings.HasPrefix(k, "cu_nobody") {
			t.Errorf("a view of an unknown customer was recorded: %q", k)
		}
	}
	// And the notices reach the customer's dashboard once projected.
	d.envelope = ops
	d.flush()
	var ns struct{ Items []struct{ ID string } }
	d.get(d.a, "/api/v1/notices", &ns)
	seen := 0
	for _, n := range ns.Items {
		if _, ok := published[n.ID]; ok {
			seen++
		}
	}
	if seen != len(published) {
		t.Errorf("A sees %d of the %d published notices: %+v", seen, len(published), ns)
	}
}
