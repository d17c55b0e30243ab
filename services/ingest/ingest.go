// Package ingest is the HTTPS gateway appliances report to: it checks a
// device's credential, validates its alerts and heartbeats, stamps who sent
// them and when, and answers only after Kafka has acknowledged every event.
package ingest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimamori/mimamori/events"
)

// Source is the CloudEvents source of the events ingest writes.
const Source = "mimamori/ingest"

// Authenticator resolves a device credential (registry.Live). Errors wrap
// registry.ErrUnauthenticated (401) or registry.ErrForbidden (403); any
// other error is a 503.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (deviceID, customerID string, err error)
}

// Commands is where pending remote commands come from (registry.Live).
// When Deps.Commands is nil and Deps.Auth implements Commands, Auth is used.
type Commands interface {
	// PendingReboot returns the undelivered reboot request of a device.
	PendingReboot(deviceID string) (requestID string, ok bool)
	// CommandDelivered is told of each delivery record once it is
	// published, so this instance does not repeat the command before its
	// tail reads the record back.
	CommandDelivered(e events.Envelope) error
}

// Publisher writes events and returns once Kafka acknowledged all of them;
// Ping tells whether Kafka answers (eventlog.Producer).
type Publisher interface {
	Publish(ctx context.Context, envs ...events.Envelope) error
	Ping(ctx context.Context) error
}

// Config holds the limits of the wire protocol. The zero value means the
// defaults below.
type Config struct {
	// MaxWireBytes bounds a gzip-compressed body as sent (default 1 MiB).
	MaxWireBytes int64
	// MaxBodyBytes bounds a body after decompression, or as sent when not
	// compressed (default 4 MiB).
	MaxBodyBytes int64
	// MaxAlerts per request (default 1000).
	MaxAlerts int
	// PublishTimeout bounds the wait for Kafka (default 10 s); past it the
	// appliance gets 503 and sends again later.
	PublishTimeout time.Duration
	// MaxFuture is how far ahead of the server clock detected_at and
	// sent_at may be (default 24 h).
	MaxFuture time.Duration
	// Now is the server clock (default time.Now).
	Now func() time.Time
	// DefinitionsDir holds the latest definitions bundle served on
	// GET /v1/definitions (see LatestBundle); empty serves none.
	DefinitionsDir string
	// PublicMetrics also serves /readyz and /metrics on the gateway's own
	// listener, which faces the internet; by default only /healthz is
	// there, and the process serves the rest on its admin listener.
	PublicMetrics bool
	// DeviceRate is how many alerts a second one device may send on
	// average (default 200), DeviceBurst how many at once (default
	// 50,000): beyond them it gets 429 with Retry-After. A negative
	// DeviceRate turns the limit off.
	DeviceRate  float64
	DeviceBurst int
}

// Defaults of Config.
const (
	DefaultMaxWireBytes   = 1 << 20
	DefaultMaxBodyBytes   = 4 << 20
	DefaultMaxAlerts      = 1000
	DefaultPublishTimeout = 10 * time.Second
	DefaultMaxFuture      = 24 * time.Hour
	// A real appliance sends a few alerts a minute and, back from days
	// offline, a queue of up to ~300,000: at these defaults the first
	// 50,000 go at once and the rest within half an hour.
	DefaultDeviceRate  = 200
	DefaultDeviceBurst = 50_000
)

func (c Config) withDefaults() Config {
	if c.MaxWireBytes <= 0 {
		c.MaxWireBytes = DefaultMaxWireBytes
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxAlerts <= 0 {
		c.MaxAlerts = DefaultMaxAlerts
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.MaxFuture <= 0 {
		c.MaxFuture = DefaultMaxFuture
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.DeviceRate == 0 {
		c.DeviceRate = DefaultDeviceRate
	}
	if c.DeviceBurst <= 0 {
		c.DeviceBurst = DefaultDeviceBurst
	}
	return c
}

// Deps are what the gateway talks to. Registry receives the metrics; when
// it is also a prometheus.Gatherer (as *prometheus.Registry is) /metrics
// (Config.PublicMetrics) serves it, otherwise Gatherer must be set for
// /metrics to exist.
type Deps struct {
	Auth     Authenticator
	Pub      Publisher
	Logger   *slog.Logger
	Registry prometheus.Registerer
	Gatherer prometheus.Gatherer
	Commands Commands // optional; see Commands
	// Index remembers the alerts stored recently; run its Follow beside
	// the gateway. Nil means an index of this gateway's own writes only.
	Index *AlertIndex
}

type server struct {
	cfg     Config
	auth    Authenticator
	pub     Publisher
	log     *slog.Logger
	metrics *metrics
	gather  prometheus.Gatherer
	bundles *bundleCache
	cmds    Commands
	index   *AlertIndex
	limit   *limiter
}

// New returns the gateway's handler. Auth and Pub are required; a nil
// Registry means a private one. Negative limits in cfg (see
// Config.Validate) are replaced by the defaults.
func New(cfg Config, deps Deps) http.Handler {
	if deps.Auth == nil || deps.Pub == nil {
		panic("ingest.New: Deps.Auth and Deps.Pub are required")
	}
	s := &server{cfg: cfg.withDefaults(), auth: deps.Auth, pub: deps.Pub, log: deps.Logger, gather: deps.Gatherer, index: deps.Index}
	if s.index == nil {
		s.index = NewIndex(IndexConfig{Now: s.cfg.Now})
	}
	s.limit = newLimiter(s.cfg.DeviceRate, s.cfg.DeviceBurst)
	s.bundles = newBundleCache(cfg.DefinitionsDir)
	s.cmds = deps.Commands
	if s.cmds == nil {
		s.cmds, _ = deps.Auth.(Commands)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	reg := deps.Registry
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, s.gather = r, r
	}
	if s.gather == nil {
		s.gather, _ = reg.(prometheus.Gatherer)
	}
	s.metrics = newMetrics(reg)

	gin.SetMode(gin.ReleaseMode) // gin's mode is process-wide; release keeps it quiet
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.Use(gin.CustomRecoveryWithWriter(io.Discard, s.recovered), s.countRequests)
	s.routes(r)
	return r
}
