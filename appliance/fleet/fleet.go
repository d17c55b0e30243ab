// Package fleet simulates a fleet of appliances for the demo and for load
// tests: each virtual appliance sends heartbeats and office-shaped alerts
// to the ingest gateway through the real uplink client.
package fleet

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/mimamori/mimamori/appliance/uplink"
	"github.com/mimamori/mimamori/events"
)

// Defaults for the zero values of Config.
const (
	DefaultAlertEvery     = 2 * time.Minute
	DefaultHeartbeatEvery = time.Minute
	DefaultMaxBackoff     = 30 * time.Second
)

// maxRound bounds the alerts one device catches up on in one request
// after it was held up (a slow or absent gateway).
const maxRound = uplink.MaxBatchAlerts

// Device is one registered appliance and its credential, as printed by
// `mimamori device register`.
type Device struct {
	DeviceID   string `json:"device_id"`
	Credential string `json:"credential"`
	CustomerID string `json:"customer_id,omitempty"`
}

// LogValue keeps the credential's secret out of logs.
func (d Device) LogValue() slog.Value {
	id, _, _ := strings.Cut(d.Credential, ".")
	return slog.GroupValue(slog.String("device_id", d.DeviceID), slog.String("credential", id+".***"))
}

// LoadDevices reads devices from a JSON file: an array
// [{"device_id":…,"credential":…}, …], or objects one after another (one
// per line, as several register commands print them).
func LoadDevices(path string) ([]Device, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load devices: %w", err)
	}
	devices, err := parseDevices(data)
	if err != nil {
		return nil, fmt.Errorf("load devices from %s: %w", path, err)
	}
	return devices, nil
}

func parseDevices(data []byte) ([]Device, error) {
	data = bytes.TrimSpace(data)
	var devices []Device
	if bytes.HasPrefix(data, []byte("[")) {
		if err := json.Unmarshal(data, &devices); err != nil {
			return nil, err
		}
	} else {
		dec := json.NewDecoder(bytes.NewReader(data))
		for {
			var d Device
			if err := dec.Decode(&d); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, err
			}
			devices = append(devices, d)
		}
	}
	if len(devices) == 0 {
		return nil, errors.New("no devices")
	}
	seen := map[string]bool{}
	for i, d := range devices {
		if d.DeviceID == "" || d.Credential == "" {
			return nil, fmt.Errorf("device %d: device_id and credential are required", i)
		}
		if seen[d.DeviceID] {
			return nil, fmt.Errorf("device %d: device_id %q listed twice", i, d.DeviceID)
		}
		seen[d.DeviceID] = true
	}
	return devices, nil
}

// Config configures a simulated fleet.
type Config struct {
	Devices []Device
	// BaseURL is the ingest gateway; RootCAs and CAFile what to trust
	// (see uplink.Config).
	BaseURL string
	RootCAs *x509.CertPool
	CAFile  string
	// AlertEvery is the mean gap between a device's alerts (a Poisson
	// process); negative turns alerts off.
	AlertEvery time.Duration
	// HeartbeatEvery is each device's heartbeat period (±10%); negative
	// turns heartbeats off.
	HeartbeatEvery time.Duration
	// SilentFraction of the devices, chosen by Seed, stop sending for good
	// at a random time between SilentAfter/2 and SilentAfter (default 10
	// heartbeat periods), as a device that lost power would.
	SilentFraction float64
	SilentAfter    time.Duration
	// Seed makes every site, schedule and alert (except KSUIDs) repeatable.
	Seed int64
	// Gzip and MaxBackoff go to each device's uplink client.
	Gzip       bool
	MaxBackoff time.Duration
	Logger     *slog.Logger
}

// Stats is what a fleet did.
type Stats struct {
	Devices            int   // devices simulated
	Silenced           int   // devices that went silent
	AlertsGenerated    int64 // alerts the devices detected
	AlertsSent         int64 // alerts in requests the gateway answered for good
	AlertsAcknowledged int64 // accepted + duplicates
	AlertsDuplicate    int64 // acknowledged as already stored
	Heartbeats         int64 // heartbeats acknowledged
	Commands           int64 // commands the gateway returned with heartbeats
	Errors             int64 // sends the gateway refused for good
}

type counters struct {
	silenced                                        atomic.Int64
	generated, sent, acked, dup, hb, cmds, failures atomic.Int64
}

