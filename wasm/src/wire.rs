//! The byte layout by which send results and delivered messages cross to JS.
//! Building a JS object field by field costs one boundary call per field; instead
//! the binding writes a result into one reusable buffer in wasm memory and returns
//! its address, and the wrapper (`wasm/js/wire.js`) reads it with one `DataView`.
//! Both sides must agree on this layout; nothing here decides messaging semantics.
//! The other way, a body may be written by JS into a fixed staging area, which
//! saves the separate allocation call a `Uint8Array` argument costs.
//!
//! All numbers are little-endian. A string or byte run is a `u32` length and the
//! bytes (UTF-8); an absent string has length `u32::MAX`.
//!
//! Send results: `f64 next_due` (the broker's next deferred job, epoch ms, or -1),
//! `u32 count`, then per result `f64 queue_offset, f64 commitlog_offset,
//! u32 queue_id, u32 status (0 SEND_OK, 1 FLUSH_DISK_TIMEOUT; plus 0x100 for a
//! duplicate), str msg_id`.
//!
//! Messages to send (JS to engine, staged or passed as bytes): `u32 count`, then
//! per message `u16 options` (a bit for each option present), `bytes body`, and the
//! options present in bit order: tags `str` (0x01), keys `u32 n` + n `str` (0x02),
//! properties `u32 n` + n (`str` name, `str` value) (0x04; with 0x200 also set, one
//! `str` instead: the text a record holds them in, `name \x01 value \x02` each,
//! which the wrapper writes when no name or value is empty or holds a separator),
//! sharding key `str`
//! (0x08), then `f64` each: queue id (0x10), delay level (0x20), deliver-at epoch
//! ms (0x40), delay ms (0x80); then dedup id `str` (0x100). The wrapper checks
//! types; values are checked here and in the engine.
//!
//! Messages delivered: `u32 total` (bytes, this field included), `u32 count`, then per message `f64 queue_offset, f64 commitlog_offset,
//! f64 born_timestamp, f64 store_timestamp, u32 queue_id, u32 reconsume_times,
//! u32 delivery_attempt, str msg_id, str-or-absent receipt_handle, str topic, str-or-absent tags, u32 n + n str keys, u32 n + n (str
//! name, str value) properties, bytes body`.

use std::cell::RefCell;

use wasm_bindgen::JsValue;

use pocketmq::{Message, MessageBuilder, MessageExt, OptionValue, SendResult, SendStatus};

use crate::errors::invalid;

/// Size of the staging area: bodies up to this size are written there by JS.
pub(crate) const STAGE_SIZE: usize = 64 * 1024;

thread_local! {
    /// The one output buffer; its contents are valid until the next call that writes it.
    static OUT: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(4096));
    /// Where the wrapper writes a body before a staged send (it never moves: its
    /// length is fixed), so a send needs no separate allocation call from JS.
    static STAGE: RefCell<Vec<u8>> = RefCell::new(vec![0; STAGE_SIZE]);
}

/// The address of the staging area (`STAGE_SIZE` bytes) in wasm memory.
pub(crate) fn stage_ptr() -> u32 {
    STAGE.with(|s| s.borrow().as_ptr() as u32)
}

/// The messages for `topic` encoded in the first `len` staged bytes.
pub(crate) fn staged_messages(topic: &str, len: u32) -> Result<Sent, JsValue> {
    STAGE.with(|s| match s.borrow().get(..len as usize) {
        Some(buf) => read_send(buf, topic),
        None => Err(invalid(format!(
            "a staged send is at most {STAGE_SIZE} bytes"
        ))),
    })
}

/// The messages of a send: one (a single send, with no list made for it) or several.
// Held for one call on the stack: a box would bring back the allocation it saves.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Sent {
    One(Message),
    Batch(Vec<Message>),
}

/// `read_messages`, with one message apart.
pub(crate) fn read_send(buf: &[u8], topic: &str) -> Result<Sent, JsValue> {
    let mut r = Reader { buf, at: 0 };
    if r.u32()? == 1 {
        return Ok(Sent::One(read_message(&mut r, topic)?));
    }
    read_messages(buf, topic).map(Sent::Batch)
}

