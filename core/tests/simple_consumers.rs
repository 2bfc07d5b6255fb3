//! Simple (POP) consumers: invisibility, receipt handles, attempts and the DLQ,
//! fifo per message group, and durability across a clean restart and kill -9.
#![allow(clippy::disallowed_methods)] // tests may start threads and read real time

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{file, manual, T0};
use pocketmq::{
    Broker, BrokerConfig, ErrorKind, FlushMode, ManualClock, Message, MessageExt, SimpleConsumer,
    SimpleConsumerConfig,
};

const NOW: Duration = Duration::ZERO;

fn simple(b: &Broker, group: &str, topic: &str) -> SimpleConsumer {
    b.simple_consumer(SimpleConsumerConfig::new(group, topic))
        .unwrap()
}

/// A member of group "g" on "t" whose messages get 3 deliveries before the DLQ.
fn three_attempts(b: &Broker) -> SimpleConsumer {
    b.simple_consumer(SimpleConsumerConfig {
        max_delivery_attempts: 3,
        ..SimpleConsumerConfig::new("g", "t")
    })
    .unwrap()
}

fn send_n(b: &Broker, topic: &str, n: usize) {
    let p = b.producer("p").unwrap();
    for i in 0..n {
        p.send(Message::new(topic, format!("m{i}"))).unwrap();
    }
}

#[test]
fn a_delivery_is_invisible_until_acked_or_expired() {
    let (b, clock) = manual();
    send_n(&b, "t", 3);
    let sc = simple(&b, "g", "t");
    let got = sc.receive(16, NOW).unwrap();
    assert_eq!(got.len(), 3);
    assert!(got
        .iter()
        .all(|m| m.delivery_attempt == 1 && m.receipt_handle.is_some()));
    assert!(sc.receive(16, NOW).unwrap().is_empty(), "invisible");
    sc.ack(&got[0]).unwrap();
    assert_eq!(b.lag("g", "t").unwrap(), 2);
    clock.set_ms(T0 + 29_999);
    assert!(sc.receive(16, NOW).unwrap().is_empty());
    clock.set_ms(T0 + 30_000);
    let again = sc.receive(16, NOW).unwrap();
    assert_eq!(again.len(), 2, "both unacked come back");
    assert!(again
        .iter()
        .all(|m| m.delivery_attempt == 2 && m.reconsume_times == 1));
    // The first delivery's handle is stale now; an acked one too.
    let err = sc.ack(&got[1]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidReceiptHandle);
    assert_eq!(
        sc.ack(&got[0]).unwrap_err().kind(),
        ErrorKind::InvalidReceiptHandle
    );
    sc.ack_all(&again).unwrap();
    assert_eq!(b.lag("g", "t").unwrap(), 0);
    clock.advance_ms(86_400_000);
    assert!(sc.receive(16, NOW).unwrap().is_empty());
}

#[test]
fn changing_invisibility_replaces_the_handle() {
    let (b, clock) = manual();
    send_n(&b, "t", 1);
    let sc = simple(&b, "g", "t");
    let mut m = sc.receive(1, NOW).unwrap().remove(0);
    let old = m.clone();
    sc.change_invisible_duration(&mut m, Duration::from_secs(60))
        .unwrap();
    assert_ne!(m.receipt_handle, old.receipt_handle);
    assert_eq!(
        sc.ack(&old).unwrap_err().kind(),
        ErrorKind::InvalidReceiptHandle
    );
    clock.set_ms(T0 + 59_999);
    assert!(sc.receive(1, NOW).unwrap().is_empty(), "extended past 30 s");
    sc.ack(&m).unwrap();
    clock.set_ms(T0 + 120_000);
    assert!(sc.receive(1, NOW).unwrap().is_empty());
    // Zero: visible at once, delivered again with attempt + 1.
    send_n(&b, "t", 1);
    let mut n = sc.receive(1, NOW).unwrap().remove(0);
    sc.change_invisible_duration(&mut n, Duration::ZERO)
        .unwrap();
    let again = sc.receive(1, NOW).unwrap();
    assert_eq!(again[0].delivery_attempt, 2);
}

