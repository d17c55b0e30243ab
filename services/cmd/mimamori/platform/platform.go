// Package platform brings up what every mimamori service stands on: Kafka
// (the embedded kfake broker or a real cluster), ClickHouse (an embedded
// clickhouse-server child or a real server), the topics and the schema
// migrations, and records where everything listens in endpoints.json.
package platform

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/mimamori/mimamori/analytics"
	"github.com/mimamori/mimamori/analytics/chserver"
	"github.com/mimamori/mimamori/analytics/migrate"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/services/cmd/mimamori/config"
)

// Endpoints says where a running platform listens. `mimamori run` writes
// it to <data-dir>/endpoints.json; operator commands read it to find the
// embedded broker.
type Endpoints struct {
	Portal              string `json:"portal,omitempty"`
	Ingest              string `json:"ingest,omitempty"`
	IngestCAFile        string `json:"ingest_ca_file,omitempty"`
	Admin               string `json:"admin,omitempty"`
	Mailbox             string `json:"mailbox,omitempty"`      // embedded mailbox page
	MailboxSMTP         string `json:"mailbox_smtp,omitempty"` // embedded mailbox SMTP server
	Kafka               string `json:"kafka"`
	ClickHouseNative    string `json:"clickhouse_native"`
	ClickHouseHTTP      string `json:"clickhouse_http,omitempty"`
	ClickHouseDatabase  string `json:"clickhouse_database"`
	AnalystUser         string `json:"analyst_user,omitempty"`
	AnalystPasswordFile string `json:"analyst_password_file,omitempty"`
}

// EndpointsFile is where a running platform records its endpoints.
func EndpointsFile(dataDir string) string { return filepath.Join(dataDir, "endpoints.json") }

// ReadEndpoints reads the endpoints of the platform running on dataDir.
func ReadEndpoints(dataDir string) (Endpoints, error) {
	var e Endpoints
	raw, err := os.ReadFile(EndpointsFile(dataDir))
	if err != nil {
		return e, fmt.Errorf("no running platform found (%w): start `mimamori run` with the same --data-dir, or set MIMAMORI_KAFKA_BROKERS", err)
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return e, fmt.Errorf("%s: %w", EndpointsFile(dataDir), err)
	}
	return e, nil
}

// Platform is the infrastructure of one process.
type Platform struct {
	Cfg       config.Config
	Log       *slog.Logger
	Kafka     eventlog.Config
	CH        analytics.Config
	Conn      driver.Conn
	Endpoints Endpoints

	broker *eventlog.Broker
	chs    *chserver.Server
}

// KafkaConfig turns the settings into a Kafka client configuration.
func KafkaConfig(cfg config.Config, brokers []string) (eventlog.Config, error) {
	k := eventlog.Config{
		Brokers:       brokers,
		SASLMechanism: cfg.KafkaSASLMech,
		SASLUser:      cfg.KafkaSASLUser,
		SASLPassword:  cfg.KafkaSASLPass,
		TopicPrefix:   cfg.KafkaTopicPrefix,
		Partitions:    int32(cfg.KafkaPartitions),
		Replication:   int16(cfg.KafkaReplication),
		Linger:        cfg.KafkaLinger,
	}
	if cfg.KafkaTLS {
		t, err := tlsConfig(cfg.KafkaCAFile)
		if err != nil {
			return k, fmt.Errorf("kafka tls: %w", err)
		}
		k.TLS = t
	}
	return k, k.Validate()
}

// KafkaFor returns the Kafka configuration of an operator command: the
// configured cluster, or the embedded broker of the platform running on
// the data folder.
func KafkaFor(cfg config.Config) (eventlog.Config, error) {
	brokers := cfg.KafkaBrokers
	if cfg.EmbeddedKafka() {
		e, err := ReadEndpoints(cfg.DataDir)
		if err != nil {
			return eventlog.Config{}, err
		}
		brokers = []string{e.Kafka}
	}
	return KafkaConfig(cfg, brokers)
}

func tlsConfig(caFile string) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificates", caFile)
		}
		t.RootCAs = pool
	}
	return t, nil
}