/// The option bit that says a message's properties (0x04) are in the text a record
/// holds them in (`str`), not in pairs.
const ENCODED_PROPERTIES: u16 = 0x200;

/// The numeric send options in the order of their bits (0x10 on): set by name, so the
/// engine's checks of ranges and of "at most one delay" apply.
const NUMBER_OPTIONS: [&str; 4] = ["queue_id", "delay_level", "deliver_at", "delay"];

/// Reads the encoded messages of a send (see the module docs) for `topic`. The text
/// options are set on the message's fields directly (a builder step moves the whole
/// message, and the engine checks every text when it is sent).
pub(crate) fn read_messages(buf: &[u8], topic: &str) -> Result<Vec<Message>, JsValue> {
    let mut r = Reader { buf, at: 0 };
    let count = r.u32()?;
    let mut out = Vec::with_capacity(count.min(1024) as usize);
    for _ in 0..count {
        out.push(read_message(&mut r, topic)?);
    }
    Ok(out)
}

/// Reads the next encoded message of a send.
fn read_message(r: &mut Reader<'_>, topic: &str) -> Result<Message, JsValue> {
    let o = r.take(2)?;
    let options = u16::from_le_bytes([o[0], o[1]]);
    let mut m = Message::new(topic, r.bytes()?.to_vec());
    if options & 0x01 != 0 {
        m.tags = Some(r.str()?);
    }
    if options & 0x02 != 0 {
        let n = r.u32()?;
        m.keys = (0..n).map(|_| r.str()).collect::<Result<_, _>>()?;
    }
    if options & 0x04 != 0 && options & ENCODED_PROPERTIES != 0 {
        // The text a record holds them in, made by the wrapper from names and
        // values that are non-empty and free of separators; the engine checks it.
        m.encoded_properties = text(r.bytes()?)?;
    } else if options & 0x04 != 0 {
        // Encoded as a record holds them (`Message::encoded_properties`): no map
        // or strings. A name or value the encoding cannot carry (empty, or
        // holding a separator) goes to the map instead, for the engine's checks
        // to refuse with their usual words. The text gets room at once for what
        // usually follows, so it is not moved as it grows.
        let n = r.u32()?;
        let mut encoded = Vec::with_capacity(if n == 0 { 0 } else { r.remaining().min(256) });
        for _ in 0..n {
            let (name, value) = (r.bytes()?, r.bytes()?);
            let pair = encoded.len();
            if !(push_encodable(&mut encoded, name, 1) && push_encodable(&mut encoded, value, 2)) {
                encoded.truncate(pair);
                m.properties.insert(text(name)?, text(value)?);
            }
        }
        m.encoded_properties =
            String::from_utf8(encoded).map_err(|_| invalid("a send's text is not UTF-8"))?;
    }
    if options & 0x08 != 0 {
        m.sharding_key = Some(r.str()?);
    }
    if options & 0xf0 != 0 {
        let mut b = MessageBuilder::from(m);
        for (bit, name) in NUMBER_OPTIONS.iter().enumerate() {
            if options & (0x10 << bit) != 0 {
                b = b
                    .set_option(name, OptionValue::Number(r.f64()?))
                    .map_err(|e| {
                        let key = crate::errors::js_option_name(name, *name == "delay");
                        crate::errors::option_error(e, name, &key)
                    })?;
            }
        }
        m = b.build();
    }
    if options & 0x100 != 0 {
        m.dedup_id = Some(r.str()?);
    }
    Ok(m)
}

/// Appends `b` and then `sep` to `out` when `b` can go into a record's encoding of
/// properties as it is (non-empty, free of the separators 1 and 2): false, with
/// `out` to be cut back, when not. Byte by byte: short texts, for which a bulk copy
/// costs wasm a call out of its code.
fn push_encodable(out: &mut Vec<u8>, b: &[u8], sep: u8) -> bool {
    out.reserve(b.len() + 1);
    let mut plain = !b.is_empty();
    for &c in b {
        plain &= c != 1 && c != 2;
        out.push(c);
    }
    out.push(sep);
    plain
}

