//! The generated site: pages of English-like HTML, deterministic from `(pages, seed)`.
//!
//! # Page rules
//!
//! What `/page/{i}` does depends on `i % 20` only (never on the seed), so tests and the demo
//! can predict every page:
//!
//! | `i % 20`   | share | behaviour                                                        |
//! |------------|-------|------------------------------------------------------------------|
//! | 3, 11      | 10 %  | slow: 200 after `50 + (i * 7919) % 251` ms (50–300 ms)           |
//! | 7          | 5 %   | 404 Not Found                                                    |
//! | 17         | 5 %   | 500 Internal Server Error                                        |
//! | 5          | 5 %   | 301 to a normal page                                             |
//! | 15         | 5 %   | 302 to a normal page                                             |
//! | the rest   | 70 %  | normal: 200 at once                                              |
//!
//! A redirect's `Location` is relative (`/page/j`) when `(i / 20)` is even and absolute
//! (`http://host:port/page/j`, the server's own address) when it is odd, so both forms occur
//! for both statuses. The target `j` is the first normal page at or after `(7 i + 3) % pages`,
//! so a redirect never chains and always ends on a 200.
//!
//! # Page content
//!
//! The seed decides the text. Page sizes are log-uniform between about 300 bytes and 100 KiB
//! (median about 5 KiB, mean about 16 KiB). Every content page has a `<title>`, an `<h1>`, at
//! least one paragraph with a non-ASCII word and an `&amp;` entity, and links to other pages and
//! to `/`. Pages of 1 KiB and more also have `<h2>`/`<h3>` sections, lists, a `<style>` block
//! containing [`STYLE_MARKER`], `<script>` blocks containing [`SCRIPT_MARKER`] and an HTML
//! comment — text a good extractor drops.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::text::{self, Rng, NON_ASCII_WORDS, WORDS};

/// The largest number of pages a [`DemoSite`] holds; [`DemoSite::new`] clamps to it. The page
/// cache costs a few words per page even before a page is generated (24 MiB at this size).
pub const MAX_PAGES: usize = 1 << 20;

/// Page bodies are cached up to this many bytes (256 MiB, about 16,000 pages of the average
/// size); see [`DemoSite::body`].
pub const CACHE_BUDGET: usize = 256 * 1024 * 1024;

/// Appears inside every `<script>` block and nowhere in the visible text.
pub const SCRIPT_MARKER: &str = "scraipe-hidden-script";

/// Appears inside every `<style>` block and nowhere in the visible text.
pub const STYLE_MARKER: &str = "scraipe-hidden-style";

/// Smallest and largest target size of a content page, in bytes (a page overshoots its target
/// by at most one section, a few hundred bytes to a few KiB).
const MIN_TARGET: f64 = 200.0;
const MAX_TARGET: f64 = 100.0 * 1024.0;

/// Pages at least this big get sections, `<style>`, `<script>` and comments.
const RICH_PAGE: usize = 1024;

/// What a page does when requested. A pure function of its index (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PageKind {
    /// 200 with generated content, at once.
    Normal,
    /// 200 with generated content, after `delay`.
    Slow {
        /// How long the server waits before answering (50–300 ms).
        delay: Duration,
    },
    /// 404 with a small HTML body.
    NotFound,
    /// 500 with a small HTML body.
    ServerError,
    /// 301 or 302 to another page, which is always [`PageKind::Normal`].
    Redirect {
        /// 301 or 302.
        status: u16,
        /// The index of the page redirected to.
        target: usize,
        /// Whether `Location` is absolute (`http://host:port/page/j`) or relative (`/page/j`).
        absolute: bool,
    },
}

impl PageKind {
    /// The HTTP status the page answers with.
    pub fn status(&self) -> u16 {
        match self {
            PageKind::Normal | PageKind::Slow { .. } => 200,
            PageKind::NotFound => 404,
            PageKind::ServerError => 500,
            PageKind::Redirect { status, .. } => *status,
        }
    }
}

