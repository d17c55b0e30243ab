-- Heartbeats, one row per heartbeat id (read with FINAL or with
-- idempotent aggregates such as max and uniqExact).
CREATE TABLE IF NOT EXISTS {db}.heartbeats
(
    id                  String,
    device_id           String,
    customer_id         String,
    sent_at             DateTime('UTC'),
    received_at         DateTime('UTC'),
    firmware_version    String,
    definitions_version String,
    uptime_seconds      Int64,
    clients             UInt32,
    packets             UInt64,
    bytes               UInt64,
    alerts              UInt64,
    queue_depth         Int64
)
ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMMDD(sent_at)
ORDER BY (customer_id, device_id, id);

CREATE TABLE IF NOT EXISTS {db}.heartbeats_daily_state
(
    day         Date,
    customer_id String,
    device_id   String,
    heartbeats  AggregateFunction(uniqExact, String),
    max_packets AggregateFunction(max, UInt64),
    last_seen   AggregateFunction(max, DateTime('UTC'))
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (customer_id, day, device_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.heartbeats_daily_mv
TO {db}.heartbeats_daily_state
AS SELECT
    toDate(sent_at) AS day,
    customer_id,
    device_id,
    uniqExactState(id) AS heartbeats,
    maxState(packets) AS max_packets,
    maxState(received_at) AS last_seen
FROM {db}.heartbeats
GROUP BY day, customer_id, device_id;

CREATE VIEW IF NOT EXISTS {db}.heartbeats_daily AS
SELECT
    day,
    customer_id,
    device_id,
    uniqExactMerge(heartbeats) AS heartbeats,
    maxMerge(max_packets) AS max_packets,
    maxMerge(last_seen) AS last_seen
FROM {db}.heartbeats_daily_state
GROUP BY day, customer_id, device_id;
