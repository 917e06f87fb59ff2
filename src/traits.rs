//! The component traits: [`Scraper`], [`Analyzer`], [`LinkCollector`] and their async
//! counterparts [`AsyncScraper`], [`AsyncAnalyzer`], [`AsyncLinkCollector`].
//!
//! Implement the async trait's one async method and the synchronous trait comes for free
//! (a blanket impl runs the async code on [`AsyncManager`]'s current executor), exactly as
//! subclassing `IAsyncScraper` works in Python Scraipe:
//!
//! ```
//! use std::sync::Arc;
//! use scraipe::{async_trait, AsyncScraper, ScrapeResult, Scraper};
//!
//! struct Echo;
//!
//! #[async_trait]
//! impl AsyncScraper for Echo {
//!     async fn async_scrape(&self, link: &str) -> ScrapeResult {
//!         scraipe::rt::sleep(std::time::Duration::from_millis(1)).await;
//!         ScrapeResult::succeed(link, format!("content of {link}"))
//!     }
//! }
//!
//! // Synchronous use, no runtime in sight:
//! assert_eq!(Echo.scrape("a").content(), Some("content of a"));
//! let links = vec!["a".to_string(), "b".to_string()];
//! let mut results: Vec<_> = Arc::new(Echo).scrape_multiple(links).collect();
//! results.sort_by(|x, y| x.0.cmp(&y.0));
//! assert_eq!(results[1].1.content(), Some("content of b"));
//! ```
//!
//! A component that is synchronous by nature implements the synchronous trait directly.
//! The `*_multiple` methods take `self: Arc<Self>` because their work outlives the call
//! (it runs on the executor's threads); components are shared as `Arc<dyn Scraper>` etc.
//! anyway.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use regex::Regex;

use crate::executor::{
    guarded, panic_message, AsyncExecutorExt, AsyncManager, RunMultiple, WrapAsyncIterable,
    DEFAULT_TIMEOUT,
};
use crate::results::{AnalysisResult, ScrapeResult};
use crate::stream::BoxStream;

/// What [`Scraper::scrape_multiple`] returns: `(link, result)` pairs in completion order.
pub type ScrapeIter = Box<dyn Iterator<Item = (String, ScrapeResult)> + Send>;

/// What [`Analyzer::analyze_multiple`] returns: `(link, result)` pairs in completion order.
pub type AnalysisIter = Box<dyn Iterator<Item = (String, AnalysisResult)> + Send>;

/// Runs `analyze(me, link, content)` for every pair on the blocking pool, as many at once as
/// there are CPUs, yielding `(link, result)` in completion order, exactly one per pair; a
/// panic (or a pool that stopped) yields a failed result. What [`Analyzer::analyze_multiple`]
/// does by default.
pub(crate) fn analyze_on_blocking_pool<A: ?Sized + Send + Sync + 'static>(
    me: Arc<A>,
    contents: Vec<(String, String)>,
    analyze: impl Fn(&A, &str, &str) -> AnalysisResult + Copy + Send + 'static,
) -> AnalysisIter {
    let exec = AsyncManager::get_executor();
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let links: Vec<String> = contents.iter().map(|(link, _)| link.clone()).collect();
    let blocking = exec.clone();
    let futures = contents.into_iter().map(move |(link, content)| {
        let (me, exec) = (me.clone(), blocking.clone());
        async move {
            exec.spawn_blocking(move || analyze(&me, &link, &content))
                .await
        }
    });
    let rows = RunMultiple::new(exec, futures, workers, None);
    Box::new(rows.map(move |(i, out)| {
        let result = match out {
            Ok(Ok(result)) => result,
            Ok(Err(e)) | Err(e) => AnalysisResult::fail(e.to_string()),
        };
        (links[i].clone(), result)
    }))
}

/// What [`LinkCollector::collect_links`] returns.
pub type LinkIter<'a> = Box<dyn Iterator<Item = String> + Send + 'a>;

/// The last path segment of a type name, generics dropped: `scraipe::defaults::Foo<X>` → `Foo`.
pub(crate) fn short_type_name(full: &str) -> String {
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base).to_string()
}

