//! Batched sends on the memory store, for profilers:
//! `cargo run --release -p pocketmq --example profile_batch -- 20000`.
fn main() {
    let b = pocketmq::Broker::memory();
    let p = b.producer("bench").unwrap();
    let body = bytes::Bytes::from(vec![b'x'; 100]);
    let batches: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    for _ in 0..batches {
        let batch: Vec<pocketmq::Message> = (0..100)
            .map(|_| pocketmq::Message::new("bench", body.clone()))
            .collect();
        p.send_batch(batch).unwrap();
    }
}
