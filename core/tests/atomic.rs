//! Atomic consume-and-produce: a block's sends and acks apply together at commit,
//! or not at all, also across kill -9 and a block torn by a crash.
#![allow(clippy::disallowed_methods)] // the kill -9 tests read their child on a thread

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{bodies, consumer, copy_store, drain, file, manual, T0};
use pocketmq::{Broker, BrokerConfig, ConsumerConfig, ErrorKind, Message, SimpleConsumerConfig};

const NOW: Duration = Duration::ZERO;

#[test]
fn a_block_applies_its_sends_and_acks_at_commit() {
    let (b, _clock) = manual();
    let p = b.producer("p").unwrap();
    p.send(Message::new("in", "order-1")).unwrap();
    let c = consumer(&b, "g", "in");
    let out = consumer(&b, "o", "out");
    let [msg] = c.receive(1, NOW).unwrap().try_into().unwrap();
    let mut tx = b.atomic().unwrap();
    tx.send(Message::new("out", "ship-1")).unwrap();
    tx.send(Message::new("audit", "log-1")).unwrap();
    tx.ack(&c, &msg).unwrap();
    assert_eq!(tx.len(), 3);
    assert!(drain(&out).is_empty(), "invisible until the commit");
    let results = tx.commit().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(
        (results[0].topic.as_str(), results[1].topic.as_str()),
        ("out", "audit")
    );
    assert_eq!(bodies(&drain(&out)), ["ship-1"]);
    assert_eq!(b.lag("g", "in").unwrap(), 0, "the ack held");
    // Acked: a plain ack now changes nothing, and another block may not ack it.
    c.ack(&msg).unwrap();
    let mut again = b.atomic().unwrap();
    let e = again.ack(&c, &msg).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn an_aborted_or_dropped_block_applies_nothing() {
    let (b, _clock) = manual();
    b.producer("p")
        .unwrap()
        .send(Message::new("in", "x"))
        .unwrap();
    let c = consumer(&b, "g", "in");
    let [msg] = c.receive(1, NOW).unwrap().try_into().unwrap();
    let mut tx = b.atomic().unwrap();
    tx.send(Message::new("out", "y")).unwrap();
    tx.ack(&c, &msg).unwrap();
    tx.abort();
    {
        let mut tx = b.atomic().unwrap();
        tx.send(Message::new("out", "z")).unwrap();
    }
    assert!(drain(&consumer(&b, "o", "out")).is_empty());
    assert_eq!(b.lag("g", "in").unwrap(), 1);
    c.ack(&msg).unwrap();
}

#[test]
fn simple_consumer_acks_join_the_block() {
    let (b, _clock) = manual();
    b.producer("p")
        .unwrap()
        .send(Message::new("in", "x"))
        .unwrap();
    let sc = b
        .simple_consumer(SimpleConsumerConfig::new("s", "in"))
        .unwrap();
    let [msg] = sc.receive(1, NOW).unwrap().try_into().unwrap();
    let mut tx = b.atomic().unwrap();
    tx.ack_simple(&sc, &msg).unwrap();
    tx.send(Message::new("out", "y")).unwrap();
    tx.commit().unwrap();
    let e = sc.ack(&msg).unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::InvalidReceiptHandle,
        "acked by the block"
    );
    assert_eq!(b.lag("s", "in").unwrap(), 0);
    let mut tx = b.atomic().unwrap();
    let e = tx.ack_simple(&sc, &msg).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidReceiptHandle);
}

