//! Operations: what RocketMQ's admin commands (`mqadmin`) do, on one store. Reading a
//! topic without consuming it (`browse`, `query_by_time`: printMsg and
//! queryMsgByTime), a group's position per queue (`progress`: consumerProgress), a
//! group's dead letters, deleting a topic (deleteTopic), and in `drill/` the copies
//! that must survive a crash: the backlog drill and the DLQ redrive.
//!
//! Reads here never move a group: browsing leaves every lag as it was. They are
//! engine methods, run under the broker's one lock, and the `Broker` calls at the
//! end of this file, each taking the lock once; `drill/run.rs` splits the long
//! copies into steps and persists what they change.

pub(crate) mod drill;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::Serialize;

use crate::broker::Broker;
use crate::consume_queue::{CqEntry, BLANK_SIZE};
use crate::engine::Engine;
use crate::message::READ_BUDGET;
use crate::message_store::MessageStore;
use crate::topic::{self, DLQ_PREFIX};
use crate::{Error, MessageExt, Result};

/// A group's progress on one queue of a topic: a row of mqadmin's `consumerProgress`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConsumeProgress {
    /// The queue.
    pub queue_id: u32,
    /// The queue's next offset to be written (its max offset).
    pub broker_offset: u64,
    /// The group's committed offset: the lowest it has not acked (not below the
    /// queue's min offset).
    pub consumer_offset: u64,
    /// `broker_offset - consumer_offset`, as mqadmin consumerProgress shows it (messages
    /// acked out of order above the committed offset still count; `Broker::lag` does
    /// not count them).
    pub lag: u64,
    /// Messages delivered and not yet acked (RocketMQ's pull offset minus consumer
    /// offset).
    pub inflight: u64,
    /// Store time (ms) of the last message the group consumed here, or of the first
    /// it has yet to consume when it consumed none (mqadmin's `#LastTime`): how far
    /// the group has got, in time. None when the queue holds no message.
    pub last_store_timestamp: Option<u64>,
    /// Messages retention removed from this queue before the group consumed them
    /// (since the broker opened).
    pub expired: u64,
}

/// The retained records of one queue from `from` (at least its min offset) in offset
/// order, up to `limit`, stopping at the first whose store time is `end` or later
/// and at `visible_end` (records beyond it are not durable yet).
fn read_queue(
    store: &MessageStore,
    topic: &str,
    q: u32,
    from: u64,
    limit: usize,
    end_ms: Option<u64>,
    visible_end: u64,
) -> Vec<MessageExt> {
    let mut out = Vec::new();
    let Some(cq) = store.queues.get(topic, q) else {
        return out;
    };
    let mut qo = from.max(cq.min_offset());
    let mut entries: Vec<CqEntry> = Vec::new();
    let mut bytes = 0u64;
    'read: while out.len() < limit && bytes < READ_BUDGET && qo < cq.max_offset() {
        cq.entries(qo, (limit - out.len()).clamp(16, 1024), &mut entries);
        if entries.is_empty() {
            break;
        }
        for e in &entries {
            qo += 1;
            if e.size == BLANK_SIZE {
                continue;
            }
            if e.phys + e.size as u64 > visible_end {
                break 'read;
            }
            let Some(m) = store.message_at(e.phys) else {
                continue;
            };
            if end_ms.is_some_and(|end| m.store_timestamp >= end) {
                break 'read;
            }
            bytes += u64::from(e.size);
            out.push(m);
            if out.len() >= limit || bytes >= READ_BUDGET {
                break 'read;
            }
        }
    }
    out
}

/// Up to `limit` of the messages of several queues' reads, in CommitLog order
/// (store-time order), within the read budget (`READ_BUDGET`).
fn merge(per_queue: Vec<Vec<MessageExt>>, limit: usize) -> Vec<MessageExt> {
    let mut heads: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut lists: Vec<std::vec::IntoIter<MessageExt>> = Vec::new();
    let mut next: Vec<Option<MessageExt>> = Vec::new();
    for (i, list) in per_queue.into_iter().enumerate() {
        let mut it = list.into_iter();
        let first = it.next();
        if let Some(m) = &first {
            heads.push(Reverse((m.commitlog_offset, i)));
        }
        lists.push(it);
        next.push(first);
    }
    let mut out = Vec::new();
    let mut bytes = 0u64;
    while out.len() < limit && bytes < READ_BUDGET {
        let Some(Reverse((_, i))) = heads.pop() else {
            break;
        };
        if let Some(m) = next[i].take() {
            bytes += m.body.len() as u64;
            out.push(m);
        }
        next[i] = lists[i].next();
        if let Some(m) = &next[i] {
            heads.push(Reverse((m.commitlog_offset, i)));
        }
    }
    out
}

