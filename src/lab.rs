//! The facade: one [`Lab`] composing the planes, with a handle per plane and the decision
//! shortcuts.

use std::sync::Arc;

use serde_json::Value;

use crate::control::experiments::Experiments;
use crate::control::flags::Flags;
use crate::control::schedule::TickReport;
use crate::control::targeting::Targeting;
use crate::control::{Control, SyncReport};
use crate::decision::context::Context;
use crate::decision::experiment::{CompiledExperiment, Exposure};
use crate::decision::flag::{ErrorCode, EvaluateAllResponse, Evaluation};
use crate::decision::{Decision, Peek};
use crate::error::{Error, Result};
use crate::events::{Events, ExposureHook, IngestError, IngestOptions, Ingestor, Source};
use crate::model::ids::{DefaultIdGenerator, IdGenerator, VariantKey};
use crate::model::metric::MetricCatalogue;
use crate::reports::Reports;
use crate::storage::{MemoryStorage, Storage};
use crate::time::{Clock, SystemClock, Timestamp};

/// The in-process experimentation service: configure experiments and flags, decide, record,
/// report.
///
/// | plane | handle | what |
/// |---|---|---|
/// | control | [`Lab::experiments`], [`Lab::flags`], [`Lab::targeting`] | create / get / list / update / delete; the lifecycle verbs |
/// | decision | [`Lab::assign`], [`Lab::peek`], [`Lab::evaluate`], [`Lab::evaluate_all`], … | pure reads of the compiled snapshot |
/// | events | [`Lab::events`] (and [`Lab::expose`]) | exposures, conversions, values, covariates |
/// | reports | [`Lab::reports`] | counts, raw and computed results, the analysis |
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
/// let exp = lab.experiments().create(NewExperiment {
///     name: "Checkout button".into(),
///     variants: vec![NewVariant::named("control", "Blue"), NewVariant::named("green", "Green")],
///     ..NewExperiment::default()
/// })?;
/// lab.experiments().start(exp.id().as_str())?;
/// let ctx = Context::new("usr_123");
/// let decision = lab.assign(exp.id().as_str(), &ctx)?;
/// assert!(decision.variant().is_some());
/// // The exposure is the decided unit's: there is no way to pass another context.
/// if let Some(exposure) = decision.exposure() {
///     lab.events().record(&exposure)?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Lab {
    control: Control,
    hook: Option<ExposureHook>,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("control", &self.control)
            .field("hook", &self.hook.is_some())
            .finish()
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

    /// Where "now" comes from (default: [`SystemClock`]). Ids are made from it too.
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
    /// A storage failure, or stored configuration that does not decode.
    pub fn build(self) -> Result<Lab> {
        let lab = Lab {
            control: Control::new(
                self.storage
                    .unwrap_or_else(|| Arc::new(MemoryStorage::new())),
                self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                self.ids
                    .unwrap_or_else(|| Arc::new(DefaultIdGenerator::default())),
                self.catalogue.unwrap_or_default(),
            ),
            hook: self.hook,
        };
        lab.refresh()?;
        Ok(lab)
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Lab {
    /// A lab on a new in-memory store with the system clock.
    pub fn new() -> Lab {
        Lab {
            control: Control::new(
                Arc::new(MemoryStorage::new()),
                Arc::new(SystemClock),
                Arc::new(DefaultIdGenerator::default()),
                MetricCatalogue::default(),
            ),
            hook: None,
        }
    }

    /// A builder for a lab with its own storage, clock, ids, catalogue or exposure hook.
    pub fn builder() -> LabBuilder {
        LabBuilder::default()
    }

    /// The storage behind this lab.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.control.storage
    }

    /// The clock every write and event is stamped with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.control.clock
    }

    /// The metric catalogue.
    pub fn catalogue(&self) -> &MetricCatalogue {
        &self.control.catalogue
    }

    /// Reloads every configuration record from storage and swaps in a new compiled snapshot.
    /// Call it to pick up changes another process made to a shared store.
    ///
    /// # Errors
    ///
    /// A storage failure or a stored record that does not decode; the old snapshot stays.
    pub fn refresh(&self) -> Result<()> {
        self.control.refresh()
    }

    /// Applies the configuration writes other instances committed to a shared store since this
    /// lab last loaded or synced, from the store's change feed: each changed record is re-read
    /// and only it, and what depends on it, is recompiled (a full reload only when the feed no
    /// longer reaches back far enough). On a store without a feed (the memory store) it does
    /// nothing. [`crate::fleet::Watcher`] calls it whenever the store signals a change.
    ///
    /// # Errors
    ///
    /// A storage failure or a record that does not decode; what was applied stays, and the
    /// next sync resumes from the same position.
    pub fn sync(&self) -> Result<SyncReport> {
        self.control.sync()
    }

    /// Applies what time has made due, as of `now` (the host's clock, passed in: a tick reads
    /// none): drafts whose `startAt` has come are started, running experiments whose `stopAt`
    /// has come are stopped, flag rules whose `activeFrom` / `activeUntil` was crossed are
    /// recompiled, and bandits whose update period has passed get new weights (Thompson
    /// sampling on their primary metric, seeded by experiment id and weight version).
    ///
    /// Safe to call from every instance on a shared store: each transition is a versioned
    /// write, so exactly one instance makes it and the others report it in
    /// [`TickReport::lost`]. A late tick catches up on everything due by `now`. When nothing
    /// is due it reads no storage (see BENCHMARKS.md).
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::{Lab, NewExperiment, NewVariant, Status, Timestamp};
    ///
    /// let lab = Lab::new();
    /// let at: Timestamp = "2030-01-01T00:00:00Z".parse()?;
    /// let exp = lab.experiments().create(NewExperiment {
    ///     name: "Scheduled".into(),
    ///     variants: vec![NewVariant::named("a", "A"), NewVariant::named("b", "B")],
    ///     start_at: Some(at),
    ///     ..NewExperiment::default()
    /// })?;
    /// let id = exp.id().as_str();
    /// assert!(lab.tick(at.add_millis(-1))?.started.is_empty());
    /// assert_eq!(lab.tick(at)?.started, vec![id.to_owned()]);
    /// assert_eq!(lab.experiments().get(id)?.status(), Status::Running);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A storage failure reading or recompiling what changed. A transition that fails on its
    /// own (a storage error, a start whose audience is missing) does not stop the others: it is
    /// listed in [`TickReport::failed`] and retried by the next tick.
    pub fn tick(&self, now: Timestamp) -> Result<TickReport> {
        crate::control::schedule::tick(&self.control, now)
    }

    // ----- the planes -----

    /// Experiments: create, get, list, update (drafts), delete, and the lifecycle verbs.
    pub fn experiments(&self) -> Experiments<'_> {
        Experiments::new(&self.control)
    }

    /// Flags: create, get, list, update, delete, and their experiments.
    pub fn flags(&self) -> Flags<'_> {
        Flags::new(&self.control)
    }

    /// Audiences, saved groups, layers and the global holdout.
    pub fn targeting(&self) -> Targeting<'_> {
        Targeting::new(&self.control)
    }

    /// The event plane: exposures, conversions, metric values, covariates.
    pub fn events(&self) -> Events<'_> {
        Events::new(
            &*self.control.storage,
            &*self.control.clock,
            &self.control.snapshot,
            self.hook.as_ref(),
        )
    }

    /// Reports: counts, raw and computed results, the analysis.
    pub fn reports(&self) -> Reports<'_> {
        Reports::new(
            self.experiments(),
            &*self.control.storage,
            &*self.control.clock,
        )
    }

    // ----- decisions -----

    /// Decides which variant `ctx`'s unit sees in experiment `id`, from the snapshot. Pure:
    /// records nothing. The decision remembers `ctx`: record its
    /// [`exposure`](Decision::exposure) with [`Events::record`], or use [`Lab::expose`].
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown experiment.
    #[inline]
    pub fn assign<'c>(&self, id: &str, ctx: &'c Context) -> Result<Decision<'c>> {
        Decision::new(self.control.snapshot.pin(), id, ctx)
            .ok_or_else(|| Error::not_found("experiment", id))
    }

    /// Decides like [`Lab::assign`] but implies no exposure: for previews and QA tools.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown experiment.
    pub fn peek<'c>(&self, id: &str, ctx: &'c Context) -> Result<Peek<'c>> {
        Peek::new(self.control.snapshot.pin(), id, ctx)
            .ok_or_else(|| Error::not_found("experiment", id))
    }

    /// Decides and records in one call: assigns `ctx`'s unit in experiment `id`, records the
    /// exposure (if any) and stores a new sticky assignment. Returns the variant id served.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; a storage failure.
    pub fn expose(&self, id: &str, ctx: &Context) -> Result<Option<VariantKey>> {
        self.events().expose(id, ctx)
    }

    /// The compiled form of experiment `id` from the current snapshot: call
    /// [`CompiledExperiment::assign`] on it directly in a hot loop (it stays valid, though stale,
    /// after configuration changes).
    pub fn compiled_experiment(&self, id: &str) -> Option<Arc<CompiledExperiment>> {
        self.control.snapshot.load().experiment(id).cloned()
    }

    /// Evaluates flag `key` of `project` in `environment` for `ctx`. Never fails: problems are
    /// reported through [`Evaluation::reason`] and [`Evaluation::error_code`]. Reads only the
    /// snapshot: no I/O, no clock, no allocation.
    #[inline]
    pub fn evaluate<'c>(
        &self,
        project: &str,
        environment: &str,
        key: &str,
        ctx: &'c Context,
    ) -> Evaluation<'c> {
        Evaluation::new(self.control.snapshot.pin(), project, environment, key, ctx)
    }

    /// Evaluates every flag of `project` in `environment`. One allocation (the result list);
    /// every value is borrowed from the snapshot. Serialize it as the flag API's response with
    /// [`crate::wire::flag::EvaluateResponse`].
    pub fn evaluate_all<'c>(
        &self,
        project: &str,
        environment: &str,
        ctx: &'c Context,
    ) -> EvaluateAllResponse<'c> {
        EvaluateAllResponse::new(self.control.snapshot.pin(), project, environment, ctx)
    }

    /// Evaluates a flag as a bool, with `default` for any error or type mismatch.
    pub fn bool_value(
        &self,
        project: &str,
        environment: &str,
        key: &str,
        ctx: &Context,
        default: bool,
    ) -> bool {
        self.evaluate(project, environment, key, ctx)
            .bool_or(default)
    }

    /// Evaluates a flag as a string, with `default` for any error or type mismatch.
    pub fn string_value(
        &self,
        project: &str,
        environment: &str,
        key: &str,
        ctx: &Context,
        default: &str,
    ) -> String {
        self.evaluate(project, environment, key, ctx)
            .str_or(default)
            .to_owned()
    }

    /// Evaluates a flag as a number, with `default` for any error or type mismatch.
    pub fn number_value(
        &self,
        project: &str,
        environment: &str,
        key: &str,
        ctx: &Context,
        default: f64,
    ) -> f64 {
        self.evaluate(project, environment, key, ctx)
            .f64_or(default)
    }

    /// Evaluates a flag as JSON, with `default` for a flag not found.
    pub fn json_value(
        &self,
        project: &str,
        environment: &str,
        key: &str,
        ctx: &Context,
        default: Value,
    ) -> Value {
        let e = self.evaluate(project, environment, key, ctx);
        if e.error_code() == Some(ErrorCode::FlagNotFound) {
            default
        } else {
            e.value().clone()
        }
    }
}

impl Source for Lab {
    fn events(&self) -> Events<'_> {
        Lab::events(self)
    }
}

impl Ingestor {
    /// Starts an ingestor writing into `lab`: spawns its one background flusher thread
    /// (`abkit-ingest`), which holds the lab until [`Ingestor::shutdown`] or drop.
    ///
    /// # Errors
    ///
    /// [`IngestError::InvalidOption`] for an option out of range; [`IngestError::Thread`] when
    /// the thread cannot be spawned.
    pub fn start(lab: Arc<Lab>, options: IngestOptions) -> Result<Ingestor, IngestError> {
        Ingestor::spawn(lab, options)
    }
}
