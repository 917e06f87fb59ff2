//! Executors: run_multiple's laziness, bound, order and error rows; the nested sync bridge;
//! AsyncManager switching under load.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::quiet_panics;

use scraipe::executor::{
    AsyncExecutor, AsyncExecutorExt, AsyncManager, DefaultBackgroundExecutor,
    EventLoopPoolExecutor, ExecutorError, TaskError,
};
use scraipe::rt::sleep;
use scraipe::{async_trait, AsyncScraper, ScrapeResult, Scraper};

/// Tests that change the process-wide executor run one at a time.
static GLOBAL: Mutex<()> = Mutex::new(());

/// A task reports its row just before it finishes: give it a moment to be gone.
fn wait_idle(exec: &dyn AsyncExecutor) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while exec.in_flight() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} tasks never finished",
            exec.in_flight()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn run_multiple_is_lazy_bounded_and_in_completion_order() {
    let exec = DefaultBackgroundExecutor::new().unwrap();
    let pulled = Arc::new(AtomicUsize::new(0));
    let live = Arc::new(AtomicUsize::new(0));
    let max_live = Arc::new(AtomicUsize::new(0));
    let (p, l, m) = (pulled.clone(), live.clone(), max_live.clone());
    let futures = (0..20u64).map(move |i| {
        p.fetch_add(1, Ordering::SeqCst);
        let (live, max_live) = (l.clone(), m.clone());
        async move {
            let now = live.fetch_add(1, Ordering::SeqCst) + 1;
            max_live.fetch_max(now, Ordering::SeqCst);
            // The first four finish in reverse order.
            let ms = if i < 4 { 40 - 10 * i } else { 1 + i % 3 };
            sleep(Duration::from_millis(ms)).await;
            live.fetch_sub(1, Ordering::SeqCst);
            i
        }
    });
    let mut rows = exec.run_multiple(futures, 4, None);
    assert_eq!(
        pulled.load(Ordering::SeqCst),
        0,
        "nothing starts before the first next()"
    );
    assert_eq!(rows.next(), Some((3, Ok(3))));
    assert_eq!(
        pulled.load(Ordering::SeqCst),
        4,
        "only max_workers futures were taken"
    );
    let second = rows.next().unwrap();
    assert_eq!(
        pulled.load(Ordering::SeqCst),
        5,
        "one more as one slot freed"
    );
    let mut seen: Vec<u64> = vec![3, second.1.unwrap()];
    seen.extend(rows.map(|(i, out)| {
        assert_eq!(out, Ok(i as u64));
        i as u64
    }));
    assert_eq!(seen.len(), 20);
    assert_eq!(seen.iter().copied().collect::<HashSet<_>>().len(), 20);
    assert_eq!(max_live.load(Ordering::SeqCst), 4);
    wait_idle(&exec);
}

#[test]
fn run_multiple_reports_timeouts_panics_and_zero_workers() {
    quiet_panics();
    let exec = EventLoopPoolExecutor::new(2).unwrap();
    let futures = (0..6u64).map(|i| async move {
        match i % 3 {
            0 => i,
            1 => panic!("intentional panic {i}"),
            _ => {
                sleep(Duration::from_secs(3600)).await;
                i
            }
        }
    });
    let mut rows: Vec<_> = exec
        .run_multiple(futures, 0, Some(Duration::from_millis(30)))
        .collect();
    rows.sort_by_key(|(i, _)| *i);
    let expected = |i: u64| match i % 3 {
        0 => Ok(i),
        1 => Err(TaskError::Panicked(format!("intentional panic {i}"))),
        _ => Err(TaskError::TimedOut(Duration::from_millis(30))),
    };
    assert_eq!(
        rows,
        (0..6)
            .map(|i| (i as usize, expected(i)))
            .collect::<Vec<_>>()
    );
}

#[test]
fn dropping_run_multiple_early_aborts_the_rest() {
    let exec = EventLoopPoolExecutor::new(2).unwrap();
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    let futures = (0..10u64).map(move |i| {
        let f = f.clone();
        async move {
            sleep(Duration::from_millis(if i == 0 { 1 } else { 100 })).await;
            f.fetch_add(1, Ordering::SeqCst);
        }
    });
    let mut rows = exec.run_multiple(futures, 5, None);
    assert_eq!(rows.next().map(|(i, _)| i), Some(0));
    drop(rows);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "the four others were aborted"
    );
    wait_idle(&exec);
}

