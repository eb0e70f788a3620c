//! Time, injected: a [`Clock`] trait, the [`SystemClock`] and a
//! [`ManualClock`] that tests move by hand.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Duration, Utc};

/// A source of the current time. Everything in tuneloop that reads the time
/// takes one, so tests and simulations control it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told. Clones share one time.
///
/// ```
/// use chrono::{Duration, TimeZone, Utc};
/// use tuneloop_core::{Clock, ManualClock};
/// let clock = ManualClock::new(Utc.timestamp_opt(0, 0).unwrap());
/// let shared = clock.clone();
/// clock.advance(Duration::seconds(90));
/// assert_eq!(shared.now().timestamp(), 90);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock by `by` (which may be negative, to test code that
    /// must survive a clock going backwards). Saturates at the ends of
    /// `DateTime`'s range.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = now.checked_add_signed(by) {
            *now = t;
        }
    }

    /// Sets the clock to `t`.
    pub fn set(&self, t: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = t;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = Utc.timestamp_opt(1_700_000_000, 0).single();
        let Some(start) = start else {
            panic!("valid timestamp")
        };
        let c = ManualClock::new(start);
        assert_eq!(c.now(), start);
        c.advance(Duration::milliseconds(-1500));
        assert_eq!(c.now().timestamp_millis(), 1_700_000_000_000 - 1500);
        c.advance(Duration::MAX);
        c.advance(Duration::MAX);
        c.set(start);
        assert_eq!(c.now(), start);
        assert!(SystemClock.now() > start);
    }
}
