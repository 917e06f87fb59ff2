//! The monitor as a long-running process: continuous mode over three short windows, SIGTERM
//! and SIGINT exit 0, and `kill -9` mid-window then resume (each link fetched once per window
//! give or take what was in flight, no event duplicated in the database, no corruption).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::proc::{count, fresh_dir, monitor_run, signal, wait_exit, wait_until, OutputOk};

use support::mini_shop::{Markup, MiniShop, Product, Validators};

fn tmp(name: &str) -> PathBuf {
    fresh_dir("monproc", name)
}

fn spawn(dir: &Path, links: &[String], extra: &[&str]) -> Child {
    let input = dir.join("urls.txt");
    std::fs::write(&input, links.join("\n")).unwrap();
    monitor_run(dir, &input)
        .arg("--quiet")
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn db(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("state.sqlite")).unwrap()
}

#[test]
fn continuous_mode_checks_each_window_and_sigterm_exits_zero() {
    let dir = tmp("continuous");
    let shop = MiniShop::start();
    let links = vec![
        shop.add(
            "/a",
            Product::new("A", "1.00", Markup::Meta, Validators::ETag),
        ),
        shop.add(
            "/b",
            Product::new("B", "2.00", Markup::JsonLd, Validators::None),
        ),
        shop.add(
            "/c",
            Product::new("C", "3.00", Markup::Meta, Validators::LastModified),
        ),
    ];
    let started = Instant::now();
    let mut child = spawn(&dir, &links, &["--every", "1s"]);
    // First window: each link once.
    wait_until(Duration::from_secs(5), || {
        ["/a", "/b", "/c"].iter().all(|p| shop.hits(p).0 >= 1)
    });
    shop.update("/b", |p| p.price = "2.50".into());
    // Three windows in all (the first, then two more).
    wait_until(Duration::from_secs(8), || {
        ["/a", "/b", "/c"].iter().all(|p| shop.hits(p).0 >= 3)
    });
    signal(&child, libc::SIGTERM);
    let status = wait_exit(&mut child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "SIGTERM → exit 0");
    let elapsed = started.elapsed();
    for p in ["/a", "/b", "/c"] {
        let n = shop.hits(p).0 as f64;
        // Never more often than every second (the first check plus one per second at most).
        assert!(
            n <= 2.0 + elapsed.as_secs_f64(),
            "{p} checked {n} times in {elapsed:?}"
        );
    }
    assert_eq!(shop.hits("/a").1, 1, "later windows of /a are 304s");
    let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        events.len(),
        4,
        "three first sightings and one change: {events:?}"
    );
    assert_eq!(events[3]["previous_price"], "2.00");
    let conn = db(&dir);
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM events WHERE delivered_ms IS NULL"
        ),
        0
    );
}

#[test]
fn sigint_during_slow_checks_exits_zero_promptly() {
    let dir = tmp("sigint");
    let shop = MiniShop::start();
    shop.state.lock().unwrap().delay = Duration::from_millis(300);
    let links: Vec<String> = (0..60)
        .map(|i| {
            shop.add(
                &format!("/p{i}"),
                Product::new("P", "1", Markup::Meta, Validators::None),
            )
        })
        .collect();
    let mut child = spawn(&dir, &links, &["--every", "1h", "--per-host", "2"]);
    wait_until(Duration::from_secs(5), || shop.log().len() >= 3);
    // A second monitor on the same database is refused while this one runs.
    let second = Command::new(env!("CARGO_BIN_EXE_scraipe"))
        .args(["monitor", "run", "--once", "--input"])
        .arg(dir.join("urls.txt"))
        .arg("--db")
        .arg(dir.join("state.sqlite"))
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&second.stderr).contains("another `scraipe monitor run`"));
    let t = Instant::now();
    signal(&child, libc::SIGINT);
    let status = wait_exit(&mut child, Duration::from_secs(6));
    assert_eq!(status.code(), Some(0));
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "stopped in {:?}",
        t.elapsed()
    );
    let conn = db(&dir);
    let recorded = count(&conn, "SELECT COUNT(*) FROM observations");
    assert!(
        (2..60).contains(&recorded),
        "{recorded} checks recorded before the stop"
    );
}

