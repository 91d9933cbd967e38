//! When to try a Graph request again, and how long to wait first:
//! `Retry-After` in its three spellings, otherwise exponential backoff with
//! full jitter.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// How requests are retried.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (the first one included) before a throttled or
    /// unavailable answer is handed back to the engine.
    pub max_attempts: u32,
    /// The first backoff's upper bound; each later one doubles it.
    pub base: Duration,
    /// No backoff waits longer than this.
    pub cap: Duration,
    /// A `Retry-After` longer than this is not waited out inside the
    /// request: the request fails with
    /// [`Throttled`](crate::ProviderError::Throttled) at once, carrying
    /// the wait, so the engine can reschedule the run instead of holding a
    /// worker.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

/// The longest wait a `Retry-After` can ask for here (a day); anything
/// longer is read as a day, so a hostile or broken header cannot overflow a
/// timer.
const RETRY_AFTER_CEILING: Duration = Duration::from_secs(24 * 3600);

/// Reads a `Retry-After` value: integer seconds (`"2"`), decimal seconds
/// (`"0.5"`, which Graph's Intune endpoints send), or an HTTP-date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`, measured from `now`; a date in the
/// past is no wait). Anything else is `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = v.parse().ok()?;
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        let d = Duration::try_from_secs_f64(secs).unwrap_or(RETRY_AFTER_CEILING);
        return Some(d.min(RETRY_AFTER_CEILING));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(RETRY_AFTER_CEILING),
    )
}

/// The wait before retry number `retry` (0 for the first retry):
/// uniformly random in `[0, min(cap, base · 2^retry)]` ("full jitter"), so
/// many clients throttled together do not come back together.
pub fn backoff(policy: &RetryPolicy, retry: u32, rng: &mut impl Rng) -> Duration {
    let ceiling = backoff_ceiling(policy, retry);
    let max_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rng.gen_range(0..=max_ms))
}

/// The upper bound of [`backoff`] for retry number `retry`.
pub fn backoff_ceiling(policy: &RetryPolicy, retry: u32) -> Duration {
    let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
    policy.base.saturating_mul(factor).min(policy.cap)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn retry_after_reads_integer_decimal_and_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470); // 07:27:50 GMT
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("0.5", now), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("1.25", now), Some(Duration::from_millis(1250)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past is no wait"
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(RETRY_AFTER_CEILING),
            "an absurd wait is bounded, not a panic"
        );
    }

    #[test]
    fn garbage_retry_after_is_none() {
        let now = SystemTime::now();
        for bad in [
            "",
            "  ",
            "soon",
            "-1",
            "1e3",
            "NaN",
            "inf",
            "1.2.3",
            ".",
            "Wed, 99 Foo 2015",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn backoff_stays_within_its_doubling_ceiling_and_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(backoff_ceiling(&p, 0), Duration::from_millis(500));
        assert_eq!(backoff_ceiling(&p, 1), Duration::from_secs(1));
        assert_eq!(backoff_ceiling(&p, 5), Duration::from_secs(16));
        assert_eq!(backoff_ceiling(&p, 6), Duration::from_secs(30), "capped");
        assert_eq!(backoff_ceiling(&p, 200), Duration::from_secs(30), "no overflow");
        let mut rng = StdRng::seed_from_u64(7);
        for retry in 0..10 {
            let mut seen_low = false;
            let mut seen_high = false;
            let ceiling = backoff_ceiling(&p, retry);
            for _ in 0..400 {
                let d = backoff(&p, retry, &mut rng);
                assert!(d <= ceiling, "retry {retry}: {d:?} > {ceiling:?}");
                seen_low |= d < ceiling / 4;
                seen_high |= d > ceiling * 3 / 4;
            }
            assert!(seen_low && seen_high, "retry {retry}: jitter spans the range");
        }
    }
}
