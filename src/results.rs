//! The outcome of scraping one link ([`ScrapeResult`]) and of analysing one piece of content
//! ([`AnalysisResult`]).
//!
//! Both keep an invariant from construction on, through deserialisation too:
//!
//! * success ⇒ content (output) present and no error;
//! * failure ⇒ error present and no content (output).
//!
//! Their serde form uses exactly Python Scraipe's field names (`link`, `content`,
//! `scrape_success`, `scrape_error`, `metadata`; `output`, `analysis_success`,
//! `analysis_error`). Rows Python writes are read here; the debug chain Python's
//! `MultiScraper`/`MultiAnalyzer(debug=True)` puts in a success's error moves to `debug_chain`
//! (in the scrape's metadata, in the analysis output), since here a success has no error.
//! Python reads ours except a success with empty content or an empty output (a 304 "not
//! modified" scrape, an empty page), which its validators refuse.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A JSON object: the type of [`ScrapeResult::metadata`] and [`AnalysisResult::output`].
pub type JsonMap = Map<String, Value>;

/// A result whose fields break the success/failure invariant (from deserialisation or
/// [`ScrapeResult::from_parts`] / [`AnalysisResult::from_parts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidResult {
    reason: &'static str,
}

impl InvalidResult {
    /// What was wrong.
    pub fn reason(&self) -> &str {
        self.reason
    }
}

impl fmt::Display for InvalidResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid result: {}", self.reason)
    }
}

impl std::error::Error for InvalidResult {}

/// The result of scraping one link.
///
/// ```
/// use scraipe::ScrapeResult;
///
/// let ok = ScrapeResult::succeed("https://example.com", "Example Domain");
/// assert!(ok.success());
/// assert_eq!(ok.content(), Some("Example Domain"));
/// assert_eq!(ok.error(), None);
///
/// let failed = ScrapeResult::fail("https://example.com/404", "Status code: 404");
/// assert!(!failed.success());
/// assert_eq!(failed.content(), None);
/// assert_eq!(failed.error(), Some("Status code: 404"));
///
/// // The serde form has Python Scraipe's field names.
/// let json = serde_json::to_value(&ok).unwrap();
/// assert_eq!(json["scrape_success"], true);
/// assert_eq!(json["content"], "Example Domain");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawScrapeResult", into = "RawScrapeResult")]
pub struct ScrapeResult {
    link: String,
    content: Option<String>,
    scrape_success: bool,
    scrape_error: Option<String>,
    metadata: Option<JsonMap>,
}

/// The unchecked serde mirror of [`ScrapeResult`].
#[derive(Serialize, Deserialize)]
struct RawScrapeResult {
    link: String,
    #[serde(default)]
    content: Option<String>,
    scrape_success: bool,
    #[serde(default)]
    scrape_error: Option<String>,
    #[serde(default)]
    metadata: Option<JsonMap>,
}

impl TryFrom<RawScrapeResult> for ScrapeResult {
    type Error = InvalidResult;
    fn try_from(mut r: RawScrapeResult) -> Result<Self, InvalidResult> {
        // Python's `MultiScraper(debug=True)` writes its chain into the error of a success;
        // here a success has no error: the chain moves to metadata, where ours puts it.
        if r.scrape_success && r.content.is_some() {
            if let Some(chain) = r.scrape_error.take() {
                r.metadata
                    .get_or_insert_with(JsonMap::new)
                    .entry("debug_chain")
                    .or_insert(Value::String(chain));
            }
        }
        ScrapeResult::from_parts(
            r.link,
            r.content,
            r.scrape_success,
            r.scrape_error,
            r.metadata,
        )
    }
}

impl From<ScrapeResult> for RawScrapeResult {
    fn from(r: ScrapeResult) -> Self {
        RawScrapeResult {
            link: r.link,
            content: r.content,
            scrape_success: r.scrape_success,
            scrape_error: r.scrape_error,
            metadata: r.metadata,
        }
    }
}

impl ScrapeResult {
    /// A successful scrape of `link` that produced `content`.
    pub fn succeed(link: impl Into<String>, content: impl Into<String>) -> ScrapeResult {
        ScrapeResult {
            link: link.into(),
            content: Some(content.into()),
            scrape_success: true,
            scrape_error: None,
            metadata: None,
        }
    }

