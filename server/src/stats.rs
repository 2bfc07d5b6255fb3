//! Per-RPC counts and latencies, and the Prometheus text they render to.
//!
//! Each RPC has a call counter, a counter of calls answered with a non-OK code, and a
//! latency histogram with fixed buckets; all are atomics, so recording takes no lock.
//! Real time for latencies is read here and nowhere else in the crate.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The RPCs of `apache.rocketmq.v2.MessagingService`, plus the unknown ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rpc {
    QueryRoute,
    Heartbeat,
    SendMessage,
    QueryAssignment,
    ReceiveMessage,
    AckMessage,
    ForwardMessageToDeadLetterQueue,
    PullMessage,
    UpdateOffset,
    GetOffset,
    QueryOffset,
    EndTransaction,
    Telemetry,
    NotifyClientTermination,
    ChangeInvisibleDuration,
    RecallMessage,
    SyncLiteSubscription,
}

impl Rpc {
    pub const ALL: [Rpc; 17] = [
        Rpc::QueryRoute,
        Rpc::Heartbeat,
        Rpc::SendMessage,
        Rpc::QueryAssignment,
        Rpc::ReceiveMessage,
        Rpc::AckMessage,
        Rpc::ForwardMessageToDeadLetterQueue,
        Rpc::PullMessage,
        Rpc::UpdateOffset,
        Rpc::GetOffset,
        Rpc::QueryOffset,
        Rpc::EndTransaction,
        Rpc::Telemetry,
        Rpc::NotifyClientTermination,
        Rpc::ChangeInvisibleDuration,
        Rpc::RecallMessage,
        Rpc::SyncLiteSubscription,
    ];

    /// The RPC's name in the service definition.
    pub fn name(self) -> &'static str {
        match self {
            Rpc::QueryRoute => "QueryRoute",
            Rpc::Heartbeat => "Heartbeat",
            Rpc::SendMessage => "SendMessage",
            Rpc::QueryAssignment => "QueryAssignment",
            Rpc::ReceiveMessage => "ReceiveMessage",
            Rpc::AckMessage => "AckMessage",
            Rpc::ForwardMessageToDeadLetterQueue => "ForwardMessageToDeadLetterQueue",
            Rpc::PullMessage => "PullMessage",
            Rpc::UpdateOffset => "UpdateOffset",
            Rpc::GetOffset => "GetOffset",
            Rpc::QueryOffset => "QueryOffset",
            Rpc::EndTransaction => "EndTransaction",
            Rpc::Telemetry => "Telemetry",
            Rpc::NotifyClientTermination => "NotifyClientTermination",
            Rpc::ChangeInvisibleDuration => "ChangeInvisibleDuration",
            Rpc::RecallMessage => "RecallMessage",
            Rpc::SyncLiteSubscription => "SyncLiteSubscription",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Upper bounds of the latency buckets, in microseconds (the last bucket is +Inf).
pub const LATENCY_BUCKETS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 5_000_000, 30_000_000,
];

#[derive(Default)]
struct RpcCounters {
    calls: AtomicU64,
    errors: AtomicU64,
    latency_sum_us: AtomicU64,
    /// Counts per bucket (not cumulative); the last is +Inf.
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
}

/// The server's counters; shared by every call.
pub(crate) struct Recorder {
    rpcs: [RpcCounters; Rpc::ALL.len()],
    pub(crate) messages_in: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) long_polls: AtomicU64,
    pub(crate) telemetry_streams: AtomicU64,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            rpcs: Default::default(),
            messages_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            long_polls: AtomicU64::new(0),
            telemetry_streams: AtomicU64::new(0),
        }
    }

    /// Counts one finished call of `rpc` that began at `started`.
    pub fn record(&self, rpc: Rpc, started: Started, ok: bool) {
        let c = &self.rpcs[rpc.index()];
        let us = started.0.elapsed().as_micros().min(u64::MAX as u128) as u64;
        c.calls.fetch_add(1, Ordering::Relaxed);
        if !ok {
            c.errors.fetch_add(1, Ordering::Relaxed);
        }
        c.latency_sum_us.fetch_add(us, Ordering::Relaxed);
        let b = LATENCY_BUCKETS_US
            .iter()
            .position(|&le| us <= le)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        c.buckets[b].fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self, clients: usize) -> ServerStats {
        let rpcs = Rpc::ALL
            .iter()
            .map(|&rpc| {
                let c = &self.rpcs[rpc.index()];
                RpcStats {
                    rpc,
                    calls: c.calls.load(Ordering::Relaxed),
                    errors: c.errors.load(Ordering::Relaxed),
                    latency_sum: Duration::from_micros(c.latency_sum_us.load(Ordering::Relaxed)),
                    latency_buckets: c
                        .buckets
                        .iter()
                        .map(|b| b.load(Ordering::Relaxed))
                        .collect(),
                }
            })
            .collect();
        ServerStats {
            rpcs,
            clients,
            messages_in: self.messages_in.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            long_polls: self.long_polls.load(Ordering::Relaxed),
            telemetry_streams: self.telemetry_streams.load(Ordering::Relaxed),
        }
    }
}

/// When a call began.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Started(Instant);

impl Started {
    #[allow(clippy::disallowed_methods)] // latencies are real time, read only here
    pub fn now() -> Started {
        Started(Instant::now())
    }
}

