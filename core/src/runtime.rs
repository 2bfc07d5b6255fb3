//! The one place that reads real (monotonic) time and starts threads. Long-poll
//! deadlines are real time whatever the broker's Clock says; on wasm there is no
//! waiting at all (a deadline is always already past) and the JS host drives `tick`.

use std::time::Duration;

use parking_lot::{Condvar, MutexGuard};

/// How often the background thread looks for due work.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) const STEP_PERIOD: Duration = Duration::from_millis(5);

/// Real time now: a monotonic instant on native targets, JavaScript's clock (ms) on
/// wasm, where there is no `Instant`.
#[cfg(not(target_arch = "wasm32"))]
type Instant = std::time::Instant;
#[cfg(target_arch = "wasm32")]
type Instant = f64;

#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::disallowed_methods)]
fn instant_now() -> Instant {
    std::time::Instant::now()
}
#[cfg(target_arch = "wasm32")]
fn instant_now() -> Instant {
    js_sys::Date::now()
}

#[cfg(not(target_arch = "wasm32"))]
fn instant_after(timeout: Duration) -> Option<Instant> {
    instant_now().checked_add(timeout)
}
#[cfg(target_arch = "wasm32")]
fn instant_after(timeout: Duration) -> Option<Instant> {
    Some(instant_now() + timeout.as_secs_f64() * 1000.0)
}

#[cfg(not(target_arch = "wasm32"))]
fn until(at: Instant) -> Duration {
    at.saturating_duration_since(instant_now())
}
#[cfg(target_arch = "wasm32")]
fn until(at: Instant) -> Duration {
    Duration::from_secs_f64((at - instant_now()).max(0.0) / 1000.0)
}

/// A point in real time by which a wait must end. Waits block only on native
/// targets; on wasm a wait returns at once and the JS host awaits instead.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Deadline {
    /// Already past (a zero timeout).
    Past,
    At(Instant),
    /// No deadline (no timeout, or one too far to represent).
    Never,
}

impl Deadline {
    /// A deadline `timeout` from now (zero: already past).
    pub(crate) fn after(timeout: Duration) -> Deadline {
        if timeout.is_zero() {
            return Deadline::Past;
        }
        instant_after(timeout).map_or(Deadline::Never, Deadline::At)
    }

    /// A deadline `timeout` from now; none for `None`.
    pub(crate) fn within(timeout: Option<Duration>) -> Deadline {
        timeout.map_or(Deadline::Never, Deadline::after)
    }

    /// The earlier of two deadlines.
    pub(crate) fn min(self, other: Deadline) -> Deadline {
        match (self, other) {
            (Deadline::Past, _) | (_, Deadline::Past) => Deadline::Past,
            (Deadline::Never, d) | (d, Deadline::Never) => d,
            (Deadline::At(a), Deadline::At(b)) => Deadline::At(if a <= b { a } else { b }),
        }
    }

    /// Whether the deadline has passed (a zero timeout is past from the start).
    pub(crate) fn is_past(&self) -> bool {
        match self {
            Deadline::Past => true,
            Deadline::At(at) => instant_now() >= *at,
            Deadline::Never => false,
        }
    }

    /// Real time left; None for no deadline.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        match self {
            Deadline::Past => Some(Duration::ZERO),
            Deadline::At(at) => Some(until(*at)),
            Deadline::Never => None,
        }
    }

    /// Waits on `cv` until notified or the deadline; false once the deadline passed
    /// (always at once on wasm, which cannot block).
    #[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
    pub(crate) fn wait<T>(&self, cv: &Condvar, guard: &mut MutexGuard<'_, T>) -> bool {
        #[cfg(not(target_arch = "wasm32"))]
        {
            match self {
                Deadline::Past => false,
                Deadline::At(at) => !cv.wait_until(guard, *at).timed_out() || !self.is_past(),
                Deadline::Never => {
                    cv.wait(guard);
                    true
                }
            }
        }
        #[cfg(target_arch = "wasm32")]
        {
            false
        }
    }
}

