//! Retries and dead letters under a manual clock: the ladder of delay levels 3..18,
//! the limit, and what the dead-letter copy keeps.

mod common;

use common::*;
use pocketmq::{ConsumerConfig, Message};

const LADDER_S: [u64; 16] = [
    10, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1200, 1800, 3600, 7200,
];

#[test]
fn a_message_nacked_every_time_climbs_the_ladder_then_dead_letters() {
    let (b, clock) = manual();
    let c = consumer(&b, "g", "orders");
    let p = b.producer("p").unwrap();
    let sent = p
        .send(
            Message::builder("orders", "pay")
                .tags("paid")
                .key("order-7")
                .property("k", "v")
                .build(),
        )
        .unwrap();
    let mut deliveries = 0;
    let mut m = drain(&c).pop().expect("the first delivery");
    loop {
        deliveries += 1;
        assert_eq!(m.msg_id, sent.msg_id);
        assert_eq!(m.topic, "orders");
        assert_eq!(m.reconsume_times as usize, deliveries - 1);
        c.nack(&m).unwrap();
        if deliveries == 17 {
            break;
        }
        let wait = LADDER_S[deliveries - 1] * 1000;
        clock.advance_ms(wait - 1);
        b.tick().unwrap();
        assert!(
            drain(&c).is_empty(),
            "visible 1 ms early at delivery {deliveries}"
        );
        clock.advance_ms(1);
        b.tick().unwrap();
        let got = drain(&c);
        assert_eq!(got.len(), 1, "due at delivery {}", deliveries + 1);
        m = got.into_iter().next().unwrap();
        assert_eq!(
            m.properties.get("RETRY_TOPIC").map(String::as_str),
            Some("orders")
        );
        assert_eq!(m.properties.get("ORIGIN_MESSAGE_ID"), Some(&sent.msg_id));
    }
    assert_eq!(deliveries, 17);
    clock.advance_ms(10 * 3600 * 1000);
    b.tick().unwrap();
    assert!(drain(&c).is_empty());
    let dlq = consumer(&b, "ops", "%DLQ%g");
    let dead = drain(&dlq);
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(d.reconsume_times, 17);
    assert_eq!(d.msg_id, sent.msg_id);
    assert_eq!(d.body_str(), Some("pay"));
    assert_eq!(d.tags.as_deref(), Some("paid"));
    assert_eq!(d.keys, vec!["order-7"]);
    assert_eq!(d.properties.get("k").map(String::as_str), Some("v"));
    assert_eq!(
        d.properties.get("RETRY_TOPIC").map(String::as_str),
        Some("orders")
    );
    assert_eq!(d.properties.get("ORIGIN_MESSAGE_ID"), Some(&sent.msg_id));
    assert_eq!(b.get(&sent.msg_id).unwrap().unwrap().topic, "orders");
    assert_eq!(b.lag("g", "orders").unwrap(), 0);
}

#[test]
fn max_reconsume_times_two_means_three_deliveries() {
    let (b, clock) = manual();
    let mut cfg = ConsumerConfig::new("g", "t");
    cfg.max_reconsume_times = 2;
    let c = b.consumer(cfg).unwrap();
    send(&b, "t", "x");
    let mut deliveries = 0;
    for _ in 0..10 {
        for m in drain(&c) {
            deliveries += 1;
            c.nack(&m).unwrap();
        }
        clock.advance_ms(3600 * 1000);
        b.tick().unwrap();
    }
    assert_eq!(deliveries, 3);
    let dead = drain(&consumer(&b, "ops", "%DLQ%g"));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reconsume_times, 3);
}

#[test]
fn broadcasting_nacks_are_dropped() {
    let (b, clock) = manual();
    let mut cfg = ConsumerConfig::new("g", "t");
    cfg.model = pocketmq::MessageModel::Broadcasting;
    let c = b.consumer(cfg).unwrap();
    send(&b, "t", "x");
    for m in drain(&c) {
        c.nack(&m).unwrap();
    }
    clock.advance_ms(3600 * 1000);
    b.tick().unwrap();
    assert!(drain(&c).is_empty());
}

#[test]
fn a_retried_message_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = pocketmq::ManualClock::new(T0);
    {
        let b = file(dir.path(), &clock);
        let c = consumer(&b, "g", "t");
        send(&b, "t", "x");
        let m = drain(&c).pop().unwrap();
        c.nack(&m).unwrap();
        b.close().unwrap();
    }
    let b = file(dir.path(), &clock);
    assert_eq!(b.lag("g", "t").unwrap(), 1, "its retry waits, not acked");
    let c = consumer(&b, "g", "t");
    assert!(drain(&c).is_empty());
    clock.advance_ms(10_000);
    b.tick().unwrap();
    let got = drain(&c);
    assert_eq!(bodies(&got), vec!["x"]);
    assert_eq!(got[0].reconsume_times, 1);
    assert_eq!(b.lag("g", "t").unwrap(), 1);
    c.ack(&got[0]).unwrap();
    assert_eq!(b.lag("g", "t").unwrap(), 0);
}

/// The child half of the kill test: receives one message, nacks it, flushes, reports,
/// then waits to be killed.
#[test]
fn nacking_child() {
    let Ok(dir) = std::env::var("POCKETMQ_RETRY_DIR") else {
        return;
    };
    let clock = pocketmq::ManualClock::new(T0);
    let b = file(std::path::Path::new(&dir), &clock);
    send(&b, "t", "x");
    let c = consumer(&b, "g", "t");
    let m = drain(&c).pop().unwrap();
    c.nack(&m).unwrap();
    b.flush().unwrap();
    println!("NACKED {}", m.msg_id);
    std::thread::sleep(std::time::Duration::from_secs(60));
}

