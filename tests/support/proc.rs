//! Helpers for tests that drive the `scraipe` binary or the monitor: scratch directories,
//! JSON-lines output, child processes and their signals, polling, in-memory event sinks.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scraipe::demo::{DemoServer, DemoSite};
use scraipe::monitor::change::ChangeEvent;
use scraipe::rt::Runtime;
use serde_json::Value;

/// An empty scratch directory `scraipe-{prefix}-{pid}-{name}` under the system temp dir; a
/// leftover from an earlier run with the same pid is removed first.
pub fn fresh_dir(prefix: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scraipe-{prefix}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `scraipe monitor run --input {input}` keeping its state in `dir/state.sqlite` and writing
/// change events to `dir/events.jsonl`; the caller adds the mode and the rest.
pub fn monitor_run(dir: &Path, input: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scraipe"));
    cmd.args(["monitor", "run", "--input"])
        .arg(input)
        .arg("--db")
        .arg(dir.join("state.sqlite"))
        .arg("--changes")
        .arg(dir.join("events.jsonl"));
    cmd
}

/// Runs a command that must succeed.
pub trait OutputOk {
    /// The command's output; panics (at the caller) with its stderr when it did not exit 0.
    fn output_ok(&mut self) -> Output;
}

impl OutputOk for Command {
    #[track_caller]
    fn output_ok(&mut self) -> Output {
        let out = self.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// One JSON value per line of `stdout`; panics on a line that is not JSON.
pub fn jsonl(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("valid JSON line"))
        .collect()
}

/// Sends `sig` to a child that has not been reaped yet.
pub fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

/// Waits for the child to exit, at most `limit`; kills it and panics past that.
pub fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("the monitor did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `cond` every 10 ms until it holds; panics after `limit`.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "condition not met within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The single integer a `SELECT COUNT(*) ...` style query returns.
pub fn count(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The demo site (40 pages) served on loopback by a one-worker runtime of its own.
pub struct Site {
    _rt: Runtime,
    pub server: DemoServer,
}

impl Site {
    pub fn start() -> Site {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let server = DemoServer::start(
            rt.handle(),
            "127.0.0.1:0".parse().unwrap(),
            DemoSite::new(40, 5),
        )
        .unwrap();
        Site { _rt: rt, server }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.server.base_url(), path)
    }
}

/// An in-memory `Write` the monitor sends its change events to, as JSON lines.
#[derive(Clone, Default)]
pub struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink {
    /// Every event written so far; they stay in the sink.
    pub fn events(&self) -> Vec<ChangeEvent> {
        Self::parse(self.0.lock().unwrap().clone())
    }

    /// Every event written since the last `take`; the sink is emptied.
    pub fn take(&self) -> Vec<ChangeEvent> {
        Self::parse(std::mem::take(&mut *self.0.lock().unwrap()))
    }

    fn parse(bytes: Vec<u8>) -> Vec<ChangeEvent> {
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}
