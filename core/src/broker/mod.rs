//! The facade: a broker over one store, handing out producers and consumers. Each
//! public call takes the engine's one lock (engine/) and calls one service; waiting
//! (long polls, sync flushes) and user code (transaction `execute` and `check`)
//! happen outside the lock. A Condvar wakes long-polling receivers. Under
//! `flush="sync"` concurrent senders share one fsync (group commit, in
//! `commitlog/flush.rs`) and consumers see only durable messages.

mod atomic;
mod background;
mod consumer;
mod lifecycle;
mod producer;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, MutexGuard};

pub use atomic::Atomic;
pub use consumer::Consumer;
pub use producer::{PreparedDedup, Producer};

use crate::consumer::pop::SimpleConsumer;
use crate::transaction::{TransactionProducer, TxState};

use crate::commitlog::flush::{GroupCommit, Log};
use crate::engine::Engine;
use crate::stats::{Stats, TopicInfo};
use crate::store::FlushJob;
use crate::transaction::Check;
use crate::{
    BrokerConfig, Clock, ConsumerConfig, Error, FlushMode, MessageExt, Result,
    SimpleConsumerConfig, StartFrom, TransactionListener,
};

pub(crate) struct Inner {
    pub(crate) config: BrokerConfig,
    pub(crate) engine: Mutex<Engine>,
    /// Signalled when messages may have become available, or on close.
    pub(crate) arrived: Condvar,
    /// Counts those signals, for receivers that look before they park.
    pub(crate) arrivals: AtomicU64,
    /// The durable watermark and the one flusher at a time.
    pub(crate) group_commit: GroupCommit,
    pub(crate) closed: AtomicBool,
    periodic: Mutex<background::Periodic>,
    /// Held while metadata is serialised and written, so an older snapshot never
    /// lands after a newer one. Taken before `group_commit`'s and the engine's.
    pub(crate) metadata: Mutex<()>,
    /// The process that opened the broker (`runtime::process_generation` and pid):
    /// in a forked child every call fails with `Closed` before touching a lock or
    /// a file, so the child neither writes the parent's store nor hangs on a lock
    /// a parent thread held at the fork.
    pub(crate) generation: u64,
    pub(crate) owner_pid: u32,
    /// Where the dedup window's table is, for producers' prefetches.
    pub(crate) dedup_hint: Arc<crate::dedup::SlotsHint>,
}

/// One embedded engine over one store. Clones share the engine; the store closes
/// when `close` is called or the last clone (and every producer and consumer) drops.
#[derive(Clone)]
pub struct Broker {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("path", &self.inner.config.path)
            .field("flush", &self.inner.config.flush)
            .finish()
    }
}

impl Broker {
    /// Opens (or creates) the store the config names, recovering after an unclean exit.
    pub fn open(config: BrokerConfig) -> Result<Broker> {
        config.validate()?;
        #[cfg(not(target_arch = "wasm32"))]
        crate::runtime::watch_forks();
        let backend = crate::store::open_backend(&config)?;
        let now = config.clock.now_ms();
        let engine = Engine::open(&config, backend, now)?;
        let end = engine.store.commitlog.end();
        let dedup_hint = engine.dedup.hint();
        let inner = Arc::new(Inner {
            engine: Mutex::new(engine),
            arrived: Condvar::new(),
            arrivals: AtomicU64::new(0),
            group_commit: GroupCommit::new(end),
            closed: AtomicBool::new(false),
            periodic: Mutex::new(background::Periodic::new()),
            metadata: Mutex::new(()),
            generation: crate::runtime::process_generation(),
            owner_pid: crate::runtime::process_id(),
            dedup_hint,
            config,
        });
        let broker = Broker { inner };
        #[cfg(not(target_arch = "wasm32"))]
        if broker.inner.config.background {
            background::start(&broker);
        }
        Ok(broker)
    }

    /// An in-memory broker with default options.
    pub fn memory() -> Broker {
        Broker::open(BrokerConfig::default()).expect("a memory store with default options opens")
    }

