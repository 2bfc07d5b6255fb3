//! Load generator: SendMessage, and ReceiveMessage + AckMessage, throughput against a
//! no-op unary RPC on the same machine, in the same run; and the long-poll wake-up.
//!
//! Starts, in this process, `serve()` over a broker (in memory, or `--store DIR` for a
//! file store) and a no-op MessagingService whose Heartbeat answers at once. Each of
//! `--runs` runs then measures, in turn:
//! - send: `--producers` tasks, each with its own connection like separate client
//!   processes, send one `--size`-byte message per SendMessage, in `--seconds`
//!   one-second slices alternating with as many slices of the same tasks calling the
//!   no-op Heartbeat (so that the machine's other load weighs on both alike);
//! - receive+ack: as many consumer tasks (one connection each, one group) receive what
//!   that run sent, `--batch` per ReceiveMessage, and ack each batch with one
//!   AckMessage, in one-second slices alternating with no-op slices again, until it
//!   is all acked;
//! - wake-up: `--wakeups` times, a receive waits on an empty topic and one message is
//!   sent: the time from the send's start to the message reaching the receiver; and,
//!   interleaved with them as the floor under the same conditions, one no-op unary
//!   round trip each time.
//!
//! Prints each run, then a table of the runs and their medians with each rate's
//! ratio to the no-op rate of the slices alternating with it, and whether the targets are met (send and
//! receive+ack at least 60% of the no-op rate, wake-up p99 under 2 ms).
//!
//! `cargo run --release -p pocketmq-server --example loadgen -- [--producers 16]
//!  [--size 100] [--seconds 5] [--batch 32] [--wakeups 1000] [--runs 3]
//!  [--store DIR [--flush async|sync|none]]`
//!
//! With `--endpoint HOST:PORT [--topic T] [--json]` it drives a server elsewhere
//! instead (`pocketmq serve`, or an Apache RocketMQ proxy, whose topic T and group
//! `T-g` must exist): each client opens its Telemetry stream with its settings
//! first, as the official clients do; each run sends for `--seconds`, then receives
//! and acks all of it, and prints the rates and the send latencies (the no-op
//! baseline and the wake-ups belong to the in-process mode).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pocketmq::{Broker, BrokerConfig, FlushMode};
use pocketmq_server::proto::messaging_service_client::MessagingServiceClient;
use pocketmq_server::proto::messaging_service_server::{MessagingService, MessagingServiceServer};
use pocketmq_server::proto::*;
use pocketmq_server::{serve, ServeConfig};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status as GrpcStatus, Streaming};

struct Options {
    producers: usize,
    size: usize,
    seconds: u64,
    batch: i32,
    wakeups: usize,
    runs: usize,
    store: Option<std::path::PathBuf>,
    flush: FlushMode,
    /// A server elsewhere (pocketmq serve, or an Apache RocketMQ proxy) instead of one
    /// in this process.
    endpoint: Option<SocketAddr>,
    topic: String,
    /// One JSON line per run too (external mode).
    json: bool,
}

fn options() -> Options {
    let mut o = Options {
        producers: 16,
        size: 100,
        seconds: 5,
        batch: 32,
        wakeups: 1000,
        runs: 3,
        store: None,
        flush: FlushMode::Async,
        endpoint: None,
        topic: "loadgen".into(),
        json: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().expect("a value after the flag");
        match a.as_str() {
            "--producers" => o.producers = v().parse().expect("a count"),
            "--size" => o.size = v().parse().expect("bytes"),
            "--seconds" => o.seconds = v().parse().expect("seconds"),
            "--batch" => o.batch = v().parse().expect("a count"),
            "--wakeups" => o.wakeups = v().parse().expect("a count"),
            "--runs" => o.runs = v().parse().expect("a count"),
            "--store" => o.store = Some(v().into()),
            "--flush" => o.flush = v().parse().expect("async, sync or none"),
            "--endpoint" => o.endpoint = Some(v().parse().expect("HOST:PORT (an IP address)")),
            "--topic" => o.topic = v(),
            "--json" => o.json = true,
            other => panic!("unknown option {other}"),
        }
    }
    o
}

/// A MessagingService that does nothing: the floor of a unary call's cost.
struct Noop;

