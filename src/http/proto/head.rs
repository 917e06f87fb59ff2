//! Response heads: finding where they end without re-scanning, parsing them once with
//! httparse, and deciding how the body is framed.

use std::mem::MaybeUninit;

use crate::http::error::{Error, ErrorKind};
use crate::http::Headers;

/// Limits on a response head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadLimits {
    /// Status line plus all header lines, in bytes.
    pub(crate) max_bytes: usize,
    /// Number of header lines.
    pub(crate) max_headers: usize,
}

/// A parsed status line and headers.
#[derive(Debug, Clone)]
pub(crate) struct ResponseHead {
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub(crate) minor_version: u8,
    pub(crate) status: u16,
    pub(crate) reason: String,
    pub(crate) headers: Headers,
}

/// Looks for the blank line ending a head in `buf`, examining only bytes from `from` on (the
/// caller passes how far it had looked before, minus 3, so each byte is scanned about once
/// however the head is split across reads). Accepts CRLF and bare LF line endings. Leading
/// empty lines before the status line are tolerated (and not counted as the end).
///
/// Returns the length of the head including the blank line.
pub(crate) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = skip_leading_newlines(buf);
    let mut i = from.max(start);
    while i < buf.len() {
        let rel = buf[i..].iter().position(|&b| b == b'\n')?;
        let lf = i + rel;
        match (buf.get(lf + 1), buf.get(lf + 2)) {
            (Some(b'\n'), _) => return Some(lf + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(lf + 3),
            _ => i = lf + 1,
        }
    }
    None
}

/// Fails as soon as the first bytes of a response cannot begin a status line (`HTTP/`): an SSH
/// banner, an HTTP/0.9 body or a wrong protocol on the port is reported at once, not after the
/// whole deadline spent waiting for a blank line that never comes.
pub(crate) fn check_status_line_start(buf: &[u8]) -> Result<(), Error> {
    const START: &[u8] = b"HTTP/";
    let buf = &buf[skip_leading_newlines(buf)..];
    let n = buf.len().min(START.len());
    if buf[..n] == START[..n] {
        return Ok(());
    }
    Err(describe_parse_error(httparse::Error::Version, buf))
}

fn skip_leading_newlines(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// Parses a complete head (as delimited by [`find_head_end`]).
pub(crate) fn parse_head(buf: &[u8], limits: HeadLimits) -> Result<ResponseHead, Error> {
    let buf = &buf[skip_leading_newlines(buf)..];
    // Most responses have a few dozen headers: try a stack array first, and only allocate the
    // full `max_headers` array for the rare response that needs it.
    const FAST: usize = 64;
    let mut small: [MaybeUninit<httparse::Header<'_>>; FAST] =
        [const { MaybeUninit::uninit() }; FAST];
    match parse_with(buf, &mut small, limits) {
        Err(ParseFail::TooManyHeaders) if limits.max_headers > FAST => {
            let mut big: Vec<MaybeUninit<httparse::Header<'_>>> = (0..limits.max_headers)
                .map(|_| MaybeUninit::uninit())
                .collect();
            parse_with(buf, &mut big, limits).map_err(|e| e.into_error(limits))
        }
        other => other.map_err(|e| e.into_error(limits)),
    }
}

enum ParseFail {
    TooManyHeaders,
    Other(Error),
}

impl ParseFail {
    fn into_error(self, limits: HeadLimits) -> Error {
        match self {
            ParseFail::TooManyHeaders => Error::new(
                ErrorKind::TooLarge,
                format!("more than {} header lines", limits.max_headers),
            ),
            ParseFail::Other(e) => e,
        }
    }
}

fn parse_with<'b>(
    buf: &'b [u8],
    storage: &mut [MaybeUninit<httparse::Header<'b>>],
    limits: HeadLimits,
) -> Result<ResponseHead, ParseFail> {
    let mut response = httparse::Response::new(&mut []);
    let mut config = httparse::ParserConfig::default();
    config
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_spaces_after_header_name_in_responses(true)
        .ignore_invalid_headers_in_responses(true)
        .allow_multiple_spaces_in_response_status_delimiters(true);
    let status = config.parse_response_with_uninit_headers(&mut response, buf, storage);
    match status {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(ParseFail::Other(Error::new(
                ErrorKind::Protocol,
                "malformed response head",
            )))
        }
        Err(httparse::Error::TooManyHeaders) => return Err(ParseFail::TooManyHeaders),
        Err(e) => return Err(ParseFail::Other(describe_parse_error(e, buf))),
    }
    if response.headers.len() > limits.max_headers {
        return Err(ParseFail::TooManyHeaders);
    }
    // RFC 9110 §15: status codes are 100 to 599; "000" or "099" is not a response.
    let code = response.code.unwrap_or(0);
    if !(100..=999).contains(&code) {
        return Err(ParseFail::Other(Error::new(
            ErrorKind::Protocol,
            format!("invalid status code {code:03}"),
        )));
    }
    let mut headers = Headers::with_capacity(response.headers.len());
    for h in response.headers.iter() {
        headers.append(h.name.to_string(), header_value(h.value));
    }
    Ok(ResponseHead {
        minor_version: response.version.unwrap_or(1),
        status: response.code.unwrap_or(0),
        reason: response.reason.unwrap_or("").to_string(),
        headers,
    })
}

fn describe_parse_error(e: httparse::Error, buf: &[u8]) -> Error {
    let line_end = buf
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(buf.len())
        .min(80);
    let first_line = String::from_utf8_lossy(&buf[..line_end]);
    let what = match e {
        httparse::Error::Version => "not an HTTP/1.x status line",
        httparse::Error::Status => "invalid status code",
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Token => "invalid token in status line",
        httparse::Error::TooManyHeaders => "too many headers",
    };
    Error::new(
        ErrorKind::Protocol,
        format!("{what} (response began {:?})", first_line.trim_end()),
    )
}

/// Decodes a header value: UTF-8 if valid, else Latin-1 (which is what HTTP/1.1 historically
/// allowed); obsolete line folding becomes a single space, as RFC 9112 §5.2 asks.
fn header_value(raw: &[u8]) -> String {
    let text = match std::str::from_utf8(raw) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => std::borrow::Cow::Owned(raw.iter().map(|&b| b as char).collect::<String>()),
    };
    if !text.contains(['\r', '\n']) {
        return text.trim().to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut in_fold = false;
    for c in text.chars() {
        if c == '\r' || c == '\n' || (in_fold && (c == ' ' || c == '\t')) {
            if !in_fold {
                out.push(' ');
                in_fold = true;
            }
        } else {
            in_fold = false;
            out.push(c);
        }
    }
    out.trim().to_string()
}

/// How the body of a response is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body at all (HEAD, 1xx, 204, 304).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the server closes the connection.
    CloseDelimited,
}

