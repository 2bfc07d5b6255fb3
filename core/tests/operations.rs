//! Operations a RocketMQ operator relies on (mqadmin): browsing without consuming,
//! messages by store time, a group's progress per queue, dead letters and their
//! redrive to the group alone, deleting a topic, the store's totals across
//! processes, and the log records of notable events.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use pocketmq::{Broker, BrokerConfig, ConsumerConfig, ErrorKind, ManualClock, Message};

/// RocketMQ's KEYS holds a message's keys joined by spaces, so `setKeys("k1 k2")` is two
/// keys: a key with spaces in it is found by each word, and read back as the words
/// (semantics test 15), as the server stores what the official clients send.
#[test]
fn a_key_with_spaces_is_one_key_per_word() {
    let (b, _) = manual();
    let p = b.producer("p").unwrap();
    let r = p
        .send(
            Message::builder("orders", "m")
                .key("k1 k2")
                .key(" k3 ")
                .build(),
        )
        .unwrap();
    for word in ["k1", "k2", "k3"] {
        let found = b.query("orders", word).unwrap();
        assert_eq!(found.len(), 1, "{word}");
        assert_eq!(found[0].msg_id, r.msg_id);
        assert_eq!(found[0].keys, ["k1", "k2", "k3"]);
    }
    assert!(b.query("orders", "k1 k2").unwrap().is_empty());
    let c = consumer(&b, "g", "orders");
    assert_eq!(
        c.receive(1, Duration::ZERO).unwrap()[0].keys,
        ["k1", "k2", "k3"]
    );
}