type Stream<T> = ReceiverStream<Result<T, GrpcStatus>>;
type Answer<T> = Result<Response<T>, GrpcStatus>;

fn empty<T>() -> Stream<T> {
    ReceiverStream::new(tokio::sync::mpsc::channel(1).1)
}

#[tonic::async_trait]
impl MessagingService for Noop {
    async fn query_route(&self, _: Request<QueryRouteRequest>) -> Answer<QueryRouteResponse> {
        Ok(Response::new(Default::default()))
    }
    async fn heartbeat(&self, _: Request<HeartbeatRequest>) -> Answer<HeartbeatResponse> {
        Ok(Response::new(HeartbeatResponse {
            status: Some(Status {
                code: Code::Ok as i32,
                message: "OK".into(),
            }),
        }))
    }
    async fn send_message(&self, _: Request<SendMessageRequest>) -> Answer<SendMessageResponse> {
        Ok(Response::new(Default::default()))
    }
    async fn query_assignment(
        &self,
        _: Request<QueryAssignmentRequest>,
    ) -> Answer<QueryAssignmentResponse> {
        Ok(Response::new(Default::default()))
    }
    type ReceiveMessageStream = Stream<ReceiveMessageResponse>;
    async fn receive_message(
        &self,
        _: Request<ReceiveMessageRequest>,
    ) -> Answer<Self::ReceiveMessageStream> {
        Ok(Response::new(empty()))
    }
    async fn ack_message(&self, _: Request<AckMessageRequest>) -> Answer<AckMessageResponse> {
        Ok(Response::new(Default::default()))
    }
    async fn forward_message_to_dead_letter_queue(
        &self,
        _: Request<ForwardMessageToDeadLetterQueueRequest>,
    ) -> Answer<ForwardMessageToDeadLetterQueueResponse> {
        Ok(Response::new(Default::default()))
    }
    type PullMessageStream = Stream<PullMessageResponse>;
    async fn pull_message(
        &self,
        _: Request<PullMessageRequest>,
    ) -> Answer<Self::PullMessageStream> {
        Ok(Response::new(empty()))
    }
    async fn update_offset(&self, _: Request<UpdateOffsetRequest>) -> Answer<UpdateOffsetResponse> {
        Ok(Response::new(Default::default()))
    }
    async fn get_offset(&self, _: Request<GetOffsetRequest>) -> Answer<GetOffsetResponse> {
        Ok(Response::new(Default::default()))
    }
    async fn query_offset(&self, _: Request<QueryOffsetRequest>) -> Answer<QueryOffsetResponse> {
        Ok(Response::new(Default::default()))
    }
    async fn end_transaction(
        &self,
        _: Request<EndTransactionRequest>,
    ) -> Answer<EndTransactionResponse> {
        Ok(Response::new(Default::default()))
    }
    type TelemetryStream = Stream<TelemetryCommand>;
    async fn telemetry(
        &self,
        _: Request<Streaming<TelemetryCommand>>,
    ) -> Answer<Self::TelemetryStream> {
        Ok(Response::new(empty()))
    }
    async fn notify_client_termination(
        &self,
        _: Request<NotifyClientTerminationRequest>,
    ) -> Answer<NotifyClientTerminationResponse> {
        Ok(Response::new(Default::default()))
    }
    async fn change_invisible_duration(
        &self,
        _: Request<ChangeInvisibleDurationRequest>,
    ) -> Answer<ChangeInvisibleDurationResponse> {
        Ok(Response::new(Default::default()))
    }
    async fn recall_message(
        &self,
        _: Request<RecallMessageRequest>,
    ) -> Answer<RecallMessageResponse> {
        Ok(Response::new(Default::default()))
    }
    async fn sync_lite_subscription(
        &self,
        _: Request<SyncLiteSubscriptionRequest>,
    ) -> Answer<SyncLiteSubscriptionResponse> {
        Ok(Response::new(Default::default()))
    }
}

fn with_headers<T>(msg: T, client_id: &str) -> Request<T> {
    let mut r = Request::new(msg);
    let md = r.metadata_mut();
    md.insert("x-mq-client-id", client_id.parse().unwrap());
    md.insert("x-mq-protocol", "v2".parse().unwrap());
    md.insert("x-mq-language", "RUST".parse().unwrap());
    md.insert("x-mq-date-time", "20261201T120000Z".parse().unwrap());
    r
}

