//! The source APIs' payload shapes, and nothing else: one module per document of
//! `../shared/seeds/` ([`flow`], [`feed`], [`flag`]), each with the request bodies it accepts and
//! the responses it writes, exactly as the document shows them (names, casing, nesting,
//! integers vs floats, `{"data": …}` envelopes, `meta`). Domain types serialize to one canonical
//! camelCase form; these wrap them. Shared by the three: the [`Data`] envelope, the error body
//! ([`ApiError`]), list parameters ([`list_query`]) and the assign request ([`AssignRequest`]).
//!
//! Architecture invariant: `wire` depends on the planes and nothing depends on `wire` except the
//! `http` feature's router; no other module knows a source API's JSON.
//!
//! ```
//! use abkit::wire::Data;
//! let body = serde_json::to_value(Data { data: serde_json::json!({"ok": true}) })?;
//! assert_eq!(body, serde_json::json!({"data": {"ok": true}}));
//! # Ok::<(), serde_json::Error>(())
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::control::ListQuery;
use crate::decision::context::Context;
use crate::error::{Conflict, Error};
use crate::model::lifecycle::Status;
use crate::model::validation::ValidationError;
use crate::storage::{Rejection, StorageError};

pub mod feed;
pub mod flag;
pub mod flow;

/// The envelope every documented response but the flag API's evaluate uses: `{"data": …}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Data<T> {
    /// The payload.
    pub data: T,
}

impl<T> Data<T> {
    /// `{"data": data}`.
    pub fn new(data: T) -> Data<T> {
        Data { data }
    }
}

/// `{"data": {"ok": true}}`: the flag API's track answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Acknowledged {
    /// Always `true`.
    pub ok: bool,
}

/// An error as every route writes it: `{"error": {"code", "message", "field"}}` with its HTTP
/// status. The documents show no error bodies; this one is abkit's, the same for the three APIs.
///
/// ```
/// use abkit::wire::ApiError;
/// let e = ApiError::from_error(&abkit::Error::NotFound { kind: "experiment", id: "x".into() });
/// assert_eq!((e.status, e.code), (404, "not_found"));
/// assert_eq!(
///     serde_json::to_value(&e)?,
///     serde_json::json!({"error": {"code": "not_found", "message": "experiment \"x\" not found", "field": null}})
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status: 400, 401, 403, 404, 409, 413, 422, 503.
    pub status: u16,
    /// A stable machine-readable code (`validation`, `not_found`, `conflict`, …).
    pub code: &'static str,
    /// A lowercase sentence naming the value.
    pub message: String,
    /// The request field at fault, when one is.
    pub field: Option<String>,
}

impl Serialize for ApiError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Detail<'a> {
            code: &'a str,
            message: &'a str,
            field: Option<&'a str>,
        }
        #[derive(Serialize)]
        struct Body<'a> {
            error: Detail<'a>,
        }
        Body {
            error: Detail {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
        }
        .serialize(s)
    }
}

impl ApiError {
    /// An error with no field.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// 400 `validation` at `field`.
    pub fn validation(e: &ValidationError) -> ApiError {
        ApiError {
            status: 400,
            code: "validation",
            message: e.to_string(),
            field: Some(e.field_name().to_owned()),
        }
    }

    /// 404 `not_found` for `kind` `id`: also what a key of another project gets, so ids don't
    /// leak.
    pub fn not_found(kind: &str, id: &str) -> ApiError {
        ApiError::new(404, "not_found", format!("{kind} {id:?} not found"))
    }

    /// 422 `invalid_json`: a body that is not JSON or not of the route's shape.
    pub fn invalid_json(message: impl Into<String>) -> ApiError {
        ApiError::new(422, "invalid_json", message)
    }

