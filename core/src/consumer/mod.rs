//! Consumer groups (RocketMQ's `ConsumerManager`, rebalance and offset manager in
//! one service): who is subscribed to what, which queues each consumer owns, each
//! owner's progress on each queue, receiving, acks, retries and committed offsets.
//!
//! - `rebalance.rs`: RocketMQ's average allocation over sorted consumer ids, and
//!   where a queue new to an owner starts.
//! - `progress.rs`: per-queue cursor and in-flight window.
//! - `receive.rs`: reading a consumer's queues through its filter; acks.
//! - `retry.rs`: nack: a retry copy in `%RETRY%<group>` or the DLQ, or an orderly pause.
//! - `offsets.rs`: committed offsets (persisted), lag and resets.
//! - `operations.rs`: what operators do to a group: its position per queue, moving
//!   it past a backlog copied elsewhere, forgetting a deleted topic.
//! - `wait.rs`: the long poll either consumer kind's receive waits in.
//! - `listener.rs`: push-consumer threads over either kind (native targets).
//!
//! This service reads the store and decides; it never appends. What it wants
//! appended (a retry copy) it returns to the engine, which appends and dispatches.

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod listener;
mod offsets;
mod operations;
pub(crate) mod pop;
mod progress;
mod rebalance;
mod receive;
mod retry;
pub(crate) mod wait;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub(crate) use offsets::OffsetTable;
pub(crate) use progress::{ProgressKey, ProgressTable, QueueProgress};
pub(crate) use retry::{dead_letter_copy, NackOutcome};

use crate::filter::{self, MessageFilter};
use crate::message_store::MessageStore;
use crate::stats::Counter;
use crate::topic;
use crate::{
    ConsumerConfig, Error, MessageExt, MessageModel, Receipt, Result, SimpleConsumerConfig,
    StartFrom,
};

/// A live consumer.
#[derive(Debug)]
pub(crate) struct ConsumerEntry {
    /// Stable name; allocation sorts by it.
    pub name: String,
    pub group: String,
    pub topic: String,
    pub filter: Arc<dyn MessageFilter>,
    pub model: MessageModel,
    pub orderly: bool,
    pub max_reconsume_times: u32,
    pub ack_timeout_ms: Option<u64>,
    pub max_in_flight: usize,
    /// Queues this consumer reads: (topic, queue id).
    pub assigned: Vec<(String, u32)>,
    /// The progress slot of each assigned queue.
    pub slots: Vec<usize>,
    /// Where the next receive starts in `assigned`, for fairness.
    pub rr: usize,
    /// Named by a `consumer_id`: a broadcasting consumer's offsets outlive it.
    pub persistent: bool,
    /// Orderly: slots of queues taken from this consumer while it held a delivery
    /// (see `QueueProgress::held_by`).
    pub handed_over: Vec<usize>,
}

impl ConsumerEntry {
    /// The progress owner key: the group, or the consumer itself when broadcasting.
    pub fn owner(&self) -> String {
        match self.model {
            MessageModel::Clustering => self.group.clone(),
            MessageModel::Broadcasting => format!("{}@{}", self.group, self.name),
        }
    }

    /// Whether `key` is this consumer's progress owner key (`owner()`, unallocated).
    pub fn is_owner(&self, key: &str) -> bool {
        match self.model {
            MessageModel::Clustering => key == self.group,
            MessageModel::Broadcasting => key
                .strip_prefix(self.group.as_str())
                .and_then(|rest| rest.strip_prefix('@'))
                .is_some_and(|name| name == self.name),
        }
    }
}

