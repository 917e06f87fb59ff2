//! One HTTP/1.1 connection and one request/response exchange on it.
//!
//! The read buffer belongs to the connection and is reused across requests. A response head is
//! located incrementally ([`find_head_end`] scans each byte about once) and parsed once; the body
//! is then read straight into its own `Vec` when its length is known, so a 100 KiB page is not
//! copied through a small buffer.

use std::time::{Duration, Instant};

use crate::http::error::{Error, ErrorKind};
use crate::http::pool::Slot;
use crate::http::proto::{
    check_status_line_start, find_head_end, parse_head, ChunkedDecoder, Framing, HeadLimits,
    ResponseHead,
};
use crate::http::stream::Stream;
use crate::rt;

/// Initial read buffer: one page of memory per idle connection.
const INITIAL_BUF: usize = 4096;
/// Read granularity for bodies of unknown length.
const READ_CHUNK: usize = 64 * 1024;
/// The first allocation for a body of announced length (address space, zeroed only as needed).
const FIRST_BODY_CAPACITY: usize = 256 * 1024;
/// How far ahead of the received bytes a body is zero-filled, at least.
const ZERO_WINDOW: usize = 64 * 1024;
/// An idle connection keeps a read buffer at most this large (a large body may have grown it).
const MAX_IDLE_BUF: usize = 16 * 1024;

/// Limits and timeouts applying to one exchange.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExchangeLimits {
    pub(crate) head: HeadLimits,
    pub(crate) max_body: usize,
    /// No byte received for this long: give up.
    pub(crate) read_timeout: Duration,
    /// The whole request must be done by then.
    pub(crate) deadline: Instant,
    /// The total timeout that `deadline` came from (for messages).
    pub(crate) total: Duration,
}

/// A response as it came off the wire (body still content-encoded).
pub(crate) struct RawResponse {
    pub(crate) head: ResponseHead,
    pub(crate) body: Vec<u8>,
    pub(crate) transfer_codings: Vec<String>,
}

pub(crate) struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    /// Unread bytes are `buf[pos..len]`.
    pos: usize,
    len: usize,
    /// Requests completed on this connection.
    pub(crate) served: u32,
    pub(crate) idle_since: Instant,
    /// The pool's accounting for this connection (released on drop).
    pub(crate) slot: Slot,
    /// Set once any byte of the current response arrived (a request that failed before that on
    /// a reused connection may be retried).
    pub(crate) got_response_bytes: bool,
    /// How long the server said it keeps an idle connection (`Keep-Alive: timeout=N`), less a
    /// margin: reusing it later would race the server's close.
    pub(crate) server_idle_limit: Option<Duration>,
}

