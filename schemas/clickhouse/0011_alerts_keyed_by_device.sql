-- An alert is its device's: alerts_log, alerts_by_customer and alert_ids
-- get device_id into their sorting keys, so a device reusing another
-- device's alert id (of the same customer, on the same day) adds its own
-- row instead of replacing the other's at the next merge. alert_ids is now
-- sorted by id first: the projector looks up whether a (device, id) was
-- stored before, whatever customer it was stamped with, to keep the first
-- version of every alert (projection.Writer).
--
-- A sorting key cannot change in place, so alerts_log moves:
-- 1. alerts_log_0011, in the new layout, is filled from alerts_log and
--    from alerts_log_0010, the old table a failed run of this file may have
--    left behind (an empty copy otherwise);
-- 2. the materialized views reading alerts_log are dropped, the two tables
--    swap names in one RENAME (alerts_log never goes missing), and what the
--    old one received meanwhile is copied over;
-- 3. alerts_by_customer and alert_ids are rebuilt from alerts_log, the
--    views are created again, and the daily aggregates are back-filled
--    from alerts_log for rows that arrived while their views were gone
--    (exact distinct ids: an id counted twice is one id).
-- Every statement can run again, so a run that failed half way is simply
-- applied again. The aggregates keep their history beyond alerts_log's 90
-- days; alerts_customer_daily_jst still counts distinct ids per customer
-- and day (two devices of one customer reusing an id count once there).
CREATE TABLE IF NOT EXISTS {db}.alerts_log_0011
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
PARTITION BY toYYYYMMDD(detected_at)
ORDER BY (customer_id, device_id, id);

CREATE TABLE IF NOT EXISTS {db}.alerts_log_0010 AS {db}.alerts_log;

INSERT INTO {db}.alerts_log_0011 (id, device_id, customer_id, detected_at, received_at, severity, kind, indicator, label, action,
    src_ip, src_port, src_mac, dst_ip, dst_port, dst_mac, protocol, zones, url, domain, file_name, file_sha256,
    definitions_version, count)
SELECT id, device_id, customer_id, detected_at, received_at, severity, kind, indicator, label, action,
    src_ip, src_port, src_mac, dst_ip, dst_port, dst_mac, protocol, zones, url, domain, file_name, file_sha256,
    definitions_version, count
FROM {db}.alerts_log_0010;

INSERT INTO {db}.alerts_log_0011 (id, device_id, customer_id, detected_at, received_at, severity, kind, indicator, label, action,
    src_ip, src_port, src_mac, dst_ip, dst_port, dst_mac, protocol, zones, url, domain, file_name, file_sha256,
    definitions_version, count)
SELECT id, device_id, customer_id, detected_at, received_at, severity, kind, indicator, label, action,
    src_ip, src_port, src_mac, dst_ip, dst_port, dst_mac, protocol, zones, url, domain, file_name, file_sha256,
    definitions_version, count
FROM {db}.alerts_log;

DROP TABLE IF EXISTS {db}.alerts_daily_mv;

DROP TABLE IF EXISTS {db}.alerts_daily_jst_by_customer_mv;

DROP TABLE IF EXISTS {db}.alerts_customer_daily_jst_mv;

DROP TABLE IF EXISTS {db}.alerts_by_customer_mv;

DROP TABLE IF EXISTS {db}.alert_ids_mv;

DROP TABLE IF EXISTS {db}.alerts_log_0010;

RENAME TABLE {db}.alerts_log TO {db}.alerts_log_0010, {db}.alerts_log_0011 TO {db}.alerts_log;

INSERT INTO {db}.alerts_log (id, device_id, customer_id, detected_at, received_at, severity, kind, indicator, label, action,
    src_ip, src_port, src_mac, dst_ip, dst_port, dst_mac, protocol, zones, url, domain, file_name, file_sha256,
    definitions_version, count)
SELECT id, device_id, customer_id, detected_at, received_at, severity, kind, indicator, label, action,
    src_ip, src_port, src_mac, dst_ip, dst_port, dst_mac, protocol, zones, url, domain, file_name, file_sha256,
    definitions_version, count
FROM {db}.alerts_log_0010;

DROP TABLE IF EXISTS {db}.alerts_log_0010;

DROP TABLE IF EXISTS {db}.alerts_by_customer;

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
ORDER BY (customer_id, detected_at, id, device_id)
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

DROP TABLE IF EXISTS {db}.alert_ids;

CREATE TABLE IF NOT EXISTS {db}.alert_ids
(
    id          String,
    device_id   String,
    customer_id String,
    detected_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree()
ORDER BY (id, device_id)
SETTINGS index_granularity = 1024;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.alert_ids_mv
TO {db}.alert_ids
AS SELECT id, device_id, customer_id, detected_at
FROM {db}.alerts_log;

INSERT INTO {db}.alert_ids (id, device_id, customer_id, detected_at)
SELECT id, device_id, customer_id, detected_at
FROM {db}.alerts_log;

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

INSERT INTO {db}.alerts_daily_state (day, customer_id, device_id, severity, kind, alerts, first_seen, last_seen)
SELECT toDate(detected_at) AS day, customer_id, device_id, severity, kind,
    uniqExactState(id), minState(detected_at), maxState(detected_at)
FROM {db}.alerts_log
GROUP BY day, customer_id, device_id, severity, kind;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.alerts_daily_jst_by_customer_mv
TO {db}.alerts_daily_jst_by_customer
AS SELECT
    toDate(detected_at + 32400) AS day,
    customer_id,
    device_id,
    severity,
    kind,
    uniqExactState(id) AS alerts
FROM {db}.alerts_log
GROUP BY day, customer_id, device_id, severity, kind;

INSERT INTO {db}.alerts_daily_jst_by_customer (day, customer_id, device_id, severity, kind, alerts)
SELECT toDate(detected_at + 32400) AS day, customer_id, device_id, severity, kind, uniqExactState(id)
FROM {db}.alerts_log
GROUP BY day, customer_id, device_id, severity, kind;

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
