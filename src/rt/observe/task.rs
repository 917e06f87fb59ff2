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

use super::watchdog::PollSlot;
use super::{timing, trace};
use crate::rt::context;
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

/// Marks the start of a poll on this thread; the guard marks its end (and restores the outer
/// task when a poll nests inside another through `block_on`).
pub(crate) fn poll_start(header: &Header) -> PollGuard {
    let obs = &header.obs;
    bump(&obs.polls);
    // Take the wakes since the last poll: they caused this one. (The first poll has none.)
    let cause = obs.cause.load(Relaxed);
    if cause != 0 {
        obs.cause.store(0, Relaxed);
    }
    let late = match obs.late.load(Relaxed) {
        0 => 0,
        _ => obs.late.swap(0, Relaxed),
    };
    let sources = cause | late;
    if sources != 0 {
        let mut bits = sources;
        while bits != 0 {
            bump(&obs.wakes[bits.trailing_zeros() as usize]);
            bits &= bits - 1;
        }
    }
    if obs.channels.load(Relaxed) != 0 {
        obs.channels.store(0, Relaxed);
    }
    let (worker, slot) = context::with_worker(|w| match w {
        Some(w) => (w.index() as u32, &w.remote().obs_slot as *const PollSlot),
        None => (NO_WORKER, std::ptr::null()),
    });
    let started = timing::is_timing().then(|| {
        let now = trace::now_ns();
        // Stamped by the first `cause` wake since the previous poll start; read once.
        // Written only by the `cause` writers (see the module docs), so a load + store.
        let woken = obs.woken_at.load(Relaxed);
        if woken != 0 {
            obs.woken_at.store(0, Relaxed);
        }
        if woken != 0 {
            if !slot.is_null() {
                // SAFETY: as below.
                let t = &unsafe { &*slot }.timing;
                t.wake_to_poll
                    .record_owned(Duration::from_nanos(now.saturating_sub(woken)));
            }
        }
        now
    });
    if worker != NO_WORKER && obs.last_worker.load(Relaxed) != worker {
        obs.last_worker.store(worker, Relaxed);
    }
    if worker != NO_WORKER {
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

/// Notes a wake of `header`'s task (its source, for the next poll to count) and remembers which
/// task caused it. `scheduled`: this wake moved the idle task to scheduled (the task is not in
/// a queue yet).
pub(crate) fn on_wake(header: &Header, scheduled: bool) {
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
    let index = source as usize;
    let bit = 1u8 << index;
    if source == WakeSource::SelfWake || scheduled {
        // The only writer right now: the task's own poll, or the waker that scheduled it.
        let cause = obs.cause.load(Relaxed);
        if cause & bit == 0 {
            obs.cause.store(cause | bit, Relaxed);
        }
        if cause == 0 && timing::is_timing() {
            // The first wake since the last poll started stamps the task.
            obs.woken_at.store(trace::now_ns(), Relaxed);
        }
    } else if obs.late.load(Relaxed) & bit == 0 {
        obs.late.fetch_or(bit, Relaxed);
    }
    let flow = trace::wake(obs.id, index, source == WakeSource::Reactor);
    if flow != 0 {
        obs.pending_flow.store(flow, Relaxed);
    }
    if let Some(cur) = cur.filter(|c| c.id != obs.id) {
        let packed = (cur.id << 16) | u64::from(cur.worker.min(0xFFFF));
        if obs.woken_by.load(Relaxed) != packed {
            obs.woken_by.store(packed, Relaxed);
        }
    }
}

/// The task being polled registered its waker with a channel of `kind` (`"oneshot"`, `"mpsc"`
/// or `"semaphore"`). Sockets and timers need no note: the snapshot finds them.
pub(crate) fn note_channel_wait(kind: &'static str) {
    if let Some(cur) = CURRENT.with(|c| c.get()) {
        let bit = CHANNELS
            .iter()
            .position(|k| *k == kind)
            .map_or(0, |i| 1u8 << i);
        // SAFETY: the current task is mid-poll on this thread, so its header is alive.
        let obs = unsafe { &*cur.obs };
        let bits = obs.channels.load(Relaxed);
        if bits & bit == 0 {
            obs.channels.store(bits | bit, Relaxed);
        }
    }
}

pub(crate) fn current() -> Option<(u64, &'static Location<'static>)> {
    // SAFETY: the current task is mid-poll on this thread, so its header is alive.
    CURRENT
        .with(|c| c.get())
        .map(|c| (c.id, unsafe { &*c.obs }.location))
}
