package notifier

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mimamori/mimamori/events"
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

type lines struct {
	b strings.Builder
}

func (l *lines) add(label, v string) {
	if v != "" {
		fmt.Fprintf(&l.b, "%s: %s\n", label, v)
	}
}
func (l *lines) text(s string) { l.b.WriteString(s); l.b.WriteString("\n") }

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

func (n *Notifier) greet(l *lines, c *customer) {
	if c.lang == events.LangEnglish {
		l.text("Dear " + c.name + ",")
	} else {
		l.text(c.name + " 御中")
	}
	l.text("")
}

func (n *Notifier) footer(l *lines, c *customer, link string) {
	l.text("")
	if c.lang == events.LangEnglish {
		l.add("Portal", link)
		l.text("\n-- \nmimamori managed security watch. This message was sent automatically; replies are not read.")
	} else {
		l.add("ポータル", link)
		l.text("\n-- \nみまもり セキュリティ監視サービス。このメールは自動送信です。返信いただいてもお答えできません。")
	}
}

func kindName(kind, lang string) string {
	ja := map[string]string{events.KindDomain: "ドメイン", events.KindIP: "IPアドレス", events.KindURL: "URL",
		events.KindFile: "ファイル", events.KindBehaviour: "ふるまい"}
	if lang == events.LangEnglish {
		return kind
	}
	if s, ok := ja[kind]; ok {
		return s
	}
	return kind
}

func (n *Notifier) renderAlert(c *customer, d *device, a *events.Alert) content {
	en := c.lang == events.LangEnglish
	what := a.Label
	if what == "" {
		what = a.Indicator
	}
	var l lines
	n.greet(&l, c)
	link := n.cfg.PortalURL + "/alerts/" + a.ID
	var subject string
	if en {
		subject = fmt.Sprintf("[mimamori %s] Important alert: %s (%s)", Stars(a.Severity), what, d.serial)
		l.text("Your mimamori appliance detected an important alert.\n")
		l.add("Severity", Stars(a.Severity))
		l.add("Detected at", ts(a.DetectedAt))
		l.add("Appliance", d.serial+" ("+a.DeviceID+")")
		l.add("Kind", kindName(a.Kind, c.lang))
		l.add("Indicator", a.Indicator)
		l.add("Label", a.Label)
		l.add("Action", map[string]string{events.ActionBlocked: "blocked", events.ActionDetected: "detected (not blocked)"}[a.Action])
		l.add("Source", hostPort(a.SrcIP, a.SrcPort, a.SrcMAC))
		l.add("Destination", hostPort(a.DstIP, a.DstPort, a.DstMAC))
		l.add("Path", a.Zones)
		l.add("URL", a.URL)
		l.add("Domain", a.Domain)
		l.add("File name", a.FileName)
		l.add("File SHA-256", a.FileSHA256)
		l.add("Count", fmt.Sprint(a.Count))
		l.text("\nWhat to do next:")
		l.text("  1. Disconnect the source device from the network.")
		l.text("  2. Run a full antivirus scan on it and keep the result (needed for an insurance claim).")
		l.text("  3. Check the alert on the portal; contact the support desk if in doubt.")
	} else {
		subject = fmt.Sprintf("【mimamori %s】重要アラート: %s (%s)", Stars(a.Severity), what, d.serial)
		l.text("みまもり機器が重要なアラートを検知しました。\n")
		l.add("重要度", Stars(a.Severity))
		l.add("検知日時", ts(a.DetectedAt))
		l.add("機器", d.serial+" ("+a.DeviceID+")")
		l.add("種別", kindName(a.Kind, c.lang))
		l.add("検知内容", a.Indicator)
		l.add("分類", a.Label)
		l.add("対応", map[string]string{events.ActionBlocked: "遮断しました", events.ActionDetected: "検知のみ（遮断していません）"}[a.Action])
		l.add("送信元", hostPort(a.SrcIP, a.SrcPort, a.SrcMAC))
		l.add("宛先", hostPort(a.DstIP, a.DstPort, a.DstMAC))
		l.add("経路", a.Zones)
		l.add("URL", a.URL)
		l.add("ドメイン", a.Domain)
		l.add("ファイル名", a.FileName)
		l.add("ファイルSHA-256", a.FileSHA256)
		l.add("件数", fmt.Sprint(a.Count))
		l.text("\n次にすること:")
		l.text("  1. 送信元の端末をネットワークから切り離してください。")
		l.text("  2. その端末でウイルス対策ソフトのフルスキャンを実行し、結果を保存してください（保険請求に必要です）。")
		l.text("  3. ポータルでアラートの詳細をご確認ください。ご不明な点はサポート窓口へお問い合わせください。")
	}
	n.footer(&l, c, link)
	return content{subject: subject, body: l.b.String(), hook: map[string]any{"type": "alert", "alert": a, "portal_url": link}}
}

