//! Property test: random sequences of sends, receives and acks by a classic and a
//! simple (POP) group, consumers closed and opened again, the topic deleted (under
//! live consumers or closed ones) and sent to again, a group's offsets reset to the
//! earliest message, acks of deliveries made before a reset or a deletion, time
//! moving and clean restarts, over a file store. After a reset a group receives
//! everything live again, and no earlier delivery's ack takes a later one. After a deletion the groups start over with the topic: they
//! never get a message sent before it, never one they acked, and their lag is
//! exactly what they have not acked of the messages sent since. At the end each group
//! has acked every message sent since the last deletion.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use pocketmq::{
    Broker, Consumer, ConsumerConfig, ManualClock, Message, MessageExt, SimpleConsumer,
    SimpleConsumerConfig,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Send {
        n: usize,
    },
    Receive {
        simple: bool,
        max: usize,
    },
    Ack {
        simple: bool,
        pick: usize,
    },
    /// Both consumers close (the next receive opens them again).
    Close,
    Delete,
    /// A group's offsets reset to the earliest message, its consumer open.
    Reset {
        simple: bool,
    },
    /// An ack of a delivery made before a reset or a deletion: it changes nothing.
    StaleAck {
        simple: bool,
        pick: usize,
    },
    Restart,
    Advance {
        secs: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..4).prop_map(|n| Op::Send { n }),
        4 => (any::<bool>(), 1usize..6).prop_map(|(simple, max)| Op::Receive { simple, max }),
        4 => (any::<bool>(), any::<usize>()).prop_map(|(simple, pick)| Op::Ack { simple, pick }),
        1 => Just(Op::Close),
        1 => Just(Op::Delete),
        1 => any::<bool>().prop_map(|simple| Op::Reset { simple }),
        1 => (any::<bool>(), any::<usize>()).prop_map(|(simple, pick)| Op::StaleAck { simple, pick }),
        1 => Just(Op::Restart),
        1 => (1u64..60).prop_map(|secs| Op::Advance { secs }),
    ]
}

/// What one group has done with the messages sent since the last deletion.
#[derive(Default)]
struct Seen {
    acked: BTreeSet<String>,
    /// Received and not acked, by body.
    held: BTreeMap<String, MessageExt>,
}

struct World {
    dir: tempfile::TempDir,
    clock: ManualClock,
    broker: Broker,
    classic: Option<Consumer>,
    simple: Option<SimpleConsumer>,
}

impl World {
    fn open(dir: tempfile::TempDir, clock: ManualClock) -> World {
        let broker = Broker::open(small_file_config(dir.path(), &clock)).unwrap();
        World {
            dir,
            clock,
            broker,
            classic: None,
            simple: None,
        }
    }

    fn classic(&mut self) -> &Consumer {
        self.classic.get_or_insert_with(|| {
            let mut cfg = ConsumerConfig::new("g", "t");
            cfg.max_in_flight = 1 << 20;
            cfg.max_reconsume_times = 1000;
            self.broker.consumer(cfg).unwrap()
        })
    }

    fn simple(&mut self) -> &SimpleConsumer {
        self.simple.get_or_insert_with(|| {
            let mut cfg = SimpleConsumerConfig::new("s", "t");
            cfg.invisible_duration_ms = 30_000;
            cfg.max_delivery_attempts = 1000;
            self.broker.simple_consumer(cfg).unwrap()
        })
    }

    fn close_consumers(&mut self) {
        if let Some(c) = self.classic.take() {
            c.close().unwrap();
        }
        if let Some(c) = self.simple.take() {
            c.close().unwrap();
        }
    }

