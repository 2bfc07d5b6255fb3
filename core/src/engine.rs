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
use crate::dispatch::Services;
use crate::message::properties;
use crate::message::record::RecordSpec;
use crate::message::{id, MessageExt, Taken};
use crate::message_store::MessageStore;
use crate::schedule::{ScheduleService, TimerWheel, DELIVERY_BATCH};
use crate::stats::{self, Stats, TopicRates};
use crate::store::meta::read_json;
use crate::store::Backend;
use crate::topic;
use crate::transaction::{Check, Transactions, TxState};
use crate::{
    BrokerConfig, ConsumerConfig, Delay, Error, Message, Result, SendResult, SendStatus,
    SimpleConsumerConfig, StartFrom,
};

pub(crate) type Callback = Box<dyn FnOnce() + Send>;

/// Simple consumers' changes buffered before one revive record is appended.
const REVIVE_BATCH: usize = 4096;

/// Retention runs at most this often (RocketMQ's `cleanResourceInterval`).
const RETENTION_INTERVAL_MS: u64 = 10_000;

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
    last_retention: u64,
    /// Set when a record consumers read landed; the facade wakes receivers.
    pub arrived: bool,
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
            pop: &mut $e.groups.pop,
            offsets: &$e.groups.offsets,
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
        let mut groups = ConsumerGroups::new(offsets);
        // A store that dies with the process needs no revive log.
        groups.pop.pending.off = !backend.is_persistent();
        let mut e = Engine {
            store,
            groups,
            schedule: ScheduleService::open(settings.levels.clone(), &*backend)?,
            timer: TimerWheel::open(backend.clone())?,
            tx: Transactions::open(settings.tx, &*backend)?,
            settings,
            rates: TopicRates::default(),
            closed: false,
            waiters: Vec::new(),
            next_due: 0,
            last_retention: now,
            arrived: false,
            spec_buf: Vec::new(),
        };
        let store = &mut e.store;
        store.recover(&mut services!(e))?;
        e.next_due = 0;
        e.groups.pop.after_replay(&e.store);
        backend.write_meta(
            ABORT_FILE,
            crate::runtime::process_id().to_string().as_bytes(),
        )?;
        e.schedule.clamp_cursors(&e.store);
        Ok(e)
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
        // Ids the caller gave, to report (no allocation when none did).
        let given: Option<Vec<Option<String>>> = msgs
            .iter()
            .any(|m| m.msg_id.is_some())
            .then(|| msgs.iter().map(|m| m.msg_id.clone()).collect());
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
        let put = built.and_then(|()| self.put(&specs, now));
        specs.clear();
        self.spec_buf = specs;
        put?;
        let nonce = self.store.nonce;
        Ok(self
            .store
            .placed
            .iter()
            .enumerate()
            .map(|(i, p)| SendResult {
                msg_id: given
                    .as_ref()
                    .and_then(|g| g[i].clone())
                    .unwrap_or_else(|| id::make(nonce, p.phys)),
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
            while let Some((level, cursor, due)) = self.schedule.due_batch(&self.store, now) {
                self.deliver(&due, now)?;
                self.schedule.advance(level, cursor);
            }
            loop {
                let due = self.timer.due_records(&self.store, now);
                if due.is_empty() {
                    break;
                }
                for chunk in due.chunks(DELIVERY_BATCH) {
                    self.deliver(chunk, now)?;
                }
            }
            let queues = self.settings.default_queues;
            let (due_checks, discards) = self.tx.due(&mut self.store, queues, now)?;
            if !discards.is_empty() {
                self.put(&discards, now)?;
            }
            checks = due_checks;
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
        }
        if now >= self.last_retention + RETENTION_INTERVAL_MS || now < self.last_retention {
            self.retention(now)?;
        }
        Ok(checks)
    }

    /// Copies the delayed records at `phys` to their real topics, as one append.
    fn deliver(&mut self, phys: &[u64], now: u64) -> Result<()> {
        let drop = [
            crate::message::properties::prop::DELAY,
            crate::message::properties::prop::TIMER_DELIVER_MS,
        ];
        let queues = self.settings.default_queues;
        let mut specs = Vec::with_capacity(phys.len());
        for &p in phys {
            if let Some(s) = self.store.copy_to_real_topic(p, &drop, queues)? {
                specs.push(s);
            }
        }
        if specs.is_empty() {
            return Ok(());
        }
        self.put(&specs, now)
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
    /// again": the real time is computed then).
    pub fn next_due_ms(&self) -> Option<u64> {
        let next = match self.next_due {
            0 => self.compute_next_due(),
            n => n,
        };
        (next != u64::MAX).then_some(next)
    }

    /// Deletes expired segments now.
    pub fn retention(&mut self, now: u64) -> Result<()> {
        self.last_retention = now;
        let reserved = self.settings.file_reserved_time_ms;
        let ratio = self.settings.disk_clean_forcibly_ratio;
        self.store.apply_retention(now, reserved, ratio)?;
        Ok(())
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
