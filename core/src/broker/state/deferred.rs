//! Deferred work that the clock makes due: delay levels, timers, orderly pauses, retention, transaction checks and resolution.

use bytes::Bytes;

use super::*;
use crate::message::record::{self, prop, RecordSpec};
use crate::topic::{self};
use crate::transaction::{TxState, OP_TAG};
use crate::{Delay, Error, Message, MessageExt, Result, SendResult, SendStatus};

impl State {
    /// Delivers what is due at `now`: delayed messages, timers, orderly pauses ending,
    /// and applies retention. Returns the transaction checks to run (outside the lock).
    pub fn run_due(&mut self, now: u64) -> Result<Vec<Check>> {
        if self.closed {
            return Ok(Vec::new());
        }
        let mut checks = Vec::new();
        if now >= self.next_due {
            self.deliver_delayed(now)?;
            self.deliver_timers(now)?;
            checks = self.due_checks(now)?;
            // An orderly pause ending makes messages available again.
            if self
                .progress
                .values()
                .any(|p| p.suspend_until != 0 && p.suspend_until <= now)
            {
                for p in self.progress.values_mut() {
                    if p.suspend_until != 0 && p.suspend_until <= now {
                        p.suspend_until = 0;
                        self.arrived = true;
                    }
                }
            }
            self.next_due = self.compute_next_due();
        }
        if now >= self.last_retention + 10_000 || now < self.last_retention {
            self.last_retention = now;
            let reserved = self.settings.file_reserved_time_ms;
            let ratio = self.settings.disk_clean_forcibly_ratio;
            self.store.apply_retention(now, reserved, ratio)?;
        }
        for c in self.topic_in.values_mut() {
            c.sample(now);
        }
        for c in self.group_out.values_mut() {
            c.sample(now);
        }
        Ok(checks)
    }

    /// Runs retention now, whatever the interval (tick).
    pub fn retention_now(&mut self, now: u64) -> Result<()> {
        self.last_retention = now;
        let reserved = self.settings.file_reserved_time_ms;
        let ratio = self.settings.disk_clean_forcibly_ratio;
        self.store.apply_retention(now, reserved, ratio)?;
        Ok(())
    }

    pub(super) fn compute_next_due(&self) -> u64 {
        let mut next = u64::MAX;
        for level in 1..=self.settings.levels.len() as u32 {
            if let Some(cq) = self.store.cq(topic::SCHEDULE_TOPIC, level - 1) {
                let cur = self
                    .delay
                    .table
                    .get(&level)
                    .copied()
                    .unwrap_or(0)
                    .max(cq.min_offset());
                if let Some(e) = cq.entry(cur) {
                    next = next.min(e.code);
                }
            }
        }
        if let Some(t) = self.timer.next_due() {
            next = next.min(t);
        }
        if let Some(t) = self.tx.next_due() {
            next = next.min(t);
        }
        for p in self.progress.values() {
            if p.suspend_until != 0 {
                next = next.min(p.suspend_until);
            }
        }
        next
    }

    pub fn next_due_ms(&self) -> Option<u64> {
        (self.next_due != u64::MAX).then_some(self.next_due)
    }

    /// A copy of the record at `phys` bound for its real topic and queue.
    pub(super) fn real_copy(
        &mut self,
        phys: u64,
        drop_props: &[&str],
    ) -> Result<Option<RecordSpec>> {
        let nonce = self.store.nonce;
        let found = self.store.commitlog.with_record(phys, |r| {
            let raw = r.raw_properties();
            let real_topic = record::prop_value(raw, prop::REAL_TOPIC).map(str::to_string);
            let real_qid: u32 = record::prop_value(raw, prop::REAL_QID)
                .and_then(|q| q.parse().ok())
                .unwrap_or(0);
            let mut p = copy_properties(raw, drop_props);
            if record::prop_value(raw, prop::UNIQ_KEY).is_none() {
                record::push_prop(&mut p, prop::UNIQ_KEY, &record::make_msg_id(nonce, phys));
            }
            let (at, len) = r.body_range();
            (
                real_topic,
                real_qid,
                p,
                r.sys_flag,
                r.born_ts,
                r.reconsume_times,
                at,
                len,
            )
        });
        let Some((Some(real_topic), real_qid, props, sys_flag, born_ts, reconsume, at, len)) =
            found
        else {
            return Ok(None);
        };
        if real_topic == topic::TRANS_HALF_TOPIC {
            return Ok(None);
        }
        let queues = match self.store.topics.queues(&real_topic) {
            Some(n) => n,
            None => {
                let n = if topic::is_reserved(&real_topic) {
                    1
                } else {
                    self.settings.default_queues
                };
                self.store.create_topic(&real_topic, n)?;
                n
            }
        };
        let body = self
            .store
            .commitlog
            .read(phys + at as u64, len)
            .unwrap_or_default();
        Ok(Some(RecordSpec {
            topic: real_topic.into(),
            queue_id: real_qid % queues.max(1),
            sys_flag,
            born_ts,
            reconsume_times: reconsume,
            prepared_tx_offset: 0,
            body,
            properties: props,
        }))
    }

