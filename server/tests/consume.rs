//! Consuming over the protocol (server-mode.md §3.3, §4): the stream shapes both
//! clients read, receipt handles (stale, replaced, acked), long polls that wake on
//! arrival, expiry up to the dead-letter queue under a ManualClock, FIFO groups, and
//! clients that leave mid-poll.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use pocketmq::{Broker, BrokerConfig, ManualClock};
use pocketmq_server::proto::receive_message_response::Content;
use pocketmq_server::proto::*;

fn receive_request(group: &str, topic: &str, invisible_s: i64) -> ReceiveMessageRequest {
    ReceiveMessageRequest {
        group: Some(resource(group)),
        message_queue: Some(MessageQueue {
            topic: Some(resource(topic)),
            id: 0,
            ..MessageQueue::default()
        }),
        filter_expression: Some(FilterExpression {
            r#type: FilterType::Tag as i32,
            expression: "*".into(),
        }),
        batch_size: 32,
        invisible_duration: Some(prost_types::Duration {
            seconds: invisible_s,
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

/// The stream's parts: the leading status, the messages, whether it ended with a
/// delivery timestamp.
async fn receive(
    client: &mut Client,
    r: ReceiveMessageRequest,
    deadline: Duration,
) -> (Code, Vec<Message>, bool) {
    let mut request = req(r);
    request.set_timeout(deadline);
    let mut stream = client.receive_message(request).await.unwrap().into_inner();
    let (mut status, mut msgs, mut stamped) = (None, Vec::new(), false);
    while let Some(item) = stream.message().await.unwrap() {
        assert!(!stamped, "the delivery timestamp comes last");
        match item.content.unwrap() {
            Content::Status(s) => {
                assert!(status.is_none() && msgs.is_empty(), "one status, first");
                status = Some(Code::try_from(s.code).unwrap());
            }
            Content::Message(m) => msgs.push(m),
            Content::DeliveryTimestamp(_) => stamped = true,
        }
    }
    (status.expect("a status"), msgs, stamped)
}

fn handle(m: &Message) -> String {
    m.system_properties
        .as_ref()
        .unwrap()
        .receipt_handle
        .clone()
        .unwrap()
}

fn id(m: &Message) -> String {
    m.system_properties.as_ref().unwrap().message_id.clone()
}

async fn ack(
    client: &mut Client,
    group: &str,
    topic: &str,
    msgs: &[(String, String)],
) -> AckMessageResponse {
    client
        .ack_message(req(AckMessageRequest {
            group: Some(resource(group)),
            topic: Some(resource(topic)),
            entries: msgs
                .iter()
                .map(|(id, h)| AckMessageEntry {
                    message_id: id.clone(),
                    receipt_handle: h.clone(),
                    lite_topic: None,
                })
                .collect(),
        }))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn received_messages_carry_handles_and_acks_end_them() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    for i in 0..3 {
        let mut m = message("orders", format!("m{i}").as_bytes(), &message_id(i));
        m.system_properties.as_mut().unwrap().tag = Some("paid".into());
        assert_eq!(code(&send(&mut client, m).await.status), Code::Ok);
    }
    let (status, msgs, stamped) = receive(
        &mut client,
        receive_request("billing", "orders", 30),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status, Code::Ok);
    assert!(stamped);
    assert_eq!(msgs.len(), 3);
    let mut ids: Vec<String> = msgs.iter().map(id).collect();
    ids.sort();
    assert_eq!(ids, [message_id(0), message_id(1), message_id(2)]);
    for m in &msgs {
        let sys = m.system_properties.as_ref().unwrap();
        assert_eq!(sys.delivery_attempt, Some(1));
        assert_eq!(sys.tag.as_deref(), Some("paid"));
        assert_eq!(sys.body_encoding, Encoding::Identity as i32);
        assert_eq!(
            sys.body_digest.as_ref().unwrap().r#type,
            DigestType::Md5 as i32
        );
        assert_eq!(m.topic, Some(resource("orders")));
        assert!(!handle(m).is_empty());
    }
    let entries: Vec<_> = msgs.iter().map(|m| (id(m), handle(m))).collect();
    let r = ack(&mut client, "billing", "orders", &entries).await;
    assert_eq!(code(&r.status), Code::Ok);
    assert!(r.entries.iter().all(|e| code(&e.status) == Code::Ok));
    // Acked twice: the handles are spent.
    let again = ack(&mut client, "billing", "orders", &entries[..1]).await;
    assert_eq!(code(&again.status), Code::InvalidReceiptHandle);
    // Nothing left: MESSAGE_NOT_FOUND, after the poll (kept inside the deadline).
    let (status, msgs, stamped) = receive(
        &mut client,
        receive_request("billing", "orders", 30),
        Duration::from_millis(1500),
    )
    .await;
    assert_eq!(status, Code::MessageNotFound);
    assert!(msgs.is_empty() && stamped);
    assert_eq!(server.broker().lag("billing", "orders").unwrap(), 0);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_invisible_duration_replaces_the_handle() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    send(&mut client, message("orders", b"x", &message_id(1))).await;
    let (_, msgs, _) = receive(
        &mut client,
        receive_request("billing", "orders", 15),
        Duration::from_secs(5),
    )
    .await;
    let old = handle(&msgs[0]);
    let r = client
        .change_invisible_duration(req(ChangeInvisibleDurationRequest {
            group: Some(resource("billing")),
            topic: Some(resource("orders")),
            receipt_handle: old.clone(),
            invisible_duration: Some(prost_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
            message_id: message_id(1),
            lite_topic: None,
            suspend: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), Code::Ok);
    assert_ne!(r.receipt_handle, old);
    let stale = ack(&mut client, "billing", "orders", &[(message_id(1), old)]).await;
    assert_eq!(code(&stale.entries[0].status), Code::InvalidReceiptHandle);
    let fresh = ack(
        &mut client,
        "billing",
        "orders",
        &[(message_id(1), r.receipt_handle)],
    )
    .await;
    assert_eq!(code(&fresh.entries[0].status), Code::Ok);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_receive_wakes_when_a_message_arrives() {
    let (server, client) = start(Broker::memory(), config()).await;
    let mut receiver = client.clone();
    let waiting = tokio::spawn(async move {
        receive(
            &mut receiver,
            receive_request("billing", "orders", 30),
            Duration::from_secs(25),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.stats().long_polls, 1);
    let mut sender = client.clone();
    send(&mut sender, message("orders", b"wake", &message_id(1))).await;
    let (status, msgs, _) = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .expect("woken within 2 s, not at the end of the poll")
        .unwrap();
    assert_eq!(status, Code::Ok);
    assert_eq!(id(&msgs[0]), message_id(1));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_delivery_comes_back_with_the_next_attempt() {
    let clock = ManualClock::new(1_800_000_000_000);
    let broker = Broker::open(BrokerConfig {
        clock: Arc::new(clock.clone()),
        ..BrokerConfig::default()
    })
    .unwrap();
    let (server, mut client) = start(broker, config()).await;
    send(&mut client, message("orders", b"x", &message_id(1))).await;
    let (_, first, _) = receive(
        &mut client,
        receive_request("billing", "orders", 10),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        first[0]
            .system_properties
            .as_ref()
            .unwrap()
            .delivery_attempt,
        Some(1)
    );
    clock.advance_ms(10_001);
    server.broker().tick().unwrap();
    let (_, second, _) = receive(
        &mut client,
        receive_request("billing", "orders", 10),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(id(&second[0]), message_id(1));
    assert_eq!(
        second[0]
            .system_properties
            .as_ref()
            .unwrap()
            .delivery_attempt,
        Some(2)
    );
    let stale = ack(
        &mut client,
        "billing",
        "orders",
        &[(message_id(1), handle(&first[0]))],
    )
    .await;
    assert_eq!(code(&stale.entries[0].status), Code::InvalidReceiptHandle);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_delivery_lands_in_the_dead_letter_queue() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    send(&mut client, message("orders", b"poison", &message_id(1))).await;
    let (_, msgs, _) = receive(
        &mut client,
        receive_request("billing", "orders", 30),
        Duration::from_secs(5),
    )
    .await;
    let r = client
        .forward_message_to_dead_letter_queue(req(ForwardMessageToDeadLetterQueueRequest {
            group: Some(resource("billing")),
            topic: Some(resource("orders")),
            receipt_handle: handle(&msgs[0]),
            message_id: message_id(1),
            delivery_attempt: 1,
            max_delivery_attempts: 17,
            lite_topic: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), Code::Ok);
    let dead = stored(server.broker(), "%DLQ%billing");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body_str(), Some("poison"));
    assert_eq!(server.broker().lag("billing", "orders").unwrap(), 0);
    server.shutdown().await.unwrap();
}
