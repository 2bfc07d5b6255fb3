//! `pocketmq serve`: the RocketMQ 5 gRPC server (crate `pocketmq-server`) built into
//! the extension, so `pip install pocketmq` is enough to share a store between
//! processes. The flags are the server's own (`pocketmq_server::cli`); this only runs
//! it on a tokio runtime with the GIL released, and turns Python's signal handling
//! (Ctrl-C, and SIGTERM as `pocketmq.serve` installs it) into the server's graceful
//! stop: drain the calls in flight, flush, close the store.

use std::time::Duration;

use pocketmq_server::cli::{self, Command};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// How often the waiting thread takes the GIL to let Python run its signal handlers.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// Serves a store as the arguments say (those of `pocketmq-serve`); returns the exit
/// status: 0 after a stop by signal, 2 for bad arguments, else the failure's
/// (`pocketmq --help`: 3 a locked store, 5 a damaged one, 6 a refused file
/// operation, 1 anything else).
#[pyfunction]
pub fn serve(py: Python<'_>, argv: Vec<String>) -> PyResult<i32> {
    let s = match cli::parse(argv) {
        Ok(Command::Help) => {
            println!("{}", cli::help("pocketmq serve"));
            return Ok(0);
        }
        Ok(Command::Serve(s)) => s,
        Err(e) => {
            eprintln!("pocketmq serve: {e}\n{}", cli::usage("pocketmq serve"));
            return Ok(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the runtime: {e}")))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut task = runtime.spawn(cli::run(*s, async {
        let _ = stopped.await;
    }));
    let mut stop = Some(stop);
    loop {
        let done = py.detach(|| {
            runtime.block_on(async { tokio::time::timeout(SIGNAL_POLL, &mut task).await.ok() })
        });
        match done {
            Some(Ok(Ok(()))) => return Ok(0),
            Some(Ok(Err(e))) => {
                eprintln!("pocketmq serve: {e}");
                return Ok(i32::from(e.exit));
            }
            Some(Err(e)) => return Err(PyRuntimeError::new_err(format!("the server failed: {e}"))),
            None => {}
        }
        // A signal handler that raised (KeyboardInterrupt): stop gracefully, and keep
        // waiting for the drain (a second signal does not cut it short).
        if py.check_signals().is_err() {
            if let Some(stop) = stop.take() {
                let _ = stop.send(());
            }
        }
    }
}
