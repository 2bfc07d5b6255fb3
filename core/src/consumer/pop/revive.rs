//! The revive log: simple consumers' state changes as records of
//! `rmq_sys_REVIVE_LOG` (RocketMQ keeps POP checkpoints and acks in its revive
//! topic the same way). Changes are applied in memory at once and buffered here;
//! the buffer is appended as one record now and then (and at close), and recovery
//! replays the records through dispatch to rebuild deliveries, invisibility and
//! acks. A record lost in a crash only makes a message visible again sooner:
//! delivery stays at-least-once.
//!
//! Body, little-endian: `u16 n` groups, each `u8 len + group`, `u8 len + topic`,
//! `u8 fifo`, `u32 max attempts`; then ops, each `u8 op, u16 group, u32 queue,
//! u64 offset` and for POP `u32 attempt, u32 generation, u64 until`, for CHANGE
//! `u32 generation, u64 until`, for RESET nothing more (offset is the new base).

use std::collections::HashMap;

use super::{push_expiry, Expiry, PopGroups, Slot};
use crate::message_store::MessageStore;

/// One change of a simple consumer group's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// A delivery: invisible until `until`.
    Pop {
        queue: u32,
        offset: u64,
        attempt: u32,
        gen: u32,
        until: u64,
    },
    /// An ack (or a dead letter): done.
    Ack { queue: u32, offset: u64 },
    /// A change of invisibility: a new generation, invisible until `until`.
    Change {
        queue: u32,
        offset: u64,
        gen: u32,
        until: u64,
    },
    /// The queue starts afresh at `offset` (a reset).
    Reset { queue: u32, offset: u64 },
}

/// What a group is, as a record names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupName {
    pub group: String,
    pub topic: String,
    pub fifo: bool,
    pub max_attempts: u32,
}

/// Ops waiting to be written, by group index.
#[derive(Debug, Default, Clone)]
pub(crate) struct Pending {
    ops: Vec<(u32, Op)>,
    /// Nothing is kept: the store does not outlive the process (memory).
    pub off: bool,
}

