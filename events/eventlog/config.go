// Package eventlog carries mimamori's events over Kafka with franz-go: the
// CloudEvents Kafka binding (binary mode, ce_ headers), topic creation,
// idempotent producers, consumers that commit only after their side effect,
// tails that rebuild state from the log, and the embedded kfake broker.
package eventlog

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Config says how to reach Kafka and how topics are named and created.
type Config struct {
	Brokers       []string
	TLS           *tls.Config
	SASLMechanism string // "", "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512"
	SASLUser      string
	SASLPassword  string
	TopicPrefix   string
	Partitions    int32
	Replication   int16
	// Linger is how long a producer waits to fill a batch; 0 sends at once
	// (right for the latency-sensitive ingest path).
	Linger time.Duration
	// Logger, when set, receives the Kafka clients' own log: errors and
	// warnings at those levels, group joins and assignments at debug.
	Logger *slog.Logger
}

// Validate reports the first configuration problem.
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka: no brokers configured")
	}
	if c.Partitions < 1 {
		return fmt.Errorf("kafka: partitions must be at least 1, got %d", c.Partitions)
	}
	if c.Replication < 1 {
		return fmt.Errorf("kafka: replication factor must be at least 1, got %d", c.Replication)
	}
	switch strings.ToUpper(c.SASLMechanism) {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		return fmt.Errorf("kafka: unknown SASL mechanism %q (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)", c.SASLMechanism)
	}
	return nil
}

// Topic returns the full name of a topic base name.
func (c Config) Topic(base string) string { return c.TopicPrefix + base }

// Base strips the configured prefix from a full topic name.
func (c Config) Base(topic string) string { return strings.TrimPrefix(topic, c.TopicPrefix) }

// ClientOpts are the connection options every client shares.
func (c Config) ClientOpts() []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...)}
	if c.Logger != nil {
		opts = append(opts, kgo.WithLogger(clientLogger{c.Logger}))
	}
	if c.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(c.TLS))
	}
	switch strings.ToUpper(c.SASLMechanism) {
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha512Mechanism()))
	}
	return opts
}
