//! The message store (RocketMQ's `DefaultMessageStore`): the CommitLog, the
//! ConsumeQueues, the key index and the topic registry over one backend; appending
//! with dense queue offsets, reading messages back, recovery on open, retention.
//!
//! Open replays the CommitLog from its first retained record: that one scan finds the
//! end (checking every record's CRC) and dispatches every record again
//! (`dispatch.rs`), which rebuilds the key index, refills any ConsumeQueue that is
//! missing or behind, and feeds the timer and transaction services. Then every
//! ConsumeQueue is cut back to the CommitLog's end.
//!
//! Invariants: for each queue, CommitLog order is queue-offset order and offsets are
//! dense; no ConsumeQueue entry points at or beyond the CommitLog's end.

use std::sync::Arc;

use bytes::Bytes;

use crate::commitlog::recovery::{Checkpoint, StoreInfo, ABORT_FILE};
use crate::commitlog::{CommitLog, Lookup, Placed, Span};
use crate::consume_queue::{ConsumeQueue, ConsumeQueues, FILE_ENTRIES, MEMORY_ENTRIES};
use crate::dispatch::{self, DispatchRequest, Mode, Services};
use crate::index::KeyIndex;
use crate::message::id::{self, Nonces};
use crate::message::properties::{self, prop};
use crate::message::record::{self, RecordSpec};
use crate::message::{MessageExt, SendResult};
use crate::store::meta::{read_json, store_err, write_json};
use crate::store::Backend;
use crate::topic::{self, DeletedTopics, TopicRegistry};
use crate::{Error, Result};

mod read;
mod recover;
mod retention;

/// Where a deferred record goes when it is re-appended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Destination<'a> {
    /// Its `REAL_TOPIC` and `REAL_QID`: a user topic, or with `retries` also a
    /// group's retry topic (a retry waiting for its delay).
    Real { retries: bool },
    /// An engine topic and queue of the caller's choosing.
    Fixed(&'a str, u32),
}

pub(crate) struct MessageStore {
    pub backend: Arc<dyn Backend>,
    pub commitlog: CommitLog,
    pub queues: ConsumeQueues,
    pub index: KeyIndex,
    pub topics: TopicRegistry,
    pub topics_dirty: bool,
    /// Deleted topics, and how far their records are unreachable.
    pub deleted: DeletedTopics,
    /// `deleted` changed since it was last persisted.
    pub deleted_dirty: bool,
    /// The store's message-id nonces.
    pub ids: Nonces,
    /// The last exit was unclean: recovery starts a new nonce.
    unclean: bool,
    /// A nonce this open drew, for a new store or a new range of ids.
    fresh_nonce: u64,
    /// Records skipped because they could not be read or re-appended as they are
    /// (damaged, or naming a destination they may not have).
    pub skipped_records: u64,
    /// The durable offset the checkpoint file last said.
    checkpoint_written: u64,
    /// The topic of the last send, shared by its records: a name that passed
    /// `topic::validate_user_topic`.
    last_topic: Option<Arc<str>>,
    /// Where the records of the last append went (reused across appends).
    pub placed: Vec<Placed>,
    qos: Vec<u64>,
}

impl MessageStore {
    /// Lets go of the segments, the key index and what the backend holds, once the
    /// store is closed and written out: a closed broker holds no memory, mappings or
    /// files, whoever still has a handle on it.
    pub fn release(&mut self) {
        self.commitlog.release();
        self.queues.release();
        self.index = KeyIndex::default();
        self.backend.release();
    }

