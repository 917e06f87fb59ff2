//! `cargo run --release -p versus -- [--quick] [--runs N] [--json FILE] [--only GROUP,...]`
//! `cargo run --release -p versus -- --readme-table FILE.json [--readme README.md]`
//! `cargo run --release -p versus -- --compare BEFORE.json AFTER.json`
//!
//! Measures scraipe against tokio, reqwest, hyper (and Python Scraipe when it can be installed)
//! on this machine, in one run, and prints a markdown table: the median of several runs with
//! the min–max range (p99s over all samples), the ratio ours/theirs and CPU time per operation.
//! The README's table is rendered from the JSON a run writes. See BENCHMARKS.md for what each
//! row measures.

mod bridge;
mod child;
mod e2e;

mod http;
mod memory;
mod obs_ab;
mod python;
mod report;
mod runtime;
mod stats;
mod steal;
mod timer;

use std::time::Instant;

pub struct Settings {
    pub quick: bool,
    /// Runs per cell: 5 with `--quick`, 11 in full, or `--runs N`.
    pub runs: usize,
}

impl Settings {
    /// Runs of the slow groups (end to end, memory per in-flight request, HTTP): 3 quick, 5 full,
    /// never more than `runs`.
    pub fn slow_runs(&self) -> usize {
        (if self.quick { 3 } else { 5 }).min(self.runs)
    }
}

/// Is `program` on PATH?
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

fn usage() -> ! {
    eprintln!(
        "usage: versus [--quick] [--runs N] [--json FILE] [--only runtime,bridge,timer,memory,http,e2e]\n       \
         versus --readme-table FILE.json [--readme README.md]   (print the README table, or replace it in README.md)\n       \
         versus --compare BEFORE.json AFTER.json   (how every ratio moved between two runs)\n       \
         versus --obs-ab ON_TARGET_DIR [--runs N] [--secs S] [--only runtime,http,e2e] [--layouts DIR]   (the observatory's cost gate: interleaved A/B against a build with --features observatory; with --layouts, the off-K/on-K pairs benches/versus/layouts.sh links, taken in turn)\n       \
         versus --obs-ab ON_TARGET_DIR --instructions   (the runtime rows' instructions per op under callgrind, off against on: the cost without the machine's timing noise)"
    );
    std::process::exit(2);
}

/// `versus --readme-table FILE.json [--readme README.md]`: renders the README's benchmark
/// section from a run's JSON; prints it, or replaces the marked section of the README.
fn readme_table(json_path: &str, readme: Option<&str>) -> Result<(), String> {
    let text = std::fs::read_to_string(json_path).map_err(|e| format!("{json_path}: {e}"))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{json_path}: {e}"))?;
    if doc["schema"] != 2 {
        return Err(format!(
            "{json_path} is not a versus JSON of schema 2 (written by `versus --json` since the table became generated)"
        ));
    }
    let section = report::readme_section(&doc, json_path);
    match readme {
        None => print!("{section}"),
        Some(path) => {
            let old = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
            let new = report::replace_section(&old, &section)?;
            std::fs::write(path, new).map_err(|e| format!("{path}: {e}"))?;
            eprintln!("rewrote the benchmark table in {path}");
        }
    }
    Ok(())
}

/// The 1-minute load average (/proc/loadavg): how busy the machine was besides this run.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The first line `program arg` prints (stdout or stderr), if it runs.
fn tool_version(program: &str, arg: &str) -> Option<String> {
    let out = std::process::Command::new(program).arg(arg).output().ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .next()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
}

