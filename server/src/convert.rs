//! Messages between the protocol and the engine.
//!
//! Inbound (`to_engine`): every field a SendMessage carries is checked here, each rule
//! with its protocol code (MESSAGE_BODY_EMPTY, ILLEGAL_MESSAGE_TAG, ...), so nothing
//! malformed reaches the store. `message_group` becomes the sharding key,
//! `delivery_timestamp` the delivery time. The client's `message_id` (34 hex digits,
//! RocketMQ's UNIQ_KEY) is the message's id in the store (`MessageBuilder::msg_id`):
//! sends report it, deliveries carry it, `Broker::get` finds it.
//!
//! Outbound (`to_proto`): a stored message as consumers and check-backs receive it,
//! with an upper-case MD5 body digest (Python and Node both verify MD5 that way;
//! Node renders CRC32 in decimal, so CRC32 is avoided) and `body_encoding` always set.
//! Engine and server properties never reach a client's `user_properties`.

use bytes::Bytes;
use md5::{Digest as _, Md5};
use pocketmq::{Message, MessageExt};
use prost_types::Timestamp;

use crate::config::Limits;
use crate::proto::{
    Code, Digest, DigestType, Encoding, Message as PbMessage, MessageType, Resource,
    SystemProperties,
};
use crate::resource::{self, Use};
use crate::status::Refusal;

/// Server-owned properties start with this; clients may not set them.
pub(crate) const SERVER_PREFIX: &str = "__PMQ_";
/// Set to `GZIP` when the client sent a compressed body (stored as sent).
pub(crate) const BODY_ENCODING: &str = "__PMQ_BODY_ENCODING";
/// The client's trace context, when it sent one.
pub(crate) const TRACE_CONTEXT: &str = "__PMQ_TRACE_CONTEXT";
/// The sender's host as the client named it, else its address (RocketMQ's
/// `MessageConst.PROPERTY_BORN_HOST`).
pub(crate) const BORN_HOST: &str = "__BORNHOST";

/// Property names RocketMQ keeps for itself (`MessageConst`); a client may not set them
/// and the engine's never reach a client, but for [`SHOWN_PROPERTIES`].
/// `CHECK_IMMUNITY_TIME_IN_SECONDS` is not one: a client sets it on a transactional
/// message to put its first check-back off (Apache's broker reads it so).
const SYSTEM_PROPERTIES: &[&str] = &[
    "TAGS",
    "KEYS",
    "UNIQ_KEY",
    "WAIT",
    "DELAY",
    "TIMER_DELIVER_MS",
    "TIMER_DELAY_SEC",
    "TIMER_DELAY_MS",
    "TRAN_MSG",
    "PGROUP",
    "RETRY_TOPIC",
    "REAL_TOPIC",
    "REAL_QID",
    "ORIGIN_MESSAGE_ID",
    "RECONSUME_TIME",
    "MAX_RECONSUME_TIMES",
    "TRANSACTION_CHECK_TIMES",
    "MIN_OFFSET",
    "MAX_OFFSET",
    "CONSUME_START_TIME",
    "__SHARDINGKEY",
    "__CRC32#",
    "__transactionId__",
    "MSG_REGION",
    "TRACE_ON",
    "INNER_MULTI_DISPATCH",
    "INNER_MULTI_QUEUE_OFFSET",
    "TIMER_OUT_MS",
    "TIMER_ENQUEUE_MS",
    "TIMER_DEQUEUE_MS",
    "TIMER_ROLL_TIMES",
    "POP_CK",
    "1ST_POP_TIME",
    "BORN_HOST",
    "__BORNHOST",
    "TRACE_CONTEXT",
    "INSTANCE_ID",
    "CORRELATION_ID",
    "REPLY_TO_CLIENT",
    "TTL",
    "CLUSTER",
    // The rest of Apache's `MessageConst.STRING_HASH_SET`, refused there as here.
    "BUYER_ID",
    "TRANSFER_FLAG",
    "CORRECTION_FLAG",
    "MQ2_FLAG",
    "POP_CK_OFFSET",
    "TRAN_PREPARED_QUEUE_OFFSET",
    "DUP_INFO",
    "EXTEND_UNIQ_INFO",
    "ARRIVE_TIME",
    "PUSH_REPLY_TIME",
    "MSG_TYPE",
    "TIMER_DEL_UNIQKEY",
    "TIMER_DELAY_LEVEL",
    "BORN_TIMESTAMP",
    "DLQ_ORIGIN_TOPIC",
    "DLQ_ORIGIN_MESSAGE_ID",
];

