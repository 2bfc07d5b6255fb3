//! Group commit: making the CommitLog durable for `flush="sync"` senders, one sync
//! for as many of them as possible (RocketMQ's GroupCommitService).
//!
//! The durable watermark is the CommitLog offset below which everything is on disk;
//! a sync sender waits until it covers its record. One waiter at a time becomes the
//! flusher for everything appended so far; the others park and all wake at once when
//! it is done (not one after another, as a condvar's waiters would, each handing its
//! mutex to the next), usually finding their data covered. Before it syncs,
//! the flusher lets the writers that were just woken append again: it waits (at
//! most `GROUP_COMMIT_WAIT`) until as many senders have come since the last sync
//! began as came from the sync before it to the end of the last one (the ones it
//! took, who append again once woken, and the ones who came while it ran), counting
//! them without the engine's lock. With a few writers each sending one message at a
//! time, a sync that started at once would cover only those that came during the
//! last one: about half of them; one that waited only for as many as the last sync
//! took would leave out as many as came during it, every time.
//!
//! The flusher never holds the engine's lock while it syncs: it takes a flush job
//! under the lock (through [`Log`]) and runs it outside. The watermark only grows.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

use crate::runtime::{Deadline, Waiters};
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
    /// Senders that came from the take before the last sync's to that sync's end.
    last_group: AtomicU64,
    /// Whether a sync flush is running; `waiting` are woken at its end.
    flushing: AtomicBool,
    waiting: Waiters,
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
            flushing: AtomicBool::new(false),
            waiting: Waiters::default(),
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
        loop {
            if self.durable() >= end {
                return Ok(true);
            }
            let won =
                self.flushing
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire);
            if won.is_ok() {
                let flushed = self.flush(log);
                self.flushing.store(false, Ordering::Release);
                self.waiting.wake_all();
                flushed?;
                continue;
            }
            let ticket = self.waiting.register();
            // Looked at again once registered: a flush that ended before it woke no
            // one here, and left its watermark (and its flag) for this look to see.
            if self.durable() >= end {
                return Ok(true);
            }
            if !self.flushing.load(Ordering::Acquire) {
                continue;
            }
            if !self.waiting.park(ticket, deadline) {
                return Ok(self.durable() >= end);
            }
        }
    }

    /// Syncs the log up to its end, once as many senders came since the last sync
    /// took its job as were active around it (see the module docs), or
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
        let job = log.flush_job();
        job.run()?;
        // Everyone who came from the last take to the end of this sync: those it
        // took, who will append again once woken, and those who came while it ran,
        // who wait for the next. The next sync waits for as many.
        let end = self.arrivals.load(Ordering::Acquire);
        self.last_group.store(end - since, Ordering::Release);
        self.mark_durable(job.upto);
        log.flushed(job.upto);
        Ok(())
    }
}
