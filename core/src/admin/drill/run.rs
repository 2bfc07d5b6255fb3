//! Running a drill on the facade (`Broker::move_backlog`, `Broker::redrive`): in
//! steps, each one append under the lock, reporting progress between steps outside
//! it. Its record in `config/drills.json` is durable before its first copy, and its
//! copies are durable before the group moves past them.

use super::Run;
use crate::broker::Broker;
use crate::{FlushMode, Result};

/// Clears a drill's "running" mark however the run ends.
struct Running<'a> {
    broker: &'a Broker,
    key: String,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.broker.inner.engine.lock().end_drill(&self.key);
    }
}

impl Broker {
    /// The backlog drill (RocketMQ operators' answer to a group that fell behind):
    /// copies `group`'s unconsumed messages of every queue of `topic` to `to`, created
    /// with `queues` queues (default: as many as `topic`) or grown to them, keeping
    /// body, tags, keys, properties, message id and each sharding key's order; then
    /// moves the group past them. Returns how many it copied.
    ///
    /// `on_progress(copied, total)` is called before the first step and after each
    /// (outside the lock); returning false stops the drill there, the group moved
    /// past what was copied. Killed at any point and run again with the same `to`, a
    /// drill goes on where it stopped: nothing is copied twice or skipped.
    pub fn move_backlog(
        &self,
        group: &str,
        topic: &str,
        to: &str,
        queues: Option<u32>,
        on_progress: impl FnMut(u64, u64) -> bool,
    ) -> Result<u64> {
        let now = self.now();
        let run = self
            .engine_due()?
            .begin_move(group, topic, to, queues, now)?;
        if run.resumed > 0 {
            log::info!(
                "resuming the backlog drill of group {group} on {topic} into {to}: \
                 {} messages were copied before it stopped",
                run.resumed
            );
        }
        log::info!(
            "moving the backlog of group {group} on {topic} ({} messages) to {to} ({} queues)",
            run.total,
            run.drill.queues
        );
        let moved = self.run_drill(run, on_progress)?;
        log::info!(
            "moved {moved} messages of group {group} from {topic} to {to}; the group is past them"
        );
        Ok(moved)
    }

    /// Resends `group`'s dead letters (at most `limit`) to `%RETRY%<group>`, which only
    /// that group reads: each comes back as a fresh delivery (its retries start over)
    /// with its message id, body, tags, keys and properties. Returns how many it
    /// resent; `dead_letters` no longer lists them. Resumable like `move_backlog`.
    pub fn redrive(
        &self,
        group: &str,
        limit: Option<u64>,
        on_progress: impl FnMut(u64, u64) -> bool,
    ) -> Result<u64> {
        let run = self.engine_due()?.begin_redrive(group, limit)?;
        if run.total == 0 && run.resumed == 0 && !run.fresh {
            return Ok(0);
        }
        let moved = self.run_drill(run, on_progress)?;
        log::info!("redrove {moved} dead letters of group {group} to its retry topic");
        Ok(moved)
    }

    fn run_drill(
        &self,
        mut run: Run,
        mut on_progress: impl FnMut(u64, u64) -> bool,
    ) -> Result<u64> {
        let _running = Running {
            broker: self,
            key: run.key.clone(),
        };
        if run.fresh {
            // The drill's record is durable before its first copy exists.
            self.persist_metadata()?;
        }
        let mut go_on = on_progress(0, run.total);
        while go_on && !run.is_done() {
            let mut e = self.engine()?;
            e.drill_step(&mut run, self.now())?;
            self.wake(e);
            go_on = on_progress(run.moved, run.total);
        }
        // The copies are durable before the group moves past the originals.
        let config = &self.inner.config;
        if config.path.is_some() && config.flush != FlushMode::None {
            self.flush_all()?;
        }
        self.engine()?.finish_drill(&run);
        self.persist_metadata()?;
        Ok(run.moved)
    }
}
