package cli

import (
	"context"
	"fmt"
	"io"

	"golang.org/x/sync/errgroup"

	"github.com/mimamori/mimamori/services/app"
	"github.com/mimamori/mimamori/services/platform"
)

func cmdRun(ctx context.Context, e *env, args []string) error {
	if _, err := e.parse(args); err != nil {
		return err
	}
	return runPlatform(ctx, e, app.Services, nil)
}

func cmdServe(ctx context.Context, e *env, args []string) error {
	rest, err := e.parse(args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		e.flags.Usage()
		return usageError{fmt.Sprintf("serve: name one service of %v", app.Services)}
	}
	p, err := platform.Attach(ctx, e.cfg, e.log)
	if err != nil {
		return err
	}
	defer p.Close()
	a, err := app.New(ctx, p, rest)
	if err != nil {
		return err
	}
	e.log.Info("serving", "service", rest[0], "ingest", p.Endpoints.Ingest, "portal", p.Endpoints.Portal, "admin", p.Endpoints.Admin)
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