    /// A failed scrape of `link`, with a message saying why.
    pub fn fail(link: impl Into<String>, error: impl Into<String>) -> ScrapeResult {
        ScrapeResult {
            link: link.into(),
            content: None,
            scrape_success: false,
            scrape_error: Some(error.into()),
            metadata: None,
        }
    }

    /// Attaches metadata (any JSON object: headers, titles, timings...).
    ///
    /// ```
    /// use scraipe::ScrapeResult;
    /// use serde_json::json;
    ///
    /// let meta = json!({"status": 200}).as_object().cloned().unwrap();
    /// let r = ScrapeResult::succeed("https://a.example", "hi").with_metadata(meta);
    /// assert_eq!(r.metadata().unwrap()["status"], 200);
    /// ```
    pub fn with_metadata(mut self, metadata: JsonMap) -> ScrapeResult {
        self.metadata = Some(metadata);
        self
    }

    /// Builds a result from its fields, checking the invariant.
    ///
    /// ```
    /// use scraipe::ScrapeResult;
    /// assert!(ScrapeResult::from_parts("l".into(), None, true, None, None).is_err());
    /// assert!(ScrapeResult::from_parts("l".into(), Some("c".into()), true, None, None).is_ok());
    /// ```
    pub fn from_parts(
        link: String,
        content: Option<String>,
        scrape_success: bool,
        scrape_error: Option<String>,
        metadata: Option<JsonMap>,
    ) -> Result<ScrapeResult, InvalidResult> {
        match (scrape_success, &content, &scrape_error) {
            (true, None, _) => Err(InvalidResult {
                reason: "a successful scrape needs content",
            }),
            (true, Some(_), Some(_)) => Err(InvalidResult {
                reason: "a successful scrape carries no error",
            }),
            (false, _, None) => Err(InvalidResult {
                reason: "a failed scrape needs an error",
            }),
            (false, Some(_), Some(_)) => Err(InvalidResult {
                reason: "a failed scrape carries no content",
            }),
            _ => Ok(ScrapeResult {
                link,
                content,
                scrape_success,
                scrape_error,
                metadata,
            }),
        }
    }

    /// The link that was scraped.
    pub fn link(&self) -> &str {
        &self.link
    }

    /// The content, present exactly when the scrape succeeded.
    pub fn content(&self) -> Option<&str> {
        self.content.as_deref()
    }

    /// Whether the scrape succeeded (Python's `scrape_success`).
    pub fn success(&self) -> bool {
        self.scrape_success
    }

    /// The error, present exactly when the scrape failed (Python's `scrape_error`).
    pub fn error(&self) -> Option<&str> {
        self.scrape_error.as_deref()
    }

    /// The metadata, if the scraper attached any.
    pub fn metadata(&self) -> Option<&JsonMap> {
        self.metadata.as_ref()
    }

    /// Mutable access to the metadata; creates an empty object if there was none.
    pub fn metadata_mut(&mut self) -> &mut JsonMap {
        self.metadata.get_or_insert_with(Map::new)
    }

    /// Takes the content out (`None` for a failure).
    pub fn into_content(self) -> Option<String> {
        self.content
    }

    /// The same result for another link (used when a store re-keys a result).
    pub(crate) fn relinked(mut self, link: &str) -> ScrapeResult {
        self.link = link.to_string();
        self
    }
}

impl fmt::Display for ScrapeResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ScrapeResult(link={}, success={}",
            self.link, self.scrape_success
        )?;
        if let Some(e) = &self.scrape_error {
            write!(f, ", error={e}")?;
        }
        if let Some(c) = &self.content {
            write!(f, ", content={} chars", c.chars().count())?;
        }
        f.write_str(")")
    }
}

/// The result of analysing one piece of content.
///
/// ```
/// use scraipe::AnalysisResult;
/// use serde_json::json;
///
/// let out = json!({"sentiment": "positive"}).as_object().cloned().unwrap();
/// let ok = AnalysisResult::succeed(out);
/// assert!(ok.success());
/// assert_eq!(ok.output().unwrap()["sentiment"], "positive");
///
/// let failed = AnalysisResult::fail("model unavailable");
/// assert_eq!(failed.output(), None);
/// assert_eq!(failed.error(), Some("model unavailable"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawAnalysisResult", into = "RawAnalysisResult")]
pub struct AnalysisResult {
    output: Option<JsonMap>,
    analysis_success: bool,
    analysis_error: Option<String>,
    metadata: Option<JsonMap>,
}

