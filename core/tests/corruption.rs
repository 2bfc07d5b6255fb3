//! Damaged stores: every kind of store file flipped, truncated, zeroed or deleted,
//! after a clean close and after a crash. Open either recovers or fails with a typed
//! error; whatever it recovers, no damaged message is ever delivered (each body
//! carries its own identity, so a delivered body is checked against what was sent);
//! and nothing panics or hangs. Then the specific failures: a flipped body bit, one
//! bad record in an old segment, a forged header, a segment cut short, a lost
//! checkpoint.

#![allow(clippy::disallowed_methods)] // a watchdog thread and real time

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use pocketmq::{
    Broker, BrokerConfig, ConsumerConfig, ErrorKind, ManualClock, Message, MessageExt,
    TransactionListener, TxState,
};

const SEG: u64 = 16 * 1024;

fn open_at(dir: &Path, clock: &ManualClock) -> pocketmq::Result<Broker> {
    Broker::open(BrokerConfig {
        clock: Arc::new(clock.clone()),
        background: false,
        segment_size: Some(SEG),
        ..BrokerConfig::at(dir)
    })
}

/// A body that names itself: `<id>:<payload derived from id>`.
fn body(id: u32) -> String {
    let len = 20 + (id as usize * 37) % 300;
    let payload: String = (0..len)
        .map(|k| (b'a' + ((id as usize * 7 + k * 13) % 26) as u8) as char)
        .collect();
    format!("{id}:{payload}")
}

/// A crash of the broker over `dir`: nothing flushed or closed beyond what already
/// is; the store is copied away from this process's lock, as a new process finds it.
fn crash(b: Broker, dir: &Path) -> tempfile::TempDir {
    b.flush().unwrap();
    std::mem::forget(b);
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir, copy.path());
    copy
}

/// Whether a delivered body is exactly one that was sent.
fn intact(m: &MessageExt) -> bool {
    let Some(text) = m.body_str() else {
        return false;
    };
    let Some((id, _)) = text.split_once(':') else {
        return false;
    };
    id.parse().is_ok_and(|id: u32| text == body(id))
}

struct Unknown;
impl TransactionListener for Unknown {
    fn check(&self, _: &MessageExt) -> TxState {
        TxState::Unknown
    }
}

/// A store with a bit of everything: several segments of two topics, tags and
/// keys, a retried message, delayed ones, timers, a pending transaction, offsets.
/// Returns the msg_id -> body of every message sent.
fn build(dir: &Path, clock: &ManualClock, close: bool) -> BTreeMap<String, String> {
    let b = open_at(dir, clock).unwrap();
    b.create_topic("a", 2).unwrap();
    b.create_topic("b", 1).unwrap();
    let p = b.producer("p").unwrap();
    let mut sent = BTreeMap::new();
    for i in 0..200u32 {
        let topic = if i % 3 == 0 { "b" } else { "a" };
        let mut m = Message::builder(topic, body(i))
            .tags(format!("t{}", i % 4))
            .key(format!("k{i}"));
        if i % 10 == 3 {
            m = m.delay_level(2);
        }
        if i % 10 == 7 {
            m = m.delay_ms(90_000);
        }
        let r = p.send(m.build()).unwrap();
        sent.insert(r.msg_id, body(i));
    }
    let tp = b.transaction_producer("tx", Arc::new(Unknown)).unwrap();
    let r = tp
        .send(Message::new("a", body(500)), |_| TxState::Unknown)
        .unwrap();
    sent.insert(r.msg_id, body(500));
    let c = consumer(&b, "g", "b");
    let got = c.receive(8, Duration::ZERO).unwrap();
    c.ack(&got[0]).unwrap();
    c.nack(&got[1]).unwrap();
    clock.advance_ms(6_000);
    b.tick().unwrap();
    if close {
        b.close().unwrap();
    } else {
        b.flush().unwrap();
        std::mem::forget(b); // a crash: no close, abort marker left
    }
    sent
}

