//! Medians, ranges, percentiles and CPU time.

/// The median of `values` (mean of the two middle ones for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The `p`-th percentile (0..=1) of `values`, nearest rank.
pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let idx = ((values.len() as f64 * p).ceil() as usize).clamp(1, values.len()) - 1;
    values[idx]
}

/// user+sys CPU seconds of this whole process, all threads (`getrusage(RUSAGE_SELF)`).
pub fn process_cpu() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass, which is a valid, zeroed rusage.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// One side of a comparison: a statistic measured once per run.
///
/// The cell shows `value()` with the min–max over runs. `value()` is the median of the per-run
/// figures, unless `pooled` is set: then it is that statistic computed over all samples of all
/// runs (how a p99 must be computed: the median of per-run p99s hides the bad runs).
#[derive(Debug, Clone, Default)]
pub struct Runs {
    pub per_run: Vec<f64>,
    pub pooled: Option<f64>,
    /// Number of samples behind `pooled` (0 when not pooled).
    pub samples: usize,
}

impl Runs {
    pub fn push(&mut self, v: f64) {
        self.per_run.push(v);
    }
    pub fn is_empty(&self) -> bool {
        self.per_run.is_empty()
    }
    pub fn value(&self) -> f64 {
        self.pooled.unwrap_or_else(|| self.median())
    }
    pub fn median(&self) -> f64 {
        median(&self.per_run)
    }
    pub fn min(&self) -> f64 {
        self.per_run.iter().copied().fold(f64::INFINITY, f64::min)
    }
    pub fn max(&self) -> f64 {
        self.per_run
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
    }
}

/// Latency samples of several runs of one configuration: per-run medians, and the p99 over
/// every sample of every run (with the per-run p99s as its range).
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    all: Vec<f64>,
    pub median: Runs,
    p99_runs: Runs,
    /// CPU time per operation of each run, same unit as the samples.
    pub cpu: Runs,
}

impl Latencies {
    /// Adds one run's samples and the CPU time per operation it cost.
    pub fn add_run(&mut self, mut samples: Vec<f64>, cpu_per_op: f64) {
        self.median.push(percentile(&mut samples, 0.5));
        self.p99_runs.push(percentile(&mut samples, 0.99));
        self.all.extend_from_slice(&samples);
        self.cpu.push(cpu_per_op);
    }
    /// The p99 over all samples of all runs; its range is the per-run p99s.
    pub fn p99(&self) -> Runs {
        let mut all = self.all.clone();
        Runs {
            per_run: self.p99_runs.per_run.clone(),
            pooled: Some(percentile(&mut all, 0.99)),
            samples: all.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_is_pooled_over_all_samples_not_a_median_of_runs() {
        let mut l = Latencies::default();
        // Two quiet runs and one with a long tail: the median of per-run p99s would be 1.
        for _ in 0..2 {
            l.add_run(vec![1.0; 100], 0.5);
        }
        let mut bad = vec![1.0; 90];
        bad.extend(vec![50.0; 10]);
        l.add_run(bad, 0.5);
        let p99 = l.p99();
        assert_eq!(p99.samples, 300);
        assert_eq!(p99.value(), 50.0);
        assert_eq!(p99.median(), 1.0);
        assert_eq!((p99.min(), p99.max()), (1.0, 50.0));
        assert_eq!(l.median.value(), 1.0);
    }

    #[test]
    fn median_and_percentile() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 0.99), 99.0);
        assert_eq!(percentile(&mut v, 0.5), 50.0);
    }

    #[test]
    fn process_cpu_counts_a_busy_loop() {
        // Spin until 20 ms of CPU time show up (wall time varies on a loaded machine); a clock
        // that does not count this thread's work never gets there.
        let before = process_cpu();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while process_cpu() - before < 0.02 && t.elapsed() < std::time::Duration::from_secs(20) {
            for _ in 0..10_000 {
                x = x.wrapping_add(std::hint::black_box(1));
            }
        }
        assert!(x > 0);
        assert!(process_cpu() - before >= 0.02);
    }
}
