//! What `lag` and `stats` cost with many delayed messages or retries waiting:
//! `cargo run --release -p pocketmq --example lag_probe -- N [level|timer|retried] [DIR]`.
//! `level` and `timer` send N delayed messages of 1 KiB (delay level 5, or timers an
//! hour ahead); `retried` sends N, nacks each, lets the retries reach
//! `%RETRY%<group>` and closes the consumer, leaving N retries unacked there. On a
//! memory store (or a file store at DIR), then times three rounds of `lag` and
//! `stats`. The first call reads each waiting delayed record once, to find the
//! retries among them; later calls do not.
#![allow(clippy::disallowed_methods)] // a profiling aid reads real time
use std::sync::Arc;
use std::time::Duration;

use pocketmq::{Broker, BrokerConfig, ConsumerConfig, ManualClock, Message};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let mode = args.next().unwrap_or_else(|| "level".to_string());
    let clock = ManualClock::new(1_764_000_000_000);
    let cfg = match args.next() {
        Some(dir) => BrokerConfig::at(std::path::Path::new(&dir)),
        None => BrokerConfig::default(),
    };
    let b = Broker::open(BrokerConfig {
        clock: Arc::new(clock.clone()),
        ..cfg
    })
    .unwrap();
    let p = b.producer("p").unwrap();
    let body = bytes::Bytes::from(vec![b'x'; 1024]);
    for i in 0..n {
        let m = Message::builder("t", body.clone());
        let m = match mode.as_str() {
            "timer" => m.delay_ms(3_600_000 + i),
            "level" => m.delay_level(5),
            _ => m,
        };
        p.send(m.build()).unwrap();
    }
    let cfg = ConsumerConfig {
        max_in_flight: 1 << 20,
        ..ConsumerConfig::new("g", "t")
    };
    let c = b.consumer(cfg).unwrap();
    if mode == "retried" {
        loop {
            let got = c.receive(1024, Duration::ZERO).unwrap();
            if got.is_empty() {
                break;
            }
            for m in &got {
                c.nack(m).unwrap();
            }
        }
        c.close().unwrap();
        clock.advance_ms(10_000);
        b.tick().unwrap();
    }
    for round in 1..=3 {
        let start = std::time::Instant::now();
        let lag = b.lag("g", "t").unwrap();
        let lag_time = start.elapsed();
        let start = std::time::Instant::now();
        b.stats().unwrap();
        println!(
            "round {round}: lag {lag} in {lag_time:?}, stats in {:?}",
            start.elapsed()
        );
    }
}
