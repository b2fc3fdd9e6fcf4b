//! A [`Storage`] on PostgreSQL, shared by a fleet of service instances.
//!
//! Layout (schema version 1, see `schema.rs`): configuration records in `abkit_records` (JSON
//! bodies, unique keys as a partial unique index), the configuration change feed in
//! `abkit_changes` with its counter in `abkit_change_counter`, one row per enrolled unit in
//! `abkit_units` (its metric values as the same compact blob SQLite stores), remembered event
//! ids in `abkit_event_ids`, per-variant sufficient statistics in `abkit_totals` and sticky
//! assignments in `abkit_sticky`.
//!
//! Concurrency, per operation, in one transaction each:
//!
//! * **Configuration writes** first take the change counter's row lock (configuration writes
//!   are rare: they serialise, which also makes the change feed's positions commit-ordered and
//!   leaves no deadlock between them), then read each record's version `FOR UPDATE` and apply
//!   the optimistic-versioning rules; the primary key and the unique index decide any race the
//!   reads did not see. The feed entry and a `NOTIFY abkit_changes` are part of the same
//!   transaction, so other instances hear of a write exactly when it commits.
//! * **Event batches** take a transaction-scoped advisory lock per experiment they touch (in
//!   ascending key order: no deadlock), load every unit of the batch and every event id it
//!   repeats in two queries, apply the events in order in memory ([`UnitState::apply`], the
//!   arithmetic every store shares) and write the units, ids and totals back in bulk: a
//!   1 000-event batch is about ten statements, not thousands. Batches on different experiments
//!   proceed in parallel; batches on one experiment serialise, as their totals rows would.
//!
//! Failures: serialization failures and deadlocks are retried inside the store (up to
//! [`PostgresOptions::retries`] times, with a short backoff); a connection found dead before
//! its transaction began is replaced and the call retried; a connection lost during a
//! transaction is a [`StorageError::Backend`] naming the loss, and the transaction is rolled
//! back by the server, so nothing is partially applied.
//!
//! Threads and runtimes: the client is rust-postgres' synchronous `postgres::Client`, which
//! drives its connection on a private single-threaded tokio runtime. Calling it on a thread
//! that runs async tasks would make tokio refuse (a panic), so a call made inside any tokio
//! runtime context runs on a short-lived scoped thread instead; the `http` feature's handlers
//! call storage from blocking tasks, where that is the only cost (tens of microseconds beside a
//! database round trip).

mod schema;

use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls, Transaction};

use super::blob;
use super::sql::{self, FEED_KEEP, from_sql_version, to_sql_version, variant_index};
use super::{
    ConfigChanges, EventOutcome, ExactMetricTotals, ExactTotals, ExperimentTotals, Record,
    RecordChange, RecordKind, RecordWrite, Storage, StorageError, UnitEvent, UnitState,
    VariantTotals,
};
use crate::time::Timestamp;

/// The notification channel configuration writes signal on.
const CHANNEL: &str = "abkit_changes";

/// Options of a [`PostgresStorage`].
#[derive(Clone, Debug, PartialEq)]
pub struct PostgresOptions {
    pool_size: usize,
    connect_timeout: Duration,
    acquire_timeout: Duration,
    retries: u32,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(30),
            retries: 5,
        }
    }
}

impl PostgresOptions {
    /// The defaults: 8 connections, a 5 s connect timeout, 30 s to wait for a free connection,
    /// 5 retries of a serialization failure or deadlock.
    pub fn new() -> PostgresOptions {
        PostgresOptions::default()
    }

    /// The most connections the store opens (at least 1).
    pub fn pool_size(mut self, size: usize) -> PostgresOptions {
        self.pool_size = size.max(1);
        self
    }

    /// How long opening a connection may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> PostgresOptions {
        self.connect_timeout = timeout;
        self
    }

    /// How long a call waits for a free connection when all are busy.
    pub fn acquire_timeout(mut self, timeout: Duration) -> PostgresOptions {
        self.acquire_timeout = timeout;
        self
    }

    /// How many times a transaction that failed on a serialization failure or a deadlock is
    /// tried again.
    pub fn retries(mut self, retries: u32) -> PostgresOptions {
        self.retries = retries;
        self
    }
}

/// A durable [`Storage`] on a PostgreSQL server, shared by every instance that opens the same
/// database.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use abkit::Lab;
/// use abkit::storage::PostgresStorage;
///
/// let store = PostgresStorage::connect("postgres://abkit@127.0.0.1:5432/abkit")?;
/// let lab = Lab::builder().storage(Arc::new(store)).build()?;
/// # Ok(()) }
/// ```
pub struct PostgresStorage {
    config: postgres::Config,
    shown: String,
    options: PostgresOptions,
    pool: Pool,
    listener: Mutex<Option<Client>>,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStorage")
            .field("database", &self.shown)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A failure inside an operation: the server's, or the store's own.
enum Fail {
    Pg(postgres::Error),
    Store(StorageError),
}

impl From<postgres::Error> for Fail {
    fn from(e: postgres::Error) -> Fail {
        Fail::Pg(e)
    }
}

impl From<StorageError> for Fail {
    fn from(e: StorageError) -> Fail {
        Fail::Store(e)
    }
}

type Op<T> = Result<T, Fail>;

/// Whether the server asks for the transaction to be tried again.
fn is_retryable(e: &postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    })
}

