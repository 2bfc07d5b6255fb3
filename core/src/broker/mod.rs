//! The facade: a broker over one store, handing out producers and consumers.
//!
//! One lock guards the engine's state (state.rs); a Condvar wakes long-polling
//! receivers. Waiting (long polls, sync flushes) and user code (transaction
//! `execute` and `check`) happen outside the lock. Under `flush="sync"` concurrent
//! senders share one fsync (group commit) and consumers see only durable messages.

mod state;
mod store;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use serde::Serialize;

use crate::runtime::{Deadline, Ticker};
use crate::store::memory::MemoryBackend;
use crate::store::Backend;
use crate::{
    BrokerConfig, Clock, ConsumerConfig, Error, FlushMode, Message, MessageExt, Result, SendResult,
    SendStatus, StartFrom, TransactionListener, TxState,
};
use state::State;

/// A topic and its queue count.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub queues: u32,
}

/// One queue of a topic in [`Stats`].
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct QueueStats {
    pub queue_id: u32,
    /// Lowest retained queue offset.
    pub min_offset: u64,
    /// Next queue offset to be written.
    pub max_offset: u64,
}

/// One topic in [`Stats`].
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct TopicStats {
    pub queues: Vec<QueueStats>,
    /// Messages stored in the topic since the broker opened.
    pub messages_in: u64,
    /// Messages per second put into the topic over the last minute.
    pub in_rate: f64,
}

/// One consumer group on one topic in [`Stats`].
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct GroupStats {
    pub group: String,
    pub topic: String,
    pub consumers: usize,
    /// Messages not yet acked by the group.
    pub lag: u64,
    /// Messages delivered since the broker opened.
    pub messages_out: u64,
    /// Messages per second delivered over the last minute.
    pub out_rate: f64,
}

/// Sizes and rates of the store.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Stats {
    pub topics: BTreeMap<String, TopicStats>,
    pub groups: Vec<GroupStats>,
    /// Bytes the CommitLog holds (retained segments).
    pub commitlog_bytes: u64,
    /// Delayed messages and timers not yet due.
    pub pending_delayed: u64,
    /// Half messages not yet resolved.
    pub pending_transactions: u64,
}

struct Inner {
    config: BrokerConfig,
    state: Mutex<State>,
    /// Signalled when messages may have become available, or on close.
    arrived: Condvar,
    /// Counts those signals, for receivers that look before they park.
    arrivals: AtomicU64,
    /// Serialises fsyncs: one flusher at a time, others wait and usually find their
    /// data already durable (group commit).
    flush_lock: Mutex<()>,
    /// Whether a sync flush is running (group commit); `synced` signals its end.
    sync_flushing: Mutex<bool>,
    synced: Condvar,
    /// CommitLog offset below which everything is durable.
    durable: AtomicU64,
    closed: AtomicBool,
    periodic: Mutex<Periodic>,
}

struct Periodic {
    flush: Ticker,
    persist: Ticker,
    release: Ticker,
}

/// One embedded engine over one store. Clones share the engine; the store closes
/// when `close` is called or the last clone (and every producer and consumer) drops.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("path", &self.inner.config.path)
            .field("flush", &self.inner.config.flush)
            .finish()
    }
}

fn open_backend(config: &BrokerConfig) -> Result<Arc<dyn Backend>> {
    if let (Some(path), Some(fs)) = (&config.path, &config.host_fs) {
        let root = path.display().to_string();
        return Ok(Arc::new(crate::store::host::HostBackend::open(
            fs.clone(),
            &root,
        )?));
    }
    match &config.path {
        None => Ok(Arc::new(MemoryBackend::default())),
        #[cfg(not(target_arch = "wasm32"))]
        Some(path) => Ok(Arc::new(crate::store::file::FileBackend::open(path)?)),
        #[cfg(target_arch = "wasm32")]
        Some(_) => Err(Error::invalid(
            "a file store needs a native target or a host file system (Node); \
             open a memory store here",
        )),
    }
}

use state::Check;

/// Longest a sync flush waits for more writers to join it.
const GROUP_COMMIT_WAIT: Duration = Duration::from_micros(200);

/// How many times a receiver that found nothing yields, watching for an arrival,
/// before it parks (wasm: never; it cannot wait at all).
#[cfg(not(target_arch = "wasm32"))]
const RECEIVE_SPINS: usize = 256;
#[cfg(target_arch = "wasm32")]
const RECEIVE_SPINS: usize = 0;

