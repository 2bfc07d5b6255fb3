//! The store under the broker: the CommitLog, the ConsumeQueues, the key index and
//! the topic registry over one backend, with open-time recovery and retention.
//!
//! Open replays the CommitLog from its first retained record: that one scan finds the
//! end (checking CRCs after an unclean exit), rebuilds the key index, refills any
//! ConsumeQueue that is missing or behind (per queue), and feeds the timer and
//! transaction tables. Then every ConsumeQueue is cut back to the CommitLog's end.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::commitlog::{CommitLog, Placed};
use crate::consume_queue::{ConsumeQueue, CqEntry, FILE_ENTRIES, MEMORY_ENTRIES};
use crate::index::KeyIndex;
use crate::message::record::{self, prop, RecordSpec, RecordView};
use crate::store::Backend;
use crate::topic::{self, TopicRegistry};
use crate::{Error, MessageExt, Result};

/// What a clean close leaves, and what an unclean open starts verifying from.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    /// Everything in the CommitLog below this offset was flushed.
    #[serde(rename = "physicFlushed")]
    pub flushed: u64,
    /// The store's message-id nonce.
    pub nonce: u64,
}

impl Checkpoint {
    pub const FILE: &'static str = "checkpoint";
}

pub(crate) const ABORT_FILE: &str = "abort";

/// Where dispatch put a record, for the layers above (timers, transactions, waking).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    User,
    Schedule,
    Timer,
    Half,
    Op,
    Other,
}

pub(crate) fn kind_of(topic: &str) -> Kind {
    match topic {
        topic::SCHEDULE_TOPIC => Kind::Schedule,
        topic::TIMER_TOPIC => Kind::Timer,
        topic::TRANS_HALF_TOPIC => Kind::Half,
        topic::TRANS_OP_HALF_TOPIC => Kind::Op,
        topic::TRANS_CHECK_MAX_TOPIC => Kind::Other,
        _ => Kind::User,
    }
}

pub(crate) struct Store {
    pub backend: Arc<dyn Backend>,
    pub commitlog: CommitLog,
    pub queues: FxHashMap<String, Vec<ConsumeQueue>>,
    pub index: KeyIndex,
    pub topics: TopicRegistry,
    pub topics_dirty: bool,
    pub nonce: u64,
    pub cq_entries: usize,
    /// Delay of each level, to compute schedule entries' delivery times.
    pub levels: Vec<u64>,
    pub unclean: bool,
    /// Where the records of the last `put` went (reused across appends).
    pub placed: Vec<Placed>,
    qos: Vec<u64>,
}

impl Store {
    /// Opens the backend's files (no replay yet).
    pub fn open(
        backend: Arc<dyn Backend>,
        seg_size: usize,
        levels: Vec<u64>,
        fresh_nonce: u64,
    ) -> Result<Store> {
        let unclean = backend.read_meta(ABORT_FILE)?.is_some();
        let checkpoint: Option<Checkpoint> = read_json(&*backend, Checkpoint::FILE)?;
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
        let cq_entries = if backend.is_persistent() {
            FILE_ENTRIES
        } else {
            MEMORY_ENTRIES
        };
        let mut store = Store {
            nonce: checkpoint.map_or(fresh_nonce, |c| c.nonce),
            backend,
            commitlog,
            queues: FxHashMap::default(),
            index: KeyIndex::default(),
            topics,
            topics_dirty: false,
            cq_entries,
            levels,
            unclean,
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
            store.ensure_queues(&name, want)?;
        }
        // Persist the nonce before anything is written under it.
        if checkpoint.is_none() {
            store.write_checkpoint()?;
        }
        Ok(store)
    }

    pub fn checkpoint_verify_from(&self) -> u64 {
        if !self.unclean {
            return u64::MAX;
        }
        let cp: Option<Checkpoint> = read_json(&*self.backend, Checkpoint::FILE).ok().flatten();
        let flushed = cp.map_or(0, |c| c.flushed);
        let seg = self.commitlog.seg_size() as u64;
        // Re-verify the whole segment the checkpoint points into.
        flushed - flushed % seg
    }

    pub fn write_checkpoint(&self) -> Result<()> {
        let cp = Checkpoint {
            flushed: self.commitlog.flushed(),
            nonce: self.nonce,
        };
        write_json(&*self.backend, Checkpoint::FILE, &cp)
    }

