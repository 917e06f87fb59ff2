//! Offers from `<meta>` tags: Open Graph / Facebook product tags.
//!
//! `product:price:amount` (else `og:price:amount`), `product:price:currency` (else
//! `og:price:currency`), `product:availability` (else `og:availability`), and `og:title` as
//! the name. The key may be in `property` or `name`; keys compare case-insensitively.

use super::dom::{collapse, price_value};
use super::{parse_currency, Availability, Offer, OfferSource};

/// The meta tags the extractor reads, collected during the document scan.
#[derive(Default)]
pub(crate) struct MetaTags {
    price: [Option<String>; 2],
    currency: [Option<String>; 2],
    availability: [Option<String>; 2],
    title: Option<String>,
}

impl MetaTags {
    /// Records one `<meta>` tag; the first tag of each key wins.
    pub(crate) fn add(&mut self, key: &str, content: &str) {
        let slot = match key.to_ascii_lowercase().as_str() {
            "product:price:amount" => &mut self.price[0],
            "og:price:amount" => &mut self.price[1],
            "product:price:currency" => &mut self.currency[0],
            "og:price:currency" => &mut self.currency[1],
            "product:availability" => &mut self.availability[0],
            "og:availability" => &mut self.availability[1],
            "og:title" => &mut self.title,
            _ => return,
        };
        if slot.is_none() {
            *slot = Some(content.to_string());
        }
    }

    pub(crate) fn offer(&self) -> Option<Offer> {
        let (price, text_currency) = self.price.iter().flatten().find_map(|p| price_value(p))?;
        let currency = self
            .currency
            .iter()
            .flatten()
            .find_map(|c| parse_currency(c))
            .or(text_currency);
        let availability = self
            .availability
            .iter()
            .flatten()
            .map(|a| Availability::from_str_loose(a))
            .find(|a| *a != Availability::Unknown)
            .unwrap_or(Availability::Unknown);
        Some(Offer {
            price: Some(price),
            currency,
            availability,
            name: self.title.as_deref().and_then(collapse),
            source: OfferSource::Meta,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_tags_beat_og_tags() {
        let mut m = MetaTags::default();
        m.add("og:price:amount", "20.00");
        m.add("product:price:amount", "19.99");
        m.add("OG:PRICE:CURRENCY", "usd");
        m.add("og:availability", "oos");
        m.add("og:title", " Lamp ");
        let o = m.offer().unwrap();
        assert_eq!(o.price.as_deref(), Some("19.99"));
        assert_eq!(o.currency.as_deref(), Some("USD"));
        assert_eq!(o.availability, Availability::OutOfStock);
        assert_eq!(o.name.as_deref(), Some("Lamp"));
        assert_eq!(o.source, OfferSource::Meta);
        assert!(MetaTags::default().offer().is_none());
    }
}
