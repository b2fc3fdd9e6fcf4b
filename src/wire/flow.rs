//! The flow experiments API (`/api/experiments…`): pages as `{"data": […], "meta": {total,
//! page, limit, totalPages}}`, experiments with `startDate` / `endDate`, integer
//! `splitPercentage`s and `_count.assignments`; raw results and computed results in `{"data": …}`.
//!
//! Where the document's example is partial, abkit adds fields, and says so here:
//! * get ("returns the experiment with all variant details") and every write's answer add each
//!   variant's `config` and `participants`, and the experiment's `conversions`, `winner` and
//!   `stopReason` (the last two once stopped); the list item is exactly the document's;
//! * raw results' per-variant `results` carry one entry per metric (`metric`, `kind`, `count`
//!   and the sufficient statistics), where the document shows an empty list;
//! * the assign answer (not in the document) is `{"data": {experimentId, userId, variantId,
//!   variantName, flowId, config}}`, the variant fields `null` when the unit is not enrolled.

use serde::Serialize;
use serde_json::Value;

use crate::control::Page;
use crate::model::experiment::{Experiment, ExperimentType};
use crate::model::lifecycle::Status;
use crate::model::variant::{Variant, percent};
use crate::reports::{
    ComputedResults, ComputedVariant, ExperimentWithCounts, RawMetric, RawResults,
};
use crate::time::Timestamp;
use crate::wire::Data;

/// A page as the flow API returns it: `{"data": […], "meta": {…}}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Paged<T> {
    /// The items.
    pub data: Vec<T>,
    /// The paging facts.
    pub meta: PageMeta,
}

/// The flow API's paging facts: `{"total", "page", "limit", "totalPages"}`.
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

impl<T> Paged<T> {
    /// The flow API's form of `page`, each item converted by `f`.
    pub fn from_page<U>(page: Page<U>, f: impl FnMut(U) -> T) -> Paged<T> {
        Paged {
            meta: PageMeta {
                total: page.total,
                page: page.page,
                limit: page.limit,
                total_pages: page.total_pages,
            },
            data: page.items.into_iter().map(f).collect(),
        }
    }
}

/// `_count`: `{"assignments": n}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Count {
    /// Enrolled units in all variants.
    pub assignments: u64,
}

/// A variant as the flow API writes it: `{id, name, splitPercentage, flowId}` (+ `config`,
/// `participants` in the detailed form).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowVariant {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its share in percent: `50`, or `33.33` when not whole.
    #[serde(serialize_with = "percent")]
    pub split_percentage: crate::allocation::Weight,
    /// The flow it shows (`null` when none).
    pub flow_id: Option<String>,
    /// Its configuration payload (detailed form only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    /// Enrolled units (detailed form only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participants: Option<u64>,
}

/// An experiment as the flow API's list (exactly the document's item) and get (detailed) write it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowExperiment {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its description (`null` when none).
    pub description: Option<String>,
    /// `ab_test`, …
    #[serde(rename = "type")]
    pub kind: ExperimentType,
    /// `draft`, `running`, `stopped`, `completed`, `archived`.
    pub status: Status,
    /// Its audience (`null` when none).
    pub audience_id: Option<String>,
    /// When it started.
    pub start_date: Option<Timestamp>,
    /// When it ended.
    pub end_date: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Its variants.
    pub variants: Vec<FlowVariant>,
    /// `{"assignments": n}`.
    #[serde(rename = "_count")]
    pub count: Count,
    /// Conversions on its conversion metric (detailed form only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversions: Option<u64>,
    /// The winner it was stopped with (detailed form, once stopped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub winner: Option<String>,
    /// Why it was stopped (detailed form, once stopped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// When `Lab::tick` starts it (scheduled; absent when not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_at: Option<Timestamp>,
    /// When `Lab::tick` stops it (scheduled; absent when not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_at: Option<Timestamp>,
}

fn variant(v: &Variant, participants: Option<u64>, detailed: bool) -> FlowVariant {
    FlowVariant {
        id: v.id.to_string(),
        name: v.name.clone(),
        split_percentage: v.weight,
        flow_id: v.flow_id.clone(),
        config: if detailed {
            Some(
                v.config
                    .clone()
                    .unwrap_or_else(|| Value::Object(Default::default())),
            )
        } else {
            None
        },
        participants,
    }
}

