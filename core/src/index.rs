//! The key index: `(topic, key)` -> CommitLog offsets, for `query(topic, key)`, and
//! caller-given message ids (`UNIQ_KEY`) -> CommitLog offsets, for `get(id)`. The
//! engine's own ids need no index: such an id carries its record's offset.
//!
//! The index is rebuilt on every open by the same CommitLog scan that finds the end
//! (a 1 GiB store opens in well under a second, see BENCHMARKS.md), so it is never
//! out of step with the log after a crash. Entries are keyed by a 64-bit hash of
//! topic and key; callers check the exact key on the record, so collisions never
//! leak. Most keys name one message (an order id), so the first offset of a key is
//! stored inline and only repeats spill into a list: about 16 bytes per key.

use std::hash::{BuildHasher, Hasher};

use rustc_hash::FxBuildHasher;

/// (hash of topic and key, CommitLog offset) pairs: a sorted run plus recent
/// appends, merged when the recent part grows. 16 bytes per key, no per-key
/// allocation.
#[derive(Default)]
pub(crate) struct KeyIndex {
    sorted: Vec<(u64, u64)>,
    recent: Vec<(u64, u64)>,
}

/// Where caller-given message ids are kept: no topic has this name.
const ID_SPACE: &str = "\u{0}id";

fn slot(topic: &str, key: &[u8]) -> u64 {
    let mut h = FxBuildHasher.build_hasher();
    h.write(topic.as_bytes());
    h.write_u8(b'#');
    h.write(key);
    h.finish()
}

impl KeyIndex {
    /// Records that the record at `phys` of `topic` has `key` (its bytes as the
    /// record holds them: a key is looked up by its text's bytes, so none need be
    /// checked as UTF-8 here).
    pub fn put(&mut self, topic: &str, key: &[u8], phys: u64) {
        self.recent.push((slot(topic, key), phys));
        if self.recent.len() > 65_536 + self.sorted.len() / 2 {
            self.merge();
        }
    }

    /// Records that the record at `phys` carries the caller-given message id `id`.
    pub fn put_id(&mut self, id: &[u8], phys: u64) {
        self.put(ID_SPACE, id, phys);
    }

    /// Candidate offsets of records with the caller-given id `id`, oldest first.
    pub fn ids(&self, id: &str) -> Vec<u64> {
        self.candidates(ID_SPACE, id)
    }

    /// Folds the recent entries into the sorted run: sorts them alone, then merges
    /// the two runs from the back in place (linear in the run, where sorting it
    /// all again would cost a log factor on every entry at every merge). The run
    /// grows by exactly what it takes, with no spare capacity kept.
    pub fn merge(&mut self) {
        if self.recent.is_empty() {
            return;
        }
        self.recent.sort_unstable();
        let (old, new) = (self.sorted.len(), self.recent.len());
        self.sorted.reserve_exact(new);
        self.sorted.resize(old + new, (0, 0));
        let (mut i, mut j) = (old, new);
        for k in (0..old + new).rev() {
            if j == 0 {
                break;
            }
            if i > 0 && self.sorted[i - 1] > self.recent[j - 1] {
                self.sorted[k] = self.sorted[i - 1];
                i -= 1;
            } else {
                self.sorted[k] = self.recent[j - 1];
                j -= 1;
            }
        }
        self.recent.clear();
        self.sorted.dedup();
    }

    /// Candidate offsets for `(topic, key)`, oldest first (may include collisions).
    pub fn candidates(&self, topic: &str, key: &str) -> Vec<u64> {
        let s = slot(topic, key.as_bytes());
        let from = self.sorted.partition_point(|e| e.0 < s);
        let mut out: Vec<u64> = self.sorted[from..]
            .iter()
            .take_while(|e| e.0 == s)
            .map(|e| e.1)
            .chain(self.recent.iter().filter(|e| e.0 == s).map(|e| e.1))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Forgets offsets below `min` (retention).
    pub fn retain_from(&mut self, min: u64) {
        self.sorted.retain(|e| e.1 >= min);
        self.recent.retain(|e| e.1 >= min);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_every_offset_in_order_and_retention_trims() {
        let mut ix = KeyIndex::default();
        ix.put("t", b"a", 10);
        ix.put("t", b"a", 20);
        ix.put("t", b"a", 20);
        ix.put("t", b"a", 30);
        ix.put("u", b"a", 15);
        assert_eq!(ix.candidates("t", "a"), vec![10, 20, 30]);
        assert_eq!(ix.candidates("u", "a"), vec![15]);
        assert!(ix.candidates("t", "b").is_empty());
        ix.retain_from(20);
        assert_eq!(ix.candidates("t", "a"), vec![20, 30]);
        assert!(ix.candidates("u", "a").is_empty());
    }

    #[test]
    fn merges_keep_the_run_sorted_and_lose_nothing() {
        // 300 k puts cross several merges (the first past 65,536 recent entries);
        // every key keeps all its offsets, in order, before and after a last merge.
        let mut ix = KeyIndex::default();
        let keys = 7_001u64;
        for phys in 0..300_000u64 {
            ix.put("t", format!("k{}", (phys * 7_919) % keys).as_bytes(), phys);
        }
        assert!(ix.sorted.len() > 65_536, "a merge ran");
        let check = |ix: &KeyIndex| {
            for k in (0..keys).step_by(97) {
                let want: Vec<u64> = (0..300_000u64)
                    .filter(|p| (p * 7_919) % keys == k)
                    .collect();
                assert_eq!(ix.candidates("t", &format!("k{k}")), want, "key k{k}");
            }
        };
        check(&ix);
        ix.merge();
        assert!(ix.recent.is_empty());
        assert!(
            ix.sorted.windows(2).all(|w| w[0] < w[1]),
            "sorted, no repeats"
        );
        assert_eq!(ix.sorted.len(), 300_000);
        check(&ix);
    }

    #[test]
    fn ids_live_apart_from_keys() {
        let mut ix = KeyIndex::default();
        ix.put_id(b"m1", 10);
        ix.put("t", b"m1", 20);
        ix.put_id(b"m1", 30);
        assert_eq!(ix.ids("m1"), vec![10, 30]);
        assert_eq!(ix.candidates("t", "m1"), vec![20]);
        assert!(ix.ids("m2").is_empty());
    }
}
