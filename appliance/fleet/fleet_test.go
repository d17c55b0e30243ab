package fleet

import (
	"compress/gzip"
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimamori/mimamori/events"
)

func TestEICARSHA256(t *testing.T) {
	// The published SHA-256 of the 68-byte EICAR test file.
	const want = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
	if got := EICARSHA256(); got != want {
		t.Fatalf("EICARSHA256() = %s, want %s", got, want)
	}
	if len(eicar) != 68 {
		t.Fatalf("eicar is %d bytes, want 68", len(eicar))
	}
}

// zoneOf says which network an address belongs to.
func zoneOf(ip string) string {
	a := netip.MustParseAddr(ip)
	for _, n := range []struct {
		zone   string
		prefix string
	}{
		{events.ZoneLAN, "192.168.1.0/24"},
		{events.ZoneSSID1, "192.168.10.0/24"},
		{events.ZoneSSID2, "192.168.20.0/24"},
		{events.ZoneLAN, "2001:db8:1::/64"},
		{events.ZoneSSID1, "2001:db8:10::/64"},
		{events.ZoneSSID2, "2001:db8:20::/64"},
	} {
		if netip.MustParsePrefix(n.prefix).Contains(a) {
			return n.zone
		}
	}
	return events.ZoneWAN
}

func TestGeneratedAlertsValidAndOfficeShaped(t *testing.T) {
	now := time.Date(2026, 11, 26, 9, 30, 0, 0, time.FixedZone("JST", 9*3600))
	kinds := map[string]int{}
	sev := map[int]int{}
	actions := map[string]int{}
	zones := map[string]int{}
	total := 0
	for seed := range int64(20) {
		g := NewGenerator(seed)
		for i := range 500 {
			a := g.Alert(now.Add(time.Duration(i)*time.Second), "dev-1")
			total++
			if err := a.ValidateFromDevice(); err != nil {
				t.Fatalf("seed %d alert %d: %v\n%+v", seed, i, err, a)
			}
			kinds[a.Kind]++
			sev[a.Severity]++
			actions[a.Action]++
			zones[a.Zones]++
			if a.DeviceID != "dev-1" || a.CustomerID != "" || !a.ReceivedAt.IsZero() {
				t.Fatalf("stamped fields: %+v", a)
			}
			if a.Count < 1 || a.Count > 3 {
				t.Fatalf("count = %d", a.Count)
			}
			if a.Protocol != "tcp" && a.Protocol != "udp" {
				t.Fatalf("protocol = %q", a.Protocol)
			}
			if a.DefinitionsVersion != g.DefinitionsVersion() || !a.DetectedAt.Equal(now.Add(time.Duration(i)*time.Second)) {
				t.Fatalf("definitions/detected_at: %+v", a)
			}
			// Zones agree with the addresses and follow the R-11 matrix.
			from, to, _ := strings.Cut(a.Zones, ">")
			if from == to {
				t.Fatalf("zones %q: same zone is not a monitored path", a.Zones)
			}
			if zoneOf(a.SrcIP) != from || zoneOf(a.DstIP) != to {
				t.Fatalf("zones %q but %s (%s) → %s (%s)", a.Zones, a.SrcIP, zoneOf(a.SrcIP), a.DstIP, zoneOf(a.DstIP))
			}
			if a.SrcMAC == "" || a.DstMAC == "" || a.SrcPort == 0 || a.DstPort == 0 {
				t.Fatalf("evidence missing: %+v", a)
			}
			switch a.Kind {
			case events.KindDomain:
				if a.URL != "" || a.Domain != a.Indicator || a.DstPort != 53 || a.Protocol != "udp" {
					t.Fatalf("domain alert: %+v", a)
				}
			case events.KindIP:
				if a.DstIP != a.Indicator || a.Protocol != "tcp" {
					t.Fatalf("ip alert: %+v", a)
				}
			case events.KindURL:
				u, err := url.Parse(a.URL)
				if err != nil || u.Host != a.Domain || a.Indicator != a.URL || a.DstPort != 80 {
					t.Fatalf("url alert: %+v", a)
				}
			case events.KindFile:
				if a.FileSHA256 != EICARSHA256() || a.Indicator != a.FileSHA256 || !strings.Contains(a.FileName, "eicar") ||
					!strings.HasSuffix(a.URL, a.FileName) || a.SrcPort != 80 {
					t.Fatalf("file alert: %+v", a)
				}
			case events.KindBehaviour:
				if !strings.HasPrefix(a.Label, "Port scan") {
					t.Fatalf("behaviour alert: %+v", a)
				}
			}
		}
	}
	for _, k := range []string{events.KindDomain, events.KindIP, events.KindURL, events.KindFile, events.KindBehaviour} {
		if kinds[k] < total/20 {
			t.Errorf("kind %s: %d of %d", k, kinds[k], total)
		}
	}
	if sev[1] < total/2 || sev[2] == 0 || sev[3] == 0 || sev[3] > sev[1] {
		t.Errorf("severities %v: want mostly low, some of each", sev)
	}
	if actions[events.ActionBlocked] == 0 || actions[events.ActionDetected] == 0 {
		t.Errorf("actions %v", actions)
	}
	for _, z := range []string{"LAN>WAN", "SSID1>WAN", "SSID2>WAN", "WAN>LAN", "SSID2>LAN"} {
		if zones[z] == 0 {
			t.Errorf("zones %s never generated: %v", z, zones)
		}
	}
}

