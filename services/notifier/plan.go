package notifier

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
)

// A planner decides, under the state lock, what the notifications of one
// kind of source event become: for each customer it concerns, one
// notification (what) through every channel of that customer.
type planner func(n *Notifier, o origin, p events.Payload) []job

// planners is what each source event type the notifier reads becomes;
// types it does not list notify no one.
var planners = map[string]planner{
	events.TypeAlertDetected:        planAlert,
	events.TypeDeviceWentOffline:    planStatus,
	events.TypeDeviceCameOnline:     planStatus,
	events.TypeDeviceWentSilent:     planStatus,
	events.TypeFaultDeclared:        planFault,
	events.TypeMaintenanceAnnounced: planMaintenance,
}

// origin is the source event of the notifications being planned.
type origin struct {
	eventID string
	base    events.NotificationRecorded // the source fields every record of it carries
	src     source
}

// notification is one thing to tell a customer, on every channel.
type notification struct {
	kind   string
	device string // the appliance it is about, if one
	at     time.Time
	render func(*customer) content
	// decide, if set, adjusts a job not decided before (prior is its
	// ledger status: "" or attempting): skip it, defer it to a digest.
	decide func(j *job, prior string)
}

// plan decides, under the state lock, what each notification of one
// source event becomes.
func (n *Notifier) plan(r *kgo.Record, e events.Envelope, p events.Payload) []job {
	pl := planners[e.Type]
	if pl == nil {
		return nil
	}
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	return pl(n, origin{eventID: e.ID, src: source{topic: r.Topic, partition: r.Partition, offset: r.Offset},
		base: events.NotificationRecorded{SourceEventID: e.ID, SourceTopic: n.kcfg.Base(r.Topic), SourcePartition: int(r.Partition)}}, p)
}

// jobs is the notification nt of c through each of c's channels (mail,
// and the webhook if c set one), leaving out those decided before. The
// caller holds the state lock.
func (n *Notifier) jobs(o origin, c *customer, nt notification) []job {
	recips := []struct{ ch, to string }{{events.ChannelMail, c.email}}
	if c.webhookURL != "" {
		recips = append(recips, struct{ ch, to string }{events.ChannelWebhook, c.webhookURL})
	}
	var out []job
	for _, rc := range recips {
		if rc.to == "" {
			continue
		}
		j := job{rec: o.base, src: o.src, send: true}
		j.rec.NotificationID = ID(o.eventID, rc.ch, rc.to)
		j.rec.Channel, j.rec.Recipient, j.rec.CustomerID, j.rec.Kind = rc.ch, rc.to, c.id, nt.kind
		j.rec.DeviceID, j.rec.EventTime = nt.device, nt.at
		if rc.ch == events.ChannelWebhook {
			j.hookURL, j.secret = c.webhookURL, WebhookSecret(n.cfg.WebhookKey, c.id, c.secretVersion)
		}
		// Decided before: never twice. Attempting without an outcome
		// means a retry under way or a crash inside the window: send
		// (again), same Message-ID.
		st := n.st.ledger[j.rec.NotificationID].status
		if terminal(st) {
			continue
		}
		if nt.decide != nil {
			nt.decide(&j, st)
		}
		if j.send {
			j.c = nt.render(c)
		}
		out = append(out, j)
	}
	return out
}

