//! Property tests: arbitrary (including hostile) requests never panic, and every number in every
//! report is finite and in range.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use abkit::stats::{
    AnalysisRequest, Correction, MetricInput, MetricKind, Report, SufficientStats, VariantInput,
    analyze,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

fn runner(cases: u32) -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    )
}

/// Finite but hostile doubles.
fn hostile_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(1.0),
        Just(-1.0),
        Just(1e308),
        Just(-1e308),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(5e-324),
        Just(1e-300),
        Just(1e154),
        -1e6..1e6_f64,
        any::<f64>().prop_filter("finite", |x| x.is_finite()),
    ]
}

fn hostile_count() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0_u64),
        Just(1),
        Just(2),
        Just(3),
        Just(u64::MAX),
        Just(1 << 53),
        2_u64..1_000_000_000_000,
    ]
}

fn kind() -> impl Strategy<Value = MetricKind> {
    prop_oneof![
        Just(MetricKind::Proportion),
        Just(MetricKind::Mean),
        Just(MetricKind::Ratio)
    ]
}

/// Completely arbitrary statistics: mostly invalid.
fn wild_stats() -> impl Strategy<Value = SufficientStats> {
    (
        hostile_count(),
        hostile_f64(),
        proptest::option::of(hostile_f64()),
        proptest::option::of(hostile_f64()),
        proptest::option::of(hostile_f64()),
        proptest::option::of(hostile_f64()),
        proptest::option::of((hostile_f64(), hostile_f64(), hostile_f64())),
    )
        .prop_map(|(count, sum, q, dy, qy, sp, cov)| {
            let mut s = SufficientStats {
                count,
                sum,
                sum_squares: q,
                denominator_sum: dy,
                denominator_sum_squares: qy,
                sum_products: sp,
                ..SufficientStats::default()
            };
            if let Some((a, b, c)) = cov {
                s = s.with_covariate(a, b, c);
            }
            s
        })
}

/// Statistics consistent by construction for `kind`, at extreme scales.
fn valid_stats(kind: MetricKind) -> impl Strategy<Value = SufficientStats> {
    let scale = prop_oneof![
        Just(1.0),
        Just(1e-150),
        Just(1e100),
        Just(1e150),
        1e-3..1e3_f64
    ];
    (
        prop_oneof![
            Just(2_u64),
            Just(3),
            2_u64..10_000,
            Just(100_000_000),
            Just(1 << 53)
        ],
        0.0..=1.0_f64,
        -1.0..1.0_f64,
        0.0..4.0_f64,
        scale,
        any::<bool>(),
        -1.0..1.0_f64,
    )
        .prop_map(move |(n, rate, mean, var, scale, with_cov, corr)| {
            #[allow(clippy::cast_precision_loss)]
            let nf = n as f64;
            match kind {
                MetricKind::Proportion => {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let conv = (rate * nf).floor() as u64;
                    let s = SufficientStats::proportion(n, conv.min(n));
                    if with_cov {
                        let c = conv as f64;
                        s.with_covariate(
                            c * scale,
                            (c + nf) * scale * scale,
                            c * scale * corr.abs(),
                        )
                    } else {
                        s
                    }
                }
                MetricKind::Mean => {
                    let m = mean * scale;
                    let v = var * scale * scale;
                    let s = SufficientStats::mean(n, m * nf, (v + m * m) * nf);
                    if with_cov {
                        s.with_covariate(0.0, nf * scale * scale, corr * v.sqrt() * scale * nf)
                    } else {
                        s
                    }
                }
                MetricKind::Ratio => {
                    let mx = mean.abs() * scale;
                    let my = (rate + 0.01) * scale;
                    let v = var * scale * scale;
                    SufficientStats::ratio(
                        n,
                        mx * nf,
                        (v + mx * mx) * nf,
                        my * nf,
                        (v + my * my) * nf,
                        (corr * v + mx * my) * nf,
                    )
                }
            }
        })
}

fn build(
    variant_count: usize,
    participants: &[u64],
    shares: &[f64],
    metrics: Vec<(MetricKind, Vec<SufficientStats>, bool, bool)>,
    options: (f64, Option<f64>, u8),
) -> AnalysisRequest {
    let variants = (0..variant_count)
        .map(|i| {
            VariantInput::new(format!("v{i}"), participants.get(i).copied().unwrap_or(0))
                .with_expected_share(shares.get(i).copied().unwrap_or(1.0))
        })
        .collect();
    let metrics = metrics
        .into_iter()
        .enumerate()
        .map(|(mi, (kind, stats, guardrail, higher))| {
            let mut m = MetricInput::new(format!("m{mi}"), kind);
            m.guardrail = guardrail;
            m.higher_is_better = higher;
            for (i, s) in stats.into_iter().take(variant_count).enumerate() {
                m = m.with_data(format!("v{i}"), s);
            }
            m
        })
        .collect();
    let mut request = AnalysisRequest::new(variants, metrics).with_confidence_level(options.0);
    request.sequential = options.1.map(|n| abkit::stats::SequentialSettings {
        tuning_parameter: n,
    });
    request.correction = match options.2 % 3 {
        0 => Correction::None,
        1 => Correction::Holm,
        _ => Correction::BenjaminiHochberg,
    };
    request
}

