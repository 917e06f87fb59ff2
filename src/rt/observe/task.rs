//! Per-task identity and counters, and the thread-local state the runtime's hooks consult.
//!
//! Who writes what: every counter (the poll count, the wake counts by source), `last_worker`
//! and the channel note only the thread polling the task — it holds `RUNNING`, so a relaxed
//! load + store suffices and no two threads ever write a counter. A wake only leaves its
//! *source* for the next poll to count, in one of two places:
//!
//! * the `cause` byte of the poller's word (`TaskObs::word`: cause bits, channel bits, poll
//!   count) — written by the single thread that may write it at that moment, so a plain
//!   (relaxed) load + store: the task itself waking itself during its poll (it holds
//!   `RUNNING`), or the waker whose state transition moved the idle task to scheduled (exactly
//!   one per idle period, before the task is queued; the poll start that reads and clears it
//!   comes after the queue hand-off). These are nearly all wakes, and they cost no locked
//!   instruction.
//! * `late` — any other wake (the task was already scheduled, or is running on another
//!   thread): a `fetch_or` of the source bit, skipped when the bit is already set.
//!
//! The poll start reads both, clears them and bumps the counter of every source present. So a
//! counter counts **polls caused by that source**, not raw `wake` calls: several wakes before
//! one poll count once per distinct source — three wakes from one thread before the poll count
//! one; a self-wake and a wake from a plain thread count one each. Yield `k` times: `k`
//! self-wakes. "Woken by" (the latest waking task and its worker) is a relaxed store by the
//! waker — a fact, not a counter.
//!
//! **What the always-on part costs** (see DESIGN.md §1.11, "What it costs"): a spawn takes an
//! id from a per-thread block and the spawn site from a thread-local; a poll does one load +
//! store of the poller's word, a load of `late`, a store of `last_worker`, a swap of the
//! one-word current-task thread-local (`CTX`) and one load of the switch byte
//! ([`mode`](super::mode)) at each end; a self-wake is one thread-local compare and a load +
//! store. Everything behind a switch (timing, trace, the watchdog slot) is out of line.

use std::cell::Cell;
use std::panic::Location;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8};
use std::time::Instant;

use super::mode::{self, LIVE, TIMING, TRACE};
use super::watchdog::PollSlot;
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
/// reactor's waiter lists and every timer queue for the task's waker at snapshot time; channels
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
        /// The worker whose timer queue holds it.
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

/// `TaskObs::word`: the cause bits, the channel bits, the poll count.
const CAUSE_MASK: u64 = 0xFF;
const CHANNEL_SHIFT: u32 = 8;
const POLLS_SHIFT: u32 = 16;
const FLAGS_MASK: u64 = (1 << POLLS_SHIFT) - 1;

/// A channel kind a receiving poll notes (bit `kind as u8` of `TaskObs::word`'s channel byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Channel {
    Oneshot = 0,
    Mpsc = 1,
    Semaphore = 2,
}

/// The names of the channel kinds, by bit.
const CHANNELS: [&str; 3] = ["oneshot", "mpsc", "semaphore"];

