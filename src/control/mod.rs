//! The control plane: the only writer of configuration.
//!
//! Every write takes the [`Writer`] token (the writer lock, as a type: a function that needs it
//! takes `&mut Writer`), writes one record to storage with optimistic concurrency, folds it into
//! the decoded [`Configuration`] it keeps, and swaps in the snapshot derived from the previous
//! one by [`Snapshot::apply`] — so snapshots are published in the order of the writes, and a
//! write costs one record's compile, not the whole configuration's.
//!
//! Reads (`get`, `list`) go to storage, so they see other processes' writes; [`Control::refresh`]
//! reloads everything (another process's changes to a shared store).
//!
//! Architecture invariant: the control plane imports `model`, `decision`, `storage`, `stats`
//! (the bandit maths of `tick`) and
//! `error`; nothing else writes configuration records.

pub(crate) mod codec;
pub(crate) mod experiments;
pub(crate) mod flags;
pub(crate) mod schedule;
pub(crate) mod targeting;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use crate::control::codec::{ConfigRecord, Versioned, decode, encode};
use crate::decision::snapshot::{Change, Snapshot, SnapshotCell};
use crate::error::{Error, Result};
use crate::model::config::{Audience, Configuration, Layer, SavedGroup, Settings};
use crate::model::experiment::Experiment;
use crate::model::flag::Flag;
use crate::model::ids::IdGenerator;
use crate::model::metric::MetricCatalogue;
use crate::model::validation::ValidationError;
use crate::storage::{ConfigChanges, RecordChange, RecordKind, RecordWrite, Storage};
use crate::time::{Clock, Timestamp};

// The model's limit must fit the store's per-unit layout.
const _: () = assert!(crate::model::limits::MAX_METRIC_SLOTS <= crate::storage::MAX_METRIC_SLOTS);
const _: () = assert!(crate::model::limits::MAX_VARIANTS <= crate::storage::MAX_VARIANTS as usize);

/// A page of a listing: the items and the paging facts. (The flow API's `{data, meta}` form is
/// [`crate::wire::flow::Paged`].)
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Items matching the filter, on every page.
    pub total: u64,
    /// This page, from 1.
    pub page: u32,
    /// Items per page.
    pub limit: u32,
    /// Pages in all (0 when there are no items).
    pub total_pages: u64,
}

impl<T> Page<T> {
    /// The same page with every item mapped.
    ///
    /// # Errors
    ///
    /// The first error `f` returns.
    pub fn try_map<U, E>(self, f: impl FnMut(T) -> Result<U, E>) -> Result<Page<U>, E> {
        Ok(Page {
            items: self.items.into_iter().map(f).collect::<Result<_, E>>()?,
            total: self.total,
            page: self.page,
            limit: self.limit,
            total_pages: self.total_pages,
        })
    }
}

/// Which page of a listing, and which statuses.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ListQuery {
    /// 1-based page number (default 1).
    pub page: u32,
    /// Items per page, 1 to 100 (default 20).
    pub limit: u32,
    /// Only this status. Archived experiments are listed only when asked for.
    pub status: Option<crate::model::lifecycle::Status>,
    /// Only experiments of this project (`None`: every experiment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Only experiments attached to this flag (`None`: every experiment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            page: 1,
            limit: 20,
            status: None,
            project: None,
            flag: None,
        }
    }
}

impl ListQuery {
    /// Checks the paging fields.
    ///
    /// # Errors
    ///
    /// `page` 0; `limit` 0 or over 100.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.page == 0 {
            return Err(ValidationError::field(
                "page",
                "0 is not a page number; pages start at 1",
            ));
        }
        if !(1..=100).contains(&self.limit) {
            return Err(ValidationError::field(
                "limit",
                format!("{} is outside 1..=100", self.limit),
            ));
        }
        Ok(())
    }

    /// The page of `all` (already filtered and sorted) this query asks for.
    pub(crate) fn page_of<T>(&self, all: Vec<T>) -> Page<T> {
        let total = all.len() as u64;
        let limit = u64::from(self.limit.max(1));
        let skip = u64::from(self.page.saturating_sub(1)).saturating_mul(limit);
        let items = all
            .into_iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .take(self.limit as usize)
            .collect();
        Page {
            items,
            total,
            page: self.page,
            limit: self.limit,
            total_pages: total.div_ceil(limit),
        }
    }
}

