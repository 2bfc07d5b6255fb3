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
//! 8-byte slots finds them. Keys are two independent 64-bit hashes (one keyed at
//! random per process), so a collision would need 128 bits to agree: about 48 bytes
//! per id.
//!
//! The table is open-addressed with linear probing and at most half full; a slot
//! holds an entry's sequence number and 31 bits of its key's keyed hash, which alone
//! place the slot, so growing the table reads no entry. A new id (the common case) is
//! looked for and placed within one cache line: a table of control bytes apart from
//! its slots (hashbrown's) reads one line and writes another, and with a window of
//! hundreds of thousands of ids both miss the cache.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use rustc_hash::FxHasher;

/// The longest dedup id, in bytes.
pub const MAX_DEDUP_ID_LEN: usize = 256;

/// The first 64 characters of `s`, to quote in an error.
pub(crate) fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A key: two independent hashes of (topic, dedup id), the second never zero (so an
/// `Option<Key>` takes no more room than a key, in every record a send builds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Key(u64, NonZeroU64);

/// The keyed hash of this process: the window is rebuilt from the log on every
/// open, so keys need not be stable, and random ones keep crafted ids from
/// colliding with others'.
fn keyed() -> &'static RandomState {
    static KEYED: OnceLock<RandomState> = OnceLock::new();
    KEYED.get_or_init(RandomState::new)
}

impl Key {
    /// Whether this is the key of (`topic`, `id`), to the first hash's 64 bits: a
    /// check that a key computed ahead of a send belongs to its message, at a
    /// fraction of the cost of computing the key again.
    pub fn is_of(self, topic: &str, id: &str) -> bool {
        let mut fx = FxHasher::default();
        joined(topic, id, |part| fx.write(part));
        fx.finish() == self.0
    }

    /// Hashes `topic`, a 0xff byte and `id` (neither contains 0xff, being UTF-8),
    /// fed to both hashers in one write where they fit a stack buffer.
    pub fn of(topic: &str, id: &str) -> Key {
        let mut fx = FxHasher::default();
        let mut sip = keyed().build_hasher();
        joined(topic, id, |part| {
            fx.write(part);
            sip.write(part);
        });
        Key(fx.finish(), NonZeroU64::MIN | sip.finish())
    }
}

