//! Work that comes due: delays, timers, transaction checks, ack deadlines,
//! invisibility expiry, retention.

use super::*;

/// After deferred work failed (a full disk, say), when it is tried again.
const RETRY_AFTER_ERROR_MS: u64 = 1000;

impl Engine {
    /// Delivers what is due at `now`: delayed messages, timers, orderly pauses ending,
    /// and retention every 10 s. Returns the transaction checks to run (outside the
    /// lock).
    pub fn run_due(&mut self, now: u64) -> Result<Vec<Check>> {
        if self.closed {
            return Ok(Vec::new());
        }
        let mut checks = Vec::new();
        if now >= self.next_due {
            match self.run_deferred(now) {
                Ok(due_checks) => checks = due_checks,
                Err(e) => {
                    // Nothing is lost (cursors did not move past what failed); try
                    // again a little later rather than on every call.
                    self.next_due = now.saturating_add(RETRY_AFTER_ERROR_MS);
                    return Err(e);
                }
            }
        }
        self.retention_if_due(now)?;
        Ok(checks)
    }

    /// The deferred work of `run_due`: delays, timers, transaction checks and
    /// discards, orderly pauses ending.
    pub(super) fn run_deferred(&mut self, now: u64) -> Result<Vec<Check>> {
        while let Some((level, cursor, due)) = self.schedule.due_batch(&self.store, now) {
            self.deliver(&due, now)?;
            self.retries.delivered(&due);
            self.schedule.advance(level, cursor);
            self.delays_delivered = true;
        }
        loop {
            let due = self.timer.due_records(&self.store, now);
            if due.is_empty() {
                break;
            }
            self.delays_delivered = true;
            for (i, chunk) in due.chunks(DELIVERY_BATCH).enumerate() {
                let phys: Vec<u64> = chunk.iter().map(|d| d.2).collect();
                if let Err(e) = self.deliver(&phys, now) {
                    // Back into the wheel, due again on the next try: a timer taken
                    // out is delivered or put back, never dropped.
                    for &(qo, at, _) in &due[i * DELIVERY_BATCH..] {
                        self.timer.add(qo, at).map_err(store_err)?;
                    }
                    return Err(e);
                }
                self.retries.delivered(&phys);
            }
        }
        // Every delayed record due by now was delivered or skipped: recalls of them
        // (and replayed ones of records skipped before a restart) are done.
        if !self.recalled.is_empty() {
            self.recalled.retain(|_, due| *due > now);
        }
        let queues = self.settings.default_queues;
        let (checks, discards) = self.tx.due(&mut self.store, queues, now)?;
        // Each discard (its copy and its op record) is one append of its own.
        for pair in discards.chunks(2) {
            self.put(pair, now)?;
        }
        if self.groups.resume_due(now) {
            self.arrived = true;
        }
        // Deliveries past their ack deadline go back as nacks.
        for (handle, msg, deadline) in self.groups.ack_expired(&self.store, now) {
            self.nack_since(handle, &msg, None, deadline.min(now), now)?;
        }
        // Simple consumers' invisible deliveries whose time is up.
        let (dead, visible) = self.groups.pop.expire(now);
        self.arrived |= visible;
        if !dead.is_empty() {
            for e in dead {
                self.dead_letter(e, now)?;
            }
            // Their "done" goes to the revive log right after their copies, so a
            // crash does not dead-letter them again.
            self.flush_revive(now)?;
        }
        self.next_due = self.compute_next_due();
        Ok(checks)
    }

    /// Copies the delayed records at `phys` to their real topics, in as few appends
    /// as fit a segment. A timer's copy keeps `TIMER_DELIVER_MS`, as RocketMQ's does:
    /// it tells a receiver the message was delayed, and until when (the server's
    /// DELAY message type and delivery timestamp); a level's drops `DELAY`, as
    /// RocketMQ's schedule service does.
    /// Recalled records are skipped.
    pub(super) fn deliver(&mut self, phys: &[u64], now: u64) -> Result<()> {
        let drop = [crate::message::properties::prop::DELAY];
        let queues = self.settings.default_queues;
        let mut specs = Vec::with_capacity(phys.len());
        for &p in phys {
            if self.recalled.contains_key(&p) {
                continue;
            }
            let to = Destination::Real { retries: true };
            if let Some(s) = self.store.copy_to_real_topic(p, &drop, to, queues)? {
                specs.push(s);
            }
        }
        self.put_in_appends(&specs, now)
    }

    /// `Producer::recall`: cancels the delayed message `handle` names (sent to
    /// `topic`) if it has not come due yet. True when it was pending and now never
    /// will be delivered; false when it was delivered, is due, or was recalled
    /// already, or is not retained here.
    pub fn recall(&mut self, topic: &str, handle: &str, now: u64) -> Result<bool> {
        use crate::schedule::recall;
        self.check_open()?;
        let h = recall::decode(handle)?;
        if h.topic != topic {
            return Err(Error::invalid(format!(
                "the recall handle is for a message sent to {:?}, not to {topic:?}",
                h.topic
            )));
        }
        let Some((phys, due)) = self.delayed_record(topic, &h.msg_id) else {
            return Ok(false);
        };
        if due <= now || self.recalled.contains_key(&phys) {
            return Ok(false);
        }
        self.store.system_queues(topic::RECALL_TOPIC, 1)?;
        let marker =
            crate::atomic::system_record(topic::RECALL_TOPIC, recall::marker_body(phys, due), now);
        // Dispatch adds it to the recalled set.
        self.put(std::slice::from_ref(&marker), now)?;
        Ok(true)
    }