/// The unchecked serde mirror of [`AnalysisResult`].
#[derive(Serialize, Deserialize)]
struct RawAnalysisResult {
    #[serde(default)]
    output: Option<JsonMap>,
    analysis_success: bool,
    #[serde(default)]
    analysis_error: Option<String>,
    /// Not in Python Scraipe: left out of the serde form when absent, so rows without it
    /// keep Python's exact shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    analysis_metadata: Option<JsonMap>,
}

impl TryFrom<RawAnalysisResult> for AnalysisResult {
    type Error = InvalidResult;
    fn try_from(mut r: RawAnalysisResult) -> Result<Self, InvalidResult> {
        // As for scrapes: a Python success may carry its debug chain as the error; it moves
        // into the output, where our `MultiAnalyzer` puts it.
        if r.analysis_success {
            if let (Some(output), Some(chain)) = (r.output.as_mut(), r.analysis_error.take()) {
                output.entry("debug_chain").or_insert(Value::String(chain));
            }
        }
        let result = AnalysisResult::from_parts(r.output, r.analysis_success, r.analysis_error)?;
        Ok(match r.analysis_metadata {
            Some(meta) => result.with_metadata(meta),
            None => result,
        })
    }
}

impl From<AnalysisResult> for RawAnalysisResult {
    fn from(r: AnalysisResult) -> Self {
        RawAnalysisResult {
            output: r.output,
            analysis_success: r.analysis_success,
            analysis_error: r.analysis_error,
            analysis_metadata: r.metadata,
        }
    }
}

impl AnalysisResult {
    /// A successful analysis with its output.
    pub fn succeed(output: JsonMap) -> AnalysisResult {
        AnalysisResult {
            output: Some(output),
            analysis_success: true,
            analysis_error: None,
            metadata: None,
        }
    }

    /// A failed analysis, with a message saying why.
    pub fn fail(error: impl Into<String>) -> AnalysisResult {
        AnalysisResult {
            output: None,
            analysis_success: false,
            analysis_error: Some(error.into()),
            metadata: None,
        }
    }

    /// Builds a result from its fields, checking the invariant.
    pub fn from_parts(
        output: Option<JsonMap>,
        analysis_success: bool,
        analysis_error: Option<String>,
    ) -> Result<AnalysisResult, InvalidResult> {
        match (analysis_success, &output, &analysis_error) {
            (true, None, _) => Err(InvalidResult {
                reason: "a successful analysis needs output",
            }),
            (true, Some(_), Some(_)) => Err(InvalidResult {
                reason: "a successful analysis carries no error",
            }),
            (false, _, None) => Err(InvalidResult {
                reason: "a failed analysis needs an error",
            }),
            (false, Some(_), Some(_)) => Err(InvalidResult {
                reason: "a failed analysis carries no output",
            }),
            _ => Ok(AnalysisResult {
                output,
                analysis_success,
                analysis_error,
                metadata: None,
            }),
        }
    }

    /// The output, present exactly when the analysis succeeded.
    pub fn output(&self) -> Option<&JsonMap> {
        self.output.as_ref()
    }

    /// Whether the analysis succeeded (Python's `analysis_success`).
    pub fn success(&self) -> bool {
        self.analysis_success
    }

    /// The error, present exactly when the analysis failed (Python's `analysis_error`).
    pub fn error(&self) -> Option<&str> {
        self.analysis_error.as_deref()
    }

    /// Takes the output out (`None` for a failure).
    pub fn into_output(self) -> Option<JsonMap> {
        self.output
    }

    /// Attaches metadata about how the analysis went (model, token usage, latency...),
    /// kept apart from the output. Serialised as `analysis_metadata`, only when present.
    ///
    /// ```
    /// use scraipe::AnalysisResult;
    /// use serde_json::json;
    ///
    /// let meta = json!({"model": "m", "total_tokens": 12}).as_object().cloned().unwrap();
    /// let r = AnalysisResult::fail("reply is not JSON").with_metadata(meta);
    /// assert_eq!(r.metadata().unwrap()["total_tokens"], 12);
    /// assert_eq!(serde_json::to_value(&r).unwrap()["analysis_metadata"]["model"], "m");
    /// ```
    pub fn with_metadata(mut self, metadata: JsonMap) -> AnalysisResult {
        self.metadata = Some(metadata);
        self
    }

