//! The engine: every service of one store, composed behind the broker's one lock
//! (the facade in `broker/` holds the lock; this is what it guards).
//!
//! Services decide; the engine wires them: a record any service wants written goes
//! through [`Engine::put`], which appends it and dispatches it to every service it
//! concerns (`dispatch.rs`), exactly as recovery replays it. Methods here never block
//! and never call user code: the facade (mod.rs) waits, flushes and calls
//! transaction listeners outside the lock.
//!
//! The engine's calls are grouped by what they serve: `send.rs` (checks, records,
//! dedup repeats), `consumers.rs` (classic and simple consumers' calls, acks, nacks,
//! dead letters, transaction resolutions), `deferred.rs` (delays, timers, checks,
//! ack deadlines, invisibility expiry, retention coming due), `lag.rs` (what a
//! group has not acked, its retries included); this file opens the store and
//! composes the services.

use std::sync::Arc;

use crate::commitlog::recovery::ABORT_FILE;
use crate::consumer::{pop, ConsumerGroups, NackOutcome, OffsetTable};
use crate::dedup::{DedupWindow, Key};
use crate::dispatch::Services;
use crate::message::properties;
use crate::message::record::{RecordSpec, END_FILE_MIN_BLANK};
use crate::message::{id, MessageExt, Taken};
use crate::message_store::{Destination, MessageStore};
use crate::retention::RetentionService;
use crate::schedule::{ScheduleService, TimerWheel, DELIVERY_BATCH};
use crate::stats::{self, Stats, TopicRates};
use crate::store::meta::{read_json, store_err};
use crate::store::{Backend, FlushJob};
use crate::topic;
use crate::transaction::{Check, Transactions, TxId, TxState};
use crate::{
    BrokerConfig, ConsumerConfig, Delay, Error, Message, Result, SendResult, SendStatus,
    SimpleConsumerConfig, StartFrom,
};

pub(crate) type Callback = Box<dyn FnOnce() + Send>;

/// A log record made under the engine lock, emitted by the facade once the lock is
/// released (a binding's logger may take a lock of its own, such as Python's GIL).
#[derive(Debug)]
pub(crate) struct Notice {
    pub level: log::Level,
    pub target: &'static str,
    pub text: String,
}

pub(crate) struct Engine {
    pub store: MessageStore,
    pub settings: crate::config::Settings,
    pub groups: ConsumerGroups,
    pub schedule: ScheduleService,
    pub timer: TimerWheel,
    pub tx: Transactions,
    pub dedup: DedupWindow,
    pub rates: TopicRates,
    pub closed: bool,
    /// Called once when messages may have arrived (event loops waiting).
    pub waiters: Vec<Callback>,
    /// Earliest time deferred work may be due (u64::MAX: none).
    pub next_due: u64,
    pub retention: RetentionService,
    /// Set when a record consumers read landed; the facade wakes receivers.
    pub arrived: bool,
    /// Set when delayed messages were delivered: their cursors are persisted soon,
    /// not at the next second, so a crash delivers few of them twice.
    pub delays_delivered: bool,
    /// Why sends are refused with `DiskFull`, while they are: the disk is used
    /// above `disk_max_used_ratio`, or the store was opened on a full disk.
    pub disk_full: Option<String>,
    /// Reused between sends.
    pub(crate) spec_buf: Vec<RecordSpec>,
    /// Emptied property buffers of stored records, for the next send's records (a
    /// message with tags, keys or a dedup id then encodes them with no allocation).
    pub(crate) prop_bufs: Vec<Vec<u8>>,
    pub(crate) key_buf: Vec<Option<Key>>,
    /// The topic strings of a send's messages, moved to their results.
    pub(crate) name_buf: Vec<String>,
    /// The message of a one-message send, and its result.
    pub(crate) one_buf: Vec<Message>,
    pub(crate) result_buf: Vec<SendResult>,
    /// Backlog drills and DLQ redrives not finished (admin/drill/).
    pub drills: crate::admin::drill::Drills,
    /// Log records to emit once the lock is released.
    pub notices: Vec<Notice>,
    /// Delayed records recalled before they came due, never to be delivered, with
    /// their delivery times.
    pub recalled: std::collections::HashMap<u64, u64>,
    /// Retry copies waiting for their delay, once a lag was asked for (lag.rs).
    pub retries: RetryLedger,
}

/// The services dispatch feeds, borrowed from an engine's fields.
macro_rules! services {
    ($e:ident) => {
        Services {
            levels: &$e.schedule.levels,
            timer: &mut $e.timer,
            tx: &mut $e.tx,
            dedup: &mut $e.dedup,
            pop: &mut $e.groups.pop,
            offsets: &$e.groups.offsets,
            replayed_acks: &mut $e.groups.replayed_acks,
            next_due: &mut $e.next_due,
            arrived: &mut $e.arrived,
            recalled: &mut $e.recalled,
            retries: &mut $e.retries,
        }
    };
}

