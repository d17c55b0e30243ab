// Package defs holds the appliance's threat definitions: the plain
// indicator lists operators write (domains, IPs and CIDRs, URLs, SHA-256
// file hashes), the behaviour rules, the compact matcher the inspection
// hot path queries, and the signed bundles that carry them to appliances.
package defs

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// List kinds, as named in bundles and on the command line.
const (
	ListDomains = "domains"
	ListIPs     = "ips"
	ListURLs    = "urls"
	ListHashes  = "hashes"
)

// Entry is one line of an indicator list: `VALUE SEVERITY LABEL [block|detect]`.
type Entry struct {
	Value    string // normalised (see Normalise*)
	Severity int    // 1, 2 or 3
	Label    string // one token, e.g. "c2" or "phishing-kit"
	Block    bool   // the definition blocks, not only detects
}

// maxLine bounds one list line; a longer line is an error, not a crash.
const maxLine = 8192

// ParseList reads an indicator list of the given kind. Blank lines and
// everything after '#' are ignored. Each line is VALUE SEVERITY LABEL and
// optionally "block" or "detect" (the default). SEVERITY is 1, 2, 3 or
// low, medium, high. The value is normalised for its kind; a line that
// does not parse is an error naming the line.
func ParseList(kind string, r io.Reader) ([]Entry, error) {
	norm, err := normaliser(kind)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	var out []Entry
	for n := 1; sc.Scan(); n++ {
		e, ok, err := parseLine(kind, norm, sc.Bytes(), n)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, e)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s list: %w", kind, err)
	}
	return out, nil
}

// parseLine parses line n of a list; ok is false for a blank or comment
// line.
func parseLine(kind string, norm func(string) (string, error), line []byte, n int) (e Entry, ok bool, err error) {
	if i := bytes.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	f := strings.Fields(string(line))
	if len(f) == 0 {
		return Entry{}, false, nil
	}
	if len(f) < 3 || len(f) > 4 {
		return Entry{}, false, fmt.Errorf("%s list line %d: want VALUE SEVERITY LABEL [block|detect], got %d fields", kind, n, len(f))
	}
	v, err := norm(f[0])
	if err != nil {
		return Entry{}, false, fmt.Errorf("%s list line %d: %w", kind, n, err)
	}
	sev, err := parseSeverity(f[1])
	if err != nil {
		return Entry{}, false, fmt.Errorf("%s list line %d: %w", kind, n, err)
	}
	e = Entry{Value: v, Severity: sev, Label: f[2]}
	if len(f) == 4 {
		switch strings.ToLower(f[3]) {
		case "block":
			e.Block = true
		case "detect":
		default:
			return Entry{}, false, fmt.Errorf("%s list line %d: action must be block or detect, got %q", kind, n, f[3])
		}
	}
	if len(e.Label) > 128 {
		return Entry{}, false, fmt.Errorf("%s list line %d: label longer than 128 bytes", kind, n)
	}
	return e, true, nil
}

// addDomainLine parses line n of a domain list straight into s: the
// bundle loader's path, which for plain ASCII lines (all a normal list
// has) neither allocates nor builds an Entry. Anything else, and every
// line the fast path would refuse, goes through parseLine, so the result
// and the errors are exactly ParseList's.
func (s *Set) addDomainLine(line []byte, n int) error {
	if len(line) >= maxLine {
		// As ParseList's scanner refuses it.
		return fmt.Errorf("%s list: %w", ListDomains, bufio.ErrTooLong)
	}
	if ok := s.fastDomainLine(line); ok {
		return nil
	}
	e, ok, err := parseLine(ListDomains, NormaliseDomain, line, n)
	if err != nil || !ok {
		return err
	}
	return s.addDomain([]byte(e.Value), s.meta(e))
}

// asciiSpace is what strings.Fields splits ASCII text on.
var asciiSpace = [256]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}

