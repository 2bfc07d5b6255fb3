//! Consumers: joining and leaving a group, rebalancing, receiving, ack and nack, retries and dead letters.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use super::*;
use crate::consumer::{allocate_averagely, ConsumerEntry, QueueProgress};
use crate::filter::TagFilter;
use crate::message::record::{self, prop, RecordSpec};
use crate::offsets::OffsetTable;
use crate::topic::{self, DLQ_PREFIX, RETRY_PREFIX};
use crate::{ConsumerConfig, Error, MessageExt, MessageModel, Receipt, Result, StartFrom};

impl State {
    pub fn add_consumer(&mut self, cfg: &ConsumerConfig, now: u64) -> Result<u64> {
        self.check_open()?;
        topic::validate_group(&cfg.group)?;
        topic::validate_consumable_topic(&cfg.topic)?;
        let filter = TagFilter::parse(&cfg.tags)?;
        let user_topic = !topic::is_reserved(&cfg.topic);
        if self.store.topics.queues(&cfg.topic).is_none() {
            if user_topic && !self.settings.auto_create_topics {
                return Err(Error::TopicNotFound(cfg.topic.clone()));
            }
            let n = if user_topic {
                self.settings.default_queues
            } else {
                1
            };
            self.store.create_topic(&cfg.topic, n)?;
        }
        let handle = self.next_consumer;
        self.next_consumer += 1;
        let name = match &cfg.consumer_id {
            Some(id) if !id.is_empty() => {
                if self
                    .consumers
                    .values()
                    .any(|c| !c.closed && c.group == cfg.group && &c.name == id)
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
            closed: false,
        };
        self.consumers.insert(handle, entry);
        self.rebalance(&cfg.group, cfg.start, now)?;
        Ok(handle)
    }

    pub fn close_consumer(&mut self, handle: u64, now: u64) -> Result<()> {
        let Some(c) = self.consumers.remove(&handle) else {
            return Ok(());
        };
        for (t, q) in &c.assigned {
            if let Some(p) = self.progress.get_mut(&(c.owner(), t.clone(), *q)) {
                if p.owner == Some(handle) {
                    p.rewind();
                    p.owner = None;
                    self.offsets_dirty = true;
                }
            }
        }
        self.rebalance(&c.group, StartFrom::Earliest, now)
    }

    /// Re-runs the allocation of `group` (its topic grew).
    pub fn regroup(&mut self, group: &str, now: u64) -> Result<()> {
        self.rebalance(group, StartFrom::Earliest, now)
    }

    /// Recomputes which consumer of `group` reads which queue. A queue that changes
    /// hands is rewound to its committed offset, so its unacked messages go to the
    /// new owner.
    pub(super) fn rebalance(&mut self, group: &str, start: StartFrom, now: u64) -> Result<()> {
        let members: Vec<u64> = self
            .consumers
            .iter()
            .filter(|(_, c)| c.group == group && !c.closed)
            .map(|(h, _)| *h)
            .collect();
        let retry = format!("{RETRY_PREFIX}{group}");
        let mut plan: BTreeMap<u64, Vec<(String, u32)>> = BTreeMap::new();
        let mut topics: Vec<String> = members
            .iter()
            .map(|h| self.consumers[h].topic.clone())
            .collect();
        topics.sort();
        topics.dedup();
        for t in &topics {
            let queues = self.store.topics.queues(t).unwrap_or(0);
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
            let queues = self.store.system_queues(&retry, 1)?;
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
        for h in members {
            let assigned = plan.remove(&h).unwrap_or_default();
            let owner = self.consumers[&h].owner();
            let mut slots = Vec::with_capacity(assigned.len());
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
                let slot = self.ensure_progress(&owner, t, *q, from, was_known, now);
                slots.push(slot);
                let p = self
                    .progress
                    .at_mut(slot)
                    .expect("progress was just ensured");
                if p.owner != Some(h) {
                    if p.owner.is_some() {
                        p.rewind();
                    }
                    p.owner = Some(h);
                    p.epoch += 1;
                }
            }
            if let Some(c) = self.consumers.get_mut(&h) {
                c.assigned = assigned;
                c.slots = slots;
            }
        }
        Ok(())
    }

    pub(super) fn ensure_progress(
        &mut self,
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
        let (min, max) = self
            .store
            .cq(t, q)
            .map_or((0, 0), |cq| (cq.min_offset(), cq.max_offset()));
        let next = match self.offsets.get(t, owner, q) {
            Some(o) => o.clamp(min, max),
            // A queue added to a topic the group already consumes: from its start.
            None if known_group => min,
            None => self.start_offset(t, q, start, now),
        };
        let slot = self.progress.insert(
            key,
            QueueProgress {
                next,
                ..QueueProgress::default()
            },
        );
        self.offsets.set(t, owner, q, next);
        self.offsets_dirty = true;
        slot
    }

    pub(super) fn start_offset(&self, t: &str, q: u32, start: StartFrom, now: u64) -> u64 {
        let Some(cq) = self.store.cq(t, q) else {
            return 0;
        };
        match start {
            StartFrom::Earliest => cq.min_offset(),
            StartFrom::Latest => cq.max_offset(),
            StartFrom::Timestamp(ms) => self.offset_at_time(t, q, ms.min(now.max(ms))),
        }
    }

    /// The first queue offset of (t, q) stored at or after `ms`.
    pub(super) fn offset_at_time(&self, t: &str, q: u32, ms: u64) -> u64 {
        let Some(cq) = self.store.cq(t, q) else {
            return 0;
        };
        let log = &self.store.commitlog;
        cq.search(|e| {
            log.with_record(e.phys, |r| r.store_ts >= ms)
                .unwrap_or(false)
        })
    }

    pub(super) fn visible(entry_end: u64, visible_end: u64) -> bool {
        entry_end <= visible_end
    }

    /// Up to `max` messages for consumer `handle`, without waiting.
    pub fn receive(
        &mut self,
        handle: u64,
        max: usize,
        visible_end: u64,
        now: u64,
    ) -> Result<Vec<MessageExt>> {
        self.check_open()?;
        let State {
            store,
            consumers,
            progress,
            offsets_dirty,
            group_out,
            ..
        } = self;
        let Some(c) = consumers.get_mut(&handle) else {
            return Err(Error::Closed);
        };
        let mut out = Vec::new();
        let n = c.assigned.len();
        if n == 0 || max == 0 {
            return Ok(out);
        }
        let mut entries = Vec::with_capacity(64);
        let mut span: Option<(u64, Bytes)> = None;
        for i in 0..n {
            if out.len() >= max {
                break;
            }
            let (t, q) = &c.assigned[(c.rr + i) % n];
            let slot = c.slots[(c.rr + i) % n];
            let Some(p) = progress.at_mut(slot) else {
                continue;
            };
            let Some(cq) = store.cq(t, *q) else { continue };
            let is_retry = t.starts_with(RETRY_PREFIX);
            let filter = if is_retry { None } else { Some(&c.filter) };
            let mut limit = max - out.len();
            if c.orderly {
                if !p.inflight.is_empty() || now < p.suspend_until {
                    continue;
                }
                limit = 1;
            }
            if p.next < cq.min_offset() {
                p.next = cq.min_offset();
                p.inflight.drop_below(p.next);
                *offsets_dirty = true;
            }
            let mut scanned = 0usize;
            'queue: while limit > 0 && p.next < cq.max_offset() && scanned < 4096 {
                cq.entries(p.next, 64.min(limit.max(16)), &mut entries);
                if entries.is_empty() {
                    break;
                }
                for e in &entries {
                    scanned += 1;
                    if e.size == i32::MAX as u32 {
                        p.next += 1;
                        continue;
                    }
                    if !Self::visible(e.phys + e.size as u64, visible_end) {
                        break 'queue;
                    }
                    let qo = p.next;
                    if let Some(f) = filter {
                        if !f.matches_code(e.code) {
                            p.next += 1;
                            *offsets_dirty = true;
                            continue;
                        }
                    }
                    let msg = store.commitlog.with_record(e.phys, |r| {
                        if let Some(f) = filter {
                            if !f.matches_tag(r.tags()) {
                                return None;
                            }
                        }
                        let (at, len) = r.body_range();
                        Some((r.to_message(store.nonce, Bytes::new()), at, len))
                    });
                    p.next += 1;
                    let Some(Some((mut m, at, len))) = msg else {
                        *offsets_dirty = true;
                        continue;
                    };
                    // Bodies of one receive share one view of the segment.
                    let from = e.phys + at as u64;
                    let to = from + len as u64;
                    if span
                        .as_ref()
                        .is_none_or(|(s, b)| from < *s || to > s + b.len() as u64)
                    {
                        span = store.commitlog.read_to_segment_end(from).map(|b| (from, b));
                    }
                    m.body = match &span {
                        Some((s, b)) if to <= s + b.len() as u64 => {
                            b.slice((from - s) as usize..(to - s) as usize)
                        }
                        _ => Bytes::new(),
                    };
                    m.reconsume_times += p.orderly_retries;
                    m.receipt = Some(Receipt {
                        consumer: handle,
                        slot,
                        queue_offset: qo,
                        epoch: p.epoch,
                    });
                    p.inflight.insert(qo);
                    out.push(m);
                    limit -= 1;
                    if limit == 0 {
                        break 'queue;
                    }
                }
            }
        }
        c.rr = (c.rr + 1) % n;
        if !out.is_empty() {
            let k = (c.group.clone(), c.topic.clone());
            group_out.entry(k).or_default().total += out.len() as u64;
        }
        Ok(out)
    }

