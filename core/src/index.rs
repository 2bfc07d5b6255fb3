//! The key index: `(topic, key)` -> CommitLog offsets, for `query(topic, key)`.
//! Message ids need no index: an id carries its record's offset.
//!
//! The index is rebuilt on every open by the same CommitLog scan that finds the end
//! (a 1 GiB store opens in well under a second, see BENCHMARKS.md), so it is never
//! out of step with the log after a crash. Slots are keyed by a hash; callers check
//! the exact key on the record, so collisions never leak.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

#[derive(Default)]
pub(crate) struct KeyIndex {
    slots: HashMap<u64, Vec<u64>>,
    hasher: std::collections::hash_map::RandomState,
    entries: usize,
}

impl KeyIndex {
    fn slot(&self, topic: &str, key: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write(topic.as_bytes());
        h.write_u8(b'#');
        h.write(key.as_bytes());
        h.finish()
    }

    /// Records that the record at `phys` of `topic` has `key`. Offsets arrive in
    /// increasing order; a replayed one is ignored.
    pub fn put(&mut self, topic: &str, key: &str, phys: u64) {
        let slot = self.slot(topic, key);
        let list = self.slots.entry(slot).or_default();
        if list.last().is_none_or(|last| *last < phys) {
            list.push(phys);
            self.entries += 1;
        }
    }

    /// Candidate offsets for `(topic, key)`, oldest first (may include collisions).
    pub fn candidates(&self, topic: &str, key: &str) -> &[u64] {
        self.slots
            .get(&self.slot(topic, key))
            .map_or(&[], Vec::as_slice)
    }

    /// Forgets offsets below `min` (retention) or at or beyond `end` (truncation).
    pub fn retain_range(&mut self, min: u64, end: u64) {
        let mut entries = 0;
        self.slots.retain(|_, list| {
            list.retain(|o| *o >= min && *o < end);
            entries += list.len();
            !list.is_empty()
        });
        self.entries = entries;
    }
}
