//! A durable [`Storage`] on SQLite (bundled: nothing to install).
//!
//! Layout: configuration records in `abkit_records` (JSON bodies), one row per enrolled unit in
//! `abkit_units` (its metric values as a compact little-endian blob), remembered event ids in
//! `abkit_event_ids`, per-variant sufficient statistics in `abkit_totals` and sticky assignments
//! in `abkit_sticky`. The schema is versioned (see `schema.rs`): opening an older database
//! migrates it, opening a newer one is a [`StorageError::Schema`] and changes nothing.
//!
//! Durability: the journal is in WAL mode with `synchronous=FULL` by default, so a committed
//! call survives a process crash and a power loss. Every logical operation is one
//! `BEGIN IMMEDIATE` transaction (a whole [`Storage::apply_events`] batch included), so
//! concurrent writers, threads or processes, serialise on the database's write lock (waiting up
//! to the busy timeout) and never lose an update.

mod schema;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};

use super::blob;
use super::sql::{self, FEED_KEEP, from_sql_version, to_sql_version, variant_index};
use super::{
    ConfigChanges, EventOutcome, ExactMetricTotals, ExactTotals, ExperimentTotals, Record,
    RecordChange, RecordKind, RecordWrite, Storage, StorageError, UnitEvent, UnitState,
    VariantTotals,
};
use crate::time::Timestamp;

/// When SQLite waits for the disk on commit (`PRAGMA synchronous`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// `FULL`: every commit is synced to disk before it returns. Survives a process crash and
    /// a power loss or OS crash.
    #[default]
    Full,
    /// `NORMAL`: in WAL mode, commits survive a process crash, but the last commits may be
    /// rolled back (never corrupted) by a power loss or OS crash. Faster on slow disks.
    Normal,
}

/// Options for [`SqliteStorage::open_with`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use abkit::storage::{SqliteOptions, Synchronous};
///
/// let options = SqliteOptions::new()
///     .busy_timeout(Duration::from_secs(10))
///     .synchronous(Synchronous::Normal);
/// assert_eq!(options.synchronous, Synchronous::Normal);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// How long a write waits for another connection's write lock before failing with
    /// [`StorageError::Backend`] (default 5 s).
    pub busy_timeout: Duration,
    /// The sync mode (default [`Synchronous::Full`]).
    pub synchronous: Synchronous,
    /// The most pages (of 4 KiB by default) the database file may grow to, if limited; a write
    /// past it fails with [`StorageError::Full`].
    pub max_page_count: Option<u32>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::Full,
            max_page_count: None,
        }
    }
}

impl SqliteOptions {
    /// The defaults: 5 s busy timeout, `synchronous=FULL`, no size limit.
    pub fn new() -> SqliteOptions {
        SqliteOptions::default()
    }

    /// Sets the busy timeout.
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> SqliteOptions {
        self.busy_timeout = timeout;
        self
    }

    /// Sets the sync mode.
    #[must_use]
    pub fn synchronous(mut self, synchronous: Synchronous) -> SqliteOptions {
        self.synchronous = synchronous;
        self
    }

    /// Limits the database file to `pages` pages.
    #[must_use]
    pub fn max_page_count(mut self, pages: u32) -> SqliteOptions {
        self.max_page_count = Some(pages);
        self
    }
}

/// A durable store in one SQLite database file, safe to share between threads and between
/// processes that open the same file.
///
/// Writes go through one connection (behind a mutex) in `BEGIN IMMEDIATE` transactions; reads
/// of a file database use a second, read-only connection, so they are never blocked by a write
/// in progress (WAL mode).
///
/// # Examples
///
/// ```
/// use abkit::storage::{RecordKind, RecordWrite, SqliteStorage, Storage};
///
/// let path = std::env::temp_dir().join(format!("abkit-doc-{}.db", std::process::id()));
/// # let _ = std::fs::remove_file(&path);
/// {
///     let store = SqliteStorage::open(&path)?;
///     let body = serde_json::json!({"name": "x"});
///     store.put_record(RecordWrite { kind: RecordKind::Audience, id: "aud_1", unique_key: None, body: &body }, None)?;
/// }
/// // Reopened, the record is still there.
/// let store = SqliteStorage::open(&path)?;
/// assert_eq!(store.get_record(RecordKind::Audience, "aud_1")?.map(|r| r.version), Some(1));
/// # drop(store);
/// # for suffix in ["", "-wal", "-shm"] { let _ = std::fs::remove_file(format!("{}{suffix}", path.display())); }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SqliteStorage {
    writer: Mutex<Connection>,
    /// A read-only connection for file databases (`None`: reads use `writer`).
    reader: Option<Mutex<Connection>>,
    read_only: bool,
}