impl Broker {
    /// Opens (or creates) the store the config names, recovering after an unclean exit.
    pub fn open(config: BrokerConfig) -> Result<Broker> {
        let backend = open_backend(&config)?;
        let now = config.clock.now_ms();
        let state = State::open(&config, backend, now)?;
        let end = state.store.commitlog.end();
        let inner = Arc::new(Inner {
            state: Mutex::new(state),
            arrived: Condvar::new(),
            arrivals: AtomicU64::new(0),
            flush_lock: Mutex::new(()),
            sync_flushing: Mutex::new(false),
            synced: Condvar::new(),
            durable: AtomicU64::new(end),
            closed: AtomicBool::new(false),
            periodic: Mutex::new(Periodic {
                flush: Ticker::new(),
                persist: Ticker::new(),
                release: Ticker::new(),
            }),
            config,
        });
        #[cfg(not(target_arch = "wasm32"))]
        if inner.config.background {
            let weak: std::sync::Weak<Inner> = Arc::downgrade(&inner);
            crate::runtime::spawn_worker(
                "pocketmq-steps",
                crate::runtime::STEP_PERIOD,
                move || match weak.upgrade() {
                    Some(inner) if !inner.closed.load(Ordering::Acquire) => {
                        let _ = Broker { inner }.background_step();
                        true
                    }
                    _ => false,
                },
            );
        }
        Ok(Broker { inner })
    }

    /// An in-memory broker with default options.
    pub fn memory() -> Broker {
        Broker::open(BrokerConfig::default()).expect("a memory store with default options opens")
    }