func (n *Notifier) renderDigest(c *customer, d *device, g *digest, sev int) content {
	en := c.lang == events.LangEnglish
	var l lines
	n.greet(&l, c)
	link := n.cfg.PortalURL + "/devices/" + g.device
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
	var subject string
	if en {
		subject = fmt.Sprintf("[mimamori %s] Digest: %d more important alerts (%s)", Stars(sev), g.count, d.serial)
		l.text(fmt.Sprintf("%d more important alerts were detected on appliance %s between %s and %s.", g.count, d.serial, ts(g.firstAt), ts(g.lastAt)))
		l.text("To keep your inbox usable, repeats are summarised here instead of one mail each. Every alert is on the portal.\n")
		l.text("Detections (count):")
	} else {
		subject = fmt.Sprintf("【mimamori %s】まとめ: 重要アラート %d 件 (%s)", Stars(sev), g.count, d.serial)
		l.text(fmt.Sprintf("機器 %s で %s から %s までに重要アラートが %d 件ありました。", d.serial, ts(g.firstAt), ts(g.lastAt), g.count))
		l.text("同じ検知の繰り返しや多数のアラートは、1件ずつではなくこのメールにまとめてお知らせします。すべてのアラートはポータルで確認できます。\n")
		l.text("検知内容（件数）:")
	}
	for i, k := range labels {
		if i == 30 {
			l.text(fmt.Sprintf("  … (+%d)", len(labels)-30))
			break
		}
		l.text(fmt.Sprintf("  %s (%d)", k, g.detections[k]))
	}
	n.footer(&l, c, link)
	return content{subject: subject, body: l.b.String(), hook: map[string]any{"type": "digest", "device_id": g.device,
		"alerts": g.count, "first_at": g.firstAt, "last_at": g.lastAt, "detections": g.detections, "portal_url": link}}
}

func (n *Notifier) renderStatus(c *customer, d *device, kind, deviceID string, p events.Payload) content {
	en := c.lang == events.LangEnglish
	var l lines
	n.greet(&l, c)
	link := n.cfg.PortalURL + "/devices/" + deviceID
	var subject string
	switch p := p.(type) {
	case *events.DeviceWentOffline:
		mins := p.ThresholdSeconds / 60
		if en {
			subject = fmt.Sprintf("[mimamori] Appliance stopped: %s", d.serial)
			l.text(fmt.Sprintf("We have not heard from appliance %s for %d minutes, so we judge that it has stopped.", d.serial, mins))
			l.text("While it is stopped your network is not watched.\n")
			l.add("Last contact", ts(p.LastHeartbeatAt))
			l.add("Judged at", ts(p.DetectedAt))
			l.text("\nPlease check that the appliance has power and that its cables are connected. The portal shows its current status.")
		} else {
			subject = fmt.Sprintf("【mimamori】機器停止のお知らせ: %s", d.serial)
			l.text(fmt.Sprintf("機器 %s から %d 分以上通信がないため、停止していると判断しました。", d.serial, mins))
			l.text("停止中はネットワークの監視が行われません。\n")
			l.add("最終通信日時", ts(p.LastHeartbeatAt))
			l.add("判定日時", ts(p.DetectedAt))
			l.text("\n機器の電源とケーブルの接続をご確認ください。現在の状態はポータルで確認できます。")
		}
	case *events.DeviceCameOnline:
		if en {
			subject = fmt.Sprintf("[mimamori] Appliance back online: %s", d.serial)
			l.text(fmt.Sprintf("Appliance %s is communicating again and watching your network.\n", d.serial))
			l.add("Stopped (judged at)", ts(p.OfflineAt))
			l.add("Back at", ts(p.HeartbeatAt))
		} else {
			subject = fmt.Sprintf("【mimamori】機器復旧のお知らせ: %s", d.serial)
			l.text(fmt.Sprintf("機器 %s との通信が再開し、監視を再開しました。\n", d.serial))
			l.add("停止判定日時", ts(p.OfflineAt))
			l.add("復旧日時", ts(p.HeartbeatAt))
		}
	case *events.DeviceWentSilent:
		mins := p.PeriodSeconds / 60
		if en {
			subject = fmt.Sprintf("[mimamori] Appliance sees no traffic: %s", d.serial)
			l.text(fmt.Sprintf("Appliance %s is on, but has seen no network traffic for %d minutes.", d.serial, mins))
			l.text("This usually means traffic no longer passes through it (it was bypassed or a cable was moved).\n")
			l.add("No traffic since", ts(p.SilentSince))
			l.add("Last contact", ts(p.LastHeartbeatAt))
		} else {
			subject = fmt.Sprintf("【mimamori】通信が監視されていません: %s", d.serial)
			l.text(fmt.Sprintf("機器 %s は動作していますが、%d 分以上ネットワークの通信を検査していません。", d.serial, mins))
			l.text("機器を経由せずに通信している（配線が変更された）可能性があります。\n")
			l.add("通信なし（開始）", ts(p.SilentSince))
			l.add("最終通信日時", ts(p.LastHeartbeatAt))
		}
	}
	n.footer(&l, c, link)
	return content{subject: subject, body: l.b.String(), hook: map[string]any{"type": kind, "device_id": deviceID, "event": p, "portal_url": link}}
}

