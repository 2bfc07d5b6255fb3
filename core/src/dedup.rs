//! The dedup window: which `(topic, dedup_id)` pairs were sent within the last
//! `dedup_window` (broker clock), and where their first record is, so a send that
//! repeats one stores nothing and answers the first send's result (NATS's Msg-Id
//! window, Kafka's idempotent producer).
//!
//! Dispatch fills it from every record carrying `DEDUP_ID`, live and on replay, so
//! it survives restarts and crashes with no file of its own. A key is recorded once:
//! the engine's later copies of a message (a delay coming due, a commit, a retry)
//! keep the first record. A rolled-back half message gives its key back.
//!
//! Memory is bounded by the window: entries live in append order (store times never
//! decrease along the log), the oldest leave as the window passes, and a table of
//! 8-byte slots (a position and 32 bits of the keyed hash, enough to grow the
//! table without reading entries) finds them. Keys are two independent 64-bit
//! hashes (one keyed at random per process), so a collision would need 128 bits to
//! agree: about 53 bytes per id.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

use hashbrown::HashTable;
use rustc_hash::FxHasher;

/// The longest dedup id, in bytes.
pub const MAX_DEDUP_ID_LEN: usize = 256;

/// The first 64 characters of `s`, to quote in an error.
pub(crate) fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A key: two independent hashes of (topic, dedup id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Key(u64, u64);

/// The keyed hash of this process: the window is rebuilt from the log on every
/// open, so keys need not be stable, and random ones keep crafted ids from
/// colliding with others'.
fn keyed() -> &'static RandomState {
    static KEYED: OnceLock<RandomState> = OnceLock::new();
    KEYED.get_or_init(RandomState::new)
}

impl Key {
    /// Hashes `topic`, a 0xff byte and `id` (neither contains 0xff, being UTF-8),
    /// fed to both hashers in one write where they fit a stack buffer.
    pub fn of(topic: &str, id: &str) -> Key {
        let mut fx = FxHasher::default();
        let mut sip = keyed().build_hasher();
        let (t, i) = (topic.as_bytes(), id.as_bytes());
        let mut buf = [0u8; 128];
        if let Some(joined) = buf.get_mut(..t.len() + 1 + i.len()) {
            joined[..t.len()].copy_from_slice(t);
            joined[t.len()] = 0xff;
            joined[t.len() + 1..].copy_from_slice(i);
            fx.write(joined);
            sip.write(joined);
        } else {
            for part in [t, &[0xff], i] {
                fx.write(part);
                sip.write(part);
            }
        }
        Key(fx.finish(), sip.finish())
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: Key,
    /// The first record's CommitLog offset; `u64::MAX` once given back.
    phys: u64,
    store_ts: u64,
}

/// The ids inside the window (see the module docs).
#[derive(Default)]
pub(crate) struct DedupWindow {
    window_ms: u64,
    /// In append order; `entries[i]` has sequence number `first + i` (wrapping).
    entries: VecDeque<Entry>,
    first: u32,
    /// Live entries by key.
    table: HashTable<Slot>,
}

/// A table slot: an entry's sequence number and 32 bits of its key's keyed hash,
/// which alone place the slot, so growing the table reads no entry.
#[derive(Debug, Clone, Copy)]
struct Slot {
    seq: u32,
    tag: u32,
}

impl Key {
    fn tag(self) -> u32 {
        (self.1 >> 32) as u32
    }
}

/// The table's hash of a slot with `tag` (its top bits pick the control byte, its
/// low bits the bucket).
fn hash_of(tag: u32) -> u64 {
    (tag as u64) << 32 | tag as u64
}

impl DedupWindow {
    pub fn new(window_ms: u64) -> DedupWindow {
        DedupWindow {
            window_ms,
            ..DedupWindow::default()
        }
    }

    fn at(&self, seq: u32) -> &Entry {
        &self.entries[seq.wrapping_sub(self.first) as usize]
    }

    fn find(&self, key: Key) -> Option<u32> {
        let (entries, first, tag) = (&self.entries, self.first, key.tag());
        self.table
            .find(hash_of(tag), |s| {
                s.tag == tag && entries[s.seq.wrapping_sub(first) as usize].key == key
            })
            .map(|s| s.seq)
    }

