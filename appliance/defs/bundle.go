package defs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// A bundle is one signed file:
//
//	mimamori-defs/1 ed25519 KEYID SIGNATURE\n
//	<gzip of the body>
//
// KEYID is the first 8 bytes of SHA-256 of the public key in hex, and
// SIGNATURE the base64 ed25519 signature of the gzip bytes. The body is
// text:
//
//	version 42
//	created 2026-11-27T09:00:00Z
//	portscan on 20 10s 2 detect
//	[domains]
//	evil-c2.example 3 c2 block
//	[ips]
//	…
//
// The signature covers the compressed bytes, so nothing is parsed or even
// decompressed before it is verified.
const bundleMagic = "mimamori-defs/1"

// Bundle limits: a bundle is refused before parsing when larger, so a
// hostile or broken file cannot exhaust the appliance's memory.
const (
	MaxBundleBytes = 64 << 20  // as stored and transferred
	MaxBodyBytes   = 256 << 20 // decompressed
)

// Errors of Verify and Parse.
var (
	ErrSignature = errors.New("definitions bundle: bad signature")
	ErrFormat    = errors.New("definitions bundle: malformed")
)

// Info is what a bundle says about itself.
type Info struct {
	Version  uint64         `json:"version"`
	Created  time.Time      `json:"created"`
	KeyID    string         `json:"key_id"`
	SHA256   string         `json:"sha256"`
	Size     int            `json:"size"`
	Counts   map[string]int `json:"counts"`
	PortScan string         `json:"portscan"`
}

// KeyID names a public key in bundle headers.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Build writes a signed bundle of the lists.
func Build(version uint64, created time.Time, lists Lists, ps PortScan, key ed25519.PrivateKey) ([]byte, error) {
	if version == 0 {
		return nil, errors.New("definitions bundle: version must be at least 1")
	}
	var body bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&body, gzip.BestSpeed)
	w := bufio.NewWriter(zw)
	fmt.Fprintf(w, "version %d\ncreated %s\n", version, created.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "portscan %s\n", formatPortScan(ps))
	for _, kind := range []string{ListDomains, ListIPs, ListURLs, ListHashes} {
		fmt.Fprintf(w, "[%s]\n", kind)
		if err := WriteList(w, lists[kind]); err != nil {
			return nil, err
		}
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	sig := ed25519.Sign(key, body.Bytes())
	pub := key.Public().(ed25519.PublicKey)
	// version= in the header is a hint for the cloud, which does not parse
	// bundles; the appliance trusts only the signed version in the body.
	out := fmt.Appendf(nil, "%s ed25519 %s %s version=%d\n", bundleMagic, KeyID(pub), base64.StdEncoding.EncodeToString(sig), version)
	out = append(out, body.Bytes()...)
	if len(out) > MaxBundleBytes {
		return nil, fmt.Errorf("definitions bundle: %d bytes, at most %d allowed", len(out), MaxBundleBytes)
	}
	return out, nil
}

func formatPortScan(ps PortScan) string {
	if !ps.Enabled {
		return "off"
	}
	act := "detect"
	if ps.Block {
		act = "block"
	}
	return fmt.Sprintf("on %d %s %d %s", ps.Ports, ps.Window, ps.Severity, act)
}

func parsePortScan(s string) (PortScan, error) {
	f := strings.Fields(s)
	if len(f) == 1 && f[0] == "off" {
		return PortScan{}, nil
	}
	if len(f) != 5 || f[0] != "on" {
		return PortScan{}, fmt.Errorf("portscan: want `off` or `on PORTS WINDOW SEVERITY block|detect`, got %q", s)
	}
	ports, err1 := strconv.Atoi(f[1])
	win, err2 := time.ParseDuration(f[2])
	sev, err3 := strconv.Atoi(f[3])
	if err := errors.Join(err1, err2, err3); err != nil || (f[4] != "block" && f[4] != "detect") {
		return PortScan{}, fmt.Errorf("portscan: %q: bad field", s)
	}
	return PortScan{Enabled: true, Ports: ports, Window: win, Severity: sev, Block: f[4] == "block"}, nil
}

