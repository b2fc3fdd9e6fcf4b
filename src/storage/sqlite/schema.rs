//! The SQLite schema: creation, inspection and migration.
//!
//! The schema's version lives in the one-row table `abkit_schema`. Version history:
//!
//! * **1** — the first layout: records, unit states, event ids, totals, sticky assignments.
//! * **2** — adds the unique index `abkit_records_unique_key` on `(kind, unique_key)`, which
//!   makes the per-kind unique key a database constraint (and its look-up an index search).
//!   Migrating refuses a version-1 database whose records already break that constraint.
//! * **3** — exact totals, sparse unit values, event ids per scope (see `blob`):
//!   `abkit_totals.metrics` holds each sum's exact partials, so cancelled large values leave
//!   the small ones intact; `abkit_units.metric_values` holds only the slots with a value;
//!   `abkit_event_ids` gains `scope` (the metric, covariate or exposure an id is for: one order
//!   id may carry a conversion and a revenue value), and `abkit_units` gains `event_ids` (how
//!   many ids a unit has, bounded by `MAX_EVENT_IDS_PER_UNIT`). Migrating rewrites every blob;
//!   ids remembered before are kept with scope −1, which matches every scope (as they did).
//! * **4** — the configuration change feed: `abkit_change_counter` (one row: the feed's
//!   position) and `abkit_changes` (the records each configuration write changed, by position),
//!   so other processes on the same file follow writes by polling the counter
//!   (`fleet::Watcher`). Migrating adds the two tables; nothing else changes.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::map_err;
use crate::storage::StorageError;
use crate::storage::blob;

/// The schema version this build writes.
pub(super) const CURRENT_VERSION: i64 = 4;

/// The tables every version has (version 1's layout).
pub(super) const V1_TABLES: &str = "
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
";

/// The tables of every version.
const TABLES: [&str; 6] = [
    "abkit_schema",
    "abkit_records",
    "abkit_units",
    "abkit_event_ids",
    "abkit_totals",
    "abkit_sticky",
];

/// The tables version 4 adds.
const V4_TABLES: [&str; 2] = ["abkit_change_counter", "abkit_changes"];

/// Version 1 to 2: the unique index on the records' unique keys.
const V2_INDEX: &str = "CREATE UNIQUE INDEX abkit_records_unique_key \
     ON abkit_records (kind, unique_key) WHERE unique_key IS NOT NULL;";

/// What a database holds.
#[derive(Debug, PartialEq)]
enum Found {
    /// No tables at all: a new database.
    Empty,
    /// Tables, none of them abkit's.
    Foreign(Vec<String>),
    /// An abkit schema of this version.
    Version(i64),
}

fn inspect(conn: &Connection) -> Result<Found, StorageError> {
    let mut stmt = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .map_err(map_err)?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(map_err)?
        .collect::<Result<Vec<String>, _>>()
        .map_err(map_err)?;
    if names.is_empty() {
        return Ok(Found::Empty);
    }
    if !names.iter().any(|n| n == "abkit_schema") {
        return Ok(Found::Foreign(names));
    }
    let version = conn
        .query_row("SELECT version FROM abkit_schema WHERE id = 1", [], |r| {
            r.get::<_, rusqlite::types::Value>(0)
        })
        .optional()
        .map_err(map_err)?;
    let version = match version {
        Some(rusqlite::types::Value::Integer(v)) => v,
        Some(other) => {
            return Err(StorageError::Schema(format!(
                "database schema version is {other:?}, expected an integer"
            )));
        }
        None => {
            return Err(StorageError::Corrupt(
                "table abkit_schema has no version row".into(),
            ));
        }
    };
    // Every version has the same tables; one missing (dropped) is damage, found now rather
    // than as a failure of some later call.
    if (1..=CURRENT_VERSION).contains(&version)
        && let Some(missing) = TABLES.iter().find(|t| !names.iter().any(|n| n == *t))
    {
        return Err(StorageError::Corrupt(format!(
            "abkit database (schema version {version}) has no table {missing}"
        )));
    }
    if (4..=CURRENT_VERSION).contains(&version)
        && let Some(missing) = V4_TABLES.iter().find(|t| !names.iter().any(|n| n == *t))
    {
        return Err(StorageError::Corrupt(format!(
            "abkit database (schema version {version}) has no table {missing}"
        )));
    }
    Ok(Found::Version(version))
}

