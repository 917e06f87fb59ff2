//! The HTTP/1.1 parts of the demo server that do not touch sockets: parsing a request head
//! (with `httparse`), deciding keep-alive, and writing a response head.
//!
//! Kept free of I/O so every rule here is unit-tested on byte strings.

use std::mem::MaybeUninit;
use std::time::{SystemTime, UNIX_EPOCH};

use super::service::Service;

/// At most this many request headers; more is answered with 431.
pub(crate) const MAX_HEADERS: usize = 64;

/// The request method, as far as the server cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    /// Any other syntactically valid method: answered with 405.
    Other,
}

/// What the server keeps of a parsed request head (nothing borrowed, so the read buffer is free
/// again as soon as parsing returns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestHead<R> {
    pub(crate) method: Method,
    /// What the service made of the target and headers.
    pub(crate) request: R,
    /// Whether the connection may carry another request after this one.
    pub(crate) keep_alive: bool,
    /// HTTP/1.0 (`false`) or 1.1 (`true`): a 1.0 client that asked for keep-alive must be told
    /// it got it.
    pub(crate) http11: bool,
}

/// The outcome of trying to parse the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed<R> {
    /// A complete head of this many bytes.
    Complete(RequestHead<R>, usize),
    /// More bytes needed.
    Partial,
    /// Unparseable: answer with this status (400 or 431) and close.
    Invalid(u16),
}

/// Parses the request head at the start of `buf`.
///
/// The server reads no request bodies: a request announcing one (`Content-Length` above zero or
/// any `Transfer-Encoding`) is answered and the connection closed after it, since the body's
/// bytes would otherwise be taken for the next request.
pub(crate) fn parse_request<S: Service>(buf: &[u8], service: &S) -> Parsed<S::Request> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Invalid(431),
        Err(_) => return Parsed::Invalid(400),
    };
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Invalid(400);
    };
    let http11 = version == 1;
    let mut keep_alive = http11;
    let mut has_host = false;
    let mut has_body = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                    keep_alive = true;
                }
            }
        } else if h.name.eq_ignore_ascii_case("host") {
            if has_host {
                return Parsed::Invalid(400); // RFC 9112 §3.2: more than one Host is a 400
            }
            has_host = true;
        } else if h.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                Some(0) => {}
                Some(_) => has_body = true,
                None => return Parsed::Invalid(400),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            has_body = true;
        }
    }
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400.
    if http11 && !has_host {
        return Parsed::Invalid(400);
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        _ => Method::Other,
    };
    let head = RequestHead {
        method,
        request: service.request(method, path, req.headers),
        keep_alive: keep_alive && !has_body,
        http11,
    };
    Parsed::Complete(head, len)
}

/// The reason phrase of the statuses the server uses.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// The per-connection cache of the `Date` header value, refreshed when the second changes
/// (formatting a date costs more than the rest of a response head).
#[derive(Debug)]
pub(crate) struct DateCache {
    secs: u64,
    text: [u8; 29],
}

impl DateCache {
    pub(crate) fn new() -> DateCache {
        DateCache {
            secs: u64::MAX,
            text: [b' '; 29],
        }
    }

    /// `Date` as an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    pub(crate) fn now(&mut self) -> &[u8; 29] {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if secs != self.secs {
            self.secs = secs;
            self.text = imf_fixdate(secs);
        }
        &self.text
    }
}

