//! Atomic consume-and-produce: a block's sends and acks go into the CommitLog as one
//! append, so after any crash either all of them hold or none does.
//!
//! The records of a block of more than one carry `SYS_FLAG_ATOMIC`, the last also
//! `SYS_FLAG_ATOMIC_LAST`; recovery keeps such a run only whole (`commitlog::recovery`).
//! Acks become records too: a classic consumer's as an entry of
//! `rmq_sys_ATOMIC_ACK` (below), a simple consumer's as a revive record. Replayed
//! after a crash, a classic ack above the group's persisted offset is remembered in
//! [`ReplayedAcks`], and the group's next reader skips it; a committed ack is never
//! delivered again.
//!
//! Ack record body, little-endian: `u16 n`, then per ack `u8 len + owner`,
//! `u8 len + topic`, `u32 queue`, `u64 queue offset`.

use std::collections::{BTreeSet, HashMap, HashSet};

use bytes::Bytes;
use rustc_hash::FxBuildHasher;

use crate::consumer::ProgressKey;
use crate::dedup::Key;
use crate::engine::Engine;
use crate::message::record::{RecordSpec, SYS_FLAG_ATOMIC, SYS_FLAG_ATOMIC_LAST};
use crate::message::Receipt;
use crate::topic;
use crate::{Error, Message, Result, SendResult, SendStatus};

/// Classic acks replayed from atomic blocks, above what the offsets file says, by
/// (owner, topic, queue): a reader of that queue skips them.
pub(crate) type ReplayedAcks = HashMap<ProgressKey, BTreeSet<u64>>;

/// One ack of a block.
#[derive(Debug, Clone)]
pub(crate) enum BlockAck {
    /// A classic consumer's (its handle) delivery.
    Classic { consumer: u64, receipt: Receipt },
    /// A simple consumer's (its member handle) delivery, by receipt handle.
    Simple { member: u64, handle: String },
}

/// The most acks one ack record holds (its count is a `u16`).
const ACKS_PER_RECORD: u16 = u16::MAX;
/// An ack record grows to about this many bytes at most; more acks go in the next.
const ACK_RECORD_BYTES: usize = 1 << 20;

/// Appends one ack to an ack record body being built (see the module docs); the
/// body starts with its count, which `ack_body_finish` writes.
fn ack_body_push(out: &mut Vec<u8>, owner: &str, t: &str, q: u32, qo: u64) {
    if out.is_empty() {
        out.extend_from_slice(&[0, 0]);
    }
    for s in [owner, t] {
        // Owners and topics are at most 255 bytes (checked when consumers join).
        let b = &s.as_bytes()[..s.len().min(255)];
        out.push(b.len() as u8);
        out.extend_from_slice(b);
    }
    out.extend_from_slice(&q.to_le_bytes());
    out.extend_from_slice(&qo.to_le_bytes());
}

/// Writes the count of `n` acks at the head of a body `ack_body_push` built.
fn ack_body_finish(out: &mut [u8], n: u16) {
    out[..2].copy_from_slice(&n.to_le_bytes());
}

/// The ack record body for `acks` (owner, topic, queue, offset).
#[cfg(test)]
fn ack_body(acks: &[(String, String, u32, u64)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (owner, t, q, qo) in acks {
        ack_body_push(&mut out, owner, t, *q, *qo);
    }
    if out.is_empty() {
        out.extend_from_slice(&[0, 0]);
    }
    ack_body_finish(&mut out, acks.len() as u16);
    out
}

/// The acks of an ack record; None when it is damaged.
pub(crate) fn parse_ack_body(body: &[u8]) -> Option<Vec<(String, String, u32, u64)>> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let b = body.get(at..at.checked_add(n)?)?;
        at += n;
        Some(b)
    };
    let n = u16::from_le_bytes(take(2)?.try_into().ok()?);
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let mut text = || -> Option<String> {
            let len = take(1)?[0] as usize;
            String::from_utf8(take(len)?.to_vec()).ok()
        };
        let (owner, t) = (text()?, text()?);
        let q = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let qo = u64::from_le_bytes(take(8)?.try_into().ok()?);
        out.push((owner, t, q, qo));
    }
    Some(out)
}

