//! Property test of dead letters and their redrive over a file store: a classic group
//! (at most 3 deliveries: `max_reconsume_times` 2, an ack deadline) and a simple group
//! (at most 2 delivery attempts) on one topic, with random receives, acks, nacks
//! (ladder or own delay), late acks and nacks, changes of invisibility, explicit dead
//! letters, time moving, redrives (limited, stopped before the first step, or cut by
//! a crash in the middle), clean restarts and crashes, against a model of where each
//! message is for each group: waiting, held, acked or dead.
//!
//! What must hold, whatever the sequence:
//! - a message untouched by a crash is delivered as the model says: with its
//!   reconsume count (classic) or attempt (simple), never early, never while held,
//!   never after its ack or its dead letter; a receive that returns fewer than asked
//!   leaves nothing due behind;
//! - it goes to `%DLQ%<group>` exactly when its deliveries are used up (or a simple
//!   consumer sends it there), once; `dead_letters` lists exactly those, and a late
//!   ack of a dead-lettered delivery is refused (simple) or changes nothing (classic);
//! - `redrive(limit)` moves the oldest `limit` dead letters, which come back as fresh
//!   deliveries (reconsume count 0, attempt 1) with their retries starting over; a
//!   redrive stopped before its first step moves nothing; a redrive cut by a crash
//!   and run again copies no dead letter twice;
//! - `lag` counts exactly the messages neither acked nor dead (no fewer after a
//!   crash);
//! - once every dead letter is redriven and everything is acked, each group has acked
//!   every message, lists no dead letters, and has no lag.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::T0;
use pocketmq::{
    Broker, Clock, Consumer, ConsumerConfig, Error, ManualClock, Message, MessageExt,
    SimpleConsumer, SimpleConsumerConfig,
};
use proptest::prelude::*;

/// The default delay levels, in ms.
const LEVELS_MS: [u64; 18] = [
    1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000, 420_000,
    480_000, 540_000, 600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
];
const MAX_RECONSUME: u32 = 2;
const MAX_ATTEMPTS: u32 = 2;
const INVISIBLE_MS: u64 = 30_000;
const ACK_TIMEOUT_MS: u64 = 90_000;

#[derive(Debug, Clone)]
enum Op {
    Send {
        n: u8,
    },
    Receive {
        max: usize,
    },
    Ack {
        pick: usize,
    },
    /// A nack after the ladder's step, or after its own delay (seconds).
    Nack {
        pick: usize,
        delay: Option<u64>,
    },
    /// An ack or nack of a delivery whose ack deadline passed: it changes nothing.
    Late {
        pick: usize,
        nack: bool,
    },
    SimpleReceive {
        max: usize,
    },
    SimpleAck {
        pick: usize,
    },
    /// An ack with a handle of an earlier delivery.
    SimpleAckStale {
        pick: usize,
    },
    /// A change of invisibility (0: visible at once), or a nack (the ladder's step).
    SimpleChange {
        pick: usize,
        secs: Option<u64>,
    },
    /// `dead_letter_handle`: to the dead letters at once.
    SimpleDead {
        pick: usize,
    },
    Advance {
        secs: u64,
    },
    Redrive {
        simple: bool,
        limit: Option<u64>,
    },
    /// A redrive whose progress callback stops it before its first step.
    RedriveStopped {
        simple: bool,
    },
    /// A crash after a redrive's copies were appended, before the group moved past
    /// its dead letters; the redrive is run again after it.
    RedriveCrash {
        simple: bool,
    },
    Restart,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..4).prop_map(|n| Op::Send { n }),
        3 => (1usize..6).prop_map(|max| Op::Receive { max }),
        2 => (0usize..8).prop_map(|pick| Op::Ack { pick }),
        3 => (0usize..8, proptest::option::weighted(0.3, 1u64..300)).prop_map(|(pick, delay)| Op::Nack { pick, delay }),
        1 => (0usize..8, any::<bool>()).prop_map(|(pick, nack)| Op::Late { pick, nack }),
        3 => (1usize..6).prop_map(|max| Op::SimpleReceive { max }),
        2 => (0usize..8).prop_map(|pick| Op::SimpleAck { pick }),
        1 => (0usize..8).prop_map(|pick| Op::SimpleAckStale { pick }),
        2 => (0usize..8, proptest::option::weighted(0.7, prop_oneof![Just(0u64), 1u64..60])).prop_map(|(pick, secs)| Op::SimpleChange { pick, secs }),
        1 => (0usize..8).prop_map(|pick| Op::SimpleDead { pick }),
        3 => prop_oneof![1u64..40, 40u64..400].prop_map(|secs| Op::Advance { secs }),
        2 => (any::<bool>(), proptest::option::of(1u64..4)).prop_map(|(simple, limit)| Op::Redrive { simple, limit }),
        1 => any::<bool>().prop_map(|simple| Op::RedriveStopped { simple }),
        1 => any::<bool>().prop_map(|simple| Op::RedriveCrash { simple }),
        1 => Just(Op::Restart),
        1 => Just(Op::Crash),
    ]
}