#[test]
fn browsing_reads_any_queue_from_any_offset_and_moves_no_group() {
    let (b, _) = manual();
    b.create_topic("orders", 2).unwrap();
    let p = b.producer("p").unwrap();
    for i in 0..10 {
        p.send(
            Message::builder("orders", format!("m{i}"))
                .queue_id(i % 2)
                .build(),
        )
        .unwrap();
    }
    let c = consumer(&b, "g", "orders");
    c.ack_all(&c.receive(3, Duration::ZERO).unwrap()).unwrap();
    let lag = b.lag("g", "orders").unwrap();

    let all = b.browse("orders", None, None, 100).unwrap();
    assert_eq!(
        bodies(&all),
        (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    let q1 = b.browse("orders", Some(1), Some(2), 2).unwrap();
    assert_eq!(bodies(&q1), vec!["m5", "m7"]);
    assert_eq!(q1[0].queue_offset, 2);
    assert!(b
        .browse("orders", Some(1), Some(99), 10)
        .unwrap()
        .is_empty());
    assert_eq!(b.browse("orders", None, Some(4), 100).unwrap().len(), 2);
    assert_eq!(b.browse("orders", None, None, 3).unwrap().len(), 3);
    assert_eq!(b.lag("g", "orders").unwrap(), lag, "browsing moves nothing");

    let kind = |r: pocketmq::Result<Vec<pocketmq::MessageExt>>| r.unwrap_err().kind();
    assert_eq!(
        kind(b.browse("orders", Some(2), None, 1)),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kind(b.browse("nope", None, None, 1)),
        ErrorKind::TopicNotFound
    );
    assert_eq!(
        kind(b.browse("SCHEDULE_TOPIC_XXXX", None, None, 1)),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn messages_are_found_by_store_time_oldest_first() {
    let (b, clock) = manual();
    b.create_topic("orders", 3).unwrap();
    for i in 0..30 {
        send(&b, "orders", &format!("m{i:02}"));
        clock.advance_ms(1000);
    }
    // m10 was stored at T0 + 10 s, m19 at T0 + 19 s.
    let got = b
        .query_by_time("orders", T0 + 10_000, T0 + 20_000, 100)
        .unwrap();
    assert_eq!(
        bodies(&got),
        (10..20).map(|i| format!("m{i:02}")).collect::<Vec<_>>()
    );
    assert!(got
        .windows(2)
        .all(|w| w[0].store_timestamp <= w[1].store_timestamp));
    assert_eq!(
        bodies(
            &b.query_by_time("orders", T0 + 10_000, T0 + 20_000, 4)
                .unwrap()
        ),
        vec!["m10", "m11", "m12", "m13"]
    );
    assert!(b
        .query_by_time("orders", T0 + 40_000, T0 + 50_000, 9)
        .unwrap()
        .is_empty());
    assert!(b
        .query_by_time("orders", T0 + 20_000, T0 + 10_000, 9)
        .unwrap()
        .is_empty());
}

#[test]
fn progress_shows_each_queue_like_consumer_progress() {
    let (b, clock) = manual();
    b.create_topic("orders", 2).unwrap();
    let p = b.producer("p").unwrap();
    for i in 0..6 {
        p.send(
            Message::builder("orders", format!("m{i}"))
                .queue_id(0)
                .build(),
        )
        .unwrap();
        clock.advance_ms(1000);
    }
    let fresh = b.progress("g", "orders").unwrap();
    assert_eq!(fresh.len(), 2);
    assert_eq!(
        (
            fresh[0].broker_offset,
            fresh[0].consumer_offset,
            fresh[0].lag
        ),
        (6, 0, 6)
    );
    assert_eq!(
        fresh[0].last_store_timestamp,
        Some(T0),
        "where the group stands"
    );
    assert_eq!((fresh[1].broker_offset, fresh[1].lag), (0, 0));
    assert_eq!(fresh[1].last_store_timestamp, None);

    let c = consumer(&b, "g", "orders");
    let got = c.receive(4, Duration::ZERO).unwrap();
    c.ack_all(&got[..2]).unwrap();
    let rows = b.progress("g", "orders").unwrap();
    let q0 = &rows[0];
    assert_eq!(q0.queue_id, 0);
    assert_eq!((q0.broker_offset, q0.consumer_offset, q0.lag), (6, 2, 4));
    assert_eq!(q0.inflight, 2, "received, not acked");
    assert_eq!(
        q0.last_store_timestamp,
        Some(T0 + 1000),
        "m1, the last consumed"
    );
    assert_eq!(q0.expired, 0);
    let lag: u64 = rows.iter().map(|r| r.lag).sum();
    assert_eq!(lag, b.lag("g", "orders").unwrap());
    assert_eq!(
        b.progress("g", "nope").unwrap_err().kind(),
        ErrorKind::TopicNotFound
    );
}

/// A consumer that gives up after one retry.
fn impatient(b: &Broker, group: &str) -> pocketmq::Consumer {
    let mut cfg = ConsumerConfig::new(group, "orders");
    cfg.max_reconsume_times = 1;
    b.consumer(cfg).unwrap()
}

/// Fails every delivery of `c` until its messages are dead letters.
fn dead_letter_all(b: &Broker, clock: &ManualClock, c: &pocketmq::Consumer) {
    for _ in 0..4 {
        for m in drain(c) {
            c.nack(&m).unwrap();
        }
        clock.advance_ms(3_600_000);
        b.tick().unwrap();
    }
}

#[test]
fn dead_letters_are_listed_and_redriven_to_their_group_alone() {
    let (b, clock) = manual();
    let c = impatient(&b, "g");
    let other = consumer(&b, "h", "orders");
    let p = b.producer("p").unwrap();
    let sent: Vec<_> = (0..3)
        .map(|i| {
            p.send(
                Message::builder("orders", format!("m{i}"))
                    .tags("paid")
                    .key(format!("k{i}"))
                    .build(),
            )
            .unwrap()
        })
        .collect();
    other.ack_all(&drain(&other)).unwrap();
    dead_letter_all(&b, &clock, &c);
    let mut dead = b.dead_letters("g", 100).unwrap();
    dead.sort_by(|a, b| a.body.cmp(&b.body));
    assert_eq!(bodies(&dead), vec!["m0", "m1", "m2"]);
    assert_eq!(dead[0].msg_id, sent[0].msg_id);
    assert_eq!(
        dead[0].properties.get("RETRY_TOPIC").map(String::as_str),
        Some("orders")
    );
    assert_eq!(b.dead_letters("g", 2).unwrap().len(), 2);
    assert!(b.dead_letters("h", 10).unwrap().is_empty());

    let mut reports = Vec::new();
    let n = b
        .redrive("g", None, |done, total| {
            reports.push((done, total));
            true
        })
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(reports.last(), Some(&(3, 3)));
    assert!(b.dead_letters("g", 100).unwrap().is_empty(), "redriven");
    let mut back = drain(&c);
    back.sort_by(|a, b| a.body.cmp(&b.body));
    assert_eq!(bodies(&back), vec!["m0", "m1", "m2"]);
    for (m, s) in back.iter().zip(&sent) {
        assert_eq!(m.msg_id, s.msg_id);
        assert_eq!(m.topic, "orders");
        assert_eq!(m.reconsume_times, 0, "its retries start over");
        assert_eq!(m.tags.as_deref(), Some("paid"));
    }
    c.ack_all(&back).unwrap();
    assert!(drain(&other).is_empty(), "another group gets nothing again");
    assert_eq!(b.redrive("g", None, |_, _| true).unwrap(), 0);
    assert_eq!(b.redrive("never-failed", None, |_, _| true).unwrap(), 0);
}

#[test]
fn a_redrive_can_be_limited_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let dead = {
        let b = file(dir.path(), &clock);
        let c = impatient(&b, "g");
        for i in 0..5 {
            send(&b, "orders", &format!("m{i}"));
        }
        dead_letter_all(&b, &clock, &c);
        let dead = bodies(&b.dead_letters("g", 10).unwrap());
        assert_eq!(dead.len(), 5);
        assert_eq!(b.redrive("g", Some(2), |_, _| true).unwrap(), 2);
        assert_eq!(bodies(&b.dead_letters("g", 10).unwrap()), dead[2..]);
        c.close().unwrap();
        b.close().unwrap();
        dead
    };
    let b = file(dir.path(), &clock);
    assert_eq!(bodies(&b.dead_letters("g", 10).unwrap()), dead[2..]);
    assert_eq!(b.redrive("g", None, |_, _| true).unwrap(), 3);
    let c = impatient(&b, "g");
    assert_eq!(bodies(&drain(&c)), dead);
}

#[test]
fn a_deleted_topic_is_unreachable_its_groups_reset_and_it_can_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let (old_id, delayed_to_other) = {
        let b = file(dir.path(), &clock);
        let p = b.producer("p").unwrap();
        let r = p
            .send(Message::builder("orders", "old").key("k").build())
            .unwrap();
        p.send(Message::builder("orders", "later").delay_level(2).build())
            .unwrap();
        send(&b, "payments", "kept");
        let c = consumer(&b, "g", "orders");
        c.ack_all(&drain(&c)).unwrap();
        // Deleted under a live consumer, which then receives nothing.
        b.delete_topic("orders").unwrap();
        assert!(drain(&c).is_empty());
        c.close().unwrap();
        assert_eq!(
            b.delete_topic("orders").unwrap_err().kind(),
            ErrorKind::TopicNotFound
        );
        assert!(b.get(&r.msg_id).unwrap().is_none());
        assert!(b.query("orders", "k").unwrap().is_empty());
        assert!(b.topics().unwrap().iter().all(|t| t.name != "orders"));
        assert!(b
            .stats()
            .unwrap()
            .groups
            .iter()
            .all(|g| g.topic != "orders"));
        // The delayed message sent before the deletion never arrives.
        clock.advance_ms(10_000);
        b.tick().unwrap();
        assert!(b.topics().unwrap().iter().all(|t| t.name != "orders"));
        b.close().unwrap();
        (r.msg_id, "payments")
    };
    // Across a restart (replay of the whole log) it stays deleted.
    let b = file(dir.path(), &clock);
    assert!(b.get(&old_id).unwrap().is_none());
    assert!(b.topics().unwrap().iter().all(|t| t.name != "orders"));
    assert_eq!(
        b.lag("g", delayed_to_other).unwrap(),
        1,
        "other topics keep theirs"
    );
    // Created again, it starts anew and the group starts over.
    send(&b, "orders", "new");
    let c = consumer(&b, "g", "orders");
    assert_eq!(bodies(&drain(&c)), vec!["new"]);
    c.close().unwrap();
    b.close().unwrap();
    let b = file(dir.path(), &clock);
    assert_eq!(
        bodies(&b.browse("orders", None, None, 10).unwrap()),
        vec!["new"]
    );
}

#[test]
fn stats_count_the_store_totals_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    {
        let b = file(dir.path(), &clock);
        for i in 0..7 {
            send(&b, "orders", &format!("m{i}"));
        }
        send(&b, "payments", "p");
        b.close().unwrap();
    }
    let b = file(dir.path(), &clock);
    let s = b.stats().unwrap();
    assert_eq!(s.topics["orders"].messages_in, 7);
    assert_eq!(s.messages_in, 8, "the store's total");
    assert_eq!(s.messages_retained, 8);
    send(&b, "orders", "one more");
    assert_eq!(b.stats().unwrap().messages_in, 9);
}

/// Records what the engine logs (one logger per test binary).
struct Capture(Mutex<Vec<(log::Level, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        self.0
            .lock()
            .unwrap()
            .push((r.level(), r.args().to_string()));
    }
    fn flush(&self) {}
}

#[test]
fn dead_letters_drills_redrives_and_takeovers_are_logged() {
    let capture: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
    log::set_logger(capture).unwrap();
    log::set_max_level(log::LevelFilter::Info);
    let logged = |level: log::Level, text: &str| {
        capture
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|(l, t)| *l == level && t.contains(text))
    };
    let (b, clock) = manual();
    let c = impatient(&b, "g");
    send(&b, "orders", "m");
    dead_letter_all(&b, &clock, &c);
    assert!(logged(
        log::Level::Warn,
        "moved to %DLQ%g after 2 deliveries"
    ));
    b.redrive("g", None, |_, _| true).unwrap();
    assert!(logged(
        log::Level::Info,
        "redrove 1 dead letters of group g"
    ));
    b.move_backlog("g", "orders", "wide", None, |_, _| true)
        .unwrap();
    assert!(logged(
        log::Level::Info,
        "moved 0 messages of group g from orders to wide"
    ));

    // A store whose owner died without closing it is taken over, with a warning.
    let dir = tempfile::tempdir().unwrap();
    let cfg = || BrokerConfig {
        background: false,
        clock: Arc::new(clock.clone()),
        ..BrokerConfig::at(dir.path())
    };
    Broker::open(cfg()).unwrap().close().unwrap();
    std::fs::write(dir.path().join("abort"), b"4242").unwrap();
    Broker::open(cfg()).unwrap().close().unwrap();
    assert!(logged(log::Level::Warn, "process 4242 had it open"));
}

