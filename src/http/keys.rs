//! API keys: bearer tokens bound to a project (and an environment where it matters) with a scope,
//! stored through [`Storage`] as SHA-256 digests of their secrets and compared in constant time.
//!
//! A token is `abk_{key id}_{secret}`; the key id finds the record, the secret's digest must
//! match it. The secret is returned once, by [`ApiKeys::create`]; storage never holds it.
//! Verification reads an in-memory index (no I/O per request); a key id the index does not know
//! is looked up in storage once (so a key created by another instance on a shared store works).
//! A revocation takes effect at once through the handle that made it (the router's own, behind
//! `DELETE /api/keys/{id}`); another handle or instance that already verified the key keeps it
//! until it restarts (change propagation across instances is the fleet's).

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::lab::Lab;
use crate::model::validation::ValidationError;
use crate::storage::{RecordKind, RecordWrite, Storage};
use crate::time::{Clock, Timestamp};

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Configuration and everything a client key may do.
    Admin,
    /// Decisions and events: evaluate, assign, track, conversions.
    Client,
}

/// A stored key: everything but its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    /// The key id (the token's middle part).
    pub id: String,
    /// A human name (the audit trail's actor).
    pub name: String,
    /// The project it is bound to; `None`: every project (an instance-wide key).
    pub project: Option<String>,
    /// The environment it is bound to, for evaluation; `None`: every environment.
    pub environment: Option<String>,
    /// What it may do.
    pub scope: Scope,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A key as storage holds it: the key and the lowercase hex SHA-256 of its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredKey {
    #[serde(flatten)]
    key: ApiKey,
    digest: String,
}

/// A request to create a key: `{"name", "project", "environment", "scope"}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewApiKey {
    /// 1 to 200 characters.
    pub name: String,
    /// The project (`project_id` accepted); `None`: every project.
    #[serde(default, alias = "project_id")]
    pub project: Option<String>,
    /// The environment; `None`: every environment.
    #[serde(default)]
    pub environment: Option<String>,
    /// `admin` or `client` (default `client`).
    #[serde(default)]
    pub scope: Option<Scope>,
}

/// Who a request is: the key it presented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The key's name (`admin` for the instance token).
    pub name: String,
    /// The project it may see; `None`: every project.
    pub project: Option<String>,
    /// The environment it may evaluate; `None`: every environment.
    pub environment: Option<String>,
    /// What it may do.
    pub scope: Scope,
}

impl Principal {
    /// Whether the key may see data of `project` (`None`: data with no project, which only
    /// instance-wide keys see).
    pub fn sees(&self, project: Option<&str>) -> bool {
        match &self.project {
            None => true,
            Some(p) => project == Some(p.as_str()),
        }
    }

    /// Whether the key may evaluate in `environment`.
    pub fn may_evaluate(&self, environment: &str) -> bool {
        self.environment.as_deref().is_none_or(|e| e == environment)
    }
}

/// The keys of a lab: create, list, revoke, verify. Cheap to clone (shared state).
#[derive(Clone)]
pub struct ApiKeys {
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    index: Arc<ArcSwap<HashMap<String, Arc<Entry>>>>,
    admin_digest: Option<[u8; 32]>,
    admin: Arc<Principal>,
    /// Key ids recently looked up in storage and not found, so a flood of made-up tokens costs
    /// one storage read per id per [`MISS_TTL`], not one per request (bounded: [`MAX_MISSES`]).
    misses: Arc<std::sync::Mutex<HashMap<String, std::time::Instant>>>,
}

/// How long an unknown key id is answered from memory before storage is asked again (a key
/// created meanwhile by another instance works after at most this long).
const MISS_TTL: std::time::Duration = std::time::Duration::from_secs(5);
/// At most this many unknown ids are remembered; beyond, the oldest memory is dropped.
const MAX_MISSES: usize = 4096;

/// A key id as [`ApiKeys::create`] makes them: 16 lowercase hex digits.
fn is_key_id(id: &str) -> bool {
    id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("storage", &self.storage)
            .field("admin_token", &self.admin_digest.is_some())
            .finish_non_exhaustive()
    }
}

const PREFIX: &str = "abk_";

/// A verified key as the index holds it: the secret's digest and the principal it stands for.
#[derive(Debug)]
struct Entry {
    digest: [u8; 32],
    principal: Arc<Principal>,
}

impl Entry {
    fn of(stored: &StoredKey) -> Option<Entry> {
        let key = &stored.key;
        Some(Entry {
            digest: unhex(&stored.digest)?,
            principal: Arc::new(Principal {
                name: key.name.clone(),
                project: key.project.clone(),
                environment: key.environment.clone(),
                scope: key.scope,
            }),
        })
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Equal in time independent of where they differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `n` random bytes from the operating system, as lowercase hex.
///
/// # Errors
///
/// A storage-unavailable error when the OS has no randomness to give.
pub(crate) fn random_hex(n: usize) -> Result<String> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| {
        Error::Storage(crate::storage::StorageError::Backend(format!(
            "no randomness for a new key: {e}"
        )))
    })?;
    Ok(hex(&buf))
}

