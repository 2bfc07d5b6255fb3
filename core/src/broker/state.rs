//! Everything the broker's one lock guards: the store, consumer groups and their
//! progress, delay cursors, the timer wheel, pending transactions, stats. Methods
//! here never block and never call user code; the facade (mod.rs) waits, flushes and
//! calls listeners outside the lock.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use super::store::{self, read_json, write_json, Kind, Store, ABORT_FILE};
use crate::consumer::{allocate_averagely, ConsumerEntry, ProgressTable, QueueProgress};
use crate::filter::TagFilter;
use crate::message::record::{self, prop, RecordSpec, MAX_PROPERTIES_LEN, RESERVED_PROPERTIES};
use crate::offsets::OffsetTable;
use crate::schedule::{self, DelayOffsets, TimerCheckpoint, TimerWheel};
use crate::store::Backend;
use crate::topic::{self, DLQ_PREFIX, RETRY_PREFIX};
use crate::transaction::{Listeners, Pending, Transactions, TxCheckpoint, TxState, OP_TAG};
use crate::{
    BrokerConfig, ConsumerConfig, Delay, Error, GroupStats, Message, MessageExt, MessageModel,
    QueueStats, Receipt, Result, SendResult, SendStatus, StartFrom, Stats, TopicStats,
    TransactionListener,
};

pub(crate) type Callback = Box<dyn FnOnce() + Send>;

/// A transaction check to run outside the lock: half queue offset, listener, message.
pub(crate) type Check = (u64, Arc<dyn TransactionListener>, MessageExt);

/// Broker options the engine consults after open.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub levels: Vec<u64>,
    pub max_message_size: usize,
    pub auto_create_topics: bool,
    pub default_queues: u32,
    pub timer_max_delay_ms: u64,
    pub file_reserved_time_ms: u64,
    pub disk_clean_forcibly_ratio: f64,
    pub transaction_timeout_ms: u64,
    pub check_interval_ms: u64,
    pub max_checks: u32,
}

/// Messages in and out over time, for rates.
#[derive(Debug, Default)]
struct Counter {
    total: u64,
    samples: VecDeque<(u64, u64)>,
}

impl Counter {
    fn sample(&mut self, now: u64) {
        if self.samples.back().is_none_or(|(t, _)| now >= t + 1000) {
            self.samples.push_back((now, self.total));
        }
        while self.samples.len() > 2 && self.samples.front().is_some_and(|(t, _)| now > t + 60_000)
        {
            self.samples.pop_front();
        }
    }
    fn rate(&self, now: u64) -> f64 {
        match self.samples.front() {
            Some(&(t, n)) if now > t => (self.total - n) as f64 * 1000.0 / (now - t) as f64,
            _ => 0.0,
        }
    }
}

pub(crate) struct State {
    pub store: Store,
    pub settings: Settings,
    pub consumers: BTreeMap<u64, ConsumerEntry>,
    progress: ProgressTable,
    offsets: OffsetTable,
    offsets_dirty: bool,
    delay: DelayOffsets,
    delay_dirty: bool,
    timer: TimerWheel,
    timer_saved: TimerCheckpoint,
    pub tx: Transactions,
    pub listeners: Listeners,
    pub closed: bool,
    pub waiters: Vec<Callback>,
    next_consumer: u64,
    topic_in: rustc_hash::FxHashMap<String, Counter>,
    group_out: HashMap<(String, String), Counter>,
    /// Earliest time deferred work may be due (u64::MAX: none).
    pub next_due: u64,
    last_retention: u64,
    /// Set when a visible message landed; the facade wakes receivers.
    pub arrived: bool,
}

fn fresh_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

