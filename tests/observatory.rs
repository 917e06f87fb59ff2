//! The executor observatory (feature `observatory`): task identity, wake sources, the exact
//! lost-waker check, "waits on", the long-poll watchdog.
//!
//! Run with `cargo test --features observatory --test observatory`.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::panic::Location;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use scraipe::executor::{AsyncExecutor, AsyncExecutorExt, DefaultBackgroundExecutor, RunMultiple};
use scraipe::rt::observe::{self, LongPoll, TaskStatus, WaitsOn, WakeSource};
use scraipe::rt::sync::{mpsc, oneshot};
use scraipe::rt::{Builder, JoinSet, Runtime};

#[path = "support/trace_check.rs"]
mod trace_check;

fn runtime(workers: usize) -> Runtime {
    Builder::new().worker_threads(workers).build().unwrap()
}

/// Polls `rt`'s task table until `pred` holds for task `id` (tasks park asynchronously).
fn wait_for(rt: &Runtime, id: u64, pred: impl Fn(&observe::TaskInfo) -> bool) -> observe::TaskInfo {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let snap = rt.handle().observe_snapshot();
        if let Some(t) = snap.task(id).filter(|t| pred(t)) {
            return t.clone();
        }
        assert!(
            Instant::now() < deadline,
            "task {id} never matched: {:?}",
            snap.task(id)
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn yielding_k_times_gives_k_plus_1_polls_and_k_self_wakes() {
    let rt = runtime(1);
    const K: u64 = 7;
    let (tx, rx) = oneshot::channel::<()>();
    let h = rt.spawn(async move {
        for _ in 0..K {
            scraipe::rt::yield_now().await;
        }
        let _ = rx.await;
    });
    let t = wait_for(&rt, h.id(), |t| t.status == TaskStatus::Idle && t.polls > K);
    assert_eq!(t.polls, K + 1);
    assert_eq!(t.wakes.self_wake, K);
    assert_eq!(t.wakes.total(), K, "{:?}", t.wakes);
    tx.send(()).unwrap();
    h.join().unwrap();
}

#[test]
fn a_oneshot_wake_is_attributed_to_the_sending_task_and_its_worker() {
    for workers in [1, 2] {
        let rt = runtime(workers);
        let (tx, rx) = oneshot::channel::<u32>();
        let (hold_tx, hold_rx) = oneshot::channel::<()>();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let receiver = rt.spawn(async move {
            rx.await.unwrap();
            let _ = hold_rx.await;
        });
        wait_for(&rt, receiver.id(), |t| {
            t.status == TaskStatus::Idle && t.polls == 1
        });
        let sender = rt.spawn(async move {
            tx.send(1).unwrap();
            let _ = done_rx.await;
        });
        let s = wait_for(&rt, sender.id(), |t| t.status == TaskStatus::Idle);
        let r = wait_for(&rt, receiver.id(), |t| {
            t.polls == 2 && t.status == TaskStatus::Idle
        });
        assert_eq!(
            r.woken_by,
            Some((sender.id(), s.last_worker)),
            "workers={workers}"
        );
        assert_eq!(r.wakes.total(), 1);
        let by_task = r.wakes.same_worker + r.wakes.other_worker;
        assert_eq!(by_task, 1, "{:?}", r.wakes);
        if workers == 1 {
            assert_eq!(r.wakes.get(WakeSource::SameWorker), 1);
        }
        hold_tx.send(()).unwrap();
        done_tx.send(()).unwrap();
        receiver.join().unwrap();
        sender.join().unwrap();
    }
}

type Site = Option<(u64, &'static Location<'static>)>;

fn site() -> Site {
    observe::current_task()
}

fn assert_site(what: &str, got: Site, line: u32) {
    let (_, loc) = got.unwrap_or_else(|| panic!("{what}: no current task"));
    assert_eq!(
        (loc.file(), loc.line()),
        (file!(), line),
        "{what} reported the wrong spawn site"
    );
}

#[test]
fn every_spawn_entry_point_reports_the_callers_file_and_line() {
    let rt = runtime(2);
    let handle = rt.handle().clone();

    let (got, line) = (rt.spawn(async { site() }), line!());
    assert_site("Runtime::spawn", got.join().unwrap(), line);
    let (got, line) = (handle.spawn(async { site() }), line!());
    assert_site("Handle::spawn", got.join().unwrap(), line);
    let (got, line) = (rt.spawn_blocking(site), line!());
    assert_site("Runtime::spawn_blocking", got.join().unwrap(), line);
    let (got, line) = (handle.spawn_blocking(site), line!());
    assert_site("Handle::spawn_blocking", got.join().unwrap(), line);

    let (got, line) = rt.block_on(async {
        let (h, line) = (scraipe::rt::spawn(async { site() }), line!());
        (h.await.unwrap(), line)
    });
    assert_site("rt::spawn", got, line);
    let (got, line) = rt.block_on(async {
        let (h, line) = (scraipe::rt::spawn_blocking(site), line!());
        (h.await.unwrap(), line)
    });
    assert_site("rt::spawn_blocking", got, line);

    let (got, line) = rt.block_on(async {
        let mut set = JoinSet::new();
        let line = line!();
        set.spawn(async { site() });
        (set.join_next().await.unwrap().unwrap(), line + 1)
    });
    assert_site("JoinSet::spawn", got, line);
    let mut set = JoinSet::new();
    let line = line!();
    set.spawn_on(async { site() }, &handle);
    let got = rt.block_on(set.join_next()).unwrap().unwrap();
    assert_site("JoinSet::spawn_on", got, line + 1);

    let exec = DefaultBackgroundExecutor::new().unwrap();
    let (got, line) = (exec.submit(async { site() }), line!());
    assert_site("AsyncExecutorExt::submit", got.join().unwrap(), line);
    let (got, line) = (exec.spawn_blocking(site), line!());
    assert_site(
        "AsyncExecutorExt::spawn_blocking",
        got.join().unwrap(),
        line,
    );
    // A pool's tasks are spawned while it is iterated, at the line that made it.
    let (pool, line) = (
        exec.run_multiple((0..3).map(|_| async { site() }), 2, None),
        line!(),
    );
    for (_, got) in pool {
        assert_site("AsyncExecutorExt::run_multiple", got.unwrap(), line - 1);
    }
    let (pool, line) = (
        RunMultiple::new(&exec, (0..2).map(|_| async { site() }), 1, None),
        line!(),
    );
    for (_, got) in pool {
        assert_site("RunMultiple::new", got.unwrap(), line - 1);
    }
    // block_on's sentinel task (it makes the call count as in-flight work) is listed at the
    // caller's line too, not inside the executor.
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let h = exec.handle();
    let line = line!() + 1;
    exec.block_on(async move {
        // The sentinel joins the table when a worker has polled it once and it parks.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let sentinels: Vec<String> = h
                .observe_snapshot()
                .tasks
                .iter()
                .filter(|t| t.location.file() == file!())
                .map(|t| t.spawned_at())
                .collect();
            if !sentinels.is_empty() || Instant::now() > deadline {
                seen_tx.send(sentinels).unwrap();
                return;
            }
            scraipe::rt::sleep(Duration::from_millis(2)).await;
        }
    })
    .unwrap();
    let sentinels = seen_rx.recv().unwrap();
    assert_eq!(sentinels, [format!("{}:{line}", file!())]);
}

/// One task parked on each kind of resource, plus one that dropped its waker.
struct Parked {
    lost: u64,
    timer: u64,
    deadline: Instant,
    socket: u64,
    channel: u64,
    mpsc: u64,
}

fn park_one_of_each(rt: &Runtime, hold: &mut Vec<Box<dyn std::any::Any>>) -> Parked {
    let lost = rt.spawn(poll_fn(|_cx| Poll::<()>::Pending)).id();
    let deadline = Instant::now() + Duration::from_secs(30);
    let timer = rt.spawn(scraipe::rt::sleep_until(deadline)).id();
    let listener = rt
        .block_on(async {
            scraipe::rt::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        })
        .unwrap();
    let socket = rt
        .spawn(async move {
            let _ = listener.accept().await;
        })
        .id();
    let (tx, rx) = oneshot::channel::<()>();
    hold.push(Box::new(tx));
    let channel = rt.spawn(rx).id();
    let (mtx, mut mrx) = mpsc::unbounded::<()>();
    hold.push(Box::new(mtx));
    let mpsc = rt.spawn(async move { mrx.recv().await }).id();
    for id in [lost, timer, socket, channel, mpsc] {
        wait_for(rt, id, |t| t.status == TaskStatus::Idle && t.polls == 1);
    }
    Parked {
        lost,
        timer,
        deadline,
        socket,
        channel,
        mpsc,
    }
}

#[test]
fn the_lost_waker_check_flags_a_future_that_dropped_its_waker_and_nothing_parked_on_a_resource() {
    let rt = runtime(2);
    let mut hold = Vec::new();
    let p = park_one_of_each(&rt, &mut hold);
    let lost: Vec<u64> = rt
        .handle()
        .lost_wakers(Duration::from_millis(20))
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(lost, vec![p.lost]);
    let snap = rt.handle().observe_snapshot();
    for id in [p.timer, p.socket, p.channel, p.mpsc] {
        assert!(!snap.task(id).unwrap().no_waker, "task {id} has a waker");
    }
    // The live view flags the same task (its two snapshots agreeing), and only it.
    let server =
        observe::ObserveServer::start(rt.handle(), SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let (_, body) = http_get(server.local_addr(), "/snapshot.json");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let flagged: Vec<u64> = v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["no_waker"] == true)
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(flagged, vec![p.lost]);
}

#[test]
fn waits_on_names_the_socket_timer_or_channel() {
    let rt = runtime(2);
    let mut hold = Vec::new();
    let p = park_one_of_each(&rt, &mut hold);
    let snap = rt.handle().observe_snapshot();
    match snap.task(p.timer).unwrap().waits_on.as_slice() {
        [WaitsOn::Timer { deadline, .. }] if *deadline == p.deadline => {}
        other => panic!("timer task waits on {other:?}"),
    }
    match snap.task(p.socket).unwrap().waits_on.as_slice() {
        [WaitsOn::Socket {
            direction: "read", ..
        }] => {}
        other => panic!("socket task waits on {other:?}"),
    }
    assert_eq!(
        snap.task(p.channel).unwrap().waits_on,
        vec![WaitsOn::Channel { kind: "oneshot" }]
    );
    assert_eq!(
        snap.task(p.mpsc).unwrap().waits_on,
        vec![WaitsOn::Channel { kind: "mpsc" }]
    );
    assert!(snap.task(p.lost).unwrap().waits_on.is_empty());
}

/// Several wakes before one poll count once per distinct source: the counters are the poll's
/// causes, taken by the polling thread (no waking thread writes a counter).
#[test]
fn wakes_before_one_poll_count_once_per_distinct_source() {
    // No worker threads: the task runs only when this thread drives the runtime, so every wake
    // below lands before the poll it causes.
    let rt = Builder::new_current_thread().build().unwrap();
    let waker = Arc::new(Mutex::new(None::<std::task::Waker>));
    let slot = waker.clone();
    let mut polls = 0;
    let h = rt.spawn(poll_fn(move |cx| {
        polls += 1;
        *slot.lock().unwrap() = Some(cx.waker().clone());
        if polls == 2 {
            // During this poll: a self-wake, then a wake from a plain thread.
            cx.waker().wake_by_ref();
            let w = cx.waker().clone();
            std::thread::spawn(move || w.wake()).join().unwrap();
        }
        Poll::<()>::Pending
    }));
    let id = h.id();
    let row = |rt: &Runtime| rt.handle().observe_snapshot().task(id).unwrap().clone();
    rt.run_until_idle();
    assert_eq!(row(&rt).polls, 1);
    // Three outside wakes, then one poll: one count.
    let w = waker.lock().unwrap().take().unwrap();
    for _ in 0..3 {
        w.wake_by_ref();
    }
    drop(w);
    rt.run_until_idle();
    // Poll 2 (the outside wakes') woke itself and was woken from outside: poll 3 has two causes.
    let t = row(&rt);
    assert_eq!(t.polls, 3, "{t:?}");
    assert_eq!(
        (t.wakes.outside, t.wakes.self_wake, t.wakes.total()),
        (2, 1, 3),
        "{t:?}"
    );
    h.abort();
    waker.lock().unwrap().take();
    rt.run_until_idle();
}

/// "Waits on" comes from the reactors' waiter lists and the timer heaps, not from what the task
/// last registered: a waker handed to another task and registered there is found under its own
/// task; a timer still armed while the task moved on to a socket is listed with the socket; a
/// dropped timer is not.
#[test]
fn waits_on_is_found_in_the_waiter_lists_and_timer_heaps() {
    let rt = runtime(2);
    // A: parks on a oneshot it never gets, after handing its waker to B.
    let (waker_tx, waker_rx) = oneshot::channel::<std::task::Waker>();
    let (_hold_a, hold_a_rx) = oneshot::channel::<()>();
    let mut waker_tx = Some(waker_tx);
    let a = rt.spawn(async move {
        poll_fn(|cx| {
            if let Some(tx) = waker_tx.take() {
                tx.send(cx.waker().clone()).unwrap();
            }
            Poll::Ready(())
        })
        .await;
        let _ = hold_a_rx.await;
    });
    // B: registers a timer *with A's waker*, keeps it armed, and parks on a oneshot itself.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (_hold_b, hold_b_rx) = oneshot::channel::<()>();
    let b = rt.spawn(async move {
        let a_waker = waker_rx.await.unwrap();
        let mut sleep = Box::pin(scraipe::rt::sleep_until(deadline));
        {
            let mut cx = std::task::Context::from_waker(&a_waker);
            assert!(sleep.as_mut().poll(&mut cx).is_pending());
        }
        let _ = hold_b_rx.await;
        drop(sleep);
    });
    let ta = wait_for(&rt, a.id(), |t| {
        t.status == TaskStatus::Idle && t.waits_on.len() == 2
    });
    assert!(
        ta.waits_on.contains(&WaitsOn::Channel { kind: "oneshot" })
            && ta
                .waits_on
                .iter()
                .any(|w| matches!(w, WaitsOn::Timer { deadline: d, .. } if *d == deadline)),
        "A: {:?}",
        ta.waits_on
    );
    let tb = wait_for(&rt, b.id(), |t| t.status == TaskStatus::Idle);
    assert_eq!(tb.waits_on, vec![WaitsOn::Channel { kind: "oneshot" }]);

    // C: sleeps (timer registered), then — woken by a message — waits on a socket with the
    // timer still armed, then drops the timer and waits on the socket alone.
    let listener = rt
        .block_on(async {
            scraipe::rt::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        })
        .unwrap();
    let (step_tx, mut step_rx) = mpsc::unbounded::<()>();
    let c = rt.spawn(async move {
        let mut sleep = Box::pin(scraipe::rt::sleep_until(deadline));
        // Phase 1: the timer and the message queue.
        poll_fn(|cx| {
            let _ = sleep.as_mut().poll(cx);
            step_rx.poll_recv(cx).map(|_| ())
        })
        .await;
        // Phase 2: the socket, the timer still armed (never polled again).
        let mut accept = Box::pin(listener.accept());
        poll_fn(|cx| {
            let _ = accept.as_mut().poll(cx);
            step_rx.poll_recv(cx).map(|_| ())
        })
        .await;
        // Phase 3: the timer dropped; the socket alone.
        drop(sleep);
        let _ = accept.await;
    });
    let is_timer = |w: &WaitsOn| matches!(w, WaitsOn::Timer { deadline: d, .. } if *d == deadline);
    let is_socket = |w: &WaitsOn| {
        matches!(
            w,
            WaitsOn::Socket {
                direction: "read",
                ..
            }
        )
    };
    let t = wait_for(&rt, c.id(), |t| {
        t.status == TaskStatus::Idle && t.polls == 1
    });
    assert!(t.waits_on.iter().any(is_timer), "phase 1: {:?}", t.waits_on);
    assert!(
        !t.waits_on.iter().any(is_socket),
        "phase 1: {:?}",
        t.waits_on
    );
    step_tx.send(()).unwrap();
    let t = wait_for(&rt, c.id(), |t| {
        t.status == TaskStatus::Idle && t.polls == 2
    });
    assert!(
        t.waits_on.iter().any(is_timer) && t.waits_on.iter().any(is_socket),
        "phase 2: {:?}",
        t.waits_on
    );
    step_tx.send(()).unwrap();
    let t = wait_for(&rt, c.id(), |t| {
        t.status == TaskStatus::Idle && t.polls >= 3
    });
    match t.waits_on.as_slice() {
        [w] if is_socket(w) => {}
        other => panic!("phase 3: {other:?}"),
    }
}

/// `spawn_blocking` jobs are in the task table, with their spawn site, queued or running, until
/// their closure returns.
#[test]
fn blocking_pool_jobs_are_in_the_task_table_until_they_finish() {
    let rt = Builder::new()
        .worker_threads(1)
        .max_blocking_threads(1)
        .build()
        .unwrap();
    let (go1_tx, go1_rx) = std::sync::mpsc::channel::<()>();
    let (go2_tx, go2_rx) = std::sync::mpsc::channel::<()>();
    let (first, line1) = (rt.spawn_blocking(move || go1_rx.recv().unwrap()), line!());
    let (second, line2) = (rt.spawn_blocking(move || go2_rx.recv().unwrap()), line!());
    let (id1, id2) = (first.id(), second.id());
    let t1 = wait_for(&rt, id1, |t| t.status == TaskStatus::Running);
    assert!(t1.blocking);
    assert_eq!(t1.spawned_at(), format!("{}:{line1}", file!()));
    // One pool thread: the second job waits in the queue.
    let t2 = rt.handle().observe_snapshot().task(id2).unwrap().clone();
    assert!(t2.blocking);
    assert_eq!(t2.status, TaskStatus::Scheduled);
    assert_eq!(t2.spawned_at(), format!("{}:{line2}", file!()));
    let json = observe_json(&rt);
    let row = |id: u64| {
        json["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(row(id2)["status"], "queued");
    assert_eq!(row(id2)["blocking"], true);
    go1_tx.send(()).unwrap();
    first.join().unwrap();
    wait_for(&rt, id2, |t| t.status == TaskStatus::Running);
    assert!(rt.handle().observe_snapshot().task(id1).is_none());
    go2_tx.send(()).unwrap();
    second.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while rt.handle().observe_snapshot().task(id2).is_some() {
        assert!(Instant::now() < deadline, "finished job still listed");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The flight recorder keeps the last `min_age` of a thread's records past its size cap:
/// `trace_json(last)` returns every one of 5,000 spawns made just now on one thread, five times
/// the size cap set here.
#[test]
fn the_flight_recorder_keeps_records_younger_than_the_minimum_age_past_the_size_cap() {
    observe::set_trace_limits(observe::TraceLimits {
        capacity: 1024,
        min_age: Duration::from_secs(60),
        max_capacity: 1 << 16,
    });
    assert_eq!(observe::trace_limits().capacity, 1024);
    observe::set_tracing(true);
    let rt = runtime(1);
    const N: usize = 5_000;
    let handle = rt.handle().clone();
    let ids: Vec<u64> = std::thread::Builder::new()
        .name("flight-recorder-test".into())
        .spawn(move || (0..N).map(|_| handle.spawn(async {}).id()).collect())
        .unwrap()
        .join()
        .unwrap();
    let evs = events(&observe::trace_json(Some(Duration::from_secs(30))));
    observe::set_trace_limits(observe::TraceLimits::default());
    let tid = evs
        .iter()
        .find(|e| {
            e["ph"] == "M"
                && e["args"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("flight-recorder-test"))
        })
        .expect("the spawning thread's track")["tid"]
        .clone();
    let spawned: std::collections::HashSet<u64> = evs
        .iter()
        .filter(|e| e["tid"] == tid && e["name"] == "spawn")
        .filter_map(|e| e["args"]["task"].as_u64())
        .collect();
    assert!(
        ids.iter().all(|id| spawned.contains(id)),
        "{} of {N} spawns in the trace",
        ids.iter().filter(|id| spawned.contains(id)).count()
    );
}

/// Long-poll reports with the instant each arrived.
type Reports = Arc<Mutex<Vec<(LongPoll, Instant)>>>;

fn watched(threshold: Duration) -> (Runtime, Reports) {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = reports.clone();
    let rt = Builder::new()
        .worker_threads(2)
        .long_poll_threshold(threshold)
        .on_long_poll(move |r| sink.lock().unwrap().push((r.clone(), Instant::now())))
        .build()
        .unwrap();
    (rt, reports)
}

#[test]
fn a_200ms_blocking_poll_is_reported_once_in_time_naming_its_spawn_line() {
    // With the trace on, the report also dumps the flight recorder.
    observe::set_tracing(true);
    let threshold = Duration::from_millis(50);
    let (rt, reports) = watched(threshold);
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let task = async move {
        started_tx.send(Instant::now()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    };
    #[rustfmt::skip]
    let (h, line) = (rt.spawn(task), line!());
    let id = h.id();
    h.join().unwrap();
    let started = started_rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(30));
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let (report, at) = &reports[0];
    assert_eq!(report.task_id, id);
    assert_eq!(
        (report.location.file(), report.location.line()),
        (file!(), line)
    );
    assert!(report.os_tid > 0);
    assert!(report.elapsed >= threshold);
    // The report arrives (the callback runs) within threshold + 20 ms of the poll's start; the
    // flight recorder is written after it.
    let late = at.duration_since(started);
    assert!(
        late <= threshold + Duration::from_millis(20),
        "reported {late:?} after the poll began"
    );
    assert!(*at >= report.detected_at);
    let dump = report
        .trace_file
        .clone()
        .expect("the flight recorder is dumped");
    drop(reports);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dump.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never written",
            dump.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let dumped = std::fs::read_to_string(&dump).unwrap();
    let _ = std::fs::remove_file(&dump);
    assert!(events(&dumped)
        .iter()
        .any(|e| e["args"]["task"].as_u64() == Some(id)));
}

#[test]
fn blocking_pool_jobs_and_nested_block_on_are_not_long_polls() {
    let (rt, reports) = watched(Duration::from_millis(20));
    rt.spawn_blocking(|| std::thread::sleep(Duration::from_millis(80)))
        .join()
        .unwrap();
    rt.spawn(async {
        // The worker keeps driving while this task is blocked in block_on.
        scraipe::rt::block_on(scraipe::rt::sleep(Duration::from_millis(80)));
    })
    .join()
    .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        reports.lock().unwrap().is_empty(),
        "{:?}",
        reports.lock().unwrap()
    );
}

/// Waits for task `h`, then checks that it was reported exactly once, naming spawn line `line`.
fn reported_once(h: scraipe::rt::JoinHandle<()>, reports: &Reports, line: u32) {
    let id = h.id();
    h.join().unwrap();
    std::thread::sleep(Duration::from_millis(30));
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].0.task_id, id);
    assert_eq!(reports[0].0.location.line(), line);
}

/// The future a task blocks on runs on the worker: when it blocks, that is the task's long poll.
#[test]
fn a_blocking_future_inside_nested_block_on_is_a_long_poll_of_its_task() {
    let threshold = Duration::from_millis(50);
    let (rt, reports) = watched(threshold);
    #[rustfmt::skip]
    let (h, line) = (rt.spawn(async { scraipe::rt::block_on(async { std::thread::sleep(Duration::from_millis(200)) }) }), line!());
    reported_once(h, &reports, line);
}

/// A `block_on` that runs nothing else (its future yields once, with no other task to run, and
/// is done) does not pause the task's poll: 40 ms on each side of it is one 80 ms poll.
#[test]
fn a_block_on_that_runs_nothing_else_does_not_restart_the_polls_clock() {
    let threshold = Duration::from_millis(50);
    let (rt, reports) = watched(threshold);
    #[rustfmt::skip]
    let (h, line) = (rt.spawn(async {
        std::thread::sleep(Duration::from_millis(40));
        scraipe::rt::block_on(async { scraipe::rt::yield_now().await; 7 });
        std::thread::sleep(Duration::from_millis(40));
    }), line!() - 4);
    reported_once(h, &reports, line);
}

fn spawn_yield_many(rt: &Runtime) -> impl Future<Output = ()> + Send + 'static {
    let handles: Vec<_> = (0..64)
        .map(|_| {
            rt.spawn(async {
                for _ in 0..200 {
                    scraipe::rt::yield_now().await;
                }
            })
        })
        .collect();
    async move {
        for h in handles {
            h.await.unwrap();
        }
    }
}

#[test]
fn yield_many_and_ping_pong_at_a_1ms_threshold_produce_no_report() {
    let (rt, reports) = watched(Duration::from_millis(1));
    rt.block_on(spawn_yield_many(&rt));
    rt.block_on(async {
        let (a_tx, mut a_rx) = mpsc::unbounded::<u32>();
        let (b_tx, mut b_rx) = mpsc::unbounded::<u32>();
        let pong = scraipe::rt::spawn(async move {
            while let Some(n) = a_rx.recv().await {
                if b_tx.send(n + 1).is_err() {
                    break;
                }
            }
        });
        for i in 0..2_000 {
            a_tx.send(i).unwrap();
            assert_eq!(b_rx.recv().await, Some(i + 1));
        }
        drop(a_tx);
        pong.await.unwrap();
    });
    assert!(
        reports.lock().unwrap().is_empty(),
        "{:?}",
        reports.lock().unwrap()
    );
}

// ----- the scheduler trace -----

use trace_check::{check_structure, events};

#[test]
fn the_trace_is_valid_chrome_json_and_links_a_socket_event_to_the_wake_and_the_readers_poll() {
    use std::io::{Read, Write};
    observe::set_tracing(true);
    let rt = runtime(2);
    let listener = rt
        .block_on(async {
            scraipe::rt::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        })
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = rt.spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).await.unwrap();
        stream.write_all(&buf).await.unwrap();
    });
    let reader = server.id();
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    client.write_all(b"hello").unwrap();
    let mut back = [0u8; 5];
    client.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"hello");
    server.join().unwrap();

    let evs = events(&observe::trace_json(None));
    check_structure(&evs);
    // A flow that ends on a poll of the reader: socket event ≤ wake ≤ poll, one id.
    let ts_of = |ph: &str, id: u64| {
        evs.iter()
            .find(|e| e["ph"] == ph && e["id"].as_u64() == Some(id))
            .map(|e| e["ts"].as_f64().unwrap())
    };
    let reader_poll_starts: Vec<(u64, f64)> = evs
        .iter()
        .filter(|e| e["ph"] == "X" && e["args"]["task"].as_u64() == Some(reader))
        .map(|e| (e["tid"].as_u64().unwrap(), e["ts"].as_f64().unwrap()))
        .collect();
    let linked = evs.iter().filter(|e| e["ph"] == "f").any(|f| {
        let id = f["id"].as_u64().unwrap();
        let at = (f["tid"].as_u64().unwrap(), f["ts"].as_f64().unwrap());
        let (Some(s), Some(t)) = (ts_of("s", id), ts_of("t", id)) else {
            return false;
        };
        reader_poll_starts.contains(&at) && s <= t && t <= at.1
    });
    assert!(
        linked,
        "no socket event → wake → reader poll flow in the trace"
    );
    // Every socket event names its token and readiness.
    assert!(evs
        .iter()
        .any(|e| e["name"] == "socket event" && e["args"]["token"].is_u64()));
    // Every poll slice on a worker says which queue its task came from and the budget it
    // spent; the reader's first poll came from the injector (spawned from a plain thread), and
    // a poll that read its socket spent budget.
    let reader_polls: Vec<&serde_json::Value> = evs
        .iter()
        .filter(|e| e["ph"] == "X" && e["args"]["task"].as_u64() == Some(reader))
        .collect();
    for p in &reader_polls {
        let source = p["args"]["source"].as_str().unwrap();
        assert!(
            ["lifo", "local", "injector", "deferred"].contains(&source)
                || source.starts_with("stolen from worker "),
            "{p}"
        );
        assert!(p["args"]["budget_used"].is_u64(), "{p}");
    }
    assert_eq!(reader_polls[0]["args"]["source"], "injector");
    assert!(reader_polls
        .iter()
        .any(|p| p["args"]["budget_used"].as_u64() >= Some(1)));
    // A park says why and until what; an unpark how much I/O it brought.
    let park = evs.iter().find(|e| e["name"] == "park").expect("a park");
    assert_eq!(park["args"]["reason"], "nothing to run");
    assert!(park["args"]["until"].is_string());
    assert!(evs
        .iter()
        .any(|e| e["name"] == "unpark" && e["args"]["io_events"].is_u64()));
}

