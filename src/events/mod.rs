//! The event plane: recording exposures, conversions, metric values and covariates.
//!
//! Events are checked against the snapshot (the experiment runs, the metric exists, the value
//! fits its kind) and folded by storage into per-variant sufficient statistics.
//!
//! Architecture invariant: the event plane imports `model`, `decision`, `storage` and `error`,
//! and is the only caller of `Storage::apply_events` / `apply_event`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::decision::context::Context;
use crate::decision::experiment::{CompiledExperiment, Exposure};
use crate::decision::snapshot::{Snapshot, SnapshotCell};
use crate::error::{Error, Result, ValidationError};
use crate::model::ids::VariantKey;
use crate::model::lifecycle::{Operation, Status};
use crate::model::metric::MetricKind;
use crate::storage::{
    Aggregation, EventOutcome, MetricSlot, Storage, StorageError, UnitEvent, UnitEventKind,
};
use crate::time::{Clock, Timestamp};

mod ingest;

pub(crate) use ingest::Source;
pub use ingest::{IngestError, IngestOptions, IngestStats, Ingestor};

/// Called with every exposure the event plane records (once per experiment and unit), to
/// forward to analytics: the feed API's `experiment_exposure`.
pub type ExposureHook = Arc<dyn Fn(&Exposure<'_>, Timestamp) + Send + Sync>;

/// The event plane of a lab: `lab.events()`.
#[derive(Clone, Copy)]
pub struct Events<'l> {
    storage: &'l dyn Storage,
    clock: &'l dyn Clock,
    snapshot: &'l SnapshotCell,
    hook: Option<&'l ExposureHook>,
}

impl std::fmt::Debug for Events<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("storage", &self.storage)
            .field("hook", &self.hook.is_some())
            .finish_non_exhaustive()
    }
}

/// An event to track: the flag API's track body (`experiment_id`, `user_id`) deserializes into
/// it as written; `goal` (the metric) defaults to `conversion`.
///
/// A `proportion` metric's event is a conversion (counted once per unit); a `mean` metric's
/// needs `value` (summed per unit); a `ratio` metric's needs `value` (numerator) and
/// `denominator`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrackEvent {
    /// The experiment.
    #[serde(alias = "experiment_id")]
    pub experiment_id: String,
    /// The unit (the flag API's `user_id`).
    #[serde(alias = "user_id", alias = "userId")]
    pub unit_id: String,
    /// The metric (default `conversion`).
    #[serde(default, alias = "metric")]
    pub goal: Option<String>,
    /// The value, for mean and ratio metrics.
    #[serde(default)]
    pub value: Option<f64>,
    /// The denominator, for ratio metrics.
    #[serde(default)]
    pub denominator: Option<f64>,
    /// An id that makes retries idempotent: an event whose id was already counted for this
    /// experiment, unit and goal is [`EventOutcome::DuplicateEventId`]. Ids are per goal, so
    /// one order id may carry a conversion and a revenue value. At most
    /// [`MAX_EVENT_ID_LEN`](crate::storage::MAX_EVENT_ID_LEN) bytes; a store keeps at most
    /// [`MAX_EVENT_IDS_PER_UNIT`](crate::storage::MAX_EVENT_IDS_PER_UNIT) per experiment and
    /// unit (beyond, an event with an id is rejected; one without is counted).
    #[serde(default, alias = "event_id")]
    pub event_id: Option<String>,
    /// When it happened (default: the lab's clock).
    #[serde(default)]
    pub timestamp: Option<Timestamp>,
    /// The flag API's `flag_id`: when given, it must be the experiment's flag.
    #[serde(default, alias = "flag_id")]
    pub flag_id: Option<String>,
}

impl TrackEvent {
    /// A conversion on the default goal.
    pub fn conversion(experiment_id: &str, unit_id: &str) -> TrackEvent {
        TrackEvent {
            experiment_id: experiment_id.to_owned(),
            unit_id: unit_id.to_owned(),
            ..TrackEvent::default()
        }
    }

    /// A value of metric `goal`.
    pub fn value(experiment_id: &str, unit_id: &str, goal: &str, value: f64) -> TrackEvent {
        TrackEvent {
            experiment_id: experiment_id.to_owned(),
            unit_id: unit_id.to_owned(),
            goal: Some(goal.to_owned()),
            value: Some(value),
            ..TrackEvent::default()
        }
    }

    /// Sets the goal.
    #[must_use]
    pub fn goal(mut self, goal: &str) -> TrackEvent {
        self.goal = Some(goal.to_owned());
        self
    }

