package dashboard_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/mimamori/mimamori/analytics/chtest"
	"github.com/mimamori/mimamori/portal-api/dashboard"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// BenchmarkPortal (task bench:portal) loads MIMAMORI_BENCH_ALERTS alerts
// (10 million by default) across 1,000 customers and 2,000 appliances over
// 90 days into ClickHouse with INSERT … SELECT on the server, then times
// each dashboard query over 100 requests for random customers, beside the
// same question asked of the raw alerts view.
func BenchmarkPortal(b *testing.B) {
	total := 10_000_000
	if v := os.Getenv("MIMAMORI_BENCH_ALERTS"); v != "" {
		total, _ = strconv.Atoi(v)
	}
	const customers, devices, days = 1000, 2000, 90
	conn, db := chtest.Database(b)
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	exec := func(q string, args ...any) {
		b.Helper()
		if err := conn.Exec(ctx, q, args...); err != nil {
			b.Fatalf("%v\n%s", err, q)
		}
	}
	start := time.Now()
	ts := now.Unix()
	exec(fmt.Sprintf(`INSERT INTO %[1]s.device_registrations (device_id, serial, mac, model, manufactured_on, registered_at)
		SELECT concat('dev-', toString(number)), concat('SN-', toString(number)), '02:00:00:00:00:01', 'UTM-100', toDate('2026-04-01'),
		toDateTime(%[2]d - 200 * 86400, 'UTC') FROM system.numbers LIMIT %[3]d`, db, ts, devices))
	exec(fmt.Sprintf(`INSERT INTO %[1]s.device_assignments (device_id, customer_id, assigned_at)
		SELECT concat('dev-', toString(number)), concat('cust-', toString(number %% %[3]d)), toDateTime(%[2]d - 199 * 86400, 'UTC')
		FROM system.numbers LIMIT %[4]d`, db, ts, customers, devices))
	exec(fmt.Sprintf(`INSERT INTO %[1]s.device_status_log (event_id, device_id, customer_id, status, changed_at, detected_at)
		SELECT concat('ev-', toString(number)), concat('dev-', toString(number)), concat('cust-', toString(number %% %[3]d)),
		if(number %% 10 = 0, 'offline', 'online'), toDateTime(%[2]d - 3600, 'UTC'), toDateTime(%[2]d - 3600, 'UTC')
		FROM system.numbers LIMIT %[4]d`, db, ts, customers, devices))
	// Four heartbeats a day per appliance over 90 days.
	exec(fmt.Sprintf(`INSERT INTO %[1]s.heartbeats (id, device_id, customer_id, sent_at, received_at, firmware_version,
		definitions_version, uptime_seconds, clients, packets, bytes, alerts, queue_depth)
		SELECT concat('hb-', toString(number)), concat('dev-', toString(number %% %[4]d)),
		concat('cust-', toString((number %% %[4]d) %% %[3]d)), toDateTime(%[2]d - intDiv(number, %[4]d) * 21600 - 60, 'UTC') AS t, t,
		'1.4.2', '2026.11.25', 86400, 12, number, number * 800, 3, 0
		FROM system.numbers LIMIT %[5]d`, db, ts, customers, devices, devices*days*4))
	exec(fmt.Sprintf(`INSERT INTO %[1]s.alerts_log (id, device_id, customer_id, detected_at, received_at, severity, kind, indicator,
		label, action, src_ip, src_port, src_mac, dst_ip, dst_port, dst_mac, protocol, zones, url, domain, file_name, file_sha256,
		definitions_version, count)
		SELECT concat('al-', toString(number)) AS id, concat('dev-', toString(number %% %[4]d)),
		concat('cust-', toString((number %% %[4]d) %% %[3]d)),
		toDateTime(%[2]d - ((number * 7919) %% (%[5]d * 86400)) - 1, 'UTC') AS t, t + 2,
		toUInt8(1 + intHash32(number) %% 3), ['domain', 'ip', 'url', 'file', 'behaviour'][1 + number %% 5],
		concat('ind-', toString(number %% 50000), '.example'), 'sample threat', 'blocked', '192.168.1.10', 51234,
		'02:00:00:00:10:10', '203.0.113.9', 443, '02:00:00:00:20:20', 'tcp', 'LAN>WAN', '', concat('ind-', toString(number %% 50000), '.example'),
		'', '', '2026.11.25', 1
		FROM system.numbers LIMIT %[6]d`, db, ts, customers, devices, days, total))
	exec(fmt.Sprintf(`INSERT INTO %[1]s.notices_log (notice_id, kind, level, customers, summary, details, firmware_version, starts_at,
		ends_at, published_at) SELECT concat('nt-', toString(number)), 'maintenance', '', ['*'], 'maintenance', '', '',
		toDateTime(%[2]d, 'UTC'), toDateTime(%[2]d + 7200, 'UTC'), toDateTime(%[2]d - number * 86400, 'UTC') FROM system.numbers LIMIT 20`, db, ts))
	load := time.Since(start)
	var rows uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".alerts_log").Scan(&rows); err != nil {
		b.Fatal(err)
	}
	b.Logf("loaded %d alerts, %d customers, %d appliances, %d heartbeats in %s", rows, customers, devices, devices*days*4, load.Round(time.Millisecond))

	st, err := dashboard.New(conn, db, func() time.Time { return now })
	if err != nil {
		b.Fatal(err)
	}
	cold, _ := dashboard.New(conn, db, func() time.Time { return now })
	cold.Fleet().SetMaxStale(0)
	if err := st.Fleet().Warm(ctx); err != nil { // as the portal does when it starts
		b.Fatal(err)
	}
	arrived := 0
	// arrive inserts 100 more alerts, as the projector would between two
	// requests, so that every fleet figure read next is out of date.
	arrive := func() {
		exec(fmt.Sprintf(`INSERT INTO %[1]s.alerts_log (id, device_id, customer_id, detected_at, received_at, severity, kind, indicator,
			label, action, src_ip, src_port, src_mac, dst_ip, dst_port, dst_mac, protocol, zones, url, domain, file_name, file_sha256,
			definitions_version, count)
			SELECT concat('new-', toString(%[3]d + number)), concat('dev-', toString(number %% %[4]d)), concat('cust-', toString(number %% %[5]d)),
			toDateTime(%[2]d - 60, 'UTC'), toDateTime(%[2]d - 58, 'UTC'), 3, 'domain', 'fresh.example', 'fresh', 'blocked', '192.168.1.10', 1, '',
			'203.0.113.9', 443, '', 'tcp', 'LAN>WAN', '', 'fresh.example', '', '', '2026.11.26', 1 FROM system.numbers LIMIT 100`,
			db, ts, arrived, devices, customers))
		arrived += 100
	}
	p := dashboard.LastDays(now, 30)
	rng := rand.New(rand.NewPCG(1, 2))
	cust := func() string { return "cust-" + strconv.Itoa(rng.IntN(customers)) }
	q := func(sql string) string { return fmt.Sprintf(sql, db) }
	from, to := p.Start().UTC(), p.End().UTC()
	rawQuery := func(sql string, args ...any) func(string) error {
		return func(c string) error { return drain(ctx, conn, q(sql), append([]any{c}, args...)...) }
	}
	type endpoint struct {
		name   string
		api    func(c string) error
		raw    func(c string) error
		before func() // untimed, before each request
		// background: not an endpoint but the shared computation the
		// comparison refreshes behind requests (at most a fifth of a core)
		background bool
	}
	eps := []endpoint{
		{"GET /api/v1/dashboard/summary", func(c string) error { _, err := st.Summary(ctx, c, p); return err },
			rawQuery(`SELECT severity, kind, count() FROM %s.alerts WHERE customer_id = ? AND detected_at >= ? AND detected_at < ? GROUP BY severity, kind`, from, to), nil, false},
		{"GET /api/v1/alerts", func(c string) error {
			_, _, err := st.Alerts(ctx, c, dashboard.Filter{Period: p, Sort: "detected_at", Desc: true, Page: 1, PageSize: 50})
			return err
		}, func(c string) error {
			if err := drain(ctx, conn, q(`SELECT count() FROM %s.alerts WHERE customer_id = ? AND detected_at >= ? AND detected_at < ?`), c, from, to); err != nil {
				return err
			}
			return drain(ctx, conn, q(`SELECT * FROM %s.alerts WHERE customer_id = ? AND detected_at >= ? AND detected_at < ? ORDER BY detected_at DESC LIMIT 50`), c, from, to)
		}, nil, false},
		{"GET /api/v1/alerts?severity=3,2&q=…", func(c string) error {
			_, _, err := st.Alerts(ctx, c, dashboard.Filter{Period: p, Severities: []int{3, 2}, Text: "ind-12", Sort: "severity", Desc: true, Page: 2, PageSize: 20})
			return err
		}, nil, nil, false},
		{"GET /api/v1/alerts/:id", func(c string) error {
			_, err := st.Alert(ctx, c, "al-"+strconv.Itoa(rng.IntN(total)))
			if err == dashboard.ErrNotFound {
				return nil
			}
			return err
		}, func(c string) error {
			return drain(ctx, conn, q(`SELECT * FROM %s.alerts WHERE customer_id = ? AND id = ?`), c, "al-"+strconv.Itoa(rng.IntN(total)))
		}, nil, false},
		{"GET /api/v1/devices", func(c string) error { _, err := st.Devices(ctx, c); return err },
			rawQuery(`SELECT device_id, max(received_at), argMax(firmware_version, sent_at), argMax(clients, sent_at) FROM %s.heartbeats WHERE customer_id = ? GROUP BY device_id`), nil, false},
		{"GET /api/v1/compare/participants", func(c string) error { _, _, err := st.Participants(ctx, c, p); return err },
			func(c string) error {
				if err := drain(ctx, conn, q(`SELECT toDate(sent_at + 32400) AS d, uniqExact(customer_id) FROM %s.heartbeats WHERE sent_at >= ? AND sent_at < ? GROUP BY d`), from, to); err != nil {
					return err
				}
				return drain(ctx, conn, q(`SELECT toDate(detected_at + 32400) AS d, customer_id, count() FROM %s.alerts WHERE detected_at >= ? AND detected_at < ? GROUP BY d, customer_id`), from, to)
			}, nil, false},
		{"  …while alerts arrive between requests", func(c string) error { _, _, err := st.Participants(ctx, c, p); return err }, nil, arrive, false},
		{"  …fleet figures, the refresh behind", func(c string) error { _, _, err := cold.Participants(ctx, c, p); return err }, nil, nil, true},
		{"GET /api/v1/compare/devices", func(c string) error { _, err := st.CompareDevices(ctx, c, p); return err },
			rawQuery(`SELECT device_id, toDate(detected_at + 32400) AS d, count() FROM %s.alerts WHERE customer_id = ? AND detected_at >= ? AND detected_at < ? GROUP BY device_id, d`, from, to), nil, false},
		{"GET /api/v1/notices", func(c string) error { _, err := st.Notices(ctx, c); return err }, nil, nil, false},
	}
	const requests = 100
	rawBudget := 20 * time.Second // raw questions stop after this long
	measure := func(f func(string) error, before func(), budget time.Duration) (p50, p99 time.Duration, n int, err error) {
		var lat []time.Duration
		began := time.Now()
		for i := 0; i < requests; i++ {
			c := cust()
			if before != nil {
				before()
			}
			t0 := time.Now()
			if err := f(c); err != nil {
				return 0, 0, len(lat), err
			}
			lat = append(lat, time.Since(t0))
			if budget > 0 && time.Since(began) > budget {
				break
			}
		}
		slices.Sort(lat)
		return lat[len(lat)*50/100], lat[min(len(lat)-1, (len(lat)*99+99)/100-1)], len(lat), nil
	}
	// pass measures every endpoint, and the raw questions if withRaw.
	pass := func(title string, withRaw bool) string {
		out := fmt.Sprintf("\n%s\n%-38s %10s %10s %5s | %10s %10s %5s\n", title,
			"endpoint ("+strconv.Itoa(int(rows))+" alerts)", "p50", "p99", "n", "raw p50", "raw p99", "n")
		for _, e := range eps {
			p50, p99, n, err := measure(e.api, e.before, 0)
			if err != nil {
				b.Fatalf("%s: %v", e.name, err)
			}
			line := fmt.Sprintf("%-38s %10s %10s %5d |", e.name, ms(p50), ms(p99), n)
			switch {
			case withRaw && e.raw != nil:
				r50, r99, rn, err := measure(e.raw, e.before, rawBudget)
				if err != nil {
					line += fmt.Sprintf(" %-27s", "fails: "+shortErr(err))
				} else {
					line += fmt.Sprintf(" %10s %10s %5d", ms(r50), ms(r99), rn)
				}
			default:
				line += fmt.Sprintf(" %10s %10s %5s", "—", "—", "")
			}
			verdict := "ok"
			switch {
			case e.background:
				verdict = "(not a request)"
			case p99 >= 50*time.Millisecond:
				verdict = "OVER 50 ms"
			}
			out += line + "  " + verdict + "\n"
			fmt.Println(line + "  " + verdict)
		}
		return out
	}
	b.ResetTimer()
	out := pass("right after the load, while the server still merges its parts:", false)
	settle := time.Now()
	for time.Since(settle) < 10*time.Minute {
		var merging uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.merges WHERE database = ?", db).Scan(&merging); err != nil {
			b.Fatal(err)
		}
		if merging == 0 {
			break
		}
		time.Sleep(time.Second)
	}
	out += pass(fmt.Sprintf("once merges settled (%s later):", time.Since(settle).Round(time.Second)), true)
	b.Log(out)
	fmt.Println(out)
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.Index(s, "Memory limit"); i >= 0 {
		return "memory limit exceeded"
	}
	if len(s) > 40 {
		s = s[:40]
	}
	return s
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func drain(ctx context.Context, conn driver.Conn, q string, args ...any) error {
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, q)
	}
	defer rows.Close()
	for rows.Next() {
	}
	return rows.Err()
}
