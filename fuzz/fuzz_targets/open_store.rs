//! Opening a store whose files were mutated (a store directory packed as the input,
//! see `src/archive.rs`), then reading everything back and writing a little: the
//! broker opens or refuses with a typed error, and never panics or hangs.
#![no_main]

#[path = "../src/archive.rs"]
mod archive;

use std::sync::Arc;
use std::time::Duration;

use pocketmq::{Broker, BrokerConfig, ConsumerConfig, ManualClock, Message};

const T0: u64 = 1_764_000_000_000;

fn scratch() -> std::path::PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!("pocketmq-fuzz-{}", std::process::id()))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = scratch();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    archive::unpack(data, &dir);
    let clock = ManualClock::new(T0 + 10_000);
    let opened = Broker::open(BrokerConfig {
        clock: Arc::new(clock.clone()),
        background: false,
        ..BrokerConfig::at(&dir)
    });
    let Ok(b) = opened else { return };
    let topics = b
        .topics()
        .map(|t| t.into_iter().map(|t| t.name).collect::<Vec<_>>());
    for topic in topics.unwrap_or_default().iter().take(8) {
        if let Ok(c) = b.consumer(ConsumerConfig::new("fuzz", topic.as_str())) {
            for _ in 0..50 {
                match c.receive(64, Duration::ZERO) {
                    Ok(got) if !got.is_empty() => {
                        for m in &got {
                            let _ = b.get(&m.msg_id);
                            if let Some(k) = m.keys.first() {
                                let _ = b.query(topic, k);
                            }
                        }
                        let _ = c.nack(&got[0]);
                        let _ = c.ack_all(&got);
                    }
                    _ => break,
                }
            }
        }
        let _ = b.lag("fuzz", topic);
    }
    clock.advance_ms(3 * 86_400_000);
    let _ = b.tick();
    let _ = b.stats();
    if let Ok(p) = b.producer("fuzz") {
        let _ = p.send(Message::new("after", "x"));
    }
    let _ = b.close();
});
