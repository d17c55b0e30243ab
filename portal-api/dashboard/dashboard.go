// Package dashboard answers the questions of the customer portal's
// dashboards from ClickHouse. Every function takes the customer ID as a
// parameter and filters on it; callers take it from the session, never from
// the request. Counts come from the daily aggregates by Japanese calendar day
// (alerts_daily_jst_by_customer, alerts_customer_daily_jst_state,
// active_days_jst_log), so each answer reads a few thousand rows whatever the
// size of the alerts table; the alert list and detail read
// alerts_by_customer, the alerts sorted by (customer_id, detected_at, id,
// device_id), where a customer's period is a short range, and alert_ids,
// which gives an alert's device and detected_at by id. An alert is its
// device's: two devices reporting one id are two alerts.
package dashboard

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/mimamori/mimamori/analytics/migrate"
	"github.com/mimamori/mimamori/events"
)

// JST is the portal's calendar: periods are Japanese days.
var JST = time.FixedZone("JST", 9*3600)

// Retention is how far back alerts are shown.
const Retention = 90 * 24 * time.Hour

// MinParticipants is the fewest companies whose average is shown.
const MinParticipants = 5

// ErrNotFound is an object that is not the customer's or no longer kept.
var ErrNotFound = errors.New("dashboard: not found")

// Store queries one database.
type Store struct {
	conn    driver.Conn
	db      string
	now     func() time.Time
	timeout time.Duration
	fleet   *Fleet
}

// New returns a Store over database db; now defaults to time.Now.
func New(conn driver.Conn, db string, now func() time.Time) (*Store, error) {
	if err := migrate.ValidDatabase(db); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &Store{conn: conn, db: db, now: now, timeout: 10 * time.Second, fleet: newFleet(conn, db, now)}, nil
}

// Fleet is the store's cache of the fleet-wide figures.
func (s *Store) Fleet() *Fleet { return s.fleet }

// WithFleet returns the store answering the participants' comparison from
// f, the fleet cache of the process (which its owner keeps warm), in
// place of its own.
func (s *Store) WithFleet(f *Fleet) *Store {
	c := *s
	c.fleet = f
	return &c
}

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.now() }

// Period is a range of whole Japanese days, both ends included.
type Period struct{ From, To time.Time } // midnight JST

// Days lists the days of the period.
func (p Period) Days() []time.Time {
	var out []time.Time
	for d := p.From; !d.After(p.To); d = d.AddDate(0, 0, 1) {
		out = append(out, d)
	}
	return out
}

// Start and End bound the period as instants (End exclusive).
func (p Period) Start() time.Time { return p.From }
func (p Period) End() time.Time   { return p.To.AddDate(0, 0, 1) }

// Day formats a day as YYYY-MM-DD.
func Day(t time.Time) string { return t.In(JST).Format(time.DateOnly) }

// Today is the Japanese day of now.
func Today(now time.Time) time.Time {
	y, m, d := now.In(JST).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, JST)
}

// LastDays is the default period: the n days up to and including today.
func LastDays(now time.Time, n int) Period {
	t := Today(now)
	return Period{From: t.AddDate(0, 0, -(n - 1)), To: t}
}

func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

func (s *Store) q(sql string) string { return strings.ReplaceAll(sql, "{db}", s.db) }

// Summary is the security status of a period.
type Summary struct {
	Devices    uint64
	Total      uint64
	Important  uint64
	BySeverity map[int]uint64
	ByKind     map[string]uint64
}

// Severities and kinds, in display order.
var (
	Severities = []int{events.SeverityLow, events.SeverityMedium, events.SeverityHigh}
	Kinds      = []string{events.KindDomain, events.KindIP, events.KindURL, events.KindFile, events.KindBehaviour}
)

// Summary counts the customer's alerts of the period by severity and kind.
func (s *Store) Summary(ctx context.Context, customer string, p Period) (Summary, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	out := Summary{BySeverity: map[int]uint64{}, ByKind: map[string]uint64{}}
	for _, v := range Severities {
		out.BySeverity[v] = 0
	}
	for _, k := range Kinds {
		out.ByKind[k] = 0
	}
	var err error
	if out.Devices, err = s.deviceCount(ctx, customer); err != nil {
		return out, err
	}
	rows, err := s.conn.Query(ctx, s.q(`SELECT severity, kind, uniqExactMerge(alerts) FROM {db}.alerts_daily_jst_by_customer
		WHERE customer_id = ? AND day >= toDate(?) AND day <= toDate(?) GROUP BY severity, kind`), customer, Day(p.From), Day(p.To))
	if err != nil {
		return out, fmt.Errorf("dashboard: summary: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var sev uint8
		var kind string
		var n uint64
		if err := rows.Scan(&sev, &kind, &n); err != nil {
			return out, err
		}
		out.BySeverity[int(sev)] += n
		out.ByKind[kind] += n
		out.Total += n
		if int(sev) >= events.SeverityMedium {
			out.Important += n
		}
	}
	return out, rows.Err()
}

func (s *Store) deviceCount(ctx context.Context, customer string) (uint64, error) {
	var n uint64
	err := s.conn.QueryRow(ctx, s.q(`SELECT count() FROM {db}.devices WHERE customer_id = ?`), customer).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("dashboard: devices: %w", err)
	}
	return n, nil
}

