//! The in-memory store: the embedded default.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use super::{
    EventOutcome, ExperimentTotals, Record, RecordKind, RecordWrite, Storage, StorageError,
    UnitEvent, UnitState,
};
use crate::hashing::FastMap;

/// How many independently locked shards the event state is split into.
const SHARDS: usize = 64;

/// Everything in process memory: configuration behind a read-write lock, event state in 64
/// shards keyed by (experiment, unit), so concurrent events on different units rarely contend
/// and no single lock is taken by every event.
///
/// # Examples
///
/// ```
/// use abkit::storage::{MemoryStorage, RecordKind, RecordWrite, Storage};
///
/// let store = MemoryStorage::new();
/// let body = serde_json::json!({"name": "x"});
/// let v1 = store.put_record(RecordWrite { kind: RecordKind::Audience, id: "aud_1", unique_key: None, body: &body }, None)?;
/// assert_eq!(v1, 1);
/// // A write based on a stale version is refused.
/// assert!(store.put_record(RecordWrite { kind: RecordKind::Audience, id: "aud_1", unique_key: None, body: &body }, Some(0)).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MemoryStorage {
    config: RwLock<BTreeMap<RecordKind, BTreeMap<String, Record>>>,
    shards: Box<[Mutex<Shard>]>,
    sticky: Mutex<HashMap<String, Vec<(String, String)>>>,
    keys: crate::hashing::Seeded,
}

#[derive(Debug, Default)]
struct Shard {
    experiments: FastMap<Box<str>, ExperimentShard>,
}

#[derive(Debug, Default)]
struct ExperimentShard {
    units: FastMap<UnitKey, UnitEntry>,
    totals: ExperimentTotals,
}

/// The longest unit id kept inline in the map entry.
const INLINE: usize = 22;

/// A unit id, inline when short (most are), so a lookup compares keys without chasing a
/// pointer: with a million units every avoided cache miss is most of an event's cost.
#[derive(Debug, Clone)]
enum UnitKey {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl UnitKey {
    fn new(unit: &str) -> UnitKey {
        let mut bytes = [0u8; INLINE];
        match (bytes.get_mut(..unit.len()), u8::try_from(unit.len())) {
            (Some(dst), Ok(len)) => {
                dst.copy_from_slice(unit.as_bytes());
                UnitKey::Inline { len, bytes }
            }
            _ => UnitKey::Heap(unit.into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            UnitKey::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            UnitKey::Heap(s) => s.as_bytes(),
        }
    }
}

// Hashed and compared as bytes, and looked up by `unit.as_bytes()`: no UTF-8 check per probe.
impl std::hash::Hash for UnitKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialEq for UnitKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for UnitKey {}

impl std::borrow::Borrow<[u8]> for UnitKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

#[derive(Debug)]
struct UnitEntry {
    /// Always `Some` once stored; an `Option` so the shared fold can take it by `&mut`.
    state: Option<UnitState>,
    event_ids: Vec<Box<str>>,
}

impl Default for MemoryStorage {
    fn default() -> Self {
        MemoryStorage::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock cannot leave a half-applied event: state is only written
    // after every check passed. Keep serving.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> MemoryStorage {
        MemoryStorage {
            config: RwLock::new(BTreeMap::new()),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            sticky: Mutex::new(HashMap::new()),
            keys: crate::hashing::Seeded::random(),
        }
    }

    fn shard_of(&self, experiment: &str, unit: &str) -> usize {
        (self.keys.hash_pair(experiment, unit) % SHARDS as u64) as usize
    }

    /// Applies one event to a locked shard.
    fn apply_in(shard: &mut Shard, e: &UnitEvent<'_>) -> EventOutcome {
        let exp = match shard.experiments.get_mut(e.experiment) {
            Some(x) => x,
            None => shard.experiments.entry(e.experiment.into()).or_default(),
        };
        let entry = exp.units.get_mut(e.unit.as_bytes());
        if let (Some(id), Some(entry)) = (e.event_id, entry.as_ref())
            && entry.event_ids.iter().any(|x| &**x == id)
        {
            return EventOutcome::DuplicateEventId;
        }
        match entry {
            Some(entry) => {
                let (outcome, delta) = UnitState::apply(&mut entry.state, e.at, &e.kind);
                if outcome.is_stored()
                    && let Some(id) = e.event_id
                {
                    entry.event_ids.push(id.into());
                }
                if let Some(d) = delta {
                    exp.totals.apply(&d);
                }
                outcome
            }
            None => {
                let mut state = None;
                let (outcome, delta) = UnitState::apply(&mut state, e.at, &e.kind);
                if state.is_some() {
                    let event_ids = e
                        .event_id
                        .filter(|_| outcome.is_stored())
                        .map(Box::from)
                        .into_iter()
                        .collect();
                    exp.units
                        .insert(UnitKey::new(e.unit), UnitEntry { state, event_ids });
                }
                if let Some(d) = delta {
                    exp.totals.apply(&d);
                }
                outcome
            }
        }
    }

