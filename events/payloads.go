package events

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/segmentio/ksuid"
)

// Alert severities, shown to customers as stars.
const (
	SeverityLow    = 1 // ★☆☆
	SeverityMedium = 2 // ★★☆
	SeverityHigh   = 3 // ★★★
)

// Alert kinds: what kind of definition matched.
const (
	KindDomain    = "domain"
	KindIP        = "ip"
	KindURL       = "url"
	KindFile      = "file"
	KindBehaviour = "behaviour"
)

// Alert actions.
const (
	ActionDetected = "detected"
	ActionBlocked  = "blocked"
)

// Zones of the R-11 monitored-path matrix.
const (
	ZoneWAN   = "WAN"
	ZoneLAN   = "LAN"
	ZoneSSID1 = "SSID1"
	ZoneSSID2 = "SSID2"
)

// Field length limits: generous for real evidence, small enough that one
// alert can never carry file contents or a mail body.
const (
	maxShort = 256
	maxLong  = 2048
)

// Alert is one detection with its evidence. It never carries packet
// contents, mail bodies or files. The appliance makes the id; ingest stamps
// device_id, customer_id and received_at from the credential and its clock.
type Alert struct {
	ID                 string    `json:"id" schema:"pattern=^[0-9A-Za-z]{27}$"`
	DeviceID           string    `json:"device_id"`
	CustomerID         string    `json:"customer_id"`
	DetectedAt         time.Time `json:"detected_at"`
	ReceivedAt         time.Time `json:"received_at"`
	Severity           int       `json:"severity" schema:"minimum=1,maximum=3"`
	Kind               string    `json:"kind" schema:"enum=domain|ip|url|file|behaviour"`
	Indicator          string    `json:"indicator"`
	Label              string    `json:"label"`
	Action             string    `json:"action" schema:"enum=detected|blocked"`
	SrcIP              string    `json:"src_ip"`
	SrcPort            int       `json:"src_port" schema:"minimum=0,maximum=65535"`
	SrcMAC             string    `json:"src_mac"`
	DstIP              string    `json:"dst_ip"`
	DstPort            int       `json:"dst_port" schema:"minimum=0,maximum=65535"`
	DstMAC             string    `json:"dst_mac"`
	Protocol           string    `json:"protocol"`
	Zones              string    `json:"zones" schema:"pattern=^(WAN|LAN|SSID1|SSID2)>(WAN|LAN|SSID1|SSID2)$"`
	URL                string    `json:"url"`
	Domain             string    `json:"domain"`
	FileName           string    `json:"file_name"`
	FileSHA256         string    `json:"file_sha256"`
	DefinitionsVersion string    `json:"definitions_version"`
	Count              int       `json:"count" schema:"minimum=1"`
}

func (*Alert) EventType() string           { return TypeAlertDetected }
func (*Alert) Topic() string               { return TopicAlerts }
func (a *Alert) Key() string               { return a.DeviceID }
func (a *Alert) EventID() string           { return a.ID }
func (a *Alert) Validate() error           { return a.validate(true) }
func (a *Alert) ValidateFromDevice() error { return a.validate(false) }