/// What a client should see for one page: the tests and the demo check scrape results
/// against it.
///
/// ```
/// use scraipe::demo::{DemoSite, PageKind};
/// let site = DemoSite::new(100, 1);
/// let e = site.expected(5).unwrap(); // 5 % 20 == 5: a 301
/// assert_eq!(e.status, 301);
/// assert_eq!(e.final_status, 200);
/// let target = e.final_page.unwrap();
/// assert_eq!(site.expected(target).unwrap().kind, PageKind::Normal);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// The page's behaviour.
    pub kind: PageKind,
    /// Status of the response to `/page/{i}` itself.
    pub status: u16,
    /// Status at the end of the redirect chain (at most one hop): 200, 404 or 500.
    pub final_status: u16,
    /// The page whose content a client following redirects receives; `None` for 404 and 500.
    pub final_page: Option<usize>,
    /// How long the server waits before answering (zero unless slow).
    pub delay: Duration,
}

impl Expected {
    /// True for pages that answer after a deliberate delay.
    pub fn is_slow(&self) -> bool {
        matches!(self.kind, PageKind::Slow { .. })
    }
}

/// A generated site of `pages` pages. Cheap to clone (shared); pages are generated on first use
/// and cached, so creating a large site costs nothing up front.
///
/// ```
/// use scraipe::demo::DemoSite;
/// let site = DemoSite::new(50, 7);
/// assert_eq!(site.pages(), 50);
/// let urls = site.urls("http://127.0.0.1:8080/");
/// assert_eq!(urls[3], "http://127.0.0.1:8080/page/3");
/// // Same seed, same bytes.
/// assert_eq!(site.body(0).unwrap(), DemoSite::new(50, 7).body(0).unwrap());
/// let html = String::from_utf8(site.body(0).unwrap().to_vec()).unwrap();
/// assert!(html.contains("<title>Page 0: "));
/// ```
#[derive(Clone)]
pub struct DemoSite {
    inner: Arc<Inner>,
}

struct Inner {
    pages: usize,
    seed: u64,
    /// Every page normal (see `DemoSite::plain`).
    plain: bool,

    bodies: Box<[OnceLock<Arc<[u8]>>]>,
    /// Bytes held by `bodies`, kept under `budget`.
    cached: AtomicUsize,
    budget: usize,
    index: OnceLock<Arc<[u8]>>,
}

impl std::fmt::Debug for DemoSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoSite")
            .field("pages", &self.inner.pages)
            .field("seed", &self.inner.seed)
            .finish()
    }
}

impl DemoSite {
    /// A site of `pages` pages (at most [`MAX_PAGES`]) whose text is decided by `seed`.
    pub fn new(pages: usize, seed: u64) -> DemoSite {
        DemoSite::with_budget(pages, seed, CACHE_BUDGET)
    }

    /// Like [`new`](DemoSite::new), but every page is a normal 200 page: no slow, failing or
    /// redirecting ones. For throughput benchmarks, where deliberate delays would only measure
    /// the delays.
    pub fn plain(pages: usize, seed: u64) -> DemoSite {
        let mut site = DemoSite::with_budget(pages, seed, CACHE_BUDGET);
        Arc::get_mut(&mut site.inner).expect("just created").plain = true;
        site
    }

    /// True for a site made with [`plain`](DemoSite::plain).
    pub fn is_plain(&self) -> bool {
        self.inner.plain
    }

    fn with_budget(pages: usize, seed: u64, budget: usize) -> DemoSite {
        let pages = pages.min(MAX_PAGES);
        DemoSite {
            inner: Arc::new(Inner {
                pages,
                seed,
                plain: false,

                bodies: (0..pages).map(|_| OnceLock::new()).collect(),
                cached: AtomicUsize::new(0),
                budget,
                index: OnceLock::new(),
            }),
        }
    }

    /// Number of pages.
    pub fn pages(&self) -> usize {
        self.inner.pages
    }

