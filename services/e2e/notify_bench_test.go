package e2e

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/infra/testkit"
	"github.com/mimamori/mimamori/services/mailbox"
	"github.com/mimamori/mimamori/services/notifier"
	"github.com/mimamori/mimamori/services/smtp"
)

// BenchmarkNotify offers 100 important alerts per second through HTTPS
// ingest, one request each, and measures for each alert the time from the
// ingest gateway's acknowledgement (the 202 reaching the appliance) to the
// SMTP server accepting its mail. Beside it, in the same run, the floor:
// a synchronous produce of one event to the broker plus one SMTP round
// trip to the same server. Run with -benchtime 1x.
func BenchmarkNotify(b *testing.B) {
	const n, rate = 1000, 100
	s, box := newMailStack(b, map[string]string{"MIMAMORI_NOTIFY_HOURLY_CAP": "-1"})
	_, c := s.device(b)
	heartbeat(b, c)
	ctx := context.Background()
	if _, err := c.SendAlerts(ctx, []events.Alert{importantAlert(events.SeverityHigh, "warmup.example")}); err != nil {
		b.Fatal(err)
	}
	waitMailbox(b, box, 1, time.Minute)

	var mu sync.Mutex
	accepted := map[string]time.Time{}
	box.OnAccept(func(m mailbox.Message) {
		mu.Lock()
		accepted[m.MessageID] = time.Now()
		mu.Unlock()
	})
	mid := func(alertID string) string {
		return notifier.ID(alertID, events.ChannelMail, "admin@test.example") + "@mimamori.test"
	}
	b.ResetTimer()
	for range b.N {
		acked := make(map[string]time.Time, n)
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Second / rate)
		start := time.Now()
		for i := range n {
			<-tick.C
			a := importantAlert(events.SeverityHigh, fmt.Sprintf("bench-%d.example", i))
			wg.Go(func() {
				if _, err := c.SendAlerts(ctx, []events.Alert{a}); err != nil {
					b.Error(err)
					return
				}
				t := time.Now()
				mu.Lock()
				acked[mid(a.ID)] = t
				mu.Unlock()
			})
		}
		tick.Stop()
		wg.Wait()
		offered := float64(n) / time.Since(start).Seconds()
		testkit.WaitFor(b, 2*time.Minute, "every mail", func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			got := 0
			for id := range acked {
				if _, ok := accepted[id]; ok {
					got++
				}
			}
			return got == len(acked), strconv.Itoa(got)
		})
		var lat []time.Duration
		mu.Lock()
		for id, t := range acked {
			lat = append(lat, accepted[id].Sub(t))
		}
		mu.Unlock()

		// The floor, same run, same broker and SMTP server.
		fcfg := eventlog.Config{Brokers: s.p.Kafka.Brokers, Partitions: 3, Replication: 1, TopicPrefix: "floor."}
		prod, err := eventlog.NewProducer(fcfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := eventlog.EnsureTopics(ctx, prod.Client(), fcfg); err != nil {
			b.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(box.Addr())
		p, _ := strconv.Atoi(port)
		mailer, err := smtp.New(smtp.Config{Host: "127.0.0.1", Port: p, Security: smtp.SecurityNone,
			From: "mimamori <noreply@mimamori.test>"})
		if err != nil {
			b.Fatal(err)
		}
		var floor []time.Duration
		for i := range 200 {
			a := importantAlert(events.SeverityHigh, "floor.example")
			a.DeviceID, a.CustomerID, a.ReceivedAt = "dv_floor", "cu_floor", time.Now().UTC()
			e, err := events.New("bench", &a, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			if err := prod.Publish(ctx, e); err != nil {
				b.Fatal(err)
			}
			if err := mailer.Send(ctx, "floor@test.example", fmt.Sprint("floor-", i), "floor", "floor", time.Now()); err != nil {
				b.Fatal(err)
			}
			floor = append(floor, time.Since(t0))
		}
		prod.Close()
		p50, p99v := pct(lat, 50), pct(lat, 99)
		f50, f99 := pct(floor, 50), pct(floor, 99)
		b.ReportMetric(float64(p50.Microseconds())/1000, "ack-to-smtp-p50-ms")
		b.ReportMetric(float64(p99v.Microseconds())/1000, "ack-to-smtp-p99-ms")
		b.ReportMetric(float64(f50.Microseconds())/1000, "floor-p50-ms")
		b.ReportMetric(float64(f99.Microseconds())/1000, "floor-p99-ms")
		fmt.Printf("notify: %d important alerts offered at %.0f/s; ingest ack → SMTP accepted p50 %s p99 %s (max %s); floor (sync produce + one SMTP round trip) p50 %s p99 %s; goal p99 < 1s\n",
			len(lat), offered, p50.Round(10*time.Microsecond), p99v.Round(10*time.Microsecond), pct(lat, 100).Round(10*time.Microsecond),
			f50.Round(10*time.Microsecond), f99.Round(10*time.Microsecond))
	}
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}
