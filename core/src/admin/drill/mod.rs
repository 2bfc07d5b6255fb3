//! Copies of a group's unconsumed messages to another topic that survive a crash:
//! the backlog drill (`move_backlog`: a group's backlog on a topic to a wider topic,
//! that more consumers can drain) and the DLQ redrive (a group's `%DLQ%<group>` back
//! to its `%RETRY%<group>`, which only that group reads).
//!
//! A drill copies, from every queue of the source, the range from the group's
//! committed offset to the queue's end when the drill started (less what the group
//! acked out of order above that offset), in CommitLog order,
//! in steps of one append each. Each copy keeps the original's body, tags, keys,
//! properties and message id, and carries `MOVED_FROM = topic:queue:offset`. A
//! message with a sharding key goes to the destination queue its key maps to, so
//! one key's messages keep their order; others go round robin. When everything is
//! copied (and durable), the group moves past it.
//!
//! A drill is recorded in `config/drills.json` (with where each destination queue
//! ended) before its first copy is appended, and removed once the group has moved
//! past what was copied. Run again after a crash, it reads the destination from where
//! it ended when the drill began, finds the last copy of each source queue, and goes
//! on after it: a crash only ever cuts a suffix off the log, so the copies of a queue
//! are a prefix of its range, and nothing is copied twice or skipped.

mod run;
mod step;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::consume_queue::BLANK_SIZE;
use crate::engine::Engine;
use crate::message::properties::{self, prop};
use crate::store::meta::{read_json, to_json};
use crate::store::Backend;
use crate::topic::{self, DLQ_PREFIX, RETRY_PREFIX};
use crate::{Error, Result};

/// A drill begun and not finished.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Drill {
    pub group: String,
    pub from: String,
    pub to: String,
    /// Destination queues that sharding keys are mapped over.
    pub queues: u32,
    /// The end of each destination queue when the drill began: where a resume looks
    /// for the copies already made.
    #[serde(rename = "destFrom")]
    pub dest_from: Vec<u64>,
}

/// The drills not finished, persisted as `config/drills.json`, keyed `from@group`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct DrillTable {
    #[serde(rename = "drillTable")]
    pub drills: BTreeMap<String, Drill>,
}

impl DrillTable {
    pub const FILE: &'static str = "config/drills.json";
}

/// The drill table and the drills running in this process.
#[derive(Debug, Default)]
pub(crate) struct Drills {
    pub table: DrillTable,
    running: BTreeSet<String>,
    dirty: bool,
}

impl Drills {
    pub fn open(backend: &dyn Backend) -> Result<Drills> {
        Ok(Drills {
            table: read_json(backend, DrillTable::FILE)?.unwrap_or_default(),
            ..Drills::default()
        })
    }

    /// The drill file, when it changed since the last call (or `all`).
    pub fn metadata(&mut self, all: bool) -> Result<Option<(&'static str, Vec<u8>)>> {
        if !(all || self.dirty) {
            return Ok(None);
        }
        self.dirty = false;
        Ok(Some((DrillTable::FILE, to_json(&self.table)?)))
    }

    /// Drops the unfinished drills from or to `t` (deleted); refused while one runs.
    pub fn forget_topic(&mut self, t: &str) -> Result<()> {
        let involved: Vec<String> = self
            .table
            .drills
            .iter()
            .filter(|(_, d)| d.from == t || d.to == t)
            .map(|(k, _)| k.clone())
            .collect();
        if let Some(k) = involved.iter().find(|k| self.running.contains(*k)) {
            return Err(Error::invalid(format!(
                "a drill ({k}) is copying from or to {t:?}; let it finish first"
            )));
        }
        for k in involved {
            self.table.drills.remove(&k);
            self.dirty = true;
        }
        Ok(())
    }
}

/// A drill being run by this process: what is left to copy.
#[derive(Debug)]
pub(crate) struct Run {
    pub key: String,
    pub drill: Drill,
    redrive: bool,
    /// Per source queue: the next offset to copy, and the end of the range.
    next: Vec<u64>,
    upto: Vec<u64>,
    limit: u64,
    rr: u32,
    /// Copied by this run.
    pub moved: u64,
    /// To copy in this run.
    pub total: u64,
    /// Copies an earlier, interrupted run of this drill had made.
    pub resumed: u64,
    /// The drill is new: its entry must be durable before the first copy.
    pub fresh: bool,
}