#[test]
fn the_last_attempt_goes_to_the_dead_letter_queue() {
    let (b, clock) = manual();
    let sent = b
        .producer("p")
        .unwrap()
        .send(Message::builder("t", "poison").property("k", "v").build())
        .unwrap();
    let sc = b
        .simple_consumer(SimpleConsumerConfig {
            max_delivery_attempts: 3,
            invisible_duration_ms: 1_000,
            ..SimpleConsumerConfig::new("g", "t")
        })
        .unwrap();
    let mut attempts = Vec::new();
    for _ in 0..10 {
        for m in sc.receive(1, NOW).unwrap() {
            attempts.push(m.delivery_attempt);
        }
        clock.advance_ms(1_000);
        b.tick().unwrap();
    }
    assert_eq!(attempts, [1, 2, 3]);
    let dlq = common::consumer(&b, "dlq-reader", "%DLQ%g");
    let dead = common::drain(&dlq);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].msg_id, sent.msg_id);
    assert_eq!(dead[0].properties.get("k").map(String::as_str), Some("v"));
    assert_eq!(
        dead[0].properties.get("RETRY_TOPIC").map(String::as_str),
        Some("t")
    );
    assert_eq!(
        dead[0]
            .properties
            .get("ORIGIN_MESSAGE_ID")
            .map(String::as_str),
        Some(sent.msg_id.as_str())
    );
    assert_eq!(b.lag("g", "t").unwrap(), 0);
}

#[test]
fn made_visible_at_once_on_its_last_attempt_a_message_goes_to_the_dead_letter_queue() {
    // RocketMQ 5's Node PushConsumer nacks with a zero invisible duration: the
    // attempts still end in the DLQ, not in redeliveries without end.
    let (b, _clock) = manual();
    send_n(&b, "t", 1);
    let sc = three_attempts(&b);
    let mut attempts = Vec::new();
    for _ in 0..10 {
        for m in sc.receive(1, NOW).unwrap() {
            attempts.push(m.delivery_attempt);
            sc.change_invisible_handle(m.receipt_handle.as_deref().unwrap(), NOW)
                .unwrap();
        }
        b.tick().unwrap();
    }
    assert_eq!(attempts, [1, 2, 3]);
    let dead = common::drain(&common::consumer(&b, "dlq-reader", "%DLQ%g"));
    assert_eq!(common::bodies(&dead), ["m0"]);
    assert_eq!(b.lag("g", "t").unwrap(), 0);
}

#[test]
fn a_delivery_given_back_comes_again_without_counting_an_attempt() {
    // A closing classic consumer's deliveries over the protocol: given back, not failed.
    let (b, clock) = manual();
    send_n(&b, "t", 1);
    let sc = three_attempts(&b);
    let mut attempts = Vec::new();
    for _ in 0..10 {
        let got = sc.receive(1, NOW).unwrap();
        let h = got[0].receipt_handle.clone().unwrap();
        attempts.push(got[0].delivery_attempt);
        sc.suspend_handle(&h, Duration::ZERO).unwrap();
        // Given back once: the handle is spent.
        assert!(matches!(
            sc.suspend_handle(&h, Duration::ZERO),
            Err(pocketmq::Error::InvalidReceiptHandle(_))
        ));
    }
    assert_eq!(attempts, [1; 10]);
    // Given back for a while: invisible until then, then the same attempt again.
    let m = sc.receive(1, NOW).unwrap().remove(0);
    let h = m.receipt_handle.clone().unwrap();
    sc.suspend_handle(&h, Duration::from_secs(5)).unwrap();
    assert!(sc.receive(1, NOW).unwrap().is_empty());
    clock.advance_ms(5_000);
    b.tick().unwrap();
    let m = sc.receive(1, NOW).unwrap().remove(0);
    assert_eq!(m.delivery_attempt, 1);
    // A failure after them is the first failed attempt.
    sc.nack(&m, Some(Duration::ZERO)).unwrap();
    b.tick().unwrap();
    let again = sc.receive(1, NOW).unwrap().remove(0);
    assert_eq!(again.delivery_attempt, 2);
    sc.ack(&again).unwrap();
    assert!(common::drain(&common::consumer(&b, "dlq-reader", "%DLQ%g")).is_empty());
    assert_eq!(b.lag("g", "t").unwrap(), 0);
}

