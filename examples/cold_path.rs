//! Measures the cold path of the sync bridge (issue 16): a plain thread sleeps `gap`, then
//! `handle.spawn(async { 1 }).join()`. Prints median, p99, process CPU and context switches per
//! round trip, and each worker's wake-ups per round trip.
//!
//! With a fourth argument `wake`, the cross-thread wake of `versus` instead: a task spawned
//! first awaits a oneshot, the plain thread sleeps `gap` and sends; timed from the send until
//! the task runs (CPU counts the whole cycle, spawn included).
//!
//! `cargo run --release --example cold_path -- [workers] [gap_us] [n] [wake]`

use std::time::{Duration, Instant};

fn cpu_us() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 * 1e6 + tv.tv_usec as f64;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// (voluntary, involuntary) context switches of the whole process so far.
fn switches() -> (i64, i64) {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    (ru.ru_nvcsw, ru.ru_nivcsw)
}

fn main() {
    let wake = std::env::args().nth(4).as_deref() == Some("wake");
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .take(3)
        .map(|a| a.parse().unwrap())
        .collect();
    let workers = *args.first().unwrap_or(&1) as usize;
    let gap = Duration::from_micros(*args.get(1).unwrap_or(&200));
    let n = *args.get(2).unwrap_or(&2000) as usize;
    let rt = scraipe::rt::Builder::new()
        .worker_threads(workers)
        .build()
        .unwrap();
    let h = rt.handle().clone();
    let mut v = Vec::with_capacity(n);
    let mut cpu = 0.0;
    let sw = switches();
    let wakeups = |rt: &scraipe::rt::Runtime| -> Vec<u64> {
        rt.handle()
            .metrics()
            .workers
            .iter()
            .map(|w| w.wakeups)
            .collect()
    };
    let m0 = rt.handle().metrics();
    let wakeups_before = wakeups(&rt);
    let (back, ran) = std::sync::mpsc::channel::<f64>();
    for _ in 0..n {
        if wake {
            let c = cpu_us();
            let (tx, rx) = scraipe::rt::sync::oneshot::channel::<Instant>();
            let back = back.clone();
            drop(h.spawn(async move {
                let sent = rx.await.unwrap();
                let _ = back.send(sent.elapsed().as_nanos() as f64 / 1000.0);
            }));
            std::thread::sleep(gap);
            let _ = tx.send(Instant::now());
            v.push(ran.recv().unwrap());
            cpu += cpu_us() - c;
            continue;
        }
        std::thread::sleep(gap);
        let c = cpu_us();
        let t = Instant::now();
        assert_eq!(h.spawn(async { 1 }).join().unwrap(), 1);
        v.push(t.elapsed().as_nanos() as f64 / 1000.0);
        cpu += cpu_us() - c;
    }
    let sw_after = switches();
    let per_worker: Vec<String> = wakeups(&rt)
        .iter()
        .zip(&wakeups_before)
        .map(|(a, b)| format!("{:.2}", (a - b) as f64 / n as f64))
        .collect();
    if std::env::var_os("COLD_PATH_DEBUG").is_some() {
        for (a, b) in rt.handle().metrics().workers.iter().zip(&m0.workers) {
            let per = |x: u64, y: u64| (x - y) as f64 / n as f64;
            eprintln!(
                "  per op: polls {:.2} steals {:.2} parks {:.2} wake-ups {:.2} unpark requests {:.2}",
                per(a.polls, b.polls),
                per(a.steals, b.steals),
                per(a.parks, b.parks),
                per(a.wakeups, b.wakeups),
                per(a.unpark_requests, b.unpark_requests)
            );
        }
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "workers {workers} gap {gap:?}: median {:.1} µs p99 {:.1} µs cpu/rt {:.1} µs, \
         context switches per rt: {:.2} voluntary, {:.3} involuntary; \
         wake-ups per rt by worker: {}",
        v[n / 2],
        v[n * 99 / 100],
        cpu / n as f64,
        (sw_after.0 - sw.0) as f64 / n as f64,
        (sw_after.1 - sw.1) as f64 / n as f64,
        per_worker.join(" / ")
    );
}
