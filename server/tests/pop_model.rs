//! Property test of the consumer RPCs as the official clients use them: random
//! sequences of SendMessage, ReceiveMessage from three clients of one group (each
//! with its own filter expression, alike or not), AckMessage with current and stale
//! receipt handles, ChangeInvisibleDuration, ForwardMessageToDeadLetterQueue,
//! auto-renewed deliveries (a PushConsumer's) and NotifyClientTermination, time
//! moving under a ManualClock, clean restarts of the server and crashes (the store's
//! files copied as they are, then served), for a normal group and a FIFO one (messages
//! in message groups or none), checked against a model after every step:
//! - a client gets only what was sent and what its own expression takes, and never a
//!   delivery past the last attempt;
//! - for a message no crash has touched: no delivery while an earlier one is
//!   invisible, none after an ack or a dead letter, and its attempt counts up by one;
//!   in a FIFO group, none before every earlier message of its message group is done;
//! - an ack, change or dead letter of a live delivery's handle is taken; a handle
//!   that a later delivery or change replaced is refused with INVALID_RECEIPT_HANDLE
//!   while the message is not done; an ack or change of a done message is OK (as
//!   Apache's proxy answers a client's retry);
//! - at the end, after ten minutes in which the sequence's clients fall silent (so
//!   the server forgets them and gives back what it renewed for them) and others
//!   drain the group, every message that every client's expression takes has been
//!   acked or dead-lettered; the dead-letter queue holds the model's dead letters
//!   (when no crash intervened); when the clients agree, the group's lag is zero.
//!
//! The server's housekeeping (renewals, idle clients) runs after each move of the
//! clock.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use pocketmq::{Broker, BrokerConfig, ManualClock};
use pocketmq_server::proto::receive_message_response::Content;
use pocketmq_server::proto::*;
use pocketmq_server::{GroupConfig, ServerHandle};
use proptest::prelude::*;

const GROUP: &str = "s";
const TOPIC: &str = "t";
/// Deliveries before a message goes to `%DLQ%s` (max_reconsume_times 2).
const MAX_ATTEMPTS: i32 = 3;
const TAGS: [&str; 3] = ["a", "b", "c"];
/// The invisible time of an auto-renewed delivery (the server's default).
const AUTO_RENEW_S: i64 = 60;

/// A client's filter expression, and which tags it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expr {
    All,
    A,
    AOrB,
    /// SQL92 over the user property `n` (the tag's index): b and c.
    Sql,
}

impl Expr {
    fn takes(self, tag: u8) -> bool {
        match self {
            Expr::All => true,
            Expr::A => tag == 0,
            Expr::AOrB => tag <= 1,
            Expr::Sql => tag >= 1,
        }
    }

    fn filter(self) -> FilterExpression {
        let (r#type, expression) = match self {
            Expr::All => (FilterType::Tag, "*"),
            Expr::A => (FilterType::Tag, "a"),
            Expr::AOrB => (FilterType::Tag, "a || b"),
            Expr::Sql => (FilterType::Sql, "n >= 1"),
        };
        FilterExpression {
            r#type: r#type as i32,
            expression: expression.into(),
        }
    }
}

/// The clients' expressions: alike (what RocketMQ asks of a group), or a group in
/// the middle of changing its subscription.
const EXPRS: [[Expr; 3]; 6] = [
    [Expr::All; 3],
    [Expr::AOrB; 3],
    [Expr::Sql; 3],
    [Expr::All, Expr::A, Expr::AOrB],
    [Expr::A, Expr::Sql, Expr::All],
    [Expr::AOrB, Expr::Sql, Expr::A],
];

