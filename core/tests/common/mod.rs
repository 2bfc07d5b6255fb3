//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use pocketmq::{Broker, BrokerConfig, Consumer, ConsumerConfig, ManualClock, Message, MessageExt};

pub const T0: u64 = 1_764_000_000_000;

/// An in-memory broker on a manual clock, with no background thread.
pub fn manual() -> (Broker, ManualClock) {
    let clock = ManualClock::new(T0);
    let cfg = BrokerConfig {
        clock: Arc::new(clock.clone()),
        background: false,
        ..BrokerConfig::default()
    };
    (Broker::open(cfg).unwrap(), clock)
}

/// A file broker at `dir` on `clock`.
pub fn file(dir: &std::path::Path, clock: &ManualClock) -> Broker {
    Broker::open(file_config(dir, clock)).unwrap()
}

/// The config of `file`, for tests that change a setting.
pub fn file_config(dir: &std::path::Path, clock: &ManualClock) -> BrokerConfig {
    BrokerConfig {
        clock: Arc::new(clock.clone()),
        background: false,
        // Tests of other things hold however full the machine's disk is.
        disk_max_used_ratio: 1.0,
        disk_clean_forcibly_ratio: 1.0,
        ..BrokerConfig::at(dir)
    }
}

/// `file_config` with 64 KiB segments, so that a test can copy the store cheaply.
pub fn small_file_config(dir: &std::path::Path, clock: &ManualClock) -> BrokerConfig {
    BrokerConfig {
        segment_size: Some(64 * 1024),
        ..file_config(dir, clock)
    }
}

/// How many sequences a model-based test runs: `MODEL_CASES` when set, else
/// `default`.
pub fn model_cases(default: u32) -> u32 {
    std::env::var("MODEL_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default)
}

/// A consumer that may hold any number of unacked messages (flow control has its
/// own tests), so a test can drain a topic without acking.
pub fn consumer(b: &Broker, group: &str, topic: &str) -> Consumer {
    let cfg = ConsumerConfig {
        max_in_flight: 1 << 20,
        ..ConsumerConfig::new(group, topic)
    };
    b.consumer(cfg).unwrap()
}

/// Everything the consumer can get now (no waiting).
pub fn drain(c: &Consumer) -> Vec<MessageExt> {
    let mut all = Vec::new();
    loop {
        let got = c.receive(64, Duration::ZERO).unwrap();
        if got.is_empty() {
            return all;
        }
        all.extend(got);
    }
}

pub fn bodies(msgs: &[MessageExt]) -> Vec<String> {
    msgs.iter()
        .map(|m| m.body_str().unwrap_or("?").to_string())
        .collect()
}

pub fn send(b: &Broker, topic: &str, body: &str) -> pocketmq::SendResult {
    b.producer("p")
        .unwrap()
        .send(Message::new(topic, body.to_string()))
        .unwrap()
}

/// Sends `n` messages to `topic`, their bodies `prefix` and 0, 1, 2, ... in order.
pub fn send_numbered(b: &Broker, topic: &str, prefix: &str, n: usize) {
    let p = b.producer("p").unwrap();
    for i in 0..n {
        p.send(Message::new(topic, format!("{prefix}{i}"))).unwrap();
    }
}

/// The CommitLog segment file holding `phys` in a store of `seg_size` segments.
pub fn segment_of(dir: &std::path::Path, phys: u64, seg_size: u64) -> std::path::PathBuf {
    dir.join("commitlog")
        .join(format!("{:020}", phys - phys % seg_size))
}

/// Rewrites the record at `phys` in place with `edit` (which must keep its length)
/// and recomputes its CRCs, as someone with write access to the store could: the
/// engine must treat what it reads back as input. The broker must be closed.
pub fn forge_record(
    dir: &std::path::Path,
    phys: u64,
    seg_size: u64,
    edit: impl FnOnce(&mut Vec<u8>),
) {
    let path = segment_of(dir, phys, seg_size);
    let mut seg = std::fs::read(&path).unwrap();
    let at = (phys % seg_size) as usize;
    let total = u32::from_be_bytes(seg[at..at + 4].try_into().unwrap()) as usize;
    let mut rec = seg[at..at + total].to_vec();
    edit(&mut rec);
    assert_eq!(rec.len(), total, "a forged record keeps its length");
    let body_len = u32::from_be_bytes(rec[84..88].try_into().unwrap()) as usize;
    let body_crc = crc32fast::hash(&rec[88..88 + body_len]) & 0x7FFF_FFFF;
    rec[8..12].copy_from_slice(&body_crc.to_be_bytes());
    let digits = total - 11;
    let crc = crc32fast::hash(&rec[..digits]) & 0x7FFF_FFFF;
    rec[digits..digits + 10].copy_from_slice(format!("{crc:010}").as_bytes());
    seg[at..at + total].copy_from_slice(&rec);
    std::fs::write(&path, seg).unwrap();
}

/// Replaces the value of property `name` in an encoded record (same length).
pub fn replace_property(rec: &mut [u8], name: &str, value: &str) {
    let needle: Vec<u8> = [name.as_bytes(), b"\x01"].concat();
    let at = rec
        .windows(needle.len())
        .rposition(|w| w == needle.as_slice())
        .unwrap_or_else(|| panic!("no property {name}"))
        + needle.len();
    let end = at + rec[at..].iter().position(|b| *b == 2).unwrap();
    assert_eq!(end - at, value.len(), "{name}: same length only");
    rec[at..end].copy_from_slice(value.as_bytes());
}

/// `s` padded with `x` to `len` bytes.
pub fn padded(s: &str, len: usize) -> String {
    format!("{s}{}", "x".repeat(len - s.len()))
}

/// Copies a store's files as they are now, without its lock: what a crash at this
/// moment would leave (a test opens the copy while the original stays open).
pub fn copy_store(from: &std::path::Path, to: &std::path::Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_store(&e.path(), &target);
        } else if e.file_name() != "lock" {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Runs the test `child` of this test binary as a process of its own, with `var`
/// naming `dir`; reads its output until a line holds `marker`, then kills it
/// (SIGKILL) and returns what followed the marker on that line.
pub fn kill_child_after(child: &str, var: &str, dir: &std::path::Path, marker: &str) -> String {
    use std::io::BufRead;
    let mut proc = std::process::Command::new(std::env::current_exe().unwrap())
        .args([child, "--exact", "--nocapture", "--test-threads=1"])
        .env(var, dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = proc.stdout.take().unwrap();
    let said = std::io::BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.split(marker).nth(1).map(str::to_string));
    proc.kill().unwrap();
    proc.wait().unwrap();
    said.unwrap_or_else(|| panic!("{child} never printed {marker:?}"))
}
