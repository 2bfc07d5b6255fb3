//! Sends: the checks of a batch, its records, and the repeats of dedup ids.

use std::collections::HashMap;

use rustc_hash::FxBuildHasher;

use super::*;

/// What a segment keeps free beyond a user message's record, for the engine's
/// copies of it (`room_for`): their added properties (RETRY_TOPIC, REAL_TOPIC,
/// ORIGIN_MESSAGE_ID, timer and delay marks) and topic come to about 1 KiB at
/// most. An eighth of the segment where that is less (segments of a few KiB).
const COPY_ROOM: usize = 2048;

/// A message of a send that repeated a dedup id: its place in the send, and the
/// first send's result (or the index, among the stored messages, of the earlier
/// message of the same batch it repeats).
pub(crate) struct Repeat {
    at: usize,
    of: std::result::Result<SendResult, usize>,
}

impl Engine {
    /// Stores `msgs` (one topic, one queue, one append); as half messages of
    /// `half_group`, invisible until resolved, when that is given.
    pub fn send(
        &mut self,
        msgs: Vec<Message>,
        rr: u32,
        now: u64,
        half_group: Option<&str>,
    ) -> Result<Vec<SendResult>> {
        let mut msgs = msgs;
        let mut out = Vec::with_capacity(msgs.len());
        self.send_into(&mut msgs, rr, now, half_group, &mut out, None)?;
        Ok(out)
    }

    /// `send` of one message, through buffers the engine keeps rather than a vector
    /// for the message and one for its result. `key` is its dedup id's key when the
    /// caller computed it already (`Key::of` its topic and id).
    pub fn send_one(
        &mut self,
        msg: Message,
        rr: u32,
        now: u64,
        half_group: Option<&str>,
        key: Option<Key>,
    ) -> Result<SendResult> {
        let mut msgs = std::mem::take(&mut self.one_buf);
        msgs.clear();
        msgs.push(msg);
        let mut out = std::mem::take(&mut self.result_buf);
        out.clear();
        let sent = self.send_into(&mut msgs, rr, now, half_group, &mut out, key);
        let one = sent.and_then(|()| out.pop().ok_or_else(|| Error::invalid("nothing to send")));
        msgs.clear();
        out.clear();
        self.one_buf = msgs;
        self.result_buf = out;
        one
    }

    /// `send`, taking the messages out of `msgs` and adding their results to `out`.
    fn send_into(
        &mut self,
        msgs: &mut Vec<Message>,
        rr: u32,
        now: u64,
        half_group: Option<&str>,
        out: &mut Vec<SendResult>,
        key: Option<Key>,
    ) -> Result<()> {
        self.check_open()?;
        self.check_batch(msgs, half_group.is_some())?;
        let mut keys = std::mem::take(&mut self.key_buf);
        let repeats = self.drop_repeats(msgs, &mut keys, now, key);
        if msgs.is_empty() {
            self.key_buf = keys;
            *out = self.answer_repeats(Vec::new(), repeats);
            return Ok(());
        }
        // Ids the caller gave, to report (no allocation when none did).
        let given: Option<Vec<Option<String>>> = msgs
            .iter()
            .any(|m| m.msg_id.is_some())
            .then(|| msgs.iter().map(|m| m.msg_id.clone()).collect());
        let mut specs = std::mem::take(&mut self.spec_buf);
        specs.clear();
        let mut names = std::mem::take(&mut self.name_buf);
        names.clear();
        let built = self
            .build(
                msgs.drain(..),
                &keys,
                rr,
                now,
                half_group,
                &mut specs,
                &mut names,
            )
            .and_then(|to| self.room_for(&specs, true).map(|()| to));
        let put = built.and_then(|to| self.put(&specs, now).map(|()| to));
        // A delayed message is sent alone (`check_batch`).
        let delayed = specs.first().is_some_and(|s| is_delayed(&s.topic));
        self.recycle(&mut specs);
        self.spec_buf = specs;
        self.key_buf = keys;
        let queue_id = match put {
            Ok((_, q)) => q,
            Err(e) => {
                names.clear();
                self.name_buf = names;
                return Err(e);
            }
        };
        // Each result names its topic with the string its message came with.
        let results = self
            .store
            .placed
            .iter()
            .zip(names.drain(..))
            .enumerate()
            .map(|(i, (p, name))| {
                let mut r = self.result(name, queue_id, p.phys, p.queue_offset);
                if let Some(id) = given.as_ref().and_then(|g| g[i].clone()) {
                    r.msg_id = id;
                }
                if delayed {
                    r.recall_handle = self.store.recall_handle_at(p.phys);
                }
                r
            });
        out.extend(results);
        self.name_buf = names;
        if !repeats.is_empty() {
            *out = self.answer_repeats(std::mem::take(out), repeats);
        }
        Ok(())
    }

