//! Per-task identity and counters, and the thread-local state the runtime's hooks consult.
//!
//! Who writes what: `polls` and `last_worker` only the thread polling the task (it holds
//! `RUNNING`, so a load + store suffices); the wake counters and "last woken by" any waking
//! thread (atomic adds, relaxed: they are statistics, ordered by nothing); `waits` the polling
//! thread under a small lock the snapshot also takes.

use std::cell::Cell;
use std::panic::Location;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::watchdog::PollSlot;
use super::{timing, trace};
use crate::rt::context;
use crate::rt::task::Header;

/// Who woke a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WakeSource {
    /// The task woke itself during its own poll (`yield_now`, an exhausted budget).
    SelfWake,
    /// Another task running on the worker that last polled this task.
    SameWorker,
    /// A task running on a different worker.
    OtherWorker,
    /// A socket readiness event dispatched by a reactor.
    Reactor,
    /// A timer that fired.
    Timer,
    /// Any thread not polling a task of this runtime: a plain thread, the blocking pool,
    /// shutdown.
    Outside,
}

impl WakeSource {
    /// Every source, in the order of [`WakeCounts`]' fields.
    pub const ALL: [WakeSource; 6] = [
        WakeSource::SelfWake,
        WakeSource::SameWorker,
        WakeSource::OtherWorker,
        WakeSource::Reactor,
        WakeSource::Timer,
        WakeSource::Outside,
    ];

    /// A short lower-case name (`self`, `same_worker`, `other_worker`, `reactor`, `timer`,
    /// `outside`), as used in the JSON snapshot.
    pub fn name(self) -> &'static str {
        match self {
            WakeSource::SelfWake => "self",
            WakeSource::SameWorker => "same_worker",
            WakeSource::OtherWorker => "other_worker",
            WakeSource::Reactor => "reactor",
            WakeSource::Timer => "timer",
            WakeSource::Outside => "outside",
        }
    }
}

/// Wake counts of one task, by source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WakeCounts {
    /// See [`WakeSource::SelfWake`].
    pub self_wake: u64,
    /// See [`WakeSource::SameWorker`].
    pub same_worker: u64,
    /// See [`WakeSource::OtherWorker`].
    pub other_worker: u64,
    /// See [`WakeSource::Reactor`].
    pub reactor: u64,
    /// See [`WakeSource::Timer`].
    pub timer: u64,
    /// See [`WakeSource::Outside`].
    pub outside: u64,
}

impl WakeCounts {
    /// The count for one source.
    pub fn get(&self, source: WakeSource) -> u64 {
        match source {
            WakeSource::SelfWake => self.self_wake,
            WakeSource::SameWorker => self.same_worker,
            WakeSource::OtherWorker => self.other_worker,
            WakeSource::Reactor => self.reactor,
            WakeSource::Timer => self.timer,
            WakeSource::Outside => self.outside,
        }
    }

    /// All wakes.
    pub fn total(&self) -> u64 {
        WakeSource::ALL.iter().map(|s| self.get(*s)).sum()
    }
}

/// What a parked task registered its waker with during its last poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitsOn {
    /// A socket's readiness: the reactor token and `"read"` or `"write"`.
    Socket {
        /// The socket's token in its reactor.
        token: usize,
        /// `"read"` or `"write"`.
        direction: &'static str,
    },
    /// A timer (`sleep`, `timeout`, `interval`).
    Timer {
        /// When it fires.
        deadline: Instant,
    },
    /// A channel or semaphore.
    Channel {
        /// `"oneshot"`, `"mpsc"` or `"semaphore"`.
        kind: &'static str,
    },
}

const NO_WORKER: u32 = u32::MAX;

/// The observatory's part of a task header.
pub(crate) struct TaskObs {
    pub(crate) id: u64,
    pub(crate) location: &'static Location<'static>,
    pub(crate) polls: AtomicU64,
    wakes: [AtomicU64; 6],
    pub(crate) last_worker: AtomicU32,
    woken_by_task: AtomicU64,
    woken_by_worker: AtomicU32,
    pub(crate) waits: Mutex<Vec<WaitsOn>>,
    /// `waits` is not empty (polling thread only): most polls then skip its lock.
    has_waits: AtomicBool,
    /// The trace flow (socket event → wake) the next poll continues; 0: none.
    pending_flow: AtomicU64,
    /// When the first wake since the last poll came (trace clock, ns; 0: none), while timing.
    woken_at: AtomicU64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The outermost spawn entry point's caller on this thread (see [`SpawnSite`]).
    static SPAWN_SITE: Cell<Option<&'static Location<'static>>> = const { Cell::new(None) };
    /// The task this thread is polling.
    static CURRENT: Cell<Option<Current>> = const { Cell::new(None) };
    /// Set while a reactor or timer heap dispatches its wake-ups.
    static DRIVER_WAKE: Cell<Option<WakeSource>> = const { Cell::new(None) };
}