    /// Opens the backend's files (no replay yet: see `recover`).
    pub fn open(
        backend: Arc<dyn Backend>,
        seg_size: usize,
        fresh_nonce: u64,
    ) -> Result<MessageStore> {
        let unclean = backend.read_meta(ABORT_FILE)?.is_some();
        if unclean {
            log::info!("the last exit was unclean: recovering the tail of the CommitLog");
        }
        // Both say who the store is; either may be lost or damaged on its own.
        let info: Option<StoreInfo> = read_json(&*backend, StoreInfo::FILE).unwrap_or_else(|e| {
            log::warn!("{e}; the store's identity is taken from the checkpoint");
            None
        });
        let checkpoint = Checkpoint::read(&*backend).unwrap_or_else(|e| {
            log::warn!("{e}; the whole tail is treated as unflushed");
            None
        });
        let mut topics: TopicRegistry =
            read_json(&*backend, TopicRegistry::FILE)?.unwrap_or_default();
        topics.sanitize();
        let deleted: DeletedTopics = read_json(&*backend, DeletedTopics::FILE)?.unwrap_or_default();
        // An existing store keeps the segment size it was created with.
        let seg_size = match info
            .as_ref()
            .map(|i| i.segment_size)
            .filter(|s| StoreInfo::valid_size(*s))
        {
            Some(s) => s as usize,
            None => CommitLog::size_of_existing(&*backend)?.unwrap_or(seg_size),
        };
        let commitlog = CommitLog::open(backend.clone(), seg_size).map_err(store_err)?;
        // New queues' segments; a queue's existing files keep theirs.
        let entries = if backend.holds_segments_whole() {
            MEMORY_ENTRIES
        } else {
            FILE_ENTRIES
        };
        let ids = match (&info, &checkpoint) {
            // Both lists, should one of them have missed a write (a full disk).
            (Some(i), Some(c)) if i.nonce == c.nonce => {
                Nonces::new(i.nonce, [&i.later[..], &c.later[..]].concat())
            }
            (Some(i), _) => Nonces::new(i.nonce, i.later.clone()),
            (None, Some(c)) => Nonces::new(c.nonce, c.later.clone()),
            (None, None) => {
                if commitlog.end() > 0 {
                    log::warn!(
                        "{} and {} are both lost: this store's message ids change",
                        StoreInfo::FILE,
                        Checkpoint::FILE
                    );
                }
                Nonces::new(fresh_nonce, Vec::new())
            }
        };
        let mut store = MessageStore {
            ids,
            unclean,
            fresh_nonce,
            queues: ConsumeQueues::new(backend.clone(), entries),
            backend,
            commitlog,
            index: KeyIndex::default(),
            topics,
            topics_dirty: false,
            deleted,
            deleted_dirty: false,
            skipped_records: 0,
            checkpoint_written: u64::MAX,
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
            if store.deleted.topics.contains_key(&name) {
                // Queue files left by a deletion cut short, or of a topic created
                // again since: replay rebuilds what is reachable of them.
                store.backend.remove_dir(&format!("consumequeue/{name}"))?;
                if store.topics.queues(&name).is_none() {
                    continue;
                }
            }
            let dirs = store.backend.list_dirs(&format!("consumequeue/{name}"))?;
            let on_disk = dirs
                .iter()
                .filter_map(|d| d.parse::<u32>().ok())
                .filter(|q| {
                    let possible = *q < topic::MAX_QUEUES;
                    if !possible {
                        log::warn!("consumequeue/{name}/{q} cannot be a queue; ignored");
                    }
                    possible
                })
                .max()
                .map_or(0, |m| m + 1);
            let want = store.topics.queues(&name).unwrap_or(0).max(on_disk);
            store
                .queues
                .reopen(&name, want, !unclean)
                .map_err(store_err)?;
        }
        // Persist the nonce before anything is written under it.
        store.write_identity(info.as_ref(), checkpoint.is_none())?;
        Ok(store)
    }

    pub fn write_checkpoint(&mut self) -> Result<()> {
        self.checkpoint().write(&*self.backend)?;
        self.checkpoint_written = self.commitlog.durable();
        Ok(())
    }

