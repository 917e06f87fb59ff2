//! The demo site and its HTTP/1.1 server: generation, endpoints, keep-alive, pipelining,
//! limits, timeouts, concurrency and shutdown. Clients are plain blocking std sockets (so the
//! server is checked against something that is not our runtime) except for the concurrency
//! test, which uses our runtime's TcpStream.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use scraipe::demo::{
    DemoServer, DemoSite, PageKind, ServerOptions, MAX_BYTES, SCRIPT_MARKER, STYLE_MARKER,
};
use scraipe::rt::{Builder, Runtime};

// ---------- a tiny blocking HTTP/1.1 client ----------

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).unwrap();
    }

    fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: demo\r\n\r\n").as_bytes());
        self.response(false).unwrap()
    }

    /// Reads one response; `head` for the answer to a HEAD request (no body whatever the
    /// Content-Length says).
    fn response(&mut self, head: bool) -> io::Result<Response> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut parsed = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(len) = parsed.parse(&self.buf).unwrap() {
                let status = parsed.code.unwrap();
                let headers: Vec<(String, String)> = parsed
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8(h.value.to_vec()).unwrap(),
                        )
                    })
                    .collect();
                let length: usize = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.parse().unwrap())
                    .expect("every response has Content-Length");
                let length = if head { 0 } else { length };
                self.buf.drain(..len);
                while self.buf.len() < length {
                    self.fill()?;
                }
                let body = self.buf.drain(..length).collect();
                return Ok(Response {
                    status,
                    headers,
                    body,
                });
            }
            self.fill()?;
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 64 * 1024];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// True if the server closed the connection (EOF, or a reset) within the read timeout.
    fn closed_by_server(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        }
    }
}

fn runtime(workers: usize) -> Runtime {
    Builder::new().worker_threads(workers).build().unwrap()
}

fn start(rt: &Runtime, pages: usize, options: ServerOptions) -> DemoServer {
    let site = DemoSite::new(pages, 11);
    DemoServer::start_with(rt.handle(), "127.0.0.1:0".parse().unwrap(), site, options).unwrap()
}

/// Stops the server and checks that no connection task panicked.
fn finish(mut server: DemoServer) {
    server.stop();
    assert_eq!(server.connection_panics(), 0, "a connection task panicked");
}

// ---------- the generated site ----------

#[test]
fn generation_is_deterministic() {
    let (a, b) = (DemoSite::new(120, 9), DemoSite::new(120, 9));
    for i in 0..120 {
        assert_eq!(a.body(i), b.body(i), "page {i}");
        assert_eq!(a.text(i), b.text(i), "page {i}");
        assert_eq!(a.expected(i), b.expected(i));
    }
    assert_eq!(a.index_html(), b.index_html());
    let other = DemoSite::new(120, 10);
    assert_ne!(a.body(0), other.body(0), "the seed decides the text");
    for i in 0..120 {
        assert_eq!(
            a.kind(i),
            other.kind(i),
            "behaviour depends on the index only"
        );
    }
    assert!(a.expected(120).is_none() && a.body(120).is_none() && a.title(120).is_none());
}

#[test]
fn pages_vary_in_size_and_carry_what_extractors_need() {
    let site = DemoSite::new(1000, 3);
    let mut sizes = Vec::new();
    for i in 0..1000 {
        let body = site.body(i).unwrap();
        let html = std::str::from_utf8(&body).expect("pages are UTF-8");
        let Some(text) = site.text(i) else { continue };
        let title = site.title(i).unwrap();
        assert!(html.contains(&format!("<title>Page {i}: {title}</title>")));
        assert!(html.contains(&format!("<h1>{title}</h1>")));
        assert!(
            html.contains("&amp;") && !html.is_ascii(),
            "page {i}: entity and non-ASCII"
        );
        assert!(html.contains("<a href=\"/page/") && html.contains("<a href=\"/\">"));
        assert!(text.starts_with(&title));
        assert!(
            text.contains('&') && !text.contains("&amp;"),
            "text is decoded"
        );
        assert!(!text.contains(SCRIPT_MARKER) && !text.contains(STYLE_MARKER));
        if body.len() >= 2048 {
            assert!(
                html.contains("<script>") && html.contains(SCRIPT_MARKER),
                "page {i}"
            );
            assert!(
                html.contains("<style>") && html.contains(STYLE_MARKER),
                "page {i}"
            );
            assert!(html.contains("<h2>") && html.contains("<!--"), "page {i}");
        }
        sizes.push(body.len());
    }
    sizes.sort_unstable();
    let (min, max, median) = (sizes[0], sizes[sizes.len() - 1], sizes[sizes.len() / 2]);
    assert!(min < 600, "smallest page {min}");
    assert!(
        (90 * 1024..=110 * 1024).contains(&max),
        "largest page {max}"
    );
    assert!(
        (2 * 1024..=10 * 1024).contains(&median),
        "median page {median}"
    );
    sizes.dedup();
    assert!(
        sizes.len() > 500,
        "sizes are varied: {} distinct",
        sizes.len()
    );

    let index = String::from_utf8(site.index_html().to_vec()).unwrap();
    assert_eq!(index.matches("<li><a href=\"/page/").count(), 1000);
}