/// The observatory's part of a task header.
pub(crate) struct TaskObs {
    pub(crate) id: u64,
    pub(crate) location: &'static Location<'static>,
    /// The poller's word, written only by the one thread that may write it at that moment (see
    /// the module docs): bits 0–7 `cause` — bit `i` a wake from `WakeSource::ALL[i]` since the
    /// last poll started, left by the waker that scheduled the idle task or by the task itself
    /// during its poll; bits 8–15 the channel kinds (`Channel`) the last poll registered with;
    /// bits 16–63 the poll count. One word so a poll start reads and resets all three with one
    /// load and one store.
    word: AtomicU64,
    /// Polls caused by each source, in `WakeSource::ALL` order. Polling thread only.
    wakes: [AtomicU64; 6],
    /// Polling thread only.
    last_worker: AtomicU32,
    /// Like `cause`, for the other wakes (`fetch_or`).
    late: AtomicU8,
    /// The latest wake by a task: its id `<< 16 | worker` (`0xFFFF`: none); 0: never.
    woken_by: AtomicU64,
    /// The trace flow (socket event → wake) the next poll continues; 0: none.
    pending_flow: AtomicU64,
    /// When the first wake since the last poll came (timing clock ticks; 0: none), while
    /// timing.
    woken_at: AtomicU64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Task ids are handed to threads in blocks of this many, so a spawn takes one with a
/// thread-local increment instead of a locked `fetch_add` on a line every spawning thread
/// shares. (Ids stay unique in the process; they rise per thread, not globally.)
const ID_BLOCK: u64 = 1024;

/// Low bits of `CTX`: wakes on this thread come from a reactor turn or a timer firing.
const TAG_MASK: usize = 3;
const TAG_REACTOR: usize = 1;
const TAG_TIMER: usize = 2;

thread_local! {
    /// The outermost spawn entry point's caller on this thread (see [`SpawnSite`]).
    static SPAWN_SITE: Cell<Option<&'static Location<'static>>> = const { Cell::new(None) };
    /// The task this thread is polling (the address of its `TaskObs`; 0: none), and in the
    /// low two bits (a `TaskObs` is 8-aligned) the driver whose wake-ups are being dispatched
    /// (`TAG_*`). One word: a self-wake is recognised by one compare — the tag makes a wake
    /// inside a driver turn differ from the task's own address.
    static CTX: Cell<usize> = const { Cell::new(0) };
    /// The worker this thread drives: its index and watchdog slot (null: none).
    static WORKER: Cell<(u32, *const PollSlot)> = const { Cell::new((NO_WORKER, std::ptr::null())) };
    /// The task blocked in `block_on` on this thread while the worker drives other work, and
    /// its worker's slot (see [`blocking_section`]).
    static BLOCKED: Cell<(usize, *const PollSlot)> = const { Cell::new((0, std::ptr::null())) };
    /// This thread's block of task ids: the next one and the block's end.
    static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// The task of a `CTX` value (its tag bits ignored).
///
/// # Safety
/// `ctx` was read from `CTX` on this thread while that task is still mid-poll here (`CTX`
/// names a task only from its poll start to its poll end, which restores the outer value).
#[inline(always)]
unsafe fn ctx_task<'a>(ctx: usize) -> Option<&'a TaskObs> {
    // SAFETY: forwarded from the caller: a non-zero address is a live, mid-poll task's.
    unsafe { ((ctx & !TAG_MASK) as *const TaskObs).as_ref() }
}

/// The next task id of this thread's block (a new block every `ID_BLOCK` spawns).
#[inline]
fn next_id() -> u64 {
    IDS.with(|ids| {
        let (next, end) = ids.get();
        if next != end {
            ids.set((next + 1, end));
            next
        } else {
            new_id_block(ids)
        }
    })
}

#[cold]
fn new_id_block(ids: &Cell<(u64, u64)>) -> u64 {
    let start = NEXT_ID.fetch_add(ID_BLOCK, Relaxed);
    ids.set((start + 1, start + ID_BLOCK));
    start
}

impl TaskObs {
    /// Identity for a task being allocated: the spawn site recorded by the entry point, or —
    /// for internal spawns that have none — the allocation's own caller.
    #[inline]
    #[track_caller]
    pub(crate) fn new() -> TaskObs {
        let location = SPAWN_SITE.with(|s| s.get()).unwrap_or(Location::caller());
        let id = next_id();
        if mode::get() & TRACE != 0 {
            trace::spawn(id, location);
        }
        TaskObs {
            id,
            location,
            word: AtomicU64::new(0),
            wakes: Default::default(),
            last_worker: AtomicU32::new(NO_WORKER),
            late: AtomicU8::new(0),
            woken_by: AtomicU64::new(0),
            pending_flow: AtomicU64::new(0),
            woken_at: AtomicU64::new(0),
        }
    }

    pub(crate) fn polls(&self) -> u64 {
        self.word.load(Relaxed) >> POLLS_SHIFT
    }

    /// The channels the last poll noted.
    pub(crate) fn channel_waits(&self) -> impl Iterator<Item = WaitsOn> {
        let bits = (self.word.load(Relaxed) >> CHANNEL_SHIFT) as u8;
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
#[inline(always)]
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
    #[inline(always)]
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
    #[inline(always)]
    fn drop(&mut self) {
        if self.outermost {
            SPAWN_SITE.with(|s| s.set(None));
        }
    }
}

/// Whether a new task joins the task table at spawn (only while a live reader exists; else,
/// as without the feature, when it first parks — a task that completes in its first poll
/// never touches the owned-task list's lock).
#[inline(always)]
pub(crate) fn link_at_spawn() -> bool {
    mode::get() & LIVE != 0
}

/// Marks the start of a poll on this thread; [`PollGuard::end`] marks its end (and restores
/// the outer task when a poll nests inside another through `block_on`).
///
/// With only the counters on, this is: the poll counter (load + store), the pending wake
/// sources (two byte loads), the channel note (a byte load), the worker's index (a
/// thread-local load) against `last_worker`, the current task (a thread-local swap) and the
/// switches (one byte load).
#[inline(always)]
pub(crate) fn poll_start(header: &Header) -> PollGuard {
    let obs = &header.obs;
    // One more poll; the cause and channel bits are taken and cleared.
    let word = obs.word.load(Relaxed);
    obs.word
        .store((word & !FLAGS_MASK) + (1 << POLLS_SHIFT), Relaxed);
    // Count the wakes since the last poll: they caused this one. (The first poll has none.)
    let cause = (word & CAUSE_MASK) as u8;
    let late = obs.late.load(Relaxed);
    if late != 0 {
        take_wakes(obs, cause);
    } else if cause != 0 {
        // Nearly always one source: count it here, any others out of line.
        bump(&obs.wakes[(cause.trailing_zeros() as usize).min(5)]);
        if cause & (cause - 1) != 0 {
            take_wakes(obs, cause & (cause - 1));
        }
    }
    // (No worker on the blocking pool: its jobs never run on one, so storing "none" is right.)
    let (worker, slot) = WORKER.with(|w| w.get());
    obs.last_worker.store(worker, Relaxed);
    let prev = CTX.with(|c| c.replace(obs as *const TaskObs as usize));
    let mode = mode::get();
    let cold = if mode != 0 {
        poll_start_cold(obs, mode, slot)
    } else {
        0
    };
    PollGuard { prev, cold }
}

/// This thread starts driving worker `index` (whose watchdog slot is `slot`); the guard
/// restores what it drove before.
pub(crate) fn enter_worker(index: usize, slot: &PollSlot) -> WorkerScope {
    WorkerScope(WORKER.with(|w| w.replace((index as u32, slot))))
}

pub(crate) struct WorkerScope((u32, *const PollSlot));

impl Drop for WorkerScope {
    fn drop(&mut self) {
        WORKER.with(|w| w.set(self.0));
    }
}

/// A switch is on at poll start: timing here (hot while it is on), publishing to the watchdog
/// slot and the trace in `poll_start_rare`. Returns the guard's `cold` word: the switches in
/// its low 3 bits, the start stamp (ticks) above them.
#[inline(never)]
fn poll_start_cold(obs: &TaskObs, mode: u8, slot: *const PollSlot) -> u64 {
    let started = if mode & TIMING != 0 {
        timing_start(obs, slot)
    } else {
        0
    };
    if mode & (LIVE | TRACE) != 0 {
        poll_start_rare(obs, mode, slot);
    }
    (started << MODE_BITS) | u64::from(mode)
}

#[cold]
#[inline(never)]
fn poll_start_rare(obs: &TaskObs, mode: u8, slot: *const PollSlot) {
    if mode & LIVE != 0 && !slot.is_null() {
        // SAFETY: the slot lives in the runtime's shared state, which the worker this thread
        // drives keeps alive for at least the duration of this poll.
        unsafe { &*slot }.publish(obs.id, obs.location);
    }
    if mode & TRACE != 0 {
        let flow = match obs.pending_flow.load(Relaxed) {
            0 => 0,
            _ => obs.pending_flow.swap(0, Relaxed),
        };
        trace::poll_start(obs.id, flow);
    }
}

/// Bits of a `PollGuard::cold` word that hold the switches.
const MODE_BITS: u32 = 3;

/// Counts the sources in `cause` and in `late` (cleared here) that caused this poll.
#[cold]
#[inline(never)]
fn take_wakes(obs: &TaskObs, cause: u8) {
    let late = match obs.late.load(Relaxed) {
        0 => 0,
        _ => obs.late.swap(0, Relaxed),
    };
    let mut bits = cause | late;
    while bits != 0 {
        bump(&obs.wakes[(bits.trailing_zeros() as usize).min(5)]);
        bits &= bits - 1;
    }
}

/// Timing on: the wake→poll latency, and the poll's start stamp (never 0).
#[inline]
fn timing_start(obs: &TaskObs, slot: *const PollSlot) -> u64 {
    let now = timing::poll_start_stamp();
    // Stamped by the first `cause` wake since the previous poll start (see the module docs:
    // only `cause` writers write it), read once.
    let woken = obs.woken_at.load(Relaxed);
    if woken != 0 {
        obs.woken_at.store(0, Relaxed);
        if !slot.is_null() && timing::is_current(woken) {
            // SAFETY: as in `poll_start_cold`.
            let t = &unsafe { &*slot }.timing;
            t.wake_to_poll
                .record_owned(timing::ticks_to_ns(now.saturating_sub(woken)));
        }
    }
    now.max(1)
}

/// A poll in progress on this thread; [`end`](PollGuard::end) must be called when it returns
/// (the runtime catches a panicking poll, so it always is). Two words, kept across the poll.
pub(crate) struct PollGuard {
    /// `CTX` before this poll (the outer task of a nested poll, a driver tag).
    prev: usize,
    /// 0 when no switch was on at the poll's start; else the switches (low `MODE_BITS` bits)
    /// and, while timing, the start stamp above them.
    cold: u64,
}

impl PollGuard {
    /// The poll of `header`'s task returned (`ready`: with the output).
    #[inline(always)]
    pub(crate) fn end(self, header: &Header, ready: bool) {
        CTX.with(|c| c.set(self.prev));
        let mode = mode::get();
        if u64::from(mode) | self.cold != 0 {
            self.end_cold(&header.obs, mode, ready);
        }
    }

    /// A switch was on at the start or is on now: timing here (hot while it is on), the
    /// trace and the watchdog slot in `end_rare`.
    #[inline(never)]
    fn end_cold(self, obs: &TaskObs, mode: u8, ready: bool) {
        let started = self.cold >> MODE_BITS;
        if started != 0 {
            timing_end(obs, started);
        }
        if (mode | self.cold as u8) & (LIVE | TRACE) != 0 {
            self.end_rare(obs, mode, ready);
        }
    }

    #[cold]
    #[inline(never)]
    fn end_rare(self, obs: &TaskObs, mode: u8, ready: bool) {
        if mode & TRACE != 0 {
            // The task woke itself during this poll (the self-wake left only its bit).
            if obs.word.load(Relaxed) & 1 << WakeSource::SelfWake as u8 != 0 {
                trace::wake(obs.id, WakeSource::SelfWake as usize, false);
            }
            trace::poll_end(obs.id, ready);
        }
        let slot = WORKER.with(|w| w.get()).1;
        if slot.is_null() {
            return;
        }
        if (mode | self.cold as u8) & LIVE != 0 {
            // SAFETY: as in `poll_start_cold`; the poll that set the slot is just ending.
            let slot_ref = unsafe { &*slot };
            let (blocked, blocked_slot) = BLOCKED.with(|b| b.get());
            // SAFETY: `prev` is the outer frame's `CTX`, whose task is mid-poll further up
            // this stack.
            match unsafe { ctx_task(self.prev) } {
                // The outer task is running again (its nested block_on polled us on its own
                // worker); its watchdog clock restarts now.
                Some(outer)
                    if std::ptr::eq(outer, blocked as *const TaskObs) && blocked_slot == slot =>
                {
                    slot_ref.publish(outer.id, outer.location)
                }
                _ => slot_ref.clear(),
            }
        }
    }
}

#[inline]
fn timing_end(obs: &TaskObs, started: u64) {
    let now = timing::poll_end_stamp();
    let took = timing::ticks_to_ns(now.saturating_sub(started));
    // The task woke itself during this poll: its wake→poll latency runs from now.
    let self_woke = 1 << WakeSource::SelfWake as u8;
    if obs.word.load(Relaxed) & self_woke != 0 && obs.woken_at.load(Relaxed) == 0 {
        obs.woken_at.store(now.max(1), Relaxed);
    }
    let slot = WORKER.with(|w| w.get()).1;
    if !slot.is_null() {
        // SAFETY: as in `poll_start_cold`. (Busy time is this histogram's sum.)
        unsafe { &*slot }.timing.poll.record_owned(took);
    }
}

/// A task on a worker entered `block_on`: while the worker drives other work the blocked task
/// is not "in a long poll". The guard publishes it again when `block_on` returns.
pub(crate) fn blocking_section() -> BlockingSection {
    let task = CTX.with(|c| c.get()) & !TAG_MASK;
    let slot = WORKER.with(|w| w.get()).1;
    if task != 0 && !slot.is_null() {
        // SAFETY: see `poll_start_cold`.
        unsafe { &*slot }.clear();
    }
    trace::block_on(true);
    timing::break_boundary();
    let prev = BLOCKED.with(|b| b.replace((task, slot)));
    BlockingSection { task, slot, prev }
}

pub(crate) struct BlockingSection {
    task: usize,
    slot: *const PollSlot,
    prev: (usize, *const PollSlot),
}

impl Drop for BlockingSection {
    fn drop(&mut self) {
        trace::block_on(false);
        timing::break_boundary();
        BLOCKED.with(|b| b.set(self.prev));
        // SAFETY: the task is still mid-poll on this stack.
        let task = unsafe { ctx_task(self.task) };
        if let (Some(task), false) = (task, self.slot.is_null()) {
            // Only for a reader: a slot left published with nobody reading would be stale
            // when one comes.
            if super::watchdog::slots_read() {
                // SAFETY: its worker is alive while it is mid-poll.
                unsafe { &*self.slot }.publish(task.id, task.location)
            }
        }
    }
}

/// While it lives, wakes on this thread are attributed to a reactor turn or a timer firing.
pub(crate) struct WakeScope(usize);

impl WakeScope {
    #[inline]
    pub(crate) fn enter(source: WakeSource) -> WakeScope {
        let tag = match source {
            WakeSource::Timer => TAG_TIMER,
            _ => TAG_REACTOR,
        };
        // A driver turn takes time: the next poll on this thread reads the clock afresh.
        timing::break_boundary();
        WakeScope(CTX.with(|c| c.replace((c.get() & !TAG_MASK) | tag)))
    }
}

impl Drop for WakeScope {
    #[inline]
    fn drop(&mut self) {
        trace::end_reactor_wakes();
        CTX.with(|c| c.set(self.0));
    }
}

/// Notes a self-wake: the task `header` is mid-poll on this thread, outside a driver turn (a
/// driver's tag would make `CTX` differ from the task's address). Returns false for every
/// other wake, which the caller reports with [`on_other_wake`] after its state transition.
///
/// One thread-local compare, and for a self-wake a load + store of the poller's word (this
/// thread is its only writer while the task runs). The self-wake's timing and trace records
/// are made by the poll's end (`timing_end`, `end_rare`), which finds the bit: no switch is
/// checked here.
#[inline(always)]
pub(crate) fn note_self_wake(header: &Header) -> bool {
    let obs = &header.obs;
    if CTX.with(|c| c.get()) != obs as *const TaskObs as usize {
        return false;
    }
    let word = obs.word.load(Relaxed);
    obs.word
        .store(word | 1 << WakeSource::SelfWake as u8, Relaxed);
    true
}

/// Notes a wake of `header`'s task by anything but the task itself (its source, for the next
/// poll to count) and remembers which task caused it. `scheduled`: this wake moved the idle
/// task to scheduled (the task is not in a queue yet, so this runs before it can be polled).
#[inline(never)]
pub(crate) fn on_other_wake(header: &Header, scheduled: bool) {
    let obs = &header.obs;
    let ctx = CTX.with(|c| c.get());
    // SAFETY: `ctx` was just read from this thread's `CTX`.
    let waker = unsafe { ctx_task(ctx) };
    let source = match (ctx & TAG_MASK, waker) {
        (TAG_REACTOR, _) => WakeSource::Reactor,
        (TAG_TIMER, _) => WakeSource::Timer,
        (_, None) => WakeSource::Outside,
        (_, Some(_)) => match WORKER.with(|w| w.get()).0 {
            NO_WORKER => WakeSource::Outside,
            w if w == obs.last_worker.load(Relaxed) => WakeSource::SameWorker,
            _ => WakeSource::OtherWorker,
        },
    };
    let bit = 1u8 << source as u8;
    let mut first = false;
    if scheduled {
        // The waker that scheduled the idle task: the only writer until it is queued.
        let word = obs.word.load(Relaxed);
        obs.word.store(word | u64::from(bit), Relaxed);
        first = word & CAUSE_MASK == 0;
    } else if obs.late.load(Relaxed) & bit == 0 {
        obs.late.fetch_or(bit, Relaxed);
    }
    if let Some(waker) = waker.filter(|t| !std::ptr::eq(*t, obs)) {
        let worker = WORKER.with(|w| w.get()).0;
        let packed = (waker.id << 16) | u64::from(worker.min(0xFFFF));
        if obs.woken_by.load(Relaxed) != packed {
            obs.woken_by.store(packed, Relaxed);
        }
    }
    let mode = mode::get();
    if mode & (TIMING | TRACE) != 0 {
        wake_extras(obs, source, first, mode);
    }
}

/// Timing and trace of a wake; `first`: the first `cause` wake since the last poll started.
#[cold]
#[inline(never)]
fn wake_extras(obs: &TaskObs, source: WakeSource, first: bool, mode: u8) {
    // (Self-wakes never come here: the poll's end stamps and traces them.)
    if first && mode & TIMING != 0 {
        obs.woken_at.store(timing::ticks().max(1), Relaxed);
    }
    if mode & TRACE != 0 {
        let flow = trace::wake(obs.id, source as usize, source == WakeSource::Reactor);
        if flow != 0 {
            obs.pending_flow.store(flow, Relaxed);
        }
    }
}

/// The task being polled registered its waker with a channel of `kind`. Sockets and timers
/// need no note: the snapshot finds them.
#[inline]
pub(crate) fn note_channel_wait(kind: Channel) {
    // SAFETY: read from this thread's `CTX` just now.
    if let Some(obs) = unsafe { ctx_task(CTX.with(|c| c.get())) } {
        let bit = 1u64 << (CHANNEL_SHIFT + kind as u32);
        let word = obs.word.load(Relaxed);
        if word & bit == 0 {
            obs.word.store(word | bit, Relaxed);
        }
    }
}

pub(crate) fn current() -> Option<(u64, &'static Location<'static>)> {
    // SAFETY: read from this thread's `CTX` just now.
    unsafe { ctx_task(CTX.with(|c| c.get())) }.map(|t| (t.id, t.location))
}