/// The engine's properties a client sees as user properties, as Apache's proxy shows
/// them (they are not in `MessageConst.STRING_HASH_SET`): a check-back's count of
/// checks so far, 1 on the first.
const SHOWN_PROPERTIES: &[&str] = &["TRANSACTION_CHECK_TIMES"];

/// The longest `orphaned_transaction_recovery_duration` (Apache's proxy:
/// `maxTransactionRecoverySecond`, one hour).
const MAX_RECOVERY_SECS: i64 = 3600;

/// A message group is shorter than this many bytes (Apache's `maxMessageGroupSize`).
const MAX_GROUP_LEN: usize = 64;
/// User properties, tag and keys together (Apache's `maxUserPropertySize`).
const MAX_PROPERTIES_BYTES: usize = 16 * 1024;
/// User properties a message may have (Apache's `userPropertyMaxNum`).
const MAX_USER_PROPERTIES: usize = 128;
const MAX_MESSAGE_ID_LEN: usize = 128;

/// 32 hex digits: the shape of the engine's own ids, which a client may not take.
fn engine_shaped(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A SendMessage entry ready for the engine.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub msg: Message,
    /// The id the client sees: its own, or empty to take the engine's.
    pub message_id: String,
    pub kind: MessageType,
}

fn printable(s: &str) -> bool {
    !s.chars().any(|c| c.is_control())
}

