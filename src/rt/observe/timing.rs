//! Timing (behind the process switch [`set_timing`]): per-worker busy time, poll-time and
//! wake→poll latency histograms, and per-worker timer lateness.
//!
//! **The clock is cheap on purpose.** On x86_64, when the kernel itself keeps time with the TSC
//! (`/sys/devices/system/clocksource/clocksource0/current_clocksource` is `tsc`: invariant and
//! synchronised across CPUs, else the kernel would not use it) a stamp is one `rdtsc`,
//! converted to ns with a multiply and a shift by a factor calibrated once against
//! `CLOCK_MONOTONIC` (a 2 ms spin in the first `set_timing(true)`). Elsewhere it is
//! `clock_gettime(CLOCK_MONOTONIC)`.
//!
//! **And it is read rarely: polls and wakes are sampled.** Even a `rdtsc` costs 10–20 ns on a
//! VM, which is 5–10 % of a ping-pong round between two tasks if every poll reads it twice. So,
//! as Go's runtime does for its scheduling latencies, timing samples:
//! - A worker times one poll in a gap it draws after each timed poll. By default
//!   ([`TimingSampling::Adaptive`]) the gap's mean is the number of polls the worker ran in
//!   the last [`ADAPTIVE_SPACING`] (10 µs): a worker whose polls are that far apart (or that
//!   just woke up) times every poll; one running 100-ns polls back to back times one in ~100.
//!   [`set_timing_sampling`] can fix the ratio instead (`OneIn(1)`: every poll).
//! - A thread that wakes tasks stamps one wake in a gap drawn the same way; the poll that the
//!   stamped wake scheduled reads the clock at its start, whether it is timed or not, and
//!   records the latency. A task's self-wake is stamped when its poll is timed (at that
//!   poll's end).
//! - Gaps are random (uniform, of that mean), so a workload whose polls repeat in a cycle is
//!   not always sampled at the same point of it.
//! - Busy time is not sampled: it is the sum of a worker's *run stretches*, from its first
//!   poll after it wakes up (or starts) to the moment it goes to sleep again (or its thread
//!   stops driving it). Two clock reads per stretch, where the worker is about to make a
//!   system call anyway. A snapshot adds the stretch still running, so a worker stuck in one
//!   long poll shows as busy. Timer lateness is not sampled either.
//!
//! Histograms have one bucket per power of two of nanoseconds, so recording is an index
//! computation and two relaxed load + stores (a worker's histograms have one writer), and
//! quantiles are good to a factor of two.

use std::cell::Cell;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
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
    tsc_ticks().unwrap_or_else(monotonic_ns)
}

/// The clock if it is the TSC (one `rdtsc`, no call); `None` elsewhere.
#[inline(always)]
pub(crate) fn tsc_ticks() -> Option<u64> {
    #[cfg(target_arch = "x86_64")]
    if USE_TSC.load(Relaxed) {
        // SAFETY: `rdtsc` has no preconditions and exists on every x86_64 CPU.
        return Some(unsafe { core::arch::x86_64::_rdtsc() });
    }
    None
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

/// When timing was last switched on (ticks). A stamp older than this is from an earlier timing
/// period — a run stretch left open when timing was switched off, a wake stamp whose poll came
/// untimed — and is not used.
static SINCE: AtomicU64 = AtomicU64::new(0);

/// Whether `stamp` was taken in the current timing period.
#[inline]
pub(crate) fn is_current(stamp: u64) -> bool {
    stamp >= SINCE.load(Relaxed)
}

/// How timing picks the polls it times and the wakes it stamps (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimingSampling {
    #[default]
    /// The default: about one sample per [`ADAPTIVE_SPACING`] of wall time, per worker (polls)
    /// and per waking thread (wakes) — every poll of a worker whose polls are that far apart,
    /// about one in 100 when 100-ns polls come back to back.
    Adaptive,
    /// One poll in `n` (and one wake in `n`), at random gaps of mean `n`; `OneIn(1)` times
    /// every poll and stamps every wake.
    OneIn(u32),
}

/// The adaptive sampling's target spacing between samples. A sample reads the clock twice (a
/// `rdtsc` costs 10–20 ns on a VM), so this keeps timing's clock reads under 0.5 % of a busy
/// worker's time, and still times 100,000 polls a second per busy worker.
pub const ADAPTIVE_SPACING: Duration = Duration::from_micros(10);

/// The largest adaptive gap (polls or wakes between two samples).
const MAX_GAP: u64 = 1024;

/// The sampling: 0 for adaptive, else `n` of `OneIn(n)`.
static SAMPLING: AtomicU32 = AtomicU32::new(0);

