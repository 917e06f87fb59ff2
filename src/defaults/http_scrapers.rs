//! The network scrapers: [`RawScraper`] (the body as text) and [`TextScraper`] (the visible
//! text of an HTML page), both on [`crate::http::Client`].
//!
//! As in Python Scraipe, a status other than 200 is a failure that names it
//! (`Failed to scrape {url}. Status code: {status}`), and any other problem is a failure that
//! describes it (`Failed to scrape {url}. Error: {error}`). Every result carries metadata:
//! `status` (when a response arrived), `final_url`, `content_type`, `elapsed_ms`, and for
//! failures `error_kind` (`status 404`, `timeout`, `dns`, `connect`, `tls`, ...), which is what
//! summaries group failures by. Successes also carry the response's validators, `etag` and
//! `last_modified` (null when absent).
//!
//! **Unchanged pages.** [`HttpScraper::scrape_if_changed`] sends validators from an earlier
//! scrape; a `304 Not Modified` answer is a *success* with empty content and
//! `"not_modified": true` in the metadata (`"status": 304`), so a caller can tell "unchanged"
//! from "failed" and keep the content it already has. Every other success has
//! `"not_modified": false`. A 304 to a scrape without validators answers nothing that was
//! asked (a broken server or cache): it is a failure, `Status code: 304`.
//!
//! The default client ([`HttpScraper::new`]) retries transient failures
//! ([`RetryPolicy::default`], two retries) and keeps one cookie jar for the scraper.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use regex::Regex;
use serde_json::{json, Map, Value};

use crate::http::{Client, ErrorKind, Response, RetryPolicy};
use crate::results::ScrapeResult;
use crate::traits::AsyncScraper;

/// Pages larger than this are turned into text on the blocking pool, so a huge document never
/// holds up a reactor that other connections are waiting on.
const OFFLOAD_TEXT_EXTRACTION: usize = 64 * 1024;

/// Configuration shared by both scrapers.
#[derive(Clone, Debug)]
struct Fetcher {
    client: Client,
    max_workers: usize,
    timeout: Option<Duration>,
}

impl Fetcher {
    fn new(client: Client) -> Fetcher {
        Fetcher {
            client,
            max_workers: 16,
            timeout: Some(Duration::from_secs(60)),
        }
    }

    /// GETs `link` (with validators, if given); on a 200 hands the response to `extract`.
    async fn scrape<F>(&self, link: &str, validators: Validators<'_>, extract: F) -> ScrapeResult
    where
        F: FnOnce(Response) -> ExtractFuture + Send,
    {
        let started = Instant::now();
        let mut meta = Map::new();
        // A 304 answers only a conditional request; to a plain GET it is a broken server or
        // cache, and reporting it as an unchanged (empty) page would hide that.
        let conditional = validators.etag.is_some() || validators.last_modified.is_some();
        let mut request = self.client.get(link);
        if let Some(etag) = validators.etag {
            request = request.if_none_match(etag);
        }
        if let Some(date) = validators.last_modified {
            request = request.if_modified_since(date);
        }
        match request.await {
            Ok(response) => {
                let status = response.status();
                meta.insert("status".into(), json!(status));
                meta.insert("final_url".into(), json!(response.url().as_str()));
                meta.insert("content_type".into(), json!(response.content_type()));
                let not_modified = status == 304 && conditional;
                if status == 200 || not_modified {
                    meta.insert("etag".into(), json!(response.etag()));
                    meta.insert("last_modified".into(), json!(response.last_modified()));
                    meta.insert("not_modified".into(), json!(not_modified));
                }
                if not_modified {
                    meta.insert("elapsed_ms".into(), elapsed_ms(started));
                    return ScrapeResult::succeed(link, "").with_metadata(meta);
                }
                if status != 200 {
                    meta.insert("elapsed_ms".into(), elapsed_ms(started));
                    meta.insert("error_kind".into(), json!(format!("status {status}")));
                    return ScrapeResult::fail(
                        link,
                        format!("Failed to scrape {link}. Status code: {status}"),
                    )
                    .with_metadata(meta);
                }
                let content = extract(response).await;
                meta.insert("elapsed_ms".into(), elapsed_ms(started));
                match content {
                    Ok(content) => ScrapeResult::succeed(link, content).with_metadata(meta),
                    Err(e) => {
                        meta.insert("error_kind".into(), json!("extract"));
                        ScrapeResult::fail(link, format!("Failed to scrape {link}. Error: {e}"))
                            .with_metadata(meta)
                    }
                }
            }
            Err(e) => {
                meta.insert("status".into(), Value::Null);
                meta.insert("final_url".into(), json!(e.url().unwrap_or(link)));
                meta.insert("content_type".into(), Value::Null);
                meta.insert("elapsed_ms".into(), elapsed_ms(started));
                meta.insert("error_kind".into(), json!(kind_name(e.kind())));
                ScrapeResult::fail(link, format!("Failed to scrape {link}. Error: {e}"))
                    .with_metadata(meta)
            }
        }
    }
}

/// Validators from an earlier scrape (metadata `etag` and `last_modified`).
#[derive(Clone, Copy, Debug, Default)]
struct Validators<'a> {
    etag: Option<&'a str>,
    last_modified: Option<&'a str>,
}

/// What [`Extract::extract`] returns.
pub type ExtractFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send>>;

fn elapsed_ms(started: Instant) -> Value {
    json!((started.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0)
}

/// A short, stable name for an error kind (metadata `error_kind`).
pub fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidUrl => "invalid url",
        ErrorKind::Dns => "dns",
        ErrorKind::Connect => "connect",
        ErrorKind::Tls => "tls",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Protocol => "protocol",
        ErrorKind::Incomplete => "incomplete",
        ErrorKind::TooLarge => "too large",
        ErrorKind::Redirect => "redirect",
        ErrorKind::Decode => "decode",
        ErrorKind::InvalidRequest => "invalid request",
        ErrorKind::Blocked => "blocked",
        _ => "io",
    }
}

