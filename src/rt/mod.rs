//! scraipe's own async runtime: a pool of worker threads, each a mio event loop with a task
//! queue, load-balanced by work stealing; timers with microsecond precision; async TCP; a
//! blocking pool; and a sync bridge ([`block_on`]) that works everywhere, even inside a task.
//!
//! ```
//! use scraipe::rt::{Runtime, sleep};
//! use std::time::Duration;
//!
//! let rt = Runtime::builder().worker_threads(2).build()?;
//! let answer = rt.block_on(async {
//!     let task = scraipe::rt::spawn(async {
//!         sleep(Duration::from_millis(1)).await;
//!         40
//!     });
//!     task.await.unwrap() + 2
//! });
//! assert_eq!(answer, 42);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Module map (each file opens with the protocol it implements). Imports mostly point down this
//! list. The exceptions are deliberate and few: `context` is the thread-local glue every layer
//! asks "which worker am I?" (so a wake can find its queue, and a new socket or timer its
//! driver — asked once: the registration then holds its driver); `scheduler.rs` names
//! `worker::Core` to park idle cores; `blocking.rs` holds a `Weak` of `scheduler::Shared`.
//!
//! * `mod.rs` — the public face: `Builder`, `Runtime`, `Handle`, `spawn`; `block_on.rs` — the
//!   sync bridge.
//! * `shutdown.rs` — the shutdown protocol, start to end.
//! * `current_thread.rs` — a runtime without threads, driven by `block_on`/`tick` callers.
//! * `worker/` — one worker's loop (`mod.rs`), idling and parking (`park.rs`), the early-wake
//!   timer spin (`timer_spin.rs`); `idle.rs` — who sleeps and whom to wake.
//! * `scheduler.rs` — the runtime's shared state, its queues, and how a wake finds its queue.
//! * `driver.rs` — a worker's reactor + timer heap, turned by its owner or an idle sibling;
//!   `reactor.rs` — mio `Poll`, registrations, readiness; `time.rs` — timers.
//! * `task/` — one allocation per task, the state word, the waker, `JoinHandle`.
//! * `budget.rs` — the cooperative budget; `context.rs` — which worker and runtime this thread
//!   serves.
//! * `blocking.rs` — `spawn_blocking`.
//! * `net/` — TCP; `sync/` — oneshot, mpsc, semaphore; `join.rs` — waiting for many tasks.
//! * `loom.rs` — std or loom primitives; `loom_models.rs` — the loom models (`.ci/loom`).

mod block_on;
mod blocking;
mod budget;
mod context;
mod current_thread;
mod driver;
mod idle;
mod join;
mod loom;
#[cfg(test)]
mod loom_models;
mod metrics;
pub mod net;
#[cfg(feature = "observatory")]
pub mod observe;
mod reactor;
mod scheduler;
mod shutdown;
pub mod sync;
mod task;
mod time;
mod worker;

use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

pub use block_on::block_on;
pub use context::EnterGuard;
pub use join::{join_all, JoinSet};
pub use metrics::{RuntimeMetrics, WorkerStats};
pub use task::{JoinError, JoinHandle};
pub use time::{
    interval, sleep, sleep_until, timeout, timeout_at, Elapsed, Interval, Sleep, Timeout,
};

use blocking::BlockingPool;
use scheduler::{Config, Shared};
use shutdown::{ExitLatch, LatchGuard};

/// Where a task was spawned, as the spawn path carries it down to the task's allocation (the
/// observatory's; the parameter exists only with the feature: `#[cfg]` on the parameter).
#[cfg(feature = "observatory")]
pub(crate) type SpawnLoc = &'static std::panic::Location<'static>;

