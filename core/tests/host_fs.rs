//! The host backend (the file store of wasm hosts such as Node) driven through a
//! `HostFs` over std::fs: data, offsets and delays survive a reopen; the lock holds.

mod common;

use std::collections::HashSet;
use std::fs;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use common::*;
use pocketmq::{Broker, BrokerConfig, FlushMode, HostFs, ManualClock, Message};

#[derive(Debug)]
struct StdFs {
    root: PathBuf,
    locks: Arc<Mutex<HashSet<PathBuf>>>,
    /// When set, `sync_later` leaves its syncs under way, as Node's host does.
    later: Option<Arc<Mutex<Later>>>,
}

/// What a host that syncs in the background was asked.
#[derive(Debug, Default)]
struct Later {
    /// Files whose sync `sync_later` left under way.
    under_way: HashSet<String>,
    /// Blocking syncs (`sync`), and `sync_pending` calls that had work.
    syncs: usize,
    finished: usize,
    /// The next `sync_pending` fails (a background sync that failed).
    fail: bool,
}

impl HostFs for StdFs {
    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.root.join(path)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
    fn write_at(&self, path: &str, offset: u64, data: &[u8]) -> io::Result<()> {
        let p = self.root.join(path);
        fs::create_dir_all(p.parent().unwrap())?;
        let mut f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(p)?;
        f.seek(SeekFrom::Start(offset))?;
        f.write_all(data)
    }
    fn set_len(&self, path: &str, len: u64) -> io::Result<()> {
        let p = self.root.join(path);
        fs::create_dir_all(p.parent().unwrap())?;
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(p)?
            .set_len(len)
    }
    fn sync(&self, path: &str) -> io::Result<()> {
        if let Some(l) = &self.later {
            l.lock().unwrap().syncs += 1;
        }
        fs::File::open(self.root.join(path))?.sync_all()
    }
    fn sync_later(&self, path: &str) -> io::Result<bool> {
        match &self.later {
            Some(l) => {
                l.lock().unwrap().under_way.insert(path.to_string());
                Ok(false)
            }
            None => self.sync(path).map(|()| true),
        }
    }
    fn sync_pending(&self) -> io::Result<()> {
        let Some(l) = &self.later else { return Ok(()) };
        let mut l = l.lock().unwrap();
        if std::mem::take(&mut l.fail) {
            return Err(io::Error::other("background sync failed"));
        }
        for path in std::mem::take(&mut l.under_way) {
            fs::File::open(self.root.join(&path))?.sync_all()?;
            l.finished += 1;
        }
        Ok(())
    }
    fn replace(&self, path: &str, data: &[u8]) -> io::Result<()> {
        let p = self.root.join(path);
        fs::create_dir_all(p.parent().unwrap())?;
        let tmp = p.with_extension("tmp");
        fs::write(&tmp, data)?;
        fs::rename(tmp, p)
    }
    fn list(&self, dir: &str) -> io::Result<Vec<(String, bool)>> {
        match fs::read_dir(self.root.join(dir)) {
            Ok(entries) => entries
                .map(|e| {
                    let e = e?;
                    Ok((
                        e.file_name().into_string().unwrap(),
                        e.file_type()?.is_dir(),
                    ))
                })
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
    fn remove(&self, path: &str) -> io::Result<()> {
        let p = self.root.join(path);
        let r = if p.is_dir() {
            fs::remove_dir_all(p)
        } else {
            fs::remove_file(p)
        };
        match r {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
    fn lock(&self) -> Result<(), u32> {
        if self.locks.lock().unwrap().insert(self.root.clone()) {
            Ok(())
        } else {
            Err(4242)
        }
    }
    fn unlock(&self) {
        self.locks.lock().unwrap().remove(&self.root);
    }
}

fn open(
    root: &std::path::Path,
    locks: &Arc<Mutex<HashSet<PathBuf>>>,
    clock: &ManualClock,
    flush: FlushMode,
) -> pocketmq::Result<Broker> {
    Broker::open(BrokerConfig {
        host_fs: Some(Arc::new(StdFs {
            root: root.to_path_buf(),
            locks: locks.clone(),
            later: None,
        })),
        clock: Arc::new(clock.clone()),
        background: false,
        flush,
        segment_size: Some(64 * 1024),
        ..BrokerConfig::at(root)
    })
}

/// An async-mode store over a host that syncs in the background, flushing at every tick.
fn open_later(root: &std::path::Path, later: &Arc<Mutex<Later>>, clock: &ManualClock) -> Broker {
    Broker::open(BrokerConfig {
        host_fs: Some(Arc::new(StdFs {
            root: root.to_path_buf(),
            locks: Arc::default(),
            later: Some(later.clone()),
        })),
        clock: Arc::new(clock.clone()),
        background: false,
        flush: FlushMode::Async,
        flush_interval_ms: 0,
        segment_size: Some(64 * 1024),
        ..BrokerConfig::at(root)
    })
    .unwrap()
}

/// The bytes of the store's commit log files, in order.
fn commitlog_bytes(root: &std::path::Path) -> Vec<u8> {
    let mut segs: Vec<_> = fs::read_dir(root.join("commitlog"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    segs.iter().flat_map(|p| fs::read(p).unwrap()).collect()
}

#[test]
fn the_async_flush_writes_at_once_and_leaves_its_syncs_to_the_host_until_something_depends_on_them()
{
    let dir = tempfile::tempdir().unwrap();
    let later = Arc::new(Mutex::new(Later::default()));
    let clock = ManualClock::new(T0);
    let b = open_later(dir.path(), &later, &clock);
    b.create_topic("t", 1).unwrap();
    let p = b.producer("p").unwrap();
    p.send(Message::new("t", "first-body")).unwrap();
    let syncs = later.lock().unwrap().syncs;
    std::thread::sleep(std::time::Duration::from_millis(5));
    b.tick().unwrap();
    {
        let l = later.lock().unwrap();
        // The periodic flush wrote the record out (a killed process keeps it) and
        // left the sync under way: no blocking sync on this thread.
        assert!(l.under_way.iter().any(|p| p.starts_with("commitlog/")));
        assert_eq!(l.syncs, syncs, "the periodic flush never blocks on a sync");
    }
    let log = commitlog_bytes(dir.path());
    assert!(log.windows(10).any(|w| w == b"first-body"));

    // Every 10 s (the broker's clock) a periodic flush finishes its syncs itself, so
    // the checkpoint can move on even when nothing else asks for a complete flush.
    clock.advance_ms(9_000);
    std::thread::sleep(std::time::Duration::from_millis(5));
    b.tick().unwrap();
    assert!(!later.lock().unwrap().under_way.is_empty(), "not yet");
    clock.advance_ms(1_000);
    std::thread::sleep(std::time::Duration::from_millis(5));
    b.tick().unwrap();
    assert!(later.lock().unwrap().under_way.is_empty(), "thorough");

    // An explicit flush makes it durable: the syncs left under way are finished.
    b.flush().unwrap();
    {
        let l = later.lock().unwrap();
        assert!(l.under_way.is_empty());
        assert!(l.finished >= 1);
    }

    // A background sync that failed is reported by the next flush, which is then
    // retried: the store stays open and its data intact.
    p.send(Message::new("t", "second-body")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    b.tick().unwrap();
    later.lock().unwrap().fail = true;
    assert!(b.flush().is_err());
    b.flush().unwrap();
    assert!(later.lock().unwrap().under_way.is_empty());

    // Close finishes what the last periodic flush left under way before its
    // checkpoint vouches for the data.
    p.send(Message::new("t", "third-body")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    b.tick().unwrap();
    assert!(!later.lock().unwrap().under_way.is_empty());
    b.close().unwrap();
    assert!(later.lock().unwrap().under_way.is_empty());

    let b = open_later(dir.path(), &later, &clock);
    let c = consumer(&b, "g", "t");
    assert_eq!(
        bodies(&drain(&c)),
        vec!["first-body", "second-body", "third-body"]
    );
    b.close().unwrap();
}

#[test]
fn a_host_file_store_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let locks = Arc::default();
    let clock = ManualClock::new(T0);
    let sent = {
        let b = open(dir.path(), &locks, &clock, FlushMode::Async).unwrap();
        assert!(matches!(
            open(dir.path(), &locks, &clock, FlushMode::Async),
            Err(pocketmq::Error::StoreLocked { pid: 4242, .. })
        ));
        b.create_topic("t", 1).unwrap();
        let p = b.producer("p").unwrap();
        let c = consumer(&b, "g", "t");
        let mut ids = Vec::new();
        for i in 0..300 {
            ids.push(
                p.send(
                    Message::builder("t", format!("m{i}-{}", "x".repeat(400)))
                        .key(format!("k{i}"))
                        .build(),
                )
                .unwrap()
                .msg_id,
            );
        }
        p.send(Message::builder("t", "later").delay_level(3).build())
            .unwrap();
        for m in drain(&c).iter().take(100) {
            c.ack(m).unwrap();
        }
        b.close().unwrap();
        ids
    };
    assert!(fs::read_dir(dir.path().join("commitlog")).unwrap().count() > 1);
    let b = open(dir.path(), &locks, &clock, FlushMode::Sync).unwrap();
    assert_eq!(b.get(&sent[7]).unwrap().unwrap().keys, vec!["k7"]);
    assert_eq!(b.query("t", "k250").unwrap().len(), 1);
    let c = consumer(&b, "g", "t");
    let rest = drain(&c);
    assert_eq!(rest.len(), 200);
    assert!(rest[0].body_str().unwrap().starts_with("m100-"));
    clock.advance_ms(10_000);
    b.tick().unwrap();
    assert_eq!(bodies(&drain(&c)), vec!["later"]);
    let r = b
        .producer("p")
        .unwrap()
        .send(Message::new("t", "synced"))
        .unwrap();
    assert_eq!(r.status, pocketmq::SendStatus::SendOk);
    // A sync send is on disk before close.
    let seg = fs::read_dir(dir.path().join("commitlog"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let data = fs::read(seg).unwrap();
    assert!(data.windows(6).any(|w| w == b"synced"));
    b.close().unwrap();
}

/// The sizes of a queue's ConsumeQueue files, in order.
fn cq_file_sizes(root: &std::path::Path, topic: &str) -> Vec<u64> {
    let mut files: Vec<_> = fs::read_dir(root.join("consumequeue").join(topic).join("0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .collect()
}

/// A host (Node's file store) holds every segment in memory whole, so a queue's
/// ConsumeQueue segments there are small: 16,384 entries (327,680 bytes), where a
/// native file store's are RocketMQ's 300,000 (6,000,000 bytes, given disk blocks as
/// they fill). With 6 MB a queue, a Node process ran out of its 3 GiB of segments at
/// about 500 queues. Either kind of process opens the other's store, each queue
/// keeping the segment size its files were made with.
#[test]
fn host_queues_have_small_segments_and_a_native_process_opens_them() {
    let dir = tempfile::tempdir().unwrap();
    let locks = Arc::default();
    let clock = ManualClock::new(T0);
    let body = |i: u32| format!("m{i}");
    let send_range = |b: &Broker, topic: &str, from: u32, to: u32| {
        let p = b.producer("p").unwrap();
        for i in from..to {
            p.send(Message::new(topic, body(i))).unwrap();
        }
    };
    let expect_range = |c: &pocketmq::Consumer, from: u32, to: u32| {
        let got = drain(c);
        let want: Vec<String> = (from..to).map(body).collect();
        assert!(
            bodies(&got) == want,
            "{} messages, expected {}",
            got.len(),
            to - from
        );
        for m in &got {
            c.ack(m).unwrap();
        }
    };

    // Written by a host: two small segments.
    let b = open(dir.path(), &locks, &clock, FlushMode::Async).unwrap();
    b.create_topic("t", 1).unwrap();
    send_range(&b, "t", 0, 20_000);
    b.close().unwrap();
    assert_eq!(cq_file_sizes(dir.path(), "t"), vec![327_680; 2]);

    // A native process reads them, appends into them, and makes its own new queues.
    let native = Broker::open(BrokerConfig {
        clock: Arc::new(clock.clone()),
        background: false,
        ..BrokerConfig::at(dir.path())
    })
    .unwrap();
    expect_range(&consumer(&native, "g", "t"), 0, 20_000);
    send_range(&native, "t", 20_000, 35_000);
    native.create_topic("n", 1).unwrap();
    send_range(&native, "n", 0, 3);
    native.close().unwrap();
    assert_eq!(cq_file_sizes(dir.path(), "t"), vec![327_680; 3]);
    assert_eq!(cq_file_sizes(dir.path(), "n"), vec![6_000_000]);

    // And the host reads both again, each at its own segment size.
    let b = open(dir.path(), &locks, &clock, FlushMode::Async).unwrap();
    expect_range(&consumer(&b, "g", "t"), 20_000, 35_000);
    expect_range(&consumer(&b, "g", "n"), 0, 3);
    send_range(&b, "n", 3, 5);
    expect_range(&consumer(&b, "h", "n"), 0, 5);
    b.close().unwrap();
}
