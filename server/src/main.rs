//! `pocketmq-serve`: a pocketmq store served over Apache RocketMQ 5's gRPC protocol.
//! The flags are `pocketmq_server::cli`'s (see `HELP` there).
//!
//! Listens on 127.0.0.1 unless told otherwise. SIGTERM or Ctrl-C drains calls in
//! flight, flushes and closes the store. Logs are `key=value` lines on stderr; one line
//! `pocketmq-serve listening on <addr>` goes to stdout once the port is open.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;

use pocketmq_server::cli::{self, Command};

/// What a stop signal completes.
type Stop = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Installs the SIGINT and SIGTERM handlers now, before the store opens (it must run
/// inside the runtime), and returns what completes at the first of them: from here on
/// either one stops the server gracefully, also one that comes while the store opens
/// or right after the listening line.
fn stop_signal() -> Stop {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            return Box::pin(async move {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            });
        }
    }
    Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

fn main() -> ExitCode {
    let serve = match cli::parse(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            println!("{}", cli::help("pocketmq-serve"));
            return ExitCode::SUCCESS;
        }
        Ok(Command::Serve(s)) => s,
        Err(e) => {
            eprintln!("pocketmq-serve: {e}\n{}", cli::usage("pocketmq-serve"));
            return ExitCode::from(2);
        }
    };
    if let Err(e) = cli::init_logging(serve.log_level.as_deref()) {
        eprintln!("pocketmq-serve: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pocketmq-serve: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = {
        let _in_runtime = runtime.enter();
        stop_signal()
    };
    let result = runtime.block_on(cli::run(*serve, stop));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("event=failed error={:?}", e.message);
            eprintln!("pocketmq-serve: {e}");
            ExitCode::from(e.exit)
        }
    }
}
