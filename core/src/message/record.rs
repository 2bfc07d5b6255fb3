//! The CommitLog record: RocketMQ's V1/V2 layout, byte for byte (big-endian, 91 bytes
//! of fixed fields for IPv4 hosts), plus a trailing `__CRC32#` property that covers
//! the whole record so recovery can tell a torn or stale tail from data.
//!
//! Invariants: `encoded_len` is exactly what `encode` writes; `parse` never reads past
//! the slice it is given and never panics on arbitrary bytes.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::message::MessageExt;

pub(crate) const MAGIC_V1: u32 = 0xDAA3_20A7;
pub(crate) const MAGIC_V2: u32 = 0xDAA3_20AB;
pub(crate) const BLANK_MAGIC: u32 = 0xCBD4_3194;
/// An append needs this much room left after it for the end-of-segment blank marker.
pub(crate) const END_FILE_MIN_BLANK: usize = 8;
/// Fixed fields of a V1 record with IPv4 hosts.
pub(crate) const FIXED_LEN: usize = 91;
/// The largest properties block RocketMQ accepts (a signed short).
pub(crate) const MAX_PROPERTIES_LEN: usize = 32767;

pub(crate) const SYS_FLAG_TX_COMMIT: u32 = 0x8;

const NAME_SEP: u8 = 1;
const PROP_SEP: u8 = 2;
/// `__CRC32#` + 10 digits + separators: RocketMQ's reserved tail property.
const CRC_PROP: &[u8] = b"__CRC32#";
const CRC_TAIL_LEN: usize = CRC_PROP.len() + 1 + 10 + 1;

const OFF_TOTAL: usize = 0;
const OFF_MAGIC: usize = 4;
const OFF_BODY_CRC: usize = 8;
const OFF_QUEUE_ID: usize = 12;
const OFF_FLAG: usize = 16;
const OFF_QUEUE_OFFSET: usize = 20;
const OFF_PHYS: usize = 28;
const OFF_SYS_FLAG: usize = 36;
const OFF_BORN_TS: usize = 40;
const OFF_STORE_TS: usize = 56;
const OFF_RECONSUME: usize = 72;
const OFF_PREPARED: usize = 76;
const OFF_BODY_LEN: usize = 84;

/// Property names the engine sets (RocketMQ's `MessageConst`).
pub(crate) mod prop {
    pub const TAGS: &str = "TAGS";
    pub const KEYS: &str = "KEYS";
    pub const UNIQ_KEY: &str = "UNIQ_KEY";
    pub const DELAY: &str = "DELAY";
    pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
    pub const REAL_TOPIC: &str = "REAL_TOPIC";
    pub const REAL_QID: &str = "REAL_QID";
    pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
    pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
    pub const TRAN_MSG: &str = "TRAN_MSG";
    pub const PGROUP: &str = "PGROUP";
    pub const TRANSACTION_CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
    pub const SHARDING_KEY: &str = "__SHARDINGKEY";
}

/// Names a user may not set: the engine owns them.
pub(crate) const RESERVED_PROPERTIES: &[&str] = &[
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
    "CHECK_IMMUNITY_TIME_IN_SECONDS",
    "MIN_OFFSET",
    "MAX_OFFSET",
    "CONSUME_START_TIME",
    "__SHARDINGKEY",
    "__CRC32#",
    "__transactionId__",
];

/// Everything of a record that is known before it is placed in the log.
#[derive(Debug, Clone)]
pub(crate) struct RecordSpec {
    pub topic: std::sync::Arc<str>,
    pub queue_id: u32,
    pub sys_flag: u32,
    pub born_ts: u64,
    pub reconsume_times: u32,
    pub prepared_tx_offset: u64,
    pub body: Bytes,
    /// Encoded `name\x01value\x02` pairs, without the CRC tail.
    pub properties: Vec<u8>,
}

impl RecordSpec {
    /// The record's size in the log.
    pub fn encoded_len(&self) -> usize {
        let topic_len = if self.topic.len() > 127 { 2 } else { 1 };
        FIXED_LEN - 1
            + topic_len
            + self.body.len()
            + self.topic.len()
            + self.properties.len()
            + CRC_TAIL_LEN
    }

