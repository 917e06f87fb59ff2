//! [`Rules`]: per-site CSS selectors from a TOML file, for pages without structured markup.
//!
//! ```toml
//! [[site]]
//! match = "^https?://shop-3\\.localhost(:\\d+)?/"   # regex on the URL
//! price = ".price-box .amount"      # CSS selector (required)
//! currency = ".price-box .cur"      # optional CSS selector
//! currency_code = "EUR"             # optional fixed ISO 4217 code
//! availability = ".stock"           # optional CSS selector
//! name = "h1"                       # optional CSS selector
//!
//! [[site]]
//! match = "^https?://plain\\.localhost(:\\d+)?/"
//! extract = "llm"                   # ask the monitor's model (selectors optional)
//! currency_code = "EUR"             # optional: used when the model names no currency
//! ```
//!
//! `extract` is `"css"` (the default: `price` is required) or `"llm"`: the monitor sends the
//! page's visible text to its LLM analyzer under the offer schema (see
//! [`offer_schema`](super::offer_schema)). [`extract_offer`](super::extract_offer) never uses
//! an `llm` entry; [`Rules::llm_wanted`] tells the caller to ask the model.
//!
//! Everything is checked when the file is read: TOML syntax, unknown keys, value types, each
//! regex, each selector and the currency code. An error names the file, the entry (1-based,
//! with its `match`) and the field.

use std::fmt;
use std::path::{Path, PathBuf};

use regex::Regex;
use scraper::Selector;

use super::currency::is_iso_code;
use super::host_index::HostIndex;

/// The keys a `[[site]]` entry may have.
const KEYS: &[&str] = &[
    "match",
    "extract",
    "price",
    "currency",
    "currency_code",
    "availability",
    "name",
];

/// Site rules: `[[site]]` entries, tried in file order on pages whose URL they match.
///
/// ```
/// use scraipe::offer::Rules;
/// let rules = Rules::from_toml_str(r#"
///     [[site]]
///     match = "^https://shop\\.example/"
///     price = ".price"
///     currency_code = "EUR"
/// "#)?;
/// assert_eq!(rules.len(), 1);
/// assert!(Rules::from_toml_str("[[site]]\nmatch = \"(\"\nprice = \".p\"").is_err());
/// # Ok::<(), scraipe::offer::RulesError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Rules {
    sites: Vec<SiteRule>,
    /// Which entries can match a URL, found without running every regex.
    index: HostIndex,
}

/// How a `[[site]]` entry extracts its offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extract {
    /// CSS selectors (`extract = "css"`, the default).
    Css,
    /// The monitor's LLM analyzer (`extract = "llm"`).
    Llm,
}

/// One compiled `[[site]]` entry.
#[derive(Debug, Clone)]
pub(crate) struct SiteRule {
    pub(crate) pattern: Regex,
    pub(crate) extract: Extract,
    /// Required for [`Extract::Css`]; may be absent for [`Extract::Llm`].
    pub(crate) price: Option<Selector>,
    pub(crate) currency: Option<Selector>,
    pub(crate) currency_code: Option<String>,
    pub(crate) availability: Option<Selector>,
    pub(crate) name: Option<Selector>,
}

impl Rules {
    /// Parses and checks a rules file's text.
    pub fn from_toml_str(s: &str) -> Result<Rules, RulesError> {
        let table: toml::Table = toml::from_str(s).map_err(|e| RulesError {
            message: format!("invalid TOML: {}", e.to_string().trim_end()),
            ..RulesError::default()
        })?;
        let mut sites = Vec::new();
        for (key, value) in &table {
            if key != "site" {
                return Err(RulesError {
                    message: format!("unknown top-level key `{key}` (expected `[[site]]` entries)"),
                    ..RulesError::default()
                });
            }
            let toml::Value::Array(entries) = value else {
                return Err(RulesError {
                    message: format!(
                        "`site` must be an array of tables (`[[site]]`), found {}",
                        value.type_str()
                    ),
                    ..RulesError::default()
                });
            };
            for (i, entry) in entries.iter().enumerate() {
                sites.push(SiteRule::compile(i + 1, entry)?);
            }
        }
        let index = HostIndex::new(&sites);
        Ok(Rules { sites, index })
    }