/// Everything a user can read back: each group's deliveries (acked), and `get`.
fn read_all(b: &Broker, clock: &ManualClock, sent: &BTreeMap<String, String>) -> usize {
    let _ = clock;
    clock.advance_ms(3 * 3_600_000);
    b.tick().unwrap();
    let mut delivered = 0;
    for (group, topic) in [("r1", "a"), ("r2", "b"), ("g", "b"), ("dlq", "%DLQ%g")] {
        let Ok(c) = b.consumer(ConsumerConfig::new(group, topic)) else {
            continue;
        };
        for _ in 0..100 {
            let got = c.receive(64, Duration::ZERO).unwrap();
            if got.is_empty() {
                break;
            }
            for m in &got {
                assert!(intact(m), "a damaged message was delivered: {m:?}");
                c.ack(m).unwrap();
            }
            delivered += got.len();
        }
    }
    for (id, want) in sent {
        match b.get(id) {
            Ok(Some(m)) => assert_eq!(m.body_str(), Some(want.as_str()), "get({id})"),
            Ok(None) => {}
            Err(e) => assert_eq!(e.kind(), ErrorKind::StoreCorrupted, "get({id}): {e}"),
        }
    }
    let _ = b.query("a", "k1");
    let _ = b.stats();
    delivered
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    for f in files(from) {
        let rel = f.strip_prefix(from).unwrap();
        let dest = to.join(rel);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(&f, &dest).unwrap();
    }
}

/// The written length of a file: up to its last non-zero byte.
fn data_len(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1)
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    Flip(u32),
    Truncate(u32),
    ZeroAll,
    ZeroPage,
    Delete,
}

fn apply(path: &Path, d: Damage) {
    let mut bytes = fs::read(path).unwrap();
    let n = data_len(&bytes).max(1);
    match d {
        Damage::Flip(per_mille) => {
            if bytes.is_empty() {
                return;
            }
            let at = (n - 1) * per_mille as usize / 1000;
            bytes[at] ^= 0x10;
        }
        Damage::Truncate(per_mille) => bytes.truncate(n * per_mille as usize / 1000),
        Damage::ZeroAll => bytes.fill(0),
        Damage::ZeroPage => {
            let at = n / 2 / 4096 * 4096;
            let end = (at + 4096).min(bytes.len());
            bytes[at..end].fill(0);
        }
        Damage::Delete => {
            fs::remove_file(path).unwrap();
            return;
        }
    }
    fs::write(path, bytes).unwrap();
}

/// Aborts the process if a case runs longer than `limit`: a hang is a failure too.
fn watchdog(what: String, limit: Duration) -> Arc<AtomicBool> {
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while !flag.load(Ordering::SeqCst) {
            if start.elapsed() > limit {
                eprintln!("{what}: still running after {limit:?}");
                std::process::abort();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    done
}

fn matrix(clean: bool) {
    let pristine = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let sent = build(pristine.path(), &clock, clean);
    let all = files(pristine.path());
    // One file of each kind: every metadata file, the first, a middle and the last
    // CommitLog segment, the queues of a user topic, the schedule, the timer, the
    // half messages and a retry topic, and the timer links.
    let commitlog: Vec<&PathBuf> = all
        .iter()
        .filter(|p| p.starts_with(pristine.path().join("commitlog")))
        .collect();
    assert!(commitlog.len() >= 4, "{} segments", commitlog.len());
    let mut targets: Vec<PathBuf> = vec![
        commitlog[0].clone(),
        commitlog[commitlog.len() / 2].clone(),
        commitlog[commitlog.len() - 1].clone(),
    ];
    for p in &all {
        let rel = p
            .strip_prefix(pristine.path())
            .unwrap()
            .to_string_lossy()
            .to_string();
        let keep = !rel.starts_with("commitlog")
            && (!rel.starts_with("consumequeue")
                || [
                    "consumequeue/a/0/",
                    "consumequeue/SCHEDULE_TOPIC_XXXX/1/",
                    "consumequeue/rmq_sys_wheel_timer/0/",
                    "consumequeue/RMQ_SYS_TRANS_HALF_TOPIC/0/",
                    "consumequeue/%RETRY%g/0/",
                ]
                .iter()
                .any(|q| rel.starts_with(q)));
        // After a crash the log's recovery differs; the metadata's does not.
        let crash_relevant = rel == "checkpoint"
            || rel == "abort"
            || rel.starts_with("consumequeue/a/")
            || rel.starts_with("timerwheel");
        if keep && (clean || crash_relevant) {
            targets.push(p.clone());
        }
    }
    let damages = [
        Damage::Flip(0),
        Damage::Flip(400),
        Damage::Flip(1000),
        Damage::Truncate(0),
        Damage::Truncate(500),
        Damage::Truncate(999),
        Damage::ZeroAll,
        Damage::ZeroPage,
        Damage::Delete,
    ];
    let cases: Vec<(PathBuf, Damage)> = targets
        .iter()
        .flat_map(|t| {
            let rel = t.strip_prefix(pristine.path()).unwrap().to_path_buf();
            damages.iter().map(move |d| (rel.clone(), *d))
        })
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let outcomes = parking_lot::Mutex::new(BTreeMap::<String, usize>::new());
    // Cases wait on fsync more than on the CPU: run a few at a time.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((rel, damage)) = cases.get(i) else {
                    return;
                };
                let outcome = run_case(pristine.path(), rel, *damage, clean, &sent);
                *outcomes.lock().entry(outcome).or_default() += 1;
            });
        }
    });
    eprintln!("{} cases: {:?}", cases.len(), outcomes.lock());
}