#[derive(Clone, Copy)]
enum Call {
    Noop,
    Send,
}

struct Run {
    calls: u64,
    secs: f64,
    latencies_us: Vec<u32>,
}

/// `producers` tasks, one connection each, calling for `secs`.
#[allow(clippy::disallowed_methods)] // a benchmark measures real time
async fn phase(addr: SocketAddr, call: Call, run_for: Duration, o: &Options) -> Run {
    let mut clients = Vec::new();
    let mut sessions = Vec::new();
    for i in 0..o.producers {
        let ch = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .tcp_nodelay(true)
            .connect()
            .await
            .expect("connect");
        let mut c = MessagingServiceClient::new(ch);
        if o.endpoint.is_some() && matches!(call, Call::Send) {
            let id = format!("loadgen@{}@{i}@bench", std::process::id());
            sessions.push(handshake(&mut c, addr, &id, ClientType::Producer, &o.topic).await);
        }
        clients.push(c);
    }
    let topic = o.topic.clone();
    let body = vec![b'x'; o.size];
    let stop = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let body = body.clone();
            let stop = stop.clone();
            let topic = topic.clone();
            tokio::spawn(async move {
                let id = format!("loadgen@{}@{i}@bench", std::process::id());
                let mut lat = Vec::with_capacity(1 << 16);
                let mut n: u64 = 0;
                while stop.load(Ordering::Relaxed) == 0 {
                    let t = Instant::now();
                    match call {
                        Call::Noop => {
                            let r = c
                                .heartbeat(with_headers(
                                    HeartbeatRequest {
                                        group: None,
                                        client_type: ClientType::Producer as i32,
                                    },
                                    &id,
                                ))
                                .await
                                .expect("no-op call");
                            assert!(r.into_inner().status.is_some());
                        }
                        Call::Send => {
                            let m = Message {
                                topic: Some(resource(&topic)),
                                user_properties: Default::default(),
                                system_properties: Some(SystemProperties {
                                    message_id: format!(
                                        "01{:04X}{:04X}{:024X}",
                                        std::process::id() & 0xFFFF,
                                        i,
                                        n
                                    ),
                                    body_encoding: Encoding::Identity as i32,
                                    message_type: MessageType::Normal as i32,
                                    born_host: "127.0.0.1".into(),
                                    born_timestamp: Some(prost_types::Timestamp {
                                        seconds: 1_796_000_000,
                                        nanos: 0,
                                    }),
                                    ..SystemProperties::default()
                                }),
                                body: body.clone(),
                            };
                            let r = c
                                .send_message(with_headers(
                                    SendMessageRequest { messages: vec![m] },
                                    &id,
                                ))
                                .await
                                .expect("send")
                                .into_inner();
                            let code = r.status.map(|s| s.code).unwrap_or(0);
                            assert_eq!(code, Code::Ok as i32, "send refused");
                        }
                    }
                    lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    n += 1;
                }
                lat
            })
        })
        .collect();
    tokio::time::sleep(run_for).await;
    stop.store(1, Ordering::Relaxed);
    let mut latencies_us = Vec::new();
    for t in tasks {
        latencies_us.extend(t.await.expect("a load task"));
    }
    let secs = start.elapsed().as_secs_f64();
    drop(sessions);
    Run {
        calls: latencies_us.len() as u64,
        secs,
        latencies_us,
    }
}

