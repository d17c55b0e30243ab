package cli

import (
	"context"
	"fmt"

	"github.com/mimamori/mimamori/services/cmd/mimamori/config"
	"github.com/mimamori/mimamori/services/cmd/mimamori/platform"
	"github.com/mimamori/mimamori/services/projector"
	"github.com/mimamori/mimamori/services/replay"
)

type replayCmd struct {
	Keep bool   `help:"keep the rebuilt database instead of dropping it after the comparison"`
	Into string `help:"name of the database to rebuild into (default <database>_replay_<time>)"`
	Settings
}

func (replayCmd) groups() []config.Group { return attachGroups() }

func (c replayCmd) run(ctx context.Context, e *env) error {
	p, err := platform.Attach(ctx, e.cfg, e.log)
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Fprintf(e.out, "replaying the log from offset 0 into a fresh database…\n")
	rep, err := replay.Run(ctx, p.Kafka, p.Conn, e.cfg.ClickHouseDatabase, replay.Options{
		FreshDB:   c.Into,
		LiveGroup: projector.Group,
		Progress:  func(n int) { fmt.Fprintf(e.out, "  %d events replayed\n", n) },
	}, e.log)
	if rep.FreshDB != "" && !c.Keep {
		defer func() {
			if err := replay.Drop(context.WithoutCancel(ctx), p.Conn, rep.FreshDB); err != nil {
				e.log.Warn("drop replay database", "database", rep.FreshDB, "err", err)
			}
		}()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.out, "%d events replayed into %s; live database %s:\n", rep.Events, rep.FreshDB, e.cfg.ClickHouseDatabase)
	for _, t := range rep.Tables {
		fmt.Fprintf(e.out, "  %s\n", t)
	}
	if !rep.Match {
		return fmt.Errorf("replay does not match the live projections (see the tables marked MISMATCH)")
	}
	fmt.Fprintln(e.out, "every table matches")
	return nil
}
