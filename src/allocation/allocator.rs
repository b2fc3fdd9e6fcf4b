//! The compiled per-experiment [`Allocator`] and the per-layer [`LayerHasher`].

use super::hash::{bucket, hash, seed};
use super::traffic::Traffic;
use super::weights::Weights;
use super::{BUCKETS, VARIANT_SEED_XOR};

/// Up to this many variants, the variant index is found by a linear, branch-free count.
const LINEAR_SCAN_MAX: usize = 16;

/// An experiment's allocation, compiled once: the seeds derived from its salt, its traffic and
/// its variants' cumulative weights, and (for up to 256 variants) a table of the variant of each
/// of the 10 000 buckets (10 kB), so a decision is one load rather than a search.
///
/// Each call hashes the unit id (one or two XXH3-64 hashes) and does nothing else: no heap
/// allocation, no clock, no randomness, no I/O. Any unit id is accepted, including empty ids
/// and ids that are not UTF-8.
///
/// # Examples
///
/// ```
/// use abkit::allocation::{Allocator, Traffic, Weights};
///
/// let weights = Weights::from_percents(&[50, 50])?;
/// let allocator = Allocator::new("checkout_flow", Traffic::from_fraction(0.2)?, &weights);
///
/// // Reproduces the reference vectors of docs/ALLOCATION.md.
/// assert_eq!(allocator.traffic_bucket(b"usr_Q"), 9_260);
/// assert_eq!(allocator.allocate(b"usr_Q"), None); // 9260 >= 2000: not in the traffic
///
/// // The same unit always gets the same answer.
/// let unit = "user-42".as_bytes();
/// assert_eq!(allocator.allocate(unit), allocator.allocate(unit));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Allocator {
    /// `s = H(salt, 0)`: the seed of the traffic hash.
    seed: u64,
    /// `s ^ VARIANT_SEED_XOR`: the seed of the variant hash.
    variant_seed: u64,
    /// The share of units in the experiment.
    traffic: Traffic,
    /// `w₀ + … + wᵢ` for each variant `i`; the last entry is 10 000. Used by the search when
    /// there are more than 256 variants (then the table is empty).
    cumulative: Box<[u16]>,
    /// For up to 256 variants, the variant of every bucket (10 000 bytes): the decision is
    /// one load instead of a search.
    table: Box<[u8]>,
}