// validate checks every field; stamped says whether the ingest-stamped
// fields (device_id, customer_id, received_at) must be present.
func (a *Alert) validate(stamped bool) error {
	var v validator
	v.ksuid("id", a.ID)
	if stamped {
		v.required("device_id", a.DeviceID)
		v.required("customer_id", a.CustomerID)
		v.time("received_at", a.ReceivedAt)
	}
	v.max("device_id", a.DeviceID, maxShort)
	v.max("customer_id", a.CustomerID, maxShort)
	v.time("detected_at", a.DetectedAt)
	if a.Severity < SeverityLow || a.Severity > SeverityHigh {
		v.fail("severity", "must be 1, 2 or 3, got %d", a.Severity)
	}
	v.oneOf("kind", a.Kind, KindDomain, KindIP, KindURL, KindFile, KindBehaviour)
	v.required("indicator", a.Indicator)
	v.max("indicator", a.Indicator, maxLong)
	v.max("label", a.Label, maxShort)
	v.oneOf("action", a.Action, ActionDetected, ActionBlocked)
	v.ip("src_ip", a.SrcIP, true)
	v.ip("dst_ip", a.DstIP, true)
	v.port("src_port", a.SrcPort)
	v.port("dst_port", a.DstPort)
	v.mac("src_mac", a.SrcMAC)
	v.mac("dst_mac", a.DstMAC)
	v.max("protocol", a.Protocol, 16)
	v.zones("zones", a.Zones)
	v.max("url", a.URL, maxLong)
	v.max("domain", a.Domain, maxShort)
	v.max("file_name", a.FileName, maxShort)
	if a.FileSHA256 != "" {
		if b, err := hex.DecodeString(a.FileSHA256); err != nil || len(b) != 32 {
			v.fail("file_sha256", "must be 64 hexadecimal characters")
		}
	}
	v.max("definitions_version", a.DefinitionsVersion, maxShort)
	if a.Count < 1 {
		v.fail("count", "must be at least 1, got %d", a.Count)
	}
	return v.err()
}

// Clamp cuts the text fields the appliance fills to the lengths
// validation allows, at a character boundary, after replacing invalid
// UTF-8 (which JSON would otherwise expand). Evidence longer than the
// limits, such as an attacker's 10 kB URL, then still makes a valid alert
// instead of one the gateway refuses, with every alert batched beside it.
func (a *Alert) Clamp() {
	for _, f := range []struct {
		s *string
		n int
	}{{&a.Indicator, maxLong}, {&a.Label, maxShort}, {&a.Protocol, 16}, {&a.URL, maxLong},
		{&a.Domain, maxShort}, {&a.FileName, maxShort}, {&a.DefinitionsVersion, maxShort}} {
		*f.s = clamp(*f.s, f.n)
	}
}

