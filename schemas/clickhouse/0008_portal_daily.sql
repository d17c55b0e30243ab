-- Daily figures of the portal, by Japanese calendar day (JST is UTC+9
-- without daylight saving, so the day is toDate(t + 9 h) on every
-- release). alerts_daily_jst counts alerts per day, customer, device,
-- severity and kind (exact distinct ids, so duplicates never count);
-- active_days_jst has a row per day on which a customer's device sent a
-- heartbeat (participants of the comparison, R-38). Both are filled from
-- the rows already there when the migration runs.
CREATE TABLE IF NOT EXISTS {db}.alerts_daily_jst_state
(
    day         Date,
    customer_id String,
    device_id   String,
    severity    UInt8,
    kind        String,
    alerts      AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (customer_id, day, device_id, severity, kind);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.alerts_daily_jst_mv
TO {db}.alerts_daily_jst_state
AS SELECT
    toDate(detected_at + 32400) AS day,
    customer_id,
    device_id,
    severity,
    kind,
    uniqExactState(id) AS alerts
FROM {db}.alerts_log
GROUP BY day, customer_id, device_id, severity, kind;

INSERT INTO {db}.alerts_daily_jst_state (day, customer_id, device_id, severity, kind, alerts)
SELECT toDate(detected_at + 32400) AS day, customer_id, device_id, severity, kind, uniqExactState(id)
FROM {db}.alerts_log
GROUP BY day, customer_id, device_id, severity, kind;

CREATE VIEW IF NOT EXISTS {db}.alerts_daily_jst AS
SELECT day, customer_id, device_id, severity, kind, uniqExactMerge(alerts) AS alerts
FROM {db}.alerts_daily_jst_state
GROUP BY day, customer_id, device_id, severity, kind;

CREATE TABLE IF NOT EXISTS {db}.active_days_jst_log
(
    day         Date,
    customer_id String,
    device_id   String
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (day, customer_id, device_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.active_days_jst_mv
TO {db}.active_days_jst_log
AS SELECT DISTINCT toDate(sent_at + 32400) AS day, customer_id, device_id
FROM {db}.heartbeats;

INSERT INTO {db}.active_days_jst_log (day, customer_id, device_id)
SELECT DISTINCT toDate(sent_at + 32400) AS day, customer_id, device_id
FROM {db}.heartbeats;

CREATE VIEW IF NOT EXISTS {db}.active_days_jst AS
SELECT DISTINCT day, customer_id, device_id
FROM {db}.active_days_jst_log;