/// Gets content from links, synchronously. Python Scraipe's `IScraper`.
///
/// Implement it directly for a scraper that is synchronous by nature; for an async one,
/// implement [`AsyncScraper`] instead and this trait comes with it.
///
/// A synchronous scraper is called as it is: nothing can interrupt a call that blocks, so
/// there is no timeout (as in Python) — put one in the scraper itself (an HTTP client's
/// timeout). Inside a [`MultiScraper`](crate::defaults::MultiScraper) it runs on the blocking
/// pool, where the rule set's timeout stops waiting for it. An async scraper built on another
/// runtime's I/O (tokio's `reqwest`, say) needs that runtime entered; scraipe's executor does
/// not provide it (its own client, [`crate::http`], needs nothing).
///
/// ```
/// use std::sync::Arc;
/// use scraipe::{ScrapeResult, Scraper};
///
/// struct Upper;
/// impl Scraper for Upper {
///     fn scrape(&self, link: &str) -> ScrapeResult {
///         ScrapeResult::succeed(link, link.to_uppercase())
///     }
/// }
///
/// let results: Vec<_> = Arc::new(Upper).scrape_multiple(vec!["a".into(), "b".into()]).collect();
/// assert_eq!(results[0].1.content(), Some("A"));
/// assert_eq!(Upper.name(), "Upper");
/// ```
pub trait Scraper: Send + Sync + 'static {
    /// Scrapes one link. Failures are reported in the result, not by panicking.
    fn scrape(&self, link: &str) -> ScrapeResult;

    /// Scrapes many links, yielding `(link, result)` as results come in; exactly one pair per
    /// link. The default calls [`scrape`](Scraper::scrape) for each link in turn, turning a
    /// panic into a failed result.
    fn scrape_multiple(self: Arc<Self>, links: Vec<String>) -> ScrapeIter {
        Box::new(links.into_iter().map(move |link| {
            let result =
                catch_unwind(AssertUnwindSafe(|| self.scrape(&link))).unwrap_or_else(|payload| {
                    ScrapeResult::fail(
                        &link,
                        format!("scraper panicked: {}", panic_message(payload)),
                    )
                });
            (link, result)
        }))
    }

    /// The links this scraper handles (`None`: any link). [`IngressRule::from_scraper`]
    /// uses it.
    ///
    /// [`IngressRule::from_scraper`]: crate::defaults::IngressRule::from_scraper
    fn expected_link_format(&self) -> Option<Regex> {
        None
    }

    /// A name for debug messages (Python uses the class name): the type's name by default.
    fn name(&self) -> String {
        short_type_name(std::any::type_name::<Self>())
    }

    /// The async face of this scraper, if it has one (the blanket impl for [`AsyncScraper`]
    /// returns it), so composite scrapers can await it instead of blocking.
    fn as_async(&self) -> Option<&dyn AsyncScraper> {
        None
    }
}

/// Gets content from links asynchronously. Python Scraipe's `IAsyncScraper`: implement
/// [`async_scrape`](AsyncScraper::async_scrape) (with `#[async_trait]`) and the type is a
/// [`Scraper`] too.
///
/// The sync bridge: [`Scraper::scrape`] runs `async_scrape` on the current executor;
/// [`Scraper::scrape_multiple`] runs up to [`max_workers`](AsyncScraper::max_workers) of them
/// at once, each limited to [`timeout`](AsyncScraper::timeout). A scrape that panics or times
/// out yields a failed result naming the reason; none goes missing.
#[async_trait]
pub trait AsyncScraper: Send + Sync + 'static {
    /// Scrapes one link.
    async fn async_scrape(&self, link: &str) -> ScrapeResult;

    /// How many scrapes `scrape_multiple` runs at once (Python's default: 4).
    fn max_workers(&self) -> usize {
        4
    }

    /// The time limit of each scrape run through the sync bridge (default 60 s, as in Python
    /// Scraipe's `run_multiple`); `None` for no limit.
    fn timeout(&self) -> Option<Duration> {
        Some(DEFAULT_TIMEOUT)
    }

    /// See [`Scraper::expected_link_format`].
    fn expected_link_format(&self) -> Option<Regex> {
        None
    }

    /// See [`Scraper::name`].
    fn name(&self) -> String {
        short_type_name(std::any::type_name::<Self>())
    }
}

