//! The `pocketmq-serve` binary stopped by a signal, as a supervisor (systemd, docker,
//! a test harness) stops it: SIGTERM as Ctrl-C, at any moment once it said it listens.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use common::*;
use pocketmq::{Broker, BrokerConfig};
use pocketmq_server::proto::Code;

/// The server on `store` and a free port, once it printed its listening line.
fn start(store: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pocketmq-serve"))
        .arg(store)
        .args(["--listen", "127.0.0.1:0", "--log-level", "warn"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("pocketmq-serve listening on ")
        .unwrap_or_else(|| panic!("the listening line, got {line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on the pid of a child not waited for yet.
    let r = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(r, 0, "kill");
}

/// The child's exit, within 5 s.
async fn exit_of(mut child: Child) -> ExitStatus {
    for _ in 0..250 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    panic!("the server did not exit within 5 s");
}

/// The mark an open store keeps, which only a clean close removes.
fn closed_cleanly(store: &Path) -> bool {
    !store.join("abort").exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_flushes_and_exits_as_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    for (sig, body) in [(libc::SIGTERM, "before term"), (libc::SIGINT, "before int")] {
        let (child, addr) = start(dir.path());
        let mut client = connect(addr).await;
        let r = send(
            &mut client,
            message("orders", body.as_bytes(), &message_id(1)),
        )
        .await;
        assert_eq!(code(&r.status), Code::Ok);
        signal(&child, sig);
        let status = exit_of(child).await;
        assert_eq!(status.code(), Some(0), "signal {sig}: {status}");
        assert!(closed_cleanly(dir.path()), "signal {sig}");
    }
    let broker = Broker::open(BrokerConfig::at(dir.path())).unwrap();
    let mut bodies: Vec<_> = stored(&broker, "orders")
        .iter()
        .map(|m| m.body_str().unwrap().to_string())
        .collect();
    bodies.sort();
    assert_eq!(bodies, ["before int", "before term"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_right_after_the_listening_line_still_stops_gracefully() {
    // A supervisor may signal as soon as the server says it listens.
    let dir = tempfile::tempdir().unwrap();
    for round in 0..6 {
        let sig = if round % 2 == 0 {
            libc::SIGTERM
        } else {
            libc::SIGINT
        };
        let (child, _) = start(dir.path());
        signal(&child, sig);
        let status = exit_of(child).await;
        assert_eq!(status.code(), Some(0), "round {round}: {status}");
        assert!(closed_cleanly(dir.path()), "round {round}");
    }
}
