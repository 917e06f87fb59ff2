//! Scheduler micro-benchmarks with tokio's own definitions, run on both sides.
//!
//! * 2 workers: the bodies of tokio's `benches/rt_multi_threaded.rs`, verbatim but for the
//!   runtime's paths and `NUM_WORKERS = 2` (this machine has 2 CPUs; tokio's file says 4): spawns
//!   from `block_on`, completion counted with an atomic and a std `sync_channel`, `yield_many`
//!   spawned from the plain thread, `spawn_many_remote_busy1/2` with tokio's `stall()`.
//! * 1 worker: the bodies of tokio's `benches/rt_current_thread.rs` (`spawn_many_local` with
//!   1,000 spawns, `spawn_many_remote_idle`, `spawn_many_remote_busy`), against tokio's
//!   current_thread runtime both as tokio's bench builds it (no drivers) and with `enable_all()`
//!   (then every remote spawn writes the I/O driver's eventfd). tokio's `yield_many`,
//!   `ping_pong` and `chained_spawn` block the `block_on` thread on a std channel, which only works
//!   on a pool; for 1 worker they run as labelled await-based variants.
//! * Our earlier `spawn_many_local` (spawn 10,000 from inside a task, await the JoinHandles) stays
//!   as a separate, labelled variant.
//!
//! Every row reports wall time and CPU time (getrusage of the process, all threads) per op.

use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::report::{Better, Row};
use crate::stats::{process_cpu, Runs};
use crate::Settings;

/// tokio's `NUM_WORKERS` is 4; this machine has 2 CPUs and the pool rows use 2 workers.
pub const NUM_WORKERS: usize = 2;
pub const NUM_SPAWN: usize = 10_000;
/// `rt_current_thread.rs` spawns 1,000.
pub const NUM_SPAWN_CT: usize = 1_000;
/// `spawn_many_remote_busy2` spawns 1,000.
pub const NUM_SPAWN_BUSY2: usize = 1_000;
pub const YIELD_TASKS: usize = 200;
pub const NUM_YIELD: usize = 1_000;
pub const NUM_PINGS: usize = 1_000;
pub const CHAIN: usize = 1_000;
const STALL_DUR: Duration = Duration::from_micros(10);

/// tokio's `stall()`: 10 µs of `yield_now` system calls.
fn stall() {
    let now = Instant::now();
    while now.elapsed() < STALL_DUR {
        std::thread::yield_now();
    }
}