/// A call along the spawn path: with the `observatory` feature the spawn site is passed as
/// one more, last argument; without it the call is written exactly as if the parameter had
/// never existed (so the compiled-out runtime is the same code, token for token).
///
/// The site is usually `std::panic::Location::caller()` in a function marked
/// `#[cfg_attr(feature = "observatory", track_caller)]`: its caller is then the spawn site,
/// and `#[track_caller]` passes through nested entry points (`JoinSet::spawn` → `spawn`
/// reports the `JoinSet::spawn` caller).
#[cfg(feature = "observatory")]
macro_rules! sited {
    ($recv:ident . $($method:ident).+ ( $($arg:expr),* ); $site:expr) => {
        $recv.$($method).+($($arg,)* $site)
    };
    ($($f:ident)::+ ( $($arg:expr),* ); $site:expr) => {
        $($f)::+($($arg,)* $site)
    };
}
#[cfg(not(feature = "observatory"))]
macro_rules! sited {
    ($recv:ident . $($method:ident).+ ( $($arg:expr),* ); $site:expr) => {
        $recv.$($method).+($($arg),*)
    };
    ($($f:ident)::+ ( $($arg:expr),* ); $site:expr) => {
        $($f)::+($($arg),*)
    };
}
pub(crate) use sited;

/// At a public spawn entry point whose spawn path crosses a closure or a trait object (where
/// `#[track_caller]` cannot follow, e.g. an executor's `submit`): records the caller as the
/// spawn site of the task about to be allocated on this thread, over the `SpawnLoc` the path
/// carries.
macro_rules! spawn_site {
    () => {
        #[cfg(feature = "observatory")]
        let _spawn_site = $crate::rt::observe::SpawnSite::enter(std::panic::Location::caller());
    };
}
pub(crate) use spawn_site;
use worker::WorkerCx;

