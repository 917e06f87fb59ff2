//! A small HTTP/1.1 client on the scraipe runtime, built to survive real (and hostile) servers:
//! every malformed, truncated, stalled or oversized response becomes either the right body or a
//! clear [`Error`] — never a panic, a hang, a short body reported as success, or unbounded memory.
//!
//! * [`Client`] — keep-alive pool with per-host and total limits, redirects, gzip/deflate (and
//!   brotli/zstd with the default features), timeouts per phase (connect, no progress, total),
//!   TLS through rustls with webpki roots, Happy Eyeballs, retries ([`RetryPolicy`]), an
//!   optional cookie jar, HTTP proxies ([`Proxy`]) and an address filter.
//! * [`Response`] — status, headers (case-insensitive, repeats kept), final URL, body, and
//!   [`Response::text`] with charset detection (header, BOM, or `<meta charset>`).
//!
//! Module map: `proto/` parses and frames HTTP/1.1 without I/O; `conn.rs` runs one exchange on a
//! connection; `pool.rs` keeps connections; `dns.rs` resolves names; `connect.rs` opens
//! connections (Happy Eyeballs, CONNECT tunnels); `stream.rs`/`tls.rs` are the transport;
//! `decode.rs` undoes content codings; `retry.rs`, `cookies.rs`, `proxy.rs` and `httpdate.rs`
//! are the policies; `client.rs` ties them together with redirects and retries.

mod client;
mod conn;
mod connect;
mod cookies;
mod decode;
mod dns;
mod error;
mod headers;
mod httpdate;
mod pool;
pub(crate) mod proto;
mod proxy;
mod response;
mod retry;
mod stream;
mod tls;

pub use client::{Client, ClientBuilder, Method, PoolStats, RequestBuilder, DEFAULT_MAX_BODY};
pub use error::{Error, ErrorKind};
pub use headers::Headers;
pub use proxy::Proxy;
pub use response::Response;
pub use retry::RetryPolicy;

/// Decoding helpers, exposed for fuzzing and property tests.
#[doc(hidden)]
pub mod fuzz {
    /// Undoes `codings` (as listed in Content-Encoding) on `body` with the client's decoders
    /// and caps. Must never panic or exceed `max` bytes of output, whatever the input.
    pub fn decode_body(body: &[u8], codings: &str, max: usize) -> Result<Vec<u8>, super::Error> {
        let codings: Vec<String> = super::decode::content_codings(std::iter::once(codings))
            .into_iter()
            .filter(|c| super::decode::is_supported(c))
            .collect();
        super::decode::decode_content(body.to_vec(), &codings, max)
    }

    use super::error::Error;
    use super::proto::{find_head_end, parse_head, ChunkedDecoder, HeadLimits};

    /// Feeds `data` split at `splits` to the head finder and parser, then the chunked decoder.
    /// Must never panic or loop forever, whatever the input.
    pub fn parse_response_pieces(
        data: &[u8],
        splits: &[usize],
        max_body: usize,
    ) -> Result<(u16, Vec<u8>), Error> {
        let limits = HeadLimits {
            max_bytes: 64 * 1024,
            max_headers: 128,
        };
        let mut seen = 0;
        let mut scanned = 0;
        let mut end = None;
        for &s in splits.iter().chain(std::iter::once(&data.len())) {
            let s = s.min(data.len()).max(seen);
            seen = s;
            if let Some(e) = find_head_end(&data[..s], scanned) {
                end = Some(e);
                break;
            }
            scanned = s.saturating_sub(3);
        }
        let Some(end) = end else {
            return Err(Error::new(super::ErrorKind::Incomplete, "no complete head"));
        };
        let head = parse_head(&data[..end], limits)?;
        let plan = head.body_plan(false)?;
        let mut body = Vec::new();
        let rest = &data[end..];
        match plan.framing {
            super::proto::Framing::Chunked => {
                let mut dec = ChunkedDecoder::new();
                let mut pos = 0;
                for &s in splits.iter().chain(std::iter::once(&rest.len())) {
                    let s = s.min(rest.len()).max(pos);
                    pos += dec.decode(&rest[pos..s], &mut body, max_body)?;
                    if dec.is_done() {
                        break;
                    }
                }
            }
            super::proto::Framing::Length(n) => {
                body.extend_from_slice(&rest[..(n as usize).min(rest.len())])
            }
            _ => body.extend_from_slice(rest),
        }
        let codings = super::decode::content_codings(head.headers.get_all("content-encoding"));
        let codings: Vec<String> = codings
            .into_iter()
            .filter(|c| super::decode::is_supported(c))
            .collect();
        let body = super::decode::decode_content(body, &codings, max_body)?;
        let _ = super::decode::decode_text(&body, head.headers.get("content-type"));
        Ok((head.status, body))
    }
}
