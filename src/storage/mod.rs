//! Persistence supplied by the host: the [`Storage`] trait, the in-memory default and the
//! conformance suite every implementation should pass.
//!
//! The trait has two halves.
//!
//! * **Configuration** (experiments, flags, audiences, saved groups, layers, settings) is a set of
//!   versioned JSON documents, one table in a SQL database. Every write names the version it was
//!   based on, so two service instances never silently overwrite each other: a stale write is a
//!   [`StorageError::VersionConflict`].
//! * **Events** (exposures, conversions, metric values, covariates) are applied as batches of
//!   [`UnitEvent`]s, atomically: a batch is applied wholly or not at all. The arithmetic — what
//!   an event does to a unit's [`UnitState`] and to the per-variant [`VariantTotals`] — is shared
//!   code ([`UnitState::apply`]); an implementation supplies atomicity and de-duplication, not
//!   maths.
//!
//! Implementations: [`MemoryStorage`] (the embedded default), `SqliteStorage` (feature `sqlite`)
//! and `PostgresStorage` (feature `postgres`, for a fleet of instances on one database). Run
//! [`conformance::run`] in your own implementation's tests.
//!
//! A store shared by several processes may also keep a **change feed** of configuration
//! writes ([`Storage::change_position`], [`Storage::changes_since`],
//! [`Storage::wait_for_change`]): what `fleet::Watcher` follows to keep every instance's
//! snapshot current. The defaults say "no feed", which is right for a store only one process
//! uses.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod blob;
pub mod conformance;
mod exact;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
mod state;

pub use exact::ExactSum;
pub use memory::MemoryStorage;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStorage};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteOptions, SqliteStorage, Synchronous};
pub use state::{
    Aggregation, EventOutcome, ExactMetricTotals, ExactTotals, ExactVariantTotals,
    ExperimentTotals, MetricChange, MetricSlot, MetricTotals, Rejection, TotalsDelta, UnitEvent,
    UnitEventKind, UnitState, UnitValue, VariantTotals,
};
pub use state::{
    MAX_EVENT_ID_LEN, MAX_EVENT_IDS_PER_UNIT, MAX_METRIC_SLOTS, MAX_UNIT_VALUE, MAX_VARIANTS,
};

/// The kinds of configuration documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RecordKind {
    /// An experiment.
    Experiment,
    /// A feature flag.
    Flag,
    /// A named, reusable targeting condition.
    Audience,
    /// A named list of values for `$inGroup`.
    SavedGroup,
    /// A layer (namespace) of mutually exclusive experiments.
    Layer,
    /// Lab-wide settings (the global holdout).
    Settings,
    /// A version guard, not configuration: a start writes the claim of its experiment's flag
    /// (`flag:{id}`) and layer (`layer:{id}`) in the same [`Storage::commit`], so two processes
    /// starting conflicting experiments at once conflict in storage.
    Claim,
    /// An API key of the `http` feature: its name, project, scope and the SHA-256 digest of
    /// its secret (never the secret).
    ApiKey,
}

impl RecordKind {
    /// Every kind.
    pub const ALL: [RecordKind; 8] = [
        RecordKind::Experiment,
        RecordKind::Flag,
        RecordKind::Audience,
        RecordKind::SavedGroup,
        RecordKind::Layer,
        RecordKind::Settings,
        RecordKind::Claim,
        RecordKind::ApiKey,
    ];

