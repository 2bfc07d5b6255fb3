//! Recovery against real files and real processes: torn and stale tails, kill -9 of
//! a sync-flushing writer, rebuilt ConsumeQueues, segment rolls, dense offsets under
//! concurrent writers, and the store lock.

#![allow(clippy::disallowed_methods)] // tests may start threads and read real time

mod common;

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use pocketmq::{Broker, BrokerConfig, FlushMode, ManualClock, Message};

const SEG: u64 = 64 * 1024;

fn open(dir: &Path) -> Broker {
    Broker::open(BrokerConfig {
        segment_size: Some(SEG),
        background: false,
        ..BrokerConfig::at(dir)
    })
    .unwrap()
}

/// Sets how far the checkpoint says the log was flushed, as a crash leaves it.
fn set_flushed(dir: &Path, flushed: u64) {
    let path = dir.join("checkpoint");
    let text = fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("physicFlushed"))
        .unwrap()
        .to_string();
    fs::write(
        &path,
        text.replace(&line, &format!("  \"physicFlushed\": {flushed},")),
    )
    .unwrap();
}

/// Marks the store as not closed cleanly, as a crash leaves it.
fn mark_unclean(dir: &Path) {
    fs::write(dir.join("abort"), b"1").unwrap();
}

fn last_segment(dir: &Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = fs::read_dir(dir.join("commitlog"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

fn write_at(path: &Path, at: u64, bytes: &[u8]) {
    let mut f = OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
}

fn read_at(path: &Path, at: u64, len: usize) -> Vec<u8> {
    fs::read(path).unwrap()[at as usize..at as usize + len].to_vec()
}

/// Sends `n` messages to queue 0 of "t"; returns (commitlog offset, size) of each.
fn fill(b: &Broker, from: usize, n: usize) -> Vec<(u64, u64)> {
    let p = b.producer("p").unwrap();
    let mut out = Vec::new();
    for i in from..from + n {
        let r = p
            .send(
                Message::builder("t", format!("message-{i:04}"))
                    .queue_id(0)
                    .tags("x")
                    .build(),
            )
            .unwrap();
        out.push(r.commitlog_offset);
    }
    let mut with_size = Vec::new();
    for (i, off) in out.iter().enumerate() {
        let next = out.get(i + 1).copied();
        with_size.push((*off, next.map_or(0, |n| n - off)));
    }
    with_size
}

fn all_bodies(b: &Broker, group: &str) -> Vec<String> {
    b.create_topic("t", 1).unwrap();
    bodies(&drain(&consumer(b, group, "t")))
}

/// Each kind of damaged tail is cut off; the queue continues densely after it.
#[test]
fn torn_tails_are_cut_and_offsets_continue() {
    type Damage = fn(&Path, u64, u64);
    let cases: Vec<(&str, Damage)> = vec![
        ("short header", |seg, at, _| {
            write_at(seg, at % SEG, &[0, 0, 0, 200, 0xDA, 0xA3])
        }),
        ("truncated body", |seg, at, len| {
            let rec = read_at(seg, (at - len) % SEG, len as usize);
            write_at(seg, at % SEG, &rec[..rec.len() - 7]);
            // Make its offset field right so only the truncation is wrong.
            write_at(seg, at % SEG + 28, &at.to_be_bytes());
        }),
        ("bad crc", |seg, at, len| {
            let mut rec = read_at(seg, (at - len) % SEG, len as usize);
            rec[28..36].copy_from_slice(&at.to_be_bytes());
            rec[100] ^= 0xFF;
            write_at(seg, at % SEG, &rec);
        }),
        ("zero-filled tail", |seg, at, _| {
            write_at(seg, at % SEG, &[0u8; 512])
        }),
    ];
    for (name, damage) in cases {
        let dir = tempfile::tempdir().unwrap();
        let end = {
            let b = open(dir.path());
            let placed = fill(&b, 0, 10);
            let (last, _) = placed[9];
            let len = placed[8].1;
            b.close().unwrap();
            let end = last + len;
            damage(&last_segment(dir.path()), end, len);
            end
        };
        mark_unclean(dir.path());
        let b = open(dir.path());
        let got = all_bodies(&b, "g");
        assert_eq!(got.len(), 10, "{name}: {got:?}");
        let r = fill(&b, 10, 1);
        assert_eq!(r[0].0, end, "{name}: the next record starts at the cut");
        let got = all_bodies(&b, "g2");
        assert_eq!(got.len(), 11, "{name}");
        assert_eq!(got[10], "message-0010", "{name}");
    }
}

/// A CRC-valid record left beyond an earlier truncation point never comes back.
#[test]
fn stale_records_after_a_truncation_never_reappear() {
    let dir = tempfile::tempdir().unwrap();
    let (rec8, rec9, p8, p9) = {
        let b = open(dir.path());
        let placed = fill(&b, 0, 10);
        b.close().unwrap();
        let seg = last_segment(dir.path());
        let (p8, len8) = placed[8];
        let p9 = placed[9].0;
        let len9 = len8;
        (
            read_at(&seg, p8 % SEG, len8 as usize),
            read_at(&seg, p9 % SEG, len9 as usize),
            p8,
            p9,
        )
    };
    let seg = last_segment(dir.path());
    // Corrupt record 8, as a crash in its append leaves it (the checkpoint says the
    // log was flushed up to it): recovery cuts there (and must zero what follows).
    let mut bad = rec8.clone();
    bad[100] ^= 0xFF;
    write_at(&seg, p8 % SEG, &bad);
    set_flushed(dir.path(), p8);
    mark_unclean(dir.path());
    {
        let b = open(dir.path());
        assert_eq!(all_bodies(&b, "g").len(), 8);
        assert!(
            read_at(&seg, p9 % SEG, rec9.len()).iter().all(|b| *b == 0),
            "the cut tail is zeroed"
        );
        // A new record of the same size ends exactly where the stale record 9 began.
        let r = fill(&b, 0, 1);
        assert_eq!(r[0].0, p8);
        b.close().unwrap();
    }
    // Even if the old bytes were still there, the new neighbour must end the log.
    mark_unclean(dir.path());
    let b = open(dir.path());
    let got = all_bodies(&b, "g3");
    assert_eq!(got.len(), 9);
    assert_eq!(got[8], "message-0000");
}

/// The child half of the kill -9 test: appends with sync flush and reports each
/// acknowledged message on stdout until it is killed.
#[test]
fn sync_writer_child() {
    let Ok(dir) = std::env::var("POCKETMQ_CRASH_DIR") else {
        return;
    };
    let b = Broker::open(BrokerConfig {
        flush: FlushMode::Sync,
        segment_size: Some(256 * 1024),
        ..BrokerConfig::at(&dir)
    })
    .unwrap();
    let seed: u64 = std::env::var("POCKETMQ_CRASH_SEED")
        .unwrap()
        .parse()
        .unwrap();
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let b = b.clone();
            std::thread::spawn(move || {
                let p = b.producer("p").unwrap();
                let mut out = std::io::stdout();
                for i in 0u64.. {
                    let body = crash_body(seed, t, i);
                    let r = p
                        .send(
                            Message::builder("crash", body)
                                .key(format!("{seed}-{t}-{i}"))
                                .build(),
                        )
                        .unwrap();
                    assert_eq!(r.status, pocketmq::SendStatus::SendOk);
                    writeln!(out, "ACK {} {seed} {t} {i}", r.msg_id).unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

fn crash_body(seed: u64, t: u64, i: u64) -> Vec<u8> {
    let len = 16 + ((seed * 31 + t * 7 + i * 13) % 700) as usize;
    (0..len)
        .map(|k| (k as u64 * 131 + seed + t * 17 + i) as u8)
        .collect()
}

#[test]
fn kill_9_never_loses_an_acknowledged_sync_send() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked: Vec<(String, u64, u64, u64)> = Vec::new();
    for cycle in 0..24u64 {
        let mut child = Command::new(&exe)
            .args([
                "sync_writer_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("POCKETMQ_CRASH_DIR", dir.path())
            .env("POCKETMQ_CRASH_SEED", cycle.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ACK ") {
                    let f: Vec<&str> = rest.split(' ').collect();
                    let ack: (String, u64, u64, u64) = (
                        f[0].to_string(),
                        f[1].parse().unwrap(),
                        f[2].parse().unwrap(),
                        f[3].parse().unwrap(),
                    );
                    if tx.send(ack).is_err() {
                        break;
                    }
                }
            }
        });
        // Wait for some acknowledged sends, then kill it at a varying moment.
        let wanted = 5 + (cycle * 37 % 60) as usize;
        let mut got = 0;
        while got < wanted {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(ack) => {
                    acked.push(ack);
                    got += 1;
                }
                Err(e) => panic!("cycle {cycle}: the writer stalled: {e}"),
            }
        }
        std::thread::sleep(Duration::from_micros(cycle * 997 % 15_000));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        acked.extend(rx.try_iter());
        // Every acknowledged message reads back byte-identical.
        let b = Broker::open(BrokerConfig {
            background: false,
            ..BrokerConfig::at(dir.path())
        })
        .unwrap();
        for (id, seed, t, i) in &acked {
            let m = b
                .get(id)
                .unwrap()
                .unwrap_or_else(|| panic!("cycle {cycle}: acked {id} lost"));
            assert_eq!(
                &m.body[..],
                &crash_body(*seed, *t, *i)[..],
                "cycle {cycle}: {id} differs"
            );
        }
        // And the queue is dense with nothing torn in it.
        let c = consumer(&b, &format!("check-{cycle}"), "crash");
        let all = drain(&c);
        for m in &all {
            let key = &m.keys[0];
            let f: Vec<u64> = key.split('-').map(|x| x.parse().unwrap()).collect();
            assert_eq!(
                &m.body[..],
                &crash_body(f[0], f[1], f[2])[..],
                "a torn record was delivered"
            );
        }
        assert!(all.len() >= acked.len());
        b.close().unwrap();
    }
    assert!(
        acked.len() > 100,
        "the writer made progress: {}",
        acked.len()
    );
}

#[test]
fn deleted_consume_queues_are_rebuilt_identically() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for t in ["a", "b"] {
            for q in 0..4 {
                let d = dir.join("consumequeue").join(t).join(q.to_string());
                for e in fs::read_dir(&d).unwrap() {
                    let e = e.unwrap();
                    out.push((
                        format!("{t}/{q}/{:?}", e.file_name()),
                        fs::read(e.path()).unwrap(),
                    ));
                }
            }
        }
        out.sort();
        out
    };
    {
        let b = open(dir.path());
        let p = b.producer("p").unwrap();
        for i in 0..300 {
            let t = if i % 3 == 0 { "a" } else { "b" };
            p.send(
                Message::builder(t, format!("m{i}"))
                    .tags(format!("tag{}", i % 5))
                    .build(),
            )
            .unwrap();
        }
        b.close().unwrap();
    }
    let before = snapshot(dir.path());
    fs::remove_dir_all(dir.path().join("consumequeue")).unwrap();
    open(dir.path()).close().unwrap();
    assert_eq!(snapshot(dir.path()), before);
    fs::remove_dir_all(dir.path().join("consumequeue").join("b").join("2")).unwrap();
    open(dir.path()).close().unwrap();
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn records_read_back_in_order_across_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(BrokerConfig {
        segment_size: Some(4096),
        background: false,
        ..BrokerConfig::at(dir.path())
    })
    .unwrap();
    let p = b.producer("p").unwrap();
    for i in 0..200 {
        p.send(
            Message::builder("t", format!("m{i:03}-{}", "x".repeat(i % 90)))
                .queue_id(0)
                .build(),
        )
        .unwrap();
    }
    // A batch that does not fit in what is left moves whole to the next segment.
    let batch: Vec<Message> = (0..10)
        .map(|i| {
            Message::builder("t", format!("batch{i}-{}", "y".repeat(200)))
                .queue_id(0)
                .build()
        })
        .collect();
    let rs = p.send_batch(batch).unwrap();
    let first = rs[0].commitlog_offset;
    let last = rs[9].commitlog_offset;
    assert_eq!(first / 4096, last / 4096, "one batch, one segment");
    let offsets: Vec<u64> = rs.iter().map(|r| r.queue_offset).collect();
    assert_eq!(offsets, (200..210).collect::<Vec<_>>());
    b.close().unwrap();
    let b = Broker::open(BrokerConfig {
        segment_size: Some(4096),
        background: false,
        ..BrokerConfig::at(dir.path())
    })
    .unwrap();
    b.create_topic("t", 1).unwrap();
    let got = bodies(&drain(&consumer(&b, "g", "t")));
    assert_eq!(got.len(), 210);
    for (i, body) in got.iter().take(200).enumerate() {
        assert!(body.starts_with(&format!("m{i:03}-")), "{i}: {body}");
    }
    // Segments are named by their 20-digit start offset.
    let names: Vec<String> = fs::read_dir(dir.path().join("commitlog"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names
        .iter()
        .all(|n| n.len() == 20 && n.parse::<u64>().unwrap() % 4096 == 0));
    assert!(names.len() > 5);
}

#[test]
fn concurrent_writers_to_one_queue_get_dense_offsets() {
    let b = Broker::memory();
    b.create_topic("t", 1).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let b = b.clone();
            std::thread::spawn(move || {
                let p = b.producer("p").unwrap();
                (0..5000)
                    .map(|i| p.send(Message::new("t", format!("{i}"))).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort_by_key(|r| r.queue_offset);
    let offsets: Vec<u64> = all.iter().map(|r| r.queue_offset).collect();
    assert_eq!(offsets, (0..20_000).collect::<Vec<_>>());
    assert!(all
        .windows(2)
        .all(|w| w[0].commitlog_offset < w[1].commitlog_offset));
}

#[test]
fn sixteen_sync_writers_all_finish_in_time_and_are_all_stored() {
    // One of them flushes for all; the others park and must all be woken. The flush
    // timeout is far away, so a missed wake-up leaves a writer waiting, which the
    // minute allowed here catches (the run takes well under a second).
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(BrokerConfig {
        flush: FlushMode::Sync,
        sync_flush_timeout_ms: 3_600_000,
        ..BrokerConfig::at(dir.path())
    })
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for t in 0..16 {
        let (b, tx) = (b.clone(), tx.clone());
        std::thread::spawn(move || {
            let p = b.producer("p").unwrap();
            for i in 0..100 {
                tx.send(p.send(Message::new("t", format!("{t}-{i}"))).unwrap())
                    .unwrap();
            }
        });
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for n in 0..1600 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let r = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("a sync writer never woke: {n} of 1600 sends returned"));
        assert_eq!(r.status, pocketmq::SendStatus::SendOk);
    }
    b.close().unwrap();
    let b = open(dir.path());
    assert_eq!(b.stats().unwrap().messages_retained, 1600);
}

#[test]
fn a_second_open_fails_at_once_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    match Broker::open(BrokerConfig::at(dir.path())) {
        Err(e @ pocketmq::Error::StoreLocked { pid, .. }) => {
            assert_eq!(pid, std::process::id());
            // The holder is this very process: the message says so, and what to do.
            assert!(e.to_string().contains("this process"), "{e}");
            assert!(e.to_string().contains("close()"), "{e}");
        }
        other => panic!("expected StoreLocked, got {other:?}"),
    }
    b.close().unwrap();
    let again = open(dir.path());
    // Reopened over the last holder's lock file: it names this holder alone.
    let text = std::fs::read_to_string(dir.path().join("lock")).unwrap();
    assert_eq!(text, std::process::id().to_string());
    again.close().unwrap();
    assert!(!dir.path().join("abort").exists());
}

/// What this process has open or mapped under `dir` (Linux's /proc).
#[cfg(target_os = "linux")]
fn held_under(dir: &Path) -> (usize, usize) {
    let dir = dir.canonicalize().unwrap();
    let fds = fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|p| p.starts_with(&dir))
        .count();
    let maps = fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains(dir.to_str().unwrap()))
        .count();
    (fds, maps)
}

/// close() lets go of the store's files and mappings (and a memory store's memory)
/// at once, not when the last handle on the broker goes: a Python `with` block's
/// broker stays bound after it, a JavaScript one until the collector runs. A
/// message read before keeps its body.
#[cfg(target_os = "linux")]
#[test]
fn a_closed_broker_holds_no_file_or_mapping_of_its_store() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    let p = b.producer("p").unwrap();
    for i in 0..200 {
        p.send(Message::new(format!("t{}", i % 4), format!("m{i}")))
            .unwrap();
    }
    let c = consumer(&b, "g", "t0");
    let read = drain(&c);
    assert_eq!(read.len(), 50);
    c.ack_all(&read).unwrap();
    let (fds, maps) = held_under(dir.path());
    assert!(fds >= 1 && maps >= 5, "open: {fds} files, {maps} mappings");
    b.close().unwrap();
    // The messages read keep their segment (its bodies are views of it), nothing else.
    assert_eq!(bodies(&read[..2]), vec!["m0", "m4"]);
    assert_eq!(held_under(dir.path()), (1, 1), "after close");
    drop(read);
    assert_eq!(
        held_under(dir.path()),
        (0, 0),
        "after close, the messages dropped"
    );
    assert!(matches!(
        p.send(Message::new("t0", "late")),
        Err(pocketmq::Error::Closed)
    ));
    assert!(matches!(
        c.receive(8, Duration::ZERO),
        Err(pocketmq::Error::Closed)
    ));
    drop((p, c, b));
    let b = open(dir.path());
    assert_eq!(drain(&consumer(&b, "g", "t1")).len(), 50);
    assert_eq!(
        drain(&consumer(&b, "g", "t0")).len(),
        0,
        "g's acks of t0 were kept"
    );
}

/// A store held by a host without file locks (Node's file store names itself in the
/// lock file: its pid, then "host") is refused while that process lives, and taken
/// over once it is gone.
#[test]
fn a_store_a_live_host_process_holds_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path()).close().unwrap();
    let mut holder = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    std::fs::write(dir.path().join("lock"), format!("{}\nhost\n", holder.id())).unwrap();
    match Broker::open(BrokerConfig::at(dir.path())) {
        Err(e @ pocketmq::Error::StoreLocked { pid, .. }) => {
            assert_eq!(pid, holder.id());
            assert!(!e.to_string().contains("this process"), "{e}");
        }
        other => panic!("expected StoreLocked, got {other:?}"),
    }
    holder.kill().unwrap();
    holder.wait().unwrap();
    let b = open(dir.path());
    b.producer("p")
        .unwrap()
        .send(pocketmq::Message::new("t", "x"))
        .unwrap();
    b.close().unwrap();
}

