//! Consumers over the protocol's POP model: `simple_consumer` and `consumer` are both
//! a SimpleConsumer client underneath (ReceiveMessage, AckMessage,
//! ChangeInvisibleDuration). A classic consumer's `nack` makes the message visible
//! again after the server's retry backoff for its attempt (or `delay`), and its
//! `ack_timeout` is the invisible duration of each delivery, so an unsettled message
//! comes back as the embedded broker's would. `listen` runs the engine's listener
//! threads over the same calls.
//!
//! A server may hold every poll for a minimum time (Apache RocketMQ's proxy: 5 s, and
//! it refuses a call whose deadline leaves less). There a receive shorter than that
//! starts the poll, returns empty at its own timeout and leaves the poll running: the
//! next receive takes its messages, and closing the consumer releases them (visible
//! again at once) instead of leaving them invisible for the whole invisible duration.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use pocketmq::{MessageExt, Outcome as Settle, Source};
use pocketmq_server::proto::receive_message_response::Content;
use pocketmq_server::proto::retry_policy::Strategy;
use pocketmq_server::proto::settings::PubSub;
use pocketmq_server::proto::{
    AckMessageEntry, AckMessageRequest, ChangeInvisibleDurationRequest, ClientType, Code,
    FilterExpression, FilterType, ReceiveMessageRequest, Settings, Subscription, SubscriptionEntry,
};
use tokio_stream::StreamExt as _;

use super::session::{rpc_failure, Client, Connection, REQUEST_TIMEOUT};
use super::wire::{self, Failure, Outcome};
use super::PyOutcome;
use crate::consumer::{max_count, messages_of, Timeout, ONE_SECOND, THIRTY_TWO};
use crate::convert::{duration_ms, Whole};
use crate::message::Message;

/// The server's longest long poll; a receive without a timeout polls again and again.
const LONGEST_POLL: Duration = Duration::from_secs(20);
/// Time for the server to answer after its poll (it keeps 200 ms of the deadline).
const POLL_MARGIN: Duration = Duration::from_millis(300);
/// How long a listener thread polls at a time (it looks at `stop` in between).
const LISTEN_POLL: Duration = Duration::from_millis(500);
/// The longest a receive waits for a cancelled one to hand its poll over.
const HANDOVER: Duration = Duration::from_secs(1);
/// Apache RocketMQ's shortest poll (its proxy's `grpcClientConsumerMinLongPollingTimeoutMillis`).
const APACHE_MIN_POLL: Duration = Duration::from_secs(5);

/// Polls still running on the server after the receive that started them gave up.
type Running = tokio::task::JoinHandle<Outcome<Vec<MessageExt>>>;

/// What a consumer needs for each call; shared with its listener threads.
pub struct Pop {
    pub conn: Arc<Connection>,
    pub client: Arc<Client>,
    pub group: String,
    pub topic: String,
    /// The filter's type (TAG or SQL92) and expression.
    filter: (FilterType, String),
    invisible: Duration,
    settings: Settings,
    /// `simple_consumer` (true) or `consumer` (false), for the repr.
    simple: bool,
    /// The server's shortest poll in ms: 0 until a server refuses a shorter one.
    min_poll_ms: AtomicU64,
    /// Polls a receive left running (oldest first), and messages received beyond what
    /// a receive asked for.
    running: Mutex<VecDeque<Running>>,
    ready: Mutex<VecDeque<MessageExt>>,
    /// Cancelled `receive_async` calls whose poll is not yet handed over (to
    /// `running`, or its messages to `ready`); `handed` is notified as each is. A
    /// receive waits for them first, so it takes over their poll instead of starting
    /// a second one beside it (the first would take what arrives, unread).
    handing: AtomicUsize,
    handed: tokio::sync::Notify,
    /// A classic consumer's deliveries not yet acked or nacked (message id -> receipt
    /// handle): made visible again when it closes, as an embedded consumer's are.
    unsettled: Mutex<HashMap<String, String>>,
    /// Receipt handles this consumer acked or nacked lately: an ack of one again
    /// raises `InvalidReceiptHandle` for a simple consumer and changes nothing for a
    /// classic one (as embedded), whatever the server answers (Apache's proxy
    /// answers OK to an ack it has had; a nack leaves a handle the server would ack).
    acked: Mutex<RecentHandles>,
}

/// The last `RECENT_ACKS` handles acked, in a set.
#[derive(Default)]
struct RecentHandles {
    set: std::collections::HashSet<String>,
    order: VecDeque<String>,
}

/// Acked handles remembered per consumer.
const RECENT_ACKS: usize = 65_536;