// Filter selects alerts.
type Filter struct {
	Period     Period
	Device     string
	Severities []int
	Kinds      []string
	Text       string
	Sort       string // detected_at or severity
	Desc       bool
	Page       int // from 1
	PageSize   int
}

// Alert is one alert as the portal shows it: the fields of events.Alert.
type Alert = events.Alert

const alertCols = `id, device_id, customer_id, detected_at, received_at, severity, kind, indicator, label, action,
	src_ip, src_port, src_mac, dst_ip, dst_port, dst_mac, protocol, zones, url, domain, file_name, file_sha256,
	definitions_version, count`

func scanAlert(r interface{ Scan(...any) error }) (Alert, error) {
	var a Alert
	var sev uint8
	var sp, dp uint16
	var cnt uint32
	err := r.Scan(&a.ID, &a.DeviceID, &a.CustomerID, &a.DetectedAt, &a.ReceivedAt, &sev, &a.Kind, &a.Indicator, &a.Label, &a.Action,
		&a.SrcIP, &sp, &a.SrcMAC, &a.DstIP, &dp, &a.DstMAC, &a.Protocol, &a.Zones, &a.URL, &a.Domain, &a.FileName, &a.FileSHA256,
		&a.DefinitionsVersion, &cnt)
	a.Severity, a.SrcPort, a.DstPort, a.Count = int(sev), int(sp), int(dp), int(cnt)
	a.DetectedAt, a.ReceivedAt = a.DetectedAt.UTC(), a.ReceivedAt.UTC()
	return a, err
}

// cutoff is the oldest detected_at shown.
func (s *Store) cutoff() time.Time { return s.now().Add(-Retention).UTC().Truncate(time.Second) }

// Alerts lists one page of the customer's alerts and how many match.
func (s *Store) Alerts(ctx context.Context, customer string, f Filter) ([]Alert, uint64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	from := f.Period.Start().UTC()
	if c := s.cutoff(); from.Before(c) {
		from = c
	}
	where := []string{"customer_id = ?", "detected_at >= ?", "detected_at < ?"}
	args := []any{customer, from, f.Period.End().UTC()}
	if f.Device != "" {
		where = append(where, "device_id = ?")
		args = append(args, f.Device)
	}
	if len(f.Severities) > 0 {
		var in []string
		for _, v := range f.Severities {
			in = append(in, fmt.Sprint(v)) // validated integers
		}
		where = append(where, "severity IN ("+strings.Join(in, ", ")+")")
	}
	if len(f.Kinds) > 0 {
		ph := strings.TrimSuffix(strings.Repeat("?, ", len(f.Kinds)), ", ")
		where = append(where, "kind IN ("+ph+")")
		for _, k := range f.Kinds {
			args = append(args, k)
		}
	}
	if f.Text != "" {
		where = append(where, `position(lowerUTF8(concat(indicator, '\n', label, '\n', domain, '\n', url, '\n', file_name, '\n',
			file_sha256, '\n', src_ip, '\n', dst_ip)), lowerUTF8(?)) > 0`)
		args = append(args, f.Text)
	}
	cond := strings.Join(where, " AND ")
	// No FINAL: it reads every part of the period's partitions. A resent
	// alert keeps its device and id, so distinct pairs count it once, and
	// LIMIT 1 BY keeps its latest receipt. The count runs beside the page.
	var total uint64
	var countErr error
	counted := make(chan struct{})
	go func() {
		defer close(counted)
		if err := s.conn.QueryRow(ctx, s.q(`SELECT uniqExact(device_id, id) FROM {db}.alerts_by_customer WHERE `+cond), args...).Scan(&total); err != nil {
			countErr = fmt.Errorf("dashboard: count alerts: %w", err)
		}
	}()
	items, err := s.alertPage(ctx, cond, args, f)
	<-counted
	if err != nil {
		return nil, 0, err
	}
	if countErr != nil {
		return nil, 0, countErr
	}
	return items, total, nil
}

