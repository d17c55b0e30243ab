package inspect

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/mimamori/mimamori/appliance/defs"
	"github.com/mimamori/mimamori/events"
)

const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$` + `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
	t0   = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
)

// pkt describes one frame for build.
type pkt struct {
	src, dst     string
	sport, dport int
	vlan         uint16
	udp          bool
	flags        string // S, A, F, R, P
	seq          uint32
	payload      []byte
	v6ext        bool // hop-by-hop and destination options before TCP
}

func build(t testing.TB, p pkt) []byte {
	t.Helper()
	src, dst := net.ParseIP(p.src), net.ParseIP(p.dst)
	eth := &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv4}
	ls := []gopacket.SerializableLayer{eth}
	etype := layers.EthernetTypeIPv4
	if src.To4() == nil {
		etype = layers.EthernetTypeIPv6
	}
	if p.vlan != 0 {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: p.vlan, Type: etype})
	} else {
		eth.EthernetType = etype
	}
	proto := layers.IPProtocolTCP
	if p.udp {
		proto = layers.IPProtocolUDP
	}
	var netl gopacket.NetworkLayer
	if etype == layers.EthernetTypeIPv4 {
		ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: src.To4(), DstIP: dst.To4(), Protocol: proto}
		ls, netl = append(ls, ip), ip
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: src, DstIP: dst, NextHeader: proto}
		ls, netl = append(ls, ip), ip
		if p.v6ext {
			ip.NextHeader = layers.IPProtocolIPv6HopByHop
			// Hop-by-hop (PadN) then destination options (PadN), raw.
			ext := []byte{byte(layers.IPProtocolIPv6Destination), 0, 1, 4, 0, 0, 0, 0,
				byte(proto), 0, 1, 4, 0, 0, 0, 0}
			ls = append(ls, gopacket.Payload(ext))
		}
	}
	if p.udp {
		u := &layers.UDP{SrcPort: layers.UDPPort(p.sport), DstPort: layers.UDPPort(p.dport)}
		u.SetNetworkLayerForChecksum(netl)
		ls = append(ls, u)
	} else {
		tc := &layers.TCP{SrcPort: layers.TCPPort(p.sport), DstPort: layers.TCPPort(p.dport), Seq: p.seq, Window: 1000,
			SYN: strings.Contains(p.flags, "S"), ACK: strings.Contains(p.flags, "A"), FIN: strings.Contains(p.flags, "F"),
			RST: strings.Contains(p.flags, "R"), PSH: strings.Contains(p.flags, "P")}
		tc.SetNetworkLayerForChecksum(netl)
		if p.v6ext {
			// The serialized TCP header follows our raw extension bytes.
			tc.SetNetworkLayerForChecksum(netl)
		}
		ls = append(ls, tc)
	}
	ls = append(ls, gopacket.Payload(p.payload))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: !p.v6ext}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func dnsQuery(name string) []byte {
	b := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, l := range strings.Split(name, ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0, 0, 1, 0, 1)
}

func clientHello(sni string) []byte {
	var ext []byte
	name := []byte(sni)
	list := append([]byte{0}, byte(len(name)>>8), byte(len(name)))
	list = append(list, name...)
	sn := append([]byte{byte(len(list) >> 8), byte(len(list))}, list...)
	ext = append(ext, 0, 0, byte(len(sn)>>8), byte(len(sn)))
	ext = append(ext, sn...)
	body := []byte{3, 3}
	body = append(body, make([]byte, 32)...)
	body = append(body, 0)             // session id
	body = append(body, 0, 2, 0x13, 1) // one cipher suite
	body = append(body, 1, 0)          // compression
	body = append(body, byte(len(ext)>>8), byte(len(ext)))
	body = append(body, ext...)
	hs := append([]byte{1, 0, byte(len(body) >> 8), byte(len(body))}, body...)
	return append([]byte{0x16, 3, 1, byte(len(hs) >> 8), byte(len(hs))}, hs...)
}

