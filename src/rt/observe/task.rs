//! Per-task identity and counters, and the thread-local state the runtime's hooks consult.
//!
//! Who writes what: every counter (`polls`, the wake counts by source), `last_worker` and the
//! channel note only the thread polling the task — it holds `RUNNING`, so a relaxed load + store
//! suffices and no two threads ever write a counter. A wake only leaves its *source* for the
//! next poll to count, in one of two small fields:
//!
//! * `cause` — written by the single thread that may write it at that moment, so a plain
//!   (relaxed) store: the task itself waking itself during its poll (it holds `RUNNING`), or the
//!   waker whose state transition moved the idle task to scheduled (exactly one per idle
//!   period, before the task is queued; the poll start that reads and clears it comes after the
//!   queue hand-off). These are nearly all wakes, and they cost no locked instruction.
//! * `late` — any other wake (the task was already scheduled, or is running on another
//!   thread): a `fetch_or` of the source bit, skipped when the bit is already set.
//!
//! The poll start reads both, clears them and bumps the counter of every source present. So a
//! counter counts **polls caused by that source**, not raw `wake` calls: several wakes before
//! one poll count once per distinct source — three wakes from one thread before the poll count
//! one; a self-wake and a wake from a plain thread count one each. Yield `k` times: `k`
//! self-wakes. "Woken by" (the latest waking task and its worker) is a relaxed store by the
//! waker — a fact, not a counter.

use std::cell::Cell;
use std::panic::Location;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8};
use std::time::{Duration, Instant};

use super::watchdog::{self, PollSlot};
use super::{timing, trace};
use crate::rt::task::Header;

/// Who woke a task. (Declaration order = `ALL` order = bit index in a task's pending sources.)
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

/// Something that holds a parked task's waker. Sockets and timers are found by scanning every
/// reactor's waiter lists and every timer heap for the task's waker at snapshot time; channels
/// are noted by the receiving poll (see [`snapshot`](super::snapshot)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitsOn {
    /// A socket's readiness: the reactor token and `"read"` or `"write"`.
    Socket {
        /// The worker whose reactor the socket is registered with.
        worker: usize,
        /// The socket's token in that reactor (`generation << 32 | slot`).
        token: usize,
        /// `"read"` or `"write"`.
        direction: &'static str,
    },
    /// A timer (`sleep`, `timeout`, `interval`).
    Timer {
        /// The worker whose timer heap holds it.
        worker: usize,
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

/// The channel kinds a poll can note, one bit each in `TaskObs::channels`.
const CHANNELS: [&str; 3] = ["oneshot", "mpsc", "semaphore"];

/// The observatory's part of a task header.
pub(crate) struct TaskObs {
    pub(crate) id: u64,
    pub(crate) location: &'static Location<'static>,
    /// Polling thread only.
    polls: AtomicU64,
    /// Polls caused by each source, in `WakeSource::ALL` order. Polling thread only.
    wakes: [AtomicU64; 6],
    /// Polling thread only.
    last_worker: AtomicU32,
    /// Bit `i`: a wake from `WakeSource::ALL[i]` since the last poll started, left by the one
    /// thread allowed to write it then (see the module docs); the poll start takes it.
    cause: AtomicU8,
    /// The same, for the other wakes (`fetch_or`).
    late: AtomicU8,
    /// Bit `i`: the last poll registered with a channel of kind `CHANNELS[i]`. Polling thread
    /// only.
    channels: AtomicU8,
    /// The latest wake by a task: its id `<< 16 | worker` (`0xFFFF`: none); 0: never.
    woken_by: AtomicU64,
    /// The trace flow (socket event → wake) the next poll continues; 0: none.
    pending_flow: AtomicU64,
    /// When the first wake since the last poll came (trace clock, ns; 0: none), while timing.
    woken_at: AtomicU64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The outermost spawn entry point's caller on this thread (see [`SpawnSite`]).
    static SPAWN_SITE: Cell<Option<&'static Location<'static>>> = const { Cell::new(None) };
    /// The task this thread is polling (`obs` null: none).
    static CURRENT: Cell<Current> = const { Cell::new(Current::NONE) };
    /// Set while a reactor or timer heap dispatches its wake-ups.
    static DRIVER_WAKE: Cell<Option<WakeSource>> = const { Cell::new(None) };
}

/// What a thread is polling: three words, copied in and out of the thread-local on every poll.
#[derive(Clone, Copy)]
struct Current {
    /// The task's part of its header; null: none.
    obs: *const TaskObs,
    /// The worker's watchdog slot; null: not on a worker (blocking pool, a plain thread).
    slot: *const PollSlot,
    worker: u32,
}

impl Current {
    const NONE: Current = Current {
        obs: std::ptr::null(),
        slot: std::ptr::null(),
        worker: NO_WORKER,
    };

    /// The task, while it is mid-poll on this thread.
    fn task(&self) -> Option<&TaskObs> {
        // SAFETY: `obs` is only non-null while its task is mid-poll on this thread (set by
        // `poll_start`, restored by `PollGuard::end`), so the header is alive.
        unsafe { self.obs.as_ref() }
    }
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
            location,
            polls: AtomicU64::new(0),
            wakes: Default::default(),
            last_worker: AtomicU32::new(NO_WORKER),
            cause: AtomicU8::new(0),
            late: AtomicU8::new(0),
            channels: AtomicU8::new(0),
            woken_by: AtomicU64::new(0),
            pending_flow: AtomicU64::new(0),
            woken_at: AtomicU64::new(0),
        }
    }

    pub(crate) fn polls(&self) -> u64 {
        self.polls.load(Relaxed)
    }

    /// The channels the last poll noted.
    pub(crate) fn channel_waits(&self) -> impl Iterator<Item = WaitsOn> {
        let bits = self.channels.load(Relaxed);
        CHANNELS
            .iter()
            .enumerate()
            .filter(move |(i, _)| bits & (1 << i) != 0)
            .map(|(_, kind)| WaitsOn::Channel { kind })
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
        match self.woken_by.load(Relaxed) {
            0 => None,
            packed => {
                let worker = (packed & 0xFFFF) as u32;
                let worker = if worker == 0xFFFF { NO_WORKER } else { worker };
                Some((packed >> 16, worker_opt(worker)))
            }
        }
    }
}

