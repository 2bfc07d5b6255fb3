//! Recalling a delayed message before it is delivered (RocketMQ 5.3's RecallMessage).
//!
//! A send that delays a message (a level, `delay_ms` or `deliver_at`) reports a recall
//! handle, in RocketMQ's format: URL-safe base64 of `v1 <topic> <broker> <delivery
//! ms> <message id>`, so a handle from pocketmq serve reads like one from a RocketMQ
//! proxy. Recalling appends a marker record to `rmq_sys_RECALL` whose body is the
//! delayed record's CommitLog offset and delivery time; dispatch (live and on
//! replay) adds it to the engine's recalled set, the delivery step skips the records
//! in that set, and each leaves the set once its time has passed. A
//! recall survives restarts and crashes as the marker does (it is as durable as a
//! send under the store's flush mode).

use base64::engine::general_purpose::URL_SAFE;
use base64::Engine as _;

use crate::{Error, Result};

/// The broker name handles carry (`pocketmq serve` routes under it too).
pub(crate) const BROKER_NAME: &str = "pocketmq";

/// What a recall handle (`SendResult::recall_handle`) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecallHandle {
    /// The topic the message was sent to.
    pub topic: String,
    /// When it is due (epoch ms).
    pub deliver_at_ms: u64,
    /// Its message id.
    pub msg_id: String,
}

impl RecallHandle {
    /// Reads a recall handle, pocketmq's or a RocketMQ proxy's; `InvalidArgument`
    /// when it is not one.
    pub fn parse(handle: &str) -> Result<RecallHandle> {
        decode(handle)
    }
}

/// The recall handle of a message sent to `topic` with `msg_id`, due at `deliver_ms`.
pub(crate) fn handle(topic: &str, deliver_ms: u64, msg_id: &str) -> String {
    URL_SAFE.encode(format!("v1 {topic} {BROKER_NAME} {deliver_ms} {msg_id}"))
}

/// Reads a recall handle; `InvalidArgument` when it is not one.
pub(crate) fn decode(handle: &str) -> Result<RecallHandle> {
    let bad = || {
        let shown: String = handle.chars().take(64).collect();
        Error::invalid(format!("{shown:?} is not a recall handle"))
    };
    let raw = URL_SAFE.decode(handle.as_bytes()).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let mut parts = text.split(' ');
    let (Some("v1"), Some(topic), Some(_broker), Some(ms), Some(msg_id)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad());
    };
    if topic.is_empty() || msg_id.is_empty() {
        return Err(bad());
    }
    Ok(RecallHandle {
        topic: topic.to_string(),
        deliver_at_ms: ms.parse().map_err(|_| bad())?,
        msg_id: msg_id.to_string(),
    })
}

/// The body of a marker: the recalled record's CommitLog offset and delivery time.
pub(crate) fn marker_body(phys: u64, due: u64) -> Vec<u8> {
    [phys.to_be_bytes(), due.to_be_bytes()].concat()
}

/// The recalled record's offset and delivery time a marker's body names, if it is
/// one.
pub(crate) fn marker_target(body: &[u8]) -> Option<(u64, u64)> {
    let body: &[u8; 16] = body.try_into().ok()?;
    let (phys, due) = body.split_at(8);
    Some((
        u64::from_be_bytes(phys.try_into().ok()?),
        u64::from_be_bytes(due.try_into().ok()?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_and_others_are_refused() {
        let h = handle(
            "orders",
            1_700_000_000_000,
            "0123456789ABCDEF0000000000000040",
        );
        assert_eq!(
            decode(&h).unwrap(),
            RecallHandle {
                topic: "orders".into(),
                deliver_at_ms: 1_700_000_000_000,
                msg_id: "0123456789ABCDEF0000000000000040".into(),
            }
        );
        // RocketMQ's own (the same layout, another broker name) reads too.
        let theirs = URL_SAFE.encode("v1 orders broker-a 1700000000000 01ABCDEF");
        assert_eq!(decode(&theirs).unwrap().msg_id, "01ABCDEF");
        for bad in [
            "",
            "???",
            &URL_SAFE.encode("v2 a b 1 x"),
            &URL_SAFE.encode("v1 a b x y"),
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        assert_eq!(marker_target(&marker_body(77, 5)), Some((77, 5)));
        assert_eq!(marker_target(b"short"), None);
    }
}
