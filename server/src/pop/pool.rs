//! The engine side of the consumer RPCs: one pool per (group, topic), a member of
//! core's simple consumer group serving every ReceiveMessage, AckMessage,
//! ChangeInvisibleDuration and ForwardMessageToDeadLetterQueue of that group, and
//! the renewals of auto-renewed deliveries.
//!
//! A long poll holds no thread: it looks once (`receive_step` with a zero slice,
//! which never blocks), and when nothing is there it asks the engine for a wake-up
//! (`on_ready`, called from whichever thread made messages available) and awaits
//! it, or the poll's end, or the server's shutdown, on the async runtime. Up to
//! `max_long_polls` wait at once for the price of a task each.
//!
//! Members of one group subscribe alike in core, while Apache's proxy filters per
//! request: when a receive brings a tag expression other than the member's, the
//! member resubscribes the group in place (`SimpleConsumer::resubscribe`), so
//! handles and the receives waiting on it stay valid. What a receive reads while
//! another client's expression holds the group and its own does not take goes back
//! at once, not counted as an attempt; a redelivery the group's expression no longer
//! takes is skipped, as Apache skips what a request's filter passes over.
//!
//! Under `flush = sync` an engine call may wait for an fsync (it makes the records
//! it appended durable first), so calls then run on the blocking pool; otherwise
//! they take a lock and return, and run inline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use pocketmq::{Broker, ErrorKind, FlushMode, MessageExt, SimpleConsumer, SimpleConsumerConfig};
use tokio::sync::watch;

