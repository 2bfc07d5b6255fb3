//! Operations benchmarks: the backlog drill (`move_backlog`) of 1 M 100 B messages on a
//! file store, and how long `browse` and `progress` take on a 1 GiB store. Each figure
//! is the median of several runs; the output ends with a markdown table for
//! BENCHMARKS.md.
//!
//! `cargo bench -p pocketmq --bench operations` (both), or name a section: `drill`,
//! `reads`. `POCKETMQ_BENCH_DIR` picks the disk (default `target/bench-data`).
#![allow(clippy::disallowed_methods)] // a benchmark reads real time

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pocketmq::{Broker, BrokerConfig, ConsumerConfig, Message};

const RUNS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn fresh(name: &str) -> PathBuf {
    let base = std::env::var_os("POCKETMQ_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench-data"));
    let d = base.join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&base).unwrap();
    d
}

fn open(dir: &Path) -> Broker {
    Broker::open(BrokerConfig::at(dir)).unwrap()
}

struct Row {
    what: String,
    value: String,
    target: &'static str,
    verdict: &'static str,
}

fn row(rows: &mut Vec<Row>, what: String, value: String, target: &'static str, met: Option<bool>) {
    let verdict = match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "reported",
    };
    println!("{what}: {value}  (target {target}: {verdict})");
    rows.push(Row {
        what,
        value,
        target,
        verdict,
    });
}

/// CPU time of this thread, in seconds (the machine is shared: wall time varies).
fn thread_cpu() -> f64 {
    // SAFETY: clock_gettime writes one timespec, which all-zero bytes initialise.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a valid clock id and a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// 1 M messages of 100 B over 1,000 sharding keys, in 4 queues.
fn fill_million(b: &Broker) -> u64 {
    b.create_topic("orders", 4).unwrap();
    let p = b.producer("bench").unwrap();
    let body = bytes::Bytes::from(vec![b'x'; 100]);
    let mut n = 0u64;
    while n < 1_000_000 {
        let key = format!("customer-{}", n / 100 % 1000);
        let batch: Vec<Message> = (0..100)
            .map(|_| {
                Message::builder("orders", body.clone())
                    .sharding_key(key.clone())
                    .build()
            })
            .collect();
        p.send_batch(batch).unwrap();
        n += 100;
    }
    n
}

fn drill(rows: &mut Vec<Row>) {
    let dir = fresh("drill");
    let b = open(&dir);
    let n = fill_million(&b);
    b.close().unwrap();
    let mut rates = Vec::new();
    let mut cpu_rates = Vec::new();
    let mut steps = 0u64;
    for run in 0..RUNS {
        // Each run is a group of its own, whose whole backlog is the million.
        let b = open(&dir);
        let group = format!("g{run}");
        let cpu = thread_cpu();
        let start = Instant::now();
        let mut copied_at = start;
        let moved = b
            .move_backlog(&group, "orders", &format!("wide{run}"), Some(16), |_, _| {
                steps += 1;
                copied_at = Instant::now();
                true
            })
            .unwrap();
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(moved, n);
        assert_eq!(b.lag(&group, "orders").unwrap(), 0);
        let copying = (copied_at - start).as_secs_f64();
        let cpu = thread_cpu() - cpu;
        println!(
            "  run {run}: {moved} moved in {secs:.3} s (copying {copying:.3} s, then flush and offsets {:.3} s; {cpu:.3} s of CPU)",
            secs - copying,
        );
        rates.push(moved as f64 / secs);
        cpu_rates.push(moved as f64 / cpu);
        b.close().unwrap();
    }
    let r = median(rates);
    row(
        rows,
        format!(
            "move_backlog of 1 M 100 B messages (4 queues, 1,000 sharding keys) to 16 queues, file store, async flush ({} steps a run)",
            steps / RUNS as u64
        ),
        format!(
            "{:.0} k msgs/s (median wall time; {:.0} k msgs/s of the calling thread's CPU time)",
            r / 1000.0,
            median(cpu_rates) / 1000.0
        ),
        ">= 500 k msgs/s",
        Some(r >= 500_000.0),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A 1 GiB store: 1 KiB bodies with a key each, in 4 queues.
fn fill_gib(dir: &Path) -> u64 {
    let b = open(dir);
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

/// Latencies of timed calls, in ms.
#[derive(Default)]
struct Latencies(Vec<f64>);

impl Latencies {
    /// Times `calls` calls of `f`.
    fn time(&mut self, calls: usize, mut f: impl FnMut(usize)) {
        for i in 0..calls {
            let start = Instant::now();
            f(i);
            self.0.push(start.elapsed().as_secs_f64() * 1000.0);
        }
    }

    fn at(&self, q: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[((v.len() - 1) as f64 * q) as usize]
    }

    fn report(&self) -> String {
        format!(
            "median {:.3} ms, p99 {:.2} ms, max {:.2} ms ({} calls)",
            self.at(0.5),
            self.at(0.99),
            self.at(1.0),
            self.0.len()
        )
    }
}

fn reads(rows: &mut Vec<Row>) {
    let dir = fresh("reads");
    let n = fill_gib(&dir);
    let b = open(&dir);
    // A group half way through the topic, with some in flight.
    let c = b.consumer(ConsumerConfig::new("g", "big")).unwrap();
    let mut got = 0;
    while got < n / 2 {
        let msgs = c.receive(256, Duration::ZERO).unwrap();
        c.ack_all(&msgs).unwrap();
        got += msgs.len() as u64;
    }
    let _inflight = c.receive(32, Duration::ZERO).unwrap();
    let per_queue = n / 4;
    let (mut all, mut one, mut progress) = (
        Latencies::default(),
        Latencies::default(),
        Latencies::default(),
    );
    for _ in 0..RUNS {
        all.time(200, |_| {
            assert_eq!(b.browse("big", None, None, 32).unwrap().len(), 32);
        });
        // One queue at offsets spread over the whole store (mostly cold pages).
        one.time(200, |i| {
            let at = (i as u64 * 7919) % per_queue;
            let got = b.browse("big", Some((i % 4) as u32), Some(at), 32).unwrap();
            assert!(!got.is_empty());
        });
        progress.time(200, |_| {
            assert_eq!(b.progress("g", "big").unwrap().len(), 4);
        });
    }
    let gib = format!("on a 1 GiB store ({n} messages of 1 KiB, 4 queues)");
    for (what, l) in [
        ("browse of 32 messages, all queues from the oldest", &all),
        (
            "browse of 32 messages of one queue at offsets spread over the store",
            &one,
        ),
        ("progress of a group half way through, 4 queues", &progress),
    ] {
        let p99 = l.at(0.99);
        row(
            rows,
            format!("{what}, {gib}"),
            l.report(),
            "< 10 ms (judged on p99)",
            Some(p99 < 10.0),
        );
    }
    drop(c);
    b.close().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |s: &str| args.is_empty() || args.iter().any(|a| a == s);
    let mut rows = Vec::new();
    if want("drill") {
        drill(&mut rows);
    }
    if want("reads") {
        reads(&mut rows);
    }
    println!();
    println!("| figure | measured ({RUNS} runs) | target | |");
    println!("|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} |",
            r.what, r.value, r.target, r.verdict
        );
    }
}