/// Every number of the report is finite and every probability lies in [0, 1].
fn check_report(report: &Report) -> Result<(), TestCaseError> {
    let probability = |name: &str, x: Option<f64>| -> Result<(), TestCaseError> {
        if let Some(x) = x {
            prop_assert!((0.0..=1.0).contains(&x), "{name} = {x}");
        }
        Ok(())
    };
    prop_assert!(report.srm.p_value.is_finite());
    probability("srm.pValue", Some(report.srm.p_value))?;
    probability(
        "recommendation.confidence",
        report.recommendation.confidence,
    )?;
    prop_assert!(
        report
            .recommendation
            .minimum_detectable_effect
            .is_none_or(f64::is_finite)
    );
    for v in &report.variants {
        for m in &v.metrics {
            for x in [m.value, m.ci_lower, m.ci_upper].into_iter().flatten() {
                prop_assert!(x.is_finite(), "{} {}: {x}", v.id, m.name);
            }
            if let Some(c) = &m.comparison {
                let numbers = [
                    c.difference,
                    c.difference_ci_lower,
                    c.difference_ci_upper,
                    c.lift,
                    c.lift_ci_lower,
                    c.lift_ci_upper,
                ];
                for x in numbers.into_iter().flatten() {
                    prop_assert!(x.is_finite(), "{} {}: {x}", v.id, m.name);
                }
                probability("pValue", c.p_value)?;
                probability("adjustedPValue", c.adjusted_p_value)?;
                probability("chanceToBeatControl", c.chance_to_beat_control)?;
            }
        }
    }
    // The JSON form parses back and carries no NaN/inf (serde_json would have written null).
    let text = serde_json::to_string(report).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    prop_assert!(
        value["variants"]
            .as_array()
            .is_some_and(|a| a.len() == report.variants.len())
    );
    Ok(())
}

fn metrics_strategy(
    stats: fn(MetricKind) -> BoxedStrategy<SufficientStats>,
) -> impl Strategy<Value = Vec<(MetricKind, Vec<SufficientStats>, bool, bool)>> {
    proptest::collection::vec(
        kind().prop_flat_map(move |k| {
            (
                Just(k),
                proptest::collection::vec(stats(k), 1..=4),
                any::<bool>(),
                any::<bool>(),
            )
        }),
        0..4,
    )
}

fn request_strategy(
    stats: fn(MetricKind) -> BoxedStrategy<SufficientStats>,
) -> impl Strategy<Value = AnalysisRequest> {
    (
        1_usize..=4,
        proptest::collection::vec(hostile_count(), 4),
        proptest::collection::vec(prop_oneof![Just(1.0), hostile_f64()], 4),
        metrics_strategy(stats),
        (
            prop_oneof![
                Just(0.95),
                Just(0.999_999),
                Just(1e-12),
                0.0..1.0_f64,
                hostile_f64()
            ],
            proptest::option::of(prop_oneof![Just(5000.0), Just(1e-300), hostile_f64()]),
            any::<u8>(),
        ),
    )
        .prop_map(|(count, participants, shares, metrics, options)| {
            build(count, &participants, &shares, metrics, options)
        })
}

#[test]
fn prop_hostile_requests_never_panic_and_stay_finite() {
    let wild: fn(MetricKind) -> BoxedStrategy<SufficientStats> = |_| wild_stats().boxed();
    runner(3_000)
        .run(&request_strategy(wild), |request| {
            if let Ok(report) = analyze(&request) {
                check_report(&report)?;
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn prop_consistent_extreme_requests_give_finite_reports() {
    let valid: fn(MetricKind) -> BoxedStrategy<SufficientStats> = |k| valid_stats(k).boxed();
    let analysed = std::cell::Cell::new(0_u32);
    runner(3_000)
        .run(&request_strategy(valid), |request| {
            if let Ok(report) = analyze(&request) {
                analysed.set(analysed.get() + 1);
                check_report(&report)?;
            }
            Ok(())
        })
        .unwrap();
    let analysed = analysed.get();
    assert!(analysed > 100, "only {analysed} requests were valid");
}

/// Structural equality with numbers equal to 1e-6 relative (or 1e-12 absolute).
fn close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-12_f64.max(1e-6 * x.abs())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| close(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
        }
        (x, y) => x == y,
    }
}

#[test]
fn prop_json_round_trip_reaches_the_same_report() {
    let valid: fn(MetricKind) -> BoxedStrategy<SufficientStats> = |k| valid_stats(k).boxed();
    runner(300)
        .run(&request_strategy(valid), |request| {
            let text = serde_json::to_string(&request).unwrap();
            let parsed = AnalysisRequest::from_json(&text);
            prop_assert!(parsed.is_ok(), "{parsed:?}");
            let parsed = parsed.unwrap();
            // serde_json's default float parser may be 1 ulp off (no `float_roundtrip`), so the
            // reports are compared number by number with a relative tolerance.
            let a = analyze(&parsed).map(|r| serde_json::to_value(r).unwrap());
            let b = analyze(&request).map(|r| serde_json::to_value(r).unwrap());
            // Requests the typed API rejects may hold non-finite numbers, which JSON writes as
            // null; only valid requests are expected to survive the trip unchanged.
            if let Ok(b) = b {
                prop_assert!(a.as_ref().is_ok_and(|a| close(a, &b)), "{a:?}\n{b}");
            }
            Ok(())
        })
        .unwrap();
}
