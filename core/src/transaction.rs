//! Transactional messages: half messages wait in `RMQ_SYS_TRANS_HALF_TOPIC` (queue 0),
//! invisible to consumers; each resolution writes an op record to
//! `RMQ_SYS_TRANS_OP_HALF_TOPIC` whose body lists resolved half queue offsets
//! (`"12,"`, tag `d`, as RocketMQ). A COMMIT's real message and its op record are one
//! atomic append, so a crash can never deliver a commit twice or lose one.
//!
//! The pending table is rebuilt on open from the half topic (from a persisted
//! low-water mark) minus the op records. The first resolution wins: once an offset
//! is resolved, a second COMMIT or a COMMIT after ROLLBACK changes nothing.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::MessageExt;

/// The outcome of a local transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxState {
    Commit,
    Rollback,
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
    /// Decides a half message the broker is unsure of.
    fn check(&self, msg: &MessageExt) -> TxState;
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

#[derive(Default)]
pub(crate) struct Transactions {
    /// Unresolved half messages by half queue offset.
    pub pending: BTreeMap<u64, Pending>,
    /// Next half queue offset to be written (everything below was seen).
    pub half_end: u64,
    pub dirty: bool,
}

impl Transactions {
    /// The offsets listed in an op record body (`"3,7,"`).
    pub fn parse_op_body(body: &[u8]) -> impl Iterator<Item = u64> + '_ {
        body.split(|b| *b == b',')
            .filter_map(|s| std::str::from_utf8(s).ok()?.trim().parse().ok())
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

    /// Half messages whose check is due at `now`.
    pub fn due(&self, now: u64) -> Vec<u64> {
        self.pending
            .iter()
            .filter(|(_, p)| p.next_check_ms <= now)
            .map(|(k, _)| *k)
            .collect()
    }

    pub fn next_due(&self) -> Option<u64> {
        self.pending.values().map(|p| p.next_check_ms).min()
    }
}

/// Groups' check-back listeners.
pub(crate) type Listeners = HashMap<String, std::sync::Arc<dyn TransactionListener>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_bodies_parse() {
        let v: Vec<u64> = Transactions::parse_op_body(b"3,17,").collect();
        assert_eq!(v, vec![3, 17]);
    }
}
