//! A circuit breaker: stop calling a model server that fails every call the same way.
//!
//! Some failures say nothing about the page: a rejected key (401/403), an unknown model or URL
//! (404), an exhausted quota (`insufficient_quota`), a server that cannot be reached at all.
//! Without a breaker each of 500 links would pay for them again — a request each, retries with
//! backoff, a log line per retry (an unreachable server at the default budget: minutes per
//! link). So after such a failure the breaker *opens*: calls fail at once with the reason,
//! without a request, until a pause has passed; then one call goes through (half-open) and
//! either closes the breaker or opens it again.
//!
//! * A configuration failure (401, 403, 404, `insufficient_quota`) opens it at once, for
//!   [`CONFIG_PAUSE`]: a long-running monitor tries again later (the key may be fixed).
//! * An unreachable server (connection refused, DNS, no reply within the timeout, after the
//!   call's own retries) opens it after [`UNREACHABLE_IN_A_ROW`] such calls with no success
//!   between, for [`UNREACHABLE_PAUSE`].

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long a configuration failure keeps the breaker open.
pub const CONFIG_PAUSE: Duration = Duration::from_secs(600);
/// How long an unreachable server keeps it open.
pub const UNREACHABLE_PAUSE: Duration = Duration::from_secs(30);
/// Calls in a row that found the server unreachable before the breaker opens.
pub const UNREACHABLE_IN_A_ROW: u32 = 3;

/// What a failed call says about the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The same for every call: key, model, URL, quota.
    Config,
    /// The server could not be reached (after the call's retries).
    Unreachable,
    /// About this call only (a bad answer, a 500 that outlasted the retries, ...).
    ThisCall,
}

#[derive(Default)]
struct State {
    open_until: Option<Instant>,
    reason: String,
    unreachable_in_a_row: u32,
}

#[derive(Default)]
pub(crate) struct Breaker(Mutex<State>);

impl Breaker {
    /// `Some(reason)` while open: the call must not be sent.
    pub(crate) fn refuses(&self, now: Instant) -> Option<String> {
        let mut s = self.0.lock();
        match s.open_until {
            Some(until) if now < until => Some(s.reason.clone()),
            Some(_) => {
                // Half-open: this call goes through; its outcome decides.
                s.open_until = None;
                None
            }
            None => None,
        }
    }

    /// A call succeeded: the server answers.
    pub(crate) fn success(&self) {
        self.0.lock().unreachable_in_a_row = 0;
    }

    /// A call failed for good with `message`. True when this opened the breaker (the caller
    /// says so once, loudly).
    pub(crate) fn failure(&self, kind: Failure, message: &str, now: Instant) -> bool {
        let mut s = self.0.lock();
        let pause = match kind {
            Failure::Config => CONFIG_PAUSE,
            Failure::Unreachable => {
                s.unreachable_in_a_row += 1;
                if s.unreachable_in_a_row < UNREACHABLE_IN_A_ROW {
                    return false;
                }
                s.unreachable_in_a_row = 0;
                UNREACHABLE_PAUSE
            }
            Failure::ThisCall => {
                s.unreachable_in_a_row = 0;
                return false;
            }
        };
        let was_open = s.open_until.is_some_and(|u| now < u);
        s.open_until = Some(now + pause);
        s.reason = message.to_string();
        !was_open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_failures_open_at_once_unreachable_after_three_in_a_row_and_both_half_open() {
        let b = Breaker::default();
        let t = Instant::now();
        assert_eq!(b.refuses(t), None);
        assert!(!b.failure(Failure::ThisCall, "bad answer", t));
        assert_eq!(b.refuses(t), None);
        assert!(b.failure(Failure::Config, "401 (check the API key)", t));
        assert_eq!(b.refuses(t).as_deref(), Some("401 (check the API key)"));
        assert_eq!(
            b.refuses(t + CONFIG_PAUSE - Duration::from_millis(1))
                .as_deref(),
            Some("401 (check the API key)")
        );
        // Half-open after the pause: one call goes through.
        assert_eq!(b.refuses(t + CONFIG_PAUSE), None);

        let b = Breaker::default();
        assert!(!b.failure(Failure::Unreachable, "refused", t));
        assert!(!b.failure(Failure::Unreachable, "refused", t));
        b.success(); // the count is of calls in a row
        assert!(!b.failure(Failure::Unreachable, "refused", t));
        assert!(!b.failure(Failure::Unreachable, "refused", t));
        assert_eq!(b.refuses(t), None);
        assert!(b.failure(Failure::Unreachable, "refused", t));
        assert_eq!(b.refuses(t).as_deref(), Some("refused"));
        assert_eq!(b.refuses(t + UNREACHABLE_PAUSE), None);
    }
}
