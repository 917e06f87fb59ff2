//! The long-poll detector.
//!
//! Each worker publishes the task it is polling in its [`PollSlot`]: relaxed stores of the task
//! id, its spawn location and a sequence number bumped on every change — no clock read on the
//! worker. A watchdog thread samples the slots every few milliseconds; a slot whose sequence
//! number has not moved for `threshold` while it names a task is a poll that long, and is
//! reported once (callback + `log::warn!`).
//!
//! Time a worker spent runnable but waiting for a CPU (the machine is busy; the task did
//! nothing wrong) does not count. Two facts from the kernel make that exact enough on a loaded
//! machine: the thread's accumulated run-queue wait (`/proc/self/task/TID/schedstat`, read when
//! the poll is first seen and again when judging it; the difference is subtracted), and — since
//! a wait still in progress is only accounted when the thread gets a CPU back — whether the
//! thread is making progress right now: blocked in a syscall (`S`/`D` in `/proc/.../stat`: a
//! `thread::sleep` or blocking read, the task's doing) or its CPU clock advanced since the last
//! sample (it computes). A thread that is runnable and whose CPU clock stands still is waiting
//! for a CPU, and is judged at a later sample. Without procfs, wall time is used.
//!
//! No false reports: the blocking pool never publishes (blocking is its job), and a task that
//! enters `block_on` on a worker stays published only while its own code runs there — the
//! future it awaits is the task's code, and a future that blocks the worker is reported naming
//! the task. When the worker polls another task or runs out of work the task's poll pauses,
//! and its next stretch counts as a fresh poll (see `observe::task::blocking_section`).

use std::panic::Location;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicI64, AtomicPtr, AtomicU64};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::rt::scheduler::Shared;

/// A poll that ran past the threshold.
#[derive(Clone, Debug)]
pub struct LongPoll {
    /// The task's id.
    pub task_id: u64,
    /// The caller of the spawn entry point.
    pub location: &'static Location<'static>,
    /// The worker polling it.
    pub worker: usize,
    /// The worker's OS thread id (`gettid`), for `perf`/`gdb -p`.
    pub os_tid: i64,
    /// How long the poll had run when the watchdog reported it (at least the threshold).
    pub elapsed: Duration,
    /// When the watchdog detected it.
    pub detected_at: Instant,
    /// Where the flight recorder's last two seconds (Chrome trace JSON) are written, if the
    /// trace is on ([`set_tracing`](super::set_tracing)). The report is delivered first and
    /// the file written right after, on a thread of its own (serialising the trace can take a
    /// second or more), under
    /// a temporary name renamed into place: wait for the path to exist before reading it. One
    /// file per process and task (a later long poll of the same task replaces it), and the
    /// eight newest files per process are kept: an older one is removed when a ninth is written.
    pub trace_file: Option<std::path::PathBuf>,
}

/// Where the flight recorder of a long poll of `task` goes (next to other temporary files), if
/// the trace is on.
fn dump_path(task: u64) -> Option<std::path::PathBuf> {
    if !super::trace::is_tracing() {
        return None;
    }
    Some(std::env::temp_dir().join(format!(
        "scraipe-long-poll-{}-task{task}.trace.json",
        std::process::id()
    )))
}

/// Writes the flight recorder's last two seconds to `path`: to a temporary name first, then
/// renamed, so a reader never sees half a file.
fn dump_trace(path: &std::path::Path) {
    let json = super::trace::trace_json(Some(Duration::from_secs(2)));
    let partial = path.with_extension("json.partial");
    match std::fs::write(&partial, json).and_then(|()| std::fs::rename(&partial, path)) {
        Ok(()) => {
            log::warn!("long poll: flight recorder written to {}", path.display());
            let stale = DUMPS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .keep(path.to_path_buf());
            if let Some(stale) = stale {
                let _ = std::fs::remove_file(stale);
            }
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            log::warn!(
                "could not write the flight recorder to {}: {e}",
                path.display()
            );
        }
    }
}

/// The most flight-recorder dumps a process leaves behind (a few MiB each); older ones are
/// removed as new ones are written.
const KEPT_DUMPS: usize = 8;

static DUMPS: std::sync::Mutex<Dumps> =
    std::sync::Mutex::new(Dumps(std::collections::VecDeque::new()));

/// The dumps written, oldest first.
struct Dumps(std::collections::VecDeque<std::path::PathBuf>);

impl Dumps {
    /// Records `path` as the newest dump; returns the dump that falls out of the kept ones.
    fn keep(&mut self, path: std::path::PathBuf) -> Option<std::path::PathBuf> {
        // The same task's next dump replaces its file: it moves to the back, not in twice.
        self.0.retain(|p| *p != path);
        self.0.push_back(path);
        (self.0.len() > KEPT_DUMPS)
            .then(|| self.0.pop_front())
            .flatten()
    }
}