    /// Whether a receive by `handle` might find something now.
    pub fn may_have_messages(&self, handle: u64, visible_end: u64, now: u64) -> bool {
        let Some(c) = self.consumers.get(&handle) else {
            return true;
        };
        c.assigned.iter().zip(&c.slots).any(|((t, q), slot)| {
            let Some(p) = self.progress.at(*slot) else {
                return false;
            };
            if c.orderly && (!p.inflight.is_empty() || now < p.suspend_until) {
                return false;
            }
            self.store.cq(t, *q).is_some_and(|cq| {
                p.next < cq.max_offset()
                    && cq.entry(p.next.max(cq.min_offset())).is_none_or(|e| {
                        e.phys + e.size as u64 <= visible_end || e.size == i32::MAX as u32
                    })
            })
        })
    }

    /// The progress a receipt refers to, if it is still current.
    pub(super) fn progress_for(
        &mut self,
        handle: u64,
        msg: &MessageExt,
    ) -> Result<Option<(usize, Receipt)>> {
        self.check_open()?;
        if !self.consumers.contains_key(&handle) {
            return Err(Error::Closed);
        }
        let Some(r) = &msg.receipt else {
            return Err(Error::invalid(
                "this message was not received by a consumer (no receipt to ack)",
            ));
        };
        if r.consumer != handle {
            return Err(Error::invalid(
                "this message was received by another consumer; ack it there",
            ));
        }
        match self.progress.at(r.slot) {
            Some(p) if p.epoch == r.epoch && p.inflight.contains(r.queue_offset) => {
                Ok(Some((r.slot, r.clone())))
            }
            // Already acked, or the queue moved to another consumer: nothing to do.
            _ => Ok(None),
        }
    }

