//! Shutdown: how a runtime stops, and why nothing is lost or left dangling.
//!
//! Shutting down races with everything else a runtime does. Workers may be in the middle of a
//! poll; plain threads may be waking tasks, spawning, registering a socket or a timer through
//! `Handle::enter`; a worker may be stuck in a task that never yields. The protocol below is
//! written so that each of those either completes before the step that would need to see it,
//! or is refused by a step that has already happened — never lands in between.
//!
//! 1. **Flag.** `begin_shutdown` sets `Shared::shutdown` (once; a second call is a no-op),
//!    closes the injector under its write lock, and wakes every worker's driver. From here on
//!    a push from outside the runtime is refused under the injector's read lock, and the
//!    refused queue entry is dropped (`Notified`'s `Drop`): a task that never parked is in no
//!    other list, so the drop cancels it; a task that parked is in the owned-task list, which
//!    step 4 cancels on this thread — the refused push may come from a waker called under a
//!    lock of its own, which must not run the task's destructors (test
//!    `a_wake_during_shutdown_does_not_run_destructors_on_the_waking_thread`). A worker
//!    pushing onto its own queue checks the flag first; its queue is emptied by that same
//!    worker in step 2, so no push can follow.
//!
//! 2. **Workers leave their loop** after their current poll (`WorkerCx::drive` checks the flag
//!    once per iteration) and tear down: they drop (so cancel) their queued entries and shut their driver
//!    down. Shutting a driver down closes its reactor's slab and its timer heap, each *under
//!    the lock its inserts take*: a socket registered concurrently is either already in the
//!    slab, and is marked `SHUTDOWN` with the rest (its pending reads and writes fail with "the
//!    scraipe runtime has shut down"), or is refused; a timer is either in the heap, and is
//!    woken as `ORPHANED`, or is refused (its `Sleep` then panics with a message instead of
//!    waiting forever). A check of the flag followed by an insert would leave a window between
//!    the two; the closed states leave none.
//!
//! 3. **The caller waits** for the worker threads, at most until the deadline. A worker stuck
//!    in a task that never yields is left behind: it tears down on its own when the task
//!    returns. A runtime without worker threads keeps its one core in `idle_cores` while nobody
//!    drives it; that core is torn down here, on the caller's thread.
//!
//! 4. **The owned-task list is closed and emptied**, shard by shard, each under its lock. The
//!    list holds every task that has parked at least once (tasks link themselves at their first
//!    `Pending`, see `task/state.rs` `LINKED`; a task that never parked is in a queue or being
//!    polled). A first park racing this is linked before, and cancelled here, or refused and
//!    cancelled by its runner. Every task taken out is cancelled: if no thread is polling it,
//!    its future is dropped right here and its `JoinHandle` reports `JoinError::is_cancelled`;
//!    a task a stuck worker is polling is marked `CANCELLED`, and that worker drops it when the
//!    poll returns.
//!
//! 5. **The injector is drained** of entries pushed before step 1 closed it, and so are the
//!    deques of workers still stuck in a task (they cannot empty their own yet); each entry
//!    dropped cancels its task. Only the LIFO slot and the yielded-task list of a stuck worker
//!    wait for that worker to return.
//!
//! 6. **The blocking pool** stops taking jobs, cancels queued ones and waits (within the same
//!    deadline) for running ones.
//!
//! Wakers and join handles may outlive all of this. A waker woken after shutdown finds its task
//! complete (a no-op) or schedules it into a closed injector (refused). That is safe because
//! each task holds an `Arc` of the runtime's shared state (`scheduler.rs`, `TaskScheduler`):
//! whatever `schedule` touches lives as long as the task. It cannot keep the runtime alive in a
//! cycle: after steps 2–5 no queue, heap, reactor or list of the runtime holds a task.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_deque::Steal;
use parking_lot::{Condvar, Mutex};

use super::context;
use super::scheduler::Shared;
use super::worker::WorkerCx;

impl Shared {
    /// Flags shutdown and wakes every worker. Returns false if it was already flagged.
    pub(crate) fn begin_shutdown(&self) -> bool {
        if self.shutdown.swap(true, SeqCst) {
            return false;
        }
        *self.inject_closed.write() = true;
        for r in self.remotes.iter() {
            r.driver.io.unpark();
        }
        true
    }

    /// Drops (so cancels) every entry left in the injector and in the workers' deques.
    pub(crate) fn drain_queues(&self) {
        drain(|| self.injector.steal());
        for remote in self.remotes.iter() {
            drain(|| remote.stealer.steal());
        }
    }
}

/// Steals until empty, dropping each entry.
fn drain<T>(steal: impl Fn() -> Steal<T>) {
    loop {
        match steal() {
            Steal::Success(t) => drop(t),
            Steal::Retry => continue,
            Steal::Empty => break,
        }
    }
}

impl WorkerCx {
    /// After the loop ended for good: drop queued tasks, fail pending I/O, forget timers.
    pub(crate) fn teardown(&self) {
        self.drop_queued_tasks();
        self.remote().driver.shutdown();
    }
}

/// Counts running worker threads so shutdown can wait for them with a deadline.
pub(crate) struct ExitLatch {
    pub(crate) running: Mutex<usize>,
    pub(crate) cv: Condvar,
}

pub(crate) struct LatchGuard(pub(crate) Arc<ExitLatch>);

impl Drop for LatchGuard {
    fn drop(&mut self) {
        *self.0.running.lock() -= 1;
        self.0.cv.notify_all();
    }
}

/// Shuts a runtime down: the protocol described at the top of this file, steps 1 to 6.
pub(crate) fn shut_down(shared: &Arc<Shared>, latch: &ExitLatch, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    if !shared.begin_shutdown() {
        return;
    }
    // A worker of ours dropping the runtime cannot wait for itself.
    let me = context::with_worker(|w| {
        w.filter(|w| Arc::ptr_eq(&w.shared, shared))
            .map(|w| w.index())
    });
    {
        let mut running = latch.running.lock();
        let target = usize::from(me.is_some());
        while *running > target {
            if latch.cv.wait_until(&mut running, deadline).timed_out() {
                log::warn!(
                    "runtime shutdown: {} worker(s) still busy, detaching",
                    *running - target
                );
                break;
            }
        }
    }
    // A runtime without worker threads keeps its core here while nobody drives it.
    let idle: Vec<_> = shared.idle_cores.lock().drain(..).collect();
    for core in idle {
        let cx = WorkerCx::new(shared.clone(), core);
        cx.teardown();
    }
    for task in shared.owned.close_and_take_all() {
        task.shutdown();
    }
    shared.drain_queues();
    shared.blocking.shutdown(deadline);
}