/// A task that yields is polled again from the worker's deferred list, and the trace says so.
#[test]
fn a_yielding_tasks_later_polls_come_from_the_deferred_list() {
    observe::set_tracing(true);
    let rt = runtime(1);
    let h = rt.spawn(async {
        for _ in 0..3 {
            scraipe::rt::yield_now().await;
        }
    });
    let id = h.id();
    h.join().unwrap();
    let evs = events(&observe::trace_json(None));
    let sources: Vec<&str> = evs
        .iter()
        .filter(|e| e["ph"] == "X" && e["args"]["task"].as_u64() == Some(id))
        .map(|e| e["args"]["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["injector", "deferred", "deferred", "deferred"]);
}

/// One socket event that wakes two tasks starts two arrows, one to each reader's poll; a waker
/// that is not a task's (a `block_on` thread's) in the same reactor turn shifts no arrow onto
/// another socket's event.
#[test]
fn each_task_a_socket_event_wakes_gets_its_own_flow_from_that_event() {
    use std::io::Write;
    observe::set_tracing(true);
    let rt = runtime(1);
    let pair = |rt: &Runtime| {
        let listener = rt
            .block_on(async {
                scraipe::rt::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            })
            .unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let server = rt.block_on(async move { listener.accept().await.unwrap().0 });
        (client, server)
    };
    for round in 0..8 {
        let start = Instant::now();
        // Read by this thread's `block_on`: its waker is not a task's.
        let (mut c1, s1) = pair(&rt);
        // Read by two tasks at once: one readiness event wakes both.
        let (mut c2, s2) = pair(&rt);
        let s2 = Arc::new(s2);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let s = s2.clone();
                rt.spawn(async move {
                    let mut b = [0u8; 1];
                    s.read(&mut b).await.unwrap();
                })
            })
            .collect();
        let ids: Vec<u64> = readers.iter().map(|h| h.id()).collect();
        let token = |id| match wait_for(&rt, id, |t| !t.waits_on.is_empty()).waits_on[0] {
            WaitsOn::Socket { token, .. } => token,
            ref other => panic!("task {id} waits on {other:?}"),
        };
        let tokens: Vec<usize> = ids.iter().map(|&id| token(id)).collect();
        assert_eq!(tokens[0], tokens[1]);
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            c1.write_all(b"x").unwrap();
            c2.write_all(b"yz").unwrap();
            (c1, c2)
        });
        rt.block_on(async {
            let mut b = [0u8; 1];
            s1.read(&mut b).await.unwrap();
        });
        for h in readers {
            h.join().unwrap();
        }
        let _clients = writer.join().unwrap();

        let evs = events(&observe::trace_json(Some(
            start.elapsed() + Duration::from_millis(1),
        )));
        check_structure(&evs);
        let at = |e: &serde_json::Value| (e["tid"].as_u64().unwrap(), e["ts"].as_f64().unwrap());
        for &id in &ids {
            let polls: Vec<_> = evs
                .iter()
                .filter(|e| e["ph"] == "X" && e["args"]["task"].as_u64() == Some(id))
                .map(at)
                .collect();
            // The arrow that ends on one of this task's polls starts at a socket event, and that
            // event is its own socket's.
            let linked = evs
                .iter()
                .filter(|e| e["ph"] == "f" && polls.contains(&at(e)))
                .filter_map(|f| evs.iter().find(|s| s["ph"] == "s" && s["id"] == f["id"]))
                .filter_map(|s| {
                    evs.iter()
                        .find(|e| e["name"] == "socket event" && at(e) == at(s))
                })
                .map(|e| e["args"]["token"].as_u64().unwrap() as usize)
                .collect::<Vec<_>>();
            assert_eq!(
                linked,
                [tokens[0]],
                "round {round}: task {id}'s arrows start at these sockets' events"
            );
        }
    }
}

