package inspect

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"mime"
	"path"
	"strconv"
	"strings"

	"github.com/mimamori/mimamori/appliance/defs"
	"github.com/mimamori/mimamori/events"
)

// appendDNSQuestion appends the lowercase first question name of a DNS
// message to dst (which should have room for 253 bytes).
func appendDNSQuestion(dst, msg []byte) ([]byte, bool) {
	if len(msg) < 12 || binary.BigEndian.Uint16(msg[4:6]) == 0 {
		return dst, false
	}
	n0 := len(dst)
	for i := 12; i < len(msg); {
		l := int(msg[i])
		if l == 0 {
			if len(dst) == n0 {
				return dst, false
			}
			return dst, true
		}
		if l&0xc0 != 0 || i+1+l > len(msg) || len(dst)-n0+l+1 > 253 {
			return dst[:n0], false // compression pointers do not occur in a question
		}
		if len(dst) > n0 {
			dst = append(dst, '.')
		}
		for _, c := range msg[i+1 : i+1+l] {
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
		}
		i += 1 + l
	}
	return dst[:n0], false
}

// dnsTCPParser reads length-prefixed DNS messages (RFC 1035 4.2.2).
type dnsTCPParser struct{}

func (dnsTCPParser) feed(e *Engine, _ *flow, b []byte, _ bool) (int, bool) {
	used := 0
	for len(b)-used >= 2 {
		n := int(binary.BigEndian.Uint16(b[used:]))
		if len(b)-used-2 < n {
			break
		}
		if msg := b[used+2 : used+2+n]; len(msg) >= 12 {
			e.dnsMessage(msg)
		}
		used += 2 + n
	}
	return used, false
}

// tlsParser finds the SNI of a ClientHello, which may span several TLS
// records and several segments.
type tlsParser struct {
	hs []byte // handshake bytes gathered from records so far
}

const maxClientHello = 16 << 10

func (t *tlsParser) feed(e *Engine, _ *flow, b []byte, fin bool) (int, bool) {
	used := 0
	for len(b)-used >= 5 {
		if b[used] != 0x16 { // not a handshake record: no ClientHello here
			return used, true
		}
		n := int(binary.BigEndian.Uint16(b[used+3:]))
		if len(b)-used-5 < n {
			break
		}
		rec := b[used+5 : used+5+n]
		used += 5 + n
		// A ClientHello whole in its first record (the usual case) is
		// read where it lies; only one spread over records is gathered.
		hs := rec
		if len(t.hs) > 0 {
			t.hs = append(t.hs, rec...)
			hs = t.hs
		}
		if len(hs) >= 4 {
			if hs[0] != 1 { // not a ClientHello
				return used, true
			}
			hl := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
			if hl > maxClientHello {
				return used, true
			}
			if len(hs) >= 4+hl {
				if sni, ok := e.clientHelloSNI(hs[4 : 4+hl]); ok {
					if m, ok := e.pkt.set.MatchDomainBytes(sni); ok {
						e.detect(events.KindDomain, m, "", string(sni), "", "")
					}
				}
				return used, true
			}
		}
		if len(t.hs) == 0 {
			t.hs = append(t.hs, rec...)
		}
	}
	return used, fin
}

// clientHelloSNI is the package function without allocating for a plain
// ASCII name: the name is normalised into the engine's name buffer.
func (e *Engine) clientHelloSNI(b []byte) ([]byte, bool) {
	raw, ok := clientHelloSNIRaw(b)
	if !ok {
		return nil, false
	}
	if name, ok := defs.AppendNormalisedDomain(e.name[:0], raw); ok {
		return name, true
	}
	name, err := defs.NormaliseDomain(string(raw))
	return []byte(name), err == nil
}

// clientHelloSNI returns the lowercase host_name of the server_name
// extension of a ClientHello body.
func clientHelloSNI(b []byte) (string, bool) {
	raw, ok := clientHelloSNIRaw(b)
	if !ok {
		return "", false
	}
	name, err := defs.NormaliseDomain(string(raw))
	return name, err == nil
}

