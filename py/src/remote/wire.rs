//! What `connect()` puts on the wire and reads back, with no network in it: the
//! request headers (client id, date, the `authorization` signature of the RocketMQ 5
//! clients), message ids in the clients' 34-hex form, engine messages to protocol
//! messages and back, and protocol status codes to the engine's errors.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use pocketmq::{Delay, ErrorKind, MessageExt};
use pocketmq_server::proto::{
    Code, Encoding, Message as PbMessage, MessageType, Resource, Status, SystemProperties,
};
use prost_types::Timestamp;

/// Why a remote call failed: the kind of the engine's error it stands for (the
/// same Python class as the embedded broker raises), or a call the protocol cannot
/// carry (`NotSupported`), with the message to show.
#[derive(Debug)]
pub struct Failure {
    pub kind: Option<ErrorKind>,
    pub message: String,
}

impl Failure {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Failure {
        Failure {
            kind: Some(kind),
            message: message.into(),
        }
    }

    pub fn not_supported(message: impl Into<String>) -> Failure {
        Failure {
            kind: None,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(ErrorKind::InvalidArgument, message)
    }

    pub fn closed() -> Failure {
        Failure::new(ErrorKind::Closed, "closed")
    }

    /// As the engine's error (for the listener threads, which speak only that).
    pub fn into_engine(self) -> pocketmq::Error {
        use pocketmq::Error as E;
        match self.kind {
            Some(ErrorKind::TopicNotFound) => E::TopicNotFound(self.message),
            Some(ErrorKind::InvalidReceiptHandle) => E::InvalidReceiptHandle(self.message),
            Some(ErrorKind::Closed) => E::Closed,
            Some(ErrorKind::InvalidArgument) | None => E::InvalidArgument(self.message),
            _ => E::Io(std::io::Error::other(self.message)),
        }
    }
}

impl From<pocketmq::Error> for Failure {
    fn from(e: pocketmq::Error) -> Failure {
        Failure::new(e.kind(), e.to_string())
    }
}

pub type Outcome<T> = Result<T, Failure>;

/// A failure of the connection itself (refused, reset, timed out): an `IoError`.
pub fn unavailable(what: impl std::fmt::Display) -> Failure {
    Failure::new(ErrorKind::Io, format!("the server: {what}"))
}

/// A random 64-bit number (a fresh `RandomState` is seeded from the OS).
pub fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(now_ms());
    h.finish()
}

