//! Receiving: a consumer reads its queues round robin from each cursor, through its
//! filter (retry topics unfiltered), up to what is visible (under `sync` flushing,
//! only durable records), marking what it hands out in flight; and acks.
//!
//! Bodies of one receive share one zero-copy view of their segment. An orderly
//! consumer takes one message per queue and nothing from a queue with one in flight
//! or paused.

use super::ConsumerGroups;
use crate::commitlog::Span;
use crate::message::record::{self, Parsed};
use crate::message::{taken_list, Delivery, Taken, READ_BUDGET};
use crate::message_store::MessageStore;
use crate::topic::RETRY_PREFIX;
use crate::{Error, MessageExt, Receipt, Result};

/// Whether the retry copy `record` (at `phys`) is of a message whose topic was
/// deleted after the copy was made.
fn retry_of_deleted(store: &MessageStore, record: &[u8], phys: u64) -> bool {
    match record::parse(record, phys, false) {
        Parsed::Record(r) => store.deleted.hides_retry(r.raw_properties(), phys),
        _ => false,
    }
}

impl ConsumerGroups {
    /// Up to `max` messages for consumer `handle`, without waiting (built by the
    /// caller once the engine is unlocked).
    pub fn receive(
        &mut self,
        store: &MessageStore,
        handle: u64,
        max: usize,
        visible_end: u64,
        now: u64,
    ) -> Result<Vec<Taken>> {
        let ConsumerGroups {
            consumers,
            progress,
            offsets_dirty,
            delivered,
            entries,
            ..
        } = self;
        let Some(c) = consumers.get_mut(&handle) else {
            return Err(Error::Closed);
        };
        let n = c.assigned.len();
        let held: usize = c
            .slots
            .iter()
            .filter_map(|s| progress.at(*s))
            .map(|p| p.inflight.len())
            .sum();
        // Flow control: never more than max_in_flight unacked.
        let max = max.min(c.max_in_flight.saturating_sub(held));
        if n == 0 || max == 0 {
            return Ok(Vec::new());
        }
        let mut out = taken_list(max.min(64));
        let mut span = Span::default();
        let mut bytes = 0u64;
        for i in 0..n {
            if out.len() >= max || bytes >= READ_BUDGET {
                break;
            }
            let (t, q) = &c.assigned[(c.rr + i) % n];
            let slot = c.slots[(c.rr + i) % n];
            let Some(p) = progress.at_mut(slot) else {
                continue;
            };
            let Some(cq) = store.queues.get(t, *q) else {
                continue;
            };
            let is_retry = t.starts_with(RETRY_PREFIX);
            let filter = (!is_retry && !c.filter.takes_all()).then_some(&c.filter);
            // Retries of a topic deleted since they were made are as unreachable as it.
            let hide_deleted = is_retry && !store.deleted.topics.is_empty();
            let mut limit = max - out.len();
            if c.orderly {
                if !p.inflight.is_empty() || now < p.suspend_until {
                    continue;
                }
                // Whatever a previous owner held here is settled.
                p.held_by = None;
                limit = 1;
            }
            if p.next < cq.min_offset() {
                p.next = cq.min_offset();
                p.inflight.drop_below(p.next);
                *offsets_dirty = true;
            }
            let mut scanned = 0usize;
            'queue: while limit > 0 && p.next < cq.max_offset() && scanned < 4096 {
                cq.entries(p.next, 64.min(limit.max(16)), entries);
                if entries.is_empty() {
                    break;
                }
                for e in entries.iter() {
                    scanned += 1;
                    if e.size == i32::MAX as u32 {
                        p.next += 1;
                        continue;
                    }
                    if e.phys.saturating_add(e.size as u64) > visible_end {
                        break 'queue;
                    }
                    let qo = p.next;
                    if !p.acked_ahead.is_empty() && p.acked_ahead.remove(&qo) {
                        // Acked in an atomic block before a crash.
                        p.next += 1;
                        *offsets_dirty = true;
                        continue;
                    }
                    if let Some(f) = filter {
                        if !f.matches_code(e.code) {
                            p.next += 1;
                            *offsets_dirty = true;
                            continue;
                        }
                    }
                    p.next += 1;
                    let record = store
                        .commitlog
                        .record_in(&mut span, e.phys, e.size as usize);
                    // The record is checked once (record_in); the filter reads it as taken.
                    let taken = !record.is_empty()
                        && filter.is_none_or(|f| match record::parse(&record, e.phys, false) {
                            Parsed::Record(r) => f.matches(r.raw_properties()),
                            _ => false,
                        })
                        && !(hide_deleted && retry_of_deleted(store, &record, e.phys));
                    if !taken {
                        *offsets_dirty = true;
                        continue;
                    }
                    p.inflight.insert(qo, now);
                    out.push(Taken {
                        record,
                        phys: e.phys,
                        how: Delivery::Classic {
                            receipt: Receipt {
                                consumer: handle,
                                slot,
                                queue_offset: qo,
                                epoch: p.epoch,
                            },
                            retries: p.orderly_retries,
                        },
                    });
                    limit -= 1;
                    bytes += u64::from(e.size);
                    if limit == 0 || bytes >= READ_BUDGET {
                        break 'queue;
                    }
                }
            }
        }
        c.rr = (c.rr + 1) % n;
        if !out.is_empty() {
            let by_topic = match delivered.get_mut(c.group.as_str()) {
                Some(by_topic) => by_topic,
                None => delivered.entry(c.group.clone()).or_default(),
            };
            match by_topic.get_mut(c.topic.as_str()) {
                Some(counter) => counter.total += out.len() as u64,
                None => by_topic.entry(c.topic.clone()).or_default().total = out.len() as u64,
            }
        }
        Ok(out)
    }

    /// Whether a receive by `handle` might find something now.
    pub fn may_have_messages(
        &self,
        store: &MessageStore,
        handle: u64,
        visible_end: u64,
        now: u64,
    ) -> bool {
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
            store.queues.get(t, *q).is_some_and(|cq| {
                p.next < cq.max_offset()
                    && cq.entry(p.next.max(cq.min_offset())).is_none_or(|e| {
                        e.phys.saturating_add(e.size as u64) <= visible_end
                            || e.size == i32::MAX as u32
                    })
            })
        })
    }

    /// The receipt of a message a consumer received.
    pub fn receipt_of(msg: &MessageExt) -> Result<&Receipt> {
        msg.receipt.as_ref().ok_or_else(|| {
            Error::invalid("this message was not received by a consumer (no receipt to ack)")
        })
    }

    /// The progress slot of the delivery `r` names if consumer `handle` still holds
    /// it; None when it does not (acked, sent back, or its queue moved).
    pub fn held(&self, handle: u64, r: &Receipt) -> Result<Option<usize>> {
        if !self.consumers.contains_key(&handle) {
            return Err(Error::Closed);
        }
        if r.consumer != handle {
            return Err(Error::invalid(
                "this message was received by another consumer; ack it there",
            ));
        }
        Ok(self
            .progress
            .at(r.slot)
            .is_some_and(|p| p.epoch == r.epoch && p.inflight.contains(r.queue_offset))
            .then_some(r.slot))
    }

    /// An ack of a delivery a rebalance took back (its queue moved, and maybe moved
    /// back) before the message was delivered again: it still counts, so the
    /// message is passed over, not delivered twice. Once delivered again, or after
    /// a reset, it changes nothing.
    fn ack_rewound(&mut self, r: &Receipt) {
        let Some(p) = self.progress.at_mut(r.slot) else {
            return;
        };
        if r.epoch >= p.reset_epoch && r.epoch < p.epoch && r.queue_offset >= p.next {
            p.acked_ahead.insert(r.queue_offset);
        }
    }

    /// The progress a receipt refers to, if it is still current.
    pub(super) fn progress_for(
        &mut self,
        handle: u64,
        msg: &MessageExt,
    ) -> Result<Option<(usize, Receipt)>> {
        let r = Self::receipt_of(msg)?;
        Ok(self.held(handle, r)?.map(|slot| (slot, r.clone())))
    }

    /// Marks `msg` done for `handle`'s group. True when a receive of that consumer
    /// may now find more (an orderly queue freed, or room under `max_in_flight`).
    pub fn ack(&mut self, handle: u64, msg: &MessageExt) -> Result<bool> {
        self.ack_receipt(handle, Self::receipt_of(msg)?)
    }

    /// `ack` by receipt.
    pub fn ack_receipt(&mut self, handle: u64, r: &Receipt) -> Result<bool> {
        let Some(slot) = self.held(handle, r)? else {
            self.ack_rewound(r);
            return Ok(false);
        };
        let c = &self.consumers[&handle];
        let held: usize = c
            .slots
            .iter()
            .filter_map(|s| self.progress.at(*s))
            .map(|p| p.inflight.len())
            .sum();
        let freed = c.orderly || held >= c.max_in_flight;
        if let Some(p) = self.progress.at_mut(slot) {
            p.inflight.remove(r.queue_offset);
            p.orderly_retries = 0;
            self.offsets_dirty = true;
        }
        Ok(freed)
    }
}