/// The storage error a server error is.
fn map_pg(e: &postgres::Error) -> StorageError {
    let Some(db) = e.as_db_error() else {
        return StorageError::Backend(if e.is_closed() {
            format!("postgresql connection lost: {e}")
        } else {
            format!("postgresql: {e}")
        });
    };
    let code = db.code();
    let text = format!("{} ({})", db.message(), code.code());
    if *code == SqlState::DISK_FULL || *code == SqlState::OUT_OF_MEMORY {
        StorageError::Full(text)
    } else if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
        StorageError::ReadOnly(text)
    } else if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::UNDEFINED_COLUMN {
        StorageError::Corrupt(format!(
            "the abkit tables are not as abkit made them: {text}"
        ))
    } else if code.code().starts_with("08") || code.code().starts_with("57P") {
        StorageError::Backend(format!("postgresql connection lost: {text}"))
    } else {
        StorageError::Backend(format!("postgresql: {text}"))
    }
}

fn into_storage(f: Fail) -> StorageError {
    match f {
        Fail::Pg(e) => map_pg(&e),
        Fail::Store(e) => e,
    }
}

/// Runs `f` where the synchronous client may block: off any tokio runtime's threads.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| match s.spawn(f).join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    } else {
        f()
    }
}

// ---- the connection pool ------------------------------------------------------------------

/// A small blocking pool: idle connections, a count of open ones, and a condition variable
/// for callers waiting on a full pool.
struct Pool {
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    idle: Vec<Client>,
    open: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connection borrowed from the pool; returned on drop unless it broke.
struct Pooled<'a> {
    store: &'a PostgresStorage,
    client: Option<Client>,
}

impl Pooled<'_> {
    fn client(&mut self) -> Result<&mut Client, StorageError> {
        self.client
            .as_mut()
            .ok_or_else(|| StorageError::Backend("postgresql connection was discarded".into()))
    }

    /// Drops the connection instead of returning it (it is closed or in an unknown state).
    fn discard(&mut self) {
        if self.client.take().is_some() {
            let mut s = lock(&self.store.pool.state);
            s.open = s.open.saturating_sub(1);
            self.store.pool.freed.notify_one();
        }
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let mut s = lock(&self.store.pool.state);
            if c.is_closed() {
                s.open = s.open.saturating_sub(1);
            } else {
                s.idle.push(c);
            }
            self.store.pool.freed.notify_one();
        }
    }
}

impl Drop for PostgresStorage {
    fn drop(&mut self) {
        // A client's drop closes its connection by blocking on its own runtime, which tokio
        // refuses on a runtime's thread: close them where blocking is allowed.
        let idle = std::mem::take(&mut lock(&self.pool.state).idle);
        let listener = lock(&self.listener).take();
        off_runtime(move || drop((idle, listener)));
    }
}