impl FlowExperiment {
    fn build(e: &Experiment, participants: &[u64], conversions: u64, detailed: bool) -> Self {
        FlowExperiment {
            id: e.id().to_string(),
            name: e.name().to_owned(),
            description: e.description().map(str::to_owned),
            kind: e.kind(),
            status: e.status(),
            audience_id: e.audience_id().map(ToString::to_string),
            start_date: e.started_at(),
            end_date: e.ended_at(),
            start_at: e.start_at(),
            stop_at: e.stop_at(),
            created_at: e.created_at(),
            updated_at: e.updated_at(),
            variants: e
                .variants()
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let n = participants.get(i).copied().unwrap_or(0);
                    variant(v, detailed.then_some(n), detailed)
                })
                .collect(),
            count: Count {
                assignments: participants.iter().sum(),
            },
            conversions: detailed.then_some(conversions),
            winner: if detailed {
                e.winner().map(ToString::to_string)
            } else {
                None
            },
            stop_reason: if detailed {
                e.stop_reason().map(str::to_owned)
            } else {
                None
            },
        }
    }

    /// The list item: exactly the document's fields.
    pub fn summary(e: &ExperimentWithCounts) -> FlowExperiment {
        FlowExperiment::build(&e.experiment, &e.participants, e.conversions, false)
    }

    /// The detailed form (get, create, update, start, stop, archive).
    pub fn detail(e: &ExperimentWithCounts) -> FlowExperiment {
        FlowExperiment::build(&e.experiment, &e.participants, e.conversions, true)
    }
}

/// The list payload: a page of experiments with their counts.
pub fn experiments_page(page: Page<ExperimentWithCounts>) -> Paged<FlowExperiment> {
    Paged::from_page(page, |e| FlowExperiment::summary(&e))
}

/// One variant of the raw results: `{variantId, variantName, splitPercentage, participants,
/// results}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultsVariant {
    /// Its id.
    pub variant_id: String,
    /// Its name.
    pub variant_name: String,
    /// Its share in percent, an integer when whole.
    #[serde(serialize_with = "percent")]
    pub split_percentage: crate::allocation::Weight,
    /// Enrolled units.
    pub participants: u64,
    /// Per metric: its sufficient statistics.
    pub results: Vec<RawMetric>,
}

/// `GET /api/experiments/:id/results`'s `data`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Results {
    /// The experiment.
    pub experiment_id: String,
    /// Its name.
    pub name: String,
    /// Its status.
    pub status: Status,
    /// When it started.
    pub start_date: Option<Timestamp>,
    /// When it ended.
    pub end_date: Option<Timestamp>,
    /// Per variant.
    pub variants: Vec<ResultsVariant>,
}

impl Results {
    /// The document's form of `raw`.
    pub fn new(raw: RawResults) -> Data<Results> {
        let variants = raw
            .variants
            .into_iter()
            .map(|r| ResultsVariant {
                variant_id: r.variant_id,
                variant_name: r.variant_name,
                split_percentage: r.weight,
                participants: r.participants,
                results: r.results,
            })
            .collect();
        Data::new(Results {
            experiment_id: raw.experiment_id,
            name: raw.name,
            status: raw.status,
            start_date: raw.start_date,
            end_date: raw.end_date,
            variants,
        })
    }
}

/// `POST /api/experiments/:id/compute-results`'s `data`: `{experimentId, variants}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Computed {
    /// The experiment.
    pub experiment_id: String,
    /// Per variant: `{variantId, variantName, sampleSize, conversions, conversionRate}` (the
    /// domain's form is the document's; `conversionRate` is `null` with no units).
    pub variants: Vec<ComputedVariant>,
}

impl Computed {
    /// The document's form of `c` (the domain's, without its `metric`).
    pub fn new(c: ComputedResults) -> Data<Computed> {
        Data::new(Computed {
            experiment_id: c.experiment_id,
            variants: c.variants,
        })
    }
}

/// The assign answer's `data`: the unit's variant with its flow and configuration.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assigned {
    /// The experiment.
    pub experiment_id: String,
    /// The unit.
    pub user_id: String,
    /// Its variant (`null`: not enrolled).
    pub variant_id: Option<String>,
    /// The variant's name.
    pub variant_name: Option<String>,
    /// The variant's flow.
    pub flow_id: Option<String>,
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
            variant_id: v.map(|v| v.id.to_string()),
            variant_name: v.map(|v| v.name.clone()),
            flow_id: v.and_then(|v| v.flow_id.clone()),
            config: v.and_then(|v| v.config.clone()),
        })
    }
}

/// The body of `POST /api/experiments/:id/conversions`: `{"userId", "goal"?, "value"?,
/// "eventId"?, "timestamp"?}` (the experiment comes from the path).
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConversionRequest {
    /// The unit.
    #[serde(alias = "user_id")]
    pub user_id: String,
    /// The metric (default `conversion`).
    #[serde(default, alias = "metric")]
    pub goal: Option<String>,
    /// The value, for mean metrics.
    #[serde(default)]
    pub value: Option<f64>,
    /// An idempotency id.
    #[serde(default, alias = "event_id")]
    pub event_id: Option<String>,
    /// When it happened.
    #[serde(default)]
    pub timestamp: Option<Timestamp>,
}

impl ConversionRequest {
    /// The event it records in experiment `id`.
    pub fn event(self, id: &str) -> crate::events::TrackEvent {
        crate::events::TrackEvent {
            experiment_id: id.to_owned(),
            unit_id: self.user_id,
            goal: self.goal,
            value: self.value,
            event_id: self.event_id,
            timestamp: self.timestamp,
            ..crate::events::TrackEvent::default()
        }
    }
}
