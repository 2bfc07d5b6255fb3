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
//!
//! This service reads the store and decides; it never appends. What it wants
//! appended (a retry copy) it returns to the engine, which appends and dispatches.

mod offsets;
mod progress;
mod rebalance;
mod receive;
mod retry;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub(crate) use offsets::OffsetTable;
pub(crate) use progress::{ProgressTable, QueueProgress};
pub(crate) use retry::NackOutcome;

use crate::filter::{self, MessageFilter};
use crate::message_store::MessageStore;
use crate::stats::Counter;
use crate::topic;
use crate::{ConsumerConfig, Error, MessageModel, Result, StartFrom};

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
    /// Queues this consumer reads: (topic, queue id).
    pub assigned: Vec<(String, u32)>,
    /// The progress slot of each assigned queue.
    pub slots: Vec<usize>,
    /// Where the next receive starts in `assigned`, for fairness.
    pub rr: usize,
    /// Named by a `consumer_id`: a broadcasting consumer's offsets outlive it.
    pub persistent: bool,
}

impl ConsumerEntry {
    /// The progress owner key: the group, or the consumer itself when broadcasting.
    pub fn owner(&self) -> String {
        match self.model {
            MessageModel::Clustering => self.group.clone(),
            MessageModel::Broadcasting => format!("{}@{}", self.group, self.name),
        }
    }
}

/// Every consumer, and every owner's progress.
#[derive(Default)]
pub(crate) struct ConsumerGroups {
    pub consumers: BTreeMap<u64, ConsumerEntry>,
    pub progress: ProgressTable,
    pub offsets: OffsetTable,
    /// Offsets changed since they were last persisted.
    pub offsets_dirty: bool,
    next_handle: u64,
    /// Messages delivered per (group, topic), for rates.
    pub delivered: HashMap<(String, String), Counter>,
}

impl ConsumerGroups {
    pub fn new(offsets: OffsetTable) -> ConsumerGroups {
        ConsumerGroups {
            offsets,
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
        let filter = filter::parse(&cfg.tags)?;
        let user_topic = !topic::is_reserved(&cfg.topic);
        if store.topics.queues(&cfg.topic).is_none() {
            if user_topic && !auto_create {
                return Err(Error::TopicNotFound(cfg.topic.clone()));
            }
            let n = if user_topic { default_queues } else { 1 };
            store.create_topic(&cfg.topic, n)?;
        }
        let handle = self.next_handle;
        self.next_handle += 1;
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
            assigned: Vec::new(),
            slots: Vec::new(),
            rr: 0,
            persistent: cfg.consumer_id.as_ref().is_some_and(|id| !id.is_empty()),
        };
        self.consumers.insert(handle, entry);
        self.rebalance(&cfg.group, cfg.start, store, now)?;
        Ok(handle)
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
                    p.rewind();
                    p.owner = None;
                    self.offsets_dirty = true;
                }
            }
        }
        self.rebalance(&c.group, StartFrom::Earliest, store, now)
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
