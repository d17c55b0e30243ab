package dashboard

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"golang.org/x/sync/singleflight"

	"github.com/mimamori/mimamori/analytics/migrate"
)

// Fleet is the cache of the fleet-wide daily figures of the participants'
// comparison: the same for every customer, so computed once per
// process and shared by every request. Its owner runs it (Run) with the
// platform, so that the default period's figures are ready at start and
// after every JST midnight, and stops it with the platform.
type Fleet struct {
	conn    driver.Conn
	db      string
	now     func() time.Time
	timeout time.Duration

	mu      sync.Mutex
	stale   time.Duration
	quick   time.Duration
	entries map[string]*fleetEntry // by period
	once    singleflight.Group
}

// NewFleet returns the fleet cache over database db; now defaults to
// time.Now.
func NewFleet(conn driver.Conn, db string, now func() time.Time) (*Fleet, error) {
	if err := migrate.ValidDatabase(db); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return newFleet(conn, db, now), nil
}

func newFleet(conn driver.Conn, db string, now func() time.Time) *Fleet {
	return &Fleet{conn: conn, db: db, now: now, timeout: 10 * time.Second,
		stale: time.Minute, quick: fleetQuick, entries: map[string]*fleetEntry{}}
}

func (f *Fleet) q(sql string) string { return strings.ReplaceAll(sql, "{db}", f.db) }

// fleetEntry is the fleet-wide daily figures of one period: the same for
// every customer, so computed once and shared. fingerprint says which
// data they were computed from (Fleet.fingerprint).
type fleetEntry struct {
	at          time.Time     // when computed
	took        time.Duration // how long computing took
	fingerprint string
	active      map[string]map[string]bool
	counts      map[string]map[string]uint64
}

// fleetQuick is the computation time below which figures are recomputed
// in the request itself rather than served stale: a small fleet always
// sees its newest alerts.
const fleetQuick = 20 * time.Millisecond

// fleetFresh is how long fleet figures are reused while the fingerprint is
// unchanged; after that they are still served, but refreshed behind
// (a dropped partition can leave the fingerprint as it was).
const fleetFresh = 10 * time.Minute

// SetMaxStale sets how long the fleet-wide figures may still be served
// after the aggregates changed, while one refresh runs in the background
// (a minute by default). Past it a request waits for new figures. 0
// computes them on every request.
func (f *Fleet) SetMaxStale(d time.Duration) {
	f.mu.Lock()
	f.stale, f.entries = d, map[string]*fleetEntry{}
	f.mu.Unlock()
}

// days gives the period's fleet figures: per day, the participating
// customers and every customer's alert count. Merging the states of every
// customer takes a few hundred milliseconds at ten million alerts, so one
// computation serves every customer: reused while the aggregates'
// fingerprint is unchanged; after it changed, served for up to fleetStale
// while a single refresh runs behind, unless computing them is quick
// (fleetQuick); computed once for concurrent requests when there is
// nothing to serve.
func (f *Fleet) days(ctx context.Context, p Period) (*fleetEntry, error) {
	key := Day(p.From) + "/" + Day(p.To)
	fp, err := f.fingerprint(ctx)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	e, stale := f.entries[key], f.stale
	f.mu.Unlock()
	if stale <= 0 {
		return f.compute(ctx, p, fp)
	}
	if e != nil {
		age := time.Since(e.at)
		if e.fingerprint == fp && age < fleetFresh {
			return e, nil
		}
		if e.fingerprint == fp || (age < stale && e.took >= f.quick) {
			// A refresh starts no sooner than four computations' time after
			// the last one ended: under steady ingest, refreshing takes at
			// most a fifth of a core whatever the request rate.
			if age >= 4*e.took {
				f.load(key, p) // behind: nobody waits for it
			}
			return e, nil
		}
	}
	select {
	case r := <-f.load(key, p):
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*fleetEntry), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("dashboard: participants: %w", ctx.Err())
	}
}

// load computes a period's figures and keeps them: one computation
// per period at a time, shared by every request that waits for it
// meanwhile, on a context of its own (a request that gives up does not
// cancel it for the others).
func (f *Fleet) load(key string, p Period) <-chan singleflight.Result {
	return f.once.DoChan(key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
		defer cancel()
		fp, err := f.fingerprint(ctx)
		if err != nil {
			return nil, err
		}
		e, err := f.compute(ctx, p, fp)
		if err == nil {
			f.keep(key, e)
		}
		return e, err
	})
}