/// Maps a SQLite failure to the crate's error.
fn map_err(e: rusqlite::Error) -> StorageError {
    match e.sqlite_error_code() {
        // Every SQLITE_READONLY_* extended code (a read-only file, directory or mount, a
        // read-only connection) has the primary code READONLY.
        Some(ErrorCode::ReadOnly) => StorageError::ReadOnly(e.to_string()),
        Some(ErrorCode::DiskFull) => StorageError::Full(e.to_string()),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            StorageError::Corrupt(e.to_string())
        }
        _ => {
            let m = e.to_string();
            // One of abkit's tables or columns is gone (dropped behind the store's back): the
            // file is not what abkit wrote. SQLite reports it as a generic error.
            if m.contains("no such table: abkit_") || m.contains("no such column") {
                StorageError::Corrupt(m)
            } else {
                StorageError::Backend(m)
            }
        }
    }
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while a transaction was open rolled it back when the transaction was dropped.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn begin(conn: &mut Connection) -> Result<Transaction<'_>, StorageError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)
}

fn configure(conn: &Connection, options: &SqliteOptions) -> Result<(), StorageError> {
    conn.busy_timeout(options.busy_timeout).map_err(map_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    // A 32 MiB page cache (SQLite's default is 2 MiB): unit-state look-ups of large
    // experiments stay in memory instead of re-reading pages on every event.
    conn.execute_batch("PRAGMA cache_size = -32768")
        .map_err(map_err)?;
    if let Some(pages) = options.max_page_count {
        conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .map_err(map_err)?;
    }
    Ok(())
}

fn set_synchronous(conn: &Connection, s: Synchronous) -> Result<(), StorageError> {
    let sql = match s {
        Synchronous::Full => "PRAGMA synchronous = FULL",
        Synchronous::Normal => "PRAGMA synchronous = NORMAL",
    };
    conn.execute_batch(sql).map_err(map_err)
}

fn enable_wal(conn: &Connection) -> Result<(), StorageError> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(map_err)?;
    if mode.eq_ignore_ascii_case("wal") {
        Ok(())
    } else {
        Err(StorageError::Backend(format!(
            "journal_mode is {mode:?}, expected \"wal\" (the file system may not support it)"
        )))
    }
}

impl SqliteStorage {
    /// Opens (creating it if absent) the database at `path` with the default options, creating
    /// or migrating its schema.
    ///
    /// # Errors
    ///
    /// [`StorageError::Corrupt`] for a file that is not a SQLite database, one holding other
    /// tables or one missing some of abkit's; [`StorageError::Schema`] for a database written
    /// by a newer abkit or with an invalid schema version (nothing is modified);
    /// [`StorageError::ReadOnly`] when the file, its directory or its file system refuses
    /// writes (use [`open_read_only`](Self::open_read_only)); [`StorageError::Backend`] when the
    /// file cannot be opened.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::storage::{SqliteStorage, Storage};
    ///
    /// let path = std::env::temp_dir().join(format!("abkit-open-{}.db", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let store = SqliteStorage::open(&path)?;
    /// assert!(store.totals("exp_1")?.variants.is_empty());
    /// # drop(store);
    /// # for suffix in ["", "-wal", "-shm"] { let _ = std::fs::remove_file(format!("{}{suffix}", path.display())); }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStorage, StorageError> {
        SqliteStorage::open_with(path, &SqliteOptions::default())
    }

    /// Opens (creating it if absent) the database at `path` with `options`.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::storage::{SqliteOptions, SqliteStorage, Synchronous};
    ///
    /// let path = std::env::temp_dir().join(format!("abkit-open-with-{}.db", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let store = SqliteStorage::open_with(&path, &SqliteOptions::new().synchronous(Synchronous::Normal))?;
    /// # drop(store);
    /// # for suffix in ["", "-wal", "-shm"] { let _ = std::fs::remove_file(format!("{}{suffix}", path.display())); }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_with(
        path: impl AsRef<Path>,
        options: &SqliteOptions,
    ) -> Result<SqliteStorage, StorageError> {
        SqliteStorage::open_writer_with_flags(
            path.as_ref(),
            options,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
    }

    /// [`open_with`](Self::open_with), its writing connection opened with `flags`.
    fn open_writer_with_flags(
        path: &Path,
        options: &SqliteOptions,
        flags: OpenFlags,
    ) -> Result<SqliteStorage, StorageError> {
        let mut writer = Connection::open_with_flags(path, flags).map_err(|e| open_err(path, e))?;
        // Asked to read and write a file the OS refuses to write (a read-only file, directory
        // or mount), SQLite opens it read-only without an error; every write would then fail.
        if writer.is_readonly(rusqlite::MAIN_DB).map_err(map_err)? {
            return Err(StorageError::ReadOnly(format!(
                "{} cannot be opened for writing (the file, its directory or its file system \
                 is read-only): open it with open_read_only",
                path.display()
            )));
        }
        configure(&writer, options)?;
        schema::prepare(&mut writer, enable_wal)?;
        set_synchronous(&writer, options.synchronous)?;
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open_err(path, e))?;
        configure(&reader, options)?;
        Ok(SqliteStorage {
            writer: Mutex::new(writer),
            reader: Some(Mutex::new(reader)),
            read_only: false,
        })
    }

    /// Opens the existing database at `path` for reading only: every write fails with
    /// [`StorageError::ReadOnly`]. Its schema must be the current one (nothing is migrated).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open); also [`StorageError::Schema`] for a database of an older
    /// schema or with none, and [`StorageError::Backend`] when the file does not exist.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::storage::{SqliteStorage, Storage, StorageError};
    ///
    /// let path = std::env::temp_dir().join(format!("abkit-ro-{}.db", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// drop(SqliteStorage::open(&path)?);
    /// let store = SqliteStorage::open_read_only(&path)?;
    /// assert!(matches!(store.purge_events("exp_1"), Err(StorageError::ReadOnly(_))));
    /// # drop(store);
    /// # for suffix in ["", "-wal", "-shm"] { let _ = std::fs::remove_file(format!("{}{suffix}", path.display())); }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<SqliteStorage, StorageError> {
        let path = path.as_ref();
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open_err(path, e))?;
        configure(&conn, &SqliteOptions::default())?;
        schema::check_read_only(&conn)?;
        Ok(SqliteStorage {
            writer: Mutex::new(conn),
            reader: None,
            read_only: true,
        })
    }

    /// A new database in memory, gone when the store is dropped (for tests).
    ///
    /// # Errors
    ///
    /// [`StorageError::Backend`] if SQLite cannot allocate it.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::storage::{SqliteStorage, Storage};
    ///
    /// let store = SqliteStorage::open_in_memory()?;
    /// assert!(store.sticky_assignments("usr_1")?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_in_memory() -> Result<SqliteStorage, StorageError> {
        let mut conn = Connection::open_in_memory().map_err(map_err)?;
        configure(&conn, &SqliteOptions::default())?;
        schema::prepare(&mut conn, |_| Ok(()))?;
        Ok(SqliteStorage {
            writer: Mutex::new(conn),
            reader: None,
            read_only: false,
        })
    }

    /// Whether the store was opened with [`open_read_only`](Self::open_read_only).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn read(&self) -> MutexGuard<'_, Connection> {
        lock(self.reader.as_ref().unwrap_or(&self.writer))
    }

    fn write(&self) -> Result<MutexGuard<'_, Connection>, StorageError> {
        if self.read_only {
            return Err(StorageError::ReadOnly(
                "the database was opened with open_read_only".into(),
            ));
        }
        Ok(lock(&self.writer))
    }
}

