//! Consumers that never strand a message: ack deadlines, caller-chosen retry delays,
//! flow control and one subscription per group. All on a manual clock; only the
//! wake-up test sleeps.
#![allow(clippy::disallowed_methods)] // tests may start threads and read real time

mod common;

use std::time::Duration;

use common::{drain, manual, send, T0};
use pocketmq::{ConsumerConfig, ErrorKind, Message};

fn cfg(group: &str, topic: &str) -> ConsumerConfig {
    ConsumerConfig::new(group, topic)
}

/// The deadline is deferred work like a delay: no `tick` is needed for it, whatever
/// else is (or is not) pending; a receive runs it once it is due.
#[test]
fn an_ack_deadline_passes_without_tick() {
    let (b, clock) = manual();
    send(&b, "t", "stuck");
    let c = b
        .consumer(ConsumerConfig {
            ack_timeout_ms: Some(5_000),
            ..cfg("g", "t")
        })
        .unwrap();
    assert_eq!(drain(&c).len(), 1);
    assert_eq!(b.next_due_ms(), Some(T0 + 5_000), "the host is told when");
    clock.set_ms(T0 + 5_000);
    assert!(drain(&c).is_empty(), "sent back, behind the ladder's 10 s");
    assert_eq!(b.stats().unwrap().pending_delayed, 1);
    clock.set_ms(T0 + 15_000);
    let again = drain(&c);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].reconsume_times, 1);
}

#[test]
fn a_nack_delay_beyond_timer_max_delay_is_refused_orderly_too() {
    let (b, _) = manual();
    send(&b, "t", "x");
    for orderly in [false, true] {
        let c = b
            .consumer(ConsumerConfig {
                orderly,
                ..cfg(if orderly { "o" } else { "g" }, "t")
            })
            .unwrap();
        let m = drain(&c).remove(0);
        let e = c.nack_after(&m, Duration::MAX).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().contains("timer_max_delay"), "{e}");
        c.nack_after(&m, Duration::from_secs(1)).unwrap();
    }
}

#[test]
fn an_unacked_delivery_goes_back_exactly_at_its_deadline_then_after_the_ladder_step() {
    let (b, clock) = manual();
    send(&b, "t", "stuck");
    let c = b
        .consumer(ConsumerConfig {
            ack_timeout_ms: Some(60_000),
            ..cfg("g", "t")
        })
        .unwrap();
    let first = drain(&c);
    assert_eq!(first.len(), 1);
    assert_eq!(b.lag("g", "t").unwrap(), 1);
    // One millisecond before the deadline nothing moves...
    clock.set_ms(T0 + 59_999);
    b.tick().unwrap();
    assert!(drain(&c).is_empty());
    assert_eq!(b.stats().unwrap().pending_delayed, 0);
    // ...at the deadline the delivery goes back as a nack would: to the retry topic,
    // behind level 3 (10 s), reconsume_times + 1.
    clock.set_ms(T0 + 60_000);
    b.tick().unwrap();
    assert_eq!(b.stats().unwrap().pending_delayed, 1);
    assert_eq!(b.lag("g", "t").unwrap(), 1, "its retry is not acked yet");
    clock.set_ms(T0 + 60_000 + 9_999);
    b.tick().unwrap();
    assert!(drain(&c).is_empty());
    clock.set_ms(T0 + 70_000);
    b.tick().unwrap();
    let again = drain(&c);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].msg_id, first[0].msg_id);
    assert_eq!(again[0].reconsume_times, 1);
    // A late ack of the first delivery changes nothing: the redelivery stays in flight.
    c.ack(&first[0]).unwrap();
    clock.set_ms(T0 + 70_000 + 60_000);
    b.tick().unwrap();
    assert_eq!(b.stats().unwrap().pending_delayed, 1, "sent back once more");
    // Acked in time, it stays done.
    clock.set_ms(T0 + 130_000 + 30_000);
    b.tick().unwrap();
    let third = drain(&c);
    assert_eq!(third[0].reconsume_times, 2);
    assert_eq!(b.lag("g", "t").unwrap(), 1);
    c.ack(&third[0]).unwrap();
    assert_eq!(b.lag("g", "t").unwrap(), 0);
    clock.advance_ms(24 * 3_600_000);
    b.tick().unwrap();
    assert!(drain(&c).is_empty());
    assert_eq!(b.lag("g", "t").unwrap(), 0);
}

