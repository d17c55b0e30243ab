// Package migrate applies the embedded ClickHouse DDL migrations
// (schemas.ClickHouse) to a database, each exactly once, recording them in a
// schema_migrations table. golang-migrate and goose hang against 18.16
// because they insert with VALUES; this migrator inserts with a batch.
//
// Migration files are named NNNN_name.sql and applied in name order. Every
// table name is written as {db}.name: the migrator substitutes the target
// database, so `mimamori replay` can rebuild everything into a fresh
// database beside the live one. A file may hold several statements, each
// ending with a semicolon at the end of a line; lines starting with -- are
// comments. ClickHouse DDL is not transactional, so statements use IF NOT
// EXISTS: a file that failed half way is simply applied again.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/mimamori/mimamori/events/retry"
	"github.com/mimamori/mimamori/schemas"
)

// Placeholder is replaced by the database name in every migration.
const Placeholder = "{db}"

// statementTimeout bounds each statement; DDL on an idle server takes
// milliseconds.
const statementTimeout = time.Minute

var validName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// ValidDatabase reports whether db is a safe, unquoted ClickHouse
// identifier; database names are pasted into SQL, so nothing else passes.
func ValidDatabase(db string) error {
	if !validName.MatchString(db) {
		return fmt.Errorf("database name %q: want letters, digits and _ only, not starting with a digit", db)
	}
	return nil
}

// Migration is one embedded migration file.
type Migration struct {
	Name       string   // file name, e.g. 0001_alerts.sql
	Statements []string // with the {db} placeholder still in place
}

// Migrations returns the embedded migrations in the order they apply.
func Migrations() ([]Migration, error) {
	return load(schemas.ClickHouse)
}

func load(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "clickhouse/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]Migration, 0, len(names))
	for _, path := range names {
		b, err := fs.ReadFile(fsys, path)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", path, err)
		}
		out = append(out, Migration{Name: path[strings.LastIndex(path, "/")+1:], Statements: Split(string(b))})
	}
	return out, nil
}

// Split cuts a migration into statements: each ends with a semicolon at the
// end of a line. Comment lines (--) and blank statements are dropped.
func Split(sql string) []string {
	var stmts []string
	var cur strings.Builder
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			stmts = append(stmts, s)
		}
		cur.Reset()
	}
	for _, line := range strings.Split(sql, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") {
			continue
		}
		if strings.HasSuffix(trimmed, ";") {
			cur.WriteString(strings.TrimSuffix(strings.TrimRight(line, " \t\r"), ";"))
			flush()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	flush()
	return stmts
}

// Apply creates db if missing and applies, in name order, every embedded
// migration not yet recorded in db.schema_migrations. It returns the names
// it applied (none when the database is up to date). Every process of the
// platform calls it at start, so several may at once: the one that takes
// the database's migration lock applies what is pending, the others wait
// for it and then find nothing left to do.
func Apply(ctx context.Context, conn driver.Conn, db string) ([]string, error) {
	migrations, err := Migrations()
	if err != nil {
		return nil, err
	}
	return apply(ctx, conn, db, migrations)
}

func apply(ctx context.Context, conn driver.Conn, db string, migrations []Migration) ([]string, error) {
	if err := ValidDatabase(db); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	for _, stmt := range []string{
		"CREATE DATABASE IF NOT EXISTS " + db,
		"CREATE TABLE IF NOT EXISTS " + db + ".schema_migrations (name String, applied_at DateTime('UTC')) " +
			"ENGINE = ReplacingMergeTree() ORDER BY name",
	} {
		if err := exec(ctx, conn, stmt); err != nil {
			return nil, fmt.Errorf("migrate %s: %w", db, err)
		}
	}
	done, err := appliedNames(ctx, conn, db)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", db, err)
	}
	if !slices.ContainsFunc(migrations, func(m Migration) bool { return !done[m.Name] }) {
		return nil, nil // up to date: no lock needed
	}
	unlock, err := lock(ctx, conn, db)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", db, err)
	}
	defer unlock()
	// Another migrator may have applied them while this one waited.
	if done, err = appliedNames(ctx, conn, db); err != nil {
		return nil, fmt.Errorf("migrate %s: %w", db, err)
	}
	var applied []string
	for _, m := range migrations {
		if done[m.Name] {
			continue
		}
		for i, stmt := range m.Statements {
			if err := exec(ctx, conn, strings.ReplaceAll(stmt, Placeholder, db)); err != nil {
				return applied, fmt.Errorf("migrate %s: %s statement %d: %w", db, m.Name, i+1, err)
			}
		}
		if err := record(ctx, conn, db, m.Name); err != nil {
			return applied, fmt.Errorf("migrate %s: record %s: %w", db, m.Name, err)
		}
		applied = append(applied, m.Name)
	}
	return applied, nil
}

