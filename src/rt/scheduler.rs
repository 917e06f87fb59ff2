//! The work-stealing scheduler's shared state: the queues, and how a wake finds its queue.
//!
//! # Queues
//!
//! * Each worker owns a crossbeam `Worker` deque (FIFO) plus a one-task **LIFO slot**. Spawns
//!   from a worker go to the back of its deque; a task woken by another task on the same worker
//!   goes into the LIFO slot and runs next (message passing stays hot in cache). A task that
//!   occupies the slot too many times in a row is demoted to the deque, so two tasks
//!   ping-ponging cannot starve the rest.
//! * One crossbeam `Injector` receives work from outside the runtime (other threads, other
//!   runtimes, the blocking pool).
//! * An idle worker steals a batch (half) from the injector or from a sibling's deque.
//!
//! # How a wake finds its queue
//!
//! A task's header records its runtime (a pointer to `Shared`), not a worker. When it is woken, the
//! waking thread decides: a worker of the same runtime pushes it on its own queue (LIFO slot);
//! any other thread pushes it on the injector and wakes one parked worker. Socket and timer
//! events are dispatched by the worker owning that reactor, so a task parked on a socket comes
//! back on that reactor's worker even if it was stolen and ran elsewhere in between — its waker
//! never needs to know where it last ran.
//!
//!
//! The worker loop that consumes these queues is in `worker/`.

use std::ptr::NonNull;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_deque::{Injector, Stealer, Worker};
use parking_lot::Mutex;

use super::blocking::BlockingPool;
use super::context;
use super::driver::Driver;
use super::idle::Idle;
use super::metrics::WorkerMetrics;
use super::task::list::OwnedTasks;
use super::task::raw::OwnedRef;
use super::task::{Header, Notified, Schedule};
use super::worker::Core;

/// Scheduler knobs, fixed at build time.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) spin_before_park: Duration,
    pub(crate) global_queue_interval: u32,
    pub(crate) event_interval: u32,
    pub(crate) lifo_slot: bool,
    pub(crate) max_lifo_polls: u32,
    pub(crate) timer_spin_window: Duration,
    /// Opt-in: spin to every timer deadline, however many are pending or however far
    /// (see `worker/park.rs`, "timer policy").
    pub(crate) precise_timers: bool,
}

/// The state of one runtime shared by all its threads.
pub(crate) struct Shared {
    pub(crate) remotes: Box<[Remote]>,
    pub(crate) injector: Injector<Notified>,
    /// True once the injector is closed (shutdown). Pushes hold the read lock, closing takes
    /// the write lock: a push either lands before the close (and shutdown's drain sees it) or
    /// sees the close and drops its task. A plain flag checked before the push would let a
    /// push slip in after the final drain and leak the task (and, through it, the runtime).
    pub(super) inject_closed: parking_lot::RwLock<bool>,
    pub(crate) idle: Idle,
    pub(crate) owned: OwnedTasks,
    pub(super) shutdown: AtomicBool,
    pub(crate) config: Config,
    pub(crate) blocking: BlockingPool,
    /// Cores no thread is driving: the single core of a runtime without worker threads
    /// waits here between `block_on`/`tick` calls. (Boxed: cores move between threads, the
    /// idle list and `WorkerCx`, and a box makes each move a pointer copy.)
    #[allow(clippy::vec_box)]
    pub(crate) idle_cores: Mutex<Vec<Box<Core>>>,
    /// Built with `worker_threads(0)`: one core, driven by callers of block_on/tick.
    pub(crate) without_worker_threads: bool,
    next_remote: AtomicUsize,
    /// The worker that ticks for the runtime's timers when they are many (`NO_TICKER`: none);
    /// see `worker/park.rs`.
    pub(crate) ticker: AtomicUsize,
    /// Tasks spawned, and tasks completed, by threads that are not workers of this runtime
    /// (workers count theirs in their own `WorkerMetrics`, without a locked instruction).
    /// `RuntimeMetrics::live_tasks` is spawned minus completed: the owned-task list only holds
    /// tasks that have parked.
    pub(crate) spawned_elsewhere: AtomicU64,
    pub(crate) completed_elsewhere: AtomicU64,
}

/// `Shared::ticker` when no worker ticks.
pub(crate) const NO_TICKER: usize = usize::MAX;

/// The parts of a worker other threads may touch.
pub(crate) struct Remote {
    pub(crate) stealer: Stealer<Notified>,
    /// Reactor + timer heap; the owner turns it, an idle sibling may when the owner is busy.
    /// Shared (`Arc`) because a registered `Sleep` holds its driver explicitly (`time.rs`).
    pub(crate) driver: Arc<Driver>,
    pub(crate) metrics: WorkerMetrics,
    /// The task this worker is polling, for the long-poll watchdog.
    #[cfg(feature = "observatory")]
    pub(crate) obs_slot: super::observe::PollSlot,
}

