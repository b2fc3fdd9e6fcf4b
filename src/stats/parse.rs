//! Path-aware parsing of an analysis request from JSON: every error names the offending field
//! (`metrics[1].data.treatment.count`), which serde's derive alone cannot do.
//!
//! The dependency is one-way: this module builds the types of [`super::request`], which knows
//! nothing of it; [`AnalysisRequest::from_json`] and [`AnalysisRequest::from_value`] live here.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::{StatsError, invalid};
use super::request::{
    AnalysisRequest, MetricInput, MetricKind, SequentialSettings, SufficientStats, VariantInput,
    default_level, default_srm,
};

impl AnalysisRequest {
    /// Parses a request from JSON text, naming the offending field in any error.
    ///
    /// # Errors
    ///
    /// [`StatsError::Json`] for text that is not JSON; [`StatsError::InvalidField`] for a field
    /// of the wrong type, a missing required field, an unknown metric kind or an unknown field in
    /// a metric's data.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::stats::AnalysisRequest;
    ///
    /// let request = AnalysisRequest::from_json(r#"{
    ///   "variants": [{"id": "a", "participants": 10, "expectedShare": 1},
    ///                {"id": "b", "participants": 10, "expectedShare": 1}],
    ///   "metrics": [{"name": "m", "kind": "proportion",
    ///                "data": {"a": {"count": 10, "sum": 1}, "b": {"count": 10, "sum": 2}}}]
    /// }"#)?;
    /// assert_eq!(request.variants.len(), 2);
    ///
    /// let err = AnalysisRequest::from_json(r#"{"variants": [], "metrics": [{"name": "m", "kind": "median", "data": {}}]}"#)
    ///     .unwrap_err();
    /// assert_eq!(err.field(), Some("metrics[0].kind"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_json(text: &str) -> Result<Self, StatsError> {
        let value: Value = serde_json::from_str(text).map_err(|e| StatsError::Json {
            message: e.to_string(),
        })?;
        Self::from_value(value)
    }

    /// Converts an already parsed JSON value, naming the offending field in any error.
    ///
    /// # Errors
    ///
    /// As [`AnalysisRequest::from_json`].
    ///
    /// # Examples
    ///
    /// ```
    /// let value = serde_json::json!({"variants": [], "metrics": []});
    /// let request = abkit::stats::AnalysisRequest::from_value(value)?;
    /// assert!(request.metrics.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_value(value: Value) -> Result<Self, StatsError> {
        request_from_value(value)
    }
}

/// Converts a parsed JSON value into a request; see [`AnalysisRequest::from_value`].
fn request_from_value(value: Value) -> Result<AnalysisRequest, StatsError> {
    let Value::Object(mut top) = value else {
        return Err(invalid("request", "expected a json object"));
    };
    let variants = match top.remove("variants") {
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| variant_from_value(v, i))
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => {
            return Err(invalid(
                "variants",
                format!("expected an array, got {other}"),
            ));
        }
        None => return Err(invalid("variants", "missing field")),
    };
    let metrics = match top.remove("metrics") {
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| metric_from_value(v, i))
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => {
            return Err(invalid(
                "metrics",
                format!("expected an array, got {other}"),
            ));
        }
        None => return Err(invalid("metrics", "missing field")),
    };
    let confidence_level =
        optional_field(&mut top, "confidenceLevel")?.unwrap_or_else(default_level);
    let correction = optional_field(&mut top, "correction")?.unwrap_or_default();
    let sequential = sequential_from_value(top.remove("sequential"))?;
    let srm_threshold = optional_field(&mut top, "srmThreshold")?.unwrap_or_else(default_srm);
    let insufficient_data = optional_field(&mut top, "insufficientData")?.unwrap_or_default();
    Ok(AnalysisRequest {
        confidence_level,
        correction,
        sequential,
        srm_threshold,
        insufficient_data,
        variants,
        metrics,
    })
}

