//! Which consumer of a group reads which queue: RocketMQ's
//! `AllocateMessageQueueAveragely` over the members sorted by name, re-run whenever a
//! member joins or leaves or a topic grows. Clustering members share the topic's
//! queues and the group's retry topic; a broadcasting member reads every queue.
//!
//! A queue that changes hands is rewound to its committed offset, so its unacked
//! messages go to the new owner. A queue new to an owner starts at its committed
//! offset if it has one, at the queue's start if the owner already consumed the
//! topic, else where the consumer's `start` says.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{ConsumerGroups, OffsetTable, QueueProgress};
use crate::message_store::MessageStore;
use crate::topic::{self, RETRY_PREFIX};
use crate::{MessageModel, Result, StartFrom};

/// RocketMQ's `AllocateMessageQueueAveragely`: queues `0..queues` among `consumers`
/// (sorted) — the share of the consumer at `index`.
pub(crate) fn allocate_averagely(queues: u32, consumers: usize, index: usize) -> Vec<u32> {
    if consumers == 0 || index >= consumers {
        return Vec::new();
    }
    let q = queues as usize;
    let c = consumers;
    let m = q % c;
    let avg = if q <= c {
        1
    } else if index < m {
        q / c + 1
    } else {
        q / c
    };
    let start = if index < m {
        index * avg
    } else {
        index * avg + m
    };
    let take = avg.min(q.saturating_sub(start));
    (start..start + take).map(|i| i as u32).collect()
}

impl ConsumerGroups {
    /// Recomputes which consumer of `group` reads which queue. A queue that changes
    /// hands is rewound to its committed offset, so its unacked messages go to the
    /// new owner.
    pub(super) fn rebalance(
        &mut self,
        group: &str,
        start: StartFrom,
        store: &mut MessageStore,
        now: u64,
    ) -> Result<()> {
        let members: Vec<u64> = self
            .consumers
            .iter()
            .filter(|(_, c)| c.group == group)
            .map(|(h, _)| *h)
            .collect();
        let retry = format!("{RETRY_PREFIX}{group}");
        let mut plan: BTreeMap<u64, Vec<(String, u32)>> = BTreeMap::new();
        // Broadcasting members that hold their queues already.
        let mut unchanged = BTreeSet::new();
        let mut topics: Vec<String> = members
            .iter()
            .map(|h| self.consumers[h].topic.clone())
            .collect();
        topics.sort();
        topics.dedup();
        for t in &topics {
            let queues = store.topics.queues(t).unwrap_or(0);
            let mut subs: Vec<(String, u64, MessageModel)> = members
                .iter()
                .map(|h| (&self.consumers[h], *h))
                .filter(|(c, _)| &c.topic == t)
                .map(|(c, h)| (c.name.clone(), h, c.model))
                .collect();
            subs.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
            let clustering: Vec<&(String, u64, MessageModel)> = subs
                .iter()
                .filter(|s| s.2 == MessageModel::Clustering)
                .collect();
            for (i, s) in clustering.iter().enumerate() {
                let share = allocate_averagely(queues, clustering.len(), i);
                plan.entry(s.1)
                    .or_default()
                    .extend(share.into_iter().map(|q| (t.clone(), q)));
            }
            for s in subs.iter().filter(|s| s.2 == MessageModel::Broadcasting) {
                if self.holds_every_queue(s.1, t, queues) {
                    // Nothing to plan: its queues stay its own as others come and go.
                    unchanged.insert(s.1);
                    continue;
                }
                plan.entry(s.1)
                    .or_default()
                    .extend((0..queues).map(|q| (t.clone(), q)));
            }
        }
        // The group's retry topic: shared by its clustering consumers, one queue.
        let mut clustering: Vec<(String, u64)> = members
            .iter()
            .map(|h| (&self.consumers[h], *h))
            .filter(|(c, _)| c.model == MessageModel::Clustering && !topic::is_reserved(&c.topic))
            .map(|(c, h)| (c.name.clone(), h))
            .collect();
        clustering.sort();
        if !clustering.is_empty() {
            let queues = store.system_queues(&retry, 1)?;
            for (i, (_, h)) in clustering.iter().enumerate() {
                let share = allocate_averagely(queues, clustering.len(), i);
                plan.entry(*h)
                    .or_default()
                    .extend(share.into_iter().map(|q| (retry.clone(), q)));
            }
        }
        // Whether each (owner, topic) had offsets before this rebalance: a group that
        // did starts new queues at their beginning; a new group at `start`.
        let mut known: HashMap<(String, String), bool> = HashMap::new();
        for h in members.into_iter().filter(|h| !unchanged.contains(h)) {
            let assigned = plan.remove(&h).unwrap_or_default();
            let owner = self.consumers[&h].owner();
            let mut slots = Vec::with_capacity(assigned.len());
            let orderly = self.consumers[&h].orderly;
            for (t, q) in &assigned {
                let from = if t == &retry {
                    StartFrom::Earliest
                } else {
                    start
                };
                let was_known = *known.entry((owner.clone(), t.clone())).or_insert_with(|| {
                    self.offsets
                        .table
                        .contains_key(&OffsetTable::key(t, &owner))
                });
                let slot = self.ensure_progress(store, &owner, t, *q, from, was_known, now);
                slots.push(slot);
                let p = self
                    .progress
                    .at_mut(slot)
                    .expect("progress was just ensured");
                if p.owner != Some(h) {
                    // An orderly queue taken from a live member with its delivery
                    // unacked: that delivery stays its own, and this one waits for it.
                    let holder = p
                        .held_by
                        .or(p.owner)
                        .filter(|_| orderly && !p.inflight.is_empty())
                        .filter(|o| self.consumers.contains_key(o));
                    match holder {
                        // Back to the member that holds its message.
                        Some(o) if o == h => p.held_by = None,
                        Some(o) => {
                            p.held_by = Some(o);
                            if let Some(prev) = self.consumers.get_mut(&o) {
                                if !prev.handed_over.contains(&slot) {
                                    prev.handed_over.push(slot);
                                }
                            }
                        }
                        None => {
                            if p.owner.is_some() {
                                p.rewind();
                            }
                            p.held_by = None;
                            p.epoch += 1;
                        }
                    }
                    p.owner = Some(h);
                }
            }
            if let Some(c) = self.consumers.get_mut(&h) {
                c.assigned = assigned;
                c.slots = slots;
            }
        }
        Ok(())
    }

