//! Thin wrappers over statrs' distributions: the reference distribution of a test statistic.

use statrs::distribution::{Continuous, ContinuousCDF, Normal, StudentsT};

/// Above this many degrees of freedom Student's t is replaced by the standard normal: the
/// relative difference of their quantiles is below (q³ + q)/(4ν) < 1e-8.
const NORMAL_ABOVE_DF: f64 = 1e8;

/// The distribution of a standardised estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Dist {
    /// The standard normal.
    Normal,
    /// Student's t with the given degrees of freedom.
    StudentT(f64),
}

impl Dist {
    /// Student's t with ν degrees of freedom, or the normal when ν is huge or undefined.
    pub(crate) fn t(df: f64) -> Self {
        if df.is_finite() && df > 0.0 && df <= NORMAL_ABOVE_DF {
            Self::StudentT(df)
        } else {
            Self::Normal
        }
    }

    /// The x with P(X > x) = `tail`; NaN when `tail` is outside (0, 1).
    ///
    /// For Student's t the statrs estimate (accurate to about 1e-6 for large ν) is polished by
    /// Newton steps on the survival function, which converge to the double-precision root.
    pub(crate) fn upper_quantile(self, tail: f64) -> f64 {
        if !(tail > 0.0 && tail < 1.0) {
            return f64::NAN;
        }
        match self {
            Self::Normal => -Normal::standard().inverse_cdf(tail),
            Self::StudentT(df) => match StudentsT::new(0.0, 1.0, df) {
                Ok(t) => {
                    let mut x = -t.inverse_cdf(tail);
                    for _ in 0..6 {
                        let density = t.pdf(x);
                        let step = (t.sf(x) - tail) / density;
                        if !(step.is_finite() && density > 0.0) {
                            break;
                        }
                        x += step;
                        if step.abs() <= 1e-15 * x.abs().max(1.0) {
                            break;
                        }
                    }
                    x
                }
                Err(_) => f64::NAN,
            },
        }
    }

    /// The upper tail P(X > x), computed directly (not as 1 − F).
    pub(crate) fn sf(self, x: f64) -> f64 {
        if x.is_nan() {
            return f64::NAN;
        }
        match self {
            Self::Normal => Normal::standard().sf(x),
            Self::StudentT(df) => match StudentsT::new(0.0, 1.0, df) {
                Ok(t) => t.sf(x),
                Err(_) => f64::NAN,
            },
        }
    }
}

/// Φ(x), the standard normal distribution function.
pub(crate) fn normal_cdf(x: f64) -> f64 {
    Normal::standard().cdf(x)
}

/// The standard normal quantile Φ⁻¹(p); NaN outside (0, 1).
pub(crate) fn z(p: f64) -> f64 {
    if p > 0.0 && p < 1.0 {
        Normal::standard().inverse_cdf(p)
    } else {
        f64::NAN
    }
}

/// `Some(x)` when x is finite.
pub(crate) fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

#[cfg(test)]
#[allow(clippy::excessive_precision)] // reference values are quoted with all their digits
mod tests {
    use super::*;

    const T_499000: f64 = 1.959_968_738_601_951_3;

    #[test]
    fn matches_scipy() {
        // reference values from mpmath (30 digits): norm.ppf(0.975), t.ppf(0.975, 10), t.sf(2.5, 7), norm.sf(8)
        assert!((z(0.975) - 1.959_963_984_540_054).abs() < 1e-12);
        assert!((Dist::t(10.0).upper_quantile(0.025) - 2.228_138_851_986_274_7).abs() < 1e-9);
        assert!((Dist::t(7.0).sf(2.5) - 0.020_496_109_292_876_448).abs() < 1e-12);
        assert!((Dist::Normal.sf(8.0) / 6.220_960_574_271_784e-16 - 1.0).abs() < 1e-9);
        assert_eq!(Dist::t(f64::NAN), Dist::Normal);
        assert!(Dist::Normal.upper_quantile(0.0).is_nan());
        // large ν: mpmath root of t.sf(q, 499000) = 0.025
        let q = Dist::t(499_000.0).upper_quantile(0.025);
        // statrs' t survival function limits this to ~1e-10 (ln Γ of 2.5e5 in its incomplete beta)
        assert!((q - T_499000).abs() < 1e-9, "{q}");
    }
}