/// Configures and builds a [`Runtime`].
///
/// ```
/// use std::time::Duration;
/// let rt = scraipe::rt::Runtime::builder()
///     .worker_threads(2)
///     .thread_name("crawler")
///     .spin_before_park(Duration::from_micros(20))
///     .build()
///     .unwrap();
/// assert_eq!(rt.handle().num_workers(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    worker_threads: Option<usize>,
    thread_name: String,
    stack_size: Option<usize>,
    core_ids: Option<Vec<usize>>,
    config: Config,
    max_blocking_threads: usize,
    blocking_keep_alive: Duration,
    #[cfg(feature = "observatory")]
    watchdog: Option<observe::watchdog::Config>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// A pool with one worker per available CPU.
    pub fn new() -> Builder {
        Builder {
            worker_threads: None,
            thread_name: "scraipe-worker".to_string(),
            stack_size: None,
            core_ids: None,
            config: Config {
                spin_before_park: block_on::spin_if_parallel(Duration::from_micros(50)),
                global_queue_interval: 31,
                event_interval: 61,
                lifo_slot: true,
                max_lifo_polls: 3,
                timer_spin_window: Duration::from_micros(100),
                precise_timers: false,
            },
            max_blocking_threads: 512,
            blocking_keep_alive: Duration::from_secs(10),
            #[cfg(feature = "observatory")]
            watchdog: None,
        }
    }

    /// A runtime without worker threads, driven by whichever thread calls
    /// [`Runtime::block_on`], [`Runtime::tick`] or [`Runtime::run_until_idle`] — for
    /// applications that run their own loop.
    pub fn new_current_thread() -> Builder {
        Builder::new().worker_threads(0)
    }

    /// Number of worker threads; 0 means none (see [`Builder::new_current_thread`]).
    pub fn worker_threads(mut self, n: usize) -> Builder {
        self.worker_threads = Some(n);
        self
    }

    /// Name prefix of worker threads (`{name}-{index}`); blocking threads get `{name}-blocking-{n}`.
    pub fn thread_name(mut self, name: impl Into<String>) -> Builder {
        self.thread_name = name.into();
        self
    }

    /// Stack size of worker and blocking threads, in bytes.
    pub fn thread_stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Pins worker `i` to CPU `i % number of CPUs`.
    pub fn pin_workers(mut self, pin: bool) -> Builder {
        self.core_ids = if pin {
            let n = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1);
            Some((0..n).collect())
        } else {
            None
        };
        self
    }

    /// Pins worker `i` to CPU `cpus[i % cpus.len()]`.
    pub fn pin_workers_to(mut self, cpus: Vec<usize>) -> Builder {
        self.core_ids = if cpus.is_empty() { None } else { Some(cpus) };
        self
    }

    /// How long an idle worker keeps looking for work before it sleeps in `epoll_wait`
    /// (default 50 µs; 0 when the process may only use one CPU, where spinning would just
    /// delay the thread it waits for). Spinning makes a cross-thread hand-off a few hundred
    /// nanoseconds instead of a futex/eventfd wake-up of several microseconds, at the price of
    /// that much CPU after each burst of work. The spin is *adaptive*: a worker spins only while
    /// its recent idle periods were shorter than this (work came back while it would still have
    /// been spinning); after a longer one it sleeps at once until a short idle period shows
    /// spinning would win again. Zero disables it. Only one worker in two spins at a time.
    pub fn spin_before_park(mut self, spin: Duration) -> Builder {
        self.config.spin_before_park = spin;
        self
    }

    /// The early-wake-and-spin window for timers: a sleeping worker wakes this long before its
    /// next timer deadline and spins the rest of the way (default 100 µs). Waking a thread
    /// takes the kernel tens of microseconds (about 50 µs median, 130 µs p99 on a 2-vCPU VM);
    /// spending that before the deadline lets timers fire within a few microseconds of it.
    ///
    /// By default the worker does so only where it is cheap: when few timers are pending on it
    /// and the deadline is near (see [`precise_timers`](Builder::precise_timers)). Zero turns
    /// it off. Timers never fire early either way.
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = scraipe::rt::Builder::new()
    ///     .timer_spin_window(Duration::from_micros(50))
    ///     .build()
    ///     .unwrap();
    /// # drop(rt);
    /// ```
    pub fn timer_spin_window(mut self, window: Duration) -> Builder {
        self.config.timer_spin_window = window;
        self
    }

    /// Microsecond timer precision everywhere (default off). Off, a worker spends its
    /// [`timer_spin_window`](Builder::timer_spin_window) spinning only when at most a handful
    /// of timers are pending on it and the next deadline is at most 20 ms away; with many
    /// timers pending one worker wakes for everyone's on the ticks of a 500 µs grid and fires
    /// everything due while its siblings sleep, so a timer-heavy, mostly idle load (thousands
    /// of polite delays and timeouts) costs one or two microseconds of CPU per timer — a little
    /// less than tokio's 1 ms wheel — and fires ~250 µs late on average (under a millisecond
    /// at worst), instead of spinning a core. On, every timer gets the early wake-up and spin:
    /// a few microseconds late, at up to `timer_spin_window` of CPU per timer.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let rt = scraipe::rt::Builder::new().precise_timers(true).build().unwrap();
    /// let late = rt.block_on(rt.spawn(async {
    ///     let deadline = Instant::now() + Duration::from_millis(2);
    ///     scraipe::rt::sleep_until(deadline).await;
    ///     deadline.elapsed()
    /// }));
    /// assert!(late.unwrap() < Duration::from_secs(1));
    /// ```
    pub fn precise_timers(mut self, precise: bool) -> Builder {
        self.config.precise_timers = precise;
        self
    }

    /// The old name of [`timer_spin_window`](Builder::timer_spin_window): it never set a
    /// precision, only how early to wake and spin.
    #[deprecated(since = "0.1.0", note = "renamed to `timer_spin_window`")]
    pub fn timer_precision(self, window: Duration) -> Builder {
        self.timer_spin_window(window)
    }

    /// Take a task from the global queue first every `n` scheduling ticks (default 31), so
    /// work submitted from outside is not starved by a busy local queue.
    pub fn global_queue_interval(mut self, n: u32) -> Builder {
        self.config.global_queue_interval = n.max(1);
        self
    }

    /// Poll the reactor and fire timers every `n` ticks even when tasks keep coming (default 61).
    pub fn event_interval(mut self, n: u32) -> Builder {
        self.config.event_interval = n.max(1);
        self
    }

    /// Whether a task woken by another task on the same worker runs next (default true).
    pub fn lifo_slot(mut self, enabled: bool) -> Builder {
        self.config.lifo_slot = enabled;
        self
    }

    /// Upper bound on blocking-pool threads (default 512).
    pub fn max_blocking_threads(mut self, n: usize) -> Builder {
        self.max_blocking_threads = n.max(1);
        self
    }

    /// How long an idle blocking thread waits for work before it exits (default 10 s).
    pub fn blocking_keep_alive(mut self, d: Duration) -> Builder {
        self.blocking_keep_alive = d;
        self
    }

    /// Starts the long-poll watchdog (feature `observatory`): a thread that reports, through
    /// `log::warn!` and [`on_long_poll`](Builder::on_long_poll), every poll that runs longer
    /// than `threshold` on a worker. See [`observe::LongPoll`].
    #[cfg(feature = "observatory")]
    pub fn long_poll_threshold(mut self, threshold: Duration) -> Builder {
        let callback = self.watchdog.take().and_then(|w| w.callback);
        self.watchdog = Some(observe::watchdog::Config {
            threshold,
            callback,
        });
        self
    }

    /// Called (on the watchdog thread) for every long poll; implies a 100 ms threshold unless
    /// [`long_poll_threshold`](Builder::long_poll_threshold) set one.
    #[cfg(feature = "observatory")]
    pub fn on_long_poll(
        mut self,
        callback: impl Fn(&observe::LongPoll) + Send + Sync + 'static,
    ) -> Builder {
        let threshold = self
            .watchdog
            .as_ref()
            .map_or(Duration::from_millis(100), |w| w.threshold);
        self.watchdog = Some(observe::watchdog::Config {
            threshold,
            callback: Some(Arc::new(callback)),
        });
        self
    }

    /// Starts the runtime.
    pub fn build(self) -> io::Result<Runtime> {
        let workers = self.worker_threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let blocking = BlockingPool::new(
            self.max_blocking_threads,
            self.blocking_keep_alive,
            format!("{}-blocking", self.thread_name),
            self.stack_size,
        );
        let (shared, cores) = Shared::new(workers, self.config.clone(), blocking)?;
        let latch = Arc::new(ExitLatch {
            running: Mutex::new(0),
            cv: Condvar::new(),
        });
        let runtime = Runtime {
            handle: Handle {
                shared: shared.clone(),
            },
            latch: latch.clone(),
            default_shutdown: Duration::from_secs(5),
        };
        #[cfg(feature = "observatory")]
        if let Some(config) = self.watchdog.clone() {
            observe::watchdog::start(Arc::downgrade(&shared), config)?;
        }
        if workers == 0 {
            shared.idle_cores.lock().extend(cores);
            return Ok(runtime);
        }
        for core in cores {
            let index = core.index;
            let mut builder =
                std::thread::Builder::new().name(format!("{}-{index}", self.thread_name));
            if let Some(size) = self.stack_size {
                builder = builder.stack_size(size);
            }
            let cpu = self.core_ids.as_ref().map(|ids| ids[index % ids.len()]);
            let shared = shared.clone();
            *latch.running.lock() += 1;
            let thread_latch = latch.clone();
            if let Err(e) = builder.spawn(move || worker_main(shared, core, thread_latch, cpu)) {
                *latch.running.lock() -= 1;
                // `runtime` drops here and shuts down the workers already started.
                return Err(e);
            }
        }
        Ok(runtime)
    }
}

