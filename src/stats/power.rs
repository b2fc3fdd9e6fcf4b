//! Power analysis: sample size per arm and minimum detectable effect (two-sided z-test).

use super::dist::{Dist, z};
use super::error::{StatsError, invalid};

/// Largest sample size returned (2⁵³, where f64 stops counting units exactly).
const MAX_SAMPLE_SIZE: f64 = 9_007_199_254_740_992.0;

fn check_alpha_power(alpha: f64, power: f64) -> Result<(f64, f64), StatsError> {
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(invalid("alpha", format!("{alpha} is outside (0, 1)")));
    }
    if !(power > 0.0 && power < 1.0) {
        return Err(invalid("power", format!("{power} is outside (0, 1)")));
    }
    Ok((
        Dist::Normal.upper_quantile(alpha / 2.0),
        power_quantile(power),
    ))
}

/// z_power = Φ⁻¹(power), from the tail `1 − power` when power is above ½ (that subtraction is
/// exact there), so a power close to 1 keeps its digits. The quantile z₁₋α/₂ is likewise taken
/// from the tail α/2 directly: `1 − α/2` rounds to 1 once α < 2⁻⁵³ (α = 1e-17 gave NaN).
fn power_quantile(power: f64) -> f64 {
    if power > 0.5 {
        Dist::Normal.upper_quantile(1.0 - power)
    } else {
        z(power)
    }
}

fn ceil_count(n: f64, field: &str, value: f64) -> Result<u64, StatsError> {
    if !(n.is_finite() && n <= MAX_SAMPLE_SIZE) {
        return Err(invalid(
            field,
            format!("{value} needs more than 2^53 units per arm"),
        ));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(n.ceil().max(1.0) as u64)
}

/// Units per arm to detect a relative change of a conversion rate.
///
/// # Formula
///
/// p₂ = p₁(1 + δ); n = ⌈(z₁₋α/₂ + z_power)²·(p₁(1 − p₁) + p₂(1 − p₂))/(p₂ − p₁)²⌉
/// (Chow, Shao & Wang, "Sample Size Calculations in Clinical Research", §4.2).
///
/// # Errors
///
/// A baseline outside (0, 1), a zero or non-finite effect, an effect taking p₂ outside [0, 1],
/// α or power outside (0, 1), or a sample size beyond 2⁵³.
///
/// # Examples
///
/// ```
/// let n = abkit::stats::sample_size_proportion(0.10, 0.05, 0.05, 0.8)?;
/// assert_eq!(n, 57_760);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn sample_size_proportion(
    baseline: f64,
    relative_effect: f64,
    alpha: f64,
    power: f64,
) -> Result<u64, StatsError> {
    if !(baseline > 0.0 && baseline < 1.0) {
        return Err(invalid("baseline", format!("{baseline} is outside (0, 1)")));
    }
    if !(relative_effect.is_finite() && relative_effect != 0.0) {
        return Err(invalid(
            "relativeEffect",
            format!("{relative_effect} is not a non-zero finite number"),
        ));
    }
    let p2 = baseline * (1.0 + relative_effect);
    if !(0.0..=1.0).contains(&p2) {
        return Err(invalid(
            "relativeEffect",
            format!("{relative_effect} takes the rate {baseline} to {p2}, outside [0, 1]"),
        ));
    }
    let (za, zb) = check_alpha_power(alpha, power)?;
    let k = (za + zb) * (za + zb);
    let diff = p2 - baseline;
    let n = k * (baseline * (1.0 - baseline) + p2 * (1.0 - p2)) / (diff * diff);
    ceil_count(n, "relativeEffect", relative_effect)
}

/// Units per arm to detect an absolute change of a mean.
///
/// # Formula
///
/// n = ⌈(z₁₋α/₂ + z_power)²·2σ²/Δ²⌉.
///
/// # Errors
///
/// A variance that is not positive and finite, a zero or non-finite effect, α or power outside
/// (0, 1), or a sample size beyond 2⁵³.
///
/// # Examples
///
/// ```
/// // σ = 1, Δ = 0.2: (1.959964 + 0.841621)²·2/0.04 = 392.4 → 393
/// let n = abkit::stats::sample_size_mean(1.0, 0.2, 0.05, 0.8)?;
/// assert_eq!(n, 393);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn sample_size_mean(
    variance: f64,
    absolute_effect: f64,
    alpha: f64,
    power: f64,
) -> Result<u64, StatsError> {
    if !(variance.is_finite() && variance > 0.0) {
        return Err(invalid(
            "variance",
            format!("{variance} is not a positive finite number"),
        ));
    }
    if !(absolute_effect.is_finite() && absolute_effect != 0.0) {
        return Err(invalid(
            "absoluteEffect",
            format!("{absolute_effect} is not a non-zero finite number"),
        ));
    }
    let (za, zb) = check_alpha_power(alpha, power)?;
    let n = (za + zb) * (za + zb) * 2.0 * variance / (absolute_effect * absolute_effect);
    ceil_count(n, "absoluteEffect", absolute_effect)
}