    /// The seed the text was generated from.
    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    /// The URL of page `i` under `base` (a trailing `/` on `base` is ignored).
    pub fn url(&self, base: &str, i: usize) -> String {
        format!("{}/page/{i}", base.trim_end_matches('/'))
    }

    /// Every page's URL under `base`, in index order.
    pub fn urls(&self, base: &str) -> Vec<String> {
        (0..self.pages()).map(|i| self.url(base, i)).collect()
    }

    /// What page `i` does; `None` past the last page.
    pub fn kind(&self, i: usize) -> Option<PageKind> {
        (i < self.pages()).then(|| {
            if self.inner.plain {
                PageKind::Normal
            } else {
                kind_of(i, self.pages())
            }
        })
    }

    /// What a client should observe for page `i`; `None` past the last page.
    pub fn expected(&self, i: usize) -> Option<Expected> {
        let kind = self.kind(i)?;
        let (final_status, final_page, delay) = match kind {
            PageKind::Normal => (200, Some(i), Duration::ZERO),
            PageKind::Slow { delay } => (200, Some(i), delay),
            PageKind::NotFound => (404, None, Duration::ZERO),
            PageKind::ServerError => (500, None, Duration::ZERO),
            PageKind::Redirect { target, .. } => (200, Some(target), Duration::ZERO),
        };
        Some(Expected {
            kind,
            status: kind.status(),
            final_status,
            final_page,
            delay,
        })
    }

    /// The generated title of page `i` (what a 200 response for it carries in `<title>`, after
    /// `Page {i}: `, and in `<h1>`); `None` past the last page.
    pub fn title(&self, i: usize) -> Option<String> {
        (i < self.pages()).then(|| title_of(self.seed(), i))
    }

    /// The exact body the server sends for `/page/{i}`; `None` past the last page. Error
    /// pages and redirects have small fixed bodies.
    ///
    /// Bodies are generated on first use and cached (shared by every response) until the cache
    /// holds [`CACHE_BUDGET`] bytes; past that, pages not yet cached are generated on each
    /// request, so a crawl of a huge site cannot exhaust memory.
    pub fn body(&self, i: usize) -> Option<Arc<[u8]>> {
        let slot = self.inner.bodies.get(i)?;
        if let Some(body) = slot.get() {
            return Some(body.clone());
        }
        let body: Arc<[u8]> = self.render(i).0.into_bytes().into();
        let cached = &self.inner.cached;
        let reserved = cached
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n + body.len() <= self.inner.budget).then_some(n + body.len())
            })
            .is_ok();
        if !reserved {
            return Some(body);
        }
        // Two threads may render the same page at once; the loser gives its reservation back
        // and both return the winner's (identical) bytes.
        if slot.set(body.clone()).is_err() {
            cached.fetch_sub(body.len(), Ordering::Relaxed);
        }
        Some(slot.get().cloned().unwrap_or(body))
    }

    /// The visible text of content page `i` (normal or slow): headings, paragraphs, list items
    /// and link text with entities decoded, one block per line. `None` for other pages. A text
    /// extractor should find the same words in the same order (its whitespace may differ), and
    /// none of the `<script>`/`<style>` text.
    pub fn text(&self, i: usize) -> Option<String> {
        match self.kind(i)? {
            PageKind::Normal | PageKind::Slow { .. } => Some(self.render(i).1),
            _ => None,
        }
    }

    /// Generates every page now instead of on first request, on the calling thread (about
    /// 50 µs per page in a release build), so a benchmark does not measure generation. Only
    /// what fits in [`CACHE_BUDGET`] stays cached.
    pub fn generate_all(&self) {
        for i in 0..self.pages() {
            let _ = self.body(i);
        }
        let _ = self.index_html();
    }

    /// The body of `/`: a list of links to every page, generated once.
    pub fn index_html(&self) -> Arc<[u8]> {
        self.inner
            .index
            .get_or_init(|| render_index(self).into_bytes().into())
            .clone()
    }

    /// Renders page `i`: `(html, visible text)`.
    fn render(&self, i: usize) -> (String, String) {
        match self.kind(i).unwrap_or(PageKind::NotFound) {
            PageKind::Normal | PageKind::Slow { .. } => render_content(self, i),

            PageKind::NotFound => (
                small_page("404 Not Found", &format!("Page {i} is missing on purpose.")),
                String::new(),
            ),
            PageKind::ServerError => (
                small_page(
                    "500 Internal Server Error",
                    &format!("Page {i} fails on purpose."),
                ),
                String::new(),
            ),
            PageKind::Redirect { target, .. } => (
                small_page(
                    "Moved",
                    &format!("Page {i} moved to <a href=\"/page/{target}\">page {target}</a>."),
                ),
                String::new(),
            ),
        }
    }
}

