package notifier

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/schemas/messages"
)

// Notification kinds (the kind field of the record).
const (
	kindAlert       = "alert"
	kindDigest      = "digest"
	kindOffline     = "offline"
	kindOnline      = "online"
	kindSilent      = "silent"
	kindFault       = "fault"
	kindMaintenance = "maintenance"
)

var jst = time.FixedZone("JST", 9*60*60)

// Stars renders a severity as R-50 demands in titles.
func Stars(sev int) string {
	switch sev {
	case events.SeverityHigh:
		return "★★★"
	case events.SeverityMedium:
		return "★★☆"
	default:
		return "★☆☆"
	}
}

func ts(t time.Time) string { return t.In(jst).Format("2006-01-02 15:04:05 MST") }

// content is one rendered message: mail subject and text, and the JSON
// document posted to webhooks.
type content struct {
	subject string
	body    string
	hook    map[string]any
}

func hostPort(ip string, port int, mac string) string {
	if ip == "" {
		return ""
	}
	s := ip
	if port > 0 {
		if strings.Contains(ip, ":") {
			s = fmt.Sprintf("[%s]:%d", ip, port)
		} else {
			s = fmt.Sprintf("%s:%d", ip, port)
		}
	}
	if mac != "" {
		s += " (MAC " + mac + ")"
	}
	return s
}

// textOr is key's text, or fallback when the catalogue has no such key (a
// kind or an action newer than this build).
func textOr(lang, key, fallback string) string {
	if !messages.Has(key) {
		return fallback
	}
	return messages.Text(lang, key)
}

// render renders the template of kind (schemas/messages/mail) in the
// customer's language with the fields every mail has added to data.
func (n *Notifier) render(kind string, c *customer, link string, data map[string]any, hook map[string]any) content {
	data["Customer"], data["Link"] = c.name, link
	subject, body, err := messages.Mail(kind, c.lang, data)
	if err != nil {
		panic(err) // the templates and their data are fixed at build time; the tests render every kind
	}
	hook["portal_url"] = link
	return content{subject: subject, body: body, hook: hook}
}

func (n *Notifier) renderAlert(c *customer, d *device, a *events.Alert) content {
	what := a.Label
	if what == "" {
		what = a.Indicator
	}
	return n.render("alert", c, n.cfg.PortalURL+"/alerts/"+a.ID, map[string]any{
		"Stars": Stars(a.Severity), "What": what, "Serial": d.serial, "DetectedAt": ts(a.DetectedAt),
		"Appliance": d.serial + " (" + a.DeviceID + ")", "Kind": textOr(c.lang, "mail.kind."+a.Kind, a.Kind),
		"Indicator": a.Indicator, "Label": a.Label, "Action": textOr(c.lang, "mail.action."+a.Action, ""),
		"Source": hostPort(a.SrcIP, a.SrcPort, a.SrcMAC), "Destination": hostPort(a.DstIP, a.DstPort, a.DstMAC),
		"Path": a.Zones, "URL": a.URL, "Domain": a.Domain, "FileName": a.FileName, "FileSHA256": a.FileSHA256,
		"Count": a.Count,
	}, map[string]any{"type": "alert", "alert": a})
}

// digestLines is how many detections a digest lists before "… (+N)".
const digestLines = 30

func (n *Notifier) renderDigest(c *customer, d *device, g *digest, sev int) content {
	labels := make([]string, 0, len(g.detections))
	for k := range g.detections {
		labels = append(labels, k)
	}
	sort.Slice(labels, func(i, j int) bool {
		if g.detections[labels[i]] != g.detections[labels[j]] {
			return g.detections[labels[i]] > g.detections[labels[j]]
		}
		return labels[i] < labels[j]
	})
	list := make([]string, 0, min(len(labels), digestLines+1))
	for i, k := range labels {
		if i == digestLines {
			list = append(list, fmt.Sprintf("… (+%d)", len(labels)-digestLines))
			break
		}
		list = append(list, fmt.Sprintf("%s (%d)", k, g.detections[k]))
	}
	return n.render("digest", c, n.cfg.PortalURL+"/devices/"+g.device, map[string]any{
		"Stars": Stars(sev), "Count": g.count, "Serial": d.serial, "First": ts(g.firstAt), "Last": ts(g.lastAt),
		"Detections": list,
	}, map[string]any{"type": "digest", "device_id": g.device, "alerts": g.count, "first_at": g.firstAt,
		"last_at": g.lastAt, "detections": g.detections})
}

func (n *Notifier) renderStatus(c *customer, d *device, kind, deviceID string, p events.Payload) content {
	data := map[string]any{"Serial": d.serial}
	switch p := p.(type) {
	case *events.DeviceWentOffline:
		data["Minutes"], data["LastContact"], data["JudgedAt"] = p.ThresholdSeconds/60, ts(p.LastHeartbeatAt), ts(p.DetectedAt)
	case *events.DeviceCameOnline:
		data["OfflineAt"], data["BackAt"] = ts(p.OfflineAt), ts(p.HeartbeatAt)
	case *events.DeviceWentSilent:
		data["Minutes"], data["SilentSince"], data["LastContact"] = p.PeriodSeconds/60, ts(p.SilentSince), ts(p.LastHeartbeatAt)
	}
	return n.render(kind, c, n.cfg.PortalURL+"/devices/"+deviceID, data,
		map[string]any{"type": kind, "device_id": deviceID, "event": p})
}

func (n *Notifier) renderFault(c *customer, f *events.FaultDeclared) content {
	return n.render("fault", c, n.cfg.PortalURL+"/notices/"+f.NoticeID, map[string]any{
		"Level": f.Level, "LevelText": textOr(c.lang, "mail.fault.level"+f.Level, ""), "StartedAt": ts(f.StartedAt),
		"Summary": f.Summary, "Details": f.Details,
	}, map[string]any{"type": "fault", "notice": f})
}

func (n *Notifier) renderMaintenance(c *customer, m *events.MaintenanceAnnounced) content {
	return n.render("maintenance", c, n.cfg.PortalURL+"/notices/"+m.NoticeID, map[string]any{
		"Day": m.StartsAt.In(jst).Format("2006-01-02"), "From": ts(m.StartsAt), "Until": ts(m.EndsAt),
		"Summary": m.Summary, "Details": m.Details,
	}, map[string]any{"type": "maintenance", "notice": m})
}