/// Smallest relative lift δ > 0 of a conversion rate detectable with `sample_size` units per
/// arm; `None` when the baseline is 0 or 1 or no δ ≤ (1 − p₁)/p₁ reaches the power.
///
/// # Formula
///
/// Solves n = K⁻¹·(p₁q₁ + p₂q₂)/(p₂ − p₁)² with K = (z₁₋α/₂ + z_power)²/n for D = p₂ − p₁ > 0:
/// D = [K(1 − 2p₁) + √(K²(1 − 2p₁)² + 8K(1 + K)p₁q₁)]/(2(1 + K)), δ = D/p₁.
///
/// # Errors
///
/// A baseline outside [0, 1], a sample size of 0, α or power outside (0, 1).
///
/// # Examples
///
/// ```
/// let mde = abkit::stats::minimum_detectable_effect_proportion(0.18, 250, 0.05, 0.8)?;
/// assert!((mde.unwrap_or(0.0) - 0.583_519_912_518_263).abs() < 1e-9);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn minimum_detectable_effect_proportion(
    baseline: f64,
    sample_size: u64,
    alpha: f64,
    power: f64,
) -> Result<Option<f64>, StatsError> {
    if !(0.0..=1.0).contains(&baseline) {
        return Err(invalid("baseline", format!("{baseline} is outside [0, 1]")));
    }
    if sample_size == 0 {
        return Err(invalid("sampleSize", "0 is not positive"));
    }
    let (za, zb) = check_alpha_power(alpha, power)?;
    if baseline == 0.0 || baseline == 1.0 {
        return Ok(None);
    }
    #[allow(clippy::cast_precision_loss)]
    let k = (za + zb) * (za + zb) / sample_size as f64;
    let p = baseline;
    let b = k * (1.0 - 2.0 * p);
    let disc = b * b + 8.0 * k * (1.0 + k) * p * (1.0 - p);
    let d = (b + disc.sqrt()) / (2.0 * (1.0 + k));
    if !(d.is_finite() && d <= 1.0 - p) {
        return Ok(None);
    }
    Ok(Some(d / p).filter(|x| x.is_finite()))
}

/// Smallest relative lift |Δ/μ| of a mean (or ratio) detectable with `sample_size` units per
/// arm; `None` when the mean is 0.
///
/// # Formula
///
/// √((z₁₋α/₂ + z_power)²·2σ²/n)/|μ|.
///
/// # Errors
///
/// A non-finite mean, a negative or non-finite variance, a sample size of 0, α or power
/// outside (0, 1).
///
/// # Examples
///
/// ```
/// let mde = abkit::stats::minimum_detectable_effect_mean(10.2, 16.81, 480, 0.05, 0.8)?;
/// assert!((mde.unwrap_or(0.0) - 0.072_691_210_555_887).abs() < 1e-9);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn minimum_detectable_effect_mean(
    mean: f64,
    variance: f64,
    sample_size: u64,
    alpha: f64,
    power: f64,
) -> Result<Option<f64>, StatsError> {
    if !mean.is_finite() {
        return Err(invalid("mean", format!("{mean} is not a finite number")));
    }
    if !(variance.is_finite() && variance >= 0.0) {
        return Err(invalid(
            "variance",
            format!("{variance} is not a non-negative finite number"),
        ));
    }
    if sample_size == 0 {
        return Err(invalid("sampleSize", "0 is not positive"));
    }
    let (za, zb) = check_alpha_power(alpha, power)?;
    Ok(mde_mean_sd(mean, variance.sqrt(), sample_size, za + zb))
}

/// [`minimum_detectable_effect_mean`] from the unit standard deviation and z₁₋α/₂ + z_power,
/// as (z₁₋α/₂ + z_power)·√(2/n)·(σ/|μ|): no σ² or product with it that could leave the range
/// of a double at extreme magnitudes.
pub(crate) fn mde_mean_sd(mean: f64, sd: f64, sample_size: u64, z_sum: f64) -> Option<f64> {
    if mean == 0.0 || sample_size == 0 {
        return None;
    }
    #[allow(clippy::cast_precision_loss)]
    let n = sample_size as f64;
    let mde = z_sum * (2.0 / n).sqrt() * (sd / mean.abs());
    Some(mde).filter(|x| x.is_finite())
}

/// z₁₋α/₂ + z_power for the report's own MDE; `None` for α or power outside (0, 1).
pub(crate) fn z_sum(alpha: f64, power: f64) -> Option<f64> {
    check_alpha_power(alpha, power).ok().map(|(za, zb)| za + zb)
}

