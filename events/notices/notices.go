// Package notices builds the operator's notices (R-40, R-53, R-54, R-82,
// R-83) with the rules both the CLI (`mimamori notice`) and the portal's
// operator API apply: required fields, fault levels, and the one-month rule
// of planned maintenance unless forced.
package notices

import (
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/mimamori/mimamori/events"
)

// Kinds of notice.
const (
	KindFault       = "fault"
	KindMaintenance = "maintenance"
	KindFirmware    = "firmware"
)

// MaintenanceLead is the notice R-54 asks for before planned maintenance.
const MaintenanceLead = 30 * 24 * time.Hour

// Request is one notice as an operator asks for it. Zero times take their
// defaults: Started and Available default to now.
type Request struct {
	Kind      string
	Level     string // fault: A, B or Z
	Customers string // comma-separated customer IDs, or "*" (default)
	Summary   string
	Details   string
	Started   time.Time // fault
	Starts    time.Time // maintenance, required
	Ends      time.Time // maintenance, required
	Version   string    // firmware, required
	Available time.Time // firmware
	Force     bool      // maintenance: announce with less than a month's notice
}

// Error is a refusal of the request itself (the caller's mistake).
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func refuse(format string, a ...any) error { return &Error{fmt.Sprintf(format, a...)} }

// Build checks the request and returns the event to publish.
func Build(r Request, now time.Time) (events.Payload, error) {
	now = now.UTC()
	if r.Kind != KindFault && r.Kind != KindMaintenance && r.Kind != KindFirmware {
		return nil, refuse("notice: want fault, maintenance or firmware, got %q", r.Kind)
	}
	if r.Summary == "" {
		return nil, refuse("notice: summary is required")
	}
	if r.Customers == "" {
		r.Customers = "*"
	}
	id := "nt_" + ksuid.New().String()
	var p events.Payload
	switch r.Kind {
	case KindFault:
		at := now
		if !r.Started.IsZero() {
			at = r.Started.UTC()
		}
		p = &events.FaultDeclared{NoticeID: id, Level: strings.ToUpper(r.Level), Customers: r.Customers, Summary: r.Summary,
			Details: r.Details, StartedAt: at, DeclaredAt: now}
	case KindFirmware:
		if r.Version == "" {
			return nil, refuse("notice firmware: version is required")
		}
		at := now
		if !r.Available.IsZero() {
			at = r.Available.UTC()
		}
		p = &events.FirmwareNoticePublished{NoticeID: id, Customers: r.Customers, FirmwareVersion: r.Version, Summary: r.Summary,
			Details: r.Details, AvailableAt: at, PublishedAt: now}
	default:
		if r.Starts.IsZero() || r.Ends.IsZero() {
			return nil, refuse("notice maintenance: starts and ends are required")
		}
		if lead := r.Starts.Sub(now); lead < MaintenanceLead && !r.Force {
			return nil, refuse("notice maintenance: it starts in %s; R-54 asks for at least one month's notice (force to announce anyway)",
				lead.Round(time.Hour))
		}
		p = &events.MaintenanceAnnounced{NoticeID: id, Customers: r.Customers, Summary: r.Summary, Details: r.Details,
			StartsAt: r.Starts.UTC(), EndsAt: r.Ends.UTC(), AnnouncedAt: now}
	}
	if err := p.Validate(); err != nil {
		return nil, refuse("notice %s: %v", r.Kind, err)
	}
	return p, nil
}