    /// The CommitLog offset and delivery time of the delayed record sent to `topic`
    /// as `msg_id` (the engine's id, or one its sender gave), if it is retained. (It
    /// is delivered only once its time has come: `recall` compares that with now.)
    fn delayed_record(&self, topic: &str, msg_id: &str) -> Option<(u64, u64)> {
        let store = &self.store;
        let candidates = match crate::message::id::parse(msg_id) {
            Some((nonce, phys)) if store.ids.owns(nonce, phys) => vec![phys],
            Some(_) => Vec::new(),
            None => store.index.ids(msg_id),
        };
        candidates.into_iter().find_map(|phys| {
            let m = store.message_at(phys)?;
            let stored = store.commitlog.with_record(phys, |r| {
                (r.topic().to_string(), r.queue_id, r.queue_offset)
            })?;
            if !is_delayed(&stored.0) || m.topic != topic || m.msg_id != msg_id {
                return None;
            }
            let due = store.queues.get(&stored.0, stored.1)?.entry(stored.2)?.code;
            Some((phys, due))
        })
    }

    /// Appends `specs` (records the engine re-appends, which need not be one batch)
    /// in runs that each fit a segment: however many come due together, none is
    /// refused as too large. A record that fits no segment on its own is skipped.
    pub(super) fn put_in_appends(&mut self, specs: &[RecordSpec], now: u64) -> Result<()> {
        let limit = self.store.commitlog.seg_size() - END_FILE_MIN_BLANK;
        let mut from = 0;
        while from < specs.len() {
            let mut size = 0;
            let mut to = from;
            while to < specs.len() && size + specs[to].encoded_len() <= limit {
                size += specs[to].encoded_len();
                to += 1;
            }
            if to == from {
                self.store.skipped_records += 1;
                log::warn!(
                    "a deferred record of {} bytes fits no CommitLog segment; skipped",
                    specs[from].encoded_len()
                );
                from += 1;
                continue;
            }
            self.put(&specs[from..to], now)?;
            from = to;
        }
        Ok(())
    }

    pub(super) fn compute_next_due(&self) -> u64 {
        [
            self.schedule.next_due(&self.store),
            self.timer.next_due(),
            self.tx.next_due(),
            self.groups.next_resume(),
            self.groups.next_ack_deadline(),
            self.groups.pop.next_expiry(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(u64::MAX)
    }

    /// Runs due work if any is due (cheap when nothing is).
    pub fn run_due_if_needed(&mut self, now: u64) -> Result<Vec<Check>> {
        if now >= self.next_due {
            self.run_due(now)
        } else {
            Ok(Vec::new())
        }
    }

    /// `Broker::tick`: everything due now, the disk check and a retention pass.
    pub fn tick(&mut self, now: u64) -> Result<Vec<Check>> {
        self.next_due = 0;
        self.check_disk();
        let checks = self.run_due(now)?;
        self.retention(now)?;
        Ok(checks)
    }

    /// When the next deferred job is due, if any (0 in `next_due` only means "look
    /// again": the real time is computed then); retention's next pass counts when
    /// there is anything it could delete.
    pub fn next_due_ms(&self) -> Option<u64> {
        let next = match self.next_due {
            0 => self.compute_next_due(),
            n => n,
        };
        let retention = if self.store.commitlog.has_sealed() {
            self.retention.next_due()
        } else {
            u64::MAX
        };
        let next = next.min(retention);
        (next != u64::MAX).then_some(next)
    }

    /// Runs a retention pass if one is due (every 10 s of broker time).
    pub fn retention_if_due(&mut self, now: u64) -> Result<()> {
        if self.retention.is_due(now) {
            self.retention(now)?;
        }
        Ok(())
    }

    /// Runs a retention pass now.
    pub fn retention(&mut self, now: u64) -> Result<()> {
        let pinned = self.first_needed_record();
        let Engine {
            retention,
            store,
            groups,
            settings,
            ..
        } = self;
        retention.run(now, store, groups, pinned, settings)?;
        Ok(())
    }

    /// The lowest CommitLog offset a pending delay, timer or half message still
    /// needs: retention never deletes it.
    pub(super) fn first_needed_record(&self) -> Option<u64> {
        let timer = self.timer.first_pending().and_then(|qo| {
            let cq = self.store.queues.get(topic::TIMER_TOPIC, 0)?;
            crate::retention::first_record(cq, qo)
        });
        let half = self.tx.pending.values().map(|p| p.phys).min();
        [self.schedule.first_pending_phys(&self.store), timer, half]
            .into_iter()
            .flatten()
            .min()
    }
}
