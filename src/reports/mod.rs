//! Reports: raw counts (the flow API's `results`), computed conversion rates (its
//! `compute-results`), per-experiment counts for get/list payloads, and the full analysis (the
//! feed API's results): storage totals → a stats request → [`crate::stats::analyze`].
//!
//! Architecture invariant: reports read (experiments through the control plane, totals from
//! storage) and never write; they import `control`, `model`, `storage`, `stats` and `error`.

use serde::Serialize;

use crate::control::codec::Versioned;
use crate::control::experiments::Experiments;
use crate::control::{ListQuery, Page};
use crate::error::Result;
use crate::model::experiment::Experiment;
use crate::model::lifecycle::Status;
use crate::model::metric::MetricKind;
use crate::storage::{ExperimentTotals, MetricTotals, Storage};
use crate::time::{Clock, Timestamp};

/// The reports of a lab: `lab.reports()`.
#[derive(Clone, Copy)]
pub struct Reports<'l> {
    experiments: Experiments<'l>,
    storage: &'l dyn Storage,
    clock: &'l dyn Clock,
}

impl std::fmt::Debug for Reports<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reports")
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

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
    /// Its share, serialized as `splitPercentage` in percent (`50`, or `33.33` when not whole).
    #[serde(
        rename = "splitPercentage",
        serialize_with = "crate::model::variant::percent"
    )]
    pub weight: crate::allocation::Weight,
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

/// One arm of a bandit, analysed under its changing weights: see [`Reports::bandit`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BanditArm {
    /// The variant.
    pub variant_id: String,
    /// Its current weight, in basis points.
    pub weight: u16,
    /// Units enrolled in it, over every period.
    pub participants: u64,
    /// The primary metric's mean over every unit of the arm, pooled (biased when the weights
    /// moved while the metric drifted: shown for comparison only).
    pub pooled_mean: Option<f64>,
    /// The per-period weighted mean of the primary metric (unbiased by the reallocation);
    /// `null` until every arm has data in some period.
    pub mean: Option<f64>,
    /// Its standard error.
    pub standard_error: Option<f64>,
}

/// An experiment with its counts, as the get and list payloads carry them (the flow API's
/// `_count.assignments`, the feed API's per-variant `participants`, the flag API's
/// `conversions`: those shapes are [`crate::wire`]'s).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentWithCounts {
    /// The experiment, with its storage version.
    pub experiment: Versioned<Experiment>,
    /// Enrolled units per variant, in variant order.
    pub participants: Vec<u64>,
    /// Conversions on the conversion metric (see [`ComputedResults::metric`]).
    pub conversions: u64,
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