/// The bench bodies, written once against a runtime type and its `spawn`, `yield_now` and
/// oneshot.
macro_rules! bodies {
    ($name:ident, $Rt:ty, $spawn:path, $yield_now:path, $oneshot:path) => {
        pub mod $name {
            use super::*;

            // ---- tokio's rt_multi_threaded.rs bodies (need a pool) ----

            pub fn spawn_many_local(
                rt: &$Rt,
                tx: &mpsc::SyncSender<()>,
                rx: &mpsc::Receiver<()>,
                rem: &Arc<AtomicUsize>,
            ) {
                rem.store(NUM_SPAWN, Relaxed);
                rt.block_on(async {
                    for _ in 0..NUM_SPAWN {
                        let tx = tx.clone();
                        let rem = rem.clone();
                        $spawn(async move {
                            if 1 == rem.fetch_sub(1, Relaxed) {
                                tx.send(()).unwrap();
                            }
                        });
                    }
                    rx.recv().unwrap();
                });
            }

            pub fn spawn_many_remote(rt: &$Rt, n: usize) {
                let handles: Vec<_> = (0..n).map(|_| rt.spawn(async {})).collect();
                rt.block_on(async {
                    for handle in handles {
                        handle.await.unwrap();
                    }
                });
            }

            /// busy1: 2 × NUM_WORKERS tasks that yield and stall until `flag` clears.
            pub fn start_busy1(rt: &$Rt, flag: &Arc<AtomicBool>) {
                for _ in 0..(2 * NUM_WORKERS) {
                    let flag = flag.clone();
                    rt.spawn(async move {
                        while flag.load(Relaxed) {
                            $yield_now().await;
                            stall();
                        }
                    });
                }
            }

            /// busy2: NUM_WORKERS chains of tasks that stall and spawn the next.
            pub fn start_busy2(rt: &$Rt, flag: &Arc<AtomicBool>) {
                fn iter(flag: Arc<AtomicBool>) {
                    $spawn(async {
                        if flag.load(Relaxed) {
                            stall();
                            iter(flag);
                        }
                    });
                }
                for _ in 0..NUM_WORKERS {
                    let flag = flag.clone();
                    rt.spawn(async {
                        iter(flag);
                    });
                }
            }

            /// rt_current_thread.rs's busy task: a chain that spawns the next forever (here:
            /// until `flag` clears, so the runtime can be dropped cleanly).
            pub fn start_busy_ct(rt: &$Rt, flag: &Arc<AtomicBool>) {
                fn iter(flag: Arc<AtomicBool>) {
                    $spawn(async {
                        if flag.load(Relaxed) {
                            iter(flag)
                        }
                    });
                }
                let flag = flag.clone();
                rt.spawn(async { iter(flag) });
            }

            pub fn yield_many(rt: &$Rt, tx: &mpsc::SyncSender<()>, rx: &mpsc::Receiver<()>) {
                for _ in 0..YIELD_TASKS {
                    let tx = tx.clone();
                    rt.spawn(async move {
                        for _ in 0..NUM_YIELD {
                            $yield_now().await;
                        }
                        tx.send(()).unwrap();
                    });
                }
                for _ in 0..YIELD_TASKS {
                    rx.recv().unwrap();
                }
            }

            pub fn ping_pong(
                rt: &$Rt,
                done_tx: &mpsc::SyncSender<()>,
                done_rx: &mpsc::Receiver<()>,
                rem: &Arc<AtomicUsize>,
            ) {
                let done_tx = done_tx.clone();
                let rem = rem.clone();
                rem.store(NUM_PINGS, Relaxed);
                rt.block_on(async {
                    $spawn(async move {
                        for _ in 0..NUM_PINGS {
                            let rem = rem.clone();
                            let done_tx = done_tx.clone();
                            $spawn(async move {
                                let (tx1, rx1) = $oneshot();
                                let (tx2, rx2) = $oneshot();
                                $spawn(async move {
                                    rx1.await.unwrap();
                                    tx2.send(()).unwrap();
                                });
                                tx1.send(()).unwrap();
                                rx2.await.unwrap();
                                if 1 == rem.fetch_sub(1, Relaxed) {
                                    done_tx.send(()).unwrap();
                                }
                            });
                        }
                    });
                    done_rx.recv().unwrap();
                });
            }

            pub fn chained_spawn(
                rt: &$Rt,
                done_tx: &mpsc::SyncSender<()>,
                done_rx: &mpsc::Receiver<()>,
            ) {
                fn iter(done_tx: mpsc::SyncSender<()>, n: usize) {
                    if n == 0 {
                        done_tx.send(()).unwrap();
                    } else {
                        $spawn(async move {
                            iter(done_tx, n - 1);
                        });
                    }
                }
                let done_tx = done_tx.clone();
                rt.block_on(async {
                    $spawn(async move {
                        iter(done_tx, CHAIN);
                    });
                    done_rx.recv().unwrap();
                });
            }

            // ---- tokio's rt_current_thread.rs body ----

            pub async fn spawn_many_local_ct() {
                let mut handles = Vec::with_capacity(NUM_SPAWN_CT);
                for _ in 0..NUM_SPAWN_CT {
                    handles.push($spawn(async move {}));
                }
                for handle in handles.drain(..) {
                    handle.await.unwrap();
                }
            }

            // ---- our await-based variants (work on a single-threaded runtime too) ----

            /// Spawns 10,000 from inside a spawned task and awaits their JoinHandles.
            pub async fn spawn_many_local_in_task() {
                $spawn(async {
                    let handles: Vec<_> = (0..NUM_SPAWN).map(|_| $spawn(async {})).collect();
                    for h in handles {
                        h.await.unwrap();
                    }
                })
                .await
                .unwrap();
            }

            pub async fn yield_many_await() {
                let handles: Vec<_> = (0..YIELD_TASKS)
                    .map(|_| {
                        $spawn(async {
                            for _ in 0..NUM_YIELD {
                                $yield_now().await;
                            }
                        })
                    })
                    .collect();
                for h in handles {
                    h.await.unwrap();
                }
            }

            pub async fn ping_pong_await() {
                let (done_tx, done_rx) = $oneshot();
                let rem = Arc::new(AtomicUsize::new(NUM_PINGS));
                let done_tx = Arc::new(std::sync::Mutex::new(Some(done_tx)));
                $spawn(async move {
                    for _ in 0..NUM_PINGS {
                        let rem = rem.clone();
                        let done_tx = done_tx.clone();
                        $spawn(async move {
                            let (tx1, rx1) = $oneshot();
                            let (tx2, rx2) = $oneshot();
                            $spawn(async move {
                                rx1.await.unwrap();
                                tx2.send(()).unwrap();
                            });
                            tx1.send(()).unwrap();
                            rx2.await.unwrap();
                            if 1 == rem.fetch_sub(1, Relaxed) {
                                let tx = done_tx.lock().unwrap().take().unwrap();
                                let _ = tx.send(());
                            }
                        });
                    }
                });
                done_rx.await.unwrap();
            }

            pub async fn chained_spawn_await() {
                type Done = Arc<std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>>;
                fn iter(done: Done, n: usize) {
                    if n == 0 {
                        let signal = done.lock().unwrap().take().unwrap();
                        signal();
                    } else {
                        $spawn(async move { iter(done, n - 1) });
                    }
                }
                let (tx, rx) = $oneshot();
                let done: Done = Arc::new(std::sync::Mutex::new(Some(Box::new(move || {
                    let _ = tx.send(());
                }))));
                $spawn(async move { iter(done, CHAIN) });
                rx.await.unwrap();
            }
        }
    };
}