/// Adds one to a counter only the calling thread writes: a relaxed load + store, no locked
/// read-modify-write.
#[inline]
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Relaxed) + 1, Relaxed);
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

/// Marks the start of a poll on this thread; [`PollGuard::end`] marks its end (and restores
/// the outer task when a poll nests inside another through `block_on`).
#[inline(always)]
pub(crate) fn poll_start(header: &Header) -> PollGuard {
    let obs = &header.obs;
    bump(&obs.polls);
    // Take the wakes since the last poll: they caused this one. (The first poll has none.)
    let cause = obs.cause.load(Relaxed);
    let late = obs.late.load(Relaxed);
    if cause | late != 0 {
        take_wakes(obs, cause, late);
    }
    if obs.channels.load(Relaxed) != 0 {
        obs.channels.store(0, Relaxed);
    }
    // The worker this thread drives, if any (kept in `CURRENT` by `enter_worker`).
    let outer = CURRENT.with(|c| c.get());
    let (worker, slot) = (outer.worker, outer.slot);
    if worker != NO_WORKER {
        if obs.last_worker.load(Relaxed) != worker {
            obs.last_worker.store(worker, Relaxed);
        }
        if watchdog::slots_read() {
            // SAFETY: the slot lives in the runtime's shared state, which the worker this
            // thread drives keeps alive for at least the duration of this poll.
            unsafe { &*slot }.publish(obs.id, obs.location);
        }
    }
    let started = if timing::is_timing() {
        timing_start(obs, slot)
    } else {
        0
    };
    if trace::is_tracing() {
        trace_poll_start(obs);
    }
    CURRENT.with(|c| c.set(Current { obs, slot, worker }));
    PollGuard {
        obs,
        prev: outer,
        started,
    }
}

/// This thread starts driving worker `index` (whose watchdog slot is `slot`); the guard
/// restores what it drove before.
pub(crate) fn enter_worker(index: usize, slot: &PollSlot) -> WorkerScope {
    let prev = CURRENT.with(|c| c.get());
    CURRENT.with(|c| {
        c.set(Current {
            obs: prev.obs,
            slot,
            worker: index as u32,
        })
    });
    WorkerScope(prev)
}

