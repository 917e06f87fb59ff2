//! [`MultiAnalyzer`]: run several analyzers on the same content and merge their outputs.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::executor::{guarded, AsyncExecutorExt, AsyncManager, TaskError, DEFAULT_TIMEOUT};
use crate::results::AnalysisResult;
use crate::traits::{Analyzer, AsyncAnalyzer};

/// A [`MultiAnalyzer`] needs at least one analyzer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoAnalyzers;

impl fmt::Display for NoAnalyzers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a MultiAnalyzer needs at least one analyzer")
    }
}

impl std::error::Error for NoAnalyzers {}

type Pending<'a> = Pin<Box<dyn Future<Output = AnalysisResult> + Send + 'a>>;

/// Polls all futures concurrently; outputs in input order.
async fn join_all_in_order(futures: Vec<Pending<'_>>) -> Vec<AnalysisResult> {
    let mut slots: Vec<Option<Pending<'_>>> = futures.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<AnalysisResult>> = slots.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, output) in slots.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(out) => {
                        *output = Some(out);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.unwrap_or_else(|| AnalysisResult::fail("analyzer produced no result")))
        .collect()
}

/// Runs several analyzers on the same content at once and merges their outputs (Python
/// Scraipe's `MultiAnalyzer`).
///
/// * Async analyzers are awaited concurrently (each within its own timeout); synchronous ones
///   run on the blocking pool, concurrently too. Every member must answer within 90 % of this
///   analyzer's [`timeout`](MultiAnalyzer::timeout): a slower one fails alone, and the
///   members that answered still make the result.
/// * The merged result succeeds if any analyzer succeeded. Output keys produced by more than
///   one successful analyzer are renamed `{Name}-{index}_{key}` (the analyzer's
///   [name](Analyzer::name) and position), all occurrences included, as in Python.
/// * If every analyzer failed: `All analyzers failed... Name[FAIL]: error; ...`.
/// * With [`debug`](MultiAnalyzer::debug), a success carries the chain
///   (`Name[SUCCESS]; Other[FAIL]: ...`) in its output under `"debug_chain"` (Python puts it
///   in `analysis_error`; here a success never has an error).
///
/// ```
/// use std::sync::Arc;
/// use scraipe::defaults::{MultiAnalyzer, TextStatsAnalyzer};
/// use scraipe::{AnalysisResult, Analyzer};
///
/// struct Lang;
/// impl Analyzer for Lang {
///     fn analyze(&self, _: &str) -> AnalysisResult {
///         let mut out = serde_json::Map::new();
///         out.insert("language".into(), "en".into());
///         out.insert("word_count".into(), 999.into());
///         AnalysisResult::succeed(out)
///     }
/// }
///
/// let multi = MultiAnalyzer::new(vec![Arc::new(TextStatsAnalyzer), Arc::new(Lang)])?;
/// let out = multi.analyze("Hello world.").into_output().unwrap();
/// assert_eq!(out["language"], "en");
/// assert_eq!(out["TextStatsAnalyzer-0_word_count"], 2);
/// assert_eq!(out["Lang-1_word_count"], 999);
/// assert_eq!(out["sentence_count"], 1);
/// # Ok::<(), scraipe::defaults::NoAnalyzers>(())
/// ```
pub struct MultiAnalyzer {
    analyzers: Vec<Arc<dyn Analyzer>>,
    max_workers: usize,
    debug: bool,
    debug_delimiter: String,
    timeout: Option<Duration>,
}

impl MultiAnalyzer {
    /// A multi-analyzer over `analyzers` (at least one).
    pub fn new(analyzers: Vec<Arc<dyn Analyzer>>) -> Result<MultiAnalyzer, NoAnalyzers> {
        if analyzers.is_empty() {
            return Err(NoAnalyzers);
        }
        Ok(MultiAnalyzer {
            analyzers,
            max_workers: 10,
            debug: false,
            debug_delimiter: "; ".to_string(),
            timeout: Some(DEFAULT_TIMEOUT),
        })
    }

    /// Records the chain of analyzers in successful outputs.
    pub fn debug(mut self, debug: bool) -> MultiAnalyzer {
        self.debug = debug;
        self
    }

