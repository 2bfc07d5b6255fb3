//! The connection behind `connect()`: a tokio runtime owned by the connection, one
//! HTTP/2 channel to the server, and one protocol client per producer or consumer
//! (its own client id, Telemetry stream and heartbeat), as the official RocketMQ 5
//! clients do (server-mode.md §3).
//!
//! A client opens Telemetry and writes its Settings first; the server answers with
//! the effective settings (retry backoff, FIFO, body limit), which consumers wait
//! for. The stream stays open for server commands (transaction check-backs) and is
//! reopened a second after it ends. Heartbeats go every 10 s. Every call carries the
//! clients' headers and, with credentials, their HMAC-SHA1 `authorization`.
//!
//! Nothing running on the runtime owns the runtime: tasks hold `Core` (the channel
//! and the headers), so the runtime is only ever dropped from a caller's thread, and
//! then in the background (`shutdown_background`), never waiting on a task that may
//! be waiting for the GIL.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pocketmq::{ErrorKind, MessageExt, TxState};
use pocketmq_server::proto::messaging_service_client::MessagingServiceClient;
use pocketmq_server::proto::settings::PubSub;
use pocketmq_server::proto::telemetry_command::Command;
use pocketmq_server::proto::{
    Address, AddressScheme, ClientType, EndTransactionRequest, Endpoints, HeartbeatRequest,
    Language, MessageQueue, Metric, NotifyClientTerminationRequest, QueryRouteRequest, Resource,
    Settings, TelemetryCommand, TransactionResolution, TransactionSource, Ua,
};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::Request;

use super::wire::{self, unavailable, Failure, IdMaker, Outcome};

/// How long a unary call may take (the clients' `request_timeout`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
const HEARTBEAT: Duration = Duration::from_secs(10);
const REOPEN: Duration = Duration::from_secs(1);
/// How long a consumer waits for the server's settings (Java's 3 s + request timeout).
const SETTINGS_WAIT: Duration = Duration::from_secs(6);
/// Decoding limit for answers (Apache's proxy takes 130 MiB).
const MAX_GRPC_MESSAGE: usize = 130 * 1024 * 1024;
/// How long a blocking wait runs before Python gets to handle signals.
const SLICE: Duration = Duration::from_millis(100);

/// The runtime and the shared state of one `connect()`.
pub struct Connection {
    runtime: Mutex<Option<Runtime>>,
    handle: Handle,
    pub core: Arc<Core>,
    clients: Mutex<Vec<std::sync::Weak<Client>>>,
}

/// What calls and tasks share: the channel, the endpoint, the headers' inputs.
pub struct Core {
    channel: Channel,
    pub endpoint: String,
    endpoints: Endpoints,
    pub namespace: String,
    credentials: Option<(String, String)>,
    pub ids: IdMaker,
    closed: AtomicBool,
    client_prefix: String,
    next_client: AtomicU64,
    routes: Mutex<HashMap<String, Vec<MessageQueue>>>,
    next_queue: AtomicUsize,
}

