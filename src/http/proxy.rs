//! HTTP forward proxies: `http://` requests in absolute form through the proxy, `https://` ones
//! through a `CONNECT` tunnel; credentials in the proxy URL become `Proxy-Authorization`; the
//! environment (`http_proxy`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`, ...) read as curl reads it.

use std::fmt;
use std::net::IpAddr;

use url::Url;

use crate::http::error::{Error, ErrorKind};

/// An HTTP proxy, and the hosts that bypass it.
///
/// ```
/// use scraipe::http::{Client, Proxy};
/// let proxy = Proxy::parse("http://user:secret@proxy.internal:3128")
///     .unwrap()
///     .no_proxy("localhost, .corp.example, 10.0.0.0/8");
/// assert_eq!(proxy.to_string(), "http://proxy.internal:3128"); // no credentials in logs
/// let client = Client::builder().proxy(proxy).build().unwrap();
/// # let _ = client;
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    kind: ProxyKind,
    host: String,
    port: u16,
    /// `Basic ...` for `Proxy-Authorization`, from the URL's credentials.
    authorization: Option<String>,
    /// The same credentials, decoded, for SOCKS5 username/password authentication.
    credentials: Option<(String, String)>,
    bypass: NoProxy,
}

/// How a proxy is spoken to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProxyKind {
    /// An HTTP forward proxy (absolute-form requests, CONNECT for https).
    Http,
    /// SOCKS5 (RFC 1928); `remote_dns`: the proxy resolves names (`socks5h://`).
    Socks5 { remote_dns: bool },
}

impl Proxy {
    /// Parses a proxy URL: `http://[user:password@]host[:port]` (port 1080 when omitted, as
    /// curl; no scheme means `http://`), `socks5://` (names resolved here) or `socks5h://`
    /// (names resolved by the proxy), with optional username/password. `https://` proxies are
    /// refused.
    pub fn parse(url: &str) -> Result<Proxy, Error> {
        let url = url.trim();
        let with_scheme = if url.contains("://") {
            url.to_string()
        } else {
            format!("http://{url}")
        };
        let bad = |why: String| {
            Error::new(
                ErrorKind::InvalidUrl,
                format!("unusable proxy {:?}: {why}", redact(url)),
            )
        };
        let parsed = Url::parse(&with_scheme).map_err(|e| bad(e.to_string()))?;
        let kind = match parsed.scheme() {
            "http" => ProxyKind::Http,
            "socks5" => ProxyKind::Socks5 { remote_dns: false },
            "socks5h" => ProxyKind::Socks5 { remote_dns: true },
            other => {
                return Err(bad(format!(
                    "the {other:?} scheme is not supported (http://, socks5:// or socks5h://)"
                )))
            }
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host".into()))?;
        let credentials = if parsed.username().is_empty() && parsed.password().is_none() {
            None
        } else {
            let user = percent_decode(parsed.username());
            let pass = percent_decode(parsed.password().unwrap_or(""));
            if kind != ProxyKind::Http && (user.len() > 255 || pass.len() > 255) {
                return Err(bad("SOCKS5 credentials are at most 255 bytes each".into()));
            }
            Some((user, pass))
        };
        Ok(Proxy {
            kind,
            host: host.to_string(),
            port: parsed.port().unwrap_or(1080),
            authorization: credentials.as_ref().map(|(u, p)| basic_auth(u, p)),
            credentials,
            bypass: NoProxy::default(),
        })
    }

    /// Hosts reached directly, in `NO_PROXY` syntax: comma- or space-separated names (each also
    /// covers its subdomains; a leading dot is ignored), IP addresses, CIDR blocks, or `*`.
    pub fn no_proxy(mut self, list: &str) -> Proxy {
        self.bypass = NoProxy::parse(list);
        self
    }

    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn authorization(&self) -> Option<&str> {
        self.authorization.as_deref()
    }

    pub(crate) fn kind(&self) -> ProxyKind {
        self.kind
    }

    pub(crate) fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// An HTTP proxy, to which `http://` requests are sent in absolute form.
    pub(crate) fn is_http(&self) -> bool {
        self.kind == ProxyKind::Http
    }

    /// Whether a request to `host` goes through this proxy.
    pub(crate) fn applies_to(&self, host: &str) -> bool {
        !self.bypass.matches(host)
    }
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.kind {
            ProxyKind::Http => "http",
            ProxyKind::Socks5 { remote_dns: false } => "socks5",
            ProxyKind::Socks5 { remote_dns: true } => "socks5h",
        };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("url", &self.to_string())
            .field("credentials", &self.authorization.is_some())
            .finish()
    }
}