/// A callback for long polls.
pub(crate) type Callback = Arc<dyn Fn(&LongPoll) + Send + Sync>;

/// The watchdog's settings, fixed at build time.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) threshold: Duration,
    pub(crate) callback: Option<Callback>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("threshold", &self.threshold)
            .field("callback", &self.callback.is_some())
            .finish()
    }
}

/// True while some watchdog or live view reads the poll slots. Without one, workers skip
/// publishing: the slots would be written for nobody.
#[inline]
pub(crate) fn slots_read() -> bool {
    super::mode::get() & super::mode::LIVE != 0
}

/// Registers a reader of the poll slots for its lifetime. Polls that started before the first
/// reader registered are not shown to it (they end unpublished).
pub(crate) use super::mode::LiveReader as SlotReader;

/// What one worker is polling. Written only by that worker's thread, on every poll: aligned to
/// its own cache lines so the neighbouring fields of `Remote` (which other workers write) do
/// not share a line with it.
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct PollSlot {
    task: AtomicU64,
    location: AtomicPtr<Location<'static>>,
    seq: AtomicU64,
    tid: AtomicI64,
    /// The worker's CPU-time clock id (`pthread_getcpuclockid`), 0 until known.
    cpu_clock: AtomicI64,
    /// Busy time and histograms (while timing is on).
    pub(crate) timing: super::timing::WorkerTiming,
}

impl PollSlot {
    #[inline]
    pub(crate) fn publish(&self, id: u64, location: &'static Location<'static>) {
        if self.tid.load(Relaxed) == 0 {
            self.learn_thread();
        }
        self.location
            .store(location as *const _ as *mut Location<'static>, Relaxed);
        self.task.store(id, Relaxed);
        self.seq
            .store(self.seq.load(Relaxed).wrapping_add(1), Relaxed);
    }

    /// Once per worker thread: its OS thread id and CPU-time clock.
    #[cold]
    fn learn_thread(&self) {
        // SAFETY: gettid has no preconditions.
        self.tid.store(unsafe { libc::gettid() } as i64, Relaxed);
        let mut clock: libc::clockid_t = 0;
        // SAFETY: pthread_self is always valid for the calling thread; `clock` is a valid
        // out-pointer.
        if unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) } == 0 {
            self.cpu_clock.store(i64::from(clock), Relaxed);
        }
    }

    /// The task being polled now and its spawn site, if any.
    pub(crate) fn current(&self) -> Option<(u64, &'static Location<'static>)> {
        let location = self.location.load(Relaxed);
        match self.task.load(Relaxed) {
            0 => None,
            // SAFETY: only `&'static Location`s are ever stored (never null once a task was).
            id if !location.is_null() => Some((id, unsafe { &*location })),
            _ => None,
        }
    }

    /// The sequence number: it moves on every publish and clear.
    #[inline]
    pub(crate) fn seq(&self) -> u64 {
        self.seq.load(Relaxed)
    }

    #[inline]
    pub(crate) fn clear(&self) {
        self.task.store(0, Relaxed);
        self.seq
            .store(self.seq.load(Relaxed).wrapping_add(1), Relaxed);
    }
}

/// What the watchdog remembers of one slot between samples.
#[derive(Clone, Copy)]
struct Seen {
    seq: u64,
    since: Instant,
    /// The worker thread's run-queue wait (ns) when the poll was first seen.
    waited: Option<u64>,
    /// The worker thread's CPU time at the previous sample.
    cpu: Option<Duration>,
    reported: bool,
}