fn worker_main(
    shared: Arc<Shared>,
    core: Box<worker::Core>,
    latch: Arc<ExitLatch>,
    cpu: Option<usize>,
) {
    let _exit = LatchGuard(latch);
    if let Some(cpu) = cpu {
        pin_current_thread(cpu);
    }
    // The default 50 µs timer slack would let the kernel delay our timerfd wake-ups.
    // SAFETY: prctl with PR_SET_TIMERSLACK takes an integer argument and affects this thread only.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
    let cx = WorkerCx::new(shared, core);
    {
        let _guard = context::enter_worker(&cx);
        let _ = cx.drive(pin!(std::future::pending::<()>()), true, None);
    }
    cx.teardown();
}

fn pin_current_thread(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_SET indexes within it (checked against CPU_SETSIZE),
    // and sched_setaffinity(0, ...) affects only the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= libc::CPU_SETSIZE as usize {
            return;
        }
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            log::warn!(
                "could not pin worker to CPU {cpu}: {}",
                io::Error::last_os_error()
            );
        }
    }
}

/// A running scraipe runtime. Dropping it shuts it down (see [`Runtime::shutdown_timeout`]).
pub struct Runtime {
    handle: Handle,
    latch: Arc<ExitLatch>,
    default_shutdown: Duration,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.handle.num_workers())
            .finish()
    }
}