#[derive(Debug, Clone)]
enum Op {
    /// A message with this tag and, when given, message group `k<key>`.
    Send {
        tag: u8,
        key: Option<u8>,
    },
    /// A receive invisible for `secs`; None: auto-renewed by the server, as a
    /// PushConsumer receives.
    Receive {
        client: usize,
        max: i32,
        secs: Option<i64>,
    },
    Ack {
        pick: usize,
    },
    AckStale {
        pick: usize,
    },
    Change {
        pick: usize,
        secs: i64,
    },
    Forward {
        pick: usize,
    },
    Advance {
        secs: u64,
    },
    /// NotifyClientTermination: what the server renewed for the client becomes
    /// visible again; the client holds nothing any more.
    Terminate {
        client: usize,
    },
    Restart,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, prop::option::of(0u8..3)).prop_map(|(tag, key)| Op::Send { tag, key }),
        4 => (0usize..3, 1i32..6, prop_oneof![4 => (10i64..40).prop_map(Some), 1 => Just(None)])
            .prop_map(|(client, max, secs)| Op::Receive { client, max, secs }),
        3 => any::<usize>().prop_map(|pick| Op::Ack { pick }),
        1 => any::<usize>().prop_map(|pick| Op::AckStale { pick }),
        1 => (any::<usize>(), prop_oneof![Just(0i64), 10i64..40])
            .prop_map(|(pick, secs)| Op::Change { pick, secs }),
        1 => any::<usize>().prop_map(|pick| Op::Forward { pick }),
        2 => (1u64..50).prop_map(|secs| Op::Advance { secs }),
        1 => (0usize..3).prop_map(|client| Op::Terminate { client }),
        1 => Just(Op::Restart),
        1 => Just(Op::Crash),
    ]
}

/// One message as the model knows it.
#[derive(Debug, Default)]
struct Msg {
    tag: u8,
    /// Its message group, and its place in the order of sends.
    key: Option<u8>,
    seq: u32,
    /// Deliveries that counted as attempts.
    attempts: i32,
    /// The current delivery's handle, and until when it is invisible (ms).
    handle: Option<String>,
    until: u64,
    acked: bool,
    /// Forwarded to the dead-letter queue by a client.
    dead: bool,
    /// Passed over for good: its redelivery came while an expression that does not
    /// take it held the group (as Apache skips what a request's filter passes over).
    skipped: bool,
    /// An ack of an expired last attempt was taken: it may have been dead-lettered
    /// first (the answer is OK either way).
    maybe_dead: bool,
    /// A crash touched it: it may come again, with any attempt, at any time.
    loose: bool,
    /// A restart while another client's expression held it back (given back
    /// unconsumed, which a restart counts as an attempt): its attempt may be higher.
    attempt_loose: bool,
}

impl Msg {
    fn done(&self) -> bool {
        self.acked || self.dead || self.skipped
    }

    /// Whether the group may have passed it over for good: not taken by every
    /// client's expression, and visible (under another client's expression).
    fn may_skip(&self, now: u64, exprs: &[Expr; 3]) -> bool {
        self.until <= now && !exprs.iter().all(|e| e.takes(self.tag))
    }

    /// Its last attempt is over: the engine dead-letters it (if not done already).
    fn expiring(&self, now: u64) -> bool {
        self.attempts == MAX_ATTEMPTS && self.until <= now && !self.done()
    }
}

/// A handle a client holds: message id, handle, the client, and whether the server
/// renews its delivery.
#[derive(Debug, Clone)]
struct Held {
    id: String,
    handle: String,
    client: usize,
    renewed: bool,
}

struct World {
    clock: ManualClock,
    dirs: Vec<tempfile::TempDir>,
    server: Option<ServerHandle>,
    client: Client,
    fifo: bool,
}

fn client_id(c: usize) -> String {
    format!("modelhost@{c}@0@model{c}")
}

async fn open(clock: &ManualClock, dir: &Path, fifo: bool) -> (ServerHandle, Client) {
    let broker = Broker::open(BrokerConfig {
        path: Some(dir.to_path_buf()),
        clock: Arc::new(clock.clone()),
        segment_size: Some(64 * 1024),
        ..BrokerConfig::default()
    })
    .unwrap();
    broker.create_topic(TOPIC, 4).unwrap();
    let mut cfg = config();
    // A receive that finds nothing answers at once.
    cfg.limits.long_polling_min = Duration::ZERO;
    cfg.groups.insert(
        GROUP.into(),
        GroupConfig {
            fifo,
            max_reconsume_times: MAX_ATTEMPTS as u32 - 1,
        },
    );
    start(broker, cfg).await
}

impl World {
    fn now(&self) -> u64 {
        use pocketmq::Clock;
        self.clock.now_ms()
    }