impl Conn {
    pub(crate) fn new(stream: Stream, slot: Slot) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
            pos: 0,
            len: 0,
            served: 0,
            idle_since: Instant::now(),
            slot,
            got_response_bytes: false,
            server_idle_limit: None,
        }
    }

    /// Readies the connection for the idle pool.
    pub(crate) fn make_idle(&mut self) {
        self.idle_since = Instant::now();
    }

    /// Gives back a read buffer grown by a large response (chunked bodies read 64 KiB at a
    /// time, heads up to the header limit), so thousands of idle connections cost a page
    /// each, not 100 KiB. Called by the pool's sweep for connections idle a second or more,
    /// so a busy keep-alive connection does not reallocate between requests.
    pub(crate) fn shrink_idle_buffer(&mut self) {
        if self.buf.capacity() > MAX_IDLE_BUF && self.pos == self.len {
            self.buf = Vec::new();
            self.pos = 0;
            self.len = 0;
        }
    }

    /// Read buffer capacity (for tests of the shrinking).
    #[cfg(test)]
    pub(crate) fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Idle for too long to be trusted: past our idle timeout or the server's.
    pub(crate) fn idle_expired(&self, idle_timeout: Duration) -> bool {
        let limit = self
            .server_idle_limit
            .map_or(idle_timeout, |s| s.min(idle_timeout));
        self.idle_since.elapsed() > limit
    }

    /// Is this idle connection still usable (not closed by the server while it sat in the pool)?
    pub(crate) fn is_reusable(&mut self) -> bool {
        self.pos == self.len && self.stream.is_reusable()
    }

    /// Sends a request and reads the whole response. Returns it with whether the connection may
    /// serve another request.
    pub(crate) async fn exchange(
        &mut self,
        request: &[u8],
        body: &[u8],
        is_head: bool,
        limits: &ExchangeLimits,
    ) -> Result<(RawResponse, bool), Error> {
        self.got_response_bytes = false;
        self.write(request, body, limits).await?;
        let head = self.read_head(limits).await?;
        let plan = head.body_plan(is_head)?;
        let body = match plan.framing {
            Framing::Empty => Vec::new(),
            Framing::Length(n) => self.read_length(n, limits).await?,
            Framing::Chunked => self.read_chunked(limits).await?,
            Framing::CloseDelimited => self.read_to_close(limits).await?,
        };
        // Leftover bytes after a complete response mean the server sent something we did not
        // ask for; the connection cannot be trusted with another request.
        let mut reusable = plan.reusable && head.keeps_alive() && self.pos == self.len;
        self.served += 1;
        if let Some(hint) = head.headers.get("keep-alive") {
            let (timeout, max) = parse_keep_alive(hint);
            if let Some(t) = timeout {
                // Leave a margin for the request to reach the server before it closes.
                let t = Duration::from_secs(t);
                self.server_idle_limit = Some(t.saturating_sub(Duration::from_secs(1)).max(t / 2));
            }
            if max.is_some_and(|m| u64::from(self.served) >= m) {
                reusable = false;
            }
        }
        Ok((
            RawResponse {
                head,
                body,
                transfer_codings: plan.transfer_codings,
            },
            reusable,
        ))
    }

    async fn write(
        &mut self,
        request: &[u8],
        body: &[u8],
        limits: &ExchangeLimits,
    ) -> Result<(), Error> {
        let write = async {
            if body.is_empty() {
                self.stream.write_all(request).await
            } else if body.len() <= 16 * 1024 {
                let mut all = Vec::with_capacity(request.len() + body.len());
                all.extend_from_slice(request);
                all.extend_from_slice(body);
                self.stream.write_all(&all).await
            } else {
                self.stream.write_all(request).await?;
                self.stream.write_all(body).await
            }
        };
        match rt::timeout_at(limits.deadline, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::io("sending the request failed", e)),
            Err(_) => Err(total_timeout(limits)),
        }
    }

    /// Reads more bytes into the buffer; returns how many (0 = the server closed).
    async fn fill(&mut self, limits: &ExchangeLimits, want: usize) -> Result<usize, Error> {
        if self.pos == self.len {
            self.pos = 0;
            self.len = 0;
        } else if self.len + want > self.buf.len() && self.pos > 0 {
            self.buf.copy_within(self.pos..self.len, 0);
            self.len -= self.pos;
            self.pos = 0;
        }
        if self.buf.len() < self.len + want {
            let grow = (self.len + want).max(INITIAL_BUF).max(self.buf.len() * 2);
            self.buf.resize(grow, 0);
        }
        let n = read_with_timeouts(&mut self.stream, &mut self.buf[self.len..], limits).await?;
        if n > 0 {
            self.got_response_bytes = true;
        }
        self.len += n;
        Ok(n)
    }

    async fn read_head(&mut self, limits: &ExchangeLimits) -> Result<ResponseHead, Error> {
        let mut scanned = 0;
        loop {
            let unread = &self.buf[self.pos..self.len];
            check_status_line_start(unread)?;
            if let Some(end) = find_head_end(unread, scanned) {
                if end > limits.head.max_bytes {
                    return Err(head_too_large(limits));
                }
                let head = parse_head(&unread[..end], limits.head)?;
                self.pos += end;
                scanned = 0;
                match head.status {
                    101 => {
                        return Err(Error::new(
                            ErrorKind::Protocol,
                            "unexpected 101 Switching Protocols",
                        ))
                    }
                    // Interim responses (100 Continue, 103 Early Hints, unknown 1xx): skip.
                    100..=199 => continue,
                    _ => return Ok(head),
                }
            }
            if unread.len() > limits.head.max_bytes {
                return Err(head_too_large(limits));
            }
            scanned = unread.len().saturating_sub(3);
            let want = (limits.head.max_bytes + 1 - unread.len()).min(INITIAL_BUF);
            if self.fill(limits, want).await? == 0 {
                return Err(if self.pos == self.len && !self.got_response_bytes {
                    Error::new(
                        ErrorKind::Incomplete,
                        "the server closed the connection without responding",
                    )
                } else {
                    Error::new(
                        ErrorKind::Incomplete,
                        "the server closed the connection in the middle of the response head",
                    )
                });
            }
        }
    }

    async fn read_length(&mut self, n: u64, limits: &ExchangeLimits) -> Result<Vec<u8>, Error> {
        if n > limits.max_body as u64 {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "Content-Length {n} exceeds the {}-byte body limit",
                    limits.max_body
                ),
            ));
        }
        let n = n as usize;
        // Memory follows the bytes received, not the claim: the body starts with at most
        // FIRST_BODY_CAPACITY of address space (not touched, so not resident), and is
        // zero-filled only a window ahead of what arrived (the window doubles with the bytes
        // received). A server that announces 60 MB and stalls costs ~64 KiB of RSS; a body of
        // up to 256 KiB still gets exactly one allocation, zeroed once.
        let mut body = Vec::with_capacity(n.min(FIRST_BODY_CAPACITY));
        let have = (self.len - self.pos).min(n);
        body.extend_from_slice(&self.buf[self.pos..self.pos + have]);
        self.pos += have;
        let mut filled = have;
        while filled < n {
            if filled == body.len() {
                let window = (n - filled).min(filled.max(ZERO_WINDOW));
                body.resize(filled + window, 0);
            }
            // Read the rest straight into the body, not through the connection buffer.
            let got = read_with_timeouts(&mut self.stream, &mut body[filled..], limits).await?;
            if got == 0 {
                return Err(Error::new(
                    ErrorKind::Incomplete,
                    format!("the server closed the connection after {filled} of {n} body bytes"),
                ));
            }
            self.got_response_bytes = true;
            filled += got;
        }
        Ok(body)
    }

    async fn read_chunked(&mut self, limits: &ExchangeLimits) -> Result<Vec<u8>, Error> {
        let mut decoder = ChunkedDecoder::new();
        let mut body = Vec::new();
        loop {
            let used = decoder.decode(&self.buf[self.pos..self.len], &mut body, limits.max_body)?;
            self.pos += used;
            if decoder.is_done() {
                return Ok(body);
            }
            if self.fill(limits, READ_CHUNK).await? == 0 {
                return Err(Error::new(
                    ErrorKind::Incomplete,
                    format!("the server closed the connection in the middle of a chunked body (after {} bytes)", body.len()),
                ));
            }
        }
    }

    async fn read_to_close(&mut self, limits: &ExchangeLimits) -> Result<Vec<u8>, Error> {
        let mut body = self.buf[self.pos..self.len].to_vec();
        self.pos = self.len;
        loop {
            if body.len() > limits.max_body {
                return Err(body_too_large(limits));
            }
            let start = body.len();
            body.resize(start + READ_CHUNK, 0);
            let got = read_with_timeouts(&mut self.stream, &mut body[start..], limits).await?;
            body.truncate(start + got);
            if got == 0 {
                if body.len() > limits.max_body {
                    return Err(body_too_large(limits));
                }
                // Over TLS only close_notify proves the body complete: a bare TCP close may be
                // an attacker or a middlebox cutting it short (RFC 8446 §6.1).
                if self.stream.closed_without_notify() {
                    return Err(Error::new(
                        ErrorKind::Incomplete,
                        format!(
                            "the TLS connection closed without close_notify after {} body bytes: the body may be truncated",
                            body.len()
                        ),
                    ));
                }
                return Ok(body);
            }
        }
    }
}

