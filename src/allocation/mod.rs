//! Deterministic allocation: which units enter an experiment, and which variant each gets.
//!
//! # Compatibility promise
//!
//! The same unit id, salt, traffic and weights give the same variant on every machine, in every
//! process and in every version of this crate. The algorithm below is that promise, written out
//! exactly; the crate's tests reproduce vectors computed with an independent implementation
//! (Python's `xxhash` package). Changing any step is a breaking change of the crate.
//!
//! # The algorithm
//!
//! **Definitions.**
//! - `H(bytes, seed)` is XXH3-64 of `bytes` with the 64-bit `seed`
//!   (`twox_hash::XxHash3_64::oneshot_with_seed(seed, bytes)`): [`hash`].
//! - `bucket(x) = (x as u128 * 10 000) >> 64`, an integer in `[0, 10 000)` — multiply-shift,
//!   never modulo: [`bucket`]. [`BUCKETS`] = 10 000.
//! - Strings (salts, unit ids) are hashed as their UTF-8 bytes. Unit ids may be any bytes.
//! - Weights and traffic are whole basis points (bp): 10 000 bp = 100%.
//!
//! **Experiment.**
//! 1. Salt: a string, by default the experiment's id. Changing it re-randomises every unit.
//! 2. Seed: `s = H(salt, 0)` ([`seed`]), computed once when the experiment is compiled
//!    ([`Allocator::new`]), never per call.
//! 3. Traffic bucket: `t = bucket(H(unit, s))`. The unit is in the experiment's traffic iff
//!    `t < traffic_bp` ([`Allocator::traffic_bucket`], [`Traffic::includes`]).
//! 4. Variant bucket: `v = bucket(H(unit, s ^ VARIANT_SEED_XOR))` with
//!    [`VARIANT_SEED_XOR`] = `0x9E37_79B9_7F4A_7C15` ([`Allocator::variant_bucket`]).
//! 5. Variant: with the variants' weights `w₀, w₁, …` (bp, summing to exactly 10 000, in the
//!    experiment's variant order), the unit gets the first variant `i` with
//!    `v < w₀ + … + wᵢ` ([`Allocator::variant_index`]). A zero-weight variant gets no unit.
//! 6. The allocation is that variant when the unit is in the traffic, and none otherwise
//!    ([`Allocator::allocate`]).
//!
//! Hence raising the traffic only adds units, lowering it only removes units, and a unit's
//! variant never depends on the traffic ([`Allocator::with_traffic`] is a ramp).
//!
//! **Layer** (mutually exclusive experiments).
//! 1. A layer has its own salt; a unit's layer bucket is `ℓ = bucket(H(unit, H(layer_salt, 0)))`
//!    ([`LayerHasher::bucket`]).
//! 2. Each experiment of the layer owns a range `[start, end)` of bp ([`BucketRange`]); the
//!    ranges of the layer's running experiments are disjoint. A unit is eligible for an
//!    experiment of the layer iff `start ≤ ℓ < end` ([`BucketRange::contains`]); that
//!    experiment's own traffic and variant buckets then apply as above.
//! 3. A holdout is a range that no experiment owns.
//!
//! # Weights in every form
//!
//! [`Weight`], [`Weights`] and [`Traffic`] hold whole basis points, converted exactly from
//! integer basis points, integer percents, fractions (0.33 → 3300 bp) or percentages
//! (33.33 → 3333 bp). A float is accepted when it is within 1e-6 bp of a whole number of basis
//! points (which absorbs binary rounding of decimal input) and rejected otherwise — never
//! rounded silently. Weights must sum to exactly 10 000 bp; the error for a wrong sum suggests
//! a valid split in the caller's units.
//!
//! # Examples
//!
//! ```
//! use abkit::allocation::{Allocator, BucketRange, LayerHasher, Traffic, Weights};
//!
//! let weights = Weights::from_fractions(&[0.33, 0.33, 0.34])?;
//! let allocator = Allocator::new("checkout_flow", Traffic::from_fraction(0.5)?, &weights);
//!
//! let layer = LayerHasher::new("checkout_layer");
//! let owned = BucketRange::new(0, 6_000)?;
//!
//! let unit = "user-42".as_bytes();
//! let variant = if owned.contains(layer.bucket(unit)) {
//!     allocator.allocate(unit)
//! } else {
//!     None
//! };
//! assert!(variant.is_none_or(|i| i < weights.len()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod allocator;
mod error;
mod hash;
mod range;
mod traffic;
mod weights;

pub use allocator::{Allocator, LayerHasher};
pub use error::{WeightError, WeightForm};
pub use hash::{bucket, hash, seed};
pub use range::BucketRange;
pub use traffic::Traffic;
pub use weights::{Weight, Weights};

/// The number of buckets: buckets are integers in `[0, BUCKETS)`, and 10 000 basis points are
/// 100%.
pub const BUCKETS: u32 = 10_000;

/// XORed into an experiment's seed to seed the variant hash, so the traffic and variant
/// buckets are independent: `variant seed = s ^ VARIANT_SEED_XOR`.
pub const VARIANT_SEED_XOR: u64 = 0x9E37_79B9_7F4A_7C15;

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}

    #[test]
    fn public_types_are_send_sync_clone_debug() {
        assert_send_sync::<Weight>();
        assert_send_sync::<Weights>();
        assert_send_sync::<Traffic>();
        assert_send_sync::<BucketRange>();
        assert_send_sync::<Allocator>();
        assert_send_sync::<LayerHasher>();
        assert_send_sync::<WeightError>();
        assert_send_sync::<WeightForm>();
    }

    #[test]
    fn constants_are_the_documented_ones() {
        assert_eq!(BUCKETS, 10_000);
        assert_eq!(VARIANT_SEED_XOR, 0x9E37_79B9_7F4A_7C15);
    }
}