#[test]
fn the_only_member_may_resubscribe_the_group_and_what_it_no_longer_takes_is_skipped() {
    let (b, clock) = manual();
    let p = b.producer("p").unwrap();
    let tagged = |t: &str, body: &str| {
        p.send(Message::builder("t", body.to_string()).tags(t).build())
            .unwrap();
    };
    let sc = b
        .simple_consumer(SimpleConsumerConfig {
            tags: "a".into(),
            invisible_duration_ms: 1_000,
            ..SimpleConsumerConfig::new("g", "t")
        })
        .unwrap();
    tagged("a", "a1");
    tagged("b", "b1");
    let first = sc.receive(10, NOW).unwrap();
    assert_eq!(common::bodies(&first), ["a1"]);
    sc.resubscribe("b || c").unwrap();
    tagged("a", "a2");
    tagged("b", "b2");
    tagged("c", "c2");
    let second = sc.receive(10, NOW).unwrap();
    // From two queues (the producer's round robin starts at a random one): in no
    // set order.
    let mut got = common::bodies(&second);
    got.sort();
    assert_eq!(got, ["b2", "c2"]);
    sc.ack_all(&second).unwrap();
    // a1, delivered under "a" and not acked, expires: "b || c" skips it.
    clock.advance_ms(1_000);
    b.tick().unwrap();
    assert!(sc.receive(10, NOW).unwrap().is_empty());
    assert_eq!(b.lag("g", "t").unwrap(), 0);
    // Its handle from before the change is still its delivery's (now done).
    assert!(sc.ack(&first[0]).is_err());
    // Not while another member shares the group; a bad expression changes nothing.
    let other = b
        .simple_consumer(SimpleConsumerConfig {
            tags: "b || c".into(),
            ..SimpleConsumerConfig::new("g", "t")
        })
        .unwrap();
    assert!(matches!(
        sc.resubscribe("a"),
        Err(pocketmq::Error::InvalidArgument(_))
    ));
    other.close().unwrap();
    assert!(matches!(
        sc.resubscribe(" || "),
        Err(pocketmq::Error::InvalidArgument(_))
    ));
    tagged("c", "c3");
    assert_eq!(common::bodies(&sc.receive(10, NOW).unwrap()), ["c3"]);
}

#[test]
fn handles_that_were_never_issued_or_are_of_another_group_are_refused() {
    let (b, _) = manual();
    send_n(&b, "t", 1);
    let sc = simple(&b, "g", "t");
    let other = simple(&b, "h", "t");
    let m = sc.receive(1, NOW).unwrap().remove(0);
    let h = m.receipt_handle.clone().unwrap();
    assert_eq!(
        other.ack_handle(&h).unwrap_err().kind(),
        ErrorKind::InvalidReceiptHandle
    );
    for bad in ["", "nonsense", &"f".repeat(40), &h[..39]] {
        assert_eq!(
            sc.ack_handle(bad).unwrap_err().kind(),
            ErrorKind::InvalidReceiptHandle
        );
    }
    sc.ack_handle(&h).unwrap();
    for bad in [0u64, 8 * 86_400_000] {
        let err = b.simple_consumer(SimpleConsumerConfig {
            invisible_duration_ms: bad,
            ..SimpleConsumerConfig::new("x", "t")
        });
        assert_eq!(err.unwrap_err().kind(), ErrorKind::InvalidArgument);
    }
    let zero = b.simple_consumer(SimpleConsumerConfig {
        max_delivery_attempts: 0,
        ..SimpleConsumerConfig::new("x", "t")
    });
    assert_eq!(zero.unwrap_err().kind(), ErrorKind::InvalidArgument);
}