/// Refuses what cannot be opened at all: a foreign database, a newer or unknown schema.
fn refuse(found: &Found) -> Result<(), StorageError> {
    match found {
        Found::Foreign(names) => Err(StorageError::Corrupt(format!(
            "not an abkit database: it has tables {names:?} and no abkit_schema table"
        ))),
        Found::Version(v) if *v > CURRENT_VERSION => Err(StorageError::Schema(format!(
            "database schema version {v} is newer than this abkit supports ({CURRENT_VERSION}): \
             upgrade abkit"
        ))),
        Found::Version(v) if *v < 1 => Err(StorageError::Schema(format!(
            "database schema version {v} is not a valid abkit schema version"
        ))),
        _ => Ok(()),
    }
}

/// Checks a database opened read-only: it must be at the current version (nothing is migrated).
pub(super) fn check_read_only(conn: &Connection) -> Result<(), StorageError> {
    let found = inspect(conn)?;
    refuse(&found)?;
    match found {
        Found::Empty => Err(StorageError::Schema(
            "database has no abkit schema and is opened read-only, so none can be created".into(),
        )),
        Found::Version(v) if v < CURRENT_VERSION => Err(StorageError::Schema(format!(
            "database schema version {v} must be migrated to {CURRENT_VERSION}: \
             open it writable once"
        ))),
        _ => Ok(()),
    }
}

/// Checks a writable database, then creates or migrates its schema in one immediate
/// transaction. `before_write` runs between the check and the first write (it sets the journal
/// mode), so a refused database is never modified.
pub(super) fn prepare(
    conn: &mut Connection,
    before_write: impl FnOnce(&Connection) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    refuse(&inspect(conn)?)?;
    before_write(conn)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)?;
    // Look again under the write lock: another process may have created or migrated it.
    let found = inspect(&tx)?;
    refuse(&found)?;
    match found {
        Found::Empty => {
            // A new database takes the same path as an old one: version 1, then each migration.
            tx.execute_batch(V1_TABLES).map_err(map_err)?;
            tx.execute("INSERT INTO abkit_schema (id, version) VALUES (1, 1)", [])
                .map_err(map_err)?;
            migrate_1_to_2(&tx)?;
            migrate_2_to_3(&tx)?;
            migrate_3_to_4(&tx)?;
        }
        Found::Version(1) => {
            migrate_1_to_2(&tx)?;
            migrate_2_to_3(&tx)?;
            migrate_3_to_4(&tx)?;
        }
        Found::Version(2) => {
            migrate_2_to_3(&tx)?;
            migrate_3_to_4(&tx)?;
        }
        Found::Version(3) => migrate_3_to_4(&tx)?,
        _ => {}
    }
    tx.commit().map_err(map_err)
}

fn migrate_1_to_2(conn: &Connection) -> Result<(), StorageError> {
    let duplicate = conn
        .query_row(
            "SELECT kind, unique_key, COUNT(*) FROM abkit_records WHERE unique_key IS NOT NULL \
             GROUP BY kind, unique_key HAVING COUNT(*) > 1 ORDER BY kind, unique_key LIMIT 1",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            },
        )
        .optional()
        .map_err(map_err)?;
    if let Some((kind, key, n)) = duplicate {
        return Err(StorageError::Schema(format!(
            "cannot migrate schema version 1 to 2: {n} {kind} records share unique key {key:?}"
        )));
    }
    conn.execute_batch(V2_INDEX).map_err(map_err)?;
    conn.execute("UPDATE abkit_schema SET version = 2 WHERE id = 1", [])
        .map_err(map_err)?;
    Ok(())
}

