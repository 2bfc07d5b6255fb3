//! One step of a drill: the next originals of every source queue, merged in
//! CommitLog order (so a sharding key keeps its order even across queues of a topic
//! that grew), copied and appended as one batch, at most 4,096 messages or 4 MiB.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;

use super::Run;
use crate::consume_queue::{CqEntry, BLANK_SIZE};
use crate::consumer::ConsumerGroups;
use crate::engine::Engine;
use crate::message::id;
use crate::message::properties::{self, prop};
use crate::message::record::{self, RecordSpec};
use crate::message_store::MessageStore;
use crate::topic;
use crate::Result;

/// Messages one step copies at most: one append, one hold of the engine lock.
const STEP_MESSAGES: usize = 4096;
/// Bytes one step copies at most (one append fits in one CommitLog segment).
const STEP_BYTES: usize = 4 << 20;
/// Properties a copy does not keep: a delay already served, a drill's own marker.
const DROPPED: &[&str] = &[
    prop::DELAY,
    prop::TIMER_DELIVER_MS,
    prop::REAL_TOPIC,
    prop::REAL_QID,
    prop::MOVED_FROM,
];

/// A copy of the record at `e` (queue `q`, offset `qo` of `from`) for `dest`, which
/// has `queues` queues; None when the record is gone.
#[allow(clippy::too_many_arguments)]
fn copy_spec(
    store: &MessageStore,
    e: &CqEntry,
    from: &str,
    q: usize,
    qo: u64,
    dest: &Arc<str>,
    queues: u32,
    rr: &mut u32,
    redrive: bool,
    marker: &mut String,
) -> Option<RecordSpec> {
    let nonce = store.ids.at(e.phys);
    let (mut spec, at, len) = store.commitlog.with_record(e.phys, |r| {
        // One pass over the original's properties: copy, and note the key and id.
        let raw = r.raw_properties();
        let mut p = Vec::with_capacity(raw.len() + 96);
        let (mut key, mut has_id) = (None, false);
        for (k, v) in properties::iter(raw) {
            match k {
                prop::SHARDING_KEY => key = Some(v),
                prop::UNIQ_KEY => has_id = true,
                _ if DROPPED.contains(&k) => continue,
                _ => {}
            }
            properties::push(&mut p, k, v);
        }
        if !has_id {
            properties::push(&mut p, prop::UNIQ_KEY, &id::make(nonce, e.phys));
        }
        let queue_id = match key {
            Some(k) => topic::queue_for_key(k, queues),
            None => {
                *rr = rr.wrapping_add(1);
                *rr % queues.max(1)
            }
        };
        marker.clear();
        let _ = write!(marker, "{from}:{q}:{qo}");
        properties::push(&mut p, prop::MOVED_FROM, marker);
        let (at, len) = r.body_range();
        let spec = RecordSpec {
            topic: dest.clone(),
            queue_id,
            sys_flag: record::copied_flags(r.sys_flag) | record::SYS_FLAG_MOVED,
            born_ts: r.born_ts,
            // A redriven dead letter gets its retries afresh.
            reconsume_times: if redrive { 0 } else { r.reconsume_times },
            prepared_tx_offset: 0,
            body: Bytes::new(),
            properties: p,
            dedup: None,
            found: crate::message::properties::Found::UNKNOWN,
        };
        (spec, at, len)
    })?;
    spec.body = store.commitlog.read(e.phys + at as u64, len)?;
    Some(spec)
}

impl Engine {
    /// Copies the next step of `run` (one append); returns how many it copied.
    pub fn drill_step(&mut self, run: &mut Run, now: u64) -> Result<u64> {
        self.check_open()?;
        if run.is_done() {
            return Ok(0);
        }
        let src = run.next.len();
        // What the group acked meanwhile (it may consume while a drill runs) is done.
        let positions = self
            .groups
            .positions(&run.drill.group, &run.drill.from, src as u32);
        for (q, pos) in positions.iter().enumerate() {
            if let Some(p) = pos {
                run.next[q] = run.next[q].max(p.committed.min(run.upto[q]));
            }
        }
        let owners = self.groups.owners(&run.drill.group, &run.drill.from);
        let keys: Vec<_> = (0..src as u32)
            .map(|q| ConsumerGroups::owner_keys(&owners, &run.drill.from, q))
            .collect();
        let store = &self.store;
        let Some(cqs) = store.queues.topic(&run.drill.from) else {
            return Ok(0);
        };
        let want = (STEP_MESSAGES as u64).min(run.limit - run.moved) as usize;
        let active = (0..src)
            .filter(|&q| run.next[q] < run.upto[q])
            .count()
            .max(1);
        let per_queue = (want / active).max(256).min(want);
        let mut bufs: Vec<Vec<CqEntry>> = vec![Vec::new(); src];
        let mut heads = BinaryHeap::new();
        for (q, cq) in cqs.iter().enumerate().take(src) {
            if run.next[q] >= run.upto[q] {
                continue;
            }
            run.next[q] = run.next[q].max(cq.min_offset()).min(run.upto[q]);
            let n = per_queue.min((run.upto[q] - run.next[q]) as usize);
            cq.entries(run.next[q], n, &mut bufs[q]);
            bufs[q].truncate(n);
            if let Some(e) = bufs[q].first() {
                heads.push(Reverse((e.phys, q)));
            }
        }
        let dest: Arc<str> = run.drill.to.as_str().into();
        let step_bytes = STEP_BYTES.min(store.commitlog.seg_size() / 4);
        let mut pos = vec![0usize; src];
        let mut specs: Vec<RecordSpec> = Vec::with_capacity(want.min(STEP_MESSAGES));
        let mut bytes = 0usize;
        let mut marker = String::new();
        while specs.len() < want {
            let Some(Reverse((_, q))) = heads.pop() else {
                break;
            };
            let e = bufs[q][pos[q]];
            if !specs.is_empty() && bytes + e.size as usize + 128 > step_bytes {
                break;
            }
            let qo = run.next[q];
            pos[q] += 1;
            run.next[q] += 1;
            // A message the group acked out of order (above its committed offset)
            // is done: it is not part of the backlog. A redrive reads dead letters,
            // which no group consumes.
            let done = !run.redrive && self.groups.done_by_all(&keys[q], qo);
            if e.size != BLANK_SIZE && !done {
                if let Some(spec) = copy_spec(
                    store,
                    &e,
                    &run.drill.from,
                    q,
                    qo,
                    &dest,
                    run.drill.queues,
                    &mut run.rr,
                    run.redrive,
                    &mut marker,
                ) {
                    bytes += spec.encoded_len();
                    specs.push(spec);
                }
            }
            if let Some(e) = bufs[q].get(pos[q]) {
                heads.push(Reverse((e.phys, q)));
            } else if run.next[q] < run.upto[q] {
                // The next of this queue is unread: CommitLog order needs it first.
                break;
            }
        }
        let n = specs.len() as u64;
        if n > 0 {
            self.check_room()?;
            self.room_for(&specs, false)?;
            self.put(&specs, now)?;
        }
        run.moved += n;
        Ok(n)
    }
}
