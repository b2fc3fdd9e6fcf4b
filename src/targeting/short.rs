//! Short strings packed into one integer, so that comparing them is one integer comparison
//! instead of a call to `memcmp`.
//!
//! Attribute names, country codes, plan names and the like are mostly a few bytes long. A string of
//! at most [`MAX_PACKED`] bytes packs into a `u128` (its bytes, little-endian, zero-padded, with the
//! length in the top byte), and two such strings are equal exactly when their packed forms are.

use serde_json::{Map, Value};

/// The longest string that packs.
pub(crate) const MAX_PACKED: usize = 15;

/// Maps with at most this many entries are searched linearly (comparing packed keys) rather than
/// through the map's own lookup, which compares keys with `memcmp`.
const SCAN_MAX: usize = 12;

/// The packed form of `s`, when it is at most [`MAX_PACKED`] bytes long.
///
/// Loads overlapping fixed-size words from both ends instead of copying a variable number of
/// bytes; the overlapping bytes are the same in both words, so or-ing them is exact.
#[inline]
pub(crate) fn pack(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    let n = b.len();
    let bytes = match n {
        0 => 0,
        1 => u128::from(*b.first()?),
        2..=3 => {
            let lo = u16::from_le_bytes(*b.first_chunk::<2>()?);
            let hi = u16::from_le_bytes(*b.last_chunk::<2>()?);
            u128::from(u32::from(lo) | (u32::from(hi) << ((n - 2) * 8)))
        }
        4..=7 => {
            let lo = u32::from_le_bytes(*b.first_chunk::<4>()?);
            let hi = u32::from_le_bytes(*b.last_chunk::<4>()?);
            u128::from(u64::from(lo) | (u64::from(hi) << ((n - 4) * 8)))
        }
        8..=MAX_PACKED => {
            let lo = u64::from_le_bytes(*b.first_chunk::<8>()?);
            let hi = u64::from_le_bytes(*b.last_chunk::<8>()?);
            u128::from(lo) | (u128::from(hi) << ((n - 8) * 8))
        }
        _ => return None,
    };
    // `n` is at most 15 here.
    Some(bytes | ((n as u128) << 120))
}

/// An attribute name with its packed form, for repeated lookup.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ShortStr {
    s: Box<str>,
    packed: Option<u128>,
}

impl ShortStr {
    pub(crate) fn new(s: &str) -> Self {
        Self {
            s: s.into(),
            packed: pack(s),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.s
    }

    /// `map[self]`.
    #[inline]
    pub(crate) fn get<'a>(&self, map: &'a Map<String, Value>) -> Option<&'a Value> {
        match self.packed {
            Some(p) if map.len() <= SCAN_MAX => {
                let n = self.s.len();
                map.iter()
                    .find(|(k, _)| k.len() == n && pack(k) == Some(p))
                    .map(|(_, v)| v)
            }
            _ => map.get(&*self.s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn packing_is_injective_on_short_strings() {
        let strs = [
            "",
            "\0",
            "\0\0",
            "a",
            "a\0",
            "\0a",
            "ab",
            "ba",
            "abc",
            "abd",
            "bbc",
            "abcd",
            "abce",
            "abcde",
            "abcdf",
            "bbcde",
            "abcdefg",
            "abcdefh",
            "abcdefgh",
            "abcdefgi",
            "bbcdefgh",
            "abcdefghi",
            "abcdefghj",
            "abcdefghijklmno",
            "abcdefghijklmnp",
            "bbcdefghijklmno",
            "\u{e9}",
            "\u{e9}\u{e9}",
            "DE",
            "FR",
            "US",
            "GB",
        ];
        for a in strs {
            assert!(pack(a).is_some(), "{a:?} packs");
            for b in strs {
                assert_eq!(pack(a) == pack(b), a == b, "{a:?} vs {b:?}");
            }
        }
        assert_eq!(pack("abcdefghijklmnop"), None);
    }

    #[test]
    fn packing_matches_byte_order_for_every_length() {
        for n in 0..=MAX_PACKED {
            let s: String = (0..n)
                .map(|i| char::from(b'a' + u8::try_from(i).unwrap()))
                .collect();
            let mut expected = (n as u128) << 120;
            for (i, b) in s.bytes().enumerate() {
                expected |= u128::from(b) << (8 * i);
            }
            assert_eq!(pack(&s), Some(expected), "{s:?}");
        }
    }

    #[test]
    fn lookup_in_small_and_large_maps() {
        let small = json!({"country": "DE", "plan": "pro", "appVersion": "1", "a": 0, "": 1});
        let Value::Object(mut small) = small else {
            unreachable!()
        };
        assert_eq!(ShortStr::new("plan").get(&small), Some(&json!("pro")));
        assert_eq!(ShortStr::new("").get(&small), Some(&json!(1)));
        assert_eq!(ShortStr::new("plans").get(&small), None);
        assert_eq!(ShortStr::new("pla").get(&small), None);
        let mut large = Map::new();
        for i in 0..100 {
            large.insert(format!("k{i}"), json!(i));
        }
        large.insert("a-very-long-attribute-name".into(), json!("long"));
        assert_eq!(ShortStr::new("k42").get(&large), Some(&json!(42)));
        assert_eq!(ShortStr::new("k100").get(&large), None);
        assert_eq!(
            ShortStr::new("a-very-long-attribute-name").get(&large),
            Some(&json!("long"))
        );
        small.insert("a-very-long-attribute-name".into(), json!("long"));
        assert_eq!(
            ShortStr::new("a-very-long-attribute-name").get(&small),
            Some(&json!("long"))
        );
    }
}
