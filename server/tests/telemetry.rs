//! The Telemetry settings handshake the clients block on (server-mode.md §3.1).

mod common;

use std::time::Duration;

use common::*;
use pocketmq::Broker;
use pocketmq_server::proto::settings::PubSub;
use pocketmq_server::proto::telemetry_command::Command;
use pocketmq_server::proto::*;
use pocketmq_server::GroupConfig;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

type Outbound = mpsc::Sender<TelemetryCommand>;

async fn open(client: &mut Client) -> (Outbound, tonic::Streaming<TelemetryCommand>) {
    let (tx, rx) = mpsc::channel(8);
    let inbound = client
        .telemetry(req(ReceiverStream::new(rx)))
        .await
        .expect("the stream opens")
        .into_inner();
    (tx, inbound)
}

async fn answer(
    tx: &Outbound,
    inbound: &mut tonic::Streaming<TelemetryCommand>,
    s: Settings,
) -> TelemetryCommand {
    tx.send(TelemetryCommand {
        status: None,
        command: Some(Command::Settings(s)),
    })
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(5), inbound.message())
        .await
        .expect("a reply within 5 s")
        .expect("no error")
        .expect("the stream stays open")
}

fn base(kind: ClientType) -> Settings {
    Settings {
        client_type: Some(kind as i32),
        access_point: Some(Endpoints::default()),
        request_timeout: Some(prost_types::Duration {
            seconds: 3,
            nanos: 0,
        }),
        user_agent: Some(Ua {
            language: Language::Python as i32,
            version: "5.1.2".into(),
            platform: "linux".into(),
            hostname: "testhost".into(),
        }),
        metric: Some(Metric {
            on: false,
            endpoints: None,
        }),
        ..Settings::default()
    }
}

fn producer() -> Settings {
    Settings {
        pub_sub: Some(PubSub::Publishing(Publishing {
            topics: vec![resource("orders")],
            // Node sends none: the reply's value is what it enforces.
            max_body_size: 0,
            validate_message_type: true,
        })),
        ..base(ClientType::Producer)
    }
}

