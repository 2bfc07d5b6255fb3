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
use crate::store::Backend;
use crate::topic;
use crate::transaction::{Check, Transactions, TxState};
use crate::{
    BrokerConfig, ConsumerConfig, Delay, Error, Message, Result, SendResult, SendStatus,
    SimpleConsumerConfig, StartFrom,
};

pub(crate) type Callback = Box<dyn FnOnce() + Send>;

/// A message of a send that repeated a dedup id: its place in the send, and the
/// first send's result (or the index, among the stored messages, of the earlier
/// message of the same batch it repeats).
pub(crate) struct Repeat {
    at: usize,
    of: std::result::Result<SendResult, usize>,
}

/// Simple consumers' changes buffered before one revive record is appended.
const REVIVE_BATCH: usize = 4096;

/// A log record made under the engine lock, emitted by the facade once the lock is
/// released (a binding's logger may take a lock of its own, such as Python's GIL).
#[derive(Debug)]
pub(crate) struct Notice {
    pub level: log::Level,
    pub target: &'static str,
    pub text: String,
}

/// After deferred work failed (a full disk, say), when it is tried again.
const RETRY_AFTER_ERROR_MS: u64 = 1000;

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
    /// Why sends are refused with `DiskFull`, while they are: the disk is used
    /// above `disk_max_used_ratio`, or the store was opened on a full disk.
    pub disk_full: Option<String>,
    /// Reused between sends.
    spec_buf: Vec<RecordSpec>,
    /// Backlog drills and DLQ redrives not finished (admin/drill/).
    pub drills: crate::admin::drill::Drills,
    /// Log records to emit once the lock is released.
    pub notices: Vec<Notice>,
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
        // A store that dies with the process needs no revive log.
        groups.pop.pending.off = !backend.is_persistent();
        let timers_queued = store
            .queues
            .get(topic::TIMER_TOPIC, 0)
            .map_or(0, |cq| cq.max_offset());
        let mut e = Engine {
            store,
            groups,
            schedule: ScheduleService::open(settings.levels.clone(), &*backend)?,
            timer: TimerWheel::open(backend.clone(), timers_queued, now)?,
            tx: Transactions::open(settings.tx, &*backend)?,
            dedup: DedupWindow::new(settings.dedup_window_ms),
            settings,
            rates: TopicRates::default(),
            closed: false,
            waiters: Vec::new(),
            next_due: 0,
            retention: RetentionService::new(config.retention, now),
            arrived: false,
            disk_full: None,
            spec_buf: Vec::new(),
            drills: crate::admin::drill::Drills::open(&*backend)?,
            notices: Vec::new(),
        };
        let store = &mut e.store;
        store.recover(&mut services!(e), e.settings.default_queues)?;
        e.finish_deletions()?;
        e.next_due = 0;
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
        self.check_batch(&msgs, half_group.is_some())?;
        let (msgs, repeats) = self.drop_repeats(msgs, now);
        if msgs.is_empty() {
            return Ok(self.answer_repeats(Vec::new(), repeats));
        }
        // Ids the caller gave, to report (no allocation when none did).
        let given: Option<Vec<Option<String>>> = msgs
            .iter()
            .any(|m| m.msg_id.is_some())
            .then(|| msgs.iter().map(|m| m.msg_id.clone()).collect());
        let mut specs = std::mem::take(&mut self.spec_buf);
        specs.clear();
        let built = self
            .build(msgs, rr, now, half_group, &mut specs)
            .and_then(|to| self.room_for(&specs).map(|()| to));
        let put = built.and_then(|to| self.put(&specs, now).map(|()| to));
        specs.clear();
        self.spec_buf = specs;
        let (topic_name, queue_id) = put?;
        let results = self
            .store
            .placed
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut r = self.result(&topic_name, queue_id, p.phys, p.queue_offset);
                if let Some(id) = given.as_ref().and_then(|g| g[i].clone()) {
                    r.msg_id = id;
                }
                r
            })
            .collect();
        Ok(self.answer_repeats(results, repeats))
    }

    /// Refuses a user append that would start a new segment while the disk is used
    /// above `disk_max_used_ratio` (looked at again then).
    pub(crate) fn room_for(&mut self, specs: &[RecordSpec]) -> Result<()> {
        let size: usize = specs.iter().map(RecordSpec::encoded_len).sum();
        if size + END_FILE_MIN_BLANK > self.store.commitlog.remaining_in_segment() {
            self.check_disk();
            if let Some(why) = &self.disk_full {
                return Err(Error::DiskFull(why.clone()));
            }
        }
        Ok(())
    }

    /// What a send reports for the record stored at `phys`.
    pub(crate) fn result(&self, topic: &str, queue_id: u32, phys: u64, qo: u64) -> SendResult {
        SendResult {
            msg_id: id::make(self.store.nonce, phys),
            topic: topic.to_string(),
            queue_id,
            queue_offset: qo,
            commitlog_offset: phys,
            status: SendStatus::SendOk,
            transaction_state: None,
            duplicate: false,
        }
    }

    /// Checks a batch before anything is stored: one topic, no delay on a batch or a
    /// half message, every message valid, the bodies within the size limit.
    pub(crate) fn check_batch(&self, msgs: &[Message], half: bool) -> Result<()> {
        let Some(first) = msgs.first() else {
            return Ok(());
        };
        if msgs.iter().any(|m| m.topic != first.topic) {
            return Err(Error::invalid("a batch goes to one topic"));
        }
        let delayed = msgs.iter().any(|m| m.delay != Delay::None);
        if delayed && (msgs.len() > 1 || half) {
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
        Ok(())
    }

    /// The records of a checked, non-empty batch (appended to `specs`): its topic
    /// created if allowed, its queue chosen, delays and half messages applied.
    /// Returns the topic and queue.
    pub(crate) fn build(
        &mut self,
        msgs: Vec<Message>,
        rr: u32,
        now: u64,
        half_group: Option<&str>,
        specs: &mut Vec<RecordSpec>,
    ) -> Result<(String, u32)> {
        let Some(first) = msgs.first() else {
            return Err(Error::invalid("nothing to send"));
        };
        let (auto, n) = (
            self.settings.auto_create_topics,
            self.settings.default_queues,
        );
        let queues = self.store.user_topic_queues(&first.topic, auto, n)?;
        let queue_id = topic::select_queue(first, queues, rr)?;
        let topic_name = first.topic.clone();
        let topic = self.store.topic_arc(&topic_name);
        let max_delay = self.settings.timer_max_delay_ms;
        for m in msgs {
            let delay = m.delay;
            let mut spec = m.into_record(topic.clone(), queue_id, now);
            if delay != Delay::None {
                self.schedule
                    .apply(&mut spec, delay, now, max_delay, &mut self.store)?;
            }
            if let Some(group) = half_group {
                spec = Transactions::half_spec(spec, group);
            }
            properties::check_len(&spec.properties)?;
            specs.push(spec);
        }
        Ok((topic_name, queue_id))
    }

    /// Takes out of `msgs` those repeating a dedup id inside the window (of an earlier
    /// send, or of an earlier message of this batch).
    pub(crate) fn drop_repeats(
        &mut self,
        msgs: Vec<Message>,
        now: u64,
    ) -> (Vec<Message>, Vec<Repeat>) {
        if msgs.iter().all(|m| m.dedup_id.is_none()) {
            return (msgs, Vec::new());
        }
        self.dedup.expire(now);
        let mut kept = Vec::with_capacity(msgs.len());
        let mut repeats = Vec::new();
        let mut batch: Vec<(Key, usize)> = Vec::new();
        for (i, m) in msgs.into_iter().enumerate() {
            if let Some(d) = &m.dedup_id {
                let k = Key::of(&m.topic, d);
                let stored = self
                    .dedup
                    .get(k, now)
                    .and_then(|phys| self.store.send_result_at(phys));
                if let Some(r) = stored {
                    repeats.push(Repeat { at: i, of: Ok(r) });
                    continue;
                }
                if let Some(&(_, j)) = batch.iter().find(|(b, _)| *b == k) {
                    repeats.push(Repeat { at: i, of: Err(j) });
                    continue;
                }
                batch.push((k, kept.len()));
            }
            kept.push(m);
        }
        (kept, repeats)
    }

    /// The results of a send in the order of its messages: `stored` for the messages
    /// kept, and the first results for the repeats.
    pub(crate) fn answer_repeats(
        &self,
        stored: Vec<SendResult>,
        repeats: Vec<Repeat>,
    ) -> Vec<SendResult> {
        if repeats.is_empty() {
            return stored;
        }
        let total = stored.len() + repeats.len();
        let mut out = Vec::with_capacity(total);
        let mut stored_iter = stored.iter().cloned();
        let mut repeats = repeats.into_iter().peekable();
        for i in 0..total {
            let r = match repeats.next_if(|r| r.at == i) {
                Some(Repeat { of: Ok(r), .. }) => r,
                Some(Repeat { of: Err(j), .. }) => SendResult {
                    duplicate: true,
                    ..stored[j].clone()
                },
                None => match stored_iter.next() {
                    Some(r) => r,
                    None => break,
                },
            };
            out.push(r);
        }
        out
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
        if self.groups.pop.is_member(handle) {
            self.groups.pop.leave(handle);
            return Ok(());
        }
        self.groups.close(handle, &mut self.store, now)
    }

    pub fn add_simple_consumer(&mut self, cfg: &SimpleConsumerConfig) -> Result<u64> {
        self.check_open()?;
        let (auto, queues) = (
            self.settings.auto_create_topics,
            self.settings.default_queues,
        );
        self.groups.add_simple(cfg, &mut self.store, auto, queues)
    }

    /// Up to `max` messages for simple consumer `handle`, invisible for `invisible_ms`.
    pub fn receive_simple(
        &mut self,
        handle: u64,
        max: usize,
        invisible_ms: u64,
        visible_end: u64,
        now: u64,
    ) -> Result<Vec<Taken>> {
        self.check_open()?;
        let msgs =
            self.groups
                .pop
                .receive(&self.store, handle, max, invisible_ms, visible_end, now)?;
        self.next_due = self.next_due.min(now.saturating_add(invisible_ms));
        self.flush_revive_if_full(now)?;
        Ok(msgs)
    }

    /// Acks the simple consumer delivery receipt handle `h` names.
    pub fn ack_simple(&mut self, handle: u64, h: &str, now: u64) -> Result<()> {
        self.check_open()?;
        // A fifo key may have freed its next message.
        if self.groups.pop.ack(&self.store, handle, h, now)? {
            self.arrived = true;
        }
        self.flush_revive_if_full(now)
    }

    /// Changes a simple consumer delivery's invisibility; the new receipt handle.
    pub fn change_invisible(&mut self, handle: u64, h: &str, ms: u64, now: u64) -> Result<String> {
        self.check_open()?;
        let new = self.groups.pop.change_invisible(handle, h, ms, now)?;
        self.next_due = self.next_due.min(now.saturating_add(ms));
        if ms == 0 {
            self.arrived = true;
        }
        self.flush_revive_if_full(now)?;
        Ok(new)
    }

    /// A simple consumer's failed delivery: visible again after `delay` ms, or after
    /// the retry ladder's step for its attempt (10 s, 30 s, 1 m, ... as for a nack).
    pub fn nack_simple(
        &mut self,
        handle: u64,
        h: &str,
        delay: Option<u64>,
        now: u64,
    ) -> Result<()> {
        let ms = match delay {
            Some(ms) => ms,
            None => {
                let attempt = self.groups.pop.attempt(handle, h, now)? as usize;
                let levels = &self.schedule.levels;
                levels[(1 + attempt).min(levels.len() - 1)]
            }
        };
        self.change_invisible(handle, h, ms, now).map(|_| ())
    }

    /// Moves a simple consumer's delivery to its group's DLQ at once.
    pub fn dead_letter_simple(&mut self, handle: u64, h: &str, now: u64) -> Result<()> {
        self.check_open()?;
        let e = self.groups.pop.take_for_dead_letter(handle, h, now)?;
        self.dead_letter(e, now)
    }

    /// Copies an expired or forwarded simple consumer delivery to `%DLQ%<group>`
    /// (id, topic and properties kept, as classic dead letters), then marks it done.
    fn dead_letter(&mut self, e: pop::Expired, now: u64) -> Result<()> {
        let (group, topic) = match self.groups.pop.groups().nth(e.group as usize) {
            Some(g) => (g.name.clone(), g.topic.clone()),
            None => return Ok(()),
        };
        let msg = self
            .store
            .queues
            .get(&topic, e.queue)
            .and_then(|cq| cq.entry(e.offset))
            .and_then(|x| self.store.message_at(x.phys));
        if let Some(mut m) = msg {
            m.reconsume_times = e.attempt.saturating_sub(1);
            if let Some(spec) = crate::consumer::dead_letter_copy(&mut self.store, &group, &m)? {
                self.put(std::slice::from_ref(&spec), now)?;
            }
            log::info!(
                "simple consumer group {group}: {} dead-lettered after {} deliveries",
                m.msg_id,
                e.attempt
            );
        }
        if self.groups.pop.dead_lettered(&self.store, e) {
            self.arrived = true;
        }
        Ok(())
    }

    /// Appends the simple consumers' buffered changes to the revive log.
    pub fn flush_revive(&mut self, now: u64) -> Result<()> {
        let Some(body) = self.groups.pop.take_pending() else {
            return Ok(());
        };
        self.store.system_queues(topic::REVIVE_TOPIC, 1)?;
        let spec = RecordSpec {
            topic: topic::REVIVE_TOPIC.into(),
            queue_id: 0,
            sys_flag: 0,
            born_ts: now,
            reconsume_times: 0,
            prepared_tx_offset: 0,
            body: body.into(),
            properties: Vec::new(),
        };
        self.put(std::slice::from_ref(&spec), now)
    }

    fn flush_revive_if_full(&mut self, now: u64) -> Result<()> {
        if self.groups.pop.pending.len() >= REVIVE_BATCH {
            self.flush_revive(now)?;
        }
        Ok(())
    }

    /// A failed delivery: a retry copy (after `delay` ms, or the ladder's step) or a
    /// dead letter is appended, or an orderly queue pauses.
    pub fn nack(
        &mut self,
        handle: u64,
        msg: &MessageExt,
        delay: Option<u64>,
        now: u64,
    ) -> Result<()> {
        self.check_open()?;
        let levels = self.schedule.levels.len() as u32;
        let outcome = self
            .groups
            .nack(&mut self.store, handle, msg, levels, delay, now)?;
        match outcome {
            NackOutcome::Done => Ok(()),
            NackOutcome::Ack => self.ack(handle, msg),
            NackOutcome::Suspended(until) => {
                self.next_due = self.next_due.min(until);
                Ok(())
            }
            NackOutcome::SendBack(mut spec, delay) => {
                if spec.topic.starts_with(topic::DLQ_PREFIX) {
                    self.notices.push(Notice {
                        level: log::Level::Warn,
                        target: module_path!(),
                        text: format!(
                            "message {} of {} moved to {} after {} deliveries",
                            msg.msg_id,
                            msg.topic,
                            spec.topic,
                            msg.reconsume_times + 1
                        ),
                    });
                }
                let max_delay = self.settings.timer_max_delay_ms;
                self.schedule
                    .apply(&mut spec, delay, now, max_delay, &mut self.store)?;
                self.put(std::slice::from_ref(&spec), now)?;
                self.ack(handle, msg)
            }
        }
    }

    /// Marks `msg` done for consumer `handle`'s group.
    pub fn ack(&mut self, handle: u64, msg: &MessageExt) -> Result<()> {
        if self.groups.ack(handle, msg)? {
            self.arrived = true;
        }
        Ok(())
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
        // Deliveries past their ack deadline go back as nacks.
        for (handle, msg) in self.groups.ack_expired(&self.store, now) {
            self.nack(handle, &msg, None, now)?;
        }
        // Simple consumers' invisible deliveries whose time is up.
        let (dead, visible) = self.groups.pop.expire(now);
        self.arrived |= visible;
        for e in dead {
            self.dead_letter(e, now)?;
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
            self.groups.next_ack_deadline(),
            self.groups.pop.next_expiry(),
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
