// Package replay rebuilds every ClickHouse projection from offset 0 of the
// topics into a fresh database and compares it, table by table, with the
// live one. It is how an auditor checks that the projections are exactly
// what the immutable log says.
package replay

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/analytics/migrate"
	"github.com/mimamori/mimamori/analytics/projection"
	"github.com/mimamori/mimamori/analytics/replaycheck"
	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/services/projector"
)

// Report is the outcome of one replay.
type Report struct {
	FreshDB string
	Events  int
	Tables  []replaycheck.TableResult
	Match   bool
}

// Options tune a replay.
type Options struct {
	// FreshDB is the database to rebuild into; a new timestamped name when empty.
	FreshDB string
	// Batch is the number of events per insert (5000 when zero).
	Batch int
	// Progress, when set, is called after every batch with the events so far.
	Progress func(n int)
	// LiveGroup, when set, is the consumer group feeding the live database:
	// the comparison waits until it has committed everything in the log,
	// so that both databases describe the same events.
	LiveGroup string
}

// WaitGroup waits until the consumer group has committed everything in the
// projected topics.
func WaitGroup(ctx context.Context, kcfg eventlog.Config, group string) error {
	var topics []string
	for _, t := range projector.Topics() {
		topics = append(topics, kcfg.Topic(t))
	}
	cl, err := kgo.NewClient(kcfg.ClientOpts()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		lags, err := adm.Lag(ctx, group)
		if err != nil {
			return fmt.Errorf("lag of group %s: %w", group, err)
		}
		var total int64
		var behind []string
		state := "unknown"
		for _, l := range lags {
			if l.FetchErr != nil || l.DescribeErr != nil {
				return fmt.Errorf("lag of group %s: %v %v", group, l.FetchErr, l.DescribeErr)
			}
			state = fmt.Sprintf("%s with %d members", l.State, len(l.Members))
			for _, t := range topics {
				for p, pl := range l.Lag[t] {
					if pl.Lag > 0 {
						total += pl.Lag
						behind = append(behind, fmt.Sprintf("%s/%d:%d", t, p, pl.Lag))
					}
				}
			}
		}
		if total == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the consumer group %s (%s) is still %d events behind the log (%v); compare again once it caught up",
				group, state, total, behind)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Run reads every projected topic from the beginning up to its end at the
// time of the call, writes it into a fresh database with the same
// projection code as the live projector, and compares the two.
func Run(ctx context.Context, kcfg eventlog.Config, conn driver.Conn, liveDB string, opt Options, log *slog.Logger) (Report, error) {
	if opt.FreshDB == "" {
		opt.FreshDB = fmt.Sprintf("%s_replay_%s", liveDB, time.Now().UTC().Format("20060102T150405"))
	}
	if opt.Batch <= 0 {
		opt.Batch = 5000
	}
	var rep Report
	if err := checkFresh(ctx, conn, liveDB, opt.FreshDB); err != nil {
		return rep, err
	}
	rep.FreshDB = opt.FreshDB // from here on, the caller may drop it
	if _, err := migrate.Apply(ctx, conn, opt.FreshDB); err != nil {
		return rep, fmt.Errorf("prepare %s: %w", opt.FreshDB, err)
	}
	w, err := projection.New(conn, opt.FreshDB, log)
	if err != nil {
		return rep, err
	}
	var topics []string
	for _, t := range projector.Topics() {
		topics = append(topics, kcfg.Topic(t))
	}
	tail, err := eventlog.NewTail(kcfg, topics, log)
	if err != nil {
		return rep, err
	}

	var (
		mu     sync.Mutex
		buf    []events.Envelope
		runErr error
	)
	flush := func() {
		if len(buf) == 0 || runErr != nil {
			return
		}
		if err := w.Apply(ctx, buf); err != nil {
			runErr = err
			return
		}
		rep.Events += len(buf)
		buf = buf[:0]
		if opt.Progress != nil {
			opt.Progress(rep.Events)
		}
	}
	tctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- tail.Run(tctx, func(_ *kgo.Record, e events.Envelope) {
			mu.Lock()
			defer mu.Unlock()
			buf = append(buf, e)
			if len(buf) >= opt.Batch {
				flush()
			}
		})
	}()
	err = tail.WaitCaughtUp(ctx)
	cancel()
	if e := <-done; err == nil {
		err = e
	}
	if err != nil {
		return rep, fmt.Errorf("read the log: %w", err)
	}
	mu.Lock()
	flush()
	err = runErr
	mu.Unlock()
	if err != nil {
		return rep, fmt.Errorf("write %s: %w", opt.FreshDB, err)
	}
	if opt.LiveGroup != "" {
		if err := WaitGroup(ctx, kcfg, opt.LiveGroup); err != nil {
			return rep, err
		}
	}
	if rep.Tables, err = replaycheck.Compare(ctx, conn, liveDB, opt.FreshDB); err != nil {
		return rep, err
	}
	rep.Match = replaycheck.AllMatch(rep.Tables)
	return rep, nil
}

// checkFresh refuses a target that is not a new database: the live one
// (the replay would write into it, compare it with itself and then drop
// it), or any that exists (it would mix old rows into the comparison, and
// be dropped afterwards).
func checkFresh(ctx context.Context, conn driver.Conn, liveDB, fresh string) error {
	if err := migrate.ValidDatabase(fresh); err != nil {
		return fmt.Errorf("replay --into: %w", err)
	}
	if fresh == liveDB {
		return fmt.Errorf("replay --into %s: that is the live database; a replay rebuilds into a new database and compares it with the live one (leave --into out, or name a database that does not exist)", fresh)
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", fresh).Scan(&n); err != nil {
		return fmt.Errorf("replay --into %s: %w", fresh, err)
	}
	if n > 0 {
		return fmt.Errorf("replay --into %s: the database exists; a replay rebuilds into a new database (name another, or drop %s first if it is an old replay)", fresh, fresh)
	}
	return nil
}

// Drop removes a replay database.
func Drop(ctx context.Context, conn driver.Conn, db string) error {
	if err := migrate.ValidDatabase(db); err != nil {
		return err
	}
	return conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
}