// split separates the header line from the signed gzip bytes.
func split(b []byte) (keyID string, sig, body []byte, err error) {
	if len(b) > MaxBundleBytes {
		return "", nil, nil, fmt.Errorf("%w: %d bytes, at most %d allowed", ErrFormat, len(b), MaxBundleBytes)
	}
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 || nl > 256 {
		return "", nil, nil, fmt.Errorf("%w: no header line", ErrFormat)
	}
	f := strings.Fields(string(b[:nl]))
	if len(f) < 4 || len(f) > 5 || f[0] != bundleMagic || f[1] != "ed25519" {
		return "", nil, nil, fmt.Errorf("%w: header must be %q ed25519 KEYID SIGNATURE", ErrFormat, bundleMagic)
	}
	sig, err = base64.StdEncoding.DecodeString(f[3])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return "", nil, nil, fmt.Errorf("%w: signature is not %d bytes of base64", ErrFormat, ed25519.SignatureSize)
	}
	return f[2], sig, b[nl+1:], nil
}

// Verify checks the bundle's signature against a trusted key.
func Verify(b []byte, pub ed25519.PublicKey) error {
	_, sig, body, err := split(b)
	if err != nil {
		return err
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, body, sig) {
		return ErrSignature
	}
	return nil
}

// Open verifies a bundle with the trusted key and compiles it.
func Open(b []byte, pub ed25519.PublicKey) (*Set, Info, error) {
	if err := Verify(b, pub); err != nil {
		return nil, Info{}, err
	}
	return ParseUnverified(b)
}