impl RecentHandles {
    fn add(&mut self, h: String) {
        if self.set.insert(h.clone()) {
            self.order.push_back(h);
            if self.order.len() > RECENT_ACKS {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// The options of `simple_consumer` / `consumer` that the server, not the client,
/// decides: checked against the server's settings.
pub struct Wanted {
    pub fifo: Option<bool>,
    pub max_attempts: Option<u64>,
    pub what: &'static str,
}

impl Pop {
    pub fn open(
        conn: Arc<Connection>,
        group: &str,
        topic: &str,
        filter: (FilterType, String),
        invisible: Duration,
        wanted: Wanted,
        simple: bool,
    ) -> Outcome<Pop> {
        let core = conn.core.clone();
        let sub = Subscription {
            group: Some(core.resource(group)),
            subscriptions: vec![SubscriptionEntry {
                topic: Some(core.resource(topic)),
                expression: Some(FilterExpression {
                    r#type: filter.0 as i32,
                    expression: filter.1.clone(),
                }),
            }],
            fifo: None,
            receive_batch_size: None,
            long_polling_timeout: Some(wire::pb_duration(LONGEST_POLL)),
            lite_subscription_quota: None,
            max_lite_topic_size: None,
        };
        let client = conn.client(
            ClientType::SimpleConsumer,
            Some(group.to_string()),
            PubSub::Subscription(sub),
            None,
        )?;
        let c = client.clone();
        let t = topic.to_string();
        let settings = conn.block(async move {
            // The route first: a missing topic is TopicNotFound here, as embedded.
            c.core.route(&c.id, &t).await?;
            c.server_settings().await
        });
        let settings = match settings {
            Ok(s) => s,
            Err(e) => {
                client.close();
                return Err(e);
            }
        };
        let pop = Pop {
            conn,
            client,
            group: group.to_string(),
            topic: topic.to_string(),
            filter,
            invisible,
            settings,
            simple,
            min_poll_ms: AtomicU64::new(0),
            running: Mutex::new(VecDeque::new()),
            handing: AtomicUsize::new(0),
            handed: tokio::sync::Notify::new(),
            ready: Mutex::new(VecDeque::new()),
            unsettled: Mutex::new(HashMap::new()),
            acked: Mutex::new(RecentHandles::default()),
        };
        if let Err(e) = pop.check(&wanted) {
            pop.client.close();
            return Err(e);
        }
        Ok(pop)
    }

    fn check(&self, wanted: &Wanted) -> Outcome<()> {
        let server_fifo = match &self.settings.pub_sub {
            Some(PubSub::Subscription(s)) => s.fifo.unwrap_or(false),
            _ => false,
        };
        if wanted.fifo == Some(true) && !server_fifo {
            return Err(Failure::not_supported(format!(
                "{}: group {:?} is not FIFO on the server; the server decides (pocketmq serve --fifo-groups {}, consumeMessageOrderly on Apache RocketMQ)",
                wanted.what, self.group, self.group
            )));
        }
        let attempts = self
            .settings
            .backoff_policy
            .as_ref()
            .map(|b| b.max_attempts as u64);
        if let (Some(w), Some(a)) = (wanted.max_attempts, attempts) {
            if w != a {
                return Err(Failure::not_supported(format!(
                    "{}: the server allows group {:?} {a} deliveries, and the server decides",
                    wanted.what, self.group
                )));
            }
        }
        Ok(())
    }

    /// The server's retry delay after the `attempt`th delivery failed.
    fn backoff(&self, attempt: u32) -> Duration {
        let i = attempt.max(1) as usize - 1;
        match self
            .settings
            .backoff_policy
            .as_ref()
            .and_then(|b| b.strategy.as_ref())
        {
            Some(Strategy::CustomizedBackoff(c)) if !c.next.is_empty() => {
                wire::std_duration(&c.next[i.min(c.next.len() - 1)])
            }
            Some(Strategy::ExponentialBackoff(e)) => {
                let initial = e
                    .initial
                    .as_ref()
                    .map_or(Duration::from_secs(1), wire::std_duration);
                let max = e
                    .max
                    .as_ref()
                    .map_or(Duration::from_secs(60), wire::std_duration);
                let f = f64::from(e.multiplier.max(1.0)).powi(i.min(64) as i32);
                initial.mul_f64(f).min(max)
            }
            _ => Duration::from_secs(10),
        }
    }

    /// One ReceiveMessage: up to `max` messages, polling up to `wait`; owns what it
    /// needs, so it can outlive the receive that started it.
    fn poll(
        &self,
        max: usize,
        wait: Duration,
    ) -> impl std::future::Future<Output = Outcome<Vec<MessageExt>>> + Send + 'static {
        let client = self.client.clone();
        let (group, topic, filter, invisible) = (
            self.group.clone(),
            self.topic.clone(),
            self.filter.clone(),
            self.invisible,
        );
        async move {
            let core = &client.core;
            let route = core.route(&client.id, &topic).await?;
            let req = ReceiveMessageRequest {
                group: Some(core.resource(&group)),
                message_queue: Some(core.pick(&route).clone()),
                filter_expression: Some(FilterExpression {
                    r#type: filter.0 as i32,
                    expression: filter.1,
                }),
                batch_size: max.min(i32::MAX as usize) as i32,
                invisible_duration: Some(wire::pb_duration(invisible)),
                auto_renew: false,
                long_polling_timeout: Some(wire::pb_duration(wait)),
                attempt_id: Some(format!("{:016x}", wire::random_u64())),
            };
            let mut stream = core
                .stub()
                .receive_message(client.request(req, wait + POLL_MARGIN))
                .await
                .map_err(|s| rpc_failure(&s, "receive"))?
                .into_inner();
            let mut got = Vec::new();
            while let Some(item) = stream.next().await {
                let item = item.map_err(|s| rpc_failure(&s, "receive"))?;
                match item.content {
                    Some(Content::Status(s)) => {
                        if s.code == Code::MessageNotFound as i32 {
                            continue;
                        }
                        if !wire::ok(Some(&s)) {
                            return Err(wire::failure(Some(&s), "receive"));
                        }
                    }
                    Some(Content::Message(m)) => got.push(wire::from_proto(m)),
                    _ => {}
                }
            }
            Ok(got)
        }
    }

    /// Up to `max` messages, waiting up to `timeout` (None: until one comes or the
    /// consumer closes) for the first.
    async fn receive(
        self: &Arc<Self>,
        max: usize,
        timeout: Option<Duration>,
    ) -> Outcome<Vec<MessageExt>> {
        self.receive_unless(max, timeout, None).await
    }

    /// `receive`, ending with nothing when `cancel` is notified: a poll it has
    /// running is kept for the next receive, so what the server hands out meanwhile
    /// is not stranded until its invisible time ends.
    async fn receive_unless(
        self: &Arc<Self>,
        max: usize,
        timeout: Option<Duration>,
        cancel: Option<Arc<tokio::sync::Notify>>,
    ) -> Outcome<Vec<MessageExt>> {
        let cancelled = || {
            let cancel = cancel.clone();
            async move {
                match cancel {
                    Some(c) => c.notified().await,
                    None => std::future::pending().await,
                }
            }
        };
        if self.client.is_closed() {
            return Err(Failure::closed());
        }
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        // A cancelled receive's poll is handed over in a moment (on this runtime).
        let handover = tokio::time::Instant::now() + HANDOVER;
        while self.handing.load(Ordering::Acquire) > 0 {
            let handed = self.handed.notified();
            if self.handing.load(Ordering::Acquire) == 0 {
                break;
            }
            if tokio::time::timeout_at(handover, handed).await.is_err() {
                break;
            }
        }
        loop {
            let ready = self.take_ready(max);
            if !ready.is_empty() {
                self.track(&ready);
                return Ok(ready);
            }
            let wait = match deadline {
                Some(d) => d
                    .saturating_duration_since(tokio::time::Instant::now())
                    .min(LONGEST_POLL),
                None => LONGEST_POLL,
            };
            let min_poll = Duration::from_millis(self.min_poll_ms.load(Ordering::Relaxed));
            let earlier = self
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            // A poll this receive started for exactly its wait ends by itself (give the
            // answer its margin); a longer or earlier one is left running at `wait`.
            let (mut poll, patience) = match earlier {
                Some(p) => (p, wait),
                None if min_poll > wait => {
                    (self.client.runtime().spawn(self.poll(max, min_poll)), wait)
                }
                None => (
                    self.client.runtime().spawn(self.poll(max, wait)),
                    wait + POLL_MARGIN,
                ),
            };
            let waited = tokio::select! {
                r = tokio::time::timeout(patience, &mut poll) => r,
                () = self.client.stopped() => {
                    // Closed meanwhile: returns nothing at once, as embedded; what the
                    // poll still brings is made visible to the group again.
                    self.release_polls(vec![poll]);
                    return Ok(Vec::new());
                }
                () = cancelled() => {
                    self.running
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_back(poll);
                    return Ok(Vec::new());
                }
            };
            let got = match waited {
                Ok(joined) => joined.unwrap_or_else(|_| Err(Failure::closed())),
                Err(_) => {
                    // The server holds it longer than this receive waits: keep it.
                    self.running
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_back(poll);
                    Ok(Vec::new())
                }
            };
            let mut got = match got {
                Err(e) if min_poll.is_zero() && e.message.contains("not enough for polling") => {
                    // Apache RocketMQ: a poll shorter than its minimum is refused.
                    self.min_poll_ms
                        .store(APACHE_MIN_POLL.as_millis() as u64, Ordering::Relaxed);
                    continue;
                }
                other => other?,
            };
            if got.len() > max {
                let extra = got.split_off(max);
                self.ready
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(extra);
            }
            let over = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
            if !got.is_empty() || over || self.client.is_closed() {
                self.track(&got);
                return Ok(got);
            }
        }
    }

    fn track(&self, msgs: &[MessageExt]) {
        if self.simple || msgs.is_empty() {
            return;
        }
        let mut u = self.unsettled.lock().unwrap_or_else(|e| e.into_inner());
        for m in msgs {
            if let Some(h) = &m.receipt_handle {
                u.insert(m.msg_id.clone(), h.clone());
            }
        }
    }

    /// Forgets deliveries that were acked or nacked.
    fn settled<'a>(&self, ids: impl IntoIterator<Item = &'a String>) {
        if self.simple {
            return;
        }
        let mut u = self.unsettled.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            u.remove(id);
        }
    }

    fn take_ready(&self, max: usize) -> Vec<MessageExt> {
        let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        let n = ready.len().min(max);
        ready.drain(..n).collect()
    }

    /// On close: a classic consumer's unsettled deliveries, what no receive took and
    /// what polls left running still bring are made visible to the group again at once
    /// (the running polls' in the background: the server may hold them a few seconds).
    pub fn release(self: &Arc<Self>) {
        let running: Vec<Running> = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        let mut now: Vec<(String, String)> = self
            .unsettled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        now.extend(
            self.ready
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain(..)
                .filter_map(|m| handle_of(&m).ok()),
        );
        if self.conn.is_closed() {
            return;
        }
        if !now.is_empty() {
            let pop = self.clone();
            // All at once: a server that does not answer costs one request timeout,
            // not one per message.
            let _ = self.conn.block(async move {
                let mut all = tokio::task::JoinSet::new();
                for (id, h) in now {
                    let pop = pop.clone();
                    all.spawn(async move { pop.give_back(id, h).await });
                }
                while all.join_next().await.is_some() {}
                Ok(())
            });
        }
        self.release_polls(running);
    }

    /// Makes what `running` polls bring visible to the group again, in the background.
    fn release_polls(self: &Arc<Self>, running: Vec<Running>) {
        if running.is_empty() || self.conn.is_closed() {
            return;
        }
        let pop = self.clone();
        self.client.runtime().spawn(async move {
            for p in running {
                if let Ok(Ok(got)) = p.await {
                    for m in got {
                        if let Ok((id, h)) = handle_of(&m) {
                            let _ = pop.give_back(id, h).await;
                        }
                    }
                }
            }
        });
    }

    async fn ack(&self, msgs: Vec<(String, String)>) -> Outcome<()> {
        // A handle acked already: a simple consumer's second ack raises, as embedded;
        // a classic consumer's changes nothing, as embedded.
        let msgs: Vec<(String, String)> = {
            let acked = self.acked.lock().unwrap_or_else(|e| e.into_inner());
            if self.simple {
                if let Some((id, _)) = msgs.iter().find(|(_, h)| acked.set.contains(h)) {
                    return Err(Failure::new(
                        pocketmq::ErrorKind::InvalidReceiptHandle,
                        format!(
                            "message {id} was acked or nacked already with this receipt handle"
                        ),
                    ));
                }
                msgs
            } else {
                msgs.into_iter()
                    .filter(|(_, h)| !acked.set.contains(h))
                    .collect()
            }
        };
        if msgs.is_empty() {
            return Ok(());
        }
        let handles: Vec<String> = msgs.iter().map(|(_, h)| h.clone()).collect();
        let ids: Vec<String> = msgs.iter().map(|(id, _)| id.clone()).collect();
        let core = &self.client.core;
        let req = AckMessageRequest {
            group: Some(core.resource(&self.group)),
            topic: Some(core.resource(&self.topic)),
            entries: msgs
                .into_iter()
                .map(|(message_id, receipt_handle)| AckMessageEntry {
                    message_id,
                    receipt_handle,
                    lite_topic: None,
                })
                .collect(),
        };
        let resp = self
            .client
            .call(req, REQUEST_TIMEOUT, |mut s, r| async move {
                s.ack_message(r).await
            })
            .await
            .map_err(|s| rpc_failure(&s, "ack"))?;
        if let Some(bad) = resp.entries.iter().find(|e| !wire::ok(e.status.as_ref())) {
            return Err(wire::failure(bad.status.as_ref(), "ack"));
        }
        if !wire::ok(resp.status.as_ref()) {
            return Err(wire::failure(resp.status.as_ref(), "ack"));
        }
        self.settled(&ids);
        let mut acked = self.acked.lock().unwrap_or_else(|e| e.into_inner());
        for h in handles {
            acked.add(h);
        }
        Ok(())
    }

    /// Keeps a delivery invisible for `d` from now; the new receipt handle.
    async fn change(&self, message_id: String, handle: String, d: Duration) -> Outcome<String> {
        self.change_as(message_id, handle, d, None).await
    }

    /// Makes a delivery visible to the group again at once, unconsumed: `suspend`,
    /// so a server that honours it does not count a failed attempt (pocketmq serve
    /// does; Apache RocketMQ counts one).
    async fn give_back(&self, message_id: String, handle: String) -> Outcome<String> {
        self.change_as(message_id, handle, Duration::ZERO, Some(true))
            .await
    }

    async fn change_as(
        &self,
        message_id: String,
        handle: String,
        d: Duration,
        suspend: Option<bool>,
    ) -> Outcome<String> {
        let id = message_id.clone();
        let core = &self.client.core;
        let req = ChangeInvisibleDurationRequest {
            group: Some(core.resource(&self.group)),
            topic: Some(core.resource(&self.topic)),
            receipt_handle: handle,
            invisible_duration: Some(wire::pb_duration(d)),
            message_id,
            lite_topic: None,
            suspend,
        };
        let resp = self
            .client
            .call(req, REQUEST_TIMEOUT, |mut s, r| async move {
                s.change_invisible_duration(r).await
            })
            .await
            .map_err(|s| rpc_failure(&s, "change_invisible_duration"))?;
        if !wire::ok(resp.status.as_ref()) {
            return Err(wire::failure(
                resp.status.as_ref(),
                "change_invisible_duration",
            ));
        }
        if !self.simple {
            let mut u = self.unsettled.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(h) = u.get_mut(&id) {
                h.clone_from(&resp.receipt_handle);
            }
        }
        Ok(resp.receipt_handle)
    }

    /// A nack: the delivery is settled (it comes back with a new receipt handle
    /// after `d`), so its handle acks nothing later.
    async fn nack(&self, message_id: String, handle: String, d: Duration) -> Outcome<()> {
        self.change(message_id.clone(), handle.clone(), d).await?;
        self.settled([&message_id]);
        self.acked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(handle);
        Ok(())
    }

    fn nack_delay(&self, m: &MessageExt, delay: Option<Duration>) -> Duration {
        delay.unwrap_or_else(|| self.backoff(m.delivery_attempt))
    }
}

fn handle_of(m: &MessageExt) -> Outcome<(String, String)> {
    match &m.receipt_handle {
        Some(h) => Ok((m.msg_id.clone(), h.clone())),
        None => Err(Failure::new(
            pocketmq::ErrorKind::InvalidReceiptHandle,
            "this message was not received over connect()",
        )),
    }
}

/// A receive that `receive_async` awaits: it runs on the connection's runtime and
/// calls back when done, so no thread waits for it, and a cancel ends it at once.
struct ReceiveJob {
    /// The outcome, and whether the receive was cancelled (then what it got goes to
    /// the consumer's next receive): one lock, so whichever of the two comes second
    /// hands the messages on.
    result: Mutex<(Option<Outcome<Vec<MessageExt>>>, bool)>,
    cancel: Arc<tokio::sync::Notify>,
}

impl ReceiveJob {
    /// Puts `msgs` first in line for the consumer's next receive.
    fn hand_back(pop: &Pop, msgs: Vec<MessageExt>) {
        let mut ready = pop.ready.lock().unwrap_or_else(|e| e.into_inner());
        for m in msgs.into_iter().rev() {
            ready.push_front(m);
        }
    }
}

/// Calls its waker when dropped, unless it was taken.
pub(super) struct WakeOnDrop(pub(super) Option<Box<dyn FnOnce() + Send>>);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            w();
        }
    }
}

