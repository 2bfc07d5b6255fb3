//! Sends with a dedup id against plain sends, memory store, in alternating pairs:
//! `cargo run --release -p pocketmq --example dedup_probe -- IDS PAIRS`.
//! Each run sends IDS messages of 100 B from one thread to a new broker (the ids are
//! made before the clock starts); prints ns per send of each run and the median ratio.
//! A third argument, `plain` or `dedup`, runs that kind alone (to profile).
#![allow(clippy::disallowed_methods)]
use pocketmq::{Broker, Message};

fn run(ids: &[String], dedup: bool) -> f64 {
    let b = Broker::memory();
    let p = b.producer("p").unwrap();
    let body = bytes::Bytes::from(vec![b'x'; 100]);
    p.send(Message::new("bench", body.clone())).unwrap();
    let start = std::time::Instant::now();
    for id in ids {
        let m = if dedup {
            Message::builder("bench", body.clone())
                .dedup_id(id.clone())
                .build()
        } else {
            // The same String made and dropped, so the plain run pays for it too.
            drop(id.clone());
            Message::new("bench", body.clone())
        };
        p.send(m).unwrap();
    }
    start.elapsed().as_nanos() as f64 / ids.len() as f64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(300_000, |a| a.parse().unwrap());
    let pairs: usize = args.get(2).map_or(5, |a| a.parse().unwrap());
    let ids: Vec<String> = (0..n).map(|i| format!("order-{i}")).collect();
    if let Some(only) = args.get(3) {
        for _ in 0..pairs {
            println!("{only} {:.0} ns", run(&ids, only == "dedup"));
        }
        return;
    }
    let mut ratios = Vec::new();
    for _ in 0..pairs {
        let plain = run(&ids, false);
        let dedup = run(&ids, true);
        println!(
            "plain {plain:.0} ns, dedup {dedup:.0} ns: {:.0}%",
            100.0 * plain / dedup
        );
        ratios.push(plain / dedup);
    }
    ratios.sort_by(f64::total_cmp);
    println!("median ratio {:.0}%", 100.0 * ratios[ratios.len() / 2]);
}
