//! Everything the broker's one lock guards: the store, consumer groups and their
//! progress, delay cursors, the timer wheel, pending transactions, stats. Methods
//! here never block and never call user code; the facade (mod.rs) waits, flushes and
//! calls listeners outside the lock.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use super::store::{self, read_json, Kind, Store, ABORT_FILE};
use crate::consumer::{ConsumerEntry, ProgressTable};
use crate::message::record::{self, prop, RecordSpec};
use crate::offsets::OffsetTable;
use crate::schedule::{self, DelayOffsets, TimerCheckpoint, TimerWheel};
use crate::store::Backend;
use crate::topic::{self};
use crate::transaction::{Listeners, Pending, Transactions, TxCheckpoint};
use crate::{BrokerConfig, Error, MessageExt, Result, TransactionListener};

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
    pub(super) fn sample(&mut self, now: u64) {
        if self.samples.back().is_none_or(|(t, _)| now >= t + 1000) {
            self.samples.push_back((now, self.total));
        }
        while self.samples.len() > 2 && self.samples.front().is_some_and(|(t, _)| now > t + 60_000)
        {
            self.samples.pop_front();
        }
    }
    pub(super) fn rate(&self, now: u64) -> f64 {
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
    /// The topic of the last send, shared by its records.
    last_topic: Option<Arc<str>>,
    /// Reused between sends.
    spec_buf: Vec<RecordSpec>,
}

fn fresh_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(crate::runtime::process_id());
    h.finish()
}

mod consume;
mod deferred;
mod query;
mod send;

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
            None => backend.default_segment_size(),
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
        backend.write_meta(
            ABORT_FILE,
            crate::runtime::process_id().to_string().as_bytes(),
        )?;
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
            last_topic: None,
            spec_buf: Vec::new(),
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
}

/// The encoded properties of `raw` without the names in `skip`.
pub(super) fn copy_properties(raw: &[u8], skip: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 64);
    for (k, v) in record::props_iter(raw) {
        if !skip.contains(&k) {
            record::push_prop(&mut out, k, v);
        }
    }
    out
}