impl State {
    pub fn open(config: &BrokerConfig, backend: Arc<dyn Backend>, now: u64) -> Result<State> {
        let levels = schedule::parse_levels(&config.delay_levels)?;
        let seg_size = match config.segment_size {
            Some(s) if !(4096..=(1 << 30)).contains(&s) => {
                return Err(Error::invalid(format!(
                    "segment_size must be between 4 KiB and 1 GiB, got {s}"
                )))
            }
            Some(s) => s as usize,
            None if backend.is_persistent() => 64 << 20,
            None => 16 << 20,
        };
        if config.default_queues == 0 || config.default_queues > 1024 {
            return Err(Error::invalid("default_queues must be between 1 and 1024"));
        }
        let settings = Settings {
            levels: levels.clone(),
            max_message_size: config.max_message_size,
            auto_create_topics: config.auto_create_topics,
            default_queues: config.default_queues,
            timer_max_delay_ms: config.timer_max_delay_ms,
            file_reserved_time_ms: config.file_reserved_time_ms,
            disk_clean_forcibly_ratio: config.disk_clean_forcibly_ratio,
            transaction_timeout_ms: config.transaction_timeout_ms,
            check_interval_ms: config.check_interval_ms,
            max_checks: config.max_checks,
        };
        let mut store = Store::open(backend.clone(), seg_size, levels, fresh_nonce())?;
        let offsets: OffsetTable = read_json(&*backend, OffsetTable::FILE)?.unwrap_or_default();
        let delay: DelayOffsets = read_json(&*backend, DelayOffsets::FILE)?.unwrap_or_default();
        let timer_cp: TimerCheckpoint =
            read_json(&*backend, TimerCheckpoint::FILE)?.unwrap_or_default();
        let tx_cp: TxCheckpoint = read_json(&*backend, TxCheckpoint::FILE)?.unwrap_or_default();
        let mut timer = TimerWheel::new(
            backend.clone(),
            timer_cp.low_water,
            timer_cp.delivered_until,
        )
        .map_err(store::store_err)?;
        let mut tx = Transactions::default();
        let mut failure = None;
        store.recover(|r, kind, code| {
            let res = match kind {
                Kind::Timer if r.queue_offset >= timer_cp.low_water => {
                    if code <= timer_cp.delivered_until {
                        timer.skip(r.queue_offset)
                    } else {
                        timer.add(r.queue_offset, code)
                    }
                }
                Kind::Half => {
                    tx.half_end = r.queue_offset + 1;
                    if r.queue_offset >= tx_cp.low_water {
                        let checks = tx_cp.checks.get(&r.queue_offset).copied().unwrap_or(0);
                        tx.pending.insert(
                            r.queue_offset,
                            Pending {
                                phys: r.phys,
                                group: r.prop(prop::PGROUP).unwrap_or("").to_string(),
                                checks,
                                next_check_ms: r.store_ts
                                    + settings.transaction_timeout_ms
                                    + checks as u64 * settings.check_interval_ms,
                            },
                        );
                    }
                    Ok(())
                }
                Kind::Op => {
                    for qo in Transactions::parse_op_body(r.body()) {
                        tx.pending.remove(&qo);
                    }
                    Ok(())
                }
                _ => Ok(()),
            };
            if let Err(e) = res {
                failure.get_or_insert(e);
            }
        })?;
        if let Some(e) = failure {
            return Err(store::store_err(e));
        }
        backend.write_meta(ABORT_FILE, std::process::id().to_string().as_bytes())?;
        let mut state = State {
            store,
            settings,
            consumers: BTreeMap::new(),
            progress: ProgressTable::default(),
            offsets,
            offsets_dirty: false,
            delay,
            delay_dirty: false,
            timer,
            timer_saved: timer_cp,
            tx,
            listeners: HashMap::new(),
            closed: false,
            waiters: Vec::new(),
            next_consumer: 0,
            topic_in: Default::default(),
            group_out: HashMap::new(),
            next_due: 0,
            last_retention: now,
            arrived: false,
        };
        // Clamp the delay cursors into what the schedule queues hold.
        let levels = state.settings.levels.len() as u32;
        for level in 1..=levels {
            if let Some(cq) = state.store.cq(topic::SCHEDULE_TOPIC, level - 1) {
                let cur = state.delay.table.get(&level).copied().unwrap_or(0);
                let clamped = cur.clamp(cq.min_offset(), cq.max_offset());
                if clamped != cur {
                    state.delay.table.insert(level, clamped);
                    state.delay_dirty = true;
                }
            }
        }
        Ok(state)
    }

    // ----- sending -----

