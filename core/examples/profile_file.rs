//! Single 1 KiB sends to a file store with async flush, for profilers:
//! `cargo run --release -p pocketmq --example profile_file -- DIR MIB [BATCH]`.
#![allow(clippy::disallowed_methods)]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&args[1]);
    let mib: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(512);
    let _ = std::fs::remove_dir_all(&dir);
    let b = pocketmq::Broker::open(pocketmq::BrokerConfig::at(&dir)).unwrap();
    let p = b.producer("p").unwrap();
    let body = bytes::Bytes::from(vec![b'x'; 1024]);
    let n = (mib << 20) / 1024;
    let start = std::time::Instant::now();
    let batch: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(1);
    for _ in 0..n / batch {
        if batch == 1 {
            p.send(pocketmq::Message::new("bench", body.clone()))
                .unwrap();
        } else {
            let msgs = (0..batch)
                .map(|_| pocketmq::Message::new("bench", body.clone()))
                .collect();
            p.send_batch(msgs).unwrap();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{:.0} MB/s", (n * 1024) as f64 / secs / 1e6);
    b.close().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