#[derive(Clone, Copy)]
struct Current {
    id: u64,
    obs: *const TaskObs,
    worker: u32,
    slot: *const PollSlot,
}

impl TaskObs {
    /// Identity for a task being allocated: the spawn site recorded by the entry point, or —
    /// for internal spawns that have none — the allocation's own caller.
    #[track_caller]
    pub(crate) fn new() -> TaskObs {
        let location = SPAWN_SITE.with(|s| s.get()).unwrap_or(Location::caller());
        let id = NEXT_ID.fetch_add(1, Relaxed);
        trace::spawn(id, location);
        TaskObs {
            id,
            pending_flow: AtomicU64::new(0),
            woken_at: AtomicU64::new(0),
            location,
            polls: AtomicU64::new(0),
            wakes: Default::default(),
            last_worker: AtomicU32::new(NO_WORKER),
            woken_by_task: AtomicU64::new(0),
            woken_by_worker: AtomicU32::new(NO_WORKER),
            waits: Mutex::new(Vec::new()),
            has_waits: AtomicBool::new(false),
        }
    }

    pub(crate) fn wake_counts(&self) -> WakeCounts {
        let w = |i: usize| self.wakes[i].load(Relaxed);
        WakeCounts {
            self_wake: w(0),
            same_worker: w(1),
            other_worker: w(2),
            reactor: w(3),
            timer: w(4),
            outside: w(5),
        }
    }

    pub(crate) fn last_worker(&self) -> Option<usize> {
        worker_opt(self.last_worker.load(Relaxed))
    }

    /// The task (and its worker) behind the latest wake by a task, if any.
    pub(crate) fn woken_by(&self) -> Option<(u64, Option<usize>)> {
        match self.woken_by_task.load(Relaxed) {
            0 => None,
            id => Some((id, worker_opt(self.woken_by_worker.load(Relaxed)))),
        }
    }
}

fn worker_opt(w: u32) -> Option<usize> {
    (w != NO_WORKER).then_some(w as usize)
}

/// Records the caller of a public spawn entry point for the allocation it leads to. The
/// outermost entry point wins (`JoinSet::spawn` → `spawn` → `Handle::spawn` reports the
/// `JoinSet::spawn` caller), so entry points need not thread `#[track_caller]` through every
/// internal function and closure.
pub(crate) struct SpawnSite {
    outermost: bool,
}

impl SpawnSite {
    pub(crate) fn enter(location: &'static Location<'static>) -> SpawnSite {
        let outermost = SPAWN_SITE.with(|s| {
            if s.get().is_none() {
                s.set(Some(location));
                true
            } else {
                false
            }
        });
        SpawnSite { outermost }
    }
}

impl Drop for SpawnSite {
    fn drop(&mut self) {
        if self.outermost {
            SPAWN_SITE.with(|s| s.set(None));
        }
    }
}

/// Marks the start of a poll on this thread; the guard marks its end (and restores the outer
/// task when a poll nests inside another through `block_on`).
pub(crate) fn poll_start(header: &Header) -> PollGuard {
    let obs = &header.obs;
    obs.polls.store(obs.polls.load(Relaxed) + 1, Relaxed);
    if obs.has_waits.load(Relaxed) {
        obs.waits.lock().clear();
        obs.has_waits.store(false, Relaxed);
    }
    let (worker, slot) = context::with_worker(|w| match w {
        Some(w) => (w.index() as u32, &w.remote().obs_slot as *const PollSlot),
        None => (NO_WORKER, std::ptr::null()),
    });
    let started = timing::is_timing().then(|| {
        let now = trace::now_ns();
        // A wake racing between this load and store loses one sample; no locked RMW per poll.
        let woken = obs.woken_at.load(Relaxed);
        if woken != 0 {
            obs.woken_at.store(0, Relaxed);
            if !slot.is_null() {
                // SAFETY: as below.
                let t = &unsafe { &*slot }.timing;
                t.wake_to_poll
                    .record_owned(Duration::from_nanos(now.saturating_sub(woken)));
            }
        }
        now
    });
    if worker != NO_WORKER {
        obs.last_worker.store(worker, Relaxed);
        // SAFETY: the slot lives in the runtime's shared state, which the worker this thread
        // drives keeps alive for at least the duration of this poll.
        unsafe { &*slot }.publish(obs.id, obs.location);
    }
    if trace::is_tracing() {
        let flow = match obs.pending_flow.load(Relaxed) {
            0 => 0,
            _ => obs.pending_flow.swap(0, Relaxed),
        };
        trace::poll_start(obs.id, flow);
    }
    let prev = CURRENT.with(|c| {
        c.replace(Some(Current {
            id: obs.id,
            obs,
            worker,
            slot,
        }))
    });
    PollGuard {
        id: obs.id,
        prev,
        slot,
        started,
    }
}

pub(crate) struct PollGuard {
    id: u64,
    prev: Option<Current>,
    slot: *const PollSlot,
    /// Trace-clock ns at the poll's start, while timing.
    started: Option<u64>,
}

