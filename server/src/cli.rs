//! The command line of `pocketmq-serve`, and of `pocketmq serve` in the Python
//! package (the same flags, parsed here once): the broker's and the server's configs
//! from the flags over an optional TOML file, the `key=value` logger, and `run`, which
//! opens the store, serves it, prints one `pocketmq-serve listening on <addr>` line on
//! stdout once the port is open, and on `stop` drains, flushes and closes the store.
//!
//! ```text
//! pocketmq-serve <store dir | --memory> [--listen 127.0.0.1:8081] [--advertise host:port]
//!                [--config serve.toml] [--access-key K --secret-key S]
//!                [--tls-cert cert.pem --tls-key key.pem] [--metrics 127.0.0.1:9100]
//!                [--flush async|sync|none] [--fifo-groups a,b] [--log-level info]
//! ```

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use pocketmq::{Broker, BrokerConfig, Clock, FlushMode, SystemClock};

use crate::{Credentials, FileConfig, GroupConfig, ServeConfig, TlsFiles};

/// The usage line.
pub const USAGE: &str =
    "usage: pocketmq-serve <store dir | --store DIR | --memory> [--listen 127.0.0.1:8081] \
[--advertise host:port] [--config serve.toml] [--access-key K --secret-key S] \
[--tls-cert cert.pem --tls-key key.pem] [--metrics 127.0.0.1:9100] \
[--flush async|sync|none] [--fifo-groups a,b] [--log-level error|warn|info|debug|trace|off]";

/// What `--help` prints: the usage line, then each flag.
pub const HELP: &str = "\
Serves a pocketmq store over Apache RocketMQ 5's gRPC protocol: the official RocketMQ 5
clients and pocketmq.connect() work against it. Prints one line,
`pocketmq-serve listening on <addr>`, once the port is open; SIGINT or SIGTERM drains,
flushes and closes the store. Exit status: 0 after such a stop, 2 for bad arguments, 3 when
another process holds the store, 5 when its files cannot be read back as a store, 6 when
the operating system refused a file operation, 1 for any other failure.

arguments:
  STORE_DIR, --store DIR the store directory (created if missing; one process at a time)
  --memory               serve an in-memory store instead (gone when the server stops)
  --listen HOST:PORT     where to listen (default 127.0.0.1:8081; port 0 picks a free one)
  --advertise HOST:PORT  the endpoint routes name (default: the one the client dialled)
  --config FILE          a TOML file of settings (every key optional; flags win):
                         listen, advertise, metrics, store, memory, flush, fifo_groups,
                         auto_create_topics, default_queues, delay_levels,
                         transaction_timeout_ms, check_interval_ms, drain_timeout_ms,
                         [auth], [tls], [limits], [groups.NAME]
  --access-key K --secret-key S
                         require RocketMQ's signed requests with this key pair
  --tls-cert FILE --tls-key FILE
                         serve TLS with this PEM certificate chain and key (TLS
                         and plaintext share the port; without these, TLS uses a
                         certificate made at start, signed by itself)
  --metrics HOST:PORT    serve Prometheus metrics at http://HOST:PORT/metrics
  --flush async|sync|none
                         when appends reach the disk (default async; sync: a send
                         returns once its bytes are on disk)
  --fifo-groups A,B      consumer groups whose simple consumers are FIFO (message
                         groups delivered in order), as RocketMQ's group setting
  --log-level LEVEL      error, warn, info (default), debug, trace or off; also the
                         POCKETMQ_LOG environment variable
  -h, --help             this help";

/// The usage line and the help under the name the program runs as.
pub fn help(program: &str) -> String {
    format!("{}\n\n{HELP}", usage(program))
}

/// The usage line under the name the program runs as.
pub fn usage(program: &str) -> String {
    USAGE.replacen("pocketmq-serve", program, 1)
}