bodies!(
    ours,
    scraipe::rt::Runtime,
    scraipe::rt::spawn,
    scraipe::rt::yield_now,
    scraipe::rt::sync::oneshot::channel
);
bodies!(
    theirs,
    tokio::runtime::Runtime,
    tokio::spawn,
    tokio::task::yield_now,
    tokio::sync::oneshot::channel
);

fn ours_rt(workers: usize) -> scraipe::rt::Runtime {
    let b = if workers == 1 {
        scraipe::rt::Builder::new_current_thread()
    } else {
        scraipe::rt::Builder::new().worker_threads(workers)
    };
    b.build().unwrap()
}

/// tokio as its benches build it: current_thread without drivers for 1 worker, or with
/// `enable_all()`; multi_thread with `enable_all()` for pools.
fn tokio_rt(workers: usize, enable_all: bool) -> tokio::runtime::Runtime {
    let mut b = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    if enable_all {
        b.enable_all();
    }
    b.build().unwrap()
}

const CT_PLAIN: &str = "tokio current_thread, no drivers (as tokio's bench)";
const CT_ALL: &str = "tokio current_thread + enable_all (remote spawn writes an eventfd)";
const MT2: &str = "tokio multi_thread 2w + enable_all (as tokio's bench)";

/// Wall-time budget of one run of one side: a run stops after `iters` calls or once this much
/// time has passed (at least one call), so a pathological case cannot stall the whole run.
const RUN_BUDGET: Duration = Duration::from_millis(300);

/// Times up to `iters` calls of `f` (see `RUN_BUDGET`): (wall ns per op, CPU ns per op).
fn time_ns(iters: usize, ops: usize, mut f: impl FnMut()) -> (f64, f64) {
    let (t, c) = (Instant::now(), process_cpu());
    let mut done = 0;
    while done < iters && (done == 0 || t.elapsed() < RUN_BUDGET) {
        f();
        done += 1;
    }
    let n = (done * ops) as f64;
    (
        t.elapsed().as_nanos() as f64 / n,
        (process_cpu() - c) * 1e9 / n,
    )
}

/// A labelled rival body.
type Rival<'a> = (&'static str, Box<dyn Fn() + 'a>);

/// Starts a busy load on our runtime and on tokio's.
type BusyStart = (
    fn(&scraipe::rt::Runtime, &Arc<AtomicBool>),
    fn(&tokio::runtime::Runtime, &Arc<AtomicBool>),
);

/// One bench: our body and each rival's, run alternately `runs` times after a warm-up.
struct Bench<'a> {
    name: String,
    ops: usize,
    ours: Box<dyn Fn() + 'a>,
    rivals: Vec<Rival<'a>>,
}

