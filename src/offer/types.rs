//! [`Offer`], [`Availability`] and [`OfferSource`]: what the extractor finds.

use serde::{Deserialize, Serialize};

/// A product offer found on a page: what a price monitor records.
///
/// Serialised (for [`OfferAnalyzer`](super::OfferAnalyzer) output, change events, ...) as
/// `{"price": "1299.00", "currency": "EUR", "availability": "in_stock", "name": "...",
/// "source": "json_ld"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// Exact decimal string, `.` decimal separator, no grouping: `"1299.00"`, `"12"`.
    pub price: Option<String>,
    /// ISO 4217 code, upper case: `"EUR"`, `"USD"`, `"PLN"`, `"JPY"`.
    pub currency: Option<String>,
    /// Whether the product can be bought.
    pub availability: Availability,
    /// The product's name, whitespace collapsed.
    pub name: Option<String>,
    /// Which kind of markup the offer came from.
    pub source: OfferSource,
}

/// Stock status, reduced to what a price monitor acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    /// Can be bought now (schema.org InStock, LimitedAvailability, OnlineOnly, InStoreOnly,
    /// MadeToOrder).
    InStock,
    /// Cannot be bought (OutOfStock, SoldOut, Discontinued).
    OutOfStock,
    /// Can be ordered, ships later (PreOrder, PreSale, BackOrder).
    Preorder,
    /// Not stated, or not understood.
    Unknown,
}

/// Phrases (lower case, only letters and digits kept) that mean out of stock. Checked before
/// the in-stock ones, which some of them contain ("not available" ⊃ "available").
const OUT_OF_STOCK: &[&str] = &[
    "outofstock",
    "soldout",
    "discontinued",
    "notinstock",
    "unavailable",
    "notavailable",
    "nolongeravailable",
    "currentlynotavailable",
    "ausverkauft",
    "nichtverfügbar",
    "nichtlieferbar",
    "nichtvorrätig",
    "épuisé",
    "rupturedestock",
    "indisponible",
    "nondisponible",
    "agotado",
    "esaurito",
    "niedostępny",
    "brakwmagazynie",
    "slutsåld",
    "uitverkocht",
];

/// Phrases that mean "orderable, ships later".
const PREORDER: &[&str] = &[
    "preorder",
    "presale",
    "backorder",
    "vorbestell",
    "précommande",
    "precommande",
    "przedsprzedaż",
];

/// Phrases that mean in stock.
const IN_STOCK: &[&str] = &[
    "instock",
    "available",
    "limitedavailability",
    "onlineonly",
    "instoreonly",
    "madetoorder",
    "auflager",
    "lieferbar",
    "verfügbar",
    "vorrätig",
    "enstock",
    "disponible",
    "disponibile",
    "dostępny",
    "wmagazynie",
    "ilager",
    "opvoorraad",
];

