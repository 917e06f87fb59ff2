//! End to end: scrape (+ text statistics) of 5,000 local pages with the `scraipe` CLI and with
//! Python Scraipe 0.1.73's RawScraper (+ TextStatsAnalyzer), at the same concurrency, against the
//! same server (our demo site without slow or failing pages, pinned to CPU 1). Both clients are
//! pinned to CPU 0; ours runs one worker thread.
//!
//! Python Scraipe's RawScraper opens a new aiohttp session — a new connection — for every page,
//! while our client keeps 64 connections alive; so there is also a Python variant whose scraper
//! shares one aiohttp session (connection pool of 64), which isolates the runtime comparison.
//! That comparison runs without the analyzer: Python's TextStatsAnalyzer dominates its time
//! once the analyzer is on (it is compared as shipped in the first row).
//! A run in which any page failed (on either side) is discarded and reported.

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
import aiohttp
from scraipe import ScrapeResult
from scraipe.defaults import RawScraper, TextStatsAnalyzer
base, n, conc, mode, analyze = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5] == "1"

class SharedSessionScraper(RawScraper):
    """RawScraper with one aiohttp session (and its keep-alive pool) for all pages."""
    session = None
    async def async_scrape(self, url):
        if self.session is None:
            self.session = aiohttp.ClientSession(
                headers=self.headers, connector=aiohttp.TCPConnector(limit=conc))
        try:
            async with self.session.get(url) as response:
                if response.status != 200:
                    return ScrapeResult.fail(url, f"Status code: {response.status}")
                return ScrapeResult.succeed(url, await response.text())
        except Exception as e:
            return ScrapeResult.fail(url, f"Error: {e}")

links = [f"{base}/page/{i}" for i in range(n)]
scraper = SharedSessionScraper() if mode == "shared" else RawScraper()
scraper.max_workers = conc
t = time.perf_counter()
contents = {}
for link, r in scraper.scrape_multiple(links):
    if r.scrape_success:
        contents[link] = r.content
analyzed = sum(1 for _ in TextStatsAnalyzer().analyze_multiple(contents)) if analyze else 0
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

