//! [`HostIndex`]: which site rules can match a URL, without running every regex.

use std::collections::HashMap;

use super::rules::SiteRule;

/// Rules indexed by the host their `match` pattern starts with, so a page runs only the
/// regexes that can match it. With one rule per site and thousands of sites, running every
/// regex would cost about a microsecond per rule per page (10 ms a page with 10,000 rules;
/// a `RegexSet` of that many does not even compile within regex's size limit).
///
/// For a pattern anchored with `^`, regex-syntax gives the literal prefixes every match
/// starts with (`^https?://shop-3\.localhost(:\d+)?/` → `http://shop-3.localhost`,
/// `https://shop-3.localhost`). When each has `://`, the text after it up to the first of
/// `:/?#@` (or the literal's end) is a prefix of the authority of any URL the pattern matches;
/// keyed by it in ASCII lower case, the rule is a candidate for a URL when one of its keys
/// begins the URL's authority. Candidates are then checked with the regex, so the index only
/// ever skips rules that cannot match. Other patterns (unanchored, case-insensitive scheme
/// variants beyond the extractor's limits, no `://` in the prefix) are candidates for every
/// URL.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostIndex {
    by_host_prefix: HashMap<String, Vec<usize>>,
    /// The longest key, to bound the lookups per URL.
    longest: usize,
    everywhere: Vec<usize>,
}

impl HostIndex {
    pub(crate) fn new(sites: &[SiteRule]) -> HostIndex {
        let mut index = HostIndex::default();
        for (i, site) in sites.iter().enumerate() {
            match host_prefixes(site.pattern.as_str()) {
                Some(keys) => {
                    for key in keys {
                        index.longest = index.longest.max(key.len());
                        let entry = index.by_host_prefix.entry(key).or_default();
                        if entry.last() != Some(&i) {
                            entry.push(i);
                        }
                    }
                }
                None => index.everywhere.push(i),
            }
        }
        index
    }

    /// Indices of the rules that may match `url`, ascending (file order).
    pub(crate) fn candidates(&self, url: &str) -> Vec<usize> {
        let mut out = self.everywhere.clone();
        if let Some(start) = url.find("://").map(|p| p + 3) {
            let rest = &url[start..];
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let mut cut = end.min(self.longest);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            let authority = rest[..cut].to_ascii_lowercase();
            for len in 1..=authority.len() {
                if !authority.is_char_boundary(len) {
                    continue;
                }
                if let Some(rules) = self.by_host_prefix.get(&authority[..len]) {
                    out.extend_from_slice(rules);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The authority prefixes of a start-anchored pattern (see [`HostIndex`]); `None` when the
/// pattern cannot be indexed.
fn host_prefixes(pattern: &str) -> Option<Vec<String>> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    use regex_syntax::hir::Look;

    let hir = regex_syntax::parse(pattern).ok()?;
    if !hir.properties().look_set_prefix().contains(Look::Start) {
        return None;
    }
    let seq = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    let mut keys = Vec::new();
    for literal in seq.literals()? {
        let text = std::str::from_utf8(literal.as_bytes()).ok()?;
        let after = &text[text.find("://")? + 3..];
        let host = match after.find([':', '/', '?', '#', '@']) {
            Some(p) if after.as_bytes()[p] == b'@' => return None,
            Some(p) => &after[..p],
            None => after,
        };
        if host.is_empty() {
            return None;
        }
        keys.push(host.to_ascii_lowercase());
    }
    if keys.is_empty() {
        return None;
    }
    keys.sort();
    keys.dedup();
    Some(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offer::Rules;

    #[test]
    fn host_prefixes_of_patterns() {
        let keys = |p: &str| host_prefixes(p);
        assert_eq!(
            keys(r"^https?://shop-3\.localhost(:\d+)?/"),
            Some(vec!["shop-3.localhost".to_string()])
        );
        assert_eq!(
            keys(r"^https://A\.example/p/"),
            Some(vec!["a.example".into()])
        );
        assert_eq!(
            keys(r"^https?://shop-\d+\.localhost/"),
            Some(vec!["shop-".into()])
        );
        assert_eq!(
            keys(r"^https://(a|b)\.example/"),
            Some(vec!["a.example".into(), "b.example".into()])
        );
        for unindexable in [
            "shop-3",
            r"https://a\.example/",
            r"(?m)^https://a/",
            r"^.*a\.example",
            r"^https?://",
            r"^http://user@host/",
            "",
        ] {
            assert_eq!(keys(unindexable), None, "{unindexable:?}");
        }
    }

    /// The index never hides a rule the regex would match: random patterns and URLs checked
    /// against running every regex.
    #[test]
    fn index_agrees_with_running_every_regex() {
        let patterns = [
            r"^https?://shop-3\.localhost(:\d+)?/",
            r"^https?://shop-33\.localhost(:\d+)?/",
            r"^https?://shop-\d+\.localhost",
            r"^https://(www\.)?a\.example/",
            r"^http://A\.example",
            r"(?i)^http://b\.example/",
            r"product/\d+$",
            r"^https?://[^/]*\.org/",
            r"^http://shop",
            r"^ftp://x/",
            "",
        ];
        let hosts = [
            "shop-3.localhost",
            "shop-33.localhost",
            "shop-3.localhost:8080",
            "SHOP-3.localhost",
            "a.example",
            "www.a.example",
            "A.example",
            "b.example",
            "B.EXAMPLE",
            "x.org",
            "shop@evil.com",
            "shöp-3.localhost",
            "x",
            "",
        ];
        let mut toml = String::new();
        for p in patterns {
            toml.push_str(&format!("[[site]]\nmatch = {p:?}\nprice = \".p\"\n"));
        }
        let rules = Rules::from_toml_str(&toml).unwrap();
        for scheme in ["http://", "https://", "ftp://", ""] {
            for host in hosts {
                for path in ["", "/", "/product/12", "?q=1", "#x"] {
                    let url = format!("{scheme}{host}{path}");
                    let fast: Vec<*const SiteRule> =
                        rules.matching(&url).map(|r| r as *const _).collect();
                    let slow: Vec<*const SiteRule> = rules
                        .sites()
                        .iter()
                        .filter(|s| s.pattern.is_match(&url))
                        .map(|r| r as *const _)
                        .collect();
                    assert_eq!(fast, slow, "{url}");
                }
            }
        }
        let index = HostIndex::new(rules.sites());
        // Not indexable: the unanchored pattern, the one whose host is a class, the empty one.
        assert_eq!(index.everywhere, [6, 7, 10], "{index:?}");
    }
}
