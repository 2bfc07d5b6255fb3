//! System-level benchmarks with baselines measured in the same run: append throughput
//! against a plain write loop, sync group commit against a write+fdatasync loop,
//! end-to-end throughput, long-poll wake-up latency, open and recovery time of a
//! 1 GiB store, resident memory while reading it, and timers. Each figure is the
//! median of several runs; the output is a markdown table for BENCHMARKS.md.
//!
//! `cargo bench -p pocketmq --bench system` (all), or name sections as arguments:
//! `append sync e2e latency consumers exactly-once open scale timers`. `POCKETMQ_BENCH_DIR`
//! picks the disk.
#![allow(clippy::disallowed_methods)] // a benchmark reads real time and starts threads

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pocketmq::{Broker, BrokerConfig, ConsumerConfig, FlushMode, ManualClock, Message};

mod shared {
    pub mod e2e;
}

const RUNS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn bench_dir() -> PathBuf {
    let base = std::env::var_os("POCKETMQ_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench-data"));
    std::fs::create_dir_all(&base).unwrap();
    base
}

fn fresh(name: &str) -> PathBuf {
    let d = bench_dir().join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Row {
    what: String,
    value: String,
    target: String,
    verdict: String,
}

fn row(rows: &mut Vec<Row>, what: &str, value: String, target: &str, met: Option<bool>) {
    let verdict = match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "reported",
    };
    println!("{what}: {value}  (target {target}: {verdict})");
    rows.push(Row {
        what: what.into(),
        value,
        target: target.into(),
        verdict: verdict.into(),
    });
}

/// Lets the kernel write back what earlier runs left dirty, so each measurement
/// starts from the same state instead of paying for its predecessor's writeback.
fn settle() {
    let _ = std::process::Command::new("sync").status();
}

/// Plain buffered write loop of 1 KiB records: MB/s.
fn write_loop_mbps(dir: &Path, total: usize) -> f64 {
    settle();
    let path = dir.join("plain.bin");
    let buf = vec![7u8; 1024];
    let start = Instant::now();
    {
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&path).unwrap());
        for _ in 0..total / 1024 {
            w.write_all(&buf).unwrap();
        }
        w.flush().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(path);
    total as f64 / secs / 1e6
}

