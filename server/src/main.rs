//! `pocketmq-serve`: a pocketmq store served over Apache RocketMQ 5's gRPC protocol.
//! The flags are `pocketmq_server::cli`'s (see `HELP` there).
//!
//! Listens on 127.0.0.1 unless told otherwise. SIGTERM or Ctrl-C drains calls in
//! flight, flushes and closes the store. Logs are `key=value` lines on stderr; one line
//! `pocketmq-serve listening on <addr>` goes to stdout once the port is open.

use std::process::ExitCode;

use pocketmq_server::cli::{self, Command};

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
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
    let result = runtime.block_on(cli::run(*serve, stop_signal()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("event=failed error={:?}", e.message);
            eprintln!("pocketmq-serve: {e}");
            ExitCode::from(e.exit)
        }
    }
}
