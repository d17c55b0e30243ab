// Package config defines every setting of the mimamori binary once (its
// flag, MIMAMORI_* variable, default, group and whether it is a secret) and
// loads them into a typed Config: a flag wins over its variable, the
// variable over the default; `mimamori config` prints the effective values
// with secrets masked.
package config

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is the effective configuration of one process.
type Config struct {
	DataDir string

	KafkaBrokers     []string // empty: embedded broker
	KafkaPort        int      // embedded broker port, 0 picks a free one
	KafkaSyncWrites  bool
	KafkaTopicPrefix string
	KafkaPartitions  int
	KafkaReplication int
	KafkaLinger      time.Duration
	KafkaTLS         bool
	KafkaCAFile      string
	KafkaSASLMech    string
	KafkaSASLUser    string
	KafkaSASLPass    string

	ClickHouseAddr     string // empty: embedded clickhouse-server
	ClickHouseUser     string
	ClickHousePassword string
	ClickHouseDatabase string
	ClickHouseTLS      bool
	ClickHouseCAFile   string
	ClickHouseTCPPort  int
	ClickHouseHTTPPort int
	AnalystPassword    string

	IngestAddr     string
	IngestCertFile string
	IngestKeyFile  string
	IngestHosts    []string
	PortalAddr     string
	AdminAddr      string
	// PortalTrustedProxies are the peers whose X-Forwarded-For the portal
	// believes; PublicMetrics also serves /readyz and /metrics on the
	// ingest and portal listeners (otherwise on AdminAddr only).
	PortalTrustedProxies []netip.Prefix
	PublicMetrics        bool

	// IngestDeviceRate and IngestDeviceBurst bound the alerts one device
	// may send (a second on average, at once); rate 0: no limit.
	IngestDeviceRate  int
	IngestDeviceBurst int

	// InstanceID, when set, makes this process a static member of the
	// projector's, watchdog's and notifier's consumer groups (KIP-345).
	InstanceID string

	LogLevel  string
	LogFormat string

	// Notifications and liveness (issue 5).
	SMTPHost           string // empty: the embedded mailbox
	SMTPPort           int    // 0: 587 for starttls, 465 for tls, 25 for none
	SMTPSecurity       string
	SMTPUser           string
	SMTPPassword       string
	SMTPFrom           string
	MailboxAddr        string // HTTP page of the embedded mailbox
	MailboxSMTPAddr    string // SMTP address of the embedded mailbox
	PortalURL          string // base of links in mail; empty: the portal's address
	NotifyWebhookKey   string
	NotifyRepeatWindow time.Duration
	NotifyHourlyCap    int
	WatchdogThreshold  time.Duration
	WatchdogDebounce   time.Duration
	WatchdogSilence    time.Duration

	// Retries of one notification (issue 10).
	NotifyWebhookTimeout time.Duration
	NotifyWebhookGiveUp  time.Duration
	NotifyMailGiveUp     time.Duration

	// SMS codes of the portal's 2-step verification (issue 4).
	SMSGatewayURL   string // empty: the embedded SMS sink
	SMSGatewayToken string
}

type setting struct {
	group           Group
	name, env, help string
	secret          bool
	def             string
	set             func(c *Config, v string) error
	get             func(c *Config) string
}

func str(p func(*Config) *string) (func(*Config, string) error, func(*Config) string) {
	return func(c *Config, v string) error { *p(c) = v; return nil }, func(c *Config) string { return *p(c) }
}

func list(p func(*Config) *[]string) (func(*Config, string) error, func(*Config) string) {
	return func(c *Config, v string) error {
			*p(c) = nil
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					*p(c) = append(*p(c), s)
				}
			}
			return nil
		}, func(c *Config) string {
			return strings.Join(*p(c), ",")
		}
}

func num(p func(*Config) *int) (func(*Config, string) error, func(*Config) string) {
	return func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("want a whole number, got %q", v)
			}
			*p(c) = n
			return nil
		}, func(c *Config) string {
			return strconv.Itoa(*p(c))
		}
}

func boolean(p func(*Config) *bool) (func(*Config, string) error, func(*Config) string) {
	return func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("want true or false, got %q", v)
			}
			*p(c) = b
			return nil
		}, func(c *Config) string {
			return strconv.FormatBool(*p(c))
		}
}

