// Package chserver runs an embedded clickhouse-server as a child process: the
// embedded default when no ClickHouse address is configured, and the
// throwaway server of integration tests. It generates config.xml and
// users.xml into a data folder that survives restarts.
package chserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"
)

// InstallHint is the command that installs a missing clickhouse-server.
const InstallHint = "apt-get update && apt-get install -y clickhouse-server clickhouse-client"

// ErrNotInstalled is returned (wrapped) when the clickhouse-server binary
// cannot be found; its message names the command that fixes it.
var ErrNotInstalled = errors.New("clickhouse-server is not installed: install it with " + InstallHint)

// DefaultAnalystDatabase is the only database the analyst user may read
// unless Config.AnalystDatabase says otherwise.
const DefaultAnalystDatabase = "mimamori"

// Config says where and how to run the server.
type Config struct {
	// Dir is the data folder. It holds the generated configuration, the
	// data and the logs, and is reused across restarts so data persists.
	Dir string
	// Binary is the clickhouse-server executable. Empty means
	// clickhouse-server on PATH, then /usr/sbin/clickhouse-server.
	Binary string
	// TCPPort (native protocol) and HTTPPort; 0 picks a free port.
	TCPPort  int
	HTTPPort int
	// DefaultPassword is the password of the default user (the platform's
	// own, with every right). The platform always sets one (generated into
	// its data folder); empty leaves the user password-less, for
	// throwaway test servers only.
	DefaultPassword string
	// AnalystPassword enables the read-only analyst user. Empty leaves the
	// analyst user out of users.xml.
	AnalystPassword string
	// AnalystDatabase is the only database the analyst may read
	// (DefaultAnalystDatabase when empty).
	AnalystDatabase string
	// StartTimeout bounds the wait for /ping (30 s when zero).
	StartTimeout time.Duration
	// Logger receives lifecycle messages (slog.Default when nil).
	Logger *slog.Logger
}

// Server is a running clickhouse-server child process.
type Server struct {
	cmd      *exec.Cmd
	tcpPort  int
	httpPort int
	logger   *slog.Logger
	exited   chan struct{} // closed when the process has been reaped
	waitErr  error         // valid after exited is closed

	closeOnce sync.Once
	closeErr  error
}

// Start writes the configuration into cfg.Dir, starts clickhouse-server and
// waits until it answers /ping. When ports are picked automatically and
// another process grabs one first, it retries with fresh ports.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("chserver: Config.Dir is required")
	}
	bin, err := findBinary(cfg.Binary)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AnalystDatabase == "" {
		cfg.AnalystDatabase = DefaultAnalystDatabase
	}
	if !validDatabase.MatchString(cfg.AnalystDatabase) {
		return nil, fmt.Errorf("chserver: analyst database %q: want letters, digits and _ only", cfg.AnalystDatabase)
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("chserver: data folder: %w", err)
	}
	for _, sub := range []string{"data", "tmp", "user_files", "log", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o750); err != nil {
			return nil, fmt.Errorf("chserver: data folder: %w", err)
		}
	}
	attempts := 1
	if cfg.TCPPort == 0 || cfg.HTTPPort == 0 {
		attempts = 3
	}
	for i := 1; ; i++ {
		s, err := start(ctx, bin, dir, cfg)
		if err == nil || i == attempts || !errors.Is(err, errPortTaken) || ctx.Err() != nil {
			return s, err
		}
		cfg.Logger.Warn("clickhouse-server port taken, retrying with fresh ports", "err", err)
	}
}

var errPortTaken = errors.New("port already in use")

var validDatabase = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

func start(ctx context.Context, bin, dir string, cfg Config) (*Server, error) {
	tcpPort, httpPort, interPort := cfg.TCPPort, cfg.HTTPPort, 0
	taken := map[int]bool{tcpPort: true, httpPort: true}
	for _, p := range []*int{&tcpPort, &httpPort, &interPort} {
		for *p == 0 {
			port, err := freePort()
			if err != nil {
				return nil, fmt.Errorf("chserver: pick a free port: %w", err)
			}
			if !taken[port] {
				*p, taken[port] = port, true
			}
		}
	}
	if err := writeConfig(dir, cfg, tcpPort, httpPort, interPort); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "log", "stderr.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("chserver: open log: %w", err)
	}
	defer logFile.Close() // the child holds its own descriptor
	logStart, _ := logFile.Seek(0, io.SeekEnd)

	cmd := exec.Command(bin, "--config-file="+filepath.Join(dir, "config.xml"))
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("chserver: start %s: %w", bin, err)
	}
	s := &Server{cmd: cmd, tcpPort: tcpPort, httpPort: httpPort, logger: cfg.Logger, exited: make(chan struct{})}
	go func() { // ends when the child is reaped, which Close guarantees
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()

	if err := s.waitReady(ctx, cfg.StartTimeout); err != nil {
		_ = s.Close()
		tail := logTail(logPath, logStart)
		if strings.Contains(tail, "Address already in use") {
			err = fmt.Errorf("%w: %w", errPortTaken, err)
		}
		return nil, fmt.Errorf("chserver: %w; log %s:\n%s", err, logPath, tail)
	}
	cfg.Logger.Info("clickhouse-server started", "pid", cmd.Process.Pid, "tcp", s.Addr(), "http", s.HTTPAddr(), "dir", dir)
	return s, nil
}