/// Checks one message of a SendMessage and builds the engine's message.
/// `peer` is the sender's address, stored as the born host when the client names none
/// (Apache's proxy keeps either as the `BORN_HOST` property).
pub(crate) fn to_engine(
    m: PbMessage,
    limits: &Limits,
    now_ms: u64,
    peer: Option<std::net::SocketAddr>,
) -> Result<Incoming, Refusal> {
    let topic = resource::topic(m.topic.as_ref(), Use::Send)?;
    if m.body.is_empty() {
        return Err(Refusal::new(
            Code::MessageBodyEmpty,
            "the message body is empty",
        ));
    }
    if m.body.len() > limits.max_message_size {
        return Err(Refusal::new(
            Code::MessageBodyTooLarge,
            format!(
                "the body has {} bytes, the limit is {}",
                m.body.len(),
                limits.max_message_size
            ),
        ));
    }
    let sys = m.system_properties.unwrap_or_default();
    let mut msg = Message::new(topic, Bytes::from(m.body));
    let mut prop_bytes = 0usize;

    if let Some(tag) = &sys.tag {
        if tag.trim().is_empty() || tag.contains('|') || !printable(tag) {
            return Err(Refusal::new(
                Code::IllegalMessageTag,
                format!("tag {tag:?}: non-blank text without '|' or control characters"),
            ));
        }
        prop_bytes += tag.len();
        msg.tags = Some(tag.clone());
    }
    // An empty key is no key, as Apache's proxy skips it (a blank one is refused).
    for key in sys.keys.iter().filter(|k| !k.is_empty()) {
        if key.trim().is_empty() || !printable(key) {
            return Err(Refusal::new(
                Code::IllegalMessageKey,
                format!("key {key:?}: non-blank text without control characters"),
            ));
        }
        prop_bytes += key.len();
    }
    // Keys are stored joined by spaces (RocketMQ's KEYS): a key with spaces in it
    // is found by each of its words, as Apache's proxy stores it.
    msg.keys = sys
        .keys
        .iter()
        .flat_map(|k| k.split(' '))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();

    if let Some(group) = &sys.message_group {
        if group.trim().is_empty() || !printable(group) || group.len() >= MAX_GROUP_LEN {
            return Err(Refusal::new(
                Code::IllegalMessageGroup,
                format!("message group {group:?}: non-blank, shorter than {MAX_GROUP_LEN} bytes"),
            ));
        }
        msg.sharding_key = Some(group.clone());
    }

    let deliver_at = match &sys.delivery_timestamp {
        None => None,
        Some(ts) => Some(delivery_ms(ts, limits, now_ms)?),
    };
    if let Some(at) = deliver_at {
        msg = Message {
            delay: pocketmq::Delay::At(at),
            ..msg
        };
    }

    if m.user_properties.len() > MAX_USER_PROPERTIES {
        return Err(Refusal::new(
            Code::MessagePropertiesTooLarge,
            format!(
                "too many user properties ({}), the limit is {MAX_USER_PROPERTIES}",
                m.user_properties.len()
            ),
        ));
    }
    for (k, v) in &m.user_properties {
        let reserved = SYSTEM_PROPERTIES.contains(&k.as_str()) || k.starts_with(SERVER_PREFIX);
        if k.trim().is_empty() || !printable(k) || reserved {
            return Err(Refusal::new(
                Code::IllegalMessagePropertyKey,
                format!("property {k:?} is empty or reserved"),
            ));
        }
        if v.is_empty() || !printable(v) {
            return Err(Refusal::new(
                Code::IllegalMessagePropertyKey,
                format!("property {k:?}: the value is empty or not text"),
            ));
        }
        prop_bytes += k.len() + v.len();
    }
    msg.properties = m.user_properties.into_iter().collect();

    let given = MessageType::try_from(sys.message_type).unwrap_or(MessageType::Unspecified);
    let kind = match (given, &sys.message_group, deliver_at) {
        (_, Some(_), Some(_)) => {
            return Err(Refusal::new(
                Code::MessagePropertyConflictWithType,
                "a message has a message group or a delivery time, not both",
            ))
        }
        (MessageType::Unspecified | MessageType::Fifo, Some(_), None) => MessageType::Fifo,
        (MessageType::Unspecified | MessageType::Delay, None, Some(_)) => MessageType::Delay,
        (MessageType::Unspecified | MessageType::Normal, None, None) => MessageType::Normal,
        (MessageType::Transaction, None, None) => MessageType::Transaction,
        (t, _, _) => {
            return Err(Refusal::new(
                Code::MessagePropertyConflictWithType,
                format!(
                    "message type {} does not match the message's properties",
                    t.as_str_name()
                ),
            ))
        }
    };

    if let (MessageType::Transaction, Some(d)) = (kind, &sys.orphaned_transaction_recovery_duration)
    {
        if !(0..=MAX_RECOVERY_SECS).contains(&d.seconds) {
            return Err(Refusal::new(
                Code::BadRequest,
                format!(
                    "orphaned transaction recovery duration {} s: 0 to {MAX_RECOVERY_SECS} s",
                    d.seconds
                ),
            ));
        }
        msg.properties.insert(
            "CHECK_IMMUNITY_TIME_IN_SECONDS".to_string(),
            d.seconds.to_string(),
        );
    }

    let message_id = sys.message_id;
    if !message_id.is_empty() {
        if message_id.len() > MAX_MESSAGE_ID_LEN
            || !message_id.bytes().all(|b| b.is_ascii_graphic())
            || engine_shaped(&message_id)
        {
            return Err(Refusal::new(
                Code::IllegalMessageId,
                format!("message id {message_id:?} is not printable ASCII up to {MAX_MESSAGE_ID_LEN} characters (32 hex digits are the store's own ids)"),
            ));
        }
        msg.msg_id = Some(message_id.clone());
    }
    if sys.body_encoding == Encoding::Gzip as i32 {
        msg.properties
            .insert(BODY_ENCODING.to_string(), "GZIP".to_string());
    }
    if let Some(tc) = sys.trace_context.filter(|t| !t.is_empty()) {
        msg.properties.insert(TRACE_CONTEXT.to_string(), tc);
    }
    if prop_bytes > MAX_PROPERTIES_BYTES {
        return Err(Refusal::new(
            Code::MessagePropertiesTooLarge,
            format!("properties take {prop_bytes} bytes, the limit is {MAX_PROPERTIES_BYTES}"),
        ));
    }
    let born_host = match sys.born_host.trim() {
        h if !h.is_empty() && h.len() <= MAX_MESSAGE_ID_LEN && printable(h) => Some(h.to_string()),
        _ => peer.map(|a| a.to_string()),
    };
    if let Some(h) = born_host {
        msg.properties.insert(BORN_HOST.to_string(), h);
    }
    Ok(Incoming {
        msg,
        message_id,
        kind,
    })
}

