//! The memory store's unit table: open addressing with linear probing, one cache line per
//! unit.
//!
//! A general-purpose map keeps its control bytes apart from its entries, so a lookup in a
//! table far bigger than the cache pays two dependent misses (control group, then entry); with
//! a million units those misses are most of an event's cost. Here a slot holds the key's hash,
//! the key itself (inline when short) and the unit's [`UnitState`] in exactly 64 bytes, aligned
//! to a cache line: a lookup that hits its home slot touches one line, and probing onward
//! reads the adjacent line, which the hardware prefetches. The hash is computed once per event
//! by the store (it also picks the shard) and passed in.

use crate::storage::UnitState;

/// The longest unit id kept inline in a slot.
const INLINE: usize = 22;

/// A unit id, inline when short (most are), so comparing keys reads no other memory.
#[derive(Debug, Clone)]
pub(super) enum UnitKey {
    /// Up to [`INLINE`] bytes.
    Inline { len: u8, bytes: [u8; INLINE] },
    /// Longer ids.
    Heap(Box<str>),
}

impl Default for UnitKey {
    fn default() -> Self {
        UnitKey::Inline {
            len: 0,
            bytes: [0; INLINE],
        }
    }
}

impl UnitKey {
    pub(super) fn new(unit: &str) -> UnitKey {
        match UnitKey::inline(unit.as_bytes()) {
            Some(k) => k,
            None => UnitKey::Heap(unit.into()),
        }
    }

    /// The inline key for `unit`, if it is short enough.
    fn inline(unit: &[u8]) -> Option<UnitKey> {
        let mut bytes = [0u8; INLINE];
        let dst = bytes.get_mut(..unit.len())?;
        dst.copy_from_slice(unit);
        let len = u8::try_from(unit.len()).ok()?;
        Some(UnitKey::Inline { len, bytes })
    }

    /// Whether this is `key`. An inline key of 8 bytes or more is compared as two or three
    /// overlapping 8-byte words, read straight from both sides: no call, and no copy of the
    /// probe to the stack (whose re-read would stall on store forwarding).
    fn matches(&self, key: &[u8]) -> bool {
        let UnitKey::Inline { len, bytes } = self else {
            return self.as_bytes() == key;
        };
        let n = key.len();
        if usize::from(*len) != n {
            return false;
        }
        if n < 8 {
            return bytes.get(..n) == Some(key);
        }
        let word = |s: &[u8], i: usize| {
            s.get(i..i + 8)
                .and_then(|w| <[u8; 8]>::try_from(w).ok())
                .map(u64::from_ne_bytes)
        };
        // Windows at 0, 8 (when n ≥ 16) and n − 8 cover every byte of an id of 8 to 22.
        word(bytes, 0) == word(key, 0)
            && (n < 16 || word(bytes, 8) == word(key, 8))
            && word(bytes, n - 8) == word(key, n - 8)
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        match self {
            UnitKey::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            UnitKey::Heap(s) => s.as_bytes(),
        }
    }
}

// Hashed and compared as bytes, and looked up by `unit.as_bytes()`: no UTF-8 check per probe.
impl std::hash::Hash for UnitKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialEq for UnitKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for UnitKey {}

impl std::borrow::Borrow<[u8]> for UnitKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// One unit: its tag (the key's hash with the low bit set; 0 marks an empty slot), its key
/// and its state, in one cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot {
    tag: u64,
    key: UnitKey,
    state: Option<UnitState>,
}

// The point of the layout: one unit, one cache line.
const _: () = assert!(std::mem::size_of::<Slot>() == 64);

/// A slot's tag for `hash`: the hash with its low bit set, so no tag is 0 (an empty slot).
const fn tag_of(hash: u64) -> u64 {
    hash | 1
}

/// Where a key is, or where it would go.
pub(super) enum Probe {
    /// The slot holding the key.
    Found(usize),
    /// The key is absent.
    Vacant,
}

/// Units of one experiment in one shard.
#[derive(Debug, Default)]
pub(super) struct UnitTable {
    slots: Vec<Slot>,
    len: usize,
}

impl UnitTable {
    /// The slot a hash starts probing at (multiply-shift range reduction: any capacity).
    fn home(&self, tag: u64) -> usize {
        ((u128::from(tag) * self.slots.len() as u128) >> 64) as usize
    }