    /// Writes the record into `buf` (exactly `encoded_len` bytes) at queue offset `qo`,
    /// physical offset `phys`, stored at `store_ts`.
    pub fn encode(&self, buf: &mut [u8], qo: u64, phys: u64, store_ts: u64) {
        let len = self.encoded_len();
        debug_assert_eq!(buf.len(), len);
        let v2 = self.topic.len() > 127;
        put_u32(buf, OFF_TOTAL, len as u32);
        put_u32(buf, OFF_MAGIC, if v2 { MAGIC_V2 } else { MAGIC_V1 });
        put_u32(buf, OFF_BODY_CRC, crc32(&self.body));
        put_u32(buf, OFF_QUEUE_ID, self.queue_id);
        put_u32(buf, OFF_FLAG, 0);
        put_u64(buf, OFF_QUEUE_OFFSET, qo);
        put_u64(buf, OFF_PHYS, phys);
        put_u32(buf, OFF_SYS_FLAG, self.sys_flag);
        put_u64(buf, OFF_BORN_TS, self.born_ts);
        // Born host and store host: 127.0.0.1:0, as an embedded engine has no network.
        buf[48..56].copy_from_slice(&[127, 0, 0, 1, 0, 0, 0, 0]);
        put_u64(buf, OFF_STORE_TS, store_ts);
        buf[64..72].copy_from_slice(&[127, 0, 0, 1, 0, 0, 0, 0]);
        put_u32(buf, OFF_RECONSUME, self.reconsume_times);
        put_u64(buf, OFF_PREPARED, self.prepared_tx_offset);
        put_u32(buf, OFF_BODY_LEN, self.body.len() as u32);
        let mut pos = OFF_BODY_LEN + 4;
        buf[pos..pos + self.body.len()].copy_from_slice(&self.body);
        pos += self.body.len();
        if v2 {
            buf[pos..pos + 2].copy_from_slice(&(self.topic.len() as u16).to_be_bytes());
            pos += 2;
        } else {
            buf[pos] = self.topic.len() as u8;
            pos += 1;
        }
        buf[pos..pos + self.topic.len()].copy_from_slice(self.topic.as_bytes());
        pos += self.topic.len();
        let props_len = self.properties.len() + CRC_TAIL_LEN;
        buf[pos..pos + 2].copy_from_slice(&(props_len as u16).to_be_bytes());
        pos += 2;
        buf[pos..pos + self.properties.len()].copy_from_slice(&self.properties);
        pos += self.properties.len();
        buf[pos..pos + CRC_PROP.len()].copy_from_slice(CRC_PROP);
        pos += CRC_PROP.len();
        buf[pos] = NAME_SEP;
        pos += 1;
        // The CRC covers everything before its own digits.
        let crc = crc32(&buf[..pos]);
        write_digits(&mut buf[pos..pos + 10], crc);
        buf[pos + 10] = PROP_SEP;
    }
}

/// What `parse` found at a position.
#[derive(Debug)]
pub(crate) enum Parsed<'a> {
    Record(RecordView<'a>),
    /// The end-of-segment marker: the rest of the segment is empty.
    Blank,
    /// Not a valid record: torn, zeroed, stale or corrupt.
    Invalid,
}

/// A record in place, fields decoded lazily from the slice.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordView<'a> {
    pub buf: &'a [u8],
    pub queue_id: u32,
    pub queue_offset: u64,
    pub phys: u64,
    pub sys_flag: u32,
    pub born_ts: u64,
    pub store_ts: u64,
    pub reconsume_times: u32,
    pub prepared_tx_offset: u64,
    body_at: usize,
    body_len: usize,
    topic: &'a str,
    props_at: usize,
    props_len: usize,
}

