//! The per-tenant request limiter: keeps a tenant under Intune's limits
//! (writes ≤ 200 per 20 s, all requests ≤ 2,000 per 20 s per tenant)
//! before Graph has to throttle.
//!
//! Algorithm: a **sliding-window log**. The limiter remembers when each
//! request of the last window was let through; a request may go when fewer
//! than the limit went in the window ending now, otherwise it waits until
//! the oldest of them leaves the window. Unlike a token bucket this never
//! lets a burst of twice the limit through across a window edge, which is
//! what Intune's own counters (per 20 s) punish; the log costs at most
//! 2,000 timestamps per tenant.
//!
//! One limiter per tenant per process, shared by every provider instance
//! that talks to that tenant ([`shared`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use crate::clock::Clock;

/// The limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Writes (POST, PATCH, PUT, DELETE) let through per window.
    pub writes: usize,
    /// Requests of any kind let through per window.
    pub requests: usize,
    /// The window.
    pub window: Duration,
}

impl Default for Limits {
    /// Intune's per-tenant limits.
    fn default() -> Self {
        Self {
            writes: 200,
            requests: 2_000,
            window: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, Default)]
struct Log {
    /// When each request of the window went (oldest first).
    all: VecDeque<Duration>,
    /// When each write of the window went (oldest first).
    writes: VecDeque<Duration>,
}

/// A sliding-window limiter over an injected clock.
#[derive(Debug)]
pub struct Limiter {
    limits: Limits,
    clock: Arc<dyn Clock>,
    log: Mutex<Log>,
}

impl Limiter {
    /// A limiter with `limits`, reading time from `clock`.
    pub fn new(limits: Limits, clock: Arc<dyn Clock>) -> Self {
        // A zero limit would block forever: treat it as one.
        let limits = Limits {
            writes: limits.writes.max(1),
            requests: limits.requests.max(1),
            window: limits.window,
        };
        Self {
            limits,
            clock,
            log: Mutex::new(Log::default()),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Waits until `requests` more requests, `writes` of them writes, may
    /// go, and records them. A `$batch` counts as its inner requests, as
    /// Graph counts them. Counts above a limit are clamped to it, so a
    /// request never waits for a window that can never fit it.
    pub async fn acquire(&self, requests: usize, writes: usize) {
        let requests = requests.clamp(1, self.limits.requests);
        let writes = writes.min(requests).min(self.limits.writes);
        loop {
            let wait = {
                let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
                let now = self.clock.now();
                let window = self.limits.window;
                let expired = |t: &Duration| t.saturating_add(window) <= now;
                while log.all.front().is_some_and(expired) {
                    log.all.pop_front();
                }
                while log.writes.front().is_some_and(expired) {
                    log.writes.pop_front();
                }
                // The wait is until enough of the oldest entries leave the
                // window: the entry that must expire is the one `needed`
                // places from the front.
                let wait_for = |q: &VecDeque<Duration>, limit: usize, n: usize| -> Option<Duration> {
                    let over = (q.len() + n).checked_sub(limit)?;
                    if over == 0 {
                        return None;
                    }
                    let t = q.get(over - 1).copied().unwrap_or(now);
                    Some(t.saturating_add(window).saturating_sub(now))
                };
                let w_all = wait_for(&log.all, self.limits.requests, requests);
                let w_writes = if writes > 0 {
                    wait_for(&log.writes, self.limits.writes, writes)
                } else {
                    None
                };
                match w_all.max(w_writes) {
                    None => {
                        log.all.extend(std::iter::repeat_n(now, requests));
                        log.writes.extend(std::iter::repeat_n(now, writes));
                        return;
                    }
                    Some(w) => w,
                }
            };
            // `wait` is positive: an entry inside the window expires
            // strictly after now. Another task may take the freed place
            // first; the loop then waits again.
            self.clock.sleep(wait.max(Duration::from_millis(1))).await;
        }
    }

    /// Requests and writes in the window ending now.
    pub fn in_window(&self) -> (usize, usize) {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now();
        let live = |q: &VecDeque<Duration>| q.iter().filter(|t| t.saturating_add(self.limits.window) > now).count();
        (live(&log.all), live(&log.writes))
    }
}

type Registry = Mutex<HashMap<String, Arc<Limiter>>>;

/// Every limiter of the process, by tenant. Kept for the life of the
/// process (one small entry per tenant reached): a limiter dropped with the
/// provider of one run would forget its window, and the next run would
/// start a second 200 writes inside the same 20 s.
static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// The limiter of `key` (the Graph host and the tenant, see
/// [`crate::graph::GraphProvider`]), shared by every provider of that
/// tenant in the process, run after run; created with `limits` and `clock`
/// the first time the tenant is reached. The limits hold per process: N
/// worker processes reaching one tenant may together send N times as much
/// (Graph's own 429s, honoured with their `Retry-After`, bound the rest).
pub fn shared(key: &str, limits: &Limits, clock: Arc<dyn Clock>) -> Arc<Limiter> {
    let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    reg.entry(key.to_owned())
        .or_insert_with(|| Arc::new(Limiter::new(limits.clone(), clock)))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    async fn settle() {
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    #[tokio::test]
    async fn the_201st_write_within_20_seconds_waits_until_the_window_frees() {
        let clock = Arc::new(ManualClock::new());
        let lim = Arc::new(Limiter::new(Limits::default(), clock.clone()));
        // 200 writes spread over the first 10 s all go at once.
        for i in 0..200u64 {
            if i == 100 {
                clock.advance(Duration::from_secs(10));
            }
            tokio::time::timeout(Duration::from_secs(1), lim.acquire(1, 1))
                .await
                .expect("within the limit: no wait");
        }
        assert_eq!(lim.in_window(), (200, 200));
        let l = Arc::clone(&lim);
        let write = tokio::spawn(async move { l.acquire(1, 1).await });
        clock.wait_for_sleepers(1).await;
        // Reads are not held back by the write limit.
        tokio::time::timeout(Duration::from_secs(1), lim.acquire(1, 0))
            .await
            .expect("a read goes while writes wait");
        // At 19.999 s the first write is still inside the window.
        clock.advance(Duration::from_millis(9_999));
        settle().await;
        assert!(!write.is_finished(), "the 201st write went inside the window");
        // At 20 s the first 100 writes leave the window.
        clock.advance(Duration::from_millis(1));
        tokio::time::timeout(Duration::from_secs(5), write)
            .await
            .expect("the write goes once the window frees")
            .expect("task ran");
        assert_eq!(lim.in_window().1, 101);
    }

    #[tokio::test]
    async fn all_requests_are_held_at_2000_per_window_and_batches_count_per_request() {
        let clock = Arc::new(ManualClock::new());
        let lim = Arc::new(Limiter::new(Limits::default(), clock.clone()));
        for _ in 0..99 {
            lim.acquire(20, 0).await; // 99 batches of 20 = 1,980
        }
        lim.acquire(20, 0).await; // 2,000
        let l = Arc::clone(&lim);
        let read = tokio::spawn(async move { l.acquire(1, 0).await });
        clock.wait_for_sleepers(1).await;
        settle().await;
        assert!(!read.is_finished());
        clock.advance(Duration::from_secs(20));
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("goes when the window moves")
            .expect("task ran");
    }

    #[tokio::test]
    async fn counts_above_a_limit_are_clamped_instead_of_waiting_forever() {
        let clock = Arc::new(ManualClock::new());
        let lim = Limiter::new(
            Limits {
                writes: 2,
                requests: 3,
                window: Duration::from_secs(20),
            },
            clock,
        );
        tokio::time::timeout(Duration::from_secs(1), lim.acquire(50, 50))
            .await
            .expect("clamped");
        assert_eq!(lim.in_window(), (3, 2));
    }

    #[test]
    fn providers_of_one_tenant_share_one_limiter() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let a = shared("graph.test|tenant-a", &Limits::default(), clock.clone());
        let b = shared("graph.test|tenant-a", &Limits::default(), clock.clone());
        let c = shared("graph.test|tenant-b", &Limits::default(), clock);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
