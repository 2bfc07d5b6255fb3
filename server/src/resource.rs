//! Topic and group names as the protocol carries them (`Resource{resource_namespace,
//! name}`) and as the store keeps them: a namespaced resource is `ns%name` (`%` is legal
//! in pocketmq names), so tenants sharing a store never meet. Names are checked here,
//! before the engine sees them, so each gets its protocol code (ILLEGAL_TOPIC,
//! ILLEGAL_CONSUMER_GROUP) rather than a generic one.

use crate::proto::{Code, Resource};
use crate::status::Refusal;

/// The store's name of a resource.
pub(crate) fn full_name(r: &Resource) -> String {
    if r.resource_namespace.is_empty() {
        r.name.clone()
    } else {
        format!("{}%{}", r.resource_namespace, r.name)
    }
}

fn legal(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '%' | '|'))
}

/// Whether consumers may read a reserved topic: a group's retry or dead-letter topic.
fn consumable(name: &str) -> bool {
    name.starts_with("%RETRY%")
        || name.starts_with("%DLQ%")
        || name == "RMQ_SYS_TRANS_CHECK_MAX_TOPIC"
}

/// What a topic is used for: a producer may only send to user topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    Send,
    Consume,
}

/// A topic's store name, or ILLEGAL_TOPIC.
pub(crate) fn topic(r: Option<&Resource>, usage: Use) -> Result<String, Refusal> {
    let illegal = |why: String| Refusal::new(Code::IllegalTopic, why);
    let r = r.ok_or_else(|| illegal("the topic is missing".into()))?;
    if r.name.is_empty() {
        return Err(illegal("the topic name is empty".into()));
    }
    let name = full_name(r);
    if name.len() > 127 && !name.starts_with("%RETRY%") || name.len() > 255 {
        return Err(illegal(format!(
            "topic {:?} is longer than 127 characters",
            r.name
        )));
    }
    if !legal(&name) {
        return Err(illegal(format!(
            "topic {name:?}: use only A-Z a-z 0-9 _ - % |"
        )));
    }
    if pocketmq::is_system_topic(&name) && !(usage == Use::Consume && consumable(&name)) {
        return Err(illegal(format!(
            "topic {name:?} is reserved for the engine"
        )));
    }
    Ok(name)
}

/// A consumer group's store name, or ILLEGAL_CONSUMER_GROUP.
pub(crate) fn group(r: Option<&Resource>) -> Result<String, Refusal> {
    let illegal = |why: String| Refusal::new(Code::IllegalConsumerGroup, why);
    let r = r.ok_or_else(|| illegal("the group is missing".into()))?;
    if r.name.is_empty() {
        return Err(illegal("the group name is empty".into()));
    }
    let name = full_name(r);
    if name.len() > 120 || !legal(&name) {
        return Err(illegal(format!(
            "group {name:?}: 1 to 120 of A-Z a-z 0-9 _ - % |"
        )));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(ns: &str, name: &str) -> Resource {
        Resource {
            resource_namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn namespaces_prefix_names() {
        assert_eq!(topic(Some(&res("", "a")), Use::Send).unwrap(), "a");
        assert_eq!(topic(Some(&res("ns", "a")), Use::Send).unwrap(), "ns%a");
        assert_eq!(group(Some(&res("ns", "g"))).unwrap(), "ns%g");
    }

    #[test]
    fn bad_names_get_their_codes() {
        for (r, u) in [
            (res("", ""), Use::Send),
            (res("", "a b"), Use::Send),
            (res("", &"x".repeat(128)), Use::Send),
            (res("", "%DLQ%g"), Use::Send),
            (res("", "RMQ_SYS_TRANS_HALF_TOPIC"), Use::Consume),
        ] {
            assert_eq!(
                topic(Some(&r), u).unwrap_err().code,
                Code::IllegalTopic,
                "{r:?}"
            );
        }
        assert!(topic(Some(&res("", "%DLQ%g")), Use::Consume).is_ok());
        assert_eq!(topic(None, Use::Send).unwrap_err().code, Code::IllegalTopic);
        for system in [
            "TBW102",
            "rmq_sys_REVIVE_LOG",
            "OFFSET_MOVED_EVENT",
            "RMQ_SYS_X",
        ] {
            let r = Resource {
                resource_namespace: String::new(),
                name: system.into(),
            };
            assert_eq!(
                topic(Some(&r), Use::Send).unwrap_err().code,
                Code::IllegalTopic,
                "{system}"
            );
        }
        assert_eq!(
            group(Some(&res("", "a/b"))).unwrap_err().code,
            Code::IllegalConsumerGroup
        );
        assert_eq!(group(None).unwrap_err().code, Code::IllegalConsumerGroup);
    }
}
