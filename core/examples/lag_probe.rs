//! What `lag` and `stats` cost with many delayed messages waiting:
//! `cargo run --release -p pocketmq --example lag_probe -- N [level|timer] [DIR]`.
//! Sends N delayed messages of 1 KiB (delay level 5, or timers an hour ahead) to a
//! memory store (or a file store at DIR), then times three rounds of `lag` and
//! `stats`. The first call reads each waiting record once, to find the retries among
//! them; later calls do not.
#![allow(clippy::disallowed_methods)] // a profiling aid reads real time
use pocketmq::{Broker, BrokerConfig, ConsumerConfig, Message};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let timers = args.next().as_deref() == Some("timer");
    let cfg = match args.next() {
        Some(dir) => BrokerConfig::at(std::path::Path::new(&dir)),
        None => BrokerConfig::default(),
    };
    let b = Broker::open(cfg).unwrap();
    let p = b.producer("p").unwrap();
    let body = bytes::Bytes::from(vec![b'x'; 1024]);
    for i in 0..n {
        let m = Message::builder("t", body.clone());
        let m = if timers {
            m.delay_ms(3_600_000 + i)
        } else {
            m.delay_level(5)
        };
        p.send(m.build()).unwrap();
    }
    let _c = b.consumer(ConsumerConfig::new("g", "t")).unwrap();
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
