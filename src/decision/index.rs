//! Persistent (copy-on-write, chunked) containers for snapshots: consecutive snapshots share
//! everything a write did not touch, so deriving the next one costs a few hundred pointer
//! copies and the changed chunk, not a copy of every entry.
//!
//! * [`Chunks`]: slot → value, in chunks of [`CHUNK`] slots.
//! * [`SharedMap`]: 64-bit hash → entries, in [`SHARDS`] shards.
//! * [`SortedList`]: entries sorted by a string key, in chunks of at most `2 × CHUNK`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::hashing::IdentityBuild;

/// Slots per chunk of [`Chunks`] (and the split size of [`SortedList`] chunks, halved).
pub(crate) const CHUNK: usize = 64;
/// Shards of a [`SharedMap`].
pub(crate) const SHARDS: usize = 256;

/// Slot-indexed values in shared chunks.
#[derive(Debug)]
pub(crate) struct Chunks<T> {
    chunks: Vec<Arc<[Option<T>]>>,
}

impl<T> Default for Chunks<T> {
    fn default() -> Self {
        Chunks { chunks: Vec::new() }
    }
}

impl<T> Clone for Chunks<T> {
    fn clone(&self) -> Self {
        Chunks {
            chunks: self.chunks.clone(),
        }
    }
}

impl<T: Clone> Chunks<T> {
    /// The value in `slot`.
    #[inline]
    pub(crate) fn get(&self, slot: u32) -> Option<&T> {
        let slot = slot as usize;
        self.chunks.get(slot / CHUNK)?.get(slot % CHUNK)?.as_ref()
    }

    /// Sets (or clears) `slot`, growing as needed.
    pub(crate) fn set(&mut self, slot: u32, value: Option<T>) {
        let slot = slot as usize;
        while self.chunks.len() <= slot / CHUNK {
            self.chunks.push(vec![None; CHUNK].into());
        }
        if let Some(chunk) = self.chunks.get_mut(slot / CHUNK)
            && let Some(cell) = Arc::make_mut(chunk).get_mut(slot % CHUNK)
        {
            *cell = value;
        }
    }
}

/// One hash's entries (almost always one).
#[derive(Clone, Debug)]
enum Bucket<E> {
    One(E),
    Many(Vec<E>),
}

impl<E> Bucket<E> {
    fn as_slice(&self) -> &[E] {
        match self {
            Bucket::One(e) => std::slice::from_ref(e),
            Bucket::Many(v) => v,
        }
    }
}

type Shard<E> = HashMap<u64, Bucket<E>, IdentityBuild>;

/// Entries found by a 64-bit hash of their key (the caller hashes, and says which entry of a
/// hash is the one), in shared shards.
#[derive(Debug)]
pub(crate) struct SharedMap<E> {
    shards: Vec<Arc<Shard<E>>>,
    len: usize,
}

impl<E> Default for SharedMap<E> {
    fn default() -> Self {
        SharedMap {
            shards: Vec::new(),
            len: 0,
        }
    }
}

impl<E> Clone for SharedMap<E> {
    fn clone(&self) -> Self {
        SharedMap {
            shards: self.shards.clone(),
            len: self.len,
        }
    }
}

/// The shard of hash `h`: bits the hash table uses neither for its bucket index (the low bits)
/// nor for its tags (the top 7).
#[inline]
fn shard_of(h: u64) -> usize {
    ((h >> 48) as usize) % SHARDS
}

impl<E: Clone> SharedMap<E> {
    /// The entry of hash `h` that `is` accepts.
    #[inline]
    pub(crate) fn get(&self, h: u64, is: impl Fn(&E) -> bool) -> Option<&E> {
        self.shards
            .get(shard_of(h))?
            .get(&h)?
            .as_slice()
            .iter()
            .find(|e| is(e))
    }

    /// Inserts `entry` under `h`, replacing the entry `is` accepts.
    pub(crate) fn insert(&mut self, h: u64, entry: E, is: impl Fn(&E) -> bool) {
        if self.shards.is_empty() {
            self.shards = (0..SHARDS).map(|_| Arc::new(Shard::default())).collect();
        }
        let Some(shard) = self.shards.get_mut(shard_of(h)) else {
            return;
        };
        let shard = Arc::make_mut(shard);
        match shard.remove(&h) {
            None => {
                shard.insert(h, Bucket::One(entry));
                self.len += 1;
            }
            Some(Bucket::One(old)) if is(&old) => {
                shard.insert(h, Bucket::One(entry));
            }
            Some(Bucket::One(old)) => {
                shard.insert(h, Bucket::Many(vec![old, entry]));
                self.len += 1;
            }
            Some(Bucket::Many(mut v)) => {
                match v.iter_mut().find(|e| is(e)) {
                    Some(slot) => *slot = entry,
                    None => {
                        v.push(entry);
                        self.len += 1;
                    }
                }
                shard.insert(h, Bucket::Many(v));
            }
        }
    }

