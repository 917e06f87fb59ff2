//! `versus --obs-ab ON_TARGET_DIR [--runs N] [--secs S] [--only runtime,http,e2e] [--layouts DIR]`:
//! the observatory's cost gate (issue 15) as interleaved A/B runs.
//!
//! The running binary is side A (built without the feature, e.g. `target/release/versus`);
//! `ON_TARGET_DIR/release/versus` is side B (`CARGO_TARGET_DIR=target/obs cargo build --release
//! -p versus --features observatory`, and `-p scraipe --features observatory` for the e2e row's
//! `scraipe`). Every round runs each row once per configuration, in turn — off, counters on
//! (always on with the feature), + timing (`VERSUS_OBSERVE=timing`), + trace, starting with a
//! different one each round — so drifting machine load hits all sides alike. Each cell gives the
//! median of the rounds, the cost as median time per op (on) / median time per op (off) − 1, and
//! a 95 % confidence interval for the median of the same ratio taken round by round (each
//! round's on against that round's off; [`median_ci`]).
//!
//! Gate rows (the budget), judged on that interval and listed in the last column — met
//! when it lies within the budget, not met when it lies above, *unsettled* when it straddles
//! the budget (this run cannot tell: the machine's noise is larger than the margin): counters on
//! the runtime rows spawn_many_local, yield_many, chained_spawn, ping_pong at 1 and 2 workers
//! (≤ 3 %); timing on ping_pong and the 1 KiB HTTP row (≤ 3 %); trace on the HTTP and
//! end-to-end rows (≤ 5 %).
//!
//! `--layouts DIR` runs several links of each side in turn (see [`Layouts`]: one link's code
//! placement moves these rows more than their budgets); `--instructions` counts instructions
//! per op under callgrind instead of timing ([`run_instructions`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One configuration of one side.
#[derive(Clone, Copy, PartialEq)]
enum Config {
    Off,
    Counters,
    Timing,
    Trace,
}

impl Config {
    fn name(self) -> &'static str {
        match self {
            Config::Off => "off",
            Config::Counters => "counters",
            Config::Timing => "+timing",
            Config::Trace => "+trace",
        }
    }
    fn observe(self) -> &'static str {
        match self {
            Config::Timing => "timing",
            Config::Trace => "trace",
            _ => "",
        }
    }
}

/// A row: what it runs and the configurations its gate needs.
struct Row {
    name: String,
    configs: Vec<Config>,
    /// The budget for some of `configs`: at most this many per cent over off.
    budgets: Vec<(Config, f64)>,
    /// Time per op in µs, per configuration (index as in `configs`), one entry per round
    /// (`None`: that run failed).
    samples: Vec<Vec<Option<f64>>>,
    /// Runs one configuration in one round (the round picks the layout, see [`Layouts`]).
    run: Box<dyn Fn(Config, usize) -> Result<f64, String>>,
}

/// The cost of `on` over `off` in per cent: the ratio of the medians, and a 95 % confidence
/// interval for the median of the round-by-round costs (each round's `on` against the same
/// round's `off`, rounds where both ran; see [`median_ci`]), `None` with fewer than 6 such rounds.
fn cost(off: &[Option<f64>], on: &[Option<f64>]) -> (f64, Option<(f64, f64)>) {
    let by_round: Vec<f64> = off
        .iter()
        .zip(on)
        .filter_map(|(a, b)| Some((b.as_ref()? / a.as_ref()? - 1.0) * 100.0))
        .filter(|r| r.is_finite())
        .collect();
    let ci = median_ci(&by_round).map(|(lo, hi, _)| (lo, hi));
    ((median(on) / median(off) - 1.0) * 100.0, ci)
}

