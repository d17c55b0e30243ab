// Package pcapgen writes seeded synthetic captures shaped like an office's
// traffic (DNS over UDP, TLS ClientHello, HTTP requests) in which a known
// share of sessions name a listed threat domain, together with the domain
// list and the exact detections expected. Tests, the end-to-end test and
// the Suricata comparison benchmark share it, so they agree on the truth.
package pcapgen

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Config shapes a capture; zero values take the defaults noted.
type Config struct {
	Seed    uint64
	Packets int // write sessions until at least this many frames (default 10,000)
	Clients int // LAN clients in 192.168.1.0/24 (default 50, at most 250)
	// Domains is the size of the threat domain list (default 1,000).
	Domains int
	// ThreatEvery: one session in ThreatEvery names a listed domain
	// (default 50).
	ThreatEvery int
	Start       time.Time     // first frame time (default 2026-11-27 09:00 UTC)
	Gap         time.Duration // time between frames (default 50 µs)
	// PcapNG writes pcapng instead of pcap.
	PcapNG bool
}

// LAN is the client network of generated captures; use it as --zone lan=.
const LAN = "192.168.1.0/24"

// Resolver is the DNS server the clients ask (in the WAN zone).
const Resolver = "192.0.2.53"

// Detection is one expected detection: a client, a server and the listed
// domain the session named. Kinds are "dns", "tls" and "http".
type Detection struct {
	Kind, Domain, Src, Dst string
}

// Truth is what a written capture holds.
type Truth struct {
	Frames   int
	Sessions int
	// Threats lists one entry per threat session (repeats included).
	Threats []Detection
}

func (c *Config) defaults() {
	if c.Packets <= 0 {
		c.Packets = 10000
	}
	if c.Clients <= 0 {
		c.Clients = 50
	}
	c.Clients = min(c.Clients, 250)
	if c.Domains <= 0 {
		c.Domains = 1000
	}
	if c.ThreatEvery <= 0 {
		c.ThreatEvery = 50
	}
	if c.Start.IsZero() {
		c.Start = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	}
	if c.Gap <= 0 {
		c.Gap = 50 * time.Microsecond
	}
}

// ThreatDomain is the i-th listed domain of a list.
func ThreatDomain(i int) string { return fmt.Sprintf("c2-%07d.bad.example", i) }

// WriteDomainList writes the n listed domains in the indicator-list format
// (VALUE SEVERITY LABEL).
func WriteDomainList(w io.Writer, n int) error {
	bw := &strings.Builder{}
	for i := 0; i < n; i++ {
		bw.Reset()
		fmt.Fprintf(bw, "%s 3 c2\n", ThreatDomain(i))
		if _, err := io.WriteString(w, bw.String()); err != nil {
			return err
		}
	}
	return nil
}

// benignDomain never matches a listed domain (another suffix).
func benignDomain(i int) string { return fmt.Sprintf("www.site%05d.example.org", i) }

type gen struct {
	cfg Config
	rng *rand.Rand
	w   interface {
		WritePacket(gopacket.CaptureInfo, []byte) error
	}
	buf   gopacket.SerializeBuffer
	ts    time.Time
	truth Truth
	ports [256]uint16
}

// Write writes a capture to w and returns what it holds.
func Write(w io.Writer, cfg Config) (Truth, error) {
	cfg.defaults()
	g := &gen{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6d696d616d6f7269)), buf: gopacket.NewSerializeBuffer(), ts: cfg.Start}
	if cfg.PcapNG {
		ng, err := pcapgo.NewNgWriter(w, layers.LinkTypeEthernet)
		if err != nil {
			return Truth{}, err
		}
		defer ng.Flush()
		g.w = ng
	} else {
		pw := pcapgo.NewWriter(w)
		if err := pw.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
			return Truth{}, err
		}
		g.w = pw
	}
	for i := range g.ports {
		g.ports[i] = 20000
	}
	for g.truth.Frames < cfg.Packets {
		if err := g.session(); err != nil {
			return g.truth, err
		}
	}
	return g.truth, nil
}

func (g *gen) session() error {
	g.truth.Sessions++
	ci := g.rng.IntN(g.cfg.Clients)
	client := netip.AddrFrom4([4]byte{192, 168, 1, byte(10 + ci)})
	threat := g.rng.IntN(g.cfg.ThreatEvery) == 0
	var domain string
	if threat {
		domain = ThreatDomain(g.rng.IntN(g.cfg.Domains))
	} else {
		domain = benignDomain(g.rng.IntN(5000))
	}
	server := serverFor(domain)
	g.ports[ci]++
	if g.ports[ci] < 20000 {
		g.ports[ci] = 20000
	}
	sport := g.ports[ci]
	var kind string
	var err error
	switch r := g.rng.IntN(10); {
	case r < 5:
		kind = "dns"
		server = netip.MustParseAddr(Resolver)
		err = g.udp(client, server, sport, 53, DNSQuery(domain, uint16(g.rng.Uint32())))
	case r < 8:
		kind = "tls"
		err = g.tcp(client, server, sport, 443, ClientHello(domain), nil)
	default:
		kind = "http"
		req := fmt.Appendf(nil, "GET /index.html?q=%d HTTP/1.1\r\nHost: %s\r\nUser-Agent: office/1.0\r\nAccept: */*\r\n\r\n", g.rng.IntN(1000), domain)
		err = g.tcp(client, server, sport, 80, req, []byte("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"))
	}
	if threat {
		g.truth.Threats = append(g.truth.Threats, Detection{Kind: kind, Domain: domain, Src: client.String(), Dst: server.String()})
	}
	return err
}