// alertPage reads one page of the alerts matching cond.
func (s *Store) alertPage(ctx context.Context, cond string, args []any, f Filter) ([]Alert, error) {
	dir := "ASC"
	if f.Desc {
		dir = "DESC"
	}
	order := "detected_at " + dir + ", id " + dir + ", device_id " + dir + ", received_at DESC"
	if f.Sort == "severity" {
		order = "severity " + dir + ", detected_at DESC, id DESC, device_id DESC, received_at DESC"
	}
	limit := fmt.Sprintf(" LIMIT %d, %d", (f.Page-1)*f.PageSize, f.PageSize)
	rows, err := s.conn.Query(ctx, s.q(`SELECT `+alertCols+` FROM {db}.alerts_by_customer WHERE `+cond+` ORDER BY `+order+` LIMIT 1 BY id, device_id`+limit), args...)
	if err != nil {
		return nil, fmt.Errorf("dashboard: alerts: %w", err)
	}
	defer rows.Close()
	items := []Alert{}
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, err
		}
		items = append(items, a)
	}
	return items, rows.Err()
}

// Alert returns one of the customer's alerts, or ErrNotFound. Should two
// of the customer's devices have reported the id, the one whose device ID
// sorts first is returned (the list shows both).
func (s *Store) Alert(ctx context.Context, customer, id string) (Alert, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	// alert_ids gives the device and detected_at, so the read touches one
	// partition by its whole sorting key.
	var device string
	var at time.Time
	if err := s.conn.QueryRow(ctx, s.q(`SELECT device_id, detected_at FROM {db}.alert_ids WHERE id = ? AND customer_id = ?
		ORDER BY device_id LIMIT 1`), id, customer).Scan(&device, &at); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Alert{}, ErrNotFound
		}
		return Alert{}, fmt.Errorf("dashboard: alert id: %w", err)
	}
	rows, err := s.conn.Query(ctx, s.q(`SELECT `+alertCols+` FROM {db}.alerts_by_customer
		WHERE customer_id = ? AND detected_at = ? AND id = ? AND device_id = ? AND detected_at >= ? ORDER BY received_at DESC LIMIT 1`),
		customer, at.UTC(), id, device, s.cutoff())
	if err != nil {
		return Alert{}, fmt.Errorf("dashboard: alert: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return Alert{}, err
		}
		return Alert{}, ErrNotFound
	}
	return scanAlert(rows)
}

// Device is one appliance of the customer.
type Device struct {
	DeviceID           string
	Serial             string
	Model              string
	Status             string // online, offline, silent or unknown
	LastContact        time.Time
	FirmwareVersion    string
	DefinitionsVersion string
	Clients            uint32
}

// Devices lists the customer's appliances with their state.
func (s *Store) Devices(ctx context.Context, customer string) ([]Device, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	rows, err := s.conn.Query(ctx, s.q(`SELECT device_id, serial, model FROM {db}.devices WHERE customer_id = ? ORDER BY serial, device_id`), customer)
	if err != nil {
		return nil, fmt.Errorf("dashboard: devices: %w", err)
	}
	out := []Device{}
	idx := map[string]int{}
	for rows.Next() {
		d := Device{Status: "unknown"}
		if err := rows.Scan(&d.DeviceID, &d.Serial, &d.Model); err != nil {
			rows.Close()
			return nil, err
		}
		idx[d.DeviceID] = len(out)
		out = append(out, d)
	}
	rows.Close()
	if len(out) == 0 {
		return out, rows.Err()
	}
	// The watchdog's latest judgement.
	rows, err = s.conn.Query(ctx, s.q(`SELECT device_id, argMax(status, detected_at) FROM {db}.device_status_log
		WHERE customer_id = ? GROUP BY device_id`), customer)
	if err != nil {
		return nil, fmt.Errorf("dashboard: device status: %w", err)
	}
	for rows.Next() {
		var id, st string
		if err := rows.Scan(&id, &st); err != nil {
			rows.Close()
			return nil, err
		}
		if i, ok := idx[id]; ok {
			out[i].Status = st
		}
	}
	rows.Close()
	// Last contact from the daily aggregate, then the latest heartbeat's
	// versions and clients from that day on.
	rows, err = s.conn.Query(ctx, s.q(`SELECT device_id, maxMerge(last_seen) FROM {db}.heartbeats_daily_state
		WHERE customer_id = ? GROUP BY device_id`), customer)
	if err != nil {
		return nil, fmt.Errorf("dashboard: last contact: %w", err)
	}
	var earliest time.Time
	for rows.Next() {
		var id string
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			rows.Close()
			return nil, err
		}
		if i, ok := idx[id]; ok && at.Unix() > 0 {
			out[i].LastContact = at.UTC()
			if earliest.IsZero() || at.Before(earliest) {
				earliest = at
			}
		}
	}
	rows.Close()
	if earliest.IsZero() {
		return out, nil
	}
	day := earliest.UTC().Truncate(24 * time.Hour)
	rows, err = s.conn.Query(ctx, s.q(`SELECT device_id, argMax(firmware_version, sent_at), argMax(definitions_version, sent_at),
		argMax(clients, sent_at) FROM {db}.heartbeats WHERE customer_id = ? AND sent_at >= ? GROUP BY device_id`), customer, day)
	if err != nil {
		return nil, fmt.Errorf("dashboard: versions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, fw, defs string
		var clients uint32
		if err := rows.Scan(&id, &fw, &defs, &clients); err != nil {
			return nil, err
		}
		if i, ok := idx[id]; ok {
			out[i].FirmwareVersion, out[i].DefinitionsVersion, out[i].Clients = fw, defs, clients
		}
	}
	return out, rows.Err()
}