/// One damaged copy of the pristine store: open, read everything, send, reopen.
fn run_case(
    pristine: &Path,
    rel: &Path,
    damage: Damage,
    clean: bool,
    sent: &BTreeMap<String, String>,
) -> String {
    let case = format!(
        "{} {rel:?} {damage:?}",
        if clean { "clean" } else { "crash" }
    );
    let work = tempfile::tempdir().unwrap();
    copy_dir(pristine, work.path());
    apply(&work.path().join(rel), damage);
    let done = watchdog(case.clone(), Duration::from_secs(60));
    let clock = ManualClock::new(T0 + 7_000);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        match open_at(work.path(), &clock) {
            Ok(b) => {
                read_all(&b, &clock, sent);
                // And it goes on working.
                b.producer("p")
                    .unwrap()
                    .send(Message::new("a", body(9999)))
                    .map_err(|e| format!("{case}: a send after recovery failed: {e}"))
                    .unwrap();
                b.close().unwrap();
                let b = open_at(work.path(), &clock).unwrap();
                read_all(&b, &clock, sent);
                b.close().unwrap();
                "recovered".to_string()
            }
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::StoreCorrupted | ErrorKind::Io),
                    "{case}: {e}"
                );
                format!("refused ({:?})", e.kind())
            }
        }
    }));
    done.store(true, Ordering::SeqCst);
    outcome.unwrap_or_else(|_| panic!("{case}: panicked"))
}

#[test]
fn every_kind_of_damage_after_a_clean_close() {
    matrix(true);
}

#[test]
fn every_kind_of_damage_after_a_crash() {
    matrix(false);
}

/// A flipped bit in a body is never delivered as intact (also after an unclean
/// exit): receive skips it, `get` reports it, stats count it.
#[test]
fn a_flipped_body_bit_is_never_delivered() {
    for clean in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let b = open_at(tmp.path(), &clock).unwrap();
        let p = b.producer("p").unwrap();
        let victim = p.send(Message::new("t", body(1))).unwrap();
        let good = p.send(Message::new("t", body(2))).unwrap();
        drop(p);
        let crashed;
        let dir = if clean {
            b.close().unwrap();
            tmp.path()
        } else {
            crashed = crash(b, tmp.path());
            crashed.path()
        };
        let seg = segment_of(dir, victim.commitlog_offset, SEG);
        let mut bytes = fs::read(&seg).unwrap();
        bytes[(victim.commitlog_offset % SEG) as usize + 95] ^= 1; // in the body
        fs::write(&seg, bytes).unwrap();
        let b = open_at(dir, &clock).unwrap();
        let got = drain(&consumer(&b, "g", "t"));
        assert_eq!(bodies(&got), vec![body(2)], "clean={clean}");
        let err = b.get(&victim.msg_id).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::StoreCorrupted);
        assert!(b.get(&good.msg_id).unwrap().is_some());
        assert!(b.stats().unwrap().corrupt_records >= 1);
    }
}

/// One bad record in an old segment costs that record, never the segments after it.
#[test]
fn damage_in_an_old_segment_keeps_every_later_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let b = open_at(tmp.path(), &clock).unwrap();
    let p = b.producer("p").unwrap();
    let sent: Vec<pocketmq::SendResult> = (0..400)
        .map(|i| p.send(Message::new("t", body(i))).unwrap())
        .collect();
    drop(p);
    let dir = crash(b, tmp.path());
    // Segments holding data (one may have been prepared ahead, empty).
    let segments = || {
        fs::read_dir(dir.path().join("commitlog"))
            .unwrap()
            .filter(|e| fs::read(e.as_ref().unwrap().path()).unwrap()[..8] != [0u8; 8])
            .count()
    };
    let before = segments();
    assert!(before >= 6, "{before} segments");
    let victim = &sent[60];
    let seg = segment_of(dir.path(), victim.commitlog_offset, SEG);
    let mut bytes = fs::read(&seg).unwrap();
    bytes[(victim.commitlog_offset % SEG) as usize + 100] ^= 4;
    fs::write(&seg, bytes).unwrap();
    let b = open_at(dir.path(), &clock).unwrap();
    assert_eq!(segments(), before, "no segment was deleted");
    let got = drain(&consumer(&b, "g", "t"));
    assert_eq!(got.len(), 399);
    assert!(got.iter().all(intact));
    assert!(b.stats().unwrap().corrupt_records >= 1);
}

