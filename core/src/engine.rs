//! The engine: every service of one store, composed behind the broker's one lock
//! (the facade in `broker/` holds the lock; this is what it guards).
//!
//! Services decide; the engine wires them: a record any service wants written goes
//! through [`Engine::put`], which appends it and dispatches it to every service it
//! concerns (`dispatch.rs`), exactly as recovery replays it. Methods here never block
//! and never call user code: the facade (mod.rs) waits, flushes and calls
//! transaction listeners outside the lock.

use std::sync::Arc;

use crate::commitlog::recovery::ABORT_FILE;
use crate::consumer::{ConsumerGroups, NackOutcome, OffsetTable};
use crate::dispatch::Services;
use crate::message::properties;
use crate::message::record::{RecordSpec, END_FILE_MIN_BLANK};
use crate::message::{id, MessageExt};
use crate::message_store::{Destination, MessageStore};
use crate::retention::RetentionService;
use crate::schedule::{ScheduleService, TimerWheel, DELIVERY_BATCH};
use crate::stats::{self, Stats, TopicRates};
use crate::store::meta::{read_json, store_err};
use crate::store::Backend;
use crate::topic;
use crate::transaction::{Check, Transactions, TxState};
use crate::{
    BrokerConfig, ConsumerConfig, Delay, Error, Message, Result, SendResult, SendStatus, StartFrom,
};

pub(crate) type Callback = Box<dyn FnOnce() + Send>;

/// After deferred work failed (a full disk, say), when it is tried again.
const RETRY_AFTER_ERROR_MS: u64 = 1000;

pub(crate) struct Engine {
    pub store: MessageStore,
    pub settings: crate::config::Settings,
    pub groups: ConsumerGroups,
    pub schedule: ScheduleService,
    pub timer: TimerWheel,
    pub tx: Transactions,
    pub rates: TopicRates,
    pub closed: bool,
    /// Called once when messages may have arrived (event loops waiting).
    pub waiters: Vec<Callback>,
    /// Earliest time deferred work may be due (u64::MAX: none).
    pub next_due: u64,
    pub retention: RetentionService,
    /// Set when a record consumers read landed; the facade wakes receivers.
    pub arrived: bool,
    /// Why sends are refused with `DiskFull`, while they are: the disk is used
    /// above `disk_max_used_ratio`, or the store was opened on a full disk.
    pub disk_full: Option<String>,
    /// Reused between sends.
    spec_buf: Vec<RecordSpec>,
}

/// The services dispatch feeds, borrowed from an engine's fields.
macro_rules! services {
    ($e:ident) => {
        Services {
            levels: &$e.schedule.levels,
            timer: &mut $e.timer,
            tx: &mut $e.tx,
            next_due: &mut $e.next_due,
            arrived: &mut $e.arrived,
        }
    };
}