/// Reads the record at the start of `buf`, which sits at physical offset `at`.
/// `verify` also checks both CRCs (recovery after an unclean exit).
pub(crate) fn parse(buf: &[u8], at: u64, verify: bool) -> Parsed<'_> {
    if buf.len() < 8 {
        return Parsed::Invalid;
    }
    let total = get_u32(buf, OFF_TOTAL) as usize;
    let magic = get_u32(buf, OFF_MAGIC);
    if magic == BLANK_MAGIC {
        return if total == buf.len() || total >= END_FILE_MIN_BLANK && total <= buf.len() {
            Parsed::Blank
        } else {
            Parsed::Invalid
        };
    }
    if (magic != MAGIC_V1 && magic != MAGIC_V2) || total < FIXED_LEN || total > buf.len() {
        return Parsed::Invalid;
    }
    let rec = &buf[..total];
    if get_u64(rec, OFF_PHYS) != at {
        return Parsed::Invalid;
    }
    let body_len = get_u32(rec, OFF_BODY_LEN) as usize;
    let body_at = OFF_BODY_LEN + 4;
    let Some(mut pos) = body_at.checked_add(body_len) else {
        return Parsed::Invalid;
    };
    let topic_len_width = if magic == MAGIC_V2 { 2 } else { 1 };
    if pos + topic_len_width > total {
        return Parsed::Invalid;
    }
    let topic_len = if magic == MAGIC_V2 {
        u16::from_be_bytes([rec[pos], rec[pos + 1]]) as usize
    } else {
        rec[pos] as usize
    };
    pos += topic_len_width;
    let topic_at = pos;
    pos += topic_len;
    if pos + 2 > total {
        return Parsed::Invalid;
    }
    let props_len = u16::from_be_bytes([rec[pos], rec[pos + 1]]) as usize;
    pos += 2;
    let props_at = pos;
    if pos + props_len != total {
        return Parsed::Invalid;
    }
    let Ok(topic) = std::str::from_utf8(&rec[topic_at..topic_at + topic_len]) else {
        return Parsed::Invalid;
    };
    if verify {
        if crc32(&rec[body_at..body_at + body_len]) != get_u32(rec, OFF_BODY_CRC) {
            return Parsed::Invalid;
        }
        if props_len < CRC_TAIL_LEN {
            return Parsed::Invalid;
        }
        let digits_at = total - 11;
        let tail = &rec[total - CRC_TAIL_LEN..];
        if &tail[..CRC_PROP.len()] != CRC_PROP
            || rec[digits_at - 1] != NAME_SEP
            || rec[total - 1] != PROP_SEP
            || read_digits(&rec[digits_at..digits_at + 10]) != Some(crc32(&rec[..digits_at]))
        {
            return Parsed::Invalid;
        }
    }
    Parsed::Record(RecordView {
        buf: rec,
        queue_id: get_u32(rec, OFF_QUEUE_ID),
        queue_offset: get_u64(rec, OFF_QUEUE_OFFSET),
        phys: at,
        sys_flag: get_u32(rec, OFF_SYS_FLAG),
        born_ts: get_u64(rec, OFF_BORN_TS),
        store_ts: get_u64(rec, OFF_STORE_TS),
        reconsume_times: get_u32(rec, OFF_RECONSUME),
        prepared_tx_offset: get_u64(rec, OFF_PREPARED),
        body_at,
        body_len,
        topic,
        props_at,
        props_len,
    })
}

impl<'a> RecordView<'a> {
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn topic(&self) -> &'a str {
        self.topic
    }
    pub fn body_range(&self) -> (usize, usize) {
        (self.body_at, self.body_len)
    }
    pub fn body(&self) -> &'a [u8] {
        &self.buf[self.body_at..self.body_at + self.body_len]
    }
    /// The encoded properties, without the CRC tail.
    pub fn raw_properties(&self) -> &'a [u8] {
        let raw = &self.buf[self.props_at..self.props_at + self.props_len];
        match raw.len().checked_sub(CRC_TAIL_LEN) {
            Some(end) if raw[end..].starts_with(CRC_PROP) => &raw[..end],
            _ => raw,
        }
    }
    pub fn prop(&self, name: &str) -> Option<&'a str> {
        prop_value(self.raw_properties(), name)
    }
    pub fn tags(&self) -> Option<&'a str> {
        self.prop(prop::TAGS)
    }

    /// The message as users see it. `body` is the record's body (a zero-copy slice
    /// of the segment where the backend allows).
    pub fn to_message(self, nonce: u64, body: Bytes) -> MessageExt {
        let mut properties = BTreeMap::new();
        let mut tags = None;
        let mut keys = Vec::new();
        let mut msg_id = None;
        for (k, v) in props_iter(self.raw_properties()) {
            match k {
                prop::TAGS => tags = Some(v.to_string()),
                prop::KEYS => {
                    keys = v
                        .split(' ')
                        .filter(|k| !k.is_empty())
                        .map(String::from)
                        .collect()
                }
                prop::UNIQ_KEY => msg_id = Some(v.to_string()),
                _ => {
                    properties.insert(k.to_string(), v.to_string());
                }
            }
        }
        // Messages waiting in an engine topic show where they are going; retries show
        // the topic they were first sent to.
        let stored = self.topic();
        let mut topic = stored.to_string();
        let mut queue_id = self.queue_id;
        if matches!(
            stored,
            crate::topic::SCHEDULE_TOPIC
                | crate::topic::TIMER_TOPIC
                | crate::topic::TRANS_HALF_TOPIC
        ) {
            if let Some(real) = properties.get(prop::REAL_TOPIC) {
                topic = real.clone();
                queue_id = properties
                    .get(prop::REAL_QID)
                    .and_then(|q| q.parse().ok())
                    .unwrap_or(queue_id);
            }
        }
        if topic.starts_with(crate::topic::RETRY_PREFIX) {
            if let Some(original) = properties.get(prop::RETRY_TOPIC) {
                topic = original.clone();
            }
        }
        MessageExt {
            msg_id: msg_id.unwrap_or_else(|| make_msg_id(nonce, self.phys)),
            topic,
            queue_id,
            queue_offset: self.queue_offset,
            commitlog_offset: self.phys,
            body,
            tags,
            keys,
            properties,
            born_timestamp: self.born_ts,
            store_timestamp: self.store_ts,
            reconsume_times: self.reconsume_times,
            sys_flag: self.sys_flag,
            prepared_transaction_offset: self.prepared_tx_offset,
            receipt: None,
        }
    }
}