fn parse_endpoint(endpoint: &str) -> Outcome<(String, u16)> {
    let bad = || Failure::invalid(format!("the endpoint must be host:port, not {endpoint:?}"));
    let (host, port) = endpoint.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

impl Connection {
    /// Connects to `endpoint` (`host:port`); fails at once if nothing answers there.
    pub fn open(
        endpoint: &str,
        credentials: Option<(String, String)>,
        namespace: String,
    ) -> Outcome<Connection> {
        let (host, port) = parse_endpoint(endpoint)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pocketmq-connect")
            .enable_all()
            .build()
            .map_err(|e| unavailable(format!("cannot start the runtime: {e}")))?;
        let scheme = if host.parse::<std::net::Ipv4Addr>().is_ok() {
            AddressScheme::IPv4
        } else if host.parse::<std::net::Ipv6Addr>().is_ok() {
            AddressScheme::IPv6
        } else {
            AddressScheme::DomainName
        };
        let uri_host = if scheme == AddressScheme::IPv6 {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let ep = Endpoint::from_shared(format!("http://{uri_host}:{port}"))
            .map_err(|e| Failure::invalid(format!("the endpoint {endpoint:?}: {e}")))?
            .connect_timeout(REQUEST_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20))
            .keep_alive_while_idle(true);
        let channel = runtime
            .block_on(ep.connect())
            .map_err(|e| unavailable(format!("cannot connect to {endpoint}: {e}")))?;
        let core = Core {
            channel,
            endpoint: endpoint.to_string(),
            endpoints: Endpoints {
                scheme: scheme as i32,
                addresses: vec![Address {
                    host,
                    port: i32::from(port),
                }],
            },
            namespace,
            credentials,
            ids: IdMaker::new(),
            closed: AtomicBool::new(false),
            client_prefix: format!(
                "{}@{}@{:x}",
                wire::hostname(),
                std::process::id(),
                wire::random_u64() & 0xFFFF_FFFF
            ),
            next_client: AtomicU64::new(0),
            routes: Mutex::new(HashMap::new()),
            next_queue: AtomicUsize::new(0),
        };
        Ok(Connection {
            handle: runtime.handle().clone(),
            runtime: Mutex::new(Some(runtime)),
            core: Arc::new(core),
            clients: Mutex::new(Vec::new()),
        })
    }

    pub fn is_closed(&self) -> bool {
        self.core.closed.load(Ordering::Acquire)
    }

    /// Runs `fut` to completion on the runtime from a thread outside it (no GIL).
    pub fn block<T>(&self, fut: impl Future<Output = Outcome<T>>) -> Outcome<T> {
        if self.is_closed() {
            return Err(Failure::closed());
        }
        self.handle.block_on(fut)
    }

    /// Like `block`, from Python: the GIL released, Ctrl-C seen between slices (the
    /// call is then abandoned and `KeyboardInterrupt` raised).
    pub fn block_py<T: Send>(
        &self,
        py: pyo3::Python<'_>,
        fut: impl Future<Output = Outcome<T>> + Send,
    ) -> pyo3::PyResult<Outcome<T>> {
        if self.is_closed() {
            return Ok(Err(Failure::closed()));
        }
        let mut fut = Box::pin(fut);
        loop {
            let step = py.detach(|| {
                self.handle
                    .block_on(async { tokio::time::timeout(SLICE, &mut fut).await.ok() })
            });
            if let Some(out) = step {
                return Ok(out);
            }
            py.check_signals()?;
        }
    }

    /// Starts a protocol client: opens its Telemetry stream with `settings`, starts
    /// its heartbeat; consumers wait for the server's settings.
    pub fn client(
        &self,
        kind: ClientType,
        group: Option<String>,
        pub_sub: PubSub,
        on_check: Option<Arc<dyn Fn(MessageExt) -> TxState + Send + Sync>>,
    ) -> Outcome<Arc<Client>> {
        if self.is_closed() {
            return Err(Failure::closed());
        }
        let core = self.core.clone();
        let n = core.next_client.fetch_add(1, Ordering::Relaxed);
        let settings = Settings {
            client_type: Some(kind as i32),
            access_point: Some(core.endpoints.clone()),
            backoff_policy: None,
            request_timeout: Some(wire::pb_duration(REQUEST_TIMEOUT)),
            pub_sub: Some(pub_sub),
            user_agent: Some(Ua {
                language: Language::Python as i32,
                version: env!("CARGO_PKG_VERSION").to_string(),
                platform: std::env::consts::OS.to_string(),
                hostname: wire::hostname(),
            }),
            metric: Some(Metric {
                on: false,
                endpoints: None,
            }),
        };
        let (reply_tx, reply_rx) = watch::channel(None);
        let (stop_tx, _) = watch::channel(false);
        let client = Arc::new(Client {
            core: core.clone(),
            handle: self.handle.clone(),
            id: format!("{}@{n}", core.client_prefix),
            kind,
            group,
            settings: Mutex::new(settings),
            outbound: Mutex::new(None),
            reply: reply_tx,
            reply_rx,
            stop: stop_tx,
            closed: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
            on_check,
        });
        let t = self.handle.spawn(telemetry(client.clone()));
        let h = self.handle.spawn(heartbeat(client.clone()));
        if let Ok(mut tasks) = client.tasks.lock() {
            tasks.push(t);
            tasks.push(h);
        }
        if let Ok(mut all) = self.clients.lock() {
            all.retain(|c| c.strong_count() > 0);
            all.push(Arc::downgrade(&client));
        }
        Ok(client)
    }

    /// Closes every client (each tells the server it is leaving), then the runtime.
    pub fn close(&self) {
        if self.core.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let clients: Vec<Arc<Client>> = self
            .clients
            .lock()
            .map(|c| c.iter().filter_map(|w| w.upgrade()).collect())
            .unwrap_or_default();
        for c in clients {
            self.handle.block_on(c.terminate());
        }
        if let Some(rt) = self.runtime.lock().ok().and_then(|mut r| r.take()) {
            rt.shutdown_background();
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.core.closed.store(true, Ordering::Release);
        if let Some(rt) = self.runtime.get_mut().ok().and_then(|r| r.take()) {
            rt.shutdown_background();
        }
    }
}

impl Core {
    pub fn stub(&self) -> MessagingServiceClient<Channel> {
        MessagingServiceClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_GRPC_MESSAGE)
            .max_encoding_message_size(MAX_GRPC_MESSAGE)
    }

    /// A unary call for `client_id`: the clients' headers on `body`, and `timeout`
    /// bounding the whole answer (`within`). `rpc` makes the call on a stub.
    pub async fn call<Q, R, Fut>(
        &self,
        client_id: &str,
        body: Q,
        timeout: Duration,
        rpc: impl FnOnce(MessagingServiceClient<Channel>, Request<Q>) -> Fut,
    ) -> Result<R, tonic::Status>
    where
        Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let req = self.request(client_id, body, timeout);
        within(timeout, rpc(self.stub(), req))
            .await
            .map(tonic::Response::into_inner)
    }

    /// A request with the clients' headers and `timeout` as its gRPC deadline.
    pub fn request<T>(&self, client_id: &str, body: T, timeout: Duration) -> Request<T> {
        let mut req = Request::new(body);
        req.set_timeout(timeout);
        let md = req.metadata_mut();
        let date = wire::date_time(wire::now_ms());
        let mut put = |k: &'static str, v: &str| {
            if let Ok(v) = MetadataValue::try_from(v) {
                md.insert(k, v);
            }
        };
        put("x-mq-client-id", client_id);
        put("x-mq-protocol", "v2");
        put("x-mq-language", "PYTHON");
        put("x-mq-client-version", env!("CARGO_PKG_VERSION"));
        put("x-mq-date-time", &date);
        put("x-mq-request-id", &format!("{:016x}", wire::random_u64()));
        if !self.namespace.is_empty() {
            put("x-mq-namespace", &self.namespace);
        }
        if let Some((ak, sk)) = &self.credentials {
            put(
                "authorization",
                &pocketmq_server::authorization(ak, sk, &date),
            );
        }
        req
    }

    pub fn resource(&self, name: &str) -> Resource {
        wire::resource(&self.namespace, name)
    }

    /// The topic's queues (QueryRoute, cached): TOPIC_NOT_FOUND surfaces here.
    pub async fn route(&self, client_id: &str, topic: &str) -> Outcome<Vec<MessageQueue>> {
        if let Some(r) = self.routes.lock().ok().and_then(|r| r.get(topic).cloned()) {
            return Ok(r);
        }
        let req = QueryRouteRequest {
            topic: Some(self.resource(topic)),
            endpoints: Some(self.endpoints.clone()),
        };
        let resp = self
            .call(client_id, req, REQUEST_TIMEOUT, |mut s, r| async move {
                s.query_route(r).await
            })
            .await
            .map_err(|s| rpc_failure(&s, "route"))?;
        if !wire::ok(resp.status.as_ref()) {
            return Err(wire::failure(
                resp.status.as_ref(),
                &format!("topic {topic:?}"),
            ));
        }
        if resp.message_queues.is_empty() {
            return Err(Failure::new(
                ErrorKind::TopicNotFound,
                format!("topic {topic:?} has no queues"),
            ));
        }
        if let Ok(mut r) = self.routes.lock() {
            r.insert(topic.to_string(), resp.message_queues.clone());
        }
        Ok(resp.message_queues)
    }

    /// The next queue of a route, round-robin (the server picks its own anyway).
    pub fn pick<'a>(&self, route: &'a [MessageQueue]) -> &'a MessageQueue {
        &route[self.next_queue.fetch_add(1, Ordering::Relaxed) % route.len()]
    }
}

