//! One error type for everything the client can meet, with a kind to match on, the URL it
//! concerns, and a message a user understands.

use std::fmt;

/// What went wrong, broadly. Match on this; read [`Error`]'s `Display` for details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The URL could not be parsed or uses an unsupported scheme.
    InvalidUrl,
    /// The host name could not be resolved.
    Dns,
    /// No TCP connection could be established.
    Connect,
    /// The TLS handshake failed (certificate problems included).
    Tls,
    /// A timeout fired: connect, no progress, or the total deadline.
    Timeout,
    /// The server broke HTTP/1.1: malformed status line, headers, framing or chunked encoding.
    Protocol,
    /// The connection closed before the response was complete (e.g. a truncated body).
    Incomplete,
    /// A limit was exceeded: header bytes, header count, body size (before or after decoding).
    TooLarge,
    /// The redirect limit was reached (or a redirect pointed somewhere unusable).
    Redirect,
    /// The response body could not be decoded (gzip, deflate, brotli, zstd), or too many
    /// codings were stacked on it.
    Decode,
    /// Any other I/O failure (reset, broken pipe, ...).
    Io,
    /// The request itself is unusable: a header name or value that is not valid HTTP, or a
    /// header only the client may write (`Content-Length`, `Transfer-Encoding`, `Connection`...).
    InvalidRequest,
    /// Every address of the host was refused by the client's address filter
    /// ([`ClientBuilder::address_filter`](crate::http::ClientBuilder::address_filter)).
    Blocked,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ErrorKind::InvalidUrl => "invalid URL",
            ErrorKind::Dns => "DNS lookup failed",
            ErrorKind::Connect => "could not connect",
            ErrorKind::Tls => "TLS error",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Protocol => "invalid HTTP response",
            ErrorKind::Incomplete => "incomplete response",
            ErrorKind::TooLarge => "response too large",
            ErrorKind::Redirect => "redirect error",
            ErrorKind::Decode => "could not decode body",
            ErrorKind::Io => "I/O error",
            ErrorKind::InvalidRequest => "invalid request",
            ErrorKind::Blocked => "address blocked",
        }
    }
}

/// An HTTP client error.
///
/// ```
/// let rt = scraipe::rt::Runtime::new().unwrap();
/// let client = scraipe::http::Client::new();
/// let err = rt.block_on(client.get("ftp://example.com/")).unwrap_err();
/// assert_eq!(err.kind(), scraipe::http::ErrorKind::InvalidUrl);
/// assert_eq!(err.to_string(), "invalid URL: unsupported scheme \"ftp\" (only http and https) (ftp://example.com/)");
/// ```
pub struct Error {
    kind: ErrorKind,
    message: String,
    url: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    /// Worth retrying: the connection failed, or broke before any response byte.
    transient: bool,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            url: None,
            source: None,
            transient: false,
        }
    }

    pub(crate) fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error {
            kind,
            message: message.into(),
            url: None,
            source: Some(Box::new(source)),
            transient: false,
        }
    }

    /// Classifies an I/O error from a socket operation.
    pub(crate) fn io(context: &str, e: std::io::Error) -> Error {
        let kind = match e.kind() {
            std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
            std::io::ErrorKind::UnexpectedEof => ErrorKind::Incomplete,
            _ => match e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                Some(_) => ErrorKind::Tls,
                None => ErrorKind::Io,
            },
        };
        let message = format!("{context}: {e}");
        Error::with_source(kind, message, e)
    }

    /// Attaches the URL the error concerns (kept if one is already set). Credentials in it
    /// are masked: error text ends up in logs and result files.
    pub(crate) fn at(mut self, url: &str) -> Error {
        if self.url.is_none() {
            self.url = Some(crate::http::proxy::redact(url));
        }
        self
    }

    /// Says where the failure happened ("proxy http://proxy:3128"), keeping the kind, the
    /// source and whether a retry may help.
    pub(crate) fn context(mut self, what: impl std::fmt::Display) -> Error {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// Marks the error as a transient failure, eligible for a retry.
    pub(crate) fn transient(mut self) -> Error {
        self.transient = true;
        self
    }

    /// True for failures that another try may not meet: the connection could not be made, or
    /// it broke before any byte of the response arrived. Retried by a
    /// [`RetryPolicy`](crate::http::RetryPolicy).
    pub fn is_transient(&self) -> bool {
        self.transient
    }

    /// The broad category.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The URL being fetched when it happened, if known.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The detail message, without the kind prefix and URL.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True for timeouts of any phase.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.describe(), self.message)?;
        if let Some(url) = &self.url {
            write!(f, " ({url})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("url", &self.url)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
