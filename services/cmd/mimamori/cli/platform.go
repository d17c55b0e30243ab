package cli

import (
	"context"
	"fmt"
	"io"

	"golang.org/x/sync/errgroup"

	"github.com/mimamori/mimamori/services/cmd/mimamori/app"
	"github.com/mimamori/mimamori/services/cmd/mimamori/config"
	"github.com/mimamori/mimamori/services/cmd/mimamori/platform"
)

type runCmd struct{ Settings }

func (runCmd) groups() []config.Group { return config.AllGroups() }
func (runCmd) run(ctx context.Context, e *env) error {
	return runPlatform(ctx, e, app.Services, nil)
}

// serveCmd runs one service; its subcommands are app.Services.
type serveCmd struct {
	Ingest    serveIngestCmd    `cmd:"" help:"the appliance ingest gateway"`
	Projector serveProjectorCmd `cmd:"" help:"the projector: events into ClickHouse"`
	Portal    servePortalCmd    `cmd:"" help:"the customer portal (needs an SMTP relay: it mails credentials and password resets)"`
	Watchdog  serveWatchdogCmd  `cmd:"" help:"the liveness watchdog of the appliances"`
	Notifier  serveNotifierCmd  `cmd:"" help:"the notifier: alert mails, digests and webhooks"`
}

func (serveCmd) missing() string { return fmt.Sprintf("serve: name one service of %v", app.Services) }

// serviceCmd is what every subcommand of `mimamori serve` reads: the
// settings of the whole platform, as `run`.
type serviceCmd struct{ Settings }

func (serviceCmd) groups() []config.Group { return config.AllGroups() }

type (
	serveIngestCmd    struct{ serviceCmd }
	serveProjectorCmd struct{ serviceCmd }
	servePortalCmd    struct{ serviceCmd }
	serveWatchdogCmd  struct{ serviceCmd }
	serveNotifierCmd  struct{ serviceCmd }
)

func (serveIngestCmd) run(ctx context.Context, e *env) error    { return serve(ctx, e, "ingest") }
func (serveProjectorCmd) run(ctx context.Context, e *env) error { return serve(ctx, e, "projector") }
func (serveWatchdogCmd) run(ctx context.Context, e *env) error  { return serve(ctx, e, "watchdog") }
func (serveNotifierCmd) run(ctx context.Context, e *env) error  { return serve(ctx, e, "notifier") }

// run refuses to start without an SMTP relay: the portal mails temporary
// credentials and password resets, and the embedded mailbox only runs
// beside the notifier in `run` and `demo`, so a portal served alone would
// lose those mails.
func (servePortalCmd) run(ctx context.Context, e *env) error {
	if e.cfg.SMTPHost == "" {
		return usageError{"serve portal: smtp-host (--smtp-host, MIMAMORI_SMTP_HOST) is empty: the portal mails temporary credentials " +
			"and password resets, so it needs an SMTP relay (only run and demo use the embedded mailbox)"}
	}
	return serve(ctx, e, "portal")
}

// serve runs one service against the configured (or running embedded)
// Kafka and ClickHouse.
func serve(ctx context.Context, e *env, name string) error {
	p, err := platform.Attach(ctx, e.cfg, e.log)
	if err != nil {
		return err
	}
	defer p.Close()
	a, err := app.New(ctx, p, []string{name})
	if err != nil {
		return err
	}
	e.log.Info("serving", "service", name, "ingest", p.Endpoints.Ingest, "portal", p.Endpoints.Portal, "admin", p.Endpoints.Admin)
	return a.Run(ctx)
}

// runPlatform starts the platform and the services, writes endpoints.json,
// and runs extra (the demo fleet) beside them until ctx ends.
func runPlatform(ctx context.Context, e *env, names []string, extra func(context.Context, *platform.Platform) error) error {
	p, err := platform.Open(ctx, e.cfg, e.log)
	if err != nil {
		return err
	}
	defer p.Close()
	a, err := app.New(ctx, p, names)
	if err != nil {
		return err
	}
	if err := p.WriteEndpoints(); err != nil {
		return fmt.Errorf("write endpoints: %w", err)
	}
	printEndpoints(e.out, p)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.Run(gctx) })
	if extra != nil {
		g.Go(func() error { return extra(gctx, p) })
	}
	err = g.Wait()
	e.log.Info("mimamori stopped")
	return err
}

func printEndpoints(w io.Writer, p *platform.Platform) {
	ep := p.Endpoints
	fmt.Fprintf(w, "mimamori is running (data folder %s)\n", p.Cfg.DataDir)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "  %-20s %s\n", k, v)
		}
	}
	row("portal", ep.Portal)
	row("ingest (HTTPS)", ep.Ingest)
	row("ingest CA", ep.IngestCAFile)
	row("admin", ep.Admin)
	row("mailbox", ep.Mailbox)
	row("mailbox SMTP", ep.MailboxSMTP)
	row("kafka", ep.Kafka)
	row("clickhouse native", ep.ClickHouseNative)
	row("clickhouse http", ep.ClickHouseHTTP)
	if ep.AnalystUser != "" {
		row("analyst SQL", analystSQL(ep))
	}
	fmt.Fprintf(w, "  endpoints written to %s; stop with Ctrl-C\n", platform.EndpointsFile(p.Cfg.DataDir))
}

// analystSQL is the clickhouse-client command line of the embedded
// ClickHouse's read-only analyst user.
func analystSQL(ep platform.Endpoints) string {
	pw := "\"$MIMAMORI_ANALYST_PASSWORD\""
	if ep.AnalystPasswordFile != "" {
		pw = fmt.Sprintf("\"$(cat %s)\"", ep.AnalystPasswordFile)
	}
	return fmt.Sprintf("clickhouse-client --port %s --user %s --password %s --database %s",
		portOf(ep.ClickHouseNative), ep.AnalystUser, pw, ep.ClickHouseDatabase)
}

func portOf(hostport string) string {
	for i := len(hostport) - 1; i >= 0; i-- {
		if hostport[i] == ':' {
			return hostport[i+1:]
		}
	}
	return hostport
}
