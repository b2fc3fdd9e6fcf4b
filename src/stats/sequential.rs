//! Asymptotic confidence sequences: intervals and p-values that stay valid under peeking.
//!
//! Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas (2023), "Time-uniform central limit theory and
//! asymptotic confidence sequences", with the normal-mixture boundary as implemented by
//! GrowthBook's gbstats and Eppo.

/// ρ² = (−2 ln α + ln(−2 ln α + 1))/N.
fn rho_squared(alpha: f64, tuning: f64) -> f64 {
    let l = -2.0 * alpha.ln();
    (l + (l + 1.0).ln()) / tuning
}

/// Half-width of the confidence sequence of an estimate with standard error `se` after `n`
/// units in total.
///
/// # Formula
///
/// σ² = s²·n; half-width = σ·√(2(nρ² + 1)·ln(√(nρ² + 1)/α)/(nρ)²)
/// = s·√(2(nρ² + 1)·ln(√(nρ² + 1)/α)/(nρ²)).
pub(crate) fn half_width(se: f64, n: f64, alpha: f64, tuning: f64) -> f64 {
    let nr = n * rho_squared(alpha, tuning);
    let log_term = 0.5 * (nr + 1.0).ln() - alpha.ln();
    se * (2.0 * (nr + 1.0) * log_term / nr).sqrt()
}

/// The always-valid p-value min(1, 1/E), with E computed in logs.
///
/// # Formula
///
/// ln E = ρ²·(e²n/s²)/(2(nρ² + 1)) − ½·ln(nρ² + 1); p = min(1, exp(−ln E)).
pub(crate) fn p_value(estimate: f64, se: f64, n: f64, alpha: f64, tuning: f64) -> f64 {
    let rho2 = rho_squared(alpha, tuning);
    let nr = n * rho2;
    let z = estimate / se;
    let ln_e = nr / (nr + 1.0) * (z * z) / 2.0 - 0.5 * nr.ln_1p();
    if ln_e <= 0.0 { 1.0 } else { (-ln_e).exp() }
}

#[cfg(test)]
#[allow(clippy::excessive_precision)] // reference values are quoted with all their digits
mod tests {
    use super::*;

    #[test]
    fn p_value_underflows_to_zero_not_nan() {
        assert_eq!(p_value(1e6, 1.0, 1e6, 0.05, 5000.0), 0.0);
        assert_eq!(p_value(0.0, 1.0, 1e6, 0.05, 5000.0), 1.0);
    }

    #[test]
    fn sequence_is_wider_than_the_fixed_interval() {
        // at n = N the half-width exceeds 1.96·se
        let h = half_width(1.0, 5000.0, 0.05, 5000.0);
        assert!(h > 1.96 && h < 4.0, "{h}");
    }
}
