package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/mimamori/mimamori/analytics"
	"github.com/mimamori/mimamori/appliance/fleet"
	"github.com/mimamori/mimamori/appliance/uplink"
	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/services/cmd/mimamori/cli"
	"github.com/mimamori/mimamori/services/cmd/mimamori/platform"
	"github.com/mimamori/mimamori/services/notifier"
	"github.com/mimamori/mimamori/services/replay"
)

func mimamori(t *testing.T, ctx context.Context, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := cli.Main(ctx, args, func(k string) string { return env[k] }, &out, &errOut)
	if err != nil {
		return out.String() + errOut.String(), err
	}
	return out.String(), nil
}

func TestConfigMasksSecrets(t *testing.T) {
	env := map[string]string{"MIMAMORI_CLICKHOUSE_PASSWORD": "hunter2-very-secret", "MIMAMORI_KAFKA_SASL_PASSWORD": "kafka-secret",
		"MIMAMORI_KAFKA_BROKERS": "k1:9092,k2:9092"}
	out, err := mimamori(t, context.Background(), env, "config", "--clickhouse-database", "audit")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "hunter2") || strings.Contains(out, "kafka-secret") {
		t.Fatalf("config printed a secret:\n%s", out)
	}
	for _, want := range []string{"********", "k1:9092,k2:9092", "audit"} {
		if !strings.Contains(out, want) {
			t.Errorf("config output lacks %q:\n%s", want, out)
		}
	}
}

func TestCommandLineMistakes(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"serve"}, "serve: name one service"},
		{[]string{"config", "--kafka-partitions", "zero"}, "kafka-partitions (from --kafka-partitions): want a whole number"},
		{[]string{"customer", "register", "--name", "x"}, "--name and --email are required"},
		{[]string{"device", "register", "--customer", "cu_1"}, "--customer, --serial, --mac and --manufactured are required"},
	}
	for _, c := range cases {
		out, err := mimamori(t, context.Background(), nil, c.args...)
		if err == nil || cli.ExitCode(err) != 2 || !strings.Contains(err.Error()+out, c.want) {
			t.Errorf("mimamori %v: got %v (exit %d), want a usage error containing %q", c.args, err, cli.ExitCode(err), c.want)
		}
	}
}