use super::renewal::Renewals;
use super::{Filter, ReceiveSpec};
use crate::proto::Code;
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
        self.open(sh, &spec.group, &spec.topic, &spec.filter, spec.invisible)
    }

    fn open(
        &self,
        sh: &Shared,
        group: &str,
        topic: &str,
        filter: &Filter,
        invisible: Duration,
    ) -> Outcome<Arc<Pool>> {
        let key = (group.to_string(), topic.to_string());
        let mut pools = self.pools.lock().expect("pools");
        if let Some(p) = pools.get(&key) {
            return Ok(p.clone());
        }
        let g = sh.cfg.group(group);
        let p = Arc::new(Pool::open(
            sh,
            PoolSpec {
                group: key.0.clone(),
                topic: key.1.clone(),
                filter: filter.clone(),
                invisible,
                max_delivery_attempts: 1 + g.max_reconsume_times,
                fifo: g.fifo,
            },
        )?);
        pools.insert(key, p.clone());
        Ok(p)
    }

    /// The pool for a call on a delivery's receipt handle (ack, change, dead letter):
    /// the open one; or, when the store holds the group's state from before the
    /// server last started, one opened now (filtering by "*" until a receive brings
    /// its expression), so that what an earlier run handed out can still be acked, as
    /// Apache's handles outlive a restart of its proxy. None for a group never served.
    pub(super) fn for_handle(&self, sh: &Shared, group: &str, topic: &str) -> Option<Arc<Pool>> {
        if let Some(p) = self.existing(group, topic) {
            return Some(p);
        }
        if !matches!(sh.broker.has_simple_group(group, topic), Ok(true)) {
            return None;
        }
        let all = Filter::by_tag("*").ok()?;
        self.open(sh, group, topic, &all, sh.cfg.limits.min_invisible)
            .ok()
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

    /// Renews the auto-renewed deliveries that are due (called periodically), while
    /// their client `lives` and for at most `max` from their receipt. A client that
    /// no longer lives (forgotten as idle, or gone without NotifyClientTermination)
    /// gets its renewed deliveries released as its termination would: visible again
    /// at once.
    pub async fn renew_due(
        &self,
        now_ms: u64,
        (invisible, max): (Duration, Duration),
        lives: impl Fn(&str) -> bool,
    ) {
        for (client, held, r) in self.renewals.due(now_ms) {
            let Some(pool) = self.existing(&r.group, &r.topic) else {
                self.renewals.remove(&client, &held);
                continue;
            };
            if !lives(&client) {
                self.release_client(&client);
                continue;
            }
            if now_ms.saturating_sub(r.since_ms) >= millis(max) {
                // Held too long: the delivery expires at the end of its invisible
                // time and comes back with its next attempt.
                self.renewals.remove(&client, &held);
                continue;
            }
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

/// What a pool is opened with (core's `SimpleConsumerConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PoolSpec {
    pub group: String,
    pub topic: String,
    pub filter: Filter,
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

/// The member of the group this pool receives with, and its filter.
struct Member {
    filter: Filter,
    consumer: Arc<SimpleConsumer>,
}

/// Core's simple consumer group of one (group, topic).
pub(crate) struct Pool {
    spec: PoolSpec,
    broker: Broker,
    member: RwLock<Member>,
    /// Engine calls may wait for an fsync: run them on the blocking pool.
    blocking: bool,
    shutdown: watch::Receiver<bool>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("spec", &self.spec).finish()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// An engine error of a pool call as the protocol says it.
fn refusal(spec: &PoolSpec, e: pocketmq::Error) -> Refusal {
    match e.kind() {
        // The group's settings clash with its live state in the engine (another tag
        // expression or fifo setting on the same topic, or a classic group's name).
        ErrorKind::InvalidArgument => Refusal::new(
            Code::IllegalConsumerGroup,
            format!("group {:?} on {:?}: {e}", spec.group, spec.topic),
        ),
        _ => Refusal::from(e),
    }
}

impl Pool {
    pub(super) fn open(sh: &Shared, spec: PoolSpec) -> Outcome<Pool> {
        let consumer = Self::join(&sh.broker, &spec, &spec.filter)?;
        Ok(Pool {
            member: RwLock::new(Member {
                filter: spec.filter.clone(),
                consumer: Arc::new(consumer),
            }),
            broker: sh.broker.clone(),
            blocking: sh.broker.config().flush == FlushMode::Sync,
            shutdown: sh.shutdown.clone(),
            spec,
        })
    }

    fn join(broker: &Broker, spec: &PoolSpec, filter: &Filter) -> Outcome<SimpleConsumer> {
        let (tags, sql) = if filter.is_sql() {
            ("*".to_string(), Some(filter.expression().to_string()))
        } else {
            (filter.expression().to_string(), None)
        };
        broker
            .simple_consumer(SimpleConsumerConfig {
                group: spec.group.clone(),
                topic: spec.topic.clone(),
                tags,
                sql,
                invisible_duration_ms: millis(spec.invisible).max(1),
                max_delivery_attempts: spec.max_delivery_attempts,
                fifo: spec.fifo,
            })
            .map_err(|e| refusal(spec, e))
    }

    /// The member, subscribed with `filter` (the old one leaves if it had another).
    fn member(&self, filter: Option<&Filter>) -> Outcome<Arc<SimpleConsumer>> {
        {
            let m = self.member.read().expect("member");
            if filter.is_none_or(|f| *f == m.filter) && !m.consumer.is_closed() {
                return Ok(m.consumer.clone());
            }
        }
        let mut m = self.member.write().expect("member");
        let filter = filter.unwrap_or(&m.filter).clone();
        // Another expression: the member resubscribes the group in place, so the
        // receives of other clients on it go on (they drop what does not match theirs).
        let resubscribed = |c: &SimpleConsumer| {
            if filter.is_sql() {
                c.resubscribe_sql(filter.expression())
            } else {
                c.resubscribe(filter.expression())
            }
        };
        if filter != m.filter && !m.consumer.is_closed() && resubscribed(&m.consumer).is_ok() {
            log::debug!(
                "group={} topic={} event=resubscribed {filter}",
                self.spec.group,
                self.spec.topic
            );
            m.filter = filter;
            return Ok(m.consumer.clone());
        }
        if filter != m.filter || m.consumer.is_closed() {
            let _ = m.consumer.close();
            let consumer = Arc::new(Self::join(&self.broker, &self.spec, &filter)?);
            log::debug!(
                "group={} topic={} event=resubscribed {filter}",
                self.spec.group,
                self.spec.topic
            );
            *m = Member { filter, consumer };
        }
        Ok(m.consumer.clone())
    }

    /// Runs an engine call with the member (inline, or on the blocking pool under
    /// sync flushing); once more on a new member if the old one left meanwhile.
    async fn call<T: Send + 'static>(
        &self,
        filter: Option<&Filter>,
        f: impl Fn(&SimpleConsumer) -> pocketmq::Result<T> + Send + Sync + 'static,
    ) -> Outcome<T> {
        let f = Arc::new(f);
        let mut tries = 0;
        loop {
            let sc = self.member(filter)?;
            let out = if self.blocking {
                let f = f.clone();
                let sc2 = sc.clone();
                match tokio::task::spawn_blocking(move || f(&sc2)).await {
                    Ok(r) => r,
                    Err(e) => {
                        return Err(Refusal::new(
                            Code::InternalServerError,
                            format!("the engine call failed: {e}"),
                        ))
                    }
                }
            } else {
                f(&sc)
            };
            match out {
                Err(e)
                    if e.kind() == ErrorKind::Closed && !self.broker.is_closed() && tries == 0 =>
                {
                    tries += 1;
                }
                other => return other.map_err(|e| refusal(&self.spec, e)),
            }
        }
    }

    /// Up to `max` messages of the group's topic, waiting up to `poll` for the first
    /// (empty when none came, or the server is shutting down), each invisible for
    /// `invisible`; `filter` filters them.
    pub(super) async fn receive(
        &self,
        max: usize,
        poll: Duration,
        invisible: Duration,
        filter: &Filter,
    ) -> Outcome<Vec<Delivered>> {
        let deadline = tokio::time::Instant::now() + poll;
        let invisible_ms = millis(invisible).max(1);
        let mut shutdown = self.shutdown.clone();
        loop {
            let sc = self.member(Some(filter))?;
            let got = self
                .call(Some(filter), move |sc| {
                    let r = sc.start_receive(max, Some(Duration::ZERO))?;
                    sc.receive_step_invisible(&r, Some(Duration::ZERO), invisible_ms)
                })
                .await?
                .unwrap_or_default();
            // Read while another client's expression held the group: what this
            // request's does not take goes back at once, not counted as an attempt.
            let (got, other): (Vec<_>, Vec<_>) = got.into_iter().partition(|m| filter.matches(m));
            for m in other {
                if let Some(h) = m.receipt_handle {
                    let _ = self.suspend(&h, Duration::ZERO).await;
                }
            }
            if !got.is_empty() {
                return Ok(got
                    .into_iter()
                    .filter_map(|m| {
                        let handle = m.receipt_handle.clone()?;
                        Some(Delivered {
                            attempt: m.delivery_attempt,
                            handle,
                            msg: m,
                        })
                    })
                    .collect());
            }
            if tokio::time::Instant::now() >= deadline
                || *shutdown.borrow()
                || self.broker.is_closed()
            {
                return Ok(Vec::new());
            }
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            sc.on_ready(Box::new(move || {
                let _ = tx.send(());
            }));
            tokio::select! {
                _ = rx => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(Vec::new()),
                _ = shutdown.wait_for(|s| *s) => return Ok(Vec::new()),
            }
        }
    }

    /// Several acks under one engine lock; a stale handle fails alone. One outcome
    /// per handle.
    pub(super) async fn ack_each(&self, handles: Vec<String>) -> Outcome<Vec<Outcome<()>>> {
        let spec = self.spec.clone();
        let handles = Arc::new(handles);
        self.call(None, move |sc| {
            Ok(handles
                .iter()
                .map(|h| {
                    // An ack of a delivery already acked is OK, as Apache's proxy
                    // answers it (a client's retried ack); a stale one is not.
                    sc.ack_handle(h)
                        .or_else(|e| match sc.is_done_handle(h) {
                            Ok(true) => Ok(()),
                            _ => Err(e),
                        })
                        .map_err(|e| refusal(&spec, e))
                })
                .collect())
        })
        .await
    }

    pub(super) async fn change_invisible(&self, handle: &str, d: Duration) -> Outcome<String> {
        let h = handle.to_string();
        self.call(None, move |sc| sc.change_invisible_handle(&h, d))
            .await
    }

    /// `change_invisible` of a delivery given back unconsumed (`suspend`).
    pub(super) async fn suspend(&self, handle: &str, d: Duration) -> Outcome<String> {
        let h = handle.to_string();
        self.call(None, move |sc| sc.suspend_handle(&h, d)).await
    }

    /// Whether the delivery a handle names was acked (or dead-lettered) already.
    pub(super) async fn is_done(&self, handle: &str) -> bool {
        let h = handle.to_string();
        matches!(
            self.call(None, move |sc| sc.is_done_handle(&h)).await,
            Ok(true)
        )
    }

    pub(super) async fn dead_letter(&self, handle: &str) -> Outcome<()> {
        let h = handle.to_string();
        self.call(None, move |sc| sc.dead_letter_handle(&h)).await
    }
}
