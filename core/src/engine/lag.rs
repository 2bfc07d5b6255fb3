//! What a group has not acked yet: the messages of a topic's queues it has not
//! acked, and its retries of them. RocketMQ's `consumerProgress` lists
//! `%RETRY%<group>` as a topic of its own; here a retry counts for the topic it
//! came from (its `RETRY_TOPIC`), so a nacked message stays in its topic's lag until
//! a redelivery is acked or it goes to the dead letters.
//!
//! A retry copy is first a delayed record, in a level's schedule queue or the timer
//! queue, which it shares with every delayed send. So the retries waiting there are
//! tracked in a ledger, by CommitLog offset: filled on the first lag (or stats) call
//! by one read of each pending delayed record, then kept by dispatch and delivery.
//! A store nobody asks about keeps no ledger. Retries delivered to
//! `%RETRY%<group>` and not acked are read from there: an active group keeps few.

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use super::*;
use crate::message::properties::prop;
use crate::topic::DeletedTopics;

/// Retry copies not yet acked, by (group, the topic they came from).
pub(crate) type PendingRetries = FxHashMap<(String, String), u64>;

/// The retry copies waiting for their delay (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct RetryLedger {
    /// Filled: from now on dispatch and delivery keep it.
    filled: bool,
    /// (group, topic retried) of each id.
    names: Vec<(String, String)>,
    ids: FxHashMap<(String, String), u32>,
    /// CommitLog offset of each waiting copy, and its name's id.
    waiting: FxHashMap<u64, u32>,
}

impl RetryLedger {
    /// A delayed record dispatched: a retry copy (its real topic `%RETRY%<group>`)
    /// is tracked, once the ledger is filled.
    pub fn on_delayed(&mut self, phys: u64, real_topic: Option<&str>, properties: &[u8]) {
        if self.filled {
            self.track(phys, real_topic, properties);
        }
    }

    fn track(&mut self, phys: u64, real_topic: Option<&str>, properties: &[u8]) {
        let Some(group) = real_topic.and_then(|t| t.strip_prefix(topic::RETRY_PREFIX)) else {
            return;
        };
        let Some(origin) = properties::value(properties, prop::RETRY_TOPIC) else {
            return;
        };
        let key = (group.to_string(), origin.to_string());
        let next = self.names.len() as u32;
        let id = *self.ids.entry(key.clone()).or_insert(next);
        if id == next {
            self.names.push(key);
        }
        self.waiting.insert(phys, id);
    }

    /// Delayed records delivered (or skipped as recalled): no longer waiting.
    pub fn delivered(&mut self, phys: &[u64]) {
        if self.filled && !self.waiting.is_empty() {
            for p in phys {
                self.waiting.remove(p);
            }
        }
    }

    /// Adds the waiting copies of `only` group (or of every group) to `out`;
    /// recalled records are not waiting, nor copies of a topic deleted since (their
    /// delivery drops them).
    fn count(
        &self,
        only: Option<&str>,
        recalled: &HashMap<u64, u64>,
        deleted: &DeletedTopics,
        out: &mut PendingRetries,
    ) {
        let mut by_id = vec![0u64; self.names.len()];
        for (phys, &id) in &self.waiting {
            if !recalled.contains_key(phys) && !deleted.hides(&self.names[id as usize].1, *phys) {
                by_id[id as usize] += 1;
            }
        }
        for (name, n) in self.names.iter().zip(by_id) {
            if n > 0 && only.is_none_or(|g| g == name.0) {
                *out.entry(name.clone()).or_default() += n;
            }
        }
    }
}

impl Engine {
    /// Messages of `t` not yet acked by `group` (the most behind consumer, for a
    /// broadcasting group), retries included.
    pub fn lag(&mut self, group: &str, t: &str) -> Result<u64> {
        let on_topic = self.groups.lag(&self.store, group, t)?;
        let retries = self.pending_retries(Some(group));
        let key = (group.to_string(), t.to_string());
        Ok(on_topic + retries.get(&key).copied().unwrap_or(0))
    }

    /// The retry copies of `only` group (or of every group) not acked yet: waiting
    /// for their delay, or in `%RETRY%<group>` unacked.
    pub fn pending_retries(&mut self, only: Option<&str>) -> PendingRetries {
        self.fill_retry_ledger();
        let mut out = PendingRetries::default();
        self.retries
            .count(only, &self.recalled, &self.store.deleted, &mut out);
        let store = &self.store;
        let retry_topics: Vec<(String, u32)> = match only {
            Some(g) => {
                let t = format!("{}{g}", topic::RETRY_PREFIX);
                let n = store.queues.count(&t);
                vec![(t, n)]
            }
            None => store
                .queues
                .iter()
                .filter(|(name, _)| name.starts_with(topic::RETRY_PREFIX))
                .map(|(name, qs)| (name.to_string(), qs.len() as u32))
                .collect(),
        };
        for (t, queues) in retry_topics {
            let group = &t[topic::RETRY_PREFIX.len()..];
            // The topics retried, with their counts: few per group.
            let mut origins: Vec<(String, u64)> = Vec::new();
            for q in 0..queues {
                let Some(cq) = store.queues.get(&t, q) else {
                    continue;
                };
                for qo in self.groups.not_done(store, group, &t, q) {
                    let Some(e) = cq.entry(qo) else {
                        continue;
                    };
                    store.commitlog.with_record(e.phys, |r| {
                        let Some(origin) = properties::value(r.raw_properties(), prop::RETRY_TOPIC)
                        else {
                            return;
                        };
                        // Receives skip a retry of a topic deleted since it was made.
                        if store.deleted.hides(origin, e.phys) {
                            return;
                        }
                        match origins.iter_mut().find(|(o, _)| o == origin) {
                            Some((_, n)) => *n += 1,
                            None => origins.push((origin.to_string(), 1)),
                        }
                    });
                }
            }
            for (origin, n) in origins {
                *out.entry((group.to_string(), origin)).or_default() += n;
            }
        }
        out
    }

    /// Fills the retry ledger from the delayed records pending now (once).
    fn fill_retry_ledger(&mut self) {
        if self.retries.filled {
            return;
        }
        let store = &self.store;
        let timer_cq = store.queues.get(topic::TIMER_TOPIC, 0);
        let timers = self
            .timer
            .pending_offsets()
            .into_iter()
            .filter_map(|qo| timer_cq?.entry(qo).map(|e| e.phys));
        for phys in self.schedule.pending_phys(store).into_iter().chain(timers) {
            store.commitlog.with_record(phys, |r| {
                let raw = r.raw_properties();
                self.retries
                    .track(phys, properties::value(raw, prop::REAL_TOPIC), raw);
            });
        }
        self.retries.filled = true;
    }
}
