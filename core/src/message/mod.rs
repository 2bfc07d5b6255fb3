//! Messages as users build them (`Message`), as the engine hands them out
//! (`MessageExt`), and what a send reports (`SendResult`).

mod crc;
mod delivery;
pub(crate) mod id;
pub(crate) mod properties;
pub(crate) mod record;

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::topic;
use crate::{Error, Result};
use properties::prop;
use record::{RecordSpec, RecordView};

pub(crate) use delivery::{build_all, keep_taken_list, taken_list, Delivery, Taken, READ_BUDGET};
pub use delivery::{MessageExt, Receipt};

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
    /// The topic to send to.
    pub topic: String,
    /// The body (must not be empty).
    pub body: Bytes,
    /// One tag, which consumers filter on.
    pub tags: Option<String>,
    /// Keys to find the message by (`Broker::query`). A record holds them joined by
    /// spaces (RocketMQ's `KEYS`), so a key with spaces in it is one key per word.
    pub keys: Vec<String>,
    /// User properties.
    pub properties: BTreeMap<String, String>,
    /// More user properties, already encoded as a record holds them (RocketMQ's
    /// `propertiesString`): for each, its name, `\x01`, its value, `\x02`. For
    /// bindings and servers that receive properties in an encoded form, which then
    /// build no map or strings for them. Checked as `properties` are when the message
    /// is sent (names and values non-empty and free of the separators, no reserved
    /// name), and read back with them into [`MessageExt::properties`]; they come
    /// after `properties`, so of a name given twice the last value is read back.
    pub encoded_properties: String,
    /// Messages with the same sharding key go to the same queue, in order.
    pub sharding_key: Option<String>,
    /// An explicit queue; wins over the sharding key.
    pub queue_id: Option<u32>,
    /// Deliver it later: a delay level, a delay or a time (`Delay::None`: now).
    pub delay: Delay,
    /// Within the broker's `dedup_window`, another send of the same (topic,
    /// dedup_id) stores nothing and returns this send's result.
    pub dedup_id: Option<String>,
    /// The id to store the message under (RocketMQ's `UNIQ_KEY`, as the RocketMQ 5
    /// clients choose theirs); `None`: the engine assigns one. See [`MessageBuilder::msg_id`].
    pub msg_id: Option<String>,
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

    /// Checks what a user set: a body within the limit, and tags, keys, properties
    /// and sharding key that cannot be mistaken for the record's structure.
    #[inline]
    pub(crate) fn validate(&self, max_message_size: usize) -> Result<()> {
        let m = self;
        if m.body.is_empty() {
            return Err(Error::invalid("the message body is empty"));
        }
        if m.body.len() > max_message_size {
            return Err(Error::MessageTooLarge {
                size: m.body.len(),
                limit: max_message_size,
            });
        }
        // Every string that enters the record passes the one check of user text.
        if let Some(t) = &m.tags {
            properties::check_user_text("tag", t)?;
            if t.contains("||") {
                return Err(Error::invalid(format!(
                    "tag {t:?}: a tag is one word (\"||\" joins tags in expressions)"
                )));
            }
        }
        for k in &m.keys {
            properties::check_user_text("key", k)?;
            // A record holds its keys joined by spaces (RocketMQ's KEYS), so a key with
            // spaces in it is one key per word, as RocketMQ's `setKeys("k1 k2")`; one
            // of spaces alone would be none.
            if properties::has_space(k.as_bytes()) && k.bytes().all(|b| b == b' ') {
                return Err(Error::invalid(format!(
                    "key {k:?} is blank (a record's keys are words joined by spaces)"
                )));
            }
        }
        for (k, v) in &m.properties {
            properties::check_user_text("property name", k)?;
            properties::check_user_text("property value", v)?;
            check_property(k, v)?;
        }
        if !m.encoded_properties.is_empty() {
            properties::check_encoded(&m.encoded_properties, check_property)?;
        }
        if let Some(k) = &m.sharding_key {
            properties::check_user_text("sharding key", k)?;
        }
        if let Some(d) = &m.dedup_id {
            properties::check_user_text("dedup_id", d)?;
            if d.is_empty() || d.len() > crate::dedup::MAX_DEDUP_ID_LEN {
                return Err(Error::invalid(format!(
                    "dedup_id {:?}: a dedup id is 1 to {} bytes of text",
                    crate::dedup::clip(d),
                    crate::dedup::MAX_DEDUP_ID_LEN
                )));
            }
        }
        if let Some(i) = &m.msg_id {
            id::check_given(i)?;
        }
        Ok(())
    }

    /// The record of this message bound for (`topic`, `queue_id`), born `now` (its
    /// delay is applied by the schedule), its properties encoded into `buf` (an empty
    /// buffer kept from an earlier send, or a new one).
    #[inline]
    pub(crate) fn into_record(
        self,
        topic: std::sync::Arc<str>,
        queue_id: u32,
        now: u64,
        mut buf: Vec<u8>,
    ) -> RecordSpec {
        let found = self.encode_properties(&mut buf);
        RecordSpec {
            topic,
            queue_id,
            sys_flag: 0,
            born_ts: now,
            reconsume_times: 0,
            prepared_tx_offset: 0,
            properties: buf,
            dedup: None,
            found,
            body: self.body,
        }
    }

    /// The user's tags, keys, properties and sharding key, appended to `p` (empty
    /// before), and where the names dispatch reads went.
    #[inline]
    pub(crate) fn encode_properties(&self, p: &mut Vec<u8>) -> properties::Found {
        use properties::{at, push, push_found};
        let m = self;
        let mut found = properties::Found::NONE;
        // At most one allocation, of the size needed (names are at most 16 bytes).
        let text = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len() + 18);
        let size = text(&m.tags)
            + text(&m.sharding_key)
            + text(&m.dedup_id)
            + text(&m.msg_id)
            + m.keys.iter().map(|k| k.len() + 1).sum::<usize>()
            + if m.keys.is_empty() { 0 } else { 6 }
            + m.properties
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2)
                .sum::<usize>()
            + m.encoded_properties.len();
        if size == 0 {
            return found;
        }
        p.reserve(size);
        if let Some(t) = &m.tags {
            push_found(p, prop::TAGS, t, &mut found, at::TAGS);
        }
        if !m.keys.is_empty() {
            found.set(at::KEYS, p.len() + prop::KEYS.len() + 1);
            properties::push_joined(p, prop::KEYS, &m.keys, b' ');
        }
        for (k, v) in &m.properties {
            // The one name dispatch reads that a user may set (it means something
            // only on the engine's transaction records).
            if k == prop::TX_RESOLUTION {
                found = properties::Found::UNKNOWN;
            }
            push(p, k, v);
        }
        if !m.encoded_properties.is_empty() {
            // (Checked text: every value is non-empty, so a name is found by value.)
            if properties::value(m.encoded_properties.as_bytes(), prop::TX_RESOLUTION).is_some() {
                found = properties::Found::UNKNOWN;
            }
            p.extend_from_slice(m.encoded_properties.as_bytes());
        }
        if let Some(k) = &m.sharding_key {
            push(p, prop::SHARDING_KEY, k);
        }
        if let Some(d) = &m.dedup_id {
            push_found(p, prop::DEDUP_ID, d, &mut found, at::DEDUP_ID);
        }
        if let Some(i) = &m.msg_id {
            push_found(p, prop::UNIQ_KEY, i, &mut found, at::UNIQ_KEY);
        }
        found
    }
}

