//! Delay levels and deliver-at timers under a manual clock.

mod common;

use common::*;
use pocketmq::{BrokerConfig, Message};

/// Everything the consumer can take now, acked (these tests move the clock by hours:
/// an unacked delivery would come back at its ack deadline).
fn drain(c: &pocketmq::Consumer) -> Vec<pocketmq::MessageExt> {
    let got = common::drain(c);
    c.ack_all(&got).unwrap();
    got
}

const LEVELS_MS: [u64; 18] = [
    1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000, 420_000,
    480_000, 540_000, 600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
];

#[test]
fn each_level_is_invisible_until_due_then_delivered_once() {
    for (i, delay) in LEVELS_MS.iter().enumerate() {
        let (b, clock) = manual();
        let c = consumer(&b, "g", "t");
        let p = b.producer("p").unwrap();
        let r = p
            .send(
                Message::builder("t", "later")
                    .delay_level(i as u32 + 1)
                    .property("x", "1")
                    .build(),
            )
            .unwrap();
        clock.advance_ms(delay - 1);
        b.tick().unwrap();
        assert!(drain(&c).is_empty(), "level {} visible early", i + 1);
        clock.advance_ms(1);
        b.tick().unwrap();
        let got = drain(&c);
        assert_eq!(bodies(&got), vec!["later"], "level {}", i + 1);
        assert_eq!(got[0].msg_id, r.msg_id);
        assert_eq!(got[0].properties.get("x").map(String::as_str), Some("1"));
        assert!(!got[0].properties.contains_key("DELAY"));
        clock.advance_ms(10 * 3600 * 1000);
        b.tick().unwrap();
        assert!(drain(&c).is_empty());
    }
}

#[test]
fn level_zero_is_immediate_and_high_levels_clamp_to_the_last() {
    let (b, clock) = manual();
    let c = consumer(&b, "g", "t");
    let p = b.producer("p").unwrap();
    p.send(Message::builder("t", "now").delay_level(0).build())
        .unwrap();
    p.send(Message::builder("t", "2h").delay_level(99).build())
        .unwrap();
    assert_eq!(bodies(&drain(&c)), vec!["now"]);
    clock.advance_ms(7_200_000 - 1);
    b.tick().unwrap();
    assert!(drain(&c).is_empty());
    clock.advance_ms(1);
    b.tick().unwrap();
    assert_eq!(bodies(&drain(&c)), vec!["2h"]);
}

#[test]
fn deliver_at_has_millisecond_precision_and_the_past_is_immediate() {
    let (b, clock) = manual();
    let c = consumer(&b, "g", "t");
    let p = b.producer("p").unwrap();
    p.send(
        Message::builder("t", "past")
            .deliver_at_ms(T0 - 5000)
            .build(),
    )
    .unwrap();
    p.send(
        Message::builder("t", "3.5s")
            .deliver_at_ms(T0 + 3500)
            .build(),
    )
    .unwrap();
    p.send(Message::builder("t", "after").delay_ms(1234).build())
        .unwrap();
    p.send(
        Message::builder("t", "3 days")
            .delay_ms(3 * 86_400_000)
            .build(),
    )
    .unwrap();
    assert_eq!(bodies(&drain(&c)), vec!["past"]);
    clock.advance_ms(1233);
    b.tick().unwrap();
    assert!(drain(&c).is_empty());
    clock.advance_ms(1);
    b.tick().unwrap();
    assert_eq!(bodies(&drain(&c)), vec!["after"]);
    clock.advance_ms(3500 - 1234 - 1);
    b.tick().unwrap();
    assert!(drain(&c).is_empty());
    clock.advance_ms(1);
    b.tick().unwrap();
    assert_eq!(bodies(&drain(&c)), vec!["3.5s"]);
    clock.advance_ms(3 * 86_400_000);
    b.tick().unwrap();
    assert_eq!(bodies(&drain(&c)), vec!["3 days"]);
    let too_far = p.send(Message::builder("t", "x").delay_ms(31 * 86_400_000).build());
    assert!(matches!(too_far, Err(pocketmq::Error::InvalidArgument(_))));
}

