//! Writing request heads.

use crate::http::Headers;

/// Appends `METHOD target HTTP/1.1`, the headers and the blank line to `out`.
pub(crate) fn write_head(out: &mut Vec<u8>, method: &str, target: &str, headers: &Headers) {
    out.reserve(
        64 + target.len()
            + headers
                .iter()
                .map(|(n, v)| n.len() + v.len() + 4)
                .sum::<usize>(),
    );
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers.iter() {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        // CR/LF in a value would let a caller inject headers; they are replaced by spaces.
        out.extend(
            value
                .bytes()
                .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_head_and_neutralises_crlf() {
        let mut h = Headers::new();
        h.append("Host", "example.com");
        h.append("X-Evil", "a\r\nInjected: 1");
        let mut out = Vec::new();
        write_head(&mut out, "GET", "/a?b=c", &h);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nX-Evil: a  Injected: 1\r\n\r\n"
        );
    }
}