func (f *Fleet) keep(key string, e *fleetEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stale <= 0 {
		return
	}
	if _, ok := f.entries[key]; !ok && len(f.entries) >= 64 {
		clear(f.entries) // many custom periods: start over rather than grow
	}
	f.entries[key] = e
}

// Warm computes the fleet figures of the default period (the last 30
// days), so that the first comparison after a start does not wait for them.
func (f *Fleet) Warm(ctx context.Context) error {
	_, err := f.days(ctx, LastDays(f.now(), 30))
	return err
}

// Run computes the default period's figures now and again a second after every JST
// midnight, when the default period moves on a day and its figures are
// new, until ctx ends: no customer's first comparison of the day waits for
// them. A failure is logged and tried again a minute later.
func (f *Fleet) Run(ctx context.Context, log *slog.Logger) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := f.Warm(wctx)
		cancel()
		wait := untilAfterMidnight(f.now())
		if err != nil && ctx.Err() == nil {
			log.Warn("warming the participants' comparison; trying again in a minute", "err", err)
			wait = min(wait, time.Minute)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// untilAfterMidnight is how long from now until a second past the next
// JST midnight.
func untilAfterMidnight(now time.Time) time.Duration {
	return Today(now).AddDate(0, 0, 1).Add(time.Second).Sub(now)
}

// fingerprint is the highest block number of the two aggregates'
// active parts. Every insert takes a new block number and a merge keeps
// the highest of its parts, so figures with the same fingerprint are those
// of the current data. (A row count would not do: merging an aggregate
// folds new rows into old ones and can bring the count back.)
func (f *Fleet) fingerprint(ctx context.Context) (string, error) {
	var state, active int64
	if err := f.conn.QueryRow(ctx, `SELECT
		maxIf(max_block_number, table = 'alerts_customer_daily_jst_state'),
		maxIf(max_block_number, table = 'active_days_jst_log')
		FROM system.parts WHERE database = ? AND active AND table IN ('alerts_customer_daily_jst_state', 'active_days_jst_log')`,
		f.db).Scan(&state, &active); err != nil {
		return "", fmt.Errorf("dashboard: fleet fingerprint: %w", err)
	}
	return fmt.Sprintf("%d/%d", state, active), nil
}

// compute reads the period's fleet figures.
func (f *Fleet) compute(ctx context.Context, p Period, fp string) (*fleetEntry, error) {
	from, to := Day(p.From), Day(p.To)
	began := time.Now()
	e := &fleetEntry{fingerprint: fp,
		active: map[string]map[string]bool{},   // day -> customers
		counts: map[string]map[string]uint64{}, // day -> customer -> alerts
	}
	rows, err := f.conn.Query(ctx, f.q(`SELECT toString(day), customer_id FROM {db}.active_days_jst_log
		WHERE day >= toDate(?) AND day <= toDate(?) GROUP BY day, customer_id`), from, to)
	if err != nil {
		return nil, fmt.Errorf("dashboard: participants: %w", err)
	}
	for rows.Next() {
		var d, c string
		if err := rows.Scan(&d, &c); err != nil {
			rows.Close()
			return nil, err
		}
		if e.active[d] == nil {
			e.active[d] = map[string]bool{}
		}
		e.active[d][c] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = f.conn.Query(ctx, f.q(`SELECT toString(day), customer_id, uniqExactMerge(alerts) FROM {db}.alerts_customer_daily_jst_state
		WHERE day >= toDate(?) AND day <= toDate(?) GROUP BY day, customer_id`), from, to)
	if err != nil {
		return nil, fmt.Errorf("dashboard: participant counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d, c string
		var n uint64
		if err := rows.Scan(&d, &c, &n); err != nil {
			return nil, err
		}
		if e.counts[d] == nil {
			e.counts[d] = map[string]uint64{}
		}
		e.counts[d][c] = n
	}
	e.at = time.Now()
	e.took = e.at.Sub(began)
	return e, rows.Err()
}
