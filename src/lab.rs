//! The facade: the control plane, the decision plane's entry points and the event plane's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::allocation::Traffic;
use crate::assign::{CompiledExperiment, Exposure, Holdout, Snapshot};
use crate::context::Context;
use crate::error::{Error, ValidationError};
use crate::lifecycle::{Operation, Status};
use crate::model::config::{Audience, Layer, SavedGroup, Settings};
use crate::model::experiment::{Experiment, ExperimentPatch, NewExperiment};
use crate::model::ids::{DefaultIdGenerator, ExperimentId, IdGenerator};
use crate::model::metric::MetricCatalogue;
use crate::storage::{MemoryStorage, Record, RecordKind, RecordWrite, Storage};
use crate::targeting::{Condition, SavedGroups};
use crate::time::{Clock, SystemClock, Timestamp};

/// Called with every exposure the event plane records (once per experiment and unit), to
/// forward to analytics: the feed API's `experiment_exposure`.
pub type ExposureHook = Arc<dyn Fn(&Exposure<'_>, Timestamp) + Send + Sync>;

/// The in-process experimentation service: create and run experiments, decide, record, analyse.
///
/// `Lab` is `Send + Sync`: share one behind an `Arc`. Decisions read an immutable compiled
/// snapshot that configuration changes replace atomically, so they never wait for writers.
///
/// # Examples
///
/// ```
/// use abkit::{Context, Lab, NewExperiment, NewVariant};
///
/// let lab = Lab::new();
/// let exp = lab.create_experiment(NewExperiment {
///     name: "Checkout button".into(),
///     variants: vec![NewVariant::named("control", "Blue"), NewVariant::named("green", "Green")],
///     ..NewExperiment::default()
/// })?;
/// lab.start(exp.id().as_str())?;
/// let assignment = lab.assign(exp.id().as_str(), &Context::new("usr_123"))?;
/// assert!(assignment.variant().is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Lab {
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    catalogue: MetricCatalogue,
    snapshot: ArcSwap<Snapshot>,
    hook: Option<ExposureHook>,
    /// Serialises this process's configuration writes so snapshots are rebuilt in order.
    writer: Mutex<()>,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("storage", &self.storage)
            .field("clock", &self.clock)
            .field("ids", &self.ids)
            .field("experiments", &self.snapshot.load().experiments.len())
            .field("hook", &self.hook.is_some())
            .finish_non_exhaustive()
    }
}

/// Sets up a [`Lab`]: storage, clock, id generator, metric catalogue, exposure hook.
#[derive(Default)]
pub struct LabBuilder {
    storage: Option<Arc<dyn Storage>>,
    clock: Option<Arc<dyn Clock>>,
    ids: Option<Arc<dyn IdGenerator>>,
    catalogue: Option<MetricCatalogue>,
    hook: Option<ExposureHook>,
}

impl std::fmt::Debug for LabBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabBuilder").finish_non_exhaustive()
    }
}

impl LabBuilder {
    /// Where configuration and events are kept (default: a new [`MemoryStorage`]).
    #[must_use]
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = Some(storage);
        self
    }

    /// Where "now" comes from (default: [`SystemClock`]).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// How new ids are made (default: [`DefaultIdGenerator`]).
    #[must_use]
    pub fn id_generator(mut self, ids: Arc<dyn IdGenerator>) -> Self {
        self.ids = Some(ids);
        self
    }

    /// The catalogue bare metric names resolve through (default: the built-ins).
    #[must_use]
    pub fn metric_catalogue(mut self, catalogue: MetricCatalogue) -> Self {
        self.catalogue = Some(catalogue);
        self
    }

    /// A callback for every recorded exposure.
    #[must_use]
    pub fn exposure_hook(
        mut self,
        hook: impl Fn(&Exposure<'_>, Timestamp) + Send + Sync + 'static,
    ) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// Builds the lab, loading the configuration already in storage.
    ///
    /// # Errors
    ///
    /// A storage failure, or stored configuration that does not validate.
    pub fn build(self) -> Result<Lab, Error> {
        let lab = Lab {
            storage: self
                .storage
                .unwrap_or_else(|| Arc::new(MemoryStorage::new())),
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            ids: self
                .ids
                .unwrap_or_else(|| Arc::new(DefaultIdGenerator::default())),
            catalogue: self.catalogue.unwrap_or_default(),
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            hook: self.hook,
            writer: Mutex::new(()),
        };
        lab.refresh()?;
        Ok(lab)
    }
}

