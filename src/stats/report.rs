//! The analysis report, serialized exactly in the contract's JSON layout.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// The result of [`analyze`](super::analyze).
///
/// Serializes to the contract's output: variants as an array in request order, each variant's
/// `metrics` as an object in the request's metric order, undefined values as `null`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The confidence level the report was computed at.
    pub confidence_level: f64,
    /// The sample-ratio-mismatch check.
    pub srm: SrmCheck,
    /// One entry per variant, in request order.
    pub variants: Vec<VariantReport>,
    /// The recommended winner, if any, and the primary metric's minimum detectable effect.
    pub recommendation: Recommendation,
}

impl Report {
    /// The report of one variant by id.
    ///
    /// # Examples
    ///
    /// ```
    /// # use abkit::stats::{analyze, AnalysisRequest};
    /// # let request = AnalysisRequest::from_json(r#"{"variants": [{"id": "a", "participants": 10, "expectedShare": 1},
    /// #   {"id": "b", "participants": 10, "expectedShare": 1}], "metrics": []}"#)?;
    /// let report = analyze(&request)?;
    /// assert_eq!(report.variant("b").map(|v| v.participants), Some(10));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn variant(&self, id: &str) -> Option<&VariantReport> {
        self.variants.iter().find(|v| v.id == id)
    }
}

/// Chi-square test of the observed split against the expected shares (`scipy.stats.chisquare`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SrmCheck {
    /// Upper-tail p-value of the χ² statistic with k − 1 degrees of freedom.
    pub p_value: f64,
    /// `pValue < srmThreshold`.
    pub mismatch: bool,
}

/// One variant's results for every metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantReport {
    /// The variant id.
    pub id: String,
    /// Its participants, as given.
    pub participants: u64,
    /// Results per metric in request order (serialized as an object keyed by metric name).
    #[serde(serialize_with = "metrics_as_map")]
    pub metrics: Vec<MetricResult>,
}

impl VariantReport {
    /// The result for one metric by name.
    #[must_use]
    pub fn metric(&self, name: &str) -> Option<&MetricResult> {
        self.metrics.iter().find(|m| m.name == name)
    }
}

fn metrics_as_map<S: Serializer>(
    metrics: &[MetricResult],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(metrics.len()))?;
    for metric in metrics {
        map.serialize_entry(&metric.name, metric)?;
    }
    map.end()
}

/// One (variant, metric) cell of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricResult {
    /// The metric name (the key in JSON).
    #[serde(skip)]
    pub name: String,
    /// The variant's estimate m (unadjusted even with CUPED); `None` if not representable.
    pub value: Option<f64>,
    /// The confidence level of the intervals.
    pub confidence: f64,
    /// Lower end of the variant's own interval m − q·√(v/n).
    pub ci_lower: Option<f64>,
    /// Upper end of the variant's own interval.
    pub ci_upper: Option<f64>,
    /// The comparison with the control (treatments only).
    #[serde(flatten)]
    pub comparison: Option<Comparison>,
}

/// A treatment against the control on one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// d = m_T − m_C (CUPED-adjusted when covariates are present).
    pub difference: Option<f64>,
    /// Lower end of the difference's interval (or confidence sequence).
    pub difference_ci_lower: Option<f64>,
    /// Upper end of the difference's interval.
    pub difference_ci_upper: Option<f64>,
    /// Relative lift d/|m_C|; `None` when the control mean is 0.
    pub lift: Option<f64>,
    /// Lower end of the lift's delta-method interval.
    pub lift_ci_lower: Option<f64>,
    /// Upper end of the lift's interval.
    pub lift_ci_upper: Option<f64>,
    /// Two-sided p-value of d (always-valid in sequential mode).
    pub p_value: Option<f64>,
    /// The p-value after the request's multiple-testing correction.
    pub adjusted_p_value: Option<f64>,
    /// `adjustedPValue < α`.
    pub significant: bool,
    /// P(treatment better than control): exact Beta posterior for proportions, Φ(d/se) otherwise.
    pub chance_to_beat_control: Option<f64>,
}

/// The decision suggested by the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    /// The winning treatment's id, if any.
    pub winner: Option<String>,
    /// Probability that the winner is better in the primary metric's direction.
    pub confidence: Option<f64>,
    /// Relative minimum detectable effect of the primary metric at power 0.8.
    pub minimum_detectable_effect: Option<f64>,
}
