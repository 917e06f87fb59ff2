//! Each host's robots.txt, generated from the seed, and the matcher that decides what it
//! disallows for a crawler that follows the `User-agent: *` group.
//!
//! | share | robots.txt                                                                  |
//! |-------|-----------------------------------------------------------------------------|
//! | 15 %  | none (404)                                                                  |
//! | 5 %   | `Crawl-delay: 1`, `Disallow: /cart`                                         |
//! | 8 %   | `Disallow: /product/{j}$` for about half of the products `j` below 50       |
//! | 4 %   | `Disallow: /product/` with `Allow: /product/1` (longest match wins)         |
//! | 6 %   | `Disallow: /product/*5$` and `Disallow: /*?sort=` (wildcards)               |
//! | 4 %   | a `User-agent: BadBot` group with `Disallow: /`, and `Disallow: /private/`  |
//! | 58 %  | `Disallow: /cart` and `Disallow: /private/`                                 |
//!
//! Matching follows RFC 9309: the longest matching pattern wins, `Allow` wins a tie, `*`
//! matches any run of characters, a final `$` anchors at the end; the path includes the query.

use crate::demo::text::Rng;

const SALT_ROBOTS: u64 = 0x726f_626f;
/// Products above this index are never listed one by one (keeps the file small).
const LISTED_PRODUCTS: usize = 50;

/// One `Allow`/`Disallow` line of the `*` group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) allow: bool,
    pub(crate) pattern: String,
}

/// A host's robots.txt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Robots {
    /// The `User-agent: *` group.
    pub(crate) rules: Vec<Rule>,
    pub(crate) crawl_delay: bool,
    /// A `User-agent: BadBot` / `Disallow: /` group before ours.
    pub(crate) other_agent: bool,
}

fn rule(allow: bool, pattern: impl Into<String>) -> Rule {
    Rule {
        allow,
        pattern: pattern.into(),
    }
}

impl Robots {
    /// The robots.txt of `host`, or `None` when the host has none.
    pub(crate) fn of(seed: u64, host: usize, products: usize) -> Option<Robots> {
        let mut rng = Rng::new(seed ^ SALT_ROBOTS, host as u64);
        let mut robots = Robots {
            rules: Vec::new(),
            crawl_delay: false,
            other_agent: false,
        };
        let plain = [rule(false, "/cart"), rule(false, "/private/")];
        match rng.below(100) {
            0..15 => return None,
            15..20 => {
                robots.crawl_delay = true;
                robots.rules.push(rule(false, "/cart"));
            }
            20..28 => {
                for j in 0..products.min(LISTED_PRODUCTS) {
                    if rng.one_in(2) {
                        robots.rules.push(rule(false, format!("/product/{j}$")));
                    }
                }
                robots.rules.push(rule(false, "/cart"));
            }
            28..32 => {
                robots.rules.push(rule(false, "/product/"));
                robots.rules.push(rule(true, "/product/1"));
            }
            32..38 => {
                robots.rules.push(rule(false, "/product/*5$"));
                robots.rules.push(rule(false, "/*?sort="));
            }
            38..42 => {
                robots.other_agent = true;
                robots.rules.push(rule(false, "/private/"));
            }
            _ => robots.rules.extend(plain),
        }
        Some(robots)
    }

    /// The file as served.
    pub(crate) fn text(&self, host: usize) -> String {
        let mut out = format!("# robots.txt of shop-{host}.localhost (scraipe demo shop)\n");
        if self.other_agent {
            out.push_str("User-agent: BadBot\nDisallow: /\n\n");
        }
        out.push_str("User-agent: *\n");
        if self.crawl_delay {
            out.push_str("Crawl-delay: 1\n");
        }
        for r in &self.rules {
            out.push_str(if r.allow { "Allow: " } else { "Disallow: " });
            out.push_str(&r.pattern);
            out.push('\n');
        }
        out
    }

    /// Whether `path` (with its query, if any) is disallowed for the `*` group.
    pub(crate) fn disallows(&self, path: &str) -> bool {
        if path == "/robots.txt" {
            return false;
        }
        let mut best: Option<(usize, bool)> = None;
        for r in &self.rules {
            if matches(r.pattern.as_bytes(), path.as_bytes()) {
                let len = r.pattern.len();
                best = match best {
                    Some((l, allow)) if l > len || (l == len && allow) => Some((l, allow)),
                    _ => Some((len, r.allow)),
                };
            }
        }
        matches!(best, Some((_, false)))
    }
}

/// Whether a robots.txt pattern matches the start of `path` (or all of it, with a final `$`).
fn matches(pattern: &[u8], path: &[u8]) -> bool {
    let (pattern, anchored) = match pattern.split_last() {
        Some((b'$', rest)) => (rest, true),
        _ => (pattern, false),
    };
    // Classic glob matching with one backtrack point per `*`, prefix semantics unless anchored.
    let (mut p, mut s) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p == pattern.len() {
            if !anchored || s == path.len() {
                return true;
            }
        } else if pattern[p] == b'*' {
            star = Some((p, s));
            p += 1;
            continue;
        } else if s < path.len() && pattern[p] == path[s] {
            p += 1;
            s += 1;
            continue;
        }
        match star {
            Some((sp, ss)) if ss < path.len() => {
                star = Some((sp, ss + 1));
                p = sp + 1;
                s = ss + 1;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_matching() {
        assert!(matches(b"/cart", b"/cart/x"));
        assert!(!matches(b"/cart", b"/car"));
        assert!(matches(b"/product/3$", b"/product/3"));
        assert!(!matches(b"/product/3$", b"/product/33"));
        assert!(matches(b"/product/*5$", b"/product/125"));
        assert!(!matches(b"/product/*5$", b"/product/51"));
        assert!(matches(b"/*?sort=", b"/product/1?sort=asc"));
        assert!(!matches(b"/*?sort=", b"/product/1"));
        assert!(matches(b"/", b"/anything"));
        assert!(matches(b"*", b""));
    }

    #[test]
    fn longest_match_and_allow_ties() {
        let robots = Robots {
            rules: vec![rule(false, "/product/"), rule(true, "/product/1")],
            crawl_delay: false,
            other_agent: false,
        };
        assert!(robots.disallows("/product/0"));
        assert!(!robots.disallows("/product/1"));
        assert!(!robots.disallows("/product/17"));
        assert!(!robots.disallows("/"));
        let tie = Robots {
            rules: vec![rule(false, "/a"), rule(true, "/a")],
            ..robots
        };
        assert!(!tie.disallows("/a"));
    }

    #[test]
    fn every_variant_occurs() {
        let all: Vec<Option<Robots>> = (0..2000).map(|h| Robots::of(1, h, 3)).collect();
        assert!(all.iter().any(|r| r.is_none()));
        assert!(all.iter().flatten().any(|r| r.crawl_delay));
        assert!(all.iter().flatten().any(|r| r.other_agent));
        assert!(all.iter().flatten().any(|r| r.disallows("/product/0")));
        assert!(all
            .iter()
            .flatten()
            .any(|r| r.rules.iter().any(|r| r.allow)));
    }
}