/// Sets how timing samples (the default is [`TimingSampling::Adaptive`]). Busy time and timer
/// lateness are not sampled. A countdown already running finishes its gap first.
pub fn set_timing_sampling(sampling: TimingSampling) {
    let n = match sampling {
        TimingSampling::Adaptive => 0,
        TimingSampling::OneIn(n) => n.max(1),
    };
    SAMPLING.store(n, Relaxed);
}

/// The sampling in effect (see [`set_timing_sampling`]).
pub fn timing_sampling() -> TimingSampling {
    match SAMPLING.load(Relaxed) {
        0 => TimingSampling::Adaptive,
        n => TimingSampling::OneIn(n),
    }
}

/// One sampler's state: a countdown to the next sample, and what the next gap is drawn from.
/// The worker's (polls) lives in its `WorkerTiming`, a thread's (wakes) in a thread-local.
#[derive(Clone, Copy, Default)]
struct Sampler {
    /// Polls (or wakes) to let pass before the next sample.
    left: u32,
    /// The length of the gap that ends at the next sample (samples included): the events the
    /// time since the last sample spans.
    gap: u32,
    /// xorshift32 state (0: not seeded yet).
    rng: u32,
    /// The clock at the last sample (ticks; 0: none).
    last: u64,
}

impl Sampler {
    /// A sample was taken at `now` (ticks): draws the next gap. Adaptive: its mean is the
    /// events per `ADAPTIVE_SPACING` at the rate since the last sample (1 after a pause), or,
    /// when that is more, its average with the previous mean; `OneIn(n)`: `n`. The gap is
    /// uniform in `1..=2 * mean - 1`, so a workload whose polls repeat with the mean's length
    /// is not always sampled at the same point. `seed`: distinct per sampler; `sampling`:
    /// `SAMPLING`'s value.
    #[cold]
    fn sampled(&mut self, now: u64, seed: usize, sampling: u32) {
        let mean = match sampling {
            0 => {
                let ns = ticks_to_ns(now.saturating_sub(self.last)).max(1);
                let fresh = match self.last {
                    0 => 1,
                    _ => u64::from(self.gap.max(1)) * ADAPTIVE_SPACING.as_nanos() as u64 / ns,
                };
                // Down at once (the time since the last sample says events came slower),
                // up halfway (averaged with the last gap, about the previous mean).
                fresh
                    .min((fresh + u64::from(self.gap.max(1))) / 2)
                    .clamp(1, MAX_GAP)
            }
            n => u64::from(n),
        };
        self.last = now;
        if mean <= 1 {
            self.gap = 1;
            self.left = 0;
            return;
        }
        let mut x = match self.rng {
            0 => (seed as u32) | 1,
            x => x,
        };
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        let gap = 1 + (u64::from(x) % (2 * mean - 1)) as u32;
        self.gap = gap;
        self.left = gap - 1;
    }
}

thread_local! {
    /// This thread's wake sampler.
    static WAKES: Cell<Sampler> = const {
        Cell::new(Sampler { left: 0, gap: 0, rng: 0, last: 0 })
    };
}

/// Whether this wake (one that scheduled an idle task) is stamped for the wake→poll histogram,
/// and if so its stamp (ticks, never 0); else 0.
#[inline]
pub(crate) fn sample_wake() -> u64 {
    WAKES
        .try_with(|w| {
            let mut s = w.get();
            if s.left != 0 {
                s.left -= 1;
                w.set(s);
                return 0;
            }
            let now = ticks().max(1);
            s.sampled(now, w as *const _ as usize, SAMPLING.load(Relaxed));
            w.set(s);
            now
        })
        .unwrap_or(0)
}

impl WorkerTiming {
    /// The common poll start, decided without the clock (the caller has checked that no
    /// stamped wake waits for it): not a timed poll, and a run stretch is open. Counts the poll
    /// and returns true; else returns false and changes nothing ([`poll_starts`](Self::poll_starts)
    /// then decides). Only the thread driving the worker calls these.
    #[inline]
    pub(crate) fn skip_poll(&self) -> bool {
        let left = self.polls_left.load(Relaxed);
        let start = self.stretch.load(Relaxed);
        // (A stretch opened before timing was last switched on is stale: opened afresh.)
        let skip = left != 0 && start != 0 && is_current(start);
        if skip {
            self.polls_left.store(left - 1, Relaxed);
        }
        skip
    }

    /// A poll starts: whether to time it (then the caller reads the clock and calls
    /// [`timed`](Self::timed)), and whether a run stretch is open (when it is not, the caller
    /// opens one with [`open_stretch`](Self::open_stretch) and the stamp it reads).
    #[inline]
    pub(crate) fn poll_starts(&self) -> (bool, bool) {
        let left = self.polls_left.load(Relaxed);
        if left != 0 {
            self.polls_left.store(left - 1, Relaxed);
        }
        let start = self.stretch.load(Relaxed);
        (left == 0, start != 0 && is_current(start))
    }

