//! One simple consumer group on one topic: per queue a window of offset states
//! from the committed offset, the expired deliveries waiting to go out again, and
//! (fifo) which sharding keys have a message out and which wait behind them.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use super::revive::{Op, Pending};
use super::{push_expiry, Expiry};
use crate::commitlog::Span;
use crate::filter::MessageFilter;
use crate::message::properties::{self, prop};
use crate::message::{Delivery, Taken};
use crate::message_store::MessageStore;

/// The state of one offset of a queue's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    /// Not yet looked at (after a restart, between replayed deliveries).
    Unread,
    /// Acked, dead-lettered, or not taken by the filter.
    Done,
    /// Delivered and invisible until `until` (broker clock, ms).
    Invisible { until: u64, attempt: u32, gen: u32 },
    /// Its invisibility expired: to be delivered again.
    Ready { attempt: u32, gen: u32 },
    /// fifo: read, waiting for the message before it of the same key.
    Blocked,
}

#[derive(Debug, Default)]
pub(super) struct Queue {
    /// The committed offset: the lowest offset not done.
    pub base: u64,
    /// State of offsets `base..base + window.len()`.
    pub window: VecDeque<Slot>,
    /// From here on the window may hold unread offsets.
    pub scan: u64,
    /// The highest generation handed out on this queue, resets included.
    pub issued: u32,
    /// Generations up to here were handed out before the last reset: the deliveries
    /// after it count on from above, so no handle of before names one of them.
    pub floor: u32,
}

impl Queue {
    /// A queue starting at `base`.
    pub fn at(base: u64) -> Queue {
        Queue {
            base,
            scan: base,
            ..Queue::default()
        }
    }

    /// Starts afresh at `base` (a reset): what was in flight is forgotten, and the
    /// generations of what is delivered from now on are new.
    pub fn restart(&mut self, base: u64) {
        *self = Queue {
            floor: self.issued,
            issued: self.issued,
            ..Queue::at(base)
        };
    }

    pub fn slot(&self, offset: u64) -> Option<Slot> {
        let i = usize::try_from(offset.checked_sub(self.base)?).ok()?;
        self.window.get(i).copied()
    }

    /// Sets the state of `offset`, growing the window with unread offsets up to it.
    pub fn set(&mut self, offset: u64, slot: Slot) {
        if offset < self.base {
            return;
        }
        let i = (offset - self.base) as usize;
        if i >= self.window.len() {
            self.window.resize(i + 1, Slot::Unread);
        }
        if let Slot::Invisible { gen, .. } | Slot::Ready { gen, .. } = slot {
            self.issued = self.issued.max(gen);
        }
        self.window[i] = slot;
    }

    /// Moves the committed offset past done offsets; true when it moved.
    pub fn advance(&mut self) -> bool {
        let before = self.base;
        while self.window.front() == Some(&Slot::Done) {
            self.window.pop_front();
            self.base += 1;
        }
        self.scan = self.scan.max(self.base);
        self.base != before
    }

    pub fn end(&self) -> u64 {
        self.base + self.window.len() as u64
    }
}

/// What a receive delivers with: the store, the group's index, the invisibility's
/// end, where expiries and revive ops go, and the segment view bodies share.
pub(super) struct Delivering<'a> {
    pub store: &'a MessageStore,
    /// Bytes of records the receive may still take (`READ_BUDGET`).
    pub room: u64,
    pub g: u32,
    pub until: u64,
    pub expiry: &'a mut BTreeMap<u64, Vec<Expiry>>,
    pub pending: &'a mut Pending,
    pub span: Span,
}

/// One simple consumer group (on one topic).
pub(crate) struct PopGroup {
    pub name: String,
    pub topic: String,
    pub(super) filter: Option<Arc<dyn MessageFilter>>,
    pub fifo: bool,
    pub max_attempts: u32,
    pub(super) queues: Vec<Queue>,
    /// Expired deliveries waiting to go out again, oldest first.
    pub(super) ready: VecDeque<(u32, u64)>,
    /// fifo: keys with a message delivered and not done.
    pub(super) busy: HashSet<String>,
    /// fifo: per key, the offsets read and waiting for it.
    pub(super) blocked: HashMap<String, VecDeque<(u32, u64)>>,
    pub(super) rr: usize,
    /// Live members.
    pub members: usize,
    /// Names the group in receipt handles.
    pub(super) tag: u32,
    /// The group's state on `%RETRY%<group>` (redriven dead letters), which its
    /// members read too.
    pub(super) retry: Option<u32>,
    /// The retry topic went first on the last receive.
    pub(super) retry_first: bool,
}

impl PopGroup {
    /// Each queue's committed offset: every message below it is done.
    pub fn committed(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.queues
            .iter()
            .enumerate()
            .map(|(q, s)| (q as u32, s.base))
    }

    /// The sharding key of the message at (q, offset), if it has one.
    pub(super) fn key_of(&self, store: &MessageStore, q: u32, offset: u64) -> Option<String> {
        let e = store.queues.get(&self.topic, q)?.entry(offset)?;
        store
            .commitlog
            .with_record(e.phys, |r| {
                properties::value(r.raw_properties(), prop::SHARDING_KEY).map(str::to_string)
            })
            .flatten()
    }

