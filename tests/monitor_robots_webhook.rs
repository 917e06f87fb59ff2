//! robots.txt (never a request for a disallowed path, Crawl-delay spacing, 5xx → disallow all,
//! --ignore-robots) and the event outbox (a webhook that is down, then up: each event delivered
//! once, the changes file not duplicated).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use support::mini_shop::{Markup, MiniShop, Product, Validators};
use support::proc::{fresh_dir, monitor_run, OutputOk};
use support::{respond, After, TestServer};

fn tmp(name: &str) -> PathBuf {
    fresh_dir("monrw", name)
}

fn run(dir: &Path, links: &[String], extra: &[&str]) -> Output {
    let input = dir.join("urls.txt");
    std::fs::write(&input, links.join("\n")).unwrap();
    let out = monitor_run(dir, &input)
        .args(["--once", "--every", "0s"])
        .args(extra)
        .output_ok();
    out
}

fn history(dir: &Path) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_scraipe"))
        .args(["monitor", "export", "--db"])
        .arg(dir.join("state.sqlite"))
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn robots_txt_is_obeyed_and_crawl_delay_spaces_requests() {
    let dir = tmp("robots");
    let shop = MiniShop::start();
    shop.set_robots(
        200,
        "User-agent: *\nDisallow: /private\nAllow: /private/ok$\nCrawl-delay: 0.3\n\n\
         User-agent: otherbot\nDisallow: /\n",
    );
    let mut links: Vec<String> = (0..4)
        .map(|i| {
            shop.add(
                &format!("/p{i}"),
                Product::new(&format!("P{i}"), "1.00", Markup::Meta, Validators::None),
            )
        })
        .collect();
    links.push(shop.add(
        "/private/x",
        Product::new("X", "2", Markup::Meta, Validators::None),
    ));
    links.push(shop.add(
        "/private/ok",
        Product::new("Ok", "3", Markup::Meta, Validators::None),
    ));
    run(&dir, &links, &["--quiet", "--per-host", "2"]);

    let log = shop.log();
    assert!(
        log.iter().all(|l| l.2 != "/private/x"),
        "never a request for a disallowed path"
    );
    assert_eq!(
        log.iter().filter(|l| l.2 == "/robots.txt").count(),
        1,
        "fetched once"
    );
    let mut starts: Vec<_> = log
        .iter()
        .filter(|l| l.2 != "/robots.txt")
        .map(|l| l.0)
        .collect();
    starts.sort();
    assert_eq!(starts.len(), 5);
    for pair in starts.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(250),
            "Crawl-delay 0.3 s honoured: gap {gap:?}"
        );
    }
    let rows = history(&dir);
    let x = rows.iter().find(|r| r["link"] == links[4]).unwrap();
    assert_eq!(x["outcome"], "disallowed");
    assert!(x["http_status"].is_null());
    let ok = rows.iter().find(|r| r["link"] == links[5]).unwrap();
    assert_eq!(ok["outcome"], "ok");

    // Cached in the database: the next run does not ask for robots.txt again.
    shop.clear_log();
    run(&dir, &links, &["--quiet"]);
    assert!(shop
        .log()
        .iter()
        .all(|l| l.2 != "/robots.txt" && l.2 != "/private/x"));

    // A user agent with its own group: everything disallowed, nothing but robots.txt fetched.
    let dir2 = tmp("robots-agent");
    shop.clear_log();
    run(&dir2, &links, &["--quiet", "--user-agent", "OtherBot/2.0"]);
    assert!(
        shop.log().iter().all(|l| l.2 == "/robots.txt"),
        "{:?}",
        shop.log()
    );
    assert!(history(&dir2).iter().all(|r| r["outcome"] == "disallowed"));

    // --ignore-robots: no robots.txt, the disallowed path is fetched.
    let dir3 = tmp("robots-ignored");
    shop.clear_log();
    run(&dir3, &links, &["--quiet", "--ignore-robots"]);
    assert!(shop.log().iter().all(|l| l.2 != "/robots.txt"));
    assert_eq!(shop.hits("/private/x").0, 1);
}

#[test]
fn unavailable_robots_txt_disallows_everything_for_a_while() {
    let dir = tmp("robots503");
    let shop = MiniShop::start();
    shop.set_robots(503, "down");
    let links = vec![shop.add("/p", Product::new("P", "1", Markup::Meta, Validators::None))];
    run(&dir, &links, &["--quiet"]);
    assert!(shop.log().iter().all(|l| l.2 == "/robots.txt"));
    let rows = history(&dir);
    assert_eq!(rows[0]["outcome"], "failed");
    assert!(rows[0]["error"]
        .as_str()
        .unwrap()
        .contains("robots.txt answered HTTP 503"));
}

