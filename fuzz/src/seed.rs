//! Writes the seed corpus (`fuzz/corpus/<target>/`): real stores packed for
//! `open_store` (clean and crashed, with delays, timers, transactions, retries and
//! several segments), their records for `record`, tag expressions for `tags`.
//! Run from the repository root: `cargo run --manifest-path fuzz/Cargo.toml --bin seed`.

#[path = "archive.rs"]
mod archive;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pocketmq::{
    Broker, BrokerConfig, ConsumerConfig, ManualClock, Message, MessageExt, TransactionListener,
    TxState,
};

const T0: u64 = 1_764_000_000_000;

struct Unknown;
impl TransactionListener for Unknown {
    fn check(&self, _: &MessageExt) -> TxState {
        TxState::Unknown
    }
}

/// A store with a bit of everything, closed cleanly or left as a crash leaves it
/// (the last one after a crash before that).
fn store(dir: &Path, variant: u32) {
    let clock = ManualClock::new(T0);
    let b = Broker::open(BrokerConfig {
        clock: Arc::new(clock.clone()),
        background: false,
        segment_size: Some(8192),
        ..BrokerConfig::at(dir)
    })
    .unwrap();
    b.create_topic("orders", 2).unwrap();
    let p = b.producer("p").unwrap();
    for i in 0..(10 + variant * 15) {
        let mut m = Message::builder(
            if i % 3 == 0 { "audit" } else { "orders" },
            format!("body-{i}"),
        )
        .tags(["paid", "shipped", "Aa"][i as usize % 3])
        .key(format!("k{i}"));
        if i % 7 == 3 {
            m = m.delay_level(1 + i % 3);
        }
        if i % 7 == 5 {
            m = m.delay_ms(5_000 + i as u64 * 100);
        }
        if i % 11 == 0 {
            m = m.property("color", "blue").sharding_key("order-1");
        }
        p.send(m.build()).unwrap();
    }
    let tp = b.transaction_producer("tx", Arc::new(Unknown)).unwrap();
    tp.send(Message::new("orders", "half"), |_| TxState::Unknown)
        .unwrap();
    tp.send(Message::new("orders", "committed"), |_| TxState::Commit)
        .unwrap();
    let c = b.consumer(ConsumerConfig::new("g", "orders")).unwrap();
    let got = c.receive(8, Duration::ZERO).unwrap();
    if let Some((first, rest)) = got.split_first() {
        c.nack(first).unwrap();
        // The next one stays unacked: the offsets file keeps the acks above it.
        if let Some((_, acked)) = rest.split_first() {
            c.ack_all(acked).unwrap();
        }
    }
    clock.advance_ms(3_000);
    b.tick().unwrap();
    drop(c);
    if variant % 2 == 0 || variant == 3 {
        b.close().unwrap();
    } else {
        b.flush().unwrap();
        std::mem::forget(b);
    }
    if variant == 3 {
        // As a crash leaves it, opened again and written to, then crashed again: the
        // store's files list a second message-id nonce, from where the log was
        // recovered.
        std::fs::write(dir.join("abort"), b"1").unwrap();
        let b = Broker::open(BrokerConfig {
            clock: Arc::new(clock.clone()),
            background: false,
            ..BrokerConfig::at(dir)
        })
        .unwrap();
        let p = b.producer("p").unwrap();
        p.send(Message::new("orders", "after the crash")).unwrap();
        b.flush().unwrap();
        std::mem::forget(b);
    }
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), data).unwrap();
}

fn main() {
    let corpus = Path::new("fuzz/corpus");
    for variant in 0..4 {
        let tmp =
            std::env::temp_dir().join(format!("pocketmq-seed-{}-{variant}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        store(&tmp, variant);
        write(
            &corpus.join("open_store"),
            &format!("store-{variant}"),
            &archive::pack(&tmp),
        );
        // The records of its first segment, one per seed, for the decoder.
        if variant == 0 {
            let seg = std::fs::read(tmp.join("commitlog").join(format!("{:020}", 0))).unwrap();
            let mut at = 0usize;
            let mut n = 0;
            while at + 8 <= seg.len() && n < 12 {
                let total = u32::from_be_bytes(seg[at..at + 4].try_into().unwrap()) as usize;
                if total < 8
                    || at + total > seg.len()
                    || seg[at + 4..at + 8] == [0xCB, 0xD4, 0x31, 0x94]
                {
                    break;
                }
                let mut seed = (at as u64).to_be_bytes().to_vec();
                seed.extend_from_slice(&seg[at..at + total]);
                write(&corpus.join("record"), &format!("record-{n}"), &seed);
                at += total;
                n += 1;
            }
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }
    for (i, t) in [
        "*",
        "",
        "paid",
        "paid || shipped",
        " a ||b|| c ",
        "Aa",
        "BB",
        "a || ",
        "||",
        "* || x",
        "日本 || ü",
    ]
    .iter()
    .enumerate()
    {
        let mut seed = t.as_bytes().to_vec();
        seed.push(0);
        seed.extend_from_slice(b"TAGS\x01paid\x02KEYS\x01k1 k2\x02color\x01blue\x02");
        write(&corpus.join("tags"), &format!("tags-{i}"), &seed);
    }
    println!("seed corpus written under {}", corpus.display());
}
