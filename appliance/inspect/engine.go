package inspect

import (
	"net"
	"net/netip"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/mimamori/mimamori/appliance/defs"
	"github.com/mimamori/mimamori/events"
)

// Defaults for the zero values of Config.
const (
	DefaultFoldWindow   = time.Minute
	DefaultMaxFlows     = 65536
	DefaultFlowIdle     = 2 * time.Minute
	DefaultMaxStreamBuf = 16 << 10 // bytes held per direction while a header is incomplete
	DefaultMaxOutOfOrd  = 64 << 10 // bytes of out-of-order segments held per direction
	DefaultMaxBodyHash  = 64 << 20 // response bodies longer than this are not hashed
)

// Config configures an Engine.
type Config struct {
	// Zones classifies both sides of a packet; nil means everything is WAN
	// (so nothing is inspected).
	Zones *Zones
	// Defs returns the definitions in use; it is called for every packet.
	Defs func() *defs.Set
	// Emit receives each alert once its fold window closed (or at Flush).
	Emit func(*events.Alert)
	// FoldWindow: repeats of one detection (kind, indicator, source,
	// destination) within it become one alert with a count.
	FoldWindow time.Duration
	// MaxFlows bounds the TCP flow table; FlowIdle expires quiet flows.
	MaxFlows int
	FlowIdle time.Duration
	// MaxStreamBuf bounds the bytes buffered per direction while a request
	// or response header is incomplete; MaxOutOfOrder the out-of-order
	// segments held per direction; MaxBodyHash the body length hashed.
	MaxStreamBuf  int
	MaxOutOfOrder int
	MaxBodyHash   int64
	// Client, when set, is told of every address in a zone other than WAN
	// (the client devices behind the appliance, counted for R-02).
	Client func(a netip.Addr, ts time.Time)
	// NewID makes alert ids (default: a KSUID at the detection time).
	NewID func(time.Time) string
}

// Stats counts what an Engine saw.
type Stats struct {
	Packets      uint64 // frames given to Process
	Bytes        uint64 // their lengths on the wire
	Skipped      uint64 // truncated, malformed or non-IP frames
	Unmonitored  uint64 // IP packets within one zone (R-11 "no")
	Inspected    uint64 // IP packets between two zones
	Detections   uint64 // matches before folding
	Alerts       uint64 // alerts emitted (after folding)
	Blocked      uint64 // packets whose verdict was block
	FlowsEvicted uint64 // flows dropped because the table was full
}

// Engine inspects frames. It is not safe for concurrent use.
type Engine struct {
	cfg Config

	parser  *gopacket.DecodingLayerParser
	eth     layers.Ethernet
	dot1q   layers.Dot1Q
	ip4     layers.IPv4
	ip6     layers.IPv6
	ext     [4]ipv6Ext
	tcp     layers.TCP
	udp     layers.UDP
	icmp4   layers.ICMPv4
	icmp6   layers.ICMPv6
	payload gopacket.Payload
	decoded []gopacket.LayerType

	flows     map[flowKey]*flow
	free      []*flow // flows to reuse (see freeFlow)
	scans     map[scanKey]*scan
	lastSweep time.Time
	// lastSweepNS is lastSweep in Unix nanoseconds, compared on every
	// packet.
	lastSweepNS   int64
	lastScanSweep time.Time
	fold          *folder
	stats         Stats

	// Per packet: the packet being processed.
	pkt pktInfo
	// name holds a DNS or SNI name while it is looked up.
	name [256]byte
}

// pktInfo is the decoded summary of the current packet.
type pktInfo struct {
	ts             time.Time
	src, dst       netip.Addr
	srcMAC, dstMAC net.HardwareAddr
	sport, dport   uint16
	proto          string
	zones          string
	vlan           uint16
	block          bool
	set            *defs.Set
}

