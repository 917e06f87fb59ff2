//! `scraipe demo monitor`: the demo shop and the price monitor together on loopback, for three
//! short windows. Window 1 sees every product for the first time; before windows 2 and 3 the
//! shop moves to its next epoch (a share of prices and availabilities change). After each
//! window every stored offer is checked against the shop's truth, every change event against
//! what really changed, and robots.txt compliance against the shop's own counters.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use scraipe::demo::shop::{Shop, ShopOptions, ShopServer, ShopTruth};
use scraipe::monitor::change::ChangeEvent;
use scraipe::monitor::store::{HistoryRow, SqliteStore, Store};
use scraipe::monitor::Monitor;
use scraipe::offer::Rules;
use scraipe::rt::Builder;

use super::summary::group;
use super::DemoMonitorArgs;

/// Collects the change events a window writes.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<u8>>>);

impl Write for Events {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Events {
    fn take(&self) -> Vec<ChangeEvent> {
        let bytes = std::mem::take(&mut *self.0.lock());
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

fn key(t: &ShopTruth) -> (String, String, &'static str) {
    (t.price.clone(), t.currency.clone(), t.availability)
}

pub fn run(args: DemoMonitorArgs) -> Result<(), String> {
    let server_rt = Builder::new()
        .worker_threads(1)
        .thread_name("demo-shop")
        .build()
        .map_err(|e| format!("cannot start the shop's runtime: {e}"))?;
    let shop = Shop::new(ShopOptions {
        hosts: args.hosts as usize,
        products_per_host: args.products_per_host as usize,
        change_share: args.change_share,
        change_every: Duration::ZERO, // epochs advance between windows, not by the clock
        ..ShopOptions::default()
    });
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
    let server = ShopServer::start(server_rt.handle(), addr, shop.clone())
        .map_err(|e| format!("cannot start the demo shop: {e}"))?;
    let urls = shop.urls(server.port());
    let allowed: Vec<&String> = urls.iter().filter(|u| !shop.is_disallowed(u)).collect();
    outln!(
        "demo shop: {} hosts × {} product(s) on 127.0.0.1:{} (shop-N.localhost), {} disallowed by robots.txt",
        group(args.hosts as usize),
        args.products_per_host,
        server.port(),
        group(urls.len() - allowed.len())
    );

    let dir = std::env::temp_dir().join(format!("scraipe-demo-monitor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let db = dir.join("state.sqlite");
    let store = Arc::new(SqliteStore::open(&db).map_err(|e| e.to_string())?);
    store.sync_watch_list(&urls).map_err(|e| e.to_string())?;
    let rules = Rules::from_toml_str(&shop.rules_toml()).map_err(|e| e.to_string())?;
    let events = Events::default();
    let monitor = Monitor::builder(store.clone())
        .every(Duration::ZERO)
        .once(true)
        .concurrency(args.concurrency as usize)
        .per_host(args.per_host as usize)
        .rules(Arc::new(rules))
        .changes_to(Box::new(events.clone()))
        .build()?;

    let mut problems = Vec::new();
    let mut truth: HashMap<&str, ShopTruth> = HashMap::new();
    for window in 1..=args.windows {
        let before = truth.clone();
        if window > 1 {
            shop.advance_epoch();
        }
        truth = allowed
            .iter()
            .filter_map(|u| shop.expected(u).map(|t| (u.as_str(), t)))
            .collect();
        let stats_before = server.stats();
        let started = Instant::now();
        let summary = monitor.run()?;
        let took = started.elapsed();
        let stats = server.stats();
        let window_events = events.take();
        let p = summary.progress;
        outln!(
            "window {window}: {} checks in {:.2} s ({} /s): {} changed, {} unchanged ({} × 304, {} same body), {} failed, {} disallowed; {} event(s)",
            group(p.checked as usize),
            took.as_secs_f64(),
            group((p.checked as f64 / took.as_secs_f64().max(1e-3)) as usize),
            group(p.changed as usize),
            group(p.unchanged as usize),
            group(p.not_modified as usize),
            group(p.same_body as usize),
            group(p.failed as usize),
            group(p.disallowed as usize),
            group(window_events.len()),
        );
        // What really changed since the last window, and what the monitor reported.
        let changed: Vec<&str> = truth
            .iter()
            .filter(|(u, t)| before.get(*u).map(key) != Some(key(t)))
            .map(|(u, _)| *u)
            .collect();
        let reported: HashMap<&str, &ChangeEvent> =
            window_events.iter().map(|e| (e.link.as_str(), e)).collect();
        for url in &changed {
            let t = &truth[url];
            match reported.get(url) {
                None => problems.push(format!("window {window}: {url} changed, no event")),
                Some(e) => {
                    let got = (
                        e.price.clone().unwrap_or_default(),
                        e.currency.clone().unwrap_or_default(),
                        e.availability.clone().unwrap_or_default(),
                    );
                    if got
                        != (
                            t.price.clone(),
                            t.currency.clone(),
                            t.availability.to_string(),
                        )
                    {
                        problems.push(format!(
                            "window {window}: {url}: expected {t:?}, event {e:?}"
                        ));
                    }
                }
            }
        }
        for e in &window_events {
            if !changed.contains(&e.link.as_str()) {
                problems.push(format!(
                    "window {window}: {} reported a change that did not happen",
                    e.link
                ));
            }
        }
        if stats.disallowed_requests > 0 {
            problems.push(format!(
                "window {window}: {} request(s) for disallowed paths",
                stats.disallowed_requests
            ));
        }
        outln!(
            "          the shop answered {} requests ({} × 304, {} robots.txt); {} real changes, {} reported",
            group((stats.requests - stats_before.requests) as usize),
            group((stats.not_modified - stats_before.not_modified) as usize),
            group((stats.robots_requests - stats_before.robots_requests) as usize),
            group(changed.len()),
            group(window_events.len()),
        );
        let unchanged_pages = p.unchanged.max(1);
        if window > 1 {
            outln!(
                "          {:.1} % of unchanged pages answered 304",
                p.not_modified as f64 * 100.0 / unchanged_pages as f64
            );
        }
        if let Some(e) = window_events.iter().find(|e| e.previous_price.is_some()) {
            outln!(
                "          e.g. {}: {} {} {} → {} {} {}",
                e.link,
                e.previous_price.as_deref().unwrap_or("-"),
                e.previous_currency.as_deref().unwrap_or(""),
                e.previous_availability.as_deref().unwrap_or(""),
                e.price.as_deref().unwrap_or("-"),
                e.currency.as_deref().unwrap_or(""),
                e.availability.as_deref().unwrap_or(""),
            );
        }
    }
    // The stored offers against the truth at the end.
    let mut last: HashMap<String, HistoryRow> = HashMap::new();
    store
        .history(None, &mut |r| {
            last.insert(r.link.clone(), r);
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    for url in &urls {
        let Some(HistoryRow {
            outcome,
            price,
            currency,
            availability,
            ..
        }) = last.get(url)
        else {
            problems.push(format!("{url}: never checked"));
            continue;
        };
        if shop.is_disallowed(url) {
            if outcome != "disallowed" {
                problems.push(format!(
                    "{url}: disallowed by robots.txt, recorded {outcome}"
                ));
            }
            continue;
        }
        if let Some(t) = truth.get(url.as_str()) {
            let ok = price.as_deref() == Some(t.price.as_str())
                && currency.as_deref() == Some(t.currency.as_str())
                && availability.as_deref() == Some(t.availability);
            if !ok {
                problems.push(format!(
                    "{url}: expected {} {} {}, stored {outcome} {price:?} {currency:?} {availability:?}",
                    t.price, t.currency, t.availability
                ));
            }
        }
    }
    let observations = last_observations(&store);
    drop(monitor);
    store.close();
    let db_bytes = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(dir.join("state.sqlite-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    outln!(
        "database: {:.1} MB for {} observations; peak RSS of this process (shop and monitor): {}",
        db_bytes as f64 / 1e6,
        group(observations),
        peak_rss().unwrap_or_else(|| "unknown".into())
    );
    let _ = std::fs::remove_dir_all(&dir);
    if problems.is_empty() {
        outln!(
            "checked: every stored offer matches the shop, every change was reported once and nothing else, no disallowed path was requested"
        );
        Ok(())
    } else {
        outln!("checked: {} problem(s):", problems.len());
        for p in problems.iter().take(10) {
            outln!("  {p}");
        }
        Err(format!(
            "{} mismatch(es) with the shop's truth",
            problems.len()
        ))
    }
}

fn last_observations(store: &SqliteStore) -> usize {
    store
        .status(scraipe::monitor::now_ms())
        .map(|s| s.observations as usize)
        .unwrap_or(0)
}

/// `VmHWM` from /proc/self/status (Linux).
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(format!("{:.0} MB", kb / 1024.0))
}