/// Threads waiting for one event, all woken together by `wake_all`: each goes on at
/// once on whatever core it gets (a condvar's waiters wake one after another, each
/// handing its mutex to the next). A waiter registers, checks its condition again,
/// then parks; a wake-up may be spurious, so it checks in a loop. On wasm nothing
/// blocks: `park` returns false at once.
#[derive(Default)]
pub(crate) struct Waiters {
    #[cfg(not(target_arch = "wasm32"))]
    threads: parking_lot::Mutex<Vec<std::thread::Thread>>,
}

impl Waiters {
    /// Adds this thread to the next `wake_all`.
    pub(crate) fn register(&self) {
        #[cfg(not(target_arch = "wasm32"))]
        self.threads.lock().push(std::thread::current());
    }

    /// Parks this thread until a `wake_all` after its `register` (or spuriously) or
    /// `deadline`; false once the deadline passed.
    #[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
    pub(crate) fn park(&self, deadline: Deadline) -> bool {
        #[cfg(not(target_arch = "wasm32"))]
        {
            match deadline {
                Deadline::Past => false,
                Deadline::At(at) => {
                    std::thread::park_timeout(until(at));
                    !deadline.is_past()
                }
                Deadline::Never => {
                    std::thread::park();
                    true
                }
            }
        }
        #[cfg(target_arch = "wasm32")]
        {
            false
        }
    }

    /// Wakes every thread registered so far.
    pub(crate) fn wake_all(&self) {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let threads = std::mem::take(&mut *self.threads.lock());
            for t in threads {
                t.unpark();
            }
        }
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

/// Real time since a start, for measuring (native targets only).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) struct Stopwatch(std::time::Instant);

#[cfg(not(target_arch = "wasm32"))]
impl Stopwatch {
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn start() -> Stopwatch {
        Stopwatch(std::time::Instant::now())
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.0.elapsed()
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

/// Bumped in a child process right after `fork()` (by a `pthread_atfork` handler),
/// so a broker can tell, with one atomic load, that it is being used in a process
/// other than the one that opened it.
static FORKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Which process this is, as far as brokers care: changes in a forked child.
pub(crate) fn process_generation() -> u64 {
    FORKS.load(std::sync::atomic::Ordering::Acquire)
}

/// Installs (once per process) the fork handler behind `process_generation`.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn watch_forks() {
    #[cfg(unix)]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        extern "C" fn in_child() {
            // Async-signal-safe: one atomic add, nothing else.
            FORKS.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        ONCE.call_once(|| {
            // SAFETY: registers a handler that only does an atomic add; the
            // registration itself has no other effect.
            unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
        });
    }
}

/// Host randomness given by `add_entropy`.
static ENTROPY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Mixes host randomness into the ids the engine makes (each new store's message-id
/// nonce). Native targets draw their own from the OS; on wasm32-unknown-unknown
/// there is none, so the JS binding passes the host's at start-up: without it every
/// process would number its stores' messages alike.
pub fn add_entropy(seed: u64) {
    let mixed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    ENTROPY.fetch_xor(mixed, std::sync::atomic::Ordering::Relaxed);
}

/// What `add_entropy` gave (0 if nothing).
pub(crate) fn entropy() -> u64 {
    ENTROPY.load(std::sync::atomic::Ordering::Relaxed)
}

/// The host's process id given by `set_process_id` (wasm).
static HOST_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Tells the engine its process id where it cannot ask (wasm32-unknown-unknown under
/// Node: the JS binding passes `process.pid` at start-up), so that what it records
/// of its process (a store's abort marker, named when another process takes the
/// store over) names it. Native targets ignore it.
pub fn set_process_id(pid: u32) {
    HOST_PID.store(pid, std::sync::atomic::Ordering::Relaxed);
}

/// This process's id (on wasm the host's, or 0 where there is none).
pub(crate) fn process_id() -> u32 {
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::process::id()
    }
    #[cfg(target_arch = "wasm32")]
    {
        HOST_PID.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Gives other threads a turn (a no-op on wasm).
pub(crate) fn yield_now() {
    #[cfg(not(target_arch = "wasm32"))]
    std::thread::yield_now();
}
