//! The broker's own lifecycle: group commit's view of the log, the fork check,
//! and close (flush, metadata, checkpoint, unlock).

use super::*;

/// What group commit needs of the CommitLog, each under the engine's lock.
impl Log for Broker {
    fn flush_job(&self) -> FlushJob {
        self.inner.engine.lock().store.commitlog.flush_job()
    }
    fn flushed(&self, upto: u64) {
        let mut e = self.inner.engine.lock();
        e.store.commitlog.flushed_to(upto, true);
        // Under `sync`, consumers see only durable data: what just became durable.
        e.arrived = true;
        self.notify(e);
    }
}

impl Inner {
    pub(super) fn check_process(&self) -> Result<()> {
        if crate::runtime::process_generation() != self.generation {
            return Err(Error::Forked {
                owner: self.owner_pid,
            });
        }
        Ok(())
    }

    pub(super) fn close(&self) -> Result<()> {
        if self.check_process().is_err() {
            // A forked child's copy: the store is the parent's. Nothing is
            // flushed, written or unlocked from here.
            return Ok(());
        }
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let _meta = self.metadata.lock();
        let _one = self.group_commit.exclusive();
        let mut e = self.engine.lock();
        let waiters = std::mem::take(&mut e.waiters);
        let result = e.close(self.config.clock.now_ms());
        drop(e);
        self.arrived.notify_all();
        for w in waiters {
            w();
        }
        result
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
