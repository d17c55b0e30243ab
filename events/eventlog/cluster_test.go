package eventlog_test

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/services/tlsca"
)

// A cluster that demands TLS and SCRAM, as production clusters do: the
// client settings reach it, and a wrong password is refused.
func TestTLSAndSASLCluster(t *testing.T) {
	paths, err := tlsca.Ensure(t.TempDir(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	srvTLS, err := tlsca.ServerTLS(paths.ServerCert, paths.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(srvTLS), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-512", "mimamori", "correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pool, err := tlsca.CertPool(paths.CACert)
	if err != nil {
		t.Fatal(err)
	}
	cfg := eventlog.Config{Brokers: c.ListenAddrs(), Partitions: 2, Replication: 1,
		TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, SASLMechanism: "SCRAM-SHA-512", SASLUser: "mimamori", SASLPassword: "correct horse"}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	p, err := eventlog.NewProducer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := eventlog.EnsureTopics(ctx, p.Client(), cfg); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, alertEnvelope(t, "dv_tls")); err != nil {
		t.Fatalf("publish over TLS+SCRAM: %v", err)
	}

	cfg.SASLPassword = "wrong"
	bad, err := eventlog.NewProducer(cfg, kgo.RetryTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	bctx, bcancel := context.WithTimeout(ctx, 5*time.Second)
	defer bcancel()
	if err := bad.Publish(bctx, alertEnvelope(t, "dv_bad")); err == nil {
		t.Fatal("a wrong SASL password published")
	}
	if err := (eventlog.Config{Brokers: []string{"x"}, Partitions: 1, Replication: 1, SASLMechanism: "GSSAPI"}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "GSSAPI") {
		t.Fatalf("unknown SASL mechanism: got %v", err)
	}
}

// Shutdown while a batch is being applied: the batch finishes and its
// offsets are committed before Run returns, so the next member of the
// group does not apply it again.
func TestConsumerFlushesBatchInFlightOnShutdown(t *testing.T) {
	_, cfg := newBroker(t, "")
	p, _ := eventlog.NewProducer(cfg)
	defer p.Close()
	ctx := context.Background()
	if err := p.Publish(ctx, alertEnvelope(t, "dv_a"), alertEnvelope(t, "dv_b")); err != nil {
		t.Fatal(err)
	}
	topics := []string{cfg.Topic(events.TopicAlerts)}
	runCtx, stop := context.WithCancel(ctx)
	inHandler := make(chan struct{}, 10)
	finished := make(chan int, 10)
	c, err := eventlog.NewConsumer(cfg, eventlog.ConsumerConfig{Group: "flush", Topics: topics},
		func(hctx context.Context, recs []*kgo.Record) error {
			inHandler <- struct{}{}
			<-runCtx.Done() // shutdown is asked for while the batch is in flight
			time.Sleep(200 * time.Millisecond)
			if hctx.Err() != nil {
				t.Error("the handler's context ended with shutdown; the batch could not finish")
			}
			finished <- len(recs)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	<-inHandler
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := 0
	for len(finished) > 0 {
		got += <-finished
	}
	if got == 0 {
		t.Fatal("no batch finished")
	}

	// The next member of the group starts after what was flushed.
	again := make(chan int, 10)
	ctx2, cancel2 := context.WithTimeout(ctx, 3*time.Second)
	defer cancel2()
	c2, _ := eventlog.NewConsumer(cfg, eventlog.ConsumerConfig{Group: "flush", Topics: topics},
		func(_ context.Context, recs []*kgo.Record) error { again <- len(recs); return nil })
	_ = c2.Run(ctx2)
	reread := 0
	for len(again) > 0 {
		reread += <-again
	}
	if got+reread != 2 {
		t.Fatalf("flushed %d, then re-read %d; want 2 in all, none twice", got, reread)
	}
}
