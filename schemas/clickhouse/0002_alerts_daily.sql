-- Daily alert counts per customer, device, severity and kind. The states are
-- exact distinct counts of alert ids, so inserting the same alert twice (a
-- redelivery, a replay) never changes a number.
CREATE TABLE IF NOT EXISTS {db}.alerts_daily_state
(
    day         Date,
    customer_id String,
    device_id   String,
    severity    UInt8,
    kind        String,
    alerts      AggregateFunction(uniqExact, String),
    first_seen  AggregateFunction(min, DateTime('UTC')),
    last_seen   AggregateFunction(max, DateTime('UTC'))
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (customer_id, day, device_id, severity, kind);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.alerts_daily_mv
TO {db}.alerts_daily_state
AS SELECT
    toDate(detected_at) AS day,
    customer_id,
    device_id,
    severity,
    kind,
    uniqExactState(id) AS alerts,
    minState(detected_at) AS first_seen,
    maxState(detected_at) AS last_seen
FROM {db}.alerts_log
GROUP BY day, customer_id, device_id, severity, kind;

CREATE VIEW IF NOT EXISTS {db}.alerts_daily AS
SELECT
    day,
    customer_id,
    device_id,
    severity,
    kind,
    uniqExactMerge(alerts) AS alerts,
    minMerge(first_seen) AS first_seen,
    maxMerge(last_seen) AS last_seen
FROM {db}.alerts_daily_state
GROUP BY day, customer_id, device_id, severity, kind;
