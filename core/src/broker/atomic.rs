//! `Broker::atomic`: a consume-and-produce step whose sends and acks are stored as
//! one append at `commit`, all or nothing, across a crash too (see `crate::atomic`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

use super::{Broker, Consumer, SimpleConsumer};
use crate::atomic::{AckedDelivery, BlockAck};
use crate::{Error, FlushMode, Message, MessageExt, Result, SendResult, SendStatus};

/// Spreads the sends of blocks over their topics' queues.
static ROUND_ROBIN: AtomicU32 = AtomicU32::new(0);

/// Sends and acks collected to be applied together by `commit`; dropping it (or
/// `abort`) applies nothing. Sends are invisible to consumers until the commit.
#[derive(Debug)]
pub struct Atomic {
    broker: Broker,
    sends: Vec<Message>,
    acks: Vec<BlockAck>,
    /// The deliveries `acks` name (once there are two), so each added ack is
    /// checked against the block in constant time.
    acked: HashSet<AckedDelivery, FxBuildHasher>,
}

impl Broker {
    /// A new atomic block (see [`Atomic`]).
    pub fn atomic(&self) -> Result<Atomic> {
        // What taking the engine would check, without the lock: the close flag is
        // set before the engine closes.
        self.check_process()?;
        if self.is_closed() {
            return Err(Error::Closed);
        }
        Ok(Atomic {
            broker: self.clone(),
            sends: Vec::new(),
            acks: Vec::new(),
            acked: HashSet::default(),
        })
    }
}

impl Atomic {
    fn same_broker(&self, other: &Broker) -> Result<()> {
        if Arc::ptr_eq(&self.broker.inner, &other.inner) {
            Ok(())
        } else {
            Err(Error::invalid(
                "this consumer belongs to another broker than the atomic block",
            ))
        }
    }

    /// Adds a send; the message is checked now and stored at the commit.
    pub fn send(&mut self, msg: Message) -> Result<()> {
        if self.broker.is_closed() {
            return Err(Error::Closed);
        }
        msg.validate(self.broker.inner.config.max_message_size)?;
        self.broker.engine()?.check_target(&msg)?;
        self.sends.push(msg);
        Ok(())
    }

    /// Adds the ack of a message `consumer` holds; checked now (held, not acked, not
    /// already in this block) and again at the commit.
    pub fn ack(&mut self, consumer: &Consumer, msg: &MessageExt) -> Result<()> {
        let (broker, handle) = consumer.parts();
        self.same_broker(broker)?;
        let receipt = crate::consumer::ConsumerGroups::receipt_of(msg)?.clone();
        self.add_ack(BlockAck::Classic {
            consumer: handle,
            receipt,
        })
    }

    /// Adds the ack of a simple consumer's delivery (by its receipt handle).
    pub fn ack_simple(&mut self, consumer: &SimpleConsumer, msg: &MessageExt) -> Result<()> {
        let handle = msg.receipt_handle.as_deref().ok_or_else(|| {
            Error::InvalidReceiptHandle("this message was not received by a simple consumer".into())
        })?;
        self.ack_handle(consumer, handle)
    }

    /// Adds the ack of the simple consumer delivery a receipt handle names.
    pub fn ack_handle(&mut self, consumer: &SimpleConsumer, receipt_handle: &str) -> Result<()> {
        let (broker, member) = consumer.parts();
        self.same_broker(broker)?;
        self.add_ack(BlockAck::Simple {
            member,
            handle: receipt_handle.to_string(),
        })
    }

    /// Adds an ack once it is checked: not in the block yet, and held (the acks
    /// added before are checked again, all together, at the commit).
    fn add_ack(&mut self, ack: BlockAck) -> Result<()> {
        // The set is made at the second ack: a block of one ack allocates none.
        if !self.acks.is_empty() {
            if self.acked.is_empty() {
                self.acked.extend(self.acks.iter().map(BlockAck::delivery));
            }
            if self.acked.contains(&ack.delivery()) {
                return Err(Error::invalid("the block acks this message twice"));
            }
        }
        // Only a simple consumer's delivery has a deadline to check.
        let now = match ack {
            BlockAck::Simple { .. } => self.broker.now(),
            BlockAck::Classic { .. } => 0,
        };
        self.broker.engine()?.check_block_ack(&ack, now)?;
        if !self.acked.is_empty() {
            self.acked.insert(ack.delivery());
        }
        self.acks.push(ack);
        Ok(())
    }

    /// Sends and acks so far.
    pub fn len(&self) -> usize {
        self.sends.len() + self.acks.len()
    }

    /// Whether the block has neither sends nor acks.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores the block's sends and acks as one append; the send results in the order
    /// of the sends. On an error nothing is applied.
    pub fn commit(self) -> Result<Vec<SendResult>> {
        let Atomic {
            broker,
            sends,
            acks,
            ..
        } = self;
        if sends.is_empty() && acks.is_empty() {
            return Ok(Vec::new());
        }
        let rr = ROUND_ROBIN.fetch_add(sends.len() as u32, Ordering::Relaxed);
        broker.catch_up()?;
        let now = broker.now();
        let (mut results, end) = {
            let mut e = broker.engine()?;
            let results = e.commit_block(sends, &acks, rr, now)?;
            let end = e.store.commitlog.end();
            e.arrived = true;
            if broker.inner.config.flush != FlushMode::Sync {
                broker.wake(e);
            }
            (results, end)
        };
        if broker.inner.config.flush == FlushMode::Sync && !broker.wait_durable(end)? {
            for r in &mut results {
                r.status = SendStatus::FlushDiskTimeout;
            }
        }
        Ok(results)
    }

    /// Drops the block: nothing is applied.
    pub fn abort(self) {}
}