    pub fn ack(&mut self, handle: u64, msg: &MessageExt) -> Result<()> {
        if let Some((slot, r)) = self.progress_for(handle, msg)? {
            if let Some(p) = self.progress.at_mut(slot) {
                p.inflight.remove(r.queue_offset);
                p.orderly_retries = 0;
                self.offsets_dirty = true;
            }
        }
        Ok(())
    }

    /// A failed delivery: retry later via the group's retry topic, or in place for an
    /// orderly consumer, or to the dead-letter queue past the limit.
    pub fn nack(&mut self, handle: u64, msg: &MessageExt, now: u64) -> Result<()> {
        let Some((slot, r)) = self.progress_for(handle, msg)? else {
            return Ok(());
        };
        let c = self.consumers[&handle].clone();
        if c.model == MessageModel::Broadcasting {
            // RocketMQ does not retry in broadcasting mode: the message is dropped.
            return self.ack(handle, msg);
        }
        let max = c.max_reconsume_times;
        if c.orderly {
            let retries = self.progress.at(slot).map_or(0, |p| p.orderly_retries);
            if msg.reconsume_times < max && retries < max {
                if let Some(p) = self.progress.at_mut(slot) {
                    p.inflight.remove(r.queue_offset);
                    p.next = r.queue_offset;
                    p.orderly_retries += 1;
                    p.suspend_until = now + 1000;
                    self.next_due = self.next_due.min(p.suspend_until);
                }
                return Ok(());
            }
            self.send_back(&c.group, msg, true, now)?;
            return self.ack(handle, msg);
        }
        let to_dlq = msg.reconsume_times >= max;
        self.send_back(&c.group, msg, to_dlq, now)?;
        self.ack(handle, msg)
    }