func testSet(t testing.TB) *defs.Set {
	t.Helper()
	list := func(kind, s string) []defs.Entry {
		e, err := defs.ParseList(kind, strings.NewReader(s))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	sum := sha256.Sum256([]byte(eicar))
	set, err := defs.Compile(7, t0, defs.Lists{
		defs.ListDomains: list(defs.ListDomains, "evil-c2.example 3 c2 block\nphish.example. 2 phishing # comment\n"),
		defs.ListIPs:     list(defs.ListIPs, "198.51.100.23 3 botnet\n2001:db8:bad::/48 2 bad-net\n"),
		defs.ListURLs:    list(defs.ListURLs, "HTTP://Docs.Malware.example:8080/a/../gate.php?id=1 3 dropper\n"),
		defs.ListHashes:  list(defs.ListHashes, hex.EncodeToString(sum[:])+" 3 eicar\n"),
	}, defs.DefaultPortScan)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

type rig struct {
	t      testing.TB
	e      *Engine
	alerts []*events.Alert
	ts     time.Time
}

func newRig(t testing.TB, zones ...string) *rig {
	if len(zones) == 0 {
		zones = []string{"lan=192.168.1.0/24,fd00:1::/64", "ssid1=192.168.10.0/24", "ssid2=192.168.20.0/24"}
	}
	r := &rig{t: t, ts: t0}
	set := testSet(t)
	r.e = New(Config{Zones: MustZones(zones...), Defs: func() *defs.Set { return set }, Emit: func(a *events.Alert) { r.alerts = append(r.alerts, a) }})
	return r
}

func (r *rig) send(ps ...pkt) {
	for _, p := range ps {
		r.ts = r.ts.Add(time.Millisecond)
		r.e.Process(build(r.t, p), r.ts, 0)
	}
}

func (r *rig) done() []*events.Alert {
	r.e.Flush()
	return r.alerts
}

func kinds(as []*events.Alert) string {
	var s []string
	for _, a := range as {
		s = append(s, fmt.Sprintf("%s:%s:%s:%s:%d", a.Kind, a.Indicator, a.Zones, a.FileName, a.Count))
	}
	return strings.Join(s, " ")
}

// tcpStream builds the frames of one client→server stream split at the
// given offsets, after a handshake.
func tcpStream(src, dst string, sport, dport int, data []byte, cuts ...int) []pkt {
	out := []pkt{{src: src, dst: dst, sport: sport, dport: dport, flags: "S", seq: 1000}}
	prev := 0
	for _, c := range append(cuts, len(data)) {
		out = append(out, pkt{src: src, dst: dst, sport: sport, dport: dport, flags: "PA", seq: uint32(1001 + prev), payload: data[prev:c]})
		prev = c
	}
	return out
}

func TestDNSOverUDP(t *testing.T) {
	r := newRig(t)
	r.send(pkt{src: "192.168.1.10", dst: "192.0.2.53", sport: 5000, dport: 53, udp: true, payload: dnsQuery("WWW.Evil-C2.Example")})
	got := r.done()
	if len(got) != 1 || got[0].Kind != events.KindDomain || got[0].Indicator != "evil-c2.example" ||
		got[0].Domain != "www.evil-c2.example" || got[0].Zones != "LAN>WAN" || got[0].Action != events.ActionBlocked ||
		got[0].SrcMAC != macA.String() || got[0].Protocol != "udp" {
		t.Fatalf("got %+v", got)
	}
	if err := got[0].ValidateFromDevice(); err != nil {
		t.Fatal(err)
	}
}

func TestDNSOverTCPSplitMidLength(t *testing.T) {
	r := newRig(t)
	q := dnsQuery("login.phish.example")
	msg := append([]byte{byte(len(q) >> 8), byte(len(q))}, q...)
	r.send(tcpStream("192.168.1.10", "192.0.2.53", 5001, 53, msg, 1, 9)...)
	if got := kinds(r.done()); got != "domain:phish.example:LAN>WAN::1" {
		t.Fatalf("got %s", got)
	}
}

func TestLookalikeDomainsDoNotMatch(t *testing.T) {
	r := newRig(t)
	for i, n := range []string{"notevil-c2.example", "evil-c2.example.attacker.test", "evil-c2.exampl", "xphish.example"} {
		r.send(pkt{src: "192.168.1.10", dst: "192.0.2.53", sport: 6000 + i, dport: 53, udp: true, payload: dnsQuery(n)})
	}
	if got := r.done(); len(got) != 0 {
		t.Fatalf("lookalikes matched: %s", kinds(got))
	}
}

func TestHTTPOnNonStandardPortSplitMidHeader(t *testing.T) {
	r := newRig(t)
	req := []byte("GET /x/../gate.php?id=1 HTTP/1.1\r\nHost: DOCS.malware.example:8080\r\nUser-Agent: t\r\n\r\n")
	r.send(tcpStream("192.168.10.5", "203.0.113.80", 40000, 8080, req, 5, 30, 47)...)
	got := r.done()
	if kinds(got) != "url:http://docs.malware.example:8080/gate.php?id=1:SSID1>WAN::1" {
		t.Fatalf("got %s", kinds(got))
	}
	if got[0].URL != "http://docs.malware.example:8080/gate.php?id=1" || got[0].Domain != "docs.malware.example" {
		t.Fatalf("evidence %+v", got[0])
	}
}

func TestTLSSNIOnNonStandardPortSplit(t *testing.T) {
	r := newRig(t)
	ch := clientHello("cdn.evil-c2.example")
	r.send(tcpStream("192.168.20.7", "203.0.113.5", 40001, 8443, ch, 3, 50)...)
	if got := kinds(r.done()); got != "domain:evil-c2.example:SSID2>WAN::1" {
		t.Fatalf("got %s", got)
	}
}

func TestIPv6WithExtensionHeaders(t *testing.T) {
	r := newRig(t)
	req := []byte("GET / HTTP/1.1\r\nHost: phish.example\r\n\r\n")
	var ps []pkt
	for _, p := range tcpStream("fd00:1::10", "2001:db8:99::1", 40002, 80, req, 10) {
		p.v6ext = true
		ps = append(ps, p)
	}
	r.send(ps...)
	// And a listed v6 prefix, in either direction.
	r.send(pkt{src: "2001:db8:bad::9", dst: "fd00:1::10", sport: 443, dport: 50000, flags: "A", seq: 5, payload: []byte("x")})
	got := kinds(r.done())
	if got != "domain:phish.example:LAN>WAN::1 ip:2001:db8:bad::/48:WAN>LAN::1" {
		t.Fatalf("got %s", got)
	}
}

func TestVLANTaggedFramesAndZones(t *testing.T) {
	// Two zones reuse 10.0.0.0/24 on different VLANs.
	r := newRig(t, "lan=10.0.0.0/24,vlan:10", "ssid1=10.0.0.0/24,vlan:20")
	r.send(pkt{src: "10.0.0.5", dst: "198.51.100.23", sport: 1, dport: 2, udp: true, vlan: 20, payload: []byte("hi")})
	r.send(pkt{src: "10.0.0.5", dst: "198.51.100.23", sport: 1, dport: 2, udp: true, vlan: 10, payload: []byte("hi")})
	got := kinds(r.done())
	if got != "ip:198.51.100.23:SSID1>WAN::1 ip:198.51.100.23:LAN>WAN::1" {
		t.Fatalf("got %s", got)
	}
}

func TestEICARSplitAcrossSegments(t *testing.T) {
	r := newRig(t)
	req := []byte("GET /files/invoice.com HTTP/1.1\r\nHost: downloads.example\r\n\r\n")
	r.send(tcpStream("192.168.1.20", "203.0.113.7", 40003, 80, req)...)
	resp := []byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"eicar.com\"\r\nContent-Length: %d\r\n\r\n%s", len(eicar), eicar))
	hdrEnd := bytes.Index(resp, []byte("\r\n\r\n")) + 4
	var ps []pkt
	for _, p := range tcpStream("203.0.113.7", "192.168.1.20", 80, 40003, resp, 20, hdrEnd+10, hdrEnd+30) {
		ps = append(ps, p)
	}
	// Deliver the last two segments out of order.
	ps[3], ps[4] = ps[4], ps[3]
	r.send(ps...)
	got := r.done()
	if len(got) != 1 || got[0].Kind != events.KindFile || got[0].FileName != "eicar.com" ||
		got[0].URL != "http://downloads.example/files/invoice.com" || got[0].Zones != "WAN>LAN" {
		t.Fatalf("got %s %+v", kinds(got), got)
	}
	sum := sha256.Sum256([]byte(eicar))
	if got[0].FileSHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("hash %s", got[0].FileSHA256)
	}
}