    /// The separator of the debug chain (default `"; "`).
    pub fn debug_delimiter(mut self, delimiter: impl Into<String>) -> MultiAnalyzer {
        self.debug_delimiter = delimiter.into();
        self
    }

    /// How many contents `analyze_multiple` handles at once (default 10, as in Python).
    pub fn max_workers(mut self, n: usize) -> MultiAnalyzer {
        self.max_workers = n.max(1);
        self
    }

    /// The time limit for one content, all analyzers together, through the sync bridge
    /// (default 60 s).
    pub fn timeout(mut self, timeout: Option<Duration>) -> MultiAnalyzer {
        self.timeout = timeout;
        self
    }

    /// The analyzers.
    pub fn analyzers(&self) -> &[Arc<dyn Analyzer>] {
        &self.analyzers
    }

    fn merge(&self, results: Vec<AnalysisResult>) -> AnalysisResult {
        let mut chain = Vec::with_capacity(results.len());
        for (analyzer, result) in self.analyzers.iter().zip(&results) {
            let name = analyzer.name();
            match result.error() {
                None => chain.push(format!("{name}[SUCCESS]")),
                Some(e) => chain.push(format!("{name}[FAIL]: {e}")),
            }
        }
        let chain = chain.join(&self.debug_delimiter);
        if !results.iter().any(AnalysisResult::success) {
            return AnalysisResult::fail(format!("All analyzers failed... {chain}"));
        }
        let mut seen = HashSet::new();
        let mut conflicting = HashSet::new();
        for output in results.iter().filter_map(AnalysisResult::output) {
            for key in output.keys() {
                if !seen.insert(key.as_str()) {
                    conflicting.insert(key.as_str());
                }
            }
        }
        let mut merged = Map::new();
        for (index, (analyzer, result)) in self.analyzers.iter().zip(&results).enumerate() {
            let Some(output) = result.output() else {
                continue;
            };
            for (key, value) in output {
                if conflicting.contains(key.as_str()) {
                    merged.insert(format!("{}-{index}_{key}", analyzer.name()), value.clone());
                } else {
                    merged.insert(key.clone(), value.clone());
                }
            }
        }
        if self.debug {
            merged.insert("debug_chain".into(), Value::String(chain));
        }
        AnalysisResult::succeed(merged)
    }
}

#[async_trait]
impl AsyncAnalyzer for MultiAnalyzer {
    async fn async_analyze(&self, content: &str) -> AnalysisResult {
        // Every member ends a little before this analyzer's own timeout would cancel the whole
        // join: a slow member then fails alone, and the members that answered are kept.
        let started = Instant::now();
        let members_end = self.timeout.map(|t| started + t.mul_f64(0.9));
        let left = move || members_end.map(|end| end.saturating_duration_since(Instant::now()));
        let mut work: Vec<Pending<'_>> = Vec::with_capacity(self.analyzers.len());
        for analyzer in &self.analyzers {
            match analyzer.as_async() {
                Some(a) => {
                    let limit = match (a.timeout(), left()) {
                        (Some(own), Some(left)) => Some(own.min(left)),
                        (own, left) => own.or(left),
                    };
                    work.push(Box::pin(async move {
                        guarded(a.async_analyze(content), limit)
                            .await
                            .unwrap_or_else(|e| AnalysisResult::fail(e.to_string()))
                    }))
                }
                None => {
                    let (analyzer, content) = (analyzer.clone(), content.to_string());
                    let task = AsyncManager::get_executor()
                        .spawn_blocking(move || analyzer.analyze(&content));
                    let limit = left();
                    work.push(Box::pin(async move {
                        guarded(task, limit)
                            .await
                            .and_then(|done| done)
                            .unwrap_or_else(|e: TaskError| AnalysisResult::fail(e.to_string()))
                    }));
                }
            }
        }
        let results = join_all_in_order(work).await;
        self.merge(results)
    }

    fn max_workers(&self) -> usize {
        self.max_workers
    }

    fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

impl fmt::Debug for MultiAnalyzer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.analyzers.iter().map(|a| a.name()).collect();
        f.debug_struct("MultiAnalyzer")
            .field("analyzers", &names)
            .field("debug", &self.debug)
            .field("max_workers", &self.max_workers)
            .finish()
    }
}
