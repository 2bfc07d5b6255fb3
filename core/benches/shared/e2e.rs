//! The end-to-end loop of `cargo bench --bench system -- e2e`, shared with
//! `examples/profile_send.rs` (its `e2e` and `e2e-all` modes), so the profiled loop is
//! the measured one.

use std::time::{Duration, Instant};

use pocketmq::{Broker, ConsumerConfig, Message};

/// What one end-to-end run measured.
pub struct EndToEnd {
    /// Messages a second, sends to acks.
    pub rate: f64,
    /// Messages a receive took, on average (profile_send prints it; the bench does not).
    #[allow(dead_code)]
    pub per_receive: f64,
    /// When the producer's last send returned, as a share of the run (profile_send
    /// prints it: the producer sets the pace when it ends with the run).
    #[allow(dead_code)]
    pub producer_share: f64,
}

/// `n` single sends of 100 B from a producer thread to a topic of 4 queues on `b`,
/// received 32 at a time on this thread and acked one by one (`ack_all`: each batch at
/// once). Every message is acked when it returns.
pub fn run(b: &Broker, n: usize, ack_all: bool) -> EndToEnd {
    b.create_topic("bench", 4).unwrap();
    let c = b.consumer(ConsumerConfig::new("g", "bench")).unwrap();
    let start = Instant::now();
    let pb = b.clone();
    let producer = std::thread::spawn(move || {
        let p = pb.producer("bench").unwrap();
        let body = bytes::Bytes::from(vec![b'x'; 100]);
        for _ in 0..n {
            p.send(Message::new("bench", body.clone())).unwrap();
        }
        start.elapsed().as_secs_f64()
    });
    let (mut got, mut receives) = (0, 0);
    while got < n {
        let msgs = c.receive(32, Duration::from_secs(5)).unwrap();
        receives += 1;
        assert!(!msgs.is_empty(), "stalled at {got}");
        if ack_all {
            c.ack_all(&msgs).unwrap();
        } else {
            for m in &msgs {
                c.ack(m).unwrap();
            }
        }
        got += msgs.len();
    }
    let secs = start.elapsed().as_secs_f64();
    let producer_secs = producer.join().unwrap();
    assert_eq!(b.lag("g", "bench").unwrap(), 0);
    EndToEnd {
        rate: n as f64 / secs,
        per_receive: n as f64 / receives as f64,
        producer_share: producer_secs / secs,
    }
}
