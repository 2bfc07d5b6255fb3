//! A full disk, on a small tmpfs each test mounts for itself (skipped, saying so,
//! where it cannot mount): sends fail with `DiskFull`, never a signal; the store
//! stays readable and takes sends again once space returns; above
//! `disk_max_used_ratio` sends are refused before the disk is actually full; and a
//! store reopened on a full disk serves reads.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use pocketmq::{Broker, BrokerConfig, ErrorKind, ManualClock, Message};

/// A tmpfs of `mib` MiB mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mib: u32) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs here ({})",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount ({e})");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Fills the file system holding `dir` with `name`, until it is full (or `mib`).
fn fill(dir: &Path, name: &str, mib: Option<usize>) -> PathBuf {
    use std::io::Write;
    let path = dir.join(name);
    let mut f = fs::File::create(&path).unwrap();
    let chunk = vec![7u8; 1 << 20];
    let mut written = 0;
    while mib.is_none_or(|m| written < m) {
        if f.write_all(&chunk).is_err() {
            break;
        }
        written += 1;
    }
    let _ = f.sync_all();
    path
}

fn open(dir: &Path, clock: &ManualClock, ratio: f64) -> pocketmq::Result<Broker> {
    Broker::open(BrokerConfig {
        clock: Arc::new(clock.clone()),
        background: false,
        segment_size: Some(4 << 20),
        disk_max_used_ratio: ratio,
        // (RocketMQ's forced cleaning would make room by deleting old segments.)
        disk_clean_forcibly_ratio: 1.0,
        ..BrokerConfig::at(dir)
    })
}

fn body(i: usize) -> Vec<u8> {
    let mut b = vec![(i % 251) as u8; 64 << 10];
    b[..8].copy_from_slice(&(i as u64).to_be_bytes());
    b
}

fn check(m: &pocketmq::MessageExt) -> usize {
    let i = u64::from_be_bytes(m.body[..8].try_into().unwrap()) as usize;
    assert_eq!(&m.body[..], &body(i)[..], "message {i} reads back intact");
    i
}

#[test]
fn a_full_disk_is_an_error_on_send_and_the_store_recovers_when_space_returns() {
    let Some(fs_) = Tmpfs::mount(48) else { return };
    let store = fs_.path().join("store");
    let clock = ManualClock::new(T0);
    // Room that can be given back later.
    let spare = fill(fs_.path(), "spare", Some(8));
    let b = open(&store, &clock, 1.0).unwrap();
    b.create_topic("t", 1).unwrap();
    let p = b.producer("p").unwrap();
    let mut sent = 0;
    let err = loop {
        match p.send(Message::new("t", body(sent))) {
            Ok(_) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 10_000, "the disk never filled");
    };
    assert_eq!(err.kind(), ErrorKind::DiskFull, "{err}");
    assert!(sent > 100, "{sent} sends fitted");
    // Still full: refused again, nothing written; reads and due work go on.
    let again = p.send(Message::new("t", body(sent))).unwrap_err();
    assert_eq!(again.kind(), ErrorKind::DiskFull);
    b.tick().unwrap();
    let c = consumer(&b, "g", "t");
    let got = drain(&c);
    assert_eq!(got.len(), sent);
    assert!(got.iter().enumerate().all(|(i, m)| check(m) == i));
    // Space returns: sends go on where they stopped.
    fs::remove_file(&spare).unwrap();
    for i in sent..sent + 20 {
        p.send(Message::new("t", body(i))).unwrap();
    }
    let more = drain(&c);
    assert_eq!(more.len(), 20);
    drop(p);
    drop(c);
    b.close().unwrap();
    // Reopened on a full disk: it serves reads, refuses sends, closes cleanly.
    let filler = fill(fs_.path(), "filler", None);
    let b = open(&store, &clock, 1.0).expect("a full disk opens for reading");
    let got = drain(&consumer(&b, "g2", "t"));
    assert_eq!(got.len(), sent + 20);
    got.iter().for_each(|m| {
        check(m);
    });
    let refused = b
        .producer("p")
        .unwrap()
        .send(Message::new("t", body(0)))
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::DiskFull);
    b.close().unwrap();
    fs::remove_file(&filler).unwrap();
    let b = open(&store, &clock, 1.0).unwrap();
    b.producer("p")
        .unwrap()
        .send(Message::new("t", body(1)))
        .unwrap();
    assert_eq!(drain(&consumer(&b, "g3", "t")).len(), sent + 21);
}