/// Feeds `topic`, a 0xff byte and `id` to `write`: in one piece where they fit a
/// stack buffer.
#[inline(always)]
fn joined(topic: &str, id: &str, mut write: impl FnMut(&[u8])) {
    let (t, i) = (topic.as_bytes(), id.as_bytes());
    let mut buf = [0u8; 128];
    if let Some(joined) = buf.get_mut(..t.len() + 1 + i.len()) {
        joined[..t.len()].copy_from_slice(t);
        joined[t.len()] = 0xff;
        joined[t.len() + 1..].copy_from_slice(i);
        write(joined);
    } else {
        for part in [t, &[0xff], i] {
            write(part);
        }
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
    table: Slots,
}

impl Key {
    /// The slot tag: 31 bits of the keyed hash, and a low bit set so that no full
    /// slot is zero.
    fn tag(self) -> u32 {
        (self.1.get() >> 32) as u32 | 1
    }
}

/// Slots of `tag << 32 | seq`, 0 when empty (see the module docs).
#[derive(Default)]
struct Slots {
    slots: Vec<u64>,
    len: usize,
    /// Where `slots` is, for producers' prefetches.
    hint: Arc<SlotsHint>,
}

/// Where the table's slots are, published for a producer to start loading the slot
/// of its id before it takes the engine's lock: with a window of many ids the slot
/// is far from every cache, and the load would otherwise wait under the lock.
#[derive(Default)]
pub(crate) struct SlotsHint {
    addr: AtomicUsize,
    mask: AtomicUsize,
}

impl SlotsHint {
    /// Starts loading the cache line where the probe for `key` begins (nothing while
    /// there is no table yet). A hint only: read without the lock, the table may have
    /// grown since, and a prefetch of an address no longer the table's costs nothing
    /// but itself.
    #[inline]
    pub fn prefetch_key(&self, key: Key) {
        let addr = self.addr.load(Relaxed);
        if addr == 0 {
            return;
        }
        let home = Slots::home(key.tag(), self.mask.load(Relaxed));
        let at = addr.wrapping_add(home * 8);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint that reads nothing the program sees and never
        // faults, whatever the address; SSE is part of every x86_64 processor.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at as *const i8)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = at;
    }
}

impl Slots {
    /// The slot a tag's probe starts at.
    #[inline]
    fn home(tag: u32, mask: usize) -> usize {
        (tag >> 1) as usize & mask
    }

    /// The slot holding `tag` whose sequence number `is_it` accepts, as `Ok((slot,
    /// seq))`; else `Err` of the empty slot ending the probe (None: no table yet).
    #[inline]
    fn find(
        &self,
        tag: u32,
        mut is_it: impl FnMut(u32) -> bool,
    ) -> Result<(usize, u32), Option<usize>> {
        let mask = self.slots.len().wrapping_sub(1);
        if self.slots.is_empty() {
            return Err(None);
        }
        let mut i = Slots::home(tag, mask);
        loop {
            let s = self.slots[i];
            if s == 0 {
                return Err(Some(i));
            }
            if (s >> 32) as u32 == tag && is_it(s as u32) {
                return Ok((i, s as u32));
            }
            i = (i + 1) & mask;
        }
    }

    /// Places `tag` and `seq` at `vacant`, the empty slot that ended a probe for
    /// them (when the table has room for one more: else anywhere it belongs).
    #[inline]
    fn insert(&mut self, tag: u32, seq: u32, vacant: Option<usize>) {
        let slot = (tag as u64) << 32 | seq as u64;
        match vacant {
            Some(i) if (self.len + 1) * 2 <= self.slots.len() => self.slots[i] = slot,
            _ => {
                self.grow();
                let mask = self.slots.len() - 1;
                let mut i = Slots::home(tag, mask);
                while self.slots[i] != 0 {
                    i = (i + 1) & mask;
                }
                self.slots[i] = slot;
            }
        }
        self.len += 1;
    }

    /// Doubles the table when one more slot would fill more than half of it.
    #[inline(never)]
    fn grow(&mut self) {
        if (self.len + 1) * 2 <= self.slots.len() {
            return;
        }
        let size = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, zeroed_slots(size));
        let mask = size - 1;
        for s in old.into_iter().filter(|s| *s != 0) {
            let mut i = Slots::home((s >> 32) as u32, mask);
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = s;
        }
        self.hint.addr.store(self.slots.as_ptr() as usize, Relaxed);
        self.hint.mask.store(mask, Relaxed);
    }

    /// Empties slot `i`, moving back the slots after it that may take its place, so
    /// that every slot stays reachable from its home without crossing an empty one.
    fn remove(&mut self, mut i: usize) {
        let mask = self.slots.len() - 1;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let s = self.slots[j];
            if s == 0 {
                break;
            }
            // `s` may move to `i` when `i` lies between its home and `j`.
            let home = Slots::home((s >> 32) as u32, mask);
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(i) & mask {
                self.slots[i] = s;
                i = j;
            }
        }
        self.slots[i] = 0;
        self.len -= 1;
    }
}

/// `size` empty slots. A large table is asked to be backed by huge pages (Linux): a
/// new id's probe lands anywhere in it, and with 4 KiB pages each probe of a table
/// of megabytes also misses the TLB, which costs as much as the cache miss (most
/// under a hypervisor, whose page walks are two-level).
fn zeroed_slots(size: usize) -> Vec<u64> {
    // A large zeroed allocation is fresh pages no one has touched yet: advised
    // before the first probe touches them, they are backed by huge ones.
    let slots: Vec<u64> = vec![0; size];
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = size * std::mem::size_of::<u64>();
        if bytes >= 2 * HUGE {
            // The whole huge pages inside the allocation.
            let start = (slots.as_ptr() as usize).next_multiple_of(HUGE);
            let end = (slots.as_ptr() as usize + bytes) & !(HUGE - 1);
            if end > start {
                // SAFETY: the range lies inside this allocation, which nothing else
                // uses; MADV_HUGEPAGE changes how its pages are backed, never
                // their contents, and a refusal is harmless.
                unsafe {
                    libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE)
                };
            }
        }
    }
    slots
}

impl DedupWindow {
    pub fn new(window_ms: u64) -> DedupWindow {
        DedupWindow {
            window_ms,
            ..DedupWindow::default()
        }
    }

    /// Where the table is, for producers' prefetches.
    pub fn hint(&self) -> Arc<SlotsHint> {
        self.table.hint.clone()
    }

    /// Lets go of every id (a closed store); producers' prefetches stop.
    pub fn clear(&mut self) {
        self.entries = VecDeque::new();
        self.table.slots = Vec::new();
        self.table.len = 0;
        self.table.hint.addr.store(0, Relaxed);
    }

    fn at(&self, seq: u32) -> &Entry {
        &self.entries[seq.wrapping_sub(self.first) as usize]
    }

    /// The slot and sequence number of `key`'s entry, or the empty slot where it
    /// would go.
    #[inline]
    fn find(&self, key: Key) -> Result<(usize, u32), Option<usize>> {
        let (entries, first) = (&self.entries, self.first);
        self.table.find(key.tag(), |seq| {
            entries[seq.wrapping_sub(first) as usize].key == key
        })
    }