    /// Reads and checks a rules file; errors name the file.
    pub fn load(path: &Path) -> Result<Rules, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|e| RulesError {
            path: Some(path.to_path_buf()),
            message: format!("cannot read the rules file: {e}"),
            ..RulesError::default()
        })?;
        Rules::from_toml_str(&text).map_err(|mut e| {
            e.path = Some(path.to_path_buf());
            e
        })
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }

    /// The number of `[[site]]` entries.
    pub fn len(&self) -> usize {
        self.sites.len()
    }

    /// Whether the first entry matching `url` says `extract = "llm"`: the caller should ask
    /// its LLM analyzer for the offer (when the page has no structured markup).
    ///
    /// ```
    /// use scraipe::offer::Rules;
    /// let rules = Rules::from_toml_str(r#"
    ///     [[site]]
    ///     match = "^https://plain\\.example/"
    ///     extract = "llm"
    /// "#)?;
    /// assert!(rules.llm_wanted("https://plain.example/p/1"));
    /// assert!(!rules.llm_wanted("https://other.example/"));
    /// assert!(rules.uses_llm());
    /// # Ok::<(), scraipe::offer::RulesError>(())
    /// ```
    pub fn llm_wanted(&self, url: &str) -> bool {
        self.matching(url)
            .next()
            .is_some_and(|s| s.extract == Extract::Llm)
    }

    /// Whether any entry says `extract = "llm"` (a model must be configured).
    pub fn uses_llm(&self) -> bool {
        self.sites.iter().any(|s| s.extract == Extract::Llm)
    }

    /// The fixed `currency_code` of the first entry matching `url`, if it has one.
    pub fn currency_code<'a>(&'a self, url: &'a str) -> Option<&'a str> {
        self.matching(url).next()?.currency_code.as_deref()
    }

    /// The compiled entries, in file order.
    #[cfg(test)]
    pub(crate) fn sites(&self) -> &[SiteRule] {
        &self.sites
    }

    /// The entries whose `match` matches `url`, in file order.
    pub(crate) fn matching<'a>(&'a self, url: &'a str) -> impl Iterator<Item = &'a SiteRule> {
        self.index
            .candidates(url)
            .into_iter()
            .map(move |i| &self.sites[i])
            .filter(move |s| s.pattern.is_match(url))
    }
}

impl SiteRule {
    fn compile(index: usize, entry: &toml::Value) -> Result<SiteRule, RulesError> {
        let err = |label: Option<&str>, field: Option<&str>, message: String| RulesError {
            path: None,
            entry: Some(index),
            entry_match: label.map(str::to_string),
            field: field.map(str::to_string),
            message,
        };
        let toml::Value::Table(t) = entry else {
            return Err(err(
                None,
                None,
                format!("expected a table, found {}", entry.type_str()),
            ));
        };
        let label = t.get("match").and_then(toml::Value::as_str);
        for key in t.keys() {
            if !KEYS.contains(&key.as_str()) {
                return Err(err(
                    label,
                    Some(key),
                    format!("unknown key (expected one of: {})", KEYS.join(", ")),
                ));
            }
        }
        let string = |field: &str| -> Result<Option<&str>, RulesError> {
            match t.get(field) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s.as_str())),
                Some(other) => Err(err(
                    label,
                    Some(field),
                    format!("expected a string, found {}", other.type_str()),
                )),
            }
        };
        let required = |field: &str| -> Result<&str, RulesError> {
            string(field)?.ok_or_else(|| err(label, Some(field), "missing (required)".into()))
        };
        let selector = |field: &str, text: &str| -> Result<Selector, RulesError> {
            Selector::parse(text).map_err(|e| {
                err(
                    label,
                    Some(field),
                    format!("invalid CSS selector {text:?}: {}", selector_error(&e)),
                )
            })
        };
        let optional_selector = |field: &str| -> Result<Option<Selector>, RulesError> {
            string(field)?.map(|s| selector(field, s)).transpose()
        };

        let pattern_text = required("match")?;
        let pattern = Regex::new(pattern_text).map_err(|e| {
            err(
                label,
                Some("match"),
                format!("invalid regex: {}", regex_error(&e)),
            )
        })?;
        let extract = match string("extract")? {
            None | Some("css") => Extract::Css,
            Some("llm") => Extract::Llm,
            Some(other) => {
                return Err(err(
                    label,
                    Some("extract"),
                    format!("unknown extraction {other:?} (expected \"css\" or \"llm\")"),
                ))
            }
        };
        let price = match extract {
            Extract::Css => Some(selector("price", required("price")?)?),
            Extract::Llm => optional_selector("price")?,
        };
        let currency_code = match string("currency_code")? {
            None => None,
            Some(code) => {
                let upper = code.trim().to_ascii_uppercase();
                if !is_iso_code(&upper) {
                    return Err(err(
                        label,
                        Some("currency_code"),
                        format!("{code:?} is not an ISO 4217 currency code"),
                    ));
                }
                Some(upper)
            }
        };
        Ok(SiteRule {
            pattern,
            extract,
            price,
            currency: optional_selector("currency")?,
            currency_code,
            availability: optional_selector("availability")?,
            name: optional_selector("name")?,
        })
    }
}