impl Engine {
    /// The queue count of a topic that may be read (a user topic, or a group's retry
    /// or dead-letter topic).
    /// The queues of `t` a read may name: those holding messages, and those its
    /// registration gives it (after a crash before the registry was written, the
    /// queues that got messages may be fewer than it says).
    fn readable_queues(&self, t: &str) -> Result<u32> {
        topic::validate_consumable_topic(t)?;
        let held = self.store.queues.topic(t).map(|qs| qs.len() as u32);
        match (held, self.store.topics.queues(t)) {
            (None, None) => Err(Error::TopicNotFound(t.to_string())),
            (held, registered) => Ok(held.unwrap_or(0).max(registered.unwrap_or(0))),
        }
    }

    /// Messages of `topic` without consuming them: of queue `queue_id` from `offset`
    /// (default: its oldest retained), or of every queue from `offset` each, merged in
    /// store order; at most `limit`.
    pub fn browse(
        &self,
        t: &str,
        queue_id: Option<u32>,
        offset: Option<u64>,
        limit: usize,
        visible_end: u64,
    ) -> Result<Vec<MessageExt>> {
        self.check_open()?;
        let queues = self.readable_queues(t)?;
        let from = offset.unwrap_or(0);
        match queue_id {
            Some(q) if q >= queues => Err(Error::invalid(format!(
                "queue_id {q} is out of range: {t} has {queues} queues"
            ))),
            Some(q) => Ok(read_queue(
                &self.store,
                t,
                q,
                from,
                limit,
                None,
                visible_end,
            )),
            None => {
                let per_queue = (0..queues)
                    .map(|q| read_queue(&self.store, t, q, from, limit, None, visible_end))
                    .collect();
                Ok(merge(per_queue, limit))
            }
        }
    }

    /// Messages of `topic` stored at or after `start_ms` and before `end_ms`, oldest
    /// first, at most `limit`.
    pub fn query_by_time(
        &self,
        t: &str,
        start_ms: u64,
        end_ms: u64,
        limit: usize,
        visible_end: u64,
    ) -> Result<Vec<MessageExt>> {
        self.check_open()?;
        let queues = self.readable_queues(t)?;
        if end_ms <= start_ms {
            return Ok(Vec::new());
        }
        let per_queue = (0..queues)
            .map(|q| {
                let from = self.offset_at_time(t, q, start_ms);
                read_queue(&self.store, t, q, from, limit, Some(end_ms), visible_end)
            })
            .collect();
        Ok(merge(per_queue, limit))
    }

    /// The first offset of (t, q) stored at or after `ms` (binary search: store times
    /// never decrease along the log).
    fn offset_at_time(&self, t: &str, q: u32, ms: u64) -> u64 {
        let Some(cq) = self.store.queues.get(t, q) else {
            return 0;
        };
        let log = &self.store.commitlog;
        cq.search(|e| {
            e.size != BLANK_SIZE
                && log
                    .with_record(e.phys, |r| r.store_ts >= ms)
                    .unwrap_or(false)
        })
    }

    /// `group`'s progress on every queue of `topic` (mqadmin's consumerProgress; the
    /// most behind consumer's, for a broadcasting group).
    pub fn progress(&self, group: &str, t: &str) -> Result<Vec<ConsumeProgress>> {
        self.check_open()?;
        topic::validate_group(group)?;
        let queues = self.readable_queues(t)?;
        let positions = self.groups.positions(group, t, queues);
        let log = &self.store.commitlog;
        Ok(positions
            .into_iter()
            .enumerate()
            .filter_map(|(q, pos)| {
                let cq = self.store.queues.get(t, q as u32)?;
                let (min, max) = (cq.min_offset(), cq.max_offset());
                let committed = pos.map_or(min, |p| p.committed).clamp(min, max);
                let cursor = pos.map_or(committed, |p| p.cursor).clamp(committed, max);
                let at = committed.saturating_sub(1).max(min);
                let last = (at < max)
                    .then(|| cq.entry(at))
                    .flatten()
                    .filter(|e| e.size != BLANK_SIZE)
                    .and_then(|e| log.with_record(e.phys, |r| r.store_ts));
                Some(ConsumeProgress {
                    queue_id: q as u32,
                    broker_offset: max,
                    consumer_offset: committed,
                    lag: max - committed,
                    inflight: cursor - committed,
                    last_store_timestamp: last,
                    expired: self
                        .retention
                        .expired_by_queue
                        .get(&(group.to_string(), t.to_string(), q as u32))
                        .copied()
                        .unwrap_or(0),
                })
            })
            .collect())
    }

    /// The dead letters of `group` not yet redriven, oldest first, at most `limit`.
    pub fn dead_letters(
        &self,
        group: &str,
        limit: usize,
        visible_end: u64,
    ) -> Result<Vec<MessageExt>> {
        self.check_open()?;
        topic::validate_group(group)?;
        let dlq = format!("{DLQ_PREFIX}{group}");
        if self.store.queues.get(&dlq, 0).is_none() {
            return Ok(Vec::new());
        }
        let from = self.groups.positions(group, &dlq, 1)[0].map_or(0, |p| p.committed);
        Ok(read_queue(
            &self.store,
            &dlq,
            0,
            from,
            limit,
            None,
            visible_end,
        ))
    }