#[test]
fn custom_levels_apply() {
    let clock = pocketmq::ManualClock::new(T0);
    let cfg = BrokerConfig {
        clock: std::sync::Arc::new(clock.clone()),
        background: false,
        delay_levels: "2s 1m".into(),
        ..BrokerConfig::default()
    };
    let b = pocketmq::Broker::open(cfg).unwrap();
    let c = consumer(&b, "g", "t");
    b.producer("p")
        .unwrap()
        .send(Message::builder("t", "x").delay_level(5).build())
        .unwrap();
    clock.advance_ms(59_999);
    b.tick().unwrap();
    assert!(drain(&c).is_empty());
    clock.advance_ms(1);
    b.tick().unwrap();
    assert_eq!(drain(&c).len(), 1);
    let bad = BrokerConfig {
        delay_levels: "2x".into(),
        ..BrokerConfig::default()
    };
    assert!(matches!(
        pocketmq::Broker::open(bad),
        Err(pocketmq::Error::InvalidArgument(_))
    ));
}

#[test]
fn a_restart_mid_delay_delivers_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = pocketmq::ManualClock::new(T0);
    {
        let b = file(dir.path(), &clock);
        let p = b.producer("p").unwrap();
        p.send(Message::builder("t", "level").delay_level(3).build())
            .unwrap();
        p.send(Message::builder("t", "timer").delay_ms(20_000).build())
            .unwrap();
        clock.advance_ms(5_000);
        b.tick().unwrap();
        b.close().unwrap();
    }
    let b = file(dir.path(), &clock);
    let c = consumer(&b, "g", "t");
    clock.advance_ms(4_999);
    b.tick().unwrap();
    assert!(drain(&c).is_empty());
    clock.advance_ms(1);
    b.tick().unwrap();
    assert_eq!(bodies(&drain(&c)), vec!["level"]);
    clock.advance_ms(9_999);
    b.tick().unwrap();
    assert!(drain(&c).is_empty());
    clock.advance_ms(1);
    b.tick().unwrap();
    assert_eq!(bodies(&drain(&c)), vec!["timer"]);
    b.close().unwrap();
    // Nothing is delivered twice after a clean restart.
    let b = file(dir.path(), &clock);
    let c = consumer(&b, "g2", "t");
    clock.advance_ms(60_000);
    b.tick().unwrap();
    let mut got = bodies(&drain(&c));
    got.sort();
    assert_eq!(got, vec!["level", "timer"]);
    assert_eq!(b.stats().unwrap().pending_delayed, 0);
}

/// A store reopened with fewer delay levels keeps the messages waiting at the levels
/// it no longer has: as a level above the last is clamped to the last when sent, they
/// come due by the last level's delay, each delivered once.
#[test]
fn fewer_levels_after_a_restart_still_deliver_what_waits_at_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let clock = pocketmq::ManualClock::new(T0);
    {
        let b = file(dir.path(), &clock);
        let p = b.producer("p").unwrap();
        for (body, level) in [("l1", 1), ("l3", 3), ("l18", 18)] {
            p.send(Message::builder("t", body).delay_level(level).build())
                .unwrap();
        }
        b.close().unwrap();
    }
    let reopen = || {
        let cfg = BrokerConfig {
            delay_levels: "1s 2s".into(),
            ..file_config(dir.path(), &clock)
        };
        pocketmq::Broker::open(cfg).unwrap()
    };
    let b = reopen();
    assert_eq!(b.stats().unwrap().pending_delayed, 3);
    let c = consumer(&b, "g", "t");
    clock.advance_ms(999);
    b.tick().unwrap();
    assert!(drain(&c).is_empty());
    clock.advance_ms(1);
    b.tick().unwrap();
    assert_eq!(bodies(&drain(&c)), vec!["l1"]);
    clock.advance_ms(999);
    b.tick().unwrap();
    assert!(drain(&c).is_empty());
    clock.advance_ms(1);
    b.tick().unwrap();
    let mut got = bodies(&drain(&c));
    got.sort();
    assert_eq!(got, vec!["l18", "l3"]);
    assert_eq!(b.stats().unwrap().pending_delayed, 0);
    b.close().unwrap();
    let b = reopen();
    let c = consumer(&b, "g2", "t");
    clock.advance_ms(60_000);
    b.tick().unwrap();
    let mut got = bodies(&drain(&c));
    got.sort();
    assert_eq!(got, vec!["l1", "l18", "l3"], "each once");
    assert_eq!(b.stats().unwrap().pending_delayed, 0);
}

