//! The CommitLog record: RocketMQ's V1/V2 layout, byte for byte (big-endian, 91 bytes
//! of fixed fields for IPv4 hosts), plus a trailing `__CRC32#` property that covers
//! the whole record so recovery can tell a torn or stale tail from data. A memory
//! store, which nothing recovers, leaves both CRCs zero.
//!
//! Invariants: `encoded_len` is exactly what `encode` writes; `parse` never reads past
//! the slice it is given and never panics on arbitrary bytes.

use bytes::Bytes;

use super::properties::{NAME_SEP, PROP_SEP};

pub(crate) const MAGIC_V1: u32 = 0xDAA3_20A7;
pub(crate) const MAGIC_V2: u32 = 0xDAA3_20AB;
pub(crate) const BLANK_MAGIC: u32 = 0xCBD4_3194;
/// An append needs this much room left after it for the end-of-segment blank marker.
pub(crate) const END_FILE_MIN_BLANK: usize = 8;
/// Fixed fields of a V1 record with IPv4 hosts.
pub(crate) const FIXED_LEN: usize = 91;

pub(crate) const SYS_FLAG_TX_COMMIT: u32 = 0x8;
/// A record of an atomic block (`atomic.rs`); the block's last one also has
/// `SYS_FLAG_ATOMIC_LAST`.
pub(crate) const SYS_FLAG_ATOMIC: u32 = 1 << 20;
pub(crate) const SYS_FLAG_ATOMIC_LAST: u32 = 1 << 21;
/// A copy `move_backlog` or `redrive` made: it carries its original's id, and `get`
/// finds it by that id once the original is gone.
pub(crate) const SYS_FLAG_MOVED: u32 = 1 << 22;