// ParseUnverified compiles a bundle without checking its signature: for
// `defs inspect` and for fuzzing the parser. The agent only uses Open.
func ParseUnverified(b []byte) (*Set, Info, error) {
	keyID, _, body, err := split(b)
	if err != nil {
		return nil, Info{}, err
	}
	sum := sha256.Sum256(b)
	info := Info{KeyID: keyID, SHA256: hex.EncodeToString(sum[:]), Size: len(b)}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, info, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	r := bufio.NewReaderSize(io.LimitReader(zr, MaxBodyBytes+1), 64<<10)
	// Domain lines go straight from the decompressor into the Set (the
	// list can hold millions); the other sections are small and are
	// gathered, then parsed with ParseList.
	set := newSet(0, time.Time{}, PortScan{}, 0)
	var (
		version  uint64
		created  time.Time
		ps       = PortScan{}
		havePS   bool
		section  string
		lists    = Lists{}
		sections = map[string]*bytes.Buffer{}
		domLine  int
		read     int64
	)
	for n := 1; ; n++ {
		line, err := r.ReadSlice('\n')
		read += int64(len(line))
		if read > MaxBodyBytes {
			return nil, info, fmt.Errorf("%w: body larger than %d bytes", ErrFormat, MaxBodyBytes)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, info, fmt.Errorf("%w: line %d too long", ErrFormat, n)
		}
		if len(line) > 0 {
			b := bytes.TrimRight(line, "\r\n")
			switch {
			case section == ListDomains && !(len(b) > 0 && b[0] == '[' && b[len(b)-1] == ']'):
				domLine++
				if err := set.addDomainLine(b, domLine); err != nil {
					return nil, info, fmt.Errorf("%w: %v", ErrFormat, err)
				}
			case section == "" && bytes.HasPrefix(b, []byte("version ")):
				version, err = strconv.ParseUint(string(b[len("version "):]), 10, 64)
				if err != nil || version == 0 {
					return nil, info, fmt.Errorf("%w: line %d: bad version", ErrFormat, n)
				}
			case section == "" && bytes.HasPrefix(b, []byte("created ")):
				created, err = time.Parse(time.RFC3339, string(b[len("created "):]))
				if err != nil {
					return nil, info, fmt.Errorf("%w: line %d: bad created time", ErrFormat, n)
				}
			case section == "" && bytes.HasPrefix(b, []byte("portscan ")):
				ps, err = parsePortScan(string(b[len("portscan "):]))
				if err != nil {
					return nil, info, fmt.Errorf("%w: line %d: %v", ErrFormat, n, err)
				}
				havePS = true
			case len(b) > 0 && b[0] == '[' && b[len(b)-1] == ']':
				section = string(b[1 : len(b)-1])
				if _, err := normaliser(section); err != nil {
					return nil, info, fmt.Errorf("%w: line %d: %v", ErrFormat, n, err)
				}
				if section != ListDomains && sections[section] == nil {
					sections[section] = &bytes.Buffer{}
				}
			case section != "":
				sections[section].Write(b)
				sections[section].WriteByte('\n')
			case len(bytes.TrimSpace(b)) == 0:
			default:
				return nil, info, fmt.Errorf("%w: line %d: unexpected %q", ErrFormat, n, truncate(string(b), 40))
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, info, fmt.Errorf("%w: %v", ErrFormat, err)
		}
	}
	if version == 0 {
		return nil, info, fmt.Errorf("%w: no version", ErrFormat)
	}
	if !havePS {
		ps = DefaultPortScan
	}
	for kind, buf := range sections {
		entries, err := ParseList(kind, buf)
		if err != nil {
			return nil, info, fmt.Errorf("%w: %v", ErrFormat, err)
		}
		lists[kind] = entries
		buf.Reset()
	}
	if err := checkPortScan(ps); err != nil {
		return nil, info, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if err := set.addOthers(lists); err != nil {
		return nil, info, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	set.Version, set.Created, set.PortScan = version, created, ps
	set.finish()
	info.Version, info.Created, info.Counts, info.PortScan = version, created, set.Counts(), formatPortScan(ps)
	return set, info, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Key files: one line, "mimamori-ed25519-private BASE64SEED" or
// "mimamori-ed25519-public BASE64KEY".
const (
	privPrefix = "mimamori-ed25519-private "
	pubPrefix  = "mimamori-ed25519-public "
)

// EncodePrivateKey and EncodePublicKey give the key file contents.
func EncodePrivateKey(k ed25519.PrivateKey) []byte {
	return []byte(privPrefix + base64.StdEncoding.EncodeToString(k.Seed()) + "\n")
}

func EncodePublicKey(k ed25519.PublicKey) []byte {
	return []byte(pubPrefix + base64.StdEncoding.EncodeToString(k) + "\n")
}

// LoadPrivateKey reads a key file written by `mimamori defs keygen`.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	s, ok := strings.CutPrefix(strings.TrimSpace(string(b)), privPrefix)
	seed, err := base64.StdEncoding.DecodeString(s)
	if !ok || err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing key %s: not a mimamori ed25519 private key", path)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ParsePublicKey reads the contents of a public key file.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	s, ok := strings.CutPrefix(strings.TrimSpace(string(b)), pubPrefix)
	k, err := base64.StdEncoding.DecodeString(s)
	if !ok || err != nil || len(k) != ed25519.PublicKeySize {
		return nil, errors.New("not a mimamori ed25519 public key")
	}
	return ed25519.PublicKey(k), nil
}

// LoadPublicKey reads a public key file.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	k, err := ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return k, nil
}

// PeekVersion reads a bundle's version from the start of its body without
// compiling it. It does not check the signature.
func PeekVersion(b []byte) (uint64, error) {
	_, _, body, err := split(b)
	if err != nil {
		return 0, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	line, err := bufio.NewReader(io.LimitReader(zr, 64)).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("%w: no version line", ErrFormat)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(line, "version ")), 10, 64)
	if err != nil || !strings.HasPrefix(line, "version ") || v == 0 {
		return 0, fmt.Errorf("%w: bad version line", ErrFormat)
	}
	return v, nil
}