    /// Whether broadcasting consumer `h` holds queues `0..queues` of `t`, in order,
    /// through slots that are still its own (not freed, reused or forgotten since).
    fn holds_every_queue(&self, h: u64, t: &str, queues: u32) -> bool {
        let Some(c) = self.consumers.get(&h) else {
            return false;
        };
        c.assigned.len() == queues as usize
            && c.slots.len() == c.assigned.len()
            && c.assigned
                .iter()
                .zip(&c.slots)
                .zip(0..)
                .all(|(((at, q), &s), i)| {
                    at == t
                        && *q == i
                        && self
                            .progress
                            .key_at(s)
                            .is_some_and(|k| c.is_owner(&k.0) && k.1 == t && k.2 == i)
                        && self.progress.at(s).is_some_and(|p| p.owner == Some(h))
                })
    }

    #[allow(clippy::too_many_arguments)]
    fn ensure_progress(
        &mut self,
        store: &MessageStore,
        owner: &str,
        t: &str,
        q: u32,
        start: StartFrom,
        known_group: bool,
        now: u64,
    ) -> usize {
        let key = (owner.to_string(), t.to_string(), q);
        if let Some(slot) = self.progress.slot(&key) {
            return slot;
        }
        let (min, max) = store
            .queues
            .get(t, q)
            .map_or((0, 0), |cq| (cq.min_offset(), cq.max_offset()));
        let next = match self.offsets.get(t, owner, q) {
            Some(o) => o.clamp(min, max),
            // A queue added to a topic the group already consumes: from its start.
            None if known_group => min,
            None => Self::start_offset(store, t, q, start, now),
        };
        let mut acked_ahead = self
            .replayed_acks
            .remove(&key)
            .map(|mut s| s.split_off(&next))
            .unwrap_or_default();
        // Acked from where the owner starts on: past them (the committed offset).
        let mut next = next;
        while acked_ahead.remove(&next) {
            next += 1;
        }
        let slot = self.progress.insert(
            key,
            QueueProgress {
                next,
                acked_ahead,
                ..QueueProgress::default()
            },
        );
        self.offsets.set(t, owner, q, next);
        self.offsets_dirty = true;
        slot
    }

    /// Where `start` puts a new owner in (t, q).
    pub(super) fn start_offset(
        store: &MessageStore,
        t: &str,
        q: u32,
        start: StartFrom,
        now: u64,
    ) -> u64 {
        let Some(cq) = store.queues.get(t, q) else {
            return 0;
        };
        match start {
            StartFrom::Earliest => cq.min_offset(),
            StartFrom::Latest => cq.max_offset(),
            // A time ahead of now is ahead of every stored message: the end, as
            // RocketMQ's search by time answers.
            StartFrom::Timestamp(ms) if ms > now => cq.max_offset(),
            StartFrom::Timestamp(ms) => Self::offset_at_time(store, t, q, ms),
        }
    }

    /// The first queue offset of (t, q) stored at or after `ms`.
    pub(super) fn offset_at_time(store: &MessageStore, t: &str, q: u32, ms: u64) -> u64 {
        let Some(cq) = store.queues.get(t, q) else {
            return 0;
        };
        let log = &store.commitlog;
        cq.search(|e| {
            log.with_record(e.phys, |r| r.store_ts >= ms)
                .unwrap_or(false)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_queues_split_three_three_two() {
        let shares: Vec<Vec<u32>> = (0..3).map(|i| allocate_averagely(8, 3, i)).collect();
        assert_eq!(shares, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7]]);
    }

    #[test]
    fn more_consumers_than_queues() {
        let shares: Vec<Vec<u32>> = (0..5).map(|i| allocate_averagely(2, 5, i)).collect();
        assert_eq!(shares, vec![vec![0], vec![1], vec![], vec![], vec![]]);
    }
}