/// CPU time consumed so far by the thread behind `clock`.
fn cpu_time(clock: i64) -> Option<Duration> {
    if clock == 0 {
        return None;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; a stale clock id just makes the call fail.
    let ok = unsafe { libc::clock_gettime(clock as libc::clockid_t, &mut ts) } == 0;
    ok.then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// True when thread `tid` is blocked in the kernel (`S` or `D`), not runnable.
fn is_blocked(tid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
        .ok()
        .and_then(|s| {
            let state = s.rsplit_once(')')?.1.trim_start().chars().next()?;
            Some(matches!(state, 'S' | 'D'))
        })
        .unwrap_or(false)
}

/// Nanoseconds thread `tid` of this process has spent runnable but not running.
fn run_queue_wait(tid: i64) -> Option<u64> {
    if tid <= 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    text.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// Starts the watchdog thread; it ends when the runtime is dropped.
pub(crate) fn start(shared: Weak<Shared>, config: Config) -> std::io::Result<()> {
    let interval =
        (config.threshold / 4).clamp(Duration::from_micros(500), Duration::from_millis(5));
    // Registered before the runtime's workers start, so no poll goes unpublished.
    let reader = SlotReader::new();
    std::thread::Builder::new()
        .name("scraipe-watchdog".into())
        .spawn(move || {
            let _reader = reader;
            let mut seen: Vec<Option<Seen>> = Vec::new();
            loop {
                std::thread::sleep(interval);
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                if shared.is_shutdown() {
                    return;
                }
                seen.resize(shared.remotes.len(), None);
                let now = Instant::now();
                for (worker, remote) in shared.remotes.iter().enumerate() {
                    let slot = &remote.obs_slot;
                    let seq = slot.seq.load(Relaxed);
                    let task = slot.task.load(Relaxed);
                    let tid = slot.tid.load(Relaxed);
                    let clock = slot.cpu_clock.load(Relaxed);
                    let s = match seen[worker] {
                        Some(s) if s.seq == seq => s,
                        _ => {
                            let busy = task != 0;
                            seen[worker] = Some(Seen {
                                seq,
                                since: now,
                                waited: if busy { run_queue_wait(tid) } else { None },
                                cpu: if busy { cpu_time(clock) } else { None },
                                reported: false,
                            });
                            continue;
                        }
                    };
                    let wall = now - s.since;
                    if task == 0 || s.reported || wall < config.threshold {
                        continue;
                    }
                    let cpu = cpu_time(clock);
                    seen[worker] = Some(Seen { cpu, ..s });
                    let computing = matches!((s.cpu, cpu), (Some(a), Some(b)) if b > a);
                    let progressing = computing || cpu.is_none() || is_blocked(tid);
                    if !progressing {
                        continue; // runnable but off-CPU: the machine is busy, not the task
                    }
                    let preempted = match (s.waited, run_queue_wait(tid)) {
                        (Some(then), Some(now)) => Duration::from_nanos(now.saturating_sub(then)),
                        _ => Duration::ZERO,
                    };
                    let elapsed = wall.saturating_sub(preempted);
                    if elapsed < config.threshold {
                        continue;
                    }
                    // The location was stored before the task id and sequence number by the
                    // same thread; a torn read can only pair it with a neighbouring poll's id,
                    // and every stored pointer is a `&'static Location`.
                    let location = slot.location.load(Relaxed);
                    if location.is_null() {
                        continue;
                    }
                    // SAFETY: only `&'static Location`s are ever stored.
                    let location = unsafe { &*location };
                    let report = LongPoll {
                        task_id: task,
                        location,
                        worker,
                        os_tid: tid,
                        elapsed,
                        detected_at: now,
                        trace_file: dump_path(task),
                    };
                    log::warn!(
                        "long poll: task {} spawned at {}:{} has been running on worker {} \
                         (tid {}) for {:?}{}",
                        report.task_id,
                        location.file(),
                        location.line(),
                        worker,
                        report.os_tid,
                        elapsed,
                        report
                            .trace_file
                            .as_ref()
                            .map_or(String::new(), |p| format!(
                                "; writing the flight recorder to {}",
                                p.display()
                            ))
                    );
                    if let Some(cb) = &config.callback {
                        cb(&report);
                    }
                    // After the report, and off this thread: serialising two seconds of trace
                    // can take a second, and neither the report nor the sampling of the other
                    // workers may wait for it.
                    if let Some(path) = report.trace_file.clone() {
                        let spawned = std::thread::Builder::new()
                            .name("scraipe-long-poll-dump".into())
                            .spawn(move || dump_trace(&path));
                        if let Err(e) = spawned {
                            log::warn!("could not start the flight-recorder dump: {e}");
                        }
                    }
                    seen[worker] = Some(Seen {
                        reported: true,
                        ..s
                    });
                }
            }
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_dumps_are_kept_and_a_rewritten_one_counts_once() {
        let mut dumps = Dumps(Default::default());
        let path = |i: usize| std::path::PathBuf::from(format!("/tmp/d{i}"));
        for i in 0..KEPT_DUMPS {
            assert_eq!(dumps.keep(path(i)), None);
        }
        // The oldest dump's task long-polls again: its file is rewritten and becomes the newest.
        assert_eq!(dumps.keep(path(0)), None);
        assert_eq!(dumps.keep(path(100)), Some(path(1)));
        assert_eq!(dumps.keep(path(101)), Some(path(2)));
        assert_eq!(dumps.0.len(), KEPT_DUMPS);
    }
}