    /// The clock the broker reads.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.config.clock.clone()
    }

    pub(crate) fn now(&self) -> u64 {
        self.inner.config.clock.now_ms()
    }

    /// Fails with `Closed` in a process forked from the one that opened the broker.
    pub(crate) fn check_process(&self) -> Result<()> {
        self.inner.check_process()
    }

    /// The engine, if the broker is open (and in the process that opened it).
    pub(crate) fn engine(&self) -> Result<MutexGuard<'_, Engine>> {
        self.check_process()?;
        let e = self.inner.engine.lock();
        e.check_open()?;
        Ok(e)
    }

    /// Whether calls on the broker first run the work that came due (`catch_up`):
    /// with a manual clock (time jumps) or no background thread. Otherwise the
    /// background thread runs it as it comes due, and a hot call (an ack) spares
    /// itself a clock read.
    pub(crate) fn catches_up(&self) -> bool {
        let config = &self.inner.config;
        !config.background || config.clock.is_manual()
    }

    /// Runs the work that came due since the last call (a `ManualClock` moved, say),
    /// where the broker `catches_up`: calls on the broker start here, so their
    /// answers never wait for the background thread. Cheap when nothing is due.
    /// Deferred work that fails (a full disk) is retried and reported by `tick`, as a
    /// receive leaves it.
    pub(crate) fn catch_up(&self) -> Result<()> {
        self.check_process()?;
        if !self.catches_up() {
            return Ok(());
        }
        let now = self.now();
        let mut e = self.inner.engine.lock();
        if e.closed || now < e.next_due {
            return Ok(());
        }
        let checks = e.run_due_if_needed(now).unwrap_or_else(|err| {
            log::warn!("deferred work failed and will be retried: {err}");
            Vec::new()
        });
        self.wake(e);
        self.run_checks(checks)
    }

    /// `engine`, once the work due now ran (`catch_up`): one lock when nothing is due.
    pub(crate) fn engine_due(&self) -> Result<MutexGuard<'_, Engine>> {
        let e = self.engine()?;
        if !self.catches_up() || self.now() < e.next_due {
            return Ok(e);
        }
        drop(e);
        self.catch_up()?;
        self.engine()
    }

    /// The CommitLog offset up to which consumers may read: under `sync`, what is durable.
    pub(crate) fn visible_end(&self) -> u64 {
        match self.inner.config.flush {
            FlushMode::Sync => self.inner.group_commit.durable(),
            _ => u64::MAX,
        }
    }

    /// Wakes receivers if something arrived; runs callbacks outside the lock. Under
    /// `sync` flushing, engine-made records (delays, retries, commits) are flushed
    /// first, since consumers see only durable data.
    pub(crate) fn wake(&self, e: MutexGuard<'_, Engine>) {
        if self.inner.config.flush == FlushMode::Sync {
            let end = e.store.commitlog.end();
            if end > self.inner.group_commit.durable() {
                drop(e);
                // wait_durable flushes and wakes again; an error leaves the data
                // invisible until the next flush, never lost.
                let _ = self.wait_durable(end);
                return;
            }
        }
        self.notify(e);
    }

    /// Wakes receivers and runs on_ready callbacks if something arrived.
    pub(crate) fn notify(&self, mut e: MutexGuard<'_, Engine>) {
        let notices = std::mem::take(&mut e.notices);
        if !e.arrived {
            drop(e);
            emit(notices);
            return;
        }
        e.arrived = false;
        let waiters = std::mem::take(&mut e.waiters);
        drop(e);
        emit(notices);
        self.inner.arrivals.fetch_add(1, Ordering::Release);
        self.inner.arrived.notify_all();
        for w in waiters {
            w();
        }
    }

    /// Waits until the CommitLog is durable up to `end` (group commit); false when
    /// the sync flush timeout passed first.
    pub(crate) fn wait_durable(&self, end: u64) -> Result<bool> {
        let timeout = Duration::from_millis(self.inner.config.sync_flush_timeout_ms);
        self.inner.group_commit.wait_durable(end, timeout, self)
    }

    /// Creates a topic, or grows its queue count; idempotent. Never shrinks. `None`
    /// gives a new topic the broker's `default_queues`.
    pub fn create_topic(&self, name: &str, queues: impl Into<Option<u32>>) -> Result<()> {
        // Before any lock: in a forked child a parent's thread may have held one.
        self.check_process()?;
        let queues = queues.into().unwrap_or(self.inner.config.default_queues);
        crate::topic::validate_new_topic(name, queues)?;
        self.catch_up()?;
        let now = self.now();
        let _meta = self.inner.metadata.lock();
        self.engine()?.create_topic(name, queues, now)
    }

    /// The user topics and their queue counts.
    pub fn topics(&self) -> Result<Vec<TopicInfo>> {
        Ok(self.engine_due()?.store.topics.user_topics())
    }

    /// One topic and its queue count, if the store has it (an engine topic too, such
    /// as a group's `%DLQ%` topic once something was dead-lettered).
    pub fn topic(&self, name: &str) -> Result<Option<TopicInfo>> {
        crate::topic::validate_topic(name)?;
        Ok(self.engine_due()?.store.topics.info(name))
    }

    /// The options the broker was opened with.
    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    /// A producer in `group`.
    pub fn producer(&self, group: &str) -> Result<Producer> {
        crate::topic::validate_group(group)?;
        drop(self.engine()?);
        Ok(Producer::new(self.clone(), group))
    }

    /// A producer of transactional messages; `listener` answers check-backs for
    /// half messages of `group` left UNKNOWN (or orphaned by a crash). As in
    /// RocketMQ, the first check comes `transaction_timeout` after the send, or the
    /// whole seconds of the message's `CHECK_IMMUNITY_TIME_IN_SECONDS` property (at
    /// most a day), then one every `check_interval`; the message a
    /// check shows carries `TRANSACTION_CHECK_TIMES`, 1 on the first check.
    pub fn transaction_producer(
        &self,
        group: &str,
        listener: Arc<dyn TransactionListener>,
    ) -> Result<TransactionProducer> {
        let producer = self.producer(group)?;
        self.engine()?
            .tx
            .listeners
            .insert(group.to_string(), listener);
        Ok(TransactionProducer::new(producer))
    }

    /// A consumer as the config says; it joins its group (rebalancing it) at once.
    pub fn consumer(&self, config: ConsumerConfig) -> Result<Consumer> {
        self.catch_up()?;
        let now = self.now();
        let handle = self.inner.engine.lock().add_consumer(&config, now)?;
        Ok(Consumer::new(self.clone(), handle, config))
    }

    /// A simple (POP) consumer as the config says: RocketMQ 5's SimpleConsumer.
    pub fn simple_consumer(&self, config: SimpleConsumerConfig) -> Result<SimpleConsumer> {
        self.catch_up()?;
        let now = self.now();
        let handle = self.inner.engine.lock().add_simple_consumer(&config, now)?;
        Ok(SimpleConsumer::new(self.clone(), handle, config))
    }

    /// Whether the store holds the state of simple consumer group `group` on `topic`
    /// (it has had a member, now or before the store was last opened): a server opens
    /// a member for a client's ack of a delivery it handed out before a restart.
    pub fn has_simple_group(&self, group: &str, topic: &str) -> Result<bool> {
        Ok(self.engine()?.groups.pop.group(group, topic).is_some())
    }

    /// The message with this id, if it is retained (the original, for a message that
    /// was retried, delayed or dead-lettered).
    pub fn get(&self, msg_id: &str) -> Result<Option<MessageExt>> {
        crate::message::id::check_lookup(msg_id)?;
        self.engine_due()?.store.get(msg_id)
    }

    /// The retained messages of `topic` with `key` among their keys, oldest first.
    pub fn query(&self, topic: &str, key: &str) -> Result<Vec<MessageExt>> {
        crate::topic::validate_topic(topic)?;
        Ok(self.engine_due()?.store.query(topic, key))
    }

    /// Messages of `topic` not yet acked by `group` (the most behind consumer, for a
    /// broadcasting group). A message nacked or past its ack deadline counts until a
    /// redelivery is acked or it goes to `%DLQ%<group>`, though its retry copy waits
    /// in `%RETRY%<group>` (which RocketMQ's `consumerProgress` lists apart).
    pub fn lag(&self, group: &str, topic: &str) -> Result<u64> {
        self.engine_due()?.lag(group, topic)
    }

    /// Moves a group's offsets on a topic to the earliest, the latest or a time
    /// (the first message stored at or after it). In-flight messages are forgotten.
    pub fn reset_offset(&self, group: &str, topic: &str, to: StartFrom) -> Result<()> {
        self.catch_up()?;
        let now = self.now();
        let mut e = self.inner.engine.lock();
        e.reset_offset(group, topic, to, now)?;
        self.wake(e);
        Ok(())
    }

    /// Sizes, lags and rates.
    pub fn stats(&self) -> Result<Stats> {
        Ok(self.engine_due()?.stats(self.now()))
    }

    /// Runs the work that is due now: delayed messages, timers, retries, transaction
    /// checks, retention.
    pub fn tick(&self) -> Result<()> {
        let now = self.now();
        let checks = {
            let mut e = self.engine()?;
            let checks = e.tick(now)?;
            self.wake(e);
            checks
        };
        self.run_checks(checks)?;
        self.periodic_work()
    }

    /// When the next deferred job is due (ms since the epoch), if any: a host without
    /// threads (wasm) sets a timer for it and calls `tick`. None once the broker is
    /// closed: nothing runs after that.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.engine().ok()?.next_due_ms()
    }

    /// Asks each check's listener (outside the lock) and records its answer.
    pub(crate) fn run_checks(&self, checks: Vec<Check>) -> Result<()> {
        self.check_process()?;
        for (qo, listener, msg) in checks {
            // A listener that panics leaves its half message pending, as UNKNOWN
            // does: the next check asks again, and the background thread lives on.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                listener.check_on(self, &msg)
            }))
            .unwrap_or(TxState::Unknown);
            let now = self.now();
            let mut e = self.inner.engine.lock();
            e.resolve(qo, outcome, now)?;
            self.wake(e);
        }
        Ok(())
    }

    /// Forces everything appended so far to disk with the consumers' offsets and the
    /// other metadata (acks made so far survive a crash), and records in the
    /// checkpoint that it is (so recovery after a crash trusts it).
    pub fn flush(&self) -> Result<()> {
        self.catch_up()?;
        let now = self.now();
        self.engine()?.flush_revive(now)?;
        self.flush_all()?;
        // Offsets and the other metadata too: acks made so far survive a crash.
        self.persist_metadata()?;
        let _meta = self.inner.metadata.lock();
        let (checkpoint, backend) = {
            let mut e = self.engine()?;
            (e.store.checkpoint_metadata(false)?, e.store.backend.clone())
        };
        if let Some((name, bytes)) = checkpoint {
            backend.write_meta(name, &bytes)?;
        }
        Ok(())
    }

    /// Closes the broker: wakes blocked receivers (they return empty), flushes,
    /// writes offsets and the checkpoint, and releases the store's lock. Closing
    /// twice is harmless; any other call afterwards fails with `Closed`.
    pub fn close(&self) -> Result<()> {
        self.check_process()?;
        self.inner.close()
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }
}

/// Logs what the engine noted under its lock (called once the lock is released).
fn emit(notices: Vec<crate::engine::Notice>) {
    for n in notices {
        log::log!(target: n.target, n.level, "{}", n.text);
    }
}

/// A starting point for a producer's round robin, different per producer.
fn seed() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish() as u32
}

/// A round-robin counter.
pub(crate) fn counter() -> AtomicU32 {
    AtomicU32::new(seed())
}
