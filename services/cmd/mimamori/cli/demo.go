package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mimamori/mimamori/appliance/fleet"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/services/cmd/mimamori/app"
	"github.com/mimamori/mimamori/services/cmd/mimamori/config"
	"github.com/mimamori/mimamori/services/cmd/mimamori/platform"
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

type demoCmd struct {
	Devices    int           `default:"8" help:"simulated appliances across the demo customers"`
	AlertEvery time.Duration `default:"8s" help:"mean time between alerts of one appliance"`
	Settings
}

func (demoCmd) groups() []config.Group { return config.AllGroups() }

func (c demoCmd) run(ctx context.Context, e *env) error {
	return runPlatform(ctx, e, app.Services, func(ctx context.Context, p *platform.Platform) error {
		devs, err := demoDevices(ctx, p, c.Devices)
		if err != nil {
			return fmt.Errorf("demo devices: %w", err)
		}
		fmt.Fprintf(e.out, "demo: %d simulated appliances of %d customers are sending heartbeats and alerts to %s\n",
			len(devs), min(len(demoCustomers), len(devs)), p.Endpoints.Ingest)
		if p.Endpoints.AnalystUser != "" {
			fmt.Fprintf(e.out, "demo: try  %s --query 'SELECT kind, severity, count() FROM alerts GROUP BY kind, severity'\n",
				analystSQL(p.Endpoints))
		}
		return runFleet(ctx, e, p.Endpoints.Ingest, p.Endpoints.IngestCAFile, devs, c.AlertEvery, 0.1)
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

type simulateCmd struct {
	Devices     int           `default:"10" help:"number of virtual appliances"`
	Customer    string        `help:"customer the new appliances are registered for (default: the demo customers)"`
	DevicesFile string        `name:"devices-file" help:"JSON file of existing appliances [{device_id, credential}] instead of registering new ones"`
	Ingest      string        `help:"ingest gateway URL (default: the running platform's)"`
	CAFile      string        `name:"ca-file" help:"CA certificate of the ingest gateway (default: the running platform's)"`
	AlertEvery  time.Duration `default:"5s" help:"mean time between alerts of one appliance"`
	Silent      float64       `default:"0.1" help:"fraction of appliances that go silent after a while"`
	Settings
}

func (simulateCmd) groups() []config.Group { return kafkaGroups() }

func (c simulateCmd) run(ctx context.Context, e *env) error {
	ingest, caFile := c.Ingest, c.CAFile
	if ingest == "" || caFile == "" {
		ep, err := platform.ReadEndpoints(e.cfg.DataDir)
		if err != nil {
			return err
		}
		ingest, caFile = cmp.Or(ingest, ep.Ingest), cmp.Or(caFile, ep.IngestCAFile)
	}
	var devs []fleet.Device
	var err error
	if c.DevicesFile != "" {
		if devs, err = fleet.LoadDevices(c.DevicesFile); err != nil {
			return err
		}
	} else {
		p, err := e.producer()
		if err != nil {
			return err
		}
		devs, err = registerDevices(ctx, p, c.Devices, c.Customer)
		p.Close()
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(e.out, "simulating %d appliances against %s; Ctrl-C stops\n", len(devs), ingest)
	return runFleet(ctx, e, ingest, caFile, devs, c.AlertEvery, c.Silent)
}