/// A group may consume several topics, as the RocketMQ 5 clients subscribe one group
/// to a map of topics: each topic has its own cursor, invisibility and handles.
#[test]
fn one_group_consumes_several_topics_each_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut unacked = {
        let b = file(dir.path(), &clock);
        send_n(&b, "a", 2);
        send_n(&b, "b", 3);
        let on_a = simple(&b, "g", "a");
        let on_b = simple(&b, "g", "b");
        let from_a = on_a.receive(16, NOW).unwrap();
        let from_b = on_b.receive(16, NOW).unwrap();
        let mut bodies = common::bodies(&from_a);
        bodies.sort();
        assert_eq!(bodies, ["m0", "m1"]);
        assert!(from_a.iter().all(|m| m.topic == "a"));
        assert_eq!(from_b.len(), 3);
        assert!(from_b.iter().all(|m| m.topic == "b"));
        // A handle of topic a's deliveries means nothing to the group on topic b.
        let h = from_a[0].receipt_handle.clone().unwrap();
        assert_eq!(
            on_b.ack_handle(&h).unwrap_err().kind(),
            ErrorKind::InvalidReceiptHandle
        );
        on_a.ack_all(&from_a).unwrap();
        on_b.ack(&from_b[0]).unwrap();
        assert_eq!(b.lag("g", "a").unwrap(), 0);
        assert_eq!(b.lag("g", "b").unwrap(), 2);
        // A classic consumer still cannot take a simple group's name.
        let classic = b.consumer(pocketmq::ConsumerConfig::new("g", "c"));
        assert_eq!(classic.unwrap_err().kind(), ErrorKind::InvalidArgument);
        drop((on_a, on_b));
        b.close().unwrap();
        common::bodies(&from_b[1..])
    };
    unacked.sort();
    let b = file(dir.path(), &clock);
    assert_eq!(b.lag("g", "a").unwrap(), 0);
    assert_eq!(b.lag("g", "b").unwrap(), 2);
    let on_b = simple(&b, "g", "b");
    let on_a = simple(&b, "g", "a");
    assert!(on_b.receive(16, NOW).unwrap().is_empty(), "still invisible");
    clock.advance_ms(30_000);
    let again = on_b.receive(16, NOW).unwrap();
    let mut bodies = common::bodies(&again);
    bodies.sort();
    assert_eq!(bodies, unacked);
    assert!(again.iter().all(|m| m.delivery_attempt == 2));
    assert!(
        on_a.receive(16, NOW).unwrap().is_empty(),
        "topic a was all acked"
    );
    // Resetting the group on one topic leaves the other where it was.
    b.reset_offset("g", "a", pocketmq::StartFrom::Earliest)
        .unwrap();
    assert_eq!(on_a.receive(16, NOW).unwrap().len(), 2);
    assert_eq!(b.lag("g", "b").unwrap(), 2);
}

