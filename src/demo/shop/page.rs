//! The HTML of a product page in each [`Markup`], and of a host's index page.
//!
//! A page is a pure function of the product and its state: no dates, no counters, so its
//! ETag (a hash of these bytes) changes exactly when the price or availability does.

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::catalog::{Markup, Product, State};
use super::money::Money;
use crate::demo::text::{Rng, WORDS};

/// Where product `j` of a host lives.
pub(crate) fn product_path(j: usize) -> String {
    format!("/product/{j}")
}

/// The whole page of a product at a state.
pub(crate) fn product_page(host: usize, j: usize, product: &Product, state: &State) -> Vec<u8> {
    let name = &product.name;
    let price = state.price;
    let currency = price.currency.code();
    let mut rng = Rng::new(product.page_seed, 0);
    let https = rng.one_in(2);
    let mut head = String::new();
    let mut offer = String::new();
    match product.markup {
        Markup::JsonLdOffer => {
            let data = json!({
                "@context": "https://schema.org",
                "@type": "Product",
                "name": name,
                "sku": format!("S-{host}-{j}"),
                "offers": offer_json(price, state, https),
            });
            head.push_str(&ld_script(&data));
            shown_price(&mut offer, price, state);
        }
        Markup::JsonLdGraph => {
            let data = json!({
                "@context": "https://schema.org",
                "@graph": [
                    {"@type": "WebPage", "@id": product_path(j), "name": name},
                    {"@type": "BreadcrumbList", "itemListElement": [
                        {"@type": "ListItem", "position": 1, "name": "Catalogue", "item": "/"},
                        {"@type": "ListItem", "position": 2, "name": name, "item": product_path(j)}
                    ]},
                    {"@type": "Product", "name": name, "sku": format!("S-{host}-{j}"),
                     "offers": offer_json(price, state, https)},
                ],
            });
            head.push_str(&ld_script(&json!({
                "@context": "https://schema.org",
                "@type": "Organization",
                "name": format!("shop-{host}"),
            })));
            head.push_str(&ld_script(&data));
            shown_price(&mut offer, price, state);
        }
        Markup::JsonLdAggregate => {
            let high = higher(price, 10 + rng.below(30) as u64);
            let data = json!({
                "@context": "https://schema.org",
                "@type": "Product",
                "name": name,
                "offers": {
                    "@type": "AggregateOffer",
                    "lowPrice": price.decimal(),
                    "highPrice": high.decimal(),
                    "offerCount": 2 + rng.below(5),
                    "priceCurrency": currency,
                    "availability": state.stock.schema_url(https),
                },
            });
            head.push_str(&ld_script(&data));
            let _ = write!(
                offer,
                "<p class=\"price\">from {} to {}</p>\n<p class=\"stock\">{}</p>\n",
                price.display(),
                high.display(),
                state.stock.words()
            );
        }
        Markup::JsonLdOfferArray => {
            // The lowest offer is not the first one: an extractor must compare.
            let offers: Vec<Value> = [higher(price, 7), price, higher(price, 19)]
                .iter()
                .enumerate()
                .map(|(seller, p)| {
                    let mut o = offer_json(*p, state, https);
                    o["seller"] =
                        json!({"@type": "Organization", "name": format!("Seller {seller}")});
                    o
                })
                .collect();
            let data = json!({
                "@context": "https://schema.org",
                "@type": "Product",
                "name": name,
                "offers": offers,
            });
            head.push_str(&ld_script(&data));
            let _ = write!(
                offer,
                "<p class=\"price\">3 offers from {}</p>\n<p class=\"stock\">{}</p>\n",
                price.display(),
                state.stock.words()
            );
        }
        Markup::MicrodataContent => {
            let _ = write!(
                offer,
                "<div itemprop=\"offers\" itemscope itemtype=\"https://schema.org/Offer\">\n\
                 <meta itemprop=\"priceCurrency\" content=\"{currency}\">\n\
                 <p class=\"price\"><span itemprop=\"price\" content=\"{}\">{}</span></p>\n\
                 <meta itemprop=\"availability\" content=\"{}\">\n\
                 <p class=\"stock\">{}</p>\n</div>\n",
                price.decimal(),
                price.display(),
                state.stock.schema_url(https),
                state.stock.words()
            );
        }
        Markup::MicrodataText => {
            let _ = write!(
                offer,
                "<div itemprop=\"offers\" itemscope itemtype=\"http://schema.org/Offer\">\n\
                 <p class=\"price\">Price: <span itemprop=\"price\">{}</span> \
                 (<span itemprop=\"priceCurrency\">{currency}</span>)</p>\n\
                 <p>Availability: <span itemprop=\"availability\">{}</span></p>\n</div>\n",
                price.display(),
                state.stock.words()
            );
        }
        Markup::MetaProduct | Markup::MetaOg => {
            let prefix = if product.markup == Markup::MetaOg {
                "og"
            } else {
                "product"
            };
            let _ = write!(
                head,
                "<meta property=\"og:type\" content=\"product\">\n\
                 <meta property=\"og:title\" content=\"{name}\">\n\
                 <meta property=\"{prefix}:price:amount\" content=\"{}\">\n\
                 <meta property=\"{prefix}:price:currency\" content=\"{currency}\">\n\
                 <meta property=\"{prefix}:availability\" content=\"{}\">\n",
                price.decimal(),
                state.stock.meta_value()
            );
            shown_price(&mut offer, price, state);
        }
        Markup::RuleSplit => {
            let _ = write!(
                offer,
                "<div class=\"pp\"><span class=\"pp-amount\">{}</span> \
                 <span class=\"pp-cur\">{}</span></div>\n<p class=\"pp-stock\">{}</p>\n",
                price.local_number(),
                price.currency.symbol(),
                state.stock.words()
            );
        }
        Markup::RuleFixedCurrency => {
            let _ = writeln!(
                offer,
                "<div class=\"buybox\"><span class=\"was\">{}</span> \
                 <span class=\"now\">{}</span> <span class=\"avail\">{}</span></div>",
                higher(price, 20).local_number(),
                price.local_number(),
                state.stock.words()
            );
        }
    }
    let microdata = matches!(
        product.markup,
        Markup::MicrodataContent | Markup::MicrodataText
    );
    let mut page = String::with_capacity(4096);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{name}</title>\n{head}</head>\n<body>\n\
         <header><a href=\"/\">shop-{host}</a> &rsaquo; <a href=\"/\">Catalogue</a></header>\n"
    );
    if microdata {
        let _ = write!(
            page,
            "<main itemscope itemtype=\"https://schema.org/Product\">\n\
             <h1 itemprop=\"name\">{name}</h1>\n"
        );
    } else {
        let _ = writeln!(page, "<main>\n<h1>{name}</h1>");
    }
    page.push_str(&offer);
    // A second amount on every page, so "the first number on the page" is not the price.
    let shipping = Money::new(price.currency, shipping_minor(price));
    let _ = writeln!(
        page,
        "<p class=\"shipping\">Shipping: {}</p>",
        shipping.display()
    );
    page.push_str("<section class=\"description\">\n");
    for _ in 0..3 {
        page.push_str("<p>");
        page.push_str(&sentences(&mut rng, 4));
        page.push_str("</p>\n");
    }
    page.push_str("</section>\n</main>\n<footer><p>Prices include VAT. A demo shop: nothing is for sale.</p></footer>\n</body></html>\n");
    page.into_bytes()
}

