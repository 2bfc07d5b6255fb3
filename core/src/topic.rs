//! The topic registry (persisted as `config/topics.json`) and queue selection.
//!
//! Names follow RocketMQ (`[%|A-Za-z0-9_-]`, at most 127 characters; `%RETRY%` topics
//! up to 255) and so can never name a path outside the store directory. Names that
//! start with `%`, `RMQ_SYS_` or `SCHEDULE_TOPIC` belong to the engine; RocketMQ's
//! own system topics (`TBW102`, `rmq_sys_*`, ...) are refused too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::message::properties::java_hash;
use crate::{Error, Result};

pub(crate) const RETRY_PREFIX: &str = "%RETRY%";
pub(crate) const DLQ_PREFIX: &str = "%DLQ%";

/// A group's retry or dead-letter topic.
pub(crate) fn is_group_topic(name: &str) -> bool {
    name.starts_with(RETRY_PREFIX) || name.starts_with(DLQ_PREFIX)
}
pub(crate) const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
pub(crate) const TIMER_TOPIC: &str = "rmq_sys_wheel_timer";
pub(crate) const TRANS_HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
pub(crate) const TRANS_OP_HALF_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
pub(crate) const TRANS_CHECK_MAX_TOPIC: &str = "RMQ_SYS_TRANS_CHECK_MAX_TOPIC";
/// Simple consumers' deliveries, acks and changes of invisibility (RocketMQ's revive log).
pub(crate) const REVIVE_TOPIC: &str = "rmq_sys_REVIVE_LOG";
/// Classic consumers' acks made in atomic blocks.
pub(crate) const ATOMIC_ACK_TOPIC: &str = "rmq_sys_ATOMIC_ACK";
/// Recalls of delayed messages (`schedule/recall.rs`).
pub(crate) const RECALL_TOPIC: &str = "rmq_sys_RECALL";

/// The most queues a topic may have.
pub(crate) const MAX_QUEUES: u32 = 1024;

/// Whether a topic name belongs to the engine.
pub(crate) fn is_reserved(name: &str) -> bool {
    name.starts_with('%')
        || name.starts_with("RMQ_SYS_")
        || name.starts_with("SCHEDULE_TOPIC")
        || name == TIMER_TOPIC
        || name == REVIVE_TOPIC
        || name == ATOMIC_ACK_TOPIC
        || name == RECALL_TOPIC
}

/// Whether Apache RocketMQ keeps this topic for itself (its `TopicValidator`'s system
/// topics): refused for sends and creation here too, so that code moved to a
/// RocketMQ cluster meets no topic there that it could use here.
pub(crate) fn is_rocketmq_system(name: &str) -> bool {
    name.starts_with("rmq_sys_")
        || matches!(
            name,
            "TBW102" | "BenchmarkTest" | "SELF_TEST_TOPIC" | "OFFSET_MOVED_EVENT"
        )
}

/// Whether producers may not send to `name`: a topic of the engine's own (retry,
/// dead-letter, schedule, transaction, revive...) or one Apache RocketMQ keeps for
/// itself.
pub fn is_system_topic(name: &str) -> bool {
    is_reserved(name) || is_rocketmq_system(name)
}

/// Checks a topic name's characters and length.
pub(crate) fn validate_topic(name: &str) -> Result<()> {
    let limit = if name.starts_with(RETRY_PREFIX) {
        255
    } else {
        127
    };
    if name.is_empty() || name.len() > limit {
        return Err(Error::invalid(format!(
            "topic names are 1 to {limit} characters, got {}",
            name.len()
        )));
    }
    // Byte by byte: every allowed character is ASCII, so the first byte refused
    // starts a character (all bytes before it being ASCII).
    if let Some(at) = name.bytes().position(|b| !TOPIC_BYTES[usize::from(b)]) {
        let c = name[at..].chars().next().unwrap_or_default();
        return Err(Error::invalid(format!(
            "topic {name:?}: {c:?} is not allowed (use A-Z a-z 0-9 _ - % |)"
        )));
    }
    Ok(())
}

