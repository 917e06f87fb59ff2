//! Currency symbols and codes → ISO 4217.
//!
//! Two entry points with different strictness, because the inputs differ:
//!
//! * [`parse_currency`] reads a value that is *meant* to be a currency (schema.org
//!   `priceCurrency`, a rule's `currency` selector, `og:price:currency`): ISO codes in any case,
//!   or one of the symbols below.
//! * [`prefix_token`] / [`suffix_token`] find a currency next to a number in free text, where
//!   ISO codes count only in upper case (in lower case too many are English words: `all`,
//!   `top`, `try`, `cup`, `mad`).
//!
//! Ambiguous symbols are mapped to the most common currency; a site rule's `currency_code`
//! overrides any of them:
//! `$` → USD (`US$` USD, `CA$`/`C$` CAD, `A$`/`AU$` AUD, `NZ$`, `HK$`, `S$`, `MX$`, `R$` BRL,
//! `NT$` TWD), `¥`/`￥` → JPY (`CN¥`, `元` and `RMB` → CNY), `kr`/`kr.` → SEK (also used by NOK,
//! DKK and ISK), `Fr.`/`SFr.` → CHF, `Rs`/`Rs.` → INR (also PKR, LKR, NPR), `TL` → TRY.

/// Active ISO 4217 codes (plus HRK, still seen on older pages), sorted for binary search.
const ISO_CODES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ",
    "GYD", "HKD", "HNL", "HRK", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD",
    "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP",
    "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR",
    "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB",
    "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD",
    "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SLL", "SOS", "SRD", "SSP", "STN", "SVC", "SYP",
    "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD",
    "UYU", "UZS", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR",
    "ZMW", "ZWG", "ZWL",
];

/// Symbols and local abbreviations, matched case-sensitively. Longer tokens that end with a
/// shorter one (`US$`, `$`) are found first because the lookups try every token and keep the
/// longest match.
const SYMBOLS: &[(&str, &str)] = &[
    ("$", "USD"),
    ("US$", "USD"),
    ("U$S", "USD"),
    ("CA$", "CAD"),
    ("C$", "CAD"),
    ("AU$", "AUD"),
    ("A$", "AUD"),
    ("NZ$", "NZD"),
    ("HK$", "HKD"),
    ("S$", "SGD"),
    ("SG$", "SGD"),
    ("MX$", "MXN"),
    ("R$", "BRL"),
    ("NT$", "TWD"),
    ("€", "EUR"),
    ("Euro", "EUR"),
    ("euro", "EUR"),
    ("Euros", "EUR"),
    ("euros", "EUR"),
    ("£", "GBP"),
    ("¥", "JPY"),
    ("￥", "JPY"),
    ("JP¥", "JPY"),
    ("円", "JPY"),
    ("CN¥", "CNY"),
    ("元", "CNY"),
    ("RMB", "CNY"),
    ("zł", "PLN"),
    ("₹", "INR"),
    ("Rs", "INR"),
    ("Rs.", "INR"),
    ("kr", "SEK"),
    ("kr.", "SEK"),
    ("Fr.", "CHF"),
    ("SFr.", "CHF"),
    ("Kč", "CZK"),
    ("Ft", "HUF"),
    ("lei", "RON"),
    ("₽", "RUB"),
    ("руб.", "RUB"),
    ("руб", "RUB"),
    ("₴", "UAH"),
    ("₩", "KRW"),
    ("₺", "TRY"),
    ("TL", "TRY"),
    ("₪", "ILS"),
    ("฿", "THB"),
    ("₫", "VND"),
    ("₱", "PHP"),
    ("₦", "NGN"),
    ("лв", "BGN"),
    ("лв.", "BGN"),
    ("₸", "KZT"),
    ("₼", "AZN"),
    ("₾", "GEL"),
];

/// `code` is an ISO 4217 code we know (upper case, three letters).
pub(crate) fn is_iso_code(code: &str) -> bool {
    ISO_CODES.binary_search(&code).is_ok()
}

/// A value meant to be a currency → its ISO 4217 code: `"eur"` → `EUR`, `"€"` → `EUR`,
/// `" zł "` → `PLN`, `"US$"` → `USD`. `None` for anything else (empty, unknown codes, words).
///
/// ```
/// use scraipe::offer::parse_currency;
/// assert_eq!(parse_currency("eur").as_deref(), Some("EUR"));
/// assert_eq!(parse_currency("zł").as_deref(), Some("PLN"));
/// assert_eq!(parse_currency("CA$").as_deref(), Some("CAD"));
/// assert_eq!(parse_currency("dollars"), None);
/// ```
pub fn parse_currency(text: &str) -> Option<String> {
    let t = text.trim_matches(|c: char| c.is_whitespace());
    if t.len() == 3 && t.bytes().all(|b| b.is_ascii_alphabetic()) {
        let upper = t.to_ascii_uppercase();
        if is_iso_code(&upper) {
            return Some(upper);
        }
    }
    SYMBOLS
        .iter()
        .find(|(sym, _)| *sym == t)
        .map(|(_, code)| (*code).to_string())
}

