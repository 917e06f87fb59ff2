//! Measures the timer-heavy idle load of issue 16 on our runtime alone: `tasks` tasks each
//! sleeping 1–50 ms (pseudo-random) in a loop for `ms` milliseconds on `workers` workers.
//! Prints timers fired, mean lateness, process CPU per timer, and the workers' park/wake-up
//! counts (wake-ups per timer fired show how well wake-ups are shared). For `perf`/`strace`.
//!
//! `cargo run --release --example timer_load -- [workers] [tasks] [ms]`

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn cpu_us() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 * 1e6 + tv.tv_usec as f64;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let workers = *args.first().unwrap_or(&2) as usize;
    let tasks = *args.get(1).unwrap_or(&1000);
    let run_for = Duration::from_millis(*args.get(2).unwrap_or(&1000));
    let rt = scraipe::rt::Builder::new()
        .worker_threads(workers)
        .build()
        .unwrap();
    let fired = Arc::new(AtomicU64::new(0));
    let late_ns = Arc::new(AtomicU64::new(0));
    let before = rt.handle().metrics();
    let c = cpu_us();
    let until = Instant::now() + run_for;
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let (fired, late_ns) = (fired.clone(), late_ns.clone());
            rt.spawn(async move {
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (i + 1);
                while Instant::now() < until {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let deadline = Instant::now() + Duration::from_millis(1 + x % 50);
                    scraipe::rt::sleep_until(deadline).await;
                    late_ns.fetch_add(deadline.elapsed().as_nanos() as u64, Relaxed);
                    fired.fetch_add(1, Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let cpu = cpu_us() - c;
    let after = rt.handle().metrics();
    let n = fired.load(Relaxed).max(1) as f64;
    let sum = |m: &scraipe::rt::RuntimeMetrics, f: fn(&scraipe::rt::WorkerStats) -> u64| {
        m.workers.iter().map(f).sum::<u64>()
    };
    let wakeups = sum(&after, |w| w.wakeups) - sum(&before, |w| w.wakeups);
    let unparks = sum(&after, |w| w.unpark_requests) - sum(&before, |w| w.unpark_requests);
    let per_worker: Vec<String> = after
        .workers
        .iter()
        .zip(&before.workers)
        .map(|(a, b)| {
            format!(
                "{} polls/{} wake-ups/{} unparks",
                a.polls - b.polls,
                a.wakeups - b.wakeups,
                a.unpark_requests - b.unpark_requests
            )
        })
        .collect();
    println!("per worker: {}", per_worker.join(", "));
    println!(
        "{} timers, mean lateness {:.0} µs, CPU {:.2} µs per timer, {:.3} wake-ups and {:.3} \
         unpark requests per timer",
        n,
        late_ns.load(Relaxed) as f64 / n / 1000.0,
        cpu / n,
        wakeups as f64 / n,
        unparks as f64 / n
    );
}