/// A unary call's answer within `timeout`, its body and trailers included (give the
/// timeout its request was made with): the request's `grpc-timeout` bounds only the
/// wait for the response headers, so a server that stops between them and the rest
/// held the call until HTTP/2 keep-alive gave the connection up, 50 s later.
async fn within<T>(
    timeout: Duration,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<tonic::Response<T>, tonic::Status> {
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| {
            Err(tonic::Status::deadline_exceeded(format!(
                "no answer within {timeout:?}"
            )))
        })
}

/// A gRPC-level failure (no answer, or the transport refused it).
pub fn rpc_failure(s: &tonic::Status, what: &str) -> Failure {
    use tonic::Code as G;
    match s.code() {
        G::Cancelled if s.message().contains("closed") => Failure::closed(),
        G::OutOfRange | G::ResourceExhausted if what == "send" => Failure::new(
            ErrorKind::MessageTooLarge,
            format!(
                "send: the server refused the message's size: {}",
                s.message()
            ),
        ),
        G::Unimplemented => Failure::not_supported(format!(
            "{what}: the server does not implement it ({})",
            s.message()
        )),
        G::InvalidArgument => Failure::invalid(format!("{what}: {}", s.message())),
        _ => unavailable(format!("{what}: {:?} {}", s.code(), s.message())),
    }
}