/// A distribution-free confidence interval of at least 95 % for the median of `v`, from its
/// order statistics: with `n` values, the `k`-th smallest and the `k`-th largest, where `k` is
/// the largest for which a fair coin gives fewer than `k` heads in `n` tosses with probability
/// at most 2.5 % (the chance that the true median lies below the `k`-th smallest). No
/// assumption about the noise's shape (it is not normal here: a round that a neighbour's burst
/// hits is off by 50 %, not by a few sigma). Returns (low, high, coverage); `None` below 6
/// values (5 tosses give no heads 3.1 % of the time: no interval reaches 95 %).
fn median_ci(v: &[f64]) -> Option<(f64, f64, f64)> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    // P(X <= j) for X ~ Binomial(n, 1/2), j = 0, 1, ...
    let mut below = Vec::with_capacity(n + 1);
    let (mut choose, mut sum) = (1.0f64, 0.0f64);
    for j in 0..=n {
        if j > 0 {
            choose = choose * (n + 1 - j) as f64 / j as f64;
        }
        sum += choose / 2f64.powi(n as i32);
        below.push(sum);
    }
    // The largest k with P(X <= k - 1) <= 2.5 %.
    let k = (1..=n / 2).take_while(|&k| below[k - 1] <= 0.025).last()?;
    Some((v[k - 1], v[n - k], 1.0 - 2.0 * below[k - 1]))
}

/// A budget's verdict.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Verdict {
    /// The whole confidence interval is within the budget.
    Met,
    /// The whole confidence interval is over it.
    NotMet,
    /// The interval straddles the budget (or there were too few rounds for one): this run
    /// cannot tell.
    Unsettled,
    /// The row does not run that configuration.
    NotRun,
}

/// Each budget of a row, judged on the confidence interval of its cost ([`cost`]).
fn verdicts(row: &Row) -> Vec<(Config, f64, Verdict)> {
    row.budgets
        .iter()
        .map(|&(config, budget)| {
            let verdict = match row.configs.iter().position(|c| *c == config) {
                None => Verdict::NotRun,
                Some(i) => match cost(&row.samples[0], &row.samples[i]).1 {
                    Some((_, hi)) if hi <= budget => Verdict::Met,
                    Some((lo, _)) if lo > budget => Verdict::NotMet,
                    _ => Verdict::Unsettled,
                },
            };
            (config, budget, verdict)
        })
        .collect()
}

