package ingest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/mimamori/mimamori/events"
)

func sampleAlert() events.Alert {
	at := time.Date(2026, 4, 1, 9, 30, 0, 123456789, time.UTC)
	return events.Alert{ID: ksuid.New().String(), DeviceID: "dv_1", CustomerID: "cu_1", DetectedAt: at, ReceivedAt: at.Add(time.Second),
		Severity: 3, Kind: events.KindFile, Indicator: "evil.example", Label: "C2 \"server\"", Action: events.ActionBlocked,
		SrcIP: "192.168.1.2", SrcPort: 5000, SrcMAC: "00:11:22:33:44:55", DstIP: "203.0.113.9", DstPort: 443, DstMAC: "00:11:22:33:44:66",
		Protocol: "tcp", Zones: "LAN>WAN", URL: "https://evil.example/x", Domain: "evil.example", FileName: "a.exe",
		FileSHA256: "0000000000000000000000000000000000000000000000000000000000000000", DefinitionsVersion: "1", Count: 2}
}

// sumOf is the sum of the alert's event data, encoded as events.New does
// (without its validation, so any field can change).
func sumOf(t *testing.T, ix *AlertIndex, a events.Alert) uint64 {
	t.Helper()
	data, err := json.Marshal(&a)
	if err != nil {
		t.Fatal(err)
	}
	return ix.sum(data)
}

// The content sum ignores what the gateway stamps (device, customer,
// received_at) and changes with every field the appliance sends: a field
// added to events.Alert later is covered, or this test names it.
func TestContentSum(t *testing.T) {
	ix := NewIndex(IndexConfig{})
	a := sampleAlert()
	base := sumOf(t, ix, a)
	stamped := a
	stamped.CustomerID, stamped.ReceivedAt = "cu_other", a.ReceivedAt.Add(time.Hour)
	if sumOf(t, ix, stamped) != base {
		t.Fatal("a different customer or received_at changes the sum")
	}
	v := reflect.ValueOf(&a).Elem()
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if name == "DeviceID" || name == "CustomerID" || name == "ReceivedAt" {
			continue
		}
		b := a
		f := reflect.ValueOf(&b).Elem().Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(f.String() + "x")
		case reflect.Int:
			f.SetInt(f.Int() + 1)
		default:
			if f.Type() != reflect.TypeFor[time.Time]() {
				t.Fatalf("field %s: no change known for %s", name, f.Type())
			}
			f.Set(reflect.ValueOf(a.DetectedAt.Add(time.Nanosecond)))
		}
		if sumOf(t, ix, b) == base {
			t.Errorf("changing %s leaves the sum unchanged", name)
		}
	}
}

// The index keeps at most PerDevice alerts per device, the newest, and
// none older than Window; an id learnt twice keeps its first content.
func TestIndexBounds(t *testing.T) {
	now := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	ix := NewIndex(IndexConfig{Window: time.Hour, PerDevice: 3, Now: func() time.Time { return now }})
	known := func(dev, id string) bool {
		ix.mu.Lock()
		defer ix.mu.Unlock()
		d := ix.devices[dev]
		if d == nil {
			return false
		}
		s, ok := d.byID[id]
		return ok && s.at >= now.Add(-ix.window).UnixNano()
	}
	var ids []string
	for i := range 5 {
		id := fmt.Sprintf("id%d", i)
		ids = append(ids, id)
		ix.learn("dv_a", []string{id}, []uint64{uint64(i)}, now)
	}
	ix.learn("dv_b", []string{"id0"}, []uint64{7}, now)
	for i, id := range ids {
		if want := i >= 2; known("dv_a", id) != want {
			t.Errorf("dv_a %s known %v, want %v", id, !want, want)
		}
	}
	if !known("dv_b", "id0") {
		t.Fatal("another device's alert was forgotten")
	}
	ix.learn("dv_a", []string{"id4"}, []uint64{99}, now)
	if s := ix.devices["dv_a"].byID["id4"].sum; s != 4 {
		t.Fatalf("learning id4 again replaced its sum with %d", s)
	}

	now = now.Add(90 * time.Minute)
	ix.learn("dv_a", []string{"late"}, []uint64{1}, now)
	if known("dv_a", "id4") || !known("dv_a", "late") {
		t.Fatal("window: an alert older than an hour is still known, or the new one is not")
	}
	if n := len(ix.devices["dv_a"].byID); n != 1 {
		t.Fatalf("dv_a remembers %d alerts, want 1", n)
	}
	ix.sweep()
	if _, ok := ix.devices["dv_b"]; ok {
		t.Fatal("sweep kept a device with nothing left in the window")
	}

	// The rebuild at start learns older alerts after newer ones: "old"
	// expires behind "x", is learnt again, and the stale slot it left
	// must not take the new entry with it when it is dropped.
	ix.learn("dv_c", []string{"x"}, []uint64{1}, now)
	ix.learn("dv_c", []string{"old"}, []uint64{2}, now.Add(-59*time.Minute))
	now = now.Add(2 * time.Minute)
	if known("dv_c", "old") {
		t.Fatal("an alert older than the window is known")
	}
	ix.learn("dv_c", []string{"old"}, []uint64{3}, now)
	ix.learn("dv_c", []string{"y"}, []uint64{4}, now)
	if known("dv_c", "x") || !known("dv_c", "old") || !known("dv_c", "y") || ix.devices["dv_c"].byID["old"].sum != 3 {
		t.Fatal("trimming past a stale slot forgot the wrong alert")
	}
}

// The limiter check on the hot path: one lock, one map lookup.
func BenchmarkLimiterTake(b *testing.B) {
	l := newLimiter(DefaultDeviceRate, DefaultDeviceBurst)
	devices := make([]string, 10_000)
	for i := range devices {
		devices[i] = fmt.Sprintf("dv_%027d", i)
	}
	now := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.take(devices[i%len(devices)], 1, now)
			i++
		}
	})
}

// The index on the hot path, per alert of 500-alert requests of devices
// whose index is full (each new alert evicts the oldest): its content
// sum, the lookup, and learning it once stored.
func BenchmarkIndexSortAndLearn(b *testing.B) {
	ix := NewIndex(IndexConfig{})
	batches := make([]alertBatch, 40)
	for k := range batches {
		for i := range 500 {
			a := sampleAlert()
			e, err := events.New(Source, &a, a.ReceivedAt)
			if err != nil {
				b.Fatal(err)
			}
			batches[k].envs, batches[k].index = append(batches[k].envs, e), append(batches[k].index, i)
		}
	}
	ids := make([]string, 500)
	now := time.Now()
	learn := func(n int) int {
		dev, batch := fmt.Sprintf("dv_%d", (n/len(batches))%8), batches[n%len(batches)]
		fresh, sums, _, err := ix.sort(dev, batch)
		if err != nil {
			b.Fatal(err)
		}
		for i, e := range fresh {
			ids[i] = e.ID
		}
		ix.learn(dev, ids[:len(fresh)], sums, now)
		return len(fresh)
	}
	for n := range 8 * 4 { // fill every device's index
		learn(n * len(batches) / 4)
	}
	b.ResetTimer()
	alerts := 0
	for n := range b.N {
		alerts += learn(n)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(alerts), "ns/alert")
}
