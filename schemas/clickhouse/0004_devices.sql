-- The device registry. Registration and assignment are separate events, so
-- each gets its own ReplacingMergeTree keyed on device_id with the event
-- time as version (the latest state wins whatever order the events arrive
-- in), and the devices view joins them.
CREATE TABLE IF NOT EXISTS {db}.device_registrations
(
    device_id       String,
    serial          String,
    mac             String,
    model           String,
    manufactured_on Date,
    registered_at   DateTime('UTC')
)
ENGINE = ReplacingMergeTree(registered_at)
ORDER BY device_id;

CREATE TABLE IF NOT EXISTS {db}.device_assignments
(
    device_id   String,
    customer_id String,
    assigned_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree(assigned_at)
ORDER BY device_id;

-- A device not yet assigned has customer_id '' and assigned_at 1970-01-01.
CREATE VIEW IF NOT EXISTS {db}.devices AS
SELECT device_id, serial, mac, model, manufactured_on, registered_at, customer_id, assigned_at
FROM
(
    SELECT device_id, serial, mac, model, manufactured_on, registered_at
    FROM {db}.device_registrations FINAL
)
ANY LEFT JOIN
(
    SELECT device_id, customer_id, assigned_at
    FROM {db}.device_assignments FINAL
) USING device_id;
