//! The dedup window: a send repeating a (topic, dedup_id) inside the window stores
//! nothing and returns the first send's result; batches, delays and transactions
//! dedup too; the window survives a clean restart and kill -9.
#![allow(clippy::disallowed_methods)] // the kill -9 test reads its child on a thread

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{bodies, consumer, drain, file, manual, T0};
use pocketmq::{
    Broker, BrokerConfig, ErrorKind, ManualClock, Message, MessageExt, SendResult, TxState,
};

fn with_id(topic: &str, body: &str, id: &str) -> Message {
    Message::builder(topic, body.to_string())
        .dedup_id(id)
        .build()
}

fn same_send(a: &SendResult, b: &SendResult) {
    assert_eq!(
        (
            &a.msg_id,
            &a.topic,
            a.queue_id,
            a.queue_offset,
            a.commitlog_offset
        ),
        (
            &b.msg_id,
            &b.topic,
            b.queue_id,
            b.queue_offset,
            b.commitlog_offset
        )
    );
}

#[test]
fn a_repeat_inside_the_window_stores_nothing_and_answers_the_first_send() {
    let (b, clock) = manual();
    b.create_topic("pay", 1).unwrap();
    let p = b.producer("p").unwrap();
    let first = p.send(with_id("pay", "charge 42", "pay-42")).unwrap();
    assert!(!first.duplicate);
    clock.advance_ms(119_999);
    let again = p.send(with_id("pay", "charge 42 again", "pay-42")).unwrap();
    assert!(again.duplicate);
    same_send(&first, &again);
    // The same id on another topic is another message.
    assert!(!p.send(with_id("refund", "r", "pay-42")).unwrap().duplicate);
    // The window (120 s by default) ends exactly 120 s after the first store.
    clock.advance_ms(1);
    let later = p.send(with_id("pay", "charge 42 later", "pay-42")).unwrap();
    assert!(!later.duplicate);
    assert_ne!(later.msg_id, first.msg_id);
    let c = consumer(&b, "g", "pay");
    assert_eq!(
        bodies(&drain(&c)),
        ["charge 42", "charge 42 later"],
        "the repeat inside the window was not stored"
    );
    // A received message shows its dedup id.
    let got = b.get(&first.msg_id).unwrap().unwrap();
    assert_eq!(
        got.properties.get("DEDUP_ID").map(String::as_str),
        Some("pay-42")
    );
}

#[test]
fn a_send_prepared_ahead_dedups_as_a_plain_send_and_a_mismatched_one_is_ignored() {
    let (b, _clock) = manual();
    b.create_topic("pay", 1).unwrap();
    let p = b.producer("p").unwrap();
    // Prepared before the window has a table, then once it has one.
    let first = p
        .send_prepared(
            with_id("pay", "a", "pay-1"),
            p.prepare_dedup("pay", "pay-1"),
        )
        .unwrap();
    assert!(!first.duplicate);
    let again = p
        .send_prepared(
            with_id("pay", "b", "pay-1"),
            p.prepare_dedup("pay", "pay-1"),
        )
        .unwrap();
    assert!(again.duplicate);
    same_send(&first, &again);
    // A plain send sees what a prepared one stored, and the other way round.
    assert!(p.send(with_id("pay", "c", "pay-1")).unwrap().duplicate);
    let plain = p.send(with_id("pay", "d", "pay-2")).unwrap();
    let prepared = p.prepare_dedup("pay", "pay-2");
    same_send(
        &plain,
        &p.send_prepared(with_id("pay", "e", "pay-2"), prepared)
            .unwrap(),
    );
    // Prepared for another id, another topic, or a message without one: the send
    // goes by the message alone.
    let other = p.prepare_dedup("pay", "pay-1");
    let r = p
        .send_prepared(with_id("pay", "f", "pay-3"), other)
        .unwrap();
    assert!(!r.duplicate, "pay-3 is new, whatever was prepared");
    let r = p
        .send_prepared(with_id("refund", "g", "pay-1"), other)
        .unwrap();
    assert!(!r.duplicate, "pay-1 is new on refund");
    let r = p.send_prepared(Message::new("pay", "h"), other).unwrap();
    assert!(!r.duplicate, "a message without an id never repeats");
    assert!(
        p.send_prepared(with_id("pay", "i", "pay-3"), other)
            .unwrap()
            .duplicate
    );
    let c = consumer(&b, "g", "pay");
    assert_eq!(bodies(&drain(&c)), ["a", "d", "f", "h"]);
}

