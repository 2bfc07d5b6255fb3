//! Orderly consumption: one message in flight per queue; a nack pauses the queue and
//! redelivers the same message before anything later; past the limit it dead-letters.

mod common;

use common::*;
use pocketmq::{ConsumerConfig, Message};

fn orderly(b: &pocketmq::Broker, max: u32) -> pocketmq::Consumer {
    let mut cfg = ConsumerConfig::new("g", "life");
    cfg.orderly = true;
    cfg.max_reconsume_times = max;
    b.consumer(cfg).unwrap()
}

#[test]
fn a_nacked_message_blocks_its_queue_and_comes_back_first() {
    let (b, clock) = manual();
    b.create_topic("life", 2).unwrap();
    let c = orderly(&b, 16);
    let p = b.producer("p").unwrap();
    for i in 0..3 {
        p.send(
            Message::builder("life", format!("a{i}"))
                .queue_id(0)
                .build(),
        )
        .unwrap();
        p.send(
            Message::builder("life", format!("b{i}"))
                .queue_id(1)
                .build(),
        )
        .unwrap();
    }
    let first = c.receive(32, std::time::Duration::ZERO).unwrap();
    assert_eq!(first.len(), 2, "one per queue: {:?}", bodies(&first));
    let a0 = first.iter().find(|m| m.queue_id == 0).unwrap();
    let b0 = first.iter().find(|m| m.queue_id == 1).unwrap();
    c.nack(a0).unwrap();
    c.ack(b0).unwrap();
    // Queue 1 moves on; queue 0 pauses.
    assert_eq!(bodies(&drain(&c)), vec!["b1"]);
    clock.advance_ms(999);
    b.tick().unwrap();
    let got = c.receive(32, std::time::Duration::ZERO).unwrap();
    assert!(
        got.iter().all(|m| m.queue_id == 1),
        "queue 0 must still pause"
    );
    for m in &got {
        c.ack(m).unwrap();
    }
    clock.advance_ms(1);
    b.tick().unwrap();
    let again = c.receive(32, std::time::Duration::ZERO).unwrap();
    let a = again.iter().find(|m| m.queue_id == 0).expect("a0 again");
    assert_eq!(a.body_str(), Some("a0"));
    assert_eq!(a.reconsume_times, 1);
    c.ack(a).unwrap();
    let rest: Vec<String> = bodies(&drain_acking(&c));
    assert_eq!(rest, vec!["a1", "a2"]);
}

fn drain_acking(c: &pocketmq::Consumer) -> Vec<pocketmq::MessageExt> {
    let mut all = Vec::new();
    loop {
        let got = c.receive(32, std::time::Duration::ZERO).unwrap();
        if got.is_empty() {
            return all;
        }
        for m in &got {
            c.ack(m).unwrap();
        }
        all.extend(got);
    }
}

#[test]
fn past_the_limit_an_orderly_message_dead_letters_and_the_queue_moves_on() {
    let (b, clock) = manual();
    b.create_topic("life", 1).unwrap();
    let c = orderly(&b, 2);
    send(&b, "life", "bad");
    send(&b, "life", "next");
    let mut deliveries = 0;
    loop {
        let got = c.receive(32, std::time::Duration::ZERO).unwrap();
        match got.first() {
            Some(m) if m.body_str() == Some("bad") => {
                deliveries += 1;
                c.nack(m).unwrap();
            }
            Some(m) => {
                assert_eq!(m.body_str(), Some("next"));
                break;
            }
            None => {
                clock.advance_ms(1000);
                b.tick().unwrap();
            }
        }
    }
    assert_eq!(deliveries, 3);
    let dead = drain(&consumer(&b, "ops", "%DLQ%g"));
    assert_eq!(bodies(&dead), vec!["bad"]);
}

/// An orderly member named `id` (members are ordered by name when queues are shared).
fn member(b: &pocketmq::Broker, id: &str) -> pocketmq::Consumer {
    let mut cfg = ConsumerConfig::new("g", "life");
    cfg.orderly = true;
    cfg.consumer_id = Some(id.to_string());
    b.consumer(cfg).unwrap()
}

