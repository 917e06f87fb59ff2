//! Running a child process with a deadline.
//!
//! Why: a gate of many rounds runs hundreds of child processes, and one that hangs (a lost
//! wake-up in the build under test, an experimental build that deadlocks) used to stall the
//! whole run with no word of which child or why. A child past its deadline is killed, and the
//! caller gets an error that names it; the round records a failed run, and the gate goes on.

use std::io::{self, Read};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How often a waiting parent checks whether the child has exited.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// Like `cmd.output()`, but the child is killed once it has run for `limit`, and then the
/// result is an error of kind `TimedOut` saying so. Standard input is closed.
pub fn output_within(cmd: &mut Command, limit: Duration) -> io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Both pipes are drained while the child runs: a child blocked on a full pipe would
    // otherwise look hung.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() >= limit {
            kill(&mut child);
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("still running after {:.0} s, killed", limit.as_secs_f64()),
            ));
        }
        thread::sleep(POLL_EVERY);
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Reads `pipe` to its end on a thread of its own.
fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_that_finishes_in_time_gives_its_output() {
        let out = output_within(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn a_child_past_its_deadline_is_killed_and_reported() {
        let started = Instant::now();
        let err =
            output_within(Command::new("sleep").arg("30"), Duration::from_millis(200)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("killed"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_child_whose_output_outgrows_a_pipe_is_not_taken_for_hung() {
        // 1 MiB, far past a pipe's 64 KiB: the parent must read while it waits.
        let out = output_within(
            Command::new("sh").args(["-c", "head -c 1048576 /dev/zero"]),
            Duration::from_secs(20),
        )
        .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), 1 << 20);
    }
}
