//! Simple consumers (RocketMQ 5's POP model): a group owns no queues; any member may
//! receive any visible message of the topic. A delivery makes the message
//! invisible to the group until `now + invisible duration`; an ack ends it; an
//! expiry makes it visible again, delivered with attempt + 1, and after the last
//! attempt it goes to `%DLQ%<group>`. With `fifo`, messages of one sharding key go
//! one at a time in send order while other keys (even of the same queue) flow.
//!
//! Per queue a window holds the state of every offset from the group's committed
//! offset (the lowest not done) up to what it has read. Expiries wait in buckets of
//! one second (entries of one second share a vector; stale ones are skipped by
//! generation), so a million invisible messages cost two small records each, not
//! a million timers. A receipt handle names the group, queue, offset and the
//! delivery's generation: only the current delivery's handle is valid.
//!
//! Changes are durable through the revive log (`revive.rs`); the engine appends
//! what this service buffers and recovery replays it through dispatch.

mod admin;
mod expiry;
mod group;
mod handles;
mod receipt;
pub(crate) mod revive;
mod simple;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

pub(crate) use group::PopGroup;
use group::{Delivering, Queue, Slot};
pub use simple::SimpleConsumer;

use crate::commitlog::Span;

use crate::filter::MessageFilter;
use crate::message::{Taken, READ_BUDGET};
use crate::message_store::MessageStore;
use crate::topic::RETRY_PREFIX;
use crate::{Error, Result};
use expiry::push_expiry;
use receipt::group_tag;
pub(crate) use receipt::handle;
use revive::{GroupName, Op, Pending};

/// A delivery whose last attempt expired: the engine copies it to the DLQ, then
/// calls `dead_lettered`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expired {
    pub group: u32,
    pub queue: u32,
    pub offset: u64,
    pub attempt: u32,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Expiry {
    pub group: u32,
    pub queue: u32,
    pub offset: u64,
    pub gen: u32,
}

/// Every simple consumer group, and their members.
#[derive(Default)]
pub(crate) struct PopGroups {
    groups: Vec<PopGroup>,
    /// (group, topic) -> index in `groups`.
    by_name: HashMap<(String, String), u32>,
    /// Member handle -> group index.
    members: BTreeMap<u64, u32>,
    /// Expiries by second (broker clock).
    expiry: BTreeMap<u64, Vec<Expiry>>,
    /// Changes not yet in the revive log.
    pub pending: Pending,
    /// A group's committed offset moved since the last persist.
    pub moved: bool,
    /// The store's nonce, mixed into every group's tag: a receipt handle of one
    /// store names no delivery of another (two stores in one process, or two
    /// servers a client talks to), and stays valid across restarts.
    pub salt: u64,
    /// Deleted topics, by where the log ended at their deletion (the store's
    /// `deleted_topics`): mixed into the tags of groups on a topic created again, so
    /// a handle from before the delete names nothing of the new topic.
    pub incarnations: BTreeMap<String, u64>,
}

impl PopGroups {
    /// The tag of group `name` on `topic` now (see `group_tag`).
    pub(super) fn tag_for(&self, name: &str, topic: &str) -> u32 {
        let incarnation = self.incarnations.get(topic).copied().unwrap_or(0);
        group_tag(self.salt, name, topic, incarnation)
    }

    /// The group `n.group` on `n.topic` (a group may consume several topics, each
    /// with a cursor of its own), created with the committed offsets `base(q)` when new.
    pub(super) fn group_or_new(
        &mut self,
        n: &GroupName,
        queues: u32,
        base: impl Fn(u32) -> u64,
    ) -> u32 {
        if let Some(&g) = self.by_name.get(&(n.group.clone(), n.topic.clone())) {
            let group = &mut self.groups[g as usize];
            while (group.queues.len() as u32) < queues {
                let b = base(group.queues.len() as u32);
                group.queues.push(Queue::at(b));
            }
            return g;
        }
        let g = self.groups.len() as u32;
        self.groups.push(PopGroup {
            tag: self.tag_for(&n.group, &n.topic),
            name: n.group.clone(),
            topic: n.topic.clone(),
            filter: None,
            fifo: n.fifo,
            max_attempts: n.max_attempts,
            queues: (0..queues).map(|q| Queue::at(base(q))).collect(),
            ready: VecDeque::new(),
            busy: HashSet::new(),
            blocked: HashMap::new(),
            rr: 0,
            members: 0,
            retry: None,
            retry_first: false,
        });
        self.by_name.insert((n.group.clone(), n.topic.clone()), g);
        g
    }

    /// Every group on its topic, with how many live members it has (stats).
    pub fn names_and_members(&self) -> Vec<((String, String), usize)> {
        let mut members = vec![0usize; self.groups.len()];
        for &g in self.members.values() {
            members[g as usize] += 1;
        }
        self.groups
            .iter()
            .zip(members)
            .map(|(g, n)| ((g.name.clone(), g.topic.clone()), n))
            .collect()
    }

    /// Group `name`'s state on `topic`.
    pub fn group(&self, name: &str, topic: &str) -> Option<&PopGroup> {
        self.index(name, topic).map(|g| &self.groups[g as usize])
    }

