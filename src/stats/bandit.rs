//! Multi-armed bandits on sufficient statistics: Thompson-sampling weights with a minimum
//! exploration share per arm, and the per-period weighted estimate that stays unbiased while
//! the weights change.
//!
//! Pure functions of their inputs: the random draws come from a small seeded generator
//! ([`SplitMix64`]), so the same data and seed always give the same weights.
//!
//! # Examples
//!
//! ```
//! use abkit::stats::bandit::{ArmTotals, thompson_weights};
//! use abkit::MetricKind;
//!
//! let arms = [
//!     ArmTotals { count: 1000, sum: 50.0, sum_squares: 50.0 },
//!     ArmTotals { count: 1000, sum: 80.0, sum_squares: 80.0 },
//! ];
//! let w = thompson_weights(MetricKind::Proportion, &arms, 0.1, 7)?;
//! assert!(w[1] > w[0] && w[0] >= 0.1 - 1e-12);
//! assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-9);
//! # Ok::<(), abkit::stats::StatsError>(())
//! ```

use crate::stats::error::StatsError;
use crate::stats::request::MetricKind;

fn invalid(field: impl Into<String>, reason: String) -> StatsError {
    StatsError::InvalidField {
        field: field.into(),
        reason,
    }
}

/// How many posterior draws [`thompson_weights`] takes.
pub const THOMPSON_DRAWS: usize = 10_000;

/// One arm's sufficient statistics (over some span of time): units, Σx, Σx².
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ArmTotals {
    /// Units.
    pub count: u64,
    /// Σ x.
    pub sum: f64,
    /// Σ x².
    pub sum_squares: f64,
}

impl ArmTotals {
    /// `self − earlier`, field by field (a period's data from two cumulative readings);
    /// counts saturate at 0.
    pub fn since(&self, earlier: &ArmTotals) -> ArmTotals {
        ArmTotals {
            count: self.count.saturating_sub(earlier.count),
            sum: self.sum - earlier.sum,
            sum_squares: self.sum_squares - earlier.sum_squares,
        }
    }

    fn mean_and_variance(&self) -> Option<(f64, f64)> {
        if self.count == 0 {
            return None;
        }
        let n = self.count as f64;
        let mean = self.sum / n;
        let var = if self.count > 1 {
            ((self.sum_squares - self.sum * mean) / (n - 1.0)).max(0.0)
        } else {
            0.0
        };
        (mean.is_finite() && var.is_finite()).then_some((mean, var))
    }
}

/// A tiny deterministic generator (SplitMix64): enough for Thompson draws, never used on the
/// decision path.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub const fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Gamma(shape, 1) (Marsaglia–Tsang; shape < 1 boosted).
    pub fn gamma(&mut self, shape: f64) -> f64 {
        if shape < 1.0 {
            let u = self.uniform();
            return self.gamma(shape + 1.0) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.uniform();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    /// Beta(a, b).
    pub fn beta(&mut self, a: f64, b: f64) -> f64 {
        let x = self.gamma(a);
        let y = self.gamma(b);
        if x + y > 0.0 { x / (x + y) } else { 0.5 }
    }
}

/// A seed from an experiment id and a weight version (FNV-1a of the id, mixed with the version):
/// the same update always draws the same numbers, and every update draws new ones.
pub fn bandit_seed(experiment: &str, weight_version: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in experiment.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    SplitMix64::new(h ^ weight_version.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64()
}

/// Thompson-sampling weights: each arm's share is the probability (over [`THOMPSON_DRAWS`]
/// posterior draws) that it is the best, then raised to at least `min_share` (a fraction; the
/// others scaled down to keep the sum at 1). A proportion draws from Beta(1 + Σx, 1 + n − Σx);
/// a mean or ratio from Normal(mean, s/√n), an arm with fewer than two units counting as
/// unknown (it wins its draws until it has data). Higher is better.
///
/// # Errors
///
/// [`StatsError::InvalidField`] for fewer than two arms, a `min_share` outside `[0, 1/arms]`,
/// or statistics that are not finite.
pub fn thompson_weights(
    kind: MetricKind,
    arms: &[ArmTotals],
    min_share: f64,
    seed: u64,
) -> Result<Vec<f64>, StatsError> {
    let k = arms.len();
    if k < 2 {
        return Err(invalid(
            "arms",
            format!("{k} given, a bandit needs at least 2"),
        ));
    }
    if !(min_share.is_finite() && (0.0..=1.0 / k as f64 + 1e-12).contains(&min_share)) {
        return Err(invalid(
            "minExplorationShare",
            format!("{min_share} is outside [0, 1/{k}]"),
        ));
    }
    let mut posterior = Vec::with_capacity(k);
    for (i, a) in arms.iter().enumerate() {
        if !(a.sum.is_finite() && a.sum_squares.is_finite()) {
            return Err(invalid(
                format!("arms[{i}]"),
                "totals are not finite".into(),
            ));
        }
        posterior.push(match kind {
            MetricKind::Proportion => {
                let n = a.count as f64;
                let s = a.sum.clamp(0.0, n);
                Posterior::Beta(1.0 + s, 1.0 + n - s)
            }
            MetricKind::Mean | MetricKind::Ratio => match a.mean_and_variance() {
                Some((m, v)) if a.count > 1 => Posterior::Normal(m, (v / a.count as f64).sqrt()),
                _ => Posterior::Unknown,
            },
        });
    }
    let mut rng = SplitMix64::new(seed);
    let mut wins = vec![0u64; k];
    for _ in 0..THOMPSON_DRAWS {
        let mut best = 0usize;
        let mut best_draw = f64::NEG_INFINITY;
        for (i, p) in posterior.iter().enumerate() {
            let draw = match *p {
                Posterior::Beta(a, b) => rng.beta(a, b),
                Posterior::Normal(m, s) => m + s * rng.normal(),
                Posterior::Unknown => f64::INFINITY,
            };
            // Ties (several unknown arms) go to a random one of them.
            if draw > best_draw || (draw == best_draw && rng.next_u64() & 1 == 0) {
                best = i;
                best_draw = draw;
            }
        }
        if let Some(w) = wins.get_mut(best) {
            *w += 1;
        }
    }
    let p_best: Vec<f64> = wins
        .iter()
        .map(|w| *w as f64 / THOMPSON_DRAWS as f64)
        .collect();
    Ok(with_floor(&p_best, min_share))
}

#[derive(Clone, Copy, Debug)]
enum Posterior {
    Beta(f64, f64),
    Normal(f64, f64),
    Unknown,
}

/// `shares` (summing to 1) with every share raised to at least `floor`, the excess taken from
/// the arms above the floor in proportion to what they have above it.
fn with_floor(shares: &[f64], floor: f64) -> Vec<f64> {
    let k = shares.len() as f64;
    let floor = floor.min(1.0 / k);
    // Every arm gets `floor`; the rest (1 − k·floor) is split as the shares are.
    let rest = (1.0 - k * floor).max(0.0);
    let total: f64 = shares.iter().sum();
    shares
        .iter()
        .map(|s| {
            let p = if total > 0.0 { s / total } else { 1.0 / k };
            floor + rest * p
        })
        .collect()
}

/// One period of a bandit: the arms' data collected while one set of weights was served.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Period {
    /// Per arm, the data of units that arrived in this period.
    pub arms: Vec<ArmTotals>,
}

/// An arm's estimate under changing weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeriodEstimate {
    /// The arm's mean, periods weighted by their share of all units.
    pub mean: f64,
    /// Its standard error.
    pub standard_error: f64,
}

