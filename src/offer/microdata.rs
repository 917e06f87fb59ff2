//! Offers from HTML microdata (`itemscope` / `itemtype` / `itemprop`).
//!
//! One walk over the DOM builds the items as the microdata model defines them: an element
//! with `itemscope` starts an item; an `itemprop` belongs to the nearest enclosing item (an
//! element with both `itemprop` and `itemscope` is a property of the outer item whose value
//! is the inner one). `itemref` is not followed. A property's value is its `content`
//! attribute when present (common on `<span itemprop="price" content="12.99">`), else what
//! the element type says (`href` of `a`/`link`, `src` of `img`, `value` of `data`/`meter`,
//! `datetime` of `time`), else its text.
//!
//! The offer comes from the first Product item (in document order, not inside another
//! product: those are related products) whose `offers` items
//! (Offer, or AggregateOffer's `lowPrice`) or own `price` give a price — the lowest of its
//! offers; else from the first Offer/AggregateOffer item with a price; else from any item
//! (or `itemprop` outside any item) with a price.

use ego_tree::iter::Edge;
use ego_tree::NodeId;
use scraper::{ElementRef, Html, Node};

use super::candidate::{lowest, Candidate};
use super::dom::{attr, collapse, price_value, text};
use super::{parse_currency, Availability, Offer, OfferSource};

/// The item for `itemprop`s outside any `itemscope`.
const ROOT: usize = 0;

struct Item<'a> {
    /// The last segment of the first `itemtype` URL (`Product`, `Offer`), or "".
    kind: &'a str,
    /// `(name, element, item it holds)`, in document order.
    props: Vec<(&'a str, ElementRef<'a>, Option<usize>)>,
    /// The item whose property it is, if any.
    parent: Option<usize>,
}

pub(crate) fn extract(doc: &Html) -> Option<Offer> {
    let items = collect(doc);
    let kind_is = |i: &Item<'_>, kinds: &[&str]| kinds.contains(&i.kind);
    let products = [
        "Product",
        "ProductGroup",
        "IndividualProduct",
        "ProductModel",
        "SomeProducts",
    ];
    let offer_kinds = ["Offer", "AggregateOffer"];

    // Products inside a product (isRelatedTo, isSimilarTo...) are other products.
    let inside_product = |item: &Item<'_>| {
        let mut up = item.parent;
        while let Some(p) = up {
            if kind_is(&items[p], &products) {
                return true;
            }
            up = items[p].parent;
        }
        false
    };
    let from_products = items
        .iter()
        .filter(|i| kind_is(i, &products) && !inside_product(i))
        .find_map(|item| {
            let offers = item
                .props
                .iter()
                .filter(|(n, _, _)| *n == "offers")
                .filter_map(|(_, _, held)| candidate(&items[(*held)?]));
            lowest(offers)
                .or_else(|| candidate(item))
                .map(|c| c.into_offer(name_of(item), OfferSource::Microdata))
        });
    from_products
        .or_else(|| {
            items
                .iter()
                .filter(|i| kind_is(i, &offer_kinds) && i.parent.is_none())
                .find_map(|item| {
                    let name = item
                        .props
                        .iter()
                        .find(|(n, _, _)| *n == "itemOffered")
                        .and_then(|(_, _, held)| name_of(&items[(*held)?]))
                        .or_else(|| name_of(item));
                    candidate(item).map(|c| c.into_offer(name, OfferSource::Microdata))
                })
        })
        .or_else(|| {
            // Loose markup: any item, or the props outside any item, with a price.
            let mut order: Vec<usize> = (1..items.len()).collect();
            order.push(ROOT);
            order
                .into_iter()
                .map(|i| &items[i])
                .filter(|item| !inside_product(item))
                .find_map(|item| {
                    candidate(item).map(|c| c.into_offer(name_of(item), OfferSource::Microdata))
                })
        })
}

fn collect(doc: &Html) -> Vec<Item<'_>> {
    let mut items = vec![Item {
        kind: "",
        props: Vec::new(),
        parent: None,
    }];
    // The open items: (element that opened it, item index).
    let mut scopes: Vec<(NodeId, usize)> = Vec::new();
    for edge in doc.tree.root().traverse() {
        match edge {
            Edge::Open(node) => {
                let Node::Element(el) = node.value() else {
                    continue;
                };
                let prop = attr(el, "itemprop");
                let scope = attr(el, "itemscope").is_some();
                if prop.is_none() && !scope {
                    continue;
                }
                let Some(element) = ElementRef::wrap(node) else {
                    continue;
                };
                let owner = scopes.last().map_or(ROOT, |&(_, i)| i);
                let held = scope.then(|| {
                    let kind = attr(el, "itemtype")
                        .and_then(|t| t.split_whitespace().next())
                        .map_or("", |t| {
                            t.trim_end_matches('/')
                                .rsplit(['/', '#'])
                                .next()
                                .unwrap_or("")
                        });
                    items.push(Item {
                        kind,
                        props: Vec::new(),
                        // A property of the enclosing item; a bare nested itemscope is not.
                        parent: prop.and(scopes.last().map(|&(_, i)| i)),
                    });
                    items.len() - 1
                });
                if let Some(names) = prop {
                    for name in names.split_whitespace() {
                        // Full-IRI property names count by their last segment.
                        let name = name.rsplit(['/', '#']).next().unwrap_or(name);
                        items[owner].props.push((name, element, held));
                    }
                }
                if let Some(i) = held {
                    scopes.push((node.id(), i));
                }
            }
            Edge::Close(node) => {
                if scopes.last().is_some_and(|&(id, _)| id == node.id()) {
                    scopes.pop();
                }
            }
        }
    }
    items
}