    /// Sets the event id.
    #[must_use]
    pub fn event_id(mut self, id: &str) -> TrackEvent {
        self.event_id = Some(id.to_owned());
        self
    }

    /// Sets the timestamp.
    #[must_use]
    pub fn at(mut self, at: Timestamp) -> TrackEvent {
        self.timestamp = Some(at);
        self
    }
}

/// The first 40 characters of `s`, for an error message about a long value.
fn truncated(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", s.get(..i).unwrap_or_default()),
        None => s.to_owned(),
    }
}

fn finite(field: &str, v: f64) -> Result<f64, ValidationError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(ValidationError::field(
            field,
            format!("{v} is not a finite number"),
        ))
    }
}

/// What an event is about, resolved against the snapshot.
#[derive(Clone, Copy)]
struct Target<'s> {
    experiment: &'s CompiledExperiment,
    goal: &'s str,
    slot: MetricSlot,
    kind: MetricKind,
}

/// The running experiment `id` of `snapshot` (borrowed: no reference count is touched).
fn running<'s>(snapshot: &'s Snapshot, id: &str) -> Result<&'s CompiledExperiment> {
    let c = snapshot
        .experiment(id)
        .ok_or_else(|| Error::not_found("experiment", id))?;
    let status = c.experiment().status();
    if status != Status::Running {
        return Err(Error::Lifecycle {
            id: id.to_owned(),
            operation: Operation::Track,
            status,
        });
    }
    Ok(c)
}

/// The storage event recording `exposure` at `at`, checked against the snapshot (the
/// experiment runs, the variant is its own, the unit is not empty).
fn exposure_event<'e>(
    snapshot: &Snapshot,
    exposure: &Exposure<'e>,
    at: Timestamp,
) -> Result<UnitEvent<'e>> {
    let c = running(snapshot, exposure.experiment_id.as_str())?;
    let matches = c
        .experiment()
        .variants()
        .get(exposure.variant_index as usize)
        .is_some_and(|v| &v.id == exposure.variant);
    if !matches {
        return Err(ValidationError::field(
            "variant",
            format!(
                "{:?} (index {}) is not a variant of experiment {:?}",
                exposure.variant.as_str(),
                exposure.variant_index,
                exposure.experiment_id.as_str()
            ),
        )
        .into());
    }
    if exposure.unit_id.is_empty() {
        return Err(ValidationError::field("unitId", "\"\" is empty").into());
    }
    Ok(UnitEvent {
        experiment: exposure.experiment_id.as_str(),
        unit: exposure.unit_id,
        event_id: None,
        at,
        kind: UnitEventKind::Exposure {
            variant: exposure.variant_index,
            excluded: exposure.forced,
        },
    })
}

/// One item of a mixed batch (the ingestor's): an exposure stamped `at`, or a track event.
#[derive(Clone, Copy, Debug)]
pub(crate) enum BatchItem<'a> {
    /// An exposure to record.
    Exposure {
        /// The exposure.
        exposure: Exposure<'a>,
        /// When it happened.
        at: Timestamp,
    },
    /// An event to track.
    Track(&'a TrackEvent),
}