func TestGeneratorDeterministic(t *testing.T) {
	now := time.Now()
	a, b, c := NewGenerator(42), NewGenerator(42), NewGenerator(43)
	same, ids := 0, map[string]bool{}
	for range 200 {
		x, y, z := a.Alert(now, "d"), b.Alert(now, "d"), c.Alert(now, "d")
		if ids[x.ID] || x.ID == y.ID {
			t.Fatalf("ids repeat: %s %s", x.ID, y.ID)
		}
		ids[x.ID], ids[y.ID] = true, true
		y.ID = x.ID
		if x != y {
			t.Fatalf("same seed differs:\n%+v\n%+v", x, y)
		}
		z.ID = x.ID
		if x == z {
			same++
		}
	}
	if same > 20 {
		t.Fatalf("seeds 42 and 43 agree on %d of 200 alerts", same)
	}
}

func TestLoadDevices(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		want    []Device
		wantErr string
	}{
		{
			name: "array",
			file: `[{"device_id":"d1","credential":"c1.s1","customer_id":"cu1"},{"device_id":"d2","credential":"c2.s2"}]`,
			want: []Device{{"d1", "c1.s1", "cu1"}, {"d2", "c2.s2", ""}},
		},
		{
			name: "one object per line",
			file: "{\"device_id\":\"d1\",\"credential\":\"c1.s1\",\"customer_id\":\"cu1\"}\n{\"device_id\":\"d2\",\"credential\":\"c2.s2\"}\n",
			want: []Device{{"d1", "c1.s1", "cu1"}, {"d2", "c2.s2", ""}},
		},
		{name: "empty", file: "[]", wantErr: "no devices"},
		{name: "no credential", file: `[{"device_id":"d1"}]`, wantErr: "required"},
		{name: "twice", file: `[{"device_id":"d1","credential":"a.b"},{"device_id":"d1","credential":"c.d"}]`, wantErr: "twice"},
		{name: "not json", file: `device_id=d1`, wantErr: "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "devices.json")
			if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := LoadDevices(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %+v, want %+v", got, tt.want)
				}
			}
		})
	}
	if _, err := LoadDevices(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("missing file: no error")
	}
}

// ingest emulates the gateway for a fleet: credentials map to devices,
// every tenth request gets a 503, heartbeats get a command back.
type ingest struct {
	srv         *httptest.Server
	credentials map[string]string // credential → device id
	mu          sync.Mutex
	requests    int
	alerts      map[string]events.Alert
	beats       map[string][]events.Heartbeat // per device
	refused     map[string]int                // per credential
	invalid     []string
}

func newIngest(t *testing.T, devices []Device) *ingest {
	t.Helper()
	in := &ingest{credentials: map[string]string{}, alerts: map[string]events.Alert{},
		beats: map[string][]events.Heartbeat{}, refused: map[string]int{}}
	for _, d := range devices {
		in.credentials[d.Credential] = d.DeviceID
	}
	in.srv = httptest.NewUnstartedServer(http.HandlerFunc(in.serve))
	in.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	in.srv.StartTLS()
	t.Cleanup(in.srv.Close)
	return in
}

func (in *ingest) serve(w http.ResponseWriter, r *http.Request) {
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	cred := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	in.mu.Lock()
	in.requests++
	n := in.requests
	dev, ok := in.credentials[cred]
	if !ok {
		in.refused[cred]++
	}
	in.mu.Unlock()
	if !ok {
		reply(401, map[string]string{"error": "unknown credential"})
		return
	}
	if n%10 == 0 {
		reply(503, map[string]string{"error": "busy"})
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			reply(400, map[string]string{"error": "bad gzip"})
			return
		}
		body = zr
	}
	dec := json.NewDecoder(body)
	switch r.URL.Path {
	case "/v1/alerts":
		var req struct{ Alerts []events.Alert }
		if err := dec.Decode(&req); err != nil {
			reply(400, map[string]string{"error": err.Error()})
			return
		}
		in.mu.Lock()
		defer in.mu.Unlock()
		acc, dup := 0, 0
		for _, a := range req.Alerts {
			if err := a.ValidateFromDevice(); err != nil || a.DeviceID != dev {
				in.invalid = append(in.invalid, a.ID)
			}
			if _, seen := in.alerts[a.ID]; seen {
				dup++
				continue
			}
			in.alerts[a.ID] = a
			acc++
		}
		reply(202, map[string]int{"accepted": acc, "duplicates": dup})
	case "/v1/heartbeat":
		var hb events.Heartbeat
		if err := dec.Decode(&hb); err != nil {
			reply(400, map[string]string{"error": err.Error()})
			return
		}
		in.mu.Lock()
		defer in.mu.Unlock()
		if err := hb.ValidateFromDevice(); err != nil || hb.DeviceID != dev {
			in.invalid = append(in.invalid, hb.ID)
		}
		in.beats[dev] = append(in.beats[dev], hb)
		reply(202, map[string][]string{"commands": {"fetch-definitions"}})
	default:
		reply(404, map[string]string{"error": "not found"})
	}
}