/// Counters of one RPC.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcStats {
    pub rpc: Rpc,
    /// Calls finished (for streams: streams ended or answered).
    pub calls: u64,
    /// Calls answered with a code other than OK (MESSAGE_NOT_FOUND included).
    pub errors: u64,
    pub latency_sum: Duration,
    /// Calls per bucket of `LATENCY_BUCKETS_US` (not cumulative), then +Inf.
    pub latency_buckets: Vec<u64>,
}

impl RpcStats {
    /// The latency below which `q` (0..=1) of the calls fell, as a bucket's upper bound
    /// (`None` with no calls, `Duration::MAX` in the +Inf bucket).
    pub fn latency_quantile(&self, q: f64) -> Option<Duration> {
        let total: u64 = self.latency_buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.latency_buckets.iter().enumerate() {
            seen += n;
            if seen >= want {
                return Some(
                    LATENCY_BUCKETS_US
                        .get(i)
                        .map_or(Duration::MAX, |&us| Duration::from_micros(us)),
                );
            }
        }
        Some(Duration::MAX)
    }
}

/// A snapshot of the server's counters (`ServerHandle::stats`).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerStats {
    pub rpcs: Vec<RpcStats>,
    /// Clients known now.
    pub clients: usize,
    /// Messages stored through SendMessage, and their body bytes.
    pub messages_in: u64,
    pub bytes_in: u64,
    /// ReceiveMessage long polls waiting now.
    pub long_polls: u64,
    /// Telemetry streams open now.
    pub telemetry_streams: u64,
}

impl ServerStats {
    /// The counters of one RPC.
    pub fn rpc(&self, rpc: Rpc) -> &RpcStats {
        &self.rpcs[rpc.index()]
    }

    /// The Prometheus text exposition of these counters.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP pocketmq_rpc_calls_total Calls finished, per RPC."
        );
        let _ = writeln!(out, "# TYPE pocketmq_rpc_calls_total counter");
        for r in &self.rpcs {
            let _ = writeln!(
                out,
                "pocketmq_rpc_calls_total{{rpc=\"{}\"}} {}",
                r.rpc.name(),
                r.calls
            );
        }
        let _ = writeln!(
            out,
            "# HELP pocketmq_rpc_errors_total Calls answered with a code other than OK, per RPC."
        );
        let _ = writeln!(out, "# TYPE pocketmq_rpc_errors_total counter");
        for r in &self.rpcs {
            let _ = writeln!(
                out,
                "pocketmq_rpc_errors_total{{rpc=\"{}\"}} {}",
                r.rpc.name(),
                r.errors
            );
        }
        let _ = writeln!(
            out,
            "# HELP pocketmq_rpc_latency_seconds Time to answer, per RPC."
        );
        let _ = writeln!(out, "# TYPE pocketmq_rpc_latency_seconds histogram");
        for r in &self.rpcs {
            let name = r.rpc.name();
            let mut cumulative = 0;
            for (i, n) in r.latency_buckets.iter().enumerate() {
                cumulative += n;
                let le = LATENCY_BUCKETS_US
                    .get(i)
                    .map_or("+Inf".to_string(), |us| format!("{}", *us as f64 / 1e6));
                let _ = writeln!(
                    out,
                    "pocketmq_rpc_latency_seconds_bucket{{rpc=\"{name}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "pocketmq_rpc_latency_seconds_sum{{rpc=\"{name}\"}} {}",
                r.latency_sum.as_secs_f64()
            );
            let _ = writeln!(
                out,
                "pocketmq_rpc_latency_seconds_count{{rpc=\"{name}\"}} {cumulative}"
            );
        }
        for (name, kind, help, value) in [
            (
                "pocketmq_clients",
                "gauge",
                "Clients known now.",
                self.clients as u64,
            ),
            (
                "pocketmq_long_polls",
                "gauge",
                "ReceiveMessage calls waiting now.",
                self.long_polls,
            ),
            (
                "pocketmq_telemetry_streams",
                "gauge",
                "Telemetry streams open now.",
                self.telemetry_streams,
            ),
            (
                "pocketmq_messages_in_total",
                "counter",
                "Messages stored through SendMessage.",
                self.messages_in,
            ),
            (
                "pocketmq_bytes_in_total",
                "counter",
                "Body bytes stored through SendMessage.",
                self.bytes_in,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_land_in_buckets_and_render() {
        let r = Recorder::new();
        r.record(Rpc::SendMessage, Started::now(), true);
        r.record(Rpc::SendMessage, Started::now(), false);
        let s = r.snapshot(2);
        let send = s.rpc(Rpc::SendMessage);
        assert_eq!((send.calls, send.errors), (2, 1));
        assert!(send.latency_quantile(0.99).unwrap() <= Duration::from_millis(30_000));
        assert_eq!(s.rpc(Rpc::Heartbeat).latency_quantile(0.5), None);
        let text = s.to_prometheus();
        assert!(text.contains("pocketmq_rpc_calls_total{rpc=\"SendMessage\"} 2"));
        assert!(
            text.contains("pocketmq_rpc_latency_seconds_bucket{rpc=\"SendMessage\",le=\"+Inf\"} 2")
        );
        assert!(text.contains("pocketmq_clients 2"));
    }
}
