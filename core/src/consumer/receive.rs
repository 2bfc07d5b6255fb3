//! Receiving: a consumer reads its queues round robin from each cursor, through its
//! filter (retry topics unfiltered), up to what is visible (under `sync` flushing,
//! only durable records), marking what it hands out in flight; and acks.
//!
//! Bodies of one receive share one zero-copy view of their segment. An orderly
//! consumer takes one message per queue and nothing from a queue with one in flight
//! or paused.

use bytes::Bytes;

use super::ConsumerGroups;
use crate::message_store::MessageStore;
use crate::topic::RETRY_PREFIX;
use crate::{Error, MessageExt, Receipt, Result};

impl ConsumerGroups {
    /// Up to `max` messages for consumer `handle`, without waiting.
    pub fn receive(
        &mut self,
        store: &MessageStore,
        handle: u64,
        max: usize,
        visible_end: u64,
        now: u64,
    ) -> Result<Vec<MessageExt>> {
        let ConsumerGroups {
            consumers,
            progress,
            offsets_dirty,
            delivered,
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
            let Some(cq) = store.queues.get(t, *q) else {
                continue;
            };
            let is_retry = t.starts_with(RETRY_PREFIX);
            let filter = (!is_retry && !c.filter.takes_all()).then_some(&c.filter);
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
                    if e.phys.saturating_add(e.size as u64) > visible_end {
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
                        if filter.is_some_and(|f| !f.matches(r.raw_properties())) {
                            return None;
                        }
                        let (at, len) = r.body_range();
                        Some((
                            MessageExt::from_record(r, store.nonce, Bytes::new()),
                            at,
                            len,
                        ))
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
                    m.reconsume_times = m.reconsume_times.saturating_add(p.orderly_retries);
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
            delivered.entry(k).or_default().total += out.len() as u64;
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

    /// The progress a receipt refers to, if it is still current.
    pub(super) fn progress_for(
        &mut self,
        handle: u64,
        msg: &MessageExt,
    ) -> Result<Option<(usize, Receipt)>> {
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
}