impl<'l> Reports<'l> {
    pub(crate) fn new(
        experiments: Experiments<'l>,
        storage: &'l dyn Storage,
        clock: &'l dyn Clock,
    ) -> Reports<'l> {
        Reports {
            experiments,
            storage,
            clock,
        }
    }

    /// The experiment `id` with its counts.
    ///
    /// # Errors
    ///
    /// [`crate::Error::NotFound`]; a storage failure.
    pub fn experiment_with_counts(&self, id: &str) -> Result<ExperimentWithCounts> {
        let e = self.experiments.get(id)?;
        let totals = self.storage.totals(id)?;
        Ok(with_counts(e, &totals))
    }

    /// Experiment `e`, already read, with its counts (one storage read of its totals).
    ///
    /// # Errors
    ///
    /// A storage failure.
    pub fn counts_of(&self, e: Versioned<Experiment>) -> Result<ExperimentWithCounts> {
        let totals = self.storage.totals(e.id().as_str())?;
        Ok(with_counts(e, &totals))
    }

    /// A page of experiments with their counts: what the flow API's list payload carries
    /// (`_count.assignments` per experiment).
    ///
    /// # Errors
    ///
    /// As [`Experiments::list`].
    pub fn list_with_counts(&self, query: &ListQuery) -> Result<Page<ExperimentWithCounts>> {
        self.experiments.list(query)?.try_map(|e| {
            let totals = self.storage.totals(e.id().as_str())?;
            Ok(with_counts(e, &totals))
        })
    }

    /// The flow API's raw results.
    ///
    /// # Errors
    ///
    /// [`crate::Error::NotFound`]; a storage failure.
    pub fn results(&self, id: &str) -> Result<RawResults> {
        let e = self.experiments.get(id)?;
        let totals = self.storage.totals(id)?;
        let variants = e
            .variants()
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let t = totals.variant(i);
                RawVariantResults {
                    variant_id: v.id.to_string(),
                    variant_name: v.name.clone(),
                    weight: v.weight,
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

    /// A bandit's arms analysed per period (GrowthBook's bandit analysis): each weight version
    /// is a period; within one every arm saw the same population, so the arms' means are taken
    /// per period and combined with the same period weights (each period's share of all units)
    /// for every arm — reallocating traffic does not bias the estimate. A period's data is the
    /// difference of the cumulative totals recorded when it and the next began (a unit's later
    /// values count in the period they were recorded in).
    ///
    /// # Errors
    ///
    /// [`crate::Error::NotFound`]; a validation error unless the experiment is a bandit; a
    /// storage failure.
    pub fn bandit(&self, id: &str) -> Result<Vec<BanditArm>> {
        use crate::stats::bandit::{ArmTotals, Period, period_weighted};
        let e = self.experiments.get(id)?;
        let Some(b) = e.bandit() else {
            return Err(crate::error::ValidationError::field(
                "type",
                format!("{} for experiment {id:?}; not a bandit", e.kind()),
            )
            .into());
        };
        let totals = self.storage.totals(id)?;
        let k = e.variants().len();
        let now = crate::control::schedule::arm_totals(&totals, k);
        let baseline = |p: &crate::model::bandit::BanditPeriod| -> Vec<ArmTotals> {
            p.baseline
                .iter()
                .map(|a| ArmTotals {
                    count: a.count,
                    sum: a.sum,
                    sum_squares: a.sum_squares,
                })
                .collect()
        };
        let mut starts: Vec<Vec<ArmTotals>> = b.periods.iter().map(baseline).collect();
        if starts.is_empty() {
            starts.push(vec![ArmTotals::default(); k]);
        }
        starts.push(now.clone());
        let periods: Vec<Period> = starts
            .windows(2)
            .filter_map(|w| match w {
                [a, b] => Some(Period {
                    arms: b.iter().zip(a).map(|(x, y)| x.since(y)).collect(),
                }),
                _ => None,
            })
            .collect();
        let kind = e
            .metrics()
            .first()
            .map_or(MetricKind::Proportion, |m| m.kind());
        let estimates = period_weighted(kind, &periods)?;
        Ok(e.variants()
            .iter()
            .zip(now)
            .enumerate()
            .map(|(i, (v, t))| {
                let est = estimates.get(i).copied().flatten();
                BanditArm {
                    variant_id: v.id.to_string(),
                    weight: v.weight.basis_points(),
                    participants: t.count,
                    pooled_mean: (t.count > 0)
                        .then(|| t.sum / t.count as f64)
                        .filter(|m| m.is_finite()),
                    mean: est.map(|x| x.mean),
                    standard_error: est.map(|x| x.standard_error),
                }
            })
            .collect())
    }

    /// The flow API's computed results: sample size, conversions and conversion rate per variant.
    ///
    /// # Errors
    ///
    /// [`crate::Error::NotFound`]; a storage failure.
    pub fn compute_results(&self, id: &str) -> Result<ComputedResults> {
        let e = self.experiments.get(id)?;
        let totals = self.storage.totals(id)?;
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

pub(crate) fn with_counts(
    e: Versioned<Experiment>,
    totals: &ExperimentTotals,
) -> ExperimentWithCounts {
    let participants = (0..e.variants().len())
        .map(|i| totals.variant(i).participants)
        .collect();
    let conversions = conversion_slot(&e).map_or(0, |s| {
        (0..e.variants().len())
            .map(|i| totals.variant(i).metrics.get(s).map_or(0, |m| count(m.sum)))
            .sum()
    });
    ExperimentWithCounts {
        experiment: e,
        participants,
        conversions,
    }
}

/// How to analyse: the knobs of the analysis contract.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AnalysisOptions {
    /// Confidence level in (0, 1) (default 0.95).
    pub confidence_level: f64,
    /// Multiple-testing correction (default none).
    pub correction: crate::stats::Correction,
    /// Sequential (always-valid) testing with this tuning parameter: safe to peek.
    pub sequential: Option<f64>,
    /// p-value below which the split counts as mismatched (default 0.001).
    pub srm_threshold: f64,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        AnalysisOptions {
            confidence_level: 0.95,
            correction: crate::stats::Correction::default(),
            sequential: None,
            srm_threshold: 0.001,
        }
    }
}

/// How long the experiment has run: whole days from start to stop, or to now while running.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Duration {
    /// Whole days.
    pub days: u64,
    /// When it started.
    pub started_at: Option<Timestamp>,
    /// When it ended, if it has.
    pub ended_at: Option<Timestamp>,
}