// clamp returns valid UTF-8 of at most n bytes, cut at a rune start.
func clamp(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Heartbeat is an appliance's periodic sign of life with its counters.
type Heartbeat struct {
	ID                 string    `json:"id" schema:"pattern=^[0-9A-Za-z]{27}$"`
	DeviceID           string    `json:"device_id"`
	CustomerID         string    `json:"customer_id"`
	SentAt             time.Time `json:"sent_at"`
	ReceivedAt         time.Time `json:"received_at"`
	FirmwareVersion    string    `json:"firmware_version"`
	DefinitionsVersion string    `json:"definitions_version"`
	UptimeSeconds      int64     `json:"uptime_seconds"`
	Clients            int       `json:"clients"`
	Packets            uint64    `json:"packets"`
	Bytes              uint64    `json:"bytes"`
	Alerts             uint64    `json:"alerts"`
	QueueDepth         int64     `json:"queue_depth"`
}

func (*Heartbeat) EventType() string           { return TypeHeartbeatReceived }
func (*Heartbeat) Topic() string               { return TopicHeartbeats }
func (h *Heartbeat) Key() string               { return h.DeviceID }
func (h *Heartbeat) EventID() string           { return h.ID }
func (h *Heartbeat) Validate() error           { return h.validate(true) }
func (h *Heartbeat) ValidateFromDevice() error { return h.validate(false) }

func (h *Heartbeat) validate(stamped bool) error {
	var v validator
	v.ksuid("id", h.ID)
	if stamped {
		v.required("device_id", h.DeviceID)
		v.required("customer_id", h.CustomerID)
		v.time("received_at", h.ReceivedAt)
	}
	v.max("device_id", h.DeviceID, maxShort)
	v.max("customer_id", h.CustomerID, maxShort)
	v.time("sent_at", h.SentAt)
	v.max("firmware_version", h.FirmwareVersion, maxShort)
	v.max("definitions_version", h.DefinitionsVersion, maxShort)
	if h.UptimeSeconds < 0 {
		v.fail("uptime_seconds", "must not be negative")
	}
	if h.Clients < 0 {
		v.fail("clients", "must not be negative")
	}
	if h.QueueDepth < 0 {
		v.fail("queue_depth", "must not be negative")
	}
	return v.err()
}

// CustomerRegistered records a new contracting company.
type CustomerRegistered struct {
	CustomerID   string    `json:"customer_id"`
	Name         string    `json:"name"`
	Email        string    `json:"email"`
	ResellerID   string    `json:"reseller_id"`
	RegisteredAt time.Time `json:"registered_at"`
}

func (*CustomerRegistered) EventType() string { return TypeCustomerRegistered }
func (*CustomerRegistered) Topic() string     { return TopicAccounts }
func (c *CustomerRegistered) Key() string     { return c.CustomerID }
func (c *CustomerRegistered) Validate() error {
	var v validator
	v.required("customer_id", c.CustomerID)
	v.max("customer_id", c.CustomerID, maxShort)
	v.required("name", c.Name)
	v.max("name", c.Name, maxShort)
	if !strings.Contains(c.Email, "@") {
		v.fail("email", "must be an e-mail address")
	}
	v.max("email", c.Email, maxShort)
	v.max("reseller_id", c.ResellerID, maxShort)
	v.time("registered_at", c.RegisteredAt)
	return v.err()
}

// DeviceRegistered records an appliance entering the registry.
type DeviceRegistered struct {
	DeviceID       string    `json:"device_id"`
	Serial         string    `json:"serial"`
	MAC            string    `json:"mac"`
	Model          string    `json:"model"`
	ManufacturedOn string    `json:"manufactured_on" schema:"format=date"`
	RegisteredAt   time.Time `json:"registered_at"`
}

func (*DeviceRegistered) EventType() string { return TypeDeviceRegistered }
func (*DeviceRegistered) Topic() string     { return TopicDevices }
func (d *DeviceRegistered) Key() string     { return d.DeviceID }
func (d *DeviceRegistered) Validate() error {
	var v validator
	v.required("device_id", d.DeviceID)
	v.max("device_id", d.DeviceID, maxShort)
	v.required("serial", d.Serial)
	v.max("serial", d.Serial, maxShort)
	v.required("mac", d.MAC)
	v.mac("mac", d.MAC)
	v.required("model", d.Model)
	v.max("model", d.Model, maxShort)
	if _, err := time.Parse(time.DateOnly, d.ManufacturedOn); err != nil {
		v.fail("manufactured_on", "must be a date like 2026-04-01, got %q", d.ManufacturedOn)
	}
	v.time("registered_at", d.RegisteredAt)
	return v.err()
}

// DeviceAssigned records that an appliance now serves a customer.
type DeviceAssigned struct {
	DeviceID   string    `json:"device_id"`
	CustomerID string    `json:"customer_id"`
	AssignedAt time.Time `json:"assigned_at"`
}

func (*DeviceAssigned) EventType() string { return TypeDeviceAssigned }
func (*DeviceAssigned) Topic() string     { return TopicDevices }
func (d *DeviceAssigned) Key() string     { return d.DeviceID }
func (d *DeviceAssigned) Validate() error {
	var v validator
	v.required("device_id", d.DeviceID)
	v.required("customer_id", d.CustomerID)
	v.max("device_id", d.DeviceID, maxShort)
	v.max("customer_id", d.CustomerID, maxShort)
	v.time("assigned_at", d.AssignedAt)
	return v.err()
}

// DeviceCredentialIssued records a device credential. Only the SHA-256 of
// the secret is in the log; the secret itself is shown once to the operator.
type DeviceCredentialIssued struct {
	DeviceID     string    `json:"device_id"`
	CredentialID string    `json:"credential_id"`
	SecretSHA256 string    `json:"secret_sha256"`
	IssuedAt     time.Time `json:"issued_at"`
}

func (*DeviceCredentialIssued) EventType() string { return TypeDeviceCredentialIssued }
func (*DeviceCredentialIssued) Topic() string     { return TopicDevices }
func (d *DeviceCredentialIssued) Key() string     { return d.DeviceID }
func (d *DeviceCredentialIssued) Validate() error {
	var v validator
	v.required("device_id", d.DeviceID)
	v.max("device_id", d.DeviceID, maxShort)
	v.required("credential_id", d.CredentialID)
	v.max("credential_id", d.CredentialID, maxShort)
	if b, err := hex.DecodeString(d.SecretSHA256); err != nil || len(b) != 32 {
		v.fail("secret_sha256", "must be 64 hexadecimal characters")
	}
	v.time("issued_at", d.IssuedAt)
	return v.err()
}

// DeviceCredentialRevoked records that a credential no longer authenticates.
type DeviceCredentialRevoked struct {
	DeviceID     string    `json:"device_id"`
	CredentialID string    `json:"credential_id"`
	Reason       string    `json:"reason"`
	RevokedAt    time.Time `json:"revoked_at"`
}

func (*DeviceCredentialRevoked) EventType() string { return TypeDeviceCredentialRevoked }
func (*DeviceCredentialRevoked) Topic() string     { return TopicDevices }
func (d *DeviceCredentialRevoked) Key() string     { return d.DeviceID }
func (d *DeviceCredentialRevoked) Validate() error {
	var v validator
	v.required("device_id", d.DeviceID)
	v.max("device_id", d.DeviceID, maxShort)
	v.required("credential_id", d.CredentialID)
	v.max("credential_id", d.CredentialID, maxShort)
	v.max("reason", d.Reason, maxShort)
	v.time("revoked_at", d.RevokedAt)
	return v.err()
}

// FieldError names the field that is wrong and why.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// validator collects the first problem found; callers report one clear
// problem at a time rather than a wall of them.
type validator struct{ first *FieldError }

func (v *validator) fail(field, format string, args ...any) {
	if v.first == nil {
		v.first = &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
	}
}

func (v *validator) err() error {
	if v.first == nil {
		return nil
	}
	return v.first
}

func (v *validator) required(field, s string) {
	if s == "" {
		v.fail(field, "is required")
	}
}

func (v *validator) max(field, s string, n int) {
	if len(s) > n {
		v.fail(field, "is %d bytes long, at most %d allowed", len(s), n)
	}
}

func (v *validator) ksuid(field, s string) {
	if _, err := ksuid.Parse(s); err != nil {
		v.fail(field, "must be a 27-character KSUID, got %q", truncate(s, 40))
	}
}

func (v *validator) time(field string, t time.Time) {
	if t.IsZero() {
		v.fail(field, "is required (RFC 3339 time)")
	}
}

func (v *validator) oneOf(field, s string, allowed ...string) {
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	v.fail(field, "must be one of %s, got %q", strings.Join(allowed, ", "), truncate(s, 40))
}

func (v *validator) ip(field, s string, required bool) {
	if s == "" {
		if required {
			v.fail(field, "is required")
		}
		return
	}
	if _, err := netip.ParseAddr(s); err != nil {
		v.fail(field, "must be an IPv4 or IPv6 address, got %q", truncate(s, 60))
	}
}

func (v *validator) port(field string, p int) {
	if p < 0 || p > 65535 {
		v.fail(field, "must be 0 to 65535, got %d", p)
	}
}

func (v *validator) mac(field, s string) {
	if s == "" {
		return
	}
	if hw, err := net.ParseMAC(s); err != nil || len(hw) != 6 {
		v.fail(field, "must be a MAC address like 00:11:22:33:44:55, got %q", truncate(s, 40))
	}
}

func (v *validator) zones(field, s string) {
	from, to, ok := strings.Cut(s, ">")
	if !ok || !isZone(from) || !isZone(to) {
		v.fail(field, "must be two of WAN, LAN, SSID1, SSID2 joined by '>', got %q", truncate(s, 40))
	}
}

func isZone(s string) bool {
	switch s {
	case ZoneWAN, ZoneLAN, ZoneSSID1, ZoneSSID2:
		return true
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