impl ApiKeys {
    /// The keys stored in `lab`'s storage, and `admin_token` (if any) as an instance-wide admin
    /// key named `admin` that is never stored. Stored keys are read on first use, one by one.
    pub fn new(lab: &Lab, admin_token: Option<&str>) -> ApiKeys {
        ApiKeys {
            storage: Arc::clone(lab.storage()),
            clock: Arc::clone(lab.clock()),
            index: Arc::default(),
            misses: Arc::default(),
            admin_digest: admin_token.map(|t| sha256(t.as_bytes())),
            admin: Arc::new(Principal {
                name: "admin".to_owned(),
                project: None,
                environment: None,
                scope: Scope::Admin,
            }),
        }
    }

    /// Changes the index: copy on write (keys change rarely; verification never waits).
    fn update(&self, f: impl Fn(&mut HashMap<String, Arc<Entry>>)) {
        self.index.rcu(|old| {
            let mut next = HashMap::clone(old);
            f(&mut next);
            next
        });
    }

    fn remember(&self, stored: &StoredKey) {
        if let Some(entry) = Entry::of(stored).map(Arc::new) {
            let id = stored.key.id.clone();
            self.update(|m| {
                m.insert(id.clone(), Arc::clone(&entry));
            });
        }
    }

    /// Creates a key; returns it and its token (`abk_{id}_{secret}`), which is shown only now.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for an empty or too long name; a storage failure.
    pub fn create(&self, new: NewApiKey) -> Result<(ApiKey, String)> {
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > crate::model::limits::MAX_NAME_LEN {
            return Err(ValidationError::field(
                "name",
                format!(
                    "{:?} must be 1 to {} characters",
                    new.name,
                    crate::model::limits::MAX_NAME_LEN
                ),
            )
            .into());
        }
        for (field, v) in [("project", &new.project), ("environment", &new.environment)] {
            if v.as_deref().is_some_and(|s| s.is_empty() || s.len() > 200) {
                return Err(
                    ValidationError::field(field, format!("{v:?} must be 1 to 200 bytes")).into(),
                );
            }
        }
        let id = random_hex(8)?;
        let secret = random_hex(32)?;
        let key = StoredKey {
            key: ApiKey {
                id: id.clone(),
                name: name.to_owned(),
                project: new.project,
                environment: new.environment,
                scope: new.scope.unwrap_or(Scope::Client),
                created_at: self.clock.now(),
            },
            digest: hex(&sha256(secret.as_bytes())),
        };
        let body = serde_json::to_value(&key).map_err(|e| {
            Error::Storage(crate::storage::StorageError::Backend(format!(
                "api key does not encode: {e}"
            )))
        })?;
        self.storage.put_record(
            RecordWrite {
                kind: RecordKind::ApiKey,
                id: &id,
                unique_key: None,
                body: &body,
            },
            None,
        )?;
        self.remember(&key);
        Ok((key.key, format!("{PREFIX}{id}_{secret}")))
    }

    /// Every stored key (without digests), by id.
    ///
    /// # Errors
    ///
    /// A storage failure; a stored key that does not decode.
    pub fn list(&self) -> Result<Vec<ApiKey>> {
        self.storage
            .list_records(RecordKind::ApiKey)?
            .iter()
            .map(|r| decode(&r.body).map(|k| k.key))
            .collect()
    }

    /// Revokes key `id`: its token stops working at once on this instance.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; a storage failure.
    pub fn revoke(&self, id: &str) -> Result<()> {
        let r = self
            .storage
            .get_record(RecordKind::ApiKey, id)?
            .ok_or_else(|| Error::NotFound {
                kind: "api key",
                id: id.to_owned(),
            })?;
        self.storage
            .delete_record(RecordKind::ApiKey, id, r.version)?;
        self.update(|m| {
            m.remove(id);
        });
        Ok(())
    }

