//! The analysis plane: from per-variant sufficient statistics to a report.
//!
//! [`analyze`] implements the analysis contract (`docs/STATS.md` in the crate) exactly: proportion, mean and ratio
//! metrics; the difference and the delta-method relative lift with confidence intervals; Wald z
//! and Welch t tests; the exact Beta chance to beat control; Holm and Benjamini–Hochberg
//! corrections; CUPED variance reduction; always-valid confidence sequences; the sample ratio
//! mismatch check; and a recommendation that respects guardrails and each metric's direction.
//! It never sees a user id and does no I/O: the same code serves an in-process store and a
//! warehouse that aggregates in SQL.
//!
//! ```
//! use abkit::stats::{analyze, AnalysisRequest, MetricInput, MetricKind, SufficientStats, VariantInput};
//!
//! let request = AnalysisRequest::new(
//!     vec![VariantInput::new("control", 250), VariantInput::new("treatment", 250)],
//!     vec![MetricInput::new("conversion", MetricKind::Proportion)
//!         .with_data("control", SufficientStats::proportion(250, 45))
//!         .with_data("treatment", SufficientStats::proportion(250, 67))],
//! );
//! let report = analyze(&request)?;
//! assert_eq!(report.recommendation.winner.as_deref(), Some("treatment"));
//! let json = serde_json::to_value(&report)?;
//! assert_eq!(json["variants"][1]["metrics"]["conversion"]["significant"], true);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The same request as JSON goes through [`AnalysisRequest::from_json`] (errors name the field),
//! or straight through serde. Power analysis is available on its own:
//! [`sample_size_proportion`], [`sample_size_mean`], [`minimum_detectable_effect_proportion`],
//! [`minimum_detectable_effect_mean`].

pub mod bandit;
mod beta;
mod compare;
mod cuped;
mod dist;
mod error;
mod estimate;
mod multitest;
mod parse;
mod power;
mod report;
mod request;
mod sequential;
mod srm;

use std::collections::HashSet;

pub use error::StatsError;
pub use multitest::adjust_p_values;
pub use power::{
    minimum_detectable_effect_mean, minimum_detectable_effect_proportion, sample_size_mean,
    sample_size_proportion,
};
pub use report::{Comparison, MetricResult, Recommendation, Report, SrmCheck, VariantReport};
pub use request::{
    AnalysisRequest, Correction, InsufficientData, MetricInput, MetricKind, SequentialSettings,
    SufficientStats, VariantInput,
};
pub use srm::sample_ratio_mismatch;

use compare::{Settings, compare};
use dist::{Dist, finite};
use error::invalid;
use estimate::{Arm, estimate};

/// Power at which the report's minimum detectable effect is computed.
const MDE_POWER: f64 = 0.8;

