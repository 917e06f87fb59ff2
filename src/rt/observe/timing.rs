//! Timing (behind the process switch [`set_timing`]): per-worker busy time, poll-time and
//! wake→poll latency histograms, and per-worker timer lateness — from `Instant` reads taken
//! only while the switch is on.
//!
//! Histograms have one bucket per power of two of nanoseconds, so recording is an index
//! computation and two relaxed atomic adds, and quantiles are good to a factor of two.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

static TIMING: AtomicBool = AtomicBool::new(false);

/// Turns timing on or off for the whole process.
pub fn set_timing(on: bool) {
    TIMING.store(on, Relaxed);
}

/// True while timing is on.
#[inline]
pub fn is_timing() -> bool {
    TIMING.load(Relaxed)
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
    pub(crate) fn record_owned(&self, d: Duration) {
        let ns = d.as_nanos().min(u128::from(u64::MAX)) as u64;
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

/// One worker's timing, written by its thread.
#[derive(Default)]
pub(crate) struct WorkerTiming {
    pub(crate) busy_ns: AtomicU64,
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
            busy: Duration::from_nanos(self.busy_ns.load(Relaxed)),
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
