//! Consumers' calls: classic and simple consumers, acks, nacks, dead letters, and
//! transaction resolutions.

use super::*;

/// Simple consumers' changes buffered before one revive record is appended.
const REVIVE_BATCH: usize = 4096;

impl Engine {
    /// Records the outcome of half message `qo`; the first resolution wins. Returns
    /// whether this call resolved it.
    pub fn resolve(&mut self, qo: u64, state: TxState, now: u64) -> Result<bool> {
        if self.closed {
            return Ok(false);
        }
        let queues = self.settings.default_queues;
        match self
            .tx
            .resolution(qo, state, &mut self.store, queues, now)?
        {
            Some(specs) => self.put(&specs, now).map(|()| true),
            None => Ok(false),
        }
    }

    /// Resolves the half message a transaction id names (`Broker::end_transaction`).
    pub fn end_transaction(&mut self, id: &TxId, state: TxState, now: u64) -> Result<bool> {
        if !self.tx.names(&self.store, id) {
            return Err(Error::invalid(format!(
                "transaction id {id} names no half message of this store"
            )));
        }
        self.resolve(id.half_offset, state, now)
    }

    pub fn add_consumer(&mut self, cfg: &ConsumerConfig, now: u64) -> Result<u64> {
        self.check_open()?;
        let (auto, queues) = (
            self.settings.auto_create_topics,
            self.settings.default_queues,
        );
        self.groups.add(cfg, &mut self.store, auto, queues, now)
    }

    pub fn close_consumer(&mut self, handle: u64, now: u64) -> Result<()> {
        if self.groups.pop.is_member(handle) {
            self.groups.pop.leave(handle);
            return Ok(());
        }
        self.groups.close(handle, &mut self.store, now)
    }

    pub fn add_simple_consumer(&mut self, cfg: &SimpleConsumerConfig, now: u64) -> Result<u64> {
        self.check_open()?;
        let (auto, queues) = (
            self.settings.auto_create_topics,
            self.settings.default_queues,
        );
        self.groups
            .add_simple(cfg, &mut self.store, (auto, queues), now)
    }

    /// Up to `max` messages for simple consumer `handle`, invisible for `invisible_ms`.
    pub fn receive_simple(
        &mut self,
        handle: u64,
        max: usize,
        invisible_ms: u64,
        visible_end: u64,
        now: u64,
    ) -> Result<Vec<Taken>> {
        self.check_open()?;
        let msgs =
            self.groups
                .pop
                .receive(&self.store, handle, max, invisible_ms, visible_end, now)?;
        self.next_due = self.next_due.min(now.saturating_add(invisible_ms));
        self.flush_revive_if_full(now)?;
        Ok(msgs)
    }

    /// Acks the simple consumer delivery receipt handle `h` names.
    pub fn ack_simple(&mut self, handle: u64, h: &str, now: u64) -> Result<()> {
        self.check_open()?;
        // A fifo key may have freed its next message.
        if self.groups.pop.ack(&self.store, handle, h, now)? {
            self.arrived = true;
        }
        self.flush_revive_if_full(now)
    }

    /// Changes a simple consumer delivery's invisibility; the new receipt handle.
    /// Not `counts`: given back unconsumed (`PopGroups::suspend`).
    pub fn change_invisible(
        &mut self,
        handle: u64,
        h: &str,
        ms: u64,
        now: u64,
        counts: bool,
    ) -> Result<String> {
        self.check_open()?;
        let pop = &mut self.groups.pop;
        let new = if counts {
            pop.change_invisible(handle, h, ms, now)?
        } else {
            pop.suspend(handle, h, ms, now)?
        };
        self.next_due = self.next_due.min(now.saturating_add(ms));
        if ms == 0 {
            self.arrived = true;
        }
        self.flush_revive_if_full(now)?;
        Ok(new)
    }

    /// A simple consumer alone in its group changes the group's tag expression, or
    /// its SQL92 expression with `sql`.
    pub fn resubscribe_simple(&mut self, handle: u64, tags: &str, sql: Option<&str>) -> Result<()> {
        self.check_open()?;
        let filter = crate::filter::from_config(tags, sql)?;
        self.groups.pop.resubscribe(handle, filter)?;
        self.arrived = true;
        Ok(())
    }

    /// A simple consumer's failed delivery: visible again after `delay` ms, or after
    /// the retry ladder's step for its attempt (10 s, 30 s, 1 m, ... as for a nack).
    pub fn nack_simple(
        &mut self,
        handle: u64,
        h: &str,
        delay: Option<u64>,
        now: u64,
    ) -> Result<()> {
        let ms = match delay {
            Some(ms) if ms > crate::config::MAX_INVISIBLE_MS => {
                return Err(crate::Error::invalid(format!(
                    "a nack's delay must be at most {} ms (7 days, as an invisible \
                     duration), got {ms} ms",
                    crate::config::MAX_INVISIBLE_MS
                )))
            }
            Some(ms) => ms,
            None => {
                let attempt = self.groups.pop.attempt(handle, h, now)? as usize;
                let levels = &self.schedule.levels;
                levels[(1 + attempt).min(levels.len() - 1)]
            }
        };
        self.change_invisible(handle, h, ms, now, true).map(|_| ())
    }

