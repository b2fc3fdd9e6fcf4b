//! Validity by simulation: false-positive rates of A/A experiments, the sequential mode under
//! peeking, and CUPED's variance reduction. Sufficient statistics are accumulated from per-unit
//! draws of a seeded generator, never produced by the engine.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use abkit::stats::{
    AnalysisRequest, Comparison, MetricInput, MetricKind, SufficientStats, VariantInput, analyze,
};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

const ALPHA: f64 = 0.05;

fn rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut Xoshiro256PlusPlus) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn two_arms(metric: MetricInput, n_control: u64, n_treatment: u64) -> AnalysisRequest {
    AnalysisRequest::new(
        vec![
            VariantInput::new("control", n_control),
            VariantInput::new("treatment", n_treatment),
        ],
        vec![metric],
    )
}

fn comparison(request: &AnalysisRequest) -> Comparison {
    let report = analyze(request).unwrap();
    report.variants[1].metrics[0].comparison.clone().unwrap()
}

/// Conversions among `n` Bernoulli(p) units.
fn conversions(rng: &mut Xoshiro256PlusPlus, n: u64, p: f64) -> u64 {
    (0..n).map(|_| u64::from(rng.random_bool(p))).sum()
}

#[test]
fn proportion_aa_false_positive_rate_is_nominal() {
    let mut r = rng(20_240_601);
    let (sims, n, p) = (4_000, 1_000_u64, 0.1);
    let mut positives = 0;
    for _ in 0..sims {
        let metric = MetricInput::new("conversion", MetricKind::Proportion)
            .with_data(
                "control",
                SufficientStats::proportion(n, conversions(&mut r, n, p)),
            )
            .with_data(
                "treatment",
                SufficientStats::proportion(n, conversions(&mut r, n, p)),
            );
        if comparison(&two_arms(metric, n, n)).significant {
            positives += 1;
        }
    }
    let rate = f64::from(positives) / f64::from(sims);
    eprintln!("A/A false-positive rate: {rate}");
    assert!((0.04..=0.06).contains(&rate), "false-positive rate {rate}");
}

/// Σx and Σx² of `n` draws of N(mean, sd²).
fn normal_sums(rng: &mut Xoshiro256PlusPlus, n: u64, mean: f64, sd: f64) -> (f64, f64) {
    let (mut s, mut q) = (0.0, 0.0);
    for _ in 0..n {
        let x = mean + sd * normal(rng);
        s += x;
        q += x * x;
    }
    (s, q)
}

#[test]
fn mean_aa_false_positive_rate_is_nominal() {
    let mut r = rng(7_777);
    let (sims, n) = (4_000, 400_u64);
    let mut positives = 0;
    for _ in 0..sims {
        let (sc, qc) = normal_sums(&mut r, n, 10.0, 3.0);
        let (st, qt) = normal_sums(&mut r, n, 10.0, 3.0);
        let metric = MetricInput::new("watchTime", MetricKind::Mean)
            .with_data("control", SufficientStats::mean(n, sc, qc))
            .with_data("treatment", SufficientStats::mean(n, st, qt));
        if comparison(&two_arms(metric, n, n)).significant {
            positives += 1;
        }
    }
    let rate = f64::from(positives) / f64::from(sims);
    eprintln!("A/A false-positive rate: {rate}");
    assert!((0.04..=0.06).contains(&rate), "false-positive rate {rate}");
}

#[test]
fn sequential_mode_survives_peeking_and_fixed_horizon_does_not() {
    let mut r = rng(424_242);
    let (sims, step, looks, p) = (4_000, 200_u64, 25, 0.1);
    let (mut sequential_positives, mut fixed_positives) = (0, 0);
    for _ in 0..sims {
        let (mut conv_c, mut conv_t, mut n) = (0, 0, 0);
        let (mut seq_hit, mut fixed_hit) = (false, false);
        for _ in 0..looks {
            conv_c += conversions(&mut r, step, p);
            conv_t += conversions(&mut r, step, p);
            n += step;
            let metric = MetricInput::new("conversion", MetricKind::Proportion)
                .with_data("control", SufficientStats::proportion(n, conv_c))
                .with_data("treatment", SufficientStats::proportion(n, conv_t));
            let fixed = two_arms(metric, n, n);
            if !fixed_hit && comparison(&fixed).significant {
                fixed_hit = true;
            }
            let sequential = fixed.with_sequential(5_000.0);
            if !seq_hit && comparison(&sequential).significant {
                seq_hit = true;
            }
        }
        sequential_positives += u32::from(seq_hit);
        fixed_positives += u32::from(fixed_hit);
    }
    let sequential_rate = f64::from(sequential_positives) / f64::from(sims);
    let fixed_rate = f64::from(fixed_positives) / f64::from(sims);
    eprintln!("25 looks: sequential {sequential_rate}, fixed horizon {fixed_rate}");
    assert!(
        sequential_rate <= ALPHA,
        "sequential false-positive rate {sequential_rate}"
    );
    assert!(
        fixed_rate > ALPHA,
        "fixed-horizon rate under peeking {fixed_rate}"
    );
}

#[test]
fn cuped_shrinks_the_interval_by_sqrt_one_minus_rho_squared() {
    let mut r = rng(99);
    let (sims, n, rho) = (2_000, 500_u64, 0.7_f64);
    let noise = (1.0 - rho * rho).sqrt();
    let mut ratio_sum = 0.0;
    for _ in 0..sims {
        let mut arm = || {
            let (mut s, mut q, mut cs, mut cq, mut cp) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for _ in 0..n {
                let c = normal(&mut r);
                let y = 5.0 + rho * c + noise * normal(&mut r);
                s += y;
                q += y * y;
                cs += c;
                cq += c * c;
                cp += c * y;
            }
            (SufficientStats::mean(n, s, q), (cs, cq, cp))
        };
        let (control, cov_c) = arm();
        let (treatment, cov_t) = arm();
        let plain = MetricInput::new("m", MetricKind::Mean)
            .with_data("control", control.clone())
            .with_data("treatment", treatment.clone());
        let adjusted = MetricInput::new("m", MetricKind::Mean)
            .with_data("control", control.with_covariate(cov_c.0, cov_c.1, cov_c.2))
            .with_data(
                "treatment",
                treatment.with_covariate(cov_t.0, cov_t.1, cov_t.2),
            );
        let width = |c: Comparison| c.difference_ci_upper.unwrap() - c.difference_ci_lower.unwrap();
        let plain_width = width(comparison(&two_arms(plain, n, n)));
        let adjusted_width = width(comparison(&two_arms(adjusted, n, n)));
        ratio_sum += adjusted_width / plain_width;
    }
    let mean_ratio = ratio_sum / f64::from(sims);
    let target = (1.0 - rho * rho).sqrt();
    eprintln!("CUPED mean CI-width ratio {mean_ratio}, target {target}");
    assert!(
        (mean_ratio / target - 1.0).abs() <= 0.05,
        "mean width ratio {mean_ratio}, target {target}"
    );
}