impl Shared {
    /// Builds the shared state and one core per worker (one core when `worker_threads` is 0).
    #[allow(clippy::vec_box)]
    pub(crate) fn new(
        worker_threads: usize,
        config: Config,
        blocking: BlockingPool,
    ) -> std::io::Result<(Arc<Shared>, Vec<Box<Core>>)> {
        let workers = worker_threads.max(1);
        let mut remotes = Vec::with_capacity(workers);
        let mut cores = Vec::with_capacity(workers);
        for index in 0..workers {
            let local = Worker::new_fifo();
            remotes.push(Remote {
                stealer: local.stealer(),
                driver: Arc::new(Driver::new()?),
                metrics: WorkerMetrics::default(),
                #[cfg(feature = "observatory")]
                obs_slot: Default::default(),
            });
            cores.push(Box::new(Core::new(index, local, &config)));
        }
        let shared = Arc::new(Shared {
            remotes: remotes.into_boxed_slice(),
            injector: Injector::new(),
            inject_closed: parking_lot::RwLock::new(false),
            idle: Idle::new(workers),
            owned: OwnedTasks::new(workers * 4),
            shutdown: AtomicBool::new(false),
            config,
            blocking,
            idle_cores: Mutex::new(Vec::new()),
            without_worker_threads: worker_threads == 0,
            next_remote: AtomicUsize::new(0),
            ticker: AtomicUsize::new(NO_TICKER),
            spawned_elsewhere: AtomicU64::new(0),
            completed_elsewhere: AtomicU64::new(0),
        });
        shared.blocking.set_runtime(Arc::downgrade(&shared));
        Ok((shared, cores))
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Acquire)
    }

    /// A worker for work that comes from outside the runtime (sockets, timers), round-robin.
    pub(crate) fn pick_remote(&self) -> &Remote {
        let i = self.next_remote.fetch_add(1, Relaxed) % self.remotes.len();
        &self.remotes[i]
    }

    /// Pushes a task from outside the runtime.
    pub(crate) fn inject(&self, task: Notified) {
        {
            let closed = self.inject_closed.read();
            if *closed {
                // The task stays in the owned-task list, which shutdown cancels.
                drop(closed);
                drop(task);
                return;
            }
            self.injector.push(task);
        }
        self.notify_parked();
    }

    /// Wakes one parked worker if nobody is searching.
    pub(crate) fn notify_parked(&self) {
        if let Some(idx) = self.idle.worker_to_notify() {
            self.remotes[idx].driver.io.unpark();
            super::block_on::note_woke_a_worker();
        }
    }

    /// Is there queued work anywhere (injector or any worker's deque)?
    pub(crate) fn has_pending_work(&self) -> bool {
        !self.injector.is_empty() || self.remotes.iter().any(|r| !r.stealer.is_empty())
    }

    /// Spawns a task: onto the current worker's deque when called from one of our workers,
    /// else onto the injector.
    #[cfg_attr(feature = "observatory", inline(always))]
    pub(crate) fn spawn<F>(
        self: &Arc<Self>,
        future: F,
        #[cfg(feature = "observatory")] site: super::SpawnLoc,
    ) -> super::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let scheduler = TaskScheduler(self.clone());
        let (notified, handle) = super::sited!(super::task::spawn_task(future, scheduler); site);
        context::with_worker(|w| match w {
            Some(w) if Arc::ptr_eq(&w.shared, self) => {
                w.remote().metrics.add_spawned();
                if let Some(task) = notified {
                    w.push_spawned(task);
                }
            }
            _ => {
                self.spawned_elsewhere.fetch_add(1, Relaxed);
                if let Some(task) = notified {
                    self.inject(task);
                }
            }
        });
        handle
    }

    fn schedule_task(&self, task: Notified, is_yield: bool) {
        context::with_worker(|w| match w {
            Some(w) if std::ptr::eq(&*w.shared, self) => w.push_local(task, is_yield),
            _ => self.inject(task),
        })
    }
}

/// The scheduler stored in every task: an `Arc` to its runtime's shared state.
///
/// A waker can be woken from any thread at any time — a plain thread, another runtime's
/// worker — and may win the `SCHEDULED` bit of an idle task, be preempted, and only then call
/// `schedule`. Meanwhile `Runtime::drop` may have cancelled every task and released its own
/// `Arc<Shared>`. So whatever `schedule` touches must be kept alive by the task itself, not by
/// the runtime: the task owns one strong count of `Shared`, dropped with the task's allocation.
/// (An earlier version held a raw pointer here and was a use-after-free in exactly that race;
/// `tests/rt_races.rs` under `.ci/sanitize` catches it.)
///
/// No cycle outlives shutdown: `Shared` reaches tasks only through its queues, timer heaps,
/// reactors and the owned-task list, and shutdown empties all of them (see `mod.rs`).
#[derive(Clone)]
pub(crate) struct TaskScheduler(Arc<Shared>);

impl TaskScheduler {
    fn shared(&self) -> &Shared {
        &self.0
    }
}

impl Schedule for TaskScheduler {
    fn schedule(&self, task: Notified) {
        self.shared().schedule_task(task, false)
    }

    fn schedule_yield(&self, task: Notified) {
        self.shared().schedule_task(task, true)
    }

    fn link(&self, task: OwnedRef) -> Result<(), OwnedRef> {
        self.shared().owned.bind(task)
    }

    fn release(&self, task: NonNull<Header>, linked: bool) -> bool {
        let shared = self.shared();
        context::with_worker(|w| match w {
            Some(w) if std::ptr::eq(&*w.shared, shared) => w.remote().metrics.add_completed(),
            _ => {
                shared.completed_elsewhere.fetch_add(1, Relaxed);
            }
        });
        linked && shared.owned.remove(task)
    }
}
