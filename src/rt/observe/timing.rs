//! Timing (behind the process switch [`set_timing`]): per-worker busy time, poll-time and
//! wake→poll latency histograms, and per-worker timer lateness.
//!
//! **The clock is cheap on purpose.** On x86_64, when the kernel itself keeps time with the TSC
//! (`/sys/devices/system/clocksource/clocksource0/current_clocksource` is `tsc`: invariant and
//! synchronised across CPUs, else the kernel would not use it) a stamp is one `rdtsc`,
//! converted to ns with a multiply and a shift by a factor calibrated once against
//! `CLOCK_MONOTONIC` (a 2 ms spin in the first `set_timing(true)`). Elsewhere it is
//! `clock_gettime(CLOCK_MONOTONIC)`. And a worker reads it **once per poll boundary**: the
//! stamp that ends one poll starts the next poll on the same thread, unless something that
//! takes time happened in between (a park, a driver turn, a task taken from the injector or
//! stolen — the hooks there drop the shared stamp). So busy and poll times include the
//! scheduler's few tens of ns of queue bookkeeping between back-to-back polls.
//!
//! Histograms have one bucket per power of two of nanoseconds, so recording is an index
//! computation and two relaxed load + stores (a worker's histograms have one writer), and
//! quantiles are good to a factor of two.

use std::cell::Cell;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::OnceLock;
use std::time::Duration;

use super::mode;

/// Turns timing on or off for the whole process. The first call that turns it on calibrates
/// the clock (about 2 ms).
pub fn set_timing(on: bool) {
    if on {
        calibrate();
        // Stamps kept from an earlier timing period are stale now.
        SINCE.store(ticks(), Relaxed);
    }
    mode::set(mode::TIMING, on);
}

/// True while timing is on.
#[inline]
pub fn is_timing() -> bool {
    mode::get() & mode::TIMING != 0
}

/// The TSC is the clock (see the module docs); set once by `calibrate`.
static USE_TSC: AtomicBool = AtomicBool::new(false);
/// ns per tick, as a 32.32 fixed-point number (1.0 until calibrated: ticks are ns).
static NS_PER_TICK_Q32: AtomicU64 = AtomicU64::new(1 << 32);

/// The timing clock, in ticks (never 0 in practice: the TSC and `CLOCK_MONOTONIC` count from
/// boot). Convert differences with [`ticks_to_ns`].
#[inline(always)]
pub(crate) fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    if USE_TSC.load(Relaxed) {
        // SAFETY: `rdtsc` has no preconditions and exists on every x86_64 CPU.
        return unsafe { core::arch::x86_64::_rdtsc() };
    }
    monotonic_ns()
}

/// A tick difference in ns.
#[inline(always)]
pub(crate) fn ticks_to_ns(ticks: u64) -> u64 {
    ((u128::from(ticks) * u128::from(NS_PER_TICK_Q32.load(Relaxed))) >> 32) as u64
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Decides the clock and calibrates the TSC, once per process (the first `set_timing(true)` or
/// the trace clock's first use).
pub(crate) fn calibrate() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            let source = std::fs::read_to_string(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
            )
            .unwrap_or_default();
            if source.trim() == "tsc" {
                // SAFETY: as in `ticks`.
                let tsc = || unsafe { core::arch::x86_64::_rdtsc() };
                // A (tsc, ns) pair read close together: the best of a few tries, so an
                // interrupt between the reads does not skew it.
                let pair = || {
                    (0..5)
                        .map(|_| {
                            let (a, n, b) = (tsc(), monotonic_ns(), tsc());
                            (b.wrapping_sub(a), a / 2 + b / 2, n)
                        })
                        .min()
                        .map(|(_, t, n)| (t, n))
                        .expect("five tries")
                };
                let (t0, n0) = pair();
                while monotonic_ns() < n0 + 2_000_000 {
                    std::hint::spin_loop();
                }
                let (t1, n1) = pair();
                if t1 > t0 && n1 > n0 {
                    let q32 = (u128::from(n1 - n0) << 32) / u128::from(t1 - t0);
                    NS_PER_TICK_Q32.store(q32 as u64, Relaxed);
                    USE_TSC.store(true, Relaxed);
                }
            }
        }
    });
}

thread_local! {
    /// The stamp (ticks) that ended this thread's last poll, while timing; 0: none, or
    /// something that took time happened since (see the module docs).
    static LAST_END: Cell<u64> = const { Cell::new(0) };
}

/// When timing was last switched on (ticks). A stamp older than this is from an earlier timing
/// period — a boundary stamp the thread kept while it polled untimed, a wake stamp whose poll
/// came untimed — and is not used.
static SINCE: AtomicU64 = AtomicU64::new(0);

/// Whether `stamp` was taken in the current timing period.
#[inline]
pub(crate) fn is_current(stamp: u64) -> bool {
    stamp >= SINCE.load(Relaxed)
}

/// A poll starts: the shared boundary stamp, or a fresh one.
#[inline]
pub(crate) fn poll_start_stamp() -> u64 {
    match LAST_END.with(|c| c.replace(0)) {
        t if t != 0 && is_current(t) => t,
        _ => ticks(),
    }
}