    /// The clock the broker reads.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.config.clock.clone()
    }

    fn now(&self) -> u64 {
        self.inner.config.clock.now_ms()
    }

    fn visible_end(&self) -> u64 {
        match self.inner.config.flush {
            FlushMode::Sync => self.inner.durable.load(Ordering::Acquire),
            _ => u64::MAX,
        }
    }

    /// Wakes receivers if something arrived; runs callbacks outside the lock. Under
    /// `sync` flushing, engine-made records (delays, retries, commits) are flushed
    /// first, since consumers see only durable data.
    fn wake(&self, st: parking_lot::MutexGuard<'_, State>) {
        if self.inner.config.flush == FlushMode::Sync {
            let end = st.store.commitlog.end();
            if end > self.inner.durable.load(Ordering::Acquire) {
                drop(st);
                // wait_durable flushes and wakes again; an error leaves the data
                // invisible until the next flush, never lost.
                let _ = self.wait_durable(end);
                return;
            }
        }
        self.notify(st);
    }

    /// Wakes receivers and runs on_ready callbacks if something arrived.
    fn notify(&self, mut st: parking_lot::MutexGuard<'_, State>) {
        if !st.arrived {
            return;
        }
        st.arrived = false;
        let waiters = std::mem::take(&mut st.waiters);
        drop(st);
        self.inner.arrivals.fetch_add(1, Ordering::Release);
        self.inner.arrived.notify_all();
        for w in waiters {
            w();
        }
    }

    /// Creates a topic, or grows its queue count; idempotent. Never shrinks.
    pub fn create_topic(&self, name: &str, queues: u32) -> Result<()> {
        crate::topic::validate_user_topic(name)?;
        if queues == 0 || queues > 1024 {
            return Err(Error::invalid(format!(
                "a topic has 1 to 1024 queues, not {queues}"
            )));
        }
        let mut st = self.inner.state.lock();
        st.check_open()?;
        if st.store.create_topic(name, queues)? {
            // Consumers of the topic get a share of the new queues.
            let groups: Vec<String> = st
                .consumers
                .values()
                .filter(|c| c.topic == name)
                .map(|c| c.group.clone())
                .collect();
            let now = self.now();
            for g in groups {
                st.regroup(&g, now)?;
            }
        }
        Ok(())
    }

    /// The user topics and their queue counts.
    pub fn topics(&self) -> Result<Vec<TopicInfo>> {
        let st = self.inner.state.lock();
        st.check_open()?;
        Ok(st
            .store
            .topics
            .topics
            .iter()
            .filter(|(n, _)| !crate::topic::is_reserved(n))
            .map(|(n, t)| TopicInfo {
                name: n.clone(),
                queues: t.queues,
            })
            .collect())
    }

    /// A producer in `group`.
    pub fn producer(&self, group: &str) -> Result<Producer> {
        crate::topic::validate_group(group)?;
        self.inner.state.lock().check_open()?;
        Ok(Producer {
            broker: self.clone(),
            group: group.to_string(),
            rr: AtomicU32::new(seed()),
        })
    }

    /// A producer of transactional messages; `listener` answers check-backs for
    /// half messages of `group` left UNKNOWN (or orphaned by a crash).
    pub fn transaction_producer(
        &self,
        group: &str,
        listener: Arc<dyn TransactionListener>,
    ) -> Result<TransactionProducer> {
        let producer = self.producer(group)?;
        self.inner
            .state
            .lock()
            .listeners
            .insert(group.to_string(), listener);
        Ok(TransactionProducer { producer })
    }

    /// A consumer as the config says; it joins its group (rebalancing it) at once.
    pub fn consumer(&self, config: ConsumerConfig) -> Result<Consumer> {
        let now = self.now();
        let handle = self.inner.state.lock().add_consumer(&config, now)?;
        Ok(Consumer {
            broker: self.clone(),
            handle,
            config,
            closed: AtomicBool::new(false),
        })
    }

    /// The message with this id, if it is retained (the original, for a message that
    /// was retried, delayed or dead-lettered).
    pub fn get(&self, msg_id: &str) -> Result<Option<MessageExt>> {
        let st = self.inner.state.lock();
        st.check_open()?;
        if crate::message::record::parse_msg_id(msg_id).is_none() {
            return Err(Error::invalid(format!(
                "{msg_id:?} is not a message id (32 hex digits)"
            )));
        }
        Ok(st.get(msg_id))
    }

    /// The retained messages of `topic` with `key` among their keys, oldest first.
    pub fn query(&self, topic: &str, key: &str) -> Result<Vec<MessageExt>> {
        crate::topic::validate_topic(topic)?;
        let st = self.inner.state.lock();
        st.check_open()?;
        Ok(st.query(topic, key))
    }

    /// Messages of `topic` not yet acked by `group` (the most behind consumer, for a
    /// broadcasting group).
    pub fn lag(&self, group: &str, topic: &str) -> Result<u64> {
        let st = self.inner.state.lock();
        st.check_open()?;
        st.lag(group, topic)
    }

    /// Moves a group's offsets on a topic to the earliest, the latest or a time
    /// (the first message stored at or after it). In-flight messages are forgotten.
    pub fn reset_offset(&self, group: &str, topic: &str, to: StartFrom) -> Result<()> {
        let now = self.now();
        let mut st = self.inner.state.lock();
        st.reset_offset(group, topic, to, now)?;
        self.wake(st);
        Ok(())
    }

    /// Sizes, lags and rates.
    pub fn stats(&self) -> Result<Stats> {
        let st = self.inner.state.lock();
        st.check_open()?;
        Ok(st.stats(self.now()))
    }

    /// Runs the work that is due now: delayed messages, timers, retries, transaction
    /// checks, retention.
    pub fn tick(&self) -> Result<()> {
        let now = self.now();
        let checks = {
            let mut st = self.inner.state.lock();
            st.check_open()?;
            st.next_due = 0;
            let checks = st.run_due(now)?;
            st.retention_now(now)?;
            self.wake(st);
            checks
        };
        self.run_checks(checks)?;
        self.periodic_work()
    }

    /// When the next deferred job is due (ms since the epoch), if any: a host without
    /// threads (wasm) sets a timer for it and calls `tick`.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.inner.state.lock().next_due_ms()
    }

    fn run_checks(&self, checks: Vec<Check>) -> Result<()> {
        for (qo, listener, msg) in checks {
            let outcome = listener.check(&msg);
            let now = self.now();
            let mut st = self.inner.state.lock();
            st.resolve(qo, outcome, now)?;
            self.wake(st);
        }
        Ok(())
    }

    /// Runs due work if any is due (cheap when nothing is).
    fn run_due_if_needed(&self, st: &mut State) -> Result<Vec<Check>> {
        let now = self.now();
        if now >= st.next_due {
            st.run_due(now)
        } else {
            Ok(Vec::new())
        }
    }

    /// Forces everything appended so far to disk.
    pub fn flush(&self) -> Result<()> {
        self.inner.state.lock().check_open()?;
        self.flush_all()
    }

    fn flush_all(&self) -> Result<()> {
        let _one = self.inner.flush_lock.lock();
        let (log_job, cq_jobs) = {
            let st = self.inner.state.lock();
            let cq_jobs: Vec<_> = st
                .store
                .queues
                .iter()
                .flat_map(|(t, l)| {
                    l.iter()
                        .enumerate()
                        .map(move |(q, cq)| (t.clone(), q, cq.flush_job()))
                })
                .collect();
            (st.store.commitlog.flush_job(), cq_jobs)
        };
        log_job.run()?;
        for (_, _, j) in &cq_jobs {
            j.run()?;
        }
        self.inner.durable.fetch_max(log_job.upto, Ordering::AcqRel);
        let mut st = self.inner.state.lock();
        st.store.commitlog.flushed_to(log_job.upto);
        for (t, q, j) in cq_jobs {
            if let Some(cq) = st.store.queues.get_mut(&t).and_then(|l| l.get_mut(q)) {
                cq.flushed_to(j.upto);
            }
        }
        st.arrived = true;
        self.notify(st);
        Ok(())
    }

    /// Waits until the CommitLog is durable up to `end`, flushing (for everyone
    /// waiting) when no flush is running. False when `timeout` passed first.
    fn wait_durable(&self, end: u64) -> Result<bool> {
        if self.inner.durable.load(Ordering::Acquire) >= end {
            return Ok(true);
        }
        let timeout = Duration::from_millis(self.inner.config.sync_flush_timeout_ms);
        let deadline = Deadline::after(timeout);
        let mut flushing = self.inner.sync_flushing.lock();
        loop {
            if self.inner.durable.load(Ordering::Acquire) >= end {
                return Ok(true);
            }
            if !*flushing {
                // Become the flusher for everyone appended so far; the others wait
                // on the condvar and all wake together when it is done.
                *flushing = true;
                drop(flushing);
                let flushed = self.flush_commitlog();
                flushing = self.inner.sync_flushing.lock();
                *flushing = false;
                self.inner.synced.notify_all();
                flushed?;
                continue;
            }
            if !deadline.wait(&self.inner.synced, &mut flushing) {
                return Ok(self.inner.durable.load(Ordering::Acquire) >= end);
            }
        }
    }

    /// Flushes the CommitLog up to its current end and wakes consumers, who see only
    /// durable data under `sync`.
    fn flush_commitlog(&self) -> Result<()> {
        // Let writers that were just woken append first, so one sync covers them:
        // wait while the log keeps growing, at most GROUP_COMMIT_WAIT (a sync costs
        // far more on any disk).
        let deadline = Deadline::after(GROUP_COMMIT_WAIT);
        let mut end = self.inner.state.lock().store.commitlog.end();
        let mut quiet = 0;
        while quiet < 4 && !deadline.is_past() {
            crate::runtime::yield_now();
            let now = self.inner.state.lock().store.commitlog.end();
            if now == end {
                quiet += 1;
            } else {
                quiet = 0;
                end = now;
            }
        }
        let job = self.inner.state.lock().store.commitlog.flush_job();
        job.run()?;
        self.inner.durable.fetch_max(job.upto, Ordering::AcqRel);
        let mut st = self.inner.state.lock();
        st.store.commitlog.flushed_to(job.upto);
        st.arrived = true;
        self.notify(st);
        Ok(())
    }

    fn send_many(&self, msgs: Vec<Message>, rr: u32) -> Result<Vec<SendResult>> {
        let now = self.now();
        let (mut results, end) = {
            let mut st = self.inner.state.lock();
            let results = st.send(msgs, rr, now)?;
            let end = st.store.commitlog.end();
            if self.inner.config.flush != FlushMode::Sync {
                self.wake(st);
            }
            (results, end)
        };
        if self.inner.config.flush == FlushMode::Sync && !self.wait_durable(end)? {
            for r in &mut results {
                r.status = SendStatus::FlushDiskTimeout;
            }
        }
        Ok(results)
    }

    /// The periodic work of the background thread.
    #[cfg(not(target_arch = "wasm32"))]
    fn background_step(&self) -> Result<()> {
        let checks = {
            let mut st = self.inner.state.lock();
            if st.closed {
                return Ok(());
            }
            let checks = self.run_due_if_needed(&mut st)?;
            let now = self.now();
            if now >= st.next_due {
                st.next_due = 0;
            }
            self.wake(st);
            checks
        };
        self.run_checks(checks)?;
        self.periodic_work()
    }

    /// Flushing (async mode), metadata persistence and resident-set trimming, each
    /// at its real-time interval.
    fn periodic_work(&self) -> Result<()> {
        let (flush, persist, release) = {
            let mut p = self.inner.periodic.lock();
            let interval = Duration::from_millis(self.inner.config.flush_interval_ms.max(1));
            (
                p.flush.due(interval),
                p.persist.due(Duration::from_secs(1)),
                p.release.due(Duration::from_secs(1)),
            )
        };
        if flush && self.inner.config.flush == FlushMode::Async {
            self.flush_all()?;
        }
        if persist {
            self.persist_metadata()?;
        }
        if release {
            self.inner.state.lock().store.commitlog.release_sealed();
        }
        Ok(())
    }

    fn persist_metadata(&self) -> Result<()> {
        let (files, backend) = {
            let mut st = self.inner.state.lock();
            if !st.store.backend.is_persistent() {
                return Ok(());
            }
            let now = self.now();
            (st.dirty_metadata(now)?, st.store.backend.clone())
        };
        for (name, bytes) in files {
            backend.write_meta(name, &bytes)?;
        }
        Ok(())
    }

    /// Closes the broker: wakes blocked receivers (they return empty), flushes,
    /// writes offsets and the checkpoint, and releases the store's lock. Closing
    /// twice is harmless; any other call afterwards fails with `Closed`.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }
}