    /// Stores a copy of `msg` in the group's retry topic (after a delay level) or DLQ.
    pub(super) fn send_back(
        &mut self,
        group: &str,
        msg: &MessageExt,
        to_dlq: bool,
        now: u64,
    ) -> Result<()> {
        let phys = msg.commitlog_offset;
        let nonce = self.store.nonce;
        let copy = self.store.commitlog.with_record(phys, |rv| {
            let mut p = copy_properties(
                rv.raw_properties(),
                &[
                    prop::DELAY,
                    prop::TIMER_DELIVER_MS,
                    prop::REAL_TOPIC,
                    prop::REAL_QID,
                ],
            );
            let raw = rv.raw_properties();
            if record::prop_value(raw, prop::RETRY_TOPIC).is_none() {
                record::push_prop(&mut p, prop::RETRY_TOPIC, &msg.topic);
            }
            if record::prop_value(raw, prop::ORIGIN_MESSAGE_ID).is_none() {
                record::push_prop(&mut p, prop::ORIGIN_MESSAGE_ID, &msg.msg_id);
            }
            if record::prop_value(raw, prop::UNIQ_KEY).is_none() {
                record::push_prop(&mut p, prop::UNIQ_KEY, &record::make_msg_id(nonce, phys));
            }
            let (at, len) = rv.body_range();
            (p, rv.sys_flag, rv.born_ts, at, len)
        });
        let Some((mut props, sys_flag, born_ts, at, len)) = copy else {
            // The original is gone (retention): nothing left to retry.
            return Ok(());
        };
        let body = self
            .store
            .commitlog
            .read(phys + at as u64, len)
            .unwrap_or_default();
        let reconsume = msg.reconsume_times + 1;
        let (t, q) = if to_dlq {
            let dlq = format!("{DLQ_PREFIX}{group}");
            self.store.system_queues(&dlq, 1)?;
            (dlq.into(), 0)
        } else {
            let retry = format!("{RETRY_PREFIX}{group}");
            self.store.system_queues(&retry, 1)?;
            let levels = self.settings.levels.len() as u32;
            let level = (3 + msg.reconsume_times).min(levels).max(1);
            record::push_prop(&mut props, prop::DELAY, &level.to_string());
            record::push_prop(&mut props, prop::REAL_TOPIC, &retry);
            record::push_prop(&mut props, prop::REAL_QID, "0");
            self.store.system_queues(topic::SCHEDULE_TOPIC, levels)?;
            (topic::SCHEDULE_TOPIC.into(), level - 1)
        };
        let spec = RecordSpec {
            topic: t,
            queue_id: q,
            sys_flag,
            born_ts,
            reconsume_times: reconsume,
            prepared_tx_offset: 0,
            body,
            properties: props,
        };
        self.put(std::slice::from_ref(&spec), now)?;
        Ok(())
    }
}
