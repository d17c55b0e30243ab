package inspect

import (
	"hash"
	"net/netip"
	"time"

	"github.com/mimamori/mimamori/events"
)

// flowKey names a TCP connection independently of direction: a is the
// smaller endpoint.
type flowKey struct {
	a, b   netip.Addr
	pa, pb uint16
}

// flow is one TCP connection: a stream per direction.
type flow struct {
	last time.Time
	dirs [2]stream
	// reqs are the request targets seen from the client, oldest first, so
	// a response can be named by the path that asked for it.
	reqs []request
}

type request struct {
	host   string // the Host header (or the server address)
	port   uint16 // the server port
	target string // the request target
	path   string // target without the query
}

// segment is an out-of-order piece held until the gap before it fills.
type segment struct {
	seq  uint32
	data []byte
}

// stream is one direction of a flow: in-order reassembly feeding an
// application parser.
type stream struct {
	init bool
	next uint32
	ooo  []segment
	oooN int
	fin  bool
	app  appParser
	buf  []byte // bytes the parser has not consumed yet (bounded)
	done bool   // nothing more to learn from this direction

	// The parsers app points to: one stream uses at most one, and they
	// live here so that a new flow (taken from the engine's free list)
	// allocates nothing.
	tls  tlsParser
	req  httpRequestParser
	resp httpResponseParser
}

// maxFreeFlows bounds the engine's free list of flows.
const maxFreeFlows = 1024

// newFlow takes a flow from the free list or makes one.
func (e *Engine) newFlow() *flow {
	if n := len(e.free); n > 0 {
		f := e.free[n-1]
		e.free[n-1] = nil
		e.free = e.free[:n-1]
		return f
	}
	return &flow{}
}

// freeFlow resets a flow that left the table and keeps it for reuse,
// with its small buffers.
func (e *Engine) freeFlow(f *flow) {
	if len(e.free) >= maxFreeFlows {
		return
	}
	reqs := f.reqs[:0]
	clear(f.reqs[:cap(f.reqs)])
	if cap(reqs) > maxFlowRequests {
		reqs = nil
	}
	var keep [2]struct {
		hs, buf []byte
		h       hash.Hash
	}
	for i := range f.dirs {
		d := &f.dirs[i]
		if cap(d.tls.hs) <= 4096 {
			keep[i].hs = d.tls.hs[:0]
		}
		if cap(d.buf) <= 4096 {
			keep[i].buf = d.buf[:0]
		}
		keep[i].h = d.resp.h
	}
	*f = flow{reqs: reqs}
	for i := range f.dirs {
		d := &f.dirs[i]
		d.tls.hs, d.buf, d.resp.h = keep[i].hs, keep[i].buf, keep[i].h
	}
	e.free = append(e.free, f)
}

// appParser consumes a stream's bytes; it returns how many it consumed,
// and whether it is finished with the stream.
type appParser interface {
	feed(e *Engine, f *flow, data []byte, fin bool) (consumed int, done bool)
}

func seqLess(a, b uint32) bool { return int32(a-b) < 0 }

func (e *Engine) handleTCP(payload []byte) {
	p := &e.pkt
	t := &e.tcp
	if t.SYN && !t.ACK {
		e.portScan(p.src, p.dst, p.dport)
	}
	if len(payload) == 0 && !t.SYN && !t.FIN && !t.RST {
		return // a pure ACK: nothing to reassemble
	}
	k, dir := flowKey{a: p.src, b: p.dst, pa: p.sport, pb: p.dport}, 0
	if p.dst.Less(p.src) || (p.dst == p.src && p.dport < p.sport) {
		k, dir = flowKey{a: p.dst, b: p.src, pa: p.dport, pb: p.sport}, 1
	}
	f := e.flows[k]
	if f == nil {
		if t.RST || (t.FIN && len(payload) == 0) {
			return
		}
		if len(e.flows) >= e.cfg.MaxFlows {
			e.evictOne()
		}
		f = e.newFlow()
		e.flows[k] = f
	}
	f.last = p.ts
	s := &f.dirs[dir]
	if t.RST {
		e.closeFlow(k, f)
		return
	}
	seq := t.Seq
	if t.SYN {
		s.init, s.next = true, seq+1
		return
	}
	if !s.init {
		s.init, s.next = true, seq // joined mid-stream
	}
	if s.done {
		if t.FIN {
			s.fin = true
			if f.dirs[1-dir].fin || f.dirs[1-dir].done {
				e.closeFlow(k, f)
			}
		}
		return
	}
	e.segment(f, s, seq, payload, t.FIN)
	if s.fin && (f.dirs[1-dir].fin || f.dirs[1-dir].done) && (s.done || s.fin) {
		e.closeFlow(k, f)
	}
}

