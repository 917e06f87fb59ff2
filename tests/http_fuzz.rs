//! Property tests: random and mutated responses, split at random points, fed to the response
//! parser and body decoders (no sockets), and — fewer of them — to the real client through a
//! socket. Whatever the bytes: no panic, no hang, and never a "success" whose body disagrees
//! with the framing.

mod support;

use std::time::Duration;

use scraipe::http::fuzz::parse_response_pieces;

/// xorshift64*: deterministic, seedable, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let gz = support::gzip(b"zipped body zipped body");
    let mut gz_resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        gz.len()
    )
    .into_bytes();
    gz_resp.extend_from_slice(&gz);
    let encoded = |coding: &str, body: &[u8]| {
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: {coding}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    };
    vec![
        encoded("br", BROTLI),
        encoded("zstd", ZSTD),
        encoded("br, gzip", &support::gzip(BROTLI)),
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n3\r\nabc\r\n0\r\nT: v\r\n\r\n".to_vec(),
        b"HTTP/1.0 404 Not Found\nContent-Type: text/html; charset=latin1\n\nnot here \xe9".to_vec(),
        b"HTTP/1.1 301 Moved\r\nLocation: /x\r\nX-Fold: a\r\n b\r\nContent-Length: 0\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n".to_vec(),
        gz_resp,
    ]
}

/// "hello " × 200, compressed by the brotli and zstd command-line tools.
const BROTLI: &[u8] = include_bytes!("../src/http/testdata/hello.br");
const ZSTD: &[u8] = include_bytes!("../src/http/testdata/hello.zst");

const TOKENS: &[&[u8]] = &[
    b"br",
    b"zstd",
    b"\r\n",
    b"\n",
    b"\r",
    b":",
    b" ",
    b"0",
    b"ffffffffffffffffffff",
    b"-1",
    b";",
    b"chunked",
    b"Content-Length: ",
    b"Transfer-Encoding: ",
    b"HTTP/1.1 ",
    b"\x00",
    b"\xff",
    b"\r\n\r\n",
    b"gzip",
    b"deflate",
];

fn mutate(rng: &mut Rng, mut data: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(6) {
        let pos = rng.below(data.len() + 1);
        match rng.below(5) {
            0 if !data.is_empty() => {
                let p = pos.min(data.len() - 1);
                data[p] = rng.next() as u8;
            }
            1 if !data.is_empty() => {
                let end = (pos + rng.below(8)).min(data.len());
                data.drain(pos.min(end)..end);
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                data.splice(pos..pos, t.iter().copied());
            }
            3 => data.truncate(pos),
            _ => {
                let n = rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                data.splice(pos..pos, bytes);
            }
        }
    }
    data
}

fn splits(rng: &mut Rng, len: usize) -> Vec<usize> {
    let mut s: Vec<usize> = (0..rng.below(6)).map(|_| rng.below(len + 1)).collect();
    s.sort_unstable();
    s
}

#[test]
fn parser_survives_random_and_mutated_responses() {
    let corpus = corpus();
    let mut rng = Rng(0x5EED_2026_1122);
    let mut ok = 0;
    for i in 0..40_000 {
        let data = if i % 10 == 0 {
            (0..rng.below(300)).map(|_| rng.next() as u8).collect()
        } else {
            let pick = rng.below(corpus.len());
            mutate(&mut rng, corpus[pick].clone())
        };
        let sp = splits(&mut rng, data.len());
        if let Ok((status, _)) = parse_response_pieces(&data, &sp, 1 << 20) {
            assert!((100..1000).contains(&status), "status {status}");
            ok += 1;
        }
    }
    // The mutations are mild enough that some inputs still parse: the test exercises both paths.
    assert!(ok > 1000, "only {ok} inputs parsed");
}

#[test]
fn split_points_never_change_the_result() {
    let corpus = corpus();
    let mut rng = Rng(42);
    for _ in 0..5_000 {
        let data = corpus[rng.below(corpus.len())].clone();
        let whole = parse_response_pieces(&data, &[], 1 << 20).map_err(|e| e.to_string());
        let sp = splits(&mut rng, data.len());
        let pieces = parse_response_pieces(&data, &sp, 1 << 20).map_err(|e| e.to_string());
        assert_eq!(whole, pieces, "splits {sp:?}");
    }
}

#[test]
fn real_client_survives_mutated_responses_over_a_socket() {
    use std::sync::{Arc, Mutex};
    let corpus = corpus();
    let rng = Arc::new(Mutex::new(Rng(7)));
    let r2 = rng.clone();
    let srv = support::TestServer::start(move |_, t| {
        let (data, pieces) = {
            let mut rng = r2.lock().unwrap();
            let pick = rng.below(corpus.len());
            let d = mutate(&mut rng, corpus[pick].clone());
            let s = splits(&mut rng, d.len());
            (d, s)
        };
        let mut last = 0;
        for s in pieces.into_iter().chain(std::iter::once(data.len())) {
            if s > last {
                support::raw(t, &data[last..s]);
                std::thread::sleep(Duration::from_millis(1));
                last = s;
            }
        }
        support::After::Close
    });
    let rt = scraipe::rt::Builder::new()
        .worker_threads(2)
        .build()
        .unwrap();
    let client = scraipe::http::Client::builder()
        .timeout(Duration::from_millis(500))
        .read_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let url = srv.url("/");
    let outcomes = rt.block_on(async {
        let mut set = scraipe::rt::JoinSet::new();
        for _ in 0..300 {
            let (c, u) = (client.clone(), url.clone());
            set.spawn(async move { c.get(&u).await.is_ok() });
        }
        let mut n = 0;
        while let Some(r) = set.join_next().await {
            r.expect("no request task panicked");
            n += 1;
        }
        n
    });
    assert_eq!(outcomes, 300);
}

/// The decoders alone (gzip, deflate, brotli, zstd, stacked): mutated streams never panic and
/// never produce more than the cap; intact ones decode exactly.
#[test]
fn decoders_survive_mutated_streams_under_the_cap() {
    let plain = b"hello ".repeat(200);
    let mut streams: Vec<(&str, Vec<u8>)> = vec![
        ("gzip", support::gzip(&plain)),
        ("gzip, gzip", support::gzip(&support::gzip(&plain))),
    ];
    if cfg!(feature = "brotli") {
        streams.push(("br", BROTLI.to_vec()));
        streams.push(("br, gzip", support::gzip(BROTLI)));
    }
    if cfg!(feature = "zstd") {
        streams.push(("zstd", ZSTD.to_vec()));
    }
    for (codings, data) in &streams {
        assert_eq!(
            scraipe::http::fuzz::decode_body(data, codings, 1 << 20).unwrap(),
            plain,
            "{codings}"
        );
        let e = scraipe::http::fuzz::decode_body(data, codings, 1000).unwrap_err();
        assert_eq!(e.kind(), scraipe::http::ErrorKind::TooLarge, "{codings}");
    }
    let mut rng = Rng(0xDEC0DE);
    let mut decoded = 0;
    for i in 0..6_000 {
        let (codings, data) = &streams[i % streams.len()];
        let data = if i % 7 == 0 {
            (0..rng.below(200)).map(|_| rng.next() as u8).collect()
        } else {
            mutate(&mut rng, data.clone())
        };
        let max = 1 + rng.below(4096);
        if let Ok(out) = scraipe::http::fuzz::decode_body(&data, codings, max) {
            assert!(out.len() <= max, "{codings}: {} > {max}", out.len());
            decoded += 1;
        }
    }
    assert!(decoded > 0);
}
