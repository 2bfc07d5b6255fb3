//! Property test: random sequences of sends, receives, acks, nacks and consumer
//! restarts against a small model of the semantics. Whatever the sequence, nothing
//! is in flight at two consumers at once, a queue's messages are delivered in
//! order, and once everything is drained every message sent has been acked (a
//! restart rebalances the group and may redeliver, never lose) and the group's lag
//! is zero.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use common::*;
use pocketmq::{Consumer, ConsumerConfig, Message, MessageExt};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Send { queue: u32, tag: u8 },
    Receive { consumer: usize, max: usize },
    Ack { consumer: usize, pick: usize },
    Nack { consumer: usize, pick: usize },
    Restart { consumer: usize },
    Advance { secs: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..4, 0u8..3).prop_map(|(queue, tag)| Op::Send { queue, tag }),
        3 => (0usize..3, 1usize..8).prop_map(|(consumer, max)| Op::Receive { consumer, max }),
        3 => (0usize..3, 0usize..8).prop_map(|(consumer, pick)| Op::Ack { consumer, pick }),
        1 => (0usize..3, 0usize..8).prop_map(|(consumer, pick)| Op::Nack { consumer, pick }),
        1 => (0usize..3).prop_map(|consumer| Op::Restart { consumer }),
        1 => (1u64..120).prop_map(|secs| Op::Advance { secs }),
    ]
}

struct Member {
    consumer: Consumer,
    /// Received and not yet acked, with the rebalance generation it was received in.
    holding: Vec<(MessageExt, u32)>,
}

fn join(b: &pocketmq::Broker) -> Member {
    let mut cfg = ConsumerConfig::new("g", "t");
    cfg.max_reconsume_times = 1000;
    Member {
        consumer: b.consumer(cfg).unwrap(),
        holding: Vec::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::model_cases(64), ..ProptestConfig::default() })]

    #[test]
    fn clustering_delivers_everything_in_order_and_never_twice_at_once(ops in proptest::collection::vec(op(), 1..120)) {
        let (b, clock) = manual();
        b.create_topic("t", 4).unwrap();
        let p = b.producer("p").unwrap();
        let mut members: Vec<Member> = (0..3).map(|_| join(&b)).collect();
        let mut sent: BTreeMap<String, u32> = BTreeMap::new();
        let mut acked: BTreeSet<String> = BTreeSet::new();
        let mut last_offset: HashMap<(u32, String), u64> = HashMap::new();
        let mut generation = 0u32;
        // A nacked message may travel twice: as its retry copy, and again from its
        // queue if a rebalance rewinds that queue below it (as in RocketMQ).
        let mut nacked: BTreeSet<String> = BTreeSet::new();
        for op in ops {
            match op {
                Op::Send { queue, tag } => {
                    let r = p.send(Message::builder("t", format!("m{}", sent.len())).queue_id(queue).tags(format!("tag{tag}")).build()).unwrap();
                    sent.insert(r.msg_id, queue);
                }
                Op::Receive { consumer, max } => {
                    let got = members[consumer].consumer.receive(max, Duration::ZERO).unwrap();
                    for m in &got {
                        // Never in flight at two consumers at once.
                        for (i, other) in members.iter().enumerate() {
                            if i != consumer {
                                prop_assert!(other
                                    .holding
                                    .iter()
                                    .all(|(h, g)| h.msg_id != m.msg_id || *g != generation || nacked.contains(&m.msg_id)));
                            }
                        }
                        // In order within a queue (retries come from the retry topic).
                        if m.reconsume_times == 0 {
                            let key = (m.queue_id, format!("{consumer}"));
                            if let Some(prev) = last_offset.insert(key, m.queue_offset) {
                                prop_assert!(m.queue_offset > prev, "queue {} went back", m.queue_id);
                            }
                        }
                    }
                    members[consumer].holding.extend(got.into_iter().map(|m| (m, generation)));
                }
                Op::Ack { consumer, pick } => {
                    let h = &mut members[consumer].holding;
                    if !h.is_empty() {
                        let (m, _) = h.remove(pick % h.len());
                        members[consumer].consumer.ack(&m).unwrap();
                        acked.insert(m.msg_id);
                    }
                }
                Op::Nack { consumer, pick } => {
                    let h = &mut members[consumer].holding;
                    if !h.is_empty() {
                        let (m, _) = h.remove(pick % h.len());
                        members[consumer].consumer.nack(&m).unwrap();
                        nacked.insert(m.msg_id);
                    }
                }
                Op::Restart { consumer } => {
                    members[consumer].consumer.close().unwrap();
                    members[consumer] = join(&b);
                    // The group rebalanced: queues that changed hands go back to their
                    // committed offsets, so what others hold may come again (at least
                    // once) to a new owner.
                    generation += 1;
                    last_offset.clear();
                }
                Op::Advance { secs } => {
                    clock.advance_ms(secs * 1000);
                    b.tick().unwrap();
                }
            }
        }
        // Drain: ack everything still held, then everything that comes, with time
        // moving on so retries come due.
        for _ in 0..200 {
            let mut any = false;
            for member in &mut members {
                for (m, _) in member.holding.drain(..) {
                    member.consumer.ack(&m).unwrap();
                    acked.insert(m.msg_id);
                }
                let got = drain(&member.consumer);
                any |= !got.is_empty();
                for m in got {
                    member.consumer.ack(&m).unwrap();
                    acked.insert(m.msg_id);
                }
            }
            if !any && b.stats().unwrap().pending_delayed == 0 {
                break;
            }
            clock.advance_ms(3_600_000);
            b.tick().unwrap();
        }
        let sent_ids: BTreeSet<String> = sent.keys().cloned().collect();
        prop_assert_eq!(acked, sent_ids);
        prop_assert_eq!(b.lag("g", "t").unwrap(), 0);
    }
}
