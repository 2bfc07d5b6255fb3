//! Transactional messages: half messages wait in `RMQ_SYS_TRANS_HALF_TOPIC` (queue 0),
//! invisible to consumers; each resolution writes an op record to
//! `RMQ_SYS_TRANS_OP_HALF_TOPIC` whose body lists resolved half queue offsets
//! (`"12,"`, tag `d`, as RocketMQ). A COMMIT's real message and its op record are one
//! atomic append, so a crash can never deliver a commit twice or lose one.
//!
//! The pending table is rebuilt on open by dispatch (half records from a persisted
//! low-water mark, minus the op records). The first resolution wins: once an offset
//! is resolved, a second COMMIT or a COMMIT after ROLLBACK changes nothing.
//!
//! Check-back: a half message is first checked `transaction_timeout` after it was
//! stored, then every `check_interval`, through its producer group's listener, at
//! most `max_checks` times; then it is discarded to `RMQ_SYS_TRANS_CHECK_MAX_TOPIC`.
//! A check counts only when the group has a listener, so a restarted service gets
//! its chances. Listeners run outside the engine's lock. `producer.rs` is the
//! handle users send with, `TransactionProducer`.

mod producer;

pub use producer::{Begun, TransactionProducer};

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::dedup::Key;
use crate::message::properties::{self, prop};
use crate::message::record::{RecordSpec, SYS_FLAG_TX_COMMIT};
use crate::message_store::{Destination, MessageStore};
use crate::store::meta::{read_json, to_json};
use crate::store::Backend;
use crate::topic;
use crate::{MessageExt, Result};

/// The outcome of a local transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxState {
    /// Make the half message visible to consumers.
    Commit,
    /// Drop the half message.
    Rollback,
    /// Not decided yet: the broker checks back later.
    Unknown,
}

impl TxState {
    /// `COMMIT`, `ROLLBACK` or `UNKNOWN`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TxState::Commit => "COMMIT",
            TxState::Rollback => "ROLLBACK",
            TxState::Unknown => "UNKNOWN",
        }
    }
}

/// Answers the broker's check-back about half messages left UNKNOWN.
pub trait TransactionListener: Send + Sync {
    /// Decides a half message the broker is unsure of. UNKNOWN leaves it pending
    /// (the check still counts toward `max_checks`): a listener that learns the
    /// answer later, from elsewhere, returns UNKNOWN now and calls
    /// `Broker::end_transaction` with `TxId::of(msg)` then. Called on the engine's
    /// background thread (or in `tick`), outside its lock; it should not block.
    fn check(&self, msg: &MessageExt) -> TxState;

    /// `check`, told which broker asks: a listener that answers later (from an event
    /// loop) keeps `broker` to call `end_transaction` on once it knows. By default,
    /// `check`.
    fn check_on(&self, broker: &crate::Broker, msg: &MessageExt) -> TxState {
        let _ = broker;
        self.check(msg)
    }
}

/// Names a half message until it is resolved: its offset in the half topic and in
/// the CommitLog, so it stays valid across restarts. Displayed as 32 lowercase hex
/// digits (`FromStr` reads them back), opaque to whoever holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxId {
    pub(crate) half_offset: u64,
    pub(crate) commitlog_offset: u64,
}

impl TxId {
    /// The id of a half message as a check-back or `send_half` sees it; None for a
    /// message that is not a half message.
    pub fn of(half: &MessageExt) -> Option<TxId> {
        (half.properties.get(prop::TRAN_MSG).map(String::as_str) == Some("true")
            && half.properties.contains_key(prop::PGROUP))
        .then_some(TxId {
            half_offset: half.queue_offset,
            commitlog_offset: half.commitlog_offset,
        })
    }
}

impl std::fmt::Display for TxId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}{:016x}", self.half_offset, self.commitlog_offset)
    }
}

impl std::str::FromStr for TxId {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<TxId> {
        let bad = || crate::Error::invalid(format!("{s:?} is not a transaction id"));
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(TxId {
            half_offset: u64::from_str_radix(&s[..16], 16).map_err(|_| bad())?,
            commitlog_offset: u64::from_str_radix(&s[16..], 16).map_err(|_| bad())?,
        })
    }
}

impl<F> TransactionListener for F
where
    F: Fn(&MessageExt) -> TxState + Send + Sync,
{
    fn check(&self, msg: &MessageExt) -> TxState {
        self(msg)
    }
}

pub(crate) const OP_TAG: &str = "d";

/// An unresolved half message.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub phys: u64,
    pub group: String,
    pub checks: u32,
    pub next_check_ms: u64,
    /// Its dedup id's key, given back if it is rolled back.
    pub dedup: Option<Key>,
}

/// What is persisted besides the logs: check counts and the low-water mark.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct TxCheckpoint {
    /// Every half queue offset below this is resolved.
    #[serde(rename = "lowWater")]
    pub low_water: u64,
    /// Checks made so far of pending half messages, by half queue offset.
    pub checks: BTreeMap<u64, u32>,
}