mod consumers;
mod deferred;
mod lag;
mod send;

pub(crate) use lag::{PendingRetries, RetryLedger};
pub(crate) use send::is_delayed;

fn fresh_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(crate::runtime::process_id());
    h.write_u64(crate::runtime::entropy());
    h.finish()
}

impl Engine {
    /// Opens the store and replays it into every service.
    pub fn open(config: &BrokerConfig, backend: Arc<dyn Backend>, now: u64) -> Result<Engine> {
        let settings = config.settings()?;
        let seg_size = settings
            .segment_size
            .unwrap_or_else(|| backend.default_segment_size());
        let store = MessageStore::open(backend.clone(), seg_size, fresh_nonce())?;
        let offsets: OffsetTable = read_json(&*backend, OffsetTable::FILE)?.unwrap_or_default();
        if let Some(pid) = backend.read_meta(ABORT_FILE)? {
            // No live holder (the lock was free), yet the last owner never closed.
            let pid = String::from_utf8_lossy(&pid).trim().to_string();
            let at = config
                .path
                .as_ref()
                .map_or_else(|| "the store".to_string(), |p| p.display().to_string());
            log::warn!(
                "taking over {at}: process {pid} had it open and exited without closing it; \
                 recovering"
            );
        }
        let mut groups = ConsumerGroups::new(offsets);
        groups.pop.salt = store.ids.first;
        groups.pop.incarnations = store.deleted.topics.clone();
        // A store that dies with the process needs no revive log.
        groups.pop.pending.off = !backend.is_persistent();
        let mut e = Engine {
            store,
            groups,
            schedule: ScheduleService::open(settings.levels.clone(), &*backend)?,
            // Checked against the timer queue once replay has rebuilt it: its file
            // may lag the log (a crash before the queue was flushed).
            timer: TimerWheel::open(backend.clone(), u64::MAX, now)?,
            tx: Transactions::open(settings.tx, &*backend)?,
            dedup: DedupWindow::new(settings.dedup_window_ms),
            settings,
            rates: TopicRates::default(),
            closed: false,
            waiters: Vec::new(),
            next_due: 0,
            retention: RetentionService::new(config.retention, now),
            arrived: false,
            delays_delivered: false,
            disk_full: None,
            spec_buf: Vec::new(),
            prop_bufs: Vec::new(),
            key_buf: Vec::new(),
            name_buf: Vec::new(),
            one_buf: Vec::new(),
            result_buf: Vec::new(),
            drills: crate::admin::drill::Drills::open(&*backend)?,
            notices: Vec::new(),
            recalled: Default::default(),
            retries: RetryLedger::default(),
        };
        let store = &mut e.store;
        store.recover(&mut services!(e), e.settings.default_queues)?;
        let timers_queued = e
            .store
            .queues
            .get(topic::TIMER_TOPIC, 0)
            .map_or(0, |cq| cq.max_offset());
        e.timer.clamp_to_queued(backend.clone(), timers_queued)?;
        e.finish_deletions()?;
        e.next_due = 0;
        if e.groups.offsets.clamp_to(&e.store) {
            e.groups.offsets_dirty = true;
        }
        e.groups.pop.after_replay(&e.store);
        let marked = backend.write_meta(
            ABORT_FILE,
            crate::runtime::process_id().to_string().as_bytes(),
        );
        match marked.map_err(Error::from) {
            Ok(()) => e.check_disk(),
            // Nothing can be written: the store serves reads until space returns.
            Err(Error::DiskFull(why)) => {
                log::warn!("the disk is full ({why}): the store is open for reading only");
                e.disk_full = Some(format!("the disk was full at open ({why})"));
            }
            Err(err) => return Err(err),
        }
        e.schedule.clamp_cursors(&e.store);
        Ok(e)
    }

    /// Flushes everything and writes every metadata file and the checkpoint, then
    /// marks the engine closed and releases the store's lock (`Broker::close`).
    pub fn close(&mut self, now: u64) -> Result<()> {
        let result = self.write_out(now);
        self.closed = true;
        self.store.backend.unlock();
        self.store.release();
        self.timer.release();
        self.dedup.clear();
        result
    }

    fn write_out(&mut self, now: u64) -> Result<()> {
        self.flush_revive(now)?;
        let (log_job, cq_jobs) = self.flush_jobs();
        log_job.run()?;
        for (_, _, j) in &cq_jobs {
            j.run()?;
        }
        // And what async-mode flushes left under way, before the checkpoint vouches for it.
        if self.store.commitlog.syncs_under_way() {
            self.store.backend.sync_pending()?;
        }
        self.flushed(log_job.upto, cq_jobs, true);
        let written = (|| {
            for (name, bytes) in self.metadata(now, true)? {
                self.store.backend.write_meta(name, &bytes)?;
            }
            self.store.write_checkpoint()
        })();
        match written {
            // The messages are in the log; what could not be noted down is
            // replayed at the next open (at-least-once, as after a crash).
            Err(Error::DiskFull(why)) => {
                log::warn!("closing on a full disk: metadata not written ({why})");
                return Ok(());
            }
            r => r?,
        }
        self.store.backend.remove_meta(ABORT_FILE)?;
        Ok(())
    }

