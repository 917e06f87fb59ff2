//! RawScraper and TextScraper against the scripted test server: contents, Python Scraipe's
//! failure messages, metadata, charsets, redirects, and the synchronous API.

mod support;

use std::sync::Arc;

use scraipe::defaults::{RawScraper, TextScraper};
use scraipe::http::Client;
use scraipe::{AsyncScraper, Scraper};
use support::{respond, After, TestServer};

fn site() -> TestServer {
    TestServer::start(|req, t| {
        match req.path.as_str() {
            "/page" => respond(
                t,
                "200 OK",
                &[("Content-Type", "text/html; charset=utf-8")],
                b"<html><head><title>T</title><style>p{}</style></head><body><h1>Hello</h1><script>var x;</script><p>caf\xc3\xa9 &amp; more</p>\n\n<p></p></body></html>",
            ),
            "/latin1" => respond(t, "200 OK", &[("Content-Type", "text/plain; charset=iso-8859-1")], b"caf\xe9"),
            "/moved" => respond(t, "301 Moved", &[("Location", "/page")], b""),
            "/big" => {
                let mut body = b"<html><body>".to_vec();
                for i in 0..5000 {
                    body.extend_from_slice(format!("<p>paragraph {i}</p>").as_bytes());
                }
                body.extend_from_slice(b"</body></html>");
                respond(t, "200 OK", &[("Content-Type", "text/html")], &body)
            }
            _ => respond(t, "404 Not Found", &[], b"missing"),
        }
        After::KeepAlive
    })
}

#[test]
fn raw_scraper_returns_decoded_body_and_metadata() {
    let srv = site();
    let r = RawScraper::new().scrape(&srv.url("/latin1"));
    assert!(r.success(), "{r:?}");
    assert_eq!(r.content(), Some("caf\u{e9}"));
    let meta = r.metadata().unwrap();
    assert_eq!(meta["status"], 200);
    assert_eq!(meta["final_url"], srv.url("/latin1"));
    assert_eq!(meta["content_type"], "text/plain; charset=iso-8859-1");
    assert!(meta["elapsed_ms"].as_f64().unwrap() >= 0.0);
}

#[test]
fn non_200_and_network_errors_fail_with_python_messages() {
    let srv = site();
    let url = srv.url("/nope");
    let r = RawScraper::new().scrape(&url);
    assert!(!r.success());
    assert_eq!(
        r.error(),
        Some(format!("Failed to scrape {url}. Status code: 404").as_str())
    );
    assert_eq!(r.metadata().unwrap()["error_kind"], "status 404");
    assert_eq!(r.content(), None);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{port}/");
    let r = RawScraper::new().scrape(&dead);
    assert!(
        r.error().unwrap().starts_with(&format!(
            "Failed to scrape {dead}. Error: could not connect"
        )),
        "{r:?}"
    );
    assert_eq!(r.metadata().unwrap()["error_kind"], "connect");
    let r = TextScraper::new().scrape("not a url");
    assert_eq!(r.metadata().unwrap()["error_kind"], "invalid url");
}

#[test]
fn text_scraper_extracts_visible_text_and_follows_redirects() {
    let srv = site();
    let r = TextScraper::new().scrape(&srv.url("/moved"));
    assert!(r.success(), "{r:?}");
    assert_eq!(r.content(), Some("Hello\ncaf\u{e9} & more"));
    assert_eq!(r.metadata().unwrap()["final_url"], srv.url("/page"));
    // A large page is extracted on the blocking pool, with the same result.
    let r = TextScraper::new().scrape(&srv.url("/big"));
    let text = r.content().unwrap();
    assert_eq!(text.lines().count(), 5000);
    assert!(text.ends_with("paragraph 4999"));
}