    /// The kind's name (`experiment`, `saved_group`, …), stable: databases store it.
    pub const fn as_str(self) -> &'static str {
        match self {
            RecordKind::Experiment => "experiment",
            RecordKind::Flag => "flag",
            RecordKind::Audience => "audience",
            RecordKind::SavedGroup => "saved_group",
            RecordKind::Layer => "layer",
            RecordKind::Settings => "settings",
            RecordKind::Claim => "claim",
            RecordKind::ApiKey => "api_key",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<RecordKind> {
        RecordKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored configuration document.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// What it is.
    pub kind: RecordKind,
    /// Its id, unique within the kind.
    pub id: String,
    /// Its version: 1 when inserted, +1 on every write.
    pub version: u64,
    /// A second key unique within the kind, if any (a flag's project/environment/key).
    pub unique_key: Option<String>,
    /// The document.
    pub body: Value,
}

/// What a store's change feed holds after a position: [`Storage::changes_since`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigChanges {
    /// The feed's position now: pass it to the next call.
    pub position: u64,
    /// The records written after the position asked about, oldest first (a record may appear
    /// more than once); `None` when the feed no longer reaches back that far (or the position
    /// is not this store's): reload everything.
    pub records: Option<Vec<(RecordKind, String)>>,
}

/// A configuration write.
#[derive(Clone, Copy, Debug)]
pub struct RecordWrite<'a> {
    /// What it is.
    pub kind: RecordKind,
    /// Its id.
    pub id: &'a str,
    /// A second key that must be unique within the kind.
    pub unique_key: Option<&'a str>,
    /// The document.
    pub body: &'a Value,
}

/// One change of an atomic [`Storage::commit`].
#[derive(Clone, Copy, Debug)]
pub enum RecordChange<'a> {
    /// Inserts (`expected = None`) or replaces (`expected = Some(version)`) a record, as
    /// [`Storage::put_record`].
    Put {
        /// The record.
        write: RecordWrite<'a>,
        /// The version it replaces (`None`: an insert).
        expected: Option<u64>,
    },
    /// Deletes a record at version `expected`, as [`Storage::delete_record`].
    Delete {
        /// Its kind.
        kind: RecordKind,
        /// Its id.
        id: &'a str,
        /// The version deleted.
        expected: u64,
    },
    /// Writes nothing; fails unless the record's version is `expected` (`None`: absent).
    Check {
        /// Its kind.
        kind: RecordKind,
        /// Its id.
        id: &'a str,
        /// The version it must have (`None`: it must not exist).
        expected: Option<u64>,
    },
}

impl RecordChange<'_> {
    /// The record it names.
    pub fn target(&self) -> (RecordKind, &str) {
        match self {
            RecordChange::Put { write, .. } => (write.kind, write.id),
            RecordChange::Delete { kind, id, .. } | RecordChange::Check { kind, id, .. } => {
                (*kind, id)
            }
        }
    }
}