#[test]
fn sync_flush_timeouts_report_but_keep_the_message() {
    // A zero timeout cannot be met by any fsync: the status says so, the data stays.
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let b = Broker::open(BrokerConfig {
        flush: FlushMode::Sync,
        sync_flush_timeout_ms: 0,
        clock: Arc::new(clock),
        background: false,
        ..BrokerConfig::at(dir.path())
    })
    .unwrap();
    let r = b
        .producer("p")
        .unwrap()
        .send(Message::new("t", "x"))
        .unwrap();
    assert!(matches!(
        r.status,
        pocketmq::SendStatus::SendOk | pocketmq::SendStatus::FlushDiskTimeout
    ));
    b.close().unwrap();
    let b = open(dir.path());
    assert_eq!(b.get(&r.msg_id).unwrap().unwrap().body_str(), Some("x"));
}

#[test]
fn damaged_store_files_are_a_typed_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = open(dir.path());
        fill(&b, 0, 3);
        b.close().unwrap();
    }
    // Metadata that is not JSON.
    let offsets = dir.path().join("config").join("topics.json");
    let kept = fs::read(&offsets).unwrap();
    fs::write(&offsets, b"{ not json").unwrap();
    match Broker::open(BrokerConfig::at(dir.path())) {
        Err(pocketmq::Error::StoreCorrupted(msg)) => assert!(msg.contains("topics.json"), "{msg}"),
        other => panic!("expected StoreCorrupted, got {other:?}"),
    }
    fs::write(&offsets, kept).unwrap();
    // A segment of the wrong size next to a good one.
    let stray = dir.path().join("commitlog").join(format!("{:020}", SEG));
    fs::write(&stray, vec![7u8; 100]).unwrap();
    match Broker::open(BrokerConfig::at(dir.path())) {
        Err(pocketmq::Error::StoreCorrupted(msg)) => assert!(msg.contains("bytes"), "{msg}"),
        other => panic!("expected StoreCorrupted, got {other:?}"),
    }
    fs::remove_file(&stray).unwrap();
    // Put right, the store opens with its messages.
    let b = open(dir.path());
    assert_eq!(all_bodies(&b, "g").len(), 3);
}

