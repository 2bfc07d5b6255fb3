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
/// as `Retry`.
pub trait Listener: Send + Sync + 'static {
    fn handle(&self, msgs: &[MessageExt], outcomes: &mut Vec<Outcome>);
}

impl<F> Listener for F
where
    F: Fn(&MessageExt) -> Outcome + Send + Sync + 'static,
{
    fn handle(&self, msgs: &[MessageExt], outcomes: &mut Vec<Outcome>) {
        outcomes.extend(msgs.iter().map(self));
    }
}

/// What a listener needs of a consumer.
pub trait Source: Send + Sync + 'static {
    fn receive_slice(&self, max: usize, timeout: Duration) -> Result<Vec<MessageExt>>;
    fn settle(&self, msgs: &[MessageExt], outcomes: &[Outcome]) -> Result<()>;
    fn is_closed(&self) -> bool;
}

/// How a listener runs.
#[derive(Debug, Clone, Copy)]
pub struct ListenOptions {
    /// Threads receiving and handling (RocketMQ's consume threads).
    pub threads: usize,
    /// Messages one thread takes per receive.
    pub batch: usize,
}

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

impl Runner {
    /// Stops taking messages and waits for the running handlers to finish (their
    /// outcomes are applied).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
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

/// Starts `options.threads` threads handling `source`'s messages with `listener`.
pub fn listen<S: Source>(
    source: Arc<S>,
    listener: Arc<dyn Listener>,
    options: ListenOptions,
) -> Result<Runner> {
    if options.threads == 0 || options.threads > 1024 || options.batch == 0 {
        return Err(crate::Error::invalid(
            "a listener runs 1 to 1024 threads taking at least 1 message at a time",
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
            while !stopping.load(Ordering::Acquire) && !source.is_closed() {
                let msgs = match source.receive_slice(options.batch, SLICE) {
                    Ok(m) if !m.is_empty() => m,
                    Ok(_) => continue,
                    Err(e) => {
                        log::warn!("listener: receive failed: {e}");
                        return;
                    }
                };
                outcomes.clear();
                listener.handle(&msgs, &mut outcomes);
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
        let acked: Vec<MessageExt> = msgs
            .iter()
            .zip(outcomes)
            .filter(|(_, o)| **o == Outcome::Ack)
            .map(|(m, _)| m.clone())
            .collect();
        self.ack_all(&acked)?;
        for (m, o) in msgs.iter().zip(outcomes) {
            match o {
                Outcome::Ack => {}
                Outcome::Retry => self.nack(m)?,
                Outcome::RetryAfter(d) => self.nack_after(m, *d)?,
            }
        }
        Ok(())
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
        let acked: Vec<&str> = msgs
            .iter()
            .zip(outcomes)
            .filter(|(_, o)| **o == Outcome::Ack)
            .filter_map(|(m, _)| m.receipt_handle.as_deref())
            .collect();
        self.ack_handles(&acked)?;
        for (m, o) in msgs.iter().zip(outcomes) {
            match o {
                Outcome::Ack => {}
                Outcome::Retry => self.nack(m, None)?,
                Outcome::RetryAfter(d) => self.nack(m, Some(*d))?,
            }
        }
        Ok(())
    }

    fn is_closed(&self) -> bool {
        SimpleConsumer::is_closed(self)
    }
}