#[test]
fn simple_consumer_groups_have_progress_move_with_a_drill_and_block_a_delete() {
    let (b, _clock) = manual();
    b.create_topic("orders", 1).unwrap();
    let p = b.producer("p").unwrap();
    for i in 0..10 {
        p.send(Message::new("orders", format!("o{i}"))).unwrap();
    }
    let sc = b
        .simple_consumer(pocketmq::SimpleConsumerConfig::new("billing", "orders"))
        .unwrap();
    let got = sc.receive(4, std::time::Duration::ZERO).unwrap();
    sc.ack(&got[0]).unwrap();
    let [q] = b.progress("billing", "orders").unwrap().try_into().unwrap();
    assert_eq!((q.consumer_offset, q.lag, q.inflight), (1, 9, 3));
    // The drill moves the group past its whole backlog, in flight or not.
    let moved = b
        .move_backlog("billing", "orders", "orders-wide", Some(4), |_, _| true)
        .unwrap();
    assert_eq!(moved, 9);
    assert_eq!(b.lag("billing", "orders").unwrap(), 0);
    assert!(sc
        .receive(16, std::time::Duration::ZERO)
        .unwrap()
        .is_empty());
    sc.close().unwrap();
    b.delete_topic("orders").unwrap();
}

/// A simple group that closed before its topic was deleted starts over when the topic
/// comes back, on a file store, in the same run or after a restart: what it acked of
/// the old topic (still waiting to be written when the topic went) does not follow it
/// into the new one, nor do its deliveries still in flight then.
#[test]
fn a_simple_group_of_a_deleted_topic_starts_over_when_it_comes_back() {
    for (restart, in_flight) in [(false, false), (false, true), (true, false), (true, true)] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let mut b = file(dir.path(), &clock);
        b.create_topic("orders", 1).unwrap();
        let p = b.producer("p").unwrap();
        for i in 0..10 {
            p.send(Message::new("orders", format!("old{i}"))).unwrap();
        }
        let sc = b
            .simple_consumer(pocketmq::SimpleConsumerConfig::new("billing", "orders"))
            .unwrap();
        let got = sc.receive(10, Duration::ZERO).unwrap();
        let acked = if in_flight { 5 } else { 10 };
        sc.ack_all(&got[..acked]).unwrap();
        sc.close().unwrap();
        b.delete_topic("orders").unwrap();
        // The old deliveries' invisibility runs out.
        clock.advance_ms(3_600_000);
        b.tick().unwrap();
        if restart {
            b.close().unwrap();
            b = file(dir.path(), &clock);
        }
        let p = b.producer("p").unwrap();
        for i in 0..5 {
            p.send(Message::new("orders", format!("new{i}"))).unwrap();
        }
        let case = format!("restart {restart}, in flight {in_flight}");
        assert_eq!(b.lag("billing", "orders").unwrap(), 5, "{case}");
        let sc = b
            .simple_consumer(pocketmq::SimpleConsumerConfig::new("billing", "orders"))
            .unwrap();
        let got = sc.receive(32, Duration::ZERO).unwrap();
        let mut got_bodies = bodies(&got);
        got_bodies.sort();
        assert_eq!(
            got_bodies,
            ["new0", "new1", "new2", "new3", "new4"],
            "{case}"
        );
        assert!(got.iter().all(|m| m.delivery_attempt == 1), "{case}");
        assert!(b.dead_letters("billing", 10).unwrap().is_empty(), "{case}");
        b.close().unwrap();
    }
}