/// The wall clock: a client stamps what it sends with real time (a ManualClock has
/// no meaning over the network).
#[allow(clippy::disallowed_methods)]
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `yyyyMMddTHHmmssZ` in UTC: the `x-mq-date-time` header, which the signature covers.
pub fn date_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (h, mi, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    // Days since the epoch to a civil date (H. Hinnant's algorithm).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// Message ids as the RocketMQ 5 clients make them: 17 bytes in hex, version `01`,
/// then a 6-byte process tag (the clients use a MAC address), the pid, seconds since
/// 2021-01-01 and a sequence number.
pub struct IdMaker {
    prefix: String,
    seq: AtomicU32,
}

const EPOCH_2021_S: u64 = 1_609_459_200;

impl IdMaker {
    pub fn new() -> IdMaker {
        let tag = random_u64() & 0xFFFF_FFFF_FFFF;
        let pid = std::process::id() & 0xFFFF;
        IdMaker {
            prefix: format!("01{tag:012X}{pid:04X}"),
            seq: AtomicU32::new(random_u64() as u32),
        }
    }

    pub fn next(&self) -> String {
        let secs = (now_ms() / 1000).saturating_sub(EPOCH_2021_S) as u32;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{}{secs:08X}{seq:08X}", self.prefix)
    }
}

pub fn timestamp(ms: u64) -> Timestamp {
    Timestamp {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

pub fn ts_ms(t: Option<&Timestamp>) -> u64 {
    t.map_or(0, |t| {
        (t.seconds.max(0) as u64) * 1000 + (t.nanos.max(0) as u64) / 1_000_000
    })
}

pub fn pb_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

pub fn std_duration(d: &prost_types::Duration) -> Duration {
    Duration::new(
        d.seconds.max(0) as u64,
        d.nanos.clamp(0, 999_999_999) as u32,
    )
}

/// A resource (topic or group) in the connection's namespace.
pub fn resource(namespace: &str, name: &str) -> Resource {
    Resource {
        resource_namespace: namespace.to_string(),
        name: name.to_string(),
    }
}

/// RocketMQ's delay levels (pocketmq's default), for `delay_level` sends: the 5.x
/// protocol carries only a delivery time.
fn level_ms(level: u32) -> u64 {
    let levels: Vec<u64> = pocketmq::DEFAULT_DELAY_LEVELS
        .split_whitespace()
        .filter_map(|s| pocketmq_server::parse_duration(s).ok())
        .map(|d| d.as_millis() as u64)
        .collect();
    let i = (level as usize).clamp(1, levels.len()) - 1;
    levels[i]
}

/// An engine message (as the send options built it) as a SendMessage entry.
pub fn to_proto(
    namespace: &str,
    m: pocketmq::Message,
    message_id: String,
    transactional: bool,
) -> Outcome<PbMessage> {
    if m.queue_id.is_some() {
        return Err(Failure::not_supported(
            "send(queue_id=...): the RocketMQ 5 protocol lets the server choose the queue; use sharding_key",
        ));
    }
    if m.dedup_id.is_some() {
        return Err(Failure::not_supported(
            "send(dedup_id=...): the RocketMQ 5 protocol carries no deduplication id",
        ));
    }
    let now = now_ms();
    let deliver_at = match m.delay {
        Delay::None | Delay::Level(0) => None,
        Delay::Level(n) => Some(now + level_ms(n)),
        Delay::At(ms) => Some(ms.max(now)),
        Delay::After(ms) => Some(now + ms),
    };
    if deliver_at.is_some() && m.sharding_key.is_some() {
        return Err(Failure::not_supported(
            "send(sharding_key=..., with a delay): a RocketMQ 5 message is FIFO or delayed, \
             not both",
        ));
    }
    let kind = if transactional {
        MessageType::Transaction
    } else if m.sharding_key.is_some() {
        MessageType::Fifo
    } else if deliver_at.is_some() {
        MessageType::Delay
    } else {
        MessageType::Normal
    };
    let mut user_properties: std::collections::HashMap<String, String> =
        m.properties.into_iter().collect();
    // (Encoded ones, `name\x01value\x02` each, come after the map's, as in a record.)
    for pair in m.encoded_properties.split_terminator('\u{2}') {
        if let Some((k, v)) = pair.split_once('\u{1}') {
            user_properties.insert(k.to_string(), v.to_string());
        }
    }
    Ok(PbMessage {
        topic: Some(resource(namespace, &m.topic)),
        user_properties,
        system_properties: Some(SystemProperties {
            tag: m.tags,
            keys: m.keys,
            message_id,
            body_encoding: Encoding::Identity as i32,
            message_type: kind as i32,
            born_timestamp: Some(timestamp(now)),
            born_host: hostname(),
            delivery_timestamp: deliver_at.map(timestamp),
            message_group: m.sharding_key,
            ..SystemProperties::default()
        }),
        body: m.body.to_vec(),
    })
}

/// A delivered message as the engine's type (what `pocketmq.Message` wraps).
pub fn from_proto(m: PbMessage) -> MessageExt {
    let sys = m.system_properties.unwrap_or_default();
    let mut out = MessageExt::default();
    out.msg_id = sys.message_id;
    out.topic = m.topic.map(|t| t.name).unwrap_or_default();
    out.queue_id = sys.queue_id.max(0) as u32;
    out.queue_offset = sys.queue_offset.unwrap_or(0).max(0) as u64;
    out.body = Bytes::from(pocketmq_server::decompressed(m.body, sys.body_encoding));
    out.tags = sys.tag;
    out.keys = sys.keys;
    out.properties = m.user_properties.into_iter().collect();
    if let Some(g) = sys.message_group {
        // The sharding key, as the engine shows it among the properties.
        out.properties.insert("__SHARDINGKEY".into(), g);
    }
    out.born_timestamp = ts_ms(sys.born_timestamp.as_ref());
    out.store_timestamp = ts_ms(sys.store_timestamp.as_ref());
    let attempt = sys.delivery_attempt.unwrap_or(1).max(1) as u32;
    out.delivery_attempt = attempt;
    out.reconsume_times = attempt - 1;
    out.receipt_handle = sys.receipt_handle;
    out
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether a status is a success (`OK`, or `MULTIPLE_RESULTS` whose entries say more).
pub fn ok(s: Option<&Status>) -> bool {
    s.is_none_or(|s| s.code == Code::Ok as i32 || s.code == Code::MultipleResults as i32)
}

/// The error for a status that is not OK; `what` names the call.
pub fn failure(s: Option<&Status>, what: &str) -> Failure {
    let Some(s) = s else {
        return unavailable(format!("{what}: no status in the answer"));
    };
    let code = Code::try_from(s.code).unwrap_or(Code::Unspecified);
    // (A server that names the resource itself is not named twice.)
    let msg = if s.message.starts_with(what) {
        format!("{} ({})", s.message, code.as_str_name())
    } else {
        format!("{what}: {} ({})", s.message, code.as_str_name())
    };
    let kind = match code {
        Code::TopicNotFound => ErrorKind::TopicNotFound,
        Code::MessageBodyTooLarge | Code::PayloadTooLarge => ErrorKind::MessageTooLarge,
        // Refusals of what the request carried, outside the 40000s.
        Code::MessageBodyEmpty
        | Code::MessagePropertiesTooLarge
        | Code::RequestHeaderFieldsTooLarge => ErrorKind::InvalidArgument,
        Code::InvalidReceiptHandle => ErrorKind::InvalidReceiptHandle,
        Code::NotImplemented | Code::Unsupported | Code::VersionUnsupported => {
            return Failure::not_supported(msg)
        }
        Code::Unauthorized | Code::Forbidden => ErrorKind::Io,
        c if (40000..42000).contains(&(c as i32)) => ErrorKind::InvalidArgument,
        _ => ErrorKind::Io,
    };
    Failure::new(kind, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_civil() {
        assert_eq!(date_time(0), "19700101T000000Z");
        assert_eq!(date_time(1_700_000_000_000), "20231114T221320Z");
        assert_eq!(date_time(951_782_400_000), "20000229T000000Z");
    }

    #[test]
    fn ids_are_34_hex() {
        let ids = IdMaker::new();
        let (a, b) = (ids.next(), ids.next());
        assert_eq!(a.len(), 34);
        assert!(a.starts_with("01") && a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
