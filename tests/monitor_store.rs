//! ONE store test suite, run against both backends (SQLite and a real Redis server), plus the
//! Redis-only parts of the contract: leases, shared host slots, reconnecting after a restart,
//! and the Redis operations one check costs.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use scraipe::monitor::change::ChangeEvent;
use scraipe::monitor::store::{
    CheckRecord, DueLink, DueQuery, EventAck, LinkId, Outcome, RedisStore, RobotsRecord,
    SqliteStore, Store, Validators,
};
use scraipe::offer::{Availability, Offer, OfferSource};
use support::redis_server::RedisServer;

/// What keeps a store's backing alive (a temporary directory, a Redis server).
enum Backing {
    Dir(PathBuf),
    Redis(#[allow(dead_code)] RedisServer),
}

impl Drop for Backing {
    fn drop(&mut self) {
        if let Backing::Dir(d) = self {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

// Drop order: the store (field 0) before its backing.
struct Fixture(Arc<dyn Store>, #[allow(dead_code)] Backing);

fn sqlite(name: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("scraipe-suite-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::open(dir.join("s.sqlite")).unwrap();
    Fixture(Arc::new(store), Backing::Dir(dir))
}

fn redis(_name: &str) -> Fixture {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url()).unwrap();
    Fixture(Arc::new(store), Backing::Redis(server))
}

/// Each test of the suite, once per backend.
macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite_store {
            $( #[test] fn $test() { super::$test(&super::sqlite(stringify!($test)).0) } )*
        }
        mod redis_store {
            $( #[test] fn $test() { super::$test(&super::redis(stringify!($test)).0) } )*
        }
    };
}

suite!(
    watch_list_adds_deactivates_and_reactivates,
    recorded_links_wait_for_their_window,
    events_follow_changes_only_and_carry_the_previous_offer,
    a_price_written_differently_is_not_a_change,
    a_currency_change_splits_the_price_series,
    delivery_progress_is_kept_until_every_sink_has_the_event,
    robots_answers_are_cached,
    history_series_and_latest_events_agree,
);

fn offer(price: &str, availability: Availability) -> Offer {
    Offer {
        price: Some(price.into()),
        currency: Some("EUR".into()),
        availability,
        name: Some("Thing".into()),
        source: OfferSource::JsonLd,
    }
}

fn ok(id: LinkId, at: i64, o: Offer) -> CheckRecord {
    CheckRecord {
        link_id: id,
        observed_ms: at,
        outcome: Outcome::Ok,
        http_status: Some(200),
        offer: Some(o),
        validators: Some(Validators {
            etag: Some("\"v1\"".into()),
            last_modified: None,
            body_hash: Some("ab".repeat(32)),
        }),
        error: None,
        not_before_ms: None,
    }
}

fn due(store: &Arc<dyn Store>, now: i64, every: i64) -> Vec<DueLink> {
    store
        .due_links(&DueQuery {
            now_ms: now,
            every_ms: every,
            spread: false,
            limit: 1000,
        })
        .unwrap()
}

fn urls(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("http://shop-{}.localhost:8080/product/{i}", i % 3))
        .collect()
}

fn watch_list_adds_deactivates_and_reactivates(store: &Arc<dyn Store>) {
    let all = urls(5);
    let s = store.sync_watch_list(&all).unwrap();
    assert_eq!(
        (s.added, s.reactivated, s.deactivated, s.active),
        (5, 0, 0, 5)
    );
    let s = store.sync_watch_list(&all[..3]).unwrap();
    assert_eq!(
        (s.added, s.reactivated, s.deactivated, s.active),
        (0, 0, 2, 3)
    );
    assert_eq!(due(store, 1, 0).len(), 3, "inactive links are never due");
    let mut back = all[..4].to_vec();
    back.push("http://new.localhost:1/p".into());
    let s = store.sync_watch_list(&back).unwrap();
    assert_eq!(
        (s.added, s.reactivated, s.deactivated, s.active),
        (1, 1, 0, 5)
    );
    let st = store.status(1).unwrap();
    assert_eq!((st.active_links, st.inactive_links), (5, 1));
    assert_eq!(st.never_checked, 5);
}

fn recorded_links_wait_for_their_window(store: &Arc<dyn Store>) {
    let every = 3_600_000;
    store.set_setting("every_ms", &every.to_string()).unwrap();
    store.set_setting("spread", "0").unwrap();
    store.sync_watch_list(&urls(3)).unwrap();
    let links = due(store, 1_000, every);
    assert_eq!(links.len(), 3, "never-checked links are due");
    let t = 1_700_000_000_000;
    store
        .record(ok(links[0].id, t, offer("1.00", Availability::InStock)))
        .unwrap();
    let mut failed = ok(links[1].id, t, offer("0", Availability::InStock));
    failed.outcome = Outcome::Failed;
    failed.offer = None;
    failed.validators = None;
    failed.error = Some("HTTP 500".into());
    failed.not_before_ms = Some(t + 2 * every);
    store.record(failed).unwrap();
    store.flush().unwrap();
    let ids = |v: Vec<DueLink>| v.into_iter().map(|l| l.id).collect::<Vec<_>>();
    assert_eq!(ids(due(store, t + 1_000, every)), vec![links[2].id]);
    let mut after_window = ids(due(store, t + every, every));
    after_window.sort();
    assert_eq!(
        after_window,
        vec![links[0].id, links[2].id],
        "the failed one backs off"
    );
    assert_eq!(due(store, t + 2 * every, every).len(), 3);
    // What the next check needs comes back with the link.
    let l0 = due(store, t + every, every)
        .into_iter()
        .find(|l| l.id == links[0].id)
        .unwrap();
    assert_eq!(l0.etag.as_deref(), Some("\"v1\""));
    assert_eq!(l0.last_checked_ms, Some(t));
    assert_eq!(l0.last_offer.unwrap().price.as_deref(), Some("1.00"));
    let l1 = due(store, t + 2 * every, every)
        .into_iter()
        .find(|l| l.id == links[1].id)
        .unwrap();
    assert_eq!(l1.failures, 1);
    let st = store.status(t + 1_000).unwrap();
    assert_eq!(st.observations, 2);
    assert_eq!(st.failing, 1);
    assert_eq!(st.never_checked, 1);
    assert_eq!(st.every_ms, Some(every));
    assert_eq!(st.last_check_ms, Some(t));
}

fn events_follow_changes_only_and_carry_the_previous_offer(store: &Arc<dyn Store>) {
    store.sync_watch_list(&urls(1)).unwrap();
    let id = due(store, 1, 0)[0].id;
    store
        .record(ok(id, 10, offer("9.99", Availability::InStock)))
        .unwrap();
    store
        .record(ok(id, 20, offer("9.99", Availability::InStock)))
        .unwrap();
    let mut same = ok(id, 25, offer("0", Availability::InStock));
    same.offer = None; // same body: the store copies the last offer
    store.record(same).unwrap();
    let mut not_modified = ok(id, 26, offer("0", Availability::InStock));
    not_modified.outcome = Outcome::NotModified;
    not_modified.http_status = Some(304);
    not_modified.offer = None;
    not_modified.validators = None;
    store.record(not_modified).unwrap();
    let mut failed = ok(id, 27, offer("0", Availability::InStock));
    failed.outcome = Outcome::Failed;
    failed.offer = None;
    failed.error = Some("HTTP 500".into());
    store.record(failed).unwrap();
    store
        .record(ok(id, 30, offer("9.99", Availability::OutOfStock)))
        .unwrap();
    store.flush().unwrap();
    let events = store.pending_events(0, 10).unwrap();
    assert_eq!(
        events.len(),
        2,
        "first sighting and the availability change"
    );
    let first: ChangeEvent = serde_json::from_str(&events[0].payload).unwrap();
    let second: ChangeEvent = serde_json::from_str(&events[1].payload).unwrap();
    assert!(first.id < second.id);
    assert_eq!(first.previous_price, None);
    assert_eq!(first.price.as_deref(), Some("9.99"));
    assert_eq!(first.name.as_deref(), Some("Thing"));
    assert_eq!(second.previous_availability.as_deref(), Some("in_stock"));
    assert_eq!(second.availability.as_deref(), Some("out_of_stock"));
    assert_eq!(second.previous_price.as_deref(), Some("9.99"));
    assert_eq!(second.source.as_deref(), Some("json_ld"));
    assert_eq!(second.observed_at, "1970-01-01T00:00:00.030Z");
    assert_eq!(second.link, urls(1)[0]);
    let mut rows = Vec::new();
    store
        .history(None, &mut |r| {
            rows.push((r.outcome, r.price, r.http_status));
            Ok(())
        })
        .unwrap();
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert_eq!(rows[2], ("ok".into(), Some("9.99".into()), Some(200)));
    assert_eq!(
        rows[3],
        ("not_modified".into(), Some("9.99".into()), Some(304))
    );
    assert_eq!(rows[4], ("failed".into(), None, Some(200)));
    let st = store.status(100).unwrap();
    assert_eq!(st.events, 2);
    assert_eq!(st.pending_events, 2);
    assert_eq!(st.last_change.as_ref().map(|c| c.0), Some(30));
}

/// `12.5`, `12.50` and `12.500` are one price (a site switching its JSON-LD from a number to a
/// string must not fire an event per product); `12.05` and `120` are not.
fn a_price_written_differently_is_not_a_change(store: &Arc<dyn Store>) {
    store.sync_watch_list(&urls(1)).unwrap();
    let id = due(store, 1, 0)[0].id;
    let prices = [
        "12.5", "12.50", "12.500", "12.05", "12.050", "120", "120.00", "120",
    ];
    for (i, price) in prices.iter().enumerate() {
        store
            .record(ok(id, 10 + i as i64, offer(price, Availability::InStock)))
            .unwrap();
    }
    store.flush().unwrap();
    let events: Vec<ChangeEvent> = store
        .pending_events(0, 20)
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(&e.payload).unwrap())
        .collect();
    let moves: Vec<(Option<String>, Option<String>)> = events
        .into_iter()
        .map(|e| (e.previous_price, e.price))
        .collect();
    let p = |s: &str| Some(s.to_string());
    assert_eq!(
        moves,
        [
            (None, p("12.5")),
            (p("12.500"), p("12.05")),
            (p("12.050"), p("120"))
        ]
    );
}

/// The report draws one chart per series under the series' currency: a shop that switched from
/// EUR to USD gets two, each true of its points.
fn a_currency_change_splits_the_price_series(store: &Arc<dyn Store>) {
    store.sync_watch_list(&urls(1)).unwrap();
    let id = due(store, 1, 0)[0].id;
    for (i, (price, currency)) in [("1.00", "EUR"), ("1.10", "EUR"), ("1.20", "USD")]
        .iter()
        .enumerate()
    {
        let mut o = offer(price, Availability::InStock);
        o.currency = Some(currency.to_string());
        store.record(ok(id, 10 + i as i64, o)).unwrap();
    }
    store.flush().unwrap();
    let mut series = Vec::new();
    store
        .price_series(&mut |s| {
            series.push((s.currency, s.points.len()));
            Ok(())
        })
        .unwrap();
    assert_eq!(
        series,
        [(Some("EUR".to_string()), 2), (Some("USD".to_string()), 1)]
    );
}

fn delivery_progress_is_kept_until_every_sink_has_the_event(store: &Arc<dyn Store>) {
    store.sync_watch_list(&urls(3)).unwrap();
    for (i, l) in due(store, 1, 0).iter().enumerate() {
        store
            .record(ok(l.id, 100 + i as i64, offer("1", Availability::InStock)))
            .unwrap();
    }
    store.flush().unwrap();
    let events = store.pending_events(0, 10).unwrap();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| !e.file_done && !e.webhook_done));
    // Paging by id.
    let page = store.pending_events(events[0].id, 1).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, events[1].id);
    store
        .ack_events(&[
            EventAck {
                id: events[0].id,
                file_done: true,
                webhook_done: true,
                delivered: true,
            },
            EventAck {
                id: events[1].id,
                file_done: true,
                webhook_done: false,
                delivered: false,
            },
        ])
        .unwrap();
    store.flush().unwrap();
    let left = store.pending_events(0, 10).unwrap();
    assert_eq!(left.len(), 2);
    assert_eq!(left[0].id, events[1].id);
    assert!(left[0].file_done && !left[0].webhook_done);
    assert_eq!(store.status(1000).unwrap().pending_events, 2);
    assert_eq!(
        store.latest_events(10).unwrap().len(),
        3,
        "history keeps every event"
    );
}