fn open_err(path: &Path, e: rusqlite::Error) -> StorageError {
    match map_err(e) {
        StorageError::Backend(m) => {
            StorageError::Backend(format!("cannot open {}: {m}", path.display()))
        }
        other => other,
    }
}

fn record_from_row(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(String, String, i64, Option<String>, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn decode_record(
    (kind, id, version, unique_key, body): (String, String, i64, Option<String>, String),
) -> Result<Record, StorageError> {
    sql::decode_record(&kind, id, version, unique_key, &body)
}

// ---- compact encodings of per-unit values and per-variant totals -------------------------

type UnitRow = (i64, i64, i64, bool, Vec<u8>, i64);

/// A unit's row: its id (for the update that follows in a batch, and its event ids), its
/// state and how many event ids it has.
const LOAD_UNIT: &str = "SELECT id, variant, exposed_at, excluded, metric_values, event_ids \
     FROM abkit_units WHERE experiment = ?1 AND unit = ?2";

/// A loaded unit: its row id, its state and its number of event ids.
struct LoadedUnit {
    rowid: i64,
    state: UnitState,
    event_ids: u32,
}

fn load_unit(
    conn: &Connection,
    experiment: &str,
    unit: &str,
) -> Result<Option<UnitState>, StorageError> {
    let mut stmt = conn.prepare_cached(LOAD_UNIT).map_err(map_err)?;
    Ok(load_unit_with(&mut stmt, experiment, unit)?.map(|u| u.state))
}

fn load_unit_with(
    stmt: &mut rusqlite::Statement<'_>,
    experiment: &str,
    unit: &str,
) -> Result<Option<LoadedUnit>, StorageError> {
    let row: Option<UnitRow> = stmt
        .query_row(params![experiment, unit], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .optional()
        .map_err(map_err)?;
    row.map(|(rowid, variant, at, excluded, values, ids)| {
        Ok(LoadedUnit {
            rowid,
            state: UnitState::new(
                variant_index(experiment, variant)?,
                Timestamp::from_unix_millis(at),
                excluded,
                blob::decode_values(&values)?,
            ),
            event_ids: u32::try_from(ids).map_err(|_| {
                StorageError::Corrupt(format!(
                    "unit {unit:?} of experiment {experiment:?} has {ids} event ids"
                ))
            })?,
        })
    })
    .transpose()
}

fn load_totals(conn: &Connection, experiment: &str) -> Result<ExperimentTotals, StorageError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT variant, participants, metrics FROM abkit_totals WHERE experiment = ?1 \
             ORDER BY variant",
        )
        .map_err(map_err)?;
    let rows = stmt
        .query_map(params![experiment], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })
        .map_err(map_err)?;
    let mut totals = ExperimentTotals::default();
    for row in rows {
        let (variant, participants, metrics) = row.map_err(map_err)?;
        let v = variant_index(experiment, variant)? as usize;
        if totals.variants.len() <= v {
            totals.variants.resize_with(v + 1, VariantTotals::default);
        }
        if let Some(t) = totals.variants.get_mut(v) {
            t.participants = u64::try_from(participants).map_err(|_| {
                StorageError::Corrupt(format!(
                    "experiment {experiment:?} variant {v} has {participants} participants"
                ))
            })?;
            t.metrics = blob::rounded(&blob::decode_totals(&metrics)?);
        }
    }
    Ok(totals)
}