    pub(super) fn deliver_delayed(&mut self, now: u64) -> Result<()> {
        for level in 1..=self.settings.levels.len() as u32 {
            while let Some(cq) = self.store.cq(topic::SCHEDULE_TOPIC, level - 1) {
                let mut cur = self
                    .delay
                    .table
                    .get(&level)
                    .copied()
                    .unwrap_or(0)
                    .max(cq.min_offset());
                let mut due = Vec::new();
                while cur < cq.max_offset() && due.len() < 256 {
                    match cq.entry(cur) {
                        Some(e) if e.code <= now => {
                            due.push(e.phys);
                            cur += 1;
                        }
                        _ => break,
                    }
                }
                if due.is_empty() {
                    break;
                }
                let mut specs = Vec::with_capacity(due.len());
                for phys in due {
                    if let Some(s) = self.real_copy(phys, &[prop::DELAY, prop::TIMER_DELIVER_MS])? {
                        specs.push(s);
                    }
                }
                if !specs.is_empty() {
                    self.put(&specs, now)?;
                }
                self.delay.table.insert(level, cur);
                self.delay_dirty = true;
            }
        }
        Ok(())
    }

    pub(super) fn deliver_timers(&mut self, now: u64) -> Result<()> {
        if self.timer.pending() == 0 {
            return Ok(());
        }
        let State { store, timer, .. } = self;
        let due = match store.cq(topic::TIMER_TOPIC, 0) {
            Some(cq) => timer.due(now, |qo| cq.entry(qo).map_or(0, |e| e.code)),
            None => return Ok(()),
        };
        for chunk in due.chunks(256) {
            let mut specs = Vec::with_capacity(chunk.len());
            for &(_, qo) in chunk {
                let phys = self
                    .store
                    .cq(topic::TIMER_TOPIC, 0)
                    .and_then(|cq| cq.entry(qo))
                    .map(|e| e.phys);
                if let Some(phys) = phys {
                    if let Some(s) = self.real_copy(phys, &[prop::DELAY, prop::TIMER_DELIVER_MS])? {
                        specs.push(s);
                    }
                }
            }
            if !specs.is_empty() {
                self.put(&specs, now)?;
            }
        }
        Ok(())
    }

    pub(super) fn due_checks(&mut self, now: u64) -> Result<Vec<Check>> {
        let mut jobs = Vec::new();
        for qo in self.tx.due(now) {
            let Some(p) = self.tx.pending.get(&qo).cloned() else {
                continue;
            };
            if p.checks >= self.settings.max_checks {
                self.discard_half(qo, p.phys, now)?;
                continue;
            }
            let listener = self.listeners.get(&p.group).cloned();
            let entry = self.tx.pending.get_mut(&qo).expect("present above");
            entry.next_check_ms = now + self.settings.check_interval_ms;
            self.tx.dirty = true;
            if let Some(l) = listener {
                entry.checks += 1;
                if let Some(m) = self.store.message_at(p.phys) {
                    jobs.push((qo, l, m));
                }
            }
        }
        Ok(jobs)
    }