/// Where a call started by `start_call` leaves its answer.
pub(super) type Answer<T> = Arc<Mutex<Option<Outcome<T>>>>;

/// Runs `call` on `client`'s runtime for an asyncio caller: its answer goes to the
/// returned slot, then `wake()` is called (from the runtime's thread). A close that
/// drops the call unanswered still wakes it, and the slot stays empty.
pub(super) fn start_call<T: Send + 'static>(
    client: &Client,
    wake: Py<PyAny>,
    call: impl std::future::Future<Output = Outcome<T>> + Send + 'static,
) -> Answer<T> {
    let answer: Answer<T> = Arc::new(Mutex::new(None));
    let mut wake = WakeOnDrop(Some(crate::consumer::waker(wake)));
    let slot = answer.clone();
    client.runtime().spawn(async move {
        let got = call.await;
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(got);
        if let Some(w) = wake.0.take() {
            w();
        }
    });
    answer
}

/// The answer `start_call` left; `Closed` when a close dropped the call unanswered.
pub(super) fn take_answer<T>(answer: &Answer<T>) -> Outcome<T> {
    let got = answer.lock().unwrap_or_else(|e| e.into_inner()).take();
    got.unwrap_or_else(|| Err(Failure::closed()))
}

impl RemoteConsumer {
    /// The (message id, receipt handle) of each message `ack` is given.
    fn acks_of(&self, message: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
        self.check_open()?;
        messages_of(message, "ack")?
            .iter()
            .map(|m| handle_of(&m.get().engine_message()))
            .collect::<Outcome<Vec<_>>>()
            .py()
    }

