//! Progress of an owner (a clustering group, or one broadcasting consumer) on one
//! queue (RocketMQ's `ProcessQueue` and the broker's offset table in one): the read
//! cursor, the set of delivered-but-unacked offsets, and orderly state.
//!
//! Invariant: a queue's committed offset is its lowest unacked offset (or the cursor
//! when nothing is in flight), so a restart redelivers at most the unacked tail.

use std::collections::{BTreeMap, VecDeque};

/// Progress of one owner on one queue.
#[derive(Debug, Clone, Default)]
pub(crate) struct QueueProgress {
    /// The next queue offset to read.
    pub next: u64,
    /// Delivered, not yet acked.
    pub inflight: InFlight,
    /// Bumped when the queue changes hands or is reset; stale acks are ignored.
    pub epoch: u64,
    /// The epoch of the last reset (or orderly nack): a delivery of an epoch from
    /// here on that a rebalance rewound is still the consumer's to ack (see
    /// `ConsumerGroups::ack_rewound`); one from before is not.
    pub reset_epoch: u64,
    /// The consumer currently serving the queue.
    pub owner: Option<u64>,
    /// Orderly: the queue pauses until this time (broker clock) after a nack.
    pub suspend_until: u64,
    /// Orderly: failed deliveries of the message at `next`.
    pub orderly_retries: u32,
    /// Offsets at or above `next` acked in atomic blocks before a crash (replayed):
    /// passed over, never delivered again.
    pub acked_ahead: std::collections::BTreeSet<u64>,
    /// Orderly: the member this queue was taken from while its delivery was unacked.
    /// That delivery stays its own to ack or nack; the new owner reads the queue only
    /// once it is settled (RocketMQ's queue lock), or from the committed offset if
    /// that member leaves first.
    pub held_by: Option<u64>,
}

impl QueueProgress {
    pub fn committed(&self) -> u64 {
        self.inflight.first().unwrap_or(self.next)
    }

    /// A progress starting over in a slot whose last epoch was `epoch`: no receipt
    /// of the slot's earlier use counts for it.
    fn after(epoch: u64) -> QueueProgress {
        QueueProgress {
            epoch: epoch + 1,
            reset_epoch: epoch + 1,
            ..QueueProgress::default()
        }
    }

    /// A reset: the epoch moves on and no earlier delivery counts any more.
    pub fn new_epoch(&mut self) {
        self.epoch += 1;
        self.reset_epoch = self.epoch;
    }

    /// Forgets what is in flight so it is delivered again from the committed offset;
    /// what was acked (or passed over by the filter) above that offset is kept in
    /// `acked_ahead`, so whoever reads the queue next passes over it.
    pub fn rewind(&mut self) {
        let committed = self.committed();
        for qo in committed..self.next {
            if !self.inflight.contains(qo) {
                self.acked_ahead.insert(qo);
            }
        }
        self.next = committed;
        self.inflight.clear();
        self.epoch += 1;
    }
}

/// Marks an offset of the window that is not in flight.
const NOT_IN_FLIGHT: u64 = u64::MAX;

/// Delivered-but-unacked queue offsets of one queue, with when each was delivered.
/// Deliveries go out in offset order and time, so this is a window from the lowest
/// unacked offset with a delivery time per offset (offsets skipped by a filter, or
/// acked, are not in flight): O(1) to deliver and ack, and the oldest delivery is
/// always the first.
#[derive(Debug, Clone, Default)]
pub(crate) struct InFlight {
    /// Offset of `at[0]`.
    base: u64,
    /// When each offset from `base` was delivered (broker clock), or
    /// `NOT_IN_FLIGHT`; `at[0]` is always in flight.
    at: VecDeque<u64>,
    len: usize,
}

impl InFlight {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The lowest offset in flight.
    pub fn first(&self) -> Option<u64> {
        (self.len > 0).then_some(self.base)
    }

    /// The lowest offset in flight and when it was delivered (the oldest delivery).
    pub fn oldest(&self) -> Option<(u64, u64)> {
        (self.len > 0).then(|| (self.base, self.at[0]))
    }

    /// When `qo` was delivered, if it is in flight.
    pub fn delivered_at(&self, qo: u64) -> Option<u64> {
        let i = usize::try_from(qo.checked_sub(self.base)?).ok()?;
        self.at.get(i).copied().filter(|t| *t != NOT_IN_FLIGHT)
    }

    pub fn contains(&self, qo: u64) -> bool {
        qo >= self.base
            && self
                .at
                .get((qo - self.base) as usize)
                .is_some_and(|t| *t != NOT_IN_FLIGHT)
    }

    /// Adds `qo`, delivered at `now` (normally above every offset in flight).
    pub fn insert(&mut self, qo: u64, now: u64) {
        let now = now.min(NOT_IN_FLIGHT - 1);
        if self.len == 0 {
            self.at.clear();
            self.base = qo;
        }
        while qo < self.base {
            self.at.push_front(NOT_IN_FLIGHT);
            self.base -= 1;
        }
        let i = (qo - self.base) as usize;
        if i < self.at.len() {
            if self.at[i] == NOT_IN_FLIGHT {
                self.len += 1;
            }
            self.at[i] = now;
            return;
        }
        self.at.resize(i, NOT_IN_FLIGHT);
        self.at.push_back(now);
        self.len += 1;
    }

