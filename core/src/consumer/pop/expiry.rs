//! Invisibility running out: deliveries whose time is up, by second.

use super::*;

impl PopGroups {
    /// Expiries due at `now`: deliveries with attempts left become visible again;
    /// those at their last attempt are returned, to be dead-lettered. True in the
    /// second place when something became visible.
    pub fn expire(&mut self, now: u64) -> (Vec<Expired>, bool) {
        let mut dead = Vec::new();
        let mut visible = false;
        while let Some(mut entry) = self.expiry.first_entry() {
            if entry.key().saturating_mul(1000) > now {
                break;
            }
            let items = std::mem::take(entry.get_mut());
            let sec = *entry.key();
            entry.remove();
            let mut later = Vec::new();
            for e in items {
                let group = &mut self.groups[e.group as usize];
                let Some(Slot::Invisible {
                    until,
                    attempt,
                    gen,
                }) = group.queues[e.queue as usize].slot(e.offset)
                else {
                    continue;
                };
                if gen != e.gen {
                    continue;
                }
                if until > now {
                    later.push(e);
                } else if attempt >= group.max_attempts {
                    dead.push(Expired {
                        group: e.group,
                        queue: e.queue,
                        offset: e.offset,
                        attempt,
                    });
                } else {
                    group.queues[e.queue as usize].set(e.offset, Slot::Ready { attempt, gen });
                    group.ready.push_back((e.queue, e.offset));
                    visible = true;
                }
            }
            if !later.is_empty() {
                self.expiry.insert(sec, later);
                break;
            }
        }
        (dead, visible)
    }

    /// The earliest time an invisible delivery may expire.
    pub fn next_expiry(&self) -> Option<u64> {
        let (sec, items) = self.expiry.first_key_value()?;
        let at = items
            .iter()
            .filter_map(|e| {
                match self.groups[e.group as usize].queues[e.queue as usize].slot(e.offset) {
                    Some(Slot::Invisible { until, gen, .. }) if gen == e.gen => Some(until),
                    _ => None,
                }
            })
            .min();
        Some(at.unwrap_or(sec.saturating_mul(1000)))
    }
}

pub(crate) fn push_expiry(expiry: &mut BTreeMap<u64, Vec<Expiry>>, until: u64, e: Expiry) {
    let sec = until / 1000;
    // A receive's deliveries share a second: mostly the last bucket.
    if let Some(mut last) = expiry.last_entry() {
        if *last.key() == sec {
            last.get_mut().push(e);
            return;
        }
    }
    expiry.entry(sec).or_default().push(e);
}