    /// The (message id, receipt handle, delay) of each message `nack` is given.
    fn nacks_of(
        &self,
        message: &Bound<'_, PyAny>,
        delay: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Vec<(String, String, Duration)>> {
        self.check_open()?;
        let delay = delay
            .filter(|d| !d.is_none())
            .map(|d| duration_ms(&d, "delay").map(Duration::from_millis))
            .transpose()?;
        let mut nacks = Vec::new();
        for m in messages_of(message, "nack")? {
            let ext = m.get().engine_message();
            let (id, h) = handle_of(&ext).py()?;
            let d = self.0.nack_delay(&ext, delay);
            nacks.push((id, h, d));
        }
        Ok(nacks)
    }
}

/// A running `ack_async` or `nack_async` of a `RemoteConsumer` (`pocketmq._aio`).
#[pyclass(module = "pocketmq", name = "RemoteCall", frozen)]
pub struct RemoteCall {
    done: Answer<()>,
}

#[pymethods]
impl RemoteCall {
    /// None once answered (the callback was called), or the call's error (`Closed`
    /// when the connection closed first).
    fn result(&self) -> PyResult<()> {
        take_answer(&self.done).py()
    }
}

/// A running receive of `RemoteConsumer.receive_async` (`pocketmq._aio`).
#[pyclass(module = "pocketmq", name = "RemoteReceive", frozen)]
pub struct RemoteReceive {
    job: Arc<ReceiveJob>,
    pop: Arc<Pop>,
}

#[pymethods]
impl RemoteReceive {
    /// Ends the receive: what it already got goes to this consumer's next receive.
    fn cancel(&self) {
        let got = {
            let mut r = self.job.result.lock().unwrap_or_else(|e| e.into_inner());
            if r.0.is_none() && !r.1 {
                // Still running: it hands its poll over as it ends (see `handing`).
                self.pop.handing.fetch_add(1, Ordering::AcqRel);
            }
            r.1 = true;
            r.0.take()
        };
        self.job.cancel.notify_one();
        if let Some(Ok(msgs)) = got {
            ReceiveJob::hand_back(&self.pop, msgs);
        }
    }

