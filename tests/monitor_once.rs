//! `scraipe monitor run --once` end to end against small loopback shops: offers and change
//! events, conditional GETs (304 without download), body-hash skips, no false positives,
//! availability-only changes, watch-list deactivation, export, status and the report.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::mini_shop::{Markup, MiniShop, Product, Validators};
use support::proc::{fresh_dir, monitor_run, OutputOk};

fn scraipe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scraipe"))
}

fn tmp(name: &str) -> PathBuf {
    fresh_dir("mon", name)
}

fn write_input(dir: &Path, links: &[String]) -> PathBuf {
    let path = dir.join("urls.txt");
    std::fs::write(&path, format!("# watch list\n{}\n", links.join("\n"))).unwrap();
    path
}

fn run(dir: &Path, links: &[String], extra: &[&str]) -> Output {
    let input = write_input(dir, links);
    let out = monitor_run(dir, &input)
        .arg("--once")
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "monitor run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn export(dir: &Path, name: &str, link: Option<&str>) -> String {
    let path = dir.join(name);
    let mut cmd = scraipe();
    cmd.args(["monitor", "export", "--db"])
        .arg(dir.join("state.sqlite"))
        .arg("--output")
        .arg(&path);
    if let Some(l) = link {
        cmd.args(["--link", l]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(path).unwrap()
}

fn shop_with_four() -> (MiniShop, Vec<String>) {
    let shop = MiniShop::start();
    let links = vec![
        shop.add(
            "/a",
            Product::new("Alpha", "10.00", Markup::Meta, Validators::ETag),
        ),
        shop.add(
            "/b",
            Product::new("Bravo", "1299.00", Markup::JsonLd, Validators::LastModified),
        ),
        shop.add(
            "/c",
            Product::new("Charlie", "5", Markup::Meta, Validators::None),
        ),
        shop.add(
            "/d",
            Product::new("Delta", "0.99", Markup::JsonLd, Validators::None),
        ),
    ];
    (shop, links)
}

#[test]
fn changes_are_detected_once_and_unchanged_pages_cost_no_download_or_extraction() {
    let dir = tmp("changes");
    let (shop, links) = shop_with_four();

    // First run: every product is new, so every product is a change from nothing.
    run(&dir, &links, &["--quiet", "--every", "0s"]);
    let first = events(&dir);
    assert_eq!(first.len(), 4, "{first:?}");
    let alpha = first.iter().find(|e| e["link"] == links[0]).unwrap();
    assert_eq!(alpha["price"], "10.00");
    assert_eq!(alpha["currency"], "EUR");
    assert_eq!(alpha["availability"], "in_stock");
    assert_eq!(alpha["name"], "Alpha");
    assert_eq!(alpha["source"], "meta");
    assert!(alpha["previous_price"].is_null() && alpha["previous_availability"].is_null());
    let bravo = first.iter().find(|e| e["link"] == links[1]).unwrap();
    assert_eq!(bravo["price"], "1299.00");
    assert_eq!(bravo["source"], "json_ld");
    assert!(bravo["observed_at"].as_str().unwrap().ends_with('Z'));
    let keys: Vec<&str> = alpha
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    for k in [
        "link",
        "name",
        "price",
        "currency",
        "availability",
        "previous_price",
        "previous_currency",
        "previous_availability",
        "source",
        "observed_at",
    ] {
        assert!(keys.contains(&k), "event has {k}: {keys:?}");
    }

    // Second run, nothing changed: validators come back, two 304s, two same bodies, no event.
    shop.clear_log();
    let out = run(&dir, &links, &["--every", "0s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unchanged 4 (2 × 304, 2 same body)") && stderr.contains("changed 0"),
        "{stderr}"
    );
    assert_eq!(events(&dir).len(), 4, "no false positives");
    assert_eq!(shop.hits("/a"), (1, 0), "answered 304, not downloaded");
    assert_eq!(shop.hits("/b"), (1, 0));
    let seen = shop.server.seen();
    let a = seen.iter().rev().find(|s| s.path == "/a").unwrap();
    assert_eq!(a.header("if-none-match"), Some("\"v1\""));
    let b = seen.iter().rev().find(|s| s.path == "/b").unwrap();
    assert_eq!(
        b.header("if-modified-since"),
        Some("Mon, 01 Jan 2024 00:00:00 GMT")
    );

    // A price change and an availability-only change.
    shop.update("/a", |p| p.price = "12.00".into());
    shop.update("/b", |p| p.availability = "out_of_stock".into());
    run(&dir, &links, &["--quiet", "--every", "0s"]);
    let all = events(&dir);
    assert_eq!(all.len(), 6, "{all:?}");
    let new: Vec<&Value> = all[4..].iter().collect();
    let a = new.iter().find(|e| e["link"] == links[0]).unwrap();
    assert_eq!(
        (a["price"].as_str(), a["previous_price"].as_str()),
        (Some("12.00"), Some("10.00"))
    );
    assert_eq!(a["previous_currency"], "EUR");
    let b = new.iter().find(|e| e["link"] == links[1]).unwrap();
    assert_eq!(b["price"], b["previous_price"], "same price");
    assert_eq!(
        (
            b["availability"].as_str(),
            b["previous_availability"].as_str()
        ),
        (Some("out_of_stock"), Some("in_stock"))
    );

    // And quiet again.
    run(&dir, &links, &["--quiet", "--every", "0s"]);
    assert_eq!(events(&dir).len(), 6);

    // The history: 4 runs × 4 links, exact columns.
    let csv = export(&dir, "history.csv", None);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("link,observed_at,outcome,http_status,price,currency,availability,source,error")
    );
    assert_eq!(lines.count(), 16);
    let jsonl = export(&dir, "a.jsonl", Some(&links[0]));
    let rows: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4);
    let outcomes: Vec<&str> = rows
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["ok", "not_modified", "ok", "not_modified"]);
    assert_eq!(
        rows[1]["price"], "10.00",
        "a 304 carries the last known offer"
    );
    assert_eq!(rows[1]["http_status"], 304);
    assert_eq!(rows[2]["price"], "12.00");
    let cols: Vec<&str> = rows[0]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        cols,
        [
            "link",
            "observed_at",
            "outcome",
            "http_status",
            "price",
            "currency",
            "availability",
            "source",
            "error"
        ]
    );
}

