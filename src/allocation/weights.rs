//! Variant weights in whole basis points: [`Weight`] and [`Weights`], and the exact float conversion.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::BUCKETS;
use super::error::{WeightError, WeightForm, bp_as_percentage};

/// 10 000 basis points as a `u16`.
pub(super) const FULL_BP: u16 = 10_000;

/// How far (in basis points) a float may be from a whole number of basis points and still be
/// taken as that number: absorbs the binary rounding of decimal inputs such as 0.1 or 33.33.
const TOLERANCE_BP: f64 = 1e-6;

/// The result of converting a float to whole basis points.
pub(super) enum ToBasisPoints {
    /// The whole number of basis points, in `0..=10_000`.
    Exact(u16),
    /// NaN, infinite, negative or above 10 000 bp.
    OutOfRange,
    /// Within range but not within [`TOLERANCE_BP`] of a whole number.
    NotWhole,
}

/// Converts `value * scale` to whole basis points with the exactness rule
/// `|y − round(y)| ≤ 1e-6` where `y = value · scale` (basis points).
pub(super) fn to_basis_points(value: f64, scale: f64) -> ToBasisPoints {
    if !value.is_finite() {
        return ToBasisPoints::OutOfRange;
    }
    let y = value * scale;
    if !(-TOLERANCE_BP..=f64::from(FULL_BP) + TOLERANCE_BP).contains(&y) {
        return ToBasisPoints::OutOfRange;
    }
    let rounded = y.round();
    if (y - rounded).abs() > TOLERANCE_BP {
        return ToBasisPoints::NotWhole;
    }
    // `rounded` is a whole number in [-0.0, 10_000.0]: the cast is exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let bp = rounded as u16;
    ToBasisPoints::Exact(bp.min(FULL_BP))
}

/// A variant's weight: a whole number of basis points from 0 to 10 000 (10 000 bp = 100%).
///
/// Every input form converts exactly: integer basis points, integer percents, fractions with
/// at most four decimals (0.33 → 3300 bp) and percentages with at most two (33.33 → 3333 bp).
/// A fraction or percentage that is not a whole number of basis points (0.12345) is rejected
/// rather than rounded. Serialized as the integer number of basis points.
///
/// # Examples
///
/// ```
/// use abkit::allocation::Weight;
///
/// assert_eq!(Weight::from_fraction(0.33)?.basis_points(), 3_300);
/// assert_eq!(Weight::from_percentage(33.34)?.basis_points(), 3_334);
/// assert_eq!(Weight::from_percent(25)?, Weight::from_basis_points(2_500)?);
/// assert!(Weight::from_fraction(0.12345).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(try_from = "u64", into = "u16")]
pub struct Weight(u16);

impl Weight {
    /// No weight: the variant receives no units.
    pub const ZERO: Weight = Weight(0);
    /// The whole weight: 10 000 basis points, 100%.
    pub const FULL: Weight = Weight(FULL_BP);