/// A topic deleted and brought back by a new consumer (of another group, classic or
/// simple) rather than by a send: consumers that stayed open through the deletion
/// read it again too.
#[test]
fn consumers_open_through_a_deletion_read_the_topic_a_new_consumer_brings_back() {
    for simple_first in [true, false] {
        let (b, _clock) = manual();
        let old = consumer(&b, "old", "orders");
        assert!(drain(&old).is_empty());
        b.delete_topic("orders").unwrap();
        let _newcomer = if simple_first {
            let sc = b
                .simple_consumer(pocketmq::SimpleConsumerConfig::new("billing", "orders"))
                .unwrap();
            (None, Some(sc))
        } else {
            (Some(consumer(&b, "audit", "orders")), None)
        };
        send(&b, "orders", "back");
        assert_eq!(
            bodies(&drain(&old)),
            ["back"],
            "simple first: {simple_first}"
        );
    }
}

/// A simple group's acks written to the log before its topic was deleted do not
/// count against the topic created again, after a restart (replay of the log).
#[test]
fn acks_from_before_a_deletion_do_not_replay_onto_the_topic_created_again() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let b = file(dir.path(), &clock);
    b.create_topic("orders", 1).unwrap();
    send(&b, "orders", "old");
    let sc = b
        .simple_consumer(pocketmq::SimpleConsumerConfig::new("billing", "orders"))
        .unwrap();
    sc.ack_all(&sc.receive(8, Duration::ZERO).unwrap()).unwrap();
    sc.close().unwrap();
    // The acks reach the log at the close.
    b.close().unwrap();
    let b = file(dir.path(), &clock);
    b.delete_topic("orders").unwrap();
    b.create_topic("orders", 1).unwrap();
    send(&b, "orders", "new-0");
    send(&b, "orders", "new-1");
    assert_eq!(b.lag("billing", "orders").unwrap(), 2);
    b.close().unwrap();
    let b = file(dir.path(), &clock);
    assert_eq!(b.lag("billing", "orders").unwrap(), 2);
    let sc = b
        .simple_consumer(pocketmq::SimpleConsumerConfig::new("billing", "orders"))
        .unwrap();
    assert_eq!(
        bodies(&sc.receive(8, Duration::ZERO).unwrap()),
        ["new-0", "new-1"]
    );
}

