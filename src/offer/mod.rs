// TEMPORARY: replaced by the monextract branch at merge.
//! A minimal stand-in for the offer extractor (issue 11, part A), implementing its contract
//! for meta tags and a simple JSON-LD Product/Offer only, so the monitor builds and its tests run
//! before the real extractor is merged. Rules are accepted but never match here.

use std::fmt;
use std::sync::Arc;

use regex::Regex;

/// What a product page offers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Offer {
    /// Exact decimal string.
    pub price: Option<String>,
    /// ISO 4217 code.
    pub currency: Option<String>,
    /// Stock state.
    pub availability: Availability,
    /// Product name.
    pub name: Option<String>,
    /// Where the offer came from.
    pub source: OfferSource,
}

/// Stock state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    /// In stock.
    InStock,
    /// Out of stock.
    OutOfStock,
    /// Pre-order.
    Preorder,
    /// Unknown.
    Unknown,
}

impl Availability {
    /// `in_stock`, `out_of_stock`, `preorder` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::InStock => "in_stock",
            Availability::OutOfStock => "out_of_stock",
            Availability::Preorder => "preorder",
            Availability::Unknown => "unknown",
        }
    }

    /// Maps loose text (schema.org URLs, words) to a state.
    pub fn from_str_loose(s: &str) -> Availability {
        let s = s.trim().to_ascii_lowercase();
        let s = s
            .rsplit('/')
            .next()
            .unwrap_or(&s)
            .replace(['_', ' ', '-'], "");
        match s.as_str() {
            "instock" | "available" | "limitedavailability" | "instoreonly" | "onlineonly" => {
                Availability::InStock
            }
            "outofstock" | "soldout" | "discontinued" | "unavailable" => Availability::OutOfStock,
            "preorder" | "presale" | "backorder" => Availability::Preorder,
            _ => Availability::Unknown,
        }
    }
}

/// Where an offer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferSource {
    /// A site rule.
    Rule,
    /// JSON-LD.
    JsonLd,
    /// Microdata.
    Microdata,
    /// Meta tags.
    Meta,
}

impl OfferSource {
    /// `rule`, `json_ld`, `microdata` or `meta`.
    pub fn as_str(self) -> &'static str {
        match self {
            OfferSource::Rule => "rule",
            OfferSource::JsonLd => "json_ld",
            OfferSource::Microdata => "microdata",
            OfferSource::Meta => "meta",
        }
    }
}

/// Site rules (this stand-in parses nothing and matches nothing).
#[derive(Debug, Clone, Default)]
pub struct Rules {
    text: String,
}

impl Rules {
    /// Keeps the text (the stand-in has no rule engine).
    pub fn from_toml_str(s: &str) -> Result<Rules, RulesError> {
        Ok(Rules {
            text: s.to_string(),
        })
    }

    /// Reads a rules file.
    pub fn load(path: &std::path::Path) -> Result<Rules, RulesError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RulesError(format!("cannot read {}: {e}", path.display())))?;
        Rules::from_toml_str(&text)
    }

    /// True without rules.
    pub fn is_empty(&self) -> bool {
        self.text.trim().is_empty()
    }
}

/// A rules file that cannot be used.
#[derive(Debug)]
pub struct RulesError(String);

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RulesError {}

fn meta_content(html: &str, property: &str) -> Option<String> {
    static META: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = META.get_or_init(|| {
        Regex::new(r#"(?i)<meta\s+(?:property|name)="([^"]+)"\s+content="([^"]*)""#)
            .expect("valid regex")
    });
    re.captures_iter(html)
        .find(|c| c[1].eq_ignore_ascii_case(property))
        .map(|c| c[2].trim().to_string())
}

fn json_ld(html: &str) -> Option<Offer> {
    static SCRIPT: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = SCRIPT.get_or_init(|| {
        Regex::new(r#"(?is)<script[^>]*application/ld\+json[^>]*>(.*?)</script>"#)
            .expect("valid regex")
    });
    for cap in re.captures_iter(html) {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&cap[1]) else {
            continue;
        };
        if value.get("@type").and_then(|t| t.as_str()) != Some("Product") {
            continue;
        }
        let offer = value.get("offers")?;
        let price = match offer.get("price")? {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => continue,
        };
        return Some(Offer {
            price: Some(price),
            currency: offer
                .get("priceCurrency")
                .and_then(|c| c.as_str())
                .map(str::to_ascii_uppercase),
            availability: offer
                .get("availability")
                .and_then(|a| a.as_str())
                .map(Availability::from_str_loose)
                .unwrap_or(Availability::Unknown),
            name: value.get("name").and_then(|n| n.as_str()).map(String::from),
            source: OfferSource::JsonLd,
        });
    }
    None
}

/// The first of: a matching rule; JSON-LD; microdata; meta tags. None when nothing found a price.
pub fn extract_offer(html: &str, _url: &str, _rules: &Rules) -> Option<Offer> {
    if let Some(offer) = json_ld(html) {
        return Some(offer);
    }
    let price = meta_content(html, "product:price:amount")?;
    Some(Offer {
        price: Some(price),
        currency: meta_content(html, "product:price:currency").map(|c| c.to_ascii_uppercase()),
        availability: meta_content(html, "product:availability")
            .map(|a| Availability::from_str_loose(&a))
            .unwrap_or(Availability::Unknown),
        name: meta_content(html, "og:title"),
        source: OfferSource::Meta,
    })
}

/// Plain decimal prices only in this stand-in.
pub fn parse_price(text: &str) -> Option<(String, Option<String>)> {
    let t = text.trim();
    t.parse::<f64>().ok().map(|_| (t.to_string(), None))
}

/// An analyzer whose output is the offer as JSON.
pub struct OfferAnalyzer {
    rules: Arc<Rules>,
}

impl OfferAnalyzer {
    /// With these rules.
    pub fn new(rules: Arc<Rules>) -> OfferAnalyzer {
        OfferAnalyzer { rules }
    }
}

impl crate::traits::Analyzer for OfferAnalyzer {
    fn analyze(&self, content: &str) -> crate::results::AnalysisResult {
        match extract_offer(content, "", &self.rules) {
            Some(offer) => match serde_json::to_value(&offer) {
                Ok(serde_json::Value::Object(map)) => crate::results::AnalysisResult::succeed(map),
                _ => crate::results::AnalysisResult::fail("offer not serializable"),
            },
            None => crate::results::AnalysisResult::fail("no offer found"),
        }
    }
}
