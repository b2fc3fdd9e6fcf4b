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
/// # Errors
///
/// Fewer than two arms, different lengths, or a share that is not a positive finite number.
///
/// # Examples
///
/// ```
/// let p = abkit::stats::sample_ratio_mismatch(&[1000, 1200], &[0.5, 0.5])?;
/// assert!((p - 2.007_865_612_426_481e-5).abs() < 1e-15);
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
        if !(s.is_finite() && *s > 0.0) {
            return Err(invalid(
                format!("expectedShares[{i}]"),
                format!("{s} is not positive"),
            ));
        }
    }
    Ok(p_value(observed, expected_shares))
}

/// The chi-square p-value on validated input.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn p_value(observed: &[u64], shares: &[f64]) -> f64 {
    let total: f64 = observed.iter().map(|&o| o as f64).sum();
    let share_total: f64 = shares.iter().sum();
    if total <= 0.0 || !(share_total.is_finite() && share_total > 0.0) {
        return 1.0;
    }
    let chi2: f64 = observed
        .iter()
        .zip(shares)
        .map(|(&o, &s)| {
            let e = s / share_total * total;
            let d = o as f64 - e;
            d * d / e
        })
        .sum();
    let df = observed.len().saturating_sub(1).max(1) as f64;
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
        let err = sample_ratio_mismatch(&[1, 2], &[1.0, 0.0]).unwrap_err();
        assert_eq!(err.field(), Some("expectedShares[1]"));
        assert!(sample_ratio_mismatch(&[1], &[1.0]).is_err());
    }
}
