//! Lookups and reports: get, query, lag, offset resets, stats, and metadata persistence.

use std::collections::BTreeMap;

use super::store::to_json;
use super::*;
use crate::consumer::QueueProgress;
use crate::message::record::{self};
use crate::offsets::OffsetTable;
use crate::schedule::{DelayOffsets, TimerCheckpoint};
use crate::topic::{self, RETRY_PREFIX};
use crate::transaction::TxCheckpoint;
use crate::{Error, GroupStats, MessageExt, QueueStats, Result, StartFrom, Stats, TopicStats};

impl State {
    pub fn get(&self, msg_id: &str) -> Option<MessageExt> {
        let (nonce, phys) = record::parse_msg_id(msg_id)?;
        if nonce != self.store.nonce {
            return None;
        }
        self.store.message_at(phys)
    }

    pub fn query(&self, t: &str, key: &str) -> Vec<MessageExt> {
        self.store
            .index
            .candidates(t, key)
            .iter()
            .filter_map(|phys| self.store.message_at(*phys))
            .filter(|m| m.keys.iter().any(|k| k == key))
            .collect()
    }

    /// The owners (group, or group@consumer when broadcasting) with progress on `t`.
    pub(super) fn owners_of(&self, group: &str, t: &str) -> Vec<String> {
        let bcast = format!("{group}@");
        let mut owners: Vec<String> = self
            .offsets
            .table
            .keys()
            .filter_map(|k| k.strip_prefix(&format!("{t}@")).map(str::to_string))
            .chain(
                self.progress
                    .keys()
                    .filter(|(_, pt, _)| pt == t)
                    .map(|(o, _, _)| o.clone()),
            )
            .filter(|o| o == group || o.starts_with(&bcast))
            .collect();
        owners.sort();
        owners.dedup();
        owners
    }

    pub(super) fn committed(&self, owner: &str, t: &str, q: u32) -> Option<u64> {
        self.progress
            .get(&(owner.to_string(), t.to_string(), q))
            .map(QueueProgress::committed)
            .or_else(|| self.offsets.get(t, owner, q))
    }

    pub fn lag(&self, group: &str, t: &str) -> Result<u64> {
        topic::validate_group(group)?;
        topic::validate_topic(t)?;
        let Some(queues) = self.store.queues.get(t) else {
            return Err(Error::TopicNotFound(t.to_string()));
        };
        let owners = self.owners_of(group, t);
        let lag_of = |owner: Option<&str>| -> u64 {
            queues
                .iter()
                .enumerate()
                .map(|(q, cq)| {
                    let done = owner
                        .and_then(|o| self.committed(o, t, q as u32))
                        .unwrap_or(cq.min_offset())
                        .max(cq.min_offset());
                    cq.max_offset().saturating_sub(done)
                })
                .sum()
        };
        if owners.is_empty() {
            return Ok(lag_of(None));
        }
        Ok(owners.iter().map(|o| lag_of(Some(o))).max().unwrap_or(0))
    }

    pub fn reset_offset(&mut self, group: &str, t: &str, to: StartFrom, now: u64) -> Result<()> {
        self.check_open()?;
        topic::validate_group(group)?;
        topic::validate_topic(t)?;
        let queues = match self.store.queues.get(t) {
            Some(q) => q.len() as u32,
            None => return Err(Error::TopicNotFound(t.to_string())),
        };
        let mut owners = self.owners_of(group, t);
        if owners.is_empty() {
            owners.push(group.to_string());
        }
        for owner in owners {
            for q in 0..queues {
                let target = self.start_offset(t, q, to, now);
                self.offsets.set(t, &owner, q, target);
                if let Some(p) = self.progress.get_mut(&(owner.clone(), t.to_string(), q)) {
                    p.next = target;
                    p.inflight.clear();
                    p.epoch += 1;
                    p.orderly_retries = 0;
                    p.suspend_until = 0;
                }
            }
        }
        self.offsets_dirty = true;
        self.arrived = true;
        Ok(())
    }

