//! Pages nested too deeply for a DOM.
//!
//! html5ever's tree builder checks the stack of open elements on every start tag, so a page
//! of N unclosed nested elements costs O(N²): 20,000 nested `<div>`s take 1.5 s in a release
//! build. Real pages nest a few dozen deep. [`max_nesting`] estimates the depth with one
//! cheap byte scan; past [`MAX_NESTING`] the extractor skips the DOM and reads JSON-LD and
//! meta tags from html5gum's token stream ([`scan_tokens`]), which is linear. Rules and
//! microdata need the tree and are not tried on such pages.

use html5gum::{DefaultEmitter, Token, Tokenizer};
use memchr::memchr;

use super::meta::MetaTags;

/// The estimated depth past which a page is not parsed into a DOM (parsing at this depth
/// costs a few milliseconds).
pub(crate) const MAX_NESTING: usize = 1000;

/// Elements that never have content.
const VOID: &[&[u8]] = &[
    b"area", b"base", b"br", b"col", b"embed", b"hr", b"img", b"input", b"keygen", b"link",
    b"meta", b"param", b"source", b"track", b"wbr",
];

/// Elements a sibling closes implicitly (`<li>a<li>b`) or that the parser never nests; not
/// counted, so sloppy but ordinary pages stay far below the limit.
const IMPLIED: &[&[u8]] = &[
    b"p",
    b"li",
    b"dt",
    b"dd",
    b"option",
    b"optgroup",
    b"tr",
    b"td",
    b"th",
    b"thead",
    b"tbody",
    b"tfoot",
    b"colgroup",
    b"caption",
    b"rb",
    b"rt",
    b"rtc",
    b"rp",
    b"html",
    b"head",
    b"body",
];

/// Elements whose content is text, not markup (skipped to their end tag). `noscript` is
/// among them because html5ever parses with scripting enabled, as browsers do.
const RAW: &[&[u8]] = &[
    b"script",
    b"style",
    b"textarea",
    b"title",
    b"xmp",
    b"iframe",
    b"noembed",
    b"noframes",
    b"noscript",
    b"plaintext",
];

/// What one byte scan of a page finds, before (and often instead of) a DOM parse.
pub(crate) struct Prescan<'a> {
    /// An estimate of the deepest element nesting: start tags minus end tags, leaving out
    /// void elements, self-closing tags, implicitly closed ones, comments and raw text.
    pub(crate) max_nesting: usize,
    /// The content of each `<script type="application/ld+json">`, in document order. Script
    /// content is raw text to an HTML parser too (no entities, no tags), so these are the
    /// same strings the DOM would hold.
    pub(crate) ld_scripts: Vec<&'a str>,
    /// Some tag has an `itemprop` attribute (microdata may give an offer).
    pub(crate) has_itemprop: bool,
    /// Some `<meta>` has a `property` or `name` containing `price:amount`.
    pub(crate) has_price_meta: bool,
}

impl Prescan<'_> {
    /// Whether microdata or meta tags could give an offer: when not, the page needs no DOM
    /// unless a rule matches.
    pub(crate) fn may_have_dom_offer(&self) -> bool {
        self.has_itemprop || self.has_price_meta
    }
}