    /// Moves a simple consumer's delivery to its group's DLQ at once.
    pub fn dead_letter_simple(&mut self, handle: u64, h: &str, now: u64) -> Result<()> {
        self.check_open()?;
        let e = self.groups.pop.take_for_dead_letter(handle, h, now)?;
        self.dead_letter(e, now)?;
        // Done in the revive log right after the copy (see `run_due`).
        self.flush_revive(now)
    }

    /// Copies an expired or forwarded simple consumer delivery to `%DLQ%<group>`
    /// (id, topic and properties kept, as classic dead letters), then marks it done.
    pub(super) fn dead_letter(&mut self, e: pop::Expired, now: u64) -> Result<()> {
        let (group, topic) = match self.groups.pop.groups().nth(e.group as usize) {
            Some(g) => (g.name.clone(), g.topic.clone()),
            None => return Ok(()),
        };
        let msg = self
            .store
            .queues
            .get(&topic, e.queue)
            .and_then(|cq| cq.entry(e.offset))
            .and_then(|x| self.store.message_at(x.phys));
        if let Some(mut m) = msg {
            m.reconsume_times = e.attempt.saturating_sub(1);
            if let Some(spec) = crate::consumer::dead_letter_copy(&mut self.store, &group, &m)? {
                self.put(std::slice::from_ref(&spec), now)?;
            }
            log::info!(
                "simple consumer group {group}: {} dead-lettered after {} deliveries",
                m.msg_id,
                e.attempt
            );
        }
        if self.groups.pop.dead_lettered(&self.store, e) {
            self.arrived = true;
        }
        Ok(())
    }

    /// Appends the simple consumers' buffered changes to the revive log.
    pub fn flush_revive(&mut self, now: u64) -> Result<()> {
        let Some(body) = self.groups.pop.take_pending() else {
            return Ok(());
        };
        self.store.system_queues(topic::REVIVE_TOPIC, 1)?;
        let spec = RecordSpec {
            topic: topic::REVIVE_TOPIC.into(),
            queue_id: 0,
            sys_flag: 0,
            born_ts: now,
            reconsume_times: 0,
            prepared_tx_offset: 0,
            body: body.into(),
            properties: Vec::new(),
            dedup: None,
            found: crate::message::properties::Found::UNKNOWN,
        };
        self.put(std::slice::from_ref(&spec), now)
    }

    pub(super) fn flush_revive_if_full(&mut self, now: u64) -> Result<()> {
        if self.groups.pop.pending.len() >= REVIVE_BATCH {
            self.flush_revive(now)?;
        }
        Ok(())
    }

    /// A failed delivery: a retry copy (after `delay` ms, or the ladder's step) or a
    /// dead letter is appended, or an orderly queue pauses.
    pub fn nack(
        &mut self,
        handle: u64,
        msg: &MessageExt,
        delay: Option<u64>,
        now: u64,
    ) -> Result<()> {
        self.nack_since(handle, msg, delay, now, now)
    }

    /// `nack` of a failure that happened at `since` (an ack deadline the broker
    /// noticed only at `now`): the retry or the orderly pause counts from `since`.
    pub(super) fn nack_since(
        &mut self,
        handle: u64,
        msg: &MessageExt,
        delay: Option<u64>,
        since: u64,
        now: u64,
    ) -> Result<()> {
        self.check_open()?;
        let levels = self.schedule.levels.len() as u32;
        let outcome = self
            .groups
            .nack(&mut self.store, handle, msg, levels, delay, since)?;
        match outcome {
            NackOutcome::Done => Ok(()),
            NackOutcome::Ack => self.ack(handle, msg),
            NackOutcome::Suspended(until) => {
                self.next_due = self.next_due.min(until);
                Ok(())
            }
            NackOutcome::SendBack(mut spec, delay) => {
                if spec.topic.starts_with(topic::DLQ_PREFIX) {
                    self.notices.push(Notice {
                        level: log::Level::Warn,
                        target: module_path!(),
                        text: format!(
                            "message {} of {} moved to {} after {} deliveries",
                            msg.msg_id,
                            msg.topic,
                            spec.topic,
                            msg.reconsume_times + 1
                        ),
                    });
                }
                let max_delay = self.settings.timer_max_delay_ms;
                let delay = if since < now {
                    self.schedule.counted_from(delay, since)
                } else {
                    delay
                };
                self.schedule
                    .apply(&mut spec, delay, now, max_delay, &mut self.store)?;
                self.put(std::slice::from_ref(&spec), now)?;
                self.ack(handle, msg)
            }
        }
    }

    /// Marks `msg` done for consumer `handle`'s group.
    pub fn ack(&mut self, handle: u64, msg: &MessageExt) -> Result<()> {
        if self.groups.ack(handle, msg)? {
            self.arrived = true;
        }
        Ok(())
    }

    pub fn reset_offset(&mut self, group: &str, t: &str, to: StartFrom, now: u64) -> Result<()> {
        self.check_open()?;
        self.groups.reset_offset(&self.store, group, t, to, now)?;
        self.arrived = true;
        Ok(())
    }
}