impl Inner {
    fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let _one = self.flush_lock.lock();
        let mut st = self.state.lock();
        let waiters = std::mem::take(&mut st.waiters);
        let now = self.config.clock.now_ms();
        let result = (|| -> Result<()> {
            let job = st.store.commitlog.flush_job();
            job.run()?;
            st.store.commitlog.flushed_to(job.upto);
            for list in st.store.queues.values_mut() {
                for cq in list.iter_mut() {
                    let j = cq.flush_job();
                    j.run()?;
                    cq.flushed_to(j.upto);
                }
            }
            st.write_all_metadata(now)?;
            st.store.write_checkpoint()?;
            st.store.backend.remove_meta(store::ABORT_FILE)?;
            Ok(())
        })();
        st.closed = true;
        st.store.backend.unlock();
        drop(st);
        self.arrived.notify_all();
        for w in waiters {
            w();
        }
        result
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

fn seed() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish() as u32
}

/// Sends messages on behalf of a producer group. Queue selection: an explicit
/// `queue_id`, else the sharding key's hash, else round robin.
pub struct Producer {
    broker: Broker,
    group: String,
    rr: AtomicU32,
}

impl Producer {
    /// Stores one message.
    pub fn send(&self, msg: Message) -> Result<SendResult> {
        let rr = self.rr.fetch_add(1, Ordering::Relaxed);
        let mut r = self.broker.send_many(vec![msg], rr)?;
        r.pop().ok_or_else(|| Error::invalid("nothing to send"))
    }