// segment places one segment in its stream.
func (e *Engine) segment(f *flow, s *stream, seq uint32, data []byte, fin bool) {
	end := seq + uint32(len(data))
	if seqLess(s.next, seq) { // a gap: hold it if there is room
		if s.oooN+len(data) <= e.cfg.MaxOutOfOrder && len(s.ooo) < 64 {
			s.ooo = append(s.ooo, segment{seq: seq, data: append([]byte(nil), data...)})
			s.oooN += len(data)
		}
		return
	}
	if seqLess(seq, s.next) { // overlaps what was delivered: keep only the new part
		if !seqLess(s.next, end) {
			if fin && len(data) == 0 {
				e.deliver(f, s, nil, true)
			}
			return
		}
		data = data[s.next-seq:]
	}
	e.deliver(f, s, data, fin)
	// Pull in held segments that now fit.
	for progress := true; progress && len(s.ooo) > 0 && !s.done; {
		progress = false
		for i := 0; i < len(s.ooo); i++ {
			g := s.ooo[i]
			gend := g.seq + uint32(len(g.data))
			if seqLess(s.next, g.seq) {
				continue
			}
			s.ooo = append(s.ooo[:i], s.ooo[i+1:]...)
			s.oooN -= len(g.data)
			i--
			if seqLess(s.next, gend) {
				e.deliver(f, s, g.data[s.next-g.seq:], false)
				progress = true
			}
		}
	}
}

// deliver hands in-order bytes to the stream's parser, buffering at most
// MaxStreamBuf unconsumed bytes.
func (e *Engine) deliver(f *flow, s *stream, data []byte, fin bool) {
	s.next += uint32(len(data))
	if fin {
		s.next++
		s.fin = true
	}
	if s.done {
		return
	}
	if s.app == nil {
		if len(s.buf) == 0 && len(data) > 0 {
			s.app = s.classify(data, &e.pkt)
		} else if len(s.buf) > 0 {
			s.app = s.classify(s.buf, &e.pkt)
		}
		if s.app == nil {
			if len(s.buf)+len(data) >= 8 || fin {
				s.done = true
				s.buf = nil
				return
			}
			s.buf = append(s.buf, data...)
			return
		}
	}
	in := data
	if len(s.buf) > 0 {
		s.buf = append(s.buf, data...)
		in = s.buf
	}
	n, done := s.app.feed(e, f, in, fin)
	if done {
		s.done, s.buf, s.app = true, nil, nil
		return
	}
	rest := in[n:]
	if len(rest) > e.cfg.MaxStreamBuf {
		// A header larger than we are willing to hold: give up on this
		// direction rather than grow without bound.
		s.done, s.buf, s.app = true, nil, nil
		return
	}
	if len(s.buf) > 0 {
		s.buf = append(s.buf[:0], rest...)
	} else if len(rest) > 0 {
		s.buf = append(make([]byte, 0, len(rest)+512), rest...)
	}
}

// classify recognises an application protocol from the first bytes of a
// direction, on any port. nil means "not enough bytes yet, or unknown".
func (s *stream) classify(b []byte, p *pktInfo) appParser {
	switch {
	case len(b) >= 3 && b[0] == 0x16 && b[1] == 0x03:
		s.tls = tlsParser{hs: s.tls.hs[:0]}
		return &s.tls
	case isHTTPRequestStart(b):
		s.req = httpRequestParser{}
		return &s.req
	case len(b) >= 5 && string(b[:5]) == "HTTP/":
		s.resp = httpResponseParser{h: s.resp.h}
		return &s.resp
	case p.sport == 53 || p.dport == 53:
		return dnsTCPParser{}
	}
	return nil
}

