package defs

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// NormaliseDomain lowercases a domain name and drops a trailing dot. It
// refuses empty labels, spaces and names longer than DNS allows.
func NormaliseDomain(s string) (string, error) {
	s = strings.TrimSuffix(strings.ToLower(s), ".")
	if s == "" || len(s) > 253 {
		return "", fmt.Errorf("domain %q: must be 1 to 253 characters", s)
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 {
			return "", fmt.Errorf("domain %q: empty or over-long label", s)
		}
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '/' {
			return "", fmt.Errorf("domain %q: character %q not allowed", s, c)
		}
	}
	return s, nil
}

// NormaliseIP accepts an address or a CIDR (v4 or v6) and returns its
// canonical text: an address as netip prints it, a prefix masked.
func NormaliseIP(s string) (string, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return "", fmt.Errorf("CIDR %q: %w", s, err)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p.Addr())).Masked()
		return p.String(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "", fmt.Errorf("address %q: %w", s, err)
	}
	return a.Unmap().WithZone("").String(), nil
}

func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

// NormaliseHash lowercases a SHA-256 given as 64 hexadecimal characters.
func NormaliseHash(s string) (string, error) {
	s = strings.ToLower(s)
	if b, err := hex.DecodeString(s); err != nil || len(b) != 32 {
		return "", fmt.Errorf("hash %q: must be a SHA-256 as 64 hexadecimal characters", s)
	}
	return s, nil
}

// NormaliseURL puts an http or https URL in the one form both the lists
// and the inspected traffic are compared in: scheme and host lowercased,
// trailing dot and default port dropped, percent-encoding of unreserved
// characters decoded and of the rest uppercased, "." and ".." segments
// resolved, an empty path made "/", the query kept in order, the fragment
// dropped. A URL without a scheme is taken as http.
func NormaliseURL(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty URL")
	}
	scheme := "http"
	rest := s
	if i := strings.Index(s, "://"); i >= 0 {
		scheme, rest = strings.ToLower(s[:i]), s[i+3:]
	}
	if scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("URL %q: scheme must be http or https", s)
	}
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest = rest[:i]
	}
	hostport, pathq := rest, "/"
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		hostport, pathq = rest[:i], rest[i:]
	}
	if i := strings.LastIndexByte(hostport, '@'); i >= 0 {
		hostport = hostport[i+1:]
	}
	u, err := joinURL(scheme, hostport, pathq)
	if err != nil {
		return "", fmt.Errorf("URL %q: %w", s, err)
	}
	return u, nil
}

// URLFromRequest builds the normalised URL of an HTTP request from its Host
// header (or the server address when there is none) and request target.
func URLFromRequest(scheme, host, target string) (string, error) {
	if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") {
		return NormaliseURL(target) // proxy form
	}
	if target == "" || target[0] != '/' {
		target = "/" + target
	}
	if i := strings.IndexByte(target, '#'); i >= 0 {
		target = target[:i]
	}
	return joinURL(scheme, host, target)
}

func joinURL(scheme, hostport, pathq string) (string, error) {
	host, port := hostport, ""
	if strings.HasPrefix(hostport, "[") {
		i := strings.IndexByte(hostport, ']')
		if i < 0 {
			return "", errors.New("unclosed [ in host")
		}
		host, port = hostport[:i+1], strings.TrimPrefix(hostport[i+1:], ":")
	} else if i := strings.LastIndexByte(hostport, ':'); i >= 0 {
		host, port = hostport[:i], hostport[i+1:]
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" {
		return "", errors.New("no host")
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("bad port %q", port)
		}
		if (scheme == "http" && n == 80) || (scheme == "https" && n == 443) {
			port = ""
		} else {
			port = strconv.Itoa(n)
		}
	}
	path, query, hasQuery := strings.Cut(pathq, "?")
	path = removeDotSegments(normalisePercent(path))
	if path == "" {
		path = "/"
	}
	var b strings.Builder
	b.Grow(len(scheme) + len(host) + len(path) + len(query) + 10)
	b.WriteString(scheme)
	b.WriteString("://")
	b.WriteString(host)
	if port != "" {
		b.WriteByte(':')
		b.WriteString(port)
	}
	b.WriteString(path)
	if hasQuery && query != "" {
		b.WriteByte('?')
		b.WriteString(normalisePercent(query))
	}
	return b.String(), nil
}

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// normalisePercent decodes %XX of unreserved characters and uppercases the
// hex digits of the others (RFC 3986 6.2.2).
func normalisePercent(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			h, ok1 := unhex(s[i+1])
			l, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				c := h<<4 | l
				if isUnreserved(c) {
					b.WriteByte(c)
				} else {
					b.WriteByte('%')
					b.WriteString(strings.ToUpper(s[i+1 : i+3]))
				}
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeDotSegments is RFC 3986 5.2.4 for absolute paths.
func removeDotSegments(p string) string {
	if !strings.Contains(p, ".") {
		return p
	}
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	r := strings.Join(out, "/")
	if !strings.HasPrefix(r, "/") {
		r = "/" + r
	}
	return r
}
