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
        // Age alone decides here, however full the machine's disk is.
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
    let segments = || {
        std::fs::read_dir(dir.path().join("commitlog"))
            .unwrap()
            .count()
    };
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
