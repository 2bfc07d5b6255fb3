//! A broker inherited by a forked child: every call there fails with `Closed` (its
//! message says to open a new Broker in the child), at once, even while a parent
//! thread held the engine's lock at the fork; the child writes nothing, and the
//! parent's acknowledged messages stay exactly as they were.

#![allow(clippy::disallowed_methods)] // a sender thread, real time

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use pocketmq::{Broker, BrokerConfig, ErrorKind, FlushMode, Message};

/// What the child does with the inherited broker: every call is `Closed`.
fn in_child(b: &Broker) -> bool {
    let closed = |r: pocketmq::Result<()>| match r {
        Err(e) => e.kind() == ErrorKind::Closed && e.to_string().contains("new Broker"),
        Ok(()) => false,
    };
    let p = b.producer("p");
    let c = b.consumer(pocketmq::ConsumerConfig::new("g", "t"));
    let mut ok = matches!(&p, Err(e) if e.kind() == ErrorKind::Closed)
        && matches!(&c, Err(e) if e.kind() == ErrorKind::Closed);
    ok &= closed(b.create_topic("t", 2));
    ok &= closed(b.get("00000000000000000000000000000000").map(|_| ()));
    ok &= closed(b.tick());
    ok &= closed(b.flush());
    ok &= closed(b.stats().map(|_| ()));
    ok &= closed(b.close());
    ok
}

/// The child-process half: opens a store, sends, forks (with a sender thread busy
/// when `POCKETMQ_FORK_BUSY` is set) and reports what the child saw.
#[test]
fn fork_child() {
    let Ok(dir) = std::env::var("POCKETMQ_FORK_DIR") else {
        return;
    };
    let busy = std::env::var("POCKETMQ_FORK_BUSY").is_ok();
    let b = Broker::open(BrokerConfig {
        flush: FlushMode::Sync,
        ..BrokerConfig::at(&dir)
    })
    .unwrap();
    let p = b.producer("p").unwrap();
    let sent: Vec<(String, String)> = (0..50)
        .map(|i| {
            let body = format!("parent-{i}");
            (
                p.send(Message::new("t", body.clone())).unwrap().msg_id,
                body,
            )
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = busy.then(|| {
        let (b, stop) = (b.clone(), stop.clone());
        std::thread::spawn(move || {
            let p = b.producer("p").unwrap();
            while !stop.load(Ordering::Relaxed) {
                p.send(Message::new("busy", "x")).unwrap();
            }
        })
    });
    for round in 0..20 {
        if busy {
            std::thread::sleep(Duration::from_millis(3));
        }
        // SAFETY: fork; the child only runs `in_child` and exits with _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let ok = in_child(&b);
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(if ok { 0 } else { 3 }) };
        }
        let mut status = 0;
        let mut waited = Duration::ZERO;
        loop {
            // SAFETY: waits for the child just forked.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                break;
            }
            assert!(
                waited < Duration::from_secs(20),
                "round {round}: the child hangs"
            );
            std::thread::sleep(Duration::from_millis(10));
            waited += Duration::from_millis(10);
        }
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "round {round}: the child saw a working broker (status {status})"
        );
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(s) = sender {
        s.join().unwrap();
    }
    // The parent's messages are untouched, and it goes on working.
    for (id, body) in &sent {
        let m = b.get(id).unwrap().unwrap();
        assert_eq!(m.body_str(), Some(body.as_str()));
    }
    p.send(Message::new("t", "after")).unwrap();
    b.close().unwrap();
    println!("FORK-OK");
}

#[test]
fn a_forked_child_gets_closed_and_never_writes_or_hangs() {
    for busy in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["fork_child", "--exact", "--nocapture", "--test-threads=1"])
            .env("POCKETMQ_FORK_DIR", dir.path());
        if busy {
            cmd.env("POCKETMQ_FORK_BUSY", "1");
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("FORK-OK"),
            "busy={busy}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Reopened, the store holds the parent's messages only.
        let b = Broker::open(BrokerConfig {
            background: false,
            ..BrokerConfig::at(dir.path())
        })
        .unwrap();
        let got = bodies(&drain(&consumer(&b, "check", "t")));
        assert_eq!(got.len(), 51, "busy={busy}");
        assert!(got.iter().all(|b| b.starts_with("parent-") || b == "after"));
    }
}
