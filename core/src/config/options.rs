//! Options set by name, for the bindings: each binding reads its language's
//! keywords or option object, converts each value to an [`OptionValue`] (durations
//! in milliseconds) and sets it here, so every option exists once, with one check.
//! Names are snake_case; a duration's name has no unit (`timer_max_delay`).

use super::{BrokerConfig, ConsumerConfig, MessageModel, SimpleConsumerConfig, StartFrom};
use crate::message::MessageBuilder;
use crate::{Error, Result};

/// What kind of value an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionKind {
    /// `true` or `false`.
    Bool,
    /// A whole number.
    Integer,
    /// Milliseconds (a binding may take seconds or a duration type and convert).
    Duration,
    /// A duration, or none (`OptionValue::None`: never).
    OptionalDuration,
    /// A fraction between 0 and 1.
    Ratio,
    /// A string.
    Text,
    /// Where a consumer group starts: "earliest", "latest" or epoch ms.
    Position,
    /// A point in time, epoch ms.
    Time,
    /// One string or a list of them.
    Strings,
    /// A map of strings to strings.
    Map,
}

/// A value for an option set by name.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    /// A boolean.
    Bool(bool),
    /// A number (whole or not, as JSON and JavaScript have them).
    Number(f64),
    /// A string.
    Text(String),
    /// A list of strings.
    List(Vec<String>),
    /// A map of strings to strings, in order.
    Map(Vec<(String, String)>),
    /// No value, for an option that may be switched off (an `OptionalDuration`).
    None,
}

const BROKER: &[(&str, OptionKind)] = &[
    ("flush", OptionKind::Text),
    ("segment_size", OptionKind::Integer),
    ("max_message_size", OptionKind::Integer),
    ("auto_create_topics", OptionKind::Bool),
    ("default_queues", OptionKind::Integer),
    ("delay_levels", OptionKind::Text),
    ("timer_max_delay", OptionKind::Duration),
    ("file_reserved_time", OptionKind::Duration),
    ("delete_when", OptionKind::Text),
    ("disk_clean_ratio", OptionKind::Ratio),
    ("disk_max_used_ratio", OptionKind::Ratio),
    ("disk_clean_forcibly_ratio", OptionKind::Ratio),
    ("retention", OptionKind::Text),
    ("sync_flush_timeout", OptionKind::Duration),
    ("flush_interval", OptionKind::Duration),
    ("transaction_timeout", OptionKind::Duration),
    ("check_interval", OptionKind::Duration),
    ("max_checks", OptionKind::Integer),
    ("dedup_window", OptionKind::Duration),
];

const CONSUMER: &[(&str, OptionKind)] = &[
    ("tags", OptionKind::Text),
    ("sql", OptionKind::Text),
    ("broadcasting", OptionKind::Bool),
    ("orderly", OptionKind::Bool),
    ("max_reconsume_times", OptionKind::Integer),
    ("start", OptionKind::Position),
    ("consumer_id", OptionKind::Text),
    ("ack_timeout", OptionKind::OptionalDuration),
    ("max_in_flight", OptionKind::Integer),
];

const SIMPLE: &[(&str, OptionKind)] = &[
    ("tags", OptionKind::Text),
    ("sql", OptionKind::Text),
    ("invisible_duration", OptionKind::Duration),
    ("max_delivery_attempts", OptionKind::Integer),
    ("fifo", OptionKind::Bool),
];

const MESSAGE: &[(&str, OptionKind)] = &[
    ("tags", OptionKind::Text),
    ("keys", OptionKind::Strings),
    ("properties", OptionKind::Map),
    ("sharding_key", OptionKind::Text),
    ("queue_id", OptionKind::Integer),
    ("delay_level", OptionKind::Integer),
    ("deliver_at", OptionKind::Time),
    ("delay", OptionKind::Duration),
    ("dedup_id", OptionKind::Text),
];

/// A config set option by option, by name: what the bindings fill from keyword
/// arguments or an options object, whichever config it is.
pub trait Options {
    /// The kind of option `name`, or None if there is no such option.
    fn option_kind(name: &str) -> Option<OptionKind>;
    /// Every option's name and kind.
    fn option_list() -> &'static [(&'static str, OptionKind)];
    /// Sets option `name`.
    fn set_option(&mut self, name: &str, v: OptionValue) -> Result<()>;
}

