// Package replaycheck proves a replay: it compares the live database with
// one rebuilt from the log, table by table, by row count and an
// order-independent checksum of the rows as analysts and customers see them
// (deduplicated rows, finalized aggregates).
package replaycheck

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/mimamori/mimamori/analytics/migrate"
)

// queryTimeout bounds each checksum query.
const queryTimeout = 5 * time.Minute

// Table is one compared relation: what to read and how.
type Table struct {
	Name    string   // table or view name
	From    string   // FROM clause with {db}, deduplicating where needed
	Columns []string // every column that a reader can see
}

// Tables lists what Compare checks, in order.
func Tables() []Table {
	return []Table{
		{"alerts", "{db}.alerts", []string{"id", "device_id", "customer_id", "detected_at", "received_at", "severity", "kind", "indicator",
			"label", "action", "src_ip", "src_port", "src_mac", "dst_ip", "dst_port", "dst_mac", "protocol", "zones", "url", "domain",
			"file_name", "file_sha256", "definitions_version", "count"}},
		{"alerts_daily", "{db}.alerts_daily", []string{"day", "customer_id", "device_id", "severity", "kind", "alerts", "first_seen", "last_seen"}},
		{"heartbeats", "{db}.heartbeats FINAL", []string{"id", "device_id", "customer_id", "sent_at", "received_at", "firmware_version",
			"definitions_version", "uptime_seconds", "clients", "packets", "bytes", "alerts", "queue_depth"}},
		{"heartbeats_daily", "{db}.heartbeats_daily", []string{"day", "customer_id", "device_id", "heartbeats", "max_packets", "last_seen"}},
		{"devices", "{db}.devices", []string{"device_id", "serial", "mac", "model", "manufactured_on", "registered_at", "customer_id", "assigned_at"}},
		{"customers", "{db}.customers FINAL", []string{"customer_id", "name", "reseller_id", "registered_at"}},
		{"device_status", "{db}.device_status", []string{"device_id", "customer_id", "status", "changed_at"}},
		{"notifications", "{db}.notifications", []string{"notification_id", "status", "channel", "recipient", "customer_id", "kind",
			"device_id", "severity", "source_event_id", "attempts", "reason", "recorded_at"}},
		{"notices", "{db}.notices", []string{"notice_id", "kind", "level", "arrayStringConcat(customers, ',')", "summary", "details",
			"firmware_version", "starts_at", "ends_at", "published_at"}},
		{"alerts_daily_jst", "{db}.alerts_daily_jst", []string{"day", "customer_id", "device_id", "severity", "kind", "alerts"}},
		{"active_days_jst", "{db}.active_days_jst", []string{"day", "customer_id", "device_id"}},
		{"alerts_by_customer", "{db}.alerts_by_customer FINAL", []string{"id", "device_id", "customer_id", "detected_at", "received_at",
			"severity", "kind", "indicator", "label", "action", "src_ip", "src_port", "src_mac", "dst_ip", "dst_port", "dst_mac", "protocol",
			"zones", "url", "domain", "file_name", "file_sha256", "definitions_version", "count"}},
		{"alerts_customer_daily_jst", "{db}.alerts_customer_daily_jst", []string{"day", "customer_id", "alerts"}},
	}
}

// Figures are one table's numbers in one database.
type Figures struct {
	Rows     uint64
	Checksum uint64 // sum of cityHash64 over every column of every row
}

// TableResult compares one table in both databases.
type TableResult struct {
	Table string
	Live  Figures
	Fresh Figures
	Match bool
}

func (r TableResult) String() string {
	verdict := "match"
	if !r.Match {
		verdict = "MISMATCH"
	}
	return fmt.Sprintf("%-18s %-8s live %d rows %016x, fresh %d rows %016x", r.Table, verdict, r.Live.Rows, r.Live.Checksum, r.Fresh.Rows, r.Fresh.Checksum)
}

// Compare checks every table of Tables in liveDB against freshDB. A
// mismatch is a result, not an error; an error means a query failed.
func Compare(ctx context.Context, conn driver.Conn, liveDB, freshDB string) ([]TableResult, error) {
	for _, db := range []string{liveDB, freshDB} {
		if err := migrate.ValidDatabase(db); err != nil {
			return nil, fmt.Errorf("replaycheck: %w", err)
		}
	}
	var results []TableResult
	for _, t := range Tables() {
		live, err := figures(ctx, conn, liveDB, t)
		if err != nil {
			return results, err
		}
		fresh, err := figures(ctx, conn, freshDB, t)
		if err != nil {
			return results, err
		}
		results = append(results, TableResult{Table: t.Name, Live: live, Fresh: fresh, Match: live == fresh})
	}
	return results, nil
}

// AllMatch reports whether every result matches.
func AllMatch(results []TableResult) bool {
	for _, r := range results {
		if !r.Match {
			return false
		}
	}
	return true
}

func figures(ctx context.Context, conn driver.Conn, db string, t Table) (Figures, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	// sum wraps around in UInt64, which keeps it order-independent.
	q := "SELECT count(), sum(cityHash64(" + strings.Join(t.Columns, ", ") + ")) FROM " + strings.ReplaceAll(t.From, migrate.Placeholder, db)
	var f Figures
	if err := conn.QueryRow(ctx, q).Scan(&f.Rows, &f.Checksum); err != nil {
		return Figures{}, fmt.Errorf("replaycheck: %s.%s: %w", db, t.Name, err)
	}
	return f, nil
}
