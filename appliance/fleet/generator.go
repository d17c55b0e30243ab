package fleet

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/mimamori/mimamori/events"
)

// eicar is the EICAR anti-virus test string, split so that this source file
// is not itself mistaken for the test file.
const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$` + `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// EICARSHA256 is the SHA-256 of the EICAR test file, the hash a file alert
// carries.
func EICARSHA256() string {
	sum := sha256.Sum256([]byte(eicar))
	return hex.EncodeToString(sum[:])
}

// Listed indicators, as a definition bundle would carry them. The names
// use reserved example domains and the documentation address blocks so a
// demo never points at a real host.
var (
	c2Domains = []string{
		"update-check.c2.example", "cdn-sync.badcdn.example", "login-verify.phish.example",
		"x9f3k2.dga.example", "mail-secure.phish.example", "stats.botnet.example",
	}
	listedIPs = []string{
		"198.51.100.23", "198.51.100.77", "203.0.113.9", "203.0.113.140", "192.0.2.66", "2001:db8:bad::15",
	}
	urlHosts = []string{"free-prizes.phish.example", "docs-share.malware.example", "invoice.scam.example"}
	urlPaths = []string{"/login.php", "/wp-admin/update.js", "/invoice/2026-11.pdf.exe", "/track?id=8841", "/gate.php"}
	files    = []string{"eicar.com", "eicar.com.txt", "invoice_eicar.zip", "請求書_eicar.com"}
	resolver = []string{"192.0.2.53", "198.51.100.53"}
	scanners = []string{"203.0.113.201", "198.51.100.199", "192.0.2.250"}
	ouis     = []string{"3c:22:fb", "f0:18:98", "00:1b:21", "b8:27:eb", "dc:a6:32", "ac:bc:32"}
)

// v6Prefix is each inside zone's IPv6 network (documentation space).
var v6Prefix = map[string]string{
	events.ZoneLAN:   "2001:db8:1::",
	events.ZoneSSID1: "2001:db8:10::",
	events.ZoneSSID2: "2001:db8:20::",
}

// host is one client on a customer network.
type host struct {
	zone string
	ip   string
	mac  string
}

// Generator makes office-shaped alerts. Everything except the KSUID id is a
// function of the seed and the sequence of calls; ids come from ksuid.New
// so two runs with the same seed never collide at the gateway. A Generator
// is not safe for concurrent use.
type Generator struct {
	rng         *rand.Rand
	hosts       []host
	gatewayMAC  string // the appliance's own inside MAC
	upstreamMAC string // the customer's internet router
	definitions string
	eicarSHA    string
}

// NewGenerator returns a generator of one simulated site.
func NewGenerator(seed int64) *Generator {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6d696d616d6f7269))
	g := &Generator{rng: rng, eicarSHA: EICARSHA256()}
	g.gatewayMAC = g.mac()
	g.upstreamMAC = g.mac()
	g.definitions = fmt.Sprintf("2026.%02d.%02d.%d", 1+rng.IntN(11), 1+rng.IntN(28), 1+rng.IntN(4))
	nets := []struct {
		zone   string
		prefix string
		n      int
	}{
		{events.ZoneLAN, "192.168.1.", 6 + rng.IntN(25)},
		{events.ZoneSSID1, "192.168.10.", 3 + rng.IntN(20)},
		{events.ZoneSSID2, "192.168.20.", 1 + rng.IntN(10)},
	}
	for _, n := range nets {
		used := map[int]bool{}
		for range n.n {
			last := 10 + rng.IntN(240)
			for used[last] {
				last = 10 + rng.IntN(240)
			}
			used[last] = true
			g.hosts = append(g.hosts, host{zone: n.zone, ip: fmt.Sprintf("%s%d", n.prefix, last), mac: g.mac()})
		}
	}
	return g
}

// DefinitionsVersion is the definition bundle version the site runs.
func (g *Generator) DefinitionsVersion() string { return g.definitions }

// Hosts is the number of clients on the site's networks.
func (g *Generator) Hosts() int { return len(g.hosts) }

