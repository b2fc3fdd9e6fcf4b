//! Bandit simulations with fixed seeds (issue 18): the per-period weighted estimate stays
//! unbiased (within its standard error) while Thompson sampling moves the weights and the
//! conversion rate drifts, where the pooled estimate does not; and a bandit's regret is lower
//! than a fixed even split's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use abkit::MetricKind;
use abkit::stats::bandit::{
    ArmTotals, Period, SplitMix64, bandit_seed, period_weighted, thompson_weights,
};

/// Picks an arm from `weights` (fractions summing to 1).
fn pick(rng: &mut SplitMix64, weights: &[f64]) -> usize {
    let u = rng.uniform();
    let mut acc = 0.0;
    for (i, w) in weights.iter().enumerate() {
        acc += w;
        if u < acc {
            return i;
        }
    }
    weights.len() - 1
}

struct Run {
    periods: Vec<Period>,
    cumulative: Vec<ArmTotals>,
    regret: f64,
}

/// `periods` periods of `units` units each; arm `a`'s rate in period `t` is `rate(t, a)`.
/// `bandit`: recompute the weights after every period (else a fixed even split).
fn simulate(
    seed: u64,
    periods: usize,
    units: usize,
    arms: usize,
    rate: impl Fn(usize, usize) -> f64,
    bandit: bool,
) -> Run {
    let mut rng = SplitMix64::new(seed);
    let mut weights = vec![1.0 / arms as f64; arms];
    let mut cumulative = vec![ArmTotals::default(); arms];
    let mut out = Vec::new();
    let mut regret = 0.0;
    for t in 0..periods {
        let best = (0..arms).map(|a| rate(t, a)).fold(f64::MIN, f64::max);
        let mut period = vec![ArmTotals::default(); arms];
        for _ in 0..units {
            let a = pick(&mut rng, &weights);
            let x = if rng.uniform() < rate(t, a) { 1.0 } else { 0.0 };
            regret += best - rate(t, a);
            for p in [&mut period[a], &mut cumulative[a]] {
                p.count += 1;
                p.sum += x;
                p.sum_squares += x * x;
            }
        }
        out.push(Period { arms: period });
        if bandit {
            weights = thompson_weights(
                MetricKind::Proportion,
                &cumulative,
                0.1,
                bandit_seed("sim", seed * 1000 + t as u64),
            )
            .unwrap();
        }
    }
    Run {
        periods: out,
        cumulative,
        regret,
    }
}

#[test]
fn period_weighting_removes_the_reallocation_bias() {
    const DELTA: f64 = 0.03;
    // The base rate triples over the run while the bandit moves traffic to the better arm:
    // the pooled estimate gives the better arm mostly late (high-rate) units.
    let rate = |t: usize, a: usize| 0.05 + 0.015 * t as f64 + if a == 1 { DELTA } else { 0.0 };
    let reps = 60;
    let (mut bias, mut pooled_bias, mut se_sum) = (0.0, 0.0, 0.0);
    for r in 0..reps {
        let run = simulate(100 + r, 10, 1500, 2, rate, true);
        let est = period_weighted(MetricKind::Proportion, &run.periods).unwrap();
        let (a, b) = (est[0].unwrap(), est[1].unwrap());
        bias += (b.mean - a.mean) - DELTA;
        se_sum += (a.standard_error.powi(2) + b.standard_error.powi(2)).sqrt();
        let m = |t: &ArmTotals| t.sum / t.count as f64;
        pooled_bias += (m(&run.cumulative[1]) - m(&run.cumulative[0])) - DELTA;
    }
    let (bias, pooled_bias, se) = (
        bias / reps as f64,
        pooled_bias / reps as f64,
        se_sum / reps as f64,
    );
    assert!(
        bias.abs() <= se,
        "period-weighted bias {bias} exceeds its standard error {se}"
    );
    // Without the weighting the reallocation biases the estimate: the test can tell.
    assert!(
        pooled_bias.abs() > 2.0 * se,
        "pooled bias {pooled_bias} unexpectedly small (se {se})"
    );
}

#[test]
fn a_bandit_has_less_regret_than_a_fixed_split() {
    let rates = [0.05, 0.06, 0.09];
    let rate = |_: usize, a: usize| rates[a];
    for seed in 1..=5 {
        let b = simulate(seed, 20, 1000, 3, rate, true);
        let f = simulate(seed, 20, 1000, 3, rate, false);
        assert!(
            b.regret < 0.6 * f.regret,
            "seed {seed}: bandit regret {} vs fixed {}",
            b.regret,
            f.regret
        );
    }
}