#[test]
fn every_queue_of_a_topic_is_readable_after_a_crash_before_its_registration_was_written() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let b = open_at(tmp.path(), &clock).unwrap();
    // Auto-created with 4 queues; messages in queue 0 only.
    b.producer("p")
        .unwrap()
        .send(Message::builder("t", body(1)).queue_id(0).build())
        .unwrap();
    let dir = crash(b, tmp.path());
    fs::remove_file(dir.path().join("config").join("topics.json")).ok();
    let b = open_at(dir.path(), &clock).unwrap();
    let topics = b.topics().unwrap();
    let queues = topics.iter().find(|t| t.name == "t").unwrap().queues;
    for q in 0..queues {
        let got = b.browse("t", Some(q), None, 10).unwrap();
        assert_eq!(got.len(), usize::from(q == 0), "queue {q} of {queues}");
    }
    assert!(b.browse("t", Some(queues), None, 10).is_err());
}

/// 400 messages over several segments, closed cleanly; the results of the sends.
fn closed_store(dir: &Path, clock: &ManualClock) -> Vec<pocketmq::SendResult> {
    let b = open_at(dir, clock).unwrap();
    let p = b.producer("p").unwrap();
    let sent = (0..400)
        .map(|i| p.send(Message::new("t", body(i))).unwrap())
        .collect();
    drop(p);
    b.close().unwrap();
    sent
}

#[test]
fn a_zeroed_start_of_the_last_segment_loses_only_its_first_record() {
    // Zero first bytes read as a segment prepared ahead, empty; the checkpoint says
    // this one was written, so it is damage: skipped, the rest of it kept.
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let sent = closed_store(tmp.path(), &clock);
    let last = sent.last().unwrap().commitlog_offset;
    let seg = segment_of(tmp.path(), last - last % SEG, SEG);
    let mut bytes = fs::read(&seg).unwrap();
    bytes[..8].fill(0);
    fs::write(&seg, bytes).unwrap();
    let b = open_at(tmp.path(), &clock).unwrap();
    let got = drain(&consumer(&b, "g", "t"));
    assert_eq!(got.len(), 399);
    assert!(got.iter().all(intact));
    assert!(b.stats().unwrap().corrupt_records >= 1);
}

#[test]
fn a_missing_last_segment_loses_its_records_only() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let sent = closed_store(tmp.path(), &clock);
    let last = sent.last().unwrap().commitlog_offset;
    let base = last - last % SEG;
    // One segment prepared ahead of need follows it, empty.
    let log = tmp.path().join("commitlog");
    let after = format!("{:020}", base + SEG);
    if !log.join(&after).exists() {
        fs::write(log.join(&after), vec![0u8; SEG as usize]).unwrap();
    }
    fs::remove_file(segment_of(tmp.path(), base, SEG)).unwrap();
    let kept = sent.iter().filter(|r| r.commitlog_offset < base).count();
    assert!(kept >= 300, "{kept}");
    let b = open_at(tmp.path(), &clock).unwrap();
    let got = drain(&consumer(&b, "g", "t"));
    assert_eq!(got.len(), kept);
    assert!(got.iter().all(intact));
    // And the store goes on from there.
    b.producer("p")
        .unwrap()
        .send(Message::new("t", body(1000)))
        .unwrap();
    assert_eq!(drain(&consumer(&b, "g2", "t")).len(), kept + 1);
}

