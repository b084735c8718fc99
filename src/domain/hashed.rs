//! A compact table keyed by 64-bit hashes: what a watchlist scan counts its employees, devices
//! and cursors by, so its memory follows how many distinct strings it met, never how long they
//! were.
//!
//! The keys are hashes of a hasher seeded at random per table ([`Hashes`]), so nobody can
//! choose strings that collide. The rule: two different strings whose 64-bit hashes are equal
//! count as one (among a million strings, the chance that any two collide is about 3 in 100
//! million).
//!
//! Open addressing with linear probing over plain arrays (a key array beside a value array,
//! no per-entry overhead), at most 7/8 full, growing by half (not doubling): a table costs
//! 1.14 to 1.71 times its keys and values (a doubling hash map, up to 2.3 times, plus its
//! control bytes).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};

/// The hasher of one table: seeded at random, so its hashes cannot be predicted.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hashes(RandomState);

impl Hashes {
    /// The hash of `value`, never 0 (the table's empty slot).
    pub(crate) fn of<T: Hash + ?Sized>(&self, value: &T) -> u64 {
        self.0.hash_one(value).max(1)
    }
}

/// Values of type `V` by 64-bit key (a [`Hashes`] hash, never 0). `Table<()>` is a set.
#[derive(Debug, Clone)]
pub(crate) struct Table<V> {
    /// 0: an empty slot.
    keys: Vec<u64>,
    values: Vec<V>,
    len: usize,
}

impl<V: Copy + Default> Default for Table<V> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl<V: Copy + Default> Table<V> {
    /// The fewest slots a table has.
    const MIN_SLOTS: usize = 16;

    /// An empty table with room for `entries` before it grows.
    pub(crate) fn with_capacity(entries: usize) -> Self {
        let slots = entries
            .saturating_add(entries / 7)
            .saturating_add(1)
            .max(Self::MIN_SLOTS);
        Self {
            keys: vec![0; slots],
            values: vec![V::default(); slots],
            len: 0,
        }
    }

    /// How many keys it holds.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The value of `key`, if it is held.
    pub(crate) fn get(&self, key: u64) -> Option<&V> {
        let slot = self.slot(key);
        (self.keys[slot] == key).then(|| &self.values[slot])
    }

    /// The value of `key`, a default one inserted first if it was not held; and whether it was
    /// inserted.
    pub(crate) fn entry(&mut self, key: u64) -> (&mut V, bool) {
        debug_assert_ne!(key, 0, "0 marks an empty slot");
        if (self.len + 1) * 8 > self.keys.len() * 7 {
            self.grow();
        }
        let slot = self.slot(key);
        let inserted = self.keys[slot] == 0;
        if inserted {
            self.keys[slot] = key;
            self.len += 1;
        }
        (&mut self.values[slot], inserted)
    }

    /// The values held, in no order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.keys
            .iter()
            .zip(&self.values)
            .filter(|(key, _)| **key != 0)
            .map(|(_, value)| value)
    }

    /// Inserts `key`; whether it was not held.
    pub(crate) fn insert(&mut self, key: u64) -> bool {
        self.entry(key).1
    }

    /// The slot holding `key`, or the empty one where it would go.
    fn slot(&self, key: u64) -> usize {
        let slots = self.keys.len();
        // The hash's high bits pick the first slot (the keys are uniform).
        let mut slot = ((u128::from(key) * slots as u128) >> 64) as usize;
        while self.keys[slot] != key && self.keys[slot] != 0 {
            slot = if slot + 1 == slots { 0 } else { slot + 1 };
        }
        slot
    }

    /// Half as many slots again, every key moved.
    fn grow(&mut self) {
        let slots = self.keys.len() + self.keys.len() / 2;
        let keys = std::mem::replace(&mut self.keys, vec![0; slots]);
        let values = std::mem::replace(&mut self.values, vec![V::default(); slots]);
        for (key, value) in keys.into_iter().zip(values).filter(|(key, _)| *key != 0) {
            let slot = self.slot(key);
            self.keys[slot] = key;
            self.values[slot] = value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_counts_by_key_and_grows_as_keys_arrive() {
        let hashes = Hashes::default();
        let mut counts: Table<u32> = Table::with_capacity(0);
        for n in 0..10_000u32 {
            for _ in 0..=(n % 3) {
                *counts.entry(hashes.of(&n)).0 += 1;
            }
        }
        assert_eq!(counts.len(), 10_000);
        for n in 0..10_000u32 {
            assert_eq!(counts.get(hashes.of(&n)), Some(&(n % 3 + 1)), "{n}");
        }
        assert_eq!(counts.get(hashes.of(&10_000u32)), None);
        assert!(counts.keys.len() * 7 >= counts.len() * 8);

        let mut set: Table<()> = Table::with_capacity(4);
        assert!(set.insert(hashes.of("a")));
        assert!(!set.insert(hashes.of("a")));
        assert!(set.insert(hashes.of("b")));
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn hashes_are_seeded_per_hasher_and_never_0() {
        let (one, other) = (Hashes::default(), Hashes::default());
        assert_eq!(one.of("x"), one.of("x"));
        assert_ne!(one.of("x"), other.of("x"));
        assert_ne!(one.of(""), 0);
    }
}
