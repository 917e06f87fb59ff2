//! The offer schema for `extract = "llm"` rules: what the model is asked for, and how its
//! validated answer becomes an [`Offer`].

use serde_json::{json, Value};

use super::currency::is_iso_code;
use super::price::parse_price;
use super::types::{Availability, Offer, OfferSource};
use crate::results::JsonMap;

/// The instruction sent with each page's visible text.
pub const OFFER_INSTRUCTION: &str = "The text is a product page of an online shop. Report the \
product's current selling price as a plain decimal string with '.' as the decimal separator and \
no grouping or currency sign (e.g. \"1299.00\"), its ISO 4217 currency code in upper case (e.g. \
\"EUR\"; null if the page does not say), its availability (in_stock, out_of_stock, preorder or \
unknown) and the product's name (null if none). Use only what the page says.";

/// The JSON Schema the model's answer must match: `price` a decimal string, `currency` an
/// ISO 4217 code or null, `availability` one of `in_stock`, `out_of_stock`, `preorder`,
/// `unknown`, `name` a string or null. Every field is required and no other is allowed (as
/// OpenAI's strict structured output wants).
///
/// ```
/// let schema = scraipe::offer::offer_schema();
/// assert_eq!(schema["properties"]["availability"]["enum"][0], "in_stock");
/// ```
pub fn offer_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "price": {
                "type": "string",
                "pattern": "^[0-9]{1,12}([.][0-9]{1,4})?$",
                "description": "decimal price, '.' separator, no grouping, e.g. 1299.00"
            },
            "currency": {
                "type": ["string", "null"],
                "pattern": "^[A-Z]{3}$",
                "description": "ISO 4217 code, e.g. EUR"
            },
            "availability": {
                "type": "string",
                "enum": ["in_stock", "out_of_stock", "preorder", "unknown"]
            },
            "name": {"type": ["string", "null"]}
        },
        "required": ["price", "currency", "availability", "name"],
        "additionalProperties": false
    })
}

/// Turns a model's answer, already validated against [`offer_schema`], into an [`Offer`]
/// with [`OfferSource::Llm`]. The price goes through the exact decimal parser (never a
/// float); `fallback_currency` (a rule's `currency_code`) is used when the answer names none.
/// Errors say what is unusable.
///
/// ```
/// use scraipe::offer::{offer_from_llm, OfferSource};
/// let answer = serde_json::json!({"price": "1299.00", "currency": "EUR",
///     "availability": "in_stock", "name": "Kettle"});
/// let offer = offer_from_llm(answer.as_object().unwrap(), None).unwrap();
/// assert_eq!(offer.price.as_deref(), Some("1299.00"));
/// assert_eq!(offer.source, OfferSource::Llm);
/// ```
pub fn offer_from_llm(answer: &JsonMap, fallback_currency: Option<&str>) -> Result<Offer, String> {
    let price_text = answer
        .get("price")
        .and_then(Value::as_str)
        .ok_or("the model's answer has no price")?;
    let (price, _) = parse_price(price_text)
        .filter(|(p, _)| p == price_text.trim())
        .ok_or_else(|| format!("the model's price {price_text:?} is not a decimal number"))?;
    let currency = match answer.get("currency").and_then(Value::as_str) {
        Some(code) => {
            let upper = code.trim().to_ascii_uppercase();
            if !is_iso_code(&upper) {
                return Err(format!(
                    "the model's currency {code:?} is not an ISO 4217 code"
                ));
            }
            Some(upper)
        }
        None => fallback_currency.map(str::to_string),
    };
    let availability = answer
        .get("availability")
        .and_then(Value::as_str)
        .map_or(Availability::Unknown, Availability::from_str_loose);
    let name = answer
        .get("name")
        .and_then(Value::as_str)
        .map(|n| n.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|n| !n.is_empty());
    Ok(Offer {
        price: Some(price),
        currency,
        availability,
        name,
        source: OfferSource::Llm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> JsonMap {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn answers_become_offers_exactly() {
        let o = offer_from_llm(
            &map(
                json!({"price": "0.10", "currency": null, "availability": "preorder",
                        "name": "  Big \n Kettle "}),
            ),
            Some("PLN"),
        )
        .unwrap();
        assert_eq!(o.price.as_deref(), Some("0.10"));
        assert_eq!(o.currency.as_deref(), Some("PLN"));
        assert_eq!(o.availability, Availability::Preorder);
        assert_eq!(o.name.as_deref(), Some("Big Kettle"));
        assert_eq!(o.source.as_str(), "llm");

        let e = offer_from_llm(&map(json!({"price": "1,299"})), None).unwrap_err();
        assert!(e.contains("not a decimal"), "{e}");
        let e = offer_from_llm(&map(json!({"price": "12", "currency": "XYZ"})), None).unwrap_err();
        assert!(e.contains("ISO 4217"), "{e}");
        assert!(offer_from_llm(&map(json!({})), None).is_err());
    }
}