#[derive(Debug, Default)]
struct Args {
    store: Option<PathBuf>,
    memory: bool,
    listen: Option<SocketAddr>,
    advertise: Option<String>,
    config: Option<PathBuf>,
    access_key: Option<String>,
    secret_key: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    metrics: Option<SocketAddr>,
    flush: Option<String>,
    fifo_groups: Vec<String>,
    log_level: Option<String>,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args::default();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--memory" => a.memory = true,
            // The store directory, also as a flag (`pocketmq-serve --store ./data`).
            "--store" => {
                let dir = value("--store")?;
                if a.store.replace(dir.into()).is_some() {
                    return Err("give the store directory once".into());
                }
            }
            "--listen" => a.listen = Some(parse_addr(&value("--listen")?)?),
            "--advertise" => a.advertise = Some(value("--advertise")?),
            "--config" => a.config = Some(value("--config")?.into()),
            "--access-key" => a.access_key = Some(value("--access-key")?),
            "--secret-key" => a.secret_key = Some(value("--secret-key")?),
            "--tls-cert" => a.tls_cert = Some(value("--tls-cert")?.into()),
            "--tls-key" => a.tls_key = Some(value("--tls-key")?.into()),
            "--metrics" => a.metrics = Some(parse_addr(&value("--metrics")?)?),
            "--flush" => a.flush = Some(value("--flush")?),
            "--fifo-groups" => a.fifo_groups.extend(
                value("--fifo-groups")?
                    .split(',')
                    .filter(|g| !g.is_empty())
                    .map(String::from),
            ),
            "--log-level" => a.log_level = Some(value("--log-level")?),
            f if f.starts_with('-') => return Err(format!("unknown option {f}")),
            _ if a.store.is_none() => a.store = Some(arg.into()),
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    Ok(a)
}

/// `ip:port`, or `host:port` with a name the machine resolves (`localhost:0`; an
/// IPv4 address first when it has both).
fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    let bad = || format!("{s:?} is not an address (host:port, e.g. 127.0.0.1:8081)");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    let found: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(s)
        .map_err(|e| format!("{s:?}: {host} does not resolve here: {e}"))?
        .collect();
    found
        .iter()
        .find(|a| a.is_ipv4())
        .or(found.first())
        .copied()
        .ok_or_else(|| format!("{s:?}: {host} resolves to no address"))
}

