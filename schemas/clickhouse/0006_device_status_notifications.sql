-- Liveness as the watchdog judged it (R-37): one row per status event,
-- deduplicated by event id; device_status gives each device's current
-- state. activated counts as online.
CREATE TABLE IF NOT EXISTS {db}.device_status_log
(
    event_id    String,
    device_id   String,
    customer_id String,
    status      String,
    changed_at  DateTime('UTC'),
    detected_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(detected_at)
ORDER BY (customer_id, device_id, event_id);

CREATE VIEW IF NOT EXISTS {db}.device_status AS
SELECT
    device_id,
    any(customer_id) AS customer_id,
    argMax(status, detected_at) AS status,
    max(detected_at) AS changed_at
FROM {db}.device_status_log FINAL
GROUP BY device_id;

-- What the notifier did (the notifications topic): every attempt, send,
-- failure, deferral or skip per notification. Operators find permanent
-- failures with WHERE status = 'failed'.
CREATE TABLE IF NOT EXISTS {db}.notifications_log
(
    notification_id String,
    status          String,
    channel         String,
    recipient       String,
    customer_id     String,
    kind            String,
    device_id       String,
    severity        UInt8,
    source_event_id String,
    attempts        UInt32,
    reason          String,
    recorded_at     DateTime('UTC')
)
ENGINE = ReplacingMergeTree(recorded_at)
PARTITION BY toYYYYMM(recorded_at)
ORDER BY (customer_id, notification_id, status);

CREATE VIEW IF NOT EXISTS {db}.notifications AS
SELECT notification_id, status, channel, recipient, customer_id, kind, device_id, severity,
       source_event_id, attempts, reason, recorded_at
FROM {db}.notifications_log FINAL;
