//! The one place that reads real (monotonic) time and starts threads. Long-poll
//! deadlines are real time whatever the broker's Clock says; on wasm there is no
//! waiting at all (a deadline is always already past) and the JS host drives `tick`.

use std::time::Duration;

use parking_lot::{Condvar, MutexGuard};

/// How often the background thread looks for due work.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) const STEP_PERIOD: Duration = Duration::from_millis(5);

/// A point in real time by which a wait must end.
pub(crate) struct Deadline {
    #[cfg(not(target_arch = "wasm32"))]
    at: Option<std::time::Instant>,
}

impl Deadline {
    /// A deadline `timeout` from now (zero: already past).
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn after(timeout: Duration) -> Deadline {
        #[cfg(not(target_arch = "wasm32"))]
        {
            Deadline {
                at: if timeout.is_zero() {
                    None
                } else {
                    std::time::Instant::now().checked_add(timeout)
                },
            }
        }
        #[cfg(target_arch = "wasm32")]
        {
            let _ = timeout;
            Deadline {}
        }
    }

    /// Whether the deadline has passed (a zero timeout is past from the start).
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn is_past(&self) -> bool {
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.at.is_none_or(|at| std::time::Instant::now() >= at)
        }
        #[cfg(target_arch = "wasm32")]
        {
            true
        }
    }

    /// Waits on `cv` until notified or the deadline; false once the deadline passed.
    #[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
    pub(crate) fn wait<T>(&self, cv: &Condvar, guard: &mut MutexGuard<'_, T>) -> bool {
        #[cfg(not(target_arch = "wasm32"))]
        {
            match self.at {
                None => false,
                Some(at) => !cv.wait_until(guard, at).timed_out() || self.remaining().is_some(),
            }
        }
        #[cfg(target_arch = "wasm32")]
        {
            false
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[allow(clippy::disallowed_methods)]
    fn remaining(&self) -> Option<Duration> {
        let now = std::time::Instant::now();
        self.at.filter(|at| *at > now).map(|at| at - now)
    }
}

/// Real time elapsed since a mark, for periodic work that must run whatever the
/// broker's Clock says (flushing, persisting metadata). On wasm every check is due.
pub(crate) struct Ticker {
    #[cfg(not(target_arch = "wasm32"))]
    last: std::time::Instant,
}

impl Ticker {
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn new() -> Ticker {
        Ticker {
            #[cfg(not(target_arch = "wasm32"))]
            last: std::time::Instant::now(),
        }
    }

    /// True (and re-arms) when `period` has passed since the last time it was true.
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn due(&mut self, period: Duration) -> bool {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let now = std::time::Instant::now();
            if now.duration_since(self.last) >= period {
                self.last = now;
                return true;
            }
            false
        }
        #[cfg(target_arch = "wasm32")]
        {
            let _ = period;
            true
        }
    }
}

/// Runs `task` once on a background thread.
#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::disallowed_methods)]
pub(crate) fn spawn_task(
    name: &str,
    task: impl FnOnce() + Send + 'static,
) -> Option<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(task)
        .ok()
}

/// Runs `step` every `period` on a background thread until it returns false.
#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::disallowed_methods)]
pub(crate) fn spawn_worker(
    name: &str,
    period: Duration,
    mut step: impl FnMut() -> bool + Send + 'static,
) -> Option<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            while step() {
                std::thread::sleep(period);
            }
        })
        .ok()
}

/// This process's id (0 where there are no processes, as on wasm).
pub(crate) fn process_id() -> u32 {
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::process::id()
    }
    #[cfg(target_arch = "wasm32")]
    {
        0
    }
}

/// Gives other threads a turn (a no-op on wasm).
pub(crate) fn yield_now() {
    #[cfg(not(target_arch = "wasm32"))]
    std::thread::yield_now();
}