    fn lag(&self, group: &str) -> u64 {
        match self.broker.lag(group, "t") {
            Ok(n) => n,
            Err(e) if e.kind() == pocketmq::ErrorKind::TopicNotFound => 0,
            Err(e) => panic!("lag of {group}: {e}"),
        }
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let clock = ManualClock::new(T0);
    let mut w = World::open(tempfile::tempdir().unwrap(), clock);
    // Bodies sent since the last deletion, and before it.
    let mut live: BTreeSet<String> = BTreeSet::new();
    let mut gone: BTreeSet<String> = BTreeSet::new();
    let mut groups = [Seen::default(), Seen::default()];
    // Deliveries made before a reset or a deletion of their group's topic.
    let mut stale: [Vec<MessageExt>; 2] = Default::default();
    let mut sent = 0;
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Send { n } => {
                let p = w.broker.producer("p").unwrap();
                for _ in 0..n {
                    let body = format!("m{sent}");
                    sent += 1;
                    p.send(Message::new("t", body.clone())).unwrap();
                    live.insert(body);
                }
            }
            Op::Receive { simple, max } => {
                let got = if simple {
                    w.simple().receive(max, Duration::ZERO).unwrap()
                } else {
                    w.classic().receive(max, Duration::ZERO).unwrap()
                };
                let seen = &mut groups[simple as usize];
                let name = if simple { "simple" } else { "classic" };
                for m in got {
                    let body = m.body_str().unwrap().to_string();
                    prop_assert!(
                        !gone.contains(&body),
                        "step {}: {} got {}, sent before a deletion",
                        step,
                        name,
                        body
                    );
                    prop_assert!(live.contains(&body), "step {}: {} never sent", step, body);
                    prop_assert!(
                        !seen.acked.contains(&body),
                        "step {}: {} got {} again after its ack",
                        step,
                        name,
                        body
                    );
                    seen.held.insert(body, m);
                }
            }
            Op::Ack { simple, pick } => {
                let seen = &mut groups[simple as usize];
                if seen.held.is_empty() {
                    continue;
                }
                let body = seen
                    .held
                    .keys()
                    .nth(pick % seen.held.len())
                    .unwrap()
                    .clone();
                let m = seen.held.remove(&body).unwrap();
                let acked = if simple {
                    match w.simple().ack(&m) {
                        Ok(()) => true,
                        Err(pocketmq::Error::InvalidReceiptHandle(_)) => false,
                        Err(e) => return Err(TestCaseError::fail(format!("step {step}: {e}"))),
                    }
                } else {
                    w.classic().ack(&m).unwrap();
                    true
                };
                // A simple delivery whose invisibility is over may be refused (it
                // comes again); a classic ack always stands.
                if acked {
                    groups[simple as usize].acked.insert(body);
                }
            }
            Op::Close => {
                w.close_consumers();
                // What they held comes again, to whichever consumer opens next.
                for seen in &mut groups {
                    seen.held.clear();
                }
            }
            Op::Delete => {
                if w.broker.topic("t").unwrap().is_none() {
                    continue;
                }
                w.broker.delete_topic("t").unwrap();
                gone.extend(std::mem::take(&mut live));
                for (i, seen) in groups.iter_mut().enumerate() {
                    stale[i].extend(std::mem::take(&mut seen.held).into_values());
                    seen.acked.clear();
                }
            }
            Op::Reset { simple } => {
                if w.broker.topic("t").unwrap().is_none() {
                    continue;
                }
                let group = if simple { "s" } else { "g" };
                w.broker
                    .reset_offset(group, "t", pocketmq::StartFrom::Earliest)
                    .unwrap();
                // Everything live comes again, to the consumer left open.
                let seen = &mut groups[simple as usize];
                stale[simple as usize].extend(std::mem::take(&mut seen.held).into_values());
                seen.acked.clear();
            }
            Op::StaleAck { simple, pick } => {
                let list = &mut stale[simple as usize];
                if list.is_empty() {
                    continue;
                }
                let m = list.remove(pick % list.len());
                let done = if simple {
                    w.simple().ack(&m)
                } else {
                    w.classic().ack(&m)
                };
                // Refused, or taken as the ack of a delivery no longer current.
                match done {
                    Ok(())
                    | Err(
                        pocketmq::Error::InvalidReceiptHandle(_)
                        | pocketmq::Error::InvalidArgument(_),
                    ) => {}
                    Err(e) => return Err(TestCaseError::fail(format!("step {step}: {e}"))),
                }
            }
            Op::Restart => {
                w.close_consumers();
                w.broker.close().unwrap();
                let World { dir, clock, .. } = w;
                w = World::open(dir, clock);
                for seen in &mut groups {
                    seen.held.clear();
                }
            }
            Op::Advance { secs } => {
                w.clock.advance_ms(secs * 1000);
                w.broker.tick().unwrap();
            }
        }
        for (i, name) in [(0, "g"), (1, "s")] {
            let want = live
                .iter()
                .filter(|b| !groups[i].acked.contains(*b))
                .count() as u64;
            prop_assert_eq!(w.lag(name), want, "step {}: lag of {}", step, name);
        }
    }
    // Drain: every message sent since the last deletion is acked by both groups.
    for _ in 0..50 {
        w.clock.advance_ms(60_000);
        w.broker.tick().unwrap();
        for (i, simple) in [(0, false), (1, true)] {
            let got = if simple {
                w.simple().receive(64, Duration::ZERO)
            } else {
                w.classic().receive(64, Duration::ZERO)
            }
            .unwrap();
            for m in &got {
                let body = m.body_str().unwrap().to_string();
                prop_assert!(live.contains(&body) && !groups[i].acked.contains(&body));
                groups[i].acked.insert(body);
            }
            if simple {
                w.simple().ack_all(&got)
            } else {
                w.classic().ack_all(&got)
            }
            .unwrap();
        }
    }
    for (i, name) in [(0, "classic"), (1, "simple")] {
        prop_assert_eq!(&groups[i].acked, &live, "{} acked", name);
    }
    prop_assert_eq!(w.lag("g"), 0);
    prop_assert_eq!(w.lag("s"), 0);
    w.close_consumers();
    w.broker.close().unwrap();
    drop(w.dir);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::model_cases(48), ..ProptestConfig::default() })]

    #[test]
    fn groups_start_over_with_a_deleted_topic_and_never_see_its_old_messages(
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        run(ops)?;
    }
}