impl TxCheckpoint {
    pub const FILE: &'static str = "config/transactions.json";
}

/// A transaction check to run outside the lock: half queue offset, listener, message.
pub(crate) type Check = (u64, Arc<dyn TransactionListener>, MessageExt);

/// When checks happen.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CheckPolicy {
    pub timeout_ms: u64,
    pub interval_ms: u64,
    pub max_checks: u32,
}

#[derive(Default)]
pub(crate) struct Transactions {
    /// Unresolved half messages by half queue offset.
    pub pending: BTreeMap<u64, Pending>,
    /// Next half queue offset to be written (everything below was seen).
    pub half_end: u64,
    pub dirty: bool,
    policy: CheckPolicy,
    /// Checks made before the last close, by half queue offset (from the checkpoint).
    restored_checks: BTreeMap<u64, u32>,
    /// The check-back listener of each producer group.
    pub listeners: HashMap<String, Arc<dyn TransactionListener>>,
}

impl Transactions {
    /// The service of a store, empty until dispatch replays the half and op records.
    pub fn open(policy: CheckPolicy, backend: &dyn Backend) -> Result<Transactions> {
        let cp: TxCheckpoint = read_json(backend, TxCheckpoint::FILE)?.unwrap_or_default();
        Ok(Transactions {
            half_end: cp.low_water,
            policy,
            restored_checks: cp.checks,
            ..Transactions::default()
        })
    }

    /// A half message was dispatched; returns when its first check is due: the
    /// check timeout after it was stored, or `immunity_ms` when its producer set
    /// `CHECK_IMMUNITY_TIME_IN_SECONDS`. Checks made before a restart count: the
    /// next comes an interval after the last.
    pub fn on_half(
        &mut self,
        qo: u64,
        phys: u64,
        group: &str,
        store_ts: u64,
        immunity_ms: Option<u64>,
        dedup: Option<Key>,
    ) -> u64 {
        self.half_end = self.half_end.max(qo + 1);
        if let Some(p) = self.pending.get(&qo) {
            return p.next_check_ms;
        }
        let checks = self.restored_checks.get(&qo).copied().unwrap_or(0);
        let next_check_ms = store_ts
            .saturating_add(immunity_ms.unwrap_or(self.policy.timeout_ms))
            .saturating_add((checks as u64).saturating_mul(self.policy.interval_ms));
        self.pending.insert(
            qo,
            Pending {
                phys,
                group: group.to_string(),
                checks,
                next_check_ms,
                dedup,
            },
        );
        self.dirty = true;
        next_check_ms
    }

    /// An op record was dispatched: the half messages it lists are resolved; those
    /// that were pending.
    pub fn on_op(&mut self, body: &[u8]) -> Vec<Pending> {
        self.dirty = true;
        Self::parse_op_body(body)
            .filter_map(|qo| self.pending.remove(&qo))
            .collect()
    }

    /// Whether `id` names a half message of this store, pending or resolved (one
    /// that retention removed counts as resolved).
    pub fn names(&self, store: &MessageStore, id: &TxId) -> bool {
        if let Some(p) = self.pending.get(&id.half_offset) {
            return p.phys == id.commitlog_offset;
        }
        let Some(cq) = store.queues.get(topic::TRANS_HALF_TOPIC, 0) else {
            return false;
        };
        if id.half_offset < cq.min_offset() {
            return id.half_offset < self.half_end;
        }
        id.half_offset < cq.max_offset()
            && cq
                .entry(id.half_offset)
                .is_some_and(|e| e.phys == id.commitlog_offset)
    }

