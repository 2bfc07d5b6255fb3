//! Sending: validation, queue selection, delay transforms, transactional half messages; the one append path (`put`) and what dispatch tells the layers above.

use std::sync::Arc;

use super::store::{self, Kind};
use super::*;
use crate::message::record::{self, prop, RecordSpec, MAX_PROPERTIES_LEN, RESERVED_PROPERTIES};
use crate::topic::{self};
use crate::transaction::{Pending, Transactions};
use crate::{Delay, Error, Message, Result, SendResult, SendStatus};

impl State {
    pub(super) fn check_message(&self, m: &Message) -> Result<()> {
        if m.body.is_empty() {
            return Err(Error::invalid("the message body is empty"));
        }
        if m.body.len() > self.settings.max_message_size {
            return Err(Error::MessageTooLarge {
                size: m.body.len(),
                limit: self.settings.max_message_size,
            });
        }
        let bad = |s: &str| s.bytes().any(|b| b == 1 || b == 2);
        if let Some(t) = &m.tags {
            if t.is_empty() || bad(t) || t.contains("||") {
                return Err(Error::invalid(format!(
                    "tag {t:?}: a tag is one non-empty word"
                )));
            }
        }
        for k in &m.keys {
            if k.is_empty() || k.contains(' ') || bad(k) {
                return Err(Error::invalid(format!(
                    "key {k:?}: keys are non-empty and contain no spaces"
                )));
            }
        }
        for (k, v) in &m.properties {
            if k.is_empty() || v.is_empty() || bad(k) || bad(v) {
                return Err(Error::invalid(format!(
                    "property {k:?}: names and values are non-empty text"
                )));
            }
            if RESERVED_PROPERTIES.contains(&k.as_str()) {
                return Err(Error::invalid(format!(
                    "property {k:?} is reserved for the engine"
                )));
            }
        }
        if let Some(k) = &m.sharding_key {
            if k.is_empty() {
                return Err(Error::invalid("the sharding key is empty"));
            }
        }
        Ok(())
    }

    /// The queue count of a user topic, creating it on first send if allowed.
    pub(super) fn user_topic_queues(&mut self, name: &str) -> Result<u32> {
        topic::validate_user_topic(name)?;
        match self.store.topics.queues(name) {
            Some(n) => Ok(n),
            None if self.settings.auto_create_topics => {
                let n = self.settings.default_queues;
                self.store.create_topic(name, n)?;
                Ok(n)
            }
            None => Err(Error::TopicNotFound(name.to_string())),
        }
    }

