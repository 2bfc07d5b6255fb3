//! pocketmq-server: serves a pocketmq store over Apache RocketMQ 5's gRPC protocol
//! (`apache.rocketmq.v2.MessagingService`), so the official RocketMQ 5 clients (Java,
//! Python, Node, ...) work against an embedded engine unmodified.
//!
//! ```no_run
//! # async fn run() -> Result<(), pocketmq_server::ServeError> {
//! let broker = pocketmq::Broker::memory();
//! let server = pocketmq_server::serve(broker, pocketmq_server::ServeConfig::default()).await?;
//! println!("serving on {}", server.local_addr());
//! server.shutdown().await?; // drains calls in flight, flushes, closes the store
//! # Ok(()) }
//! ```
//!
//! `serve` must run inside a tokio runtime (multi-threaded: engine calls that wait run
//! on its blocking pool). The modules follow the protocol: `service` (one function per
//! RPC), `route` (QueryRoute, QueryAssignment), `telemetry` (the settings handshake
//! and server-to-client commands),
//! `settings` (the merged settings clients wait for), `convert` (messages both ways),
//! `pop` (consumer RPCs; `pop/pool.rs` holds the engine calls, `pop/renewal.rs` the
//! auto-renewed deliveries), `tx` (transactions), `client` (connected clients), `auth`
//! (signatures), `status` (engine errors to protocol codes), `stats` and `metrics`.
//!
//! Logs go through the `log` facade as `key=value` fields; the `pocketmq-serve` binary
//! prints them to stderr, an embedder routes them wherever its logger goes.

mod auth;
pub mod cli;
mod client;
mod config;
mod convert;
mod metrics;
mod pop;
mod resource;
mod route;
mod service;
mod settings;
mod stats;
mod status;
mod telemetry;
mod tls;
mod tx;

/// The generated types and stubs of `apache.rocketmq.v2` (server and client).
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod proto {
    tonic::include_proto!("apache.rocketmq.v2");
}

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Server;

pub use auth::{authorization, sign};
pub use config::{
    parse_duration, retry_delays, Credentials, FileConfig, FileLimits, GroupConfig, Limits,
    ServeConfig, TlsConfig, TlsFiles,
};
pub use convert::decompressed;
pub use stats::{Rpc, RpcStats, ServerStats, LATENCY_BUCKETS_US};

use crate::proto::messaging_service_server::MessagingServiceServer;
use crate::service::{Service, Shared};

/// How long no call may be in flight before a draining server closes what is left.
const DRAIN_QUIET: Duration = Duration::from_millis(200);

/// Why a server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("configuration: {0}")]
    Config(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("the store: {0}")]
    Store(#[from] pocketmq::Error),
    #[error("the server: {0}")]
    Transport(String),
}

/// A running server. Dropping it leaves the server running until the runtime ends;
/// `shutdown` stops it cleanly.
pub struct ServerHandle {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    helpers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .field("metrics_addr", &self.metrics_addr)
            .finish()
    }
}

pub(crate) fn stats_of(shared: &Shared) -> ServerStats {
    shared.stats.snapshot(shared.clients.len())
}

/// Serves `broker` as `cfg` says. Returns once listening. What mirrors the broker's
/// options (`limits.max_message_size`, `auto_create_topics`, `default_queues`,
/// `flush`, `retry_delays`) is taken from the broker; `limits.max_delay` is kept
/// within its `timer_max_delay_ms`.
pub async fn serve(
    broker: pocketmq::Broker,
    mut cfg: ServeConfig,
) -> Result<ServerHandle, ServeError> {
    let b = broker.config();
    cfg.limits.max_message_size = b.max_message_size;
    cfg.limits.max_delay = cfg
        .limits
        .max_delay
        .min(Duration::from_millis(b.timer_max_delay_ms));
    cfg.auto_create_topics = b.auto_create_topics;
    cfg.default_queues = b.default_queues;
    cfg.flush = b.flush;
    cfg.retry_delays = retry_delays(&b.delay_levels).map_err(ServeError::Config)?;
    if let Some(a) = &cfg.advertise {
        if route::parse_endpoint(a).is_none() {
            return Err(ServeError::Config(format!(
                "advertise {a:?} is not host:port"
            )));
        }
    }
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: cfg.listen,
        source,
    })?;
    let metrics_listener = match cfg.metrics {
        Some(addr) => Some(
            metrics::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })?,
        ),
        None => None,
    };
    let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());

    let (stop, stopped) = watch::channel(false);
    let max_grpc_message = cfg.limits.max_message_size + 1024 * 1024;
    let tls = cfg.tls.clone();
    let shared = Arc::new(Shared::new(broker, cfg, local_addr, stopped.clone())?);

    let service = MessagingServiceServer::new(Service {
        shared: shared.clone(),
    })
    .max_decoding_message_size(max_grpc_message)
    .max_encoding_message_size(max_grpc_message);
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)));
    // TLS and plaintext on the one port, as Apache's proxy (tls.rs).
    let acceptor = tls::acceptor(tls.as_ref()).map_err(ServeError::Tls)?;
    let incoming = tls::incoming(listener, acceptor, stopped.clone());
    let mut signal = stopped.clone();
    let server = tokio::spawn(builder.add_service(service).serve_with_incoming_shutdown(
        incoming,
        async move {
            let _ = signal.wait_for(|s| *s).await;
        },
    ));

    let mut helpers = Vec::new();
    if let Some(l) = metrics_listener {
        helpers.push(tokio::spawn(metrics::run(l, shared.clone())));
    }
    helpers.push(tokio::spawn(housekeeping(shared.clone())));
    log::info!(
        "event=listening addr={local_addr} tls={} auth={} metrics={}",
        // TLS and plaintext share the port; without files, TLS has a certificate
        // made at start.
        if shared.cfg.tls.is_some() {
            "certificate"
        } else {
            "self-signed"
        },
        shared.cfg.credentials.is_some(),
        metrics_addr.map_or("none".to_string(), |a| a.to_string())
    );
    Ok(ServerHandle {
        local_addr,
        metrics_addr,
        shared,
        stop,
        server,
        helpers,
    })
}