/// Consumers that stay open while their topic is deleted get nothing of the old
/// topic, and read the new one from its start once a send (or `create_topic`)
/// brings it back; other topics of theirs are untouched.
#[test]
fn live_consumers_of_a_deleted_topic_read_it_again_when_it_comes_back() {
    let (b, _clock) = manual();
    b.create_topic("orders", 2).unwrap();
    let p = b.producer("p").unwrap();
    for i in 0..4 {
        p.send(Message::new("orders", format!("old{i}"))).unwrap();
    }
    let c = consumer(&b, "g", "orders");
    let sc = b
        .simple_consumer(pocketmq::SimpleConsumerConfig::new("s", "orders"))
        .unwrap();
    let held = c.receive(1, std::time::Duration::ZERO).unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(sc.receive(2, std::time::Duration::ZERO).unwrap().len(), 2);
    b.delete_topic("orders").unwrap();
    assert!(drain(&c).is_empty());
    assert!(sc
        .receive(16, std::time::Duration::ZERO)
        .unwrap()
        .is_empty());
    // An ack of a delivery of the old topic is harmless.
    c.ack(&held[0]).unwrap();
    for i in 0..3 {
        p.send(Message::new("orders", format!("new{i}"))).unwrap();
    }
    let mut got = bodies(&drain(&c));
    got.sort();
    assert_eq!(got, ["new0", "new1", "new2"]);
    let mut got = bodies(&sc.receive(16, std::time::Duration::ZERO).unwrap());
    got.sort();
    assert_eq!(got, ["new0", "new1", "new2"]);
    assert_eq!(b.lag("s", "orders").unwrap(), 3, "received, not acked");
}

