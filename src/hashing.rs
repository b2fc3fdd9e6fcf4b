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

    /// A seeded xxh3 of `a` (and its length), the hash of unit ids and experiment names in
    /// the stores; reusable as the seed of [`Seeded::hash_second`].
    #[inline]
    pub(crate) fn hash_first(&self, a: &str) -> u64 {
        XxHash3_64::oneshot_with_seed(self.0, a.as_bytes()) ^ (a.len() as u64).rotate_left(32)
    }

    /// A hash of `b` seeded with `first` (a [`Seeded::hash_first`]).
    #[inline]
    pub(crate) fn hash_second(first: u64, b: &str) -> u64 {
        XxHash3_64::oneshot_with_seed(first, b.as_bytes())
    }
}

/// Multiplies to 128 bits and folds the halves (the wyhash / folded-multiply mixer).
#[inline]
fn mum(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// The first 8 bytes of `w` (which has at least 8) as a little-endian word.
#[inline]
fn word(w: &[u8]) -> u64 {
    let mut buf = [0_u8; 8];
    if let Some(head) = w.get(..8) {
        buf.copy_from_slice(head);
    }
    u64::from_le_bytes(buf)
}

/// Whether two keys are equal, compared a word at a time inline (a call to `memcmp` costs more
/// than the comparison for the 10–40-byte ids this is for).
#[inline]
pub(crate) fn key_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let len = a.len();
    if len != b.len() {
        return false;
    }
    if len < 8 {
        return short_word(a) == short_word(b);
    }
    let (mut wa, mut wb) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in (&mut wa).zip(&mut wb) {
        if word(x) != word(y) {
            return false;
        }
    }
    // The last 8 bytes (overlapping words already compared): one load each, no call.
    match (a.get(len - 8..), b.get(len - 8..)) {
        (Some(x), Some(y)) => word(x) == word(y),
        _ => false,
    }
}

/// Up to 7 bytes as a little-endian word, in registers.
#[inline]
fn short_word(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .take(8)
        .enumerate()
        .fold(0, |w, (i, &b)| w | (u64::from(b) << (8 * i)))
}

const K1: u64 = 0xa076_1d64_78bd_642f;
const K2: u64 = 0xe703_7ed1_a0b4_28db;
const K3: u64 = 0x8ebc_6af0_9c88_c6e3;

impl Seeded {
    /// A fast seeded hash of a configuration key (an experiment id, a flag id or key): a
    /// folded multiply per 8 bytes, about twice as fast as xxh3 on ids of 20–40 bytes.
    ///
    /// Configuration keys are chosen by the lab's operators, not by end users, so the table
    /// they index cannot be flooded from outside (a lookup of an unknown key costs one probe
    /// whatever its hash); unit ids, which end users choose, keep xxh3
    /// ([`Seeded::hash_first`]).
    #[inline]
    pub(crate) fn hash_key(&self, key: &str) -> u64 {
        let bytes = key.as_bytes();
        let len = bytes.len();
        let tail = |n: usize| bytes.get(len.saturating_sub(n)..).unwrap_or_default();
        let mut seed = self.0;
        // Two words per multiply (the wyhash layout): the chain is half as long as one word per
        // multiply, which is what a hash of a 20–40-byte id waits on.
        let (a, b) = if len <= 16 {
            if len >= 8 {
                (word(bytes), word(tail(8)))
            } else {
                (short_word(bytes), 0)
            }
        } else {
            let mut rest = bytes;
            while rest.len() > 16 {
                let (block, next) = rest.split_at(16);
                seed = mum(
                    word(block) ^ K1,
                    word(block.get(8..).unwrap_or_default()) ^ seed,
                );
                rest = next;
            }
            (word(tail(16)), word(tail(8)))
        };
        mum(K2 ^ len as u64, mum(a ^ K3, b ^ seed))
    }

    /// [`Seeded::hash_key`] of a pair (project, key), kept apart by the first's length.
    #[inline]
    pub(crate) fn hash_key_pair(&self, a: &str, b: &str) -> u64 {
        Seeded(self.hash_key(a)).hash_key(b)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_eq_is_string_equality() {
        let keys = [
            "",
            "a",
            "abcdefg",
            "abcdefgh",
            "abcdefghi",
            "exp_0123456789abcdefghjkmn",
        ];
        for a in keys {
            for b in keys {
                assert_eq!(key_eq(a, b), a == b, "{a:?} {b:?}");
            }
            let mut c = a.to_owned();
            if let Some(last) = c.pop() {
                c.push(if last == 'z' { 'y' } else { 'z' });
                assert!(!key_eq(a, &c), "{a:?} {c:?}");
            }
        }
    }

    #[test]
    fn key_hashes_differ_by_content_length_and_seed() {
        let s = Seeded(42);
        let ids = [
            "",
            "a",
            "b",
            "ab",
            "abcdefgh",
            "abcdefgi",
            "abcdefghi",
            "exp_0123456789abcdefghjkmn",
        ];
        let hashes: std::collections::HashSet<u64> = ids.iter().map(|k| s.hash_key(k)).collect();
        assert_eq!(hashes.len(), ids.len());
        assert_ne!(s.hash_key("abc"), Seeded(43).hash_key("abc"));
        // Pairs are kept apart by the first's length.
        assert_ne!(s.hash_key_pair("ab", "c"), s.hash_key_pair("a", "bc"));
        // Top and low bits both vary (the hash table and the shards use them).
        let many: Vec<u64> = (0..1000)
            .map(|i| s.hash_key(&format!("flag_{i}")))
            .collect();
        let tops: std::collections::HashSet<u64> = many.iter().map(|h| h >> 57).collect();
        let lows: std::collections::HashSet<u64> = many.iter().map(|h| h & 127).collect();
        let mids: std::collections::HashSet<u64> = many.iter().map(|h| (h >> 48) & 255).collect();
        assert_eq!((tops.len(), lows.len()), (128, 128));
        assert!(mids.len() > 240, "{}", mids.len());
    }
}