/// Runs `housekeep` every few seconds.
async fn housekeeping(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        housekeep(&shared).await;
    }
}

/// Forgets idle clients, and renews auto-renewed deliveries that are due (releasing
/// those of forgotten clients).
async fn housekeep(shared: &Shared) {
    let now = shared.now_ms();
    shared.clients.sweep(now);
    let limits = &shared.cfg.limits;
    shared
        .pop
        .renew_due(
            now,
            (limits.auto_renew_invisible, limits.auto_renew_max),
            |client| shared.clients.knows(client),
        )
        .await;
}

impl ServerHandle {
    /// Runs the server's periodic work now, as its timer does every few seconds:
    /// forgets idle clients and renews (or releases) auto-renewed deliveries that are
    /// due by the broker's clock. For a broker on a ManualClock, after moving it.
    pub async fn housekeep(&self) {
        housekeep(&self.shared).await;
    }

    /// The address the server listens on (with the port chosen for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the Prometheus endpoint, if one was asked for.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Per-RPC counts and latencies, and the server's gauges.
    pub fn stats(&self) -> ServerStats {
        stats_of(&self.shared)
    }

    /// The broker being served.
    pub fn broker(&self) -> &pocketmq::Broker {
        &self.shared.broker
    }

    /// Stops taking connections, lets calls in flight finish (up to the drain
    /// timeout), ends the Telemetry streams, then flushes and closes the store,
    /// releasing its directory.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        log::info!("event=draining addr={}", self.local_addr);
        let _ = self.stop.send(true);
        self.shared.clients.close_streams();
        // Drain: wait until no call is in flight (and replies had a moment to go
        // out), or the server finished on its own, or the drain timeout passed.
        // Connections that carry no call (idle, or never spoke HTTP/2) do not hold
        // the shutdown up.
        let mut server = self.server;
        let step = Duration::from_millis(20);
        let max_steps = (self.shared.cfg.drain_timeout.as_millis() / step.as_millis()).max(1);
        let mut quiet = Duration::ZERO;
        let mut result = Ok(());
        let mut finished = false;
        for _ in 0..max_steps {
            tokio::select! {
                r = &mut server => {
                    result = match r {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(ServeError::Transport(e.to_string())),
                        Err(e) => Err(ServeError::Transport(e.to_string())),
                    };
                    finished = true;
                    break;
                }
                _ = tokio::time::sleep(step) => {
                    if self.shared.inflight.load(std::sync::atomic::Ordering::Acquire) == 0 {
                        quiet += step;
                        if quiet >= DRAIN_QUIET {
                            break;
                        }
                    } else {
                        quiet = Duration::ZERO;
                    }
                }
            }
        }
        if !finished {
            let left = self
                .shared
                .inflight
                .load(std::sync::atomic::Ordering::Acquire);
            if left > 0 {
                log::warn!(
                    "event=drain_timeout after={:?} calls_cut_off={left}",
                    self.shared.cfg.drain_timeout
                );
            }
            server.abort();
        }
        for h in &self.helpers {
            h.abort();
        }
        let broker = self.shared.broker.clone();
        let closed = tokio::task::spawn_blocking(move || {
            broker.flush()?;
            broker.close()
        })
        .await
        .map_err(|e| ServeError::Transport(e.to_string()))?;
        match closed {
            Ok(()) | Err(pocketmq::Error::Closed) => {}
            Err(e) => return Err(e.into()),
        }
        log::info!("event=stopped addr={}", self.local_addr);
        result
    }
}