/// The gate column: "counters ≤ 3 %: yes, +timing ≤ 3 %: **no**, +trace ≤ 5 %: unsettled".
fn verdict_cell(verdicts: &[(Config, f64, Verdict)]) -> String {
    verdicts
        .iter()
        .map(|(config, budget, verdict)| {
            let word = match verdict {
                Verdict::Met => "yes",
                Verdict::NotMet => "**no**",
                Verdict::Unsettled => "unsettled",
                Verdict::NotRun => "not run",
            };
            format!("{} ≤ {budget} %: {word}", config.name())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The median of the rounds that ran (NaN when none did).
fn median(v: &[Option<f64>]) -> f64 {
    let ran: Vec<f64> = v
        .iter()
        .flatten()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    crate::stats::median(&ran)
}

/// How long a child of a `secs`-second run may take before it is taken for hung and killed
/// (the round then records a failed run): start-up and warm-up included, generously.
fn deadline(secs: f64) -> Duration {
    Duration::from_secs_f64((secs * 20.0).max(60.0))
}

/// Runs `bin` with `args` and `VERSUS_OBSERVE` / `SCRAIPE_OBSERVE` set for `config`, killing
/// it after `limit`; returns stdout's last line.
fn run_child(
    bin: &Path,
    args: &[&str],
    config: Config,
    cpus: Option<&str>,
    limit: Duration,
) -> Result<String, String> {
    let mut cmd = match cpus {
        Some(c) if crate::have("taskset") => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(c).arg(bin);
            cmd
        }
        _ => Command::new(bin),
    };
    cmd.args(args)
        .env("VERSUS_OBSERVE", config.observe())
        .env("SCRAIPE_OBSERVE", config.observe());
    let out = crate::child::output_within(&mut cmd, limit)
        .map_err(|e| format!("{} {args:?}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {args:?} failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .to_string())
}

/// The builds each side runs: one pair of `versus` binaries (off, on), or several pairs of the
/// same code linked with different function orders (`--layouts DIR`), taken in turn by round.
///
/// Why several: two builds of the same runtime code whose harness differed ran yield_many 1w
/// 10 to 18 % apart with the same instructions per op (callgrind: 79,946,411 and 79,946,263), and
/// three builds of one source linked with `lld --shuffle-sections` spread 17 to 20 % on
/// yield_many and chained_spawn at 1 worker — code placement, more than the 3 % budgets. Pooling
/// the rounds of several layouts per side judges the code, not one link's luck.
#[derive(Clone)]
struct Layouts(Vec<(PathBuf, PathBuf)>);

impl Layouts {
    /// `off-1`, `on-1`, `off-2`, `on-2`, … in `dir`, as `benches/versus/layouts.sh` leaves them.
    fn from_dir(dir: &Path) -> Result<Layouts, String> {
        let mut pairs = Vec::new();
        for k in 1.. {
            let (off, on) = (dir.join(format!("off-{k}")), dir.join(format!("on-{k}")));
            if !off.exists() || !on.exists() {
                break;
            }
            pairs.push((off, on));
        }
        if pairs.is_empty() {
            return Err(format!(
                "{}: no off-1 and on-1 (build them with benches/versus/layouts.sh)",
                dir.display()
            ));
        }
        Ok(Layouts(pairs))
    }

    /// The binary of `config`'s side in `round`.
    fn bin(&self, config: Config, round: usize) -> PathBuf {
        let (off, on) = &self.0[round % self.0.len()];
        if config == Config::Off {
            off.clone()
        } else {
            on.clone()
        }
    }
}

/// The runtime rows' benches (each at 1 and 2 workers).
const RUNTIME_BENCHES: [&str; 4] = [
    "spawn_many_local",
    "yield_many",
    "chained_spawn",
    "ping_pong",
];

/// The configurations a runtime row runs: off and counters, and timing on ping_pong.
fn runtime_configs(bench: &str) -> Vec<Config> {
    let mut configs = vec![Config::Off, Config::Counters];
    if bench == "ping_pong" {
        configs.push(Config::Timing);
    }
    configs
}

/// `ON_TARGET_DIR/release/versus`; exits with how to build it when it is missing.
fn on_versus(on_dir: &str) -> PathBuf {
    let on = PathBuf::from(on_dir).join("release/versus");
    if !on.exists() {
        eprintln!(
            "versus --obs-ab: {} not found (build it with CARGO_TARGET_DIR={on_dir} cargo build --release -p versus --features observatory)",
            on.display()
        );
        std::process::exit(2);
    }
    on
}

pub fn run(on_dir: &str, runs: usize, secs: f64, only: Option<Vec<String>>, layouts: Option<&str>) {
    let wanted = |g: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == g));
    let off_versus = std::env::current_exe().expect("current exe");
    let off_dir = off_versus.parent().expect("exe dir").to_path_buf();
    let on_versus = on_versus(on_dir);
    let layouts = match layouts {
        None => Layouts(vec![(off_versus, on_versus)]),
        Some(dir) => Layouts::from_dir(Path::new(dir)).unwrap_or_else(|e| {
            eprintln!("versus --obs-ab --layouts: {e}");
            std::process::exit(2);
        }),
    };
    let n_layouts = layouts.0.len();
    let bin = move |c: Config, round: usize| layouts.bin(c, round);
    let secs_s = format!("{secs}");
    let mut rows: Vec<Row> = Vec::new();
    if wanted("runtime") {
        for bench in RUNTIME_BENCHES {
            for workers in [1usize, 2] {
                let configs = runtime_configs(bench);
                // Every configuration but off has a 3 % budget on these rows.
                let budgets = configs[1..].iter().map(|&c| (c, 3.0)).collect();
                let (bin, secs_s) = (bin.clone(), secs_s.clone());
                rows.push(Row {
                    name: format!("{bench} {workers}w"),
                    samples: vec![Vec::new(); configs.len()],
                    configs,
                    budgets,
                    run: Box::new(move |c, round| {
                        let w = workers.to_string();
                        let args = ["--child", "loop", bench, &w, "ours", &secs_s];
                        let line = run_child(&bin(c, round), &args, c, None, deadline(secs))?;
                        let n: f64 = line
                            .trim()
                            .parse()
                            .map_err(|_| format!("loop printed {line:?}"))?;
                        Ok(secs * 1e6 / n)
                    }),
                });
            }
        }
    }
    // HTTP and e2e need a server that is the same for every side: nginx when installed, else
    // the feature-off binary's demo server.
    let mut servers = Vec::new();
    if wanted("http") {
        let server = crate::http::start_nginx()
            .or_else(|e| {
                eprintln!("  nginx: {e}; using the demo server");
                crate::http::start_demo_server()
            })
            .expect("an HTTP server starts");
        let url = format!("{}/bytes/1024", server.base);
        let name = format!("GET 1 KiB, {} (1w client, 64 conns)", server.name);
        servers.push(server);
        let (bin, secs_s) = (bin.clone(), secs_s.clone());
        rows.push(Row {
            name,
            configs: vec![Config::Off, Config::Counters, Config::Timing, Config::Trace],
            budgets: vec![(Config::Timing, 3.0), (Config::Trace, 5.0)],
            samples: vec![Vec::new(); 4],
            run: Box::new(move |c, round| {
                let args = ["--child", "http-client", "ours", "1", &url, &secs_s, "64"];
                let line = run_child(&bin(c, round), &args, c, Some("0"), deadline(secs))?;
                let v: serde_json::Value =
                    serde_json::from_str(&line).map_err(|_| format!("client printed {line:?}"))?;
                if v["failed"].as_u64() != Some(0) {
                    return Err(format!("requests failed: {line}"));
                }
                Ok(1e6 / v["rps"].as_f64().unwrap_or(f64::NAN))
            }),
        });
    }
    if wanted("e2e") {
        let off_cli = off_dir.join("scraipe");
        let on_cli = PathBuf::from(on_dir).join("release/scraipe");
        if !off_cli.exists() || !on_cli.exists() {
            eprintln!(
                "  e2e skipped: needs {} and {} (cargo build --release --bin scraipe, with and without --features observatory)",
                off_cli.display(),
                on_cli.display()
            );
        } else {
            const PAGES: usize = 5_000;
            let server = crate::http::start_demo_server_with(&["plain", &PAGES.to_string()])
                .expect("the demo server starts");
            let links =
                std::env::temp_dir().join(format!("versus-obs-ab-{}.txt", std::process::id()));
            let list: Vec<String> = (0..PAGES)
                .map(|i| format!("{}/page/{i}", server.base))
                .collect();
            std::fs::write(&links, list.join("\n")).expect("links file");
            servers.push(server);
            rows.push(Row {
                name: format!("e2e scrape {PAGES} pages (1 thread, 64 concurrent)"),
                configs: vec![Config::Off, Config::Counters, Config::Trace],
                budgets: vec![(Config::Trace, 5.0)],
                samples: vec![Vec::new(); 3],
                run: Box::new(move |c, _round| {
                    let cli = if c == Config::Off { &off_cli } else { &on_cli };
                    let started = Instant::now();
                    let mut cmd = if crate::have("taskset") {
                        let mut cmd = Command::new("taskset");
                        cmd.args(["-c", "0"]).arg(cli);
                        cmd
                    } else {
                        Command::new(cli)
                    };
                    cmd.args(["scrape", "--threads", "1", "--output", "/dev/null"])
                        .args(["--analyzer", "none", "--concurrency", "64", "--input"])
                        .arg(&links)
                        .env("SCRAIPE_OBSERVE", c.observe());
                    // 5,000 local pages take under a second; two minutes is hung.
                    let out = crate::child::output_within(&mut cmd, Duration::from_secs(120))
                        .map_err(|e| format!("e2e run: {e}"))?;
                    let elapsed = started.elapsed().as_secs_f64();
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    match crate::e2e::parse_summary(&stderr) {
                        Some((ok, total, _))
                            if out.status.success() && ok == PAGES && total == PAGES =>
                        {
                            Ok(elapsed * 1e6 / PAGES as f64)
                        }
                        _ => Err(format!("e2e run failed: {}", stderr.trim())),
                    }
                }),
            });
        }
    }
    let started = Instant::now();
    let steal_before = crate::steal::now();
    for round in 0..runs {
        eprintln!(
            "round {}/{runs} ({:.0} s)",
            round + 1,
            started.elapsed().as_secs_f64()
        );
        for row in rows.iter_mut() {
            // Each round starts with a different configuration: the first run after another
            // row pays for what that row left behind (the e2e row's first run after the HTTP
            // row's 64 connections took twice as long, whichever side it was).
            let n = row.configs.len();
            for i in (0..n).map(|k| (k + round) % n) {
                let c = row.configs[i];
                let v = (row.run)(c, round);
                if let Err(e) = &v {
                    eprintln!("  {} {}: {e}", row.name, c.name());
                }
                row.samples[i].push(v.ok());
            }
        }
    }
    drop(servers);
    println!(
        "observatory cost, interleaved A/B: {runs} rounds, {secs} s per runtime/HTTP run, {}, median time per op (µs), load average {:?}, {}\n",
        match n_layouts {
            1 => "one build per side".to_string(),
            n => format!("{n} link layouts per side taken in turn (the e2e row: one build)"),
        },
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        crate::steal::describe(steal_before)
    );
    println!("Each cell: median time per op (µs), the cost against off (ratio of the medians), and in brackets a 95 % confidence interval for the median of the round-by-round costs (each round's on against the same round's off; distribution-free, from their order statistics; none below 6 rounds). A budget is met when the whole interval is within it, not met when the whole interval is over it, and unsettled when the interval straddles it: this run cannot tell.\n");
    println!("| row | off | counters | + timing | + trace | gate |");
    println!("|---|---:|---:|---:|---:|---|");
    let (mut met, mut not_met, mut budgets) = (0, 0, 0);
    for row in &rows {
        let mut cells = vec![format!("{:.3}", median(&row.samples[0]))];
        for c in [Config::Counters, Config::Timing, Config::Trace] {
            match row.configs.iter().position(|x| *x == c) {
                Some(i) => {
                    let (cost, ci) = cost(&row.samples[0], &row.samples[i]);
                    let ci = match ci {
                        Some((lo, hi)) => format!(" [{lo:+.1} … {hi:+.1}]"),
                        None => String::new(),
                    };
                    cells.push(format!("{:.3} ({cost:+.1} %{ci})", median(&row.samples[i])));
                }
                None => cells.push("—".into()),
            }
        }
        let verdicts = verdicts(row);
        budgets += verdicts.iter().filter(|v| v.2 != Verdict::NotRun).count();
        met += verdicts.iter().filter(|v| v.2 == Verdict::Met).count();
        not_met += verdicts.iter().filter(|v| v.2 == Verdict::NotMet).count();
        println!(
            "| {} | {} | {} |",
            row.name,
            cells.join(" | "),
            verdict_cell(&verdicts)
        );
    }
    println!(
        "\nOf {budgets} budgets: {met} met, {not_met} not met, {} unsettled.",
        budgets - met - not_met
    );
}

/// The total callgrind reports in its `Collected : N` line (stderr of a valgrind run).
fn collected(stderr: &str) -> Option<u64> {
    stderr
        .lines()
        .find_map(|l| l.split_once("Collected :"))
        .and_then(|(_, n)| n.trim().parse().ok())
}

/// Instructions per op from two runs of different lengths (`(ops, instructions)` each): the
/// difference cancels what both runs pay once (start-up, building the runtime, shutdown).
fn per_op(short: (u64, u64), long: (u64, u64)) -> Result<f64, String> {
    if long.0 <= short.0 || long.1 <= short.1 {
        return Err(format!(
            "the longer run did not do more (ops {} → {}, instructions {} → {})",
            short.0, long.0, short.1, long.1
        ));
    }
    Ok((long.1 - short.1) as f64 / (long.0 - short.0) as f64)
}

/// One runtime row's loop under callgrind for `secs` of (slowed-down) wall time: its ops and
/// the instructions all its threads executed.
fn callgrind_loop(
    bin: &Path,
    bench: &str,
    workers: usize,
    config: Config,
    secs: &str,
) -> Result<(u64, u64), String> {
    let w = workers.to_string();
    let mut cmd = Command::new("valgrind");
    cmd.args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(bin)
        .args(["--child", "loop", bench, &w, "ours", secs])
        .env("VERSUS_OBSERVE", config.observe());
    // Valgrind runs the child some 50 times slower, start-up included: 20 minutes is hung.
    let out = crate::child::output_within(&mut cmd, Duration::from_secs(1200))
        .map_err(|e| format!("valgrind {bench} {w}w: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("valgrind {} failed: {stderr}", bin.display()));
    }
    let ops = stdout
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| format!("loop printed {stdout:?}"))?;
    let instructions = collected(&stderr).ok_or("no `Collected :` line from callgrind")?;
    Ok((ops, instructions))
}

/// `versus --obs-ab ON_TARGET_DIR --instructions`: the runtime rows' instructions per op,
/// off against counters (and + timing on ping_pong), counted by callgrind.
///
/// Why: on a shared VM the timed gate's rounds spread ±10–30 %, and two builds of the *same*
/// runtime code whose harness differs measured 10 % apart on yield_many at 1 worker (code
/// layout) — more than the 3 % budgets. Instruction counts do not move with the machine's
/// load or the host's steal; they do not see cache misses or contention either, and extra
/// register instructions retire alongside the rest, so they are the work added, not the gate.
/// Valgrind runs one thread at a time: the 2-worker rows count what both workers executed,
/// parking and stealing included. Timing samples polls by elapsed time, so under valgrind's
/// slowdown it times nearly every poll: its column overstates it.
pub fn run_instructions(on_dir: &str) {
    if !crate::have("valgrind") {
        eprintln!("versus --obs-ab --instructions: valgrind not found (apt-get install valgrind)");
        std::process::exit(2);
    }
    let off = std::env::current_exe().expect("current exe");
    let on = on_versus(on_dir);
    println!("observatory cost in instructions (callgrind, all threads): per op, the difference of a 1 s and a 3 s run under valgrind (timing samples by elapsed time, so under valgrind it times nearly every poll)\n");
    println!("| row | off | counters | + timing |");
    println!("|---|---:|---:|---:|");
    for bench in RUNTIME_BENCHES {
        for workers in [1usize, 2] {
            let configs = runtime_configs(bench);
            let counts: Vec<Result<f64, String>> = configs
                .iter()
                .map(|&c| {
                    let bin = if c == Config::Off { &off } else { &on };
                    let short = callgrind_loop(bin, bench, workers, c, "1")?;
                    let long = callgrind_loop(bin, bench, workers, c, "3")?;
                    per_op(short, long)
                })
                .collect();
            let base = counts[0].as_ref().ok().copied();
            let mut cells = Vec::new();
            for (i, n) in counts.iter().enumerate() {
                cells.push(match (n, base) {
                    (Err(e), _) => {
                        eprintln!("  {bench} {workers}w {}: {e}", configs[i].name());
                        "failed".to_string()
                    }
                    (Ok(n), Some(b)) if i > 0 => {
                        format!("{:.0} ({:+.1} %)", n, (n / b - 1.0) * 100.0)
                    }
                    (Ok(n), _) => format!("{n:.0}"),
                });
            }
            if cells.len() < 3 {
                cells.push("—".into());
            }
            println!("| {bench} {workers}w | {} |", cells.join(" | "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_the_ratio_of_medians_with_a_confidence_interval_of_the_rounds() {
        let off = [Some(100.0), Some(100.0), Some(100.0), None];
        let on = [Some(103.0), Some(110.0), Some(101.0), Some(500.0)];
        // Medians 100 (three runs) and 106.5 (four: the failed off run drops the fourth round
        // from the paired costs, not its on value from the median); three paired rounds are
        // too few for an interval.
        let (cost_, ci) = cost(&off, &on);
        assert!((cost_ - 6.5).abs() < 1e-9, "{cost_}");
        assert_eq!(ci, None);
        let off = [Some(100.0); 9];
        let on = [1.0, 9.0, 2.0, 8.0, 3.0, 7.0, 4.0, 6.0, 5.0].map(|x| Some(100.0 + x));
        let (cost_, ci) = cost(&off, &on);
        assert!((cost_ - 5.0).abs() < 1e-9, "{cost_}");
        let (lo, hi) = ci.unwrap();
        assert!(
            (lo - 2.0).abs() < 1e-9 && (hi - 8.0).abs() < 1e-9,
            "{lo} {hi}"
        );
    }

    #[test]
    fn the_median_interval_takes_the_order_statistics_a_fair_coin_allows() {
        let v = |n: usize| (1..=n).map(|i| i as f64).collect::<Vec<_>>();
        // Five tosses: no heads 1/32 = 3.1 % > 2.5 %; no interval reaches 95 %.
        assert_eq!(median_ci(&v(5)), None);
        // Six: [1st, 6th], 1 - 2/64 = 96.9 %.
        let (lo, hi, cover) = median_ci(&v(6)).unwrap();
        assert_eq!((lo, hi), (1.0, 6.0));
        assert!((cover - (1.0 - 2.0 / 64.0)).abs() < 1e-12, "{cover}");
        // Nine: P(X <= 1) = 10/512 = 1.95 %, P(X <= 2) = 46/512 = 9 %: [2nd, 8th], 96.1 %.
        let (lo, hi, cover) = median_ci(&v(9)).unwrap();
        assert_eq!((lo, hi), (2.0, 8.0));
        assert!((cover - (1.0 - 20.0 / 512.0)).abs() < 1e-12, "{cover}");
        // Fifteen: P(X <= 3) = 1.76 %, P(X <= 4) = 5.9 %: [4th, 12th]. Order does not matter.
        let mut w = v(15);
        w.reverse();
        let (lo, hi, _) = median_ci(&w).unwrap();
        assert_eq!((lo, hi), (4.0, 12.0));
    }

    #[test]
    fn instructions_per_op_are_the_difference_of_two_runs() {
        let stderr = "==1== Events    : Ir\n==1== Collected : 46022313\n==1==\n==1== I   refs:      46,022,313\n";
        assert_eq!(collected(stderr), Some(46_022_313));
        assert_eq!(collected("==1== I   refs: 5\n"), None);
        // 10 ops cost 1,000 more instructions than 4: 166.67 per op, start-up cancelled.
        let n = per_op((4, 9_000), (10, 10_000)).unwrap();
        assert!((n - 1000.0 / 6.0).abs() < 1e-9, "{n}");
        assert!(per_op((10, 9_000), (10, 10_000)).is_err());
        assert!(per_op((4, 9_000), (10, 9_000)).is_err());
    }

    #[test]
    fn layouts_are_found_in_pairs_and_taken_in_turn_by_round() {
        let dir = std::env::temp_dir().join(format!("versus-layouts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(Layouts::from_dir(&dir).is_err(), "an empty directory");
        for name in ["off-1", "on-1", "off-2", "on-2", "off-3"] {
            std::fs::write(dir.join(name), "").unwrap();
        }
        // off-3 has no on-3: two pairs.
        let l = Layouts::from_dir(&dir).unwrap();
        assert_eq!(l.0.len(), 2);
        assert_eq!(l.bin(Config::Off, 0), dir.join("off-1"));
        assert_eq!(l.bin(Config::Counters, 0), dir.join("on-1"));
        assert_eq!(l.bin(Config::Trace, 1), dir.join("on-2"));
        assert_eq!(l.bin(Config::Off, 2), dir.join("off-1"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn verdicts_judge_each_budget_on_the_interval() {
        let rounds = |off: f64, on: &[f64]| {
            vec![
                vec![Some(off); on.len()],
                on.iter().map(|x| Some(*x)).collect::<Vec<_>>(),
            ]
        };
        let mut samples = rounds(100.0, &[101.0, 102.0, 101.5, 102.5, 100.5, 102.0]);
        // +timing: every round +10 %.
        samples.push(vec![Some(110.0); 6]);
        // +trace: rounds from -4 % to +9 %, median +2.5 %: inside 5 % but not settled.
        samples.push([96.0, 109.0, 101.0, 104.0, 99.0, 108.0].map(Some).to_vec());
        let row = Row {
            name: "ping_pong 1w".into(),
            configs: vec![Config::Off, Config::Counters, Config::Timing, Config::Trace],
            budgets: vec![
                (Config::Counters, 3.0),
                (Config::Timing, 3.0),
                (Config::Trace, 5.0),
            ],
            samples,
            run: Box::new(|_, _| Ok(0.0)),
        };
        let v = verdicts(&row);
        assert_eq!(
            v.iter().map(|x| x.2).collect::<Vec<_>>(),
            [Verdict::Met, Verdict::NotMet, Verdict::Unsettled]
        );
        assert_eq!(
            verdict_cell(&v),
            "counters ≤ 3 %: yes, +timing ≤ 3 %: **no**, +trace ≤ 5 %: unsettled"
        );
        // A configuration the row does not run, and too few rounds for an interval.
        let row = Row {
            configs: vec![Config::Off, Config::Counters],
            samples: rounds(100.0, &[101.0, 101.0]),
            ..row
        };
        assert_eq!(
            verdicts(&row).iter().map(|x| x.2).collect::<Vec<_>>(),
            [Verdict::Unsettled, Verdict::NotRun, Verdict::NotRun]
        );
    }
}