/// The per-period weighted estimate of every arm (GrowthBook's bandit analysis): within a
/// period every arm saw the same population, so each arm's mean is taken per period and the
/// periods are combined with the same weights for every arm — each period's share of all units,
/// not of the arm's units — so reallocating traffic to an arm in a good (or bad) period does not
/// bias it. Periods where some arm has fewer than `kind.min_count()` units are left out (for
/// every arm). `None` for an arm when no period qualifies.
///
/// # Errors
///
/// [`StatsError::InvalidField`] when the periods do not all have the same number of arms.
pub fn period_weighted(
    kind: MetricKind,
    periods: &[Period],
) -> Result<Vec<Option<PeriodEstimate>>, StatsError> {
    let k = periods.first().map_or(0, |p| p.arms.len());
    if let Some((i, _)) = periods.iter().enumerate().find(|(_, p)| p.arms.len() != k) {
        return Err(invalid(
            format!("periods[{i}]"),
            format!("arms differ from periods[0]'s {k}"),
        ));
    }
    let min = kind.min_count().max(1);
    let usable: Vec<&Period> = periods
        .iter()
        .filter(|p| p.arms.iter().all(|a| a.count >= min))
        .collect();
    let total: f64 = usable
        .iter()
        .map(|p| p.arms.iter().map(|a| a.count as f64).sum::<f64>())
        .sum();
    let mut out = Vec::with_capacity(k);
    for arm in 0..k {
        if usable.is_empty() || total <= 0.0 {
            out.push(None);
            continue;
        }
        let mut mean = 0.0;
        let mut var = 0.0;
        for p in &usable {
            let share = p.arms.iter().map(|a| a.count as f64).sum::<f64>() / total;
            let Some((m, v)) = p.arms.get(arm).and_then(ArmTotals::mean_and_variance) else {
                continue;
            };
            let n = p.arms.get(arm).map_or(1.0, |a| a.count as f64);
            mean += share * m;
            var += share * share * v / n;
        }
        let se = var.sqrt();
        out.push(
            (mean.is_finite() && se.is_finite()).then_some(PeriodEstimate {
                mean,
                standard_error: se,
            }),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_keeps_every_arm_exploring_and_sums_to_one() {
        let w = with_floor(&[1.0, 0.0, 0.0], 0.1);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(w.iter().all(|x| *x >= 0.1 - 1e-12));
        assert!((w[0] - 0.8).abs() < 1e-12);
    }

    #[test]
    fn same_seed_same_weights_and_unknown_arms_explore() {
        let arms = [
            ArmTotals {
                count: 100,
                sum: 10.0,
                sum_squares: 10.0,
            },
            ArmTotals::default(),
        ];
        let a = thompson_weights(MetricKind::Mean, &arms, 0.0, 3).unwrap();
        let b = thompson_weights(MetricKind::Mean, &arms, 0.0, 3).unwrap();
        assert_eq!(a, b);
        assert!(a[1] > 0.99, "{a:?}");
        assert!(thompson_weights(MetricKind::Mean, &arms[..1], 0.0, 3).is_err());
        assert!(thompson_weights(MetricKind::Mean, &arms, 0.6, 3).is_err());
    }

    #[test]
    fn beta_draws_have_the_right_mean() {
        let mut r = SplitMix64::new(1);
        let m: f64 = (0..20_000).map(|_| r.beta(2.0, 6.0)).sum::<f64>() / 20_000.0;
        assert!((m - 0.25).abs() < 0.01, "{m}");
    }
}
