//! # scraipe
//!
//! Scrape links, analyze what comes back, keep the results in a workflow — on a small
//! work-stealing runtime of our own ([`rt`]) and an HTTP/1.1 client built on it ([`http`]).
//!
//! The Scraipe layer follows Python Scraipe 0.1.73:
//!
//! * [`results`] — [`ScrapeResult`] and [`AnalysisResult`];
//! * [`traits`] — [`Scraper`], [`Analyzer`], [`LinkCollector`] and their async counterparts
//!   (implement one async method, get the synchronous API for free);
//! * [`executor`] — the executors that bridge async components to synchronous callers, and
//!   [`AsyncManager`];
//! * [`defaults`] — ready-made components ([`defaults::TextStatsAnalyzer`],
//!   [`defaults::MultiScraper`], ...);
//! * [`politeness`] — per-host limits for large crawls;
//! * [`monitor`] — the price monitor (watch list, schedule, robots.txt, change events), on
//!   [`offer`] extraction;
//! * [`workflow`] — [`Workflow`], which ties it all together;
//! * [`offer`] — price, currency and availability from product pages (the price monitor's extractor);
//! * [`demo`] — a generated site and its HTTP/1.1 server, for the `demo` command and benchmarks.
//!
//! ```
//! use std::sync::Arc;
//! use scraipe::prelude::*;
//! use scraipe::defaults::TextStatsAnalyzer;
//!
//! struct Greeter;
//! #[async_trait]
//! impl AsyncScraper for Greeter {
//!     async fn async_scrape(&self, link: &str) -> ScrapeResult {
//!         ScrapeResult::succeed(link, "Hello there! Nice to meet you.")
//!     }
//! }
//!
//! let mut workflow = Workflow::new(Arc::new(Greeter), Arc::new(TextStatsAnalyzer));
//! workflow.scrape(["https://a.example", "https://b.example"], false);
//! workflow.analyze(false);
//! let table = workflow.export(false);
//! assert_eq!(table.get(0, "sentence_count"), Some(&serde_json::json!(2)));
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod defaults;
pub mod demo;
pub mod executor;
pub mod http;
pub mod llm;
pub mod monitor;
pub mod offer;
pub mod politeness;
pub mod results;
pub mod rt;
pub mod stream;
pub mod traits;
pub mod util;
pub mod workflow;

pub use async_trait::async_trait;
pub use executor::{AsyncExecutor, AsyncExecutorExt, AsyncManager};
pub use results::{AnalysisResult, ScrapeResult};
pub use traits::{
    AnalysisIter, Analyzer, AsyncAnalyzer, AsyncLinkCollector, AsyncScraper, LinkCollector,
    LinkIter, ScrapeIter, Scraper,
};
pub use workflow::Workflow;

/// The names most programs need: `use scraipe::prelude::*;`.
pub mod prelude {
    pub use crate::async_trait;
    pub use crate::executor::{AsyncExecutor, AsyncExecutorExt, AsyncManager};
    pub use crate::results::{AnalysisResult, ScrapeResult};
    pub use crate::traits::{
        Analyzer, AsyncAnalyzer, AsyncLinkCollector, AsyncScraper, LinkCollector, Scraper,
    };
    pub use crate::workflow::Workflow;
}

/// The README's Rust examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