    /// The poll that [`poll_starts`](Self::poll_starts) chose is timed from `now`: draws the
    /// gap to the next.
    pub(crate) fn timed(&self, now: u64) {
        let mut s = Sampler {
            left: 0,
            gap: self.gap.load(Relaxed),
            rng: self.rng.load(Relaxed),
            last: self.last_timed.load(Relaxed),
        };
        s.sampled(now, self as *const _ as usize >> 4, SAMPLING.load(Relaxed));
        self.polls_left.store(s.left, Relaxed);
        self.gap.store(s.gap, Relaxed);
        self.rng.store(s.rng, Relaxed);
        self.last_timed.store(s.last, Relaxed);
    }

    /// Opens a run stretch at `now`.
    pub(crate) fn open_stretch(&self, now: u64) {
        self.stretch.store(now, Relaxed);
    }

    /// The worker stops running tasks for now: it is about to sleep, or its thread stops
    /// driving it. Closes the open run stretch, adding it to the busy time.
    pub(crate) fn close_stretch(&self) {
        let start = self.stretch.load(Relaxed);
        if start != 0 {
            self.stretch.store(0, Relaxed);
            if is_current(start) {
                let ns = ticks_to_ns(ticks().saturating_sub(start));
                let busy = self.busy_ns.load(Relaxed);
                // Release: a snapshot that sees this total sees the stretch closed (see
                // `busy`), so it never counts the stretch twice.
                self.busy_ns.store(busy.wrapping_add(ns), Release);
            }
        }
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

/// One worker's timing, written by the thread that drives it.
#[derive(Default)]
pub(crate) struct WorkerTiming {
    /// Sampled poll times.
    pub(crate) poll: Histogram,
    /// Sampled wake→poll latencies.
    pub(crate) wake_to_poll: Histogram,
    /// The closed run stretches' total (ns).
    pub(crate) busy_ns: AtomicU64,
    // The sampling and the stretch, written only by the thread driving the worker (plain
    // loads and stores):
    /// The poll sampler (`Sampler`'s fields): polls to let pass untimed before the next timed
    /// one, the gap that ends there, the xorshift32 state, the last timed poll's start.
    polls_left: AtomicU32,
    gap: AtomicU32,
    rng: AtomicU32,
    last_timed: AtomicU64,
    /// When the open run stretch started (ticks; 0: none open).
    stretch: AtomicU64,
}

/// Timing of one worker.
#[derive(Clone, Debug, Default)]
pub struct WorkerTimingSnapshot {
    /// Time the worker ran: from its first poll after it wakes up (or starts) to when it goes
    /// to sleep again (or its thread stops driving it), summed. It includes the scheduler's
    /// work between polls and a search for work before sleeping, and the stretch still
    /// running (so a worker stuck in a long poll shows as busy).
    pub busy: Duration,
    /// How long polls took: the timed polls (see [`sampling`](Self::sampling)).
    pub poll: HistogramSnapshot,
    /// From a wake that scheduled an idle task (or, for a task that woke itself, the end of
    /// that poll) to the start of its next poll: the stamped wakes.
    pub wake_to_poll: HistogramSnapshot,
    /// How late this worker's timers fired after their deadline (every timer).
    pub timer_lateness: HistogramSnapshot,
    /// The sampling when the snapshot was taken (see [`set_timing_sampling`]).
    pub sampling: TimingSampling,
}

impl WorkerTiming {
    /// The busy time so far: the closed stretches and, while timing is on, the one still
    /// running (a worker stuck in one long poll is busy, not idle).
    fn busy(&self) -> Duration {
        // The total first (Acquire, pairing with `close_stretch`): if it already holds the
        // stretch, the stretch read next is closed (0) or a later one. A stretch closed
        // between the two loads is left out of this snapshot, never counted twice.
        let closed = self.busy_ns.load(Acquire);
        let start = self.stretch.load(Relaxed);
        let running = if start != 0 && is_timing() && is_current(start) {
            ticks_to_ns(ticks().saturating_sub(start))
        } else {
            0
        };
        Duration::from_nanos(closed.wrapping_add(running))
    }

    pub(crate) fn snapshot(&self, timer_lateness: &Histogram) -> WorkerTimingSnapshot {
        WorkerTimingSnapshot {
            busy: self.busy(),
            poll: self.poll.snapshot(),
            wake_to_poll: self.wake_to_poll.snapshot(),
            timer_lateness: timer_lateness.snapshot(),
            sampling: timing_sampling(),
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

    /// Events `every` ns apart, `n` of them, through a sampler: the sampled events' indexes.
    fn sample_events(sampling: u32, every: &dyn Fn(usize) -> u64, n: usize) -> Vec<usize> {
        // ns to ticks at the calibrated rate (calibrated first: a test calibrating while this
        // runs would change the rate under it).
        calibrate();
        let q32 = u128::from(NS_PER_TICK_Q32.load(Relaxed));
        let to_ticks = |ns: u64| ((u128::from(ns) << 32) / q32) as u64;
        let mut s = Sampler::default();
        let mut ns = 1_000_000_000u64;
        let mut sampled = Vec::new();
        for i in 0..n {
            ns += every(i);
            if s.left == 0 {
                s.sampled(to_ticks(ns), 12345, sampling);
                sampled.push(i);
            } else {
                s.left -= 1;
            }
        }
        sampled
    }

    /// `OneIn(n)`: one event in `n` on average, at gaps from 1 to `2n - 1`; `OneIn(1)`: every
    /// event.
    #[test]
    fn one_in_n_samples_at_random_gaps_of_mean_n() {
        let sampled = sample_events(8, &|_| 100, 80_000);
        assert_eq!(sampled[0], 0, "the first event is sampled");
        let n = sampled.len() as f64;
        assert!((n - 10_000.0).abs() < 500.0, "{n} sampled");
        let gaps: std::collections::BTreeSet<usize> =
            sampled.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(
            (gaps.first(), gaps.last()),
            (Some(&1), Some(&15)),
            "{gaps:?}"
        );
        assert_eq!(sample_events(1, &|_| 100, 1_000).len(), 1_000);
    }

    /// Adaptive: about one sample per `ADAPTIVE_SPACING` of events' time — every event when
    /// they are further apart, one in tens when they are 100 ns apart — and back to every
    /// event soon after the rate drops.
    #[test]
    fn adaptive_samples_about_once_per_spacing_whatever_the_rate() {
        let spacing = ADAPTIVE_SPACING.as_nanos() as f64;
        // 400,000 events 100 ns apart: 40 ms, 4,000 spacings.
        let dense = sample_events(0, &|_| 100, 400_000);
        let expected = 400_000.0 * 100.0 / spacing;
        let n = dense.len() as f64;
        assert!(
            n > expected * 0.7 && n < expected * 1.5,
            "{n} samples, {expected} expected"
        );
        // 1,000 events two spacings apart: every one.
        let sparse = 2 * ADAPTIVE_SPACING.as_nanos() as u64;
        assert_eq!(sample_events(0, &|_| sparse, 1_000).len(), 1_000);
        // Dense, then sparse from event 100,000 on: every event once the rate has been seen.
        // The gap drawn in the dense phase (at most 2 × its mean of ~100 events) runs out
        // first; the first sample after the change still saw some dense events in its gap, so
        // the gap it draws can skip a few sparse ones (its mean is the events per spacing
        // since the last sample: up to ~50 when one sparse event came among 199 dense); the
        // second sees only sparse events, and from it on the mean is 1.
        let mixed = sample_events(0, &|i| if i < 100_000 { 100 } else { sparse }, 101_000);
        let late: Vec<_> = mixed.iter().filter(|&&i| i >= 100_000).collect();
        assert!(late.len() > 790, "{} of the last 1,000 sampled", late.len());
        let second = *late[1];
        assert_eq!(
            late.len() - 1,
            101_000 - second,
            "all from the second on: {second} (first: {})",
            late[0]
        );
    }

    /// A thread's first wake is stamped, with the clock.
    #[test]
    fn a_threads_first_wake_is_stamped() {
        std::thread::spawn(|| assert!(sample_wake() > 0))
            .join()
            .unwrap();
    }

    /// Busy time is the closed stretches, from the stamp that opened one to its close; with no
    /// stretch open, a poll start says so and closing adds nothing.
    #[test]
    fn busy_time_adds_up_closed_run_stretches() {
        calibrate();
        let w = WorkerTiming::default();
        assert_eq!(w.poll_starts(), (true, false), "no stretch open yet");
        assert!(!w.skip_poll());
        w.open_stretch(ticks());
        assert!(w.poll_starts().1);
        std::thread::sleep(Duration::from_millis(20));
        w.close_stretch();
        w.close_stretch();
        let busy = w.busy_ns.load(Relaxed);
        assert!((20_000_000..200_000_000).contains(&busy), "{busy} ns");
        assert!(!w.poll_starts().1);
        w.open_stretch(ticks());
        std::thread::sleep(Duration::from_millis(5));
        w.close_stretch();
        assert!(w.busy_ns.load(Relaxed) >= busy + 5_000_000);
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
