//! Benchmarks of the analysis plane.
//!
//! `stats/report/4x5/{1e3,1e6,1e8}_units`: a full report for 4 variants × 5 metrics (two
//! proportions, one with CUPED; two means, one with CUPED; one ratio) at 1 000, 1 000 000 and
//! 100 000 000 units per arm: the cost must not grow with the counts.
//! `stats/chance_to_beat/*`: the Beta chance to beat control alone, through a one-metric report.

use std::hint::black_box;

use abkit::stats::{
    AnalysisRequest, MetricInput, MetricKind, SufficientStats, VariantInput, analyze,
    sample_size_proportion,
};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

const VARIANTS: [&str; 4] = ["control", "t1", "t2", "t3"];

#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn request(units: u64) -> AnalysisRequest {
    let n = units as f64;
    let proportion = |rate: f64| SufficientStats::proportion(units, (rate * n).round() as u64);
    let mean = |m: f64, sd: f64| SufficientStats::mean(units, m * n, (sd * sd + m * m) * n);
    let mut metrics = vec![
        MetricInput::new("conversion", MetricKind::Proportion),
        MetricInput::new("retention", MetricKind::Proportion),
        MetricInput::new("watchTime", MetricKind::Mean),
        MetricInput::new("latency", MetricKind::Mean)
            .guardrail()
            .lower_is_better(),
        MetricInput::new("revenuePerSession", MetricKind::Ratio),
    ];
    for (i, id) in VARIANTS.iter().enumerate() {
        let lift = 1.0 + 0.01 * i as f64;
        let data = [
            proportion(0.10 * lift),
            proportion(0.40 * lift).with_covariate(0.38 * n, 0.38 * n, 0.30 * n),
            mean(30.0 * lift, 10.0),
            mean(200.0 / lift, 50.0).with_covariate(
                200.0 * n,
                (2500.0 + 40_000.0) * n,
                (0.6 * 2500.0 + 40_000.0 / lift) * n,
            ),
            SufficientStats::ratio(
                units,
                5.0 * lift * n,
                (4.0 + 25.0 * lift * lift) * n,
                3.0 * n,
                (1.0 + 9.0) * n,
                (0.5 + 15.0 * lift) * n,
            ),
        ];
        for (metric, stats) in metrics.iter_mut().zip(data) {
            metric.data.insert((*id).to_string(), stats);
        }
    }
    let variants = VARIANTS
        .iter()
        .map(|id| VariantInput::new(*id, units))
        .collect();
    AnalysisRequest::new(variants, metrics)
}

fn bench_report(c: &mut Criterion) {
    let mut group = c.benchmark_group("stats/report/4x5");
    for (label, units) in [
        ("1e3_units", 1_000_u64),
        ("1e6_units", 1_000_000),
        ("1e8_units", 100_000_000),
    ] {
        let req = request(units);
        assert!(analyze(&req).is_ok(), "bench request must be valid");
        group.bench_with_input(BenchmarkId::from_parameter(label), &req, |b, req| {
            b.iter(|| black_box(analyze(black_box(req))));
        });
    }
    group.finish();
}

fn bench_chance(c: &mut Criterion) {
    let mut group = c.benchmark_group("stats/chance_to_beat");
    for (label, count, rate) in [
        ("1e3_units", 1_000_u64, 0.1),
        ("1e6_units_1e5_conversions", 1_000_000, 0.1),
        ("2e6_units_1e6_conversions", 2_000_000, 0.5),
        ("1e8_units", 100_000_000, 0.1),
    ] {
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let conversions = (rate * count as f64) as u64;
        let req = AnalysisRequest::new(
            vec![
                VariantInput::new("control", count),
                VariantInput::new("treatment", count),
            ],
            vec![
                MetricInput::new("m", MetricKind::Proportion)
                    .with_data("control", SufficientStats::proportion(count, conversions))
                    .with_data(
                        "treatment",
                        SufficientStats::proportion(count, conversions + conversions / 100),
                    ),
            ],
        );
        group.bench_with_input(BenchmarkId::from_parameter(label), &req, |b, req| {
            b.iter(|| black_box(analyze(black_box(req))));
        });
    }
    group.finish();
}

fn bench_power(c: &mut Criterion) {
    c.bench_function("stats/sample_size_proportion", |b| {
        b.iter(|| black_box(sample_size_proportion(black_box(0.1), 0.05, 0.05, 0.8)));
    });
}

criterion_group!(benches, bench_report, bench_chance, bench_power);
criterion_main!(benches);