/// Formats seconds since the Unix epoch as an IMF-fixdate (RFC 9110 §5.6.7).
pub(crate) fn imf_fixdate(secs: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (hour, min, sec) = (rem / 3600, rem / 60 % 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm), shifted so the era starts on 0000-03-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);

    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    put2(&mut out[5..7], day as u64);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    let year = year.clamp(0, 9999) as u64;
    put2(&mut out[12..14], year / 100);
    put2(&mut out[14..16], year % 100);
    put2(&mut out[17..19], hour);
    put2(&mut out[20..22], min);
    put2(&mut out[23..25], sec);
    out
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) into seconds since the Unix
/// epoch. The obsolete RFC 850 and asctime forms are not accepted (RFC 9110 §5.6.7 lets a
/// server ignore a date it cannot parse, which makes the condition false).
pub(crate) fn parse_imf_fixdate(text: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = text.trim().as_bytes();
    if b.len() != 29 || &b[3..5] != b", " || &b[25..] != b" GMT" {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u64> {
        let digits = &b[range];
        digits.iter().all(u8::is_ascii_digit).then(|| {
            digits
                .iter()
                .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'))
        })
    };
    let day = num(5..7)?;
    let month = MONTHS.iter().position(|m| m.as_bytes() == &b[8..11])? as i64 + 1;
    let year = num(12..16)? as i64;
    let (hour, min, sec) = (num(17..19)?, num(20..22)?, num(23..25)?);
    if b[7] != b' ' || b[11] != b' ' || b[16] != b' ' || b[19] != b':' || b[22] != b':' {
        return None;
    }
    if !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 || year < 1970 {
        return None;
    }
    // Days-from-civil (Howard Hinnant's algorithm), the inverse of `imf_fixdate`.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days)
        .ok()
        .map(|d| d * 86_400 + hour * 3600 + min * 60 + sec)
}

fn put2(out: &mut [u8], v: u64) {
    out[0] = b'0' + (v / 10 % 10) as u8;
    out[1] = b'0' + (v % 10) as u8;
}

/// Appends the decimal form of `n` (no allocation, unlike `write!`).
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends `n` as exactly 16 lowercase hex digits.
pub(crate) fn push_hex16(out: &mut Vec<u8>, n: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(HEX[(n >> (shift * 4)) as usize & 15]);
    }
}

/// What goes into a response head besides the status.
pub(crate) struct HeadFields<'a> {
    pub(crate) status: u16,
    pub(crate) content_type: &'a str,
    pub(crate) content_length: u64,
    pub(crate) location: Option<(&'a str, usize)>,
    pub(crate) allow: bool,
    pub(crate) keep_alive: bool,
    /// Whether the client speaks HTTP/1.1 (1.0 clients need an explicit `keep-alive`).
    pub(crate) http11: bool,
    /// A strong entity tag, written as 16 hex digits in quotes.
    pub(crate) etag: Option<u64>,
    /// `Last-Modified`, in seconds since the Unix epoch.
    pub(crate) last_modified: Option<u64>,
}

/// Appends a complete response head (ending with the blank line) to `out`.
///
/// `location` is `(base, page)`: with a base it is `{base}/page/{page}`, with an empty base the
/// relative `/page/{page}`. An empty `content_type` is left out, and so is `Content-Length` on a
/// 304 (RFC 9110 §8.6 allows it only when equal to the 200's, and a 304 never has content).
pub(crate) fn write_head(out: &mut Vec<u8>, f: &HeadFields<'_>, date: &[u8; 29]) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(f.status));
    out.push(b' ');
    out.extend_from_slice(reason(f.status).as_bytes());
    out.extend_from_slice(b"\r\nServer: scraipe-demo\r\nDate: ");
    out.extend_from_slice(date);
    if !f.content_type.is_empty() {
        out.extend_from_slice(b"\r\nContent-Type: ");
        out.extend_from_slice(f.content_type.as_bytes());
    }
    if f.status != 304 {
        out.extend_from_slice(b"\r\nContent-Length: ");
        push_decimal(out, f.content_length);
    }
    if let Some(tag) = f.etag {
        out.extend_from_slice(b"\r\nETag: \"");
        push_hex16(out, tag);
        out.push(b'"');
    }
    if let Some(secs) = f.last_modified {
        out.extend_from_slice(b"\r\nLast-Modified: ");
        out.extend_from_slice(&imf_fixdate(secs));
    }
    if let Some((base, page)) = f.location {
        out.extend_from_slice(b"\r\nLocation: ");
        out.extend_from_slice(base.as_bytes());
        out.extend_from_slice(b"/page/");
        push_decimal(out, page as u64);
    }
    if f.allow {
        out.extend_from_slice(b"\r\nAllow: GET, HEAD");
    }
    if !f.keep_alive {
        out.extend_from_slice(b"\r\nConnection: close");
    } else if !f.http11 {
        out.extend_from_slice(b"\r\nConnection: keep-alive");
    }
    out.extend_from_slice(b"\r\n\r\n");
}