/// Refuses a commit that names one record twice (its changes would depend on their order).
///
/// # Errors
///
/// [`StorageError::Backend`] naming the record.
pub fn check_distinct(changes: &[RecordChange<'_>]) -> Result<(), StorageError> {
    for (i, c) in changes.iter().enumerate() {
        let t = c.target();
        if changes.iter().take(i).any(|d| d.target() == t) {
            return Err(StorageError::Backend(format!(
                "commit names {} {:?} twice",
                t.0, t.1
            )));
        }
    }
    Ok(())
}

/// What a [`RecordChange::Check`] finds: `Ok` when the record's version `stored` is `expected`.
///
/// # Errors
///
/// `VersionConflict` (a different version), `NotFound` (absent but expected), `AlreadyExists`
/// (present but expected absent).
pub fn check_version(
    kind: RecordKind,
    id: &str,
    stored: Option<u64>,
    expected: Option<u64>,
) -> Result<u64, StorageError> {
    match (stored, expected) {
        (None, None) => Ok(0),
        (Some(v), Some(e)) if v == e => Ok(v),
        (Some(found), Some(e)) => Err(StorageError::VersionConflict {
            kind,
            id: id.to_owned(),
            expected: e,
            found,
        }),
        (None, Some(_)) => Err(StorageError::NotFound {
            kind,
            id: id.to_owned(),
        }),
        (Some(_), None) => Err(StorageError::AlreadyExists {
            kind,
            id: id.to_owned(),
        }),
    }
}

/// A storage failure. Nothing was changed by the call that returned it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The record changed since it was read: re-read and retry.
    #[error("{kind} {id:?} was changed concurrently: expected version {expected}, found {found}")]
    VersionConflict {
        /// The record's kind.
        kind: RecordKind,
        /// Its id.
        id: String,
        /// The version the write was based on.
        expected: u64,
        /// The version stored.
        found: u64,
    },
    /// An insert of an id that exists.
    #[error("{kind} {id:?} already exists")]
    AlreadyExists {
        /// The record's kind.
        kind: RecordKind,
        /// Its id.
        id: String,
    },
    /// An insert or update whose unique key another record has.
    #[error("{kind} with key {key:?} already exists")]
    UniqueViolation {
        /// The record's kind.
        kind: RecordKind,
        /// The duplicated key.
        key: String,
    },
    /// An update or delete of a record that does not exist.
    #[error("{kind} {id:?} not found in storage")]
    NotFound {
        /// The record's kind.
        kind: RecordKind,
        /// Its id.
        id: String,
    },
    /// The database refuses writes (opened read-only).
    #[error("storage is read-only: {0}")]
    ReadOnly(String),
    /// The database is full.
    #[error("storage is full: {0}")]
    Full(String),
    /// The stored data is not what abkit wrote (a corrupt or foreign file, an unreadable document).
    #[error("storage is corrupt or foreign: {0}")]
    Corrupt(String),
    /// The database was written by a newer abkit, or its schema cannot be migrated.
    #[error("incompatible storage schema: {0}")]
    Schema(String),
    /// Any other failure of the backend (I/O, lock timeout, connection loss).
    #[error("storage backend error: {0}")]
    Backend(String),
}

/// The version a configuration write gives a record, or why it is refused: the optimistic
/// versioning rule every [`Storage`] shares. `stored` is the record's current version (`None`:
/// absent); `expected` is the write's (`None`: an insert).
///
/// # Errors
///
/// `AlreadyExists` (insert of an existing id), `NotFound` (update of a missing one),
/// `VersionConflict` (a stale update), `Backend` (a version that would overflow).
///
/// # Examples
///
/// ```
/// use abkit::storage::{next_version, RecordKind};
///
/// assert_eq!(next_version(RecordKind::Flag, "f", None, None)?, 1);
/// assert_eq!(next_version(RecordKind::Flag, "f", Some(3), Some(3))?, 4);
/// assert!(next_version(RecordKind::Flag, "f", Some(4), Some(3)).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn next_version(
    kind: RecordKind,
    id: &str,
    stored: Option<u64>,
    expected: Option<u64>,
) -> Result<u64, StorageError> {
    match (stored, expected) {
        (Some(_), None) => Err(StorageError::AlreadyExists {
            kind,
            id: id.to_owned(),
        }),
        (None, Some(_)) => Err(StorageError::NotFound {
            kind,
            id: id.to_owned(),
        }),
        (Some(found), Some(v)) if found != v => Err(StorageError::VersionConflict {
            kind,
            id: id.to_owned(),
            expected: v,
            found,
        }),
        (Some(found), Some(_)) => found
            .checked_add(1)
            .ok_or_else(|| StorageError::Backend(format!("{kind} {id:?} version overflows"))),
        (None, None) => Ok(1),
    }
}

/// The host's database. Every method is a `Result`; none may panic.
///
/// Requirements (checked by [`conformance::run`]):
/// * `put_record` with `expected = None` inserts, failing with `AlreadyExists` when the id exists
///   and `UniqueViolation` when another record of the kind has the same `unique_key`; with
///   `expected = Some(v)` it replaces the record only if its stored version is `v`
///   (`VersionConflict` otherwise, `NotFound` if absent). It returns the new version.
/// * `commit` applies its changes atomically, each by the rules of `put_record`,
///   `delete_record` and [`check_version`]: two processes that both commit a change to one
///   record based on the same version cannot both succeed.
/// * `apply_events` applies a batch atomically (all or nothing) and in order, each event through
///   [`UnitState::apply`] on the state of its (experiment, unit), de-duplicating event ids per
///   (experiment, unit); it returns one outcome per event.
/// * Concurrent calls never lose an update.
pub trait Storage: Send + Sync + fmt::Debug {
    /// The record `id` of `kind`.
    fn get_record(&self, kind: RecordKind, id: &str) -> Result<Option<Record>, StorageError>;