    fn config_read(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, BTreeMap<RecordKind, BTreeMap<String, Record>>> {
        self.config.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Storage for MemoryStorage {
    fn get_record(&self, kind: RecordKind, id: &str) -> Result<Option<Record>, StorageError> {
        Ok(self
            .config_read()
            .get(&kind)
            .and_then(|m| m.get(id))
            .cloned())
    }

    fn list_records(&self, kind: RecordKind) -> Result<Vec<Record>, StorageError> {
        Ok(self
            .config_read()
            .get(&kind)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default())
    }

    fn put_record(&self, w: RecordWrite<'_>, expected: Option<u64>) -> Result<u64, StorageError> {
        let mut config = self.config.write().unwrap_or_else(PoisonError::into_inner);
        let records = config.entry(w.kind).or_default();
        let version =
            super::next_version(w.kind, w.id, records.get(w.id).map(|r| r.version), expected)?;
        if let Some(key) = w.unique_key
            && records
                .values()
                .any(|r| r.id != w.id && r.unique_key.as_deref() == Some(key))
        {
            return Err(StorageError::UniqueViolation {
                kind: w.kind,
                key: key.to_owned(),
            });
        }
        records.insert(
            w.id.to_owned(),
            Record {
                kind: w.kind,
                id: w.id.to_owned(),
                version,
                unique_key: w.unique_key.map(str::to_owned),
                body: w.body.clone(),
            },
        );
        Ok(version)
    }

    fn delete_record(&self, kind: RecordKind, id: &str, expected: u64) -> Result<(), StorageError> {
        let mut config = self.config.write().unwrap_or_else(PoisonError::into_inner);
        let records = config.entry(kind).or_default();
        match records.get(id) {
            None => Err(StorageError::NotFound {
                kind,
                id: id.to_owned(),
            }),
            Some(r) if r.version != expected => Err(StorageError::VersionConflict {
                kind,
                id: id.to_owned(),
                expected,
                found: r.version,
            }),
            Some(_) => {
                records.remove(id);
                Ok(())
            }
        }
    }

    fn apply_events(&self, events: &[UnitEvent<'_>]) -> Result<Vec<EventOutcome>, StorageError> {
        // Lock every shard the batch touches, in ascending order (no deadlock), so the batch is
        // applied atomically with respect to every other call.
        let mut idx: Vec<usize> = events
            .iter()
            .map(|e| self.shard_of(e.experiment, e.unit))
            .collect();
        let mut order = idx.clone();
        order.sort_unstable();
        order.dedup();
        let mut guards: Vec<(usize, MutexGuard<'_, Shard>)> = Vec::with_capacity(order.len());
        for i in order {
            if let Some(m) = self.shards.get(i) {
                guards.push((i, lock(m)));
            }
        }
        let mut out = Vec::with_capacity(events.len());
        for (e, i) in events.iter().zip(idx.iter_mut()) {
            let pos = guards
                .binary_search_by_key(i, |(k, _)| *k)
                .map_err(|_| StorageError::Backend("shard not locked".into()))?;
            let shard = guards
                .get_mut(pos)
                .ok_or_else(|| StorageError::Backend("shard not locked".into()))?;
            out.push(MemoryStorage::apply_in(&mut shard.1, e));
        }
        Ok(out)
    }

    fn apply_event(&self, e: &UnitEvent<'_>) -> Result<EventOutcome, StorageError> {
        let i = self.shard_of(e.experiment, e.unit);
        let shard = self
            .shards
            .get(i)
            .ok_or_else(|| StorageError::Backend("shard out of range".into()))?;
        Ok(MemoryStorage::apply_in(&mut lock(shard), e))
    }

    fn unit_state(&self, experiment: &str, unit: &str) -> Result<Option<UnitState>, StorageError> {
        let i = self.shard_of(experiment, unit);
        Ok(self.shards.get(i).and_then(|m| {
            lock(m)
                .experiments
                .get(experiment)
                .and_then(|x| x.units.get(unit.as_bytes()))
                .and_then(|u| u.state.clone())
        }))
    }

    fn totals(&self, experiment: &str) -> Result<ExperimentTotals, StorageError> {
        // Every shard locked (in order, as `apply_events` does) before reading any: a batch is
        // seen wholly or not at all.
        let guards: Vec<MutexGuard<'_, Shard>> = self.shards.iter().map(lock).collect();
        let mut total = ExperimentTotals::default();
        for g in &guards {
            if let Some(x) = g.experiments.get(experiment) {
                total.merge(&x.totals);
            }
        }
        Ok(total)
    }

    fn purge_events(&self, experiment: &str) -> Result<(), StorageError> {
        let mut guards: Vec<MutexGuard<'_, Shard>> = self.shards.iter().map(lock).collect();
        for g in &mut guards {
            g.experiments.remove(experiment);
        }
        Ok(())
    }

    fn sticky_assignments(&self, unit: &str) -> Result<Vec<(String, String)>, StorageError> {
        Ok(lock(&self.sticky).get(unit).cloned().unwrap_or_default())
    }

    fn save_sticky_assignments(
        &self,
        unit: &str,
        assignments: &[(&str, &str)],
    ) -> Result<(), StorageError> {
        let mut sticky = lock(&self.sticky);
        let stored = sticky.entry(unit.to_owned()).or_default();
        for (exp, variant) in assignments {
            if !stored.iter().any(|(e, _)| e == exp) {
                stored.push(((*exp).to_owned(), (*variant).to_owned()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_the_conformance_suite() {
        crate::storage::conformance::run(MemoryStorage::new);
    }
}