#[test]
fn scrape_multiple_gives_one_result_per_link() {
    let srv = site();
    let links: Vec<String> = (0..40)
        .map(|i| srv.url(if i % 4 == 0 { "/nope" } else { "/page" }))
        .collect();
    let scraper = Arc::new(RawScraper::with_client(Client::new()).max_workers(8));
    assert_eq!(AsyncScraper::max_workers(&*scraper), 8);
    let results: Vec<_> = scraper.scrape_multiple(links.clone()).collect();
    assert_eq!(results.len(), 40);
    let ok = results.iter().filter(|(_, r)| r.success()).count();
    assert_eq!(ok, 30);
    assert!(
        srv.connections() <= 8,
        "keep-alive reuse: {} connections",
        srv.connections()
    );
}

/// A 304 to a conditional scrape is a success marked `not_modified`, not a failure.
#[test]
fn unchanged_pages_are_not_modified_successes() {
    let srv = TestServer::start(|req, t| {
        let tag = "\"v7\"";
        if req.header("if-none-match") == Some(tag) {
            support::raw(
                t,
                b"HTTP/1.1 304 Not Modified\r\nETag: \"v7\"\r\nContent-Encoding: gzip\r\n\r\n",
            );
        } else {
            respond(
                t,
                "200 OK",
                &[
                    ("ETag", tag),
                    ("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
                ],
                b"body v7",
            );
        }
        After::KeepAlive
    });
    let rt = scraipe::rt::Runtime::new().unwrap();
    let scraper = RawScraper::new();
    let url = srv.url("/feed");
    let first = rt.block_on(scraper.scrape_if_changed(&url, None, None));
    assert!(first.success(), "{first:?}");
    let meta = first.metadata().unwrap();
    assert_eq!(meta["not_modified"], false);
    assert_eq!(meta["etag"], "\"v7\"");
    assert_eq!(meta["last_modified"], "Sun, 06 Nov 1994 08:49:37 GMT");
    let again = rt.block_on(scraper.scrape_if_changed(&url, Some("\"v7\""), None));
    assert!(again.success(), "{again:?}");
    assert_eq!(again.content(), Some(""));
    let meta = again.metadata().unwrap();
    assert_eq!(
        (meta["not_modified"].clone(), meta["status"].clone()),
        (true.into(), 304.into())
    );
    let changed = rt.block_on(scraper.scrape_if_changed(&url, Some("\"v6\""), None));
    assert_eq!(changed.content(), Some("body v7"));
}

/// A 304 to a plain GET (a broken server or cache) is a failure, not an empty success.
#[test]
fn a_304_to_an_unconditional_scrape_is_a_failure() {
    let srv = TestServer::start(|_, t| {
        support::raw(t, b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n");
        After::KeepAlive
    });
    let rt = scraipe::rt::Runtime::new().unwrap();
    let plain = rt.block_on(RawScraper::new().async_scrape(&srv.url("/page")));
    assert!(!plain.success(), "{plain:?}");
    assert!(
        plain.error().unwrap().contains("Status code: 304"),
        "{plain:?}"
    );
}

/// The default scrapers retry a 503 twice and keep cookies across a redirect.
#[test]
fn default_scrapers_retry_and_keep_cookies() {
    let srv = TestServer::start(|req, t| {
        match req.path.as_str() {
            "/busy" => respond(
                t,
                "503 Service Unavailable",
                &[("Retry-After", "0")],
                b"busy",
            ),
            "/login" => respond(
                t,
                "302 Found",
                &[("Set-Cookie", "s=1"), ("Location", "/home")],
                b"",
            ),
            "/home" if req.header("cookie") == Some("s=1") => respond(t, "200 OK", &[], b"welcome"),
            _ => respond(t, "403 Forbidden", &[], b"no cookie"),
        }
        After::KeepAlive
    });
    let r = RawScraper::new().scrape(&srv.url("/busy"));
    assert_eq!(
        r.error(),
        Some(format!("Failed to scrape {}. Status code: 503", srv.url("/busy")).as_str())
    );
    assert_eq!(srv.seen().len(), 3, "tried three times");
    let r = RawScraper::new().scrape(&srv.url("/login"));
    assert_eq!(r.content(), Some("welcome"), "{r:?}");
}
