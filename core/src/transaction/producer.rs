//! Transactional sends: `execute` run at once (`send`), or the outcome given later
//! by id (`send_half`, then `Broker::end_transaction`). The half message is appended
//! under the engine's lock; waiting for it to be durable and running `execute` happen
//! outside it; the resolution takes the lock again.

use std::sync::atomic::Ordering;
use std::sync::Arc;

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
        let (mut result, half) = self.store_half(msg)?;
        if let Some(half) = half {
            let state = execute(&half);
            self.record(&mut result, state)?;
        }
        Ok(result)
    }

    /// `send` in two steps, for a local transaction that runs elsewhere (on an
    /// event loop, say): stores `msg` as a half message; `Begun::half` is the
    /// message to run the local transaction on, and `finish` records its outcome.
    /// Until then, and if `finish` never comes (a crash, a cancelled task), the half
    /// message waits for the check-back as an UNKNOWN outcome would. When the outcome
    /// is known already, `half` is None and the result says it: a repeat of a dedup id
    /// inside the window (still open: UNKNOWN; committed: COMMIT), or a half message
    /// whose sync flush timed out (rolled back, as RocketMQ does).
    pub fn begin(&self, msg: Message) -> Result<Begun> {
        let (result, half) = self.store_half(msg)?;
        Ok(Begun {
            result,
            half,
            broker: self.producer.broker.clone(),
        })
    }

    /// `begin`'s work: the half message's result, and the half message unless its
    /// outcome is known already.
    #[inline(always)]
    fn store_half(&self, msg: Message) -> Result<(SendResult, Option<MessageExt>)> {
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
                return Ok((r, None));
            }
            let half = e.store.message_at(r.commitlog_offset).ok_or_else(|| {
                Error::StoreCorrupted("a half message vanished after its append".into())
            })?;
            (r, half, e.store.commitlog.end())
        };
        if broker.inner.config.flush == FlushMode::Sync && !broker.wait_durable(end)? {
            // RocketMQ rolls back a half message whose flush timed out.
            result.status = SendStatus::FlushDiskTimeout;
            self.record(&mut result, TxState::Rollback)?;
            return Ok((result, None));
        }
        result.transaction_state = Some(TxState::Unknown);
        Ok((result, Some(half)))
    }

    /// Records the outcome of `begun`'s local transaction (see `begin`) and returns
    /// its send's result with that outcome. A half message resolved meanwhile (by a
    /// check-back or `Broker::end_transaction`: the first resolution wins) keeps its
    /// first outcome. When the outcome was known at `begin`, records nothing. A
    /// `begun` of another broker's producer is `InvalidArgument`.
    pub fn finish(&self, begun: Begun, state: TxState) -> Result<SendResult> {
        if !Arc::ptr_eq(&begun.broker.inner, &self.producer.broker.inner) {
            return Err(Error::invalid(
                "this half message was stored by another broker's producer",
            ));
        }
        let Begun {
            mut result, half, ..
        } = begun;
        if half.is_some() {
            self.record(&mut result, state)?;
        }
        Ok(result)
    }

    /// Resolves the half message of `result` as `state`, and sets the state it now has.
    fn record(&self, result: &mut SendResult, state: TxState) -> Result<()> {
        let broker = &self.producer.broker;
        // The half message's offset in the half topic names it until it resolves.
        let qo = result.queue_offset;
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
        Ok(())
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

    /// The broker this producer sends to.
    pub fn broker(&self) -> &Broker {
        self.producer.broker()
    }
}

/// A half message stored by `TransactionProducer::begin`, waiting for the outcome of
/// its local transaction (`TransactionProducer::finish`).
#[derive(Debug)]
pub struct Begun {
    result: SendResult,
    half: Option<MessageExt>,
    broker: Broker,
}

impl Begun {
    /// The half message to run the local transaction on; None when the outcome is
    /// known already (`result` says it).
    pub fn half(&self) -> Option<&MessageExt> {
        self.half.as_ref()
    }

    /// The half message's send result: `transaction_state` is UNKNOWN while its
    /// outcome is open.
    pub fn result(&self) -> &SendResult {
        &self.result
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
