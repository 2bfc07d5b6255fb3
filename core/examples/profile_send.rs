//! Sends on the memory store, then receiving and acking them, for profilers:
//! `cargo run --release -p pocketmq --example profile_send -- 20000 [send-only|single|keys|props|dedup|dedup-prepared|tx|simple|atomic|e2e|e2e-all]`.
//! `e2e` is the system bench's end-to-end loop: single sends on a thread of their
//! own while this one receives 32 at a time and acks each (4 queues); its rate, the
//! mean messages a receive took and when the producer finished go to stderr.
//! `e2e-all` acks each batch with `ack_all` instead.
//! `keys` and `props` are single sends with one key (`order-N`) or two user properties;
//! `dedup` with a dedup id each (`order-N`), and `dedup-prepared` the same through
//! `Producer::prepare_dedup` and `send_prepared`, as the Python binding sends them;
//! `tx` transactional sends, each committed by its `execute`.
//! The count is of batches of 100 (`single`: of 100 single sends each), so both
//! modes move the same messages and instruction counts compare per message. The
//! sends' wall-clock rate goes to stderr.
#![allow(clippy::disallowed_methods)] // a profiling aid reads real time
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let batches: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let mode = args.get(2).map(String::as_str).unwrap_or("");
    let b = pocketmq::Broker::memory();
    let p = b.producer("bench").unwrap();
    let body = bytes::Bytes::from(vec![b'x'; 100]);
    if mode == "e2e" || mode == "e2e-all" {
        end_to_end(&b, batches * 100, mode == "e2e-all");
        return;
    }
    let tx = b
        .transaction_producer(
            "bench-tx",
            std::sync::Arc::new(|_: &pocketmq::MessageExt| pocketmq::TxState::Commit),
        )
        .unwrap();
    let mut n_sent = 0usize;
    let start = std::time::Instant::now();
    for _ in 0..batches {
        if mode == "single" {
            for _ in 0..100 {
                p.send(pocketmq::Message::new("bench", body.clone()))
                    .unwrap();
            }
            continue;
        }
        if mode == "keys" || mode == "props" {
            for i in 0..100 {
                let m = pocketmq::Message::builder("bench", body.clone());
                let m = match mode {
                    "keys" => m.keys([format!("order-{}", n_sent + i)]),
                    _ => m.property("origin", "web").property("region", "eu-west"),
                };
                p.send(m.build()).unwrap();
            }
            n_sent += 100;
            continue;
        }
        if mode == "dedup" || mode == "dedup-prepared" {
            for i in 0..100 {
                let id = format!("order-{}", n_sent + i);
                if mode == "dedup" {
                    let m = pocketmq::Message::builder("bench", body.clone()).dedup_id(id);
                    p.send(m.build()).unwrap();
                } else {
                    let prepared = p.prepare_dedup("bench", &id);
                    let m = pocketmq::Message::builder("bench", body.clone()).dedup_id(id);
                    p.send_prepared(m.build(), prepared).unwrap();
                }
            }
            n_sent += 100;
            continue;
        }
        if mode == "tx" {
            for _ in 0..100 {
                tx.send(pocketmq::Message::new("bench", body.clone()), |_| {
                    pocketmq::TxState::Commit
                })
                .unwrap();
            }
            continue;
        }
        let batch: Vec<pocketmq::Message> = (0..100)
            .map(|_| pocketmq::Message::new("bench", body.clone()))
            .collect();
        p.send_batch(batch).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "sent {} messages in {secs:.3} s: {:.2} M msgs/s",
        batches * 100,
        (batches * 100) as f64 / secs / 1e6
    );
    if mode == "send-only"
        || mode == "dedup"
        || mode == "dedup-prepared"
        || mode == "keys"
        || mode == "props"
        || mode == "tx"
        || (mode == "single" && args.len() > 3)
    {
        return;
    }
    if mode == "atomic" {
        let c = b
            .consumer(pocketmq::ConsumerConfig {
                max_in_flight: 1 << 20,
                ..pocketmq::ConsumerConfig::new("g", "bench")
            })
            .unwrap();
        let mut n = 0;
        loop {
            let m = c.receive(32, std::time::Duration::ZERO).unwrap();
            if m.is_empty() {
                break;
            }
            for x in &m {
                let mut tx = b.atomic().unwrap();
                tx.send(pocketmq::Message::new("out", body.clone()))
                    .unwrap();
                tx.ack(&c, x).unwrap();
                tx.commit().unwrap();
            }
            n += m.len();
        }
        assert_eq!(n, batches * 100);
        return;
    }
    if mode == "simple" {
        let c = b
            .simple_consumer(pocketmq::SimpleConsumerConfig::new("s", "bench"))
            .unwrap();
        let mut n = 0;
        loop {
            let m = c.receive(32, std::time::Duration::ZERO).unwrap();
            if m.is_empty() {
                break;
            }
            c.ack_all(&m).unwrap();
            n += m.len();
        }
        assert_eq!(n, batches * 100);
        return;
    }
    let c = b
        .consumer(pocketmq::ConsumerConfig::new("g", "bench"))
        .unwrap();
    let mut n = 0;
    loop {
        let m = c.receive(32, std::time::Duration::ZERO).unwrap();
        if m.is_empty() {
            break;
        }
        for x in &m {
            c.ack(x).unwrap();
        }
        n += m.len();
    }
    assert_eq!(n, batches * 100);
}

#[path = "../benches/shared/e2e.rs"]
mod e2e;

/// The system bench's end-to-end loop (`benches/shared/e2e.rs`), its rate and the mean
/// messages a receive took to stderr.
fn end_to_end(b: &pocketmq::Broker, n: usize, ack_all: bool) {
    let r = e2e::run(b, n, ack_all);
    eprintln!(
        "end to end {n} messages: {:.2} M msgs/s ({:.1} a receive; the producer done at {:.0}% of the run)",
        r.rate / 1e6,
        r.per_receive,
        r.producer_share * 100.0
    );
}