fn typed<T: DeserializeOwned>(value: Value, path: &str) -> Result<T, StatsError> {
    serde_json::from_value(value).map_err(|e| invalid(path, e.to_string()))
}

fn optional_field<T: DeserializeOwned>(
    map: &mut Map<String, Value>,
    key: &str,
) -> Result<Option<T>, StatsError> {
    match map.remove(key) {
        None => Ok(None),
        Some(v) => typed(v, key).map(Some),
    }
}

const DATA_FIELDS: [&str; 9] = [
    "count",
    "sum",
    "sumSquares",
    "denominatorSum",
    "denominatorSumSquares",
    "sumProducts",
    "covariateSum",
    "covariateSumSquares",
    "covariateSumProducts",
];

/// A count: a non-negative integer, also when written as an integral float (`1e1`, `10.0`).
fn count_at(value: Option<&Value>, path: &str) -> Result<Option<u64>, StatsError> {
    match value {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                return Ok(Some(u));
            }
            match n.as_f64() {
                Some(x) if x < 0.0 => Err(invalid(path, format!("{n} is negative"))),
                // 2^64 is the first integral float u64 cannot hold.
                Some(x) if x.fract() == 0.0 && x < 18_446_744_073_709_551_616.0 => {
                    Ok(Some(x as u64))
                }
                _ => Err(invalid(path, format!("{n} is not a non-negative integer"))),
            }
        }
        Some(other) => Err(invalid(path, format!("expected an integer, got {other}"))),
    }
}

/// A number field (JSON has no NaN or infinity: a string such as `"NaN"` is named as such).
fn number_at(value: Option<&Value>, path: &str) -> Result<Option<f64>, StatsError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(Some)
            .ok_or_else(|| invalid(path, format!("{n} is not a finite number"))),
        Some(other) => Err(invalid(path, format!("expected a number, got {other}"))),
    }
}

fn variant_from_value(value: Value, index: usize) -> Result<VariantInput, StatsError> {
    let path = format!("variants[{index}]");
    let Value::Object(obj) = value else {
        return Err(invalid(path, "expected a json object"));
    };
    const FIELDS: [&str; 4] = ["id", "participants", "expectedShare", "control"];
    if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(invalid(
            format!("{path}.{unknown}"),
            format!("unknown field, expected one of {}", FIELDS.join(", ")),
        ));
    }
    let id = match obj.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(invalid(
                format!("{path}.id"),
                format!("expected a string, got {other}"),
            ));
        }
        None => return Err(invalid(format!("{path}.id"), "missing field")),
    };
    let participants = count_at(obj.get("participants"), &format!("{path}.participants"))?
        .ok_or_else(|| invalid(format!("{path}.participants"), "missing field"))?;
    let expected_share =
        number_at(obj.get("expectedShare"), &format!("{path}.expectedShare"))?.unwrap_or(1.0);
    let control = match obj.get("control") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(invalid(
                format!("{path}.control"),
                format!("expected true or false, got {other}"),
            ));
        }
    };
    Ok(VariantInput {
        id,
        participants,
        expected_share,
        control,
    })
}

fn sequential_from_value(value: Option<Value>) -> Result<Option<SequentialSettings>, StatsError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(obj)) => {
            if let Some(unknown) = obj.keys().find(|k| k.as_str() != "tuningParameter") {
                return Err(invalid(
                    format!("sequential.{unknown}"),
                    "unknown field, expected tuningParameter",
                ));
            }
            let mut settings = SequentialSettings::default();
            if let Some(n) = number_at(obj.get("tuningParameter"), "sequential.tuningParameter")? {
                settings.tuning_parameter = n;
            }
            Ok(Some(settings))
        }
        Some(other) => Err(invalid(
            "sequential",
            format!("expected an object or null, got {other}"),
        )),
    }
}