/// A host's front page: links to its first products.
pub(crate) fn index_page(host: usize, products: usize) -> Vec<u8> {
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>shop-{host}</title></head>\n<body><h1>shop-{host}</h1>\n<ul>\n"
    );
    for j in 0..products.min(1000) {
        let _ = writeln!(page, "<li><a href=\"{0}\">{0}</a></li>", product_path(j));
    }
    page.push_str("</ul></body></html>\n");
    page.into_bytes()
}

fn offer_json(price: Money, state: &State, https: bool) -> Value {
    json!({
        "@type": "Offer",
        "price": price.decimal(),
        "priceCurrency": price.currency.code(),
        "availability": state.stock.schema_url(https),
    })
}

fn ld_script(data: &Value) -> String {
    format!("<script type=\"application/ld+json\">{data}</script>\n")
}

fn shown_price(out: &mut String, price: Money, state: &State) {
    let _ = write!(
        out,
        "<p class=\"price\">{}</p>\n<p class=\"stock\">{}</p>\n",
        price.display(),
        state.stock.words()
    );
}

/// `percent` % more, in whole steps of the currency.
fn higher(price: Money, percent: u64) -> Money {
    let step = price.currency.step();
    let more = (price.minor * percent / 100).max(step) / step * step;
    Money::new(price.currency, price.minor + more.max(step))
}

/// Shipping cost: fixed per currency, so it does not move with the price.
fn shipping_minor(price: Money) -> u64 {
    match price.currency.decimals() {
        0 => 800,
        _ => 499,
    }
}

fn sentences(rng: &mut Rng, n: usize) -> String {
    let mut out = String::new();
    for s in 0..n {
        if s > 0 {
            out.push(' ');
        }
        let words = rng.range(6, 14);
        for w in 0..words {
            let word = *rng.pick(WORDS);
            if w == 0 {
                let mut chars = word.chars();
                if let Some(first) = chars.next() {
                    out.extend(first.to_uppercase());
                    out.push_str(chars.as_str());
                }
            } else {
                out.push(' ');
                out.push_str(word);
            }
        }
        out.push('.');
    }
    out
}
