//! [`ApiKey`]: an API key that cannot leak through `Debug`, `Display` or serde, and the
//! scrubbing of keys from text that came back from a server.

use std::fmt;

/// An API key. It has no `Display` and no serde impls, and its `Debug` prints `ApiKey(***)`,
/// so it cannot end up in a log line, a result or an error by accident. The only way to read
/// it is [`expose`](ApiKey::expose), which the providers call when they build a request header.
///
/// ```
/// use scraipe::llm::ApiKey;
/// let key = ApiKey::new("sk-very-secret");
/// assert_eq!(format!("{key:?}"), "ApiKey(***)");
/// assert_eq!(key.expose(), "sk-very-secret");
/// // Text a server sent back (an error message echoing the key) is scrubbed:
/// assert_eq!(key.scrub("bad key sk-very-secret"), "bad key [redacted]");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key (surrounding whitespace, e.g. a trailing newline from a file, is dropped).
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into().trim().to_string())
    }

    /// The key from an environment variable, if it is set and not blank.
    pub fn from_env(var: &str) -> Option<ApiKey> {
        let value = std::env::var(var).ok()?;
        let key = ApiKey::new(value);
        (!key.0.is_empty()).then_some(key)
    }

    /// The key itself, for a request header. Never log or store what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the key replaced by `[redacted]` (servers sometimes
    /// echo a rejected key in their error messages).
    pub fn scrub(&self, text: &str) -> String {
        if self.0.len() < 4 {
            // Too short to be a real key; replacing it would garble ordinary text.
            return text.to_string();
        }
        text.replace(&self.0, "[redacted]")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// Scrubs `text` with `key` when there is one.
pub(crate) fn scrub(key: Option<&ApiKey>, text: &str) -> String {
    match key {
        Some(k) => k.scrub(text),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimmed_and_hidden() {
        let k = ApiKey::new("  abcd1234\n");
        assert_eq!(k.expose(), "abcd1234");
        assert_eq!(format!("{k:?}"), "ApiKey(***)");
        assert_eq!(format!("{:?}", Some(k.clone())), "Some(ApiKey(***))");
        assert_eq!(
            k.scrub("x abcd1234 y abcd1234"),
            "x [redacted] y [redacted]"
        );
        assert_eq!(scrub(None, "abc"), "abc");
    }
}
