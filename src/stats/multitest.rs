//! Multiple-testing corrections, exactly as `statsmodels.stats.multitest.multipletests`.

use super::error::{StatsError, invalid};
use super::request::Correction;

/// Adjusts p-values for multiple testing.
///
/// # Formula
///
/// With p₍₁₎ ≤ … ≤ p₍ₘ₎ sorted ascending:
/// - Holm (1979): p̃₍ᵢ₎ = maxⱼ≤ᵢ (m − j + 1)·p₍ⱼ₎, clipped to 1 (`method='holm'`);
/// - Benjamini & Hochberg (1995): p̃₍ᵢ₎ = minⱼ≥ᵢ m·p₍ⱼ₎/j, clipped to 1 (`method='fdr_bh'`);
/// - none: unchanged.
///
/// # Errors
///
/// A p-value outside [0, 1] (or NaN) is rejected, naming its index.
///
/// # Examples
///
/// ```
/// use abkit::stats::{adjust_p_values, Correction};
///
/// let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-15);
/// let holm = adjust_p_values(&[0.01, 0.04, 0.03], Correction::Holm)?;
/// assert!(close(&holm, &[0.03, 0.06, 0.06]));
/// let bh = adjust_p_values(&[0.01, 0.04, 0.03], Correction::BenjaminiHochberg)?;
/// assert!(close(&bh, &[0.03, 0.04, 0.04]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn adjust_p_values(p_values: &[f64], correction: Correction) -> Result<Vec<f64>, StatsError> {
    for (i, p) in p_values.iter().enumerate() {
        if !(0.0..=1.0).contains(p) {
            return Err(invalid(
                format!("pValues[{i}]"),
                format!("{p} is outside [0, 1]"),
            ));
        }
    }
    Ok(adjust(p_values, correction))
}

/// [`adjust_p_values`] on p-values already known to lie in [0, 1].
#[allow(clippy::cast_precision_loss)]
pub(crate) fn adjust(p: &[f64], correction: Correction) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p.get(a).unwrap_or(&0.0).total_cmp(p.get(b).unwrap_or(&0.0)));
    let sorted: Vec<f64> = order.iter().filter_map(|&i| p.get(i).copied()).collect();
    let adjusted_sorted: Vec<f64> = match correction {
        Correction::None => return p.to_vec(),
        Correction::Holm => {
            let mut running = 0.0_f64;
            sorted
                .iter()
                .enumerate()
                .map(|(i, &pi)| {
                    running = running.max((m - i) as f64 * pi);
                    running.min(1.0)
                })
                .collect()
        }
        Correction::BenjaminiHochberg => {
            let mut out = vec![0.0; m];
            let mut running = f64::INFINITY;
            for (i, (&pi, slot)) in sorted.iter().zip(out.iter_mut()).enumerate().rev() {
                // as statsmodels: p / ecdffactor with ecdffactor = (i + 1)/m
                running = running.min(pi / ((i + 1) as f64 / m as f64));
                *slot = running.min(1.0);
            }
            out
        }
    };
    let mut result = vec![0.0; m];
    for (&i, &value) in order.iter().zip(&adjusted_sorted) {
        if let Some(slot) = result.get_mut(i) {
            *slot = value;
        }
    }
    result
}

#[cfg(test)]
#[allow(clippy::excessive_precision)] // reference values are quoted with all their digits
mod tests {
    use super::*;

    // statsmodels 0.15: multipletests(p, method=...)[1]
    const P: [f64; 6] = [0.01, 0.02, 0.03, 0.04, 0.05, 0.5];

    #[test]
    fn holm_matches_statsmodels() {
        let got = adjust(&P, Correction::Holm);
        let expected = [0.06, 0.1, 0.12, 0.12, 0.12, 0.5];
        for (g, e) in got.iter().zip(expected) {
            assert!((g - e).abs() < 1e-15, "{got:?}");
        }
    }

    #[test]
    fn bh_matches_statsmodels() {
        let got = adjust(
            &[0.5, 0.01, 0.04, 0.03, 0.02, 0.05],
            Correction::BenjaminiHochberg,
        );
        let expected = [0.5, 0.06, 0.06, 0.06, 0.06, 0.06];
        for (g, e) in got.iter().zip(expected) {
            assert!((g - e).abs() < 1e-15, "{got:?}");
        }
    }

    #[test]
    fn clipped_to_one_and_rejects_bad_values() {
        assert_eq!(adjust(&[0.9, 0.8], Correction::Holm), vec![1.0, 1.0]);
        assert_eq!(
            adjust_p_values(&[0.1, 1.5], Correction::Holm)
                .unwrap_err()
                .field(),
            Some("pValues[1]")
        );
        assert!(adjust(&[], Correction::BenjaminiHochberg).is_empty());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 300,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed_0002),
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        #[test]
        fn prop_adjusted_values_are_bounded_and_ordered(
            p in proptest::collection::vec(0.0..=1.0_f64, 0..30),
        ) {
            for correction in [Correction::Holm, Correction::BenjaminiHochberg] {
                let adjusted = adjust(&p, correction);
                proptest::prop_assert_eq!(adjusted.len(), p.len());
                for (raw, adj) in p.iter().zip(&adjusted) {
                    proptest::prop_assert!(adj >= raw && *adj <= 1.0);
                }
                // the adjustment preserves the order of the raw p-values
                for (i, j) in (0..p.len()).flat_map(|i| (0..p.len()).map(move |j| (i, j))) {
                    if p[i] < p[j] {
                        proptest::prop_assert!(adjusted[i] <= adjusted[j]);
                    }
                }
            }
        }
    }
}