// `mimamori run` on embedded defaults, then the operator commands against
// it: register a customer and an appliance, send alerts with the printed
// credential, replay, revoke, and stop cleanly.
func TestRunThenOperatorCommands(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"MIMAMORI_DATA_DIR": dir, "MIMAMORI_INGEST_ADDR": "127.0.0.1:0", "MIMAMORI_PORTAL_ADDR": "127.0.0.1:0",
		"MIMAMORI_ADMIN_ADDR": "127.0.0.1:0", "MIMAMORI_MAILBOX_ADDR": "127.0.0.1:0", "MIMAMORI_LOG_LEVEL": "warn"}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	runOut := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- cli.Main(ctx, []string{"run"}, func(k string) string { return env[k] }, runOut, io.Discard)
	}()

	var ep platform.Endpoints
	deadline := time.Now().Add(60 * time.Second)
	for {
		var err error
		if ep, err = platform.ReadEndpoints(dir); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("run stopped: %v\n%s", err, runOut)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no endpoints.json after a minute:\n%s", runOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, v := range []string{ep.Portal, ep.Ingest, ep.Admin, ep.Kafka, ep.ClickHouseNative, ep.ClickHouseHTTP} {
		if v == "" || !strings.Contains(runOut.String(), v) {
			t.Errorf("endpoint %q missing from endpoints.json or from what run printed:\n%s", v, runOut)
		}
	}
	// Readiness and metrics of every service are on the admin address, not
	// on the portal's, which faces the internet.
	for url, want := range map[string]int{ep.Admin + "/metrics": 200, ep.Admin + "/healthz": 200, ep.Admin + "/readyz": 200,
		ep.Portal + "/metrics": 404, ep.Portal + "/readyz": 404, ep.Portal + "/healthz": 200} {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", url, resp.StatusCode, want)
		}
		if strings.HasSuffix(url, "/metrics") && want == 200 && !strings.Contains(string(body), "mimamori_ingest_alerts_accepted_total") {
			t.Errorf("the admin /metrics lacks the ingest's metrics")
		}
	}

	// The embedded ClickHouse's default user is no open door: refused
	// without the password the platform generated into the data folder.
	if conn, err := analytics.Open(ctx, analytics.Config{Addr: ep.ClickHouseNative}); err == nil {
		conn.Close()
		t.Error("the embedded ClickHouse let the default user in without a password")
	}
	pw, err := os.ReadFile(filepath.Join(dir, "clickhouse", "default-password"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := analytics.Open(ctx, analytics.Config{Addr: ep.ClickHouseNative, Password: strings.TrimSpace(string(pw))})
	if err != nil {
		t.Fatalf("the default user with its generated password: %v", err)
	}
	conn.Close()

	out, err := mimamori(t, ctx, env, "customer", "register", "--name", "株式会社テスト", "--email", "it@test.example")
	if err != nil {
		t.Fatal(err, out)
	}
	var cust struct {
		CustomerID string `json:"customer_id"`
	}
	if err := json.Unmarshal([]byte(out), &cust); err != nil || !strings.HasPrefix(cust.CustomerID, "cu_") {
		t.Fatalf("customer register printed %q (%v)", out, err)
	}
	out, err = mimamori(t, ctx, env, "device", "register", "--customer", cust.CustomerID, "--serial", "UTM-1",
		"--mac", "00:11:22:33:44:55", "--manufactured", "2026-04-01")
	if err != nil {
		t.Fatal(err, out)
	}
	var cred cli.DeviceCredentials
	if err := json.Unmarshal([]byte(out), &cred); err != nil || cred.Credential == "" || cred.CustomerID != cust.CustomerID || cred.Ingest != ep.Ingest {
		t.Fatalf("device register printed %q (%v)", out, err)
	}
	// Registering the appliance again (the operator retries after a
	// timeout), another serial with its MAC, or a customer nobody
	// registered: refused, saying why, and nothing written (the status
	// page below still counts one device).
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--customer", cust.CustomerID, "--serial", "UTM-1", "--mac", "00:11:22:33:44:66"}, "serial UTM-1 is already registered as device " + cred.DeviceID},
		{[]string{"--customer", cust.CustomerID, "--serial", "UTM-2", "--mac", "00:11:22:33:44:55"}, "MAC 00:11:22:33:44:55 is already registered as device " + cred.DeviceID},
		{[]string{"--customer", "cu_nobody", "--serial", "UTM-3", "--mac", "00:11:22:33:44:77"}, "customer cu_nobody is not registered"},
	} {
		out, err := mimamori(t, ctx, env, append(append([]string{"device", "register"}, c.args...), "--manufactured", "2026-04-01")...)
		if err == nil || !strings.Contains(err.Error()+out, c.want) || !strings.Contains(err.Error()+out, "nothing was registered") {
			t.Errorf("device register %v: %v\n%s\nwant an error saying %q", c.args, err, out, c.want)
		}
	}

	up, err := uplink.New(uplink.Config{BaseURL: cred.Ingest, Credential: cred.Credential, CAFile: cred.CAFile, Gzip: true})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	gen := fleet.NewGenerator(9)
	var alerts []events.Alert
	for range 50 {
		alerts = append(alerts, gen.Alert(time.Now().UTC(), ""))
	}
	if _, err := up.SendAlerts(ctx, alerts); err != nil {
		t.Fatal(err)
	}
	if _, err := up.SendHeartbeat(ctx, events.Heartbeat{ID: ksuid.New().String(), SentAt: time.Now(), Clients: 3}); err != nil {
		t.Fatal(err)
	}

	// The status page counts what arrived.
	deadline = time.Now().Add(30 * time.Second)
	for {
		var st struct{ Alerts, Devices uint64 }
		if resp, err := http.Get(ep.Portal + "/api/v1/status"); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		if st.Alerts == 50 && st.Devices == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status page shows %+v, want 50 alerts of 1 device", st)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The notifier writes its records while it works through the alerts
	// (those sent before the first heartbeat wait for the activation):
	// replay compares once it is done, as an operator would.
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	err = replay.WaitGroup(wctx, eventlog.Config{Brokers: []string{ep.Kafka}, Partitions: 3, Replication: 1}, notifier.Group)
	wcancel()
	if err != nil {
		t.Fatal(err)
	}
	// A replay "into" the live database is refused and drops nothing:
	// the next replay still finds every live table.
	out, err = mimamori(t, ctx, env, "replay", "--into", "mimamori")
	if err == nil || !strings.Contains(err.Error(), "replay --into mimamori: that is the live database") {
		t.Fatalf("replay --into the live database: %v\n%s", err, out)
	}
	out, err = mimamori(t, ctx, env, "replay", "--keep", "--into", "mimamori_kept")
	if err != nil || !strings.Contains(out, "every table matches") {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	// A database that exists (here the kept replay) is no fresh one.
	out, err = mimamori(t, ctx, env, "replay", "--into", "mimamori_kept")
	if err == nil || !strings.Contains(err.Error(), "replay --into mimamori_kept: the database exists") {
		t.Fatalf("replay --into an existing database: %v\n%s", err, out)
	}

	out, err = mimamori(t, ctx, env, "device", "revoke", "--device", cred.DeviceID, "--credential", cred.Credential)
	if err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("device revoke: %v\n%s", err, out)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		_, err := up.SendAlerts(ctx, alerts[:1])
		var perm *uplink.PermanentError
		if errors.As(err, &perm) && perm.StatusCode == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a revoked credential still gets %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A new credential for the device (its old one leaked): it works, the
	// revoked one stays refused; an unknown device gets none.
	out, err = mimamori(t, ctx, env, "device", "credential", "--device", cred.DeviceID)
	var cred2 cli.DeviceCredentials
	if err != nil || json.Unmarshal([]byte(out), &cred2) != nil || cred2.DeviceID != cred.DeviceID ||
		cred2.CustomerID != cust.CustomerID || cred2.Credential == "" || cred2.Credential == cred.Credential {
		t.Fatalf("device credential: %v\n%s", err, out)
	}
	up2, err := uplink.New(uplink.Config{BaseURL: cred2.Ingest, Credential: cred2.Credential, CAFile: cred2.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	defer up2.Close()
	if _, err := up2.SendAlerts(ctx, alerts[:1]); err != nil {
		t.Errorf("the new credential: %v", err)
	}
	var perm *uplink.PermanentError
	if _, err := up.SendAlerts(ctx, alerts[:1]); !errors.As(err, &perm) || perm.StatusCode != http.StatusUnauthorized {
		t.Errorf("the revoked credential after a new one was issued: %v", err)
	}
	if out, err := mimamori(t, ctx, env, "device", "credential", "--device", "dv_nobody"); err == nil ||
		!strings.Contains(err.Error(), "device dv_nobody is not registered") {
		t.Errorf("device credential for an unknown device: %v\n%s", err, out)
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run did not stop cleanly: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop within 30 s of SIGINT")
	}
	if _, err := os.Stat(filepath.Join(dir, "endpoints.json")); !os.IsNotExist(err) {
		t.Errorf("endpoints.json outlived the platform: %v", err)
	}
}

// lockedBuffer is written by the running platform and read by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
