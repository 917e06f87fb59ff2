//! Undoing content codings (gzip, deflate) under a size cap, and turning body bytes into text
//! with the right character set.

use std::io::Read;

use encoding_rs::Encoding;

use crate::http::error::{Error, ErrorKind};

/// The `Accept-Encoding` the client sends: what this build can decode.
pub(crate) const ACCEPT_ENCODING: &str = match (cfg!(feature = "brotli"), cfg!(feature = "zstd")) {
    (true, true) => "gzip, deflate, br, zstd",
    (true, false) => "gzip, deflate, br",
    (false, true) => "gzip, deflate, zstd",
    (false, false) => "gzip, deflate",
};

/// Most codings applied to one body (curl's limit since CVE-2022-32206): `gzip, gzip, ...`
/// repeated thousands of times would otherwise cost a decoder (and its memory) per layer.
pub(crate) const MAX_CODINGS: usize = 5;

/// Compressed bodies up to this size are decoded right where they arrive: at most ~4 MiB of
/// output (deflate's ratio is ~1000:1), a few milliseconds. Larger ones go to the blocking
/// pool so one big page does not stall the reactor that serves other connections.
const INLINE_DECODE: usize = 4 * 1024;

/// Whether this build decodes `coding`.
pub(crate) fn is_supported(coding: &str) -> bool {
    matches!(coding, "gzip" | "x-gzip" | "deflate" | "identity")
        || (coding == "br" && cfg!(feature = "brotli"))
        || (coding == "zstd" && cfg!(feature = "zstd"))
}

/// [`decode_content`], on the blocking pool when the body is large enough to matter.
pub(crate) async fn decode_off_reactor(
    body: Vec<u8>,
    codings: Vec<String>,
    max: usize,
) -> Result<Vec<u8>, Error> {
    if body.len() <= INLINE_DECODE {
        return decode_content(body, &codings, max);
    }
    match crate::rt::Handle::try_current() {
        Some(handle) => handle
            .spawn_blocking(move || decode_content(body, &codings, max))
            .await
            .map_err(|e| Error::new(ErrorKind::Decode, format!("decoding failed: {e}")))?,
        None => decode_content(body, &codings, max),
    }
}

/// Applies the decodings named by `codings` (outermost last, as listed in the header) to `body`.
/// Unknown codings leave the body untouched: they were not requested. At most [`MAX_CODINGS`].
/// The decoded size may not exceed `max` bytes: a small compression bomb cannot exhaust memory.
pub(crate) fn decode_content(
    mut body: Vec<u8>,
    codings: &[String],
    max: usize,
) -> Result<Vec<u8>, Error> {
    let layers = codings.iter().filter(|c| c.as_str() != "identity").count();
    if layers > MAX_CODINGS {
        return Err(Error::new(
            ErrorKind::Decode,
            format!(
                "{layers} content codings stacked on one body (at most {MAX_CODINGS} are decoded)"
            ),
        ));
    }
    for coding in codings.iter().rev() {
        if body.is_empty() {
            // Nothing was sent: there is nothing to decode (HEAD, 204, 304, empty 200).
            return Ok(body);
        }
        body = match coding.as_str() {
            "gzip" | "x-gzip" => gunzip(&body, max)?,
            "deflate" => {
                // "deflate" means zlib-wrapped, but some servers send raw deflate: look at the
                // zlib header to tell.
                if looks_like_zlib(&body) {
                    inflate(flate2::read::ZlibDecoder::new(&body[..]), max)?
                } else {
                    inflate(flate2::read::DeflateDecoder::new(&body[..]), max)?
                }
            }
            #[cfg(feature = "brotli")]
            "br" => inflate(brotli_decompressor::Decompressor::new(&body[..], 8192), max)?,
            #[cfg(feature = "zstd")]
            "zstd" => {
                // RFC 9659 §3: HTTP zstd windows are at most 8 MiB; a frame asking for more
                // would make us allocate it before producing a byte.
                let decoder = ruzstd::decoding::StreamingDecoder::new_with_max_window_size(
                    &body[..],
                    8 << 20,
                )
                .map_err(|_| {
                    Error::new(
                        ErrorKind::Decode,
                        "corrupt compressed body: the zstd frame header is invalid or truncated",
                    )
                })?;
                inflate(decoder, max)?
            }
            "identity" | "" => body,
            _ => return Ok(body),
        };
    }
    Ok(body)
}

