//! robots.txt (RFC 9309, with Google's documented behaviour): the groups for our user agent,
//! else `*`; `Allow`/`Disallow` with `*` and `$` wildcards, the longest matching rule winning
//! (`Allow` on a tie); `Crawl-delay` (not in the RFC; honoured as per-host spacing).
//!
//! ```
//! use scraipe::monitor::robots::Robots;
//! let robots = Robots::parse("User-agent: *\nDisallow: /private\nAllow: /private/ok$\nCrawl-delay: 2", "scraipe");
//! assert!(!robots.allows("/private/x"));
//! assert!(robots.allows("/private/ok"));
//! assert!(!robots.allows("/private/ok/more"));
//! assert!(robots.allows("/public"));
//! assert_eq!(robots.crawl_delay(), Some(std::time::Duration::from_secs(2)));
//! ```

use std::time::Duration;

/// Largest robots.txt read (Google reads 500 KiB and ignores the rest).
pub const MAX_ROBOTS_BYTES: usize = 500 * 1024;

/// The longest `Crawl-delay` honoured (a typo of `86400` should not stop a host for a day).
pub const MAX_CRAWL_DELAY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    allow: bool,
    pattern: String,
}

/// The rules that apply to one user agent on one origin.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Robots {
    rules: Vec<Rule>,
    crawl_delay: Option<Duration>,
    disallow_all: bool,
}

/// The product token of a User-Agent string: `MyBot/1.2 (+https://...)` → `mybot`.
pub fn product_token(user_agent: &str) -> String {
    user_agent
        .split(|c: char| c == '/' || c.is_whitespace())
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

impl Robots {
    /// Everything allowed (no robots.txt, or a 4xx answer).
    pub fn allow_all() -> Robots {
        Robots::default()
    }

    /// Nothing allowed (robots.txt unreachable or 5xx, for a while).
    pub fn disallow_all() -> Robots {
        Robots {
            disallow_all: true,
            ..Robots::default()
        }
    }

    /// Parses `text` for the agent whose product token is `agent` (see [`product_token`]).
    /// Groups naming the agent (the longest matching name wins; several groups with that name
    /// are merged) apply; otherwise the `*` groups; otherwise nothing is disallowed.
    pub fn parse(text: &str, agent: &str) -> Robots {
        let agent = agent.to_ascii_lowercase();
        let text = match text.len() > MAX_ROBOTS_BYTES {
            true => {
                let mut end = MAX_ROBOTS_BYTES;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                &text[..end]
            }
            false => text,
        };
        // Groups: (user agents, rules, crawl delay).
        let mut groups: Vec<(Vec<String>, Vec<Rule>, Option<Duration>)> = Vec::new();
        let mut in_agents = false;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim();
            match key.as_str() {
                "user-agent" => {
                    if !in_agents {
                        groups.push((Vec::new(), Vec::new(), None));
                        in_agents = true;
                    }
                    if let Some(g) = groups.last_mut() {
                        g.0.push(value.to_ascii_lowercase());
                    }
                }
                "allow" | "disallow" => {
                    in_agents = false;
                    // An empty Disallow means "nothing disallowed": no rule.
                    if let (Some(g), false) = (groups.last_mut(), value.is_empty()) {
                        g.1.push(Rule {
                            allow: key == "allow",
                            pattern: value.to_string(),
                        });
                    }
                }
                "crawl-delay" => {
                    in_agents = false;
                    let delay = value
                        .parse::<f64>()
                        .ok()
                        .filter(|d| d.is_finite() && *d >= 0.0)
                        .map(|d| Duration::from_secs_f64(d).min(MAX_CRAWL_DELAY));
                    if let (Some(g), Some(d)) = (groups.last_mut(), delay) {
                        g.2 = Some(d);
                    }
                }
                _ => {} // sitemap and unknown lines do not end a group
            }
        }
        let matches = |name: &str| name != "*" && !name.is_empty() && agent.starts_with(name);
        let best = groups
            .iter()
            .flat_map(|g| g.0.iter())
            .filter(|n| matches(n))
            .map(|n| n.len())
            .max();
        let chosen: Vec<_> = match best {
            Some(len) => groups
                .iter()
                .filter(|g| g.0.iter().any(|n| matches(n) && n.len() == len))
                .collect(),
            None => groups
                .iter()
                .filter(|g| g.0.iter().any(|n| n == "*"))
                .collect(),
        };
        let mut robots = Robots::default();
        for g in chosen {
            robots.rules.extend(g.1.iter().cloned());
            if g.2.is_some() {
                robots.crawl_delay = g.2;
            }
        }
        robots
    }

    /// Whether the path (with its query) may be fetched. `/robots.txt` always may.
    pub fn allows(&self, path: &str) -> bool {
        if path == "/robots.txt" {
            return true;
        }
        if self.disallow_all {
            return false;
        }
        let mut best: Option<(usize, bool)> = None;
        for rule in &self.rules {
            if pattern_matches(&rule.pattern, path) {
                let len = rule.pattern.len();
                best = match best {
                    Some((l, allow)) if l > len || (l == len && allow) => Some((l, allow)),
                    _ => Some((len, rule.allow)),
                };
            }
        }
        best.is_none_or(|(_, allow)| allow)
    }

    /// The `Crawl-delay` of the group that applies (capped at [`MAX_CRAWL_DELAY`]).
    pub fn crawl_delay(&self) -> Option<Duration> {
        self.crawl_delay
    }
}

