-- Notices on the portal (R-40): planned maintenance, fault notices (levels
-- A and B; Z is kept but never shown, R-83) and firmware updates, from the
-- operations topic. customers is the list of customer IDs the notice is
-- for, or ['*'] for everyone. A notice without an end has ends_at
-- 1970-01-01.
CREATE TABLE IF NOT EXISTS {db}.notices_log
(
    notice_id        String,
    kind             String,
    level            String,
    customers        Array(String),
    summary          String,
    details          String,
    firmware_version String,
    starts_at        DateTime('UTC'),
    ends_at          DateTime('UTC'),
    published_at     DateTime('UTC')
)
ENGINE = ReplacingMergeTree(published_at)
PARTITION BY toYYYYMM(published_at)
ORDER BY notice_id;

CREATE VIEW IF NOT EXISTS {db}.notices AS
SELECT notice_id, kind, level, customers, summary, details, firmware_version, starts_at, ends_at, published_at
FROM {db}.notices_log FINAL;
