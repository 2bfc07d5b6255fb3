//! The backlog drill (`move_backlog`): a group's unconsumed messages move to a wider
//! topic with their fields and each sharding key's order, the group moves past them,
//! and a drill killed at any point and run again copies nothing twice and skips
//! nothing (real child processes, kill -9).

#![allow(clippy::disallowed_methods)] // tests start processes and read real time

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use pocketmq::{Broker, BrokerConfig, ErrorKind, Message, MessageExt};

/// Sends `n` messages round `keys` sharding keys; body `key/seq` (seq per key).
fn fill(b: &Broker, topic: &str, n: usize, keys: usize) {
    let p = b.producer("shop").unwrap();
    let mut seq = vec![0usize; keys];
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        for &i in chunk {
            let k = i * 7 % keys;
            let body = format!("k{k}/{:06}", seq[k]);
            seq[k] += 1;
            p.send(
                Message::builder(topic, body)
                    .sharding_key(format!("k{k}"))
                    .tags(if i % 2 == 0 { "even" } else { "odd" })
                    .key(format!("order-{i}"))
                    .property("n", i.to_string())
                    .build(),
            )
            .unwrap();
        }
    }
}

/// Every message of `topic` (all queues), without consuming.
fn everything(b: &Broker, topic: &str) -> Vec<MessageExt> {
    b.browse(topic, None, None, usize::MAX).unwrap()
}

/// Checks the copies in `wide`: each original at most once (exactly once when
/// `expect` is given), each key's messages in order within one queue.
fn check_copies(b: &Broker, wide: &str, expect: Option<&BTreeSet<String>>) -> usize {
    let copies = everything(b, wide);
    let mut seen = BTreeSet::new();
    let mut per_key: BTreeMap<String, (u32, String)> = BTreeMap::new();
    let mut per_queue: BTreeMap<u32, Vec<&MessageExt>> = BTreeMap::new();
    for m in &copies {
        let body = m.body_str().unwrap().to_string();
        assert!(seen.insert(body.clone()), "{body} was copied twice");
        per_queue.entry(m.queue_id).or_default().push(m);
    }
    for (q, msgs) in per_queue {
        let mut msgs = msgs;
        msgs.sort_by_key(|m| m.queue_offset);
        for m in msgs {
            let body = m.body_str().unwrap();
            let (key, seq) = body.split_once('/').unwrap();
            if let Some((kq, last)) = per_key.get(key) {
                assert_eq!(*kq, q, "key {key} is in one queue");
                assert!(last.as_str() < seq, "key {key}: {seq} after {last}");
            }
            per_key.insert(key.to_string(), (q, seq.to_string()));
        }
    }
    if let Some(expect) = expect {
        assert_eq!(&seen, expect, "every unconsumed message exactly once");
    }
    copies.len()
}

#[test]
fn the_backlog_moves_with_its_fields_and_key_order_and_the_group_moves_past_it() {
    let (b, _) = manual();
    b.create_topic("orders", 4).unwrap();
    fill(&b, "orders", 400, 10);
    let c = consumer(&b, "g", "orders");
    let first = c.receive(50, Duration::ZERO).unwrap();
    c.ack_all(&first[..40]).unwrap(); // 10 stay in flight: they move too
    let originals: BTreeMap<String, MessageExt> = everything(&b, "orders")
        .into_iter()
        .map(|m| (m.body_str().unwrap().to_string(), m))
        .collect();
    let acked: BTreeSet<String> = first[..40]
        .iter()
        .map(|m| m.body_str().unwrap().to_string())
        .collect();
    let unconsumed: BTreeSet<String> = originals
        .keys()
        .filter(|k| !acked.contains(*k))
        .cloned()
        .collect();
    let lag = b.lag("g", "orders").unwrap();
    assert_eq!(lag as usize, unconsumed.len());

    let mut reports = Vec::new();
    let moved = b
        .move_backlog("g", "orders", "orders-wide", Some(16), |done, total| {
            reports.push((done, total));
            true
        })
        .unwrap();
    assert_eq!(moved, lag);
    assert_eq!(reports.first(), Some(&(0, lag)));
    assert_eq!(reports.last(), Some(&(lag, lag)));
    assert_eq!(b.lag("g", "orders").unwrap(), 0, "the group is past them");
    let topics = b.topics().unwrap();
    assert!(topics
        .iter()
        .any(|t| t.name == "orders-wide" && t.queues == 16));
    assert_eq!(
        check_copies(&b, "orders-wide", Some(&unconsumed)),
        lag as usize
    );

    // Fields and message ids survive the move.
    for copy in everything(&b, "orders-wide") {
        let body = copy.body_str().unwrap();
        let orig = &originals[body];
        assert_eq!(copy.msg_id, orig.msg_id);
        assert_eq!(copy.tags, orig.tags);
        assert_eq!(copy.keys, orig.keys);
        assert_eq!(copy.born_timestamp, orig.born_timestamp);
        assert_eq!(copy.properties.get("n"), orig.properties.get("n"));
        let from = format!("orders:{}:{}", orig.queue_id, orig.queue_offset);
        assert_eq!(copy.properties.get("MOVED_FROM"), Some(&from));
    }
    // The in-flight deliveries are done for the group: a late ack changes nothing,
    // and nothing comes back.
    c.ack_all(&first[40..]).unwrap();
    assert!(drain(&c).is_empty());
    // New traffic still reaches the group on the old topic; the wide topic is
    // drained by another group.
    send(&b, "orders", "after");
    assert_eq!(bodies(&drain(&c)), vec!["after"]);
    let wide = consumer(&b, "g-wide", "orders-wide");
    assert_eq!(drain(&wide).len(), lag as usize);
    // Nothing left: a second drill moves nothing.
    c.ack_all(&[]).unwrap();
    let again = b
        .move_backlog("g", "orders", "orders-wide", None, |_, _| true)
        .unwrap();
    assert_eq!(again, 1, "only the unacked `after` is left");
}