/// Many large delayed messages coming due together are re-appended in runs that
/// fit a segment: all are delivered, and nothing keeps failing afterwards.
#[test]
fn many_large_messages_coming_due_together_are_all_delivered() {
    for timer in [false, true] {
        let clock = pocketmq::ManualClock::new(T0);
        let b = pocketmq::Broker::open(BrokerConfig {
            clock: std::sync::Arc::new(clock.clone()),
            background: false,
            segment_size: Some(4 << 20),
            ..BrokerConfig::default()
        })
        .unwrap();
        let c = consumer(&b, "g", "t");
        let p = b.producer("p").unwrap();
        let body = vec![b'x'; 300 << 10];
        for i in 0..40u8 {
            let mut body = body.clone();
            body[0] = i;
            let m = Message::builder("t", body);
            let m = if timer {
                m.delay_ms(5000)
            } else {
                m.delay_level(2)
            };
            p.send(m.build()).unwrap();
        }
        clock.advance_ms(5000);
        b.tick().expect("due work fits");
        let mut got = 0;
        loop {
            let batch = c.receive(64, std::time::Duration::ZERO).unwrap();
            if batch.is_empty() {
                break;
            }
            for m in &batch {
                c.ack(m).unwrap();
            }
            got += batch.len();
        }
        assert_eq!(got, 40, "timer={timer}");
        assert_eq!(b.stats().unwrap().pending_delayed, 0);
        // And other topics keep working.
        p.send(Message::new("u", "ok")).unwrap();
        assert_eq!(bodies(&drain(&consumer(&b, "g2", "u"))), vec!["ok"]);
    }
}

/// The child half of the clock-ahead test: a sync send with `delay=1.0` on the
/// wall clock, reported, then a wait to be killed.
#[test]
fn delayed_sync_writer_child() {
    let Ok(dir) = std::env::var("POCKETMQ_DELAY_DIR") else {
        return;
    };
    let b = pocketmq::Broker::open(BrokerConfig {
        flush: pocketmq::FlushMode::Sync,
        ..BrokerConfig::at(&dir)
    })
    .unwrap();
    let r = b
        .producer("p")
        .unwrap()
        .send(
            Message::builder("t", "one second later")
                .delay_ms(1000)
                .build(),
        )
        .unwrap();
    assert_eq!(r.status, pocketmq::SendStatus::SendOk);
    println!("ACK {}", r.msg_id);
    std::thread::sleep(std::time::Duration::from_secs(60));
}

/// A run whose clock was a day ahead of the wall clock leaves a timer checkpoint in
/// the future; a sync-acknowledged `delay=1.0` message of a later run on the wall
/// clock still survives kill -9 and is delivered.
#[test]
fn a_clock_ahead_in_an_earlier_run_loses_no_later_timer() {
    let dir = tempfile::tempdir().unwrap();
    let wall = pocketmq::SystemClock;
    let now = pocketmq::Clock::now_ms(&wall);
    {
        let ahead = pocketmq::ManualClock::new(now + 86_400_000);
        let b = file(dir.path(), &ahead);
        let c = consumer(&b, "g", "t");
        let p = b.producer("p").unwrap();
        p.send(Message::builder("t", "early").delay_ms(1000).build())
            .unwrap();
        ahead.advance_ms(2000);
        b.tick().unwrap();
        assert_eq!(bodies(&drain(&c)), vec!["early"]);
        b.close().unwrap();
    }
    for attempt in 0..2 {
        let acked = kill_child_after(
            "delayed_sync_writer_child",
            "POCKETMQ_DELAY_DIR",
            dir.path(),
            "ACK ",
        );
        let later = pocketmq::ManualClock::new(pocketmq::Clock::now_ms(&wall) + 10_000);
        let b = file(dir.path(), &later);
        b.tick().unwrap();
        let got = drain(&consumer(&b, &format!("check{attempt}"), "t"));
        assert!(
            got.iter().any(|m| m.msg_id == acked),
            "attempt {attempt}: the acknowledged delayed message was lost: {:?}",
            bodies(&got)
        );
        b.close().unwrap();
    }
}

