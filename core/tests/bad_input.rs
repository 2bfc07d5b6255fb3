//! Bad input over every public argument of the Rust API (the bindings add their
//! own type checks on top): values out of range, huge and non-finite numbers,
//! property separators, path characters. Each is an `InvalidArgument` (or the
//! typed error its case names), nothing panics, and the store's files are
//! exactly as they were.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use pocketmq::{
    Broker, BrokerConfig, ConsumerConfig, ErrorKind, ManualClock, Message, OptionValue, StartFrom,
};

const SEPARATORS: [&str; 3] = [
    "a\u{1}b",
    "a\u{2}b",
    "x\u{2}REAL_TOPIC\u{1}../../escaped\u{2}",
];
const PATHS: [&str; 5] = ["../escaped", "a/b", "/abs", "..", "a\u{0}b"];

fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().to_string();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if !["lock", "abort", "checkpoint"].contains(&name.as_str()) {
                let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

type Case<'a> = (String, Box<dyn Fn() -> pocketmq::Result<()> + 'a>);

#[test]
fn bad_input_to_every_public_argument_is_a_typed_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let b = Broker::open(BrokerConfig {
        clock: Arc::new(clock.clone()),
        background: false,
        segment_size: Some(65536),
        ..BrokerConfig::at(dir.path())
    })
    .unwrap();
    b.create_topic("t", 2).unwrap();
    let p = b.producer("p").unwrap();
    p.send(Message::builder("t", "hello").tags("a").key("k").build())
        .unwrap();
    let c = consumer(&b, "g", "t");
    assert_eq!(c.receive(1, Duration::ZERO).unwrap().len(), 1);
    let delayed = p
        .send(Message::builder("t", "later").delay_level(18).build())
        .unwrap();
    let handle = delayed.recall_handle.unwrap();
    b.flush().unwrap();

    let bad_topics: Vec<String> = ["", "%DLQ%g", "RMQ_SYS_X", "é", &"x".repeat(128)]
        .iter()
        .map(|s| s.to_string())
        .chain(PATHS.iter().chain(&SEPARATORS).map(|s| s.to_string()))
        .collect();
    let mut cases: Vec<Case<'_>> = Vec::new();
    macro_rules! add {
        ($name:expr, $f:expr $(,)?) => {
            cases.push(($name, $f))
        };
    }
    for t in &bad_topics {
        let (p, b) = (&p, &b);
        add!(
            format!("send topic {t:?}"),
            Box::new(move || p.send(Message::new(t.as_str(), "x")).map(drop)),
        );
        add!(
            format!("create_topic {t:?}"),
            Box::new(move || b.create_topic(t, 1)),
        );
        if t != "%DLQ%g" && t != "RMQ_SYS_X" {
            add!(
                format!("query {t:?}"),
                Box::new(move || b.query(t, "k").map(drop)),
            );
            add!(
                format!("lag {t:?}"),
                Box::new(move || b.lag("g", t).map(drop)),
            );
            add!(
                format!("consumer {t:?}"),
                Box::new(move || b.consumer(ConsumerConfig::new("g2", t.as_str())).map(drop)),
            );
        }
    }
    for g in ["", &"x".repeat(121)]
        .iter()
        .map(|s| s.to_string())
        .chain(PATHS.iter().chain(&SEPARATORS).map(|s| s.to_string()))
    {
        let b = &b;
        add!(
            format!("producer {g:?}"),
            Box::new(move || b.producer(&g).map(drop)),
        );
    }
    let m = || Message::builder("t", "x");
    let msgs: Vec<(String, Message)> = SEPARATORS
        .iter()
        .flat_map(|s| {
            [
                (format!("tag {s:?}"), m().tags(*s).build()),
                (format!("key {s:?}"), m().key(*s).build()),
                (
                    format!("property name {s:?}"),
                    m().property(*s, "v").build(),
                ),
                (
                    format!("property value {s:?}"),
                    m().property("k", *s).build(),
                ),
                (format!("sharding key {s:?}"), m().sharding_key(*s).build()),
            ]
        })
        .chain([
            ("empty tag".into(), m().tags("").build()),
            ("tag a||b".into(), m().tags("a||b").build()),
            ("key of spaces alone".into(), m().key("   ").build()),
            (
                "reserved property".into(),
                m().property("REAL_TOPIC", "x").build(),
            ),
            (
                "encoded property cut short".into(),
                m().encoded_properties("k\u{1}v").build(),
            ),
            (
                "encoded property without a value".into(),
                m().encoded_properties("kv\u{2}").build(),
            ),
            (
                "encoded property with an empty name".into(),
                m().encoded_properties("\u{1}v\u{2}").build(),
            ),
            (
                "encoded property with an empty value".into(),
                m().encoded_properties("k\u{1}\u{2}").build(),
            ),
            (
                "encoded property with a name separator in its value".into(),
                m().encoded_properties("k\u{1}a\u{1}b\u{2}").build(),
            ),
            (
                "encoded reserved property".into(),
                m().encoded_properties("ok\u{1}v\u{2}REAL_TOPIC\u{1}x\u{2}")
                    .build(),
            ),
            (
                "encoded immunity that is not whole seconds".into(),
                m().encoded_properties("CHECK_IMMUNITY_TIME_IN_SECONDS\u{1}soon\u{2}")
                    .build(),
            ),
            ("empty sharding key".into(), m().sharding_key("").build()),
            ("queue beyond the topic's".into(), m().queue_id(2).build()),
            ("queue u32::MAX".into(), m().queue_id(u32::MAX).build()),
            (
                "deliver_at u64::MAX".into(),
                m().deliver_at_ms(u64::MAX).build(),
            ),
            ("delay u64::MAX".into(), m().delay_ms(u64::MAX).build()),
            (
                "delay past timer_max_delay".into(),
                m().delay_ms(40 * 86_400_000).build(),
            ),
            ("empty body".into(), Message::new("t", "")),
            // Refused sends to a topic that does not exist yet create none.
            (
                "queue beyond a new topic's".into(),
                Message::builder("fresh", "x").queue_id(10).build(),
            ),
            (
                "delay past timer_max_delay to a new topic".into(),
                Message::builder("fresh", "x")
                    .delay_ms(40 * 86_400_000)
                    .build(),
            ),
            (
                "body over the limit".into(),
                Message::new("t", vec![0u8; (4 << 20) + 1]),
            ),
        ])
        .collect();
    for (name, msg) in msgs {
        let p = &p;
        add!(
            format!("send {name}"),
            Box::new(move || p.send(msg.clone()).map(drop)),
        );
    }
    for (name, v) in [
        ("NaN", OptionValue::Number(f64::NAN)),
        ("inf", OptionValue::Number(f64::INFINITY)),
        ("-1", OptionValue::Number(-1.0)),
        ("2^70", OptionValue::Number(2f64.powi(70))),
        ("1.5", OptionValue::Number(1.5)),
        ("text", OptionValue::Text("1".into())),
    ] {
        for option in ["queue_id", "delay_level", "deliver_at", "delay"] {
            if matches!(option, "deliver_at" | "delay") && name.starts_with("1.5") {
                continue; // (times and durations take fractions of a millisecond)
            }
            let v = v.clone();
            add!(
                format!("send option {option}={name}"),
                Box::new(move || m().set_option(option, v.clone()).map(drop)),
            );
        }
        for option in ["max_reconsume_times", "start", "broadcasting", "orderly"] {
            if option == "start" && name.starts_with("1.5") {
                continue;
            }
            let v = v.clone();
            add!(
                format!("consumer option {option}={name}"),
                Box::new(move || ConsumerConfig::new("g", "t").set_option(option, v.clone())),
            );
        }
    }
    for bad in ["", "not a handle", "djEgb3JkZXJz"] {
        let p = &p;
        add!(
            format!("recall handle {bad:?}"),
            Box::new(move || p.recall("t", bad).map(drop)),
        );
    }
    {
        let (p, handle) = (&p, handle.clone());
        add!(
            "recall a handle of another topic".into(),
            Box::new(move || p.recall("t2", &handle).map(drop)),
        );
    }
    {
        let b = &b;
        add!(
            "create_topic 0 queues".into(),
            Box::new(move || b.create_topic("t3", 0)),
        );
        add!(
            "create_topic 1025 queues".into(),
            Box::new(move || b.create_topic("t3", 1025)),
        );
        add!(
            "create_topic u32::MAX".into(),
            Box::new(move || b.create_topic("t3", u32::MAX)),
        );
        // Any 1 to 128 printable ASCII characters may be a sender's id; nothing else.
        add!("get empty id".into(), Box::new(move || b.get("").map(drop)));
        add!(
            "get id with a space".into(),
            Box::new(move || b.get("a b").map(drop))
        );
        add!(
            "get 129-character id".into(),
            Box::new(move || b.get(&"z".repeat(129)).map(drop)),
        );
        add!(
            "consumer tags naming no tag".into(),
            Box::new(move || {
                let mut cfg = ConsumerConfig::new("g3", "t");
                cfg.tags = " || ".into();
                b.consumer(cfg).map(drop)
            }),
        );
        add!(
            "reset_offset missing topic".into(),
            Box::new(move || b.reset_offset("g", "missing", StartFrom::Earliest)),
        );
        add!(
            "reset_offset time past 9999".into(),
            Box::new(move || {
                b.reset_offset(
                    "g",
                    "t",
                    StartFrom::from_option("to", OptionValue::Number(1e19))?,
                )
            }),
        );
        let clock = clock.clone();
        add!(
            "clock past 9999".into(),
            Box::new(move || clock.try_advance_ms(u64::MAX)),
        );
    }
    assert!(cases.len() > 100, "{} cases", cases.len());
    for (name, call) in &cases {
        let before = snapshot(dir.path());
        let now = pocketmq::Clock::now_ms(&clock);
        let err = call().expect_err(name);
        assert!(
            matches!(
                err.kind(),
                ErrorKind::InvalidArgument | ErrorKind::MessageTooLarge | ErrorKind::TopicNotFound
            ),
            "{name}: {err}"
        );
        assert_eq!(
            pocketmq::Clock::now_ms(&clock),
            now,
            "{name}: the clock moved"
        );
        b.flush().unwrap();
        assert!(snapshot(dir.path()) == before, "{name}: the store changed");
    }
}