#[test]
fn sends_stop_above_disk_max_used_ratio_and_resume_below_it() {
    let Some(fs_) = Tmpfs::mount(64) else { return };
    let store = fs_.path().join("store");
    let clock = ManualClock::new(T0);
    let b = open(&store, &clock, 0.6).unwrap();
    let p = b.producer("p").unwrap();
    p.send(Message::new("t", body(0))).unwrap();
    // Fill to about 80%: above the ratio, yet with room left.
    let used = fs_2_used(fs_.path());
    let to_fill = (0.8 - used) * 64.0;
    let filler = fill(fs_.path(), "filler", Some(to_fill.max(1.0) as usize));
    b.tick().unwrap();
    let err = p.send(Message::new("t", body(1))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DiskFull);
    assert!(err.to_string().contains("disk_max_used_ratio"), "{err}");
    // Nor does anything else that stores messages: an atomic block with a send,
    // a backlog drill (which creates no topic either).
    let mut tx = b.atomic().unwrap();
    tx.send(Message::new("out", body(3))).unwrap();
    assert_eq!(tx.commit().unwrap_err().kind(), ErrorKind::DiskFull);
    let held = consumer(&b, "held", "t");
    let drill = b.move_backlog("held", "t", "wide", Some(8), |_, _| true);
    assert_eq!(drill.unwrap_err().kind(), ErrorKind::DiskFull);
    assert!(b
        .topics()
        .unwrap()
        .iter()
        .all(|t| t.name != "wide" && t.name != "out"));
    assert_eq!(drain(&held).len(), 1, "the group was not moved");
    // Reads and deferred work go on.
    assert_eq!(drain(&consumer(&b, "g", "t")).len(), 1);
    fs::remove_file(&filler).unwrap();
    b.tick().unwrap();
    p.send(Message::new("t", body(2))).unwrap();
    std::thread::sleep(Duration::from_millis(1));
}

/// The used fraction of the file system holding `dir`, as `df` reports it.
fn fs_2_used(dir: &Path) -> f64 {
    let out = Command::new("df")
        .args(["--output=pcent"])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let pct: f64 = text
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    pct / 100.0
}

/// A ConsumeQueue gets its disk blocks as it fills: on a full disk, the send whose
/// entry needs the next chunk is `DiskFull`, with nothing stored, never a signal;
/// what was sent before reads back, and sends go on once space returns.
#[test]
fn a_queue_that_needs_room_on_a_full_disk_refuses_the_send() {
    let Some(fs_) = Tmpfs::mount(16) else { return };
    let store = fs_.path().join("store");
    let clock = ManualClock::new(T0);
    let b = open(&store, &clock, 1.0).unwrap();
    b.create_topic("t", 1).unwrap();
    let p = b.producer("p").unwrap();
    p.send(Message::new("t", "0")).unwrap();
    let cq = store.join("consumequeue/t/0/00000000000000000000");
    let blocks = {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(&cq).unwrap().blocks() * 512
    };
    assert!(blocks <= 256 << 10, "{blocks} bytes of disk for one entry");
    let filler = fill(fs_.path(), "filler", None);
    let mut sent = 1;
    let err = loop {
        match p.send(Message::new("t", sent.to_string())) {
            Ok(_) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 100_000, "the queue never needed room");
    };
    assert_eq!(err.kind(), ErrorKind::DiskFull, "{err}");
    // Refused for the queue's room: its first chunk (13,107 entries) was
    // allocated with it, the CommitLog segment has room for more.
    assert!(
        (13_000..=13_107).contains(&sent),
        "refused after {sent} sends"
    );
    let c = consumer(&b, "g", "t");
    let got = drain(&c);
    assert_eq!(got.len(), sent);
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, m)| m.body_str() == Some(&i.to_string())));
    fs::remove_file(&filler).unwrap();
    for i in sent..sent + 20_000 {
        p.send(Message::new("t", i.to_string())).unwrap();
    }
    let more = drain(&c);
    assert_eq!(more.len(), 20_000);
    assert!(more
        .iter()
        .enumerate()
        .all(|(i, m)| m.body_str() == Some(&(sent + i).to_string())));
    drop(p);
    drop(c);
    b.close().unwrap();
    let b = open(&store, &clock, 1.0).unwrap();
    assert_eq!(drain(&consumer(&b, "g2", "t")).len(), sent + 20_000);
}