/// Remembers a replayed ack that the persisted offset of its queue does not cover.
pub(crate) fn replay_ack_record(
    body: &[u8],
    persisted: impl Fn(&str, &str, u32) -> Option<u64>,
    deleted_since: impl Fn(&str) -> bool,
    acks: &mut ReplayedAcks,
) {
    let Some(entries) = parse_ack_body(body) else {
        log::warn!("a damaged atomic ack record was skipped");
        return;
    };
    for (owner, t, q, qo) in entries {
        // An ack of a topic deleted since is not one of the topic created again.
        if deleted_since(&t) {
            continue;
        }
        if persisted(&t, &owner, q).is_none_or(|o| qo >= o) {
            acks.entry((owner, t, q)).or_default().insert(qo);
        }
    }
}

/// What makes two acks of a block the same delivery.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum AckedDelivery {
    Classic(u64, Receipt),
    Simple(String),
}

impl BlockAck {
    /// The delivery this ack names.
    pub(crate) fn delivery(&self) -> AckedDelivery {
        match self {
            BlockAck::Classic { consumer, receipt } => {
                AckedDelivery::Classic(*consumer, receipt.clone())
            }
            BlockAck::Simple { handle, .. } => AckedDelivery::Simple(handle.clone()),
        }
    }
}

impl Engine {
    /// Checks a block's acks: each names a delivery still held, once.
    pub(crate) fn check_block_acks(&self, acks: &[BlockAck], now: u64) -> Result<()> {
        // (A set, not a search of the acks before: a block may ack many thousands.)
        let mut seen = HashSet::with_hasher(FxBuildHasher);
        for a in acks {
            if acks.len() > 1 && !seen.insert(a.delivery()) {
                return Err(Error::invalid("the block acks this message twice"));
            }
            self.check_block_ack(a, now)?;
        }
        Ok(())
    }

    /// Checks that one ack of a block names a delivery still held.
    pub(crate) fn check_block_ack(&self, ack: &BlockAck, now: u64) -> Result<()> {
        match ack {
            BlockAck::Classic { consumer, receipt } => {
                if self.groups.held(*consumer, receipt)?.is_none() {
                    return Err(Error::invalid(format!(
                        "the message at queue offset {} is not held by this consumer \
                         (already acked, sent back at its ack deadline, or its queue \
                         moved to another member)",
                        receipt.queue_offset
                    )));
                }
            }
            BlockAck::Simple { member, handle } => {
                self.groups.pop.current(*member, handle, now)?;
            }
        }
        Ok(())
    }

    /// Applies a block: its sends (each checked by `Message::validate` when it was
    /// added) and acks as one append, then the acks in memory. Checks the acks
    /// first; on any error nothing is applied.
    pub fn commit_block(
        &mut self,
        sends: Vec<Message>,
        acks: &[BlockAck],
        rr: u32,
        now: u64,
    ) -> Result<Vec<SendResult>> {
        self.check_open()?;
        if !sends.is_empty() {
            self.check_room()?;
        }
        self.check_block_acks(acks, now)?;
        let mut sends = sends;
        let mut keys = std::mem::take(&mut self.key_buf);
        let mut specs = std::mem::take(&mut self.spec_buf);
        specs.clear();
        let repeats = self.drop_repeats(&mut sends, &mut keys, now, None);
        let stored = self.store_block(sends, &keys, acks, rr, now, &mut specs);
        self.recycle(&mut specs);
        self.spec_buf = specs;
        self.key_buf = keys;
        Ok(self.answer_repeats(stored?, repeats))
    }

