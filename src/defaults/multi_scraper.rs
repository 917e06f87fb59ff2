//! [`MultiScraper`]: route each link to the scrapers whose rules match it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use regex::Regex;

use crate::executor::{guarded, AsyncExecutorExt, AsyncManager, DEFAULT_TIMEOUT};
use crate::results::ScrapeResult;
use crate::traits::{AsyncScraper, Scraper};

/// Which scraper handles links matching a pattern (Python Scraipe's `IngressRule`).
///
/// ```
/// use std::sync::Arc;
/// use scraipe::defaults::IngressRule;
/// use scraipe::{ScrapeResult, Scraper};
///
/// struct Any;
/// impl Scraper for Any {
///     fn scrape(&self, link: &str) -> ScrapeResult {
///         ScrapeResult::succeed(link, "")
///     }
/// }
/// let rule = IngressRule::new(r"^https://t\.me/", Arc::new(Any))?.exclusive(true);
/// assert!(rule.pattern.is_match("https://t.me/channel/1"));
/// assert!(IngressRule::new("(unclosed", Arc::new(Any)).is_err());
/// # Ok::<(), regex::Error>(())
/// ```
#[derive(Clone)]
pub struct IngressRule {
    /// Links this rule applies to (searched anywhere in the link, like Python's `re.search`).
    pub pattern: Regex,
    /// The scraper for matching links.
    pub scraper: Arc<dyn Scraper>,
    /// When true, a matching link is not offered to later rules even if this scraper fails.
    pub exclusive: bool,
}

impl IngressRule {
    /// A rule from a regex pattern (an invalid pattern is an error).
    pub fn new(pattern: &str, scraper: Arc<dyn Scraper>) -> Result<IngressRule, regex::Error> {
        Ok(IngressRule::with_regex(Regex::new(pattern)?, scraper))
    }

    /// A rule from a compiled regex.
    pub fn with_regex(pattern: Regex, scraper: Arc<dyn Scraper>) -> IngressRule {
        IngressRule {
            pattern,
            scraper,
            exclusive: false,
        }
    }

    /// A rule matching the scraper's own
    /// [`expected_link_format`](Scraper::expected_link_format), or every link if it has none.
    pub fn from_scraper(scraper: Arc<dyn Scraper>) -> IngressRule {
        let pattern = scraper
            .expected_link_format()
            .unwrap_or_else(|| Regex::new(".*").expect("valid match-all pattern"));
        IngressRule::with_regex(pattern, scraper)
    }

    /// Sets [`exclusive`](IngressRule::exclusive).
    pub fn exclusive(mut self, exclusive: bool) -> IngressRule {
        self.exclusive = exclusive;
        self
    }
}

impl fmt::Debug for IngressRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IngressRule")
            .field("pattern", &self.pattern.as_str())
            .field("scraper", &self.scraper.name())
            .field("exclusive", &self.exclusive)
            .finish()
    }
}

/// Scrapes each link with the scrapers of the rules that match it, in rule order, until one
/// succeeds (Python Scraipe's `MultiScraper`).
///
/// * A rule matches when its pattern is found in the link.
/// * The first successful result is returned; a failure moves on to the next matching rule,
///   unless the failing rule is [exclusive](IngressRule::exclusive).
/// * If nothing succeeded, the failure says what was tried:
///   `No scraper could handle link; TextScraper[FAIL]: ...; RawScraper[FAIL]: ...`.
/// * With [`debug`](MultiScraper::debug), a success carries the same chain in its metadata
///   under `"debug_chain"` (Python puts it in `scrape_error`; here a success never has an
///   error).
///
/// Async scrapers are awaited (each within its own [`timeout`](AsyncScraper::timeout), so a
/// hung scraper falls through to the next rule); synchronous ones run on the blocking pool, so
/// one that blocks (a `std::net` or blocking-client fetch, a sleep) holds neither the event
/// loop nor other links, and [`timeout`](MultiScraper::timeout) still ends the link.
///
/// ```
/// use std::sync::Arc;
/// use scraipe::defaults::{IngressRule, MultiScraper};
/// use scraipe::{ScrapeResult, Scraper};
///
/// struct Fails;
/// impl Scraper for Fails {
///     fn scrape(&self, link: &str) -> ScrapeResult {
///         ScrapeResult::fail(link, "blocked")
///     }
/// }
/// struct Works;
/// impl Scraper for Works {
///     fn scrape(&self, link: &str) -> ScrapeResult {
///         ScrapeResult::succeed(link, "ok")
///     }
/// }
///
/// let multi = MultiScraper::new(vec![
///     IngressRule::new("example", Arc::new(Fails))?,
///     IngressRule::new(".*", Arc::new(Works))?,
/// ]);
/// assert_eq!(multi.scrape("https://example.com").content(), Some("ok"));
///
/// let strict = MultiScraper::new(vec![
///     IngressRule::new("example", Arc::new(Fails))?.exclusive(true),
///     IngressRule::new(".*", Arc::new(Works))?,
/// ]);
/// let failed = strict.scrape("https://example.com");
/// assert_eq!(failed.error(), Some("No scraper could handle link; Fails[FAIL]: blocked"));
/// # Ok::<(), regex::Error>(())
/// ```
pub struct MultiScraper {
    rules: Vec<IngressRule>,
    debug: bool,
    debug_delimiter: String,
    max_workers: usize,
    timeout: Option<Duration>,
}

