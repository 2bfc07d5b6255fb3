//! Delay levels and deliver-at timers under a manual clock.

mod common;

use common::*;
use pocketmq::{BrokerConfig, Message};

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
