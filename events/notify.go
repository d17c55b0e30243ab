package events

import (
	"strings"
	"time"
)

// Event types of liveness (the watchdog), notification settings,
// operations notices and the notification record (issue 5).
const (
	TypeDeviceActivated             = "mimamori.device.activated.v1"
	TypeDeviceWentOffline           = "mimamori.device.went_offline.v1"
	TypeDeviceCameOnline            = "mimamori.device.came_online.v1"
	TypeDeviceWentSilent            = "mimamori.device.went_silent.v1"
	TypeNotificationSettingsChanged = "mimamori.customer.notification_settings_changed.v1"
	TypeFaultDeclared               = "mimamori.operations.fault_declared.v1"
	TypeMaintenanceAnnounced        = "mimamori.operations.maintenance_announced.v1"
	TypeNotificationRecorded        = "mimamori.notification.recorded.v1"
)

// DeviceActivated records that an assigned appliance was heard from for the
// first time: from now on it is installed and sending, so its important
// alerts are mailed. The watchdog writes it.
type DeviceActivated struct {
	DeviceID    string    `json:"device_id"`
	CustomerID  string    `json:"customer_id"`
	HeartbeatAt time.Time `json:"heartbeat_at"` // received_at of the first heartbeat
	ActivatedAt time.Time `json:"activated_at"`
}

func (*DeviceActivated) EventType() string { return TypeDeviceActivated }
func (*DeviceActivated) Topic() string     { return TopicDevices }
func (d *DeviceActivated) Key() string     { return d.DeviceID }
func (d *DeviceActivated) Validate() error {
	var v validator
	v.deviceCustomer(d.DeviceID, d.CustomerID)
	v.time("heartbeat_at", d.HeartbeatAt)
	v.time("activated_at", d.ActivatedAt)
	return v.err()
}

// DeviceWentOffline records that the cloud judged an appliance stopped: no
// heartbeat was received for threshold_seconds.
type DeviceWentOffline struct {
	DeviceID         string    `json:"device_id"`
	CustomerID       string    `json:"customer_id"`
	LastHeartbeatAt  time.Time `json:"last_heartbeat_at"` // server receive time
	ThresholdSeconds int       `json:"threshold_seconds"`
	DetectedAt       time.Time `json:"detected_at"`
}

func (*DeviceWentOffline) EventType() string { return TypeDeviceWentOffline }
func (*DeviceWentOffline) Topic() string     { return TopicDevices }
func (d *DeviceWentOffline) Key() string     { return d.DeviceID }
func (d *DeviceWentOffline) Validate() error {
	var v validator
	v.deviceCustomer(d.DeviceID, d.CustomerID)
	v.time("last_heartbeat_at", d.LastHeartbeatAt)
	if d.ThresholdSeconds < 1 {
		v.fail("threshold_seconds", "must be at least 1, got %d", d.ThresholdSeconds)
	}
	v.time("detected_at", d.DetectedAt)
	return v.err()
}

// DeviceCameOnline records that an appliance judged offline is heard from
// again.
type DeviceCameOnline struct {
	DeviceID    string    `json:"device_id"`
	CustomerID  string    `json:"customer_id"`
	OfflineAt   time.Time `json:"offline_at"` // detected_at of the offline event it ends
	HeartbeatAt time.Time `json:"heartbeat_at"`
	DetectedAt  time.Time `json:"detected_at"`
}

func (*DeviceCameOnline) EventType() string { return TypeDeviceCameOnline }
func (*DeviceCameOnline) Topic() string     { return TopicDevices }
func (d *DeviceCameOnline) Key() string     { return d.DeviceID }
func (d *DeviceCameOnline) Validate() error {
	var v validator
	v.deviceCustomer(d.DeviceID, d.CustomerID)
	v.time("offline_at", d.OfflineAt)
	v.time("heartbeat_at", d.HeartbeatAt)
	v.time("detected_at", d.DetectedAt)
	return v.err()
}

// DeviceWentSilent records an appliance that sends heartbeats while its
// traffic counters have not moved for period_seconds: it is alive but
// probably bypassed. One event per silent stretch, named by silent_since.
type DeviceWentSilent struct {
	DeviceID        string    `json:"device_id"`
	CustomerID      string    `json:"customer_id"`
	SilentSince     time.Time `json:"silent_since"`
	LastHeartbeatAt time.Time `json:"last_heartbeat_at"`
	PeriodSeconds   int       `json:"period_seconds"`
	DetectedAt      time.Time `json:"detected_at"`
}