#[test]
fn batches_dedup_per_item_against_the_window_and_each_other() {
    let (b, _clock) = manual();
    b.create_topic("t", 1).unwrap();
    let p = b.producer("p").unwrap();
    let a = p.send(with_id("t", "a", "A")).unwrap();
    let batch = p
        .send_batch(vec![
            with_id("t", "b", "B"),
            with_id("t", "a2", "A"),
            Message::new("t", "plain"),
            with_id("t", "b2", "B"),
            with_id("t", "c", "C"),
        ])
        .unwrap();
    let dup: Vec<bool> = batch.iter().map(|r| r.duplicate).collect();
    assert_eq!(dup, [false, true, false, true, false]);
    same_send(&batch[1], &a);
    same_send(&batch[3], &batch[0]);
    assert_eq!(batch[2].queue_offset, batch[0].queue_offset + 1);
    let c = consumer(&b, "g", "t");
    assert_eq!(bodies(&drain(&c)), ["a", "b", "plain", "c"]);
    // A batch of nothing but repeats stores nothing.
    let all = p
        .send_batch(vec![with_id("t", "x", "A"), with_id("t", "y", "C")])
        .unwrap();
    assert!(all.iter().all(|r| r.duplicate));
    same_send(&all[1], &batch[4]);
    assert!(drain(&c).is_empty());
}

#[test]
fn a_long_batch_answers_each_repeat_with_its_first_item() {
    let (b, _clock) = manual();
    b.create_topic("t", 1).unwrap();
    let p = b.producer("p").unwrap();
    // 30,000 items over 10,000 ids, every seventh item without one.
    let batch: Vec<Message> = (0..30_000)
        .map(|i| match i % 7 {
            0 => Message::new("t", format!("plain {i}")),
            _ => with_id("t", &format!("item {i}"), &format!("id-{}", i % 10_000)),
        })
        .collect();
    let results = p.send_batch(batch).unwrap();
    assert_eq!(results.len(), 30_000);
    let mut first: HashMap<usize, &SendResult> = HashMap::new();
    let mut stored = 0;
    for (i, r) in results.iter().enumerate() {
        if i % 7 == 0 {
            assert!(!r.duplicate, "item {i} has no id");
            stored += 1;
            continue;
        }
        match first.get(&(i % 10_000)) {
            Some(f) => {
                assert!(r.duplicate, "item {i} repeats an id");
                same_send(r, f);
            }
            None => {
                assert!(!r.duplicate, "item {i} is its id's first");
                first.insert(i % 10_000, r);
                stored += 1;
            }
        }
    }
    let c = consumer(&b, "g", "t");
    assert_eq!(drain(&c).len(), stored);
}

#[test]
fn delayed_messages_dedup_before_and_after_they_come_due() {
    let (b, clock) = manual();
    let p = b.producer("p").unwrap();
    let m = |body: &str| {
        Message::builder("t", body.to_string())
            .dedup_id("d1")
            .delay_ms(5_000)
            .build()
    };
    let first = p.send(m("first")).unwrap();
    let again = p.send(m("again")).unwrap();
    assert!(again.duplicate);
    same_send(&first, &again);
    clock.advance_ms(5_000);
    b.tick().unwrap();
    let c = consumer(&b, "g", "t");
    assert_eq!(bodies(&drain(&c)), ["first"]);
    // Delivered now (a copy in the real topic), still the first send's result.
    let after = p.send(m("after")).unwrap();
    assert!(after.duplicate);
    same_send(&first, &after);
    b.tick().unwrap();
    clock.advance_ms(10_000);
    b.tick().unwrap();
    assert!(drain(&c).is_empty());
}