/// A retry waiting when the process is killed is still behind after recovery, and
/// leaves the lag once its redelivery is acked.
#[test]
fn a_retry_waiting_at_a_kill_stays_in_the_lag() {
    let dir = tempfile::tempdir().unwrap();
    let nacked = kill_child_after("nacking_child", "POCKETMQ_RETRY_DIR", dir.path(), "NACKED ");
    let clock = pocketmq::ManualClock::new(T0);
    let b = file(dir.path(), &clock);
    assert_eq!(b.lag("g", "t").unwrap(), 1, "its retry waits");
    let c = consumer(&b, "g", "t");
    assert!(drain(&c).is_empty(), "the original was nacked, not lost");
    clock.advance_ms(10_000);
    b.tick().unwrap();
    let got = drain(&c);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].msg_id, nacked);
    assert_eq!(b.lag("g", "t").unwrap(), 1);
    c.ack(&got[0]).unwrap();
    assert_eq!(b.lag("g", "t").unwrap(), 0);
}

#[test]
fn lag_counts_a_nacked_message_until_a_redelivery_is_acked_or_dead_letters() {
    let (b, clock) = manual();
    let mut cfg = ConsumerConfig::new("g", "a");
    cfg.max_reconsume_times = 1;
    let c = b.consumer(cfg).unwrap();
    send_numbered(&b, "a", "a", 5);
    send_numbered(&b, "b", "b", 2);
    let got = drain(&c);
    assert_eq!(got.len(), 5);
    assert_eq!(b.lag("g", "a").unwrap(), 5, "received, not acked");
    for m in &got[..3] {
        c.ack(m).unwrap();
    }
    // One waits behind level 3, one behind a timer.
    c.nack(&got[3]).unwrap();
    c.nack_after(&got[4], std::time::Duration::from_secs(2))
        .unwrap();
    assert_eq!(b.lag("g", "a").unwrap(), 2);
    // A delayed send is not behind before it is delivered, nor is it a retry.
    let p = b.producer("p").unwrap();
    p.send(Message::builder("a", "later").delay_ms(3_600_000).build())
        .unwrap();
    assert_eq!(b.lag("g", "a").unwrap(), 2);
    assert_eq!(
        b.lag("g", "b").unwrap(),
        2,
        "another topic: its own messages only"
    );
    assert_eq!(b.lag("h", "a").unwrap(), 5, "another group");
    let in_stats = |t: &str| {
        let s = b.stats().unwrap();
        s.groups
            .iter()
            .find(|g| g.group == "g" && g.topic == t)
            .map(|g| g.lag)
    };
    assert_eq!(in_stats("a"), Some(2));
    // Delivered again: still not acked.
    clock.advance_ms(10_000);
    b.tick().unwrap();
    let again = drain(&c);
    assert_eq!(again.len(), 2);
    assert_eq!(b.lag("g", "a").unwrap(), 2);
    c.ack(&again[0]).unwrap();
    assert_eq!(b.lag("g", "a").unwrap(), 1);
    assert_eq!(in_stats("a"), Some(1));
    // Failed past max_reconsume_times: a dead letter, no longer behind.
    c.nack(&again[1]).unwrap();
    assert_eq!(b.lag("g", "a").unwrap(), 0);
    assert_eq!(in_stats("a"), Some(0));
    assert_eq!(drain(&consumer(&b, "ops", "%DLQ%g")).len(), 1);
}

#[test]
fn the_largest_message_a_segment_takes_can_still_be_retried_and_dead_lettered() {
    // A message that filled a segment would be stored, but its retry copy (more
    // properties, a longer topic) would fit nowhere: refused at send instead, and
    // the largest one taken climbs the ladder to the DLQ like any other.
    const SEG: usize = 64 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let clock = pocketmq::ManualClock::new(T0);
    let b = pocketmq::Broker::open(pocketmq::BrokerConfig {
        segment_size: Some(SEG as u64),
        max_message_size: SEG,
        ..file_config(dir.path(), &clock)
    })
    .unwrap();
    let p = b.producer("p").unwrap();
    let err = p
        .send(Message::new("t", vec![b'x'; SEG - 200]))
        .unwrap_err();
    assert_eq!(err.kind(), pocketmq::ErrorKind::MessageTooLarge);
    let limit = match err {
        pocketmq::Error::MessageTooLarge { limit, .. } => limit,
        e => panic!("{e}"),
    };
    // The largest body whose record is within the limit.
    let mut body = limit;
    let sent = loop {
        match p.send(Message::new("t", vec![b'y'; body])) {
            Ok(r) => break r,
            Err(_) => body -= 1,
        }
    };
    assert!(
        body + 300 > limit,
        "the limit is the record's, not far below it"
    );
    let mut cfg = ConsumerConfig::new("g", "t");
    cfg.max_reconsume_times = 1;
    let c = b.consumer(cfg).unwrap();
    for _ in 0..6 {
        for m in drain(&c) {
            c.nack(&m).unwrap();
        }
        clock.advance_ms(3600 * 1000);
        b.tick().unwrap();
    }
    let dead = drain(&consumer(&b, "ops", "%DLQ%g"));
    let big: Vec<_> = dead.iter().filter(|m| m.body.len() == body).collect();
    assert_eq!(big.len(), 1);
    assert_eq!(big[0].msg_id, sent.msg_id);
}
