package testkit

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimamori/mimamori/events/eventlog"
)

func TestAwaitReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			n.Add(1)
		}
	}()
	if err := Await(10*time.Second, "three counts", func() (bool, string) { return n.Load() == 3, "" }); err != nil {
		t.Fatal(err)
	}
}

func TestAwaitNamesWhatItWaitedFor(t *testing.T) {
	err := Await(30*time.Millisecond, "the mail to arrive", func() (bool, string) { return false, "0 of 1 mails" })
	if err == nil || !strings.Contains(err.Error(), "waited 30ms for the mail to arrive; last: 0 of 1 mails") {
		t.Fatalf("got %v", err)
	}
}

func TestClock(t *testing.T) {
	at := time.Date(2026, 3, 31, 23, 59, 0, 0, time.FixedZone("JST", 9*3600))
	c := NewClock(at)
	if !c.Now().Equal(at) || c.Now().Location() != time.UTC {
		t.Fatalf("Now = %v, want %v in UTC", c.Now(), at)
	}
	c.Advance(time.Minute)
	if want := at.Add(time.Minute); !c.Now().Equal(want) {
		t.Fatalf("after Advance Now = %v, want %v", c.Now(), want)
	}
	var zero Clock
	if !zero.Now().Equal(time.Unix(0, 0)) {
		t.Fatalf("zero clock at %v", zero.Now())
	}
}

func TestKafka(t *testing.T) {
	b, cfg := Kafka(t, 3, "k.")
	if len(b.Addrs()) != 1 || cfg.Brokers[0] != b.Addrs()[0] || cfg.Partitions != 3 || cfg.TopicPrefix != "k." {
		t.Fatalf("broker at %v, config %+v", b.Addrs(), cfg)
	}
	p, err := eventlog.NewProducer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Ping(context.Background()); err != nil {
		t.Fatalf("the broker does not answer the config: %v", err)
	}
}
