//! Offers from JSON-LD: schema.org Product / Offer / AggregateOffer in
//! `<script type="application/ld+json">` blocks.
//!
//! Each block is parsed on its own (a malformed one is skipped), and walked in document order
//! for the first product-like node that yields a price: a node typed Product (ProductGroup,
//! IndividualProduct, ... — `@type` a string or an array, full IRIs allowed) or any node with
//! an `offers` property (Book, Event, ... sell things too), found anywhere, including in
//! `@graph` and `mainEntity`. Its `offers` (an object or an array, Offer or AggregateOffer,
//! nested arrays included) give candidate prices: an Offer's `price` (or its
//! `priceSpecification`'s), an AggregateOffer's `lowPrice` (or the lowest of its own
//! `offers`). The lowest candidate wins, with its currency and availability. A bare Offer or
//! AggregateOffer node (no product around it) counts too, named after its `itemOffered`.
//! A product without a price is not searched further: the products it nests (`isRelatedTo`,
//! `isSimilarTo`) are other products, whose price is not this page's.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::candidate::{lowest, Candidate};
use super::dom::price_value;
use super::price::price_from_json_number;
use super::{parse_currency, Availability, Offer, OfferSource};

/// How deep the walk goes into a document (serde_json already caps nesting at 128).
const MAX_DEPTH: usize = 32;

const PRODUCT_TYPES: &[&str] = &[
    "Product",
    "ProductGroup",
    "ProductModel",
    "IndividualProduct",
    "SomeProducts",
    "Vehicle",
    "Car",
    "Motorcycle",
];

/// The keys whose number values are prices.
const PRICE_KEYS: &[&str] = &["price", "lowPrice", "highPrice"];

/// The first offer in the scripts, in order.
pub(crate) fn from_scripts<'a>(scripts: impl IntoIterator<Item = &'a str>) -> Option<Offer> {
    scripts.into_iter().find_map(|script| {
        let json = quote_price_numbers(strip_wrappers(script));
        let value: Value = serde_json::from_str(&json).ok()?;
        find(&value, 0)
    })
}

/// `"price": 1299.00` → `"price": "1299.00"`: a price written as a JSON number keeps its
/// digits exactly (serde_json would read it as an f64, and `1299.00` would come back as
/// `1299`). One pass over the text that knows strings and escapes; numbers under any other
/// key, or inside arrays and objects, are left alone.
fn quote_price_numbers(json: &str) -> Cow<'_, str> {
    if !json.contains("rice\"") {
        return Cow::Borrowed(json);
    }
    let b = json.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    // The last string token, while nothing but whitespace followed it.
    let mut last_string: Option<(usize, usize)> = None;
    // Right after `"price":` (whitespace aside).
    let mut after_price_key = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let start = i + 1;
                i = start;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                let end = i.min(b.len());
                last_string = Some((start, end));
                after_price_key = false;
                i = end + 1;
            }
            b':' => {
                after_price_key =
                    last_string.is_some_and(|(s, e)| PRICE_KEYS.contains(&&json[s..e]));
                last_string = None;
                i += 1;
            }
            b'-' | b'0'..=b'9' if after_price_key => {
                let start = i;
                while i < b.len() && matches!(b[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    i += 1;
                }
                let out = out.get_or_insert_with(|| String::with_capacity(json.len() + 8));
                out.push_str(&json[copied..start]);
                out.push('"');
                out.push_str(&json[start..i]);
                out.push('"');
                copied = i;
                after_price_key = false;
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                after_price_key = false;
                last_string = None;
                i += 1;
            }
        }
    }
    match out {
        Some(mut out) => {
            out.push_str(&json[copied..]);
            Cow::Owned(out)
        }
        None => Cow::Borrowed(json),
    }
}

/// Some sites wrap the JSON in an HTML comment or a CDATA section.
fn strip_wrappers(s: &str) -> &str {
    let mut s = s.trim();
    for (open, close) in [
        ("<!--", "-->"),
        ("//<![CDATA[", "//]]>"),
        ("<![CDATA[", "]]>"),
    ] {
        if let Some(inner) = s.strip_prefix(open) {
            s = inner.strip_suffix(close).unwrap_or(inner).trim();
        }
    }
    s
}

fn find(v: &Value, depth: usize) -> Option<Offer> {
    if depth > MAX_DEPTH {
        return None;
    }
    match v {
        Value::Array(items) => items.iter().find_map(|x| find(x, depth + 1)),
        Value::Object(o) => {
            if is_type(o, PRODUCT_TYPES) || o.contains_key("offers") {
                // Not searched further when it has no price: what it nests (isRelatedTo,
                // isSimilarTo, isAccessoryOrSparePartFor...) are other products.
                return product(o, depth);
            } else if is_type(o, &["Offer", "AggregateOffer"]) {
                if let Some(c) = offer_node(o, depth) {
                    let name = o
                        .get("itemOffered")
                        .and_then(|i| i.as_object())
                        .and_then(|i| text(i.get("name")?))
                        .or_else(|| text(o.get("name")?));
                    return Some(c.into_offer(name, OfferSource::JsonLd));
                }
            }
            o.iter()
                .filter(|(k, _)| k.as_str() != "@context")
                .find_map(|(_, x)| find(x, depth + 1))
        }
        _ => None,
    }
}

