//! The message store (RocketMQ's `DefaultMessageStore`): the CommitLog, the
//! ConsumeQueues, the key index and the topic registry over one backend; appending
//! with dense queue offsets, reading messages back, recovery on open, retention.
//!
//! Open replays the CommitLog from its first retained record: that one scan finds the
//! end (checking CRCs after an unclean exit) and dispatches every record again
//! (`dispatch.rs`), which rebuilds the key index, refills any ConsumeQueue that is
//! missing or behind, and feeds the timer and transaction services. Then every
//! ConsumeQueue is cut back to the CommitLog's end.
//!
//! Invariants: for each queue, CommitLog order is queue-offset order and offsets are
//! dense; no ConsumeQueue entry points at or beyond the CommitLog's end.

use std::sync::Arc;

use bytes::Bytes;

use crate::commitlog::recovery::{Checkpoint, ABORT_FILE};
use crate::commitlog::{CommitLog, Placed, Span};
use crate::consume_queue::{ConsumeQueues, FILE_ENTRIES, MEMORY_ENTRIES};
use crate::dispatch::{self, DispatchRequest, Mode, Services};
use crate::index::KeyIndex;
use crate::message::properties::{self, prop};
use crate::message::record::RecordSpec;
use crate::message::{id, MessageExt};
use crate::store::meta::{read_json, store_err};
use crate::store::Backend;
use crate::topic::{self, TopicRegistry};
use crate::{Error, Result};

pub(crate) struct MessageStore {
    pub backend: Arc<dyn Backend>,
    pub commitlog: CommitLog,
    pub queues: ConsumeQueues,
    pub index: KeyIndex,
    pub topics: TopicRegistry,
    pub topics_dirty: bool,
    /// The store's message-id nonce.
    pub nonce: u64,
    /// Whether the last exit was unclean (recovery verifies CRCs).
    pub unclean: bool,
    /// The topic of the last send, shared by its records.
    last_topic: Option<Arc<str>>,
    /// Where the records of the last append went (reused across appends).
    pub placed: Vec<Placed>,
    qos: Vec<u64>,
}

impl MessageStore {
    /// Opens the backend's files (no replay yet: see `recover`).
    pub fn open(
        backend: Arc<dyn Backend>,
        seg_size: usize,
        fresh_nonce: u64,
    ) -> Result<MessageStore> {
        let unclean = backend.read_meta(ABORT_FILE)?.is_some();
        let checkpoint = Checkpoint::read(&*backend)?;
        let topics: TopicRegistry = read_json(&*backend, TopicRegistry::FILE)?.unwrap_or_default();
        // An existing store keeps the segment size it was created with.
        let seg_size = match backend.list(crate::commitlog::DIR)?.first() {
            // (An empty first segment, cut short at creation, has no size to keep.)
            Some(&base) => backend
                .open(crate::commitlog::DIR, base, 0, false)
                .map_or(seg_size, |r| r.len()),
            None => seg_size,
        };
        let commitlog = CommitLog::open(backend.clone(), seg_size).map_err(store_err)?;
        let entries = if backend.is_persistent() {
            FILE_ENTRIES
        } else {
            MEMORY_ENTRIES
        };
        let mut store = MessageStore {
            nonce: checkpoint.map_or(fresh_nonce, |c| c.nonce),
            queues: ConsumeQueues::new(backend.clone(), entries),
            backend,
            commitlog,
            index: KeyIndex::default(),
            topics,
            topics_dirty: false,
            unclean,
            last_topic: None,
            placed: Vec::new(),
            qos: Vec::new(),
        };
        // Open every queue found on disk or named in the registry.
        let mut names: Vec<String> = store.backend.list_dirs("consumequeue")?;
        names.extend(store.topics.topics.keys().cloned());
        names.sort();
        names.dedup();
        for name in names {
            if topic::validate_topic(&name).is_err() {
                continue;
            }
            let dirs = store.backend.list_dirs(&format!("consumequeue/{name}"))?;
            let on_disk = dirs
                .iter()
                .filter_map(|d| d.parse::<u32>().ok())
                .max()
                .map_or(0, |m| m + 1);
            let want = store.topics.queues(&name).unwrap_or(0).max(on_disk);
            store.queues.ensure(&name, want).map_err(store_err)?;
        }
        // Persist the nonce before anything is written under it.
        if checkpoint.is_none() {
            store.write_checkpoint()?;
        }
        Ok(store)
    }