fn measure(settings: &Settings, iters: usize, b: Bench<'_>, rows: &mut Vec<Row>) {
    // Warm up (allocator, thread wake-up paths): 3 calls, or one when a call is slow.
    for _ in 0..3 {
        let t = Instant::now();
        (b.ours)();
        for (_, r) in &b.rivals {
            r();
        }
        if t.elapsed() > RUN_BUDGET / 3 {
            break;
        }
    }
    let mut ours = (Runs::default(), Runs::default());
    let mut theirs: Vec<(Runs, Runs)> = vec![Default::default(); b.rivals.len()];
    for _ in 0..settings.runs {
        let (w, c) = time_ns(iters, b.ops, &b.ours);
        ours.0.push(w);
        ours.1.push(c);
        for ((_, r), t) in b.rivals.iter().zip(theirs.iter_mut()) {
            let (w, c) = time_ns(iters, b.ops, r);
            t.0.push(w);
            t.1.push(c);
        }
    }
    for ((rival, _), (wall, cpu)) in b.rivals.iter().zip(theirs) {
        let row = Row::new(
            "runtime",
            b.name.clone(),
            "ns/op",
            ours.0.clone(),
            *rival,
            Some(wall),
            Better::Lower,
        )
        .cpu(ours.1.clone(), Some(cpu));
        row.log();
        rows.push(row);
    }
}

/// A bench against runtimes kept busy by background tasks that `start` spawns; the tasks stop
/// (their flag clears) before the runtimes are dropped.
fn busy(
    settings: &Settings,
    iters: usize,
    rows: &mut Vec<Row>,
    name: &str,
    workers: usize,
    n: usize,
    start: BusyStart,
) {
    let o = ours_rt(workers);
    let rivals: Vec<(&'static str, tokio::runtime::Runtime)> = if workers == 1 {
        vec![(CT_PLAIN, tokio_rt(1, false)), (CT_ALL, tokio_rt(1, true))]
    } else {
        vec![(MT2, tokio_rt(workers, true))]
    };
    let flag = Arc::new(AtomicBool::new(true));
    start.0(&o, &flag);
    for (_, t) in &rivals {
        start.1(t, &flag);
    }
    let b = Bench {
        name: format!("{name} ({workers}w; CPU includes the busy tasks)"),
        ops: n,
        ours: Box::new(|| ours::spawn_many_remote(&o, n)),
        rivals: rivals
            .iter()
            .map(|(l, t)| {
                (
                    *l,
                    Box::new(move || theirs::spawn_many_remote(t, n)) as Box<dyn Fn()>,
                )
            })
            .collect(),
    };
    measure(settings, iters, b, rows);
    flag.store(false, Relaxed);
    // Let the busy chains see the flag (current_thread runtimes only run inside block_on).
    o.block_on(async {
        for _ in 0..100 {
            scraipe::rt::yield_now().await;
        }
    });
    for (_, t) in &rivals {
        t.block_on(async {
            for _ in 0..100 {
                tokio::task::yield_now().await;
            }
        });
    }
}

pub fn run(settings: &Settings, rows: &mut Vec<Row>) {
    let iters = if settings.quick { 20 } else { 60 };
    run_current_thread(settings, iters, rows);
    run_pool(settings, iters, rows);
}

fn run_current_thread(settings: &Settings, iters: usize, rows: &mut Vec<Row>) {
    let o = ours_rt(1);
    let plain = tokio_rt(1, false);
    let all = tokio_rt(1, true);
    let both = |f: fn(&tokio::runtime::Runtime)| both_ct(&plain, &all, f);
    let benches = vec![
        Bench {
            name: "spawn_many_local (1w; tokio's rt_current_thread body: 1,000 spawns from block_on, handles awaited)".into(),
            ops: NUM_SPAWN_CT,
            ours: Box::new(|| o.block_on(ours::spawn_many_local_ct())),
            rivals: both(|t| t.block_on(theirs::spawn_many_local_ct())),
        },
        Bench {
            name: "spawn_many_remote_idle (1w; tokio's body, 1,000 spawns)".into(),
            ops: NUM_SPAWN_CT,
            ours: Box::new(|| ours::spawn_many_remote(&o, NUM_SPAWN_CT)),
            rivals: both(|t| theirs::spawn_many_remote(t, NUM_SPAWN_CT)),
        },
        Bench {
            name: "variant: spawn_many_local_in_task (1w; ours: 10,000 spawned inside a task, handles awaited)".into(),
            ops: NUM_SPAWN,
            ours: Box::new(|| o.block_on(ours::spawn_many_local_in_task())),
            rivals: both(|t| t.block_on(theirs::spawn_many_local_in_task())),
        },
        Bench {
            name: "variant: yield_many (1w; await-based: tokio's body needs a pool)".into(),
            ops: YIELD_TASKS * NUM_YIELD,
            ours: Box::new(|| o.block_on(ours::yield_many_await())),
            rivals: both(|t| t.block_on(theirs::yield_many_await())),
        },
        Bench {
            name: "variant: ping_pong (1w; await-based: tokio's body needs a pool)".into(),
            ops: NUM_PINGS,
            ours: Box::new(|| o.block_on(ours::ping_pong_await())),
            rivals: both(|t| t.block_on(theirs::ping_pong_await())),
        },
        Bench {
            name: "variant: chained_spawn (1w; await-based: tokio's body needs a pool)".into(),
            ops: CHAIN,
            ours: Box::new(|| o.block_on(ours::chained_spawn_await())),
            rivals: both(|t| t.block_on(theirs::chained_spawn_await())),
        },
    ];
    for b in benches {
        measure(settings, iters, b, rows);
    }
    busy(
        settings,
        iters,
        rows,
        "spawn_many_remote_busy (tokio's rt_current_thread body, 1,000 spawns)",
        1,
        NUM_SPAWN_CT,
        (ours::start_busy_ct, theirs::start_busy_ct),
    );
}

