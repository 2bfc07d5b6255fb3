//! The one place that reads real (monotonic) time and starts threads. Long-poll
//! deadlines are real time whatever the broker's Clock says; on wasm there is no
//! waiting at all (a deadline is always already past) and the JS host drives `tick`.

use std::time::Duration;

use parking_lot::{Condvar, MutexGuard};

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

    /// Waits on `cv` until notified or the deadline; false once the deadline passed.
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
            let _ = (cv, guard);
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
