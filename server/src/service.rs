//! `impl MessagingService`: one small function per RPC. Each checks its caller
//! (credentials, client id), validates, does the work, and answers with a `Status` in
//! the response (gRPC status OK), counting the call in the stats and in the calls in
//! flight that a shutdown drains. Routes live in `route.rs`, the consumer RPCs in
//! `pop/`, transactions in `tx.rs`, the Telemetry stream in `telemetry.rs`; RPCs
//! outside the 11 the clients use answer NOT_IMPLEMENTED.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use pocketmq::{Broker, Clock, FlushMode, Producer, SendStatus, TransactionProducer};
use tokio::sync::{watch, Semaphore};
use tokio_stream::Stream;
use tonic::{Request, Response, Streaming};

use crate::client::{Caller, Clients};
use crate::config::ServeConfig;
use crate::convert::{self, Incoming};
use crate::proto::messaging_service_server::MessagingService;
use crate::proto::*;
use crate::resource;
use crate::stats::{Recorder, Rpc, Started};
use crate::status::{self, Outcome, Refusal};
use crate::{pop, route, telemetry, tx};

/// The group the server's producer sends under.
const PRODUCER_GROUP: &str = "pocketmq-serve";

/// What every call shares.
pub(crate) struct Shared {
    pub broker: Broker,
    pub producer: Producer,
    /// Half messages of every topic, under the server's producer group; its check
    /// hook routes check-backs to connected producers (`tx.rs`).
    pub tx_producer: TransactionProducer,
    pub clock: Arc<dyn Clock>,
    pub cfg: ServeConfig,
    pub clients: Arc<Clients>,
    pub stats: Recorder,
    pub long_polls: Arc<Semaphore>,
    pub local_addr: SocketAddr,
    pub shutdown: watch::Receiver<bool>,
    pub pop: pop::Pools,
    /// Calls being answered now (drained at shutdown).
    pub inflight: AtomicU64,
}