/// Where a message is for the classic group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum C {
    /// Delivered next with `times` reconsumes, once `due`.
    Waiting {
        times: u32,
        due: u64,
    },
    Held {
        times: u32,
    },
    Acked,
    Dead,
}

/// Where a message is for the simple group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum S {
    /// Delivered next as attempt `attempt`, from `at`.
    Visible {
        attempt: u32,
        at: u64,
    },
    Held {
        attempt: u32,
        until: u64,
    },
    Acked,
    Dead,
}

/// One group's model: exact states, and the messages a crash loosened (they may come
/// again, in any state, as at-least-once allows; each must end acked).
struct Group<St> {
    exact: BTreeMap<String, St>,
    loose: BTreeSet<String>,
    touched: BTreeSet<String>,
    acked: BTreeSet<String>,
}

impl<St> Default for Group<St> {
    fn default() -> Self {
        Group {
            exact: BTreeMap::new(),
            loose: BTreeSet::new(),
            touched: BTreeSet::new(),
            acked: BTreeSet::new(),
        }
    }
}

impl<St: std::fmt::Debug> Group<St> {
    /// After a receive that returned fewer than `max`: nothing the model knows exactly
    /// was due (`due`) and left behind.
    fn none_left(
        &self,
        due: impl Fn(&St) -> bool,
        who: &str,
        max: usize,
        step: usize,
    ) -> Result<(), TestCaseError> {
        let left: Vec<_> = self.exact.iter().filter(|(_, st)| due(st)).collect();
        prop_assert!(
            left.is_empty(),
            "step {step}: {who}: a receive of {max} left {left:?} behind"
        );
        Ok(())
    }

    /// A crash: every message delivered before it may come again.
    fn crash(&mut self) {
        for id in &self.touched {
            self.exact.remove(id);
            self.loose.insert(id.clone());
        }
    }
}

struct World {
    clock: ManualClock,
    dirs: Vec<tempfile::TempDir>,
    broker: Broker,
    classic: Consumer,
    simple: SimpleConsumer,
}

