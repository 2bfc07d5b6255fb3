//! Options of a broker and of a consumer, with RocketMQ's defaults, and the one
//! place they are checked (`BrokerConfig::validate`). `options.rs` sets them by
//! name, so each binding exposes every option with one loop.

mod options;

pub use options::{OptionKind, OptionValue, Options};

use std::path::PathBuf;
use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::transaction::CheckPolicy;
use crate::{Error, Result};

/// When appended data is forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlushMode {
    /// A background flush about every 500 ms (the default).
    #[default]
    Async,
    /// A send returns once its data is durable; concurrent senders share one fsync.
    Sync,
    /// Page cache only; the OS writes when it likes.
    None,
}

impl std::str::FromStr for FlushMode {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<FlushMode> {
        match s {
            "async" => Ok(FlushMode::Async),
            "sync" => Ok(FlushMode::Sync),
            "none" => Ok(FlushMode::None),
            _ => Err(crate::Error::invalid(format!(
                "flush must be \"async\", \"sync\" or \"none\", not {s:?}"
            ))),
        }
    }
}

/// How a consumer group shares a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageModel {
    /// Each message goes to one consumer of the group.
    #[default]
    Clustering,
    /// Each consumer of the group gets every message.
    Broadcasting,
}

/// Where a group with no committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// The earliest retained message.
    #[default]
    Earliest,
    /// Only messages sent after the group first subscribed.
    Latest,
    /// The first message stored at or after this time (ms since the epoch).
    Timestamp(u64),
}

/// When retention may delete a segment that holds messages not yet consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retention {
    /// By age alone (`file_reserved_time`), as RocketMQ: a group that falls that
    /// far behind loses what expired (counted in its stats, and logged).
    #[default]
    Time,
    /// Not while a group with offsets has not consumed them, until the disk is used
    /// above `disk_clean_forcibly_ratio`.
    KeepUnconsumed,
}

impl std::str::FromStr for Retention {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Retention> {
        match s {
            "time" => Ok(Retention::Time),
            "keep-unconsumed" => Ok(Retention::KeepUnconsumed),
            _ => Err(crate::Error::invalid(format!(
                "retention must be \"time\" or \"keep-unconsumed\", not {s:?}"
            ))),
        }
    }
}

/// The hours of the day (UTC, of the broker's clock) in which retention deletes
/// expired segments (RocketMQ's `deleteWhen`, default "04"): hours 0-23 separated
/// by `;`, or `*` for every hour. Outside them expired segments go only while the
/// disk is used above `disk_clean_ratio`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeleteWhen(u32);

impl DeleteWhen {
    pub fn parse(s: &str) -> Result<DeleteWhen> {
        let bad = || {
            Error::invalid(format!(
                "delete_when must be hours of the day (00-23, UTC) separated by ';', such \
                 as \"04\" or \"01;13\", or \"*\" for every hour; got {s:?}"
            ))
        };
        if s.trim() == "*" {
            return Ok(DeleteWhen((1 << 24) - 1));
        }
        let mut hours = 0u32;
        for part in s.split(';') {
            let h: u32 = part.trim().parse().map_err(|_| bad())?;
            if h > 23 {
                return Err(bad());
            }
            hours |= 1 << h;
        }
        Ok(DeleteWhen(hours))
    }

    /// Whether `now` (epoch ms) falls in one of the hours.
    pub fn contains(self, now: u64) -> bool {
        self.0 & (1 << ((now / 3_600_000) % 24)) != 0
    }
}

/// RocketMQ's default delay levels.
pub const DEFAULT_DELAY_LEVELS: &str = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h";