impl<'l> Events<'l> {
    pub(crate) fn new(
        storage: &'l dyn Storage,
        clock: &'l dyn Clock,
        snapshot: &'l SnapshotCell,
        hook: Option<&'l ExposureHook>,
    ) -> Events<'l> {
        Events {
            storage,
            clock,
            snapshot,
            hook,
        }
    }

    /// Records the exposure a decision returned ([`crate::Decision::exposure`],
    /// [`crate::Evaluation::exposure`]): enrols the unit (once per experiment and unit) and,
    /// when that is new, calls the exposure hook.
    ///
    /// # Errors
    ///
    /// [`Error::Lifecycle`] unless the experiment is running; a storage failure.
    pub fn record(&self, exposure: &Exposure<'_>) -> Result<EventOutcome> {
        self.record_at(exposure, self.clock.now())
    }

    fn record_at(&self, exposure: &Exposure<'_>, at: Timestamp) -> Result<EventOutcome> {
        let snapshot = self.snapshot.pin();
        let ue = exposure_event(&snapshot, exposure, at)?;
        let outcome = self.storage.apply_event(&ue)?;
        self.exposed(exposure, outcome, at);
        Ok(outcome)
    }

    /// Calls the exposure hook when `outcome` is a new enrolment.
    fn exposed(&self, exposure: &Exposure<'_>, outcome: EventOutcome, at: Timestamp) {
        if matches!(outcome, EventOutcome::Enrolled | EventOutcome::Excluded)
            && let Some(hook) = self.hook
        {
            hook(exposure, at);
        }
    }

    /// The clock's "now".
    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Decides and records in one call: assigns `ctx`'s unit in experiment `id`, records the
    /// exposure (if any) and stores a new sticky assignment. Returns the variant id served.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; a storage failure.
    pub fn expose(&self, id: &str, ctx: &Context) -> Result<Option<VariantKey>> {
        let snapshot = self.snapshot.pin();
        let compiled = snapshot
            .experiment(id)
            .ok_or_else(|| Error::not_found("experiment", id))?;
        let a = compiled.assign(ctx);
        if let Some((exp, variant)) = a.sticky_assignment()
            && let Some(unit) = a.unit()
        {
            self.storage
                .save_sticky_assignments(unit, &[(exp, variant)])?;
        }
        if let Some(x) = a.exposure() {
            self.record(&x)?;
        }
        Ok(a.variant_key().cloned())
    }

    /// The variant unit `unit` was enrolled in, from its stored exposure: what a unit keeps
    /// after the experiment stops ("existing assignments remain, no new users are enrolled").
    /// `None` when the unit was never exposed. Reads storage: not for the decision path.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::{Context, Lab, NewExperiment, StopRequest};
    ///
    /// let lab = Lab::new();
    /// let new: NewExperiment = serde_json::from_value(serde_json::json!({
    ///     "name": "onboarding", "variants": [{"id": "a"}, {"id": "b"}]
    /// }))?;
    /// let id = lab.experiments().create(new)?.id().to_string();
    /// lab.experiments().start(&id)?;
    /// let served = lab.expose(&id, &Context::new("u1"))?;
    /// lab.experiments().stop(&id, StopRequest::default())?;
    /// assert_eq!(lab.events().enrolled(&id, "u1")?, served);
    /// assert_eq!(lab.events().enrolled(&id, "u2")?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for the experiment; a storage failure.
    pub fn enrolled(&self, id: &str, unit: &str) -> Result<Option<VariantKey>> {
        let snapshot = self.snapshot.pin();
        let compiled = snapshot
            .experiment(id)
            .ok_or_else(|| Error::not_found("experiment", id))?;
        let Some(state) = self.storage.unit_state(id, unit)? else {
            return Ok(None);
        };
        Ok(compiled
            .experiment()
            .variants()
            .get(state.variant as usize)
            .map(|v| v.id.clone()))
    }

    /// Checks an event against the snapshot and turns it into a storage event. The clock is
    /// read only when the event has no timestamp. The experiment id is the snapshot's string,
    /// so every event of one experiment carries the same pointer (a store can compare them
    /// without reading them).
    fn resolve_event<'e>(
        &self,
        snapshot: &'e Snapshot,
        e: &'e TrackEvent,
    ) -> Result<UnitEvent<'e>> {
        self.event_of(target(snapshot, e)?, e)
    }

    /// The storage event for `e`, whose target is `t`.
    fn event_of<'e>(&self, t: Target<'e>, e: &'e TrackEvent) -> Result<UnitEvent<'e>> {
        if e.unit_id.is_empty() {
            return Err(ValidationError::field("unitId", "\"\" is empty").into());
        }
        if let Some(id) = &e.event_id
            && (id.is_empty() || id.len() > crate::storage::MAX_EVENT_ID_LEN)
        {
            return Err(ValidationError::field(
                "eventId",
                format!(
                    "{:?} is empty or longer than {} bytes ({} bytes)",
                    truncated(id),
                    crate::storage::MAX_EVENT_ID_LEN,
                    id.len()
                ),
            )
            .into());
        }
        let goal = t.goal;
        let (value, denominator) = match t.kind {
            MetricKind::Proportion => (1.0, 0.0),
            MetricKind::Mean => {
                let v = e.value.ok_or_else(|| {
                    ValidationError::field(
                        "value",
                        format!("missing: metric {goal:?} is a mean and needs a value"),
                    )
                })?;
                (finite("value", v)?, 0.0)
            }
            _ => {
                let v = e.value.ok_or_else(|| {
                    ValidationError::field(
                        "value",
                        format!("missing: metric {goal:?} is a ratio and needs a value"),
                    )
                })?;
                let d = e.denominator.ok_or_else(|| {
                    ValidationError::field(
                        "denominator",
                        format!("missing: metric {goal:?} is a ratio and needs a denominator"),
                    )
                })?;
                (finite("value", v)?, finite("denominator", d)?)
            }
        };
        Ok(UnitEvent {
            experiment: t.experiment.experiment().id().as_str(),
            unit: &e.unit_id,
            event_id: e.event_id.as_deref(),
            at: e.timestamp.unwrap_or_else(|| self.clock.now()),
            kind: UnitEventKind::Metric {
                slot: t.slot,
                value,
                denominator,
            },
        })
    }
}

