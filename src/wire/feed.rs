//! The feed experiments API (`/v1/experiments…`): variants with `traffic` fractions, `metrics` as
//! names, `{"data": …}` envelopes, list `meta: {total}`, start's `{id, status, startedAt}`.
//!
//! The document shows three experiment forms and abkit writes each as shown: the list item
//! ([`FeedExperiment::summary`]), the create answer ([`FeedExperiment::created`]) and get
//! ([`FeedExperiment::detail`]: variants with `config` and `participants`). Where the document is
//! partial, abkit adds, and says so here:
//! * once an experiment has ended, `endedAt`, `winner` and `stopReason` (no example shows a
//!   stopped experiment);
//! * stop's answer (not shown) is `{id, status, endedAt, winner, reason}`; update's is get's;
//!   delete's is `{id, deleted: true}`;
//! * results add `confidenceLevel`, `srm` (the sample-ratio check), `duration.endedAt`, each
//!   metric's interval (`ciLower`, `ciUpper`) and each comparison's `difference`, its interval,
//!   `liftCiLower`/`liftCiUpper`, `pValue`, `adjustedPValue` and `chanceToBeatControl`; an
//!   experiment without data gets the report with `null` estimates;
//! * events (`POST /v1/events`, implied by the document's metrics) take `{experimentId, userId,
//!   metric, value}` and answer `{"data": {"ok": true}}`; see [`event`] for ratio metrics;
//! * the assign answer (not in the document) is `{"data": {experimentId, userId, variant,
//!   config}}` — `variant` as the SDK section's `feed.meta.variant`.

use serde::Serialize;
use serde_json::Value;

use crate::events::TrackEvent;
use crate::model::experiment::{Experiment, ExperimentType, NewExperiment};
use crate::model::lifecycle::Status;
use crate::model::metric::MetricKind;
use crate::model::validation::ValidationError;
use crate::reports::{ExperimentAnalysis, ExperimentWithCounts};
use crate::time::Timestamp;
use crate::wire::{ApiError, Data};

/// A variant as the feed API writes it: `{id, name, traffic}` (+ `config`, `participants` on get).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedVariant {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its share of the experiment's traffic, a fraction (`0.5`).
    pub traffic: f64,
    /// Its configuration (get only; `{}` when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    /// Enrolled units (get only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participants: Option<u64>,
}

/// An experiment in one of the document's three forms.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedExperiment {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its description (list and get; `null` when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Option<String>>,
    /// Its status.
    pub status: Status,
    /// `ranking`, `config`, `feature`, …
    #[serde(rename = "type")]
    pub kind: ExperimentType,
    /// The fraction of users in it.
    pub traffic: f64,
    /// Its variants.
    pub variants: Vec<FeedVariant>,
    /// Metric names (create and get).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<String>>,
    /// When it started (once it has).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When it ended (once it has).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    /// The winner it was stopped with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub winner: Option<String>,
    /// Why it was stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// When `Lab::tick` starts it (scheduled; absent when not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_at: Option<Timestamp>,
    /// When `Lab::tick` stops it (scheduled; absent when not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_at: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
}

#[derive(Clone, Copy, PartialEq)]
enum Form {
    Summary,
    Created,
    Detail,
}

impl FeedExperiment {
    fn build(e: &Experiment, participants: &[u64], form: Form) -> FeedExperiment {
        let detail = form == Form::Detail;
        FeedExperiment {
            id: e.id().to_string(),
            name: e.name().to_owned(),
            description: (form != Form::Created).then(|| e.description().map(str::to_owned)),
            status: e.status(),
            kind: e.kind(),
            traffic: e.traffic().as_fraction(),
            variants: e
                .variants()
                .iter()
                .enumerate()
                .map(|(i, v)| FeedVariant {
                    id: v.id.to_string(),
                    name: v.name.clone(),
                    traffic: v.weight.as_fraction(),
                    config: detail.then(|| {
                        v.config
                            .clone()
                            .unwrap_or_else(|| Value::Object(Default::default()))
                    }),
                    participants: detail.then(|| participants.get(i).copied().unwrap_or(0)),
                })
                .collect(),
            metrics: (form != Form::Summary)
                .then(|| e.metrics().iter().map(|m| m.name().to_owned()).collect()),
            started_at: e.started_at(),
            ended_at: e.ended_at(),
            winner: e.winner().map(ToString::to_string),
            stop_reason: e.stop_reason().map(str::to_owned),
            start_at: e.start_at(),
            stop_at: e.stop_at(),
            created_at: e.created_at(),
        }
    }

    /// The list item: `{id, name, description, status, type, traffic, variants: [{id, name,
    /// traffic}], startedAt, createdAt}`.
    pub fn summary(e: &Experiment) -> FeedExperiment {
        FeedExperiment::build(e, &[], Form::Summary)
    }

    /// The create answer: `{id, name, status, type, traffic, variants, metrics, createdAt}`.
    pub fn created(e: &Experiment) -> FeedExperiment {
        FeedExperiment::build(e, &[], Form::Created)
    }