// LockTable is the table whose existence is a database's migration lock:
// ClickHouse (18.16 too) has no locks, but of two CREATE TABLE of one name
// exactly one succeeds. A migration such as 0011, which moves a table
// aside and back, must never run twice at once.
const LockTable = "schema_migrations_lock"

// The lock is a lease: its holder writes a beat into the table every
// lockBeat, and a lock whose last beat is older than LockStale was left by
// a migrator that died (SIGKILL, power loss); a waiting one takes it over.
// Migrations are re-runnable, so the next one simply applies again what
// the dead one had not recorded.
const (
	lockBeat  = 2 * time.Second
	LockStale = 15 * time.Second
)

// tableExists is ClickHouse's TABLE_ALREADY_EXISTS.
const tableExists = 57

// lock takes db's migration lock, waiting while another migrator holds it,
// and returns its release.
func lock(ctx context.Context, conn driver.Conn, db string) (unlock func(), err error) {
	table := db + "." + LockTable
	me := fmt.Sprintf("%x", time.Now().UnixNano())
	b := retry.New(100*time.Millisecond, 2*time.Second)
	for {
		err := exec(ctx, conn, "CREATE TABLE "+table+" (holder String, at DateTime) ENGINE = Memory")
		if err == nil {
			return hold(ctx, conn, table, me), nil
		}
		var ex *clickhouse.Exception
		if !errors.As(err, &ex) || ex.Code != tableExists {
			return nil, fmt.Errorf("take the migration lock %s: %w", table, err)
		}
		if holder, age, ok := lease(ctx, conn, db, LockTable); ok && age > LockStale {
			// Move the dead holder's lock aside (one RENAME of a name
			// wins), then make sure it is the one judged dead: a live
			// holder's, taken in a race with another waiter, goes back.
			aside := LockTable + "_" + me
			if exec(ctx, conn, "RENAME TABLE "+table+" TO "+db+"."+aside) == nil {
				if h, _, _ := lease(ctx, conn, db, aside); h == holder {
					_ = exec(ctx, conn, "DROP TABLE IF EXISTS "+db+"."+aside)
					continue
				}
				_ = exec(ctx, conn, "RENAME TABLE "+db+"."+aside+" TO "+table)
			}
		}
		if err := retry.Wait(ctx, b.NextBackOff()); err != nil {
			return nil, fmt.Errorf("wait for the migration lock %s (another process is migrating): %w", table, err)
		}
	}
}

// hold beats the lease of the lock just taken until its release drops it.
func hold(ctx context.Context, conn driver.Conn, table, me string) (unlock func()) {
	beat := func(ctx context.Context) {
		_ = exec(ctx, conn, "INSERT INTO "+table+" (holder, at) SELECT '"+me+"', now()")
	}
	beat(ctx)
	hctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(lockBeat)
		defer t.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-t.C:
				beat(hctx)
			}
		}
	}()
	return func() {
		stop()
		<-done
		_ = exec(context.WithoutCancel(ctx), conn, "DROP TABLE IF EXISTS "+table)
	}
}

// lease is the holder of a lock table and how long ago it last beat (by
// the server's clock), or since the table was created when it has not beat
// yet; ok is false when the table is gone.
func lease(ctx context.Context, conn driver.Conn, db, name string) (holder string, age time.Duration, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	var created, now int64
	if err := conn.QueryRow(ctx, "SELECT toInt64(metadata_modification_time), toInt64(now()) FROM system.tables WHERE database = ? AND name = ?",
		db, name).Scan(&created, &now); err != nil {
		return "", 0, false
	}
	last := created
	var beats uint64
	var at int64
	if err := conn.QueryRow(ctx, "SELECT count(), argMax(holder, at), toInt64(max(at)) FROM "+db+"."+name).Scan(&beats, &holder, &at); err != nil {
		return "", 0, false
	}
	if beats > 0 {
		last = at
	}
	return holder, time.Duration(now-last) * time.Second, true
}

// Applied lists the migrations recorded in db, in name order.
func Applied(ctx context.Context, conn driver.Conn, db string) ([]string, error) {
	if err := ValidDatabase(db); err != nil {
		return nil, err
	}
	done, err := appliedNames(ctx, conn, db)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(done))
	for n := range done {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

func appliedNames(ctx context.Context, conn driver.Conn, db string) (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	rows, err := conn.Query(ctx, "SELECT DISTINCT name FROM "+db+".schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	done := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		done[name] = true
	}
	return done, rows.Err()
}

func record(ctx context.Context, conn driver.Conn, db, name string) error {
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".schema_migrations (name, applied_at)")
	if err != nil {
		return err
	}
	defer batch.Close()
	if err := batch.Append(name, time.Now().UTC()); err != nil {
		return err
	}
	return batch.Send()
}

func exec(ctx context.Context, conn driver.Conn, stmt string) error {
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	return conn.Exec(ctx, stmt)
}
