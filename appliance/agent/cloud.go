package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/mimamori/mimamori/appliance/defs"
	"github.com/mimamori/mimamori/appliance/queue"
	"github.com/mimamori/mimamori/appliance/uplink"
	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/retry"
)

// CloudConfig configures the online side of an agent.
type CloudConfig struct {
	BaseURL    string // ingest gateway, https://…
	Credential string // device credential credid.secret
	CAFile     string
	Queue      *queue.Queue
	Store      *defs.Store
	Agent      *Agent // for heartbeat counters; may be nil
	// HeartbeatEvery (default 60 s) and PollEvery (default 1 h).
	HeartbeatEvery time.Duration
	PollEvery      time.Duration
	MaxBackoff     time.Duration
	Firmware       string
	// Reboot is called for a "reboot" command from the cloud.
	Reboot func()
	Logger *slog.Logger
	// Now is the clock of heartbeats: sent_at, uptime and the 24 h window
	// of clients seen (default time.Now).
	Now func() time.Time
}

// Cloud sends the queue and heartbeats and fetches definitions.
type Cloud struct {
	cfg   CloudConfig
	up    *uplink.Client
	hc    *http.Client
	log   *slog.Logger
	etag  string
	fetch chan struct{}
	start time.Time
}

// NewCloud builds the online side.
func NewCloud(cfg CloudConfig) (*Cloud, error) {
	if cfg.Queue == nil || cfg.Store == nil {
		return nil, errors.New("agent: cloud needs a queue and a definitions store")
	}
	if cfg.HeartbeatEvery <= 0 {
		cfg.HeartbeatEvery = DefaultHeartbeatEvery
	}
	if cfg.PollEvery <= 0 {
		cfg.PollEvery = DefaultPollEvery
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	up, err := uplink.New(uplink.Config{BaseURL: cfg.BaseURL, Credential: cfg.Credential, CAFile: cfg.CAFile,
		Gzip: true, MaxBackoff: cfg.MaxBackoff, Logger: log})
	if err != nil {
		return nil, err
	}
	var pool *x509.CertPool
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("agent: CA file: %w", err)
		}
		pool = x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
	}
	hc := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true}}
	return &Cloud{cfg: cfg, up: up, hc: hc, log: log, fetch: make(chan struct{}, 1), start: cfg.Now()}, nil
}

// Close releases connections.
func (c *Cloud) Close() error {
	c.hc.CloseIdleConnections()
	return c.up.Close()
}

// Run sends until ctx ends.
func (c *Cloud) Run(ctx context.Context) error {
	done := make(chan struct{}, 2)
	go func() { c.heartbeats(ctx); done <- struct{}{} }()
	go func() { c.definitions(ctx); done <- struct{}{} }()
	c.sendLoop(ctx)
	<-done
	<-done
	return nil
}

// FetchNow asks for an immediate definitions poll.
func (c *Cloud) FetchNow() {
	select {
	case c.fetch <- struct{}{}:
	default:
	}
}

// sendLoop drains the queue: gap records first, then alerts in batches;
// each batch is acknowledged in the queue only after the gateway
// acknowledged it, so nothing unacknowledged is forgotten and nothing
// acknowledged is sent again (a reply lost in transit is the exception the
// gateway's deduplication by id absorbs).
func (c *Cloud) sendLoop(ctx context.Context) {
	var notify <-chan struct{}
	if c.cfg.Agent != nil {
		notify = c.cfg.Agent.QueueNotify()
	}
	for ctx.Err() == nil {
		sent, err := c.SendOnce(ctx)
		if err != nil && ctx.Err() == nil {
			c.log.Warn("agent: uplink", "error", err)
			_ = retry.Wait(ctx, 5*time.Second) // the loop ends with ctx
			continue
		}
		if sent == 0 {
			select {
			case <-ctx.Done():
			case <-notify:
			case <-time.After(time.Second):
			}
		}
	}
}

