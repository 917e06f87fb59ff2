//! Prices as exact decimal strings: locale-aware parsing of price text, the strict
//! machine-readable form of schema.org values, and comparison without floats.

use std::cmp::Ordering;

use super::currency::{prefix_token, suffix_token};

/// The most digits a price may have before the decimal separator (below a trillion): more is
/// an id, a phone number or garbage, not a price.
const MAX_INTEGER_DIGITS: usize = 12;

/// The most digits after the decimal separator (fuel and unit prices have three or four).
const MAX_FRACTION_DIGITS: usize = 4;

/// Locale-aware price text → `(price, currency)`: the price as an exact decimal string with
/// `.` as the decimal separator and no grouping, the currency as an ISO 4217 code when the
/// text names one.
///
/// The number is the first one in the text that has a currency next to it, or else the first
/// number (numbers glued to letters, like `A4`, and percentages are skipped). Separators:
/// `.`, `,`, `'`, `’`, spaces, NBSP and narrow NBSP. The last `.` or `,` is the decimal
/// separator when another kind of separator precedes it (`1.299,00`, `1,299.00`,
/// `1 299,00`); a lone `,` or `.` followed by exactly three digits is grouping (`1,299` →
/// `1299`, `1.299` → `1299`) unless the integer part is zero (`0,125`), any other lone one is
/// decimal (`1,29` → `1.29`). Groups must be three digits (or the Indian 2-digit groups,
/// `1,29,999`). `12,-` and `12.–` mean 12. Negative amounts, malformed grouping, more than 12
/// integer or 4 fraction digits → `None`.
///
/// ```
/// use scraipe::offer::parse_price;
/// let p = |s| parse_price(s).map(|(price, cur)| (price, cur.unwrap_or_default()));
/// assert_eq!(p("1.299,00 €"), Some(("1299.00".into(), "EUR".into())));
/// assert_eq!(p("€1,299.00"), Some(("1299.00".into(), "EUR".into())));
/// assert_eq!(p("1 299,00 EUR"), Some(("1299.00".into(), "EUR".into())));
/// assert_eq!(p("$12"), Some(("12".into(), "USD".into())));
/// assert_eq!(p("12,50 zł"), Some(("12.50".into(), "PLN".into())));
/// assert_eq!(p("¥1,200"), Some(("1200".into(), "JPY".into())));
/// assert_eq!(p("CHF 1'299.50"), Some(("1299.50".into(), "CHF".into())));
/// assert_eq!(parse_price("1,29"), Some(("1.29".into(), None)));
/// assert_eq!(parse_price("-12 €"), None);
/// ```
pub fn parse_price(text: &str) -> Option<(String, Option<String>)> {
    let mut first: Option<(String, Option<&'static str>)> = None;
    let mut pos = 0;
    while let Some(found) = next_number(text, pos) {
        pos = found.end;
        let Some(price) = found.price else { continue };
        if found.negative {
            return None;
        }
        if found.currency.is_some() {
            return Some((price, found.currency.map(str::to_string)));
        }
        if first.is_none() {
            first = Some((price, None));
        }
    }
    first.map(|(price, cur)| (price, cur.map(str::to_string)))
}

/// A schema.org style number (`1299.00`, `12`, `0.5`: ASCII digits, at most one `.`),
/// normalised (leading zeros dropped, fraction kept as written). Other forms → `None`, and the
/// caller falls back to [`parse_price`]: machine values like `content="1299.99"` must not go
/// through the locale heuristics, where `1.299` would mean 1299.
pub(crate) fn parse_machine_price(text: &str) -> Option<String> {
    let t = text.trim();
    let (int, frac) = match t.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (t, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int)
        || !frac.is_none_or(digits)
        || (int.is_empty() && frac.is_none_or(str::is_empty))
    {
        return None;
    }
    normalise(int, frac.filter(|f| !f.is_empty()))
}

/// A JSON number as a price: integers exactly, floats through their shortest round-trip
/// decimal (`12.5` → `"12.5"`; a float with no fraction drops it: `1299.0` → `"1299"`).
pub(crate) fn price_from_json_number(n: &serde_json::Number) -> Option<String> {
    if let Some(u) = n.as_u64() {
        return normalise(&u.to_string(), None);
    }
    let f = n.as_f64()?;
    if !(0.0..1e12).contains(&f) {
        return None;
    }
    // serde_json prints the shortest decimal that reads back as the same f64.
    let text = n.to_string();
    let text = text.strip_suffix(".0").unwrap_or(&text);
    parse_machine_price(text)
}

/// Compares two prices produced by this module (normalised decimal strings) exactly.
pub(crate) fn cmp_price(a: &str, b: &str) -> Ordering {
    let (ai, af) = a.split_once('.').unwrap_or((a, ""));
    let (bi, bf) = b.split_once('.').unwrap_or((b, ""));
    ai.len()
        .cmp(&bi.len())
        .then_with(|| ai.cmp(bi))
        .then_with(|| {
            let (af, bf) = (af.trim_end_matches('0'), bf.trim_end_matches('0'));
            af.cmp(bf)
        })
}

/// Integer digits without grouping, optional fraction digits → the normalised price.
fn normalise(int: &str, frac: Option<&str>) -> Option<String> {
    let int = int.trim_start_matches('0');
    if int.len() > MAX_INTEGER_DIGITS || frac.is_some_and(|f| f.len() > MAX_FRACTION_DIGITS) {
        return None;
    }
    let mut out = String::with_capacity(int.len() + frac.map_or(0, |f| f.len() + 2));
    out.push_str(if int.is_empty() { "0" } else { int });
    if let Some(frac) = frac {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

/// One number found in the text.
struct Found {
    /// The number as a price, `None` when its form is not a valid price.
    price: Option<String>,
    currency: Option<&'static str>,
    negative: bool,
    /// Where to continue scanning (byte offset).
    end: usize,
}

/// The kinds of separator inside a number.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sep {
    Dot,
    Comma,
    /// `'` and `’` (Swiss grouping).
    Apostrophe,
    /// Space, NBSP, narrow NBSP, thin space.
    Space,
}

fn sep_kind(c: char) -> Option<Sep> {
    match c {
        '.' => Some(Sep::Dot),
        ',' => Some(Sep::Comma),
        '\'' | '’' => Some(Sep::Apostrophe),
        ' ' | '\u{a0}' | '\u{202f}' | '\u{2009}' => Some(Sep::Space),
        _ => None,
    }
}

fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{a0}' || c == '\u{202f}'
}

/// The next number at or after byte `from`, with its currency and sign.
fn next_number(text: &str, from: usize) -> Option<Found> {
    let bytes = text.as_bytes();
    // Start at a digit, or at a `.`/`,` directly followed by one (".99").
    let mut start = from;
    loop {
        let b = *bytes.get(start)?;
        let next_digit = bytes.get(start + 1).is_some_and(u8::is_ascii_digit);
        let prev_digit = start > 0 && bytes[start - 1].is_ascii_digit();
        if b.is_ascii_digit() || ((b == b'.' || b == b',') && next_digit && !prev_digit) {
            break;
        }
        start += 1;
    }

    // Digits and separators; a separator counts only when a digit follows it, and a space
    // only when exactly three digits follow ("1 299,00", not "2 12").
    let mut groups: Vec<(Option<Sep>, &str)> = Vec::with_capacity(4);
    let mut i = start;
    let mut sep: Option<Sep> = None;
    loop {
        let digits_end = i + bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        groups.push((sep, &text[i..digits_end]));
        i = digits_end;
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        let Some(kind) = sep_kind(c) else { break };
        let after = i + c.len_utf8();
        let run = bytes[after..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if run == 0 || (kind == Sep::Space && run != 3) {
            break;
        }
        sep = Some(kind);
        i = after;
    }
    let mut end = i;

    // "12,-" / "12.–": a whole amount.
    let mut whole = false;
    let rest = &text[end..];
    for dash in ['-', '–', '—'] {
        for mark in [',', '.'] {
            let mut tag = [0u8; 8];
            let m = mark.encode_utf8(&mut tag).len();
            let d = dash.encode_utf8(&mut tag[m..]).len();
            if rest.as_bytes().starts_with(&tag[..m + d]) {
                whole = true;
                end += m + d;
            }
        }
    }

    let before = &text[..start];
    let after = &text[end..];
    let glued_before = before.chars().next_back().is_some_and(char::is_alphabetic);
    let glued_after = after.chars().next().is_some_and(char::is_alphabetic);
    let prefix = prefix_token(before.trim_end_matches(is_space));
    let suffix = suffix_token(after.trim_start_matches(is_space));
    let currency = prefix.or(suffix).map(|(code, _)| code);
    let skip = (glued_before && prefix.is_none())
        || (glued_after && suffix.is_none())
        || after.trim_start_matches(is_space).starts_with('%');

    // A minus sign before the number or before its currency symbol, not a range ("10-20").
    let mut head = before.trim_end_matches(is_space);
    if let Some((_, len)) = prefix {
        head = head[..head.len() - len].trim_end_matches(is_space);
    }
    let negative = head.strip_suffix(['-', '−']).is_some_and(|h| {
        !h.trim_end_matches(is_space)
            .ends_with(|c: char| c.is_ascii_digit())
    });

    let price = if skip {
        None
    } else {
        interpret(&groups, whole)
    };
    Some(Found {
        price,
        currency,
        negative,
        end: end.max(start + 1),
    })
}

/// Digit groups with the separator before each → the normalised price.
fn interpret(groups: &[(Option<Sep>, &str)], whole: bool) -> Option<String> {
    let seps: Vec<Sep> = groups.iter().filter_map(|(s, _)| *s).collect();
    let last = seps.last().copied();
    // Is the last separator the decimal one?
    let decimal = match last {
        None | Some(Sep::Space) | Some(Sep::Apostrophe) => false,
        Some(kind) => {
            let same = seps.iter().filter(|s| **s == kind).count();
            if same > 1 {
                false
            } else if seps.len() > 1 {
                true
            } else {
                let int = groups[0].1;
                let frac = groups[groups.len() - 1].1;
                !(frac.len() == 3 && !int.is_empty() && int.bytes().any(|b| b != b'0'))
            }
        }
    };
    if decimal && whole {
        return None;
    }
    let (int_groups, frac) = if decimal {
        (
            &groups[..groups.len() - 1],
            Some(groups[groups.len() - 1].1),
        )
    } else {
        (groups, None)
    };
    // Grouping: one kind of separator, a first group of 1-3 digits, then groups of three
    // (or Indian: groups of two, the last of three).
    let first = int_groups[0].1;
    if int_groups.len() > 1 {
        let kind = int_groups[1].0;
        if int_groups[1..].iter().any(|(s, _)| *s != kind) {
            return None;
        }
        if first.is_empty() || first.len() > 3 {
            return None;
        }
        let rest = &int_groups[1..];
        let (last_group, middle) = rest.split_last()?;
        let western = rest.iter().all(|(_, g)| g.len() == 3);
        let indian = last_group.1.len() == 3 && middle.iter().all(|(_, g)| g.len() == 2);
        if !western && !indian {
            return None;
        }
    } else if first.is_empty() && frac.is_none() {
        return None;
    }
    let int: String = int_groups.iter().map(|(_, g)| *g).collect();
    normalise(&int, frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<(String, Option<String>)> {
        parse_price(s)
    }

    fn ok(s: &str, price: &str, cur: Option<&str>) {
        assert_eq!(
            p(s),
            Some((price.to_string(), cur.map(str::to_string))),
            "{s:?}"
        );
    }

    #[test]
    fn the_issue_formats() {
        ok("1.299,00 €", "1299.00", Some("EUR"));
        ok("€1,299.00", "1299.00", Some("EUR"));
        ok("1 299,00 EUR", "1299.00", Some("EUR"));
        ok("1\u{a0}299,00\u{a0}EUR", "1299.00", Some("EUR"));
        ok("1\u{202f}299,00\u{202f}€", "1299.00", Some("EUR"));
        ok("$12", "12", Some("USD"));
        ok("12,50 zł", "12.50", Some("PLN"));
        ok("¥1,200", "1200", Some("JPY"));
        ok("CHF 1'299.50", "1299.50", Some("CHF"));
        ok("CHF 1’299.50", "1299.50", Some("CHF"));
    }

    #[test]
    fn grouping_versus_decimal() {
        ok("1,299", "1299", None);
        ok("1.299", "1299", None);
        ok("1,29", "1.29", None);
        ok("1.5", "1.5", None);
        ok("0,125", "0.125", None);
        ok("12.999,5", "12999.5", None);
        ok("1.299.000", "1299000", None);
        ok("1,299,000.99", "1299000.99", None);
        ok("₹1,29,999", "129999", Some("INR"));
        ok("12 345", "12345", None);
        ok("007", "7", None);
        ok(".99", "0.99", None);
        ok("$.99", "0.99", Some("USD"));
        ok("12.", "12", None);
    }

    #[test]
    fn currencies_before_and_after() {
        ok("US$ 12.00", "12.00", Some("USD"));
        ok("CA$12", "12", Some("CAD"));
        ok("A$ 5", "5", Some("AUD"));
        ok("£9.99", "9.99", Some("GBP"));
        ok("₹ 499", "499", Some("INR"));
        ok("199 kr", "199", Some("SEK"));
        ok("12.00 USD", "12.00", Some("USD"));
        ok("EUR 12", "12", Some("EUR"));
        ok("12,- €", "12", Some("EUR"));
        ok("CHF 12.–", "12", Some("CHF"));
        ok("Price: 12.99", "12.99", None);
        ok("12 Euro", "12", Some("EUR"));
    }

    #[test]
    fn picks_the_number_next_to_a_currency() {
        ok("Save 20% now €12.99", "12.99", Some("EUR"));
        ok("2 for €5", "5", Some("EUR"));
        ok("Model A4 only 99", "99", None);
        ok("Was €15, now €12", "15", Some("EUR"));
    }

    #[test]
    fn rejects_garbage_negative_and_absurd() {
        for s in [
            "",
            "free",
            "-12 €",
            "−12 €",
            "€-12",
            "- $5",
            "1,2,3",
            "1,299,00",
            "1.2345,00.1",
            "1234567890123",
            "12.34567",
            "%",
        ] {
            assert_eq!(p(s), None, "{s:?}");
        }
        // Separators that do not fit are not part of the number: the first number stands.
        ok("1 2", "1", None);
        ok("12..5", "12", None);
        assert_eq!(p("1e9"), None, "a number glued to letters is no price");
    }

    #[test]
    fn machine_prices_are_strict() {
        assert_eq!(parse_machine_price("1299.00").as_deref(), Some("1299.00"));
        assert_eq!(parse_machine_price(" 12 ").as_deref(), Some("12"));
        assert_eq!(parse_machine_price("1.299").as_deref(), Some("1.299"));
        assert_eq!(parse_machine_price("0012.5").as_deref(), Some("12.5"));
        assert_eq!(parse_machine_price(".5").as_deref(), Some("0.5"));
        for s in ["", ".", "1,299.00", "12 €", "-1", "1.2.3", "1e3", "abc"] {
            assert_eq!(parse_machine_price(s), None, "{s:?}");
        }
    }

    #[test]
    fn json_numbers() {
        let n = |s: &str| serde_json::from_str::<serde_json::Number>(s).unwrap();
        assert_eq!(price_from_json_number(&n("12")).as_deref(), Some("12"));
        assert_eq!(price_from_json_number(&n("12.5")).as_deref(), Some("12.5"));
        assert_eq!(
            price_from_json_number(&n("1299.00")).as_deref(),
            Some("1299")
        );
        assert_eq!(price_from_json_number(&n("0.1")).as_deref(), Some("0.1"));
        assert_eq!(price_from_json_number(&n("-3")), None);
        assert_eq!(price_from_json_number(&n("1e15")), None);
    }

    #[test]
    fn comparison_is_exact() {
        assert_eq!(cmp_price("12", "9.99"), Ordering::Greater);
        assert_eq!(cmp_price("12.50", "12.5"), Ordering::Equal);
        assert_eq!(cmp_price("12.05", "12.5"), Ordering::Less);
        assert_eq!(cmp_price("0.1", "0"), Ordering::Greater);
        assert_eq!(cmp_price("100", "99.99"), Ordering::Greater);
    }
}