    fn index(&self, name: &str, topic: &str) -> Option<u32> {
        self.by_name
            .get(&(name.to_string(), topic.to_string()))
            .copied()
    }

    /// Whether group `name` has live simple consumers (of any topic).
    pub fn has_live(&self, name: &str) -> bool {
        self.groups.iter().any(|g| g.members > 0 && g.name == name)
    }

    pub fn groups(&self) -> impl Iterator<Item = &PopGroup> {
        self.groups.iter()
    }

    /// A new member of a group with these settings; its handle is `handle`. The
    /// settings of a group with live members must match.
    #[allow(clippy::too_many_arguments)]
    pub fn join(
        &mut self,
        handle: u64,
        n: &GroupName,
        filter: Arc<dyn MessageFilter>,
        store: &MessageStore,
        base: impl Fn(u32) -> u64,
    ) -> Result<()> {
        let queues = store.queues.count(&n.topic);
        let g = self.group_or_new(n, queues, base);
        let group = &mut self.groups[g as usize];
        if group.members > 0 {
            let same_filter = group
                .filter
                .as_ref()
                .is_none_or(|f| crate::filter::same(&**f, &*filter));
            if !same_filter || group.fifo != n.fifo || group.max_attempts != n.max_attempts {
                return Err(Error::invalid(format!(
                    "group {:?} is subscribed to {:?} with {}{}, max_delivery_attempts \
                     {}, by a live simple consumer; every member of a group subscribes alike",
                    n.group,
                    group.topic,
                    group
                        .filter
                        .as_ref()
                        .map_or("tags \"*\"".into(), |f| f.describe()),
                    if group.fifo { ", fifo" } else { ", not fifo" },
                    group.max_attempts
                )));
            }
        }
        group.filter = Some(filter);
        group.fifo = n.fifo;
        group.max_attempts = n.max_attempts;
        group.members += 1;
        self.members.insert(handle, g);
        Ok(())
    }

    /// Member `handle`, the only live one of its group, subscribes the group with
    /// `filter` instead: what it reads from now on is filtered so (what another
    /// filter skipped stays skipped); deliveries and their handles are unchanged.
    pub fn resubscribe(&mut self, handle: u64, filter: Arc<dyn MessageFilter>) -> Result<()> {
        let Some(&g) = self.members.get(&handle) else {
            return Err(Error::Closed);
        };
        let group = &mut self.groups[g as usize];
        if group.members > 1 {
            return Err(Error::invalid(format!(
                "group {:?} has {} live simple consumers on {:?}; every member of a group \
                 subscribes alike, so one alone may change the subscription",
                group.name, group.members, group.topic
            )));
        }
        group.filter = Some(filter);
        Ok(())
    }

    pub fn leave(&mut self, handle: u64) {
        if let Some(g) = self.members.remove(&handle) {
            let group = &mut self.groups[g as usize];
            group.members = group.members.saturating_sub(1);
        }
    }

    pub fn is_member(&self, handle: u64) -> bool {
        self.members.contains_key(&handle)
    }

    /// How many messages of group `name` on (topic, queue) above its committed offset
    /// are done already (acked out of order, dead-lettered, or filtered out).
    pub fn done_above_committed(&self, name: &str, topic: &str, queue: u32) -> u64 {
        self.group(name, topic)
            .and_then(|g| g.queues.get(queue as usize))
            .map_or(0, |q| {
                q.window.iter().filter(|s| matches!(s, Slot::Done)).count() as u64
            })
    }

    /// Whether simple group `name` is done with `offset` of (topic, queue): below its
    /// committed offset, or acked (or passed over) above it. None for no such group.
    pub fn offset_done(&self, name: &str, topic: &str, queue: u32, offset: u64) -> Option<bool> {
        let q = self.group(name, topic)?.queues.get(queue as usize)?;
        Some(offset < q.base || matches!(q.slot(offset), Some(Slot::Done)))
    }

    /// The committed offset of group `name` on (topic, queue), if it is a simple group.
    pub fn committed(&self, name: &str, topic: &str, queue: u32) -> Option<u64> {
        let g = self.group(name, topic)?;
        g.queues.get(queue as usize).map(|q| q.base)
    }

    pub(super) fn name_of(&self, g: u32) -> GroupName {
        let group = &self.groups[g as usize];
        GroupName {
            group: group.name.clone(),
            topic: group.topic.clone(),
            fifo: group.fifo,
            max_attempts: group.max_attempts,
        }
    }

    /// The revive record body for the buffered changes, if any.
    pub fn take_pending(&mut self) -> Option<Vec<u8>> {
        let mut pending = std::mem::take(&mut self.pending);
        let body = pending.take(|g| self.name_of(g));
        self.pending = pending;
        body
    }

