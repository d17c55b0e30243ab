// Package analytics is mimamori's ClickHouse access: connecting over the
// native protocol, retention of the alert partitions, and (in its
// subpackages) the embedded server, the migrations, the projection writers
// and the replay check. README.md documents the views for analysts.
package analytics

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Config says how to reach ClickHouse.
type Config struct {
	Addr     string // host:port of the native protocol, e.g. 127.0.0.1:9000
	User     string // "default" when empty
	Password string
	Database string // "default" when empty
	TLS      *tls.Config
	// DialTimeout bounds dialing and the first ping (10 s when zero).
	DialTimeout time.Duration
}

// Open connects over the native protocol (the HTTP protocol of clickhouse-go
// fails against 18.16) and pings the server before returning.
func Open(ctx context.Context, cfg Config) (driver.Conn, error) {
	if cfg.Addr == "" {
		return nil, errors.New("analytics: Config.Addr is required")
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.User == "" {
		cfg.User = "default"
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		Protocol: clickhouse.Native,
		Addr:     []string{cfg.Addr},
		Auth: clickhouse.Auth{
			Database: cfg.Database,
			Username: cfg.User,
			Password: cfg.Password,
		},
		TLS:         cfg.TLS,
		DialTimeout: cfg.DialTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %s: %w", cfg.Addr, err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if err := conn.Ping(pingCtx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("ping clickhouse %s as %s: %w", cfg.Addr, cfg.User, err)
	}
	return conn, nil
}