/// Java's `String.hashCode` over UTF-16 code units, as RocketMQ's tag codes use.
pub(crate) fn java_hash(s: &str) -> i32 {
    let mut h: i32 = 0;
    for unit in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    h
}

/// The ConsumeQueue tag code of a tag (0 for none), as RocketMQ stores it.
pub(crate) fn tag_code(tags: Option<&str>) -> u64 {
    tags.map_or(0, |t| java_hash(t) as i64 as u64)
}

/// RocketMQ's masked CRC32.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data) & 0x7FFF_FFFF
}

/// A message id: the store's 64-bit nonce and the record's physical offset, 32 hex digits.
pub(crate) fn make_msg_id(nonce: u64, offset: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = [0u8; 32];
    for (i, v) in [nonce, offset].into_iter().enumerate() {
        for (k, slot) in out[i * 16..i * 16 + 16].iter_mut().enumerate() {
            *slot = HEX[((v >> (60 - 4 * k)) & 0xF) as usize];
        }
    }
    std::str::from_utf8(&out).unwrap_or_default().to_owned()
}

/// The (nonce, physical offset) of a message id, if it is one.
pub(crate) fn parse_msg_id(id: &str) -> Option<(u64, u64)> {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let nonce = u64::from_str_radix(&id[..16], 16).ok()?;
    let offset = u64::from_str_radix(&id[16..], 16).ok()?;
    Some((nonce, offset))
}

/// Appends one `name\x01value\x02` pair.
pub(crate) fn push_prop(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.push(NAME_SEP);
    out.extend_from_slice(value.as_bytes());
    out.push(PROP_SEP);
}

/// The pairs of an encoded properties block (pairs with an empty value are dropped, as
/// RocketMQ's decoder does).
pub(crate) fn props_iter(raw: &[u8]) -> impl Iterator<Item = (&str, &str)> {
    raw.split(|b| *b == PROP_SEP).filter_map(|pair| {
        let sep = pair.iter().position(|b| *b == NAME_SEP)?;
        let name = std::str::from_utf8(&pair[..sep]).ok()?;
        let value = std::str::from_utf8(&pair[sep + 1..]).ok()?;
        (!name.is_empty() && !value.is_empty()).then_some((name, value))
    })
}

pub(crate) fn prop_value<'a>(raw: &'a [u8], name: &str) -> Option<&'a str> {
    // Compare names as bytes; only the value found is checked as text.
    raw.split(|b| *b == PROP_SEP).find_map(|pair| {
        let sep = pair.iter().position(|b| *b == NAME_SEP)?;
        if &pair[..sep] != name.as_bytes() || sep + 1 == pair.len() {
            return None;
        }
        std::str::from_utf8(&pair[sep + 1..]).ok()
    })
}

fn write_digits(out: &mut [u8], mut v: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

fn read_digits(d: &[u8]) -> Option<u32> {
    let mut v: u64 = 0;
    for &b in d {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (b - b'0') as u64;
    }
    u32::try_from(v).ok()
}

fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_be_bytes());
}
pub(crate) fn get_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(buf[at..at + 4].try_into().unwrap_or([0; 4]))
}
pub(crate) fn get_u64(buf: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(buf[at..at + 8].try_into().unwrap_or([0; 8]))
}

