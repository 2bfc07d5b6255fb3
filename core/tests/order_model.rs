//! Property test of ordered consumption over a file store: random sequences of sends
//! with sharding keys, an orderly classic consumer and a FIFO simple consumer
//! receiving, acking, nacking (or letting invisibility run out, or changing it),
//! time moving, clean restarts and crashes, against a model of each order rule:
//!
//! - orderly (API.md): never a message while an earlier one of its queue is unacked;
//!   a queue's messages come in queue order, a nacked one first again (after its
//!   pause) with its reconsume count up, until past `max_reconsume_times` it is dead
//!   lettered and the queue moves on (the count of retries in place is kept in
//!   memory, as RocketMQ's client keeps it: a restart starts it again);
//! - FIFO (RocketMQ 5's message groups): the next message of a sharding key only
//!   after the previous one is acked or dead-lettered; a delivery comes again when
//!   its invisibility runs out, with its attempt up, until the last attempt;
//! - a crash (the files copied as they are) may deliver again what was delivered
//!   before it, never out of order: the rules above hold across it, counting only
//!   what the store kept;
//! - at the end each group has taken every message, acked or dead-lettered, and its
//!   lag is zero.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use common::T0;
use pocketmq::{
    Broker, Consumer, ConsumerConfig, ManualClock, Message, MessageExt, SimpleConsumer,
    SimpleConsumerConfig,
};
use proptest::prelude::*;

const QUEUES: u32 = 2;
const MAX_RECONSUME: u32 = 2;
const MAX_ATTEMPTS: u32 = 3;
const INVISIBLE_MS: u64 = 20_000;

#[derive(Debug, Clone)]
enum Op {
    Send {
        key: u8,
    },
    Receive {
        max: usize,
    },
    Ack {
        pick: usize,
    },
    Nack {
        pick: usize,
    },
    SimpleReceive {
        max: usize,
    },
    SimpleAck {
        pick: usize,
    },
    /// Makes a delivery visible again after `secs` (0: at once).
    SimpleChange {
        pick: usize,
        secs: u64,
    },
    Advance {
        secs: u64,
    },
    Restart,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..4).prop_map(|key| Op::Send { key }),
        3 => (1usize..6).prop_map(|max| Op::Receive { max }),
        3 => (0usize..4).prop_map(|pick| Op::Ack { pick }),
        2 => (0usize..4).prop_map(|pick| Op::Nack { pick }),
        3 => (1usize..6).prop_map(|max| Op::SimpleReceive { max }),
        3 => (0usize..4).prop_map(|pick| Op::SimpleAck { pick }),
        1 => (0usize..4, prop_oneof![Just(0u64), 1u64..40]).prop_map(|(pick, secs)| Op::SimpleChange { pick, secs }),
        2 => prop_oneof![1u64..3, 3u64..60].prop_map(|secs| Op::Advance { secs }),
        1 => Just(Op::Restart),
        1 => Just(Op::Crash),
    ]
}

struct World {
    clock: ManualClock,
    dirs: Vec<tempfile::TempDir>,
    broker: Broker,
    orderly: Consumer,
    fifo: SimpleConsumer,
}

impl World {
    fn open(clock: ManualClock, dirs: Vec<tempfile::TempDir>) -> World {
        let dir = dirs.last().unwrap().path();
        let broker = Broker::open(common::small_file_config(dir, &clock)).unwrap();
        broker.create_topic("o", QUEUES).unwrap();
        let orderly = broker
            .consumer(ConsumerConfig {
                orderly: true,
                max_reconsume_times: MAX_RECONSUME,
                ack_timeout_ms: None,
                max_in_flight: 1 << 20,
                ..ConsumerConfig::new("go", "o")
            })
            .unwrap();
        let fifo = broker
            .simple_consumer(SimpleConsumerConfig {
                fifo: true,
                invisible_duration_ms: INVISIBLE_MS,
                max_delivery_attempts: MAX_ATTEMPTS,
                ..SimpleConsumerConfig::new("so", "o")
            })
            .unwrap();
        World {
            clock,
            dirs,
            broker,
            orderly,
            fifo,
        }
    }