impl Availability {
    /// `"in_stock"`, `"out_of_stock"`, `"preorder"` or `"unknown"` (the serde names).
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::InStock => "in_stock",
            Availability::OutOfStock => "out_of_stock",
            Availability::Preorder => "preorder",
            Availability::Unknown => "unknown",
        }
    }

    /// Reads availability from whatever a page says: our own names (`in_stock`), schema.org
    /// values (`http://schema.org/InStock`, `https://schema.org/SoldOut`, `schema:PreOrder`,
    /// `BackOrder`, ...), Open Graph values (`instock`, `oos`, `pending`) and common phrases
    /// in a few languages ("Only 3 left in stock", "Sold out", "Ausverkauft"). Matching ignores
    /// case, spaces and punctuation; negative phrases win over positive ones they contain
    /// ("not available"). Anything else is [`Availability::Unknown`].
    ///
    /// ```
    /// use scraipe::offer::Availability;
    /// assert_eq!(Availability::from_str_loose("https://schema.org/InStock"), Availability::InStock);
    /// assert_eq!(Availability::from_str_loose("Sold out!"), Availability::OutOfStock);
    /// assert_eq!(Availability::from_str_loose("BackOrder"), Availability::Preorder);
    /// assert_eq!(Availability::from_str_loose("ask us"), Availability::Unknown);
    /// ```
    pub fn from_str_loose(s: &str) -> Availability {
        let s = s.trim();
        // schema.org URLs and CURIEs: keep the term.
        let term = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"))
            .and_then(|rest| rest.strip_prefix("schema.org/"))
            .or_else(|| s.strip_prefix("schema:"))
            .unwrap_or(s);
        let key: String = term
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        match key.as_str() {
            "" | "unknown" => return Availability::Unknown,
            // Open Graph / Facebook catalogue short forms.
            "oos" => return Availability::OutOfStock,
            "pending" => return Availability::Preorder,
            "yes" | "true" => return Availability::InStock,
            "no" | "false" => return Availability::OutOfStock,
            _ => {}
        }
        let has = |list: &[&str]| list.iter().any(|p| key.contains(p));
        if has(PREORDER) {
            Availability::Preorder
        } else if has(OUT_OF_STOCK) {
            Availability::OutOfStock
        } else if has(IN_STOCK) {
            Availability::InStock
        } else {
            Availability::Unknown
        }
    }
}

/// Where an [`Offer`] came from, in the order the extractor tries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferSource {
    /// A `[[site]]` entry of the rules file.
    Rule,
    /// A `<script type="application/ld+json">` block.
    JsonLd,
    /// `itemprop` attributes.
    Microdata,
    /// `<meta property="product:price:amount">` and friends.
    Meta,
    /// The monitor's LLM analyzer, for an `extract = "llm"` rule.
    Llm,
}

impl OfferSource {
    /// `"rule"`, `"json_ld"`, `"microdata"`, `"meta"` or `"llm"` (the serde names).
    pub fn as_str(self) -> &'static str {
        match self {
            OfferSource::Rule => "rule",
            OfferSource::JsonLd => "json_ld",
            OfferSource::Microdata => "microdata",
            OfferSource::Meta => "meta",
            OfferSource::Llm => "llm",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Availability::*;

    #[test]
    fn availability_from_schema_org_and_words() {
        for (s, want) in [
            ("in_stock", InStock),
            ("out_of_stock", OutOfStock),
            ("preorder", Preorder),
            ("unknown", Unknown),
            ("http://schema.org/InStock", InStock),
            ("https://schema.org/OutOfStock", OutOfStock),
            ("https://schema.org/SoldOut", OutOfStock),
            ("https://schema.org/Discontinued", OutOfStock),
            ("http://schema.org/PreOrder", Preorder),
            ("https://schema.org/PreSale", Preorder),
            ("https://schema.org/BackOrder", Preorder),
            ("https://schema.org/LimitedAvailability", InStock),
            ("https://schema.org/OnlineOnly", InStock),
            ("schema:InStock", InStock),
            ("InStock", InStock),
            ("instock", InStock),
            ("oos", OutOfStock),
            ("In stock", InStock),
            ("Only 3 left in stock!", InStock),
            ("Currently out of stock", OutOfStock),
            ("Not available", OutOfStock),
            ("Available", InStock),
            ("Auf Lager", InStock),
            ("Ausverkauft", OutOfStock),
            ("Pre-order now", Preorder),
            ("", Unknown),
            ("   ", Unknown),
            ("call us", Unknown),
        ] {
            assert_eq!(Availability::from_str_loose(s), want, "{s:?}");
        }
    }

    #[test]
    fn names_match_serde() {
        for a in [InStock, OutOfStock, Preorder, Unknown] {
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
            assert_eq!(Availability::from_str_loose(a.as_str()), a);
        }
        for s in [
            OfferSource::Rule,
            OfferSource::JsonLd,
            OfferSource::Microdata,
            OfferSource::Meta,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
