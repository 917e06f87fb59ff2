//! The products: who they are (name, currency, markup, first price) and what they cost and
//! whether they are in stock at a given epoch. Every value is a pure function of the seed, the
//! product's global index and the epoch: nothing is stored per product.
//!
//! # Changes
//!
//! At each epoch `e ≥ 1`, product `p` changes with probability `change_share` (an independent
//! draw from `(seed, p, e)`). A change is a price change (60 %), an availability change (20 %)
//! or both (20 %); a price change moves the price by 3–25 % up or down (never to the same
//! amount), an availability change always moves to a different state. The state at epoch `e`
//! is found by replaying the draws `1..=e`: a few nanoseconds per epoch, so a request costs
//! more the longer a shop with a short period runs (a day of 100 ms periods: a few ms). The
//! command line refuses periods under 100 ms for that reason.

use super::money::{Currency, Money};
use crate::demo::text::Rng;

/// Stock states, named as `scraipe::offer::Availability::as_str` names them.
// The variants mirror schema.org's InStock / OutOfStock / PreOrder.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Stock {
    /// `in_stock`.
    InStock,
    /// `out_of_stock`.
    OutOfStock,
    /// `preorder`.
    Preorder,
}

impl Stock {
    /// `in_stock`, `out_of_stock` or `preorder`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stock::InStock => "in_stock",
            Stock::OutOfStock => "out_of_stock",
            Stock::Preorder => "preorder",
        }
    }

    /// The schema.org URL (`https://schema.org/InStock`...).
    pub(crate) fn schema_url(self, https: bool) -> String {
        let scheme = if https { "https" } else { "http" };
        let name = match self {
            Stock::InStock => "InStock",
            Stock::OutOfStock => "OutOfStock",
            Stock::Preorder => "PreOrder",
        };
        format!("{scheme}://schema.org/{name}")
    }

    /// What a page shows a human.
    pub(crate) fn words(self) -> &'static str {
        match self {
            Stock::InStock => "In stock",
            Stock::OutOfStock => "Out of stock",
            Stock::Preorder => "Pre-order",
        }
    }

    /// The Open Graph / Facebook catalog value (`product:availability`).
    pub(crate) fn meta_value(self) -> &'static str {
        match self {
            Stock::InStock => "in stock",
            Stock::OutOfStock => "out of stock",
            Stock::Preorder => "preorder",
        }
    }
}

/// How a product page carries its offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Markup {
    /// JSON-LD `Product` with one `Offer`.
    JsonLdOffer,
    /// JSON-LD with a `@graph` holding a `WebPage`, the `Product` and a `BreadcrumbList`.
    JsonLdGraph,
    /// JSON-LD `Product` whose `offers` is an `AggregateOffer` (`lowPrice` is the price).
    JsonLdAggregate,
    /// JSON-LD `Product` whose `offers` is an array of `Offer`s (the lowest is the price).
    JsonLdOfferArray,
    /// Microdata with `content` attributes (`<meta itemprop="price" content="1299.00">`).
    MicrodataContent,
    /// Microdata whose price and availability are element text (`1.299,00 €`, `In stock`).
    MicrodataText,
    /// `product:price:amount` / `product:price:currency` / `product:availability` meta tags.
    MetaProduct,
    /// `og:price:amount` / `og:price:currency` / `og:availability` meta tags.
    MetaOg,
    /// Price only in plain elements (`.pp-amount`, `.pp-cur`): needs rule `A` of
    /// `Shop::rules_toml` (EUR and PLN, comma decimals).
    RuleSplit,
    /// Price only in plain elements (`.buybox .now`), always USD: needs rule `B` (a fixed
    /// `currency_code`).
    RuleFixedCurrency,
}

impl Markup {
    /// Every kind, in the order product indices cycle through the structured ones.
    pub const ALL: [Markup; 10] = [
        Markup::JsonLdOffer,
        Markup::JsonLdGraph,
        Markup::JsonLdAggregate,
        Markup::JsonLdOfferArray,
        Markup::MicrodataContent,
        Markup::MicrodataText,
        Markup::MetaProduct,
        Markup::MetaOg,
        Markup::RuleSplit,
        Markup::RuleFixedCurrency,
    ];

    /// Where a correct extractor finds the offer: `json_ld`, `microdata`, `meta` or `rule`
    /// (the `scraipe::offer::OfferSource::as_str` names).
    pub fn source(self) -> &'static str {
        match self {
            Markup::JsonLdOffer
            | Markup::JsonLdGraph
            | Markup::JsonLdAggregate
            | Markup::JsonLdOfferArray => "json_ld",
            Markup::MicrodataContent | Markup::MicrodataText => "microdata",
            Markup::MetaProduct | Markup::MetaOg => "meta",
            Markup::RuleSplit | Markup::RuleFixedCurrency => "rule",
        }
    }

    /// Whether the page can only be read with a rule.
    pub fn needs_rule(self) -> bool {
        self.source() == "rule"
    }
}

/// The markup of product `j` on host `host`: hosts whose number ends in 7 use the split-price
/// template (rule A), hosts ending in 3 the fixed-currency one (rule B) — a site has one
/// template, so its rule matches on the host name; every other product cycles through the eight
/// structured kinds by its global index.
pub(crate) fn markup(host: usize, global: u64) -> Markup {
    match host % 10 {
        7 => Markup::RuleSplit,
        3 => Markup::RuleFixedCurrency,
        _ => Markup::ALL[(global % 8) as usize],
    }
}

/// The fixed facts of a product.
#[derive(Debug, Clone)]
pub(crate) struct Product {
    pub(crate) name: String,
    pub(crate) markup: Markup,
    pub(crate) first_price: Money,
    pub(crate) first_stock: Stock,
    /// Per-product constants for the page text (stable across changes, so only real changes
    /// alter the page).
    pub(crate) page_seed: u64,
}

