//! The analysis request: what the caller knows about an experiment, as sufficient statistics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How a metric's per-unit values are summarised and compared.
///
/// Serialized in lowercase (`"proportion"`, `"mean"`, `"ratio"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// A 0/1 outcome per unit (conversion); compared with a Wald z-test and a Beta posterior.
    Proportion,
    /// A real value per unit; compared with Welch's t-test.
    Mean,
    /// A ratio of two per-unit sums (e.g. revenue per session); compared with the delta method.
    Ratio,
}

impl MetricKind {
    /// The fewest units an arm needs for this kind: 1 for a proportion, 2 for a mean or ratio
    /// (a sample variance).
    pub const fn min_count(self) -> u64 {
        match self {
            MetricKind::Proportion => 1,
            MetricKind::Mean | MetricKind::Ratio => 2,
        }
    }

    /// The lowercase name used in JSON.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(abkit::stats::MetricKind::Ratio.as_str(), "ratio");
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Proportion => "proportion",
            Self::Mean => "mean",
            Self::Ratio => "ratio",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "proportion" => Some(Self::Proportion),
            "mean" => Some(Self::Mean),
            "ratio" => Some(Self::Ratio),
            _ => None,
        }
    }
}

/// Multiple-testing correction applied to the p-values of all (treatment, metric) pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Correction {
    /// No correction: `adjustedPValue` equals `pValue`.
    #[default]
    #[serde(rename = "none")]
    None,
    /// Holm's step-down family-wise error control (`multipletests(method='holm')`).
    #[serde(rename = "holm")]
    Holm,
    /// Benjamini–Hochberg false discovery rate control (`multipletests(method='fdr_bh')`).
    #[serde(rename = "benjamini-hochberg")]
    BenjaminiHochberg,
}

/// Settings of the sequential (always-valid) mode.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SequentialSettings {
    /// The tuning parameter N of the confidence sequence (> 0, default 5000): the total sample
    /// size at which the sequence is tightest.
    #[serde(default = "default_tuning")]
    pub tuning_parameter: f64,
}

impl Default for SequentialSettings {
    fn default() -> Self {
        Self {
            tuning_parameter: default_tuning(),
        }
    }
}

fn default_tuning() -> f64 {
    5000.0
}
pub(crate) fn default_level() -> f64 {
    0.95
}
pub(crate) fn default_srm() -> f64 {
    0.001
}
fn default_share() -> f64 {
    1.0
}
fn default_true() -> bool {
    true
}

/// One arm of the experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantInput {
    /// The variant id, unique within the request.
    pub id: String,
    /// Units assigned to the variant (used by the sample-ratio-mismatch check).
    pub participants: u64,
    /// The share of traffic the variant was meant to get (any positive scale; normalised).
    pub expected_share: f64,
    /// Marks the control; without any, the first variant is the control.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub control: bool,
}

impl VariantInput {
    /// A variant with an expected share of 1 (equal split with the others by default).
    ///
    /// # Examples
    ///
    /// ```
    /// let v = abkit::stats::VariantInput::new("control", 1000).with_expected_share(2.0);
    /// assert_eq!(v.expected_share, 2.0);
    /// ```
    #[must_use]
    pub fn new(id: impl Into<String>, participants: u64) -> Self {
        Self {
            id: id.into(),
            participants,
            expected_share: default_share(),
            control: false,
        }
    }

    /// Sets the expected traffic share.
    #[must_use]
    pub fn with_expected_share(mut self, share: f64) -> Self {
        self.expected_share = share;
        self
    }

    /// Marks this variant as the control.
    #[must_use]
    pub fn as_control(mut self) -> Self {
        self.control = true;
        self
    }
}

/// Per-variant sufficient statistics of one metric.
///
/// Which fields are used depends on the [`MetricKind`]: `count` and `sum` always, `sumSquares`
/// for means and ratios, the `denominator*` fields and `sumProducts` for ratios, and the three
/// `covariate*` fields (all or none) for CUPED on proportions and means.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SufficientStats {
    /// Number of units n.
    pub count: u64,
    /// Σ value (conversions for a proportion; Σx, the numerator, for a ratio).
    pub sum: f64,
    /// Σ value² (means and ratios).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum_squares: Option<f64>,
    /// Σ y, the denominator of a ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denominator_sum: Option<f64>,
    /// Σ y² of a ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denominator_sum_squares: Option<f64>,
    /// Σ x·y of a ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum_products: Option<f64>,
    /// Σ c of the pre-period covariate (CUPED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covariate_sum: Option<f64>,
    /// Σ c² of the covariate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covariate_sum_squares: Option<f64>,
    /// Σ c·value of the covariate and the metric value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covariate_sum_products: Option<f64>,
}

