//! Group commit: making the CommitLog durable for `flush="sync"` senders, one sync
//! for as many of them as possible (RocketMQ's GroupCommitService).
//!
//! The durable watermark is the CommitLog offset below which everything is on disk;
//! a sync sender waits until it covers its record. One waiter at a time becomes the
//! flusher for everything appended so far; the others wait on a condvar and all wake
//! together when it is done, usually finding their data covered. Before it syncs,
//! the flusher lets the writers that were just woken append again: it waits (at
//! most `GROUP_COMMIT_WAIT`) until as many senders have come since the last sync
//! began as that sync took, counting them without the engine's lock. With a few
//! writers each sending one message at a time, a sync that started at once would
//! cover only those that came during the last one: about half of them.
//!
//! The flusher never holds the engine's lock while it syncs: it takes a flush job
//! under the lock (through [`Log`]) and runs it outside. The watermark only grows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::runtime::Deadline;
use crate::store::FlushJob;
use crate::Result;

/// Longest a sync flush waits for more writers to join it.
const GROUP_COMMIT_WAIT: Duration = Duration::from_micros(200);

/// What a flush needs of the log, each call taking the engine's lock briefly.
pub(crate) trait Log {
    /// A job that makes everything appended so far durable.
    fn flush_job(&self) -> FlushJob;
    /// Records that a job finished up to `upto` (and wakes whoever waits for data).
    fn flushed(&self, upto: u64);
}

pub(crate) struct GroupCommit {
    /// CommitLog offset below which everything is durable.
    durable: AtomicU64,
    /// Senders that started waiting, ever.
    arrivals: AtomicU64,
    /// `arrivals` when the last sync took its job.
    taken: AtomicU64,
    /// Senders that came for the last sync.
    last_group: AtomicU64,
    /// Whether a sync flush is running; `synced` signals its end.
    flushing: Mutex<bool>,
    synced: Condvar,
    /// Serialises whole-store flushes (the async flush and close).
    one_at_a_time: Mutex<()>,
}

impl GroupCommit {
    /// A watermark at `end` (what recovery found is on disk).
    pub fn new(end: u64) -> GroupCommit {
        GroupCommit {
            durable: AtomicU64::new(end),
            arrivals: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            last_group: AtomicU64::new(0),
            flushing: Mutex::new(false),
            synced: Condvar::new(),
            one_at_a_time: Mutex::new(()),
        }
    }

    /// Everything below this CommitLog offset is durable.
    pub fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Raises the watermark after a flush that ran elsewhere.
    pub fn mark_durable(&self, upto: u64) {
        self.durable.fetch_max(upto, Ordering::AcqRel);
    }

    /// Held by a whole-store flush (the async flusher, close): one at a time.
    pub fn exclusive(&self) -> MutexGuard<'_, ()> {
        self.one_at_a_time.lock()
    }

    /// Waits until the log is durable up to `end`, flushing (for everyone waiting)
    /// when no flush is running. False when `timeout` passed first.
    pub fn wait_durable(&self, end: u64, timeout: Duration, log: &impl Log) -> Result<bool> {
        if self.durable() >= end {
            return Ok(true);
        }
        self.arrivals.fetch_add(1, Ordering::AcqRel);
        let deadline = Deadline::after(timeout);
        let mut flushing = self.flushing.lock();
        loop {
            if self.durable() >= end {
                return Ok(true);
            }
            if !*flushing {
                *flushing = true;
                drop(flushing);
                let flushed = self.flush(log);
                flushing = self.flushing.lock();
                *flushing = false;
                self.synced.notify_all();
                flushed?;
                continue;
            }
            if !deadline.wait(&self.synced, &mut flushing) {
                return Ok(self.durable() >= end);
            }
        }
    }

    /// Syncs the log up to its end, once as many senders came since the last sync
    /// took its job as came for it (the writers it woke, appending again), or
    /// `GROUP_COMMIT_WAIT` passed.
    fn flush(&self, log: &impl Log) -> Result<()> {
        let deadline = Deadline::after(GROUP_COMMIT_WAIT);
        let since = self.taken.load(Ordering::Acquire);
        let want = self.last_group.load(Ordering::Acquire);
        while self.arrivals.load(Ordering::Acquire) - since < want && !deadline.is_past() {
            crate::runtime::yield_now();
        }
        let now = self.arrivals.load(Ordering::Acquire);
        self.taken.store(now, Ordering::Release);
        self.last_group.store(now - since, Ordering::Release);
        let job = log.flush_job();
        job.run()?;
        self.mark_durable(job.upto);
        log.flushed(job.upto);
        Ok(())
    }
}
