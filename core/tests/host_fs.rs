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
        fs::File::open(self.root.join(path))?.sync_all()
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
        })),
        clock: Arc::new(clock.clone()),
        background: false,
        flush,
        segment_size: Some(64 * 1024),
        ..BrokerConfig::at(root)
    })
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
