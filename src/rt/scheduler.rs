//! The work-stealing scheduler: what each worker does, and how a wake finds its queue.
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
//! # One worker's loop (`WorkerCx::drive`)
//!
//! ```text
//! loop:
//!     poll the future being blocked on, if it was woken (nested block_on / Runtime::block_on)
//!     every event_interval ticks: fire due timers + poll the reactor without blocking
//!     every global_queue_interval ticks: take one task from the injector first
//!     next task: LIFO slot → own deque → injector batch
//!     none: fire timers, poll reactor(0), steal from siblings, spin for spin_before_park,
//!           then park: register as sleeper, re-check all queues, epoll_wait (timerfd armed
//!           for the next deadline)
//! ```
//!
//! Fairness: a task that wakes itself during its own poll (e.g. `yield_now`) goes to the back of
//! the deque, never the LIFO slot; the injector is checked every `global_queue_interval` ticks
//! even when the local queue is full; the reactor is polled every `event_interval` ticks even
//! when tasks keep coming, so a busy worker cannot starve I/O.
//!
//! # The sync bridge
//!
//! `block_on` called on a worker thread (from inside a task) does not block the thread: it
//! runs this same loop, polling the awaited future whenever its waker fires and other tasks in
//! between. That is what keeps a one-worker runtime alive when a task synchronously waits for
//! another task. See DESIGN.md for the limits.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use parking_lot::Mutex;

use super::blocking::BlockingPool;
use super::budget;
use super::context;
use super::driver::{Driver, STALL};
use super::idle::Idle;
use super::metrics::WorkerMetrics;
use super::reactor::ReactorShared;
use super::task::list::OwnedTasks;
use super::task::{Header, Notified, Schedule};
use super::Handle;

/// The longest a worker sleeps while it blocks on a future of a runtime without worker threads
/// (a *guest*, see `WorkerCx::drive`): nobody else drives the guest's timers and sockets.
const GUEST_TURN: Duration = Duration::from_millis(1);

/// Scheduler knobs, fixed at build time.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) spin_before_park: Duration,
    pub(crate) global_queue_interval: u32,
    pub(crate) event_interval: u32,
    pub(crate) lifo_slot: bool,
    pub(crate) max_lifo_polls: u32,
    pub(crate) timer_spin_window: Duration,
}

/// The state of one runtime shared by all its threads.
pub(crate) struct Shared {
    pub(crate) remotes: Box<[Remote]>,
    pub(crate) injector: Injector<Notified>,
    /// True once the injector is closed (shutdown). Pushes hold the read lock, closing takes
    /// the write lock: a push either lands before the close (and shutdown's drain sees it) or
    /// sees the close and drops its task. A plain flag checked before the push would let a
    /// push slip in after the final drain and leak the task (and, through it, the runtime).
    inject_closed: parking_lot::RwLock<bool>,
    pub(crate) idle: Idle,
    pub(crate) owned: OwnedTasks,
    shutdown: AtomicBool,
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
}

/// The parts of a worker other threads may touch.
pub(crate) struct Remote {
    pub(crate) stealer: Stealer<Notified>,
    /// Reactor + timer heap; the owner turns it, an idle sibling may when the owner is busy.
    pub(crate) driver: Driver,
    pub(crate) metrics: WorkerMetrics,
}