/// The page rule table of the module docs.
fn kind_of(i: usize, pages: usize) -> PageKind {
    match i % 20 {
        3 | 11 => PageKind::Slow {
            delay: Duration::from_millis(50 + (i as u64 * 7919) % 251),
        },
        7 => PageKind::NotFound,
        17 => PageKind::ServerError,
        r @ (5 | 15) => PageKind::Redirect {
            status: if r == 5 { 301 } else { 302 },
            target: redirect_target(i, pages),
            absolute: (i / 20) % 2 == 1,
        },
        _ => PageKind::Normal,
    }
}

/// The first normal page at or after `(7 i + 3) % pages`. Page 0 is normal, so the search ends.
fn redirect_target(i: usize, pages: usize) -> usize {
    let mut j = (i.wrapping_mul(7).wrapping_add(3)) % pages.max(1);
    while !matches!(kind_of_plain(j), PlainKind::Normal) {
        j = (j + 1) % pages.max(1);
    }
    j
}

/// `kind_of` without the redirect target (which would recurse).
enum PlainKind {
    Normal,
    Other,
}

fn kind_of_plain(i: usize) -> PlainKind {
    match i % 20 {
        3 | 11 | 7 | 17 | 5 | 15 => PlainKind::Other,
        _ => PlainKind::Normal,
    }
}

fn title_of(seed: u64, i: usize) -> String {
    // A stream of its own, so a page's title does not depend on how its body is generated.
    text::title(&mut Rng::new(seed ^ 0x7469_746C_6573, i as u64))
}

/// A tiny complete HTML page for error and redirect responses.
pub(crate) fn small_page(title: &str, paragraph_html: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         </head>\n<body><h1>{title}</h1><p>{paragraph_html}</p><p><a href=\"/\">Index</a></p>\
         </body></html>\n"
    )
}

/// Builds the HTML of a content page and its visible text side by side.
struct Writer<'a> {
    rng: &'a mut Rng,
    html: String,
    text: String,
    pages: usize,
}