    /// A weight of `bp` basis points.
    ///
    /// # Errors
    ///
    /// [`WeightError::BasisPointsOutOfRange`] when `bp > 10 000`.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::Weight;
    ///
    /// assert_eq!(Weight::from_basis_points(3_333)?.as_percent(), 33.33);
    /// assert!(Weight::from_basis_points(10_001).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_basis_points(bp: u32) -> Result<Weight, WeightError> {
        Weight::from_basis_points_u64(u64::from(bp))
    }

    fn from_basis_points_u64(bp: u64) -> Result<Weight, WeightError> {
        match u16::try_from(bp) {
            Ok(bp) if bp <= FULL_BP => Ok(Weight(bp)),
            _ => Err(WeightError::BasisPointsOutOfRange { value: bp }),
        }
    }

    /// A weight of `percent` whole percent (an integer split percentage), 0 to 100.
    ///
    /// # Errors
    ///
    /// [`WeightError::PercentOutOfRange`] when `percent` is negative or above 100.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::Weight;
    ///
    /// assert_eq!(Weight::from_percent(34)?.basis_points(), 3_400);
    /// assert!(Weight::from_percent(-1).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_percent(percent: i64) -> Result<Weight, WeightError> {
        match u16::try_from(percent) {
            Ok(p) if p <= 100 => Ok(Weight(p * 100)),
            _ => Err(WeightError::PercentOutOfRange { value: percent }),
        }
    }

    /// A weight given as a fraction from 0 to 1 with at most four decimals (0.33 → 3300 bp).
    ///
    /// The fraction must be a whole number of basis points: it is accepted when
    /// `|x · 10 000 − round(x · 10 000)| ≤ 1e-6`, which absorbs binary rounding (0.1, 0.7, 0.33
    /// are fine) but rejects 0.12345 or 1/3 instead of rounding them.
    ///
    /// # Errors
    ///
    /// [`WeightError::FractionOutOfRange`] for NaN, ±∞, a negative value or a value above 1;
    /// [`WeightError::NotWholeBasisPoints`] when it is not a whole number of basis points.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::Weight;
    ///
    /// assert_eq!(Weight::from_fraction(0.7)?.basis_points(), 7_000);
    /// assert!(Weight::from_fraction(1.0 / 3.0).is_err());
    /// assert!(Weight::from_fraction(f64::NAN).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_fraction(fraction: f64) -> Result<Weight, WeightError> {
        match to_basis_points(fraction, f64::from(FULL_BP)) {
            ToBasisPoints::Exact(bp) => Ok(Weight(bp)),
            ToBasisPoints::OutOfRange => Err(WeightError::FractionOutOfRange { value: fraction }),
            ToBasisPoints::NotWhole => Err(WeightError::NotWholeBasisPoints {
                value: fraction,
                form: WeightForm::Fraction,
            }),
        }
    }

    /// A weight given as a percentage from 0 to 100 with at most two decimals (33.33 → 3333 bp).
    ///
    /// Same exactness rule as [`Weight::from_fraction`], in basis points:
    /// `|x · 100 − round(x · 100)| ≤ 1e-6`.
    ///
    /// # Errors
    ///
    /// [`WeightError::PercentageOutOfRange`] for NaN, ±∞, a negative value or a value above
    /// 100; [`WeightError::NotWholeBasisPoints`] when it is not a whole number of basis points.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::Weight;
    ///
    /// assert_eq!(Weight::from_percentage(33.33)?.basis_points(), 3_333);
    /// assert!(Weight::from_percentage(33.333).is_err());
    /// assert!(Weight::from_percentage(100.5).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_percentage(percentage: f64) -> Result<Weight, WeightError> {
        match to_basis_points(percentage, 100.0) {
            ToBasisPoints::Exact(bp) => Ok(Weight(bp)),
            ToBasisPoints::OutOfRange => {
                Err(WeightError::PercentageOutOfRange { value: percentage })
            }
            ToBasisPoints::NotWhole => Err(WeightError::NotWholeBasisPoints {
                value: percentage,
                form: WeightForm::Percentage,
            }),
        }
    }

    /// The weight in basis points, 0 to 10 000.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::Weight;
    ///
    /// assert_eq!(Weight::from_fraction(0.1)?.basis_points(), 1_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn basis_points(self) -> u16 {
        self.0
    }

    /// The weight as a fraction from 0 to 1 (the nearest `f64` to `bp / 10 000`).
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::Weight;
    ///
    /// assert_eq!(Weight::from_basis_points(3_300)?.as_fraction(), 0.33);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_fraction(self) -> f64 {
        f64::from(self.0) / f64::from(FULL_BP)
    }

    /// The weight as a percentage from 0 to 100 (the nearest `f64` to `bp / 100`).
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::Weight;
    ///
    /// assert_eq!(Weight::from_basis_points(3_334)?.as_percent(), 33.34);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_percent(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

impl TryFrom<u64> for Weight {
    type Error = WeightError;

    fn try_from(bp: u64) -> Result<Weight, WeightError> {
        Weight::from_basis_points_u64(bp)
    }
}

impl From<Weight> for u16 {
    fn from(weight: Weight) -> u16 {
        weight.0
    }
}

/// Shown as an exact percentage: `33.33%`.
impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", bp_as_percentage(u64::from(self.0)))
    }
}

