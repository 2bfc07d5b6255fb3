//! Listeners (RocketMQ's push consumer, `MessageListener`): threads that receive
//! for a consumer and hand each message to a handler; what the handler decides is
//! acked or nacked for it. On any consumer kind. An orderly consumer keeps each
//! queue's order across threads (it hands out one message per queue at a time).
//! Native targets only: wasm has no threads (the JS wrapper listens with Promises).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::pop::SimpleConsumer;
use crate::broker::Consumer;
use crate::{MessageExt, Result};

/// What a handler decided for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done: ack it.
    Ack,
    /// Failed: nack it (redelivered after the retry ladder's step).
    Retry,
    /// Failed: nack it, redelivered after this delay.
    RetryAfter(Duration),
}

/// A push-style handler. It gets a batch (so a binding can enter its runtime once
/// per batch) and pushes one outcome per message, in order; missing outcomes count
/// as `Retry`, and so does a panic. A handler that changed a simple consumer's
/// delivery (`change_invisible_duration`) updates the message's `receipt_handle`,
/// so that the outcome applies to the current delivery.
pub trait Listener: Send + Sync + 'static {
    /// Handles a batch: pushes one outcome per message of `msgs`, in order.
    fn handle(&self, msgs: &mut [MessageExt], outcomes: &mut Vec<Outcome>);
}

impl<F> Listener for F
where
    F: Fn(&MessageExt) -> Outcome + Send + Sync + 'static,
{
    fn handle(&self, msgs: &mut [MessageExt], outcomes: &mut Vec<Outcome>) {
        // A panic fails its own message only.
        outcomes.extend(msgs.iter().map(|m| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self(m))).unwrap_or_else(
                |_| {
                    log::warn!(
                        "listener: the handler panicked on {}; it will be retried",
                        m.msg_id
                    );
                    Outcome::Retry
                },
            )
        }));
    }
}

/// What a listener needs of a consumer.
pub trait Source: Send + Sync + 'static {
    /// Receives up to `max` messages, waiting at most `timeout` for the first.
    fn receive_slice(&self, max: usize, timeout: Duration) -> Result<Vec<MessageExt>>;
    /// Applies every outcome; one that fails (logged) does not keep the others
    /// from applying. The first failure is returned.
    fn settle(&self, msgs: &[MessageExt], outcomes: &[Outcome]) -> Result<()>;
    /// Whether the consumer (or its broker) is closed: the listener ends.
    fn is_closed(&self) -> bool;
}

/// How a listener runs.
#[derive(Debug, Clone, Copy)]
pub struct ListenOptions {
    /// Threads receiving and handling (RocketMQ's consume threads). 1 to 1024.
    pub threads: usize,
    /// Most messages one thread takes per receive. A thread takes one at a time
    /// while its handler is slow (so other threads get the rest, and `stop` and
    /// ack deadlines find no message waiting behind a slow one), and doubles what
    /// it takes, up to this, while handlers are fast. 1 to 1024.
    pub batch: usize,
}

/// Handling at most this long a message counts as fast (see `ListenOptions::batch`).
const FAST_HANDLER: Duration = Duration::from_micros(200);

impl Default for ListenOptions {
    fn default() -> ListenOptions {
        ListenOptions {
            threads: 4,
            batch: 32,
        }
    }
}

/// How long a listener thread waits in one receive before it looks at `stop`.
const SLICE: Duration = Duration::from_millis(50);

/// Running listener threads. `stop` takes no new messages and waits for the
/// handlers running; dropping the runner stops it too.
pub struct Runner {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("threads", &self.threads.len())
            .field("stopped", &self.stop.load(Ordering::Relaxed))
            .finish()
    }
}

impl Runner {
    /// Stops taking messages and waits for the running handlers to finish (their
    /// outcomes are applied). Called from a handler, it waits for the others; its
    /// own thread ends once that handler returns.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let me = std::thread::current().id();
        for t in self.threads.drain(..) {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }

    /// Asks the threads to take no new messages, without waiting for them (`stop`
    /// waits); a binding that must stay responsive while they finish polls
    /// `is_finished`, then calls `stop`.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Whether every thread but the calling one (a handler's) has ended.
    pub fn others_finished(&self) -> bool {
        let me = std::thread::current().id();
        self.threads
            .iter()
            .all(|t| t.thread().id() == me || t.is_finished())
    }

