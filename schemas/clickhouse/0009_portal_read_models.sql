-- Read models of the portal, so that each answer is a short range read.
-- alerts_log is sorted by (customer_id, id) within daily partitions: a
-- customer's newest alerts touch a granule in every day of the period.
-- alerts_by_customer holds the same rows sorted by (customer_id,
-- detected_at, id) in monthly partitions: a customer's alerts of a period
-- are a few adjacent granules, and an alert is found by id within the
-- customer's 90 days. A resent alert keeps its id, detected_at and customer,
-- so ReplacingMergeTree(received_at) collapses it as in alerts_log; readers
-- still deduplicate by id (LIMIT 1 BY id, uniqExact). Nothing older than 90
-- days is shown (R-36, a filter of every query); whole months past it can be
-- dropped like the days of alerts_log.
CREATE TABLE IF NOT EXISTS {db}.alerts_by_customer
(
    id                  String,
    device_id           String,
    customer_id         String,
    detected_at         DateTime('UTC'),
    received_at         DateTime('UTC'),
    severity            UInt8,
    kind                String,
    indicator           String,
    label               String,
    action              String,
    src_ip              String,
    src_port            UInt16,
    src_mac             String,
    dst_ip              String,
    dst_port            UInt16,
    dst_mac             String,
    protocol            String,
    zones               String,
    url                 String,
    domain              String,
    file_name           String,
    file_sha256         String,
    definitions_version String,
    count               UInt32
)
ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMM(detected_at)
ORDER BY (customer_id, detected_at, id)
SETTINGS index_granularity = 1024;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.alerts_by_customer_mv
TO {db}.alerts_by_customer
AS SELECT
    id, device_id, customer_id, detected_at, received_at, severity, kind,
    indicator, label, action, src_ip, src_port, src_mac, dst_ip, dst_port,
    dst_mac, protocol, zones, url, domain, file_name, file_sha256,
    definitions_version, count
FROM {db}.alerts_log;

INSERT INTO {db}.alerts_by_customer (id, device_id, customer_id, detected_at, received_at, severity, kind,
    indicator, label, action, src_ip, src_port, src_mac, dst_ip, dst_port, dst_mac, protocol, zones, url,
    domain, file_name, file_sha256, definitions_version, count)
SELECT
    id, device_id, customer_id, detected_at, received_at, severity, kind,
    indicator, label, action, src_ip, src_port, src_mac, dst_ip, dst_port,
    dst_mac, protocol, zones, url, domain, file_name, file_sha256,
    definitions_version, count
FROM {db}.alerts_log;

-- Where an alert is: its customer's detected_at by id, so the detail reads
-- one partition of alerts_by_customer by its whole sorting key. Not
-- partitioned by day: an id is found in one lookup.
CREATE TABLE IF NOT EXISTS {db}.alert_ids
(
    customer_id String,
    id          String,
    detected_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree()
ORDER BY (customer_id, id)
SETTINGS index_granularity = 1024;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.alert_ids_mv
TO {db}.alert_ids
AS SELECT customer_id, id, detected_at
FROM {db}.alerts_log;

INSERT INTO {db}.alert_ids (customer_id, id, detected_at)
SELECT customer_id, id, detected_at
FROM {db}.alerts_log;

-- Alerts per Japanese day and customer (distinct ids), for the
-- participants' comparison: one state per day and customer instead of one
-- per day, customer, device, severity and kind in alerts_daily_jst_state
-- (alerts_daily_jst_by_customer since 0010).
-- The states keep 64-bit hashes of the ids (uniqExact keeps 128-bit ones of
-- a String), half the bytes to merge; among the few thousand ids of a
-- customer's day a collision is below one in a trillion.
CREATE TABLE IF NOT EXISTS {db}.alerts_customer_daily_jst_state
(
    day         Date,
    customer_id String,
    alerts      AggregateFunction(uniqExact, UInt64)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (day, customer_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.alerts_customer_daily_jst_mv
TO {db}.alerts_customer_daily_jst_state
AS SELECT
    toDate(detected_at + 32400) AS day,
    customer_id,
    uniqExactState(cityHash64(id)) AS alerts
FROM {db}.alerts_log
GROUP BY day, customer_id;

INSERT INTO {db}.alerts_customer_daily_jst_state (day, customer_id, alerts)
SELECT toDate(detected_at + 32400) AS day, customer_id, uniqExactState(cityHash64(id))
FROM {db}.alerts_log
GROUP BY day, customer_id;

CREATE VIEW IF NOT EXISTS {db}.alerts_customer_daily_jst AS
SELECT day, customer_id, uniqExactMerge(alerts) AS alerts
FROM {db}.alerts_customer_daily_jst_state
GROUP BY day, customer_id;
