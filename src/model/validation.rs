//! Invalid input: [`ValidationError`] names the field and the value, and keeps the typed cause.

use crate::allocation::WeightError;
use crate::targeting::ConditionError;

/// Invalid input: names the field and the value, and says what would be valid. Errors of the
/// leaf modules (a condition that does not parse, weights that do not sum) are kept as their
/// typed [`source`](std::error::Error::source).
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
    /// A targeting condition that does not parse or bind.
    #[error("{field}: {source}")]
    Condition {
        /// The field's path, such as `targeting` or `rules[0].condition`.
        field: String,
        /// Why.
        #[source]
        source: ConditionError,
    },
    /// Weights, splits or a traffic fraction that are not valid.
    #[error("{field}: {source}")]
    Weight {
        /// The field's path, such as `variants` or `traffic`.
        field: String,
        /// Why.
        #[source]
        source: WeightError,
    },
    /// An error of a nested field (`variants[2]` of an id error, say), kept typed.
    #[error("{field}: {source}")]
    Within {
        /// The enclosing field's path.
        field: String,
        /// The nested error.
        #[source]
        source: Box<ValidationError>,
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

    /// A condition error at `field`.
    pub fn condition(field: impl Into<String>, source: ConditionError) -> ValidationError {
        ValidationError::Condition {
            field: field.into(),
            source,
        }
    }

    /// A weight or traffic error at `field`.
    pub fn weight(field: impl Into<String>, source: WeightError) -> ValidationError {
        ValidationError::Weight {
            field: field.into(),
            source,
        }
    }

    /// The field this error is about.
    pub fn field_name(&self) -> &str {
        match self {
            ValidationError::InvalidId { kind, .. } => kind,
            ValidationError::Field { field, .. }
            | ValidationError::Condition { field, .. }
            | ValidationError::Weight { field, .. }
            | ValidationError::Within { field, .. } => field,
        }
    }

    /// The same error, reported under `prefix` (`variants[2]` + `id` → `variants[2].id`).
    #[must_use]
    pub fn within(self, prefix: &str) -> ValidationError {
        let join = |field: String| {
            if field.is_empty() {
                prefix.to_owned()
            } else {
                format!("{prefix}.{field}")
            }
        };
        match self {
            ValidationError::Field { field, message } => ValidationError::Field {
                field: join(field),
                message,
            },
            ValidationError::Condition { field, source } => ValidationError::Condition {
                field: join(field),
                source,
            },
            ValidationError::Weight { field, source } => ValidationError::Weight {
                field: join(field),
                source,
            },
            ValidationError::Within { field, source } => ValidationError::Within {
                field: join(field),
                source,
            },
            other @ ValidationError::InvalidId { .. } => ValidationError::Within {
                field: prefix.to_owned(),
                source: Box::new(other),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn typed_sources_are_kept_through_within() {
        let cond = crate::targeting::Condition::parse(&serde_json::json!({"a": {"$bogus": 1}}))
            .expect_err("unknown operator");
        let e = ValidationError::condition("condition", cond.clone()).within("rules[0]");
        assert_eq!(e.field_name(), "rules[0].condition");
        let source = e.source().expect("a source");
        assert_eq!(source.to_string(), cond.to_string());
        assert!(source.downcast_ref::<ConditionError>().is_some());

        let id = ValidationError::InvalidId {
            kind: "variant id",
            value: String::new(),
            reason: "is empty",
        }
        .within("variants[2]");
        assert_eq!(id.field_name(), "variants[2]");
        assert_eq!(id.to_string(), "variants[2]: variant id \"\" is empty");
        assert!(id.source().is_some());
    }
}
