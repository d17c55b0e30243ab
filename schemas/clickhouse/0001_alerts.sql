-- Alerts (R-13 evidence), one row per alert id. {db} is replaced by the
-- migrator so a replay can rebuild everything into a fresh database.
-- A resent alert keeps its id, detected_at and customer, so it lands in the
-- same partition with the same sorting key and ReplacingMergeTree collapses
-- it; the version received_at keeps the latest receipt.
-- Daily partitions let the 90-day retention (R-36) drop whole days.
CREATE TABLE IF NOT EXISTS {db}.alerts_log
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
ORDER BY (customer_id, id);

-- What analysts query: merges not yet done by the server are applied at read
-- time (FINAL), so a doubled alert is never seen twice.
CREATE VIEW IF NOT EXISTS {db}.alerts AS
SELECT
    id, device_id, customer_id, detected_at, received_at, severity, kind,
    indicator, label, action, src_ip, src_port, src_mac, dst_ip, dst_port,
    dst_mac, protocol, zones, url, domain, file_name, file_sha256,
    definitions_version, count
FROM {db}.alerts_log FINAL;
