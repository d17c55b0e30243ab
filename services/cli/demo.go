package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mimamori/mimamori/appliance/fleet"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/services/app"
	"github.com/mimamori/mimamori/services/platform"
	"github.com/mimamori/mimamori/services/registry"
	"github.com/mimamori/mimamori/services/tlsca"
)

// demoCustomers are the companies `mimamori demo` registers: enough for
// the portal's participants' average, which needs 5.
var demoCustomers = []struct{ name, email string }{
	{"株式会社みまもり商事", "admin@mimamori-shoji.example"},
	{"さくら会計事務所", "it@sakura-kaikei.example"},
	{"Example Dental Clinic", "office@example-dental.example"},
	{"有限会社ひかり工務店", "info@hikari-koumuten.example"},
	{"青空ベーカリー", "owner@aozora-bakery.example"},
	{"Kato Legal Office", "desk@kato-legal.example"},
}

func cmdDemo(ctx context.Context, e *env, args []string) error {
	devices := e.flags.Int("devices", 8, "simulated appliances across the demo customers")
	alertEvery := e.flags.Duration("alert-every", 8*time.Second, "mean time between alerts of one appliance")
	if _, err := e.parse(args); err != nil {
		return err
	}
	return runPlatform(ctx, e, app.Services, func(ctx context.Context, p *platform.Platform) error {
		devs, err := demoDevices(ctx, p, *devices)
		if err != nil {
			return fmt.Errorf("demo devices: %w", err)
		}
		fmt.Fprintf(e.out, "demo: %d simulated appliances of %d customers are sending heartbeats and alerts to %s\n",
			len(devs), min(len(demoCustomers), len(devs)), p.Endpoints.Ingest)
		if p.Endpoints.AnalystUser != "" {
			fmt.Fprintf(e.out, "demo: try  %s --query 'SELECT kind, severity, count() FROM alerts GROUP BY kind, severity'\n",
				analystSQL(p.Endpoints))
		}
		return runFleet(ctx, e, p.Endpoints.Ingest, p.Endpoints.IngestCAFile, devs, *alertEvery, 0.1)
	})
}

func runFleet(ctx context.Context, e *env, ingest, caFile string, devs []fleet.Device, alertEvery time.Duration, silent float64) error {
	pool, err := tlsca.CertPool(caFile)
	if err != nil {
		return err
	}
	stats, err := fleet.Run(ctx, fleet.Config{Devices: devs, BaseURL: ingest, RootCAs: pool, AlertEvery: alertEvery,
		HeartbeatEvery: 15 * time.Second, SilentFraction: silent, Seed: time.Now().UnixNano(), Logger: e.log.With("service", "fleet")})
	e.log.Info("fleet stopped", "stats", fmt.Sprintf("%+v", stats))
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// demoDevices registers the demo customers and appliances once and keeps
// their credentials in the data folder, so a restarted demo goes on with
// the same appliances.
func demoDevices(ctx context.Context, p *platform.Platform, n int) ([]fleet.Device, error) {
	path := filepath.Join(p.Cfg.DataDir, "demo-devices.json")
	if devs, err := fleet.LoadDevices(path); err == nil && len(devs) >= n {
		return devs[:n], nil
	}
	prod, err := eventlog.NewProducer(p.Kafka)
	if err != nil {
		return nil, err
	}
	defer prod.Close()
	devs, err := registerDevices(ctx, prod, n, "")
	if err != nil {
		return nil, err
	}
	return devs, saveDevices(path, devs)
}

// registerDevices registers n appliances, spread over the demo customers
// (registered here) or all for customer when one is given.
func registerDevices(ctx context.Context, pub registry.Publisher, n int, customer string) ([]fleet.Device, error) {
	now := time.Now()
	var customers []string
	if customer != "" {
		customers = []string{customer}
	} else {
		for _, c := range demoCustomers[:min(len(demoCustomers), max(n, 1))] {
			id, err := registry.RegisterCustomer(ctx, pub, c.name, c.email, "rs_demo", now)
			if err != nil {
				return nil, err
			}
			customers = append(customers, id)
		}
	}
	var devs []fleet.Device
	for i := range n {
		cust := customers[i%len(customers)]
		reg, err := registry.RegisterDevice(ctx, pub, registry.DeviceSpec{
			Serial: fmt.Sprintf("SIM-%s-%03d", now.Format("20060102"), i+1), MAC: fmt.Sprintf("02:00:5e:%02x:%02x:%02x", now.Unix()%256, i/256, i%256),
			Model: "MU-100", ManufacturedOn: "2026-04-01", CustomerID: cust}, now)
		if err != nil {
			return nil, err
		}
		devs = append(devs, fleet.Device{DeviceID: reg.DeviceID, CustomerID: reg.CustomerID, Credential: reg.Credential})
	}
	return devs, nil
}

func saveDevices(path string, devs []fleet.Device) error {
	b, err := json.MarshalIndent(devs, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

func cmdSimulate(ctx context.Context, e *env, args []string) error {
	n := e.flags.Int("devices", 10, "number of virtual appliances")
	customer := e.flags.String("customer", "", "customer the new appliances are registered for (default: the demo customers)")
	file := e.flags.String("devices-file", "", "JSON file of existing appliances [{device_id, credential}] instead of registering new ones")
	ingest := e.flags.String("ingest", "", "ingest gateway URL (default: the running platform's)")
	caFile := e.flags.String("ca-file", "", "CA certificate of the ingest gateway (default: the running platform's)")
	alertEvery := e.flags.Duration("alert-every", 5*time.Second, "mean time between alerts of one appliance")
	silent := e.flags.Float64("silent", 0.1, "fraction of appliances that go silent after a while")
	if _, err := e.parse(args); err != nil {
		return err
	}
	if *ingest == "" || *caFile == "" {
		ep, err := platform.ReadEndpoints(e.cfg.DataDir)
		if err != nil {
			return err
		}
		*ingest, *caFile = cmp(*ingest, ep.Ingest), cmp(*caFile, ep.IngestCAFile)
	}
	var devs []fleet.Device
	var err error
	if *file != "" {
		if devs, err = fleet.LoadDevices(*file); err != nil {
			return err
		}
	} else {
		p, err := e.producer()
		if err != nil {
			return err
		}
		devs, err = registerDevices(ctx, p, *n, *customer)
		p.Close()
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(e.out, "simulating %d appliances against %s; Ctrl-C stops\n", len(devs), *ingest)
	return runFleet(ctx, e, *ingest, *caFile, devs, *alertEvery, *silent)
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
