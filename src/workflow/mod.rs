//! [`Workflow`]: collect links, scrape them, analyse the content, and keep every result in a
//! store keyed by link (Python Scraipe's `Workflow`).
//!
//! ```
//! use std::sync::Arc;
//! use scraipe::defaults::{ListLinkCollector, TextStatsAnalyzer};
//! use scraipe::{async_trait, AsyncScraper, ScrapeResult, Workflow};
//!
//! struct FakeWeb;
//! #[async_trait]
//! impl AsyncScraper for FakeWeb {
//!     async fn async_scrape(&self, link: &str) -> ScrapeResult {
//!         match link.strip_prefix("https://site.example/") {
//!             Some(page) => ScrapeResult::succeed(link, format!("This is {page}. It works!")),
//!             None => ScrapeResult::fail(link, "unknown host"),
//!         }
//!     }
//! }
//!
//! let mut workflow = Workflow::new(Arc::new(FakeWeb), Arc::new(TextStatsAnalyzer))
//!     .with_link_collector(Arc::new(ListLinkCollector::new([
//!         "https://site.example/home",
//!         "https://elsewhere.example/",
//!         "https://site.example/home", // duplicates are scraped once
//!     ])));
//! assert_eq!(workflow.collect_links()?, 3);
//! let scrapes = workflow.scrape_stored(false);
//! assert_eq!(scrapes.len(), 2);
//! let analyses = workflow.analyze(false);
//! assert_eq!(analyses.len(), 1, "only successful scrapes are analysed");
//! assert_eq!(analyses[0].1.output().unwrap()["sentence_count"], 2);
//!
//! let table = workflow.export(false);
//! assert_eq!(table.columns()[..2], ["link", "word_count"]);
//! # Ok::<(), scraipe::workflow::WorkflowError>(())
//! ```

mod export;
mod store;

use std::collections::HashSet;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;

use crate::executor::panic_message;
use crate::results::{AnalysisResult, ScrapeResult};
use crate::traits::{Analyzer, LinkCollector, Scraper};

pub use export::ExportTable;
pub use store::{StoreError, StoreFormat};

/// The scrape and analysis results of one link.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreRecord {
    /// The link (the store's key).
    pub link: String,
    /// Its latest scrape, if it was scraped.
    pub scrape_result: Option<ScrapeResult>,
    /// Its latest analysis, if it was analysed.
    pub analysis_result: Option<AnalysisResult>,
}

impl StoreRecord {
    fn new(link: String) -> StoreRecord {
        StoreRecord {
            link,
            scrape_result: None,
            analysis_result: None,
        }
    }
}

/// Which step a [`Progress`] report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// [`Workflow::collect_links`].
    CollectLinks,
    /// [`Workflow::scrape`].
    Scrape,
    /// [`Workflow::analyze`].
    Analyze,
}

/// One step of progress, passed to the callback set with [`Workflow::on_progress`].
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// The step running.
    pub stage: Stage,
    /// Items done so far in this step, this one included.
    pub done: usize,
    /// Items this step will do, when known (link collection does not know).
    pub total: Option<usize>,
    /// The link just handled.
    pub link: &'a str,
    /// Whether it succeeded (always true for collected links).
    pub success: bool,
}

/// A workflow step could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkflowError {
    /// [`Workflow::collect_links`] without a link collector.
    NoLinkCollector,
    /// The link collector panicked; links collected before that were kept.
    CollectorPanicked(String),
}

impl fmt::Display for WorkflowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkflowError::NoLinkCollector => f.write_str(
                "the workflow has no link collector (see Workflow::with_link_collector)",
            ),
            WorkflowError::CollectorPanicked(m) => write!(f, "the link collector panicked: {m}"),
        }
    }
}

impl std::error::Error for WorkflowError {}

