//! Messages as users build them (`Message`), as the engine hands them out
//! (`MessageExt`), and what a send reports (`SendResult`).

pub(crate) mod record;

use std::collections::BTreeMap;

use bytes::Bytes;

/// When a message becomes visible to consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delay {
    /// At once.
    #[default]
    None,
    /// After one of the broker's delay levels (1-based; 0 means none; above the last is clamped).
    Level(u32),
    /// At an absolute time, milliseconds since the epoch (the past means at once).
    At(u64),
    /// After a number of milliseconds from the send.
    After(u64),
}

/// A message to send.
#[derive(Debug, Clone, Default)]
pub struct Message {
    pub topic: String,
    pub body: Bytes,
    pub tags: Option<String>,
    pub keys: Vec<String>,
    pub properties: BTreeMap<String, String>,
    /// Messages with the same sharding key go to the same queue, in order.
    pub sharding_key: Option<String>,
    /// An explicit queue; wins over the sharding key.
    pub queue_id: Option<u32>,
    pub delay: Delay,
}

impl Message {
    /// A message with a topic and a body and nothing else.
    pub fn new(topic: impl Into<String>, body: impl Into<Bytes>) -> Message {
        Message {
            topic: topic.into(),
            body: body.into(),
            ..Message::default()
        }
    }

    /// A builder for a message with tags, keys, properties, a queue or a delay.
    pub fn builder(topic: impl Into<String>, body: impl Into<Bytes>) -> MessageBuilder {
        MessageBuilder {
            msg: Message::new(topic, body),
        }
    }
}

/// Builds a [`Message`]; validation happens when it is sent.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    msg: Message,
}

impl MessageBuilder {
    pub fn tags(mut self, tags: impl Into<String>) -> Self {
        self.msg.tags = Some(tags.into());
        self
    }
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.msg.keys.push(key.into());
        self
    }
    pub fn keys<I: IntoIterator<Item = S>, S: Into<String>>(mut self, keys: I) -> Self {
        self.msg.keys.extend(keys.into_iter().map(Into::into));
        self
    }
    pub fn property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.msg.properties.insert(name.into(), value.into());
        self
    }
    pub fn sharding_key(mut self, key: impl Into<String>) -> Self {
        self.msg.sharding_key = Some(key.into());
        self
    }
    pub fn queue_id(mut self, queue_id: u32) -> Self {
        self.msg.queue_id = Some(queue_id);
        self
    }
    pub fn delay_level(mut self, level: u32) -> Self {
        self.msg.delay = Delay::Level(level);
        self
    }
    pub fn deliver_at_ms(mut self, epoch_ms: u64) -> Self {
        self.msg.delay = Delay::At(epoch_ms);
        self
    }
    pub fn delay_ms(mut self, ms: u64) -> Self {
        self.msg.delay = Delay::After(ms);
        self
    }
    pub fn build(self) -> Message {
        self.msg
    }
}

/// Whether a stored message reached the disk in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    SendOk,
    /// Stored, but a `sync` flush did not finish within its timeout.
    FlushDiskTimeout,
}

impl SendStatus {
    /// RocketMQ's name for the status.
    pub fn as_str(&self) -> &'static str {
        match self {
            SendStatus::SendOk => "SEND_OK",
            SendStatus::FlushDiskTimeout => "FLUSH_DISK_TIMEOUT",
        }
    }
}

/// What a send reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    pub msg_id: String,
    pub topic: String,
    pub queue_id: u32,
    pub queue_offset: u64,
    pub commitlog_offset: u64,
    pub status: SendStatus,
    /// For a transactional send, what `execute` decided.
    pub transaction_state: Option<crate::TxState>,
}

/// Where a delivered message came from, so `ack`/`nack` find it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub(crate) consumer: u64,
    pub(crate) slot: usize,
    pub(crate) queue_offset: u64,
    pub(crate) epoch: u64,
}

/// A stored message, as `receive`, `get` and `query` return it.
#[derive(Debug, Clone)]
pub struct MessageExt {
    pub msg_id: String,
    /// The topic the producer sent to (also on a redelivery from the retry topic).
    pub topic: String,
    pub queue_id: u32,
    pub queue_offset: u64,
    pub commitlog_offset: u64,
    pub body: Bytes,
    pub tags: Option<String>,
    pub keys: Vec<String>,
    /// User properties, plus the engine's where it set some (`RETRY_TOPIC`, `ORIGIN_MESSAGE_ID`, ...).
    pub properties: BTreeMap<String, String>,
    pub born_timestamp: u64,
    pub store_timestamp: u64,
    pub reconsume_times: u32,
    pub sys_flag: u32,
    pub prepared_transaction_offset: u64,
    pub(crate) receipt: Option<Receipt>,
}

impl MessageExt {
    /// The body as UTF-8 text, if it is.
    pub fn body_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }
}