impl Writer<'_> {
    /// Starts a block of visible text (a new line in `text`).
    fn block(&mut self) {
        if !self.text.is_empty() {
            self.text.push('\n');
        }
    }

    /// A link to a random page, with a few words of anchor text.
    fn link(&mut self) {
        let target = self.rng.below(self.pages.max(1));
        let _ = write!(self.html, "<a href=\"/page/{target}\">");
        let words = self.rng.range(1, 3);
        for w in 0..words {
            if w > 0 {
                self.html.push(' ');
                self.text.push(' ');
            }
            let word = self.rng.pick(WORDS);
            self.html.push_str(word);
            self.text.push_str(word);
        }
        self.html.push_str("</a>");
    }

    /// A paragraph of `sentences` sentences, with the odd link, `<em>` or `<strong>`.
    fn paragraph(&mut self, sentences: usize) {
        self.block();
        self.html.push_str("<p>");
        for s in 0..sentences {
            if s > 0 {
                self.html.push(' ');
                self.text.push(' ');
            }
            match self.rng.below(8) {
                0 => {
                    self.html.push_str("<em>");
                    text::sentence(self.rng, &mut self.html, &mut self.text);
                    self.html.push_str("</em>");
                }
                1 => {
                    self.html.push_str("<strong>");
                    text::sentence(self.rng, &mut self.html, &mut self.text);
                    self.html.push_str("</strong>");
                }
                2 => {
                    self.link();
                    self.html.push(' ');
                    self.text.push(' ');
                    text::sentence(self.rng, &mut self.html, &mut self.text);
                }
                _ => text::sentence(self.rng, &mut self.html, &mut self.text),
            }
        }
        self.html.push_str("</p>\n");
    }

    fn heading(&mut self, level: u8) {
        self.block();
        let title = text::title(self.rng);
        let _ = writeln!(self.html, "<h{level}>{title}</h{level}>");
        self.text.push_str(&title);
    }

    fn list(&mut self) {
        self.html.push_str("<ul>\n");
        for _ in 0..self.rng.range(2, 5) {
            self.block();
            self.html.push_str("<li>");
            if self.rng.one_in(2) {
                self.link();
                self.html.push(' ');
                self.text.push(' ');
            }
            text::sentence(self.rng, &mut self.html, &mut self.text);
            self.html.push_str("</li>\n");
        }
        self.html.push_str("</ul>\n");
    }

    fn script(&mut self, page: usize) {
        let n = self.rng.next_u64() % 100_000;
        let _ = writeln!(
            self.html,
            "<script>/* {SCRIPT_MARKER} */\nvar demo = {{ page: {page}, token: \"{n}\", note: \
             \"{SCRIPT_MARKER} &amp; <b>not text</b>\" }};\nif (demo.page < 0 && demo.token) \
             {{ document.title = \"{SCRIPT_MARKER}\"; }}\n</script>"
        );
    }

    fn section(&mut self, page: usize) {
        self.heading(2);
        for _ in 0..self.rng.range(1, 4) {
            let sentences = self.rng.range(2, 6);
            self.paragraph(sentences);
        }
        match self.rng.below(6) {
            0 => self.list(),
            1 => {
                self.heading(3);
                let sentences = self.rng.range(1, 4);
                self.paragraph(sentences);
            }
            2 => self.script(page),
            3 => self
                .html
                .push_str("<!-- generated by scraipe's demo site: not visible -->\n"),
            _ => {}
        }
    }
}

fn render_content(site: &DemoSite, i: usize) -> (String, String) {
    let mut rng = Rng::new(site.seed(), i as u64 + 1);
    let target = (MIN_TARGET * (MAX_TARGET / MIN_TARGET).powf(rng.unit())) as usize;
    let rich = target >= RICH_PAGE;
    let title = title_of(site.seed(), i);
    let mut w = Writer {
        rng: &mut rng,
        html: String::with_capacity(target + 4096),
        text: String::new(),
        pages: site.pages(),
    };
    let _ = write!(
        w.html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Page {i}: {title}</title>\n"
    );
    if rich {
        let hue = w.rng.below(360);
        let _ = write!(
            w.html,
            "<style>/* {STYLE_MARKER} */\nbody {{ font-family: Georgia, serif; max-width: 40em; \
             margin: auto; }}\nh1, h2 {{ color: hsl({hue}, 40%, 30%); }}\n\
             .{STYLE_MARKER}::after {{ content: \"{STYLE_MARKER}\"; }}\n</style>\n"
        );
    }
    w.html.push_str("</head>\n<body>\n");
    let _ = writeln!(w.html, "<h1>{title}</h1>");
    w.text.push_str(&title);

    // The first paragraph always has a non-ASCII word and an `&amp;`, whatever the dice say.
    w.block();
    w.html.push_str("<p>");
    text::sentence(w.rng, &mut w.html, &mut w.text);
    let special = w.rng.pick(NON_ASCII_WORDS);
    let plain = w.rng.pick(WORDS);
    let _ = writeln!(w.html, " {special} &amp; {plain}.</p>");
    let _ = write!(w.text, " {special} & {plain}.");

    if rich {
        w.html
            .push_str("<!-- an HTML comment: not visible text -->\n");
        // Leave room for the footer (nav + script, about 400 bytes).
        while w.html.len() + 400 < target {
            w.section(i);
        }
    }

    w.block();
    let (prev, next) = (
        (i + site.pages() - 1) % site.pages(),
        (i + 1) % site.pages(),
    );
    let _ = writeln!(
        w.html,
        "<nav><a href=\"/\">Index</a> <a href=\"/page/{prev}\">Previous</a> \
         <a href=\"/page/{next}\">Next</a></nav>"
    );
    w.text.push_str("Index Previous Next");
    if rich {
        w.script(i);
    }
    w.html.push_str("</body>\n</html>\n");
    (w.html, w.text)
}

