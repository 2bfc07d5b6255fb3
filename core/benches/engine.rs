//! Criterion micro-benchmarks of the hot paths: send (single and batched) on the
//! memory store, and receive + ack. `cargo bench -p pocketmq --bench engine`.

use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pocketmq::{Broker, ConsumerConfig, Message};

fn send(c: &mut Criterion) {
    let mut g = c.benchmark_group("send");
    g.measurement_time(Duration::from_secs(3)).sample_size(20);
    let body = Bytes::from(vec![b'x'; 100]);
    let b = Broker::memory();
    let p = b.producer("bench").unwrap();
    g.throughput(Throughput::Elements(1));
    g.bench_function("memory single 100 B", |bench| {
        bench.iter(|| p.send(Message::new("bench", body.clone())).unwrap())
    });
    g.throughput(Throughput::Elements(100));
    g.bench_function("memory batch 100 x 100 B", |bench| {
        bench.iter_batched(
            || {
                (0..100)
                    .map(|_| Message::new("bench", body.clone()))
                    .collect::<Vec<_>>()
            },
            |batch| p.send_batch(batch).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn receive(c: &mut Criterion) {
    let mut g = c.benchmark_group("receive");
    g.measurement_time(Duration::from_secs(3)).sample_size(20);
    g.throughput(Throughput::Elements(32));
    let body = Bytes::from(vec![b'x'; 100]);
    let b = Broker::memory();
    b.create_topic("bench", 1).unwrap();
    let p = b.producer("bench").unwrap();
    let consumer = b.consumer(ConsumerConfig::new("g", "bench")).unwrap();
    g.bench_function("memory receive 32 + ack, 100 B", |bench| {
        bench.iter_batched(
            || {
                let batch: Vec<Message> = (0..32)
                    .map(|_| Message::new("bench", body.clone()))
                    .collect();
                p.send_batch(batch).unwrap();
            },
            |_| {
                let msgs = consumer.receive(32, Duration::ZERO).unwrap();
                assert_eq!(msgs.len(), 32);
                for m in &msgs {
                    consumer.ack(m).unwrap();
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, send, receive);
criterion_main!(benches);
