//! The PostgreSQL schema: creation, inspection and migration.
//!
//! The schema's version lives in the one-row table `abkit_schema`. Opening a database takes a
//! transaction-scoped advisory lock first, so instances starting together create or migrate
//! the tables once. Version history:
//!
//! * **1** — records (with the unique index on `(kind, unique_key)`), the change feed and its
//!   counter, unit states (version-3 blobs, as SQLite's), event ids per scope, exact totals,
//!   sticky assignments. `abkit_units` leaves 30% of each page free (`fillfactor = 70`): an event
//!   rewrites its unit's values, which no index covers, so the new row version fits the same
//!   page and no index entry is written (a HOT update).

use postgres::Client;

use crate::storage::StorageError;

/// The schema version this build writes.
pub(super) const CURRENT_VERSION: i32 = 1;

/// The advisory lock key that serialises schema work (`abkit` in ASCII).
const SCHEMA_LOCK: i64 = 0x0061_626b_6974;

const TABLES: &str = "
CREATE TABLE abkit_schema (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
CREATE TABLE abkit_records (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    version BIGINT NOT NULL,
    unique_key TEXT,
    body TEXT NOT NULL,
    CONSTRAINT abkit_records_pkey PRIMARY KEY (kind, id)
);
CREATE UNIQUE INDEX abkit_records_unique_key ON abkit_records (kind, unique_key)
    WHERE unique_key IS NOT NULL;
CREATE TABLE abkit_change_counter (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO abkit_change_counter (id, seq) VALUES (1, 0);
CREATE TABLE abkit_changes (
    seq BIGINT NOT NULL,
    n BIGINT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (seq, n)
);
CREATE TABLE abkit_units (
    id BIGSERIAL PRIMARY KEY,
    experiment TEXT NOT NULL,
    unit TEXT NOT NULL,
    variant INTEGER NOT NULL,
    exposed_at BIGINT NOT NULL,
    excluded BOOLEAN NOT NULL,
    metric_values BYTEA NOT NULL,
    event_ids INTEGER NOT NULL,
    UNIQUE (experiment, unit)
) WITH (fillfactor = 70);
CREATE TABLE abkit_event_ids (
    unit_id BIGINT NOT NULL,
    scope INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (unit_id, scope, event_id)
);
CREATE TABLE abkit_totals (
    experiment TEXT NOT NULL,
    variant INTEGER NOT NULL,
    participants BIGINT NOT NULL,
    metrics BYTEA NOT NULL,
    PRIMARY KEY (experiment, variant)
);
CREATE TABLE abkit_sticky (
    unit TEXT NOT NULL,
    experiment TEXT NOT NULL,
    variant TEXT NOT NULL,
    PRIMARY KEY (unit, experiment)
);
";

/// The tables of the current version, for the check that they are all there.
const TABLE_NAMES: [&str; 7] = [
    "abkit_records",
    "abkit_change_counter",
    "abkit_changes",
    "abkit_units",
    "abkit_event_ids",
    "abkit_totals",
    "abkit_sticky",
];

fn pg(e: postgres::Error) -> StorageError {
    super::map_pg(&e)
}

/// Creates the current schema in an empty database, checks an existing one, and refuses one
/// written by a newer abkit (changing nothing).
pub(super) fn prepare(client: &mut Client) -> Result<(), StorageError> {
    let mut tx = client.transaction().map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .map_err(pg)?;
    let exists: bool = tx
        .query_one("SELECT to_regclass('abkit_schema') IS NOT NULL", &[])
        .and_then(|r| r.try_get(0))
        .map_err(pg)?;
    if !exists {
        let foreign: Option<String> = tx
            .query_opt(
                "SELECT c.relname::text FROM pg_class c \
                 WHERE c.relname = ANY($1) AND pg_table_is_visible(c.oid) LIMIT 1",
                &[&TABLE_NAMES.as_slice()],
            )
            .map_err(pg)?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(pg)?;
        if let Some(name) = foreign {
            return Err(StorageError::Schema(format!(
                "table {name:?} exists but abkit_schema does not: not a database abkit made"
            )));
        }
        tx.batch_execute(TABLES).map_err(pg)?;
        tx.execute(
            "INSERT INTO abkit_schema (id, version) VALUES (1, $1)",
            &[&CURRENT_VERSION],
        )
        .map_err(pg)?;
        return tx.commit().map_err(pg);
    }
    let version: Option<i32> = tx
        .query_opt("SELECT version FROM abkit_schema WHERE id = 1", &[])
        .map_err(pg)?
        .map(|r| r.try_get(0))
        .transpose()
        .map_err(pg)?;
    match version {
        None => Err(StorageError::Schema(
            "abkit_schema has no version row".into(),
        )),
        Some(v) if v > CURRENT_VERSION => Err(StorageError::Schema(format!(
            "the database has schema version {v}, written by a newer abkit; this build reads \
             up to {CURRENT_VERSION}"
        ))),
        Some(v) if v < 1 => Err(StorageError::Schema(format!(
            "the database has schema version {v}, expected 1..={CURRENT_VERSION}"
        ))),
        Some(_) => {
            for name in TABLE_NAMES {
                let present: bool = tx
                    .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
                    .and_then(|r| r.try_get(0))
                    .map_err(pg)?;
                if !present {
                    return Err(StorageError::Corrupt(format!(
                        "table {name:?} is missing from an abkit database"
                    )));
                }
            }
            tx.commit().map_err(pg)
        }
    }
}
