//! A streaming decoder for the chunked transfer coding (RFC 9112 §7.1).
//!
//! Input may arrive split at any byte; the decoder keeps its place in a small state machine and
//! never buffers more than it must. It is strict where sloppiness would be dangerous (sizes,
//! overflow, the CRLF after chunk data) and lenient where real servers are sloppy (bare LF line
//! endings, spaces before extensions).

use crate::http::error::{Error, ErrorKind};

/// Longest chunk-size line (size, extensions, line ending) we accept.
const MAX_SIZE_LINE: usize = 4096;
/// Most trailer bytes we accept after the last chunk.
const MAX_TRAILERS: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of the chunk size.
    Size,
    /// After the digits: optional whitespace and `;extensions` up to the line end.
    SizeRest,
    /// Saw CR at the end of the size line; expect LF.
    SizeLf,
    /// Copying chunk data; `remaining` bytes left.
    Data,
    /// After the data: expect CR or LF.
    DataEnd,
    /// After the data and a CR: expect LF.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// CR at the end of a trailer line; expect LF.
    TrailerLf,
    /// CR of the final empty line; expect LF.
    EndLf,
    /// Finished.
    Done,
}

/// Decodes a chunked body incrementally.
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    size: u64,
    digits: usize,
    remaining: u64,
    line_len: usize,
    trailer_bytes: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder::new()
    }
}

fn protocol(msg: &str) -> Error {
    Error::new(ErrorKind::Protocol, format!("bad chunked encoding: {msg}"))
}

