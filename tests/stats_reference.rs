//! Runs every case of `tests/data/stats-cases.json` (a copy of `shared/reference/stats-cases.json`:
//! figures from scipy 1.17.1 / statsmodels 0.15.0, gbstats and Spotify confidence tests) through
//! `abkit::stats::analyze` and checks every expected field within the file's tolerances.
//!
//! Set `ABKIT_STATS_CASES` to another file of the same layout to run that instead.
//!
//! The other tests run further files of the same layout made by `tests/data/stats-extremes.py`
//! (mpmath at 60 digits from STATS.md's formulas): extreme counts, magnitudes and levels.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::path::PathBuf;

use abkit::stats::{AnalysisRequest, analyze};
use serde_json::Value;

#[derive(Debug, Clone, Copy)]
struct Tolerance {
    relative: f64,
    absolute: f64,
    chance: f64,
}

fn cases_file() -> PathBuf {
    match std::env::var_os("ABKIT_STATS_CASES") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/stats-cases.json"),
    }
}

fn matches(expected: &Value, actual: &Value, field: &str, tol: Tolerance) -> bool {
    match (expected, actual) {
        (Value::Number(a), Value::Number(b)) => {
            let (Some(a), Some(b)) = (a.as_f64(), b.as_f64()) else {
                return false;
            };
            if field == "chanceToBeatControl" || field == "recommendation.confidence" {
                (a - b).abs() <= tol.chance
            } else {
                (a - b).abs() <= tol.absolute.max(tol.relative * a.abs())
            }
        }
        (a, b) => a == b,
    }
}

/// Compares every field of `expected` against `actual`; returns (checked, failures).
fn check_case(expected: &Value, report: &Value, tol: Tolerance) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut check = |path: String, field: &str, e: &Value, a: Option<&Value>| {
        checked += 1;
        match a {
            Some(a) if matches(e, a, field, tol) => {}
            other => failures.push(format!("{path}: expected {e}, got {other:?}")),
        }
    };
    if let Some(Value::Object(srm)) = expected.get("srm") {
        for (k, e) in srm {
            check(format!("srm.{k}"), k, e, report["srm"].get(k));
        }
    }
    if let Some(Value::Object(rec)) = expected.get("recommendation") {
        for (k, e) in rec {
            let field = format!("recommendation.{k}");
            check(field.clone(), &field, e, report["recommendation"].get(k));
        }
    }
    if let Some(Value::Object(variants)) = expected.get("variants") {
        let reported = report["variants"].as_array().cloned().unwrap_or_default();
        for (id, metrics) in variants {
            let variant = reported
                .iter()
                .find(|v| v["id"] == Value::String(id.clone()));
            let Some(metrics) = metrics.as_object() else {
                continue;
            };
            for (name, fields) in metrics {
                let Some(fields) = fields.as_object() else {
                    continue;
                };
                for (k, e) in fields {
                    let actual = variant
                        .and_then(|v| v["metrics"].get(name))
                        .and_then(|m| m.get(k));
                    check(format!("variants.{id}.{name}.{k}"), k, e, actual);
                }
            }
        }
    }
    (checked, failures)
}

#[test]
fn every_reference_case_matches() {
    run_cases(&cases_file());
}

/// `tests/data/stats-chance.json`: the exact Beta chance to beat control at 1e2 … 1e18 units per
/// arm with few (or almost all) conversions, from mpmath at 60 digits (`stats-extremes.py`).
#[test]
fn chance_to_beat_control_at_every_count() {
    run_cases(&data_file("stats-chance.json"));
}

/// `tests/data/stats-magnitudes.json`: means, ratios and CUPED at magnitudes 1e±100 … 1e±300
/// (where the sums are representable), from mpmath at 60 digits; tolerance purely relative.
#[test]
fn extreme_magnitudes_keep_their_digits() {
    run_cases(&data_file("stats-magnitudes.json"));
}

fn data_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Runs every case of one file of the `stats-cases.json` layout.
fn run_cases(path: &std::path::Path) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file: Value = serde_json::from_str(&text).unwrap();
    let t = &file["tolerance"];
    let tol = Tolerance {
        relative: t["relative"].as_f64().unwrap_or(1e-6),
        absolute: t["absolute"].as_f64().unwrap_or(1e-9),
        chance: t["chanceToBeatControl"].as_f64().unwrap_or(1e-6),
    };
    let cases = file["cases"].as_array().expect("`cases` must be an array");
    assert!(!cases.is_empty(), "{} has no cases", path.display());

    let mut failures = Vec::new();
    let mut run = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap_or("<unnamed>");
        let expected = &case["expected"];
        let outcome = AnalysisRequest::from_value(case["input"].clone()).and_then(|r| analyze(&r));
        if let Some(error) = expected.get("error") {
            // An expected error names a field: as a string, or as {"field": ...}.
            let field = error
                .get("field")
                .and_then(Value::as_str)
                .or(error.as_str())
                .unwrap_or("");
            match outcome {
                Err(e) if e.field() == Some(field) || e.to_string().contains(field) => run += 1,
                Err(e) => failures.push(format!("{name}: error {e} does not name `{field}`")),
                Ok(_) => failures.push(format!(
                    "{name}: expected an error naming `{field}`, got a report"
                )),
            }
            continue;
        }
        match outcome {
            Ok(report) => {
                let json = serde_json::to_value(&report).unwrap();
                let (checked, case_failures) = check_case(expected, &json, tol);
                assert!(checked > 0, "{name}: nothing to check");
                failures.extend(case_failures.into_iter().map(|f| format!("{name}: {f}")));
                run += 1;
            }
            Err(e) => failures.push(format!("{name}: unexpected error {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(run, cases.len(), "every case must run");
}