// prefixes reads a comma-separated list of addresses (one host each) and
// CIDR prefixes. Every address at once (0.0.0.0/0, ::/0) is refused: any
// client could then choose the address it is known by.
func prefixes(p func(*Config) *[]netip.Prefix) (func(*Config, string) error, func(*Config) string) {
	return func(c *Config, v string) error {
			*p(c) = nil
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s == "" {
					continue
				}
				pr, err := netip.ParsePrefix(s)
				if err != nil {
					a, aerr := netip.ParseAddr(s)
					if aerr != nil {
						return fmt.Errorf("want IP addresses or CIDR prefixes like 10.0.0.7 or 10.0.0.0/24, got %q", s)
					}
					pr = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
				}
				if pr = pr.Masked(); pr.Bits() == 0 {
					return fmt.Errorf("%q trusts every address: any client could then choose its own; name the proxies", s)
				}
				*p(c) = append(*p(c), pr)
			}
			return nil
		}, func(c *Config) string {
			out := make([]string, 0, len(*p(c)))
			for _, pr := range *p(c) {
				out = append(out, pr.String())
			}
			return strings.Join(out, ",")
		}
}

func duration(p func(*Config) *time.Duration) (func(*Config, string) error, func(*Config) string) {
	return func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("want a duration like 10ms, got %q", v)
			}
			*p(c) = d
			return nil
		}, func(c *Config) string {
			return p(c).String()
		}
}

func def(g Group, name, env, d, help string, secret bool, set func(*Config, string) error, get func(*Config) string) setting {
	return setting{group: g, name: name, env: env, def: d, help: help, secret: secret, set: set, get: get}
}