    /// The status, code and field of an [`Error`]: validation 400, not found 404, lifecycle,
    /// version, exclusivity and state-dependent event rejections 409, invalid events 400,
    /// analysis options 400, storage unavailable 503. Never a 500 for caller input: only a
    /// corrupt store is one.
    pub fn from_error(e: &Error) -> ApiError {
        let message = e.to_string();
        let (status, code, field) = match e {
            Error::Validation(v) => (400, "validation", Some(v.field_name().to_owned())),
            Error::Lifecycle { .. } => (409, "lifecycle", Some("status".to_owned())),
            Error::NotFound { .. } => (404, "not_found", None),
            Error::Conflict(c) => (
                409,
                match c {
                    Conflict::Version { .. } => "version_conflict",
                    Conflict::AlreadyExists { .. } | Conflict::FlagKeyTaken { .. } => {
                        "already_exists"
                    }
                    _ => "conflict",
                },
                None,
            ),
            Error::Rejected { reason, .. } => match reason {
                Rejection::NotEnrolled | Rejection::BeforeExposure | Rejection::OutsideWindow => {
                    (409, "rejected", None)
                }
                Rejection::InvalidValue => (400, "validation", Some("value".to_owned())),
                Rejection::InvalidEventId | Rejection::TooManyEventIds => {
                    (400, "validation", Some("eventId".to_owned()))
                }
            },
            Error::Stats(_) => (400, "validation", None),
            Error::Storage(s) => match s {
                StorageError::UniqueViolation { .. } => (409, "already_exists", None),
                StorageError::NotFound { .. } => (404, "not_found", None),
                StorageError::Corrupt(_) | StorageError::Schema(_) => {
                    (500, "storage_corrupt", None)
                }
                _ => (503, "storage_unavailable", None),
            },
        };
        ApiError {
            status,
            code,
            message,
            field,
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        ApiError::from_error(&e)
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> ApiError {
        ApiError::validation(&e)
    }
}

/// A list's query parameters (`page`, `limit`, `status`; the documents type `page` and `limit`
/// as strings, so `"2"` and `2` are both accepted) as a [`ListQuery`]. Unknown parameters are
/// refused, so a misspelt filter never silently lists everything.
///
/// ```
/// let q = abkit::wire::list_query([("page", "2"), ("limit", "10"), ("status", "running")])?;
/// assert_eq!((q.page, q.limit, q.status), (2, 10, Some(abkit::Status::Running)));
/// assert!(abkit::wire::list_query([("page", "two")]).is_err());
/// # Ok::<(), abkit::ValidationError>(())
/// ```
///
/// # Errors
///
/// [`ValidationError`] naming the parameter and its value.
pub fn list_query<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<ListQuery, ValidationError> {
    let mut q = ListQuery::default();
    for (name, value) in params {
        match name {
            "page" => q.page = number(name, value)?,
            "limit" => q.limit = number(name, value)?,
            "status" => q.status = Some(status(value)?),
            other => {
                return Err(ValidationError::field(
                    other,
                    format!("unknown query parameter {other:?}; expected page, limit or status"),
                ));
            }
        }
    }
    q.validate()?;
    Ok(q)
}

fn number(field: &str, value: &str) -> Result<u32, ValidationError> {
    value
        .trim()
        .parse()
        .map_err(|_| ValidationError::field(field, format!("{value:?} is not a whole number")))
}

/// A status as the documents write it (`draft`, `running`, `stopped`, `completed`, `archived`).
///
/// # Errors
///
/// [`ValidationError`] at `status` naming the value.
pub fn status(value: &str) -> Result<Status, ValidationError> {
    Status::ALL
        .into_iter()
        .find(|s| s.as_str() == value)
        .ok_or_else(|| {
            ValidationError::field(
                "status",
                format!(
                    "{value:?} is not a status; expected draft, running, stopped, completed or archived"
                ),
            )
        })
}

/// The body of `POST /api/experiments/:id/assign` and `POST /v1/experiments/:id/assign`:
/// `{"userId": …, "attributes": {…}}` (`user_id` accepted).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssignRequest {
    /// The unit.
    #[serde(alias = "user_id")]
    pub user_id: String,
    /// Its targeting attributes.
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

impl AssignRequest {
    /// The decision context: the user as targeting key, the attributes as they are.
    pub fn context(&self) -> Context {
        self.attributes
            .iter()
            .fold(Context::new(self.user_id.as_str()), |ctx, (k, v)| {
                ctx.with_attribute(k, v.clone())
            })
    }
}

/// Parses a JSON request body into `T`, as a 422 naming where it failed.
///
/// # Errors
///
/// [`ApiError::invalid_json`] with serde's message (line, column, the field it expected).
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::invalid_json(format!("invalid body: {e}")))
}