    fn now(&self) -> u64 {
        use pocketmq::Clock;
        self.clock.now_ms()
    }

    fn reopen(self, crash: bool) -> World {
        let World {
            clock,
            mut dirs,
            broker,
            ..
        } = self;
        if crash {
            let to = tempfile::tempdir().unwrap();
            common::copy_store(dirs.last().unwrap().path(), to.path());
            dirs.push(to);
        }
        broker.close().unwrap();
        World::open(clock, dirs)
    }
}

/// A message as the model knows it.
struct Sent {
    key: u8,
    queue: u32,
}

/// The orderly group: each queue's messages not yet done, in queue order.
#[derive(Default)]
struct Orderly {
    pending: BTreeMap<u32, Vec<String>>,
    /// In flight, with its reconsume count.
    held: Vec<MessageExt>,
    /// Reconsume count of the next delivery of a nacked message, by id.
    retries: HashMap<String, u32>,
    /// Dead-lettered or acked.
    done: BTreeSet<String>,
    dead: BTreeSet<String>,
}

/// The FIFO group: each key's messages not yet done, in send order.
#[derive(Default)]
struct Fifo {
    pending: BTreeMap<u8, Vec<String>>,
    /// In flight: the message with its current handle, when it shows again, and
    /// whether the model is sure of it (after a crash it is not: the files may not
    /// have had the delivery, or may have had its ack).
    held: Vec<(MessageExt, u64, bool)>,
    attempts: HashMap<String, u32>,
    done: BTreeSet<String>,
    dead: BTreeSet<String>,
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut w = World::open(ManualClock::new(T0), vec![tempfile::tempdir().unwrap()]);
    let mut p = w.broker.producer("p").unwrap();
    let mut sent: BTreeMap<String, Sent> = BTreeMap::new();
    let mut o = Orderly::default();
    let mut f = Fifo::default();
    // Crashed since the start: a delivery may repeat what the model counted done.
    let mut crashed = false;
    for (step, op) in ops.into_iter().enumerate() {
        let now = w.now();
        match op {
            Op::Send { key } => {
                let k = format!("k{key}");
                let r = p
                    .send(
                        Message::builder("o", format!("m{}", sent.len()))
                            .sharding_key(k)
                            .build(),
                    )
                    .unwrap();
                // One key, one queue.
                if let Some(other) = sent.values().find(|s| s.key == key) {
                    prop_assert_eq!(
                        other.queue,
                        r.queue_id,
                        "step {}: key k{} changed queue",
                        step,
                        key
                    );
                }
                o.pending
                    .entry(r.queue_id)
                    .or_default()
                    .push(r.msg_id.clone());
                f.pending.entry(key).or_default().push(r.msg_id.clone());
                sent.insert(
                    r.msg_id,
                    Sent {
                        key,
                        queue: r.queue_id,
                    },
                );
            }
            Op::Receive { max } => {
                let got = w.orderly.receive(max, Duration::ZERO).unwrap();
                for m in got {
                    let id = m.msg_id.clone();
                    prop_assert!(
                        sent.contains_key(&id),
                        "step {step}: orderly: {id} never sent"
                    );
                    let q = m.queue_id;
                    prop_assert!(
                        o.held.iter().all(|h| h.queue_id != q),
                        "step {step}: orderly: {id} delivered while an earlier message of queue {q} is unacked"
                    );
                    if crashed && o.done.remove(&id) {
                        // The crash lost its ack: it is back at the head of its queue.
                        o.pending.get_mut(&q).unwrap().insert(0, id.clone());
                    }
                    let head = o.pending.get(&q).and_then(|v| v.first());
                    prop_assert_eq!(
                        head,
                        Some(&id),
                        "step {}: orderly: queue {} out of order",
                        step,
                        q
                    );
                    if !crashed {
                        let times = o.retries.get(&id).copied().unwrap_or(0);
                        prop_assert_eq!(
                            m.reconsume_times,
                            times,
                            "step {}: orderly: reconsume count of {}",
                            step,
                            id
                        );
                    }
                    o.held.push(m);
                }
            }
            Op::Ack { pick } => {
                if !o.held.is_empty() {
                    let m = o.held.remove(pick % o.held.len());
                    w.orderly.ack(&m).unwrap();
                    o.pending
                        .get_mut(&m.queue_id)
                        .unwrap()
                        .retain(|id| *id != m.msg_id);
                    o.retries.remove(&m.msg_id);
                    o.done.insert(m.msg_id);
                }
            }
            Op::Nack { pick } => {
                if !o.held.is_empty() {
                    let m = o.held.remove(pick % o.held.len());
                    w.orderly.nack(&m).unwrap();
                    if m.reconsume_times >= MAX_RECONSUME {
                        // Past the limit: dead-lettered, the queue moves on.
                        o.pending
                            .get_mut(&m.queue_id)
                            .unwrap()
                            .retain(|id| *id != m.msg_id);
                        o.retries.remove(&m.msg_id);
                        o.dead.insert(m.msg_id.clone());
                        o.done.insert(m.msg_id);
                    } else {
                        o.retries.insert(m.msg_id, m.reconsume_times + 1);
                    }
                }
            }
            Op::SimpleReceive { max } => {
                let got = w.fifo.receive(max, Duration::ZERO).unwrap();
                for m in got {
                    let id = m.msg_id.clone();
                    let Some(s) = sent.get(&id) else {
                        return Err(TestCaseError::fail(format!(
                            "step {step}: fifo: {id} never sent"
                        )));
                    };
                    if let Some(at) = f.held.iter().position(|(h, _, _)| h.msg_id == id) {
                        let until = f.held[at].1;
                        prop_assert!(
                            until <= now || crashed,
                            "step {step}: fifo: {id} delivered while invisible"
                        );
                        f.held.remove(at);
                    }
                    if crashed && f.done.remove(&id) {
                        f.pending.get_mut(&s.key).unwrap().insert(0, id.clone());
                    }
                    let head = f.pending.get(&s.key).and_then(|v| v.first());
                    prop_assert_eq!(
                        head,
                        Some(&id),
                        "step {}: fifo: key k{} out of order",
                        step,
                        s.key
                    );
                    prop_assert!(
                        f.held.iter().all(|(h, _, sure)| !sure || sent[&h.msg_id].key != s.key),
                        "step {step}: fifo: {id} delivered while an earlier message of k{} is in flight", s.key
                    );
                    if !crashed {
                        let attempt = f.attempts.get(&id).copied().unwrap_or(0) + 1;
                        prop_assert_eq!(
                            m.delivery_attempt,
                            attempt,
                            "step {}: fifo: attempt of {}",
                            step,
                            id
                        );
                        prop_assert!(
                            attempt <= MAX_ATTEMPTS,
                            "step {step}: fifo: {id} past its last attempt"
                        );
                    }
                    f.attempts.insert(id, m.delivery_attempt);
                    f.held.push((m, now + INVISIBLE_MS, true));
                }
            }
            Op::SimpleAck { pick } => {
                if !f.held.is_empty() {
                    let (m, until, sure) = f.held.remove(pick % f.held.len());
                    match w.fifo.ack(&m) {
                        Ok(()) => {
                            let key = sent[&m.msg_id].key;
                            f.pending
                                .get_mut(&key)
                                .unwrap()
                                .retain(|id| *id != m.msg_id);
                            f.done.insert(m.msg_id);
                        }
                        Err(pocketmq::Error::InvalidReceiptHandle(e)) => {
                            prop_assert!(
                                until <= now || crashed,
                                "step {step}: fifo: a live handle refused: {e}"
                            );
                            // Dead-lettered at its expiry, or to be delivered again.
                            f.held.push((m, until, sure));
                        }
                        Err(e) => {
                            return Err(TestCaseError::fail(format!("step {step}: fifo ack: {e}")))
                        }
                    }
                }
            }
            Op::SimpleChange { pick, secs } => {
                if !f.held.is_empty() {
                    let at = pick % f.held.len();
                    let live = f.held[at].1 > now;
                    match w
                        .fifo
                        .change_invisible_duration(&mut f.held[at].0, Duration::from_secs(secs))
                    {
                        Ok(()) => f.held[at].1 = now + secs * 1000,
                        Err(pocketmq::Error::InvalidReceiptHandle(e)) => {
                            prop_assert!(
                                !live || crashed,
                                "step {step}: fifo: a live handle refused a change: {e}"
                            );
                        }
                        Err(e) => {
                            return Err(TestCaseError::fail(format!(
                                "step {step}: fifo change: {e}"
                            )))
                        }
                    }
                }
            }
            Op::Advance { secs } => {
                w.clock.advance_ms(secs * 1000);
                w.broker.tick().unwrap();
            }
            Op::Restart | Op::Crash => {
                let crash = matches!(op, Op::Crash);
                w = w.reopen(crash);
                p = w.broker.producer("p").unwrap();
                // The orderly member is a new one: what it held comes again, and the
                // count of retries in place (kept in memory) starts again.
                o.held.clear();
                o.retries.clear();
                if crash {
                    // Whether a FIFO delivery (or its ack) reached the files is not
                    // known.
                    for h in &mut f.held {
                        h.2 = false;
                    }
                }
                crashed |= crash;
            }
        }
        // A FIFO delivery past its last attempt whose invisibility ran out is dead
        // lettered (at the next step of time, or when a receive meets it).
        let now = w.now();
        f.held.retain(|(m, until, _)| {
            let last = m.delivery_attempt >= MAX_ATTEMPTS && *until <= now;
            if last {
                let key = sent[&m.msg_id].key;
                f.pending
                    .get_mut(&key)
                    .unwrap()
                    .retain(|id| *id != m.msg_id);
                f.done.insert(m.msg_id.clone());
                f.dead.insert(m.msg_id.clone());
            }
            !last
        });
    }