    /// The records of a block's sends (`keys`: their dedup keys, as `build` takes
    /// them) and acks, appended as one; the results of the sends stored.
    fn store_block(
        &mut self,
        sends: Vec<Message>,
        keys: &[Option<Key>],
        acks: &[BlockAck],
        rr: u32,
        now: u64,
        specs: &mut Vec<RecordSpec>,
    ) -> Result<Vec<SendResult>> {
        // Each send's result, placed once the block is stored.
        let mut results = Vec::with_capacity(sends.len());
        let mut names = Vec::with_capacity(1);
        for (i, m) in sends.into_iter().enumerate() {
            let key = keys.get(i..=i).unwrap_or_default();
            let rr = rr.wrapping_add(i as u32);
            let (t, q) = self.build([m], key, rr, now, None, specs, &mut names)?;
            results.push(SendResult {
                msg_id: String::new(),
                topic: names.pop().unwrap_or_else(|| String::from(&*t)),
                queue_id: q,
                queue_offset: 0,
                commitlog_offset: 0,
                status: SendStatus::SendOk,
                transaction_state: None,
                duplicate: false,
                recall_handle: None,
            });
        }
        // Classic acks as records of up to ACKS_PER_RECORD acks (and about
        // ACK_RECORD_BYTES); simple ones with the revive ops buffered so far, so the
        // log has each delivery before its ack.
        let durable = self.store.backend.is_persistent();
        let mut classic = Vec::new();
        let mut n_classic = 0u16;
        let mut simple = Vec::new();
        let mut ack_topic = false;
        for a in acks {
            match a {
                BlockAck::Classic { consumer, receipt } => {
                    if !durable {
                        continue;
                    }
                    let slot = self.groups.held(*consumer, receipt)?;
                    if let Some((owner, t, q)) = slot.and_then(|s| self.groups.progress.key_at(s)) {
                        ack_body_push(&mut classic, owner, t, *q, receipt.queue_offset);
                        n_classic += 1;
                        if n_classic == ACKS_PER_RECORD || classic.len() >= ACK_RECORD_BYTES {
                            if !ack_topic {
                                self.store.system_queues(topic::ATOMIC_ACK_TOPIC, 1)?;
                                ack_topic = true;
                            }
                            ack_body_finish(&mut classic, n_classic);
                            let body = std::mem::take(&mut classic);
                            specs.push(system_record(topic::ATOMIC_ACK_TOPIC, body, now));
                            n_classic = 0;
                        }
                    }
                }
                BlockAck::Simple { member, handle } => {
                    let (g, q, offset, _, _) = self.groups.pop.current(*member, handle, now)?;
                    simple.push((g, q, offset));
                }
            }
        }
        if n_classic > 0 {
            ack_body_finish(&mut classic, n_classic);
            if !ack_topic {
                self.store.system_queues(topic::ATOMIC_ACK_TOPIC, 1)?;
            }
            specs.push(system_record(topic::ATOMIC_ACK_TOPIC, classic, now));
        }
        if let Some(body) = self.groups.pop.block_record(&simple) {
            self.store.system_queues(topic::REVIVE_TOPIC, 1)?;
            specs.push(system_record(topic::REVIVE_TOPIC, body, now));
        }
        if specs.len() > 1 {
            for s in specs.iter_mut() {
                s.sys_flag |= SYS_FLAG_ATOMIC;
            }
            if let Some(last) = specs.last_mut() {
                last.sys_flag |= SYS_FLAG_ATOMIC_LAST;
            }
        }
        if !specs.is_empty() {
            self.room_for(specs, true)?;
            self.put(specs, now)?;
        }
        // Stored: now the acks take effect here too.
        for a in acks {
            if let BlockAck::Classic { consumer, receipt } = a {
                self.groups.ack_receipt(*consumer, receipt)?;
            }
        }
        self.groups.pop.acked_in_block(&self.store, &simple);
        let nonce = self.store.ids.current();
        let delayed = specs.iter().any(|s| crate::engine::is_delayed(&s.topic));
        for (r, p) in results.iter_mut().zip(&self.store.placed) {
            r.msg_id = crate::message::id::make(nonce, p.phys);
            r.queue_offset = p.queue_offset;
            r.commitlog_offset = p.phys;
            if delayed {
                r.recall_handle = self.store.recall_handle_at(p.phys);
            }
        }
        Ok(results)
    }
}

pub(crate) fn system_record(topic: &str, body: Vec<u8>, now: u64) -> RecordSpec {
    RecordSpec {
        topic: topic.into(),
        queue_id: 0,
        sys_flag: 0,
        born_ts: now,
        reconsume_times: 0,
        prepared_tx_offset: 0,
        body: Bytes::from(body),
        properties: Vec::new(),
        dedup: None,
        found: crate::message::properties::Found::UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_records_round_trip_and_damage_is_refused() {
        let acks = vec![
            ("g".to_string(), "orders".to_string(), 3, 42),
            ("g@c1".to_string(), "t".to_string(), 0, u64::MAX),
        ];
        let body = ack_body(&acks);
        assert_eq!(parse_ack_body(&body), Some(acks));
        assert_eq!(parse_ack_body(&body[..body.len() - 1]), None);
        assert_eq!(parse_ack_body(&[]), None);
        let mut replayed = ReplayedAcks::default();
        replay_ack_record(
            &body,
            |_, o, _| (o == "g").then_some(50),
            |_| false,
            &mut replayed,
        );
        assert!(
            !replayed.contains_key(&("g".into(), "orders".into(), 3)),
            "below the offset"
        );
        assert!(replayed[&("g@c1".into(), "t".into(), 0)].contains(&u64::MAX));
    }
}