/// The broker's and the server's configs from the flags over the file.
fn configs(args: Args) -> Result<(BrokerConfig, ServeConfig), String> {
    let file = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            FileConfig::from_toml(&text).map_err(|e| format!("{}: {e}", p.display()))?
        }
        None => FileConfig::default(),
    };
    let memory = args.memory || file.memory == Some(true);
    let store = args.store.or(file.store);
    let mut broker = match (memory, store) {
        (true, None) => BrokerConfig::default(),
        (false, Some(dir)) => BrokerConfig::at(dir),
        (true, Some(_)) => return Err("give a store directory or --memory, not both".into()),
        (false, None) => return Err("give a store directory or --memory".into()),
    };
    if let Some(f) = args.flush.or(file.flush) {
        broker.flush = f.parse::<FlushMode>().map_err(|e| e.to_string())?;
    }
    let mut cfg = ServeConfig::default();
    if let Some(l) = args.listen.or(file.listen) {
        cfg.listen = l;
    }
    cfg.advertise = args.advertise.or(file.advertise);
    cfg.metrics = args.metrics.or(file.metrics);
    cfg.credentials = match (args.access_key, args.secret_key) {
        (Some(access_key), Some(secret_key)) => Some(Credentials {
            access_key,
            secret_key,
        }),
        (None, None) => file.auth,
        _ => return Err("--access-key and --secret-key go together".into()),
    };
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => file.tls,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    if let Some(t) = tls {
        cfg.tls = Some(t.load().map_err(|e| format!("TLS files: {e}"))?);
    }
    let l = file.limits;
    if let Some(n) = l.max_message_size {
        cfg.limits.max_message_size = n;
    }
    if let Some(n) = l.max_long_polls {
        cfg.limits.max_long_polls = n;
    }
    if let Some(n) = l.max_clients {
        cfg.limits.max_clients = n;
    }
    if let Some(ms) = l.max_delay_ms {
        cfg.limits.max_delay = Duration::from_millis(ms);
    }
    if let Some(ms) = l.long_polling_max_ms {
        cfg.limits.long_polling_max = Duration::from_millis(ms);
        cfg.limits.long_polling_min = cfg.limits.long_polling_min.min(cfg.limits.long_polling_max);
    }
    if let Some(ms) = l.client_idle_timeout_ms {
        cfg.limits.client_idle_timeout = Duration::from_millis(ms);
    }
    if let Some(ms) = file.drain_timeout_ms {
        cfg.drain_timeout = Duration::from_millis(ms);
    }
    if let Some(b) = file.auto_create_topics {
        cfg.auto_create_topics = b;
    }
    if let Some(n) = file.default_queues {
        cfg.default_queues = n;
    }
    if let Some(levels) = file.delay_levels {
        cfg.retry_delays = crate::retry_delays(&levels)?;
        broker.delay_levels = levels;
    }
    if let Some(ms) = file.transaction_timeout_ms {
        broker.transaction_timeout_ms = ms;
    }
    if let Some(ms) = file.check_interval_ms {
        broker.check_interval_ms = ms;
    }
    cfg.groups = file.groups;
    for name in cfg.groups.keys() {
        pocketmq::validate_group(name).map_err(|e| format!("[groups.{name}]: {e}"))?;
    }
    for g in args.fifo_groups.into_iter().chain(file.fifo_groups) {
        pocketmq::validate_group(&g).map_err(|e| format!("--fifo-groups: {e}"))?;
        cfg.groups
            .entry(g)
            .or_insert_with(GroupConfig::default)
            .fifo = true;
    }
    // The broker enforces what the server advertises.
    broker.max_message_size = cfg.limits.max_message_size;
    broker.timer_max_delay_ms = cfg.limits.max_delay.as_millis() as u64;
    broker.auto_create_topics = cfg.auto_create_topics;
    broker.default_queues = cfg.default_queues;
    cfg.flush = broker.flush;
    Ok((broker, cfg))
}

