//! [`OfferAnalyzer`]: the extractor as a Scraipe [`Analyzer`].

use std::sync::Arc;

use crate::results::AnalysisResult;
use crate::traits::{analyze_on_blocking_pool, AnalysisIter, Analyzer};

use super::{extract_offer, Rules};

/// Why an analysis fails when the page has no offer.
pub const NO_OFFER: &str =
    "no offer found: no matching site rule, JSON-LD, microdata or meta tag gave a price";

/// An [`Analyzer`] whose output is the page's [`Offer`](super::Offer) as JSON (`price`,
/// `currency`, `availability`, `name`, `source`), and which fails with [`NO_OFFER`] when the
/// page has none.
///
/// Site rules match on the link, which only [`analyze_multiple`](Analyzer::analyze_multiple)
/// (what [`Workflow`](crate::Workflow) calls) and [`analyze_link`](OfferAnalyzer::analyze_link)
/// know; plain [`analyze`](Analyzer::analyze) has content only and so uses the markup alone.
///
/// ```
/// use std::sync::Arc;
/// use scraipe::Analyzer;
/// use scraipe::offer::{OfferAnalyzer, Rules};
///
/// let analyzer = OfferAnalyzer::new(Arc::new(Rules::default()));
/// let page = r#"<meta property="product:price:amount" content="12.50">
///               <meta property="product:price:currency" content="PLN">"#;
/// let out = analyzer.analyze(page).into_output().unwrap();
/// assert_eq!(out["price"], "12.50");
/// assert_eq!(out["currency"], "PLN");
/// assert_eq!(out["availability"], "unknown");
/// assert_eq!(out["source"], "meta");
/// assert!(!analyzer.analyze("<p>nothing</p>").success());
/// ```
#[derive(Debug, Clone)]
pub struct OfferAnalyzer {
    rules: Arc<Rules>,
}

impl OfferAnalyzer {
    /// An analyzer applying `rules` (pass `Arc::new(Rules::default())` for markup only).
    pub fn new(rules: Arc<Rules>) -> OfferAnalyzer {
        OfferAnalyzer { rules }
    }

    /// The rules it applies.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Analyses the content of `link`, applying the site rules that match it.
    pub fn analyze_link(&self, link: &str, content: &str) -> AnalysisResult {
        match extract_offer(content, link, &self.rules) {
            Some(offer) => match serde_json::to_value(offer) {
                Ok(serde_json::Value::Object(map)) => AnalysisResult::succeed(map),
                Ok(other) => AnalysisResult::fail(format!("offer is not a JSON object: {other}")),
                Err(e) => AnalysisResult::fail(format!("cannot serialise the offer: {e}")),
            },
            None => AnalysisResult::fail(NO_OFFER),
        }
    }
}

impl Analyzer for OfferAnalyzer {
    fn analyze(&self, content: &str) -> AnalysisResult {
        self.analyze_link("", content)
    }

    /// As the default (the blocking pool, as many at once as there are CPUs), but passing
    /// each link along so site rules apply.
    fn analyze_multiple(self: Arc<Self>, contents: Vec<(String, String)>) -> AnalysisIter {
        analyze_on_blocking_pool(self, contents, |me, link, content| {
            me.analyze_link(link, content)
        })
    }
}