/// Which page of experiments to list, and which statuses.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ListQuery {
    /// 1-based page number (default 1).
    pub page: u32,
    /// Items per page, 1 to 100 (default 20).
    pub limit: u32,
    /// Only this status. Archived experiments are listed only when asked for.
    pub status: Option<Status>,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            page: 1,
            limit: 20,
            status: None,
        }
    }
}

/// A page of results with the flow API's `meta`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items.
    pub data: Vec<T>,
    /// Paging facts.
    pub meta: PageMeta,
}

/// Paging facts: `{"total", "page", "limit", "totalPages"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageMeta {
    /// Items matching the filter.
    pub total: u64,
    /// This page.
    pub page: u32,
    /// Items per page.
    pub limit: u32,
    /// Pages in all (0 when there are no items).
    pub total_pages: u64,
}

/// How an experiment is stopped: optionally with a winner to roll out, and a reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StopRequest {
    /// The variant to roll out to everyone in the audience.
    #[serde(default)]
    pub winner: Option<String>,
    /// Why it was stopped.
    #[serde(default)]
    pub reason: Option<String>,
}

fn decode<T: DeserializeOwned>(r: &Record) -> Result<T, Error> {
    serde_json::from_value(r.body.clone()).map_err(|e| {
        Error::Storage(crate::storage::StorageError::Corrupt(format!(
            "{} {:?}: {e}",
            r.kind, r.id
        )))
    })
}

fn encode<T: Serialize>(value: &T) -> Result<serde_json::Value, Error> {
    serde_json::to_value(value)
        .map_err(|e| Error::Storage(crate::storage::StorageError::Backend(e.to_string())))
}

/// A condition that never matches (`$not` of the empty condition): stands in for an audience
/// that is missing.
fn never() -> Option<Condition> {
    Condition::parse(&serde_json::json!({"$not": {}})).ok()
}

impl Lab {
    /// A lab on a new in-memory store with the system clock.
    pub fn new() -> Lab {
        Lab {
            storage: Arc::new(MemoryStorage::new()),
            clock: Arc::new(SystemClock),
            ids: Arc::new(DefaultIdGenerator::default()),
            catalogue: MetricCatalogue::default(),
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            hook: None,
            writer: Mutex::new(()),
        }
    }

    /// A builder for a lab with its own storage, clock, ids, catalogue or exposure hook.
    pub fn builder() -> LabBuilder {
        LabBuilder::default()
    }