    pub(super) fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            flushed: self.commitlog.durable(),
            nonce: self.ids.first,
            later: self.ids.later().to_vec(),
        }
    }

    /// Writes who the store is (`store.json`) unless `known` already says it, and the
    /// checkpoint too with `checkpoint`. On a full disk nothing will be written under
    /// a new nonce either (the store opens for reading), so that only warns.
    fn write_identity(&mut self, known: Option<&StoreInfo>, checkpoint: bool) -> Result<()> {
        let identity = StoreInfo {
            nonce: self.ids.first,
            segment_size: self.commitlog.seg_size() as u64,
            later: self.ids.later().to_vec(),
        };
        let written = (|| {
            if known != Some(&identity) {
                write_json(&*self.backend, StoreInfo::FILE, &identity)?;
            }
            if checkpoint {
                self.write_checkpoint()?;
            }
            Ok(())
        })();
        match written {
            Err(Error::DiskFull(why)) => log::warn!("store identity not written: {why}"),
            r => r?,
        }
        Ok(())
    }

    /// The checkpoint file, when more of the log is durable than when it was written
    /// (or `all`): how far recovery may trust the log after a crash.
    pub fn checkpoint_metadata(&mut self, all: bool) -> Result<Option<(&'static str, Vec<u8>)>> {
        let durable = self.commitlog.durable();
        if !(all || durable != self.checkpoint_written) {
            return Ok(None);
        }
        self.checkpoint_written = durable;
        Ok(Some((
            Checkpoint::FILE,
            crate::store::meta::to_json(&self.checkpoint())?,
        )))
    }

    /// Writes the topic registry now (a persistent store only).
    pub fn write_topics(&mut self) -> Result<()> {
        if self.backend.is_persistent() {
            crate::store::meta::write_json(&*self.backend, TopicRegistry::FILE, &self.topics)?;
            self.topics_dirty = false;
        }
        Ok(())
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

    /// The queue count of a user topic, and whether a send must create it first
    /// (with `default_queues`, as `auto_create` allows).
    pub fn user_topic_queues(
        &self,
        name: &str,
        auto_create: bool,
        default_queues: u32,
    ) -> Result<(u32, bool)> {
        // The last send's topic passed the checks, which look at the name alone.
        if !matches!(&self.last_topic, Some(t) if **t == *name) {
            topic::validate_user_topic(name)?;
        }
        match self.topics.queues(name) {
            Some(n) => Ok((n, false)),
            None if auto_create => Ok((default_queues, true)),
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
        // A send, and a batch usually, goes to one queue: looked up once.
        let first = &specs[0];
        let one_queue = specs
            .iter()
            .all(|s| s.queue_id == first.queue_id && same(&s.topic, &first.topic));
        if one_queue {
            // Created on the first send to it, then looked up again.
            for created in [false, true] {
                if let Some(cq) = self.queues.get_mut(&first.topic, first.queue_id) {
                    let log = (&mut self.commitlog, &mut self.qos, &mut self.placed);
                    return put_in_one_queue(specs, cq, log, &mut self.index, now, services);
                }
                if !created {
                    self.create_queue_of(first)?;
                }
            }
            return Err(Error::StoreCorrupted(format!(
                "queue {} of {} was not created",
                first.queue_id, first.topic
            )));
        }
        for s in specs {
            if self.queues.get(&s.topic, s.queue_id).is_none() {
                self.create_queue_of(s)?;
            }
        }
        self.assign_queue_offsets(specs, services)?;
        let mut placed = std::mem::take(&mut self.placed);
        let appended = self.commitlog.append(specs, &self.qos, now, &mut placed);
        let result = appended.and_then(|store_ts| {
            let (queues, index) = (&mut self.queues, &mut self.index);
            placed.iter().zip(specs).try_for_each(|(p, s)| {
                let r = DispatchRequest::from_spec(s, p.phys, p.queue_offset, store_ts);
                dispatch::dispatch(&r, Mode::Live, queues, index, services)
            })
        });
        self.placed = placed;
        result
    }

    /// Creates the queue `s` goes to (its topic with at least that many queues).
    fn create_queue_of(&mut self, s: &RecordSpec) -> Result<()> {
        let n = self
            .topics
            .queues(&s.topic)
            .unwrap_or(0)
            .max(s.queue_id + 1);
        self.create_topic(&s.topic, n).map(|_| ())
    }

    /// Consecutive offsets per (topic, queue) of a batch spread over several queues
    /// into `self.qos`, and what dispatching them will write (ConsumeQueue entries,
    /// timer links) allocated before they are appended: once a record is in the
    /// log, nothing it needs may fail for space.
    pub(super) fn assign_queue_offsets(
        &mut self,
        specs: &[RecordSpec],
        services: &mut Services<'_>,
    ) -> Result<()> {
        let mut qos = std::mem::take(&mut self.qos);
        qos.clear();
        let mut next: Vec<(&str, u32, u64, usize)> = Vec::new();
        for s in specs {
            let qo = match next
                .iter_mut()
                .find(|(t, q, ..)| *q == s.queue_id && **t == *s.topic)
            {
                Some(slot) => {
                    slot.2 += 1;
                    slot.3 += 1;
                    slot.2
                }
                None => {
                    let base = self.next_queue_offset(&s.topic, s.queue_id);
                    next.push((&s.topic, s.queue_id, base, 1));
                    base
                }
            };
            qos.push(qo);
        }
        let result = next
            .iter()
            .try_for_each(|(t, q, _, n)| self.reserve(t, *q, *n, services).map(|_| ()));
        self.qos = qos;
        result
    }

    /// Allocates room for `n` more entries of (t, q) (and timer links); returns the
    /// queue's next offset.
    pub(super) fn reserve(
        &mut self,
        t: &str,
        q: u32,
        n: usize,
        services: &mut Services<'_>,
    ) -> Result<u64> {
        if t == topic::TIMER_TOPIC {
            services.timer.reserve(n).map_err(store_err)?;
        }
        match self.queues.get_mut(t, q) {
            Some(cq) => {
                cq.reserve(n).map_err(store_err)?;
                Ok(cq.max_offset())
            }
            None => Ok(0),
        }
    }
}

/// `MessageStore::put` of records that all go to `cq`: its room (and the timer's,
/// for the timer topic) reserved before the append, as for a spread batch, then the
/// records appended and dispatched, with no lookup of the queue again.
fn put_in_one_queue(
    specs: &[RecordSpec],
    cq: &mut ConsumeQueue,
    (commitlog, qos, placed): (&mut CommitLog, &mut Vec<u64>, &mut Vec<Placed>),
    index: &mut KeyIndex,
    now: u64,
    services: &mut Services<'_>,
) -> Result<()> {
    let n = specs.len();
    if &*specs[0].topic == topic::TIMER_TOPIC {
        services.timer.reserve(n).map_err(store_err)?;
    }
    cq.reserve(n).map_err(store_err)?;
    let base = cq.max_offset();
    qos.clear();
    qos.extend(base..base + n as u64);
    let store_ts = commitlog.append(specs, qos, now, placed)?;
    placed.iter().zip(specs).try_for_each(|(p, s)| {
        let r = DispatchRequest::from_spec(s, p.phys, p.queue_offset, store_ts);
        dispatch::dispatch_to(&r, Mode::Live, cq, index, services)
    })
}

/// Whether two topic strings are equal, cheaply when they are the same allocation.
pub(crate) fn same(a: &Arc<str>, b: &Arc<str>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}