#[test]
fn bad_broker_options_are_refused_before_anything_is_written() {
    let options: Vec<(&str, OptionValue)> = vec![
        ("flush", OptionValue::Text("sometimes".into())),
        ("segment_size", OptionValue::Number(1.0)),
        ("segment_size", OptionValue::Number(2f64.powi(31))),
        ("max_message_size", OptionValue::Number(0.0)),
        ("default_queues", OptionValue::Number(1025.0)),
        (
            "delay_levels",
            OptionValue::Text("18446744073709552s".into()),
        ),
        ("delay_levels", OptionValue::Text("".into())),
        ("timer_max_delay", OptionValue::Number(0.0)),
        ("timer_max_delay", OptionValue::Number(1e300)),
        ("file_reserved_time", OptionValue::Number(f64::NAN)),
        ("disk_max_used_ratio", OptionValue::Number(1.5)),
        ("disk_clean_forcibly_ratio", OptionValue::Number(-0.5)),
        ("retention", OptionValue::Text("forever".into())),
        ("sync_flush_timeout", OptionValue::Number(f64::INFINITY)),
        ("check_interval", OptionValue::Number(-1.0)),
        ("max_checks", OptionValue::Number(2f64.powi(64))),
        ("colour", OptionValue::Text("red".into())),
    ];
    for (name, v) in options {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let mut cfg = BrokerConfig::at(&store);
        let refused = cfg
            .set_option(name, v.clone())
            .and_then(|()| Broker::open(cfg).map(drop));
        let err = refused.expect_err(name);
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidArgument,
            "{name}={v:?}: {err}"
        );
        assert!(!store.exists(), "{name}: a store was written");
    }
    let err = Broker::open(BrokerConfig::at("")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

/// An option's bad value is quoted as the user wrote it, not as the engine holds it.
#[test]
fn bad_option_values_are_quoted_as_written() {
    use pocketmq::{BrokerConfig, OptionValue};
    let mut c = BrokerConfig::default();
    let e = c
        .set_option("auto_create_topics", OptionValue::Number(-1.0))
        .unwrap_err();
    assert!(e.to_string().ends_with("not -1"), "{e}");
    let e = c
        .set_option("segment_size", OptionValue::Text("big".into()))
        .unwrap_err();
    assert!(e.to_string().ends_with("not \"big\""), "{e}");
    assert!(!e.to_string().contains("Text("), "{e}");
}