    fn server(&self) -> &ServerHandle {
        self.server.as_ref().unwrap()
    }

    async fn reopen(&mut self, dir: &Path) {
        self.server.take().unwrap().shutdown().await.unwrap();
        let (server, client) = open(&self.clock, dir, self.fifo).await;
        self.server = Some(server);
        self.client = client;
    }

    async fn send(&mut self, n: u32, tag: u8, key: Option<u8>) -> Code {
        let mut m = message(TOPIC, format!("m{n}").as_bytes(), &message_id(n));
        let sys = m.system_properties.as_mut().unwrap();
        sys.tag = Some(TAGS[tag as usize].into());
        if let Some(k) = key {
            sys.message_type = MessageType::Fifo as i32;
            sys.message_group = Some(format!("k{k}"));
        }
        m.user_properties.insert("n".into(), tag.to_string());
        let r = self
            .client
            .send_message(req(SendMessageRequest { messages: vec![m] }))
            .await
            .unwrap()
            .into_inner();
        code(&r.status)
    }

    /// A receive that waits for nothing: its status and messages.
    async fn receive(
        &mut self,
        client: usize,
        expr: Expr,
        max: i32,
        secs: Option<i64>,
    ) -> Vec<Message> {
        let r = ReceiveMessageRequest {
            group: Some(resource(GROUP)),
            message_queue: Some(MessageQueue {
                topic: Some(resource(TOPIC)),
                ..MessageQueue::default()
            }),
            filter_expression: Some(expr.filter()),
            batch_size: max,
            invisible_duration: secs.map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
            auto_renew: secs.is_none(),
            long_polling_timeout: Some(prost_types::Duration::default()),
            attempt_id: None,
        };
        let mut request = req_as(&client_id(client), r);
        request.set_timeout(Duration::from_secs(10));
        let mut stream = self
            .client
            .receive_message(request)
            .await
            .unwrap()
            .into_inner();
        let (mut status, mut msgs) = (None, Vec::new());
        while let Some(item) = stream.message().await.unwrap() {
            match item.content.unwrap() {
                Content::Status(s) => status = Some(Code::try_from(s.code).unwrap()),
                Content::Message(m) => msgs.push(m),
                Content::DeliveryTimestamp(_) => {}
            }
        }
        let status = status.expect("a status");
        assert_eq!(
            status,
            if msgs.is_empty() {
                Code::MessageNotFound
            } else {
                Code::Ok
            },
            "the receive's status"
        );
        msgs
    }