/// A record with a hostile header (a huge queue offset, CRC recomputed) neither
/// fills the disk nor hangs open; the store around it stays readable.
#[test]
fn a_forged_queue_offset_neither_fills_the_disk_nor_hangs() {
    for topic in ["t", "rmq_sys_wheel_timer"] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let phys = {
            let b = open_at(dir.path(), &clock).unwrap();
            let p = b.producer("p").unwrap();
            p.send(Message::new("t", body(1))).unwrap();
            let m = Message::builder("t", body(2));
            let m = if topic == "t" { m } else { m.delay_ms(60_000) };
            let r = p.send(m.build()).unwrap();
            p.send(Message::new("t", body(3))).unwrap();
            b.close().unwrap();
            r.commitlog_offset
        };
        forge_record(dir.path(), phys, SEG, |rec| {
            rec[20..28].copy_from_slice(&(1u64 << 40).to_be_bytes())
        });
        let done = watchdog(format!("forged {topic}"), Duration::from_secs(30));
        let b = open_at(dir.path(), &clock).unwrap();
        clock.advance_ms(120_000);
        b.tick().unwrap();
        let got = drain(&consumer(&b, "g", "t"));
        assert!(got.iter().all(intact));
        assert!(
            bodies(&got).contains(&body(3)),
            "{topic}: {:?}",
            bodies(&got)
        );
        b.close().unwrap();
        done.store(true, Ordering::SeqCst);
        let size: u64 = files(dir.path())
            .iter()
            .map(|f| fs::metadata(f).unwrap().len())
            .sum();
        assert!(size < 200 << 20, "{topic}: the store grew to {size} bytes");
    }
}

/// A segment cut a few bytes past its last record opens, keeps what it holds and
/// takes sends (it used to make every send panic).
#[test]
fn a_segment_cut_past_its_last_record_opens_and_takes_sends() {
    for cut in [4usize, 0, 100] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let last = {
            let b = open_at(dir.path(), &clock).unwrap();
            let p = b.producer("p").unwrap();
            let mut last = None;
            for i in 0..3 {
                last = Some(p.send(Message::new("t", body(i))).unwrap());
            }
            b.close().unwrap();
            last.unwrap()
        };
        let seg = segment_of(dir.path(), last.commitlog_offset, SEG);
        let bytes = fs::read(&seg).unwrap();
        let end = data_len(&bytes);
        fs::write(&seg, &bytes[..end + cut]).unwrap();
        let b = open_at(dir.path(), &clock).unwrap();
        let p = b.producer("p").unwrap();
        for i in 3..200 {
            p.send(Message::new("t", body(i))).unwrap();
        }
        let got = drain(&consumer(&b, "g", "t"));
        assert_eq!(got.len(), 200, "cut {cut}");
        assert!(got.iter().all(intact));
    }
}

/// Message ids do not depend on the checkpoint file.
#[test]
fn a_lost_checkpoint_keeps_every_msg_id() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let ids: Vec<String> = {
        let b = open_at(dir.path(), &clock).unwrap();
        let p = b.producer("p").unwrap();
        let ids = (0..5)
            .map(|i| p.send(Message::new("t", body(i))).unwrap().msg_id)
            .collect();
        b.close().unwrap();
        ids
    };
    for lost in ["checkpoint", "config/store.json"] {
        fs::remove_file(dir.path().join(lost)).unwrap();
        let b = open_at(dir.path(), &clock).unwrap();
        let group = lost.replace(['/', '.'], "-");
        for (i, id) in ids.iter().enumerate() {
            let m = b.get(id).unwrap().unwrap_or_else(|| panic!("{lost}: {id}"));
            assert_eq!(m.body_str(), Some(body(i as u32).as_str()));
        }
        let got = drain(&consumer(&b, &group, "t"));
        let mut got_ids: Vec<&str> = got.iter().map(|m| m.msg_id.as_str()).collect();
        got_ids.sort();
        let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
        want.sort();
        assert_eq!(got_ids, want);
        b.close().unwrap();
    }
}

/// An I/O error names the file it happened at: a metadata file that turned into a
/// directory (EISDIR on read) is refused with its path in the message.
#[test]
fn an_io_error_names_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(common::T0);
    {
        let b = open_at(dir.path(), &clock).unwrap();
        common::send(&b, "t", "x");
        b.close().unwrap();
    }
    let topics = dir.path().join("config/topics.json");
    std::fs::remove_file(&topics).unwrap();
    std::fs::create_dir(&topics).unwrap();
    let e = open_at(dir.path(), &clock).unwrap_err();
    assert_eq!(e.kind(), pocketmq::ErrorKind::Io, "{e}");
    assert!(e.to_string().contains("topics.json"), "{e}");
    std::fs::remove_dir(&topics).unwrap();
}
