//! Errors from parsing and binding conditions.

use serde_json::Value;

/// Longest rendering of an offending JSON value in an error message, in characters.
const MAX_SHOWN: usize = 80;

/// A condition that cannot be parsed or bound.
///
/// Every variant carries a JSON-pointer-like `path` to the offending part of the condition, such
/// as `/country/$in` or `/$or/1/age/$gt` (`/` alone is the condition itself; `~` and `/` inside keys
/// are escaped as `~0` and `~1`), so the message reads
/// `condition at /country/$in: expected an array, got "US"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConditionError {
    /// A condition (the whole, or one inside `$and`, `$or`, `$nor`, `$not`, `$elemMatch`) is not a
    /// JSON object.
    #[error("condition at {path}: expected an object, got {got}")]
    ExpectedObject {
        /// Where in the condition.
        path: String,
        /// The offending value, as compact JSON (shortened when long).
        got: String,
    },
    /// An operator abkit does not know (GrowthBook evaluates these to `false`).
    #[error("condition at {path}: unknown operator {operator}")]
    UnknownOperator {
        /// Where in the condition.
        path: String,
        /// The operator, e.g. `$foo`.
        operator: String,
    },
    /// A value operator such as `$in` used at the level of attribute names, where GrowthBook would
    /// read it as an attribute called `$in`.
    #[error(
        "condition at {path}: operator {operator} applies to an attribute, as in {{\"country\": {{\"{operator}\": ...}}}}"
    )]
    OperatorWithoutAttribute {
        /// Where in the condition.
        path: String,
        /// The operator, e.g. `$in`.
        operator: String,
    },
    /// An operator's operand has the wrong type or value.
    #[error("condition at {path}: expected {expected}, got {got}")]
    InvalidOperand {
        /// Where in the condition (ends with the operator, or an index inside its operand).
        path: String,
        /// The operator, e.g. `$in`.
        operator: String,
        /// What the operator takes, e.g. `an array`.
        expected: &'static str,
        /// The offending value, as compact JSON (shortened when long).
        got: String,
    },
    /// A `$regex`/`$regexi` pattern the `regex` crate rejects (a syntax error, or look-around and
    /// back-references, which it does not support).
    #[error("condition at {path}: invalid regex {pattern:?}: {reason}")]
    InvalidRegex {
        /// Where in the condition.
        path: String,
        /// The pattern as written in the condition.
        pattern: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A version operand (`$veq`, `$vgt`, ...) that is not a version.
    #[error("condition at {path}: invalid version {got}: {reason}")]
    InvalidVersion {
        /// Where in the condition.
        path: String,
        /// The offending value, as compact JSON.
        got: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The condition nests deeper than abkit evaluates.
    #[error("condition at {path}: nested deeper than {limit} levels")]
    TooDeep {
        /// Where in the condition the limit was reached.
        path: String,
        /// The nesting limit.
        limit: usize,
    },
    /// `bind` met a `$inGroup`/`$notInGroup` naming a saved group that is not provided.
    #[error("condition at {path}: unknown saved group {group:?}")]
    UnknownGroup {
        /// Where in the condition.
        path: String,
        /// The saved group id.
        group: String,
    },
}

impl ConditionError {
    /// The JSON-pointer-like path to the offending part of the condition, e.g. `/country/$in`.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::targeting::Condition;
    ///
    /// let err = Condition::parse(&serde_json::json!({"country": {"$in": "US"}})).unwrap_err();
    /// assert_eq!(err.path(), "/country/$in");
    /// assert_eq!(err.to_string(), r#"condition at /country/$in: expected an array, got "US""#);
    /// ```
    #[must_use]
    pub fn path(&self) -> &str {
        match self {
            Self::ExpectedObject { path, .. }
            | Self::UnknownOperator { path, .. }
            | Self::OperatorWithoutAttribute { path, .. }
            | Self::InvalidOperand { path, .. }
            | Self::InvalidRegex { path, .. }
            | Self::InvalidVersion { path, .. }
            | Self::TooDeep { path, .. }
            | Self::UnknownGroup { path, .. } => path,
        }
    }
}

/// Compact JSON for an error message, shortened to about [`MAX_SHOWN`] characters.
pub(crate) fn show(v: &Value) -> String {
    let full = v.to_string();
    if full.chars().count() <= MAX_SHOWN {
        return full;
    }
    let mut short: String = full.chars().take(MAX_SHOWN).collect();
    short.push('…');
    short
}