#[test]
fn retries_of_a_deleted_topic_go_with_it() {
    // One nack's retry still waits its delay, another's is already due in the
    // group's retry topic when the topic is deleted: neither comes back, and a new
    // topic of the name is read afresh (its own retries work).
    let (b, clock) = manual();
    let p = b.producer("p").unwrap();
    for body in ["waiting", "due"] {
        p.send(Message::new("d", body)).unwrap();
    }
    let c = consumer(&b, "g", "d");
    let got = drain(&c);
    assert_eq!(got.len(), 2);
    let due = got.iter().find(|m| m.body == "due".as_bytes()).unwrap();
    let waiting = got.iter().find(|m| m.body == "waiting".as_bytes()).unwrap();
    c.nack_after(due, Duration::from_secs(1)).unwrap();
    clock.advance_ms(2_000);
    b.tick().unwrap(); // the "due" retry now sits in %RETRY%g
    c.nack_after(waiting, Duration::from_secs(60)).unwrap();
    b.delete_topic("d").unwrap();
    clock.advance_ms(120_000);
    b.tick().unwrap();
    assert_eq!(bodies(&drain(&c)), Vec::<String>::new());
    p.send(Message::new("d", "new")).unwrap();
    let fresh = drain(&c);
    assert_eq!(bodies(&fresh), ["new"]);
    c.nack_after(&fresh[0], Duration::from_secs(1)).unwrap();
    clock.advance_ms(2_000);
    b.tick().unwrap();
    assert_eq!(
        bodies(&drain(&c)),
        ["new"],
        "a retry of the new topic comes back"
    );
}

