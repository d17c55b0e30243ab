// Package uplink is the appliance's client of the ingest gateway: it sends
// alert batches and heartbeats over HTTPS, retrying temporary failures with
// capped, jittered backoff until its context ends, and reports requests the
// gateway will never accept as a *PermanentError.
package uplink

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/retry"
)

// Limits of one POST /v1/alerts request, fixed by the ingest protocol.
const (
	MaxBatchAlerts = 1000
	MaxBatchBytes  = 4 << 20 // decompressed body
)

// Defaults for the zero values of Config.
const (
	DefaultTimeout    = 30 * time.Second
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Minute
)

// maxResponse bounds how much of a response body is read.
const maxResponse = 1 << 20

// Config configures a Client. BaseURL and Credential are required.
type Config struct {
	// BaseURL is the ingest gateway, e.g. https://ingest.example:8443.
	// It must be https: the credential never travels in clear text.
	BaseURL string
	// Credential is the device credential "credid.secret", sent as a
	// bearer token. It is never logged.
	Credential string
	// CAFile is a PEM file of CA certificates to trust (the cloud's local
	// CA in embedded mode). RootCAs is the same as a pool; when both are
	// set, the file's certificates are added to a copy of the pool. When
	// neither is set, the system roots are used.
	CAFile  string
	RootCAs *x509.CertPool
	// Timeout bounds one HTTP attempt (not the whole retrying send).
	Timeout time.Duration
	// MinBackoff is the backoff ceiling of the first retry; it doubles per
	// attempt up to MaxBackoff.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// Gzip compresses request bodies (Content-Encoding: gzip).
	Gzip bool
	// HTTPClient replaces the client New would build; CAFile and RootCAs
	// must then be empty, as its transport decides what it trusts.
	HTTPClient *http.Client
	// Logger receives retry warnings; nil discards them.
	Logger *slog.Logger
}

// LogValue keeps the credential out of logs when a Config is logged.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("base_url", c.BaseURL),
		slog.String("credential", maskCredential(c.Credential)),
		slog.String("ca_file", c.CAFile),
		slog.Duration("timeout", c.Timeout),
		slog.Duration("max_backoff", c.MaxBackoff),
		slog.Bool("gzip", c.Gzip),
	)
}

// maskCredential shows only the credential id, never the secret.
func maskCredential(s string) string {
	if s == "" {
		return ""
	}
	id, _, _ := strings.Cut(s, ".")
	return id + ".***"
}

// Result is what the gateway acknowledged for a SendAlerts call.
type Result struct {
	Accepted   int // alerts stored for the first time
	Duplicates int // alerts the gateway already had (a retry after a lost reply)
	Batches    int // requests that were acknowledged
}

// PermanentError is a response that resending the same request will never
// change: 4xx other than 429 (a bad payload, a too large body, a refused or
// revoked credential) or an unexpected redirect.
type PermanentError struct {
	StatusCode int    // HTTP status
	Message    string // the gateway's "error", or the start of its body
	Field      string // the gateway's "field", when it named one
}

func (e *PermanentError) Error() string {
	msg := fmt.Sprintf("ingest refused request: %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Field != "" {
		msg += " (field " + e.Field + ")"
	}
	return msg
}

// Unauthorized reports whether the credential was refused (401 or 403):
// the payload is fine, so a caller should keep it rather than drop it.
func (e *PermanentError) Unauthorized() bool {
	return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
}

// temporaryError is a failure worth retrying; retryAfter is the server's
// Retry-After, or 0.
type temporaryError struct {
	err        error
	retryAfter time.Duration
}

func (e *temporaryError) Error() string { return e.err.Error() }
func (e *temporaryError) Unwrap() error { return e.err }

// Client sends to one ingest gateway as one device. It is safe for
// concurrent use.
type Client struct {
	alertsURL    string
	heartbeatURL string
	auth         string
	hc           *http.Client
	ownTransport *http.Transport // closed by Close when New built it
	timeout      time.Duration
	minBackoff   time.Duration
	maxBackoff   time.Duration
	gzip         bool
	log          *slog.Logger
	// sleep waits d or until ctx ends; tests replace it to observe waits.
	sleep func(ctx context.Context, d time.Duration) error
}