#[cfg(test)]
#[allow(clippy::excessive_precision)] // reference values are quoted with all their digits
mod tests {
    use super::*;

    /// Issue 12 item 18. Reference values from mpmath 1.3 at 50 digits: the upper quantile as
    /// the root of log(erfc(x/√2)/2) = log(tail), and the sample-size formula in exact
    /// arithmetic from the same doubles.
    #[test]
    fn extreme_alpha_takes_the_quantile_from_the_tail() {
        assert_eq!(sample_size_proportion(0.1, 0.05, 1e-17, 0.8), Ok(652_397));
        let (za, zb) = check_alpha_power(1e-17, 0.8).unwrap();
        assert!((za - 8.573_944_076_720_882_7).abs() <= 1e-12 * za, "{za}");
        assert!((zb - 0.841_621_233_572_914_2).abs() <= 1e-12, "{zb}");
        for (tail, want) in [
            (1e-300, 37.047_096_299_361_199),
            (1e-17, 8.493_793_224_109_598_1),
            (0.025, 1.959_963_984_540_054_2),
        ] {
            let got = Dist::Normal.upper_quantile(tail);
            assert!(
                (got - want).abs() <= 1e-12 * want,
                "{tail}: {got} vs {want}"
            );
        }
        // confidence 0.9999999999999999: α = 1.1102230246251565e-16, finite MDEs.
        let alpha = 1.0 - 0.999_999_999_999_999_9_f64;
        let (za, _) = check_alpha_power(alpha, 0.8).unwrap();
        assert!((za - 8.292_361_075_813_595_5).abs() <= 1e-12 * za, "{za}");
        let mde = minimum_detectable_effect_mean(10.0, 4.0, 100, alpha, 0.8).unwrap();
        let want =
            (8.292_361_075_813_595_5 + 0.841_621_233_572_914_2) * (2.0f64 / 100.0).sqrt() * 0.2;
        assert!(
            mde.is_some_and(|m| (m - want).abs() <= 1e-12 * want),
            "{mde:?} vs {want}"
        );
        assert!(
            minimum_detectable_effect_proportion(0.1, 10_000, alpha, 0.8)
                .unwrap()
                .is_some_and(f64::is_finite)
        );
        // Power close to 1 keeps its digits: the double 1 − 1e-12 is 1 − 1.000088900582341e-12,
        // whose quantile is 7.0344869100478352.
        let (_, zb) = check_alpha_power(0.05, 1.0 - 1e-12).unwrap();
        assert!((zb - 7.034_486_910_047_835_2).abs() <= 1e-12 * zb, "{zb}");
    }

    #[test]
    fn contract_example() {
        assert_eq!(
            sample_size_proportion(0.10, 0.05, 0.05, 0.8).unwrap(),
            57_760
        );
    }

    #[test]
    fn mde_inverts_the_sample_size() {
        let n = sample_size_proportion(0.2, 0.1, 0.05, 0.8).unwrap();
        let mde = minimum_detectable_effect_proportion(0.2, n, 0.05, 0.8)
            .unwrap()
            .unwrap();
        assert!(mde <= 0.1 && mde > 0.0999, "{mde}");
    }

    #[test]
    fn mde_is_null_when_unreachable() {
        assert_eq!(
            minimum_detectable_effect_proportion(0.9, 1, 0.05, 0.8).unwrap(),
            None
        );
        assert_eq!(
            minimum_detectable_effect_proportion(0.0, 100, 0.05, 0.8).unwrap(),
            None
        );
        assert_eq!(
            minimum_detectable_effect_mean(0.0, 1.0, 100, 0.05, 0.8).unwrap(),
            None
        );
    }

    #[test]
    fn bad_inputs_are_rejected() {
        let fields = [
            sample_size_proportion(1.5, 0.1, 0.05, 0.8).unwrap_err(),
            sample_size_proportion(0.1, 0.0, 0.05, 0.8).unwrap_err(),
            sample_size_proportion(0.5, 1.5, 0.05, 0.8).unwrap_err(),
            sample_size_proportion(0.1, 0.1, 0.0, 0.8).unwrap_err(),
            sample_size_proportion(0.1, 0.1, 0.05, 1.0).unwrap_err(),
            sample_size_mean(f64::NAN, 1.0, 0.05, 0.8).unwrap_err(),
            sample_size_mean(1.0, 1e-300, 0.05, 0.8).unwrap_err(),
            minimum_detectable_effect_proportion(0.1, 0, 0.05, 0.8).unwrap_err(),
        ];
        let expected = [
            "baseline",
            "relativeEffect",
            "relativeEffect",
            "alpha",
            "power",
            "variance",
            "absoluteEffect",
            "sampleSize",
        ];
        for (err, field) in fields.iter().zip(expected) {
            assert_eq!(err.field(), Some(field), "{err}");
        }
    }
}