fn looks_like_zlib(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] & 0x0F == 8 && (u16::from(b[0]) << 8 | u16::from(b[1])) % 31 == 0
}

fn inflate(reader: impl Read, max: usize) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    inflate_into(reader, &mut out, max)?;
    Ok(out)
}

/// Appends what `reader` decodes to `out`, which may hold at most `max` bytes in all.
fn inflate_into(reader: impl Read, out: &mut Vec<u8>, max: usize) -> Result<(), Error> {
    // Read one byte past the cap so "exactly max" and "more than max" can be told apart.
    let room = max.saturating_sub(out.len()) as u64 + 1;
    reader.take(room).read_to_end(out).map_err(|e| {
        Error::with_source(
            ErrorKind::Decode,
            format!("corrupt or truncated compressed body: {e}"),
            e,
        )
    })?;
    if out.len() > max {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("decompressed body exceeds the {max}-byte limit"),
        ));
    }
    Ok(())
}

/// gzip: one member, then any further members (RFC 1952 allows several, concatenated). Bytes
/// after a member that do not start another one — zero padding, a newline, junk some servers
/// append — are ignored, as browsers, urllib3 (requests) and aiohttp do;
/// reading them as a truncated member would lose a page that decoded completely.
fn gunzip(body: &[u8], max: usize) -> Result<Vec<u8>, Error> {
    const MAGIC: [u8; 2] = [0x1f, 0x8b];
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        inflate_into(flate2::bufread::GzDecoder::new(&mut rest), &mut out, max)?;
        if !rest.starts_with(&MAGIC) {
            if !rest.is_empty() {
                log::debug!("ignored {} bytes after the gzip data", rest.len());
            }
            return Ok(out);
        }
    }
}

/// The codings listed in `Content-Encoding` headers, lower-cased, in order.
pub(crate) fn content_codings<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    values
        .flat_map(|v| v.split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty())
        .collect()
}

/// The `charset` parameter of a Content-Type value.
pub(crate) fn charset_param(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (k, v) = param.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches(|c| c == '"' || c == '\''))
    })
}

/// Finds a `<meta charset=...>` or `<meta http-equiv="Content-Type" content="...; charset=...">`
/// declaration in the first 1 KiB of an HTML document.
pub(crate) fn sniff_meta_charset(body: &[u8]) -> Option<&'static Encoding> {
    let head = &body[..body.len().min(1024)];
    let lower: Vec<u8> = head.iter().map(u8::to_ascii_lowercase).collect();
    let mut pos = 0;
    while let Some(off) = find(&lower[pos..], b"<meta") {
        let start = pos + off;
        let end = lower[start..]
            .iter()
            .position(|&b| b == b'>')
            .map_or(lower.len(), |e| start + e);
        let tag = &lower[start..end];
        if let Some(c) = find(tag, b"charset") {
            let rest = &tag[c + 7..];
            let rest = skip(rest, |b| b == b' ' || b == b'\t');
            if let Some(rest) = rest.strip_prefix(b"=") {
                let rest = skip(rest, |b| b == b' ' || b == b'\t' || b == b'"' || b == b'\'');
                let label_len = rest
                    .iter()
                    .position(|&b| matches!(b, b'"' | b'\'' | b';' | b' ' | b'/' | b'>'))
                    .unwrap_or(rest.len());
                if let Some(enc) = Encoding::for_label(&rest[..label_len]) {
                    return Some(html_compatible(enc));
                }
            }
        }
        pos = end;
    }
    None
}