    /// Removes the entry of `h` that `is` accepts, returning it.
    pub(crate) fn remove(&mut self, h: u64, is: impl Fn(&E) -> bool) -> Option<E> {
        let shard = Arc::make_mut(self.shards.get_mut(shard_of(h))?);
        let (kept, removed) = match shard.remove(&h)? {
            Bucket::One(e) if is(&e) => (None, Some(e)),
            Bucket::One(e) => (Some(Bucket::One(e)), None),
            Bucket::Many(mut v) => {
                let removed = v.iter().position(&is).map(|i| v.remove(i));
                let kept = match v.len() {
                    0 => None,
                    1 => v.pop().map(Bucket::One),
                    _ => Some(Bucket::Many(v)),
                };
                (kept, removed)
            }
        };
        if let Some(b) = kept {
            shard.insert(h, b);
        }
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// How many entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// One chunk of a [`SortedList`]: (key, value) sorted by key.
type SortedChunk<V> = Arc<Vec<(Box<str>, V)>>;

/// Values sorted by a string key, in shared chunks (a two-level B-tree).
#[derive(Debug)]
pub(crate) struct SortedList<V> {
    chunks: Vec<SortedChunk<V>>,
    len: usize,
}

impl<V> Default for SortedList<V> {
    fn default() -> Self {
        SortedList {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<V> Clone for SortedList<V> {
    fn clone(&self) -> Self {
        SortedList {
            chunks: self.chunks.clone(),
            len: self.len,
        }
    }
}

impl<V: Clone> SortedList<V> {
    /// The chunk `key` belongs in: the last whose first key is ≤ `key` (or the first).
    fn chunk_of(&self, key: &str) -> usize {
        self.chunks
            .partition_point(|c| c.first().is_some_and(|(k, _)| &**k <= key))
            .saturating_sub(1)
    }

    /// Inserts or replaces the value of `key`.
    pub(crate) fn insert(&mut self, key: &str, value: V) {
        if self.chunks.is_empty() {
            self.chunks.push(Arc::new(Vec::new()));
        }
        let at = self.chunk_of(key);
        let Some(chunk) = self.chunks.get_mut(at) else {
            return;
        };
        let chunk = Arc::make_mut(chunk);
        match chunk.binary_search_by(|(k, _)| (**k).cmp(key)) {
            Ok(i) => {
                if let Some(e) = chunk.get_mut(i) {
                    e.1 = value;
                }
            }
            Err(i) => {
                chunk.insert(i, (key.into(), value));
                self.len += 1;
            }
        }
        if chunk.len() > 2 * CHUNK {
            let tail = chunk.split_off(CHUNK);
            self.chunks.insert(at + 1, Arc::new(tail));
        }
    }

    /// Removes `key`.
    pub(crate) fn remove(&mut self, key: &str) {
        let at = self.chunk_of(key);
        let Some(chunk) = self.chunks.get_mut(at) else {
            return;
        };
        if let Ok(i) = chunk.binary_search_by(|(k, _)| (**k).cmp(key)) {
            Arc::make_mut(chunk).remove(i);
            self.len -= 1;
            if chunk.is_empty() {
                self.chunks.remove(at);
            }
        }
    }

    /// Every (key, value), sorted by key.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.chunks
            .iter()
            .flat_map(|c| c.iter().map(|(k, v)| (&**k, v)))
    }

    /// How many values.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_share_what_a_write_does_not_touch() {
        let mut a: Chunks<u32> = Chunks::default();
        for i in 0..200 {
            a.set(i, Some(i * 2));
        }
        let mut b = a.clone();
        b.set(5, None);
        b.set(300, Some(1));
        assert_eq!(a.get(5), Some(&10));
        assert_eq!(b.get(5), None);
        assert_eq!(b.get(300), Some(&1));
        assert_eq!(a.get(300), None);
        assert_eq!(b.get(199), Some(&398));
        assert!(
            Arc::ptr_eq(&a.chunks[2], &b.chunks[2]),
            "untouched chunk shared"
        );
        assert!(!Arc::ptr_eq(&a.chunks[0], &b.chunks[0]));
        assert_eq!(b.chunks.len(), 5);
    }

    #[test]
    fn shared_map_keeps_colliding_entries_apart() {
        let mut m: SharedMap<(&str, u32)> = SharedMap::default();
        // Same hash, different keys: both kept, each found by its key.
        m.insert(7, ("a", 1), |e| e.0 == "a");
        m.insert(7, ("b", 2), |e| e.0 == "b");
        m.insert(1 << 50, ("c", 3), |e| e.0 == "c");
        assert_eq!(m.len(), 3);
        let old = m.clone();
        m.insert(7, ("a", 10), |e| e.0 == "a");
        assert_eq!(m.get(7, |e| e.0 == "a"), Some(&("a", 10)));
        assert_eq!(old.get(7, |e| e.0 == "a"), Some(&("a", 1)));
        assert_eq!(m.remove(7, |e| e.0 == "b"), Some(("b", 2)));
        assert_eq!(m.get(7, |e| e.0 == "b"), None);
        assert_eq!(m.get(7, |e| e.0 == "a"), Some(&("a", 10)));
        assert_eq!(m.remove(7, |e| e.0 == "zzz"), None);
        assert_eq!(m.len(), 2);
        assert_eq!(old.len(), 3);
    }

    #[test]
    fn sorted_list_stays_sorted_across_splits() {
        let mut l: SortedList<usize> = SortedList::default();
        // Insert 1 000 keys in a scrambled order.
        for i in 0..1000_usize {
            let k = (i * 7919) % 1000;
            l.insert(&format!("k{k:04}"), k);
        }
        assert_eq!(l.len(), 1000);
        assert!(l.chunks.len() > 1, "split into chunks");
        let keys: Vec<&str> = l.iter().map(|(k, _)| k).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
        let before = l.clone();
        l.insert("k0500", 1);
        l.remove("k0000");
        l.remove("missing");
        assert_eq!(l.len(), 999);
        assert_eq!(before.len(), 1000);
        assert_eq!(
            l.iter().find(|(k, _)| *k == "k0500").map(|(_, v)| *v),
            Some(1)
        );
        assert_eq!(before.iter().next().map(|(k, _)| k), Some("k0000"));
        assert_ne!(l.iter().next().map(|(k, _)| k), Some("k0000"));
        assert!(!l.is_empty());
    }
}