    /// Get: the list item's fields, `metrics`, and variants with `config` and `participants`.
    pub fn detail(e: &ExperimentWithCounts) -> FeedExperiment {
        FeedExperiment::build(&e.experiment, &e.participants, Form::Detail)
    }
}

/// The list's `meta`: `{"total": n}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ListMeta {
    /// Experiments matching the filter.
    pub total: u64,
}

/// The list answer: `{"data": […], "meta": {"total"}}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct List {
    /// The page's experiments.
    pub data: Vec<FeedExperiment>,
    /// The total.
    pub meta: ListMeta,
}

/// Start's answer: `{id, status, startedAt}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Started {
    /// The experiment.
    pub id: String,
    /// `running`.
    pub status: Status,
    /// When it started.
    pub started_at: Option<Timestamp>,
}

impl Started {
    /// Start's answer for `e`.
    pub fn new(e: &Experiment) -> Data<Started> {
        Data::new(Started {
            id: e.id().to_string(),
            status: e.status(),
            started_at: e.started_at(),
        })
    }
}

/// Stop's answer: `{id, status, endedAt, winner, reason}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stopped {
    /// The experiment.
    pub id: String,
    /// `stopped`.
    pub status: Status,
    /// When it ended.
    pub ended_at: Option<Timestamp>,
    /// The winner rolled out, if any.
    pub winner: Option<String>,
    /// The reason given.
    pub reason: Option<String>,
}

impl Stopped {
    /// Stop's answer for `e`.
    pub fn new(e: &Experiment) -> Data<Stopped> {
        Data::new(Stopped {
            id: e.id().to_string(),
            status: e.status(),
            ended_at: e.ended_at(),
            winner: e.winner().map(ToString::to_string),
            reason: e.stop_reason().map(str::to_owned),
        })
    }
}

/// Delete's answer: `{id, deleted: true}` (the flag API's and the service routes' too).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Deleted {
    /// What was deleted.
    pub id: String,
    /// Always `true`.
    pub deleted: bool,
}

impl Deleted {
    /// `{"data": {"id": id, "deleted": true}}`.
    pub fn new(id: &str) -> Data<Deleted> {
        Data::new(Deleted {
            id: id.to_owned(),
            deleted: true,
        })
    }
}

/// Results: the analysis as the document shows it (see the module's notes for what it adds).
pub fn results(a: ExperimentAnalysis) -> Data<ExperimentAnalysis> {
    Data::new(a)
}

/// A create body, with the document's required fields enforced: `name`, `type`, `traffic` and
/// `variants` must be present (the domain defaults `type` and `traffic`; the feed API does not).
///
/// ```
/// let body = br#"{"name": "t", "variants": [{"id": "a", "traffic": 0.5}, {"id": "b", "traffic": 0.5}]}"#;
/// let e = abkit::wire::feed::create_request(body).unwrap_err();
/// assert_eq!((e.status, e.field.as_deref()), (400, Some("type")));
/// ```
///
/// # Errors
///
/// 422 for a body that is not JSON or not an experiment; 400 naming a missing required field.
pub fn create_request(body: &[u8]) -> Result<NewExperiment, ApiError> {
    let value: Value = crate::wire::parse(body)?;
    for field in ["name", "type", "traffic", "variants"] {
        if value.get(field).is_none_or(Value::is_null) {
            return Err(ApiError::validation(&ValidationError::field(
                field,
                format!("{field} is required"),
            )));
        }
    }
    serde_json::from_value(value).map_err(|e| ApiError::invalid_json(format!("invalid body: {e}")))
}

/// The event `POST /v1/events` records: the body as given (`{experimentId, userId, metric,
/// value}`), except that a ratio metric's event without `denominator` counts one — the document's
/// body has no denominator, and `completionRate`'s `value` is one view's completion (1 or 0).
pub fn event(mut event: TrackEvent, e: &Experiment) -> TrackEvent {
    let goal = event.goal.as_deref().unwrap_or("conversion");
    let ratio = e
        .metrics()
        .iter()
        .any(|m| m.name() == goal && m.kind() == MetricKind::Ratio);
    if ratio && event.denominator.is_none() {
        event.denominator = Some(1.0);
    }
    event
}

/// The assign answer's `data`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assigned {
    /// The experiment.
    pub experiment_id: String,
    /// The unit.
    pub user_id: String,
    /// Its variant's id (`null`: not enrolled).
    pub variant: Option<String>,
    /// The variant's configuration.
    pub config: Option<Value>,
}

impl Assigned {
    /// The answer for `user` in `e`, enrolled in `variant` (or not).
    pub fn new(e: &Experiment, user: &str, variant: Option<&str>) -> Data<Assigned> {
        let v = variant.and_then(|k| e.variant(k));
        Data::new(Assigned {
            experiment_id: e.id().to_string(),
            user_id: user.to_owned(),
            variant: v.map(|v| v.id.to_string()),
            config: v.and_then(|v| v.config.clone()),
        })
    }
}
