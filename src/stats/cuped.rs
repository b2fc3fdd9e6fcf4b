//! CUPED variance reduction with a pooled regression coefficient.

use super::estimate::{Arm, Covariate};

/// Relative slack under which the pooled covariate variance counts as zero.
const ZERO_VARIANCE: f64 = 1e-9;

/// θ = cov(c, value)/var(c) over both arms pooled into one sample (0 unless var(c) > 0).
///
/// # Formula
///
/// θ = [Σcv − Σc·Σv/n] / [Σc² − (Σc)²/n] with the sums pooled over control and treatment
/// (Deng, Xu, Kohavi & Walker 2013, "Improving the sensitivity of online controlled experiments
/// by utilizing pre-experiment data"; pooled as in GrowthBook's gbstats).
pub(crate) fn theta(control: (&Arm, &Covariate), treatment: (&Arm, &Covariate)) -> f64 {
    let (ca, cc) = control;
    let (ta, tc) = treatment;
    let n = ca.n + ta.n;
    let sum_c = cc.sum + tc.sum;
    let sum_v = ca.sum + ta.sum;
    let squares = cc.sum_squares + tc.sum_squares;
    let centred_c = squares - sum_c * (sum_c / n);
    let centred_cv = cc.sum_products + tc.sum_products - sum_c * (sum_v / n);
    let has_variance = centred_c > ZERO_VARIANCE * squares;
    if !has_variance {
        return 0.0;
    }
    let theta = centred_cv / centred_c;
    if theta.is_finite() { theta } else { 0.0 }
}

/// The arm's adjusted estimate and unit standard deviation: (m − θ·c̄, √(v + θ²·v_c − 2θ·cov(c, value))).
///
/// # Formula
///
/// m' = m − θ·c̄, v' = v + θ²·v_c − 2θ·cov_arm (clamped at 0), as in `docs/STATS.md`. θ²·v_c is
/// computed as θ·(θ·v_c) (of the order of cov_arm), so that a huge or tiny θ — a metric and a
/// covariate of very different magnitudes — neither overflows nor underflows. NaN if the
/// variance is not finite.
pub(crate) fn adjust(arm: &Arm, covariate: &Covariate, theta: f64) -> (f64, f64) {
    let mean_c = covariate.sum / arm.n;
    let m = arm.m - theta * mean_c;
    let v = arm.v + theta * (theta * covariate.variance) - 2.0 * theta * covariate.covariance;
    let sd = if v.is_finite() {
        v.max(0.0).sqrt()
    } else {
        f64::NAN
    };
    (m, sd)
}

#[cfg(test)]
#[allow(clippy::excessive_precision)] // reference values are quoted with all their digits
mod tests {
    use super::*;
    use crate::stats::estimate::estimate;
    use crate::stats::request::{MetricKind, SufficientStats};

    #[test]
    fn theta_is_the_pooled_slope() {
        // value = 2·c exactly: θ = 2 and the adjusted variance vanishes.
        let c = SufficientStats::mean(3, 12.0, 56.0).with_covariate(6.0, 14.0, 28.0); // c = 1, 2, 3
        let t = SufficientStats::mean(3, 18.0, 116.0).with_covariate(9.0, 29.0, 58.0); // c = 2, 3, 4
        let ca = estimate(MetricKind::Mean, &c, &|| "c".to_string()).unwrap();
        let ta = estimate(MetricKind::Mean, &t, &|| "t".to_string()).unwrap();
        let th = theta((&ca, &ca.covariate.unwrap()), (&ta, &ta.covariate.unwrap()));
        assert!((th - 2.0).abs() < 1e-12);
        let (m, sd) = adjust(&ca, &ca.covariate.unwrap(), th);
        assert!((m - 0.0).abs() < 1e-12);
        assert!(sd.abs() < 1e-6);
    }

    #[test]
    fn constant_covariate_gives_no_adjustment() {
        let c = SufficientStats::mean(2, 3.0, 5.0).with_covariate(2.0, 2.0, 3.0);
        let a = estimate(MetricKind::Mean, &c, &|| "c".to_string()).unwrap();
        let cov = a.covariate.unwrap();
        assert_eq!(theta((&a, &cov), (&a, &cov)), 0.0);
    }
}
