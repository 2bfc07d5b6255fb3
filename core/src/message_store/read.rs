//! Reads: messages by offset and id, key queries, and copies of deferred records
//! for where they are bound.

use super::*;

impl MessageStore {
    /// The message at `phys` with a zero-copy body.
    pub fn message_at(&self, phys: u64) -> Option<MessageExt> {
        self.message_in(&mut Span::default(), phys)
    }

    /// `message_at`, its body cut from `span` (shared by the messages of one read).
    pub fn message_in(&self, span: &mut Span, phys: u64) -> Option<MessageExt> {
        self.lookup_in(span, phys).found()
    }

    /// The message at `phys`, telling a damaged record from a missing one.
    pub(super) fn lookup_in(&self, span: &mut Span, phys: u64) -> Lookup<MessageExt> {
        let found = self.commitlog.read_record(phys, |r| {
            let (at, len) = r.body_range();
            (at, len, MessageExt::from_record(r, &self.ids, Bytes::new()))
        });
        let Lookup::Found((body_at, len, mut msg)) = found else {
            return match found {
                Lookup::Corrupt => Lookup::Corrupt,
                _ => Lookup::Missing,
            };
        };
        msg.body = self.commitlog.read_in(span, phys + body_at as u64, len);
        if msg.body.len() == len {
            Lookup::Found(msg)
        } else {
            Lookup::Missing
        }
    }

    /// What the send that stored the record at `phys` returned (its topic and queue
    /// the real ones for a delayed or half message), marked a duplicate.
    pub fn send_result_at(&self, phys: u64) -> Option<SendResult> {
        self.commitlog
            .with_record(phys, |r| {
                let m = MessageExt::from_record(r, &self.ids, Bytes::new());
                SendResult {
                    msg_id: m.msg_id,
                    topic: m.topic,
                    queue_id: m.queue_id,
                    queue_offset: r.queue_offset,
                    commitlog_offset: phys,
                    status: crate::SendStatus::SendOk,
                    transaction_state: None,
                    duplicate: true,
                    recall_handle: None,
                }
            })
            .map(|mut r| {
                r.recall_handle = self.recall_handle_at(phys);
                r
            })
    }

    /// The recall handle of the delayed record at `phys` (its real topic, delivery
    /// time and message id), if it is one.
    pub fn recall_handle_at(&self, phys: u64) -> Option<String> {
        self.commitlog
            .with_record(phys, |r| {
                if !crate::engine::is_delayed(r.topic()) {
                    return None;
                }
                let due = self
                    .queues
                    .get(r.topic(), r.queue_id)?
                    .entry(r.queue_offset)?
                    .code;
                let m = MessageExt::from_record(r, &self.ids, Bytes::new());
                Some(crate::schedule::recall::handle(&m.topic, due, &m.msg_id))
            })
            .flatten()
    }

    /// The message with this id, if it is retained here (for a caller-given id, the
    /// first record that carries it: the original, not a retry or dead letter);
    /// `StoreCorrupted` when its record is there but damaged (never handed out).
    pub fn get(&self, msg_id: &str) -> Result<Option<MessageExt>> {
        let Some((nonce, phys)) = id::parse(msg_id) else {
            return Ok(self
                .index
                .ids(msg_id)
                .into_iter()
                .filter(|phys| !self.is_deleted(*phys))
                .filter_map(|phys| self.message_at(phys))
                .find(|m| m.msg_id == msg_id));
        };
        // The copies that carry this id: a committed transaction's message, or a
        // moved one once its original is gone (retention, a deleted topic).
        let moved = || {
            let id = msg_id.to_ascii_uppercase();
            self.index
                .ids(&id)
                .into_iter()
                .filter(|p| *p != phys && !self.is_deleted(*p))
                .filter_map(|p| self.message_at(p))
                .find(|m| m.msg_id == id)
        };
        if !self.ids.owns(nonce, phys) {
            return Ok(None);
        }
        if self.is_deleted(phys) {
            return Ok(moved());
        }
        let half = self
            .commitlog
            .with_record(phys, |r| r.topic() == topic::TRANS_HALF_TOPIC)
            .unwrap_or(false);
        if half {
            // A transactional message is what its commit stored, under the half
            // message's id; nothing while pending or once rolled back.
            return Ok(moved());
        }
        match self.lookup_in(&mut Span::default(), phys) {
            // A copy kept elsewhere (a retry, say) answers to its original's id only.
            Lookup::Found(m) if m.msg_id.eq_ignore_ascii_case(msg_id) => Ok(Some(m)),
            Lookup::Found(_) => Ok(None),
            Lookup::Missing => Ok(moved()),
            Lookup::Corrupt => Err(Error::StoreCorrupted(format!(
                "message {msg_id} is damaged on disk (its record fails its CRC)"
            ))),
        }
    }

