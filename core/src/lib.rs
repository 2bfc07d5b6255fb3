//! pocketmq: RocketMQ's storage and messaging model as an embeddable engine.
//!
//! One append-only CommitLog shared by all topics, per-queue ConsumeQueues, consumer
//! groups with committed offsets and long polling, tag filters, retries and dead
//! letters, delay levels and timers, and transactional messages, over a file or an
//! in-memory store. The Python and JavaScript packages are thin bindings over this crate.
//!
//! ```
//! use std::time::Duration;
//! use pocketmq::{Broker, BrokerConfig, ConsumerConfig, Message};
//!
//! # fn main() -> pocketmq::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let broker = Broker::open(BrokerConfig::at(dir.path()))?;
//! let producer = broker.producer("shop")?;
//! let sent = producer.send(Message::builder("orders", "paid #42").tags("paid").build())?;
//!
//! let consumer = broker.consumer(ConsumerConfig::new("billing", "orders"))?;
//! let got = consumer.receive(32, Duration::from_secs(1))?;
//! assert_eq!(got[0].msg_id, sent.msg_id);
//! consumer.ack(&got[0])?;
//! assert_eq!(broker.lag("billing", "orders")?, 0);
//! broker.close()
//! # }
//! ```
#![warn(missing_docs)]

/// This crate's version (`Cargo.toml`'s), as the Python and JS packages report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

mod admin;
mod atomic;
mod broker;
mod clock;
mod commitlog;
mod config;
mod consume_queue;
mod consumer;
mod dedup;
mod dispatch;
mod engine;
mod error;
mod filter;
mod index;
mod message;
mod message_store;
mod retention;
mod runtime;
mod schedule;
mod stats;
mod store;
mod topic;
mod transaction;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use admin::ConsumeProgress;
pub use broker::{Atomic, Broker, Consumer, PreparedDedup, Producer};
/// The type of message bodies (`Message::body`, `MessageExt::body`), re-exported so
/// that naming it needs no `bytes` dependency of one's own.
pub use bytes::Bytes;
pub use clock::{Clock, ManualClock, SystemClock, MAX_TIME_MS};
pub use config::{
    BrokerConfig, ConsumerConfig, FlushMode, MessageModel, OptionKind, OptionValue, Options,
    Retention, SimpleConsumerConfig, StartFrom, DEFAULT_DELAY_LEVELS,
};
#[cfg(not(target_arch = "wasm32"))]
pub use consumer::listener::{listen, ListenOptions, Listener, Outcome, Runner, Source};
pub use consumer::pop::SimpleConsumer;
pub use consumer::wait::{Receive, Receiving};
pub use error::{Error, ErrorKind, Result};
pub use filter::{check_filter, check_sql, MessageSelector};
pub use message::{Delay, Message, MessageBuilder, MessageExt, Receipt, SendResult, SendStatus};
pub use runtime::{add_entropy, set_process_id};
pub use schedule::recall::RecallHandle;
pub use stats::{GroupStats, QueueStats, Stats, TopicInfo, TopicStats};
pub use store::host::HostFs;
pub use topic::{is_system_topic, validate_group};
pub use transaction::{Begun, TransactionListener, TransactionProducer, TxId, TxState};
