//! GrowthBook SDK semantics (feature `growthbook`), exactly as its JavaScript SDK computes them
//! (spec 0.8.0): the FNV-1a hash over UTF-16 code units (`charCodeAt`, so a non-ASCII id hashes
//! as in every browser), bucket ranges with coverage and weights, variation choice, namespaces,
//! equal weights, query-string overrides and encrypted payloads (AES-CBC, PKCS#7, base64).
//!
//! ```
//! use abkit::growthbook::{bucket_ranges, choose_variation, hash};
//! let n = hash("my-experiment", "usr_123", 2).unwrap();
//! let ranges = bucket_ranges(2, 1.0, None);
//! assert_eq!(ranges, vec![(0.0, 0.5), (0.5, 1.0)]);
//! assert!(choose_variation(n, &ranges).is_some());
//! // UTF-16, as JavaScript: "josé" does not hash as its UTF-8 bytes would.
//! assert_eq!(hash("seed", "josé", 2), Some(0.5199));
//! ```
//!
//! [`Features`] compiles a payload's features once (conditions parsed by [`crate::targeting`]
//! and bound to the saved groups) and evaluates them: [`Features::eval_feature`] and
//! [`Features::run`], as the SDK's `evalFeature` and `run`.
//!
//! Sticky bucketing follows the spec's documents ([`StickyBuckets`]: the host loads a user's
//! documents, evaluates with [`Features::eval_feature_sticky`], stores what changed).
//!
//! Status (issue 15, in progress): the primitives, `evalCondition`, `feature`, `run` and
//! `stickyBucket` pass every case of their sections of GrowthBook's conformance file
//! (`tests/growthbook.rs`; contextual bandits are not supported, `urlRedirect` is browser-only);
//! tracking callbacks, payload loading with decryption, typed getters, the bridge to a `Lab` and
//! the allocation-free compiled path are not built yet.

use serde::Deserialize;

pub mod bridge;
mod eval;

pub use eval::{
    Experiment, ExperimentResult, FeatureResult, Features, GbContext, MAX_DEPTH, Source,
    StickyBucketDoc, StickyBuckets, Tracking, VariationKey,
};

/// Why a GrowthBook input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrowthBookError {
    /// An encrypted payload that does not decrypt with the key given.
    #[error("cannot decrypt {what}: {reason}")]
    Decrypt {
        /// What was being decrypted (`payload`, `key`, `iv`).
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A payload or experiment that is not of the SDK's shape.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field at fault, such as `features` or `experiment.key`.
        field: String,
        /// Why.
        reason: String,
    },
}

/// FNV-1a (32 bits) over the UTF-16 code units of `s`, as the JavaScript SDK's `hashFnv32a`.
pub fn fnv1a32_utf16(s: &str) -> u32 {
    fnv1a32_units(s.encode_utf16())
}

fn fnv1a32_units(units: impl Iterator<Item = u16>) -> u32 {
    units.fold(0x811c_9dc5_u32, |h, u| {
        (h ^ u32::from(u)).wrapping_mul(0x0100_0193)
    })
}

/// GrowthBook's hash of `value` with `seed`, in [0, 1): version 1 is `fnv(value + seed) % 1000 /
/// 1000`, version 2 `fnv(str(fnv(seed + value))) % 10000 / 10000`. `None` for another version.
/// Allocates nothing.
pub fn hash(seed: &str, value: &str, version: u32) -> Option<f64> {
    hash_parts(&[seed], value, version)
}

/// [`hash`] with the seed given in parts (`"__"` + a namespace id), concatenated as JavaScript
/// would, without building the string.
pub(crate) fn hash_parts(seed: &[&str], value: &str, version: u32) -> Option<f64> {
    let seed_units = || seed.iter().flat_map(|p| p.encode_utf16());
    match version {
        1 => {
            let h = fnv1a32_units(value.encode_utf16().chain(seed_units()));
            Some(f64::from(h % 1000) / 1000.0)
        }
        2 => {
            let inner = fnv1a32_units(seed_units().chain(value.encode_utf16()));
            let mut digits = StackStr::default();
            std::fmt::Write::write_fmt(&mut digits, format_args!("{inner}")).ok()?;
            let h = fnv1a32_units(digits.as_str().encode_utf16());
            Some(f64::from(h % 10_000) / 10_000.0)
        }
        _ => None,
    }
}

/// A short string on the stack (a number's digits), so hashing allocates nothing.
pub(crate) struct StackStr {
    buf: [u8; 48],
    len: usize,
}

impl Default for StackStr {
    fn default() -> Self {
        StackStr {
            buf: [0; 48],
            len: 0,
        }
    }
}

