// Package projection writes events into the ClickHouse read model: alerts,
// heartbeats, the device registry and customers, batch-inserted over the
// native protocol. Writing is idempotent (ReplacingMergeTree on event ids,
// uniqExact states in the aggregates), so a redelivered or replayed event
// never changes a number a customer sees, and an alert keeps its first
// version: a later event with its device and id but other content is not
// written.
package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/mimamori/mimamori/analytics/migrate"
	"github.com/mimamori/mimamori/events"
)

// DefaultTimeout bounds each insert when the caller's context has no
// earlier deadline.
const DefaultTimeout = 30 * time.Second

// Writer projects batches of events into one database. It is safe for
// concurrent use.
type Writer struct {
	conn    driver.Conn
	db      string
	logger  *slog.Logger
	timeout time.Duration

	written, skipped, invalid, duplicate, rewrites atomic.Uint64
}

// Stats counts envelopes since the Writer was made.
type Stats struct {
	Written uint64 // projected into a table
	Skipped uint64 // a type this projection does not keep (known or unknown)
	Invalid uint64 // a known type that failed to decode or validate
	// Duplicate counts repeats of an event id within one batch, written
	// once; repeats across batches are written again and collapse later.
	Duplicate uint64
	// Rewrites counts alerts not written because their device and id were
	// stored before with other content: the first version stands.
	Rewrites uint64
}

