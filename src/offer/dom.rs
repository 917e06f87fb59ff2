//! Small helpers over scraper's DOM shared by the extractors.

use scraper::node::Element;
use scraper::{ElementRef, Node};

/// An attribute's value, compared by name without interning `name` (scraper's
/// `Element::attr` interns its argument as an atom on every call).
pub(crate) fn attr<'a>(el: &'a Element, name: &str) -> Option<&'a str> {
    el.attrs().find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// The element's text content, pieces joined as they are (so `1.299<sup>,00</sup>` reads
/// `1.299,00`).
pub(crate) fn text(el: ElementRef<'_>) -> String {
    let mut out = String::new();
    for node in el.descendants() {
        if let Node::Text(t) = node.value() {
            out.push_str(t);
        }
    }
    out
}

/// Whitespace runs collapsed to one space, trimmed; `None` when nothing is left.
pub(crate) fn collapse(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    (!out.is_empty()).then_some(out)
}

/// A price from a value that may be machine-readable (`content="1299.00"`) or text
/// (`1.299,00 €`): the strict form first, then the locale-aware parser.
pub(crate) fn price_value(s: &str) -> Option<(String, Option<String>)> {
    match super::price::parse_machine_price(s) {
        Some(p) => Some((p, None)),
        None => super::price::parse_price(s),
    }
}