func (c *counters) stats(devices int) Stats {
	return Stats{
		Devices:            devices,
		Silenced:           int(c.silenced.Load()),
		AlertsGenerated:    c.generated.Load(),
		AlertsSent:         c.sent.Load(),
		AlertsAcknowledged: c.acked.Load(),
		AlertsDuplicate:    c.dup.Load(),
		Heartbeats:         c.hb.Load(),
		Commands:           c.cmds.Load(),
		Errors:             c.failures.Load(),
	}
}

// Run simulates the fleet until ctx ends, then returns what it did. The
// error is for a configuration that cannot run; the gateway's refusals are
// logged and counted in Stats.Errors.
func Run(ctx context.Context, cfg Config) (Stats, error) {
	if len(cfg.Devices) == 0 {
		return Stats{}, errors.New("fleet: no devices")
	}
	if cfg.SilentFraction < 0 || cfg.SilentFraction > 1 || math.IsNaN(cfg.SilentFraction) {
		return Stats{}, fmt.Errorf("fleet: SilentFraction must be within 0..1, got %v", cfg.SilentFraction)
	}
	if cfg.AlertEvery == 0 {
		cfg.AlertEvery = DefaultAlertEvery
	}
	if cfg.HeartbeatEvery == 0 {
		cfg.HeartbeatEvery = DefaultHeartbeatEvery
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.SilentAfter <= 0 {
		cfg.SilentAfter = 10 * max(cfg.HeartbeatEvery, time.Second)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	// Which devices go silent is part of the seed, not of the start order.
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 1))
	silent := make([]bool, len(cfg.Devices))
	for _, i := range rng.Perm(len(cfg.Devices))[:int(math.Round(cfg.SilentFraction*float64(len(cfg.Devices))))] {
		silent[i] = true
	}

	devices := make([]*device, len(cfg.Devices))
	for i, d := range cfg.Devices {
		dlog := log.With("device_id", d.DeviceID)
		client, err := uplink.New(uplink.Config{
			BaseURL: cfg.BaseURL, Credential: d.Credential, CAFile: cfg.CAFile, RootCAs: cfg.RootCAs,
			Timeout: 15 * time.Second, MaxBackoff: cfg.MaxBackoff, Gzip: cfg.Gzip, Logger: dlog,
		})
		if err != nil {
			for _, prev := range devices[:i] {
				prev.client.Close()
			}
			return Stats{}, fmt.Errorf("fleet: device %s: %w", d.DeviceID, err)
		}
		seed := cfg.Seed*1_000_003 + int64(i)
		devices[i] = &device{
			id:     d.DeviceID,
			client: client,
			gen:    NewGenerator(seed),
			rng:    rand.New(rand.NewPCG(uint64(seed), 2)),
			log:    dlog,
		}
		if silent[i] {
			half := cfg.SilentAfter / 2
			devices[i].silentAfter = half + time.Duration(rng.Int64N(int64(half)+1))
		}
	}

	var c counters
	var wg sync.WaitGroup
	for _, d := range devices {
		wg.Go(func() {
			defer d.client.Close()
			d.run(ctx, &cfg, &c)
		})
	}
	wg.Wait()
	return c.stats(len(devices)), nil
}

// device is one virtual appliance.
type device struct {
	id          string
	client      *uplink.Client
	gen         *Generator // used by the alert loop only
	rng         *rand.Rand // used by run before the loops start, then by the heartbeat loop
	log         *slog.Logger
	silentAfter time.Duration // 0: never

	alerts  atomic.Uint64 // detected so far, for heartbeats
	pending atomic.Int64  // detected, not yet acknowledged: the queue depth
}

func (d *device) run(ctx context.Context, cfg *Config, c *counters) {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	if d.silentAfter > 0 {
		t := time.AfterFunc(d.silentAfter, func() {
			c.silenced.Add(1)
			d.log.Info("fleet: device goes silent", "after", d.silentAfter)
			stop()
		})
		defer t.Stop()
	}
	alertSeed, firstBeat := d.rng.Uint64(), jitter(d.rng, min(cfg.HeartbeatEvery, 10*time.Second), 1)
	var wg sync.WaitGroup
	if cfg.HeartbeatEvery > 0 {
		wg.Go(func() { d.heartbeats(ctx, stop, cfg.HeartbeatEvery, firstBeat, c) })
	}
	if cfg.AlertEvery > 0 {
		r := rand.New(rand.NewPCG(alertSeed, 3))
		wg.Go(func() { d.alertLoop(ctx, stop, cfg.AlertEvery, r, c) })
	}
	wg.Wait()
}