impl Runtime {
    /// A pool runtime with default settings (one worker per CPU).
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    /// A [`Builder`] to configure one.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// A cloneable handle that spawns onto this runtime from anywhere.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Spawns a task. See [`Handle::spawn`].
    #[cfg_attr(feature = "observatory", track_caller)]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// Runs a closure on the blocking pool. See [`Handle::spawn_blocking`].
    #[cfg_attr(feature = "observatory", track_caller)]
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.handle.spawn_blocking(f)
    }

    /// Runs a future to completion on the calling thread. See [`Handle::block_on`].
    pub fn block_on<F: IntoFuture>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    /// For a runtime built without worker threads: one scheduling round on the calling thread —
    /// fire due timers, poll the reactor without blocking, run at most `event_interval` ready
    /// tasks. Returns the number of tasks polled. Never blocks.
    ///
    /// On a runtime with worker threads (they drive it) or one already being driven by another
    /// thread, it does nothing and returns 0.
    ///
    /// ```
    /// let rt = scraipe::rt::Builder::new_current_thread().build().unwrap();
    /// let task = rt.spawn(async { 5 });
    /// while !task.is_finished() {
    ///     rt.tick();
    /// }
    /// assert_eq!(rt.block_on(task).unwrap(), 5);
    /// ```
    pub fn tick(&self) -> usize {
        self.handle.with_idle_core(|cx| cx.tick()).unwrap_or(0)
    }

    /// Like [`tick`](Runtime::tick), repeated until no task is ready. A task that wakes itself
    /// forever keeps this busy forever; call `tick` in your own loop for a bounded step.
    pub fn run_until_idle(&self) -> usize {
        self.handle
            .with_idle_core(|cx| {
                let mut total = 0;
                loop {
                    let n = cx.tick();
                    if n == 0 {
                        return total;
                    }
                    total += n;
                }
            })
            .unwrap_or(0)
    }

    /// Shuts down: workers stop after their current poll, unfinished tasks are dropped (their
    /// destructors run on this thread, their join handles report cancellation), pending I/O
    /// fails, and the threads are joined. Waits at most `timeout` for threads that are busy
    /// (a task that never yields); those are left to finish on their own.
    pub fn shutdown_timeout(mut self, timeout: Duration) {
        self.default_shutdown = timeout;
        // Drop does the work.
    }

    /// Shuts down without waiting for worker threads.
    pub fn shutdown_background(self) {
        self.shutdown_timeout(Duration::ZERO)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        shutdown::shut_down(&self.handle.shared, &self.latch, self.default_shutdown);
    }
}

