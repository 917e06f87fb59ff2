//! Ready-made components (Python Scraipe's `scraipe.defaults`): [`TextStatsAnalyzer`],
//! [`MultiScraper`] with [`IngressRule`]s, [`MultiAnalyzer`], [`ListLinkCollector`], and
//! [`html_to_text`] for text scrapers.
//!
//! [`RawScraper`] and [`TextScraper`] fetch pages with [`crate::http::Client`].

mod html;
mod http_scrapers;
mod list_link_collector;
mod multi_analyzer;
mod multi_scraper;
mod text_stats;

pub use html::html_to_text;
pub use http_scrapers::{
    kind_name, Extract, ExtractFuture, HttpScraper, Raw, RawScraper, Text, TextScraper,
};
pub use list_link_collector::ListLinkCollector;
pub use multi_analyzer::{MultiAnalyzer, NoAnalyzers};
pub use multi_scraper::{IngressRule, MultiScraper};
pub use text_stats::{TextStats, TextStatsAnalyzer};