    /// Whether every thread has ended (stopped, or its consumer closed).
    pub fn is_finished(&self) -> bool {
        self.threads.iter().all(|t| t.is_finished())
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How long a listener waits after a failed receive before it tries again.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Starts `options.threads` threads handling `source`'s messages with `listener`.
pub fn listen<S: Source>(
    source: Arc<S>,
    listener: Arc<dyn Listener>,
    options: ListenOptions,
) -> Result<Runner> {
    if !(1..=1024).contains(&options.threads) || !(1..=1024).contains(&options.batch) {
        return Err(crate::Error::invalid(
            "a listener runs 1 to 1024 threads taking 1 to 1024 messages at a time",
        ));
    }
    if source.is_closed() {
        return Err(crate::Error::Closed);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::with_capacity(options.threads);
    for i in 0..options.threads {
        let (source, listener, stopping) = (source.clone(), listener.clone(), stop.clone());
        let t = crate::runtime::spawn_task(&format!("pocketmq-listener-{i}"), move || {
            let mut outcomes = Vec::with_capacity(options.batch);
            let mut take = 1;
            while !stopping.load(Ordering::Acquire) && !source.is_closed() {
                let mut msgs = match source.receive_slice(take, SLICE) {
                    Ok(m) if !m.is_empty() => m,
                    Ok(_) => continue,
                    Err(crate::Error::Closed) => return,
                    Err(e) if source.is_closed() => {
                        log::debug!("listener: receive failed as its consumer closed: {e}");
                        return;
                    }
                    Err(e) => {
                        // A server away for a while (over connect()), a read that
                        // failed: tried again after a pause, as a RocketMQ push
                        // consumer keeps pulling, until the listener stops.
                        log::warn!(
                            "listener: receive failed, trying again in {} s: {e}",
                            RETRY_PAUSE.as_secs()
                        );
                        let pause = crate::runtime::Stopwatch::start();
                        while pause.elapsed() < RETRY_PAUSE
                            && !stopping.load(Ordering::Acquire)
                            && !source.is_closed()
                        {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        continue;
                    }
                };
                outcomes.clear();
                let watch = crate::runtime::Stopwatch::start();
                let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    listener.handle(&mut msgs, &mut outcomes)
                }));
                if handled.is_err() {
                    log::warn!("listener: the handler panicked; its messages will be retried");
                }
                let fast = watch.elapsed() <= FAST_HANDLER * msgs.len() as u32;
                take = if fast {
                    (take * 2).min(options.batch)
                } else {
                    1
                };
                outcomes.resize(msgs.len(), Outcome::Retry);
                if let Err(e) = source.settle(&msgs, &outcomes) {
                    log::warn!("listener: ack or nack failed: {e}");
                }
            }
        });
        match t {
            Some(t) => threads.push(t),
            None => {
                stop.store(true, Ordering::Release);
                return Err(crate::Error::Io(std::io::Error::other(
                    "could not start a listener thread",
                )));
            }
        }
    }
    Ok(Runner { stop, threads })
}

impl Source for Consumer {
    fn receive_slice(&self, max: usize, timeout: Duration) -> Result<Vec<MessageExt>> {
        self.receive(max, timeout)
    }

    fn settle(&self, msgs: &[MessageExt], outcomes: &[Outcome]) -> Result<()> {
        apply(
            msgs,
            outcomes,
            |ms| self.ack_all(&ms.iter().map(|m| (*m).clone()).collect::<Vec<_>>()),
            |m, delay| match delay {
                None => self.nack(m),
                Some(d) => self.nack_after(m, d),
            },
        )
    }

    fn is_closed(&self) -> bool {
        Consumer::is_closed(self)
    }
}

impl Source for SimpleConsumer {
    fn receive_slice(&self, max: usize, timeout: Duration) -> Result<Vec<MessageExt>> {
        self.receive(max, timeout)
    }

    fn settle(&self, msgs: &[MessageExt], outcomes: &[Outcome]) -> Result<()> {
        apply(
            msgs,
            outcomes,
            |ms| {
                let handles: Vec<&str> = ms
                    .iter()
                    .filter_map(|m| m.receipt_handle.as_deref())
                    .collect();
                self.ack_handles(&handles)
            },
            |m, delay| self.nack(m, delay),
        )
    }

    fn is_closed(&self) -> bool {
        SimpleConsumer::is_closed(self)
    }
}

/// Applies a batch's outcomes with a consumer's calls: the acked ones in one
/// `ack_many` (one at a time if that fails, so one that fails keeps none of the others
/// back: a handler acked it itself, or it expired), then a `nack` of each failed one;
/// every call runs, the first failure is returned.
fn apply(
    msgs: &[MessageExt],
    outcomes: &[Outcome],
    ack_many: impl Fn(&[&MessageExt]) -> Result<()>,
    nack: impl Fn(&MessageExt, Option<Duration>) -> Result<()>,
) -> Result<()> {
    let acked: Vec<&MessageExt> = msgs
        .iter()
        .zip(outcomes)
        .filter(|(_, o)| **o == Outcome::Ack)
        .map(|(m, _)| m)
        .collect();
    let mut first = None;
    if ack_many(&acked).is_err() {
        for m in &acked {
            keep_first(&mut first, ack_many(&[m]));
        }
    }
    for (m, o) in msgs.iter().zip(outcomes) {
        let r = match o {
            Outcome::Ack => continue,
            Outcome::Retry => nack(m, None),
            Outcome::RetryAfter(d) => {
                nack(m, Some(*d)).or_else(|e| retry_instead(e, || nack(m, None)))
            }
        };
        keep_first(&mut first, r);
    }
    first.map_or(Ok(()), Err)
}

/// Keeps the first error of several calls that all run.
fn keep_first(first: &mut Option<crate::Error>, r: Result<()>) {
    if let Err(e) = r {
        log::debug!("listener: ack or nack failed: {e}");
        first.get_or_insert(e);
    }
}

/// A retry delay the consumer refused (out of range): logged, and the message is
/// retried after the ladder's step instead of waiting for its ack deadline.
fn retry_instead(e: crate::Error, nack: impl FnOnce() -> Result<()>) -> Result<()> {
    if e.kind() != crate::ErrorKind::InvalidArgument {
        return Err(e);
    }
    log::warn!("listener: {e}; the message is retried after the usual step instead");
    nack()
}