/// A cloneable reference to a runtime, to spawn tasks or block on futures from any thread.
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("workers", &self.num_workers())
            .finish()
    }
}

impl PartialEq for Handle {
    fn eq(&self, other: &Handle) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}
impl Eq for Handle {}

impl Handle {
    /// The runtime the calling code runs on.
    ///
    /// # Panics
    /// Outside any runtime; see [`Handle::try_current`].
    pub fn current() -> Handle {
        Handle::try_current().expect(
            "not inside a scraipe runtime: call this from a task, inside Runtime::block_on, \
             or after Handle::enter",
        )
    }

    /// The runtime the calling code runs on, if any.
    pub fn try_current() -> Option<Handle> {
        context::current_handle()
    }

    /// Makes this runtime the current one on this thread until the guard drops, so `spawn`,
    /// timers and sockets created here use it.
    pub fn enter(&self) -> EnterGuard {
        context::enter(self.clone())
    }

    /// Spawns a task. From one of this runtime's workers it goes on that worker's queue; from
    /// anywhere else, on the global queue (waking one idle worker). After shutdown the task is
    /// dropped at once and its handle reports cancellation.
    #[cfg_attr(feature = "observatory", track_caller)]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        sited!(self.shared.spawn(future); std::panic::Location::caller())
    }

    /// Runs `f` on the blocking pool and returns a handle to its result. Use it for work that
    /// would stall a worker: blocking syscalls, DNS, CPU-heavy computation.
    #[cfg_attr(feature = "observatory", track_caller)]
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        sited!(self.shared.blocking.spawn(f); std::panic::Location::caller())
    }

    /// Runs a future to completion on the calling thread, with this runtime as the current one.
    ///
    /// * On a runtime without worker threads, the calling thread drives it while it waits.
    /// * On a pool, the future is polled on the calling thread and its spawned tasks run on the
    ///   workers.
    /// * Called from inside a task it neither panics nor deadlocks: the worker keeps running its
    ///   other tasks while it waits (see [`block_on`]).
    pub fn block_on<F: IntoFuture>(&self, future: F) -> F::Output {
        self.block_on_future(future.into_future())
    }

    fn block_on_future<F: Future>(&self, future: F) -> F::Output {
        let mut future = pin!(future);
        let _enter = self.enter();
        let spin = self.shared.config.spin_before_park;
        // A worker thread (of any runtime) keeps driving its own runtime while it waits; see
        // `block_on::block_on_driving` for why it must never take our core instead.
        let worker_of = context::with_worker(|w| w.map(|w| Arc::ptr_eq(&w.shared, &self.shared)));
        match worker_of {
            Some(true) => return block_on(future),
            Some(false) => {
                let guest = self.shared.without_worker_threads.then_some(self);
                return block_on::block_on_driving(future, guest);
            }
            None => {}
        }
        if self.shared.without_worker_threads {
            if let Some(out) = self.try_drive_idle_core(future.as_mut()) {
                return out;
            }
        }
        if !self.shared.without_worker_threads {
            return block_on::park_on(future, spin, None);
        }
        // A runtime without workers whose core another thread is driving: wait, and take the
        // core over if that thread lets go of it while we still wait.
        let mut attempt = |f: Pin<&mut F>| self.try_drive_idle_core(f);
        block_on::park_on(future, spin, Some((Duration::from_millis(1), &mut attempt)))
    }

    /// Number of workers (1 for a runtime without worker threads: its single core).
    pub fn num_workers(&self) -> usize {
        self.shared.remotes.len()
    }

    /// True once shutdown has begun.
    pub fn is_shutdown(&self) -> bool {
        self.shared.is_shutdown()
    }

    /// The task table (feature `observatory`): every unfinished task with its spawn site,
    /// polls, wakes by source, what it waits on — and every `spawn_blocking` job not yet finished
    /// (`blocking: true`, queued or running).
    ///
    /// A task enters the table when it first parks (the owned-task list links it then), or at
    /// spawn while a reader is registered — a watchdog
    /// ([`Builder::long_poll_threshold`](crate::rt::Builder::long_poll_threshold)) or an
    /// [`ObserveServer`](observe::ObserveServer). Without one, a task still in its first poll or
    /// queued for it is not listed: linking every task at spawn would cost every spawn.
    #[cfg(feature = "observatory")]
    pub fn observe_snapshot(&self) -> observe::Snapshot {
        observe::Snapshot::take(&self.shared)
    }

    /// Tasks that no `Waker` refers to any more — nothing can ever poll them again — confirmed
    /// by two snapshots `gap` apart (feature `observatory`; see [`observe`]).
    #[cfg(feature = "observatory")]
    pub fn lost_wakers(&self, gap: Duration) -> Vec<observe::TaskInfo> {
        observe::snapshot::lost_wakers(&self.shared, gap)
    }

    /// Busy time and poll / wake→poll / timer-lateness histograms per worker (feature
    /// `observatory`; recorded while [`observe::set_timing`] is on).
    #[cfg(feature = "observatory")]
    pub fn observe_timing(&self) -> Vec<observe::WorkerTimingSnapshot> {
        self.shared
            .remotes
            .iter()
            .map(|r| r.obs_slot.timing.snapshot(&r.driver.timers.lateness))
            .collect()
    }

    /// Tasks spawned minus tasks completed, over every worker and outside thread. Each counter
    /// is read separately, so a concurrent spawn/complete pair may be seen half-way; the
    /// difference is clamped at zero.
    fn live_tasks(&self) -> usize {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.shared;
        let (mut spawned, mut completed) = (
            s.spawned_elsewhere.load(Relaxed),
            s.completed_elsewhere.load(Relaxed),
        );
        for r in s.remotes.iter() {
            let (sp, co) = r.metrics.spawned_completed();
            spawned += sp;
            completed += co;
        }
        spawned.saturating_sub(completed) as usize
    }

    /// A snapshot of the scheduler's counters.
    pub fn metrics(&self) -> RuntimeMetrics {
        RuntimeMetrics {
            workers: self
                .shared
                .remotes
                .iter()
                .map(|r| {
                    r.metrics.snapshot(
                        r.stealer.len(),
                        r.driver
                            .io
                            .unparks
                            .load(std::sync::atomic::Ordering::Relaxed)
                            as u64,
                    )
                })
                .collect(),
            injector_depth: self.shared.injector.len(),
            live_tasks: self.live_tasks(),
            blocking_threads: self.shared.blocking.threads(),
            blocking_queue_depth: self.shared.blocking.queue_depth(),
        }
    }
}

/// Spawns a task on the current runtime.
///
/// # Panics
/// Outside a runtime (no worker thread, no entered handle). Use [`Handle::spawn`] there.
#[cfg_attr(feature = "observatory", track_caller)]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    #[cfg(feature = "observatory")]
    let site = std::panic::Location::caller();
    // Straight to the current runtime, without cloning a `Handle` on the way.
    context::with_current_shared(|shared| sited!(shared.spawn(future); site)).unwrap_or_else(|| {
        panic!(
            "scraipe::rt::spawn called outside a scraipe runtime: call it from a task, inside \
             Runtime::block_on, or after Handle::enter (or use Handle::spawn)"
        )
    })
}

/// Runs a closure on the current runtime's blocking pool.
///
/// # Panics
/// Outside a runtime. Use [`Handle::spawn_blocking`] there.
#[cfg_attr(feature = "observatory", track_caller)]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    Handle::current().spawn_blocking(f)
}

/// Yields to the scheduler once: the task goes to the back of its worker's queue, so every
/// other ready task runs before it continues.
pub async fn yield_now() {
    struct YieldNow(bool);
    impl Future for YieldNow {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                return Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
    YieldNow(false).await
}