    /// Removes `qo`; false when it was not in flight.
    pub fn remove(&mut self, qo: u64) -> bool {
        if !self.contains(qo) {
            return false;
        }
        self.at[(qo - self.base) as usize] = NOT_IN_FLIGHT;
        self.len -= 1;
        while self.at.front() == Some(&NOT_IN_FLIGHT) {
            self.at.pop_front();
            self.base += 1;
        }
        while self.at.back() == Some(&NOT_IN_FLIGHT) {
            self.at.pop_back();
        }
        true
    }

    pub fn clear(&mut self) {
        self.at.clear();
        self.len = 0;
    }

    /// Forgets offsets below `min` (they were deleted by retention).
    pub fn drop_below(&mut self, min: u64) {
        while self.len > 0 && self.base < min {
            if self.at.pop_front().is_some_and(|t| t != NOT_IN_FLIGHT) {
                self.len -= 1;
            }
            self.base += 1;
        }
        while self.at.front() == Some(&NOT_IN_FLIGHT) {
            self.at.pop_front();
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
            f.insert(qo, 100 + qo);
        }
        assert_eq!(f.oldest(), Some((3, 103)));
        assert_eq!(f.first(), Some(3));
        assert!(f.contains(6) && !f.contains(5) && !f.contains(10));
        assert!(f.remove(4));
        assert!(!f.remove(4));
        assert_eq!(f.first(), Some(3));
        assert!(f.remove(3));
        assert_eq!(f.first(), Some(6));
        assert_eq!(f.oldest(), Some((6, 106)));
        assert!(f.remove(9));
        f.insert(12, 200);
        f.drop_below(7);
        assert_eq!(f.first(), Some(12));
        assert!(f.remove(12));
        assert!(f.is_empty());
        f.insert(20, 300);
        assert_eq!(f.first(), Some(20));
    }

    #[test]
    fn committed_is_the_lowest_unacked() {
        let mut p = QueueProgress {
            next: 10,
            ..QueueProgress::default()
        };
        assert_eq!(p.committed(), 10);
        p.inflight.insert(5, 1);
        p.inflight.insert(7, 2);
        assert_eq!(p.committed(), 5);
        p.rewind();
        assert_eq!((p.next, p.epoch), (5, 1));
        // 6, 8 and 9 were acked: passed over by the next reader.
        assert_eq!(p.acked_ahead.iter().copied().collect::<Vec<_>>(), [6, 8, 9]);
    }
}

/// Progress of one owner (group, or group@consumer) on one (topic, queue).
pub(crate) type ProgressKey = (String, String, u32);

/// Whether `owner` is `group` or one of its broadcasting members (`group@consumer`).
pub(crate) fn of_group(owner: &str, group: &str) -> bool {
    owner
        .strip_prefix(group)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('@'))
}

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
    /// The slots of each (topic, owner), in order: a group's owners on a topic, an
    /// owner's or a topic's entries, without a scan of every entry.
    owners: BTreeMap<(String, String), Vec<usize>>,
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
        let s = match self.free.pop() {
            Some(s) => {
                // Receipts naming the slot's last use never count for this one.
                let fresh = QueueProgress::after(self.slots[s].epoch);
                self.keys[s] = key.clone();
                self.slots[s] = QueueProgress {
                    epoch: fresh.epoch,
                    reset_epoch: fresh.reset_epoch,
                    ..p
                };
                s
            }
            None => {
                self.keys.push(key.clone());
                self.slots.push(p);
                self.slots.len() - 1
            }
        };
        let (owner, t, _) = &key;
        self.owners
            .entry((t.clone(), owner.clone()))
            .or_default()
            .push(s);
        self.index.insert(key, s);
        s
    }
    pub fn key_at(&self, slot: usize) -> Option<&ProgressKey> {
        self.keys.get(slot)
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
        let pairs: Vec<(String, String)> = self
            .owners
            .keys()
            .filter(|(_, o)| o == owner)
            .cloned()
            .collect();
        for pair in pairs {
            for s in self.owners.remove(&pair).unwrap_or_default() {
                self.index.remove(&self.keys[s]);
                self.slots[s] = QueueProgress::after(self.slots[s].epoch);
                self.free.push(s);
            }
        }
    }
    /// The owners with entries on topic `t` that belong to `group`: the group
    /// itself, and its broadcasting members (`group@consumer`).
    pub fn owners_in<'a>(
        &'a self,
        t: &'a str,
        group: &'a str,
    ) -> impl Iterator<Item = &'a str> + 'a {
        let from = (t.to_string(), group.to_string());
        self.owners
            .range(from..)
            .map(|(k, _)| k)
            .take_while(move |(pt, o)| pt == t && o.starts_with(group))
            .map(|(_, o)| o.as_str())
            .filter(move |o| of_group(o, group))
    }
    fn iter_slots(&self) -> impl Iterator<Item = (usize, &ProgressKey)> {
        self.keys
            .iter()
            .enumerate()
            .filter(|(s, k)| self.index.get(*k) == Some(s))
    }
    pub fn iter(&self) -> impl Iterator<Item = (&ProgressKey, &QueueProgress)> {
        self.iter_slots().map(|(s, k)| (k, &self.slots[s]))
    }
    /// Forgets every entry of topic `t` (deleted): they leave the index and the
    /// iteration; their slots stay, emptied (receipts may still name them), and are
    /// never handed out again.
    pub fn forget_topic(&mut self, t: &str) {
        self.owners.retain(|(pt, _), _| pt != t);
        for (key, p) in self.keys.iter_mut().zip(self.slots.iter_mut()) {
            if key.1 == t {
                self.index.remove(key);
                key.1.clear();
                *p = QueueProgress::after(p.epoch);
            }
        }
    }
}
