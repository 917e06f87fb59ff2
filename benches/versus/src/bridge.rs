//! The sync → async bridge: a plain thread hands a trivial future to a runtime and blocks for
//! its output; and a plain thread waking a task parked on a oneshot.
//!
//! Three ways of arriving, each with wall time (median, p99 over all samples) and CPU time per
//! operation (getrusage of the whole process, all threads — so a spinning thread's cost counts):
//! * back to back, where our default spin-wait meets tokio's park, plus the two fair pairings:
//!   ours with `spin_before_park(0)` and `timer_spin_window(0)` waiting with `Handle::block_on`
//!   (nobody spins), and tokio's caller spinning on `try_recv` for up to 50 µs like ours does;
//! * spaced (issue 16): each round trip after the caller slept 200 µs or 1 ms, so neither side
//!   stays warm; ours `handle.spawn(async { 1 }).join()` in the default configuration, tokio
//!   `handle.spawn` + a park-based `block_on` of the JoinHandle;
//! * cross-thread wake (issue 16): a task awaits a oneshot; after the gap a plain thread sends
//!   the current `Instant` on it; the task measures how long it took to run.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::report::{Better, Row};
use crate::runtime::park_block_on;
use crate::stats::{process_cpu, Latencies};
use crate::Settings;

/// How long callers spin before parking in the "both spin" pairing (our default).
const SPIN: Duration = Duration::from_micros(50);

/// Runs `n` operations (after a warm-up of `n / 10`); `op` returns its latency in µs. Returns
/// the samples and the process's CPU µs per operation over the measured loop.
fn sample(n: usize, mut op: impl FnMut() -> f64) -> (Vec<f64>, f64) {
    for _ in 0..n / 10 {
        op();
    }
    let c = process_cpu();
    let v: Vec<f64> = (0..n).map(|_| op()).collect();
    let cpu = (process_cpu() - c) * 1e6 / n as f64;
    (v, cpu)
}

/// µs that `f` took.
fn timed(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_nanos() as f64 / 1000.0
}

struct TokioBackground {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokioBackground {
    /// A current_thread runtime driven by a background thread (as Python Scraipe's
    /// DefaultBackgroundExecutor runs an asyncio loop in one).
    fn new() -> TokioBackground {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let handle = rt.handle().clone();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            rt.block_on(async {
                let _ = rx.await;
            })
        });
        TokioBackground {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for TokioBackground {
    fn drop(&mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = self.thread.take().unwrap().join();
    }
}

/// tokio: spawn, then park on a oneshot until the task answered.
fn tokio_round_trip(handle: &tokio::runtime::Handle) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    handle.spawn(async move {
        let _ = tx.send(1u8);
    });
    rx.blocking_recv().unwrap();
}

/// tokio with the caller spinning on `try_recv` for up to `SPIN` before it parks.
fn tokio_round_trip_spin(handle: &tokio::runtime::Handle) {
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    handle.spawn(async move {
        let _ = tx.send(1u8);
    });
    let t = Instant::now();
    loop {
        match rx.try_recv() {
            Ok(_) => return,
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) if t.elapsed() < SPIN => {
                std::hint::spin_loop()
            }
            Err(_) => break,
        }
    }
    rx.blocking_recv().unwrap();
}

fn ours(workers: usize, spin: bool) -> scraipe::rt::Runtime {
    let b = scraipe::rt::Builder::new().worker_threads(workers);
    let b = if spin {
        b
    } else {
        b.spin_before_park(Duration::ZERO)
            .timer_spin_window(Duration::ZERO)
    };
    b.build().unwrap()
}

fn tokio_mt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// Our default round trip: `join()` spins briefly, then parks.
fn ours_join(h: &scraipe::rt::Handle) -> f64 {
    timed(|| h.spawn(async { 1u8 }).join().map(drop).unwrap())
}

/// Our round trip without the caller's spin: `Handle::block_on` waits with the runtime's
/// `spin_before_park`, which is 0 on the no-spin runtimes.
fn ours_block_on(h: &scraipe::rt::Handle) -> f64 {
    timed(|| h.block_on(h.spawn(async { 1u8 })).map(drop).unwrap())
}

/// Pushes a median row and a p99 row (with CPU per op) for one pairing.
fn push_pair(
    rows: &mut Vec<Row>,
    bench: &str,
    ours: &Latencies,
    rival: &str,
    theirs: Option<&Latencies>,
    note: &str,
) {
    for (stat, o, t) in [
        (
            "median",
            ours.median.clone(),
            theirs.map(|t| t.median.clone()),
        ),
        ("p99 (all samples)", ours.p99(), theirs.map(Latencies::p99)),
    ] {
        let row = Row::new(
            "bridge",
            format!("{bench}, {stat}"),
            "µs",
            o,
            rival,
            t,
            Better::Lower,
        )
        .cpu(ours.cpu.clone(), theirs.map(|t| t.cpu.clone()))
        .note(note);
        row.log();
        rows.push(row);
    }
}

