package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mimamori/mimamori/analytics/projection"
	"github.com/mimamori/mimamori/appliance/fleet"
	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
)

// BenchmarkIngest measures alerts per second from HTTPS ingest to rows
// queryable in ClickHouse, beside its two floors measured in the same run
// on the same rows: ClickHouse native batch inserts through the projection
// writer, and produce to the embedded broker. Run with -benchtime 1x.
func BenchmarkIngest(b *testing.B) {
	const n = 100_000
	const batch = 500
	s := newStack(b)
	gen := fleet.NewGenerator(42)
	now := time.Now().UTC()
	alerts := make([]events.Alert, n)
	envs := make([]events.Envelope, n)
	for i := range alerts {
		a := gen.Alert(now.Add(-time.Duration(i)*time.Second), "dv_bench")
		a.CustomerID, a.ReceivedAt = "cu_bench", now
		alerts[i] = a
		e, err := events.New("bench", &a, now)
		if err != nil {
			b.Fatal(err)
		}
		envs[i] = e
	}
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		// Floor 1: ClickHouse native inserts of the same rows.
		conn := s.conn
		w, err := projection.New(conn, s.db, testLogger())
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for i := 0; i < n; i += 5000 {
			if err := w.Apply(ctx, envs[i:min(i+5000, n)]); err != nil {
				b.Fatal(err)
			}
		}
		chRate := float64(n) / time.Since(start).Seconds()
		if err := conn.Exec(ctx, "TRUNCATE TABLE "+s.db+".alerts_log"); err != nil {
			b.Fatal(err)
		}

		// Floor 2: produce to the broker, batches of 500 from 4 producers.
		fcfg := eventlog.Config{Brokers: s.p.Kafka.Brokers, Partitions: 3, Replication: 1, TopicPrefix: "floor."}
		prod, err := eventlog.NewProducer(fcfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := eventlog.EnsureTopics(ctx, prod.Client(), fcfg); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		parallel(4, n/batch, func(i int) error { return prod.Publish(ctx, envs[i*batch:(i+1)*batch]...) })
		kafkaRate := float64(n) / time.Since(start).Seconds()
		prod.Close()

		// The real path: 4 appliances post over HTTPS; the clock stops when
		// the last alert is queryable.
		var clients []func([]events.Alert) error
		for range 4 {
			_, c := s.device(b)
			clients = append(clients, func(a []events.Alert) error { _, err := c.SendAlerts(ctx, a); return err })
		}
		fresh := make([]events.Alert, n)
		for i := range fresh {
			fresh[i] = gen.Alert(now.Add(-time.Duration(i)*time.Second), "")
		}
		start = time.Now()
		var ackMu sync.Mutex
		var acks []time.Duration
		parallel(4, n/batch, func(i int) error {
			t0 := time.Now()
			err := clients[i%4](fresh[i*batch : (i+1)*batch])
			ackMu.Lock()
			acks = append(acks, time.Since(t0))
			ackMu.Unlock()
			return err
		})
		ackRate := float64(n) / time.Since(start).Seconds()
		for countAlerts(b, s, "") < n { // polled finely: the poll bounds the end-to-end figure
			time.Sleep(20 * time.Millisecond)
		}
		e2eRate := float64(n) / time.Since(start).Seconds()
		slower := min(chRate, kafkaRate)
		b.ReportMetric(e2eRate, "alerts/s")
		b.ReportMetric(ackRate, "acked-alerts/s")
		b.ReportMetric(chRate, "ch-insert-rows/s")
		b.ReportMetric(kafkaRate, "kafka-produce/s")
		b.ReportMetric(e2eRate/slower, "ratio-to-slower-floor")
		b.ReportMetric(float64(p99(acks).Microseconds())/1000, "batch-ack-p99-ms")
		fmt.Printf("ingest→ClickHouse %.0f alerts/s (acknowledged %.0f/s, batch of %d p99 %s); floors: ClickHouse insert %.0f rows/s, broker produce %.0f/s; ratio to the slower floor %.2f\n",
			e2eRate, ackRate, batch, p99(acks), chRate, kafkaRate, e2eRate/slower)
	}
}

func parallel(workers, jobs int, f func(i int) error) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					panic(err)
				}
			}
		})
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
}

func p99(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)*99)/100]
}