func (*DeviceWentSilent) EventType() string { return TypeDeviceWentSilent }
func (*DeviceWentSilent) Topic() string     { return TopicDevices }
func (d *DeviceWentSilent) Key() string     { return d.DeviceID }
func (d *DeviceWentSilent) Validate() error {
	var v validator
	v.deviceCustomer(d.DeviceID, d.CustomerID)
	v.time("silent_since", d.SilentSince)
	v.time("last_heartbeat_at", d.LastHeartbeatAt)
	if d.PeriodSeconds < 1 {
		v.fail("period_seconds", "must be at least 1, got %d", d.PeriodSeconds)
	}
	v.time("detected_at", d.DetectedAt)
	return v.err()
}

// Languages of customer-facing mail.
const (
	LangJapanese = "ja"
	LangEnglish  = "en"
)

// NotificationSettingsChanged replaces a customer's notification settings.
// The webhook secret itself is never in the log: it is derived from the
// notifier's key, the customer ID and webhook_secret_version (bumped to
// rotate it).
type NotificationSettingsChanged struct {
	CustomerID           string    `json:"customer_id"`
	ImportantSeverities  string    `json:"important_severities"` // e.g. "3,2"
	Language             string    `json:"language"`
	WebhookURL           string    `json:"webhook_url"`
	WebhookSecretVersion int       `json:"webhook_secret_version"`
	ChangedAt            time.Time `json:"changed_at"`
}

func (*NotificationSettingsChanged) EventType() string { return TypeNotificationSettingsChanged }
func (*NotificationSettingsChanged) Topic() string     { return TopicAccounts }
func (s *NotificationSettingsChanged) Key() string     { return s.CustomerID }
func (s *NotificationSettingsChanged) Validate() error {
	var v validator
	v.required("customer_id", s.CustomerID)
	v.max("customer_id", s.CustomerID, maxShort)
	if _, err := ParseSeverities(s.ImportantSeverities); err != nil {
		v.fail("important_severities", "%v", err)
	}
	v.oneOf("language", s.Language, LangJapanese, LangEnglish)
	if s.WebhookURL != "" && !strings.HasPrefix(s.WebhookURL, "https://") && !strings.HasPrefix(s.WebhookURL, "http://") {
		v.fail("webhook_url", "must be an http(s) URL, got %q", truncate(s.WebhookURL, 60))
	}
	v.max("webhook_url", s.WebhookURL, maxLong)
	if s.WebhookSecretVersion < 0 {
		v.fail("webhook_secret_version", "must not be negative")
	}
	v.time("changed_at", s.ChangedAt)
	return v.err()
}

// ParseSeverities reads a comma-separated list of severities ("3,2"); an
// empty list means no alert is important.
func ParseSeverities(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(f) {
		case "":
		case "1":
			out = append(out, SeverityLow)
		case "2":
			out = append(out, SeverityMedium)
		case "3":
			out = append(out, SeverityHigh)
		default:
			return nil, &FieldError{Field: "severities", Problem: "want a comma-separated list of 1, 2 and 3, got " + truncate(s, 40)}
		}
	}
	return out, nil
}

// Fault levels. A and B are reported to customers, Z is not.
const (
	FaultLevelA = "A"
	FaultLevelB = "B"
	FaultLevelZ = "Z"
)

// FaultDeclared records a confirmed fault. Customers is a comma-separated
// list of customer IDs, or "*" for every customer.
type FaultDeclared struct {
	NoticeID   string    `json:"notice_id"`
	Level      string    `json:"level"`
	Customers  string    `json:"customers"`
	Summary    string    `json:"summary"`
	Details    string    `json:"details"`
	StartedAt  time.Time `json:"started_at"`
	DeclaredAt time.Time `json:"declared_at"`
}

func (*FaultDeclared) EventType() string { return TypeFaultDeclared }
func (*FaultDeclared) Topic() string     { return TopicOperations }
func (f *FaultDeclared) Key() string     { return f.NoticeID }
func (f *FaultDeclared) Validate() error {
	var v validator
	v.required("notice_id", f.NoticeID)
	v.max("notice_id", f.NoticeID, maxShort)
	v.oneOf("level", f.Level, FaultLevelA, FaultLevelB, FaultLevelZ)
	v.required("customers", f.Customers)
	v.max("customers", f.Customers, 64*1024)
	v.required("summary", f.Summary)
	v.max("summary", f.Summary, maxShort)
	v.max("details", f.Details, 8*maxLong)
	v.time("started_at", f.StartedAt)
	v.time("declared_at", f.DeclaredAt)
	return v.err()
}

// MaintenanceAnnounced records planned maintenance that stops the service
// . Customers is as in FaultDeclared.
type MaintenanceAnnounced struct {
	NoticeID    string    `json:"notice_id"`
	Customers   string    `json:"customers"`
	Summary     string    `json:"summary"`
	Details     string    `json:"details"`
	StartsAt    time.Time `json:"starts_at"`
	EndsAt      time.Time `json:"ends_at"`
	AnnouncedAt time.Time `json:"announced_at"`
}