/// Text of a send, as a string.
fn text(b: &[u8]) -> Result<String, JsValue> {
    String::from_utf8(b.to_vec()).map_err(|_| invalid("a send's text is not UTF-8"))
}

/// Bounds-checked reads of an encoded send: a short or garbled buffer is an error,
/// never a panic.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], JsValue> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.buf.len());
        let end = end.ok_or_else(|| invalid("a send's encoding is cut short"))?;
        let b = &self.buf[self.at..end];
        self.at = end;
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32, JsValue> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn f64(&mut self) -> Result<f64, JsValue> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(f64::from_le_bytes(b))
    }
    fn remaining(&self) -> usize {
        self.buf.len() - self.at
    }
    fn bytes(&mut self) -> Result<&'a [u8], JsValue> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn str(&mut self) -> Result<String, JsValue> {
        text(self.bytes()?)
    }
}

/// Fills the output buffer with `write` and returns its address in wasm memory.
fn emit(write: impl FnOnce(&mut Vec<u8>)) -> u32 {
    OUT.with(|out| {
        let mut out = out.borrow_mut();
        out.clear();
        write(&mut out);
        out.as_ptr() as u32
    })
}

fn f64_(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn u32_(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn len(out: &mut Vec<u8>, n: usize) {
    // Lengths above u32::MAX - 1 cannot occur in wasm32 memory.
    u32_(out, u32::try_from(n).unwrap_or(u32::MAX - 1));
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    len(out, b.len());
    out.extend_from_slice(b);
}

/// Send results, with the broker's next due time so the wrapper re-arms its timer
/// only when deferred work changed. A result's flags: the status in the low byte,
/// 0x100 a duplicate, 0x200 a recall handle after the id.
pub(crate) fn send_results(results: &[SendResult], next_due: Option<u64>) -> u32 {
    emit(|out| {
        f64_(out, next_due.map_or(-1.0, |t| t as f64));
        len(out, results.len());
        for r in results {
            f64_(out, r.queue_offset as f64);
            f64_(out, r.commitlog_offset as f64);
            u32_(out, r.queue_id);
            let status = match r.status {
                SendStatus::SendOk => 0,
                SendStatus::FlushDiskTimeout => 1,
            };
            let duplicate = if r.duplicate { 0x100 } else { 0 };
            let recall = if r.recall_handle.is_some() { 0x200 } else { 0 };
            u32_(out, status | duplicate | recall);
            bytes(out, r.msg_id.as_bytes());
            if let Some(h) = &r.recall_handle {
                bytes(out, h.as_bytes());
            }
        }
    })
}

/// Delivered or looked-up messages.
pub(crate) fn messages(msgs: &[MessageExt]) -> u32 {
    emit(|out| {
        let need: usize = msgs
            .iter()
            .map(|m| {
                104 + m.topic.len()
                    + m.body.len()
                    + m.msg_id.len()
                    + m.receipt_handle.as_ref().map_or(0, String::len)
            })
            .sum();
        out.reserve(need);
        u32_(out, 0);
        len(out, msgs.len());
        for m in msgs {
            f64_(out, m.queue_offset as f64);
            f64_(out, m.commitlog_offset as f64);
            f64_(out, m.born_timestamp as f64);
            f64_(out, m.store_timestamp as f64);
            u32_(out, m.queue_id);
            u32_(out, m.reconsume_times);
            u32_(out, m.delivery_attempt);
            bytes(out, m.msg_id.as_bytes());
            match &m.receipt_handle {
                Some(h) => bytes(out, h.as_bytes()),
                None => u32_(out, u32::MAX),
            }
            bytes(out, m.topic.as_bytes());
            match &m.tags {
                Some(t) => bytes(out, t.as_bytes()),
                None => u32_(out, u32::MAX),
            }
            len(out, m.keys.len());
            for k in &m.keys {
                bytes(out, k.as_bytes());
            }
            len(out, m.properties.len());
            for (k, v) in &m.properties {
                bytes(out, k.as_bytes());
                bytes(out, v.as_bytes());
            }
            bytes(out, &m.body);
        }
        let total = u32::try_from(out.len()).unwrap_or(u32::MAX);
        out[..4].copy_from_slice(&total.to_le_bytes());
    })
}
