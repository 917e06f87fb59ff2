//! The HTTP client against a scripted server: correct responses, every framing rule, and the
//! faults real servers produce.

mod support;

use std::time::{Duration, Instant};

use scraipe::http::{Client, ErrorKind, Method};
use scraipe::rt::{Builder, Runtime};
use support::{gzip, raw, reset, respond, After, Seen, TestServer, Transport};

fn rt() -> Runtime {
    Builder::new().worker_threads(2).build().unwrap()
}

fn routes(req: &Seen, t: &mut dyn Transport) -> After {
    let path = req.path.split('?').next().unwrap_or("");
    match path {
        "/ok" | "/a/ok" => respond(t, "200 OK", &[("Content-Type", "text/plain")], b"hello"),
        "/echo" => {
            let body = format!("{} {} {}", req.method, req.path, String::from_utf8_lossy(&req.body));
            respond(t, "200 OK", &[], body.as_bytes())
        }
        "/chunked" => raw(
            t,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=val\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n",
        ),
        "/close-delimited" => {
            raw(t, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end");
            return After::Close;
        }
        "/truncated-length" => {
            raw(t, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b");
            return After::Close;
        }
        "/truncated-chunked" => {
            raw(t, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly part");
            return After::Close;
        }
        "/stall-body" => {
            raw(t, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nstart");
            std::thread::sleep(Duration::from_secs(5));
            return After::Close;
        }
        "/dribble-headers" => {
            raw(t, b"HTTP/1.1 200 OK\r\n");
            for i in 0..200 {
                raw(t, format!("X-{i}: a\r\n").as_bytes());
                std::thread::sleep(Duration::from_millis(25));
            }
            return After::Close;
        }
        "/reset" => {
            reset(t);
            return After::Close;
        }
        "/huge-header" => {
            let mut r = b"HTTP/1.1 200 OK\r\nX-Huge: ".to_vec();
            r.extend(std::iter::repeat_n(b'a', 4 << 20));
            r.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
            raw(t, &r);
            return After::Close;
        }
        "/endless-headers" => {
            raw(t, b"HTTP/1.1 200 OK\r\n");
            for i in 0..100_000 {
                if t.write_all(format!("X-Header-{i}: value\r\n").as_bytes()).is_err() {
                    break;
                }
            }
            return After::Close;
        }
        "/many-cookies" => {
            let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n".to_vec();
            for i in 0..150 {
                r.extend_from_slice(format!("Set-Cookie: c{i}=v\r\n").as_bytes());
            }
            r.extend_from_slice(b"\r\nok");
            raw(t, &r);
        }
        "/garbage" => {
            raw(t, b"SSH-2.0-OpenSSH_9.6\r\n\r\n");
            return After::Close;
        }
        "/bad-length" => raw(t, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
        "/loop" => respond(t, "302 Found", &[("Location", "/loop")], b""),
        "/a/b/rel" => respond(t, "301 Moved", &[("Location", "../ok?from=rel")], b""),
        "/post-307" => respond(t, "307 Temporary Redirect", &[("Location", "/echo")], b""),
        "/post-303" => respond(t, "303 See Other", &[("Location", "/echo")], b""),
        "/gzip" => {
            let body = gzip(&b"compressed text ".repeat(1000));
            respond(t, "200 OK", &[("Content-Encoding", "gzip")], &body)
        }
        "/gzip-bomb" => {
            let body = gzip(&vec![0u8; 2 << 20]);
            respond(t, "200 OK", &[("Content-Encoding", "gzip")], &body)
        }
        "/latin1-header" => respond(t, "200 OK", &[("Content-Type", "text/html; charset=ISO-8859-1")], b"<p>caf\xe9 na\xefve</p>"),
        "/latin1-meta" => respond(
            t,
            "200 OK",
            &[("Content-Type", "text/html")],
            b"<html><head><meta charset=\"iso-8859-1\"><title>t</title></head><body>Gr\xfc\xdfe</body></html>",
        ),
        "/big" => respond(t, "200 OK", &[], &vec![b'x'; 10 << 20]),
        "/interim" => raw(
            t,
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 199 Whatever\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
        ),
        "/no-content" => raw(t, b"HTTP/1.1 204 No Content\r\n\r\n"),
        "/not-modified" => raw(t, b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n"),
        "/te-and-cl" => raw(t, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
        "/obs-fold-bare-lf" => raw(t, b"HTTP/1.1 200 OK\nX-Folded: first\n  second\nContent-Length: 4\n\nbody"),
        "/close-after" => respond(t, "200 OK", &[("Connection", "close")], b"bye"),
        "/silent-close-after" => {
            // Keep-alive in headers, then close anyway once idle: the client must notice.
            respond(t, "200 OK", &[], b"served");
            std::thread::sleep(Duration::from_millis(50));
            return After::Close;
        }
        "/headers" => {
            let mut names: Vec<String> = req.headers.iter().map(|(n, v)| format!("{}={v}", n.to_lowercase())).collect();
            names.sort();
            respond(t, "200 OK", &[], names.join("\n").as_bytes())
        }
        _ => respond(t, "404 Not Found", &[], b"no such page"),
    }
    After::KeepAlive
}

fn server() -> TestServer {
    TestServer::start(routes)
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

#[test]
fn get_ok_with_headers_and_version() {
    let (rt, srv, c) = (rt(), server(), client());
    let r = rt.block_on(c.get(&srv.url("/ok"))).unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), "HTTP/1.1");
    assert_eq!(r.header("CONTENT-TYPE"), Some("text/plain"));
    assert_eq!(r.text(), "hello");
    assert_eq!(r.url().as_str(), srv.url("/ok"));
    let seen = srv.seen();
    assert_eq!(seen[0].header("host"), Some(srv.addr.to_string().as_str()));
    assert!(seen[0]
        .header("user-agent")
        .unwrap()
        .starts_with("scraipe/"));
    // brotli and zstd are advertised only when compiled in.
    let mut accept = vec!["gzip", "deflate"];
    if cfg!(feature = "brotli") {
        accept.push("br");
    }
    if cfg!(feature = "zstd") {
        accept.push("zstd");
    }
    assert_eq!(
        seen[0].header("accept-encoding"),
        Some(accept.join(", ").as_str())
    );
}

#[test]
fn chunked_close_delimited_interim_and_empty_bodies() {
    let (rt, srv, c) = (rt(), server(), client());
    rt.block_on(async {
        assert_eq!(
            c.get(&srv.url("/chunked")).await.unwrap().text(),
            "hello, world"
        );
        assert_eq!(
            c.get(&srv.url("/close-delimited")).await.unwrap().text(),
            "until the end"
        );
        let r = c.get(&srv.url("/interim")).await.unwrap();
        assert_eq!((r.status(), r.text().as_str()), (200, "final"));
        let r = c.get(&srv.url("/no-content")).await.unwrap();
        assert_eq!((r.status(), r.body().len()), (204, 0));
        let r = c.get(&srv.url("/not-modified")).await.unwrap();
        assert_eq!((r.status(), r.body().len()), (304, 0));
        let r = c.head(&srv.url("/ok")).await.unwrap();
        assert_eq!((r.status(), r.body().len()), (200, 0));
        // The connection survived the HEAD (no body was expected or read).
        assert_eq!(c.get(&srv.url("/ok")).await.unwrap().text(), "hello");
        let r = c.get(&srv.url("/obs-fold-bare-lf")).await.unwrap();
        assert_eq!(r.header("x-folded"), Some("first second"));
        assert_eq!(r.text(), "body");
        let r = c.get(&srv.url("/many-cookies")).await.unwrap();
        assert_eq!(r.headers().get_all("set-cookie").count(), 150);
    });
}

#[test]
fn truncated_bodies_are_errors_not_short_successes() {
    let (rt, srv, c) = (rt(), server(), client());
    rt.block_on(async {
        let e = c.get(&srv.url("/truncated-length")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Incomplete, "{e}");
        assert!(e.to_string().contains("10 of 100"), "{e}");
        let e = c.get(&srv.url("/truncated-chunked")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Incomplete, "{e}");
        assert_eq!(e.url(), Some(srv.url("/truncated-chunked").as_str()));
    });
}

#[test]
fn stalled_body_hits_the_no_progress_timeout_on_time() {
    let (rt, srv, c) = (rt(), server(), client());
    let t0 = Instant::now();
    let e = rt.block_on(c.get(&srv.url("/stall-body"))).unwrap_err();
    let took = t0.elapsed();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("no data received for 500 ms"), "{e}");
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(1500),
        "took {took:?}"
    );
}

#[test]
fn dribbled_headers_hit_the_total_timeout_on_time() {
    let rt = rt();
    let srv = server();
    let c = Client::builder()
        .timeout(Duration::from_millis(800))
        .build()
        .unwrap();
    let t0 = Instant::now();
    let e = rt
        .block_on(c.get(&srv.url("/dribble-headers")))
        .unwrap_err();
    let took = t0.elapsed();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("800 ms"), "{e}");
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_millis(1500),
        "took {took:?}"
    );
}

#[test]
fn hostile_heads_are_bounded() {
    let (rt, srv, c) = (rt(), server(), client());
    rt.block_on(async {
        let e = c.get(&srv.url("/huge-header")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
        let e = c.get(&srv.url("/endless-headers")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
        let e = c.get(&srv.url("/garbage")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
        assert!(e.to_string().contains("SSH-2.0"), "{e}");
        let e = c.get(&srv.url("/bad-length")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
        assert!(e.to_string().contains("conflicting Content-Length"), "{e}");
        let e = c.get(&srv.url("/reset")).await.unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::Io | ErrorKind::Incomplete),
            "{e:?}"
        );
    });
}

#[test]
fn redirects_relative_loop_and_method_rules() {
    let (rt, srv, c) = (rt(), server(), client());
    rt.block_on(async {
        let r = c.get(&srv.url("/a/b/rel")).await.unwrap();
        assert_eq!(r.text(), "hello");
        assert_eq!(r.url().as_str(), srv.url("/a/ok?from=rel"));
        let e = c.get(&srv.url("/loop")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Redirect);
        assert!(e.to_string().contains("stopped after 10 redirects"), "{e}");
        let r = c.post(&srv.url("/post-307")).body("payload").await.unwrap();
        assert_eq!(r.text(), "POST /echo payload");
        let r = c.post(&srv.url("/post-303")).body("payload").await.unwrap();
        assert_eq!(r.text(), "GET /echo ");
        let r = c
            .request(Method::Put, &srv.url("/echo"))
            .body(b"x".to_vec())
            .await
            .unwrap();
        assert_eq!(r.text(), "PUT /echo x");
    });
    let none = Client::builder().max_redirects(0).build().unwrap();
    let r = rt.block_on(none.get(&srv.url("/loop"))).unwrap();
    assert_eq!(r.status(), 302);
}

#[test]
fn credentials_dropped_when_redirect_changes_origin() {
    let rt = rt();
    let target = server();
    let target_url = format!("http://localhost:{}/headers", target.addr.port());
    let origin = TestServer::start(move |_, t| {
        respond(t, "302 Found", &[("Location", &target_url)], b"");
        After::KeepAlive
    });
    let c = client();
    let r = rt
        .block_on(
            c.get(&origin.url("/"))
                .header("Authorization", "Bearer secret")
                .header("Cookie", "s=1")
                .header("X-Keep", "1"),
        )
        .unwrap();
    let seen = r.text();
    assert!(seen.contains("x-keep=1"), "{seen}");
    assert!(
        !seen.contains("authorization") && !seen.contains("cookie"),
        "{seen}"
    );
}

#[test]
fn gzip_decoded_and_capped_after_decompression() {
    let (rt, srv) = (rt(), server());
    let c = Client::builder().max_body_size(1 << 20).build().unwrap();
    rt.block_on(async {
        let r = c.get(&srv.url("/gzip")).await.unwrap();
        assert_eq!(r.text(), "compressed text ".repeat(1000));
        assert!(r.header("content-encoding").is_none());
        let e = c.get(&srv.url("/gzip-bomb")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
        assert!(e.to_string().contains("decompressed"), "{e}");
        let e = c.get(&srv.url("/big")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    });
}

#[test]
fn ten_mib_body() {
    let (rt, srv, c) = (rt(), server(), client());
    let r = rt.block_on(c.get(&srv.url("/big"))).unwrap();
    assert_eq!(r.body().len(), 10 << 20);
    assert!(r.body().iter().all(|&b| b == b'x'));
}

#[test]
fn charsets_from_header_and_meta() {
    let (rt, srv, c) = (rt(), server(), client());
    rt.block_on(async {
        assert_eq!(
            c.get(&srv.url("/latin1-header")).await.unwrap().text(),
            "<p>caf\u{e9} na\u{ef}ve</p>"
        );
        assert!(c
            .get(&srv.url("/latin1-meta"))
            .await
            .unwrap()
            .text()
            .contains("Gr\u{fc}\u{df}e"));
    });
}

#[test]
fn keep_alive_reuse_counted_on_the_server() {
    let (rt, srv, c) = (rt(), server(), client());
    rt.block_on(async {
        for _ in 0..20 {
            assert_eq!(c.get(&srv.url("/ok")).await.unwrap().text(), "hello");
        }
    });
    assert_eq!(
        srv.connections(),
        1,
        "20 sequential requests on one connection"
    );
    assert_eq!(c.pool_stats().idle, 1);
    // Connection: close and TE+CL responses are never reused.
    rt.block_on(async {
        c.get(&srv.url("/close-after")).await.unwrap();
        c.get(&srv.url("/ok")).await.unwrap();
    });
    assert_eq!(srv.connections(), 2);
    rt.block_on(async {
        assert_eq!(c.get(&srv.url("/te-and-cl")).await.unwrap().text(), "ok");
        c.get(&srv.url("/ok")).await.unwrap();
    });
    assert_eq!(srv.connections(), 3);
}

#[test]
fn stale_pooled_connection_is_detected_and_replaced() {
    let (rt, srv, c) = (rt(), server(), client());
    rt.block_on(async {
        assert_eq!(
            c.get(&srv.url("/silent-close-after")).await.unwrap().text(),
            "served"
        );
        scraipe::rt::sleep(Duration::from_millis(150)).await;
        // The pooled connection was closed by the server; the client notices and reconnects.
        assert_eq!(c.get(&srv.url("/ok")).await.unwrap().text(), "hello");
    });
    assert_eq!(srv.connections(), 2);
}

/// A server that, on the second request of its first connection, closes without answering —
/// as a server whose keep-alive timer fired just as the request arrived.
fn closes_second_request_of_first_connection() -> TestServer {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    TestServer::start(move |req, t| {
        if count.fetch_add(1, Ordering::SeqCst) == 1 && req.conn == 0 {
            return After::Close;
        }
        respond(t, "200 OK", &[], b"fine");
        After::KeepAlive
    })
}

#[test]
fn idempotent_request_failing_on_reused_connection_is_retried_once() {
    let rt = rt();
    let srv = closes_second_request_of_first_connection();
    let c = client();
    rt.block_on(async {
        assert_eq!(c.get(&srv.url("/1")).await.unwrap().text(), "fine");
        assert_eq!(c.get(&srv.url("/2")).await.unwrap().text(), "fine");
        assert_eq!(c.get(&srv.url("/3")).await.unwrap().text(), "fine");
    });
    assert_eq!(srv.connections(), 2);
    let paths: Vec<_> = srv.seen().iter().map(|s| s.path.clone()).collect();
    assert_eq!(
        paths,
        ["/1", "/2", "/2", "/3"],
        "/2 was sent twice: once on the dead connection"
    );
}

#[test]
fn non_idempotent_request_is_not_retried() {
    let rt = rt();
    let srv = closes_second_request_of_first_connection();
    let c = client();
    rt.block_on(async {
        assert_eq!(c.get(&srv.url("/1")).await.unwrap().text(), "fine");
        let e = c.post(&srv.url("/2")).body("once").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Incomplete, "{e}");
        assert!(e.to_string().contains("without responding"), "{e}");
    });
    let paths: Vec<_> = srv.seen().iter().map(|s| s.path.clone()).collect();
    assert_eq!(paths, ["/1", "/2"]);
}

#[test]
fn https_with_a_custom_root_and_without_it() {
    let rt = rt();
    let pki = support::tls::test_pki();
    let srv = TestServer::start_with(
        routes,
        Some(support::tls::tls_wrapper(pki.server_config.clone())),
    );
    let url = format!("https://localhost:{}/ok", srv.addr.port());
    let trusting = Client::builder()
        .add_root_certificate_pem(pki.ca_pem.as_bytes())
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..3 {
            let r = trusting.get(&url).await.unwrap();
            assert_eq!((r.status(), r.text().as_str()), (200, "hello"));
        }
        let r = trusting
            .get(&format!("https://localhost:{}/chunked", srv.addr.port()))
            .await
            .unwrap();
        assert_eq!(r.text(), "hello, world");
        let r = trusting
            .get(&format!("https://127.0.0.1:{}/ok", srv.addr.port()))
            .await
            .unwrap();
        assert_eq!(r.text(), "hello");
    });
    assert_eq!(
        srv.connections(),
        2,
        "keep-alive works over TLS too (one connection per host name)"
    );

    let e = rt.block_on(Client::new().get(&url)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    assert!(e.to_string().contains("unknown authority"), "{e}");

    let bad = Client::builder()
        .add_root_certificate_pem(b"not a pem")
        .build()
        .unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::Tls);
}

#[test]
fn per_host_limit_makes_requests_wait_and_hands_connections_over() {
    let rt = rt();
    let srv = TestServer::start(|_, t| {
        std::thread::sleep(Duration::from_millis(20));
        respond(t, "200 OK", &[], b"x");
        After::KeepAlive
    });
    let c = Client::builder()
        .max_connections_per_host(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let mut set = scraipe::rt::JoinSet::new();
        for _ in 0..10 {
            let (c, url) = (c.clone(), srv.url("/"));
            set.spawn(async move { c.get(&url).await.map(|r| r.status()) });
        }
        while let Some(r) = set.join_next().await {
            assert_eq!(r.unwrap().unwrap(), 200);
        }
    });
    assert_eq!(srv.connections(), 2, "10 requests through 2 connections");
}

#[test]
fn total_limit_evicts_idle_connections_of_other_hosts() {
    let rt = rt();
    let servers: Vec<TestServer> = (0..5).map(|_| server()).collect();
    let c = Client::builder().max_connections(2).build().unwrap();
    rt.block_on(async {
        for s in &servers {
            assert_eq!(c.get(&s.url("/ok")).await.unwrap().text(), "hello");
        }
    });
    let stats = c.pool_stats();
    assert!(stats.open <= 2, "{stats:?}");
    assert!(
        stats.hosts <= 2,
        "host entries are dropped with their connections: {stats:?}"
    );
}

#[test]
fn invalid_urls_and_unreachable_hosts_are_clear_errors() {
    let rt = rt();
    let c = client();
    rt.block_on(async {
        let e = c.get("not a url").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidUrl);
        let e = c.get("mailto:someone@example.com").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidUrl);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = c
            .get(&format!("http://127.0.0.1:{port}/"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
        // Said once, with the address that refused.
        let msg = e.to_string();
        assert_eq!(msg.matches("could not connect").count(), 1, "{msg}");
        assert!(
            msg.starts_with(&format!("could not connect: 127.0.0.1:{port}: ")),
            "{msg}"
        );
        let e = c.get("http://no-such-host.invalid/").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Dns, "{e}");
    });
}

#[test]
fn ipv6_literal_urls() {
    let rt = rt();
    let listener = std::net::TcpListener::bind("[::1]:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let n = std::io::Read::read(&mut s, &mut buf).unwrap();
        let req = String::from_utf8_lossy(&buf[..n]).to_string();
        let host_line = req
            .lines()
            .find(|l| l.to_lowercase().starts_with("host:"))
            .unwrap()
            .to_string();
        let body = host_line.into_bytes();
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        std::io::Write::write_all(&mut s, head.as_bytes()).unwrap();
        std::io::Write::write_all(&mut s, &body).unwrap();
    });
    let r = rt
        .block_on(client().get(&format!("http://[::1]:{port}/x")))
        .unwrap();
    assert_eq!(r.text(), format!("Host: [::1]:{port}"));
}