// clientHelloSNIRaw returns the host_name of the server_name extension of
// a ClientHello body as it is written there.
func clientHelloSNIRaw(b []byte) ([]byte, bool) {
	// version(2) random(32) session_id
	if len(b) < 35 {
		return nil, false
	}
	i := 34
	i += 1 + int(b[i])
	if i+2 > len(b) {
		return nil, false
	}
	i += 2 + int(binary.BigEndian.Uint16(b[i:])) // cipher suites
	if i+1 > len(b) {
		return nil, false
	}
	i += 1 + int(b[i]) // compression methods
	if i+2 > len(b) {
		return nil, false
	}
	end := i + 2 + int(binary.BigEndian.Uint16(b[i:]))
	i += 2
	if end > len(b) {
		return nil, false
	}
	for i+4 <= end {
		typ := binary.BigEndian.Uint16(b[i:])
		l := int(binary.BigEndian.Uint16(b[i+2:]))
		i += 4
		if i+l > end {
			return nil, false
		}
		if typ == 0 { // server_name
			ext := b[i : i+l]
			if len(ext) < 2 {
				return nil, false
			}
			list := ext[2:]
			for len(list) >= 3 {
				nt, nl := list[0], int(binary.BigEndian.Uint16(list[1:]))
				if 3+nl > len(list) {
					return nil, false
				}
				if nt == 0 {
					return list[3 : 3+nl], true
				}
				list = list[3+nl:]
			}
			return nil, false
		}
		i += l
	}
	return nil, false
}

// httpRequestParser reads HTTP/1.x requests: request line, Host, and skips
// request bodies by Content-Length.
type httpRequestParser struct {
	skip int64 // body bytes still to skip
}

const maxFlowRequests = 32

func (h *httpRequestParser) feed(e *Engine, f *flow, b []byte, fin bool) (int, bool) {
	used := 0
	for {
		if h.skip > 0 {
			n := min(int64(len(b)-used), h.skip)
			used += int(n)
			h.skip -= n
			if h.skip > 0 {
				return used, fin
			}
		}
		rest := b[used:]
		if len(rest) == 0 {
			return used, fin
		}
		if !isHTTPRequestStart(rest) && len(rest) >= 8 {
			return used, true // not HTTP any more (e.g. a tunnel after CONNECT)
		}
		end := bytes.Index(rest, []byte("\r\n\r\n"))
		if end < 0 {
			return used, fin
		}
		head := rest[:end]
		used += end + 4
		h.skip = e.httpRequest(f, head)
	}
}

// httpRequest inspects one request head and returns its body length.
func (e *Engine) httpRequest(f *flow, head []byte) int64 {
	line, hdrs, _ := bytes.Cut(head, []byte("\r\n"))
	var pb [4][]byte
	parts, ok := fieldsASCII(line, pb[:0])
	if !ok {
		parts = parts[:0]
		for _, p := range strings.Fields(string(line)) {
			parts = append(parts, []byte(p))
		}
	}
	if len(parts) != 3 || !bytes.HasPrefix(parts[2], []byte("HTTP/1.")) {
		return 0
	}
	connect, isHead := string(parts[0]) == "CONNECT", string(parts[0]) == "HEAD"
	target := string(parts[1])
	host := ""
	var clen int64
	forEachHeader(hdrs, func(k, v []byte) {
		switch {
		case bytes.EqualFold(k, []byte("host")):
			host = string(v)
		case bytes.EqualFold(k, []byte("content-length")):
			clen, _ = parseInt(v)
		}
	})
	hostOnly := host
	if h, _, ok := strings.Cut(host, ":"); ok && !strings.HasPrefix(host, "[") {
		hostOnly = h
	}
	hostOnly = strings.TrimSuffix(strings.ToLower(hostOnly), ".")
	if hostOnly == "" && !connect {
		hostOnly = e.pkt.dst.String()
		host = hostOnly
		if e.pkt.dport != 80 {
			host += ":" + strconv.Itoa(int(e.pkt.dport))
		}
	}
	if connect {
		hostOnly, _, _ = strings.Cut(target, ":")
	}
	// The normalised URL is made only when something needs it: a URL
	// list, an alert, or (later) a file alert on the response.
	req := request{host: host, port: e.pkt.dport, target: target}
	url := ""
	set := e.pkt.set
	if !connect && set.HasURLs() {
		url = req.url()
	}
	if m, ok := set.MatchURL(url); ok && url != "" {
		e.detect(events.KindURL, m, url, hostOnly, "", "")
	}
	if m, ok := set.MatchDomain(hostOnly); ok && hostOnly != "" {
		if !connect && url == "" {
			url = req.url()
		}
		e.detect(events.KindDomain, m, url, hostOnly, "", "")
	}
	if len(f.reqs) < maxFlowRequests && !isHead && !connect {
		req.path, _, _ = strings.Cut(target, "?")
		f.reqs = append(f.reqs, req)
	}
	if clen < 0 {
		clen = 0
	}
	return clen
}