    pub fn write_checkpoint(&self) -> Result<()> {
        Checkpoint {
            flushed: self.commitlog.flushed(),
            nonce: self.nonce,
        }
        .write(&*self.backend)
    }

    /// Creates `name` with `queues` queues, or grows it. True when something changed.
    pub fn create_topic(&mut self, name: &str, queues: u32) -> Result<bool> {
        let changed = self.topics.ensure(name, queues);
        let n = self.topics.queues(name).unwrap_or(queues);
        self.queues.ensure(name, n).map_err(store_err)?;
        if changed {
            self.topics_dirty = true;
        }
        Ok(changed)
    }

    /// The queue count of a user topic, creating it with `default_queues` if
    /// `auto_create` allows.
    pub fn user_topic_queues(
        &mut self,
        name: &str,
        auto_create: bool,
        default_queues: u32,
    ) -> Result<u32> {
        topic::validate_user_topic(name)?;
        match self.topics.queues(name) {
            Some(n) => Ok(n),
            None if auto_create => {
                self.create_topic(name, default_queues)?;
                Ok(default_queues)
            }
            None => Err(Error::TopicNotFound(name.to_string())),
        }
    }

    /// The topic as a shared string, reused across sends to the same topic.
    pub fn topic_arc(&mut self, name: &str) -> Arc<str> {
        match &self.last_topic {
            Some(t) if &**t == name => t.clone(),
            _ => {
                let t: Arc<str> = name.into();
                self.last_topic = Some(t.clone());
                t
            }
        }
    }

    /// The queue count of a topic the engine writes to, creating it if needed.
    pub fn system_queues(&mut self, name: &str, queues: u32) -> Result<u32> {
        if self.topics.queues(name).is_none() {
            self.create_topic(name, queues)?;
        }
        Ok(self.topics.queues(name).unwrap_or(queues))
    }

    /// The next queue offset of (topic, queue).
    pub fn next_queue_offset(&self, topic: &str, queue_id: u32) -> u64 {
        self.queues
            .get(topic, queue_id)
            .map_or(0, |cq| cq.max_offset())
    }

    /// Appends `specs` as one batch with dense queue offsets assigned here and
    /// dispatches each record; where each went is in `self.placed`.
    pub fn put(
        &mut self,
        specs: &[RecordSpec],
        now: u64,
        services: &mut Services<'_>,
    ) -> Result<()> {
        self.placed.clear();
        if specs.is_empty() {
            return Ok(());
        }
        for s in specs {
            if self.queues.get(&s.topic, s.queue_id).is_none() {
                let n = self
                    .topics
                    .queues(&s.topic)
                    .unwrap_or(0)
                    .max(s.queue_id + 1);
                self.create_topic(&s.topic, n)?;
            }
        }
        self.assign_queue_offsets(specs);
        let mut placed = std::mem::take(&mut self.placed);
        let appended = self.commitlog.append(specs, &self.qos, now, &mut placed);
        let result = appended.and_then(|store_ts| {
            placed.iter().zip(specs).try_for_each(|(p, s)| {
                let r = DispatchRequest::from_spec(s, p.phys, p.queue_offset, store_ts);
                dispatch::dispatch(&r, Mode::Live, &mut self.queues, &mut self.index, services)
            })
        });
        self.placed = placed;
        result
    }

