//! Resident memory at each stage of filling, reopening and reading a store:
//! `cargo run --release -p pocketmq --example rss_probe -- DIR MIB`.
use std::time::Duration;

fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
        / 1024
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&args[1]);
    let mib: u64 = args[2].parse().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    println!("start: {} MiB", rss());
    {
        let b = pocketmq::Broker::open(pocketmq::BrokerConfig::at(&dir)).unwrap();
        let p = b.producer("p").unwrap();
        let body = bytes::Bytes::from(vec![b'y'; 1024]);
        for i in 0..(mib << 20) / 1160 {
            p.send(
                pocketmq::Message::builder("big", body.clone())
                    .key(format!("k{i}"))
                    .build(),
            )
            .unwrap();
        }
        println!("filled: {} MiB", rss());
        b.close().unwrap();
    }
    println!("closed: {} MiB", rss());
    let b = pocketmq::Broker::open(pocketmq::BrokerConfig::at(&dir)).unwrap();
    println!("reopened: {} MiB", rss());
    let c = b
        .consumer(pocketmq::ConsumerConfig::new("r", "big"))
        .unwrap();
    let mut n = 0u64;
    let mut peak = 0;
    loop {
        let msgs = c.receive(256, Duration::ZERO).unwrap();
        if msgs.is_empty() {
            break;
        }
        for m in &msgs {
            c.ack(m).unwrap();
        }
        n += msgs.len() as u64;
        if n % 65536 < 256 {
            peak = peak.max(rss());
            if std::env::var_os("TICK").is_some() {
                b.tick().unwrap();
            }
        }
    }
    println!("read {n}: peak {peak} MiB, end {} MiB", rss());
}
