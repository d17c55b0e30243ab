// Package app runs a chosen set of mimamori services on a platform: the
// ingest gateway, the projector and the portal, each with its listener,
// and the admin listener with the health, readiness and metrics of all of
// them, joined so that one failing stops the others and a cancelled
// context shuts all of them down gracefully.
package app

import (
	"context"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/mimamori/mimamori/analytics/projection"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/infra/admin"
	"github.com/mimamori/mimamori/portal-api/accounts"
	"github.com/mimamori/mimamori/portal-api/dashboard"
	"github.com/mimamori/mimamori/portal-api/portal"
	"github.com/mimamori/mimamori/services/cmd/mimamori/platform"
	"github.com/mimamori/mimamori/services/ingest"
	"github.com/mimamori/mimamori/services/mailbox"
	"github.com/mimamori/mimamori/services/projector"
	"github.com/mimamori/mimamori/services/registry"
	"github.com/mimamori/mimamori/services/tlsca"
)

// Services are the names `mimamori serve` accepts.
var Services = []string{"ingest", "projector", "portal", "watchdog", "notifier"}

// App is a set of services bound to their listeners, ready to Run.
//
// What several services share (the portal's address, the embedded mailbox,
// the embedded SMS sink) is made by the first service that asks for it, so
// the services may be built in any order.
type App struct {
	p     *platform.Platform
	reg   *prometheus.Registry
	parts []func(context.Context) error
	lns   []net.Listener
	// closers run once every part has returned (or New failed): what the
	// parts share, such as the embedded mailbox, closes after its last user.
	closers []func()
	// checks are the readiness checks of the services, served on the
	// admin listener.
	checks map[string]admin.Check

	runsPortal bool
	portalLn   net.Listener     // see portalListener
	box        *mailbox.Mailbox // see mailbox; nil with a relay
	sms        accounts.SMSSender
	smsSink    *accounts.SMSSink // the embedded SMS gateway, when no real one is set
}

// New binds the listeners of the named services (so port 0 resolves before
// Run) and records their addresses in p.Endpoints.
func New(ctx context.Context, p *platform.Platform, names []string) (_ *App, err error) {
	a := &App{p: p, reg: admin.NewRegistry(), checks: map[string]admin.Check{}}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	build := map[string]func() error{
		"ingest":    func() error { return a.ingest(ctx) },
		"projector": a.projector,
		"portal":    a.portal,
		"watchdog":  a.watchdog,
		"notifier":  a.notifier,
	}
	var chosen []string
	for _, n := range names {
		if !slices.Contains(Services, n) {
			return nil, fmt.Errorf("unknown service %q (want one of %v)", n, Services)
		}
		if !slices.Contains(chosen, n) {
			chosen = append(chosen, n)
		}
	}
	a.runsPortal = slices.Contains(chosen, "portal")
	for _, n := range chosen {
		if err := build[n](); err != nil {
			return nil, err
		}
	}
	// Every service's health, readiness and metrics are on the admin
	// address, which need not face the internet as the ingest and portal
	// listeners do (those serve them too only with public-metrics).
	if slices.ContainsFunc(chosen, func(n string) bool { return n == "projector" || n == "watchdog" || n == "notifier" }) {
		a.checks["clickhouse"] = p.Conn.Ping
	}
	ln, err := a.listen(p.Cfg.AdminAddr)
	if err != nil {
		return nil, err
	}
	p.Endpoints.Admin = "http://" + ln.Addr().String()
	h := admin.Handler(a.reg, a.checks)
	a.parts = append(a.parts, func(ctx context.Context) error { return admin.Serve(ctx, ln, h, p.Log) })
	return a, nil
}

func (a *App) listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	a.lns = append(a.lns, ln)
	return ln, nil
}

// close closes the listeners and runs the closers, last made first.
func (a *App) close() {
	for _, ln := range a.lns {
		_ = ln.Close()
	}
	for _, c := range slices.Backward(a.closers) {
		c()
	}
}

// Run runs every service until ctx ends or one fails.
func (a *App) Run(ctx context.Context) error {
	defer a.close()
	g, ctx := errgroup.WithContext(ctx)
	for _, part := range a.parts {
		g.Go(func() error { return part(ctx) })
	}
	return g.Wait()
}

// portalListener is the portal's listener, bound at the first call; its
// address is in Endpoints.Portal.
func (a *App) portalListener() (net.Listener, error) {
	if a.portalLn == nil {
		ln, err := a.listen(a.p.Cfg.PortalAddr)
		if err != nil {
			return nil, err
		}
		a.portalLn = ln
		a.p.Endpoints.Portal = "http://" + ln.Addr().String()
	}
	return a.portalLn, nil
}

