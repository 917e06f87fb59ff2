//! What the HTTP/1.1 server asks of the site it serves: the [`Service`] trait, and the
//! [`Reply`] a service answers with. The server (connection loop, keep-alive, head parsing,
//! dates) is generic over the service, so the demo site and the demo shop share it; each
//! service is compiled into its own copy of the loop (no dynamic dispatch per request).

use std::sync::Arc;
use std::time::Duration;

use super::http::Method;

pub(crate) const HTML: &str = "text/html; charset=utf-8";
pub(crate) const PLAIN: &str = "text/plain; charset=utf-8";

/// A site behind the server.
pub(crate) trait Service: Send + Sync + 'static {
    /// What the service keeps of a request head (nothing borrowed from the read buffer). It is
    /// dropped once the response has been queued, so a guard in it marks the request's end.
    type Request: Send + 'static;

    /// Initial read buffer of a connection (it grows up to the head limit when a head needs
    /// it). A typical request head is a few hundred bytes; a larger buffer takes in a burst of
    /// pipelined requests with fewer reads, a smaller one makes idle connections cheaper.
    const READ_BUFFER: usize = 4 * 1024;

    /// Called once per complete request head, before [`reply`](Service::reply): the request
    /// target as sent (origin or absolute form) and every header (`Host` included).
    fn request(
        &self,
        method: Method,
        target: &str,
        headers: &[httparse::Header<'_>],
    ) -> Self::Request;

    /// The answer to a request.
    fn reply(&self, method: Method, request: &Self::Request) -> Reply;
}

/// A response body.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Static(&'static [u8]),
    Shared(Arc<[u8]>),
    /// Generated for this one response.
    Owned(Vec<u8>),
    /// This many bytes of [`filler`](super::routes::filler) text, repeated as needed.
    Filler(usize),
}

impl Body {
    pub(crate) fn len(&self) -> usize {
        match self {
            Body::Static(b) => b.len(),
            Body::Shared(b) => b.len(),
            Body::Owned(b) => b.len(),
            Body::Filler(n) => *n,
        }
    }
}

/// Everything the server needs to answer one request.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    /// Empty: no `Content-Type` (a 304).
    pub(crate) content_type: &'static str,
    pub(crate) body: Body,
    pub(crate) delay: Duration,
    /// `(absolute, page)` of a redirect.
    pub(crate) location: Option<(bool, usize)>,
    /// Whether to send `Allow: GET, HEAD` (405).
    pub(crate) allow: bool,
    /// A strong entity tag, sent as `ETag: "<16 hex digits>"`.
    pub(crate) etag: Option<u64>,
    /// Seconds since the Unix epoch, sent as `Last-Modified`.
    pub(crate) last_modified: Option<u64>,
}

impl Reply {
    pub(crate) fn with_type(status: u16, content_type: &'static str, body: Body) -> Reply {
        Reply {
            status,
            content_type,
            body,
            delay: Duration::ZERO,
            location: None,
            allow: false,
            etag: None,
            last_modified: None,
        }
    }

    pub(crate) fn html(status: u16, body: Body) -> Reply {
        Reply::with_type(status, HTML, body)
    }

    /// An error reply with a small fixed HTML body.
    pub(crate) fn error(status: u16) -> Reply {
        let body: &'static str = match status {
            400 => small_page!("400 Bad Request", "The request could not be understood."),
            405 => small_page!(
                "405 Method Not Allowed",
                "Only GET and HEAD are served here."
            ),
            414 => small_page!("414 URI Too Long", "The request line is too long."),
            431 => small_page!(
                "431 Request Header Fields Too Large",
                "The request head is too large."
            ),
            _ => small_page!("404 Not Found", "Nothing lives at this address."),
        };
        let mut reply = Reply::html(status, Body::Static(body.as_bytes()));
        reply.allow = status == 405;
        reply
    }
}
