package analytics_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/mimamori/mimamori/analytics"
	"github.com/mimamori/mimamori/analytics/chtest"
	"github.com/mimamori/mimamori/analytics/projection"
	"github.com/mimamori/mimamori/events"
)

func TestMain(m *testing.M) { chtest.Main(m) }

func TestDropPartitionsBefore(t *testing.T) {
	conn, db := chtest.Database(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	a := chtest.NewSample(t, now).Alerts[0]
	var batch []events.Envelope
	for _, ago := range []int{120, 91, 90, 89, 0} { // days before now
		a.DetectedAt = now.AddDate(0, 0, -ago)
		a.ReceivedAt = a.DetectedAt
		a.ID = ksuid.New().String()
		env, err := events.New("test", &a, a.DetectedAt)
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, env)
	}
	w, err := projection.New(conn, db, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}

	cutoff := now.Add(-analytics.AlertRetention) // 2026-08-28 12:00 UTC
	dropped, err := analytics.DropPartitionsBefore(ctx, conn, db, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"20260729", "20260827"}; !slices.Equal(dropped, want) {
		t.Fatalf("dropped %v, want %v", dropped, want)
	}
	var left uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".alerts").Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 3 {
		t.Fatalf("%d alerts left, want 3 (90, 89 and 0 days old)", left)
	}
	again, err := analytics.DropPartitionsBefore(ctx, conn, db, cutoff)
	if err != nil || len(again) != 0 {
		t.Fatalf("second run dropped %v, %v; want nothing", again, err)
	}
}
