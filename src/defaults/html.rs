//! [`html_to_text`]: the visible text of an HTML document, for the text scraper.

use html5gum::{DefaultEmitter, Token, Tokenizer};

/// Elements whose content is never shown as text.
const HIDDEN: &[&str] = &[
    "script", "style", "head", "title", "noscript", "template", "iframe", "object", "svg", "math",
    "canvas",
];

/// Elements that start and end a line of text when rendered.
const BLOCK: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "br",
    "caption",
    "center",
    "dd",
    "details",
    "dialog",
    "dir",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hgroup",
    "hr",
    "html",
    "legend",
    "li",
    "listing",
    "main",
    "menu",
    "nav",
    "ol",
    "option",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "textarea",
    "tfoot",
    "thead",
    "tr",
    "ul",
    "xmp",
];

/// Elements whose neighbours are separated by a space (table cells).
const CELL: &[&str] = &["td", "th"];

/// Elements that never have content or an end tag.
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

/// Builds lines of text: whitespace runs collapse to one space, blank lines are dropped.
#[derive(Default)]
struct Lines {
    out: String,
    line: String,
    pending_space: bool,
}

impl Lines {
    fn text(&mut self, text: &str, preformatted: bool) {
        for c in text.chars() {
            if preformatted && c == '\n' {
                self.newline();
            } else if c.is_whitespace() {
                self.pending_space = true;
            } else {
                if self.pending_space && !self.line.is_empty() {
                    self.line.push(' ');
                }
                self.pending_space = false;
                self.line.push(c);
            }
        }
    }

    fn space(&mut self) {
        self.pending_space = true;
    }

    fn newline(&mut self) {
        if !self.line.is_empty() {
            if !self.out.is_empty() {
                self.out.push('\n');
            }
            self.out.push_str(&self.line);
            self.line.clear();
        }
        self.pending_space = false;
    }

    fn finish(mut self) -> String {
        self.newline();
        self.out
    }
}

