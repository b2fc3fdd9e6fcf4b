//! The hash and the bucket function: `H(bytes, seed)` and `bucket(x)` of the algorithm.

use twox_hash::XxHash3_64;

use super::BUCKETS;

/// XXH3-64 of `bytes` with a 64-bit `seed`: the `H(bytes, seed)` of the allocation algorithm.
///
/// This is `twox_hash::XxHash3_64::oneshot_with_seed(seed, bytes)`. Strings are hashed as their
/// UTF-8 bytes (`s.as_bytes()`). Any input length is accepted, including empty input.
///
/// # Examples
///
/// ```
/// use abkit::allocation::hash;
///
/// // The same bytes and seed give the same hash on every machine and in every version.
/// assert_eq!(hash(b"user-42", 7), hash(b"user-42", 7));
/// assert_ne!(hash(b"user-42", 7), hash(b"user-42", 8));
/// ```
#[inline]
pub fn hash(bytes: &[u8], seed: u64) -> u64 {
    XxHash3_64::oneshot_with_seed(seed, bytes)
}

/// The seed of a salt: `H(salt, 0)`, the XXH3-64 of the salt's UTF-8 bytes with seed 0.
///
/// An experiment's seed is `seed(salt)` (the salt defaults to the experiment's id); a layer's
/// seed is `seed(layer_salt)`. Compute it once, when the experiment or layer is compiled —
/// [`Allocator`](super::Allocator) and [`LayerHasher`](super::LayerHasher) do.
///
/// # Examples
///
/// ```
/// use abkit::allocation::{hash, seed};
///
/// assert_eq!(seed("checkout_flow"), hash("checkout_flow".as_bytes(), 0));
/// assert_eq!(seed("checkout_flow"), 8_813_934_206_285_061_609);
/// ```
#[inline]
pub fn seed(salt: &str) -> u64 {
    hash(salt.as_bytes(), 0)
}

/// Maps a 64-bit hash to a bucket in `[0, 10 000)` by multiply-shift: `(x as u128 * 10 000) >> 64`.
///
/// Multiply-shift keeps the high bits of the hash and is exactly uniform up to rounding (each
/// bucket receives either ⌊2⁶⁴ / 10 000⌋ or ⌈2⁶⁴ / 10 000⌉ hash values); it is never a modulo.
///
/// # Examples
///
/// ```
/// use abkit::allocation::{bucket, BUCKETS};
///
/// assert_eq!(bucket(0), 0);
/// assert_eq!(bucket(u64::MAX), 9_999);
/// assert_eq!(bucket(1 << 63), 5_000);
/// assert!(u32::from(bucket(0x1234_5678_9abc_def0)) < BUCKETS);
/// ```
#[inline]
pub fn bucket(hash: u64) -> u16 {
    // (2^64 - 1) * 10_000 < 2^128, and the shifted value is < 10_000 < 2^16: neither the
    // multiplication nor the narrowing can lose information.
    let scaled = (u128::from(hash) * u128::from(BUCKETS)) >> 64;
    u16::try_from(scaled).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};

    #[test]
    fn bucket_edges() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(u64::MAX), 9_999);
        // 2^64 / 10_000 = 1_844_674_407_370_955.16: the first hash of bucket 1 is its ceiling.
        assert_eq!(bucket(1_844_674_407_370_955), 0);
        assert_eq!(bucket(1_844_674_407_370_956), 1);
        assert_eq!(bucket(1 << 63), 5_000);
        assert_eq!(bucket((1 << 63) - 1), 4_999);
    }

    #[test]
    fn seed_is_hash_with_seed_zero() {
        // Values from the reference vectors (computed with Python's xxhash package).
        assert_eq!(seed("checkout_flow"), 8_813_934_206_285_061_609);
        assert_eq!(seed("exp_abc123"), 15_751_812_150_261_686_070);
        assert_eq!(seed("exp_abc123"), hash(b"exp_abc123", 0));
    }

    #[test]
    fn hash_accepts_empty_and_long_input() {
        let long = vec![0xA5_u8; 1 << 20];
        assert_ne!(hash(&[], 0), hash(&long, 0));
        assert_ne!(hash(&long, 0), hash(&long, 1));
    }

    proptest! {
        #![proptest_config(Config { rng_seed: RngSeed::Fixed(0xA110C), ..Config::default() })]

        #[test]
        fn prop_bucket_in_range_and_monotone(a in any::<u64>(), b in any::<u64>()) {
            prop_assert!(u32::from(bucket(a)) < BUCKETS);
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(bucket(lo) <= bucket(hi));
        }

        #[test]
        fn prop_bucket_matches_wide_arithmetic(x in any::<u64>()) {
            // floor(x * 10_000 / 2^64) computed independently via u128 division.
            let expected = (u128::from(x) * 10_000) / (1_u128 << 64);
            prop_assert_eq!(u128::from(bucket(x)), expected);
        }
    }
}