fn consumer(kind: ClientType, group: &str) -> Settings {
    Settings {
        pub_sub: Some(PubSub::Subscription(Subscription {
            group: Some(resource(group)),
            subscriptions: vec![SubscriptionEntry {
                topic: Some(resource("orders")),
                expression: Some(FilterExpression {
                    r#type: FilterType::Tag as i32,
                    expression: "*".into(),
                }),
            }],
            long_polling_timeout: Some(prost_types::Duration {
                seconds: 30,
                nanos: 0,
            }),
            ..Subscription::default()
        })),
        ..base(kind)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_get_an_exponential_backoff_and_the_body_limit() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    let (tx, mut inbound) = open(&mut client).await;
    let reply = answer(&tx, &mut inbound, producer()).await;
    assert_eq!(code(&reply.status), Code::Ok);
    let Some(Command::Settings(s)) = reply.command else {
        panic!("settings expected, got {reply:?}")
    };
    let backoff = s
        .backoff_policy
        .expect("a backoff policy (Node and Java dereference it)");
    assert_eq!(backoff.max_attempts, 3);
    let Some(retry_policy::Strategy::ExponentialBackoff(e)) = backoff.strategy else {
        panic!("an exponential backoff for producers")
    };
    assert_eq!(e.initial.unwrap().nanos, 10_000_000);
    assert_eq!(e.max.unwrap().seconds, 1);
    assert_eq!(e.multiplier, 2.0);
    let Some(PubSub::Publishing(p)) = s.pub_sub else {
        panic!("publishing settings")
    };
    assert_eq!(p.max_body_size, 4 * 1024 * 1024);
    assert!(p.validate_message_type);
    assert_eq!(p.topics, vec![resource("orders")]);
    assert_eq!(s.client_type, Some(ClientType::Producer as i32));
    assert_eq!(s.user_agent.unwrap().version, "5.1.2");
    assert_eq!(server.stats().telemetry_streams, 1);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_get_the_retry_ladder_fifo_and_the_long_poll() {
    let mut cfg = config();
    cfg.groups.insert(
        "billing".into(),
        GroupConfig {
            fifo: true,
            max_reconsume_times: 16,
        },
    );
    let (server, mut client) = start(Broker::memory(), cfg).await;
    for (kind, group, fifo) in [
        (ClientType::SimpleConsumer, "billing", true),
        (ClientType::PushConsumer, "sms", false),
    ] {
        let (tx, mut inbound) = open(&mut client).await;
        let reply = answer(&tx, &mut inbound, consumer(kind, group)).await;
        assert_eq!(code(&reply.status), Code::Ok);
        let Some(Command::Settings(s)) = reply.command else {
            panic!("settings expected")
        };
        let backoff = s.backoff_policy.expect("a backoff policy");
        assert_eq!(backoff.max_attempts, 17);
        let Some(retry_policy::Strategy::CustomizedBackoff(c)) = backoff.strategy else {
            panic!("a customized backoff for consumers")
        };
        assert_eq!(c.next.len(), 16);
        assert_eq!(c.next[0].seconds, 10);
        let Some(PubSub::Subscription(sub)) = s.pub_sub else {
            panic!("subscription settings")
        };
        assert_eq!(sub.fifo, Some(fifo), "{group}");
        assert_eq!(sub.receive_batch_size, Some(32));
        // Present for every consumer: the Python PushConsumer copies it verbatim.
        assert_eq!(sub.long_polling_timeout.unwrap().seconds, 20);
        assert_eq!(sub.group, Some(resource(group)));
        assert_eq!(sub.subscriptions.len(), 1);
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_reply_is_repeated_for_node_clients_only() {
    // Node installs its listener only after fetching all its topics' routes.
    let (server, mut client) = start(Broker::memory(), config()).await;
    let (tx, mut inbound) = open(&mut client).await;
    let mut node = producer();
    node.user_agent.as_mut().unwrap().language = Language::NodeJs as i32;
    let first = answer(&tx, &mut inbound, node).await;
    let again = tokio::time::timeout(Duration::from_secs(2), inbound.message())
        .await
        .expect("a repeat within 2 s")
        .unwrap()
        .unwrap();
    assert_eq!(again, first);
    // Others get it once (the Rust client logs an unasked settings command as an
    // error); the repeats would all have come within 3 s.
    let (tx, mut inbound) = open(&mut client).await;
    answer(&tx, &mut inbound, producer()).await;
    let more = tokio::time::timeout(Duration::from_millis(3500), inbound.message()).await;
    assert!(more.is_err(), "no repeat for a Python client: {more:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_without_a_client_type_are_refused_on_an_open_stream() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    let (tx, mut inbound) = open(&mut client).await;
    let reply = answer(&tx, &mut inbound, Settings::default()).await;
    assert_eq!(code(&reply.status), Code::UnrecognizedClientType);
    assert!(reply.command.is_none());
    // The stream stays open: the client may correct itself.
    let reply = answer(&tx, &mut inbound, producer()).await;
    assert_eq!(code(&reply.status), Code::Ok);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_stream_is_cleaned_up_and_others_go_on() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    let (tx, mut inbound) = open(&mut client).await;
    answer(&tx, &mut inbound, producer()).await;
    assert_eq!(server.stats().telemetry_streams, 1);
    // Close the client's side and drop the response half without reading it.
    drop(tx);
    drop(inbound);
    drop(client);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.stats().telemetry_streams != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream was not cleaned up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut other = connect(server.local_addr()).await;
    let (tx, mut inbound) = open(&mut other).await;
    let reply = answer(&tx, &mut inbound, producer()).await;
    assert_eq!(code(&reply.status), Code::Ok);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_streams_and_releases_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(pocketmq::BrokerConfig::at(dir.path())).unwrap();
    let (server, mut client) = start(broker, config()).await;
    let (tx, mut inbound) = open(&mut client).await;
    answer(&tx, &mut inbound, producer()).await;
    let r = send(&mut client, message("orders", b"kept", &message_id(1))).await;
    assert_eq!(code(&r.status), Code::Ok);
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown does not wait for the client's open stream")
        .unwrap();
    // The client sees its stream end, not hang.
    let end = tokio::time::timeout(Duration::from_secs(5), inbound.message()).await;
    assert!(matches!(end, Ok(Ok(None)) | Ok(Err(_))), "{end:?}");
    // The store was flushed and its lock released.
    let again = Broker::open(pocketmq::BrokerConfig::at(dir.path())).unwrap();
    assert_eq!(stored(&again, "orders")[0].body_str(), Some("kept"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_closing_its_side_ends_the_stream_at_once() {
    // The Java client's close() half-closes its stream and waits for the server's end
    // of it; the first settings reply's repeats must not hold the stream open.
    let (server, mut client) = start(Broker::memory(), config()).await;
    let (tx, mut inbound) = open(&mut client).await;
    answer(&tx, &mut inbound, producer()).await;
    let started = tokio::time::Instant::now();
    drop(tx);
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match inbound.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ends");
    assert!(matches!(end, Ok(None)), "ended with OK: {end:?}");
    // Held open by the repeats, it would end after the last one (3 s); the bound
    // leaves a busy machine room.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "ended after {:?}",
        started.elapsed()
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_closed_before_any_settings_ends_at_once() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    let (tx, mut inbound) = open(&mut client).await;
    drop(tx);
    let end = tokio::time::timeout(Duration::from_secs(1), inbound.message())
        .await
        .expect("the stream ends within 1 s");
    assert!(matches!(end, Ok(None)), "ended with OK: {end:?}");
    server.shutdown().await.unwrap();
}