/// Which proxy, if any, each scheme uses.
#[derive(Clone, Debug, Default)]
pub(crate) struct Proxies {
    pub(crate) http: Option<Proxy>,
    pub(crate) https: Option<Proxy>,
}

impl Proxies {
    /// The same proxy for both schemes.
    pub(crate) fn all(proxy: Proxy) -> Proxies {
        Proxies {
            http: Some(proxy.clone()),
            https: Some(proxy),
        }
    }

    /// From the environment as curl reads it: `http_proxy` (lower case only: a web server's
    /// CGI sets `HTTP_PROXY` from a request's `Proxy:` header, "httpoxy"), `https_proxy` or
    /// `HTTPS_PROXY`, then `all_proxy` or `ALL_PROXY` for either; `no_proxy` or `NO_PROXY` lists
    /// the hosts reached directly (nothing is bypassed unless it says so). An unusable value
    /// is an error rather than a silent direct connection.
    pub(crate) fn from_env() -> Result<Proxies, Error> {
        Proxies::from_vars(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Proxies, Error> {
        let all = var("all_proxy").or_else(|| var("ALL_PROXY"));
        let http = var("http_proxy").or_else(|| all.clone());
        let https = var("https_proxy").or_else(|| var("HTTPS_PROXY")).or(all);
        let bypass = var("no_proxy")
            .or_else(|| var("NO_PROXY"))
            .unwrap_or_default();
        let make = |v: Option<String>| -> Result<Option<Proxy>, Error> {
            v.map(|v| Proxy::parse(&v).map(|p| p.no_proxy(&bypass)))
                .transpose()
        };
        Ok(Proxies {
            http: make(http)?,
            https: make(https)?,
        })
    }

    /// The proxy for a request to `url`, if it uses one.
    pub(crate) fn for_url(&self, https: bool, host: &str) -> Option<&Proxy> {
        let proxy = if https { &self.https } else { &self.http };
        proxy.as_ref().filter(|p| p.applies_to(host))
    }
}

/// A parsed `NO_PROXY` list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct NoProxy {
    all: bool,
    names: Vec<String>,
    nets: Vec<(IpAddr, u8)>,
}

impl NoProxy {
    fn parse(list: &str) -> NoProxy {
        let mut out = NoProxy::default();
        for entry in list
            .split([',', ' '])
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            if entry == "*" {
                out.all = true;
            } else if let Some((ip, bits)) = entry.split_once('/') {
                if let (Some(ip), Ok(bits)) = (crate::rt::net::ip_literal(ip), bits.parse()) {
                    out.nets.push((ip, bits));
                }
            } else if let Some(ip) = crate::rt::net::ip_literal(entry) {
                out.nets.push((ip, if ip.is_ipv4() { 32 } else { 128 }));
            } else {
                out.names.push(
                    entry
                        .trim_start_matches('.')
                        .trim_end_matches('.')
                        .to_ascii_lowercase(),
                );
            }
        }
        out
    }