// SendOnce sends pending gaps and one batch of alerts; it returns how many
// records were acknowledged.
//
// A drop while a batch is being sent (the queue filled up while the cloud
// was unreachable) abandons that batch: its oldest records may be among
// the dropped ones, counted in the new gap, and the gap goes first. So
// the gap counts exactly the alerts that never arrive, unless the gateway
// accepted the batch in the instant before the drop and the reply was
// lost; then a gap counts alerts that did arrive too.
func (c *Cloud) SendOnce(ctx context.Context) (int, error) {
	q := c.cfg.Queue
	n := 0
	for {
		select { // a drop signalled before here is in the gaps read next
		case <-q.Drops():
		default:
		}
		gaps := q.Gaps()
		if len(gaps) == 0 {
			break
		}
		for _, g := range gaps {
			if err := c.sendGap(ctx, g); err != nil {
				return n, err
			}
			if err := q.AckGap(g.ID); err != nil {
				return n, err
			}
			n++
		}
	}
	recs, cur, err := q.Peek(uplink.MaxBatchAlerts, uplink.MaxBatchBytes-64<<10)
	if err != nil || len(recs) == 0 {
		return n, err
	}
	alerts := make([]events.Alert, 0, len(recs))
	var refused uint64
	for _, r := range recs {
		var a events.Alert
		if err := json.Unmarshal(r, &a); err != nil {
			c.log.Error("agent: unreadable queued alert dropped; reported as a gap", "error", err)
			refused++
			continue
		}
		if err := a.ValidateFromDevice(); err != nil { // the gateway would refuse it for good
			c.log.Error("agent: invalid queued alert dropped; reported as a gap", "alert", a.ID, "error", err)
			refused++
			continue
		}
		alerts = append(alerts, a)
	}
	sctx, cancel := context.WithCancel(ctx)
	watched := make(chan struct{})
	var dropped atomic.Bool
	go func() {
		defer close(watched)
		select {
		case <-q.Drops():
			dropped.Store(true)
			cancel()
		case <-sctx.Done():
		}
	}()
	r, err := c.deliver(sctx, alerts)
	cancel()
	<-watched
	if err != nil && dropped.Load() && ctx.Err() == nil {
		return n, nil // the gap first, then a fresh batch
	}
	if err != nil {
		return n, err
	}
	if err := q.AckRefused(cur, refused+r); err != nil {
		return n, err
	}
	return n + len(recs), nil
}

// deliver sends alerts and returns how many the gateway refused for good.
// A refused batch is split in halves until each refused alert is alone, so
// one alert the gateway will never take (keeping it would block everything
// behind it) costs only itself: the others are delivered, it is logged
// and counted in a gap. Halves delivered before an error are delivered
// again on the retry; the gateway acknowledges them as duplicates.
func (c *Cloud) deliver(ctx context.Context, alerts []events.Alert) (uint64, error) {
	if len(alerts) == 0 {
		return 0, nil
	}
	_, err := c.up.SendAlerts(ctx, alerts)
	var perm *uplink.PermanentError
	if !errors.As(err, &perm) || perm.Unauthorized() {
		return 0, err // delivered, or worth retrying as it is
	}
	if len(alerts) == 1 {
		c.log.Error("agent: gateway refused an alert for good; dropped, reported as a gap", "alert", alerts[0].ID,
			"kind", alerts[0].Kind, "error", err)
		return 1, nil
	}
	h := len(alerts) / 2
	r1, err := c.deliver(ctx, alerts[:h])
	if err != nil {
		return 0, err
	}
	r2, err := c.deliver(ctx, alerts[h:])
	return r1 + r2, err
}

func (c *Cloud) sendGap(ctx context.Context, g queue.Gap) error {
	body, _ := json.Marshal(events.AlertsDropped{ID: g.ID, Dropped: g.Dropped, DroppedAt: g.DroppedAt})
	b := retry.New(time.Second, c.cfg.MaxBackoff)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/v1/gaps"), bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+c.cfg.Credential)
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.hc.Do(req)
		var after time.Duration
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			switch {
			case resp.StatusCode/100 == 2:
				return nil
			case resp.StatusCode == 429 || resp.StatusCode/100 == 5:
				after = retry.RetryAfter(resp.Header.Get("Retry-After"), time.Now())
			default:
				return fmt.Errorf("gap record refused: %s", resp.Status)
			}
		}
		if err := retry.Wait(ctx, retry.Next(b, after)); err != nil {
			return err
		}
	}
}

func (c *Cloud) url(p string) string { return strings.TrimRight(c.cfg.BaseURL, "/") + p }