/// The control plane's state: where records live, the clock and id generator, the decoded
/// configuration (behind the writer lock) and the published snapshot.
pub(crate) struct Control {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    pub(crate) catalogue: MetricCatalogue,
    pub(crate) snapshot: SnapshotCell,
    config: Mutex<Configuration>,
    /// The storage change feed's position the configuration reflects ([`NO_POSITION`]: none
    /// known). Written only under the writer lock.
    position: AtomicU64,
}

/// [`Control::position`] when the store keeps no change feed or nothing was loaded yet.
const NO_POSITION: u64 = u64::MAX;

/// What one [`crate::Lab::sync`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SyncReport {
    /// The store's change-feed position the lab now reflects (`None`: the store keeps no feed,
    /// so there is nothing to follow).
    pub position: Option<u64>,
    /// Records re-read and applied (each recompiling only itself and what depends on it).
    pub applied: usize,
    /// Whether everything was reloaded instead (the feed no longer reached back far enough).
    pub reloaded: bool,
    /// The kinds of the records that changed (the `http` feature reloads its API keys when
    /// `api_key` is among them).
    pub kinds: Vec<RecordKind>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("storage", &self.storage)
            .field("clock", &self.clock)
            .field("ids", &self.ids)
            .field("experiments", &self.snapshot.load().experiment_count())
            .finish_non_exhaustive()
    }
}

/// The writer token: holding one is holding the control plane's writer lock. Functions that
/// must run under the lock take `&mut Writer`, so the rule is checked by the compiler.
pub(crate) struct Writer<'a> {
    control: &'a Control,
    config: MutexGuard<'a, Configuration>,
}

impl Control {
    /// A control plane over `storage`; call [`Control::refresh`] to load it.
    pub(crate) fn new(
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        catalogue: MetricCatalogue,
    ) -> Control {
        Control {
            storage,
            clock,
            ids,
            catalogue,
            snapshot: SnapshotCell::default(),
            config: Mutex::new(Configuration::default()),
            position: AtomicU64::new(NO_POSITION),
        }
    }