/// A poll ends: a fresh stamp, kept for the next poll on this thread.
#[inline]
pub(crate) fn poll_end_stamp() -> u64 {
    let now = ticks();
    LAST_END.with(|c| c.set(now));
    now
}

/// Something that takes time happens on this thread before its next poll (a park, a driver
/// turn, a search for work): the next poll reads the clock afresh.
#[inline]
pub(crate) fn break_boundary() {
    if is_timing() {
        let _ = LAST_END.try_with(|c| c.set(0));
    }
}

const BUCKETS: usize = 48;

/// A log2 histogram of durations.
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub(crate) fn record(&self, d: Duration) {
        let ns = d.as_nanos().min(u128::from(u64::MAX)) as u64;
        let bucket = (64 - ns.leading_zeros() as usize).min(BUCKETS - 1);
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
    }

    /// `record` for a histogram only one thread writes (a worker's own): plain load + store
    /// instead of locked read-modify-writes.
    #[inline]
    pub(crate) fn record_owned(&self, ns: u64) {
        let bucket = (64 - ns.leading_zeros() as usize).min(BUCKETS - 1);
        let b = &self.buckets[bucket];
        b.store(b.load(Relaxed) + 1, Relaxed);
        self.sum_ns
            .store(self.sum_ns.load(Relaxed).wrapping_add(ns), Relaxed);
    }

    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            sum: Duration::from_nanos(self.sum_ns.load(Relaxed)),
        }
    }
}

/// A copy of a histogram. Bucket `i` counts durations in `[2^(i-1), 2^i)` ns (bucket 0: zero).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Counts per power-of-two bucket.
    pub buckets: Vec<u64>,
    /// Sum of all recorded durations.
    pub sum: Duration,
}

impl HistogramSnapshot {
    /// Number of recorded durations.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// An upper bound (within a factor of two) of the `q` quantile, `q` in `[0, 1]`.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Duration::from_nanos(if i == 0 {
                    0
                } else {
                    (1u64 << i) - 1
                }));
            }
        }
        None
    }

    /// Upper bound of the largest recorded duration.
    pub fn max(&self) -> Option<Duration> {
        self.quantile(1.0)
    }
}

/// One worker's timing, written by its thread. (Busy time is `poll`'s sum.)
#[derive(Default)]
pub(crate) struct WorkerTiming {
    pub(crate) poll: Histogram,
    pub(crate) wake_to_poll: Histogram,
}

/// Timing of one worker.
#[derive(Clone, Debug, Default)]
pub struct WorkerTimingSnapshot {
    /// Time spent inside polls (a poll nested in another's `block_on` counts in both).
    pub busy: Duration,
    /// How long polls took.
    pub poll: HistogramSnapshot,
    /// From the wake that scheduled an idle task (or, for a task that woke itself, the end of
    /// that poll) to the start of its next poll.
    pub wake_to_poll: HistogramSnapshot,
    /// How late this worker's timers fired after their deadline.
    pub timer_lateness: HistogramSnapshot,
}

impl WorkerTiming {
    pub(crate) fn snapshot(&self, timer_lateness: &Histogram) -> WorkerTimingSnapshot {
        WorkerTimingSnapshot {
            busy: Duration::from_nanos(self.poll.sum_ns.load(Relaxed)),
            poll: self.poll.snapshot(),
            wake_to_poll: self.wake_to_poll.snapshot(),
            timer_lateness: timer_lateness.snapshot(),
        }
    }
}

/// A timer fired `late` after its deadline.
pub(crate) fn timer_fired(lateness: &Histogram, late: Duration) {
    if is_timing() {
        lateness.record(late);
    }
    super::trace::timer_fire(late);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_boundary_stamp_is_shared_but_not_across_timing_periods() {
        // Back to back on one thread: the end of one poll starts the next.
        let end = poll_end_stamp();
        assert_eq!(poll_start_stamp(), end);
        // Taken, then timing was switched off and on (what `set_timing(true)` bumps): stale.
        let end = poll_end_stamp();
        std::thread::sleep(Duration::from_millis(1));
        SINCE.store(ticks(), Relaxed);
        assert!(poll_start_stamp() > end);
        assert!(!is_current(end));
        SINCE.store(0, Relaxed);
        // Taken once: the next start without an end reads the clock.
        let _ = poll_end_stamp();
        let first = poll_start_stamp();
        std::thread::sleep(Duration::from_millis(1));
        assert!(poll_start_stamp() > first);
    }

    #[test]
    fn quantiles_bound_the_recorded_values_within_a_factor_of_two() {
        let h = Histogram::default();
        for us in [1u64, 2, 3, 100, 1000] {
            h.record(Duration::from_micros(us));
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 5);
        assert_eq!(s.sum, Duration::from_micros(1106));
        let max = s.max().unwrap();
        assert!(max >= Duration::from_micros(1000) && max < Duration::from_micros(2000));
        let median = s.quantile(0.5).unwrap();
        assert!(median >= Duration::from_micros(3) && median < Duration::from_micros(6));
        assert_eq!(HistogramSnapshot::default().quantile(0.5), None);
    }
}
