//! Sizes, lags and rates (RocketMQ's `BrokerStatsManager`, reduced): per topic the
//! queues' offsets, messages stored and the put rate over the last minute; per
//! group and topic the consumers, lag, messages delivered and the get rate.
//!
//! Put totals come from the ConsumeQueues (offsets are dense), so they count every
//! message the store ever took, across restarts; rates come from samples of those
//! totals, taken about once a second.

use std::collections::{BTreeMap, VecDeque};

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::consumer::ConsumerGroups;
use crate::engine::PendingRetries;
use crate::message_store::MessageStore;
use crate::topic::{self, RETRY_PREFIX};

/// A topic and its queue count.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TopicInfo {
    /// The topic.
    pub name: String,
    /// How many queues it has.
    pub queues: u32,
}

/// One queue of a topic in [`Stats`].
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct QueueStats {
    /// The queue.
    pub queue_id: u32,
    /// Lowest retained queue offset.
    pub min_offset: u64,
    /// Next queue offset to be written.
    pub max_offset: u64,
}

/// One topic in [`Stats`].
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct TopicStats {
    /// Its queues.
    pub queues: Vec<QueueStats>,
    /// Messages ever stored in the topic (retained or not).
    pub messages_in: u64,
    /// Messages per second put into the topic over the last minute.
    pub in_rate: f64,
}

/// One consumer group on one topic in [`Stats`].
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct GroupStats {
    /// The consumer group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// Its live consumers here (members of a simple group count too).
    pub consumers: usize,
    /// Messages not yet acked by the group.
    pub lag: u64,
    /// Messages delivered since the broker opened.
    pub messages_out: u64,
    /// Messages per second delivered over the last minute.
    pub out_rate: f64,
    /// Messages retention removed before the group consumed them, since the broker
    /// opened (also logged as a warning when it happens).
    pub expired: u64,
}

/// Sizes and rates of the store.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Stats {
    /// Every user topic, retry and dead-letter topic, by name.
    pub topics: BTreeMap<String, TopicStats>,
    /// Every consumer group on every topic it consumes.
    pub groups: Vec<GroupStats>,
    /// Bytes the CommitLog holds (retained segments).
    pub commitlog_bytes: u64,
    /// Delayed messages and timers not yet due.
    pub pending_delayed: u64,
    /// Half messages not yet resolved.
    pub pending_transactions: u64,
    /// Messages ever stored in the user topics (retry and dead-letter copies aside).
    pub messages_in: u64,
    /// Messages the user topics still hold (not yet removed by retention).
    pub messages_retained: u64,
    /// Records found damaged or unusable since the broker opened (by recovery or
    /// by a read): skipped, logged, never delivered.
    pub corrupt_records: u64,
}

/// A running total and samples of it over the last minute, for a rate.
#[derive(Debug, Default)]
pub(crate) struct Counter {
    pub total: u64,
    samples: VecDeque<(u64, u64)>,
}

impl Counter {
    /// Records the total at `now` (at most one sample a second, a minute's worth).
    pub fn sample(&mut self, now: u64) {
        if self.samples.back().is_none_or(|(t, _)| now >= t + 1000) {
            self.samples.push_back((now, self.total));
        }
        while self.samples.len() > 2 && self.samples.front().is_some_and(|(t, _)| now > t + 60_000)
        {
            self.samples.pop_front();
        }
    }

    /// Per second, since the oldest sample.
    pub fn rate(&self, now: u64) -> f64 {
        self.rate_at(self.total, now)
    }

    /// Per second, from the oldest sample to `total` at `now`.
    fn rate_at(&self, total: u64, now: u64) -> f64 {
        match self.samples.front() {
            Some(&(t, n)) if now > t => total.saturating_sub(n) as f64 * 1000.0 / (now - t) as f64,
            _ => 0.0,
        }
    }
}

/// Messages stored in `topic`, ever: the sum of its queues' end offsets.
fn stored(store: &MessageStore, topic: &str) -> u64 {
    store
        .queues
        .topic(topic)
        .map_or(0, |qs| qs.iter().map(|cq| cq.max_offset()).sum())
}

/// Whether a topic shows in stats: user topics and groups' retry and DLQ topics.
fn shown(name: &str) -> bool {
    !topic::is_reserved(name) || name.starts_with('%')
}