impl Allocator {
    /// Compiles an experiment's allocation from its salt (by default the experiment's id), its
    /// traffic and its variants' weights, in variant order.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::{seed, Allocator, Traffic, Weights};
    ///
    /// let allocator = Allocator::new("exp_abc123", Traffic::FULL, &Weights::even(10)?);
    /// assert_eq!(allocator.seed(), seed("exp_abc123"));
    /// assert_eq!(allocator.variant_count(), 10);
    /// assert_eq!(allocator.allocate(b"3879399b-fa1b-f9c0-a17a-b1eecc3d5506"), Some(8));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(salt: &str, traffic: Traffic, weights: &Weights) -> Allocator {
        let seed = seed(salt);
        let mut total: u16 = 0;
        let cumulative = weights
            .iter()
            .map(|w| {
                // `Weights` sums to exactly 10 000, so no running total can overflow.
                total = total.saturating_add(w.basis_points());
                total
            })
            .collect::<Box<[u16]>>();
        let mut allocator = Allocator {
            seed,
            variant_seed: seed ^ VARIANT_SEED_XOR,
            traffic,
            cumulative,
            table: Box::default(),
        };
        if allocator.cumulative.len() <= 256 {
            allocator.table = (0..BUCKETS)
                .map(|b| {
                    let i = allocator.search(u16::try_from(b).unwrap_or(u16::MAX));
                    u8::try_from(i).unwrap_or(u8::MAX)
                })
                .collect();
        }
        allocator
    }

    /// The same experiment with another traffic: a ramp. The seeds and weights are unchanged,
    /// so raising the traffic only adds units, lowering it only removes units, and no unit
    /// changes variant.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::{Allocator, Traffic, Weights};
    ///
    /// let at_10 = Allocator::new("exp", Traffic::from_fraction(0.1)?, &Weights::even(2)?);
    /// let at_50 = at_10.with_traffic(Traffic::from_fraction(0.5)?);
    /// for i in 0..1_000 {
    ///     let unit = format!("user-{i}");
    ///     if let Some(v) = at_10.allocate(unit.as_bytes()) {
    ///         assert_eq!(at_50.allocate(unit.as_bytes()), Some(v));
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "with_traffic returns a new allocator and leaves this one unchanged"]
    pub fn with_traffic(&self, traffic: Traffic) -> Allocator {
        Allocator {
            traffic,
            ..self.clone()
        }
    }

    /// The experiment's seed `s = H(salt, 0)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::{seed, Allocator, Traffic, Weights};
    ///
    /// let allocator = Allocator::new("checkout_flow", Traffic::FULL, &Weights::even(2)?);
    /// assert_eq!(allocator.seed(), seed("checkout_flow"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The variant hash's seed, `s ^ VARIANT_SEED_XOR`.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::{seed, Allocator, Traffic, Weights, VARIANT_SEED_XOR};
    ///
    /// let allocator = Allocator::new("checkout_flow", Traffic::FULL, &Weights::even(2)?);
    /// assert_eq!(allocator.variant_seed(), seed("checkout_flow") ^ VARIANT_SEED_XOR);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn variant_seed(&self) -> u64 {
        self.variant_seed
    }

    /// The experiment's traffic.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::{Allocator, Traffic, Weights};
    ///
    /// let allocator = Allocator::new("exp", Traffic::from_fraction(0.2)?, &Weights::even(2)?);
    /// assert_eq!(allocator.traffic().basis_points(), 2_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    /// The number of variants (at least 1); variant indexes are `0..variant_count()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::{Allocator, Traffic, Weights};
    ///
    /// let allocator = Allocator::new("exp", Traffic::FULL, &Weights::from_percents(&[10, 20, 70])?);
    /// assert_eq!(allocator.variant_count(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn variant_count(&self) -> usize {
        self.cumulative.len()
    }

    /// The unit's traffic bucket `t = bucket(H(unit, s))`, in `[0, 10 000)`; the unit is in the
    /// traffic iff `t < traffic`.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::{Allocator, Traffic, Weights};
    ///
    /// let allocator = Allocator::new("checkout_flow", Traffic::FULL, &Weights::even(2)?);
    /// assert_eq!(allocator.traffic_bucket(b"usr_eB6v.eWzS"), 9_812);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn traffic_bucket(&self, unit: &[u8]) -> u16 {
        bucket(hash(unit, self.seed))
    }

    /// The unit's variant bucket `v = bucket(H(unit, s ^ VARIANT_SEED_XOR))`, in `[0, 10 000)`.
    /// It does not depend on the traffic.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::{Allocator, Traffic, Weights};
    ///
    /// let allocator = Allocator::new("checkout_flow", Traffic::FULL, &Weights::even(2)?);
    /// assert_eq!(allocator.variant_bucket(b"usr_eB6v.eWzS"), 1_497);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn variant_bucket(&self, unit: &[u8]) -> u16 {
        bucket(hash(unit, self.variant_seed))
    }

    /// The variant the unit gets when it is in the traffic: the first index `i` with
    /// `v < w₀ + … + wᵢ`. Ignores the traffic.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::{Allocator, Traffic, Weights};
    ///
    /// let allocator = Allocator::new("checkout_flow", Traffic::NONE, &Weights::even(2)?);
    /// // variant bucket 1497 < 5000: the first variant, even with no traffic.
    /// assert_eq!(allocator.variant_index(b"usr_eB6v.eWzS"), 0);
    /// assert_eq!(allocator.allocate(b"usr_eB6v.eWzS"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn variant_index(&self, unit: &[u8]) -> usize {
        self.index_of_bucket(self.variant_bucket(unit))
    }

    /// The variant index of a variant bucket: the precomputed table, or the search.
    #[inline]
    fn index_of_bucket(&self, variant_bucket: u16) -> usize {
        match self.table.get(usize::from(variant_bucket)) {
            Some(&i) => usize::from(i),
            None => self.search(variant_bucket),
        }
    }

    /// The first variant whose cumulative weight exceeds `variant_bucket`.
    fn search(&self, variant_bucket: u16) -> usize {
        // The number of cumulative sums <= v is the first index with v < sum. The last sum is
        // 10 000 > v, so the index is always a valid variant; `min` only guards the invariant.
        // Few variants: a branch-free count (the variant bucket is random, so the branches of
        // a binary search would be mispredicted); many variants: a binary search.
        let index = if self.cumulative.len() <= LINEAR_SCAN_MAX {
            self.cumulative
                .iter()
                .map(|&sum| usize::from(sum <= variant_bucket))
                .sum()
        } else {
            self.cumulative
                .partition_point(|&sum| sum <= variant_bucket)
        };
        index.min(self.cumulative.len().saturating_sub(1))
    }

    /// The unit's variant index, or `None` when the unit is outside the experiment's traffic.
    /// A unit outside the traffic costs one hash; a unit inside costs two.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::{Allocator, Traffic, Weights};
    ///
    /// let weights = Weights::new(
    ///     [2904_u32, 858, 5262, 976]
    ///         .into_iter()
    ///         .map(abkit::allocation::Weight::from_basis_points)
    ///         .collect::<Result<_, _>>()?,
    /// )?;
    /// let allocator = Allocator::new("checkout_flow", Traffic::from_basis_points(2_000)?, &weights);
    /// assert_eq!(allocator.allocate(b"usr_Q"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn allocate(&self, unit: &[u8]) -> Option<usize> {
        // At full traffic every bucket (< 10 000) is included: the traffic hash cannot change
        // the outcome, so it is skipped. Same result, one hash instead of two.
        if self.traffic == Traffic::FULL || self.traffic.includes(self.traffic_bucket(unit)) {
            Some(self.variant_index(unit))
        } else {
            None
        }
    }
}