/// What an event is about: its running experiment and its metric's slot and kind (checked
/// against the event's flag and goal).
fn target<'s>(snapshot: &'s Snapshot, e: &TrackEvent) -> Result<Target<'s>> {
    metric_target(
        snapshot,
        &e.experiment_id,
        e.flag_id.as_deref(),
        e.goal.as_deref(),
    )
}

/// The target of an event on `goal` (default `conversion`) of experiment `experiment`.
fn metric_target<'s>(
    snapshot: &'s Snapshot,
    experiment: &str,
    flag_id: Option<&str>,
    goal: Option<&str>,
) -> Result<Target<'s>> {
    let c = running(snapshot, experiment)?;
    let exp = c.experiment();
    if let Some(f) = flag_id
        && exp.flag_id().map(|x| x.as_str()) != Some(f)
    {
        return Err(ValidationError::field(
            "flagId",
            format!("{f:?} is not the flag of experiment {experiment:?}"),
        )
        .into());
    }
    let goal = goal.unwrap_or("conversion");
    let (index, metric) = exp
        .metrics()
        .iter()
        .enumerate()
        .find(|(_, m)| m.name() == goal)
        .ok_or_else(|| {
            let known: Vec<&str> = exp.metrics().iter().map(|m| m.name()).collect();
            ValidationError::field(
                "goal",
                format!(
                    "experiment {experiment:?} has no metric {goal:?}; its metrics: {}",
                    known.join(", ")
                ),
            )
        })?;
    let slot = MetricSlot {
        index: index as u32,
        aggregation: if metric.kind() == MetricKind::Proportion {
            Aggregation::Once
        } else {
            Aggregation::Sum
        },
        cap: metric.cap(),
        window_millis: metric.conversion_window_millis(),
    };
    Ok(Target {
        experiment: c,
        goal: metric.name(),
        slot,
        kind: metric.kind(),
    })
}

