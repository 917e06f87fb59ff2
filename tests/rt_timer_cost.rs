//! The default timer policy on a timer-heavy, mostly idle load (issue 16): many tasks each
//! sleeping a few milliseconds in a loop. Its own test binary, so the process's CPU time is this
//! load's alone.

use std::time::{Duration, Instant};

use scraipe::rt::{self, Builder};

fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct we pass; all-zero is a valid `rusage`.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer to a `rusage`.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) }, 0);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// What a timer load measured.
struct Load {
    fired: usize,
    /// Worker wake-ups from their drivers, and eventfd wake-up requests, per timer fired.
    wakeups_per_timer: f64,
    unparks_per_timer: f64,
    mean_late: Duration,
    median_late: Duration,
    cpu_per_timer: Duration,
}

/// Runs `tasks` tasks sleeping 1–20 ms each in a loop for `for_`.
fn timer_load(rt: &rt::Runtime, tasks: u64, for_: Duration) -> Load {
    let before = rt.handle().metrics();
    let cpu = process_cpu();
    let end = Instant::now() + for_;
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            rt.spawn(async move {
                let mut late = Vec::new();
                let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                while Instant::now() < end {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let deadline = Instant::now() + Duration::from_micros(1_000 + x % 19_000);
                    rt::sleep_until(deadline).await;
                    let now = Instant::now();
                    assert!(now >= deadline, "timer fired early");
                    late.push(now - deadline);
                }
                late
            })
        })
        .collect();
    let mut late: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let cpu = process_cpu() - cpu;
    let after = rt.handle().metrics();
    let sum = |m: &rt::RuntimeMetrics, f: fn(&rt::WorkerStats) -> u64| -> f64 {
        m.workers.iter().map(f).sum::<u64>() as f64
    };
    late.sort();
    let n = late.len().max(1);
    Load {
        wakeups_per_timer: (sum(&after, |w| w.wakeups) - sum(&before, |w| w.wakeups)) / n as f64,
        unparks_per_timer: (sum(&after, |w| w.unpark_requests)
            - sum(&before, |w| w.unpark_requests))
            / n as f64,
        fired: late.len(),
        mean_late: late.iter().sum::<Duration>() / n as u32,
        median_late: late.get(late.len() / 2).copied().unwrap_or_default(),
        cpu_per_timer: cpu / n as u32,
    }
}

#[test]
fn timer_heavy_idle_load_is_cheap_by_default_and_precise_on_opt_in() {
    let rt = Builder::new().worker_threads(2).build().unwrap();
    let d = timer_load(&rt, 500, Duration::from_millis(600));
    eprintln!(
        "default: {} timers, lateness mean {:?} median {:?}, CPU per timer {:?}, \
         {:.3} wake-ups and {:.3} unpark requests per timer",
        d.fired,
        d.mean_late,
        d.median_late,
        d.cpu_per_timer,
        d.wakeups_per_timer,
        d.unparks_per_timer
    );
    assert!(d.fired > 10_000, "only {} timers fired", d.fired);
    // Wake-ups are what a timer-heavy load pays for (issue 16). Before the workers shared one
    // coalescing grid and timer batches stopped waking siblings at once, this debug build made
    // ~0.17 wake-ups and ~0.18 eventfd wake-up requests per timer; with a grid lane per worker
    // ~0.06 and ~0.00; with one ticker on a 500 µs grid ~0.05 and ~0.00.
    assert!(
        d.wakeups_per_timer < 0.10,
        "{:.3} wake-ups per timer",
        d.wakeups_per_timer
    );
    assert!(
        d.unparks_per_timer < 0.05,
        "{:.3} unpark requests per timer",
        d.unparks_per_timer
    );
    assert!(
        d.cpu_per_timer < Duration::from_micros(15),
        "CPU per timer {:?}",
        d.cpu_per_timer
    );
    assert!(
        d.median_late < Duration::from_millis(1),
        "median lateness {:?}",
        d.median_late
    );
    assert!(
        d.mean_late < Duration::from_millis(5),
        "mean lateness {:?}",
        d.mean_late
    );
    drop(rt);

    // The opt-in: every timer spun to, many pending or not (one test function, so the two loads
    // never run at once and the CPU figure above is the default's alone). Few tasks so it
    // stays cheap; still more than the "few timers" threshold pending.
    let rt = Builder::new()
        .worker_threads(1)
        .precise_timers(true)
        .build()
        .unwrap();
    let p = timer_load(&rt, 40, Duration::from_millis(300));
    eprintln!(
        "precise_timers: {} timers, lateness mean {:?} median {:?}",
        p.fired, p.mean_late, p.median_late
    );
    assert!(p.fired > 500, "only {} timers fired", p.fired);
    assert!(
        p.median_late < Duration::from_micros(100),
        "median lateness {:?}",
        p.median_late
    );
}
