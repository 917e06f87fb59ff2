//! End to end: scrape + text statistics of 5,000 local pages, with the `scraipe` CLI and with
//! Python Scraipe 0.1.73's RawScraper + TextStatsAnalyzer, at the same concurrency, against the
//! same server (our demo site without slow or failing pages, pinned to CPU 1). Both clients are
//! pinned to CPU 0; ours runs one worker thread.

use std::process::Command;
use std::time::Instant;

use crate::python::Python;
use crate::report::{Better, Row};
use crate::stats::Runs;
use crate::Settings;

const PAGES: usize = 5_000;
const CONCURRENCY: usize = 64;

const PYTHON: &str = r#"
import json, sys, time
from scraipe.defaults import RawScraper, TextStatsAnalyzer
base, n, conc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
links = [f"{base}/page/{i}" for i in range(n)]
scraper = RawScraper()
scraper.max_workers = conc
analyzer = TextStatsAnalyzer()
t = time.perf_counter()
contents = {}
for link, r in scraper.scrape_multiple(links):
    if r.scrape_success:
        contents[link] = r.content
analyzed = sum(1 for _ in analyzer.analyze_multiple(contents))
elapsed = time.perf_counter() - t
print(json.dumps({"pages_per_s": n / elapsed, "ok": len(contents), "analyzed": analyzed}))
"#;

/// Builds the CLI (release) and returns its path.
fn cli_binary() -> Result<std::path::PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--bin", "scraipe"])
        .current_dir(&root)
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if !status.success() {
        return Err("cargo build --bin scraipe failed".into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("release/scraipe"))
}

pub fn run(settings: &Settings, rows: &mut Vec<Row>, python: &Python) {
    let cli = match cli_binary() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("  e2e skipped: {e}");
            return;
        }
    };
    let server = match crate::http::start_demo_server_with(&["plain", &PAGES.to_string()]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("  e2e skipped: {e}");
            return;
        }
    };
    let links = std::env::temp_dir().join(format!("versus-e2e-{}.txt", std::process::id()));
    let list: Vec<String> = (0..PAGES)
        .map(|i| format!("{}/page/{i}", server.base))
        .collect();
    if std::fs::write(&links, list.join("\n")).is_err() {
        return;
    }
    let runs = if settings.quick { 3 } else { 5 };
    let (mut ours, mut theirs) = (Runs::default(), Runs::default());
    let mut note = String::new();
    for _ in 0..runs {
        let started = Instant::now();
        let mut cmd = if crate::have("taskset") {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(&cli);
            c
        } else {
            Command::new(&cli)
        };
        let out = cmd
            .args([
                "scrape",
                "--quiet",
                "--threads",
                "1",
                "--analyzer",
                "text-stats",
                "--output",
                "/dev/null",
            ])
            .args(["--concurrency", &CONCURRENCY.to_string(), "--input"])
            .arg(&links)
            .output();
        match out {
            Ok(o) if o.status.success() => {
                ours.push(PAGES as f64 / started.elapsed().as_secs_f64())
            }
            other => eprintln!("  e2e: scraipe run failed: {other:?}"),
        }
        match python.exe() {
            Ok(py) => {
                let mut cmd = if crate::have("taskset") {
                    let mut c = Command::new("taskset");
                    c.args(["-c", "0"]).arg(py);
                    c
                } else {
                    Command::new(py)
                };
                let out = cmd
                    .args([
                        "-c",
                        PYTHON,
                        &server.base,
                        &PAGES.to_string(),
                        &CONCURRENCY.to_string(),
                    ])
                    .output();
                match out
                    .ok()
                    .filter(|o| o.status.success())
                    .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
                {
                    Some(v) => theirs.push(v["pages_per_s"].as_f64().unwrap_or(f64::NAN)),
                    None => note = "the Python Scraipe run failed".into(),
                }
            }
            Err(why) => note = why,
        }
    }
    let _ = std::fs::remove_file(&links);
    eprintln!(
        "  e2e: scraipe {:.0} pages/s, Python Scraipe {}",
        ours.median(),
        if theirs.0.is_empty() {
            note.clone()
        } else {
            format!("{:.0} pages/s", theirs.median())
        }
    );
    rows.push(Row {
        group: "e2e",
        bench: format!(
            "scrape + text-stats, {PAGES} local pages, {CONCURRENCY} in flight (client on 1 core)"
        ),
        unit: "pages/s",
        ours,
        rival: "Python Scraipe 0.1.73".into(),
        theirs: (!theirs.0.is_empty()).then_some(theirs),
        better: Better::Higher,
        note,
    });
}