pub fn run(settings: &Settings, rows: &mut Vec<Row>, python: &crate::python::Python) {
    back_to_back(settings, rows, python);
    spaced(settings, rows);
    wake(settings, rows);
}

fn back_to_back(settings: &Settings, rows: &mut Vec<Row>, python: &crate::python::Python) {
    let n = if settings.quick { 20_000 } else { 100_000 };
    let ours_bg = ours(1, true);
    let ours_bg_nospin = ours(1, false);
    let ours_pool = ours(2, true);
    let ours_pool_nospin = ours(2, false);
    let tokio_bg = TokioBackground::new();
    let tokio_pool = tokio_mt(2);

    // [bg, bg no spin, pool, pool no spin] and tokio's [bg park, bg spin, pool park, pool spin].
    let mut o: [Latencies; 4] = Default::default();
    let mut t: [Latencies; 4] = Default::default();
    for _ in 0..settings.runs {
        let (v, c) = sample(n, || ours_join(ours_bg.handle()));
        o[0].add_run(v, c);
        let (v, c) = sample(n, || timed(|| tokio_round_trip(&tokio_bg.handle)));
        t[0].add_run(v, c);
        let (v, c) = sample(n, || ours_block_on(ours_bg_nospin.handle()));
        o[1].add_run(v, c);
        let (v, c) = sample(n, || timed(|| tokio_round_trip_spin(&tokio_bg.handle)));
        t[1].add_run(v, c);
        let (v, c) = sample(n, || ours_join(ours_pool.handle()));
        o[2].add_run(v, c);
        let (v, c) = sample(n, || timed(|| tokio_round_trip(tokio_pool.handle())));
        t[2].add_run(v, c);
        let (v, c) = sample(n, || ours_block_on(ours_pool_nospin.handle()));
        o[3].add_run(v, c);
        let (v, c) = sample(n, || timed(|| tokio_round_trip_spin(tokio_pool.handle())));
        t[3].add_run(v, c);
    }
    let bg = "tokio current_thread on a bg thread";
    let pool = "tokio multi_thread 2w";
    for (i, (w, rival)) in [("1w", bg), ("2w", pool)].into_iter().enumerate() {
        let (od, on, tp, ts) = (&o[2 * i], &o[2 * i + 1], &t[2 * i], &t[2 * i + 1]);
        push_pair(
            rows,
            &format!("back to back, {w}: ours spins / tokio parks"),
            od,
            rival,
            Some(tp),
            "",
        );
        push_pair(
            rows,
            &format!(
                "back to back, {w}: neither spins (ours spin_before_park(0), timer_spin_window(0), Handle::block_on)"
            ),
            on,
            rival,
            Some(tp),
            "",
        );
        push_pair(
            rows,
            &format!(
                "back to back, {w}: both callers spin ≤ 50 µs (tokio: try_recv loop, then park)"
            ),
            od,
            rival,
            Some(ts),
            "",
        );
    }
    let py = "Python Scraipe run_coroutine_threadsafe (parks)";
    let bench = "back to back, 1w: ours spins / Python parks";
    match python.bridge(settings) {
        Ok(p) => push_pair(rows, bench, &o[0], py, Some(&p), ""),
        Err(why) => push_pair(rows, bench, &o[0], py, None, &why),
    }
}

const GAPS: [(Duration, &str); 2] = [
    (Duration::from_micros(200), "200 µs"),
    (Duration::from_millis(1), "1 ms"),
];

/// Runs of the spaced and wake rows: 5 (issue 16's "medians of ≥ 5 runs"), never more than
/// `--runs`; each run of 2,000 spaced operations lasts seconds.
fn spaced_runs(settings: &Settings) -> usize {
    settings.runs.min(5)
}

/// Spaced round trips (issue 16): after each sleep of `gap`, one round trip.
fn spaced(settings: &Settings, rows: &mut Vec<Row>) {
    let n = if settings.quick { 300 } else { 2_000 };
    for workers in [1usize, 2] {
        let (od, on, t) = (ours(workers, true), ours(workers, false), tokio_mt(workers));
        for (gap, gap_label) in GAPS {
            let (mut ld, mut ln, mut lt) = Default::default();
            let spaced = |op: &mut dyn FnMut() -> f64| {
                std::thread::sleep(gap);
                op()
            };
            for _ in 0..spaced_runs(settings) {
                let (v, c) = sample(n, || spaced(&mut || ours_join(od.handle())));
                Latencies::add_run(&mut ld, v, c);
                let (v, c) = sample(n, || spaced(&mut || ours_block_on(on.handle())));
                Latencies::add_run(&mut ln, v, c);
                let h = t.handle();
                let (v, c) = sample(n, || {
                    spaced(&mut || {
                        timed(|| park_block_on(h.spawn(async { 1u8 })).map(drop).unwrap())
                    })
                });
                Latencies::add_run(&mut lt, v, c);
            }
            let rival = format!("tokio multi_thread {workers}w, park-based block_on(JoinHandle)");
            push_pair(
                rows,
                &format!("spaced {gap_label}, {workers}w, default config (join)"),
                &ld,
                &rival,
                Some(&lt),
                "",
            );
            push_pair(
                rows,
                &format!(
                    "spaced {gap_label}, {workers}w, ours spin_before_park(0) + timer_spin_window(0) (Handle::block_on)"
                ),
                &ln,
                &rival,
                Some(&lt),
                "",
            );
        }
    }
}