pub(crate) struct WorkerScope(Current);

impl Drop for WorkerScope {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

#[cold]
fn trace_poll_start(obs: &TaskObs) {
    let flow = match obs.pending_flow.load(Relaxed) {
        0 => 0,
        _ => obs.pending_flow.swap(0, Relaxed),
    };
    trace::poll_start(obs.id, flow);
}

/// Counts the sources of the wakes that caused this poll and clears them.
#[inline]
fn take_wakes(obs: &TaskObs, cause: u8, late: u8) {
    if cause != 0 {
        obs.cause.store(0, Relaxed);
    }
    let late = if late != 0 {
        obs.late.swap(0, Relaxed)
    } else {
        0
    };
    let mut bits = cause | late;
    while bits != 0 {
        bump(&obs.wakes[bits.trailing_zeros() as usize]);
        bits &= bits - 1;
    }
}

/// Timing on: the wake→poll latency, and the poll's start on the trace clock (never 0).
#[cold]
fn timing_start(obs: &TaskObs, slot: *const PollSlot) -> u64 {
    let now = trace::now_ns();
    // Stamped by the first `cause` wake since the previous poll start (see the module docs:
    // only `cause` writers write it), read once.
    let woken = obs.woken_at.load(Relaxed);
    if woken != 0 {
        obs.woken_at.store(0, Relaxed);
        if !slot.is_null() {
            // SAFETY: as in `poll_start`.
            let t = &unsafe { &*slot }.timing;
            t.wake_to_poll
                .record_owned(Duration::from_nanos(now.saturating_sub(woken)));
        }
    }
    now.max(1)
}

/// A poll in progress on this thread; [`end`](PollGuard::end) must be called when it returns
/// (the runtime catches a panicking poll, so it always is).
pub(crate) struct PollGuard {
    obs: *const TaskObs,
    prev: Current,
    /// Trace-clock ns at the poll's start, while timing; 0: not timing.
    started: u64,
}

impl PollGuard {
    /// The poll returned (`ready`: with the output).
    #[inline(always)]
    pub(crate) fn end(self, ready: bool) {
        // SAFETY: the task is still mid-poll (its poll just returned; it completes after this).
        let obs = unsafe { &*self.obs };
        let cur = CURRENT.with(|c| c.replace(self.prev));
        if trace::is_tracing() {
            trace::poll_end(obs.id, ready);
        }
        if self.started != 0 && !cur.slot.is_null() {
            timing_end(obs, self.started, cur.slot);
        }
        if !cur.slot.is_null() && watchdog::slots_read() {
            // SAFETY: as in `poll_start`; the poll that set the slot is just ending.
            let slot = unsafe { &*cur.slot };
            match self.prev.task() {
                // The outer task is running again (its nested block_on polled us); its
                // watchdog clock restarts now.
                Some(outer) if self.prev.slot == cur.slot => slot.publish(outer.id, outer.location),
                _ => slot.clear(),
            }
        }
    }
}

#[cold]
fn timing_end(obs: &TaskObs, started: u64, slot: *const PollSlot) {
    let now = trace::now_ns();
    let took = now.saturating_sub(started);
    // The task woke itself during this poll: its wake→poll latency runs from now.
    let self_woke = 1 << WakeSource::SelfWake as u8;
    if obs.cause.load(Relaxed) & self_woke != 0 && obs.woken_at.load(Relaxed) == 0 {
        obs.woken_at.store(now.max(1), Relaxed);
    }
    // SAFETY: as in `poll_start`.
    let t = &unsafe { &*slot }.timing;
    t.poll.record_owned(Duration::from_nanos(took));
    t.busy_ns
        .store(t.busy_ns.load(Relaxed).wrapping_add(took), Relaxed);
}

/// A task on a worker entered `block_on`: while the worker drives other work the blocked task
/// is not "in a long poll". The guard publishes it again when `block_on` returns.
pub(crate) fn blocking_section() -> BlockingSection {
    let cur = CURRENT.with(|c| c.get());
    if !cur.obs.is_null() && !cur.slot.is_null() {
        // SAFETY: see `poll_start`.
        unsafe { &*cur.slot }.clear();
    }
    trace::block_on(true);
    BlockingSection { cur }
}

pub(crate) struct BlockingSection {
    cur: Current,
}

impl Drop for BlockingSection {
    fn drop(&mut self) {
        trace::block_on(false);
        if let (Some(task), false) = (self.cur.task(), self.cur.slot.is_null()) {
            // SAFETY: the task is still mid-poll on this stack, and its worker alive.
            unsafe { &*self.cur.slot }.publish(task.id, task.location)
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

/// Notes a wake of `header`'s task (its source, for the next poll to count) and remembers which
/// task caused it. `scheduled`: this wake moved the idle task to scheduled (the task is not in
/// a queue yet).
#[inline]
pub(crate) fn on_wake(header: &Header, scheduled: bool) {
    let obs = &header.obs;
    let cur = CURRENT.with(|c| c.get());
    if std::ptr::eq(cur.obs, obs) && DRIVER_WAKE.with(|d| d.get()).is_none() {
        // The task woke itself during its poll: this thread is its only writer.
        let cause = obs.cause.load(Relaxed);
        obs.cause
            .store(cause | 1 << WakeSource::SelfWake as u8, Relaxed);
        if timing::is_timing() | trace::is_tracing() {
            wake_extras(obs, WakeSource::SelfWake, cause == 0);
        }
        return;
    }
    on_other_wake(obs, cur, DRIVER_WAKE.with(|d| d.get()), scheduled);
}

/// A wake by anything but the task itself.
#[inline(never)]
fn on_other_wake(obs: &TaskObs, cur: Current, driver: Option<WakeSource>, scheduled: bool) {
    let source = match (driver, cur.task()) {
        (Some(driver), _) => driver,
        (None, Some(_)) if cur.worker == NO_WORKER => WakeSource::Outside,
        (None, Some(_)) if cur.worker == obs.last_worker.load(Relaxed) => WakeSource::SameWorker,
        (None, Some(_)) => WakeSource::OtherWorker,
        (None, None) => WakeSource::Outside,
    };
    let bit = 1u8 << source as u8;
    let mut first = false;
    if scheduled {
        // The waker that scheduled the idle task: the only writer until it is queued.
        let cause = obs.cause.load(Relaxed);
        obs.cause.store(cause | bit, Relaxed);
        first = cause == 0;
    } else if obs.late.load(Relaxed) & bit == 0 {
        obs.late.fetch_or(bit, Relaxed);
    }
    if let Some(waker) = cur.task().filter(|t| !std::ptr::eq(*t, obs)) {
        let packed = (waker.id << 16) | u64::from(cur.worker.min(0xFFFF));
        if obs.woken_by.load(Relaxed) != packed {
            obs.woken_by.store(packed, Relaxed);
        }
    }
    if timing::is_timing() || trace::is_tracing() || source == WakeSource::Reactor {
        wake_extras(obs, source, first);
    }
}

/// Timing and trace of a wake; `first`: the first `cause` wake since the last poll started.
#[cold]
fn wake_extras(obs: &TaskObs, source: WakeSource, first: bool) {
    // A self-wake is stamped by the poll's end instead (`timing_end`): the task cannot run
    // again before that, and the clock is read there anyway.
    if first && source != WakeSource::SelfWake && timing::is_timing() {
        obs.woken_at.store(trace::now_ns(), Relaxed);
    }
    let flow = trace::wake(obs.id, source as usize, source == WakeSource::Reactor);
    if flow != 0 {
        obs.pending_flow.store(flow, Relaxed);
    }
}

/// The task being polled registered its waker with a channel of `kind` (`"oneshot"`, `"mpsc"`
/// or `"semaphore"`). Sockets and timers need no note: the snapshot finds them.
pub(crate) fn note_channel_wait(kind: &'static str) {
    if let Some(obs) = CURRENT.with(|c| c.get()).task() {
        let bit = CHANNELS
            .iter()
            .position(|k| *k == kind)
            .map_or(0, |i| 1u8 << i);
        let bits = obs.channels.load(Relaxed);
        if bits & bit == 0 {
            obs.channels.store(bits | bit, Relaxed);
        }
    }
}

pub(crate) fn current() -> Option<(u64, &'static Location<'static>)> {
    CURRENT.with(|c| c.get()).task().map(|t| (t.id, t.location))
}