/// One protocol client (one producer or consumer).
pub struct Client {
    pub core: Arc<Core>,
    handle: Handle,
    pub id: String,
    kind: ClientType,
    pub group: Option<String>,
    settings: Mutex<Settings>,
    outbound: Mutex<Option<mpsc::Sender<TelemetryCommand>>>,
    reply: watch::Sender<Option<Settings>>,
    reply_rx: watch::Receiver<Option<Settings>>,
    stop: watch::Sender<bool>,
    closed: AtomicBool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    on_check: Option<Arc<dyn Fn(MessageExt) -> TxState + Send + Sync>>,
}

impl Client {
    /// The connection's runtime, for tasks that outlive one call.
    pub fn runtime(&self) -> &Handle {
        &self.handle
    }
}

impl Client {
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.core.closed.load(Ordering::Acquire)
    }

    /// Wakes what waits in `stopped` (a receive) ahead of `close`, which then tells
    /// the server.
    pub fn interrupt(&self) {
        let _ = self.stop.send(true);
    }

    /// Whether `interrupt` or `close` was called.
    pub fn is_stopping(&self) -> bool {
        *self.stop.borrow() || self.is_closed()
    }

    /// Resolves once the client has stopped (closing, or closed).
    pub async fn stopped(&self) {
        let mut stop = self.stop.subscribe();
        let _ = stop.wait_for(|s| *s).await;
    }

    pub fn request<T>(&self, body: T, timeout: Duration) -> Request<T> {
        self.core.request(&self.id, body, timeout)
    }

    /// `Core::call` as this client.
    pub async fn call<Q, R, Fut>(
        &self,
        body: Q,
        timeout: Duration,
        rpc: impl FnOnce(MessagingServiceClient<Channel>, Request<Q>) -> Fut,
    ) -> Result<R, tonic::Status>
    where
        Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        self.core.call(&self.id, body, timeout, rpc).await
    }

    /// The server's settings, waiting for them up to a few seconds.
    pub async fn server_settings(&self) -> Outcome<Settings> {
        let mut rx = self.reply_rx.clone();
        let got = tokio::time::timeout(SETTINGS_WAIT, rx.wait_for(|s| s.is_some())).await;
        match got {
            Ok(Ok(s)) => Ok(s.clone().unwrap_or_default()),
            _ => Err(unavailable(format!(
                "no settings from {} within {SETTINGS_WAIT:?} (is it a RocketMQ 5 gRPC endpoint?)",
                self.core.endpoint
            ))),
        }
    }

    /// The server's settings if they have come.
    pub fn known_settings(&self) -> Option<Settings> {
        self.reply_rx.borrow().clone()
    }

    /// Adds a topic to a producer's published topics (check-backs are routed to the
    /// producers publishing a topic), sending the new settings.
    pub fn publish(&self, topic: &str) {
        let res = self.core.resource(topic);
        let cmd = {
            let Ok(mut s) = self.settings.lock() else {
                return;
            };
            let Some(PubSub::Publishing(p)) = s.pub_sub.as_mut() else {
                return;
            };
            if p.topics.contains(&res) {
                return;
            }
            p.topics.push(res);
            settings_command(&s)
        };
        if let Some(tx) = self.outbound.lock().ok().and_then(|o| o.clone()) {
            let _ = tx.try_send(cmd);
        }
    }

    /// Tells the server this client leaves (it releases what the client held) and
    /// stops its tasks. Twice is harmless.
    pub async fn terminate(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let req = NotifyClientTerminationRequest {
            group: self.group.as_deref().map(|g| self.core.resource(g)),
        };
        let t = Duration::from_secs(1);
        let _ = self
            .call(req, t, |mut s, r| async move {
                s.notify_client_termination(r).await
            })
            .await;
        let _ = self.stop.send(true);
        if let Ok(mut o) = self.outbound.lock() {
            *o = None;
        }
        if let Ok(mut tasks) = self.tasks.lock() {
            for t in tasks.drain(..) {
                t.abort();
            }
        }
    }

    /// `terminate`, from a thread outside the runtime.
    pub fn close(&self) {
        if self.is_closed() {
            return;
        }
        self.handle.block_on(self.terminate());
    }
}