#[test]
fn kill_9_mid_window_then_resume_fetches_each_link_once_and_never_duplicates_events() {
    let dir = tmp("kill9");
    // Three hosts (distinct ports), 20 slow products each: 60 links, about 2 s per window.
    let shops: Vec<MiniShop> = (0..3).map(|_| MiniShop::start()).collect();
    let mut links = Vec::new();
    for shop in &shops {
        shop.state.lock().unwrap().delay = Duration::from_millis(100);
        for i in 0..20 {
            links.push(shop.add(
                &format!("/p{i}"),
                Product::new(
                    &format!("P{i}"),
                    &format!("{i}.99"),
                    Markup::Meta,
                    Validators::None,
                ),
            ));
        }
    }
    let product_requests = |shops: &[MiniShop]| {
        shops
            .iter()
            .map(|s| s.log().iter().filter(|l| l.2 != "/robots.txt").count())
            .sum::<usize>()
    };
    let mut child = spawn(
        &dir,
        &links,
        &["--every", "1h", "--per-host", "2", "--concurrency", "6"],
    );
    wait_until(Duration::from_secs(10), || product_requests(&shops) >= 25);
    signal(&child, libc::SIGKILL);
    let _ = child.wait();
    let before = product_requests(&shops);
    assert!(before < 60, "killed mid-window ({before} requests)");

    {
        let conn = db(&dir);
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
    }
    // Resume in the same window: only what was not recorded is fetched.
    monitor_run(&dir, &dir.join("urls.txt"))
        .args(["--quiet", "--once", "--every", "1h"])
        .output_ok();
    let mut total = 0;
    for shop in &shops {
        for i in 0..20 {
            let n = shop.hits(&format!("/p{i}")).0;
            assert!(n >= 1, "every link checked");
            total += n;
        }
    }
    // In flight at the kill: at most `--concurrency` 6 checks (plus a result or two not yet
    // committed: the writer commits within milliseconds when checks trickle in).
    eprintln!("{total} fetches for 60 links ({before} before the kill)");
    assert!(total <= 60 + 6 + 2, "{total} fetches for 60 links");
    let conn = db(&dir);
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM links WHERE last_checked_ms IS NULL"
        ),
        0
    );
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM events"),
        60,
        "one first-sighting event per link"
    );
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM (SELECT link_id FROM events GROUP BY link_id HAVING COUNT(*) > 1)"),
        0
    );
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM events WHERE delivered_ms IS NULL"
        ),
        0
    );
    let file = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    for link in &links {
        assert!(
            file.contains(&format!("\"link\":\"{link}\"")),
            "{link} announced"
        );
    }
}

#[test]
fn later_windows_are_spread_over_the_window_not_bursts() {
    let dir = tmp("spread");
    let shop = MiniShop::start();
    let links: Vec<String> = (0..24)
        .map(|i| {
            shop.add(
                &format!("/item-{i}"),
                Product::new("P", "1", Markup::Meta, Validators::ETag),
            )
        })
        .collect();
    let mut child = spawn(&dir, &links, &["--every", "2s", "--per-host", "24"]);
    // Every link checked twice: the first window (all new, at once), then one more each.
    wait_until(Duration::from_secs(10), || {
        (0..24).all(|i| shop.hits(&format!("/item-{i}")).0 >= 2)
    });
    signal(&child, libc::SIGTERM);
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(5)).code(),
        Some(0)
    );
    let log = shop.log();
    let mut second: Vec<Instant> = (0..24)
        .map(|i| {
            let path = format!("/item-{i}");
            log.iter().filter(|l| l.2 == path).nth(1).unwrap().0
        })
        .collect();
    second.sort();
    let spread = second[23] - second[0];
    // Phases are uniform over the 2 s window: the second checks spread over most of it.
    assert!(
        spread >= Duration::from_millis(1000),
        "second window took {spread:?}"
    );
    let burst = second
        .iter()
        .filter(|t| **t - second[0] < Duration::from_millis(250))
        .count();
    assert!(
        burst <= 12,
        "{burst} of 24 checks in the window's first 250 ms"
    );
}
