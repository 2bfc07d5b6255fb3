//! The long poll: how a receive of either consumer kind waits. A receive is a
//! [`Receiving`]: a maximum count and a real-time deadline, stepped until it ends.
//! It ends with messages, or empty at its deadline or when the consumer or broker
//! closes while it waits (a wait ended by a close is empty; a receive started after
//! a close fails with `Closed`). Bindings step it in slices to let their runtime in
//! (signals, event loops) without keeping their own clocks. A step takes the
//! engine's lock, runs due work, takes what is there; with nothing there it looks
//! briefly for an arrival, then parks on the broker's Condvar (lock released).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::broker::Broker;
use crate::engine::Engine;
use crate::message::Taken;
use crate::runtime::Deadline;
use crate::{MessageExt, Result};

/// How many times a receiver that found nothing yields, watching for an arrival,
/// before it parks (wasm: never; it cannot wait at all).
#[cfg(not(target_arch = "wasm32"))]
const RECEIVE_SPINS: usize = 256;
#[cfg(target_arch = "wasm32")]
const RECEIVE_SPINS: usize = 0;

/// While a short batch waits for more (`fill_wait`): how many yields in a row
/// without an arrival end the wait once one came.
const FILL_IDLE: usize = 4;

/// Waits, yielding, for arrivals to fill a short batch: until `left` came, or the
/// stream paused (`FILL_IDLE` yields without one after the first), or
/// `RECEIVE_SPINS / 4` yields in all. Whether any came. Under a steady stream each
/// receive then takes (and locks for) a fuller batch; a trickle waits a few yields.
fn fill_wait(arrivals: &std::sync::atomic::AtomicU64, left: usize) -> bool {
    let seen = arrivals.load(Ordering::Acquire);
    let (mut last, mut idle) = (seen, 0);
    let ended = (0..RECEIVE_SPINS / 4).any(|_| {
        crate::runtime::yield_now();
        let now = arrivals.load(Ordering::Acquire);
        if now != last {
            (last, idle) = (now, 0);
            return now.wrapping_sub(seen) >= left as u64;
        }
        idle += 1;
        last != seen && idle == FILL_IDLE
    });
    ended || last != seen
}

/// A receive in progress (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Receiving {
    pub(crate) max: usize,
    pub(crate) deadline: Deadline,
}

impl Receiving {
    /// Real time left until the receive's deadline; None when it has none.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline.remaining()
    }
}

/// A receive either consumer kind runs the same way: the calls a binding steps
/// (with its own slices, so signals and event loops get in) and waits between.
pub trait Receive {
    /// Starts a receive of up to `max` messages ending by `timeout` (None: only when
    /// messages come or a close ends it). Fails with `Closed` after a close.
    fn start_receive(&self, max: usize, timeout: Option<Duration>) -> Result<Receiving>;
    /// Waits at most `slice` for `r` to end: Some(messages), or Some(empty) at its
    /// deadline or after a close; None when the slice ended first.
    fn receive_step(
        &self,
        r: &Receiving,
        slice: Option<Duration>,
    ) -> Result<Option<Vec<MessageExt>>>;
    /// Calls `callback` once, when a receive may find messages (or on close).
    fn on_ready(&self, callback: Box<dyn FnOnce() + Send>);
    /// Whether this consumer or its broker was closed.
    fn is_closed(&self) -> bool;
}

macro_rules! receive {
    ($($t:ty),*) => {$(
        impl Receive for $t {
            fn start_receive(&self, max: usize, timeout: Option<Duration>) -> Result<Receiving> {
                <$t>::start_receive(self, max, timeout)
            }
            fn receive_step(
                &self,
                r: &Receiving,
                slice: Option<Duration>,
            ) -> Result<Option<Vec<MessageExt>>> {
                <$t>::receive_step(self, r, slice)
            }
            fn on_ready(&self, callback: Box<dyn FnOnce() + Send>) {
                <$t>::on_ready(self, callback)
            }
            fn is_closed(&self) -> bool {
                <$t>::is_closed(self)
            }
        }
    )*};
}

receive!(crate::Consumer, crate::SimpleConsumer);

impl Receiving {
    pub(crate) fn new(max: usize, timeout: Option<Duration>) -> Receiving {
        Receiving {
            max,
            deadline: Deadline::within(timeout),
        }
    }
}

