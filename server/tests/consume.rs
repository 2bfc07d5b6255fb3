//! Consuming over the protocol (server-mode.md §3.3, §4): the stream shapes both
//! clients read, receipt handles (stale, replaced, acked), long polls that wake on
//! arrival, expiry up to the dead-letter queue under a ManualClock, FIFO groups, and
//! clients that leave mid-poll.

mod common;

use std::time::Duration;

use common::*;
use pocketmq::Broker;
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
    // Acked twice (a client retrying its ack): OK, as Apache's proxy answers, and
    // nothing comes back.
    let again = ack(&mut client, "billing", "orders", &entries[..1]).await;
    assert_eq!(code(&again.status), Code::Ok);
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
    let (broker, clock) = manual_broker();
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

fn attempt(m: &Message) -> i32 {
    m.system_properties
        .as_ref()
        .unwrap()
        .delivery_attempt
        .unwrap()
}

async fn change(
    client: &mut Client,
    handle: &str,
    seconds: i64,
) -> ChangeInvisibleDurationResponse {
    change_as(client, handle, seconds, None).await
}

async fn change_as(
    client: &mut Client,
    handle: &str,
    seconds: i64,
    suspend: Option<bool>,
) -> ChangeInvisibleDurationResponse {
    client
        .change_invisible_duration(req(ChangeInvisibleDurationRequest {
            group: Some(resource("billing")),
            topic: Some(resource("orders")),
            receipt_handle: handle.to_string(),
            invisible_duration: Some(prost_types::Duration { seconds, nanos: 0 }),
            message_id: message_id(1),
            lite_topic: None,
            suspend,
        }))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacked_message_expires_attempt_by_attempt_into_the_dead_letter_queue() {
    let (broker, clock) = manual_broker();
    let (server, mut client) = start(broker, config()).await;
    send(
        &mut client,
        message("orders", b"never acked", &message_id(1)),
    )
    .await;
    // 1 + max_reconsume_times (16) deliveries, each left to expire.
    for n in 1..=17 {
        let (status, msgs, _) = receive(
            &mut client,
            receive_request("billing", "orders", 10),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(status, Code::Ok, "delivery {n}");
        assert_eq!(msgs.len(), 1);
        assert_eq!(attempt(&msgs[0]), n);
        assert_eq!(id(&msgs[0]), message_id(1));
        clock.advance_ms(10_001);
        server.broker().tick().unwrap();
    }
    let (status, msgs, _) = receive(
        &mut client,
        receive_request("billing", "orders", 10),
        Duration::from_millis(1500),
    )
    .await;
    assert_eq!(status, Code::MessageNotFound);
    assert!(msgs.is_empty());
    let dead = stored(server.broker(), "%DLQ%billing");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].msg_id, message_id(1));
    assert_eq!(dead[0].body_str(), Some("never acked"));
    assert_eq!(server.broker().lag("billing", "orders").unwrap(), 0);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_group_gets_the_next_message_of_a_message_group_only_after_the_ack() {
    let mut cfg = config();
    cfg.groups.insert(
        "billing".into(),
        pocketmq_server::GroupConfig {
            fifo: true,
            max_reconsume_times: 16,
        },
    );
    let (server, mut client) = start(Broker::memory(), cfg).await;
    for (n, group) in [(1, "g1"), (2, "g1"), (3, "g2")] {
        let mut m = message("orders", format!("m{n}").as_bytes(), &message_id(n));
        let sys = m.system_properties.as_mut().unwrap();
        sys.message_group = Some(group.into());
        sys.message_type = MessageType::Fifo as i32;
        assert_eq!(code(&send(&mut client, m).await.status), Code::Ok);
    }
    let (_, first, _) = receive(
        &mut client,
        receive_request("billing", "orders", 30),
        Duration::from_secs(5),
    )
    .await;
    let mut ids: Vec<String> = first.iter().map(id).collect();
    ids.sort();
    assert_eq!(ids, [message_id(1), message_id(3)], "m2 waits behind m1");
    let group_of = |m: &Message| m.system_properties.as_ref().unwrap().message_group.clone();
    assert!(first.iter().all(|m| group_of(m).is_some()));
    let (status, _, _) = receive(
        &mut client,
        receive_request("billing", "orders", 30),
        Duration::from_millis(1500),
    )
    .await;
    assert_eq!(status, Code::MessageNotFound, "blocked until m1 is acked");
    let m1 = first.iter().find(|m| id(m) == message_id(1)).unwrap();
    let r = ack(&mut client, "billing", "orders", &[(id(m1), handle(m1))]).await;
    assert_eq!(code(&r.status), Code::Ok);
    let (_, next, _) = receive(
        &mut client,
        receive_request("billing", "orders", 30),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(next.iter().map(id).collect::<Vec<_>>(), [message_id(2)]);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_poll_takes_nothing_with_it() {
    let (server, client) = start(Broker::memory(), config()).await;
    let mut leaver = connect(server.local_addr()).await;
    let waiting = tokio::spawn(async move {
        receive(
            &mut leaver,
            receive_request("billing", "orders", 30),
            Duration::from_secs(25),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.stats().long_polls, 1);
    // The client goes away while its poll waits: the call is cancelled.
    waiting.abort();
    let _ = waiting.await;
    for _ in 0..100 {
        if server.stats().long_polls == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.stats().long_polls, 0, "the poll's permit came back");
    let mut c = client.clone();
    send(&mut c, message("orders", b"after", &message_id(1))).await;
    let (status, msgs, _) = receive(
        &mut c,
        receive_request("billing", "orders", 30),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status, Code::Ok);
    assert_eq!(id(&msgs[0]), message_id(1));
    assert_eq!(attempt(&msgs[0]), 1, "the cancelled poll took nothing");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_tag_expression_resubscribes_and_earlier_handles_stay_valid() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    let tagged = |n: u32, tag: &str| {
        let mut m = message("orders", b"x", &message_id(n));
        m.system_properties.as_mut().unwrap().tag = Some(tag.into());
        m
    };
    let only = |tag: &str| {
        let mut r = receive_request("billing", "orders", 30);
        r.filter_expression.as_mut().unwrap().expression = tag.into();
        r
    };
    // As in RocketMQ, what a group's filter passes over is done for the group.
    send(&mut client, tagged(1, "A")).await;
    send(&mut client, tagged(9, "Z")).await;
    let (_, a, _) = receive(&mut client, only("A"), Duration::from_secs(5)).await;
    assert_eq!(a.iter().map(id).collect::<Vec<_>>(), [message_id(1)]);
    send(&mut client, tagged(2, "B")).await;
    let (_, b, _) = receive(&mut client, only("B || C"), Duration::from_secs(5)).await;
    assert_eq!(b.iter().map(id).collect::<Vec<_>>(), [message_id(2)]);
    let r = ack(
        &mut client,
        "billing",
        "orders",
        &[(id(&a[0]), handle(&a[0])), (id(&b[0]), handle(&b[0]))],
    )
    .await;
    assert_eq!(code(&r.status), Code::Ok, "{r:?}");
    assert_eq!(server.broker().lag("billing", "orders").unwrap(), 0);
    server.shutdown().await.unwrap();
}

/// An SQL92 filter (the clients' `FilterExpressionType.SQL92`) takes the messages whose
/// properties satisfy it, the tag as `TAGS`; a group may move between tags and SQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sql92_filter_takes_what_its_expression_selects() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    for (n, amount, tag) in [
        (1, "5", "paid"),
        (2, "500", "paid"),
        (3, "50", "refund"),
        (4, "abc", "paid"),
    ] {
        let mut m = message("orders", b"x", &message_id(n));
        m.system_properties.as_mut().unwrap().tag = Some(tag.into());
        m.user_properties.insert("amount".into(), amount.into());
        send(&mut client, m).await;
    }
    let sql = |expr: &str| {
        let mut r = receive_request("billing", "orders", 30);
        let f = r.filter_expression.as_mut().unwrap();
        f.r#type = FilterType::Sql as i32;
        f.expression = expr.into();
        r
    };
    let (status, got, _) = receive(
        &mut client,
        sql("amount >= 50 AND TAGS = 'paid'"),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status, Code::Ok);
    assert_eq!(got.iter().map(id).collect::<Vec<_>>(), [message_id(2)]);
    let r = ack(
        &mut client,
        "billing",
        "orders",
        &[(id(&got[0]), handle(&got[0]))],
    )
    .await;
    assert_eq!(code(&r.status), Code::Ok, "{r:?}");
    // What the expression passed over is done for the group, as with tags.
    assert_eq!(server.broker().lag("billing", "orders").unwrap(), 0);
    // Another group, by SQL then by tags: each receive reads by its own expression
    // (and what one passed over stays passed over).
    let mut other = sql("amount < 10");
    other.group = Some(resource("audit"));
    let (_, low, _) = receive(&mut client, other, Duration::from_secs(5)).await;
    assert_eq!(low.iter().map(id).collect::<Vec<_>>(), [message_id(1)]);
    let mut m = message("orders", b"x", &message_id(5));
    m.system_properties.as_mut().unwrap().tag = Some("refund".into());
    send(&mut client, m).await;
    let mut refunds = receive_request("audit", "orders", 30);
    refunds.filter_expression.as_mut().unwrap().expression = "refund".into();
    let (_, r, _) = receive(&mut client, refunds, Duration::from_secs(5)).await;
    assert_eq!(r.iter().map(id).collect::<Vec<_>>(), [message_id(5)]);
    server.shutdown().await.unwrap();
}

/// Two clients of one group with different expressions (a rolling upgrade from "A" to
/// "A || B"), polling at once: every receive is answered OK (they used to replace the
/// group's member under each other: errors by the thousand), and each gets only what
/// its own expression takes, as Apache's proxy filters per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_one_group_with_different_expressions_poll_side_by_side() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    let only = |tag: &str| {
        let mut r = receive_request("billing", "orders", 30);
        r.filter_expression.as_mut().unwrap().expression = tag.into();
        r.long_polling_timeout = Some(prost_types::Duration {
            seconds: 0,
            nanos: 200_000_000,
        });
        r
    };
    let poller = |expr: &'static str, mut c: Client| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..40 {
                let (status, msgs, _) = receive(&mut c, only(expr), Duration::from_secs(5)).await;
                assert!(
                    matches!(status, Code::Ok | Code::MessageNotFound),
                    "{expr}: {status:?}"
                );
                for m in &msgs {
                    let tag = m.system_properties.as_ref().unwrap().tag.clone().unwrap();
                    assert!(expr.contains(tag.as_str()), "{expr} got {tag}");
                    let r = ack(&mut c, "billing", "orders", &[(id(m), handle(m))]).await;
                    assert_eq!(code(&r.status), Code::Ok);
                }
                got.extend(msgs.iter().map(id));
            }
            got
        })
    };
    let old = poller("A", client.clone());
    let new = poller("A || B", client.clone());
    for n in 0..200u32 {
        let mut m = message("orders", b"x", &message_id(n));
        m.system_properties.as_mut().unwrap().tag = Some(if n % 2 == 0 { "A" } else { "B" }.into());
        send(&mut client, m).await;
        if n % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (old, new) = (old.await.unwrap(), new.await.unwrap());
    let mut all: Vec<_> = old.iter().chain(&new).cloned().collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "no message twice");
    assert!(!new.is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_invisible_duration_makes_the_message_visible_at_once() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    send(&mut client, message("orders", b"x", &message_id(1))).await;
    let (_, first, _) = receive(
        &mut client,
        receive_request("billing", "orders", 30),
        Duration::from_secs(5),
    )
    .await;
    // Negative: refused, and the delivery is untouched.
    let r = change(&mut client, &handle(&first[0]), -1).await;
    assert_eq!(code(&r.status), Code::IllegalInvisibleTime);
    // Zero (Node's PushConsumer nacks so): visible now, the old handle spent.
    let r = change(&mut client, &handle(&first[0]), 0).await;
    assert_eq!(code(&r.status), Code::Ok);
    let (_, again, _) = receive(
        &mut client,
        receive_request("billing", "orders", 30),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(id(&again[0]), message_id(1));
    assert_eq!(attempt(&again[0]), 2);
    let stale = ack(
        &mut client,
        "billing",
        "orders",
        &[(message_id(1), handle(&first[0]))],
    )
    .await;
    assert_eq!(code(&stale.status), Code::InvalidReceiptHandle);
    server.shutdown().await.unwrap();
}

/// `suspend` (the protocol's "server will not increment the retry times"): given back
/// unconsumed, as `connect()`'s consumers do when they close; the next delivery keeps
/// its attempt, so giving back never leads to the dead-letter queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_delivery_comes_back_with_the_same_attempt() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    send(&mut client, message("orders", b"x", &message_id(1))).await;
    // More give-backs than a group's attempts (17).
    for _ in 0..20 {
        let (_, got, _) = receive(
            &mut client,
            receive_request("billing", "orders", 30),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(id(&got[0]), message_id(1));
        assert_eq!(attempt(&got[0]), 1);
        let r = change_as(&mut client, &handle(&got[0]), 0, Some(true)).await;
        assert_eq!(code(&r.status), Code::Ok);
    }
    assert!(stored(server.broker(), "%DLQ%billing").is_empty());
    // Without it, zero is a failed attempt.
    let (_, got, _) = receive(
        &mut client,
        receive_request("billing", "orders", 30),
        Duration::from_secs(5),
    )
    .await;
    change(&mut client, &handle(&got[0]), 0).await;
    let (_, again, _) = receive(
        &mut client,
        receive_request("billing", "orders", 30),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(attempt(&again[0]), 2);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_renewed_deliveries_come_back_when_their_client_terminates() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    send(&mut client, message("orders", b"x", &message_id(1))).await;
    let mut push = receive_request("billing", "orders", 0);
    push.auto_renew = true;
    push.invisible_duration = None;
    let (_, got, _) = receive(&mut client, push, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    let mut other = connect(server.local_addr()).await;
    let r = other
        .notify_client_termination(req(NotifyClientTerminationRequest {
            group: Some(resource("billing")),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), Code::Ok);
    let mut second = receive_request("billing", "orders", 30);
    second.batch_size = 1;
    let (status, again, _) = receive(&mut other, second, Duration::from_secs(5)).await;
    assert_eq!(status, Code::Ok, "released at once, not after 60 s");
    assert_eq!(attempt(&again[0]), 2);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_ends_waiting_polls_at_once() {
    let (server, client) = start(Broker::memory(), config()).await;
    let mut c = client.clone();
    let waiting = tokio::spawn(async move {
        receive(
            &mut c,
            receive_request("billing", "orders", 30),
            Duration::from_secs(25),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = tokio::time::Instant::now();
    server.shutdown().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let (status, msgs, _) = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .expect("the poll ended with the server")
        .unwrap();
    assert_eq!(status, Code::MessageNotFound);
    assert!(msgs.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_invisible_duration_after_the_ack_is_ok_and_the_ack_stands() {
    // A client that nacks or extends a delivery it acked already (a late
    // ChangeInvisibleDuration) gets OK, and the message is not delivered again.
    let (broker, clock) = manual_broker();
    let (server, mut client) = start(broker, config()).await;
    send(&mut client, message("orders", b"x", &message_id(1))).await;
    let (_, msgs, _) = receive(
        &mut client,
        receive_request("billing", "orders", 30),
        Duration::from_secs(5),
    )
    .await;
    let h = handle(&msgs[0]);
    let acked = ack(
        &mut client,
        "billing",
        "orders",
        &[(message_id(1), h.clone())],
    )
    .await;
    assert_eq!(code(&acked.status), Code::Ok);
    for seconds in [10, 0] {
        let r = change(&mut client, &h, seconds).await;
        assert_eq!(code(&r.status), Code::Ok, "{seconds} s");
        assert!(!r.receipt_handle.is_empty());
        // The handle it answers acks OK too.
        let again = ack(
            &mut client,
            "billing",
            "orders",
            &[(message_id(1), r.receipt_handle)],
        )
        .await;
        assert_eq!(code(&again.status), Code::Ok);
    }
    clock.advance_ms(60_000);
    server.broker().tick().unwrap();
    let (status, msgs, _) = receive(
        &mut client,
        receive_request("billing", "orders", 30),
        Duration::from_millis(1500),
    )
    .await;
    assert_eq!(status, Code::MessageNotFound);
    assert!(msgs.is_empty());
    assert_eq!(server.broker().lag("billing", "orders").unwrap(), 0);
    // A handle this group never handed out is still refused.
    let r = change(&mut client, "not-a-handle", 10).await;
    assert_eq!(code(&r.status), Code::InvalidReceiptHandle);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_handed_out_before_a_restart_are_acked_changed_and_forwarded_after_it() {
    // A client keeps its handles while the server restarts (Apache's outlive a
    // restart of its proxy): its first calls after the restart, before any receive
    // of its group, are taken.
    let dir = tempfile::tempdir().unwrap();
    let clock = pocketmq::ManualClock::new(1_800_000_000_000);
    let open = || {
        Broker::open(pocketmq::BrokerConfig {
            path: Some(dir.path().to_path_buf()),
            clock: std::sync::Arc::new(clock.clone()),
            ..pocketmq::BrokerConfig::default()
        })
        .unwrap()
    };
    let (server, mut client) = start(open(), config()).await;
    for i in 1..=3 {
        send(&mut client, message("orders", b"x", &message_id(i))).await;
    }
    let (_, msgs, _) = receive(
        &mut client,
        receive_request("billing", "orders", 30),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(msgs.len(), 3);
    let held: std::collections::HashMap<String, String> =
        msgs.iter().map(|m| (id(m), handle(m))).collect();
    server.shutdown().await.unwrap();

    let (server, mut client) = start(open(), config()).await;
    // A group this store never served still refuses a handle, and is not created.
    let r = ack(
        &mut client,
        "never",
        "orders",
        &[(message_id(1), held[&message_id(1)].clone())],
    )
    .await;
    assert_eq!(code(&r.status), Code::InvalidReceiptHandle);
    assert!(!server.broker().has_simple_group("never", "orders").unwrap());
    let r = ack(
        &mut client,
        "billing",
        "orders",
        &[(message_id(1), held[&message_id(1)].clone())],
    )
    .await;
    assert_eq!(code(&r.status), Code::Ok);
    let changed = change(&mut client, &held[&message_id(2)], 60).await;
    assert_eq!(code(&changed.status), Code::Ok);
    assert_ne!(changed.receipt_handle, held[&message_id(2)]);
    let forwarded = client
        .forward_message_to_dead_letter_queue(req(ForwardMessageToDeadLetterQueueRequest {
            group: Some(resource("billing")),
            topic: Some(resource("orders")),
            receipt_handle: held[&message_id(3)].clone(),
            message_id: message_id(3),
            delivery_attempt: 1,
            max_delivery_attempts: 17,
            lite_topic: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&forwarded.status), Code::Ok);
    // Past the first invisibility nothing comes; past the changed one, the second
    // message, once, with its next attempt.
    clock.advance_ms(40_000);
    server.broker().tick().unwrap();
    let (status, _, _) = receive(
        &mut client,
        receive_request("billing", "orders", 30),
        Duration::from_millis(1500),
    )
    .await;
    assert_eq!(status, Code::MessageNotFound);
    clock.advance_ms(30_000);
    server.broker().tick().unwrap();
    let (_, msgs, _) = receive(
        &mut client,
        receive_request("billing", "orders", 30),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(msgs.iter().map(id).collect::<Vec<_>>(), [message_id(2)]);
    assert_eq!(attempt(&msgs[0]), 2);
    let dead = stored(server.broker(), "%DLQ%billing");
    assert_eq!(
        dead.iter().map(|m| m.msg_id.clone()).collect::<Vec<_>>(),
        [message_id(3)]
    );
    server.shutdown().await.unwrap();
}

/// A push consumer's receive (auto-renewed, as the official PushConsumers ask), as
/// `client`, answered at once when nothing is there.
async fn push_receive(client: &mut Client, as_client: &str) -> Vec<Message> {
    let mut r = receive_request("billing", "orders", 0);
    r.auto_renew = true;
    r.invisible_duration = None;
    r.long_polling_timeout = Some(prost_types::Duration::default());
    let mut request = req_as(as_client, r);
    request.set_timeout(Duration::from_secs(5));
    let mut stream = client.receive_message(request).await.unwrap().into_inner();
    let mut msgs = Vec::new();
    while let Some(item) = stream.message().await.unwrap() {
        if let Some(Content::Message(m)) = item.content {
            msgs.push(m);
        }
    }
    msgs
}

async fn heartbeat(client: &mut Client, as_client: &str) {
    let r = client
        .heartbeat(req_as(
            as_client,
            HeartbeatRequest {
                group: Some(resource("billing")),
                client_type: ClientType::PushConsumer as i32,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), Code::Ok);
}

/// A server on a manual clock whose polls answer at once, with one message sent.
async fn renewing_server(
    max: Duration,
) -> (pocketmq_server::ServerHandle, Client, pocketmq::ManualClock) {
    let (broker, clock) = manual_broker();
    let mut cfg = config();
    cfg.limits.long_polling_min = Duration::ZERO;
    cfg.limits.auto_renew_max = max;
    let (server, mut client) = start(broker, cfg).await;
    send(&mut client, message("orders", b"x", &message_id(1))).await;
    (server, client, clock)
}

/// Moves the clock, runs what came due in the engine and in the server.
async fn advance(server: &pocketmq_server::ServerHandle, clock: &pocketmq::ManualClock, ms: u64) {
    clock.advance_ms(ms);
    server.broker().tick().unwrap();
    server.housekeep().await;
}

const PUSH_A: &str = "push-a@1@0@a";
const PUSH_B: &str = "push-b@2@0@b";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_renewed_delivery_stays_invisible_while_its_client_lives() {
    let (server, mut client, clock) = renewing_server(Duration::from_secs(3 * 3600)).await;
    let got = push_receive(&mut client, PUSH_A).await;
    assert_eq!(got.len(), 1);
    // Ten minutes of renewals: the client heartbeats, another one polls in vain.
    for step in 0..24 {
        advance(&server, &clock, 25_000).await;
        heartbeat(&mut client, PUSH_A).await;
        assert!(
            push_receive(&mut client, PUSH_B).await.is_empty(),
            "step {step}"
        );
    }
    // Its ack by the handle it received lands on the renewed delivery.
    let r = client
        .ack_message(req_as(
            PUSH_A,
            AckMessageRequest {
                group: Some(resource("billing")),
                topic: Some(resource("orders")),
                entries: vec![AckMessageEntry {
                    message_id: id(&got[0]),
                    receipt_handle: handle(&got[0]),
                    lite_topic: None,
                }],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.entries[0].status), Code::Ok);
    advance(&server, &clock, 600_000).await;
    assert!(push_receive(&mut client, PUSH_B).await.is_empty());
    assert_eq!(server.broker().lag("billing", "orders").unwrap(), 0);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_consumer_gone_without_a_word_gives_its_deliveries_back() {
    // A PushConsumer killed (no NotifyClientTermination, no more calls): once it is
    // forgotten as idle (120 s), what the server renewed for it comes back, with its
    // next attempt, instead of being renewed for ever.
    let (server, mut client, clock) = renewing_server(Duration::from_secs(3 * 3600)).await;
    assert_eq!(push_receive(&mut client, PUSH_A).await.len(), 1);
    let mut back = None;
    for step in 1..=10u64 {
        advance(&server, &clock, 30_000).await;
        let got = push_receive(&mut client, PUSH_B).await;
        if !got.is_empty() {
            back = Some((step * 30, attempt(&got[0])));
            break;
        }
    }
    let (after, attempt) = back.expect("the delivery came back");
    assert!((120..=180).contains(&after), "back after {after} s");
    assert_eq!(attempt, 2);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_stop_after_the_longest_renewal_time() {
    let (server, mut client, clock) = renewing_server(Duration::from_secs(300)).await;
    assert_eq!(push_receive(&mut client, PUSH_A).await.len(), 1);
    let mut back = None;
    for step in 1..=20u64 {
        advance(&server, &clock, 25_000).await;
        heartbeat(&mut client, PUSH_A).await;
        let got = push_receive(&mut client, PUSH_B).await;
        if !got.is_empty() {
            back = Some((step * 25, attempt(&got[0])));
            break;
        }
    }
    let (after, attempt) = back.expect("the delivery came back");
    // Renewed until 300 s, then its last invisible time (60 s) runs out.
    assert!((300..=400).contains(&after), "back after {after} s");
    assert_eq!(attempt, 2);
    server.shutdown().await.unwrap();
}