impl SufficientStats {
    /// A proportion: `count` units of which `conversions` converted.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = abkit::stats::SufficientStats::proportion(250, 45);
    /// assert_eq!(s.sum, 45.0);
    /// ```
    #[must_use]
    #[allow(clippy::cast_precision_loss)] // counts above 2^53 are not meaningful conversions
    pub fn proportion(count: u64, conversions: u64) -> Self {
        Self {
            count,
            sum: conversions as f64,
            ..Self::default()
        }
    }

    /// A mean: `count` units with Σ value = `sum` and Σ value² = `sum_squares`.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = abkit::stats::SufficientStats::mean(250, 7125.0, 251_000.0);
    /// assert_eq!(s.sum_squares, Some(251_000.0));
    /// ```
    #[must_use]
    pub fn mean(count: u64, sum: f64, sum_squares: f64) -> Self {
        Self {
            count,
            sum,
            sum_squares: Some(sum_squares),
            ..Self::default()
        }
    }

    /// A ratio Σx/Σy over `count` units: Σx, Σx², Σy, Σy² and Σxy.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = abkit::stats::SufficientStats::ratio(100, 50.0, 40.0, 200.0, 500.0, 120.0);
    /// assert_eq!(s.denominator_sum, Some(200.0));
    /// ```
    #[must_use]
    pub fn ratio(
        count: u64,
        sum: f64,
        sum_squares: f64,
        denominator_sum: f64,
        denominator_sum_squares: f64,
        sum_products: f64,
    ) -> Self {
        Self {
            count,
            sum,
            sum_squares: Some(sum_squares),
            denominator_sum: Some(denominator_sum),
            denominator_sum_squares: Some(denominator_sum_squares),
            sum_products: Some(sum_products),
            ..Self::default()
        }
    }

    /// Adds a pre-period covariate for CUPED: Σc, Σc² and Σc·value.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = abkit::stats::SufficientStats::mean(1000, 10200.0, 120_833.19)
    ///     .with_covariate(9800.0, 112_024.0, 110_949.0);
    /// assert_eq!(s.covariate_sum, Some(9800.0));
    /// ```
    #[must_use]
    pub fn with_covariate(mut self, sum: f64, sum_squares: f64, sum_products: f64) -> Self {
        self.covariate_sum = Some(sum);
        self.covariate_sum_squares = Some(sum_squares);
        self.covariate_sum_products = Some(sum_products);
        self
    }
}

/// One metric of the request with its per-variant data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricInput {
    /// The metric name, unique within the request; the first metric is the primary one.
    pub name: String,
    /// How the metric is summarised.
    pub kind: MetricKind,
    /// Sufficient statistics keyed by variant id; every variant must be present.
    pub data: BTreeMap<String, SufficientStats>,
    /// A guardrail: a treatment significantly worse on it cannot win.
    #[serde(default)]
    pub guardrail: bool,
    /// Direction of improvement (default true).
    #[serde(default = "default_true")]
    pub higher_is_better: bool,
}

impl MetricInput {
    /// A metric without data yet, higher is better, not a guardrail.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::stats::{MetricInput, MetricKind, SufficientStats};
    ///
    /// let m = MetricInput::new("conversion", MetricKind::Proportion)
    ///     .with_data("control", SufficientStats::proportion(250, 45))
    ///     .with_data("treatment", SufficientStats::proportion(250, 67));
    /// assert_eq!(m.data.len(), 2);
    /// ```
    #[must_use]
    pub fn new(name: impl Into<String>, kind: MetricKind) -> Self {
        Self {
            name: name.into(),
            kind,
            data: BTreeMap::new(),
            guardrail: false,
            higher_is_better: true,
        }
    }

    /// Adds (or replaces) the statistics of one variant.
    #[must_use]
    pub fn with_data(mut self, variant: impl Into<String>, stats: SufficientStats) -> Self {
        self.data.insert(variant.into(), stats);
        self
    }