    /// Finds `key` (whose hash is `hash`).
    pub(super) fn find(&self, hash: u64, key: &[u8]) -> Probe {
        let tag = tag_of(hash);
        let n = self.slots.len();
        let mut i = self.home(tag);
        // The load factor stays below 3/4, so an empty slot ends every probe; the bound is a
        // guard, not the exit.
        for _ in 0..n {
            let Some(s) = self.slots.get(i) else {
                return Probe::Vacant;
            };
            if s.tag == 0 {
                return Probe::Vacant;
            }
            if s.tag == tag && s.key.matches(key) {
                return Probe::Found(i);
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
        Probe::Vacant
    }

    /// The state of `key`.
    pub(super) fn get(&self, hash: u64, key: &[u8]) -> Option<&UnitState> {
        match self.find(hash, key) {
            Probe::Found(i) => self.slots.get(i).and_then(|s| s.state.as_ref()),
            Probe::Vacant => None,
        }
    }

    /// The state in slot `i` (from [`UnitTable::find`]).
    pub(super) fn state_mut(&mut self, i: usize) -> Option<&mut Option<UnitState>> {
        self.slots.get_mut(i).map(|s| &mut s.state)
    }

    /// Inserts `key`, known to be absent.
    pub(super) fn insert(&mut self, hash: u64, key: &str, state: UnitState) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        self.place(Slot {
            tag: tag_of(hash),
            key: UnitKey::new(key),
            state: Some(state),
        });
        self.len += 1;
    }

    /// Reads the home slot of `hash` and returns its tag: issued for every event of a batch
    /// before any is applied, these loads are independent, so their cache misses overlap
    /// instead of following one another.
    pub(super) fn touch(&self, hash: u64) -> u64 {
        self.slots.get(self.home(tag_of(hash))).map_or(0, |s| s.tag)
    }

    /// The number of units.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    fn place(&mut self, slot: Slot) {
        let n = self.slots.len();
        let mut i = self.home(slot.tag);
        for _ in 0..n {
            match self.slots.get_mut(i) {
                Some(s) if s.tag == 0 => {
                    *s = slot;
                    return;
                }
                _ => {
                    i += 1;
                    if i == n {
                        i = 0;
                    }
                }
            }
        }
    }

    fn grow(&mut self) {
        let capacity = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(
            &mut self.slots,
            std::iter::repeat_with(Slot::default)
                .take(capacity)
                .collect(),
        );
        for s in old {
            if s.tag != 0 {
                self.place(s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    fn state(variant: u32) -> UnitState {
        UnitState::new(variant, Timestamp::from_unix_millis(0), false, Vec::new())
    }

    #[test]
    fn finds_what_it_stored_through_growth_and_collisions() {
        let mut t = UnitTable::default();
        // Every key shares a hash: the worst case, resolved by comparing keys.
        let long = "x".repeat(40);
        let keys: Vec<String> = (0..200)
            .map(|i| format!("u{i}"))
            .chain([long.clone()])
            .collect();
        for (i, k) in keys.iter().enumerate() {
            assert!(matches!(t.find(7, k.as_bytes()), Probe::Vacant));
            t.insert(7, k, state(i as u32));
        }
        assert_eq!(t.len(), keys.len());
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.get(7, k.as_bytes()).map(|s| s.variant), Some(i as u32));
            // Another hash never matches, whatever the key.
            assert!(t.get(8, k.as_bytes()).is_none());
        }
        assert!(t.get(7, b"absent").is_none());
        assert_eq!(t.get(7, long.as_bytes()).map(|s| s.variant), Some(200));
        // Distinct hashes, many units: the load factor keeps a free slot.
        let mut t = UnitTable::default();
        for i in 0..10_000u64 {
            t.insert(
                i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                &i.to_string(),
                state(1),
            );
        }
        assert!(t.slots.len() * 3 >= t.len() * 4);
        for i in 0..10_000u64 {
            let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            assert!(t.get(h, i.to_string().as_bytes()).is_some(), "{i}");
            assert_ne!(t.touch(h), 0);
        }
    }

    #[test]
    fn keys_match_exactly_at_every_length() {
        for n in 0..=40usize {
            let id: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            let k = UnitKey::new(&id);
            assert!(k.matches(id.as_bytes()), "{n}");
            // One byte different anywhere, or one byte more or less: no match.
            for i in 0..n {
                let mut other = id.clone().into_bytes();
                other[i] = b'#';
                assert!(!k.matches(&other), "{n} at {i}");
            }
            assert!(!k.matches(format!("{id}a").as_bytes()), "{n}+1");
            if n > 0 {
                assert!(!k.matches(&id.as_bytes()[..n - 1]), "{n}-1");
            }
        }
    }

    #[test]
    fn an_empty_table_finds_nothing() {
        let t = UnitTable::default();
        assert!(t.get(1, b"a").is_none());
        assert_eq!(t.touch(1), 0);
    }
}
