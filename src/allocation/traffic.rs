//! [`Traffic`]: the share of units that enter an experiment.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::{WeightError, bp_as_fraction};
use super::weights::{FULL_BP, ToBasisPoints, to_basis_points};

/// The share of units that enter an experiment (its coverage), in whole basis points from 0
/// to 10 000. A unit is in the traffic iff its traffic bucket is `< basis_points()`.
///
/// Serialized as the fraction (a JSON number such as `0.2`) and validated when deserialized.
/// The default is [`Traffic::FULL`].
///
/// # Examples
///
/// ```
/// use abkit::allocation::Traffic;
///
/// let t = Traffic::from_fraction(0.2)?;
/// assert_eq!(t.basis_points(), 2_000);
/// assert_eq!(serde_json::to_string(&t)?, "0.2");
/// assert_eq!(serde_json::from_str::<Traffic>("0.33")?.basis_points(), 3_300);
/// assert!(serde_json::from_str::<Traffic>("1.5").is_err());
/// assert_eq!(Traffic::default(), Traffic::FULL);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Traffic(u16);

impl Traffic {
    /// Every unit is in the experiment's traffic (10 000 bp).
    pub const FULL: Traffic = Traffic(FULL_BP);
    /// No unit is in the experiment's traffic (0 bp).
    pub const NONE: Traffic = Traffic(0);

    /// Traffic of `bp` basis points.
    ///
    /// # Errors
    ///
    /// [`WeightError::TrafficBasisPointsOutOfRange`] when `bp > 10 000`.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::Traffic;
    ///
    /// assert_eq!(Traffic::from_basis_points(2_500)?.as_fraction(), 0.25);
    /// assert!(Traffic::from_basis_points(10_001).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_basis_points(bp: u32) -> Result<Traffic, WeightError> {
        match u16::try_from(bp) {
            Ok(bp) if bp <= FULL_BP => Ok(Traffic(bp)),
            _ => Err(WeightError::TrafficBasisPointsOutOfRange {
                value: u64::from(bp),
            }),
        }
    }

    /// Traffic as a fraction from 0 to 1 with at most four decimals (0.2 → 2000 bp), with the
    /// exactness rule of [`Weight::from_fraction`](super::Weight::from_fraction).
    ///
    /// # Errors
    ///
    /// [`WeightError::TrafficOutOfRange`] for NaN, ±∞, a negative value or a value above 1;
    /// [`WeightError::TrafficNotWholeBasisPoints`] when it is not a whole number of basis points.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::Traffic;
    ///
    /// assert_eq!(Traffic::from_fraction(0.33)?.basis_points(), 3_300);
    /// assert!(Traffic::from_fraction(0.00005).is_err());
    /// assert!(Traffic::from_fraction(-0.1).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_fraction(fraction: f64) -> Result<Traffic, WeightError> {
        match to_basis_points(fraction, f64::from(FULL_BP)) {
            ToBasisPoints::Exact(bp) => Ok(Traffic(bp)),
            ToBasisPoints::OutOfRange => Err(WeightError::TrafficOutOfRange { value: fraction }),
            ToBasisPoints::NotWhole => {
                Err(WeightError::TrafficNotWholeBasisPoints { value: fraction })
            }
        }
    }

    /// The traffic in basis points, 0 to 10 000.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::Traffic;
    ///
    /// assert_eq!(Traffic::from_fraction(0.05)?.basis_points(), 500);
    /// assert_eq!(Traffic::FULL.basis_points(), 10_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn basis_points(self) -> u16 {
        self.0
    }

    /// The traffic as a fraction from 0 to 1 (the nearest `f64` to `bp / 10 000`).
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::Traffic;
    ///
    /// assert_eq!(Traffic::from_basis_points(3_300)?.as_fraction(), 0.33);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_fraction(self) -> f64 {
        f64::from(self.0) / f64::from(FULL_BP)
    }

    /// Whether a unit with this traffic bucket is in the traffic: `traffic_bucket < basis_points()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::Traffic;
    ///
    /// let t = Traffic::from_basis_points(2_000)?;
    /// assert!(t.includes(1_999));
    /// assert!(!t.includes(2_000));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn includes(self, traffic_bucket: u16) -> bool {
        traffic_bucket < self.0
    }
}

impl Default for Traffic {
    fn default() -> Traffic {
        Traffic::FULL
    }
}

impl TryFrom<f64> for Traffic {
    type Error = WeightError;

    fn try_from(fraction: f64) -> Result<Traffic, WeightError> {
        Traffic::from_fraction(fraction)
    }
}

impl From<Traffic> for f64 {
    fn from(traffic: Traffic) -> f64 {
        traffic.as_fraction()
    }
}

/// Shown as the exact fraction: `0.2`.
impl fmt::Display for Traffic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bp_as_fraction(u64::from(self.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_conversions_and_serde() {
        assert_eq!(Traffic::from_fraction(0.2).unwrap().basis_points(), 2_000);
        assert_eq!(Traffic::from_fraction(1.0).unwrap(), Traffic::FULL);
        assert_eq!(Traffic::from_fraction(0.0).unwrap(), Traffic::NONE);
        assert_eq!(Traffic::default(), Traffic::FULL);
        assert_eq!(
            Traffic::from_fraction(f64::INFINITY),
            Err(WeightError::TrafficOutOfRange {
                value: f64::INFINITY
            })
        );
        assert_eq!(
            Traffic::from_fraction(0.12345),
            Err(WeightError::TrafficNotWholeBasisPoints { value: 0.12345 })
        );
        assert_eq!(
            Traffic::from_basis_points(10_001).unwrap_err().to_string(),
            "traffic of 10001 basis points is out of range, expected 0 to 10000"
        );
        assert_eq!(
            Traffic::from_fraction(1.5).unwrap_err().to_string(),
            "traffic 1.5 is out of range, expected a fraction from 0 to 1"
        );
        for bp in [0_u32, 1, 2_000, 3_333, 9_999, 10_000] {
            let t = Traffic::from_basis_points(bp).unwrap();
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<Traffic>(&json).unwrap(), t, "{json}");
        }
        assert_eq!(serde_json::to_string(&Traffic::FULL).unwrap(), "1.0");
        assert_eq!(serde_json::from_str::<Traffic>("1").unwrap(), Traffic::FULL);
        assert!(serde_json::from_str::<Traffic>("-0.5").is_err());
        assert!(serde_json::from_str::<Traffic>("\"0.5\"").is_err());
        assert_eq!(
            Traffic::from_basis_points(2_500).unwrap().to_string(),
            "0.25"
        );
        assert!(!Traffic::NONE.includes(0) && Traffic::FULL.includes(9_999));
    }
}
