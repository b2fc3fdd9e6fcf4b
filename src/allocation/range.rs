//! [`BucketRange`]: the share of a layer that an experiment owns.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::WeightError;
use super::weights::FULL_BP;

/// A half-open range `[start, end)` of layer buckets, `0 ≤ start < end ≤ 10 000`: the share of a
/// layer an experiment owns (or a holdout that none owns).
///
/// Serialized as `{"start": …, "end": …}` and validated when deserialized.
///
/// # Examples
///
/// ```
/// use abkit::allocation::BucketRange;
///
/// let a = BucketRange::new(0, 5_000)?;
/// let b = BucketRange::new(5_000, 10_000)?;
/// assert!(a.contains(4_999) && !a.contains(5_000));
/// assert!(!a.overlaps(&b));
/// assert_eq!(a.width(), 5_000);
/// assert_eq!(serde_json::to_string(&a)?, r#"{"start":0,"end":5000}"#);
/// assert!(serde_json::from_str::<BucketRange>(r#"{"start":10,"end":10}"#).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "RawBucketRange")]
pub struct BucketRange {
    start: u16,
    end: u16,
}

/// The unchecked shape of a [`BucketRange`] in serialized form.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawBucketRange {
    start: u64,
    end: u64,
}

impl TryFrom<RawBucketRange> for BucketRange {
    type Error = WeightError;

    fn try_from(raw: RawBucketRange) -> Result<BucketRange, WeightError> {
        BucketRange::checked(raw.start, raw.end)
    }
}

impl BucketRange {
    /// The whole layer, `[0, 10 000)`.
    pub const FULL: BucketRange = BucketRange {
        start: 0,
        end: FULL_BP,
    };

    /// The range `[start, end)`.
    ///
    /// # Errors
    ///
    /// [`WeightError::RangeOutOfBounds`] when `end > 10 000`; [`WeightError::RangeEmpty`] when
    /// `start >= end`.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::BucketRange;
    ///
    /// assert_eq!(BucketRange::new(2_000, 3_000)?.width(), 1_000);
    /// assert!(BucketRange::new(3_000, 3_000).is_err());
    /// assert!(BucketRange::new(0, 10_001).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(start: u32, end: u32) -> Result<BucketRange, WeightError> {
        BucketRange::checked(u64::from(start), u64::from(end))
    }

    fn checked(start: u64, end: u64) -> Result<BucketRange, WeightError> {
        if end > u64::from(FULL_BP) {
            return Err(WeightError::RangeOutOfBounds { start, end });
        }
        if start >= end {
            return Err(WeightError::RangeEmpty { start, end });
        }
        match (u16::try_from(start), u16::try_from(end)) {
            (Ok(start), Ok(end)) => Ok(BucketRange { start, end }),
            _ => Err(WeightError::RangeOutOfBounds { start, end }),
        }
    }

    /// The first bucket in the range.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::BucketRange;
    ///
    /// assert_eq!(BucketRange::new(2_000, 3_000)?.start(), 2_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn start(&self) -> u16 {
        self.start
    }

    /// The first bucket past the range.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::BucketRange;
    ///
    /// assert_eq!(BucketRange::new(2_000, 3_000)?.end(), 3_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn end(&self) -> u16 {
        self.end
    }

    /// The number of buckets in the range, `end − start` (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::BucketRange;
    ///
    /// assert_eq!(BucketRange::new(9_000, 10_000)?.width(), 1_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn width(&self) -> u16 {
        self.end.saturating_sub(self.start)
    }

    /// Whether `bucket` lies in the range: `start ≤ bucket < end`.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::BucketRange;
    ///
    /// let r = BucketRange::new(100, 200)?;
    /// assert!(r.contains(100) && r.contains(199));
    /// assert!(!r.contains(99) && !r.contains(200));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn contains(&self, bucket: u16) -> bool {
        self.start <= bucket && bucket < self.end
    }

    /// Whether the two ranges share a bucket.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::BucketRange;
    ///
    /// let a = BucketRange::new(0, 3_000)?;
    /// assert!(a.overlaps(&BucketRange::new(2_999, 4_000)?));
    /// assert!(!a.overlaps(&BucketRange::new(3_000, 4_000)?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn overlaps(&self, other: &BucketRange) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// Shown as `[start, end)`.
impl fmt::Display for BucketRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};

    #[test]
    fn bucket_range_validation_and_serde() {
        assert_eq!(
            BucketRange::new(0, 10_001),
            Err(WeightError::RangeOutOfBounds {
                start: 0,
                end: 10_001
            })
        );
        assert_eq!(
            BucketRange::new(5, 5).unwrap_err().to_string(),
            "bucket range [5, 5) is empty, expected start < end"
        );
        assert_eq!(
            BucketRange::new(7, 3),
            Err(WeightError::RangeEmpty { start: 7, end: 3 })
        );
        let r = BucketRange::new(9_999, 10_000).unwrap();
        assert!(r.contains(9_999) && !r.contains(9_998) && !r.contains(10_000));
        assert_eq!(r.width(), 1);
        assert_eq!(r.to_string(), "[9999, 10000)");
        assert_eq!(BucketRange::FULL, BucketRange::new(0, 10_000).unwrap());
        let json = r#"{"start":100,"end":200}"#;
        let parsed: BucketRange = serde_json::from_str(json).unwrap();
        assert_eq!((parsed.start(), parsed.end()), (100, 200));
        assert_eq!(serde_json::to_string(&parsed).unwrap(), json);
        let err = serde_json::from_str::<BucketRange>(r#"{"start":0,"end":70000}"#).unwrap_err();
        assert!(
            err.to_string().contains("[0, 70000) ends past 10000"),
            "{err}"
        );
        assert!(serde_json::from_str::<BucketRange>(r#"{"start":0}"#).is_err());
        assert!(serde_json::from_str::<BucketRange>(r#"{"start":0,"end":5,"x":1}"#).is_err());
    }

    proptest! {
        #![proptest_config(Config { rng_seed: RngSeed::Fixed(0x5EED_0002), ..Config::default() })]

        #[test]
        fn prop_overlaps_iff_a_shared_bucket(
            a in 0_u32..10_000, b in 0_u32..10_000, c in 0_u32..10_000, d in 0_u32..10_000,
        ) {
            let r1 = BucketRange::new(a.min(b), a.max(b) + 1).unwrap();
            let r2 = BucketRange::new(c.min(d), c.max(d) + 1).unwrap();
            let shared = (0_u16..10_000).any(|x| r1.contains(x) && r2.contains(x));
            prop_assert_eq!(r1.overlaps(&r2), shared);
            prop_assert_eq!(r1.overlaps(&r2), r2.overlaps(&r1));
        }
    }
}
