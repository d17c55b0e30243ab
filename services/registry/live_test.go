package registry_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/infra/testkit"
	"github.com/mimamori/mimamori/services/registry"
)

func newCluster(t *testing.T) (eventlog.Config, *eventlog.Producer) {
	t.Helper()
	_, cfg := testkit.Kafka(t, 2, "t.")
	p, err := eventlog.NewProducer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := eventlog.EnsureTopics(ctx, p.Client(), cfg); err != nil {
		t.Fatal(err)
	}
	return cfg, p
}

func newLive(t *testing.T, cfg eventlog.Config) *registry.Live {
	t.Helper()
	l, err := registry.NewLive(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return l
}

// A device registered a moment ago authenticates at once: the miss waits
// for the tail to catch up.
func TestLiveReadYourWrites(t *testing.T) {
	cfg, p := newCluster(t)
	live := newLive(t, cfg)
	ctx := context.Background()
	now := time.Now()

	cust, err := registry.RegisterCustomer(ctx, p, "Kato Bakery", "owner@kato.example", "rs_1", now)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.RegisterDevice(ctx, p, registry.DeviceSpec{Serial: "MM-0001", MAC: "00:11:22:33:44:55",
		Model: "MM-100", ManufacturedOn: "2026-04-01", CustomerID: cust}, now)
	if err != nil {
		t.Fatal(err)
	}
	dev, gotCust, err := live.Authenticate(ctx, reg.Credential)
	if err != nil || dev != reg.DeviceID || gotCust != cust {
		t.Fatalf("Authenticate right after registration = %q, %q, %v; want %q, %q", dev, gotCust, err, reg.DeviceID, cust)
	}
	if _, ok := live.State().Customer(cust); !ok {
		t.Fatal("customer not in the state")
	}

	// Unassigned device: 403 until assigned, then accepted.
	loose, err := registry.RegisterDevice(ctx, p, registry.DeviceSpec{Serial: "MM-0002", MAC: "00:11:22:33:44:66",
		Model: "MM-100", ManufacturedOn: "2026-04-01"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := live.Authenticate(ctx, loose.Credential); !errors.Is(err, registry.ErrForbidden) {
		t.Fatalf("unassigned device: err = %v, want ErrForbidden", err)
	}
	if err := registry.AssignDevice(ctx, p, loose.DeviceID, cust, now); err != nil {
		t.Fatal(err)
	}
	if _, c, err := live.Authenticate(ctx, loose.Credential); err != nil || c != cust {
		t.Fatalf("after assignment: %q, %v", c, err)
	}

	// Revoked: refused once the tail has read the revocation.
	if err := registry.RevokeCredential(ctx, p, reg.DeviceID, registry.CredentialID(reg.Credential), "appliance replaced", now); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := live.WaitCaughtUp(wctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := live.Authenticate(ctx, reg.Credential); !errors.Is(err, registry.ErrUnauthenticated) {
		t.Fatalf("revoked credential: err = %v, want ErrUnauthenticated", err)
	}
}

// Many concurrent misses share catch-ups and all end, unauthenticated, well
// within the bound.
func TestLiveConcurrentMisses(t *testing.T) {
	cfg, _ := newCluster(t)
	live := newLive(t, cfg)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			token, _ := registry.NewCredential("dv_x", time.Now())
			_, _, err := live.Authenticate(context.Background(), token)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, registry.ErrUnauthenticated) {
			t.Fatalf("unknown credential: err = %v", err)
		}
	}
}
