//! The monitor embedded in a Rust program: the `Monitor` builder over a `SqliteStore`, run
//! twice, events into an in-memory sink, and the per-run counters.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use scraipe::monitor::store::{SqliteStore, Store};
use scraipe::monitor::Monitor;
use support::mini_shop::{Markup, MiniShop, Product, Validators};
use support::proc::Sink;

#[test]
fn an_embedded_monitor_runs_twice_and_counts_each_run() {
    let dir = std::env::temp_dir().join(format!("scraipe-monlib-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let shop = MiniShop::start();
    let links: Vec<String> = ["/x", "/y"]
        .iter()
        .map(|p| {
            shop.add(
                p,
                Product::new("Thing", "3.10", Markup::JsonLd, Validators::ETag),
            )
        })
        .collect();
    let store = Arc::new(SqliteStore::open(dir.join("s.sqlite")).unwrap());
    store.sync_watch_list(&links).unwrap();
    let sink = Sink::default();
    let progress_calls = Arc::new(Mutex::new(0usize));
    let calls = progress_calls.clone();
    let monitor = Monitor::builder(store.clone())
        .every(Duration::ZERO)
        .once(true)
        .concurrency(4)
        .threads(1)
        .changes_to(Box::new(sink.clone()))
        .on_progress(move |_| *calls.lock().unwrap() += 1)
        .build()
        .unwrap();

    let first = monitor.run().unwrap();
    assert_eq!((first.progress.checked, first.progress.changed), (2, 2));
    assert_eq!(first.events_delivered, 2);
    assert_eq!(sink.events().len(), 2);

    shop.update("/y", |p| p.price = "2.90".into());
    let second = monitor.run().unwrap();
    assert_eq!(second.progress.checked, 2, "counters are per run");
    assert_eq!(
        (second.progress.changed, second.progress.not_modified),
        (1, 1)
    );
    let events = sink.events();
    assert_eq!(events.len(), 3);
    assert_eq!(events[2].link, links[1]);
    assert_eq!(events[2].previous_price.as_deref(), Some("3.10"));
    assert!(*progress_calls.lock().unwrap() >= 2);
    let status = store.status(scraipe::monitor::now_ms()).unwrap();
    assert_eq!(
        (status.observations, status.events, status.pending_events),
        (4, 3, 0)
    );
    drop(monitor);
    store.close();
    std::fs::remove_dir_all(&dir).unwrap();
}

fn fresh_store(name: &str) -> (std::path::PathBuf, Arc<SqliteStore>) {
    let dir = std::env::temp_dir().join(format!("scraipe-monlib-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(SqliteStore::open(dir.join("s.sqlite")).unwrap());
    (dir, store)
}

fn products(shop: &MiniShop, prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            shop.add(
                &format!("/{prefix}{i}"),
                Product::new("Thing", "3.10", Markup::JsonLd, Validators::ETag),
            )
        })
        .collect()
}

/// A site that answers "retry after an hour" holds back its own links, not the run: they are
/// recorded as held back at once (one request to it in all), every other site is checked, and
/// a `--once` run ends instead of waiting out the hour.
#[test]
fn a_site_asking_for_an_hours_pause_holds_back_only_its_own_links() {
    let (dir, store) = fresh_store("defer");
    let throttled = MiniShop::start();
    let fine = MiniShop::start();
    let mut links = products(&throttled, "t", 20);
    links.extend(products(&fine, "f", 8));
    throttled.state.lock().unwrap().throttle = Some((429, 3600));
    store.sync_watch_list(&links).unwrap();
    let monitor = Monitor::builder(store.clone())
        .every(Duration::ZERO)
        .once(true)
        .concurrency(2)
        .per_host(1)
        .threads(1)
        .ignore_robots(true)
        .changes_to(Box::new(std::io::sink()))
        .build()
        .unwrap();
    let run = monitor.run().unwrap();
    assert!(run.elapsed < Duration::from_secs(10), "{:?}", run.elapsed);
    assert_eq!(run.progress.checked, 28);
    assert_eq!((run.progress.changed, run.progress.failed), (8, 20));
    let to_throttled = throttled
        .log()
        .iter()
        .filter(|l| l.2 != "/robots.txt")
        .count();
    assert_eq!(to_throttled, 1, "one request found out about the pause");
    let status = store.status(scraipe::monitor::now_ms()).unwrap();
    assert_eq!(status.observations, 28);
    drop(monitor);
    store.close();
    std::fs::remove_dir_all(&dir).unwrap();
}