    async fn terminate(&mut self, client: usize) -> Code {
        let r = self
            .client
            .notify_client_termination(req_as(
                &client_id(client),
                NotifyClientTerminationRequest {
                    group: Some(resource(GROUP)),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        code(&r.status)
    }

    async fn ack(&mut self, h: &Held) -> Code {
        let r = self
            .client
            .ack_message(req_as(
                &client_id(h.client),
                AckMessageRequest {
                    group: Some(resource(GROUP)),
                    topic: Some(resource(TOPIC)),
                    entries: vec![AckMessageEntry {
                        message_id: h.id.clone(),
                        receipt_handle: h.handle.clone(),
                        lite_topic: None,
                    }],
                },
            ))
            .await
            .unwrap()
            .into_inner();
        code(&r.entries[0].status)
    }

    async fn change(&mut self, h: &Held, secs: i64) -> (Code, String) {
        let r = self
            .client
            .change_invisible_duration(req_as(
                &client_id(h.client),
                ChangeInvisibleDurationRequest {
                    group: Some(resource(GROUP)),
                    topic: Some(resource(TOPIC)),
                    receipt_handle: h.handle.clone(),
                    invisible_duration: Some(prost_types::Duration {
                        seconds: secs,
                        nanos: 0,
                    }),
                    message_id: h.id.clone(),
                    lite_topic: None,
                    suspend: None,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        (code(&r.status), r.receipt_handle)
    }

    async fn forward(&mut self, h: &Held, attempt: i32) -> Code {
        let r = self
            .client
            .forward_message_to_dead_letter_queue(req_as(
                &client_id(h.client),
                ForwardMessageToDeadLetterQueueRequest {
                    group: Some(resource(GROUP)),
                    topic: Some(resource(TOPIC)),
                    receipt_handle: h.handle.clone(),
                    message_id: h.id.clone(),
                    delivery_attempt: attempt,
                    max_delivery_attempts: MAX_ATTEMPTS,
                    lite_topic: None,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        code(&r.status)
    }
}

fn sys(m: &Message) -> &SystemProperties {
    m.system_properties.as_ref().unwrap()
}

/// The model's state besides the world.
#[derive(Default)]
struct Model {
    msgs: HashMap<String, Msg>,
    held: Vec<Held>,
    stale: Vec<Held>,
    crashed: bool,
    /// The group is FIFO: a message group's next message only after the previous
    /// one is done.
    fifo: bool,
    /// When each client last called (broker clock), while the server knows it.
    seen: [Option<u64>; 3],
}

impl Model {
    fn called(&mut self, client: usize, now: u64) {
        self.seen[client] = Some(now);
    }

    /// The client's auto-renewed deliveries may go back at any time from `now` (the
    /// server lost track of the client, or of their renewals): visible, nobody holding
    /// them.
    fn lose_renewed(&mut self, client: Option<usize>, now: u64) {
        for h in self
            .held
            .iter()
            .filter(|h| h.renewed && client.is_none_or(|c| h.client == c))
        {
            let msg = self.msgs.get_mut(&h.id).unwrap();
            msg.until = msg.until.min(now);
            msg.handle = None;
        }
        self.held
            .retain(|h| !(h.renewed && client.is_none_or(|c| h.client == c)));
    }

    /// After the server's housekeeping at `now`: clients silent for its idle timeout
    /// (120 s) are forgotten, and what it renewed for them goes back.
    fn swept(&mut self, now: u64) {
        for c in 0..3 {
            if self.seen[c].is_some_and(|t| now - t >= 120_000) {
                self.seen[c] = None;
                self.lose_renewed(Some(c), now);
            }
        }
    }

    /// Checks a delivery against the model and records it.
    fn delivered(
        &mut self,
        m: &Message,
        client: usize,
        expr: Expr,
        secs: i64,
        now: u64,
        step: usize,
    ) -> Result<(), TestCaseError> {
        let s = sys(m);
        let id = s.message_id.clone();
        let attempt = s.delivery_attempt.unwrap_or(0);
        let handle = s.receipt_handle.clone().unwrap_or_default();
        // FIFO: every earlier message of its group that the expression takes is done
        // (or its last attempt is over, which dead-letters it). A crash may deliver
        // again what came before it, so the check stops at the first crash.
        if let Some(msg) = self.msgs.get(&id).filter(|_| self.fifo && !self.crashed) {
            let before = self.msgs.iter().find(|(_, o)| {
                o.key.is_some()
                    && o.key == msg.key
                    && o.seq < msg.seq
                    && expr.takes(o.tag)
                    && !o.done()
                    && !o.expiring(now)
            });
            if let Some((other, _)) = before {
                return Err(TestCaseError::fail(format!(
                    "step {step}: {id} delivered while {other}, before it in its message group, is not done"
                )));
            }
        }
        let Some(msg) = self.msgs.get_mut(&id) else {
            return Err(TestCaseError::fail(format!(
                "step {step}: {id} was never sent"
            )));
        };
        prop_assert!(
            expr.takes(msg.tag),
            "step {}: client {} ({:?}) got {} tagged {}",
            step,
            client,
            expr,
            id,
            TAGS[msg.tag as usize]
        );
        prop_assert_eq!(s.tag.as_deref(), Some(TAGS[msg.tag as usize]));
        prop_assert!(
            (1..=MAX_ATTEMPTS).contains(&attempt),
            "step {}: {} delivered with attempt {}",
            step,
            id,
            attempt
        );
        prop_assert!(
            !handle.is_empty(),
            "step {}: a delivery with no handle",
            step
        );
        if msg.loose {
            msg.acked = false;
            msg.dead = false;
            msg.skipped = false;
        } else {
            prop_assert!(
                !msg.done(),
                "step {}: {} delivered again after it was {}",
                step,
                id,
                if msg.acked { "acked" } else { "dead-lettered" }
            );
            prop_assert!(
                msg.until <= now,
                "step {}: {} delivered {} ms before its invisibility ended",
                step,
                id,
                msg.until - now
            );
            if msg.attempt_loose {
                prop_assert!(attempt > msg.attempts, "step {}: attempt of {}", step, id);
            } else {
                prop_assert_eq!(
                    attempt,
                    msg.attempts + 1,
                    "step {}: attempt of {}",
                    step,
                    id
                );
            }
        }
        msg.attempts = attempt;
        msg.attempt_loose = false;
        msg.handle = Some(handle.clone());
        msg.until = now + secs as u64 * 1000;
        if let Some(at) = self.held.iter().position(|h| h.id == id) {
            let old = self.held.remove(at);
            self.stale.push(old);
        }
        self.held.push(Held {
            id,
            handle,
            client,
            renewed: false,
        });
        Ok(())
    }

    /// Whether `h` is its message's current handle, and the delivery still live
    /// (invisible).
    fn state(&self, h: &Held, now: u64) -> (bool, bool) {
        let msg = &self.msgs[&h.id];
        let current = msg.handle.as_deref() == Some(h.handle.as_str());
        (current, current && msg.until > now)
    }
}

async fn run(exprs: [Expr; 3], fifo: bool, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let clock = ManualClock::new(1_800_000_000_000);
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = open(&clock, dir.path(), fifo).await;
    let mut w = World {
        clock,
        dirs: vec![dir],
        server: Some(server),
        client,
        fifo,
    };
    let mut model = Model {
        fifo,
        ..Model::default()
    };
    let mut sent = 0u32;
    for (step, op) in ops.into_iter().enumerate() {
        let now = w.now();
        match op {
            Op::Send { tag, key } => {
                prop_assert_eq!(w.send(sent, tag, key).await, Code::Ok);
                model.msgs.insert(
                    message_id(sent),
                    Msg {
                        tag,
                        key,
                        seq: sent,
                        ..Msg::default()
                    },
                );
                sent += 1;
            }
            Op::Receive { client, max, secs } => {
                let got = w.receive(client, exprs[client], max, secs).await;
                model.called(client, now);
                prop_assert!(got.len() <= max as usize);
                for m in &got {
                    let renewed = secs.is_none();
                    let secs = secs.unwrap_or(AUTO_RENEW_S);
                    model.delivered(m, client, exprs[client], secs, now, step)?;
                    model.held.last_mut().unwrap().renewed = renewed;
                }
            }
            Op::Terminate { client } => {
                prop_assert_eq!(w.terminate(client).await, Code::Ok);
                model.seen[client] = None;
                // What the server renewed goes back at once (visible, the attempt
                // counted); the rest stays invisible until it expires.
                model.lose_renewed(Some(client), now);
                model.held.retain(|h| h.client != client);
                model.stale.retain(|h| h.client != client);
            }
            Op::Ack { pick } | Op::AckStale { pick } => {
                let list = if matches!(op, Op::Ack { .. }) {
                    &mut model.held
                } else {
                    &mut model.stale
                };
                if list.is_empty() {
                    continue;
                }
                let h = list.remove(pick % list.len());
                let (current, live) = model.state(&h, now);
                let answer = w.ack(&h).await;
                model.called(h.client, now);
                let msg = model.msgs.get_mut(&h.id).unwrap();
                let may_skip = msg.may_skip(now, &exprs);
                match answer {
                    Code::Ok => {
                        // A replaced handle's ack is OK only for a message done
                        // already: by the engine, too, if its last attempt is over
                        // or the group passed it over.
                        prop_assert!(
                            msg.done() || current || msg.loose || may_skip || msg.expiring(now),
                            "step {}: a replaced handle of {} acked it",
                            step,
                            h.id
                        );
                        if current && !msg.done() {
                            msg.maybe_dead |= msg.expiring(now);
                            msg.acked = true;
                        } else if !msg.done() && !msg.expiring(now) {
                            msg.skipped = true;
                        }
                    }
                    Code::InvalidReceiptHandle => {
                        prop_assert!(
                            !live || msg.loose,
                            "step {}: the live handle of {} was refused",
                            step,
                            h.id
                        );
                        prop_assert!(
                            !msg.done() || msg.loose,
                            "step {}: an ack of {}, done already, was refused",
                            step,
                            h.id
                        );
                    }
                    other => {
                        return Err(TestCaseError::fail(format!(
                            "step {step}: ack of {} answered {other:?}",
                            h.id
                        )))
                    }
                }
                model.stale.push(h);
            }
            Op::Change { pick, secs } => {
                if model.held.is_empty() {
                    continue;
                }
                let at = pick % model.held.len();
                let h = model.held[at].clone();
                let (current, live) = model.state(&h, now);
                let (answer, new) = w.change(&h, secs).await;
                model.called(h.client, now);
                let msg = model.msgs.get_mut(&h.id).unwrap();
                let may_skip = msg.may_skip(now, &exprs);
                match answer {
                    // Done (acked, dead-lettered, passed over): nothing changes, and the
                    // answer carries the handle as sent.
                    Code::Ok if new == h.handle => {
                        prop_assert!(
                            msg.done() || msg.loose || may_skip || msg.expiring(now),
                            "step {}: a change of {}, not done, answered the handle as sent",
                            step,
                            h.id
                        );
                        if !msg.done() && !msg.expiring(now) {
                            msg.skipped = !msg.loose;
                            msg.acked = msg.loose;
                        }
                        model.stale.push(model.held.remove(at));
                    }
                    Code::Ok => {
                        prop_assert!(
                            !msg.done() || msg.loose,
                            "step {}: a change of {}, done already, gave a new handle",
                            step,
                            h.id
                        );
                        prop_assert!(
                            current || msg.loose,
                            "step {}: a replaced handle of {} changed it",
                            step,
                            h.id
                        );
                        msg.handle = Some(new.clone());
                        msg.until = now + secs as u64 * 1000;
                        msg.acked = false;
                        msg.dead = false;
                        msg.skipped = false;
                        // The client holds the new handle; the server no longer
                        // renews the delivery.
                        model.held[at].handle = new;
                        model.held[at].renewed = false;
                        model.stale.push(h);
                    }
                    Code::InvalidReceiptHandle => {
                        prop_assert!(
                            !live || msg.loose,
                            "step {}: the live handle of {} was refused a change",
                            step,
                            h.id
                        );
                        prop_assert!(
                            !msg.done() || msg.loose,
                            "step {}: a change of {}, done already, was refused",
                            step,
                            h.id
                        );
                        model.stale.push(model.held.remove(at));
                    }
                    other => {
                        return Err(TestCaseError::fail(format!(
                            "step {step}: change of {} answered {other:?}",
                            h.id
                        )))
                    }
                }
            }
            Op::Forward { pick } => {
                if model.held.is_empty() {
                    continue;
                }
                let h = model.held.remove(pick % model.held.len());
                let (current, live) = model.state(&h, now);
                let attempt = model.msgs[&h.id].attempts;
                let answer = w.forward(&h, attempt).await;
                model.called(h.client, now);
                let msg = model.msgs.get_mut(&h.id).unwrap();
                match answer {
                    Code::Ok => {
                        prop_assert!(
                            (current && !msg.done()) || msg.loose,
                            "step {}: {} was dead-lettered through a handle that is not current ({})",
                            step,
                            h.id,
                            if msg.done() { "done" } else { "replaced" }
                        );
                        msg.dead = true;
                    }
                    Code::InvalidReceiptHandle => {
                        prop_assert!(
                            !live || msg.loose,
                            "step {}: the live handle of {} was refused a dead letter",
                            step,
                            h.id
                        );
                    }
                    other => {
                        return Err(TestCaseError::fail(format!(
                            "step {step}: dead letter of {} answered {other:?}",
                            h.id
                        )))
                    }
                }
                model.stale.push(h);
            }
            Op::Advance { secs } => {
                w.clock.advance_ms(secs * 1000);
                w.server().broker().tick().unwrap();
                w.server().housekeep().await;
                model.swept(w.now());
            }
            Op::Restart => {
                let dir = w.dirs.last().unwrap().path().to_path_buf();
                w.reopen(&dir).await;
                // A new server: it knows no client, and renews nothing.
                model.seen = [None; 3];
                model.lose_renewed(None, now);
                // A delivery given back unconsumed (read while another client's
                // expression held the group) counts as an attempt after a restart.
                if exprs.iter().any(|e| *e != exprs[0]) {
                    for msg in model.msgs.values_mut().filter(|m| !m.done()) {
                        msg.attempt_loose = true;
                    }
                }
            }
            Op::Crash => {
                let to = tempfile::tempdir().unwrap();
                copy_store(w.dirs.last().unwrap().path(), to.path());
                w.reopen(to.path()).await;
                w.dirs.push(to);
                model.seen = [None; 3];
                model.lose_renewed(None, now);
                for msg in model.msgs.values_mut().filter(|m| m.attempts > 0) {
                    msg.loose = true;
                }
                model.crashed = true;
            }
        }
    }

    // Drain: ten minutes in steps of 30 s, the server's housekeeping after each, and
    // other clients of the group (one per expression) taking what they can and acking
    // it. The sequence's clients fall silent: forgotten after 120 s, what the server
    // renewed for them comes back. Every invisibility is over well before the end, so
    // a last round brings nothing.
    for round in 0..=20 {
        w.clock.advance_ms(30_000);
        w.server().broker().tick().unwrap();
        w.server().housekeep().await;
        model.swept(w.now());
        let mut any = false;
        for (c, &expr) in exprs.iter().enumerate() {
            let client = 3 + c;
            loop {
                let now = w.now();
                let got = w.receive(client, expr, 32, Some(60)).await;
                if got.is_empty() {
                    break;
                }
                any = true;
                for m in &got {
                    model.delivered(m, client, expr, 60, now, 10_000 + round)?;
                    let h = model.held.pop().unwrap();
                    prop_assert_eq!(w.ack(&h).await, Code::Ok, "drain: the ack of {}", &h.id);
                    model.msgs.get_mut(&h.id).unwrap().acked = true;
                }
            }
        }
        prop_assert!(
            round < 20 || !any,
            "the drain still brought messages after ten minutes"
        );
    }
    let now = w.now();
    let alike = exprs.iter().all(|e| *e == exprs[0]);
    for (id, msg) in &model.msgs {
        let everyone = exprs.iter().all(|e| e.takes(msg.tag));
        if everyone || (alike && exprs[0].takes(msg.tag)) {
            prop_assert!(
                msg.done() || msg.expiring(now),
                "{} (tag {}) was neither acked nor dead-lettered: {:?}",
                id,
                TAGS[msg.tag as usize],
                msg
            );
        }
    }
    let dlq: BTreeSet<String> = stored(w.server().broker(), &format!("%DLQ%{GROUP}"))
        .into_iter()
        .map(|m| m.msg_id)
        .collect();
    if !model.crashed {
        let certain: BTreeSet<String> = model
            .msgs
            .iter()
            .filter(|(_, m)| m.dead || (alike && m.expiring(now)))
            .map(|(id, _)| id.clone())
            .collect();
        let possible: BTreeSet<String> = model
            .msgs
            .iter()
            .filter(|(_, m)| m.dead || m.maybe_dead || m.expiring(now))
            .map(|(id, _)| id.clone())
            .collect();
        prop_assert!(
            certain.is_subset(&dlq) && dlq.is_subset(&possible),
            "the dead-letter queue holds {:?}; the model says at least {:?}, at most {:?}",
            dlq,
            certain,
            possible
        );
    }
    if alike {
        prop_assert_eq!(w.server().broker().lag(GROUP, TOPIC).unwrap(), 0);
    }
    w.server.take().unwrap().shutdown().await.unwrap();
    Ok(())
}

/// Copies a store's files as they are (a crash: what was written is there, nothing
/// closed them).
fn copy_store(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_store(&e.path(), &target);
        } else if e.file_name() != "lock" {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn cases() -> u32 {
    std::env::var("MODEL_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(24)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn consumer_rpcs_do_what_the_model_allows_across_restarts_and_crashes(
        (fifo, exprs) in (any::<bool>(), 0..EXPRS.len())
            .prop_map(|(fifo, i)| (fifo, if fifo { EXPRS[i % 3] } else { EXPRS[i] })),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(exprs, fifo, ops))?;
    }
}