/// The variants' weights, in the experiment's variant order: at least one [`Weight`], summing to
/// exactly 10 000 basis points.
///
/// Variant indexes are `usize` positions in this sequence. Serialized as a JSON array of
/// integer basis points and validated when deserialized.
///
/// # Examples
///
/// ```
/// use abkit::allocation::Weights;
///
/// let w = Weights::from_fractions(&[0.33, 0.33, 0.34])?;
/// let bp: Vec<u16> = w.iter().map(|w| w.basis_points()).collect();
/// assert_eq!(bp, [3_300, 3_300, 3_400]);
///
/// let err = Weights::from_fractions(&[0.3333, 0.3333, 0.3333]).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "variant weights sum to 0.9999, expected exactly 1; for example 0.3334, 0.3333, 0.3333"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "Vec<Weight>", into = "Vec<Weight>")]
pub struct Weights(Vec<Weight>);

impl Weights {
    /// Validates weights in basis points: non-empty, summing to exactly 10 000.
    ///
    /// # Errors
    ///
    /// [`WeightError::Empty`] for no weights; [`WeightError::WrongSum`] when they do not sum to
    /// 10 000 basis points (the message suggests an even split for that many variants).
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::{Weight, Weights};
    ///
    /// let w = Weights::new(vec![Weight::from_basis_points(2_000)?, Weight::from_basis_points(8_000)?])?;
    /// assert_eq!(w.len(), 2);
    ///
    /// let err = Weights::new(vec![Weight::from_basis_points(5_000)?; 3]).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "variant weights sum to 15000 basis points (150%), expected exactly 10000 (100%); \
    ///      for example 3334, 3333, 3333"
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(weights: Vec<Weight>) -> Result<Weights, WeightError> {
        Weights::checked(weights, WeightForm::BasisPoints)
    }

    fn checked(weights: Vec<Weight>, form: WeightForm) -> Result<Weights, WeightError> {
        if weights.is_empty() {
            return Err(WeightError::Empty);
        }
        let sum = weights
            .iter()
            .fold(0_u64, |acc, w| acc.saturating_add(u64::from(w.0)));
        if sum != u64::from(BUCKETS) {
            return Err(WeightError::WrongSum {
                sum_basis_points: sum,
                count: weights.len(),
                form,
            });
        }
        Ok(Weights(weights))
    }

    /// Weights from integer split percentages summing to exactly 100.
    ///
    /// # Errors
    ///
    /// [`WeightError::PercentOutOfRange`] for a percent outside 0..=100, [`WeightError::Empty`],
    /// or [`WeightError::WrongSum`] (the message speaks in percents).
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::Weights;
    ///
    /// assert_eq!(Weights::from_percents(&[34, 33, 33])?.len(), 3);
    /// let err = Weights::from_percents(&[33, 33, 33]).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "variant weights sum to 99%, expected exactly 100%; for example 34, 33, 33"
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_percents(percents: &[i64]) -> Result<Weights, WeightError> {
        let weights = percents
            .iter()
            .map(|&p| Weight::from_percent(p))
            .collect::<Result<Vec<_>, _>>()?;
        Weights::checked(weights, WeightForm::Percent)
    }