/// The broker may notice a deadline late (the clock jumped, or no tick ran): the
/// delivery still goes back as of its deadline, so its retry is due 10 s after the
/// deadline, not 10 s after the tick that noticed it. An orderly pause likewise.
#[test]
fn a_deadline_noticed_late_counts_from_the_deadline() {
    let (b, clock) = manual();
    send(&b, "t", "stuck");
    b.create_topic("o", 1).unwrap();
    send(&b, "o", "ordered");
    let c = b
        .consumer(ConsumerConfig {
            ack_timeout_ms: Some(5_000),
            ..cfg("g", "t")
        })
        .unwrap();
    let o = b
        .consumer(ConsumerConfig {
            ack_timeout_ms: Some(5_000),
            orderly: true,
            ..cfg("h", "o")
        })
        .unwrap();
    assert_eq!(drain(&c).len(), 1);
    assert_eq!(drain(&o).len(), 1);
    // Noticed 10 s after the deadline: the retry (deadline + 10 s) is due now, and
    // the orderly pause (deadline + 1 s) is over.
    clock.set_ms(T0 + 15_000);
    b.tick().unwrap();
    b.tick().unwrap();
    let again = drain(&c);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].reconsume_times, 1);
    let again = drain(&o);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].reconsume_times, 1);
}

#[test]
fn timed_out_deliveries_reach_the_dead_letter_queue_at_the_limit() {
    let (b, clock) = manual();
    let sent = send(&b, "t", "poison");
    let c = b
        .consumer(ConsumerConfig {
            ack_timeout_ms: Some(1_000),
            max_reconsume_times: 2,
            ..cfg("g", "t")
        })
        .unwrap();
    let mut deliveries = 0;
    for _ in 0..200 {
        deliveries += drain(&c).len();
        clock.advance_ms(10_000);
        b.tick().unwrap();
    }
    assert_eq!(deliveries, 3, "1 + max_reconsume_times deliveries");
    let dlq = b.consumer(cfg("dlq-reader", "%DLQ%g")).unwrap();
    let dead = drain(&dlq);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].msg_id, sent.msg_id);
    assert_eq!(dead[0].reconsume_times, 3);
}

#[test]
fn no_ack_timeout_means_never() {
    let (b, clock) = manual();
    send(&b, "t", "held");
    let c = b
        .consumer(ConsumerConfig {
            ack_timeout_ms: None,
            ..cfg("g", "t")
        })
        .unwrap();
    assert_eq!(drain(&c).len(), 1);
    clock.advance_ms(30 * 86_400_000);
    b.tick().unwrap();
    assert!(drain(&c).is_empty());
    assert_eq!(b.stats().unwrap().pending_delayed, 0);
}

#[test]
fn a_nack_may_choose_its_retry_delay() {
    let (b, clock) = manual();
    send(&b, "t", "later");
    let c = common::consumer(&b, "g", "t");
    let m = drain(&c).remove(0);
    c.nack_after(&m, Duration::from_millis(2_500)).unwrap();
    clock.set_ms(T0 + 2_499);
    b.tick().unwrap();
    assert!(drain(&c).is_empty());
    clock.set_ms(T0 + 2_500);
    b.tick().unwrap();
    let again = drain(&c);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].reconsume_times, 1, "a chosen delay still counts");
    // A delay past timer_max_delay is refused and changes nothing.
    let err = c
        .nack_after(&again[0], Duration::from_secs(31 * 86_400))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    c.nack_after(&again[0], Duration::ZERO).unwrap();
    assert_eq!(drain(&c)[0].reconsume_times, 2, "zero: at once");
}