#[test]
fn bad_acks_and_sends_are_refused_and_a_commit_that_fails_applies_nothing() {
    let (b, _clock) = manual();
    let (other, _) = manual();
    let p = b.producer("p").unwrap();
    p.send(Message::new("in", "a")).unwrap();
    p.send(Message::new("in", "b")).unwrap();
    let c = consumer(&b, "g", "in");
    let msgs = c.receive(2, NOW).unwrap();
    let foreign = consumer(&other, "g", "in");
    let mut tx = b.atomic().unwrap();
    // A consumer of another broker.
    let e = tx.ack(&foreign, &msgs[0]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    // The same message twice.
    tx.ack(&c, &msgs[0]).unwrap();
    assert_eq!(
        tx.ack(&c, &msgs[0]).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    // A bad message, refused at send.
    assert_eq!(
        tx.send(Message::new("out", "")).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    // A queue the topic lacks, and a topic of the broker's own: refused at send too,
    // not at the commit.
    assert_eq!(
        tx.send(Message::builder("in", "q").queue_id(99).build())
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    assert!(tx
        .send(Message::new("RMQ_SYS_TRANS_HALF_TOPIC", "x"))
        .is_err());
    assert_eq!(tx.len(), 1);
    tx.send(Message::new("out", "kept back")).unwrap();
    tx.ack(&c, &msgs[1]).unwrap();
    // Acked outside the block before it commits: the commit fails, whole.
    c.ack(&msgs[1]).unwrap();
    let e = tx.commit().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(drain(&consumer(&b, "o", "out")).is_empty());
    assert_eq!(b.lag("g", "in").unwrap(), 1, "msgs[0] is still held");
}

#[test]
fn a_block_acks_a_large_receive_and_refuses_a_repeat_anywhere_in_it() {
    let (b, _clock) = manual();
    let p = b.producer("p").unwrap();
    let n = 3_000;
    for i in 0..n {
        p.send(Message::new("in", format!("m{i}"))).unwrap();
    }
    let c = b
        .consumer(ConsumerConfig {
            max_in_flight: n,
            ..ConsumerConfig::new("g", "in")
        })
        .unwrap();
    let mut got = Vec::new();
    while got.len() < n {
        got.extend(c.receive(n, NOW).unwrap());
    }
    let mut tx = b.atomic().unwrap();
    for m in &got {
        tx.ack(&c, m).unwrap();
    }
    for m in [&got[0], &got[1], &got[n / 2], &got[n - 1]] {
        assert_eq!(
            tx.ack(&c, m).unwrap_err().kind(),
            ErrorKind::InvalidArgument,
            "a repeat of {:?} is refused",
            m.queue_offset
        );
    }
    assert_eq!(tx.len(), n);
    tx.send(Message::new("out", "done")).unwrap();
    tx.commit().unwrap();
    assert_eq!(b.lag("g", "in").unwrap(), 0, "every ack held");
    assert_eq!(bodies(&drain(&consumer(&b, "o", "out"))), ["done"]);
}

/// The child of the kill -9 tests. Mode "loop": takes each message of `in` and, in
/// one block, sends two messages to `out` and acks it, reporting each commit, until
/// killed. Mode "one": one block, then reports where its records are and waits.
#[test]
fn atomic_child() {
    let Ok(dir) = std::env::var("POCKETMQ_ATOMIC_DIR") else {
        return;
    };
    let mode = std::env::var("POCKETMQ_ATOMIC_MODE").unwrap();
    let b = Broker::open(BrokerConfig::at(&dir)).unwrap();
    let c = b
        .consumer(ConsumerConfig {
            max_in_flight: 8,
            ..ConsumerConfig::new("g", "in")
        })
        .unwrap();
    let mut out = std::io::stdout();
    // The test harness has printed "test atomic_child ... " without a newline.
    writeln!(out).unwrap();
    loop {
        let got = c.receive(4, Duration::from_millis(20)).unwrap();
        for m in &got {
            let body = m.body_str().unwrap();
            let mut tx = b.atomic().unwrap();
            tx.send(Message::new("out", format!("{body}/1"))).unwrap();
            tx.send(Message::new("out", format!("{body}/2"))).unwrap();
            tx.ack(&c, m).unwrap();
            let r = tx.commit().unwrap();
            writeln!(out, "DONE {body} {}", r[1].commitlog_offset).unwrap();
            out.flush().unwrap();
            if mode == "one" {
                std::thread::sleep(Duration::from_secs(600));
            }
        }
        if got.is_empty() {
            writeln!(out, "IDLE").unwrap();
            out.flush().unwrap();
        }
    }
}

/// Runs the child until it printed a line that `stop` accepts (plus `linger`), then
/// kills it; returns its lines.
fn run_child(
    dir: &std::path::Path,
    mode: &str,
    linger: Duration,
    stop: impl Fn(&str) -> bool,
) -> Vec<String> {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["atomic_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("POCKETMQ_ATOMIC_DIR", dir)
        .env("POCKETMQ_ATOMIC_MODE", mode)
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
        let done = stop(&line);
        lines.push(line);
        if done {
            break;
        }
    }
    std::thread::sleep(linger);
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    lines
}

fn fill(dir: &std::path::Path, n: usize) {
    // Small segments: the store opens fast in a debug build, again and again.
    let b = Broker::open(BrokerConfig {
        segment_size: Some(1 << 20),
        ..BrokerConfig::at(dir)
    })
    .unwrap();
    let p = b.producer("p").unwrap();
    for i in 0..n {
        p.send(Message::new("in", format!("m{i}"))).unwrap();
    }
    b.close().unwrap();
}

/// The `out` messages per input message, and the input messages still to be
/// delivered to the group.
fn state(dir: &std::path::Path) -> (HashMap<String, usize>, HashSet<String>) {
    let b = Broker::open(BrokerConfig::at(dir)).unwrap();
    let mut outs: HashMap<String, usize> = HashMap::new();
    for m in drain(&consumer(&b, "check", "out")) {
        let body = m.body_str().unwrap();
        *outs
            .entry(body.split('/').next().unwrap().to_string())
            .or_default() += 1;
    }
    let c = consumer(&b, "g", "in");
    let pending: HashSet<String> = bodies(&drain(&c)).into_iter().collect();
    b.close().unwrap();
    (outs, pending)
}

#[test]
fn kill_9_leaves_every_block_whole_or_absent() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 400);
    let mut committed: HashSet<String> = HashSet::new();
    for cycle in 0..20u64 {
        let lines = run_child(
            dir.path(),
            "loop",
            Duration::from_millis(5 + cycle * 17 % 60),
            |l| l.starts_with("DONE ") || l == "IDLE",
        );
        for l in &lines {
            if let Some(rest) = l.strip_prefix("DONE ") {
                committed.insert(rest.split(' ').next().unwrap().to_string());
            }
        }
        let (outs, pending) = state(dir.path());
        for i in 0..400 {
            let m = format!("m{i}");
            let n = outs.get(&m).copied().unwrap_or(0);
            assert!(
                n == 0 || n == 2,
                "cycle {cycle}: {m} has {n} of its 2 sends"
            );
            assert_eq!(
                n == 2,
                !pending.contains(&m),
                "cycle {cycle}: {m}: sends and ack disagree ({n} sends)"
            );
            if committed.contains(&m) {
                assert_eq!(n, 2, "cycle {cycle}: {m} was committed and is gone");
            }
        }
    }
    assert!(
        committed.len() > 20,
        "the children made progress: {}",
        committed.len()
    );
}

#[test]
fn a_block_torn_by_a_crash_is_dropped_whole() {
    // One block in a store, then the process killed; returns where its second send is.
    let one_block = |dir: &std::path::Path| -> u64 {
        fill(dir, 1);
        let lines = run_child(dir, "one", Duration::ZERO, |l| l.starts_with("DONE "));
        let done = lines.iter().find_map(|l| l.strip_prefix("DONE ")).unwrap();
        done.split(' ').nth(1).unwrap().parse().unwrap()
    };
    // Untouched, the block survives the kill: both sends, and the ack.
    let whole = tempfile::tempdir().unwrap();
    one_block(whole.path());
    let (outs, pending) = state(whole.path());
    assert_eq!((outs.get("m0").copied(), pending.len()), (Some(2), 0));
    // Tear the block's second send (as a crash mid-append would) and run the
    // recovery of an unclean exit: nothing of the block is left.
    let dir = tempfile::tempdir().unwrap();
    let second = one_block(dir.path());
    let mut log = std::fs::read_dir(dir.path().join("commitlog"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect::<Vec<_>>();
    log.sort();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&log[0])
        .unwrap();
    let at = second + 40;
    f.seek(SeekFrom::Start(at)).unwrap();
    let mut byte = [0u8];
    f.read_exact(&mut byte).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[byte[0] ^ 0xff]).unwrap();
    drop(f);
    std::fs::write(dir.path().join("abort"), b"1").unwrap();
    let (outs, pending) = state(dir.path());
    assert_eq!(outs.get("m0"), None, "no send of the torn block is left");
    assert!(pending.contains("m0"), "nor its ack");
}

/// A copy of a block's message (its retry here) is a message of its own: it does not
/// carry the block's marks, which would make recovery after a crash take it for a
/// block cut short and cut the log there, losing it and everything after it.
#[test]
fn a_retry_of_a_block_message_and_what_follows_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let clock = pocketmq::ManualClock::new(common::T0);
    {
        let b = common::file(dir.path(), &clock);
        let mut tx = b.atomic().unwrap();
        tx.send(Message::new("out", "ship-1")).unwrap();
        tx.send(Message::new("out", "ship-2")).unwrap();
        tx.commit().unwrap();
        let c = consumer(&b, "g", "out");
        let mut got = drain(&c);
        got.sort_by(|a, b| a.body.cmp(&b.body));
        assert_eq!(bodies(&got), ["ship-1", "ship-2"]);
        c.nack(&got[0]).unwrap();
        c.ack(&got[1]).unwrap();
        common::send(&b, "out", "ship-3");
        // The crash: the files as they are (what was appended since the last
        // checkpoint is scanned again on open).
        common::copy_store(dir.path(), crashed.path());
    }
    let b = common::file(crashed.path(), &clock);
    let c = consumer(&b, "g", "out");
    // The offsets were not persisted: the block's messages come again (at least
    // once), and ship-3, appended after the copy, is there.
    let mut got = bodies(&drain(&c));
    got.sort();
    assert_eq!(got, ["ship-1", "ship-2", "ship-3"]);
    clock.advance_ms(10_000);
    b.tick().unwrap();
    let again = drain(&c);
    assert_eq!(bodies(&again), ["ship-1"], "the retry survived too");
    assert_eq!(again[0].reconsume_times, 1);
}

/// More acks than one ack record counts (65,535) in one block: all of them hold, also
/// when replayed after a crash (the offsets file had none of them).
#[test]
fn a_block_of_seventy_thousand_acks_holds_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let clock = pocketmq::ManualClock::new(common::T0);
    let b = common::file(dir.path(), &clock);
    let p = b.producer("p").unwrap();
    let n = 70_000;
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let batch = chunk.iter().map(|i| Message::new("in", format!("m{i}")));
        p.send_batch(batch.collect()).unwrap();
    }
    let c = consumer(&b, "g", "in");
    b.flush().unwrap(); // the offsets file knows the group, at offset 0
    let mut got = Vec::new();
    while got.len() < n {
        got.extend(c.receive(4096, NOW).unwrap());
    }
    let mut tx = b.atomic().unwrap();
    for m in &got {
        tx.ack(&c, m).unwrap();
    }
    tx.send(Message::new("out", "done")).unwrap();
    tx.commit().unwrap();
    assert_eq!(b.lag("g", "in").unwrap(), 0);
    let crashed = tempfile::tempdir().unwrap();
    common::copy_store(dir.path(), crashed.path());
    let after = common::file(crashed.path(), &clock);
    assert_eq!(after.lag("g", "in").unwrap(), 0, "every ack replayed");
    assert!(drain(&consumer(&after, "g", "in")).is_empty());
    assert_eq!(bodies(&drain(&consumer(&after, "o", "out"))), ["done"]);
}

