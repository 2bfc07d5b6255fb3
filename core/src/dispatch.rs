//! Dispatch: the one place a CommitLog record is classified and fanned out
//! (RocketMQ's `ReputMessageService` and its dispatchers). For every record, live
//! right after its append and replayed by recovery on open, in CommitLog order:
//! 1. its ConsumeQueue entry, whose tag code is the tag's hash, or the delivery time
//!    for the schedule and timer topics;
//! 2. its keys, and a caller-given message id, in the key index;
//! 3. the service that owns its topic: the timer wheel for `rmq_sys_wheel_timer`,
//!    the transaction service for half and op records, the simple consumers for
//!    the revive log, the classic consumers for atomic blocks' acks, the recalled
//!    set for recalls of delayed messages; a user record
//!    marks that messages arrived. A record with a dedup id enters the dedup window.
//!
//! Invariants: dispatch is idempotent (replaying a range changes nothing: ConsumeQueue
//! puts below a queue's end are ignored, the index and services dedup), and the live
//! and replay paths build the same queues, index and schedules. They differ where
//! [`Mode`] says: a replayed timer that the timer checkpoint says was delivered is
//! not scheduled again, and a revive record changes the simple consumers' state
//! only on replay (live, the state changed first and the record followed).
//! Dispatch never appends to the log.

use std::collections::HashMap;

use crate::atomic::{replay_ack_record, ReplayedAcks};
use crate::consume_queue::{ConsumeQueue, ConsumeQueues, CqEntry};
use crate::consumer::pop::PopGroups;
use crate::consumer::OffsetTable;
use crate::dedup::{DedupWindow, Key};
use crate::engine::RetryLedger;
use crate::index::KeyIndex;
use crate::message::properties::{self, prop};
use crate::message::record::{RecordSpec, RecordView, SYS_FLAG_MOVED, SYS_FLAG_TX_COMMIT};
use crate::schedule::TimerWheel;
use crate::store::meta::store_err;
use crate::topic;
use crate::transaction::Transactions;
use crate::{Error, Result, TxState};

/// Whether a record was just appended or is being replayed from the log on open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Live,
    Replay,
}

/// Which service owns a record's topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A user topic, or a group's retry or dead-letter topic: consumers read it.
    User,
    /// `SCHEDULE_TOPIC_XXXX`: a message waiting for its delay level.
    Schedule,
    /// `rmq_sys_wheel_timer`: a message waiting for its delivery time.
    Timer,
    /// A transaction's half message.
    Half,
    /// A transaction's op record (its resolution).
    Op,
    /// Simple consumers' deliveries, acks and changes (the revive log).
    Revive,
    /// Classic consumers' acks made in atomic blocks.
    AtomicAck,
    /// Recalls of delayed messages.
    Recall,
    /// An engine topic nobody consumes (discarded transactions).
    Other,
}

pub(crate) fn kind_of(topic: &str) -> Kind {
    match topic {
        topic::SCHEDULE_TOPIC => Kind::Schedule,
        topic::TIMER_TOPIC => Kind::Timer,
        topic::TRANS_HALF_TOPIC => Kind::Half,
        topic::TRANS_OP_HALF_TOPIC => Kind::Op,
        topic::TRANS_CHECK_MAX_TOPIC => Kind::Other,
        topic::REVIVE_TOPIC => Kind::Revive,
        topic::ATOMIC_ACK_TOPIC => Kind::AtomicAck,
        topic::RECALL_TOPIC => Kind::Recall,
        _ => Kind::User,
    }
}

/// A record as dispatch sees it (RocketMQ's `DispatchRequest`): built from what was
/// just encoded (live, no read back) or from the record in the log (replay).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DispatchRequest<'a> {
    pub topic: &'a str,
    pub queue_id: u32,
    pub queue_offset: u64,
    pub phys: u64,
    pub size: u32,
    pub store_ts: u64,
    /// Encoded properties (without the CRC tail).
    pub properties: &'a [u8],
    pub body: &'a [u8],
    /// The key of its `DEDUP_ID` if the send computed it (live); else dispatch
    /// hashes the property.
    pub dedup: Option<Key>,
    /// Where `properties` holds what dispatch reads, if the send said (live).
    pub found: properties::Found,
    pub sys_flag: u32,
}