/// One step of a long poll (see `Consumer::receive_step`): `take(engine, max,
/// visible end, now)` takes what is there, without waiting. `fill`: a short batch
/// may wait a moment for more arrivals (not for an orderly or fifo consumer, which
/// takes one message per queue or key at a time: the ones it took would wait for
/// arrivals it may not be able to take).
pub(crate) fn long_poll(
    broker: &Broker,
    closed: &AtomicBool,
    r: &Receiving,
    slice: Option<Duration>,
    fill: bool,
    mut take: impl FnMut(&mut Engine, usize, u64, u64) -> Result<Vec<Taken>>,
) -> Result<Option<Vec<MessageExt>>> {
    broker.check_process()?;
    if r.max == 0 {
        // Nothing asked for: nothing to wait for.
        return Ok(Some(Vec::new()));
    }
    let wait = Deadline::within(slice).min(r.deadline);
    let inner = &broker.inner;
    let mut e = inner.engine.lock();
    loop {
        if e.closed || closed.load(Ordering::Acquire) {
            return Ok(Some(Vec::new()));
        }
        // Due work that fails (a full disk) is the broker's to retry and report
        // from `tick`; it never keeps a consumer from its messages.
        let checks = e.run_due_if_needed(broker.now()).unwrap_or_else(|err| {
            log::warn!("deferred work failed and will be retried: {err}");
            Vec::new()
        });
        if !checks.is_empty() {
            drop(e);
            broker.run_checks(checks)?;
            e = inner.engine.lock();
            continue;
        }
        let now = broker.now();
        let mut msgs = take(&mut e, r.max, broker.visible_end(), now)?;
        if msgs.is_empty() {
            // Kept for the next look: a receive that waits looks many times.
            crate::message::keep_taken_list(msgs);
        } else {
            if fill && msgs.len() < r.max && !wait.is_past() {
                // A short batch under a steady stream: give the senders a moment to
                // fill it, so each receive (and its lock) carries more.
                let left = r.max - msgs.len();
                let more =
                    parking_lot::MutexGuard::unlocked(&mut e, || fill_wait(&inner.arrivals, left));
                if more && !e.closed {
                    msgs.extend(take(&mut e, left, broker.visible_end(), now)?);
                }
            }
            let ids = e.store.ids.clone();
            drop(e);
            return Ok(Some(crate::message::build_all(msgs, &ids)));
        }
        if wait.is_past() {
            return Ok(r.deadline.is_past().then(Vec::new));
        }
        // Under a steady stream the next message is microseconds away: look for it
        // briefly before parking, which spares the sender a wake-up call.
        let seen = inner.arrivals.load(Ordering::Acquire);
        let arrived = parking_lot::MutexGuard::unlocked(&mut e, || {
            (0..RECEIVE_SPINS).any(|_| {
                crate::runtime::yield_now();
                inner.arrivals.load(Ordering::Acquire) != seen
            })
        });
        if !arrived && !wait.wait(&inner.arrived, &mut e) {
            return Ok(r.deadline.is_past().then(Vec::new));
        }
    }
}

/// Calls `callback` once: at once if a receive might find messages now (`ready`
/// says, under the lock, given the visible end and now), else when one could (a
/// send, a delay coming due, close). Lets an event loop (asyncio, JS) wait without
/// a thread.
pub(crate) fn on_ready(
    broker: &Broker,
    closed: &AtomicBool,
    callback: Box<dyn FnOnce() + Send>,
    ready: impl FnOnce(&Engine, u64, u64) -> bool,
) {
    if broker.check_process().is_err() {
        // (The receive it wakes then fails with Closed.)
        return callback();
    }
    let mut e = broker.inner.engine.lock();
    let now = broker.now();
    let visible = broker.visible_end();
    if e.closed || closed.load(Ordering::Acquire) || ready(&e, visible, now) || now >= e.next_due {
        drop(e);
        callback();
    } else {
        e.waiters.push(callback);
    }
}

/// Takes member `handle` out of its group (once: `closed` is its flag) and wakes
/// receivers, which return empty.
pub(crate) fn leave(broker: &Broker, closed: &AtomicBool, handle: u64) -> Result<()> {
    if closed.swap(true, Ordering::AcqRel) {
        return Ok(());
    }
    let now = broker.now();
    let mut e = broker.inner.engine.lock();
    if !e.closed {
        e.close_consumer(handle, now)?;
    }
    e.arrived = true;
    broker.wake(e);
    Ok(())
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::fill_wait;

    #[test]
    fn a_short_batch_waits_for_a_stream_and_not_for_silence() {
        let arrivals = AtomicU64::new(7);
        // Nothing arrives: the wait ends at its bound and says so.
        assert!(!fill_wait(&arrivals, 3));
        // A steady stream: the wait sees it and ends with more to take (once the
        // sending thread runs; tried again for up to 30 s, as a busy machine may
        // leave that thread unscheduled through many whole waits).
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::Acquire) {
                    arrivals.fetch_add(1, Ordering::Release);
                    std::thread::yield_now();
                }
            });
            while arrivals.load(Ordering::Acquire) == 7 {
                std::thread::yield_now();
            }
            let deadline = crate::runtime::Deadline::after(std::time::Duration::from_secs(30));
            let mut seen = false;
            while !seen && !deadline.is_past() {
                seen = fill_wait(&arrivals, 3);
            }
            stop.store(true, Ordering::Release);
            assert!(seen);
        });
    }
}