/// A property's value as microdata defines it, with `content` first.
fn value(el: ElementRef<'_>) -> String {
    let e = el.value();
    if let Some(c) = attr(e, "content") {
        return c.to_string();
    }
    let by_type = match e.name() {
        "a" | "area" | "link" => attr(e, "href"),
        "img" | "audio" | "video" | "source" | "embed" | "iframe" | "track" => attr(e, "src"),
        "object" => attr(e, "data"),
        "data" | "meter" => attr(e, "value"),
        "time" => attr(e, "datetime"),
        _ => None,
    };
    by_type.map_or_else(|| text(el), str::to_string)
}

fn first<'a>(item: &Item<'a>, name: &str) -> Option<ElementRef<'a>> {
    item.props
        .iter()
        .find(|(n, _, held)| *n == name && held.is_none())
        .map(|(_, el, _)| *el)
}

fn name_of(item: &Item<'_>) -> Option<String> {
    collapse(&value(first(item, "name")?))
}

/// The price of one item: `lowPrice` (AggregateOffer) or `price`, its `priceCurrency`
/// (else a currency written with the price) and `availability`.
fn candidate(item: &Item<'_>) -> Option<Candidate> {
    let (price, text_currency) = ["lowPrice", "price"]
        .iter()
        .filter_map(|n| first(item, n))
        .find_map(|el| price_value(&value(el)))?;
    let currency = first(item, "priceCurrency")
        .and_then(|el| parse_currency(&value(el)))
        .or(text_currency);
    let availability = first(item, "availability").map_or(Availability::Unknown, |el| {
        Availability::from_str_loose(&value(el))
    });
    Some(Candidate {
        price,
        currency,
        availability,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(html: &str) -> Option<Offer> {
        extract(&Html::parse_document(html))
    }

    #[test]
    fn product_with_offer_content_and_text() {
        let o = run(r#"<div itemscope itemtype="https://schema.org/Product">
            <h1 itemprop="name">  Blue   Kettle </h1>
            <div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
              <span itemprop="price" content="1299.00">1.299,00 €</span>
              <meta itemprop="priceCurrency" content="EUR">
              <link itemprop="availability" href="https://schema.org/OutOfStock">
            </div></div>"#)
        .unwrap();
        assert_eq!(o.price.as_deref(), Some("1299.00"));
        assert_eq!(o.currency.as_deref(), Some("EUR"));
        assert_eq!(o.availability, Availability::OutOfStock);
        assert_eq!(o.name.as_deref(), Some("Blue Kettle"));
        assert_eq!(o.source, OfferSource::Microdata);
    }

    #[test]
    fn text_price_lowest_offer_and_nesting() {
        // The nested Offer's name must not become the product's name; the lowest offer wins.
        let o = run(r#"<div itemscope itemtype="http://schema.org/Product">
            <div itemprop="offers" itemscope itemtype="http://schema.org/Offer">
              <span itemprop="name">Seller A</span><span itemprop="price">12,50 zł</span>
            </div>
            <span itemprop="name">Mug</span>
            <div itemprop="offers" itemscope itemtype="http://schema.org/Offer">
              <span itemprop="price">9,99</span><span itemprop="priceCurrency">pln</span>
              <span itemprop="availability">In stock</span>
            </div></div>"#)
        .unwrap();
        assert_eq!(o.price.as_deref(), Some("9.99"));
        assert_eq!(o.currency.as_deref(), Some("PLN"));
        assert_eq!(o.availability, Availability::InStock);
        assert_eq!(o.name.as_deref(), Some("Mug"));
    }

    #[test]
    fn related_products_are_not_the_offer() {
        let html = r#"<div itemscope itemtype="https://schema.org/Product"><h1 itemprop="name">Main</h1>
            <div itemprop="isRelatedTo" itemscope itemtype="https://schema.org/Product">
            <span itemprop="name">Other</span><span itemprop="offers" itemscope
            itemtype="https://schema.org/Offer"><span itemprop="price">5</span></span></div></div>"#;
        assert!(run(html).is_none());
        let o = run(&format!(
            r#"{html}<div itemscope itemtype="https://schema.org/Product">
            <i itemprop="name">Second</i><i itemprop="price">7</i></div>"#
        ))
        .unwrap();
        assert_eq!(
            (o.price.as_deref(), o.name.as_deref()),
            (Some("7"), Some("Second"))
        );
    }

    #[test]
    fn aggregate_bare_offer_and_loose_props() {
        let o = run(
            r#"<div itemscope itemtype="https://schema.org/Product"><b itemprop="name">P</b>
            <div itemprop="offers" itemscope itemtype="https://schema.org/AggregateOffer">
            <meta itemprop="lowPrice" content="5"><meta itemprop="highPrice" content="9">
            <meta itemprop="priceCurrency" content="USD"></div></div>"#,
        )
        .unwrap();
        assert_eq!(
            (o.price.as_deref(), o.currency.as_deref()),
            (Some("5"), Some("USD"))
        );

        let o = run(r#"<div itemscope itemtype="https://schema.org/Offer">
            <div itemprop="itemOffered" itemscope itemtype="https://schema.org/Product">
            <span itemprop="name">Inner</span></div><span itemprop="price">$3</span></div>"#)
        .unwrap();
        assert_eq!(
            (o.price.as_deref(), o.currency.as_deref()),
            (Some("3"), Some("USD"))
        );
        assert_eq!(o.name.as_deref(), Some("Inner"));

        let o = run(r#"<p><span itemprop="price">£4.20</span></p>"#).unwrap();
        assert_eq!(
            (o.price.as_deref(), o.currency.as_deref()),
            (Some("4.20"), Some("GBP"))
        );
        assert!(run(
            r#"<div itemscope itemtype="https://schema.org/Product"><b itemprop="name">x</b></div>"#
        )
        .is_none());
    }
}