    pub(super) fn op_spec(half_qo: u64, now: u64) -> RecordSpec {
        let mut props = Vec::new();
        record::push_prop(&mut props, prop::TAGS, OP_TAG);
        RecordSpec {
            topic: topic::TRANS_OP_HALF_TOPIC.into(),
            queue_id: 0,
            sys_flag: 0,
            born_ts: now,
            reconsume_times: 0,
            prepared_tx_offset: 0,
            body: Bytes::from(format!("{half_qo},")),
            properties: props,
        }
    }

    pub(super) fn discard_half(&mut self, qo: u64, phys: u64, now: u64) -> Result<()> {
        self.store.system_queues(topic::TRANS_CHECK_MAX_TOPIC, 1)?;
        self.store.system_queues(topic::TRANS_OP_HALF_TOPIC, 1)?;
        let mut specs = Vec::new();
        if let Some(mut s) = self.real_copy(phys, &[])? {
            s.topic = topic::TRANS_CHECK_MAX_TOPIC.into();
            s.queue_id = 0;
            specs.push(s);
        }
        specs.push(Self::op_spec(qo, now));
        self.put(&specs, now)?;
        self.tx.pending.remove(&qo);
        Ok(())
    }

    /// Stores a half message for `group`; returns (send result, half queue offset, the
    /// half message as `execute` sees it).
    pub fn send_half(
        &mut self,
        group: &str,
        m: Message,
        rr: u32,
        now: u64,
    ) -> Result<(SendResult, u64, MessageExt)> {
        self.check_open()?;
        if m.delay != Delay::None {
            return Err(Error::invalid("a transactional message cannot be delayed"));
        }
        self.check_message(&m)?;
        let queues = self.user_topic_queues(&m.topic)?;
        let queue_id = Self::select_queue(&m, queues, rr)?;
        let mut props = Self::user_properties(&m);
        record::push_prop(&mut props, prop::REAL_TOPIC, &m.topic);
        record::push_prop(&mut props, prop::REAL_QID, &queue_id.to_string());
        record::push_prop(&mut props, prop::TRAN_MSG, "true");
        record::push_prop(&mut props, prop::PGROUP, group);
        Self::check_properties_len(&props)?;
        self.store.system_queues(topic::TRANS_HALF_TOPIC, 1)?;
        self.store.system_queues(topic::TRANS_OP_HALF_TOPIC, 1)?;
        let spec = RecordSpec {
            topic: topic::TRANS_HALF_TOPIC.into(),
            queue_id: 0,
            sys_flag: 0,
            born_ts: now,
            reconsume_times: 0,
            prepared_tx_offset: 0,
            body: m.body,
            properties: props,
        };
        self.put(std::slice::from_ref(&spec), now)?;
        let (phys, qo) = match self.store.placed.first() {
            Some(p) => (p.phys, p.queue_offset),
            None => {
                return Err(Error::StoreCorrupted(
                    "a half message was not placed".into(),
                ))
            }
        };
        let half = self.store.message_at(phys).ok_or_else(|| {
            Error::StoreCorrupted("a half message vanished after its append".into())
        })?;
        let result = SendResult {
            msg_id: record::make_msg_id(self.store.nonce, phys),
            topic: m.topic,
            queue_id,
            queue_offset: qo,
            commitlog_offset: phys,
            status: SendStatus::SendOk,
            transaction_state: None,
        };
        Ok((result, qo, half))
    }

    /// Records the outcome of half message `qo`. The first resolution wins; later
    /// ones (and UNKNOWN) change nothing. Returns whether this call resolved it.
    pub fn resolve(&mut self, qo: u64, state: TxState, now: u64) -> Result<bool> {
        if state == TxState::Unknown || self.closed {
            return Ok(false);
        }
        let Some(p) = self.tx.pending.get(&qo).cloned() else {
            return Ok(false);
        };
        let mut specs = Vec::new();
        if state == TxState::Commit {
            if let Some(mut s) = self.real_copy(
                p.phys,
                &[prop::TRAN_MSG, prop::PGROUP, prop::TRANSACTION_CHECK_TIMES],
            )? {
                s.sys_flag = record::SYS_FLAG_TX_COMMIT;
                s.prepared_tx_offset = p.phys;
                specs.push(s);
            }
        }
        specs.push(Self::op_spec(qo, now));
        self.put(&specs, now)?;
        self.tx.pending.remove(&qo);
        Ok(true)
    }
}
