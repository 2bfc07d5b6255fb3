//! What a server is told: where to listen, what to advertise, credentials, TLS, limits
//! and per-group consumer settings (server-mode.md §5.4). `ServeConfig::default()` is a
//! plaintext server on 127.0.0.1:8081 with RocketMQ's defaults; `from_toml` reads the
//! `--config` file of `pocketmq-serve`.
//!
//! The fields that mirror the broker's options (`max_message_size`,
//! `auto_create_topics`, `default_queues`, `flush`, the delay levels behind
//! `retry_delays`) are taken from the `Broker` being served when `serve` starts (the
//! server answers with them in settings and routes before the engine sees a
//! message); `max_delay` may only lower the broker's `timer_max_delay_ms`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// An access key and its secret: clients sign `x-mq-date-time` with the secret.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
}

/// A certificate chain and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Settings of one consumer group (Apache's subscription group config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupConfig {
    /// Messages of one message group are delivered in order, one at a time.
    pub fifo: bool,
    /// Redeliveries before a message goes to `%DLQ%<group>` (16: 17 deliveries).
    pub max_reconsume_times: u32,
}

impl Default for GroupConfig {
    fn default() -> GroupConfig {
        GroupConfig {
            fifo: false,
            max_reconsume_times: 16,
        }
    }
}

/// Caps that keep one client, or many, from exhausting the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest message body (the broker's `max_message_size`, 4 MiB). gRPC messages
    /// may be 1 MiB larger, for properties and framing.
    pub max_message_size: usize,
    /// ReceiveMessage long polls waiting at once; more get TOO_MANY_REQUESTS.
    pub max_long_polls: usize,
    /// Clients known at once (by `x-mq-client-id`); more get TOO_MANY_REQUESTS.
    pub max_clients: usize,
    /// Farthest a `delivery_timestamp` may be ahead (the broker's `timer_max_delay`, 30 days).
    pub max_delay: Duration,
    /// Longest a ReceiveMessage waits (20 s); the poll is also kept inside the deadline.
    pub long_polling_max: Duration,
    /// Shortest poll the server honours (5 s, as Apache); shorter requests wait this long.
    pub long_polling_min: Duration,
    /// Range of `invisible_duration` (10 s to 12 h, as Apache).
    pub min_invisible: Duration,
    pub max_invisible: Duration,
    /// Invisible time of an auto-renewed delivery, renewed while its client lives (60 s).
    pub auto_renew_invisible: Duration,
    /// Longest the server renews one delivery (3 h, as Apache's `renewMaxTimeMillis`).
    pub auto_renew_max: Duration,
    /// A client with no Telemetry stream and no call for this long is forgotten (120 s).
    pub client_idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message_size: 4 * 1024 * 1024,
            max_long_polls: 1024,
            max_clients: 10_000,
            max_delay: Duration::from_secs(30 * 24 * 3600),
            long_polling_max: Duration::from_secs(20),
            long_polling_min: Duration::from_secs(5),
            min_invisible: Duration::from_secs(10),
            max_invisible: Duration::from_secs(12 * 3600),
            auto_renew_invisible: Duration::from_secs(60),
            auto_renew_max: Duration::from_secs(3 * 3600),
            client_idle_timeout: Duration::from_secs(120),
        }
    }
}

/// Everything `serve` needs besides the broker.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where to listen (127.0.0.1:8081; port 0 picks a free one).
    pub listen: SocketAddr,
    /// The `host:port` routes name; default: the endpoint the client asked through.
    pub advertise: Option<String>,
    /// Verify every call's `authorization` header against these.
    pub credentials: Option<Credentials>,
    pub tls: Option<TlsConfig>,
    /// Serve Prometheus text on `http://<addr>/metrics`.
    pub metrics: Option<SocketAddr>,
    pub limits: Limits,
    /// Whether the broker creates topics on first send (its `auto_create_topics`): routes
    /// for unknown topics then name `default_queues` queues instead of TOPIC_NOT_FOUND.
    pub auto_create_topics: bool,
    pub default_queues: u32,
    /// The broker's flush mode. Under `Sync` a send waits for the disk, so sends run on
    /// the runtime's blocking pool; otherwise they run on the async workers.
    pub flush: pocketmq::FlushMode,
    /// Consumer groups with settings of their own; others get `GroupConfig::default()`.
    pub groups: BTreeMap<String, GroupConfig>,
    /// The waits between redeliveries that consumers are told (customized backoff):
    /// the broker's delay levels from the third on (10 s, 30 s, 1 m, ... 2 h).
    pub retry_delays: Vec<Duration>,
    /// How long `shutdown` waits for calls in flight before cutting them off.
    pub drain_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> ServeConfig {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            advertise: None,
            credentials: None,
            tls: None,
            metrics: None,
            limits: Limits::default(),
            auto_create_topics: true,
            default_queues: 4,
            flush: pocketmq::FlushMode::Async,
            groups: BTreeMap::new(),
            retry_delays: retry_delays(pocketmq::DEFAULT_DELAY_LEVELS)
                .expect("the default delay levels parse"),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

impl ServeConfig {
    /// The settings of `group`.
    pub fn group(&self, group: &str) -> GroupConfig {
        self.groups.get(group).copied().unwrap_or_default()
    }
}

/// The retry ladder of a broker's delay levels (RocketMQ syntax, `"1s 5s 10s ..."`):
/// a nack waits level `3 + reconsume_times`, so the ladder starts at the third level.
pub fn retry_delays(delay_levels: &str) -> Result<Vec<Duration>, String> {
    delay_levels
        .split_whitespace()
        .map(parse_duration)
        .skip(2)
        .collect()
}

/// `500ms`, `10s`, `1m`, `2h`, `1d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} needs a unit (ms, s, m, h, d)"))?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("{s:?} is not a duration"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        _ => return Err(format!("{s:?}: the unit is one of ms, s, m, h, d")),
    };
    Ok(Duration::from_millis(ms))
}

