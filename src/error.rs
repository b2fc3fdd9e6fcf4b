//! The crate's error types.
//!
//! Each plane has its own enum; [`Error`] is what the facade returns and wraps them all.

use crate::lifecycle::{Operation, Status};

/// Invalid input: names the field and the value, and says what would be valid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// An identifier that is empty, too long or contains control characters.
    #[error("{kind} {value:?} {reason}")]
    InvalidId {
        /// What kind of id (`experiment id`, `variant id`, …).
        kind: &'static str,
        /// The offending value (truncated to 64 characters).
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Any other invalid field.
    #[error("{field}: {message}")]
    Field {
        /// The field's path, such as `variants[1].traffic`.
        field: String,
        /// What is wrong with its value, naming the value.
        message: String,
    },
}

impl ValidationError {
    /// An invalid `field` with a message that names the value.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ValidationError {
        ValidationError::Field {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The field this error is about.
    pub fn field_name(&self) -> &str {
        match self {
            ValidationError::InvalidId { kind, .. } => kind,
            ValidationError::Field { field, .. } => field,
        }
    }

    /// The same error, reported under `prefix` (`variants[2]` + `id` → `variants[2].id`).
    #[must_use]
    pub fn within(self, prefix: &str) -> ValidationError {
        match self {
            ValidationError::Field { field, message } => ValidationError::Field {
                field: format!("{prefix}.{field}"),
                message,
            },
            other @ ValidationError::InvalidId { .. } => {
                ValidationError::field(prefix, other.to_string())
            }
        }
    }
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
    /// The thing conflicts with one that exists (a duplicate key, an overlapping layer range).
    #[error("{0}")]
    Conflict(String),
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
    /// The analysis could not be computed (too few units, say); the message names the field.
    #[error(transparent)]
    Stats(#[from] crate::stats::StatsError),
    /// The host's storage failed; nothing was changed.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

impl Error {
    pub(crate) fn not_found(kind: &'static str, id: impl Into<String>) -> Error {
        Error::NotFound {
            kind,
            id: id.into(),
        }
    }
}