/// What a product is at one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct State {
    pub(crate) price: Money,
    pub(crate) stock: Stock,
    /// The last epoch at which price or availability changed (0: never).
    pub(crate) changed_at: u64,
}

const ADJECTIVES: &[&str] = &[
    "Quiet", "Bright", "Careful", "Ancient", "Simple", "Famous", "Narrow", "Gentle", "Curious",
    "Distant", "Early", "Silver", "Northern", "Compact", "Sturdy", "Classic",
];
const NOUNS: &[&str] = &[
    "Lamp",
    "Kettle",
    "Backpack",
    "Chair",
    "Headphones",
    "Teapot",
    "Notebook",
    "Umbrella",
    "Bicycle Bell",
    "Desk Clock",
    "Camera Strap",
    "Garden Hose",
    "Coffee Grinder",
    "Wool Scarf",
    "Field Guide",
    "Toolbox",
];
const LINES: &[&str] = &[
    "Harbour", "Mountain", "River", "Forest", "Station", "Village", "Bridge", "Garden",
];

/// Stream salts, so the draws of different purposes never coincide.
const SALT_PRODUCT: u64 = 0x7072_6f64;
const SALT_CHANGE: u64 = 0x6368_616e;

impl Product {
    pub(crate) fn new(seed: u64, host: usize, global: u64) -> Product {
        let mut rng = Rng::new(seed ^ SALT_PRODUCT, global);
        let name = format!(
            "{} {} {} {}",
            rng.pick(ADJECTIVES),
            rng.pick(LINES),
            rng.pick(NOUNS),
            100 + rng.below(900)
        );
        let markup = markup(host, global);
        let currency = match markup {
            Markup::RuleFixedCurrency => Currency::Usd,
            Markup::RuleSplit => [Currency::Eur, Currency::Pln][rng.below(2)],
            _ => match rng.below(100) {
                0..35 => Currency::Eur,
                35..65 => Currency::Usd,
                65..85 => Currency::Pln,
                _ => Currency::Jpy,
            },
        };
        // A quarter of the prices are in the thousands, so grouping separators appear.
        let major = if rng.one_in(4) {
            rng.range(1_000, 4_999)
        } else {
            rng.range(2, 999)
        } as u64;
        let first_price = match currency {
            // Yen prices are about 150 times larger and end in 0.
            Currency::Jpy => Money::new(currency, major * 150 / 10 * 10 + 10),
            _ => Money::new(currency, major * 100 + [0, 50, 99, 95, 49][rng.below(5)]),
        };
        let first_stock = match rng.below(100) {
            0..80 => Stock::InStock,
            80..92 => Stock::OutOfStock,
            _ => Stock::Preorder,
        };
        Product {
            name,
            markup,
            first_price,
            first_stock,
            page_seed: rng.next_u64(),
        }
    }

    /// The state at `epoch`: the first one, changed by each epoch's draw in turn.
    pub(crate) fn state(&self, seed: u64, global: u64, share: f64, epoch: u64) -> State {
        let mut state = State {
            price: self.first_price,
            stock: self.first_stock,
            changed_at: 0,
        };
        if share <= 0.0 {
            return state;
        }
        for e in 1..=epoch {
            let mut rng = Rng::new(seed ^ SALT_CHANGE ^ e.wrapping_mul(0x9E37_79B9), global);
            if rng.unit() >= share {
                continue;
            }
            let kind = rng.below(10);
            if kind < 8 {
                state.price = moved_price(state.price, &mut rng);
            }
            if kind >= 6 {
                state.stock = other_stock(state.stock, &mut rng);
            }
            state.changed_at = e;
        }
        state
    }
}

/// Up or down by 3–25 %, rounded to the currency's step, never equal, never below one step.
fn moved_price(old: Money, rng: &mut Rng) -> Money {
    let step = old.currency.step();
    let percent = rng.range(3, 25) as u64;
    let delta = (old.minor * percent / 100).max(step);
    let up = rng.one_in(2) || old.minor <= delta + step;
    let raw = if up {
        old.minor + delta
    } else {
        old.minor - delta
    };
    let mut minor = raw / step * step;
    if minor == old.minor {
        minor += step;
    }
    Money::new(old.currency, minor.max(step))
}

fn other_stock(old: Stock, rng: &mut Rng) -> Stock {
    match old {
        Stock::InStock if rng.one_in(5) => Stock::Preorder,
        Stock::InStock => Stock::OutOfStock,
        Stock::OutOfStock | Stock::Preorder => Stock::InStock,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_changes_something_and_is_replayable() {
        let mut changes = 0;
        for global in 0..300u64 {
            let product = Product::new(9, global as usize, global);
            let mut before = product.state(9, global, 0.3, 0);
            for epoch in 1..20 {
                let now = product.state(9, global, 0.3, epoch);
                if now.changed_at == epoch {
                    changes += 1;
                    assert!(now.price != before.price || now.stock != before.stock);
                    assert!(now.price.minor > 0);
                } else {
                    assert_eq!((now.price, now.stock), (before.price, before.stock));
                }
                before = now;
            }
        }
        // 300 products × 19 epochs × 0.3 ≈ 1710.
        assert!((1500..1920).contains(&changes), "{changes}");
    }

    #[test]
    fn rule_hosts_and_structured_cycle() {
        assert_eq!(markup(7, 7), Markup::RuleSplit);
        assert_eq!(markup(123, 0), Markup::RuleFixedCurrency);
        assert_eq!(markup(0, 0), Markup::JsonLdOffer);
        assert_eq!(markup(1, 15), Markup::MetaOg);
    }
}