impl ChunkedDecoder {
    pub(crate) fn new() -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            remaining: 0,
            line_len: 0,
            trailer_bytes: 0,
        }
    }

    /// True once the terminating chunk and trailers were read.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes as much of `input` as possible, appending data to `out` (which may not grow
    /// beyond `max_out` bytes). Returns the number of input bytes consumed; when the body ends
    /// inside `input`, the bytes after it are left unconsumed (they belong to the next response).
    pub(crate) fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max_out: usize,
    ) -> Result<usize, Error> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Data {
                let take = (self.remaining.min((input.len() - i) as u64)) as usize;
                if out.len() + take > max_out {
                    return Err(Error::new(
                        ErrorKind::TooLarge,
                        format!("body exceeds the {max_out}-byte limit"),
                    ));
                }
                out.extend_from_slice(&input[i..i + take]);
                i += take;
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    self.state = State::DataEnd;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            match self.state {
                State::Size | State::SizeRest | State::SizeLf => {
                    self.line_len += 1;
                    if self.line_len > MAX_SIZE_LINE {
                        return Err(protocol("chunk-size line too long"));
                    }
                    self.size_byte(b)?;
                }
                State::DataEnd => match b {
                    b'\r' => self.state = State::DataLf,
                    b'\n' => self.start_size(),
                    _ => return Err(protocol("missing CRLF after chunk data")),
                },
                State::DataLf => match b {
                    b'\n' => self.start_size(),
                    _ => return Err(protocol("missing LF after chunk data")),
                },
                State::TrailerStart | State::Trailer | State::TrailerLf | State::EndLf => {
                    self.trailer_bytes += 1;
                    if self.trailer_bytes > MAX_TRAILERS {
                        return Err(Error::new(
                            ErrorKind::TooLarge,
                            "chunked trailers too large",
                        ));
                    }
                    self.trailer_byte(b)?;
                    if self.state == State::Done {
                        return Ok(i);
                    }
                }
                State::Done => return Ok(i - 1),
                State::Data => unreachable!("handled above"),
            }
        }
        Ok(i)
    }

    fn start_size(&mut self) {
        self.state = State::Size;
        self.size = 0;
        self.digits = 0;
        self.line_len = 0;
    }

    fn size_byte(&mut self, b: u8) -> Result<(), Error> {
        match self.state {
            State::Size => {
                if let Some(d) = (b as char).to_digit(16) {
                    if self.size > (u64::MAX >> 4) {
                        return Err(protocol("chunk size overflows"));
                    }
                    self.size = (self.size << 4) | d as u64;
                    self.digits += 1;
                    return Ok(());
                }
                if self.digits == 0 {
                    return Err(protocol("expected a hexadecimal chunk size"));
                }
                self.state = State::SizeRest;
                self.size_rest_byte(b)
            }
            State::SizeRest => self.size_rest_byte(b),
            State::SizeLf => {
                if b != b'\n' {
                    return Err(protocol("CR without LF after chunk size"));
                }
                self.end_size_line();
                Ok(())
            }
            _ => unreachable!(),
        }
    }

    fn size_rest_byte(&mut self, b: u8) -> Result<(), Error> {
        match b {
            b'\r' => self.state = State::SizeLf,
            b'\n' => self.end_size_line(),
            // Extensions and whitespace: ignored, but no control characters.
            0..=8 | 0x0b..=0x1f | 0x7f => {
                return Err(protocol("control character in chunk extension"))
            }
            _ => {}
        }
        Ok(())
    }

    fn end_size_line(&mut self) {
        if self.size == 0 {
            self.state = State::TrailerStart;
        } else {
            self.remaining = self.size;
            self.state = State::Data;
        }
    }

    fn trailer_byte(&mut self, b: u8) -> Result<(), Error> {
        self.state = match (self.state, b) {
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::TrailerStart, b'\n') => State::Done,
            (State::EndLf, b'\n') => State::Done,
            (State::EndLf, _) => return Err(protocol("CR without LF at end of body")),
            (State::Trailer, b'\r') => State::TrailerLf,
            (State::Trailer, b'\n') => State::TrailerStart,
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::TrailerLf, _) => return Err(protocol("CR without LF in trailer")),
            (_, _) => State::Trailer,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize, bool), Error> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let used = d.decode(input, &mut out, 1 << 20)?;
        Ok((out, used, d.is_done()))
    }

    #[test]
    fn decodes_with_extensions_trailers_and_bare_lf() {
        let (out, used, done) =
            decode_all(b"4;ext=1\r\nWiki\r\n5 ; x\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: v\r\n\r\nNEXT").unwrap();
        assert_eq!(out, b"Wikipedia in\r\n\r\nchunks.");
        assert!(done);
        assert_eq!(used, b"4;ext=1\r\nWiki\r\n5 ; x\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: v\r\n\r\n".len());
        let (out, _, done) = decode_all(b"3\nabc\n0\n\n").unwrap();
        assert_eq!((out.as_slice(), done), (&b"abc"[..], true));
    }

    #[test]
    fn same_result_for_every_split_point() {
        let input = b"a\r\n0123456789\r\n3;q=\"x\"\r\nabc\r\n0\r\nT: 1\r\n\r\n";
        let (whole, _, _) = decode_all(input).unwrap();
        for split in 0..input.len() {
            let mut d = ChunkedDecoder::new();
            let mut out = Vec::new();
            let a = d.decode(&input[..split], &mut out, 1 << 20).unwrap();
            assert_eq!(a, split);
            d.decode(&input[split..], &mut out, 1 << 20).unwrap();
            assert!(d.is_done());
            assert_eq!(out, whole, "split at {split}");
        }
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"4\r\nabcdX",
            b"ffffffffffffffffff\r\n",
            b"3\rabc",
            b"1;\x01\r\n",
        ] {
            assert!(
                decode_all(bad).is_err(),
                "{:?} must be refused",
                String::from_utf8_lossy(bad)
            );
        }
        let long_line = format!("1;{}\r\n", "x".repeat(5000));
        assert!(decode_all(long_line.as_bytes()).is_err());
        let mut d = ChunkedDecoder::new();
        let e = d
            .decode(b"10\r\n0123456789abcdef\r\n0\r\n\r\n", &mut Vec::new(), 8)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);
    }
}