func settings() []setting {
	s := func(g Group, name, env, d, help string, f func(*Config) *string) setting {
		set, get := str(f)
		return def(g, name, env, d, help, false, set, get)
	}
	secret := func(g Group, name, env, help string, f func(*Config) *string) setting {
		set, get := str(f)
		return def(g, name, env, "", help, true, set, get)
	}
	n := func(g Group, name, env, d, help string, f func(*Config) *int) setting {
		set, get := num(f)
		return def(g, name, env, d, help, false, set, get)
	}
	b := func(g Group, name, env, d, help string, f func(*Config) *bool) setting {
		set, get := boolean(f)
		return def(g, name, env, d, help, false, set, get)
	}
	l := func(g Group, name, env, d, help string, f func(*Config) *[]string) setting {
		set, get := list(f)
		return def(g, name, env, d, help, false, set, get)
	}
	lingerSet, lingerGet := duration(func(c *Config) *time.Duration { return &c.KafkaLinger })
	repeatSet, repeatGet := duration(func(c *Config) *time.Duration { return &c.NotifyRepeatWindow })
	thrSet, thrGet := duration(func(c *Config) *time.Duration { return &c.WatchdogThreshold })
	debSet, debGet := duration(func(c *Config) *time.Duration { return &c.WatchdogDebounce })
	silSet, silGet := duration(func(c *Config) *time.Duration { return &c.WatchdogSilence })
	hookSet, hookGet := duration(func(c *Config) *time.Duration { return &c.NotifyWebhookTimeout })
	hookUpSet, hookUpGet := duration(func(c *Config) *time.Duration { return &c.NotifyWebhookGiveUp })
	mailUpSet, mailUpGet := duration(func(c *Config) *time.Duration { return &c.NotifyMailGiveUp })
	proxySet, proxyGet := prefixes(func(c *Config) *[]netip.Prefix { return &c.PortalTrustedProxies })
	return []setting{
		s(Data, "data-dir", "MIMAMORI_DATA_DIR", "data", "folder for the embedded broker, ClickHouse, certificates and endpoints.json", func(c *Config) *string { return &c.DataDir }),

		l(Kafka, "kafka-brokers", "MIMAMORI_KAFKA_BROKERS", "", "Kafka bootstrap brokers, comma-separated; empty runs the embedded broker", func(c *Config) *[]string { return &c.KafkaBrokers }),
		n(Kafka, "kafka-port", "MIMAMORI_KAFKA_PORT", "0", "embedded broker port on 127.0.0.1 (0 picks a free one)", func(c *Config) *int { return &c.KafkaPort }),
		b(Kafka, "kafka-sync-writes", "MIMAMORI_KAFKA_SYNC_WRITES", "true", "embedded broker fsyncs every batch before acknowledging it", func(c *Config) *bool { return &c.KafkaSyncWrites }),
		s(Kafka, "kafka-topic-prefix", "MIMAMORI_KAFKA_TOPIC_PREFIX", "", "prefix of every topic name", func(c *Config) *string { return &c.KafkaTopicPrefix }),
		n(Kafka, "kafka-partitions", "MIMAMORI_KAFKA_PARTITIONS", "6", "partitions of each topic created", func(c *Config) *int { return &c.KafkaPartitions }),
		n(Kafka, "kafka-replication", "MIMAMORI_KAFKA_REPLICATION", "1", "replication factor of each topic created (3 on a real cluster)", func(c *Config) *int { return &c.KafkaReplication }),
		def(Kafka, "kafka-linger", "MIMAMORI_KAFKA_LINGER", "0s", "producer linger; 0 sends at once (lowest latency)", false, lingerSet, lingerGet),
		b(Kafka, "kafka-tls", "MIMAMORI_KAFKA_TLS", "false", "connect to Kafka over TLS", func(c *Config) *bool { return &c.KafkaTLS }),
		s(Kafka, "kafka-ca-file", "MIMAMORI_KAFKA_CA_FILE", "", "PEM CA bundle for Kafka TLS (system roots if empty)", func(c *Config) *string { return &c.KafkaCAFile }),
		s(Kafka, "kafka-sasl-mechanism", "MIMAMORI_KAFKA_SASL_MECHANISM", "", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", func(c *Config) *string { return &c.KafkaSASLMech }),
		s(Kafka, "kafka-sasl-user", "MIMAMORI_KAFKA_SASL_USER", "", "SASL user", func(c *Config) *string { return &c.KafkaSASLUser }),
		secret(Kafka, "kafka-sasl-password", "MIMAMORI_KAFKA_SASL_PASSWORD", "SASL password", func(c *Config) *string { return &c.KafkaSASLPass }),

		s(ClickHouse, "clickhouse-addr", "MIMAMORI_CLICKHOUSE_ADDR", "", "ClickHouse native address host:9000; empty runs an embedded clickhouse-server", func(c *Config) *string { return &c.ClickHouseAddr }),
		s(ClickHouse, "clickhouse-user", "MIMAMORI_CLICKHOUSE_USER", "default", "ClickHouse user", func(c *Config) *string { return &c.ClickHouseUser }),
		secret(ClickHouse, "clickhouse-password", "MIMAMORI_CLICKHOUSE_PASSWORD", "ClickHouse password", func(c *Config) *string { return &c.ClickHousePassword }),
		s(ClickHouse, "clickhouse-database", "MIMAMORI_CLICKHOUSE_DATABASE", "mimamori", "database of the projections and analyst views", func(c *Config) *string { return &c.ClickHouseDatabase }),
		b(ClickHouse, "clickhouse-tls", "MIMAMORI_CLICKHOUSE_TLS", "false", "connect to ClickHouse over TLS", func(c *Config) *bool { return &c.ClickHouseTLS }),
		s(ClickHouse, "clickhouse-ca-file", "MIMAMORI_CLICKHOUSE_CA_FILE", "", "PEM CA bundle for ClickHouse TLS", func(c *Config) *string { return &c.ClickHouseCAFile }),
		n(ClickHouse, "clickhouse-tcp-port", "MIMAMORI_CLICKHOUSE_TCP_PORT", "0", "embedded ClickHouse native port (0 picks a free one)", func(c *Config) *int { return &c.ClickHouseTCPPort }),
		n(ClickHouse, "clickhouse-http-port", "MIMAMORI_CLICKHOUSE_HTTP_PORT", "0", "embedded ClickHouse HTTP port (0 picks a free one)", func(c *Config) *int { return &c.ClickHouseHTTPPort }),
		secret(ClickHouse, "analyst-password", "MIMAMORI_ANALYST_PASSWORD", "password of the read-only analyst user of the embedded ClickHouse (generated into the data folder if empty)", func(c *Config) *string { return &c.AnalystPassword }),

		s(Ingest, "ingest-addr", "MIMAMORI_INGEST_ADDR", "127.0.0.1:8443", "HTTPS address of the appliance ingest gateway", func(c *Config) *string { return &c.IngestAddr }),
		s(Ingest, "ingest-cert-file", "MIMAMORI_INGEST_CERT_FILE", "", "PEM certificate of the ingest gateway; empty uses the local CA in the data folder", func(c *Config) *string { return &c.IngestCertFile }),
		s(Ingest, "ingest-key-file", "MIMAMORI_INGEST_KEY_FILE", "", "PEM private key of the ingest gateway", func(c *Config) *string { return &c.IngestKeyFile }),
		l(Ingest, "ingest-hosts", "MIMAMORI_INGEST_HOSTS", "localhost,127.0.0.1,::1", "names and addresses the local CA certifies for the ingest gateway", func(c *Config) *[]string { return &c.IngestHosts }),
		n(Ingest, "ingest-device-rate", "MIMAMORI_INGEST_DEVICE_RATE", "200", "alerts a second one appliance may send on average before the ingest answers 429 (0: no limit)", func(c *Config) *int { return &c.IngestDeviceRate }),
		n(Ingest, "ingest-device-burst", "MIMAMORI_INGEST_DEVICE_BURST", "50000", "alerts one appliance may send at once beyond its rate", func(c *Config) *int { return &c.IngestDeviceBurst }),
		s(Portal, "portal-addr", "MIMAMORI_PORTAL_ADDR", "127.0.0.1:8080", "HTTP address of the portal", func(c *Config) *string { return &c.PortalAddr }),
		s(Admin, "admin-addr", "MIMAMORI_ADMIN_ADDR", "127.0.0.1:9464", "HTTP address of /healthz, /readyz and /metrics of every service of the process", func(c *Config) *string { return &c.AdminAddr }),
		b(Admin, "public-metrics", "MIMAMORI_PUBLIC_METRICS", "false", "also serve /readyz and /metrics on the ingest and portal listeners (they face the internet; /healthz is always there)", func(c *Config) *bool { return &c.PublicMetrics }),
		def(Portal, "portal-trusted-proxies", "MIMAMORI_PORTAL_TRUSTED_PROXIES", "", "addresses and CIDR prefixes of the proxies in front of the portal, comma-separated: only their X-Forwarded-For names the client (throttling, audit) and their X-Forwarded-Proto https turns on HSTS; empty: the peer is the client", false, proxySet, proxyGet),

		s(Mail, "smtp-host", "MIMAMORI_SMTP_HOST", "", "SMTP relay for customer mail; empty runs the embedded mailbox", func(c *Config) *string { return &c.SMTPHost }),
		n(Mail, "smtp-port", "MIMAMORI_SMTP_PORT", "0", "SMTP port (0: 587 for starttls, 465 for tls, 25 for none)", func(c *Config) *int { return &c.SMTPPort }),
		s(Mail, "smtp-security", "MIMAMORI_SMTP_SECURITY", "starttls", "starttls (required), tls (implicit), opportunistic or none", func(c *Config) *string { return &c.SMTPSecurity }),
		s(Mail, "smtp-user", "MIMAMORI_SMTP_USER", "", "SMTP user (empty: no authentication)", func(c *Config) *string { return &c.SMTPUser }),
		secret(Mail, "smtp-password", "MIMAMORI_SMTP_PASSWORD", "SMTP password", func(c *Config) *string { return &c.SMTPPassword }),
		s(Mail, "smtp-from", "MIMAMORI_SMTP_FROM", "mimamori <noreply@mimamori.local>", "sender of customer mail", func(c *Config) *string { return &c.SMTPFrom }),
		s(Mail, "mailbox-addr", "MIMAMORI_MAILBOX_ADDR", "127.0.0.1:8025", "HTTP address of the embedded mailbox page (when no SMTP host is set)", func(c *Config) *string { return &c.MailboxAddr }),
		s(Mail, "mailbox-smtp-addr", "MIMAMORI_MAILBOX_SMTP_ADDR", "127.0.0.1:0", "SMTP address of the embedded mailbox", func(c *Config) *string { return &c.MailboxSMTPAddr }),
		s(Mail, "portal-url", "MIMAMORI_PORTAL_URL", "", "base URL of the portal in mail links (empty: the portal's own address)", func(c *Config) *string { return &c.PortalURL }),
		secret(Notify, "notify-webhook-key", "MIMAMORI_NOTIFY_WEBHOOK_KEY", "key the customers' webhook secrets are derived from (generated into the data folder if empty)", func(c *Config) *string { return &c.NotifyWebhookKey }),
		def(Notify, "notify-repeat-window", "MIMAMORI_NOTIFY_REPEAT_WINDOW", "10m", "repeats of one detection on one device within it go into a digest", false, repeatSet, repeatGet),
		n(Notify, "notify-hourly-cap", "MIMAMORI_NOTIFY_HOURLY_CAP", "20", "alert mails per recipient and hour before the rest go into a digest (-1: no cap)", func(c *Config) *int { return &c.NotifyHourlyCap }),
		def(Notify, "notify-webhook-timeout", "MIMAMORI_NOTIFY_WEBHOOK_TIMEOUT", "10s", "one webhook POST is cut off after this long (and retried)", false, hookSet, hookGet),
		def(Notify, "notify-webhook-give-up", "MIMAMORI_NOTIFY_WEBHOOK_GIVE_UP", "1h", "a webhook notification not delivered this long after its first attempt is recorded as failed", false, hookUpSet, hookUpGet),
		def(Notify, "notify-mail-give-up", "MIMAMORI_NOTIFY_MAIL_GIVE_UP", "4h", "a mail not accepted by the relay this long after its first attempt is recorded as failed", false, mailUpSet, mailUpGet),
		s(SMS, "sms-gateway-url", "MIMAMORI_SMS_GATEWAY_URL", "", "URL of the SMS gateway for 2-step verification codes (JSON POST {to, body}); https, or http to a loopback host; empty: the embedded SMS sink, nothing is sent", func(c *Config) *string { return &c.SMSGatewayURL }),
		secret(SMS, "sms-gateway-token", "MIMAMORI_SMS_GATEWAY_TOKEN", "bearer token sent to the SMS gateway (needs sms-gateway-url)", func(c *Config) *string { return &c.SMSGatewayToken }),
		def(Watchdog, "watchdog-threshold", "MIMAMORI_WATCHDOG_THRESHOLD", "10m", "no heartbeat for this long: the appliance is judged stopped", false, thrSet, thrGet),
		def(Watchdog, "watchdog-debounce", "MIMAMORI_WATCHDOG_DEBOUNCE", "30m", "at most one offline/online event per appliance per window", false, debSet, debGet),
		def(Watchdog, "watchdog-silence", "MIMAMORI_WATCHDOG_SILENCE", "1h", "traffic counters still for this long while heartbeats arrive: the appliance went silent", false, silSet, silGet),

		s(Log, "log-level", "MIMAMORI_LOG_LEVEL", "info", "debug, info, warn or error", func(c *Config) *string { return &c.LogLevel }),
		s(Log, "log-format", "MIMAMORI_LOG_FORMAT", "text", "text or json", func(c *Config) *string { return &c.LogFormat }),
		s(Admin, "instance-id", "MIMAMORI_INSTANCE_ID", "", "stable name of this replica (e.g. the pod name), unique among the replicas: a restarted projector, watchdog or notifier takes its partitions back at once instead of after the session timeout", func(c *Config) *string { return &c.InstanceID }),
	}
}

// Group is a set of settings that one part of the platform reads: a
// command is given the groups it reads and no others, so that its --help
// lists only what matters to it.
type Group string

// The groups; a setting belongs to one.
const (
	Data       Group = "Data"
	Kafka      Group = "Kafka"
	ClickHouse Group = "ClickHouse"
	Ingest     Group = "Ingest"
	Portal     Group = "Portal"
	Admin      Group = "Admin"
	Mail       Group = "Mail"
	Notify     Group = "Notify"
	SMS        Group = "SMS"
	Watchdog   Group = "Watchdog"
	Log        Group = "Log"
)

// AllGroups is every group: what `run`, `demo`, `serve` and `config` read.
func AllGroups() []Group {
	return []Group{Data, Kafka, ClickHouse, Ingest, Portal, Admin, Mail, Notify, SMS, Watchdog, Log}
}

// Flag describes one setting to a command line parser.
type Flag struct {
	Group           Group
	Name, Env, Help string
	Default         string
}

// Flags lists the settings of the groups given, in the table's order.
func Flags(groups ...Group) []Flag {
	var out []Flag
	for _, s := range settings() {
		if slices.Contains(groups, s.group) {
			out = append(out, Flag{Group: s.group, Name: s.name, Env: s.env, Help: s.help, Default: s.def})
		}
	}
	return out
}

// Register adds every setting as a flag to fs. Parse the flags, then call
// Load with the same FlagSet. (The mimamori command line registers only
// the groups of each command, through Flags and LoadGroups.)
func Register(fs *flag.FlagSet) {
	for _, f := range Flags(AllGroups()...) {
		fs.String(f.Name, "", fmt.Sprintf("%s (env %s, default %q)", f.Help, f.Env, f.Default))
	}
}

// Load returns the effective configuration: defaults, then environment,
// then flags that were set on the command line.
func Load(fs *flag.FlagSet, getenv func(string) string) (Config, error) {
	set := map[string]string{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = f.Value.String() })
	return LoadGroups(AllGroups(), set, getenv)
}