fn robots_answers_are_cached(store: &Arc<dyn Store>) {
    assert_eq!(store.robots_get("http://a.localhost:80").unwrap(), None);
    let r = RobotsRecord {
        origin: "http://a.localhost:80".into(),
        fetched_ms: 5,
        expires_ms: 4_000_000_000_000,
        status: Some(200),
        body: "User-agent: *\nDisallow: /private\n".into(),
    };
    store.robots_put(r.clone()).unwrap();
    let unreachable = RobotsRecord {
        origin: "https://a.localhost:443".into(),
        status: None,
        body: "connection refused".into(),
        ..r.clone()
    };
    store.robots_put(unreachable.clone()).unwrap();
    store.flush().unwrap();
    assert_eq!(store.robots_get("http://a.localhost:80").unwrap(), Some(r));
    assert_eq!(
        store.robots_get("https://a.localhost:443").unwrap(),
        Some(unreachable),
        "per origin: scheme and port count"
    );
}

fn history_series_and_latest_events_agree(store: &Arc<dyn Store>) {
    let links = urls(2);
    store.sync_watch_list(&links).unwrap();
    let due = due(store, 1, 0);
    for (round, price) in ["1.00", "1.00", "2.50"].iter().enumerate() {
        for l in &due {
            store
                .record(ok(
                    l.id,
                    1000 * (round as i64 + 1),
                    offer(price, Availability::InStock),
                ))
                .unwrap();
        }
    }
    store.flush().unwrap();
    let mut series = Vec::new();
    store
        .price_series(&mut |s| {
            series.push(s);
            Ok(())
        })
        .unwrap();
    assert_eq!(series.len(), 2);
    let mut sorted = links.clone();
    sorted.sort();
    assert_eq!(series[0].link, sorted[0], "ordered by link");
    assert_eq!(series[0].name.as_deref(), Some("Thing"));
    assert_eq!(series[0].currency.as_deref(), Some("EUR"));
    let prices: Vec<&str> = series[0].points.iter().map(|p| p.1.as_str()).collect();
    assert_eq!(prices, ["1.00", "1.00", "2.50"]);
    let latest = store.latest_events(3).unwrap();
    assert_eq!(latest.len(), 3);
    assert!(latest[0].id > latest[1].id, "newest first");
    assert_eq!(latest[0].observed_ms, 3000);
    let mut one = 0;
    store
        .history(Some(&links[1]), &mut |r| {
            assert_eq!(r.link, links[1]);
            one += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(one, 3);
}

// ---------------------------------------------------------------- Redis only

fn redis_store(server: &RedisServer) -> Arc<RedisStore> {
    Arc::new(RedisStore::open(&server.url()).unwrap())
}

#[test]
fn redis_leases_hand_each_due_link_to_one_worker_until_they_run_out() {
    let server = RedisServer::start();
    let (a, b) = (redis_store(&server), redis_store(&server));
    a.set_setting("every_ms", "60000").unwrap();
    a.set_setting("spread", "0").unwrap();
    a.sync_watch_list(&urls(10)).unwrap();
    let q = |now| DueQuery {
        now_ms: now,
        every_ms: 60_000,
        spread: false,
        limit: 6,
    };
    let t = 1_700_000_000_000i64;
    let first = a.claim_due(&q(t), 5_000).unwrap();
    let second = b.claim_due(&q(t), 5_000).unwrap();
    assert_eq!((first.len(), second.len()), (6, 4));
    let mut all: Vec<LinkId> = first.iter().chain(&second).map(|l| l.id).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 10, "no link handed out twice");
    assert!(a.claim_due(&q(t + 4_999), 5_000).unwrap().is_empty());
    // Worker a records its links; b "dies" with its leases.
    for l in &first {
        a.record(ok(l.id, t + 100, offer("1", Availability::InStock)))
            .unwrap();
    }
    a.flush().unwrap();
    let taken_over = a.claim_due(&q(t + 5_000), 5_000).unwrap();
    let mut ids: Vec<LinkId> = taken_over.iter().map(|l| l.id).collect();
    ids.sort();
    let mut b_ids: Vec<LinkId> = second.iter().map(|l| l.id).collect();
    b_ids.sort();
    assert_eq!(
        ids, b_ids,
        "expired leases are taken over, recorded links wait a window"
    );
    // Renewed leases are not.
    a.renew_leases(&ids, 60_000).unwrap();
    a.flush().unwrap();
    assert!(b.claim_due(&q(t + 20_000), 5_000).unwrap().is_empty());
    assert_eq!(
        a.claim_due(&q(t + 100 + 60_000), 5_000).unwrap().len(),
        6,
        "recorded links are due a window after their check"
    );
}

#[test]
fn redis_host_slots_hold_across_stores_and_free_themselves() {
    let server = RedisServer::start();
    let (a, b) = (redis_store(&server), redis_store(&server));
    let h = "shop-1.localhost:80";
    assert_eq!(a.host_slot_acquire(h, 2, 0, 60_000, "a1").unwrap(), None);
    assert_eq!(b.host_slot_acquire(h, 2, 0, 60_000, "b1").unwrap(), None);
    assert!(a
        .host_slot_acquire(h, 2, 0, 60_000, "a2")
        .unwrap()
        .is_some());
    assert_eq!(
        a.host_slot_acquire("other:80", 2, 0, 60_000, "a3").unwrap(),
        None,
        "per host"
    );
    b.host_slot_release(h, "b1").unwrap();
    b.flush().unwrap();
    assert_eq!(a.host_slot_acquire(h, 2, 0, 60_000, "a2").unwrap(), None);
    // A dead holder's slot expires.
    let g = "ttl.localhost:80";
    assert_eq!(a.host_slot_acquire(g, 1, 0, 150, "dead").unwrap(), None);
    assert!(b.host_slot_acquire(g, 1, 0, 150, "b").unwrap().is_some());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(b.host_slot_acquire(g, 1, 0, 150, "b").unwrap(), None);
    // Crawl-delay: the next start waits for the spacing, whoever asks.
    let c = "delay.localhost:80";
    assert_eq!(a.host_slot_acquire(c, 5, 400, 60_000, "x").unwrap(), None);
    let wait = b
        .host_slot_acquire(c, 5, 400, 60_000, "y")
        .unwrap()
        .unwrap();
    assert!(wait > Duration::from_millis(300), "{wait:?}");
}

/// Redis gone for longer than the store reconnects: the next flush reports it after one
/// `retry_for`, not one per batch of writes queued meanwhile (with the default two minutes, a
/// worker used to sit there for as long as Redis stayed down), and says it gave up.
#[test]
fn redis_gone_for_good_is_reported_at_the_next_flush_after_one_retry_period() {
    let mut server = RedisServer::start();
    let store = Arc::new(
        RedisStore::open_with(
            &server.url(),
            scraipe::monitor::store::RedisOptions {
                retry_for: Duration::from_secs(2),
                ..Default::default()
            },
        )
        .unwrap(),
    );
    store.sync_watch_list(&urls(10)).unwrap();
    let ids: Vec<LinkId> = due(&(store.clone() as Arc<dyn Store>), 1, 0)
        .iter()
        .map(|l| l.id)
        .collect();
    server.kill();
    let started = std::time::Instant::now();
    // The first record alone in a batch (the writer is retrying it), the rest queued behind.
    store
        .record(ok(ids[0], 10, offer("1", Availability::InStock)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    for id in &ids[1..] {
        store
            .record(ok(*id, 10, offer("1", Availability::InStock)))
            .unwrap();
    }
    let e = store.flush().unwrap_err();
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(3500),
        "reported after {took:?}"
    );
    assert!(e.to_string().contains("giving up"), "{e}");
}

#[test]
fn redis_store_reconnects_after_a_restart_and_keeps_its_data() {
    let mut server = RedisServer::start();
    let store = redis_store(&server);
    store.sync_watch_list(&urls(3)).unwrap();
    let id = due(&(store.clone() as Arc<dyn Store>), 1, 0)[0].id;
    store
        .record(ok(id, 10, offer("1", Availability::InStock)))
        .unwrap();
    store.flush().unwrap();
    server.restart();
    // Reads and writes go on (the connection is re-established with backoff).
    store
        .record(ok(id, 20, offer("2", Availability::InStock)))
        .unwrap();
    store.flush().unwrap();
    // A batch sent again after a reconnect (same observation) changes nothing.
    store
        .record(ok(id, 20, offer("2", Availability::InStock)))
        .unwrap();
    store.flush().unwrap();
    let st = store.status(1).unwrap();
    assert_eq!(st.active_links, 3);
    assert_eq!(st.observations, 2);
    assert_eq!(
        st.events, 2,
        "both changes, the one before the restart from the AOF"
    );
    // Down for a while: a call waits for it instead of failing.
    server.stop();
    let port = server.port;
    let restarter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        server.restart();
        assert_eq!(server.port, port);
        server
    });
    let t = std::time::Instant::now();
    assert_eq!(store.status(1).unwrap().events, 2);
    assert!(t.elapsed() >= Duration::from_millis(500));
    let _server = restarter.join().unwrap();
}

