package agent_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/ksuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/appliance/agent"
	"github.com/mimamori/mimamori/appliance/defs"
	"github.com/mimamori/mimamori/appliance/inspect"
	"github.com/mimamori/mimamori/appliance/pcapgen"
	"github.com/mimamori/mimamori/appliance/queue"
	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/infra/testkit"
	"github.com/mimamori/mimamori/services/ingest"
	"github.com/mimamori/mimamori/services/registry"
	"github.com/mimamori/mimamori/services/tlsca"
)

// cloud is the real ingest gateway over HTTPS in front of an embedded
// Kafka broker (kfake), with one registered device and a definitions
// folder. serve starts the gateway, so a test can keep it unreachable
// for a while.
type cloud struct {
	kcfg     eventlog.Config
	prod     *eventlog.Producer
	live     *registry.Live
	defsDir  string
	caFile   string
	tlsFile  [2]string
	cred     string
	deviceID string
	customer string
	url      string
	client   *http.Client
	ctx      context.Context
	wait     func(func(context.Context) error)
}

func newCloud(t *testing.T) *cloud {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var waits []chan error
	t.Cleanup(func() {
		cancel()
		for _, w := range waits {
			if err := <-w; err != nil {
				t.Error(err)
			}
		}
	})
	c := &cloud{ctx: ctx, defsDir: t.TempDir()}
	c.wait = func(f func(context.Context) error) {
		w := make(chan error, 1)
		waits = append(waits, w)
		go func() { w <- f(ctx) }()
	}
	var err error
	_, c.kcfg = testkit.Kafka(t, 1, "t.")
	if c.prod, err = eventlog.NewProducer(c.kcfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.prod.Close)
	tctx, tcancel := context.WithTimeout(ctx, 10*time.Second)
	defer tcancel()
	if err := eventlog.EnsureTopics(tctx, c.prod.Client(), c.kcfg); err != nil {
		t.Fatal(err)
	}
	if c.live, err = registry.NewLive(c.kcfg, nil); err != nil {
		t.Fatal(err)
	}
	c.wait(c.live.Run)
	now := time.Now()
	if c.customer, err = registry.RegisterCustomer(tctx, c.prod, "Kato Bakery", "owner@kato.example", "rs_1", now); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.RegisterDevice(tctx, c.prod, registry.DeviceSpec{Serial: "MM-AGENT-1", MAC: "02:00:00:00:00:01",
		Model: "MM-100", ManufacturedOn: "2026-04-01", CustomerID: c.customer}, now)
	if err != nil {
		t.Fatal(err)
	}
	c.cred, c.deviceID = reg.Credential, reg.DeviceID
	paths, err := tlsca.Ensure(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.caFile, c.tlsFile = paths.CACert, [2]string{paths.ServerCert, paths.ServerKey}
	return c
}

// serve starts the gateway on addr ("127.0.0.1:0" for any port).
func (c *cloud) serve(t *testing.T, addr string) {
	t.Helper()
	tlsCfg, err := tlsca.ServerTLS(c.tlsFile[0], c.tlsFile[1])
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	h := ingest.New(ingest.Config{DefinitionsDir: c.defsDir, PublicMetrics: true}, ingest.Deps{Auth: c.live, Pub: c.prod, Registry: prometheus.NewRegistry()})
	srv := ingest.NewServer(ln, tlsCfg, h, nil)
	c.wait(srv.Run)
	c.url = "https://" + srv.Addr().String()
	pool, err := tlsca.CertPool(c.caFile)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	c.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// publish puts a bundle where the gateway serves it, as `defs publish`.
func (c *cloud) publish(t *testing.T, b []byte) {
	t.Helper()
	if err := defs.WriteFileSync(filepath.Join(c.defsDir, ingest.LatestBundle), b); err != nil {
		t.Fatal(err)
	}
}

// metric reads one line of the gateway's /metrics, e.g.
// `mimamori_ingest_requests_total{code="200",route="/v1/definitions"}`.
func (c *cloud) metric(t *testing.T, series string) string {
	t.Helper()
	resp, err := c.client.Get(c.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	return "0"
}

// topic reads every record now in a topic, in order.
func (c *cloud) topic(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(c.prod.Client()).ListEndOffsets(ctx, c.kcfg.Topic(topic))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	if n == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(c.kcfg.ClientOpts(), kgo.ConsumeTopics(c.kcfg.Topic(topic)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for int64(len(recs)) < n && ctx.Err() == nil {
		recs = append(recs, cl.PollFetches(ctx).Records()...)
	}
	if int64(len(recs)) != n {
		t.Fatalf("%s: read %d of %d records", topic, len(recs), n)
	}
	return recs
}

func decode(t *testing.T, r *kgo.Record) (string, events.Payload) {
	t.Helper()
	env, err := eventlog.FromRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	p, err := events.Decode(env)
	if err != nil {
		t.Fatal(err)
	}
	return env.Type, p
}

// signed builds a bundle of domain list lines.
func signed(t *testing.T, priv ed25519.PrivateKey, version uint64, domains string) []byte {
	t.Helper()
	return signedBy(t, version, domains, priv)
}

// signedBy builds a bundle of domain list lines signed by each key, which
// it trusts for the bundles after it.
func signedBy(t *testing.T, version uint64, domains string, keys ...ed25519.PrivateKey) []byte {
	t.Helper()
	entries, err := defs.ParseList(defs.ListDomains, strings.NewReader(domains))
	if err != nil {
		t.Fatal(err)
	}
	b, err := defs.Build(defs.Spec{Version: version, Created: time.Now()}, defs.Lists{defs.ListDomains: entries}, defs.DefaultPortScan, keys...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dnsFrame is an Ethernet/IPv4/UDP DNS query for name from src to the
// resolver of generated captures.
func dnsFrame(t testing.TB, src string, name string, id uint16) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 0x10}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
		EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: netip.MustParseAddr(src).AsSlice(), DstIP: netip.MustParseAddr(pcapgen.Resolver).AsSlice()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(40000 + id%20000), DstPort: 53}
	_ = udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, udp, gopacket.Payload(pcapgen.DNSQuery(name, id))); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// logRecorder keeps every log record, for tests that wait on a warning.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// count counts records whose message has msg and whose "error" attribute
// is target (errors.Is) when target is set.
func (l *logRecorder) count(msg string, target error) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if !strings.Contains(r.Message, msg) {
			continue
		}
		ok := target == nil
		r.Attrs(func(a slog.Attr) bool {
			if e, isErr := a.Value.Any().(error); isErr && a.Key == "error" && errors.Is(e, target) {
				ok = true
			}
			return true
		})
		if ok {
			n++
		}
	}
	return n
}

func (l *logRecorder) attr(msg, key string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.recs {
		if strings.Contains(r.Message, msg) {
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == key {
					out = append(out, a.Value.String())
				}
				return true
			})
		}
	}
	return out
}

