//! Operations on simple groups' cursors: resets, drills, topic deletion.

use super::*;

impl PopGroups {
    /// Moves group `name`'s committed offset on (`topic`, `queue`) to `offset`: what
    /// was in flight there is forgotten.
    pub fn reset(&mut self, name: &str, topic: &str, queue: u32, offset: u64) {
        let Some(g) = self.index(name, topic) else {
            return;
        };
        let group = &mut self.groups[g as usize];
        if let Some(pq) = group.queues.get_mut(queue as usize) {
            pq.restart(offset);
            group.ready.retain(|(q, _)| *q != queue);
            group.busy.clear();
            group.blocked.clear();
            self.pending.push(g, Op::Reset { queue, offset });
            self.moved = true;
        }
    }

    /// Where group `name` has read to on (topic, queue): the end of its window.
    pub fn cursor(&self, name: &str, topic: &str, queue: u32) -> Option<u64> {
        let g = self.group(name, topic)?;
        g.queues.get(queue as usize).map(|q| q.end().max(q.scan))
    }

    /// Moves group `name` on (`topic`, `queue`) forward to at least `target` (the
    /// backlog drill copied what was below): what was in flight below it is forgotten.
    pub fn advance_past(&mut self, name: &str, topic: &str, queue: u32, target: u64) {
        let Some(g) = self.index(name, topic) else {
            return;
        };
        let group = &mut self.groups[g as usize];
        let Some(pq) = group.queues.get_mut(queue as usize) else {
            return;
        };
        if pq.base >= target {
            return;
        }
        let gone =
            usize::try_from(target - pq.base).map_or(pq.window.len(), |n| n.min(pq.window.len()));
        pq.window.drain(..gone);
        pq.base = target;
        pq.scan = pq.scan.max(target);
        group.ready.retain(|(q, o)| *q != queue || *o >= target);
        self.pending.push(
            g,
            Op::Reset {
                queue,
                offset: target,
            },
        );
        self.moved = true;
    }

    /// Forgets the groups of a deleted topic. Those with live members start over at
    /// the beginning of the topic should it come back (nothing is in flight); the
    /// others go, with what they had pending for the log: their acks and deliveries
    /// written after the deletion would bring them back with the old topic's offsets,
    /// and a group of the topic created again would skip its first messages.
    pub fn forget_topic(&mut self, topic: &str) {
        let PopGroups {
            groups,
            by_name,
            pending,
            salt,
            incarnations,
            ..
        } = self;
        let mut gone = Vec::new();
        by_name.retain(|(_, t), g| {
            let group = &mut groups[*g as usize];
            if t != topic {
                return true;
            }
            if group.members == 0 {
                // Nothing of it is in flight any more (its expiries find no delivery).
                for pq in group.queues.iter_mut() {
                    pq.restart(0);
                }
                group.ready.clear();
                group.busy.clear();
                group.blocked.clear();
                gone.push(*g);
                return false;
            }
            let incarnation = incarnations.get(topic).copied().unwrap_or(0);
            group.tag = super::receipt::group_tag(*salt, &group.name, topic, incarnation);
            for (q, pq) in group.queues.iter_mut().enumerate() {
                pq.restart(0);
                pending.push(
                    *g,
                    Op::Reset {
                        queue: q as u32,
                        offset: 0,
                    },
                );
            }
            group.ready.clear();
            group.busy.clear();
            group.blocked.clear();
            true
        });
        pending.drop_groups(|g| gone.contains(&g));
        self.moved = true;
    }

    /// The committed offsets of every group, to persist: (topic, group, queue, offset).
    pub fn bases(&self) -> impl Iterator<Item = (&str, &str, u32, u64)> + '_ {
        self.groups.iter().flat_map(|g| {
            g.queues
                .iter()
                .enumerate()
                .map(move |(q, pq)| (g.topic.as_str(), g.name.as_str(), q as u32, pq.base))
        })
    }
}