impl PostgresStorage {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database` or a
    /// `key=value` connection string), creating or migrating abkit's tables.
    ///
    /// # Errors
    ///
    /// [`StorageError::Backend`] for a bad URL or an unreachable server;
    /// [`StorageError::Schema`] for tables written by a newer abkit.
    pub fn connect(url: &str) -> Result<PostgresStorage, StorageError> {
        PostgresStorage::connect_with(url, PostgresOptions::default())
    }

    /// [`PostgresStorage::connect`] with options.
    ///
    /// # Errors
    ///
    /// As [`PostgresStorage::connect`].
    pub fn connect_with(
        url: &str,
        options: PostgresOptions,
    ) -> Result<PostgresStorage, StorageError> {
        let mut config: postgres::Config = url.parse().map_err(|e| {
            StorageError::Backend(format!("{:?} is not a postgresql url: {e}", redact(url)))
        })?;
        config.connect_timeout(options.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("abkit");
        }
        let store = PostgresStorage {
            config,
            shown: redact(url),
            options,
            pool: Pool {
                state: Mutex::new(PoolState {
                    idle: Vec::new(),
                    open: 0,
                }),
                freed: Condvar::new(),
            },
            listener: Mutex::new(None),
        };
        off_runtime(|| {
            let mut c = store.acquire()?;
            schema::prepare(c.client()?)
        })?;
        Ok(store)
    }

    /// The database this store is on, with any password replaced by `***`.
    pub fn database(&self) -> &str {
        &self.shown
    }

    fn open_client(&self) -> Result<Client, StorageError> {
        self.config.connect(NoTls).map_err(|e| {
            StorageError::Backend(format!(
                "cannot connect to postgresql at {}: {e}",
                self.shown
            ))
        })
    }

    /// A connection: an idle one, a new one while the pool has room, or the next freed.
    fn acquire(&self) -> Result<Pooled<'_>, StorageError> {
        let deadline = Instant::now() + self.options.acquire_timeout;
        let mut s = lock(&self.pool.state);
        loop {
            if let Some(c) = s.idle.pop() {
                if c.is_closed() {
                    s.open = s.open.saturating_sub(1);
                    continue;
                }
                return Ok(Pooled {
                    store: self,
                    client: Some(c),
                });
            }
            if s.open < self.options.pool_size {
                s.open += 1;
                drop(s);
                return match self.open_client() {
                    Ok(c) => Ok(Pooled {
                        store: self,
                        client: Some(c),
                    }),
                    Err(e) => {
                        let mut s = lock(&self.pool.state);
                        s.open = s.open.saturating_sub(1);
                        self.pool.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StorageError::Backend(format!(
                    "no postgresql connection free within {:?} (pool size {})",
                    self.options.acquire_timeout, self.options.pool_size
                )));
            }
            s = self
                .pool
                .freed
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Runs `f` in a transaction, retrying serialization failures and deadlocks, and a
    /// connection found dead before the transaction began.
    fn transact<T: Send>(
        &self,
        f: impl Fn(&mut Transaction<'_>) -> Op<T> + Send + Sync,
    ) -> Result<T, StorageError> {
        self.run(false, f)
    }

    /// Runs a read in one read-only `REPEATABLE READ` transaction, so all its queries see one
    /// snapshot (the change feed's position, its oldest entry and its entries agree).
    fn read<T: Send>(
        &self,
        f: impl Fn(&mut Transaction<'_>) -> Op<T> + Send + Sync,
    ) -> Result<T, StorageError> {
        self.run(true, f)
    }

    fn run<T: Send>(
        &self,
        snapshot_read: bool,
        f: impl Fn(&mut Transaction<'_>) -> Op<T> + Send + Sync,
    ) -> Result<T, StorageError> {
        off_runtime(|| {
            let mut attempt = 0u32;
            let mut stale_connections = 0usize;
            loop {
                let mut pooled = self.acquire()?;
                // Whether `BEGIN` went through: after that, a lost connection may have lost a
                // transaction the server rolled back, or one it committed (a lost `COMMIT`
                // answer), so it is reported, never retried here.
                let mut began = false;
                let result = (|| -> Op<T> {
                    let client = pooled.client()?;
                    let mut tx = if snapshot_read {
                        client
                            .build_transaction()
                            .isolation_level(postgres::IsolationLevel::RepeatableRead)
                            .read_only(true)
                            .start()?
                    } else {
                        client.transaction()?
                    };
                    began = true;
                    let v = f(&mut tx)?;
                    tx.commit()?;
                    Ok(v)
                })();
                match result {
                    Ok(v) => return Ok(v),
                    Err(Fail::Pg(e)) if is_retryable(&e) && attempt < self.options.retries => {
                        attempt += 1;
                        drop(pooled);
                        std::thread::sleep(Duration::from_millis(2u64 << attempt.min(8)));
                    }
                    Err(Fail::Pg(e))
                        if e.is_closed()
                            || pooled.client.as_ref().is_some_and(Client::is_closed) =>
                    {
                        pooled.discard();
                        // A connection the server closed while it sat in the pool (a restart)
                        // fails at `BEGIN`, before anything was sent: try a fresh one, once per
                        // pooled connection.
                        if !began && stale_connections < self.options.pool_size {
                            stale_connections += 1;
                            continue;
                        }
                        return Err(map_pg(&e));
                    }
                    Err(f) => return Err(into_storage(f)),
                }
            }
        })
    }
}

/// `url` with its password (if any) replaced by `***`.
fn redact(url: &str) -> String {
    if let Some(rest) = url.split_once("://").map(|x| x.1)
        && let Some((userinfo, _)) = rest.split_once('@')
        && let Some((_, password)) = userinfo.split_once(':')
    {
        return url.replacen(&format!(":{password}@"), ":***@", 1);
    }
    let mut out = Vec::new();
    for part in url.split_whitespace() {
        if part.starts_with("password=") {
            out.push("password=***".to_owned());
        } else {
            out.push(part.to_owned());
        }
    }
    out.join(" ")
}

// ---- configuration records ----------------------------------------------------------------

fn decode_record(row: &postgres::Row) -> Op<Record> {
    let kind: String = row.try_get(0)?;
    let id: String = row.try_get(1)?;
    let version: i64 = row.try_get(2)?;
    let unique_key: Option<String> = row.try_get(3)?;
    let body: String = row.try_get(4)?;
    Ok(sql::decode_record(&kind, id, version, unique_key, &body)?)
}

fn stored_version(tx: &mut Transaction<'_>, kind: RecordKind, id: &str) -> Op<Option<u64>> {
    let row = tx.query_opt(
        "SELECT version FROM abkit_records WHERE kind = $1 AND id = $2 FOR UPDATE",
        &[&kind.as_str(), &id],
    )?;
    Ok(row
        .map(|r| r.try_get::<_, i64>(0))
        .transpose()?
        .map(|v| from_sql_version(kind, id, v))
        .transpose()?)
}

/// The constraint a unique violation names, as the storage error it is.
fn constraint_error(e: postgres::Error, kind: RecordKind, id: &str, key: Option<&str>) -> Fail {
    let constraint = e
        .as_db_error()
        .filter(|d| *d.code() == SqlState::UNIQUE_VIOLATION)
        .and_then(|d| d.constraint().map(str::to_owned));
    match constraint.as_deref() {
        Some("abkit_records_pkey") => Fail::Store(StorageError::AlreadyExists {
            kind,
            id: id.to_owned(),
        }),
        Some("abkit_records_unique_key") => Fail::Store(StorageError::UniqueViolation {
            kind,
            key: key.unwrap_or_default().to_owned(),
        }),
        _ => Fail::Pg(e),
    }
}

fn put_in(tx: &mut Transaction<'_>, w: &RecordWrite<'_>, expected: Option<u64>) -> Op<u64> {
    let body = serde_json::to_string(w.body).map_err(|e| {
        StorageError::Backend(format!("{} {:?} body cannot be encoded: {e}", w.kind, w.id))
    })?;
    let version = super::next_version(w.kind, w.id, stored_version(tx, w.kind, w.id)?, expected)?;
    if let Some(key) = w.unique_key {
        let taken = tx.query_opt(
            "SELECT 1 FROM abkit_records WHERE kind = $1 AND unique_key = $2 AND id <> $3",
            &[&w.kind.as_str(), &key, &w.id],
        )?;
        if taken.is_some() {
            return Err(Fail::Store(StorageError::UniqueViolation {
                kind: w.kind,
                key: key.to_owned(),
            }));
        }
    }
    let sql_version = to_sql_version(version)?;
    let written = if expected.is_none() {
        tx.execute(
            "INSERT INTO abkit_records (kind, id, version, unique_key, body) \
             VALUES ($1, $2, $3, $4, $5)",
            &[&w.kind.as_str(), &w.id, &sql_version, &w.unique_key, &body],
        )
    } else {
        tx.execute(
            "UPDATE abkit_records SET version = $3, unique_key = $4, body = $5 \
             WHERE kind = $1 AND id = $2",
            &[&w.kind.as_str(), &w.id, &sql_version, &w.unique_key, &body],
        )
    };
    written.map_err(|e| constraint_error(e, w.kind, w.id, w.unique_key))?;
    Ok(version)
}

fn delete_in(tx: &mut Transaction<'_>, kind: RecordKind, id: &str, expected: u64) -> Op<()> {
    super::check_version(kind, id, stored_version(tx, kind, id)?, Some(expected))?;
    tx.execute(
        "DELETE FROM abkit_records WHERE kind = $1 AND id = $2",
        &[&kind.as_str(), &id],
    )?;
    Ok(())
}

/// Takes the change counter's lock, advances it, appends the changed records to the feed and
/// notifies listeners (delivered when the transaction commits).
fn feed(tx: &mut Transaction<'_>, changed: &[(RecordKind, &str)]) -> Op<()> {
    let row = tx.query_one(
        "UPDATE abkit_change_counter SET seq = seq + 1 WHERE id = 1 RETURNING seq",
        &[],
    )?;
    let seq: i64 = row.try_get(0)?;
    let kinds: Vec<&str> = changed.iter().map(|(k, _)| k.as_str()).collect();
    let ids: Vec<&str> = changed.iter().map(|(_, id)| *id).collect();
    tx.execute(
        "INSERT INTO abkit_changes (seq, n, kind, id) \
         SELECT $1, t.n, t.kind, t.id FROM unnest($2::text[], $3::text[]) \
         WITH ORDINALITY AS t(kind, id, n)",
        &[&seq, &kinds, &ids],
    )?;
    if seq % 1_000 == 0 {
        tx.execute(
            "DELETE FROM abkit_changes WHERE seq <= $1",
            &[&(seq - FEED_KEEP)],
        )?;
    }
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &seq.to_string()])?;
    Ok(())
}

/// Locks the batch's experiments for the transaction, in ascending key order.
fn lock_experiments<'e>(
    tx: &mut Transaction<'_>,
    experiments: impl IntoIterator<Item = &'e str>,
) -> Op<()> {
    let mut keys: Vec<i64> = experiments.into_iter().map(lock_key).collect();
    keys.sort_unstable();
    keys.dedup();
    tx.execute(
        "SELECT pg_advisory_xact_lock(t.k) FROM unnest($1::bigint[]) WITH ORDINALITY AS t(k, n) \
         ORDER BY t.n",
        &[&keys],
    )?;
    Ok(())
}

/// The advisory lock key of an experiment's event data: a stable hash, the same in every
/// instance.
fn lock_key(experiment: &str) -> i64 {
    let h = twox_hash::XxHash3_64::oneshot_with_seed(0xab_c0de, experiment.as_bytes());
    i64::from_le_bytes(h.to_le_bytes())
}

// ---- events ---------------------------------------------------------------------------------

fn unit_from_row(row: &postgres::Row, experiment: &str, unit: &str) -> Op<(i64, UnitState, u32)> {
    let rowid: i64 = row.try_get("id")?;
    let variant: i32 = row.try_get("variant")?;
    let at: i64 = row.try_get("exposed_at")?;
    let excluded: bool = row.try_get("excluded")?;
    let values: Vec<u8> = row.try_get("metric_values")?;
    let ids: i32 = row.try_get("event_ids")?;
    let state = UnitState::new(
        variant_index(experiment, i64::from(variant))?,
        Timestamp::from_unix_millis(at),
        excluded,
        blob::decode_values(&values)?,
    );
    let ids = u32::try_from(ids).map_err(|_| {
        StorageError::Corrupt(format!(
            "unit {unit:?} of experiment {experiment:?} has {ids} event ids"
        ))
    })?;
    Ok((rowid, state, ids))
}

/// A unit of the batch, as loaded and as the batch leaves it.
struct Local<'a> {
    experiment: &'a str,
    unit: &'a str,
    rowid: Option<i64>,
    state: Option<UnitState>,
    event_ids: u32,
    dirty: bool,
}

fn apply_in(tx: &mut Transaction<'_>, events: &[UnitEvent<'_>]) -> Op<Vec<EventOutcome>> {
    // The batch's look-ups and updates join a few thousand keys against tables of millions of
    // rows: index probes, always. The planner cannot see an array parameter's length and would
    // otherwise pick a hash join over a full scan (measured: 25 ms instead of 2 ms per 1 000
    // units at 50 000 stored).
    tx.batch_execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")?;
    lock_experiments(tx, events.iter().map(|e| e.experiment))?;
    // The batch's distinct units.
    let mut index: HashMap<(&str, &str), usize> = HashMap::with_capacity(events.len());
    let mut locals: Vec<Local<'_>> = Vec::new();
    let mut of_event: Vec<usize> = Vec::with_capacity(events.len());
    for e in events {
        let next = locals.len();
        let i = *index.entry((e.experiment, e.unit)).or_insert(next);
        if i == next {
            locals.push(Local {
                experiment: e.experiment,
                unit: e.unit,
                rowid: None,
                state: None,
                event_ids: 0,
                dirty: false,
            });
        }
        of_event.push(i);
    }
    let exps: Vec<&str> = locals.iter().map(|l| l.experiment).collect();
    let units: Vec<&str> = locals.iter().map(|l| l.unit).collect();
    let rows = tx.query(
        "SELECT u.id, u.experiment, u.unit, u.variant, u.exposed_at, u.excluded, \
         u.metric_values, u.event_ids FROM abkit_units u \
         JOIN unnest($1::text[], $2::text[]) AS k(experiment, unit) \
         ON u.experiment = k.experiment AND u.unit = k.unit",
        &[&exps, &units],
    )?;
    let mut by_rowid: HashMap<i64, usize> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let experiment: &str = row.try_get("experiment")?;
        let unit: &str = row.try_get("unit")?;
        let Some(&i) = index.get(&(experiment, unit)) else {
            continue;
        };
        let (rowid, state, ids) = unit_from_row(row, experiment, unit)?;
        if let Some(l) = locals.get_mut(i) {
            l.rowid = Some(rowid);
            l.state = Some(state);
            l.event_ids = ids;
        }
        by_rowid.insert(rowid, i);
    }
    // The event ids the batch repeats that were remembered before it.
    let mut seen: HashSet<(usize, u32, &str)> = HashSet::new();
    {
        let mut q_units = Vec::new();
        let mut q_scopes = Vec::new();
        let mut q_ids = Vec::new();
        for (e, &i) in events.iter().zip(&of_event) {
            if let (Some(id), Some(rowid)) = (e.event_id, locals.get(i).and_then(|l| l.rowid)) {
                q_units.push(rowid);
                q_scopes.push(i32::try_from(e.id_scope()).unwrap_or(i32::MAX));
                q_ids.push(id);
            }
        }
        if !q_ids.is_empty() {
            let rows = tx.query(
                "SELECT e.unit_id, e.scope, e.event_id FROM abkit_event_ids e \
                 JOIN unnest($1::bigint[], $2::int[], $3::text[]) AS k(unit_id, scope, event_id) \
                 ON e.unit_id = k.unit_id AND e.scope = k.scope AND e.event_id = k.event_id",
                &[&q_units, &q_scopes, &q_ids],
            )?;
            for row in &rows {
                let rowid: i64 = row.try_get(0)?;
                let scope: i32 = row.try_get(1)?;
                let id: String = row.try_get(2)?;
                // Keep the batch's own `&str` (its lifetime is the batch's).
                if let (Some(&i), Some(q)) =
                    (by_rowid.get(&rowid), q_ids.iter().find(|q| **q == id))
                {
                    seen.insert((i, u32::try_from(scope).unwrap_or(u32::MAX), q));
                }
            }
        }
    }
    let mut out = Vec::with_capacity(events.len());
    let mut new_ids: Vec<(usize, u32, &str)> = Vec::new();
    let mut deltas: HashMap<&str, ExactTotals> = HashMap::new();
    for (e, &i) in events.iter().zip(&of_event) {
        let Some(l) = locals.get_mut(i) else {
            return Err(Fail::Store(StorageError::Backend(
                "batch unit index".into(),
            )));
        };
        let scope = e.id_scope();
        if let Some(id) = e.event_id
            && seen.contains(&(i, scope, id))
        {
            out.push(EventOutcome::DuplicateEventId);
            continue;
        }
        if let Some(r) = e.check_event_id(l.event_ids) {
            out.push(EventOutcome::Rejected(r));
            continue;
        }
        let (outcome, delta) = UnitState::apply(&mut l.state, e.at, &e.kind);
        if outcome.is_stored() && l.state.is_some() {
            l.dirty = true;
            if let Some(id) = e.event_id {
                l.event_ids = l.event_ids.saturating_add(1);
                seen.insert((i, scope, id));
                new_ids.push((i, scope, id));
            }
        }
        if let Some(d) = delta {
            deltas.entry(e.experiment).or_default().apply(&d);
        }
        out.push(outcome);
    }
    write_units(tx, &mut locals)?;
    if !new_ids.is_empty() {
        let mut units = Vec::with_capacity(new_ids.len());
        let mut scopes = Vec::with_capacity(new_ids.len());
        let mut ids = Vec::with_capacity(new_ids.len());
        for (i, scope, id) in new_ids {
            let rowid = locals
                .get(i)
                .and_then(|l| l.rowid)
                .ok_or_else(|| StorageError::Backend("event id of a unit not written".into()))?;
            units.push(rowid);
            scopes.push(i32::try_from(scope).unwrap_or(i32::MAX));
            ids.push(id);
        }
        tx.execute(
            "INSERT INTO abkit_event_ids (unit_id, scope, event_id) \
             SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[])",
            &[&units, &scopes, &ids],
        )?;
    }
    flush_totals(tx, &deltas)?;
    Ok(out)
}

/// Inserts the batch's new units (learning their row ids) and updates the changed ones.
fn write_units(tx: &mut Transaction<'_>, locals: &mut [Local<'_>]) -> Op<()> {
    let mut ins_exp = Vec::new();
    let mut ins_unit = Vec::new();
    let mut ins_variant = Vec::new();
    let mut ins_at = Vec::new();
    let mut ins_excluded = Vec::new();
    let mut ins_values: Vec<Vec<u8>> = Vec::new();
    let mut ins_ids = Vec::new();
    let mut upd_rowid = Vec::new();
    let mut upd_values: Vec<Vec<u8>> = Vec::new();
    let mut upd_ids = Vec::new();
    for l in locals.iter() {
        let (true, Some(s)) = (l.dirty, &l.state) else {
            continue;
        };
        let mut values = Vec::new();
        blob::encode_values(&s.values(), &mut values);
        let ids = i32::try_from(l.event_ids).unwrap_or(i32::MAX);
        match l.rowid {
            Some(rowid) => {
                upd_rowid.push(rowid);
                upd_values.push(values);
                upd_ids.push(ids);
            }
            None => {
                ins_exp.push(l.experiment);
                ins_unit.push(l.unit);
                ins_variant.push(i32::try_from(s.variant).unwrap_or(i32::MAX));
                ins_at.push(s.exposed_at.unix_millis());
                ins_excluded.push(s.excluded);
                ins_values.push(values);
                ins_ids.push(ids);
            }
        }
    }
    if !upd_rowid.is_empty() {
        tx.execute(
            "UPDATE abkit_units u SET metric_values = k.v, event_ids = k.n \
             FROM unnest($1::bigint[], $2::bytea[], $3::int[]) AS k(id, v, n) WHERE u.id = k.id",
            &[&upd_rowid, &upd_values, &upd_ids],
        )?;
    }
    if !ins_exp.is_empty() {
        let rows = tx.query(
            "INSERT INTO abkit_units \
             (experiment, unit, variant, exposed_at, excluded, metric_values, event_ids) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], $5::bool[], \
             $6::bytea[], $7::int[]) RETURNING id, experiment, unit",
            &[
                &ins_exp,
                &ins_unit,
                &ins_variant,
                &ins_at,
                &ins_excluded,
                &ins_values,
                &ins_ids,
            ],
        )?;
        let mut fresh: HashMap<(&str, &str), i64> = HashMap::with_capacity(rows.len());
        for row in &rows {
            fresh.insert((row.try_get(1)?, row.try_get(2)?), row.try_get(0)?);
        }
        for l in locals.iter_mut().filter(|l| l.rowid.is_none() && l.dirty) {
            l.rowid = fresh.get(&(l.experiment, l.unit)).copied();
        }
    }
    Ok(())
}

fn participants_of(experiment: &str, v: usize, p: i64) -> Result<u64, StorageError> {
    u64::try_from(p).map_err(|_| {
        StorageError::Corrupt(format!(
            "experiment {experiment:?} variant {v} has {p} participants"
        ))
    })
}

/// Adds the batch's accumulated changes to the stored totals.
fn flush_totals(tx: &mut Transaction<'_>, deltas: &HashMap<&str, ExactTotals>) -> Op<()> {
    if deltas.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = deltas.keys().copied().collect();
    let rows = tx.query(
        "SELECT experiment, variant, participants, metrics FROM abkit_totals \
         WHERE experiment = ANY($1)",
        &[&names],
    )?;
    let mut stored: HashMap<(String, i32), (i64, Vec<u8>)> = HashMap::with_capacity(rows.len());
    for row in &rows {
        stored.insert(
            (row.try_get(0)?, row.try_get(1)?),
            (row.try_get(2)?, row.try_get(3)?),
        );
    }
    let mut exps = Vec::new();
    let mut variants = Vec::new();
    let mut participants = Vec::new();
    let mut metrics: Vec<Vec<u8>> = Vec::new();
    for (experiment, delta) in deltas {
        for (i, d) in delta.variants.iter().enumerate() {
            if d.participants == 0 && d.metrics.is_empty() {
                continue;
            }
            let variant =
                i32::try_from(i).map_err(|_| StorageError::Backend("variant index".into()))?;
            let (p, mut m) = match stored.get(&((*experiment).to_owned(), variant)) {
                Some((p, m)) => (participants_of(experiment, i, *p)?, blob::decode_totals(m)?),
                None => (0, Vec::new()),
            };
            if m.len() < d.metrics.len() {
                m.resize_with(d.metrics.len(), ExactMetricTotals::default);
            }
            for (t, x) in m.iter_mut().zip(&d.metrics) {
                t.merge(x);
            }
            exps.push(*experiment);
            variants.push(variant);
            participants.push(i64::try_from(p.saturating_add(d.participants)).unwrap_or(i64::MAX));
            metrics.push(blob::encode_totals(&m));
        }
    }
    tx.execute(
        "INSERT INTO abkit_totals (experiment, variant, participants, metrics) \
         SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bytea[]) \
         ON CONFLICT (experiment, variant) DO UPDATE SET \
         participants = excluded.participants, metrics = excluded.metrics",
        &[&exps, &variants, &participants, &metrics],
    )?;
    Ok(())
}

fn load_totals(tx: &mut Transaction<'_>, experiment: &str) -> Op<ExperimentTotals> {
    let rows = tx.query(
        "SELECT variant, participants, metrics FROM abkit_totals WHERE experiment = $1 \
         ORDER BY variant",
        &[&experiment],
    )?;
    let mut totals = ExperimentTotals::default();
    for row in &rows {
        let variant: i32 = row.try_get(0)?;
        let participants: i64 = row.try_get(1)?;
        let metrics: Vec<u8> = row.try_get(2)?;
        let v = variant_index(experiment, i64::from(variant))? as usize;
        if totals.variants.len() <= v {
            totals.variants.resize_with(v + 1, VariantTotals::default);
        }
        if let Some(t) = totals.variants.get_mut(v) {
            t.participants = participants_of(experiment, v, participants)?;
            t.metrics = blob::rounded(&blob::decode_totals(&metrics)?);
        }
    }
    Ok(totals)
}

impl Storage for PostgresStorage {
    fn get_record(&self, kind: RecordKind, id: &str) -> Result<Option<Record>, StorageError> {
        self.read(|tx| {
            tx.query_opt(
                "SELECT kind, id, version, unique_key, body FROM abkit_records \
                 WHERE kind = $1 AND id = $2",
                &[&kind.as_str(), &id],
            )?
            .map(|r| decode_record(&r))
            .transpose()
        })
    }

    fn list_records(&self, kind: RecordKind) -> Result<Vec<Record>, StorageError> {
        self.read(|tx| {
            tx.query(
                "SELECT kind, id, version, unique_key, body FROM abkit_records \
                 WHERE kind = $1 ORDER BY id COLLATE \"C\"",
                &[&kind.as_str()],
            )?
            .iter()
            .map(decode_record)
            .collect()
        })
    }

    fn put_record(&self, w: RecordWrite<'_>, expected: Option<u64>) -> Result<u64, StorageError> {
        self.transact(|tx| {
            feed(tx, &[(w.kind, w.id)])?;
            put_in(tx, &w, expected)
        })
    }

    fn delete_record(&self, kind: RecordKind, id: &str, expected: u64) -> Result<(), StorageError> {
        self.transact(|tx| {
            feed(tx, &[(kind, id)])?;
            delete_in(tx, kind, id, expected)
        })
    }

    fn commit(&self, changes: &[RecordChange<'_>]) -> Result<Vec<u64>, StorageError> {
        super::check_distinct(changes)?;
        let changed: Vec<(RecordKind, &str)> = changes
            .iter()
            .filter(|c| !matches!(c, RecordChange::Check { .. }))
            .map(RecordChange::target)
            .collect();
        self.transact(|tx| {
            if !changed.is_empty() {
                feed(tx, &changed)?;
            }
            let mut versions = Vec::with_capacity(changes.len());
            for c in changes {
                versions.push(match c {
                    RecordChange::Put { write, expected } => put_in(tx, write, *expected)?,
                    RecordChange::Delete { kind, id, expected } => {
                        delete_in(tx, *kind, id, *expected)?;
                        0
                    }
                    RecordChange::Check { kind, id, expected } => {
                        let stored = stored_version(tx, *kind, id)?;
                        super::check_version(*kind, id, stored, *expected)?
                    }
                });
            }
            Ok(versions)
        })
    }

    fn apply_events(&self, events: &[UnitEvent<'_>]) -> Result<Vec<EventOutcome>, StorageError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.transact(|tx| apply_in(tx, events))
    }

    fn unit_state(&self, experiment: &str, unit: &str) -> Result<Option<UnitState>, StorageError> {
        self.read(|tx| {
            let row = tx.query_opt(
                "SELECT id, variant, exposed_at, excluded, metric_values, event_ids \
                 FROM abkit_units WHERE experiment = $1 AND unit = $2",
                &[&experiment, &unit],
            )?;
            Ok(row
                .map(|r| unit_from_row(&r, experiment, unit))
                .transpose()?
                .map(|(_, state, _)| state))
        })
    }

    fn totals(&self, experiment: &str) -> Result<ExperimentTotals, StorageError> {
        self.read(|tx| load_totals(tx, experiment))
    }

    fn purge_events(&self, experiment: &str) -> Result<(), StorageError> {
        self.transact(|tx| {
            lock_experiments(tx, [experiment])?;
            for sql in [
                "DELETE FROM abkit_event_ids WHERE unit_id IN \
                 (SELECT id FROM abkit_units WHERE experiment = $1)",
                "DELETE FROM abkit_units WHERE experiment = $1",
                "DELETE FROM abkit_totals WHERE experiment = $1",
                "DELETE FROM abkit_sticky WHERE experiment = $1",
            ] {
                tx.execute(sql, &[&experiment])?;
            }
            Ok(())
        })
    }

    fn sticky_assignments(&self, unit: &str) -> Result<Vec<(String, String)>, StorageError> {
        self.read(|tx| {
            tx.query(
                "SELECT experiment, variant FROM abkit_sticky WHERE unit = $1 \
                 ORDER BY experiment COLLATE \"C\"",
                &[&unit],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
        })
    }

    fn save_sticky_assignments(
        &self,
        unit: &str,
        assignments: &[(&str, &str)],
    ) -> Result<(), StorageError> {
        if assignments.is_empty() {
            return Ok(());
        }
        let exps: Vec<&str> = assignments.iter().map(|a| a.0).collect();
        let variants: Vec<&str> = assignments.iter().map(|a| a.1).collect();
        self.transact(|tx| {
            tx.execute(
                "INSERT INTO abkit_sticky (unit, experiment, variant) \
                 SELECT $1, k.e, k.v FROM unnest($2::text[], $3::text[]) AS k(e, v) \
                 ON CONFLICT (unit, experiment) DO NOTHING",
                &[&unit, &exps, &variants],
            )?;
            Ok(())
        })
    }

    fn change_position(&self) -> Result<Option<u64>, StorageError> {
        self.read(|tx| {
            let seq: i64 = tx
                .query_one("SELECT seq FROM abkit_change_counter WHERE id = 1", &[])?
                .try_get(0)?;
            Ok(Some(u64::try_from(seq).unwrap_or(0)))
        })
    }

    fn changes_since(&self, since: u64) -> Result<Option<ConfigChanges>, StorageError> {
        let since = i64::try_from(since).unwrap_or(i64::MAX);
        self.read(|tx| {
            let seq: i64 = tx
                .query_one("SELECT seq FROM abkit_change_counter WHERE id = 1", &[])?
                .try_get(0)?;
            let position = u64::try_from(seq).unwrap_or(0);
            let oldest: Option<i64> = tx
                .query_one("SELECT min(seq) FROM abkit_changes", &[])?
                .try_get(0)?;
            // A position of another database (or a restored backup), or one the feed no
            // longer reaches back to: reload everything.
            if !sql::feed_reaches(since, seq, oldest) {
                return Ok(Some(ConfigChanges {
                    position,
                    records: None,
                }));
            }
            let mut records = Vec::new();
            for row in tx.query(
                "SELECT kind, id FROM abkit_changes WHERE seq > $1 AND seq <= $2 ORDER BY seq, n",
                &[&since, &seq],
            )? {
                let kind: String = row.try_get(0)?;
                records.push((sql::feed_kind(&kind)?, row.try_get::<_, String>(1)?));
            }
            Ok(Some(ConfigChanges {
                position,
                records: Some(records),
            }))
        })
    }

    fn wait_for_change(&self, timeout: Duration) -> Result<bool, StorageError> {
        off_runtime(|| {
            let mut listener = lock(&self.listener);
            if listener.as_ref().is_none_or(Client::is_closed) {
                *listener = None;
                let mut c = self.open_client()?;
                c.batch_execute(&format!("LISTEN {CHANNEL}"))
                    .map_err(|e| map_pg(&e))?;
                *listener = Some(c);
                // Anything may have changed while no one listened: the caller should look.
                return Ok(true);
            }
            let Some(c) = listener.as_mut() else {
                return Ok(true);
            };
            let signalled = {
                let mut notes = c.notifications();
                let first = notes.timeout_iter(timeout).next();
                match first {
                    Ok(Some(_)) => {
                        // Coalesce whatever else is already here.
                        let mut more = notes.iter();
                        while let Ok(Some(_)) = more.next() {}
                        Ok(true)
                    }
                    Err(e) => Err(map_pg(&e)),
                    Ok(None) => Ok(false),
                }
            };
            if signalled.is_err() {
                *listener = None;
            }
            signalled
        })
    }
}