#[test]
fn a_segment_cut_short_at_creation_is_taken_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = open(dir.path());
        fill(&b, 0, 3);
        b.close().unwrap();
    }
    // A crash between creating the next segment and sizing it leaves it empty.
    let next = dir.path().join("commitlog").join(format!("{:020}", SEG));
    fs::write(&next, b"").unwrap();
    mark_unclean(dir.path());
    let b = open(dir.path());
    assert_eq!(all_bodies(&b, "g").len(), 3);
    fill(&b, 3, 1);
    assert_eq!(all_bodies(&b, "g2").len(), 4);
}

/// The child half of the topic kill -9 test: creates a topic of 8 queues, sends one
/// sync message to each queue, reports them, then waits to be killed.
#[test]
fn topic_writer_child() {
    let Ok(dir) = std::env::var("POCKETMQ_TOPIC_DIR") else {
        return;
    };
    let auto = std::env::var("POCKETMQ_TOPIC_AUTO").as_deref() == Ok("1");
    let b = Broker::open(BrokerConfig {
        flush: FlushMode::Sync,
        auto_create_topics: auto,
        segment_size: Some(SEG),
        ..BrokerConfig::at(&dir)
    })
    .unwrap();
    b.create_topic("eight", 8).unwrap();
    let p = b.producer("p").unwrap();
    let mut out = std::io::stdout();
    for q in 0..8 {
        let r = p
            .send(
                Message::builder("eight", format!("q{q}"))
                    .queue_id(q)
                    .build(),
            )
            .unwrap();
        assert_eq!(r.status, pocketmq::SendStatus::SendOk);
    }
    writeln!(out, "SENT").unwrap();
    out.flush().unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

/// A topic created and written under `sync` is whole after kill -9: all its queues,
/// every acknowledged message, also after the next clean close.
#[test]
fn kill_9_after_create_topic_keeps_every_queue() {
    for auto in ["1", "0"] {
        let dir = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(&exe)
            .args([
                "topic_writer_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("POCKETMQ_TOPIC_DIR", dir.path())
            .env("POCKETMQ_TOPIC_AUTO", auto)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert!(lines.any(|l| l.unwrap().contains("SENT")), "the child sent");
        child.kill().unwrap();
        child.wait().unwrap();
        for round in 0..2 {
            let b = Broker::open(BrokerConfig {
                auto_create_topics: auto == "1",
                background: false,
                ..BrokerConfig::at(dir.path())
            })
            .unwrap();
            let topics = b.topics().unwrap();
            let eight = topics.iter().find(|t| t.name == "eight");
            assert_eq!(
                eight.map(|t| t.queues),
                Some(8),
                "auto={auto} round {round}"
            );
            let mut got = bodies(&drain(&consumer(&b, &format!("g{round}"), "eight")));
            got.sort();
            let want: Vec<String> = (0..8).map(|q| format!("q{q}")).collect();
            assert_eq!(got, want, "auto={auto} round {round}");
            b.close().unwrap();
        }
    }
}

/// The CommitLog names each record's topic and queue: a lost or damaged registry
/// (and lost ConsumeQueues) are rebuilt from it, and a queue count out of range in
/// `topics.json` neither hangs open nor builds anything.
#[test]
fn topics_come_back_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = open(dir.path());
        b.create_topic("six", 6).unwrap();
        let p = b.producer("p").unwrap();
        p.send(Message::builder("six", "last").queue_id(5).build())
            .unwrap();
        p.send(Message::new("auto", "a")).unwrap();
        b.close().unwrap();
    }
    let topics_json = dir.path().join("config").join("topics.json");
    let check = |what: &str| {
        let b = open(dir.path());
        let topics = b.topics().unwrap();
        let q = |n: &str| topics.iter().find(|t| t.name == n).map(|t| t.queues);
        assert_eq!(q("six"), Some(6), "{what}");
        assert_eq!(q("auto"), Some(4), "{what}");
        assert_eq!(bodies(&drain(&consumer(&b, what, "six"))), vec!["last"]);
        b.close().unwrap();
    };
    fs::remove_file(&topics_json).unwrap();
    check("registry-lost");
    fs::remove_file(&topics_json).unwrap();
    fs::remove_dir_all(dir.path().join("consumequeue")).unwrap();
    check("registry-and-queues-lost");
    let text = fs::read_to_string(&topics_json).unwrap();
    fs::write(
        &topics_json,
        text.replace("\"queues\": 6", "\"queues\": 4000000000"),
    )
    .unwrap();
    let started = std::time::Instant::now();
    check("huge-count");
    assert!(started.elapsed() < Duration::from_secs(10));
    fs::write(
        &topics_json,
        r#"{"topicConfigTable": {"../../x": {"queues": 2}, "six": {"queues": 0}}}"#,
    )
    .unwrap();
    check("bad-entries");
    assert!(!dir.path().join("x").exists());
}

/// `flush` writes the consumers' offsets with the log: a copy of the store taken
/// right after it (as a crash would leave it, no close) knows what was acked.
#[test]
fn flush_makes_acks_durable_too() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    b.create_topic("t", 1).unwrap();
    let p = b.producer("p").unwrap();
    for i in 0..5 {
        p.send(Message::new("t", format!("m{i}"))).unwrap();
    }
    let c = b.consumer(pocketmq::ConsumerConfig::new("g", "t")).unwrap();
    let got = c.receive(2, Duration::ZERO).unwrap();
    assert_eq!(got.len(), 2);
    c.ack_all(&got).unwrap();
    b.flush().unwrap();
    let copy = tempfile::tempdir().unwrap();
    copy_tree(dir.path(), copy.path());
    let again = open(copy.path());
    assert_eq!(again.lag("g", "t").unwrap(), 3, "the two acks held");
    drop(b);
}

