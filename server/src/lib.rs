//! pocketmq-server: serves a pocketmq store over Apache RocketMQ 5's gRPC protocol
//! (`apache.rocketmq.v2.MessagingService`).

/// The generated types and stubs of `apache.rocketmq.v2` (server and client).
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod proto {
    tonic::include_proto!("apache.rocketmq.v2");
}