/// Analyses an experiment: validates the request, then computes every variant's estimates,
/// every treatment's comparison with the control, the sample-ratio check and the
/// recommendation.
///
/// # Errors
///
/// [`StatsError::InvalidField`] naming the field for anything the contract rejects: a level
/// outside (0, 1), a tuning parameter ≤ 0, fewer than two variants, duplicate ids, two
/// controls, a negative share (or all of them 0), a metric missing a variant or naming an unknown one,
/// negative or non-finite sums, an out-of-range or non-integer proportion sum, too small a
/// count, a zero denominator sum, partial or misplaced covariates, or sums no data can produce.
///
/// # Examples
///
/// ```
/// use abkit::stats::{analyze, AnalysisRequest};
///
/// let request = AnalysisRequest::from_json(r#"{
///   "variants": [{"id": "control", "participants": 250, "expectedShare": 0.5},
///                {"id": "treatment", "participants": 250, "expectedShare": 0.5}],
///   "metrics": [{"name": "watchTime", "kind": "mean",
///     "data": {"control": {"count": 250, "sum": 7125.0, "sumSquares": 251000.0},
///              "treatment": {"count": 250, "sum": 7800.0, "sumSquares": 290000.0}}}]
/// }"#)?;
/// let report = analyze(&request)?;
/// let cmp = report.variants[1].metrics[0].comparison.as_ref().ok_or("no comparison")?;
/// assert!((cmp.p_value.unwrap_or(1.0) - 0.028952).abs() < 1e-6);
///
/// let bad = AnalysisRequest { confidence_level: 1.5, ..request };
/// assert_eq!(analyze(&bad).unwrap_err().field(), Some("confidenceLevel"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn analyze(request: &AnalysisRequest) -> Result<Report, StatsError> {
    let level = request.confidence_level;
    if !(level > 0.0 && level < 1.0) {
        return Err(invalid(
            "confidenceLevel",
            format!("{level} is outside (0, 1)"),
        ));
    }
    let alpha = 1.0 - level;
    let threshold = request.srm_threshold;
    if !(0.0..=1.0).contains(&threshold) {
        return Err(invalid(
            "srmThreshold",
            format!("{threshold} is outside [0, 1]"),
        ));
    }
    let tuning = match request.sequential {
        Some(s) if !(s.tuning_parameter.is_finite() && s.tuning_parameter > 0.0) => {
            return Err(invalid(
                "sequential.tuningParameter",
                format!("{} is not a positive number", s.tuning_parameter),
            ));
        }
        Some(s) => Some(s.tuning_parameter),
        None => None,
    };
    let control = validate_variants(&request.variants)?;
    let arms = validate_metrics(request)?;
    let settings = Settings {
        alpha,
        sequential: tuning,
    };

    // Per variant and metric: value, own CI and (for treatments) the comparison.
    let z_half = Dist::Normal.upper_quantile(alpha / 2.0);
    let mut variants: Vec<VariantReport> = request
        .variants
        .iter()
        .enumerate()
        .map(|(vi, variant)| {
            let metrics = request
                .metrics
                .iter()
                .zip(&arms)
                .filter_map(|(metric, metric_arms)| {
                    let arm = metric_arms.get(vi)?;
                    let control_arm = metric_arms.get(control)?;
                    let q = match metric.kind {
                        MetricKind::Mean => Dist::t(arm.n - 1.0).upper_quantile(alpha / 2.0),
                        MetricKind::Proportion | MetricKind::Ratio => z_half,
                    };
                    let half = q * (arm.sd / arm.n.sqrt());
                    let comparison =
                        (vi != control).then(|| compare(metric.kind, control_arm, arm, settings));
                    Some(MetricResult {
                        name: metric.name.clone(),
                        value: finite(arm.m),
                        confidence: level,
                        ci_lower: finite(arm.m - half),
                        ci_upper: finite(arm.m + half),
                        comparison,
                    })
                })
                .collect();
            VariantReport {
                id: variant.id.clone(),
                participants: variant.participants,
                metrics,
            }
        })
        .collect();

    apply_correction(&mut variants, request.correction, alpha);

    let observed: Vec<u64> = request.variants.iter().map(|v| v.participants).collect();
    let shares: Vec<f64> = request.variants.iter().map(|v| v.expected_share).collect();
    let srm_p = srm::p_value(&observed, &shares);
    let srm = SrmCheck {
        p_value: srm_p,
        mismatch: srm_p < threshold,
    };
    let recommendation = recommend(request, &arms, &variants, control, alpha, srm.mismatch);
    Ok(Report {
        confidence_level: level,
        srm,
        variants,
        recommendation,
    })
}

/// Checks the variants and returns the control's index. A share may be 0 (a variant ramped to
/// 0%), as long as one is positive.
fn validate_variants(variants: &[VariantInput]) -> Result<usize, StatsError> {
    if variants.len() < 2 {
        return Err(invalid(
            "variants",
            format!("{} given, expected at least 2 variants", variants.len()),
        ));
    }
    let mut seen = HashSet::new();
    let mut control: Option<usize> = None;
    for (i, v) in variants.iter().enumerate() {
        if !seen.insert(v.id.as_str()) {
            return Err(invalid(
                format!("variants[{i}].id"),
                format!("duplicate id `{}`", v.id),
            ));
        }
        let share = v.expected_share;
        if !(share.is_finite() && share >= 0.0) {
            return Err(invalid(
                format!("variants[{i}].expectedShare"),
                format!("{share} is not a non-negative number"),
            ));
        }
        if v.control {
            if let Some(first) = control {
                let first_id = variants.get(first).map_or("", |f| f.id.as_str());
                return Err(invalid(
                    format!("variants[{i}].control"),
                    format!(
                        "true for `{}` but `{first_id}` is already the control",
                        v.id
                    ),
                ));
            }
            control = Some(i);
        }
    }
    if variants.iter().all(|v| v.expected_share == 0.0) {
        return Err(invalid(
            "variants[0].expectedShare",
            "0, and so is every other share: at least one must be positive",
        ));
    }
    Ok(control.unwrap_or(0))
}