/// Adds a batch's accumulated change to the stored totals of `experiment`.
fn flush_totals(
    tx: &Transaction<'_>,
    experiment: &str,
    delta: &ExactTotals,
) -> Result<(), StorageError> {
    for (i, d) in delta.variants.iter().enumerate() {
        if d.participants == 0 && d.metrics.is_empty() {
            continue;
        }
        let variant =
            i64::try_from(i).map_err(|_| StorageError::Backend("variant index".into()))?;
        let stored: Option<(i64, Vec<u8>)> = tx
            .prepare_cached(
                "SELECT participants, metrics FROM abkit_totals \
                 WHERE experiment = ?1 AND variant = ?2",
            )
            .map_err(map_err)?
            .query_row(params![experiment, variant], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(map_err)?;
        let (participants, mut metrics) = match stored {
            Some((p, m)) => (
                u64::try_from(p).map_err(|_| {
                    StorageError::Corrupt(format!(
                        "experiment {experiment:?} variant {i} has {p} participants"
                    ))
                })?,
                blob::decode_totals(&m)?,
            ),
            None => (0, Vec::new()),
        };
        let participants = participants.saturating_add(d.participants);
        if metrics.len() < d.metrics.len() {
            metrics.resize_with(d.metrics.len(), ExactMetricTotals::default);
        }
        for (m, x) in metrics.iter_mut().zip(&d.metrics) {
            m.merge(x);
        }
        tx.prepare_cached(
            "INSERT INTO abkit_totals (experiment, variant, participants, metrics) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (experiment, variant) DO UPDATE SET \
             participants = excluded.participants, metrics = excluded.metrics",
        )
        .map_err(map_err)?
        .execute(params![
            experiment,
            variant,
            i64::try_from(participants).unwrap_or(i64::MAX),
            blob::encode_totals(&metrics)
        ])
        .map_err(map_err)?;
    }
    Ok(())
}

/// The stored version of a record, if it exists.
fn stored_version(
    tx: &Transaction<'_>,
    kind: RecordKind,
    id: &str,
) -> Result<Option<u64>, StorageError> {
    let stored: Option<i64> = tx
        .prepare_cached("SELECT version FROM abkit_records WHERE kind = ?1 AND id = ?2")
        .map_err(map_err)?
        .query_row(params![kind.as_str(), id], |r| r.get(0))
        .optional()
        .map_err(map_err)?;
    stored.map(|v| from_sql_version(kind, id, v)).transpose()
}

/// A record write inside the open transaction `tx`.
fn put_in(
    tx: &Transaction<'_>,
    w: &RecordWrite<'_>,
    expected: Option<u64>,
) -> Result<u64, StorageError> {
    let body = serde_json::to_string(w.body).map_err(|e| {
        StorageError::Backend(format!("{} {:?} body cannot be encoded: {e}", w.kind, w.id))
    })?;
    let version = super::next_version(w.kind, w.id, stored_version(tx, w.kind, w.id)?, expected)?;
    if let Some(key) = w.unique_key {
        let taken = tx
            .prepare_cached(
                "SELECT 1 FROM abkit_records WHERE kind = ?1 AND unique_key = ?2 AND id <> ?3",
            )
            .map_err(map_err)?
            .exists(params![w.kind.as_str(), key, w.id])
            .map_err(map_err)?;
        if taken {
            return Err(StorageError::UniqueViolation {
                kind: w.kind,
                key: key.to_owned(),
            });
        }
    }
    tx.prepare_cached(
        "INSERT INTO abkit_records (kind, id, version, unique_key, body) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (kind, id) DO UPDATE SET \
         version = excluded.version, unique_key = excluded.unique_key, body = excluded.body",
    )
    .map_err(map_err)?
    .execute(params![
        w.kind.as_str(),
        w.id,
        to_sql_version(version)?,
        w.unique_key,
        body
    ])
    .map_err(map_err)?;
    Ok(version)
}

/// Advances the change feed inside the open write transaction `tx` (writes are serialised by
/// SQLite's write lock, so positions are commit-ordered) and records what changed.
fn feed_in(tx: &Transaction<'_>, changed: &[(RecordKind, &str)]) -> Result<(), StorageError> {
    let seq: i64 = tx
        .prepare_cached("UPDATE abkit_change_counter SET seq = seq + 1 WHERE id = 1 RETURNING seq")
        .map_err(map_err)?
        .query_row([], |r| r.get(0))
        .map_err(map_err)?;
    let mut insert = tx
        .prepare_cached("INSERT INTO abkit_changes (seq, n, kind, id) VALUES (?1, ?2, ?3, ?4)")
        .map_err(map_err)?;
    for (n, (kind, id)) in changed.iter().enumerate() {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        insert
            .execute(params![seq, n, kind.as_str(), id])
            .map_err(map_err)?;
    }
    if seq % 1_000 == 0 {
        tx.prepare_cached("DELETE FROM abkit_changes WHERE seq <= ?1")
            .map_err(map_err)?
            .execute(params![seq - FEED_KEEP])
            .map_err(map_err)?;
    }
    Ok(())
}

fn feed_position(conn: &Connection) -> Result<i64, StorageError> {
    conn.prepare_cached("SELECT seq FROM abkit_change_counter WHERE id = 1")
        .map_err(map_err)?
        .query_row([], |r| r.get(0))
        .map_err(map_err)
}

/// A record delete inside the open transaction `tx`.
fn delete_in(
    tx: &Transaction<'_>,
    kind: RecordKind,
    id: &str,
    expected: u64,
) -> Result<(), StorageError> {
    super::check_version(kind, id, stored_version(tx, kind, id)?, Some(expected))?;
    tx.prepare_cached("DELETE FROM abkit_records WHERE kind = ?1 AND id = ?2")
        .map_err(map_err)?
        .execute(params![kind.as_str(), id])
        .map_err(map_err)?;
    Ok(())
}

/// Applies a batch inside the open transaction `tx`; the statements are prepared once per
/// batch.
fn apply_in(
    tx: &Transaction<'_>,
    events: &[UnitEvent<'_>],
) -> Result<Vec<EventOutcome>, StorageError> {
    let mut seen_id = tx
        .prepare_cached(
            // Scope -1: an id remembered before ids were scoped (schema version 2), which
            // stands for every scope.
            "SELECT 1 FROM abkit_event_ids WHERE unit_id = ?1 AND event_id = ?2 \
             AND scope IN (?3, -1)",
        )
        .map_err(map_err)?;
    let mut load = tx.prepare_cached(LOAD_UNIT).map_err(map_err)?;
    let mut update = tx
        .prepare_cached(
            "UPDATE abkit_units SET metric_values = ?2, event_ids = event_ids + ?3 WHERE id = ?1",
        )
        .map_err(map_err)?;
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO abkit_units \
             (experiment, unit, variant, exposed_at, excluded, metric_values, event_ids) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(map_err)?;
    let mut remember_id = tx
        .prepare_cached(
            "INSERT INTO abkit_event_ids (unit_id, event_id, scope) VALUES (?1, ?2, ?3)",
        )
        .map_err(map_err)?;
    let mut out = Vec::with_capacity(events.len());
    // The batch's change to each experiment's totals, written once at the end.
    let mut deltas: HashMap<&str, ExactTotals> = HashMap::new();
    let mut blob = Vec::new();
    for e in events {
        let loaded = load_unit_with(&mut load, e.experiment, e.unit)?;
        let unit_id = loaded.as_ref().map(|u| u.rowid);
        let scope = e.id_scope();
        // Event ids are remembered per enrolled unit, so only an enrolled unit can have seen one.
        if let (Some(uid), Some(id)) = (unit_id, e.event_id)
            && seen_id.exists(params![uid, id, scope]).map_err(map_err)?
        {
            out.push(EventOutcome::DuplicateEventId);
            continue;
        }
        if let Some(r) = e.check_event_id(loaded.as_ref().map_or(0, |u| u.event_ids)) {
            out.push(EventOutcome::Rejected(r));
            continue;
        }
        let mut state = loaded.map(|u| u.state);
        let (outcome, delta) = UnitState::apply(&mut state, e.at, &e.kind);
        if let (true, Some(s)) = (outcome.is_stored(), &state) {
            blob::encode_values(&s.values(), &mut blob);
            let new_ids = i64::from(e.event_id.is_some());
            let uid = if let Some(uid) = unit_id {
                // Only metric values change once a unit is enrolled.
                update
                    .execute(params![uid, blob, new_ids])
                    .map_err(map_err)?;
                uid
            } else {
                insert
                    .execute(params![
                        e.experiment,
                        e.unit,
                        s.variant,
                        s.exposed_at.unix_millis(),
                        s.excluded,
                        blob,
                        new_ids
                    ])
                    .map_err(map_err)?;
                tx.last_insert_rowid()
            };
            if let Some(id) = e.event_id {
                remember_id
                    .execute(params![uid, id, scope])
                    .map_err(map_err)?;
            }
        }
        if let Some(d) = delta {
            deltas.entry(e.experiment).or_default().apply(&d);
        }
        out.push(outcome);
    }
    for (experiment, delta) in &deltas {
        flush_totals(tx, experiment, delta)?;
    }
    Ok(out)
}

impl Storage for SqliteStorage {
    fn change_position(&self) -> Result<Option<u64>, StorageError> {
        Ok(Some(
            u64::try_from(feed_position(&self.read())?).unwrap_or(0),
        ))
    }

    fn changes_since(&self, since: u64) -> Result<Option<ConfigChanges>, StorageError> {
        let since = i64::try_from(since).unwrap_or(i64::MAX);
        let mut conn = self.read();
        // One read transaction: the position and the entries are of one snapshot.
        let tx = conn.transaction().map_err(map_err)?;
        let seq = feed_position(&tx)?;
        let position = u64::try_from(seq).unwrap_or(0);
        let oldest: Option<i64> = tx
            .query_row("SELECT min(seq) FROM abkit_changes", [], |r| r.get(0))
            .map_err(map_err)?;
        if !sql::feed_reaches(since, seq, oldest) {
            return Ok(Some(ConfigChanges {
                position,
                records: None,
            }));
        }
        let mut stmt = tx
            .prepare_cached(
                "SELECT kind, id FROM abkit_changes WHERE seq > ?1 AND seq <= ?2 ORDER BY seq, n",
            )
            .map_err(map_err)?;
        let rows = stmt
            .query_map(params![since, seq], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(map_err)?;
        let mut records = Vec::new();
        for row in rows {
            let (kind, id) = row.map_err(map_err)?;
            records.push((sql::feed_kind(&kind)?, id));
        }
        Ok(Some(ConfigChanges {
            position,
            records: Some(records),
        }))
    }

    fn get_record(&self, kind: RecordKind, id: &str) -> Result<Option<Record>, StorageError> {
        let conn = self.read();
        let row = conn
            .prepare_cached(
                "SELECT kind, id, version, unique_key, body FROM abkit_records \
                 WHERE kind = ?1 AND id = ?2",
            )
            .map_err(map_err)?
            .query_row(params![kind.as_str(), id], record_from_row)
            .optional()
            .map_err(map_err)?;
        row.map(decode_record).transpose()
    }

    fn list_records(&self, kind: RecordKind) -> Result<Vec<Record>, StorageError> {
        let conn = self.read();
        let mut stmt = conn
            .prepare_cached(
                "SELECT kind, id, version, unique_key, body FROM abkit_records \
                 WHERE kind = ?1 ORDER BY id",
            )
            .map_err(map_err)?;
        let rows = stmt
            .query_map(params![kind.as_str()], record_from_row)
            .map_err(map_err)?;
        rows.map(|r| r.map_err(map_err).and_then(decode_record))
            .collect()
    }

    fn put_record(&self, w: RecordWrite<'_>, expected: Option<u64>) -> Result<u64, StorageError> {
        let mut conn = self.write()?;
        let tx = begin(&mut conn)?;
        let version = put_in(&tx, &w, expected)?;
        feed_in(&tx, &[(w.kind, w.id)])?;
        tx.commit().map_err(map_err)?;
        Ok(version)
    }

    fn delete_record(&self, kind: RecordKind, id: &str, expected: u64) -> Result<(), StorageError> {
        let mut conn = self.write()?;
        let tx = begin(&mut conn)?;
        delete_in(&tx, kind, id, expected)?;
        feed_in(&tx, &[(kind, id)])?;
        tx.commit().map_err(map_err)
    }

    fn commit(&self, changes: &[RecordChange<'_>]) -> Result<Vec<u64>, StorageError> {
        super::check_distinct(changes)?;
        let mut conn = self.write()?;
        let tx = begin(&mut conn)?;
        let mut versions = Vec::with_capacity(changes.len());
        for c in changes {
            versions.push(match c {
                RecordChange::Put { write, expected } => put_in(&tx, write, *expected)?,
                RecordChange::Delete { kind, id, expected } => {
                    delete_in(&tx, *kind, id, *expected)?;
                    0
                }
                RecordChange::Check { kind, id, expected } => {
                    super::check_version(*kind, id, stored_version(&tx, *kind, id)?, *expected)?
                }
            });
        }
        let changed: Vec<(RecordKind, &str)> = changes
            .iter()
            .filter(|c| !matches!(c, RecordChange::Check { .. }))
            .map(RecordChange::target)
            .collect();
        if !changed.is_empty() {
            feed_in(&tx, &changed)?;
        }
        // Dropping `tx` on an error above rolls everything back.
        tx.commit().map_err(map_err)?;
        Ok(versions)
    }

    fn apply_events(&self, events: &[UnitEvent<'_>]) -> Result<Vec<EventOutcome>, StorageError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.write()?;
        let tx = begin(&mut conn)?;
        let out = apply_in(&tx, events)?;
        tx.commit().map_err(map_err)?;
        Ok(out)
    }

    fn unit_state(&self, experiment: &str, unit: &str) -> Result<Option<UnitState>, StorageError> {
        load_unit(&self.read(), experiment, unit)
    }

    fn totals(&self, experiment: &str) -> Result<ExperimentTotals, StorageError> {
        load_totals(&self.read(), experiment)
    }

    fn purge_events(&self, experiment: &str) -> Result<(), StorageError> {
        let mut conn = self.write()?;
        let tx = begin(&mut conn)?;
        for sql in [
            "DELETE FROM abkit_event_ids WHERE unit_id IN \
             (SELECT id FROM abkit_units WHERE experiment = ?1)",
            "DELETE FROM abkit_units WHERE experiment = ?1",
            "DELETE FROM abkit_totals WHERE experiment = ?1",
            "DELETE FROM abkit_sticky WHERE experiment = ?1",
        ] {
            tx.prepare_cached(sql)
                .map_err(map_err)?
                .execute(params![experiment])
                .map_err(map_err)?;
        }
        tx.commit().map_err(map_err)
    }

    fn sticky_assignments(&self, unit: &str) -> Result<Vec<(String, String)>, StorageError> {
        let conn = self.read();
        let mut stmt = conn
            .prepare_cached(
                "SELECT experiment, variant FROM abkit_sticky WHERE unit = ?1 ORDER BY experiment",
            )
            .map_err(map_err)?;
        let rows = stmt
            .query_map(params![unit], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(map_err)?;
        rows.map(|r| r.map_err(map_err)).collect()
    }

    fn save_sticky_assignments(
        &self,
        unit: &str,
        assignments: &[(&str, &str)],
    ) -> Result<(), StorageError> {
        if assignments.is_empty() {
            return Ok(());
        }
        let mut conn = self.write()?;
        let tx = begin(&mut conn)?;
        for (experiment, variant) in assignments {
            tx.prepare_cached(
                "INSERT INTO abkit_sticky (unit, experiment, variant) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (unit, experiment) DO NOTHING",
            )
            .map_err(map_err)?
            .execute(params![unit, experiment, variant])
            .map_err(map_err)?;
        }
        tx.commit().map_err(map_err)
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn temp_path(name: &str) -> std::path::PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("abkit-unit-{name}-{}-{n}.db", std::process::id()));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
        }
        p
    }

    #[test]
    fn passes_the_conformance_suite_on_files() {
        crate::storage::conformance::run(|| SqliteStorage::open(temp_path("conf")).unwrap());
    }

    #[test]
    fn passes_the_conformance_suite_in_memory() {
        crate::storage::conformance::run(|| SqliteStorage::open_in_memory().unwrap());
    }

    #[test]
    fn store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<SqliteStorage>();
        check::<SqliteOptions>();
    }

    #[test]
    fn maps_error_codes() {
        let e = |code| {
            map_err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error {
                    code,
                    extended_code: 0,
                },
                Some("m".into()),
            ))
        };
        assert_eq!(e(ErrorCode::ReadOnly), StorageError::ReadOnly("m".into()));
        assert_eq!(e(ErrorCode::DiskFull), StorageError::Full("m".into()));
        assert_eq!(
            e(ErrorCode::NotADatabase),
            StorageError::Corrupt("m".into())
        );
        assert_eq!(
            e(ErrorCode::DatabaseBusy),
            StorageError::Backend("m".into())
        );
    }

    /// On a read-only file, directory or mount SQLite opens a read-write connection read-only
    /// without an error (as it does for `mode=ro`): the store must say so, not open.
    #[test]
    fn a_file_that_refuses_writes_is_read_only() {
        let path = temp_path("ro-fallback");
        drop(SqliteStorage::open(&path).unwrap());
        // What SQLite hands back for such a file: a read-only connection.
        let err = SqliteStorage::open_writer_with_flags(
            &path,
            &SqliteOptions::default(),
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .unwrap_err();
        assert!(
            matches!(&err, StorageError::ReadOnly(m) if m.contains("open_read_only")),
            "{err:?}"
        );
        // A write through a read-only connection (`mode=ro`) is classified ReadOnly too.
        let uri = format!("file:{}?mode=ro", path.display());
        let conn = Connection::open_with_flags(
            &uri,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_URI,
        )
        .unwrap();
        assert!(conn.is_readonly(rusqlite::MAIN_DB).unwrap());
        let write = conn
            .execute("DELETE FROM abkit_sticky", [])
            .map_err(map_err)
            .unwrap_err();
        assert!(matches!(write, StorageError::ReadOnly(_)), "{write:?}");
        drop(conn);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    #[test]
    fn a_table_dropped_while_open_is_corrupt() {
        let store = SqliteStorage::open_in_memory().unwrap();
        lock(&store.writer)
            .execute_batch("DROP TABLE abkit_units")
            .unwrap();
        assert!(matches!(
            store.unit_state("e", "u"),
            Err(StorageError::Corrupt(m)) if m.contains("abkit_units")
        ));
        let expose = crate::storage::UnitEventKind::Exposure {
            variant: 0,
            excluded: false,
        };
        let e = UnitEvent {
            experiment: "e",
            unit: "u",
            event_id: None,
            at: Timestamp::from_unix_millis(0),
            kind: expose,
        };
        assert!(matches!(
            store.apply_events(&[e]),
            Err(StorageError::Corrupt(_))
        ));
        // Other generic errors stay Backend.
        let other = map_err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error {
                code: ErrorCode::Unknown,
                extended_code: 1,
            },
            Some("near \"x\": syntax error".into()),
        ));
        assert!(matches!(other, StorageError::Backend(_)));
    }

    #[test]
    fn corrupt_rows_are_errors_not_panics() {
        let store = SqliteStorage::open_in_memory().unwrap();
        {
            let conn = lock(&store.writer);
            conn.execute_batch(
                "INSERT INTO abkit_records VALUES ('experiment', 'e', 1, NULL, 'not json');
                 INSERT INTO abkit_records VALUES ('gadget', 'g', 1, NULL, '{}');
                 INSERT INTO abkit_units (experiment, unit, variant, exposed_at, excluded, metric_values)
                     VALUES ('e', 'u', 5000, 0, 0, x'');
                 INSERT INTO abkit_totals VALUES ('e', 0, 1, x'00');",
            )
            .unwrap();
        }
        assert!(matches!(
            store.get_record(RecordKind::Experiment, "e"),
            Err(StorageError::Corrupt(m)) if m.contains("not valid json")
        ));
        assert!(matches!(
            store.unit_state("e", "u"),
            Err(StorageError::Corrupt(m)) if m.contains("variant index 5000")
        ));
        assert!(matches!(store.totals("e"), Err(StorageError::Corrupt(_))));
    }

    #[test]
    fn event_ids_are_forgotten_with_a_purge() {
        let s = SqliteStorage::open_in_memory().unwrap();
        let slot = crate::storage::MetricSlot {
            index: 0,
            aggregation: crate::storage::Aggregation::Sum,
            cap: None,
            window_millis: None,
        };
        let ev = |id: Option<&'static str>, kind| UnitEvent {
            experiment: "e",
            unit: "u",
            event_id: id,
            at: Timestamp::from_unix_millis(5),
            kind,
        };
        let expose = crate::storage::UnitEventKind::Exposure {
            variant: 0,
            excluded: false,
        };
        let value = crate::storage::UnitEventKind::Metric {
            slot,
            value: 2.0,
            denominator: 0.0,
        };
        let first = s
            .apply_events(&[ev(None, expose), ev(Some("x"), value), ev(Some("x"), value)])
            .unwrap();
        assert_eq!(
            first,
            [
                EventOutcome::Enrolled,
                EventOutcome::Recorded,
                EventOutcome::DuplicateEventId
            ]
        );
        s.purge_events("e").unwrap();
        let again = s
            .apply_events(&[ev(None, expose), ev(Some("x"), value)])
            .unwrap();
        assert_eq!(again, [EventOutcome::Enrolled, EventOutcome::Recorded]);
        assert_eq!(s.totals("e").unwrap().variant(0).metrics[0].sum, 2.0);
    }

    #[test]
    fn event_ids_per_unit_are_bounded() {
        use crate::storage::UnitEventKind;
        use crate::storage::{Aggregation, MAX_EVENT_IDS_PER_UNIT, MetricSlot, Rejection};
        let s = SqliteStorage::open_in_memory().unwrap();
        let slot = MetricSlot {
            index: 0,
            aggregation: Aggregation::Sum,
            cap: None,
            window_millis: None,
        };
        let ev = |id: Option<&'static str>, kind| UnitEvent {
            experiment: "e",
            unit: "u",
            event_id: id,
            at: Timestamp::from_unix_millis(5),
            kind,
        };
        let value = UnitEventKind::Metric {
            slot,
            value: 2.0,
            denominator: 0.0,
        };
        let expose = UnitEventKind::Exposure {
            variant: 0,
            excluded: false,
        };
        assert_eq!(
            s.apply_events(&[ev(Some("a"), expose), ev(Some("b"), value)])
                .unwrap(),
            [EventOutcome::Enrolled, EventOutcome::Recorded]
        );
        let count = |s: &SqliteStorage| -> i64 {
            lock(&s.writer)
                .query_row(
                    "SELECT event_ids FROM abkit_units WHERE unit = 'u'",
                    [],
                    |r| r.get(0),
                )
                .unwrap()
        };
        assert_eq!(count(&s), 2, "the exposure's id and the value's");
        // One short of the limit: one more id is taken, the next is refused.
        lock(&s.writer)
            .execute(
                "UPDATE abkit_units SET event_ids = ?1 WHERE unit = 'u'",
                [i64::from(MAX_EVENT_IDS_PER_UNIT) - 1],
            )
            .unwrap();
        assert_eq!(
            s.apply_events(&[
                ev(Some("c"), value),
                ev(Some("d"), value),
                ev(Some("b"), value),
                ev(None, value)
            ])
            .unwrap(),
            [
                EventOutcome::Recorded,
                EventOutcome::Rejected(Rejection::TooManyEventIds),
                EventOutcome::DuplicateEventId,
                EventOutcome::Recorded
            ]
        );
        assert_eq!(count(&s), i64::from(MAX_EVENT_IDS_PER_UNIT));
        assert_eq!(s.totals("e").unwrap().variant(0).metrics[0].sum, 6.0);
    }
}
