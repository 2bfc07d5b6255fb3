//! Producers: sending one message, or a batch as one append (transactional sends
//! are `transaction/producer.rs`). Queue selection: an explicit `queue_id`, else the
//! sharding key's hash, else round robin. Under `flush="sync"` a send returns once
//! its record is durable.

use std::sync::atomic::{AtomicU32, Ordering};

use super::Broker;
use crate::dedup::Key;
use crate::engine::Engine;
use crate::{FlushMode, Message, Result, SendResult, SendStatus};

/// A dedup id's key, computed before its send ([`Producer::prepare_dedup`]).
#[derive(Debug, Clone, Copy)]
pub struct PreparedDedup(Key);

/// Sends messages on behalf of a producer group.
pub struct Producer {
    pub(crate) broker: Broker,
    pub(crate) group: String,
    pub(crate) rr: AtomicU32,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl Producer {
    pub(super) fn new(broker: Broker, group: &str) -> Producer {
        Producer {
            broker,
            group: group.to_string(),
            rr: super::counter(),
        }
    }

    /// Stores one message. A dedup id's slot in the dedup window starts loading
    /// before the engine's lock is taken (`prepare_dedup`).
    pub fn send(&self, msg: Message) -> Result<SendResult> {
        if let Some(id) = msg.dedup_id.as_deref() {
            let key = self.prepare_dedup(&msg.topic, id).0;
            return self.send_keyed(msg, key);
        }
        // Not through a `send_keyed` taking an Option: that cost a plain send about 65
        // more instructions (a copy of the message), by callgrind.
        let (mut r, end) = self.stored(|e, rr, now| e.send_one(msg, rr, now, None, None))?;
        self.durable(end, std::slice::from_mut(&mut r))?;
        Ok(r)
    }

    /// `send` of `msg`, whose dedup id's key is `key`.
    #[inline(always)]
    fn send_keyed(&self, msg: Message, key: Key) -> Result<SendResult> {
        let (mut r, end) = self.stored(|e, rr, now| e.send_one(msg, rr, now, None, Some(key)))?;
        self.durable(end, std::slice::from_mut(&mut r))?;
        Ok(r)
    }

    /// Begins a send of a message with dedup id `dedup_id` to `topic` ahead of the
    /// send itself: computes the id's key and starts loading its place in the dedup
    /// window, which with a window of many ids is far from every cache. For a
    /// binding, which calls it as soon as it has read the id and then converts the
    /// rest of the message while the load is under way; pass the result to
    /// [`Producer::send_prepared`] with that message. Sends of other messages
    /// (another thread's) may come between.
    #[inline]
    pub fn prepare_dedup(&self, topic: &str, dedup_id: &str) -> PreparedDedup {
        let key = Key::of(topic, dedup_id);
        self.broker.inner.dedup_hint.prefetch_key(key);
        PreparedDedup(key)
    }

    /// `send` of `msg` with what [`Producer::prepare_dedup`] computed for its topic
    /// and dedup id. One prepared for another message (or for none) is noticed and
    /// ignored: the send is then exactly `send`.
    pub fn send_prepared(&self, msg: Message, prepared: PreparedDedup) -> Result<SendResult> {
        match &msg.dedup_id {
            Some(id) if prepared.0.is_of(&msg.topic, id) => self.send_keyed(msg, prepared.0),
            _ => self.send(msg),
        }
    }

    /// Stores several messages of one topic as one append, in one queue, with
    /// consecutive queue offsets.
    pub fn send_batch(&self, msgs: Vec<Message>) -> Result<Vec<SendResult>> {
        let (mut results, end) = self.stored(|e, rr, now| e.send(msgs, rr, now, None))?;
        self.durable(end, &mut results)?;
        Ok(results)
    }

    /// Cancels a delayed message (a delay level, `delay_ms` or `deliver_at`) before it
    /// is delivered, as RocketMQ 5.3's `recallMessage` does: `handle` is its send's
    /// `recall_handle`, `topic` the topic it was sent to. True when it was waiting
    /// and now never will be delivered; false when its time has come (delivered, or
    /// about to be), it was recalled already, or it is no longer retained.
    /// `InvalidArgument` for a handle that is not one, or one of another topic.
    /// The recall is as durable as a send under the store's flush mode.
    pub fn recall(&self, topic: &str, handle: &str) -> Result<bool> {
        let (recalled, end) = self.stored(|e, _, now| e.recall(topic, handle, now))?;
        if recalled {
            self.durable(end, &mut [])?;
        }
        Ok(recalled)
    }

    /// Runs a send on the engine, then wakes the flusher and the waiting consumers
    /// (under sync flushing, `durable` does). Returns what the send did and the
    /// CommitLog's end after it.
    fn stored<T>(&self, send: impl FnOnce(&mut Engine, u32, u64) -> Result<T>) -> Result<(T, u64)> {
        let b = &self.broker;
        b.check_process()?;
        let rr = self.rr.fetch_add(1, Ordering::Relaxed);
        let now = b.now();
        let mut e = b.inner.engine.lock();
        if now >= e.next_due && !e.closed && b.catches_up() {
            // Work came due (the clock moved): it runs first, as on any broker call.
            drop(e);
            b.catch_up()?;
            e = b.inner.engine.lock();
        }
        let sent = send(&mut e, rr, now)?;
        let end = e.store.commitlog.end();
        if b.inner.config.flush != FlushMode::Sync {
            b.wake(e);
        }
        Ok((sent, end))
    }

    /// Under sync flushing, waits until the CommitLog is on disk up to `end`, and
    /// marks the results FLUSH_DISK_TIMEOUT if that took too long.
    fn durable(&self, end: u64, results: &mut [SendResult]) -> Result<()> {
        let b = &self.broker;
        if b.inner.config.flush == FlushMode::Sync && !b.wait_durable(end)? {
            for r in results {
                r.status = SendStatus::FlushDiskTimeout;
            }
        }
        Ok(())
    }

    /// The producer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The broker this producer sends to.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }
}
