//! Validated identifiers and the id generator.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

pub use crate::model::limits::MAX_ID_LEN;
use crate::model::validation::ValidationError;
use crate::time::Timestamp;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        ///
        /// Non-empty, at most 200 bytes, no control characters. Serializes as a plain string.
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates `value` as this kind of identifier.
            ///
            /// # Errors
            ///
            /// [`ValidationError::InvalidId`] when it is empty, longer than 200 bytes or contains
            /// control characters.
            pub fn new(value: impl Into<String>) -> Result<Self, ValidationError> {
                let value = value.into();
                check_id($what, &value)?;
                Ok($name(value))
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = ValidationError;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                $name::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                $name::new(s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::new(s).map_err(serde::de::Error::custom)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

fn check_id(what: &'static str, value: &str) -> Result<(), ValidationError> {
    let reason = if value.is_empty() {
        "is empty"
    } else if value.len() > MAX_ID_LEN {
        "is longer than 200 bytes"
    } else if value.chars().any(char::is_control) {
        "contains a control character"
    } else {
        return Ok(());
    };
    Err(ValidationError::InvalidId {
        kind: what,
        value: value.chars().take(64).collect(),
        reason,
    })
}

id_type!(
    /// An experiment's id, such as `exp_abc123`.
    ExperimentId,
    "experiment id"
);
id_type!(
    /// A variant's id (the flow and feed APIs' `id`, the flag API's `key`), such as `control`.
    VariantKey,
    "variant id"
);
id_type!(
    /// A flag's id (generated, like the flag API's UUIDs).
    FlagId,
    "flag id"
);
id_type!(
    /// A flag's key, unique within its project and environment, such as `checkout_flow`.
    FlagKey,
    "flag key"
);
id_type!(
    /// A project's id: flags belong to a project.
    ProjectId,
    "project id"
);
id_type!(
    /// An audience's id, such as `aud_xyz`.
    AudienceId,
    "audience id"
);
id_type!(
    /// A saved group's id, referenced by `$inGroup` / `$notInGroup`.
    SavedGroupId,
    "saved group id"
);
id_type!(
    /// A layer's (namespace's) id: experiments in one layer are mutually exclusive.
    LayerId,
    "layer id"
);

/// Makes new ids for experiments, flags and audiences. Replace it to use your own scheme.
pub trait IdGenerator: Send + Sync + fmt::Debug {
    /// A new unique id starting with `prefix` (such as `exp_`), made at `now` (the lab's
    /// injected clock: a generator reads no clock of its own).
    fn generate(&self, prefix: &str, now: Timestamp) -> String;
}

/// The default generator: `prefix` + 22 url-safe characters (a millisecond time part and a
/// random part seeded by the standard library's per-process random keys), so ids sort roughly by
/// creation time and do not collide across processes. Needs no extra dependency.
#[derive(Debug)]
pub struct DefaultIdGenerator {
    keys: RandomState,
    counter: AtomicU64,
}

impl Default for DefaultIdGenerator {
    fn default() -> Self {
        DefaultIdGenerator {
            keys: RandomState::new(),
            counter: AtomicU64::new(0),
        }
    }
}

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

fn push_base32(out: &mut String, mut x: u64, chars: usize) {
    let mut buf = [b'0'; 13];
    for slot in buf.iter_mut().take(chars).rev() {
        *slot = ALPHABET[(x & 31) as usize];
        x >>= 5;
    }
    out.extend(buf.iter().take(chars).map(|&b| char::from(b)));
}

impl IdGenerator for DefaultIdGenerator {
    fn generate(&self, prefix: &str, now: Timestamp) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut h = self.keys.build_hasher();
        h.write_u64(n);
        h.write_i64(now.unix_millis());
        let random = h.finish();
        let millis = u64::try_from(now.unix_millis()).unwrap_or(0);
        let mut out = String::with_capacity(prefix.len() + 22);
        out.push_str(prefix);
        push_base32(&mut out, millis, 9);
        push_base32(&mut out, random, 13);
        out
    }
}

/// A generator giving `prefix1`, `prefix2`, …: predictable ids for tests and examples.
#[derive(Debug, Default)]
pub struct SequentialIdGenerator(AtomicU64);

impl IdGenerator for SequentialIdGenerator {
    fn generate(&self, prefix: &str, _now: Timestamp) -> String {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{prefix}{n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_validate() {
        assert!(ExperimentId::new("exp_1").is_ok());
        let err = ExperimentId::new("").unwrap_err();
        assert_eq!(err.to_string(), "experiment id \"\" is empty");
        assert!(VariantKey::new("a\u{0}b").is_err());
        assert!(FlagKey::new("x".repeat(201)).is_err());
    }

    #[test]
    fn default_ids_are_unique_and_url_safe() {
        let g = DefaultIdGenerator::default();
        let ids: std::collections::HashSet<String> = (0..10_000)
            .map(|_| g.generate("exp_", Timestamp::from_unix_millis(1_700_000_000_000)))
            .collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(50) {
            assert_eq!(id.len(), 4 + 22);
            assert!(id[4..].bytes().all(|b| ALPHABET.contains(&b)), "{id}");
        }
    }

    #[test]
    fn default_ids_take_their_time_from_the_injected_clock() {
        let g = DefaultIdGenerator::default();
        let at = |ms| Timestamp::from_unix_millis(ms);
        let a = g.generate("exp_", at(0));
        let b = g.generate("exp_", at(0));
        let c = g.generate("exp_", at(1_000));
        // The 9-character time part is the clock's, not the machine's.
        assert_eq!(&a[4..13], "000000000");
        assert_eq!(&a[4..13], &b[4..13]);
        assert_eq!(&c[4..13], "0000000z8");
        assert_ne!(a, b);
    }
}