/// The bytes a topic name may have: A-Z a-z 0-9 _ - % |.
const TOPIC_BYTES: [bool; 256] = {
    let mut ok = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        ok[b] = c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'%' | b'|');
        b += 1;
    }
    ok
};

/// A topic a user may send to.
pub(crate) fn validate_user_topic(name: &str) -> Result<()> {
    validate_topic(name)?;
    if is_reserved(name) {
        return Err(Error::invalid(format!(
            "topic {name:?} is reserved for the engine"
        )));
    }
    if is_rocketmq_system(name) {
        return Err(Error::invalid(format!(
            "topic {name:?} is a system topic of RocketMQ"
        )));
    }
    Ok(())
}

/// A topic a user may create with `queues` queues.
pub(crate) fn validate_new_topic(name: &str, queues: u32) -> Result<()> {
    validate_user_topic(name)?;
    if queues == 0 || queues > MAX_QUEUES {
        return Err(Error::invalid(format!(
            "a topic has 1 to {MAX_QUEUES} queues, not {queues}"
        )));
    }
    Ok(())
}

/// The `REAL_TOPIC` of a deferred record (a delayed message, a timer, a half
/// message), read back from the log when it is re-appended: a valid name of a user
/// topic or, where the engine delays retries (`retries`), of a group's retry topic.
/// Never another engine topic: only the engine writes those, and never through here.
pub(crate) fn validate_real_topic(name: &str, retries: bool) -> Result<()> {
    validate_topic(name)?;
    if is_reserved(name) && !(retries && name.starts_with(RETRY_PREFIX)) {
        return Err(Error::invalid(format!(
            "topic {name:?} is reserved for the engine"
        )));
    }
    Ok(())
}

/// A topic a user may consume: their own, a group's retry or dead-letter topic, or
/// the discarded transactions.
pub(crate) fn validate_consumable_topic(name: &str) -> Result<()> {
    validate_topic(name)?;
    if is_reserved(name)
        && !name.starts_with(RETRY_PREFIX)
        && !name.starts_with(DLQ_PREFIX)
        && name != TRANS_CHECK_MAX_TOPIC
    {
        return Err(Error::invalid(format!(
            "topic {name:?} is internal to the engine"
        )));
    }
    Ok(())
}

/// Checks a group name (RocketMQ: at most 120 of the topic characters).
pub fn validate_group(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 120 {
        return Err(Error::invalid(format!(
            "group names are 1 to 120 characters, got {}",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '%' | '|')))
    {
        return Err(Error::invalid(format!(
            "group {name:?}: {c:?} is not allowed (use A-Z a-z 0-9 _ - % |)"
        )));
    }
    Ok(())
}

/// The queue a message goes to: its explicit `queue_id`, else its sharding key's,
/// else round robin (`rr`).
pub(crate) fn select_queue(m: &crate::Message, queues: u32, rr: u32) -> Result<u32> {
    if let Some(q) = m.queue_id {
        if q >= queues {
            return Err(Error::invalid(format!(
                "queue_id {q} is out of range: {} has {queues} queues",
                m.topic
            )));
        }
        return Ok(q);
    }
    if let Some(k) = &m.sharding_key {
        return Ok(queue_for_key(k, queues));
    }
    Ok(rr % queues.max(1))
}

/// The queue a sharding key maps to: the same key always picks the same queue.
pub(crate) fn queue_for_key(key: &str, queues: u32) -> u32 {
    java_hash(key).unsigned_abs() % queues.max(1)
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct TopicConfig {
    pub queues: u32,
}

/// Topics and their queue counts.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct TopicRegistry {
    #[serde(rename = "topicConfigTable")]
    pub topics: BTreeMap<String, TopicConfig>,
}

impl TopicRegistry {
    pub const FILE: &'static str = "config/topics.json";

    /// Makes `name` have at least `queues` queues; true when something changed.
    pub fn ensure(&mut self, name: &str, queues: u32) -> bool {
        match self.topics.get_mut(name) {
            Some(t) if t.queues >= queues => false,
            Some(t) => {
                t.queues = queues;
                true
            }
            None => {
                self.topics.insert(name.to_string(), TopicConfig { queues });
                true
            }
        }
    }

    pub fn queues(&self, name: &str) -> Option<u32> {
        self.topics.get(name).map(|t| t.queues)
    }

    /// One topic and its queue count, if registered.
    pub fn info(&self, name: &str) -> Option<crate::stats::TopicInfo> {
        self.queues(name).map(|queues| crate::stats::TopicInfo {
            name: name.to_string(),
            queues,
        })
    }

    /// The user topics (not the engine's) and their queue counts.
    pub fn user_topics(&self) -> Vec<crate::stats::TopicInfo> {
        self.topics
            .iter()
            .filter(|(n, _)| !is_reserved(n))
            .map(|(n, t)| crate::stats::TopicInfo {
                name: n.clone(),
                queues: t.queues,
            })
            .collect()
    }

    /// Drops entries read from `topics.json` that cannot be topics, and brings queue
    /// counts out of range back to 1 (the store's files then grow them to what
    /// they hold): a damaged file must not make open hang or build a bad path.
    pub fn sanitize(&mut self) {
        self.topics.retain(|name, t| {
            if let Err(e) = validate_topic(name) {
                log::warn!("{}: entry dropped: {e}", Self::FILE);
                return false;
            }
            if t.queues == 0 || t.queues > MAX_QUEUES {
                log::warn!(
                    "{}: {name} has {} queues, out of range; counting again from the store",
                    Self::FILE,
                    t.queues
                );
                t.queues = 1;
            }
            true
        });
    }
}

/// Topics removed by `delete_topic` (persisted as `config/deleted_topics.json`), each
/// with the CommitLog end at its deletion. A record of a deleted topic below that
/// offset is unreachable: recovery does not index it again, and `get`, `query` and
/// delayed deliveries ignore it; a topic of the same name created later starts anew
/// above it. An entry goes once retention has removed everything below it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct DeletedTopics {
    #[serde(rename = "deletedTopicTable")]
    pub topics: BTreeMap<String, u64>,
}