    /// The storage behind this lab.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The metric catalogue.
    pub fn catalogue(&self) -> &MetricCatalogue {
        &self.catalogue
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub(crate) fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    pub(crate) fn hook(&self) -> Option<&ExposureHook> {
        self.hook.as_ref()
    }

    pub(crate) fn lock_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reloads every configuration record from storage and swaps in a new compiled snapshot.
    /// Call it to pick up changes another process made to a shared store.
    ///
    /// # Errors
    ///
    /// A storage failure or a stored record that does not validate; the old snapshot stays.
    pub fn refresh(&self) -> Result<(), Error> {
        let _w = self.lock_writer();
        self.rebuild()
    }

    /// Compiles and swaps in a new snapshot. The caller holds the writer lock, so snapshots
    /// are stored in the order of the writes they reflect (an older one never replaces a newer).
    pub(crate) fn rebuild(&self) -> Result<(), Error> {
        let snapshot = self.compile()?;
        self.snapshot.store(Arc::new(snapshot));
        Ok(())
    }

    fn list_kind<T: DeserializeOwned>(&self, kind: RecordKind) -> Result<Vec<(T, u64)>, Error> {
        self.storage
            .list_records(kind)?
            .iter()
            .map(|r| decode(r).map(|t| (t, r.version)))
            .collect()
    }

    fn compile(&self) -> Result<Snapshot, Error> {
        let mut groups = SavedGroups::default();
        for (g, _) in self.list_kind::<SavedGroup>(RecordKind::SavedGroup)? {
            groups.insert(g.id.as_str(), g.values);
        }
        let audiences: BTreeMap<String, Condition> = self
            .list_kind::<Audience>(RecordKind::Audience)?
            .into_iter()
            .map(|(a, _)| (a.id.to_string(), a.condition.bind_lenient(&groups)))
            .collect();
        let layers: BTreeMap<String, Layer> = self
            .list_kind::<Layer>(RecordKind::Layer)?
            .into_iter()
            .map(|(l, _)| (l.id.to_string(), l))
            .collect();
        let settings = self.settings()?.0;
        let mut snapshot = Snapshot::default();
        for (mut e, version) in self.list_kind::<Experiment>(RecordKind::Experiment)? {
            e.data_mut().version = version;
            let mut conditions = Vec::new();
            if let Some(aud) = e.audience_id() {
                conditions.extend(audiences.get(aud.as_str()).cloned().or_else(never));
            }
            if let Some(t) = e.targeting() {
                conditions.push(t.bind_lenient(&groups));
            }
            let layer_salt = e
                .layer()
                .and_then(|p| layers.get(p.id.as_str()))
                .map(Layer::salt);
            let compiled = CompiledExperiment::new(
                e.clone(),
                conditions,
                layer_salt,
                settings.holdout.as_ref(),
            )?;
            snapshot
                .experiments
                .insert(e.id().as_str().into(), Arc::new(compiled));
        }
        crate::flags::compile_flags(self, &mut snapshot, &groups)?;
        Ok(snapshot)
    }

    fn settings(&self) -> Result<(Settings, Option<u64>), Error> {
        match self.storage.get_record(RecordKind::Settings, "settings")? {
            Some(r) => Ok((decode(&r)?, Some(r.version))),
            None => Ok((Settings::default(), None)),
        }
    }

    /// Writes a record and refreshes the snapshot. The caller holds the writer lock.
    pub(crate) fn write(
        &self,
        kind: RecordKind,
        id: &str,
        unique_key: Option<&str>,
        body: &serde_json::Value,
        expected: Option<u64>,
    ) -> Result<u64, Error> {
        let v = self.storage.put_record(
            RecordWrite {
                kind,
                id,
                unique_key,
                body,
            },
            expected,
        )?;
        self.rebuild()?;
        Ok(v)
    }

    /// Writes a record under the writer lock and refreshes the snapshot.
    pub(crate) fn write_config(
        &self,
        kind: RecordKind,
        id: &str,
        unique_key: Option<&str>,
        body: &serde_json::Value,
        expected: Option<u64>,
    ) -> Result<u64, Error> {
        let _w = self.lock_writer();
        self.write(kind, id, unique_key, body, expected)
    }

    pub(crate) fn new_id(&self, prefix: &str) -> String {
        self.ids.generate(prefix)
    }

    // ----- experiments -----

    /// Creates a draft experiment from a request (any source API's create body).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] naming the field and value; a storage failure.
    pub fn create_experiment(&self, new: NewExperiment) -> Result<Experiment, Error> {
        let id = ExperimentId::new(self.ids.generate("exp_"))?;
        let _w = self.lock_writer();
        let mut e = Experiment::create(new, id, self.now(), &self.catalogue)?;
        if let Some(f) = e.flag_id() {
            crate::flags::check_flag_experiment(self, f.as_str(), &e)?;
        }
        let v = self.write(
            RecordKind::Experiment,
            e.id().as_str(),
            None,
            &encode(&e)?,
            None,
        )?;
        e.data_mut().version = v;
        Ok(e)
    }

    /// The experiment `id`, as stored.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; a storage failure.
    pub fn get_experiment(&self, id: &str) -> Result<Experiment, Error> {
        let r = self
            .storage
            .get_record(RecordKind::Experiment, id)?
            .ok_or_else(|| Error::not_found("experiment", id))?;
        let mut e: Experiment = decode(&r)?;
        e.data_mut().version = r.version;
        Ok(e)
    }

    /// A page of experiments, newest first, optionally of one status. Archived experiments are
    /// hidden unless the filter asks for them.
    ///
    /// # Errors
    ///
    /// `page` 0, `limit` 0 or over 100; a storage failure.
    pub fn list_experiments(&self, query: &ListQuery) -> Result<Page<Experiment>, Error> {
        if query.page == 0 {
            return Err(
                ValidationError::field("page", "0 is not a page number; pages start at 1").into(),
            );
        }
        if !(1..=100).contains(&query.limit) {
            return Err(ValidationError::field(
                "limit",
                format!("{} is outside 1..=100", query.limit),
            )
            .into());
        }
        let mut all: Vec<Experiment> = self
            .list_kind::<Experiment>(RecordKind::Experiment)?
            .into_iter()
            .map(|(mut e, v)| {
                e.data_mut().version = v;
                e
            })
            .filter(|e| match query.status {
                Some(s) => e.status() == s,
                None => e.status() != Status::Archived,
            })
            .collect();
        all.sort_by(|a, b| {
            b.created_at()
                .cmp(&a.created_at())
                .then_with(|| b.id().cmp(a.id()))
        });
        let total = all.len() as u64;
        let limit = u64::from(query.limit);
        let skip = u64::from(query.page - 1).saturating_mul(limit);
        let data = all
            .into_iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .take(query.limit as usize)
            .collect();
        Ok(Page {
            data,
            meta: PageMeta {
                total,
                page: query.page,
                limit: query.limit,
                total_pages: total.div_ceil(limit),
            },
        })
    }

    /// Applies `op` to experiment `id` if its status allows it, writing the change `f` makes.
    fn transition(
        &self,
        id: &str,
        op: Operation,
        f: impl FnOnce(&mut Experiment, Timestamp) -> Result<(), Error>,
    ) -> Result<Experiment, Error> {
        let _w = self.lock_writer();
        let mut e = self.get_experiment(id)?;
        let next = e.status().apply(op).ok_or_else(|| Error::Lifecycle {
            id: id.to_owned(),
            operation: op,
            status: e.status(),
        })?;
        let now = self.now();
        f(&mut e, now)?;
        let expected = e.version();
        let d = e.data_mut();
        d.status = next;
        d.updated_at = now;
        let e = Experiment::from_data(e.into_data())?;
        let v = self.write(
            RecordKind::Experiment,
            id,
            None,
            &encode(&e)?,
            Some(expected),
        )?;
        let mut e = e;
        e.data_mut().version = v;
        Ok(e)
    }

    /// Changes a draft experiment: only the fields given.
    ///
    /// # Errors
    ///
    /// [`Error::Lifecycle`] unless it is a draft; [`Error::Validation`]; a storage failure
    /// (including a concurrent change: re-read and retry).
    pub fn update_experiment(&self, id: &str, patch: ExperimentPatch) -> Result<Experiment, Error> {
        let catalogue = &self.catalogue;
        self.transition(id, Operation::Update, |e, now| {
            *e = e.patched(patch, now, catalogue)?;
            Ok(())
        })
    }

    /// Changes the traffic fraction of a draft or running experiment (a ramp). Raising it only
    /// adds units; lowering it only removes units; no unit ever changes variant.
    ///
    /// # Errors
    ///
    /// [`Error::Lifecycle`] unless draft or running; a fraction outside [0, 1] or not a whole
    /// number of basis points.
    pub fn ramp(&self, id: &str, traffic: f64) -> Result<Experiment, Error> {
        self.transition(id, Operation::Ramp, |e, _| {
            if !(traffic.is_finite() && (0.0..=1.0).contains(&traffic)) {
                return Err(ValidationError::field(
                    "traffic",
                    format!("{traffic} is outside [0, 1]"),
                )
                .into());
            }
            e.data_mut().traffic = Traffic::from_fraction(traffic)
                .map_err(|err| ValidationError::field("traffic", err.to_string()))?;
            Ok(())
        })
    }

    /// Starts a draft experiment. Its audience and saved groups must exist; its layer must exist
    /// and its range may not overlap a running experiment of the layer or the layer's holdout.
    ///
    /// # Errors
    ///
    /// [`Error::Lifecycle`] unless draft; [`Error::NotFound`] for a missing audience, saved
    /// group or layer; [`Error::Conflict`] for an overlapping range.
    pub fn start(&self, id: &str) -> Result<Experiment, Error> {
        self.transition(id, Operation::Start, |e, now| {
            self.check_startable(e)?;
            e.data_mut().started_at = Some(now);
            Ok(())
        })
    }

    fn check_startable(&self, e: &Experiment) -> Result<(), Error> {
        let mut groups = SavedGroups::default();
        for (g, _) in self.list_kind::<SavedGroup>(RecordKind::SavedGroup)? {
            groups.insert(g.id.as_str(), g.values);
        }
        if let Some(aud) = e.audience_id() {
            let r = self
                .storage
                .get_record(RecordKind::Audience, aud.as_str())?
                .ok_or_else(|| Error::not_found("audience", aud.as_str()))?;
            let a: Audience = decode(&r)?;
            a.condition
                .bind(&groups)
                .map_err(|err| ValidationError::field("audienceId", err.to_string()))?;
        }
        if let Some(t) = e.targeting() {
            t.bind(&groups)
                .map_err(|err| ValidationError::field("targeting", err.to_string()))?;
        }
        if let Some(p) = e.layer() {
            let r = self
                .storage
                .get_record(RecordKind::Layer, p.id.as_str())?
                .ok_or_else(|| Error::not_found("layer", p.id.as_str()))?;
            let layer: Layer = decode(&r)?;
            if let Some(h) = layer.holdout
                && h.overlaps(&p.range)
            {
                return Err(Error::Conflict(format!(
                    "layer range {}..{} of experiment {:?} overlaps the holdout {}..{} of layer {:?}",
                    p.range.start(),
                    p.range.end(),
                    e.id().as_str(),
                    h.start(),
                    h.end(),
                    p.id.as_str()
                )));
            }
            for (other, _) in self.list_kind::<Experiment>(RecordKind::Experiment)? {
                if other.id() == e.id() || other.status() != Status::Running {
                    continue;
                }
                if let Some(q) = other.layer()
                    && q.id == p.id
                    && q.range.overlaps(&p.range)
                {
                    return Err(Error::Conflict(format!(
                        "layer range {}..{} of experiment {:?} overlaps running experiment {:?} ({}..{}) in layer {:?}",
                        p.range.start(),
                        p.range.end(),
                        e.id().as_str(),
                        other.id().as_str(),
                        q.range.start(),
                        q.range.end(),
                        p.id.as_str()
                    )));
                }
            }
        }
        if let Some(f) = e.flag_id() {
            crate::flags::check_flag_experiment(self, f.as_str(), e)?;
            for (other, _) in self.list_kind::<Experiment>(RecordKind::Experiment)? {
                let same_env = match (other.environment(), e.environment()) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                };
                if other.id() != e.id()
                    && other.status() == Status::Running
                    && other.flag_id() == Some(f)
                    && same_env
                {
                    return Err(Error::Conflict(format!(
                        "flag {:?} already has running experiment {:?} in environment {:?}; stop it first",
                        f.as_str(),
                        other.id().as_str(),
                        e.environment().unwrap_or("*")
                    )));
                }
            }
        }
        Ok(())
    }