// DayCompare is one day of the comparison with the participants.
type DayCompare struct {
	Day          time.Time
	Mine         uint64
	Average      float64
	Percentile   float64
	Participants int
}

// Participants compares the customer's daily alert count with the average
// over all participating companies: customers with a device that sent a
// heartbeat that day. participants is the fewest companies on any
// day of the period; below MinParticipants callers must hide the average
// and percentile.
//
// The customer's own counts are read for every request; the fleet's come
// from figures shared by all customers, which may lag the newest alerts by
// up to the fleet cache's maximum staleness (Fleet.SetMaxStale) while a refresh
// runs behind.
func (s *Store) Participants(ctx context.Context, customer string, p Period) (days []DayCompare, participants int, err error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	fleet, err := s.fleet.days(ctx, p)
	if err != nil {
		return nil, 0, err
	}
	mine, err := s.dailyTotals(ctx, customer, p)
	if err != nil {
		return nil, 0, err
	}
	participants = -1
	for _, day := range p.Days() {
		d := Day(day)
		dc := DayCompare{Day: day, Mine: mine[d], Participants: len(fleet.active[d])}
		if participants < 0 || dc.Participants < participants {
			participants = dc.Participants
		}
		if dc.Participants > 0 {
			var sum uint64
			var below, equal int
			for c := range fleet.active[d] {
				n := fleet.counts[d][c]
				if c == customer {
					n = dc.Mine
				}
				sum += n
				switch {
				case n < dc.Mine:
					below++
				case n == dc.Mine:
					equal++
				}
			}
			dc.Average = float64(sum) / float64(dc.Participants)
			// Mid-rank percentile: the share of companies with fewer alerts,
			// counting ties as half.
			dc.Percentile = 100 * (float64(below) + float64(equal)/2) / float64(dc.Participants)
		}
		days = append(days, dc)
	}
	if participants < 0 {
		participants = 0
	}
	return days, participants, nil
}