// serverFor gives each domain a stable WAN address in 198.18.0.0/15.
func serverFor(domain string) netip.Addr {
	var h uint32 = 2166136261
	for i := 0; i < len(domain); i++ {
		h = (h ^ uint32(domain[i])) * 16777619
	}
	return netip.AddrFrom4([4]byte{198, 18 + byte(h>>16&1), byte(h >> 8), byte(h)})
}

var (
	clientMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x10}
	routerMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
)

func (g *gen) frame(src, dst netip.Addr, l4 gopacket.SerializableLayer, payload []byte, fromClient bool) error {
	eth := &layers.Ethernet{SrcMAC: clientMAC, DstMAC: routerMAC, EthernetType: layers.EthernetTypeIPv4}
	if !fromClient {
		eth.SrcMAC, eth.DstMAC = routerMAC, clientMAC
	}
	ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	switch l := l4.(type) {
	case *layers.UDP:
		ip.Protocol = layers.IPProtocolUDP
		_ = l.SetNetworkLayerForChecksum(ip)
	case *layers.TCP:
		ip.Protocol = layers.IPProtocolTCP
		_ = l.SetNetworkLayerForChecksum(ip)
	}
	if err := gopacket.SerializeLayers(g.buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, l4, gopacket.Payload(payload)); err != nil {
		return err
	}
	b := g.buf.Bytes()
	g.ts = g.ts.Add(g.cfg.Gap)
	g.truth.Frames++
	return g.w.WritePacket(gopacket.CaptureInfo{Timestamp: g.ts, CaptureLength: len(b), Length: len(b)}, b)
}

func (g *gen) udp(src, dst netip.Addr, sport, dport uint16, payload []byte) error {
	return g.frame(src, dst, &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}, payload, true)
}

// tcp writes a whole short connection: handshake, the client's data, the
// server's reply (or a bare ACK) and a client RST.
func (g *gen) tcp(c, s netip.Addr, sport, dport uint16, req, resp []byte) error {
	cs, ss := g.rng.Uint32(), g.rng.Uint32()
	seg := func(fromClient bool, seq, ack uint32, flags string, data []byte) error {
		t := &layers.TCP{Seq: seq, Ack: ack, Window: 64240, SYN: strings.Contains(flags, "S"), ACK: strings.Contains(flags, "A"),
			PSH: strings.Contains(flags, "P"), RST: strings.Contains(flags, "R")}
		src, dst := c, s
		t.SrcPort, t.DstPort = layers.TCPPort(sport), layers.TCPPort(dport)
		if !fromClient {
			src, dst = s, c
			t.SrcPort, t.DstPort = layers.TCPPort(dport), layers.TCPPort(sport)
		}
		return g.frame(src, dst, t, data, fromClient)
	}
	steps := []func() error{
		func() error { return seg(true, cs, 0, "S", nil) },
		func() error { return seg(false, ss, cs+1, "SA", nil) },
		func() error { return seg(true, cs+1, ss+1, "A", nil) },
		func() error { return seg(true, cs+1, ss+1, "PA", req) },
		func() error { return seg(false, ss+1, cs+1+uint32(len(req)), "PA", resp) },
		func() error { return seg(true, cs+1+uint32(len(req)), ss+1+uint32(len(resp)), "RA", nil) },
	}
	for _, st := range steps {
		if err := st(); err != nil {
			return err
		}
	}
	return nil
}

// DNSQuery is a DNS query message for name (type A).
func DNSQuery(name string, id uint16) []byte {
	b := []byte{byte(id >> 8), byte(id), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, l := range strings.Split(name, ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0, 0, 1, 0, 1)
}

// ClientHello is a TLS 1.2 record holding a ClientHello naming sni.
func ClientHello(sni string) []byte {
	name := []byte(sni)
	list := append([]byte{0, byte(len(name) >> 8), byte(len(name))}, name...)
	sn := append([]byte{byte(len(list) >> 8), byte(len(list))}, list...)
	ext := append([]byte{0, 0, byte(len(sn) >> 8), byte(len(sn))}, sn...)
	body := []byte{3, 3}
	body = append(body, make([]byte, 32)...)
	body = append(body, 0)                         // session id
	body = append(body, 0, 4, 0x13, 1, 0xc0, 0x2f) // cipher suites
	body = append(body, 1, 0)                      // compression
	body = append(body, byte(len(ext)>>8), byte(len(ext)))
	body = append(body, ext...)
	hs := append([]byte{1, 0, byte(len(body) >> 8), byte(len(body))}, body...)
	return append([]byte{0x16, 3, 1, byte(len(hs) >> 8), byte(len(hs))}, hs...)
}