impl Events<'_> {
    /// Tracks one event. A conversion counts once per unit and goal; an event with an id seen
    /// before counts once.
    ///
    /// # Errors
    ///
    /// [`Error::Lifecycle`] unless running; [`Error::Validation`] for an unknown goal or a
    /// missing or non-finite value; [`Error::Rejected`] for a unit that is not enrolled or an
    /// event outside the metric's window; a storage failure (nothing was counted: retry).
    pub fn track(&self, event: &TrackEvent) -> Result<EventOutcome> {
        let snapshot = self.snapshot.pin();
        let ue = self.resolve_event(&snapshot, event)?;
        match self.storage.apply_event(&ue)? {
            EventOutcome::Rejected(reason) => Err(Error::Rejected {
                experiment: event.experiment_id.clone(),
                unit: event.unit_id.clone(),
                reason,
            }),
            other => Ok(other),
        }
    }

    /// Tracks a batch in one atomic storage write; one outcome per event, in order. Invalid
    /// events get their error and the rest are still applied.
    ///
    /// The fastest way in at volume: the snapshot is read once, each run of events for one
    /// experiment and goal is resolved once, and the in-memory store overlaps the batch's cache
    /// misses (with a million units, about 2.5× the rate of single [`Events::track`] calls; see
    /// BENCHMARKS.md).
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::storage::EventOutcome;
    /// use abkit::{Context, Lab, NewExperiment, TrackEvent};
    ///
    /// let lab = Lab::new();
    /// let new: NewExperiment = serde_json::from_value(serde_json::json!({
    ///     "name": "checkout", "variants": [{"id": "a"}, {"id": "b"}]
    /// }))?;
    /// let id = lab.experiments().create(new)?.id().to_string();
    /// lab.experiments().start(&id)?;
    /// lab.expose(&id, &Context::new("u1"))?;
    /// let out = lab.events().track_batch(&[
    ///     TrackEvent::conversion(&id, "u1"),
    ///     TrackEvent::conversion(&id, "u1"),
    ///     TrackEvent::conversion(&id, "never-exposed"),
    /// ])?;
    /// assert_eq!(out[0], Ok(EventOutcome::Recorded));
    /// assert_eq!(out[1], Ok(EventOutcome::Duplicate));
    /// assert!(out[2].is_err()); // not enrolled: rejected with a reason
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A storage failure: nothing in the batch was counted.
    pub fn track_batch(&self, events: &[TrackEvent]) -> Result<Vec<Result<EventOutcome>>> {
        let items: Vec<BatchItem<'_>> = events.iter().map(BatchItem::Track).collect();
        self.apply_batch(&items)
    }

    /// Resolves a mixed batch of exposures and track events and applies it in one atomic
    /// storage write, in order (an exposure before a conversion of its unit enrols it first);
    /// one outcome per item. Invalid items get their error and the rest are still applied; the
    /// exposure hook is called for each new enrolment, after the write.
    ///
    /// # Errors
    ///
    /// A storage failure: nothing in the batch was counted.
    pub(crate) fn apply_batch(&self, items: &[BatchItem<'_>]) -> Result<Vec<Result<EventOutcome>>> {
        let snapshot = self.snapshot.pin();
        let mut valid: Vec<UnitEvent<'_>> = Vec::with_capacity(items.len());
        let mut invalid: Vec<(usize, Error)> = Vec::new();
        // Consecutive events of one experiment, goal and flag (the usual batch) share their
        // target: looked up once, then recognised by comparing those strings.
        let mut last: Option<(&TrackEvent, Target<'_>)> = None;
        for (i, item) in items.iter().enumerate() {
            let resolved = match *item {
                BatchItem::Exposure { ref exposure, at } => exposure_event(&snapshot, exposure, at),
                BatchItem::Track(e) => {
                    let target = match last {
                        Some((p, t))
                            if p.experiment_id == e.experiment_id
                                && p.goal == e.goal
                                && p.flag_id == e.flag_id =>
                        {
                            Ok(t)
                        }
                        _ => target(&snapshot, e),
                    };
                    if let Ok(t) = target {
                        last = Some((e, t));
                    }
                    target.and_then(|t| self.event_of(t, e))
                }
            };
            match resolved {
                Ok(ue) => valid.push(ue),
                Err(err) => invalid.push((i, err)),
            }
        }
        let mut outcomes = self.storage.apply_events(&valid)?.into_iter();
        let mut invalid = invalid.into_iter().peekable();
        let results: Vec<Result<EventOutcome>> = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                if let Some((_, err)) = invalid.next_if(|(j, _)| *j == i) {
                    return Err(err);
                }
                let (experiment, unit) = match item {
                    BatchItem::Exposure { exposure, .. } => {
                        (exposure.experiment_id.as_str(), exposure.unit_id)
                    }
                    BatchItem::Track(e) => (e.experiment_id.as_str(), e.unit_id.as_str()),
                };
                match outcomes.next() {
                    Some(EventOutcome::Rejected(reason)) => Err(Error::Rejected {
                        experiment: experiment.to_owned(),
                        unit: unit.to_owned(),
                        reason,
                    }),
                    Some(o) => Ok(o),
                    None => Err(Error::Storage(StorageError::Backend(
                        "apply_events returned fewer outcomes than events".into(),
                    ))),
                }
            })
            .collect();
        if self.hook.is_some() {
            for (item, result) in items.iter().zip(&results) {
                if let (BatchItem::Exposure { exposure, at }, Ok(outcome)) = (item, result) {
                    self.exposed(exposure, *outcome, *at);
                }
            }
        }
        Ok(results)
    }

    /// Records a unit's pre-period covariate for `metric` (CUPED variance reduction): a value
    /// measured before the experiment, for a mean or proportion metric.
    ///
    /// # Errors
    ///
    /// As [`Events::track`]; a non-finite value.
    pub fn set_covariate(
        &self,
        experiment: &str,
        unit: &str,
        metric: &str,
        value: f64,
    ) -> Result<EventOutcome> {
        let snapshot = self.snapshot.pin();
        let t = metric_target(&snapshot, experiment, None, Some(metric))?;
        if t.kind == MetricKind::Ratio {
            return Err(ValidationError::field(
                "metric",
                format!(
                    "{metric:?} is a ratio metric; covariates (CUPED) apply to mean and proportion metrics"
                ),
            )
            .into());
        }
        if unit.is_empty() {
            return Err(ValidationError::field("unitId", "\"\" is empty").into());
        }
        let cov = UnitEvent {
            experiment: t.experiment.experiment().id().as_str(),
            unit,
            event_id: None,
            at: self.clock.now(),
            kind: UnitEventKind::Covariate {
                slot: t.slot,
                value: finite("value", value)?,
            },
        };
        match self.storage.apply_event(&cov)? {
            EventOutcome::Rejected(reason) => Err(Error::Rejected {
                experiment: experiment.to_owned(),
                unit: unit.to_owned(),
                reason,
            }),
            other => Ok(other),
        }
    }
}