/// A crash before the offsets file was written: the block's ack comes back from the
/// log, and `lag` and `progress` count it before anyone of the group rejoins, and
/// after.
#[test]
fn a_blocks_ack_replayed_after_a_crash_counts_in_lag_and_progress() {
    let dir = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let clock = pocketmq::ManualClock::new(T0);
    {
        let b = file(dir.path(), &clock);
        b.create_topic("t", 1).unwrap();
        let p = b.producer("p").unwrap();
        for i in 0..5 {
            p.send(Message::new("t", format!("m{i}"))).unwrap();
        }
        let c = consumer(&b, "g", "t");
        let m = c.receive(1, Duration::ZERO).unwrap();
        let mut tx = b.atomic().unwrap();
        tx.send(Message::new("ship", "s1")).unwrap();
        tx.ack(&c, &m[0]).unwrap();
        tx.commit().unwrap();
        assert_eq!(b.lag("g", "t").unwrap(), 4);
        // As a crash leaves it: the offsets were never written.
        copy_store(dir.path(), crashed.path());
    }
    let b = file(crashed.path(), &clock);
    let seen = |b: &Broker| {
        let p = b.progress("g", "t").unwrap();
        (b.lag("g", "t").unwrap(), p[0].consumer_offset, p[0].lag)
    };
    assert_eq!(seen(&b), (4, 1, 4), "before the group rejoins");
    let c = consumer(&b, "g", "t");
    assert_eq!(seen(&b), (4, 1, 4), "once it has");
    assert_eq!(bodies(&drain(&c)), ["m1", "m2", "m3", "m4"]);
}

#[test]
fn a_blocks_ack_from_before_a_deletion_does_not_replay_onto_the_topic_created_again() {
    let dir = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let clock = pocketmq::ManualClock::new(T0);
    {
        let b = file(dir.path(), &clock);
        b.create_topic("t", 1).unwrap();
        let p = b.producer("p").unwrap();
        p.send(Message::new("t", "old")).unwrap();
        let c = consumer(&b, "g", "t");
        let m = c.receive(1, Duration::ZERO).unwrap();
        let mut tx = b.atomic().unwrap();
        tx.ack(&c, &m[0]).unwrap();
        tx.commit().unwrap();
        b.delete_topic("t").unwrap();
        b.create_topic("t", 1).unwrap();
        p.send(Message::new("t", "new")).unwrap();
        assert_eq!(b.lag("g", "t").unwrap(), 1);
        copy_store(dir.path(), crashed.path());
    }
    // The block's ack names queue offset 0 of the deleted topic, where the new
    // topic's first message now is.
    let b = file(crashed.path(), &clock);
    assert_eq!(b.lag("g", "t").unwrap(), 1);
    let c = consumer(&b, "g", "t");
    assert_eq!(bodies(&drain(&c)), ["new"]);
}