    pub(super) fn select_queue(m: &Message, queues: u32, rr: u32) -> Result<u32> {
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
            return Ok(topic::queue_for_key(k, queues));
        }
        Ok(rr % queues)
    }

    pub(super) fn user_properties(m: &Message) -> Vec<u8> {
        let mut p = Vec::new();
        if let Some(t) = &m.tags {
            record::push_prop(&mut p, prop::TAGS, t);
        }
        if !m.keys.is_empty() {
            record::push_prop(&mut p, prop::KEYS, &m.keys.join(" "));
        }
        for (k, v) in &m.properties {
            record::push_prop(&mut p, k, v);
        }
        if let Some(k) = &m.sharding_key {
            record::push_prop(&mut p, prop::SHARDING_KEY, k);
        }
        p
    }

    pub(super) fn check_properties_len(p: &[u8]) -> Result<()> {
        if p.len() > MAX_PROPERTIES_LEN - 32 {
            return Err(Error::invalid(format!(
                "properties take {} bytes encoded, the limit is {}",
                p.len(),
                MAX_PROPERTIES_LEN - 32
            )));
        }
        Ok(())
    }

    /// Stores `msgs` (one append), turning a delay into a schedule or timer record.
    pub fn send(&mut self, msgs: Vec<Message>, rr: u32, now: u64) -> Result<Vec<SendResult>> {
        self.check_open()?;
        let Some(first) = msgs.first() else {
            return Ok(Vec::new());
        };
        let topic_name = first.topic.clone();
        if msgs.len() > 1 {
            if msgs.iter().any(|m| m.topic != topic_name) {
                return Err(Error::invalid("a batch goes to one topic"));
            }
            if msgs.iter().any(|m| m.delay != Delay::None) {
                return Err(Error::invalid("a batch cannot be delayed"));
            }
        }
        for m in &msgs {
            self.check_message(m)?;
        }
        let queues = self.user_topic_queues(&topic_name)?;
        let queue_id = Self::select_queue(first, queues, rr)?;
        let topic_arc = self.topic_arc(&topic_name);
        let mut specs = std::mem::take(&mut self.spec_buf);
        specs.clear();
        let mut total = 0usize;
        for m in msgs {
            let mut properties = Self::user_properties(&m);
            let (mut spec_topic, mut spec_queue) = (topic_arc.clone(), queue_id);
            let deliver_at = match m.delay {
                Delay::None => None,
                Delay::Level(0) => None,
                Delay::Level(l) => {
                    let level = l.min(self.settings.levels.len() as u32);
                    record::push_prop(&mut properties, prop::DELAY, &level.to_string());
                    record::push_prop(&mut properties, prop::REAL_TOPIC, &topic_name);
                    record::push_prop(&mut properties, prop::REAL_QID, &queue_id.to_string());
                    spec_topic = topic::SCHEDULE_TOPIC.into();
                    spec_queue = level - 1;
                    None
                }
                Delay::At(ms) => Some(ms),
                Delay::After(ms) => Some(now.saturating_add(ms)),
            };
            if let Some(at) = deliver_at {
                if at > now {
                    if at - now > self.settings.timer_max_delay_ms {
                        return Err(Error::invalid(format!(
                            "delivery {} ms ahead is beyond timer_max_delay ({} ms)",
                            at - now,
                            self.settings.timer_max_delay_ms
                        )));
                    }
                    record::push_prop(&mut properties, prop::TIMER_DELIVER_MS, &at.to_string());
                    record::push_prop(&mut properties, prop::REAL_TOPIC, &topic_name);
                    record::push_prop(&mut properties, prop::REAL_QID, &queue_id.to_string());
                    spec_topic = topic::TIMER_TOPIC.into();
                    spec_queue = 0;
                }
            }
            Self::check_properties_len(&properties)?;
            if *spec_topic != *topic_name {
                let n = if &*spec_topic == topic::SCHEDULE_TOPIC {
                    self.settings.levels.len() as u32
                } else {
                    1
                };
                self.store.system_queues(&spec_topic, n)?;
            }
            total += m.body.len();
            specs.push(RecordSpec {
                topic: spec_topic,
                queue_id: spec_queue,
                sys_flag: 0,
                born_ts: now,
                reconsume_times: 0,
                prepared_tx_offset: 0,
                body: m.body,
                properties,
            });
        }
        if specs.len() > 1 && total > self.settings.max_message_size {
            return Err(Error::MessageTooLarge {
                size: total,
                limit: self.settings.max_message_size,
            });
        }
        let put = self.put(&specs, now);
        specs.clear();
        self.spec_buf = specs;
        put?;
        let nonce = self.store.nonce;
        Ok(self
            .store
            .placed
            .iter()
            .map(|p| SendResult {
                msg_id: record::make_msg_id(nonce, p.phys),
                topic: topic_name.clone(),
                queue_id,
                queue_offset: p.queue_offset,
                commitlog_offset: p.phys,
                status: SendStatus::SendOk,
                transaction_state: None,
            })
            .collect())
    }

    /// Appends and dispatches; returns (physical offset, queue offset) per record.
    /// The topic as a shared string, reused across sends to the same topic.
    pub(super) fn topic_arc(&mut self, name: &str) -> Arc<str> {
        match &self.last_topic {
            Some(t) if &**t == name => t.clone(),
            _ => {
                let t: Arc<str> = name.into();
                self.last_topic = Some(t.clone());
                t
            }
        }
    }

    /// Appends and dispatches `specs`; where each went is in `self.store.placed`.
    pub(super) fn put(&mut self, specs: &[RecordSpec], now: u64) -> Result<()> {
        let State {
            store,
            timer,
            tx,
            topic_in,
            next_due,
            arrived,
            settings,
            ..
        } = self;
        let mut failure = None;
        store.put(specs, now, |r, kind, code| match kind {
            // User records are dispatched by Store::put itself and counted below.
            Kind::User => {}
            Kind::Schedule => *next_due = (*next_due).min(code),
            Kind::Timer => {
                *next_due = (*next_due).min(code);
                if let Err(e) = timer.add(r.queue_offset, code) {
                    failure.get_or_insert(e);
                }
            }
            Kind::Half => {
                tx.half_end = r.queue_offset + 1;
                tx.pending.insert(
                    r.queue_offset,
                    Pending {
                        phys: r.phys,
                        group: r.prop(prop::PGROUP).unwrap_or("").to_string(),
                        checks: 0,
                        next_check_ms: r.store_ts + settings.transaction_timeout_ms,
                    },
                );
                tx.dirty = true;
                *next_due = (*next_due).min(r.store_ts + settings.transaction_timeout_ms);
            }
            Kind::Op => {
                for qo in Transactions::parse_op_body(r.body()) {
                    tx.pending.remove(&qo);
                }
                tx.dirty = true;
            }
            Kind::Other => {}
        })?;
        if let Some(e) = failure {
            return Err(store::store_err(e));
        }
        // Count arrivals per run of one topic: one lookup per batch, no allocation.
        let mut i = 0;
        while i < specs.len() {
            let t = &specs[i].topic;
            let run = specs[i..]
                .iter()
                .take_while(|s| store::same(&s.topic, t))
                .count();
            if store::kind_of(t) == Kind::User {
                *arrived = true;
                match topic_in.get_mut(&**t) {
                    Some(c) => c.total += run as u64,
                    None => {
                        topic_in.insert(
                            t.to_string(),
                            Counter {
                                total: run as u64,
                                ..Counter::default()
                            },
                        );
                    }
                }
            }
            i += run;
        }
        Ok(())
    }

    pub fn check_open(&self) -> Result<()> {
        if self.closed {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }
}
