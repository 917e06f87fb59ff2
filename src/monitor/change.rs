//! Change detection and the change event: what differs between two offers, and the JSON
//! object users receive (changes file, webhook).

use serde::{Deserialize, Serialize};

/// The fields a change is judged on: (price, currency, availability).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OfferKey {
    /// Exact decimal text.
    pub price: Option<String>,
    /// ISO 4217.
    pub currency: Option<String>,
    /// `in_stock`, ...
    pub availability: Option<String>,
}

/// Whether `new` is a change from the last successful observation `previous` (`None`: there was
/// none, so the first observation is a change).
///
/// ```
/// use scraipe::monitor::change::{is_change, OfferKey};
/// let a = OfferKey { price: Some("10.00".into()), currency: Some("EUR".into()), availability: Some("in_stock".into()) };
/// let mut b = a.clone();
/// assert!(is_change(None, &a));
/// assert!(!is_change(Some(&a), &b));
/// b.availability = Some("out_of_stock".into());
/// assert!(is_change(Some(&a), &b), "availability alone is a change");
/// ```
///
/// Prices are compared as numbers: a site that writes `12.5` one day and `"12.50"` the next has
/// not changed its price.
///
/// ```
/// use scraipe::monitor::change::{is_change, OfferKey};
/// let key = |p: &str| OfferKey { price: Some(p.into()), currency: Some("USD".into()), availability: None };
/// assert!(!is_change(Some(&key("12.5")), &key("12.50")));
/// assert!(!is_change(Some(&key("1234.500")), &key("1234.5")));
/// assert!(!is_change(Some(&key("12.00")), &key("12")));
/// assert!(is_change(Some(&key("12.5")), &key("12.05")));
/// assert!(is_change(Some(&key("100")), &key("10")));
/// ```
pub fn is_change(previous: Option<&OfferKey>, new: &OfferKey) -> bool {
    let Some(previous) = previous else {
        return true;
    };
    previous.currency != new.currency
        || previous.availability != new.availability
        || previous.price.as_deref().map(canonical_price)
            != new.price.as_deref().map(canonical_price)
}

/// A decimal price without the trailing zeros of its fraction (`12.50` → `12.5`, `12.00` →
/// `12`); integers are left as they are. The Redis store's `RECORD` script does the same.
fn canonical_price(price: &str) -> &str {
    if !price.contains('.') {
        return price;
    }
    price.trim_end_matches('0').trim_end_matches('.')
}

/// One change event, as written to `--changes` and POSTed to `--webhook`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// Outbox id: unique and increasing per database (receivers can de-duplicate on it).
    pub id: i64,
    /// The URL.
    pub link: String,
    /// Product name.
    pub name: Option<String>,
    /// New price.
    pub price: Option<String>,
    /// New currency.
    pub currency: Option<String>,
    /// New availability.
    pub availability: Option<String>,
    /// Price at the last successful observation (null for the first).
    pub previous_price: Option<String>,
    /// Currency at the last successful observation.
    pub previous_currency: Option<String>,
    /// Availability at the last successful observation.
    pub previous_availability: Option<String>,
    /// `rule`, `json_ld`, `microdata` or `meta`.
    pub source: Option<String>,
    /// RFC 3339 UTC.
    pub observed_at: String,
}