    /// The offsets listed in an op record body (`"3,7,"`).
    pub fn parse_op_body(body: &[u8]) -> impl Iterator<Item = u64> + '_ {
        body.split(|b| *b == b',')
            .filter_map(|s| std::str::from_utf8(s).ok()?.trim().parse().ok())
    }

    /// Turns a message's record into the half record of `group`: it keeps its real
    /// topic and queue in properties.
    pub fn half_spec(spec: &mut RecordSpec, group: &str) {
        // What dispatch reads is no longer where the send noted it.
        spec.found = crate::message::properties::Found::UNKNOWN;
        properties::push(&mut spec.properties, prop::REAL_TOPIC, &spec.topic);
        properties::push(
            &mut spec.properties,
            prop::REAL_QID,
            &spec.queue_id.to_string(),
        );
        properties::push(&mut spec.properties, prop::TRAN_MSG, "true");
        properties::push(&mut spec.properties, prop::PGROUP, group);
        spec.topic = topic::TRANS_HALF_TOPIC.into();
        spec.queue_id = 0;
    }

    /// The op record that resolves half message `qo` as `state`.
    pub fn op_spec(half_qo: u64, state: TxState, now: u64) -> RecordSpec {
        let mut props = Vec::new();
        properties::push(&mut props, prop::TAGS, OP_TAG);
        properties::push(&mut props, prop::TX_RESOLUTION, state.as_str());
        RecordSpec {
            topic: topic::TRANS_OP_HALF_TOPIC.into(),
            queue_id: 0,
            sys_flag: 0,
            born_ts: now,
            reconsume_times: 0,
            prepared_tx_offset: 0,
            body: Bytes::from(format!("{half_qo},")),
            properties: props,
            dedup: None,
            found: crate::message::properties::Found::UNKNOWN,
        }
    }

    /// What resolving half message `qo` as `state` appends (a COMMIT's message and the
    /// op record, as one batch); None when it is not pending (the first resolution
    /// won) or the state is UNKNOWN.
    pub fn resolution(
        &self,
        qo: u64,
        state: TxState,
        store: &mut MessageStore,
        default_queues: u32,
        now: u64,
    ) -> Result<Option<Vec<RecordSpec>>> {
        if state == TxState::Unknown {
            return Ok(None);
        }
        let Some(p) = self.pending.get(&qo) else {
            return Ok(None);
        };
        let mut specs = Vec::with_capacity(2);
        if state == TxState::Commit {
            let drop = [prop::TRAN_MSG, prop::PGROUP, prop::TRANSACTION_CHECK_TIMES];
            let to = Destination::Real { retries: false };
            if let Some(mut s) = store.copy_to_real_topic(p.phys, &drop, to, default_queues)? {
                s.sys_flag = SYS_FLAG_TX_COMMIT;
                s.prepared_tx_offset = p.phys;
                specs.push(s);
            }
        }
        specs.push(Self::op_spec(qo, state, now));
        Ok(Some(specs))
    }

    /// Half messages whose check is due at `now`: the checks to run (outside the
    /// lock), and the records that discard those checked too often (to append).
    pub fn due(
        &mut self,
        store: &mut MessageStore,
        default_queues: u32,
        now: u64,
    ) -> Result<(Vec<Check>, Vec<RecordSpec>)> {
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.next_check_ms <= now)
            .map(|(k, _)| *k)
            .collect();
        let mut checks = Vec::new();
        let mut discards = Vec::new();
        for qo in due {
            let Some(p) = self.pending.get_mut(&qo) else {
                continue;
            };
            if p.checks >= self.policy.max_checks {
                let phys = p.phys;
                store.system_queues(topic::TRANS_CHECK_MAX_TOPIC, 1)?;
                let to = Destination::Fixed(topic::TRANS_CHECK_MAX_TOPIC, 0);
                if let Some(s) = store.copy_to_real_topic(phys, &[], to, default_queues)? {
                    discards.push(s);
                }
                discards.push(Self::op_spec(qo, TxState::Rollback, now));
                continue;
            }
            p.next_check_ms = now.saturating_add(self.policy.interval_ms);
            self.dirty = true;
            if let Some(l) = self.listeners.get(&p.group) {
                p.checks += 1;
                if let Some(mut m) = store.message_at(p.phys) {
                    // As RocketMQ's check service marks it: 1 on the first check.
                    m.properties
                        .insert(prop::TRANSACTION_CHECK_TIMES.into(), p.checks.to_string());
                    checks.push((qo, l.clone(), m));
                }
            }
        }
        Ok((checks, discards))
    }

    pub fn checkpoint(&self) -> TxCheckpoint {
        TxCheckpoint {
            low_water: self.pending.keys().next().copied().unwrap_or(self.half_end),
            checks: self
                .pending
                .iter()
                .filter(|(_, p)| p.checks > 0)
                .map(|(k, p)| (*k, p.checks))
                .collect(),
        }
    }

    pub fn next_due(&self) -> Option<u64> {
        self.pending.values().map(|p| p.next_check_ms).min()
    }

    /// The checkpoint file, when it changed since the last call (or `all`).
    pub fn metadata(&mut self, all: bool) -> Result<Option<(&'static str, Vec<u8>)>> {
        if !(all || self.dirty) {
            return Ok(None);
        }
        self.dirty = false;
        Ok(Some((TxCheckpoint::FILE, to_json(&self.checkpoint())?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_ids_round_trip_and_refuse_what_is_not_one() {
        let id = TxId {
            half_offset: 7,
            commitlog_offset: u64::MAX,
        };
        let s = id.to_string();
        assert_eq!(s, "0000000000000007ffffffffffffffff");
        assert_eq!(s.parse::<TxId>().unwrap(), id);
        assert_eq!(s.to_uppercase().parse::<TxId>().unwrap(), id);
        for bad in [
            "",
            "tx-1",
            &"g".repeat(32),
            &"0".repeat(31),
            &"0".repeat(33),
        ] {
            assert!(bad.parse::<TxId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn op_bodies_parse() {
        let v: Vec<u64> = Transactions::parse_op_body(b"3,17,").collect();
        assert_eq!(v, vec![3, 17]);
    }
}