impl Pending {
    pub fn push(&mut self, group: u32, op: Op) {
        if !self.off {
            self.ops.push((group, op));
        }
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn clear(&mut self) {
        self.ops.clear();
    }

    /// Drops what is pending for the groups `gone` names.
    pub fn drop_groups(&mut self, gone: impl Fn(u32) -> bool) {
        self.ops.retain(|(g, _)| !gone(*g));
    }

    /// The record body for everything pending (named via `name`), emptying it.
    pub fn take(&mut self, name: impl Fn(u32) -> GroupName) -> Option<Vec<u8>> {
        if self.ops.is_empty() {
            return None;
        }
        let mut table: Vec<u32> = self.ops.iter().map(|(g, _)| *g).collect();
        table.sort_unstable();
        table.dedup();
        let index: HashMap<u32, u16> = table
            .iter()
            .enumerate()
            .map(|(i, g)| (*g, i as u16))
            .collect();
        let mut out = Vec::with_capacity(64 + self.ops.len() * 33);
        out.extend_from_slice(&(table.len() as u16).to_le_bytes());
        for g in &table {
            let n = name(*g);
            short_str(&mut out, &n.group);
            short_str(&mut out, &n.topic);
            out.push(n.fifo as u8);
            out.extend_from_slice(&n.max_attempts.to_le_bytes());
        }
        for (g, op) in self.ops.drain(..) {
            let (code, queue, offset) = match op {
                Op::Pop { queue, offset, .. } => (1u8, queue, offset),
                Op::Ack { queue, offset } => (2, queue, offset),
                Op::Change { queue, offset, .. } => (3, queue, offset),
                Op::Reset { queue, offset } => (4, queue, offset),
            };
            out.push(code);
            out.extend_from_slice(&index[&g].to_le_bytes());
            out.extend_from_slice(&queue.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            match op {
                Op::Pop {
                    attempt,
                    gen,
                    until,
                    ..
                } => {
                    out.extend_from_slice(&attempt.to_le_bytes());
                    out.extend_from_slice(&gen.to_le_bytes());
                    out.extend_from_slice(&until.to_le_bytes());
                }
                Op::Change { gen, until, .. } => {
                    out.extend_from_slice(&gen.to_le_bytes());
                    out.extend_from_slice(&until.to_le_bytes());
                }
                Op::Ack { .. } | Op::Reset { .. } => {}
            }
        }
        Some(out)
    }
}

fn short_str(out: &mut Vec<u8>, s: &str) {
    // Group and topic names are at most 255 bytes (checked when consumers join).
    let b = &s.as_bytes()[..s.len().min(255)];
    out.push(b.len() as u8);
    out.extend_from_slice(b);
}

/// Reads a record body; None when it is malformed (a damaged record is skipped
/// whole: its deliveries simply become visible again).
/// A record read back: the groups it names, and its ops by index into them.
pub(crate) type Parsed = (Vec<GroupName>, Vec<(usize, Op)>);

pub(crate) fn parse(body: &[u8]) -> Option<Parsed> {
    let mut r = Reader { b: body, at: 0 };
    let n = r.u16()? as usize;
    let mut names = Vec::with_capacity(n.min(256));
    for _ in 0..n {
        let group = r.short_str()?;
        let topic = r.short_str()?;
        let fifo = r.take(1)?[0] != 0;
        let max_attempts = r.u32()?;
        names.push(GroupName {
            group,
            topic,
            fifo,
            max_attempts,
        });
    }
    let mut ops = Vec::new();
    while r.at < body.len() {
        let code = r.take(1)?[0];
        let g = r.u16()? as usize;
        if g >= names.len() {
            return None;
        }
        let queue = r.u32()?;
        let offset = r.u64()?;
        let op = match code {
            1 => Op::Pop {
                queue,
                offset,
                attempt: r.u32()?,
                gen: r.u32()?,
                until: r.u64()?,
            },
            2 => Op::Ack { queue, offset },
            3 => Op::Change {
                queue,
                offset,
                gen: r.u32()?,
                until: r.u64()?,
            },
            4 => Op::Reset { queue, offset },
            _ => return None,
        };
        ops.push((g, op));
    }
    Some((names, ops))
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.b.len())?;
        let s = &self.b[self.at..end];
        self.at = end;
        Some(s)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Some(u64::from_le_bytes(a))
    }
    fn short_str(&mut self) -> Option<String> {
        let n = self.take(1)?[0] as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

impl PopGroups {
    /// Replays one revive record (recovery), the one at CommitLog offset `phys`:
    /// `queues(topic)` gives a topic's queue count, `base(topic, group, q)` the
    /// persisted committed offsets. What it says of a topic deleted after it is
    /// skipped: the group went with the topic, and its offsets are not those of the
    /// topic created again.
    pub fn replay(
        &mut self,
        body: &[u8],
        phys: u64,
        queues: impl Fn(&str) -> u32,
        base: impl Fn(&str, &str, u32) -> u64,
    ) {
        let Some((names, ops)) = parse(body) else {
            log::warn!(
                "a damaged simple-consumer record was skipped: its deliveries become visible"
            );
            return;
        };
        let ids: Vec<Option<u32>> = names
            .iter()
            .map(|n| {
                let deleted_since = self
                    .incarnations
                    .get(&n.topic)
                    .is_some_and(|&end| phys < end);
                (!deleted_since).then(|| {
                    self.group_or_new(n, queues(&n.topic), |q| base(&n.topic, &n.group, q))
                })
            })
            .collect();
        for (i, op) in ops {
            let Some(g) = ids[i] else {
                continue;
            };
            let group = &mut self.groups[g as usize];
            let q = match op {
                Op::Pop { queue, .. }
                | Op::Ack { queue, .. }
                | Op::Change { queue, .. }
                | Op::Reset { queue, .. } => queue,
            };
            let Some(pq) = group.queues.get_mut(q as usize) else {
                continue;
            };
            match op {
                Op::Pop {
                    offset,
                    attempt,
                    gen,
                    until,
                    ..
                } => {
                    if offset >= pq.base {
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
                }
                Op::Change {
                    offset, gen, until, ..
                } => {
                    if let Some(Slot::Invisible { attempt, .. } | Slot::Ready { attempt, .. }) =
                        pq.slot(offset)
                    {
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
                }
                Op::Ack { offset, .. } => {
                    pq.set(offset, Slot::Done);
                    pq.advance();
                }
                Op::Reset { offset, .. } => {
                    pq.restart(offset);
                }
            }
        }
    }

    /// After recovery: committed offsets within what the store retains, and fifo
    /// groups know again which keys are busy.
    pub fn after_replay(&mut self, store: &MessageStore) {
        for group in &mut self.groups {
            for (q, pq) in group.queues.iter_mut().enumerate() {
                let (min, max) = store
                    .queues
                    .get(&group.topic, q as u32)
                    .map_or((0, 0), |cq| (cq.min_offset(), cq.max_offset()));
                // A queue whose tail recovery cut off: what was past its end is gone,
                // and the offsets there will hold new messages to read.
                if pq.base > max {
                    pq.window.clear();
                    pq.base = max;
                    pq.scan = max;
                } else {
                    pq.window.truncate((max - pq.base) as usize);
                    pq.scan = pq.scan.min(max);
                }
                while pq.base < min {
                    pq.window.pop_front();
                    pq.base += 1;
                }
                pq.scan = pq.scan.max(pq.base);
            }
            if !group.fifo {
                continue;
            }
            let mut busy = Vec::new();
            for (q, pq) in group.queues.iter().enumerate() {
                for (i, s) in pq.window.iter().enumerate() {
                    if matches!(s, Slot::Invisible { .. } | Slot::Ready { .. }) {
                        busy.push((q as u32, pq.base + i as u64));
                    }
                }
            }
            for (q, offset) in busy {
                if let Some(k) = group.key_of(store, q, offset) {
                    group.busy.insert(k);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip_and_damage_is_refused() {
        let mut p = Pending::default();
        let ops = [
            Op::Pop {
                queue: 1,
                offset: 7,
                attempt: 2,
                gen: 3,
                until: 99,
            },
            Op::Ack {
                queue: 0,
                offset: 5,
            },
            Op::Change {
                queue: 1,
                offset: 7,
                gen: 4,
                until: 120,
            },
            Op::Reset {
                queue: 2,
                offset: 40,
            },
        ];
        for op in ops {
            p.push(9, op);
        }
        let body = p
            .take(|_| GroupName {
                group: "g".into(),
                topic: "t".into(),
                fifo: true,
                max_attempts: 16,
            })
            .unwrap();
        assert_eq!(p.len(), 0);
        let (names, read) = parse(&body).unwrap();
        assert_eq!(names[0].group, "g");
        assert!(names[0].fifo);
        assert_eq!(read.iter().map(|(_, o)| *o).collect::<Vec<_>>(), ops);
        assert!(parse(&body[..body.len() - 1]).is_none());
        assert!(parse(&[1, 0, 9]).is_none());
    }
}
