//! The sync → async round trip: a plain thread hands a trivial future to a runtime and blocks
//! for its output. Median and p99 of single round trips.

use std::time::Instant;

use crate::report::{Better, Row};
use crate::stats::{percentile, Runs};
use crate::Settings;

/// Runs `n` round trips of `f`, returning (median µs, p99 µs).
fn sample(n: usize, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..n / 10 {
        f();
    }
    let mut v: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as f64 / 1000.0
        })
        .collect();
    (percentile(&mut v, 0.5), percentile(&mut v, 0.99))
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

fn tokio_round_trip(handle: &tokio::runtime::Handle) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    handle.spawn(async move {
        let _ = tx.send(1u8);
    });
    rx.blocking_recv().unwrap();
}

pub fn run(settings: &Settings, rows: &mut Vec<Row>, python: &crate::python::Python) {
    let n = if settings.quick { 20_000 } else { 100_000 };
    let ours_bg = scraipe::rt::Builder::new()
        .worker_threads(1)
        .build()
        .unwrap();
    let ours_pool = scraipe::rt::Builder::new()
        .worker_threads(2)
        .build()
        .unwrap();
    let tokio_bg = TokioBackground::new();
    let tokio_mt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let (mut bg_med, mut bg_p99, mut pool_med, mut pool_p99) = Default::default();
    let (mut tbg_med, mut tbg_p99, mut tmt_med, mut tmt_p99) = Default::default();
    let push = |m: &mut Runs, p: &mut Runs, (a, b): (f64, f64)| {
        m.push(a);
        p.push(b);
    };
    for _ in 0..settings.runs {
        let h = ours_bg.handle().clone();
        push(
            &mut bg_med,
            &mut bg_p99,
            sample(n, || h.spawn(async { 1u8 }).join().map(drop).unwrap()),
        );
        push(
            &mut tbg_med,
            &mut tbg_p99,
            sample(n, || tokio_round_trip(&tokio_bg.handle)),
        );
        let h = ours_pool.handle().clone();
        push(
            &mut pool_med,
            &mut pool_p99,
            sample(n, || h.spawn(async { 1u8 }).join().map(drop).unwrap()),
        );
        push(
            &mut tmt_med,
            &mut tmt_p99,
            sample(n, || tokio_round_trip(tokio_mt.handle())),
        );
    }
    let mut row = |bench: &str, ours: Runs, rival: &str, theirs: Option<Runs>, note: &str| {
        eprintln!(
            "  bridge {bench}: ours {:.2} µs, {rival} {}",
            ours.median(),
            theirs
                .as_ref()
                .map(|t| format!("{:.2} µs", t.median()))
                .unwrap_or_else(|| note.to_string())
        );
        rows.push(Row {
            group: "bridge",
            bench: bench.to_string(),
            unit: "µs",
            ours,
            rival: rival.to_string(),
            theirs,
            better: Better::Lower,
            note: note.to_string(),
        });
    };
    row(
        "background executor, median",
        bg_med.clone(),
        "tokio current_thread on a bg thread",
        Some(tbg_med),
        "",
    );
    row(
        "background executor, p99",
        bg_p99.clone(),
        "tokio current_thread on a bg thread",
        Some(tbg_p99),
        "",
    );
    row(
        "pool 2w, median",
        pool_med,
        "tokio multi_thread 2w",
        Some(tmt_med),
        "",
    );
    row(
        "pool 2w, p99",
        pool_p99,
        "tokio multi_thread 2w",
        Some(tmt_p99),
        "",
    );
    match python.bridge(settings) {
        Ok((med, p99)) => {
            row(
                "background executor, median",
                bg_med,
                "Python Scraipe run_coroutine_threadsafe",
                Some(med),
                "",
            );
            row(
                "background executor, p99",
                bg_p99,
                "Python Scraipe run_coroutine_threadsafe",
                Some(p99),
                "",
            );
        }
        Err(why) => {
            row(
                "background executor, median",
                bg_med,
                "Python Scraipe run_coroutine_threadsafe",
                None,
                &why,
            );
        }
    }
}