/// Options of a broker. `Default` gives an in-memory broker on the system clock.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// The store directory; `None` keeps everything in memory.
    pub path: Option<PathBuf>,
    /// When appends reach the disk: `Async` (a flusher thread) or `Sync` (a send
    /// returns once durable, with group commit).
    pub flush: FlushMode,
    /// The clock every time in the engine comes from (`SystemClock`, or a
    /// `ManualClock` in tests).
    pub clock: Arc<dyn Clock>,
    /// CommitLog segment size in bytes; `None`: 64 MiB on files, 16 MiB in memory,
    /// 8 MiB through a host file system. An existing store keeps its own size.
    pub segment_size: Option<u64>,
    /// Largest body accepted, in bytes (4 MiB).
    pub max_message_size: usize,
    /// Whether a send to (or a consumer of) a topic that does not exist creates it.
    pub auto_create_topics: bool,
    /// Queues of an auto-created topic.
    pub default_queues: u32,
    /// Delay levels, RocketMQ's syntax: `"1s 5s 10s ... 2h"`.
    pub delay_levels: String,
    /// Farthest a `deliver_at`/`delay` may reach ahead (30 days).
    pub timer_max_delay_ms: u64,
    /// Age after which a whole CommitLog segment may be deleted (72 h): in the
    /// `delete_when` hours, or at any hour while the disk is used above
    /// `disk_clean_ratio` (RocketMQ's `fileReservedTime`).
    pub file_reserved_time_ms: u64,
    /// Hours of the day (UTC, broker clock) in which expired segments are deleted:
    /// `"04"` (RocketMQ's `deleteWhen`), several as `"01;13"`, every hour `"*"`.
    pub delete_when: String,
    /// Disk usage above which expired segments go at any hour (0.75: RocketMQ's
    /// `diskMaxUsedSpaceRatio`).
    pub disk_clean_ratio: f64,
    /// Disk usage above which sends are refused with `DiskFull` until space
    /// returns (0.90: RocketMQ's "disk full", `diskSpaceWarningLevelRatio`).
    pub disk_max_used_ratio: f64,
    /// Disk usage above which the oldest segments go regardless of age (0.85).
    pub disk_clean_forcibly_ratio: f64,
    /// Whether retention keeps segments holding unconsumed messages.
    pub retention: Retention,
    /// How long a `sync` send waits for its fsync before reporting FLUSH_DISK_TIMEOUT.
    pub sync_flush_timeout_ms: u64,
    /// Period of the `async` background flush.
    pub flush_interval_ms: u64,
    /// Age of a half message before it is first checked (6 s).
    pub transaction_timeout_ms: u64,
    /// Time between checks of one half message (60 s).
    pub check_interval_ms: u64,
    /// Checks before a half message is discarded (15).
    pub max_checks: u32,
    /// How long a send's `dedup_id` keeps a repeat of it from being stored (120 s;
    /// 0: no dedup).
    pub dedup_window_ms: u64,
    /// Run due work on a background thread (native targets only).
    pub background: bool,
    /// File operations of a host that keeps the store's files itself (wasm under
    /// Node); with `path`, the store lives there instead of in memory.
    pub host_fs: Option<Arc<dyn crate::HostFs>>,
}

impl Default for BrokerConfig {
    fn default() -> BrokerConfig {
        BrokerConfig {
            path: None,
            flush: FlushMode::Async,
            clock: Arc::new(SystemClock),
            segment_size: None,
            max_message_size: 4 * 1024 * 1024,
            auto_create_topics: true,
            default_queues: 4,
            delay_levels: DEFAULT_DELAY_LEVELS.to_string(),
            timer_max_delay_ms: 30 * 24 * 3600 * 1000,
            file_reserved_time_ms: 72 * 3600 * 1000,
            delete_when: "04".to_string(),
            disk_clean_ratio: 0.75,
            disk_max_used_ratio: 0.90,
            disk_clean_forcibly_ratio: 0.85,
            retention: Retention::Time,
            sync_flush_timeout_ms: 5000,
            flush_interval_ms: 500,
            transaction_timeout_ms: 6000,
            check_interval_ms: 60_000,
            max_checks: 15,
            dedup_window_ms: 120_000,
            background: true,
            host_fs: None,
        }
    }
}

impl BrokerConfig {
    /// A file store at `path` with default options.
    pub fn at(path: impl Into<PathBuf>) -> BrokerConfig {
        BrokerConfig {
            path: Some(path.into()),
            ..BrokerConfig::default()
        }
    }

    /// Checks every option's range (the one place options are checked; the bindings
    /// rely on it): `InvalidArgument` naming the first option out of range.
    pub fn validate(&self) -> Result<()> {
        self.settings().map(|_| ())
    }

