//! [`LlmTotals`]: running counters shared by every analysis of one (or several) LLM analyzers,
//! for a run's summary and for cost tracking.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

use crate::util::group_digits as group;

/// Shared counters, updated as analyses run. Share one `Arc<LlmTotals>` between analyzers
/// (see [`LlmAnalyzerBuilder::totals`](super::LlmAnalyzerBuilder::totals)) to total a run.
#[derive(Debug, Default)]
pub struct LlmTotals {
    analyses: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    cache_hits: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
}

/// A snapshot of [`LlmTotals`]. Its `Display` is the CLI's summary line:
///
/// ```
/// use scraipe::llm::LlmUsage;
/// let u = LlmUsage { analyses: 3, succeeded: 2, failed: 1, cache_hits: 1, requests: 3,
///                    retries: 1, prompt_tokens: 1200, completion_tokens: 34 };
/// assert_eq!(u.to_string(),
///     "llm: 3 analyses (2 ok, 1 failed, 1 from cache), 3 requests, 1 retry, 1,234 tokens (1,200 prompt + 34 completion)");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LlmUsage {
    /// Analyses asked for.
    pub analyses: u64,
    /// Of those, succeeded (cache hits included).
    pub succeeded: u64,
    /// Of those, failed.
    pub failed: u64,
    /// Analyses answered from the cache.
    pub cache_hits: u64,
    /// HTTP requests sent (retries included).
    pub requests: u64,
    /// Retries after a 429, 5xx, timeout or connection failure.
    pub retries: u64,
    /// Prompt tokens the servers reported.
    pub prompt_tokens: u64,
    /// Completion tokens the servers reported.
    pub completion_tokens: u64,
}

impl LlmUsage {
    /// Prompt plus completion tokens.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

impl LlmTotals {
    /// Zeroed counters.
    pub fn new() -> LlmTotals {
        LlmTotals::default()
    }

    /// The counters now.
    pub fn snapshot(&self) -> LlmUsage {
        LlmUsage {
            analyses: self.analyses.load(Relaxed),
            succeeded: self.succeeded.load(Relaxed),
            failed: self.failed.load(Relaxed),
            cache_hits: self.cache_hits.load(Relaxed),
            requests: self.requests.load(Relaxed),
            retries: self.retries.load(Relaxed),
            prompt_tokens: self.prompt_tokens.load(Relaxed),
            completion_tokens: self.completion_tokens.load(Relaxed),
        }
    }

    pub(crate) fn analysis(&self) {
        self.analyses.fetch_add(1, Relaxed);
    }
    pub(crate) fn outcome(&self, ok: bool) {
        if ok { &self.succeeded } else { &self.failed }.fetch_add(1, Relaxed);
    }
    pub(crate) fn cache_hit(&self) {
        self.cache_hits.fetch_add(1, Relaxed);
    }
    pub(crate) fn request(&self) {
        self.requests.fetch_add(1, Relaxed);
    }
    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, Relaxed);
    }
    pub(crate) fn tokens(&self, prompt: u64, completion: u64) {
        self.prompt_tokens.fetch_add(prompt, Relaxed);
        self.completion_tokens.fetch_add(completion, Relaxed);
    }
}

impl fmt::Display for LlmUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: u64, one: &str, many: &str| {
            format!("{} {}", group(n), if n == 1 { one } else { many })
        };
        write!(
            f,
            "llm: {} ({} ok, {} failed, {} from cache), {}, {}, {} ({} prompt + {} completion)",
            plural(self.analyses, "analysis", "analyses"),
            group(self.succeeded),
            group(self.failed),
            group(self.cache_hits),
            plural(self.requests, "request", "requests"),
            plural(self.retries, "retry", "retries"),
            plural(self.total_tokens(), "token", "tokens"),
            group(self.prompt_tokens),
            group(self.completion_tokens),
        )
    }
}
