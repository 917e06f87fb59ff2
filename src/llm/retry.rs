//! When to try an LLM call again and how long to wait first: `Retry-After` (seconds or an
//! HTTP-date), else exponential backoff with jitter, both capped.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Whether a reply status is worth retrying: 408, 409 (a conflict some providers use for
/// "busy"), 429 and every 5xx.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 409 | 429) || (500..600).contains(&status)
}

/// The wait a `Retry-After` header asks for: delay-seconds (integer or decimal, as some LLM
/// gateways send) or an HTTP-date (a date in the past means "now"). `None` if unparsable.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use scraipe::llm::parse_retry_after;
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
/// assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
/// assert_eq!(parse_retry_after("0.5", now), Some(Duration::from_millis(500)));
/// assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now), Some(Duration::from_secs(10)));
/// assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), Some(Duration::ZERO));
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::try_from_secs_f64(secs).ok())
            .flatten();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The backoff before retry number `attempt` (0 for the first retry): `base · 2^attempt`
/// capped at `max`, then "equal jitter" — half of it fixed, half random — so that clients
/// that failed together do not retry together, yet no retry comes immediately.
///
/// ```
/// use std::time::Duration;
/// use scraipe::llm::backoff;
/// let base = Duration::from_millis(100);
/// let max = Duration::from_secs(1);
/// for attempt in 0..10 {
///     let d = backoff(attempt, base, max);
///     let full = (base * 2u32.pow(attempt.min(20))).min(max);
///     assert!(d >= full / 2 && d <= full, "{d:?}");
/// }
/// ```
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let full = base.saturating_mul(1u32 << attempt.min(20)).min(max);
    let half = full / 2;
    half + (full - half).mul_f64(unit_random())
}

/// A random number in [0, 1) from std's randomly seeded hasher and a counter: plenty for
/// jitter, no extra dependency.
fn unit_random() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        for s in [408, 429, 500, 502, 503, 599] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 422] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }

    #[test]
    fn retry_after_rejects_nonsense() {
        let now = SystemTime::now();
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("NaN", now), None);
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
    }

    #[test]
    fn jitter_varies_and_huge_attempts_do_not_overflow() {
        let (b, m) = (Duration::from_secs(1), Duration::from_secs(30));
        let samples: Vec<Duration> = (0..20).map(|_| backoff(3, b, m)).collect();
        assert!(samples.iter().any(|d| *d != samples[0]));
        assert!(backoff(u32::MAX, b, m) <= m);
    }
}