    /// fifo: `key`'s message is done; the next one waiting for it may go (true
    /// when there is one).
    pub(super) fn release(&mut self, key: &str) -> bool {
        self.busy.remove(key);
        let next = self.blocked.get_mut(key).and_then(VecDeque::pop_front);
        if self.blocked.get(key).is_some_and(VecDeque::is_empty) {
            self.blocked.remove(key);
        }
        if let Some((q, offset)) = next {
            self.queues[q as usize].set(offset, Slot::Ready { attempt: 0, gen: 0 });
            self.ready.push_back((q, offset));
            self.busy.insert(key.to_string());
            return true;
        }
        false
    }

    /// Marks (q, offset) delivered and builds the message; None when the record is
    /// gone (retention): then it is done.
    pub(super) fn deliver(
        &mut self,
        d: &mut Delivering<'_>,
        q: u32,
        offset: u64,
        attempt: u32,
        gen: u32,
    ) -> Option<Taken> {
        let Delivering {
            store,
            g,
            until,
            ref mut expiry,
            ref mut pending,
            ref mut span,
            ..
        } = *d;
        let pq = &mut self.queues[q as usize];
        let gen = gen.max(pq.floor.saturating_add(1));
        let record = store
            .queues
            .get(&self.topic, q)
            .and_then(|cq| cq.entry(offset))
            .map(|e| {
                (
                    e.phys,
                    store.commitlog.record_in(span, e.phys, e.size as usize),
                )
            })
            .filter(|(_, record)| !record.is_empty());
        let Some((phys, record)) = record else {
            pq.set(offset, Slot::Done);
            pending.push(g, Op::Ack { queue: q, offset });
            return None;
        };
        pq.set(
            offset,
            Slot::Invisible {
                until,
                attempt,
                gen,
            },
        );
        push_expiry(
            expiry,
            until,
            Expiry {
                group: g,
                queue: q,
                offset,
                gen,
            },
        );
        pending.push(
            g,
            Op::Pop {
                queue: q,
                offset,
                attempt,
                gen,
                until,
            },
        );
        Some(Taken {
            record,
            phys,
            how: Delivery::Simple {
                tag: self.tag,
                queue: q,
                offset,
                gen,
                attempt,
            },
        })
    }

    /// Whether the group's filter takes the message of this ConsumeQueue entry.
    pub(super) fn takes(&self, store: &MessageStore, code: u64, phys: u64) -> bool {
        self.filter.as_ref().is_none_or(|f| {
            f.takes_all()
                || (f.matches_code(code)
                    && store
                        .commitlog
                        .with_record(phys, |r| f.matches(r.raw_properties()))
                        .unwrap_or(false))
        })
    }

    /// Reads unread offsets of queue `q` (first those left in the window, then new
    /// ones) into `out`, up to `max`: filtered ones are done, fifo ones whose key is
    /// busy wait.
    pub(super) fn read_new(
        &mut self,
        d: &mut Delivering<'_>,
        q: u32,
        max: usize,
        visible_end: u64,
        out: &mut Vec<Taken>,
    ) {
        let store = d.store;
        let Some(cq) = store.queues.get(&self.topic, q) else {
            return;
        };
        let mut taken = 0;
        let mut scanned = 0;
        loop {
            let pq = &mut self.queues[q as usize];
            if pq.scan < cq.min_offset() {
                // Retention took what was not read: forget it.
                let min = cq.min_offset();
                while pq.base < min {
                    pq.window.pop_front();
                    pq.base += 1;
                }
                pq.scan = min;
            }
            let offset = pq.scan;
            if taken >= max || d.room == 0 || scanned >= 4096 || offset >= cq.max_offset() {
                return;
            }
            scanned += 1;
            match pq.slot(offset) {
                Some(Slot::Unread) | None => {}
                Some(_) => {
                    pq.scan += 1;
                    continue;
                }
            }
            let Some(e) = cq.entry(offset) else { return };
            if e.phys + e.size as u64 > visible_end {
                return;
            }
            pq.scan += 1;
            if e.size == i32::MAX as u32 || !self.takes(store, e.code, e.phys) {
                self.queues[q as usize].set(offset, Slot::Done);
                continue;
            }
            let key = if self.fifo {
                self.key_of(store, q, offset)
            } else {
                None
            };
            if let Some(k) = key.as_ref().filter(|k| self.busy.contains(*k)) {
                self.queues[q as usize].set(offset, Slot::Blocked);
                self.blocked
                    .entry(k.clone())
                    .or_default()
                    .push_back((q, offset));
                continue;
            }
            if let Some(m) = self.deliver(d, q, offset, 1, 1) {
                d.room = d.room.saturating_sub(m.record.len() as u64);
                out.push(m);
                taken += 1;
                if let Some(k) = key {
                    self.busy.insert(k);
                }
            }
        }
    }
}
