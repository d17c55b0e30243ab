package replaycheck_test

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/mimamori/mimamori/analytics/chtest"
	"github.com/mimamori/mimamori/analytics/projection"
	"github.com/mimamori/mimamori/analytics/replaycheck"
	"github.com/mimamori/mimamori/events"
)

func TestMain(m *testing.M) { chtest.Main(m) }

func feed(t *testing.T, conn driver.Conn, db string, batches ...[]events.Envelope) {
	t.Helper()
	w, err := projection.New(conn, db, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, b := range batches {
		if err := w.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCompare(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := chtest.NewSample(t, time.Now())

	_, live := chtest.Database(t)
	conn, fresh := chtest.Database(t)
	_, missing := chtest.Database(t)

	feed(t, conn, live, s.Events)

	// The same events, shuffled, in small batches, with redeliveries.
	shuffled := append([]events.Envelope(nil), s.Events...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	feed(t, conn, fresh, shuffled[:20], shuffled[10:30], shuffled[20:], shuffled[:5])

	results, err := replaycheck.Compare(ctx, conn, live, fresh)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(replaycheck.Tables()) {
		t.Fatalf("%d results, want %d", len(results), len(replaycheck.Tables()))
	}
	for _, r := range results {
		if !r.Match || r.Live.Rows == 0 {
			t.Errorf("same events: %v", r)
		}
	}

	// One alert fewer: every alert relation must disagree, the rest agree.
	var without []events.Envelope
	dropped := false
	for _, e := range s.Events {
		if !dropped && e.Type == events.TypeAlertDetected {
			dropped = true
			continue
		}
		without = append(without, e)
	}
	feed(t, conn, missing, without)
	results, err = replaycheck.Compare(ctx, conn, live, missing)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		wantMatch := r.Table != "alerts" && r.Table != "alerts_daily" && r.Table != "alerts_daily_jst" &&
			r.Table != "alerts_by_customer" && r.Table != "alerts_customer_daily_jst"
		if r.Match != wantMatch {
			t.Errorf("one alert missing: %v, want match=%v", r, wantMatch)
		}
	}
	if r := results[0]; r.Live.Rows != r.Fresh.Rows+1 {
		t.Errorf("alerts rows live %d, fresh %d: want one fewer", r.Live.Rows, r.Fresh.Rows)
	}
	if replaycheck.AllMatch(results) {
		t.Error("AllMatch = true with an alert missing")
	}
}