/// 1 KiB write + fdatasync loop: appends/s.
fn fdatasync_loop(dir: &Path, n: usize) -> f64 {
    let path = dir.join("sync.bin");
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let buf = vec![7u8; 1024];
    let start = Instant::now();
    for _ in 0..n {
        f.write_all(&buf).unwrap();
        f.sync_data().unwrap();
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(path);
    rate
}

fn open_file(dir: &Path, flush: FlushMode) -> Broker {
    Broker::open(BrokerConfig {
        flush,
        ..BrokerConfig::at(dir)
    })
    .unwrap()
}

/// Sends `n` messages of `body` to topic "bench", `batch` per call; returns seconds.
fn send_n(b: &Broker, body: &bytes::Bytes, n: usize, batch: usize) -> f64 {
    let p = b.producer("bench").unwrap();
    let start = Instant::now();
    for _ in 0..n / batch {
        if batch == 1 {
            p.send(Message::new("bench", body.clone())).unwrap();
        } else {
            let msgs: Vec<Message> = (0..batch)
                .map(|_| Message::new("bench", body.clone()))
                .collect();
            p.send_batch(msgs).unwrap();
        }
    }
    start.elapsed().as_secs_f64()
}

/// Receives (256 at a time) and acks until nothing is left; returns the count.
fn drain_acking(c: &pocketmq::Consumer) -> u64 {
    let mut got = 0;
    loop {
        let msgs = c.receive(256, Duration::ZERO).unwrap();
        if msgs.is_empty() {
            return got;
        }
        c.ack_all(&msgs).unwrap();
        got += msgs.len() as u64;
    }
}

/// MB/s of writing `total` bytes of 1 KiB messages to a fresh async file store,
/// `batch` messages per call.
fn file_send_mbps(d: &Path, total: usize, batch: usize) -> f64 {
    settle();
    let mbps = send_mbps(open_file(d, FlushMode::Async), total, batch);
    let _ = std::fs::remove_dir_all(d);
    mbps
}

/// MB/s of sending `total` bytes of 1 KiB messages to `b`, `batch` per call; closes it.
fn send_mbps(b: Broker, total: usize, batch: usize) -> f64 {
    let body = bytes::Bytes::from(vec![b'x'; 1024]);
    let n = total / 1024;
    let secs = send_n(&b, &body, n, batch);
    b.close().unwrap();
    (n - n % batch) as f64 * 1024.0 / secs / 1e6
}

/// MB/s of sending `total` bytes of 1 KiB messages to a memory store, `batch` per
/// call: the same engine work as `file_send_mbps` without a file, so the ceiling of
/// the file store's ratio to the write loop.
fn memory_send_mbps(total: usize, batch: usize) -> f64 {
    settle();
    send_mbps(Broker::memory(), total, batch)
}

fn append(rows: &mut Vec<Row>) {
    // This machine's page-cache write speed swings several-fold from minute to minute
    // (it depends on how the host supplies memory), so the plain loop runs right
    // before each store run, and the ratio is taken against the median of all of them.
    let total = 512 << 20;
    let dir = fresh("append");
    std::fs::create_dir_all(&dir).unwrap();
    let (mut base, mut single, mut batched) = (Vec::new(), Vec::new(), Vec::new());
    let (mut mem_single, mut mem_batched) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        let plain = write_loop_mbps(&dir, total);
        let one = file_send_mbps(&dir.join(format!("single{run}")), total, 1);
        mem_single.push(memory_send_mbps(total, 1));
        let plain2 = write_loop_mbps(&dir, total);
        let many = file_send_mbps(&dir.join(format!("batch{run}")), total, 64);
        mem_batched.push(memory_send_mbps(total, 64));
        base.extend([plain, plain2]);
        single.push(one);
        batched.push(many);
    }
    let plain = median(base.clone());
    let (one, many) = (median(single), median(batched));
    let (r1, r64) = (one / plain, many / plain);
    row(
        rows,
        "plain buffered write loop, 1 KiB (baseline)",
        format!(
            "{:.0} MB/s (runs from {:.0} to {:.0})",
            median(base.clone()),
            base.iter().cloned().fold(f64::MAX, f64::min),
            base.iter().cloned().fold(0.0, f64::max)
        ),
        "-",
        None,
    );
    row(
        rows,
        "file store, async flush, single send 1 KiB",
        format!("{one:.0} MB/s = {:.0}% of the write loop", r1 * 100.0),
        ">= 70% of the write loop",
        Some(r1 >= 0.7),
    );
    row(
        rows,
        "file store, async flush, send_batch of 64 x 1 KiB",
        format!("{many:.0} MB/s = {:.0}% of the write loop", r64 * 100.0),
        ">= 70% of the write loop",
        Some(r64 >= 0.7),
    );
    // The same sends with no file: what the engine's per-message work alone allows.
    for (what, runs) in [
        ("memory store (no file), single send 1 KiB", mem_single),
        (
            "memory store (no file), send_batch of 64 x 1 KiB",
            mem_batched,
        ),
    ] {
        let m = median(runs);
        row(
            rows,
            what,
            format!("{m:.0} MB/s = {:.0}% of the write loop", m / plain * 100.0),
            "- (the file store's ceiling)",
            None,
        );
    }

    // Memory store, one thread, batches of 100 x 100 B, then single sends; each run
    // after the file runs' dirty pages are written back, not while they are.
    let body = bytes::Bytes::from(vec![b'x'; 100]);
    let rate = |n: usize, batch: usize| {
        settle();
        let b = Broker::memory();
        let r = n as f64 / send_n(&b, &body, n, batch);
        b.close().unwrap();
        r
    };
    let rates: Vec<f64> = (0..RUNS).map(|_| rate(3_000_000, 100)).collect();
    let r = median(rates);
    row(
        rows,
        "memory store, one thread, send_batch of 100 x 100 B",
        format!("{:.2} M msgs/s", r / 1e6),
        ">= 4 M msgs/s",
        Some(r >= 4e6),
    );
    let rates: Vec<f64> = (0..RUNS).map(|_| rate(1_000_000, 1)).collect();
    row(
        rows,
        "memory store, one thread, single send 100 B",
        format!("{:.2} M msgs/s", median(rates) / 1e6),
        "-",
        None,
    );
}

