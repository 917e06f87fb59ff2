//! The executor observatory (cargo feature `observatory`, off by default): who each task is,
//! how often it was polled, what woke it, what it waits on, whether anything can still wake it,
//! and which poll is taking too long.
//!
//! Compiled out, none of this exists: the hooks in the runtime are statements under
//! `#[cfg(feature = "observatory")]`, the task header has no extra field (a test pins its size).
//!
//! * `task` — per-task identity and counters (`TaskObs`, in the task header), the wake-source
//!   classification and the thread-locals the hooks use.
//! * `snapshot` — the task table ([`Snapshot`], [`TaskInfo`]) and the exact lost-waker check.
//! * `watchdog` — the long-poll detector.
//!
//! ```
//! let rt = scraipe::rt::Runtime::new().unwrap();
//! let h = rt.spawn(async { scraipe::rt::yield_now().await });
//! let id = h.id();
//! h.join().unwrap();
//! assert!(id > 0);
//! assert!(rt.handle().observe_snapshot().tasks.iter().all(|t| t.id != id));
//! ```

pub(crate) mod mode;
pub(crate) mod serve;
pub(crate) mod snapshot;
pub(crate) mod task;
pub mod timing;
pub mod trace;
pub(crate) mod watchdog;

pub use serve::ObserveServer;
pub use snapshot::{Snapshot, TaskInfo, TaskStatus};
pub use task::{WaitsOn, WakeCounts, WakeSource};
pub use timing::{
    is_timing, set_timing, set_timing_sampling, timing_sampling, HistogramSnapshot, TimingSampling,
    WorkerTimingSnapshot, ADAPTIVE_SPACING,
};
pub use trace::{is_tracing, set_trace_limits, set_tracing, trace_json, trace_limits, TraceLimits};
pub use watchdog::LongPoll;

pub(crate) use task::{
    block_on_poll, blocking_section, driving, enter_worker, link_at_spawn, nested_worker_idles,
    note_channel_wait, on_other_wake, poll_start, wake_cause, Channel, SpawnSite, TaskObs,
    WakeCause, WakeScope, WorkerScope,
};
pub(crate) use watchdog::PollSlot;

/// The id of the task the calling thread is polling right now, if any.
pub fn current_task_id() -> Option<u64> {
    task::current().map(|(id, _)| id)
}

/// The id and spawn site of the task the calling thread is polling (or, on the blocking pool,
/// running) right now, if any.
pub fn current_task() -> Option<(u64, &'static std::panic::Location<'static>)> {
    task::current()
}
