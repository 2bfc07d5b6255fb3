//! The rest of the protocol surface: RPCs answered NOT_IMPLEMENTED, the consumer and
//! transaction RPCs validating ahead of the engine, garbage on the port, heartbeats,
//! termination and the metrics endpoint.

mod common;

use std::time::Duration;

use common::*;
use pocketmq::Broker;
use pocketmq_server::proto::receive_message_response::Content;
use pocketmq_server::proto::*;
use pocketmq_server::Rpc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpcs_outside_the_eleven_answer_not_implemented() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    let c = &mut client;
    let s = c
        .update_offset(req(UpdateOffsetRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&s.status), Code::NotImplemented);
    let s = c
        .get_offset(req(GetOffsetRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&s.status), Code::NotImplemented);
    let s = c
        .query_offset(req(QueryOffsetRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&s.status), Code::NotImplemented);
    let s = c
        .sync_lite_subscription(req(SyncLiteSubscriptionRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&s.status), Code::NotImplemented);
    let mut pull = c
        .pull_message(req(PullMessageRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let first = pull.message().await.unwrap().unwrap();
    assert!(matches!(
        first.content,
        Some(pull_message_response::Content::Status(ref s)) if s.code == Code::NotImplemented as i32
    ));
    assert!(
        pull.message().await.unwrap().is_none(),
        "the stream completes"
    );
    assert_eq!(server.stats().rpc(Rpc::UpdateOffset).errors, 1);
    server.shutdown().await.unwrap();
}

fn receive_request() -> ReceiveMessageRequest {
    ReceiveMessageRequest {
        group: Some(resource("billing")),
        message_queue: Some(MessageQueue {
            topic: Some(resource("orders")),
            id: 0,
            ..MessageQueue::default()
        }),
        filter_expression: Some(FilterExpression {
            r#type: FilterType::Tag as i32,
            expression: "*".into(),
        }),
        batch_size: 16,
        invisible_duration: Some(prost_types::Duration {
            seconds: 15,
            nanos: 0,
        }),
        auto_renew: false,
        long_polling_timeout: Some(prost_types::Duration {
            seconds: 20,
            nanos: 0,
        }),
        attempt_id: None,
    }
}

async fn receive_statuses(client: &mut Client, r: ReceiveMessageRequest) -> Vec<i32> {
    let mut stream = client.receive_message(req(r)).await.unwrap().into_inner();
    let mut out = Vec::new();
    while let Some(item) = stream.message().await.unwrap() {
        match item.content.unwrap() {
            Content::Status(s) => out.push(s.code),
            Content::Message(_) => out.push(-1),
            Content::DeliveryTimestamp(_) => out.push(-2),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_rpcs_refuse_each_bad_field_with_its_code() {
    let mut cfg = config();
    let (server, mut client) = start(Broker::memory(), {
        cfg.limits.max_long_polls = 4;
        cfg
    })
    .await;
    // Each refusal is a single status element, then the stream completes.
    let mut r = receive_request();
    r.invisible_duration = Some(prost_types::Duration {
        seconds: 1,
        nanos: 0,
    });
    assert_eq!(
        receive_statuses(&mut client, r).await,
        [Code::IllegalInvisibleTime as i32]
    );
    let mut r = receive_request();
    let f = r.filter_expression.as_mut().unwrap();
    f.r#type = FilterType::Sql as i32;
    f.expression = "a >".into();
    assert_eq!(
        receive_statuses(&mut client, r).await,
        [Code::IllegalFilterExpression as i32]
    );
    let mut r = receive_request();
    r.group = Some(resource(""));
    assert_eq!(
        receive_statuses(&mut client, r).await,
        [Code::IllegalConsumerGroup as i32]
    );
    // A zero or negative invisible duration, a malformed tag expression.
    for seconds in [0, -5] {
        let mut r = receive_request();
        r.invisible_duration = Some(prost_types::Duration { seconds, nanos: 0 });
        assert_eq!(
            receive_statuses(&mut client, r).await,
            [Code::IllegalInvisibleTime as i32]
        );
    }
    for expression in ["||", " || "] {
        let mut r = receive_request();
        r.filter_expression.as_mut().unwrap().expression = expression.into();
        assert_eq!(
            receive_statuses(&mut client, r).await,
            [Code::IllegalFilterExpression as i32],
            "{expression:?}"
        );
    }

    let mut r = receive_request();
    r.message_queue.as_mut().unwrap().topic = Some(resource(""));
    assert_eq!(
        receive_statuses(&mut client, r).await,
        [Code::IllegalTopic as i32]
    );

    let ack = client
        .ack_message(req(AckMessageRequest {
            group: Some(resource("billing")),
            topic: Some(resource("orders")),
            entries: vec![AckMessageEntry {
                message_id: message_id(1),
                receipt_handle: "never-handed-out".into(),
                lite_topic: None,
            }],
        }))
        .await
        .unwrap()
        .into_inner();
    // A group that never received here holds no handle.
    assert_eq!(code(&ack.status), Code::InvalidReceiptHandle);
    assert_eq!(code(&ack.entries[0].status), Code::InvalidReceiptHandle);
    assert_eq!(ack.entries[0].message_id, message_id(1));

    let change = client
        .change_invisible_duration(req(ChangeInvisibleDurationRequest {
            group: Some(resource("billing")),
            topic: Some(resource("orders")),
            receipt_handle: String::new(),
            invisible_duration: Some(prost_types::Duration {
                seconds: 30,
                nanos: 0,
            }),
            message_id: message_id(1),
            lite_topic: None,
            suspend: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&change.status), Code::InvalidReceiptHandle);

    let dlq = client
        .forward_message_to_dead_letter_queue(req(ForwardMessageToDeadLetterQueueRequest {
            group: Some(resource("billing")),
            topic: Some(resource("orders")),
            receipt_handle: "h".into(),
            message_id: message_id(1),
            delivery_attempt: 17,
            max_delivery_attempts: 17,
            lite_topic: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&dlq.status), Code::InvalidReceiptHandle);

    let end = client
        .end_transaction(req(EndTransactionRequest {
            topic: Some(resource("orders")),
            message_id: message_id(1),
            transaction_id: String::new(),
            resolution: TransactionResolution::Commit as i32,
            source: TransactionSource::SourceClient as i32,
            trace_context: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&end.status), Code::InvalidTransactionId);
    let end = client
        .end_transaction(req(EndTransactionRequest {
            topic: Some(resource("orders")),
            message_id: message_id(1),
            transaction_id: "tx-1".into(),
            resolution: TransactionResolution::Commit as i32,
            source: TransactionSource::SourceClient as i32,
            trace_context: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&end.status), Code::InvalidTransactionId);
    assert_eq!(server.stats().long_polls, 0, "no permit leaks");
    assert!(
        server.broker().topics().unwrap().is_empty(),
        "nothing stored"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polls_beyond_the_cap_are_told_to_back_off() {
    let mut cfg = config();
    cfg.limits.max_long_polls = 0;
    let (server, mut client) = start(Broker::memory(), cfg).await;
    assert_eq!(
        receive_statuses(&mut client, receive_request()).await,
        [Code::TooManyRequests as i32]
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_port_does_not_disturb_the_server() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    for junk in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &b"\x00\x01\x02\x03 not http/2 at all \xff\xfe"[..],
        &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x04\x08\x00\x00\x00\x00\x00garbage"[..],
    ] {
        let mut conn = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .unwrap();
        let _ = conn.write_all(junk).await;
        let mut buf = [0u8; 256];
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.read(&mut buf)).await;
    }
    // A connection that opens and says nothing, left open.
    let idle = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let r = send(&mut client, message("after-junk", b"ok", &message_id(1))).await;
    assert_eq!(code(&r.status), Code::Ok);
    assert_eq!(count(server.broker(), "after-junk"), 1);
    let started = tokio::time::Instant::now();
    server.shutdown().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a connection carrying no call does not hold the shutdown up"
    );
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_and_termination_answer_ok() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    let hb = client
        .heartbeat(req(HeartbeatRequest {
            group: Some(resource("sms")),
            client_type: ClientType::PushConsumer as i32,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&hb.status), Code::Ok);
    assert_eq!(server.stats().clients, 1);
    let bye = client
        .notify_client_termination(req(NotifyClientTerminationRequest {
            group: Some(resource("sms")),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&bye.status), Code::Ok);
    assert_eq!(server.stats().clients, 0);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_as_prometheus_text() {
    let mut cfg = config();
    cfg.metrics = Some("127.0.0.1:0".parse().unwrap());
    let (server, mut client) = start(Broker::memory(), cfg).await;
    send(&mut client, message("m", b"x", &message_id(1))).await;
    let addr = server.metrics_addr().unwrap();
    let get = |path: &'static str| async move {
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        conn.read_to_string(&mut out).await.unwrap();
        out
    };
    let text = get("/metrics").await;
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(
        text.contains("pocketmq_rpc_calls_total{rpc=\"SendMessage\"} 1"),
        "{text}"
    );
    assert!(text.contains("pocketmq_messages_in_total 1"));
    assert!(get("/other").await.starts_with("HTTP/1.1 404"));
    let s = server.stats();
    let send = s.rpc(Rpc::SendMessage);
    assert_eq!((send.calls, send.errors), (1, 0));
    assert!(send.latency_quantile(0.99).is_some());
    server.shutdown().await.unwrap();
}

/// A tag expression with an empty alternative means its other tags, as RocketMQ's
/// FilterAPI (and the embedded broker) read it: "TagA ||" receives TagA only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_tag_alternative_is_skipped() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    for (tag, n) in [("TagB", 1), ("TagA", 2)] {
        let mut m = message("orders", b"x", &message_id(n));
        m.system_properties.as_mut().unwrap().tag = Some(tag.into());
        assert_eq!(code(&send(&mut client, m).await.status), Code::Ok);
    }
    for (i, expression) in ["TagA ||", "|| TagA", "TagA || || TagC"].iter().enumerate() {
        let mut r = receive_request();
        r.group = Some(resource(&format!("g{i}")));
        r.long_polling_timeout = Some(prost_types::Duration {
            seconds: 1,
            nanos: 0,
        });
        r.filter_expression.as_mut().unwrap().expression = (*expression).into();
        let statuses = receive_statuses(&mut client, r).await;
        // One message (TagA), then OK.
        assert_eq!(
            statuses.iter().filter(|s| **s == -1).count(),
            1,
            "{expression:?}: {statuses:?}"
        );
        assert!(
            statuses.contains(&(Code::Ok as i32)),
            "{expression:?}: {statuses:?}"
        );
    }
    server.shutdown().await.unwrap();
}