// New returns an Engine.
func New(cfg Config) *Engine {
	if cfg.FoldWindow <= 0 {
		cfg.FoldWindow = DefaultFoldWindow
	}
	if cfg.MaxFlows <= 0 {
		cfg.MaxFlows = DefaultMaxFlows
	}
	if cfg.FlowIdle <= 0 {
		cfg.FlowIdle = DefaultFlowIdle
	}
	if cfg.MaxStreamBuf <= 0 {
		cfg.MaxStreamBuf = DefaultMaxStreamBuf
	}
	if cfg.MaxOutOfOrder <= 0 {
		cfg.MaxOutOfOrder = DefaultMaxOutOfOrd
	}
	if cfg.MaxBodyHash <= 0 {
		cfg.MaxBodyHash = DefaultMaxBodyHash
	}
	if cfg.Defs == nil {
		cfg.Defs = func() *defs.Set { return nil }
	}
	if cfg.Emit == nil {
		cfg.Emit = func(*events.Alert) {}
	}
	e := &Engine{cfg: cfg, flows: map[flowKey]*flow{}, scans: map[scanKey]*scan{}}
	e.ext = [4]ipv6Ext{
		{proto: layers.IPProtocolIPv6HopByHop}, {proto: layers.IPProtocolIPv6Routing},
		{proto: layers.IPProtocolIPv6Fragment}, {proto: layers.IPProtocolIPv6Destination},
	}
	e.parser = gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet)
	e.parser.IgnoreUnsupported = true
	// Layer types index a slice instead of a map: the parser's lookup of
	// the next decoder is on every layer of every packet.
	e.parser.SetDecodingLayerContainer(gopacket.DecodingLayerSparse(nil))
	for _, l := range []gopacket.DecodingLayer{&e.eth, &e.dot1q, &e.ip4, &e.ip6, &e.ext[0], &e.ext[1], &e.ext[2], &e.ext[3],
		&e.tcp, &e.udp, &e.icmp4, &e.icmp6, &e.payload} {
		e.parser.AddDecodingLayer(l)
	}
	e.decoded = make([]gopacket.LayerType, 0, 12)
	e.fold = newFolder(cfg.FoldWindow, cfg.NewID, func(a *events.Alert) {
		e.stats.Alerts++
		cfg.Emit(a)
	})
	return e
}

// Stats returns the counters so far.
func (e *Engine) Stats() Stats { return e.stats }

// Clients is unused by the engine; see the agent's client tracker.

// Process inspects one frame captured at ts whose length on the wire was
// wireLen (0 means len(data)). It returns true when a matched definition
// blocks: an inline data path drops the frame. data is not kept.
func (e *Engine) Process(data []byte, ts time.Time, wireLen int) (block bool) {
	e.stats.Packets++
	if wireLen <= 0 {
		wireLen = len(data)
	}
	e.stats.Bytes += uint64(wireLen)
	e.fold.advance(ts)
	if now := ts.UnixNano(); now-e.lastSweepNS >= int64(time.Second) || now < e.lastSweepNS {
		e.lastSweepNS = now
		e.sweep(ts)
	}

	err := e.parser.DecodeLayers(data, &e.decoded)
	if err != nil && len(e.decoded) == 0 {
		e.stats.Skipped++
		return false
	}
	p := &e.pkt
	*p = pktInfo{ts: ts}
	var haveIP, haveTCP, haveUDP, frag bool
	var payload []byte
	for _, lt := range e.decoded {
		switch lt {
		case layers.LayerTypeEthernet:
			p.srcMAC, p.dstMAC = e.eth.SrcMAC, e.eth.DstMAC
		case layers.LayerTypeDot1Q:
			if p.vlan == 0 {
				p.vlan = e.dot1q.VLANIdentifier
			}
		case layers.LayerTypeIPv4:
			haveIP = true
			p.src, _ = netip.AddrFromSlice(e.ip4.SrcIP)
			p.dst, _ = netip.AddrFromSlice(e.ip4.DstIP)
			p.proto = "ipv4"
			frag = e.ip4.FragOffset != 0
		case layers.LayerTypeIPv6:
			haveIP = true
			p.src, _ = netip.AddrFromSlice(e.ip6.SrcIP)
			p.dst, _ = netip.AddrFromSlice(e.ip6.DstIP)
			p.proto = "ipv6"
		case layers.LayerTypeIPv6Fragment:
			frag = frag || e.ext[2].fragOffset != 0
		case layers.LayerTypeTCP:
			haveTCP = true
			p.sport, p.dport, p.proto = uint16(e.tcp.SrcPort), uint16(e.tcp.DstPort), "tcp"
			payload = e.tcp.Payload
		case layers.LayerTypeUDP:
			haveUDP = true
			p.sport, p.dport, p.proto = uint16(e.udp.SrcPort), uint16(e.udp.DstPort), "udp"
			payload = e.udp.Payload
		case layers.LayerTypeICMPv4:
			p.proto = "icmp"
		case layers.LayerTypeICMPv6:
			p.proto = "icmpv6"
		}
	}
	if !haveIP || !p.src.IsValid() || !p.dst.IsValid() {
		e.stats.Skipped++
		return false
	}
	if err != nil && !haveTCP && !haveUDP && p.proto != "icmp" && p.proto != "icmpv6" && !frag {
		// The IP header decoded but what it carries is broken: still
		// inspect the addresses, but count the frame as malformed.
		e.stats.Skipped++
	}
	src, dst := e.cfg.Zones.Of(p.src, p.vlan), e.cfg.Zones.Of(p.dst, p.vlan)
	if e.cfg.Client != nil {
		if src != events.ZoneWAN {
			e.cfg.Client(p.src, ts)
		}
		if dst != events.ZoneWAN {
			e.cfg.Client(p.dst, ts)
		}
	}
	if !Monitored(src, dst) {
		e.stats.Unmonitored++
		return false
	}
	e.stats.Inspected++
	p.zones = zonePair(src, dst)
	p.set = e.cfg.Defs()
	set := p.set
	if set.HasIPs() {
		if m, ok := set.MatchIP(p.dst); ok {
			e.detect(events.KindIP, m, "", "", "", "")
		} else if m, ok := set.MatchIP(p.src); ok {
			e.detect(events.KindIP, m, "", "", "", "")
		}
	}
	switch {
	case frag:
		// Only the first fragment carries the transport header.
	case haveTCP:
		e.handleTCP(payload)
	case haveUDP:
		e.handleUDP(payload)
	}
	if p.block {
		e.stats.Blocked++
	}
	return p.block
}