// planAlert notifies the customer of an alert of a severity it chose. An
// appliance not activated is recorded skipped; a repeat of a
// detection within the repeat window, or an alert past the hourly cap,
// is deferred to the device's digest.
func planAlert(n *Notifier, o origin, pl events.Payload) []job {
	p := pl.(*events.Alert)
	c := n.st.customers[p.CustomerID]
	if c == nil {
		n.log.Warn("notifier: alert of a customer not in the state; not mailed", "alert", p.ID, "customer", p.CustomerID)
		return nil
	}
	if !slices.Contains(c.severities, p.Severity) {
		return nil
	}
	d := n.st.devices[p.DeviceID]
	det := p.DeviceID + "|" + p.Kind + "|" + p.Indicator
	dcopy := device{serial: p.DeviceID}
	if d != nil {
		dcopy = *d
		if dcopy.serial == "" {
			dcopy.serial = p.DeviceID
		}
	}
	return n.jobs(o, c, notification{kind: kindAlert, device: p.DeviceID, at: p.ReceivedAt,
		render: func(c *customer) content { return n.renderAlert(c, &dcopy, p) },
		decide: func(j *job, prior string) {
			j.rec.Detection, j.rec.Severity = det, p.Severity
			if prior == events.NotifyAttempting {
				return
			}
			if d == nil || !d.activated {
				j.send, j.rec.Status, j.rec.Reason = false, events.NotifySkipped, "appliance not activated (R-52: installed and sending heartbeats)"
				n.log.Info("notifier: alert of an appliance not activated; not mailed", "alert", p.ID, "device", p.DeviceID)
				return
			}
			if j.rec.Channel != events.ChannelMail {
				return
			}
			repeat := p.ReceivedAt.Sub(n.st.lastImmediate[det]) < n.cfg.RepeatWindow && !n.st.lastImmediate[det].IsZero()
			capped := n.cfg.HourlyCap > 0 && n.st.sentWithin(c.id, j.rec.Recipient, p.ReceivedAt, time.Hour) >= n.cfg.HourlyCap
			if repeat || capped {
				// A digest whose delivery began takes no more alerts:
				// they open the next one.
				key := n.st.openDigest[openKey(c.id, p.DeviceID, j.rec.Recipient, j.rec.Channel)]
				if key == "" || n.st.ledger[ID(key, j.rec.Channel, j.rec.Recipient)].status != "" {
					key = "dg_" + j.rec.NotificationID[3:]
				}
				j.send, j.rec.Status, j.rec.DigestKey = false, events.NotifyDeferred, key
				j.rec.Reason = map[bool]string{true: "repeat of a detection mailed within the repeat window", false: "hourly cap reached"}[repeat]
			}
			// Record the decision at once so the next alert of this batch sees it.
			j.rec.RecordedAt = n.cfg.Now().UTC()
			if j.send {
				r := j.rec
				r.Status = events.NotifyAttempting
				n.st.applyRecord(&r)
			} else {
				n.st.applyRecord(&j.rec)
			}
		}})
}

// planStatus notifies the customer of an appliance that went offline,
// came back online or went silent.
func planStatus(n *Notifier, o origin, p events.Payload) []job {
	var dev, cust, kind string
	var at time.Time
	switch p := p.(type) {
	case *events.DeviceWentOffline:
		dev, cust, kind, at = p.DeviceID, p.CustomerID, kindOffline, p.DetectedAt
	case *events.DeviceCameOnline:
		dev, cust, kind, at = p.DeviceID, p.CustomerID, kindOnline, p.DetectedAt
	case *events.DeviceWentSilent:
		dev, cust, kind, at = p.DeviceID, p.CustomerID, kindSilent, p.DetectedAt
	}
	c := n.st.customers[cust]
	if c == nil {
		return nil
	}
	dcopy := device{serial: dev}
	if d := n.st.devices[dev]; d != nil && d.serial != "" {
		dcopy = *d
	}
	return n.jobs(o, c, notification{kind: kind, device: dev, at: at,
		render: func(c *customer) content { return n.renderStatus(c, &dcopy, kind, dev, p) }})
}

// planFault notifies the customers a fault of level A or B concerns.
func planFault(n *Notifier, o origin, pl events.Payload) []job {
	p := pl.(*events.FaultDeclared)
	if p.Level != events.FaultLevelA && p.Level != events.FaultLevelB {
		return nil // level Z is not reported to customers
	}
	var out []job
	for _, c := range n.targets(p.Customers) {
		out = append(out, n.jobs(o, c, notification{kind: kindFault, at: p.DeclaredAt,
			render: func(c *customer) content { return n.renderFault(c, p) }})...)
	}
	return out
}

// planMaintenance notifies the customers a maintenance concerns.
func planMaintenance(n *Notifier, o origin, pl events.Payload) []job {
	p := pl.(*events.MaintenanceAnnounced)
	var out []job
	for _, c := range n.targets(p.Customers) {
		out = append(out, n.jobs(o, c, notification{kind: kindMaintenance, at: p.AnnouncedAt,
			render: func(c *customer) content { return n.renderMaintenance(c, p) }})...)
	}
	return out
}