/// Walks the tags of `html` once: nesting depth and JSON-LD scripts. Comments and raw-text
/// elements are skipped as an HTML tokenizer skips them, and quoted attribute values may
/// contain `>`.
pub(crate) fn prescan(html: &str) -> Prescan<'_> {
    let b = html.as_bytes();
    let mut out = Prescan {
        max_nesting: 0,
        ld_scripts: Vec::new(),
        has_itemprop: false,
        has_price_meta: false,
    };
    let (mut i, mut depth) = (0usize, 0usize);
    while let Some(p) = memchr(b'<', &b[i..]) {
        i += p + 1;
        match b.get(i) {
            Some(b'!') => {
                let end = if b[i..].starts_with(b"!--") {
                    // From `i + 1`, so `<!-->` and `<!--->` end at once, as in a browser.
                    find(b, i + 1, b"-->").map(|e| e + 3)
                } else {
                    memchr(b'>', &b[i..]).map(|e| i + e + 1)
                };
                i = end.unwrap_or(b.len());
            }
            Some(b'/') if b.get(i + 1).is_some_and(u8::is_ascii_alphabetic) => {
                let name = tag_name(b, i + 1);
                if !is_in(name, VOID) && !is_in(name, IMPLIED) {
                    depth = depth.saturating_sub(1);
                }
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let name = tag_name(b, i);
                let is_script = name.eq_ignore_ascii_case(b"script");
                let is_meta = name.eq_ignore_ascii_case(b"meta");
                let mut ld = false;
                let Some((close, self_closing)) = tag_end(b, i + name.len(), |attr, value| {
                    if is_script && attr.eq_ignore_ascii_case(b"type") {
                        ld = std::str::from_utf8(value).is_ok_and(super::extract::is_ld_json);
                    } else if attr.eq_ignore_ascii_case(b"itemprop") {
                        out.has_itemprop = true;
                    } else if is_meta
                        && (attr.eq_ignore_ascii_case(b"property")
                            || attr.eq_ignore_ascii_case(b"name"))
                        && value
                            .windows(12)
                            .any(|w| w.eq_ignore_ascii_case(b"price:amount"))
                    {
                        out.has_price_meta = true;
                    }
                }) else {
                    break;
                };
                i = close;
                if is_in(name, RAW) && !self_closing {
                    if name.eq_ignore_ascii_case(b"plaintext") {
                        break;
                    }
                    let end = raw_end(b, i, name);
                    if ld {
                        // Both ends sit next to ASCII bytes (`>` and `<`): char boundaries.
                        out.ld_scripts.push(&html[i..end]);
                    }
                    i = end;
                } else if !self_closing && !is_in(name, VOID) && !is_in(name, IMPLIED) {
                    depth += 1;
                    out.max_nesting = out.max_nesting.max(depth);
                }
            }
            _ => {}
        }
    }
    out
}

/// The start of `</name` (ASCII case-insensitive) at or after `from`, or the end of input.
fn raw_end(b: &[u8], from: usize, name: &[u8]) -> usize {
    let mut j = from;
    while let Some(p) = memchr(b'<', &b[j..]) {
        let at = j + p;
        let n = &b[at + 1..];
        if n.first() == Some(&b'/')
            && n.len() > name.len()
            && n[1..=name.len()].eq_ignore_ascii_case(name)
        {
            return at;
        }
        j = at + 1;
    }
    b.len()
}

/// Reads a start tag's attributes from `from` (just after the tag name), calling `attr` for
/// each `(name, raw value)`; returns the index after the closing `>` and whether the tag
/// ends with `/>`. `None` when the input ends inside the tag.
fn tag_end(b: &[u8], from: usize, mut attr: impl FnMut(&[u8], &[u8])) -> Option<(usize, bool)> {
    let mut j = from;
    let skip_ws = |j: &mut usize| {
        while b.get(*j).is_some_and(u8::is_ascii_whitespace) {
            *j += 1;
        }
    };
    loop {
        skip_ws(&mut j);
        match *b.get(j)? {
            b'>' => return Some((j + 1, j > from && b[j - 1] == b'/')),
            b'/' => {
                j += 1;
                continue;
            }
            _ => {}
        }
        let name_start = j;
        while b
            .get(j)
            .is_some_and(|c| !c.is_ascii_whitespace() && !matches!(c, b'/' | b'>' | b'='))
        {
            j += 1;
        }
        let name = &b[name_start..j];
        skip_ws(&mut j);
        let mut value: &[u8] = b"";
        if b.get(j) == Some(&b'=') {
            j += 1;
            skip_ws(&mut j);
            match *b.get(j)? {
                q @ (b'"' | b'\'') => {
                    let end = j + 1 + memchr(q, &b[j + 1..])?;
                    value = &b[j + 1..end];
                    j = end + 1;
                }
                _ => {
                    let start = j;
                    while b
                        .get(j)
                        .is_some_and(|c| !c.is_ascii_whitespace() && *c != b'>')
                    {
                        j += 1;
                    }
                    value = &b[start..j];
                }
            }
        }
        attr(name, value);
    }
}

fn tag_name(b: &[u8], start: usize) -> &[u8] {
    let len = b[start..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'-')
        .count();
    &b[start..start + len]
}