    /// Empties `specs`, keeping their property buffers for the next records: a few,
    /// of the sizes messages' properties usually take.
    #[inline(always)]
    pub(crate) fn recycle(&mut self, specs: &mut Vec<RecordSpec>) {
        const KEEP: usize = 64;
        const LARGEST: usize = 4096;
        for spec in specs.iter_mut() {
            let cap = spec.properties.capacity();
            if cap != 0 && cap <= LARGEST && self.prop_bufs.len() < KEEP {
                let mut p = std::mem::take(&mut spec.properties);
                p.clear();
                self.prop_bufs.push(p);
            }
        }
        specs.clear();
    }

    /// Refuses a user append that would start a new segment while the disk is used
    /// above `disk_max_used_ratio` (looked at again then), and, for `new` messages
    /// (sends, atomic blocks; not the drill's copies of stored ones), one too large
    /// for the engine's copies of it to fit a segment.
    pub(crate) fn room_for(&mut self, specs: &[RecordSpec], new: bool) -> Result<()> {
        // A retry, delay or dead-letter copy carries more properties and a longer
        // topic than the message: one that filled a segment could be stored but
        // never retried or dead-lettered (stuck in flight, each due tick failing).
        let seg = self.store.commitlog.seg_size();
        let limit = if new {
            seg - END_FILE_MIN_BLANK - COPY_ROOM.min(seg / 8)
        } else {
            usize::MAX
        };
        let mut size = 0;
        for s in specs {
            let n = s.encoded_len();
            if n > limit {
                return Err(Error::MessageTooLarge { size: n, limit });
            }
            size += n;
        }
        if size + END_FILE_MIN_BLANK > self.store.commitlog.remaining_in_segment() {
            self.check_disk();
            if let Some(why) = &self.disk_full {
                return Err(Error::DiskFull(why.clone()));
            }
        }
        Ok(())
    }

    /// Refuses what would store messages while the disk is used above
    /// `disk_max_used_ratio` (sends, atomic blocks with sends, backlog drills).
    pub(crate) fn check_room(&self) -> Result<()> {
        match &self.disk_full {
            Some(why) => Err(Error::DiskFull(why.clone())),
            None => Ok(()),
        }
    }

    /// What a send reports for the record stored at `phys`.
    pub(crate) fn result(&self, topic: String, queue_id: u32, phys: u64, qo: u64) -> SendResult {
        SendResult {
            msg_id: id::make(self.store.ids.current(), phys),
            topic,
            queue_id,
            queue_offset: qo,
            commitlog_offset: phys,
            status: SendStatus::SendOk,
            transaction_state: None,
            duplicate: false,
            recall_handle: None,
        }
    }

    /// Checks a batch before anything is stored: one topic, no delay on a batch or a
    /// half message, every message valid, the bodies within the size limit.
    pub(crate) fn check_batch(&self, msgs: &[Message], half: bool) -> Result<()> {
        let Some(first) = msgs.first() else {
            return Ok(());
        };
        // One pass for the common case (all alike); which rule failed is sorted out
        // after.
        let apart = msgs.iter().skip(1).any(|m| {
            m.queue_id != first.queue_id
                || m.sharding_key != first.sharding_key
                || m.topic != first.topic
        });
        if apart && msgs.iter().any(|m| m.topic != first.topic) {
            return Err(Error::invalid("a batch goes to one topic"));
        }
        if apart {
            // Its queue is chosen once, by the first message: another message's own
            // choice would be silently ignored (and its key's order broken).
            return Err(Error::invalid(
                "a batch goes to one queue: its messages must share queue_id and \
                 sharding_key (send the others apart, or together in one atomic() block)",
            ));
        }
        // Level 0 and 0 ms are no delay (as for a single send), not a refused one.
        let delayed = msgs
            .iter()
            .any(|m| !matches!(m.delay, Delay::None | Delay::Level(0) | Delay::After(0)));
        if delayed && (msgs.len() > 1 || half) {
            return Err(Error::invalid(
                "a batch or a transactional message cannot be delayed",
            ));
        }
        self.check_room()?;
        let max_size = self.settings.max_message_size;
        msgs.iter().try_for_each(|m| m.validate(max_size))?;
        let total: usize = msgs.iter().map(|m| m.body.len()).sum();
        if msgs.len() > 1 && total > max_size {
            return Err(Error::MessageTooLarge {
                size: total,
                limit: max_size,
            });
        }
        Ok(())
    }