/// The visible text of an HTML document.
///
/// * Hidden content is skipped: `script`, `style`, `head` (and `title`), `noscript`,
///   `template`, `iframe`, `object`, `svg`, `math`, `canvas`, comments and the doctype.
/// * Block elements (`p`, `div`, `li`, `h1`, `tr`, `br`...) start a new line; table cells are
///   separated by a space.
/// * Runs of whitespace collapse to one space (in `pre`, newlines are kept as line breaks);
///   lines are trimmed and blank ones dropped.
/// * Character references are decoded (`&amp;`, `&eacute;`, `&#x1F600;`...).
///
/// Tokenised by html5gum (a WHATWG-compliant tokenizer), so malformed markup never fails:
/// unclosed elements, stray end tags and bad references degrade gracefully.
///
/// Python Scraipe's `TextScraper` uses BeautifulSoup's `get_text()`, which keeps script and
/// style text and glues block elements together; this is the cleaner extraction the issue
/// asks for.
///
/// ```
/// use scraipe::defaults::html_to_text;
/// let html = r#"<html><head><title>T</title><style>p{color:red}</style></head>
/// <body><h1>Fish &amp; Chips</h1><p>Served   hot,
///    daily.<br>Since 1923</p><script>var x = "<p>no</p>";</script>
/// <ul><li>Cod</li><li>Haddock</li></ul></body></html>"#;
/// assert_eq!(html_to_text(html), "Fish & Chips\nServed hot, daily.\nSince 1923\nCod\nHaddock");
/// ```
pub fn html_to_text(html: &str) -> String {
    let mut emitter = DefaultEmitter::default();
    // Switch to raw text / script data after <script>, <style>... so their content is one
    // string and not parsed as markup.
    emitter.naively_switch_states(true);
    let mut lines = Lines::default();
    // Open hidden elements, innermost last.
    let mut hidden: Vec<String> = Vec::new();
    let mut pre_depth = 0usize;

    for token in Tokenizer::new_with_emitter(html, emitter) {
        let token = match token {
            Ok(token) => token,
            Err(never) => match never {},
        };
        match token {
            Token::StartTag(tag) => {
                let name = String::from_utf8_lossy(&tag.name).to_ascii_lowercase();
                if name == "body" {
                    // A body start ends any head left open.
                    hidden.clear();
                }
                if !hidden.is_empty() {
                    if HIDDEN.contains(&name.as_str())
                        && !tag.self_closing
                        && !VOID.contains(&name.as_str())
                    {
                        hidden.push(name);
                    }
                    continue;
                }
                if HIDDEN.contains(&name.as_str()) {
                    if !tag.self_closing {
                        hidden.push(name);
                    }
                    continue;
                }
                if BLOCK.contains(&name.as_str()) {
                    lines.newline();
                } else if CELL.contains(&name.as_str()) {
                    lines.space();
                }
                if name == "pre" && !tag.self_closing {
                    pre_depth += 1;
                }
            }
            Token::EndTag(tag) => {
                let name = String::from_utf8_lossy(&tag.name).to_ascii_lowercase();
                if let Some(pos) = hidden.iter().rposition(|h| *h == name) {
                    hidden.truncate(pos);
                    continue;
                }
                if !hidden.is_empty() {
                    continue;
                }
                if BLOCK.contains(&name.as_str()) {
                    lines.newline();
                } else if CELL.contains(&name.as_str()) {
                    lines.space();
                }
                if name == "pre" {
                    pre_depth = pre_depth.saturating_sub(1);
                }
            }
            Token::String(text) => {
                if hidden.is_empty() {
                    lines.text(&String::from_utf8_lossy(&text.value), pre_depth > 0);
                }
            }
            Token::Comment(_) | Token::Doctype(_) | Token::Error(_) => {}
        }
    }
    lines.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_passes_through_collapsed() {
        assert_eq!(html_to_text("  hello \t\n  world  "), "hello world");
        assert_eq!(html_to_text(""), "");
        assert_eq!(html_to_text("<p>\n\n</p><div> </div>"), "");
    }

    #[test]
    fn hidden_content_is_skipped() {
        let html = "<head><meta charset=utf-8><title>Title</title>\
                    <script>if (a < b && c > d) { document.write('<p>x</p>') }</script></head>\
                    <body>Visible<noscript>Enable JS</noscript><template><p>tpl</p></template>\
                    <style>.a{}</style> text</body>";
        assert_eq!(html_to_text(html), "Visible text");
    }

    #[test]
    fn missing_head_end_tag_is_closed_by_body() {
        assert_eq!(
            html_to_text("<head><title>T</title><body><p>shown</p>"),
            "shown"
        );
    }

    #[test]
    fn blocks_make_lines_and_inline_does_not() {
        let html = "<div>one<span>two</span> <b>three</b></div><p>four</p>five<br/>six<hr>seven";
        assert_eq!(html_to_text(html), "onetwo three\nfour\nfive\nsix\nseven");
    }

    #[test]
    fn tables_put_rows_on_lines_and_cells_apart() {
        let html = "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>";
        assert_eq!(html_to_text(html), "a b\n1 2");
    }

    #[test]
    fn entities_are_decoded() {
        assert_eq!(
            html_to_text(
                "<p>&lt;tag&gt; &amp; &eacute;t&eacute; &#x1F600; &#233; &nbsp;x&copy</p>"
            ),
            "<tag> & été 😀 é x©"
        );
    }

    #[test]
    fn pre_keeps_line_breaks() {
        assert_eq!(
            html_to_text("<pre>line 1\nline   2\n\nline 3</pre>after"),
            "line 1\nline 2\nline 3\nafter"
        );
    }

    #[test]
    fn malformed_markup_does_not_fail() {
        assert_eq!(
            html_to_text("<p>unclosed <b>bold <i>both</p></div></div>tail"),
            "unclosed bold both\ntail"
        );
        assert_eq!(html_to_text("<<>>&&;;<p"), "<<>>&&;;");
        assert_eq!(html_to_text("<script>never closed <p>hidden"), "");
        assert_eq!(html_to_text("a <!-- comment --> b <!DOCTYPE html>"), "a b");
    }

    #[test]
    fn non_ascii_survives() {
        assert_eq!(
            html_to_text("<p>日本語</p><p>Ünïcödé — “quotes”</p>"),
            "日本語\nÜnïcödé — “quotes”"
        );
    }
}