var httpMethods = []string{"GET ", "POST ", "HEAD ", "PUT ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE "}

func isHTTPRequestStart(b []byte) bool {
	for _, m := range httpMethods {
		if len(b) >= len(m) && string(b[:len(m)]) == m {
			return true
		}
	}
	return false
}

func (e *Engine) closeFlow(k flowKey, f *flow) {
	for i := range f.dirs {
		s := &f.dirs[i]
		if !s.done && s.app != nil {
			// A close-delimited response body ends here.
			e.pkt.set = e.cfg.Defs()
			s.app.feed(e, f, s.buf, true)
		}
	}
	delete(e.flows, k)
	e.freeFlow(f)
}

// evictOne drops the least recently used flow (sampled: Go maps iterate in
// random order, so the oldest of a few is close enough and O(1)).
func (e *Engine) evictOne() {
	var oldK flowKey
	var old *flow
	n := 0
	for k, f := range e.flows {
		if old == nil || f.last.Before(old.last) {
			oldK, old = k, f
		}
		if n++; n >= 8 {
			break
		}
	}
	if old != nil {
		delete(e.flows, oldK)
		e.freeFlow(old)
		e.stats.FlowsEvicted++
	}
}

// sweep expires idle flows and finished scan windows.
func (e *Engine) sweep(now time.Time) {
	e.lastSweep = now
	if len(e.flows) > 0 {
		for k, f := range e.flows {
			if now.Sub(f.last) > e.cfg.FlowIdle {
				delete(e.flows, k)
				e.freeFlow(f)
			}
		}
	}
	// Scan windows older than scanForget are dropped every
	// scanSweepEvery only (there can be 65,536 of them); portScan treats
	// one it meets before then as dropped, so the result is the same.
	if now.Sub(e.lastScanSweep) >= scanSweepEvery || now.Before(e.lastScanSweep) {
		e.lastScanSweep = now
		for k, s := range e.scans {
			if now.Sub(s.start) > scanForget {
				delete(e.scans, k)
			}
		}
	}
}

const (
	scanForget     = 2 * time.Minute
	scanSweepEvery = 10 * time.Second
)

// scanKey and scan track the port-scan behaviour rule.
type scanKey struct{ src, dst netip.Addr }

type scan struct {
	start   time.Time
	ports   []uint16
	alerted bool
}

// maxScans bounds the port-scan tracker like MaxFlows bounds flows.
const maxScans = 65536

func (e *Engine) portScan(src, dst netip.Addr, port uint16) {
	set := e.pkt.set
	if set == nil || !set.PortScan.Enabled {
		return
	}
	rule := set.PortScan
	k := scanKey{src, dst}
	s := e.scans[k]
	now := e.pkt.ts
	if s == nil {
		if len(e.scans) >= maxScans {
			return
		}
		s = &scan{start: now, ports: make([]uint16, 0, 4)}
		e.scans[k] = s
	} else if now.Sub(s.start) > scanForget {
		// Due to be swept: as good as new.
		s.start, s.ports, s.alerted = now, s.ports[:0], false
	}
	if now.Sub(s.start) > rule.Window {
		s.start, s.ports, s.alerted = now, s.ports[:0], false
	}
	if s.alerted {
		return
	}
	for _, p := range s.ports {
		if p == port {
			return
		}
	}
	s.ports = append(s.ports, port)
	if len(s.ports) >= rule.Ports {
		s.alerted = true
		s.ports = nil
		saved := e.pkt.dport
		e.pkt.dport = 0 // a scan has no one destination port
		e.detect(events.KindBehaviour, portScanMeta(rule), "", "", "", "")
		e.pkt.dport = saved
	}
}