#[test]
fn a_forced_steal_shows_from_and_to() {
    observe::set_tracing(true);
    let rt = runtime(2);
    let victim = rt
        .spawn(async {
            let me = observe::current_task_id().unwrap();
            // Fill this worker's queue, then block it: the sibling must steal.
            let children: Vec<_> = (0..16).map(|_| scraipe::rt::spawn(async {})).collect();
            std::thread::sleep(Duration::from_millis(100));
            (me, children)
        })
        .join()
        .unwrap();
    for c in victim.1 {
        rt.block_on(c).unwrap();
    }
    let evs = events(&observe::trace_json(None));
    check_structure(&evs);
    let names: std::collections::HashMap<u64, String> = evs
        .iter()
        .filter(|e| e["ph"] == "M")
        .map(|e| {
            (
                e["tid"].as_u64().unwrap(),
                e["args"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let steal = evs
        .iter()
        .filter(|e| e["name"] == "steal")
        .find(|e| e["args"]["from"] != e["args"]["to"] && e["args"]["tasks"].as_u64() >= Some(1))
        .expect("a steal in the trace");
    let to = steal["args"]["to"].as_u64().unwrap();
    let from = steal["args"]["from"].as_u64().unwrap();
    let track = &names[&steal["tid"].as_u64().unwrap()];
    assert!(
        track.starts_with(&format!("scraipe-worker-{to} ")),
        "{track}"
    );
    let stolen = format!("stolen from worker {from}");
    assert!(evs
        .iter()
        .any(|e| e["ph"] == "X" && e["args"]["source"] == stolen.as_str()));
}

// ----- the live view -----

fn http_get(addr: SocketAddr, target: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

#[test]
fn the_snapshot_endpoint_answers_fast_while_the_only_worker_is_blocked() {
    let rt = runtime(1);
    let server =
        observe::ObserveServer::start(rt.handle(), SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    #[rustfmt::skip]
    let (stuck, line) = (rt.spawn(async move { started_tx.send(()).unwrap(); std::thread::sleep(Duration::from_millis(600)); }), line!());
    started_rx.recv().unwrap();
    let t0 = Instant::now();
    let (head, body) = http_get(server.local_addr(), "/snapshot.json");
    let took = t0.elapsed();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(took < Duration::from_millis(100), "took {took:?}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["workers"][0]["polling"]["task"].as_u64(),
        Some(stuck.id())
    );
    assert_eq!(
        v["workers"][0]["polling"]["spawned_at"].as_str().unwrap(),
        format!("{}:{line}", file!())
    );
    assert!(v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["id"].as_u64() == Some(stuck.id()) && t["status"] == "running"));

    let (head, page) = http_get(server.local_addr(), "/");
    assert!(head.contains("text/html"));
    assert!(page.contains("/snapshot.json") && page.contains("/trace.json"));
    assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("src="));
    // The task table answers "what woke it?" and says what each task waits on in words.
    assert!(page.contains("<th>woken by</th>") && page.contains("timer in "));
    let (head, trace) = http_get(server.local_addr(), "/trace.json?last=2s");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    events(&trace);
    let (head, _) = http_get(server.local_addr(), "/trace.json?last=soon");
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let (head, _) = http_get(server.local_addr(), "/nope");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    stuck.join().unwrap();
}

/// Idle, dripping and oversized clients do not hold up the live view: each connection is
/// served on its own, a request head has a size cap and the whole head a deadline.
#[test]
fn the_live_view_answers_past_idle_slow_and_oversized_clients() {
    use std::io::{Read, Write};
    let rt = runtime(1);
    let server =
        observe::ObserveServer::start(rt.handle(), SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let addr = server.local_addr();
    // A browser's preconnect: connected, silent.
    let _idle = std::net::TcpStream::connect(addr).unwrap();
    // A client sending its request a byte at a time, slowly.
    let mut drip = std::net::TcpStream::connect(addr).unwrap();
    drip.write_all(b"G").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let t0 = Instant::now();
    let (head, body) = http_get(addr, "/snapshot.json");
    let took = t0.elapsed();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(took < Duration::from_millis(500), "took {took:?}");
    serde_json::from_str::<serde_json::Value>(&body).unwrap();
    // A request head past 16 KiB is refused, not buffered.
    let mut big = std::net::TcpStream::connect(addr).unwrap();
    big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut request = b"GET /snapshot.json HTTP/1.1\r\nx-filler: ".to_vec();
    request.resize(64 * 1024, b'a');
    let _ = big.write_all(&request); // the server may close before reading it all
    let mut answer = String::new();
    let _ = big.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    // The dripping client is cut off at its deadline (5 s for the whole head), not served.
    drip.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let t0 = Instant::now();
    let mut rest = Vec::new();
    let _ = drip.read_to_end(&mut rest);
    assert!(rest.is_empty() && t0.elapsed() < Duration::from_secs(8));
}

/// Reads the observatory address a child printed (`observatory: http://ADDR/ …`) and runs
/// `scraipe observe ADDR --once` against it.
fn observe_once(bin: &str, child: &mut std::process::Child) -> std::process::Output {
    use std::io::BufRead;
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let addr = stdout
        .lines()
        .map(Result::unwrap)
        .find_map(|line| {
            let rest = line.strip_prefix("observatory: http://")?;
            rest.split('/').next().map(str::to_string)
        })
        .expect("the child printed the observatory address");
    std::process::Command::new(bin)
        .args(["observe", &addr, "--once"])
        .output()
        .unwrap()
}

#[test]
fn demo_observe_serves_the_live_view_and_scraipe_observe_prints_the_table() {
    use std::process::{Command, Stdio};
    let bin = env!("CARGO_BIN_EXE_scraipe");
    let mut demo = Command::new(bin)
        .args(["demo", "--pages", "20", "-t", "1", "--rows", "0"])
        .args(["--observe", "127.0.0.1:0", "--observe-linger", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = observe_once(bin, &mut demo);
    let _ = demo.kill();
    let _ = demo.wait();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        table.contains("WORKER") && table.contains("workers,"),
        "{table}"
    );
    // A dead address is a clear error, not a hang.
    let out = Command::new(bin)
        .args(["observe", "127.0.0.1:1", "--once"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
}

/// `SCRAIPE_OBSERVE=timing=1,trace` switches both on for a CLI run, timing every poll (the
/// live view says so); an unknown part, or a sampling ratio that is no whole number ≥ 1, is a
/// usage error.
#[test]
fn scraipe_observe_env_switches_timing_and_trace_on_and_rejects_unknown_parts() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let bin = env!("CARGO_BIN_EXE_scraipe");
    let mut demo = Command::new(bin)
        .args(["demo", "--pages", "20", "-t", "1", "--rows", "0"])
        .args(["--observe", "127.0.0.1:0", "--observe-linger", "5"])
        .env("SCRAIPE_OBSERVE", "timing=1, trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(demo.stdout.take().unwrap());
    let addr: SocketAddr = stdout
        .lines()
        .map(Result::unwrap)
        .find_map(|line| {
            let rest = line.strip_prefix("observatory: http://")?;
            rest.split('/').next().map(str::to_string)
        })
        .expect("the demo printed the observatory address")
        .parse()
        .unwrap();
    let (_, body) = http_get(addr, "/snapshot.json");
    let _ = demo.kill();
    let _ = demo.wait();
    let snap: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(snap["tracing"], true, "{body}");
    assert_eq!(
        snap["workers"][0]["timing"]["sampling"], "1 in 1",
        "timing is off or samples: {body}"
    );

    for bad in ["timing,bogus", "timing=0", "timing=often"] {
        let out = Command::new(bin)
            .args(["demo", "--pages", "1", "--rows", "0"])
            .env("SCRAIPE_OBSERVE", bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("SCRAIPE_OBSERVE"),
            "{bad}"
        );
    }
}

// ----- timing -----

/// Timing samples adaptively by default: a yield loop's back-to-back polls (well under a µs
/// each) are sampled, slow polls (50 µs each) are all timed, and so are their self-wakes.
/// (Timing every poll, `OneIn(1)`, is tested in `observatory_timing.rs`: a process of its own,
/// the sampling is per process.)
#[test]
fn timing_samples_fast_polls_and_times_every_slow_one() {
    observe::set_timing(true);
    assert_eq!(
        observe::timing_sampling(),
        observe::TimingSampling::Adaptive
    );
    let rt = runtime(1);
    let started = Instant::now();
    rt.spawn(async {
        for _ in 0..20_000 {
            scraipe::rt::yield_now().await;
        }
    })
    .join()
    .unwrap();
    let took = started.elapsed();
    let t = rt.handle().observe_timing()[0].clone();
    assert_eq!(t.sampling, observe::TimingSampling::Adaptive);
    // 20,001 polls: about one timed per spacing of the loop's time (twice that at most, with
    // the gaps' randomness), and self-wakes stamped with their polls.
    let at_most = 2 * took.as_nanos() / observe::ADAPTIVE_SPACING.as_nanos() + 10;
    for n in [t.poll.count(), t.wake_to_poll.count()] {
        assert!(
            n >= 1 && u128::from(n) <= at_most,
            "{n}, at most {at_most}: {t:?}"
        );
    }

    // (A runtime of its own: a worker's sampler would first finish the fast loop's last gap.)
    let rt = runtime(1);
    rt.spawn(async {
        for _ in 0..50 {
            std::thread::sleep(Duration::from_micros(50));
            scraipe::rt::yield_now().await;
        }
    })
    .join()
    .unwrap();
    let slow = &rt.handle().observe_timing()[0];
    assert!(slow.poll.count() >= 51, "{slow:?}");
    assert!(slow.wake_to_poll.count() >= 50, "{slow:?}");
}

/// Busy time and timer lateness are not sampled.
#[test]
fn timing_records_busy_time_and_timer_lateness_of_every_poll_and_timer() {
    observe::set_timing(true);
    let rt = runtime(1);
    let (tx, rx) = oneshot::channel::<()>();
    let h = rt.spawn(async move {
        scraipe::rt::sleep(Duration::from_millis(20)).await;
        rx.await.unwrap();
        std::thread::sleep(Duration::from_millis(5));
    });
    wait_for(&rt, h.id(), |t| {
        t.polls == 2 && t.status == TaskStatus::Idle
    });
    tx.send(()).unwrap();
    h.join().unwrap();
    // The stretch with the 5 ms poll closes when the worker next goes to sleep.
    let deadline = Instant::now() + Duration::from_secs(5);
    while rt.handle().observe_timing()[0].busy < Duration::from_millis(5) {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            rt.handle().observe_timing()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let t = &rt.handle().observe_timing()[0];
    assert!(t.busy < Duration::from_secs(5), "{t:?}");
    assert!(t.timer_lateness.count() >= 1, "{t:?}");
    let json = observe_json(&rt);
    assert!(json["workers"][0]["timing"]["busy_ms"].as_f64().unwrap() >= 5.0);
    assert_eq!(json["workers"][0]["timing"]["sampling"], "adaptive");
}

/// A worker stuck in one long poll is busy: the snapshot counts the run stretch still running,
/// not only the closed ones.
#[test]
fn busy_time_includes_the_stretch_still_running() {
    observe::set_timing(true);
    let rt = runtime(1);
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let h = rt.spawn(async move {
        started_tx.send(Instant::now()).unwrap();
        std::thread::sleep(Duration::from_millis(400));
    });
    let started = started_rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let busy = rt.handle().observe_timing()[0].busy;
    let waited = started.elapsed();
    assert!(
        busy >= Duration::from_millis(150) && busy <= waited + Duration::from_millis(50),
        "busy {busy:?} after {waited:?} inside a 400 ms poll"
    );
    h.join().unwrap();
    assert!(rt.handle().observe_timing()[0].busy >= Duration::from_millis(400));
}

fn observe_json(rt: &Runtime) -> serde_json::Value {
    let server =
        observe::ObserveServer::start(rt.handle(), SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let (_, body) = http_get(server.local_addr(), "/snapshot.json");
    serde_json::from_str(&body).unwrap()
}

/// `monitor run --observe ADDR` serves the live view of the monitor's own runtime while it runs
/// continuously; SIGTERM still ends it with exit 0.
#[test]
fn monitor_run_observe_serves_the_monitors_runtime() {
    use std::process::{Command, Stdio};
    let bin = env!("CARGO_BIN_EXE_scraipe");
    let dir = std::env::temp_dir().join(format!("scraipe-obs-monitor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("urls.txt");
    // A dead port: each check fails fast, the monitor keeps running its windows.
    std::fs::write(&input, "http://127.0.0.1:1/product\n").unwrap();
    let mut monitor = Command::new(bin)
        .args([
            "monitor",
            "run",
            "--every",
            "1s",
            "--quiet",
            "--retries",
            "0",
        ])
        .args(["--observe", "127.0.0.1:0", "--input"])
        .arg(&input)
        .arg("--db")
        .arg(dir.join("state.sqlite"))
        .arg("--changes")
        .arg(dir.join("events.jsonl"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = observe_once(bin, &mut monitor);
    // SAFETY: kill() with a child's pid and a signal number; no memory is involved.
    assert_eq!(
        unsafe { libc::kill(monitor.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let status = monitor.wait().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        table.contains("WORKER") && table.contains("workers,"),
        "{table}"
    );
    assert_eq!(status.code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