    /// The messages once done (the callback was called), or the receive's error.
    fn result(&self, py: Python<'_>) -> PyResult<Vec<Message>> {
        let got = self
            .job
            .result
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .take()
            .unwrap_or_else(|| Ok(Vec::new()));
        let pop = &self.pop;
        match got {
            // A close overtook it: nothing, as embedded; what it brought goes back.
            Ok(msgs) if !msgs.is_empty() && pop.client.is_stopping() => {
                pop.ready
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(msgs);
                py.detach(|| pop.release());
                Ok(Vec::new())
            }
            Ok(msgs) => Ok(msgs.into_iter().map(Message::from).collect()),
            Err(_) if pop.client.is_stopping() => Ok(Vec::new()),
            Err(e) => Err(e).py(),
        }
    }
}

/// The listener threads' view of a consumer.
pub struct Listening(pub Arc<Pop>);

impl Source for Listening {
    fn receive_slice(&self, max: usize, _slice: Duration) -> pocketmq::Result<Vec<MessageExt>> {
        let pop = &self.0;
        pop.conn
            .block(pop.receive(max, Some(LISTEN_POLL)))
            .map_err(Failure::into_engine)
    }

    fn settle(&self, msgs: &[MessageExt], outcomes: &[Settle]) -> pocketmq::Result<()> {
        let pop = &self.0;
        let mut acked = Vec::new();
        let mut nacked = Vec::new();
        for (m, o) in msgs.iter().zip(outcomes) {
            let h = handle_of(m).map_err(Failure::into_engine)?;
            match o {
                Settle::Ack => acked.push(h),
                Settle::Retry => nacked.push((h, pop.nack_delay(m, None))),
                Settle::RetryAfter(d) => nacked.push((h, *d)),
            }
        }
        pop.conn
            .block(async {
                if !acked.is_empty() {
                    pop.ack(acked).await?;
                }
                for ((id, h), d) in nacked {
                    pop.nack(id, h, d).await?;
                }
                Ok(())
            })
            .map_err(Failure::into_engine)
    }

