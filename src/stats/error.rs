//! The error type of the analysis plane.

use thiserror::Error;

/// Why an analysis request (or a power calculation) was rejected.
///
/// Every message names the offending field with a JSON-style path and the bad value, e.g.
/// `metrics[1].data.treatment.sum: 300 is greater than count 250`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StatsError {
    /// A field of the request (or an argument of a power function) is missing or out of range.
    #[error("{field}: {reason}")]
    InvalidField {
        /// Path of the field, e.g. `metrics[0].data.control.count` or `baseline`.
        field: String,
        /// What is wrong with it, naming the value.
        reason: String,
    },
    /// The request is not valid JSON at all.
    #[error("invalid json: {message}")]
    Json {
        /// The parser's message, with line and column.
        message: String,
    },
}

impl StatsError {
    /// The path of the offending field, when the error concerns one.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::stats::{StatsError, sample_size_mean};
    ///
    /// let err = sample_size_mean(-1.0, 0.5, 0.05, 0.8).unwrap_err();
    /// assert_eq!(err.field(), Some("variance"));
    /// ```
    #[must_use]
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::InvalidField { field, .. } => Some(field),
            Self::Json { .. } => None,
        }
    }
}

/// Shorthand for an [`StatsError::InvalidField`].
pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> StatsError {
    StatsError::InvalidField {
        field: field.into(),
        reason: reason.into(),
    }
}
