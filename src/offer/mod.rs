//! Offer extraction for the price monitor: price, currency, availability and name from a
//! product page.
//!
//! [`extract_offer`] parses the page once and takes the first of:
//!
//! 1. a [site rule](Rules) whose `match` regex matches the URL (CSS selectors from a TOML
//!    file, for pages without structured markup);
//! 2. JSON-LD: schema.org Product / Offer / AggregateOffer in
//!    `<script type="application/ld+json">` (with `@graph`, offer arrays — the lowest price —
//!    and `lowPrice`);
//! 3. microdata: `itemprop="price"`, `priceCurrency`, `availability`, `name`;
//! 4. meta tags: `product:price:amount` / `og:price:amount`, their `:currency`,
//!    `product:availability` / `og:availability`;
//!
//! that yields a price. Prices are exact decimal strings, never floats; price text in any
//! common locale format goes through [`parse_price`]; currencies become ISO 4217 codes
//! ([`parse_currency`]); stock status becomes an [`Availability`].
//! [`OfferAnalyzer`] wraps it all as a Scraipe [`Analyzer`](crate::Analyzer).
//!
//! ```
//! use scraipe::offer::{extract_offer, parse_price, Rules};
//!
//! let page = r#"<div itemscope itemtype="https://schema.org/Product">
//!   <h1 itemprop="name">Kettle</h1>
//!   <div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
//!     <span itemprop="price">1.299,00 €</span>
//!     <link itemprop="availability" href="https://schema.org/InStock">
//!   </div></div>"#;
//! let offer = extract_offer(page, "https://shop.example/kettle", &Rules::default()).unwrap();
//! assert_eq!(offer.price.as_deref(), Some("1299.00"));
//! assert_eq!(offer.currency.as_deref(), Some("EUR"));
//! assert_eq!(offer.availability.as_str(), "in_stock");
//! assert_eq!(offer.source.as_str(), "microdata");
//!
//! assert_eq!(parse_price("12,50 zł"), Some(("12.50".into(), Some("PLN".into()))));
//! ```

mod analyzer;
mod candidate;
mod currency;
mod dom;
mod extract;
mod host_index;
mod jsonld;
mod llm;
mod meta;
mod microdata;
mod price;
mod rules;
mod shallow;
mod types;

pub use analyzer::{OfferAnalyzer, NO_OFFER};
pub use currency::parse_currency;
pub use extract::extract_offer;
pub use llm::{offer_from_llm, offer_schema, OFFER_INSTRUCTION};
pub use price::parse_price;
pub use rules::{Rules, RulesError};
pub use types::{Availability, Offer, OfferSource};
