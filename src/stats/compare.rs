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
pub(crate) fn welch_df(v_t: f64, n_t: f64, v_c: f64, n_c: f64) -> f64 {
    let a = v_t / n_t;
    let b = v_c / n_c;
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
    let cuped = match (control.covariate, treatment.covariate) {
        (Some(cc), Some(tc)) => Some((cc, tc, cuped::theta((control, &cc), (treatment, &tc)))),
        _ => None,
    };
    let ((m_t, v_t), (m_c, v_c)) = match &cuped {
        Some((cc, tc, theta)) => (
            cuped::adjust(treatment, tc, *theta),
            cuped::adjust(control, cc, *theta),
        ),
        None => ((treatment.m, treatment.v), (control.m, control.v)),
    };
    let (n_t, n_c) = (treatment.n, control.n);
    let d = m_t - m_c;
    let se = (v_t / n_t + v_c / n_c).sqrt();
    let dist = match kind {
        MetricKind::Mean => Dist::t(welch_df(v_t, n_t, v_c, n_c)),
        MetricKind::Proportion | MetricKind::Ratio => Dist::Normal,
    };

    // Lift against the unadjusted control mean.
    let base = control.m;
    let (lift, lift_se) = if base == 0.0 || !base.is_finite() {
        (None, None)
    } else {
        let base2 = base * base;
        let var = match &cuped {
            Some((cc, _, theta)) => {
                let ratio = treatment.m / base;
                v_t / (n_t * base2)
                    + (control.v * ratio * ratio - 2.0 * theta * cc.covariance * ratio
                        + theta * theta * cc.variance)
                        / (n_c * base2)
            }
            None => {
                v_t / (n_t * base2) + treatment.m * treatment.m * control.v / (n_c * base2 * base2)
            }
        };
        (finite(d / base.abs()), finite(var.max(0.0).sqrt()))
    };

    let mut out = Comparison {
        difference: finite(d),
        difference_ci_lower: None,
        difference_ci_upper: None,
        lift,
        lift_ci_lower: None,
        lift_ci_upper: None,
        p_value: None,
        adjusted_p_value: None,
        significant: false,
        chance_to_beat_control: None,
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
}
