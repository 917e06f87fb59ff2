//! Scheduler micro-benchmarks, after tokio's `benches/rt_multi_threaded.rs`: the same bodies run
//! on scraipe's runtime and on tokio, with the same worker count (tokio's current_thread and
//! scraipe's thread-less runtime for 1; multi-thread pools of 2), alternating run by run.
//!
//! Each body runs inside `block_on` and waits for its own completion through join handles or
//! oneshots, so it works the same on a current-thread runtime (tokio's original uses blocking
//! std channels, which only work on a multi-thread pool).

use std::time::Instant;

use crate::report::{Better, Row};
use crate::stats::Runs;
use crate::Settings;

pub const NUM_SPAWN: usize = 10_000;
pub const YIELD_TASKS: usize = 200;
pub const NUM_YIELD: usize = 1_000;
pub const NUM_PINGS: usize = 1_000;
pub const CHAIN: usize = 1_000;

/// The bench bodies, written once against a runtime's `spawn`, `yield_now` and oneshot.
macro_rules! bodies {
    ($name:ident, $spawn:path, $yield_now:path, $oneshot:path) => {
        pub mod $name {
            use super::*;
            use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
            use std::sync::Arc;

            pub async fn spawn_many_local() {
                $spawn(async {
                    let handles: Vec<_> = (0..NUM_SPAWN).map(|_| $spawn(async {})).collect();
                    for h in handles {
                        h.await.unwrap();
                    }
                })
                .await
                .unwrap();
            }

            pub async fn yield_many() {
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

            pub async fn ping_pong() {
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

            pub async fn chained_spawn() {
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
    scraipe::rt::spawn,
    scraipe::rt::yield_now,
    scraipe::rt::sync::oneshot::channel
);
bodies!(
    theirs,
    tokio::spawn,
    tokio::task::yield_now,
    tokio::sync::oneshot::channel
);

struct Ours(scraipe::rt::Runtime);
struct Tokio(tokio::runtime::Runtime);

fn ours_rt(workers: usize) -> Ours {
    let b = if workers == 1 {
        scraipe::rt::Builder::new_current_thread()
    } else {
        scraipe::rt::Builder::new().worker_threads(workers)
    };
    Ours(b.build().unwrap())
}

fn tokio_rt(workers: usize) -> Tokio {
    let rt = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    };
    Tokio(rt.unwrap())
}

/// Times `iters` calls of `f`, returning ns per op.
fn time_ns(iters: usize, ops: usize, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_nanos() as f64 / (iters * ops) as f64
}

pub fn run(settings: &Settings, rows: &mut Vec<Row>) {
    for workers in [1usize, 2] {
        let ours = ours_rt(workers);
        let theirs = tokio_rt(workers);
        let rival = if workers == 1 {
            "tokio current_thread"
        } else {
            "tokio multi_thread 2w"
        };
        let label = |b: &str| format!("{b} ({workers}w)");
        let iters = if settings.quick { 20 } else { 60 };

        type Bench<'a> = (
            &'a str,
            usize,
            Box<dyn Fn(&Ours) + 'a>,
            Box<dyn Fn(&Tokio) + 'a>,
        );
        let benches: Vec<Bench> = vec![
            (
                "spawn_many_local",
                NUM_SPAWN,
                Box::new(|o: &Ours| o.0.block_on(ours::spawn_many_local())),
                Box::new(|t: &Tokio| t.0.block_on(theirs::spawn_many_local())),
            ),
            (
                "spawn_many_remote",
                NUM_SPAWN,
                Box::new(|o: &Ours| {
                    let hs: Vec<_> = (0..NUM_SPAWN).map(|_| o.0.spawn(async {})).collect();
                    o.0.block_on(async {
                        for h in hs {
                            h.await.unwrap();
                        }
                    })
                }),
                Box::new(|t: &Tokio| {
                    let hs: Vec<_> = (0..NUM_SPAWN).map(|_| t.0.spawn(async {})).collect();
                    t.0.block_on(async {
                        for h in hs {
                            h.await.unwrap();
                        }
                    })
                }),
            ),
            (
                "yield_many",
                YIELD_TASKS * NUM_YIELD,
                Box::new(|o: &Ours| o.0.block_on(ours::yield_many())),
                Box::new(|t: &Tokio| t.0.block_on(theirs::yield_many())),
            ),
            (
                "ping_pong",
                NUM_PINGS,
                Box::new(|o: &Ours| o.0.block_on(ours::ping_pong())),
                Box::new(|t: &Tokio| t.0.block_on(theirs::ping_pong())),
            ),
            (
                "chained_spawn",
                CHAIN,
                Box::new(|o: &Ours| o.0.block_on(ours::chained_spawn())),
                Box::new(|t: &Tokio| t.0.block_on(theirs::chained_spawn())),
            ),
        ];
        for (name, ops, run_ours, run_theirs) in benches {
            // Warm up both (allocator, thread wake-up paths).
            for _ in 0..3 {
                run_ours(&ours);
                run_theirs(&theirs);
            }
            let (mut a, mut b) = (Runs::default(), Runs::default());
            for _ in 0..settings.runs {
                a.push(time_ns(iters, ops, || run_ours(&ours)));
                b.push(time_ns(iters, ops, || run_theirs(&theirs)));
            }
            eprintln!(
                "  runtime {}: ours {:.0} ns, {rival} {:.0} ns",
                label(name),
                a.median(),
                b.median()
            );
            rows.push(Row {
                group: "runtime",
                bench: label(name),
                unit: "ns/op",
                ours: a,
                rival: rival.to_string(),
                theirs: Some(b),
                better: Better::Lower,
                note: String::new(),
            });
        }
    }
}

/// Runs one bench body in a loop for `secs` seconds (for profilers): `versus --child loop
/// <bench> <workers> <ours|tokio> <secs>`.
pub fn child_loop(bench: &str, workers: usize, side: &str, secs: f64) {
    let until = Instant::now() + std::time::Duration::from_secs_f64(secs);
    let o = ours_rt(workers);
    let t = tokio_rt(workers);
    let mut n = 0u64;
    while Instant::now() < until {
        match (side, bench) {
            ("ours", "spawn_many_local") => o.0.block_on(ours::spawn_many_local()),
            ("ours", "yield_many") => o.0.block_on(ours::yield_many()),
            ("ours", "ping_pong") => o.0.block_on(ours::ping_pong()),
            ("ours", "chained_spawn") => o.0.block_on(ours::chained_spawn()),
            (_, "spawn_many_local") => t.0.block_on(theirs::spawn_many_local()),
            (_, "yield_many") => t.0.block_on(theirs::yield_many()),
            (_, "ping_pong") => t.0.block_on(theirs::ping_pong()),
            (_, "chained_spawn") => t.0.block_on(theirs::chained_spawn()),
            _ => panic!("unknown bench {bench}"),
        }
        n += 1;
    }
    println!("{n}");
}