// New checks cfg and builds a Client.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("uplink: BaseURL is required")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("uplink: BaseURL: %w", err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("uplink: BaseURL must be https://host[:port], got %q", cfg.BaseURL)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("uplink: BaseURL must not carry user info, a query or a fragment")
	}
	if err := checkCredential(cfg.Credential); err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 || cfg.MinBackoff < 0 || cfg.MaxBackoff < 0 {
		return nil, errors.New("uplink: Timeout, MinBackoff and MaxBackoff must not be negative")
	}
	base := strings.TrimRight(u.String(), "/")
	c := &Client{
		alertsURL:    base + "/v1/alerts",
		heartbeatURL: base + "/v1/heartbeat",
		auth:         "Bearer " + cfg.Credential,
		timeout:      orDefault(cfg.Timeout, DefaultTimeout),
		minBackoff:   orDefault(cfg.MinBackoff, DefaultMinBackoff),
		maxBackoff:   orDefault(cfg.MaxBackoff, DefaultMaxBackoff),
		gzip:         cfg.Gzip,
		log:          cfg.Logger,
		sleep:        retry.Wait,
	}
	if c.minBackoff > c.maxBackoff {
		c.minBackoff = c.maxBackoff
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPClient != nil {
		if cfg.CAFile != "" || cfg.RootCAs != nil {
			return nil, errors.New("uplink: set either HTTPClient or CAFile/RootCAs, not both")
		}
		c.hc = cfg.HTTPClient
		return c, nil
	}
	pool, err := rootCAs(cfg.CAFile, cfg.RootCAs)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	tr.ForceAttemptHTTP2 = true
	c.ownTransport = tr
	c.hc = &http.Client{
		Transport: tr,
		// A redirect would drop to GET or leak the bearer token to
		// another host; the gateway never redirects, so report it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// Close releases idle connections of the transport New built.
func (c *Client) Close() error {
	if c.ownTransport != nil {
		c.ownTransport.CloseIdleConnections()
	}
	return nil
}

func checkCredential(s string) error {
	id, secret, ok := strings.Cut(s, ".")
	if !ok || id == "" || secret == "" {
		return errors.New("uplink: Credential must look like credid.secret")
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return errors.New("uplink: Credential must not contain spaces or control characters")
		}
	}
	return nil
}

func rootCAs(file string, pool *x509.CertPool) (*x509.CertPool, error) {
	if file == "" {
		return pool, nil // nil means the system roots
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("uplink: read CA file: %w", err)
	}
	if pool != nil {
		pool = pool.Clone()
	} else {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("uplink: CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// SendAlerts sends alerts in as many requests as the protocol limits need
// (see Batches) and returns what the gateway acknowledged. Each request is
// retried on network errors, 429, 5xx, until ctx ends; the error then wraps
// ctx.Err(). A *PermanentError stops at once. On any error, Result counts
// the batches acknowledged before it; resending all the alerts is safe, as
// the gateway deduplicates them by id. An alert that fails
// ValidateFromDevice is reported before anything is sent.
func (c *Client) SendAlerts(ctx context.Context, alerts []events.Alert) (Result, error) {
	var res Result
	if len(alerts) == 0 {
		return res, nil
	}
	raws := make([][]byte, len(alerts))
	sizes := make([]int, len(alerts))
	for i := range alerts {
		if err := alerts[i].ValidateFromDevice(); err != nil {
			return res, fmt.Errorf("uplink: alert %d (id %q): %w", i, alerts[i].ID, err)
		}
		b, err := marshal(&alerts[i])
		if err != nil {
			return res, fmt.Errorf("uplink: encode alert %d: %w", i, err)
		}
		raws[i], sizes[i] = b, len(b)
	}
	for _, r := range split(sizes, MaxBatchAlerts, MaxBatchBytes) {
		body := make([]byte, 0, batchOverhead+r.bytes)
		body = append(body, `{"alerts":[`...)
		for i := r.from; i < r.to; i++ {
			if i > r.from {
				body = append(body, ',')
			}
			body = append(body, raws[i]...)
		}
		body = append(body, "]}"...)

		var ack struct {
			Accepted   *int `json:"accepted"`
			Duplicates int  `json:"duplicates"`
		}
		if err := c.post(ctx, c.alertsURL, body, &ack); err != nil {
			return res, fmt.Errorf("uplink: send %d alerts: %w", r.to-r.from, err)
		}
		res.Batches++
		if ack.Accepted == nil {
			// 202 means stored; a reply we cannot read does not undo that.
			res.Accepted += r.to - r.from
			continue
		}
		res.Accepted += *ack.Accepted
		res.Duplicates += ack.Duplicates
	}
	return res, nil
}

// SendHeartbeat sends one heartbeat, retrying like SendAlerts, and returns
// the commands the gateway has for the device ("fetch-definitions",
// "reboot", …), possibly none.
func (c *Client) SendHeartbeat(ctx context.Context, hb events.Heartbeat) ([]string, error) {
	if err := hb.ValidateFromDevice(); err != nil {
		return nil, fmt.Errorf("uplink: heartbeat: %w", err)
	}
	body, err := marshal(&hb)
	if err != nil {
		return nil, fmt.Errorf("uplink: encode heartbeat: %w", err)
	}
	var reply struct {
		Commands []string `json:"commands"`
	}
	if err := c.post(ctx, c.heartbeatURL, body, &reply); err != nil {
		return nil, fmt.Errorf("uplink: send heartbeat: %w", err)
	}
	return reply.Commands, nil
}

// marshal encodes v without HTML escaping, so zones read "LAN>WAN".
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// post sends body until the gateway acknowledges it, refuses it for good,
// or ctx ends. The error when ctx ends names the last failure the gateway
// or the network caused (an untrusted certificate, a 503), not the attempt
// that ctx's end cut short.
func (c *Client) post(ctx context.Context, url string, body []byte, reply any) error {
	wire, encoding, err := c.encode(body)
	if err != nil {
		return err
	}
	var last error
	b := retry.New(c.minBackoff, c.maxBackoff)
	for attempt := 0; ; attempt++ {
		err := c.attempt(ctx, url, wire, encoding, reply)
		var temp *temporaryError
		if err == nil || !errors.As(err, &temp) {
			return err
		}
		if ctx.Err() != nil {
			if last == nil || !errors.Is(err, ctx.Err()) {
				last = err
			}
			return fmt.Errorf("%w (last failure: %v)", ctx.Err(), last)
		}
		last = err
		wait := retry.Next(b, temp.retryAfter)
		c.log.Warn("uplink: temporary failure, will retry",
			"url", url, "attempt", attempt+1, "wait", wait, "error", err)
		if err := c.sleep(ctx, wait); err != nil {
			return fmt.Errorf("%w (last failure: %v)", err, temp)
		}
	}
}

func (c *Client) encode(body []byte) ([]byte, string, error) {
	if !c.gzip {
		return body, "", nil
	}
	var buf bytes.Buffer
	// BestSpeed: an appliance's CPU is small and busy inspecting traffic;
	// alert JSON still shrinks several times at this level.
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if _, err := zw.Write(body); err != nil {
		return nil, "", fmt.Errorf("gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, "", fmt.Errorf("gzip: %w", err)
	}
	return buf.Bytes(), "gzip", nil
}

// attempt makes one request. Errors worth retrying are *temporaryError.
func (c *Client) attempt(ctx context.Context, url string, body []byte, encoding string, reply any) error {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", c.auth)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "mimamori-agent")
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return &temporaryError{err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil && resp.StatusCode/100 != 2 {
		return &temporaryError{err: fmt.Errorf("read response: %w", err)}
	}

	switch code := resp.StatusCode; {
	case code/100 == 2:
		if len(bytes.TrimSpace(data)) > 0 {
			if err := json.Unmarshal(data, reply); err != nil {
				// Stored is stored: keep the acknowledgement, note the oddity.
				c.log.Warn("uplink: unreadable acknowledgement", "url", url, "status", code, "error", err)
			}
		}
		return nil
	case code == http.StatusTooManyRequests || code/100 == 5:
		msg, _ := serverMessage(data)
		return &temporaryError{
			err:        fmt.Errorf("%d %s: %s", code, http.StatusText(code), msg),
			retryAfter: retry.RetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		}
	case code/100 == 3:
		return &PermanentError{StatusCode: code, Message: "unexpected redirect to " + resp.Header.Get("Location")}
	default:
		msg, field := serverMessage(data)
		return &PermanentError{StatusCode: code, Message: msg, Field: field}
	}
}

// serverMessage reads the gateway's {"error","field"} body, or the start
// of whatever else came back.
func serverMessage(data []byte) (msg, field string) {
	var e struct {
		Error string `json:"error"`
		Field string `json:"field"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return e.Error, e.Field
	}
	s := strings.TrimSpace(string(data))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s, ""
}