    /// Stores several messages of one topic as one append, in one queue, with
    /// consecutive queue offsets.
    pub fn send_batch(&self, msgs: Vec<Message>) -> Result<Vec<SendResult>> {
        let rr = self.rr.fetch_add(1, Ordering::Relaxed);
        self.broker.send_many(msgs, rr)
    }

    /// The producer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The broker this producer sends to.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }
}

/// Sends transactional (half) messages.
pub struct TransactionProducer {
    producer: Producer,
}

impl TransactionProducer {
    /// Stores `msg` as a half message (invisible to consumers), runs `execute` on it
    /// and records the outcome: COMMIT makes it visible, ROLLBACK drops it, UNKNOWN
    /// leaves it to the check-back.
    pub fn send(
        &self,
        msg: Message,
        execute: impl FnOnce(&MessageExt) -> TxState,
    ) -> Result<SendResult> {
        let broker = &self.producer.broker;
        let rr = self.producer.rr.fetch_add(1, Ordering::Relaxed);
        let now = broker.now();
        let (mut result, qo, half, end) = {
            let mut st = broker.inner.state.lock();
            let (r, qo, half) = st.send_half(&self.producer.group, msg, rr, now)?;
            (r, qo, half, st.store.commitlog.end())
        };
        let state = if broker.inner.config.flush == FlushMode::Sync && !broker.wait_durable(end)? {
            // RocketMQ rolls back a half message whose flush timed out.
            result.status = SendStatus::FlushDiskTimeout;
            TxState::Rollback
        } else {
            execute(&half)
        };
        let now = broker.now();
        let mut st = broker.inner.state.lock();
        st.resolve(qo, state, now)?;
        broker.wake(st);
        result.transaction_state = Some(state);
        Ok(result)
    }

    /// The producer group.
    pub fn group(&self) -> &str {
        self.producer.group()
    }
}

/// Receives messages for one consumer of a group.
pub struct Consumer {
    broker: Broker,
    handle: u64,
    config: ConsumerConfig,
    closed: AtomicBool,
}

