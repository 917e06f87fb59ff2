//! Scheduler micro-benchmarks, defined as tokio's `benches/rt_multi_threaded.rs` defines them,
//! plus the sync round trip. Run: `cargo bench --bench runtime`.
//!
//! * spawn_many_local: from inside a task, spawn 10,000 tasks, then await their JoinHandles.
//! * spawn_many_remote: from a plain thread, `Handle::spawn` 10,000 tasks, then await them.
//! * yield_many: 200 tasks each `yield_now` 1,000 times.
//! * ping_pong: 1,000 ping-pongs, each two spawns and two oneshot hand-offs.
//! * chained_spawn: a chain of 1,000 tasks, each spawning the next.
//! * sync_round_trip: a plain thread hands a trivial future to the runtime and blocks for it.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use scraipe::rt::{self, sync::oneshot, Builder, Runtime};

const NUM_SPAWN: usize = 10_000;

fn runtime(workers: usize) -> Runtime {
    Builder::new().worker_threads(workers).build().unwrap()
}

/// With `--features observatory`, `SCRAIPE_OBS_TIMING=1` / `SCRAIPE_OBS_TRACE=1` turn timing and
/// the trace on, for the observatory's cost gate (interleaved A/B runs, see DESIGN.md).
fn observatory_switches() {
    #[cfg(feature = "observatory")]
    {
        let on = |k: &str| std::env::var(k).is_ok_and(|v| v == "1");
        scraipe::rt::observe::set_timing(on("SCRAIPE_OBS_TIMING"));
        scraipe::rt::observe::set_tracing(on("SCRAIPE_OBS_TRACE"));
    }
}

fn bench_runtime(c: &mut Criterion) {
    observatory_switches();
    for workers in [1usize, 2] {
        let rt = runtime(workers);
        let mut g = c.benchmark_group(format!("rt_{workers}w"));
        g.sample_size(30).measurement_time(Duration::from_secs(3));

        g.throughput(Throughput::Elements(NUM_SPAWN as u64));
        g.bench_function(BenchmarkId::new("spawn_many_local", NUM_SPAWN), |b| {
            b.iter(|| {
                rt.block_on(rt.spawn(async {
                    let handles: Vec<_> = (0..NUM_SPAWN).map(|_| rt::spawn(async {})).collect();
                    for h in handles {
                        h.await.unwrap();
                    }
                }))
                .unwrap()
            })
        });

        g.bench_function(BenchmarkId::new("spawn_many_remote", NUM_SPAWN), |b| {
            let mut handles = Vec::with_capacity(NUM_SPAWN);
            b.iter(|| {
                for _ in 0..NUM_SPAWN {
                    handles.push(rt.spawn(async {}));
                }
                rt.block_on(async {
                    for h in handles.drain(..) {
                        h.await.unwrap();
                    }
                })
            })
        });

        const TASKS: usize = 200;
        const YIELDS: usize = 1_000;
        g.throughput(Throughput::Elements((TASKS * YIELDS) as u64));
        g.bench_function(BenchmarkId::new("yield_many", TASKS * YIELDS), |b| {
            let (tx, rx) = mpsc::sync_channel(TASKS);
            b.iter(|| {
                for _ in 0..TASKS {
                    let tx = tx.clone();
                    rt.spawn(async move {
                        for _ in 0..YIELDS {
                            rt::yield_now().await;
                        }
                        tx.send(()).unwrap();
                    });
                }
                for _ in 0..TASKS {
                    rx.recv().unwrap();
                }
            })
        });

        const PINGS: usize = 1_000;
        g.throughput(Throughput::Elements(PINGS as u64));
        g.bench_function(BenchmarkId::new("ping_pong", PINGS), |b| {
            let (done_tx, done_rx) = mpsc::sync_channel(1000);
            let rem = Arc::new(AtomicUsize::new(0));
            b.iter(|| {
                let done_tx = done_tx.clone();
                let rem = rem.clone();
                rem.store(PINGS, Relaxed);
                rt.spawn(async move {
                    for _ in 0..PINGS {
                        let rem = rem.clone();
                        let done_tx = done_tx.clone();
                        rt::spawn(async move {
                            let (tx1, rx1) = oneshot::channel();
                            let (tx2, rx2) = oneshot::channel();
                            rt::spawn(async move {
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
            })
        });

        const CHAIN: usize = 1_000;
        g.throughput(Throughput::Elements(CHAIN as u64));
        g.bench_function(BenchmarkId::new("chained_spawn", CHAIN), |b| {
            fn iter(done: mpsc::SyncSender<()>, n: usize) {
                if n == 0 {
                    done.send(()).unwrap();
                } else {
                    rt::spawn(async move { iter(done, n - 1) });
                }
            }
            let (done_tx, done_rx) = mpsc::sync_channel(1000);
            b.iter(|| {
                let done_tx = done_tx.clone();
                rt.spawn(async move { iter(done_tx, CHAIN) });
                done_rx.recv().unwrap();
            })
        });
        g.finish();
    }
}

/// Median and p99 of the sync round trip, printed (criterion reports means).
fn sync_round_trip(c: &mut Criterion) {
    for workers in [1usize, 2] {
        let rt = runtime(workers);
        let handle = rt.handle().clone();
        let mut g = c.benchmark_group(format!("bridge_{workers}w"));
        g.sample_size(30).measurement_time(Duration::from_secs(3));
        g.bench_function("sync_round_trip", |b| {
            b.iter(|| handle.spawn(async { 1u8 }).join().unwrap())
        });
        g.finish();
        let mut samples: Vec<Duration> = (0..100_000)
            .map(|_| {
                let t = Instant::now();
                handle.spawn(async { 1u8 }).join().unwrap();
                t.elapsed()
            })
            .collect();
        samples.sort();
        eprintln!(
            "bridge {workers}w: median {:.2} µs, p99 {:.2} µs over {} round trips",
            samples[samples.len() / 2].as_secs_f64() * 1e6,
            samples[samples.len() * 99 / 100].as_secs_f64() * 1e6,
            samples.len()
        );
    }
}

criterion_group!(benches, bench_runtime, sync_round_trip);
criterion_main!(benches);
