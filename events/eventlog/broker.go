package eventlog

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"
)

// BrokerConfig configures the embedded broker.
type BrokerConfig struct {
	// Dir persists the log; reopened on the next start.
	Dir string
	// Port to listen on at 127.0.0.1; 0 picks a free one.
	Port int
	// SyncWrites fsyncs every produced batch before it is acknowledged.
	// Without it an acknowledged batch sits in the page cache until the
	// next segment roll or clean shutdown: a process crash loses nothing
	// (the kernel still writes it), a power loss or kernel crash can lose
	// the last seconds of acknowledged events.
	SyncWrites bool
	// Partitions is the default partition count of auto-created topics.
	Partitions int32
}

// Broker is the in-process Kafka broker (franz-go's kfake) that speaks the
// real Kafka protocol, so any Kafka client (kcat included) can use it.
type Broker struct {
	c *kfake.Cluster
}

// StartBroker starts the embedded broker.
func StartBroker(cfg BrokerConfig) (*Broker, error) {
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(cfg.Port)}
	if cfg.Dir != "" {
		opts = append(opts, kfake.DataDir(cfg.Dir))
	}
	if cfg.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	if cfg.Partitions > 0 {
		opts = append(opts, kfake.DefaultNumPartitions(int(cfg.Partitions)))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka broker (data dir %q, port %d): %w", cfg.Dir, cfg.Port, err)
	}
	return &Broker{c: c}, nil
}

// Addrs are the broker's listen addresses (host:port).
func (b *Broker) Addrs() []string { return b.c.ListenAddrs() }

// Close stops the broker, writing its state to the data folder.
func (b *Broker) Close() { b.c.Close() }