/// Opens the Telemetry stream of client `id` with its settings (a producer of
/// `topic`, or a simple consumer of its group) and waits for the server's answer, as
/// the official clients do; Apache's proxy serves no receive to a client without
/// settings. The stream lives as long as what this returns.
async fn handshake(
    c: &mut MessagingServiceClient<Channel>,
    addr: SocketAddr,
    id: &str,
    kind: ClientType,
    topic: &str,
) -> (
    tokio::sync::mpsc::Sender<TelemetryCommand>,
    Streaming<TelemetryCommand>,
) {
    use pocketmq_server::proto::settings::PubSub;
    let pub_sub = if kind == ClientType::Producer {
        PubSub::Publishing(Publishing {
            topics: vec![resource(topic)],
            max_body_size: 0,
            validate_message_type: true,
        })
    } else {
        PubSub::Subscription(Subscription {
            group: Some(group_of(topic)),
            subscriptions: vec![SubscriptionEntry {
                topic: Some(resource(topic)),
                expression: Some(FilterExpression {
                    r#type: FilterType::Tag as i32,
                    expression: "*".into(),
                }),
            }],
            fifo: None,
            receive_batch_size: None,
            long_polling_timeout: Some(prost_types::Duration {
                seconds: 20,
                nanos: 0,
            }),
            ..Subscription::default()
        })
    };
    let settings = Settings {
        client_type: Some(kind as i32),
        access_point: Some(Endpoints {
            scheme: AddressScheme::IPv4 as i32,
            addresses: vec![Address {
                host: addr.ip().to_string(),
                port: i32::from(addr.port()),
            }],
        }),
        backoff_policy: None,
        request_timeout: Some(prost_types::Duration {
            seconds: 10,
            nanos: 0,
        }),
        pub_sub: Some(pub_sub),
        user_agent: Some(Ua {
            language: Language::Rust as i32,
            version: env!("CARGO_PKG_VERSION").into(),
            platform: std::env::consts::OS.into(),
            hostname: "localhost".into(),
        }),
        metric: Some(Metric {
            on: false,
            endpoints: None,
        }),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(TelemetryCommand {
        status: None,
        command: Some(telemetry_command::Command::Settings(settings)),
    })
    .await
    .expect("the settings queued");
    let mut inbound = c
        .telemetry(with_headers(ReceiverStream::new(rx), id))
        .await
        .expect("telemetry")
        .into_inner();
    let reply = tokio::time::timeout(Duration::from_secs(10), inbound.message())
        .await
        .expect("the server answers the settings")
        .expect("the telemetry stream");
    assert!(reply.is_some(), "the server answered the settings");
    (tx, inbound)
}

async fn connect(addr: SocketAddr) -> MessagingServiceClient<Channel> {
    let ch = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .tcp_nodelay(true)
        .connect()
        .await
        .expect("connect");
    MessagingServiceClient::new(ch)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

fn resource(name: &str) -> Resource {
    Resource {
        resource_namespace: String::new(),
        name: name.into(),
    }
}

/// The group that consumes `topic` (core's simple consumer groups read one topic).
fn group_of(topic: &str) -> Resource {
    resource(&format!("{topic}-g"))
}

fn receive_request(topic: &str, batch: i32, poll: Duration) -> ReceiveMessageRequest {
    ReceiveMessageRequest {
        group: Some(group_of(topic)),
        message_queue: Some(MessageQueue {
            topic: Some(resource(topic)),
            ..MessageQueue::default()
        }),
        filter_expression: Some(FilterExpression {
            r#type: FilterType::Tag as i32,
            expression: "*".into(),
        }),
        batch_size: batch,
        invisible_duration: Some(prost_types::Duration {
            seconds: 60,
            nanos: 0,
        }),
        auto_renew: false,
        long_polling_timeout: Some(prost_types::Duration {
            seconds: poll.as_secs() as i64,
            nanos: poll.subsec_nanos() as i32,
        }),
        attempt_id: None,
    }
}

/// One ReceiveMessage: the messages (empty when none came within the poll).
async fn receive_once(
    c: &mut MessagingServiceClient<Channel>,
    id: &str,
    r: ReceiveMessageRequest,
) -> Vec<Message> {
    // A deadline, as the official clients give (Apache's proxy needs one, and room
    // for its 5 s shortest poll): the poll and a request timeout.
    let poll = r
        .long_polling_timeout
        .as_ref()
        .map_or(0, |d| d.seconds as u64);
    let mut req = with_headers(r, id);
    req.set_timeout(Duration::from_secs(poll.max(5) + 5));
    let mut stream = c.receive_message(req).await.expect("receive").into_inner();
    let mut out = Vec::new();
    while let Some(item) = stream.message().await.expect("the receive stream") {
        match item.content {
            Some(receive_message_response::Content::Message(m)) => out.push(m),
            Some(receive_message_response::Content::Status(st)) => assert!(
                st.code == Code::Ok as i32 || st.code == Code::MessageNotFound as i32,
                "receive refused: {st:?}"
            ),
            _ => {}
        }
    }
    out
}

async fn ack(c: &mut MessagingServiceClient<Channel>, id: &str, topic: &str, msgs: &[Message]) {
    let entries = msgs
        .iter()
        .map(|m| {
            let sys = m.system_properties.as_ref().unwrap();
            AckMessageEntry {
                message_id: sys.message_id.clone(),
                receipt_handle: sys.receipt_handle.clone().unwrap_or_default(),
                lite_topic: None,
            }
        })
        .collect();
    let r = c
        .ack_message(with_headers(
            AckMessageRequest {
                group: Some(group_of(topic)),
                topic: Some(resource(topic)),
                entries,
            },
            id,
        ))
        .await
        .expect("ack")
        .into_inner();
    assert_eq!(
        r.status.map(|s| s.code),
        Some(Code::Ok as i32),
        "ack refused"
    );
}

/// `--producers` consumer tasks, one connection each, receiving `--batch` at a time
/// and acking each batch, for `run_for` or until `want` messages are acked (a
/// receive under way when the time is up is still acked). Latencies are per
/// receive + ack.
#[allow(clippy::disallowed_methods)] // a benchmark measures real time
async fn consume(addr: SocketAddr, want: u64, run_for: Duration, o: &Options) -> Run {
    let mut clients = Vec::new();
    let mut sessions = Vec::new();
    for i in 0..o.producers {
        let mut c = connect(addr).await;
        if o.endpoint.is_some() {
            let id = format!("loadgen@{}@c{i}@bench", std::process::id());
            sessions.push(handshake(&mut c, addr, &id, ClientType::SimpleConsumer, &o.topic).await);
        }
        clients.push(c);
    }
    let done = Arc::new(AtomicU64::new(0));
    // Microseconds from the start to the ack that completed `want`: a server may
    // hold the receives still parked at the end for seconds (Apache's proxy polls
    // at least 5 s), which is no part of the throughput.
    let finished = Arc::new(AtomicU64::new(u64::MAX));
    let start = Instant::now();
    let deadline = start + run_for;
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let done = done.clone();
            let finished = finished.clone();
            let batch = o.batch;
            let topic = o.topic.clone();
            tokio::spawn(async move {
                let id = format!("loadgen@{}@c{i}@bench", std::process::id());
                let mut lat = Vec::with_capacity(1 << 14);
                while done.load(Ordering::Relaxed) < want && Instant::now() < deadline {
                    let t = Instant::now();
                    let r = receive_request(&topic, batch, Duration::from_millis(200));
                    let msgs = receive_once(&mut c, &id, r).await;
                    if msgs.is_empty() {
                        continue;
                    }
                    ack(&mut c, &id, &topic, &msgs).await;
                    lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    let n = msgs.len() as u64;
                    let before = done.fetch_add(n, Ordering::Relaxed);
                    if before < want && before + n >= want {
                        finished.fetch_min(start.elapsed().as_micros() as u64, Ordering::Relaxed);
                    }
                }
                lat
            })
        })
        .collect();
    let mut latencies_us = Vec::new();
    for t in tasks {
        latencies_us.extend(t.await.expect("a consumer task"));
    }
    drop(sessions);
    let elapsed = start.elapsed().as_secs_f64();
    Run {
        calls: done.load(Ordering::Relaxed),
        secs: elapsed.min(finished.load(Ordering::Relaxed) as f64 / 1e6),
        latencies_us,
    }
}