#[test]
fn redis_keys_of_a_host_share_its_hash_tag() {
    let server = RedisServer::start();
    let store = redis_store(&server);
    store.sync_watch_list(&urls(3)).unwrap();
    for l in due(&(store.clone() as Arc<dyn Store>), 1, 0) {
        store
            .record(ok(l.id, 10, offer("1", Availability::InStock)))
            .unwrap();
    }
    store.flush().unwrap();
    let mut c = server.conn();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    for k in &keys {
        let tag = &k[k.find('{').unwrap() + 1..k.find('}').unwrap()];
        assert!(
            tag == "scraipe" || tag.starts_with("shop-"),
            "{k}: every key is under the global tag or a host's"
        );
    }
    assert!(
        keys.contains(&"scraipe:{shop-0.localhost:8080}:link:1".to_string()),
        "{keys:?}"
    );
    assert!(keys.contains(&"{scraipe}:events".to_string()));
    assert!(keys.contains(&"{scraipe}:due".to_string()));
    let kind: String = redis::cmd("TYPE")
        .arg("{scraipe}:events")
        .query(&mut c)
        .unwrap();
    assert_eq!(kind, "stream");
}

#[test]
fn redis_history_can_be_capped_per_link() {
    let server = RedisServer::start();
    let store = RedisStore::open_with(
        &server.url(),
        scraipe::monitor::store::RedisOptions {
            history_limit: 2,
            ..Default::default()
        },
    )
    .unwrap();
    store.sync_watch_list(&urls(1)).unwrap();
    let id = store
        .due_links(&DueQuery {
            now_ms: 1,
            every_ms: 0,
            spread: false,
            limit: 1,
        })
        .unwrap()[0]
        .id;
    for (t, p) in [(10, "1"), (20, "2"), (30, "3")] {
        store
            .record(ok(id, t, offer(p, Availability::InStock)))
            .unwrap();
    }
    store.flush().unwrap();
    let mut prices = Vec::new();
    store
        .history(None, &mut |r| {
            prices.push(r.price.unwrap());
            Ok(())
        })
        .unwrap();
    assert_eq!(prices, ["2", "3"], "the oldest dropped");
    assert_eq!(
        store.latest_events(10).unwrap().len(),
        3,
        "events are not history"
    );
}
