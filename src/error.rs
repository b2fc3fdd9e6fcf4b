//! The facade's error: [`Error`], the [`Conflict`]s it distinguishes, and [`Result`].
//!
//! Each plane has its own typed error ([`ValidationError`], [`crate::storage::StorageError`],
//! [`crate::stats::StatsError`], [`crate::targeting::ConditionError`]); [`Error`] wraps them
//! with `#[source]` kept, so `std::error::Error::source` walks to the cause.

use crate::model::lifecycle::{Operation, Status};
pub use crate::model::validation::ValidationError;
use crate::storage::StorageError;

/// `Result` with the facade's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Two things that cannot both hold: the second write loses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Conflict {
    /// The record changed since the caller read it (optimistic concurrency): re-read and retry.
    #[error("{kind} {id:?} was changed since version {expected} was read (it is now {found})")]
    Version {
        /// What kind of record.
        kind: &'static str,
        /// Its id.
        id: String,
        /// The version the caller read.
        expected: u64,
        /// The version stored.
        found: u64,
    },
    /// An experiment's layer range overlaps a running experiment of the layer, or the layer's
    /// holdout (`other` is `None` then).
    #[error(
        "layer range {start}..{end} of experiment {experiment:?} overlaps {} in layer {layer:?}",
        match other { Some(o) => format!("running experiment {o:?}"), None => "the layer's holdout".to_owned() }
    )]
    LayerOverlap {
        /// The experiment being started.
        experiment: String,
        /// The layer.
        layer: String,
        /// Its range start.
        start: u16,
        /// Its range end.
        end: u16,
        /// The running experiment it overlaps (`None`: the layer's holdout).
        other: Option<String>,
    },
    /// Another flag already has this key in the project and environment.
    #[error("flag key {key:?} already exists in project {project:?} (environment {environment:?})")]
    FlagKeyTaken {
        /// The project.
        project: String,
        /// The key.
        key: String,
        /// The environment (`*` for every environment).
        environment: String,
    },
    /// The flag already runs an experiment in this environment.
    #[error(
        "flag {flag:?} already has running experiment {running:?} in environment {environment:?}; stop it first"
    )]
    RunningOnFlag {
        /// The flag's key.
        flag: String,
        /// The experiment running on it.
        running: String,
        /// The environment (`*` for every environment).
        environment: String,
    },
    /// The flag cannot be deleted while an experiment attached to it runs.
    #[error("flag {flag:?} has running experiment {running:?}; stop it first")]
    FlagHasRunningExperiment {
        /// The flag's key.
        flag: String,
        /// The running experiment.
        running: String,
    },
    /// A record cannot be deleted while a running experiment uses it.
    #[error("{kind} {id:?} is used by running experiment {by:?}; stop it first")]
    InUse {
        /// What kind of record.
        kind: &'static str,
        /// Its id.
        id: String,
        /// The running experiment that uses it.
        by: String,
    },
    /// A record with this id exists already.
    #[error("{kind} {id:?} already exists")]
    AlreadyExists {
        /// What kind of record.
        kind: &'static str,
        /// Its id.
        id: String,
    },
}

/// What the facade ([`crate::Lab`]) returns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Invalid input.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The lifecycle forbids the operation in the experiment's current status.
    #[error("cannot {operation} experiment {id:?}: it is {status}")]
    Lifecycle {
        /// The experiment.
        id: String,
        /// What was attempted.
        operation: Operation,
        /// Its status at the time.
        status: Status,
    },
    /// No such thing.
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// What kind of thing (`experiment`, `flag`, …).
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The change conflicts with what exists (a stale version, a taken key, an overlap).
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// An event that was not counted, with the reason.
    #[error("event for unit {unit:?} of experiment {experiment:?} rejected: {}", reason.as_str())]
    Rejected {
        /// The experiment.
        experiment: String,
        /// The unit.
        unit: String,
        /// Why.
        reason: crate::storage::Rejection,
    },
    /// The analysis could not be computed (invalid options, say); the message names the field.
    #[error(transparent)]
    Stats(#[from] crate::stats::StatsError),
    /// The host's storage failed; nothing was changed.
    #[error(transparent)]
    Storage(StorageError),
}

impl From<StorageError> for Error {
    /// A stale write is a [`Conflict::Version`] (the caller's to resolve); an insert of an id
    /// that exists a [`Conflict::AlreadyExists`]; everything else a storage failure.
    fn from(e: StorageError) -> Error {
        match e {
            StorageError::VersionConflict {
                kind,
                id,
                expected,
                found,
            } => Error::Conflict(Conflict::Version {
                kind: kind.as_str(),
                id,
                expected,
                found,
            }),
            StorageError::AlreadyExists { kind, id } => Error::Conflict(Conflict::AlreadyExists {
                kind: kind.as_str(),
                id,
            }),
            other => Error::Storage(other),
        }
    }
}

impl Error {
    pub(crate) fn not_found(kind: &'static str, id: impl Into<String>) -> Error {
        Error::NotFound {
            kind,
            id: id.into(),
        }
    }
}