    /// Whether the record at `phys` went with a deleted topic (its own, or the real
    /// topic a delayed or half message was bound for).
    pub fn is_deleted(&self, phys: u64) -> bool {
        if self.deleted.topics.is_empty() {
            return false;
        }
        self.commitlog
            .with_record(phys, |r| {
                self.deleted.hides(r.topic(), phys)
                    || properties::value(r.raw_properties(), prop::REAL_TOPIC)
                        .is_some_and(|t| self.deleted.hides(t, phys))
            })
            .unwrap_or(false)
    }

    /// The retained messages of `topic` with `key` among their keys, oldest first
    /// (within the read budget: `READ_BUDGET`).
    pub fn query(&self, topic: &str, key: &str) -> Vec<MessageExt> {
        let mut bytes = 0u64;
        self.index
            .candidates(topic, key)
            .iter()
            .filter(|phys| !self.deleted.hides(topic, **phys))
            .filter_map(|phys| self.message_at(*phys))
            .filter(|m| m.keys.iter().any(|k| k == key))
            .take_while(|m| {
                let more = bytes < crate::message::READ_BUDGET;
                bytes += m.body.len() as u64;
                more
            })
            .collect()
    }

    /// A copy of the record at `phys` for where `to` says: its real topic and queue
    /// (the `REAL_TOPIC`/`REAL_QID` a delay, timer or half message carries), or a
    /// fixed engine topic; without the properties in `drop_props`. None when the
    /// record is gone, or cannot go where it names (it is skipped and counted: a
    /// record read from the log is input like any other).
    pub fn copy_to_real_topic(
        &mut self,
        phys: u64,
        drop_props: &[&str],
        to: Destination<'_>,
        default_queues: u32,
    ) -> Result<Option<RecordSpec>> {
        let nonce = self.ids.at(phys);
        let found = self.commitlog.with_record(phys, |r| {
            let raw = r.raw_properties();
            let real_topic = properties::value(raw, prop::REAL_TOPIC).map(str::to_string);
            // A retry of a message whose topic was deleted since goes with it.
            let retry_of_deleted = self.deleted.hides_retry(raw, phys);
            let real_qid: Option<u32> =
                properties::value(raw, prop::REAL_QID).and_then(|q| q.parse().ok());
            let mut p = properties::copy_without(raw, drop_props);
            if properties::value(raw, prop::UNIQ_KEY).is_none() {
                properties::push(&mut p, prop::UNIQ_KEY, &id::make(nonce, phys));
            }
            let (at, len) = r.body_range();
            let spec = RecordSpec {
                topic: topic::TRANS_HALF_TOPIC.into(),
                queue_id: 0,
                sys_flag: record::copied_flags(r.sys_flag),
                born_ts: r.born_ts,
                reconsume_times: r.reconsume_times,
                prepared_tx_offset: 0,
                body: Bytes::new(),
                properties: p,
                dedup: None,
                found: crate::message::properties::Found::UNKNOWN,
            };
            (real_topic, real_qid, spec, at, len, retry_of_deleted)
        });
        let Some((real_topic, real_qid, mut spec, at, len, false)) = found else {
            return Ok(None);
        };
        let (name, queue_id) = match to {
            Destination::Fixed(name, queue_id) => (name.to_string(), queue_id),
            Destination::Real { retries } => {
                let Some(real) = real_topic else {
                    return Ok(self.skip(phys, "it names no REAL_TOPIC"));
                };
                if let Err(e) = topic::validate_real_topic(&real, retries) {
                    return Ok(self.skip(phys, &format!("its REAL_TOPIC is refused ({e})")));
                }
                (real, real_qid.unwrap_or(0))
            }
        };
        if self.deleted.hides(&name, phys) {
            return Ok(None);
        }
        let queues = match self.topics.queues(&name) {
            Some(n) => n,
            None => {
                let n = if topic::is_reserved(&name) {
                    1
                } else {
                    default_queues
                };
                self.create_topic(&name, n)?;
                n
            }
        };
        spec.queue_id = queue_id % queues.max(1);
        spec.topic = name.into();
        spec.body = self
            .commitlog
            .read(phys + at as u64, len)
            .unwrap_or_default();
        Ok(Some(spec))
    }

    /// Skips the record at `phys` that cannot be re-appended: logged and counted.
    pub(super) fn skip<T>(&mut self, phys: u64, why: &str) -> Option<T> {
        self.skipped_records += 1;
        log::warn!("the deferred record at CommitLog offset {phys} is skipped: {why}");
        None
    }
}