    /// Takes the writer lock.
    pub(crate) fn writer(&self) -> Writer<'_> {
        Writer {
            control: self,
            config: self.config.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub(crate) fn new_id(&self, prefix: &str) -> String {
        self.ids.generate(prefix, self.clock.now())
    }

    /// Reloads every configuration record from storage and swaps in a snapshot compiled from
    /// scratch.
    ///
    /// # Errors
    ///
    /// A storage failure or a stored record that does not decode; the old snapshot and
    /// configuration stay.
    pub(crate) fn refresh(&self) -> Result<()> {
        let mut w = self.writer();
        // Read before the records: a write committed during the load is replayed by the next
        // sync (re-applying a record is harmless), never missed.
        let position = self.storage.change_position()?;
        let mut config = Configuration::default();
        load_all::<Experiment>(self, &mut config)?;
        load_all::<Flag>(self, &mut config)?;
        load_all::<Audience>(self, &mut config)?;
        load_all::<SavedGroup>(self, &mut config)?;
        load_all::<Layer>(self, &mut config)?;
        load_all::<Settings>(self, &mut config)?;
        for r in self.storage.list_records(RecordKind::Claim)? {
            config.claims.insert(r.id, r.version);
        }
        // Flag rules' windows: at the last tick's instant, or now when nothing ticked yet.
        config.as_of = w.config.as_of.or_else(|| Some(self.now()));
        let snapshot = Snapshot::compile(&config)?;
        *w.config = config;
        self.snapshot.store(snapshot);
        self.position
            .store(position.unwrap_or(NO_POSITION), Ordering::Release);
        Ok(())
    }

    /// Applies the configuration writes other processes committed to the store since this
    /// control plane last loaded or synced: each changed record is re-read and recompiled with
    /// what depends on it. A store without a change feed makes this a no-op.
    ///
    /// # Errors
    ///
    /// A storage failure or a record that does not decode: what was applied stays, and the
    /// next sync starts again from the same position.
    pub(crate) fn sync(&self) -> Result<SyncReport> {
        let Some(now) = self.storage.change_position()? else {
            return Ok(SyncReport::default());
        };
        let known = self.position.load(Ordering::Acquire);
        if known == now {
            return Ok(SyncReport {
                position: Some(now),
                ..SyncReport::default()
            });
        }
        let changes = if known == NO_POSITION {
            None
        } else {
            self.storage.changes_since(known)?
        };
        let Some(ConfigChanges {
            position,
            records: Some(records),
        }) = changes
        else {
            self.refresh()?;
            return Ok(SyncReport {
                position: Some(self.position.load(Ordering::Acquire)).filter(|p| *p != NO_POSITION),
                reloaded: true,
                ..SyncReport::default()
            });
        };
        let mut w = self.writer();
        // Each record once, at its latest state (the loop reads storage, not the feed's order).
        let mut seen = std::collections::BTreeSet::new();
        let mut kinds = Vec::new();
        let mut applied = 0;
        for (kind, id) in &records {
            if !seen.insert((*kind, id.as_str())) {
                continue;
            }
            if !kinds.contains(kind) {
                kinds.push(*kind);
            }
            if w.reload(*kind, id)? {
                applied += 1;
            }
        }
        self.position.store(position, Ordering::Release);
        Ok(SyncReport {
            position: Some(position),
            applied,
            reloaded: false,
            kinds,
        })
    }

    /// The record `id` of `T`, from storage.
    pub(crate) fn get<T: ConfigRecord>(&self, id: &str) -> Result<Option<Versioned<T>>> {
        self.storage
            .get_record(T::KIND, id)?
            .map(|r| decode(&r))
            .transpose()
    }

    /// The record `id` of `T`, or [`Error::NotFound`].
    pub(crate) fn require<T: ConfigRecord>(&self, id: &str) -> Result<Versioned<T>> {
        self.get(id)?.ok_or_else(|| Error::not_found(T::NAME, id))
    }

    /// Every record of `T`, from storage, sorted by id.
    pub(crate) fn list<T: ConfigRecord>(&self) -> Result<Vec<Versioned<T>>> {
        self.storage
            .list_records(T::KIND)?
            .iter()
            .map(decode)
            .collect()
    }
}

/// The claim records a running experiment holds: its flag's and its layer's.
pub(crate) fn claims_of(e: &Experiment) -> Vec<String> {
    let mut claims = Vec::new();
    if let Some(f) = e.flag_id() {
        claims.push(format!("flag:{f}"));
    }
    if let Some(p) = e.layer() {
        claims.push(format!("layer:{}", p.id));
    }
    claims
}

/// Whether `e` says a claim record changed in storage since this process read it: another
/// process started an experiment on the same flag or layer.
pub(crate) fn is_stale_claim(e: &Error) -> bool {
    matches!(
        e,
        Error::Conflict(
            crate::error::Conflict::Version { kind: "claim", .. }
                | crate::error::Conflict::AlreadyExists { kind: "claim", .. }
        ) | Error::Storage(crate::storage::StorageError::NotFound {
            kind: RecordKind::Claim,
            ..
        })
    )
}

/// How many times a write whose claim was stale re-reads the configuration and tries again.
pub(crate) const CLAIM_RETRIES: usize = 3;

fn load_all<T: ConfigRecord>(control: &Control, config: &mut Configuration) -> Result<()> {
    for v in control.list::<T>()? {
        v.into_inner().store(config);
    }
    Ok(())
}

impl Writer<'_> {
    /// The decoded configuration as this process last wrote or loaded it.
    pub(crate) fn config(&self) -> &Configuration {
        &self.config
    }

    /// The control plane.
    pub(crate) fn control(&self) -> &Control {
        self.control
    }

    /// Writes `value` (an insert when `expected` is `None`, else a replace of that version),
    /// folds it into the configuration and publishes the next snapshot.
    ///
    /// # Errors
    ///
    /// A storage failure (a stale `expected` is [`crate::Conflict::Version`]): nothing changed.
    pub(crate) fn put<T: ConfigRecord>(
        &mut self,
        value: T,
        expected: Option<u64>,
    ) -> Result<Versioned<T>> {
        let body = encode(&value)?;
        let unique_key = value.unique_key();
        let version = self.control.storage.put_record(
            RecordWrite {
                kind: T::KIND,
                id: value.record_id(),
                unique_key: unique_key.as_deref(),
                body: &body,
            },
            expected,
        )?;
        let id = value.record_id().to_owned();
        value.clone().store(&mut self.config);
        self.publish(&T::change(&id))?;
        Ok(Versioned::new(value, version))
    }

    /// Like [`Writer::put`], and in the same atomic [`Storage::commit`] writes the claim records
    /// `claims` at the versions this process knows: if another process claimed one since (it
    /// started a conflicting experiment), nothing is written and the error is a
    /// [`crate::Conflict::Version`] (or `AlreadyExists`) of kind `claim` — refresh and retry.
    ///
    /// # Errors
    ///
    /// As [`Writer::put`]; a stale claim as above.
    pub(crate) fn put_claiming<T: ConfigRecord>(
        &mut self,
        value: T,
        expected: Option<u64>,
        claims: &[String],
        by: &str,
    ) -> Result<Versioned<T>> {
        let body = encode(&value)?;
        let claim_body = serde_json::json!({ "by": by });
        let unique_key = value.unique_key();
        let changes = vec![RecordChange::Put {
            write: RecordWrite {
                kind: T::KIND,
                id: value.record_id(),
                unique_key: unique_key.as_deref(),
                body: &body,
            },
            expected,
        }];
        let versions = self.commit_with_claims(changes, claims, &claim_body)?;
        let version = versions.first().copied().unwrap_or_default();
        let id = value.record_id().to_owned();
        value.clone().store(&mut self.config);
        self.publish(&T::change(&id))?;
        Ok(Versioned::new(value, version))
    }