/// Checks a user property whose name and value passed the check of user text: a
/// name the engine does not reserve, and a value the name's meaning allows.
fn check_property(k: &str, v: &str) -> Result<()> {
    if properties::is_reserved(k) {
        return Err(Error::invalid(format!(
            "property {k:?} is reserved for the engine"
        )));
    }
    if k == properties::prop::CHECK_IMMUNITY_TIME_IN_SECONDS && properties::immunity_ms(v).is_none()
    {
        return Err(Error::invalid(format!(
            "property {k:?} = {v:?}: whole seconds, 0 to {}",
            properties::MAX_IMMUNITY_SECS
        )));
    }
    Ok(())
}

/// Builds a [`Message`]; validation happens when it is sent.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    msg: Message,
}

impl From<Message> for MessageBuilder {
    /// A builder that goes on from a message built so far.
    fn from(msg: Message) -> MessageBuilder {
        MessageBuilder { msg }
    }
}

impl MessageBuilder {
    /// Sets the tag.
    pub fn tags(mut self, tags: impl Into<String>) -> Self {
        self.msg.tags = Some(tags.into());
        self
    }
    /// Adds a key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.msg.keys.push(key.into());
        self
    }
    /// Adds keys.
    pub fn keys<I: IntoIterator<Item = S>, S: Into<String>>(mut self, keys: I) -> Self {
        self.msg.keys.extend(keys.into_iter().map(Into::into));
        self
    }
    /// Sets a user property.
    pub fn property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.msg.properties.insert(name.into(), value.into());
        self
    }
    /// Adds user properties already encoded (see [`Message::encoded_properties`]).
    pub fn encoded_properties(mut self, encoded: &str) -> Self {
        self.msg.encoded_properties.push_str(encoded);
        self
    }
    /// Sets the sharding key (see [`Message::sharding_key`]).
    pub fn sharding_key(mut self, key: impl Into<String>) -> Self {
        self.msg.sharding_key = Some(key.into());
        self
    }
    /// Sends to this queue (see [`Message::queue_id`]).
    pub fn queue_id(mut self, queue_id: u32) -> Self {
        self.msg.queue_id = Some(queue_id);
        self
    }
    /// Delays delivery by a RocketMQ delay level (1 to 18 by default).
    pub fn delay_level(mut self, level: u32) -> Self {
        self.msg.delay = Delay::Level(level);
        self
    }
    /// Delivers at this time (ms since the epoch).
    pub fn deliver_at_ms(mut self, epoch_ms: u64) -> Self {
        self.msg.delay = Delay::At(epoch_ms);
        self
    }
    /// Delivers after this many milliseconds.
    pub fn delay_ms(mut self, ms: u64) -> Self {
        self.msg.delay = Delay::After(ms);
        self
    }
    /// See [`Message::dedup_id`].
    pub fn dedup_id(mut self, id: impl Into<String>) -> Self {
        self.msg.dedup_id = Some(id.into());
        self
    }

    /// Stores the message under this id instead of one the engine assigns: 1 to 128
    /// printable ASCII characters, not 32 hex digits (the shape of the engine's own
    /// ids). The send reports it, every delivery (retries, dead letters, a committed
    /// transaction) carries it, and `Broker::get` finds the message by it. The engine
    /// does not check that ids are unique: that is the caller's promise.
    pub fn msg_id(mut self, id: impl Into<String>) -> Self {
        self.msg.msg_id = Some(id.into());
        self
    }
    /// The message.
    pub fn build(self) -> Message {
        self.msg
    }

    /// Whether a delay of any kind was given.
    pub(crate) fn delay_given(&self) -> bool {
        self.msg.delay != Delay::None
    }
}