impl Run {
    /// Whether everything asked for is copied.
    pub fn is_done(&self) -> bool {
        self.moved >= self.limit || self.next.iter().zip(&self.upto).all(|(n, u)| n >= u)
    }
}

/// The source `topic`, queue and offset a `MOVED_FROM` value names.
fn parse_marker(v: &str) -> Option<(&str, u32, u64)> {
    let mut parts = v.rsplitn(3, ':');
    let qo = parts.next()?.parse().ok()?;
    let q = parts.next()?.parse().ok()?;
    Some((parts.next()?, q, qo))
}

impl Engine {
    /// Starts, or resumes after a crash, the backlog drill of `group` on `from` into
    /// `to` (created with `queues`, default the source's count, or grown to it).
    pub fn begin_move(
        &mut self,
        group: &str,
        from: &str,
        to: &str,
        queues: Option<u32>,
        now: u64,
    ) -> Result<Run> {
        self.check_open()?;
        self.check_room()?;
        topic::validate_group(group)?;
        topic::validate_user_topic(from)?;
        topic::validate_user_topic(to)?;
        if from == to {
            return Err(Error::invalid(format!(
                "move_backlog needs another topic to move {from:?}'s backlog to"
            )));
        }
        if let Some(q) = queues {
            if q == 0 || q > 1024 {
                return Err(Error::invalid(format!(
                    "a topic has 1 to 1024 queues, not {q}"
                )));
            }
        }
        let Some(src_queues) = self.store.topics.queues(from) else {
            return Err(Error::TopicNotFound(from.to_string()));
        };
        let key = format!("{from}@{group}");
        let existing = self.drills.table.drills.get(&key).cloned();
        if let Some(d) = &existing {
            if d.to != to || queues.is_some_and(|q| q != d.queues) {
                return Err(Error::invalid(format!(
                    "the backlog drill of group {group:?} on {from:?} into {:?} ({} queues) \
                     was interrupted; run it again with to={:?}, queues={} to finish it",
                    d.to, d.queues, d.to, d.queues
                )));
            }
        }
        if let Some((k, d)) = self
            .drills
            .table
            .drills
            .iter()
            .find(|(k, d)| **k != key && d.to == to)
        {
            return Err(Error::invalid(format!(
                "another drill ({k}) into {to:?} is unfinished; run it again to finish it first (into {:?})",
                d.to
            )));
        }
        let existing_dest = self.store.topics.queues(to).unwrap_or(0);
        let want = existing
            .as_ref()
            .map_or(queues.unwrap_or(src_queues), |d| d.queues);
        if existing_dest < want && self.store.create_topic(to, want)? {
            let Engine { store, groups, .. } = self;
            groups.topic_grew(to, store, now)?;
        }
        let n = existing.as_ref().map_or_else(
            || self.store.topics.queues(to).unwrap_or(want),
            |d| d.queues,
        );
        self.begin(key, group, from, to, n, existing, false, None)
    }

    /// Starts (or resumes) resending `group`'s dead letters to `%RETRY%<group>`, at
    /// most `limit` of them.
    pub fn begin_redrive(&mut self, group: &str, limit: Option<u64>) -> Result<Run> {
        self.check_open()?;
        self.check_room()?;
        topic::validate_group(group)?;
        let from = format!("{DLQ_PREFIX}{group}");
        let to = format!("{RETRY_PREFIX}{group}");
        let key = format!("{from}@{group}");
        let existing = self.drills.table.drills.get(&key).cloned();
        if self.store.queues.get(&from, 0).is_none() && existing.is_none() {
            return Ok(Run {
                key,
                drill: Drill {
                    group: group.to_string(),
                    from,
                    to,
                    queues: 1,
                    dest_from: Vec::new(),
                },
                redrive: true,
                next: Vec::new(),
                upto: Vec::new(),
                limit: 0,
                rr: 0,
                moved: 0,
                total: 0,
                resumed: 0,
                fresh: false,
            });
        }
        let n = self.store.system_queues(&to, 1)?;
        let n = existing.as_ref().map_or(n, |d| d.queues);
        // A simple group's members read the retry topic once it exists.
        let Engine { groups, store, .. } = self;
        groups.link_pop_retry(group, store);
        self.begin(key, group, &from, &to, n, existing, true, limit)
    }

