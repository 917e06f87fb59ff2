//! The streaming scrape pipeline behind `scraipe scrape`.
//!
//! Links start at most `concurrency` at a time. Rows must come out in input order, so finished
//! rows wait in a reorder buffer until every earlier link is done — and no link starts more than
//! `window` places ahead of the oldest unwritten one, so memory is bounded by the window, not by
//! the number of links. Every link yields exactly one row: a scrape that fails, times out or
//! panics becomes a failed row.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map};

use scraipe::politeness::{host_of, HostLimiter};
use scraipe::rt::sync::mpsc::{unbounded, UnboundedSender};
use scraipe::rt::{self, Runtime};
use scraipe::{AnalysisResult, Analyzer, AsyncScraper, ScrapeResult};

use super::output::Row;

/// What the pipeline reports to its consumer. (A `Row` travels by value once; boxing it
/// would only add an allocation.)
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// The next row, in input order.
    Row(Row),
    /// The rows available right now have all been handed over: a good moment to flush, so
    /// output streams even when the next link is slow.
    Written,
}

pub struct Settings {
    pub concurrency: usize,
    pub window: usize,
    pub timeout: Duration,
    /// `--per-host`: a link waits for its host's permit before its deadline starts.
    pub per_host: Option<HostLimiter>,
}

/// Sends a row for its link when dropped without having sent one (the task panicked or was
/// cancelled), so no link is ever left without a row.
struct Reply {
    index: usize,
    link: String,
    analyzed: bool,
    tx: Option<UnboundedSender<(usize, Row)>>,
}

impl Reply {
    fn send(mut self, row: Row) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send((self.index, row));
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let failed = failed(
                &self.link,
                "the scrape task panicked".into(),
                "panic",
                Duration::ZERO,
            );
            let _ = tx.send((self.index, Row::new(&failed, self.analyzed, None)));
        }
    }
}

fn failed(link: &str, error: String, kind: &str, elapsed: Duration) -> ScrapeResult {
    let mut meta = Map::new();
    meta.insert("status".into(), json!(null));
    meta.insert("final_url".into(), json!(link));
    meta.insert("content_type".into(), json!(null));
    meta.insert("elapsed_ms".into(), json!(elapsed.as_millis() as u64));
    meta.insert("error_kind".into(), json!(kind));
    ScrapeResult::fail(link, error).with_metadata(meta)
}

/// Scrapes (and analyzes) every link, handing each row to `on_event` in input order.
pub fn run(
    runtime: &Runtime,
    links: Vec<String>,
    scraper: Arc<dyn AsyncScraper>,
    analyzer: Option<Arc<dyn Analyzer>>,
    settings: &Settings,
    mut on_event: impl FnMut(Event) -> io::Result<()>,
) -> io::Result<()> {
    let n = links.len();
    let links: Vec<Arc<str>> = links.into_iter().map(Arc::from).collect();
    runtime.block_on(async {
        let (tx, mut rx) = unbounded::<(usize, Row)>();
        let mut pending: BTreeMap<usize, Row> = BTreeMap::new();
        let (mut next_start, mut next_write, mut in_flight) = (0usize, 0usize, 0usize);
        while next_write < n {
            while in_flight < settings.concurrency
                && next_start < n
                && next_start - next_write < settings.window
            {
                let reply = Reply {
                    index: next_start,
                    link: links[next_start].to_string(),
                    analyzed: analyzer.is_some(),
                    tx: Some(tx.clone()),
                };
                let (link, scraper, analyzer, timeout, per_host) = (
                    links[next_start].clone(),
                    scraper.clone(),
                    analyzer.clone(),
                    settings.timeout,
                    settings.per_host.clone(),
                );
                drop(rt::spawn(async move {
                    let row =
                        scrape_one(&link, &*scraper, analyzer, timeout, per_host.as_ref()).await;
                    reply.send(row);
                }));
                in_flight += 1;
                next_start += 1;
            }
            let Some((index, row)) = rx.recv().await else {
                return Err(io::Error::other(
                    "internal error: the scrape tasks went away",
                ));
            };
            in_flight -= 1;
            pending.insert(index, row);
            let mut wrote = false;
            while let Some(row) = pending.remove(&next_write) {
                on_event(Event::Row(row))?;
                next_write += 1;
                wrote = true;
            }
            if wrote {
                on_event(Event::Written)?;
            }
        }
        Ok(())
    })
}

fn timed_out(link: &str, timeout: Duration, analyzed: bool) -> Row {
    let msg = format!(
        "Failed to scrape {link}. Error: timed out after {} s",
        timeout.as_secs_f64()
    );
    Row::new(&failed(link, msg, "timeout", timeout), analyzed, None)
}

/// Scrapes one link and analyses its content. The per-link `timeout` covers the scrape and a
/// synchronous analysis; an async analyzer (an LLM call) runs after it under its own budget
/// (per-call timeout, bounded retries), since a model may take longer than a page.
///
/// With `per_host`, the link first waits for its host's permit, and its deadline starts when
/// the permit is granted: waiting for a busy host is the politeness the user asked for, not
/// the link's slowness (counting it made links that were never sent fail as timeouts).
async fn scrape_one(
    link: &str,
    scraper: &dyn AsyncScraper,
    analyzer: Option<Arc<dyn Analyzer>>,
    timeout: Duration,
    per_host: Option<&HostLimiter>,
) -> Row {
    let permit = match per_host.zip(host_of(link)) {
        Some((limiter, host)) => Some(limiter.acquire(&host).await),
        None => None,
    };
    let deadline = Instant::now() + timeout;
    let analyzed = analyzer.is_some();
    let scraped = rt::timeout_at(deadline, scraper.async_scrape(link)).await;
    drop(permit);
    let Ok(scraped) = scraped else {
        return timed_out(link, timeout, analyzed);
    };
    let Some(analyzer) = analyzer else {
        return Row::new(&scraped, false, None);
    };
    let Some(content) = scraped.content().map(str::to_string) else {
        return Row::new(&scraped, true, None);
    };
    let analysis = if let Some(remote) = analyzer.as_async() {
        remote.async_analyze(&content).await
    } else {
        // Analysis is CPU work: run it on the blocking pool so the reactors keep serving
        // sockets.
        let work = rt::spawn_blocking(move || analyzer.analyze(&content));
        match rt::timeout_at(deadline, work).await {
            Ok(done) => {
                done.unwrap_or_else(|e| AnalysisResult::fail(format!("analysis failed: {e}")))
            }
            Err(_) => return timed_out(link, timeout, true),
        }
    };
    Row::new(&scraped, true, Some(&analysis))
}
