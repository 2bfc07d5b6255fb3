//! Prints every message of some topics of a store directory as JSON lines (one object
//! per message), for scripts that check what a server stored after it stopped.
//!
//! `cargo run -p pocketmq-server --example dump_topics -- STORE_DIR TOPIC...`
//!
//! Reads with a fresh consumer group per run, so it sees each topic from the start.

use std::time::Duration;

use pocketmq::{Broker, BrokerConfig, Clock, ConsumerConfig, SystemClock};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: dump_topics STORE_DIR TOPIC...");
    let broker = Broker::open(BrokerConfig::at(dir)).expect("the store opens");
    let group = format!("dump-{}", SystemClock.now_ms());
    for topic in args {
        if broker.topic(&topic).unwrap().is_none() {
            continue;
        }
        let c = broker
            .consumer(ConsumerConfig::new(group.clone(), topic.clone()))
            .expect("a consumer");
        loop {
            let got = c.receive(256, Duration::from_millis(100)).expect("receive");
            if got.is_empty() {
                break;
            }
            for m in &got {
                let line = serde_json::json!({
                    "topic": m.topic,
                    "queue_id": m.queue_id,
                    "queue_offset": m.queue_offset,
                    "msg_id": m.msg_id,
                    "client_message_id": m.msg_id,
                    "body": String::from_utf8_lossy(&m.body),
                    "tags": m.tags,
                    "keys": m.keys,
                    "message_group": m.properties.get("__SHARDINGKEY"),
                    "born_timestamp": m.born_timestamp,
                    "store_timestamp": m.store_timestamp,
                    "properties": m.properties,
                });
                println!("{line}");
            }
            c.ack_all(&got).expect("ack");
        }
        c.close().expect("close");
    }
    broker.close().expect("close the store");
}