// Flush emits every alert still folding (at the end of a capture or on
// shutdown) and forgets the flows.
func (e *Engine) Flush() {
	e.fold.flush()
}

// Tick lets a live capture close fold windows while no packet arrives.
func (e *Engine) Tick(now time.Time) { e.fold.advance(now) }

// detect records one match in the current packet.
func (e *Engine) detect(kind string, m defs.Meta, url, domain, fileName, sha string) {
	p := &e.pkt
	e.stats.Detections++
	action := events.ActionDetected
	if m.Block {
		action = events.ActionBlocked
		p.block = true
	}
	e.fold.add(foldKey{kind: kind, indicator: m.Indicator, src: p.src, dst: p.dst, zones: p.zones}, func() *events.Alert {
		return &events.Alert{
			DetectedAt: p.ts.UTC(), Severity: m.Severity, Kind: kind, Indicator: m.Indicator,
			Label: m.Label, Action: action,
			SrcIP: p.src.String(), SrcPort: int(p.sport), SrcMAC: macString(p.srcMAC),
			DstIP: p.dst.String(), DstPort: int(p.dport), DstMAC: macString(p.dstMAC),
			Protocol: p.proto, Zones: p.zones, URL: url, Domain: domain,
			FileName: fileName, FileSHA256: sha, DefinitionsVersion: p.set.VersionString(),
		}
	}, p.ts)
}

func macString(m net.HardwareAddr) string {
	if len(m) != 6 {
		return ""
	}
	return m.String()
}

func (e *Engine) handleUDP(payload []byte) {
	p := &e.pkt
	if (p.dport == 53 || p.dport == 5353) && len(payload) >= 12 {
		e.dnsMessage(payload)
	}
}

// dnsMessage matches the question names of a DNS query.
func (e *Engine) dnsMessage(msg []byte) {
	if msg[2]&0x80 != 0 { // a response: the query was already seen
		return
	}
	name, ok := appendDNSQuestion(e.name[:0], msg)
	if !ok {
		return
	}
	if m, ok := e.pkt.set.MatchDomainBytes(name); ok {
		e.detect(events.KindDomain, m, "", string(name), "", "")
	}
}

// ipv6Ext is one IPv6 extension header kind as a DecodingLayer. One
// instance per kind lets the engine know which header it is, so a
// non-first fragment is not mistaken for a transport header.
type ipv6Ext struct {
	layers.BaseLayer
	proto      layers.IPProtocol
	next       layers.IPProtocol
	fragOffset uint16
}

func (x *ipv6Ext) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 8 {
		df.SetTruncated()
		return errTruncated
	}
	n := 8
	if x.proto != layers.IPProtocolIPv6Fragment {
		n = int(data[1])*8 + 8
	}
	if len(data) < n {
		df.SetTruncated()
		return errTruncated
	}
	x.next = layers.IPProtocol(data[0])
	x.fragOffset = 0
	if x.proto == layers.IPProtocolIPv6Fragment {
		x.fragOffset = uint16(data[2])<<5 | uint16(data[3])>>3
	}
	x.Contents, x.Payload = data[:n], data[n:]
	return nil
}

func (x *ipv6Ext) CanDecode() gopacket.LayerClass { return x.proto.LayerType() }

func (x *ipv6Ext) NextLayerType() gopacket.LayerType {
	if x.proto == layers.IPProtocolIPv6Fragment && x.fragOffset != 0 {
		return gopacket.LayerTypeZero
	}
	return x.next.LayerType()
}

func (x *ipv6Ext) LayerType() gopacket.LayerType { return x.proto.LayerType() }

type constErr string

func (e constErr) Error() string { return string(e) }

const errTruncated = constErr("truncated")