// portalURL is where mail links send the customers: portal-url, or else
// the portal of this process, or else portal-addr.
func (a *App) portalURL() (string, error) {
	switch {
	case a.p.Cfg.PortalURL != "":
		return a.p.Cfg.PortalURL, nil
	case a.runsPortal:
		ln, err := a.portalListener()
		if err != nil {
			return "", err
		}
		return "http://" + ln.Addr().String(), nil
	default:
		return "http://" + a.p.Cfg.PortalAddr, nil
	}
}

func (a *App) projector() error {
	w, err := projection.New(a.p.Conn, a.p.Cfg.ClickHouseDatabase, a.p.Log.With("service", "projector"))
	if err != nil {
		return err
	}
	pr, err := projector.New(projector.Config{InstanceID: a.p.Cfg.InstanceID}, a.p.Kafka, w, a.p.Log.With("service", "projector"), a.reg)
	if err != nil {
		return err
	}
	a.parts = append(a.parts, pr.Run)
	return nil
}

func (a *App) portal() error {
	ln, err := a.portalListener()
	if err != nil {
		return err
	}
	acc, err := a.accounts()
	if err != nil {
		return err
	}
	fleet, err := dashboard.NewFleet(a.p.Conn, a.p.Cfg.ClickHouseDatabase, nil)
	if err != nil {
		return err
	}
	log := a.p.Log.With("service", "portal")
	// The participants' comparison is kept computed while the platform
	// runs, and stops with it.
	a.parts = append(a.parts, func(ctx context.Context) error { return fleet.Run(ctx, log) })
	deps := portal.Deps{Conn: a.p.Conn, Database: a.p.Cfg.ClickHouseDatabase, Registry: a.reg,
		Logger: log, Accounts: acc, Fleet: fleet,
		TrustedProxies: a.p.Cfg.PortalTrustedProxies, PublicMetrics: a.p.Cfg.PublicMetrics}
	h, err := portal.New(deps)
	if err != nil {
		return err
	}
	maps.Copy(a.checks, portal.Checks(deps))
	a.parts = append(a.parts, func(ctx context.Context) error {
		return portal.Serve(ctx, ln, h, portal.ServerConfig{}, a.p.Log.With("service", "portal"))
	})
	return nil
}

func (a *App) ingest(ctx context.Context) error {
	cfg := a.p.Cfg
	log := a.p.Log.With("service", "ingest")
	certFile, keyFile := cfg.IngestCertFile, cfg.IngestKeyFile
	if certFile == "" {
		paths, err := tlsca.Ensure(filepath.Join(cfg.DataDir, "tls"), cfg.IngestHosts)
		if err != nil {
			return fmt.Errorf("local CA: %w", err)
		}
		certFile, keyFile = paths.ServerCert, paths.ServerKey
		a.p.Endpoints.IngestCAFile = paths.CACert
	}
	tlsCfg, err := tlsca.ServerTLS(certFile, keyFile)
	if err != nil {
		return err
	}
	live, err := registry.NewLive(a.p.Kafka, log)
	if err != nil {
		return err
	}
	prod, err := eventlog.NewProducer(a.p.Kafka)
	if err != nil {
		return err
	}
	rate := float64(cfg.IngestDeviceRate)
	if rate == 0 {
		rate = -1 // no limit
	}
	index := ingest.NewIndex(ingest.IndexConfig{})
	h := ingest.New(ingest.Config{DefinitionsDir: filepath.Join(cfg.DataDir, "definitions"), PublicMetrics: cfg.PublicMetrics,
		DeviceRate: rate, DeviceBurst: cfg.IngestDeviceBurst},
		ingest.Deps{Auth: live, Pub: prod, Logger: log, Registry: a.reg, Index: index})
	a.checks["kafka"] = prod.Ping
	ln, err := a.listen(cfg.IngestAddr)
	if err != nil {
		prod.Close()
		return err
	}
	a.p.Endpoints.Ingest = "https://" + ln.Addr().String()
	srv := ingest.NewServer(ln, tlsCfg, h, log)
	a.parts = append(a.parts, live.Run,
		func(ctx context.Context) error { return index.Follow(ctx, a.p.Kafka, log) },
		func(ctx context.Context) error {
			defer prod.Close()
			return srv.Run(ctx)
		})
	return nil
}
