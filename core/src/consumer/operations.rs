//! What operators do to a group's position (mqadmin's `consumerProgress`, the
//! backlog drill, `deleteTopic`): read each queue's committed offset and cursor,
//! move the group past messages copied elsewhere, forget a deleted topic.
//!
//! Moving a group only ever moves it forward, and keeps what is in flight above the
//! new position: a delivery below it is forgotten (its late ack changes nothing).

use super::progress::ProgressKey;
use super::ConsumerGroups;
use crate::message_store::MessageStore;

/// A group's position on one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    /// The lowest offset not yet acked.
    pub committed: u64,
    /// The next offset to deliver (at or above `committed`).
    pub cursor: u64,
}

impl ConsumerGroups {
    /// `group`'s position on queues `0..queues` of `t` (the most behind owner's, for a
    /// broadcasting group); None on a queue where it has none.
    pub fn positions(&self, group: &str, t: &str, queues: u32) -> Vec<Option<Position>> {
        let owners = self.owners_of(group, t);
        (0..queues)
            .map(|q| {
                owners
                    .iter()
                    .filter_map(
                        |o| match self.progress.get(&(o.clone(), t.to_string(), q)) {
                            Some(p) => Some(Position {
                                committed: p.committed(),
                                cursor: p.next.max(p.committed()),
                            }),
                            None => {
                                // Acks of atomic blocks replayed since the open, for a
                                // queue no reader took up yet: done, past the offset.
                                let acks = self.replayed_acks.get(&(o.clone(), t.to_string(), q));
                                let c = self.committed(o, t, q).or_else(|| acks.map(|_| 0))?;
                                let c = acks
                                    .map_or(c, |a| (c..).find(|qo| !a.contains(qo)).unwrap_or(c));
                                Some(Position {
                                    committed: c,
                                    cursor: self.pop.cursor(o, t, q).unwrap_or(c).max(c),
                                })
                            }
                        },
                    )
                    .min_by_key(|p| p.committed)
            })
            .collect()
    }

    /// The owners of `group`'s positions on `t` (one for a clustering group), for
    /// `owner_keys`.
    pub fn owners(&self, group: &str, t: &str) -> Vec<String> {
        self.owners_of(group, t)
    }

    /// The keys of `owners` (`owners(group, t)`) on (t, q), for `done_by_all`: made
    /// once for the many offsets of a queue.
    pub fn owner_keys(owners: &[String], t: &str, q: u32) -> Vec<ProgressKey> {
        owners
            .iter()
            .map(|o| (o.clone(), t.to_string(), q))
            .collect()
    }

    /// Whether every owner (`keys` from `owner_keys`) is done with the message at
    /// `qo` of their queue: below its committed offset, or acked out of order above
    /// it. False when the group has no position there.
    pub fn done_by_all(&self, keys: &[ProgressKey], qo: u64) -> bool {
        !keys.is_empty()
            && keys.iter().all(|key| {
                let (o, t, q) = (key.0.as_str(), key.1.as_str(), key.2);
                match self.progress.get(key) {
                    Some(p) => {
                        qo < p.committed()
                            || (qo < p.next && !p.inflight.contains(qo))
                            || p.acked_ahead.contains(&qo)
                    }
                    None => match self.pop.offset_done(o, t, q, qo) {
                        Some(done) => done,
                        None => {
                            self.committed(o, t, q).is_some_and(|c| qo < c)
                                || self
                                    .replayed_acks
                                    .get(key)
                                    .is_some_and(|acks| acks.contains(&qo))
                        }
                    },
                }
            })
    }

    /// The offsets of (t, q) that `group` has not acked (not every owner, for a
    /// broadcasting group), from its committed offset to the queue's end: from the
    /// first retained message where it has none.
    pub fn not_done(&self, store: &MessageStore, group: &str, t: &str, q: u32) -> Vec<u64> {
        let Some(cq) = store.queues.get(t, q) else {
            return Vec::new();
        };
        let min = cq.min_offset();
        let owners = self.owners_of(group, t);
        let from = owners
            .iter()
            .map(|o| self.committed(o, t, q).unwrap_or(min))
            .min()
            .unwrap_or(min)
            .max(min);
        let keys = Self::owner_keys(&owners, t, q);
        (from..cq.max_offset())
            .filter(|&qo| !self.done_by_all(&keys, qo))
            .collect()
    }

    /// Moves `group` (every owner, for a broadcasting group) on each queue `q` of `t`
    /// to at least `upto[q]`.
    pub fn advance_past(&mut self, group: &str, t: &str, upto: &[u64]) {
        let mut owners = self.owners_of(group, t);
        if owners.is_empty() {
            owners.push(group.to_string());
        }
        for owner in &owners {
            for (q, &target) in upto.iter().enumerate() {
                let q = q as u32;
                if let Some(p) = self.progress.get_mut(&(owner.clone(), t.to_string(), q)) {
                    if p.next < target {
                        p.next = target;
                    }
                    p.inflight.drop_below(target);
                }
                self.pop.advance_past(owner, t, q, target);
                let committed = self.committed(owner, t, q).unwrap_or(0);
                self.offsets.set(t, owner, q, committed.max(target));
            }
        }
        self.offsets_dirty = true;
    }

    /// Forgets every group's offsets and cursors on `t` (the topic was deleted).
    pub fn forget_topic(&mut self, t: &str) {
        self.offsets
            .table
            .retain(|k, _| k.strip_prefix(t).is_none_or(|rest| !rest.starts_with('@')));
        self.progress.forget_topic(t);
        self.replayed_acks.retain(|(_, topic, _), _| topic != t);
        self.pop.forget_topic(t);
        self.offsets_dirty = true;
    }
}