    /// Stops a running experiment, optionally with a winner (one of its variants) that is then
    /// rolled out to everyone in its audience, and a reason. Existing assignments and events
    /// stay for results.
    ///
    /// # Errors
    ///
    /// [`Error::Lifecycle`] unless running; an unknown winner.
    pub fn stop(&self, id: &str, request: StopRequest) -> Result<Experiment, Error> {
        self.transition(id, Operation::Stop, |e, now| {
            let winner = match &request.winner {
                None => None,
                Some(w) => Some(
                    e.variant(w)
                        .ok_or_else(|| {
                            ValidationError::field("winner", format!("unknown variant {w:?}"))
                        })?
                        .id
                        .clone(),
                ),
            };
            let d = e.data_mut();
            d.winner = winner;
            d.stop_reason = request.reason.clone();
            d.ended_at = Some(now);
            Ok(())
        })
    }

    /// Marks a running or stopped experiment completed.
    ///
    /// # Errors
    ///
    /// [`Error::Lifecycle`] unless running or stopped.
    pub fn complete(&self, id: &str) -> Result<Experiment, Error> {
        self.transition(id, Operation::Complete, |e, now| {
            let d = e.data_mut();
            d.ended_at = d.ended_at.or(Some(now));
            Ok(())
        })
    }