#[test]
fn concurrent_receivers_never_share_a_message() {
    let (b, _) = manual();
    send_n(&b, "t", 2000);
    let sc = Arc::new(simple(&b, "g", "t"));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let sc = sc.clone();
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                loop {
                    let got = sc.receive(32, Duration::from_millis(50)).unwrap();
                    if got.is_empty() {
                        return ids;
                    }
                    sc.ack_all(&got).unwrap();
                    ids.extend(got.into_iter().map(|m| m.msg_id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in threads {
        all.extend(t.join().unwrap());
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 2000);
    assert_eq!(unique.len(), 2000);
}

fn keyed(b: &Broker, key: &str, body: &str) {
    b.producer("p")
        .unwrap()
        .send(
            Message::builder("f", body.to_string())
                .sharding_key(key)
                .build(),
        )
        .unwrap();
}

#[test]
fn fifo_keeps_each_key_in_order_and_a_stuck_key_blocks_only_itself() {
    let (b, clock) = manual();
    b.create_topic("f", 1).unwrap();
    for i in 0..3 {
        keyed(&b, "A", &format!("A{i}"));
        keyed(&b, "B", &format!("B{i}"));
    }
    let sc = b
        .simple_consumer(SimpleConsumerConfig {
            fifo: true,
            ..SimpleConsumerConfig::new("g", "f")
        })
        .unwrap();
    let first = sc.receive(16, NOW).unwrap();
    assert_eq!(common::bodies(&first), ["A0", "B0"]);
    // A flows as it is acked; B's first message is left to expire.
    let a0 = first.iter().find(|m| m.body_str() == Some("A0")).unwrap();
    sc.ack(a0).unwrap();
    let next = sc.receive(16, NOW).unwrap();
    assert_eq!(common::bodies(&next), ["A1"]);
    sc.ack(&next[0]).unwrap();
    let a2 = sc.receive(16, NOW).unwrap();
    assert_eq!(common::bodies(&a2), ["A2"]);
    sc.ack(&a2[0]).unwrap();
    clock.advance_ms(30_000);
    let b0 = sc.receive(16, NOW).unwrap();
    assert_eq!(common::bodies(&b0), ["B0"], "B0 again, B1 still waits");
    assert_eq!(b0[0].delivery_attempt, 2);
    sc.ack(&b0[0]).unwrap();
    let b1 = sc.receive(16, NOW).unwrap();
    assert_eq!(common::bodies(&b1), ["B1"]);
}

#[test]
fn a_clean_restart_keeps_acks_and_invisibility() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut unacked = {
        let b = file(dir.path(), &clock);
        send_n(&b, "t", 3);
        let sc = simple(&b, "g", "t");
        let got = sc.receive(16, NOW).unwrap();
        assert_eq!(got.len(), 3);
        sc.ack(&got[0]).unwrap();
        drop(sc);
        b.close().unwrap();
        common::bodies(&got[1..])
    };
    unacked.sort();
    let b = file(dir.path(), &clock);
    let sc = simple(&b, "g", "t");
    assert!(sc.receive(16, NOW).unwrap().is_empty(), "still invisible");
    clock.advance_ms(30_000);
    let again = sc.receive(16, NOW).unwrap();
    let mut bodies = common::bodies(&again);
    bodies.sort();
    assert_eq!(bodies, unacked);
    assert!(again.iter().all(|m| m.delivery_attempt == 2));
    sc.ack_all(&again).unwrap();
    drop(sc);
    b.close().unwrap();
    let b = file(dir.path(), &clock);
    assert_eq!(b.lag("g", "t").unwrap(), 0);
}

/// A delivery that went to the dead letters (its last attempt expired, or a member
/// sent it there) stays there after a crash right after it: it is neither delivered
/// again nor dead-lettered a second time.
#[test]
fn a_dead_letter_is_written_once_even_if_the_store_crashes_right_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let cfg = SimpleConsumerConfig {
        max_delivery_attempts: 1,
        ..SimpleConsumerConfig::new("g", "t")
    };
    let b = file(dir.path(), &clock);
    send_n(&b, "t", 2);
    let sc = b.simple_consumer(cfg.clone()).unwrap();
    let got = sc.receive(2, NOW).unwrap();
    assert_eq!(got.len(), 2);
    sc.dead_letter_handle(got[0].receipt_handle.as_deref().unwrap())
        .unwrap();
    clock.advance_ms(cfg.invisible_duration_ms);
    b.tick().unwrap();
    let mut dead = common::bodies(&b.dead_letters("g", 10).unwrap());
    dead.sort();
    assert_eq!(dead, ["m0", "m1"]);

    // The files as a kill -9 leaves them now.
    let crashed = tempfile::tempdir().unwrap();
    common::copy_store(dir.path(), crashed.path());
    drop(sc);
    b.close().unwrap();
    let b = file(crashed.path(), &clock);
    let sc = b.simple_consumer(cfg.clone()).unwrap();
    for _ in 0..3 {
        assert!(sc.receive(16, NOW).unwrap().is_empty(), "dead-lettered");
        let mut after = common::bodies(&b.dead_letters("g", 10).unwrap());
        after.sort();
        assert_eq!(after, dead, "each once");
        clock.advance_ms(cfg.invisible_duration_ms);
        b.tick().unwrap();
    }
    assert_eq!(b.lag("g", "t").unwrap(), 0);
}

/// The child half of the kill -9 test: receives and acks, reports each ack once it
/// is flushed (durable), until killed.
#[test]
fn pop_child() {
    let Ok(dir) = std::env::var("POCKETMQ_POP_DIR") else {
        return;
    };
    let b = Broker::open(BrokerConfig {
        flush: FlushMode::Sync,
        ..BrokerConfig::at(&dir)
    })
    .unwrap();
    let sc = b
        .simple_consumer(SimpleConsumerConfig {
            invisible_duration_ms: 600_000,
            ..SimpleConsumerConfig::new("g", "pop")
        })
        .unwrap();
    let mut out = std::io::stdout();
    // The test harness has printed "test pop_child ... " without a newline.
    writeln!(out).unwrap();
    let mut acked: Vec<String> = Vec::new();
    loop {
        let got = sc.receive(4, Duration::from_millis(20)).unwrap();
        if got.is_empty() {
            writeln!(out, "IDLE").unwrap();
        }
        for m in &got {
            writeln!(out, "GOT {}", m.body_str().unwrap()).unwrap();
        }
        // Ack all but every seventh: those stay invisible and must come back later.
        for m in got.iter().filter(|m| !m.body_str().unwrap().ends_with('7')) {
            sc.ack(m).unwrap();
            acked.push(m.body_str().unwrap().to_string());
        }
        b.flush().unwrap();
        for a in acked.drain(..) {
            writeln!(out, "ACKED {a}").unwrap();
        }
        out.flush().unwrap();
    }
}

#[test]
fn kill_9_never_brings_back_a_flushed_ack_nor_loses_an_unacked_message() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = Broker::open(BrokerConfig::at(dir.path())).unwrap();
        send_n(&b, "pop", 3000);
        b.close().unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    // Bodies the child reported acked after a flush (durable), and all it received.
    let mut acked: HashSet<String> = HashSet::new();
    let mut got: HashSet<String> = HashSet::new();
    for cycle in 0..10u64 {
        let mut child = Command::new(&exe)
            .args(["pop_child", "--exact", "--nocapture", "--test-threads=1"])
            .env("POCKETMQ_POP_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Let the child get going (it may start slowly on a busy machine), then kill
        // it at a point that varies from cycle to cycle.
        let mut lines: Vec<String> = Vec::new();
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
            let started = line.starts_with("ACKED ") || line == "IDLE";
            lines.push(line);
            if started {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(cycle * 37 % 200));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        for line in lines {
            if let Some(body) = line.strip_prefix("GOT ") {
                assert!(
                    !acked.contains(body),
                    "cycle {cycle}: flushed ack of {body} came back"
                );
                got.insert(body.to_string());
            } else if let Some(body) = line.strip_prefix("ACKED ") {
                acked.insert(body.to_string());
            }
        }
    }
    assert!(acked.len() > 50, "the child made progress: {}", acked.len());
    // Long after every invisibility ran out, everything not acked is still there.
    let clock = ManualClock::new(pocketmq::Clock::now_ms(&pocketmq::SystemClock) + 3_600_000);
    let b = file(dir.path(), &clock);
    let sc = simple(&b, "g", "pop");
    let mut rest: Vec<MessageExt> = Vec::new();
    loop {
        let got = sc.receive(64, NOW).unwrap();
        if got.is_empty() {
            break;
        }
        sc.ack_all(&got).unwrap();
        rest.extend(got);
    }
    let mut seen: HashSet<String> = HashSet::new();
    for m in &rest {
        let body = m.body_str().unwrap().to_string();
        assert!(!acked.contains(&body), "a flushed ack came back: {body}");
        seen.insert(body);
    }
    for i in 0..3000 {
        let body = format!("m{i}");
        // The child acks everything it receives but bodies ending in 7; an ack it
        // made just before the kill may or may not have been durable.
        let maybe_acked = got.contains(&body) && !body.ends_with('7');
        assert!(
            seen.contains(&body) || maybe_acked,
            "{body} was never acked and is gone"
        );
        if got.contains(&body) && body.ends_with('7') {
            assert!(
                seen.contains(&body),
                "{body} was received, never acked, and is gone"
            );
        }
    }
}

/// A receipt handle names a delivery of its own store only: the same group, topic,
/// queue and offset in another store (two brokers in one process, or two servers a
/// client talks to) refuse it instead of acking their own message.
#[test]
fn a_handle_of_another_store_is_refused_and_acks_nothing() {
    let (a, _) = manual();
    let (b, _) = manual();
    for broker in [&a, &b] {
        broker.create_topic("t", 1).unwrap();
        send_n(broker, "t", 1);
    }
    let (sa, sb) = (simple(&a, "g", "t"), simple(&b, "g", "t"));
    let from_a = sa.receive(1, NOW).unwrap();
    let from_b = sb.receive(1, NOW).unwrap();
    assert_eq!(
        (from_a[0].queue_id, from_a[0].queue_offset),
        (from_b[0].queue_id, from_b[0].queue_offset)
    );
    assert_eq!(
        sb.ack(&from_a[0]).unwrap_err().kind(),
        ErrorKind::InvalidReceiptHandle
    );
    assert_eq!(b.lag("g", "t").unwrap(), 1, "b's message is not acked");
    sb.ack(&from_b[0]).unwrap();
    sa.ack(&from_a[0]).unwrap();
    assert_eq!((a.lag("g", "t").unwrap(), b.lag("g", "t").unwrap()), (0, 0));
}

/// A live simple group shows in stats with its members and lag, as a classic one does.
#[test]
fn simple_groups_show_in_stats() {
    let (b, _) = manual();
    send_n(&b, "t", 3);
    let sc = simple(&b, "sg", "t");
    let got = sc.receive(1, NOW).unwrap();
    sc.ack(&got[0]).unwrap();
    let stats = b.stats().unwrap();
    let g = stats
        .groups
        .iter()
        .find(|g| (g.group.as_str(), g.topic.as_str()) == ("sg", "t"))
        .expect("the simple group is listed");
    assert_eq!((g.consumers, g.lag), (1, 2));
    drop(sc);
    let stats = b.stats().unwrap();
    let g = stats.groups.iter().find(|g| g.group == "sg").unwrap();
    assert_eq!((g.consumers, g.lag), (0, 2));
}

/// A receipt handle from before a topic was deleted names nothing of the topic
/// created again under the same name (its offsets start over): acking it is refused
/// and the new message stays to be delivered, also across a restart.
#[test]
fn a_handle_from_before_a_delete_does_not_ack_the_topic_created_again() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let old = {
        let b = file(dir.path(), &clock);
        b.create_topic("t", 1).unwrap();
        send_n(&b, "t", 1);
        let sc = simple(&b, "g", "t");
        let [old]: [MessageExt; 1] = sc.receive(1, NOW).unwrap().try_into().unwrap();
        b.delete_topic("t").unwrap();
        b.create_topic("t", 1).unwrap();
        b.producer("p")
            .unwrap()
            .send(Message::new("t", "new"))
            .unwrap();
        assert!(sc.ack(&old).is_err(), "the old handle is refused");
        let got = sc.receive(1, NOW).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].body_str(), Some("new"));
        assert_eq!(got[0].queue_offset, old.queue_offset);
        b.close().unwrap();
        old
    };
    let b = file(dir.path(), &clock);
    let sc = simple(&b, "g", "t");
    assert!(sc.ack(&old).is_err(), "refused after a restart too");
    clock.advance_ms(60_000);
    let got = sc.receive(1, NOW).unwrap();
    assert_eq!(
        got.len(),
        1,
        "the new message was not acked by the old handle"
    );
    assert_eq!(got[0].body_str(), Some("new"));
}