#[cfg(test)]
mod tests {
    use super::super::routes::Route;
    use super::*;

    fn parse(buf: &[u8]) -> Parsed<Route> {
        parse_request(buf, &crate::demo::DemoSite::new(1, 0))
    }

    fn complete(buf: &[u8]) -> (RequestHead<Route>, usize) {
        match parse(buf) {
            Parsed::Complete(h, n) => (h, n),
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn keep_alive_rules() {
        let (h, n) = complete(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /");
        assert_eq!(n, 34);
        assert!(h.keep_alive && h.http11);
        assert_eq!(h.request, Route::Healthz);
        let (h, _) =
            complete(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive, CLOSE\r\n\r\n");
        assert!(!h.keep_alive);
        let (h, _) = complete(b"GET / HTTP/1.0\r\n\r\n");
        assert!(!h.keep_alive && !h.http11);
        let (h, _) = complete(b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(h.keep_alive);
        assert_eq!(h.method, Method::Head);
        let (h, _) = complete(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
        assert_eq!(h.method, Method::Other);
        assert!(!h.keep_alive, "a body we do not read ends the connection");
        let (h, _) = complete(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        assert!(h.keep_alive);
    }

    #[test]
    fn invalid_requests() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost"), Parsed::Partial);
        assert_eq!(parse(b""), Parsed::Partial);
        assert_eq!(parse(b"\x00\x01garbage\r\n\r\n"), Parsed::Invalid(400));
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n\r\n"),
            Parsed::Invalid(400),
            "no Host"
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Parsed::Invalid(400)
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n"),
            Parsed::Invalid(400)
        );
        assert_eq!(parse(b"GET / HTTP/2.0\r\n\r\n"), Parsed::Invalid(400));
        let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse(&many), Parsed::Invalid(431));
    }

    #[test]
    fn dates() {
        assert_eq!(&imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&imf_fixdate(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&imf_fixdate(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(
            &imf_fixdate(4_102_444_799),
            b"Thu, 31 Dec 2099 23:59:59 GMT"
        );
    }

    #[test]
    fn dates_parse_back() {
        for secs in [0, 784_111_777, 951_782_400, 1_700_000_000, 4_102_444_799] {
            let text = imf_fixdate(secs);
            assert_eq!(
                parse_imf_fixdate(std::str::from_utf8(&text).unwrap()),
                Some(secs)
            );
        }
        for bad in [
            "",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nox 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 28:49:37 GMT",
            "Sun, 0x Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_imf_fixdate(bad), None, "{bad}");
        }
    }

    #[test]
    fn heads() {
        let mut out = Vec::new();
        push_decimal(&mut out, 0);
        push_decimal(&mut out, u64::MAX);
        assert_eq!(out, b"018446744073709551615");
        let mut out = Vec::new();
        let fields = HeadFields {
            status: 301,
            content_type: "text/html; charset=utf-8",
            content_length: 12,
            location: Some(("http://h:1", 4)),
            allow: false,
            keep_alive: true,
            http11: false,
            etag: None,
            last_modified: None,
        };
        write_head(&mut out, &fields, b"Thu, 01 Jan 1970 00:00:00 GMT");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 301 Moved Permanently\r\n"));
        assert!(text.contains("\r\nLocation: http://h:1/page/4\r\n"));
        assert!(text.contains("\r\nContent-Length: 12\r\n"));
        assert!(text.ends_with("\r\nConnection: keep-alive\r\n\r\n"));
        assert!(!text.contains("ETag") && !text.contains("Last-Modified"));

        let mut out = Vec::new();
        let fields = HeadFields {
            status: 304,
            content_type: "",
            content_length: 0,
            location: None,
            allow: false,
            keep_alive: true,
            http11: true,
            etag: Some(0x00ab_cdef_0123_4567),
            last_modified: Some(784_111_777),
        };
        write_head(&mut out, &fields, b"Thu, 01 Jan 1970 00:00:00 GMT");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{text}");
        assert!(
            text.contains("\r\nETag: \"00abcdef01234567\"\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n"));
        assert!(!text.contains("Content-Length") && !text.contains("Content-Type"));
    }
}
