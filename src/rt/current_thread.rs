//! The current-thread runtime: a runtime built with `worker_threads(0)` has one core and no
//! thread of its own. The core waits in `Shared::idle_cores` while nobody drives it; a thread
//! that calls `Runtime::block_on`, `Runtime::tick` or `Runtime::run_until_idle` takes it,
//! installs it as its worker (so the thread *is* the worker while it holds the core), runs the
//! same loop a pool worker runs (`worker/`), and gives it back.
//!
//! * Two threads blocking on it: the one without the core parks and retries every millisecond,
//!   taking the core over when the other lets go (`Handle::block_on`).
//! * A worker of *another* runtime blocking on it never takes the core (that would stop the
//!   worker's own runtime, see `block_on::block_on_driving`): it gives this runtime guest turns
//!   (`tick_as_guest`) between its own tasks instead.
//! * If the runtime shuts down while a thread holds the core, that thread tears the core down
//!   when it gives it back.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::scheduler::Shared;
use super::worker::{Interrupted, WorkerCx};
use super::{context, Handle};

impl Handle {
    /// One non-blocking round on this runtime's idle core (a runtime without worker threads that
    /// nobody drives right now), on behalf of a worker of another runtime that is blocked on a
    /// future of ours. Returns the number of tasks polled.
    pub(crate) fn tick_as_guest(&self) -> usize {
        self.with_idle_core(|cx| cx.tick()).unwrap_or(0)
    }

    /// Drives the idle core (runtimes without worker threads) until `future` completes.
    pub(crate) fn try_drive_idle_core<F: Future>(&self, future: Pin<&mut F>) -> Option<F::Output> {
        let out = self.with_idle_core(|cx| cx.drive(future, false, None))?;
        match out {
            Ok(out) => Some(out),
            Err(Interrupted::Shutdown) => panic!("the scraipe runtime shut down during block_on"),
        }
    }

    /// Takes the idle core (if this runtime has one and nobody drives it), installs it as this
    /// thread's worker, runs `f`, and gives it back.
    pub(crate) fn with_idle_core<R>(&self, f: impl FnOnce(&WorkerCx) -> R) -> Option<R> {
        let core = self.shared.idle_cores.lock().pop()?;
        struct Return<'a> {
            cx: Option<WorkerCx>,
            shared: &'a Arc<Shared>,
        }
        impl Drop for Return<'_> {
            fn drop(&mut self) {
                let cx = self.cx.take().expect("core present");
                if self.shared.is_shutdown() {
                    cx.teardown();
                } else {
                    self.shared.idle_cores.lock().push(cx.into_core());
                }
            }
        }
        let ret = Return {
            cx: Some(WorkerCx::new(self.shared.clone(), core)),
            shared: &self.shared,
        };
        let cx = ret.cx.as_ref().expect("core present");
        let _guard = context::enter_worker(cx);
        Some(f(cx))
    }
}