// dailyTotals is the customer's distinct alerts per day of the period.
func (s *Store) dailyTotals(ctx context.Context, customer string, p Period) (map[string]uint64, error) {
	rows, err := s.conn.Query(ctx, s.q(`SELECT toString(day), uniqExactMerge(alerts) FROM {db}.alerts_daily_jst_by_customer
		WHERE customer_id = ? AND day >= toDate(?) AND day <= toDate(?) GROUP BY day`), customer, Day(p.From), Day(p.To))
	if err != nil {
		return nil, fmt.Errorf("dashboard: daily totals: %w", err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var d string
		var n uint64
		if err := rows.Scan(&d, &n); err != nil {
			return nil, err
		}
		out[d] = n
	}
	return out, rows.Err()
}

// DeviceSeries is one appliance's daily alert counts.
type DeviceSeries struct {
	DeviceID string
	Serial   string
	Total    uint64
	Days     []DayCount
}

// DayCount is one day's alerts.
type DayCount struct {
	Day    time.Time
	Alerts uint64
}

// CompareDevices gives each of the customer's appliances its alerts per day.
func (s *Store) CompareDevices(ctx context.Context, customer string, p Period) ([]DeviceSeries, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	rows, err := s.conn.Query(ctx, s.q(`SELECT device_id, serial FROM {db}.devices WHERE customer_id = ?`), customer)
	if err != nil {
		return nil, fmt.Errorf("dashboard: devices: %w", err)
	}
	serial := map[string]string{}
	for rows.Next() {
		var id, sn string
		if err := rows.Scan(&id, &sn); err != nil {
			rows.Close()
			return nil, err
		}
		serial[id] = sn
	}
	rows.Close()
	counts := map[string]map[string]uint64{}
	rows, err = s.conn.Query(ctx, s.q(`SELECT device_id, toString(day), uniqExactMerge(alerts) FROM {db}.alerts_daily_jst_by_customer
		WHERE customer_id = ? AND day >= toDate(?) AND day <= toDate(?) GROUP BY device_id, day`), customer, Day(p.From), Day(p.To))
	if err != nil {
		return nil, fmt.Errorf("dashboard: device counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, d string
		var n uint64
		if err := rows.Scan(&id, &d, &n); err != nil {
			return nil, err
		}
		if counts[id] == nil {
			counts[id] = map[string]uint64{}
		}
		counts[id][d] = n
		if _, ok := serial[id]; !ok { // a device since moved elsewhere: its alerts stay the customer's
			serial[id] = ""
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(serial))
	for id := range serial {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		if serial[ids[i]] != serial[ids[j]] {
			return serial[ids[i]] < serial[ids[j]]
		}
		return ids[i] < ids[j]
	})
	out := []DeviceSeries{}
	for _, id := range ids {
		ds := DeviceSeries{DeviceID: id, Serial: serial[id], Days: []DayCount{}}
		for _, day := range p.Days() {
			n := counts[id][Day(day)]
			ds.Total += n
			ds.Days = append(ds.Days, DayCount{Day: day, Alerts: n})
		}
		out = append(out, ds)
	}
	return out, nil
}

// Notice is one notice shown to the customer.
type Notice struct {
	ID              string
	Kind            string // maintenance, fault, firmware
	Level           string
	Summary         string
	Details         string
	FirmwareVersion string
	StartsAt        time.Time
	EndsAt          time.Time // zero when open-ended
	PublishedAt     time.Time
}

// noticeCols are the columns scanNotice reads; noticeFor is the condition
// of the notices a customer sees: its own and those for everyone, never a
// fault of level Z.
const (
	noticeCols = `notice_id, kind, level, summary, details, firmware_version, starts_at, ends_at, published_at`
	noticeFor  = `(has(customers, ?) OR has(customers, '*')) AND NOT (kind = 'fault' AND level NOT IN ('A', 'B'))`
)

func scanNotice(r interface{ Scan(...any) error }) (Notice, error) {
	var n Notice
	if err := r.Scan(&n.ID, &n.Kind, &n.Level, &n.Summary, &n.Details, &n.FirmwareVersion, &n.StartsAt, &n.EndsAt, &n.PublishedAt); err != nil {
		return Notice{}, err
	}
	n.StartsAt, n.PublishedAt = n.StartsAt.UTC(), n.PublishedAt.UTC()
	if n.EndsAt.Unix() <= 0 {
		n.EndsAt = time.Time{}
	} else {
		n.EndsAt = n.EndsAt.UTC()
	}
	return n, nil
}

// Notices lists the notices for the customer or for everyone, newest
// first. Faults of level Z are never shown.
func (s *Store) Notices(ctx context.Context, customer string) ([]Notice, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	rows, err := s.conn.Query(ctx, s.q(`SELECT `+noticeCols+` FROM {db}.notices WHERE `+noticeFor+`
		ORDER BY published_at DESC, notice_id LIMIT 200`), customer)
	if err != nil {
		return nil, fmt.Errorf("dashboard: notices: %w", err)
	}
	defer rows.Close()
	out := []Notice{}
	for rows.Next() {
		n, err := scanNotice(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// Notice returns one notice the customer sees (as Notices lists them,
// however old), or ErrNotFound: another customer's notice, a fault of
// level Z, an ID never published.
func (s *Store) Notice(ctx context.Context, customer, id string) (Notice, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	// notice_id is the table's sorting key: the read touches one granule.
	n, err := scanNotice(s.conn.QueryRow(ctx, s.q(`SELECT `+noticeCols+` FROM {db}.notices WHERE notice_id = ? AND `+noticeFor+`
		LIMIT 1`), id, customer))
	if errors.Is(err, sql.ErrNoRows) {
		return Notice{}, ErrNotFound
	}
	if err != nil {
		return Notice{}, fmt.Errorf("dashboard: notice: %w", err)
	}
	return n, nil
}