    fn is_closed(&self) -> bool {
        self.0.client.is_closed()
    }
}

/// A consumer over `connect()`: what `simple_consumer` and `consumer` return.
#[pyclass(module = "pocketmq", name = "RemoteConsumer", frozen)]
pub struct RemoteConsumer(pub Arc<Pop>);

impl RemoteConsumer {
    /// Fails with `Closed` once this consumer or its connection is closed.
    fn check_open(&self) -> PyResult<()> {
        if self.0.client.is_closed() {
            return Err(Failure::closed()).py();
        }
        Ok(())
    }

    fn receive_for(
        &self,
        py: Python<'_>,
        max: usize,
        timeout: Option<Duration>,
    ) -> PyResult<Vec<Message>> {
        if self.0.client.is_closed() {
            return Err(Failure::closed()).py();
        }
        let pop = self.0.clone();
        let got = self
            .0
            .conn
            .block_py(py, async move { pop.receive(max, timeout).await })?;
        match got {
            // A receive that a close overtook returns nothing, as embedded; what it
            // brought goes back to the group (the close released what came before).
            Ok(msgs) if !msgs.is_empty() && self.0.client.is_stopping() => {
                let pop = self.0.clone();
                py.detach(|| pop.release());
                Ok(Vec::new())
            }
            Ok(msgs) => Ok(msgs.into_iter().map(Message::from).collect()),
            Err(_) if self.0.client.is_stopping() => Ok(Vec::new()),
            Err(e) => Err(e).py(),
        }
    }
}

impl Drop for RemoteConsumer {
    fn drop(&mut self) {
        let pop = &self.0;
        Python::try_attach(|py| {
            py.detach(|| {
                pop.client.interrupt();
                pop.release();
                pop.client.close();
            })
        });
    }
}

#[pymethods]
impl RemoteConsumer {
    #[getter]
    fn group(&self) -> &str {
        &self.0.group
    }

    #[getter]
    fn topic(&self) -> &str {
        &self.0.topic
    }

    #[getter]
    fn closed(&self) -> bool {
        self.0.client.is_closed()
    }

    /// Up to `max_messages` messages, waiting up to `timeout` seconds for the first
    /// (None: until one comes); each stays invisible to the group until acked, or
    /// for the consumer's invisible duration (`ack_timeout` of `consumer`).
    #[pyo3(signature = (max_messages=THIRTY_TWO, timeout=ONE_SECOND), text_signature = "(self, max_messages=32, timeout=1.0)")]
    fn receive(
        &self,
        py: Python<'_>,
        max_messages: Whole,
        timeout: Timeout,
    ) -> PyResult<Vec<Message>> {
        self.receive_for(py, max_count(max_messages)?, timeout.0)
    }