/// `@type` (a string or an array of strings) names one of `types`; IRIs and CURIEs
/// (`http://schema.org/Product`, `schema:Product`) count by their last segment.
fn is_type(o: &Map<String, Value>, types: &[&str]) -> bool {
    let matches = |t: &str| {
        let term = t.rsplit(['/', ':', '#']).next().unwrap_or(t);
        types.contains(&term)
    };
    match o.get("@type") {
        Some(Value::String(t)) => matches(t),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).any(matches),
        _ => false,
    }
}

fn product(o: &Map<String, Value>, depth: usize) -> Option<Offer> {
    let name = o.get("name").and_then(text);
    let from_offers = o.get("offers").and_then(|v| offers(v, depth + 1));
    // A ProductGroup's variants carry the offers; take the cheapest variant.
    let best = from_offers.or_else(|| {
        let variants = o.get("hasVariant")?;
        let list: Vec<&Value> = match variants {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        lowest(list.into_iter().filter_map(|v| {
            let v = v.as_object()?;
            offers(v.get("offers")?, depth + 2)
        }))
    });
    // Non-standard but common: the price right on the product.
    let best = best.or_else(|| offer_node(o, depth));
    best.map(|c| c.into_offer(name, OfferSource::JsonLd))
}

/// The lowest-priced candidate of an `offers` value (an object or a possibly nested array).
fn offers(v: &Value, depth: usize) -> Option<Candidate> {
    if depth > MAX_DEPTH {
        return None;
    }
    match v {
        Value::Array(items) => lowest(items.iter().filter_map(|x| offers(x, depth + 1))),
        Value::Object(o) => offer_node(o, depth),
        _ => None,
    }
}

/// One Offer or AggregateOffer object.
fn offer_node(o: &Map<String, Value>, depth: usize) -> Option<Candidate> {
    let availability = o
        .get("availability")
        .and_then(text)
        .map_or(Availability::Unknown, |s| Availability::from_str_loose(&s));
    let currency = o
        .get("priceCurrency")
        .and_then(text)
        .and_then(|c| parse_currency(&c));

    let direct = o
        .get("lowPrice")
        .and_then(price)
        .or_else(|| o.get("price").and_then(price))
        .or_else(|| {
            // priceSpecification: an object or an array of them.
            let spec = o.get("priceSpecification")?;
            let specs: Vec<&Value> = match spec {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            specs.into_iter().find_map(|s| {
                let s = s.as_object()?;
                let (p, cur) = price(s.get("price")?)?;
                let cur = s
                    .get("priceCurrency")
                    .and_then(text)
                    .and_then(|c| parse_currency(&c))
                    .or(cur);
                Some((p, cur))
            })
        });
    match direct {
        Some((price, text_currency)) => Some(Candidate {
            price,
            currency: currency.or(text_currency),
            availability,
        }),
        // An AggregateOffer without lowPrice: the lowest of its own offers.
        None => {
            let mut nested = offers(o.get("offers")?, depth + 1)?;
            if nested.currency.is_none() {
                nested.currency = currency;
            }
            if nested.availability == Availability::Unknown {
                nested.availability = availability;
            }
            Some(nested)
        }
    }
}

/// A price value: a JSON number, a string (machine form first, then locale-aware), or the
/// first of an array / a `{"@value": ...}` object.
fn price(v: &Value) -> Option<(String, Option<String>)> {
    match v {
        Value::Number(n) => price_from_json_number(n).map(|p| (p, None)),
        Value::String(s) => price_value(s),
        Value::Array(a) => a.iter().find_map(price),
        Value::Object(o) => o.get("@value").and_then(price),
        _ => None,
    }
}

/// A text value: a string, the first string of an array, or `{"@value": ...}`; whitespace
/// collapsed.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => super::dom::collapse(s),
        Value::Array(a) => a.iter().find_map(text),
        Value::Object(o) => o.get("@value").or_else(|| o.get("@id")).and_then(text),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(json: &str) -> Option<Offer> {
        from_scripts([json])
    }

    #[test]
    fn product_with_one_offer() {
        let o = one(
            r#"{"@context":"https://schema.org","@type":"Product","name":" Widget  X ",
            "offers":{"@type":"Offer","price":"1299.00","priceCurrency":"eur",
            "availability":"https://schema.org/InStock"}}"#,
        )
        .unwrap();
        assert_eq!(o.price.as_deref(), Some("1299.00"));
        assert_eq!(o.currency.as_deref(), Some("EUR"));
        assert_eq!(o.availability, Availability::InStock);
        assert_eq!(o.name.as_deref(), Some("Widget X"));
        assert_eq!(o.source, OfferSource::JsonLd);
    }

    #[test]
    fn lowest_of_nested_offer_arrays() {
        let o = one(r#"{"@type":["Thing","Product"],"name":"W","offers":[
            {"@type":"Offer","price":20,"priceCurrency":"USD","availability":"InStock"},
            [{"@type":"Offer","price":"9.50","priceCurrency":"USD","availability":"OutOfStock"},
             {"@type":"Offer","price":12.25,"priceCurrency":"USD"}]]}"#)
        .unwrap();
        assert_eq!(o.price.as_deref(), Some("9.50"));
        assert_eq!(o.availability, Availability::OutOfStock);
    }

    #[test]
    fn aggregate_offer_low_price_and_nested() {
        let o = one(
            r#"{"@type":"Product","name":"A","offers":{"@type":"AggregateOffer",
            "lowPrice":"5.00","highPrice":"9.00","priceCurrency":"GBP"}}"#,
        )
        .unwrap();
        assert_eq!(
            (o.price.as_deref(), o.currency.as_deref()),
            (Some("5.00"), Some("GBP"))
        );
        let o = one(
            r#"{"@type":"Product","name":"A","offers":{"@type":"AggregateOffer",
            "priceCurrency":"PLN","offers":[{"price":"7"},{"price":"6.5"}]}}"#,
        )
        .unwrap();
        assert_eq!(
            (o.price.as_deref(), o.currency.as_deref()),
            (Some("6.5"), Some("PLN"))
        );
    }

    #[test]
    fn number_prices_keep_their_digits() {
        let o = one(r#"{"@type":"Product","offers":{"price": 1299.00,"priceCurrency":"EUR"}}"#);
        assert_eq!(o.unwrap().price.as_deref(), Some("1299.00"));
        let o = one(
            r#"{"@type":"Product","offers":{"@type":"AggregateOffer","lowPrice":5.50,
            "highPrice":9,"offerCount":3}}"#,
        );
        assert_eq!(o.unwrap().price.as_deref(), Some("5.50"));
        assert!(one(r#"{"@type":"Product","offers":{"price":-5}}"#).is_none());
        // Only values of price keys change; strings, escapes and other numbers stay.
        let json = r#"{"name":"a \"price\": 1","price" : 12.50,"n":[1.0],"x":{"price":"3"}}"#;
        assert_eq!(
            quote_price_numbers(json),
            r#"{"name":"a \"price\": 1","price" : "12.50","n":[1.0],"x":{"price":"3"}}"#
        );
        assert!(matches!(
            quote_price_numbers(r#"{"a":1}"#),
            Cow::Borrowed(_)
        ));
        assert_eq!(quote_price_numbers(r#"{"price":"#), r#"{"price":"#);
        assert_eq!(quote_price_numbers(r#""price"#), r#""price"#);
    }

    #[test]
    fn graph_and_full_iris() {
        let o = one(r#"{"@context":"https://schema.org","@graph":[
            {"@type":"WebSite","name":"Shop"},
            {"@type":"BreadcrumbList","itemListElement":[]},
            {"@type":"http://schema.org/Product","name":"G",
             "offers":{"@type":"schema:Offer","price":"3","priceCurrency":"JPY"}}]}"#)
        .unwrap();
        assert_eq!(
            (o.price.as_deref(), o.name.as_deref()),
            (Some("3"), Some("G"))
        );
    }

    #[test]
    fn bare_offer_spec_and_malformed_blocks() {
        let bare = r#"{"@type":"Offer","itemOffered":{"@type":"Thing","name":"B"},
            "priceSpecification":{"price":"1.299,00 €"}}"#;
        let o = from_scripts(["{not json", "<!-- {\"@type\":\"WebPage\"} -->", bare]).unwrap();
        assert_eq!(o.price.as_deref(), Some("1299.00"));
        assert_eq!(o.currency.as_deref(), Some("EUR"));
        assert_eq!(o.name.as_deref(), Some("B"));
        assert!(
            one(r#"{"@type":"Product","name":"no price","offers":{"@type":"Offer"}}"#).is_none()
        );
        assert!(one("[]").is_none());
        assert!(one("").is_none());
    }

    #[test]
    fn related_products_of_a_priceless_product_are_not_its_offer() {
        let o = one(
            r#"[{"@type":"Product","name":"Main","isSimilarTo":[{"@type":"Product",
            "name":"Other","offers":{"price":"5"}}]},
            {"@type":"Product","name":"Second","offers":{"price":"7"}}]"#,
        )
        .unwrap();
        assert_eq!(
            (o.price.as_deref(), o.name.as_deref()),
            (Some("7"), Some("Second"))
        );
    }

    #[test]
    fn wrapped_and_product_group_variants() {
        let o = one(r#"<!--{"@type":"ProductGroup","name":"PG","hasVariant":[
            {"@type":"Product","offers":{"price":"30","priceCurrency":"EUR"}},
            {"@type":"Product","offers":{"price":"25","priceCurrency":"EUR"}}]}-->"#)
        .unwrap();
        assert_eq!(
            (o.price.as_deref(), o.name.as_deref()),
            (Some("25"), Some("PG"))
        );
    }
}