/// The same body on both current_thread flavours of tokio.
fn both_ct<'a>(
    plain: &'a tokio::runtime::Runtime,
    all: &'a tokio::runtime::Runtime,
    f: fn(&tokio::runtime::Runtime),
) -> Vec<Rival<'a>> {
    vec![
        (CT_PLAIN, Box::new(move || f(plain))),
        (CT_ALL, Box::new(move || f(all))),
    ]
}

fn one<'a>(f: Box<dyn Fn() + 'a>) -> Vec<Rival<'a>> {
    vec![(MT2, f)]
}

fn run_pool(settings: &Settings, iters: usize, rows: &mut Vec<Row>) {
    let o = ours_rt(NUM_WORKERS);
    let t = tokio_rt(NUM_WORKERS, true);
    let (otx, orx) = mpsc::sync_channel(1000);
    let (ttx, trx) = mpsc::sync_channel(1000);
    let (orem, trem) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let benches: Vec<Bench> = vec![
        Bench {
            name: "spawn_many_local (2w; tokio's body: 10,000 spawns from block_on, atomic + std channel)".into(),
            ops: NUM_SPAWN,
            ours: Box::new(|| ours::spawn_many_local(&o, &otx, &orx, &orem)),
            rivals: one(Box::new(|| theirs::spawn_many_local(&t, &ttx, &trx, &trem))),
        },
        Bench {
            name: "spawn_many_remote_idle (2w; tokio's body)".into(),
            ops: NUM_SPAWN,
            ours: Box::new(|| ours::spawn_many_remote(&o, NUM_SPAWN)),
            rivals: one(Box::new(|| theirs::spawn_many_remote(&t, NUM_SPAWN))),
        },
        Bench {
            name: "yield_many (2w; tokio's body)".into(),
            ops: YIELD_TASKS * NUM_YIELD,
            ours: Box::new(|| ours::yield_many(&o, &otx, &orx)),
            rivals: one(Box::new(|| theirs::yield_many(&t, &ttx, &trx))),
        },
        Bench {
            name: "ping_pong (2w; tokio's body)".into(),
            ops: NUM_PINGS,
            ours: Box::new(|| ours::ping_pong(&o, &otx, &orx, &orem)),
            rivals: one(Box::new(|| theirs::ping_pong(&t, &ttx, &trx, &trem))),
        },
        Bench {
            name: "chained_spawn (2w; tokio's body)".into(),
            ops: CHAIN,
            ours: Box::new(|| ours::chained_spawn(&o, &otx, &orx)),
            rivals: one(Box::new(|| theirs::chained_spawn(&t, &ttx, &trx))),
        },
        Bench {
            name: "variant: spawn_many_local_in_task (2w; ours: 10,000 spawned inside a task, handles awaited)".into(),
            ops: NUM_SPAWN,
            ours: Box::new(|| o.block_on(ours::spawn_many_local_in_task())),
            rivals: one(Box::new(|| t.block_on(theirs::spawn_many_local_in_task()))),
        },
    ];
    for b in benches {
        measure(settings, iters, b, rows);
    }
    busy(
        settings,
        iters,
        rows,
        "spawn_many_remote_busy1 (tokio's body: 2×NUM_WORKERS tasks yield + stall 10 µs)",
        NUM_WORKERS,
        NUM_SPAWN,
        (ours::start_busy1, theirs::start_busy1),
    );
    busy(
        settings,
        iters,
        rows,
        "spawn_many_remote_busy2 (tokio's body: NUM_WORKERS chains stall 10 µs + spawn; 1,000 spawns)",
        NUM_WORKERS,
        NUM_SPAWN_BUSY2,
        (ours::start_busy2, theirs::start_busy2),
    );
}

