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
    /// For Student's t: closed forms for ν = 1 and 2, otherwise the Cornish–Fisher expansion
    /// (Abramowitz & Stegun 26.7.5) refined by safeguarded Newton steps on the survival function.
    /// (statrs' own `inverse_cdf` is only accurate to about 1e-6 for large ν and can fail to
    /// terminate for ν near 10⁸.)
    pub(crate) fn upper_quantile(self, tail: f64) -> f64 {
        if !(tail > 0.0 && tail < 1.0) {
            return f64::NAN;
        }
        match self {
            Self::Normal => -Normal::standard().inverse_cdf(tail),
            Self::StudentT(df) => t_upper_quantile(df, tail),
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

/// The x with P(T_ν > x) = `tail`, 0 < tail < 1.
fn t_upper_quantile(df: f64, tail: f64) -> f64 {
    if tail > 0.5 {
        return -t_upper_quantile(df, 1.0 - tail);
    }
    if tail == 0.5 {
        return 0.0;
    }
    if df == 1.0 {
        return (std::f64::consts::PI * (0.5 - tail)).tan();
    }
    if df == 2.0 {
        return (1.0 - 2.0 * tail) / (2.0 * tail * (1.0 - tail)).sqrt();
    }
    let Ok(t) = StudentsT::new(0.0, 1.0, df) else {
        return f64::NAN;
    };
    let z = -Normal::standard().inverse_cdf(tail);
    let (z2, n) = (z * z, df);
    let g1 = (z2 + 1.0) * z / 4.0;
    let g2 = ((5.0 * z2 + 16.0) * z2 + 3.0) * z / 96.0;
    let g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) * z / 384.0;
    let g4 = ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) * z / 92_160.0;
    let mut x = z + (g1 + (g2 + (g3 + g4 / n) / n) / n) / n;
    if !(x.is_finite() && x > 0.0) {
        x = z.max(1.0);
    }
    // The root is positive; keep a bracket [lo, hi] and fall back to bisection (or doubling)
    // whenever a Newton step leaves it.
    let (mut lo, mut hi) = (0.0_f64, f64::INFINITY);
    for _ in 0..200 {
        let f = t.sf(x) - tail;
        if f == 0.0 {
            return x;
        }
        if f > 0.0 {
            lo = x;
        } else {
            hi = x;
        }
        let density = t.pdf(x);
        let mut next = x + f / density;
        if !(next.is_finite() && next > lo && next < hi) {
            next = if hi.is_finite() {
                0.5 * (lo + hi)
            } else {
                2.0 * x
            };
        }
        if (next - x).abs() <= 1e-15 * x {
            return next;
        }
        x = next;
    }
    x
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
    fn t_quantiles_match_mpmath() {
        // mpmath findroot of the t survival function at 40 digits
        let cases = [
            (1.0, 0.025, 12.706_204_736_174_704),
            (2.0, 0.025, 4.302_652_729_749_463_9),
            (3.0, 1e-10, 2_225.769_284_683_093),
            (5.0, 0.3, 0.559_429_644_469_360_8),
            (30.0, 5e-13, 11.722_008_426_303_952),
            (99_999_999.0, 0.025, 1.959_964_008_262_767),
        ];
        for (df, tail, expected) in cases {
            let got = Dist::t(df).upper_quantile(tail);
            // statrs' t survival function (ln Γ of ν/2 inside) limits ν ≈ 1e8 to ~1e-7
            let tolerance = if df > 1e6 { 1e-7 } else { 1e-9 };
            assert!(
                (got / expected - 1.0).abs() < tolerance,
                "ν = {df}, tail {tail}: {got}"
            );
            if tail > 1e-3 {
                // 1 − tail is only exact enough to test symmetry for moderate tails
                let lower = Dist::t(df).upper_quantile(1.0 - tail);
                assert!(
                    (lower + expected).abs() <= tolerance * expected,
                    "ν = {df}: {lower}"
                );
            }
        }
    }

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