    /// The metadata, if the analyzer attached any.
    pub fn metadata(&self) -> Option<&JsonMap> {
        self.metadata.as_ref()
    }
}

impl fmt::Display for AnalysisResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AnalysisResult(success={}", self.analysis_success)?;
        if let Some(e) = &self.analysis_error {
            write!(f, ", error={e}")?;
        }
        if let Some(o) = &self.output {
            write!(f, ", output={}", Value::Object(o.clone()))?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serde_field_names_are_pythons() {
        let r = ScrapeResult::fail("l", "e");
        let v = serde_json::to_value(&r).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "link",
                "content",
                "scrape_success",
                "scrape_error",
                "metadata"
            ]
        );
        let a = AnalysisResult::fail("e");
        let v = serde_json::to_value(&a).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["output", "analysis_success", "analysis_error"]);
    }

    #[test]
    fn deserialisation_checks_the_invariant() {
        let bad = json!({"link": "l", "scrape_success": true});
        assert!(serde_json::from_value::<ScrapeResult>(bad).is_err());
        let bad =
            json!({"link": "l", "scrape_success": false, "content": "x", "scrape_error": "e"});
        assert!(serde_json::from_value::<ScrapeResult>(bad).is_err());
        let ok = json!({"link": "l", "scrape_success": false, "scrape_error": "e"});
        assert_eq!(
            serde_json::from_value::<ScrapeResult>(ok).unwrap(),
            ScrapeResult::fail("l", "e")
        );
        let bad = json!({"analysis_success": true, "analysis_error": "x"});
        assert!(serde_json::from_value::<AnalysisResult>(bad).is_err());
        let bad = json!({"analysis_success": false});
        assert!(serde_json::from_value::<AnalysisResult>(bad).is_err());
    }

    /// Python's `MultiScraper(debug=True)` / `MultiAnalyzer(debug=True)` write their chain into
    /// a success's error: such rows are read, the chain kept under `debug_chain`.
    #[test]
    fn python_debug_rows_are_read_with_their_chain_kept() {
        let row = json!({"link": "l", "content": "c", "scrape_success": true,
            "scrape_error": "TextScraper[SUCCESS]", "metadata": null});
        let r: ScrapeResult = serde_json::from_value(row).unwrap();
        assert!(r.success() && r.error().is_none());
        assert_eq!(r.metadata().unwrap()["debug_chain"], "TextScraper[SUCCESS]");
        let row = json!({"output": {"n": 1}, "analysis_success": true,
            "analysis_error": "Stats[SUCCESS]"});
        let a: AnalysisResult = serde_json::from_value(row).unwrap();
        assert!(a.success() && a.error().is_none());
        assert_eq!(a.output().unwrap()["debug_chain"], "Stats[SUCCESS]");
    }

    #[test]
    fn round_trip() {
        let meta = json!({"a": [1, 2], "b": {"c": null}})
            .as_object()
            .cloned()
            .unwrap();
        let r = ScrapeResult::succeed("https://x", "").with_metadata(meta);
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<ScrapeResult>(&s).unwrap(), r);
        let a = AnalysisResult::succeed(Map::new());
        let s = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<AnalysisResult>(&s).unwrap(), a);
    }

    #[test]
    fn from_parts_rejects_every_broken_combination() {
        let l = || "l".to_string();
        let s = || Some("s".to_string());
        assert!(ScrapeResult::from_parts(l(), s(), true, s(), None).is_err());
        assert!(ScrapeResult::from_parts(l(), None, false, None, None).is_err());
        assert!(ScrapeResult::from_parts(l(), s(), false, s(), None).is_err());
        assert!(ScrapeResult::from_parts(l(), None, false, s(), None).is_ok());
        assert!(AnalysisResult::from_parts(Some(Map::new()), false, s()).is_err());
        assert!(AnalysisResult::from_parts(None, true, None).is_err());
        assert!(AnalysisResult::from_parts(Some(Map::new()), true, None).is_ok());
    }
}
