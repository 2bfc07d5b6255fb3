//! The engine side of the consumer RPCs: one pool per (group, topic), a simple
//! consumer of the engine serving every ReceiveMessage of that group, and the
//! renewals of auto-renewed deliveries.
//!
//! Core's simple consumer (API.md "Simple consumer") is being added; the calls this
//! file needs from it are gathered in `Pool`, each answering NOT_IMPLEMENTED until
//! then.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pocketmq::MessageExt;

use super::renewal::Renewals;
use super::ReceiveSpec;
use crate::service::Shared;
use crate::status::{Outcome, Refusal};

/// The pools, by (group, topic), and the renewals.
#[derive(Default)]
pub(crate) struct Pools {
    pools: Mutex<HashMap<(String, String), Arc<Pool>>>,
    pub renewals: Renewals,
}

impl Pools {
    /// The pool of a receive's group and topic, opened on first use.
    pub(super) fn pool(&self, sh: &Shared, spec: &ReceiveSpec) -> Outcome<Arc<Pool>> {
        let key = (spec.group.clone(), spec.topic.clone());
        let mut pools = self.pools.lock().expect("pools");
        if let Some(p) = pools.get(&key) {
            return Ok(p.clone());
        }
        let g = sh.cfg.group(&spec.group);
        let p = Arc::new(Pool::open(
            sh,
            PoolSpec {
                group: spec.group.clone(),
                topic: spec.topic.clone(),
                tags: spec.tags.clone(),
                invisible: spec.invisible,
                max_delivery_attempts: 1 + g.max_reconsume_times,
                fifo: g.fifo,
            },
        )?);
        pools.insert(key, p.clone());
        Ok(p)
    }

    pub(super) fn existing(&self, group: &str, topic: &str) -> Option<Arc<Pool>> {
        self.pools
            .lock()
            .expect("pools")
            .get(&(group.to_string(), topic.to_string()))
            .cloned()
    }

    /// A client ended: what the server renewed for it becomes visible again now.
    pub fn release_client(&self, client: &str) {
        for r in self.renewals.take_client(client) {
            if let Some(pool) = self.existing(&r.group, &r.topic) {
                tokio::spawn(async move {
                    let _ = pool.change_invisible(&r.current, Duration::ZERO).await;
                });
            }
        }
    }

    /// Renews the auto-renewed deliveries that are due (called periodically).
    pub async fn renew_due(&self, now_ms: u64, invisible: Duration) {
        for (client, held, r) in self.renewals.due(now_ms) {
            let Some(pool) = self.existing(&r.group, &r.topic) else {
                self.renewals.remove(&client, &held);
                continue;
            };
            match pool.change_invisible(&r.current, invisible).await {
                Ok(new) => self.renewals.renewed(
                    &client,
                    &held,
                    new,
                    now_ms + invisible.as_millis() as u64 / 2,
                ),
                // Acked, expired or dead-lettered meanwhile: nothing left to renew.
                Err(_) => self.renewals.remove(&client, &held),
            }
        }
    }
}

// ---- engine calls -------------------------------------------------------------
//
// Core's simple consumer (API.md "Simple consumer"), being added:
//   broker.simple_consumer(SimpleConsumerConfig { group, topic, tags,
//       invisible_duration_ms, max_delivery_attempts, fifo }) -> Result<SimpleConsumer>
//   sc.receive_invisible(max, timeout, invisible_ms) -> Result<Vec<MessageExt>>
//       (MessageExt gains receipt_handle: Option<String>, delivery_attempt: u32)
//   sc.ack_handle(&str), sc.change_invisible_duration_handle(&str, ms) -> String,
//   sc.dead_letter_handle(&str); stale handles -> Error::InvalidReceiptHandle.
// Each call below answers NOT_IMPLEMENTED until then; the blocking ones will run
// through `service::engine` (off the async workers).

/// What a pool is opened with (core's `SimpleConsumerConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PoolSpec {
    pub group: String,
    pub topic: String,
    pub tags: String,
    pub invisible: Duration,
    pub max_delivery_attempts: u32,
    pub fifo: bool,
}

/// One delivery: the message, its receipt handle and its attempt (1 = first).
#[derive(Debug, Clone)]
pub(crate) struct Delivered {
    pub msg: MessageExt,
    pub handle: String,
    pub attempt: u32,
}

/// The engine's simple consumer of one (group, topic).
#[derive(Debug)]
pub(crate) struct Pool {
    #[allow(dead_code)] // read once the engine's simple consumer is plugged in
    spec: PoolSpec,
}

impl Pool {
    pub(super) fn open(_sh: &Shared, spec: PoolSpec) -> Outcome<Pool> {
        let _ = Pool { spec };
        Err(Refusal::not_implemented(
            "consuming (the engine's simple consumer)",
        ))
    }

    pub(super) async fn receive(
        &self,
        _max: usize,
        _poll: Duration,
        _invisible: Duration,
    ) -> Outcome<Vec<Delivered>> {
        Err(Refusal::not_implemented("ReceiveMessage"))
    }

    pub(super) async fn ack(&self, _handle: &str) -> Outcome<()> {
        Err(Refusal::not_implemented("AckMessage"))
    }

    pub(super) async fn change_invisible(&self, _handle: &str, _d: Duration) -> Outcome<String> {
        Err(Refusal::not_implemented("ChangeInvisibleDuration"))
    }

    pub(super) async fn dead_letter(&self, _handle: &str) -> Outcome<()> {
        Err(Refusal::not_implemented("ForwardMessageToDeadLetterQueue"))
    }
}