fn fresh_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(crate::runtime::process_id());
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
        let timers_queued = store
            .queues
            .get(topic::TIMER_TOPIC, 0)
            .map_or(0, |cq| cq.max_offset());
        let mut e = Engine {
            store,
            groups: ConsumerGroups::new(offsets),
            schedule: ScheduleService::open(settings.levels.clone(), &*backend)?,
            timer: TimerWheel::open(backend.clone(), timers_queued, now)?,
            tx: Transactions::open(settings.tx, &*backend)?,
            settings,
            rates: TopicRates::default(),
            closed: false,
            waiters: Vec::new(),
            next_due: 0,
            retention: RetentionService::new(config.retention, now),
            arrived: false,
            disk_full: None,
            spec_buf: Vec::new(),
        };
        let store = &mut e.store;
        store.recover(&mut services!(e), e.settings.default_queues)?;
        e.next_due = 0;
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

    /// Stores `msgs` (one topic, one queue, one append); as half messages of
    /// `half_group`, invisible until resolved, when that is given.
    pub fn send(
        &mut self,
        msgs: Vec<Message>,
        rr: u32,
        now: u64,
        half_group: Option<&str>,
    ) -> Result<Vec<SendResult>> {
        self.check_open()?;
        let Some(first) = msgs.first() else {
            return Ok(Vec::new());
        };
        if msgs.iter().any(|m| m.topic != first.topic) {
            return Err(Error::invalid("a batch goes to one topic"));
        }
        let delayed = msgs.iter().any(|m| m.delay != Delay::None);
        if delayed && (msgs.len() > 1 || half_group.is_some()) {
            return Err(Error::invalid(
                "a batch or a transactional message cannot be delayed",
            ));
        }
        if let Some(why) = &self.disk_full {
            return Err(Error::DiskFull(why.clone()));
        }
        let max_size = self.settings.max_message_size;
        msgs.iter().try_for_each(|m| m.validate(max_size))?;
        let total: usize = msgs.iter().map(|m| m.body.len()).sum();
        if msgs.len() > 1 && total > max_size {
            return Err(Error::MessageTooLarge {
                size: total,
                limit: max_size,
            });
        }
        let (auto, n) = (
            self.settings.auto_create_topics,
            self.settings.default_queues,
        );
        let queues = self.store.user_topic_queues(&first.topic, auto, n)?;
        let queue_id = topic::select_queue(first, queues, rr)?;
        let topic_name = first.topic.clone();
        let topic = self.store.topic_arc(&topic_name);
        let mut specs = std::mem::take(&mut self.spec_buf);
        specs.clear();
        let max_delay = self.settings.timer_max_delay_ms;
        let mut built = Ok(());
        for m in msgs {
            let delay = m.delay;
            let mut spec = m.into_record(topic.clone(), queue_id, now);
            if delay != Delay::None {
                built = self
                    .schedule
                    .apply(&mut spec, delay, now, max_delay, &mut self.store);
            }
            if let Some(group) = half_group {
                spec = Transactions::half_spec(spec, group);
            }
            built = built.and_then(|()| properties::check_len(&spec.properties));
            if built.is_err() {
                break;
            }
            specs.push(spec);
        }
        if built.is_ok() {
            // A send that starts a new segment looks at the disk first.
            let size: usize = specs.iter().map(RecordSpec::encoded_len).sum();
            if size + END_FILE_MIN_BLANK > self.store.commitlog.remaining_in_segment() {
                self.check_disk();
                if let Some(why) = &self.disk_full {
                    built = Err(Error::DiskFull(why.clone()));
                }
            }
        }
        let put = built.and_then(|()| self.put(&specs, now));
        specs.clear();
        self.spec_buf = specs;
        put?;
        let nonce = self.store.nonce;
        Ok(self
            .store
            .placed
            .iter()
            .map(|p| SendResult {
                msg_id: id::make(nonce, p.phys),
                topic: topic_name.clone(),
                queue_id,
                queue_offset: p.queue_offset,
                commitlog_offset: p.phys,
                status: SendStatus::SendOk,
                transaction_state: None,
            })
            .collect())
    }

    /// Records the outcome of half message `qo`; the first resolution wins. Returns
    /// whether this call resolved it.
    pub fn resolve(&mut self, qo: u64, state: TxState, now: u64) -> Result<bool> {
        if self.closed {
            return Ok(false);
        }
        let queues = self.settings.default_queues;
        match self
            .tx
            .resolution(qo, state, &mut self.store, queues, now)?
        {
            Some(specs) => self.put(&specs, now).map(|()| true),
            None => Ok(false),
        }
    }

    pub fn add_consumer(&mut self, cfg: &ConsumerConfig, now: u64) -> Result<u64> {
        self.check_open()?;
        let (auto, queues) = (
            self.settings.auto_create_topics,
            self.settings.default_queues,
        );
        self.groups.add(cfg, &mut self.store, auto, queues, now)
    }

    pub fn close_consumer(&mut self, handle: u64, now: u64) -> Result<()> {
        self.groups.close(handle, &mut self.store, now)
    }

    /// A failed delivery: a retry copy or a dead letter is appended, or an orderly
    /// queue pauses.
    pub fn nack(&mut self, handle: u64, msg: &MessageExt, now: u64) -> Result<()> {
        self.check_open()?;
        let levels = self.schedule.levels.len() as u32;
        match self
            .groups
            .nack(&mut self.store, handle, msg, levels, now)?
        {
            NackOutcome::Done => Ok(()),
            NackOutcome::Suspended(until) => {
                self.next_due = self.next_due.min(until);
                Ok(())
            }
            NackOutcome::SendBack(mut spec, delay) => {
                let max_delay = self.settings.timer_max_delay_ms;
                self.schedule
                    .apply(&mut spec, delay, now, max_delay, &mut self.store)?;
                self.put(std::slice::from_ref(&spec), now)?;
                self.groups.ack(handle, msg)
            }
        }
    }

    pub fn reset_offset(&mut self, group: &str, t: &str, to: StartFrom, now: u64) -> Result<()> {
        self.check_open()?;
        self.groups.reset_offset(&self.store, group, t, to, now)?;
        self.arrived = true;
        Ok(())
    }

    /// Delivers what is due at `now`: delayed messages, timers, orderly pauses ending,
    /// and retention every 10 s. Returns the transaction checks to run (outside the
    /// lock).
    pub fn run_due(&mut self, now: u64) -> Result<Vec<Check>> {
        if self.closed {
            return Ok(Vec::new());
        }
        let mut checks = Vec::new();
        if now >= self.next_due {
            match self.run_deferred(now) {
                Ok(due_checks) => checks = due_checks,
                Err(e) => {
                    // Nothing is lost (cursors did not move past what failed); try
                    // again a little later rather than on every call.
                    self.next_due = now.saturating_add(RETRY_AFTER_ERROR_MS);
                    return Err(e);
                }
            }
        }
        self.retention_if_due(now)?;
        Ok(checks)
    }

    /// The deferred work of `run_due`: delays, timers, transaction checks and
    /// discards, orderly pauses ending.
    fn run_deferred(&mut self, now: u64) -> Result<Vec<Check>> {
        while let Some((level, cursor, due)) = self.schedule.due_batch(&self.store, now) {
            self.deliver(&due, now)?;
            self.schedule.advance(level, cursor);
        }
        loop {
            let due = self.timer.due_records(&self.store, now);
            if due.is_empty() {
                break;
            }
            for (i, chunk) in due.chunks(DELIVERY_BATCH).enumerate() {
                let phys: Vec<u64> = chunk.iter().map(|d| d.2).collect();
                if let Err(e) = self.deliver(&phys, now) {
                    // Back into the wheel, due again on the next try: a timer taken
                    // out is delivered or put back, never dropped.
                    for &(qo, at, _) in &due[i * DELIVERY_BATCH..] {
                        self.timer.add(qo, at).map_err(store_err)?;
                    }
                    return Err(e);
                }
            }
        }
        let queues = self.settings.default_queues;
        let (checks, discards) = self.tx.due(&mut self.store, queues, now)?;
        // Each discard (its copy and its op record) is one append of its own.
        for pair in discards.chunks(2) {
            self.put(pair, now)?;
        }
        if self.groups.resume_due(now) {
            self.arrived = true;
        }
        self.next_due = self.compute_next_due();
        Ok(checks)
    }

    /// Copies the delayed records at `phys` to their real topics, in as few appends
    /// as fit a segment.
    fn deliver(&mut self, phys: &[u64], now: u64) -> Result<()> {
        let drop = [
            crate::message::properties::prop::DELAY,
            crate::message::properties::prop::TIMER_DELIVER_MS,
        ];
        let queues = self.settings.default_queues;
        let mut specs = Vec::with_capacity(phys.len());
        for &p in phys {
            let to = Destination::Real { retries: true };
            if let Some(s) = self.store.copy_to_real_topic(p, &drop, to, queues)? {
                specs.push(s);
            }
        }
        self.put_in_appends(&specs, now)
    }

    /// Appends `specs` (records the engine re-appends, which need not be one batch)
    /// in runs that each fit a segment: however many come due together, none is
    /// refused as too large. A record that fits no segment on its own is skipped.
    fn put_in_appends(&mut self, specs: &[RecordSpec], now: u64) -> Result<()> {
        let limit = self.store.commitlog.seg_size() - END_FILE_MIN_BLANK;
        let mut from = 0;
        while from < specs.len() {
            let mut size = 0;
            let mut to = from;
            while to < specs.len() && size + specs[to].encoded_len() <= limit {
                size += specs[to].encoded_len();
                to += 1;
            }
            if to == from {
                self.store.skipped_records += 1;
                log::warn!(
                    "a deferred record of {} bytes fits no CommitLog segment; skipped",
                    specs[from].encoded_len()
                );
                from += 1;
                continue;
            }
            self.put(&specs[from..to], now)?;
            from = to;
        }
        Ok(())
    }

    fn compute_next_due(&self) -> u64 {
        [
            self.schedule.next_due(&self.store),
            self.timer.next_due(),
            self.tx.next_due(),
            self.groups.next_resume(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(u64::MAX)
    }

    /// When the next deferred job is due, if any (0 in `next_due` only means "look
    /// again": the real time is computed then); retention's next pass counts when
    /// there is anything it could delete.
    pub fn next_due_ms(&self) -> Option<u64> {
        let next = match self.next_due {
            0 => self.compute_next_due(),
            n => n,
        };
        let retention = if self.store.commitlog.has_sealed() {
            self.retention.next_due()
        } else {
            u64::MAX
        };
        let next = next.min(retention);
        (next != u64::MAX).then_some(next)
    }

    /// Runs a retention pass if one is due (every 10 s of broker time).
    pub fn retention_if_due(&mut self, now: u64) -> Result<()> {
        if self.retention.is_due(now) {
            self.retention(now)?;
        }
        Ok(())
    }

    /// Runs a retention pass now.
    pub fn retention(&mut self, now: u64) -> Result<()> {
        let pinned = self.first_needed_record();
        let Engine {
            retention,
            store,
            groups,
            settings,
            ..
        } = self;
        retention.run(now, store, groups, pinned, settings)?;
        Ok(())
    }

    /// The lowest CommitLog offset a pending delay, timer or half message still
    /// needs: retention never deletes it.
    fn first_needed_record(&self) -> Option<u64> {
        let timer = self.timer.first_pending().and_then(|qo| {
            let cq = self.store.queues.get(topic::TIMER_TOPIC, 0)?;
            crate::retention::first_record(cq, qo)
        });
        let half = self.tx.pending.values().map(|p| p.phys).min();
        [self.schedule.first_pending_phys(&self.store), timer, half]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn pending_delayed(&self) -> u64 {
        self.timer.pending() + self.schedule.pending(&self.store)
    }

    pub fn stats(&self, now: u64) -> Stats {
        let pending_tx = self.tx.pending.len() as u64;
        stats::report(
            &self.store,
            &self.groups,
            &self.rates,
            &self.retention.expired,
            self.pending_delayed(),
            pending_tx,
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
        Ok(out)
    }
}