/// A queue that moves to a new member while its message is still being handled by
/// the old one is not read by the new one until that message is settled (RocketMQ's
/// queue lock): no two members ever handle one queue at once. The old member's ack,
/// nack or leaving settles it.
#[test]
fn a_queue_handed_over_mid_delivery_waits_for_the_old_member() {
    let (b, clock) = manual();
    b.create_topic("life", 2).unwrap();
    let p = b.producer("p").unwrap();
    for i in 0..4 {
        for q in 0..2 {
            let body = format!("{}{i}", ["a", "b"][q as usize]);
            p.send(Message::builder("life", body).queue_id(q).build())
                .unwrap();
        }
    }
    let now = std::time::Duration::ZERO;
    let c1 = member(&b, "c1");
    let held = c1.receive(32, now).unwrap();
    assert_eq!(bodies(&held), ["a0", "b0"]);
    // c2 takes queue 1 while b0 is unacked: nothing of it yet.
    let c2 = member(&b, "c2");
    assert!(c2.receive(32, now).unwrap().is_empty());
    // The old member's ack still counts, and frees the queue for the new one.
    c1.ack(&held[1]).unwrap();
    let next = c2.receive(32, now).unwrap();
    assert_eq!(bodies(&next), ["b1"]);
    c2.ack(&next[0]).unwrap();
    // c0 joins and takes queue 0 while a0 is unacked by c1: c1's nack sends a0 back,
    // and c0 gets it after the pause, before anything later.
    let c0 = member(&b, "c0");
    assert!(c0.receive(32, now).unwrap().is_empty());
    c1.nack(&held[0]).unwrap();
    clock.advance_ms(1000);
    b.tick().unwrap();
    let again = c0.receive(32, now).unwrap();
    assert_eq!(bodies(&again), ["a0"]);
    assert_eq!(again[0].reconsume_times, 1);
    c0.ack(&again[0]).unwrap();
    // c0 receives a1; c0 leaves, c1 takes queue 0 back (and gets a1 again); c0 comes
    // back and takes it over while c1 holds a1; c1 leaves: c0 gets a1 first.
    let a1 = c0.receive(32, now).unwrap();
    assert_eq!(bodies(&a1), ["a1"]);
    c0.close().unwrap();
    let a1 = c1.receive(32, now).unwrap();
    assert_eq!(bodies(&a1), ["a1"]);
    let c0 = member(&b, "c0");
    assert!(c0.receive(32, now).unwrap().is_empty());
    c1.close().unwrap();
    assert_eq!(bodies(&drain_acking(&c0)), ["a1", "a2", "a3"]);
    assert_eq!(bodies(&drain_acking(&c2)), ["b2", "b3"]);
}

/// A queue that goes back to the member still handling its message (the member that
/// took it over left first) stays that member's: its ack counts and it goes on.
#[test]
fn a_queue_handed_back_to_the_member_holding_its_message_goes_on_from_its_ack() {
    let (b, _clock) = manual();
    b.create_topic("life", 2).unwrap();
    let p = b.producer("p").unwrap();
    for i in 0..3 {
        p.send(
            Message::builder("life", format!("b{i}"))
                .queue_id(1)
                .build(),
        )
        .unwrap();
    }
    let now = std::time::Duration::ZERO;
    let c1 = member(&b, "c1");
    let held = c1.receive(32, now).unwrap();
    assert_eq!(bodies(&held), ["b0"]);
    let c2 = member(&b, "c2");
    assert!(c2.receive(32, now).unwrap().is_empty());
    c2.close().unwrap();
    // Queue 1 is c1's again, b0 still in its hands: nothing new until it is acked.
    assert!(c1.receive(32, now).unwrap().is_empty());
    c1.ack(&held[0]).unwrap();
    assert_eq!(bodies(&drain_acking(&c1)), ["b1", "b2"]);
}

/// A batch is one append to one queue: messages that ask for different queues
/// (their own queue_id or sharding key) are refused, nothing stored, rather than
/// all put where the first one asked.
#[test]
fn a_batch_whose_messages_ask_for_different_queues_is_refused() {
    let (b, _) = common::manual();
    b.create_topic("t", 8).unwrap();
    let p = b.producer("p").unwrap();
    let keyed = |k: &str| pocketmq::Message::builder("t", "x").sharding_key(k).build();
    let e = p.send_batch(vec![keyed("a"), keyed("b")]).unwrap_err();
    assert_eq!(e.kind(), pocketmq::ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("one queue"), "{e}");
    let e = p
        .send_batch(vec![
            pocketmq::Message::new("t", "x"),
            pocketmq::Message::builder("t", "y").queue_id(3).build(),
        ])
        .unwrap_err();
    assert_eq!(e.kind(), pocketmq::ErrorKind::InvalidArgument, "{e}");
    assert_eq!(
        b.stats().unwrap().topics["t"].messages_in,
        0,
        "nothing stored"
    );
    // One key for all: one queue, the key's.
    let r = p.send_batch(vec![keyed("a"), keyed("a")]).unwrap();
    assert_eq!(r[0].queue_id, r[1].queue_id);
}
