//! The facade: a broker over one store, handing out producers and consumers.
//! (Walking skeleton: an in-memory list per topic; the engine replaces it.)

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use serde::Serialize;

use crate::{
    BrokerConfig, Clock, ConsumerConfig, Error, Message, MessageExt, Result, SendResult,
    SendStatus, StartFrom,
};

/// The outcome of a local transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxState {
    Commit,
    Rollback,
    Unknown,
}

impl TxState {
    /// RocketMQ's name: `COMMIT_MESSAGE`-style names shortened to COMMIT, ROLLBACK, UNKNOWN.
    pub fn as_str(&self) -> &'static str {
        match self {
            TxState::Commit => "COMMIT",
            TxState::Rollback => "ROLLBACK",
            TxState::Unknown => "UNKNOWN",
        }
    }
}

impl<F> TransactionListener for F
where
    F: Fn(&MessageExt) -> TxState + Send + Sync,
{
    fn check(&self, msg: &MessageExt) -> TxState {
        self(msg)
    }
}

/// Answers the broker's questions about half messages left UNKNOWN.
pub trait TransactionListener: Send + Sync {
    /// Decides a half message the broker is unsure of.
    fn check(&self, msg: &MessageExt) -> TxState;
}

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

type Callback = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    topics: HashMap<String, Vec<MessageExt>>,
    cursors: HashMap<(String, String), usize>,
    waiters: Vec<Callback>,
    closed: bool,
}

struct Inner {
    config: BrokerConfig,
    state: Mutex<State>,
    arrived: Condvar,
    next_id: AtomicU64,
}

/// One embedded engine over one store. Clones share the engine.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("path", &self.inner.config.path)
            .finish()
    }
}

impl Broker {
    /// Opens (or creates) the store the config names.
    pub fn open(config: BrokerConfig) -> Result<Broker> {
        Ok(Broker {
            inner: Arc::new(Inner {
                config,
                state: Mutex::default(),
                arrived: Condvar::new(),
                next_id: AtomicU64::new(0),
            }),
        })
    }

    /// An in-memory broker with default options.
    pub fn memory() -> Broker {
        Broker::open(BrokerConfig::default()).expect("a memory store always opens")
    }