/// Counts a call in flight while it lives.
pub(crate) struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Shared {
    pub fn new(
        broker: Broker,
        cfg: ServeConfig,
        local_addr: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Shared, pocketmq::Error> {
        let producer = broker.producer(PRODUCER_GROUP)?;
        let clients = Arc::new(Clients::new(
            cfg.limits.max_clients,
            cfg.limits.client_idle_timeout.as_millis() as u64,
        ));
        let tx_producer = broker.transaction_producer(
            PRODUCER_GROUP,
            tx::checker(Arc::downgrade(&clients), local_addr.to_string()),
        )?;
        Ok(Shared {
            clock: broker.clock(),
            producer,
            tx_producer,
            broker,
            clients,
            stats: Recorder::new(),
            long_polls: Arc::new(Semaphore::new(cfg.limits.max_long_polls)),
            local_addr,
            shutdown,
            pop: pop::Pools::default(),
            inflight: AtomicU64::new(0),
            cfg,
        })
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Marks a call in flight until the guard drops.
    pub fn enter(&self) -> InFlight<'_> {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        InFlight(&self.inflight)
    }

    /// The caller of a request: credentials checked, client registered.
    pub fn caller<T>(&self, req: &Request<T>) -> Outcome<Caller> {
        if let Some(creds) = &self.cfg.credentials {
            crate::auth::verify(creds, req.metadata())?;
        }
        self.clients.caller(req.metadata(), self.now_ms())
    }
}

/// A response that carries a status.
pub(crate) trait Reply: Default {
    fn refused(s: Status) -> Self;
    fn code(&self) -> i32;
}

macro_rules! replies {
    ($($t:ty),* $(,)?) => {$(
        impl Reply for $t {
            #[allow(clippy::needless_update)] // some responses have only a status
            fn refused(s: Status) -> Self {
                Self { status: Some(s), ..Default::default() }
            }
            fn code(&self) -> i32 {
                self.status.as_ref().map_or(0, |s| s.code)
            }
        }
    )*};
}

replies!(
    QueryRouteResponse,
    HeartbeatResponse,
    SendMessageResponse,
    QueryAssignmentResponse,
    AckMessageResponse,
    ForwardMessageToDeadLetterQueueResponse,
    UpdateOffsetResponse,
    GetOffsetResponse,
    QueryOffsetResponse,
    EndTransactionResponse,
    NotifyClientTerminationResponse,
    ChangeInvisibleDurationResponse,
    RecallMessageResponse,
    SyncLiteSubscriptionResponse,
);

type Answer<T> = Result<Response<T>, tonic::Status>;
pub(crate) type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;

/// The service tonic calls.
#[derive(Clone)]
pub(crate) struct Service {
    pub shared: Arc<Shared>,
}

impl Service {
    fn finish<T: Reply>(&self, rpc: Rpc, started: Started, out: Outcome<T>) -> Answer<T> {
        let reply = out.unwrap_or_else(|r| {
            log::debug!(
                "rpc={} code={:?} reason={:?}",
                rpc.name(),
                r.code,
                r.message
            );
            T::refused(r.to_status())
        });
        self.shared
            .stats
            .record(rpc, started, reply.code() == Code::Ok as i32);
        Ok(Response::new(reply))
    }

    fn not_implemented<T: Reply>(&self, rpc: Rpc) -> Answer<T> {
        self.finish(
            rpc,
            Started::now(),
            Err(Refusal::not_implemented(rpc.name())),
        )
    }

    fn heartbeat_inner(&self, req: Request<HeartbeatRequest>) -> Outcome<HeartbeatResponse> {
        let caller = self.shared.caller(&req)?;
        let req = req.into_inner();
        if let Some(g) = &req.group {
            let group = resource::group(Some(g))?;
            if let Ok(mut s) = caller.client.session.lock() {
                s.group = Some(group);
            }
        }
        Ok(HeartbeatResponse {
            status: Some(status::ok()),
        })
    }

    async fn send_inner(&self, req: Request<SendMessageRequest>) -> Outcome<SendMessageResponse> {
        let sh = &self.shared;
        let caller = sh.caller(&req)?;
        let peer = req.remote_addr();
        let messages = req.into_inner().messages;
        if messages.is_empty() {
            return Err(Refusal::new(Code::BadRequest, "no message to send"));
        }
        let entries = if messages.len() == 1 {
            let m = messages.into_iter().next().unwrap_or_default();
            vec![self.send_one(m, peer, &caller.client.id).await]
        } else {
            self.send_batch(messages, peer).await
        };
        let status = status::overall(entries.iter().map(|e| e.status.as_ref()));
        Ok(SendMessageResponse {
            status: Some(status),
            entries,
        })
    }

    /// Several messages in one SendMessage: one append to one queue, all or none (as
    /// Apache RocketMQ's proxy sends them as one batch). Each entry carries the refusal
    /// when any message is refused.
    async fn send_batch(
        &self,
        messages: Vec<Message>,
        peer: Option<SocketAddr>,
    ) -> Vec<SendResultEntry> {
        let sh = &self.shared;
        let n = messages.len();
        let refused = |r: Refusal| {
            let status = r.to_status();
            (0..n)
                .map(|_| SendResultEntry {
                    status: Some(status.clone()),
                    ..SendResultEntry::default()
                })
                .collect::<Vec<_>>()
        };
        let mut msgs = Vec::with_capacity(n);
        let mut ids = Vec::with_capacity(n);
        for m in messages {
            match convert::to_engine(m, &sh.cfg.limits, sh.now_ms(), peer) {
                Ok(i) if matches!(i.kind, MessageType::Transaction | MessageType::Delay) => {
                    return refused(Refusal::new(
                        Code::BadRequest,
                        "a batch (several messages in one SendMessage) cannot hold delayed or \
                         transactional messages",
                    ))
                }
                Ok(i) => {
                    msgs.push(i.msg);
                    ids.push(i.message_id);
                }
                Err(r) => return refused(r),
            }
        }
        let bytes: u64 = msgs.iter().map(|m| m.body.len() as u64).sum();
        let result = match sh.cfg.flush {
            FlushMode::Sync => {
                let shared = self.shared.clone();
                engine(move || shared.producer.send_batch(msgs)).await
            }
            FlushMode::Async | FlushMode::None => {
                sh.producer.send_batch(msgs).map_err(Refusal::from)
            }
        };
        let results = match result {
            Ok(r) => r,
            Err(r) => return refused(r),
        };
        sh.stats.messages_in.fetch_add(n as u64, Ordering::Relaxed);
        sh.stats.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        results
            .into_iter()
            .zip(ids)
            .map(|(r, message_id)| {
                let message_id = if message_id.is_empty() {
                    r.msg_id
                } else {
                    message_id
                };
                SendResultEntry {
                    status: Some(sent_status(r.status)),
                    // As Apache's proxy: a message that is not transactional has its
                    // id for a transaction id.
                    transaction_id: message_id.clone(),
                    message_id,
                    offset: r.queue_offset as i64,
                    recall_handle: r.recall_handle.unwrap_or_default(),
                }
            })
            .collect()
    }

    /// `client`: the sender's client id, kept on a half message so its check-backs
    /// go to the sender first.
    async fn send_one(
        &self,
        m: Message,
        peer: Option<SocketAddr>,
        client: &str,
    ) -> SendResultEntry {
        let sh = &self.shared;
        let refused = |r: Refusal| SendResultEntry {
            status: Some(r.to_status()),
            ..SendResultEntry::default()
        };
        let Incoming {
            msg,
            message_id,
            kind,
        } = match convert::to_engine(m, &sh.cfg.limits, sh.now_ms(), peer) {
            Ok(i) => i,
            Err(r) => return refused(r),
        };
        let bytes = msg.body.len() as u64;
        let result = if kind == MessageType::Transaction {
            let mut msg = msg;
            msg.properties
                .insert(tx::SENDER.to_string(), client.to_string());
            tx::send_half(&self.shared, msg)
                .await
                .map(|(r, t)| (r, Some(t)))
        } else {
            match sh.cfg.flush {
                // The send waits for its fsync (group commit): off the async workers.
                FlushMode::Sync => {
                    let shared = self.shared.clone();
                    engine(move || shared.producer.send(msg)).await
                }
                // A lock and an append: a thread hand-off would cost more than the send
                // (SendMessage at 46% of a no-op call's rate that way, 74% inline).
                FlushMode::Async | FlushMode::None => sh.producer.send(msg).map_err(Refusal::from),
            }
            .map(|r| (r, None))
        };
        match result {
            Ok((r, transaction_id)) => {
                sh.stats.messages_in.fetch_add(1, Ordering::Relaxed);
                sh.stats.bytes_in.fetch_add(bytes, Ordering::Relaxed);
                let message_id = if message_id.is_empty() {
                    r.msg_id
                } else {
                    message_id
                };
                SendResultEntry {
                    status: Some(sent_status(r.status)),
                    // As Apache's proxy: a message that is not transactional has its
                    // id for a transaction id.
                    transaction_id: transaction_id.unwrap_or_else(|| message_id.clone()),
                    message_id,
                    offset: r.queue_offset as i64,
                    recall_handle: r.recall_handle.unwrap_or_default(),
                }
            }
            Err(r) => refused(r),
        }
    }

    /// Cancels a delayed message (RocketMQ 5.3's RecallMessage): OK with its id, or
    /// MESSAGE_NOT_FOUND when its time has come or it was recalled already.
    async fn recall_inner(
        &self,
        req: Request<RecallMessageRequest>,
    ) -> Outcome<RecallMessageResponse> {
        let sh = &self.shared;
        sh.caller(&req)?;
        let req = req.into_inner();
        let topic = resource::topic(req.topic.as_ref(), resource::Use::Send)?;
        let handle = req.recall_handle;
        let msg_id = pocketmq::RecallHandle::parse(&handle)?.msg_id;
        let recalled = match sh.cfg.flush {
            // The recall waits for its fsync, as a send does: off the async workers.
            FlushMode::Sync => {
                let shared = self.shared.clone();
                engine(move || shared.producer.recall(&topic, &handle)).await?
            }
            FlushMode::Async | FlushMode::None => sh.producer.recall(&topic, &handle)?,
        };
        if !recalled {
            return Err(Refusal::new(
                Code::MessageNotFound,
                format!(
                    "recall failed: message {msg_id} was delivered or is due, or was recalled \
                     already"
                ),
            ));
        }
        Ok(RecallMessageResponse {
            status: Some(status::ok()),
            message_id: msg_id,
        })
    }

    fn terminate_inner(
        &self,
        req: Request<NotifyClientTerminationRequest>,
    ) -> Outcome<NotifyClientTerminationResponse> {
        let sh = &self.shared;
        let caller = sh.caller(&req)?;
        sh.pop.release_client(&caller.client.id);
        sh.clients.remove(&caller.client.id);
        Ok(NotifyClientTerminationResponse {
            status: Some(status::ok()),
        })
    }
}

/// The status of a stored message's entry.
fn sent_status(s: SendStatus) -> Status {
    match s {
        SendStatus::SendOk => status::ok(),
        SendStatus::FlushDiskTimeout => status::status(
            Code::MasterPersistenceTimeout,
            "stored, but the flush to disk timed out",
        ),
    }
}

/// Runs an engine call that may wait (a sync flush, a long poll) off the async workers.
pub(crate) async fn engine<T: Send + 'static>(
    f: impl FnOnce() -> pocketmq::Result<T> + Send + 'static,
) -> Outcome<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(Refusal::from),
        Err(e) => Err(Refusal::new(
            Code::InternalServerError,
            format!("the engine call failed: {e}"),
        )),
    }
}