    /// Consecutive offsets per (topic, queue) into `self.qos`; a batch usually has
    /// one target.
    fn assign_queue_offsets(&mut self, specs: &[RecordSpec]) {
        let first = &specs[0];
        let mut qos = std::mem::take(&mut self.qos);
        qos.clear();
        if specs
            .iter()
            .all(|s| s.queue_id == first.queue_id && same(&s.topic, &first.topic))
        {
            let base = self.next_queue_offset(&first.topic, first.queue_id);
            qos.extend(base..base + specs.len() as u64);
        } else {
            let mut next: Vec<(&str, u32, u64)> = Vec::new();
            for s in specs {
                let qo = match next
                    .iter_mut()
                    .find(|(t, q, _)| *q == s.queue_id && **t == *s.topic)
                {
                    Some(slot) => {
                        slot.2 += 1;
                        slot.2
                    }
                    None => {
                        let base = self.next_queue_offset(&s.topic, s.queue_id);
                        next.push((&s.topic, s.queue_id, base));
                        base
                    }
                };
                qos.push(qo);
            }
        }
        self.qos = qos;
    }

    /// Replays the log (see the module docs) through dispatch.
    pub fn recover(&mut self, services: &mut Services<'_>) -> Result<()> {
        let checkpoint = Checkpoint::read(&*self.backend).ok().flatten();
        let seg = self.commitlog.seg_size() as u64;
        let verify_from = Checkpoint::verify_from(checkpoint, self.unclean, seg);
        let MessageStore {
            commitlog,
            queues,
            index,
            ..
        } = self;
        let mut failure: Option<Error> = None;
        let mut missing: Vec<(String, u32)> = Vec::new();
        let end = commitlog
            .recover(verify_from, |r| {
                if failure.is_some() {
                    return;
                }
                let topic = r.topic();
                if queues.count(topic) <= r.queue_id {
                    missing.push((topic.to_string(), r.queue_id));
                    if let Err(e) = queues.ensure(topic, r.queue_id + 1) {
                        failure = Some(store_err(e));
                        return;
                    }
                }
                let req = DispatchRequest::from_view(r);
                if let Err(e) = dispatch::dispatch(&req, Mode::Replay, queues, index, services) {
                    failure = Some(e);
                }
            })
            .map_err(store_err)?;
        if let Some(e) = failure {
            return Err(e);
        }
        index.merge();
        let min = self.commitlog.min_offset();
        for cq in self.queues.all_mut() {
            cq.truncate_to_commitlog(end).map_err(store_err)?;
            cq.correct_min(min).map_err(store_err)?;
        }
        for (topic, q) in missing {
            if !topic::is_reserved(&topic) || topic.starts_with('%') {
                let n = self.topics.queues(&topic).unwrap_or(0).max(q + 1);
                if self.topics.ensure(&topic, n) {
                    self.topics_dirty = true;
                }
            }
        }
        Ok(())
    }

    /// The message at `phys` with a zero-copy body.
    pub fn message_at(&self, phys: u64) -> Option<MessageExt> {
        self.message_in(&mut Span::default(), phys)
    }

    /// `message_at`, its body cut from `span` (shared by the messages of one read).
    pub fn message_in(&self, span: &mut Span, phys: u64) -> Option<MessageExt> {
        let (body_at, len, msg) = self.commitlog.with_record(phys, |r| {
            let (at, len) = r.body_range();
            (
                at,
                len,
                MessageExt::from_record(r, self.nonce, Bytes::new()),
            )
        })?;
        let mut msg = msg;
        msg.body = self.commitlog.read_in(span, phys + body_at as u64, len);
        (msg.body.len() == len).then_some(msg)
    }

    /// The message with this id, if it is retained here: for a caller-given id, the
    /// first record that carries it (the original, not a retry or dead letter).
    pub fn get(&self, msg_id: &str) -> Option<MessageExt> {
        let Some((nonce, phys)) = id::parse(msg_id) else {
            return self
                .index
                .ids(msg_id)
                .into_iter()
                .filter_map(|phys| self.message_at(phys))
                .find(|m| m.msg_id == msg_id);
        };
        if nonce != self.nonce {
            return None;
        }
        self.message_at(phys)
    }