    /// Weights from fractions summing to exactly 1 (0.33, 0.33, 0.34), each a whole number of
    /// basis points (see [`Weight::from_fraction`]).
    ///
    /// # Errors
    ///
    /// The errors of [`Weight::from_fraction`], [`WeightError::Empty`], or
    /// [`WeightError::WrongSum`] (the message speaks in fractions).
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::Weights;
    ///
    /// let w = Weights::from_fractions(&[0.1, 0.2, 0.7])?;
    /// assert_eq!(w.as_slice()[2].basis_points(), 7_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_fractions(fractions: &[f64]) -> Result<Weights, WeightError> {
        let weights = fractions
            .iter()
            .map(|&x| Weight::from_fraction(x))
            .collect::<Result<Vec<_>, _>>()?;
        Weights::checked(weights, WeightForm::Fraction)
    }

    /// Weights from percentages summing to exactly 100 (33.33, 33.33, 33.34), each a whole
    /// number of basis points (see [`Weight::from_percentage`]).
    ///
    /// # Errors
    ///
    /// The errors of [`Weight::from_percentage`], [`WeightError::Empty`], or
    /// [`WeightError::WrongSum`] (the message speaks in percentages).
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::Weights;
    ///
    /// let w = Weights::from_percentages(&[33.33, 33.33, 33.34])?;
    /// assert_eq!(w.as_slice()[2].basis_points(), 3_334);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_percentages(percentages: &[f64]) -> Result<Weights, WeightError> {
        let weights = percentages
            .iter()
            .map(|&x| Weight::from_percentage(x))
            .collect::<Result<Vec<_>, _>>()?;
        Weights::checked(weights, WeightForm::Percentage)
    }

    /// An even split over `n` variants: each gets `10 000 / n` basis points and the remainder
    /// `10 000 % n` is spread one basis point each over the **first** variants
    /// (3 variants: 3334, 3333, 3333; 7 variants: 1429, 1429, 1429, 1429, 1428, 1428, 1428).
    ///
    /// # Errors
    ///
    /// [`WeightError::Empty`] for `n = 0`; [`WeightError::TooManyVariants`] for `n > 10 000`
    /// (some variants would get no units).
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::Weights;
    ///
    /// let bp: Vec<u16> = Weights::even(3)?.iter().map(|w| w.basis_points()).collect();
    /// assert_eq!(bp, [3_334, 3_333, 3_333]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn even(n: usize) -> Result<Weights, WeightError> {
        if n == 0 {
            return Err(WeightError::Empty);
        }
        let count = match u16::try_from(n) {
            Ok(count) if count <= FULL_BP => count,
            _ => return Err(WeightError::TooManyVariants { count: n }),
        };
        let base = FULL_BP / count;
        let remainder = FULL_BP % count;
        let weights = (0..count)
            .map(|i| Weight(if i < remainder { base + 1 } else { base }))
            .collect();
        Ok(Weights(weights))
    }

    /// The weights, in variant order.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::Weights;
    ///
    /// let w = Weights::from_percents(&[20, 80])?;
    /// assert_eq!(w.as_slice()[1].basis_points(), 8_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_slice(&self) -> &[Weight] {
        &self.0
    }

    /// The number of variants (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::Weights;
    ///
    /// assert_eq!(Weights::even(4)?.len(), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: weights are never empty. Present for API symmetry with `len`.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::Weights;
    ///
    /// assert!(!Weights::even(1)?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The weight of variant `index`, or `None` past the last variant.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::Weights;
    ///
    /// let w = Weights::from_percents(&[20, 80])?;
    /// assert_eq!(w.get(0).map(|w| w.basis_points()), Some(2_000));
    /// assert_eq!(w.get(2), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(&self, index: usize) -> Option<Weight> {
        self.0.get(index).copied()
    }

    /// Iterates over the weights in variant order.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::Weights;
    ///
    /// let total: u32 = Weights::even(3)?.iter().map(|w| u32::from(w.basis_points())).sum();
    /// assert_eq!(total, 10_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&self) -> std::slice::Iter<'_, Weight> {
        self.0.iter()
    }
}

impl TryFrom<Vec<Weight>> for Weights {
    type Error = WeightError;

    fn try_from(weights: Vec<Weight>) -> Result<Weights, WeightError> {
        Weights::new(weights)
    }
}

impl From<Weights> for Vec<Weight> {
    fn from(weights: Weights) -> Vec<Weight> {
        weights.0
    }
}

impl AsRef<[Weight]> for Weights {
    fn as_ref(&self) -> &[Weight] {
        &self.0
    }
}