    /// Up to `max` messages for member `handle`, invisible for `invisible_ms`: from its
    /// group's topic and, when the group has dead letters redriven, from
    /// `%RETRY%<group>` (which goes first on every other receive, so neither starves).
    pub fn receive(
        &mut self,
        store: &MessageStore,
        handle: u64,
        max: usize,
        invisible_ms: u64,
        visible_end: u64,
        now: u64,
    ) -> Result<Vec<Taken>> {
        let Some(&g) = self.members.get(&handle) else {
            return Err(Error::Closed);
        };
        let until = now.saturating_add(invisible_ms);
        let mut out = crate::message::taken_list(max.min(1024));
        let Some(r) = self.groups[g as usize].retry else {
            self.receive_from(store, g, max, until, visible_end, &mut out);
            return Ok(out);
        };
        let group = &mut self.groups[g as usize];
        group.retry_first = !group.retry_first;
        let order = if group.retry_first { [r, g] } else { [g, r] };
        for from in order {
            self.receive_from(store, from, max, until, visible_end, &mut out);
        }
        Ok(out)
    }

    /// Adds to `out` what group `g` has for a receive of up to `max`: redeliveries
    /// first, oldest expiry first, then new messages queue by queue.
    fn receive_from(
        &mut self,
        store: &MessageStore,
        g: u32,
        max: usize,
        until: u64,
        visible_end: u64,
        out: &mut Vec<Taken>,
    ) {
        let PopGroups {
            groups,
            expiry,
            pending,
            moved,
            ..
        } = self;
        let group = &mut groups[g as usize];
        // Queues the topic gained while the group was live (`create_topic`, or the
        // topic's return after a deletion) are read from their start.
        let have = store.queues.count(&group.topic) as usize;
        while group.queues.len() < have {
            group.queues.push(Queue::at(0));
        }
        let taken: u64 = out.iter().map(|t| t.record.len() as u64).sum();
        let mut d = Delivering {
            store,
            room: READ_BUDGET.saturating_sub(taken),
            g,
            until,
            expiry,
            pending,
            span: Span::default(),
        };
        while out.len() < max && d.room > 0 {
            let Some((q, offset)) = group.ready.pop_front() else {
                break;
            };
            let Some(Slot::Ready { attempt, gen }) = group.queues[q as usize].slot(offset) else {
                continue;
            };
            // Resubscribed since it was read: an expression that no longer takes it
            // skips it, as when it was first read.
            let entry = store
                .queues
                .get(&group.topic, q)
                .and_then(|cq| cq.entry(offset));
            if entry.is_some_and(|e| !group.takes(store, e.code, e.phys)) {
                group.queues[q as usize].set(offset, Slot::Done);
                d.pending.push(g, Op::Ack { queue: q, offset });
                if group.fifo {
                    if let Some(key) = group.key_of(store, q, offset) {
                        group.release(&key);
                    }
                }
                *moved |= group.queues[q as usize].advance();
                continue;
            }
            match group.deliver(&mut d, q, offset, attempt + 1, gen + 1) {
                Some(m) => {
                    d.room = d.room.saturating_sub(m.record.len() as u64);
                    out.push(m)
                }
                None => *moved |= group.queues[q as usize].advance(),
            }
        }
        let n = group.queues.len();
        for i in 0..n {
            if out.len() >= max || d.room == 0 {
                break;
            }
            let q = ((group.rr + i) % n) as u32;
            group.read_new(&mut d, q, max - out.len(), visible_end, out);
            *moved |= group.queues[q as usize].advance();
        }
        group.rr = (group.rr + 1) % n.max(1);
    }

    /// Links every simple group named `name` (on a user topic) to its state on
    /// `%RETRY%<name>`, where `redrive` puts its dead letters back: its members read
    /// that topic too. Nothing when the topic does not exist.
    pub fn link_retry(&mut self, store: &MessageStore, name: &str, base: impl Fn(u32) -> u64) {
        let retry_topic = format!("{RETRY_PREFIX}{name}");
        let queues = store.queues.count(&retry_topic);
        if queues == 0 {
            return;
        }
        let unlinked = |g: &PopGroup| {
            g.name == name && g.retry.is_none() && !crate::topic::is_reserved(&g.topic)
        };
        let Some(first) = self.groups.iter().find(|g| unlinked(g)) else {
            return;
        };
        let n = GroupName {
            group: name.to_string(),
            topic: retry_topic,
            fifo: first.fifo,
            max_attempts: first.max_attempts,
        };
        let r = self.group_or_new(&n, queues, base);
        for group in self.groups.iter_mut().filter(|g| unlinked(g)) {
            group.retry = Some(r);
        }
    }

    /// Whether a receive by `handle` might find something now.
    pub fn may_have_messages(&self, store: &MessageStore, handle: u64) -> bool {
        let Some(&g) = self.members.get(&handle) else {
            return true;
        };
        let has = |g: u32| {
            let group = &self.groups[g as usize];
            !group.ready.is_empty()
                || group.queues.iter().enumerate().any(|(q, pq)| {
                    let max = store
                        .queues
                        .get(&group.topic, q as u32)
                        .map_or(0, |cq| cq.max_offset());
                    pq.scan < max || pq.end() < max
                })
        };
        has(g) || self.groups[g as usize].retry.is_some_and(has)
    }
}
