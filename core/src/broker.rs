//! The facade: a broker over one store, handing out producers and consumers.
//! (Walking skeleton: an in-memory list per topic; the engine replaces it.)

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;

use crate::{
    BrokerConfig, ConsumerConfig, Error, Message, MessageExt, Result, SendResult, SendStatus,
    StartFrom,
};

/// The outcome of a local transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxState {
    Commit,
    Rollback,
    Unknown,
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

/// Sizes and rates of the store.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Stats {
    pub topics: BTreeMap<String, u64>,
}

#[derive(Default)]
struct State {
    topics: HashMap<String, Vec<MessageExt>>,
    cursors: HashMap<(String, String), usize>,
    closed: bool,
}

struct Inner {
    config: BrokerConfig,
    state: Mutex<State>,
    next_id: AtomicU64,
}

/// One embedded engine over one store.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl Broker {
    /// Opens (or creates) the store the config names.
    pub fn open(config: BrokerConfig) -> Result<Broker> {
        Ok(Broker {
            inner: Arc::new(Inner {
                config,
                state: Mutex::default(),
                next_id: AtomicU64::new(0),
            }),
        })
    }

    /// An in-memory broker with default options.
    pub fn memory() -> Broker {
        Broker::open(BrokerConfig::default()).expect("a memory store always opens")
    }

    /// Creates a topic, or grows its queue count.
    pub fn create_topic(&self, name: &str, _queues: u32) -> Result<()> {
        self.inner
            .state
            .lock()
            .topics
            .entry(name.to_string())
            .or_default();
        Ok(())
    }

    /// A producer in `group`.
    pub fn producer(&self, group: &str) -> Result<Producer> {
        Ok(Producer {
            broker: self.clone(),
            group: group.to_string(),
        })
    }

    /// A consumer as the config says.
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

    /// Closes the broker: flushes and releases the store.
    pub fn close(&self) -> Result<()> {
        self.inner.state.lock().closed = true;
        Ok(())
    }

    /// Runs the work that is due now.
    pub fn tick(&self) -> Result<()> {
        Ok(())
    }

    /// Resets a group's offsets on a topic.
    pub fn reset_offset(&self, _group: &str, _topic: &str, _to: StartFrom) -> Result<()> {
        Ok(())
    }

    fn send(&self, msg: Message) -> Result<SendResult> {
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
        Ok(SendResult {
            msg_id,
            topic: ext.topic,
            queue_id: 0,
            queue_offset: ext.queue_offset,
            commitlog_offset: id,
            status: SendStatus::SendOk,
            transaction_state: None,
        })
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

    /// Stores several messages as one append.
    pub fn send_batch(&self, msgs: Vec<Message>) -> Result<Vec<SendResult>> {
        msgs.into_iter().map(|m| self.broker.send(m)).collect()
    }

    /// The producer group.
    pub fn group(&self) -> &str {
        &self.group
    }
}

/// Sends transactional (half) messages.
pub struct TransactionProducer;

/// Receives messages for one consumer of a group.
pub struct Consumer {
    broker: Broker,
    config: ConsumerConfig,
}

impl Consumer {
    /// Up to `max` messages, waiting up to `timeout` for the first.
    pub fn receive(&self, max: usize, _timeout: Duration) -> Result<Vec<MessageExt>> {
        let mut st = self.broker.inner.state.lock();
        let key = (self.config.group.clone(), self.config.topic.clone());
        let from = st.cursors.get(&key).copied().unwrap_or(0);
        let list = st
            .topics
            .get(&self.config.topic)
            .cloned()
            .unwrap_or_default();
        let out: Vec<MessageExt> = list.into_iter().skip(from).take(max).collect();
        st.cursors.insert(key, from + out.len());
        Ok(out)
    }

    /// Marks a message done.
    pub fn ack(&self, _msg: &MessageExt) -> Result<()> {
        Ok(())
    }

    /// Sends a message back for a later retry.
    pub fn nack(&self, _msg: &MessageExt) -> Result<()> {
        Ok(())
    }

    /// Leaves the group.
    pub fn close(&self) -> Result<()> {
        Ok(())
    }
}