/// After a reset the group receives its messages again, each with a handle of its
/// own: no handle of before the reset (of a delivery still out, or acked) takes a
/// delivery after it, in the run or after a restart.
#[test]
fn a_handle_from_before_a_reset_does_not_ack_the_delivery_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let b = file(dir.path(), &clock);
    b.create_topic("t", 1).unwrap();
    send_n(&b, "t", 3);
    let sc = simple(&b, "g", "t");
    let before = sc.receive(3, NOW).unwrap();
    sc.ack(&before[0]).unwrap();
    let reset = |b: &Broker| {
        b.reset_offset("g", "t", pocketmq::StartFrom::Earliest)
            .unwrap()
    };
    reset(&b);
    let after = sc.receive(3, NOW).unwrap();
    assert_eq!(after.len(), 3);
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(old.queue_offset, new.queue_offset);
        assert_ne!(old.receipt_handle, new.receipt_handle);
        let refused = sc.ack(old).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::InvalidReceiptHandle);
    }
    sc.ack(&after[2]).unwrap();
    // Again after a restart: a reset, then handles of both earlier rounds.
    sc.close().unwrap();
    b.close().unwrap();
    let b = file(dir.path(), &clock);
    let sc = simple(&b, "g", "t");
    reset(&b);
    let last = sc.receive(3, NOW).unwrap();
    assert_eq!(last.len(), 3);
    for m in before.iter().chain(&after) {
        assert!(sc.ack(m).is_err(), "an earlier handle took a delivery");
    }
    sc.ack_all(&last).unwrap();
    assert_eq!(b.lag("g", "t").unwrap(), 0);
}