    /// Makes sure `topic` has ConsumeQueues `0..n`.
    pub fn ensure_queues(&mut self, topic: &str, n: u32) -> Result<()> {
        let have = self.queues.get(topic).map_or(0, Vec::len) as u32;
        if have >= n {
            return Ok(());
        }
        let mut added = Vec::new();
        for q in have..n {
            added.push(
                ConsumeQueue::open(self.backend.clone(), topic, q, self.cq_entries)
                    .map_err(store_err)?,
            );
        }
        self.queues
            .entry(topic.to_string())
            .or_default()
            .extend(added);
        Ok(())
    }

    /// Creates `name` with `queues` queues, or grows it. True when something changed.
    pub fn create_topic(&mut self, name: &str, queues: u32) -> Result<bool> {
        let changed = self.topics.ensure(name, queues);
        let n = self.topics.queues(name).unwrap_or(queues);
        self.ensure_queues(name, n)?;
        if changed {
            self.topics_dirty = true;
        }
        Ok(changed)
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
            .get(topic)
            .and_then(|q| q.get(queue_id as usize))
            .map_or(0, ConsumeQueue::max_offset)
    }

    pub fn cq(&self, topic: &str, queue_id: u32) -> Option<&ConsumeQueue> {
        self.queues.get(topic)?.get(queue_id as usize)
    }