// LoadGroups returns the effective configuration of the settings of
// groups: flags (the values given on the command line, by setting name),
// then MIMAMORI_* variables, then defaults. Each value is parsed and
// checked once, and an error names the setting and where its value came
// from. Settings of other groups keep their zero value.
func LoadGroups(groups []Group, flags map[string]string, getenv func(string) string) (Config, error) {
	var c Config
	for _, s := range settings() {
		if !slices.Contains(groups, s.group) {
			continue
		}
		v, from := s.def, "default"
		if e := getenv(s.env); e != "" {
			v, from = e, s.env
		}
		if f, ok := flags[s.name]; ok {
			v, from = f, "--"+s.name
		}
		if err := s.set(&c, v); err != nil {
			return c, fmt.Errorf("%s (from %s): %w", s.name, from, err)
		}
	}
	return c, c.validate(groups)
}

func (c *Config) validate(groups []Group) error {
	has := func(g Group) bool { return slices.Contains(groups, g) }
	if has(Data) {
		if c.DataDir == "" {
			return fmt.Errorf("data-dir (MIMAMORI_DATA_DIR) must not be empty")
		}
		abs, err := filepath.Abs(c.DataDir)
		if err != nil {
			return fmt.Errorf("data-dir (MIMAMORI_DATA_DIR): %w", err)
		}
		c.DataDir = abs
	}
	if has(Kafka) && (c.KafkaPartitions < 1 || c.KafkaReplication < 1) {
		return fmt.Errorf("kafka-partitions (MIMAMORI_KAFKA_PARTITIONS) and kafka-replication (MIMAMORI_KAFKA_REPLICATION) must be at least 1")
	}
	if has(Log) {
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
			return fmt.Errorf("log-level (MIMAMORI_LOG_LEVEL) must be debug, info, warn or error, got %q", c.LogLevel)
		}
		switch c.LogFormat {
		case "text", "json":
		default:
			return fmt.Errorf("log-format (MIMAMORI_LOG_FORMAT) must be text or json, got %q", c.LogFormat)
		}
	}
	if has(Ingest) && (c.IngestCertFile == "") != (c.IngestKeyFile == "") {
		return fmt.Errorf("ingest-cert-file (MIMAMORI_INGEST_CERT_FILE) and ingest-key-file (MIMAMORI_INGEST_KEY_FILE) go together")
	}
	if has(Notify) {
		for _, d := range []struct {
			name string
			v    time.Duration
		}{{"notify-webhook-timeout (MIMAMORI_NOTIFY_WEBHOOK_TIMEOUT)", c.NotifyWebhookTimeout},
			{"notify-webhook-give-up (MIMAMORI_NOTIFY_WEBHOOK_GIVE_UP)", c.NotifyWebhookGiveUp},
			{"notify-mail-give-up (MIMAMORI_NOTIFY_MAIL_GIVE_UP)", c.NotifyMailGiveUp}} {
			if d.v <= 0 {
				return fmt.Errorf("%s must be a positive duration, got %s", d.name, d.v)
			}
		}
	}
	if has(Ingest) && (c.IngestDeviceRate < 0 || c.IngestDeviceBurst < 1) {
		return fmt.Errorf("ingest-device-rate (MIMAMORI_INGEST_DEVICE_RATE) must be 0 (no limit) or more and ingest-device-burst (MIMAMORI_INGEST_DEVICE_BURST) at least 1, got %d and %d", c.IngestDeviceRate, c.IngestDeviceBurst)
	}
	if has(SMS) {
		return c.validateSMSGateway()
	}
	return nil
}

