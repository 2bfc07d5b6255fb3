//! Progress of an owner (a clustering group, or one broadcasting consumer) on one
//! queue (RocketMQ's `ProcessQueue` and the broker's offset table in one): the read
//! cursor, the set of delivered-but-unacked offsets, and orderly state.
//!
//! Invariant: a queue's committed offset is its lowest unacked offset (or the cursor
//! when nothing is in flight), so a restart redelivers at most the unacked tail.

use std::collections::VecDeque;

/// Progress of one owner on one queue.
#[derive(Debug, Clone, Default)]
pub(crate) struct QueueProgress {
    /// The next queue offset to read.
    pub next: u64,
    /// Delivered, not yet acked.
    pub inflight: InFlight,
    /// Bumped when the queue changes hands or is reset; stale acks are ignored.
    pub epoch: u64,
    /// The consumer currently serving the queue.
    pub owner: Option<u64>,
    /// Orderly: the queue pauses until this time (broker clock) after a nack.
    pub suspend_until: u64,
    /// Orderly: failed deliveries of the message at `next`.
    pub orderly_retries: u32,
}

impl QueueProgress {
    pub fn committed(&self) -> u64 {
        self.inflight.first().unwrap_or(self.next)
    }

    /// Forgets what is in flight so it is delivered again from the committed offset.
    pub fn rewind(&mut self) {
        self.next = self.committed();
        self.inflight.clear();
        self.epoch += 1;
    }
}

/// Delivered-but-unacked queue offsets of one queue. Deliveries go out in offset
/// order, so this is a window from the lowest unacked offset with a flag per offset
/// (offsets skipped by a filter are simply not in flight): O(1) to deliver and ack.
#[derive(Debug, Clone, Default)]
pub(crate) struct InFlight {
    /// Offset of `flags[0]`.
    base: u64,
    /// Whether each offset from `base` is in flight; `flags[0]` always is.
    flags: VecDeque<bool>,
    len: usize,
}

impl InFlight {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The lowest offset in flight.
    pub fn first(&self) -> Option<u64> {
        (self.len > 0).then_some(self.base)
    }

    pub fn contains(&self, qo: u64) -> bool {
        qo >= self.base
            && self
                .flags
                .get((qo - self.base) as usize)
                .copied()
                .unwrap_or(false)
    }

    /// Adds `qo` (normally above every offset in flight).
    pub fn insert(&mut self, qo: u64) {
        if self.len == 0 {
            self.flags.clear();
            self.base = qo;
        }
        while qo < self.base {
            self.flags.push_front(false);
            self.base -= 1;
        }
        let at = (qo - self.base) as usize;
        if at < self.flags.len() {
            if !self.flags[at] {
                self.flags[at] = true;
                self.len += 1;
            }
            return;
        }
        self.flags.resize(at, false);
        self.flags.push_back(true);
        self.len += 1;
    }

    /// Removes `qo`; false when it was not in flight.
    pub fn remove(&mut self, qo: u64) -> bool {
        if !self.contains(qo) {
            return false;
        }
        self.flags[(qo - self.base) as usize] = false;
        self.len -= 1;
        while self.flags.front() == Some(&false) {
            self.flags.pop_front();
            self.base += 1;
        }
        while self.flags.back() == Some(&false) {
            self.flags.pop_back();
        }
        true
    }

    pub fn clear(&mut self) {
        self.flags.clear();
        self.len = 0;
    }

