//! Consumers: long-polling receive, acks and nacks, leaving the group.
//!
//! A receive is a [`Receiving`]: a maximum count and a real-time deadline, stepped
//! until it ends. It ends with messages, or empty at its deadline or when the consumer
//! or broker closes while it waits (a wait ended by a close is empty; a receive
//! started after a close fails with `Closed`). Bindings step it in slices to let
//! their runtime in (signals, event loops) without keeping their own clocks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::Broker;
use crate::engine::Engine;
use crate::message::Taken;
use crate::runtime::Deadline;
use crate::{ConsumerConfig, Error, MessageExt, Result};

/// How many times a receiver that found nothing yields, watching for an arrival,
/// before it parks (wasm: never; it cannot wait at all).
#[cfg(not(target_arch = "wasm32"))]
const RECEIVE_SPINS: usize = 256;
#[cfg(target_arch = "wasm32")]
const RECEIVE_SPINS: usize = 0;

/// Receives messages for one consumer of a group.
pub struct Consumer {
    broker: Broker,
    handle: u64,
    config: ConsumerConfig,
    closed: AtomicBool,
}

/// One step of a long poll (see `Consumer::receive_step`): `take(engine, max,
/// visible end, now)` takes what is there, without waiting.
pub(super) fn long_poll(
    broker: &Broker,
    closed: &AtomicBool,
    r: &Receiving,
    slice: Option<Duration>,
    mut take: impl FnMut(&mut Engine, usize, u64, u64) -> Result<Vec<Taken>>,
) -> Result<Option<Vec<MessageExt>>> {
    broker.check_process()?;
    let wait = Deadline::within(slice).min(r.deadline);
    let inner = &broker.inner;
    let mut e = inner.engine.lock();
    loop {
        if e.closed || closed.load(Ordering::Acquire) {
            return Ok(Some(Vec::new()));
        }
        // Due work that fails (a full disk) is the broker's to retry and report
        // from `tick`; it never keeps a consumer from its messages.
        let checks = broker.run_due_if_needed(&mut e).unwrap_or_else(|err| {
            log::warn!("deferred work failed and will be retried: {err}");
            Vec::new()
        });
        if !checks.is_empty() {
            drop(e);
            broker.run_checks(checks)?;
            e = inner.engine.lock();
            continue;
        }
        let now = broker.now();
        let mut msgs = take(&mut e, r.max, broker.visible_end(), now)?;
        if !msgs.is_empty() {
            if msgs.len() < r.max && !wait.is_past() {
                // A short batch under a steady stream: give the senders a moment to
                // fill it, so each receive (and its lock) carries more.
                let seen = inner.arrivals.load(Ordering::Acquire);
                let more = parking_lot::MutexGuard::unlocked(&mut e, || {
                    (0..RECEIVE_SPINS / 4).any(|_| {
                        crate::runtime::yield_now();
                        inner.arrivals.load(Ordering::Acquire) != seen
                    })
                });
                if more && !e.closed {
                    let left = r.max - msgs.len();
                    msgs.extend(take(&mut e, left, broker.visible_end(), now)?);
                }
            }
            let nonce = e.store.nonce;
            drop(e);
            return Ok(Some(
                msgs.into_iter().filter_map(|t| t.build(nonce)).collect(),
            ));
        }
        if wait.is_past() {
            return Ok(r.deadline.is_past().then(Vec::new));
        }
        // Under a steady stream the next message is microseconds away: look for it
        // briefly before parking, which spares the sender a wake-up call.
        let seen = inner.arrivals.load(Ordering::Acquire);
        let arrived = parking_lot::MutexGuard::unlocked(&mut e, || {
            (0..RECEIVE_SPINS).any(|_| {
                crate::runtime::yield_now();
                inner.arrivals.load(Ordering::Acquire) != seen
            })
        });
        if !arrived && !wait.wait(&inner.arrived, &mut e) {
            return Ok(r.deadline.is_past().then(Vec::new));
        }
    }
}

impl Consumer {
    /// Its broker and handle in the engine.
    pub(super) fn parts(&self) -> (&Broker, u64) {
        (&self.broker, self.handle)
    }
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

/// A receive in progress (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Receiving {
    pub(super) max: usize,
    pub(super) deadline: Deadline,
}

impl Receiving {
    /// Real time left until the receive's deadline; None when it has none.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline.remaining()
    }
}

impl Consumer {
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
        Ok(Receiving {
            max,
            deadline: Deadline::within(timeout),
        })
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
        long_poll(
            &self.broker,
            &self.closed,
            r,
            slice,
            |e, max, visible, now| {
                let Engine { store, groups, .. } = e;
                groups.receive(store, handle, max, visible, now)
            },
        )
    }

    /// Calls `callback` once: at once if a receive might find messages now, else when
    /// one could (a send, a delay coming due, close). Lets an event loop (asyncio, JS)
    /// wait without a thread.
    pub fn on_ready(&self, callback: Box<dyn FnOnce() + Send>) {
        if self.broker.check_process().is_err() {
            // (The receive it wakes then fails with Closed.)
            return callback();
        }
        let inner = &self.broker.inner;
        let mut e = inner.engine.lock();
        let now = self.broker.now();
        let visible = self.broker.visible_end();
        let ready = e.closed
            || self.closed.load(Ordering::Acquire)
            || e.groups
                .may_have_messages(&e.store, self.handle, visible, now)
            || now >= e.next_due;
        if ready {
            drop(e);
            callback();
        } else {
            e.waiters.push(callback);
        }
    }

    /// Marks a message done: never delivered to this group again.
    pub fn ack(&self, msg: &MessageExt) -> Result<()> {
        self.ack_all(std::slice::from_ref(msg))
    }

    /// Marks several messages done under one lock (a receive batch, say).
    pub fn ack_all(&self, msgs: &[MessageExt]) -> Result<()> {
        self.check_open()?;
        let mut e = self.broker.engine()?;
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
        let mut e = self.broker.engine()?;
        e.nack(self.handle, msg, delay, now)?;
        self.broker.wake(e);
        Ok(())
    }

    /// Leaves the group; its queues pass to the others, which get its unacked
    /// messages. A receive blocked in another thread returns empty. Closing twice is
    /// harmless.
    pub fn close(&self) -> Result<()> {
        self.broker.check_process()?;
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let now = self.broker.now();
        let mut e = self.broker.inner.engine.lock();
        if !e.closed {
            e.close_consumer(self.handle, now)?;
        }
        e.arrived = true;
        self.broker.wake(e);
        Ok(())
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
