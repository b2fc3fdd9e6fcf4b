//! Fast keyed hashing for the crate's internal maps (not the allocation hash, which is fixed
//! forever by `docs/ALLOCATION.md`).
//!
//! Keys include unit ids that end users control, so the seed is random per process (from the
//! standard library's `RandomState`), as std's own maps do against hash flooding; xxh3 is used
//! because it is several times faster than SipHash on short ids.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use twox_hash::XxHash3_64;

/// A per-process random seed for xxh3.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seeded(u64);

impl Seeded {
    pub(crate) fn random() -> Seeded {
        Seeded(std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64))
    }

    /// A hash of two strings (kept apart by their lengths).
    pub(crate) fn hash_pair(&self, a: &str, b: &str) -> u64 {
        Seeded::hash_second(self.hash_first(a), b)
    }

    /// The first half of [`Seeded::hash_pair`]: a hash of `a` alone, reusable for every `b`.
    pub(crate) fn hash_first(&self, a: &str) -> u64 {
        XxHash3_64::oneshot_with_seed(self.0, a.as_bytes()) ^ (a.len() as u64).rotate_left(32)
    }

    /// The second half of [`Seeded::hash_pair`]: `hash_pair(a, b)` from `hash_first(a)`.
    pub(crate) fn hash_second(first: u64, b: &str) -> u64 {
        XxHash3_64::oneshot_with_seed(first, b.as_bytes())
    }
}

impl Default for Seeded {
    fn default() -> Self {
        Seeded::random()
    }
}

/// One-shot xxh3 over each `write`, chained through the seed.
#[derive(Debug)]
pub(crate) struct ChainHasher(u64);

impl Hasher for ChainHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = XxHash3_64::oneshot_with_seed(self.0, bytes);
    }

    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0 ^ u64::from(i)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_usize(&mut self, i: usize) {
        self.0 = (self.0 ^ i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl BuildHasher for Seeded {
    type Hasher = ChainHasher;
    fn build_hasher(&self) -> ChainHasher {
        ChainHasher(self.0)
    }
}

/// A `HashMap` with the seeded xxh3 hasher.
pub(crate) type FastMap<K, V> = HashMap<K, V, Seeded>;

/// A hasher for keys that are already hashes (`u64`s from [`Seeded::hash_pair`]).
#[derive(Debug, Default)]
pub(crate) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}

/// Builds [`IdentityHasher`]s.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdentityBuild;

impl BuildHasher for IdentityBuild {
    type Hasher = IdentityHasher;
    fn build_hasher(&self) -> IdentityHasher {
        IdentityHasher(0)
    }
}