macro_rules! options {
    ($($t:ty => $table:ident),*) => {$(
        impl Options for $t {
            fn option_kind(name: &str) -> Option<OptionKind> {
                <$t>::option_kind(name)
            }
            fn option_list() -> &'static [(&'static str, OptionKind)] {
                $table
            }
            fn set_option(&mut self, name: &str, v: OptionValue) -> Result<()> {
                <$t>::set_option(self, name, v)
            }
        }
    )*};
}

options!(BrokerConfig => BROKER, ConsumerConfig => CONSUMER, SimpleConsumerConfig => SIMPLE);

fn kind_in(table: &[(&str, OptionKind)], name: &str) -> Option<OptionKind> {
    table.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
}

fn unknown(what: &str, table: &[(&str, OptionKind)], name: &str) -> Error {
    let known: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
    Error::invalid(format!(
        "{what}: unknown option {name:?} (known: {})",
        known.join(", ")
    ))
}

fn wrong(name: &str, expected: &str, v: &OptionValue) -> Error {
    Error::invalid(format!("{name} must be {expected}, not {v}"))
}

/// A whole number in `[0, max]`.
fn integer(name: &str, v: &OptionValue, max: u64) -> Result<u64> {
    match v {
        OptionValue::Number(n) if n.fract() == 0.0 && *n >= 0.0 && *n <= max as f64 => {
            Ok(*n as u64)
        }
        _ => Err(wrong(name, &format!("a whole number from 0 to {max}"), v)),
    }
}

fn text(name: &str, v: OptionValue) -> Result<String> {
    match v {
        OptionValue::Text(s) => Ok(s),
        v => Err(wrong(name, "text", &v)),
    }
}

fn boolean(name: &str, v: &OptionValue) -> Result<bool> {
    match v {
        OptionValue::Bool(b) => Ok(*b),
        _ => Err(wrong(name, "true or false", v)),
    }
}

/// Milliseconds up to what a `u64` holds; the range is checked by `validate`.
fn duration(name: &str, v: &OptionValue) -> Result<u64> {
    integer(name, &v.clone().floor(), u64::MAX)
}

/// A point in time in epoch ms, up to the year 9999 (`MAX_TIME_MS`). A number out of
/// range is refused without echoing it: the bindings take seconds or ms, and the
/// engine sees ms.
fn time(name: &str, v: &OptionValue) -> Result<u64> {
    match integer(name, &v.clone().floor(), crate::clock::MAX_TIME_MS) {
        Err(_) if matches!(v, OptionValue::Number(_)) => Err(Error::invalid(format!(
            "{name} must be a time from 1970 to the end of the year 9999"
        ))),
        r => r,
    }
}

/// A value as the user wrote it, for errors: `-1`, `"middle"`, `["a", "b"]`.
impl std::fmt::Display for OptionValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptionValue::Bool(b) => write!(f, "{b}"),
            OptionValue::Number(n) => write!(f, "{n}"),
            OptionValue::Text(s) => write!(f, "{s:?}"),
            OptionValue::List(l) => write!(f, "{l:?}"),
            OptionValue::Map(m) => {
                let pairs: Vec<String> = m.iter().map(|(k, v)| format!("{k:?}: {v:?}")).collect();
                write!(f, "{{{}}}", pairs.join(", "))
            }
            OptionValue::None => write!(f, "none"),
        }
    }
}

impl OptionValue {
    fn floor(self) -> OptionValue {
        match self {
            OptionValue::Number(n) if n.is_finite() => OptionValue::Number(n.floor()),
            v => v,
        }
    }
}

impl BrokerConfig {
    /// The kind of the broker option `name`, or None if there is no such option.
    pub fn option_kind(name: &str) -> Option<OptionKind> {
        kind_in(BROKER, name)
    }