func (*MaintenanceAnnounced) EventType() string { return TypeMaintenanceAnnounced }
func (*MaintenanceAnnounced) Topic() string     { return TopicOperations }
func (m *MaintenanceAnnounced) Key() string     { return m.NoticeID }
func (m *MaintenanceAnnounced) Validate() error {
	var v validator
	v.required("notice_id", m.NoticeID)
	v.max("notice_id", m.NoticeID, maxShort)
	v.required("customers", m.Customers)
	v.max("customers", m.Customers, 64*1024)
	v.required("summary", m.Summary)
	v.max("summary", m.Summary, maxShort)
	v.max("details", m.Details, 8*maxLong)
	v.time("starts_at", m.StartsAt)
	v.time("ends_at", m.EndsAt)
	if !m.EndsAt.After(m.StartsAt) {
		v.fail("ends_at", "must be after starts_at")
	}
	v.time("announced_at", m.AnnouncedAt)
	return v.err()
}

// Notification statuses.
const (
	NotifyAttempting = "attempting" // about to hand to SMTP / POST; may or may not have arrived
	NotifySent       = "sent"       // the server accepted it
	NotifyDeferred   = "deferred"   // throttled into the digest named by digest_key
	NotifyFailed     = "failed"     // permanent failure; operators see it
	NotifySkipped    = "skipped"    // not to be sent (e.g. appliance not activated, R-52)
)

// Notification channels.
const (
	ChannelMail    = "mail"
	ChannelWebhook = "webhook"
)

// NotificationRecorded is the notifier's record of what it did for one
// (source event, recipient): the audit trail and the record the notifier
// consults before sending, so each one goes out once.
type NotificationRecorded struct {
	NotificationID  string    `json:"notification_id"` // deterministic from source event, channel and recipient
	Status          string    `json:"status"`
	Channel         string    `json:"channel"`
	Recipient       string    `json:"recipient"`
	CustomerID      string    `json:"customer_id"`
	Kind            string    `json:"kind"` // alert, digest, offline, online, silent, fault, maintenance
	SourceEventID   string    `json:"source_event_id"`
	SourceTopic     string    `json:"source_topic"`
	SourcePartition int       `json:"source_partition"`
	DeviceID        string    `json:"device_id"`
	Detection       string    `json:"detection"`  // throttling key of an alert
	Severity        int       `json:"severity"`   // of the alert, or the highest a digest reports; 0 otherwise
	DigestKey       string    `json:"digest_key"` // the digest a deferred alert joins, or that a digest sends
	Covers          int       `json:"covers"`     // alerts a digest reports
	EventTime       time.Time `json:"event_time"` // when the source happened (server time)
	MessageID       string    `json:"message_id"`
	Attempts        int       `json:"attempts"`
	Reason          string    `json:"reason"`
	RecordedAt      time.Time `json:"recorded_at"`
}

func (*NotificationRecorded) EventType() string { return TypeNotificationRecorded }
func (*NotificationRecorded) Topic() string     { return TopicNotifications }
func (n *NotificationRecorded) Key() string     { return n.CustomerID }
func (n *NotificationRecorded) Validate() error {
	var v validator
	v.required("notification_id", n.NotificationID)
	v.max("notification_id", n.NotificationID, maxShort)
	v.oneOf("status", n.Status, NotifyAttempting, NotifySent, NotifyDeferred, NotifyFailed, NotifySkipped)
	v.oneOf("channel", n.Channel, ChannelMail, ChannelWebhook)
	v.max("recipient", n.Recipient, maxLong)
	v.required("customer_id", n.CustomerID)
	v.max("customer_id", n.CustomerID, maxShort)
	v.required("kind", n.Kind)
	v.max("kind", n.Kind, 32)
	v.max("source_event_id", n.SourceEventID, maxShort)
	v.max("source_topic", n.SourceTopic, maxShort)
	v.max("device_id", n.DeviceID, maxShort)
	v.max("detection", n.Detection, maxLong)
	v.max("digest_key", n.DigestKey, maxShort)
	v.max("message_id", n.MessageID, maxShort)
	v.max("reason", n.Reason, maxLong)
	v.time("event_time", n.EventTime)
	v.time("recorded_at", n.RecordedAt)
	return v.err()
}

func (v *validator) deviceCustomer(device, customer string) {
	v.required("device_id", device)
	v.max("device_id", device, maxShort)
	v.required("customer_id", customer)
	v.max("customer_id", customer, maxShort)
}
