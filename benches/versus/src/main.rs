//! `cargo run --release -p versus -- [--quick] [--json FILE] [--only GROUP,...]`
//!
//! Measures scraipe against tokio, reqwest, hyper (and Python Scraipe when it can be installed)
//! on this machine, in one run, and prints a markdown table: the median of several runs with
//! the min–max range, and the ratio ours/theirs. See BENCHMARKS.md for what each row measures.

mod bridge;
mod e2e;

mod http;
mod memory;
mod python;
mod report;
mod runtime;
mod stats;
mod timer;

use std::time::Instant;

pub struct Settings {
    pub quick: bool,
    pub runs: usize,
}

/// Is `program` on PATH?
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

fn usage() -> ! {
    eprintln!(
        "usage: versus [--quick] [--json FILE] [--only runtime,bridge,timer,memory,http,e2e]"
    );
    std::process::exit(2);
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
    let mut only: Option<Vec<String>> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--json" => json = Some(it.next().cloned().unwrap_or_else(|| usage())),
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
    let settings = Settings {
        quick,
        runs: if quick { 5 } else { 11 },
    };
    let wanted = |g: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == g));
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target")
        });
    let started = Instant::now();
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
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
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
    println!(
        "scraipe versus rivals — {date}, {cpu}, {cpus} CPUs, {} mode ({} runs per cell, median [min–max]), took {:.0} s\n",
        if quick { "quick" } else { "full" },
        settings.runs,
        started.elapsed().as_secs_f64()
    );
    println!("{}", report::markdown(&rows));
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report::json(&rows)).unwrap();
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("could not write {path}: {e}");
            std::process::exit(1);
        }
    }
}
