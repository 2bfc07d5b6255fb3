//! Sync-flush group commit under concurrent writers:
//! `cargo run --release -p pocketmq --example sync_probe -- DIR THREADS`.
#![allow(clippy::disallowed_methods)]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&args[1]);
    let threads: usize = args[2].parse().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let b = pocketmq::Broker::open(pocketmq::BrokerConfig {
        flush: pocketmq::FlushMode::Sync,
        ..pocketmq::BrokerConfig::at(&dir)
    })
    .unwrap();
    let per = 1000;
    // The first segment is created (and zeroed) before timing starts.
    b.producer("p")
        .unwrap()
        .send(pocketmq::Message::new("t", "warm"))
        .unwrap();
    let start = std::time::Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|_| {
            let b = b.clone();
            std::thread::spawn(move || {
                let p = b.producer("p").unwrap();
                for _ in 0..per {
                    p.send(pocketmq::Message::new("t", vec![b'x'; 1024]))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{} msgs/s", (threads * per) as f64 / secs);
}
