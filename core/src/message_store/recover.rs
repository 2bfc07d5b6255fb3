//! Recovery: the log replayed through dispatch, the registry grown to what the
//! store holds.

use super::*;

impl MessageStore {
    /// Replays the log (see the module docs) through dispatch; topics the registry
    /// lacks get at least `default_queues` queues.
    pub fn recover(&mut self, services: &mut Services<'_>, default_queues: u32) -> Result<()> {
        // The checkpoint says how far the log was flushed: past it is the tail a
        // crash may have torn.
        let checkpoint = Checkpoint::read(&*self.backend).ok().flatten();
        let tail_from = checkpoint.map_or(0, |c| c.flushed);
        let MessageStore {
            commitlog,
            queues,
            index,
            skipped_records: skipped,
            deleted,
            ..
        } = self;
        let mut failure: Option<Error> = None;
        let scan = commitlog
            .recover(tail_from, |r| {
                if failure.is_some() || deleted.hides(r.topic(), r.phys) {
                    return;
                }
                let topic = r.topic();
                if topic::validate_topic(topic).is_err() || r.queue_id >= topic::MAX_QUEUES {
                    // Intact bytes, impossible content: never a path, never a queue.
                    *skipped += 1;
                    log::warn!(
                        "the record at CommitLog offset {} names queue {} of {topic:?}, \
                         which cannot exist; skipped",
                        r.phys,
                        r.queue_id
                    );
                    return;
                }
                if queues.count(topic) <= r.queue_id {
                    if let Err(e) = queues.ensure(topic, r.queue_id + 1) {
                        failure = Some(store_err(e));
                        return;
                    }
                }
                let req = DispatchRequest::from_view(r);
                match dispatch::dispatch(&req, Mode::Replay, queues, index, services) {
                    Ok(()) => {}
                    Err(Error::StoreCorrupted(why)) => {
                        *skipped += 1;
                        log::warn!(
                            "the record at CommitLog offset {} is skipped: {why}",
                            r.phys
                        );
                    }
                    Err(e) => failure = Some(e),
                }
            })
            .map_err(store_err)?;
        if let Some(e) = failure {
            return Err(e);
        }
        self.index.merge();
        self.skipped_records += scan.damaged.len() as u64;
        let end = scan.end;
        if end < tail_from {
            // Flushed data was lost (damage, not a torn tail): new messages start
            // past it, so no id that named a lost message names another one.
            let seg = self.commitlog.seg_size() as u64;
            let fresh = tail_from.div_ceil(seg).saturating_mul(seg);
            if let Err(e) = self.commitlog.skip_to(fresh) {
                log::warn!("could not move the CommitLog's end past lost data: {e}");
            }
        }
        if self.unclean {
            // The crash may have lost records past the end whose ids were handed
            // out (sent, even delivered, before they were flushed): the records
            // written there from now on take a nonce of their own.
            let mut nonce = self.fresh_nonce;
            while nonce == self.ids.first || self.ids.later().iter().any(|e| e.nonce == nonce) {
                nonce = nonce.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
            }
            self.ids.begin(self.commitlog.end(), nonce);
            self.write_identity(None, true)?;
        }
        let min = self.commitlog.min_offset();
        for cq in self.queues.all_mut() {
            cq.truncate_to_commitlog(end).map_err(store_err)?;
            cq.correct_min(min).map_err(store_err)?;
        }
        self.grow_topics(default_queues);
        Ok(())
    }

    /// Grows the registry to every queue the store holds (found on disk, or named
    /// by a record of the log): a topic whose registry entry was lost or is behind
    /// (a crash before `topics.json` was written) comes back whole.
    pub(super) fn grow_topics(&mut self, default_queues: u32) {
        let found: Vec<(String, u32)> = self
            .queues
            .iter()
            .filter(|(t, _)| !topic::is_reserved(t) || t.starts_with('%'))
            .map(|(t, qs)| (t.clone(), qs.len() as u32))
            .collect();
        for (t, n) in found {
            let n = match self.topics.queues(&t) {
                Some(_) => n,
                // A user topic the registry never saw was created on first send.
                None if !topic::is_reserved(&t) => n.max(default_queues),
                None => n,
            };
            if self.topics.ensure(&t, n) {
                log::info!("topic {t} recovered with {n} queues from the store's files");
                self.topics_dirty = true;
            }
        }
    }
}
