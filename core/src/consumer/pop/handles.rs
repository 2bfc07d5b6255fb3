//! What a receipt handle does: the delivery it names if current, acks, changes of
//! invisibility, dead-lettering at once, and the acks an atomic block applies.

use super::expiry::push_expiry;
use super::group::Slot;
use super::receipt::{handle, parse_handle, stale};
use super::revive::Op;
use super::{Expired, Expiry, PopGroups};
use crate::message_store::MessageStore;
use crate::{Error, Result};

impl PopGroups {
    /// The group of member `member` whose deliveries carry `tag`: its group on its
    /// topic, or on its retry topic (redriven dead letters). None for another tag.
    fn group_of(&self, member: u64, tag: u32) -> Option<u32> {
        let g = *self.members.get(&member)?;
        let retry = self.groups[g as usize].retry;
        [Some(g), retry]
            .into_iter()
            .flatten()
            .find(|&i| self.groups[i as usize].tag == tag)
    }

    /// The slot a receipt handle names, if the handle is current for member `member`.
    pub(crate) fn current(
        &self,
        member: u64,
        h: &str,
        now: u64,
    ) -> Result<(u32, u32, u64, u32, u32)> {
        if !self.members.contains_key(&member) {
            return Err(Error::Closed);
        }
        let (tag, q, offset, gen) =
            parse_handle(h).ok_or_else(|| stale(h, "not a receipt handle"))?;
        let g = self
            .group_of(member, tag)
            .ok_or_else(|| stale(h, "not a handle of this group"))?;
        let group = &self.groups[g as usize];
        match group.queues.get(q as usize).and_then(|pq| pq.slot(offset)) {
            Some(Slot::Invisible {
                until,
                attempt,
                gen: current,
            }) if current == gen && until > now => Ok((g, q, offset, attempt, gen)),
            _ => Err(stale(
                h,
                "not the current delivery (expired, changed or acked)",
            )),
        }
    }

    /// Whether the delivery `h` names (of member `member`'s group) is done: acked or
    /// dead-lettered. False for a handle of another group or not a handle at all.
    pub fn is_done(&self, member: u64, h: &str) -> bool {
        let Some((tag, q, offset, _)) = parse_handle(h) else {
            return false;
        };
        let Some(g) = self.group_of(member, tag) else {
            return false;
        };
        self.groups[g as usize]
            .queues
            .get(q as usize)
            .is_some_and(|pq| offset < pq.base || pq.slot(offset) == Some(Slot::Done))
    }

    /// Which delivery `h` is (1 the first), if it is current.
    pub fn attempt(&self, member: u64, h: &str, now: u64) -> Result<u32> {
        self.current(member, h, now)
            .map(|(_, _, _, attempt, _)| attempt)
    }

    /// Acks the delivery `h` names; true when that made another message visible
    /// (fifo: the next of its key).
    pub fn ack(&mut self, store: &MessageStore, member: u64, h: &str, now: u64) -> Result<bool> {
        let (g, q, offset, _, _) = self.current(member, h, now)?;
        Ok(self.finish(store, g, q, offset))
    }

    /// Marks (g, q, offset) done (acked or dead-lettered) and frees its fifo key;
    /// true when the key's next message became visible.
    pub(super) fn finish(&mut self, store: &MessageStore, g: u32, q: u32, offset: u64) -> bool {
        let group = &mut self.groups[g as usize];
        let pq = &mut group.queues[q as usize];
        pq.set(offset, Slot::Done);
        self.moved |= pq.advance();
        self.pending.push(g, Op::Ack { queue: q, offset });
        if group.fifo {
            if let Some(key) = group.key_of(store, q, offset) {
                return group.release(&key);
            }
        }
        false
    }

    /// Changes the invisibility of the delivery `h` names to `ms` from now; returns
    /// the new handle (the old one is no longer valid). Zero makes it visible now.
    pub fn change_invisible(&mut self, member: u64, h: &str, ms: u64, now: u64) -> Result<String> {
        self.change(member, h, ms, now, true)
    }

    /// `change_invisible` for a delivery given back unconsumed (RocketMQ 5's
    /// `suspend`): when it comes back it is not a failed attempt (the next delivery
    /// has the same attempt number), as a closing classic consumer gives its
    /// deliveries back. A restart before the next delivery counts it as one.
    pub fn suspend(&mut self, member: u64, h: &str, ms: u64, now: u64) -> Result<String> {
        self.change(member, h, ms, now, false)
    }

    fn change(&mut self, member: u64, h: &str, ms: u64, now: u64, counts: bool) -> Result<String> {
        let (g, q, offset, attempt, gen) = self.current(member, h, now)?;
        let group = &mut self.groups[g as usize];
        let gen = gen.wrapping_add(1).max(1);
        let until = now.saturating_add(ms);
        let pq = &mut group.queues[q as usize];
        // Not counted: the next delivery has this one's number again.
        let attempt = if counts {
            attempt
        } else {
            attempt.saturating_sub(1)
        };
        // Visible now, with attempts left: delivered again. On its last attempt it
        // expires now instead, into the dead-letter queue (the engine's next step).
        if ms == 0 && attempt < group.max_attempts {
            pq.set(offset, Slot::Ready { attempt, gen });
            group.ready.push_back((q, offset));
        } else {
            pq.set(
                offset,
                Slot::Invisible {
                    until,
                    attempt,
                    gen,
                },
            );
            push_expiry(
                &mut self.expiry,
                until,
                Expiry {
                    group: g,
                    queue: q,
                    offset,
                    gen,
                },
            );
        }
        self.pending.push(
            g,
            Op::Change {
                queue: q,
                offset,
                gen,
                until,
            },
        );
        Ok(handle(group.tag, q, offset, gen))
    }

    /// The revive record body an atomic block appends for its acks of (group, queue,
    /// offset): the ops buffered so far (so each delivery comes before its ack), then
    /// the acks. None when nothing is logged (a memory store) or there is nothing.
    pub fn block_record(&self, acks: &[(u32, u32, u64)]) -> Option<Vec<u8>> {
        if self.pending.off || acks.is_empty() {
            return None;
        }
        let mut p = self.pending.clone();
        for &(g, queue, offset) in acks {
            p.push(g, Op::Ack { queue, offset });
        }
        p.take(|g| self.name_of(g))
    }

    /// An atomic block with these acks (and `block_record`'s record) was stored: the
    /// acks take effect, and the buffered ops are in the log now.
    pub fn acked_in_block(&mut self, store: &MessageStore, acks: &[(u32, u32, u64)]) {
        if acks.is_empty() {
            return;
        }
        for &(g, q, offset) in acks {
            self.finish(store, g, q, offset);
        }
        self.pending.clear();
    }

    /// The delivery `h` names, to dead-letter at once (ForwardMessageToDeadLetterQueue).
    pub fn take_for_dead_letter(&self, member: u64, h: &str, now: u64) -> Result<Expired> {
        let (group, queue, offset, attempt, _) = self.current(member, h, now)?;
        Ok(Expired {
            group,
            queue,
            offset,
            attempt,
        })
    }

    /// A dead letter was appended for `e`: it is done.
    /// True when that made the next message of its fifo key visible.
    pub fn dead_lettered(&mut self, store: &MessageStore, e: Expired) -> bool {
        self.finish(store, e.group, e.queue, e.offset)
    }
}
