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
            Self::StudentT(df) => t_sf(df, x),
        }
    }
}

/// Relative size of the last Cornish–Fisher term under which the expansion is used as is: the
/// first omitted term is smaller by a further factor of order z²/ν.
const CF_ACCEPT: f64 = 1e-10;

/// The Cornish–Fisher expansion of the t quantile in the normal quantile z (Abramowitz &
/// Stegun 26.7.5), and its last term g₄/ν⁴.
fn cornish_fisher(z: f64, n: f64) -> (f64, f64) {
    let z2 = z * z;
    let g1 = (z2 + 1.0) * z / 4.0;
    let g2 = ((5.0 * z2 + 16.0) * z2 + 3.0) * z / 96.0;
    let g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) * z / 384.0;
    let g4 = ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) * z / 92_160.0;
    let n4 = n * n * n * n;
    (z + (g1 + (g2 + (g3 + g4 / n) / n) / n) / n, g4 / n4)
}

/// d/dz of [`cornish_fisher`].
fn cornish_fisher_slope(z: f64, n: f64) -> f64 {
    let z2 = z * z;
    let d1 = (3.0 * z2 + 1.0) / 4.0;
    let d2 = ((25.0 * z2 + 48.0) * z2 + 3.0) / 96.0;
    let d3 = (((21.0 * z2 + 95.0) * z2 + 51.0) * z2 - 15.0) / 384.0;
    let d4 = ((((711.0 * z2 + 5432.0) * z2 + 7410.0) * z2 - 5760.0) * z2 - 945.0) / 92_160.0;
    1.0 + (d1 + (d2 + (d3 + d4 / n) / n) / n) / n
}

/// P(T_ν > x).
///
/// For large ν the Cornish–Fisher expansion is inverted (z with CF(z) = |x|, by Newton) and
/// the normal tail of z returned, when its last term shows the expansion exact to ~1e-10;
/// otherwise statrs' incomplete-beta form 0.5·I_{ν/(ν+x²)}(ν/2, ½), which is fast exactly there.
fn t_sf(df: f64, x: f64) -> f64 {
    let Ok(t) = StudentsT::new(0.0, 1.0, df) else {
        return f64::NAN;
    };
    let a = x.abs();
    if df >= 100.0 && a.is_finite() {
        let mut z = a * (1.0 - 1.0 / (4.0 * df));
        for _ in 0..20 {
            let (value, _) = cornish_fisher(z, df);
            let step = (value - a) / cornish_fisher_slope(z, df);
            z -= step;
            if !step.is_finite() || step.abs() <= 1e-16 * z.abs().max(1.0) {
                break;
            }
        }
        let (value, last_term) = cornish_fisher(z, df);
        if z.is_finite()
            && (value - a).abs() <= 1e-14 * a.max(1.0)
            && last_term.abs() * z.max(1.0) <= CF_ACCEPT
        {
            let upper = Normal::standard().sf(z);
            return if x >= 0.0 { upper } else { 1.0 - upper };
        }
    }
    t.sf(x)
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
    let (mut x, last_term) = cornish_fisher(z, df);
    if x.is_finite() && last_term.abs() <= CF_ACCEPT * z {
        return x;
    }
    if !(x.is_finite() && x > 0.0) {
        x = z.max(1.0);
    }
    // The root is positive; keep a bracket [lo, hi] and fall back to bisection (or doubling)
    // whenever a Newton step leaves it.
    let (mut lo, mut hi) = (0.0_f64, f64::INFINITY);
    for _ in 0..200 {
        let f = t_sf(df, x) - tail;
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
    fn t_survival_matches_mpmath() {
        // 0.5·betainc(ν/2, 1/2, 0, ν/(ν+t²)) in mpmath at 40 digits
        let cases = [
            (5000.0, 3.0, 0.001_356_554_512_142_896_9),
            (150.0, 2.5, 0.006_747_661_009_347_440_7),
            (1e6, 1.5, 0.066_807_359_118_396_385),
            (2000.0, 0.3, 0.382_104_165_993_235_83),
            (1000.0, 6.0, 1.377_684_586_688_734_6e-9),
            (3.0, 40.0, 1.719_034_039_457_926_4e-5),
        ];
        for (df, x, expected) in cases {
            let got = Dist::t(df).sf(x);
            assert!(
                (got / expected - 1.0).abs() < 1e-9,
                "ν = {df}, x = {x}: {got}"
            );
            let lower = Dist::t(df).sf(-x);
            assert!(
                (lower - (1.0 - expected)).abs() < 1e-10,
                "ν = {df}, x = −{x}: {lower}"
            );
        }
    }

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
