package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mimamori/mimamori/appliance/defs"
	"github.com/mimamori/mimamori/services/cmd/mimamori/config"
	"github.com/mimamori/mimamori/services/ingest"
)

// defsCmd is `mimamori defs keygen|build|inspect|publish`: the operator's
// side of the signed definition bundles the appliances verify.
type defsCmd struct {
	Keygen  defsKeygenCmd  `cmd:"" help:"make an ed25519 signing key pair"`
	Build   defsBuildCmd   `cmd:"" help:"build and sign a definitions bundle from indicator lists"`
	Inspect defsInspectCmd `cmd:"" help:"show a bundle's header and counts; with --pub, verify its signature"`
	Publish defsPublishCmd `cmd:"" help:"verify a bundle and put it where the ingest gateway serves it"`
}

func (defsCmd) missing() string { return "defs: name a subcommand: keygen, build, inspect or publish" }

type defsKeygenCmd struct {
	Out string `default:"defs-signing" help:"write the private key to OUT.key (mode 0600) and the public key to OUT.pub"`
}

func (c defsKeygenCmd) run(_ context.Context, e *env) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	keyPath, pubPath := c.Out+".key", c.Out+".pub"
	// O_EXCL: overwriting a signing key by mistake would orphan every
	// appliance that trusts it.
	f, err := os.OpenFile(keyPath, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("defs keygen: %w", err)
	}
	if _, err := f.Write(defs.EncodePrivateKey(priv)); err != nil {
		f.Close()
		return fmt.Errorf("defs keygen: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("defs keygen: %w", err)
	}
	if err := os.WriteFile(pubPath, defs.EncodePublicKey(pub), 0o644); err != nil {
		return fmt.Errorf("defs keygen: %w", err)
	}
	fmt.Fprintf(e.out, "private key %s (keep it secret), public key %s (key id %s): give the public key to appliances with --defs-pub\n",
		keyPath, pubPath, defs.KeyID(pub))
	return nil
}

type defsBuildCmd struct {
	Domains        string        `help:"domain list file (VALUE SEVERITY LABEL [block] per line)"`
	IPs            string        `name:"ips" help:"IP and CIDR list file"`
	URLs           string        `name:"urls" help:"URL list file"`
	Hashes         string        `help:"SHA-256 file hash list file"`
	Key            []string      "sep:\"none\" help:\"private signing key written by `defs keygen`; repeat to sign with several keys (a key rotation, see appliance/README.md)\""
	Trust          []string      `sep:"none" help:"public key file (one key or a key ring) naming the keys appliances trust for the bundles after this one; repeat for several (default: the keys of --key). A key named here that appliances do not trust yet is introduced; one left out is retired"`
	Expires        string        `default:"30d" help:"when appliances stop accepting the bundle: a lifetime after the build (30d, 720h), a date (2026-12-27: 00:00 Japan time that day) or an RFC 3339 time"`
	Out            string        `help:"bundle file to write"`
	Version        uint64        `help:"bundle version (default: the build time in Unix seconds, so later builds are newer)"`
	PortscanPorts  int           `name:"portscan-ports" default:"${portscan_ports}" help:"port scan rule: distinct ports of one host from one source (0 turns the rule off)"`
	PortscanWindow time.Duration `name:"portscan-window" default:"${portscan_window}" help:"port scan rule: within this window"`
	PortscanBlock  bool          `name:"portscan-block" help:"port scans block instead of only being detected"`
}

func (c defsBuildCmd) run(_ context.Context, e *env) error {
	if len(c.Key) == 0 || c.Out == "" {
		return usageError{"defs build: --key and --out are required"}
	}
	now := time.Now()
	exp, err := parseExpiry(c.Expires, now)
	if err != nil {
		return usageError{"defs build: --expires: " + err.Error()}
	}
	var privs []ed25519.PrivateKey
	var signers []ed25519.PublicKey
	for _, k := range c.Key {
		priv, err := defs.LoadPrivateKey(k)
		if err != nil {
			return err
		}
		privs, signers = append(privs, priv), append(signers, priv.Public().(ed25519.PublicKey))
	}
	var trusted []ed25519.PublicKey
	if len(c.Trust) > 0 {
		if trusted, err = defs.LoadKeyRing(c.Trust...); err != nil {
			return fmt.Errorf("defs build: --trust: %w", err)
		}
	}
	lists := defs.Lists{}
	files := map[string]string{defs.ListDomains: c.Domains, defs.ListIPs: c.IPs, defs.ListURLs: c.URLs, defs.ListHashes: c.Hashes}
	for kind, path := range files {
		if path == "" {
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("defs build: %w", err)
		}
		entries, err := defs.ParseList(kind, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("defs build: %s: %w", path, err)
		}
		lists[kind] = entries
	}
	if len(lists) == 0 {
		return usageError{"defs build: give at least one of --domains, --ips, --urls, --hashes"}
	}
	v := c.Version
	if v == 0 {
		v = uint64(now.Unix())
	}
	ps := defs.DefaultPortScan
	ps.Ports, ps.Window, ps.Block, ps.Enabled = c.PortscanPorts, c.PortscanWindow, c.PortscanBlock, c.PortscanPorts > 0
	b, err := defs.Build(defs.Spec{Version: v, Created: now, ExpiresAt: exp, Trust: trusted}, lists, ps, privs...)
	if err != nil {
		return fmt.Errorf("defs build: %w", err)
	}
	if err := defs.WriteFileSync(c.Out, b); err != nil {
		return fmt.Errorf("defs build: %w", err)
	}
	_, info, err := defs.Open(b, signers)
	if err != nil {
		return fmt.Errorf("defs build: the bundle just written does not verify: %w", err)
	}
	fmt.Fprintf(e.out, "%s: version %d, expires %s, signed by %s, trusts %s, %s, %d bytes\n", c.Out, info.Version,
		info.ExpiresAt.In(jst).Format(time.RFC3339), strings.Join(info.SignedBy, " "), strings.Join(info.Trusts, " "),
		countsString(info.Counts), len(b))
	return nil
}

