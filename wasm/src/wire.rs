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
//! u32 queue_id, u32 status (0 SEND_OK, 1 FLUSH_DISK_TIMEOUT), str msg_id`.
//!
//! Messages: `u32 total` (bytes, this field included), `u32 count`, then per message `f64 queue_offset, f64 commitlog_offset,
//! f64 born_timestamp, f64 store_timestamp, u32 queue_id, u32 reconsume_times,
//! str msg_id, str topic, str-or-absent tags, u32 n + n str keys, u32 n + n (str
//! name, str value) properties, bytes body`.

use std::cell::RefCell;

use pocketmq::{MessageExt, SendResult, SendStatus};

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

/// A copy of the first `len` staged bytes, if `len` fits.
pub(crate) fn staged(len: u32) -> Option<Vec<u8>> {
    STAGE.with(|s| s.borrow().get(..len as usize).map(<[u8]>::to_vec))
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
/// only when deferred work changed.
pub(crate) fn send_results(results: &[SendResult], next_due: Option<u64>) -> u32 {
    emit(|out| {
        f64_(out, next_due.map_or(-1.0, |t| t as f64));
        len(out, results.len());
        for r in results {
            f64_(out, r.queue_offset as f64);
            f64_(out, r.commitlog_offset as f64);
            u32_(out, r.queue_id);
            u32_(
                out,
                match r.status {
                    SendStatus::SendOk => 0,
                    SendStatus::FlushDiskTimeout => 1,
                },
            );
            bytes(out, r.msg_id.as_bytes());
        }
    })
}

/// Delivered or looked-up messages.
pub(crate) fn messages(msgs: &[MessageExt]) -> u32 {
    emit(|out| {
        let need: usize = msgs
            .iter()
            .map(|m| 96 + m.topic.len() + m.body.len() + m.msg_id.len())
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
            bytes(out, m.msg_id.as_bytes());
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