    /// Archives an experiment that is not running.
    ///
    /// # Errors
    ///
    /// [`Error::Lifecycle`] when running or already archived.
    pub fn archive(&self, id: &str) -> Result<Experiment, Error> {
        self.transition(id, Operation::Archive, |_, _| Ok(()))
    }

    /// Deletes an experiment that is not running, with its events.
    ///
    /// # Errors
    ///
    /// [`Error::Lifecycle`] when running; [`Error::NotFound`].
    pub fn delete_experiment(&self, id: &str) -> Result<(), Error> {
        let _w = self.lock_writer();
        let e = self.get_experiment(id)?;
        if !e.status().allows(Operation::Delete) {
            return Err(Error::Lifecycle {
                id: id.to_owned(),
                operation: Operation::Delete,
                status: e.status(),
            });
        }
        self.storage
            .delete_record(RecordKind::Experiment, id, e.version())?;
        self.rebuild()?;
        self.storage.purge_events(id)?;
        Ok(())
    }

    // ----- audiences, saved groups, layers, holdout -----

    /// Creates or replaces an audience. Its condition is validated when it is parsed.
    ///
    /// # Errors
    ///
    /// A storage failure.
    pub fn put_audience(&self, audience: &Audience) -> Result<(), Error> {
        self.put_config(
            RecordKind::Audience,
            audience.id.as_str(),
            &encode(audience)?,
        )
    }