/// Writes the end-of-segment marker over `buf` (at least 8 bytes).
pub(crate) fn write_blank(buf: &mut [u8], remaining: usize) {
    put_u32(buf, OFF_TOTAL, remaining as u32);
    put_u32(buf, OFF_MAGIC, BLANK_MAGIC);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(body: &[u8], topic: &str) -> RecordSpec {
        let mut properties = Vec::new();
        push_prop(&mut properties, prop::TAGS, "paid");
        push_prop(&mut properties, prop::KEYS, "k1 k2");
        push_prop(&mut properties, "color", "blue");
        RecordSpec {
            topic: topic.into(),
            queue_id: 3,
            sys_flag: 0,
            born_ts: 1000,
            reconsume_times: 2,
            prepared_tx_offset: 0,
            body: Bytes::copy_from_slice(body),
            properties,
        }
    }

    #[test]
    fn encode_then_parse_round_trips() {
        let s = spec(b"hello", "orders");
        let mut buf = vec![0u8; s.encoded_len()];
        s.encode(&mut buf, 7, 4096, 2000);
        let Parsed::Record(r) = parse(&buf, 4096, true) else {
            panic!("a fresh record parses")
        };
        assert_eq!((r.queue_id, r.queue_offset, r.phys), (3, 7, 4096));
        assert_eq!((r.born_ts, r.store_ts, r.reconsume_times), (1000, 2000, 2));
        assert_eq!(r.topic(), "orders");
        assert_eq!(r.body(), b"hello");
        assert_eq!(r.tags(), Some("paid"));
        let m = r.to_message(1, Bytes::from_static(b"hello"));
        assert_eq!(m.keys, vec!["k1", "k2"]);
        assert_eq!(m.properties.get("color").map(String::as_str), Some("blue"));
        assert!(!m.properties.contains_key("__CRC32#"));
        assert_eq!(
            buf.len(),
            FIXED_LEN + 5 + 6 + s.properties.len() + CRC_TAIL_LEN
        );
    }

    #[test]
    fn long_topics_use_the_v2_magic() {
        let topic = "t".repeat(200);
        let s = spec(b"x", &topic);
        let mut buf = vec![0u8; s.encoded_len()];
        s.encode(&mut buf, 0, 0, 1);
        assert_eq!(get_u32(&buf, OFF_MAGIC), MAGIC_V2);
        let Parsed::Record(r) = parse(&buf, 0, true) else {
            panic!("v2 parses")
        };
        assert_eq!(r.topic(), topic);
    }

    #[test]
    fn damage_is_detected() {
        let s = spec(b"hello world", "orders");
        let mut buf = vec![0u8; s.encoded_len()];
        s.encode(&mut buf, 0, 64, 1);
        // Wrong position: a stale record copied elsewhere.
        assert!(matches!(parse(&buf, 0, true), Parsed::Invalid));
        // Torn: shorter than the header says.
        assert!(matches!(
            parse(&buf[..buf.len() - 1], 64, true),
            Parsed::Invalid
        ));
        assert!(matches!(parse(&buf[..6], 64, true), Parsed::Invalid));
        // A flipped body byte fails the body CRC; a flipped header byte the record CRC.
        let mut b = buf.clone();
        b[OFF_BODY_LEN + 5] ^= 1;
        assert!(matches!(parse(&b, 64, true), Parsed::Invalid));
        assert!(matches!(parse(&b, 64, false), Parsed::Record(_)));
        let mut h = buf.clone();
        h[OFF_BORN_TS + 7] ^= 1;
        assert!(matches!(parse(&h, 64, true), Parsed::Invalid));
        // Zeros are not a record.
        assert!(matches!(parse(&[0u8; 200], 0, true), Parsed::Invalid));
    }

    #[test]
    fn java_hash_matches_java() {
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("Aa"), 2112);
        assert_eq!(java_hash("BB"), 2112);
        assert_eq!(java_hash("hello"), 99162322);
        assert_eq!(java_hash("TagA"), 2598919);
    }

    #[test]
    fn msg_ids_round_trip() {
        let id = make_msg_id(0xABCD, 123456);
        assert_eq!(id.len(), 32);
        assert_eq!(parse_msg_id(&id), Some((0xABCD, 123456)));
        assert_eq!(parse_msg_id("xyz"), None);
    }

    proptest::proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
            at in 0u64..1000,
            verify in proptest::bool::ANY,
        ) {
            if let Parsed::Record(r) = parse(&bytes, at, verify) {
                let _ = (r.topic(), r.body(), r.tags(), r.to_message(1, Bytes::new()));
            }
        }

        #[test]
        fn damaging_any_byte_of_a_record_is_caught_by_verify(
            flip in 0usize..200,
            mask in 1u8..=255,
        ) {
            let s = spec(b"some body bytes", "orders");
            let mut buf = vec![0u8; s.encoded_len()];
            s.encode(&mut buf, 3, 512, 9);
            let i = flip % buf.len();
            buf[i] ^= mask;
            proptest::prop_assert!(!matches!(parse(&buf, 512, true), Parsed::Record(_)));
        }
    }

    #[test]
    fn empty_values_are_dropped_like_rocketmq() {
        let mut p = Vec::new();
        push_prop(&mut p, "a", "");
        push_prop(&mut p, "b", "1");
        assert_eq!(props_iter(&p).collect::<Vec<_>>(), vec![("b", "1")]);
    }
}