    /// The broker options' names.
    pub fn option_names() -> impl Iterator<Item = &'static str> {
        BROKER.iter().map(|(n, _)| *n)
    }

    /// Sets the option `name` (see the module docs); ranges are checked by `validate`.
    pub fn set_option(&mut self, name: &str, v: OptionValue) -> Result<()> {
        match name {
            "flush" => self.flush = text(name, v)?.parse()?,
            "segment_size" => self.segment_size = Some(integer(name, &v, u64::MAX)?),
            "max_message_size" => {
                self.max_message_size = integer(name, &v, u32::MAX as u64)? as usize
            }
            "auto_create_topics" => self.auto_create_topics = boolean(name, &v)?,
            "default_queues" => self.default_queues = integer(name, &v, u32::MAX as u64)? as u32,
            "delay_levels" => self.delay_levels = text(name, v)?,
            "timer_max_delay" => self.timer_max_delay_ms = duration(name, &v)?,
            "file_reserved_time" => self.file_reserved_time_ms = duration(name, &v)?,
            "delete_when" => self.delete_when = text(name, v)?,
            "disk_clean_ratio" => self.disk_clean_ratio = ratio(name, &v)?,
            "disk_max_used_ratio" => self.disk_max_used_ratio = ratio(name, &v)?,
            "disk_clean_forcibly_ratio" => self.disk_clean_forcibly_ratio = ratio(name, &v)?,
            "retention" => self.retention = text(name, v)?.parse()?,
            "sync_flush_timeout" => self.sync_flush_timeout_ms = duration(name, &v)?,
            "flush_interval" => self.flush_interval_ms = duration(name, &v)?,
            "transaction_timeout" => self.transaction_timeout_ms = duration(name, &v)?,
            "check_interval" => self.check_interval_ms = duration(name, &v)?,
            "max_checks" => self.max_checks = integer(name, &v, u32::MAX as u64)? as u32,
            "dedup_window" => self.dedup_window_ms = duration(name, &v)?,
            _ => return Err(unknown("broker options", BROKER, name)),
        }
        Ok(())
    }
}

fn ratio(name: &str, v: &OptionValue) -> Result<f64> {
    match v {
        OptionValue::Number(n) if (0.0..=1.0).contains(n) => Ok(*n),
        _ => Err(wrong(name, "a number from 0 to 1", v)),
    }
}

impl ConsumerConfig {
    /// The kind of the consumer option `name`, or None if there is no such option.
    pub fn option_kind(name: &str) -> Option<OptionKind> {
        kind_in(CONSUMER, name)
    }

    /// Sets the option `name` (`group` and `topic` are given to `new`).
    pub fn set_option(&mut self, name: &str, v: OptionValue) -> Result<()> {
        match name {
            "tags" => self.tags = text(name, v)?,
            "sql" => self.sql = Some(text(name, v)?),
            "broadcasting" => {
                self.model = if boolean(name, &v)? {
                    MessageModel::Broadcasting
                } else {
                    MessageModel::Clustering
                }
            }
            "orderly" => self.orderly = boolean(name, &v)?,
            "max_reconsume_times" => {
                self.max_reconsume_times = integer(name, &v, u32::MAX as u64)? as u32
            }
            "start" => {
                self.start = match v {
                    OptionValue::Text(s) if s == "earliest" => StartFrom::Earliest,
                    OptionValue::Text(s) if s == "latest" => StartFrom::Latest,
                    v @ OptionValue::Number(_) => StartFrom::Timestamp(time(name, &v)?),
                    v => return Err(wrong(name, "\"earliest\", \"latest\" or a time", &v)),
                }
            }
            "consumer_id" => self.consumer_id = Some(text(name, v)?),
            "ack_timeout" => {
                self.ack_timeout_ms = match v {
                    OptionValue::None => None,
                    v => Some(duration(name, &v)?),
                }
            }
            "max_in_flight" => self.max_in_flight = integer(name, &v, u32::MAX as u64)? as usize,
            _ => return Err(unknown("consumer options", CONSUMER, name)),
        }
        Ok(())
    }
}

impl SimpleConsumerConfig {
    /// The kind of the simple consumer option `name`, or None if there is no such option.
    pub fn option_kind(name: &str) -> Option<OptionKind> {
        kind_in(SIMPLE, name)
    }

    /// Sets the option `name` (`group` and `topic` are given to `new`).
    pub fn set_option(&mut self, name: &str, v: OptionValue) -> Result<()> {
        match name {
            "tags" => self.tags = text(name, v)?,
            "sql" => self.sql = Some(text(name, v)?),
            "invisible_duration" => self.invisible_duration_ms = duration(name, &v)?,
            "max_delivery_attempts" => {
                self.max_delivery_attempts = integer(name, &v, u32::MAX as u64)? as u32
            }
            "fifo" => self.fifo = boolean(name, &v)?,
            _ => return Err(unknown("simple consumer options", SIMPLE, name)),
        }
        Ok(())
    }
}