/// The timer queue's file may lag the log after a crash (its tail not yet written
/// out): recovery rebuilds it from the log, and timers delivered before the crash
/// stay delivered instead of coming a second time.
#[test]
fn delivered_timers_are_not_delivered_again_when_the_timer_queue_lagged_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let clock = pocketmq::ManualClock::new(T0);
    {
        let b = file(dir.path(), &clock);
        let p = b.producer("p").unwrap();
        for i in 0..5 {
            let m = Message::builder("t", format!("m{i}"))
                .delay_ms(1000)
                .build();
            p.send(m).unwrap();
        }
        clock.advance_ms(2000);
        b.tick().unwrap();
        assert_eq!(b.stats().unwrap().pending_delayed, 0);
        b.flush().unwrap();
        copy_store(dir.path(), crashed.path());
    }
    // The crash left the timer queue's file behind the log.
    std::fs::remove_dir_all(crashed.path().join("consumequeue/rmq_sys_wheel_timer")).unwrap();
    let b = file(crashed.path(), &clock);
    assert_eq!(b.stats().unwrap().pending_delayed, 0);
    clock.advance_ms(10_000);
    b.tick().unwrap();
    let got = drain(&consumer(&b, "g", "t"));
    assert_eq!(got.len(), 5, "{:?}", bodies(&got));
}

/// A delayed message recalled before its time (RocketMQ 5.3's recallMessage) is never
/// delivered; the others are, on time.
#[test]
fn a_recalled_delayed_message_is_never_delivered() {
    let (b, clock) = manual();
    let c = consumer(&b, "g", "orders");
    let p = b.producer("p").unwrap();
    let send = |m: pocketmq::MessageBuilder| p.send(m.build()).unwrap();
    let level = send(Message::builder("orders", "cancel-1").delay_level(3));
    let timer = send(Message::builder("orders", "cancel-2").deliver_at_ms(T0 + 10_000));
    let given = send(
        Message::builder("orders", "cancel-3")
            .delay_ms(10_000)
            .msg_id("order-3-cancel"),
    );
    let kept = send(Message::builder("orders", "cancel-4").delay_ms(10_000));
    let plain = send(Message::builder("orders", "paid"));
    assert_eq!(plain.recall_handle, None, "only a delayed message has one");
    assert_eq!(b.stats().unwrap().pending_delayed, 4);
    for r in [&level, &timer, &given] {
        let h = r
            .recall_handle
            .as_deref()
            .expect("a delayed send reports a handle");
        assert!(p.recall("orders", h).unwrap(), "{}", r.msg_id);
        assert!(
            !p.recall("orders", h).unwrap(),
            "a second recall changes nothing"
        );
    }
    assert_eq!(b.stats().unwrap().pending_delayed, 1);
    clock.advance_ms(10_000);
    b.tick().unwrap();
    let mut got = bodies(&drain(&c));
    got.sort();
    assert_eq!(got, ["cancel-4", "paid"]);
    assert_eq!(b.stats().unwrap().pending_delayed, 0);
    // Too late once delivered.
    let h = kept.recall_handle.as_deref().unwrap();
    assert!(!p.recall("orders", h).unwrap());
    clock.advance_ms(3_600_000);
    b.tick().unwrap();
    assert!(drain(&c).is_empty());
}

#[test]
fn a_recall_handle_of_another_topic_or_none_at_all_is_refused() {
    let (b, clock) = manual();
    let c = consumer(&b, "g", "orders");
    let p = b.producer("p").unwrap();
    let r = p
        .send(Message::builder("orders", "later").delay_ms(5_000).build())
        .unwrap();
    let h = r.recall_handle.unwrap();
    let err = p.recall("payments", &h).unwrap_err();
    assert_eq!(err.kind(), pocketmq::ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("orders"), "{err}");
    // "v1 orders" and "v1 orders pocketmq soon x", base64.
    for bad in [
        "",
        "not a handle",
        "djEgb3JkZXJz",
        "djEgb3JkZXJzIHBvY2tldG1xIHNvb24geA==",
    ] {
        let err = p.recall("orders", bad).unwrap_err();
        assert_eq!(
            err.kind(),
            pocketmq::ErrorKind::InvalidArgument,
            "{bad:?}: {err}"
        );
    }
    // Nothing of that was recalled.
    clock.advance_ms(5_000);
    b.tick().unwrap();
    assert_eq!(bodies(&drain(&c)), ["later"]);
}

