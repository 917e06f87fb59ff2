//! [`Budget`]: how much an LLM analyzer may ask of its server — concurrency, requests and
//! tokens per minute, retries, per-call timeout — and [`RateLimiter`], which enforces the two
//! per-minute limits.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::rt;

/// The limits of an LLM analyzer. Defaults: 3 calls at once (Python Scraipe's
/// `max_workers`), no per-minute limits, 3 retries, 60 s per call, backoff from 0.5 s doubling
/// up to 30 s, `Retry-After` honoured up to 60 s, replies up to 4 MiB.
///
/// ```
/// use std::time::Duration;
/// use scraipe::llm::Budget;
/// let budget = Budget {
///     requests_per_minute: Some(500),
///     tokens_per_minute: Some(200_000),
///     call_timeout: Duration::from_secs(30),
///     ..Budget::default()
/// };
/// assert_eq!(budget.max_workers, 3);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Calls in flight at once, whoever makes them.
    pub max_workers: usize,
    /// Requests started per minute, evenly spaced (`None`: no limit).
    pub requests_per_minute: Option<u32>,
    /// Tokens per minute, counted from the replies' usage fields (estimated from the prompt
    /// size until the reply says; `None`: no limit).
    pub tokens_per_minute: Option<u64>,
    /// Further attempts after a 429, a 5xx, a timeout or a connection failure.
    pub max_retries: u32,
    /// Limit on one call (connect, send, wait, read the reply).
    pub call_timeout: Duration,
    /// First backoff delay; doubles with each retry (with jitter).
    pub backoff_base: Duration,
    /// Longest backoff delay.
    pub backoff_max: Duration,
    /// Longest wait a server's `Retry-After` may impose; longer requests are cut to this.
    pub max_retry_after: Duration,
    /// Largest reply body accepted.
    pub max_reply_bytes: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_workers: 3,
            requests_per_minute: None,
            tokens_per_minute: None,
            max_retries: 3,
            call_timeout: Duration::from_secs(60),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
            max_reply_bytes: 4 << 20,
        }
    }
}

const MINUTE: Duration = Duration::from_secs(60);

/// Spaces requests and meters tokens, both as "theoretical arrival times" (GCRA): each
/// request pushes the request clock forward by `60 s / rpm`, so starts are evenly spaced;
/// each token pushes the token clock forward by `60 s / tpm`, and a call may start while the
/// token clock is less than a minute ahead (a minute's worth of tokens may burst).
///
/// Token use is not known before the reply, so a call reserves an estimate and
/// [`settle`](RateLimiter::settle)s the difference when the reply's usage arrives.
///
/// ```
/// use std::time::{Duration, Instant};
/// use scraipe::llm::RateLimiter;
/// let rt = scraipe::rt::Runtime::new().unwrap();
/// let limiter = RateLimiter::new(Some(1200), None); // one start every 50 ms
/// let started = Instant::now();
/// rt.block_on(async {
///     for _ in 0..3 {
///         limiter.acquire(0).await;
///     }
/// });
/// assert!(started.elapsed() >= Duration::from_millis(100));
/// ```
#[derive(Debug)]
pub struct RateLimiter {
    request_interval: Option<Duration>,
    /// Time one token costs.
    token_cost: Option<Duration>,
    clocks: Mutex<Clocks>,
}

#[derive(Debug)]
struct Clocks {
    requests: Instant,
    tokens: Instant,
}

impl RateLimiter {
    /// A limiter for `rpm` requests and `tpm` tokens per minute (`None`: unlimited; 0 is
    /// treated as 1).
    pub fn new(rpm: Option<u32>, tpm: Option<u64>) -> RateLimiter {
        let now = Instant::now();
        RateLimiter {
            request_interval: rpm.map(|r| MINUTE / r.max(1)),
            token_cost: tpm.map(|t| Duration::from_secs_f64(60.0 / t.max(1) as f64)),
            clocks: Mutex::new(Clocks {
                requests: now,
                tokens: now,
            }),
        }
    }

    /// Whether it limits anything.
    pub fn is_unlimited(&self) -> bool {
        self.request_interval.is_none() && self.token_cost.is_none()
    }

