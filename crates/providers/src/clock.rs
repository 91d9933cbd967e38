//! Injected time for the providers: "now" and "wait", so the Graph
//! provider's limiter, token cache and backoff can be tested by moving a
//! [`ManualClock`] instead of sleeping.
//!
//! Times are monotonic offsets from the clock's own origin (not wall-clock
//! dates): everything here measures intervals (a 20-second window, a
//! token's remaining life, a `Retry-After`), never calendar time.

use std::fmt;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;

/// A source of monotonic time that can also wait.
#[async_trait]
pub trait Clock: Send + Sync + fmt::Debug {
    /// Time elapsed since the clock's origin.
    fn now(&self) -> Duration;

    /// Returns once the clock has moved forward by `d`.
    async fn sleep(&self, d: Duration);
}

/// The process's monotonic clock; sleeps with tokio's timer.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

/// The origin every [`SystemClock`] shares, so offsets from different
/// instances compare.
static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Duration {
        ORIGIN.elapsed()
    }

    async fn sleep(&self, d: Duration) {
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
}

/// A clock that moves only when told to. A [`sleep`](Clock::sleep) on it
/// returns when [`advance`](ManualClock::advance) has moved the clock past
/// the sleeper's deadline.
#[derive(Debug)]
pub struct ManualClock {
    // A watch channel: every sleeper holds a receiver and wakes when the
    // time it watches reaches its deadline; the receiver count is the
    // number of sleepers, which tests wait on instead of guessing.
    now: watch::Sender<Duration>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock at its origin (zero).
    pub fn new() -> Self {
        Self {
            now: watch::Sender::new(Duration::ZERO),
        }
    }

    /// Moves the clock forward by `d`, waking every sleeper whose deadline
    /// has come.
    pub fn advance(&self, d: Duration) {
        self.now.send_modify(|t| *t = t.saturating_add(d));
    }

    /// How many tasks are sleeping on this clock right now.
    pub fn sleepers(&self) -> usize {
        self.now.receiver_count()
    }

    /// Returns once at least `n` tasks sleep on this clock (polls every
    /// millisecond of real time; for tests that must know a task is
    /// blocked before they move the clock).
    pub async fn wait_for_sleepers(&self, n: usize) {
        while self.sleepers() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> Duration {
        *self.now.borrow()
    }

    async fn sleep(&self, d: Duration) {
        if d.is_zero() {
            return;
        }
        let mut rx = self.now.subscribe();
        let deadline = rx.borrow().saturating_add(d);
        // The sender lives as long as `self`, which outlives this call, so
        // the wait can only end with the deadline reached.
        let _ = rx.wait_for(|t| *t >= deadline).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_manual_sleep_ends_only_when_the_clock_passes_its_deadline() {
        let clock = Arc::new(ManualClock::new());
        let c = Arc::clone(&clock);
        let task = tokio::spawn(async move { c.sleep(Duration::from_secs(5)).await });
        clock.wait_for_sleepers(1).await;
        clock.advance(Duration::from_millis(4_999));
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!task.is_finished(), "woke before its deadline");
        clock.advance(Duration::from_millis(1));
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("woke after the deadline")
            .expect("task ran");
        assert_eq!(clock.now(), Duration::from_secs(5));
        assert_eq!(clock.sleepers(), 0);
    }

    #[tokio::test]
    async fn the_system_clock_moves_forward() {
        let a = SystemClock.now();
        SystemClock.sleep(Duration::from_millis(5)).await;
        assert!(SystemClock.now() >= a + Duration::from_millis(5));
    }
}
