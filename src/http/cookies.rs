//! A cookie jar after RFC 6265: `Set-Cookie` parsed with its Domain, Path, Expires, Max-Age and
//! Secure rules, and the `Cookie` header built for each request.
//!
//! Small on purpose (the `cookie_store` crate would bring a date library and a public-suffix
//! list). Without a public-suffix list, a `Domain` attribute without a dot (`Domain=com`) is
//! refused unless it is the request's own host; `Domain=co.uk` is accepted (as in RFC 6265
//! without §5.3 step 5). Limits keep a hostile site from filling memory: 4 KiB per cookie,
//! 50 cookies per domain (oldest dropped), 3,000 domains (the jar forgets the least recent).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use url::Url;

use crate::http::httpdate;

const MAX_COOKIE_BYTES: usize = 4096;
const MAX_PER_DOMAIN: usize = 50;
const MAX_DOMAINS: usize = 3000;

#[derive(Debug, Clone)]
struct Cookie {
    name: String,
    value: String,
    host_only: bool,
    path: String,
    secure: bool,
    expires: Option<SystemTime>,
}

#[derive(Default)]
struct Domain {
    cookies: Vec<Cookie>,
    /// Use counter value when last set or read (for forgetting the least recent domain).
    used: u64,
}

/// Cookies by the domain they belong to (lower case, no leading dot).
#[derive(Default)]
pub(crate) struct CookieJar {
    inner: Mutex<(HashMap<String, Domain>, u64)>,
}

impl CookieJar {
    pub(crate) fn new() -> CookieJar {
        CookieJar::default()
    }

    /// Stores the cookies of `Set-Cookie` values received from `url`.
    pub(crate) fn store<'a>(&self, url: &Url, set_cookies: impl Iterator<Item = &'a str>) {
        let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
            return;
        };
        let now = SystemTime::now();
        let mut guard = self.inner.lock();
        let (domains, clock) = &mut *guard;
        for line in set_cookies {
            let Some((domain, cookie)) = parse_set_cookie(line, url, &host, now) else {
                continue;
            };
            *clock += 1;
            if !domains.contains_key(&domain) && domains.len() >= MAX_DOMAINS {
                if let Some(oldest) = domains
                    .iter()
                    .min_by_key(|(_, d)| d.used)
                    .map(|(k, _)| k.clone())
                {
                    domains.remove(&oldest);
                }
            }
            let entry = domains.entry(domain.clone()).or_default();
            entry.used = *clock;
            entry
                .cookies
                .retain(|c| !(c.name == cookie.name && c.path == cookie.path));
            let expired = cookie.expires.is_some_and(|e| e <= now);
            if !expired {
                if entry.cookies.len() >= MAX_PER_DOMAIN {
                    entry.cookies.remove(0);
                }
                entry.cookies.push(cookie);
            }
            if entry.cookies.is_empty() {
                domains.remove(&domain);
            }
        }
    }

    /// The `Cookie` header value for a request to `url`, if any cookie applies.
    pub(crate) fn header_for(&self, url: &Url) -> Option<String> {
        let host = url.host_str()?.to_ascii_lowercase();
        let secure = url.scheme() == "https";
        let path = url.path();
        let now = SystemTime::now();
        let mut guard = self.inner.lock();
        let (domains, clock) = &mut *guard;
        if domains.is_empty() {
            return None;
        }
        let mut found: Vec<&Cookie> = Vec::new();
        let is_ip = crate::rt::net::ip_literal(&host).is_some();
        let mut suffix = host.as_str();
        loop {
            if let Some(d) = domains.get_mut(suffix) {
                *clock += 1;
                d.used = *clock;
                d.cookies.retain(|c| c.expires.is_none_or(|e| e > now));
            }
            if is_ip {
                break;
            }
            match suffix.split_once('.') {
                Some((_, rest)) if !rest.is_empty() => suffix = rest,
                _ => break,
            }
        }
        let mut suffix = host.as_str();
        loop {
            if let Some(d) = domains.get(suffix) {
                let exact = suffix == host;
                found.extend(d.cookies.iter().filter(|c| {
                    (exact || !c.host_only) && (!c.secure || secure) && path_matches(path, &c.path)
                }));
            }
            if is_ip {
                break;
            }
            match suffix.split_once('.') {
                Some((_, rest)) if !rest.is_empty() => suffix = rest,
                _ => break,
            }
        }
        if found.is_empty() {
            return None;
        }
        // Longer paths first (RFC 6265 §5.4 step 2); the sort is stable, so older cookies
        // stay before newer ones of the same path length.
        found.sort_by_key(|c| std::cmp::Reverse(c.path.len()));
        let mut header = String::new();
        for c in found {
            if !header.is_empty() {
                header.push_str("; ");
            }
            header.push_str(&c.name);
            header.push('=');
            header.push_str(&c.value);
        }
        Some(header)
    }
}