fn settings_command(s: &Settings) -> TelemetryCommand {
    TelemetryCommand {
        status: None,
        command: Some(Command::Settings(s.clone())),
    }
}

/// Keeps the client's Telemetry stream open: settings first, then the server's
/// commands; reopened a second after it ends, until the client stops.
async fn telemetry(client: Arc<Client>) {
    let mut stop = client.stop.subscribe();
    while !client.is_closed() {
        let (tx, rx) = mpsc::channel(16);
        let first = match client.settings.lock() {
            Ok(s) => settings_command(&s),
            Err(_) => return,
        };
        let _ = tx.try_send(first);
        if let Ok(mut o) = client.outbound.lock() {
            *o = Some(tx.clone());
        }
        // A stream has no deadline: it lives as long as the client.
        let mut req = client.request(ReceiverStream::new(rx), Duration::from_secs(1));
        req.metadata_mut().remove("grpc-timeout");
        let mut stub = client.core.stub();
        let opened = tokio::select! {
            r = stub.telemetry(req) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match opened {
            Ok(resp) => {
                let mut inbound = resp.into_inner();
                loop {
                    let next = tokio::select! {
                        m = inbound.message() => m,
                        _ = stop.wait_for(|s| *s) => return,
                    };
                    match next {
                        Ok(Some(cmd)) => on_command(&client, cmd),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
            Err(s) => log::debug!(
                "client={} event=telemetry_failed code={:?} message={:?}",
                client.id,
                s.code(),
                s.message()
            ),
        }
        tokio::select! {
            _ = tokio::time::sleep(REOPEN) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

fn on_command(client: &Arc<Client>, cmd: TelemetryCommand) {
    match cmd.command {
        Some(Command::Settings(s)) => {
            let _ = client.reply.send(Some(s));
        }
        Some(Command::RecoverOrphanedTransactionCommand(c)) => {
            let Some(check) = client.on_check.clone() else {
                return;
            };
            let Some(msg) = c.message else {
                return;
            };
            let client = client.clone();
            tokio::spawn(async move {
                let topic = msg.topic.clone();
                let ext = wire::from_proto(msg);
                let message_id = ext.msg_id.clone();
                // The check is Python code: off the async workers.
                let state = tokio::task::spawn_blocking(move || check(ext))
                    .await
                    .unwrap_or(TxState::Unknown);
                let resolution = match state {
                    TxState::Commit => TransactionResolution::Commit,
                    TxState::Rollback => TransactionResolution::Rollback,
                    TxState::Unknown => return,
                };
                let req = EndTransactionRequest {
                    topic,
                    message_id,
                    transaction_id: c.transaction_id,
                    resolution: resolution as i32,
                    source: TransactionSource::SourceServerCheck as i32,
                    trace_context: String::new(),
                };
                let _ = client
                    .call(req, REQUEST_TIMEOUT, |mut s, r| async move {
                        s.end_transaction(r).await
                    })
                    .await;
            });
        }
        // Stack traces, message verification: nothing a pocketmq client offers.
        _ => {}
    }
}

async fn heartbeat(client: Arc<Client>) {
    let mut stop = client.stop.subscribe();
    loop {
        let req = HeartbeatRequest {
            group: client.group.as_deref().map(|g| client.core.resource(g)),
            client_type: client.kind as i32,
        };
        let _ = client
            .call(req, REQUEST_TIMEOUT, |mut s, r| async move {
                s.heartbeat(r).await
            })
            .await;
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