fn http_link_format() -> Option<Regex> {
    Regex::new(r"^https?://").ok()
}

/// What a fetching scraper keeps of a 200 response: see [`RawScraper`] and [`TextScraper`].
pub trait Extract: Send + Sync + 'static {
    /// The scraper's name (`Scraper::name`).
    const NAME: &'static str;
    /// Turns the response into the result's content (or an error message).
    fn extract(response: Response) -> ExtractFuture;
}

/// Keeps the body, decoded to text ([`RawScraper`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Raw;

/// Keeps the visible text of the HTML ([`TextScraper`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Text;

impl Extract for Raw {
    const NAME: &'static str = "RawScraper";
    fn extract(response: Response) -> ExtractFuture {
        Box::pin(async move { Ok(response.text()) })
    }
}

impl Extract for Text {
    const NAME: &'static str = "TextScraper";
    fn extract(response: Response) -> ExtractFuture {
        Box::pin(async move {
            let html = response.text();
            if html.len() <= OFFLOAD_TEXT_EXTRACTION {
                return Ok(super::html_to_text(&html));
            }
            match crate::rt::Handle::try_current() {
                Some(h) => h
                    .spawn_blocking(move || super::html_to_text(&html))
                    .await
                    .map_err(|e| format!("text extraction failed: {e}")),
                None => Ok(super::html_to_text(&html)),
            }
        })
    }
}

/// A scraper that GETs each link with a [`Client`] and keeps what `E` extracts. Use it through
/// [`RawScraper`] and [`TextScraper`].
#[derive(Clone, Debug)]
pub struct HttpScraper<E> {
    fetcher: Fetcher,
    _extract: PhantomData<E>,
}

/// GETs a link and returns the body decoded to text (charset from the header, a BOM or a
/// `<meta charset>`), unchanged otherwise. Python Scraipe's `RawScraper`.
///
/// ```no_run
/// use scraipe::Scraper;
/// use scraipe::defaults::RawScraper;
/// let result = RawScraper::new().scrape("https://example.com/");
/// println!("{:?} {:?}", result.success(), result.metadata());
/// ```
pub type RawScraper = HttpScraper<Raw>;

/// GETs a link and returns the visible text of the HTML page (no script, style or head; one
/// line per block; blank lines dropped; entities decoded; pages over 64 KiB are extracted on the
/// blocking pool). Python Scraipe's `TextScraper`.
pub type TextScraper = HttpScraper<Text>;

impl<E: Extract> Default for HttpScraper<E> {
    fn default() -> Self {
        HttpScraper::new()
    }
}

impl<E: Extract> HttpScraper<E> {
    /// With a default [`Client`] (10 s per request, 10 redirects, decompression), plus two
    /// retries of transient failures and a cookie jar (a site that sets a cookie and
    /// redirects to itself works).
    pub fn new() -> HttpScraper<E> {
        let client = Client::builder()
            .retry_policy(RetryPolicy::default())
            .cookie_store(true)
            .build()
            .expect("the default client configuration is valid");
        HttpScraper::with_client(client)
    }

    /// With a configured client (user agent, timeouts, extra root certificates, limits).
    pub fn with_client(client: Client) -> HttpScraper<E> {
        HttpScraper {
            fetcher: Fetcher::new(client),
            _extract: PhantomData,
        }
    }

    /// How many links `scrape_multiple` fetches at once (default 16).
    pub fn max_workers(mut self, n: usize) -> HttpScraper<E> {
        self.fetcher.max_workers = n.max(1);
        self
    }

    /// Scrapes `link` unless it is unchanged since the scrape that returned these validators
    /// (metadata `etag` and `last_modified`; either may be `None`). Unchanged: a success with
    /// empty content and `"not_modified": true`.
    ///
    /// ```no_run
    /// use scraipe::defaults::RawScraper;
    /// # let rt = scraipe::rt::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let scraper = RawScraper::new();
    /// let first = scraper.scrape_if_changed("https://example.com/", None, None).await;
    /// let meta = first.metadata().cloned().unwrap_or_default();
    /// let etag = meta.get("etag").and_then(|v| v.as_str());
    /// let again = scraper.scrape_if_changed("https://example.com/", etag, None).await;
    /// if again.metadata().and_then(|m| m.get("not_modified")) == Some(&true.into()) {
    ///     // keep first.content()
    /// }
    /// # });
    /// ```
    pub async fn scrape_if_changed(
        &self,
        link: &str,
        etag: Option<&str>,
        last_modified: Option<&str>,
    ) -> ScrapeResult {
        let validators = Validators {
            etag,
            last_modified,
        };
        self.fetcher.scrape(link, validators, E::extract).await
    }

    /// Per-link limit through the sync bridge (default 60 s; the client's own total timeout
    /// usually ends a request first).
    pub fn timeout(mut self, timeout: Option<Duration>) -> HttpScraper<E> {
        self.fetcher.timeout = timeout;
        self
    }
}

#[async_trait]
impl<E: Extract> AsyncScraper for HttpScraper<E> {
    async fn async_scrape(&self, link: &str) -> ScrapeResult {
        self.fetcher
            .scrape(link, Validators::default(), E::extract)
            .await
    }
    fn max_workers(&self) -> usize {
        self.fetcher.max_workers
    }
    fn timeout(&self) -> Option<Duration> {
        self.fetcher.timeout
    }
    fn expected_link_format(&self) -> Option<Regex> {
        http_link_format()
    }
    fn name(&self) -> String {
        E::NAME.into()
    }
}
