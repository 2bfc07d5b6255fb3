//! Load generator: SendMessage throughput against a no-op unary RPC on the same
//! machine, in the same run.
//!
//! Starts, in this process, `serve()` over a broker (in memory, or `--store DIR` for a
//! file store) and a no-op MessagingService whose Heartbeat answers at once; then
//! `--producers` tasks, each with its own connection like separate client processes,
//! send one `--size`-byte message per SendMessage for `--seconds`, and the same tasks
//! call the no-op Heartbeat for as long. Phases alternate (no-op, send, no-op, send)
//! and the better run of each counts. Prints sends/s, no-op calls/s, their ratio and
//! client-side latency percentiles.
//!
//! `cargo run --release -p pocketmq-server --example loadgen -- [--producers 16]
//!  [--size 100] [--seconds 5] [--store DIR [--flush async|sync|none]]`

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
    store: Option<std::path::PathBuf>,
    flush: FlushMode,
}

fn options() -> Options {
    let mut o = Options {
        producers: 16,
        size: 100,
        seconds: 5,
        store: None,
        flush: FlushMode::Async,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().expect("a value after the flag");
        match a.as_str() {
            "--producers" => o.producers = v().parse().expect("a count"),
            "--size" => o.size = v().parse().expect("bytes"),
            "--seconds" => o.seconds = v().parse().expect("seconds"),
            "--store" => o.store = Some(v().into()),
            "--flush" => o.flush = v().parse().expect("async, sync or none"),
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
    rate: f64,
    latencies_us: Vec<u32>,
}

/// `producers` tasks, one connection each, calling for `secs`.
#[allow(clippy::disallowed_methods)] // a benchmark measures real time
async fn phase(addr: SocketAddr, call: Call, o: &Options) -> Run {
    let mut clients = Vec::new();
    for _ in 0..o.producers {
        let ch = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .tcp_nodelay(true)
            .connect()
            .await
            .expect("connect");
        clients.push(MessagingServiceClient::new(ch));
    }
    let body = vec![b'x'; o.size];
    let stop = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let run_for = Duration::from_secs(o.seconds);
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let body = body.clone();
            let stop = stop.clone();
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
                                topic: Some(Resource {
                                    resource_namespace: String::new(),
                                    name: "loadgen".into(),
                                }),
                                user_properties: Default::default(),
                                system_properties: Some(SystemProperties {
                                    message_id: format!("01{:08X}{:024X}", i, n),
                                    body_encoding: Encoding::Identity as i32,
                                    message_type: MessageType::Normal as i32,
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
    latencies_us.sort_unstable();
    Run {
        calls: latencies_us.len() as u64,
        rate: latencies_us.len() as f64 / secs,
        latencies_us,
    }
}

fn pct(v: &[u32], q: f64) -> u32 {
    if v.is_empty() {
        return 0;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let o = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
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
            "loadgen: {} producers, {} B bodies, {} s per phase, store {}, flush {:?}",
            o.producers,
            o.size,
            o.seconds,
            o.store
                .as_ref()
                .map_or("memory".to_string(), |p| p.display().to_string()),
            o.flush
        );
        let mut best_noop: Option<Run> = None;
        let mut best_send: Option<Run> = None;
        for round in 1..=2 {
            let n = phase(noop_addr, Call::Noop, &o).await;
            println!("round {round}: no-op {:>9.0} calls/s", n.rate);
            let s = phase(server.local_addr(), Call::Send, &o).await;
            println!("round {round}: send  {:>9.0} msgs/s", s.rate);
            if best_noop.as_ref().is_none_or(|b| n.rate > b.rate) {
                best_noop = Some(n);
            }
            if best_send.as_ref().is_none_or(|b| s.rate > b.rate) {
                best_send = Some(s);
            }
        }
        let (n, s) = (best_noop.unwrap(), best_send.unwrap());
        println!(
            "no-op unary: {:.0} calls/s ({} calls)  p50 {} us  p99 {} us",
            n.rate,
            n.calls,
            pct(&n.latencies_us, 0.5),
            pct(&n.latencies_us, 0.99)
        );
        println!(
            "SendMessage: {:.0} msgs/s ({} msgs)  p50 {} us  p99 {} us",
            s.rate,
            s.calls,
            pct(&s.latencies_us, 0.5),
            pct(&s.latencies_us, 0.99)
        );
        println!(
            "send / no-op: {:.0}%  (target >= 60%)",
            100.0 * s.rate / n.rate
        );
        let stored = server.stats().messages_in;
        assert!(stored >= s.calls, "every acknowledged send was stored");
        server.shutdown().await.expect("a clean shutdown");
    });
}