fn sync(rows: &mut Vec<Row>) {
    let dir = fresh("sync");
    std::fs::create_dir_all(&dir).unwrap();
    let mut base = Vec::new();
    let mut ours = Vec::new();
    for run in 0..RUNS {
        base.push(fdatasync_loop(&dir, 2000));
        let d = dir.join(format!("store{run}"));
        let b = open_file(&d, FlushMode::Sync);
        let per = 2000;
        let start = Instant::now();
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    let p = b.producer("bench").unwrap();
                    let body = bytes::Bytes::from(vec![b'x'; 1024]);
                    for _ in 0..per {
                        let r = p.send(Message::new("bench", body.clone())).unwrap();
                        assert_eq!(r.status, pocketmq::SendStatus::SendOk);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        ours.push(16.0 * per as f64 / start.elapsed().as_secs_f64());
        b.close().unwrap();
        let _ = std::fs::remove_dir_all(&d);
    }
    let (base, ours) = (median(base), median(ours));
    row(
        rows,
        "1 KiB write + fdatasync loop (baseline)",
        format!("{base:.0} appends/s"),
        "-",
        None,
    );
    row(
        rows,
        "file store, sync flush, 16 writers, 1 KiB",
        format!("{ours:.0} msgs/s = {:.1}x the fdatasync loop", ours / base),
        ">= 10x the fdatasync loop",
        Some(ours >= 10.0 * base),
    );
}

fn e2e_run(batch_ack: bool) -> f64 {
    shared::e2e::run(&Broker::memory(), 2_000_000, batch_ack).rate
}

fn e2e(rows: &mut Vec<Row>) {
    let r = median((0..RUNS).map(|_| e2e_run(false)).collect());
    row(
        rows,
        "memory store, 1 producer + 1 consumer thread, 100 B, receive(32) + ack each",
        format!("{:.2} M msgs/s", r / 1e6),
        ">= 1.5 M msgs/s",
        Some(r >= 1.5e6),
    );
    let r = median((0..RUNS).map(|_| e2e_run(true)).collect());
    row(
        rows,
        "the same, acking each batch with ack_all",
        format!("{:.2} M msgs/s", r / 1e6),
        ">= 1.5 M msgs/s",
        Some(r >= 1.5e6),
    );
}

/// 1 producer (send_batch of 32) and 4 receiving threads, receive(32) + ack of
/// each batch: a simple consumer group (all four share it) or a classic one (four
/// members).
fn consumers_run(simple: bool) -> f64 {
    let n: usize = 2_000_000;
    let b = Broker::memory();
    b.create_topic("bench", 4).unwrap();
    let start = Instant::now();
    let pb = b.clone();
    let producer = std::thread::spawn(move || {
        let p = pb.producer("bench").unwrap();
        let body = bytes::Bytes::from(vec![b'x'; 100]);
        for _ in 0..n / 32 {
            p.send_batch(
                (0..32)
                    .map(|_| Message::new("bench", body.clone()))
                    .collect(),
            )
            .unwrap();
        }
    });
    let got = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sc = Arc::new(
        b.simple_consumer(pocketmq::SimpleConsumerConfig::new("s", "bench"))
            .unwrap(),
    );
    let receivers: Vec<_> = (0..4)
        .map(|_| {
            let (b, got, sc) = (b.clone(), got.clone(), sc.clone());
            std::thread::spawn(move || {
                let c = (!simple).then(|| b.consumer(ConsumerConfig::new("g", "bench")).unwrap());
                while got.load(std::sync::atomic::Ordering::Relaxed) < n {
                    let msgs = match &c {
                        Some(c) => c.receive(32, Duration::from_millis(20)).unwrap(),
                        None => sc.receive(32, Duration::from_millis(20)).unwrap(),
                    };
                    match &c {
                        Some(c) => c.ack_all(&msgs).unwrap(),
                        None => sc.ack_all(&msgs).unwrap(),
                    }
                    got.fetch_add(msgs.len(), std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    producer.join().unwrap();
    for r in receivers {
        r.join().unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn consumers(rows: &mut Vec<Row>) {
    let simple = median((0..RUNS).map(|_| consumers_run(true)).collect());
    let classic = median((0..RUNS).map(|_| consumers_run(false)).collect());
    row(
        rows,
        "simple consumer, memory store, 100 B, 1 producer (batches of 32) + 4 receiving threads, receive(32) + ack",
        format!(
            "{:.2} M msgs/s (classic group of 4 in the same run: {:.2} M)",
            simple / 1e6,
            classic / 1e6
        ),
        ">= 1 M msgs/s",
        Some(simple >= 1e6),
    );
    // 1 M deliveries invisible at once, then all of them expiring.
    let n = 1_000_000;
    let clock = ManualClock::new(1_764_000_000_000);
    let b = Broker::open(BrokerConfig {
        clock: Arc::new(clock.clone()),
        background: false,
        ..BrokerConfig::default()
    })
    .unwrap();
    let p = b.producer("bench").unwrap();
    let body = bytes::Bytes::from(vec![b'x'; 100]);
    for _ in 0..n / 100 {
        p.send_batch(
            (0..100)
                .map(|_| Message::new("bench", body.clone()))
                .collect(),
        )
        .unwrap();
    }
    let sc = b
        .simple_consumer(pocketmq::SimpleConsumerConfig {
            invisible_duration_ms: 60_000,
            ..pocketmq::SimpleConsumerConfig::new("s", "bench")
        })
        .unwrap();
    settle();
    let before = rss_kib();
    let mut held = 0;
    while held < n {
        let got = sc.receive(1024, Duration::ZERO).unwrap();
        assert!(!got.is_empty());
        held += got.len();
    }
    settle();
    let added = rss_kib().saturating_sub(before) as f64 / 1024.0;
    row(
        rows,
        "1 M simple consumer deliveries invisible at once: resident memory added",
        format!("{added:.0} MiB"),
        "<= 64 MiB",
        Some(added <= 64.0),
    );
    clock.advance_ms(60_000);
    let start = Instant::now();
    let mut again = 0;
    while again < n {
        let got = sc.receive(1024, Duration::ZERO).unwrap();
        assert!(!got.is_empty(), "stalled at {again}");
        sc.ack_all(&got).unwrap();
        again += got.len();
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    row(
        rows,
        "the same 1 M expiring: delivered again (and acked)",
        format!("{:.0} k msgs/s", rate / 1e3),
        ">= 200 k msgs/s",
        Some(rate >= 2e5),
    );
}

/// Anonymous resident memory (heap), KiB: excludes the mapped store files.
fn rss_anon_kib() -> u64 {
    status_kib("RssAnon:")
}

/// The environment variable that makes this binary measure `dedup_heap_mib` alone.
const DEDUP_HEAP_ENV: &str = "POCKETMQ_BENCH_DEDUP_HEAP";

/// `dedup_heap_mib` in a fresh process of this binary: in this one, heap that earlier
/// sections freed is reused and hides what the window adds.
fn dedup_heap_mib_apart(with_ids: bool) -> f64 {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env(DEDUP_HEAP_ENV, if with_ids { "with" } else { "without" })
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Heap added by 1 M sends to a file store (whose records are mapped, not heap),
/// with or without a dedup id each.
fn dedup_heap_mib(with_ids: bool) -> f64 {
    let dir = bench_dir().join(format!("dedup-{with_ids}"));
    let _ = std::fs::remove_dir_all(&dir);
    let b = Broker::open(BrokerConfig {
        segment_size: Some(1 << 30),
        ..BrokerConfig::at(&dir)
    })
    .unwrap();
    let p = b.producer("bench").unwrap();
    let body = bytes::Bytes::from(vec![b'x'; 100]);
    // The topic and its queues exist before the measure.
    p.send(Message::new("bench", body.clone())).unwrap();
    let before = rss_anon_kib();
    for i in 0..1_000_000u64 / 100 {
        let batch = (0..100)
            .map(|j| {
                let m = Message::builder("bench", body.clone());
                if with_ids {
                    m.dedup_id(format!("order-{}", i * 100 + j)).build()
                } else {
                    m.build()
                }
            })
            .collect();
        p.send_batch(batch).unwrap();
    }
    let added = rss_anon_kib().saturating_sub(before) as f64 / 1024.0;
    b.close().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    added
}

/// Atomic blocks of one ack and one send: a consumer receives 32 at a time, and
/// each message is acked in a block that also sends one message.
fn atomic_blocks_per_s(n: usize) -> f64 {
    let b = Broker::memory();
    b.create_topic("in", 4).unwrap();
    let p = b.producer("bench").unwrap();
    let body = bytes::Bytes::from(vec![b'x'; 100]);
    for _ in 0..n / 100 {
        p.send_batch((0..100).map(|_| Message::new("in", body.clone())).collect())
            .unwrap();
    }
    let c = b
        .consumer(ConsumerConfig {
            max_in_flight: 1 << 20,
            ..ConsumerConfig::new("g", "in")
        })
        .unwrap();
    let start = Instant::now();
    let mut done = 0;
    while done < n {
        let got = c.receive(32, Duration::ZERO).unwrap();
        assert!(!got.is_empty(), "stalled at {done}");
        for m in &got {
            let mut tx = b.atomic().unwrap();
            tx.send(Message::new("out", body.clone())).unwrap();
            tx.ack(&c, m).unwrap();
            tx.commit().unwrap();
        }
        done += got.len();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// One `send_batch` of `n` small messages, with a dedup id each or without: seconds.
fn dedup_batch_secs(n: usize, with_ids: bool) -> f64 {
    let b = Broker::memory();
    let p = b.producer("bench").unwrap();
    let batch: Vec<Message> = (0..n)
        .map(|i| {
            let m = Message::builder("t", "x");
            let m = if with_ids {
                m.dedup_id(format!("id-{i}"))
            } else {
                m
            };
            m.build()
        })
        .collect();
    let start = Instant::now();
    p.send_batch(batch).unwrap();
    start.elapsed().as_secs_f64()
}

/// One atomic block that acks `n` received messages and sends one: seconds from the
/// first ack added to the commit.
fn large_block_secs(n: usize) -> f64 {
    let b = Broker::memory();
    let p = b.producer("bench").unwrap();
    for _ in 0..n / 100 {
        p.send_batch((0..100).map(|_| Message::new("in", "x")).collect())
            .unwrap();
    }
    let c = b
        .consumer(ConsumerConfig {
            max_in_flight: n,
            ..ConsumerConfig::new("g", "in")
        })
        .unwrap();
    let mut got = Vec::new();
    while got.len() < n {
        got.extend(c.receive(n, Duration::ZERO).unwrap());
    }
    let start = Instant::now();
    let mut tx = b.atomic().unwrap();
    for m in &got {
        tx.ack(&c, m).unwrap();
    }
    tx.send(Message::new("out", "done")).unwrap();
    tx.commit().unwrap();
    start.elapsed().as_secs_f64()
}

fn exactly_once(rows: &mut Vec<Row>) {
    let without = dedup_heap_mib_apart(false);
    let with = dedup_heap_mib_apart(true);
    let cost = (with - without).max(0.0);
    row(
        rows,
        "1 M dedup ids inside the window: heap added over the same sends without ids (file store)",
        format!("{cost:.0} MiB ({with:.0} MiB with ids, {without:.0} MiB without)"),
        "<= 64 MiB",
        Some(cost <= 64.0),
    );
    let rate = median((0..RUNS).map(|_| atomic_blocks_per_s(500_000)).collect());
    row(
        rows,
        "atomic block of 1 ack + 1 send, memory store, 100 B (receive(32) included)",
        format!("{:.0} k blocks/s", rate / 1e3),
        ">= 500 k blocks/s",
        Some(rate >= 5e5),
    );
    let n = 50_000;
    let plain = median((0..RUNS).map(|_| dedup_batch_secs(n, false)).collect());
    let ids = median((0..RUNS).map(|_| dedup_batch_secs(n, true)).collect());
    row(
        rows,
        "one send_batch of 50,000 x 1 B with a dedup id each, memory store",
        format!(
            "{:.1} ms = {:.1}x the same batch without ids ({:.1} ms)",
            ids * 1e3,
            ids / plain,
            plain * 1e3
        ),
        "report (linear in the batch)",
        None,
    );
    let secs = median((0..RUNS).map(|_| large_block_secs(10_000)).collect());
    row(
        rows,
        "one atomic block acking 10,000 received messages and sending one, memory store",
        format!("{:.1} ms from the first ack to the commit", secs * 1e3),
        "report (linear in the block)",
        None,
    );
}

/// Seconds for `stats()` with `n` groups on one topic, each with committed offsets.
fn stats_of_groups_secs(n: usize) -> f64 {
    let b = Broker::memory();
    b.producer("bench")
        .unwrap()
        .send(Message::new("t", "x"))
        .unwrap();
    for i in 0..n {
        let c = b
            .consumer(ConsumerConfig::new(format!("g{i}"), "t"))
            .unwrap();
        for m in c.receive(1, Duration::ZERO).unwrap() {
            c.ack(&m).unwrap();
        }
        c.close().unwrap();
    }
    let start = Instant::now();
    let stats = b.stats().unwrap();
    let took = start.elapsed().as_secs_f64();
    assert_eq!(stats.groups.len(), n);
    took
}

/// Seconds for `n` members of one group to join a topic of 64 queues, each receive
/// once, and leave.
fn members_secs(n: usize, model: pocketmq::MessageModel) -> f64 {
    let b = Broker::memory();
    b.create_topic("t", 64).unwrap();
    let start = Instant::now();
    let members: Vec<_> = (0..n)
        .map(|_| {
            b.consumer(ConsumerConfig {
                model,
                ..ConsumerConfig::new("g", "t")
            })
            .unwrap()
        })
        .collect();
    for c in &members {
        c.receive(1, Duration::ZERO).unwrap();
    }
    for c in &members {
        c.close().unwrap();
    }
    start.elapsed().as_secs_f64()
}

/// How the engine's bookkeeping grows with groups and members: each row at two sizes,
/// four times apart, so a cost that grows faster than the count shows.
fn scale(rows: &mut Vec<Row>) {
    let at = |f: &dyn Fn(usize) -> f64, n: usize| median((0..RUNS).map(|_| f(n)).collect());
    let (a, b) = (
        at(&stats_of_groups_secs, 500),
        at(&stats_of_groups_secs, 2000),
    );
    row(
        rows,
        "`stats()` with 500 and 2,000 groups on one topic, memory store",
        format!(
            "{:.1} ms, {:.1} ms ({:.1}x for 4x the groups)",
            a * 1e3,
            b * 1e3,
            b / a
        ),
        "report",
        None,
    );
    for (name, model) in [
        ("clustering", pocketmq::MessageModel::Clustering),
        ("broadcasting", pocketmq::MessageModel::Broadcasting),
    ] {
        let f = |n| members_secs(n, model);
        let (a, b) = (at(&f, 100), at(&f, 400));
        row(
            rows,
            &format!("100 and 400 {name} members of one group joining a topic of 64 queues, receiving once, leaving"),
            format!("{:.1} ms, {:.1} ms ({:.1}x for 4x the members)", a * 1e3, b * 1e3, b / a),
            "report",
            None,
        );
    }
}

fn latency(rows: &mut Vec<Row>) {
    let b = Broker::memory();
    b.create_topic("ping", 1).unwrap();
    let c = b.consumer(ConsumerConfig::new("g", "ping")).unwrap();
    let samples = 2000;
    let pb = b.clone();
    let (tx, rx) = std::sync::mpsc::channel::<Instant>();
    let producer = std::thread::spawn(move || {
        let p = pb.producer("bench").unwrap();
        for _ in 0..samples {
            std::thread::sleep(Duration::from_micros(300));
            let sent = Instant::now();
            p.send(Message::new("ping", "x")).unwrap();
            tx.send(sent).unwrap();
        }
    });
    let mut lat = Vec::with_capacity(samples);
    for _ in 0..samples {
        let msgs = c.receive(1, Duration::from_secs(5)).unwrap();
        let now = Instant::now();
        assert_eq!(msgs.len(), 1);
        c.ack(&msgs[0]).unwrap();
        let sent = rx.recv().unwrap();
        lat.push(now.saturating_duration_since(sent).as_secs_f64() * 1e6);
    }
    producer.join().unwrap();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p50 = lat[lat.len() / 2];
    let p99 = lat[lat.len() * 99 / 100];
    row(
        rows,
        "long-poll wake-up, send to receive return",
        format!("p50 {p50:.0} us, p99 {p99:.0} us"),
        "p99 < 1 ms",
        Some(p99 < 1000.0),
    );
}

fn fill_gib(dir: &Path) -> u64 {
    let b = open_file(dir, FlushMode::Async);
    b.create_topic("big", 4).unwrap();
    let p = b.producer("bench").unwrap();
    let body = bytes::Bytes::from(vec![b'y'; 1024]);
    let mut n = 0;
    while n < (1u64 << 30) / 1160 {
        let batch: Vec<Message> = (0..64)
            .map(|i| {
                Message::builder("big", body.clone())
                    .key(format!("k{}", n + i))
                    .build()
            })
            .collect();
        p.send_batch(batch).unwrap();
        n += 64;
    }
    b.close().unwrap();
    n
}

fn open(rows: &mut Vec<Row>) {
    let dir = fresh("gib");
    let n = fill_gib(&dir);
    let mut opens = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let b = open_file(&dir, FlushMode::Async);
        opens.push(start.elapsed().as_secs_f64());
        b.close().unwrap();
    }
    let t = median(opens);
    row(
        rows,
        &format!("clean open of a 1 GiB store ({n} messages, keys indexed)"),
        format!("{:.0} ms", t * 1000.0),
        "< 1 s",
        Some(t < 1.0),
    );
    let mut recovers = Vec::new();
    for _ in 0..RUNS {
        // An unclean exit: the abort marker is left behind, as after kill -9.
        std::fs::write(dir.join("abort"), b"1").unwrap();
        let _ = std::fs::remove_file(dir.join("checkpoint"));
        let start = Instant::now();
        let b = open_file(&dir, FlushMode::Async);
        recovers.push(start.elapsed().as_secs_f64());
        b.close().unwrap();
    }
    let t = median(recovers);
    row(
        rows,
        "recovery of a 1 GiB store after an unclean exit (every CRC checked)",
        format!("{:.0} ms", t * 1000.0),
        "report",
        None,
    );
    // Resident memory while opening and reading everything, above the process's
    // baseline before the store is opened.
    let base = rss_kib();
    let b = open_file(&dir, FlushMode::Async);
    let c = b.consumer(ConsumerConfig::new("reader", "big")).unwrap();
    let mut peak = base;
    let mut got = 0u64;
    let mut sum = 0u64;
    loop {
        let msgs = c.receive(256, Duration::ZERO).unwrap();
        if msgs.is_empty() {
            break;
        }
        for m in &msgs {
            sum += m.body[0] as u64;
            c.ack(m).unwrap();
        }
        got += msgs.len() as u64;
        if got % (64 * 1024) < 256 {
            peak = peak.max(rss_kib());
            b.tick().unwrap();
        }
    }
    peak = peak.max(rss_kib());
    assert_eq!(got, n);
    assert_eq!(sum, n * b'y' as u64);
    let above = (peak.saturating_sub(base)) as f64 / 1024.0;
    row(
        rows,
        "resident memory above baseline while reading the 1 GiB store",
        format!("{above:.0} MiB (index of {n} keys included)"),
        "< 100 MiB",
        Some(above < 100.0),
    );
    b.close().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

fn timers(rows: &mut Vec<Row>) {
    let clock = ManualClock::new(1_764_000_000_000);
    let dir = fresh("timers");
    let b = Broker::open(BrokerConfig {
        clock: Arc::new(clock.clone()),
        background: false,
        ..BrokerConfig::at(&dir)
    })
    .unwrap();
    b.create_topic("later", 4).unwrap();
    let c = b.consumer(ConsumerConfig::new("g", "later")).unwrap();
    let p = b.producer("bench").unwrap();
    let n = 1_000_000u64;
    let (base, base_anon) = (rss_kib(), rss_anon_kib());
    let start = Instant::now();
    for i in 0..n {
        // Spread over a day, in shuffled order.
        let delay = (i * 7919 % n) * 86_400 + 1000;
        p.send(
            Message::builder("later", "t")
                .delay_ms(delay / 1000)
                .build(),
        )
        .unwrap();
    }
    let send_rate = n as f64 / start.elapsed().as_secs_f64();
    let resident = rss_kib().saturating_sub(base) as f64 / 1024.0;
    let heap = rss_anon_kib().saturating_sub(base_anon) as f64 / 1024.0;
    assert_eq!(b.stats().unwrap().pending_delayed, n);
    clock.advance_ms(86_400_000 + 2000);
    let start = Instant::now();
    b.tick().unwrap();
    let got = drain_acking(&c);
    let deliver_rate = n as f64 / start.elapsed().as_secs_f64();
    assert_eq!(got, n);
    row(
        rows,
        "1 M pending deliver-at timers (file store): heap added (all resident memory added, mapped CommitLog pages included), send rate",
        format!(
            "{heap:.0} MiB ({resident:.0} MiB), {:.0} k sends/s",
            send_rate / 1e3
        ),
        "report (no per-timer heap entries)",
        None,
    );
    row(
        rows,
        "1 M timers coming due at once: delivered and received",
        format!("{:.0} k msgs/s", deliver_rate / 1e3),
        "report",
        None,
    );
    b.close().unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    let (b, clock) = {
        let clock = ManualClock::new(1_764_000_000_000);
        let b = Broker::open(BrokerConfig {
            clock: Arc::new(clock.clone()),
            background: false,
            ..BrokerConfig::default()
        })
        .unwrap();
        (b, clock)
    };
    let c = b.consumer(ConsumerConfig::new("g", "later")).unwrap();
    let p = b.producer("bench").unwrap();
    let n = 100_000u64;
    let start = Instant::now();
    for i in 0..n {
        p.send(
            Message::builder("later", "d")
                .delay_level(1 + (i % 18) as u32)
                .build(),
        )
        .unwrap();
    }
    let send_rate = n as f64 / start.elapsed().as_secs_f64();
    clock.advance_ms(3 * 3_600_000);
    let start = Instant::now();
    b.tick().unwrap();
    assert_eq!(drain_acking(&c), n);
    row(
        rows,
        "100 k delay-level messages (memory store): send, then due and received",
        format!(
            "{:.0} k sends/s, {:.0} k msgs/s delivered",
            send_rate / 1e3,
            n as f64 / start.elapsed().as_secs_f64() / 1e3
        ),
        "report",
        None,
    );
}

fn main() {
    if let Ok(which) = std::env::var(DEDUP_HEAP_ENV) {
        println!("{}", dedup_heap_mib(which == "with"));
        return;
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |s: &str| args.is_empty() || args.iter().any(|a| a == s);
    let mut rows = Vec::new();
    if want("append") {
        append(&mut rows);
    }
    if want("sync") {
        sync(&mut rows);
    }
    if want("e2e") {
        e2e(&mut rows);
    }
    if want("latency") {
        latency(&mut rows);
    }
    if want("consumers") {
        consumers(&mut rows);
    }
    if want("exactly-once") {
        exactly_once(&mut rows);
    }
    if want("open") {
        open(&mut rows);
    }
    if want("scale") {
        scale(&mut rows);
    }
    if want("timers") {
        timers(&mut rows);
    }
    println!();
    println!("| figure | measured (median of {RUNS}) | target | |");
    println!("|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} |",
            r.what, r.value, r.target, r.verdict
        );
    }
}