/// A consumer's handle: unique in the process, not only in its broker, so a message
/// received through one broker is refused by another broker's consumers (its
/// receipt names a consumer they do not have) instead of acking something else.
fn next_handle() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Every consumer, and every owner's progress.
#[derive(Default)]
pub(crate) struct ConsumerGroups {
    pub consumers: BTreeMap<u64, ConsumerEntry>,
    pub progress: ProgressTable,
    pub offsets: OffsetTable,
    /// Offsets changed since they were last persisted.
    pub offsets_dirty: bool,
    /// Messages delivered per group and topic, for rates (by group, then topic: a
    /// receive counts its batch without building a key).
    pub delivered: HashMap<String, HashMap<String, Counter>>,
    /// Simple (POP) consumer groups.
    pub pop: pop::PopGroups,
    /// Classic acks of atomic blocks replayed on open, for queues no reader holds yet.
    pub replayed_acks: crate::atomic::ReplayedAcks,
    /// The ConsumeQueue entries a receive reads, kept for the next one: a receive
    /// allocates nothing under the lock but the list it hands out.
    pub entries: Vec<crate::consume_queue::CqEntry>,
}

impl ConsumerGroups {
    pub fn new(mut offsets: OffsetTable) -> ConsumerGroups {
        // What was acked above each committed offset: passed over by the queue's
        // next reader (as acks of atomic blocks replayed on open are).
        let mut replayed_acks = crate::atomic::ReplayedAcks::default();
        // And at most this many in all (a damaged file costs no more).
        let mut budget = 16 * offsets::ACKED_ABOVE_MAX;
        for (key, queues) in std::mem::take(&mut offsets.acked) {
            let Some((t, owner)) = key.split_once('@') else {
                continue;
            };
            for (q, runs) in queues {
                let from = offsets.get(t, owner, q).unwrap_or(0);
                let set = replayed_acks
                    .entry((owner.to_string(), t.to_string(), q))
                    .or_default();
                // At most what `metadata` writes for a queue.
                for [a, b] in runs {
                    let room = offsets::ACKED_ABOVE_MAX
                        .saturating_sub(set.len())
                        .min(budget);
                    let before = set.len();
                    set.extend((a.max(from)..b).take(room));
                    budget -= set.len() - before;
                }
            }
        }
        ConsumerGroups {
            offsets,
            replayed_acks,
            ..ConsumerGroups::default()
        }
    }

    /// Adds a consumer and rebalances its group; returns its handle. A topic it
    /// names that does not exist is created when `auto_create` allows.
    pub fn add(
        &mut self,
        cfg: &ConsumerConfig,
        store: &mut MessageStore,
        auto_create: bool,
        default_queues: u32,
        now: u64,
    ) -> Result<u64> {
        topic::validate_group(&cfg.group)?;
        topic::validate_consumable_topic(&cfg.topic)?;
        cfg.validate()?;
        let filter = filter::from_config(&cfg.tags, cfg.sql.as_deref())?;
        if self.pop.has_live(&cfg.group) {
            return Err(Error::invalid(format!(
                "group {:?} has live simple consumers; a group is simple or classic",
                cfg.group
            )));
        }
        // One subscription per group: RocketMQ silently loses messages when members
        // of a group subscribe differently; refuse it instead.
        if let Some(live) = self.consumers.values().find(|c| c.group == cfg.group) {
            if live.topic != cfg.topic || !filter::same(&*live.filter, &*filter) {
                return Err(Error::invalid(format!(
                    "group {:?} is subscribed to {:?} with {} by a live consumer; \
                     every member of a group subscribes alike (use another group)",
                    cfg.group,
                    live.topic,
                    live.filter.describe()
                )));
            }
        }
        self.topic_to_consume(&cfg.topic, store, (auto_create, default_queues), now)?;
        let handle = next_handle();
        let name = match &cfg.consumer_id {
            Some(id) if !id.is_empty() => {
                if self
                    .consumers
                    .values()
                    .any(|c| c.group == cfg.group && &c.name == id)
                {
                    return Err(Error::invalid(format!(
                        "consumer {id:?} is already open in group {:?}",
                        cfg.group
                    )));
                }
                id.clone()
            }
            _ => format!("consumer-{handle:08}"),
        };
        let entry = ConsumerEntry {
            name,
            group: cfg.group.clone(),
            topic: cfg.topic.clone(),
            filter,
            model: cfg.model,
            orderly: cfg.orderly,
            max_reconsume_times: cfg.max_reconsume_times,
            ack_timeout_ms: cfg.ack_timeout_ms,
            max_in_flight: cfg.max_in_flight,
            assigned: Vec::new(),
            slots: Vec::new(),
            rr: 0,
            persistent: cfg.consumer_id.as_ref().is_some_and(|id| !id.is_empty()),
            handed_over: Vec::new(),
        };
        self.consumers.insert(handle, entry);
        self.rebalance(&cfg.group, cfg.start, store, now)?;
        Ok(handle)
    }