/// The `--config` file of `pocketmq-serve` (TOML). Every key is optional; command-line
/// flags win over the file.
///
/// ```toml
/// listen = "127.0.0.1:8081"
/// advertise = "mq.example.internal:8081"
/// metrics = "127.0.0.1:9100"
/// store = "./data"            # or memory = true
/// flush = "async"             # "sync" | "none"
/// fifo_groups = ["billing"]
/// transaction_timeout_ms = 6000   # a half message is first checked after this
/// check_interval_ms = 60000       # then checked again at this interval
///
/// [auth]
/// access_key = "..."
/// secret_key = "..."
///
/// [tls]
/// cert = "server.pem"
/// key = "server.key"
///
/// [limits]
/// max_message_size = 4194304
/// max_long_polls = 1024
/// max_clients = 10000
/// long_polling_max_ms = 20000
///
/// [groups.billing]
/// fifo = true
/// max_reconsume_times = 16
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub advertise: Option<String>,
    pub metrics: Option<SocketAddr>,
    pub store: Option<PathBuf>,
    pub memory: Option<bool>,
    pub flush: Option<String>,
    pub auto_create_topics: Option<bool>,
    pub default_queues: Option<u32>,
    pub delay_levels: Option<String>,
    pub fifo_groups: Vec<String>,
    pub transaction_timeout_ms: Option<u64>,
    pub check_interval_ms: Option<u64>,
    pub auth: Option<Credentials>,
    pub tls: Option<TlsFiles>,
    pub limits: FileLimits,
    pub groups: BTreeMap<String, GroupConfig>,
    pub drain_timeout_ms: Option<u64>,
}

/// PEM files of a certificate chain and its key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    pub fn load(&self) -> std::io::Result<TlsConfig> {
        Ok(TlsConfig {
            cert_pem: std::fs::read(&self.cert)?,
            key_pem: std::fs::read(&self.key)?,
        })
    }
}

/// `[limits]` of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileLimits {
    pub max_message_size: Option<usize>,
    pub max_long_polls: Option<usize>,
    pub max_clients: Option<usize>,
    pub max_delay_ms: Option<u64>,
    pub client_idle_timeout_ms: Option<u64>,
    /// Longest a ReceiveMessage waits, and the poll consumers are told (20 000).
    pub long_polling_max_ms: Option<u64>,
}

impl FileConfig {
    pub fn from_toml(text: &str) -> Result<FileConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_ladder_starts_at_ten_seconds() {
        let d = ServeConfig::default().retry_delays;
        assert_eq!(d.len(), 16);
        assert_eq!(d[0], Duration::from_secs(10));
        assert_eq!(d[15], Duration::from_secs(7200));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("10y").is_err());
    }

    #[test]
    fn the_file_config_reads_every_section() {
        let c = FileConfig::from_toml(
            r#"
            listen = "127.0.0.1:0"
            fifo_groups = ["a"]
            [auth]
            access_key = "ak"
            secret_key = "sk"
            [limits]
            max_long_polls = 3
            [groups.billing]
            fifo = true
            "#,
        )
        .unwrap();
        assert_eq!(c.limits.max_long_polls, Some(3));
        assert!(c.groups["billing"].fifo);
        assert_eq!(c.groups["billing"].max_reconsume_times, 16);
        assert_eq!(c.auth.unwrap().access_key, "ak");
        assert!(FileConfig::from_toml("nonsense = 1").is_err());
    }
}
