//! What the SQL stores (SQLite, PostgreSQL) share: how a stored row becomes a [`Record`], the
//! checks on stored numbers, and the change feed's rules.

use super::state::MAX_VARIANTS;
use super::{Record, RecordKind, StorageError};

/// How many entries a change feed keeps; a reader further behind reloads everything.
pub(super) const FEED_KEEP: i64 = 100_000;

/// A record version as the database stores it.
pub(super) fn to_sql_version(v: u64) -> Result<i64, StorageError> {
    i64::try_from(v).map_err(|_| StorageError::Backend(format!("version {v} is too large")))
}

/// A stored record version, checked.
pub(super) fn from_sql_version(kind: RecordKind, id: &str, v: i64) -> Result<u64, StorageError> {
    u64::try_from(v).ok().filter(|v| *v >= 1).ok_or_else(|| {
        StorageError::Corrupt(format!("{kind} {id:?} has version {v}, expected >= 1"))
    })
}

/// A stored record row (kind name, id, version, unique key, JSON body), checked.
pub(super) fn decode_record(
    kind: &str,
    id: String,
    version: i64,
    unique_key: Option<String>,
    body: &str,
) -> Result<Record, StorageError> {
    let kind = RecordKind::parse(kind)
        .ok_or_else(|| StorageError::Corrupt(format!("unknown record kind {kind:?}")))?;
    let version = from_sql_version(kind, &id, version)?;
    let body = serde_json::from_str(body)
        .map_err(|e| StorageError::Corrupt(format!("{kind} {id:?} body is not valid json: {e}")))?;
    Ok(Record {
        kind,
        id,
        version,
        unique_key,
        body,
    })
}

/// A stored variant index, checked.
pub(super) fn variant_index(experiment: &str, v: i64) -> Result<u32, StorageError> {
    u32::try_from(v)
        .ok()
        .filter(|v| *v < MAX_VARIANTS)
        .ok_or_else(|| {
            StorageError::Corrupt(format!(
                "experiment {experiment:?} has stored variant index {v}, expected 0..{MAX_VARIANTS}"
            ))
        })
}

/// Whether a feed at position `seq`, whose oldest kept entry is `oldest`, still holds every
/// change after `since` (else the reader reloads everything).
pub(super) fn feed_reaches(since: i64, seq: i64, oldest: Option<i64>) -> bool {
    since <= seq && (since == seq || oldest.is_some_and(|o| o <= since + 1))
}

/// A feed entry's kind name, checked.
pub(super) fn feed_kind(kind: &str) -> Result<RecordKind, StorageError> {
    RecordKind::parse(kind)
        .ok_or_else(|| StorageError::Corrupt(format!("change feed names unknown kind {kind:?}")))
}