#[test]
fn special_pages_follow_the_documented_rules() {
    let site = DemoSite::new(100, 0);
    let e = |i: usize| site.expected(i).unwrap();
    assert_eq!(e(0).kind, PageKind::Normal);
    assert!(e(3).is_slow() && e(11).is_slow() && e(23).is_slow());
    assert_eq!((e(7).status, e(7).final_page), (404, None));
    assert_eq!((e(17).status, e(17).final_page), (500, None));
    assert!(matches!(
        e(5).kind,
        PageKind::Redirect {
            status: 301,
            absolute: false,
            ..
        }
    ));
    assert!(matches!(
        e(15).kind,
        PageKind::Redirect {
            status: 302,
            absolute: false,
            ..
        }
    ));
    assert!(matches!(
        e(25).kind,
        PageKind::Redirect {
            status: 301,
            absolute: true,
            ..
        }
    ));
    assert!(matches!(
        e(35).kind,
        PageKind::Redirect {
            status: 302,
            absolute: true,
            ..
        }
    ));
    assert_eq!(site.urls("http://h:1/")[42], "http://h:1/page/42");
}

// ---------- the server against the site ----------

#[test]
fn server_answers_what_expected_says() {
    let rt = runtime(2);
    let server = start(&rt, 60, ServerOptions::default());
    let site = server.site().clone();
    let base = server.base_url().to_string();
    // Four connections in parallel, so the slow pages (up to 300 ms each) overlap.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (site, base, addr) = (site.clone(), base.clone(), server.local_addr());
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                for i in (t..site.pages()).step_by(4) {
                    let expected = site.expected(i).unwrap();
                    let started = Instant::now();
                    let r = client.get(&format!("/page/{i}"));
                    assert_eq!(r.status, expected.status, "page {i}");
                    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
                    assert!(r.header("date").is_some_and(|d| d.ends_with(" GMT")));
                    assert_eq!(r.body, *site.body(i).unwrap(), "page {i}");
                    assert!(started.elapsed() >= expected.delay, "page {i} came early");
                    if let PageKind::Redirect {
                        target, absolute, ..
                    } = expected.kind
                    {
                        let location = r.header("location").unwrap().to_string();
                        let path = format!("/page/{target}");
                        let want = if absolute {
                            format!("{base}{path}")
                        } else {
                            path.clone()
                        };
                        assert_eq!(location, want);
                        let followed = client.get(&path);
                        assert_eq!(followed.status, expected.final_status);
                        assert_eq!(Some(target), expected.final_page);
                        assert_eq!(followed.body, *site.body(target).unwrap());
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(server.connections_accepted(), 4);
    finish(server);
}

#[test]
fn other_endpoints() {
    let rt = runtime(1);
    let server = start(&rt, 25, ServerOptions::default());
    let mut c = Client::connect(server.local_addr());

    let index = c.get("/");
    assert_eq!(index.status, 200);
    assert_eq!(index.body, *server.site().index_html());
    let health = c.get("/healthz");
    assert_eq!((health.status, health.body.as_slice()), (200, &b"ok\n"[..]));
    assert_eq!(
        health.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    for path in ["/nope", "/page/25", "/page/007", "/page/x"] {
        assert_eq!(c.get(path).status, 404, "{path}");
    }
    for path in [
        "/bytes/16777217",
        "/bytes/-1",
        "/delay/60001",
        "/delay/soon",
    ] {
        assert_eq!(c.get(path).status, 400, "{path}");
    }
    assert_eq!(
        c.get("/page/1?utm_source=test").body,
        *server.site().body(1).unwrap()
    );
    assert_eq!(server.connections_accepted(), 1);
    finish(server);
}

#[test]
fn head_and_other_methods() {
    let rt = runtime(1);
    let server = start(&rt, 10, ServerOptions::default());
    let mut c = Client::connect(server.local_addr());
    let full = c.get("/page/0");
    c.send(b"HEAD /page/0 HTTP/1.1\r\nHost: demo\r\n\r\n");
    let head = c.response(true).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length").unwrap(),
        full.body.len().to_string()
    );
    c.send(b"HEAD /bytes/1000 HTTP/1.1\r\nHost: demo\r\n\r\n");
    assert_eq!(
        c.response(true).unwrap().header("content-length"),
        Some("1000")
    );
    // Had HEAD sent a body, this response would not parse.
    assert_eq!(c.get("/healthz").body, b"ok\n");

    for method in ["DELETE", "PUT", "OPTIONS"] {
        c.send(format!("{method} /page/0 HTTP/1.1\r\nHost: demo\r\n\r\n").as_bytes());
        let r = c.response(false).unwrap();
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    // A request with a body is answered, then the connection closes (the body is never read).
    c.send(b"POST /page/0 HTTP/1.1\r\nHost: demo\r\nContent-Length: 5\r\n\r\nhello");
    let r = c.response(false).unwrap();
    assert_eq!((r.status, r.header("connection")), (405, Some("close")));
    assert!(c.closed_by_server());
    finish(server);
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let rt = runtime(1);
    let server = start(&rt, 30, ServerOptions::default());
    let mut c = Client::connect(server.local_addr());
    for i in 0..50 {
        let r = c.get(&format!("/bytes/{}", i * 100));
        assert_eq!((r.status, r.body.len()), (200, i * 100));
        assert_eq!(
            r.header("connection"),
            None,
            "HTTP/1.1 keeps alive without saying so"
        );
    }
    assert_eq!(server.connections_accepted(), 1);
    assert_eq!(server.requests_served(), 50);
    finish(server);
}

#[test]
fn connection_close_and_http10() {
    let rt = runtime(1);
    let server = start(&rt, 10, ServerOptions::default());
    let addr = server.local_addr();

    let mut c = Client::connect(addr);
    c.send(b"GET /page/0 HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n");
    let r = c.response(false).unwrap();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert!(c.closed_by_server());

    let mut c = Client::connect(addr);
    c.send(b"GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(
        c.response(false).unwrap().header("connection"),
        Some("close")
    );
    assert!(c.closed_by_server(), "HTTP/1.0 closes by default");

    let mut c = Client::connect(addr);
    for _ in 0..3 {
        c.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let r = c.response(false).unwrap();
        assert_eq!(
            (r.status, r.header("connection")),
            (200, Some("keep-alive"))
        );
    }
    assert_eq!(server.connections_accepted(), 3);
    finish(server);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let rt = runtime(1);
    let server = start(&rt, 30, ServerOptions::default());
    let site = server.site().clone();
    let mut c = Client::connect(server.local_addr());
    // Page 3 is slow: the answers before it must not wait for it, those after it must not
    // overtake it.
    let paths = [
        "/page/0",
        "/bytes/70000",
        "/page/3",
        "/healthz",
        "/page/7",
        "/bytes/5",
        "/page/1",
    ];
    let mut batch = Vec::new();
    for p in paths {
        batch.extend_from_slice(format!("GET {p} HTTP/1.1\r\nHost: demo\r\n\r\n").as_bytes());
    }
    c.send(&batch);
    let responses: Vec<Response> = paths.iter().map(|_| c.response(false).unwrap()).collect();
    assert_eq!(responses[0].body, *site.body(0).unwrap());
    assert_eq!(responses[1].body.len(), 70000);
    assert_eq!(responses[2].body, *site.body(3).unwrap());
    assert_eq!(responses[3].body, b"ok\n");
    assert_eq!(responses[4].status, 404);
    assert_eq!(responses[5].body.len(), 5);
    assert_eq!(responses[6].body, *site.body(1).unwrap());
    // A request split over many writes is assembled.
    for piece in [
        &b"GET /heal"[..],
        b"thz HTTP/1.1\r\nHo",
        b"st: demo\r\n",
        b"\r\n",
    ] {
        c.send(piece);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(c.response(false).unwrap().body, b"ok\n");
    assert_eq!(server.connections_accepted(), 1);
    finish(server);
}

// ---------- robustness ----------

#[test]
fn malformed_requests_get_400_and_the_server_carries_on() {
    let rt = runtime(1);
    let server = start(&rt, 10, ServerOptions::default());
    let addr = server.local_addr();
    let garbage: &[&[u8]] = &[
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", // a TLS ClientHello
        b"GET / HTTP/1.1\r\n\r\n",                               // no Host
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"HELLO\r\n\r\n",
        b"GET  /  HTTP/1.1\r\nHost: x\r\n\r\n",
    ];
    for (n, raw) in garbage.iter().enumerate() {
        let mut c = Client::connect(addr);
        c.send(raw);
        let r = c
            .response(false)
            .unwrap_or_else(|e| panic!("garbage #{n}: {e}"));
        assert_eq!(r.status, 400, "garbage #{n}");
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.closed_by_server());
    }
    // Random bytes: every connection ends with a response or a close, never a hang or panic.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..100 {
        let mut raw = Vec::new();
        for _ in 0..(state % 300) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            raw.push(state as u8);
        }
        raw.extend_from_slice(b"\r\n\r\n");
        let mut c = Client::connect(addr);
        c.send(&raw);
        if let Ok(r) = c.response(false) {
            assert!(
                r.status == 400 || r.status == 431 || r.status == 414,
                "{}",
                r.status
            );
        }
    }
    assert_eq!(Client::connect(addr).get("/healthz").status, 200);
    finish(server);
}

#[test]
fn oversized_heads_get_431_or_414() {
    let rt = runtime(1);
    let server = start(&rt, 10, ServerOptions::default());
    let addr = server.local_addr();

    let mut c = Client::connect(addr);
    let mut raw = b"GET / HTTP/1.1\r\nHost: demo\r\nX-Big: ".to_vec();
    raw.resize(raw.len() + 100 * 1024, b'a');
    raw.extend_from_slice(b"\r\n\r\n");
    c.send(&raw);
    let r = c.response(false).unwrap();
    assert_eq!((r.status, r.header("connection")), (431, Some("close")));
    assert!(c.closed_by_server());

    let mut c = Client::connect(addr);
    let mut raw = b"GET /".to_vec();
    raw.resize(40 * 1024, b'a');
    c.send(&raw);
    assert_eq!(c.response(false).unwrap().status, 414);

    let mut c = Client::connect(addr);
    let mut raw = b"GET / HTTP/1.1\r\nHost: demo\r\n".to_vec();
    for i in 0..100 {
        raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    c.send(&raw);
    assert_eq!(c.response(false).unwrap().status, 431, "too many headers");

    // Just under the limit is fine.
    let mut c = Client::connect(addr);
    let mut raw = b"GET /healthz HTTP/1.1\r\nHost: demo\r\nX-Big: ".to_vec();
    raw.resize(15 * 1024, b'a');
    raw.extend_from_slice(b"\r\n\r\n");
    c.send(&raw);
    assert_eq!(c.response(false).unwrap().status, 200);
    finish(server);
}

#[test]
fn idle_connections_are_closed() {
    let rt = runtime(1);
    let idle = Duration::from_millis(300);
    let server = start(
        &rt,
        10,
        ServerOptions {
            idle_timeout: idle,
            ..Default::default()
        },
    );
    let addr = server.local_addr();

    // Silent from the start.
    let mut c = Client::connect(addr);
    let started = Instant::now();
    assert!(c.closed_by_server());
    let waited = started.elapsed();
    assert!(
        waited >= idle - Duration::from_millis(20) && waited < Duration::from_secs(3),
        "{waited:?}"
    );

    // Idle after a request; busy connections are not cut (the deadline moves with each answer).
    let mut c = Client::connect(addr);
    for _ in 0..6 {
        assert_eq!(c.get("/healthz").status, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    let started = Instant::now();
    assert!(c.closed_by_server());
    assert!(started.elapsed() < Duration::from_secs(3));

    // A head trickling in is cut at the deadline too (slow loris).
    let mut c = Client::connect(addr);
    let started = Instant::now();
    c.send(b"GET / HTTP/1.1\r\n");
    for _ in 0..20 {
        if c.stream.write_all(b"X-Slow: 1\r\n").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(c.closed_by_server());
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(server.open_connections(), 0);
    finish(server);
}

#[test]
fn delay_holds_and_bytes_are_exact() {
    let rt = runtime(1);
    let server = start(&rt, 10, ServerOptions::default());
    let mut c = Client::connect(server.local_addr());
    let started = Instant::now();
    let r = c.get("/delay/200");
    assert_eq!(r.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(c.get("/delay/0").status == 200);

    for n in [
        0,
        1,
        1024,
        16 * 1024,
        16 * 1024 + 1,
        64 * 1024,
        64 * 1024 + 1,
        1_000_000,
        MAX_BYTES,
    ] {
        let r = c.get(&format!("/bytes/{n}"));
        assert_eq!((r.status, r.body.len()), (200, n), "n = {n}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert!(r.body.is_ascii());
    }
    finish(server);
}

#[test]
fn two_hundred_concurrent_connections() {
    let server_rt = runtime(2);
    let server = start(&server_rt, 100, ServerOptions::default());
    let addr = server.local_addr();
    let client_rt = runtime(1);
    let started = Instant::now();
    let statuses = client_rt.block_on(async move {
        let mut set = scraipe::rt::JoinSet::new();
        for i in 0..200usize {
            set.spawn(async move {
                let stream = scraipe::rt::net::TcpStream::connect(addr).await?;
                let mut statuses = Vec::new();
                // Every connection holds a 300 ms request: 200 of them in sequence would take
                // a minute, concurrently they take about 300 ms.
                for path in ["/delay/300".to_string(), format!("/page/{}", i % 100)] {
                    let req = format!("GET {path} HTTP/1.1\r\nHost: demo\r\n\r\n");
                    stream.write_all(req.as_bytes()).await?;
                    statuses.push(read_status_and_body(&stream).await?);
                }
                Ok::<_, io::Error>((i, statuses))
            });
        }
        let mut all = Vec::new();
        while let Some(done) = set.join_next().await {
            all.push(done.unwrap().unwrap());
        }
        all
    });
    let elapsed = started.elapsed();
    assert_eq!(statuses.len(), 200);
    let site = server.site();
    for (i, s) in statuses {
        assert_eq!(
            s,
            [200, site.expected(i % 100).unwrap().status],
            "connection {i}"
        );
    }
    assert!(
        elapsed < Duration::from_secs(5),
        "not concurrent: {elapsed:?}"
    );
    assert_eq!(server.connections_accepted(), 200);
    assert_eq!(server.requests_served(), 400);
    finish(server);
}

#[test]
fn a_burst_of_connects_beyond_the_default_backlog_is_not_dropped() {
    // The kernel completes handshakes into the accept queue while the server is busy; with the
    // usual listen backlog of 128, connects beyond that are dropped and retried only a second
    // later. Keep the server's only worker busy while 1,000 clients connect, then check that
    // none of them had to wait for a retry.
    const BURST: usize = 1000;
    let server_rt = runtime(1);
    let server = start(&server_rt, 10, ServerOptions::default());
    let addr = server.local_addr();
    let (busy_tx, busy_rx) = std::sync::mpsc::channel();
    server_rt.spawn(async move {
        busy_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(300)); // blocks the worker on purpose
    });
    busy_rx.recv().unwrap();
    let client_rt = runtime(1);
    let slowest = client_rt.block_on(async move {
        let mut set = scraipe::rt::JoinSet::new();
        for _ in 0..BURST {
            set.spawn(async move {
                let started = Instant::now();
                let stream = scraipe::rt::net::TcpStream::connect(addr).await?;
                stream
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: demo\r\n\r\n")
                    .await?;
                assert_eq!(read_status_and_body(&stream).await?, 200);
                Ok::<_, io::Error>(started.elapsed())
            });
        }
        let mut slowest = Duration::ZERO;
        while let Some(done) = set.join_next().await {
            slowest = slowest.max(done.unwrap().unwrap());
        }
        slowest
    });
    assert!(
        slowest < Duration::from_millis(950),
        "slowest request took {slowest:?}"
    );
    assert_eq!(server.connections_accepted(), BURST as u64);
    finish(server);
}

/// Reads one response with our runtime's TcpStream; returns its status.
async fn read_status_and_body(stream: &scraipe::rt::net::TcpStream) -> io::Result<u16> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(len)) = r.parse(&buf) {
            let cl: usize = r
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                .unwrap();
            let status = r.code.unwrap();
            while buf.len() < len + cl {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(status);
        }
    }
}

#[test]
fn stop_closes_connections_and_the_listener() {
    let rt = runtime(1);
    let mut server = start(&rt, 10, ServerOptions::default());
    let addr = server.local_addr();
    let mut idle = Client::connect(addr);
    assert_eq!(idle.get("/healthz").status, 200);
    // A request in progress is cut off too.
    let mut busy = Client::connect(addr);
    busy.send(b"GET /delay/5000 HTTP/1.1\r\nHost: demo\r\n\r\n");
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    server.stop();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(idle.closed_by_server());
    assert!(busy.closed_by_server());
    assert_eq!(server.open_connections(), 0);
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
    server.stop(); // idempotent
    assert_eq!(server.connection_panics(), 0);

    // Dropping the runtime first is fine too.
    let server = start(&rt, 10, ServerOptions::default());
    drop(rt);
    drop(server);
}

#[test]
fn works_on_a_runtime_without_worker_threads() {
    let rt = Builder::new_current_thread().build().unwrap();
    let server = start(&rt, 10, ServerOptions::default());
    let addr = server.local_addr();
    let site = server.site().clone();
    let client = std::thread::spawn(move || Client::connect(addr).get("/page/2").body);
    // Nobody drives a worker-less runtime unless we do.
    let body = rt.block_on(async {
        while !client.is_finished() {
            scraipe::rt::sleep(Duration::from_millis(5)).await;
        }
        client.join().unwrap()
    });
    assert_eq!(body, *site.body(2).unwrap());
    finish(server);
}

/// A naive extractor: drop `<head>`, scripts, styles and comments, turn tags into spaces,
/// decode the entities the generator uses.
fn naive_visible_words(html: &str) -> Vec<String> {
    let mut rest = html.to_string();
    for (open, close) in [
        ("<head>", "</head>"),
        ("<script>", "</script>"),
        ("<style>", "</style>"),
        ("<!--", "-->"),
    ] {
        while let Some(start) = rest.find(open) {
            let end = rest[start..]
                .find(close)
                .map(|e| start + e + close.len())
                .unwrap();
            rest.replace_range(start..end, " ");
        }
    }
    let mut out = String::new();
    let mut in_tag = false;
    for ch in rest.chars() {
        match ch {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(ch),
            _ => {}
        }
    }
    let decoded = [
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&quot;", "\""),
        ("&#39;", "'"),
        ("&eacute;", "é"),
        ("&mdash;", "—"),
        ("&copy;", "©"),
        ("&#8364;", "€"),
        ("&#x2603;", "☃"),
        ("&amp;", "&"),
    ]
    .iter()
    .fold(out, |s, (entity, text)| s.replace(entity, text));
    decoded.split_whitespace().map(str::to_string).collect()
}

#[test]
fn visible_text_matches_the_html() {
    let site = DemoSite::new(200, 5);
    let mut checked = 0;
    for i in 0..200 {
        let Some(text) = site.text(i) else { continue };
        let html = String::from_utf8(site.body(i).unwrap().to_vec()).unwrap();
        let words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
        assert_eq!(naive_visible_words(&html), words, "page {i}");
        checked += 1;
    }
    assert_eq!(checked, 200 * 8 / 10);
}

#[test]
fn server_and_site_can_move_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<DemoServer>();
    assert_send_sync::<DemoSite>();
}