impl<'a> DispatchRequest<'a> {
    pub fn from_spec(
        spec: &'a RecordSpec,
        phys: u64,
        queue_offset: u64,
        store_ts: u64,
    ) -> DispatchRequest<'a> {
        DispatchRequest {
            topic: &spec.topic,
            queue_id: spec.queue_id,
            queue_offset,
            phys,
            size: spec.encoded_len() as u32,
            store_ts,
            properties: &spec.properties,
            body: &spec.body,
            dedup: spec.dedup,
            found: spec.found,
            sys_flag: spec.sys_flag,
        }
    }

    pub fn from_view(r: &RecordView<'a>) -> DispatchRequest<'a> {
        DispatchRequest {
            topic: r.topic(),
            queue_id: r.queue_id,
            queue_offset: r.queue_offset,
            phys: r.phys,
            size: r.len() as u32,
            store_ts: r.store_ts,
            properties: r.raw_properties(),
            body: r.body(),
            dedup: None,
            found: crate::message::properties::Found::UNKNOWN,
            sys_flag: r.sys_flag,
        }
    }
}

/// The services a record may concern besides the ConsumeQueues and the index.
pub(crate) struct Services<'a> {
    /// Delay of each level, for schedule entries' delivery times.
    pub levels: &'a [u64],
    pub timer: &'a mut TimerWheel,
    pub tx: &'a mut Transactions,
    pub dedup: &'a mut DedupWindow,
    /// Simple consumer groups, and the persisted offsets they start from on replay.
    pub pop: &'a mut PopGroups,
    pub offsets: &'a OffsetTable,
    /// Classic acks of atomic blocks, replayed.
    pub replayed_acks: &'a mut ReplayedAcks,
    /// Lowered to the earliest time a dispatched record makes work due.
    pub next_due: &'a mut u64,
    /// Set when a record consumers read was dispatched.
    pub arrived: &'a mut bool,
    /// The delayed records recalled and not yet come due, with their delivery times.
    pub recalled: &'a mut HashMap<u64, u64>,
    /// Retry copies waiting for their delay, for lags.
    pub retries: &'a mut RetryLedger,
}

/// Classifies `r` and fans it out (see the module docs).
pub(crate) fn dispatch(
    r: &DispatchRequest<'_>,
    mode: Mode,
    queues: &mut ConsumeQueues,
    index: &mut KeyIndex,
    s: &mut Services<'_>,
) -> Result<()> {
    dispatch_to(r, mode, queue_of(queues, r)?, index, s)?;
    if mode == Mode::Replay && kind_of(r.topic) == Kind::Revive {
        let offsets = s.offsets;
        s.pop.replay(
            r.body,
            r.phys,
            |t| queues.count(t),
            |t, g, q| offsets.get(t, g, q).unwrap_or(0),
        );
    }
    Ok(())
}

/// The ConsumeQueue `r` names; a record naming a queue that does not exist is a
/// corrupted store.
pub(crate) fn queue_of<'q>(
    queues: &'q mut ConsumeQueues,
    r: &DispatchRequest<'_>,
) -> Result<&'q mut ConsumeQueue> {
    queues.get_mut(r.topic, r.queue_id).ok_or_else(|| {
        Error::StoreCorrupted(format!(
            "record at {} names queue {} of {}, which does not exist",
            r.phys, r.queue_id, r.topic
        ))
    })
}

/// Indexes the keys of the record at `phys`, its `KEYS` value split at spaces: as
/// bytes, since a key is looked up by its text's bytes (no UTF-8 check is needed).
#[inline(never)]
fn index_keys(index: &mut KeyIndex, topic: &str, keys: &[u8], phys: u64) {
    for k in keys.split(|&b| b == b' ').filter(|k| !k.is_empty()) {
        index.put(topic, k, phys);
    }
}

/// The dedup key a record carrying a dedup id enters the window with, if any: keyed
/// by the topic the producer sent to. Retries and dead letters are the engine's
/// copies, never a producer's send; so is a delayed or half message's copy in its
/// real topic (it keeps `REAL_TOPIC`): its first record, earlier in the log, holds
/// the key, and the window runs from that send, not from a delivery after it. A key
/// the send computed is `Key::of` that topic (its own, or `REAL_TOPIC` once delayed
/// or half) and id.
fn dedup_key(
    kind: Kind,
    r: &DispatchRequest<'_>,
    dedup_id: Option<&[u8]>,
    real_topic: Option<&[u8]>,
) -> Option<Key> {
    match (kind, r.dedup) {
        (Kind::User, _) if topic::is_group_topic(r.topic) || real_topic.is_some() => None,
        (Kind::User | Kind::Schedule | Kind::Timer | Kind::Half, Some(k)) => Some(k),
        _ => properties::text(dedup_id).and_then(|id| {
            let sent_to = match kind {
                Kind::User => Some(r.topic),
                Kind::Schedule | Kind::Timer | Kind::Half => properties::text(real_topic),
                _ => None,
            };
            sent_to.map(|t| Key::of(t, id))
        }),
    }
}