#[test]
fn an_orderly_nack_with_a_delay_pauses_the_queue_that_long() {
    let (b, clock) = manual();
    b.create_topic("o", 1).unwrap();
    for i in 0..3 {
        send(&b, "o", &i.to_string());
    }
    let c = b
        .consumer(ConsumerConfig {
            orderly: true,
            ..cfg("g", "o")
        })
        .unwrap();
    let m = drain(&c).remove(0);
    c.nack_after(&m, Duration::from_secs(5)).unwrap();
    clock.advance_ms(4_999);
    b.tick().unwrap();
    assert!(drain(&c).is_empty());
    clock.advance_ms(1);
    b.tick().unwrap();
    let again = drain(&c);
    assert_eq!(common::bodies(&again), ["0"]);
    // The first delivery's late ack is stale; the redelivery is what counts.
    c.ack(&m).unwrap();
    assert!(drain(&c).is_empty(), "still in flight");
    c.ack(&again[0]).unwrap();
    assert_eq!(common::bodies(&drain(&c)), ["1"]);
}

#[test]
fn max_in_flight_caps_what_a_consumer_holds() {
    let (b, _) = manual();
    for i in 0..10 {
        send(&b, "t", &i.to_string());
    }
    let c = b
        .consumer(ConsumerConfig {
            max_in_flight: 3,
            ..cfg("g", "t")
        })
        .unwrap();
    let got = c.receive(32, Duration::ZERO).unwrap();
    assert_eq!(got.len(), 3);
    assert!(c.receive(32, Duration::ZERO).unwrap().is_empty());
    c.ack(&got[0]).unwrap();
    assert_eq!(c.receive(32, Duration::ZERO).unwrap().len(), 1);
    c.ack_all(&got[1..]).unwrap();
    assert_eq!(c.receive(32, Duration::ZERO).unwrap().len(), 2);
}

#[test]
fn a_full_consumer_waiting_in_receive_wakes_when_it_acks_elsewhere() {
    let (b, _) = manual();
    for i in 0..4 {
        send(&b, "t", &i.to_string());
    }
    let c = std::sync::Arc::new(
        b.consumer(ConsumerConfig {
            max_in_flight: 2,
            ..cfg("g", "t")
        })
        .unwrap(),
    );
    let held = c.receive(32, Duration::ZERO).unwrap();
    assert_eq!(held.len(), 2);
    let waiter = {
        let c = c.clone();
        std::thread::spawn(move || c.receive(32, Duration::from_secs(10)).unwrap())
    };
    std::thread::sleep(Duration::from_millis(50));
    c.ack_all(&held).unwrap();
    let got = waiter.join().unwrap();
    assert_eq!(got.len(), 2);
}

#[test]
fn members_of_a_group_subscribe_alike() {
    let (b, _) = manual();
    let _a = b
        .consumer(ConsumerConfig {
            tags: "A".into(),
            ..cfg("g", "t")
        })
        .unwrap();
    let err = b
        .consumer(ConsumerConfig {
            tags: "B".into(),
            ..cfg("g", "t")
        })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("\"A\""), "{err}");
    assert_eq!(
        b.consumer(cfg("g", "other")).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    // The same subscription in another spelling joins.
    let _b = b
        .consumer(ConsumerConfig {
            tags: " A ".into(),
            ..cfg("g", "t")
        })
        .unwrap();
    // Once the live members leave, the group may subscribe anew.
    drop((_a, _b));
    b.consumer(ConsumerConfig {
        tags: "B".into(),
        ..cfg("g", "t")
    })
    .unwrap();
}

#[test]
fn options_out_of_range_are_refused() {
    let (b, _) = manual();
    for bad in [
        ConsumerConfig {
            ack_timeout_ms: Some(0),
            ..cfg("g", "t")
        },
        ConsumerConfig {
            max_in_flight: 0,
            ..cfg("g", "t")
        },
    ] {
        assert_eq!(
            b.consumer(bad).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }
    let p = b.producer("p").unwrap();
    p.send(Message::new("t", "x")).unwrap();
}

/// A receive of nothing waits for nothing.
#[test]
fn a_receive_of_zero_messages_returns_at_once() {
    let (b, _) = manual();
    let c = b.consumer(cfg("g", "t")).unwrap();
    let started = std::time::Instant::now();
    assert!(c.receive(0, Duration::from_secs(30)).unwrap().is_empty());
    assert!(started.elapsed() < Duration::from_secs(10), "it waited");
    let sc = b
        .simple_consumer(pocketmq::SimpleConsumerConfig::new("s", "t"))
        .unwrap();
    assert!(sc.receive(0, Duration::from_secs(30)).unwrap().is_empty());
    assert!(started.elapsed() < Duration::from_secs(10), "it waited");
}