/// Runs one bench body in a loop for `secs` seconds (for profilers): `versus --child loop
/// <bench> <workers> <ours|tokio> <secs>`. With the `observatory` feature, `VERSUS_OBSERVE`
/// (comma-separated `timing`, `trace`) switches those parts of scraipe's observatory on.
pub fn child_loop(bench: &str, workers: usize, side: &str, secs: f64) {
    observe_from_env();
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let o = ours_rt(workers);
    let t = tokio_rt(workers, true);
    let (tx, rx) = mpsc::sync_channel(1000);
    let rem = Arc::new(AtomicUsize::new(0));
    let mut n = 0u64;
    let pool = workers > 1;
    while Instant::now() < until {
        match (side == "ours", bench, pool) {
            (true, "spawn_many_local", true) => ours::spawn_many_local(&o, &tx, &rx, &rem),
            (true, "spawn_many_local", false) => o.block_on(ours::spawn_many_local_ct()),
            (true, "spawn_many_remote_idle", _) => ours::spawn_many_remote(&o, NUM_SPAWN),
            (true, "yield_many", true) => ours::yield_many(&o, &tx, &rx),
            (true, "yield_many", false) => o.block_on(ours::yield_many_await()),
            (true, "ping_pong", true) => ours::ping_pong(&o, &tx, &rx, &rem),
            (true, "ping_pong", false) => o.block_on(ours::ping_pong_await()),
            (true, "chained_spawn", true) => ours::chained_spawn(&o, &tx, &rx),
            (true, "chained_spawn", false) => o.block_on(ours::chained_spawn_await()),
            (false, "spawn_many_local", true) => theirs::spawn_many_local(&t, &tx, &rx, &rem),
            (false, "spawn_many_local", false) => t.block_on(theirs::spawn_many_local_ct()),
            (false, "spawn_many_remote_idle", _) => theirs::spawn_many_remote(&t, NUM_SPAWN),
            (false, "yield_many", true) => theirs::yield_many(&t, &tx, &rx),
            (false, "yield_many", false) => t.block_on(theirs::yield_many_await()),
            (false, "ping_pong", true) => theirs::ping_pong(&t, &tx, &rx, &rem),
            (false, "ping_pong", false) => t.block_on(theirs::ping_pong_await()),
            (false, "chained_spawn", true) => theirs::chained_spawn(&t, &tx, &rx),
            (false, "chained_spawn", false) => t.block_on(theirs::chained_spawn_await()),
            _ => panic!("unknown bench {bench}"),
        }
        n += 1;
    }
    if side == "ours" && std::env::var_os("VERSUS_DEBUG").is_some() {
        for w in o.handle().metrics().workers {
            eprintln!(
                "  per op: polls {} steals {} parks {} wakeups {}",
                w.polls / n.max(1),
                w.steals / n.max(1),
                w.parks / n.max(1),
                w.wakeups / n.max(1)
            );
        }
    }
    println!("{n}");
}