    fn matches(&self, host: &str) -> bool {
        if self.all {
            return true;
        }
        if let Some(ip) = crate::rt::net::ip_literal(host) {
            return self.nets.iter().any(|&(net, bits)| in_net(ip, net, bits));
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.names.iter().any(|n| {
            host == *n
                || (host.len() > n.len()
                    && host.ends_with(n.as_str())
                    && host.as_bytes()[host.len() - n.len() - 1] == b'.')
        })
    }
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let bits = u32::from(bits.min(32));
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let bits = u32::from(bits.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// `Basic base64(user:pass)`.
pub(crate) fn basic_auth(user: &str, pass: &str) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{user}:{pass}");
    let mut out = String::from("Basic ");
    for chunk in raw.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A URL with any `user:password@` replaced by `***@`, for messages and logs.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***@{}", &url[..scheme_end + 3], &rest[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_credentials_and_defaults() {
        let p = Proxy::parse("http://al%40ice:p%3Ass@proxy.test:3128").unwrap();
        assert_eq!((p.host(), p.port()), ("proxy.test", 3128));
        // base64("al@ice:p:ss")
        assert_eq!(p.authorization(), Some("Basic YWxAaWNlOnA6c3M="));
        assert_eq!(p.to_string(), "http://proxy.test:3128");
        let p = Proxy::parse("proxy.test").unwrap();
        assert_eq!((p.port(), p.authorization()), (1080, None));
        let s = Proxy::parse("socks5h://u:p@s.test").unwrap();
        assert_eq!(s.kind(), ProxyKind::Socks5 { remote_dns: true });
        assert_eq!((s.port(), s.credentials()), (1080, Some(("u", "p"))));
        assert_eq!(s.to_string(), "socks5h://s.test:1080");
        for bad in ["socks4://h:1", "https://h:1", "http://", "http://:8080"] {
            assert!(Proxy::parse(bad).is_err(), "{bad}");
        }
        let e = Proxy::parse("ftp://u:secret@h").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
        assert_eq!(
            basic_auth("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(basic_auth("a", ""), "Basic YTo=");
    }

    #[test]
    fn no_proxy_names_ips_and_cidr() {
        let n = NoProxy::parse("localhost, .corp.example 10.0.0.0/8,::1,192.168.1.5");
        for yes in [
            "localhost",
            "corp.example",
            "a.b.corp.example",
            "10.2.3.4",
            "[::1]",
            "192.168.1.5",
            "LOCALHOST.",
        ] {
            assert!(n.matches(yes), "{yes}");
        }
        for no in [
            "notlocalhost",
            "corp.example.com",
            "11.0.0.1",
            "192.168.1.6",
            "example.org",
        ] {
            assert!(!n.matches(no), "{no}");
        }
        assert!(NoProxy::parse("*").matches("anything"));
        assert!(!NoProxy::parse("").matches("anything"));
    }

    #[test]
    fn environment_read_as_curl_does() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        // Upper-case HTTP_PROXY is ignored (httpoxy); ALL_PROXY fills in; NO_PROXY bypasses.
        let p = Proxies::from_vars(env(&[
            ("HTTP_PROXY", "http://evil:1"),
            ("ALL_PROXY", "http://all:2"),
            ("HTTPS_PROXY", "http://secure:3"),
            ("NO_PROXY", "internal.test"),
        ]))
        .unwrap();
        assert_eq!(p.for_url(false, "a.test").unwrap().host(), "all");
        assert_eq!(p.for_url(true, "a.test").unwrap().host(), "secure");
        assert!(p.for_url(true, "x.internal.test").is_none());
        let p =
            Proxies::from_vars(env(&[("http_proxy", "lower:4"), ("https_proxy", "s:5")])).unwrap();
        assert_eq!(p.for_url(false, "a").unwrap().port(), 4);
        assert_eq!(
            p.for_url(true, "localhost").unwrap().port(),
            5,
            "nothing bypassed unless NO_PROXY says so"
        );
        assert!(Proxies::from_vars(env(&[("http_proxy", "socks4://x:1")])).is_err());
        assert!(Proxies::from_vars(env(&[])).unwrap().http.is_none());
    }

    #[test]
    fn redaction() {
        assert_eq!(redact("http://u:p@h.test/a@b"), "http://***@h.test/a@b");
        assert_eq!(redact("http://h.test/x?u=a@b"), "http://h.test/x?u=a@b");
        assert_eq!(redact("not a url"), "not a url");
    }
}