/// What the head says about the body and the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BodyPlan {
    pub(crate) framing: Framing,
    /// False when the framing makes reuse unsafe (Transfer-Encoding together with
    /// Content-Length, close-delimited bodies).
    pub(crate) reusable: bool,
    /// Transfer codings applied before `chunked` (e.g. `gzip, chunked`), to undo after
    /// de-chunking, outermost last.
    pub(crate) transfer_codings: Vec<String>,
}

impl ResponseHead {
    /// Decides the body framing for a response to `method`.
    pub(crate) fn body_plan(&self, is_head_request: bool) -> Result<BodyPlan, Error> {
        let plain = |framing| BodyPlan {
            framing,
            reusable: true,
            transfer_codings: Vec::new(),
        };
        if is_head_request
            || (100..200).contains(&self.status)
            || self.status == 204
            || self.status == 304
        {
            return Ok(plain(Framing::Empty));
        }
        let has_length = self.headers.contains("content-length");
        if self.headers.contains("transfer-encoding") {
            let codings: Vec<String> = self
                .headers
                .get_all("transfer-encoding")
                .flat_map(|v| v.split(','))
                .map(|c| c.trim().to_ascii_lowercase())
                .filter(|c| !c.is_empty())
                .collect();
            let chunked_last = codings.last().is_some_and(|c| c == "chunked");
            if codings.iter().filter(|c| *c == "chunked").count() > usize::from(chunked_last) {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    "chunked applied more than once or not last",
                ));
            }
            let others: Vec<String> = codings
                .into_iter()
                .filter(|c| c != "chunked" && c != "identity")
                .collect();
            for c in &others {
                if !matches!(c.as_str(), "gzip" | "x-gzip" | "deflate") {
                    return Err(Error::new(
                        ErrorKind::Protocol,
                        format!("unsupported transfer coding {c:?}"),
                    ));
                }
            }
            // Transfer-Encoding overrides Content-Length; a message with both may be an attempt
            // at request smuggling, so the connection is never reused after it.
            return Ok(BodyPlan {
                framing: if chunked_last {
                    Framing::Chunked
                } else {
                    Framing::CloseDelimited
                },
                reusable: chunked_last && !has_length,
                transfer_codings: others,
            });
        }
        if has_length {
            return Ok(plain(Framing::Length(self.content_length()?)));
        }
        Ok(BodyPlan {
            framing: Framing::CloseDelimited,
            reusable: false,
            transfer_codings: Vec::new(),
        })
    }

    /// The Content-Length value: every occurrence (and every comma-separated item) must be the
    /// same plain decimal number.
    fn content_length(&self) -> Result<u64, Error> {
        let mut value: Option<u64> = None;
        for item in self
            .headers
            .get_all("content-length")
            .flat_map(|v| v.split(','))
        {
            let item = item.trim();
            if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    format!("invalid Content-Length {item:?}"),
                ));
            }
            let n: u64 = item.parse().map_err(|_| {
                Error::new(
                    ErrorKind::Protocol,
                    format!("Content-Length {item} overflows"),
                )
            })?;
            match value {
                Some(v) if v != n => {
                    return Err(Error::new(
                        ErrorKind::Protocol,
                        format!("conflicting Content-Length values {v} and {n}"),
                    ))
                }
                _ => value = Some(n),
            }
        }
        value.ok_or_else(|| Error::new(ErrorKind::Protocol, "empty Content-Length"))
    }

    /// Whether the server allows the connection to be reused after this response.
    pub(crate) fn keeps_alive(&self) -> bool {
        if self.headers.has_token("connection", "close") {
            return false;
        }
        self.minor_version >= 1 || self.headers.has_token("connection", "keep-alive")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_bytes: 65536,
        max_headers: 128,
    };

    fn head(raw: &str) -> ResponseHead {
        let end = find_head_end(raw.as_bytes(), 0).expect("complete head");
        parse_head(&raw.as_bytes()[..end], LIMITS).unwrap()
    }

    #[test]
    fn a_response_that_cannot_begin_a_status_line_is_caught_at_its_first_bytes() {
        for ok in [
            &b""[..],
            b"H",
            b"HTTP",
            b"HTTP/",
            b"HTTP/1.1 200",
            b"\r\n\r\nHTT",
        ] {
            assert!(check_status_line_start(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            &b"S"[..],
            b"SSH-2.0-OpenSSH_9.0\r\n",
            b"http/1.1 200 OK",
            b"HTX",
            b"\n<html>",
        ] {
            let e = check_status_line_start(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Protocol, "{bad:?}");
        }
    }

    #[test]
    fn finds_end_with_crlf_and_bare_lf_across_splits() {
        let raw = b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody";
        assert_eq!(find_head_end(raw, 0), Some(raw.len() - 4));
        // Fed byte by byte, scanning only from (previous length - 3), it finds the same end.
        let mut found = None;
        for len in 1..=raw.len() {
            if let Some(end) = find_head_end(&raw[..len], len.saturating_sub(4)) {
                found = Some(end);
                break;
            }
        }
        assert_eq!(found, Some(raw.len() - 4));
        assert_eq!(find_head_end(b"HTTP/1.1 200 OK\nA: b\n\nx", 0), Some(22));
        assert_eq!(
            find_head_end(b"\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", 0),
            Some(23)
        );
        assert_eq!(find_head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n", 0), None);
    }

    #[test]
    fn parses_status_headers_fold_and_latin1() {
        let h = head("HTTP/1.1 404 Not Found\r\nX-Long: a\r\n  b\r\nSet-Cookie: 1\r\nset-cookie: 2\r\nX-L1: caf\u{e9}\r\n\r\n");
        assert_eq!(h.status, 404);
        assert_eq!(h.reason, "Not Found");
        assert_eq!(h.headers.get("x-long"), Some("a b"));
        assert_eq!(h.headers.get_all("Set-Cookie").count(), 2);
        let latin1 = b"HTTP/1.0 200 OK\nX: caf\xe9\n\n";
        let h = parse_head(latin1, LIMITS).unwrap();
        assert_eq!(h.headers.get("x"), Some("caf\u{e9}"));
        assert_eq!(h.minor_version, 0);
        assert!(!h.keeps_alive());
    }

    #[test]
    fn garbage_and_too_many_headers_are_errors() {
        let e = parse_head(b"SSH-2.0-OpenSSH\r\n\r\n", LIMITS).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(e.to_string().contains("SSH-2.0"), "{e}");
        let mut many = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..200 {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        let e = parse_head(many.as_bytes(), LIMITS).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        let ok = parse_head(
            many.as_bytes(),
            HeadLimits {
                max_bytes: 65536,
                max_headers: 256,
            },
        )
        .unwrap();
        assert_eq!(ok.headers.len(), 200);
    }

    #[test]
    fn framing_rules() {
        let plan = |raw: &str, head_req: bool| head(raw).body_plan(head_req);
        assert_eq!(
            plan("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false)
                .unwrap()
                .framing,
            Framing::Length(5)
        );
        assert_eq!(
            plan("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true)
                .unwrap()
                .framing,
            Framing::Empty
        );
        assert_eq!(
            plan(
                "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
                false
            )
            .unwrap()
            .framing,
            Framing::Empty
        );
        assert_eq!(
            plan("HTTP/1.1 304 Not Modified\r\n\r\n", false)
                .unwrap()
                .framing,
            Framing::Empty
        );
        assert_eq!(
            plan(
                "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\ncontent-length: 5\r\n\r\n",
                false
            )
            .unwrap()
            .framing,
            Framing::Length(5)
        );
        for bad in ["-1", "5, 6", "0x10", "1 2", "99999999999999999999999", ""] {
            let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
            assert!(
                plan(&raw, false).is_err(),
                "Content-Length {bad:?} must be refused"
            );
        }
        let te = plan(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(te.framing, Framing::Chunked);
        assert!(!te.reusable, "TE + CL: never reuse");
        let te = plan(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!((te.framing, te.reusable), (Framing::Chunked, true));
        assert_eq!(te.transfer_codings, ["gzip"]);
        let te = plan("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false).unwrap();
        assert_eq!(te.framing, Framing::CloseDelimited);
        assert!(plan(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            false
        )
        .is_err());
        assert!(plan(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: br, chunked\r\n\r\n",
            false
        )
        .is_err());
        let close = plan("HTTP/1.1 200 OK\r\n\r\n", false).unwrap();
        assert_eq!(
            (close.framing, close.reusable),
            (Framing::CloseDelimited, false)
        );
    }
}