/// Whether a stored message reached the disk in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Stored (and, under `sync`, durable).
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
    /// The message id (as `MessageExt::msg_id`).
    pub msg_id: String,
    /// The topic it was stored in.
    pub topic: String,
    /// The queue it went to.
    pub queue_id: u32,
    /// Its offset in that queue.
    pub queue_offset: u64,
    /// Its record's offset in the CommitLog.
    pub commitlog_offset: u64,
    /// Whether it was stored in time (`SendOk`) or its `sync` flush timed out.
    pub status: SendStatus,
    /// For a transactional send, what `execute` decided.
    pub transaction_state: Option<crate::TxState>,
    /// The send repeated a `dedup_id` inside the window: nothing was stored, and
    /// this is the first send's result.
    pub duplicate: bool,
    /// For a delayed message (a delay level, `delay_ms` or `deliver_at`), the handle
    /// `Producer::recall` takes to cancel it before it is delivered (RocketMQ 5.3's
    /// recall handle); None otherwise.
    pub recall_handle: Option<String>,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::properties::{values, Found, READ};
    use super::*;

    /// Text a user may send: short, any character but the separators.
    fn text() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 _.é\\-]{1,12}".prop_map(|s| s.replace(' ', "_"))
    }

    proptest! {
        /// What a send notes of where its properties went is what dispatch would
        /// read from the bytes, for every mix of options (and a user property named
        /// like one dispatch reads makes it look for itself).
        #[test]
        fn the_found_properties_are_where_the_block_has_them(
            tags in proptest::option::of(text()),
            keys in proptest::collection::vec(text(), 0..3),
            props in proptest::collection::btree_map(
                prop_oneof![text(), Just(properties::prop::TX_RESOLUTION.to_string())],
                text(),
                0..3,
            ),
            encoded in proptest::collection::vec(
                (prop_oneof![text(), Just(properties::prop::TX_RESOLUTION.to_string())], text()),
                0..3,
            ),
            sharding_key in proptest::option::of(text()),
            dedup_id in proptest::option::of(text()),
            msg_id in proptest::option::of("[0-9A-F]{32}"),
        ) {
            let m = Message {
                tags,
                keys,
                properties: props.clone(),
                encoded_properties: encoded
                    .iter()
                    .map(|(k, v)| format!("{k}\u{1}{v}\u{2}"))
                    .collect(),
                sharding_key,
                dedup_id,
                msg_id,
                ..Message::new("t", "b")
            };
            prop_assume!(m.validate(1 << 20).is_ok());
            let mut block = Vec::new();
            let found = m.encode_properties(&mut block);
            let tx = properties::prop::TX_RESOLUTION;
            prop_assert_eq!(
                found == Found::UNKNOWN,
                props.contains_key(tx) || encoded.iter().any(|(k, _)| k == tx)
            );
            prop_assert_eq!(
                properties::read_values(&block, found),
                values(&block, &READ)
            );
            // Read back, both kinds are there; of a name in both, the encoded value.
            let back: BTreeMap<&str, &str> = properties::iter(&block).collect();
            let mut want: BTreeMap<&str, &str> =
                props.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            want.extend(encoded.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            for (k, v) in want {
                prop_assert_eq!(back.get(k).copied(), Some(v), "{}", k);
            }
        }
    }
}