/// Every file of a store but its lock (the copy is another store).
fn copy_tree(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else if entry.file_name() != "lock" {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Offsets committed past a tail that recovery cut off move back to the queue's new
/// end at open: the messages stored there next are read, not passed over as acked.
#[test]
fn offsets_past_a_cut_tail_read_the_next_messages() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = open(dir.path());
        let placed = fill(&b, 0, 10);
        b.create_topic("t", 1).unwrap();
        let g = consumer(&b, "g", "t");
        let got = drain(&g);
        assert_eq!(got.len(), 10);
        for m in &got {
            g.ack(m).unwrap();
        }
        let s = b
            .simple_consumer(pocketmq::SimpleConsumerConfig::new("s", "t"))
            .unwrap();
        let got = s.receive(32, Duration::ZERO).unwrap();
        assert_eq!(got.len(), 10);
        for m in &got {
            s.ack(m).unwrap();
        }
        b.close().unwrap();
        // A crash tore the last record, written after the last flush: zeros where
        // it was.
        write_at(&last_segment(dir.path()), placed[9].0 % SEG, &[0u8; 64]);
        set_flushed(dir.path(), placed[9].0);
    }
    mark_unclean(dir.path());
    let b = open(dir.path());
    assert_eq!(fill(&b, 10, 1).len(), 1, "stored where the cut record was");
    assert_eq!(
        b.lag("g", "t").unwrap(),
        1,
        "the new message is not taken for acked"
    );
    assert_eq!(all_bodies(&b, "g"), ["message-0010"]);
    let s = b
        .simple_consumer(pocketmq::SimpleConsumerConfig::new("s", "t"))
        .unwrap();
    let got = s.receive(32, Duration::ZERO).unwrap();
    assert_eq!(bodies(&got), ["message-0010"]);
}