// jst is business time: a date given to --expires is midnight there.
var jst = time.FixedZone("JST", 9*3600)

// parseExpiry reads --expires: a lifetime (30d, 720h) after now, a date
// (00:00 Japan time) or an RFC 3339 time, which must be after now.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	var t time.Time
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return time.Time{}, fmt.Errorf("%q: want a whole number of days, e.g. 30d", s)
		}
		t = now.In(jst).AddDate(0, 0, n) // no summer time in Japan: n × 24 h
	} else if d, err := time.ParseDuration(s); err == nil {
		t = now.Add(d)
	} else if t, err = time.ParseInLocation(time.DateOnly, s, jst); err != nil {
		if t, err = time.Parse(time.RFC3339, s); err != nil {
			return time.Time{}, fmt.Errorf("%q: want a lifetime (30d, 720h), a date (2026-12-27) or an RFC 3339 time", s)
		}
	}
	if !t.After(now) {
		return time.Time{}, fmt.Errorf("%q is not after the build time %s", s, now.In(jst).Format(time.RFC3339))
	}
	return t, nil
}

func countsString(c map[string]int) string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%d %s", c[k], k)
	}
	return s
}

// defsInspect prints a bundle's header and counts; with --pub it verifies
// the signature and exits non-zero when it is bad.
type defsInspectCmd struct {
	Pub    []string `sep:"none" help:"public key file (one key or a key ring) to verify the signature with; repeat for several"`
	Bundle []string `arg:"" optional:"" help:"bundle file"`
}

func (c defsInspectCmd) run(_ context.Context, e *env) error {
	if len(c.Bundle) != 1 {
		return usageError{"defs inspect: name one bundle file"}
	}
	bundle, pubs := c.Bundle[0], c.Pub
	b, err := os.ReadFile(bundle)
	if err != nil {
		return fmt.Errorf("defs inspect: %w", err)
	}
	signature := "not checked (give --pub)"
	var info defs.Info
	if len(pubs) > 0 {
		ring, err := defs.LoadKeyRing(pubs...)
		if err != nil {
			return err
		}
		if _, info, err = defs.Open(b, ring); err != nil {
			return fmt.Errorf("defs inspect: %s: %w", bundle, err)
		}
		var by []string
		for _, k := range ring {
			if slices.Contains(info.SignedBy, defs.KeyID(k)) {
				by = append(by, defs.KeyID(k))
			}
		}
		signature = "verified with key " + strings.Join(by, ", ")
	} else if _, info, err = defs.ParseUnverified(b); err != nil {
		return fmt.Errorf("defs inspect: %s: %w", bundle, err)
	}
	out := struct {
		defs.Info
		Expired   bool   `json:"expired"`
		Signature string `json:"signature"`
	}{info, info.CheckExpiry(time.Now()) != nil, signature}
	enc := json.NewEncoder(e.out)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// defsPublish verifies a bundle and puts it where the ingest gateway
// serves it to appliances, atomically, refusing to go back in version or
// to serve a bundle appliances refuse as expired.
type defsPublishCmd struct {
	Pub        []string `sep:"none" help:"public key file (one key or a key ring) the appliances trust; repeat for several (required: an unverifiable bundle is never published)"`
	AllowOlder bool     `name:"allow-older" help:"publish even when the bundle is older than the published one (appliances will still refuse it)"`
	Bundle     []string `arg:"" optional:"" help:"bundle file"`
	Settings
}

func (defsPublishCmd) groups() []config.Group { return []config.Group{config.Data, config.Log} }

func (c defsPublishCmd) run(_ context.Context, e *env) error {
	if len(c.Bundle) != 1 || len(c.Pub) == 0 {
		return usageError{"defs publish: usage: defs publish --pub KEY BUNDLE"}
	}
	bundle, pubs := c.Bundle[0], c.Pub
	ring, err := defs.LoadKeyRing(pubs...)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(bundle)
	if err != nil {
		return fmt.Errorf("defs publish: %w", err)
	}
	_, info, err := defs.Open(b, ring)
	if err != nil {
		return fmt.Errorf("defs publish: %s: %w", bundle, err)
	}
	if err := info.CheckExpiry(time.Now()); err != nil {
		return fmt.Errorf("defs publish: %s: %w (appliances refuse it)", bundle, err)
	}
	dst := filepath.Join(e.cfg.DataDir, "definitions", ingest.LatestBundle)
	if old, err := os.ReadFile(dst); err == nil && !c.AllowOlder {
		if head, err := defs.ReadHead(old); err == nil && head.Version > info.Version {
			return fmt.Errorf("defs publish: version %d is older than the published %d (appliances refuse rollbacks)", info.Version, head.Version)
		}
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("defs publish: %w", err)
	}
	if err := defs.WriteFileSync(dst, b); err != nil {
		return fmt.Errorf("defs publish: %w", err)
	}
	fmt.Fprintf(e.out, "published version %d (%s, expires %s) to %s\n", info.Version, countsString(info.Counts),
		info.ExpiresAt.In(jst).Format(time.RFC3339), dst)
	return nil
}