/// Version 2 to 3: event ids per scope with a per-unit count; sparse values and exact totals.
fn migrate_2_to_3(conn: &Connection) -> Result<(), StorageError> {
    conn.execute_batch(
        "ALTER TABLE abkit_units ADD COLUMN event_ids INTEGER NOT NULL DEFAULT 0;
         CREATE TABLE abkit_event_ids_v3 (
             unit_id INTEGER NOT NULL,
             event_id TEXT NOT NULL,
             scope INTEGER NOT NULL,
             PRIMARY KEY (unit_id, event_id, scope)
         ) WITHOUT ROWID;
         INSERT INTO abkit_event_ids_v3 (unit_id, event_id, scope)
             SELECT unit_id, event_id, -1 FROM abkit_event_ids;
         DROP TABLE abkit_event_ids;
         ALTER TABLE abkit_event_ids_v3 RENAME TO abkit_event_ids;
         UPDATE abkit_units SET event_ids =
             (SELECT COUNT(*) FROM abkit_event_ids WHERE unit_id = abkit_units.id);",
    )
    .map_err(map_err)?;
    let units: Vec<(i64, Vec<u8>)> = rows(conn, "SELECT id, metric_values FROM abkit_units")?;
    let mut update = conn
        .prepare("UPDATE abkit_units SET metric_values = ?2 WHERE id = ?1")
        .map_err(map_err)?;
    let mut out = Vec::new();
    for (id, bytes) in units {
        blob::encode_values(&blob::decode_values_v2(&bytes).map_err(cannot)?, &mut out);
        update
            .execute(rusqlite::params![id, out])
            .map_err(map_err)?;
    }
    let totals: Vec<(String, i64, Vec<u8>)> = {
        let mut stmt = conn
            .prepare("SELECT experiment, variant, metrics FROM abkit_totals")
            .map_err(map_err)?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(map_err)?
            .collect::<Result<_, _>>()
            .map_err(map_err)?
    };
    let mut update = conn
        .prepare("UPDATE abkit_totals SET metrics = ?3 WHERE experiment = ?1 AND variant = ?2")
        .map_err(map_err)?;
    for (experiment, variant, bytes) in totals {
        let exact = blob::encode_totals(&blob::decode_totals_v2(&bytes).map_err(cannot)?);
        update
            .execute(rusqlite::params![experiment, variant, exact])
            .map_err(map_err)?;
    }
    conn.execute("UPDATE abkit_schema SET version = 3 WHERE id = 1", [])
        .map_err(map_err)?;
    Ok(())
}

/// Version 3 to 4: the configuration change feed.
fn migrate_3_to_4(conn: &Connection) -> Result<(), StorageError> {
    conn.execute_batch(
        "CREATE TABLE abkit_change_counter (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             seq INTEGER NOT NULL
         );
         INSERT INTO abkit_change_counter (id, seq) VALUES (1, 0);
         CREATE TABLE abkit_changes (
             seq INTEGER NOT NULL,
             n INTEGER NOT NULL,
             kind TEXT NOT NULL,
             id TEXT NOT NULL,
             PRIMARY KEY (seq, n)
         ) WITHOUT ROWID;
         UPDATE abkit_schema SET version = 4 WHERE id = 1;",
    )
    .map_err(map_err)
}

/// Every (id, blob) row of `select`.
fn rows(conn: &Connection, select: &str) -> Result<Vec<(i64, Vec<u8>)>, StorageError> {
    let mut stmt = conn.prepare(select).map_err(map_err)?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(map_err)?
        .collect::<Result<_, _>>()
        .map_err(map_err)
}