/// Validates every metric's data; returns the arms per metric in variant order.
fn validate_metrics(request: &AnalysisRequest) -> Result<Vec<Vec<Arm>>, StatsError> {
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(request.metrics.len());
    for (mi, metric) in request.metrics.iter().enumerate() {
        if !names.insert(metric.name.as_str()) {
            return Err(invalid(
                format!("metrics[{mi}].name"),
                format!("duplicate metric name `{}`", metric.name),
            ));
        }
        if let Some(unknown) = metric
            .data
            .keys()
            .find(|k| !request.variants.iter().any(|v| &v.id == *k))
        {
            return Err(invalid(
                format!("metrics[{mi}].data.{unknown}"),
                format!("`{unknown}` is not a variant of the request"),
            ));
        }
        let arms = request
            .variants
            .iter()
            .map(|v| {
                let path = || format!("metrics[{mi}].data.{}", v.id);
                match metric.data.get(&v.id) {
                    // a 0% variant that has seen no unit: its figures are null
                    Some(stats) if v.expected_share == 0.0 && stats.count == 0 => {
                        estimate::empty(stats, &path)
                    }
                    // an experiment still collecting data: the arm's figures are null
                    Some(stats)
                        if request.insufficient_data == InsufficientData::Null
                            && stats.count < metric.kind.min_count() =>
                    {
                        estimate::insufficient(stats, &path)
                    }
                    Some(stats) => estimate(metric.kind, stats, &path),
                    None => Err(invalid(
                        path(),
                        format!("missing, every variant needs data for `{}`", metric.name),
                    )),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.push(arms);
    }
    Ok(out)
}

/// Adjusts the p-values of every (treatment, metric) pair together and settles `significant`.
fn apply_correction(variants: &mut [VariantReport], correction: Correction, alpha: f64) {
    let p_values: Vec<f64> = variants
        .iter()
        .flat_map(|v| v.metrics.iter())
        .filter_map(|m| m.comparison.as_ref().and_then(|c| c.p_value))
        .collect();
    let adjusted = multitest::adjust(&p_values, correction);
    let mut next = adjusted.into_iter();
    for comparison in variants
        .iter_mut()
        .flat_map(|v| v.metrics.iter_mut())
        .filter_map(|m| m.comparison.as_mut())
    {
        if comparison.p_value.is_some() {
            comparison.adjusted_p_value = next.next().and_then(finite);
        }
        comparison.significant = comparison.adjusted_p_value.is_some_and(|p| p < alpha);
    }
}

/// The winner and the primary metric's minimum detectable effect.
///
/// # Formula
///
/// Among treatments significantly better than control on the primary metric (d > 0, or d < 0
/// when lower is better) and not significantly worse on any guardrail, the largest lift (most
/// negative when lower is better), earlier variant on ties; none under a sample ratio mismatch.
fn recommend(
    request: &AnalysisRequest,
    arms: &[Vec<Arm>],
    variants: &[VariantReport],
    control: usize,
    alpha: f64,
    mismatch: bool,
) -> Recommendation {
    let mut recommendation = Recommendation {
        winner: None,
        confidence: None,
        minimum_detectable_effect: None,
    };
    let (Some(primary), Some(primary_arms)) = (request.metrics.first(), arms.first()) else {
        return recommendation;
    };
    if let Some(control_arm) = primary_arms.get(control) {
        // arms without data (0% variants with no unit) have no power to speak of
        let n_min = primary_arms
            .iter()
            .map(|a| a.n)
            .filter(|&n| n > 0.0)
            .fold(f64::INFINITY, f64::min);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n_min = n_min as u64;
        recommendation.minimum_detectable_effect = match primary.kind {
            MetricKind::Proportion => {
                minimum_detectable_effect_proportion(control_arm.m, n_min, alpha, MDE_POWER)
                    .ok()
                    .flatten()
            }
            // from σ, not σ²: a ratio's unit variance may not fit in a double
            MetricKind::Mean | MetricKind::Ratio => power::z_sum(alpha, MDE_POWER)
                .and_then(|z| power::mde_mean_sd(control_arm.m, control_arm.sd, n_min, z)),
        };
    }
    if mismatch {
        return recommendation;
    }
    let better =
        |higher: bool, d: Option<f64>| d.is_some_and(|d| if higher { d > 0.0 } else { d < 0.0 });
    let mut best: Option<(usize, f64, f64)> = None;
    for (vi, variant) in variants.iter().enumerate() {
        if vi == control {
            continue;
        }
        let Some(c) = variant.metrics.first().and_then(|m| m.comparison.as_ref()) else {
            continue;
        };
        let (Some(lift), Some(chance)) = (c.lift, c.chance_to_beat_control) else {
            continue;
        };
        if !(c.significant && better(primary.higher_is_better, c.difference)) {
            continue;
        }
        let harmed = request
            .metrics
            .iter()
            .zip(&variant.metrics)
            .any(|(metric, result)| {
                metric.guardrail
                    && result.comparison.as_ref().is_some_and(|g| {
                        g.significant && better(!metric.higher_is_better, g.difference)
                    })
            });
        if harmed {
            continue;
        }
        let score = if primary.higher_is_better {
            lift
        } else {
            -lift
        };
        if best.is_none_or(|(_, s, _)| score > s) {
            let confidence = if primary.higher_is_better {
                chance
            } else {
                1.0 - chance
            };
            best = Some((vi, score, confidence));
        }
    }
    if let Some((vi, _, confidence)) = best {
        recommendation.winner = variants.get(vi).map(|v| v.id.clone());
        recommendation.confidence = finite(confidence);
    }
    recommendation
}

#[cfg(test)]
#[allow(clippy::excessive_precision)] // reference values are quoted with all their digits
mod tests {
    use super::*;

    fn two_arm(metric: MetricInput) -> AnalysisRequest {
        AnalysisRequest::new(
            vec![
                VariantInput::new("control", 100),
                VariantInput::new("treatment", 100),
            ],
            vec![metric],
        )
    }

    #[test]
    fn cuped_on_a_proportion_follows_the_contract() {
        // Expected figures computed from docs/STATS.md's formulas in mpmath (30 digits), independently
        // of this crate; the covariate sums are made up.
        let request = two_arm(
            MetricInput::new("m", MetricKind::Proportion)
                .with_data(
                    "control",
                    SufficientStats::proportion(1000, 100).with_covariate(500.0, 700.0, 80.0),
                )
                .with_data(
                    "treatment",
                    SufficientStats::proportion(1000, 130).with_covariate(520.0, 720.0, 95.0),
                ),
        );
        let report = analyze(&request).unwrap();
        let c = report.variants[1].metrics[0].comparison.clone().unwrap();
        let close = |got: Option<f64>, expected: f64| {
            let got = got.unwrap();
            assert!(
                (got - expected).abs() <= 1e-12_f64.max(1e-9 * expected.abs()),
                "{got} vs {expected}"
            );
        };
        close(c.difference, 0.028_717_492_776_172_483);
        close(c.difference_ci_lower, 0.001_038_668_388_210_563_6);
        close(c.difference_ci_upper, 0.056_396_317_164_134_402);
        close(c.p_value, 0.042_000_712_963_596_358);
        close(c.lift, 0.287_174_927_761_724_83);
        close(c.lift_ci_lower, -0.029_089_746_993_239_877);
        close(c.lift_ci_upper, 0.603_439_602_516_689_53);
        // the chance to beat control ignores CUPED: exact Beta on the raw counts
        let raw = beta::chance_to_beat(1000.0, 100.0, 1000.0, 130.0);
        close(c.chance_to_beat_control, raw);
        // each variant's own value stays unadjusted
        assert_eq!(report.variants[1].metrics[0].value, Some(0.13));
    }

    #[test]
    fn public_types_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<AnalysisRequest>();
        check::<Report>();
        check::<StatsError>();
        check::<MetricKind>();
        check::<SufficientStats>();
    }

    #[test]
    fn metrics_serialize_in_request_order_and_variants_as_an_array() {
        let arm = |n, s| SufficientStats::proportion(n, s);
        let request = AnalysisRequest::new(
            vec![VariantInput::new("b", 100), VariantInput::new("a", 100)],
            vec![
                MetricInput::new("zeta", MetricKind::Proportion)
                    .with_data("a", arm(100, 10))
                    .with_data("b", arm(100, 12)),
                MetricInput::new("alpha", MetricKind::Proportion)
                    .with_data("a", arm(100, 20))
                    .with_data("b", arm(100, 22)),
            ],
        );
        let text = serde_json::to_string(&analyze(&request).unwrap()).unwrap();
        let (zeta, alpha) = (
            text.find("\"zeta\"").unwrap(),
            text.find("\"alpha\"").unwrap(),
        );
        assert!(zeta < alpha, "{text}");
        assert!(text.find("\"id\":\"b\"").unwrap() < text.find("\"id\":\"a\"").unwrap());
        // the control (first variant) carries no comparison fields; the treatment does
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            value["variants"][0]["metrics"]["zeta"]
                .get("pValue")
                .is_none()
        );
        assert!(
            value["variants"][1]["metrics"]["zeta"]
                .get("pValue")
                .is_some()
        );
        assert_eq!(value["variants"][1]["metrics"]["zeta"]["confidence"], 0.95);
    }

    #[test]
    fn zero_rates_give_nulls_not_nan() {
        let request = two_arm(
            MetricInput::new("m", MetricKind::Proportion)
                .with_data("control", SufficientStats::proportion(100, 0))
                .with_data("treatment", SufficientStats::proportion(100, 0)),
        );
        let report = analyze(&request).unwrap();
        let json = serde_json::to_value(&report).unwrap();
        let t = &json["variants"][1]["metrics"]["m"];
        assert_eq!(t["difference"], 0.0);
        assert!(t["lift"].is_null());
        assert!(t["pValue"].is_null());
        assert!(t["chanceToBeatControl"].is_null());
        assert_eq!(t["significant"], false);
        assert!(json["recommendation"]["minimumDetectableEffect"].is_null());
    }

    #[test]
    fn insufficient_data_is_an_error_or_null_figures_as_asked() {
        let request = AnalysisRequest::new(
            vec![
                VariantInput::new("control", 5),
                VariantInput::new("treatment", 1),
            ],
            vec![
                MetricInput::new("conversion", MetricKind::Proportion)
                    .with_data("control", SufficientStats::proportion(5, 2))
                    .with_data("treatment", SufficientStats::proportion(1, 1)),
                MetricInput::new("revenue", MetricKind::Mean)
                    .with_data("control", SufficientStats::mean(5, 10.0, 30.0))
                    .with_data("treatment", SufficientStats::mean(1, 3.0, 9.0)),
            ],
        );
        let err = analyze(&request).unwrap_err();
        assert_eq!(
            err.to_string(),
            "metrics[1].data.treatment.count: 1 is less than 2 for a mean metric"
        );
        let report = analyze(&request.with_insufficient_data(InsufficientData::Null)).unwrap();
        let t = report.variant("treatment").unwrap();
        // The proportion has enough units and is analysed; the mean's treatment arm is null.
        let conv = t.metric("conversion").unwrap();
        assert_eq!(conv.value, Some(1.0));
        assert!(conv.comparison.as_ref().unwrap().p_value.is_some());
        let rev = t.metric("revenue").unwrap();
        assert_eq!((rev.value, rev.ci_lower), (None, None));
        let c = rev.comparison.as_ref().unwrap();
        assert_eq!((c.difference, c.p_value), (None, None));
        assert!(!c.significant);
        assert_eq!(
            report
                .variant("control")
                .unwrap()
                .metric("revenue")
                .unwrap()
                .value,
            Some(2.0)
        );
        // Bad sums are still errors.
        let bad = AnalysisRequest::new(
            vec![
                VariantInput::new("control", 5),
                VariantInput::new("treatment", 1),
            ],
            vec![
                MetricInput::new("revenue", MetricKind::Mean)
                    .with_data("control", SufficientStats::mean(5, 10.0, 30.0))
                    .with_data("treatment", SufficientStats::mean(1, f64::INFINITY, 9.0)),
            ],
        )
        .with_insufficient_data(InsufficientData::Null);
        assert!(analyze(&bad).is_err());
    }

    #[test]
    fn request_level_errors_name_the_field() {
        let metric = || {
            MetricInput::new("m", MetricKind::Proportion)
                .with_data("control", SufficientStats::proportion(100, 1))
                .with_data("treatment", SufficientStats::proportion(100, 2))
        };
        let mut dup = two_arm(metric());
        if let Some(v) = dup.variants.get_mut(1) {
            v.id = "control".into();
        }
        let mut two_controls = two_arm(metric());
        for v in &mut two_controls.variants {
            v.control = true;
        }
        let mut one = two_arm(metric());
        one.variants.truncate(1);
        let cases = [
            (
                two_arm(metric()).with_confidence_level(0.0),
                "confidenceLevel",
            ),
            (
                two_arm(metric()).with_sequential(0.0),
                "sequential.tuningParameter",
            ),
            (two_arm(metric()).with_srm_threshold(-1.0), "srmThreshold"),
            (dup, "variants[1].id"),
            (two_controls, "variants[1].control"),
            (one, "variants"),
            (
                two_arm(metric().with_data("ghost", SufficientStats::proportion(1, 1))),
                "metrics[0].data.ghost",
            ),
            (
                two_arm(
                    MetricInput::new("m", MetricKind::Proportion)
                        .with_data("control", SufficientStats::proportion(100, 1)),
                ),
                "metrics[0].data.treatment",
            ),
        ];
        for (request, field) in cases {
            let err = analyze(&request).unwrap_err();
            assert_eq!(err.field(), Some(field), "{err}");
        }
        let mut negative_share = two_arm(metric());
        if let Some(v) = negative_share.variants.get_mut(0) {
            v.expected_share = -1.0;
        }
        assert_eq!(
            analyze(&negative_share).unwrap_err().to_string(),
            "variants[0].expectedShare: -1 is not a non-negative number"
        );
        let mut no_share = two_arm(metric());
        for v in &mut no_share.variants {
            v.expected_share = 0.0;
        }
        assert_eq!(
            analyze(&no_share).unwrap_err().field(),
            Some("variants[0].expectedShare")
        );
    }

    /// control and treatment at 50% each, plus `ramp` at 0% with `ramp_units` units.
    fn with_zero_share_variant(ramp_units: u64, ramp_conversions: u64) -> AnalysisRequest {
        AnalysisRequest::new(
            vec![
                VariantInput::new("control", 10_000).with_expected_share(0.5),
                VariantInput::new("ramp", ramp_units).with_expected_share(0.0),
                VariantInput::new("treatment", 10_000).with_expected_share(0.5),
            ],
            vec![
                MetricInput::new("conversion", MetricKind::Proportion)
                    .with_data("control", SufficientStats::proportion(10_000, 1_000))
                    .with_data(
                        "ramp",
                        SufficientStats::proportion(ramp_units, ramp_conversions),
                    )
                    .with_data("treatment", SufficientStats::proportion(10_000, 1_150)),
                MetricInput::new("watchTime", MetricKind::Mean)
                    .with_data("control", SufficientStats::mean(10_000, 3e5, 1.0e7))
                    .with_data(
                        "ramp",
                        SufficientStats::mean(
                            ramp_units,
                            30.0 * ramp_units as f64,
                            1e3 * ramp_units as f64,
                        ),
                    )
                    .with_data("treatment", SufficientStats::mean(10_000, 3.1e5, 1.07e7)),
            ],
        )
    }

    #[test]
    fn a_zero_share_variant_without_units_leaves_the_analysis_alone() {
        let report = analyze(&with_zero_share_variant(0, 0)).unwrap();
        // the empty 0% arm leaves the chi-square test: 10 000 vs 10 000 at 50/50
        assert_eq!(report.srm.p_value, 1.0);
        assert!(!report.srm.mismatch);
        // its figures are null, never NaN
        let json = serde_json::to_value(&report).unwrap();
        let ramp = &json["variants"][1]["metrics"];
        for metric in ["conversion", "watchTime"] {
            for field in [
                "value",
                "ciLower",
                "ciUpper",
                "difference",
                "lift",
                "pValue",
            ] {
                assert!(ramp[metric][field].is_null(), "{metric}.{field}: {ramp}");
            }
            assert_eq!(ramp[metric]["significant"], false);
        }
        // the treatment's analysis is that of the same experiment without the 0% arm
        let mut two = with_zero_share_variant(0, 0);
        two.variants.remove(1);
        for metric in &mut two.metrics {
            metric.data.remove("ramp");
        }
        let without = analyze(&two).unwrap();
        assert_eq!(report.variants[2], without.variants[1]);
        assert_eq!(report.recommendation, without.recommendation);
        assert_eq!(report.recommendation.winner.as_deref(), Some("treatment"));
    }

    #[test]
    fn a_unit_in_a_zero_share_variant_is_a_mismatch() {
        let report = analyze(&with_zero_share_variant(50, 5)).unwrap();
        assert_eq!(report.srm.p_value, 0.0);
        assert!(report.srm.mismatch);
        assert_eq!(report.recommendation.winner, None);
        // the 0% arm's own data is analysed as usual
        let ramp = &report.variants[1].metrics[0];
        assert_eq!(ramp.value, Some(0.1));
        let c = ramp.comparison.as_ref().unwrap();
        assert!(c.p_value.is_some() && c.chance_to_beat_control.is_some());
        // a 0% variant with no unit must not claim conversions
        let mut bad = with_zero_share_variant(0, 0);
        if let Some(d) = bad.metrics[1].data.get_mut("ramp") {
            d.sum = 3.0;
        }
        assert_eq!(
            analyze(&bad).unwrap_err().to_string(),
            "metrics[1].data.ramp.sum: 3 is not 0, but count is 0"
        );
    }

    #[test]
    fn lower_is_better_picks_the_most_negative_lift() {
        let request = AnalysisRequest::new(
            vec![
                VariantInput::new("control", 10_000),
                VariantInput::new("a", 10_000),
                VariantInput::new("b", 10_000),
            ],
            vec![
                MetricInput::new("errors", MetricKind::Proportion)
                    .lower_is_better()
                    .with_data("control", SufficientStats::proportion(10_000, 1_000))
                    .with_data("a", SufficientStats::proportion(10_000, 800))
                    .with_data("b", SufficientStats::proportion(10_000, 700)),
            ],
        );
        let report = analyze(&request).unwrap();
        assert_eq!(report.recommendation.winner.as_deref(), Some("b"));
        let chance = report.variants[2].metrics[0]
            .comparison
            .as_ref()
            .and_then(|c| c.chance_to_beat_control)
            .unwrap();
        assert_eq!(report.recommendation.confidence, Some(1.0 - chance));
    }

    #[test]
    fn a_harmed_guardrail_blocks_the_winner() {
        let request = AnalysisRequest::new(
            vec![
                VariantInput::new("control", 10_000),
                VariantInput::new("t", 10_000),
            ],
            vec![
                MetricInput::new("conversion", MetricKind::Proportion)
                    .with_data("control", SufficientStats::proportion(10_000, 1_000))
                    .with_data("t", SufficientStats::proportion(10_000, 1_300)),
                MetricInput::new("latency", MetricKind::Mean)
                    .guardrail()
                    .lower_is_better()
                    .with_data(
                        "control",
                        SufficientStats::mean(10_000, 1_000_000.0, 1.01e8),
                    )
                    .with_data("t", SufficientStats::mean(10_000, 1_100_000.0, 1.22e8)),
            ],
        );
        let report = analyze(&request).unwrap();
        assert_eq!(report.recommendation.winner, None);
        assert_eq!(report.recommendation.confidence, None);
    }
}