// url is the request's normalised URL, or "" when it has none.
func (r *request) url() string {
	if r.target == "" && r.host == "" {
		return ""
	}
	if u, err := defs.URLFromRequest("http", withPort(r.host, r.port), r.target); err == nil {
		return u
	}
	return ""
}

// fieldsASCII is strings.Fields for a line of ASCII text (ok false when
// the line is not ASCII), appending to out.
func fieldsASCII(line []byte, out [][]byte) ([][]byte, bool) {
	for i := 0; i < len(line); {
		c := line[i]
		if c >= 0x80 {
			return out, false
		}
		if asciiSpace(c) {
			i++
			continue
		}
		j := i
		for j < len(line) && line[j] < 0x80 && !asciiSpace(line[j]) {
			j++
		}
		if j < len(line) && line[j] >= 0x80 {
			return out, false
		}
		out = append(out, line[i:j])
		i = j
	}
	return out, true
}

func asciiSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// parseInt is strconv.ParseInt(string(b), 10, 64) without the string for
// the usual short run of digits.
func parseInt(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > 18 {
		return strconv.ParseInt(string(b), 10, 64)
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return strconv.ParseInt(string(b), 10, 64)
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// withPort adds the server port to a Host header that has none, so a
// request to port 8080 is http://host:8080/….
func withPort(host string, port uint16) string {
	if host == "" || port == 80 || strings.HasSuffix(host, "]") || (strings.Contains(host, ":") && !strings.HasPrefix(host, "[")) {
		return host
	}
	if strings.HasPrefix(host, "[") && strings.Contains(host, "]:") {
		return host
	}
	return host + ":" + strconv.Itoa(int(port))
}

func forEachHeader(hdrs []byte, fn func(k, v []byte)) {
	for len(hdrs) > 0 {
		var line []byte
		line, hdrs, _ = bytes.Cut(hdrs, []byte("\r\n"))
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		fn(bytes.TrimSpace(k), bytes.TrimSpace(v))
	}
}

// httpResponseParser reads HTTP/1.x responses and hashes their bodies as
// they stream past: memory per flow is the header buffer and one SHA-256
// state, whatever the body's length.
type httpResponseParser struct {
	inBody   bool
	chunked  bool
	closeEnd bool  // body ends when the connection closes
	left     int64 // body (or current chunk) bytes left
	chunkEnd int   // CRLF bytes still to skip after a chunk
	hashed   int64
	tooLong  bool
	h        hash.Hash // kept across reuse of the parser (see freeFlow)
	hashing  bool      // h was set up for this parser (a new parser has not)
	name     string
	req      request
}

func (r *httpResponseParser) feed(e *Engine, f *flow, b []byte, fin bool) (int, bool) {
	used := 0
	for {
		if !r.inBody {
			rest := b[used:]
			if len(rest) == 0 {
				return used, fin
			}
			if len(rest) >= 5 && string(rest[:5]) != "HTTP/" {
				return used, true
			}
			end := bytes.Index(rest, []byte("\r\n\r\n"))
			if end < 0 {
				return used, fin
			}
			r.start(e, f, rest[:end])
			used += end + 4
			if !r.inBody {
				continue
			}
		}
		// In a body.
		for used < len(b) || (fin && r.closeEnd) {
			if r.chunked && r.left == 0 {
				if r.chunkEnd > 0 {
					n := min(r.chunkEnd, len(b)-used)
					used += n
					r.chunkEnd -= n
					if r.chunkEnd > 0 {
						return used, fin
					}
				}
				rest := b[used:]
				nl := bytes.Index(rest, []byte("\r\n"))
				if nl < 0 {
					return used, fin
				}
				sz, _, _ := strings.Cut(string(rest[:nl]), ";")
				n, err := strconv.ParseInt(strings.TrimSpace(sz), 16, 64)
				used += nl + 2
				if err != nil || n < 0 {
					return used, true
				}
				if n == 0 {
					// Skip trailers up to the blank line, then finish.
					rest := b[used:]
					if bytes.HasPrefix(rest, []byte("\r\n")) {
						used += 2
					} else if t := bytes.Index(rest, []byte("\r\n\r\n")); t >= 0 {
						used += t + 4
					}
					r.finish(e)
					break
				}
				r.left, r.chunkEnd = n, 2
				continue
			}
			if fin && r.closeEnd && used == len(b) {
				r.finish(e)
				return used, true
			}
			n := len(b) - used
			if !r.closeEnd && int64(n) > r.left {
				n = int(r.left)
			}
			r.body(e, b[used:used+n])
			used += n
			if !r.closeEnd {
				r.left -= int64(n)
			}
			if !r.chunked && !r.closeEnd && r.left == 0 {
				r.finish(e)
				break
			}
		}
		if r.inBody {
			return used, fin && !r.closeEnd
		}
	}
}

// start reads a response head and prepares to hash its body.
func (r *httpResponseParser) start(e *Engine, f *flow, head []byte) {
	line, hdrs, _ := bytes.Cut(head, []byte("\r\n"))
	var pb [4][]byte
	code := 0
	if parts, ok := fieldsASCII(line, pb[:0]); ok {
		if len(parts) >= 2 {
			n, err := parseInt(parts[1])
			if err == nil && n == int64(int(n)) && parts[1][0] != '+' {
				code = int(n)
			} else {
				code, _ = strconv.Atoi(string(parts[1]))
			}
		}
	} else if parts := strings.Fields(string(line)); len(parts) >= 2 {
		code, _ = strconv.Atoi(parts[1])
	}
	r.req = request{}
	if len(f.reqs) > 0 {
		r.req = f.reqs[0]
		f.reqs = f.reqs[1:]
	}
	var clen int64 = -1
	r.chunked, r.closeEnd, r.name, r.hashed, r.tooLong = false, false, "", 0, false
	forEachHeader(hdrs, func(k, v []byte) {
		switch {
		case bytes.EqualFold(k, []byte("content-length")):
			if n, err := parseInt(v); err == nil && n >= 0 {
				clen = n
			}
		case bytes.EqualFold(k, []byte("transfer-encoding")):
			r.chunked = strings.Contains(strings.ToLower(string(v)), "chunked")
		case bytes.EqualFold(k, []byte("content-disposition")):
			if _, params, err := mime.ParseMediaType(string(v)); err == nil && params["filename"] != "" {
				r.name = path.Base(strings.ReplaceAll(params["filename"], "\\", "/"))
			}
		}
	})
	if code/100 == 1 || code == 204 || code == 304 {
		return // no body
	}
	switch {
	case r.chunked:
		r.left, r.chunkEnd = 0, 0
	case clen >= 0:
		if clen == 0 {
			return
		}
		r.left = clen
	default:
		r.closeEnd = true
	}
	if r.name == "" && r.req.path != "" {
		r.name = path.Base(r.req.path)
		if r.name == "/" || r.name == "." {
			r.name = ""
		}
	}
	r.inBody = true
	if e.pkt.set.HasHashes() {
		if r.h == nil {
			r.h = sha256.New()
		}
		r.h.Reset()
		r.hashing = true
	}
}

func (r *httpResponseParser) body(e *Engine, b []byte) {
	if !r.hashing || r.tooLong || !e.pkt.set.HasHashes() {
		return
	}
	r.hashed += int64(len(b))
	if r.hashed > e.cfg.MaxBodyHash {
		r.tooLong = true
		return
	}
	r.h.Write(b)
}

func (r *httpResponseParser) finish(e *Engine) {
	r.inBody = false
	if !r.hashing || r.tooLong || !e.pkt.set.HasHashes() || r.hashed == 0 {
		return
	}
	var sum [32]byte
	r.h.Sum(sum[:0])
	if m, ok := e.pkt.set.MatchHash(sum); ok {
		// The response travels server→client; the alert names the
		// client as destination, as the file went to it.
		u := r.req.url()
		e.detect(events.KindFile, m, u, hostOf(u), r.name, hex.EncodeToString(sum[:]))
	}
}

func hostOf(u string) string {
	_, rest, ok := strings.Cut(u, "://")
	if !ok {
		return ""
	}
	h, _, _ := strings.Cut(rest, "/")
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	return h
}

func portScanMeta(r defs.PortScan) defs.Meta {
	return defs.Meta{Indicator: "port-scan", Severity: r.Severity, Label: "port-scan", Block: r.Block}
}