/// A stream of one element.
pub(crate) fn once<T: Send + 'static>(item: T) -> BoxStream<T> {
    Box::pin(tokio_stream::once(Ok(item)))
}

#[tonic::async_trait]
impl MessagingService for Service {
    async fn query_route(&self, req: Request<QueryRouteRequest>) -> Answer<QueryRouteResponse> {
        let _call = self.shared.enter();
        let started = Started::now();
        self.finish(
            Rpc::QueryRoute,
            started,
            route::query_route(&self.shared, req),
        )
    }

    async fn heartbeat(&self, req: Request<HeartbeatRequest>) -> Answer<HeartbeatResponse> {
        let _call = self.shared.enter();
        let started = Started::now();
        self.finish(Rpc::Heartbeat, started, self.heartbeat_inner(req))
    }

    async fn send_message(&self, req: Request<SendMessageRequest>) -> Answer<SendMessageResponse> {
        let _call = self.shared.enter();
        let started = Started::now();
        let out = self.send_inner(req).await;
        self.finish(Rpc::SendMessage, started, out)
    }

    async fn query_assignment(
        &self,
        req: Request<QueryAssignmentRequest>,
    ) -> Answer<QueryAssignmentResponse> {
        let _call = self.shared.enter();
        let started = Started::now();
        self.finish(
            Rpc::QueryAssignment,
            started,
            route::query_assignment(&self.shared, req),
        )
    }