    /// Deletes a user topic: its queues and every group's offsets on it go, and its
    /// messages become unreachable (their records stay in the CommitLog until
    /// retention). Live consumers of it stay: they receive nothing until the topic
    /// is created again (by a send, or `create_topic`), then read it from its start.
    /// Refused while a drill copies from or to it.
    pub fn delete_topic(&mut self, t: &str, now: u64) -> Result<()> {
        self.check_open()?;
        topic::validate_user_topic(t)?;
        if self.store.topics.queues(t).is_none() {
            return Err(Error::TopicNotFound(t.to_string()));
        }
        self.drills.forget_topic(t)?;
        let end = self.store.commitlog.end();
        self.store.deleted.topics.insert(t.to_string(), end);
        self.groups.pop.incarnations.insert(t.to_string(), end);
        self.store.deleted_dirty = true;
        self.store.topics.topics.remove(t);
        self.store.topics_dirty = true;
        self.store
            .queues
            .remove_topic(t)
            .map_err(crate::store::meta::store_err)?;
        self.groups.forget_topic(t);
        // Live consumers of it give its queues up (they come back with the topic).
        self.groups.topic_grew(t, &mut self.store, now)?;
        self.arrived = true;
        Ok(())
    }

    /// Completes deletions a crash cut short: a deleted topic that has no record
    /// above its deletion leaves the registry and the offsets (called once replay has
    /// rebuilt what is reachable).
    pub(crate) fn finish_deletions(&mut self) -> Result<()> {
        let deleted: Vec<String> = self.store.deleted.topics.keys().cloned().collect();
        for t in deleted {
            let empty = self
                .store
                .queues
                .topic(&t)
                .is_none_or(|qs| qs.iter().all(|cq| cq.max_offset() == 0));
            if !empty {
                continue;
            }
            if self.store.topics.topics.remove(&t).is_some() {
                self.store.topics_dirty = true;
            }
            self.store
                .queues
                .remove_topic(&t)
                .map_err(crate::store::meta::store_err)?;
            if self.groups.offsets.table.keys().any(|k| {
                k.strip_prefix(t.as_str())
                    .is_some_and(|r| r.starts_with('@'))
            }) {
                self.groups.forget_topic(&t);
            }
        }
        Ok(())
    }
}

/// The operations as the facade's calls (RocketMQ's admin commands).
impl Broker {
    /// Messages of `topic` without consuming them (no group moves): of queue
    /// `queue_id` from `offset` (default: the oldest retained), or of every queue from
    /// `offset` each, merged in store order; at most `limit`.
    pub fn browse(
        &self,
        topic: &str,
        queue_id: Option<u32>,
        offset: Option<u64>,
        limit: usize,
    ) -> Result<Vec<MessageExt>> {
        let visible = self.visible_end();
        self.engine_due()?
            .browse(topic, queue_id, offset, limit, visible)
    }

    /// Messages of `topic` stored at or after `start_ms` and before `end_ms` (ms since
    /// the epoch), oldest first, at most `limit`.
    pub fn query_by_time(
        &self,
        topic: &str,
        start_ms: u64,
        end_ms: u64,
        limit: usize,
    ) -> Result<Vec<MessageExt>> {
        let visible = self.visible_end();
        self.engine_due()?
            .query_by_time(topic, start_ms, end_ms, limit, visible)
    }

    /// `group`'s progress on each queue of `topic`: broker offset, consumer offset,
    /// lag, in flight and the store time it has reached (mqadmin's consumerProgress).
    /// As there, the group's retries are rows of `%RETRY%<group>`, not of `topic`:
    /// [`Broker::lag`] counts them for the topic they came from.
    pub fn progress(&self, group: &str, topic: &str) -> Result<Vec<ConsumeProgress>> {
        self.engine_due()?.progress(group, topic)
    }

    /// `group`'s dead letters not yet redriven, oldest first, at most `limit`.
    pub fn dead_letters(&self, group: &str, limit: usize) -> Result<Vec<MessageExt>> {
        let visible = self.visible_end();
        self.engine_due()?.dead_letters(group, limit, visible)
    }

    /// Deletes a topic: its messages become unreachable (to consumers, `get`, `query`
    /// and delayed deliveries) and every group's offsets on it are reset. Consumers
    /// left open on it receive nothing until a topic of the same name is created
    /// again (by a send, or `create_topic`), then read that one from its start.
    pub fn delete_topic(&self, topic: &str) -> Result<()> {
        let now = self.now();
        self.engine_due()?.delete_topic(topic, now)?;
        self.persist_metadata()?;
        log::info!("deleted topic {topic}");
        Ok(())
    }
}