/// `key=value` lines on stderr, one per record.
struct Logger {
    level: log::LevelFilter,
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= self.level
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let line = format!(
            "ts={} level={} target={} {}\n",
            rfc3339(SystemClock.now_ms()),
            r.level().as_str().to_ascii_lowercase(),
            r.target(),
            r.args()
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// `2026-12-01T11:13:16.123Z` from ms since the epoch.
fn rfc3339(ms: u64) -> String {
    let (secs, millis) = (ms / 1000, ms % 1000);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Installs the `key=value` stderr logger at `level` (else `POCKETMQ_LOG`, else info).
pub fn init_logging(level: Option<&str>) -> Result<(), String> {
    let level = level
        .map(String::from)
        .or_else(|| std::env::var("POCKETMQ_LOG").ok())
        .unwrap_or_else(|| "info".into());
    let level: log::LevelFilter = level
        .parse()
        .map_err(|_| format!("log level {level:?}: one of error, warn, info, debug, trace, off"))?;
    log::set_max_level(level);
    log::set_boxed_logger(Box::new(Logger { level })).map_err(|e| e.to_string())
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// `-h` / `--help`: print `help`.
    Help,
    /// Serve a store.
    Serve(Box<Serve>),
}

/// A server to run: the broker's options, the server's, and the log level asked for.
#[derive(Debug)]
pub struct Serve {
    pub broker: BrokerConfig,
    pub serve: ServeConfig,
    pub log_level: Option<String>,
}

/// Parses the arguments (without the program name).
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let args = match parse_args(args.into_iter()) {
        Ok(a) => a,
        Err(e) if e.is_empty() => return Ok(Command::Help),
        Err(e) => return Err(e),
    };
    let log_level = args.log_level.clone();
    if let Some(level) = &log_level {
        level.parse::<log::LevelFilter>().map_err(|_| {
            format!("--log-level {level:?}: one of error, warn, info, debug, trace, off")
        })?;
    }
    let (broker, serve) = configs(args)?;
    Ok(Command::Serve(Box::new(Serve {
        broker,
        serve,
        log_level,
    })))
}

/// Why `run` ended early: the message, and the exit status the `pocketmq` command
/// gives for it (its `--help` lists them: 2 an argument or setting refused, 3 a
/// store locked by another process, 5 a damaged store, 6 a refused file operation,
/// 1 anything else).
#[derive(Debug)]
pub struct Failed {
    pub message: String,
    pub exit: u8,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for Failed {
    fn from(message: String) -> Failed {
        Failed { message, exit: 1 }
    }
}

/// Opens the store and serves it until `stop` completes, then drains, flushes and
/// closes it. Prints `pocketmq-serve listening on <addr>` on stdout once listening.
pub async fn run(s: Serve, stop: impl Future<Output = ()>) -> Result<(), Failed> {
    let broker = Broker::open(s.broker).map_err(|e| Failed {
        exit: match e.kind() {
            pocketmq::ErrorKind::InvalidArgument => 2,
            pocketmq::ErrorKind::StoreLocked => 3,
            pocketmq::ErrorKind::StoreCorrupted => 5,
            pocketmq::ErrorKind::Io | pocketmq::ErrorKind::DiskFull => 6,
            _ => 1,
        },
        message: format!("cannot open the store: {e}"),
    })?;
    let server = crate::serve(broker, s.serve).await.map_err(|e| Failed {
        exit: match &e {
            crate::ServeError::Config(_) => 2,
            _ => 1,
        },
        message: e.to_string(),
    })?;
    println!("pocketmq-serve listening on {}", server.local_addr());
    let _ = std::io::stdout().flush();
    stop.await;
    Ok(server.shutdown().await.map_err(|e| e.to_string())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        parse_args(s.split_whitespace().map(String::from))
    }

    #[test]
    fn flags_parse_and_combine() {
        let a =
            args("./data --listen 127.0.0.1:0 --metrics=127.0.0.1:9100 --fifo-groups a,b").unwrap();
        assert_eq!(a.store.as_deref(), Some(std::path::Path::new("./data")));
        assert_eq!(a.fifo_groups, ["a", "b"]);
        let (b, c) = configs(a).unwrap();
        assert!(b.path.is_some());
        assert!(c.group("a").fifo && !c.group("z").fifo);
        assert!(configs(args("--memory --access-key k").unwrap()).is_err());
        assert!(configs(args("").unwrap()).is_err());
        assert!(args("--bogus").is_err());
        assert!(args("--listen nowhere").is_err());
        assert!(args("--listen localhost:x").is_err());
        let local = args("--listen localhost:0").unwrap().listen.unwrap();
        assert!(local.ip().is_loopback() && local.port() == 0);
        assert!(configs(args("--memory --fifo-groups ok,bad!").unwrap())
            .unwrap_err()
            .contains("bad!"));
        let line = |s: &str| parse(s.split_whitespace().map(String::from));
        assert!(line("--memory --log-level bogus").is_err());
        assert!(line("--memory --log-level debug").is_ok());
        let (b, c) = configs(args("--memory").unwrap()).unwrap();
        assert!(b.path.is_none());
        assert_eq!(c.listen.to_string(), "127.0.0.1:8081");
    }

    #[test]
    fn the_config_file_sets_transaction_check_timing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("serve.toml");
        std::fs::write(
            &file,
            "memory = true\ntransaction_timeout_ms = 3000\ncheck_interval_ms = 1000\n",
        )
        .unwrap();
        let (b, _) = configs(args(&format!("--config {}", file.display())).unwrap()).unwrap();
        assert_eq!(
            (b.transaction_timeout_ms, b.check_interval_ms),
            (3000, 1000)
        );
        let (b, _) = configs(args("--memory").unwrap()).unwrap();
        assert_eq!(
            (b.transaction_timeout_ms, b.check_interval_ms),
            (6000, 60_000)
        );
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_764_000_000_123), "2025-11-24T16:00:00.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