    type ReceiveMessageStream = BoxStream<ReceiveMessageResponse>;

    async fn receive_message(
        &self,
        req: Request<ReceiveMessageRequest>,
    ) -> Answer<Self::ReceiveMessageStream> {
        let _call = self.shared.enter();
        let started = Started::now();
        let items = pop::receive(&self.shared, req).await;
        let ok = matches!(
            items.first().and_then(|i| i.content.as_ref()),
            Some(receive_message_response::Content::Status(s)) if s.code == Code::Ok as i32
        );
        self.shared.stats.record(Rpc::ReceiveMessage, started, ok);
        Ok(Response::new(Box::pin(tokio_stream::iter(
            items.into_iter().map(Ok),
        ))))
    }

    async fn ack_message(&self, req: Request<AckMessageRequest>) -> Answer<AckMessageResponse> {
        let _call = self.shared.enter();
        let started = Started::now();
        let out = pop::ack(&self.shared, req).await;
        self.finish(Rpc::AckMessage, started, out)
    }

    async fn forward_message_to_dead_letter_queue(
        &self,
        req: Request<ForwardMessageToDeadLetterQueueRequest>,
    ) -> Answer<ForwardMessageToDeadLetterQueueResponse> {
        let _call = self.shared.enter();
        let started = Started::now();
        let out = pop::dead_letter(&self.shared, req).await;
        self.finish(Rpc::ForwardMessageToDeadLetterQueue, started, out)
    }