// fastDomainLine handles a well-formed ASCII domain line (or a blank or
// comment one) and reports whether it did; false means "let parseLine
// decide", never "invalid".
func (s *Set) fastDomainLine(line []byte) bool {
	var f [4][]byte
	nf := 0
	for i := 0; i < len(line); {
		c := line[i]
		if c == '#' {
			break
		}
		if c >= 0x80 {
			return false
		}
		if asciiSpace[c] {
			i++
			continue
		}
		j := i
		for j < len(line) && line[j] < 0x80 && line[j] != '#' && !asciiSpace[line[j]] {
			j++
		}
		if j < len(line) && line[j] >= 0x80 {
			return false
		}
		if nf == len(f) {
			return false
		}
		f[nf] = line[i:j]
		nf++
		i = j
	}
	if nf == 0 {
		return true // blank or comment
	}
	if nf < 3 {
		return false
	}
	// The value, as NormaliseDomain would have it.
	var buf [253]byte
	name, ok := AppendNormalisedDomain(buf[:0], f[0])
	if !ok {
		return false
	}
	if len(f[1]) != 1 || f[1][0] < '1' || f[1][0] > '3' {
		return false
	}
	m := meta{severity: f[1][0] - '0'}
	if len(f[2]) > 128 {
		return false
	}
	if nf == 4 {
		switch string(f[3]) {
		case "block":
			m.block = true
		case "detect":
		default:
			return false
		}
	}
	if i, ok := s.labelIdx[string(f[2])]; ok {
		m.label = i
	} else {
		m.label = s.label(string(f[2]))
	}
	if len(s.dom.entries) >= MaxDomains {
		return false // addDomain refuses it
	}
	s.dom.add(name, m)
	return true
}

func parseSeverity(s string) (int, error) {
	switch strings.ToLower(s) {
	case "1", "low":
		return 1, nil
	case "2", "medium":
		return 2, nil
	case "3", "high":
		return 3, nil
	}
	if _, err := strconv.Atoi(s); err == nil {
		return 0, fmt.Errorf("severity must be 1, 2 or 3, got %s", s)
	}
	return 0, fmt.Errorf("severity must be 1, 2, 3, low, medium or high, got %q", s)
}

func normaliser(kind string) (func(string) (string, error), error) {
	switch kind {
	case ListDomains:
		return NormaliseDomain, nil
	case ListIPs:
		return NormaliseIP, nil
	case ListURLs:
		return NormaliseURL, nil
	case ListHashes:
		return NormaliseHash, nil
	}
	return nil, fmt.Errorf("unknown list kind %q (want domains, ips, urls or hashes)", kind)
}

// WriteList writes entries in the list format ParseList reads.
func WriteList(w io.Writer, entries []Entry) error {
	bw := bufio.NewWriter(w)
	for _, e := range entries {
		act := ""
		if e.Block {
			act = " block"
		}
		fmt.Fprintf(bw, "%s %d %s%s\n", e.Value, e.Severity, e.Label, act)
	}
	return bw.Flush()
}

// AppendNormalisedDomain appends to dst what NormaliseDomain makes of v
// when v is plain ASCII and valid, without allocating; ok is false when v
// is not ASCII or not valid, and then the caller must ask
// NormaliseDomain (which decides, and says why).
func AppendNormalisedDomain(dst, v []byte) (out []byte, ok bool) {
	if len(v) > 254 || len(v) == 0 {
		return dst, false
	}
	n0 := len(dst)
	label := 0
	for i, c := range v {
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c == '.':
			if label == 0 && i != len(v)-1 {
				return dst[:n0], false
			}
			if i == len(v)-1 {
				// The trailing dot is dropped (only one).
				if label == 0 {
					return dst[:n0], false
				}
				return dst, true
			}
			dst = append(dst, c)
			label = 0
			continue
		case c <= ' ' || c >= 0x7f || c == '/':
			return dst[:n0], false
		}
		if label++; label > 63 {
			return dst[:n0], false
		}
		dst = append(dst, c)
	}
	if label == 0 || len(dst)-n0 > 253 {
		return dst[:n0], false
	}
	return dst, true
}
