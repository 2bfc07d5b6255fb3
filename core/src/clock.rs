//! Where the engine's time comes from. Every deferred job (flush, delays, retries,
//! transaction checks, retention) asks a `Clock` for `now`; nothing else in the core
//! reads the system time. `ManualClock` makes all of it deterministic in tests and
//! notebooks: time moves only when `advance` is called.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// Whether time moves only when told to (`ManualClock`): then every call on a
    /// broker first runs the work that came due, as no background thread could have
    /// seen the jump yet.
    fn is_manual(&self) -> bool {
        false
    }
}

/// The real wall clock (JavaScript's `Date.now()` on wasm).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[cfg(not(target_arch = "wasm32"))]
    #[allow(clippy::disallowed_methods)]
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    #[cfg(target_arch = "wasm32")]
    fn now_ms(&self) -> u64 {
        js_sys::Date::now() as u64
    }
}

/// A clock that moves only when told to. Cloning shares the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

/// The latest time a clock may show: the last millisecond of the year 9999. Every
/// time the engine computes from `now` stays representable below it.
pub const MAX_TIME_MS: u64 = 253_402_300_799_999;

impl ManualClock {
    /// A manual clock at `start_ms` (milliseconds since the epoch; at most
    /// [`MAX_TIME_MS`], beyond which it stays).
    pub fn new(start_ms: u64) -> ManualClock {
        ManualClock {
            now: Arc::new(AtomicU64::new(start_ms.min(MAX_TIME_MS))),
        }
    }

    /// A manual clock at `start_ms`; `InvalidArgument` beyond [`MAX_TIME_MS`].
    pub fn try_new(start_ms: u64) -> crate::Result<ManualClock> {
        check_time("start", start_ms)?;
        Ok(ManualClock::new(start_ms))
    }

    /// Moves the clock forward by `ms`; `InvalidArgument` (and no move at all) when
    /// that would take it past [`MAX_TIME_MS`].
    pub fn try_advance_ms(&self, ms: u64) -> crate::Result<()> {
        let mut cur = self.now.load(Ordering::SeqCst);
        loop {
            let next = cur.checked_add(ms).filter(|t| *t <= MAX_TIME_MS);
            let Some(next) = next else {
                return Err(crate::Error::invalid(format!(
                    "advancing by {ms} ms would take the clock past the year 9999"
                )));
            };
            match self
                .now
                .compare_exchange(cur, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Ok(()),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Sets the clock to `ms` (never backwards); `InvalidArgument` beyond
    /// [`MAX_TIME_MS`].
    pub fn try_set_ms(&self, ms: u64) -> crate::Result<()> {
        check_time("the time", ms)?;
        self.set_ms(ms);
        Ok(())
    }

    /// A manual clock that starts at the current wall-clock time.
    pub fn starting_now() -> ManualClock {
        ManualClock::new(SystemClock.now_ms())
    }

    /// Moves the clock forward by `ms` milliseconds (never past [`MAX_TIME_MS`],
    /// never backwards).
    pub fn advance_ms(&self, ms: u64) {
        let _ = self
            .now
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(ms).min(MAX_TIME_MS))
            });
    }

    /// Sets the clock to `ms`; it never moves backwards (nor past [`MAX_TIME_MS`]).
    pub fn set_ms(&self, ms: u64) {
        self.now.fetch_max(ms.min(MAX_TIME_MS), Ordering::SeqCst);
    }
}

fn check_time(what: &str, ms: u64) -> crate::Result<()> {
    if ms > MAX_TIME_MS {
        return Err(crate::Error::invalid(format!(
            "{what} ({ms} ms since the epoch) is past the year 9999"
        )));
    }
    Ok(())
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    fn is_manual(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_never_moves_backwards() {
        let c = ManualClock::new(1_700_000_000_000);
        assert!(c.try_advance_ms(18_000_000_000_000_000).is_err());
        assert_eq!(c.now_ms(), 1_700_000_000_000);
        c.advance_ms(u64::MAX);
        assert_eq!(c.now_ms(), MAX_TIME_MS);
        c.advance_ms(1);
        assert_eq!(c.now_ms(), MAX_TIME_MS);
        assert!(ManualClock::try_new(MAX_TIME_MS + 1).is_err());
    }
}
