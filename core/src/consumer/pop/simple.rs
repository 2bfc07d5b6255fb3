//! Simple consumers (RocketMQ 5's SimpleConsumer, the POP model): long-polling
//! receives of any visible message of the topic, each delivery invisible to the
//! group for a while; acks and changes of invisibility by receipt handle. The
//! state lives in the rest of `consumer/pop`; this is the handle users hold. Each
//! call takes the engine's lock through the broker and wakes receivers after.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::broker::Broker;
use crate::consumer::wait::{self, long_poll, Receiving};
use crate::{Error, MessageExt, Result, SimpleConsumerConfig};

/// One member of a simple consumer group.
pub struct SimpleConsumer {
    broker: Broker,
    handle: u64,
    config: SimpleConsumerConfig,
    closed: AtomicBool,
}

impl std::fmt::Debug for SimpleConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimpleConsumer")
            .field("group", &self.config.group)
            .field("topic", &self.config.topic)
            .field("closed", &self.is_closed())
            .finish()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl SimpleConsumer {
    pub(crate) fn new(broker: Broker, handle: u64, config: SimpleConsumerConfig) -> SimpleConsumer {
        SimpleConsumer {
            broker,
            handle,
            config,
            closed: AtomicBool::new(false),
        }
    }

    /// Its broker and member handle in the engine.
    pub(crate) fn parts(&self) -> (&Broker, u64) {
        (&self.broker, self.handle)
    }

    fn check_open(&self) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Up to `max` messages, waiting up to `timeout` (real time) for the first; each
    /// invisible to the group for the consumer's invisible duration.
    pub fn receive(&self, max: usize, timeout: Duration) -> Result<Vec<MessageExt>> {
        self.receive_invisible(max, timeout, self.config.invisible_duration_ms)
    }

    /// `receive`, each delivery invisible for `invisible_ms` instead.
    pub fn receive_invisible(
        &self,
        max: usize,
        timeout: Duration,
        invisible_ms: u64,
    ) -> Result<Vec<MessageExt>> {
        let r = self.start_receive(max, Some(timeout))?;
        loop {
            if let Some(msgs) = self.receive_step_invisible(&r, None, invisible_ms)? {
                return Ok(msgs);
            }
        }
    }

    /// Starts a receive (see `Consumer::start_receive`).
    pub fn start_receive(&self, max: usize, timeout: Option<Duration>) -> Result<Receiving> {
        self.check_open()?;
        Ok(Receiving::new(max, timeout))
    }

    /// One step of a receive (see `Consumer::receive_step`).
    pub fn receive_step(
        &self,
        r: &Receiving,
        slice: Option<Duration>,
    ) -> Result<Option<Vec<MessageExt>>> {
        self.receive_step_invisible(r, slice, self.config.invisible_duration_ms)
    }

    /// `receive_step`, each delivery invisible for `invisible_ms` instead (a server
    /// that takes the duration per request steps with this).
    pub fn receive_step_invisible(
        &self,
        r: &Receiving,
        slice: Option<Duration>,
        invisible_ms: u64,
    ) -> Result<Option<Vec<MessageExt>>> {
        crate::config::check_invisible(invisible_ms)?;
        let handle = self.handle;
        long_poll(
            &self.broker,
            &self.closed,
            r,
            slice,
            !self.config.fifo,
            |e, max, visible, now| e.receive_simple(handle, max, invisible_ms, visible, now),
        )
    }

    /// Calls `callback` once, when a receive may find messages (see
    /// `Consumer::on_ready`).
    pub fn on_ready(&self, callback: Box<dyn FnOnce() + Send>) {
        let handle = self.handle;
        wait::on_ready(&self.broker, &self.closed, callback, |e, _, _| {
            e.groups.pop.may_have_messages(&e.store, handle)
        });
    }

    /// Acks a delivery: the group never gets the message again. A handle that is not
    /// current (expired, changed, acked, of another group) is `InvalidReceiptHandle`.
    pub fn ack(&self, msg: &MessageExt) -> Result<()> {
        self.ack_handle(handle_of(msg)?)
    }

    /// Acks the delivery a receipt handle names.
    pub fn ack_handle(&self, receipt_handle: &str) -> Result<()> {
        self.check_open()?;
        let now = self.broker.now();
        let mut e = self.broker.engine_due()?;
        e.ack_simple(self.handle, receipt_handle, now)?;
        self.broker.wake(e);
        Ok(())
    }

    /// Whether the delivery a receipt handle names is done (acked, or dead-lettered):
    /// an ack of it again would change nothing. False for a handle of another group.
    pub fn is_done_handle(&self, receipt_handle: &str) -> Result<bool> {
        self.check_open()?;
        let e = self.broker.engine()?;
        Ok(e.groups.pop.is_done(self.handle, receipt_handle))
    }

    /// Acks several deliveries under one lock; the first stale handle fails (those
    /// before it are acked).
    pub fn ack_all(&self, msgs: &[MessageExt]) -> Result<()> {
        let handles = msgs.iter().map(handle_of).collect::<Result<Vec<_>>>()?;
        self.ack_handles(&handles)
    }

    /// `ack_all` by receipt handles.
    pub fn ack_handles<S: AsRef<str>>(&self, handles: &[S]) -> Result<()> {
        self.check_open()?;
        let now = self.broker.now();
        let mut e = self.broker.engine_due()?;
        let acked = handles
            .iter()
            .try_for_each(|h| e.ack_simple(self.handle, h.as_ref(), now));
        self.broker.wake(e);
        acked
    }

    /// Makes a delivery invisible for `duration` from now instead; updates the
    /// message's receipt handle (the old one is no longer valid). Zero makes it
    /// visible at once (delivered again with attempt + 1).
    pub fn change_invisible_duration(
        &self,
        msg: &mut MessageExt,
        duration: Duration,
    ) -> Result<()> {
        let new = self.change_invisible_handle(handle_of(msg)?, duration)?;
        msg.receipt_handle = Some(new);
        Ok(())
    }

    /// Changes the invisibility of the delivery a handle names; the new handle.
    pub fn change_invisible_handle(
        &self,
        receipt_handle: &str,
        duration: Duration,
    ) -> Result<String> {
        self.change_invisible_as(receipt_handle, duration, true)
    }

    fn change_invisible_as(
        &self,
        receipt_handle: &str,
        duration: Duration,
        counts: bool,
    ) -> Result<String> {
        self.check_open()?;
        let ms = millis(duration);
        crate::config::check_invisible(ms.max(1))?;
        let now = self.broker.now();
        let mut e = self.broker.engine_due()?;
        let new = e.change_invisible(self.handle, receipt_handle, ms, now, counts)?;
        self.broker.wake(e);
        Ok(new)
    }

    /// Subscribes the group with another tag expression, while this consumer is its
    /// only live member (another member: `InvalidArgument`): what the group reads
    /// from now on is filtered so; messages another expression skipped stay skipped,
    /// and deliveries and their handles stay valid. `config()` keeps the expression it
    /// joined with. Apache RocketMQ's proxy filters each receive by its own request
    /// this way; `pocketmq serve` follows its clients' expressions with it.
    pub fn resubscribe(&self, tags: &str) -> Result<()> {
        self.resubscribe_with(tags, None)
    }

    /// `resubscribe` with an SQL92 expression over the properties instead of tags
    /// (`ConsumerConfig::sql`).
    pub fn resubscribe_sql(&self, sql: &str) -> Result<()> {
        self.resubscribe_with("*", Some(sql))
    }

    fn resubscribe_with(&self, tags: &str, sql: Option<&str>) -> Result<()> {
        self.check_open()?;
        let mut e = self.broker.engine_due()?;
        e.resubscribe_simple(self.handle, tags, sql)?;
        self.broker.wake(e);
        Ok(())
    }

    /// `change_invisible_handle` for a delivery given back unconsumed (RocketMQ 5's
    /// `suspend`): visible again after `duration` (zero: at once), and not counted as
    /// a failed attempt, so the next delivery has the same `delivery_attempt`, as a
    /// closing classic consumer gives back what it held. The new handle; a handle
    /// that is not current is `InvalidReceiptHandle`. A restart before the next
    /// delivery counts it as an attempt.
    pub fn suspend_handle(&self, receipt_handle: &str, duration: Duration) -> Result<String> {
        self.change_invisible_as(receipt_handle, duration, false)
    }

    /// A failed delivery: visible again after `delay`, or after the retry ladder's
    /// step for its attempt (10 s, 30 s, 1 m, ...), then delivered with attempt + 1.
    pub fn nack(&self, msg: &MessageExt, delay: Option<Duration>) -> Result<()> {
        self.nack_handle(handle_of(msg)?, delay)
    }

    /// `nack` with a delay, spelled as `Consumer::nack_after` spells it.
    pub fn nack_after(&self, msg: &MessageExt, delay: Duration) -> Result<()> {
        self.nack(msg, Some(delay))
    }

    /// `nack` by receipt handle.
    pub fn nack_handle(&self, h: &str, delay: Option<Duration>) -> Result<()> {
        self.check_open()?;
        let now = self.broker.now();
        let mut e = self.broker.engine_due()?;
        e.nack_simple(self.handle, h, delay.map(millis), now)?;
        self.broker.wake(e);
        Ok(())
    }

    /// Moves the delivery a handle names to `%DLQ%<group>` at once.
    pub fn dead_letter_handle(&self, receipt_handle: &str) -> Result<()> {
        self.check_open()?;
        let now = self.broker.now();
        let mut e = self.broker.engine_due()?;
        e.dead_letter_simple(self.handle, receipt_handle, now)?;
        self.broker.wake(e);
        Ok(())
    }

    /// Leaves the group; a receive blocked in another thread returns empty. Its
    /// deliveries stay invisible until they expire. Closing twice is harmless.
    pub fn close(&self) -> Result<()> {
        wait::leave(&self.broker, &self.closed, self.handle)
    }

    /// Whether this consumer or its broker was closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.broker.is_closed()
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.config.group
    }

    /// The topic consumed.
    pub fn topic(&self) -> &str {
        &self.config.topic
    }

    /// The options this consumer was made with.
    pub fn config(&self) -> &SimpleConsumerConfig {
        &self.config
    }
}

fn handle_of(msg: &MessageExt) -> Result<&str> {
    msg.receipt_handle.as_deref().ok_or_else(|| {
        Error::InvalidReceiptHandle("this message was not received by a simple consumer".into())
    })
}

impl Drop for SimpleConsumer {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