fn render_index(site: &DemoSite) -> String {
    let mut html = String::with_capacity(200 + site.pages() * 48);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>scraipe demo site</title>\n</head>\n<body>\n<h1>scraipe demo site</h1>\n\
         <p>{} pages, seed {}.</p>\n<ul>\n",
        site.pages(),
        site.seed()
    );
    for i in 0..site.pages() {
        let _ = writeln!(
            html,
            "<li><a href=\"/page/{i}\">Page {i}: {}</a></li>",
            title_of(site.seed(), i)
        );
    }
    html.push_str("</ul>\n</body>\n</html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_table_shares() {
        let site = DemoSite::new(2000, 0);
        let mut counts = std::collections::HashMap::new();
        for i in 0..2000 {
            let k = match site.kind(i).unwrap() {
                PageKind::Normal => "normal",
                PageKind::Slow { .. } => "slow",
                PageKind::NotFound => "404",
                PageKind::ServerError => "500",
                PageKind::Redirect { status: 301, .. } => "301",
                PageKind::Redirect { .. } => "302",
            };
            *counts.entry(k).or_insert(0) += 1;
        }
        assert_eq!(counts["normal"], 1400);
        assert_eq!(counts["slow"], 200);
        for k in ["404", "500", "301", "302"] {
            assert_eq!(counts[k], 100, "{k}");
        }
    }

    #[test]
    fn redirects_land_on_normal_pages_even_on_tiny_sites() {
        for pages in 1..45 {
            let site = DemoSite::new(pages, 3);
            for i in 0..pages {
                if let PageKind::Redirect { target, .. } = site.kind(i).unwrap() {
                    assert!(target < pages);
                    assert_eq!(site.kind(target), Some(PageKind::Normal));
                }
            }
        }
    }

    #[test]
    fn slow_delays_are_in_range() {
        let site = DemoSite::new(400, 0);
        for i in 0..400 {
            let e = site.expected(i).unwrap();
            if e.is_slow() {
                assert!(
                    e.delay >= Duration::from_millis(50) && e.delay <= Duration::from_millis(300)
                );
            } else {
                assert_eq!(e.delay, Duration::ZERO);
            }
        }
    }

    #[test]
    fn the_cache_stays_within_its_budget() {
        let site = DemoSite::with_budget(200, 1, 100_000);
        site.generate_all();
        let cached = site.inner.cached.load(Ordering::Relaxed);
        assert!(cached <= 100_000 && cached > 50_000, "{cached}");
        let held: usize = site
            .inner
            .bodies
            .iter()
            .filter_map(|b| b.get())
            .map(|b| b.len())
            .sum();
        assert_eq!(held, cached);
        // Uncached pages are still served, identical to a fully cached site's.
        let full = DemoSite::new(200, 1);
        for i in 0..200 {
            assert_eq!(site.body(i), full.body(i));
        }
    }

    #[test]
    fn empty_site_has_an_index() {
        let site = DemoSite::new(0, 0);
        assert!(site.kind(0).is_none());
        assert!(site.body(0).is_none());
        assert!(std::str::from_utf8(&site.index_html())
            .unwrap()
            .contains("0 pages"));
    }
}