func (g *Generator) mac() string {
	r := g.rng
	return fmt.Sprintf("%s:%02x:%02x:%02x", pick(r, ouis), r.IntN(256), r.IntN(256), r.IntN(256))
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// severity is mostly low: 70% ★, 22% ★★, 8% ★★★.
func (g *Generator) severity() int {
	switch n := g.rng.IntN(100); {
	case n < 70:
		return events.SeverityLow
	case n < 92:
		return events.SeverityMedium
	default:
		return events.SeverityHigh
	}
}

func (g *Generator) action(sev int) string {
	// High-confidence definitions are usually set to block.
	if g.rng.IntN(100) < 30+20*sev {
		return events.ActionBlocked
	}
	return events.ActionDetected
}

func (g *Generator) ephemeral() int { return 32768 + g.rng.IntN(28232) }

func (g *Generator) wanIP() string {
	return fmt.Sprintf("%s.%d", pick(g.rng, []string{"192.0.2", "198.51.100", "203.0.113"}), 1+g.rng.IntN(254))
}

// Alert makes one alert of a random kind detected at now on deviceID. It
// always passes ValidateFromDevice.
func (g *Generator) Alert(now time.Time, deviceID string) events.Alert {
	r := g.rng
	sev := g.severity()
	src := pick(r, g.hosts)
	a := events.Alert{
		ID:                 ksuid.New().String(),
		DeviceID:           deviceID,
		DetectedAt:         now.UTC(),
		Severity:           sev,
		Action:             g.action(sev),
		SrcIP:              src.ip,
		SrcPort:            g.ephemeral(),
		SrcMAC:             src.mac,
		DstMAC:             g.gatewayMAC,
		Protocol:           "tcp",
		Zones:              src.zone + ">" + events.ZoneWAN,
		DefinitionsVersion: g.definitions,
		Count:              1 + r.IntN(3),
	}
	switch n := r.IntN(100); {
	case n < 35:
		d := pick(r, c2Domains)
		a.Kind, a.Indicator, a.Domain = events.KindDomain, d, d
		a.Label = "DNS query for a command-and-control domain"
		a.DstIP, a.DstPort, a.Protocol = pick(r, resolver), 53, "udp"
	case n < 55:
		ip := pick(r, listedIPs)
		a.Kind, a.Indicator, a.DstIP = events.KindIP, ip, ip
		a.Label = "Connection to a listed malicious address"
		a.DstPort = pick(r, []int{443, 8080, 4444, 8443, 6667})
		if netip.MustParseAddr(ip).Is6() {
			// An IPv6 flow needs an IPv6 source too.
			a.SrcIP = fmt.Sprintf("%s%x", v6Prefix[src.zone], 0x10+r.IntN(0xff0))
		}
	case n < 75:
		h := pick(r, urlHosts)
		u := "http://" + h + pick(r, urlPaths)
		a.Kind, a.Indicator, a.URL, a.Domain = events.KindURL, u, u, h
		a.Label = "Access to a phishing or malware URL"
		a.DstIP, a.DstPort = g.wanIP(), 80
	case n < 85:
		h := pick(r, urlHosts)
		name := pick(r, files)
		a.Kind, a.Indicator, a.FileSHA256, a.FileName = events.KindFile, g.eicarSHA, g.eicarSHA, name
		a.URL, a.Domain = "http://"+h+"/download/"+name, h
		a.Label = "Malware file download (EICAR test signature)"
		a.DstIP, a.DstPort = g.wanIP(), 80
		// The file comes from the server: record the flow as it travels.
		a.SrcIP, a.DstIP = a.DstIP, a.SrcIP
		a.SrcPort, a.DstPort = a.DstPort, a.SrcPort
		a.SrcMAC, a.DstMAC = g.upstreamMAC, src.mac
		a.Zones = events.ZoneWAN + ">" + src.zone
	default:
		a.Kind, a.Indicator = events.KindBehaviour, "behaviour/port-scan"
		ports := 20 + r.IntN(980)
		a.Label = fmt.Sprintf("Port scan: %d ports in 10 s", ports)
		a.DstPort = pick(r, []int{22, 23, 80, 139, 443, 445, 3389, 8080})
		if r.IntN(3) == 0 {
			// A guest-network device probing the office LAN.
			scanner := g.hostIn(events.ZoneSSID2, src)
			target := g.hostIn(events.ZoneLAN, src)
			a.SrcIP, a.SrcMAC, a.DstIP, a.DstMAC = scanner.ip, scanner.mac, target.ip, target.mac
			a.Zones = scanner.zone + ">" + target.zone
		} else {
			// The internet probing an office host through a forwarded port.
			a.SrcIP, a.SrcMAC = pick(r, scanners), g.upstreamMAC
			a.DstIP, a.DstMAC = src.ip, src.mac
			a.Zones = events.ZoneWAN + ">" + src.zone
		}
	}
	return a
}

// hostIn picks a host of zone, or fallback when the site has none.
func (g *Generator) hostIn(zone string, fallback host) host {
	var in []host
	for _, h := range g.hosts {
		if h.zone == zone {
			in = append(in, h)
		}
	}
	if len(in) == 0 {
		return fallback
	}
	return pick(g.rng, in)
}