func (c *Cloud) heartbeats(ctx context.Context) {
	t := time.NewTicker(c.cfg.HeartbeatEvery)
	defer t.Stop()
	for {
		c.Heartbeat(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Heartbeat sends one heartbeat with the agent's counters now and acts on
// the commands of the reply. Run sends them every HeartbeatEvery; an agent
// that ends its work (a --read run whose queue is drained) sends a last one
// so the cloud sees its final counters and can still hand it a command.
func (c *Cloud) Heartbeat(ctx context.Context) {
	now := c.cfg.Now()
	hb := events.Heartbeat{ID: ksuid.New().String(), SentAt: now.UTC(), FirmwareVersion: c.cfg.Firmware,
		DefinitionsVersion: c.cfg.Store.Current().ReportedVersion(now), UptimeSeconds: int64(now.Sub(c.start) / time.Second),
		QueueDepth: c.cfg.Queue.Depth()}
	if a := c.cfg.Agent; a != nil {
		st := a.Stats()
		hb.Packets, hb.Bytes, hb.Alerts = st.Packets, st.Bytes, a.Alerts()
		hb.Clients = a.Clients(now)
		if hb.Clients > ClientWarn {
			c.log.Warn("agent: more client devices than the service covers (R-02)", "clients_24h", hb.Clients, "limit", ClientWarn)
		}
	}
	hctx, cancel := context.WithTimeout(ctx, c.cfg.HeartbeatEvery)
	defer cancel()
	cmds, err := c.up.SendHeartbeat(hctx, hb)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("agent: heartbeat", "error", err)
		}
		return
	}
	c.Commands(cmds)
}

// Commands acts on the commands of a heartbeat response.
func (c *Cloud) Commands(cmds []string) {
	for _, cmd := range cmds {
		switch cmd {
		case "fetch-definitions":
			c.FetchNow()
		case "reboot":
			c.log.Warn("agent: reboot requested by the cloud")
			if c.cfg.Reboot != nil {
				c.cfg.Reboot()
			}
		default:
			c.log.Warn("agent: unknown command from the cloud", "command", cmd)
		}
	}
}

func (c *Cloud) definitions(ctx context.Context) {
	t := time.NewTicker(c.cfg.PollEvery)
	defer t.Stop()
	for {
		if _, err := c.PollDefinitions(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("agent: definitions", "error", err)
		}
		if cur := c.cfg.Store.Current(); cur.Expired(c.cfg.Now()) && ctx.Err() == nil {
			exp := "none (a mimamori-defs/1 bundle)"
			if !cur.ExpiresAt.IsZero() {
				exp = cur.ExpiresAt.Format(time.RFC3339)
			}
			c.log.Warn("agent: the definitions in use are past their expiry; inspecting with them until a fresh bundle arrives",
				"version", cur.Version, "expires_at", exp)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.fetch:
		}
	}
}

// PollDefinitions asks the gateway for the latest bundle (conditional on
// the ETag of the last one) and installs it when it is newer and verifies.
// It reports whether new definitions are now in use.
func (c *Cloud) PollDefinitions(ctx context.Context) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/v1/definitions"), nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.Credential)
	if c.etag != "" {
		req.Header.Set("If-None-Match", c.etag)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return false, fmt.Errorf("fetch definitions: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified, http.StatusNotFound:
		return false, nil
	case http.StatusOK:
	default:
		return false, fmt.Errorf("fetch definitions: %s", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, defs.MaxBundleBytes+1))
	if err != nil {
		return false, fmt.Errorf("fetch definitions: %w", err)
	}
	info, err := c.cfg.Store.Install(b)
	switch {
	case errors.Is(err, defs.ErrSame):
		c.etag = resp.Header.Get("ETag")
		return false, nil
	case err != nil:
		// Refused (bad signature, rollback, expired, malformed): keep the
		// set in use, and do not remember the ETag so a fixed bundle is
		// fetched.
		return false, fmt.Errorf("definitions refused, keeping version %d: %w", c.cfg.Store.Version(), err)
	}
	c.etag = resp.Header.Get("ETag")
	c.log.Info("agent: definitions updated", "version", info.Version, "counts", info.Counts)
	return true, nil
}