    /// Forgets offsets below `min` (they were deleted by retention).
    pub fn drop_below(&mut self, min: u64) {
        while self.len > 0 && self.base < min {
            if self.flags.pop_front() == Some(true) {
                self.len -= 1;
            }
            self.base += 1;
        }
        while self.flags.front() == Some(&false) {
            self.flags.pop_front();
            self.base += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_tracks_gaps_and_out_of_order_acks() {
        let mut f = InFlight::default();
        for qo in [3, 4, 6, 9] {
            f.insert(qo);
        }
        assert_eq!(f.first(), Some(3));
        assert!(f.contains(6) && !f.contains(5) && !f.contains(10));
        assert!(f.remove(4));
        assert!(!f.remove(4));
        assert_eq!(f.first(), Some(3));
        assert!(f.remove(3));
        assert_eq!(f.first(), Some(6));
        assert!(f.remove(9));
        f.insert(12);
        f.drop_below(7);
        assert_eq!(f.first(), Some(12));
        assert!(f.remove(12));
        assert!(f.is_empty());
        f.insert(20);
        assert_eq!(f.first(), Some(20));
    }

    #[test]
    fn committed_is_the_lowest_unacked() {
        let mut p = QueueProgress {
            next: 10,
            ..QueueProgress::default()
        };
        assert_eq!(p.committed(), 10);
        p.inflight.insert(5);
        p.inflight.insert(7);
        assert_eq!(p.committed(), 5);
        p.rewind();
        assert_eq!((p.next, p.epoch), (5, 1));
    }
}

/// Progress of one owner (group, or group@consumer) on one (topic, queue).
pub(crate) type ProgressKey = (String, String, u32);

/// Progress entries in stable slots, so a receipt can name its slot and an ack needs
/// no hashing; slots are never removed (progress outlives consumers).
#[derive(Debug, Default)]
pub(crate) struct ProgressTable {
    keys: Vec<ProgressKey>,
    slots: Vec<QueueProgress>,
    index: rustc_hash::FxHashMap<ProgressKey, usize>,
    /// Slots whose owner was removed, for reuse (a receipt naming one is refused
    /// by its consumer handle, never matched to the new owner).
    free: Vec<usize>,
}

impl ProgressTable {
    pub fn slot(&self, key: &ProgressKey) -> Option<usize> {
        self.index.get(key).copied()
    }
    pub fn get(&self, key: &ProgressKey) -> Option<&QueueProgress> {
        self.slot(key).map(|s| &self.slots[s])
    }
    pub fn get_mut(&mut self, key: &ProgressKey) -> Option<&mut QueueProgress> {
        self.slot(key).map(|s| &mut self.slots[s])
    }
    pub fn insert(&mut self, key: ProgressKey, p: QueueProgress) -> usize {
        if let Some(s) = self.slot(&key) {
            self.slots[s] = p;
            return s;
        }
        if let Some(s) = self.free.pop() {
            self.index.insert(key.clone(), s);
            self.keys[s] = key;
            self.slots[s] = p;
            return s;
        }
        let s = self.slots.len();
        self.index.insert(key.clone(), s);
        self.keys.push(key);
        self.slots.push(p);
        s
    }
    pub fn at(&self, slot: usize) -> Option<&QueueProgress> {
        self.slots.get(slot)
    }
    pub fn at_mut(&mut self, slot: usize) -> Option<&mut QueueProgress> {
        self.slots.get_mut(slot)
    }
    pub fn values(&self) -> impl Iterator<Item = &QueueProgress> {
        self.slots.iter()
    }
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut QueueProgress> {
        self.slots.iter_mut()
    }
    /// Forgets every queue's progress of `owner` (a consumer that is gone for good).
    pub fn remove_owner(&mut self, owner: &str) {
        let gone: Vec<usize> = self
            .iter_slots()
            .filter(|(_, k)| k.0 == owner)
            .map(|(s, _)| s)
            .collect();
        for s in gone {
            self.index.remove(&self.keys[s]);
            self.slots[s] = QueueProgress::default();
            self.free.push(s);
        }
    }
    fn iter_slots(&self) -> impl Iterator<Item = (usize, &ProgressKey)> {
        self.keys
            .iter()
            .enumerate()
            .filter(|(s, k)| self.index.get(*k) == Some(s))
    }
    pub fn keys(&self) -> impl Iterator<Item = &ProgressKey> {
        self.iter_slots().map(|(_, k)| k)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&ProgressKey, &QueueProgress)> {
        self.iter_slots().map(|(s, k)| (k, &self.slots[s]))
    }
}