/// A layer's bucket function, compiled once: `ℓ = bucket(H(unit, H(layer_salt, 0)))`.
///
/// Experiments in a layer own disjoint [`BucketRange`](super::BucketRange)s; a unit is eligible
/// for the experiment whose range contains its layer bucket, so for at most one of them.
///
/// # Examples
///
/// ```
/// use abkit::allocation::{BucketRange, LayerHasher};
///
/// let layer = LayerHasher::new("layer_nXL:_cPZKc");
/// assert_eq!(layer.bucket(b"usr_eB6v.eWzS"), 2_264);
///
/// let first = BucketRange::new(0, 5_000)?;
/// let second = BucketRange::new(5_000, 9_000)?; // [9000, 10000) is a holdout
/// let l = layer.bucket(b"usr_eB6v.eWzS");
/// assert!(first.contains(l) && !second.contains(l));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LayerHasher {
    seed: u64,
}

impl LayerHasher {
    /// Compiles a layer from its salt: precomputes `H(layer_salt, 0)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::LayerHasher;
    ///
    /// let layer = LayerHasher::new("layer_nXL:_cPZKc");
    /// assert_eq!(layer.bucket(b"usr_eB6v.eWzS"), 2_264);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(layer_salt: &str) -> LayerHasher {
        LayerHasher {
            seed: seed(layer_salt),
        }
    }

    /// The layer's seed `H(layer_salt, 0)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::{seed, LayerHasher};
    ///
    /// assert_eq!(LayerHasher::new("checkout_layer").seed(), seed("checkout_layer"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The unit's layer bucket `ℓ = bucket(H(unit, H(layer_salt, 0)))`, in `[0, 10 000)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::allocation::LayerHasher;
    ///
    /// let layer = LayerHasher::new("layer_O:4CE");
    /// assert!(layer.bucket(b"any unit") < 10_000);
    /// ```
    #[inline]
    pub fn bucket(&self, unit: &[u8]) -> u16 {
        bucket(hash(unit, self.seed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocation::{BUCKETS, Weight};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};

    fn weights(bp: &[u32]) -> Weights {
        Weights::new(
            bp.iter()
                .map(|&b| Weight::from_basis_points(b).unwrap())
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn index_of_bucket_boundaries() {
        let a = Allocator::new("x", Traffic::FULL, &weights(&[2_000, 0, 3_000, 5_000]));
        assert_eq!(a.index_of_bucket(0), 0);
        assert_eq!(a.index_of_bucket(1_999), 0);
        // The zero-weight variant 1 owns no bucket.
        assert_eq!(a.index_of_bucket(2_000), 2);
        assert_eq!(a.index_of_bucket(4_999), 2);
        assert_eq!(a.index_of_bucket(5_000), 3);
        assert_eq!(a.index_of_bucket(9_999), 3);
        let trailing_zero = Allocator::new("x", Traffic::FULL, &weights(&[10_000, 0]));
        assert_eq!(trailing_zero.index_of_bucket(9_999), 0);
        let single = Allocator::new("x", Traffic::FULL, &weights(&[10_000]));
        assert_eq!(single.index_of_bucket(9_999), 0);
    }

    #[test]
    fn index_of_bucket_agrees_with_a_naive_scan_for_every_bucket() {
        // Covers both the linear count (<= 16 variants) and the binary search (more).
        for n in [1, 2, 3, 7, 16, 17, 33, 100, 10_000] {
            let w = Weights::even(n).unwrap();
            let a = Allocator::new("x", Traffic::FULL, &w);
            let bp: Vec<u32> = w.iter().map(|w| u32::from(w.basis_points())).collect();
            for v in 0..10_000_u16 {
                let mut upper = 0_u32;
                let mut expected = None;
                for (i, b) in bp.iter().enumerate() {
                    upper += b;
                    if u32::from(v) < upper {
                        expected = Some(i);
                        break;
                    }
                }
                assert_eq!(Some(a.index_of_bucket(v)), expected, "n {n}, bucket {v}");
            }
        }
    }

    #[test]
    fn seeds_follow_the_salt() {
        let a = Allocator::new("checkout_flow", Traffic::FULL, &weights(&[5_000, 5_000]));
        assert_eq!(a.seed(), 8_813_934_206_285_061_609);
        assert_eq!(
            a.variant_seed(),
            8_813_934_206_285_061_609 ^ 0x9E37_79B9_7F4A_7C15
        );
        let ramped = a.with_traffic(Traffic::NONE);
        assert_eq!(ramped.seed(), a.seed());
        assert_eq!(ramped.traffic(), Traffic::NONE);
        assert_eq!(a.traffic(), Traffic::FULL);
        assert_eq!(LayerHasher::new("checkout_flow").seed(), a.seed());
    }

    #[test]
    fn no_traffic_and_full_traffic() {
        let w = weights(&[5_000, 5_000]);
        let none = Allocator::new("e", Traffic::NONE, &w);
        let full = Allocator::new("e", Traffic::FULL, &w);
        for i in 0..2_000 {
            let unit = format!("u{i}");
            assert_eq!(none.allocate(unit.as_bytes()), None);
            assert_eq!(
                full.allocate(unit.as_bytes()),
                Some(full.variant_index(unit.as_bytes()))
            );
        }
    }

    proptest! {
        #![proptest_config(Config { rng_seed: RngSeed::Fixed(0xA110_CA7E), ..Config::default() })]

        #[test]
        fn prop_allocate_is_the_algorithm(
            salt in ".{0,24}",
            unit in proptest::collection::vec(any::<u8>(), 0..64),
            traffic in 0_u32..=10_000,
        ) {
            let w = weights(&[1_000, 2_500, 6_500]);
            let a = Allocator::new(&salt, Traffic::from_basis_points(traffic).unwrap(), &w);
            // The algorithm spelled out independently of the allocator's internals.
            let s = hash(salt.as_bytes(), 0);
            let t = (u128::from(hash(&unit, s)) * u128::from(BUCKETS)) >> 64;
            let v = (u128::from(hash(&unit, s ^ 0x9E37_79B9_7F4A_7C15)) * u128::from(BUCKETS)) >> 64;
            let expected_variant = if v < 1_000 { 0 } else if v < 3_500 { 1 } else { 2 };
            prop_assert_eq!(u128::from(a.traffic_bucket(&unit)), t);
            prop_assert_eq!(u128::from(a.variant_bucket(&unit)), v);
            prop_assert_eq!(a.variant_index(&unit), expected_variant);
            let expected = if t < u128::from(traffic) { Some(expected_variant) } else { None };
            prop_assert_eq!(a.allocate(&unit), expected);
        }
    }
}