    /// The clock the broker reads.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.config.clock.clone()
    }

    /// Creates a topic, or grows its queue count; idempotent.
    pub fn create_topic(&self, name: &str, _queues: u32) -> Result<()> {
        self.inner
            .state
            .lock()
            .topics
            .entry(name.to_string())
            .or_default();
        Ok(())
    }

    /// The user topics and their queue counts.
    pub fn topics(&self) -> Result<Vec<TopicInfo>> {
        Ok(self
            .inner
            .state
            .lock()
            .topics
            .keys()
            .map(|name| TopicInfo {
                name: name.clone(),
                queues: 1,
            })
            .collect())
    }

    /// A producer in `group`.
    pub fn producer(&self, group: &str) -> Result<Producer> {
        Ok(Producer {
            broker: self.clone(),
            group: group.to_string(),
        })
    }

    /// A producer of transactional messages; `listener` answers check-backs.
    pub fn transaction_producer(
        &self,
        group: &str,
        listener: Arc<dyn TransactionListener>,
    ) -> Result<TransactionProducer> {
        Ok(TransactionProducer {
            producer: self.producer(group)?,
            _listener: listener,
        })
    }

    /// A consumer as the config says; it joins its group at once.
    pub fn consumer(&self, config: ConsumerConfig) -> Result<Consumer> {
        Ok(Consumer {
            broker: self.clone(),
            config,
        })
    }

    /// The message with this id, if it is retained.
    pub fn get(&self, msg_id: &str) -> Result<Option<MessageExt>> {
        let st = self.inner.state.lock();
        Ok(st
            .topics
            .values()
            .flatten()
            .find(|m| m.msg_id == msg_id)
            .cloned())
    }

    /// The retained messages of `topic` with `key` among their keys, oldest first.
    pub fn query(&self, topic: &str, key: &str) -> Result<Vec<MessageExt>> {
        let st = self.inner.state.lock();
        Ok(st
            .topics
            .get(topic)
            .map(|l| {
                l.iter()
                    .filter(|m| m.keys.iter().any(|k| k == key))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Messages of `topic` not yet acked by `group`.
    pub fn lag(&self, group: &str, topic: &str) -> Result<u64> {
        let st = self.inner.state.lock();
        let total = st.topics.get(topic).map_or(0, Vec::len);
        let done = st
            .cursors
            .get(&(group.to_string(), topic.to_string()))
            .copied()
            .unwrap_or(0);
        Ok(total.saturating_sub(done) as u64)
    }

    /// Moves a group's offsets on a topic to the earliest, the latest or a time.
    pub fn reset_offset(&self, _group: &str, _topic: &str, _to: StartFrom) -> Result<()> {
        Ok(())
    }

    /// Sizes, lags and rates.
    pub fn stats(&self) -> Result<Stats> {
        Ok(Stats::default())
    }

    /// Runs the work that is due now (delays, retries, checks, retention, flush).
    pub fn tick(&self) -> Result<()> {
        Ok(())
    }

    /// When the next deferred job is due (ms since the epoch), if any: a host without
    /// threads (wasm) sets a timer for it and calls `tick`.
    pub fn next_due_ms(&self) -> Option<u64> {
        None
    }

    /// Forces everything appended so far to disk.
    pub fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// Closes the broker: flushes, writes the checkpoint and releases the lock.
    /// Blocked receivers return empty. Closing twice is harmless.
    pub fn close(&self) -> Result<()> {
        let waiters = {
            let mut st = self.inner.state.lock();
            st.closed = true;
            std::mem::take(&mut st.waiters)
        };
        self.inner.arrived.notify_all();
        waiters.into_iter().for_each(|w| w());
        Ok(())
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.inner.state.lock().closed
    }

    fn send(&self, msg: Message) -> Result<SendResult> {
        let waiters;
        let result;
        {
            let mut st = self.inner.state.lock();
            if st.closed {
                return Err(Error::Closed);
            }
            let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
            let msg_id = format!("{id:032X}");
            let list = st.topics.entry(msg.topic.clone()).or_default();
            let ext = MessageExt {
                msg_id: msg_id.clone(),
                topic: msg.topic.clone(),
                queue_id: 0,
                queue_offset: list.len() as u64,
                commitlog_offset: id,
                body: msg.body,
                tags: msg.tags,
                keys: msg.keys,
                properties: msg.properties,
                born_timestamp: self.inner.config.clock.now_ms(),
                store_timestamp: self.inner.config.clock.now_ms(),
                reconsume_times: 0,
                sys_flag: 0,
                prepared_transaction_offset: 0,
                receipt: None,
            };
            list.push(ext.clone());
            result = SendResult {
                msg_id,
                topic: ext.topic,
                queue_id: 0,
                queue_offset: ext.queue_offset,
                commitlog_offset: id,
                status: SendStatus::SendOk,
                transaction_state: None,
            };
            waiters = std::mem::take(&mut st.waiters);
        }
        self.inner.arrived.notify_all();
        waiters.into_iter().for_each(|w| w());
        Ok(result)
    }
}

/// Sends messages on behalf of a producer group.
pub struct Producer {
    broker: Broker,
    group: String,
}

impl Producer {
    /// Stores one message.
    pub fn send(&self, msg: Message) -> Result<SendResult> {
        self.broker.send(msg)
    }

    /// Stores several messages of one topic as one append.
    pub fn send_batch(&self, msgs: Vec<Message>) -> Result<Vec<SendResult>> {
        msgs.into_iter().map(|m| self.broker.send(m)).collect()
    }

    /// The producer group.
    pub fn group(&self) -> &str {
        &self.group
    }
}

/// Sends transactional (half) messages.
pub struct TransactionProducer {
    producer: Producer,
    _listener: Arc<dyn TransactionListener>,
}

impl TransactionProducer {
    /// Stores `msg` as a half message, runs `execute` on it and records the outcome:
    /// COMMIT makes it visible, ROLLBACK drops it, UNKNOWN leaves it to check-back.
    pub fn send(
        &self,
        msg: Message,
        execute: impl FnOnce(&MessageExt) -> TxState,
    ) -> Result<SendResult> {
        let half = MessageExt {
            msg_id: String::new(),
            topic: msg.topic.clone(),
            queue_id: 0,
            queue_offset: 0,
            commitlog_offset: 0,
            body: msg.body.clone(),
            tags: msg.tags.clone(),
            keys: msg.keys.clone(),
            properties: msg.properties.clone(),
            born_timestamp: 0,
            store_timestamp: 0,
            reconsume_times: 0,
            sys_flag: 0,
            prepared_transaction_offset: 0,
            receipt: None,
        };
        let state = execute(&half);
        let mut r = self.producer.send(msg)?;
        r.transaction_state = Some(state);
        Ok(r)
    }

    /// The producer group.
    pub fn group(&self) -> &str {
        self.producer.group()
    }
}

/// Receives messages for one consumer of a group.
pub struct Consumer {
    broker: Broker,
    config: ConsumerConfig,
}

impl Consumer {
    /// Up to `max` messages, waiting up to `timeout` (real time) for the first.
    /// Returns empty at the timeout or when the consumer or broker closes.
    pub fn receive(&self, max: usize, timeout: Duration) -> Result<Vec<MessageExt>> {
        let deadline = crate::runtime::Deadline::after(timeout);
        let mut st = self.broker.inner.state.lock();
        loop {
            if st.closed {
                return Ok(Vec::new());
            }
            let key = (self.config.group.clone(), self.config.topic.clone());
            let from = st.cursors.get(&key).copied().unwrap_or(0);
            let out: Vec<MessageExt> = st
                .topics
                .get(&self.config.topic)
                .map(|l| l.iter().skip(from).take(max).cloned().collect())
                .unwrap_or_default();
            if !out.is_empty() {
                st.cursors.insert(key, from + out.len());
                return Ok(out);
            }
            if !deadline.wait(&self.broker.inner.arrived, &mut st) {
                return Ok(Vec::new());
            }
        }
    }

    /// Calls `callback` once: at once if a receive might find messages now, else on
    /// the next send that could interest this consumer, or on close. Lets an event
    /// loop (asyncio, JS) wait without a thread.
    pub fn on_ready(&self, callback: Box<dyn FnOnce() + Send>) {
        let mut st = self.broker.inner.state.lock();
        st.waiters.push(callback);
    }

    /// Marks a message done: never delivered to this group again.
    pub fn ack(&self, _msg: &MessageExt) -> Result<()> {
        Ok(())
    }

    /// Sends a message back for a later retry (or, past the limit, to the DLQ).
    pub fn nack(&self, _msg: &MessageExt) -> Result<()> {
        Ok(())
    }

    /// Leaves the group; its queues pass to the others. Closing twice is harmless.
    pub fn close(&self) -> Result<()> {
        Ok(())
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