impl<T: AsyncScraper> Scraper for T {
    fn scrape(&self, link: &str) -> ScrapeResult {
        let exec = AsyncManager::get_executor();
        let out = exec.block_on(guarded(
            self.async_scrape(link),
            AsyncScraper::timeout(self),
        ));
        match out {
            Ok(Ok(result)) => result,
            Ok(Err(e)) | Err(e) => ScrapeResult::fail(link, e.to_string()),
        }
    }

    fn scrape_multiple(self: Arc<Self>, links: Vec<String>) -> ScrapeIter {
        let exec = AsyncManager::get_executor();
        let links: Arc<[String]> = links.into();
        let (max_workers, timeout) = (self.max_workers(), AsyncScraper::timeout(&*self));
        let shared = links.clone();
        let futures = (0..links.len()).map(move |i| {
            let (me, links) = (self.clone(), shared.clone());
            async move { me.async_scrape(&links[i]).await }
        });
        let rows = RunMultiple::new(exec, futures, max_workers, timeout);
        Box::new(rows.map(move |(i, out)| {
            let link = links[i].clone();
            let result = out.unwrap_or_else(|e| ScrapeResult::fail(&link, e.to_string()));
            (link, result)
        }))
    }

    fn expected_link_format(&self) -> Option<Regex> {
        AsyncScraper::expected_link_format(self)
    }

    fn name(&self) -> String {
        AsyncScraper::name(self)
    }

    fn as_async(&self) -> Option<&dyn AsyncScraper> {
        Some(self)
    }
}

/// Extracts structured information from content, synchronously. Python Scraipe's
/// `IAnalyzer`.
///
/// The default [`analyze_multiple`](Analyzer::analyze_multiple) runs `analyze` on the current
/// executor's blocking pool, as many at once as there are CPUs, so a CPU-heavy analyzer never
/// stalls the event loops that scrapers use. A synchronous analyzer has no timeout (a call
/// that hangs hangs `Workflow::analyze` too, as in Python); bound its work itself.
///
/// ```
/// use scraipe::{AnalysisResult, Analyzer};
/// use serde_json::json;
///
/// struct Length;
/// impl Analyzer for Length {
///     fn analyze(&self, content: &str) -> AnalysisResult {
///         let out = json!({"length": content.len()});
///         AnalysisResult::succeed(out.as_object().cloned().unwrap_or_default())
///     }
/// }
/// assert_eq!(Length.analyze("four").output().unwrap()["length"], 4);
/// ```
pub trait Analyzer: Send + Sync + 'static {
    /// Analyses one piece of content.
    fn analyze(&self, content: &str) -> AnalysisResult;

    /// Analyses many `(link, content)` pairs, yielding `(link, result)` in completion order;
    /// exactly one pair per input. A panicking analysis yields a failed result.
    fn analyze_multiple(self: Arc<Self>, contents: Vec<(String, String)>) -> AnalysisIter {
        analyze_on_blocking_pool(self, contents, |me, _link, content| me.analyze(content))
    }

    /// A name for debug messages and conflicting output keys: the type's name by default.
    fn name(&self) -> String {
        short_type_name(std::any::type_name::<Self>())
    }

    /// The async face of this analyzer, if it has one.
    fn as_async(&self) -> Option<&dyn AsyncAnalyzer> {
        None
    }
}

/// Extracts information from content asynchronously (an LLM call, a remote API...). Python
/// Scraipe's `IAsyncAnalyzer`: implement [`async_analyze`](AsyncAnalyzer::async_analyze) and
/// the type is an [`Analyzer`] too.
///
/// Keep CPU-heavy work out of `async_analyze` (it runs on an event loop); a synchronous
/// [`Analyzer`] runs on the blocking pool instead.
///
/// ```
/// use scraipe::{async_trait, AnalysisResult, Analyzer, AsyncAnalyzer};
///
/// struct Shouting;
/// #[async_trait]
/// impl AsyncAnalyzer for Shouting {
///     async fn async_analyze(&self, content: &str) -> AnalysisResult {
///         let mut out = serde_json::Map::new();
///         out.insert("shouting".into(), (content == content.to_uppercase()).into());
///         AnalysisResult::succeed(out)
///     }
/// }
/// assert_eq!(Shouting.analyze("HEY").output().unwrap()["shouting"], true);
/// ```
#[async_trait]
pub trait AsyncAnalyzer: Send + Sync + 'static {
    /// Analyses one piece of content.
    async fn async_analyze(&self, content: &str) -> AnalysisResult;

    /// How many analyses `analyze_multiple` runs at once (Python's default: 2).
    fn max_workers(&self) -> usize {
        2
    }

    /// The time limit of each analysis run through the sync bridge (default 60 s).
    fn timeout(&self) -> Option<Duration> {
        Some(DEFAULT_TIMEOUT)
    }

    /// See [`Analyzer::name`].
    fn name(&self) -> String {
        short_type_name(std::any::type_name::<Self>())
    }
}

