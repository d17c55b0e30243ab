package analytics

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// AlertRetention is how long alert evidence is kept.
const AlertRetention = 90 * 24 * time.Hour

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// DropPartitionsBefore drops the daily partitions of db.alerts_log whose
// whole day (UTC) lies before cutoff, and returns their ids (YYYYMMDD) in
// order. The partition of cutoff's own day is kept. Run it daily with
// cutoff = now - AlertRetention. The daily aggregates keep their counts.
func DropPartitionsBefore(ctx context.Context, conn driver.Conn, db string, cutoff time.Time) ([]string, error) {
	if !identifier.MatchString(db) {
		return nil, fmt.Errorf("drop partitions: invalid database name %q", db)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	limit, _ := strconv.Atoi(cutoff.UTC().Format("20060102"))
	rows, err := conn.Query(ctx, "SELECT DISTINCT partition FROM system.parts WHERE database = ? AND table = 'alerts_log' AND active", db)
	if err != nil {
		return nil, fmt.Errorf("drop partitions: list %s.alerts_log: %w", db, err)
	}
	var old []int
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return nil, fmt.Errorf("drop partitions: %w", err)
		}
		day, err := strconv.Atoi(p)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("drop partitions: %s.alerts_log has partition %q, want YYYYMMDD", db, p)
		}
		if day < limit {
			old = append(old, day)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("drop partitions: %w", err)
	}
	sort.Ints(old)
	dropped := make([]string, 0, len(old))
	for _, day := range old {
		if err := conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s.alerts_log DROP PARTITION %d", db, day)); err != nil {
			return dropped, fmt.Errorf("drop partitions: %s.alerts_log partition %d: %w", db, day, err)
		}
		dropped = append(dropped, strconv.Itoa(day))
	}
	return dropped, nil
}
