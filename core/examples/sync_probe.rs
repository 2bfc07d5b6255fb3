//! Sync-flush group commit under concurrent writers:
//! `cargo run --release -p pocketmq --example sync_probe -- DIR THREADS [PER]`.
//! First, as the baseline of the same minute, a single thread appends 500 x 1 KiB to a
//! file in DIR with an fdatasync after each; then THREADS writers send PER (1000) x 1 KiB
//! each with flush="sync". Prints both rates and their ratio.
#![allow(clippy::disallowed_methods)]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&args[1]);
    let threads: usize = args[2].parse().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let loop_rate = fdatasync_loop(&dir, 500);
    let b = pocketmq::Broker::open(pocketmq::BrokerConfig {
        flush: pocketmq::FlushMode::Sync,
        ..pocketmq::BrokerConfig::at(&dir)
    })
    .unwrap();
    let per: usize = args.get(3).map_or(1000, |s| s.parse().unwrap());
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
    let rate = (threads * per) as f64 / secs;
    println!(
        "fdatasync loop {loop_rate:.0} appends/s; {threads} sync writers {rate:.0} msgs/s = {:.1}x the loop",
        rate / loop_rate
    );
}

/// Appends of 1 KiB, each followed by fdatasync, from one thread: appends/s.
fn fdatasync_loop(dir: &std::path::Path, n: usize) -> f64 {
    use std::io::Write;
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("loop.bin");
    let mut f = std::fs::File::create(&path).unwrap();
    let buf = [7u8; 1024];
    let start = std::time::Instant::now();
    for _ in 0..n {
        f.write_all(&buf).unwrap();
        f.sync_data().unwrap();
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(path).unwrap();
    rate
}