#[test]
fn pages_without_offers_fail_and_back_off_without_events() {
    let dir = tmp("nooffer");
    let shop = MiniShop::start();
    let mut gone = Product::new("Gone", "1", Markup::Meta, Validators::None);
    gone.no_offer = true;
    let links = vec![shop.add("/gone", gone), shop.url("/missing")];
    run(&dir, &links, &["--quiet", "--retries", "0"]);
    assert!(events(&dir).is_empty());
    let rows: Vec<Value> = export(&dir, "h.jsonl", None)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["outcome"] == "failed"));
    let missing = rows.iter().find(|r| r["link"] == links[1]).unwrap();
    assert_eq!(missing["http_status"], 404);
    assert_eq!(missing["error"], "HTTP 404");
    let gone = rows.iter().find(|r| r["link"] == links[0]).unwrap();
    assert!(
        gone["error"].as_str().unwrap().contains("no offer"),
        "{gone}"
    );
    // `--every 0s` makes everything due, but failing links back off: nothing is fetched.
    shop.clear_log();
    run(&dir, &links, &["--quiet", "--every", "0s"]);
    assert!(shop.log().is_empty(), "{:?}", shop.log());
}

#[test]
fn watch_list_changes_deactivate_links_and_keep_history_and_status_reports_them() {
    let dir = tmp("watchlist");
    let (_shop, links) = shop_with_four();
    run(&dir, &links, &["--quiet"]);
    let out = run(&dir, &links[..2], &["--every", "1h"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("2 active (0 new, 0 back, 2 deactivated)"),
        "{stderr}"
    );
    let status = scraipe()
        .args(["monitor", "status", "--db"])
        .arg(dir.join("state.sqlite"))
        .output()
        .unwrap();
    assert!(status.status.success());
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("links:         2 active, 2 inactive"),
        "{text}"
    );
    assert!(text.contains("due now:       0 (every 3600 s)"), "{text}");
    assert!(text.contains("observations:  4"), "{text}");
    assert!(
        text.contains("events:        4 (0 waiting for delivery)"),
        "{text}"
    );
    assert!(text.contains("last change:   20"), "{text}");
    // History of the deactivated links is still there.
    assert_eq!(export(&dir, "c.jsonl", Some(&links[2])).lines().count(), 1);
    // Back on the list: reactivated, not new.
    let out = run(&dir, &links, &["--every", "1h"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("4 active (0 new, 2 back, 0 deactivated)")
    );
}

#[test]
fn report_is_one_self_contained_page_with_a_chart_per_product() {
    let dir = tmp("report");
    let (shop, links) = shop_with_four();
    run(&dir, &links, &["--quiet", "--every", "0s"]);
    shop.update("/c", |p| p.price = "7".into());
    run(&dir, &links, &["--quiet", "--every", "0s"]);
    let path = dir.join("report.html");
    scraipe()
        .args(["monitor", "report", "--db"])
        .arg(dir.join("state.sqlite"))
        .arg("--output")
        .arg(&path)
        .output_ok();
    let html = std::fs::read_to_string(&path).unwrap();
    assert_eq!(html.matches("<svg").count(), 4);
    assert!(html.contains("Charlie"));
    // No URL in it but the monitored links: nothing to fetch when it is opened.
    let mut rest = html.as_str();
    while let Some(i) = rest.find("http") {
        let tail = &rest[i..];
        assert!(
            links.iter().any(|l| tail.starts_with(l.as_str())),
            "unexpected URL in the report: {}",
            &tail[..tail.len().min(60)]
        );
        rest = &rest[i + 4..];
    }
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("<img"));
}

#[test]
fn bad_usage_is_reported_clearly() {
    let dir = tmp("usage");
    let out = scraipe()
        .args([
            "monitor", "run", "--db", "x.sqlite", "--input", "nope.txt", "--every", "soon",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = scraipe()
        .args(["monitor", "status", "--db"])
        .arg(dir.join("missing.sqlite"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database at"));
    std::fs::write(
        dir.join("junk.sqlite"),
        "this is not a database, not at all, no",
    )
    .unwrap();
    let out = scraipe()
        .args(["monitor", "status", "--db"])
        .arg(dir.join("junk.sqlite"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let help = scraipe()
        .args(["monitor", "run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--input",
        "--db",
        "--rules",
        "--every",
        "--once",
        "--changes",
        "--webhook",
        "--concurrency",
        "--per-host",
        "--timeout",
        "--retries",
        "--user-agent",
        "--proxy",
        "--ca-cert",
        "--ignore-robots",
        "--quiet",
    ] {
        assert!(help.contains(flag), "help documents {flag}");
    }
}
