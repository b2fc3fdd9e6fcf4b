//! Sample ratio mismatch: a chi-square goodness-of-fit test of the observed split.

use statrs::distribution::{ChiSquared, ContinuousCDF};

use super::error::{StatsError, invalid};

/// p-value of Pearson's chi-square test of `observed` counts against `expected_shares`.
///
/// # Formula
///
/// eᵢ = shareᵢ/Σshare · Σ observed; χ² = Σ (oᵢ − eᵢ)²/eᵢ; p = P(χ²ₖ₋₁ > χ²), the survival
/// function (Pearson 1900; `scipy.stats.chisquare`). With no observations at all p = 1.
///
/// A share of 0 (a variant ramped to 0%) is allowed: a unit observed there is a mismatch (p = 0);
/// otherwise its cell leaves the test (k counts only the arms with a positive share, and p = 1
/// when fewer than two remain). Shares are divided by the largest before they are added, so any
/// finite scale works (`[1e308, 1e308, 1]` is not turned into `[NaN, NaN, 0]`).
///
/// # Errors
///
/// Fewer than two arms, different lengths, a share that is negative or not finite, or no
/// positive share at all.
///
/// # Examples
///
/// ```
/// let p = abkit::stats::sample_ratio_mismatch(&[1000, 1200], &[0.5, 0.5])?;
/// assert!((p - 2.007_865_612_426_481e-5).abs() < 1e-15);
/// // a 0% variant: excluded while empty, a mismatch as soon as it sees a unit
/// assert_eq!(abkit::stats::sample_ratio_mismatch(&[500, 500, 0], &[1.0, 1.0, 0.0])?, 1.0);
/// assert_eq!(abkit::stats::sample_ratio_mismatch(&[500, 500, 1], &[1.0, 1.0, 0.0])?, 0.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn sample_ratio_mismatch(observed: &[u64], expected_shares: &[f64]) -> Result<f64, StatsError> {
    if observed.len() < 2 {
        return Err(invalid(
            "observed",
            format!("{} arms, expected at least 2", observed.len()),
        ));
    }
    if observed.len() != expected_shares.len() {
        return Err(invalid(
            "expectedShares",
            format!(
                "{} shares for {} arms",
                expected_shares.len(),
                observed.len()
            ),
        ));
    }
    for (i, s) in expected_shares.iter().enumerate() {
        if !(s.is_finite() && *s >= 0.0) {
            return Err(invalid(
                format!("expectedShares[{i}]"),
                format!("{s} is not a non-negative number"),
            ));
        }
    }
    if expected_shares.iter().all(|&s| s == 0.0) {
        return Err(invalid(
            "expectedShares",
            "every share is 0, at least one must be positive",
        ));
    }
    Ok(p_value(observed, expected_shares))
}

/// The chi-square p-value on validated input (finite shares ≥ 0, at least one positive).
#[allow(clippy::cast_precision_loss)]
pub(crate) fn p_value(observed: &[u64], shares: &[f64]) -> f64 {
    let total: f64 = observed.iter().map(|&o| o as f64).sum();
    let largest = shares.iter().copied().fold(0.0_f64, f64::max);
    if total <= 0.0 || !(largest.is_finite() && largest > 0.0) {
        return 1.0;
    }
    // each scaled share is in [0, 1], so their sum is at most k
    let share_total: f64 = shares.iter().map(|s| s / largest).sum();
    let mut chi2 = 0.0;
    let mut cells = 0_usize;
    for (&o, &s) in observed.iter().zip(shares) {
        let e = s / largest / share_total * total;
        if e == 0.0 {
            // nothing expected here (a 0% variant, or a share below 1e-308 of the largest)
            if o > 0 {
                return 0.0;
            }
            continue;
        }
        cells += 1;
        let d = o as f64 - e;
        chi2 += d * d / e;
    }
    if cells < 2 {
        return 1.0;
    }
    let df = (cells - 1) as f64;
    match ChiSquared::new(df) {
        Ok(dist) if chi2.is_finite() => dist.sf(chi2).clamp(0.0, 1.0),
        _ => 0.0,
    }
}

#[cfg(test)]
#[allow(clippy::excessive_precision)] // reference values are quoted with all their digits
mod tests {
    use super::*;

    #[test]
    fn matches_scipy_chisquare() {
        // chi2 = 64.082 with 2 df: Q(1, 32.041) from mpmath at 30 digits
        let p = sample_ratio_mismatch(&[821, 1000, 1179], &[1.0, 1.0, 1.0]).unwrap();
        assert!((p - 1.215_543_500_050_195_2e-14).abs() < 1e-22, "{p}");
        assert_eq!(
            sample_ratio_mismatch(&[500, 500], &[1.0, 1.0]).unwrap(),
            1.0
        );
        assert_eq!(sample_ratio_mismatch(&[0, 0], &[1.0, 1.0]).unwrap(), 1.0);
    }

    #[test]
    fn rejects_bad_shares() {
        let err = sample_ratio_mismatch(&[1, 2], &[1.0, -1.0]).unwrap_err();
        assert_eq!(err.field(), Some("expectedShares[1]"));
        let err = sample_ratio_mismatch(&[1, 2], &[1.0, f64::NAN]).unwrap_err();
        assert_eq!(err.field(), Some("expectedShares[1]"));
        let err = sample_ratio_mismatch(&[1, 2], &[0.0, 0.0]).unwrap_err();
        assert_eq!(err.field(), Some("expectedShares"));
        assert!(sample_ratio_mismatch(&[1], &[1.0]).is_err());
    }

    #[test]
    fn huge_shares_are_scaled_before_they_are_added() {
        // mpmath (40 digits): χ² = 18.1818… with 2 df, p = exp(−χ²/2); shares sum past f64::MAX
        let p = sample_ratio_mismatch(&[1000, 1200, 0], &[1e308, 1e308, 1.0]).unwrap();
        assert!((p / 1.126_855_805_078_007_6e-4 - 1.0).abs() < 1e-9, "{p}");
        // a unit where 1e-308 of the traffic was expected is a mismatch
        assert_eq!(
            sample_ratio_mismatch(&[1000, 1000, 1], &[1e308, 1e308, 1.0]).unwrap(),
            0.0
        );
        // tiny shares work as well
        let p = sample_ratio_mismatch(&[1000, 1200], &[5e-324, 5e-324]).unwrap();
        assert!((p / 2.007_865_612_426_484_6e-5 - 1.0).abs() < 1e-9, "{p}");
    }

    #[test]
    fn a_zero_share_is_a_mismatch_only_when_observed() {
        // excluded while empty: the two remaining cells, 1 df (scipy.stats.chisquare([1000, 1200]))
        let p = sample_ratio_mismatch(&[1000, 0, 1200], &[0.5, 0.0, 0.5]).unwrap();
        assert!((p / 2.007_865_612_426_484_6e-5 - 1.0).abs() < 1e-9, "{p}");
        assert_eq!(
            sample_ratio_mismatch(&[1000, 1, 1200], &[0.5, 0.0, 0.5]).unwrap(),
            0.0
        );
        // only one arm expected to get units, and it got them all
        assert_eq!(sample_ratio_mismatch(&[10, 0], &[1.0, 0.0]).unwrap(), 1.0);
        assert_eq!(sample_ratio_mismatch(&[10, 1], &[1.0, 0.0]).unwrap(), 0.0);
    }
}
