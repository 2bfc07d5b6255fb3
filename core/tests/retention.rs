//! Retention under a manual clock: whole segments older than `file_reserved_time` go,
//! oldest first, never the active one; queue minimums and readers follow.

mod common;

use std::sync::Arc;

use common::*;
use pocketmq::{Broker, BrokerConfig, ManualClock, Message};

#[test]
fn expired_segments_go_and_queue_minimums_follow() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let b = Broker::open(BrokerConfig {
        clock: Arc::new(clock.clone()),
        background: false,
        segment_size: Some(8192),
        file_reserved_time_ms: 3_600_000,
        // Age alone decides here, at any hour, however full the machine's disk is.
        delete_when: "*".into(),
        disk_clean_ratio: 1.0,
        disk_max_used_ratio: 1.0,
        disk_clean_forcibly_ratio: 1.0,
        ..BrokerConfig::at(dir.path())
    })
    .unwrap();
    b.create_topic("t", 1).unwrap();
    let slow = consumer(&b, "slow", "t");
    let p = b.producer("p").unwrap();
    let body = "z".repeat(900);
    for i in 0..40 {
        p.send(Message::new("t", format!("{i:02}{body}"))).unwrap();
    }
    // Segments holding records (the allocator creates the next one, empty, on its
    // own thread at any moment).
    let segments = || segments(dir.path());
    let before = segments();
    assert!(before >= 4, "{before} segments");
    clock.advance_ms(3_600_000 - 1);
    b.tick().unwrap();
    assert_eq!(segments(), before, "nothing is old enough yet");
    // Newer messages keep the last segment young.
    clock.advance_ms(2);
    p.send(Message::new("t", "fresh")).unwrap();
    b.tick().unwrap();
    let after = segments();
    assert!(after < before && after >= 1, "{before} -> {after}");
    let stats = b.stats().unwrap();
    let q = &stats.topics["t"].queues[0];
    assert!(q.min_offset > 0, "the queue minimum moved: {q:?}");
    assert_eq!(q.max_offset, 41);
    // A reader below the minimum moves up to it; a new group starts there.
    let got = drain(&slow);
    assert_eq!(got.first().unwrap().queue_offset, q.min_offset);
    assert_eq!(got.last().unwrap().body_str(), Some("fresh"));
    assert_eq!(
        drain(&consumer(&b, "new", "t")).len() as u64,
        41 - q.min_offset
    );
    assert_eq!(b.lag("other", "t").unwrap(), 41 - q.min_offset);
    // Everything expired: all but the active segment go.
    clock.advance_ms(10 * 3_600_000);
    b.tick().unwrap();
    b.tick().unwrap();
    assert_eq!(segments(), 1);
    b.close().unwrap();
    let b = Broker::open(BrokerConfig {
        background: false,
        ..BrokerConfig::at(dir.path())
    })
    .unwrap();
    b.create_topic("t", 1).unwrap();
    let rest = drain(&consumer(&b, "later", "t"));
    assert!(rest.iter().any(|m| m.body_str() == Some("fresh")));
}

fn segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("commitlog"))
        .unwrap()
        // A segment file the allocator is still creating may be empty for a moment.
        .filter(|e| {
            let bytes = std::fs::read(e.as_ref().unwrap().path()).unwrap();
            bytes.len() >= 8 && bytes[..8] != [0u8; 8]
        })
        .count()
}

fn open_with(
    dir: &std::path::Path,
    clock: &ManualClock,
    f: impl FnOnce(&mut BrokerConfig),
) -> Broker {
    let mut cfg = BrokerConfig {
        clock: Arc::new(clock.clone()),
        background: false,
        segment_size: Some(8192),
        file_reserved_time_ms: 3_600_000,
        // Age and consumption alone decide, at any hour, however full the machine's
        // disk is.
        delete_when: "*".into(),
        disk_clean_ratio: 1.0,
        disk_max_used_ratio: 1.0,
        disk_clean_forcibly_ratio: 1.0,
        ..BrokerConfig::at(dir)
    };
    f(&mut cfg);
    Broker::open(cfg).unwrap()
}

fn fill(b: &Broker, topic: &str, n: usize) {
    let p = b.producer("p").unwrap();
    let body = "z".repeat(900);
    for i in 0..n {
        p.send(Message::new(topic, format!("{i:03}{body}")))
            .unwrap();
    }
}

