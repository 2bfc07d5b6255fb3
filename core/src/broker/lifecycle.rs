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
        e.store.commitlog.flushed_to(upto);
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
        let now = self.config.clock.now_ms();
        let result = (|| -> Result<()> {
            e.flush_revive(now)?;
            let job = e.store.commitlog.flush_job();
            job.run()?;
            e.store.commitlog.flushed_to(job.upto);
            for (t, q, j) in e.store.queues.flush_jobs() {
                j.run()?;
                if let Some(cq) = e.store.queues.get_mut(&t, q) {
                    cq.flushed_to(j.upto);
                }
            }
            let written = (|| {
                for (name, bytes) in e.metadata(now, true)? {
                    e.store.backend.write_meta(name, &bytes)?;
                }
                e.store.write_checkpoint()
            })();
            match written {
                // The messages are in the log; what could not be noted down is
                // replayed at the next open (at-least-once, as after a crash).
                Err(Error::DiskFull(why)) => {
                    log::warn!("closing on a full disk: metadata not written ({why})");
                    return Ok(());
                }
                r => r?,
            }
            e.store
                .backend
                .remove_meta(crate::commitlog::recovery::ABORT_FILE)?;
            Ok(())
        })();
        e.closed = true;
        e.store.backend.unlock();
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