    /// Marks the metric as a guardrail.
    #[must_use]
    pub fn guardrail(mut self) -> Self {
        self.guardrail = true;
        self
    }

    /// Marks the metric as one where lower values are better.
    #[must_use]
    pub fn lower_is_better(mut self) -> Self {
        self.higher_is_better = false;
        self
    }
}

/// A full analysis request, in the JSON layout of the contract (camelCase).
///
/// Deserialize it with serde (e.g. straight from an HTTP body) or with
/// [`AnalysisRequest::from_json`], whose errors name the offending field; build it in Rust with
/// [`AnalysisRequest::new`] and the `with_*` methods. Nothing is validated until
/// [`analyze`](super::analyze).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRequest {
    /// Confidence level in (0, 1), default 0.95; α = 1 − level.
    #[serde(default = "default_level")]
    pub confidence_level: f64,
    /// Multiple-testing correction, default none.
    #[serde(default)]
    pub correction: Correction,
    /// Sequential (always-valid) mode; `null` for fixed-horizon tests.
    #[serde(default)]
    pub sequential: Option<SequentialSettings>,
    /// p-value below which the sample ratio counts as mismatched, default 0.001.
    #[serde(default = "default_srm")]
    pub srm_threshold: f64,
    /// What an arm with fewer units than its metric needs (1 for a proportion, 2 for a mean or
    /// ratio) means: an error (the default, for analysis requests built by hand) or `null`
    /// figures (for an experiment still collecting data).
    #[serde(default)]
    pub insufficient_data: InsufficientData,
    /// The arms, control first unless one is marked `control`.
    pub variants: Vec<VariantInput>,
    /// The metrics, primary first.
    pub metrics: Vec<MetricInput>,
}

/// What an arm with too few units for its metric means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum InsufficientData {
    /// An error naming the field (`metrics[0].data.a.count`).
    #[default]
    Error,
    /// The arm's figures, and every comparison with it, are `null`.
    Null,
}

impl AnalysisRequest {
    /// A request with the contract's defaults (level 0.95, no correction, fixed horizon,
    /// SRM threshold 0.001).
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::stats::{AnalysisRequest, Correction, MetricInput, MetricKind, SufficientStats, VariantInput};
    ///
    /// let request = AnalysisRequest::new(
    ///     vec![VariantInput::new("control", 250), VariantInput::new("treatment", 250)],
    ///     vec![MetricInput::new("conversion", MetricKind::Proportion)
    ///         .with_data("control", SufficientStats::proportion(250, 45))
    ///         .with_data("treatment", SufficientStats::proportion(250, 67))],
    /// )
    /// .with_correction(Correction::Holm);
    /// assert_eq!(request.confidence_level, 0.95);
    /// ```
    #[must_use]
    pub fn new(variants: Vec<VariantInput>, metrics: Vec<MetricInput>) -> Self {
        Self {
            confidence_level: default_level(),
            correction: Correction::None,
            sequential: None,
            srm_threshold: default_srm(),
            insufficient_data: InsufficientData::Error,
            variants,
            metrics,
        }
    }

    /// Sets the confidence level.
    #[must_use]
    pub fn with_confidence_level(mut self, level: f64) -> Self {
        self.confidence_level = level;
        self
    }

    /// Sets the multiple-testing correction.
    #[must_use]
    pub fn with_correction(mut self, correction: Correction) -> Self {
        self.correction = correction;
        self
    }

    /// Switches to sequential (always-valid) mode with the given tuning parameter.
    #[must_use]
    pub fn with_sequential(mut self, tuning_parameter: f64) -> Self {
        self.sequential = Some(SequentialSettings { tuning_parameter });
        self
    }

    /// Sets the sample-ratio-mismatch threshold.
    #[must_use]
    pub fn with_srm_threshold(mut self, threshold: f64) -> Self {
        self.srm_threshold = threshold;
        self
    }

    /// Sets what an arm with too few units means (default: an error).
    #[must_use]
    pub fn with_insufficient_data(mut self, mode: InsufficientData) -> Self {
        self.insufficient_data = mode;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialize_lowercase() {
        assert_eq!(
            serde_json::to_string(&MetricKind::Proportion).unwrap(),
            "\"proportion\""
        );
        assert_eq!(
            serde_json::to_string(&Correction::BenjaminiHochberg).unwrap(),
            "\"benjamini-hochberg\""
        );
    }
}
