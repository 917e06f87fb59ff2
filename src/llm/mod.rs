//! LLM analyzers: Python Scraipe's `OpenAiAnalyzer` and `GeminiAnalyzer`, on our own client,
//! with answers validated against a JSON Schema, budgets, retries and a cache.
//!
//! * [`LlmAnalyzer`] — the analyzer; [`OpenAiAnalyzer`] / [`GeminiAnalyzer`] build one;
//! * [`Provider`] — what differs between APIs: [`OpenAiProvider`] (Chat Completions, any
//!   compatible server) and [`GeminiProvider`] (`generateContent`);
//! * [`OutputSchema`] — compiled JSON Schema, reply parsing and validation messages;
//! * [`Budget`] and [`RateLimiter`] — concurrency, requests and tokens per minute, retries,
//!   timeouts; [`backoff`] and [`parse_retry_after`] decide the waits;
//! * [`LlmCache`], [`MemoryCache`], [`CacheKey`] — answers kept by request hash;
//! * [`LlmTotals`] — running counters for a run's summary;
//! * [`ApiKey`] — a key that never prints;
//! * [`fake`] — a scripted fake server on loopback for tests and examples.
//!
//! ```
//! use scraipe::llm::{fake::FakeLlmServer, GeminiAnalyzer};
//! use scraipe::Analyzer;
//! use serde_json::json;
//!
//! let server = FakeLlmServer::start().unwrap();
//! let analyzer = GeminiAnalyzer::builder("How many words?")
//!     .base_url(server.gemini_url())
//!     .schema(json!({"type": "object", "properties": {"words": {"type": "integer"}}, "required": ["words"]}))
//!     .build()
//!     .unwrap();
//! let result = analyzer.analyze("one two three");
//! assert_eq!(result.output().unwrap()["words"], 3); // the fake fills numbers with a word count
//! assert_eq!(result.metadata().unwrap()["provider"], "gemini");
//! ```

mod analyzer;
mod breaker;
mod budget;
mod cache;
pub mod fake;
mod gemini;
mod openai;
mod provider;
mod retry;
mod schema;
mod secret;
mod totals;

pub use analyzer::{
    GeminiAnalyzer, LlmAnalyzer, LlmAnalyzerBuilder, LlmConfigError, OpenAiAnalyzer,
    DEFAULT_MAX_CONTENT,
};
pub use budget::{estimate_tokens, Budget, RateLimiter};
pub use cache::{CacheKey, LlmCache, MemoryCache};
pub use gemini::{to_openapi, GeminiProvider, GEMINI_BASE_URL};
pub use openai::{OpenAiProvider, OPENAI_BASE_URL};
pub use provider::{Completion, HttpCall, Prompt, Provider, Usage};
pub use retry::{backoff, is_retryable_status, parse_retry_after};
pub use schema::{parse_object, OutputSchema};
pub use secret::ApiKey;
pub use totals::{LlmTotals, LlmUsage};