    /// Adds a simple (POP) consumer; returns its handle.
    pub fn add_simple(
        &mut self,
        cfg: &SimpleConsumerConfig,
        store: &mut MessageStore,
        (auto_create, default_queues): (bool, u32),
        now: u64,
    ) -> Result<u64> {
        topic::validate_group(&cfg.group)?;
        topic::validate_consumable_topic(&cfg.topic)?;
        cfg.validate()?;
        let filter = filter::from_config(&cfg.tags, cfg.sql.as_deref())?;
        if self.consumers.values().any(|c| c.group == cfg.group) {
            return Err(Error::invalid(format!(
                "group {:?} has live classic consumers; a group is simple or classic",
                cfg.group
            )));
        }
        self.topic_to_consume(&cfg.topic, store, (auto_create, default_queues), now)?;
        let handle = next_handle();
        let name = pop::revive::GroupName {
            group: cfg.group.clone(),
            topic: cfg.topic.clone(),
            fifo: cfg.fifo,
            max_attempts: cfg.max_delivery_attempts,
        };
        let offsets = &self.offsets;
        let base = |q: u32| {
            let min = store
                .queues
                .get(&cfg.topic, q)
                .map_or(0, |cq| cq.min_offset());
            offsets
                .get(&cfg.topic, &cfg.group, q)
                .unwrap_or(min)
                .max(min)
        };
        self.pop.join(handle, &name, filter, store, base)?;
        self.link_pop_retry(&cfg.group, store);
        Ok(handle)
    }

    /// Simple group `group` reads its redriven dead letters from `%RETRY%<group>`
    /// (when that topic exists), from the group's committed offsets there.
    pub fn link_pop_retry(&mut self, group: &str, store: &MessageStore) {
        let retry_topic = format!("{}{group}", topic::RETRY_PREFIX);
        let offsets = &self.offsets;
        let base = |q: u32| {
            let min = store
                .queues
                .get(&retry_topic, q)
                .map_or(0, |cq| cq.min_offset());
            offsets.get(&retry_topic, group, q).unwrap_or(min).max(min)
        };
        self.pop.link_retry(store, group, base);
    }

    /// Removes a consumer: its queues go back to their committed offsets and to the
    /// rest of its group.
    pub fn close(&mut self, handle: u64, store: &mut MessageStore, now: u64) -> Result<()> {
        let Some(c) = self.consumers.remove(&handle) else {
            return Ok(());
        };
        if c.model == MessageModel::Broadcasting && !c.persistent {
            // Nobody can come back as this consumer: its offsets go with it.
            let owner = c.owner();
            self.progress.remove_owner(&owner);
            self.offsets
                .table
                .retain(|key, _| key.split_once('@').is_none_or(|(_, o)| o != owner));
            self.offsets_dirty = true;
            return self.rebalance(&c.group, StartFrom::Earliest, store, now);
        }
        for (t, q) in &c.assigned {
            if let Some(p) = self.progress.get_mut(&(c.owner(), t.clone(), *q)) {
                if p.owner == Some(handle) {
                    // (Not what a member it took the queue from still handles.)
                    if p.held_by.is_none() {
                        p.rewind();
                    }
                    p.owner = None;
                    self.offsets_dirty = true;
                }
            }
        }
        // Deliveries it still held in queues already handed over: to their new owner.
        for &slot in &c.handed_over {
            if let Some(p) = self.progress.at_mut(slot) {
                if p.held_by == Some(handle) {
                    p.held_by = None;
                    p.rewind();
                    self.offsets_dirty = true;
                }
            }
        }
        self.rebalance(&c.group, StartFrom::Earliest, store, now)
    }

