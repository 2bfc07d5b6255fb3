//! Deleting expired CommitLog segments (the policy is `crate::retention`'s).

use super::*;

impl MessageStore {
    /// Deletes expired CommitLog segments (or, `forcibly`, the oldest whatever
    /// their age), at most 10 per pass, never the active one nor one that ends
    /// above `keep` (it holds a record still needed), and moves every queue's
    /// minimum after them. True when something was deleted.
    pub fn apply_retention(
        &mut self,
        now: u64,
        reserved_ms: u64,
        forcibly: bool,
        keep: u64,
    ) -> Result<bool> {
        let seg_size = self.commitlog.seg_size() as u64;
        let mut deleted = 0;
        for (base, last_ts) in self.commitlog.sealed_segments() {
            let expired = forcibly || last_ts.saturating_add(reserved_ms) <= now;
            if deleted >= 10 || !expired {
                break;
            }
            if base.saturating_add(seg_size) > keep {
                log::info!(
                    "CommitLog segment {base} is kept past its time: it holds records still needed"
                );
                break;
            }
            if !self.commitlog.delete_oldest().map_err(store_err)? {
                break;
            }
            log::info!("retention deleted CommitLog segment {base}");
            deleted += 1;
        }
        if deleted == 0 {
            return Ok(false);
        }
        let min = self.commitlog.min_offset();
        for cq in self.queues.all_mut() {
            cq.correct_min(min).map_err(store_err)?;
        }
        self.index.retain_from(min);
        if self.deleted.prune(min) {
            self.deleted_dirty = true;
        }
        Ok(true)
    }
}