// Open starts or connects to Kafka and ClickHouse, creates the topics and
// applies the migrations. Close releases everything it started.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *Platform, err error) {
	p := &Platform{Cfg: cfg, Log: log}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}

	brokers := cfg.KafkaBrokers
	if cfg.EmbeddedKafka() {
		p.broker, err = eventlog.StartBroker(eventlog.BrokerConfig{Dir: filepath.Join(cfg.DataDir, "kafka"),
			Port: cfg.KafkaPort, SyncWrites: cfg.KafkaSyncWrites, Partitions: int32(cfg.KafkaPartitions)})
		if err != nil {
			return nil, err
		}
		brokers = p.broker.Addrs()
		log.Info("embedded kafka broker started", "addr", brokers[0], "sync_writes", cfg.KafkaSyncWrites)
	}
	if p.Kafka, err = KafkaConfig(cfg, brokers); err != nil {
		return nil, err
	}
	p.Kafka.Logger = log
	p.Endpoints.Kafka = strings.Join(brokers, ",")
	if err := p.ensureTopics(ctx); err != nil {
		return nil, err
	}

	p.CH = analytics.Config{Addr: cfg.ClickHouseAddr, User: cfg.ClickHouseUser, Password: cfg.ClickHousePassword}
	if cfg.ClickHouseTLS {
		if p.CH.TLS, err = tlsConfig(cfg.ClickHouseCAFile); err != nil {
			return nil, fmt.Errorf("clickhouse tls: %w", err)
		}
	}
	if cfg.EmbeddedClickHouse() {
		if err := p.startClickHouse(ctx); err != nil {
			return nil, err
		}
	}
	p.Endpoints.ClickHouseNative = p.CH.Addr
	p.Endpoints.ClickHouseDatabase = cfg.ClickHouseDatabase
	if err := p.connectClickHouse(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Attach connects an operator command to the platform: the configured
// clusters, or the embedded broker and ClickHouse of the `mimamori run`
// that owns the data folder. It also applies pending migrations.
func Attach(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *Platform, err error) {
	p := &Platform{Cfg: cfg, Log: log}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if p.Kafka, err = KafkaFor(cfg); err != nil {
		return nil, err
	}
	p.CH = analytics.Config{Addr: cfg.ClickHouseAddr, User: cfg.ClickHouseUser, Password: cfg.ClickHousePassword}
	if cfg.EmbeddedClickHouse() {
		e, err := ReadEndpoints(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		p.CH.Addr = e.ClickHouseNative
		if p.CH.Password, err = embeddedDefaultPassword(cfg); err != nil {
			return nil, err
		}
		p.CH.User = "default"
	} else if cfg.ClickHouseTLS {
		if p.CH.TLS, err = tlsConfig(cfg.ClickHouseCAFile); err != nil {
			return nil, fmt.Errorf("clickhouse tls: %w", err)
		}
	}
	return p, p.connectClickHouse(ctx)
}

func (p *Platform) connectClickHouse(ctx context.Context) (err error) {
	if p.Conn, err = analytics.Open(ctx, p.CH); err != nil {
		return err
	}
	applied, err := migrate.Apply(ctx, p.Conn, p.Cfg.ClickHouseDatabase)
	if err != nil {
		return fmt.Errorf("migrate clickhouse database %s: %w", p.Cfg.ClickHouseDatabase, err)
	}
	if len(applied) > 0 {
		p.Log.Info("clickhouse migrations applied", "database", p.Cfg.ClickHouseDatabase, "migrations", applied)
	}
	return nil
}

func (p *Platform) ensureTopics(ctx context.Context) error {
	prod, err := eventlog.NewProducer(p.Kafka)
	if err != nil {
		return err
	}
	defer prod.Close()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := eventlog.EnsureTopics(tctx, prod.Client(), p.Kafka); err != nil {
		return err
	}
	if p.broker != nil {
		// The embedded broker's topics are ours; older versions created
		// them with the broker's default retention.
		if err := eventlog.ApplyTopicPolicy(tctx, prod.Client(), p.Kafka); err != nil {
			return err
		}
	}
	return eventlog.CheckTopics(tctx, prod.Client(), p.Kafka)
}

func (p *Platform) startClickHouse(ctx context.Context) error {
	dir := filepath.Join(p.Cfg.DataDir, "clickhouse")
	pwFile := filepath.Join(dir, "analyst-password")
	pw := p.Cfg.AnalystPassword
	if pw == "" {
		var err error
		if pw, err = readOrCreateSecret(pwFile); err != nil {
			return fmt.Errorf("analyst password: %w", err)
		}
		p.Endpoints.AnalystPasswordFile = pwFile
	}
	defaultPW, err := embeddedDefaultPassword(p.Cfg)
	if err != nil {
		return err
	}
	s, err := chserver.Start(ctx, chserver.Config{Dir: dir, TCPPort: p.Cfg.ClickHouseTCPPort,
		HTTPPort: p.Cfg.ClickHouseHTTPPort, DefaultPassword: defaultPW, AnalystPassword: pw,
		AnalystDatabase: p.Cfg.ClickHouseDatabase, Logger: p.Log})
	if err != nil {
		return err
	}
	p.chs = s
	p.CH.Addr = s.Addr()
	p.CH.User, p.CH.Password = "default", defaultPW
	p.Endpoints.ClickHouseHTTP = "http://" + s.HTTPAddr()
	p.Endpoints.AnalystUser = "analyst"
	p.Log.Info("embedded clickhouse-server started", "native", s.Addr(), "http", s.HTTPAddr())
	return nil
}

// embeddedDefaultPassword is the password of the embedded ClickHouse's
// default user: MIMAMORI_CLICKHOUSE_PASSWORD when set, else one generated
// into the data folder on the first start (never password-less: any local
// process could otherwise write to the projections).
func embeddedDefaultPassword(cfg config.Config) (string, error) {
	if cfg.ClickHousePassword != "" {
		return cfg.ClickHousePassword, nil
	}
	pw, err := readOrCreateSecret(filepath.Join(cfg.DataDir, "clickhouse", "default-password"))
	if err != nil {
		return "", fmt.Errorf("clickhouse default password: %w", err)
	}
	return pw, nil
}

func readOrCreateSecret(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	buf := make([]byte, 18)
	_, _ = rand.Read(buf)
	s := base64.RawURLEncoding.EncodeToString(buf)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	return s, os.WriteFile(path, []byte(s+"\n"), 0o600)
}

// WriteEndpoints records the endpoints in the data folder.
func (p *Platform) WriteEndpoints() error {
	b, _ := json.MarshalIndent(p.Endpoints, "", "  ")
	tmp := EndpointsFile(p.Cfg.DataDir) + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, EndpointsFile(p.Cfg.DataDir))
}

// Close stops what Open started, the broker last so that its state is
// written out after every client is gone.
func (p *Platform) Close() {
	if p.Conn != nil {
		p.Conn.Close()
	}
	if p.chs != nil {
		if err := p.chs.Close(); err != nil {
			p.Log.Warn("stop clickhouse-server", "err", err)
		}
	}
	if p.broker != nil {
		p.broker.Close()
		// Only the process that owns the embedded parts says where they are.
		_ = os.Remove(EndpointsFile(p.Cfg.DataDir))
	}
}