    #[allow(clippy::too_many_arguments)]
    fn begin(
        &mut self,
        key: String,
        group: &str,
        from: &str,
        to: &str,
        n: u32,
        existing: Option<Drill>,
        redrive: bool,
        limit: Option<u64>,
    ) -> Result<Run> {
        if self.drills.running.contains(&key) {
            return Err(Error::invalid(format!(
                "a drill of group {group:?} on {from:?} is already running"
            )));
        }
        let src = self.store.queues.count(from);
        let fresh = existing.is_none();
        let (drill, copied, resumed) = match existing {
            Some(d) => {
                let (copied, found) = self.find_copies(&d, src);
                (d, copied, found)
            }
            None => {
                let d = Drill {
                    group: group.to_string(),
                    from: from.to_string(),
                    to: to.to_string(),
                    queues: n,
                    dest_from: (0..self.store.queues.count(to))
                        .map(|q| self.store.next_queue_offset(to, q))
                        .collect(),
                };
                (d, vec![0; src as usize], 0)
            }
        };
        let positions = self.groups.positions(group, from, src);
        let (mut next, mut upto) = (Vec::new(), Vec::new());
        for (q, pos) in positions.iter().enumerate() {
            let (min, max) = self
                .store
                .queues
                .get(from, q as u32)
                .map_or((0, 0), |cq| (cq.min_offset(), cq.max_offset()));
            let start = pos
                .map_or(min, |p| p.committed)
                .max(copied[q])
                .clamp(min, max);
            next.push(start);
            upto.push(max);
        }
        let limit = limit.unwrap_or(u64::MAX);
        let left: u64 = next.iter().zip(&upto).map(|(n, u)| u - n).sum();
        if fresh {
            self.drills.table.drills.insert(key.clone(), drill.clone());
            self.drills.dirty = true;
        }
        self.drills.running.insert(key.clone());
        Ok(Run {
            key,
            drill,
            redrive,
            next,
            upto,
            limit,
            rr: 0,
            moved: 0,
            total: left.min(limit),
            resumed,
            fresh,
        })
    }

    /// Per source queue, the offset after the last copy an earlier run of `d` made
    /// (0 where it made none), and how many copies it made.
    fn find_copies(&self, d: &Drill, src: u32) -> (Vec<u64>, u64) {
        let mut copied = vec![0u64; src as usize];
        let mut found = 0;
        let Some(dest) = self.store.queues.topic(&d.to) else {
            return (copied, 0);
        };
        let log = &self.store.commitlog;
        let mut entries = Vec::new();
        for (q, cq) in dest.iter().enumerate() {
            let mut qo = d
                .dest_from
                .get(q)
                .copied()
                .unwrap_or(0)
                .max(cq.min_offset());
            while qo < cq.max_offset() {
                cq.entries(qo, 4096, &mut entries);
                if entries.is_empty() {
                    break;
                }
                for e in &entries {
                    qo += 1;
                    if e.size == BLANK_SIZE {
                        continue;
                    }
                    let origin = log.with_record(e.phys, |r| {
                        let v = properties::value(r.raw_properties(), prop::MOVED_FROM)?;
                        let (t, sq, sqo) = parse_marker(v)?;
                        (t == d.from).then_some((sq, sqo))
                    });
                    if let Some(Some((sq, sqo))) = origin {
                        if let Some(c) = copied.get_mut(sq as usize) {
                            *c = (*c).max(sqo + 1);
                            found += 1;
                        }
                    }
                }
            }
        }
        (copied, found)
    }

    /// Moves the group past what `run` copied and forgets the drill (the copies must
    /// be durable by now).
    pub fn finish_drill(&mut self, run: &Run) {
        if !run.next.is_empty() {
            self.groups
                .advance_past(&run.drill.group, &run.drill.from, &run.next);
        }
        if self.drills.table.drills.remove(&run.key).is_some() {
            self.drills.dirty = true;
        }
    }

    /// The drill `key` no longer runs in this process (finished, stopped or failed).
    pub fn end_drill(&mut self, key: &str) {
        self.drills.running.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::parse_marker;

    #[test]
    fn markers_name_topic_queue_and_offset() {
        assert_eq!(parse_marker("orders:3:1234"), Some(("orders", 3, 1234)));
        assert_eq!(parse_marker("%DLQ%g:0:7"), Some(("%DLQ%g", 0, 7)));
        assert_eq!(parse_marker("orders:x:1"), None);
        assert_eq!(parse_marker("1:2"), None);
    }
}
