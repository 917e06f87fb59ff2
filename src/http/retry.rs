//! Retrying transient failures: which ones, how long to wait, and a little randomness.

use std::cell::Cell;
use std::time::{Duration, SystemTime};

use crate::http::httpdate;

/// When and how a request is retried after a transient failure.
///
/// Retried: connection failures (refused, unreachable, connect timeouts), connections reset or
/// closed before any response byte, and the statuses 429, 502, 503 and 504. Only idempotent
/// methods (GET, HEAD, PUT, DELETE, OPTIONS) are retried, and only while the request's total
/// deadline leaves room for the wait. The wait before retry *n* (1-based) is "full jitter"
/// backoff — a random time between 0 and `min(max_delay, base_delay × 2ⁿ⁻¹)` — unless the
/// response carried `Retry-After` (seconds or an HTTP date), which is honoured up to
/// `max_retry_after`; a longer `Retry-After` ends the retries and returns that response.
/// When retries run out, the last response (e.g. the 503) or error is returned.
///
/// [`Client`](crate::http::Client)s do not retry unless told to (like reqwest and hyper: one
/// call, one request); the scrapers' default client and `scraipe scrape` use
/// `RetryPolicy::default()`, two retries.
///
/// ```
/// use std::time::Duration;
/// use scraipe::http::{Client, RetryPolicy};
/// let policy = RetryPolicy::new(3)
///     .base_delay(Duration::from_millis(200))
///     .max_delay(Duration::from_secs(5))
///     .max_retry_after(Duration::from_secs(30));
/// let client = Client::builder().retry_policy(policy).build().unwrap();
/// # let _ = client;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_retries: u32,
    base_delay: Duration,
    max_delay: Duration,
    max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// Two retries, 250 ms base delay, 10 s at most between tries, `Retry-After` up to 60 s.
    fn default() -> Self {
        RetryPolicy::new(2)
    }
}

impl RetryPolicy {
    /// Up to `max_retries` retries (so `max_retries + 1` tries) with the default delays.
    pub fn new(max_retries: u32) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }

    /// No retries at all.
    pub fn none() -> RetryPolicy {
        RetryPolicy::new(0)
    }

    /// The backoff ceiling before the first retry; it doubles for each further one.
    pub fn base_delay(mut self, d: Duration) -> RetryPolicy {
        self.base_delay = d;
        self
    }

    /// The largest backoff ceiling.
    pub fn max_delay(mut self, d: Duration) -> RetryPolicy {
        self.max_delay = d;
        self
    }

    /// The longest `Retry-After` honoured; a server asking for more gets no retry.
    pub fn max_retry_after(mut self, d: Duration) -> RetryPolicy {
        self.max_retry_after = d;
        self
    }

    /// Retries allowed.
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// The wait before retry number `retry` (1-based), with full jitter.
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(30);
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay);
        ceiling.mul_f64(jitter())
    }

    /// How long to wait before retry number `retry` (1-based): what `Retry-After` asks for if
    /// the response had a readable one, else the jittered backoff. `None` when the server asks
    /// for longer than `max_retry_after` (no retry then).
    pub(crate) fn wait(
        &self,
        retry: u32,
        retry_after: Option<&str>,
        now: SystemTime,
    ) -> Option<Duration> {
        match retry_after.and_then(|v| parse_retry_after(v, now)) {
            Some(wait) if wait > self.max_retry_after => None,
            Some(wait) => Some(wait),
            None => Some(self.backoff(retry)),
        }
    }
}

/// `Retry-After: 120` or `Retry-After: Fri, 31 Dec 1999 23:59:59 GMT` as a wait from `now`.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Statuses worth another try: the server is busy or a gateway failed.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// A uniform number in [0, 1): xorshift per thread, seeded from the clock and the thread. Not
/// cryptographic; it only keeps many clients from retrying in lockstep.
fn jitter() -> f64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(seed());
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish() | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_under_a_doubling_ceiling() {
        let p = RetryPolicy::new(5)
            .base_delay(Duration::from_millis(100))
            .max_delay(Duration::from_millis(350));
        let mut seen_low = false;
        for _ in 0..200 {
            assert!(p.backoff(1) < Duration::from_millis(100));
            assert!(p.backoff(2) < Duration::from_millis(200));
            assert!(p.backoff(5) < Duration::from_millis(350));
            seen_low |= p.backoff(3) < Duration::from_millis(200);
        }
        assert!(seen_low, "full jitter reaches below half the ceiling");
    }

    #[test]
    fn retry_after_seconds_dates_and_cap() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("later", now), None);
        let p = RetryPolicy::default().max_retry_after(Duration::from_secs(5));
        assert_eq!(p.wait(1, Some("5"), now), Some(Duration::from_secs(5)));
        assert_eq!(p.wait(1, Some("6"), now), None);
        assert!(p.wait(1, Some("garbage"), now).unwrap() < Duration::from_millis(250));
        assert!(p.wait(1, None, now).unwrap() < Duration::from_millis(250));
        assert_eq!(RetryPolicy::default().max_retries(), 2);
        assert_eq!(RetryPolicy::none().max_retries(), 0);
    }
}
