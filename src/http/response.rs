//! A complete response: status, headers, final URL and body.

use std::fmt;

use url::Url;

use crate::http::decode;
use crate::http::Headers;

/// A response read to the end (and decompressed).
#[derive(Clone)]
pub struct Response {
    status: u16,
    minor_version: u8,
    reason: String,
    headers: Headers,
    url: Url,
    body: Vec<u8>,
}

impl Response {
    pub(crate) fn new(
        status: u16,
        minor_version: u8,
        reason: String,
        headers: Headers,
        url: Url,
        body: Vec<u8>,
    ) -> Response {
        Response {
            status,
            minor_version,
            reason,
            headers,
            url,
            body,
        }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// True for 2xx statuses.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `"HTTP/1.1"` or `"HTTP/1.0"`.
    pub fn version(&self) -> &'static str {
        if self.minor_version == 0 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        }
    }

    /// The reason phrase sent by the server (may be empty).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// All headers. After decompression, `Content-Encoding` and `Content-Length` are removed.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The `Content-Type` header.
    pub fn content_type(&self) -> Option<&str> {
        self.headers.get("content-type")
    }

    /// The `ETag` validator, to send back with
    /// [`RequestBuilder::if_none_match`](crate::http::RequestBuilder::if_none_match).
    pub fn etag(&self) -> Option<&str> {
        self.headers.get("etag")
    }

    /// The `Last-Modified` date, to send back with
    /// [`RequestBuilder::if_modified_since`](crate::http::RequestBuilder::if_modified_since).
    pub fn last_modified(&self) -> Option<&str> {
        self.headers.get("last-modified")
    }

    /// True for `304 Not Modified`: the validators sent still match, the body is empty, and
    /// the copy already held is current.
    pub fn is_not_modified(&self) -> bool {
        self.status == 304
    }

    /// The URL that produced this response, after redirects (without credentials).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Takes the body.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The body as text: the charset of a byte-order mark, else of `Content-Type`, else of an
    /// HTML `<meta charset>` in the first 1 KiB, else UTF-8; invalid bytes become U+FFFD.
    pub fn text(&self) -> String {
        decode::decode_text(&self.body, self.content_type())
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("url", &self.url.as_str())
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}
