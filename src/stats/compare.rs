//! A treatment against the control: difference, delta-method lift, intervals and p-values.

use super::beta::chance_to_beat;
use super::cuped;
use super::dist::{Dist, finite, normal_cdf};
use super::estimate::Arm;
use super::report::Comparison;
use super::request::MetricKind;
use super::sequential;

/// What the comparison needs to know about the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// α = 1 − confidence level.
    pub alpha: f64,
    /// The tuning parameter N in sequential mode.
    pub sequential: Option<f64>,
}

/// Welch–Satterthwaite degrees of freedom.
///
/// # Formula
///
/// ν = (v_T/n_T + v_C/n_C)² / ((v_T/n_T)²/(n_T − 1) + (v_C/n_C)²/(n_C − 1))
/// (Welch 1947; `scipy.stats.ttest_ind_from_stats(equal_var=False)`).
impl Comparison {
    /// A comparison with every figure undefined (`null`) and nothing significant.
    fn undefined() -> Comparison {
        Comparison {
            difference: None,
            difference_ci_lower: None,
            difference_ci_upper: None,
            lift: None,
            lift_ci_lower: None,
            lift_ci_upper: None,
            p_value: None,
            adjusted_p_value: None,
            significant: false,
            chance_to_beat_control: None,
        }
    }
}

#[cfg(test)]
pub(crate) fn welch_df(v_t: f64, n_t: f64, v_c: f64, n_c: f64) -> f64 {
    welch_df_se((v_t / n_t).sqrt(), n_t, (v_c / n_c).sqrt(), n_c)
}

/// [`welch_df`] from the two standard errors se_T = √(v_T/n_T), se_C = √(v_C/n_C).
///
/// Both are first divided by the larger, so that neither the squares nor the fourth powers
/// overflow or underflow whatever the metric's magnitude (a variance of 1e200 per unit used to
/// turn ν into NaN and the t test silently into a z test). NaN when both are 0.
pub(crate) fn welch_df_se(se_t: f64, n_t: f64, se_c: f64, n_c: f64) -> f64 {
    let s = se_t.max(se_c);
    if !(s > 0.0 && s.is_finite()) {
        return f64::NAN;
    }
    let a = (se_t / s) * (se_t / s);
    let b = (se_c / s) * (se_c / s);
    (a + b) * (a + b) / (a * a / (n_t - 1.0) + b * b / (n_c - 1.0))
}

