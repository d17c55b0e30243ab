-- Customers (R-01). The e-mail address stays out of ClickHouse: personal
-- data lives only in the log, where crypto-shredding can erase it (R-75).
CREATE TABLE IF NOT EXISTS {db}.customers
(
    customer_id   String,
    name          String,
    reseller_id   String,
    registered_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree(registered_at)
ORDER BY customer_id;