/// One variant of the analysis: the stats report's variant with its name.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisVariant {
    /// The variant's name.
    pub name: String,
    /// Its report (id, participants, per-metric values, CIs, lift, significance).
    #[serde(flatten)]
    pub report: crate::stats::VariantReport,
}

/// The feed API's `GET /experiments/{id}/results`: per-variant, per-metric values with
/// confidence, lift and significance, the sample-ratio check and a recommended winner.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentAnalysis {
    /// The experiment.
    pub experiment_id: String,
    /// Its status.
    pub status: Status,
    /// How long it ran.
    pub duration: Duration,
    /// The confidence level.
    pub confidence_level: f64,
    /// The sample-ratio-mismatch check.
    pub srm: crate::stats::SrmCheck,
    /// Per variant, control first.
    pub variants: Vec<AnalysisVariant>,
    /// The recommended winner.
    pub recommendation: crate::stats::Recommendation,
}

/// The stats request for an experiment's totals.
pub(crate) fn analysis_request(
    e: &Experiment,
    totals: &ExperimentTotals,
    options: &AnalysisOptions,
) -> crate::stats::AnalysisRequest {
    use crate::stats::{AnalysisRequest, MetricInput, SufficientStats, VariantInput};
    let variants = e
        .variants()
        .iter()
        .enumerate()
        .map(|(i, v)| {
            VariantInput::new(v.id.as_str(), totals.variant(i).participants)
                .with_expected_share(v.weight.as_fraction())
        })
        .collect();
    let metrics = e
        .metrics()
        .iter()
        .enumerate()
        .map(|(m, def)| {
            let mut input = MetricInput::new(def.name(), def.kind());
            input.guardrail = def.is_guardrail();
            input.higher_is_better = def.higher_is_better();
            for (i, v) in e.variants().iter().enumerate() {
                let vt = totals.variant(i);
                let n = vt.participants;
                let t = vt.metrics.get(m).copied().unwrap_or_default();
                let mut s = match def.kind() {
                    MetricKind::Proportion => SufficientStats::proportion(n, count(t.sum)),
                    MetricKind::Mean => SufficientStats::mean(n, t.sum, t.sum_squares),
                    _ => SufficientStats::ratio(
                        n,
                        t.sum,
                        t.sum_squares,
                        t.denominator_sum,
                        t.denominator_sum_squares,
                        t.sum_products,
                    ),
                };
                if t.covariate_count > 0 && def.kind() != MetricKind::Ratio {
                    s = s.with_covariate(
                        t.covariate_sum,
                        t.covariate_sum_squares,
                        t.covariate_sum_products,
                    );
                }
                input = input.with_data(v.id.as_str(), s);
            }
            input
        })
        .collect();
    let mut request = AnalysisRequest::new(variants, metrics)
        .with_confidence_level(options.confidence_level)
        .with_correction(options.correction)
        .with_srm_threshold(options.srm_threshold)
        // An experiment still collecting data gets null figures, not an error.
        .with_insufficient_data(crate::stats::InsufficientData::Null);
    if let Some(n) = options.sequential {
        request = request.with_sequential(n);
    }
    request
}

impl Reports<'_> {
    /// The full analysis of experiment `id` (the feed API's results), through [`crate::stats`].
    /// An experiment without data yet gets a report whose estimates are `null`.
    ///
    /// # Errors
    ///
    /// [`crate::Error::NotFound`]; [`crate::Error::Stats`] when the options are invalid; a
    /// storage failure.
    pub fn analyze(&self, id: &str, options: &AnalysisOptions) -> Result<ExperimentAnalysis> {
        let e = self.experiments.get(id)?;
        let totals = self.storage.totals(id)?;
        let request = analysis_request(&e, &totals, options);
        let report = crate::stats::analyze(&request)?;
        let end = e.ended_at().unwrap_or_else(|| self.clock.now());
        let duration = Duration {
            days: e.started_at().map_or(0, |s| end.whole_days_since(s)),
            started_at: e.started_at(),
            ended_at: e.ended_at(),
        };
        let variants = report
            .variants
            .into_iter()
            .map(|r| AnalysisVariant {
                name: e.variant(&r.id).map(|v| v.name.clone()).unwrap_or_default(),
                report: r,
            })
            .collect();
        Ok(ExperimentAnalysis {
            experiment_id: e.id().to_string(),
            status: e.status(),
            duration,
            confidence_level: report.confidence_level,
            srm: report.srm,
            variants,
            recommendation: report.recommendation,
        })
    }
}