#[test]
fn retry_after_holds_the_host_back_and_the_link_waits() {
    let dir = tmp("retryafter");
    let shop = MiniShop::start();
    let links = vec![shop.add("/p", Product::new("P", "1", Markup::Meta, Validators::None))];
    shop.state.lock().unwrap().throttle = Some((429, 3600));
    run(&dir, &links, &["--quiet"]);
    let rows = history(&dir);
    assert_eq!(rows[0]["outcome"], "failed");
    assert_eq!(rows[0]["http_status"], 429);
    shop.state.lock().unwrap().throttle = None;
    shop.clear_log();
    run(&dir, &links, &["--quiet"]);
    assert!(
        shop.log().iter().all(|l| l.2 != "/p"),
        "Retry-After: 3600 is honoured across runs"
    );
}

#[test]
fn transient_failures_are_retried_per_retries() {
    let shop = MiniShop::start();
    let links = vec![shop.add("/p", Product::new("P", "1", Markup::Meta, Validators::None))];
    shop.state.lock().unwrap().fail_next = 1;
    let dir = tmp("retried");
    run(&dir, &links, &["--quiet", "--retries", "1"]);
    assert_eq!(history(&dir)[0]["outcome"], "ok");
    assert_eq!(shop.hits("/p"), (2, 1), "a 503, then the page");
    shop.state.lock().unwrap().fail_next = 1;
    let dir = tmp("not-retried");
    run(&dir, &links, &["--quiet", "--retries", "0"]);
    let rows = history(&dir);
    assert_eq!(
        (rows[0]["outcome"].as_str(), rows[0]["http_status"].as_i64()),
        (Some("failed"), Some(503))
    );
    // An unusable proxy is a clear error before anything is fetched.
    let out = Command::new(env!("CARGO_BIN_EXE_scraipe"))
        .args([
            "monitor",
            "run",
            "--once",
            "--proxy",
            "ftp://nope",
            "--input",
        ])
        .arg(dir.join("urls.txt"))
        .arg("--db")
        .arg(dir.join("state.sqlite"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unusable proxy"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A webhook receiver that answers 503 while `down`, else records the event and answers 200.
struct Hook {
    server: TestServer,
    down: Arc<AtomicBool>,
    received: Arc<Mutex<Vec<Value>>>,
}

impl Hook {
    fn start() -> Hook {
        let down = Arc::new(AtomicBool::new(true));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (d, r) = (down.clone(), received.clone());
        let server = TestServer::start(move |req, t| {
            if d.load(Ordering::SeqCst) {
                respond(t, "503 Service Unavailable", &[], b"down");
            } else {
                assert_eq!(req.method, "POST");
                assert_eq!(req.header("content-type"), Some("application/json"));
                r.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&req.body).unwrap());
                respond(t, "200 OK", &[], b"ok");
            }
            After::KeepAlive
        });
        Hook {
            server,
            down,
            received,
        }
    }
}

#[test]
fn events_wait_in_the_outbox_while_the_webhook_is_down_and_are_delivered_once() {
    let dir = tmp("webhook");
    let shop = MiniShop::start();
    let links: Vec<String> = (0..3)
        .map(|i| {
            shop.add(
                &format!("/p{i}"),
                Product::new("P", "1.50", Markup::Meta, Validators::ETag),
            )
        })
        .collect();
    let hook = Hook::start();
    let url = hook.server.url("/events");

    let out = run(&dir, &links, &["--webhook", &url]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("3 waiting for the webhook"), "{stderr}");
    assert!(hook.received.lock().unwrap().is_empty());
    let file = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    assert_eq!(file.lines().count(), 3, "the changes file got them at once");
    let status = Command::new(env!("CARGO_BIN_EXE_scraipe"))
        .args(["monitor", "status", "--db"])
        .arg(dir.join("state.sqlite"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&status.stdout)
        .contains("events:        3 (3 waiting for delivery)"));

    // The webhook comes back; the next run delivers the backlog, once, plus the new change.
    hook.down.store(false, Ordering::SeqCst);
    shop.update("/p0", |p| p.price = "1.75".into());
    run(&dir, &links, &["--quiet", "--webhook", &url]);
    run(&dir, &links, &["--quiet", "--webhook", &url]);
    let received = hook.received.lock().unwrap().clone();
    assert_eq!(received.len(), 4, "{received:?}");
    let mut ids: Vec<i64> = received.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "each event once");
    assert!(received
        .iter()
        .any(|e| e["price"] == "1.75" && e["previous_price"] == "1.50"));
    let file = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    assert_eq!(
        file.lines().count(),
        4,
        "the changes file is not written twice"
    );
}