#[test]
fn a_retry_in_flight_at_a_deletion_goes_with_its_topic() {
    // Two retries of the deleted topic are in flight (delivered from %RETRY%g, not
    // acked) and one waits its delay: none counts in the lag of the topic created
    // again, and neither a nack nor a missed ack deadline sends one back.
    let (b, clock) = manual();
    let p = b.producer("p").unwrap();
    for body in ["a", "b", "c"] {
        p.send(Message::new("d", body)).unwrap();
    }
    let c = b
        .consumer(ConsumerConfig {
            ack_timeout_ms: Some(90_000),
            max_in_flight: 1 << 20,
            ..ConsumerConfig::new("g", "d")
        })
        .unwrap();
    let got = drain(&c);
    assert_eq!(got.len(), 3);
    for m in &got[..2] {
        c.nack_after(m, Duration::from_secs(1)).unwrap();
    }
    c.nack_after(&got[2], Duration::from_secs(600)).unwrap();
    clock.advance_ms(2_000);
    b.tick().unwrap();
    let retries = drain(&c);
    assert_eq!(retries.len(), 2);
    assert!(retries.iter().all(|m| m.reconsume_times == 1));
    assert_eq!(b.lag("g", "d").unwrap(), 3, "before the deletion");
    b.delete_topic("d").unwrap();
    b.create_topic("d", 4).unwrap();
    assert_eq!(b.lag("g", "d").unwrap(), 0, "after it");
    c.nack(&retries[0]).unwrap();
    // The other misses its ack deadline; the waiting one comes due.
    for _ in 0..4 {
        clock.advance_ms(3_600_000);
        b.tick().unwrap();
        assert_eq!(bodies(&drain(&c)), Vec::<String>::new());
        assert_eq!(b.lag("g", "d").unwrap(), 0);
    }
    assert!(b.dead_letters("g", 10).unwrap().is_empty());
    p.send(Message::new("d", "new")).unwrap();
    assert_eq!(b.lag("g", "d").unwrap(), 1);
    assert_eq!(bodies(&drain(&c)), ["new"]);
}

/// A simple group's dead letters redriven go back to that group's members (as
/// RocketMQ's POP consumers read their retry topic): delivered afresh with the
/// original's id, topic, tags and keys, to members joined before or after the
/// redrive, and to no other group.
#[test]
fn redrive_of_a_simple_group_delivers_its_dead_letters_to_its_members_again() {
    let (b, clock) = manual();
    let p = b.producer("p").unwrap();
    let sent = p
        .send(
            Message::builder("t", "poison")
                .tags("pay")
                .keys(["order-1"])
                .build(),
        )
        .unwrap();
    let other = b
        .simple_consumer(pocketmq::SimpleConsumerConfig::new("other", "t"))
        .unwrap();
    let m = other.receive(1, Duration::ZERO).unwrap().remove(0);
    other.ack(&m).unwrap();
    let cfg = pocketmq::SimpleConsumerConfig {
        tags: "pay".into(),
        ..pocketmq::SimpleConsumerConfig::new("s", "t")
    };
    let sc = b.simple_consumer(cfg.clone()).unwrap();
    let m = sc.receive(1, Duration::ZERO).unwrap().remove(0);
    sc.dead_letter_handle(m.receipt_handle.as_deref().unwrap())
        .unwrap();
    assert!(sc.receive(16, Duration::ZERO).unwrap().is_empty());
    assert_eq!(b.dead_letters("s", 10).unwrap().len(), 1);

    assert_eq!(b.redrive("s", None, |_, _| true).unwrap(), 1);
    assert!(b.dead_letters("s", 10).unwrap().is_empty());
    let back = sc.receive(16, Duration::ZERO).unwrap();
    assert_eq!(back.len(), 1);
    let m = &back[0];
    assert_eq!(
        (m.body.as_ref(), m.topic.as_str(), m.msg_id.as_str()),
        (&b"poison"[..], "t", sent.msg_id.as_str())
    );
    assert_eq!(m.tags.as_deref(), Some("pay"));
    assert_eq!(m.keys, ["order-1"]);
    assert_eq!(
        m.delivery_attempt, 1,
        "a redriven dead letter starts afresh"
    );
    assert!(
        other.receive(16, Duration::ZERO).unwrap().is_empty(),
        "s alone"
    );

    // Not acked: it comes back to any member, a new one too, with its attempt.
    let late = b.simple_consumer(cfg).unwrap();
    clock.advance_ms(cfg_invisible_ms() + 1_000);
    b.tick().unwrap();
    let again = late.receive(16, Duration::ZERO).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivery_attempt, 2);
    let e = sc.ack(m).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidReceiptHandle, "{e}");
    late.ack(&again[0]).unwrap();
    clock.advance_ms(cfg_invisible_ms() * 2);
    b.tick().unwrap();
    assert!(sc.receive(16, Duration::ZERO).unwrap().is_empty(), "acked");
    assert_eq!(b.redrive("s", None, |_, _| true).unwrap(), 0);
}