    type PullMessageStream = BoxStream<PullMessageResponse>;

    async fn pull_message(
        &self,
        _req: Request<PullMessageRequest>,
    ) -> Answer<Self::PullMessageStream> {
        let _call = self.shared.enter();
        let started = Started::now();
        self.shared.stats.record(Rpc::PullMessage, started, false);
        Ok(Response::new(once(PullMessageResponse {
            content: Some(pull_message_response::Content::Status(
                Refusal::not_implemented("PullMessage").to_status(),
            )),
        })))
    }

    async fn update_offset(
        &self,
        _req: Request<UpdateOffsetRequest>,
    ) -> Answer<UpdateOffsetResponse> {
        let _call = self.shared.enter();
        self.not_implemented(Rpc::UpdateOffset)
    }

    async fn get_offset(&self, _req: Request<GetOffsetRequest>) -> Answer<GetOffsetResponse> {
        let _call = self.shared.enter();
        self.not_implemented(Rpc::GetOffset)
    }

    async fn query_offset(&self, _req: Request<QueryOffsetRequest>) -> Answer<QueryOffsetResponse> {
        let _call = self.shared.enter();
        self.not_implemented(Rpc::QueryOffset)
    }

    async fn end_transaction(
        &self,
        req: Request<EndTransactionRequest>,
    ) -> Answer<EndTransactionResponse> {
        let _call = self.shared.enter();
        let started = Started::now();
        let out = tx::end_transaction(&self.shared, req).await;
        self.finish(Rpc::EndTransaction, started, out)
    }

    type TelemetryStream = telemetry::TelemetryStream;

    async fn telemetry(
        &self,
        req: Request<Streaming<TelemetryCommand>>,
    ) -> Answer<Self::TelemetryStream> {
        let _call = self.shared.enter();
        let started = Started::now();
        let stream = match self.shared.caller(&req) {
            Ok(caller) => {
                self.shared.stats.record(Rpc::Telemetry, started, true);
                telemetry::open(self.shared.clone(), caller, req.into_inner())
            }
            Err(r) => {
                self.shared.stats.record(Rpc::Telemetry, started, false);
                telemetry::refused(&r)
            }
        };
        Ok(Response::new(stream))
    }

    async fn notify_client_termination(
        &self,
        req: Request<NotifyClientTerminationRequest>,
    ) -> Answer<NotifyClientTerminationResponse> {
        let _call = self.shared.enter();
        let started = Started::now();
        self.finish(
            Rpc::NotifyClientTermination,
            started,
            self.terminate_inner(req),
        )
    }

    async fn change_invisible_duration(
        &self,
        req: Request<ChangeInvisibleDurationRequest>,
    ) -> Answer<ChangeInvisibleDurationResponse> {
        let _call = self.shared.enter();
        let started = Started::now();
        let out = pop::change_invisible_duration(&self.shared, req).await;
        self.finish(Rpc::ChangeInvisibleDuration, started, out)
    }

    async fn recall_message(
        &self,
        req: Request<RecallMessageRequest>,
    ) -> Answer<RecallMessageResponse> {
        let _call = self.shared.enter();
        let started = Started::now();
        let out = self.recall_inner(req).await;
        self.finish(Rpc::RecallMessage, started, out)
    }

    async fn sync_lite_subscription(
        &self,
        _req: Request<SyncLiteSubscriptionRequest>,
    ) -> Answer<SyncLiteSubscriptionResponse> {
        let _call = self.shared.enter();
        self.not_implemented(Rpc::SyncLiteSubscription)
    }
}