    /// Drops what the window passed at `now`.
    pub fn expire(&mut self, now: u64) {
        while let Some(e) = self.entries.front() {
            if e.store_ts.saturating_add(self.window_ms) > now {
                break;
            }
            let (key, seq) = (e.key, self.first);
            if let Ok(found) = self.table.find_entry(hash_of(key.tag()), |s| s.seq == seq) {
                found.remove();
            }
            self.entries.pop_front();
            self.first = self.first.wrapping_add(1);
        }
    }

    /// The first record of `key` if it is inside the window at `now`.
    pub fn get(&self, key: Key, now: u64) -> Option<u64> {
        let e = self.at(self.find(key)?);
        (e.phys != u64::MAX && e.store_ts.saturating_add(self.window_ms) > now).then_some(e.phys)
    }

    /// The record at `phys`, stored at `store_ts`, carries `key`: recorded unless the
    /// key is already inside the window.
    pub fn put(&mut self, key: Key, phys: u64, store_ts: u64) {
        if self.window_ms == 0 {
            return;
        }
        self.expire(store_ts);
        let (entries, first, window_ms) = (&self.entries, self.first, self.window_ms);
        let tag = key.tag();
        let found = self.table.find_entry(hash_of(tag), |s| {
            s.tag == tag && entries[s.seq.wrapping_sub(first) as usize].key == key
        });
        if let Ok(found) = found {
            let e = &entries[found.get().seq.wrapping_sub(first) as usize];
            if e.phys != u64::MAX && e.store_ts.saturating_add(window_ms) > store_ts {
                return;
            }
            // A given-back or expired entry of the same key: forget it.
            found.remove();
        }
        let seq = self.first.wrapping_add(self.entries.len() as u32);
        self.entries.push_back(Entry {
            key,
            phys,
            store_ts,
        });
        self.table
            .insert_unique(hash_of(tag), Slot { seq, tag }, |s| hash_of(s.tag));
    }

    /// The record at `phys` (a half message rolled back) gives its key back.
    pub fn release(&mut self, key: Key, phys: u64) {
        let Some(seq) = self.find(key) else { return };
        let i = seq.wrapping_sub(self.first) as usize;
        if self.entries[i].phys == phys {
            self.entries[i].phys = u64::MAX;
        }
    }

    /// Ids inside the window (or given back and not yet expired).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_dedup_inside_the_window_and_not_from_its_end() {
        let mut w = DedupWindow::new(1000);
        let k = Key::of("t", "pay-42");
        w.put(k, 10, 5000);
        assert_eq!(w.get(k, 5999), Some(10));
        assert_eq!(
            w.get(k, 6000),
            None,
            "the window ends 1000 ms after the store"
        );
        assert_eq!(w.get(Key::of("u", "pay-42"), 5500), None, "per topic");
        // A later copy keeps the first record.
        w.put(k, 99, 5500);
        assert_eq!(w.get(k, 5600), Some(10));
        // After the window a new record takes the key.
        w.put(k, 200, 6000);
        assert_eq!(w.get(k, 6100), Some(200));
        assert_eq!(w.len(), 1, "the expired entry left");
    }

    #[test]
    fn a_given_back_key_is_free_and_memory_follows_the_window() {
        let mut w = DedupWindow::new(1000);
        let k = Key::of("t", "x");
        w.put(k, 10, 0);
        w.release(k, 11);
        assert_eq!(w.get(k, 1), Some(10), "only its own record gives it back");
        w.release(k, 10);
        assert_eq!(w.get(k, 1), None);
        w.put(k, 12, 2);
        assert_eq!(w.get(k, 3), Some(12));
        for i in 0..100_000u64 {
            w.put(Key::of("t", &i.to_string()), 100 + i, i / 10);
        }
        assert!(
            w.len() <= 10_010,
            "{} entries for a 1000-ms window",
            w.len()
        );
        assert_eq!(w.get(Key::of("t", "99999"), 9_999), Some(100_099));
        assert_eq!(w.get(Key::of("t", "5"), 9_999), None);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut w = DedupWindow::new(10);
        w.first = u32::MAX - 2;
        for i in 0..8u64 {
            w.put(Key::of("t", &i.to_string()), i, i);
        }
        for i in 0..8u64 {
            let want = (i + 10 > 8).then_some(i);
            assert_eq!(w.get(Key::of("t", &i.to_string()), 8), want, "{i}");
        }
    }
}