/// Compares `treatment` with `control`. `adjusted_p_value` is the raw p-value and `significant`
/// is false; both are settled once all p-values of the report are known.
///
/// # Formula
///
/// d = m_T − m_C, se = √(v_T/n_T + v_C/n_C); CI d ± q·se, p = 2·F̄(|d|/se) with the normal
/// (proportion, ratio; Wald test as statsmodels `test_proportions_2indep(method='wald')`) or
/// Student's t with Welch's ν (mean). Lift r = d/|m_C| with delta-method variance
/// v_T/(n_T·m_C²) + m_T²·v_C/(n_C·m_C⁴) (Kohavi, Tang & Xu 2020, "Trustworthy Online Controlled
/// Experiments", §18), or its CUPED form from `docs/STATS.md`. In sequential mode the intervals and p
/// come from [`sequential`].
pub(crate) fn compare(
    kind: MetricKind,
    control: &Arm,
    treatment: &Arm,
    settings: Settings,
) -> Comparison {
    if control.n == 0.0 || treatment.n == 0.0 {
        // a 0% variant without data on either side: nothing to compare
        return Comparison::undefined();
    }
    let cuped = match (control.covariate, treatment.covariate) {
        (Some(cc), Some(tc)) => Some((cc, tc, cuped::theta((control, &cc), (treatment, &tc)))),
        _ => None,
    };
    let ((m_t, sd_t), (m_c, sd_c)) = match &cuped {
        Some((cc, tc, theta)) => (
            cuped::adjust(treatment, tc, *theta),
            cuped::adjust(control, cc, *theta),
        ),
        None => ((treatment.m, treatment.sd), (control.m, control.sd)),
    };
    let (n_t, n_c) = (treatment.n, control.n);
    // Everything below works with standard errors, never with their squares: for metrics of
    // magnitude 1e±77 and beyond a squared variance (or m_C⁴) leaves the range of a double.
    let (se_t, se_c) = (sd_t / n_t.sqrt(), sd_c / n_c.sqrt());
    let d = m_t - m_c;
    let se = se_t.hypot(se_c);
    let dist = match kind {
        MetricKind::Mean => Dist::t(welch_df_se(se_t, n_t, se_c, n_c)),
        MetricKind::Proportion | MetricKind::Ratio => Dist::Normal,
    };

    // Lift against the unadjusted control mean, its delta-method variance written in ratios to
    // |m_C| (each factor of order one whatever the magnitude).
    let base = control.m;
    let (lift, lift_se) = if base == 0.0 || !base.is_finite() {
        (None, None)
    } else {
        let scale = base.abs();
        let ratio = treatment.m / base;
        let lift_se = match &cuped {
            Some((cc, _, theta)) => {
                // v'_T/(n_T·m_C²) + (v_C·r² − 2θ·cov_C·r + θ²·v_cC)/(n_C·m_C²)
                let own = se_t / scale;
                let value = ratio * (control.sd / scale);
                let cov = ratio * (theta / scale) * (cc.covariance / scale);
                let covariate = theta * (cc.variance.sqrt() / scale);
                let control_part = value * value - 2.0 * cov + covariate * covariate;
                non_negative_sqrt(own * own + control_part / n_c)
            }
            // v_T/(n_T·m_C²) + m_T²·v_C/(n_C·m_C⁴)
            None => finite((se_t / scale).hypot(ratio * (se_c / scale))),
        };
        (finite(d / scale), lift_se)
    };

    let mut out = Comparison {
        difference: finite(d),
        lift,
        ..Comparison::undefined()
    };
    if !(se.is_finite() && se > 0.0 && d.is_finite()) {
        return out;
    }
    let alpha = settings.alpha;
    let interval = |e: f64, s: f64, half: f64| -> (Option<f64>, Option<f64>) {
        if s.is_finite() && half.is_finite() {
            (finite(e - half), finite(e + half))
        } else {
            (None, None)
        }
    };
    match settings.sequential {
        Some(tuning) => {
            let n = n_t + n_c;
            (out.difference_ci_lower, out.difference_ci_upper) =
                interval(d, se, sequential::half_width(se, n, alpha, tuning));
            if let (Some(r), Some(s)) = (lift, lift_se) {
                (out.lift_ci_lower, out.lift_ci_upper) =
                    interval(r, s, sequential::half_width(s, n, alpha, tuning));
            }
            out.p_value = finite(sequential::p_value(d, se, n, alpha, tuning));
        }
        None => {
            let q = dist.upper_quantile(alpha / 2.0);
            (out.difference_ci_lower, out.difference_ci_upper) = interval(d, se, q * se);
            if let (Some(r), Some(s)) = (lift, lift_se) {
                (out.lift_ci_lower, out.lift_ci_upper) = interval(r, s, q * s);
            }
            out.p_value = finite((2.0 * dist.sf((d / se).abs())).min(1.0));
        }
    }
    out.adjusted_p_value = out.p_value;
    out.chance_to_beat_control = finite(match kind {
        MetricKind::Proportion => {
            chance_to_beat(control.n, control.sum, treatment.n, treatment.sum)
        }
        MetricKind::Mean | MetricKind::Ratio => normal_cdf(d / se),
    });
    out
}

/// √x for a variance that may be a hair below 0 through rounding; `None` for NaN or infinity
/// (never a zero-width interval out of a NaN, as `x.max(0.0)` would make).
fn non_negative_sqrt(x: f64) -> Option<f64> {
    if x.is_finite() {
        Some(x.max(0.0).sqrt())
    } else {
        None
    }
}

#[cfg(test)]
#[allow(clippy::excessive_precision)] // reference values are quoted with all their digits
mod tests {
    use super::*;

    #[test]
    fn welch_df_matches_scipy() {
        // scipy: sd 4.6/4.1, n 510/480 → df = 984.8… (Welch–Satterthwaite by hand)
        let df = welch_df(4.6 * 4.6, 510.0, 4.1 * 4.1, 480.0);
        let a = 4.6_f64.powi(2) / 510.0;
        let b = 4.1_f64.powi(2) / 480.0;
        let expected = (a + b).powi(2) / (a * a / 509.0 + b * b / 479.0);
        assert!((df - expected).abs() < 1e-9);
        assert!(df > 980.0 && df < 990.0, "{df}");
    }

    #[test]
    fn welch_df_survives_extreme_magnitudes() {
        // equal standard errors and n = 100 per arm: ν = 198 exactly, at any scale
        for se in [1.0, 1e200, 1e-200, 1e-300, 1e300] {
            let df = welch_df_se(se, 100.0, se, 100.0);
            assert!((df - 198.0).abs() < 1e-9, "se {se}: {df}");
        }
        // one arm 1e-200 of the other: ν → n − 1 of the dominant arm
        let df = welch_df_se(1.0, 50.0, 1e-200, 100.0);
        assert!((df - 49.0).abs() < 1e-9, "{df}");
        assert!(welch_df_se(0.0, 10.0, 0.0, 10.0).is_nan());
        assert_eq!(non_negative_sqrt(f64::NAN), None);
        assert_eq!(non_negative_sqrt(-1e-30), Some(0.0));
    }
}