/// RocketMQ's `deleteWhen`: expired segments go in its hours (04 UTC by default), or
/// at any hour while the disk is used above `disk_clean_ratio`; not otherwise.
#[test]
fn expired_segments_go_in_the_delete_when_hour_or_under_disk_pressure() {
    const HOUR: u64 = 3_600_000;
    assert_eq!(T0 / HOUR % 24, 16, "T0 is 16:00 UTC");
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let b = open_with(dir.path(), &clock, |c| {
        c.delete_when = BrokerConfig::default().delete_when;
    });
    fill(&b, "t", 40);
    let before = segments(dir.path());
    assert!(before >= 4);
    // 18:00, two hours after the sends: expired, but not the hour.
    clock.advance_ms(2 * HOUR);
    b.tick().unwrap();
    assert_eq!(
        segments(dir.path()),
        before,
        "expired segments wait for 04:00"
    );
    // 03:59 the next day: still not.
    clock.advance_ms(10 * HOUR - 60_000);
    b.tick().unwrap();
    assert_eq!(segments(dir.path()), before);
    // 04:00: they go.
    clock.advance_ms(60_000);
    b.tick().unwrap();
    assert!(segments(dir.path()) < before, "the 04 hour deletes them");
    b.close().unwrap();

    // Outside the hours, disk usage above disk_clean_ratio starts the pass at once.
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let b = open_with(dir.path(), &clock, |c| {
        c.delete_when = "01;13".into();
        c.disk_clean_ratio = 0.0;
    });
    fill(&b, "t", 40);
    let before = segments(dir.path());
    clock.advance_ms(30 * 60_000);
    b.tick().unwrap();
    assert_eq!(
        segments(dir.path()),
        before,
        "under pressure, still only what expired"
    );
    clock.advance_ms(2 * HOUR);
    b.tick().unwrap();
    assert!(
        segments(dir.path()) < before,
        "disk pressure deletes at 18:30"
    );
}

#[test]
fn delete_when_takes_hours_of_the_day() {
    for good in ["04", "4", "01;13", " 0 ; 23 ", "*"] {
        let c = BrokerConfig {
            delete_when: good.into(),
            ..BrokerConfig::default()
        };
        assert!(c.validate().is_ok(), "{good:?}");
    }
    for bad in ["", "24", "4am", "01,13", "-1", ";"] {
        let c = BrokerConfig {
            delete_when: bad.into(),
            ..BrokerConfig::default()
        };
        let e = c.validate().unwrap_err();
        assert_eq!(e.kind(), pocketmq::ErrorKind::InvalidArgument, "{bad:?}");
        assert!(e.to_string().contains("delete_when"), "{e}");
    }
}

/// Retention runs by itself on the background thread: no call to tick needed.
#[test]
#[allow(clippy::disallowed_methods)]
fn retention_runs_on_its_own_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let b = open_with(dir.path(), &clock, |c| c.background = true);
    fill(&b, "t", 40);
    let before = segments(dir.path());
    assert!(before >= 4);
    // A host without threads (wasm) is told when to run it.
    assert!(b.next_due_ms().is_some_and(|t| t <= T0 + 10_000));
    clock.advance_ms(2 * 3_600_000);
    let started = std::time::Instant::now();
    while segments(dir.path()) == before && started.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(segments(dir.path()) < before, "retention never ran");
}