    /// The options the engine consults after open, checked and parsed.
    pub(crate) fn settings(&self) -> Result<Settings> {
        if self.path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(Error::invalid(
                "path is empty: give a store directory, or none for a memory store",
            ));
        }
        if self
            .path
            .as_ref()
            .is_some_and(|p| p.as_os_str().as_encoded_bytes().contains(&0))
        {
            return Err(Error::invalid(
                "path holds a NUL character, which no file name can",
            ));
        }
        let segment_size = match self.segment_size {
            Some(s) if !(4096..=(1 << 30)).contains(&s) => {
                return Err(Error::invalid(format!(
                    "segment_size must be between 4 KiB and 1 GiB, got {s}"
                )))
            }
            s => s.map(|s| s as usize),
        };
        if !(1..=MAX_BODY).contains(&self.max_message_size) {
            return Err(Error::invalid(format!(
                "max_message_size must be between 1 byte and {MAX_BODY}, got {}",
                self.max_message_size
            )));
        }
        if !(1..=1024).contains(&self.default_queues) {
            return Err(Error::invalid(format!(
                "default_queues must be between 1 and 1024, got {}",
                self.default_queues
            )));
        }
        in_range(
            "timer_max_delay",
            self.timer_max_delay_ms,
            1,
            MAX_DURATION_MS,
        )?;
        in_range(
            "file_reserved_time",
            self.file_reserved_time_ms,
            0,
            MAX_DURATION_MS,
        )?;
        in_range("sync_flush_timeout", self.sync_flush_timeout_ms, 0, DAY_MS)?;
        in_range("flush_interval", self.flush_interval_ms, 0, DAY_MS)?;
        in_range(
            "transaction_timeout",
            self.transaction_timeout_ms,
            0,
            MAX_DURATION_MS,
        )?;
        in_range("check_interval", self.check_interval_ms, 0, MAX_DURATION_MS)?;
        in_range("dedup_window", self.dedup_window_ms, 0, MAX_DURATION_MS)?;
        for (name, r) in [
            ("disk_max_used_ratio", self.disk_max_used_ratio),
            ("disk_clean_forcibly_ratio", self.disk_clean_forcibly_ratio),
            ("disk_clean_ratio", self.disk_clean_ratio),
        ] {
            if !(0.0..=1.0).contains(&r) {
                return Err(Error::invalid(format!(
                    "{name} must be between 0 and 1, got {r}"
                )));
            }
        }
        Ok(Settings {
            levels: crate::schedule::parse_levels(&self.delay_levels)?,
            segment_size,
            max_message_size: self.max_message_size,
            auto_create_topics: self.auto_create_topics,
            default_queues: self.default_queues,
            timer_max_delay_ms: self.timer_max_delay_ms,
            file_reserved_time_ms: self.file_reserved_time_ms,
            delete_when: DeleteWhen::parse(&self.delete_when)?,
            disk_clean_ratio: self.disk_clean_ratio,
            disk_max_used_ratio: self.disk_max_used_ratio,
            disk_clean_forcibly_ratio: self.disk_clean_forcibly_ratio,
            dedup_window_ms: self.dedup_window_ms,
            tx: CheckPolicy {
                timeout_ms: self.transaction_timeout_ms,
                interval_ms: self.check_interval_ms,
                max_checks: self.max_checks,
            },
        })
    }
}

/// Largest body a broker may be configured to take (RocketMQ's limit is 4 MiB by
/// default; a record must fit a segment, whose smallest size is checked at open).
const MAX_BODY: usize = 256 << 20;
const DAY_MS: u64 = 86_400_000;
/// Longest duration any option takes: ten years.
const MAX_DURATION_MS: u64 = 3650 * DAY_MS;

fn in_range(name: &str, v: u64, min: u64, max: u64) -> Result<()> {
    if v < min || v > max {
        return Err(Error::invalid(format!(
            "{name} must be between {min} ms and {max} ms, got {v} ms"
        )));
    }
    Ok(())
}

/// Broker options the engine consults after open, checked.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub levels: Vec<u64>,
    pub segment_size: Option<usize>,
    pub max_message_size: usize,
    pub auto_create_topics: bool,
    pub default_queues: u32,
    pub timer_max_delay_ms: u64,
    pub file_reserved_time_ms: u64,
    pub delete_when: DeleteWhen,
    pub disk_clean_ratio: f64,
    /// Above it, sends are refused with `DiskFull`.
    pub disk_max_used_ratio: f64,
    pub disk_clean_forcibly_ratio: f64,
    pub dedup_window_ms: u64,
    pub tx: CheckPolicy,
}

