//! Results: raw counts (the flow API's `results`), computed conversion rates (its
//! `compute-results`), per-experiment counts for get/list payloads, and the full analysis (the
//! feed API's results) through [`crate::stats`].

use serde::Serialize;
use serde_json::Value;

use crate::error::Error;
use crate::lab::Lab;
use crate::lifecycle::Status;
use crate::model::experiment::Experiment;
use crate::model::metric::MetricKind;
use crate::storage::{ExperimentTotals, MetricTotals};
use crate::time::Timestamp;

/// One metric's raw sums in one variant.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RawMetric {
    /// The metric.
    pub metric: String,
    /// Its kind.
    pub kind: MetricKind,
    /// Units counted (the variant's participants).
    pub count: u64,
    /// The sufficient statistics.
    #[serde(flatten)]
    pub totals: MetricTotals,
}

/// One variant's raw results, as the flow API's `results` lists them.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RawVariantResults {
    /// The variant's id.
    pub variant_id: String,
    /// Its name.
    pub variant_name: String,
    /// Its split percentage.
    pub split_percentage: f64,
    /// Enrolled units.
    pub participants: u64,
    /// Per-metric sums.
    pub results: Vec<RawMetric>,
}

/// The flow API's `GET /experiments/:id/results`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RawResults {
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
    pub variants: Vec<RawVariantResults>,
}

/// One variant of the flow API's `compute-results`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComputedVariant {
    /// The variant's id.
    pub variant_id: String,
    /// Its name.
    pub variant_name: String,
    /// Enrolled units.
    pub sample_size: u64,
    /// Units that converted on the primary proportion metric.
    pub conversions: u64,
    /// conversions / sampleSize (`null` with no units).
    pub conversion_rate: Option<f64>,
}

/// The flow API's `POST /experiments/:id/compute-results`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComputedResults {
    /// The experiment.
    pub experiment_id: String,
    /// The proportion metric counted (`conversion` when it has one, else its first proportion).
    pub metric: Option<String>,
    /// Per variant.
    pub variants: Vec<ComputedVariant>,
}

/// An experiment with its counts, as the get and list payloads carry them: the flow API's
/// `_count.assignments`, the feed API's per-variant `participants`, the flag API's
/// `conversions`.
#[derive(Clone, Debug, PartialEq)]
pub struct ExperimentWithCounts {
    /// The experiment.
    pub experiment: Experiment,
    /// Enrolled units per variant, in variant order.
    pub participants: Vec<u64>,
    /// Conversions on the conversion metric (see [`ComputedResults::metric`]).
    pub conversions: u64,
}

impl Serialize for ExperimentWithCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut v = serde_json::to_value(&self.experiment).map_err(serde::ser::Error::custom)?;
        if let Some(vs) = v.get_mut("variants").and_then(Value::as_array_mut) {
            for (variant, n) in vs.iter_mut().zip(&self.participants) {
                if let Some(o) = variant.as_object_mut() {
                    o.insert("participants".into(), (*n).into());
                }
            }
        }
        if let Some(o) = v.as_object_mut() {
            let total: u64 = self.participants.iter().sum();
            o.insert("_count".into(), serde_json::json!({ "assignments": total }));
            o.insert("conversions".into(), self.conversions.into());
        }
        v.serialize(s)
    }
}

/// The slot of the metric counted as "conversions".
pub(crate) fn conversion_slot(e: &Experiment) -> Option<usize> {
    e.metrics()
        .iter()
        .position(|m| m.name() == "conversion" && m.kind() == MetricKind::Proportion)
        .or_else(|| {
            e.metrics()
                .iter()
                .position(|m| m.kind() == MetricKind::Proportion)
        })
}

fn count(x: f64) -> u64 {
    if x.is_finite() && x > 0.0 {
        x.round() as u64
    } else {
        0
    }
}

impl Lab {
    /// The experiment `id` with its counts.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; a storage failure.
    pub fn get_experiment_with_counts(&self, id: &str) -> Result<ExperimentWithCounts, Error> {
        let e = self.get_experiment(id)?;
        let totals = self.storage().totals(id)?;
        Ok(with_counts(e, &totals))
    }

    /// The flow API's raw results.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; a storage failure.
    pub fn results(&self, id: &str) -> Result<RawResults, Error> {
        let e = self.get_experiment(id)?;
        let totals = self.storage().totals(id)?;
        let variants = e
            .variants()
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let t = totals.variant(i);
                RawVariantResults {
                    variant_id: v.id.to_string(),
                    variant_name: v.name.clone(),
                    split_percentage: v.weight.as_percent(),
                    participants: t.participants,
                    results: e
                        .metrics()
                        .iter()
                        .enumerate()
                        .map(|(m, def)| RawMetric {
                            metric: def.name().to_owned(),
                            kind: def.kind(),
                            count: t.participants,
                            totals: t.metrics.get(m).copied().unwrap_or_default(),
                        })
                        .collect(),
                }
            })
            .collect();
        Ok(RawResults {
            experiment_id: e.id().to_string(),
            name: e.name().to_owned(),
            status: e.status(),
            start_date: e.started_at(),
            end_date: e.ended_at(),
            variants,
        })
    }

    /// The flow API's computed results: sample size, conversions and conversion rate per variant.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; a storage failure.
    pub fn compute_results(&self, id: &str) -> Result<ComputedResults, Error> {
        let e = self.get_experiment(id)?;
        let totals = self.storage().totals(id)?;
        let slot = conversion_slot(&e);
        let variants = e
            .variants()
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let t = totals.variant(i);
                let conversions = slot
                    .and_then(|s| t.metrics.get(s))
                    .map_or(0, |m| count(m.sum));
                ComputedVariant {
                    variant_id: v.id.to_string(),
                    variant_name: v.name.clone(),
                    sample_size: t.participants,
                    conversions,
                    conversion_rate: (t.participants > 0)
                        .then(|| conversions as f64 / t.participants as f64),
                }
            })
            .collect();
        Ok(ComputedResults {
            experiment_id: e.id().to_string(),
            metric: slot
                .and_then(|s| e.metrics().get(s))
                .map(|m| m.name().to_owned()),
            variants,
        })
    }
}

pub(crate) fn with_counts(e: Experiment, totals: &ExperimentTotals) -> ExperimentWithCounts {
    let participants = (0..e.variants().len())
        .map(|i| totals.variant(i).participants)
        .collect();
    let conversions = conversion_slot(&e).map_or(0, |s| {
        totals
            .variants
            .iter()
            .map(|v| v.metrics.get(s).map_or(0, |m| count(m.sum)))
            .sum()
    });
    ExperimentWithCounts {
        experiment: e,
        participants,
        conversions,
    }
}
