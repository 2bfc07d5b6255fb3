//! A file store of many queues under a small open-file limit: each queue's
//! ConsumeQueue is a mapped file, and a mapping needs no open descriptor, so the
//! number of queues a store holds is not bounded by the process's limit (1,024 by
//! default on Linux, where RocketMQ asks its operators to raise it).

mod common;

use std::time::Duration;

use common::T0;
use pocketmq::{ManualClock, Message};

const TOPICS: usize = 30;
const QUEUES: u32 = 4;
/// Far fewer than the store's queues (120) and their files.
const OPEN_FILES: u64 = 64;

/// The child half: under the small limit, fills a queue of each of 120, reads them
/// back, flushes, closes, reopens and reads them again.
#[test]
fn many_queues_child() {
    let Ok(dir) = std::env::var("POCKETMQ_MANY_QUEUES_DIR") else {
        return;
    };
    let limit = libc::rlimit {
        rlim_cur: OPEN_FILES,
        rlim_max: OPEN_FILES,
    };
    // SAFETY: setrlimit with a valid struct; this process is the test's own child.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let dir = std::path::Path::new(&dir);
    let clock = ManualClock::new(T0);
    {
        let b = common::file(dir, &clock);
        let p = b.producer("p").unwrap();
        for t in 0..TOPICS {
            b.create_topic(&format!("topic-{t}"), QUEUES).unwrap();
            for q in 0..QUEUES {
                p.send(
                    Message::builder(format!("topic-{t}"), format!("{t}/{q}"))
                        .queue_id(q)
                        .build(),
                )
                .unwrap();
            }
        }
        b.flush().unwrap();
        for t in 0..TOPICS {
            assert_eq!(
                b.browse(&format!("topic-{t}"), None, None, 10)
                    .unwrap()
                    .len(),
                4
            );
        }
        b.close().unwrap();
    }
    let b = common::file(dir, &clock);
    for t in 0..TOPICS {
        let c = common::consumer(&b, "g", &format!("topic-{t}"));
        let mut got = common::bodies(&c.receive(16, Duration::ZERO).unwrap());
        got.sort();
        let want: Vec<String> = (0..QUEUES).map(|q| format!("{t}/{q}")).collect();
        assert_eq!(got, want);
        c.close().unwrap();
    }
    b.close().unwrap();
    println!("many-queues-done");
}

#[test]
fn a_store_of_more_queues_than_open_files_allowed_works_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "many_queues_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("POCKETMQ_MANY_QUEUES_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("many-queues-done"),
        "the child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