func (n *Notifier) renderFault(c *customer, f *events.FaultDeclared) content {
	var l lines
	n.greet(&l, c)
	link := n.cfg.PortalURL + "/notices/" + f.NoticeID
	var subject string
	if c.lang == events.LangEnglish {
		subject = fmt.Sprintf("[mimamori fault level %s] %s", f.Level, f.Summary)
		l.text(fmt.Sprintf("We are reporting a level %s fault of the mimamori service.\n", f.Level))
		l.add("Level", map[string]string{"A": "A (the main function is unavailable)", "B": "B (some of your devices are not served)"}[f.Level])
		l.add("Started at", ts(f.StartedAt))
		l.add("Summary", f.Summary)
		l.text("\n" + f.Details)
	} else {
		subject = fmt.Sprintf("【mimamori 障害レベル%s】%s", f.Level, f.Summary)
		l.text(fmt.Sprintf("みまもりサービスで障害（レベル%s）が発生しました。\n", f.Level))
		l.add("レベル", map[string]string{"A": "A（主要な機能が利用できません）", "B": "B（一部の端末が監視されていません）"}[f.Level])
		l.add("発生日時", ts(f.StartedAt))
		l.add("概要", f.Summary)
		l.text("\n" + f.Details)
	}
	n.footer(&l, c, link)
	return content{subject: subject, body: l.b.String(), hook: map[string]any{"type": "fault", "notice": f, "portal_url": link}}
}

func (n *Notifier) renderMaintenance(c *customer, m *events.MaintenanceAnnounced) content {
	var l lines
	n.greet(&l, c)
	link := n.cfg.PortalURL + "/notices/" + m.NoticeID
	var subject string
	if c.lang == events.LangEnglish {
		subject = fmt.Sprintf("[mimamori] Planned maintenance on %s: %s", m.StartsAt.In(jst).Format("2006-01-02"), m.Summary)
		l.text("The mimamori service will stop for planned maintenance.\n")
		l.add("From", ts(m.StartsAt))
		l.add("Until", ts(m.EndsAt))
		l.add("Summary", m.Summary)
		l.text("\n" + m.Details)
	} else {
		subject = fmt.Sprintf("【mimamori】計画メンテナンスのお知らせ (%s): %s", m.StartsAt.In(jst).Format("2006-01-02"), m.Summary)
		l.text("計画メンテナンスのため、みまもりサービスを停止します。\n")
		l.add("開始日時", ts(m.StartsAt))
		l.add("終了予定", ts(m.EndsAt))
		l.add("概要", m.Summary)
		l.text("\n" + m.Details)
	}
	n.footer(&l, c, link)
	return content{subject: subject, body: l.b.String(), hook: map[string]any{"type": "maintenance", "notice": m, "portal_url": link}}
}