/// A flag's value that must be a positive number (else the usage text and exit 2).
fn positive<T: std::str::FromStr + PartialOrd + Default>(value: Option<&String>) -> T {
    value
        .and_then(|v| v.parse::<T>().ok())
        .filter(|v| *v > T::default())
        .unwrap_or_else(|| usage())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        match args.get(1).map(String::as_str) {
            Some("mem-tasks") => {
                memory::child_tasks(args.get(2).map(String::as_str).unwrap_or("ours"))
            }
            Some("serve") => http::child_serve(&args[2..]),

            Some("http-client") if args.len() >= 7 => http::child_client(&args[2..]),
            Some("mem-inflight") if args.len() >= 5 => http::child_mem_inflight(&args[2..]),
            Some("timer-load") => timer::child_load(
                args.get(2).map(String::as_str).unwrap_or("ours"),
                args.get(3).and_then(|n| n.parse().ok()),
            ),
            Some("loop") if args.len() >= 6 => runtime::child_loop(
                &args[2],
                args[3].parse().unwrap_or(1),
                &args[4],
                args[5].parse().unwrap_or(3.0),
            ),
            _ => usage(),
        }
        return;
    }
    let mut quick = false;
    let mut json = None;
    let mut runs = None;
    let mut only: Option<Vec<String>> = None;
    let mut table = None;
    let mut readme = None;
    let mut compare = None;
    let mut obs_ab = None;
    let mut instructions = false;
    let mut layouts = None;
    let mut secs = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--json" => json = Some(it.next().cloned().unwrap_or_else(|| usage())),
            "--readme-table" => table = Some(it.next().cloned().unwrap_or_else(|| usage())),
            "--obs-ab" => obs_ab = Some(it.next().cloned().unwrap_or_else(|| usage())),
            "--instructions" => instructions = true,
            "--layouts" => layouts = Some(it.next().cloned().unwrap_or_else(|| usage())),
            "--secs" => secs = Some(positive::<f64>(it.next())),
            "--readme" => readme = Some(it.next().cloned().unwrap_or_else(|| usage())),
            "--compare" => {
                let before = it.next().cloned().unwrap_or_else(|| usage());
                let after = it.next().cloned().unwrap_or_else(|| usage());
                compare = Some((before, after));
            }
            "--runs" => runs = Some(positive::<usize>(it.next())),
            "--only" => {
                only = Some(
                    it.next()
                        .unwrap_or_else(|| usage())
                        .split(',')
                        .map(str::to_string)
                        .collect(),
                )
            }
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    if obs_ab.is_none() && (instructions || layouts.is_some()) {
        eprintln!("versus: --instructions and --layouts go with --obs-ab");
        usage();
    }
    if let Some(dir) = obs_ab {
        if instructions {
            obs_ab::run_instructions(&dir);
            return;
        }
        obs_ab::run(
            &dir,
            runs.unwrap_or(7),
            secs.unwrap_or(1.0),
            only,
            layouts.as_deref(),
        );
        return;
    }
    if let Some(paths) = compare {
        let load = |p: &String| -> serde_json::Value {
            let text = std::fs::read_to_string(p).unwrap_or_else(|e| {
                eprintln!("versus: {p}: {e}");
                std::process::exit(1)
            });
            serde_json::from_str(&text).unwrap_or_else(|e| {
                eprintln!("versus: {p}: {e}");
                std::process::exit(1)
            })
        };
        print!("{}", report::compare(&load(&paths.0), &load(&paths.1)));
        return;
    }
    if let Some(path) = table {
        if let Err(e) = readme_table(&path, readme.as_deref()) {
            eprintln!("versus: {e}");
            std::process::exit(1);
        }
        return;
    }
    if readme.is_some() {
        usage();
    }
    let settings = Settings {
        quick,
        runs: runs.unwrap_or(if quick { 5 } else { 11 }),
    };
    let wanted = |g: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == g));
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target")
        });
    let started = Instant::now();
    let load_before = load_average();
    let steal_before = steal::now();
    let mut rows = Vec::new();
    let python = if wanted("bridge") || wanted("e2e") {
        python::Python::setup(&target_dir)
    } else {
        python::Python::setup_skipped()
    };
    if wanted("runtime") {
        eprintln!("runtime micro-benchmarks...");
        runtime::run(&settings, &mut rows);
    }
    if wanted("bridge") {
        eprintln!("sync bridge...");
        bridge::run(&settings, &mut rows, &python);
    }
    if wanted("timer") {
        eprintln!("timers...");
        timer::run(&settings, &mut rows);
    }
    if wanted("memory") {
        eprintln!("memory...");
        memory::run(&settings, &mut rows);
        http::memory_in_flight(&settings, &mut rows);
    }
    if wanted("e2e") {
        eprintln!("end to end (server on CPU 1, clients on CPU 0)...");
        e2e::run(&settings, &mut rows, &python);
    }
    if wanted("http") {
        eprintln!("http (servers pinned to CPU 1, clients to CPU 0)...");
        http::run(&settings, &mut rows);
    }
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut versions = serde_json::Map::new();
    for (k, v) in report::crate_versions() {
        versions.insert(k.into(), v.into());
    }
    for (k, v) in python.versions() {
        versions.insert(k.into(), v.into());
    }
    for (k, program, arg) in [
        ("rustc", "rustc", "--version"),
        ("nginx", "nginx", "-v"),
        ("wrk", "wrk", "-v"),
        ("kernel", "uname", "-r"),
    ] {
        if let Some(v) = tool_version(program, arg) {
            versions.insert(k.into(), v.into());
        }
    }
    let took = started.elapsed().as_secs_f64();
    let meta = serde_json::json!({
        "date": date.unwrap_or_default(),
        "cpu": cpu,
        "cpus": cpus,
        "mode": if quick { "quick" } else { "full" },
        "args": args.iter().filter(|a| !a.ends_with(".json")).cloned().collect::<Vec<_>>().join(" ").replace("--json", "").trim().to_string(),
        "runs_per_cell": settings.runs,
        "took_s": took,
        "load_average_1min": {"start": load_before, "end": load_average()},
        "steal_percent": steal_before.zip(steal::now()).and_then(|(b, a)| steal::percent(b, a)),
        "versions": versions,
    });
    let doc = report::document(&rows, meta);
    println!(
        "scraipe versus rivals — {}, {cpu}, {cpus} CPUs, {} mode ({} runs per cell), took {took:.0} s\n",
        doc["meta"]["date"].as_str().unwrap_or(""),
        if quick { "quick" } else { "full" },
        settings.runs,
    );
    if let Some(steal) = doc["meta"]["steal_percent"].as_f64() {
        println!("Hypervisor steal during the run: {steal:.1} % of CPU time.\n");
    }
    println!("{}", report::markdown(&doc, |_| true));
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&doc).unwrap();
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("could not write {path}: {e}");
            std::process::exit(1);
        }
    }
}
