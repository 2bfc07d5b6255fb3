//! SendMessage: normal, FIFO and delayed messages land in the store as sent, under
//! the id the client chose.

mod common;

use std::collections::BTreeMap;

use common::*;
use pocketmq::{Broker, BrokerConfig};
use pocketmq_server::proto::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_message_is_stored_with_its_fields() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    let id = message_id(7);
    let mut m = message("orders", b"hello", &id);
    let sys = m.system_properties.as_mut().unwrap();
    sys.tag = Some("paid".into());
    sys.keys = vec!["order-42".into(), "cust-7".into()];
    m.user_properties.insert("region".into(), "eu".into());
    let r = send(&mut client, m).await;
    assert_eq!(code(&r.status), Code::Ok);
    assert_eq!(
        r.entries.len(),
        1,
        "one entry per message (Python asserts it)"
    );
    let e = &r.entries[0];
    assert_eq!(code(&e.status), Code::Ok);
    assert_eq!(e.message_id, id, "the client's id is the id it sees");
    assert_eq!(e.transaction_id, id, "as Apache's proxy: the message id");

    let got = stored(server.broker(), "orders");
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.body_str(), Some("hello"));
    assert_eq!(m.tags.as_deref(), Some("paid"));
    assert_eq!(m.keys, ["order-42", "cust-7"]);
    assert_eq!(m.properties["region"], "eu");
    assert_eq!(m.queue_offset as i64, e.offset);
    // The client's id is the store's id of the message.
    assert_eq!(m.msg_id, id);
    // The born host the client named (Apache's proxy keeps it as `__BORNHOST`).
    assert_eq!(m.properties["__BORNHOST"], "testhost");
    assert!(m
        .properties
        .keys()
        .all(|k| k == "region" || k == "__BORNHOST"));
    assert_eq!(
        server.broker().get(&id).unwrap().unwrap().body_str(),
        Some("hello")
    );
    assert_eq!(
        server.broker().query("orders", "order-42").unwrap().len(),
        1
    );
    let stats = server.stats();
    assert_eq!(stats.messages_in, 1);
    assert_eq!(stats.rpc(pocketmq_server::Rpc::SendMessage).calls, 1);

    // A client that names no born host is known by its address.
    let mut m = message("orders", b"anonymous", &message_id(8));
    m.system_properties.as_mut().unwrap().born_host.clear();
    assert_eq!(code(&send(&mut client, m).await.status), Code::Ok);
    let got = stored(server.broker(), "orders");
    let anonymous = got
        .iter()
        .find(|m| m.body_str() == Some("anonymous"))
        .unwrap();
    let host = &anonymous.properties["__BORNHOST"];
    assert!(host.starts_with("127.0.0.1:"), "{host}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_messages_of_a_group_share_a_queue_in_send_order() {
    let broker = Broker::memory();
    broker.create_topic("fifo", 8).unwrap();
    let (server, mut client) = start(broker, config()).await;
    let mut n = 0;
    for round in 0..5 {
        for group in ["g-a", "g-b", "g-c"] {
            n += 1;
            let mut m = message(
                "fifo",
                format!("{group}:{round}").as_bytes(),
                &message_id(n),
            );
            let sys = m.system_properties.as_mut().unwrap();
            sys.message_group = Some(group.into());
            sys.message_type = MessageType::Fifo as i32;
            // Node names queue 0 whatever the group; the server chooses.
            sys.queue_id = 0;
            let r = send(&mut client, m).await;
            assert_eq!(code(&r.status), Code::Ok);
        }
    }
    let got = stored(server.broker(), "fifo");
    assert_eq!(got.len(), 15);
    let mut by_group: BTreeMap<String, Vec<(u32, u64, String)>> = BTreeMap::new();
    for m in &got {
        let g = m.properties["__SHARDINGKEY"].clone();
        by_group.entry(g).or_default().push((
            m.queue_id,
            m.queue_offset,
            m.body_str().unwrap().to_string(),
        ));
    }
    assert_eq!(by_group.len(), 3);
    for (g, mut msgs) in by_group {
        let queue = msgs[0].0;
        assert!(msgs.iter().all(|m| m.0 == queue), "{g} stays in one queue");
        msgs.sort_by_key(|m| m.1);
        let bodies: Vec<String> = msgs.into_iter().map(|m| m.2).collect();
        let want: Vec<String> = (0..5).map(|r| format!("{g}:{r}")).collect();
        assert_eq!(bodies, want, "{g} in send order");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_message_appears_at_its_delivery_time_not_before() {
    let (broker, clock) = manual_broker();
    let (server, mut client) = start(broker, config()).await;
    let mut m = message("later", b"wake up", &message_id(1));
    let sys = m.system_properties.as_mut().unwrap();
    sys.message_type = MessageType::Delay as i32;
    // Python sends whole seconds.
    sys.delivery_timestamp = Some(prost_types::Timestamp {
        seconds: 1_800_000_010,
        nanos: 0,
    });
    let r = send(&mut client, m).await;
    assert_eq!(code(&r.status), Code::Ok);
    assert_eq!(r.entries[0].message_id, message_id(1));
    assert!(
        stored(server.broker(), "later").is_empty(),
        "not before its time"
    );
    clock.advance_ms(9_999);
    server.broker().tick().unwrap();
    assert!(
        stored(server.broker(), "later").is_empty(),
        "not a millisecond early"
    );
    clock.advance_ms(1);
    server.broker().tick().unwrap();
    let got = stored(server.broker(), "later");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body_str(), Some("wake up"));
    assert_eq!(got[0].msg_id, message_id(1));
    // The delivered copy keeps its delivery time, as RocketMQ's: receivers get the
    // DELAY type and the time (convert::to_proto).
    assert_eq!(
        got[0]
            .properties
            .get("TIMER_DELIVER_MS")
            .map(String::as_str),
        Some("1800000010000")
    );
    server.shutdown().await.unwrap();
}

/// RocketMQ 5.3's RecallMessage: a delayed message's send answers a recall handle,
/// and recalling with it before the delivery time cancels the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recalled_delayed_message_is_never_delivered() {
    let (broker, clock) = manual_broker();
    let (server, mut client) = start(broker, config()).await;
    let delayed = |n: u32| {
        let mut m = message("later", format!("m{n}").as_bytes(), &message_id(n));
        let sys = m.system_properties.as_mut().unwrap();
        sys.message_type = MessageType::Delay as i32;
        sys.delivery_timestamp = Some(prost_types::Timestamp {
            seconds: 1_800_000_010,
            nanos: 0,
        });
        m
    };
    let recall = |handle: &str, topic: &str| RecallMessageRequest {
        topic: Some(resource(topic)),
        recall_handle: handle.to_string(),
    };
    let first = send(&mut client, delayed(1)).await.entries.remove(0);
    let second = send(&mut client, delayed(2)).await.entries.remove(0);
    let plain = send(&mut client, message("later", b"now", &message_id(3))).await;
    assert_eq!(
        plain.entries[0].recall_handle, "",
        "only a delayed message has one"
    );
    let handle = first.recall_handle;
    assert!(!handle.is_empty());
    let r = client
        .recall_message(req(recall(&handle, "later")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), Code::Ok);
    assert_eq!(r.message_id, message_id(1));
    let again = client
        .recall_message(req(recall(&handle, "later")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        code(&again.status),
        Code::MessageNotFound,
        "recalled already"
    );
    for (h, t) in [
        (handle.as_str(), "other"),
        ("not a handle", "later"),
        ("", "later"),
    ] {
        let r = client
            .recall_message(req(recall(h, t)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(code(&r.status), Code::BadRequest, "{h:?} {t:?}");
    }
    clock.advance_ms(10_000);
    server.broker().tick().unwrap();
    let got: Vec<String> = stored(server.broker(), "later")
        .iter()
        .map(|m| m.body_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.contains(&"m2".to_string()) && got.contains(&"now".to_string()));
    let late = client
        .recall_message(req(recall(&second.recall_handle, "later")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        code(&late.status),
        Code::MessageNotFound,
        "delivered already"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_past_delivery_time_delivers_at_once() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    let mut m = message("now", b"late", &message_id(1));
    let sys = m.system_properties.as_mut().unwrap();
    sys.message_type = MessageType::Delay as i32;
    sys.delivery_timestamp = Some(prost_types::Timestamp {
        seconds: 1,
        nanos: 0,
    });
    assert_eq!(code(&send(&mut client, m).await.status), Code::Ok);
    assert_eq!(stored(server.broker(), "now").len(), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_keep_tenants_apart() {
    let (server, mut client) = start(Broker::memory(), config()).await;
    let mut m = message("orders", b"tenant", &message_id(1));
    m.topic.as_mut().unwrap().resource_namespace = "acme".into();
    assert_eq!(code(&send(&mut client, m).await.status), Code::Ok);
    assert_eq!(stored(server.broker(), "acme%orders").len(), 1);
    assert!(stored(server.broker(), "orders").is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_flushed_sends_wait_for_the_disk_off_the_async_workers() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(BrokerConfig {
        flush: pocketmq::FlushMode::Sync,
        ..BrokerConfig::at(dir.path())
    })
    .unwrap();
    let mut cfg = config();
    cfg.flush = pocketmq::FlushMode::Sync;
    let (server, client) = start(broker, cfg).await;
    let sends: Vec<_> = (0..8)
        .map(|i| {
            let mut c = client.clone();
            tokio::spawn(
                async move { send(&mut c, message("durable", b"d", &message_id(i))).await },
            )
        })
        .collect();
    for s in sends {
        assert_eq!(code(&s.await.unwrap().status), Code::Ok);
    }
    assert_eq!(stored(server.broker(), "durable").len(), 8);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_keys_are_skipped() {
    // As Apache's proxy: an empty key is no key (a blank one is still refused).
    let (server, mut client) = start(Broker::memory(), config()).await;
    let mut m = message("orders", b"with keys", &message_id(1));
    m.system_properties.as_mut().unwrap().keys = vec!["".into(), "order-42".into(), "".into()];
    let r = send(&mut client, m).await;
    assert_eq!(code(&r.status), Code::Ok);
    let mut m = message("orders", b"only empty", &message_id(2));
    m.system_properties.as_mut().unwrap().keys = vec!["".into()];
    let r = send(&mut client, m).await;
    assert_eq!(code(&r.status), Code::Ok);

    let got = stored(server.broker(), "orders");
    let keys = |body: &str| {
        got.iter()
            .find(|m| m.body_str() == Some(body))
            .map(|m| m.keys.clone())
            .unwrap()
    };
    assert_eq!(keys("with keys"), ["order-42"]);
    assert!(keys("only empty").is_empty());
    let found = server.broker().query("orders", "order-42").unwrap();
    assert_eq!(found.len(), 1);
    assert!(server.broker().query("orders", "").unwrap().is_empty());
    server.shutdown().await.unwrap();
}
