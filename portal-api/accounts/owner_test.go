package accounts

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/infra/testkit/testlog"
)

// memPub is a Publisher in memory: it keeps what it is given and, with
// st, applies it at once, as a tail would; with err it fails instead.
type memPub struct {
	mu   sync.Mutex
	st   *State
	err  error
	envs []events.Envelope
}

func (p *memPub) Publish(_ context.Context, envs ...events.Envelope) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	p.envs = append(p.envs, envs...)
	for _, e := range envs {
		if p.st == nil {
			break
		}
		if err := p.st.Apply(e); err != nil {
			return err
		}
	}
	return nil
}

func (p *memPub) published() []events.Envelope {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]events.Envelope(nil), p.envs...)
}

// newMemOwner is an owner without a tail, writing through pub, which
// applies its events to the owner's state.
func newMemOwner(t *testing.T, now func() time.Time) (*owner, *memPub) {
	t.Helper()
	pub := &memPub{}
	o := newOwner(now, pub, nil, testlog.New(t))
	pub.st = o.state
	return o, pub
}

func registered(id string) *events.CustomerRegistered {
	return &events.CustomerRegistered{CustomerID: id, Name: "Example " + id, Email: id + "@example.com",
		RegisteredAt: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
}

// The owner reads the log to its end before it is ready, hands every
// event it applies on, and a publish returns once the tail delivered the
// events written.
func TestOwnerFollowsTheLog(t *testing.T) {
	kafka, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kafka.Close)
	kcfg := eventlog.Config{Brokers: kafka.ListenAddrs(), Partitions: 2, Replication: 1, TopicPrefix: "t."}
	prod, err := eventlog.NewProducer(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := eventlog.EnsureTopics(ctx, prod.Client(), kcfg); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		e, err := events.New(Source, registered(fmt.Sprintf("cu_%d", i)), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := prod.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	tail, err := eventlog.NewTail(kcfg, []string{kcfg.Topic(events.TopicAccounts)}, testlog.New(t))
	if err != nil {
		t.Fatal(err)
	}
	o := newOwner(time.Now, prod, tail, testlog.New(t))
	applied := make(chan string, 10)
	done, caughtUp := o.follow(ctx, func(e events.Envelope) { applied <- e.Type })
	if !caughtUp {
		t.Fatal("follow did not catch up")
	}
	select {
	case <-o.ready:
	default:
		t.Fatal("not ready after catching up")
	}
	for i := range 3 {
		if _, ok := o.state.customer(fmt.Sprintf("cu_%d", i)); !ok {
			t.Fatalf("cu_%d not in the state after catching up", i)
		}
		if got := <-applied; got != events.TypeCustomerRegistered {
			t.Fatalf("applied %s", got)
		}
	}
	if err := o.publish(ctx, registered("cu_new")); err != nil {
		t.Fatal(err)
	}
	if _, ok := o.state.customer("cu_new"); !ok {
		t.Fatal("a published event is not in the state when publish returns")
	}
	if got := <-applied; got != events.TypeCustomerRegistered {
		t.Fatalf("applied %s", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("the tail ended with %v", err)
	}
}

// Events the tail has not delivered when the command's context ends are
// applied at once: the next command sees them either way.
func TestOwnerAppliesOwnEventsTheTailMissed(t *testing.T) {
	pub := &memPub{} // applies nothing: no tail delivers
	o := newOwner(time.Now, pub, nil, testlog.New(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ids, err := o.publishIDs(ctx, registered("cu_1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || len(pub.published()) != 1 || pub.published()[0].ID != ids[0] {
		t.Fatalf("wrote %v, returned %v", pub.published(), ids)
	}
	if _, ok := o.state.customer("cu_1"); !ok {
		t.Fatal("the event is not in the state")
	}
	if o.lat.n != 0 {
		t.Fatal("a write its command gave up waiting for counts among the latencies")
	}
}

// Every write adds its duration to the latencies, of which an unknown
// user's failure waits one: none before the first write.
func TestOwnerRecordsWriteLatencies(t *testing.T) {
	o, _ := newMemOwner(t, time.Now)
	if d := o.lat.sample(); d != 0 {
		t.Fatalf("a sample of %s before any write", d)
	}
	o.lat.wait(context.Background())
	for i := range 40 {
		if err := o.publish(context.Background(), registered(fmt.Sprintf("cu_%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if o.lat.n != len(o.lat.ring) {
		t.Fatalf("%d latencies kept after 40 writes, want the last %d", o.lat.n, len(o.lat.ring))
	}
	if d := o.lat.sample(); d <= 0 {
		t.Fatalf("a sample of %s after writes", d)
	}
}

// Once another process took the writer role, the owner writes nothing
// more and refuses every command with ErrNotOwner.
func TestOwnerFencedWritesNothingMore(t *testing.T) {
	o, pub := newMemOwner(t, time.Now)
	pub.err = fmt.Errorf("produce: %w", eventlog.ErrFenced)
	err := o.publish(context.Background(), registered("cu_1"))
	if !errors.Is(err, ErrNotOwner) || !errors.Is(err, eventlog.ErrFenced) {
		t.Fatalf("fenced publish: %v, want ErrNotOwner wrapping ErrFenced", err)
	}
	if !o.fenced.Load() {
		t.Fatal("not fenced")
	}
	pub.err = nil
	if err := o.publish(context.Background(), registered("cu_2")); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("after the fence: %v, want ErrNotOwner", err)
	}
	if n := len(pub.published()); n != 0 {
		t.Fatalf("%d events written after the fence", n)
	}

	o, pub = newMemOwner(t, time.Now)
	pub.err = errors.New("broker down")
	if err := o.publish(context.Background(), registered("cu_1")); err == nil || errors.Is(err, ErrNotOwner) || o.fenced.Load() {
		t.Fatalf("a failed produce: %v (fenced %v), want a plain error", err, o.fenced.Load())
	}
}

// Commands of one customer run one at a time; another customer's do not
// wait for them.
func TestOwnerLocksPerCustomer(t *testing.T) {
	o, _ := newMemOwner(t, time.Now)
	unlockA := o.lock("cu_a")
	gotA := make(chan struct{})
	go func() {
		defer o.lock("cu_a")()
		close(gotA)
	}()
	o.lock("cu_b")() // does not wait for cu_a
	o.lockLoginIDs()()
	select {
	case <-gotA:
		t.Fatal("a second command of cu_a ran while the first held its lock")
	default:
	}
	unlockA()
	<-gotA
}

// claimer is a Claimer that fails its first claims.
type claimer struct {
	memPub
	fails  int
	claims int
}

func (c *claimer) Claim(context.Context) error {
	c.claims++
	if c.claims <= c.fails {
		return errors.New("coordinator not available")
	}
	return nil
}

// The owner tries to claim the writer role until it succeeds, or its
// context ends; a publisher that is no Claimer needs no claim.
func TestOwnerClaimsTheWriterRole(t *testing.T) {
	c := &claimer{fails: 1}
	o := newOwner(time.Now, c, nil, testlog.New(t))
	if !o.claim(context.Background()) || c.claims != 2 {
		t.Fatalf("claimed after %d tries, want 2", c.claims)
	}
	c = &claimer{fails: 1000}
	o = newOwner(time.Now, c, nil, testlog.New(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if o.claim(ctx) {
		t.Fatal("claimed although every claim failed")
	}
	o, _ = newMemOwner(t, time.Now)
	if !o.claim(context.Background()) {
		t.Fatal("a publisher without claims was not taken as claimed")
	}
}