impl StartFrom {
    /// A position given by name (`"earliest"`, `"latest"`) or as epoch ms, for the
    /// option or argument `name`.
    pub fn from_option(name: &str, v: OptionValue) -> Result<StartFrom> {
        match v {
            OptionValue::Text(s) if s == "earliest" => Ok(StartFrom::Earliest),
            OptionValue::Text(s) if s == "latest" => Ok(StartFrom::Latest),
            v @ OptionValue::Number(_) => Ok(StartFrom::Timestamp(time(name, &v)?)),
            v => Err(wrong(name, "\"earliest\", \"latest\" or a time", &v)),
        }
    }
}

impl MessageBuilder {
    /// The kind of the send option `name`, or None if there is no such option.
    pub fn option_kind(name: &str) -> Option<OptionKind> {
        kind_in(MESSAGE, name)
    }

    /// Sets the send option `name`: `tags`, `keys`, `properties`, `sharding_key`,
    /// `queue_id`, and at most one of `delay_level`, `deliver_at` (epoch ms) and
    /// `delay` (ms).
    pub fn set_option(mut self, name: &str, v: OptionValue) -> Result<MessageBuilder> {
        let delay = matches!(name, "delay_level" | "deliver_at" | "delay");
        if delay && self.delay_given() {
            return Err(Error::invalid(
                "give at most one of delay_level, deliver_at and delay",
            ));
        }
        Ok(match (name, v) {
            ("tags", v) => self.tags(text(name, v)?),
            ("keys", OptionValue::Text(k)) => self.key(k),
            ("keys", OptionValue::List(ks)) => self.keys(ks),
            ("properties", OptionValue::Map(ps)) => {
                for (k, v) in ps {
                    self = self.property(k, v);
                }
                self
            }
            ("sharding_key", v) => self.sharding_key(text(name, v)?),
            ("queue_id", v) => self.queue_id(integer(name, &v, u32::MAX as u64)? as u32),
            // Any level above the last is the last (RocketMQ clamps), up to the
            // largest whole number a JS number holds exactly.
            ("delay_level", v) => {
                let level = integer(name, &v, (1 << 53) - 1)?;
                self.delay_level(u32::try_from(level).unwrap_or(u32::MAX))
            }
            ("deliver_at", v) => self.deliver_at_ms(time(name, &v)?),
            ("delay", v) => self.delay_ms(duration(name, &v)?),
            ("dedup_id", v) => self.dedup_id(text(name, v)?),
            (name, v) if kind_in(MESSAGE, name).is_some() => {
                return Err(wrong(name, "of another type", &v))
            }
            _ => return Err(unknown("send options", MESSAGE, name)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FlushMode;

    #[test]
    fn options_set_by_name_are_checked() {
        let mut c = BrokerConfig::default();
        c.set_option("timer_max_delay", OptionValue::Number(1500.7))
            .unwrap();
        assert_eq!(c.timer_max_delay_ms, 1500);
        c.set_option("flush", OptionValue::Text("sync".into()))
            .unwrap();
        assert_eq!(c.flush, FlushMode::Sync);
        for (name, v) in [
            ("max_checks", OptionValue::Number(-1.0)),
            ("max_checks", OptionValue::Number(2f64.powi(70))),
            ("max_checks", OptionValue::Number(f64::NAN)),
            ("auto_create_topics", OptionValue::Number(1.0)),
            ("disk_max_used_ratio", OptionValue::Number(1.5)),
            ("colour", OptionValue::Text("blue".into())),
        ] {
            assert!(c.set_option(name, v).is_err(), "{name}");
        }
        let mut cc = ConsumerConfig::new("g", "t");
        cc.set_option("start", OptionValue::Text("latest".into()))
            .unwrap();
        assert_eq!(cc.start, StartFrom::Latest);
        assert!(cc
            .set_option("start", OptionValue::Text("soon".into()))
            .is_err());
        assert!(BrokerConfig::option_names().all(|n| BrokerConfig::option_kind(n).is_some()));
    }
}