    /// The principal `token` stands for, from the in-memory index only (no I/O): one SHA-256 of
    /// the secret and a constant-time comparison (the instance token: one of the token). `Err(id)`
    /// when the token is well-formed but its key id is unknown here: look it up with
    /// [`ApiKeys::load`] (it may have been created by another instance).
    pub fn verify_cached(&self, token: &str) -> Result<Option<Arc<Principal>>, String> {
        let parts = token
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('_'));
        if let Some((id, secret)) = parts
            && let Some(entry) = self.index.load().get(id)
        {
            let ok = constant_time_eq(&entry.digest, &sha256(secret.as_bytes()));
            return Ok(ok.then(|| Arc::clone(&entry.principal)));
        }
        if let Some(admin) = &self.admin_digest
            && constant_time_eq(admin, &sha256(token.as_bytes()))
        {
            return Ok(Some(Arc::clone(&self.admin)));
        }
        match parts {
            Some((id, _)) if is_key_id(id) => Err(id.to_owned()),
            _ => Ok(None),
        }
    }

    /// Loads key `id` from storage into the index (a blocking read).
    ///
    /// # Errors
    ///
    /// A storage failure; a stored key that does not decode.
    pub fn load(&self, id: &str) -> Result<bool> {
        match self.storage.get_record(RecordKind::ApiKey, id)? {
            Some(r) => {
                self.remember(&decode(&r.body)?);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Re-reads every key this instance has loaded, dropping those deleted since: call it when
    /// another instance may have revoked one (a [`crate::fleet::Watcher`]'s sync that names
    /// `api_key`). A blocking read per key.
    ///
    /// # Errors
    ///
    /// A storage failure; a stored key that does not decode. Keys re-read before the failure
    /// stay updated.
    pub fn reload(&self) -> Result<()> {
        let ids: Vec<String> = self.index.load().keys().cloned().collect();
        for id in ids {
            if !self.load(&id)? {
                self.update(|m| {
                    m.remove(&id);
                });
            }
        }
        Ok(())
    }

    /// The principal `token` stands for, loading an unknown key id from storage (blocking).
    ///
    /// # Errors
    ///
    /// A storage failure.
    pub fn verify(&self, token: &str) -> Result<Option<Arc<Principal>>> {
        match self.verify_cached(token) {
            Ok(p) => Ok(p),
            Err(id) => {
                let now = std::time::Instant::now();
                let mut misses = self
                    .misses
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if misses
                    .get(&id)
                    .is_some_and(|at| now.duration_since(*at) < MISS_TTL)
                {
                    return Ok(None);
                }
                drop(misses);
                if self.load(&id)? {
                    return Ok(self.verify_cached(token).unwrap_or(None));
                }
                misses = self
                    .misses
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if misses.len() >= MAX_MISSES {
                    misses.retain(|_, at| now.duration_since(*at) < MISS_TTL);
                    if misses.len() >= MAX_MISSES {
                        misses.clear();
                    }
                }
                misses.insert(id, now);
                Ok(None)
            }
        }
    }
}

fn decode(body: &Value) -> Result<StoredKey> {
    serde_json::from_value(body.clone()).map_err(|e| {
        Error::Storage(crate::storage::StorageError::Corrupt(format!(
            "stored api key does not decode: {e}"
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_and_revoke() -> Result<()> {
        let lab = Lab::new();
        let keys = ApiKeys::new(&lab, Some("root"));
        let (key, token) = keys.create(NewApiKey {
            name: "ci".into(),
            project: Some("p1".into()),
            ..NewApiKey::default()
        })?;
        let p = keys.verify(&token)?.ok_or(Error::NotFound {
            kind: "principal",
            id: token.clone(),
        })?;
        assert_eq!((p.project.as_deref(), p.scope), (Some("p1"), Scope::Client));
        let stored = lab.storage().get_record(RecordKind::ApiKey, &key.id)?;
        let body = stored.map(|r| r.body.to_string()).unwrap_or_default();
        let secret = token.rsplit('_').next().unwrap_or_default();
        assert!(!body.contains(secret), "the secret is not stored: {body}");
        assert!(body.contains(&hex(&sha256(secret.as_bytes()))));
        let mut wrong = token.clone();
        wrong.pop();
        wrong.push(if token.ends_with('0') { '1' } else { '0' });
        assert_eq!(keys.verify(&wrong)?, None);
        assert_eq!(keys.verify("root")?.map(|p| p.scope), Some(Scope::Admin));
        assert_eq!(keys.verify("")?, None);
        assert_eq!(keys.verify("abk_nope_x")?, None);
        // A well-formed unknown id is looked up once, then answered from memory.
        assert_eq!(
            keys.verify_cached("abk_0123456789abcdef_x"),
            Err("0123456789abcdef".into())
        );
        assert_eq!(keys.verify("abk_0123456789abcdef_x")?, None);
        assert!(
            keys.misses
                .lock()
                .map(|m| m.contains_key("0123456789abcdef"))
                .unwrap_or(false)
        );
        // Another handle on the same storage (another instance) loads it on first use.
        let other = ApiKeys::new(&lab, None);
        assert!(other.verify(&token)?.is_some());
        keys.revoke(&key.id)?;
        assert_eq!(keys.verify(&token)?, None);
        assert!(keys.list()?.is_empty());
        Ok(())
    }
}