    pub fn stats(&self, now: u64) -> Stats {
        let mut topics = BTreeMap::new();
        for (name, cqs) in &self.store.queues {
            if topic::is_reserved(name) && !name.starts_with('%') {
                continue;
            }
            let c = self.topic_in.get(name);
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
                    messages_in: c.map_or(0, |c| c.total),
                    in_rate: c.map_or(0.0, |c| c.rate(now)),
                },
            );
        }
        let mut pairs: Vec<(String, String)> = self
            .consumers
            .values()
            .map(|c| (c.group.clone(), c.topic.clone()))
            .chain(self.offsets.table.keys().filter_map(|k| {
                let (t, owner) = k.split_once('@')?;
                let group = owner.split('@').next().unwrap_or(owner);
                Some((group.to_string(), t.to_string()))
            }))
            .filter(|(_, t)| !t.starts_with(RETRY_PREFIX))
            .collect();
        pairs.sort();
        pairs.dedup();
        let groups = pairs
            .into_iter()
            .map(|(g, t)| {
                let out = self.group_out.get(&(g.clone(), t.clone()));
                GroupStats {
                    consumers: self
                        .consumers
                        .values()
                        .filter(|c| c.group == g && c.topic == t)
                        .count(),
                    lag: self.lag(&g, &t).unwrap_or(0),
                    messages_out: out.map_or(0, |c| c.total),
                    out_rate: out.map_or(0.0, |c| c.rate(now)),
                    group: g,
                    topic: t,
                }
            })
            .collect();
        Stats {
            topics,
            groups,
            commitlog_bytes: self.store.commitlog.retained_bytes(),
            pending_delayed: self.pending_delayed(),
            pending_transactions: self.tx.pending.len() as u64,
        }
    }

    pub(super) fn pending_delayed(&self) -> u64 {
        let mut n = self.timer.pending();
        for level in 1..=self.settings.levels.len() as u32 {
            if let Some(cq) = self.store.cq(topic::SCHEDULE_TOPIC, level - 1) {
                let cur = self
                    .delay
                    .table
                    .get(&level)
                    .copied()
                    .unwrap_or(0)
                    .max(cq.min_offset());
                n += cq.max_offset().saturating_sub(cur);
            }
        }
        n
    }

    // ----- persistence -----

    /// Serialised metadata that changed since the last call, to write outside the lock.
    pub fn dirty_metadata(&mut self, now: u64) -> Result<Vec<(&'static str, Vec<u8>)>> {
        self.metadata(now, false)
    }

    fn metadata(&mut self, now: u64, all: bool) -> Result<Vec<(&'static str, Vec<u8>)>> {
        let mut out = Vec::new();
        if self.offsets_dirty {
            for ((owner, t, q), p) in self.progress.iter() {
                self.offsets.set(t, owner, *q, p.committed());
            }
            out.push((OffsetTable::FILE, to_json(&self.offsets)?));
            self.offsets_dirty = false;
        }
        if self.delay_dirty {
            out.push((DelayOffsets::FILE, to_json(&self.delay)?));
            self.delay_dirty = false;
        }
        let cp = self.timer.checkpoint(now);
        if all
            || cp != self.timer_saved
                && (self.timer.pending() > 0 || self.timer_saved.low_water != cp.low_water)
        {
            out.push((TimerCheckpoint::FILE, to_json(&cp)?));
            self.timer_saved = cp;
        }
        if self.tx.dirty {
            out.push((TxCheckpoint::FILE, to_json(&self.tx.checkpoint())?));
            self.tx.dirty = false;
        }
        if self.store.topics_dirty {
            out.push((
                crate::topic::TopicRegistry::FILE,
                to_json(&self.store.topics)?,
            ));
            self.store.topics_dirty = false;
        }
        Ok(out)
    }

    /// Writes all metadata now (close).
    pub fn write_all_metadata(&mut self, now: u64) -> Result<()> {
        self.offsets_dirty = true;
        self.delay_dirty = true;
        self.tx.dirty = true;
        self.store.topics_dirty = true;
        for (name, bytes) in self.metadata(now, true)? {
            self.store.backend.write_meta(name, &bytes)?;
        }
        Ok(())
    }
}
