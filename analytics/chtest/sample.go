package chtest

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/mimamori/mimamori/events"
)

// Sample is a small, deterministic fleet relative to Now (whole seconds):
// two customers, three devices, ten alerts and heartbeats, four notices. The figures
// below are what queries over it must return.
type Sample struct {
	Now    time.Time
	Events []events.Envelope
	Alerts []events.Alert
}

// Figures of the sample, for assertions.
const (
	SampleAlerts          = 10 // distinct alerts
	SampleHighLast24h     = 5  // severity 3, detected in the last 24 hours
	SampleTopIndicator    = "evil.example"
	SampleTopIndicatorHit = 5 // alerts on SampleTopIndicator
	SampleSilentDevice    = "dev-2"
	SampleCustomer1Alerts = 7 // alerts of cust-1
)

// NewSample builds the sample fleet with its clock at now.
func NewSample(tb testing.TB, now time.Time) Sample {
	tb.Helper()
	now = now.UTC().Truncate(time.Second)
	s := Sample{Now: now}
	var seq uint32
	id := func(at time.Time) string { // deterministic KSUIDs, time-ordered
		seq++
		var payload [16]byte
		binary.BigEndian.PutUint32(payload[12:], seq)
		k, err := ksuid.FromParts(at, payload[:])
		if err != nil {
			tb.Fatal(err)
		}
		return k.String()
	}
	add := func(p events.Payload, at time.Time) {
		env, err := events.New("chtest", p, at)
		if err != nil {
			tb.Fatalf("chtest sample: %v", err)
		}
		s.Events = append(s.Events, env)
	}
	longAgo := now.Add(-90 * 24 * time.Hour)
	add(&events.CustomerRegistered{CustomerID: "cust-1", Name: "Kobayashi Dental", Email: "it@kobayashi.example", ResellerID: "res-1", RegisteredAt: longAgo}, longAgo)
	add(&events.CustomerRegistered{CustomerID: "cust-2", Name: "Sato Bakery", Email: "sato@bakery.example", ResellerID: "res-1", RegisteredAt: longAgo}, longAgo)
	devices := []struct{ id, customer, mac string }{
		{"dev-1", "cust-1", "02:00:00:00:00:01"},
		{"dev-2", "cust-1", "02:00:00:00:00:02"},
		{"dev-3", "cust-2", "02:00:00:00:00:03"},
	}
	for i, d := range devices {
		add(&events.DeviceRegistered{DeviceID: d.id, Serial: "SN-000" + d.id[4:], MAC: d.mac, Model: "UTM-100",
			ManufacturedOn: "2026-04-01", RegisteredAt: longAgo}, longAgo)
		at := longAgo.Add(time.Duration(i+1) * time.Hour)
		add(&events.DeviceAssigned{DeviceID: d.id, CustomerID: d.customer, AssignedAt: at}, at)
	}
	alert := func(device, customer string, ago time.Duration, sev int, kind, indicator string) {
		at := now.Add(-ago)
		a := events.Alert{ID: id(at), DeviceID: device, CustomerID: customer, DetectedAt: at, ReceivedAt: at.Add(2 * time.Second),
			Severity: sev, Kind: kind, Indicator: indicator, Label: "sample " + kind, Action: events.ActionBlocked,
			SrcIP: "192.168.1.10", SrcPort: 51234, SrcMAC: "02:00:00:00:10:10", DstIP: "203.0.113.9", DstPort: 443,
			DstMAC: "02:00:00:00:20:20", Protocol: "tcp", Zones: "LAN>WAN", DefinitionsVersion: "2026.11.25", Count: 1}
		switch kind {
		case events.KindDomain:
			a.Domain = indicator
		case events.KindURL:
			a.URL, a.Domain = indicator, "bad.example"
		case events.KindFile:
			a.FileName, a.FileSHA256 = "invoice.exe", indicator
		}
		s.Alerts = append(s.Alerts, a)
		add(&a, at.Add(2*time.Second))
	}
	h := time.Hour
	alert("dev-1", "cust-1", 1*h, events.SeverityHigh, events.KindDomain, "evil.example")
	alert("dev-1", "cust-1", 2*h, events.SeverityHigh, events.KindDomain, "evil.example")
	alert("dev-1", "cust-1", 3*h, events.SeverityHigh, events.KindDomain, "evil.example")
	alert("dev-1", "cust-1", 30*h, events.SeverityLow, events.KindIP, "203.0.113.9")
	alert("dev-1", "cust-1", 50*h, events.SeverityLow, events.KindIP, "203.0.113.9")
	alert("dev-2", "cust-1", 5*h, events.SeverityMedium, events.KindURL, "http://bad.example/x")
	alert("dev-2", "cust-1", 26*h, events.SeverityHigh, events.KindFile, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
	alert("dev-3", "cust-2", 4*h, events.SeverityHigh, events.KindDomain, "evil.example")
	alert("dev-3", "cust-2", 10*h, events.SeverityHigh, events.KindDomain, "evil.example")
	alert("dev-3", "cust-2", 2*h, events.SeverityLow, events.KindBehaviour, "portscan")

	heartbeat := func(device, customer string, ago time.Duration, packets uint64) {
		at := now.Add(-ago)
		add(&events.Heartbeat{ID: id(at), DeviceID: device, CustomerID: customer, SentAt: at, ReceivedAt: at.Add(time.Second),
			FirmwareVersion: "1.4.2", DefinitionsVersion: "2026.11.25", UptimeSeconds: 86400, Clients: 12,
			Packets: packets, Bytes: packets * 800, Alerts: 3, QueueDepth: 0}, at.Add(time.Second))
	}
	for i := 0; i < 12; i++ { // every 10 minutes for two hours
		ago := time.Duration(i)*10*time.Minute + time.Minute
		heartbeat("dev-1", "cust-1", ago, uint64(100000-i*1000))
		heartbeat("dev-3", "cust-2", ago, uint64(50000-i*500))
	}
	heartbeat("dev-2", "cust-1", 3*h, 7000) // silent since

	// Notices from operators: maintenance for all, a fault for cust-1, a
	// firmware update for cust-2, and a level-Z fault no customer sees.
	pub := now.Add(-24 * h)
	add(&events.MaintenanceAnnounced{NoticeID: "nt_sample_maint", Customers: "*", Summary: "定期メンテナンス",
		Details: "ポータルが停止します。", StartsAt: now.Add(40 * 24 * h), EndsAt: now.Add(40*24*h + 2*h), AnnouncedAt: pub}, pub)
	add(&events.FaultDeclared{NoticeID: "nt_sample_fault", Level: events.FaultLevelA, Customers: "cust-1", Summary: "通知の遅延",
		Details: "メール通知が遅れています。", StartedAt: pub.Add(-h), DeclaredAt: pub.Add(time.Minute)}, pub.Add(time.Minute))
	add(&events.FirmwareNoticePublished{NoticeID: "nt_sample_fw", Customers: "cust-2", FirmwareVersion: "1.5.0",
		Summary: "ファームウェア 1.5.0", Details: "検知性能の向上", AvailableAt: now.Add(7 * 24 * h), PublishedAt: pub.Add(2 * time.Minute)}, pub.Add(2*time.Minute))
	add(&events.FaultDeclared{NoticeID: "nt_sample_z", Level: events.FaultLevelZ, Customers: "*", Summary: "internal",
		StartedAt: pub, DeclaredAt: pub.Add(3 * time.Minute)}, pub.Add(3*time.Minute))

	// Liveness as the watchdog judged it, and what the notifier did.
	first := now.Add(-48 * h)
	add(&events.DeviceActivated{DeviceID: "dev-1", CustomerID: "cust-1", HeartbeatAt: first, ActivatedAt: first}, first)
	add(&events.DeviceActivated{DeviceID: "dev-2", CustomerID: "cust-1", HeartbeatAt: first, ActivatedAt: first}, first)
	down := now.Add(-3*h + 10*time.Minute)
	add(&events.DeviceWentOffline{DeviceID: "dev-2", CustomerID: "cust-1", LastHeartbeatAt: now.Add(-3 * h), ThresholdSeconds: 600, DetectedAt: down}, down)
	for _, st := range []string{events.NotifyAttempting, events.NotifySent} {
		add(&events.NotificationRecorded{NotificationID: "nf_sample_1", Status: st, Channel: events.ChannelMail,
			Recipient: "it@kobayashi.example", CustomerID: "cust-1", Kind: "offline", SourceEventID: "sample", DeviceID: "dev-2",
			EventTime: down, Attempts: 1, RecordedAt: down.Add(time.Second)}, down.Add(time.Second))
	}
	return s
}