    /// Creates or replaces a saved group.
    ///
    /// # Errors
    ///
    /// A storage failure.
    pub fn put_saved_group(&self, group: &SavedGroup) -> Result<(), Error> {
        self.put_config(RecordKind::SavedGroup, group.id.as_str(), &encode(group)?)
    }

    /// Creates or replaces a layer.
    ///
    /// # Errors
    ///
    /// A storage failure.
    pub fn put_layer(&self, layer: &Layer) -> Result<(), Error> {
        self.put_config(RecordKind::Layer, layer.id.as_str(), &encode(layer)?)
    }

    /// Sets (or clears) the global holdout: units in it are enrolled in no experiment.
    ///
    /// # Errors
    ///
    /// A storage failure.
    pub fn set_holdout(&self, holdout: Option<Holdout>) -> Result<(), Error> {
        let _w = self.lock_writer();
        let (mut settings, version) = self.settings()?;
        settings.holdout = holdout;
        self.write(
            RecordKind::Settings,
            "settings",
            None,
            &encode(&settings)?,
            version,
        )?;
        Ok(())
    }

    fn put_config(
        &self,
        kind: RecordKind,
        id: &str,
        body: &serde_json::Value,
    ) -> Result<(), Error> {
        let _w = self.lock_writer();
        let version = self.storage.get_record(kind, id)?.map(|r| r.version);
        self.write(kind, id, None, body, version)?;
        Ok(())
    }

    // ----- decisions -----

    /// Decides which variant `ctx`'s unit sees in experiment `id`, from the snapshot. Pure:
    /// records nothing (record the returned exposure with [`Lab::record_exposure`], or use
    /// [`Lab::expose`]).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown experiment.
    pub fn assign(&self, id: &str, ctx: &Context) -> Result<Decision, Error> {
        let snapshot = self.snapshot();
        let compiled = snapshot
            .experiments
            .get(id)
            .ok_or_else(|| Error::not_found("experiment", id))?;
        let a = compiled.assign(ctx);
        Ok(Decision {
            variant: a.variant_index(),
            reason: a.reason(),
            sticky: a.sticky_assignment().is_some(),
            compiled: Arc::clone(compiled),
        })
    }
}

impl Lab {
    /// The compiled form of experiment `id` from the current snapshot: call
    /// [`CompiledExperiment::assign`] on it directly in a hot loop (it stays valid, though stale,
    /// after configuration changes).
    pub fn compiled_experiment(&self, id: &str) -> Option<Arc<CompiledExperiment>> {
        self.snapshot().experiments.get(id).cloned()
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

/// The outcome of [`Lab::assign`]: owns its compiled experiment (an `Arc`, no copy) so it does not
/// borrow the lab or the context.
#[derive(Debug, Clone)]
pub struct Decision {
    compiled: Arc<CompiledExperiment>,
    variant: Option<u32>,
    reason: crate::assign::Reason,
    sticky: bool,
}

impl Decision {
    /// The assigned variant, if any.
    pub fn variant(&self) -> Option<&crate::model::variant::Variant> {
        self.variant
            .and_then(|i| self.compiled.experiment().variants().get(i as usize))
    }

    /// The assigned variant's id.
    pub fn variant_key(&self) -> Option<&crate::model::ids::VariantKey> {
        self.variant().map(|v| &v.id)
    }

    /// Why.
    pub fn reason(&self) -> crate::assign::Reason {
        self.reason
    }

    /// The experiment decided on.
    pub fn experiment(&self) -> &Experiment {
        self.compiled.experiment()
    }

    /// The exposure to record, for the context the decision was made for (its unit id is read
    /// from `ctx`; the variant is the one decided). `None` for a rollout or no variant.
    pub fn exposure<'a>(&'a self, ctx: &'a Context) -> Option<Exposure<'a>> {
        if self.reason == crate::assign::Reason::Rollout {
            return None;
        }
        self.compiled.exposure_for(
            ctx,
            self.variant?,
            self.reason == crate::assign::Reason::Forced,
        )
    }

    /// For a sticky experiment, the new assignment to store: (experiment id, variant id).
    pub fn sticky_assignment(&self) -> Option<(&str, &str)> {
        if !self.sticky {
            return None;
        }
        Some((
            self.experiment().id().as_str(),
            self.variant_key()?.as_str(),
        ))
    }
}
