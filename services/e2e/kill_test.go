package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mimamori/mimamori/analytics/chtest"
	"github.com/mimamori/mimamori/appliance/fleet"
	"github.com/mimamori/mimamori/appliance/uplink"
	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/infra/testkit"
	"github.com/mimamori/mimamori/infra/testkit/stacktest"
	"github.com/mimamori/mimamori/services/cmd/mimamori/platform"
	"github.com/mimamori/mimamori/services/registry"
)

// buildBinary compiles the mimamori binary once per test binary.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "mimamori-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "mimamori")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/mimamori/mimamori/services/cmd/mimamori").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// child is one `mimamori serve <service>` process that the test kills with
// SIGKILL and starts again.
type child struct {
	t    testing.TB
	bin  string
	args []string
	env  []string
	mu   sync.Mutex
	cmd  *exec.Cmd
	log  *os.File
}

func (c *child) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	cmd := exec.Command(c.bin, c.args...)
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Stdout, cmd.Stderr = c.log, c.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.t.Errorf("start %v: %v", c.args, err)
		return
	}
	c.cmd = cmd
}

func (c *child) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		_ = c.cmd.Process.Kill()
		_ = c.cmd.Wait()
		c.cmd = nil
	}
}

// The projector and the ingest gateway are killed abruptly, again and
// again, while 100,000 alerts are sent with retries. ClickHouse ends with
// exactly the alerts that were acknowledged, and every daily aggregate
// equals a recount from the raw rows.
func TestKillAndRestartLosesAndDoublesNothing(t *testing.T) {
	total := 100_000
	if testing.Short() {
		total = 10_000
	}
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	b := newBroker(t)
	conn, db := chtest.EmptyDatabase(t)
	dataDir := t.TempDir()
	ingestAddr := freePort(t)
	env := []string{
		"MIMAMORI_KAFKA_BROKERS=" + b.Addrs()[0],
		"MIMAMORI_KAFKA_PARTITIONS=3",
		"MIMAMORI_CLICKHOUSE_ADDR=" + chtest.Server(t).Addr(),
		"MIMAMORI_CLICKHOUSE_DATABASE=" + db,
		"MIMAMORI_DATA_DIR=" + dataDir,
		"MIMAMORI_INGEST_ADDR=" + ingestAddr,
		"MIMAMORI_ADMIN_ADDR=" + freePort(t),
		"MIMAMORI_LOG_LEVEL=warn",
	}
	cfg := stacktest.Config(t, map[string]string{"MIMAMORI_KAFKA_BROKERS": b.Addrs()[0], "MIMAMORI_CLICKHOUSE_ADDR": chtest.Server(t).Addr(),
		"MIMAMORI_CLICKHOUSE_DATABASE": db, "MIMAMORI_DATA_DIR": dataDir})
	p, err := platform.Attach(context.Background(), cfg, testLogger()) // creates topics' database and applies migrations
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	kcfg, _ := platform.KafkaConfig(cfg, b.Addrs())
	prod, err := eventlog.NewProducer(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := eventlog.EnsureTopics(context.Background(), prod.Client(), kcfg); err != nil {
		t.Fatal(err)
	}

	logf, _ := os.Create(filepath.Join(t.TempDir(), "children.log"))
	defer logf.Close()
	defer func() {
		if t.Failed() {
			out, _ := os.ReadFile(logf.Name())
			t.Logf("last output of the killed processes:\n%s", tailLines(string(out), 40))
		}
	}()
	// Each process has its admin listener (health and metrics) on its own port.
	ing := &child{t: t, bin: bin, args: []string{"serve", "ingest"}, env: append(slices.Clone(env), "MIMAMORI_ADMIN_ADDR="+freePort(t)), log: logf}
	// The projector runs as one replica with a stable name, as a deployment
	// would (MIMAMORI_INSTANCE_ID): its restart takes the partitions back at
	// once. Without it, kfake sometimes kept SIGKILLed dynamic members in the
	// group long past their session timeout (see the closing note of the
	// session that added this).
	proj := &child{t: t, bin: bin, args: []string{"serve", "projector"}, env: append(env, "MIMAMORI_INSTANCE_ID=projector-0"), log: logf}
	ing.start()
	proj.start()
	defer ing.kill()
	defer proj.kill()

	// Devices of two customers.
	ctx := context.Background()
	var clients []*uplink.Client
	caFile := filepath.Join(dataDir, "tls", "ca.pem")
	testkit.WaitFor(t, 60*time.Second, "the ingest gateway's CA", func() (bool, string) {
		_, err := os.Stat(caFile)
		return err == nil, fmt.Sprint(err)
	})
	for i := range 4 {
		cust, err := registry.RegisterCustomer(ctx, prod, fmt.Sprintf("顧客%d", i%2), "a@b.example", "rs", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		reg, err := registry.RegisterDevice(ctx, prod, registry.DeviceSpec{Serial: fmt.Sprint("SN", i), MAC: "00:11:22:33:44:55",
			Model: "MU-100", ManufacturedOn: "2026-01-01", CustomerID: cust}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		c, err := uplink.New(uplink.Config{BaseURL: "https://" + ingestAddr, Credential: reg.Credential, CAFile: caFile,
			Gzip: true, MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}

	// The chaos monkey: kill one of the two every 0.1–0.5 s and restart it.
	stop := make(chan struct{})
	var kills, ingestKills atomic.Int64
	monkey := sync.WaitGroup{}
	monkey.Go(func() {
		r := rand.New(rand.NewPCG(7, 7))
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(100+r.IntN(400)) * time.Millisecond):
			}
			victim := ing
			if r.IntN(2) == 0 {
				victim = proj
			} else {
				ingestKills.Add(1)
			}
			victim.kill()
			kills.Add(1)
			victim.start()
		}
	})

	// Senders: each client sends its share in batches of 500, retrying
	// until acknowledged.
	start := time.Now()
	var acked sync.Map
	var wg sync.WaitGroup
	per := total / len(clients)
	for i, c := range clients {
		wg.Go(func() {
			gen := fleet.NewGenerator(int64(100 + i))
			base := time.Now().UTC().Add(-72 * time.Hour)
			for sent := 0; sent < per; sent += 500 {
				batch := make([]events.Alert, 0, 500)
				for j := range 500 {
					batch = append(batch, gen.Alert(base.Add(time.Duration(sent+j)*2*time.Second), ""))
				}
				sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				_, err := c.SendAlerts(sctx, batch)
				cancel()
				if err != nil {
					t.Errorf("batch never acknowledged: %v", err)
					return
				}
				for _, a := range batch {
					acked.Store(a.ID, true)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	monkey.Wait()
	if t.Failed() {
		return
	}
	sendTime := time.Since(start)
	// Both running again, the projector drains the log.
	waitProjected(t, &stack{p: p})
	var n, distinct uint64
	qctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := conn.QueryRow(qctx, "SELECT count(), uniqExact(id) FROM "+db+".alerts").Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	ackedN := 0
	acked.Range(func(any, any) bool { ackedN++; return true })
	t.Logf("%d alerts sent in %s with %d kills (%d of ingest); alerts view: %d rows, %d distinct", ackedN, sendTime.Round(time.Millisecond), kills.Load(), ingestKills.Load(), n, distinct)
	if n != uint64(ackedN) || distinct != uint64(ackedN) || ackedN != total {
		t.Fatalf("alerts view has %d rows (%d distinct), %d were acknowledged of %d sent", n, distinct, ackedN, total)
	}
	if ingestKills.Load() < 3 || kills.Load()-ingestKills.Load() < 3 {
		t.Fatalf("only %d ingest and %d projector kills happened; the test proved little", ingestKills.Load(), kills.Load()-ingestKills.Load())
	}
	// Every id in ClickHouse was acknowledged.
	rows, err := conn.Query(qctx, "SELECT id FROM "+db+".alerts")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		if _, ok := acked.Load(id); !ok {
			t.Fatalf("alert %s is in ClickHouse but was never acknowledged", id)
		}
	}
	// Every daily aggregate equals a recount from the raw rows.
	var mismatches uint64
	err = conn.QueryRow(qctx, `SELECT count() FROM (
		SELECT day, customer_id, device_id, severity, kind, alerts FROM `+db+`.alerts_daily
		) ANY FULL OUTER JOIN (
		SELECT toDate(detected_at) AS day, customer_id, device_id, severity, kind, uniqExact(id) AS recount
		FROM `+db+`.alerts GROUP BY day, customer_id, device_id, severity, kind
		) USING (day, customer_id, device_id, severity, kind) WHERE alerts != recount`).Scan(&mismatches)
	if err != nil {
		t.Fatal(err)
	}
	if mismatches != 0 {
		t.Fatalf("%d daily aggregate rows differ from a recount of the raw alerts", mismatches)
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