func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := "http://" + s.HTTPAddr() + "/ping"
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.HasPrefix(body, []byte("Ok.")) {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("clickhouse-server exited during start: %v", s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("clickhouse-server did not answer %s within %s: %w", url, timeout, ctx.Err())
		case <-tick.C:
		}
	}
}

// Addr is the native-protocol address, host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.tcpPort)) }

// HTTPAddr is the HTTP interface address, host:port.
func (s *Server) HTTPAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.httpPort)) }

// Close stops the server: SIGTERM to its process group, up to 20 s for a
// clean shutdown, then SIGKILL. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		pid := s.cmd.Process.Pid
		select {
		case <-s.exited:
			return
		default:
		}
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(20 * time.Second):
			s.logger.Warn("clickhouse-server did not stop in time, killing it", "pid", pid)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-s.exited
			s.closeErr = fmt.Errorf("chserver: clickhouse-server (pid %d) killed after SIGTERM timeout", pid)
			return
		}
		s.logger.Info("clickhouse-server stopped", "pid", pid)
	})
	return s.closeErr
}

func findBinary(bin string) (string, error) {
	if bin == "" {
		if p, err := exec.LookPath("clickhouse-server"); err == nil {
			return p, nil
		}
		bin = "/usr/sbin/clickhouse-server"
	}
	info, err := os.Stat(bin)
	if err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%w (looked for %s)", ErrNotInstalled, bin)
	}
	return bin, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func logTail(path string, from int64) string {
	b, err := os.ReadFile(path)
	if err != nil || from > int64(len(b)) {
		return ""
	}
	b = b[from:]
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

type configData struct {
	Dir                            string
	TCPPort, HTTPPort, InterPort   int
	AnalystSHA256, AnalystDatabase string
	DefaultSHA256                  string
}

func writeConfig(dir string, cfg Config, tcpPort, httpPort, interPort int) error {
	d := configData{Dir: dir, TCPPort: tcpPort, HTTPPort: httpPort, InterPort: interPort, AnalystDatabase: cfg.AnalystDatabase}
	if cfg.AnalystPassword != "" {
		sum := sha256.Sum256([]byte(cfg.AnalystPassword))
		d.AnalystSHA256 = hex.EncodeToString(sum[:])
	}
	if cfg.DefaultPassword != "" {
		sum := sha256.Sum256([]byte(cfg.DefaultPassword))
		d.DefaultSHA256 = hex.EncodeToString(sum[:])
	}
	for name, tmpl := range map[string]*template.Template{"config.xml": configXML, "users.xml": usersXML} {
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, d); err != nil {
			return fmt.Errorf("chserver: render %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o640); err != nil {
			return fmt.Errorf("chserver: write %s: %w", name, err)
		}
	}
	return nil
}

// configXML is a minimal server configuration accepted by 18.16 and current
// releases: 127.0.0.1 only, UTC, every path inside the data folder.
var configXML = template.Must(template.New("config.xml").Parse(`<?xml version="1.0"?>
<!-- Generated by mimamori chserver on every start; edits are overwritten. -->
<yandex>
    <logger>
        <level>warning</level>
        <log>{{html .Dir}}/log/clickhouse-server.log</log>
        <errorlog>{{html .Dir}}/log/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>3</count>
    </logger>
    <http_port>{{.HTTPPort}}</http_port>
    <tcp_port>{{.TCPPort}}</tcp_port>
    <interserver_http_port>{{.InterPort}}</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <listen_host>127.0.0.1</listen_host>
    <max_connections>1024</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>{{html .Dir}}/data/</path>
    <tmp_path>{{html .Dir}}/tmp/</tmp_path>
    <user_files_path>{{html .Dir}}/user_files/</user_files_path>
    <format_schema_path>{{html .Dir}}/format_schemas/</format_schema_path>
    <users_config>{{html .Dir}}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
</yandex>
`))

// usersXML: default has the platform's generated password (password-less
// only on throwaway test servers) and is reachable from localhost only; the
// analyst has the readonly profile and, through allow_databases, sees only
// the analyst database (system stays readable, as ClickHouse always allows).
var usersXML = template.Must(template.New("users.xml").Parse(`<?xml version="1.0"?>
<!-- Generated by mimamori chserver on every start; edits are overwritten. -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>random</load_balancing>
        </default>
        <readonly>
            <readonly>1</readonly>
        </readonly>
    </profiles>
    <users>
        <default>{{if .DefaultSHA256}}
            <password_sha256_hex>{{.DefaultSHA256}}</password_sha256_hex>{{else}}
            <password></password>{{end}}
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>{{if .AnalystSHA256}}
        <analyst>
            <password_sha256_hex>{{.AnalystSHA256}}</password_sha256_hex>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>readonly</profile>
            <quota>default</quota>
            <allow_databases>
                <database>{{.AnalystDatabase}}</database>
            </allow_databases>
        </analyst>{{end}}
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
`))
