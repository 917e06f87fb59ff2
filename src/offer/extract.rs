//! [`extract_offer`]: the sources in priority order, with at most one DOM parse.

use scraper::{ElementRef, Html, Node, Selector};

use super::dom::{attr, collapse, price_value, text};
use super::meta::MetaTags;
use super::rules::SiteRule;
use super::{jsonld, microdata, parse_currency, shallow, Availability, Offer, OfferSource, Rules};

/// Extracts the page's offer: the first of a matching site rule, JSON-LD, microdata, meta
/// tags that finds a price. `None` when none does.
///
/// One byte scan finds the JSON-LD scripts (script content is raw text, so no parser is
/// needed for it) and whether the page has any `itemprop` or price `<meta>`; the HTML is
/// parsed into a DOM (html5ever, as browsers do, so broken markup is no problem) at most
/// once, and only when a source needs it: a matching rule, or microdata / meta tags on a page
/// whose JSON-LD gives no offer. A page nested more than 1,000 elements deep (html5ever's
/// cost grows with the square of the depth) is not parsed into a DOM: only its JSON-LD and
/// meta tags are read.
///
/// Rules are tried only when their `match` regex matches `url`, in file order; a rule whose
/// `price` selector finds nothing parsable gives way to the next rule, then to the markup.
///
/// ```
/// use scraipe::offer::{extract_offer, Availability, OfferSource, Rules};
///
/// let html = r#"<html><head>
///   <script type="application/ld+json">
///   {"@context": "https://schema.org", "@type": "Product", "name": "Kettle",
///    "offers": {"@type": "Offer", "price": "1299.00", "priceCurrency": "EUR",
///               "availability": "https://schema.org/InStock"}}
///   </script></head><body><h1>Kettle</h1><p class="price">1.199,00 €</p></body></html>"#;
///
/// let offer = extract_offer(html, "https://shop.example/kettle", &Rules::default()).unwrap();
/// assert_eq!(offer.price.as_deref(), Some("1299.00"));
/// assert_eq!(offer.currency.as_deref(), Some("EUR"));
/// assert_eq!(offer.availability, Availability::InStock);
/// assert_eq!(offer.source, OfferSource::JsonLd);
///
/// // A site rule comes first.
/// let rules = Rules::from_toml_str(r#"
///     [[site]]
///     match = "^https://shop\\.example/"
///     price = "p.price"
///     name = "h1"
/// "#)?;
/// let offer = extract_offer(html, "https://shop.example/kettle", &rules).unwrap();
/// assert_eq!((offer.price.as_deref(), offer.currency.as_deref()), (Some("1199.00"), Some("EUR")));
/// assert_eq!(offer.source, OfferSource::Rule);
///
/// assert_eq!(extract_offer("<p>no price here</p>", "https://x/", &rules), None);
/// # Ok::<(), scraipe::offer::RulesError>(())
/// ```
pub fn extract_offer(html: &str, url: &str, rules: &Rules) -> Option<Offer> {
    let pre = shallow::prescan(html);
    let deep = pre.max_nesting > shallow::MAX_NESTING;
    let ld_offer = || jsonld::from_scripts(pre.ld_scripts.iter().copied());
    if deep {
        log::debug!("{url}: nested too deeply for a DOM; JSON-LD and meta tags only");
        return ld_offer().or_else(|| shallow::meta_from_tokens(html).offer());
    }
    // The DOM only when something needs it: a matching rule, or markup other than JSON-LD.
    let mut doc = None;
    let mut matching = rules.matching(url).peekable();
    if matching.peek().is_some() {
        let parsed = Html::parse_document(html);
        if let Some(offer) = matching.find_map(|rule| apply_rule(&parsed, rule)) {
            return Some(offer);
        }
        doc = Some(parsed);
    }
    if let Some(offer) = ld_offer() {
        return Some(offer);
    }
    if doc.is_none() && !pre.may_have_dom_offer() {
        return None;
    }
    let doc = doc.unwrap_or_else(|| Html::parse_document(html));
    let scan = scan(&doc);
    scan.has_itemprop
        .then(|| microdata::extract(&doc))
        .flatten()
        .or_else(|| scan.meta.offer())
}

/// What one walk over the document collects for the markup sources.
struct Scan {
    meta: MetaTags,
    /// Microdata needs its own walk (it tracks item scopes); skip it on pages without any.
    has_itemprop: bool,
}

fn scan(doc: &Html) -> Scan {
    let mut out = Scan {
        meta: MetaTags::default(),
        has_itemprop: false,
    };
    for node in doc.tree.root().descendants() {
        let Node::Element(el) = node.value() else {
            continue;
        };
        if el.name() == "meta" {
            if let (Some(key), Some(content)) = (
                attr(el, "property").or_else(|| attr(el, "name")),
                attr(el, "content"),
            ) {
                out.meta.add(key, content);
            }
        }
        if !out.has_itemprop && attr(el, "itemprop").is_some() {
            out.has_itemprop = true;
        }
    }
    out
}

/// A `<script type>` that says JSON-LD (`application/ld+json`, any case, parameters allowed).
pub(crate) fn is_ld_json(script_type: &str) -> bool {
    let mime = script_type.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("application/ld+json")
}

/// The first element `selector` matches.
fn first<'a>(doc: &'a Html, selector: &Selector) -> Option<ElementRef<'a>> {
    doc.select(selector).next()
}

fn apply_rule(doc: &Html, rule: &SiteRule) -> Option<Offer> {
    // The price: the `content` attribute of the first match when it parses, else its text.
    // An `extract = "llm"` entry is the monitor's to run; it has no selectors to apply.
    if rule.extract == super::rules::Extract::Llm {
        return None;
    }
    let el = first(doc, rule.price.as_ref()?)?;
    let (price, text_currency) = attr(el.value(), "content")
        .and_then(price_value)
        .or_else(|| price_value(&text(el)))?;

    // The currency: the `currency` selector, else the fixed code, else what the price text
    // says. The fixed code beats a symbol in the text because symbols are ambiguous ($ is
    // USD, CAD, AUD...) and the rule's author knows the site.
    let currency = rule
        .currency
        .as_ref()
        .and_then(|s| first(doc, s))
        .and_then(|el| {
            attr(el.value(), "content")
                .and_then(parse_currency)
                .or_else(|| parse_currency(&text(el)))
                .or_else(|| super::price::parse_price(&text(el)).and_then(|(_, c)| c))
        })
        .or_else(|| rule.currency_code.clone())
        .or(text_currency);

    // Availability: `content`, then `href` (a schema.org link), then the text; the first
    // that means something.
    let availability = rule
        .availability
        .as_ref()
        .and_then(|s| first(doc, s))
        .map_or(Availability::Unknown, |el| {
            let e = el.value();
            [attr(e, "content"), attr(e, "href")]
                .into_iter()
                .flatten()
                .map(Availability::from_str_loose)
                .chain(std::iter::once_with(|| {
                    Availability::from_str_loose(&text(el))
                }))
                .find(|a| *a != Availability::Unknown)
                .unwrap_or(Availability::Unknown)
        });

    let name = rule
        .name
        .as_ref()
        .and_then(|s| first(doc, s))
        .and_then(|el| {
            attr(el.value(), "content")
                .and_then(collapse)
                .or_else(|| collapse(&text(el)))
        });

    Some(Offer {
        price: Some(price),
        currency,
        availability,
        name,
        source: OfferSource::Rule,
    })
}
