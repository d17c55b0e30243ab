package analytics_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/mimamori/mimamori/analytics"
	"github.com/mimamori/mimamori/analytics/chtest"
	"github.com/mimamori/mimamori/analytics/migrate"
	"github.com/mimamori/mimamori/analytics/projection"
)

var sqlBlock = regexp.MustCompile("(?s)```sql\n(.*?)```")

// TestReadmeQueries runs every sql block of README.md, verbatim, as the
// analyst user against the sample fleet in a database named mimamori.
func TestReadmeQueries(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var queries []string
	for _, m := range sqlBlock.FindAllSubmatch(readme, -1) {
		queries = append(queries, string(m[1]))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn := chtest.Conn(t)
	const db = "mimamori" // the analyst may read only this one
	t.Cleanup(func() { conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	if _, err := migrate.Apply(ctx, conn, db); err != nil {
		t.Fatal(err)
	}
	w, err := projection.New(conn, db, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s := chtest.NewSample(t, time.Now())
	for range 2 { // twice: duplicates must not show
		if err := w.Apply(ctx, s.Events); err != nil {
			t.Fatal(err)
		}
	}
	analyst := chtest.Open(t, analytics.Config{User: "analyst", Password: chtest.AnalystPassword, Database: db})

	// Checks, in README order; each gets the rows as text.
	sumWhere := func(rows [][]string, keyCol int, key string, valCol int) int {
		total := 0
		for _, r := range rows {
			if r[keyCol] == key {
				var n int
				fmt.Sscan(r[valCol], &n)
				total += n
			}
		}
		return total
	}
	checks := []func(rows [][]string) error{
		func(rows [][]string) error { // top indicators
			if len(rows) == 0 || rows[0][0] != chtest.SampleTopIndicator || rows[0][2] != fmt.Sprint(chtest.SampleTopIndicatorHit) || rows[0][3] != "2" {
				return fmt.Errorf("want %s with %d alerts from 2 customers first", chtest.SampleTopIndicator, chtest.SampleTopIndicatorHit)
			}
			return nil
		},
		func(rows [][]string) error { // per customer per day
			if got := sumWhere(rows, 1, "cust-1", 2); got != chtest.SampleCustomer1Alerts {
				return fmt.Errorf("cust-1 has %d alerts over the days, want %d", got, chtest.SampleCustomer1Alerts)
			}
			return nil
		},
		func(rows [][]string) error { // ★★★ last 24 h
			if len(rows) != chtest.SampleHighLast24h {
				return fmt.Errorf("%d rows, want %d", len(rows), chtest.SampleHighLast24h)
			}
			return nil
		},
		func(rows [][]string) error { // silent devices
			if len(rows) != 1 || rows[0][0] != chtest.SampleSilentDevice {
				return fmt.Errorf("want only %s", chtest.SampleSilentDevice)
			}
			return nil
		},
		func(rows [][]string) error { // blocked / detected
			if len(rows) != 2 || rows[0][1] != "7" || rows[1][1] != "3" || rows[0][2] != "0" {
				return fmt.Errorf("want cust-1 7 blocked, cust-2 3 blocked, none merely detected")
			}
			return nil
		},
		func(rows [][]string) error { // per customer with name
			if len(rows) != 2 || rows[0][1] != "Kobayashi Dental" || rows[0][2] != "7" {
				return fmt.Errorf("want Kobayashi Dental with 7 alerts first")
			}
			return nil
		},
		func(rows [][]string) error { // firmware per device
			if len(rows) != 3 || rows[0][1] != "1.4.2" {
				return fmt.Errorf("want 3 devices on firmware 1.4.2")
			}
			return nil
		},
		func(rows [][]string) error { // heartbeats per day
			if got := sumWhere(rows, 1, "dev-1", 2); got != 12 {
				return fmt.Errorf("dev-1 has %d heartbeats, want 12", got)
			}
			return nil
		},
		func(rows [][]string) error { // offline now
			if len(rows) != 1 || rows[0][0] != "dev-2" || rows[0][1] != "Kobayashi Dental" {
				return fmt.Errorf("want only dev-2 of Kobayashi Dental")
			}
			return nil
		},
		func(rows [][]string) error { // notifications by outcome
			if sumWhere(rows, 1, "sent", 2) != 1 || sumWhere(rows, 1, "attempting", 2) != 1 {
				return fmt.Errorf("want the sample's offline mail attempted once and sent once")
			}
			return nil
		},
	}
	if len(queries) != len(checks) {
		t.Fatalf("README.md has %d sql blocks, the test checks %d: update both together", len(queries), len(checks))
	}
	for i, q := range queries {
		rows, err := queryText(ctx, analyst, q)
		if err != nil {
			t.Errorf("README query %d failed: %v\n%s", i+1, err, q)
			continue
		}
		if err := checks[i](rows); err != nil {
			t.Errorf("README query %d: %v; got %q\n%s", i+1, err, rows, q)
		}
	}
}

// queryText runs q and returns every value formatted as text.
func queryText(ctx context.Context, conn driver.Conn, q string) ([][]string, error) {
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	var out [][]string
	for rows.Next() {
		dst := make([]any, len(types))
		for i, ct := range types {
			dst[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, err
		}
		row := make([]string, len(dst))
		for i, d := range dst {
			v := reflect.ValueOf(d).Elem().Interface()
			if tm, ok := v.(time.Time); ok {
				v = tm.UTC().Format(time.DateTime)
			}
			row[i] = fmt.Sprint(v)
		}
		out = append(out, row)
	}
	return out, rows.Err()
}
