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
/// then parks; a wake-up may be spurious, so it checks in a loop. On Linux the
/// waiters sleep on one futex word, which `wake_all` bumps and wakes in one system
/// call. On wasm nothing blocks: `park` returns false at once.
#[derive(Default)]
pub(crate) struct Waiters {
    /// Bumped by every `wake_all`: a waiter sleeps while the word still holds the
    /// value it registered with.
    #[cfg(target_os = "linux")]
    epoch: std::sync::atomic::AtomicU32,
    /// Registered waiters, so that a `wake_all` with none makes no system call.
    #[cfg(target_os = "linux")]
    registered: std::sync::atomic::AtomicU32,
    #[cfg(all(not(target_arch = "wasm32"), not(target_os = "linux")))]
    threads: parking_lot::Mutex<Vec<std::thread::Thread>>,
}

/// A waiter's registration, given to `park`; dropped, the waiter is no longer
/// counted.
pub(crate) struct Ticket<'a> {
    #[cfg(target_os = "linux")]
    waiters: &'a Waiters,
    #[cfg(target_os = "linux")]
    epoch: u32,
    #[cfg(not(target_os = "linux"))]
    _waiters: std::marker::PhantomData<&'a Waiters>,
}

#[cfg(target_os = "linux")]
impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.waiters.registered.fetch_sub(1, SeqCst);
    }
}

impl Waiters {
    /// Adds this thread to the next `wake_all`.
    pub(crate) fn register(&self) -> Ticket<'_> {
        #[cfg(target_os = "linux")]
        {
            use std::sync::atomic::Ordering::SeqCst;
            // Counted before the epoch is read: a `wake_all` that bumps the epoch
            // after this read then sees the count, and makes its system call.
            self.registered.fetch_add(1, SeqCst);
            Ticket {
                waiters: self,
                epoch: self.epoch.load(SeqCst),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            #[cfg(not(target_arch = "wasm32"))]
            self.threads.lock().push(std::thread::current());
            Ticket {
                _waiters: std::marker::PhantomData,
            }
        }
    }

    /// Parks this thread until a `wake_all` after its `register` (or spuriously) or
    /// `deadline`; false once the deadline passed.
    #[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
    pub(crate) fn park(&self, ticket: Ticket<'_>, deadline: Deadline) -> bool {
        #[cfg(target_os = "linux")]
        {
            let timeout = match deadline {
                Deadline::Past => return false,
                Deadline::At(at) => {
                    let left = until(at);
                    Some(libc::timespec {
                        tv_sec: left.as_secs().min(i32::MAX as u64) as libc::time_t,
                        tv_nsec: left.subsec_nanos() as libc::c_long,
                    })
                }
                Deadline::Never => None,
            };
            let timeout = timeout
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: FUTEX_WAIT on a word this struct owns, with a valid timeout or
            // none; it returns at once when the word no longer holds the ticket's
            // value, and on a wake-up, the timeout or a signal.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.epoch.as_ptr(),
                    libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                    ticket.epoch,
                    timeout,
                )
            };
            drop(ticket);
            !deadline.is_past()
        }
        #[cfg(all(not(target_arch = "wasm32"), not(target_os = "linux")))]
        {
            drop(ticket);
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
        #[cfg(target_os = "linux")]
        {
            use std::sync::atomic::Ordering::SeqCst;
            self.epoch.fetch_add(1, SeqCst);
            if self.registered.load(SeqCst) > 0 {
                // SAFETY: FUTEX_WAKE of every thread waiting on a word this struct owns.
                unsafe {
                    libc::syscall(
                        libc::SYS_futex,
                        self.epoch.as_ptr(),
                        libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                        i32::MAX,
                    )
                };
            }
        }
        #[cfg(all(not(target_arch = "wasm32"), not(target_os = "linux")))]
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

#[cfg(all(test, not(target_arch = "wasm32")))]
#[allow(clippy::disallowed_methods)] // the tests' own threads
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc};

    /// Runs `f` on a thread of its own and fails if it takes longer than `limit`
    /// (a lost wake-up hangs rather than fails).
    fn within(limit: Duration, f: impl FnOnce() + Send + 'static) {
        let (done, finished) = mpsc::channel();
        let h = std::thread::spawn(move || {
            f();
            let _ = done.send(());
        });
        finished
            .recv_timeout(limit)
            .expect("the waiters were not woken in time");
        h.join().unwrap();
    }

    #[test]
    fn wake_all_wakes_every_waiter_at_once() {
        within(Duration::from_secs(10), || {
            let waiters = Arc::new(Waiters::default());
            let go = Arc::new(AtomicBool::new(false));
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    let (waiters, go) = (waiters.clone(), go.clone());
                    std::thread::spawn(move || loop {
                        let ticket = waiters.register();
                        if go.load(Ordering::Acquire) {
                            return;
                        }
                        waiters.park(ticket, Deadline::Never);
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(50));
            go.store(true, Ordering::Release);
            waiters.wake_all();
            for h in hs {
                h.join().unwrap();
            }
            #[cfg(target_os = "linux")]
            assert_eq!(waiters.registered.load(Ordering::SeqCst), 0);
        });
    }

    #[test]
    fn a_wake_between_register_and_park_is_not_lost() {
        within(Duration::from_secs(10), || {
            let waiters = Waiters::default();
            let ticket = waiters.register();
            waiters.wake_all();
            // Parks with no deadline: returns only because the wake came after the
            // registration.
            assert!(waiters.park(ticket, Deadline::Never));
        });
    }

    #[test]
    fn park_returns_false_once_the_deadline_passed() {
        within(Duration::from_secs(10), || {
            let waiters = Waiters::default();
            let deadline = Deadline::after(Duration::from_millis(30));
            let mut woken = true;
            while woken {
                woken = waiters.park(waiters.register(), deadline);
            }
            assert!(deadline.is_past());
            assert!(!waiters.park(waiters.register(), Deadline::Past));
            #[cfg(target_os = "linux")]
            assert_eq!(waiters.registered.load(Ordering::SeqCst), 0);
        });
    }
}
