//! Ready-made components (Python Scraipe's `scraipe.defaults`): [`TextStatsAnalyzer`],
//! [`MultiScraper`] with [`IngressRule`]s, [`MultiAnalyzer`], [`ListLinkCollector`], and
//! [`html_to_text`] for text scrapers.
//!
//! The network scrapers (`RawScraper`, `TextScraper`) live with the HTTP client.

mod html;
mod list_link_collector;
mod multi_analyzer;
mod multi_scraper;
mod text_stats;

pub use html::html_to_text;
pub use list_link_collector::ListLinkCollector;
pub use multi_analyzer::{MultiAnalyzer, NoAnalyzers};
pub use multi_scraper::{IngressRule, MultiScraper};
pub use text_stats::{TextStats, TextStatsAnalyzer};
