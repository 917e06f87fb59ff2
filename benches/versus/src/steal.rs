//! Hypervisor steal time: the share of CPU time the host gave to other guests while a run
//! was going (the `steal` column of `/proc/stat`'s `cpu` line). On a shared VM this is the
//! noise a load average does not show: the guest looks idle but its vCPUs wait for the host.
//! A run with a few percent of steal spreads A/B rounds far wider than a 3 % budget.

/// Busy-or-not CPU time of the whole machine so far, in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuTimes {
    /// All columns of the `cpu` line (user … steal; guest time is already inside user).
    pub total: u64,
    /// The `steal` column.
    pub steal: u64,
}

/// Parses the `cpu` line of a `/proc/stat` text.
pub fn parse(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let cols: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|c| c.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is
    // counted in user/nice already, so only the first eight add up to the total.
    let steal = *cols.get(7)?;
    Some(CpuTimes {
        total: cols.iter().take(8).sum(),
        steal,
    })
}

/// The machine's CPU times now (`None` off Linux).
pub fn now() -> Option<CpuTimes> {
    parse(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// Steal as a percentage of all CPU time between two readings.
pub fn percent(before: CpuTimes, after: CpuTimes) -> Option<f64> {
    let total = after.total.checked_sub(before.total)?;
    let steal = after.steal.checked_sub(before.steal)?;
    (total > 0).then(|| 100.0 * steal as f64 / total as f64)
}

/// Above this much steal a run's figures are labelled noisy.
pub const NOISY_PERCENT: f64 = 2.0;

/// Steal since `before`, as the reports print it.
pub fn describe(before: Option<CpuTimes>) -> String {
    match before.zip(now()).and_then(|(b, a)| percent(b, a)) {
        Some(p) if p > NOISY_PERCENT => format!(
            "hypervisor steal {p:.1} % of CPU time — the host ran other guests on this \
             machine's CPUs: treat the figures as noisy"
        ),
        Some(p) => format!("hypervisor steal {p:.1} % of CPU time"),
        None => "hypervisor steal not measured (no /proc/stat)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "cpu  320408 0 38230 95880 1083 0 2172 6601 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
    const B: &str = "cpu  321215 0 38315 97227 1110 0 2172 6713 0 0\n";

    #[test]
    fn steal_is_the_eighth_column_over_the_first_eight() {
        let a = parse(A).unwrap();
        assert_eq!(a.steal, 6601);
        assert_eq!(a.total, 320408 + 38230 + 95880 + 1083 + 2172 + 6601);
        let b = parse(B).unwrap();
        // 807 user + 85 system + 1347 idle + 27 iowait + 112 steal = 2378 ticks.
        let p = percent(a, b).unwrap();
        assert!((p - 100.0 * 112.0 / 2378.0).abs() < 1e-9, "{p}");
    }

    #[test]
    fn malformed_or_backwards_readings_give_nothing() {
        assert_eq!(parse("intr 1 2 3\n"), None);
        assert_eq!(parse("cpu  1 2 x 4 5 6 7 8\n"), None);
        assert_eq!(parse("cpu  1 2 3\n"), None);
        let (a, b) = (parse(A).unwrap(), parse(B).unwrap());
        assert_eq!(percent(b, a), None);
        assert_eq!(percent(a, a), None);
    }
}
