//! The in-memory store: the embedded default.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use super::{
    EventOutcome, ExperimentTotals, Record, RecordChange, RecordKind, RecordWrite, Storage,
    StorageError, UnitEvent, UnitState,
};
use crate::hashing::{FastMap, IdentityBuild, Seeded};

mod table;

use table::{Probe, UnitKey, UnitTable};

/// How many independently locked shards the event state is split into.
const SHARDS: usize = 64;

/// How many events of a batch have their slots read ahead before they are applied.
const TOUCH_AHEAD: usize = 128;

/// Everything in process memory: configuration behind a read-write lock, event state in 64
/// shards keyed by (experiment, unit), so concurrent events on different units rarely contend
/// and no single lock is taken by every event.
///
/// Built for a million units and more: an event hashes its experiment and unit once, and that
/// hash picks the shard and the unit's slot in an open-addressing table whose 64-byte slots hold
/// the hash, the unit id (inline up to 22 bytes) and its [`UnitState`] in one cache line. A unit
/// with plain conversions costs one slot and no other allocation. [`Storage::apply_events`]
/// reads every event's slot before applying the batch, so the cache misses of a large table
/// overlap: batching is the fastest way in (see BENCHMARKS.md).
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
    config: RwLock<BTreeMap<RecordKind, Records>>,
    shards: Box<[Mutex<Shard>]>,
    sticky: Mutex<HashMap<String, Vec<(String, String)>>>,
    keys: crate::hashing::Seeded,
}

/// One shard's event state: per experiment, in a slab indexed by the experiment's hash (which
/// the event's hash starts from, so finding the experiment hashes nothing more), so a batch
/// looks each experiment up once and then reaches its units by position.
#[derive(Debug, Default)]
struct Shard {
    /// Experiment hash → slab position. Two experiments whose hashes collide (one chance in
    /// 2⁶⁴) are found by a scan of the slab instead.
    index: HashMap<u64, usize, IdentityBuild>,
    experiments: Vec<ExperimentShard>,
}

impl Shard {
    fn find(&self, key: u64, experiment: &str) -> Option<usize> {
        match self.index.get(&key) {
            Some(&i)
                if self
                    .experiments
                    .get(i)
                    .is_some_and(|x| *x.name == *experiment) =>
            {
                Some(i)
            }
            Some(_) => self.experiments.iter().position(|x| *x.name == *experiment),
            None => None,
        }
    }

    fn get(&self, key: u64, experiment: &str) -> Option<&ExperimentShard> {
        self.find(key, experiment)
            .and_then(|i| self.experiments.get(i))
    }

    /// The slab position of `experiment` (whose hash is `key`), added if absent.
    fn position(&mut self, key: u64, experiment: &str) -> usize {
        if let Some(i) = self.find(key, experiment) {
            return i;
        }
        self.experiments.push(ExperimentShard {
            name: experiment.into(),
            key,
            ..ExperimentShard::default()
        });
        let i = self.experiments.len() - 1;
        self.index.entry(key).or_insert(i);
        i
    }

    fn remove(&mut self, key: u64, experiment: &str) {
        let Some(i) = self.find(key, experiment) else {
            return;
        };
        if self.index.get(&key) == Some(&i) {
            self.index.remove(&key);
        }
        let last = self.experiments.len() - 1;
        if i != last
            && let Some(moved) = self.experiments.get(last)
            && self.index.get(&moved.key) == Some(&last)
        {
            self.index.insert(moved.key, i);
        }
        self.experiments.swap_remove(i);
        // A colliding experiment that was found by scanning may now take the freed key.
        if !self.index.contains_key(&key)
            && let Some(j) = self.experiments.iter().position(|x| x.key == key)
        {
            self.index.insert(key, j);
        }
    }
}

#[derive(Debug, Default)]
struct ExperimentShard {
    name: Box<str>,
    /// The name's hash ([`crate::hashing::Seeded::hash_first`]).
    key: u64,
    units: UnitTable,
    /// Event ids seen per unit: looked up only for events that carry one.
    event_ids: FastMap<UnitKey, UnitIds>,
    totals: super::ExactTotals,
}

/// One unit's event ids, a set per scope ([`UnitEvent::id_scope`]): a look-up is a hash probe,
/// whatever the number of ids.
#[derive(Debug, Default)]
struct UnitIds {
    /// Ids remembered, over every scope (at most [`super::MAX_EVENT_IDS_PER_UNIT`]).
    count: u32,
    /// A unit has few scopes (the metrics it has events with), so they are scanned.
    scopes: Vec<(u32, HashSet<Box<str>, Seeded>)>,
}