fn is_in(name: &[u8], set: &[&[u8]]) -> bool {
    set.iter().any(|s| s.eq_ignore_ascii_case(name))
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// The meta tags from html5gum's token stream, without a tree (for pages too deep for one).
pub(crate) fn meta_from_tokens(html: &str) -> MetaTags {
    let mut emitter = DefaultEmitter::default();
    // Script and style content as text, not markup.
    emitter.naively_switch_states(true);
    let mut meta = MetaTags::default();
    for token in Tokenizer::new_with_emitter(html, emitter) {
        let token = match token {
            Ok(token) => token,
            Err(never) => match never {},
        };
        if let Token::StartTag(tag) = token {
            if !tag.name.eq_ignore_ascii_case(b"meta") {
                continue;
            }
            let attr = |name: &str| {
                tag.attributes
                    .get(name.as_bytes())
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            };
            if let (Some(key), Some(content)) =
                (attr("property").or_else(|| attr("name")), attr("content"))
            {
                meta.add(&key, &content);
            }
        }
    }
    meta
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_nesting(html: &str) -> usize {
        prescan(html).max_nesting
    }

    #[test]
    fn nesting_estimate() {
        assert_eq!(max_nesting(""), 0);
        assert_eq!(max_nesting("<div><div><span>x</span></div></div>"), 3);
        assert_eq!(max_nesting(&"<div>".repeat(50)), 50);
        // Void, self-closing, implied, comments, raw text and end tags do not add depth.
        let sloppy = "<ul><li>a<li>b<li>c</ul><p>x<p>y<br><img src=a><x/><!-- <div><div> -->\
                      <script>if (a<b) { '<div><div><div>' }</script><DIV title='a>b'></div>";
        assert_eq!(max_nesting(&sloppy.repeat(500)), 1);
        assert_eq!(max_nesting("<div"), 0);
    }

    #[test]
    fn json_ld_scripts_as_a_parser_sees_them() {
        let html = r#"<head><script type="application/ld+json">{"a": "<div>"}</script>
            <script>var s = '<script type="application/ld+json">{"no": 1}</script>';</script>
            <!-- <script type="application/ld+json">{"no": 2}</script> -->
            <noscript><script type="application/ld+json">{"no": 3}</script></noscript>
            <textarea><script type=application/ld+json>{"no": 4}</script></textarea>
            <SCRIPT data-x="a>b" TYPE='Application/LD+JSON'>[1]</SCRIPT >
            <script type=application/ld+json>{"b": 2}"#;
        assert_eq!(
            prescan(html).ld_scripts,
            [r#"{"a": "<div>"}"#, "[1]", r#"{"b": 2}"#]
        );
        // The same scripts the DOM holds.
        let doc = scraper::Html::parse_document(html);
        let sel = scraper::Selector::parse("script").unwrap();
        let dom: Vec<String> = doc
            .select(&sel)
            .filter(|s| {
                s.value()
                    .attr("type")
                    .is_some_and(super::super::extract::is_ld_json)
            })
            .map(|s| s.text().collect())
            .collect();
        assert_eq!(dom, [r#"{"a": "<div>"}"#, "[1]", r#"{"b": 2}"#]);
    }

    #[test]
    fn flags_for_microdata_and_price_meta() {
        let p = prescan(r#"<div ITEMPROP=price>1</div>"#);
        assert!(p.has_itemprop && !p.has_price_meta && p.may_have_dom_offer());
        let p = prescan(r#"<META Property="OG:Price:Amount" content=1>"#);
        assert!(!p.has_itemprop && p.has_price_meta);
        let p = prescan(r#"<meta property="og:title" content="price:amount"><p title=itemprop>"#);
        assert!(!p.may_have_dom_offer());
        let p = prescan(r#"<!-- <div itemprop=price> --><script>"<b itemprop=x>"</script>"#);
        assert!(!p.may_have_dom_offer());
        // `<!-->` is a whole (empty) comment.
        let p = prescan(r#"<!--><div itemprop=price>1</div>-->"#);
        assert!(p.has_itemprop);
    }

    #[test]
    fn token_scan_reads_meta() {
        let html = r#"<meta property="og:price:amount" content="5 &euro;"><div><div>
            <script>var x = '<meta property="og:price:amount" content="9">';</script>"#;
        let o = meta_from_tokens(html).offer().unwrap();
        assert_eq!(
            (o.price.as_deref(), o.currency.as_deref()),
            (Some("5"), Some("EUR"))
        );
    }
}
