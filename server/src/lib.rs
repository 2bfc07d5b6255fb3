//! pocketmq-server: serves a pocketmq store over Apache RocketMQ 5's gRPC protocol
//! (`apache.rocketmq.v2.MessagingService`).

#![allow(dead_code)] // the service that uses these modules comes next

mod config;
mod convert;
mod resource;
mod settings;
mod status;

/// The generated types and stubs of `apache.rocketmq.v2` (server and client).
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod proto {
    tonic::include_proto!("apache.rocketmq.v2");
}

pub use config::{
    parse_duration, retry_delays, Credentials, FileConfig, FileLimits, GroupConfig, Limits,
    ServeConfig, TlsConfig, TlsFiles,
};
