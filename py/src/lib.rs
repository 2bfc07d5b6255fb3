//! `pocketmq._native`: the pyo3 binding over the `pocketmq` engine. Each class is a
//! thin wrapper around a core type; conversions live in `convert`, the error
//! mapping in `errors`. The pure-Python package `pocketmq` re-exports these classes
//! and adds the exceptions, `TxState`, asyncio helpers and the CLI; `serve` runs the
//! RocketMQ 5 gRPC server (`pocketmq serve`), and `remote` is `pocketmq.connect()`,
//! the same API over that protocol. The engine logs
//! through the `log` facade; pyo3-log hands its records to Python's `logging`.

use pyo3::prelude::*;

mod admin;
mod atomic;
mod broker;
mod clock;
mod consumer;
mod convert;
mod errors;
mod listener;
mod message;
mod producer;
mod remote;
mod serve;
mod simple_consumer;
mod transaction;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The engine's log records (recovery, retention, dead letters) go to Python's
    // `logging`, under loggers named after the engine's modules (`pocketmq.*`).
    // Levels are asked of `logging` at each record (they are rare), not cached, so
    // configuring logging after the import takes effect.
    let _ = pyo3_log::Logger::new(m.py(), pyo3_log::Caching::Loggers)?.install();
    m.add_class::<atomic::Atomic>()?;
    m.add_class::<broker::Broker>()?;
    m.add_class::<clock::ManualClock>()?;
    m.add_class::<consumer::Consumer>()?;
    m.add_class::<consumer::PyReceiving>()?;
    m.add_class::<listener::Listener>()?;
    m.add_function(wrap_pyfunction!(listener::_stop_listeners, m)?)?;
    m.add_class::<message::Message>()?;
    m.add_class::<message::SendResult>()?;
    m.add_function(wrap_pyfunction!(message::_message, m)?)?;
    m.add_function(wrap_pyfunction!(message::_send_result, m)?)?;
    m.add_class::<producer::Producer>()?;
    m.add_class::<simple_consumer::SimpleConsumer>()?;
    m.add_class::<transaction::TransactionProducer>()?;
    m.add_class::<transaction::TransactionStep>()?;
    m.add_class::<remote::RemoteBroker>()?;
    m.add_class::<remote::RemoteConsumer>()?;
    m.add_class::<remote::RemoteReceive>()?;
    m.add_class::<remote::RemoteProducer>()?;
    m.add_class::<remote::RemoteSend>()?;
    m.add_class::<remote::RemoteTransactionProducer>()?;
    m.add_function(wrap_pyfunction!(remote::connect, m)?)?;
    m.add_function(wrap_pyfunction!(serve::serve, m)?)?;
    m.add("DEFAULT_DELAY_LEVELS", pocketmq::DEFAULT_DELAY_LEVELS)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
