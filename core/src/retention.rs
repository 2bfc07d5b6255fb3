//! Retention (RocketMQ's `CleanCommitLogService`): when whole CommitLog segments
//! go, on its own schedule (every `RETENTION_INTERVAL_MS` of broker time, driven by
//! the background thread on native targets and by the JS host's timers on wasm,
//! not only by `tick`).
//!
//! A sealed segment goes, oldest first and never the active one, when it is older
//! than `file_reserved_time` and the pass runs in a `delete_when` hour (UTC, 04 by
//! default) or while the disk is used above `disk_clean_ratio` (75%), or whatever
//! its age while the disk is used above `disk_clean_forcibly_ratio` (85%), as
//! RocketMQ's `CleanCommitLogService`; but never while it holds a record still needed by
//! a pending delay, timer or half transaction (those pin it, even under disk
//! pressure: then sends are refused instead), and, with `retention =
//! "keep-unconsumed"`, never while it holds a message a group with offsets has not
//! consumed, until the disk ratio forces it out. The first segment that may not go
//! ends the pass, so the log has no holes.
//!
//! Nothing is removed silently: messages a group had not consumed when their
//! segment went are counted per group (`GroupStats::expired`) and logged.

use std::collections::BTreeMap;

use crate::consume_queue::ConsumeQueue;
use crate::consumer::ConsumerGroups;
use crate::message_store::MessageStore;
use crate::{Result, Retention};

/// Retention runs at most this often (RocketMQ's `cleanResourceInterval`).
pub(crate) const RETENTION_INTERVAL_MS: u64 = 10_000;

pub(crate) struct RetentionService {
    mode: Retention,
    last_run: u64,
    /// Messages that expired before their group consumed them, by (group, topic).
    pub expired: BTreeMap<(String, String), u64>,
    /// The same by queue: (group, topic, queue).
    pub expired_by_queue: BTreeMap<(String, String, u32), u64>,
}

/// One owner's committed position on one queue.
struct Position {
    group: String,
    owner: String,
    topic: String,
    queue: u32,
    committed: u64,
}

impl RetentionService {
    pub fn new(mode: Retention, now: u64) -> RetentionService {
        RetentionService {
            mode,
            last_run: now,
            expired: BTreeMap::new(),
            expired_by_queue: BTreeMap::new(),
        }
    }

    /// When the next pass is due (broker time).
    pub fn next_due(&self) -> u64 {
        self.last_run.saturating_add(RETENTION_INTERVAL_MS)
    }

    /// Whether a pass is due at `now` (also when the clock went back).
    pub fn is_due(&self, now: u64) -> bool {
        now >= self.next_due() || now < self.last_run
    }

    /// Runs a pass: deletes what may go (see the module docs), given `pinned`, the
    /// lowest CommitLog offset pending deferred work still needs. True when
    /// something was deleted.
    pub fn run(
        &mut self,
        now: u64,
        store: &mut MessageStore,
        groups: &ConsumerGroups,
        pinned: Option<u64>,
        settings: &crate::config::Settings,
    ) -> Result<bool> {
        self.last_run = now;
        if !store.commitlog.has_sealed() {
            return Ok(false);
        }
        let usage = store.backend.disk_usage();
        let forcibly = usage.is_some_and(|u| u >= settings.disk_clean_forcibly_ratio);
        let time_up = settings.delete_when.contains(now);
        let space = usage.is_some_and(|u| u >= settings.disk_clean_ratio);
        if !(time_up || space || forcibly) {
            return Ok(false);
        }
        let positions = positions(groups);
        let mut keep = pinned.unwrap_or(u64::MAX);
        if self.mode == Retention::KeepUnconsumed && !forcibly {
            keep = keep.min(unconsumed_from(store, &positions));
        }
        let mins_before: Vec<u64> = positions
            .iter()
            .map(|p| queue_min(store.queues.get(&p.topic, p.queue)))
            .collect();
        let reserved = settings.file_reserved_time_ms;
        if !store.apply_retention(now, reserved, forcibly, keep)? {
            return Ok(false);
        }
        // What each owner had not consumed below the new minimum is gone.
        let mut lost: BTreeMap<(String, String), BTreeMap<String, u64>> = BTreeMap::new();
        let mut lost_q: BTreeMap<(String, String, u32), u64> = BTreeMap::new();
        for (p, before) in positions.iter().zip(mins_before) {
            let after = queue_min(store.queues.get(&p.topic, p.queue));
            let n = after.saturating_sub(p.committed.max(before));
            if n > 0 {
                let owners = lost.entry((p.group.clone(), p.topic.clone())).or_default();
                *owners.entry(p.owner.clone()).or_default() += n;
                let q = lost_q
                    .entry((p.group.clone(), p.topic.clone(), p.queue))
                    .or_default();
                *q = (*q).max(n);
            }
        }
        for (key, n) in lost_q {
            *self.expired_by_queue.entry(key).or_default() += n;
        }
        for ((group, topic), owners) in lost {
            // A broadcasting group's consumers each read everything: the group
            // missed what its most behind consumer missed.
            let n = owners.values().copied().max().unwrap_or(0);
            log::warn!(
                "retention removed {n} messages of {topic} that group {group} had not consumed"
            );
            *self.expired.entry((group, topic)).or_default() += n;
        }
        Ok(true)
    }
}

fn queue_min(cq: Option<&ConsumeQueue>) -> u64 {
    cq.map_or(0, |cq| cq.min_offset())
}

/// Every owner's committed offset on every queue it has progress on (live, or
/// persisted), retry topics included; simple (POP) groups too.
fn positions(groups: &ConsumerGroups) -> Vec<Position> {
    let mut out: BTreeMap<(String, String, u32), u64> = BTreeMap::new();
    for (key, queues) in &groups.offsets.table {
        let Some((topic, owner)) = key.split_once('@') else {
            continue;
        };
        for (q, off) in queues {
            out.insert((owner.to_string(), topic.to_string(), *q), *off);
        }
    }
    for ((owner, topic, q), p) in groups.progress.iter() {
        out.insert((owner.clone(), topic.clone(), *q), p.committed());
    }
    for g in groups.pop.groups() {
        for (q, committed) in g.committed() {
            out.entry((g.name.clone(), g.topic.clone(), q))
                .and_modify(|c| *c = (*c).min(committed))
                .or_insert(committed);
        }
    }
    out.into_iter()
        .map(|((owner, topic, queue), committed)| Position {
            group: owner.split('@').next().unwrap_or(&owner).to_string(),
            owner,
            topic,
            queue,
            committed,
        })
        .collect()
}

/// The lowest CommitLog offset of a message some owner has not consumed.
fn unconsumed_from(store: &MessageStore, positions: &[Position]) -> u64 {
    positions
        .iter()
        .filter_map(|p| {
            let cq = store.queues.get(&p.topic, p.queue)?;
            first_record(cq, p.committed)
        })
        .min()
        .unwrap_or(u64::MAX)
}

/// The CommitLog offset of the first real entry at or after `qo`, if any.
pub(crate) fn first_record(cq: &ConsumeQueue, qo: u64) -> Option<u64> {
    (qo.max(cq.min_offset())..cq.max_offset())
        .filter_map(|q| cq.entry(q))
        .find(|e| !e.is_filler())
        .map(|e| e.phys)
}