/// `dispatch` to `cq`, the ConsumeQueue `r` names (looked up once for a batch of
/// live records), all but the replay of a revive record.
pub(crate) fn dispatch_to(
    r: &DispatchRequest<'_>,
    mode: Mode,
    cq: &mut ConsumeQueue,
    index: &mut KeyIndex,
    s: &mut Services<'_>,
) -> Result<()> {
    let kind = kind_of(r.topic);
    // Every name dispatch reads, in one pass over the block.
    let [tags, keys, dedup_id, uniq_key, deliver_ms, real_topic, pgroup, resolution] =
        properties::read_values(r.properties, r.found);
    let code = match kind {
        Kind::Schedule => {
            let delay = s
                .levels
                .get(r.queue_id as usize)
                .or(s.levels.last())
                .copied()
                .unwrap_or(0);
            r.store_ts.saturating_add(delay)
        }
        Kind::Timer => properties::text(deliver_ms)
            .and_then(|v| v.parse().ok())
            .unwrap_or(r.store_ts),
        _ => properties::tag_code_of(tags),
    };
    let entry = CqEntry {
        phys: r.phys,
        size: r.size,
        code,
    };
    match mode {
        Mode::Live => cq.put(r.queue_offset, entry),
        Mode::Replay => cq.replay(r.queue_offset, entry),
    }
    .map_err(store_err)?;
    if let Some(keys) = keys {
        index_keys(index, r.topic, keys, r.phys);
    }
    let dedup = if r.dedup.is_some() || dedup_id.is_some() {
        dedup_key(kind, r, dedup_id, real_topic)
    } else {
        None
    };
    if let Some(k) = dedup {
        // Replayed, a delayed or half message bound for a topic deleted since holds
        // no id: the topic created again may take it.
        let deleted = mode == Mode::Replay
            && properties::text(real_topic)
                .and_then(|t| s.pop.incarnations.get(t))
                .is_some_and(|&end| r.phys < end);
        if !deleted {
            s.dedup.put(k, r.phys, r.store_ts);
        }
    }
    // A caller-given id (an engine id names its record by offset already, but a
    // committed transaction's message, or a moved one, is a copy carrying its
    // original's id: `get` finds it here).
    let copy = r.sys_flag & (SYS_FLAG_TX_COMMIT | SYS_FLAG_MOVED) != 0;
    if let Some(id) = uniq_key.filter(|id| copy || !crate::message::id::is_engine_id(id)) {
        index.put_id(id, r.phys);
    }
    match kind {
        Kind::User => *s.arrived = true,
        Kind::Schedule => {
            *s.next_due = (*s.next_due).min(code);
            s.retries
                .on_delayed(r.phys, properties::text(real_topic), r.properties);
        }
        Kind::Timer => {
            s.retries
                .on_delayed(r.phys, properties::text(real_topic), r.properties);
            let scheduled = match mode {
                Mode::Live => s.timer.add(r.queue_offset, code),
                Mode::Replay => s.timer.replay(r.queue_offset, code),
            };
            scheduled.map_err(store_err)?;
            *s.next_due = (*s.next_due).min(code);
        }
        Kind::Half => {
            let group = properties::text(pgroup).unwrap_or("");
            let immunity = properties::value(r.properties, prop::CHECK_IMMUNITY_TIME_IN_SECONDS)
                .and_then(properties::immunity_ms);
            let due =
                s.tx.on_half(r.queue_offset, r.phys, group, r.store_ts, immunity, dedup);
            *s.next_due = (*s.next_due).min(due);
        }
        Kind::Op => {
            // A rolled-back (or discarded) half message gives its dedup id back.
            let rollback = resolution == Some(TxState::Rollback.as_str().as_bytes());
            for p in s.tx.on_op(r.body) {
                if let (true, Some(k)) = (rollback, p.dedup) {
                    s.dedup.release(k, p.phys);
                }
            }
        }
        // Live, the state changed before the record was written; replayed by
        // `dispatch`, which has every topic's queues.
        // Live, the ack took effect as the block was stored.
        Kind::AtomicAck if mode == Mode::Replay => {
            let (offsets, deleted) = (s.offsets, &s.pop.incarnations);
            replay_ack_record(
                r.body,
                |t, o, q| offsets.get(t, o, q),
                |t| deleted.get(t).is_some_and(|&end| r.phys < end),
                s.replayed_acks,
            );
        }
        Kind::Recall => {
            if let Some((phys, due)) = crate::schedule::recall::marker_target(r.body) {
                s.recalled.insert(phys, due);
            }
        }
        Kind::Revive | Kind::AtomicAck | Kind::Other => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::consume_queue::CqEntry;
    use crate::engine::Engine;
    use crate::message::MessageExt;
    use crate::{BrokerConfig, ConsumerConfig, Message, TxState};

    type Snapshot = (
        Vec<(String, u32, Vec<CqEntry>)>,
        Vec<Vec<u64>>,
        Vec<(u64, u64)>,
        Vec<(u64, u64, String, u32, u64)>,
    );

    /// Every ConsumeQueue entry, the index's answers for `keys`, the timers in
    /// delivery order and the pending transactions with their next check.
    fn snapshot(e: &mut Engine, keys: &[(&str, &str)]) -> Snapshot {
        let mut queues: Vec<(String, u32, Vec<CqEntry>)> = e
            .store
            .queues
            .iter()
            .flat_map(|(t, qs)| {
                qs.iter().enumerate().map(move |(q, cq)| {
                    let entries = (cq.min_offset()..cq.max_offset())
                        .filter_map(|qo| cq.entry(qo))
                        .collect();
                    (t.clone(), q as u32, entries)
                })
            })
            .collect();
        queues.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        let index = keys
            .iter()
            .map(|(t, k)| e.store.index.candidates(t, k))
            .collect();
        let timer_cq = e.store.queues.get(crate::topic::TIMER_TOPIC, 0);
        let timers = e.timer.due(u64::MAX / 2, |qo| {
            timer_cq.and_then(|cq| cq.entry(qo)).map_or(0, |x| x.code)
        });
        let tx =
            e.tx.pending
                .iter()
                .map(|(qo, p)| (*qo, p.phys, p.group.clone(), p.checks, p.next_check_ms))
                .collect();
        (queues, index, timers, tx)
    }

    #[test]
    fn live_and_replay_build_the_same_queues_index_timers_and_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig {
            background: false,
            ..BrokerConfig::at(dir.path())
        };
        let t0 = 1_700_000_000_000u64;
        let keys = [("orders", "k1"), ("orders", "k2"), ("orders", "none")];
        let live = {
            let backend = crate::store::open_backend(&config).unwrap();
            let mut e = Engine::open(&config, backend.clone(), t0).unwrap();
            let m = |b: &str| Message::builder("orders", b.as_bytes().to_vec());
            e.send(vec![m("a").tags("paid").key("k1").build()], 0, t0, None)
                .unwrap();
            let batch = (0..3)
                .map(|i| m(&i.to_string()).key("k2").build())
                .collect();
            e.send(batch, 1, t0, None).unwrap();
            e.send(vec![m("later").delay_level(2).build()], 2, t0, None)
                .unwrap();
            e.send(
                vec![m("timer").deliver_at_ms(t0 + 50_000).build()],
                3,
                t0,
                None,
            )
            .unwrap();
            let half = |e: &mut Engine, b: &str| {
                e.send(vec![m(b).build()], 0, t0, Some("pay")).unwrap()[0].queue_offset
            };
            let committed = half(&mut e, "h1");
            half(&mut e, "h2");
            e.resolve(committed, TxState::Commit, t0).unwrap();
            let listener: Arc<dyn crate::TransactionListener> =
                Arc::new(|_: &MessageExt| TxState::Unknown);
            e.tx.listeners.insert("pay".into(), listener);
            let h = e
                .add_consumer(&ConsumerConfig::new("g", "orders"), t0)
                .unwrap();
            let Engine { store, groups, .. } = &mut e;
            let got = groups.receive(store, h, 1, u64::MAX, t0).unwrap();
            let got: Vec<MessageExt> = got
                .into_iter()
                .filter_map(|t| t.build(&store.ids))
                .collect();
            e.nack(h, &got[0], None, t0).unwrap();
            // The unresolved half message is checked once, exactly when it is due.
            let due = t0 + 6000;
            let (checks, _) = {
                let q = e.settings.default_queues;
                e.tx.due(&mut e.store, q, due).unwrap()
            };
            assert_eq!(checks.len(), 1);
            e.run_due(due).unwrap();
            for (name, bytes) in e.metadata(due, false).unwrap() {
                backend.write_meta(name, &bytes).unwrap();
            }
            snapshot(&mut e, &keys)
        };
        // Crash: no close. Derived data goes; replay must rebuild it all.
        std::fs::remove_dir_all(dir.path().join("consumequeue")).unwrap();
        let backend = crate::store::open_backend(&config).unwrap();
        let mut replayed = Engine::open(&config, backend, t0 + 7000).unwrap();
        let replayed = snapshot(&mut replayed, &keys);
        assert!(live
            .0
            .iter()
            .any(|(t, _, _)| t == crate::topic::SCHEDULE_TOPIC));
        assert_eq!(live.3.len(), 1, "one half message stays pending");
        assert_eq!(live.3[0].3, 1, "it was checked once");
        assert_eq!(live.2.len(), 1, "one timer waits");
        assert_eq!(live, replayed);
    }
}
