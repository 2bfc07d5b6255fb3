//! Consumers: long-polling receive (the long poll is `consumer/wait.rs`), acks and
//! nacks, leaving the group.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::Broker;
use crate::consumer::wait::{self, long_poll, Receiving};
use crate::engine::Engine;
use crate::{ConsumerConfig, Error, MessageExt, Result};

/// Receives messages for one consumer of a group.
pub struct Consumer {
    broker: Broker,
    handle: u64,
    config: ConsumerConfig,
    closed: AtomicBool,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("group", &self.config.group)
            .field("topic", &self.config.topic)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Consumer {
    /// Its broker and handle in the engine.
    pub(super) fn parts(&self) -> (&Broker, u64) {
        (&self.broker, self.handle)
    }

    pub(super) fn new(broker: Broker, handle: u64, config: ConsumerConfig) -> Consumer {
        Consumer {
            broker,
            handle,
            config,
            closed: AtomicBool::new(false),
        }
    }

    fn check_open(&self) -> Result<()> {
        self.broker.check_process()?;
        if self.is_closed() {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Up to `max` messages, waiting up to `timeout` (real time, whatever the broker's
    /// clock) for the first. Returns empty at the timeout, or when the consumer or the
    /// broker closes while waiting. A zero timeout never blocks.
    pub fn receive(&self, max: usize, timeout: Duration) -> Result<Vec<MessageExt>> {
        let r = self.start_receive(max, Some(timeout))?;
        loop {
            if let Some(msgs) = self.receive_step(&r, None)? {
                return Ok(msgs);
            }
        }
    }

    /// Starts a receive of up to `max` messages ending by `timeout` (None: only when
    /// messages come or a close ends it). Fails with `Closed` after a close.
    pub fn start_receive(&self, max: usize, timeout: Option<Duration>) -> Result<Receiving> {
        self.check_open()?;
        Ok(Receiving::new(max, timeout))
    }

    /// Waits at most `slice` (None: as long as the receive may) for `r` to end:
    /// Some(messages), or Some(empty) at its deadline or after a close; None when the
    /// slice ended first. A zero slice looks once and never blocks.
    pub fn receive_step(
        &self,
        r: &Receiving,
        slice: Option<Duration>,
    ) -> Result<Option<Vec<MessageExt>>> {
        let handle = self.handle;
        let ack_timeout = self.config.ack_timeout_ms;
        long_poll(
            &self.broker,
            &self.closed,
            r,
            slice,
            !self.config.orderly,
            |e, max, visible, now| {
                let Engine {
                    store,
                    groups,
                    next_due,
                    ..
                } = e;
                let msgs = groups.receive(store, handle, max, visible, now)?;
                // Their ack deadline is deferred work: a host that sleeps until the
                // next due time (JS timers, the background thread) must wake for it.
                if let (Some(t), false) = (ack_timeout, msgs.is_empty()) {
                    *next_due = (*next_due).min(now.saturating_add(t));
                }
                Ok(msgs)
            },
        )
    }

    /// Calls `callback` once: at once if a receive might find messages now, else when
    /// one could (a send, a delay coming due, close). Lets an event loop (asyncio, JS)
    /// wait without a thread.
    pub fn on_ready(&self, callback: Box<dyn FnOnce() + Send>) {
        let handle = self.handle;
        wait::on_ready(&self.broker, &self.closed, callback, |e, visible, now| {
            e.groups.may_have_messages(&e.store, handle, visible, now)
        });
    }

    /// Marks a message done: never delivered to this group again.
    pub fn ack(&self, msg: &MessageExt) -> Result<()> {
        self.ack_all(std::slice::from_ref(msg))
    }

    /// Marks several messages done under one lock (a receive batch, say).
    pub fn ack_all(&self, msgs: &[MessageExt]) -> Result<()> {
        self.check_open()?;
        let mut e = self.broker.engine_due()?;
        msgs.iter().try_for_each(|m| e.ack(self.handle, m))?;
        // An acked orderly queue, or room under max_in_flight: wake receivers.
        self.broker.wake(e);
        Ok(())
    }

    /// A failed delivery: the message comes back later via the group's retry topic
    /// (after delay level 3 + reconsume_times), or after a pause in place for an
    /// orderly consumer; past `max_reconsume_times` it goes to `%DLQ%<group>`.
    pub fn nack(&self, msg: &MessageExt) -> Result<()> {
        self.nack_with(msg, None)
    }

    /// A nack whose retry comes after `delay` instead of the ladder's step (any
    /// duration up to the broker's `timer_max_delay`; an orderly consumer pauses the
    /// queue this long). It still counts as a reconsume.
    pub fn nack_after(&self, msg: &MessageExt, delay: Duration) -> Result<()> {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.nack_with(msg, Some(ms))
    }

    fn nack_with(&self, msg: &MessageExt, delay: Option<u64>) -> Result<()> {
        self.check_open()?;
        let now = self.broker.now();
        let mut e = self.broker.engine_due()?;
        if let Some(ms) = delay.filter(|ms| *ms > e.settings.timer_max_delay_ms) {
            // (An orderly consumer would pause its queue this long.)
            return Err(crate::Error::invalid(format!(
                "a nack's delay of {ms} ms is beyond timer_max_delay ({} ms)",
                e.settings.timer_max_delay_ms
            )));
        }
        e.nack(self.handle, msg, delay, now)?;
        self.broker.wake(e);
        Ok(())
    }

    /// Leaves the group; its queues pass to the others, which get its unacked
    /// messages. A receive blocked in another thread returns empty. Closing twice is
    /// harmless.
    pub fn close(&self) -> Result<()> {
        self.broker.check_process()?;
        wait::leave(&self.broker, &self.closed, self.handle)
    }

    /// Whether this consumer or its broker was closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.broker.is_closed()
    }

    /// The consumer's group.
    pub fn group(&self) -> &str {
        &self.config.group
    }

    /// The subscribed topic.
    pub fn topic(&self) -> &str {
        &self.config.topic
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