impl<'a> IntoIterator for &'a Weights {
    type Item = &'a Weight;
    type IntoIter = std::slice::Iter<'a, Weight>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for Weights {
    type Item = Weight;
    type IntoIter = std::vec::IntoIter<Weight>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocation::error::bp_as_fraction;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};

    fn bps(w: &Weights) -> Vec<u16> {
        w.iter().map(|w| w.basis_points()).collect()
    }

    #[test]
    fn weight_bounds() {
        assert_eq!(Weight::from_basis_points(0).unwrap(), Weight::ZERO);
        assert_eq!(Weight::from_basis_points(10_000).unwrap(), Weight::FULL);
        assert_eq!(
            Weight::from_basis_points(10_001),
            Err(WeightError::BasisPointsOutOfRange { value: 10_001 })
        );
        assert_eq!(
            Weight::from_basis_points(u32::MAX),
            Err(WeightError::BasisPointsOutOfRange {
                value: u64::from(u32::MAX)
            })
        );
        assert_eq!(Weight::from_percent(100).unwrap(), Weight::FULL);
        assert_eq!(
            Weight::from_percent(101),
            Err(WeightError::PercentOutOfRange { value: 101 })
        );
        assert_eq!(
            Weight::from_percent(i64::MIN),
            Err(WeightError::PercentOutOfRange { value: i64::MIN })
        );
    }

    #[test]
    fn weight_from_fraction_exactness() {
        for (x, bp) in [
            (0.0, 0),
            (0.1, 1_000),
            (0.2, 2_000),
            (0.7, 7_000),
            (0.33, 3_300),
            (0.34, 3_400),
            (0.3333, 3_333),
            (0.0001, 1),
            (1.0, 10_000),
            (-0.0, 0),
        ] {
            assert_eq!(Weight::from_fraction(x).unwrap().basis_points(), bp, "{x}");
        }
        // Sums that carry binary rounding noise still land on the whole basis point.
        assert_eq!(
            Weight::from_fraction(0.1 + 0.2).unwrap().basis_points(),
            3_000
        );
        assert_eq!(
            Weight::from_fraction(1.0 - 0.7 - 0.3)
                .unwrap()
                .basis_points(),
            0
        );
        for x in [0.12345, 0.33333, 1.0 / 3.0, 0.00005] {
            assert_eq!(
                Weight::from_fraction(x),
                Err(WeightError::NotWholeBasisPoints {
                    value: x,
                    form: WeightForm::Fraction
                })
            );
        }
        for x in [
            -0.1,
            1.0001,
            2.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
        ] {
            assert_eq!(
                Weight::from_fraction(x),
                Err(WeightError::FractionOutOfRange { value: x })
            );
        }
        let nan = Weight::from_fraction(f64::NAN).unwrap_err();
        assert!(matches!(nan, WeightError::FractionOutOfRange { value } if value.is_nan()));
        assert_eq!(
            nan.to_string(),
            "weight NaN is out of range, expected a fraction from 0 to 1"
        );
    }

    #[test]
    fn weight_from_percentage_exactness() {
        for (x, bp) in [
            (33.33, 3_333),
            (33.34, 3_334),
            (0.01, 1),
            (100.0, 10_000),
            (12.5, 1_250),
        ] {
            assert_eq!(
                Weight::from_percentage(x).unwrap().basis_points(),
                bp,
                "{x}"
            );
        }
        assert_eq!(
            Weight::from_percentage(33.333),
            Err(WeightError::NotWholeBasisPoints {
                value: 33.333,
                form: WeightForm::Percentage
            })
        );
        assert_eq!(
            Weight::from_percentage(-5.0).unwrap_err().to_string(),
            "weight -5% is out of range, expected a percentage from 0 to 100"
        );
        assert_eq!(
            Weight::from_percentage(f64::INFINITY)
                .unwrap_err()
                .to_string(),
            "weight inf% is out of range, expected a percentage from 0 to 100"
        );
    }

    #[test]
    fn weight_accessors_and_display() {
        let w = Weight::from_basis_points(3_334).unwrap();
        assert_eq!(w.as_fraction(), 0.3334);
        assert_eq!(w.as_percent(), 33.34);
        assert_eq!(w.to_string(), "33.34%");
        assert_eq!(u16::from(w), 3_334);
    }

    #[test]
    fn weights_sum_and_forms() {
        assert_eq!(
            bps(&Weights::from_fractions(&[0.33, 0.33, 0.34]).unwrap()),
            [3_300, 3_300, 3_400]
        );
        assert_eq!(
            bps(&Weights::from_fractions(&[0.1, 0.2, 0.7]).unwrap()),
            [1_000, 2_000, 7_000]
        );
        assert_eq!(
            bps(&Weights::from_percentages(&[33.33, 33.33, 33.34]).unwrap()),
            [3_333, 3_333, 3_334]
        );
        assert_eq!(
            bps(&Weights::from_percents(&[50, 50]).unwrap()),
            [5_000, 5_000]
        );
        assert_eq!(Weights::new(vec![]), Err(WeightError::Empty));
        assert_eq!(Weights::from_fractions(&[]), Err(WeightError::Empty));
        assert_eq!(
            Weights::from_fractions(&[0.3333, 0.3333, 0.3333]),
            Err(WeightError::WrongSum {
                sum_basis_points: 9_999,
                count: 3,
                form: WeightForm::Fraction
            })
        );
        assert_eq!(
            Weights::from_percentages(&[33.33, 33.33, 33.33])
                .unwrap_err()
                .to_string(),
            "variant weights sum to 99.99%, expected exactly 100%; for example 33.34, 33.33, 33.33"
        );
        // The first bad element is reported, naming its value.
        assert_eq!(
            Weights::from_fractions(&[0.5, 0.12345, 0.37655]),
            Err(WeightError::NotWholeBasisPoints {
                value: 0.12345,
                form: WeightForm::Fraction
            })
        );
    }

    #[test]
    fn weights_even() {
        assert_eq!(bps(&Weights::even(1).unwrap()), [10_000]);
        assert_eq!(bps(&Weights::even(3).unwrap()), [3_334, 3_333, 3_333]);
        assert_eq!(
            bps(&Weights::even(7).unwrap()),
            [1_429, 1_429, 1_429, 1_429, 1_428, 1_428, 1_428]
        );
        assert_eq!(Weights::even(10_000).unwrap().len(), 10_000);
        assert_eq!(Weights::even(0), Err(WeightError::Empty));
        assert_eq!(
            Weights::even(10_001),
            Err(WeightError::TooManyVariants { count: 10_001 })
        );
        assert_eq!(
            Weights::even(usize::MAX),
            Err(WeightError::TooManyVariants { count: usize::MAX })
        );
    }

    #[test]
    fn weights_accessors() {
        let w = Weights::from_percents(&[20, 80]).unwrap();
        assert_eq!(w.len(), 2);
        assert!(!w.is_empty());
        assert_eq!(w.get(1).map(Weight::basis_points), Some(8_000));
        assert_eq!(w.get(2), None);
        assert_eq!(w.as_slice().len(), 2);
        assert_eq!((&w).into_iter().count(), 2);
        let v: Vec<Weight> = w.into();
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn weights_serde() {
        let w = Weights::from_percents(&[25, 75]).unwrap();
        assert_eq!(serde_json::to_string(&w).unwrap(), "[2500,7500]");
        let back: Weights = serde_json::from_str("[2500,7500]").unwrap();
        assert_eq!(back, w);
        let err = serde_json::from_str::<Weights>("[2500,7000]").unwrap_err();
        assert!(
            err.to_string().contains("sum to 9500 basis points"),
            "{err}"
        );
        let err = serde_json::from_str::<Weights>("[20000]").unwrap_err();
        assert!(
            err.to_string().contains("weight of 20000 basis points"),
            "{err}"
        );
        assert!(serde_json::from_str::<Weights>("[]").is_err());
        assert!(serde_json::from_str::<Weights>("[-1, 10001]").is_err());
    }

    proptest! {
        #![proptest_config(Config { rng_seed: RngSeed::Fixed(0x5EED_0001), ..Config::default() })]

        #[test]
        fn prop_weight_bp_round_trips_through_every_form(bp in 0_u32..=10_000) {
            let w = Weight::from_basis_points(bp).unwrap();
            // The decimal text a user would write, parsed as f64.
            let fraction: f64 = bp_as_fraction(u64::from(bp)).parse().unwrap();
            let percentage: f64 = bp_as_percentage(u64::from(bp)).parse().unwrap();
            prop_assert_eq!(Weight::from_fraction(fraction).unwrap(), w);
            prop_assert_eq!(Weight::from_percentage(percentage).unwrap(), w);
            prop_assert_eq!(Weight::from_fraction(w.as_fraction()).unwrap(), w);
            prop_assert_eq!(Weight::from_percentage(w.as_percent()).unwrap(), w);
            let json = serde_json::to_string(&w).unwrap();
            prop_assert_eq!(serde_json::from_str::<Weight>(&json).unwrap(), w);
        }
    }
}