/// scraper's message for the selector errors it does not name itself asks the user to
/// "report this to the developer"; the kind of error says more.
fn selector_error(e: &scraper::error::SelectorErrorKind) -> String {
    match e {
        scraper::error::SelectorErrorKind::UnexpectedSelectorParseError(kind) => {
            format!("{kind:?}")
        }
        other => other.to_string(),
    }
}

/// The regex crate's message draws the pattern over several lines; its last line says what
/// is wrong (the pattern is in the error's location already).
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text.lines().last().unwrap_or("").trim();
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}

/// A rules file that cannot be used; its message names the file, the `[[site]]` entry and
/// the field at fault, e.g.
/// `rules.toml: [[site]] #2 (match "^https://a/"), field `price`: invalid CSS selector ...`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RulesError {
    path: Option<PathBuf>,
    entry: Option<usize>,
    entry_match: Option<String>,
    field: Option<String>,
    message: String,
}

impl RulesError {
    /// The file, when the rules were [loaded](Rules::load) from one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The `[[site]]` entry at fault, counting from 1.
    pub fn entry(&self) -> Option<usize> {
        self.entry
    }

    /// The key at fault (`match`, `price`, `currency`, ...).
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// What is wrong, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, "{}: ", path.display())?;
        }
        if let Some(entry) = self.entry {
            write!(f, "[[site]] #{entry}")?;
            if let Some(m) = &self.entry_match {
                write!(f, " (match {m:?})")?;
            }
            match &self.field {
                Some(field) => write!(f, ", field `{field}`: ")?,
                None => write!(f, ": ")?,
            }
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for RulesError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_entry_compiles() {
        let rules = Rules::from_toml_str(
            r##"
            [[site]]
            match = "^https?://shop-3\\.localhost(:\\d+)?/"
            price = ".price-box .amount"
            currency = ".price-box .cur"
            currency_code = "eur"
            availability = ".stock"
            name = "h1"

            [[site]]
            match = "^https://other/"
            price = "#p"
            "##,
        )
        .unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules.sites[0].currency_code.as_deref(), Some("EUR"));
        let urls: Vec<_> = rules
            .matching("http://shop-3.localhost:8080/product/1")
            .collect();
        assert_eq!(urls.len(), 1);
        assert_eq!(rules.matching("http://shop-4.localhost/").count(), 0);
        assert!(Rules::from_toml_str("").unwrap().is_empty());
        assert!(Rules::default().is_empty());
    }

    fn error(toml: &str) -> RulesError {
        Rules::from_toml_str(toml).unwrap_err()
    }

    #[test]
    fn errors_name_entry_and_field() {
        let ok = "[[site]]\nmatch = \"a\"\nprice = \".p\"\n";
        let e = error(&format!("{ok}[[site]]\nmatch = \"(\"\nprice = \".p\"\n"));
        assert_eq!((e.entry(), e.field()), (Some(2), Some("match")));
        assert_eq!(
            e.to_string(),
            "[[site]] #2 (match \"(\"), field `match`: invalid regex: unclosed group"
        );

        let e = error("[[site]]\nmatch = \"a\"\nprice = \"..nope\"\n");
        assert_eq!((e.entry(), e.field()), (Some(1), Some("price")));
        let text = e.to_string();
        assert!(
            text.contains("invalid CSS selector \"..nope\": ClassNeedsIdent"),
            "{e}"
        );
        assert!(!text.contains("report this"), "{e}");

        for field in ["currency", "availability", "name"] {
            let e = error(&format!("{ok}{field} = \"div[\"\n"));
            assert_eq!((e.entry(), e.field()), (Some(1), Some(field)), "{e}");
        }

        let e = error("[[site]]\nmatch = \"a\"\n");
        assert_eq!(e.field(), Some("price"));
        assert!(e.to_string().contains("missing"), "{e}");

        let e = error(&format!("{ok}prcie = \".x\"\n"));
        assert_eq!(e.field(), Some("prcie"));
        assert!(e.to_string().contains("unknown key"), "{e}");

        let e = error("[[site]]\nmatch = 3\nprice = \".p\"\n");
        assert_eq!(e.field(), Some("match"));
        assert!(
            e.to_string().contains("expected a string, found integer"),
            "{e}"
        );

        let e = error(&format!("{ok}currency_code = \"EURO\"\n"));
        assert_eq!(e.field(), Some("currency_code"));

        let e = error("[[site]\nmatch = ");
        assert!(e.entry().is_none());
        assert!(e.to_string().starts_with("invalid TOML:"), "{e}");

        let e = error("[site]\nmatch = \"a\"\n");
        assert!(e.to_string().contains("array of tables"), "{e}");
        let e = error("sites = []\n");
        assert!(
            e.to_string().contains("unknown top-level key `sites`"),
            "{e}"
        );
    }

    #[test]
    fn extract_llm_makes_selectors_optional() {
        let rules = Rules::from_toml_str(
            "[[site]]\nmatch = \"^https://a/\"\nextract = \"llm\"\n\
             [[site]]\nmatch = \"^https://b/\"\nextract = \"css\"\nprice = \".p\"\n",
        )
        .unwrap();
        assert!(rules.uses_llm());
        assert!(rules.llm_wanted("https://a/x"));
        assert!(!rules.llm_wanted("https://b/x"));
        assert!(!rules.llm_wanted("https://c/x"));
        assert!(
            !Rules::from_toml_str("[[site]]\nmatch = \"a\"\nprice = \".p\"\n")
                .unwrap()
                .uses_llm()
        );

        let e = error("[[site]]\nmatch = \"a\"\nextract = \"gpt\"\n");
        assert_eq!((e.entry(), e.field()), (Some(1), Some("extract")));
        assert_eq!(
            e.to_string(),
            "[[site]] #1 (match \"a\"), field `extract`: unknown extraction \"gpt\" (expected \"css\" or \"llm\")"
        );
        let e = error("[[site]]\nmatch = \"a\"\nextract = \"css\"\n");
        assert_eq!(e.field(), Some("price"));
        let e = error("[[site]]\nmatch = \"a\"\nextract = \"llm\"\nprice = \"[\"\n");
        assert_eq!(e.field(), Some("price"));
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("scraipe-rules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rules.toml");
        std::fs::write(&path, "[[site]]\nmatch = \"a\"\nprice = \"[\"\n").unwrap();
        let e = Rules::load(&path).unwrap_err();
        assert_eq!(e.path(), Some(path.as_path()));
        assert!(
            e.to_string()
                .starts_with(&format!("{}: [[site]] #1", path.display())),
            "{e}"
        );
        let missing = Rules::load(&dir.join("nope.toml")).unwrap_err();
        assert!(missing.to_string().contains("cannot read"), "{missing}");
        std::fs::write(&path, "[[site]]\nmatch = \"a\"\nprice = \".p\"\n").unwrap();
        assert_eq!(Rules::load(&path).unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
