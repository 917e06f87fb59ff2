//! Header maps: names compared case-insensitively, repeated headers kept in order.

use std::fmt;

/// An ordered multimap of header names to values.
///
/// ```
/// use scraipe::http::Headers;
/// let mut h = Headers::new();
/// h.append("Set-Cookie", "a=1");
/// h.append("set-cookie", "b=2");
/// h.insert("Content-Type", "text/html");
/// assert_eq!(h.get("content-type"), Some("text/html"));
/// assert_eq!(h.get_all("SET-COOKIE").collect::<Vec<_>>(), ["a=1", "b=2"]);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    /// An empty map.
    pub fn new() -> Headers {
        Headers::default()
    }

    pub(crate) fn with_capacity(n: usize) -> Headers {
        Headers {
            entries: Vec::with_capacity(n),
        }
    }

    /// The first value for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value for `name`, in the order received.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True if `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Adds a value, keeping existing ones.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.entries.push((name.into(), value.into()));
    }

    /// Replaces every value of `name` with one value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        self.remove(&name);
        self.entries.push((name, value.into()));
    }

    /// Removes every value of `name`; returns how many there were.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.entries.len();
        self.entries.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        before - self.entries.len()
    }

    /// All (name, value) pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of (name, value) pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks a header a request may carry: a valid name (an RFC 9110 token), a value without
    /// CR, LF, NUL or other control bytes (tab is fine), and not one of the framing and
    /// connection headers the client writes itself (`Content-Length`, `Transfer-Encoding`,
    /// `Connection`, `Keep-Alive`, `Upgrade`, `TE`, `Trailer`, `Proxy-Connection`).
    ///
    /// ```
    /// use scraipe::http::Headers;
    /// assert!(Headers::check_request_header("X-Token", "abc").is_ok());
    /// assert!(Headers::check_request_header("X-Token", "abc\r\nEvil: 1").is_err());
    /// assert!(Headers::check_request_header("Transfer-Encoding", "chunked").is_err());
    /// ```
    pub fn check_request_header(name: &str, value: &str) -> Result<(), String> {
        check_request_header(name, value)
    }

    /// True if any value of `name`, split on commas, equals `token` (case-insensitively):
    /// e.g. `Connection: keep-alive, close` has the token `close`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name)
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }
}

/// Headers only the client writes: message framing and connection management. A caller's
/// `Transfer-Encoding` beside the automatic `Content-Length` would let a request smuggle another.
const CLIENT_ONLY: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
];

/// Checks a request header: the name a token (RFC 9110 §5.6.2), the value free of CR, LF, NUL
/// and other control bytes except tab, and not a header the client writes itself.
pub(crate) fn check_request_header(name: &str, value: &str) -> Result<(), String> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(format!("{name:?} is not a valid header name"));
    }
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(format!(
            "the value of {name} contains a control character (CR, LF, NUL...)"
        ));
    }
    if CLIENT_ONLY.iter().any(|h| name.eq_ignore_ascii_case(h)) {
        return Err(format!(
            "{name} is written by the client itself (framing and connection headers cannot be set)"
        ));
    }
    Ok(())
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(n, v)| (n, v)))
            .finish()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a str, &'a str);
    type IntoIter = Box<dyn Iterator<Item = (&'a str, &'a str)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}
