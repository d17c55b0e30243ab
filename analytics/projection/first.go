package projection

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"

	"github.com/mimamori/mimamori/events"
)

// alertCols are the columns of alerts_log, in the order of alertRow.values.
const alertCols = "id, device_id, customer_id, detected_at, received_at, severity, kind, indicator, label, action, " +
	"src_ip, src_port, src_mac, dst_ip, dst_port, dst_mac, protocol, zones, url, domain, file_name, file_sha256, definitions_version, count"

// alertKey is an alert: its device's, under its id. Every event of one key
// is in one Kafka partition (keyed by the device), so which came first is
// the log's order.
type alertKey struct{ device, id string }

// alertRow is an alert as alerts_log stores it. Two events of one key are
// the same version when their content is equal: only received_at differs
// between an alert and its resend.
type alertRow struct {
	alertKey
	content  alertContent
	received time.Time
}

// alertContent is every stored column but the key and received_at, as
// stored (times to the second, the customer it was stamped with).
type alertContent struct {
	customer                             string
	detected                             int64 // Unix seconds
	severity                             uint8
	kind, indicator, label, action       string
	srcIP                                string
	srcPort                              uint16
	srcMAC, dstIP                        string
	dstPort                              uint16
	dstMAC, protocol, zones, url, domain string
	fileName, fileSHA256, definitions    string
	count                                uint32
}

func rowOf(a *events.Alert) alertRow {
	return alertRow{alertKey: alertKey{a.DeviceID, a.ID}, received: a.ReceivedAt.UTC(), content: alertContent{
		customer: a.CustomerID, detected: a.DetectedAt.Unix(), severity: uint8(a.Severity),
		kind: a.Kind, indicator: a.Indicator, label: a.Label, action: a.Action,
		srcIP: a.SrcIP, srcPort: uint16(a.SrcPort), srcMAC: a.SrcMAC, dstIP: a.DstIP, dstPort: uint16(a.DstPort), dstMAC: a.DstMAC,
		protocol: a.Protocol, zones: a.Zones, url: a.URL, domain: a.Domain,
		fileName: a.FileName, fileSHA256: a.FileSHA256, definitions: a.DefinitionsVersion, count: uint32(a.Count)}}
}

func (r *alertRow) values() []any {
	c := &r.content
	return []any{r.id, r.device, c.customer, time.Unix(c.detected, 0).UTC(), r.received,
		c.severity, c.kind, c.indicator, c.label, c.action,
		c.srcIP, c.srcPort, c.srcMAC, c.dstIP, c.dstPort, c.dstMAC,
		c.protocol, c.zones, c.url, c.domain, c.fileName, c.fileSHA256, c.definitions, c.count}
}

func (r *alertRow) scan(s scanner) error {
	c := &r.content
	var detected time.Time
	err := s.Scan(&r.id, &r.device, &c.customer, &detected, &r.received,
		&c.severity, &c.kind, &c.indicator, &c.label, &c.action,
		&c.srcIP, &c.srcPort, &c.srcMAC, &c.dstIP, &c.dstPort, &c.dstMAC,
		&c.protocol, &c.zones, &c.url, &c.domain, &c.fileName, &c.fileSHA256, &c.definitions, &c.count)
	c.detected = detected.Unix()
	return err
}

// firstVersion is what decides whether an event of a key is written: the
// content of the key's first version, when it is known.
type firstVersion struct {
	content  alertContent
	received time.Time
	known    bool // false: stored once (alert_ids says so) but no longer readable
}

// firstVersions returns the rows to write for a batch's alerts, in order:
// an alert whose key was stored before, or came earlier in the batch, is
// written only with the same content (a resend, received later); any
// other content is a rewrite of evidence and is dropped. The log's order
// decides, so a replay, batched differently, keeps the same versions.
func (w *Writer) firstVersions(ctx context.Context, alerts []*events.Alert) ([]alertRow, error) {
	if len(alerts) == 0 {
		return nil, nil
	}
	rows := make([]alertRow, len(alerts))
	for i, a := range alerts {
		rows[i] = rowOf(a)
	}
	firsts, err := w.stored(ctx, rows)
	if err != nil {
		return nil, err
	}
	out := rows[:0]
	for _, r := range rows {
		f, ok := firsts[r.alertKey]
		switch {
		case !ok:
			firsts[r.alertKey] = firstVersion{content: r.content, received: r.received, known: true}
		case f.known && f.content == r.content:
		default:
			w.rewrites.Add(1)
			w.logger.Warn("projection: alert not written: its device stored this id before with other content, and the first version stands",
				"device", r.device, "id", r.id)
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// stored returns the first stored version of each key of rows that
// ClickHouse holds: alert_ids says which keys were stored (by id, whatever
// customer they were stamped with), alerts_log what they hold. Of several
// stored versions (written before versions were kept apart) the first
// received counts. The keys travel as external tables: no query text to
// parse, whatever the batch's size.
func (w *Writer) stored(ctx context.Context, rows []alertRow) (map[alertKey]firstVersion, error) {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	ids, err := ext.NewTable("batch_ids", ext.Column("id", "String"))
	if err != nil {
		return nil, fmt.Errorf("projection: look up stored alerts: %w", err)
	}
	want := make(map[alertKey]bool, len(rows))
	for _, r := range rows {
		if !want[r.alertKey] {
			want[r.alertKey] = true
			if err := ids.Append(r.id); err != nil {
				return nil, fmt.Errorf("projection: look up stored alerts: %w", err)
			}
		}
	}
	keys, err := ext.NewTable("stored_keys", ext.Column("customer_id", "String"), ext.Column("device_id", "String"), ext.Column("id", "String"))
	if err != nil {
		return nil, fmt.Errorf("projection: look up stored alerts: %w", err)
	}
	firsts := map[alertKey]firstVersion{}
	var from, to time.Time
	err = w.each(clickhouse.Context(ctx, clickhouse.WithExternalTable(ids)),
		"SELECT id, device_id, customer_id, detected_at FROM "+w.db+".alert_ids WHERE id IN batch_ids", func(s scanner) error {
			var k alertKey
			var customer string
			var detected time.Time
			if err := s.Scan(&k.id, &k.device, &customer, &detected); err != nil || !want[k] {
				return err
			}
			if len(firsts) == 0 || detected.Before(from) {
				from = detected
			}
			if len(firsts) == 0 || detected.After(to) {
				to = detected
			}
			firsts[k] = firstVersion{}
			return keys.Append(customer, k.device, k.id)
		})
	if err != nil || len(firsts) == 0 {
		return firsts, err
	}
	err = w.each(clickhouse.Context(ctx, clickhouse.WithExternalTable(keys)),
		"SELECT "+alertCols+" FROM "+w.db+".alerts_log WHERE (customer_id, device_id, id) IN stored_keys AND detected_at >= ? AND detected_at <= ?",
		func(s scanner) error {
			var r alertRow
			if err := r.scan(s); err != nil {
				return err
			}
			if f := firsts[r.alertKey]; !f.known || r.received.Before(f.received) {
				firsts[r.alertKey] = firstVersion{content: r.content, received: r.received, known: true}
			}
			return nil
		}, from.UTC(), to.UTC())
	return firsts, err
}

type scanner interface{ Scan(...any) error }

// each runs a query and hands every row to f.
func (w *Writer) each(ctx context.Context, query string, f func(scanner) error, args ...any) error {
	rows, err := w.conn.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("projection: look up stored alerts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := f(rows); err != nil {
			return fmt.Errorf("projection: look up stored alerts: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("projection: look up stored alerts: %w", err)
	}
	return nil
}