// jitter returns a uniform duration in [0, d·frac].
func jitter(r *rand.Rand, d time.Duration, frac float64) time.Duration {
	span := time.Duration(float64(d) * frac)
	if span <= 0 {
		return 0
	}
	return time.Duration(r.Int64N(int64(span) + 1))
}

// refused counts a permanent refusal and stops the device when its
// credential no longer works: it would only be refused again.
func (d *device) refused(err error, what string, stop context.CancelFunc, c *counters) {
	c.failures.Add(1)
	d.log.Warn("fleet: gateway refused "+what, "error", err)
	var perm *uplink.PermanentError
	if errors.As(err, &perm) && perm.Unauthorized() {
		d.log.Warn("fleet: credential refused, device stops")
		stop()
	}
}

func (d *device) heartbeats(ctx context.Context, stop context.CancelFunc, every, first time.Duration, c *counters) {
	r := d.rng
	gen := d.gen
	// A device that has been running for a while already: uptime from
	// one hour to thirty days, counters to match.
	boot := time.Now().Add(-time.Hour - time.Duration(r.Int64N(int64(29*24*time.Hour))))
	firmware := fmt.Sprintf("1.%d.%d", 2+r.IntN(3), r.IntN(10))
	defs := gen.DefinitionsVersion()
	clients := min(max(gen.Hosts(), 10), 80)
	var packets, bytesSent uint64
	last := boot
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now := time.Now()
		// Office traffic: 20–60 packets/s per client, ~700 bytes each.
		secs := now.Sub(last).Seconds()
		p := uint64(secs * float64(clients) * (20 + 40*r.Float64()))
		packets += p
		bytesSent += p * uint64(500+r.IntN(400))
		last = now
		clients = min(max(clients+r.IntN(7)-3, 10), 80)

		hb := events.Heartbeat{
			ID:                 ksuid.New().String(),
			DeviceID:           d.id,
			SentAt:             now.UTC(),
			FirmwareVersion:    firmware,
			DefinitionsVersion: defs,
			UptimeSeconds:      int64(now.Sub(boot) / time.Second),
			Clients:            clients,
			Packets:            packets,
			Bytes:              bytesSent,
			Alerts:             d.alerts.Load(),
			QueueDepth:         d.pending.Load(),
		}
		cmds, err := d.client.SendHeartbeat(ctx, hb)
		switch {
		case err == nil:
			c.hb.Add(1)
			if len(cmds) > 0 {
				c.cmds.Add(int64(len(cmds)))
				d.log.Info("fleet: commands received", "commands", cmds)
			}
		case ctx.Err() != nil:
			return
		default:
			d.refused(err, "heartbeat", stop, c)
		}
		timer.Reset(every - every/10 + jitter(r, every, 0.2))
	}
}

func (d *device) alertLoop(ctx context.Context, stop context.CancelFunc, mean time.Duration, r *rand.Rand, c *counters) {
	gap := func() time.Duration { return time.Duration(r.ExpFloat64() * float64(mean)) }
	next := time.Now().Add(gap())
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	var batch []events.Alert
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		// Every alert that fell due, also those due while the last send
		// was held up, goes in this round.
		now := time.Now()
		batch = batch[:0]
		for !next.After(now) && len(batch) < maxRound {
			batch = append(batch, d.gen.Alert(now, d.id))
			next = next.Add(gap())
		}
		if !next.After(now) {
			next = now.Add(gap()) // too far behind: drop the backlog
		}
		n := int64(len(batch))
		c.generated.Add(n)
		d.alerts.Add(uint64(n))
		d.pending.Add(n)
		res, err := d.client.SendAlerts(ctx, batch)
		d.pending.Add(-n)
		switch {
		case err == nil:
			c.sent.Add(n)
			c.acked.Add(int64(res.Accepted + res.Duplicates))
			c.dup.Add(int64(res.Duplicates))
		case ctx.Err() != nil:
			return
		default:
			c.sent.Add(n)
			c.acked.Add(int64(res.Accepted + res.Duplicates))
			c.dup.Add(int64(res.Duplicates))
			d.refused(err, "alerts", stop, c)
		}
		timer.Reset(time.Until(next))
	}
}