/// Slices of one kind of call, added up.
#[derive(Default)]
struct Total {
    calls: u64,
    secs: f64,
    latencies_us: Vec<u32>,
}

impl Total {
    fn add(&mut self, r: Run) {
        self.calls += r.calls;
        self.secs += r.secs;
        self.latencies_us.extend(r.latencies_us);
    }

    fn rate(&self) -> f64 {
        self.calls as f64 / self.secs
    }

    fn pct(&self, q: f64) -> u32 {
        let mut v = self.latencies_us.clone();
        v.sort_unstable();
        pct(&v, q)
    }
}

fn wake_message(i: usize) -> Message {
    Message {
        topic: Some(resource("loadgen-wake")),
        user_properties: Default::default(),
        system_properties: Some(SystemProperties {
            message_id: format!("01FFFF{:028X}", i),
            body_encoding: Encoding::Identity as i32,
            message_type: MessageType::Normal as i32,
            ..SystemProperties::default()
        }),
        body: b"wake".to_vec(),
    }
}

/// The long-poll wake-up: a receive waits on an empty topic (the server counts it as
/// a long poll), one message is sent; microseconds from the send's start to the
/// message reaching the receiver, `n` times. `seq` keeps message ids unique across
/// calls.
#[allow(clippy::disallowed_methods)] // a benchmark measures real time
async fn wakeups(
    server: &pocketmq_server::ServerHandle,
    noop_addr: SocketAddr,
    n: usize,
    seq: &mut usize,
) -> (Vec<u32>, Vec<u32>) {
    const R: &str = "loadgen@wake@r@bench";
    const S: &str = "loadgen@wake@s@bench";
    let addr = server.local_addr();
    let mut sender = connect(addr).await;
    let mut receiver = connect(addr).await;
    // The topic and the group's pool exist before the first wait: one message
    // through, unmeasured.
    *seq += 1;
    sender
        .send_message(with_headers(
            SendMessageRequest {
                messages: vec![wake_message(*seq)],
            },
            S,
        ))
        .await
        .expect("send");
    let first = receive_once(
        &mut receiver,
        R,
        receive_request("loadgen-wake", 1, Duration::from_secs(5)),
    )
    .await;
    assert_eq!(first.len(), 1, "the warm-up message came back");
    ack(&mut receiver, R, "loadgen-wake", &first).await;
    let mut noop = connect(noop_addr).await;
    let mut out = Vec::with_capacity(n);
    let mut rtt = Vec::with_capacity(n);
    for _ in 0..n {
        // The floor under the same conditions: one no-op unary round trip after the
        // runtime idled as long as before a wake-up's send.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let t = Instant::now();
        noop.heartbeat(with_headers(HeartbeatRequest::default(), S))
            .await
            .expect("no-op call");
        rtt.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
        let mut rc = receiver.clone();
        let waiting = tokio::spawn(async move {
            let r = receive_request("loadgen-wake", 1, Duration::from_secs(20));
            let msgs = receive_once(&mut rc, R, r).await;
            (Instant::now(), msgs)
        });
        let waited = Instant::now();
        while server.stats().long_polls == 0 {
            assert!(
                waited.elapsed() < Duration::from_secs(10),
                "the receive never waited"
            );
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        // Parked, not between two looks.
        tokio::time::sleep(Duration::from_millis(2)).await;
        *seq += 1;
        let m = wake_message(*seq);
        let sent = Instant::now();
        sender
            .send_message(with_headers(SendMessageRequest { messages: vec![m] }, S))
            .await
            .expect("send");
        let (at, msgs) = waiting.await.expect("the waiting receive");
        assert_eq!(msgs.len(), 1, "the waiting receive got the message");
        out.push(at.duration_since(sent).as_micros().min(u32::MAX as u128) as u32);
        ack(&mut receiver, R, "loadgen-wake", &msgs).await;
        while server.stats().long_polls != 0 {
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
    }
    out.sort_unstable();
    rtt.sort_unstable();
    (out, rtt)
}

fn pct(v: &[u32], q: f64) -> u32 {
    if v.is_empty() {
        return 0;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// The 1, 5 and 15 minute load averages (Linux), or "unknown".
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// One run's figures.
struct Figures {
    /// No-op calls/s in the slices between the send slices.
    noop: f64,
    send: f64,
    /// No-op calls/s in the slices between the receive+ack slices.
    noop_receive: f64,
    receive_ack: f64,
    wake_p50: u32,
    wake_p99: u32,
    /// One no-op unary round trip, alone, interleaved with the wake-ups.
    rtt_p50: u32,
    rtt_p99: u32,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "missed"
    }
}

/// The runs and their medians as a Markdown table, then the targets.
fn print_table(runs: &[Figures]) {
    println!();
    println!("| run | no-op unary calls/s | SendMessage msgs/s | send / no-op | no-op unary calls/s | receive+ack msgs/s | receive+ack / no-op | wake-up p50 us | wake-up p99 us | no-op round trip p50 us | no-op round trip p99 us |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let row = |name: String, f: &Figures| {
        println!(
            "| {name} | {:.0} | {:.0} | {:.0}% | {:.0} | {:.0} | {:.0}% | {} | {} | {} | {} |",
            f.noop,
            f.send,
            100.0 * f.send / f.noop,
            f.noop_receive,
            f.receive_ack,
            100.0 * f.receive_ack / f.noop_receive,
            f.wake_p50,
            f.wake_p99,
            f.rtt_p50,
            f.rtt_p99
        )
    };
    for (i, f) in runs.iter().enumerate() {
        row(format!("{}", i + 1), f);
    }
    let med = |g: fn(&Figures) -> f64| median(runs.iter().map(g).collect());
    let send_ratio = med(|f| f.send / f.noop);
    let recv_ratio = med(|f| f.receive_ack / f.noop_receive);
    let p99 = med(|f| f64::from(f.wake_p99));
    println!(
        "| median | {:.0} | {:.0} | {:.0}% | {:.0} | {:.0} | {:.0}% | {:.0} | {:.0} | {:.0} | {:.0} |",
        med(|f| f.noop),
        med(|f| f.send),
        100.0 * send_ratio,
        med(|f| f.noop_receive),
        med(|f| f.receive_ack),
        100.0 * recv_ratio,
        med(|f| f64::from(f.wake_p50)),
        p99,
        med(|f| f64::from(f.rtt_p50)),
        med(|f| f64::from(f.rtt_p99))
    );
    println!();
    println!(
        "send >= 60% of no-op: {} ({:.0}%); receive+ack >= 60% of no-op: {} ({:.0}%); wake-up p99 < 2000 us: {} ({:.0} us)  (medians of {} runs; ratios within each run)",
        verdict(send_ratio >= 0.6),
        100.0 * send_ratio,
        verdict(recv_ratio >= 0.6),
        100.0 * recv_ratio,
        verdict(p99 < 2000.0),
        p99,
        runs.len()
    );
}

/// Against a server elsewhere: per run, `--seconds` of sends, then receive+ack of
/// everything that run sent; throughput and the send latencies.
#[allow(clippy::disallowed_methods)] // a benchmark measures real time
async fn external(addr: SocketAddr, o: &Options) {
    println!(
        "loadgen: {addr}, topic {}, {} producers then {} consumers, {} B bodies, {} s of sends a run; \
         {} cores, load average {}",
        o.topic,
        o.producers,
        o.producers,
        o.size,
        o.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    // Whatever an earlier run left is drained, unmeasured.
    let _ = consume(addr, u64::MAX, Duration::from_secs(6), o).await;
    let mut rows = Vec::new();
    for run in 1..=o.runs {
        let s = phase(addr, Call::Send, Duration::from_secs(o.seconds), o).await;
        let r = consume(addr, s.calls, Duration::from_secs(300), o).await;
        assert!(
            r.calls >= s.calls,
            "every message sent was received and acked"
        );
        let mut lat = s.latencies_us.clone();
        lat.sort_unstable();
        let row = (
            s.calls as f64 / s.secs,
            r.calls as f64 / r.secs,
            f64::from(pct(&lat, 0.5)) / 1e3,
            f64::from(pct(&lat, 0.99)) / 1e3,
        );
        println!(
            "run {run}: send {:.0} msgs/s ({} msgs, p50 {:.2} ms, p99 {:.2} ms); receive+ack {:.0} msgs/s",
            row.0, s.calls, row.2, row.3, row.1
        );
        if o.json {
            println!(
                "{{\"send\": {:.1}, \"receive_ack\": {:.1}, \"p50_ms\": {:.3}, \"p99_ms\": {:.3}}}",
                row.0, row.1, row.2, row.3
            );
        }
        rows.push(row);
    }
    println!(
        "median of {}: send {:.0} msgs/s, receive+ack {:.0} msgs/s, send p50 {:.2} ms, p99 {:.2} ms; load average at the end {}",
        rows.len(),
        median(rows.iter().map(|r| r.0).collect()),
        median(rows.iter().map(|r| r.1).collect()),
        median(rows.iter().map(|r| r.2).collect()),
        median(rows.iter().map(|r| r.3).collect()),
        load_average()
    );
}

fn main() {
    let o = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    if let Some(addr) = o.endpoint {
        runtime.block_on(external(addr, &o));
        return;
    }
    runtime.block_on(async {
        let broker = match &o.store {
            Some(dir) => Broker::open(BrokerConfig {
                flush: o.flush,
                ..BrokerConfig::at(dir)
            })
            .expect("the store opens"),
            None => Broker::memory(),
        };
        let server = serve(
            broker,
            ServeConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                flush: o.flush,
                ..ServeConfig::default()
            },
        )
        .await
        .expect("serve");
        let noop_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let noop_addr = noop_listener.local_addr().unwrap();
        tokio::spawn(
            Server::builder()
                .add_service(MessagingServiceServer::new(Noop))
                .serve_with_incoming(
                    tonic::transport::server::TcpIncoming::from(noop_listener)
                        .with_nodelay(Some(true)),
                ),
        );
        println!(
            "loadgen: {} producers, {} B bodies, {} s per phase, store {}, flush {:?}; \
             {} cores, load average {}",
            o.producers,
            o.size,
            o.seconds,
            o.store
                .as_ref()
                .map_or("memory".to_string(), |p| p.display().to_string()),
            o.flush,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            load_average()
        );
        let mut runs = Vec::new();
        let mut seq = 0;
        for run in 1..=o.runs {
            // One-second slices, no-op and the measured call alternating, so that the
            // machine's other load weighs on both alike.
            let slice = Duration::from_secs(1);
            let (mut n, mut s) = (Total::default(), Total::default());
            let before = server.stats().messages_in;
            for _ in 0..o.seconds {
                n.add(phase(noop_addr, Call::Noop, slice, &o).await);
                s.add(phase(server.local_addr(), Call::Send, slice, &o).await);
            }
            let stored = server.stats().messages_in - before;
            assert!(stored >= s.calls, "every acknowledged send was stored");
            // Everything this run sent, received and acked, alternating with no-op
            // slices again.
            let (mut n2, mut r) = (Total::default(), Total::default());
            while r.calls < stored {
                n2.add(phase(noop_addr, Call::Noop, slice, &o).await);
                r.add(consume(server.local_addr(), stored - r.calls, slice, &o).await);
            }
            assert_eq!(
                server
                    .broker()
                    .lag(&group_of(&o.topic).name, &o.topic)
                    .unwrap(),
                0,
                "every message acked"
            );
            let (w, rtt) = wakeups(&server, noop_addr, o.wakeups, &mut seq).await;
            let f = Figures {
                noop: n.rate(),
                send: s.rate(),
                noop_receive: n2.rate(),
                receive_ack: r.rate(),
                wake_p50: pct(&w, 0.5),
                wake_p99: pct(&w, 0.99),
                rtt_p50: pct(&rtt, 0.5),
                rtt_p99: pct(&rtt, 0.99),
            };
            println!(
                "run {run}: no-op {:.0} calls/s (p50 {} us, p99 {} us); send {:.0} msgs/s (p50 {} us, p99 {} us); \
                 no-op {:.0} calls/s; receive+ack {:.0} msgs/s ({} msgs, p50 {} us, p99 {} us per receive + ack); \
                 wake-up p50 {} us, p99 {} us, max {} us ({} times; no-op round trip p50 {} us, p99 {} us)",
                f.noop,
                n.pct(0.5),
                n.pct(0.99),
                f.send,
                s.pct(0.5),
                s.pct(0.99),
                f.noop_receive,
                f.receive_ack,
                r.calls,
                r.pct(0.5),
                r.pct(0.99),
                f.wake_p50,
                f.wake_p99,
                w.last().copied().unwrap_or(0),
                w.len(),
                f.rtt_p50,
                f.rtt_p99
            );
            runs.push(f);
        }
        print_table(&runs);
        println!("load average at the end: {}", load_average());
        server.shutdown().await.expect("a clean shutdown");
    });
}
