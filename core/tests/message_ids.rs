//! Ids a sender gives (RocketMQ's UNIQ_KEY, as the RocketMQ 5 clients choose theirs):
//! reported by the send, carried by every delivery and copy, found by `get`, also
//! after a restart; malformed ones refused with nothing stored.

mod common;

use std::time::Duration;

use common::*;
use pocketmq::{ErrorKind, Message, SimpleConsumerConfig, TxState};

const ID: &str = "01AABBCCDDEEFF00112233445566778899";

fn with_id(topic: &str, body: &str, id: &str) -> Message {
    Message::builder(topic, body.to_string()).msg_id(id).build()
}

#[test]
fn a_given_id_is_reported_delivered_and_found() {
    let (b, _) = manual();
    let p = b.producer("p").unwrap();
    let r = p.send(with_id("orders", "x", ID)).unwrap();
    assert_eq!(r.msg_id, ID);
    // Messages without one still get the engine's.
    let plain = p.send(Message::new("orders", "y")).unwrap();
    assert_eq!(plain.msg_id.len(), 32);
    let got = drain(&consumer(&b, "g", "orders"));
    assert_eq!(got.len(), 2);
    let x = got.iter().find(|m| m.body_str() == Some("x")).unwrap();
    assert_eq!(x.msg_id, ID);
    assert!(!x.properties.contains_key("UNIQ_KEY"));
    let found = b.get(ID).unwrap().expect("found by its given id");
    assert_eq!(found.body_str(), Some("x"));
    assert_eq!(found.commitlog_offset, r.commitlog_offset);
    assert_eq!(b.get(&plain.msg_id).unwrap().unwrap().body_str(), Some("y"));
    assert!(b
        .get("01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF")
        .unwrap()
        .is_none());
    // A batch reports each message's own id.
    let rs = p
        .send_batch(vec![
            with_id("orders", "a", "id-a"),
            Message::new("orders", "b"),
        ])
        .unwrap();
    assert_eq!(rs[0].msg_id, "id-a");
    assert_eq!(rs[1].msg_id.len(), 32);
}

#[test]
fn retries_dead_letters_delays_and_commits_keep_the_given_id() {
    let (b, clock) = manual();
    let p = b.producer("p").unwrap();
    // A delayed message, delivered later under its id.
    let delayed = Message::builder("later", "d")
        .msg_id("delayed-1")
        .delay_ms(5_000)
        .build();
    p.send(delayed).unwrap();
    clock.advance_ms(5_000);
    b.tick().unwrap();
    let got = drain(&consumer(&b, "g", "later"));
    assert_eq!(got[0].msg_id, "delayed-1");
    // A simple consumer's message that dead-letters keeps it in %DLQ%.
    p.send(with_id("orders", "poison", ID)).unwrap();
    let sc = b
        .simple_consumer(SimpleConsumerConfig {
            max_delivery_attempts: 2,
            ..SimpleConsumerConfig::new("billing", "orders")
        })
        .unwrap();
    for attempt in 1..=2 {
        let m = sc.receive(1, Duration::ZERO).unwrap();
        assert_eq!(m[0].msg_id, ID);
        assert_eq!(m[0].delivery_attempt, attempt);
        clock.advance_ms(30_000);
        b.tick().unwrap();
    }
    let dead = drain(&consumer(&b, "ops", "%DLQ%billing"));
    assert_eq!(dead[0].msg_id, ID);
    // `get` finds the original, not the copy.
    assert_eq!(b.get(ID).unwrap().unwrap().topic, "orders");
    // A committed transaction's message keeps its id.
    let tp = b
        .transaction_producer(
            "pay",
            std::sync::Arc::new(|_: &pocketmq::MessageExt| TxState::Commit),
        )
        .unwrap();
    let (r, tx) = tp.send_half(with_id("pay", "t", "tx-msg-1")).unwrap();
    assert_eq!(r.msg_id, "tx-msg-1");
    assert!(b.end_transaction(&tx, TxState::Commit).unwrap());
    assert_eq!(drain(&consumer(&b, "g", "pay"))[0].msg_id, "tx-msg-1");
}

#[test]
fn given_ids_are_found_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = pocketmq::ManualClock::new(T0);
    {
        let b = file(dir.path(), &clock);
        b.producer("p")
            .unwrap()
            .send(with_id("orders", "kept", ID))
            .unwrap();
        b.close().unwrap();
    }
    let b = file(dir.path(), &clock);
    assert_eq!(b.get(ID).unwrap().unwrap().body_str(), Some("kept"));
}

#[test]
fn malformed_ids_are_refused_and_nothing_is_stored() {
    let (b, _) = manual();
    let p = b.producer("p").unwrap();
    let engine_shaped = p.send(Message::new("orders", "x")).unwrap().msg_id;
    for bad in [
        String::new(),
        "has space".to_string(),
        "x".repeat(129),
        "caf\u{e9}".to_string(),
        engine_shaped,
    ] {
        let e = p.send(with_id("orders", "y", &bad)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}");
    }
    assert_eq!(drain(&consumer(&b, "g", "orders")).len(), 1);
    assert_eq!(
        b.get("has space").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn one_topic_and_the_config_are_read_without_listing() {
    let (b, _) = manual();
    assert_eq!(b.topic("orders").unwrap(), None);
    b.create_topic("orders", 8).unwrap();
    let t = b.topic("orders").unwrap().unwrap();
    assert_eq!((t.name.as_str(), t.queues), ("orders", 8));
    assert_eq!(
        b.topic("bad name").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(b.config().max_message_size, 4 * 1024 * 1024);
    assert!(b.config().auto_create_topics);
}
