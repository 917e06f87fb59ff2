//! Always-on counters for people studying the executor.
//!
//! Each counter of a worker is written only by that worker's thread, so increments are a
//! relaxed load and store (plain `mov`s on x86) rather than a locked read-modify-write; readers
//! on other threads see a value that is at most a few increments stale.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

/// Per-worker counters, written by the owner only. Aligned to their own cache lines so the
/// owner's writes do not bounce a line other workers read (the stealers sit next to them).
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct WorkerMetrics {
    polls: AtomicU64,
    steals: AtomicU64,
    steal_operations: AtomicU64,
    parks: AtomicU64,
    wakeups: AtomicU64,
    io_events: AtomicU64,
    timers_fired: AtomicU64,
    /// Tasks spawned on, and tasks completed on, this worker (for `live_tasks`).
    spawned: AtomicU64,
    completed: AtomicU64,
}

#[inline]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

impl WorkerMetrics {
    #[inline]
    pub(crate) fn add_spawned(&self) {
        bump(&self.spawned, 1)
    }
    #[inline]
    pub(crate) fn add_completed(&self) {
        bump(&self.completed, 1)
    }
    /// (spawned, completed) on this worker so far.
    pub(crate) fn spawned_completed(&self) -> (u64, u64) {
        (self.spawned.load(Relaxed), self.completed.load(Relaxed))
    }
    pub(crate) fn add_poll(&self) {
        bump(&self.polls, 1)
    }
    pub(crate) fn add_steal(&self, tasks: u64) {
        bump(&self.steals, tasks);
        bump(&self.steal_operations, 1);
    }
    pub(crate) fn add_park(&self) {
        bump(&self.parks, 1)
    }
    pub(crate) fn add_wakeup(&self) {
        bump(&self.wakeups, 1)
    }
    pub(crate) fn add_io_events(&self, n: usize) {
        if n > 0 {
            bump(&self.io_events, n as u64)
        }
    }
    pub(crate) fn add_timers_fired(&self, n: usize) {
        if n > 0 {
            bump(&self.timers_fired, n as u64)
        }
    }

    pub(crate) fn snapshot(&self, local_queue_depth: usize, unpark_requests: u64) -> WorkerStats {
        WorkerStats {
            polls: self.polls.load(Relaxed),
            steals: self.steals.load(Relaxed),
            steal_operations: self.steal_operations.load(Relaxed),
            parks: self.parks.load(Relaxed),
            wakeups: self.wakeups.load(Relaxed),
            io_events: self.io_events.load(Relaxed),
            timers_fired: self.timers_fired.load(Relaxed),
            local_queue_depth,
            unpark_requests,
        }
    }
}

/// A snapshot of one worker's counters. Counters are cumulative since the runtime started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Task polls performed by this worker.
    pub polls: u64,
    /// Tasks taken from other workers' queues (a batch counts each task).
    pub steals: u64,
    /// Successful steal operations (batches).
    pub steal_operations: u64,
    /// Times the worker blocked in its reactor with nothing to do.
    pub parks: u64,
    /// Times it came back from such a block (I/O, timer, or being woken for new work).
    pub wakeups: u64,
    /// Socket readiness events dispatched by its reactor.
    pub io_events: u64,
    /// Timers it fired.
    pub timers_fired: u64,
    /// Tasks waiting in its local queue right now.
    pub local_queue_depth: usize,
    /// Wake-up requests sent to its reactor (eventfd writes) by any thread.
    pub unpark_requests: u64,
}

/// A snapshot of a whole runtime. See [`crate::rt::Handle::metrics`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeMetrics {
    /// One entry per worker, in worker order.
    pub workers: Vec<WorkerStats>,
    /// Tasks waiting in the global injector queue.
    pub injector_depth: usize,
    /// Tasks spawned and not yet finished.
    pub live_tasks: usize,
    /// Threads currently in the blocking pool.
    pub blocking_threads: usize,
    /// Blocking jobs waiting for a thread.
    pub blocking_queue_depth: usize,
}

impl RuntimeMetrics {
    /// Sum of `polls` over all workers.
    pub fn total_polls(&self) -> u64 {
        self.workers.iter().map(|w| w.polls).sum()
    }
    /// Sum of `steals` over all workers.
    pub fn total_steals(&self) -> u64 {
        self.workers.iter().map(|w| w.steals).sum()
    }
    /// Sum of `parks` over all workers.
    pub fn total_parks(&self) -> u64 {
        self.workers.iter().map(|w| w.parks).sum()
    }
}