/// A recall is a record in the log: it holds across a clean restart and a crash.
#[test]
fn a_recall_survives_a_restart_and_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let clock = pocketmq::ManualClock::new(T0);
    {
        let b = file(dir.path(), &clock);
        let p = b.producer("p").unwrap();
        for (i, recall) in [true, false, true].into_iter().enumerate() {
            let m = Message::builder("t", format!("m{i}")).delay_ms(60_000 * (i as u64 + 1));
            let r = p.send(m.build()).unwrap();
            if recall {
                assert!(p.recall("t", r.recall_handle.as_deref().unwrap()).unwrap());
            }
        }
        b.flush().unwrap();
        copy_store(dir.path(), crashed.path());
        b.close().unwrap();
    }
    for store in [dir.path(), crashed.path()] {
        let clock = pocketmq::ManualClock::new(T0);
        let b = file(store, &clock);
        assert_eq!(b.stats().unwrap().pending_delayed, 1);
        clock.advance_ms(3 * 60_000);
        b.tick().unwrap();
        assert_eq!(bodies(&drain(&consumer(&b, "g", "t"))), ["m1"], "{store:?}");
        assert_eq!(b.stats().unwrap().pending_delayed, 0);
        b.close().unwrap();
    }
}

/// "Due work runs on the next tick() or broker call": after the clock moves, every
/// call answers as of the new time, without a tick and without the background thread.
#[test]
fn due_work_runs_on_the_next_broker_call() {
    let (b, clock) = manual();
    let c = consumer(&b, "g", "t");
    let p = b.producer("p").unwrap();
    let one_queue = |body: &str| Message::builder("t", body.to_string()).queue_id(0);
    p.send(one_queue("later").delay_ms(10_000).build()).unwrap();
    assert_eq!(b.lag("g", "t").unwrap(), 0);
    type Call = Box<dyn Fn(&pocketmq::Broker) -> u64>;
    let calls: Vec<(&str, Call)> = vec![
        ("lag", Box::new(|b| b.lag("g", "t").unwrap())),
        (
            "stats",
            Box::new(|b| 1 - b.stats().unwrap().pending_delayed),
        ),
        (
            "browse",
            Box::new(|b| b.browse("t", None, None, 32).unwrap().len() as u64),
        ),
        (
            "topics",
            Box::new(|b| {
                b.topics().unwrap();
                b.lag("g", "t").unwrap()
            }),
        ),
    ];
    for (name, call) in calls {
        let (b, clock) = manual();
        let _c = consumer(&b, "g", "t");
        b.producer("p")
            .unwrap()
            .send(Message::builder("t", "later").delay_ms(10_000).build())
            .unwrap();
        clock.advance_ms(10_000);
        assert_eq!(call(&b), 1, "{name}");
    }
    // A send, too, delivers what came due before it is stored.
    clock.advance_ms(10_000);
    p.send(one_queue("after").build()).unwrap();
    // One queue: the delayed message was stored before the send.
    assert_eq!(bodies(&drain(&c)), ["later", "after"]);
}

/// An ack after the ack deadline passed changes nothing, though no tick ran between:
/// the ack itself first sends the delivery back.
#[test]
fn a_late_ack_changes_nothing_without_a_tick() {
    let (b, clock) = manual();
    let c = b
        .consumer(pocketmq::ConsumerConfig {
            ack_timeout_ms: Some(60_000),
            ..pocketmq::ConsumerConfig::new("g", "t")
        })
        .unwrap();
    b.producer("p")
        .unwrap()
        .send(Message::new("t", "x"))
        .unwrap();
    let m = c.receive(1, std::time::Duration::ZERO).unwrap();
    clock.advance_ms(60_000);
    c.ack(&m[0]).unwrap();
    clock.advance_ms(10_000);
    b.tick().unwrap();
    let again = c.receive(1, std::time::Duration::ZERO).unwrap();
    assert_eq!(again.len(), 1, "redelivered");
    assert_eq!(again[0].reconsume_times, 1);
}