    /// Commits `changes` (one record's) followed by writes of the claim records `claims` at
    /// the versions this process knows, and remembers the claims' new versions.
    fn commit_with_claims<'c>(
        &mut self,
        mut changes: Vec<RecordChange<'c>>,
        claims: &'c [String],
        claim_body: &'c serde_json::Value,
    ) -> Result<Vec<u64>> {
        let first = changes.len();
        for c in claims {
            changes.push(RecordChange::Put {
                write: RecordWrite {
                    kind: RecordKind::Claim,
                    id: c,
                    unique_key: None,
                    body: claim_body,
                },
                expected: self.config.claims.get(c).copied(),
            });
        }
        let versions = self.control.storage.commit(&changes)?;
        for (c, v) in claims.iter().zip(versions.iter().skip(first)) {
            self.config.claims.insert(c.clone(), *v);
        }
        Ok(versions)
    }

    /// Like [`Writer::delete`], in one atomic commit with a write of the claim records
    /// `claims` at the versions this process knows (see [`Writer::put_claiming`]): a start in
    /// another process since this one read them makes the delete fail, and a start racing it
    /// fails on the claim the delete wrote.
    ///
    /// # Errors
    ///
    /// As [`Writer::delete`]; a stale claim is a conflict of kind `claim`.
    pub(crate) fn delete_claiming<T: ConfigRecord>(
        &mut self,
        id: &str,
        expected: u64,
        claims: &[String],
    ) -> Result<()> {
        let claim_body = serde_json::json!({ "by": format!("delete {id}") });
        let changes = vec![RecordChange::Delete {
            kind: T::KIND,
            id,
            expected,
        }];
        self.commit_with_claims(changes, claims, &claim_body)?;
        T::unstore(id, &mut self.config);
        self.publish(&T::change(id))
    }

    /// Deletes record `id` of `T` at version `expected`, and publishes the next snapshot.
    ///
    /// # Errors
    ///
    /// A storage failure (a stale `expected` is [`crate::Conflict::Version`]): nothing changed.
    pub(crate) fn delete<T: ConfigRecord>(&mut self, id: &str, expected: u64) -> Result<()> {
        self.control.storage.delete_record(T::KIND, id, expected)?;
        T::unstore(id, &mut self.config);
        self.publish(&T::change(id))
    }

    /// Re-reads record `id` of `kind` from storage into the configuration and publishes the
    /// next snapshot; `false` for a kind that is not configuration the snapshot holds.
    fn reload(&mut self, kind: RecordKind, id: &str) -> Result<bool> {
        match kind {
            RecordKind::Experiment => self.reload_one::<Experiment>(id)?,
            RecordKind::Flag => self.reload_one::<Flag>(id)?,
            RecordKind::Audience => self.reload_one::<Audience>(id)?,
            RecordKind::SavedGroup => self.reload_one::<SavedGroup>(id)?,
            RecordKind::Layer => self.reload_one::<Layer>(id)?,
            RecordKind::Settings => self.reload_one::<Settings>(id)?,
            RecordKind::Claim => match self.control.storage.get_record(kind, id)? {
                Some(r) => {
                    self.config.claims.insert(r.id, r.version);
                }
                None => {
                    self.config.claims.remove(id);
                }
            },
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn reload_one<T: ConfigRecord>(&mut self, id: &str) -> Result<()> {
        match self.control.get::<T>(id)? {
            Some(v) => v.into_inner().store(&mut self.config),
            None => T::unstore(id, &mut self.config),
        }
        self.publish(&T::change(id))
    }

    /// Derives and stores the snapshot after `change`. Should the incremental step fail (it
    /// cannot for records this crate validated), everything is recompiled.
    fn publish(&mut self, change: &Change<'_>) -> Result<()> {
        let old = self.control.snapshot.load();
        let next = match old.apply(&self.config, change) {
            Ok(next) => next,
            Err(_) => Snapshot::compile(&self.config)?,
        };
        self.control.snapshot.store(next);
        Ok(())
    }
}