/// `timeout=` and `max=` of a `Keep-Alive` header (RFC 2068 §19.7.1, still sent by Apache).
fn parse_keep_alive(value: &str) -> (Option<u64>, Option<u64>) {
    let (mut timeout, mut max) = (None, None);
    for param in value.split(',') {
        if let Some((k, v)) = param.split_once('=') {
            let v = v.trim().trim_matches('"').parse().ok();
            match k.trim().to_ascii_lowercase().as_str() {
                "timeout" => timeout = v,
                "max" => max = v,
                _ => {}
            }
        }
    }
    (timeout, max)
}

/// One read, bounded by both the "no progress" timeout and the total deadline.
async fn read_with_timeouts(
    stream: &mut Stream,
    buf: &mut [u8],
    limits: &ExchangeLimits,
) -> Result<usize, Error> {
    let idle_deadline = Instant::now() + limits.read_timeout;
    let deadline = idle_deadline.min(limits.deadline);
    match rt::timeout_at(deadline, stream.read(buf)).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(Error::io("reading the response failed", e)),
        Err(_) if deadline == limits.deadline => Err(total_timeout(limits)),
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!("no data received for {}", proto_fmt(limits.read_timeout)),
        )),
    }
}

pub(crate) fn total_timeout(limits: &ExchangeLimits) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!(
            "the request did not complete within {}",
            proto_fmt(limits.total)
        ),
    )
}

fn head_too_large(limits: &ExchangeLimits) -> Error {
    Error::new(
        ErrorKind::TooLarge,
        format!("response headers exceed {} bytes", limits.head.max_bytes),
    )
}

fn body_too_large(limits: &ExchangeLimits) -> Error {
    Error::new(
        ErrorKind::TooLarge,
        format!("body exceeds the {}-byte limit", limits.max_body),
    )
}

/// "1.5 s", "250 ms".
pub(crate) fn proto_fmt(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{} s", (d.as_secs_f64() * 10.0).round() / 10.0)
    } else {
        format!("{} ms", d.as_millis())
    }
}