    /// The records of a checked, non-empty batch (appended to `specs`): its topic
    /// created if allowed, its queue chosen, delays and half messages applied.
    /// `keys`, when not empty, has the dedup key of each message. Returns the topic
    /// and queue. Each message's topic string moves to `names`, for its result.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build(
        &mut self,
        msgs: impl IntoIterator<Item = Message>,
        keys: &[Option<Key>],
        rr: u32,
        now: u64,
        half_group: Option<&str>,
        specs: &mut Vec<RecordSpec>,
        names: &mut Vec<String>,
    ) -> Result<(Arc<str>, u32)> {
        let mut msgs = msgs.into_iter().peekable();
        let Some(first) = msgs.peek() else {
            return Err(Error::invalid("nothing to send"));
        };
        let (auto, n) = (
            self.settings.auto_create_topics,
            self.settings.default_queues,
        );
        // A new topic is created once its messages are known to be valid: a refused
        // send leaves none behind.
        let (queues, create) = self.store.user_topic_queues(&first.topic, auto, n)?;
        let queue_id = topic::select_queue(first, queues, rr)?;
        let topic = self.store.topic_arc(&first.topic);
        let max_delay = self.settings.timer_max_delay_ms;
        for (i, mut m) in msgs.enumerate() {
            names.push(std::mem::take(&mut m.topic));
            let delay = m.delay;
            let buf = self.prop_bufs.pop().unwrap_or_default();
            // Made in its place (a record's spec is large to move).
            specs.push(m.into_record(topic.clone(), queue_id, now, buf));
            let Some(spec) = specs.last_mut() else {
                continue;
            };
            spec.dedup = keys.get(i).copied().flatten();
            if delay != Delay::None {
                self.schedule
                    .apply(spec, delay, now, max_delay, &mut self.store)?;
            }
            if let Some(group) = half_group {
                Transactions::half_spec(spec, group);
            }
            properties::check_len(&spec.properties)?;
        }
        if create {
            self.store.create_topic(&topic, queues)?;
            self.topic_created(&topic, now)?;
        }
        Ok((topic, queue_id))
    }

    /// Whether `m` could be sent now as far as its topic and queue go: a user topic
    /// that exists (or would be created), and a `queue_id` within it.
    pub(crate) fn check_target(&self, m: &Message) -> Result<()> {
        topic::validate_user_topic(&m.topic)?;
        match self.store.topics.queues(&m.topic) {
            Some(n) => topic::select_queue(m, n, 0).map(|_| ()),
            None if self.settings.auto_create_topics => {
                topic::select_queue(m, self.settings.default_queues, 0).map(|_| ())
            }
            None => Err(Error::TopicNotFound(m.topic.clone())),
        }
    }

    /// A send created `topic`: consumers waiting for it (it was deleted under them)
    /// get its queues.
    #[cold]
    #[inline(never)]
    fn topic_created(&mut self, topic: &str, now: u64) -> Result<()> {
        self.groups.topic_grew(topic, &mut self.store, now)
    }

    /// Takes out of `msgs` those repeating a dedup id inside the window (of an earlier
    /// send, or of an earlier message of this batch). `keys` gets the dedup key of
    /// each message kept, or stays empty when none has a dedup id. `key`: the key of
    /// a lone message's id, when its sender computed it.
    #[inline]
    pub(crate) fn drop_repeats(
        &mut self,
        msgs: &mut Vec<Message>,
        keys: &mut Vec<Option<Key>>,
        now: u64,
        key: Option<Key>,
    ) -> Vec<Repeat> {
        keys.clear();
        if msgs.iter().all(|m| m.dedup_id.is_none()) {
            return Vec::new();
        }
        self.drop_repeated_ids(msgs, keys, now, key)
    }

    /// `drop_repeats` of messages some of which have a dedup id.
    #[inline(never)]
    fn drop_repeated_ids(
        &mut self,
        msgs: &mut Vec<Message>,
        keys: &mut Vec<Option<Key>>,
        now: u64,
        key: Option<Key>,
    ) -> Vec<Repeat> {
        self.dedup.expire(now);
        if let [m] = msgs.as_slice() {
            // One message: no earlier one of its batch to look through.
            let Some(d) = &m.dedup_id else {
                keys.push(None);
                return Vec::new();
            };
            let k = key.unwrap_or_else(|| Key::of(&m.topic, d));
            if let Some(phys) = self.dedup.get(k, now) {
                match first_send(&self.store, phys) {
                    Some(r) => {
                        msgs.clear();
                        return vec![Repeat { at: 0, of: Ok(r) }];
                    }
                    None => self.dedup.release(k, phys),
                }
            }
            keys.push(Some(k));
            return Vec::new();
        }
        let mut repeats = Vec::new();
        // Ids whose first send is gone: given back below.
        let mut gone = Vec::new();
        let (window, store) = (&self.dedup, &self.store);
        // The keys of the batch so far, by index among the messages kept (a map, not a
        // search of `keys`: batches of many thousands of ids would take quadratic time
        // under the lock).
        let mut earlier: HashMap<Key, usize, FxBuildHasher> = HashMap::default();
        let (mut at, total) = (0, msgs.len());
        msgs.retain(|m| {
            let i = at;
            at += 1;
            let Some(d) = &m.dedup_id else {
                keys.push(None);
                return true;
            };
            let k = Key::of(&m.topic, d);
            let stored = window.get(k, now).and_then(|phys| {
                let first = first_send(store, phys);
                if first.is_none() {
                    gone.push((k, phys));
                }
                first
            });
            if let Some(r) = stored {
                repeats.push(Repeat { at: i, of: Ok(r) });
                return false;
            }
            // An earlier message of this batch, by its index among those kept.
            if let Some(&j) = earlier.get(&k) {
                repeats.push(Repeat { at: i, of: Err(j) });
                return false;
            }
            if at < total {
                earlier.insert(k, keys.len());
            }
            keys.push(Some(k));
            true
        });
        for (k, phys) in gone {
            self.dedup.release(k, phys);
        }
        repeats
    }

    /// The results of a send in the order of its messages: `stored` for the messages
    /// kept, and the first results for the repeats.
    pub(crate) fn answer_repeats(
        &self,
        stored: Vec<SendResult>,
        repeats: Vec<Repeat>,
    ) -> Vec<SendResult> {
        if repeats.is_empty() {
            return stored;
        }
        let total = stored.len() + repeats.len();
        let mut out = Vec::with_capacity(total);
        let mut stored_iter = stored.iter().cloned();
        let mut repeats = repeats.into_iter().peekable();
        for i in 0..total {
            let r = match repeats.next_if(|r| r.at == i) {
                Some(Repeat { of: Ok(r), .. }) => r,
                Some(Repeat { of: Err(j), .. }) => SendResult {
                    duplicate: true,
                    ..stored[j].clone()
                },
                None => match stored_iter.next() {
                    Some(r) => r,
                    None => break,
                },
            };
            out.push(r);
        }
        out
    }
}

/// What the send that stored the record at `phys` returned, unless the record is
/// gone: it went with its segment (retention) or its topic (a deletion). A send
/// repeating its dedup id is then new, and takes the id.
fn first_send(store: &MessageStore, phys: u64) -> Option<SendResult> {
    if store.is_deleted(phys) {
        return None;
    }
    store.send_result_at(phys)
}

/// Whether records of `topic` wait for their delivery time (a delay level or a timer).
pub(crate) fn is_delayed(topic: &str) -> bool {
    matches!(
        crate::dispatch::kind_of(topic),
        crate::dispatch::Kind::Schedule | crate::dispatch::Kind::Timer
    )
}
