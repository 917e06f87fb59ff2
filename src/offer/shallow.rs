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

/// Elements whose content is text, not markup (skipped to their end tag).
const RAW: &[&[u8]] = &[
    b"script",
    b"style",
    b"textarea",
    b"title",
    b"xmp",
    b"iframe",
    b"noembed",
    b"noframes",
    b"plaintext",
];

/// An estimate of the deepest element nesting: start tags minus end tags, leaving out void
/// elements, self-closing tags, implicitly closed ones, comments and raw text.
pub(crate) fn max_nesting(html: &str) -> usize {
    let b = html.as_bytes();
    let (mut i, mut depth, mut max) = (0usize, 0usize, 0usize);
    while let Some(p) = memchr(b'<', &b[i..]) {
        i += p + 1;
        match b.get(i) {
            Some(b'!') => {
                let end = if b[i..].starts_with(b"!--") {
                    find(b, i + 3, b"-->").map(|e| e + 3)
                } else {
                    memchr(b'>', &b[i..]).map(|e| i + e + 1)
                };
                i = end.unwrap_or(b.len());
            }
            Some(b'/') => {
                if b.get(i + 1).is_some_and(u8::is_ascii_alphabetic) {
                    let name = tag_name(b, i + 1);
                    if !is_in(name, VOID) && !is_in(name, IMPLIED) {
                        depth = depth.saturating_sub(1);
                    }
                }
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let name = tag_name(b, i);
                let Some(close) = memchr(b'>', &b[i..]).map(|e| i + e) else {
                    break;
                };
                let self_closing = b[close - 1] == b'/';
                i = close + 1;
                if is_in(name, RAW) && !self_closing {
                    // Skip to `</name`, ASCII case-insensitively.
                    let mut j = i;
                    loop {
                        match memchr(b'<', &b[j..]) {
                            Some(p) => {
                                j += p + 1;
                                let n = &b[j..];
                                if n.first() == Some(&b'/')
                                    && n.len() > name.len()
                                    && n[1..=name.len()].eq_ignore_ascii_case(name)
                                {
                                    break;
                                }
                            }
                            None => {
                                j = b.len();
                                break;
                            }
                        }
                    }
                    i = j;
                } else if !self_closing && !is_in(name, VOID) && !is_in(name, IMPLIED) {
                    depth += 1;
                    max = max.max(depth);
                }
            }
            _ => {}
        }
    }
    max
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

/// JSON-LD script texts and meta tags from the token stream, without a tree.
pub(crate) fn scan_tokens(html: &str) -> (Vec<String>, MetaTags) {
    let mut emitter = DefaultEmitter::default();
    // Script content as one string, not markup.
    emitter.naively_switch_states(true);
    let mut scripts = Vec::new();
    let mut meta = MetaTags::default();
    let mut in_ld_script = false;
    for token in Tokenizer::new_with_emitter(html, emitter) {
        let token = match token {
            Ok(token) => token,
            Err(never) => match never {},
        };
        match token {
            Token::StartTag(tag) => {
                let attr = |name: &str| {
                    tag.attributes
                        .get(name.as_bytes())
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                };
                let name = String::from_utf8_lossy(&tag.name).to_ascii_lowercase();
                if name == "script" {
                    in_ld_script = attr("type").is_some_and(|t| super::extract::is_ld_json(&t));
                    if in_ld_script {
                        scripts.push(String::new());
                    }
                } else if name == "meta" {
                    if let (Some(key), Some(content)) =
                        (attr("property").or_else(|| attr("name")), attr("content"))
                    {
                        meta.add(&key, &content);
                    }
                }
            }
            Token::String(s) if in_ld_script => {
                if let Some(last) = scripts.last_mut() {
                    last.push_str(&String::from_utf8_lossy(&s));
                }
            }
            Token::EndTag(tag) if tag.name.eq_ignore_ascii_case(b"script") => {
                in_ld_script = false;
            }
            _ => {}
        }
    }
    (scripts, meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_estimate() {
        assert_eq!(max_nesting(""), 0);
        assert_eq!(max_nesting("<div><div><span>x</span></div></div>"), 3);
        assert_eq!(max_nesting(&"<div>".repeat(50)), 50);
        // Void, self-closing, implied, comments, raw text and end tags do not add depth.
        let sloppy = "<ul><li>a<li>b<li>c</ul><p>x<p>y<br><img src=a><x/><!-- <div><div> -->\
                      <script>if (a<b) { '<div><div><div>' }</script><DIV></div>";
        assert_eq!(max_nesting(&sloppy.repeat(500)), 1);
        assert_eq!(max_nesting("<div"), 0);
    }

    #[test]
    fn token_scan_reads_scripts_and_meta() {
        let html = r#"<meta property="og:price:amount" content="5"><div><div>
            <script type="application/ld+json">{"a": "<div>"}</script>
            <script>var x = 1;</script>"#;
        let (scripts, meta) = scan_tokens(html);
        assert_eq!(scripts, [r#"{"a": "<div>"}"#]);
        assert_eq!(meta.offer().unwrap().price.as_deref(), Some("5"));
    }
}
