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