    /// Appends `specs` as one batch (queue offsets assigned here) and dispatches each
    /// record. `on_dispatch` sees every record as it lands.
    pub fn put(
        &mut self,
        specs: &[RecordSpec],
        now: u64,
        mut on_dispatch: impl FnMut(&RecordView<'_>, Kind, u64),
    ) -> Result<()> {
        self.placed.clear();
        if specs.is_empty() {
            return Ok(());
        }
        for s in specs {
            if self.cq(&s.topic, s.queue_id).is_none() {
                let n = self
                    .topics
                    .queues(&s.topic)
                    .unwrap_or(0)
                    .max(s.queue_id + 1);
                self.create_topic(&s.topic, n)?;
            }
        }
        // Consecutive offsets per (topic, queue); a batch usually has one target.
        let first = &specs[0];
        let mut qos = std::mem::take(&mut self.qos);
        qos.clear();
        if specs
            .iter()
            .all(|s| s.queue_id == first.queue_id && same(&s.topic, &first.topic))
        {
            let base = self.next_queue_offset(&first.topic, first.queue_id);
            qos.extend(base..base + specs.len() as u64);
        }
        if qos.is_empty() {
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
        let mut placed = std::mem::take(&mut self.placed);
        let appended = self.commitlog.append(specs, &qos, now, &mut placed);
        self.qos = qos;
        if let Err(e) = appended {
            self.placed = placed;
            return Err(e);
        }
        let mut result = Ok(());
        for (p, s) in placed.iter().zip(specs) {
            result = if kind_of(&s.topic) == Kind::User {
                self.dispatch_user(s, p)
            } else {
                self.dispatch_at(p.phys, &mut on_dispatch)
            };
            if result.is_err() {
                break;
            }
        }
        self.placed = placed;
        result
    }

    /// Dispatches a user record from what was just encoded, without reading it back.
    fn dispatch_user(&mut self, s: &RecordSpec, p: &Placed) -> Result<()> {
        let code = record::tag_code(record::prop_value(&s.properties, prop::TAGS));
        let Some(cq) = self
            .queues
            .get_mut(&*s.topic)
            .and_then(|l| l.get_mut(s.queue_id as usize))
        else {
            return Err(Error::StoreCorrupted(format!(
                "queue {} of {} vanished during an append",
                s.queue_id, s.topic
            )));
        };
        let entry = CqEntry {
            phys: p.phys,
            size: s.encoded_len() as u32,
            code,
        };
        cq.put(p.queue_offset, entry).map_err(store_err)?;
        if let Some(keys) = record::prop_value(&s.properties, prop::KEYS) {
            for k in keys.split(' ').filter(|k| !k.is_empty()) {
                self.index.put(&s.topic, k, p.phys);
            }
        }
        Ok(())
    }

    fn dispatch_at(
        &mut self,
        phys: u64,
        on_dispatch: &mut impl FnMut(&RecordView<'_>, Kind, u64),
    ) -> Result<()> {
        let Store {
            commitlog,
            queues,
            index,
            levels,
            ..
        } = self;
        let r = commitlog.with_record(phys, |r| dispatch(r, queues, index, levels, on_dispatch));
        match r {
            Some(res) => res,
            None => Err(Error::StoreCorrupted(format!(
                "record at {phys} vanished after its append"
            ))),
        }
    }

    /// Replays the log (see the module docs). `on_record` feeds the layers above.
    pub fn recover(&mut self, mut on_record: impl FnMut(&RecordView<'_>, Kind, u64)) -> Result<()> {
        let verify_from = self.checkpoint_verify_from();
        let Store {
            commitlog,
            queues,
            index,
            levels,
            backend,
            cq_entries,
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
                let have = queues.get(topic).map_or(0, Vec::len) as u32;
                if have <= r.queue_id {
                    missing.push((topic.to_string(), r.queue_id));
                    let list = queues.entry(topic.to_string()).or_default();
                    for q in have..=r.queue_id {
                        match ConsumeQueue::open(backend.clone(), topic, q, *cq_entries) {
                            Ok(cq) => list.push(cq),
                            Err(e) => {
                                failure = Some(store_err(e));
                                return;
                            }
                        }
                    }
                }
                if let Err(e) = dispatch(r, queues, index, levels, &mut on_record) {
                    failure = Some(e);
                }
            })
            .map_err(store_err)?;
        if let Some(e) = failure {
            return Err(e);
        }
        index.merge();
        for list in queues.values_mut() {
            for cq in list.iter_mut() {
                cq.truncate_to_commitlog(end).map_err(store_err)?;
            }
        }
        let min = self.commitlog.min_offset();
        for list in self.queues.values_mut() {
            for cq in list.iter_mut() {
                cq.correct_min(min).map_err(store_err)?;
            }
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
        let (body_at, len, msg) = self.commitlog.with_record(phys, |r| {
            let (at, len) = r.body_range();
            (at, len, r.to_message(self.nonce, Bytes::new()))
        })?;
        let mut msg = msg;
        msg.body = self.commitlog.read(phys + body_at as u64, len)?;
        Some(msg)
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
        for list in self.queues.values_mut() {
            for cq in list.iter_mut() {
                cq.correct_min(min).map_err(store_err)?;
            }
        }
        self.index.retain_from(min);
        Ok(true)
    }
}

/// Whether two topic strings are equal, cheaply when they are the same allocation.
pub(crate) fn same(a: &Arc<str>, b: &Arc<str>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

/// Writes a record's ConsumeQueue entry and index keys, then tells `on_dispatch`.
fn dispatch(
    r: &RecordView<'_>,
    queues: &mut FxHashMap<String, Vec<ConsumeQueue>>,
    index: &mut KeyIndex,
    levels: &[u64],
    on_dispatch: &mut impl FnMut(&RecordView<'_>, Kind, u64),
) -> Result<()> {
    let topic = r.topic();
    let kind = kind_of(topic);
    let code = match kind {
        Kind::Schedule => {
            let delay = levels
                .get(r.queue_id as usize)
                .or(levels.last())
                .copied()
                .unwrap_or(0);
            r.store_ts + delay
        }
        Kind::Timer => r
            .prop(prop::TIMER_DELIVER_MS)
            .and_then(|v| v.parse().ok())
            .unwrap_or(r.store_ts),
        _ => record::tag_code(r.tags()),
    };
    let Some(cq) = queues
        .get_mut(topic)
        .and_then(|l| l.get_mut(r.queue_id as usize))
    else {
        return Err(Error::StoreCorrupted(format!(
            "record at {} names queue {} of {topic}, which does not exist",
            r.phys, r.queue_id
        )));
    };
    let entry = CqEntry {
        phys: r.phys,
        size: r.len() as u32,
        code,
    };
    cq.put(r.queue_offset, entry).map_err(store_err)?;
    if let Some(keys) = r.prop(prop::KEYS) {
        for k in keys.split(' ').filter(|k| !k.is_empty()) {
            index.put(topic, k, r.phys);
        }
    }
    on_dispatch(r, kind, code);
    Ok(())
}

pub(crate) fn store_err(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::InvalidData {
        Error::StoreCorrupted(e.to_string())
    } else {
        Error::Io(e)
    }
}

pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(
    backend: &dyn Backend,
    name: &str,
) -> Result<Option<T>> {
    match backend.read_meta(name)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::StoreCorrupted(format!("{name}: {e}"))),
    }
}

pub(crate) fn write_json<T: Serialize>(backend: &dyn Backend, name: &str, value: &T) -> Result<()> {
    backend.write_meta(name, &to_json(value)?)?;
    Ok(())
}

/// A metadata file's contents: pretty JSON, readable by a person.
pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|e| Error::StoreCorrupted(e.to_string()))
}