fn metric_from_value(value: Value, index: usize) -> Result<MetricInput, StatsError> {
    let path = format!("metrics[{index}]");
    let Value::Object(mut obj) = value else {
        return Err(invalid(path, "expected a json object"));
    };
    let name: String = match obj.remove("name") {
        Some(v) => typed(v, &format!("{path}.name"))?,
        None => return Err(invalid(format!("{path}.name"), "missing field")),
    };
    let kind = match obj.remove("kind") {
        Some(Value::String(s)) => MetricKind::parse(&s).ok_or_else(|| {
            invalid(
                format!("{path}.kind"),
                format!("unknown metric kind `{s}`, expected proportion, mean or ratio"),
            )
        })?,
        Some(other) => {
            return Err(invalid(
                format!("{path}.kind"),
                format!("expected a string, got {other}"),
            ));
        }
        None => return Err(invalid(format!("{path}.kind"), "missing field")),
    };
    let guardrail = optional_field(&mut obj, "guardrail")
        .map_err(|e| prefix(e, &path))?
        .unwrap_or(false);
    let higher_is_better = optional_field(&mut obj, "higherIsBetter")
        .map_err(|e| prefix(e, &path))?
        .unwrap_or(true);
    let mut data = BTreeMap::new();
    match obj.remove("data") {
        Some(Value::Object(arms)) => {
            for (variant, stats) in arms {
                let arm_path = format!("{path}.data.{variant}");
                let parsed = stats_from_value(stats, &arm_path)?;
                data.insert(variant, parsed);
            }
        }
        Some(other) => {
            return Err(invalid(
                format!("{path}.data"),
                format!("expected an object, got {other}"),
            ));
        }
        None => return Err(invalid(format!("{path}.data"), "missing field")),
    }
    Ok(MetricInput {
        name,
        kind,
        data,
        guardrail,
        higher_is_better,
    })
}

fn prefix(error: StatsError, path: &str) -> StatsError {
    match error {
        StatsError::InvalidField { field, reason } => invalid(format!("{path}.{field}"), reason),
        other => other,
    }
}

fn stats_from_value(value: Value, path: &str) -> Result<SufficientStats, StatsError> {
    let Value::Object(obj) = value else {
        return Err(invalid(path, "expected a json object"));
    };
    if let Some(unknown) = obj.keys().find(|k| !DATA_FIELDS.contains(&k.as_str())) {
        return Err(invalid(
            format!("{path}.{unknown}"),
            format!("unknown field, expected one of {}", DATA_FIELDS.join(", ")),
        ));
    }
    let number = |key: &str| number_at(obj.get(key), &format!("{path}.{key}"));
    let count = count_at(obj.get("count"), &format!("{path}.count"))?
        .ok_or_else(|| invalid(format!("{path}.count"), "missing field"))?;
    let sum = number("sum")?.ok_or_else(|| invalid(format!("{path}.sum"), "missing field"))?;
    Ok(SufficientStats {
        count,
        sum,
        sum_squares: number("sumSquares")?,
        denominator_sum: number("denominatorSum")?,
        denominator_sum_squares: number("denominatorSumSquares")?,
        sum_products: number("sumProducts")?,
        covariate_sum: number("covariateSum")?,
        covariate_sum_squares: number("covariateSumSquares")?,
        covariate_sum_products: number("covariateSumProducts")?,
    })
}

#[cfg(test)]
#[allow(clippy::excessive_precision)] // reference values are quoted with all their digits
mod tests {
    use super::*;
    use crate::stats::request::Correction;