    /// Every record of `kind`, sorted by id.
    fn list_records(&self, kind: RecordKind) -> Result<Vec<Record>, StorageError>;

    /// Inserts (`expected = None`) or replaces (`expected = Some(version)`) a record; returns its
    /// new version.
    fn put_record(
        &self,
        write: RecordWrite<'_>,
        expected: Option<u64>,
    ) -> Result<u64, StorageError>;

    /// Deletes a record if its stored version is `expected`.
    fn delete_record(&self, kind: RecordKind, id: &str, expected: u64) -> Result<(), StorageError>;

    /// Applies `changes` atomically: all of them, or (on the first that fails, whose error is
    /// returned) none. Returns one version per change: a put's new version, a check's version
    /// (0 for an absent record), 0 for a delete. A commit naming one record twice is refused
    /// ([`check_distinct`]).
    fn commit(&self, changes: &[RecordChange<'_>]) -> Result<Vec<u64>, StorageError>;

    /// Applies a batch of events atomically; one outcome per event.
    fn apply_events(&self, events: &[UnitEvent<'_>]) -> Result<Vec<EventOutcome>, StorageError>;

    /// Applies one event. The default calls [`apply_events`](Self::apply_events).
    fn apply_event(&self, event: &UnitEvent<'_>) -> Result<EventOutcome, StorageError> {
        let mut out = self.apply_events(std::slice::from_ref(event))?;
        out.pop()
            .ok_or_else(|| StorageError::Backend("apply_events returned no outcome".into()))
    }

    /// The state of `unit` in `experiment`, if it is enrolled.
    fn unit_state(&self, experiment: &str, unit: &str) -> Result<Option<UnitState>, StorageError>;

    /// The per-variant totals of `experiment` (empty when nothing was recorded).
    fn totals(&self, experiment: &str) -> Result<ExperimentTotals, StorageError>;

    /// Removes every event, unit state, total and sticky assignment of `experiment` (a
    /// deleted experiment leaves nothing a later one with the same id could inherit).
    fn purge_events(&self, experiment: &str) -> Result<(), StorageError>;

    /// The sticky assignments of `unit`: (experiment id, variant id) pairs.
    fn sticky_assignments(&self, unit: &str) -> Result<Vec<(String, String)>, StorageError>;

    /// Stores sticky assignments of `unit`, keeping any that exist (insert-if-absent).
    fn save_sticky_assignments(
        &self,
        unit: &str,
        assignments: &[(&str, &str)],
    ) -> Result<(), StorageError>;

    /// The position of this store's configuration change feed: a number that grows with every
    /// configuration write committed, by any process. `None` (the default): the store keeps no
    /// feed, because no other process writes to it.
    fn change_position(&self) -> Result<Option<u64>, StorageError> {
        Ok(None)
    }

    /// The configuration records written after feed position `since`. `None` (the default):
    /// no feed.
    fn changes_since(&self, since: u64) -> Result<Option<ConfigChanges>, StorageError> {
        let _ = since;
        Ok(None)
    }

    /// Waits until another process may have written configuration or `timeout` passes;
    /// `true` when a change was signalled (or cannot be ruled out). The default sleeps for
    /// `timeout` and says `true`: a caller then polls [`Storage::change_position`].
    fn wait_for_change(&self, timeout: std::time::Duration) -> Result<bool, StorageError> {
        std::thread::sleep(timeout);
        Ok(true)
    }
}