impl MultiScraper {
    /// A multi-scraper over `rules`, tried in order.
    pub fn new(rules: Vec<IngressRule>) -> MultiScraper {
        MultiScraper {
            rules,
            debug: false,
            debug_delimiter: "; ".to_string(),
            max_workers: 4,
            timeout: Some(DEFAULT_TIMEOUT),
        }
    }

    /// Records the chain of tried scrapers in successful results' metadata.
    pub fn debug(mut self, debug: bool) -> MultiScraper {
        self.debug = debug;
        self
    }

    /// The separator of the debug chain (default `"; "`).
    pub fn debug_delimiter(mut self, delimiter: impl Into<String>) -> MultiScraper {
        self.debug_delimiter = delimiter.into();
        self
    }

    /// How many links `scrape_multiple` handles at once (default 4).
    pub fn max_workers(mut self, n: usize) -> MultiScraper {
        self.max_workers = n.max(1);
        self
    }

    /// The time limit for one link, all rules together, through the sync bridge (default
    /// 60 s).
    pub fn timeout(mut self, timeout: Option<Duration>) -> MultiScraper {
        self.timeout = timeout;
        self
    }

    /// The rules.
    pub fn rules(&self) -> &[IngressRule] {
        &self.rules
    }

    async fn run_rule(rule: &IngressRule, link: &str) -> ScrapeResult {
        let out = match rule.scraper.as_async() {
            Some(scraper) => guarded(scraper.async_scrape(link), scraper.timeout()).await,
            // A synchronous scraper may block (std::net, a blocking HTTP client, a sleep): it
            // runs on the blocking pool, so the timeout and every other task keep running.
            None => {
                let (scraper, link) = (rule.scraper.clone(), link.to_string());
                AsyncManager::get_executor()
                    .spawn_blocking(move || scraper.scrape(&link))
                    .await
            }
        };
        out.unwrap_or_else(|e| ScrapeResult::fail(link, e.to_string()))
    }
}

#[async_trait]
impl AsyncScraper for MultiScraper {
    async fn async_scrape(&self, link: &str) -> ScrapeResult {
        let mut chain = Vec::new();
        for rule in &self.rules {
            if !rule.pattern.is_match(link) {
                continue;
            }
            let result = MultiScraper::run_rule(rule, link).await;
            let name = rule.scraper.name();
            if result.success() {
                chain.push(format!("{name}[SUCCESS]"));
                let mut result = result;
                if self.debug {
                    result.metadata_mut().insert(
                        "debug_chain".into(),
                        chain.join(&self.debug_delimiter).into(),
                    );
                }
                return result;
            }
            chain.push(format!(
                "{name}[FAIL]: {}",
                result.error().unwrap_or_default()
            ));
            if rule.exclusive {
                break;
            }
        }
        let delimiter = &self.debug_delimiter;
        ScrapeResult::fail(
            link,
            format!(
                "No scraper could handle link{delimiter}{}",
                chain.join(delimiter)
            ),
        )
    }

    fn max_workers(&self) -> usize {
        self.max_workers
    }

    fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

impl fmt::Debug for MultiScraper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiScraper")
            .field("rules", &self.rules)
            .field("debug", &self.debug)
            .field("max_workers", &self.max_workers)
            .finish()
    }
}