type ProgressFn = Box<dyn FnMut(&Progress<'_>) + Send + Sync>;

/// Orchestrates collecting, scraping and analysing, and stores the results by link in
/// insertion order (Python Scraipe's `Workflow`). See the [module docs](self) for an example.
///
/// Guarantees:
/// * every link given to [`scrape`](Workflow::scrape) gets exactly one result — a scraper that
///   panics, hangs past its timeout, errors or forgets a link yields a failed result naming
///   why;
/// * every content given to the analyzer gets exactly one analysis, likewise;
/// * failed scrapes and failed analyses are retried by the next `scrape` / `analyze` without
///   `overwrite`, successful ones are not.
///
/// Steps are logged with the [`log`] crate (target `scraipe::workflow`).
pub struct Workflow {
    scraper: Arc<dyn Scraper>,
    analyzer: Arc<dyn Analyzer>,
    link_collector: Option<Arc<dyn LinkCollector>>,
    store: IndexMap<String, StoreRecord>,
    progress: Option<ProgressFn>,
}

impl Workflow {
    /// A workflow with this scraper and analyzer and an empty store.
    pub fn new(scraper: Arc<dyn Scraper>, analyzer: Arc<dyn Analyzer>) -> Workflow {
        Workflow {
            scraper,
            analyzer,
            link_collector: None,
            store: IndexMap::new(),
            progress: None,
        }
    }

    /// Sets the link collector used by [`collect_links`](Workflow::collect_links).
    pub fn with_link_collector(mut self, collector: Arc<dyn LinkCollector>) -> Workflow {
        self.link_collector = Some(collector);
        self
    }

    /// Calls `callback` after each collected link, scrape and analysis (Python shows a tqdm
    /// bar; hook a progress bar here).
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use scraipe::defaults::TextStatsAnalyzer;
    /// use scraipe::{ScrapeResult, Scraper, Workflow};
    ///
    /// struct Same;
    /// impl Scraper for Same {
    ///     fn scrape(&self, link: &str) -> ScrapeResult {
    ///         ScrapeResult::succeed(link, "text")
    ///     }
    /// }
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let sink = seen.clone();
    /// let mut workflow = Workflow::new(Arc::new(Same), Arc::new(TextStatsAnalyzer));
    /// workflow.on_progress(move |p| sink.lock().unwrap().push((p.done, p.total)));
    /// workflow.scrape(["a", "b"], false);
    /// assert_eq!(*seen.lock().unwrap(), [(1, Some(2)), (2, Some(2))]);
    /// ```
    pub fn on_progress(&mut self, callback: impl FnMut(&Progress<'_>) + Send + Sync + 'static) {
        self.progress = Some(Box::new(callback));
    }

    /// Removes the progress callback.
    pub fn clear_progress(&mut self) {
        self.progress = None;
    }

    /// The scraper.
    pub fn scraper(&self) -> &Arc<dyn Scraper> {
        &self.scraper
    }

    /// The analyzer.
    pub fn analyzer(&self) -> &Arc<dyn Analyzer> {
        &self.analyzer
    }

    /// Replaces the scraper (the store is kept).
    pub fn set_scraper(&mut self, scraper: Arc<dyn Scraper>) {
        self.scraper = scraper;
    }

    /// Replaces the analyzer (the store is kept).
    pub fn set_analyzer(&mut self, analyzer: Arc<dyn Analyzer>) {
        self.analyzer = analyzer;
    }

    fn report(
        &mut self,
        stage: Stage,
        done: usize,
        total: Option<usize>,
        link: &str,
        success: bool,
    ) {
        if let Some(callback) = self.progress.as_mut() {
            callback(&Progress {
                stage,
                done,
                total,
                link,
                success,
            });
        }
    }

    /// Runs the link collector and adds the links it yields to the store (new ones at the
    /// end, known ones untouched). Returns how many links it yielded.
    pub fn collect_links(&mut self) -> Result<usize, WorkflowError> {
        let collector = self
            .link_collector
            .clone()
            .ok_or(WorkflowError::NoLinkCollector)?;
        let mut count = 0usize;
        let mut panicked = None;
        match catch_unwind(AssertUnwindSafe(|| collector.collect_links())) {
            Ok(mut links) => loop {
                match catch_unwind(AssertUnwindSafe(|| links.next())) {
                    Ok(Some(link)) => {
                        count += 1;
                        if !self.store.contains_key(&link) {
                            self.store
                                .insert(link.clone(), StoreRecord::new(link.clone()));
                        }
                        self.report(Stage::CollectLinks, count, None, &link, true);
                    }
                    Ok(None) => break,
                    Err(payload) => {
                        panicked = Some(panic_message(payload));
                        break;
                    }
                }
            },
            Err(payload) => panicked = Some(panic_message(payload)),
        }
        match panicked {
            Some(message) => {
                log::error!(target: "scraipe::workflow", "link collector panicked after {count} links: {message}");
                Err(WorkflowError::CollectorPanicked(message))
            }
            None => {
                log::info!(target: "scraipe::workflow", "Collected {count} links.");
                Ok(count)
            }
        }
    }

    /// Scrapes `links` and stores the results; returns the results of this call, one per
    /// distinct link scraped, in the order given. Duplicates are scraped once; links already
    /// scraped successfully are skipped unless `overwrite` (failed ones are retried) and are
    /// not in the returned list — their results stay in the store
    /// ([`get_scrapes`](Workflow::get_scrapes)).
    pub fn scrape<I, S>(&mut self, links: I, overwrite: bool) -> Vec<ScrapeResult>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut seen = HashSet::new();
        let links: Vec<String> = links
            .into_iter()
            .map(Into::into)
            .filter(|link| seen.insert(link.clone()))
            .filter(|link| overwrite || !self.scraped_ok(link))
            .collect();
        self.run_scrape(links)
    }

    /// Scrapes the links already in the store (collected or loaded); see
    /// [`scrape`](Workflow::scrape).
    pub fn scrape_stored(&mut self, overwrite: bool) -> Vec<ScrapeResult> {
        if self.store.is_empty() {
            log::warn!(target: "scraipe::workflow", "No links in the store: call collect_links() first.");
        }
        let links: Vec<String> = self.store.keys().cloned().collect();
        self.scrape(links, overwrite)
    }

    fn scraped_ok(&self, link: &str) -> bool {
        self.store
            .get(link)
            .and_then(|r| r.scrape_result.as_ref())
            .is_some_and(ScrapeResult::success)
    }

    fn run_scrape(&mut self, links: Vec<String>) -> Vec<ScrapeResult> {
        let total = links.len();
        if total == 0 {
            return Vec::new();
        }
        for link in &links {
            if !self.store.contains_key(link) {
                self.store
                    .insert(link.clone(), StoreRecord::new(link.clone()));
            }
        }
        let mut pending: HashSet<String> = links.iter().cloned().collect();
        let mut done = 0usize;
        let mut missing = "the scraper returned no result for this link".to_string();
        let scraper = self.scraper.clone();
        match catch_unwind(AssertUnwindSafe(|| scraper.scrape_multiple(links.clone()))) {
            Ok(mut results) => {
                loop {
                    match catch_unwind(AssertUnwindSafe(|| results.next())) {
                        Ok(Some((link, result))) => {
                            if !pending.remove(&link) {
                                // The first result for a requested link is the one kept: an
                                // extra row must not add a link nor replace that result.
                                log::warn!(target: "scraipe::workflow", "scraper returned an unrequested or repeated result for {link}; ignored");
                                continue;
                            }
                            let success = result.success();
                            self.store_scrape(&link, result);
                            done += 1;
                            self.report(Stage::Scrape, done, Some(total), &link, success);
                        }
                        Ok(None) => break,
                        Err(payload) => {
                            missing = format!("the scraper panicked: {}", panic_message(payload));
                            log::error!(target: "scraipe::workflow", "Error during scraping: {missing}. Halting.");
                            break;
                        }
                    }
                }
                // Dropping an iterator that just panicked may panic again.
                let _ = catch_unwind(AssertUnwindSafe(move || drop(results)));
            }
            Err(payload) => {
                missing = format!("the scraper panicked: {}", panic_message(payload));
                log::error!(target: "scraipe::workflow", "Error during scraping: {missing}. Halting.");
            }
        }
        for link in &links {
            if pending.remove(link) {
                self.store_scrape(link, ScrapeResult::fail(link.as_str(), missing.as_str()));
                done += 1;
                self.report(Stage::Scrape, done, Some(total), link, false);
            }
        }
        let results: Vec<ScrapeResult> = links
            .iter()
            .filter_map(|link| self.store.get(link).and_then(|r| r.scrape_result.clone()))
            .collect();
        let ok = results.iter().filter(|r| r.success()).count();
        log::info!(target: "scraipe::workflow", "Successfully scraped {ok}/{total} links.");
        results
    }

    /// Stores a scrape under `link`, re-keying a result that names another link (its own link
    /// is kept in metadata as `original_link`). A scrape whose content differs from the one it
    /// replaces (or that failed) drops the link's analysis: it was of the old content, and
    /// `analyze(false)` would otherwise never look at the new one.
    fn store_scrape(&mut self, link: &str, result: ScrapeResult) {
        let result = if result.link() != link {
            let original = result.link().to_string();
            log::warn!(target: "scraipe::workflow", "result for {link} names another link ({original}); stored under {link}");
            let mut result = result.relinked(link);
            result
                .metadata_mut()
                .insert("original_link".into(), original.into());
            result
        } else {
            result
        };
        let record = self
            .store
            .entry(link.to_string())
            .or_insert_with(|| StoreRecord::new(link.to_string()));
        let same_content = result.success()
            && record
                .scrape_result
                .as_ref()
                .is_some_and(|old| old.success() && old.content() == result.content());
        if !same_content {
            record.analysis_result = None;
        }
        record.scrape_result = Some(result);
    }

    /// Analyses the content of successfully scraped links and stores the results; returns
    /// `(link, result)` per analysed link, in store order. Links already analysed successfully
    /// are skipped unless `overwrite` (failed analyses are retried).
    pub fn analyze(&mut self, overwrite: bool) -> Vec<(String, AnalysisResult)> {
        let items: Vec<(String, String)> = self
            .store
            .values()
            .filter(|r| {
                overwrite
                    || !r
                        .analysis_result
                        .as_ref()
                        .is_some_and(AnalysisResult::success)
            })
            .filter_map(|r| {
                let content = r.scrape_result.as_ref()?.content()?;
                Some((r.link.clone(), content.to_string()))
            })
            .collect();
        let total = items.len();
        log::info!(target: "scraipe::workflow", "found {total} links with content to analyze");
        if total == 0 {
            return Vec::new();
        }
        let links: Vec<String> = items.iter().map(|(link, _)| link.clone()).collect();
        let mut pending: HashSet<String> = links.iter().cloned().collect();
        let mut done = 0usize;
        let mut missing = "the analyzer returned no result for this link".to_string();
        let analyzer = self.analyzer.clone();
        match catch_unwind(AssertUnwindSafe(|| analyzer.analyze_multiple(items))) {
            Ok(mut results) => {
                loop {
                    match catch_unwind(AssertUnwindSafe(|| results.next())) {
                        Ok(Some((link, result))) => {
                            let Some(record) = self.store.get_mut(&link) else {
                                log::warn!(target: "scraipe::workflow", "analyzer returned a result for unknown link {link}; dropped");
                                continue;
                            };
                            let success = result.success();
                            record.analysis_result = Some(result);
                            if pending.remove(&link) {
                                done += 1;
                                self.report(Stage::Analyze, done, Some(total), &link, success);
                            }
                        }
                        Ok(None) => break,
                        Err(payload) => {
                            missing = format!("the analyzer panicked: {}", panic_message(payload));
                            log::error!(target: "scraipe::workflow", "Error during analysis: {missing}. Halting.");
                            break;
                        }
                    }
                }
                let _ = catch_unwind(AssertUnwindSafe(move || drop(results)));
            }
            Err(payload) => {
                missing = format!("the analyzer panicked: {}", panic_message(payload));
                log::error!(target: "scraipe::workflow", "Error during analysis: {missing}. Halting.");
            }
        }
        for link in &links {
            if pending.remove(link) {
                if let Some(record) = self.store.get_mut(link) {
                    record.analysis_result = Some(AnalysisResult::fail(missing.as_str()));
                }
                done += 1;
                self.report(Stage::Analyze, done, Some(total), link, false);
            }
        }
        let results: Vec<(String, AnalysisResult)> = links
            .iter()
            .filter_map(|link| {
                let result = self.store.get(link)?.analysis_result.clone()?;
                Some((link.clone(), result))
            })
            .collect();
        let ok = results.iter().filter(|(_, r)| r.success()).count();
        log::info!(target: "scraipe::workflow", "Successfully analyzed {ok}/{total} links.");
        results
    }

    /// Every link in the store, in insertion order.
    pub fn get_links(&self) -> Vec<String> {
        self.store.keys().cloned().collect()
    }

    /// The stored scrape results, in store order.
    pub fn get_scrapes(&self) -> Vec<ScrapeResult> {
        self.store
            .values()
            .filter_map(|r| r.scrape_result.clone())
            .collect()
    }

    /// The stored analysis results with their links, in store order.
    pub fn get_analyses(&self) -> Vec<(String, AnalysisResult)> {
        self.store
            .values()
            .filter_map(|r| Some((r.link.clone(), r.analysis_result.clone()?)))
            .collect()
    }

    /// All records, in store order.
    pub fn records(&self) -> impl Iterator<Item = &StoreRecord> + '_ {
        self.store.values()
    }

    /// The record of one link.
    pub fn record(&self, link: &str) -> Option<&StoreRecord> {
        self.store.get(link)
    }

    /// Number of links in the store.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// True when the store is empty.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Stores scrape results (by their own link), replacing earlier ones.
    pub fn update_scrapes(&mut self, results: impl IntoIterator<Item = ScrapeResult>) {
        let mut n = 0usize;
        for result in results {
            let link = result.link().to_string();
            self.store_scrape(&link, result);
            n += 1;
        }
        log::info!(target: "scraipe::workflow", "Updated {n} scrape results.");
    }

    /// Stores analysis results by link, replacing earlier ones (links not yet in the store
    /// are added).
    pub fn update_analyses(&mut self, results: impl IntoIterator<Item = (String, AnalysisResult)>) {
        let mut n = 0usize;
        for (link, result) in results {
            self.store
                .entry(link.clone())
                .or_insert_with(|| StoreRecord::new(link))
                .analysis_result = Some(result);
            n += 1;
        }
        log::info!(target: "scraipe::workflow", "Updated {n} analysis results.");
    }

    /// Forgets every scrape result (links and analyses stay).
    pub fn clear_scrapes(&mut self) {
        for record in self.store.values_mut() {
            record.scrape_result = None;
        }
        log::info!(target: "scraipe::workflow", "Cleared all scrape results.");
    }

    /// Forgets every analysis result.
    pub fn clear_analyses(&mut self) {
        for record in self.store.values_mut() {
            record.analysis_result = None;
        }
        log::info!(target: "scraipe::workflow", "Cleared all analysis results.");
    }

    /// Empties the store.
    pub fn clear_store(&mut self) {
        self.store.clear();
        log::info!(target: "scraipe::workflow", "Flushed all records from the store.");
    }

    /// Writes the store to `path`: JSON Lines for `.jsonl`/`.ndjson`, CSV for `.csv`. Both
    /// round-trip exactly through [`load_store`](Workflow::load_store).
    pub fn dump_store(&self, path: impl AsRef<Path>) -> Result<(), StoreError> {
        let path = path.as_ref();
        let format = StoreFormat::from_path(path)?;
        let file = std::fs::File::create(path)?;
        let mut writer = std::io::BufWriter::new(file);
        self.dump_store_to(&mut writer, format)?;
        std::io::Write::flush(&mut writer)?;
        Ok(())
    }

    /// Writes the store to `writer` in `format`.
    pub fn dump_store_to(
        &self,
        writer: impl std::io::Write,
        format: StoreFormat,
    ) -> Result<(), StoreError> {
        store::write(self.store.values(), writer, format)
    }

    /// Reads a store written by [`dump_store`](Workflow::dump_store) (format by extension).
    /// With `flush`, the current store is replaced; otherwise loaded records replace the
    /// records of the same links and the others are added. Nothing changes if the file is
    /// invalid. Returns the number of records read.
    pub fn load_store(&mut self, path: impl AsRef<Path>, flush: bool) -> Result<usize, StoreError> {
        let path = path.as_ref();
        let format = StoreFormat::from_path(path)?;
        let file = std::fs::File::open(path)?;
        self.load_store_from(std::io::BufReader::new(file), format, flush)
    }

    /// Reads a store from `reader` in `format`; see [`load_store`](Workflow::load_store).
    pub fn load_store_from(
        &mut self,
        reader: impl std::io::Read,
        format: StoreFormat,
        flush: bool,
    ) -> Result<usize, StoreError> {
        let records = store::read(reader, format)?;
        let n = records.len();
        if flush {
            self.store.clear();
        }
        for record in records {
            self.store.insert(record.link.clone(), record);
        }
        log::info!(target: "scraipe::workflow", "Loaded {n} records.");
        Ok(n)
    }

    /// The store as a table with the analysis outputs flattened into columns (nested objects
    /// become `parent.child` columns, as pandas' `json_normalize` does). With `verbose`, the
    /// success and error columns are included.
    pub fn export(&self, verbose: bool) -> ExportTable {
        export::export(self.store.values(), verbose)
    }
}

impl fmt::Debug for Workflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workflow")
            .field("scraper", &self.scraper.name())
            .field("analyzer", &self.analyzer.name())
            .field("has_link_collector", &self.link_collector.is_some())
            .field("records", &self.store.len())
            .finish()
    }
}
