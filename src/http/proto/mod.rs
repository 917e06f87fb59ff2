//! HTTP/1.1 without I/O: parsing response heads, deciding body framing (RFC 9112 §6.3),
//! decoding chunked bodies, writing request heads. Everything here works on byte slices, so
//! it can be tested (and fuzzed) exhaustively without sockets.

pub(crate) mod chunked;
pub(crate) mod head;
pub(crate) mod request;

pub(crate) use chunked::ChunkedDecoder;
pub(crate) use head::{
    check_status_line_start, find_head_end, parse_head, Framing, HeadLimits, ResponseHead,
};
