//! The monitor against the demo shop (issue 11, parts A + B + C together): three windows over
//! 40 hosts with every markup, price format, validator mix and robots.txt of the shop. Every
//! stored offer must equal the shop's truth, every change must be reported exactly once (and
//! nothing else), no disallowed path may be requested, no host may see more than `--per-host`
//! requests at once, and each product is fetched once per window.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use scraipe::demo::shop::{Shop, ShopOptions, ShopServer};
use scraipe::monitor::store::{SqliteStore, Store};
use scraipe::monitor::Monitor;
use scraipe::offer::Rules;
use scraipe::rt::Runtime;
use support::proc::{count, monitor_run, signal, wait_exit, wait_until, OutputOk, Sink};

#[test]
fn three_windows_over_the_demo_shop_match_its_truth() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let shop = Shop::new(ShopOptions {
        hosts: 40,
        products_per_host: 2,
        change_share: 0.3,
        change_every: Duration::ZERO,
        ..ShopOptions::default()
    });
    let server =
        ShopServer::start(rt.handle(), "127.0.0.1:0".parse().unwrap(), shop.clone()).unwrap();
    let urls = shop.urls(server.port());
    let dir = std::env::temp_dir().join(format!("scraipe-monshop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(SqliteStore::open(dir.join("s.sqlite")).unwrap());
    store.sync_watch_list(&urls).unwrap();
    let sink = Sink::default();
    let monitor = Monitor::builder(store.clone())
        .every(Duration::ZERO)
        .once(true)
        .concurrency(32)
        .per_host(2)
        .rules(Arc::new(Rules::from_toml_str(&shop.rules_toml()).unwrap()))
        .changes_to(Box::new(sink.clone()))
        .build()
        .unwrap();

    let allowed: Vec<&String> = urls.iter().filter(|u| !shop.is_disallowed(u)).collect();
    assert!(
        allowed.len() < urls.len(),
        "the shop disallows some products"
    );
    let mut before: HashMap<String, (String, String, &'static str)> = HashMap::new();
    for window in 0..3 {
        if window > 0 {
            shop.advance_epoch();
        }
        let truth: HashMap<String, (String, String, &'static str)> = allowed
            .iter()
            .map(|u| {
                let t = shop.expected(u).unwrap();
                (u.to_string(), (t.price, t.currency, t.availability))
            })
            .collect();
        let hits_before = server.stats().product_requests_per_url;
        let summary = monitor.run().unwrap();
        let stats = server.stats();
        assert_eq!(stats.disallowed_requests, 0, "window {window}");
        assert!(
            stats.max_in_flight_per_host <= 2,
            "window {window}: {}",
            stats.max_in_flight_per_host
        );
        for u in &allowed {
            let n = stats.product_requests_per_url.get(*u).copied().unwrap_or(0)
                - hits_before.get(*u).copied().unwrap_or(0);
            assert_eq!(n, 1, "window {window}: {u} fetched {n} times");
        }
        assert_eq!(summary.progress.failed, 0, "window {window}: {summary:?}");
        let changed: Vec<&String> = truth
            .keys()
            .filter(|u| before.get(*u) != truth.get(*u))
            .collect();
        let events = sink.take();
        assert_eq!(
            events.len(),
            changed.len(),
            "window {window}: one event per real change"
        );
        for e in &events {
            let t = &truth[&e.link];
            assert_eq!(
                (
                    e.price.as_deref(),
                    e.currency.as_deref(),
                    e.availability.as_deref()
                ),
                (Some(t.0.as_str()), Some(t.1.as_str()), Some(t.2)),
                "window {window}: {}",
                e.link
            );
            if let Some(b) = before.get(&e.link) {
                assert_eq!(e.previous_price.as_deref(), Some(b.0.as_str()));
            }
        }
        if window > 0 {
            assert!(
                summary.progress.not_modified > 0,
                "unchanged pages answer 304"
            );
        }
        before = truth;
    }
    drop(monitor);
    store.close();
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- the `scraipe monitor run` process against the shop ----

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use scraipe::demo::shop::ShopServerOptions;

struct Served {
    _rt: Runtime,
    server: ShopServer,
    urls: Vec<String>,
    dir: PathBuf,
}

fn serve(name: &str, hosts: usize, latency: Duration) -> Served {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let shop = Shop::new(ShopOptions {
        hosts,
        change_every: Duration::ZERO,
        ..ShopOptions::default()
    });
    let server = ShopServer::start_with(
        rt.handle(),
        "127.0.0.1:0".parse().unwrap(),
        shop.clone(),
        ShopServerOptions {
            latency,
            ..Default::default()
        },
    )
    .unwrap();
    let urls = shop.urls(server.port());
    let dir = std::env::temp_dir().join(format!("scraipe-monshop-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("urls.txt"), urls.join("\n")).unwrap();
    std::fs::write(dir.join("rules.toml"), shop.rules_toml()).unwrap();
    Served {
        _rt: rt,
        server,
        urls,
        dir,
    }
}

fn monitor_cmd(dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = monitor_run(dir, &dir.join("urls.txt"));
    cmd.arg("--quiet")
        .arg("--rules")
        .arg(dir.join("rules.toml"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

#[test]
fn continuous_windows_against_the_shop_are_polite_and_mostly_304() {
    let s = serve("continuous", 30, Duration::ZERO);
    let shop = s.server.shop().clone();
    let allowed: Vec<&String> = s.urls.iter().filter(|u| !shop.is_disallowed(u)).collect();
    let mut child = monitor_cmd(&s.dir, &["--every", "1s"]).spawn().unwrap();
    let fetched = |n: u64| {
        let stats = s.server.stats();
        allowed
            .iter()
            .all(|u| stats.product_requests_per_url.get(*u).copied().unwrap_or(0) >= n)
    };
    wait_until(Duration::from_secs(15), || fetched(3));
    signal(&child, libc::SIGTERM);
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(6)).code(),
        Some(0)
    );
    let stats = s.server.stats();
    assert_eq!(stats.disallowed_requests, 0, "robots.txt never violated");
    assert!(
        stats.max_in_flight_per_host <= 2,
        "{}",
        stats.max_in_flight_per_host
    );
    let product_requests: u64 = stats.product_requests_per_url.values().sum();
    let later = product_requests - allowed.len() as u64;
    assert!(
        stats.not_modified * 10 >= later * 9,
        "{} of {later} later checks answered 304",
        stats.not_modified
    );
    // Prices never changed: one event per product (its first sighting), nothing else.
    let events = std::fs::read_to_string(s.dir.join("events.jsonl")).unwrap();
    assert_eq!(events.lines().count(), allowed.len());
}

#[test]
fn kill_9_mid_window_against_the_shop_then_resume() {
    let s = serve("kill9", 60, Duration::from_millis(100));
    let shop = s.server.shop().clone();
    let allowed: Vec<&String> = s.urls.iter().filter(|u| !shop.is_disallowed(u)).collect();
    let product_requests = || -> u64 { s.server.stats().product_requests_per_url.values().sum() };
    let mut child = monitor_cmd(&s.dir, &["--every", "1h", "--concurrency", "6"])
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(15), || product_requests() >= 20);
    signal(&child, libc::SIGKILL);
    let _ = child.wait();
    let before = product_requests();
    assert!(before < allowed.len() as u64, "killed mid-window");
    monitor_cmd(&s.dir, &["--every", "1h", "--once"]).output_ok();
    let stats = s.server.stats();
    assert_eq!(stats.disallowed_requests, 0);
    for u in &allowed {
        assert!(
            stats.product_requests_per_url.get(*u).copied().unwrap_or(0) >= 1,
            "{u} checked"
        );
    }
    let total: u64 = stats.product_requests_per_url.values().sum();
    eprintln!(
        "{total} fetches for {} products ({before} before the kill)",
        allowed.len()
    );
    assert!(total <= allowed.len() as u64 + 6 + 2, "{total} fetches");
    let conn = rusqlite::Connection::open(s.dir.join("state.sqlite")).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM events"),
        allowed.len() as i64
    );
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM (SELECT link_id FROM events GROUP BY link_id HAVING COUNT(*) > 1)"),
        0
    );
}

#[test]
fn demo_monitor_checks_itself_against_the_shop() {
    let out = Command::new(env!("CARGO_BIN_EXE_scraipe"))
        .args([
            "demo",
            "monitor",
            "--hosts",
            "60",
            "--products-per-host",
            "2",
            "--change-share",
            "0.3",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for w in ["window 1:", "window 2:", "window 3:"] {
        assert!(stdout.contains(w), "{stdout}");
    }
    assert!(
        stdout.contains("% of unchanged pages answered 304"),
        "{stdout}"
    );
    assert!(
        stdout.contains("checked: every stored offer matches the shop"),
        "{stdout}"
    );
}
