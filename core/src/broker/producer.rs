//! Producers: sending one message, or a batch as one append (transactional sends
//! are `transaction/producer.rs`). Queue selection: an explicit `queue_id`, else the
//! sharding key's hash, else round robin. Under `flush="sync"` a send returns once
//! its record is durable.

use std::sync::atomic::{AtomicU32, Ordering};

use super::Broker;
use crate::{Error, FlushMode, Message, Result, SendResult, SendStatus};

/// Sends messages on behalf of a producer group.
pub struct Producer {
    pub(crate) broker: Broker,
    pub(crate) group: String,
    pub(crate) rr: AtomicU32,
}

impl Producer {
    pub(super) fn new(broker: Broker, group: &str) -> Producer {
        Producer {
            broker,
            group: group.to_string(),
            rr: super::counter(),
        }
    }

    /// Stores one message.
    pub fn send(&self, msg: Message) -> Result<SendResult> {
        let mut r = self.send_batch(vec![msg])?;
        r.pop().ok_or_else(|| Error::invalid("nothing to send"))
    }

    /// Stores several messages of one topic as one append, in one queue, with
    /// consecutive queue offsets.
    pub fn send_batch(&self, msgs: Vec<Message>) -> Result<Vec<SendResult>> {
        let b = &self.broker;
        b.check_process()?;
        let rr = self.rr.fetch_add(1, Ordering::Relaxed);
        let now = b.now();
        let (mut results, end) = {
            let mut e = b.inner.engine.lock();
            let results = e.send(msgs, rr, now, None)?;
            let end = e.store.commitlog.end();
            if b.inner.config.flush != FlushMode::Sync {
                b.wake(e);
            }
            (results, end)
        };
        if b.inner.config.flush == FlushMode::Sync && !b.wait_durable(end)? {
            for r in &mut results {
                r.status = SendStatus::FlushDiskTimeout;
            }
        }
        Ok(results)
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