/// Whether a robots pattern matches the start of `path`: `*` matches any run of characters,
/// a final `$` anchors at the end.
fn pattern_matches(pattern: &str, path: &str) -> bool {
    let (pattern, anchored) = match pattern.strip_suffix('$') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let p = pattern.as_bytes();
    let s = path.as_bytes();
    // Greedy wildcard matching with backtracking to the last `*` (linear in practice).
    let (mut i, mut j) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if i == p.len() {
            if !anchored || j == s.len() {
                return true;
            }
        } else if p[i] == b'*' {
            star = Some((i, j));
            i += 1;
            continue;
        } else if j < s.len() && p[i] == s[j] {
            i += 1;
            j += 1;
            continue;
        }
        // Mismatch (or anchored end not reached): let the last `*` swallow one more byte.
        match star {
            Some((si, sj)) if sj < s.len() => {
                star = Some((si, sj + 1));
                i = si + 1;
                j = sj + 1;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_anchors() {
        assert!(pattern_matches("/", "/anything"));
        assert!(pattern_matches("/fish", "/fish.html"));
        assert!(!pattern_matches("/fish", "/Fish"));
        assert!(pattern_matches("/*.php", "/folder/index.php?x=1"));
        assert!(pattern_matches("/*.php$", "/index.php"));
        assert!(!pattern_matches("/*.php$", "/index.php?x"));
        assert!(pattern_matches("/fish*", "/fish"));
        assert!(pattern_matches("*/private", "/a/b/private/c"));
        assert!(!pattern_matches("/a*b*c$", "/a-b-c-d"));
        assert!(pattern_matches("/a*b*c$", "/a-b-cxc"));
    }

    #[test]
    fn longest_match_wins_and_allow_wins_ties() {
        let r = Robots::parse(
            "user-agent: *\ndisallow: /shop\nallow: /shop/products\ndisallow: /shop/products/secret\nallow: /page\ndisallow: /page",
            "scraipe",
        );
        assert!(!r.allows("/shop/cart"));
        assert!(r.allows("/shop/products/1"));
        assert!(!r.allows("/shop/products/secret-sale"));
        assert!(r.allows("/page"));
        assert!(r.allows("/other"));
        assert!(r.allows("/robots.txt"));
    }

    #[test]
    fn our_group_beats_star_and_groups_merge() {
        let text = "User-agent: *\nDisallow: /\n\nUser-agent: other\nDisallow: /x\n\n\
                    User-agent: scraipe\nUser-agent: friend\nDisallow: /nope\nCrawl-delay: 1.5\n\n\
                    User-agent: Scraipe\nDisallow: /also\n";
        let r = Robots::parse(text, &product_token("scraipe/0.1.0"));
        assert!(r.allows("/product/1"));
        assert!(!r.allows("/nope"));
        assert!(!r.allows("/also/x"));
        assert_eq!(r.crawl_delay(), Some(Duration::from_millis(1500)));
        let star = Robots::parse(text, "somebot");
        assert!(!star.allows("/product/1"));
        assert_eq!(star.crawl_delay(), None);
    }

    #[test]
    fn odd_files_do_not_break_parsing() {
        assert!(Robots::parse("", "x").allows("/a"));
        assert!(
            Robots::parse("Disallow: /\n", "x").allows("/a"),
            "rules before any group"
        );
        let r = Robots::parse("User-agent: *\nDisallow:\nCrawl-delay: soon\n", "x");
        assert!(r.allows("/a"));
        assert_eq!(r.crawl_delay(), None);
        assert!(!Robots::disallow_all().allows("/a"));
        assert!(Robots::disallow_all().allows("/robots.txt"));
        let big = format!(
            "User-agent: *\n{}Disallow: /late\n",
            "# x\n".repeat(200_000)
        );
        assert!(
            Robots::parse(&big, "x").allows("/late"),
            "past 500 KiB is ignored"
        );
    }

    #[test]
    fn product_tokens() {
        assert_eq!(product_token("MyBot/1.2 (+https://example.com)"), "mybot");
        assert_eq!(product_token("scraipe"), "scraipe");
    }
}