/// The flags a copy of a record (retry, dead letter, delayed or moved message) keeps:
/// all but the atomic-block marks. A copy is appended alone; with the marks, recovery
/// would take it for a block cut short and drop it.
pub(crate) fn copied_flags(sys_flag: u32) -> u32 {
    sys_flag & !(SYS_FLAG_ATOMIC | SYS_FLAG_ATOMIC_LAST)
}

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
    /// The dedup window's key of its `DEDUP_ID`, computed by the send that made it
    /// (not stored: dispatch hashes the property itself when this is None).
    pub dedup: Option<crate::dedup::Key>,
    /// Where `properties` holds what dispatch reads, when the send that encoded them
    /// knows (else `Found::UNKNOWN`: dispatch looks for it).
    pub found: super::properties::Found,
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
    /// physical offset `phys`, stored at `store_ts`; its body CRC and record CRC are
    /// computed when `crc`, else left zero (a memory store's records, which no
    /// recovery ever reads).
    pub fn encode(&self, buf: &mut [u8], qo: u64, phys: u64, store_ts: u64, crc: bool) {
        let len = self.encoded_len();
        debug_assert_eq!(buf.len(), len);
        let v2 = self.topic.len() > 127;
        put_u32(buf, OFF_TOTAL, len as u32);
        put_u32(buf, OFF_MAGIC, if v2 { MAGIC_V2 } else { MAGIC_V1 });
        let body_crc = if crc {
            super::crc::crc32(&self.body)
        } else {
            0
        };
        put_u32(buf, OFF_BODY_CRC, body_crc & MASK);
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
        let body_at = pos;
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
        let digits = if crc {
            let body = body_at..body_at + self.body.len();
            super::crc::record_crc(&buf[..pos], body, body_crc) & MASK
        } else {
            0
        };
        write_digits(&mut buf[pos..pos + 10], digits);
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
    if verify && !verified(rec, props_len) {
        return Parsed::Invalid;
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

/// Whether a record's CRC holds. The record CRC (the `__CRC32#` tail every record
/// of ours carries) covers every byte before its digits, the body and the body
/// CRC included, so one pass checks everything.
fn verified(rec: &[u8], props_len: usize) -> bool {
    let total = rec.len();
    if props_len < CRC_TAIL_LEN {
        return false;
    }
    let digits_at = total - 11;
    let tail = &rec[total - CRC_TAIL_LEN..];
    &tail[..CRC_PROP.len()] == CRC_PROP
        && rec[digits_at - 1] == NAME_SEP
        && rec[total - 1] == PROP_SEP
        && read_digits(&rec[digits_at..digits_at + 10]) == Some(crc32(&rec[..digits_at]))
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
}

/// RocketMQ's masked CRC32.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    super::crc::crc32(data) & MASK
}

/// RocketMQ stores CRCs with the top bit cleared.
const MASK: u32 = 0x7FFF_FFFF;

fn write_digits(out: &mut [u8], mut v: u32) {
    if v == 0 {
        // A memory store's records (no CRC) write this every time.
        out.fill(b'0');
        return;
    }
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

/// Writes the end-of-segment marker over `buf` (zeros where it has less than the 8
/// bytes a marker takes, which no append leaves).
pub(crate) fn write_blank(buf: &mut [u8], remaining: usize) {
    if buf.len() < END_FILE_MIN_BLANK {
        buf.fill(0);
        return;
    }
    put_u32(buf, OFF_TOTAL, remaining as u32);
    put_u32(buf, OFF_MAGIC, BLANK_MAGIC);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::properties::{self, prop};

    fn spec(body: &[u8], topic: &str) -> RecordSpec {
        let mut properties = Vec::new();
        properties::push(&mut properties, prop::TAGS, "paid");
        properties::push(&mut properties, prop::KEYS, "k1 k2");
        properties::push(&mut properties, "color", "blue");
        RecordSpec {
            topic: topic.into(),
            queue_id: 3,
            sys_flag: 0,
            born_ts: 1000,
            reconsume_times: 2,
            prepared_tx_offset: 0,
            body: Bytes::copy_from_slice(body),
            properties,
            dedup: None,
            found: crate::message::properties::Found::UNKNOWN,
        }
    }

    #[test]
    fn encode_then_parse_round_trips() {
        let s = spec(b"hello", "orders");
        let mut buf = vec![0u8; s.encoded_len()];
        s.encode(&mut buf, 7, 4096, 2000, true);
        let Parsed::Record(r) = parse(&buf, 4096, true) else {
            panic!("a fresh record parses")
        };
        assert_eq!((r.queue_id, r.queue_offset, r.phys), (3, 7, 4096));
        assert_eq!((r.born_ts, r.store_ts, r.reconsume_times), (1000, 2000, 2));
        assert_eq!(r.topic(), "orders");
        assert_eq!(r.body(), b"hello");
        assert_eq!(
            properties::value(r.raw_properties(), prop::TAGS),
            Some("paid")
        );
        let m = crate::MessageExt::from_record(
            &r,
            &crate::message::id::Nonces::new(1, Vec::new()),
            Bytes::from_static(b"hello"),
        );
        assert_eq!(m.keys, vec!["k1", "k2"]);
        assert_eq!(m.properties.get("color").map(String::as_str), Some("blue"));
        assert!(!m.properties.contains_key("__CRC32#"));
        assert_eq!(
            buf.len(),
            FIXED_LEN + 5 + 6 + s.properties.len() + CRC_TAIL_LEN
        );
    }

    #[test]
    fn a_record_without_crcs_has_the_same_layout_and_never_passes_a_check() {
        let s = spec(b"hello", "orders");
        let (mut with, mut without) = (vec![0u8; s.encoded_len()], vec![0u8; s.encoded_len()]);
        s.encode(&mut with, 7, 4096, 2000, true);
        s.encode(&mut without, 7, 4096, 2000, false);
        let digits = with.len() - 11..with.len() - 1;
        assert_eq!(&without[OFF_BODY_CRC..OFF_BODY_CRC + 4], &[0; 4]);
        assert_eq!(&without[digits.clone()], b"0000000000");
        // Only the two CRC fields differ.
        let mut patched = without.clone();
        patched[OFF_BODY_CRC..OFF_BODY_CRC + 4]
            .copy_from_slice(&with[OFF_BODY_CRC..OFF_BODY_CRC + 4]);
        patched[digits.clone()].copy_from_slice(&with[digits]);
        assert_eq!(patched, with);
        let Parsed::Record(r) = parse(&without, 4096, false) else {
            panic!("its layout parses")
        };
        assert_eq!((r.queue_offset, r.body()), (7, &b"hello"[..]));
        assert!(matches!(parse(&without, 4096, true), Parsed::Invalid));
    }

    #[test]
    fn long_topics_use_the_v2_magic() {
        let topic = "t".repeat(200);
        let s = spec(b"x", &topic);
        let mut buf = vec![0u8; s.encoded_len()];
        s.encode(&mut buf, 0, 0, 1, true);
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
        s.encode(&mut buf, 0, 64, 1, true);
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

    proptest::proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
            at in 0u64..1000,
            verify in proptest::bool::ANY,
        ) {
            if let Parsed::Record(r) = parse(&bytes, at, verify) {
                let _ = (r.topic(), r.body(), crate::MessageExt::from_record(&r, &crate::message::id::Nonces::new(1, Vec::new()), Bytes::new()));
            }
        }

        #[test]
        fn damaging_any_byte_of_a_record_is_caught_by_verify(
            flip in 0usize..200,
            mask in 1u8..=255,
        ) {
            let s = spec(b"some body bytes", "orders");
            let mut buf = vec![0u8; s.encoded_len()];
            s.encode(&mut buf, 3, 512, 9, true);
            let i = flip % buf.len();
            buf[i] ^= mask;
            proptest::prop_assert!(!matches!(parse(&buf, 512, true), Parsed::Record(_)));
        }
    }
}