    /// What flushing the CommitLog and every ConsumeQueue takes, to run outside the
    /// lock; `flushed` records it done.
    pub fn flush_jobs(&self) -> (FlushJob, Vec<(String, u32, FlushJob)>) {
        (
            self.store.commitlog.flush_job(),
            self.store.queues.flush_jobs(),
        )
    }

    /// Records flush jobs done; `synced`: everything flushed so far is durable now,
    /// else syncs were left under way (`Region::flush_later`).
    pub fn flushed(&mut self, log_upto: u64, cq_jobs: Vec<(String, u32, FlushJob)>, synced: bool) {
        self.store.commitlog.flushed_to(log_upto, synced);
        for (t, q, j) in cq_jobs {
            if let Some(cq) = self.store.queues.get_mut(&t, q) {
                cq.flushed_to(j.upto);
            }
        }
    }

    /// Creates a topic or grows it (`Broker::create_topic`, validated there).
    pub fn create_topic(&mut self, name: &str, queues: u32, now: u64) -> Result<()> {
        if self.store.create_topic(name, queues)? {
            // Consumers of the topic get a share of the new queues.
            self.groups.topic_grew(name, &mut self.store, now)?;
        }
        if self.store.topics_dirty {
            // Durable before the call returns, so no send can be acknowledged on a
            // topic (or queue) a crash would take away.
            self.store.write_topics()?;
        }
        Ok(())
    }

    /// Refreshes whether the disk is used above `disk_max_used_ratio` (RocketMQ's
    /// "disk full"): while it is, sends are refused; they resume once it is not.
    pub fn check_disk(&mut self) {
        let ratio = self.settings.disk_max_used_ratio;
        match self.store.backend.disk_usage() {
            Some(used) if used > ratio => {
                if self.disk_full.is_none() {
                    log::warn!(
                        "the disk is {:.1}% used, above disk_max_used_ratio ({:.1}%): \
                         sends are refused until space returns",
                        used * 100.0,
                        ratio * 100.0
                    );
                }
                self.disk_full = Some(format!(
                    "the disk is {:.1}% used, above disk_max_used_ratio ({:.1}%)",
                    used * 100.0,
                    ratio * 100.0
                ));
            }
            Some(_) if self.disk_full.is_some() => {
                log::info!("disk space returned: sends are accepted again");
                self.disk_full = None;
            }
            _ => {}
        }
    }

    pub fn check_open(&self) -> Result<()> {
        if self.closed {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// Appends `specs` as one batch and dispatches them; where each went is in
    /// `self.store.placed`.
    pub fn put(&mut self, specs: &[RecordSpec], now: u64) -> Result<()> {
        let store = &mut self.store;
        store.put(specs, now, &mut services!(self))
    }

    /// Delayed messages waiting for their time (recalled ones not counted).
    pub fn pending_delayed(&self) -> u64 {
        (self.timer.pending() + self.schedule.pending(&self.store))
            .saturating_sub(self.recalled.len() as u64)
    }

    pub fn stats(&mut self, now: u64) -> Stats {
        let retries = self.pending_retries(None);
        let pending = stats::Pending {
            delayed: self.pending_delayed(),
            transactions: self.tx.pending.len() as u64,
            retries: &retries,
        };
        stats::report(
            &self.store,
            &self.groups,
            &self.rates,
            &self.retention.expired,
            pending,
            now,
        )
    }

    /// Samples rates (about once a second).
    pub fn sample(&mut self, now: u64) {
        self.rates.sample(&self.store, &mut self.groups, now);
    }

    /// Serialised metadata that changed since the last call (`all`: everything), to
    /// write outside the lock.
    pub fn metadata(&mut self, now: u64, all: bool) -> Result<Vec<(&'static str, Vec<u8>)>> {
        let mut out = Vec::new();
        // A topic's deletion is recorded before the offsets and registry it changes.
        if all || self.store.deleted_dirty {
            out.push((
                topic::DeletedTopics::FILE,
                crate::store::meta::to_json(&self.store.deleted)?,
            ));
            self.store.deleted_dirty = false;
        }
        out.extend(self.groups.metadata(all)?);
        out.extend(self.schedule.metadata(all)?);
        out.extend(self.timer.metadata(now, all)?);
        out.extend(self.tx.metadata(all)?);
        out.extend(self.store.checkpoint_metadata(all)?);
        if all || self.store.topics_dirty {
            out.push((
                topic::TopicRegistry::FILE,
                crate::store::meta::to_json(&self.store.topics)?,
            ));
            self.store.topics_dirty = false;
        }
        // A drill's record goes after the offsets it moved (admin/drill/).
        out.extend(self.drills.metadata(all)?);
        Ok(out)
    }
}