    /// Like `receive`, awaitable: the wait holds no thread, and cancelling the await
    /// ends it (what it got goes to the next receive).
    #[pyo3(signature = (max_messages=THIRTY_TWO, timeout=ONE_SECOND), text_signature = "(self, max_messages=32, timeout=1.0)")]
    fn receive_async<'py>(
        slf: &Bound<'py, Self>,
        max_messages: Whole,
        timeout: Timeout,
    ) -> PyResult<Bound<'py, PyAny>> {
        max_count(max_messages)?;
        let timeout = timeout.0.map(|d| d.as_secs_f64());
        slf.py()
            .import("pocketmq._aio")?
            .call_method1("remote_receive", (slf, max_messages.0, timeout))
    }

    /// Starts a receive on the connection's runtime; `wake()` is called (from
    /// another thread) when it is done. For `pocketmq._aio.remote_receive`.
    #[pyo3(signature = (max_messages, timeout, wake))]
    fn _receive_start(
        &self,
        max_messages: Whole,
        timeout: Timeout,
        wake: Py<PyAny>,
    ) -> PyResult<RemoteReceive> {
        self.check_open()?;
        let max = max_count(max_messages)?;
        let job = Arc::new(ReceiveJob {
            result: Mutex::new((None, false)),
            cancel: Arc::new(tokio::sync::Notify::new()),
        });
        let (pop, j) = (self.0.clone(), job.clone());
        // Dropped unfinished (the connection closed and its runtime with it): the
        // awaiting task still wakes, and finds nothing, as a receive a close ends.
        let mut wake = WakeOnDrop(Some(crate::consumer::waker(wake)));
        self.0.client.runtime().spawn(async move {
            let got = pop
                .receive_unless(max, timeout.0, Some(j.cancel.clone()))
                .await;
            let cancelled = {
                let mut r = j.result.lock().unwrap_or_else(|e| e.into_inner());
                if r.1 {
                    Some(got)
                } else {
                    r.0 = Some(got);
                    None
                }
            };
            let was_cancelled = cancelled.is_some();
            match cancelled {
                Some(Ok(msgs)) => ReceiveJob::hand_back(&pop, msgs),
                Some(Err(_)) => {}
                None => {
                    if let Some(w) = wake.0.take() {
                        w();
                    }
                }
            }
            // Cancelled: the awaiting task is gone, nobody to wake.
            drop(wake.0.take());
            if was_cancelled {
                pop.handing.fetch_sub(1, Ordering::AcqRel);
                pop.handed.notify_waiters();
            }
        });
        Ok(RemoteReceive {
            job,
            pop: self.0.clone(),
        })
    }

    /// Acks a message or a list of them: the group does not get them again. A handle
    /// that is not current raises `InvalidReceiptHandle`.
    fn ack(&self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<()> {
        let handles = self.acks_of(message)?;
        if handles.is_empty() {
            return Ok(());
        }
        let pop = self.0.clone();
        self.0
            .conn
            .block_py(py, async move { pop.ack(handles).await })?
            .py()
    }

    /// `ack` for asyncio: a coroutine; the AckMessage is awaited on the connection's
    /// runtime, so neither the loop nor a thread waits for it.
    fn ack_async<'py>(
        slf: &Bound<'py, Self>,
        message: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::consumer::settle_async(slf.as_any(), "remote_call", "ack", message, None)
    }

    /// `nack` for asyncio (as `ack_async`).
    #[pyo3(signature = (message, *, delay=None))]
    fn nack_async<'py>(
        slf: &Bound<'py, Self>,
        message: &Bound<'py, PyAny>,
        delay: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::consumer::settle_async(slf.as_any(), "remote_call", "nack", message, Some(delay))
    }

    /// Starts `ack` on the connection's runtime; `wake()` is called (from another
    /// thread) when it is answered. For `pocketmq._aio.remote_call`.
    fn _ack_start(&self, wake: Py<PyAny>, message: &Bound<'_, PyAny>) -> PyResult<RemoteCall> {
        let handles = self.acks_of(message)?;
        let pop = self.0.clone();
        let done = start_call(&self.0.client, wake, async move {
            if handles.is_empty() {
                return Ok(());
            }
            pop.ack(handles).await
        });
        Ok(RemoteCall { done })
    }

    /// Starts `nack` on the connection's runtime (as `_ack_start`).
    #[pyo3(signature = (wake, message, *, delay=None))]
    fn _nack_start(
        &self,
        wake: Py<PyAny>,
        message: &Bound<'_, PyAny>,
        delay: Option<Bound<'_, PyAny>>,
    ) -> PyResult<RemoteCall> {
        let nacks = self.nacks_of(message, delay)?;
        let pop = self.0.clone();
        let done = start_call(&self.0.client, wake, async move {
            for (id, h, d) in nacks {
                pop.nack(id, h, d).await?;
            }
            Ok(())
        });
        Ok(RemoteCall { done })
    }

    /// A failed delivery: visible again after `delay` seconds, or after the server's
    /// retry backoff for its attempt; delivered again with attempt + 1, and to the
    /// dead-letter queue after the server's last attempt.
    #[pyo3(signature = (message, *, delay=None))]
    fn nack(
        &self,
        py: Python<'_>,
        message: &Bound<'_, PyAny>,
        delay: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        for (id, h, d) in self.nacks_of(message, delay)? {
            let pop = self.0.clone();
            self.0
                .conn
                .block_py(py, async move { pop.nack(id, h, d).await })?
                .py()?;
        }
        Ok(())
    }

    /// Keeps a message invisible for `seconds` from now instead (0: visible at once);
    /// updates `message.receipt_handle`.
    fn change_invisible_duration(
        &self,
        py: Python<'_>,
        message: &Bound<'_, Message>,
        seconds: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.check_open()?;
        let d = Duration::from_millis(duration_ms(seconds, "seconds")?);
        let m = message.get();
        let (id, h) = handle_of(&m.engine_message()).py()?;
        let pop = self.0.clone();
        let new = self
            .0
            .conn
            .block_py(py, async move { pop.change(id, h, d).await })?
            .py()?;
        m.set_handle(new);
        Ok(())
    }

    /// Runs `handler(msg)` for each message on `threads` threads: a return acks, an
    /// exception nacks, `RetryLater(seconds)` nacks with that delay.
    #[pyo3(signature = (handler, *, threads=Whole(4)), text_signature = "(self, handler, *, threads=4)")]
    fn listen(
        slf: &Bound<'_, Self>,
        handler: &Bound<'_, PyAny>,
        threads: Whole,
    ) -> PyResult<crate::listener::Listener> {
        let this = slf.get();
        this.check_open()?;
        let source = Arc::new(Listening(this.0.clone()));
        crate::listener::start(slf.clone().into_any().unbind(), source, handler, threads)
    }

    /// Runs the async `handler(msg)` on each message, at most `concurrency` at a
    /// time, until cancelled or the consumer closes (an awaitable).
    #[pyo3(signature = (handler, *, concurrency=Whole(16)), text_signature = "(self, handler, *, concurrency=16)")]
    fn listen_async<'py>(
        slf: &Bound<'py, Self>,
        handler: &Bound<'py, PyAny>,
        concurrency: Whole,
    ) -> PyResult<Bound<'py, PyAny>> {
        slf.py()
            .import("pocketmq._aio")?
            .call_method1("listen_async", (slf, handler, concurrency.0))
    }

    /// Leaves the group (the server releases what this consumer held); a receive
    /// blocked in another thread returns `[]`. Twice is harmless.
    fn close(&self, py: Python<'_>) {
        let pop = &self.0;
        py.detach(|| {
            // Waiting receives return first, so none takes what `release` gives back.
            pop.client.interrupt();
            pop.release();
            pop.client.close();
        });
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyResult<PyRef<'_, Self>> {
        crate::consumer::open_to_iterate(slf.0.client.is_closed())?;
        Ok(slf)
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Message>> {
        loop {
            if self.0.client.is_closed() {
                return Ok(None);
            }
            match self.receive_for(py, 1, Some(LONGEST_POLL)) {
                Ok(mut got) => {
                    if let Some(m) = got.pop() {
                        return Ok(Some(m));
                    }
                }
                Err(_) if self.0.client.is_closed() => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    fn __aiter__(slf: PyRef<'_, Self>) -> PyResult<PyRef<'_, Self>> {
        crate::consumer::open_to_iterate(slf.0.client.is_closed())?;
        Ok(slf)
    }

    fn __anext__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.py()
            .import("pocketmq._aio")?
            .call_method1("next_message", (slf,))
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<Bound<'_, PyAny>>,
        _exc: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        let closed = if self.closed() { ", closed" } else { "" };
        format!(
            "RemoteConsumer(kind={:?}, group={:?}, topic={:?}, endpoint={:?}{closed})",
            if self.0.simple { "simple" } else { "consumer" },
            self.0.group,
            self.0.topic,
            self.0.conn.core.endpoint
        )
    }
}

/// A consumer's filter from its `tags` and `sql` options, checked as the embedded
/// broker checks them (`InvalidArgument` before any call).
pub fn filter(tags: Option<String>, sql: Option<String>) -> PyResult<(FilterType, String)> {
    match sql {
        None => Ok((FilterType::Tag, tags.unwrap_or_else(|| "*".into()))),
        Some(sql) => {
            pocketmq::check_filter(tags.as_deref().unwrap_or("*"), Some(&sql))
                .map_err(crate::errors::to_py)?;
            Ok((FilterType::Sql, sql))
        }
    }
}

/// The options of `consumer()` over the protocol, checked; the invisible duration.
pub fn consumer_options(
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<((FilterType, String), Duration, Wanted)> {
    let mut tags = None;
    let mut sql = None;
    let mut invisible = Duration::from_secs(900);
    let mut wanted = Wanted {
        fifo: None,
        max_attempts: None,
        what: "consumer()",
    };
    let ns = |name: &str, why: &str| -> PyErr {
        super::not_supported(format!("consumer({name}=...): {why}"))
    };
    for (k, v) in options.into_iter().flatten() {
        let name: String = k.extract()?;
        if v.is_none() && name != "ack_timeout" {
            continue;
        }
        match name.as_str() {
            "tags" => tags = Some(v.extract::<String>()?),
            "sql" => sql = Some(v.extract::<String>()?),
            "broadcasting" => {
                if v.extract::<bool>()? {
                    return Err(ns(
                        "broadcasting",
                        "the RocketMQ 5 clients have no broadcasting",
                    ));
                }
            }
            "orderly" => {
                if v.extract::<bool>()? {
                    wanted.fifo = Some(true);
                }
            }
            "max_reconsume_times" => {
                let n: Whole = v.extract()?;
                wanted.max_attempts = Some(n.0.saturating_add(1));
            }
            "start" => {
                // Checked as embedded first: a bad value is InvalidArgument or a
                // TypeError there too, a good one other than "earliest" NotSupported.
                let earliest = matches!(
                    crate::convert::start_from(&v, "start")?,
                    pocketmq::StartFrom::Earliest
                );
                if !earliest {
                    return Err(ns("start", "pocketmq serve starts new groups at the earliest message, and the protocol has no other start"));
                }
            }
            "consumer_id" => {
                v.extract::<String>()?;
            }
            "ack_timeout" => {
                invisible = if v.is_none() {
                    Duration::from_secs(12 * 3600)
                } else {
                    Duration::from_millis(duration_ms(&v, "ack_timeout")?)
                };
            }
            "max_in_flight" => {
                return Err(ns(
                    "max_in_flight",
                    "the protocol has no flow-control setting; use max_messages",
                ));
            }
            other => return Err(crate::convert::unexpected("consumer()", other)),
        }
    }
    Ok((filter(tags, sql)?, invisible, wanted))
}
