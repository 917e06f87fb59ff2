//! End-to-end tests of the `scraipe` binary: exit codes, input handling, output formats,
//! streaming, timeouts, custom CA certificates, and the demo.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use scraipe::rt::Runtime;
use serde_json::Value;
use support::proc::{fresh_dir, jsonl, OutputOk, Site};

/// Output columns with an analyzer, in order.
const COLUMNS: [&str; 8] = [
    "link",
    "content",
    "scrape_success",
    "scrape_error",
    "metadata",
    "output",
    "analysis_success",
    "analysis_error",
];

fn scraipe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scraipe"))
}

fn tmp(name: &str) -> std::path::PathBuf {
    fresh_dir("cli", name)
}

#[test]
fn help_documents_every_option() {
    let out = scraipe().args(["scrape", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--input",
        "--output",
        "--format",
        "--scraper",
        "--analyzer",
        "--concurrency",
        "--threads",
        "--timeout",
        "--ca-cert",
        "--max-body",
        "--user-agent",
        "--per-host",
        "--quiet",
        "--retries",
        "--no-cookies",
        "--proxy",
        "--no-proxy",
        "--header",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    let serve = scraipe().args(["serve-demo", "--help"]).output().unwrap();
    let serve = String::from_utf8_lossy(&serve.stdout);
    for flag in [
        "--port",
        "--pages",
        "--threads",
        "--shop",
        "--hosts",
        "--products-per-host",
        "--change-share",
        "--change-every",
        "--seed",
        "--latency",
        "--urls-out",
        "--rules-out",
    ] {
        assert!(
            serve.contains(flag),
            "serve-demo --help lacks {flag}:\n{serve}"
        );
    }
    let top = scraipe().arg("--help").output().unwrap();
    let top = String::from_utf8_lossy(&top.stdout);
    assert!(top.contains("scrape") && top.contains("demo") && top.contains("serve-demo"));
}

#[test]
fn usage_errors_exit_2_and_io_errors_exit_1_with_one_line() {
    let bad_flag = scraipe()
        .args(["scrape", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(bad_flag.status.code(), Some(2));
    let bad_value = scraipe()
        .args(["scrape", "--concurrency", "zero", "http://x"])
        .output()
        .unwrap();
    assert_eq!(bad_value.status.code(), Some(2));
    let nothing = scraipe().arg("scrape").output().unwrap();
    assert_eq!(nothing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("no URLs given"));

    let missing = scraipe()
        .args(["scrape", "--input", "/no/such/file.txt"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("error: cannot read input file '/no/such/file.txt'"),
        "{err}"
    );
    assert!(!err.contains("panicked"));

    let site = Site::start();
    let unwritable = scraipe()
        .args([
            "scrape",
            &site.url("/page/0"),
            "--output",
            "/no/such/dir/out.jsonl",
        ])
        .output()
        .unwrap();
    assert_eq!(unwritable.status.code(), Some(1));
    let err = String::from_utf8_lossy(&unwritable.stderr);
    assert!(
        err.starts_with("error: cannot write output file '/no/such/dir/out.jsonl'"),
        "{err}"
    );
    assert_eq!(
        site.server.requests_served(),
        0,
        "checked before any scraping"
    );

    let bad_pem = tmp("badpem").join("ca.pem");
    std::fs::write(&bad_pem, "not a certificate").unwrap();
    let out = scraipe()
        .args(["scrape", "http://127.0.0.1:1/", "--ca-cert"])
        .arg(&bad_pem)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CA certificate"));
}

#[test]
fn every_link_once_in_input_order_with_clear_failures() {
    let site = Site::start();
    let dir = tmp("order");
    let input = dir.join("links.txt");
    let lines = [
        "# a comment".to_string(),
        site.url("/page/3"),
        String::new(),
        site.url("/page/7"),
        "   ".to_string(),
        site.url("/page/1"),
        site.url("/page/3"),
        "not a url".to_string(),
        "ftp://example.com/file".to_string(),
        site.url("/page/5"),
    ];
    std::fs::write(&input, lines.join("\n")).unwrap();
    let out = scraipe()
        .args(["scrape", "--input"])
        .arg(&input)
        .arg(site.url("/page/0"))
        .args(["--analyzer", "text-stats", "--scraper", "text"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "failures still exit 0");
    let rows = jsonl(&out.stdout);
    let links: Vec<&str> = rows.iter().map(|r| r["link"].as_str().unwrap()).collect();
    assert_eq!(
        links,
        [
            site.url("/page/0").as_str(),
            &site.url("/page/3"),
            &site.url("/page/7"),
            &site.url("/page/1"),
            "not a url",
            "ftp://example.com/file",
            &site.url("/page/5"),
        ]
    );
    for r in &rows {
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, COLUMNS);
        for k in ["status", "final_url", "content_type", "elapsed_ms"] {
            assert!(
                r["metadata"].get(k).is_some(),
                "metadata.{k} missing in {r}"
            );
        }
    }
    let by_link = |l: &str| rows.iter().find(|r| r["link"] == l).unwrap();
    let ok = by_link(&site.url("/page/0"));
    assert_eq!(ok["scrape_success"], true);
    assert_eq!(ok["analysis_success"], true);
    assert!(ok["output"]["word_count"].as_u64().unwrap() > 0);
    let missing = by_link(&site.url("/page/7"));
    assert_eq!(
        missing["scrape_error"],
        format!("Failed to scrape {}. Status code: 404", site.url("/page/7"))
    );
    assert_eq!(missing["analysis_success"], Value::Null);
    let redirected = by_link(&site.url("/page/5"));
    assert_eq!(redirected["scrape_success"], true);
    assert_ne!(redirected["metadata"]["final_url"], site.url("/page/5"));
    assert!(by_link("not a url")["scrape_error"]
        .as_str()
        .unwrap()
        .contains("invalid URL"));
    assert!(by_link("ftp://example.com/file")["scrape_error"]
        .as_str()
        .unwrap()
        .contains("unsupported scheme"));
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains("scraped 4/7 ok, analyzed 4 in"),
        "{summary}"
    );
    assert!(summary.contains("3 failed"), "{summary}");
}

#[test]
fn csv_output_is_valid_and_complete() {
    let site = Site::start();
    let out_path = tmp("csv").join("out.csv");
    let out = scraipe()
        .args(["scrape", "--quiet", "--analyzer", "text-stats", "--output"])
        .arg(&out_path)
        .args([
            site.url("/page/0"),
            site.url("/page/7"),
            site.url("/page/2"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "--quiet prints nothing: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reader = csv::Reader::from_path(&out_path).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(header, COLUMNS);
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 3);
    assert_eq!(&records[0][0], site.url("/page/0"));
    // Page bodies hold commas, quotes and newlines: they survive CSV quoting.
    assert!(records[0][1].contains('\n') && records[0][1].contains("<html"));
    let meta: Value = serde_json::from_str(&records[1][4]).unwrap();
    assert_eq!(meta["status"], 404);
    let stats: Value = serde_json::from_str(&records[2][5]).unwrap();
    assert!(stats["character_count"].as_u64().unwrap() > 0);
}

#[test]
fn rows_stream_out_before_slow_links_finish() {
    let site = Site::start();
    let mut child = scraipe()
        .args([
            "scrape",
            "--quiet",
            &site.url("/page/0"),
            &site.url("/delay/1500"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    let first_at = started.elapsed();
    assert!(first.contains("/page/0"));
    assert!(
        first_at < Duration::from_millis(1200),
        "first row after {first_at:?}: not streamed"
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(rest.contains("/delay/1500"));
}

#[test]
fn timeout_is_the_whole_per_link_deadline() {
    let site = Site::start();
    let started = Instant::now();
    let out = scraipe()
        .args([
            "scrape",
            "--quiet",
            "--timeout",
            "0.4",
            &site.url("/delay/5000"),
            &site.url("/page/0"),
        ])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(out.status.success());
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let rows = jsonl(&out.stdout);
    assert_eq!(rows[0]["scrape_success"], false);
    assert_eq!(rows[0]["metadata"]["error_kind"], "timeout");
    assert_eq!(rows[1]["scrape_success"], true);
}

/// An input file from Windows (a byte-order mark, CRLF) or a legacy Latin-1 export: the first
/// link is still a link, and a byte that is not UTF-8 is kept (percent-encoded) instead of
/// ending the run.
#[test]
fn an_input_files_bom_and_non_utf8_bytes_do_not_cost_links() {
    let site = Site::start();
    let input = tmp("bom").join("urls.txt");
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(format!("{}\r\n", site.url("/page/1")).as_bytes());
    bytes.extend_from_slice(format!("{}/caf", site.url("/page")).as_bytes());
    bytes.extend_from_slice(b"\xe9\r\n");
    bytes.extend_from_slice(format!("{}\r\n", site.url("/page/2")).as_bytes());
    std::fs::write(&input, bytes).unwrap();
    let out = scraipe()
        .args(["scrape", "--quiet", "--input"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = jsonl(&out.stdout);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["link"], site.url("/page/1"));
    assert_eq!(rows[0]["scrape_success"], true, "{}", rows[0]);
    assert_eq!(rows[1]["link"], site.url("/page/caf%E9"));
    assert_eq!(rows[2]["scrape_success"], true, "{}", rows[2]);
}

/// Links waiting for their host's `--per-host` turn are not timed: ten 200 ms pages through one
/// slot take 2 s, and none of them fails a 0.5 s `--timeout` for having waited.
#[test]
fn waiting_for_a_per_host_turn_does_not_count_against_the_timeout() {
    let site = Site::start();
    let urls: Vec<String> = (0..10)
        .map(|i| site.url(&format!("/delay/200?{i}")))
        .collect();
    let started = Instant::now();
    let out = scraipe()
        .args(["scrape", "--quiet", "--per-host", "1", "--timeout", "0.5"])
        .args(&urls)
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(out.status.success());
    let rows = jsonl(&out.stdout);
    assert_eq!(rows.len(), 10);
    let failed: Vec<_> = rows
        .iter()
        .filter(|r| r["scrape_success"] != true)
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    // One at a time: the limit still holds.
    assert!(took >= Duration::from_millis(1900), "took {took:?}");
}

#[test]
fn stdin_input_and_ca_cert_for_a_self_hosted_https_site() {
    let pki = support::tls::test_pki();
    let srv = support::TestServer::start_with(
        |_, t| {
            support::respond(
                t,
                "200 OK",
                &[("Content-Type", "text/plain")],
                b"private page",
            );
            support::After::KeepAlive
        },
        Some(support::tls::tls_wrapper(pki.server_config.clone())),
    );
    let url = format!("https://localhost:{}/internal", srv.addr.port());
    let pem = tmp("ca").join("ca.pem");
    std::fs::write(&pem, &pki.ca_pem).unwrap();

    let run = |extra: &[&std::ffi::OsStr]| {
        let mut child = scraipe()
            .args(["scrape", "--quiet", "--input", "-"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{url}\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        jsonl(&out.stdout).remove(0)
    };
    let trusted = run(&["--ca-cert".as_ref(), pem.as_os_str()]);
    assert_eq!(trusted["content"], "private page", "{trusted}");
    let untrusted = run(&[]);
    assert_eq!(untrusted["scrape_success"], false);
    assert_eq!(untrusted["metadata"]["error_kind"], "tls");
    assert!(
        untrusted["scrape_error"]
            .as_str()
            .unwrap()
            .contains("unknown authority"),
        "{untrusted}"
    );
}

#[test]
fn demo_runs_offline_and_checks_itself() {
    let out = scraipe()
        .args(["demo", "--pages", "60", "--rows", "3"])
        .output_ok();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("scraped 54/60 ok, analyzed 54"), "{text}");
    assert!(text.contains("checked: all 60 results match"), "{text}");
    assert!(text.contains("/page/0"), "{text}");
}

/// A reader that goes away early (`scraipe demo | head -1`, `monitor status | head -3`) ends the
/// program quietly with exit code 0, not with a panic about a broken pipe.
#[test]
fn a_closed_output_pipe_is_a_quiet_exit_not_a_panic() {
    let db = tmp("pipe").join("m.sqlite");
    let input = tmp("pipe").join("urls.txt");
    std::fs::write(&input, "http://127.0.0.1:9/p\n").unwrap();
    // A store with a watch list (the check itself fails at once: nothing listens on port 9).
    scraipe()
        .args(["monitor", "run", "--once", "--quiet", "--db"])
        .arg(&db)
        .arg("--input")
        .arg(&input)
        .output_ok();
    let commands: [Vec<std::ffi::OsString>; 2] = [
        vec!["demo".into(), "--pages".into(), "20".into()],
        vec![
            "monitor".into(),
            "status".into(),
            "--db".into(),
            db.clone().into(),
        ],
    ];
    for args in commands {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = scraipe()
            .args(&args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// `--header` is validated (a CR or LF is a usage error) and sent; `--proxy` must be usable.
#[test]
fn header_and_proxy_flags_are_validated() {
    for bad in [
        "X-A: one\r\nX-B: two",
        "X-A: a\nb",
        "no colon",
        "Bad Name: v",
        "Transfer-Encoding: chunked",
    ] {
        let out = scraipe()
            .args(["scrape", "http://127.0.0.1:1/", "--header", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
    for bad in ["ftp://127.0.0.1:21", "http://"] {
        let out = scraipe()
            .args(["scrape", "http://127.0.0.1:1/", "--proxy", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
    let both = scraipe()
        .args([
            "scrape",
            "http://127.0.0.1:1/",
            "--proxy",
            "http://127.0.0.1:9",
            "--no-proxy",
        ])
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2));
}

/// Retries (default 2), cookies (on by default), headers and a proxy, end to end.
#[test]
fn retries_cookies_headers_and_proxy_flags() {
    use support::{respond, After, TestServer};
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
            "/home" => respond(t, "403 Forbidden", &[], b"no cookie"),
            "/custom" => {
                let v = req.header("x-custom").unwrap_or("missing").to_string();
                respond(t, "200 OK", &[], v.as_bytes())
            }
            // Requests in absolute form come to this server as a proxy.
            p if p.starts_with("http://") => {
                respond(t, "200 OK", &[], format!("proxied {p}").as_bytes())
            }
            _ => respond(t, "404 Not Found", &[], b""),
        }
        After::KeepAlive
    });
    let run = |args: &[&str]| {
        let out = scraipe()
            .arg("scrape")
            .args(args)
            .args(["--quiet", "--no-proxy"])
            .output_ok();
        jsonl(&out.stdout).remove(0)
    };
    let row = run(&[&srv.url("/busy")]);
    assert!(
        row["scrape_error"]
            .as_str()
            .unwrap()
            .ends_with("Status code: 503"),
        "{row}"
    );
    assert_eq!(srv.seen().len(), 3, "tried 3 times by default");
    run(&[&srv.url("/busy"), "--retries", "0"]);
    assert_eq!(srv.seen().len(), 4, "--retries 0: once");

    assert_eq!(run(&[&srv.url("/login")])["content"], "welcome");
    let row = run(&[&srv.url("/login"), "--no-cookies"]);
    assert!(
        row["scrape_error"]
            .as_str()
            .unwrap()
            .ends_with("Status code: 403"),
        "{row}"
    );

    let row = run(&[&srv.url("/custom"), "--header", "X-Custom:  spaced value "]);
    assert_eq!(row["content"], "spaced value");

    let out = scraipe()
        .args([
            "scrape",
            "http://site.test/page",
            "--quiet",
            "--proxy",
            &format!("http://{}", srv.addr),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        jsonl(&out.stdout)[0]["content"],
        "proxied http://site.test/page"
    );
}

#[test]
fn serve_demo_shop_writes_its_urls_and_rules_and_stops_on_sigterm() {
    let dir = tmp("shop");
    let (urls, rules) = (dir.join("urls.txt"), dir.join("rules.toml"));
    let mut child = scraipe()
        .args([
            "serve-demo",
            "--shop",
            "--hosts",
            "25",
            "--products-per-host",
            "2",
        ])
        .args([
            "--change-share",
            "0.5",
            "--change-every",
            "1h",
            "--port",
            "0",
        ])
        .arg("--urls-out")
        .arg(&urls)
        .arg("--rules-out")
        .arg(&rules)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    while !banner.contains("press Ctrl-C") {
        assert!(stdout.read_line(&mut banner).unwrap() > 0, "{banner}");
    }
    assert!(
        banner.contains("25 hosts × 2 product page(s) = 50 URLs"),
        "{banner}"
    );
    assert!(banner.contains("every 1h about 50 %"), "{banner}");
    let list = std::fs::read_to_string(&urls).unwrap();
    let list: Vec<&str> = list.lines().collect();
    assert_eq!(list.len(), 50);
    assert!(list[49].starts_with("http://shop-24.localhost:") && list[49].ends_with("/product/1"));
    assert!(std::fs::read_to_string(&rules)
        .unwrap()
        .contains("[[site]]"));

    // Serve one page through the crate's client, which resolves *.localhost to loopback.
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let client = scraipe::http::Client::new();
    let page = rt.block_on(client.get(list[0])).unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.header("etag").is_some() || page.header("last-modified").is_some());

    // SAFETY: kill() with a child's pid and a signal number; no memory is involved.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(rest.contains("stopped: 1 requests"), "{rest}");

    for bad in [
        &["--hosts", "5"][..],
        &["--shop", "--hosts", "0"],
        &["--shop", "--change-share", "1.5"],
        &["--shop", "--change-every", "30"],
        &["--shop", "--change-every", "5min"],
        &["--shop", "--change-every", "10ms"],
        &["--shop", "--pages", "3"],
        &["--shop", "--hosts", "1000000", "--products-per-host", "100"],
    ] {
        let out = scraipe()
            .arg("serve-demo")
            .args(bad)
            .args(["--port", "0"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
}

/// Without the `observatory` feature, `demo --observe` says what is missing instead of
/// silently ignoring the flag.
#[cfg(not(feature = "observatory"))]
#[test]
fn demo_observe_without_the_feature_is_a_clear_error() {
    let out = scraipe()
        .args(["demo", "--pages", "5", "--observe", "127.0.0.1:0"])
        .output()
        .unwrap();
    // A usage error, before the demo site starts or anything is scraped.
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--features observatory"), "{err}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!said.contains("demo site"), "{said}");
    // `monitor run --observe` says so before it touches the database: a usage error.
    let dir = tmp("monitor-observe");
    let input = dir.join("urls.txt");
    std::fs::write(&input, "http://127.0.0.1:1/product\n").unwrap();
    let db = dir.join("state.sqlite");
    let out = scraipe()
        .args([
            "monitor",
            "run",
            "--once",
            "--quiet",
            "--observe",
            "127.0.0.1:0",
        ])
        .arg("--input")
        .arg(&input)
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--features observatory"), "{err}");
    assert!(!db.exists());
}

/// `scraipe observe` with nothing to watch or a bad flag: one clear line and an exit code, no
/// hang and no panic (port 1 on loopback refuses at once).
#[test]
fn observe_reports_an_unreachable_endpoint_and_bad_flags() {
    let out = scraipe()
        .args(["observe", "127.0.0.1:1", "--once"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the observatory at 127.0.0.1:1"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let out = scraipe()
        .args(["observe", "127.0.0.1:1", "--interval", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("more than 0"), "{err}");
}