// validateSMSGateway keeps the token and the codes off clear-text links:
// plain http is only for a gateway on this machine (tests, a local relay).
// Its errors never quote the token, nor the whole URL (a query may hold a
// key).
func (c *Config) validateSMSGateway() error {
	if c.SMSGatewayURL == "" {
		if c.SMSGatewayToken != "" {
			return fmt.Errorf("sms-gateway-token (MIMAMORI_SMS_GATEWAY_TOKEN) is set but sms-gateway-url is empty (the embedded SMS sink takes no token)")
		}
		return nil
	}
	u, err := url.Parse(c.SMSGatewayURL)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("sms-gateway-url (MIMAMORI_SMS_GATEWAY_URL) must be an absolute URL like https://sms.example.com/v1/messages")
	}
	if u.User != nil {
		return fmt.Errorf("sms-gateway-url (MIMAMORI_SMS_GATEWAY_URL) must not carry a user or password (it would show in `mimamori config`); use sms-gateway-token")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopback(u.Hostname()) {
			return fmt.Errorf("sms-gateway-url (MIMAMORI_SMS_GATEWAY_URL) must use https (http only to a loopback host such as 127.0.0.1), got http to %q", u.Hostname())
		}
	default:
		return fmt.Errorf("sms-gateway-url (MIMAMORI_SMS_GATEWAY_URL) must use https, got scheme %q", u.Scheme)
	}
	for _, r := range c.SMSGatewayToken {
		if r <= ' ' || r > '~' {
			return fmt.Errorf("sms-gateway-token (MIMAMORI_SMS_GATEWAY_TOKEN) must be printable ASCII without spaces or line breaks")
		}
	}
	return nil
}

