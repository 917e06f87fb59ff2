//! The CPU an idle worker spends while a sibling is busy (issue 16): it sleeps at most 1 ms
//! (`driver::STALL`) so it can turn the busy sibling's driver. One task blocks its worker in
//! `std::thread::sleep` (no CPU) for `secs`; the process CPU over that time is the idle
//! sibling's periodic wake-ups.
//!
//! `cargo run --release --example stall_cost -- [secs]`

use std::time::{Duration, Instant};

fn cpu() -> Duration {
    // SAFETY: getrusage only writes the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().unwrap())
        .unwrap_or(2);
    let rt = scraipe::rt::Builder::new()
        .worker_threads(2)
        .build()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let (c, t) = (cpu(), Instant::now());
    rt.spawn(async move { std::thread::sleep(Duration::from_secs(secs)) })
        .join()
        .unwrap();
    let (c, t) = (cpu() - c, t.elapsed());
    println!(
        "one worker blocked {t:?}: process CPU {c:?} ({:.2} % of one CPU)",
        c.as_secs_f64() / t.as_secs_f64() * 100.0
    );
}