/// Applies `VERSUS_OBSERVE` (see [`child_loop`]).
pub fn observe_from_env() {
    let Ok(parts) = std::env::var("VERSUS_OBSERVE") else {
        return;
    };
    #[cfg(feature = "observatory")]
    for part in parts.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        use scraipe::rt::observe::{self, TraceLimits};
        use std::time::Duration;
        // `KEY=N`: N, or a panic naming the part.
        let number =
            |key: &str| -> Option<usize> {
                let n = part.strip_prefix(key)?.strip_prefix('=')?;
                Some(n.parse().unwrap_or_else(|_| {
                    panic!("VERSUS_OBSERVE: {key}=N takes a number, not {n:?}")
                }))
            };
        let trace_with = |limits: TraceLimits| {
            observe::set_trace_limits(limits);
            observe::set_tracing(true)
        };
        if part == "timing" {
            observe::set_timing(true)
        } else if let Some(n) = number("timing") {
            // Timing of one poll in N instead of the adaptive default.
            observe::set_timing_sampling(observe::TimingSampling::OneIn(
                u32::try_from(n).expect("VERSUS_OBSERVE: timing=N fits in 32 bits"),
            ));
            observe::set_timing(true)
        } else if part == "trace" {
            observe::set_tracing(true)
        } else if part == "trace-capped" {
            // The flight recorder's size cap only (no minimum age), to see what the default
            // 2 s window costs in cache traffic.
            trace_with(TraceLimits {
                min_age: Duration::ZERO,
                ..Default::default()
            })
        } else if let Some(n) = number("trace-max") {
            // Another hard limit of records per thread than the default.
            trace_with(TraceLimits {
                max_capacity: n,
                ..Default::default()
            })
        } else if let Some(n) = number("trace-ring") {
            // A ring of exactly N records per thread (size cap = hard limit, no minimum
            // age), to see how the ring's size alone moves its cost.
            trace_with(TraceLimits {
                capacity: n,
                min_age: Duration::ZERO,
                max_capacity: n,
            })
        } else if part != "counters" {
            // (`counters`: always on with the feature.)
            panic!(
                "VERSUS_OBSERVE: unknown part {part:?} (timing, timing=N, trace, trace-capped, trace-max=N, trace-ring=N, counters)"
            )
        }
    }
    #[cfg(not(feature = "observatory"))]
    if !parts.is_empty() {
        panic!("VERSUS_OBSERVE={parts} needs `--features observatory`");
    }
}

/// A future's output on this thread, parking between polls (what `futures::executor::block_on`
/// does): the rival's side of a plain thread waiting for a runtime without spinning.
pub fn park_block_on<F: Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every body completes once on both runtimes (pool and current-thread flavours), and the
    /// busy loads start and stop.
    #[test]
    fn bodies_complete_on_both_runtimes() {
        let (o, t) = (ours_rt(NUM_WORKERS), tokio_rt(NUM_WORKERS, true));
        let (tx, rx) = mpsc::sync_channel(1000);
        let rem = Arc::new(AtomicUsize::new(0));
        ours::spawn_many_local(&o, &tx, &rx, &rem);
        theirs::spawn_many_local(&t, &tx, &rx, &rem);
        ours::spawn_many_remote(&o, 100);
        theirs::spawn_many_remote(&t, 100);
        ours::yield_many(&o, &tx, &rx);
        theirs::yield_many(&t, &tx, &rx);
        ours::ping_pong(&o, &tx, &rx, &rem);
        theirs::ping_pong(&t, &tx, &rx, &rem);
        ours::chained_spawn(&o, &tx, &rx);
        theirs::chained_spawn(&t, &tx, &rx);
        o.block_on(ours::spawn_many_local_in_task());
        t.block_on(theirs::spawn_many_local_in_task());

        let (o1, plain, all) = (ours_rt(1), tokio_rt(1, false), tokio_rt(1, true));
        o1.block_on(ours::spawn_many_local_ct());
        plain.block_on(theirs::spawn_many_local_ct());
        all.block_on(theirs::spawn_many_local_ct());
        o1.block_on(ours::yield_many_await());
        plain.block_on(theirs::ping_pong_await());
        o1.block_on(ours::chained_spawn_await());
        o1.block_on(ours::ping_pong_await());
        plain.block_on(theirs::yield_many_await());
        plain.block_on(theirs::chained_spawn_await());

        let mut rows = Vec::new();
        let settings = Settings {
            quick: true,
            runs: 1,
        };
        busy(
            &settings,
            1,
            &mut rows,
            "busy",
            1,
            10,
            (ours::start_busy_ct, theirs::start_busy_ct),
        );
        busy(
            &settings,
            1,
            &mut rows,
            "busy2",
            NUM_WORKERS,
            10,
            (ours::start_busy2, theirs::start_busy2),
        );
        assert_eq!(rows.len(), 3, "2 current_thread rivals + 1 pool rival");
        assert!(rows.iter().all(|r| r.ours.value() > 0.0 && r.cpu.is_some()));
    }

    #[test]
    fn park_block_on_waits_for_another_thread() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(7).unwrap();
        });
        assert_eq!(park_block_on(rx).unwrap(), 7);
        t.join().unwrap();
    }
}