/// The parts of a worker only its driving thread touches.
pub(crate) struct Core {
    pub(crate) index: usize,
    local: Worker<Notified>,
    lifo: Cell<Option<Notified>>,
    lifo_polls: Cell<u32>,
    /// True while this worker dispatches timer and socket events: tasks they wake go to the back
    /// of the deque in event order (the LIFO slot is for one task waking another).
    dispatching: Cell<bool>,
    /// Ticks left until the next reactor/timer check and the next injector-first pick. Counting
    /// down avoids two integer divisions per task.
    event_countdown: Cell<u32>,
    global_countdown: Cell<u32>,
    searching: Cell<bool>,
    rng: Cell<u32>,
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
                driver: Driver::new()?,
                metrics: WorkerMetrics::default(),
            });
            cores.push(Box::new(Core {
                index,
                local,
                lifo: Cell::new(None),
                lifo_polls: Cell::new(0),
                dispatching: Cell::new(false),
                event_countdown: Cell::new(config.event_interval),
                global_countdown: Cell::new(config.global_queue_interval),
                searching: Cell::new(false),
                rng: Cell::new(0x9E37_79B9 ^ (index as u32).wrapping_mul(0x85EB_CA6B) | 1),
            }));
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
        });
        shared.blocking.set_runtime(Arc::downgrade(&shared));
        Ok((shared, cores))
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Acquire)
    }

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

    pub(crate) fn drain_injector(&self) {
        loop {
            match self.injector.steal() {
                Steal::Success(t) => drop(t),
                Steal::Retry => continue,
                Steal::Empty => break,
            }
        }
    }

    /// Wakes one parked worker if nobody is searching.
    pub(crate) fn notify_parked(&self) {
        if let Some(idx) = self.idle.worker_to_notify() {
            self.remotes[idx].driver.io.unpark();
        }
    }

    /// Is there queued work anywhere (injector or any worker's deque)?
    fn has_pending_work(&self) -> bool {
        !self.injector.is_empty() || self.remotes.iter().any(|r| !r.stealer.is_empty())
    }

    /// Spawns a task: onto the current worker's deque when called from one of our workers,
    /// else onto the injector.
    pub(crate) fn spawn<F>(self: &Arc<Self>, future: F) -> super::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let scheduler = TaskScheduler(self.clone());
        let (notified, handle) = super::task::spawn_task(future, scheduler, Some(&self.owned));
        if let Some(task) = notified {
            context::with_worker(|w| match w {
                Some(w) if Arc::ptr_eq(&w.shared, self) => w.push_spawned(task),
                _ => self.inject(task),
            });
        }
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

    fn release(&self, task: NonNull<Header>) -> bool {
        self.shared().owned.remove(task)
    }
}

/// What a thread driving a core works with; installed in the thread-local context.
pub(crate) struct WorkerCx {
    pub(crate) shared: Arc<Shared>,
    core: Box<Core>,
}

/// The waker of a future being blocked on by a worker: sets a flag, and interrupts the worker's
/// `poll` only if it is asleep in it.
struct Signal {
    notified: AtomicBool,
    sleeping: AtomicBool,
    reactor: Arc<ReactorShared>,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if self.notified.swap(true, SeqCst) {
            return;
        }
        if self.sleeping.load(SeqCst) {
            self.reactor.unpark();
        }
    }
}

/// Puts the entered handle back when `drive` returns or unwinds.
struct EnteredGuard(Option<Handle>);

impl Drop for EnteredGuard {
    fn drop(&mut self) {
        context::replace_entered(self.0.take());
    }
}

/// Why `drive` returned without the future's output.
pub(crate) enum Interrupted {
    Shutdown,
}

impl WorkerCx {
    pub(crate) fn new(shared: Arc<Shared>, core: Box<Core>) -> WorkerCx {
        WorkerCx { shared, core }
    }

    pub(crate) fn into_core(self) -> Box<Core> {
        self.core
    }