fn on_cpu0(program: &std::ffi::OsStr) -> Command {
    if crate::have("taskset") {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Counts in the CLI's summary line: `scraped 5,000/5,000 ok, analyzed 5,000 in …`.
/// Returns (ok, total, analyzed).
pub fn parse_summary(stderr: &str) -> Option<(usize, usize, Option<usize>)> {
    let line = stderr.lines().rev().find(|l| l.starts_with("scraped "))?;
    let n = |s: &str| s.replace(',', "").parse::<usize>().ok();
    let counts = line.strip_prefix("scraped ")?.split(' ').next()?;
    let (ok, total) = counts.split_once('/')?;
    let analyzed = line
        .split("analyzed ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(n);
    Some((n(ok)?, n(total)?, analyzed))
}

/// One run of our CLI: pages/s, or why the run is discarded.
fn run_ours(cli: &std::path::Path, links: &std::path::Path, analyze: bool) -> Result<f64, String> {
    let started = Instant::now();
    let out = on_cpu0(cli.as_os_str())
        .args(["scrape", "--threads", "1", "--output", "/dev/null"])
        .args(["--analyzer", if analyze { "text-stats" } else { "none" }])
        .args(["--concurrency", &CONCURRENCY.to_string(), "--input"])
        .arg(links)
        .output()
        .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("scraipe exited with {}: {stderr}", out.status));
    }
    match parse_summary(&stderr) {
        Some((ok, total, analyzed))
            if ok == PAGES && total == PAGES && (!analyze || analyzed == Some(PAGES)) =>
        {
            Ok(PAGES as f64 / elapsed)
        }
        _ => Err(format!("not every page succeeded: {}", stderr.trim())),
    }
}

/// One run of Python Scraipe (`mode`: "raw" = RawScraper as shipped, "shared" = one session).
fn run_python(py: &std::path::Path, base: &str, mode: &str, analyze: bool) -> Result<f64, String> {
    let out = on_cpu0(py.as_os_str())
        .args([
            "-c",
            PYTHON,
            base,
            &PAGES.to_string(),
            &CONCURRENCY.to_string(),
            mode,
            if analyze { "1" } else { "0" },
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "python failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let ok = v["ok"].as_u64().unwrap_or(0) as usize;
    let analyzed = v["analyzed"].as_u64().unwrap_or(0) as usize;
    if ok != PAGES || (analyze && analyzed != PAGES) {
        return Err(format!("only {ok} pages scraped, {analyzed} analyzed"));
    }
    Ok(v["pages_per_s"].as_f64().unwrap_or(f64::NAN))
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
    let runs = settings.slow_runs();
    // ours with / without the analyzer; Python raw+analyzer, raw only, shared session only.
    let (mut ours_a, mut ours_s) = (Runs::default(), Runs::default());
    let mut py: [Runs; 3] = Default::default();
    let mut notes: [String; 3] = Default::default();
    let mut discarded = 0usize;
    let mut keep = |r: Result<f64, String>, into: &mut Runs, what: &str| match r {
        Ok(v) => into.push(v),
        Err(e) => {
            discarded += 1;
            eprintln!("  e2e: {what} run discarded: {e}");
        }
    };
    for _ in 0..runs {
        keep(run_ours(&cli, &links, true), &mut ours_a, "scraipe");
        keep(
            run_ours(&cli, &links, false),
            &mut ours_s,
            "scraipe (no analyzer)",
        );
        for (i, (mode, analyze)) in [("raw", true), ("raw", false), ("shared", false)]
            .into_iter()
            .enumerate()
        {
            match python.exe() {
                Ok(exe) => keep(
                    run_python(exe, &server.base, mode, analyze),
                    &mut py[i],
                    "Python Scraipe",
                ),
                Err(why) => notes[i] = why,
            }
        }
    }
    let _ = std::fs::remove_file(&links);
    if discarded > 0 {
        eprintln!("  e2e: {discarded} runs discarded (a page failed)");
    }
    let what = format!("{PAGES} local pages, {CONCURRENCY} in flight, client on 1 core");
    let [raw_a, raw_s, shared_s] = py;
    for (bench, ours, rival, theirs, note) in [
        (
            format!("scrape + text-stats, {what}"),
            &ours_a,
            "Python Scraipe 0.1.73 RawScraper (new connection per page; ours keeps 64 alive)",
            raw_a,
            &notes[0],
        ),
        (
            format!("scrape only (no analyzer), {what}"),
            &ours_s,
            "Python Scraipe 0.1.73 RawScraper (new connection per page; ours keeps 64 alive)",
            raw_s,
            &notes[1],
        ),
        (
            format!("scrape only (no analyzer), {what}"),
            &ours_s,
            "Python Scraipe 0.1.73, scraper sharing one aiohttp session (64 kept alive, like ours)",
            shared_s,
            &notes[2],
        ),
    ] {
        let note = if theirs.is_empty() && note.is_empty() {
            "every Python run failed or was discarded".to_string()
        } else {
            note.clone()
        };
        let row = Row::new(
            "e2e",
            bench,
            "pages/s",
            ours.clone(),
            rival,
            (!theirs.is_empty()).then_some(theirs),
            Better::Higher,
        )
        .note(note);
        row.log();
        rows.push(row);
    }
}

#[cfg(test)]
mod tests {
    use super::parse_summary;

    #[test]
    fn summary_counts_are_parsed() {
        assert_eq!(
            parse_summary("scraped 5,000/5,000 ok, analyzed 5,000 in 0.4 s (12,000 pages/s)"),
            Some((5000, 5000, Some(5000)))
        );
        assert_eq!(
            parse_summary(
                "noise\nscraped 4,980/5,000 ok in 3.2 s (1,560 pages/s); 20 failed: 12 timeout"
            ),
            Some((4980, 5000, None))
        );
        assert_eq!(parse_summary("nothing here"), None);
    }
}