/// One cross-thread wake: spawn a task that awaits a oneshot, let it park for `gap`, send
/// `Instant::now()`; the task reports how long after the send it ran.
fn wake_ours(
    h: &scraipe::rt::Handle,
    gap: Duration,
    back: &mpsc::Sender<f64>,
    rx: &mpsc::Receiver<f64>,
) -> f64 {
    let (tx, wait) = scraipe::rt::sync::oneshot::channel::<Instant>();
    let back = back.clone();
    drop(h.spawn(async move {
        let sent = wait.await.unwrap();
        let _ = back.send(sent.elapsed().as_nanos() as f64 / 1000.0);
    }));
    std::thread::sleep(gap);
    let _ = tx.send(Instant::now());
    rx.recv().unwrap()
}

fn wake_tokio(
    h: &tokio::runtime::Handle,
    gap: Duration,
    back: &mpsc::Sender<f64>,
    rx: &mpsc::Receiver<f64>,
) -> f64 {
    let (tx, wait) = tokio::sync::oneshot::channel::<Instant>();
    let back = back.clone();
    drop(h.spawn(async move {
        let sent = wait.await.unwrap();
        let _ = back.send(sent.elapsed().as_nanos() as f64 / 1000.0);
    }));
    std::thread::sleep(gap);
    let _ = tx.send(Instant::now());
    rx.recv().unwrap()
}

/// Cross-thread wake (issue 16): a plain thread sends on a oneshot a parked task awaits.
fn wake(settings: &Settings, rows: &mut Vec<Row>) {
    let n = if settings.quick { 300 } else { 2_000 };
    let (back, rx) = mpsc::channel();
    for workers in [1usize, 2] {
        let (od, on, t) = (ours(workers, true), ours(workers, false), tokio_mt(workers));
        for (gap, gap_label) in GAPS {
            let (mut ld, mut ln, mut lt) = Default::default();
            for _ in 0..spaced_runs(settings) {
                let (v, c) = sample(n, || wake_ours(od.handle(), gap, &back, &rx));
                Latencies::add_run(&mut ld, v, c);
                let (v, c) = sample(n, || wake_ours(on.handle(), gap, &back, &rx));
                Latencies::add_run(&mut ln, v, c);
                let (v, c) = sample(n, || wake_tokio(t.handle(), gap, &back, &rx));
                Latencies::add_run(&mut lt, v, c);
            }
            let rival = format!("tokio multi_thread {workers}w");
            let what = "send → task runs; CPU/op includes spawning the waiting task";
            push_pair(
                rows,
                &format!("cross-thread wake after {gap_label}, {workers}w, default config"),
                &ld,
                &rival,
                Some(&lt),
                what,
            );
            push_pair(
                rows,
                &format!(
                    "cross-thread wake after {gap_label}, {workers}w, ours spin_before_park(0) + timer_spin_window(0)"
                ),
                &ln,
                &rival,
                Some(&lt),
                what,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_round_trip_and_wake_completes_and_is_timed() {
        let (o, on, t) = (ours(2, true), ours(2, false), tokio_mt(2));
        let bg = TokioBackground::new();
        assert!(ours_join(o.handle()) > 0.0);
        assert!(ours_block_on(on.handle()) > 0.0);
        assert!(timed(|| tokio_round_trip(&bg.handle)) > 0.0);
        assert!(timed(|| tokio_round_trip_spin(t.handle())) > 0.0);
        let (back, rx) = mpsc::channel();
        let gap = Duration::from_micros(200);
        let w = wake_ours(o.handle(), gap, &back, &rx);
        assert!(w > 0.0 && w < 1e6, "{w}");
        let w = wake_tokio(t.handle(), gap, &back, &rx);
        assert!(w > 0.0 && w < 1e6, "{w}");
        let (v, cpu) = sample(50, || ours_join(o.handle()));
        assert_eq!(v.len(), 50);
        assert!(cpu >= 0.0);
    }
}
