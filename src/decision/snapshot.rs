//! The compiled configuration decisions read, and its pure, incremental compile.
//!
//! [`Snapshot::compile`] is a function of decoded configuration ([`Configuration`]): no
//! storage, no clock. [`Snapshot::apply`] derives the next snapshot from the previous one after
//! one record changed, recompiling only that record and what depends on it:
//!
//! | change | recompiled |
//! |---|---|
//! | experiment | it, and the flags it was and is attached to |
//! | flag | it |
//! | audience | the experiments that use it, and their flags |
//! | layer | the experiments placed in it, and their flags |
//! | saved group | the experiments and flags whose conditions name it (directly or through an audience), and those experiments' flags |
//! | settings (holdout) | everything |
//!
//! Everything else is shared with the previous snapshot (`Arc`s): a write costs one compile
//! plus a copy of the indexes' pointers, not a recompile of every experiment.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;

use crate::decision::experiment::CompiledExperiment;
use crate::decision::flag::{CompiledFlag, Env, EnvName};
use crate::decision::index::{Chunks, SharedMap, SortedList};
use crate::hashing::{FastMap, Seeded, key_eq};
use crate::model::config::{Configuration, Layer};
use crate::model::experiment::Experiment;
use crate::model::lifecycle::Status;
use crate::model::validation::ValidationError;
use crate::targeting::Condition;

/// The published snapshot of one lab, and how readers pin it.
///
/// Writers [`store`](SnapshotCell::store) a new snapshot and bump a generation counter. Readers
/// [`pin`](SnapshotCell::pin) it through a small per-thread cache: when the generation they
/// read is the one cached, pinning is a plain load and a non-atomic reference count, so readers
/// on many threads share no written cache line (they scale) and pay no locked instruction.
/// A thread keeps at most [`PINNED_PER_THREAD`] snapshots cached (of different labs); one whose
/// lab has replaced or dropped it is released at that thread's next cache miss.
pub(crate) struct SnapshotCell {
    current: ArcSwap<Snapshot>,
    generation: AtomicU64,
    key: u64,
}

/// How many labs' snapshots one thread keeps pinned.
pub(crate) const PINNED_PER_THREAD: usize = 4;

/// A snapshot pinned by a reader: keeps it alive while a decision refers to it. Not `Send`:
/// its reference count is the thread's own.
// The inner `Arc` is the lab's (shared between threads); the `Rc` is this thread's own count
// of it, which is the point: clones of a pin touch no shared cache line. The count lives in a
// box aligned to two cache lines so that two threads' pins never share one (false sharing
// would make every clone a cross-core transfer).
#[derive(Clone)]
pub(crate) struct Pinned(Rc<PinBox>);

#[repr(align(128))]
struct PinBox(Arc<Snapshot>);

impl std::ops::Deref for Pinned {
    type Target = Snapshot;

    #[inline]
    fn deref(&self) -> &Snapshot {
        &self.0.0
    }
}

struct PinEntry {
    key: u64,
    generation: u64,
    snapshot: Pinned,
}

thread_local! {
    static PINS: RefCell<Vec<PinEntry>> = const { RefCell::new(Vec::new()) };
}

static NEXT_CELL_KEY: AtomicU64 = AtomicU64::new(1);

impl std::fmt::Debug for SnapshotCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotCell")
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for SnapshotCell {
    fn default() -> Self {
        SnapshotCell::new(Snapshot::default())
    }
}