    /// Waits until a call expected to use `estimated_tokens` may start, and books it.
    /// Returns how long it waited.
    pub async fn acquire(&self, estimated_tokens: u64) -> Duration {
        if self.is_unlimited() {
            return Duration::ZERO;
        }
        let start_at = {
            let mut c = self.clocks.lock();
            let now = Instant::now();
            let mut at = now;
            if let Some(interval) = self.request_interval {
                let slot = c.requests.max(now);
                at = at.max(slot);
                c.requests = slot + interval;
            }
            if let Some(cost) = self.token_cost {
                let booked = c.tokens.max(now) + cost.saturating_mul(clamp_u32(estimated_tokens));
                // May start once the booked tokens are no more than a minute ahead of then.
                at = at.max(booked.checked_sub(MINUTE).unwrap_or(now));
                c.tokens = booked;
            }
            at
        };
        let now = Instant::now();
        if start_at > now {
            rt::sleep_until(start_at).await;
            start_at - now
        } else {
            Duration::ZERO
        }
    }

    /// Corrects the token booking of a finished call: `actual` tokens were used where
    /// `estimated` were booked.
    pub fn settle(&self, estimated: u64, actual: u64) {
        let Some(cost) = self.token_cost else { return };
        let mut c = self.clocks.lock();
        if actual >= estimated {
            c.tokens += cost.saturating_mul(clamp_u32(actual - estimated));
        } else {
            let back = cost.saturating_mul(clamp_u32(estimated - actual));
            let now = Instant::now();
            c.tokens = c.tokens.checked_sub(back).unwrap_or(now).max(now);
        }
    }
}

fn clamp_u32(n: u64) -> u32 {
    n.min(u32::MAX as u64) as u32
}

/// A rough token count for a prompt before the server says: one token per four bytes, the
/// usual rule of thumb for English text with BPE tokenizers.
pub fn estimate_tokens(texts: &[&str]) -> u64 {
    let bytes: usize = texts.iter().map(|t| t.len()).sum();
    (bytes as u64).div_ceil(4) + 16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_evenly_spaced() {
        let rt = rt::Runtime::builder().worker_threads(1).build().unwrap();
        let limiter = RateLimiter::new(Some(600), None); // 100 ms apart
        let started = Instant::now();
        let waits = rt.block_on(async {
            let mut w = Vec::new();
            for _ in 0..4 {
                w.push(limiter.acquire(0).await);
            }
            w
        });
        let took = started.elapsed();
        assert_eq!(waits[0], Duration::ZERO);
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_millis(1500), "{took:?}");
    }

    #[test]
    fn tokens_burst_a_minute_then_wait() {
        let rt = rt::Runtime::builder().worker_threads(1).build().unwrap();
        // 60,000 tokens per minute: 1 ms per token.
        let limiter = RateLimiter::new(None, Some(60_000));
        rt.block_on(async {
            // A minute's worth goes at once...
            assert_eq!(limiter.acquire(60_000).await, Duration::ZERO);
            // ...and the next call waits for its own tokens.
            let waited = limiter.acquire(100).await;
            assert!(waited >= Duration::from_millis(90), "{waited:?}");
            // Reporting fewer tokens than booked gives time back.
            limiter.settle(100, 0);
        });
    }

    #[test]
    fn reported_usage_beyond_the_estimate_delays_the_next_call() {
        let rt = rt::Runtime::builder().worker_threads(1).build().unwrap();
        let limiter = RateLimiter::new(None, Some(60_000)); // 1 ms per token
        rt.block_on(async {
            assert_eq!(limiter.acquire(10).await, Duration::ZERO);
            // The reply said the call used a minute's worth and 150 ms more.
            limiter.settle(10, 60_150);
            let waited = limiter.acquire(0).await;
            assert!(waited >= Duration::from_millis(120), "{waited:?}");
            assert!(waited < Duration::from_secs(2), "{waited:?}");
        });
    }

    #[test]
    fn estimates_grow_with_text() {
        assert!(estimate_tokens(&["a".repeat(400).as_str()]) >= 100);
        assert!(estimate_tokens(&[]) > 0);
    }
}