/// The simple consumer's default invisible duration.
fn cfg_invisible_ms() -> u64 {
    pocketmq::SimpleConsumerConfig::new("g", "t").invisible_duration_ms
}

/// A redriven dead letter of a simple group, neither received nor acked before a
/// restart, is delivered after it; once acked, it stays acked across the next.
#[test]
fn redriven_dead_letters_of_a_simple_group_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let cfg = pocketmq::SimpleConsumerConfig::new("s", "t");
    {
        let b = file(dir.path(), &clock);
        send(&b, "t", "poison");
        let sc = b.simple_consumer(cfg.clone()).unwrap();
        let m = sc.receive(1, Duration::ZERO).unwrap().remove(0);
        sc.dead_letter_handle(m.receipt_handle.as_deref().unwrap())
            .unwrap();
        assert_eq!(b.redrive("s", None, |_, _| true).unwrap(), 1);
        b.close().unwrap();
    }
    {
        let b = file(dir.path(), &clock);
        let sc = b.simple_consumer(cfg.clone()).unwrap();
        let got = sc.receive(16, Duration::ZERO).unwrap();
        assert_eq!(bodies(&got), ["poison"]);
        sc.ack(&got[0]).unwrap();
        b.close().unwrap();
    }
    let b = file(dir.path(), &clock);
    let sc = b.simple_consumer(cfg).unwrap();
    clock.advance_ms(cfg_invisible_ms() * 2);
    b.tick().unwrap();
    assert!(sc.receive(16, Duration::ZERO).unwrap().is_empty());
    assert!(b.dead_letters("s", 10).unwrap().is_empty());
}

/// One read hands out at most 64 MiB of records once it has its first message (as
/// one RocketMQ pull stops at its byte caps): a receive of either kind, a browse and
/// the queries return fewer than asked, and the rest comes with the next read.
#[test]
fn one_read_hands_out_at_most_64_mib() {
    let (b, _) = manual();
    b.create_topic("big", 1).unwrap();
    let p = b.producer("p").unwrap();
    let body = vec![b'x'; 4 << 20];
    for i in 0..20 {
        p.send(
            Message::builder("big", body.clone())
                .keys([format!("k{}", i % 2)])
                .build(),
        )
        .unwrap();
    }
    // Sixteen 4 MiB bodies (and their headers) pass 64 MiB.
    let c = consumer(&b, "g", "big");
    let first = c.receive(32, Duration::ZERO).unwrap();
    assert_eq!(first.len(), 16);
    let rest = c.receive(32, Duration::ZERO).unwrap();
    assert_eq!(rest.len(), 4);
    assert_eq!(rest[0].queue_offset, 16);
    let sc = b
        .simple_consumer(pocketmq::SimpleConsumerConfig::new("s", "big"))
        .unwrap();
    assert_eq!(sc.receive(32, Duration::ZERO).unwrap().len(), 16);
    assert_eq!(sc.receive(32, Duration::ZERO).unwrap().len(), 4);
    assert_eq!(b.browse("big", None, None, 32).unwrap().len(), 16);
    assert_eq!(b.browse("big", Some(0), Some(16), 32).unwrap().len(), 4);
    assert_eq!(
        b.query_by_time("big", 0, u64::MAX / 2, 1000).unwrap().len(),
        16
    );
    assert_eq!(
        b.query("big", "k0").unwrap().len(),
        10,
        "10 bodies of 40 MiB fit"
    );
    // A message larger than the budget still comes, alone.
    let huge = Broker::open(BrokerConfig {
        max_message_size: 80 << 20,
        segment_size: Some(256 << 20),
        ..BrokerConfig::default()
    })
    .unwrap();
    let hp = huge.producer("p").unwrap();
    for _ in 0..2 {
        hp.send(Message::new("h", vec![b'y'; 70 << 20])).unwrap();
    }
    let hc = consumer(&huge, "g", "h");
    assert_eq!(
        hc.receive(32, Duration::ZERO).unwrap().len()
            + hc.receive(32, Duration::ZERO).unwrap().len(),
        2
    );
}