impl DeletedTopics {
    pub const FILE: &'static str = "config/deleted_topics.json";

    /// Whether the record at `phys` of `topic` was deleted with its topic.
    #[inline]
    pub fn hides(&self, topic: &str, phys: u64) -> bool {
        !self.topics.is_empty() && self.topics.get(topic).is_some_and(|&end| phys < end)
    }

    /// Whether the retry copy at `phys` (its `RETRY_TOPIC` among `properties`, the
    /// raw block) is of a message whose topic was deleted after the copy was made.
    pub fn hides_retry(&self, properties: &[u8], phys: u64) -> bool {
        !self.topics.is_empty()
            && crate::message::properties::value(
                properties,
                crate::message::properties::prop::RETRY_TOPIC,
            )
            .is_some_and(|t| self.hides(t, phys))
    }

    /// Forgets deletions wholly below the CommitLog's minimum; true when one went.
    pub fn prune(&mut self, commitlog_min: u64) -> bool {
        let before = self.topics.len();
        self.topics.retain(|_, end| *end > commitlog_min);
        self.topics.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_the_store() {
        for bad in ["", "../x", "a/b", "a b", ".", "ü", &"x".repeat(128)] {
            assert!(validate_topic(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(validate_topic("orders_v2-EU|x%").is_ok());
        assert!(validate_user_topic("%RETRY%g").is_err());
        assert!(validate_user_topic("RMQ_SYS_TRANS_HALF_TOPIC").is_err());
        for system in ["TBW102", "BenchmarkTest", "SELF_TEST_TOPIC", "rmq_sys_x"] {
            assert!(validate_user_topic(system).is_err(), "{system}");
        }
        assert!(validate_user_topic("TBW1020").is_ok());
        assert!(validate_consumable_topic("%DLQ%g").is_ok());
        assert!(validate_consumable_topic("SCHEDULE_TOPIC_XXXX").is_err());
    }

    #[test]
    fn sharding_keys_are_stable() {
        let q = queue_for_key("order-42", 8);
        assert!(q < 8);
        assert_eq!(q, queue_for_key("order-42", 8));
        assert_eq!(queue_for_key("Aa", 4), queue_for_key("BB", 4));
    }
}