#[test]
fn a_drill_stopped_by_its_callback_keeps_what_it_copied_consistent() {
    let (b, _) = manual();
    b.create_topic("orders", 2).unwrap();
    fill(&b, "orders", 10_000, 5);
    let total = b.lag("g", "orders").unwrap();
    let moved = b
        .move_backlog("g", "orders", "wide", Some(8), |done, _| done == 0)
        .unwrap();
    assert!(moved > 0 && moved < total, "one step: {moved} of {total}");
    assert_eq!(b.lag("g", "orders").unwrap(), total - moved);
    let rest = b
        .move_backlog("g", "orders", "wide", Some(8), |_, _| true)
        .unwrap();
    assert_eq!(moved + rest, total);
    let all: BTreeSet<String> = everything(&b, "orders")
        .iter()
        .map(|m| m.body_str().unwrap().to_string())
        .collect();
    check_copies(&b, "wide", Some(&all));
}

#[test]
fn a_drill_refuses_what_would_lose_or_duplicate() {
    let (b, _) = manual();
    send(&b, "orders", "x");
    let invalid = |r: pocketmq::Result<u64>| r.unwrap_err().kind();
    assert_eq!(
        invalid(b.move_backlog("g", "orders", "orders", None, |_, _| true)),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        invalid(b.move_backlog("g", "nope", "wide", None, |_, _| true)),
        ErrorKind::TopicNotFound
    );
    assert_eq!(
        invalid(b.move_backlog("g", "orders", "%RETRY%g", None, |_, _| true)),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        invalid(b.move_backlog("g", "orders", "wide", Some(0), |_, _| true)),
        ErrorKind::InvalidArgument
    );
}

fn open_dir(dir: &Path) -> Broker {
    Broker::open(BrokerConfig {
        background: false,
        ..BrokerConfig::at(dir)
    })
    .unwrap()
}

/// The child half of the kill test: runs the drill, reporting each step, slowly
/// enough to be killed in the middle.
#[test]
fn drill_child() {
    let Ok(dir) = std::env::var("POCKETMQ_DRILL_DIR") else {
        return;
    };
    let b = open_dir(Path::new(&dir));
    println!("OPEN");
    let moved = b
        .move_backlog("g", "orders", "orders-wide", Some(12), |done, total| {
            println!("STEP {done} {total}");
            std::thread::sleep(Duration::from_millis(3));
            true
        })
        .unwrap();
    println!("DONE {moved}");
    b.close().unwrap();
}