impl<T: AsyncAnalyzer> Analyzer for T {
    fn analyze(&self, content: &str) -> AnalysisResult {
        let exec = AsyncManager::get_executor();
        let out = exec.block_on(guarded(
            self.async_analyze(content),
            AsyncAnalyzer::timeout(self),
        ));
        match out {
            Ok(Ok(result)) => result,
            Ok(Err(e)) | Err(e) => AnalysisResult::fail(e.to_string()),
        }
    }

    fn analyze_multiple(self: Arc<Self>, contents: Vec<(String, String)>) -> AnalysisIter {
        let exec = AsyncManager::get_executor();
        let (max_workers, timeout) = (self.max_workers(), AsyncAnalyzer::timeout(&*self));
        let mut links = Vec::with_capacity(contents.len());
        let mut texts = Vec::with_capacity(contents.len());
        for (link, content) in contents {
            links.push(link);
            texts.push(content);
        }
        let futures = texts.into_iter().map(move |content| {
            let me = self.clone();
            async move { me.async_analyze(&content).await }
        });
        let rows = RunMultiple::new(exec, futures, max_workers, timeout);
        Box::new(rows.map(move |(i, out)| {
            let result = out.unwrap_or_else(|e| AnalysisResult::fail(e.to_string()));
            (links[i].clone(), result)
        }))
    }

    fn name(&self) -> String {
        AsyncAnalyzer::name(self)
    }

    fn as_async(&self) -> Option<&dyn AsyncAnalyzer> {
        Some(self)
    }
}

/// Produces the links to scrape. Python Scraipe's `ILinkCollector`.
///
/// ```
/// use scraipe::{LinkCollector, LinkIter};
///
/// struct Numbered(usize);
/// impl LinkCollector for Numbered {
///     fn collect_links(&self) -> LinkIter<'_> {
///         Box::new((0..self.0).map(|i| format!("https://example.com/{i}")))
///     }
/// }
/// assert_eq!(Numbered(3).collect_links().count(), 3);
/// ```
pub trait LinkCollector: Send + Sync + 'static {
    /// The links, produced lazily.
    fn collect_links(&self) -> LinkIter<'_>;
}

/// Produces links as an async stream (paging through an API, reading a feed...). Python
/// Scraipe's `IAsyncLinkCollector`; the type is a [`LinkCollector`] too, whose iterator drives
/// the stream on the current executor as it is consumed.
///
/// ```
/// use scraipe::stream::{generate, BoxStream};
/// use scraipe::{AsyncLinkCollector, LinkCollector};
///
/// struct Pages(u32);
/// impl AsyncLinkCollector for Pages {
///     fn async_collect_links(&self) -> BoxStream<'_, String> {
///         Box::pin(generate(move |y| async move {
///             for page in 0..self.0 {
///                 y.send(format!("https://example.com/?page={page}")).await;
///             }
///         }))
///     }
/// }
/// assert_eq!(Pages(4).collect_links().count(), 4);
/// ```
pub trait AsyncLinkCollector: Send + Sync + 'static {
    /// The stream of links.
    fn async_collect_links(&self) -> BoxStream<'_, String>;
}

impl<T: AsyncLinkCollector> LinkCollector for T {
    fn collect_links(&self) -> LinkIter<'_> {
        let exec = AsyncManager::get_executor();
        Box::new(WrapAsyncIterable::new(exec, self.async_collect_links()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names() {
        assert_eq!(
            short_type_name("scraipe::defaults::MultiScraper"),
            "MultiScraper"
        );
        assert_eq!(short_type_name("a::Wrapper<b::Inner>"), "Wrapper");
        assert_eq!(short_type_name("Plain"), "Plain");
    }
}
