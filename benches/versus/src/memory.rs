//! Memory: resident bytes per idle task (100,000 tasks parked on a oneshot). Each measurement
//! runs in a fresh child process so allocator state from other benches does not blur it.

use std::time::Duration;

use crate::report::{Better, Row};
use crate::stats::Runs;
use crate::Settings;

pub const TASKS: usize = 100_000;

/// Resident set size of this process, in bytes.
pub fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
}

/// Child-process entry: prints bytes per parked task for `which` ("ours" or "tokio").
pub fn child_tasks(which: &str) {
    let per_task = match which {
        "ours" => {
            let rt = scraipe::rt::Builder::new()
                .worker_threads(2)
                .build()
                .unwrap();
            let before = rss();
            let senders = rt
                .block_on(rt.spawn(async {
                    (0..TASKS)
                        .map(|_| {
                            let (tx, rx) = scraipe::rt::sync::oneshot::channel::<()>();
                            drop(scraipe::rt::spawn(async move {
                                let _ = rx.await;
                            }));
                            tx
                        })
                        .collect::<Vec<_>>()
                }))
                .unwrap();
            std::thread::sleep(Duration::from_millis(300));
            let after = rss();
            drop(senders);
            (after - before) as f64 / TASKS as f64
        }
        _ => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let before = rss();
            let senders = rt
                .block_on(rt.spawn(async {
                    (0..TASKS)
                        .map(|_| {
                            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                            drop(tokio::spawn(async move {
                                let _ = rx.await;
                            }));
                            tx
                        })
                        .collect::<Vec<_>>()
                }))
                .unwrap();
            std::thread::sleep(Duration::from_millis(300));
            let after = rss();
            drop(senders);
            (after - before) as f64 / TASKS as f64
        }
    };
    println!("{per_task}");
}

/// Runs this binary as a child and parses its last stdout line as JSON.
pub fn child_json(args: &[&str], cpus: Option<&str>) -> Result<serde_json::Value, String> {
    let line = child_line(args, cpus)?;
    serde_json::from_str(&line).map_err(|_| format!("child {args:?} printed {line:?}"))
}

/// Runs this binary as a child and parses its last stdout line as a number.
pub fn child(args: &[&str], cpus: Option<&str>) -> Result<f64, String> {
    let line = child_line(args, cpus)?;
    line.trim()
        .parse()
        .map_err(|_| format!("child {args:?} printed {line:?}"))
}

/// Runs this binary as a child with `args`, pinned to `cpus` if given; returns its last
/// stdout line.
fn child_line(args: &[&str], cpus: Option<&str>) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = match cpus {
        Some(c) if crate::have("taskset") => {
            let mut cmd = std::process::Command::new("taskset");
            cmd.arg("-c").arg(c).arg(&exe);
            cmd
        }
        _ => std::process::Command::new(&exe),
    };
    cmd.arg("--child").args(args);
    // A memory child holds its tasks for a moment and exits; ten minutes means it is hung.
    let out = crate::child::output_within(&mut cmd, std::time::Duration::from_secs(600))
        .map_err(|e| format!("child {args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "child {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or("");
    line.trim()
        .parse()
        .map_err(|_| format!("child {args:?} printed {text:?}"))
}

pub fn run(settings: &Settings, rows: &mut Vec<Row>) {
    let (mut a, mut b) = (Runs::default(), Runs::default());
    for _ in 0..settings.runs {
        match (
            child(&["mem-tasks", "ours"], None),
            child(&["mem-tasks", "tokio"], None),
        ) {
            (Ok(x), Ok(y)) => {
                a.push(x);
                b.push(y);
            }
            (x, y) => eprintln!("  memory: a child failed: {x:?} {y:?}"),
        }
    }
    eprintln!(
        "  memory per idle task: ours {:.0} B, tokio {:.0} B",
        a.median(),
        b.median()
    );
    rows.push(Row {
        group: "memory",
        bench: format!("RSS per idle task ({TASKS} parked on a oneshot)"),
        unit: "bytes",
        ours: a,
        rival: "tokio".into(),
        theirs: Some(b),
        better: Better::Lower,
        note: String::new(),
        cpu: None,
    });
}