impl UnitIds {
    fn contains(&self, scope: u32, id: &str) -> bool {
        self.scopes
            .iter()
            .any(|(s, ids)| *s == scope && ids.contains(id))
    }

    fn insert(&mut self, scope: u32, id: &str) {
        let set = match self.scopes.iter().position(|(s, _)| *s == scope) {
            Some(i) => self.scopes.get_mut(i).map(|(_, ids)| ids),
            None => {
                self.scopes.push((scope, HashSet::default()));
                self.scopes.last_mut().map(|(_, ids)| ids)
            }
        };
        if let Some(set) = set
            && set.insert(id.into())
        {
            self.count = self.count.saturating_add(1);
        }
    }
}

impl Default for MemoryStorage {
    fn default() -> Self {
        MemoryStorage::new()
    }
}

/// String equality that skips reading the bytes when both are the same string (events
/// resolved against one snapshot share their experiment's id).
fn same_str(a: &str, b: &str) -> bool {
    (std::ptr::eq(a.as_ptr(), b.as_ptr()) && a.len() == b.len()) || a == b
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

    /// The event's hash (computed once: it picks the shard and the unit's slot), from its
    /// experiment's hash `key`, and its shard.
    fn locate(key: u64, unit: &str) -> (u64, usize) {
        let hash = Seeded::hash_second(key, unit);
        (hash, (hash % SHARDS as u64) as usize)
    }

    /// Applies one event (whose experiment's hash is `key` and whose hash is `hash`) to a
    /// locked shard.
    fn apply_in(shard: &mut Shard, key: u64, hash: u64, e: &UnitEvent<'_>) -> EventOutcome {
        let i = shard.position(key, e.experiment);
        match shard.experiments.get_mut(i) {
            Some(exp) => MemoryStorage::apply_to(exp, hash, e),
            None => EventOutcome::Rejected(super::Rejection::InvalidValue),
        }
    }

    /// Applies one event (whose hash is `hash`) to its experiment's part of a locked shard.
    fn apply_to(exp: &mut ExperimentShard, hash: u64, e: &UnitEvent<'_>) -> EventOutcome {
        let unit = e.unit.as_bytes();
        if let Some(id) = e.event_id {
            let ids = exp.event_ids.get(unit);
            if ids.is_some_and(|ids| ids.contains(e.id_scope(), id)) {
                return EventOutcome::DuplicateEventId;
            }
            if let Some(r) = e.check_event_id(ids.map_or(0, |ids| ids.count)) {
                return EventOutcome::Rejected(r);
            }
        }
        let (outcome, delta) = match exp.units.find(hash, unit) {
            Probe::Found(i) => match exp.units.state_mut(i) {
                Some(state) => UnitState::apply(state, e.at, &e.kind),
                None => (EventOutcome::Rejected(super::Rejection::NotEnrolled), None),
            },
            Probe::Vacant => {
                let mut state = None;
                let applied = UnitState::apply(&mut state, e.at, &e.kind);
                if let Some(state) = state {
                    exp.units.insert(hash, e.unit, state);
                }
                applied
            }
        };
        if outcome.is_stored()
            && let Some(id) = e.event_id
        {
            match exp.event_ids.get_mut(unit) {
                Some(ids) => ids.insert(e.id_scope(), id),
                None => {
                    let mut ids = UnitIds::default();
                    ids.insert(e.id_scope(), id);
                    exp.event_ids.insert(UnitKey::new(e.unit), ids);
                }
            }
        }
        if let Some(d) = delta {
            exp.totals.apply(&d);
        }
        outcome
    }

    fn config_read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<RecordKind, Records>> {
        self.config.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The records of one kind, with the index of their unique keys.
#[derive(Debug, Default)]
struct Records {
    by_id: BTreeMap<String, Record>,
    /// unique key → the id of the record that has it.
    unique: HashMap<String, String>,
}

impl Records {
    /// Stores a checked write at `version`, keeping the unique-key index in step.
    fn store(&mut self, w: &RecordWrite<'_>, version: u64) {
        if let Some(old) = self.by_id.get(w.id).and_then(|r| r.unique_key.clone()) {
            self.unique.remove(&old);
        }
        if let Some(key) = w.unique_key {
            self.unique.insert(key.to_owned(), w.id.to_owned());
        }
        self.by_id.insert(
            w.id.to_owned(),
            Record {
                kind: w.kind,
                id: w.id.to_owned(),
                version,
                unique_key: w.unique_key.map(str::to_owned),
                body: w.body.clone(),
            },
        );
    }
}

impl Storage for MemoryStorage {
    fn get_record(&self, kind: RecordKind, id: &str) -> Result<Option<Record>, StorageError> {
        Ok(self
            .config_read()
            .get(&kind)
            .and_then(|m| m.by_id.get(id))
            .cloned())
    }

    fn list_records(&self, kind: RecordKind) -> Result<Vec<Record>, StorageError> {
        Ok(self
            .config_read()
            .get(&kind)
            .map(|m| m.by_id.values().cloned().collect())
            .unwrap_or_default())
    }

    fn put_record(&self, w: RecordWrite<'_>, expected: Option<u64>) -> Result<u64, StorageError> {
        let mut config = self.config.write().unwrap_or_else(PoisonError::into_inner);
        let records = config.entry(w.kind).or_default();
        let version = super::next_version(
            w.kind,
            w.id,
            records.by_id.get(w.id).map(|r| r.version),
            expected,
        )?;
        if let Some(key) = w.unique_key
            && records.unique.get(key).is_some_and(|owner| owner != w.id)
        {
            return Err(StorageError::UniqueViolation {
                kind: w.kind,
                key: key.to_owned(),
            });
        }
        records.store(&w, version);
        Ok(version)
    }

    fn delete_record(&self, kind: RecordKind, id: &str, expected: u64) -> Result<(), StorageError> {
        let mut config = self.config.write().unwrap_or_else(PoisonError::into_inner);
        let records = config.entry(kind).or_default();
        match records.by_id.get(id) {
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
                if let Some(key) = records.by_id.remove(id).and_then(|r| r.unique_key) {
                    records.unique.remove(&key);
                }
                Ok(())
            }
        }
    }

    fn commit(&self, changes: &[RecordChange<'_>]) -> Result<Vec<u64>, StorageError> {
        super::check_distinct(changes)?;
        let mut config = self.config.write().unwrap_or_else(PoisonError::into_inner);
        // Every change is checked before any is applied: they name distinct records, so each
        // check sees what the commit will change.
        let stored = |config: &BTreeMap<RecordKind, Records>, kind: RecordKind, id: &str| {
            config
                .get(&kind)
                .and_then(|r| r.by_id.get(id))
                .map(|r| r.version)
        };
        let mut versions = Vec::with_capacity(changes.len());
        for c in changes {
            let v = match c {
                RecordChange::Put { write, expected } => {
                    let version = super::next_version(
                        write.kind,
                        write.id,
                        stored(&config, write.kind, write.id),
                        *expected,
                    )?;
                    if let Some(key) = write.unique_key {
                        let owner = config.get(&write.kind).and_then(|r| r.unique.get(key));
                        let in_batch = changes.iter().any(|d| {
                            matches!(d, RecordChange::Put { write: o, .. }
                                if o.kind == write.kind && o.id != write.id && o.unique_key == Some(key))
                        });
                        if owner.is_some_and(|o| o != write.id) || in_batch {
                            return Err(StorageError::UniqueViolation {
                                kind: write.kind,
                                key: key.to_owned(),
                            });
                        }
                    }
                    version
                }
                RecordChange::Delete { kind, id, expected } => {
                    super::check_version(*kind, id, stored(&config, *kind, id), Some(*expected))?;
                    0
                }
                RecordChange::Check { kind, id, expected } => {
                    super::check_version(*kind, id, stored(&config, *kind, id), *expected)?
                }
            };
            versions.push(v);
        }
        for (c, &version) in changes.iter().zip(&versions) {
            match c {
                RecordChange::Put { write, .. } => {
                    let records = config.entry(write.kind).or_default();
                    records.store(write, version);
                }
                RecordChange::Delete { kind, id, .. } => {
                    let records = config.entry(*kind).or_default();
                    if let Some(key) = records.by_id.remove(*id).and_then(|r| r.unique_key) {
                        records.unique.remove(&key);
                    }
                }
                RecordChange::Check { .. } => {}
            }
        }
        Ok(versions)
    }

    fn apply_events(&self, events: &[UnitEvent<'_>]) -> Result<Vec<EventOutcome>, StorageError> {
        let not_locked = || StorageError::Backend("shard not locked".into());
        // The batch's distinct experiments (the first `NAMES`), each hashed once; events
        // resolved against one snapshot share the id's pointer, so matching them is cheap.
        const NAMES: usize = 8;
        let mut names: Vec<(&str, u64)> = Vec::with_capacity(NAMES);
        let mut located: Vec<(u64, u64, usize, Option<usize>)> = Vec::with_capacity(events.len());
        for e in events {
            let (key, x) = match names.iter().position(|(n, _)| same_str(n, e.experiment)) {
                Some(x) => (names.get(x).map_or(0, |&(_, k)| k), Some(x)),
                None => {
                    let key = self.keys.hash_first(e.experiment);
                    if names.len() < NAMES {
                        names.push((e.experiment, key));
                        (key, Some(names.len() - 1))
                    } else {
                        (key, None)
                    }
                }
            };
            let (hash, shard) = MemoryStorage::locate(key, e.unit);
            located.push((key, hash, shard, x));
        }
        // Lock every shard the batch touches, in ascending order (no deadlock), so the batch is
        // applied atomically with respect to every other call.
        let touched: u64 = located
            .iter()
            .fold(0, |m, &(_, _, i, _)| m | 1 << (i % SHARDS));
        let mut guards: Vec<MutexGuard<'_, Shard>> = Vec::with_capacity(SHARDS);
        let mut guard_of = [usize::MAX; SHARDS];
        for (i, m) in self.shards.iter().enumerate() {
            if touched & (1 << i) != 0
                && let Some(g) = guard_of.get_mut(i)
            {
                *g = guards.len();
                guards.push(lock(m));
            }
        }
        // Each event's place: its guard, and its experiment's slab position in that shard,
        // looked up once per (shard, distinct experiment).
        let mut slabs: Vec<Option<usize>> = vec![None; guards.len() * NAMES];
        let mut places: Vec<(u64, usize, usize)> = Vec::with_capacity(events.len());
        for (e, &(key, hash, shard, x)) in events.iter().zip(&located) {
            let g = guard_of.get(shard).copied().ok_or_else(not_locked)?;
            let guard = guards.get_mut(g).ok_or_else(not_locked)?;
            let slab = match x.and_then(|x| slabs.get_mut(g * NAMES + x)) {
                Some(cell) => *cell.get_or_insert_with(|| guard.position(key, e.experiment)),
                None => guard.position(key, e.experiment),
            };
            places.push((hash, g, slab));
        }
        // In chunks: first read every event's home slot, in a loop of a few instructions per
        // event, so the processor has a dozen or more of these independent loads in flight at
        // once and their cache misses (and page walks) overlap; then apply the chunk's events,
        // whose lines are in cache or on their way.
        let mut out = Vec::with_capacity(events.len());
        for (chunk, places) in events.chunks(TOUCH_AHEAD).zip(places.chunks(TOUCH_AHEAD)) {
            let mut ahead = 0u64;
            for &(hash, g, slab) in places {
                if let Some(x) = guards.get(g).and_then(|s| s.experiments.get(slab)) {
                    ahead ^= x.units.touch(hash);
                }
            }
            std::hint::black_box(ahead);
            for (e, &(hash, g, slab)) in chunk.iter().zip(places) {
                let exp = guards
                    .get_mut(g)
                    .and_then(|s| s.experiments.get_mut(slab))
                    .ok_or_else(not_locked)?;
                out.push(MemoryStorage::apply_to(exp, hash, e));
            }
        }
        Ok(out)
    }

    fn apply_event(&self, e: &UnitEvent<'_>) -> Result<EventOutcome, StorageError> {
        let key = self.keys.hash_first(e.experiment);
        let (hash, i) = MemoryStorage::locate(key, e.unit);
        let shard = self
            .shards
            .get(i)
            .ok_or_else(|| StorageError::Backend("shard out of range".into()))?;
        Ok(MemoryStorage::apply_in(&mut lock(shard), key, hash, e))
    }

    fn unit_state(&self, experiment: &str, unit: &str) -> Result<Option<UnitState>, StorageError> {
        let key = self.keys.hash_first(experiment);
        let (hash, i) = MemoryStorage::locate(key, unit);
        Ok(self.shards.get(i).and_then(|m| {
            lock(m)
                .get(key, experiment)
                .and_then(|x| x.units.get(hash, unit.as_bytes()))
                .cloned()
        }))
    }

    fn totals(&self, experiment: &str) -> Result<ExperimentTotals, StorageError> {
        // Every shard locked (in order, as `apply_events` does) before reading any: a batch is
        // seen wholly or not at all.
        let key = self.keys.hash_first(experiment);
        let guards: Vec<MutexGuard<'_, Shard>> = self.shards.iter().map(lock).collect();
        let mut total = super::ExactTotals::default();
        for g in &guards {
            if let Some(x) = g.get(key, experiment) {
                total.merge(&x.totals);
            }
        }
        Ok(total.rounded())
    }

    fn purge_events(&self, experiment: &str) -> Result<(), StorageError> {
        let key = self.keys.hash_first(experiment);
        let mut guards: Vec<MutexGuard<'_, Shard>> = self.shards.iter().map(lock).collect();
        for g in &mut guards {
            g.remove(key, experiment);
        }
        drop(guards);
        lock(&self.sticky).retain(|_, assignments| {
            assignments.retain(|(e, _)| e != experiment);
            !assignments.is_empty()
        });
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
    fn the_experiment_index_survives_hash_collisions_and_removals() {
        let mut s = Shard::default();
        let (a, b) = (s.position(5, "a"), s.position(5, "b"));
        assert_ne!(a, b, "colliding experiments get their own slabs");
        assert_eq!((s.find(5, "a"), s.find(5, "b")), (Some(a), Some(b)));
        assert_eq!(s.find(5, "c"), None);
        assert_eq!(s.position(5, "b"), b);
        s.remove(5, "a");
        assert_eq!((s.find(5, "a"), s.find(5, "b")), (None, Some(0)));
        s.remove(5, "b");
        assert!(s.experiments.is_empty() && s.index.is_empty());
        // Removing from the middle moves the last experiment; it stays findable.
        for (k, n) in [(1, "x"), (2, "y"), (3, "z")] {
            s.position(k, n);
        }
        s.remove(1, "x");
        assert_eq!(
            (s.find(2, "y"), s.find(3, "z"), s.find(1, "x")),
            (Some(1), Some(0), None)
        );
        assert_eq!(s.get(3, "z").map(|x| &*x.name), Some("z"));
    }

    #[test]
    fn event_ids_are_a_set_per_unit_bounded_by_the_limit() {
        use crate::storage::{
            Aggregation, MAX_EVENT_IDS_PER_UNIT, MetricSlot, Rejection, UnitEventKind,
        };
        use crate::time::Timestamp;
        let s = MemoryStorage::new();
        let at = Timestamp::from_unix_millis(1);
        let slot = MetricSlot {
            index: 0,
            aggregation: Aggregation::Sum,
            cap: None,
            window_millis: None,
        };
        let value = UnitEventKind::Metric {
            slot,
            value: 1.0,
            denominator: 0.0,
        };
        let ev = |id: Option<&'static str>, kind| UnitEvent {
            experiment: "e",
            unit: "u",
            event_id: id,
            at,
            kind,
        };
        let expose = UnitEventKind::Exposure {
            variant: 0,
            excluded: false,
        };
        s.apply_event(&ev(None, expose)).unwrap();
        // Up to the limit, in batches: every id is new (a linear scan per event would make this
        // quadratic: 5·10⁹ comparisons).
        let ids: Vec<String> = (0..MAX_EVENT_IDS_PER_UNIT)
            .map(|i| format!("o{i}"))
            .collect();
        for chunk in ids.chunks(10_000) {
            let events: Vec<UnitEvent<'_>> = chunk
                .iter()
                .map(|id| UnitEvent {
                    experiment: "e",
                    unit: "u",
                    event_id: Some(id),
                    at,
                    kind: value,
                })
                .collect();
            let out = s.apply_events(&events).unwrap();
            assert!(out.iter().all(|o| *o == EventOutcome::Recorded));
        }
        // A retry is still found; a new id is refused; an event without one is counted.
        assert_eq!(
            s.apply_event(&ev(Some("o77"), value)).unwrap(),
            EventOutcome::DuplicateEventId
        );
        assert_eq!(
            s.apply_event(&ev(Some("fresh"), value)).unwrap(),
            EventOutcome::Rejected(Rejection::TooManyEventIds)
        );
        assert_eq!(
            s.apply_event(&ev(None, value)).unwrap(),
            EventOutcome::Recorded
        );
        let sum = s.totals("e").unwrap().variant(0).metrics[0].sum;
        assert_eq!(sum, f64::from(MAX_EVENT_IDS_PER_UNIT) + 1.0);
        // Another unit has its own budget.
        let other = UnitEvent {
            unit: "v",
            ..ev(None, expose)
        };
        s.apply_event(&other).unwrap();
        assert_eq!(
            s.apply_event(&UnitEvent {
                event_id: Some("fresh"),
                ..UnitEvent {
                    unit: "v",
                    ..ev(None, value)
                }
            })
            .unwrap(),
            EventOutcome::Recorded
        );
    }

    #[test]
    fn passes_the_conformance_suite() {
        crate::storage::conformance::run(MemoryStorage::new);
    }
}