/// Samples of every shown topic's put total.
#[derive(Debug, Default)]
pub(crate) struct TopicRates {
    put: FxHashMap<String, Counter>,
}

impl TopicRates {
    /// Samples the put totals and the groups' delivery totals.
    pub fn sample(&mut self, store: &MessageStore, groups: &mut ConsumerGroups, now: u64) {
        for (name, _) in store.queues.iter().filter(|(n, _)| shown(n)) {
            let c = self.put.entry(name.clone()).or_default();
            c.total = stored(store, name);
            c.sample(now);
        }
        for c in groups.delivered.values_mut().flat_map(|t| t.values_mut()) {
            c.sample(now);
        }
    }
}

/// What waits in the engine, for [`report`].
pub(crate) struct Pending<'a> {
    /// Delayed messages and timers not yet due.
    pub delayed: u64,
    /// Half messages not yet resolved.
    pub transactions: u64,
    /// Retries not yet acked, by (group, the topic they came from): in each group's
    /// lag on that topic.
    pub retries: &'a PendingRetries,
}

/// The report `Broker::stats` returns.
pub(crate) fn report(
    store: &MessageStore,
    groups: &ConsumerGroups,
    rates: &TopicRates,
    expired: &BTreeMap<(String, String), u64>,
    pending: Pending<'_>,
    now: u64,
) -> Stats {
    let mut topics = BTreeMap::new();
    for (name, cqs) in store.queues.iter().filter(|(n, _)| shown(n)) {
        let total = stored(store, name);
        let rate = rates.put.get(name).map_or(0.0, |c| c.rate_at(total, now));
        topics.insert(
            name.clone(),
            TopicStats {
                queues: cqs
                    .iter()
                    .enumerate()
                    .map(|(q, cq)| QueueStats {
                        queue_id: q as u32,
                        min_offset: cq.min_offset(),
                        max_offset: cq.max_offset(),
                    })
                    .collect(),
                messages_in: total,
                in_rate: rate,
            },
        );
    }
    let simple = groups.pop.names_and_members();
    let mut pairs: Vec<(String, String)> = groups
        .consumers
        .values()
        .map(|c| (c.group.clone(), c.topic.clone()))
        .chain(simple.iter().map(|(pair, _)| pair.clone()))
        .chain(groups.offsets.table.keys().filter_map(|k| {
            let (t, owner) = k.split_once('@')?;
            let group = owner.split('@').next().unwrap_or(owner);
            Some((group.to_string(), t.to_string()))
        }))
        .chain(expired.keys().cloned())
        .filter(|(_, t)| !t.starts_with(RETRY_PREFIX))
        .collect();
    pairs.sort();
    pairs.dedup();
    let mut members: FxHashMap<(&str, &str), usize> = FxHashMap::default();
    for c in groups.consumers.values() {
        *members.entry((&c.group, &c.topic)).or_default() += 1;
    }
    for ((g, t), n) in &simple {
        *members.entry((g, t)).or_default() += n;
    }
    let groups_out = pairs
        .into_iter()
        .map(|(g, t)| {
            let out = groups
                .delivered
                .get(&g)
                .and_then(|by_topic| by_topic.get(&t));
            GroupStats {
                consumers: members.get(&(g.as_str(), t.as_str())).copied().unwrap_or(0),
                lag: groups.lag(store, &g, &t).unwrap_or(0)
                    + pending
                        .retries
                        .get(&(g.clone(), t.clone()))
                        .copied()
                        .unwrap_or(0),
                messages_out: out.map_or(0, |c| c.total),
                out_rate: out.map_or(0.0, |c| c.rate(now)),
                expired: expired.get(&(g.clone(), t.clone())).copied().unwrap_or(0),
                group: g,
                topic: t,
            }
        })
        .collect();
    let user = || {
        store
            .queues
            .iter()
            .filter(|(n, _)| !topic::is_reserved(n))
            .flat_map(|(_, qs)| qs.iter())
    };
    Stats {
        messages_in: user().map(|cq| cq.max_offset()).sum(),
        messages_retained: user().map(|cq| cq.max_offset() - cq.min_offset()).sum(),
        topics,
        groups: groups_out,
        commitlog_bytes: store.commitlog.retained_bytes(),
        pending_delayed: pending.delayed,
        pending_transactions: pending.transactions,
        corrupt_records: store.commitlog.corrupt_records() + store.skipped_records,
    }
}
