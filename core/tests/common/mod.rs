//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use pocketmq::{Broker, BrokerConfig, Consumer, ConsumerConfig, ManualClock, Message, MessageExt};

pub const T0: u64 = 1_764_000_000_000;

/// An in-memory broker on a manual clock, with no background thread.
pub fn manual() -> (Broker, ManualClock) {
    let clock = ManualClock::new(T0);
    let cfg = BrokerConfig {
        clock: Arc::new(clock.clone()),
        background: false,
        ..BrokerConfig::default()
    };
    (Broker::open(cfg).unwrap(), clock)
}

/// A file broker at `dir` on `clock`.
pub fn file(dir: &std::path::Path, clock: &ManualClock) -> Broker {
    let cfg = BrokerConfig {
        clock: Arc::new(clock.clone()),
        background: false,
        ..BrokerConfig::at(dir)
    };
    Broker::open(cfg).unwrap()
}

/// A consumer that may hold any number of unacked messages (flow control has its
/// own tests), so a test can drain a topic without acking.
pub fn consumer(b: &Broker, group: &str, topic: &str) -> Consumer {
    let cfg = ConsumerConfig {
        max_in_flight: 1 << 20,
        ..ConsumerConfig::new(group, topic)
    };
    b.consumer(cfg).unwrap()
}

/// Everything the consumer can get now (no waiting).
pub fn drain(c: &Consumer) -> Vec<MessageExt> {
    let mut all = Vec::new();
    loop {
        let got = c.receive(64, Duration::ZERO).unwrap();
        if got.is_empty() {
            return all;
        }
        all.extend(got);
    }
}

pub fn bodies(msgs: &[MessageExt]) -> Vec<String> {
    msgs.iter()
        .map(|m| m.body_str().unwrap_or("?").to_string())
        .collect()
}

pub fn send(b: &Broker, topic: &str, body: &str) -> pocketmq::SendResult {
    b.producer("p")
        .unwrap()
        .send(Message::new(topic, body.to_string()))
        .unwrap()
}