func TestChunkedBodyNamedByPath(t *testing.T) {
	r := newRig(t)
	r.send(tcpStream("192.168.1.20", "203.0.113.7", 40004, 8000, []byte("GET /dl/test.com?x=1 HTTP/1.1\r\nHost: h.example\r\n\r\n"))...)
	body := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
		fmt.Sprintf("%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n", 10, eicar[:10], len(eicar)-10, eicar[10:])
	r.send(tcpStream("203.0.113.7", "192.168.1.20", 8000, 40004, []byte(body), 50, 60)...)
	if got := r.done(); len(got) != 1 || got[0].FileName != "test.com" {
		t.Fatalf("got %s", kinds(got))
	}
}

func TestGarbageFramesAreCountedAndSkipped(t *testing.T) {
	r := newRig(t)
	good := build(t, pkt{src: "192.168.1.10", dst: "192.0.2.53", sport: 5000, dport: 53, udp: true, payload: dnsQuery("evil-c2.example")})
	frames := [][]byte{nil, {1, 2, 3}, good[:20], bytes.Repeat([]byte{0xff}, 60)}
	arp := make([]byte, 42)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	frames = append(frames, arp)
	for i, f := range frames {
		r.e.Process(f, t0.Add(time.Duration(i)), 0)
	}
	r.e.Process(good, t0.Add(time.Second), 0)
	st := r.e.Stats()
	if st.Skipped != uint64(len(frames)) || st.Packets != uint64(len(frames)+1) {
		t.Fatalf("stats %+v", st)
	}
	if len(r.done()) != 1 {
		t.Fatal("the good frame after garbage was not inspected")
	}
}