impl StackStr {
    pub(crate) fn as_str(&self) -> &str {
        self.buf
            .get(..self.len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

impl std::fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// `n` equal weights (`1 / n` each); none for `n ≤ 0`.
pub fn equal_weights(n: i64) -> Vec<f64> {
    match usize::try_from(n) {
        Ok(n) if n > 0 => vec![1.0 / n as f64; n],
        _ => Vec::new(),
    }
}

/// The bucket range of each of `n` variations: weights (equal when absent, of the wrong length,
/// or not summing to 1 ± 0.01) laid end to end, each range covering `coverage` (clamped to
/// [0, 1]) of its weight.
pub fn bucket_ranges(n: usize, coverage: f64, weights: Option<&[f64]>) -> Vec<(f64, f64)> {
    ranges(n, coverage, weights).collect()
}

/// [`bucket_ranges`] one at a time, allocating nothing.
pub(crate) fn ranges(
    n: usize,
    coverage: f64,
    weights: Option<&[f64]>,
) -> impl Iterator<Item = (f64, f64)> + '_ {
    let coverage = if coverage.is_nan() {
        0.0
    } else {
        coverage.clamp(0.0, 1.0)
    };
    let weights = weights
        .filter(|w| w.len() == n)
        .filter(|w| (0.99..=1.01).contains(&w.iter().sum::<f64>()));
    let equal = 1.0 / n as f64;
    let mut cumulative = 0.0;
    (0..n).map(move |i| {
        let w = weights.map_or(equal, |ws| ws.get(i).copied().unwrap_or(0.0));
        let start = cumulative;
        cumulative += w;
        (start, start + coverage * w)
    })
}

/// The variation whose range holds `n` (`start ≤ n < end`), if any.
pub fn choose_variation(n: f64, ranges: &[(f64, f64)]) -> Option<usize> {
    ranges.iter().position(|&(s, e)| n >= s && n < e)
}

/// A namespace and the slice of it an experiment owns: `["id", start, end]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Namespace(pub String, pub f64, pub f64);

/// Whether the unit with hash attribute value `hash_value` falls in `namespace`'s slice.
pub fn in_namespace(hash_value: &str, namespace: &Namespace) -> bool {
    hash_parts(&["__", &namespace.0], hash_value, 1)
        .is_some_and(|n| n >= namespace.1 && n < namespace.2)
}

/// JavaScript's `parseInt(s)` (radix unspecified): leading whitespace, a sign, `0x` for hex,
/// then as many digits as there are; `None` where JavaScript gives `NaN`.
fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim_start();
    let (negative, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = match s.get(..2) {
        Some("0x" | "0X") => (16, &s[2..]),
        _ => (10, s),
    };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    let v = i64::from_str_radix(digits.get(..end)?, radix).ok()?;
    Some(if negative { -v } else { v })
}

/// The variation forced by `?{id}={n}` in `url` (the first such parameter), if it names one of
/// `n_variations`.
pub fn query_string_override(id: &str, url: &str, n_variations: usize) -> Option<usize> {
    // JavaScript: url.split("?")[1], then drop a fragment, split on "&", then "=" (at most 2).
    let search = url.split('?').nth(1).filter(|s| !s.is_empty())?;
    let search = search.split('#').next().unwrap_or_default();
    let first = search
        .split('&')
        .filter_map(|kv| {
            let mut it = kv.split('=');
            let k = it.next()?;
            (k == id).then(|| it.next().unwrap_or(""))
        })
        .next()?;
    let v = parse_int(first)?;
    usize::try_from(v).ok().filter(|&v| v < n_variations)
}

/// Decrypts an encrypted payload (`"{base64 iv}.{base64 ciphertext}"`) with a base64 AES key
/// (128, 192 or 256 bits), as the SDK's `decrypt`: AES-CBC, PKCS#7 padding, UTF-8 text (invalid
/// sequences replaced, as `TextDecoder`).
///
/// # Errors
///
/// [`GrowthBookError::Decrypt`] naming what is wrong: the key or IV not base64 or of the wrong
/// length, the ciphertext not base64, or a padding that does not check (a wrong key).
pub fn decrypt(encrypted: &str, key: &str) -> Result<String, GrowthBookError> {
    use base64::Engine;
    use cbc::cipher::block_padding::Pkcs7;
    use cbc::cipher::{BlockDecryptMut, KeyIvInit};
    let b64 = base64::engine::general_purpose::STANDARD;
    let fail = |what: &'static str, reason: String| GrowthBookError::Decrypt { what, reason };
    let (iv, ciphertext) = encrypted
        .split_once('.')
        .ok_or_else(|| fail("payload", "expected \"{iv}.{ciphertext}\"".into()))?;
    let iv = b64
        .decode(iv)
        .map_err(|e| fail("iv", format!("{iv:?} is not base64: {e}")))?;
    let key_bytes = b64
        .decode(key)
        .map_err(|e| fail("key", format!("the key is not base64: {e}")))?;
    let ciphertext = b64
        .decode(ciphertext)
        .map_err(|e| fail("payload", format!("the ciphertext is not base64: {e}")))?;
    let bad_len =
        |what: &'static str, n: usize| fail(what, format!("{n} bytes is not a valid length"));
    let plain = match key_bytes.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(&key_bytes, &iv)
            .map_err(|_| bad_len("iv", iv.len()))?
            .decrypt_padded_vec_mut::<Pkcs7>(&ciphertext),
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(&key_bytes, &iv)
            .map_err(|_| bad_len("iv", iv.len()))?
            .decrypt_padded_vec_mut::<Pkcs7>(&ciphertext),
        32 => cbc::Decryptor::<aes::Aes256>::new_from_slices(&key_bytes, &iv)
            .map_err(|_| bad_len("iv", iv.len()))?
            .decrypt_padded_vec_mut::<Pkcs7>(&ciphertext),
        n => return Err(bad_len("key", n)),
    }
    .map_err(|_| fail("payload", "the padding does not check: a wrong key?".into()))?;
    Ok(String::from_utf8_lossy(&plain).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_int_is_javascripts() {
        for (s, v) in [
            ("1", Some(1)),
            ("2.054", Some(2)),
            ("foo", None),
            ("", None),
            (" 7x", Some(7)),
            ("-1", Some(-1)),
            ("0x1f", Some(31)),
        ] {
            assert_eq!(parse_int(s), v, "{s:?}");
        }
    }
}