    pub(crate) fn handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
        }
    }

    pub(crate) fn index(&self) -> usize {
        self.core.index
    }

    pub(crate) fn remote(&self) -> &Remote {
        &self.shared.remotes[self.core.index]
    }

    pub(crate) fn reactor_shared(&self) -> &Arc<ReactorShared> {
        &self.remote().driver.io
    }

    /// Schedules a task on this worker (called on this worker's thread only).
    pub(crate) fn push_local(&self, task: Notified, is_yield: bool) {
        let core = &self.core;
        if self.shared.is_shutdown() {
            drop(task);
            return;
        }
        if is_yield || !self.shared.config.lifo_slot || core.dispatching.get() {
            core.local.push(task);
        } else {
            match core.lifo.replace(Some(task)) {
                // The slot was free: this task runs next, no one else needs waking for it.
                None => return,
                Some(prev) => core.local.push(prev),
            }
        }
        self.notify_if_surplus();
    }

    /// Wakes a sibling only if this worker has more queued work than it is about to run itself
    /// (as tokio does): a chain of spawns or a ping-pong stays on one warm core instead of paying
    /// a wake-up and cross-core cache traffic per task. A searching worker will notify when it
    /// stops searching; a lone worker has nobody to wake.
    fn notify_if_surplus(&self) {
        let core = &self.core;
        if core.searching.get() || self.shared.remotes.len() == 1 {
            return;
        }
        if !self.shared.idle.maybe_should_notify() {
            return;
        }
        let lifo = core.lifo.take();
        let queued = usize::from(lifo.is_some()) + core.local.len();
        core.lifo.set(lifo);
        if queued > 1 {
            self.shared.notify_parked();
        }
    }

    /// Spawns onto this worker's deque.
    pub(crate) fn push_spawned(&self, task: Notified) {
        self.core.local.push(task);
        self.notify_if_surplus();
    }

    /// Runs the worker loop until `future` completes.
    ///
    /// `top_level_pool_thread` is true only for a pool thread's outermost loop (whose future
    /// never completes): at shutdown it returns at once instead of giving the future a last
    /// poll. `guest` is another runtime, without worker threads, that the caller blocks on: it
    /// gets a non-blocking turn whenever this worker runs out of its own work, and this worker
    /// sleeps at most `GUEST_TURN` at a time so the guest's timers and sockets keep moving.
    pub(crate) fn drive<F: Future>(
        &self,
        mut future: Pin<&mut F>,
        top_level_pool_thread: bool,
        guest: Option<&Handle>,
    ) -> Result<F::Output, Interrupted> {
        let signal = Arc::new(Signal {
            notified: AtomicBool::new(true),
            sleeping: AtomicBool::new(false),
            reactor: self.reactor_shared().clone(),
        });
        let waker = Waker::from(signal.clone());
        let mut cx = Context::from_waker(&waker);
        // Our own tasks must not see a runtime entered by the code that called us; the awaited
        // future must (it may belong to that runtime). The guard restores it however we leave.
        let entered = EnteredGuard(context::replace_entered(None));
        let mut poll_awaited = |cx: &mut Context<'_>| {
            let hidden = context::replace_entered(entered.0.clone());
            // A fresh budget per poll: the blocked task's own budget may be spent, and the
            // future it waits for must still make progress.
            let budget = budget::start();
            let res = future.as_mut().poll(cx);
            budget::restore(budget);
            context::replace_entered(hidden);
            res
        };
        loop {
            // Load first: the swap is a locked instruction, and most iterations see `false`.
            if signal.notified.load(Relaxed) && signal.notified.swap(false, AcqRel) {
                if let Poll::Ready(out) = poll_awaited(&mut cx) {
                    return Ok(out);
                }
            }
            if self.shared.is_shutdown() {
                if !top_level_pool_thread {
                    // Give the awaited future one last chance: shutdown wakes I/O with errors.
                    self.maintenance();
                    if let Poll::Ready(out) = poll_awaited(&mut cx) {
                        return Ok(out);
                    }
                }
                return Err(Interrupted::Shutdown);
            }
            match self.next_task() {
                Some(task) => self.run_task(task),
                None => match guest {
                    Some(guest) if guest.tick_as_guest() > 0 => {}
                    _ => self.idle(&signal, guest.is_some()),
                },
            }
        }
    }

    fn next_task(&self) -> Option<Notified> {
        let core = &self.core;
        let config = &self.shared.config;
        let events = core.event_countdown.get() - 1;
        if events == 0 {
            core.event_countdown.set(config.event_interval);
            self.maintenance();
        } else {
            core.event_countdown.set(events);
        }
        let global = core.global_countdown.get() - 1;
        if global == 0 {
            core.global_countdown.set(config.global_queue_interval);
            if let Some(task) = self.steal_one_injected() {
                return Some(task);
            }
        } else {
            core.global_countdown.set(global);
        }
        if let Some(task) = core.lifo.take() {
            let polls = core.lifo_polls.get();
            if polls < config.max_lifo_polls {
                core.lifo_polls.set(polls + 1);
                return Some(task);
            }
            core.local.push(task);
        }
        core.lifo_polls.set(0);
        if let Some(task) = core.local.pop() {
            return Some(task);
        }
        self.steal_injected_batch()
    }

    fn steal_one_injected(&self) -> Option<Notified> {
        loop {
            match self.shared.injector.steal() {
                Steal::Success(t) => return Some(t),
                Steal::Retry => continue,
                Steal::Empty => return None,
            }
        }
    }

    fn steal_injected_batch(&self) -> Option<Notified> {
        if self.shared.injector.is_empty() {
            return None;
        }
        loop {
            match self.shared.injector.steal_batch_and_pop(&self.core.local) {
                Steal::Success(t) => return Some(t),
                Steal::Retry => continue,
                Steal::Empty => return None,
            }
        }
    }

    fn run_task(&self, task: Notified) {
        let core = &self.core;
        if core.searching.get() {
            core.searching.set(false);
            if self.shared.idle.stop_searching() {
                // We were the last one looking; there may be more work than we can take.
                self.shared.notify_parked();
            }
        }
        self.remote().metrics.add_poll();
        let budget = budget::start();
        task.run();
        budget::restore(budget);
    }

    /// Fires due timers and polls the reactor without blocking. Returns how many tasks that woke.
    fn maintenance(&self) -> usize {
        let remote = self.remote();
        let was = self.core.dispatching.replace(true);
        let woken = remote.driver.turn_as_owner(&remote.metrics);
        self.core.dispatching.set(was);
        woken
    }

    /// Turns the drivers of siblings that are busy (not asleep in their driver) and have not
    /// turned it for a while: their sockets and timers must not wait for them. Wake-ups land on
    /// this worker's queue. See `driver.rs`.
    fn assist_unattended_drivers(&self) -> usize {
        let shared = &self.shared;
        if shared.remotes.len() == 1 {
            return 0;
        }
        let was = self.core.dispatching.replace(true);
        let metrics = &self.remote().metrics;
        let mut woken = 0;
        for (idx, remote) in shared.remotes.iter().enumerate() {
            if idx != self.core.index {
                woken += remote.driver.turn_if_unattended(metrics);
            }
        }
        self.core.dispatching.set(was);
        woken
    }

    /// Whether some sibling is awake, so its driver might stall while we sleep.
    fn a_sibling_is_awake(&self) -> bool {
        let index = self.core.index;
        self.shared
            .remotes
            .iter()
            .enumerate()
            .any(|(i, r)| i != index && r.driver.is_unheld())
    }

    /// Tries to steal from siblings and the injector. The worker counts as *searching* (which
    /// makes producers skip waking others) only if fewer than half the workers already do; it
    /// steals either way, so visible work never waits for a searcher slot.
    fn steal_work(&self) -> Option<Notified> {
        let core = &self.core;
        let shared = &self.shared;
        if !core.searching.get() && shared.idle.try_start_searching() {
            core.searching.set(true);
        }
        let n = shared.remotes.len();
        let start = self.next_random() as usize % n;
        for i in 0..n {
            let idx = (start + i) % n;
            if idx == core.index {
                continue;
            }
            let stealer = &shared.remotes[idx].stealer;
            loop {
                let before = core.local.len();
                match stealer.steal_batch_and_pop(&core.local) {
                    Steal::Success(t) => {
                        let moved = core.local.len() - before + 1;
                        self.remote().metrics.add_steal(moved as u64);
                        return Some(t);
                    }
                    Steal::Retry => continue,
                    Steal::Empty => break,
                }
            }
        }
        self.steal_injected_batch()
    }

    fn next_random(&self) -> u32 {
        // xorshift32: only used to spread steal attempts.
        let mut x = self.core.rng.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.core.rng.set(x);
        x
    }

    fn has_local_work(&self) -> bool {
        // A Cell cannot be peeked: take the LIFO task out and put it back.
        let lifo = self.core.lifo.take();
        let has = lifo.is_some();
        self.core.lifo.set(lifo);
        has || !self.core.local.is_empty()
    }

    /// Nothing to run: timers, I/O, stealing, a short spin, then sleep.
    fn idle(&self, signal: &Signal, has_guest: bool) {
        if self.maintenance() > 0 || self.has_local_work() {
            return;
        }
        if self.assist_unattended_drivers() > 0 {
            return;
        }
        if let Some(task) = self.steal_work() {
            self.run_task(task);
            return;
        }
        let spin = self.shared.config.spin_before_park;
        if !spin.is_zero() && self.core.searching.get() {
            let start = Instant::now();
            let mut spins = 0u32;
            loop {
                super::block_on::spin_pause(&mut spins);
                if signal.notified.load(Relaxed) || self.shared.is_shutdown() {
                    return;
                }
                if let Some(task) = self.steal_work() {
                    self.run_task(task);
                    return;
                }
                if spins.is_multiple_of(16) && self.maintenance() > 0 {
                    return;
                }
                if start.elapsed() >= spin {
                    break;
                }
            }
        }
        self.park(signal, has_guest);
    }

    fn park(&self, signal: &Signal, has_guest: bool) {
        let core = &self.core;
        let shared = &self.shared;
        let remote = self.remote();
        let was_searching = core.searching.replace(false);
        if shared.idle.park(core.index, was_searching) && shared.has_pending_work() {
            shared.notify_parked();
        }
        signal.sleeping.store(true, SeqCst);
        // Re-check after announcing sleep: see the Dekker argument in idle.rs.
        let skip =
            signal.notified.load(SeqCst) || shared.is_shutdown() || shared.has_pending_work();
        let margin = shared.config.timer_spin_window;
        let was_dispatching = core.dispatching.replace(true);
        if !skip {
            let deadline = remote.driver.timers.next_deadline();
            // Sleep at most STALL while a sibling is awake: if it is stuck in a task, its
            // driver needs us (see driver.rs). A guest runtime needs its turns too.
            let timeout = if has_guest {
                Some(GUEST_TURN)
            } else if self.a_sibling_is_awake() {
                Some(STALL)
            } else {
                None
            };
            let mut held = remote.driver.hold();
            // Wake `margin` early: the kernel's wake-up latency (tens of µs on a VM) is then
            // spent before the deadline instead of after it.
            held.arm_timer(deadline.map(|d| d.checked_sub(margin).unwrap_or(d)));
            remote.metrics.add_park();
            held.sleep(timeout, &remote.metrics);
            drop(held);
            remote.driver.mark_owner_turn();
            remote.metrics.add_wakeup();
        }
        signal.sleeping.store(false, SeqCst);
        if shared.idle.unpark(core.index) {
            // A producer woke us and counted us as searching.
            core.searching.set(true);
        }
        self.spin_until_close_deadline(signal, margin);
        let fired = remote.driver.timers.fire_due(Instant::now());
        remote.metrics.add_timers_fired(fired);
        self.assist_unattended_drivers();
        core.dispatching.set(was_dispatching);
    }

    /// If the next timer is due within `margin`, spin until it is (unless other work shows up),
    /// so it fires within a microsecond or two of its deadline and never before.
    fn spin_until_close_deadline(&self, signal: &Signal, margin: Duration) {
        if margin.is_zero() {
            return;
        }
        let Some(deadline) = self.remote().driver.timers.next_deadline() else {
            return;
        };
        let now = Instant::now();
        if deadline <= now || deadline - now > margin {
            return;
        }
        while Instant::now() < deadline {
            std::hint::spin_loop();
            if signal.notified.load(Relaxed)
                || self.has_local_work()
                || !self.shared.injector.is_empty()
            {
                return;
            }
        }
    }

    /// Runs one scheduling round for a runtime driven by the application: timers and I/O
    /// without blocking, then at most `event_interval` tasks. Returns the number of tasks polled.
    pub(crate) fn tick(&self) -> usize {
        self.maintenance();
        let mut polled = 0;
        while polled < self.shared.config.event_interval as usize {
            match self.next_task() {
                Some(task) => {
                    self.run_task(task);
                    polled += 1;
                }
                None => break,
            }
        }
        if self.core.searching.replace(false) {
            self.shared.idle.stop_searching();
        }
        polled
    }

    /// After the loop ended for good: drop queued tasks, fail pending I/O, forget timers.
    pub(crate) fn teardown(&self) {
        let core = &self.core;
        drop(core.lifo.take());
        while let Some(task) = core.local.pop() {
            drop(task);
        }
        self.remote().driver.shutdown();
    }
}