/// RFC 6265 §5.2: one `Set-Cookie` value → (domain it is stored under, cookie).
fn parse_set_cookie(
    line: &str,
    url: &Url,
    host: &str,
    now: SystemTime,
) -> Option<(String, Cookie)> {
    if line.len() > MAX_COOKIE_BYTES {
        return None;
    }
    let mut parts = line.split(';');
    let (name, value) = parts.next()?.split_once('=')?;
    let (name, value) = (name.trim(), value.trim());
    if name.is_empty() || !is_cookie_text(name) || !is_cookie_text(value) {
        return None;
    }
    let mut cookie = Cookie {
        name: name.to_string(),
        value: value.to_string(),
        host_only: true,
        path: default_path(url.path()),
        secure: false,
        expires: None,
    };
    let mut domain = host.to_string();
    let mut max_age: Option<SystemTime> = None;
    for attr in parts {
        let (key, val) = attr.split_once('=').unwrap_or((attr, ""));
        let (key, val) = (key.trim().to_ascii_lowercase(), val.trim());
        match key.as_str() {
            "expires" => {
                if let Some(t) = httpdate::parse(val) {
                    cookie.expires = Some(t);
                }
            }
            "max-age" => {
                if let Ok(secs) = val.parse::<i64>() {
                    max_age = Some(if secs <= 0 {
                        SystemTime::UNIX_EPOCH
                    } else {
                        now.checked_add(Duration::from_secs(secs as u64))
                            .unwrap_or(now + Duration::from_secs(86400 * 365 * 100))
                    });
                }
            }
            "domain" => {
                let d = val.trim_start_matches('.').to_ascii_lowercase();
                if d.is_empty() {
                    continue;
                }
                if !domain_matches(host, &d) {
                    return None;
                }
                // No public-suffix list: at least refuse a bare top-level domain.
                if d != host && !d.contains('.') {
                    return None;
                }
                cookie.host_only = d == host;
                domain = d;
            }
            "path" if val.starts_with('/') => cookie.path = val.to_string(),
            "secure" => cookie.secure = true,
            _ => {}
        }
    }
    if max_age.is_some() {
        cookie.expires = max_age;
    }
    // A plain-http page may not set (or overwrite) Secure cookies (RFC 6265bis §5.6 step 13).
    if cookie.secure && url.scheme() != "https" {
        return None;
    }
    Some((domain, cookie))
}

fn is_cookie_text(s: &str) -> bool {
    s.bytes().all(|b| b >= 0x20 && b != 0x7f)
}

/// RFC 6265 §5.1.3.
fn domain_matches(host: &str, domain: &str) -> bool {
    host == domain
        || (host.ends_with(domain)
            && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
            && crate::rt::net::ip_literal(host).is_none())
}

/// RFC 6265 §5.1.4: the directory of the request path.
fn default_path(path: &str) -> String {
    match path.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => path[..i].to_string(),
    }
}

/// RFC 6265 §5.1.4 path-match.
fn path_matches(request: &str, cookie: &str) -> bool {
    request == cookie
        || (request.starts_with(cookie)
            && (cookie.ends_with('/') || request.as_bytes().get(cookie.len()) == Some(&b'/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn domain_path_secure_and_expiry_rules() {
        let jar = CookieJar::new();
        let page = url("http://www.example.com/shop/cart");
        jar.store(
            &page,
            [
                "host=1",
                "wide=2; Domain=.Example.com; Path=/",
                "shop=3; Path=/shop",
                "other=4; Domain=evil.com",
                "tld=5; Domain=com",
                "sec=6; Secure",
                "gone=7; Max-Age=0",
                "old=8; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
                "later=9; Max-Age=60; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            ]
            .into_iter(),
        );
        assert_eq!(
            jar.header_for(&url("http://www.example.com/shop/x"))
                .as_deref(),
            Some("host=1; shop=3; later=9; wide=2")
        );
        assert_eq!(
            jar.header_for(&url("http://api.example.com/shop"))
                .as_deref(),
            Some("wide=2")
        );
        assert_eq!(
            jar.header_for(&url("http://www.example.com/shopping"))
                .as_deref(),
            Some("wide=2")
        );
        assert_eq!(jar.header_for(&url("http://evil.com/")), None);
        // Replaced, then deleted by Max-Age=0.
        jar.store(&page, ["host=new"].into_iter());
        assert!(jar.header_for(&page).unwrap().contains("host=new"));
        jar.store(&page, ["host=x; Max-Age=0"].into_iter());
        assert!(!jar.header_for(&page).unwrap().contains("host="));

        let secure = url("https://www.example.com/");
        jar.store(
            &secure,
            ["s=1; Secure".to_string()].iter().map(String::as_str),
        );
        assert!(jar.header_for(&secure).unwrap().contains("s=1"));
        assert!(!jar
            .header_for(&url("http://www.example.com/"))
            .unwrap()
            .contains("s=1"));
    }

    #[test]
    fn hostile_cookies_are_bounded() {
        let jar = CookieJar::new();
        let page = url("http://a.test/");
        let many: Vec<String> = (0..500).map(|i| format!("c{i}=v")).collect();
        jar.store(&page, many.iter().map(String::as_str));
        let header = jar.header_for(&page).unwrap();
        assert_eq!(header.matches('=').count(), MAX_PER_DOMAIN);
        assert!(header.contains("c499=v") && !header.contains("c0=v"));
        let huge = format!("big={}", "x".repeat(10_000));
        jar.store(&page, [huge.as_str(), "bad\u{1}=x", "=novalue"].into_iter());
        assert!(!jar.header_for(&page).unwrap().contains("big="));
    }
}