// New returns a Writer into database db (already migrated).
func New(conn driver.Conn, db string, logger *slog.Logger) (*Writer, error) {
	if err := migrate.ValidDatabase(db); err != nil {
		return nil, fmt.Errorf("projection: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Writer{conn: conn, db: db, logger: logger, timeout: DefaultTimeout}, nil
}

// Stats returns the counts so far.
func (w *Writer) Stats() Stats {
	return Stats{Written: w.written.Load(), Skipped: w.skipped.Load(), Invalid: w.invalid.Load(), Duplicate: w.duplicate.Load(),
		Rewrites: w.rewrites.Load()}
}

// rows of one table; cols is the explicit column list of its INSERT.
type table struct {
	name string
	cols string
	rows [][]any
}

// Apply decodes each envelope and inserts the batch, one INSERT per table.
// Types it does not project and envelopes that do not decode are counted
// in Stats and logged, never fatal: one bad event must not stop the topic.
// An error means some table was not written; applying the whole batch again
// is safe.
func (w *Writer) Apply(ctx context.Context, batch []events.Envelope) error {
	alerts := &table{name: "alerts_log", cols: alertCols}
	heartbeats := &table{name: "heartbeats", cols: "id, device_id, customer_id, sent_at, received_at, firmware_version, definitions_version, " +
		"uptime_seconds, clients, packets, bytes, alerts, queue_depth"}
	registrations := &table{name: "device_registrations", cols: "device_id, serial, mac, model, manufactured_on, registered_at"}
	assignments := &table{name: "device_assignments", cols: "device_id, customer_id, assigned_at"}
	customers := &table{name: "customers", cols: "customer_id, name, reseller_id, registered_at"}
	status := &table{name: "device_status_log", cols: "event_id, device_id, customer_id, status, changed_at, detected_at"}
	notifications := &table{name: "notifications_log", cols: "notification_id, status, channel, recipient, customer_id, kind, device_id, " +
		"severity, source_event_id, attempts, reason, recorded_at"}
	notices := &table{name: "notices_log", cols: "notice_id, kind, level, customers, summary, details, firmware_version, " +
		"starts_at, ends_at, published_at"}
	noticeRow := func(id, kind, level, customers, summary, details, version string, starts, ends, published time.Time) {
		notices.rows = append(notices.rows, []any{id, kind, level, splitCustomers(customers), summary, details, version,
			starts.UTC(), ends.UTC(), published.UTC()})
	}
	statusRow := func(eventID, device, customer, state string, changed, detected time.Time) {
		status.rows = append(status.rows, []any{eventID, device, customer, state, changed.UTC(), detected.UTC()})
	}

	// A redelivered event (same subject, id and time) is skipped: harmless,
	// but cheap; the subject is the aggregate (an alert's device), so two
	// devices' alerts under one id are two events. A resent alert is a new event with the same id and a later
	// time; it must reach the table, where ReplacingMergeTree keeps the
	// latest received_at whichever batches the two arrived in. Alerts go
	// through firstVersions before they are written.
	type key struct {
		subject, id string
		at          int64
	}
	seen := make(map[key]bool, len(batch))
	var written uint64
	var alertEvents []*events.Alert
	for _, env := range batch {
		k := key{env.Subject, env.ID, env.Time.UnixNano()}
		if seen[k] {
			w.duplicate.Add(1)
			continue
		}
		seen[k] = true
		p, err := events.Decode(env)
		if errors.Is(err, events.ErrUnknownType) {
			w.skipped.Add(1)
			w.logger.Debug("projection: skip unknown event type", "id", env.ID, "type", env.Type)
			continue
		}
		if err != nil {
			w.invalid.Add(1)
			w.logger.Warn("projection: skip undecodable event", "id", env.ID, "type", env.Type, "err", err)
			continue
		}
		switch p := p.(type) {
		case *events.Alert:
			alertEvents = append(alertEvents, p)
		case *events.Heartbeat:
			heartbeats.rows = append(heartbeats.rows, []any{p.ID, p.DeviceID, p.CustomerID, p.SentAt.UTC(), p.ReceivedAt.UTC(),
				p.FirmwareVersion, p.DefinitionsVersion, p.UptimeSeconds, uint32(p.Clients), p.Packets, p.Bytes, p.Alerts, p.QueueDepth})
		case *events.DeviceRegistered:
			day, _ := time.Parse(time.DateOnly, p.ManufacturedOn) // Validate checked it
			registrations.rows = append(registrations.rows, []any{p.DeviceID, p.Serial, p.MAC, p.Model, day, p.RegisteredAt.UTC()})
		case *events.DeviceAssigned:
			assignments.rows = append(assignments.rows, []any{p.DeviceID, p.CustomerID, p.AssignedAt.UTC()})
		case *events.CustomerRegistered:
			customers.rows = append(customers.rows, []any{p.CustomerID, p.Name, p.ResellerID, p.RegisteredAt.UTC()})
		case *events.DeviceActivated:
			statusRow(env.ID, p.DeviceID, p.CustomerID, "online", p.HeartbeatAt, p.ActivatedAt)
		case *events.DeviceWentOffline:
			statusRow(env.ID, p.DeviceID, p.CustomerID, "offline", p.LastHeartbeatAt, p.DetectedAt)
		case *events.DeviceCameOnline:
			statusRow(env.ID, p.DeviceID, p.CustomerID, "online", p.HeartbeatAt, p.DetectedAt)
		case *events.DeviceWentSilent:
			statusRow(env.ID, p.DeviceID, p.CustomerID, "silent", p.SilentSince, p.DetectedAt)
		case *events.NotificationRecorded:
			notifications.rows = append(notifications.rows, []any{p.NotificationID, p.Status, p.Channel, p.Recipient, p.CustomerID,
				p.Kind, p.DeviceID, uint8(p.Severity), p.SourceEventID, uint32(p.Attempts), p.Reason, p.RecordedAt.UTC()})
		case *events.MaintenanceAnnounced:
			noticeRow(p.NoticeID, "maintenance", "", p.Customers, p.Summary, p.Details, "", p.StartsAt, p.EndsAt, p.AnnouncedAt)
		case *events.FaultDeclared:
			noticeRow(p.NoticeID, "fault", p.Level, p.Customers, p.Summary, p.Details, "", p.StartedAt, time.Unix(0, 0), p.DeclaredAt)
		case *events.FirmwareNoticePublished:
			noticeRow(p.NoticeID, "firmware", "", p.Customers, p.Summary, p.Details, p.FirmwareVersion, p.AvailableAt, time.Unix(0, 0), p.PublishedAt)
		default: // credentials and future types have no read model here
			w.skipped.Add(1)
			continue
		}
		written++
	}
	first, err := w.firstVersions(ctx, alertEvents)
	if err != nil {
		return err
	}
	written -= uint64(len(alertEvents) - len(first))
	for i := range first {
		alerts.rows = append(alerts.rows, first[i].values())
	}
	for _, t := range []*table{customers, registrations, assignments, alerts, heartbeats, status, notifications, notices} {
		if err := w.insert(ctx, t); err != nil {
			return err
		}
	}
	w.written.Add(written)
	return nil
}

func (w *Writer) insert(ctx context.Context, t *table) error {
	if len(t.rows) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	batch, err := w.conn.PrepareBatch(ctx, "INSERT INTO "+w.db+"."+t.name+" ("+t.cols+")")
	if err != nil {
		return fmt.Errorf("projection: prepare %s.%s: %w", w.db, t.name, err)
	}
	defer batch.Close()
	for _, row := range t.rows {
		if err := batch.Append(row...); err != nil {
			return fmt.Errorf("projection: append to %s.%s: %w", w.db, t.name, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("projection: insert %d rows into %s.%s: %w", len(t.rows), w.db, t.name, err)
	}
	return nil
}

// splitCustomers turns "a, b" or "*" into the list the notices table keeps.
func splitCustomers(s string) []string {
	out := []string{}
	for _, c := range strings.Split(s, ",") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	return out
}