/// Members of a live group subscribe alike: another tag filter, fifo or
/// max_delivery_attempts is refused, naming the live settings (a member with the
/// default attempts used to lift a group's limit of 3 for every member). Once the
/// group has no live member, a new one may change them.
#[test]
fn members_of_a_live_group_must_share_its_settings() {
    let (b, _) = common::manual();
    let three = || SimpleConsumerConfig {
        max_delivery_attempts: 3,
        ..SimpleConsumerConfig::new("g", "t")
    };
    let first = b.simple_consumer(three()).unwrap();
    for other in [
        SimpleConsumerConfig::new("g", "t"),
        SimpleConsumerConfig {
            fifo: true,
            ..three()
        },
        SimpleConsumerConfig {
            tags: "paid".into(),
            ..three()
        },
    ] {
        let err = b.simple_consumer(other).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("max_delivery_attempts 3"), "{err}");
    }
    let second = b.simple_consumer(three()).unwrap();
    drop((first, second));
    b.simple_consumer(SimpleConsumerConfig::new("g", "t"))
        .unwrap();
}

/// `nack_after` is spelled as a classic consumer's: the message comes back after the
/// delay on the broker's clock.
#[test]
fn nack_after_delays_the_next_delivery() {
    use pocketmq::Clock;
    let (b, clock) = manual();
    send_n(&b, "t", 1);
    let sc = simple(&b, "g", "t");
    let start = clock.now_ms();
    let first = sc.receive(1, NOW).unwrap();
    sc.nack_after(&first[0], Duration::from_secs(45)).unwrap();
    clock.advance_ms(44_000);
    assert!(sc.receive(1, NOW).unwrap().is_empty());
    clock.advance_ms(1_000);
    let again = sc.receive(1, NOW).unwrap();
    assert_eq!(again[0].delivery_attempt, 2);
    assert_eq!(clock.now_ms() - start, 45_000);
}
