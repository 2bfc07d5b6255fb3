//! Failed deliveries (RocketMQ's `consumerSendMsgBack`): a nacked message is copied
//! to `%RETRY%<group>` behind delay level `3 + reconsume_times`, or, past
//! `max_reconsume_times`, to `%DLQ%<group>`, keeping its body, tags, keys, properties
//! and id, with `RETRY_TOPIC` and `ORIGIN_MESSAGE_ID` added. An orderly consumer
//! retries in place after a pause instead. Broadcasting consumers do not retry.

use super::ConsumerGroups;
use crate::message::id;
use crate::message::properties::{self, prop};
use crate::message::record::{self, RecordSpec};
use crate::message_store::MessageStore;
use crate::topic::{DLQ_PREFIX, RETRY_PREFIX};
use crate::{Delay, MessageExt, MessageModel, Result};

/// How long an orderly queue pauses after a failure (RocketMQ's
/// `suspendCurrentQueueTimeMillis`).
const ORDERLY_PAUSE_MS: u64 = 1000;

/// What a nack leads to.
pub(crate) enum NackOutcome {
    /// Nothing to do (a stale receipt).
    Done,
    /// Ack the original: nothing is sent back (broadcasting drops a failed message,
    /// as RocketMQ does; or the original is gone).
    Ack,
    /// An orderly queue pauses until this time, then redelivers the message.
    Suspended(u64),
    /// Append this copy (to the retry topic after `delay`, or to the DLQ), then ack
    /// the original.
    SendBack(RecordSpec, Delay),
}

impl ConsumerGroups {
    /// Decides what a failed delivery of `msg` to consumer `handle` leads to; `delay`
    /// (ms) replaces the retry ladder's step (or an orderly queue's pause).
    pub fn nack(
        &mut self,
        store: &mut MessageStore,
        handle: u64,
        msg: &MessageExt,
        levels: u32,
        delay: Option<u64>,
        now: u64,
    ) -> Result<NackOutcome> {
        let Some((slot, r)) = self.progress_for(handle, msg)? else {
            return Ok(NackOutcome::Done);
        };
        let c = &self.consumers[&handle];
        if c.model == MessageModel::Broadcasting {
            // RocketMQ does not retry in broadcasting mode: the message is dropped.
            return Ok(NackOutcome::Ack);
        }
        let (group, max, orderly) = (c.group.clone(), c.max_reconsume_times, c.orderly);
        if orderly {
            let retries = self.progress.at(slot).map_or(0, |p| p.orderly_retries);
            if msg.reconsume_times < max && retries < max {
                if let Some(p) = self.progress.at_mut(slot) {
                    p.inflight.remove(r.queue_offset);
                    p.next = r.queue_offset;
                    p.orderly_retries += 1;
                    // The redelivery is a new delivery: a late ack of this one is stale.
                    p.new_epoch();
                    p.suspend_until = now.saturating_add(delay.unwrap_or(ORDERLY_PAUSE_MS));
                    return Ok(NackOutcome::Suspended(p.suspend_until));
                }
                return Ok(NackOutcome::Done);
            }
            return Ok(send_back(store, &group, msg, true, levels, delay)?
                .map_or(NackOutcome::Ack, |(s, d)| NackOutcome::SendBack(s, d)));
        }
        let to_dlq = msg.reconsume_times >= max;
        Ok(send_back(store, &group, msg, to_dlq, levels, delay)?
            .map_or(NackOutcome::Ack, |(s, d)| NackOutcome::SendBack(s, d)))
    }
}

/// A copy of `msg` for `%DLQ%<group>`; None when the original is gone (retention,
/// or the deletion of its topic).
pub(crate) fn dead_letter_copy(
    store: &mut MessageStore,
    group: &str,
    msg: &MessageExt,
) -> Result<Option<RecordSpec>> {
    Ok(send_back(store, group, msg, true, 1, None)?.map(|(s, _)| s))
}

/// A copy of `msg` for the group's retry topic (with the delay it waits) or DLQ;
/// None when the original is gone: removed by retention, or unreachable with its
/// topic, deleted since (the message, or the retry copy delivered, was stored).
fn send_back(
    store: &mut MessageStore,
    group: &str,
    msg: &MessageExt,
    to_dlq: bool,
    levels: u32,
    delay: Option<u64>,
) -> Result<Option<(RecordSpec, Delay)>> {
    let phys = msg.commitlog_offset;
    let nonce = store.ids.at(phys);
    let deleted = &store.deleted;
    let copy = store.commitlog.with_record(phys, |rv| {
        let raw = rv.raw_properties();
        let origin = properties::value(raw, prop::RETRY_TOPIC).unwrap_or(rv.topic());
        if deleted.hides(origin, phys) {
            return None;
        }
        let mut p = properties::copy_without(
            raw,
            &[
                prop::DELAY,
                prop::TIMER_DELIVER_MS,
                prop::REAL_TOPIC,
                prop::REAL_QID,
            ],
        );
        if properties::value(raw, prop::RETRY_TOPIC).is_none() {
            properties::push(&mut p, prop::RETRY_TOPIC, &msg.topic);
        }
        if properties::value(raw, prop::ORIGIN_MESSAGE_ID).is_none() {
            properties::push(&mut p, prop::ORIGIN_MESSAGE_ID, &msg.msg_id);
        }
        if properties::value(raw, prop::UNIQ_KEY).is_none() {
            properties::push(&mut p, prop::UNIQ_KEY, &id::make(nonce, phys));
        }
        let (at, len) = rv.body_range();
        Some((p, record::copied_flags(rv.sys_flag), rv.born_ts, at, len))
    });
    let Some((props, sys_flag, born_ts, at, len)) = copy.flatten() else {
        return Ok(None);
    };
    let body = store
        .commitlog
        .read(phys + at as u64, len)
        .unwrap_or_default();
    let (topic, delay) = if to_dlq {
        (format!("{DLQ_PREFIX}{group}"), Delay::None)
    } else if let Some(ms) = delay {
        (format!("{RETRY_PREFIX}{group}"), Delay::After(ms))
    } else {
        let level = 3u32.saturating_add(msg.reconsume_times).min(levels).max(1);
        (format!("{RETRY_PREFIX}{group}"), Delay::Level(level))
    };
    store.system_queues(&topic, 1)?;
    Ok(Some((
        RecordSpec {
            topic: topic.into(),
            queue_id: 0,
            sys_flag,
            born_ts,
            reconsume_times: msg.reconsume_times.saturating_add(1),
            prepared_tx_offset: 0,
            body,
            properties: props,
            dedup: None,
            found: crate::message::properties::Found::UNKNOWN,
        },
        delay,
    )))
}
