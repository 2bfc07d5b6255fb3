//! Transactional sends: `execute` run at once (`send`), or the outcome given later
//! by id (`send_half`, then `Broker::end_transaction`). The half message is appended
//! under the engine's lock; waiting for it to be durable and running `execute` happen
//! outside it; the resolution takes the lock again.

use std::sync::atomic::Ordering;

use super::TxId;
use crate::broker::{Broker, Producer};
use crate::{Error, FlushMode, Message, MessageExt, Result, SendResult, SendStatus, TxState};

/// Sends transactional (half) messages.
#[derive(Debug)]
pub struct TransactionProducer {
    producer: Producer,
}

impl TransactionProducer {
    pub(crate) fn new(producer: Producer) -> TransactionProducer {
        TransactionProducer { producer }
    }

    /// Stores `msg` as a half message (invisible to consumers), runs `execute` on it
    /// and records the outcome: COMMIT makes it visible, ROLLBACK drops it, UNKNOWN
    /// leaves it to the check-back.
    pub fn send(
        &self,
        msg: Message,
        execute: impl FnOnce(&MessageExt) -> TxState,
    ) -> Result<SendResult> {
        let broker = &self.producer.broker;
        broker.catch_up()?;
        let rr = self.producer.rr.fetch_add(1, Ordering::Relaxed);
        let now = broker.now();
        let (mut result, half, end) = {
            let mut e = broker.inner.engine.lock();
            let group = Some(self.producer.group.as_str());
            let mut r = e.send_one(msg, rr, now, group, None)?;
            if r.duplicate {
                // The first send ran the local transaction; this one stores nothing
                // and answers with where it stands: still open, or committed (a
                // rolled-back or discarded half message gives its dedup id back).
                let open = e.tx.pending.contains_key(&r.queue_offset);
                r.transaction_state = Some(if open {
                    TxState::Unknown
                } else {
                    TxState::Commit
                });
                return Ok(r);
            }
            let half = e.store.message_at(r.commitlog_offset).ok_or_else(|| {
                Error::StoreCorrupted("a half message vanished after its append".into())
            })?;
            (r, half, e.store.commitlog.end())
        };
        // The half message's offset in the half topic names it until it resolves.
        let qo = result.queue_offset;
        let state = if broker.inner.config.flush == FlushMode::Sync && !broker.wait_durable(end)? {
            // RocketMQ rolls back a half message whose flush timed out.
            result.status = SendStatus::FlushDiskTimeout;
            TxState::Rollback
        } else {
            execute(&half)
        };
        let now = broker.now();
        let mut e = broker.inner.engine.lock();
        let recorded = e.resolve(qo, state, now)?;
        // Closed while `execute` ran: nothing was recorded, the half message stays
        // open in the store and the check-back decides it after the next open.
        let state = if !recorded && e.closed {
            TxState::Unknown
        } else {
            state
        };
        broker.wake(e);
        result.transaction_state = Some(state);
        Ok(result)
    }

    /// Stores `msg` as a half message (invisible to consumers) and returns at once
    /// with its id; `Broker::end_transaction` resolves it later, from any thread and
    /// also after a restart, and until then the group's listener is asked about it as
    /// for an UNKNOWN outcome. Under `flush="sync"`, a half message whose flush timed
    /// out is rolled back (as RocketMQ does): the result says `FlushDiskTimeout`.
    pub fn send_half(&self, msg: Message) -> Result<(SendResult, TxId)> {
        let broker = &self.producer.broker;
        let rr = self.producer.rr.fetch_add(1, Ordering::Relaxed);
        let now = broker.now();
        let (mut result, end) = {
            let mut e = broker.inner.engine.lock();
            let group = Some(self.producer.group.as_str());
            let r = e.send_one(msg, rr, now, group, None)?;
            (r, e.store.commitlog.end())
        };
        let id = TxId {
            half_offset: result.queue_offset,
            commitlog_offset: result.commitlog_offset,
        };
        result.transaction_state = Some(TxState::Unknown);
        if broker.inner.config.flush == FlushMode::Sync && !broker.wait_durable(end)? {
            result.status = SendStatus::FlushDiskTimeout;
            result.transaction_state = Some(TxState::Rollback);
            broker.end_transaction(&id, TxState::Rollback)?;
        }
        Ok((result, id))
    }

    /// The producer group.
    pub fn group(&self) -> &str {
        self.producer.group()
    }
}

impl Broker {
    /// Resolves the half message `id` names: COMMIT makes it visible, ROLLBACK drops
    /// it, UNKNOWN changes nothing. The first resolution wins: true when this call
    /// resolved it, false when it was resolved before (or the outcome is UNKNOWN).
    /// An id of no half message of this store is `InvalidArgument`.
    pub fn end_transaction(&self, id: &TxId, state: TxState) -> Result<bool> {
        let now = self.now();
        let mut e = self.engine()?;
        let resolved = e.end_transaction(id, state, now)?;
        self.wake(e);
        Ok(resolved)
    }
}