    // Drain: ack whatever comes, with time moving on past pauses and invisibility.
    for round in 0..60 {
        let mut any = false;
        for m in o.held.drain(..) {
            w.orderly.ack(&m).unwrap();
            o.done.insert(m.msg_id);
        }
        for (m, _, _) in f.held.drain(..) {
            if w.fifo.ack(&m).is_ok() {
                f.done.insert(m.msg_id);
            }
        }
        loop {
            let got = w.orderly.receive(64, Duration::ZERO).unwrap();
            let got2 = w.fifo.receive(64, Duration::ZERO).unwrap();
            if got.is_empty() && got2.is_empty() {
                break;
            }
            any = true;
            for m in got {
                w.orderly.ack(&m).unwrap();
                o.done.insert(m.msg_id);
            }
            for m in got2 {
                w.fifo.ack(&m).unwrap();
                f.done.insert(m.msg_id);
            }
        }
        if !any && round > 0 {
            break;
        }
        w.clock.advance_ms(60_000);
        w.broker.tick().unwrap();
    }
    // Every message was acked or dead-lettered, and the DLQ holds the model's dead
    // letters.
    let all: BTreeSet<String> = sent.keys().cloned().collect();
    for (name, group, done, dead) in [
        ("orderly", "go", &mut o.done, &o.dead),
        ("FIFO", "so", &mut f.done, &f.dead),
    ] {
        let dlq: BTreeSet<String> = w
            .broker
            .dead_letters(group, 100_000)
            .unwrap()
            .into_iter()
            .map(|m| m.msg_id)
            .collect();
        // (A crash may undo a delivery the model took as the last, before its dead
        // letter was written: then the message comes again.)
        if !crashed {
            prop_assert_eq!(dead, &dlq, "{}: the dead letters", name);
        }
        done.extend(dlq);
        prop_assert_eq!(&*done, &all, "the {} group missed messages", name);
    }
    prop_assert_eq!(w.broker.lag("go", "o").unwrap(), 0);
    prop_assert_eq!(w.broker.lag("so", "o").unwrap(), 0);
    w.broker.close().unwrap();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::model_cases(48), ..ProptestConfig::default() })]

    #[test]
    fn ordered_groups_keep_their_order_across_restarts_and_crashes(ops in proptest::collection::vec(op(), 1..100)) {
        run(ops)?;
    }
}
