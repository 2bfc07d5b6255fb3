//! Committed consumer offsets, persisted as `config/offsets.json` in RocketMQ's
//! `consumerOffset.json` shape: `{"offsetTable": {"topic@group": {"0": 12, ...}}}`.
//! Broadcasting consumers keep their own entries under `topic@group@consumer`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct OffsetTable {
    #[serde(rename = "offsetTable")]
    pub table: BTreeMap<String, BTreeMap<u32, u64>>,
}

impl OffsetTable {
    pub const FILE: &'static str = "config/offsets.json";

    pub fn key(topic: &str, owner: &str) -> String {
        format!("{topic}@{owner}")
    }

    pub fn get(&self, topic: &str, owner: &str, queue_id: u32) -> Option<u64> {
        self.table
            .get(&Self::key(topic, owner))?
            .get(&queue_id)
            .copied()
    }

    pub fn set(&mut self, topic: &str, owner: &str, queue_id: u32, offset: u64) -> bool {
        let slot = self.table.entry(Self::key(topic, owner)).or_default();
        slot.insert(queue_id, offset) != Some(offset)
    }
}