func readAlerts(t *testing.T, b []byte) []events.Alert {
	t.Helper()
	var out []events.Alert
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		var a events.Alert
		if err := dec.Decode(&a); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

// inspector feeds DNS queries to an agent from its own goroutine, as a
// capture does, until stopped.
type inspector struct {
	a       *agent.Agent
	t       *testing.T
	ts      time.Time
	n       int
	bytes   int
	queries map[string]int
}

func (in *inspector) query(src, name string) {
	f := dnsFrame(in.t, src, name, uint16(in.n))
	in.ts = in.ts.Add(time.Second) // past the fold window: one alert per query
	in.a.Process(f, in.ts, len(f))
	in.n++
	in.bytes += len(f)
	in.queries[name]++
}

func runCloud(t *testing.T, cfg agent.CloudConfig) (*agent.Cloud, func()) {
	t.Helper()
	c, err := agent.NewCloud(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		c.Close()
	}
	t.Cleanup(stop)
	return c, stop
}

func openQueue(t *testing.T, cfg queue.Config) *queue.Queue {
	t.Helper()
	q, err := queue.Open(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// TestDefinitionsSwapOnFetchCommandWhileInspecting: a running agent on v1
// is told by the heartbeat reply to fetch definitions when v2 is published
// (polling is hourly, so only the command can bring it), verifies and
// swaps v2 in while a capture goroutine keeps inspecting: no frame is
// skipped, every query for a v1 domain is detected on both sides of the
// swap, a domain only in v2 is detected once v2 is in use and never
// attributed to v1, and the new set is saved for the next start.
func TestDefinitionsSwapOnFetchCommandWhileInspecting(t *testing.T) {
	cl := newCloud(t)
	cl.serve(t, "127.0.0.1:0")
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	v1 := signed(t, priv, 1, "old-c2.example 3 C2\n")
	v2 := signed(t, priv, 2, "old-c2.example 3 C2\nnew-c2.example 3 NewC2\n")
	cl.publish(t, v1)

	storePath := filepath.Join(t.TempDir(), "current.bundle")
	store, err := defs.NewStore(defs.StoreConfig{Keys: []ed25519.PublicKey{pub}, Path: storePath})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Install(v1); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	a, err := agent.New(agent.Config{Zones: inspect.MustZones("lan=" + pcapgen.LAN), Store: store,
		FoldWindow: time.Millisecond, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logRecorder{}
	_, stop := runCloud(t, agent.CloudConfig{BaseURL: cl.url, Credential: cl.cred, CAFile: cl.caFile,
		Queue: openQueue(t, queue.Config{}), Store: store, Agent: a, HeartbeatEvery: 20 * time.Millisecond,
		PollEvery: time.Hour, MaxBackoff: 50 * time.Millisecond, Firmware: "test", Logger: slog.New(logs)})
	// The start-up poll has fetched v1 (already in use); from here on
	// only a fetch-definitions command makes the agent poll.
	defsOK := `mimamori_ingest_requests_total{code="200",route="/v1/definitions"}`
	testkit.WaitUntil(t, 60*time.Second, "the start-up definitions poll", func() bool { return cl.metric(t, defsOK) == "1" })

	in := &inspector{a: a, t: t, ts: time.Now().Add(-time.Hour), queries: map[string]int{}}
	stopFeed := make(chan struct{})
	fed := make(chan int) // queries for new-c2 after the feeder saw v2 in use
	go func() {
		after := 0
		for i := 0; ; i++ {
			src := fmt.Sprintf("192.168.1.%d", 10+i%50)
			in.query(src, "old-c2.example")
			in.query(src, "new-c2.example")
			in.query(src, "www.benign.example")
			if store.Version() == 2 {
				after++
			}
			if after >= 50 {
				<-stopFeed
				fed <- after
				return
			}
			if i%16 == 0 {
				a.Tick(in.ts)
			}
		}
	}()
	// Some inspection under v1 first.
	testkit.WaitUntil(t, 60*time.Second, "alerts under v1", func() bool { return a.Alerts() >= 20 })
	cl.publish(t, v2)
	testkit.WaitUntil(t, 60*time.Second, "v2 in use", func() bool { return store.Version() == 2 })
	close(stopFeed)
	// The swap may fall inside the iteration that first saw v2.
	after := <-fed - 1
	stop()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if n := logs.count("definitions updated", nil); n != 1 {
		t.Fatalf("definitions updated %d times, want once", n)
	}
	if got := cl.metric(t, defsOK); got != "2" {
		t.Fatalf("%s = %s; want 2 (start-up poll, then the one the command asked for)", defsOK, got)
	}

	st := a.Stats()
	if st.Packets != uint64(in.n) || st.Bytes != uint64(in.bytes) || st.Skipped != 0 {
		t.Fatalf("stats %+v; fed %d frames, %d bytes (none may be skipped across the swap)", st, in.n, in.bytes)
	}
	byVersion := map[string]map[string]int{}
	for _, al := range readAlerts(t, out.Bytes()) {
		if byVersion[al.Domain] == nil {
			byVersion[al.Domain] = map[string]int{}
		}
		byVersion[al.Domain][al.DefinitionsVersion] += al.Count
	}
	t.Logf("queries %v; alerts by domain and definitions version %v", in.queries, byVersion)
	old := byVersion["old-c2.example"]
	if old["1"]+old["2"] != in.queries["old-c2.example"] || old["1"] == 0 || old["2"] < after || len(old) != 2 {
		t.Fatalf("old-c2.example: %d queries, alerts by version %v (every query detected, under v1 then v2)", in.queries["old-c2.example"], old)
	}
	nw := byVersion["new-c2.example"]
	if nw["2"] < after || nw["2"] > in.queries["new-c2.example"] || len(nw) != 1 {
		t.Fatalf("new-c2.example: %d queries, %d after the swap; alerts by version %v", in.queries["new-c2.example"], after, nw)
	}
	if len(byVersion) != 2 {
		t.Fatalf("alerts for %v", byVersion)
	}
	saved, err := defs.NewStore(defs.StoreConfig{Keys: []ed25519.PublicKey{pub}, Path: storePath})
	if err != nil || saved.Version() != 2 {
		t.Fatalf("saved definitions: version %d, %v; want 2", saved.Version(), err)
	}
}

// TestRefusedDefinitionsKeepTheCurrentSet: a running agent polls; the
// cloud serves a tampered bundle, one signed with another key, and an
// older one. Each is refused (seen twice, so at least one poll began after
// it was published), the set in use and the saved bundle stay, inspection
// goes on with them; a valid newer bundle published afterwards is
// installed.
func TestRefusedDefinitionsKeepTheCurrentSet(t *testing.T) {
	cl := newCloud(t)
	cl.serve(t, "127.0.0.1:0")
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	v1 := signed(t, priv, 1, "old-c2.example 3 C2\n")
	v2 := signed(t, priv, 2, "v2-c2.example 3 C2\n")
	v3 := signed(t, priv, 3, "v3-c2.example 3 C2\n")
	tampered := bytes.Clone(v3)
	tampered[len(tampered)-10] ^= 0xff // in the gzip body the signature covers
	storePath := filepath.Join(t.TempDir(), "current.bundle")
	store, err := defs.NewStore(defs.StoreConfig{Keys: []ed25519.PublicKey{pub}, Path: storePath})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Install(v2); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	a, err := agent.New(agent.Config{Zones: inspect.MustZones("lan=" + pcapgen.LAN), Store: store,
		FoldWindow: time.Millisecond, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	in := &inspector{a: a, t: t, ts: time.Now().Add(-time.Hour), queries: map[string]int{}}
	logs := &logRecorder{}
	cl.publish(t, tampered)
	_, stop := runCloud(t, agent.CloudConfig{BaseURL: cl.url, Credential: cl.cred, CAFile: cl.caFile,
		Queue: openQueue(t, queue.Config{}), Store: store, Agent: a, HeartbeatEvery: time.Hour,
		PollEvery: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Firmware: "test", Logger: slog.New(logs)})

	for _, c := range []struct {
		name   string
		bundle []byte
		err    error
	}{
		{"tampered", tampered, defs.ErrSignature},
		{"signed with another key", signed(t, otherPriv, 3, "v3-c2.example 3 C2\n"), defs.ErrSignature},
		{"older (rollback)", v1, defs.ErrRollback},
		{"tampered again", tampered, defs.ErrSignature},
	} {
		base := logs.count("agent: definitions", c.err)
		cl.publish(t, c.bundle)
		testkit.WaitUntil(t, 60*time.Second, c.name+" refused twice", func() bool { return logs.count("agent: definitions", c.err) >= base+2 })
		in.query("192.168.1.20", "v2-c2.example")
		in.query("192.168.1.20", "old-c2.example")
		if store.Version() != 2 {
			t.Fatalf("%s: version %d in use, want 2", c.name, store.Version())
		}
		if saved, err := defs.NewStore(defs.StoreConfig{Keys: []ed25519.PublicKey{pub}, Path: storePath}); err != nil || saved.Version() != 2 {
			t.Fatalf("%s: saved bundle version %d, %v; want 2", c.name, saved.Version(), err)
		}
	}
	cl.publish(t, v3)
	testkit.WaitUntil(t, 60*time.Second, "v3 installed after the refusals", func() bool { return store.Version() == 3 })
	in.query("192.168.1.20", "v3-c2.example")
	stop()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, al := range readAlerts(t, out.Bytes()) {
		got[al.Domain] += al.DefinitionsVersion
	}
	if want := map[string]string{"v2-c2.example": "2222", "v3-c2.example": "3"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("alerts by domain (definitions versions) %v, want %v", got, want)
	}
	if st := a.Stats(); st.Skipped != 0 || st.Packets != uint64(in.n) {
		t.Fatalf("stats %+v, fed %d", st, in.n)
	}
}

// TestExpiredDefinitionsRefusedAndReported: an appliance restarting with
// a saved set that expired while it ran keeps inspecting with it and says
// so, in its log and in its heartbeat's definitions version; a newer
// bundle the cloud serves that is past its own expiry (a frozen mirror)
// is refused with the expiry named. A fresh bundle is installed, and
// reported without the mark.
func TestExpiredDefinitionsRefusedAndReported(t *testing.T) {
	cl := newCloud(t)
	cl.serve(t, "127.0.0.1:0")
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	stale := func(version uint64, domains string) []byte { // built 31 days ago: expired a day ago
		t.Helper()
		entries, err := defs.ParseList(defs.ListDomains, strings.NewReader(domains))
		if err != nil {
			t.Fatal(err)
		}
		b, err := defs.Build(defs.Spec{Version: version, Created: time.Now().Add(-defs.DefaultLifetime - 24*time.Hour)},
			defs.Lists{defs.ListDomains: entries}, defs.DefaultPortScan, priv)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	storePath := filepath.Join(t.TempDir(), "current.bundle")
	if err := defs.WriteFileSync(storePath, stale(7, "old-c2.example 3 C2\n")); err != nil { // saved when it was fresh
		t.Fatal(err)
	}
	store, err := defs.NewStore(defs.StoreConfig{Keys: []ed25519.PublicKey{pub}, Path: storePath})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	a, err := agent.New(agent.Config{Zones: inspect.MustZones("lan=" + pcapgen.LAN), Store: store,
		FoldWindow: time.Millisecond, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	in := &inspector{a: a, t: t, ts: time.Now().Add(-time.Hour), queries: map[string]int{}}
	logs := &logRecorder{}
	cl.publish(t, stale(8, "old-c2.example 3 C2\nnew-c2.example 3 C2\n"))
	c, stop := runCloud(t, agent.CloudConfig{BaseURL: cl.url, Credential: cl.cred, CAFile: cl.caFile,
		Queue: openQueue(t, queue.Config{}), Store: store, Agent: a, HeartbeatEvery: time.Hour,
		PollEvery: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Firmware: "test", Logger: slog.New(logs)})

	testkit.WaitUntil(t, 60*time.Second, "the expired v8 refused", func() bool { return logs.count("agent: definitions", defs.ErrExpired) > 0 })
	if msg := fmt.Sprint(logs.attr("agent: definitions", "error")); !strings.Contains(msg, "version 8 expired at ") {
		t.Fatalf("refusal %s does not name the expiry", msg)
	}
	testkit.WaitUntil(t, 60*time.Second, "the stale set in use logged", func() bool { return logs.count("past their expiry", nil) > 0 })
	if v := logs.attr("past their expiry", "version"); v[0] != "7" {
		t.Fatalf("stale set logged as version %v", v)
	}
	lastHeartbeat := func() string {
		recs := cl.topic(t, events.TopicHeartbeats)
		if len(recs) == 0 {
			return ""
		}
		_, p := decode(t, recs[len(recs)-1])
		return p.(*events.Heartbeat).DefinitionsVersion
	}
	testkit.WaitUntil(t, 60*time.Second, "a heartbeat", func() bool { return lastHeartbeat() != "" })
	if got := lastHeartbeat(); got != "7 expired" {
		t.Fatalf("heartbeat definitions version %q, want \"7 expired\"", got)
	}
	in.query("192.168.1.20", "old-c2.example")
	in.query("192.168.1.20", "new-c2.example")
	if store.Version() != 7 {
		t.Fatalf("version %d in use, want 7", store.Version())
	}

	cl.publish(t, signed(t, priv, 9, "old-c2.example 3 C2\nnew-c2.example 3 C2\n"))
	testkit.WaitUntil(t, 60*time.Second, "the fresh v9 installed", func() bool { return store.Version() == 9 })
	c.Heartbeat(context.Background())
	if got := lastHeartbeat(); got != "9" {
		t.Fatalf("heartbeat definitions version %q after the fresh bundle, want \"9\"", got)
	}
	in.query("192.168.1.20", "new-c2.example")
	stop()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, al := range readAlerts(t, out.Bytes()) {
		got[al.Domain] += al.DefinitionsVersion
	}
	if want := map[string]string{"old-c2.example": "7", "new-c2.example": "9"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("alerts by domain (definitions versions) %v, want %v", got, want)
	}
}

// TestKeyRotationThroughTheCloud: an appliance configured with the old
// key polls a bundle signed by the old and a new key (introducing the
// new one), then one signed by the new key alone (retiring the old);
// after that a bundle signed only by the old key is refused, also by the
// store a restart opens with the old key still configured.
func TestKeyRotationThroughTheCloud(t *testing.T) {
	cl := newCloud(t)
	cl.serve(t, "127.0.0.1:0")
	oldPub, oldKey, _ := ed25519.GenerateKey(rand.Reader)
	_, newKey, _ := ed25519.GenerateKey(rand.Reader)
	storePath := filepath.Join(t.TempDir(), "current.bundle")
	store, err := defs.NewStore(defs.StoreConfig{Keys: []ed25519.PublicKey{oldPub}, Path: storePath})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logRecorder{}
	cl.publish(t, signedBy(t, 2, "c2.example 3 C2\n", oldKey, newKey))
	_, stop := runCloud(t, agent.CloudConfig{BaseURL: cl.url, Credential: cl.cred, CAFile: cl.caFile,
		Queue: openQueue(t, queue.Config{}), Store: store, HeartbeatEvery: time.Hour,
		PollEvery: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Firmware: "test", Logger: slog.New(logs)})
	testkit.WaitUntil(t, 60*time.Second, "the introducing v2 installed", func() bool { return store.Version() == 2 })
	cl.publish(t, signedBy(t, 3, "c2.example 3 C2\n", newKey))
	testkit.WaitUntil(t, 60*time.Second, "the retiring v3 installed", func() bool { return store.Version() == 3 })
	oldOnly := signedBy(t, 4, "c2.example 3 C2\n", oldKey)
	cl.publish(t, oldOnly)
	testkit.WaitUntil(t, 60*time.Second, "v4 of the retired key refused twice", func() bool { return logs.count("agent: definitions", defs.ErrSignature) >= 2 })
	stop()
	if store.Version() != 3 {
		t.Fatalf("version %d in use, want 3", store.Version())
	}
	restarted, err := defs.NewStore(defs.StoreConfig{Keys: []ed25519.PublicKey{oldPub}, Path: storePath})
	if err != nil || restarted.Version() != 3 {
		t.Fatalf("after a restart: version %d, %v", restarted.Version(), err)
	}
	if _, err := restarted.Install(oldOnly); !errors.Is(err, defs.ErrSignature) {
		t.Fatalf("retired key after a restart: %v", err)
	}
}

// TestGapRecordThenQueuedAlertsExactlyOnce: with the cloud unreachable
// while the agent (cloud loop running) fills a small queue, the queue
// drops its oldest alerts; once the cloud is reachable the gap record with
// the exact number dropped reaches Kafka before any alert, and every
// alert still queued arrives exactly once, none of the dropped ones.
func TestGapRecordThenQueuedAlertsExactlyOnce(t *testing.T) {
	cl := newCloud(t)
	// Nothing listens here yet: the cloud is unreachable.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	var list strings.Builder
	const n = 60
	for i := range n {
		fmt.Fprintf(&list, "c2-%03d.bad.example 3 C2\n", i)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	store, err := defs.NewStore(defs.StoreConfig{Keys: []ed25519.PublicKey{pub}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Install(signed(t, priv, 1, list.String())); err != nil {
		t.Fatal(err)
	}
	q := openQueue(t, queue.Config{MaxBytes: 12 << 10, SegmentBytes: 3 << 10})
	var out bytes.Buffer
	a, err := agent.New(agent.Config{Zones: inspect.MustZones("lan=" + pcapgen.LAN), Store: store,
		FoldWindow: time.Millisecond, Out: &out, Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logRecorder{}
	_, stop := runCloud(t, agent.CloudConfig{BaseURL: "https://" + addr, Credential: cl.cred, CAFile: cl.caFile,
		Queue: q, Store: store, Agent: a, HeartbeatEvery: time.Hour, PollEvery: time.Hour,
		MaxBackoff: 20 * time.Millisecond, Firmware: "test", Logger: slog.New(logs)})

	in := &inspector{a: a, t: t, ts: time.Now().Add(-time.Hour), queries: map[string]int{}}
	for i := range n {
		in.query("192.168.1.30", fmt.Sprintf("c2-%03d.bad.example", i))
		if i%5 == 4 {
			// Let the writer append (and the queue drop) as it goes.
			a.Tick(in.ts)
			want := int64(a.Alerts())
			testkit.WaitUntil(t, 60*time.Second, "alerts appended", func() bool {
				var d uint64
				for _, g := range q.Gaps() {
					d += g.Dropped
				}
				return q.Depth()+int64(d) >= want
			})
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	emitted := readAlerts(t, out.Bytes())
	if len(emitted) != n {
		t.Fatalf("%d alerts emitted, want %d", len(emitted), n)
	}
	var dropped uint64
	gaps := q.Gaps()
	for _, g := range gaps {
		dropped += g.Dropped
	}
	depth := q.Depth()
	if dropped == 0 || dropped+uint64(depth) != n {
		t.Fatalf("offline: %d dropped (%d gaps) + %d queued, want %d in all and some dropped", dropped, len(gaps), depth, n)
	}
	// The queue drops the oldest: what is left is the newest alerts.
	want := map[string]bool{}
	for _, al := range emitted[dropped:] {
		want[al.ID] = true
	}
	t.Logf("offline: %d alerts, %d dropped in %d gap records, %d queued", n, dropped, len(gaps), depth)

	cl.serve(t, addr)
	testkit.WaitUntil(t, 60*time.Second, "queue and gaps sent", func() bool { return q.Depth() == 0 && len(q.Gaps()) == 0 })
	stop()

	var gotDropped uint64
	gapEvents, alerts := 0, 0
	seen := map[string]int{}
	for _, r := range cl.topic(t, events.TopicAlerts) {
		typ, p := decode(t, r)
		switch typ {
		case events.TypeAlertsDropped:
			d := p.(*events.AlertsDropped)
			if alerts > 0 {
				t.Errorf("gap record %s after %d alerts; gap records go first", d.ID, alerts)
			}
			if d.DeviceID != cl.deviceID {
				t.Errorf("gap record of device %s", d.DeviceID)
			}
			gotDropped += d.Dropped
			gapEvents++
		case events.TypeAlertDetected:
			al := p.(*events.Alert)
			seen[al.ID]++
			alerts++
		default:
			t.Errorf("unexpected event %s", typ)
		}
	}
	if gapEvents != len(gaps) || gotDropped != dropped {
		t.Fatalf("cloud got %d gap records of %d dropped; the queue recorded %d of %d", gapEvents, gotDropped, len(gaps), dropped)
	}
	for id, c := range seen {
		if c != 1 || !want[id] {
			t.Errorf("alert %s arrived %d times (queued: %v)", id, c, want[id])
		}
	}
	if len(seen) != len(want) || alerts != len(want) {
		t.Fatalf("cloud got %d alerts (%d distinct), want the %d queued, each once; cloud + dropped = %d of %d emitted",
			alerts, len(seen), len(want), uint64(len(seen))+gotDropped, n)
	}
}

// TestHeartbeatCarriesStateAndWarnsAbove100Clients: the heartbeat the
// agent sends reaches Kafka with its firmware and definitions versions,
// uptime on its clock, the distinct inside-zone clients of the last 24 h
// (not the WAN side, not those last seen earlier), the packet, byte and
// alert counters and the queue depth; above 100 clients it warns,
// at 100 it does not. The reply's commands are acted on: reboot calls
// Reboot, fetch-definitions polls at once, unknown ones are ignored.
func TestHeartbeatCarriesStateAndWarnsAbove100Clients(t *testing.T) {
	cl := newCloud(t)
	cl.serve(t, "127.0.0.1:0")
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	v7 := signed(t, priv, 7, "c2.bad.example 3 C2\n")
	cl.publish(t, v7)
	store, err := defs.NewStore(defs.StoreConfig{Keys: []ed25519.PublicKey{pub}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Install(v7); err != nil {
		t.Fatal(err)
	}
	q := openQueue(t, queue.Config{})
	a, err := agent.New(agent.Config{Zones: inspect.MustZones("lan=192.168.1.0/24", "ssid1=192.168.10.0/24"), Store: store,
		FoldWindow: time.Millisecond, Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	start := time.Now().UTC().Add(-27 * time.Hour).Truncate(time.Second)
	var clockMu sync.Mutex
	clock := start
	setClock := func(t time.Time) { clockMu.Lock(); clock = t; clockMu.Unlock() }
	logs := &logRecorder{}
	reboots := 0
	c, err := agent.NewCloud(agent.CloudConfig{BaseURL: cl.url, Credential: cl.cred, CAFile: cl.caFile, Queue: q,
		Store: store, Agent: a, Firmware: "fw-1.2.3", Logger: slog.New(logs), MaxBackoff: 50 * time.Millisecond,
		Reboot: func() { reboots++ },
		Now:    func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	in := &inspector{a: a, t: t, ts: start.Add(-30 * time.Hour), queries: map[string]int{}}
	// 30 clients last seen 30 h before: not counted.
	for i := range 30 {
		in.query(fmt.Sprintf("192.168.1.%d", 200+i), "www.benign.example")
	}
	in.ts = start.Add(-time.Hour)
	// 100 clients in two inside zones within 24 h, several frames each;
	// the resolver (WAN) is not a client.
	for i := range 100 {
		src := fmt.Sprintf("192.168.1.%d", 1+i)
		if i >= 60 {
			src = fmt.Sprintf("192.168.10.%d", i)
		}
		in.query(src, "www.benign.example")
		in.query(src, "c2.bad.example")
	}
	settle := func() {
		a.Tick(in.ts.Add(time.Minute))
		testkit.WaitUntil(t, 60*time.Second, "alerts on disk", func() bool { return q.Depth() == int64(a.Alerts()) })
	}
	settle()
	heartbeat := func(at time.Duration) events.Heartbeat {
		t.Helper()
		setClock(start.Add(at))
		before := len(cl.topic(t, events.TopicHeartbeats))
		c.Heartbeat(context.Background())
		recs := cl.topic(t, events.TopicHeartbeats)
		if len(recs) != before+1 {
			t.Fatalf("heartbeats in Kafka %d, want %d", len(recs), before+1)
		}
		_, p := decode(t, recs[len(recs)-1])
		return *p.(*events.Heartbeat)
	}
	check := func(hb events.Heartbeat, uptime int64, clients int) {
		t.Helper()
		st := a.Stats()
		if hb.DeviceID != cl.deviceID || hb.FirmwareVersion != "fw-1.2.3" || hb.DefinitionsVersion != "7" ||
			hb.UptimeSeconds != uptime || hb.Clients != clients || hb.Packets != uint64(in.n) || hb.Bytes != uint64(in.bytes) ||
			hb.Packets != st.Packets || hb.Alerts != a.Alerts() || hb.Alerts == 0 || hb.QueueDepth != q.Depth() || hb.QueueDepth == 0 ||
			!hb.SentAt.Equal(start.Add(time.Duration(uptime)*time.Second)) {
			t.Fatalf("heartbeat %+v\nwant firmware fw-1.2.3, definitions 7, uptime %d, clients %d, packets %d, bytes %d, alerts %d, queue %d",
				hb, uptime, clients, in.n, in.bytes, a.Alerts(), q.Depth())
		}
	}
	check(heartbeat(time.Minute), 60, 100)
	if n := logs.count("R-02", nil); n != 0 {
		t.Fatalf("warned at 100 clients")
	}

	// A 101st client (IPv4 in ssid1) and more frames of known ones.
	in.query("192.168.10.250", "www.benign.example")
	in.query("192.168.1.1", "c2.bad.example")
	settle()
	check(heartbeat(90*time.Minute), 5400, 101)
	if logs.count("R-02", nil) != 1 || fmt.Sprint(logs.attr("R-02", "clients_24h")) != "[101]" {
		t.Fatalf("R-02 warnings %d, clients %v; want one, 101", logs.count("R-02", nil), logs.attr("R-02", "clients_24h"))
	}
	// 25 h later every client is older than 24 h.
	check(heartbeat(26*time.Hour), 26*3600, 0)

	// Commands of the reply.
	c.Commands([]string{"reboot", "self-destruct"})
	if reboots != 1 || logs.count("unknown command", nil) != 1 {
		t.Fatalf("reboot called %d times, unknown command warnings %d", reboots, logs.count("unknown command", nil))
	}
}

// TestRefusedAlertCostsOnlyItself: among valid alerts in one batch sit
// an alert of a faulty older firmware (severity 7), a record that is not
// an alert at all, and an alert a newer gateway refuses for good (a proxy
// in front of the real gateway answers 400 to any batch holding it, as a
// gateway with stricter rules would). The valid ones arrive, each once;
// the three are dropped, logged and reported as gaps of 3 in all; the
// queue ends empty. (Before, the whole batch was dropped, so one poisoned
// alert hid every alert batched beside it.)
func TestRefusedAlertCostsOnlyItself(t *testing.T) {
	cl := newCloud(t)
	cl.serve(t, "127.0.0.1:0")
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	store, err := defs.NewStore(defs.StoreConfig{Keys: []ed25519.PublicKey{pub}})
	if err != nil {
		t.Fatal(err)
	}
	q := openQueue(t, queue.Config{})
	want := map[string]bool{}
	var recs [][]byte
	var stricter string // the alert the newer gateway refuses
	for i := range 40 {
		a := events.Alert{ID: ksuid.New().String(), DetectedAt: time.Now().Add(-time.Minute).UTC(), Severity: 3,
			Kind: events.KindDomain, Indicator: fmt.Sprintf("c2-%d.bad.example", i), Label: "C2", Action: events.ActionDetected,
			SrcIP: "192.168.1.30", SrcPort: 5000 + i, DstIP: "203.0.113.53", DstPort: 53, Protocol: "udp", Zones: "LAN>WAN",
			Domain: fmt.Sprintf("c2-%d.bad.example", i), Count: 1}
		switch i {
		case 17:
			a.Severity = 7
		case 23:
			stricter = a.ID
		default:
			want[a.ID] = true
		}
		b, _ := json.Marshal(a)
		recs = append(recs, b)
		if i == 29 {
			recs = append(recs, []byte("not an alert"))
		}
	}
	if err := q.Append(recs); err != nil {
		t.Fatal(err)
	}
	proxyURL := cl.stricterProxy(t, stricter)
	logs := &logRecorder{}
	_, stop := runCloud(t, agent.CloudConfig{BaseURL: proxyURL, Credential: cl.cred, CAFile: cl.caFile, Queue: q, Store: store,
		HeartbeatEvery: time.Hour, PollEvery: time.Hour, MaxBackoff: 20 * time.Millisecond, Firmware: "test", Logger: slog.New(logs)})
	testkit.WaitUntil(t, 60*time.Second, "queue and gaps sent", func() bool { return q.Depth() == 0 && len(q.Gaps()) == 0 })
	stop()

	seen := map[string]int{}
	var dropped uint64
	for _, r := range cl.topic(t, events.TopicAlerts) {
		typ, p := decode(t, r)
		switch typ {
		case events.TypeAlertsDropped:
			dropped += p.(*events.AlertsDropped).Dropped
		case events.TypeAlertDetected:
			seen[p.(*events.Alert).ID]++
		}
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("valid alert %s arrived %d times", id, seen[id])
		}
	}
	if len(seen) != len(want) || dropped != 3 {
		t.Fatalf("cloud got %d distinct alerts and gaps of %d; want the %d valid ones and gaps of 3", len(seen), dropped, len(want))
	}
	if got := logs.attr("agent: gateway refused an alert for good", "alert"); len(got) != 1 || got[0] != stricter {
		t.Errorf("refusals logged for %v, want [%s]", got, stricter)
	}
	if n := len(logs.attr("agent: invalid queued alert dropped", "alert")) + logs.count("agent: unreadable queued alert dropped", nil); n != 2 {
		t.Errorf("%d local refusals logged, want 2", n)
	}
}

// stricterProxy is an HTTPS proxy in front of the gateway that answers 400
// to any alert batch holding the alert id, as a gateway with stricter
// rules than the appliance's would, and forwards everything else.
func (c *cloud) stricterProxy(t *testing.T, id string) string {
	t.Helper()
	target, _ := url.Parse(c.url)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = c.client.Transport
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		plain := body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err == nil {
				plain, _ = io.ReadAll(zr)
			}
		}
		if strings.HasSuffix(r.URL.Path, "/alerts") && bytes.Contains(plain, []byte(id)) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":"alert %s: refused by a stricter rule","field":"alerts"}`, id)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rp.ServeHTTP(w, r)
	}))
	tlsCfg, err := tlsca.ServerTLS(c.tlsFile[0], c.tlsFile[1])
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = tlsCfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}