    #[test]
    fn defaults_follow_the_contract() {
        let r = AnalysisRequest::from_json(r#"{"variants": [], "metrics": [], "sequential": {}}"#)
            .unwrap();
        assert_eq!(r.confidence_level, 0.95);
        assert_eq!(r.srm_threshold, 0.001);
        assert_eq!(r.correction, Correction::None);
        assert_eq!(
            r.sequential,
            Some(SequentialSettings {
                tuning_parameter: 5000.0
            })
        );
        let serde_way: AnalysisRequest =
            serde_json::from_str(r#"{"variants": [], "metrics": [], "sequential": null}"#).unwrap();
        assert_eq!(serde_way.sequential, None);
        assert_eq!(serde_way.confidence_level, 0.95);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                r#"{"variants": [{"id": "a"}], "metrics": []}"#,
                "variants[0].participants",
            ),
            (
                r#"{"variants": [{"id": "a", "participants": -100}], "metrics": []}"#,
                "variants[0].participants",
            ),
            (
                r#"{"variants": [{"id": "a", "participants": 1, "expectedShare": "NaN"}], "metrics": []}"#,
                "variants[0].expectedShare",
            ),
            (
                r#"{"variants": [{"id": "a", "participants": 1, "shares": 1}], "metrics": []}"#,
                "variants[0].shares",
            ),
            (
                r#"{"variants": [], "metrics": [], "sequential": {"tuningParameter": "Infinity"}}"#,
                "sequential.tuningParameter",
            ),
            (
                r#"{"variants": [], "metrics": [{"name": "m", "kind": "x", "data": {}}]}"#,
                "metrics[0].kind",
            ),
            (
                r#"{"variants": [], "metrics": [{"name": "m", "kind": "mean", "data": {"a": {"count": -2, "sum": 1}}}]}"#,
                "metrics[0].data.a.count",
            ),
            (
                r#"{"variants": [], "metrics": [{"name": "m", "kind": "mean", "data": {"a": {"count": 2, "sum": 1, "sumSquare": 3}}}]}"#,
                "metrics[0].data.a.sumSquare",
            ),
            (
                r#"{"variants": [], "metrics": [], "confidenceLevel": "high"}"#,
                "confidenceLevel",
            ),
            (
                r#"{"variants": [], "metrics": [], "correction": "bonferroni"}"#,
                "correction",
            ),
        ];
        for (text, field) in cases {
            let err = AnalysisRequest::from_json(text).unwrap_err();
            assert_eq!(err.field(), Some(field), "{text}: {err}");
        }
        assert!(matches!(
            AnalysisRequest::from_json("{"),
            Err(StatsError::Json { .. })
        ));
        // The reasons name the value.
        let negative = AnalysisRequest::from_json(
            r#"{"variants": [{"id": "a", "participants": -100}], "metrics": []}"#,
        )
        .unwrap_err();
        assert_eq!(
            negative.to_string(),
            "variants[0].participants: -100 is negative"
        );
        let nan = AnalysisRequest::from_json(
            r#"{"variants": [{"id": "a", "participants": 1, "expectedShare": "NaN"}], "metrics": []}"#,
        )
        .unwrap_err();
        assert_eq!(
            nan.to_string(),
            "variants[0].expectedShare: expected a number, got \"NaN\""
        );
        // Integral floats are counts: 1e1 is 10; 10.5 is not a count.
        let r = AnalysisRequest::from_json(
            r#"{"variants": [{"id": "a", "participants": 1e1}], "metrics": [{"name": "m", "kind": "proportion", "data": {"a": {"count": 1e1, "sum": 2.0}}}]}"#,
        )
        .unwrap();
        assert_eq!(r.variants[0].participants, 10);
        assert_eq!(r.metrics[0].data["a"].count, 10);
        let half = AnalysisRequest::from_json(
            r#"{"variants": [], "metrics": [{"name": "m", "kind": "mean", "data": {"a": {"count": 10.5, "sum": 1}}}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            half.to_string(),
            "metrics[0].data.a.count: 10.5 is not a non-negative integer"
        );
    }
}

#[cfg(test)]
mod layering {
    /// The request types must not depend on their parser (no `request` ↔ `parse` import circle).
    #[test]
    fn request_does_not_import_parse() {
        let request = include_str!("request.rs");
        for needle in ["parse::", "mod parse", "stats::parse"] {
            assert!(!request.contains(needle), "request.rs mentions `{needle}`");
        }
    }
}