impl PollGuard {
    /// The poll returned (`ready`: with the output).
    pub(crate) fn end(self, ready: bool) {
        trace::poll_end(self.id, ready);
        if let (Some(start), false) = (self.started, self.slot.is_null()) {
            let took = trace::now_ns().saturating_sub(start);
            // SAFETY: as in `poll_start`.
            let t = &unsafe { &*self.slot }.timing;
            t.poll.record_owned(Duration::from_nanos(took));
            t.busy_ns
                .store(t.busy_ns.load(Relaxed).wrapping_add(took), Relaxed);
        }
    }
}

impl Drop for PollGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.prev));
        if !self.slot.is_null() {
            // SAFETY: as in `poll_start`; the poll that set the slot is just ending.
            let slot = unsafe { &*self.slot };
            match self.prev {
                // The outer task is running again (its nested block_on polled us); its
                // watchdog clock restarts now.
                // SAFETY: the outer task is mid-poll below us on this stack, so it is alive.
                Some(outer) if outer.slot == self.slot => {
                    slot.publish(outer.id, unsafe { &*outer.obs }.location)
                }
                _ => slot.clear(),
            }
        }
    }
}

/// A task on a worker entered `block_on`: while the worker drives other work the blocked task
/// is not "in a long poll". The guard publishes it again when `block_on` returns.
pub(crate) fn blocking_section() -> BlockingSection {
    let cur = CURRENT.with(|c| c.get());
    if let Some(cur) = cur.filter(|c| !c.slot.is_null()) {
        // SAFETY: see `poll_start`.
        unsafe { &*cur.slot }.clear();
    }
    trace::block_on(true);
    BlockingSection { cur }
}

pub(crate) struct BlockingSection {
    cur: Option<Current>,
}

impl Drop for BlockingSection {
    fn drop(&mut self) {
        trace::block_on(false);
        if let Some(cur) = self.cur.filter(|c| !c.slot.is_null()) {
            // SAFETY: the task is still mid-poll on this stack, and its worker alive.
            unsafe { (*cur.slot).publish(cur.id, (*cur.obs).location) }
        }
    }
}

/// While it lives, wakes on this thread are attributed to a reactor turn or a timer firing.
pub(crate) struct WakeScope(Option<WakeSource>);

impl WakeScope {
    pub(crate) fn enter(source: WakeSource) -> WakeScope {
        WakeScope(DRIVER_WAKE.with(|d| d.replace(Some(source))))
    }
}

impl Drop for WakeScope {
    fn drop(&mut self) {
        trace::end_reactor_wakes();
        DRIVER_WAKE.with(|d| d.set(self.0));
    }
}

/// Counts a wake of `header`'s task and remembers which task caused it.
pub(crate) fn on_wake(header: &Header) {
    let obs = &header.obs;
    let cur = CURRENT.with(|c| c.get());
    let source = match (DRIVER_WAKE.with(|d| d.get()), cur) {
        (Some(driver), _) => driver,
        (None, Some(cur)) if cur.id == obs.id => WakeSource::SelfWake,
        (None, Some(cur)) if cur.worker == NO_WORKER => WakeSource::Outside,
        (None, Some(cur)) if cur.worker == obs.last_worker.load(Relaxed) => WakeSource::SameWorker,
        (None, Some(_)) => WakeSource::OtherWorker,
        (None, None) => WakeSource::Outside,
    };
    let index = WakeSource::ALL
        .iter()
        .position(|s| *s == source)
        .expect("listed");
    obs.wakes[index].fetch_add(1, Relaxed);
    if timing::is_timing() && obs.woken_at.load(Relaxed) == 0 {
        // The first wake since the last poll stamps the task (a racing second stamp is as good).
        obs.woken_at.store(trace::now_ns(), Relaxed);
    }
    let flow = trace::wake(obs.id, index, source == WakeSource::Reactor);
    if flow != 0 {
        obs.pending_flow.store(flow, Relaxed);
    }
    if let Some(cur) = cur.filter(|c| c.id != obs.id) {
        obs.woken_by_task.store(cur.id, Relaxed);
        obs.woken_by_worker.store(cur.worker, Relaxed);
    }
}

/// The task being polled registered its waker with `what`.
pub(crate) fn note_wait(what: WaitsOn) {
    if let Some(cur) = CURRENT.with(|c| c.get()) {
        // SAFETY: the current task is mid-poll on this thread, so its header is alive.
        let obs = unsafe { &*cur.obs };
        let mut waits = obs.waits.lock();
        if !waits.contains(&what) {
            waits.push(what);
        }
        obs.has_waits.store(true, Relaxed);
    }
}

pub(crate) fn current() -> Option<(u64, &'static Location<'static>)> {
    // SAFETY: the current task is mid-poll on this thread, so its header is alive.
    CURRENT
        .with(|c| c.get())
        .map(|c| (c.id, unsafe { &*c.obs }.location))
}