/// A version-2 blob that cannot be read: the migration is refused (and rolled back).
fn cannot(e: StorageError) -> StorageError {
    StorageError::Schema(format!("cannot migrate schema version 2 to 3: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(V1_TABLES).unwrap();
        conn.execute("INSERT INTO abkit_schema (id, version) VALUES (1, 1)", [])
            .unwrap();
        conn
    }

    #[test]
    fn creates_the_current_schema_on_an_empty_database() {
        let mut conn = Connection::open_in_memory().unwrap();
        prepare(&mut conn, |_| Ok(())).unwrap();
        assert_eq!(inspect(&conn).unwrap(), Found::Version(CURRENT_VERSION));
        // Idempotent.
        prepare(&mut conn, |_| Ok(())).unwrap();
        assert_eq!(inspect(&conn).unwrap(), Found::Version(CURRENT_VERSION));
    }

    #[test]
    fn migrates_1_to_2_and_adds_the_index() {
        let mut conn = v1();
        prepare(&mut conn, |_| Ok(())).unwrap();
        assert_eq!(inspect(&conn).unwrap(), Found::Version(CURRENT_VERSION));
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'abkit_records_unique_key'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn refuses_to_migrate_duplicate_keys_and_changes_nothing() {
        let mut conn = v1();
        conn.execute_batch(
            "INSERT INTO abkit_records VALUES ('flag', 'a', 1, 'k', '{}');
             INSERT INTO abkit_records VALUES ('flag', 'b', 1, 'k', '{}');",
        )
        .unwrap();
        let err = prepare(&mut conn, |_| Ok(())).unwrap_err();
        assert_eq!(
            err,
            StorageError::Schema(
                "cannot migrate schema version 1 to 2: 2 flag records share unique key \"k\""
                    .into()
            )
        );
        assert_eq!(inspect(&conn).unwrap(), Found::Version(1));
    }

    #[test]
    fn refuses_newer_and_foreign_without_calling_before_write() {
        let mut conn = v1();
        let newer = CURRENT_VERSION + 1;
        conn.execute("UPDATE abkit_schema SET version = ?1", [newer])
            .unwrap();
        let err = prepare(&mut conn, |_| panic!("must not be called")).unwrap_err();
        assert!(
            matches!(err, StorageError::Schema(ref m) if m.contains(&format!("version {newer}"))),
            "{err:?}"
        );

        let mut foreign = Connection::open_in_memory().unwrap();
        foreign.execute_batch("CREATE TABLE users (id)").unwrap();
        let err = prepare(&mut foreign, |_| panic!("must not be called")).unwrap_err();
        assert_eq!(
            err,
            StorageError::Corrupt(
                "not an abkit database: it has tables [\"users\"] and no abkit_schema table".into()
            )
        );
    }

    #[test]
    fn a_version_that_is_not_an_integer_is_a_schema_error() {
        let mut conn = v1();
        conn.execute("UPDATE abkit_schema SET version = 'two'", [])
            .unwrap();
        let err = prepare(&mut conn, |_| panic!("must not be called")).unwrap_err();
        assert_eq!(
            err,
            StorageError::Schema(
                "database schema version is Text(\"two\"), expected an integer".into()
            )
        );
        assert!(matches!(
            check_read_only(&conn),
            Err(StorageError::Schema(_))
        ));
    }

    #[test]
    fn a_dropped_table_is_corrupt() {
        let mut conn = Connection::open_in_memory().unwrap();
        prepare(&mut conn, |_| Ok(())).unwrap();
        conn.execute_batch("DROP TABLE abkit_units").unwrap();
        let err = prepare(&mut conn, |_| panic!("must not be called")).unwrap_err();
        assert_eq!(
            err,
            StorageError::Corrupt(format!(
                "abkit database (schema version {CURRENT_VERSION}) has no table abkit_units"
            ))
        );
        assert!(matches!(
            check_read_only(&conn),
            Err(StorageError::Corrupt(_))
        ));
    }

    #[test]
    fn read_only_check_needs_the_current_version() {
        assert!(matches!(
            check_read_only(&v1()),
            Err(StorageError::Schema(_))
        ));
        assert!(matches!(
            check_read_only(&Connection::open_in_memory().unwrap()),
            Err(StorageError::Schema(_))
        ));
    }

    #[test]
    fn an_unreadable_version_2_blob_refuses_the_migration_and_changes_nothing() {
        let mut conn = v1();
        conn.execute_batch(V2_INDEX).unwrap();
        conn.execute_batch(
            "UPDATE abkit_schema SET version = 2;
             INSERT INTO abkit_units (experiment, unit, variant, exposed_at, excluded, metric_values)
                 VALUES ('e', 'u', 0, 0, 0, x'0102');",
        )
        .unwrap();
        let err = prepare(&mut conn, |_| Ok(())).unwrap_err();
        assert!(
            matches!(err, StorageError::Schema(ref m) if m.starts_with("cannot migrate schema version 2 to 3")),
            "{err:?}"
        );
        assert_eq!(inspect(&conn).unwrap(), Found::Version(2));
        let columns: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('abkit_units') WHERE name = 'event_ids'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(columns, 0, "rolled back");
    }
}