    /// Drops what the window passed at `now` (on every send: the common case, nothing
    /// passed, is one comparison, inlined).
    #[inline]
    pub fn expire(&mut self, now: u64) {
        let window_ms = self.window_ms;
        if let Some(e) = self.entries.front() {
            if e.store_ts.saturating_add(window_ms) <= now {
                self.expire_passed(now);
            }
        }
    }

    /// `expire` once the oldest entry has passed.
    #[inline(never)]
    fn expire_passed(&mut self, now: u64) {
        while let Some(e) = self.entries.front() {
            if e.store_ts.saturating_add(self.window_ms) > now {
                break;
            }
            let (tag, seq) = (e.key.tag(), self.first);
            // Its slot, unless a later entry of its key took over.
            if let Ok((i, _)) = self.table.find(tag, |s| s == seq) {
                self.table.remove(i);
            }
            self.entries.pop_front();
            self.first = self.first.wrapping_add(1);
        }
    }

    /// The first record of `key` if it is inside the window at `now`.
    pub fn get(&self, key: Key, now: u64) -> Option<u64> {
        let (_, seq) = self.find(key).ok()?;
        let e = self.at(seq);
        (e.phys != u64::MAX && e.store_ts.saturating_add(self.window_ms) > now).then_some(e.phys)
    }

    /// The record at `phys`, stored at `store_ts`, carries `key`: recorded unless the
    /// key is already inside the window.
    pub fn put(&mut self, key: Key, phys: u64, store_ts: u64) {
        if self.window_ms == 0 {
            return;
        }
        self.expire(store_ts);
        let vacant = match self.find(key) {
            Ok((i, seq)) => {
                let e = self.at(seq);
                if e.phys != u64::MAX && e.store_ts.saturating_add(self.window_ms) > store_ts {
                    return;
                }
                // A given-back or expired entry of the same key: forget it.
                self.table.remove(i);
                None
            }
            Err(vacant) => vacant,
        };
        let seq = self.first.wrapping_add(self.entries.len() as u32);
        self.entries.push_back(Entry {
            key,
            phys,
            store_ts,
        });
        self.table.insert(key.tag(), seq, vacant);
    }

    /// The record at `phys` (a half message rolled back) gives its key back.
    pub fn release(&mut self, key: Key, phys: u64) {
        let Ok((_, seq)) = self.find(key) else { return };
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

    /// What the window must answer, kept the plain way: the latest record of each key
    /// (its offset, store time, and whether it was given back).
    #[derive(Default)]
    struct Model {
        window_ms: u64,
        records: std::collections::HashMap<Key, (u64, u64, bool)>,
    }

    impl Model {
        fn live(&self, key: Key, now: u64) -> Option<u64> {
            let &(phys, ts, given_back) = self.records.get(&key)?;
            (!given_back && ts + self.window_ms > now).then_some(phys)
        }
        fn put(&mut self, key: Key, phys: u64, ts: u64) {
            if self.live(key, ts).is_none() {
                self.records.insert(key, (phys, ts, false));
            }
        }
        fn release(&mut self, key: Key, phys: u64) {
            if let Some(r) = self.records.get_mut(&key).filter(|r| r.0 == phys) {
                r.2 = true;
            }
        }
    }

    proptest::proptest! {
        /// Any mix of new and repeated ids, give-backs, and time passing (slowly, or
        /// past the whole window): the window answers as the model does, through the
        /// table's growth and the removals that shift its slots back.
        #[test]
        fn the_window_answers_as_a_plain_map_would(
            ops in proptest::collection::vec((0u8..8, 0u32..300, 0u64..40), 1..3000),
        ) {
            let window_ms = 500;
            let mut w = DedupWindow::new(window_ms);
            let mut m = Model { window_ms, ..Model::default() };
            let (mut now, mut phys) = (0u64, 0u64);
            for (op, id, step) in ops {
                let key = Key::of("t", &id.to_string());
                match op {
                    0 => now += step * 20,
                    1 => {
                        let p = m.records.get(&key).map_or(u64::MAX - 1, |r| r.0);
                        w.release(key, p);
                        m.release(key, p);
                    }
                    _ => {
                        now += step % 3;
                        phys += 1;
                        w.put(key, phys, now);
                        m.put(key, phys, now);
                    }
                }
                proptest::prop_assert_eq!(w.get(key, now), m.live(key, now), "id {}", id);
            }
            for id in 0..300u32 {
                let key = Key::of("t", &id.to_string());
                proptest::prop_assert_eq!(w.get(key, now), m.live(key, now), "id {}", id);
            }
            proptest::prop_assert!(w.table.len * 2 <= w.table.slots.len());
            proptest::prop_assert!(w.table.len <= w.entries.len());
        }
    }
}