/// Options of a consumer.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The consumer group (RocketMQ's consumerGroup).
    pub group: String,
    /// The topic consumed.
    pub topic: String,
    /// A tag expression: `"*"`, `"A"` or `"A || B"`.
    pub tags: String,
    /// An SQL92 expression over the properties instead of tags (`"amount > 100"`,
    /// RocketMQ's `MessageSelector.bySql`); `tags` must then be `"*"`.
    pub sql: Option<String>,
    /// Clustering (the group shares the queues) or broadcasting (every member gets
    /// every message).
    pub model: MessageModel,
    /// One message in flight per queue; a failure retries in place, up to
    /// `max_reconsume_times` times, then dead-letters. That count is kept in memory,
    /// as RocketMQ's client keeps it: after a restart it starts from zero again.
    pub orderly: bool,
    /// Deliveries beyond the first before a message goes to the DLQ (16).
    pub max_reconsume_times: u32,
    /// Where a group with no committed offset starts.
    pub start: StartFrom,
    /// A stable name for this consumer; broadcasting offsets are kept under it.
    pub consumer_id: Option<String>,
    /// A delivery neither acked nor nacked this long after it (broker clock) is sent
    /// back as a nack would be (RocketMQ's 15-minute consume timeout); None: never.
    pub ack_timeout_ms: Option<u64>,
    /// Most unacked messages this consumer holds; a receive returns fewer, or waits.
    pub max_in_flight: usize,
}

impl ConsumerConfig {
    /// A clustering consumer of `topic` in `group`, all tags, from the earliest message.
    pub fn new(group: impl Into<String>, topic: impl Into<String>) -> ConsumerConfig {
        ConsumerConfig {
            group: group.into(),
            topic: topic.into(),
            tags: "*".to_string(),
            sql: None,
            model: MessageModel::Clustering,
            orderly: false,
            max_reconsume_times: 16,
            start: StartFrom::Earliest,
            consumer_id: None,
            ack_timeout_ms: Some(900_000),
            max_in_flight: 1000,
        }
    }

    /// Checks every option's range.
    pub fn validate(&self) -> Result<()> {
        if let Some(t) = self.ack_timeout_ms {
            in_range("ack_timeout", t, 1, MAX_DURATION_MS)?;
        }
        if !(1..=MAX_IN_FLIGHT).contains(&self.max_in_flight) {
            return Err(Error::invalid(format!(
                "max_in_flight must be between 1 and {MAX_IN_FLIGHT}, got {}",
                self.max_in_flight
            )));
        }
        Ok(())
    }
}

/// Options of a simple (POP) consumer: RocketMQ 5's SimpleConsumer.
#[derive(Debug, Clone)]
pub struct SimpleConsumerConfig {
    /// The consumer group.
    pub group: String,
    /// The topic consumed.
    pub topic: String,
    /// A tag expression: `"*"`, `"A"` or `"A || B"`.
    pub tags: String,
    /// An SQL92 expression over the properties instead of tags (`"amount > 100"`,
    /// RocketMQ's `MessageSelector.bySql`); `tags` must then be `"*"`.
    pub sql: Option<String>,
    /// How long a delivery stays invisible to the group unless acked or changed.
    pub invisible_duration_ms: u64,
    /// Deliveries of a message before it goes to `%DLQ%<group>` (16).
    pub max_delivery_attempts: u32,
    /// Messages of one sharding key (a message group) one at a time, in send order.
    pub fifo: bool,
}

impl SimpleConsumerConfig {
    /// A simple consumer of `topic` in `group`: all tags, 30 s invisible, 16 attempts.
    pub fn new(group: impl Into<String>, topic: impl Into<String>) -> SimpleConsumerConfig {
        SimpleConsumerConfig {
            group: group.into(),
            topic: topic.into(),
            tags: "*".to_string(),
            sql: None,
            invisible_duration_ms: 30_000,
            max_delivery_attempts: 16,
            fifo: false,
        }
    }

    /// Checks every option's range.
    pub fn validate(&self) -> Result<()> {
        in_range(
            "invisible_duration",
            self.invisible_duration_ms,
            1,
            MAX_INVISIBLE_MS,
        )?;
        if !(1..=1000).contains(&self.max_delivery_attempts) {
            return Err(Error::invalid(format!(
                "max_delivery_attempts must be between 1 and 1000, got {}",
                self.max_delivery_attempts
            )));
        }
        Ok(())
    }
}

/// Longest a delivery may stay invisible: RocketMQ's 12 hours, and then some.
pub(crate) const MAX_INVISIBLE_MS: u64 = 7 * DAY_MS;

/// Checks an invisible duration (at least 1 ms, at most `MAX_INVISIBLE_MS`).
pub(crate) fn check_invisible(ms: u64) -> Result<()> {
    in_range("invisible_duration", ms, 1, MAX_INVISIBLE_MS)
}

/// Most messages one consumer may hold unacked.
const MAX_IN_FLIGHT: usize = 1 << 20;