/// The window runs from the send: a delayed message delivered after its window has
/// passed does not take its id again, for a level or a timer, live or replayed.
#[test]
fn a_delivery_after_the_window_does_not_renew_the_id() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let b = file(dir.path(), &clock);
    let p = b.producer("p").unwrap();
    let ids = [
        "level-live",
        "timer-live",
        "level-replayed",
        "timer-replayed",
    ];
    for id in ids {
        let m = Message::builder("t", id).dedup_id(id);
        let m = if id.starts_with("level") {
            m.delay_level(6) // 2 minutes, the window's length
        } else {
            m.delay_ms(600_000)
        };
        p.send(m.build()).unwrap();
    }
    clock.advance_ms(600_000);
    b.tick().unwrap();
    let mut got = bodies(&drain(&consumer(&b, "g", "t")));
    got.sort();
    assert_eq!(
        got,
        [
            "level-live",
            "level-replayed",
            "timer-live",
            "timer-replayed"
        ]
    );
    let again = |b: &Broker, id: &str| {
        let r = b.producer("p").unwrap().send(with_id("t", "again", id));
        r.unwrap().duplicate
    };
    for id in &ids[..2] {
        assert!(!again(&b, id), "{id}: sent 10 minutes ago");
    }
    // Reopened at once, the log replays the deliveries: they take no id either.
    b.close().unwrap();
    let b = file(dir.path(), &clock);
    for id in &ids[2..] {
        assert!(!again(&b, id), "{id}: after a restart");
    }
}

#[test]
fn a_committed_half_message_counts_once_and_a_rolled_back_one_frees_its_id() {
    let (b, clock) = manual();
    b.create_topic("orders", 1).unwrap();
    let tp = b
        .transaction_producer("pay", Arc::new(|_: &MessageExt| TxState::Commit))
        .unwrap();
    let runs = std::sync::atomic::AtomicUsize::new(0);
    let exec = |state: TxState| {
        let runs = &runs;
        move |_: &MessageExt| {
            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            state
        }
    };
    let first = tp
        .send(with_id("orders", "o1", "tx-1"), exec(TxState::Commit))
        .unwrap();
    let again = tp
        .send(with_id("orders", "o1 again", "tx-1"), exec(TxState::Commit))
        .unwrap();
    assert!(again.duplicate);
    same_send(&first, &again);
    assert_eq!(
        (first.transaction_state, again.transaction_state),
        (Some(TxState::Commit), Some(TxState::Commit)),
        "the repeat answers with the first send's outcome"
    );
    assert_eq!(
        runs.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "executed once"
    );
    // A plain send of the same id is a repeat of the committed one.
    let p = b.producer("p").unwrap();
    assert!(
        p.send(with_id("orders", "o1 plain", "tx-1"))
            .unwrap()
            .duplicate
    );
    // Rolled back: the id is free for another try.
    let rb = tp
        .send(with_id("orders", "o2", "tx-2"), exec(TxState::Rollback))
        .unwrap();
    assert!(!rb.duplicate);
    let retry = tp
        .send(with_id("orders", "o2 retry", "tx-2"), exec(TxState::Commit))
        .unwrap();
    assert!(!retry.duplicate);
    // Left open: a repeat says UNKNOWN until the check commits it.
    let open = tp
        .send(with_id("orders", "o3", "tx-3"), exec(TxState::Unknown))
        .unwrap();
    let repeat = |body: &str| {
        tp.send(with_id("orders", body, "tx-3"), exec(TxState::Commit))
            .unwrap()
    };
    let r = repeat("o3 again");
    assert!(r.duplicate);
    assert_eq!(
        (open.transaction_state, r.transaction_state),
        (Some(TxState::Unknown), Some(TxState::Unknown))
    );
    clock.advance_ms(7_000);
    b.tick().unwrap();
    assert_eq!(repeat("o3 later").transaction_state, Some(TxState::Commit));
    let c = consumer(&b, "g", "orders");
    assert_eq!(bodies(&drain(&c)), ["o1", "o2 retry", "o3"]);
}