    /// The retained messages of `topic` with `key` among their keys, oldest first.
    pub fn query(&self, topic: &str, key: &str) -> Vec<MessageExt> {
        self.index
            .candidates(topic, key)
            .iter()
            .filter_map(|phys| self.message_at(*phys))
            .filter(|m| m.keys.iter().any(|k| k == key))
            .collect()
    }

    /// A copy of the record at `phys` bound for its real topic and queue (the
    /// `REAL_TOPIC`/`REAL_QID` a delay, timer or half message carries), without the
    /// properties in `drop_props`. None when the record is gone or has no real topic.
    pub fn copy_to_real_topic(
        &mut self,
        phys: u64,
        drop_props: &[&str],
        default_queues: u32,
    ) -> Result<Option<RecordSpec>> {
        let nonce = self.nonce;
        let found = self.commitlog.with_record(phys, |r| {
            let raw = r.raw_properties();
            let real_topic = properties::value(raw, prop::REAL_TOPIC).map(str::to_string);
            let real_qid: u32 = properties::value(raw, prop::REAL_QID)
                .and_then(|q| q.parse().ok())
                .unwrap_or(0);
            let mut p = properties::copy_without(raw, drop_props);
            if properties::value(raw, prop::UNIQ_KEY).is_none() {
                properties::push(&mut p, prop::UNIQ_KEY, &id::make(nonce, phys));
            }
            let (at, len) = r.body_range();
            let spec = RecordSpec {
                topic: topic::TRANS_HALF_TOPIC.into(),
                queue_id: real_qid,
                sys_flag: r.sys_flag,
                born_ts: r.born_ts,
                reconsume_times: r.reconsume_times,
                prepared_tx_offset: 0,
                body: Bytes::new(),
                properties: p,
            };
            (real_topic, spec, at, len)
        });
        let Some((Some(real_topic), mut spec, at, len)) = found else {
            return Ok(None);
        };
        if real_topic == topic::TRANS_HALF_TOPIC {
            return Ok(None);
        }
        let queues = match self.topics.queues(&real_topic) {
            Some(n) => n,
            None => {
                let n = if topic::is_reserved(&real_topic) {
                    1
                } else {
                    default_queues
                };
                self.create_topic(&real_topic, n)?;
                n
            }
        };
        spec.queue_id %= queues.max(1);
        spec.topic = real_topic.into();
        spec.body = self
            .commitlog
            .read(phys + at as u64, len)
            .unwrap_or_default();
        Ok(Some(spec))
    }

    /// Deletes expired CommitLog segments (or, when the disk is nearly full, the
    /// oldest ones regardless of age), at most 10 per pass, never the active one, and
    /// moves every queue's minimum after them. True when something was deleted.
    pub fn apply_retention(
        &mut self,
        now: u64,
        reserved_ms: u64,
        clean_forcibly_ratio: f64,
    ) -> Result<bool> {
        let forcibly = self
            .backend
            .disk_usage()
            .is_some_and(|u| u >= clean_forcibly_ratio);
        let mut deleted = 0;
        for (_, last_ts) in self.commitlog.sealed_segments() {
            if deleted >= 10 || !(forcibly || last_ts.saturating_add(reserved_ms) <= now) {
                break;
            }
            if !self.commitlog.delete_oldest().map_err(store_err)? {
                break;
            }
            deleted += 1;
        }
        if deleted == 0 {
            return Ok(false);
        }
        let min = self.commitlog.min_offset();
        for cq in self.queues.all_mut() {
            cq.correct_min(min).map_err(store_err)?;
        }
        self.index.retain_from(min);
        Ok(true)
    }
}

/// Whether two topic strings are equal, cheaply when they are the same allocation.
pub(crate) fn same(a: &Arc<str>, b: &Arc<str>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}
