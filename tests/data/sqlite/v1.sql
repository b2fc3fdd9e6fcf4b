-- abkit SQLite schema version 1 (before the unique-key index of version 2), with data.
-- Builds tests/data/sqlite/v1.sqlite: run ./make_v1.sh (needs the sqlite3 command-line shell).
-- Blobs are little-endian: a unit value is numerator, denominator, covariate (f64) and a
-- has-covariate byte; a metric total is eight f64 (sum, sum of squares, denominator sum,
-- its squares, products, covariate sum, its squares, covariate products) and a u64 count.
PRAGMA journal_mode = DELETE;
BEGIN;
CREATE TABLE abkit_schema (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
CREATE TABLE abkit_records (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    unique_key TEXT,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
CREATE TABLE abkit_units (
    id INTEGER PRIMARY KEY,
    experiment TEXT NOT NULL,
    unit TEXT NOT NULL,
    variant INTEGER NOT NULL,
    exposed_at INTEGER NOT NULL,
    excluded INTEGER NOT NULL,
    metric_values BLOB NOT NULL,
    UNIQUE (experiment, unit)
);
CREATE TABLE abkit_event_ids (
    unit_id INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (unit_id, event_id)
) WITHOUT ROWID;
CREATE TABLE abkit_totals (
    experiment TEXT NOT NULL,
    variant INTEGER NOT NULL,
    participants INTEGER NOT NULL,
    metrics BLOB NOT NULL,
    PRIMARY KEY (experiment, variant)
) WITHOUT ROWID;
CREATE TABLE abkit_sticky (
    unit TEXT NOT NULL,
    experiment TEXT NOT NULL,
    variant TEXT NOT NULL,
    PRIMARY KEY (unit, experiment)
) WITHOUT ROWID;
INSERT INTO abkit_schema (id, version) VALUES (1, 1);
INSERT INTO abkit_records VALUES
    ('experiment', 'exp_v1', 3, NULL, '{"name":"Made by schema v1","status":"running"}'),
    ('flag', 'flag_b', 1, 'proj/prod/banner', '{"on":false}'),
    ('flag', 'flag_a', 2, 'proj/prod/checkout', '{"on":true}');
-- usr_1: variant 1, converted on metric slot 0 (event id evt_1); usr_2: variant 0, no value.
INSERT INTO abkit_units VALUES
    (1, 'exp_v1', 'usr_1', 1, 1700000000000, 0, x'000000000000F03F0000000000000000000000000000000000'),
    (2, 'exp_v1', 'usr_2', 0, 1700000000000, 0, x'');
INSERT INTO abkit_event_ids VALUES (1, 'evt_1');
INSERT INTO abkit_totals VALUES
    ('exp_v1', 0, 1, x''),
    ('exp_v1', 1, 1, x'000000000000F03F000000000000F03F0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000');
INSERT INTO abkit_sticky VALUES ('usr_1', 'exp_v1', 'treatment');
COMMIT;