func TestRunFleet(t *testing.T) {
	devices := []Device{
		{DeviceID: "dev-a", Credential: "ca.sa"}, {DeviceID: "dev-b", Credential: "cb.sb"},
		{DeviceID: "dev-c", Credential: "cc.sc"}, {DeviceID: "dev-d", Credential: "cd.sd"},
		{DeviceID: "dev-e", Credential: "ce.se"}, {DeviceID: "dev-f", Credential: "cf.sf"},
	}
	in := newIngest(t, devices)
	revoked := Device{DeviceID: "dev-revoked", Credential: "cr.revoked"}
	pool := x509.NewCertPool()
	pool.AddCert(in.srv.Certificate())

	ctx, cancel := context.WithTimeout(context.Background(), 1200*time.Millisecond)
	defer cancel()
	stats, err := Run(ctx, Config{
		Devices:        append(append([]Device{}, devices...), revoked),
		BaseURL:        in.srv.URL,
		RootCAs:        pool,
		AlertEvery:     5 * time.Millisecond,
		HeartbeatEvery: 20 * time.Millisecond,
		SilentFraction: 3.0 / 7,
		SilentAfter:    200 * time.Millisecond,
		Seed:           7,
		Gzip:           true,
		MaxBackoff:     20 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("stats %+v", stats)

	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.invalid) > 0 {
		t.Fatalf("%d invalid events, e.g. %s", len(in.invalid), in.invalid[0])
	}
	if stats.Devices != 7 {
		t.Fatalf("devices %d, want 7", stats.Devices)
	}
	if stats.AlertsAcknowledged == 0 || int64(len(in.alerts)) < stats.AlertsAcknowledged || stats.AlertsDuplicate != 0 {
		t.Fatalf("gateway stored %d alerts, stats %+v", len(in.alerts), stats)
	}
	if stats.AlertsSent > stats.AlertsGenerated || stats.AlertsAcknowledged > stats.AlertsSent {
		t.Fatalf("alert counts out of order: %+v", stats)
	}
	beats := 0
	var counts []int
	for _, d := range devices {
		hbs := in.beats[d.DeviceID]
		beats += len(hbs)
		counts = append(counts, len(hbs))
		for i := 1; i < len(hbs); i++ {
			p, c := hbs[i-1], hbs[i]
			if c.Packets < p.Packets || c.Bytes < p.Bytes || c.Alerts < p.Alerts || c.UptimeSeconds < p.UptimeSeconds {
				t.Fatalf("device %s counters went back: %+v then %+v", d.DeviceID, p, c)
			}
			if c.Clients < 10 || c.Clients > 80 || c.FirmwareVersion == "" || c.DefinitionsVersion == "" {
				t.Fatalf("device %s heartbeat: %+v", d.DeviceID, c)
			}
		}
	}
	// Seed 7 silences three of the six good devices: they must have sent
	// fewer heartbeats than any of the three that kept going.
	slices.Sort(counts)
	if stats.Silenced != 3 || counts[3] == 0 || counts[2] >= counts[3] {
		t.Fatalf("heartbeats per device %v, silenced %d: want 3 devices clearly quieter", counts, stats.Silenced)
	}
	if int64(beats) < stats.Heartbeats || stats.Heartbeats == 0 || stats.Commands == 0 {
		t.Fatalf("gateway got %d heartbeats, stats %+v", beats, stats)
	}
	if in.refused[revoked.Credential] < 1 || in.refused[revoked.Credential] > 2 || stats.Errors < 1 || stats.Errors > int64(in.refused[revoked.Credential]) {
		t.Fatalf("revoked device: %d refusals, stats.Errors %d; want it to stop after its first", in.refused[revoked.Credential], stats.Errors)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	tests := []Config{
		{},
		{Devices: []Device{{DeviceID: "d", Credential: "c.s"}}, BaseURL: "http://plain.example"},
		{Devices: []Device{{DeviceID: "d", Credential: "c.s"}}, BaseURL: "https://x.example", SilentFraction: 2},
	}
	for i, cfg := range tests {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("config %d: Run succeeded", i)
		}
	}
}