#[test]
fn a_drill_killed_at_random_points_and_run_again_copies_each_message_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let unconsumed: BTreeSet<String> = {
        let b = open_dir(dir.path());
        b.create_topic("orders", 3).unwrap();
        fill(&b, "orders", 48_000, 40);
        let c = consumer(&b, "g", "orders");
        let mut acked = BTreeSet::new();
        for _ in 0..20 {
            let got = c.receive(100, Duration::ZERO).unwrap();
            c.ack_all(&got).unwrap();
            acked.extend(got.iter().map(|m| m.body_str().unwrap().to_string()));
        }
        c.close().unwrap();
        let all = everything(&b, "orders");
        b.close().unwrap();
        all.iter()
            .map(|m| m.body_str().unwrap().to_string())
            .filter(|body| !acked.contains(body))
            .collect()
    };
    let exe = std::env::current_exe().unwrap();
    let mut done = false;
    let mut killed_mid_drill = 0;
    for cycle in 0..20u64 {
        let mut child = Command::new(&exe)
            .args(["drill_child", "--exact", "--nocapture", "--test-threads=1"])
            .env("POCKETMQ_DRILL_DIR", dir.path())
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
        // Kill after a varying number of steps, at a varying moment within one.
        let steps = cycle * 7 % 3;
        let mut seen = 0;
        let mut finished = false;
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) if line.starts_with("DONE") => {
                    finished = true;
                    break;
                }
                Ok(line) if line.starts_with("STEP") => {
                    seen += 1;
                    if seen > steps {
                        break;
                    }
                }
                Ok(line) if line == "OPEN" && cycle % 5 == 4 => break,
                Ok(_) => {}
                Err(e) => panic!("cycle {cycle}: the child stalled: {e}"),
            }
        }
        std::thread::sleep(Duration::from_micros(cycle * 1_931 % 5_000));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        finished |= rx.try_iter().any(|l| l.starts_with("DONE"));
        if !finished {
            killed_mid_drill += 1;
        }
        // Whatever the moment, nothing is in the wide topic twice and each key is
        // in order.
        let b = open_dir(dir.path());
        if b.topics().unwrap().iter().any(|t| t.name == "orders-wide") {
            check_copies(&b, "orders-wide", None);
        }
        b.close().unwrap();
        if finished {
            done = true;
        }
    }
    assert!(
        killed_mid_drill >= 10,
        "killed mid-drill {killed_mid_drill} times"
    );
    let b = open_dir(dir.path());
    let rest = b
        .move_backlog("g", "orders", "orders-wide", Some(12), |_, _| true)
        .unwrap();
    assert!(done || rest > 0);
    assert_eq!(
        check_copies(&b, "orders-wide", Some(&unconsumed)),
        unconsumed.len()
    );
    assert_eq!(b.lag("g", "orders").unwrap(), 0);
    // A drill into another topic now starts afresh (the old one is finished).
    assert_eq!(
        b.move_backlog("g", "orders", "elsewhere", None, |_, _| true)
            .unwrap(),
        0
    );
    b.close().unwrap();
}

/// Messages the group acked out of order (above its committed offset) are not its
/// backlog: the drill copies only the unacked ones, for a classic and a simple group.
#[test]
fn a_drill_leaves_out_what_the_group_acked_out_of_order() {
    let (b, _) = manual();
    b.create_topic("orders", 1).unwrap();
    for i in 0..5 {
        send(&b, "orders", &format!("m{i}"));
    }
    let c = consumer(&b, "g", "orders");
    let got = drain(&c);
    assert_eq!(got.len(), 5);
    c.ack(&got[1]).unwrap();
    c.ack(&got[3]).unwrap();
    assert_eq!(b.lag("g", "orders").unwrap(), 3);
    let moved = b
        .move_backlog("g", "orders", "wide", None, |_, _| true)
        .unwrap();
    assert_eq!(moved, 3);
    let copies = drain(&consumer(&b, "w", "wide"));
    let mut copied = bodies(&copies);
    copied.sort();
    assert_eq!(copied, ["m0", "m2", "m4"]);

    let s = b
        .simple_consumer(pocketmq::SimpleConsumerConfig::new("s", "orders"))
        .unwrap();
    let got = s.receive(5, Duration::ZERO).unwrap();
    assert_eq!(got.len(), 5);
    s.ack(&got[0]).unwrap();
    s.ack(&got[4]).unwrap();
    let moved = b
        .move_backlog("s", "orders", "wide-s", None, |_, _| true)
        .unwrap();
    assert_eq!(moved, 3);
    let mut copied = bodies(&drain(&consumer(&b, "w", "wide-s")));
    copied.sort();
    assert_eq!(copied, ["m1", "m2", "m3"]);
}

/// A moved message keeps its id: once its original is gone (here its topic is
/// deleted), `get` by that id finds the copy, also after a reopen.
#[test]
fn get_finds_a_moved_copy_once_its_original_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let clock = pocketmq::ManualClock::new(T0);
    let id = {
        let b = file(dir.path(), &clock);
        b.create_topic("orders", 1).unwrap();
        let r = send(&b, "orders", "m0");
        let moved = b
            .move_backlog("g", "orders", "wide", None, |_, _| true)
            .unwrap();
        assert_eq!(moved, 1);
        assert_eq!(b.get(&r.msg_id).unwrap().unwrap().topic, "orders");
        b.delete_topic("orders").unwrap();
        let copy = b.get(&r.msg_id).unwrap().expect("the copy");
        assert_eq!((copy.topic.as_str(), copy.body_str()), ("wide", Some("m0")));
        b.close().unwrap();
        r.msg_id
    };
    let b = file(dir.path(), &clock);
    let copy = b.get(&id).unwrap().expect("the copy after a reopen");
    assert_eq!(copy.topic, "wide");
    assert_eq!(copy.msg_id, id);
}