impl World {
    fn open(clock: ManualClock, dirs: Vec<tempfile::TempDir>) -> World {
        let dir = dirs.last().unwrap().path();
        let broker = Broker::open(common::small_file_config(dir, &clock)).unwrap();
        broker.create_topic("t", 2).unwrap();
        let classic = broker
            .consumer(ConsumerConfig {
                max_reconsume_times: MAX_RECONSUME,
                ack_timeout_ms: Some(ACK_TIMEOUT_MS),
                max_in_flight: 1 << 20,
                ..ConsumerConfig::new("g", "t")
            })
            .unwrap();
        let simple = broker
            .simple_consumer(SimpleConsumerConfig {
                invisible_duration_ms: INVISIBLE_MS,
                max_delivery_attempts: MAX_ATTEMPTS,
                ..SimpleConsumerConfig::new("s", "t")
            })
            .unwrap();
        World {
            clock,
            dirs,
            broker,
            classic,
            simple,
        }
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    fn dir(&self) -> &std::path::Path {
        self.dirs.last().unwrap().path()
    }

    /// Opens the store as a crash left it in `copy`.
    fn crashed(self, copy: tempfile::TempDir) -> World {
        self.broker.close().unwrap();
        let World {
            clock, mut dirs, ..
        } = self;
        dirs.push(copy);
        World::open(clock, dirs)
    }

    fn dead(&self, group: &str) -> Vec<String> {
        let dead = self.broker.dead_letters(group, 100_000).unwrap();
        dead.into_iter().map(|m| m.msg_id).collect()
    }

    /// No dead letter of `group` was copied to its retry topic twice.
    fn copied_once(&self, group: &str, step: usize) -> Result<(), TestCaseError> {
        let retry = format!("%RETRY%{group}");
        let copies = match self.broker.browse(&retry, None, None, 1 << 20) {
            Ok(copies) => copies,
            Err(Error::TopicNotFound(_)) => return Ok(()),
            Err(e) => return Err(TestCaseError::fail(format!("browse {retry}: {e}"))),
        };
        let mut seen = BTreeSet::new();
        // A redrive's copy starts its retries over; retries of it (which keep its
        // properties) count up.
        for m in copies.iter().filter(|m| m.reconsume_times == 0) {
            if let Some(from) = m.properties.get("MOVED_FROM") {
                prop_assert!(
                    seen.insert(from.clone()),
                    "step {step}: the dead letter at {from} was redriven twice"
                );
            }
        }
        Ok(())
    }
}

fn level_ms(times: u32) -> u64 {
    LEVELS_MS[(2 + times as usize).min(LEVELS_MS.len() - 1)]
}

/// The classic model after a delivery with `times` reconsumes failed at `at`.
fn classic_failed(times: u32, at: u64, delay: Option<u64>) -> C {
    if times >= MAX_RECONSUME {
        C::Dead
    } else {
        C::Waiting {
            times: times + 1,
            due: at + delay.unwrap_or_else(|| level_ms(times)),
        }
    }
}

/// The simple model once a delivery's invisibility ended at `until`.
fn simple_expired(attempt: u32, until: u64) -> S {
    if attempt >= MAX_ATTEMPTS {
        S::Dead
    } else {
        S::Visible {
            attempt: attempt + 1,
            at: until,
        }
    }
}

/// Whether a simple consumer's call on a delivery it held (`what`: ack, change,
/// dead letter) took effect on a message the model knows exactly (`st`): it must,
/// while the delivery is current; once its invisibility ended it may, unless the
/// message went to the dead letters meanwhile; a loosened message may go either way.
fn simple_took(
    done: &pocketmq::Result<()>,
    st: Option<S>,
    what: &str,
    id: &str,
    step: usize,
) -> Result<bool, TestCaseError> {
    match (done, st) {
        (Ok(()), Some(S::Held { .. } | S::Visible { .. })) => Ok(true),
        (Ok(()), None) => Ok(false),
        (Err(Error::InvalidReceiptHandle(_)), None | Some(S::Visible { .. } | S::Dead)) => {
            Ok(false)
        }
        (done, st) => Err(TestCaseError::fail(format!(
            "step {step}: simple: {what} of {id} while {st:?}: {done:?}"
        ))),
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let clock = ManualClock::new(T0);
    let mut w = World::open(clock, vec![tempfile::tempdir().unwrap()]);
    let mut p = w.broker.producer("p").unwrap();
    let mut stored: BTreeSet<String> = BTreeSet::new();
    let mut sends = 0usize;

    let mut g: Group<C> = Group::default();
    // Received and not acked, with when.
    let mut g_held: Vec<(MessageExt, u64)> = Vec::new();
    // Deliveries whose ack deadline passed (sent back as nacks).
    let mut g_expired: Vec<MessageExt> = Vec::new();

    let mut s: Group<S> = Group::default();
    // The last delivery of each message held.
    let mut s_held: Vec<MessageExt> = Vec::new();
    // Handles of earlier deliveries: (msg id, handle).
    let mut s_stale: Vec<(String, String)> = Vec::new();
    let mut crashes = 0u32;

    for (step, op) in ops.into_iter().enumerate() {
        let now = w.now();
        match op {
            Op::Send { n } => {
                for _ in 0..n {
                    let r = p.send(Message::new("t", format!("m{sends}"))).unwrap();
                    sends += 1;
                    stored.insert(r.msg_id.clone());
                    g.exact
                        .insert(r.msg_id.clone(), C::Waiting { times: 0, due: now });
                    s.exact.insert(
                        r.msg_id,
                        S::Visible {
                            attempt: 1,
                            at: now,
                        },
                    );
                }
            }
            Op::Receive { max } => {
                let got = w.classic.receive(max, Duration::ZERO).unwrap();
                let short = got.len() < max;
                for m in got {
                    let id = m.msg_id.clone();
                    prop_assert!(stored.contains(&id), "step {step}: {id} never sent");
                    prop_assert_eq!(&m.topic, "t", "step {}: topic of {}", step, &id);
                    if !g.loose.contains(&id) {
                        match g.exact.get(&id).copied() {
                            Some(C::Waiting { times, due }) => {
                                prop_assert!(
                                    due <= now,
                                    "step {step}: classic: {id} came {} ms early",
                                    due - now
                                );
                                prop_assert_eq!(
                                    m.reconsume_times,
                                    times,
                                    "step {}: classic: reconsume count of {}",
                                    step,
                                    &id
                                );
                                g.exact.insert(id.clone(), C::Held { times });
                            }
                            other => {
                                return Err(TestCaseError::fail(format!(
                                    "step {step}: classic: {id} delivered while {other:?}"
                                )))
                            }
                        }
                    }
                    g.touched.insert(id);
                    g_held.push((m, now));
                }
                if short {
                    let due = |st: &C| matches!(st, C::Waiting { due, .. } if *due <= now);
                    g.none_left(due, "classic", max, step)?;
                }
            }
            Op::Ack { pick } => {
                if !g_held.is_empty() {
                    let (m, _) = g_held.remove(pick % g_held.len());
                    w.classic.ack(&m).unwrap();
                    if let Some(st) = g.exact.get_mut(&m.msg_id) {
                        prop_assert!(matches!(st, C::Held { .. }), "step {step}: {st:?}");
                        *st = C::Acked;
                    }
                    g.acked.insert(m.msg_id);
                }
            }
            Op::Nack { pick, delay } => {
                if !g_held.is_empty() {
                    let (m, _) = g_held.remove(pick % g_held.len());
                    match delay {
                        None => w.classic.nack(&m).unwrap(),
                        Some(secs) => w.classic.nack_after(&m, Duration::from_secs(secs)).unwrap(),
                    }
                    if let Some(st) = g.exact.get_mut(&m.msg_id) {
                        prop_assert_eq!(
                            *st,
                            C::Held {
                                times: m.reconsume_times
                            }
                        );
                        *st = classic_failed(m.reconsume_times, now, delay.map(|s| s * 1000));
                    }
                }
            }
            Op::Late { pick, nack } => {
                if !g_expired.is_empty() {
                    let m = g_expired.remove(pick % g_expired.len());
                    if nack {
                        w.classic.nack(&m).unwrap();
                    } else {
                        w.classic.ack(&m).unwrap();
                    }
                }
            }
            Op::SimpleReceive { max } => {
                let got = w.simple.receive(max, Duration::ZERO).unwrap();
                let short = got.len() < max;
                for m in got {
                    let id = m.msg_id.clone();
                    prop_assert!(stored.contains(&id), "step {step}: {id} never sent");
                    prop_assert_eq!(&m.topic, "t", "step {}: topic of {}", step, &id);
                    if let Some(at) = s_held.iter().position(|h| h.msg_id == id) {
                        let old = s_held.remove(at);
                        s_stale.push((id.clone(), old.receipt_handle.unwrap()));
                    }
                    if !s.loose.contains(&id) {
                        match s.exact.get(&id).copied() {
                            Some(S::Visible { attempt, at }) => {
                                prop_assert!(
                                    at <= now,
                                    "step {step}: simple: {id} came {} ms early",
                                    at - now
                                );
                                prop_assert_eq!(
                                    m.delivery_attempt,
                                    attempt,
                                    "step {}: simple: attempt of {}",
                                    step,
                                    &id
                                );
                                s.exact.insert(
                                    id.clone(),
                                    S::Held {
                                        attempt,
                                        until: now + INVISIBLE_MS,
                                    },
                                );
                            }
                            other => {
                                return Err(TestCaseError::fail(format!(
                                    "step {step}: simple: {id} delivered while {other:?}"
                                )))
                            }
                        }
                    }
                    s.touched.insert(id);
                    s_held.push(m);
                }
                if short {
                    let due = |st: &S| matches!(st, S::Visible { at, .. } if *at <= now);
                    s.none_left(due, "simple", max, step)?;
                }
            }
            Op::SimpleAck { pick } => {
                if !s_held.is_empty() {
                    let m = s_held.remove(pick % s_held.len());
                    let id = m.msg_id.clone();
                    let done = w.simple.ack(&m);
                    if simple_took(&done, s.exact.get(&id).copied(), "ack", &id, step)? {
                        s.exact.insert(id.clone(), S::Acked);
                    }
                    if done.is_ok() {
                        s.acked.insert(id.clone());
                    }
                    s_stale.push((id, m.receipt_handle.unwrap()));
                }
            }
            Op::SimpleAckStale { pick } => {
                if !s_stale.is_empty() {
                    let (id, handle) = s_stale[pick % s_stale.len()].clone();
                    match w.simple.ack_handle(&handle) {
                        Err(Error::InvalidReceiptHandle(_)) => {}
                        Ok(()) => {
                            prop_assert!(
                                s.loose.contains(&id),
                                "step {step}: simple: a stale handle of {id} was taken"
                            );
                            s.acked.insert(id.clone());
                            s_held.retain(|h| h.msg_id != id);
                        }
                        Err(e) => {
                            return Err(TestCaseError::fail(format!(
                                "step {step}: simple stale ack: {e}"
                            )))
                        }
                    }
                }
            }
            Op::SimpleChange { pick, secs } => {
                if !s_held.is_empty() {
                    let at = pick % s_held.len();
                    let id = s_held[at].msg_id.clone();
                    let old = s_held[at].receipt_handle.clone().unwrap();
                    let attempt = s_held[at].delivery_attempt;
                    let (done, ms) = match secs {
                        Some(secs) => (
                            w.simple.change_invisible_duration(
                                &mut s_held[at],
                                Duration::from_secs(secs),
                            ),
                            secs * 1000,
                        ),
                        None => (
                            w.simple.nack(&s_held[at], None),
                            LEVELS_MS[(1 + attempt as usize).min(LEVELS_MS.len() - 1)],
                        ),
                    };
                    if simple_took(&done, s.exact.get(&id).copied(), "change", &id, step)? {
                        let next = if ms == 0 {
                            // Visible at once: it expires on the next due run.
                            simple_expired(attempt, now)
                        } else {
                            S::Held {
                                attempt,
                                until: now + ms,
                            }
                        };
                        s.exact.insert(id.clone(), next);
                    }
                    match done {
                        Ok(()) if secs.is_some() => s_stale.push((id, old)),
                        Ok(()) => {
                            // A nack: the delivery is over.
                            let m = s_held.remove(at);
                            s_stale.push((id, m.receipt_handle.unwrap()));
                        }
                        Err(_) => {
                            s_held.remove(at);
                            s_stale.push((id, old));
                        }
                    }
                    if ms == 0 {
                        w.broker.tick().unwrap();
                    }
                }
            }
            Op::SimpleDead { pick } => {
                if !s_held.is_empty() {
                    let m = s_held.remove(pick % s_held.len());
                    let id = m.msg_id.clone();
                    let handle = m.receipt_handle.unwrap();
                    let done = w.simple.dead_letter_handle(&handle);
                    if simple_took(&done, s.exact.get(&id).copied(), "dead letter", &id, step)? {
                        s.exact.insert(id.clone(), S::Dead);
                    }
                    s_stale.push((id, handle));
                }
            }
            Op::Advance { secs } => {
                w.clock.advance_ms(secs * 1000);
                w.broker.tick().unwrap();
                let now = w.now();
                let (expired, live): (Vec<_>, Vec<_>) = g_held
                    .drain(..)
                    .partition(|(_, at)| at + ACK_TIMEOUT_MS <= now);
                g_held = live;
                for (m, at) in expired {
                    if let Some(st) = g.exact.get_mut(&m.msg_id) {
                        *st = classic_failed(m.reconsume_times, at + ACK_TIMEOUT_MS, None);
                    }
                    g_expired.push(m);
                }
                for st in s.exact.values_mut() {
                    if let S::Held { attempt, until } = *st {
                        if until <= now {
                            *st = simple_expired(attempt, until);
                        }
                    }
                }
            }
            Op::Redrive { simple, limit } => {
                let group = if simple { "s" } else { "g" };
                let before = w.dead(group);
                let n = w.broker.redrive(group, limit, |_, _| true).unwrap();
                let want = limit.map_or(before.len(), |l| before.len().min(l as usize));
                prop_assert_eq!(n as usize, want, "step {}: redrive of {}", step, group);
                prop_assert_eq!(&w.dead(group), &before[want..].to_vec());
                for id in &before[..want] {
                    if simple {
                        if let Some(st) = s.exact.get_mut(id) {
                            prop_assert_eq!(*st, S::Dead, "step {}: redrove {}", step, id);
                            *st = S::Visible {
                                attempt: 1,
                                at: now,
                            };
                        }
                    } else if let Some(st) = g.exact.get_mut(id) {
                        prop_assert_eq!(*st, C::Dead, "step {}: redrove {}", step, id);
                        *st = C::Waiting { times: 0, due: now };
                    }
                }
                w.copied_once(group, step)?;
            }
            Op::RedriveStopped { simple } => {
                let group = if simple { "s" } else { "g" };
                let before = w.dead(group);
                let n = w.broker.redrive(group, None, |_, _| false).unwrap();
                prop_assert_eq!(n, 0);
                prop_assert_eq!(&w.dead(group), &before, "step {}: a stopped redrive", step);
            }
            Op::RedriveCrash { simple } => {
                let group = if simple { "s" } else { "g" };
                let before = w.dead(group);
                if before.is_empty() {
                    continue;
                }
                let copy = tempfile::tempdir().unwrap();
                let mut taken = false;
                let dir = w.dir().to_path_buf();
                let n = w
                    .broker
                    .redrive(group, None, |done, _| {
                        if done > 0 && !taken {
                            common::copy_store(&dir, copy.path());
                            taken = true;
                        }
                        true
                    })
                    .unwrap();
                prop_assert_eq!(n as usize, before.len());
                prop_assert!(taken);
                w.classic.close().unwrap();
                w.simple.close().unwrap();
                w = w.crashed(copy);
                p = w.broker.producer("p").unwrap();
                g.crash();
                s.crash();
                g_held.clear();
                g_expired.clear();
                crashes += 1;
                // The group had not moved past its dead letters: they are listed
                // still, and the second run copies none of them again.
                prop_assert_eq!(&w.dead(group), &before, "step {}: after the crash", step);
                w.broker.redrive(group, None, |_, _| true).unwrap();
                prop_assert_eq!(w.dead(group), Vec::<String>::new());
                w.copied_once(group, step)?;
            }
            Op::Restart => {
                w.classic.close().unwrap();
                w.simple.close().unwrap();
                w.broker.close().unwrap();
                let World { clock, dirs, .. } = w;
                w = World::open(clock, dirs);
                p = w.broker.producer("p").unwrap();
                let now = w.now();
                // What the classic consumer held is delivered again from its queue.
                for (m, _) in g_held.drain(..) {
                    if let Some(st) = g.exact.get_mut(&m.msg_id) {
                        *st = C::Waiting {
                            times: m.reconsume_times,
                            due: now,
                        };
                    }
                }
                g_expired.clear();
            }
            Op::Crash => {
                let copy = tempfile::tempdir().unwrap();
                common::copy_store(w.dir(), copy.path());
                w = w.crashed(copy);
                p = w.broker.producer("p").unwrap();
                g.crash();
                s.crash();
                g_held.clear();
                g_expired.clear();
                crashes += 1;
            }
        }

        // Dead letters: exactly the model's, each once; more only of loosened ones.
        for (group, exact, loose) in [
            (
                "g",
                g.exact
                    .iter()
                    .filter(|(_, st)| **st == C::Dead)
                    .map(|(id, _)| id.clone())
                    .collect::<Vec<_>>(),
                &g.loose,
            ),
            (
                "s",
                s.exact
                    .iter()
                    .filter(|(_, st)| **st == S::Dead)
                    .map(|(id, _)| id.clone())
                    .collect::<Vec<_>>(),
                &s.loose,
            ),
        ] {
            let listed = w.dead(group);
            for id in &exact {
                let times = listed.iter().filter(|l| *l == id).count();
                prop_assert_eq!(
                    times,
                    1,
                    "step {}: {}: {} listed {} times",
                    step,
                    group,
                    id,
                    times
                );
            }
            for id in &listed {
                prop_assert!(
                    exact.contains(id) || loose.contains(id),
                    "step {step}: {group}: {id} is a dead letter, the model says {:?}",
                    if group == "g" {
                        format!("{:?}", g.exact.get(id))
                    } else {
                        format!("{:?}", s.exact.get(id))
                    }
                );
            }
        }
        // Lag: the messages neither acked nor dead.
        let g_low = g
            .exact
            .values()
            .filter(|st| matches!(st, C::Waiting { .. } | C::Held { .. }))
            .count() as u64;
        let s_low = s
            .exact
            .values()
            .filter(|st| matches!(st, S::Visible { .. } | S::Held { .. }))
            .count() as u64;
        for (group, low, loose) in [("g", g_low, &g.loose), ("s", s_low, &s.loose)] {
            let lag = w.broker.lag(group, "t").unwrap();
            if loose.is_empty() {
                prop_assert_eq!(lag, low, "step {}: lag of {}", step, group);
            } else {
                prop_assert!(
                    lag >= low,
                    "step {step}: lag of {group} is {lag}, below {low}"
                );
            }
        }
    }

    // Redrive everything and ack everything, with time moving on so retries and
    // invisibility come due.
    for round in 0..60 {
        let mut any = false;
        for (m, _) in g_held.drain(..) {
            w.classic.ack(&m).unwrap();
            g.acked.insert(m.msg_id);
        }
        for m in s_held.drain(..) {
            if w.simple.ack(&m).is_ok() {
                s.acked.insert(m.msg_id);
            }
        }
        for group in ["g", "s"] {
            if w.broker.redrive(group, None, |_, _| true).unwrap() > 0 {
                any = true;
            }
            w.copied_once(group, usize::MAX)?;
        }
        for m in common::drain(&w.classic) {
            prop_assert!(stored.contains(&m.msg_id), "drain: {} never sent", m.msg_id);
            w.classic.ack(&m).unwrap();
            g.acked.insert(m.msg_id);
            any = true;
        }
        loop {
            let got = w.simple.receive(64, Duration::ZERO).unwrap();
            if got.is_empty() {
                break;
            }
            any = true;
            for m in got {
                prop_assert!(stored.contains(&m.msg_id), "drain: {} never sent", m.msg_id);
                w.simple.ack(&m).unwrap();
                s.acked.insert(m.msg_id);
            }
        }
        if !any && round > 0 {
            break;
        }
        w.clock.advance_ms(3_600_000);
        w.broker.tick().unwrap();
    }
    prop_assert_eq!(&g.acked, &stored, "the classic group missed messages");
    prop_assert_eq!(&s.acked, &stored, "the simple group missed messages");
    for group in ["g", "s"] {
        prop_assert_eq!(
            w.dead(group),
            Vec::<String>::new(),
            "{} after the drain",
            group
        );
        prop_assert_eq!(
            w.broker.lag(group, "t").unwrap(),
            0,
            "lag of {} after the drain ({} crashes)",
            group,
            crashes
        );
    }
    w.broker.close().unwrap();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::model_cases(48), ..ProptestConfig::default() })]

    #[test]
    fn dead_letters_and_redrives_follow_the_model(ops in proptest::collection::vec(op(), 1..100)) {
        run(ops)?;
    }
}