#[test]
fn bad_dedup_ids_are_refused_and_store_nothing() {
    let (b, _clock) = manual();
    let p = b.producer("p").unwrap();
    for bad in [String::new(), "x".repeat(1024), "a\u{1}b".into()] {
        let e = p.send(with_id("t", "m", &bad)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}");
        let e = p
            .send_batch(vec![with_id("t", "ok", "fine"), with_id("t", "m", &bad)])
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }
    let e = p
        .send(
            Message::builder("t", "m")
                .property("DEDUP_ID", "sneaky")
                .build(),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(drain(&consumer(&b, "g", "t")).is_empty());
    // "fine" was not stored by the refused batch: it is not a repeat now.
    assert!(!p.send(with_id("t", "m", "fine")).unwrap().duplicate);
}

#[test]
fn a_zero_window_turns_dedup_off() {
    let clock = ManualClock::new(T0);
    let b = Broker::open(BrokerConfig {
        clock: Arc::new(clock.clone()),
        background: false,
        dedup_window_ms: 0,
        ..BrokerConfig::default()
    })
    .unwrap();
    let p = b.producer("p").unwrap();
    assert!(!p.send(with_id("t", "a", "x")).unwrap().duplicate);
    assert!(!p.send(with_id("t", "b", "x")).unwrap().duplicate);
}

#[test]
fn an_id_sent_to_a_deleted_topic_is_new_to_the_topic_created_again() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let b = file(dir.path(), &clock);
    let p = b.producer("p").unwrap();
    p.send(with_id("pay", "old", "x")).unwrap();
    p.send(with_id("pay", "old batch", "y")).unwrap();
    let delayed = Message::builder("pay", "old delayed")
        .dedup_id("z")
        .delay_level(3)
        .build();
    p.send(delayed).unwrap();
    b.delete_topic("pay").unwrap();
    let z = p.send(with_id("pay", "new z", "z")).unwrap();
    assert!(!z.duplicate, "a delayed send went with its topic too");
    let fresh = p.send(with_id("pay", "new", "x")).unwrap();
    assert!(!fresh.duplicate, "the first send went with its topic");
    let batch = p
        .send_batch(vec![
            with_id("pay", "new batch", "y"),
            with_id("pay", "new batch again", "y"),
        ])
        .unwrap();
    assert_eq!(
        batch.iter().map(|r| r.duplicate).collect::<Vec<_>>(),
        [false, true]
    );
    // The new sends hold the ids now, in this run and the next.
    let again = p.send(with_id("pay", "new again", "x")).unwrap();
    assert!(again.duplicate);
    same_send(&fresh, &again);
    let c = consumer(&b, "g", "pay");
    let mut got = bodies(&drain(&c));
    got.sort();
    assert_eq!(got, ["new", "new batch", "new z"]);
    b.close().unwrap();
    let b = file(dir.path(), &clock);
    let p = b.producer("p").unwrap();
    same_send(&fresh, &p.send(with_id("pay", "after", "x")).unwrap());
    same_send(&batch[0], &p.send(with_id("pay", "after", "y")).unwrap());
    same_send(&z, &p.send(with_id("pay", "after", "z")).unwrap());
    // Deleted again, then reopened: the ids go with the topic once more.
    b.delete_topic("pay").unwrap();
    b.close().unwrap();
    let b = file(dir.path(), &clock);
    let p = b.producer("p").unwrap();
    assert!(!p.send(with_id("pay", "newest", "x")).unwrap().duplicate);
    let c = consumer(&b, "g", "pay");
    assert_eq!(bodies(&drain(&c)), ["newest"]);
}