/// A delivery timestamp in ms, refused when malformed or beyond `max_delay`.
fn delivery_ms(ts: &Timestamp, limits: &Limits, now_ms: u64) -> Result<u64, Refusal> {
    let illegal = |why: String| Refusal::new(Code::IllegalDeliveryTime, why);
    if ts.seconds < 0 || !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(illegal(format!("delivery timestamp {ts:?} is malformed")));
    }
    let at = (ts.seconds as u64)
        .saturating_mul(1000)
        .saturating_add(ts.nanos as u64 / 1_000_000);
    let max = limits.max_delay.as_millis() as u64;
    if at > now_ms && at - now_ms > max {
        return Err(illegal(format!(
            "delivery {} ms ahead is beyond the limit of {max} ms",
            at - now_ms
        )));
    }
    Ok(at)
}

pub(crate) fn timestamp(ms: u64) -> Timestamp {
    Timestamp {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

/// How a delivery is described to the receiving client.
#[derive(Debug, Clone, Default)]
pub(crate) struct Delivery {
    pub receipt_handle: Option<String>,
    pub delivery_attempt: Option<i32>,
    pub invisible: Option<std::time::Duration>,
    /// `host:port` of this server, reported as the store host.
    pub store_host: String,
}

/// The id a client knows a stored message by: its own, or the store's.
pub(crate) fn client_message_id(ext: &MessageExt) -> String {
    ext.msg_id.clone()
}

/// A stored message as a client receives it. `topic` is the resource the client asked
/// with (the namespace it knows the topic by).
pub(crate) fn to_proto(ext: &MessageExt, topic: Resource, d: Delivery) -> PbMessage {
    let p = &ext.properties;
    let user_properties = p
        .iter()
        .filter(|(k, _)| {
            let k = k.as_str();
            (!SYSTEM_PROPERTIES.contains(&k) || SHOWN_PROPERTIES.contains(&k))
                && !k.starts_with(SERVER_PREFIX)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let message_group = p.get("__SHARDINGKEY").cloned();
    let delivery_at = p
        .get("TIMER_DELIVER_MS")
        .and_then(|v| v.parse::<u64>().ok());
    // A committed copy carries the commit flag; a half message (a check-back's) its
    // TRAN_MSG property.
    let kind = if ext.sys_flag & 0x8 != 0 || p.get("TRAN_MSG").is_some_and(|v| v == "true") {
        MessageType::Transaction
    } else if message_group.is_some() {
        MessageType::Fifo
    } else if delivery_at.is_some() || p.contains_key("DELAY") {
        MessageType::Delay
    } else {
        MessageType::Normal
    };
    let encoding = if p.get(BODY_ENCODING).map(String::as_str) == Some("GZIP") {
        Encoding::Gzip
    } else {
        Encoding::Identity
    };
    let md5: String = Md5::digest(&ext.body)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    PbMessage {
        topic: Some(topic),
        user_properties,
        system_properties: Some(SystemProperties {
            tag: ext.tags.clone(),
            keys: ext.keys.clone(),
            message_id: client_message_id(ext),
            body_digest: Some(Digest {
                r#type: DigestType::Md5 as i32,
                checksum: md5,
            }),
            body_encoding: encoding as i32,
            message_type: kind as i32,
            born_timestamp: Some(timestamp(ext.born_timestamp)),
            born_host: p.get(BORN_HOST).cloned().unwrap_or_default(),
            store_timestamp: Some(timestamp(ext.store_timestamp)),
            store_host: d.store_host,
            delivery_timestamp: delivery_at.map(timestamp),
            receipt_handle: d.receipt_handle,
            queue_id: ext.queue_id as i32,
            queue_offset: Some(ext.queue_offset as i64),
            invisible_duration: d.invisible.map(crate::settings::pb_duration),
            delivery_attempt: d.delivery_attempt,
            message_group,
            trace_context: p.get(TRACE_CONTEXT).cloned(),
            orphaned_transaction_recovery_duration: None,
            dead_letter_queue: None,
            lite_topic: None,
            priority: None,
        }),
        body: ext.body.to_vec(),
    }
}

/// A delivered body as its producer gave it: a compressed one (`body_encoding` GZIP)
/// decompressed, as the official clients do. The gzip format, or zlib's, which
/// RocketMQ 4 producers compress with and Apache's proxy marks GZIP too; a body that
/// is neither stays as it came, and is logged.
pub fn decompressed(body: Vec<u8>, encoding: i32) -> Vec<u8> {
    use std::io::Read;
    if encoding != Encoding::Gzip as i32 {
        return body;
    }
    let mut out = Vec::with_capacity(body.len().saturating_mul(2));
    if flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut out)
        .is_ok()
    {
        return out;
    }
    out.clear();
    match flate2::read::ZlibDecoder::new(&body[..]).read_to_end(&mut out) {
        Ok(_) => out,
        Err(e) => {
            log::warn!("a compressed message body does not decompress ({e}); delivered as it came");
            body
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(f: impl FnOnce(&mut PbMessage)) -> PbMessage {
        let mut m = PbMessage {
            topic: Some(Resource {
                resource_namespace: String::new(),
                name: "orders".into(),
            }),
            user_properties: Default::default(),
            system_properties: Some(SystemProperties {
                message_id: "01AABBCCDDEEFF00112233445566778899".into(),
                body_encoding: Encoding::Identity as i32,
                ..SystemProperties::default()
            }),
            body: b"hello".to_vec(),
        };
        f(&mut m);
        m
    }

    fn sys(m: &mut PbMessage) -> &mut SystemProperties {
        m.system_properties.as_mut().unwrap()
    }

    fn code(m: PbMessage) -> Code {
        to_engine(m, &Limits::default(), 1_000_000, None)
            .unwrap_err()
            .code
    }

    #[test]
    fn a_plain_message_converts() {
        let i = to_engine(msg(|_| {}), &Limits::default(), 0, None).unwrap();
        assert_eq!(i.kind, MessageType::Normal);
        assert_eq!(i.msg.topic, "orders");
        assert_eq!(
            i.msg.msg_id.as_deref(),
            Some("01AABBCCDDEEFF00112233445566778899")
        );
        assert!(i.msg.properties.is_empty());
    }

    /// As Apache's proxy: tags and keys of any length within the properties' 16 KiB,
    /// and a key with spaces found by each of its words.
    #[test]
    fn long_tags_and_keys_pass_and_keys_split_at_spaces() {
        let i = to_engine(
            msg(|m| {
                sys(m).tag = Some("t".repeat(1000));
                sys(m).keys = vec!["k".repeat(1000), "a b".into()];
            }),
            &Limits::default(),
            0,
            None,
        )
        .unwrap();
        assert_eq!(i.msg.tags.as_deref().map(str::len), Some(1000));
        assert_eq!(i.msg.keys, ["k".repeat(1000), "a".into(), "b".into()]);
    }

    /// As Apache's proxy: the born host the client names, else its address, kept as
    /// `__BORNHOST` and given back on delivery.
    #[test]
    fn the_born_host_is_the_clients_or_its_address() {
        let peer: std::net::SocketAddr = "10.1.2.3:4567".parse().unwrap();
        let i = to_engine(msg(|_| {}), &Limits::default(), 0, Some(peer)).unwrap();
        assert_eq!(i.msg.properties[BORN_HOST], "10.1.2.3:4567");
        let i = to_engine(
            msg(|m| sys(m).born_host = "worker-7".into()),
            &Limits::default(),
            0,
            Some(peer),
        )
        .unwrap();
        assert_eq!(i.msg.properties[BORN_HOST], "worker-7");
        let broker = pocketmq::Broker::memory();
        broker.producer("p").unwrap().send(i.msg).unwrap();
        let c = broker
            .consumer(pocketmq::ConsumerConfig::new("c", "orders"))
            .unwrap();
        let got = c.receive(1, std::time::Duration::from_secs(1)).unwrap();
        let pb = to_proto(&got[0], Resource::default(), Delivery::default());
        let sp = pb.system_properties.unwrap();
        assert_eq!(sp.born_host, "worker-7");
        assert!(pb.user_properties.is_empty());
        // A client may not claim the property as its own.
        assert_eq!(
            code(msg(|m| {
                m.user_properties.insert(BORN_HOST.into(), "x".into());
            })),
            Code::IllegalMessagePropertyKey
        );
    }

    #[test]
    fn groups_and_delivery_times_set_the_type() {
        let i = to_engine(
            msg(|m| sys(m).message_group = Some("g1".into())),
            &Limits::default(),
            0,
            None,
        )
        .unwrap();
        assert_eq!(i.kind, MessageType::Fifo);
        assert_eq!(i.msg.sharding_key.as_deref(), Some("g1"));
        let i = to_engine(
            msg(|m| sys(m).delivery_timestamp = Some(timestamp(5_000))),
            &Limits::default(),
            1_000,
            None,
        )
        .unwrap();
        assert_eq!(i.kind, MessageType::Delay);
        assert_eq!(i.msg.delay, pocketmq::Delay::At(5_000));
    }

    #[test]
    fn each_bad_field_has_its_code() {
        assert_eq!(code(msg(|m| m.body.clear())), Code::MessageBodyEmpty);
        assert_eq!(
            code(msg(|m| m.body = vec![0; 4 * 1024 * 1024 + 1])),
            Code::MessageBodyTooLarge
        );
        assert_eq!(
            code(msg(|m| sys(m).tag = Some("a||b".into()))),
            Code::IllegalMessageTag
        );
        assert_eq!(
            code(msg(|m| sys(m).tag = Some(" ".into()))),
            Code::IllegalMessageTag
        );
        assert_eq!(
            code(msg(|m| sys(m).keys = vec![" ".into()])),
            Code::IllegalMessageKey
        );
        assert_eq!(
            code(msg(|m| sys(m).message_group = Some("g".repeat(64)))),
            Code::IllegalMessageGroup
        );
        assert_eq!(
            code(msg(|m| {
                for i in 0..129 {
                    m.user_properties.insert(format!("k{i}"), "v".into());
                }
            })),
            Code::MessagePropertiesTooLarge
        );
        assert_eq!(
            code(msg(|m| sys(m).message_group = Some(String::new()))),
            Code::IllegalMessageGroup
        );
        let far = 1_000_000 + 31 * 24 * 3600 * 1000;
        assert_eq!(
            code(msg(|m| sys(m).delivery_timestamp = Some(timestamp(far)))),
            Code::IllegalDeliveryTime
        );
        for name in ["UNIQ_KEY", "BORN_TIMESTAMP", "MSG_TYPE", "DLQ_ORIGIN_TOPIC"] {
            assert_eq!(
                code(msg(|m| {
                    m.user_properties.insert(name.into(), "x".into());
                })),
                Code::IllegalMessagePropertyKey,
                "{name}"
            );
        }
        assert_eq!(
            code(msg(|m| {
                m.user_properties.insert("k".into(), "x".repeat(17 * 1024));
            })),
            Code::MessagePropertiesTooLarge
        );
        // As Apache counts: names and values, the tag and the keys, up to 16 KiB.
        let sized = |extra: usize| {
            msg(move |m| {
                sys(m).tag = Some("tag".into());
                sys(m).keys = vec!["key".into()];
                sys(m).message_group = Some("group".into());
                let value = "v".repeat(16 * 1024 - 3 - 3 - 1 + extra);
                m.user_properties.insert("k".into(), value);
            })
        };
        assert!(to_engine(sized(0), &Limits::default(), 1_000_000, None).is_ok());
        assert_eq!(code(sized(1)), Code::MessagePropertiesTooLarge);
        assert_eq!(
            code(msg(|m| {
                sys(m).message_group = Some("g".into());
                sys(m).delivery_timestamp = Some(timestamp(2_000_000));
            })),
            Code::MessagePropertyConflictWithType
        );
        assert_eq!(
            code(msg(|m| sys(m).message_type = MessageType::Fifo as i32)),
            Code::MessagePropertyConflictWithType
        );
        assert_eq!(
            code(msg(|m| sys(m).message_id = "a b".into())),
            Code::IllegalMessageId
        );
        assert_eq!(
            code(msg(|m| sys(m).message_id = "0".repeat(32))),
            Code::IllegalMessageId
        );
        assert_eq!(code(msg(|m| m.topic = None)), Code::IllegalTopic);
    }

    #[test]
    fn stored_messages_go_out_with_the_client_id_and_an_md5() {
        let broker = pocketmq::Broker::memory();
        let p = broker.producer("p").unwrap();
        let i = to_engine(
            msg(|m| {
                sys(m).tag = Some("paid".into());
                sys(m).message_group = Some("g".into());
                m.user_properties.insert("k".into(), "v".into());
            }),
            &Limits::default(),
            0,
            None,
        )
        .unwrap();
        let r = p.send(i.msg).unwrap();
        let c = broker
            .consumer(pocketmq::ConsumerConfig::new("c", "orders"))
            .unwrap();
        let got = c.receive(1, std::time::Duration::from_secs(1)).unwrap();
        assert_eq!(got[0].queue_offset, r.queue_offset);
        let out = to_proto(&got[0], Resource::default(), Delivery::default());
        let s = out.system_properties.unwrap();
        assert_eq!(s.message_id, "01AABBCCDDEEFF00112233445566778899");
        assert_eq!(s.message_type, MessageType::Fifo as i32);
        assert_eq!(s.message_group.as_deref(), Some("g"));
        assert_eq!(s.tag.as_deref(), Some("paid"));
        assert_eq!(
            s.body_digest.unwrap().checksum,
            "5D41402ABC4B2A76B9719D911017C592"
        );
        assert_eq!(out.user_properties.len(), 1);
        assert_eq!(out.user_properties["k"], "v");
    }

    /// A delayed message comes out as DELAY with its delivery time, as from Apache.
    #[test]
    fn delivered_delay_messages_carry_their_type_and_time() {
        let clock = pocketmq::ManualClock::new(1_000_000);
        let broker = pocketmq::Broker::open(pocketmq::BrokerConfig {
            clock: std::sync::Arc::new(clock.clone()),
            background: false,
            ..pocketmq::BrokerConfig::default()
        })
        .unwrap();
        let i = to_engine(
            msg(|m| sys(m).delivery_timestamp = Some(timestamp(1_005_000))),
            &Limits::default(),
            1_000_000,
            None,
        )
        .unwrap();
        broker.producer("p").unwrap().send(i.msg).unwrap();
        clock.advance_ms(5_000);
        broker.tick().unwrap();
        let c = broker
            .consumer(pocketmq::ConsumerConfig::new("c", "orders"))
            .unwrap();
        let got = c.receive(1, std::time::Duration::from_secs(1)).unwrap();
        let s = to_proto(&got[0], Resource::default(), Delivery::default())
            .system_properties
            .unwrap();
        assert_eq!(s.message_type, MessageType::Delay as i32);
        assert_eq!(s.delivery_timestamp, Some(timestamp(1_005_000)));
    }

    #[test]
    fn compressed_bodies_come_back_as_sent() {
        use std::io::Write;
        let body = b"order 42 paid ".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&body).unwrap();
        let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zl.write_all(&body).unwrap();
        for packed in [gz.finish().unwrap(), zl.finish().unwrap()] {
            assert_eq!(decompressed(packed, Encoding::Gzip as i32), body);
        }
        // Not compressed: as it came, whatever it says.
        assert_eq!(decompressed(body.clone(), Encoding::Identity as i32), body);
        assert_eq!(
            decompressed(b"plain".to_vec(), Encoding::Gzip as i32),
            b"plain"
        );
    }
}