fn is_letter(c: Option<char>) -> bool {
    c.is_some_and(char::is_alphabetic)
}

/// The currency written right before a number: `text` is what precedes the number, trailing
/// whitespace already removed. Returns the code and the token's length in bytes.
pub(crate) fn prefix_token(text: &str) -> Option<(&'static str, usize)> {
    let mut best: Option<(&'static str, usize)> = None;
    let mut consider = |token: &str, code: &'static str| {
        if !text.ends_with(token) {
            return;
        }
        let before = text[..text.len() - token.len()].chars().next_back();
        // An alphabetic token must start a word ("EUR 12", not "XEUR 12"), as must a symbol
        // starting with a letter ("US$").
        if token.starts_with(char::is_alphabetic) && is_letter(before) {
            return;
        }
        if best.is_none_or(|(_, len)| token.len() > len) {
            best = Some((code, token.len()));
        }
    };
    for (sym, code) in SYMBOLS {
        consider(sym, code);
    }
    if text.len() >= 3 && text.is_char_boundary(text.len() - 3) {
        let tail = &text[text.len() - 3..];
        if let Ok(i) = ISO_CODES.binary_search(&tail) {
            consider(tail, ISO_CODES[i]);
        }
    }
    best
}

/// The currency written right after a number: `text` is what follows the number, leading
/// whitespace already removed. Returns the code and the token's length in bytes.
pub(crate) fn suffix_token(text: &str) -> Option<(&'static str, usize)> {
    let mut best: Option<(&'static str, usize)> = None;
    let mut consider = |token: &str, code: &'static str| {
        if !text.starts_with(token) {
            return;
        }
        let after = text[token.len()..].chars().next();
        if token.ends_with(char::is_alphabetic) && is_letter(after) {
            return;
        }
        if best.is_none_or(|(_, len)| token.len() > len) {
            best = Some((code, token.len()));
        }
    };
    for (sym, code) in SYMBOLS {
        consider(sym, code);
    }
    if text.len() >= 3 && text.is_char_boundary(3) {
        let head = &text[..3];
        if let Ok(i) = ISO_CODES.binary_search(&head) {
            consider(head, ISO_CODES[i]);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_table_is_sorted_and_well_formed() {
        assert!(ISO_CODES.windows(2).all(|w| w[0] < w[1]));
        assert!(ISO_CODES
            .iter()
            .all(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())));
        assert!(SYMBOLS.iter().all(|(_, code)| is_iso_code(code)));
    }

    #[test]
    fn parse_currency_codes_and_symbols() {
        for (input, code) in [
            ("EUR", "EUR"),
            (" usd ", "USD"),
            ("Pln", "PLN"),
            ("€", "EUR"),
            ("$", "USD"),
            ("US$", "USD"),
            ("CA$", "CAD"),
            ("A$", "AUD"),
            ("£", "GBP"),
            ("¥", "JPY"),
            ("CN¥", "CNY"),
            ("zł", "PLN"),
            ("₹", "INR"),
            ("kr", "SEK"),
            ("CHF", "CHF"),
            ("Kč", "CZK"),
            ("\u{a0}€\u{a0}", "EUR"),
        ] {
            assert_eq!(parse_currency(input).as_deref(), Some(code), "{input:?}");
        }
        for input in ["", "EURO", "XYZ", "dollars", "12", "€12"] {
            assert_eq!(parse_currency(input), None, "{input:?}");
        }
    }

    #[test]
    fn tokens_next_to_numbers() {
        assert_eq!(prefix_token("Price: US$"), Some(("USD", 3)));
        assert_eq!(prefix_token("$"), Some(("USD", 1)));
        assert_eq!(prefix_token("CA$"), Some(("CAD", 3)));
        assert_eq!(prefix_token("CHF"), Some(("CHF", 3)));
        assert_eq!(prefix_token("XCHF"), None);
        assert_eq!(
            prefix_token("top"),
            None,
            "lower-case ISO codes are words in free text"
        );
        assert_eq!(suffix_token("zł brutto"), Some(("PLN", "zł".len())));
        assert_eq!(suffix_token("EUR"), Some(("EUR", 3)));
        assert_eq!(suffix_token("EURO"), None);
        assert_eq!(suffix_token("kr."), Some(("SEK", 3)));
        assert_eq!(suffix_token("kg"), None);
    }
}