#[test]
fn an_id_whose_first_send_retention_removed_is_taken_by_the_next() {
    // A window longer than the store keeps its files: the first send's record goes
    // while its id is still inside the window.
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let b = Broker::open(BrokerConfig {
        segment_size: Some(8192),
        file_reserved_time_ms: 3_600_000,
        dedup_window_ms: 4 * 3_600_000,
        delete_when: "*".into(),
        disk_clean_ratio: 1.0,
        ..common::file_config(dir.path(), &clock)
    })
    .unwrap();
    let p = b.producer("p").unwrap();
    let body = "z".repeat(900);
    p.send(with_id("t", &body, "x")).unwrap();
    for _ in 0..20 {
        p.send(Message::new("t", body.clone())).unwrap();
    }
    clock.advance_ms(2 * 3_600_000);
    p.send(Message::new("t", "fresh")).unwrap();
    b.tick().unwrap();
    assert!(
        b.stats().unwrap().topics["t"]
            .queues
            .iter()
            .any(|q| q.min_offset > 0),
        "retention removed the first segment"
    );
    let again = p.send(with_id("t", "x again", "x")).unwrap();
    assert!(!again.duplicate, "the first send is gone");
    let third = p.send(with_id("t", "x third", "x")).unwrap();
    assert!(third.duplicate, "the second send took the id");
    same_send(&again, &third);
}

#[test]
fn the_window_survives_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let first = {
        let b = file(dir.path(), &clock);
        let r = b
            .producer("p")
            .unwrap()
            .send(with_id("t", "a", "x"))
            .unwrap();
        b.close().unwrap();
        r
    };
    clock.advance_ms(60_000);
    let b = file(dir.path(), &clock);
    let p = b.producer("p").unwrap();
    let again = p.send(with_id("t", "a again", "x")).unwrap();
    assert!(again.duplicate);
    same_send(&first, &again);
    clock.advance_ms(60_000);
    assert!(!p.send(with_id("t", "a later", "x")).unwrap().duplicate);
}

/// The child half of the kill -9 test: sends ids from POCKETMQ_DEDUP_FROM on, and
/// reports each once its send returned, until killed.
#[test]
fn dedup_child() {
    let Ok(dir) = std::env::var("POCKETMQ_DEDUP_DIR") else {
        return;
    };
    let from: u64 = std::env::var("POCKETMQ_DEDUP_FROM")
        .unwrap()
        .parse()
        .unwrap();
    // Small segments: the store opens fast in a debug build, again and again.
    let b = Broker::open(BrokerConfig {
        segment_size: Some(1 << 20),
        ..BrokerConfig::at(&dir)
    })
    .unwrap();
    let p = b.producer("p").unwrap();
    let mut out = std::io::stdout();
    // The test harness has printed "test dedup_child ... " without a newline.
    writeln!(out).unwrap();
    for i in from.. {
        let id = format!("id-{i}");
        let r = p.send(with_id("t", &id, &id)).unwrap();
        writeln!(out, "SENT {id} {}", r.duplicate).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn kill_9_keeps_every_sent_id_once() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut reported: u64 = 0;
    let mut repeats = 0;
    for cycle in 0..20u64 {
        // Each run starts a few ids back: the last sends of the run before are sent
        // again, as a producer retrying after a crash would.
        let from = reported.saturating_sub(5);
        let mut child = Command::new(&exe)
            .args(["dedup_child", "--exact", "--nocapture", "--test-threads=1"])
            .env("POCKETMQ_DEDUP_DIR", dir.path())
            .env("POCKETMQ_DEDUP_FROM", from.to_string())
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
        let mut lines = Vec::new();
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
            let started = line.starts_with("SENT ");
            lines.push(line);
            if started {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20 + cycle * 13 % 80));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        for line in lines {
            let Some(rest) = line.strip_prefix("SENT id-") else {
                continue;
            };
            let (n, dup) = rest.split_once(' ').unwrap();
            let n: u64 = n.parse().unwrap();
            if n < reported {
                assert_eq!(dup, "true", "cycle {cycle}: id-{n} was stored twice");
                repeats += 1;
            }
            reported = reported.max(n + 1);
        }
    }
    assert!(reported > 100, "the children made progress: {reported}");
    assert!(repeats > 0, "some ids were sent again");
    let b = Broker::open(BrokerConfig::at(dir.path())).unwrap();
    let mut count: HashMap<String, usize> = HashMap::new();
    for m in drain(&consumer(&b, "check", "t")) {
        *count.entry(m.body_str().unwrap().to_string()).or_default() += 1;
    }
    for i in 0..reported {
        let n = count.get(&format!("id-{i}")).copied().unwrap_or(0);
        assert_eq!(n, 1, "id-{i} stored {n} times");
    }
}
