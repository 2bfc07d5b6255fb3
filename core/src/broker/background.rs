//! Background work: on native targets one thread runs a step every few ms (due
//! delays, timers, checks, retention), and at real-time intervals flushes the store
//! (`async` mode), persists changed metadata, samples rates and trims the resident
//! set, and appends simple consumers' buffered changes to the revive log. On wasm
//! the JS host calls `tick`, which runs the same work.

use std::time::Duration;

use super::Broker;
use crate::runtime::Ticker;
use crate::{FlushMode, Result};

pub(super) struct Periodic {
    flush: Ticker,
    persist: Ticker,
    /// Persists delay and timer cursors soon after deliveries moved them.
    progress: Ticker,
    release: Ticker,
    revive: Ticker,
    /// When (broker clock, ms) the async-mode flush last finished its syncs itself.
    thorough_at: Option<u64>,
}

impl Periodic {
    pub(super) fn new() -> Periodic {
        Periodic {
            flush: Ticker::new(),
            persist: Ticker::new(),
            progress: Ticker::new(),
            release: Ticker::new(),
            revive: Ticker::new(),
            thorough_at: None,
        }
    }

    /// Whether the async-mode flush at `now` is to be thorough: finish its syncs
    /// rather than leave them under way (see `THOROUGH_FLUSH`).
    fn thorough(&mut self, now: u64) -> bool {
        let at = *self.thorough_at.get_or_insert(now);
        let due = now.saturating_sub(at) >= THOROUGH_FLUSH.as_millis() as u64;
        if due {
            self.thorough_at = Some(now);
        }
        due
    }
}

/// How often an async-mode flush that may leave its syncs under way (Node's file
/// store: `Region::flush_later`) finishes them itself, so the checkpoint (which
/// vouches only for durable bytes) moves on and recovery after a crash checks at
/// most this long a tail, even when no consumer's acks force a complete flush.
/// RocketMQ's `flushCommitLogThoroughInterval` (10 s) plays this part there.
const THOROUGH_FLUSH: Duration = Duration::from_secs(10);

/// How often simple consumers' buffered changes go to the revive log.
const REVIVE_INTERVAL: Duration = Duration::from_millis(100);

/// How soon after delayed messages were delivered their cursors are persisted (the
/// rest of the metadata: once a second). A crash in between delivers them again.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(50);

/// Starts the broker's background thread; it ends once the broker closes or drops.
#[cfg(not(target_arch = "wasm32"))]
pub(super) fn start(broker: &Broker) {
    let weak = std::sync::Arc::downgrade(&broker.inner);
    crate::runtime::spawn_worker(
        "pocketmq-steps",
        crate::runtime::STEP_PERIOD,
        move || match weak.upgrade() {
            Some(inner) if !inner.closed.load(std::sync::atomic::Ordering::Acquire) => {
                let _ = Broker { inner }.background_step();
                true
            }
            _ => false,
        },
    );
}

impl Broker {
    /// The periodic work of the background thread.
    #[cfg(not(target_arch = "wasm32"))]
    fn background_step(&self) -> Result<()> {
        let checks = {
            let mut e = self.inner.engine.lock();
            if e.closed {
                return Ok(());
            }
            let checks = e.run_due_if_needed(self.now())?;
            if self.now() >= e.next_due {
                e.next_due = 0;
            }
            // Retention keeps its own schedule, due work or none.
            let now = self.now();
            e.retention_if_due(now)?;
            self.wake(e);
            checks
        };
        self.run_checks(checks)?;
        self.periodic_work()
    }

    /// Flushing (async mode), metadata persistence, rate samples and resident-set
    /// trimming, each at its real-time interval.
    pub(super) fn periodic_work(&self) -> Result<()> {
        self.check_process()?;
        let (flush, persist, release, revive, progress) = {
            let mut p = self.inner.periodic.lock();
            let interval = Duration::from_millis(self.inner.config.flush_interval_ms.max(1));
            (
                p.flush.due(interval),
                p.persist.due(Duration::from_secs(1)),
                p.release.due(Duration::from_secs(1)),
                p.revive.due(REVIVE_INTERVAL),
                p.progress.due(PROGRESS_INTERVAL),
            )
        };
        // The engine's lock is taken for the flag only when its interval is up.
        let persist = persist || (progress && self.inner.engine.lock().delays_delivered);
        if revive {
            let now = self.now();
            let mut e = self.inner.engine.lock();
            if !e.closed {
                e.flush_revive(now)?;
            }
        }
        if flush && self.inner.config.flush == FlushMode::Async {
            let thorough = self.inner.periodic.lock().thorough(self.now());
            self.flush_all_as(!thorough)?;
        }
        if persist {
            self.inner.engine.lock().check_disk();
            self.persist_metadata()?;
        }
        if release {
            self.inner.engine.lock().store.commitlog.release_sealed();
        }
        Ok(())
    }

    /// Writes the metadata that changed (outside the lock), and samples rates.
    /// Progress (delay cursors, timer and transaction checkpoints, offsets) never
    /// runs ahead of what is durable: the records it accounts for (delivered copies,
    /// retries, op records) are flushed before it is written.
    pub(crate) fn persist_metadata(&self) -> Result<()> {
        self.check_process()?;
        let _meta = self.inner.metadata.lock();
        let now = self.now();
        let (files, backend, end) = {
            let mut e = self.inner.engine.lock();
            e.sample(now);
            e.delays_delivered = false;
            if !e.store.backend.is_persistent() {
                return Ok(());
            }
            let end = e.store.commitlog.end();
            (e.metadata(now, false)?, e.store.backend.clone(), end)
        };
        if files.is_empty() {
            return Ok(());
        }
        if self.inner.config.flush != FlushMode::None && self.inner.group_commit.durable() < end {
            self.flush_all()?;
        }
        for (name, bytes) in files {
            backend.write_meta(name, &bytes)?;
        }
        Ok(())
    }

    /// Flushes the CommitLog and every ConsumeQueue, outside the lock.
    pub(crate) fn flush_all(&self) -> Result<()> {
        self.flush_all_as(false)
    }

    /// `flush_all`; `later` (the async-mode flush) lets the backend leave its syncs
    /// under way (a host whose one thread should not wait on the disk: Node). The
    /// data is then written out, which a killed process does not lose, but counts as
    /// durable only once a flush without `later` (explicit, before metadata, close)
    /// has finished those syncs.
    pub(crate) fn flush_all_as(&self, later: bool) -> Result<()> {
        self.check_process()?;
        let _one = self.inner.group_commit.exclusive();
        // (Syncs left under way change only under `exclusive`, as here.)
        let (log_job, cq_jobs, under_way, backend) = {
            let e = self.inner.engine.lock();
            let (log_job, cq_jobs) = e.flush_jobs();
            let under_way = e.store.commitlog.syncs_under_way();
            (log_job, cq_jobs, under_way, e.store.backend.clone())
        };
        let durable = if later {
            let mut synced = log_job.run_later()?;
            for (_, _, j) in &cq_jobs {
                synced &= j.run_later()?;
            }
            synced && !under_way
        } else {
            log_job.run()?;
            for (_, _, j) in &cq_jobs {
                j.run()?;
            }
            if under_way {
                backend.sync_pending()?;
            }
            true
        };
        if durable {
            self.inner.group_commit.mark_durable(log_job.upto);
        }
        let mut e = self.inner.engine.lock();
        e.flushed(log_job.upto, cq_jobs, durable);
        e.arrived = true;
        self.notify(e);
        Ok(())
    }
}