    /// Creates `topic` for a new consumer if it does not exist (when topics are
    /// created on first use, or it is one of the engine's: one queue), and has the
    /// consumers still open on it (it was deleted under them) take it again.
    fn topic_to_consume(
        &mut self,
        topic: &str,
        store: &mut MessageStore,
        (auto_create, default_queues): (bool, u32),
        now: u64,
    ) -> Result<()> {
        if store.topics.queues(topic).is_some() {
            return Ok(());
        }
        let user_topic = !topic::is_reserved(topic);
        if user_topic && !auto_create {
            return Err(Error::TopicNotFound(topic.to_string()));
        }
        store.create_topic(topic, if user_topic { default_queues } else { 1 })?;
        self.topic_grew(topic, store, now)
    }

    /// Re-runs the allocation of every group that consumes `topic` (it grew).
    pub fn topic_grew(&mut self, topic: &str, store: &mut MessageStore, now: u64) -> Result<()> {
        let mut groups: Vec<String> = self
            .consumers
            .values()
            .filter(|c| c.topic == topic)
            .map(|c| c.group.clone())
            .collect();
        groups.sort();
        groups.dedup();
        for g in groups {
            self.rebalance(&g, StartFrom::Earliest, store, now)?;
        }
        Ok(())
    }

    /// Earliest time a delivery's ack deadline passes, if any consumer has one.
    pub fn next_ack_deadline(&self) -> Option<u64> {
        self.consumers
            .values()
            .filter_map(|c| {
                let timeout = c.ack_timeout_ms?;
                c.slots
                    .iter()
                    .filter_map(|s| self.progress.at(*s)?.inflight.oldest())
                    .map(|(_, at)| at.saturating_add(timeout))
                    .min()
            })
            .min()
    }

    /// Deliveries whose ack deadline passed at `now`, as the consumer that holds
    /// them received them (with their receipt), with the deadline: to send back as
    /// nacks made at that moment.
    pub fn ack_expired(&self, store: &MessageStore, now: u64) -> Vec<(u64, MessageExt, u64)> {
        let mut out = Vec::new();
        for (&handle, c) in &self.consumers {
            let Some(timeout) = c.ack_timeout_ms else {
                continue;
            };
            for (&slot, (t, q)) in c.slots.iter().zip(&c.assigned) {
                let Some(p) = self.progress.at(slot) else {
                    continue;
                };
                let Some(cq) = store.queues.get(t, *q) else {
                    continue;
                };
                let mut qo = match p.inflight.oldest() {
                    Some((qo, at)) if at.saturating_add(timeout) <= now => qo,
                    _ => continue,
                };
                while qo < p.next {
                    if let Some(at) = p.inflight.delivered_at(qo) {
                        if at.saturating_add(timeout) > now {
                            break;
                        }
                        let msg = cq.entry(qo).and_then(|e| store.message_at(e.phys));
                        if let Some(mut m) = msg {
                            m.reconsume_times += p.orderly_retries;
                            m.receipt = Some(Receipt {
                                consumer: handle,
                                slot,
                                queue_offset: qo,
                                epoch: p.epoch,
                            });
                            out.push((handle, m, at.saturating_add(timeout)));
                        }
                    }
                    qo += 1;
                }
            }
        }
        out
    }

    /// Earliest time an orderly pause ends, if any queue is paused.
    pub fn next_resume(&self) -> Option<u64> {
        self.progress
            .values()
            .filter(|p| p.suspend_until != 0)
            .map(|p| p.suspend_until)
            .min()
    }

    /// Ends orderly pauses due at `now`; true when a queue became readable again.
    pub fn resume_due(&mut self, now: u64) -> bool {
        let mut resumed = false;
        for p in self.progress.values_mut() {
            if p.suspend_until != 0 && p.suspend_until <= now {
                p.suspend_until = 0;
                resumed = true;
            }
        }
        resumed
    }
}