func TestMonitoredPaths16Cells(t *testing.T) {
	addr := map[string]string{events.ZoneWAN: "198.51.100.50", events.ZoneLAN: "192.168.1.10",
		events.ZoneSSID1: "192.168.10.10", events.ZoneSSID2: "192.168.20.10"}
	want := map[[2]string]bool{}
	zs := []string{events.ZoneWAN, events.ZoneLAN, events.ZoneSSID1, events.ZoneSSID2}
	// R-11 as written in the requirements, row = sender, column = receiver.
	table := [4][4]bool{{false, true, true, true}, {true, false, true, true}, {true, true, false, true}, {true, true, true, false}}
	for i, from := range zs {
		for j, to := range zs {
			want[[2]string{from, to}] = table[i][j]
		}
	}
	for cell, inspected := range want {
		t.Run(cell[0]+">"+cell[1], func(t *testing.T) {
			r := newRig(t)
			src, dst := addr[cell[0]], addr[cell[1]]
			if cell[0] == cell[1] {
				dst = strings.TrimSuffix(dst, "10") + "11"
				if cell[0] == events.ZoneWAN {
					dst = "203.0.113.99"
				}
			}
			// A listed domain in a DNS query on this path.
			r.send(pkt{src: src, dst: dst, sport: 5353, dport: 53, udp: true, payload: dnsQuery("evil-c2.example")})
			got := r.done()
			if inspected != (len(got) == 1) {
				t.Fatalf("inspected=%v, alerts %s", inspected, kinds(got))
			}
			if inspected && got[0].Zones != cell[0]+">"+cell[1] {
				t.Fatalf("zones %s", got[0].Zones)
			}
			st := r.e.Stats()
			if inspected != (st.Inspected == 1) || !inspected != (st.Unmonitored == 1) {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestPortScanDefaults(t *testing.T) {
	r := newRig(t)
	for p := 1; p < 20; p++ {
		r.send(pkt{src: "203.0.113.201", dst: "192.168.1.10", sport: 40000, dport: p, flags: "S"})
	}
	if len(r.alerts) != 0 || r.e.fold.open != nil && len(r.e.fold.open) != 0 {
		t.Fatal("19 ports already alerted")
	}
	r.send(pkt{src: "203.0.113.201", dst: "192.168.1.10", sport: 40000, dport: 20, flags: "S"})
	if got := kinds(r.done()); got != "behaviour:port-scan:WAN>LAN::1" {
		t.Fatalf("got %s", got)
	}
}

func TestRepeatsFoldIntoCount(t *testing.T) {
	r := newRig(t)
	q := pkt{src: "192.168.1.10", dst: "192.0.2.53", sport: 5000, dport: 53, udp: true, payload: dnsQuery("evil-c2.example")}
	for i := 0; i < 5; i++ {
		r.send(q)
	}
	// After the window a new alert opens.
	r.ts = r.ts.Add(2 * DefaultFoldWindow)
	r.send(q)
	if got := kinds(r.done()); got != "domain:evil-c2.example:LAN>WAN::5 domain:evil-c2.example:LAN>WAN::1" {
		t.Fatalf("got %s", got)
	}
}

func FuzzEngine(f *testing.F) {
	f.Add(build(f, pkt{src: "192.168.1.10", dst: "192.0.2.53", sport: 5000, dport: 53, udp: true, payload: dnsQuery("evil-c2.example")}))
	f.Add(build(f, pkt{src: "fd00:1::10", dst: "2001:db8::1", sport: 1, dport: 80, flags: "PA", payload: []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), v6ext: true}))
	f.Add(build(f, pkt{src: "192.168.1.10", dst: "192.0.2.53", sport: 5000, dport: 443, flags: "PA", vlan: 5, payload: clientHello("x.example")}))
	f.Add(build(f, pkt{src: "203.0.113.7", dst: "192.168.1.20", sport: 80, dport: 5, flags: "PA", payload: []byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")}))
	set := testSet(f)
	e := New(Config{Zones: MustZones("lan=192.168.1.0/24,fd00:1::/64"), Defs: func() *defs.Set { return set }})
	f.Fuzz(func(t *testing.T, frame []byte) {
		e.Process(frame, t0, 0)
		// The same bytes as a second segment of whatever flow they open.
		e.Process(frame, t0.Add(time.Millisecond), 0)
	})
}

func FuzzClientHelloSNI(f *testing.F) {
	f.Add(clientHello("a.example")[9:])
	f.Fuzz(func(t *testing.T, b []byte) { clientHelloSNI(b) })
}
