// Package schemas embeds the machine-readable contracts of mimamori: a JSON
// Schema per event type and version (events/) and the ClickHouse DDL
// migrations (clickhouse/), applied in file-name order.
package schemas

import "embed"

// Events holds events/<type>.json, one JSON Schema per event type name,
// generated from the Go payload types (go generate ./events/...).
//
//go:embed events/*.json
var Events embed.FS

// ClickHouse holds clickhouse/NNNN_name.sql migrations.
//
//go:embed clickhouse/*.sql
var ClickHouse embed.FS