/// A meta tag is read as ASCII, so it cannot truthfully declare UTF-16 (WHATWG: use UTF-8).
fn html_compatible(enc: &'static Encoding) -> &'static Encoding {
    if enc == encoding_rs::UTF_16BE || enc == encoding_rs::UTF_16LE {
        encoding_rs::UTF_8
    } else {
        enc
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn skip(s: &[u8], pred: impl Fn(u8) -> bool) -> &[u8] {
    let n = s.iter().take_while(|&&b| pred(b)).count();
    &s[n..]
}

/// Decodes a body to text: a byte-order mark wins, then the Content-Type charset, then an HTML
/// meta declaration in the first 1 KiB, else UTF-8. Invalid sequences become U+FFFD.
/// The `encoding` of an XML declaration (`<?xml version="1.0" encoding="ISO-8859-1"?>`) at
/// the very start of the body: how RSS feeds, sitemaps and XHTML served as XML say their
/// charset when the `Content-Type` does not.
fn sniff_xml_declaration(body: &[u8]) -> Option<&'static Encoding> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if !body.starts_with(b"<?xml") {
        return None;
    }
    let head = &body[..body.len().min(1024)];
    let end = head.windows(2).position(|w| w == b"?>")?;
    let decl = &head[5..end];
    let at = decl.windows(8).position(|w| w == b"encoding")?;
    let rest = decl[at + 8..].trim_ascii_start().strip_prefix(b"=")?;
    let rest = rest.trim_ascii_start();
    let quote = *rest.first().filter(|q| **q == b'"' || **q == b'\'')?;
    let label = &rest[1..];
    let label = &label[..label.iter().position(|&b| b == quote)?];
    Encoding::for_label(label)
}

pub(crate) fn decode_text(body: &[u8], content_type: Option<&str>) -> String {
    let declared = content_type
        .and_then(charset_param)
        .and_then(|l| Encoding::for_label(l.as_bytes()));
    let ct = content_type.map(str::to_ascii_lowercase);
    let is_html = ct.as_deref().is_none_or(|ct| ct.contains("html"));
    let is_xml = ct.as_deref().is_none_or(|ct| ct.contains("xml"));
    let encoding = declared
        .or_else(|| is_xml.then(|| sniff_xml_declaration(body)).flatten())
        .or_else(|| is_html.then(|| sniff_meta_charset(body)).flatten())
        .unwrap_or(encoding_rs::UTF_8);
    // `decode` sniffs a BOM first, then falls back to `encoding`.
    let (text, _, _) = encoding.decode(body);
    text.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_and_deflate_round_trip_and_cap() {
        let plain = b"hello hello hello hello".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(
            decode_content(gz.clone(), &["gzip".into()], 1 << 20).unwrap(),
            plain
        );
        let e = decode_content(gz, &["gzip".into()], 100).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);

        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&plain).unwrap();
        assert_eq!(
            decode_content(z.finish().unwrap(), &["deflate".into()], 1 << 20).unwrap(),
            plain
        );
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(&plain).unwrap();
        assert_eq!(
            decode_content(raw.finish().unwrap(), &["deflate".into()], 1 << 20).unwrap(),
            plain
        );

        let e = decode_content(b"not gzip at all".to_vec(), &["gzip".into()], 1 << 20).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
        assert_eq!(
            decode_content(b"xz data".to_vec(), &["xz".into()], 10).unwrap(),
            b"xz data"
        );
    }

    #[test]
    fn an_xml_declaration_names_the_charset_when_the_header_does_not() {
        let feed =
            b"<?xml version=\"1.0\" encoding='ISO-8859-1'?><rss><title>caf\xe9</title></rss>";
        for ct in [
            Some("application/xml"),
            Some("application/rss+xml"),
            Some("text/xml"),
            None,
        ] {
            assert!(decode_text(feed, ct).contains("caf\u{e9}"), "{ct:?}");
        }
        // The header's charset wins; a declaration later in the body is no declaration.
        assert!(decode_text(feed, Some("text/xml; charset=utf-8")).contains('\u{fffd}'));
        let late = b" <?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>caf\xe9";
        assert!(decode_text(late, Some("application/xml")).contains('\u{fffd}'));
        // Malformed declarations fall back to UTF-8 without a panic.
        for bad in [
            &b"<?xml encoding"[..],
            b"<?xml encoding=?>",
            b"<?xml encoding=\"x?>",
            b"<?xml",
        ] {
            let _ = decode_text(bad, Some("application/xml"));
        }
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn gzip_members_are_concatenated_and_trailing_bytes_ignored_but_truncation_is_an_error() {
        let gzip = || vec!["gzip".to_string()];
        let mut two = gz(b"first ");
        two.extend(gz(b"second"));
        assert_eq!(
            decode_content(two.clone(), &gzip(), 1 << 20).unwrap(),
            b"first second"
        );
        // The cap holds over all members.
        let e = decode_content(two.clone(), &gzip(), 8).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        for tail in [&b"\0\0\0\0"[..], b"\n", b"<!-- junk -->", b"\x1f"] {
            let mut body = two.clone();
            body.extend_from_slice(tail);
            assert_eq!(
                decode_content(body, &gzip(), 1 << 20).unwrap(),
                b"first second",
                "tail {tail:?}"
            );
        }
        // A member cut short is still an error, first or later.
        let one = gz(b"a page that decodes completely");
        let e = decode_content(one[..one.len() - 3].to_vec(), &gzip(), 1 << 20).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
        assert!(e.message().contains("truncated"), "{}", e.message());
        let mut cut = one.clone();
        cut.extend_from_slice(&one[..12]);
        let e = decode_content(cut, &gzip(), 1 << 20).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
    }

    #[test]
    fn empty_bodies_are_never_decoded() {
        for coding in ["gzip", "deflate", "br", "zstd"] {
            assert_eq!(
                decode_content(Vec::new(), &[coding.into()], 10).unwrap(),
                b""
            );
        }
    }

    #[test]
    fn stacked_codings_are_capped() {
        let mut body = b"layered".to_vec();
        for _ in 0..MAX_CODINGS {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&body).unwrap();
            body = gz.finish().unwrap();
        }
        let five = vec!["gzip".to_string(); MAX_CODINGS];
        assert_eq!(
            decode_content(body.clone(), &five, 1 << 20).unwrap(),
            b"layered"
        );
        let six = vec!["gzip".to_string(); MAX_CODINGS + 1];
        let e = decode_content(body, &six, 1 << 20).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
        assert!(e.to_string().contains("stacked"), "{e}");
    }

    #[cfg(feature = "brotli")]
    #[test]
    fn brotli_decodes_and_is_capped() {
        // "hello hello hello ..." (200 × "hello "), compressed with brotli -q 5.
        let data = include_bytes!("testdata/hello.br");
        let plain = b"hello ".repeat(200);
        assert_eq!(
            decode_content(data.to_vec(), &["br".into()], 1 << 20).unwrap(),
            plain
        );
        let e = decode_content(data.to_vec(), &["br".into()], 100).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        let e = decode_content(b"\xff\xff\xffnot brotli".to_vec(), &["br".into()], 1 << 20)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn zstd_decodes_and_is_capped() {
        let data = include_bytes!("testdata/hello.zst");
        let plain = b"hello ".repeat(200);
        assert_eq!(
            decode_content(data.to_vec(), &["zstd".into()], 1 << 20).unwrap(),
            plain
        );
        let e = decode_content(data.to_vec(), &["zstd".into()], 100).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        let e = decode_content(b"not zstd at all".to_vec(), &["zstd".into()], 1 << 20).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
    }

    #[test]
    fn charset_from_header_meta_or_default() {
        let latin1 = b"caf\xe9";
        assert_eq!(
            decode_text(latin1, Some("text/html; charset=ISO-8859-1")),
            "caf\u{e9}"
        );
        assert_eq!(
            decode_text(latin1, Some("text/plain; charset=\"latin1\"")),
            "caf\u{e9}"
        );
        let meta = b"<html><head><meta charset=\"windows-1252\"></head><body>caf\xe9</body>";
        assert!(decode_text(meta, Some("text/html")).contains("caf\u{e9}"));
        let http_equiv =
            b"<meta http-equiv='Content-Type' content='text/html; charset=iso-8859-1'>\xe9";
        assert!(decode_text(http_equiv, None).ends_with('\u{e9}'));
        assert_eq!(decode_text(b"caf\xc3\xa9", None), "caf\u{e9}");
        assert_eq!(decode_text(b"bad \xff", None), "bad \u{fffd}");
        // A BOM beats the header.
        assert_eq!(
            decode_text(b"\xef\xbb\xbfok", Some("text/html; charset=latin1")),
            "ok"
        );
        // The meta tag must be in the first KiB.
        let mut late = vec![b' '; 1100];
        late.extend_from_slice(b"<meta charset=latin1>\xe9");
        assert!(decode_text(&late, None).ends_with('\u{fffd}'));
    }
}