/// A crash can lose records that were sent (and even delivered) before they were
/// flushed: the machine went down with them in its page cache. The records written
/// at their place after recovery must not answer to their ids, or a consumer that
/// keeps the ids it has processed would drop them as duplicates.
#[test]
fn ids_of_messages_a_crash_lost_are_never_given_again() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let config = || BrokerConfig {
        segment_size: Some(SEG),
        ..file_config(dir.path(), &clock)
    };
    let send = |b: &Broker, from: usize, n: usize| -> Vec<pocketmq::SendResult> {
        let p = b.producer("p").unwrap();
        (from..from + n)
            .map(|i| {
                let m = Message::builder("t", format!("message-{i:04}")).queue_id(0);
                p.send(m.build()).unwrap()
            })
            .collect()
    };
    // Loses everything from `at` on, as the machine's crash does to what it never
    // flushed.
    let crash_losing = |at: u64| {
        write_at(&last_segment(dir.path()), at % SEG, &[0u8; 1024]);
        set_flushed(dir.path(), at);
        mark_unclean(dir.path());
    };
    let first = {
        let b = Broker::open(config()).unwrap();
        let rs = send(&b, 0, 10);
        b.close().unwrap();
        rs
    };
    let at = first[7].commitlog_offset;
    crash_losing(at);
    let second = {
        let b = Broker::open(config()).unwrap();
        let c = consumer(&b, "g", "t");
        let kept = drain(&c);
        assert_eq!(bodies(&kept).len(), 7);
        for (m, r) in kept.iter().zip(&first) {
            assert_eq!(m.msg_id, r.msg_id, "a kept message keeps its id");
            assert_eq!(b.get(&r.msg_id).unwrap().unwrap().body, m.body);
        }
        // Written where the lost ones were, under ids of their own.
        let rs = send(&b, 10, 3);
        assert_eq!(
            rs[0].commitlog_offset, at,
            "the log continues where it was cut"
        );
        for (new, lost) in rs.iter().zip(&first[7..]) {
            assert_ne!(new.msg_id, lost.msg_id);
            assert!(
                b.get(&lost.msg_id).unwrap().is_none(),
                "a lost id finds nothing"
            );
        }
        let got = drain(&c);
        assert_eq!(
            bodies(&got),
            ["message-0010", "message-0011", "message-0012"]
        );
        for (m, r) in got.iter().zip(&rs) {
            assert_eq!(m.msg_id, r.msg_id);
            let found = b.get(&r.msg_id).unwrap().expect("found by its id");
            assert_eq!(found.body_str(), m.body_str());
        }
        // A retry of a message from before the crash, copied after it, keeps its id.
        c.nack_after(&kept[3], Duration::from_secs(1)).unwrap();
        clock.advance_ms(1_000);
        b.tick().unwrap();
        let again = drain(&c);
        assert_eq!(bodies(&again), ["message-0003"]);
        assert_eq!(again[0].msg_id, first[3].msg_id);
        c.ack(&again[0]).unwrap();
        b.close().unwrap();
        rs
    };
    // The ids stay as they were across a clean restart, and after losing
    // `store.json` (the checkpoint keeps them too).
    for lose_info in [false, true] {
        if lose_info {
            fs::remove_file(dir.path().join("config/store.json")).unwrap();
        }
        let b = Broker::open(config()).unwrap();
        for r in first[..7].iter().chain(&second) {
            assert_eq!(
                b.get(&r.msg_id).unwrap().unwrap().commitlog_offset,
                r.commitlog_offset
            );
        }
        b.close().unwrap();
    }
    // Lost again at the same place: the third messages there answer to neither.
    crash_losing(at);
    let b = Broker::open(config()).unwrap();
    let third = send(&b, 20, 3);
    assert_eq!(third[0].commitlog_offset, at);
    for (new, (a, b2)) in third.iter().zip(first[7..].iter().zip(&second)) {
        assert_ne!(new.msg_id, a.msg_id);
        assert_ne!(new.msg_id, b2.msg_id);
    }
    for r in &first[..7] {
        assert!(b.get(&r.msg_id).unwrap().is_some());
    }
}