impl SnapshotCell {
    /// A cell publishing `snapshot`.
    pub(crate) fn new(snapshot: Snapshot) -> SnapshotCell {
        SnapshotCell {
            current: ArcSwap::from_pointee(snapshot),
            generation: AtomicU64::new(0),
            key: NEXT_CELL_KEY.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Publishes `snapshot`: readers that pin after this returns see it.
    pub(crate) fn store(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The current snapshot, for a writer or a one-off reader (an `arc-swap` guard).
    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The current snapshot, pinned for this thread (see the type's docs).
    #[inline]
    pub(crate) fn pin(&self) -> Pinned {
        let generation = self.generation.load(Ordering::Acquire);
        let hit = PINS.with(|pins| {
            pins.borrow()
                .iter()
                .find(|p| p.key == self.key && p.generation == generation)
                .map(|p| p.snapshot.clone())
        });
        match hit {
            Some(p) => p,
            None => self.pin_slow(generation),
        }
    }

    #[cold]
    fn pin_slow(&self, generation: u64) -> Pinned {
        let snapshot = Pinned(Rc::new(PinBox(self.current.load_full())));
        PINS.with(|pins| {
            let mut pins = pins.borrow_mut();
            // Release what no lab publishes any more (replaced, or its lab dropped), and this
            // lab's older pin.
            pins.retain(|p| p.key != self.key && Arc::strong_count(&p.snapshot.0.0) > 1);
            if pins.len() >= PINNED_PER_THREAD {
                pins.remove(0);
            }
            pins.push(PinEntry {
                key: self.key,
                generation,
                snapshot: snapshot.clone(),
            });
        });
        snapshot
    }
}

/// One changed configuration record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change<'a> {
    /// An experiment was created, changed or deleted.
    Experiment(&'a str),
    /// A flag was created, changed or deleted.
    Flag(&'a str),
    /// An audience was put or deleted.
    Audience(&'a str),
    /// A saved group was put or deleted.
    SavedGroup(&'a str),
    /// A layer was put or deleted.
    Layer(&'a str),
    /// The settings (the global holdout) changed.
    Settings,
}

/// The compiled configuration: experiments by id and the flag index. Immutable once built;
/// replaced whole, atomically, on every configuration change — but built from the previous one
/// by sharing every chunk a change did not touch ([`crate::decision::index`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct Snapshot {
    experiments: Chunks<Arc<CompiledExperiment>>,
    /// id → (slot, experiment): the experiment itself, so a lookup by id needs no second hop.
    experiment_slots: SharedMap<(u32, Arc<CompiledExperiment>)>,
    free_experiments: Vec<u32>,
    keys: Seeded,
    pub(crate) flags: FlagIndex,
}

/// A condition that never matches (`$not` of the empty condition): stands in for an audience
/// that is missing.
fn never() -> Option<Condition> {
    Condition::parse(&serde_json::json!({"$not": {}})).ok()
}

fn compile_experiment(
    config: &Configuration,
    e: &Experiment,
) -> Result<CompiledExperiment, ValidationError> {
    let mut conditions = Vec::new();
    if let Some(aud) = e.audience_id() {
        conditions.extend(
            config
                .audiences
                .get(aud.as_str())
                .map(|a| a.condition.bind_lenient(&config.groups))
                .or_else(never),
        );
    }
    if let Some(t) = e.targeting() {
        conditions.push(t.bind_lenient(&config.groups));
    }
    let layer_salt = e
        .layer()
        .and_then(|p| config.layers.get(p.id.as_str()))
        .map(Layer::salt);
    CompiledExperiment::new(
        e.clone(),
        conditions,
        layer_salt,
        config.settings.holdout.as_ref(),
    )
}

/// Whether experiment `e` names saved group `group`, directly or through its audience.
fn experiment_uses_group(config: &Configuration, e: &Experiment, group: &str) -> bool {
    let direct = e
        .targeting()
        .is_some_and(|t| t.saved_groups().any(|g| g == group));
    direct
        || e.audience_id()
            .and_then(|a| config.audiences.get(a.as_str()))
            .is_some_and(|a| a.condition.saved_groups().any(|g| g == group))
}

impl Snapshot {
    /// Compiles every record of `config`.
    ///
    /// # Errors
    ///
    /// An experiment whose weights do not validate (never for one this crate stored).
    pub(crate) fn compile(config: &Configuration) -> Result<Snapshot, ValidationError> {
        let mut s = Snapshot::default();
        let mut by_flag: BTreeMap<&str, Vec<Arc<CompiledExperiment>>> = BTreeMap::new();
        for e in config.experiments.values() {
            let c = Arc::new(compile_experiment(config, e)?);
            if e.status() == Status::Running
                && let Some(f) = e.flag_id()
            {
                by_flag.entry(f.as_str()).or_default().push(Arc::clone(&c));
            }
            s.put_experiment(c);
        }
        for f in config.flags.values() {
            let running = by_flag.remove(f.id.as_str()).unwrap_or_default();
            s.flags.put(CompiledFlag::new(
                f.active_at(config.as_of),
                &config.groups,
                running,
            ));
        }
        Ok(s)
    }

    /// The snapshot after `change`, whose new state `config` already holds.
    ///
    /// # Errors
    ///
    /// As [`Snapshot::compile`].
    pub(crate) fn apply(
        &self,
        config: &Configuration,
        change: &Change<'_>,
    ) -> Result<Snapshot, ValidationError> {
        let mut next = self.clone();
        let mut experiments: BTreeSet<&str> = BTreeSet::new();
        let mut flags: BTreeSet<String> = BTreeSet::new();
        match change {
            Change::Settings => return Snapshot::compile(config),
            Change::Experiment(id) => {
                experiments.insert(id);
            }
            Change::Flag(id) => {
                flags.insert((*id).to_owned());
            }
            Change::Audience(id) => experiments.extend(
                config
                    .experiments
                    .values()
                    .filter(|e| e.audience_id().is_some_and(|a| a.as_str() == *id))
                    .map(|e| e.id().as_str()),
            ),
            Change::Layer(id) => {
                experiments.extend(config.experiments_of_layer(id).map(|e| e.id().as_str()));
            }
            Change::SavedGroup(id) => {
                experiments.extend(
                    config
                        .experiments
                        .values()
                        .filter(|e| experiment_uses_group(config, e, id))
                        .map(|e| e.id().as_str()),
                );
                flags.extend(
                    config
                        .flags
                        .values()
                        .filter(|f| {
                            f.rules
                                .iter()
                                .any(|r| r.condition.saved_groups().any(|g| g == *id))
                        })
                        .map(|f| f.id.to_string()),
                );
            }
        }
        for id in experiments {
            // The flags it was attached to (before) and is attached to (now).
            if let Some(old) = self.experiment(id).and_then(|c| c.experiment().flag_id()) {
                flags.insert(old.to_string());
            }
            match config.experiments.get(id) {
                Some(e) => {
                    if let Some(f) = e.flag_id() {
                        flags.insert(f.to_string());
                    }
                    next.put_experiment(Arc::new(compile_experiment(config, e)?));
                }
                None => next.remove_experiment(id),
            }
        }
        for id in flags {
            match config.flags.get(&id) {
                Some(f) => {
                    let running = config
                        .experiments_of_flag(&id)
                        .filter(|e| e.status() == Status::Running)
                        .filter_map(|e| next.experiment(e.id().as_str()).cloned())
                        .collect();
                    next.flags.put(CompiledFlag::new(
                        f.active_at(config.as_of),
                        &config.groups,
                        running,
                    ));
                }
                None => next.flags.remove(&id),
            }
        }
        Ok(next)
    }

    fn put_experiment(&mut self, c: Arc<CompiledExperiment>) {
        let id = c.experiment().id().as_str().to_owned();
        let h = self.keys.hash_key(&id);
        let is = |e: &(u32, Arc<CompiledExperiment>)| key_eq(e.1.experiment().id().as_str(), &id);
        let slot = match self.experiment_slots.get(h, is) {
            Some(&(slot, _)) => slot,
            None => match self.free_experiments.pop() {
                Some(slot) => slot,
                None => self.experiment_slots.len() as u32,
            },
        };
        self.experiment_slots.insert(h, (slot, Arc::clone(&c)), is);
        self.experiments.set(slot, Some(c));
    }

    fn remove_experiment(&mut self, id: &str) {
        let h = self.keys.hash_key(id);
        if let Some((slot, _)) = self
            .experiment_slots
            .remove(h, |e| key_eq(e.1.experiment().id().as_str(), id))
        {
            self.experiments.set(slot, None);
            self.free_experiments.push(slot);
        }
    }

    /// The slot of experiment `id`, and the experiment.
    #[inline]
    pub(crate) fn experiment_entry(&self, id: &str) -> Option<(u32, &CompiledExperiment)> {
        let h = self.keys.hash_key(id);
        self.experiment_slots
            .get(h, |e| key_eq(e.1.experiment().id().as_str(), id))
            .map(|e| (e.0, &*e.1))
    }

    /// The experiment in `slot`.
    #[inline]
    pub(crate) fn experiment_at(&self, slot: u32) -> Option<&CompiledExperiment> {
        self.experiments.get(slot).map(|c| &**c)
    }

    /// Experiment `id`.
    pub(crate) fn experiment(&self, id: &str) -> Option<&Arc<CompiledExperiment>> {
        let h = self.keys.hash_key(id);
        self.experiment_slots
            .get(h, |e| key_eq(e.1.experiment().id().as_str(), id))
            .map(|e| &e.1)
    }

    /// How many experiments.
    pub(crate) fn experiment_count(&self) -> usize {
        self.experiment_slots.len()
    }
}

/// A flag served by a key entry: its slot and the flag.
type Served = (u32, Arc<CompiledFlag>);

/// The flags of one key in one project: the one for every environment and the
/// environment-specific ones (slots of [`FlagIndex`]).
#[derive(Clone, Debug)]
pub(crate) struct KeyEntry {
    project: Box<str>,
    key: Box<str>,
    /// The flag for every environment: its slot, and the flag (no second hop to serve it).
    any: Option<Served>,
    per_env: Vec<(EnvName, Served)>,
}

impl KeyEntry {
    /// The flag served in `environment`: its own, else the one for every environment.
    #[inline]
    pub(crate) fn for_env(&self, environment: &Env<'_>) -> Option<(u32, &CompiledFlag)> {
        let served = if self.per_env.is_empty() {
            self.any.as_ref()
        } else {
            self.per_env
                .iter()
                .find(|(e, _)| e.is(environment))
                .map(|(_, s)| s)
                .or(self.any.as_ref())
        };
        served.map(|(slot, f)| (*slot, &**f))
    }

    fn is_empty(&self) -> bool {
        self.any.is_none() && self.per_env.is_empty()
    }
}

/// The flag index of a snapshot. Lookups hash (project, key) once into a `u64` and compare the
/// strings of the (almost always single) entry found; `evaluate_all` walks a per-project list
/// sorted by key. Every part is shared between snapshots in chunks, so a one-flag change copies
/// a few hundred pointers and the touched chunks, not every flag.
#[derive(Clone, Debug, Default)]
pub(crate) struct FlagIndex {
    flags: Chunks<Arc<CompiledFlag>>,
    slots: SharedMap<(Box<str>, u32)>,
    free: Vec<u32>,
    by_key: SharedMap<Arc<KeyEntry>>,
    by_project: FastMap<Box<str>, SortedList<Arc<KeyEntry>>>,
    keys: Seeded,
}

impl FlagIndex {
    /// The slot of the flag served for `key` of `project` in `environment`.
    #[inline]
    pub(crate) fn find(
        &self,
        project: &str,
        environment: &Env<'_>,
        key: &str,
    ) -> Option<(u32, &CompiledFlag)> {
        self.entry(project, key)?.for_env(environment)
    }

    /// The flag in `slot`.
    #[inline]
    pub(crate) fn get(&self, slot: u32) -> Option<&CompiledFlag> {
        self.flags.get(slot).map(|f| &**f)
    }

    /// The key entries of `project`, sorted by key.
    pub(crate) fn project(
        &self,
        project: &str,
    ) -> Option<impl ExactSizeIterator<Item = &KeyEntry>> {
        let list = self.by_project.get(project)?;
        Some(Entries {
            inner: list.iter(),
            left: list.len(),
        })
    }

    #[inline]
    fn entry(&self, project: &str, key: &str) -> Option<&Arc<KeyEntry>> {
        let h = self.keys.hash_key_pair(project, key);
        self.by_key
            .get(h, |e| key_eq(&e.key, key) && key_eq(&e.project, project))
    }

    /// Replaces the entry of (project, key) with `entry` (gone when it has no flag left).
    fn set_entry(&mut self, project: &str, key: &str, entry: KeyEntry) {
        let h = self.keys.hash_key_pair(project, key);
        let is = |e: &Arc<KeyEntry>| key_eq(&e.key, key) && key_eq(&e.project, project);
        if entry.is_empty() {
            self.by_key.remove(h, is);
            if let Some(list) = self.by_project.get_mut(project) {
                list.remove(key);
                if list.is_empty() {
                    self.by_project.remove(project);
                }
            }
        } else {
            let entry = Arc::new(entry);
            self.by_key.insert(h, Arc::clone(&entry), is);
            self.by_project
                .entry(project.into())
                .or_default()
                .insert(key, entry);
        }
    }

    /// Adds or replaces a compiled flag.
    fn put(&mut self, flag: CompiledFlag) {
        let id = flag.flag.id.as_str();
        let h = self.keys.hash_key(id);
        let slot = match self.slots.get(h, |e| key_eq(&e.0, id)) {
            Some(&(_, slot)) => {
                self.unindex(slot);
                slot
            }
            None => {
                let slot = match self.free.pop() {
                    Some(slot) => slot,
                    None => self.slots.len() as u32,
                };
                self.slots
                    .insert(h, (id.into(), slot), |e| key_eq(&e.0, id));
                slot
            }
        };
        let (project, key) = (
            flag.flag.project_id.as_str().to_owned(),
            flag.flag.key.as_str().to_owned(),
        );
        let mut entry = self.entry(&project, &key).map_or_else(
            || KeyEntry {
                project: project.as_str().into(),
                key: key.as_str().into(),
                any: None,
                per_env: Vec::new(),
            },
            |e| (**e).clone(),
        );
        let flag = Arc::new(flag);
        match flag.flag.environment.as_deref() {
            None => entry.any = Some((slot, Arc::clone(&flag))),
            Some(env) => {
                let env = EnvName::new(env);
                entry.per_env.retain(|(e, _)| *e != env);
                entry.per_env.push((env, (slot, Arc::clone(&flag))));
            }
        }
        self.set_entry(&project, &key, entry);
        self.flags.set(slot, Some(flag));
    }

    /// Removes the flag `id`.
    fn remove(&mut self, id: &str) {
        let h = self.keys.hash_key(id);
        if let Some((_, slot)) = self.slots.remove(h, |e| key_eq(&e.0, id)) {
            self.unindex(slot);
            self.flags.set(slot, None);
            self.free.push(slot);
        }
    }

    /// Takes the flag in `slot` out of the key index.
    fn unindex(&mut self, slot: u32) {
        let Some(old) = self.flags.get(slot).cloned() else {
            return;
        };
        let (project, key) = (old.flag.project_id.as_str(), old.flag.key.as_str());
        let Some(mut entry) = self.entry(project, key).map(|e| (**e).clone()) else {
            return;
        };
        if entry.any.as_ref().is_some_and(|(s, _)| *s == slot) {
            entry.any = None;
        }
        entry.per_env.retain(|(_, (s, _))| *s != slot);
        self.set_entry(project, key, entry);
    }
}

/// The key entries of one project, in key order.
struct Entries<I> {
    inner: I,
    left: usize,
}

impl<'a, I: Iterator<Item = (&'a str, &'a Arc<KeyEntry>)>> Iterator for Entries<I> {
    type Item = &'a KeyEntry;

    fn next(&mut self) -> Option<&'a KeyEntry> {
        let (_, e) = self.inner.next()?;
        self.left = self.left.saturating_sub(1);
        Some(e)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<'a, I: Iterator<Item = (&'a str, &'a Arc<KeyEntry>)>> ExactSizeIterator for Entries<I> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_is_reused_until_the_snapshot_changes_and_old_pins_stay_valid() {
        let cell = SnapshotCell::default();
        let a = cell.pin();
        let b = cell.pin();
        assert!(Rc::ptr_eq(&a.0, &b.0), "the second pin is the cached one");
        cell.store(Snapshot::default());
        let c = cell.pin();
        assert!(!Rc::ptr_eq(&a.0, &c.0), "a store is seen by the next pin");
        assert!(Rc::ptr_eq(&c.0, &cell.pin().0));
        // The old pin still holds its snapshot.
        assert_eq!(a.experiment_count(), 0);
        // Many labs on one thread: each keeps working; the cache holds at most a few.
        let cells: Vec<SnapshotCell> = (0..10).map(|_| SnapshotCell::default()).collect();
        for cell in &cells {
            let p = cell.pin();
            assert!(Rc::ptr_eq(&p.0, &cell.pin().0));
        }
        PINS.with(|pins| assert!(pins.borrow().len() <= PINNED_PER_THREAD));
        // A dropped cell's snapshot is released at the next miss.
        let dropped = SnapshotCell::default();
        let weak = {
            let p = dropped.pin();
            Arc::downgrade(&p.0.0)
        };
        drop(dropped);
        SnapshotCell::default().pin();
        assert!(weak.upgrade().is_none(), "released");
    }
}