impl Consumer {
    /// Up to `max` messages, waiting up to `timeout` (real time, whatever the broker's
    /// clock) for the first. Returns empty at the timeout, or when the consumer or the
    /// broker closes while waiting. A zero timeout never blocks.
    pub fn receive(&self, max: usize, timeout: Duration) -> Result<Vec<MessageExt>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let deadline = Deadline::after(timeout);
        let inner = &self.broker.inner;
        let mut st = inner.state.lock();
        st.check_open()?;
        loop {
            if st.closed || self.closed.load(Ordering::Acquire) {
                return Ok(Vec::new());
            }
            let checks = self.broker.run_due_if_needed(&mut st)?;
            if !checks.is_empty() {
                drop(st);
                self.broker.run_checks(checks)?;
                st = inner.state.lock();
                continue;
            }
            let now = self.broker.now();
            let visible = self.broker.visible_end();
            let mut msgs = st.receive(self.handle, max, visible, now)?;
            if !msgs.is_empty() {
                if msgs.len() < max && !deadline.is_past() {
                    // A short batch under a steady stream: give the senders a moment
                    // to fill it, so each receive (and its lock) carries more.
                    let seen = inner.arrivals.load(Ordering::Acquire);
                    let more = parking_lot::MutexGuard::unlocked(&mut st, || {
                        (0..RECEIVE_SPINS / 4).any(|_| {
                            crate::runtime::yield_now();
                            inner.arrivals.load(Ordering::Acquire) != seen
                        })
                    });
                    if more && !st.closed {
                        let visible = self.broker.visible_end();
                        msgs.extend(st.receive(self.handle, max - msgs.len(), visible, now)?);
                    }
                }
                return Ok(msgs);
            }
            // Under a steady stream the next message is microseconds away: look for
            // it briefly before parking, which spares the sender a wake-up call.
            let seen = inner.arrivals.load(Ordering::Acquire);
            let arrived = parking_lot::MutexGuard::unlocked(&mut st, || {
                (0..RECEIVE_SPINS).any(|_| {
                    crate::runtime::yield_now();
                    inner.arrivals.load(Ordering::Acquire) != seen
                })
            });
            if arrived {
                continue;
            }
            if !deadline.wait(&inner.arrived, &mut st) {
                return Ok(Vec::new());
            }
        }
    }

    /// Calls `callback` once: at once if a receive might find messages now, else when
    /// one could (a send, a delay coming due, close). Lets an event loop (asyncio, JS)
    /// wait without a thread.
    pub fn on_ready(&self, callback: Box<dyn FnOnce() + Send>) {
        let inner = &self.broker.inner;
        let mut st = inner.state.lock();
        let now = self.broker.now();
        let ready = st.closed
            || self.closed.load(Ordering::Acquire)
            || st.may_have_messages(self.handle, self.broker.visible_end(), now)
            || now >= st.next_due;
        if ready {
            drop(st);
            callback();
        } else {
            st.waiters.push(callback);
        }
    }

    /// Marks a message done: never delivered to this group again.
    pub fn ack(&self, msg: &MessageExt) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.broker.inner.state.lock().ack(self.handle, msg)
    }

    /// Marks several messages done under one lock (a receive batch, say).
    pub fn ack_all(&self, msgs: &[MessageExt]) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let mut st = self.broker.inner.state.lock();
        msgs.iter().try_for_each(|m| st.ack(self.handle, m))
    }

    /// A failed delivery: the message comes back later via the group's retry topic
    /// (after delay level 3 + reconsume_times), or after a pause in place for an
    /// orderly consumer; past `max_reconsume_times` it goes to `%DLQ%<group>`.
    pub fn nack(&self, msg: &MessageExt) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let now = self.broker.now();
        let mut st = self.broker.inner.state.lock();
        st.nack(self.handle, msg, now)?;
        self.broker.wake(st);
        Ok(())
    }

    /// Leaves the group; its queues pass to the others, which get its unacked
    /// messages. A receive blocked in another thread returns empty. Closing twice is
    /// harmless.
    pub fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let now = self.broker.now();
        let mut st = self.broker.inner.state.lock();
        if !st.closed {
            st.close_consumer(self.handle, now)?;
        }
        st.arrived = true;
        self.broker.wake(st);
        Ok(())
    }

    /// Whether `close` was called on this consumer.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The consumer's group.
    pub fn group(&self) -> &str {
        &self.config.group
    }

    /// The subscribed topic.
    pub fn topic(&self) -> &str {
        &self.config.topic
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