/// The pages of `file` resident in this process (its mappings' `Rss` in smaps), KiB.
#[cfg(target_os = "linux")]
fn resident_kib(file: &Path) -> u64 {
    let smaps = fs::read_to_string("/proc/self/smaps").unwrap();
    let name = file.to_str().unwrap();
    let mut mine = false;
    let mut kib = 0;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            mine = line.ends_with(name);
        } else if let (true, Some(rss)) = (mine, line.strip_prefix("Rss:")) {
            kib += rss
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .unwrap();
        }
    }
    kib
}

#[cfg(target_os = "linux")]
#[test]
fn reopening_a_store_leaves_its_segment_out_of_the_resident_set() {
    // Open checks that the log's tail past its end is zeros: that reads the rest of
    // the active segment, which must not stay resident (64 MiB for one message).
    let dir = tempfile::tempdir().unwrap();
    let config = || Broker::open(BrokerConfig::at(dir.path())).unwrap();
    let b = config();
    send(&b, "t", "one");
    b.close().unwrap();
    let seg = dir.path().join("commitlog").join(format!("{:020}", 0));
    assert_eq!(fs::metadata(&seg).unwrap().len(), 64 << 20);
    // A clean reopen, then one whose checkpoint says nothing was flushed (a crash's).
    for crashed in [false, true] {
        if crashed {
            set_flushed(dir.path(), 0);
        }
        let b = config();
        let kib = resident_kib(&seg);
        assert!(kib < 1024, "{kib} KiB of the segment resident after open");
        assert_eq!(bodies(&drain(&consumer(&b, "g", "t"))), ["one"]);
        b.close().unwrap();
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_segment_with_holes_is_allocated_when_opened() {
    // Node's file store sizes segments without allocating them; a native open gives
    // them their blocks, so no write into a hole can meet a full disk as SIGBUS.
    use std::os::unix::fs::{FileExt, MetadataExt};
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    let first = send(&b, "t", "one");
    b.close().unwrap();
    let seg = segment_of(dir.path(), first.commitlog_offset, SEG);
    let data = fs::read(&seg).unwrap();
    let used = data.iter().rposition(|&x| x != 0).unwrap() + 1;
    fs::remove_file(&seg).unwrap();
    let f = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&seg)
        .unwrap();
    f.write_all_at(&data[..used], 0).unwrap();
    f.set_len(SEG).unwrap();
    drop(f);
    let holes = |p: &Path| fs::metadata(p).unwrap().blocks() * 512 < SEG;
    if !holes(&seg) {
        return; // a file system without holes: nothing to allocate
    }
    let b = open(dir.path());
    assert!(!holes(&seg), "the segment's blocks were allocated at open");
    assert_eq!(bodies(&drain(&consumer(&b, "g", "t"))), ["one"]);
    send(&b, "t", "two");
    b.close().unwrap();
}