    fn check_message(&self, m: &Message) -> Result<()> {
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
    fn user_topic_queues(&mut self, name: &str) -> Result<u32> {
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

    fn select_queue(m: &Message, queues: u32, rr: u32) -> Result<u32> {
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

    fn user_properties(m: &Message) -> Vec<u8> {
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

    fn check_properties_len(p: &[u8]) -> Result<()> {
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
        let topic_arc: Arc<str> = topic_name.as_str().into();
        let mut specs = Vec::with_capacity(msgs.len());
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
        let placed = self.put(&specs, now)?;
        let nonce = self.store.nonce;
        Ok(placed
            .iter()
            .map(|p| SendResult {
                msg_id: record::make_msg_id(nonce, p.0),
                topic: topic_name.clone(),
                queue_id,
                queue_offset: p.1,
                commitlog_offset: p.0,
                status: SendStatus::SendOk,
                transaction_state: None,
            })
            .collect())
    }

    /// Appends and dispatches; returns (physical offset, queue offset) per record.
    fn put(&mut self, specs: &[RecordSpec], now: u64) -> Result<Vec<(u64, u64)>> {
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
        let mut qos = Vec::with_capacity(specs.len());
        let mut failure = None;
        let mut arrivals: Vec<(String, u64)> = Vec::new();
        let placed = store.put(specs, now, |r, kind, code| {
            qos.push(r.queue_offset);
            match kind {
                Kind::User => {
                    *arrived = true;
                    match arrivals.last_mut() {
                        Some((t, n)) if t == r.topic() => *n += 1,
                        _ => arrivals.push((r.topic().to_string(), 1)),
                    }
                }
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
            }
        })?;
        if let Some(e) = failure {
            return Err(store::store_err(e));
        }
        for (t, n) in arrivals {
            topic_in.entry(t).or_default().total += n;
        }
        Ok(placed.iter().zip(qos).map(|(p, qo)| (p.phys, qo)).collect())
    }

    pub fn check_open(&self) -> Result<()> {
        if self.closed {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    // ----- consumers -----

    pub fn add_consumer(&mut self, cfg: &ConsumerConfig, now: u64) -> Result<u64> {
        self.check_open()?;
        topic::validate_group(&cfg.group)?;
        topic::validate_consumable_topic(&cfg.topic)?;
        let filter = TagFilter::parse(&cfg.tags)?;
        let user_topic = !topic::is_reserved(&cfg.topic);
        if self.store.topics.queues(&cfg.topic).is_none() {
            if user_topic && !self.settings.auto_create_topics {
                return Err(Error::TopicNotFound(cfg.topic.clone()));
            }
            let n = if user_topic {
                self.settings.default_queues
            } else {
                1
            };
            self.store.create_topic(&cfg.topic, n)?;
        }
        let handle = self.next_consumer;
        self.next_consumer += 1;
        let name = match &cfg.consumer_id {
            Some(id) if !id.is_empty() => {
                if self
                    .consumers
                    .values()
                    .any(|c| !c.closed && c.group == cfg.group && &c.name == id)
                {
                    return Err(Error::invalid(format!(
                        "consumer {id:?} is already open in group {:?}",
                        cfg.group
                    )));
                }
                id.clone()
            }
            _ => format!("consumer-{handle:08}"),
        };
        let entry = ConsumerEntry {
            name,
            group: cfg.group.clone(),
            topic: cfg.topic.clone(),
            filter,
            model: cfg.model,
            orderly: cfg.orderly,
            max_reconsume_times: cfg.max_reconsume_times,
            assigned: Vec::new(),
            slots: Vec::new(),
            rr: 0,
            closed: false,
        };
        self.consumers.insert(handle, entry);
        self.rebalance(&cfg.group, cfg.start, now)?;
        Ok(handle)
    }

    pub fn close_consumer(&mut self, handle: u64, now: u64) -> Result<()> {
        let Some(c) = self.consumers.remove(&handle) else {
            return Ok(());
        };
        for (t, q) in &c.assigned {
            if let Some(p) = self.progress.get_mut(&(c.owner(), t.clone(), *q)) {
                if p.owner == Some(handle) {
                    p.rewind();
                    p.owner = None;
                    self.offsets_dirty = true;
                }
            }
        }
        self.rebalance(&c.group, StartFrom::Earliest, now)
    }

    /// Re-runs the allocation of `group` (its topic grew).
    pub fn regroup(&mut self, group: &str, now: u64) -> Result<()> {
        self.rebalance(group, StartFrom::Earliest, now)
    }

    /// Recomputes which consumer of `group` reads which queue. A queue that changes
    /// hands is rewound to its committed offset, so its unacked messages go to the
    /// new owner.
    fn rebalance(&mut self, group: &str, start: StartFrom, now: u64) -> Result<()> {
        let members: Vec<u64> = self
            .consumers
            .iter()
            .filter(|(_, c)| c.group == group && !c.closed)
            .map(|(h, _)| *h)
            .collect();
        let retry = format!("{RETRY_PREFIX}{group}");
        let mut plan: BTreeMap<u64, Vec<(String, u32)>> = BTreeMap::new();
        let mut topics: Vec<String> = members
            .iter()
            .map(|h| self.consumers[h].topic.clone())
            .collect();
        topics.sort();
        topics.dedup();
        for t in &topics {
            let queues = self.store.topics.queues(t).unwrap_or(0);
            let mut subs: Vec<(String, u64, MessageModel)> = members
                .iter()
                .map(|h| (&self.consumers[h], *h))
                .filter(|(c, _)| &c.topic == t)
                .map(|(c, h)| (c.name.clone(), h, c.model))
                .collect();
            subs.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
            let clustering: Vec<&(String, u64, MessageModel)> = subs
                .iter()
                .filter(|s| s.2 == MessageModel::Clustering)
                .collect();
            for (i, s) in clustering.iter().enumerate() {
                let share = allocate_averagely(queues, clustering.len(), i);
                plan.entry(s.1)
                    .or_default()
                    .extend(share.into_iter().map(|q| (t.clone(), q)));
            }
            for s in subs.iter().filter(|s| s.2 == MessageModel::Broadcasting) {
                plan.entry(s.1)
                    .or_default()
                    .extend((0..queues).map(|q| (t.clone(), q)));
            }
        }
        // The group's retry topic: shared by its clustering consumers, one queue.
        let mut clustering: Vec<(String, u64)> = members
            .iter()
            .map(|h| (&self.consumers[h], *h))
            .filter(|(c, _)| c.model == MessageModel::Clustering && !topic::is_reserved(&c.topic))
            .map(|(c, h)| (c.name.clone(), h))
            .collect();
        clustering.sort();
        if !clustering.is_empty() {
            let queues = self.store.system_queues(&retry, 1)?;
            for (i, (_, h)) in clustering.iter().enumerate() {
                let share = allocate_averagely(queues, clustering.len(), i);
                plan.entry(*h)
                    .or_default()
                    .extend(share.into_iter().map(|q| (retry.clone(), q)));
            }
        }
        for h in members {
            let assigned = plan.remove(&h).unwrap_or_default();
            let owner = self.consumers[&h].owner();
            let mut slots = Vec::with_capacity(assigned.len());
            for (t, q) in &assigned {
                let from = if t == &retry {
                    StartFrom::Earliest
                } else {
                    start
                };
                let slot = self.ensure_progress(&owner, t, *q, from, now);
                slots.push(slot);
                let p = self
                    .progress
                    .at_mut(slot)
                    .expect("progress was just ensured");
                if p.owner != Some(h) {
                    if p.owner.is_some() {
                        p.rewind();
                    }
                    p.owner = Some(h);
                    p.epoch += 1;
                }
            }
            if let Some(c) = self.consumers.get_mut(&h) {
                c.assigned = assigned;
                c.slots = slots;
            }
        }
        Ok(())
    }

    fn ensure_progress(
        &mut self,
        owner: &str,
        t: &str,
        q: u32,
        start: StartFrom,
        now: u64,
    ) -> usize {
        let key = (owner.to_string(), t.to_string(), q);
        if let Some(slot) = self.progress.slot(&key) {
            return slot;
        }
        let (min, max) = self
            .store
            .cq(t, q)
            .map_or((0, 0), |cq| (cq.min_offset(), cq.max_offset()));
        let known_group = self.offsets.table.contains_key(&OffsetTable::key(t, owner));
        let next = match self.offsets.get(t, owner, q) {
            Some(o) => o.clamp(min, max),
            // A queue added to a topic the group already consumes: from its start.
            None if known_group => min,
            None => self.start_offset(t, q, start, now),
        };
        let slot = self.progress.insert(
            key,
            QueueProgress {
                next,
                ..QueueProgress::default()
            },
        );
        self.offsets.set(t, owner, q, next);
        self.offsets_dirty = true;
        slot
    }

    fn start_offset(&self, t: &str, q: u32, start: StartFrom, now: u64) -> u64 {
        let Some(cq) = self.store.cq(t, q) else {
            return 0;
        };
        match start {
            StartFrom::Earliest => cq.min_offset(),
            StartFrom::Latest => cq.max_offset(),
            StartFrom::Timestamp(ms) => self.offset_at_time(t, q, ms.min(now.max(ms))),
        }
    }

    /// The first queue offset of (t, q) stored at or after `ms`.
    fn offset_at_time(&self, t: &str, q: u32, ms: u64) -> u64 {
        let Some(cq) = self.store.cq(t, q) else {
            return 0;
        };
        let log = &self.store.commitlog;
        cq.search(|e| {
            log.with_record(e.phys, |r| r.store_ts >= ms)
                .unwrap_or(false)
        })
    }

    fn visible(entry_end: u64, visible_end: u64) -> bool {
        entry_end <= visible_end
    }

    /// Up to `max` messages for consumer `handle`, without waiting.
    pub fn receive(
        &mut self,
        handle: u64,
        max: usize,
        visible_end: u64,
        now: u64,
    ) -> Result<Vec<MessageExt>> {
        self.check_open()?;
        let State {
            store,
            consumers,
            progress,
            offsets_dirty,
            group_out,
            ..
        } = self;
        let Some(c) = consumers.get_mut(&handle) else {
            return Err(Error::Closed);
        };
        let mut out = Vec::new();
        let n = c.assigned.len();
        if n == 0 || max == 0 {
            return Ok(out);
        }
        let mut entries = Vec::with_capacity(64);
        for i in 0..n {
            if out.len() >= max {
                break;
            }
            let (t, q) = &c.assigned[(c.rr + i) % n];
            let slot = c.slots[(c.rr + i) % n];
            let Some(p) = progress.at_mut(slot) else {
                continue;
            };
            let Some(cq) = store.cq(t, *q) else { continue };
            let is_retry = t.starts_with(RETRY_PREFIX);
            let filter = if is_retry { None } else { Some(&c.filter) };
            let mut limit = max - out.len();
            if c.orderly {
                if !p.inflight.is_empty() || now < p.suspend_until {
                    continue;
                }
                limit = 1;
            }
            if p.next < cq.min_offset() {
                p.next = cq.min_offset();
                p.inflight.retain(|o| *o >= p.next);
                *offsets_dirty = true;
            }
            let mut scanned = 0usize;
            'queue: while limit > 0 && p.next < cq.max_offset() && scanned < 4096 {
                cq.entries(p.next, 64.min(limit.max(16)), &mut entries);
                if entries.is_empty() {
                    break;
                }
                for e in &entries {
                    scanned += 1;
                    if e.size == i32::MAX as u32 {
                        p.next += 1;
                        continue;
                    }
                    if !Self::visible(e.phys + e.size as u64, visible_end) {
                        break 'queue;
                    }
                    let qo = p.next;
                    if let Some(f) = filter {
                        if !f.matches_code(e.code) {
                            p.next += 1;
                            *offsets_dirty = true;
                            continue;
                        }
                    }
                    let msg = store.commitlog.with_record(e.phys, |r| {
                        if let Some(f) = filter {
                            if !f.matches_tag(r.tags()) {
                                return None;
                            }
                        }
                        let (at, len) = r.body_range();
                        Some((r.to_message(store.nonce, Bytes::new()), at, len))
                    });
                    p.next += 1;
                    let Some(Some((mut m, at, len))) = msg else {
                        *offsets_dirty = true;
                        continue;
                    };
                    m.body = store
                        .commitlog
                        .read(e.phys + at as u64, len)
                        .unwrap_or_default();
                    m.reconsume_times += p.orderly_retries;
                    m.receipt = Some(Receipt {
                        consumer: handle,
                        slot,
                        queue_offset: qo,
                        epoch: p.epoch,
                    });
                    p.inflight.insert(qo);
                    out.push(m);
                    limit -= 1;
                    if limit == 0 {
                        break 'queue;
                    }
                }
            }
        }
        c.rr = (c.rr + 1) % n;
        if !out.is_empty() {
            let k = (c.group.clone(), c.topic.clone());
            group_out.entry(k).or_default().total += out.len() as u64;
        }
        Ok(out)
    }

    /// Whether a receive by `handle` might find something now.
    pub fn may_have_messages(&self, handle: u64, visible_end: u64, now: u64) -> bool {
        let Some(c) = self.consumers.get(&handle) else {
            return true;
        };
        c.assigned.iter().zip(&c.slots).any(|((t, q), slot)| {
            let Some(p) = self.progress.at(*slot) else {
                return false;
            };
            if c.orderly && (!p.inflight.is_empty() || now < p.suspend_until) {
                return false;
            }
            self.store.cq(t, *q).is_some_and(|cq| {
                p.next < cq.max_offset()
                    && cq.entry(p.next.max(cq.min_offset())).is_none_or(|e| {
                        e.phys + e.size as u64 <= visible_end || e.size == i32::MAX as u32
                    })
            })
        })
    }

    /// The progress a receipt refers to, if it is still current.
    fn progress_for(&mut self, handle: u64, msg: &MessageExt) -> Result<Option<(usize, Receipt)>> {
        self.check_open()?;
        let Some(c) = self.consumers.get(&handle) else {
            return Err(Error::Closed);
        };
        let Some(r) = &msg.receipt else {
            return Err(Error::invalid(
                "this message was not received by a consumer (no receipt to ack)",
            ));
        };
        if r.consumer != handle {
            return Err(Error::invalid(
                "this message was received by another consumer; ack it there",
            ));
        }
        let _ = c; // the consumer must still be open
        match self.progress.at(r.slot) {
            Some(p) if p.epoch == r.epoch && p.inflight.contains(&r.queue_offset) => {
                Ok(Some((r.slot, r.clone())))
            }
            // Already acked, or the queue moved to another consumer: nothing to do.
            _ => Ok(None),
        }
    }

    pub fn ack(&mut self, handle: u64, msg: &MessageExt) -> Result<()> {
        if let Some((slot, r)) = self.progress_for(handle, msg)? {
            if let Some(p) = self.progress.at_mut(slot) {
                p.inflight.remove(&r.queue_offset);
                p.orderly_retries = 0;
                self.offsets_dirty = true;
            }
        }
        Ok(())
    }

    /// A failed delivery: retry later via the group's retry topic, or in place for an
    /// orderly consumer, or to the dead-letter queue past the limit.
    pub fn nack(&mut self, handle: u64, msg: &MessageExt, now: u64) -> Result<()> {
        let Some((slot, r)) = self.progress_for(handle, msg)? else {
            return Ok(());
        };
        let c = self.consumers[&handle].clone();
        if c.model == MessageModel::Broadcasting {
            // RocketMQ does not retry in broadcasting mode: the message is dropped.
            return self.ack(handle, msg);
        }
        let max = c.max_reconsume_times;
        if c.orderly {
            let retries = self.progress.at(slot).map_or(0, |p| p.orderly_retries);
            if msg.reconsume_times < max && retries < max {
                if let Some(p) = self.progress.at_mut(slot) {
                    p.inflight.remove(&r.queue_offset);
                    p.next = r.queue_offset;
                    p.orderly_retries += 1;
                    p.suspend_until = now + 1000;
                    self.next_due = self.next_due.min(p.suspend_until);
                }
                return Ok(());
            }
            self.send_back(&c.group, msg, true, now)?;
            return self.ack(handle, msg);
        }
        let to_dlq = msg.reconsume_times >= max;
        self.send_back(&c.group, msg, to_dlq, now)?;
        self.ack(handle, msg)
    }

    /// Stores a copy of `msg` in the group's retry topic (after a delay level) or DLQ.
    fn send_back(&mut self, group: &str, msg: &MessageExt, to_dlq: bool, now: u64) -> Result<()> {
        let phys = msg.commitlog_offset;
        let nonce = self.store.nonce;
        let copy = self.store.commitlog.with_record(phys, |rv| {
            let mut p = copy_properties(
                rv.raw_properties(),
                &[
                    prop::DELAY,
                    prop::TIMER_DELIVER_MS,
                    prop::REAL_TOPIC,
                    prop::REAL_QID,
                ],
            );
            let raw = rv.raw_properties();
            if record::prop_value(raw, prop::RETRY_TOPIC).is_none() {
                record::push_prop(&mut p, prop::RETRY_TOPIC, &msg.topic);
            }
            if record::prop_value(raw, prop::ORIGIN_MESSAGE_ID).is_none() {
                record::push_prop(&mut p, prop::ORIGIN_MESSAGE_ID, &msg.msg_id);
            }
            if record::prop_value(raw, prop::UNIQ_KEY).is_none() {
                record::push_prop(&mut p, prop::UNIQ_KEY, &record::make_msg_id(nonce, phys));
            }
            let (at, len) = rv.body_range();
            (p, rv.sys_flag, rv.born_ts, at, len)
        });
        let Some((mut props, sys_flag, born_ts, at, len)) = copy else {
            // The original is gone (retention): nothing left to retry.
            return Ok(());
        };
        let body = self
            .store
            .commitlog
            .read(phys + at as u64, len)
            .unwrap_or_default();
        let reconsume = msg.reconsume_times + 1;
        let (t, q) = if to_dlq {
            let dlq = format!("{DLQ_PREFIX}{group}");
            self.store.system_queues(&dlq, 1)?;
            (dlq.into(), 0)
        } else {
            let retry = format!("{RETRY_PREFIX}{group}");
            self.store.system_queues(&retry, 1)?;
            let levels = self.settings.levels.len() as u32;
            let level = (3 + msg.reconsume_times).min(levels).max(1);
            record::push_prop(&mut props, prop::DELAY, &level.to_string());
            record::push_prop(&mut props, prop::REAL_TOPIC, &retry);
            record::push_prop(&mut props, prop::REAL_QID, "0");
            self.store.system_queues(topic::SCHEDULE_TOPIC, levels)?;
            (topic::SCHEDULE_TOPIC.into(), level - 1)
        };
        let spec = RecordSpec {
            topic: t,
            queue_id: q,
            sys_flag,
            born_ts,
            reconsume_times: reconsume,
            prepared_tx_offset: 0,
            body,
            properties: props,
        };
        self.put(std::slice::from_ref(&spec), now)?;
        Ok(())
    }

    // ----- deferred work -----

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

    fn compute_next_due(&self) -> u64 {
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
    fn real_copy(&mut self, phys: u64, drop_props: &[&str]) -> Result<Option<RecordSpec>> {
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

    fn deliver_delayed(&mut self, now: u64) -> Result<()> {
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

    fn deliver_timers(&mut self, now: u64) -> Result<()> {
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

    fn due_checks(&mut self, now: u64) -> Result<Vec<Check>> {
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

    fn op_spec(half_qo: u64, now: u64) -> RecordSpec {
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

    fn discard_half(&mut self, qo: u64, phys: u64, now: u64) -> Result<()> {
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
        let placed = self.put(std::slice::from_ref(&spec), now)?;
        let (phys, qo) = placed[0];
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

    // ----- queries -----

    pub fn get(&self, msg_id: &str) -> Option<MessageExt> {
        let (nonce, phys) = record::parse_msg_id(msg_id)?;
        if nonce != self.store.nonce {
            return None;
        }
        self.store.message_at(phys)
    }

    pub fn query(&self, t: &str, key: &str) -> Vec<MessageExt> {
        self.store
            .index
            .candidates(t, key)
            .iter()
            .filter_map(|phys| self.store.message_at(*phys))
            .filter(|m| m.keys.iter().any(|k| k == key))
            .collect()
    }

    /// The owners (group, or group@consumer when broadcasting) with progress on `t`.
    fn owners_of(&self, group: &str, t: &str) -> Vec<String> {
        let bcast = format!("{group}@");
        let mut owners: Vec<String> = self
            .offsets
            .table
            .keys()
            .filter_map(|k| k.strip_prefix(&format!("{t}@")).map(str::to_string))
            .chain(
                self.progress
                    .keys()
                    .filter(|(_, pt, _)| pt == t)
                    .map(|(o, _, _)| o.clone()),
            )
            .filter(|o| o == group || o.starts_with(&bcast))
            .collect();
        owners.sort();
        owners.dedup();
        owners
    }

    fn committed(&self, owner: &str, t: &str, q: u32) -> Option<u64> {
        self.progress
            .get(&(owner.to_string(), t.to_string(), q))
            .map(QueueProgress::committed)
            .or_else(|| self.offsets.get(t, owner, q))
    }

    pub fn lag(&self, group: &str, t: &str) -> Result<u64> {
        topic::validate_group(group)?;
        topic::validate_topic(t)?;
        let Some(queues) = self.store.queues.get(t) else {
            return Err(Error::TopicNotFound(t.to_string()));
        };
        let owners = self.owners_of(group, t);
        let lag_of = |owner: Option<&str>| -> u64 {
            queues
                .iter()
                .enumerate()
                .map(|(q, cq)| {
                    let done = owner
                        .and_then(|o| self.committed(o, t, q as u32))
                        .unwrap_or(cq.min_offset())
                        .max(cq.min_offset());
                    cq.max_offset().saturating_sub(done)
                })
                .sum()
        };
        if owners.is_empty() {
            return Ok(lag_of(None));
        }
        Ok(owners.iter().map(|o| lag_of(Some(o))).max().unwrap_or(0))
    }

    pub fn reset_offset(&mut self, group: &str, t: &str, to: StartFrom, now: u64) -> Result<()> {
        self.check_open()?;
        topic::validate_group(group)?;
        topic::validate_topic(t)?;
        let queues = match self.store.queues.get(t) {
            Some(q) => q.len() as u32,
            None => return Err(Error::TopicNotFound(t.to_string())),
        };
        let mut owners = self.owners_of(group, t);
        if owners.is_empty() {
            owners.push(group.to_string());
        }
        for owner in owners {
            for q in 0..queues {
                let target = self.start_offset(t, q, to, now);
                self.offsets.set(t, &owner, q, target);
                if let Some(p) = self.progress.get_mut(&(owner.clone(), t.to_string(), q)) {
                    p.next = target;
                    p.inflight.clear();
                    p.epoch += 1;
                    p.orderly_retries = 0;
                    p.suspend_until = 0;
                }
            }
        }
        self.offsets_dirty = true;
        self.arrived = true;
        Ok(())
    }

    pub fn stats(&self, now: u64) -> Stats {
        let mut topics = BTreeMap::new();
        for (name, cqs) in &self.store.queues {
            if topic::is_reserved(name) && !name.starts_with('%') {
                continue;
            }
            let c = self.topic_in.get(name);
            topics.insert(
                name.clone(),
                TopicStats {
                    queues: cqs
                        .iter()
                        .enumerate()
                        .map(|(q, cq)| QueueStats {
                            queue_id: q as u32,
                            min_offset: cq.min_offset(),
                            max_offset: cq.max_offset(),
                        })
                        .collect(),
                    messages_in: c.map_or(0, |c| c.total),
                    in_rate: c.map_or(0.0, |c| c.rate(now)),
                },
            );
        }
        let mut pairs: Vec<(String, String)> = self
            .consumers
            .values()
            .map(|c| (c.group.clone(), c.topic.clone()))
            .chain(self.offsets.table.keys().filter_map(|k| {
                let (t, owner) = k.split_once('@')?;
                let group = owner.split('@').next().unwrap_or(owner);
                Some((group.to_string(), t.to_string()))
            }))
            .filter(|(_, t)| !t.starts_with(RETRY_PREFIX))
            .collect();
        pairs.sort();
        pairs.dedup();
        let groups = pairs
            .into_iter()
            .map(|(g, t)| {
                let out = self.group_out.get(&(g.clone(), t.clone()));
                GroupStats {
                    consumers: self
                        .consumers
                        .values()
                        .filter(|c| c.group == g && c.topic == t)
                        .count(),
                    lag: self.lag(&g, &t).unwrap_or(0),
                    messages_out: out.map_or(0, |c| c.total),
                    out_rate: out.map_or(0.0, |c| c.rate(now)),
                    group: g,
                    topic: t,
                }
            })
            .collect();
        Stats {
            topics,
            groups,
            commitlog_bytes: self.store.commitlog.retained_bytes(),
            pending_delayed: self.pending_delayed(),
            pending_transactions: self.tx.pending.len() as u64,
        }
    }

    fn pending_delayed(&self) -> u64 {
        let mut n = self.timer.pending();
        for level in 1..=self.settings.levels.len() as u32 {
            if let Some(cq) = self.store.cq(topic::SCHEDULE_TOPIC, level - 1) {
                let cur = self
                    .delay
                    .table
                    .get(&level)
                    .copied()
                    .unwrap_or(0)
                    .max(cq.min_offset());
                n += cq.max_offset().saturating_sub(cur);
            }
        }
        n
    }

    // ----- persistence -----

    /// Serialised metadata that changed since the last call, to write outside the lock.
    pub fn dirty_metadata(&mut self, now: u64) -> Result<Vec<(&'static str, Vec<u8>)>> {
        let mut out = Vec::new();
        let json = |v: &dyn erased::Json| v.to_json();
        if self.offsets_dirty {
            for ((owner, t, q), p) in self.progress.iter() {
                self.offsets.set(t, owner, *q, p.committed());
            }
            out.push((OffsetTable::FILE, json(&self.offsets)?));
            self.offsets_dirty = false;
        }
        if self.delay_dirty {
            out.push((DelayOffsets::FILE, json(&self.delay)?));
            self.delay_dirty = false;
        }
        let cp = self.timer.checkpoint(now);
        if cp != self.timer_saved
            && (self.timer.pending() > 0 || self.timer_saved.low_water != cp.low_water)
        {
            out.push((TimerCheckpoint::FILE, json(&cp)?));
            self.timer_saved = cp;
        }
        if self.tx.dirty {
            out.push((TxCheckpoint::FILE, json(&self.tx.checkpoint())?));
            self.tx.dirty = false;
        }
        if self.store.topics_dirty {
            out.push((crate::topic::TopicRegistry::FILE, json(&self.store.topics)?));
            self.store.topics_dirty = false;
        }
        Ok(out)
    }

    /// Writes all metadata now (close).
    pub fn write_all_metadata(&mut self, now: u64) -> Result<()> {
        self.offsets_dirty = true;
        self.delay_dirty = true;
        self.tx.dirty = true;
        self.store.topics_dirty = true;
        for (name, bytes) in self.dirty_metadata(now)? {
            self.store.backend.write_meta(name, &bytes)?;
        }
        let cp = self.timer.checkpoint(now);
        write_json(&*self.store.backend, TimerCheckpoint::FILE, &cp)?;
        Ok(())
    }
}

/// Serialisation of the metadata types behind one signature.
mod erased {
    pub trait Json {
        fn to_json(&self) -> crate::Result<Vec<u8>>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> crate::Result<Vec<u8>> {
            serde_json::to_vec_pretty(self).map_err(|e| crate::Error::StoreCorrupted(e.to_string()))
        }
    }
}

/// The encoded properties of `raw` without the names in `skip`.
fn copy_properties(raw: &[u8], skip: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 64);
    for (k, v) in record::props_iter(raw) {
        if !skip.contains(&k) {
            record::push_prop(&mut out, k, v);
        }
    }
    out
}