#[test]
fn nested_sync_bridge_on_a_single_event_loop() {
    let exec: Arc<dyn AsyncExecutor> = Arc::new(DefaultBackgroundExecutor::new().unwrap());
    let (e1, e2) = (exec.clone(), exec.clone());
    // A task blocks on a task that blocks on a batch, all on the one event loop.
    let out = exec.run(async move {
        let inner = e1.run(async move {
            let futures = (0..8u64).map(|i| async move {
                sleep(Duration::from_millis(2)).await;
                i
            });
            let sum: u64 = e2
                .run_multiple(futures, 3, None)
                .map(|(_, v)| v.unwrap())
                .sum();
            let blocking = e2.spawn_blocking(|| 100u64).join().unwrap();
            sum + blocking
        });
        inner.unwrap() + 1
    });
    assert_eq!(out, Ok(28 + 100 + 1));

    // block_on with borrowed data, from inside a task too.
    let words = ["a".to_string(), "bb".to_string()];
    assert_eq!(
        exec.block_on(async { words.iter().map(String::len).sum::<usize>() }),
        Ok(3)
    );
    let e3 = exec.clone();
    let nested = exec.run(async move {
        let local = [1, 2, 3];
        e3.block_on(async {
            sleep(Duration::from_millis(1)).await;
            local.iter().sum::<i32>()
        })
    });
    assert_eq!(nested, Ok(Ok(6)));
}

#[test]
fn submit_handles_can_be_awaited_aborted_and_joined() {
    let exec = EventLoopPoolExecutor::new(2).unwrap();
    let slow = exec.submit(async {
        sleep(Duration::from_secs(3600)).await;
    });
    assert!(!slow.is_finished());
    slow.abort();
    assert_eq!(slow.join(), Err(TaskError::Cancelled));
    let a = exec.submit(async { 2 });
    let b = exec.submit(async { 3 });
    let sum = exec.run(async move { a.await.unwrap() * b.await.unwrap() });
    assert_eq!(sum, Ok(6));
}

/// A fake network scraper: a timer per link.
struct Echo;
#[async_trait]
impl AsyncScraper for Echo {
    async fn async_scrape(&self, link: &str) -> ScrapeResult {
        sleep(Duration::from_millis(1 + (link.len() as u64 % 3))).await;
        ScrapeResult::succeed(link, format!("echo {link}"))
    }
    fn max_workers(&self) -> usize {
        8
    }
}

#[test]
fn switching_executors_under_load_loses_nothing() {
    let _global = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let (stop, rounds) = (stop.clone(), rounds.clone());
            std::thread::spawn(move || {
                let mut round = 0;
                while !stop.load(Ordering::SeqCst) || round < 2 {
                    let links: Vec<String> =
                        (0..60).map(|i| format!("t{t}-r{round}-{i}")).collect();
                    let mut got: Vec<(String, ScrapeResult)> =
                        Arc::new(Echo).scrape_multiple(links.clone()).collect();
                    got.sort_by(|a, b| a.0.cmp(&b.0));
                    let mut want = links;
                    want.sort();
                    assert_eq!(got.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>(), want);
                    for (link, result) in &got {
                        assert_eq!(
                            result.content(),
                            Some(format!("echo {link}").as_str()),
                            "{result}"
                        );
                    }
                    let single = Echo.scrape("single");
                    assert_eq!(single.content(), Some("echo single"));
                    round += 1;
                    rounds.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();

    // A detached task on the executor about to be retired still completes.
    let old = AsyncManager::get_executor();
    let detached = old.submit(async {
        sleep(Duration::from_millis(80)).await;
        "survived"
    });
    drop(old);

    for i in 0..30 {
        if i % 2 == 0 {
            AsyncManager::enable_multithreading(2).unwrap();
            assert_eq!(AsyncManager::get_executor().name(), "scraipe-pool");
        } else {
            AsyncManager::disable_multithreading().unwrap();
            assert_eq!(AsyncManager::get_executor().name(), "scraipe-bg");
        }
        std::thread::sleep(Duration::from_millis(8));
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join()
            .expect("a worker thread saw a lost or wrong result");
    }
    assert_eq!(detached.join(), Ok("survived"));
    assert!(rounds.load(Ordering::SeqCst) >= 8);
}

#[test]
fn manager_replaces_a_shut_down_executor_and_rejects_bad_pool_sizes() {
    let _global = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    AsyncManager::disable_multithreading().unwrap();
    let current = AsyncManager::get_executor();
    assert!(matches!(
        AsyncManager::enable_multithreading(0),
        Err(ExecutorError::InvalidPoolSize(0))
    ));
    assert!(
        Arc::ptr_eq(&current, &AsyncManager::get_executor()),
        "a failed switch changes nothing"
    );
    current.shutdown(Duration::from_secs(1));
    assert_eq!(current.run(async { 1 }), Err(TaskError::Cancelled));
    let fresh = AsyncManager::get_executor();
    assert!(!fresh.is_shutdown());
    assert_eq!(fresh.run(async { 1 }), Ok(1));
    assert_eq!(Echo.scrape("after").content(), Some("echo after"));

    let started = Instant::now();
    AsyncManager::set_executor(Arc::new(EventLoopPoolExecutor::new(3).unwrap()));
    assert_eq!(AsyncManager::get_executor().name(), "scraipe-pool");
    assert!(started.elapsed() < Duration::from_secs(5));
}