/// Records still needed by pending delays, timers and half transactions keep their
/// segments however old they get; once delivered, those segments go.
#[test]
fn pending_deferred_records_keep_their_segments() {
    struct Unknown;
    impl pocketmq::TransactionListener for Unknown {
        fn check(&self, _: &pocketmq::MessageExt) -> pocketmq::TxState {
            pocketmq::TxState::Unknown
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let b = open_with(dir.path(), &clock, |c| {
        c.delay_levels = "1s 4d".into();
        c.transaction_timeout_ms = 6 * 86_400_000;
    });
    let p = b.producer("p").unwrap();
    let day = 86_400_000;
    p.send(Message::builder("t", "in four days").delay_level(2).build())
        .unwrap();
    p.send(
        Message::builder("t", "in five days")
            .delay_ms(5 * day)
            .build(),
    )
    .unwrap();
    b.transaction_producer("tx", Arc::new(Unknown))
        .unwrap()
        .send(Message::new("t", "undecided"), |_| {
            pocketmq::TxState::Unknown
        })
        .unwrap();
    fill(&b, "t", 60);
    let c = consumer(&b, "g", "t");
    let got = drain(&c);
    assert_eq!(got.len(), 60);
    c.ack_all(&got).unwrap();
    let before = segments(dir.path());
    clock.advance_ms(3 * day + day / 2);
    b.tick().unwrap();
    b.tick().unwrap();
    assert_eq!(
        segments(dir.path()),
        before,
        "the first segment holds pending records"
    );
    clock.advance_ms(day);
    b.tick().unwrap();
    assert_eq!(bodies(&drain(&c)), vec!["in four days"]);
    clock.advance_ms(day);
    b.tick().unwrap();
    assert_eq!(bodies(&drain(&c)), vec!["in five days"]);
    // The half message still pins its segment until it is resolved or discarded.
    assert_eq!(b.stats().unwrap().pending_transactions, 1);
    assert_eq!(segments(dir.path()), before);
}

/// Messages a group had not consumed when retention removed them are counted.
#[test]
fn expired_unconsumed_messages_are_counted_per_group() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let b = open_with(dir.path(), &clock, |_| {});
    b.create_topic("t", 1).unwrap();
    let slow = consumer(&b, "slow", "t");
    let fast = consumer(&b, "fast", "t");
    // A simple (POP) group that reads nothing loses as much.
    let simple = b
        .simple_consumer(pocketmq::SimpleConsumerConfig::new("simple-slow", "t"))
        .unwrap();
    fill(&b, "t", 40);
    let got = drain(&fast);
    fast.ack_all(&got).unwrap();
    clock.advance_ms(2 * 3_600_000);
    fill(&b, "t", 1);
    b.tick().unwrap();
    let stats = b.stats().unwrap();
    let expired = |g: &str| {
        stats
            .groups
            .iter()
            .find(|s| s.group == g && s.topic == "t")
            .map(|s| s.expired)
    };
    let min = stats.topics["t"].queues[0].min_offset;
    assert!(min > 0);
    assert_eq!(expired("slow"), Some(min));
    assert_eq!(expired("fast"), Some(0));
    assert_eq!(expired("simple-slow"), Some(min));
    // progress says the same per queue.
    let [q] = b.progress("slow", "t").unwrap().try_into().unwrap();
    assert_eq!(q.expired, min);
    let [q] = b.progress("fast", "t").unwrap().try_into().unwrap();
    assert_eq!(q.expired, 0);
    let [q] = b.progress("simple-slow", "t").unwrap().try_into().unwrap();
    assert_eq!(q.expired, min);
    drop((slow, simple));
}

/// `keep-unconsumed` holds for a simple (POP) group as for a classic one: what it has
/// not acked stays past its time; acked, it goes.
#[test]
fn keep_unconsumed_keeps_what_a_simple_group_has_not_acked() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let b = open_with(dir.path(), &clock, |c| {
        c.retention = pocketmq::Retention::KeepUnconsumed
    });
    b.create_topic("t", 1).unwrap();
    let sc = b
        .simple_consumer(pocketmq::SimpleConsumerConfig::new("billing", "t"))
        .unwrap();
    fill(&b, "t", 40);
    // Received but not acked is not consumed either.
    let held = sc.receive(8, std::time::Duration::ZERO).unwrap();
    assert_eq!(held.len(), 8);
    let before = segments(dir.path());
    clock.advance_ms(2 * 3_600_000);
    fill(&b, "t", 1);
    b.tick().unwrap();
    assert_eq!(
        segments(dir.path()),
        before + 1,
        "nothing the group has not acked goes"
    );
    assert_eq!(b.stats().unwrap().topics["t"].queues[0].min_offset, 0);
    // The group's deliveries expired long ago; it takes everything now and acks it.
    let mut all = Vec::new();
    loop {
        let got = sc.receive(64, std::time::Duration::ZERO).unwrap();
        if got.is_empty() {
            break;
        }
        sc.ack_all(&got).unwrap();
        all.extend(got);
    }
    assert_eq!(all.len(), 41);
    clock.advance_ms(10_000);
    b.tick().unwrap();
    assert!(segments(dir.path()) < before, "acked, it goes");
}

/// With `retention = "keep-unconsumed"`, a segment holding messages a group has
/// not consumed stays past its time, until the group consumes them or the disk
/// ratio forces it out.
#[test]
fn keep_unconsumed_keeps_what_a_group_has_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let b = open_with(dir.path(), &clock, |c| {
        c.retention = pocketmq::Retention::KeepUnconsumed
    });
    b.create_topic("t", 1).unwrap();
    let slow = consumer(&b, "slow", "t");
    fill(&b, "t", 40);
    let before = segments(dir.path());
    clock.advance_ms(2 * 3_600_000);
    fill(&b, "t", 1);
    b.tick().unwrap();
    assert_eq!(
        segments(dir.path()),
        before + 1,
        "nothing the group has not read goes"
    );
    let got = drain(&slow);
    assert_eq!(got.len(), 41);
    slow.ack_all(&got).unwrap();
    clock.advance_ms(10_000);
    b.tick().unwrap();
    assert!(segments(dir.path()) < before, "consumed, it goes");
    b.close().unwrap();
    // Under disk pressure the oldest go anyway.
    let b = open_with(dir.path(), &clock, |c| {
        c.retention = pocketmq::Retention::KeepUnconsumed;
        c.disk_clean_forcibly_ratio = 0.0;
    });
    b.create_topic("t", 1).unwrap();
    let _late = consumer(&b, "late", "t");
    fill(&b, "t", 40);
    let before = segments(dir.path());
    b.tick().unwrap();
    assert!(segments(dir.path()) < before);
}