func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Embedded reports which parts run embedded.
func (c Config) EmbeddedKafka() bool      { return len(c.KafkaBrokers) == 0 }
func (c Config) EmbeddedClickHouse() bool { return c.ClickHouseAddr == "" }

// Print writes the effective configuration, one setting a line, with
// secrets masked.
func (c Config) Print(w io.Writer) {
	for _, s := range settings() {
		v := s.get(&c)
		if s.secret && v != "" {
			v = mask
		} else {
			v = maskURLs(v)
		}
		fmt.Fprintf(w, "%-22s %-32s %s\n", s.name, s.env, v)
	}
}

const mask = "********"

// maskURLs masks what a URL in a setting (or in each element of a list)
// may carry as a secret: its user info (user:password@, or a token given
// as the user) and the values of its query (?token=…).
func maskURLs(v string) string {
	if !strings.Contains(v, "://") {
		return v
	}
	parts := strings.Split(v, ",")
	for i, p := range parts {
		u, err := url.Parse(p)
		if err != nil {
			if strings.Contains(p, "@") || strings.Contains(p, "?") {
				parts[i] = mask // not parsed, so not shown: it might hold a secret
			}
			continue
		}
		var b strings.Builder
		b.WriteString(u.Scheme + "://")
		if u.User != nil {
			b.WriteString(mask + "@")
		}
		b.WriteString(u.Host + u.EscapedPath())
		if u.RawQuery != "" {
			q := u.Query()
			keys := slices.Sorted(maps.Keys(q))
			for j, k := range keys {
				keys[j] = url.QueryEscape(k) + "=" + mask
			}
			b.WriteString("?" + strings.Join(keys, "&"))
		}
		parts[i] = b.String()
	}
	return strings.Join(parts, ",")
}
