//! Per-task identity and counters, and the thread-local state the runtime's hooks consult.
//!
//! **Where it lives.** Two words in the task header ([`TaskObs`]: the poller's word, and the
//! `late` bits with the id and the spawn site's index in the interned [`SITES`]) and, for a
//! task something other than itself has woken, an [`Ext`] the second word then points to
//! (the id and site, the counters by source, "woken by", the trace's and timing's per-task
//! stamps). See `TaskObs` for why the header part is small.
//!
//! Who writes what: every counter (the poll count, the wake counts by source), the last worker
//! and the channel note only the thread polling the task — it holds `RUNNING`, so a relaxed
//! load + store suffices and no two threads ever write a counter. A wake only leaves its
//! *source* for the next poll to count, in one of two places:
//!
//! * the `cause` byte of the poller's word (`TaskObs::word`: cause bits, channel bits, last
//!   worker, poll count) — written by the single thread that may write it at that moment, so a
//!   plain (relaxed) load + store: the task itself waking itself during its poll (it holds
//!   `RUNNING`), or the waker whose state transition moved the idle task to scheduled (exactly
//!   one per idle period, before the task is queued; the poll start that reads and clears it
//!   comes after the queue hand-off). These are nearly all wakes, and they cost no locked
//!   instruction.
//! * `late` (the top byte of `TaskObs::id_late`) — any other wake (the task was already
//!   scheduled, or is running on another thread): an atomic `or` of the source bit (a CAS
//!   loop, `update_id_late`), skipped when the bit is already set.
//!
//! The poll start reads both and clears them. So a counter counts **polls caused by that
//! source**, not raw `wake` calls: several wakes before one poll count once per distinct
//! source — three wakes from one thread before the poll count one; a self-wake and a wake from
//! a plain thread count one each. Yield `k` times: `k` self-wakes. A poll caused by the task's
//! own wake alone counts nothing but the poll: self-wakes are derived from the poll count (see
//! [`TaskObs::wake_counts`]), so a yield loop never leaves the header. "Woken by" (the latest
//! waking task and its worker) is a relaxed store by the waker — a fact, not a counter.
//!
//! **What the always-on part costs** (see DESIGN.md §1.11, "What it costs"): a spawn takes an
//! id from a per-thread block, checks a thread-local for a recorded spawn site (the executors'),
//! looks its site up in the interned table (one hashed load and compare) and writes two
//! words; a
//! poll does one load + store of the poller's word, a load of `late`, a swap of the one-word
//! current-task thread-local (`CTX`) and one load of the switch byte ([`mode`](super::mode))
//! at each end; a self-wake is one thread-local compare and a load + store. A wake by another
//! task or thread, and the next poll's count of it, write the `Ext` (out of line). Everything
//! behind a switch (timing, trace, the watchdog slot) is out of line.

use std::cell::Cell;
use std::panic::Location;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::atomic::{AtomicPtr, AtomicU64};
use std::time::Instant;

use super::mode::{self, LIVE, TIMING, TRACE};
use super::timing::WorkerTiming;
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
/// are noted by the receiving poll (see `Handle::observe_snapshot`).
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

/// `TaskObs::word`: the cause bits (0–5, one per `WakeSource`), `STAMPED` (7), the channel
/// bits (8–10), the last worker + 1 (11–23; 0: none; all ones: a worker index past 8,189, not
/// recorded), the poll count (24–63).
const CAUSE_MASK: u64 = 0x3F;
/// Timing sampled the wake that scheduled the task (or its self-wake): `Ext::woken_at` holds
/// the wake's stamp for the next poll start.
const STAMPED: u64 = 1 << 7;
const SELF_BIT: u64 = 1 << WakeSource::SelfWake as u8;
const CHANNEL_SHIFT: u32 = 8;
const WORKER_SHIFT: u32 = 11;
const WORKER_BITS: u64 = 0x1FFF;
const POLLS_SHIFT: u32 = 24;
/// The bits a poll start replaces: cause, channels, worker.
const FLAGS_MASK: u64 = (1 << POLLS_SHIFT) - 1;
/// A poll count field this full is carried into `Ext::polls_carried` before it can wrap.
const POLLS_FULL: u64 = !FLAGS_MASK;

/// A channel kind a receiving poll notes (bit `kind as u8` of `TaskObs::word`'s channel byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Channel {
    Oneshot = 0,
    Mpsc = 1,
    Semaphore = 2,
}

/// The names of the channel kinds, by bit.
const CHANNELS: [&str; 3] = ["oneshot", "mpsc", "semaphore"];

/// `TaskObs::id_late`, a pointer-sized word: the `late` source bits in the top byte (bits
/// 56–63), and below them either the task's identity — bit 0 clear, the id in bits 1–40, the
/// spawn site's index in [`SITES`] in bits 41–55 — or, once the task has an [`Ext`] (which then
/// holds both), that `Ext`'s address with bit 0 (`EXT_TAG`) set. A pointer rather than a
/// `u64`, so the `Ext`'s address keeps its provenance through the late bits' updates (CAS
/// loops with `map_addr`, `update_id_late`): the `Ext` is freed through it.
const LATE_SHIFT: u32 = 56;
const LATE_MASK: usize = 0xFF << LATE_SHIFT;
/// Everything below the late bits.
const PAYLOAD_MASK: usize = !LATE_MASK;
const EXT_TAG: usize = 1;
const ID_SHIFT: u32 = 1;
/// Ids have 40 bits: unique among a process's first 2^40 (~1.1 × 10^12) tasks.
const ID_BITS: u32 = 40;
const ID_MASK: u64 = (1 << ID_BITS) - 1;
const SITE_SHIFT: u32 = ID_SHIFT + ID_BITS;
const SITE_BITS: u32 = LATE_SHIFT - SITE_SHIFT;
const _: () = assert!(std::mem::align_of::<Ext>() > EXT_TAG);
#[cfg(not(target_pointer_width = "64"))]
compile_error!("the observatory packs a task's identity into a 64-bit pointer word");

/// Spawn sites, interned: a task without an `Ext` keeps its site as an index into this table
/// (15 bits of `id_late`) instead of a third word in every task header. An open-addressing
/// hash set of `&'static Location`s whose slot number is the index: interning is one hashed
/// load and compare once a site is in (a site is entered once, by a CAS into an empty slot,
/// and never leaves). Slot 0 stays empty: index 0 means "not interned" (the table is full),
/// and such a task gets its `Ext`, which holds the site, at spawn.
const SITE_SLOTS: usize = 1 << SITE_BITS;
static SITES: [AtomicPtr<Location<'static>>; SITE_SLOTS] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; SITE_SLOTS];

/// The index of `site` in [`SITES`], entered there if it is new; 0 when the table is full.
#[inline]
fn site_index(site: &'static Location<'static>) -> usize {
    let want = site as *const Location<'static> as *mut Location<'static>;
    // Fibonacci hashing of the address: nearby `Location`s land far apart.
    let home =
        ((want.addr() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SITE_BITS)) as usize;
    let home = home.max(1);
    if SITES[home].load(Acquire) == want {
        return home;
    }
    site_index_probe(want, home)
}

#[cold]
#[inline(never)]
fn site_index_probe(want: *mut Location<'static>, home: usize) -> usize {
    let mut i = home;
    for _ in 1..SITE_SLOTS {
        let cur = SITES[i].load(Acquire);
        if cur == want {
            return i;
        }
        if cur.is_null() {
            match SITES[i].compare_exchange(cur, want, AcqRel, Acquire) {
                Ok(_) => return i,
                Err(now) if now == want => return i,
                Err(_) => {}
            }
        }
        i = (i + 1) & (SITE_SLOTS - 1);
        if i == 0 {
            i = 1;
        }
    }
    0
}

/// The site interned at `index` (not 0).
fn site_at(index: usize) -> &'static Location<'static> {
    let site = SITES[index].load(Acquire);
    // SAFETY: non-null slots hold `&'static Location`s (`site_index`), and the slot was filled
    // before the task that names it was made (its spawn did it, and the task reached this
    // thread after that, through a queue, the owned-task list or a waker).
    unsafe { site.as_ref() }.expect("a task's site index names a filled slot")
}

/// A new task's `id_late` when its site could not be interned: a fresh `Ext` holding the site,
/// tagged (nobody else can see the task yet: no CAS).
#[cold]
#[inline(never)]
fn ext_at_spawn(location: &'static Location<'static>, id: u64) -> *mut () {
    tagged(Box::into_raw(take_ext(location, id)), 0)
}

/// An `id_late` value naming `ext`, with the late bits of `late` (another `id_late` value).
#[inline]
fn tagged(ext: *mut Ext, late: usize) -> *mut () {
    assert_eq!(
        ext.addr() & (LATE_MASK | EXT_TAG),
        0,
        "an Ext's address fits below the late bits"
    );
    ext.cast::<()>()
        .map_addr(|a| a | EXT_TAG | (late & LATE_MASK))
}

/// The id and site index a `TaskObs::id_late` value without an `Ext` holds.
#[inline(always)]
fn identity(v: usize) -> (u64, usize) {
    (
        (v >> ID_SHIFT) as u64 & ID_MASK,
        (v >> SITE_SHIFT) & ((1 << SITE_BITS) - 1),
    )
}

/// The observatory's part of a task header: two words, in the task's own allocation.
///
/// Why so few: the whole record in the header (104 bytes) made tasks with small futures cost
/// as much more as the observatory's code did — a task of the runtime benchmarks went from a
/// 72–96-byte allocation to 176–200 bytes, past the allocator's cheapest size classes (glibc's
/// fast bins end at 128-byte chunks) and twice the cache lines per task; a header padded by
/// 104 bytes *without* any observatory code measured the same +8 % on spawn_many_local and
/// +15 % on ping_pong at 2 workers. So only what every task needs from its spawn on lives
/// here (identity, the poller's word, the `late` bits); the counters live in an [`Ext`] that
/// a task gets the first time something other than itself wakes it, or the trace or timing
/// needs it. A task that completes in its first poll, or only ever wakes itself (a yield
/// loop: its self-wakes are derived), never gets one. (It was three words, the spawn site a
/// pointer of its own; 24 bytes put the runtime benchmarks' 72-byte tasks in 112-byte chunks
/// instead of 96, and a header padded by 24 bytes instead of 16 measured about 2 points more
/// on every 2-worker row — a figure that also carries where the heap put the tasks in their
/// cache lines, see DESIGN.md §1.11: the site is now an index next to the id.) Even these 16
/// bytes are most of the counters' cost at 2 workers on ping_pong: a feature-off build with 16
/// unused header bytes measured +4 to +6 % there, 8 bytes +1 to +3 % (DESIGN.md §1.11, fifth
/// session), so a third word is not free, and one word is what the 2-worker rows' gate would
/// need.
pub(crate) struct TaskObs {
    /// The poller's word, written only by the one thread that may write it at that moment (see
    /// the module docs): bits 0–7 `cause` — bit `i` a wake from `WakeSource::ALL[i]` since the
    /// last poll started, left by the waker that scheduled the idle task or by the task itself
    /// during its poll; bits 8–10 the channel kinds (`Channel`) the last poll registered with;
    /// bits 11–23 the worker that polled last (see `WORKER_SHIFT`); bits 24–63 the poll count.
    /// One word so a poll start reads and resets all of them with one load and one store.
    word: AtomicU64,
    /// `late` (bits 56–63): like `cause`, for the other wakes (set atomically; the poll start
    /// takes them: `update_id_late`); below them the id and spawn site (fixed at spawn), or the
    /// task's `Ext` once it has one (installed by one CAS, freed with the task). See
    /// `LATE_SHIFT`.
    id_late: AtomicPtr<()>,
}

const _: () = assert!(std::mem::size_of::<TaskObs>() == 16);

/// The rest of a task's record, given to a task the first time something other than its own
/// poll wakes it (see [`TaskObs`]), or when the trace or timing needs it.
///
/// 120 bytes (a 128-byte allocation), with the counters a poll writes (`wakes`, `others`,
/// `also_self`: offsets 40–104) in the middle: records of tasks that different workers poll
/// often sit next to each other (they were handed out in a row), and 128 bytes apart two
/// neighbours' counters are a full cache line apart, so they never share one.
#[repr(C)]
struct Ext {
    location: &'static Location<'static>,
    /// The task's id (moved here from `TaskObs::id_late` when the `Ext` was installed).
    id: u64,
    /// The latest wake by a task: its id `<< 16 | worker` (`0xFFFF`: none); 0: never.
    woken_by: AtomicU64,
    /// The trace flow (socket event → wake) the next poll continues; 0: none.
    pending_flow: AtomicU64,
    /// When the first wake since the last poll came (timing clock ticks; 0: none), while
    /// timing.
    woken_at: AtomicU64,
    /// Polls caused by each source other than the task itself, in `WakeSource::ALL` order
    /// (index 0, the self-wake, is not kept: see [`TaskObs::wake_counts`]). Polling thread only.
    wakes: [AtomicU64; 6],
    /// Polls caused by at least one source other than the task itself. Polling thread only.
    others: AtomicU64,
    /// Of those, polls the task's own wake caused as well. Polling thread only.
    also_self: AtomicU64,
    /// Polls after the first with no recorded cause (none are expected; kept so the self-wake
    /// count stays exact if one happens). Polling thread only.
    uncaused: AtomicU64,
    /// Polls carried out of `TaskObs::word`'s 40-bit count. Polling thread only.
    polls_carried: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<Ext>() == 120);

impl Ext {
    fn new(location: &'static Location<'static>, id: u64) -> Ext {
        Ext {
            location,
            id,
            woken_by: AtomicU64::new(0),
            pending_flow: AtomicU64::new(0),
            woken_at: AtomicU64::new(0),
            wakes: Default::default(),
            others: AtomicU64::new(0),
            also_self: AtomicU64::new(0),
            uncaused: AtomicU64::new(0),
            polls_carried: AtomicU64::new(0),
        }
    }
}

/// Spare `Ext`s a thread keeps for its next installs: a task that needs one takes it and gives
/// it back when it is freed, so a steady state of tasks woken by others (ping_pong's) costs no
/// allocator calls — with many such tasks alive, glibc's paths for 128-byte blocks cost ~350
/// instructions per ping_pong round, a third of the counters' whole cost there. At most
/// 4,096 per thread (512 KiB).
const SPARE_EXTS: usize = 4096;

thread_local! {
    /// Boxes, not `Ext`s: each is handed out as the address a task keeps (`site`).
    #[allow(clippy::vec_box)]
    static SPARES: std::cell::RefCell<Vec<Box<Ext>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A cleared `Ext` for a task spawned at `location`: a spare if this thread has one.
#[inline]
fn take_ext(location: &'static Location<'static>, id: u64) -> Box<Ext> {
    let spare = SPARES
        .try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.pop()))
        .ok()
        .flatten();
    match spare {
        Some(mut ext) => {
            *ext = Ext::new(location, id);
            ext
        }
        None => Box::new(Ext::new(location, id)),
    }
}

/// Keeps `ext` for this thread's next install, or frees it (the thread has enough, or is
/// exiting).
#[inline]
fn give_back(ext: Box<Ext>) {
    let mut ext = Some(ext);
    let _ = SPARES.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            if s.len() < SPARE_EXTS {
                s.push(ext.take().expect("given back once"));
            }
        }
    });
    drop(ext);
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
    /// The worker this thread drives (see [`Driving`]).
    static WORKER: Cell<Driving> = const { Cell::new(Driving::NONE) };
    /// The task blocked in `block_on` on this thread while the worker drives other work, and
    /// its worker's slot (see [`blocking_section`]).
    static BLOCKED: Cell<(usize, *const PollSlot)> = const { Cell::new((0, std::ptr::null())) };
    /// This thread's block of task ids: the next one and the block's end.
    static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// The worker a thread drives, as its hooks need it.
#[derive(Clone, Copy)]
struct Driving {
    /// Its index (`NO_WORKER`: none).
    index: u32,
    /// Its index as the poller's word's worker field ([`worker_bits`]), ready for a poll start
    /// to `or` in.
    bits: u64,
    /// Its watchdog slot (null: none).
    slot: *const PollSlot,
}

impl Driving {
    const NONE: Driving = Driving {
        index: NO_WORKER,
        bits: 0,
        slot: std::ptr::null(),
    };
}

/// Worker `index` in the poller's word's worker field: `index + 1`, all ones past 8,189 (not
/// recorded), 0 for `NO_WORKER` (a thread of the blocking pool or `block_on`: none).
#[inline]
fn worker_bits(index: u32) -> u64 {
    u64::from(index.wrapping_add(1)).min(WORKER_BITS) << WORKER_SHIFT
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
    IDS.with(|ids| next_in_block(ids, &NEXT_ID, ID_BLOCK))
}

/// The next number of a thread's block (`block`: the next one and the block's end), taking a
/// new block of `size` from `shared` when it is used up: numbers unique in the process
/// without a shared `fetch_add` per number (task ids, the trace's flow ids).
#[inline]
pub(super) fn next_in_block(block: &Cell<(u64, u64)>, shared: &AtomicU64, size: u64) -> u64 {
    let (next, end) = block.get();
    if next != end {
        block.set((next + 1, end));
        next
    } else {
        new_block(block, shared, size)
    }
}

#[cold]
fn new_block(block: &Cell<(u64, u64)>, shared: &AtomicU64, size: u64) -> u64 {
    let start = shared.fetch_add(size, Relaxed);
    block.set((start + 1, start + size));
    start
}

impl TaskObs {
    /// Identity for a task being allocated at `site` (the spawn path's caller), unless an
    /// entry point the path's `#[track_caller]` cannot follow recorded its own ([`SpawnSite`]).
    #[inline(always)]
    pub(crate) fn new(site: &'static Location<'static>) -> TaskObs {
        let location = SPAWN_SITE.with(|s| s.get()).unwrap_or(site);
        let id = next_id() & ID_MASK;
        if mode::get() & TRACE != 0 {
            trace::spawn(id, location);
        }
        let id_late = match site_index(location) {
            // The site table is full: the site goes in an `Ext` from the start.
            0 => ext_at_spawn(location, id),
            index => {
                std::ptr::without_provenance_mut((id << ID_SHIFT) as usize | index << SITE_SHIFT)
            }
        };
        TaskObs {
            // The first poll looks like a lone self-wake's, so a poll start tells both apart
            // from the rest with one compare (`count_poll`; `count_causes` drops the bit).
            word: AtomicU64::new(SELF_BIT),
            id_late: AtomicPtr::new(id_late),
        }
    }

    /// The task's id: unique among the process's first 2^40 tasks.
    #[inline]
    pub(crate) fn id(&self) -> u64 {
        let v = self.id_late.load(Acquire);
        match ext_of(v) {
            Some(ext) => ext.id,
            None => identity(v.addr()).0,
        }
    }

    /// Where the task was spawned.
    pub(crate) fn location(&self) -> &'static Location<'static> {
        let v = self.id_late.load(Acquire);
        match ext_of(v) {
            Some(ext) => ext.location,
            None => site_at(identity(v.addr()).1),
        }
    }

    /// The task's `Ext`, if it has one.
    #[inline(always)]
    fn ext(&self) -> Option<&Ext> {
        ext_of(self.id_late.load(Acquire))
    }

    /// The task's `Ext`, installed now if it has none. Any thread may call this: the CAS that
    /// installs it publishes it (`Release`), and a thread that loses the race frees its own.
    #[cold]
    #[inline(never)]
    fn ext_or_install(&self) -> &Ext {
        let v = self.id_late.load(Acquire);
        if let Some(ext) = ext_of(v) {
            return ext;
        }
        let (id, index) = identity(v.addr());
        self.install(site_at(index), id)
    }

    /// Installs an `Ext` for the task spawned at `location` with `id` (what `id_late` holds
    /// until then), unless another thread just did: then that one.
    #[cold]
    #[inline(never)]
    fn install(&self, location: &'static Location<'static>, id: u64) -> &Ext {
        let fresh = Box::into_raw(take_ext(location, id));
        let mut cur = self.id_late.load(Acquire);
        loop {
            if let Some(theirs) = ext_of(cur) {
                // SAFETY: ours was never shared.
                give_back(unsafe { Box::from_raw(fresh) });
                return theirs;
            }
            // The late bits stay; the identity moves into the `Ext`.
            match self.id_late.compare_exchange_weak(
                cur,
                tagged(fresh, cur.addr()),
                AcqRel,
                Acquire,
            ) {
                // SAFETY: just installed; freed only when the task is (`Drop`).
                Ok(_) => return unsafe { &*fresh },
                // A late wake's bit arrived, or another thread installed one: look again.
                Err(now) => cur = now,
            }
        }
    }

    pub(crate) fn polls(&self) -> u64 {
        let carried = self.ext().map_or(0, |e| e.polls_carried.load(Relaxed));
        (self.word.load(Relaxed) >> POLLS_SHIFT) + carried
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

    /// Polls caused by each source. The self-wakes are not counted on their own (a yield loop
    /// would write the task's `Ext` on every poll): every poll after the first has a cause, so
    /// they are the polls that had no other one — `polls − 1 − others − uncaused` — plus those
    /// that had the task's own wake as well as another (`also_self`). (The snapshot uses
    /// [`polls_and_wakes`](Self::polls_and_wakes), which also gives the poll count they match.)
    #[cfg(test)]
    pub(crate) fn wake_counts(&self) -> WakeCounts {
        self.polls_and_wakes().1
    }

    /// The poll count and the wake counts, consistent with each other even while the task
    /// runs on another thread: the counters are read first and the poll count after them (a
    /// poll start stores its count before it bumps a counter), so no source counts more than
    /// `polls − 1` polls and the derived self-wakes use the same count the caller reports. (Two
    /// separate reads let a snapshot row show 50 self-wakes over 35 polls: the task polled 16
    /// more times between them — `tests/observatory_stress.rs` caught it.)
    pub(crate) fn polls_and_wakes(&self) -> (u64, WakeCounts) {
        let Some(ext) = self.ext() else {
            // Never woken by anything but itself: every poll after the first was a self-wake.
            let polls = self.polls();
            let counts = WakeCounts {
                self_wake: polls.saturating_sub(1),
                ..WakeCounts::default()
            };
            return (polls, counts);
        };
        let w = |i: usize| ext.wakes[i].load(Relaxed);
        let (same_worker, other_worker, reactor, timer, outside) = (w(1), w(2), w(3), w(4), w(5));
        let also_self = ext.also_self.load(Relaxed);
        let not_self = ext.others.load(Relaxed) + ext.uncaused.load(Relaxed);
        let polls = self.polls();
        let counts = WakeCounts {
            self_wake: polls.saturating_sub(1).saturating_sub(not_self) + also_self,
            same_worker,
            other_worker,
            reactor,
            timer,
            outside,
        };
        (polls, counts)
    }

    pub(crate) fn last_worker(&self) -> Option<usize> {
        last_worker_of(self.word.load(Relaxed))
    }

    /// The task (and its worker) behind the latest wake by a task, if any.
    pub(crate) fn woken_by(&self) -> Option<(u64, Option<usize>)> {
        match self.ext()?.woken_by.load(Relaxed) {
            0 => None,
            packed => {
                let worker = (packed & 0xFFFF) as u32;
                let worker = if worker == 0xFFFF { NO_WORKER } else { worker };
                Some((packed >> 16, worker_opt(worker)))
            }
        }
    }
}

impl Drop for TaskObs {
    fn drop(&mut self) {
        if let Some(ext) = ext_ptr(*self.id_late.get_mut()) {
            // SAFETY: installed by `ext_or_install` from `Box::into_raw` (this is that pointer,
            // untagged); the task is being freed, so nothing else can reach it.
            give_back(unsafe { Box::from_raw(ext) });
        }
    }
}

/// The worker a poller's word names (`None`: not polled on a worker yet).
#[inline(always)]
fn last_worker_of(word: u64) -> Option<usize> {
    match (word >> WORKER_SHIFT) & WORKER_BITS {
        0 | WORKER_BITS => None,
        w => Some(w as usize - 1),
    }
}

/// The `Ext` a `TaskObs::id_late` value points to, if it is tagged.
#[inline(always)]
fn ext_of<'a>(v: *mut ()) -> Option<&'a Ext> {
    // SAFETY: a tagged value points to a live `Ext`, which lives as long as its task (the
    // caller's borrow of the task bounds `'a`).
    ext_ptr(v).map(|p| unsafe { &*p })
}

/// The `Ext` pointer in a tagged `TaskObs::id_late` value.
#[inline(always)]
fn ext_ptr(v: *mut ()) -> Option<*mut Ext> {
    (v.addr() & EXT_TAG != 0).then(|| v.map_addr(|a| a & PAYLOAD_MASK & !EXT_TAG).cast::<Ext>())
}

/// Applies `f` to the address bits of `id_late` (setting or taking late bits) and returns the
/// value before. A CAS loop, where `AtomicPtr::fetch_or`/`fetch_and` would do, because those
/// need Rust 1.91 and the crate's MSRV is older; `map_addr` keeps an `Ext`'s provenance.
/// (An RMW continues the release sequence of the `Ext`'s install, so a later `Acquire` load
/// still sees the `Ext` initialised.)
#[inline]
fn update_id_late(id_late: &AtomicPtr<()>, f: impl Fn(usize) -> usize) -> *mut () {
    let mut cur = id_late.load(Relaxed);
    loop {
        match id_late.compare_exchange_weak(cur, cur.map_addr(&f), Relaxed, Relaxed) {
            Ok(prev) => return prev,
            Err(now) => cur = now,
        }
    }
}

/// The `id_late` bit of a source bit.
#[inline(always)]
fn late_bit(bit: u8) -> usize {
    usize::from(bit) << LATE_SHIFT
}

/// Adds one to a counter only the calling thread writes: a relaxed load + store, no locked
/// read-modify-write.
#[inline(always)]
fn bump(counter: &AtomicU64) {
    bump_by(counter, 1);
}

#[inline(always)]
fn bump_by(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed) + n, Relaxed);
}

fn worker_opt(w: u32) -> Option<usize> {
    (w != NO_WORKER).then_some(w as usize)
}

/// Records the caller of a public spawn entry point for the allocation it leads to, where the
/// spawn path crosses a trait object or a closure that `#[track_caller]` cannot follow (the
/// executors' `submit` and `spawn_blocking`); elsewhere the path carries the site as a
/// parameter (`rt::sited!`). The outermost entry point wins, and a recorded site wins over the
/// carried one.
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
/// With only the counters on, this is: one load + store of the poller's word (the poll count,
/// the cause and channel bits taken and cleared, the worker's index from a thread-local), a
/// load of `late`, the current task (a thread-local swap) and the switches (one byte load).
/// A first poll, and a poll its own wake alone caused (a yield loop's), count nothing else;
/// any other cause is counted out of line, in the task's `Ext`.
#[inline(always)]
pub(crate) fn poll_start(header: &Header) -> PollGuard {
    let obs = &header.obs;
    let Driving { bits, slot, .. } = WORKER.with(|w| w.get());
    let word = count_poll(obs, bits);
    let prev = CTX.with(|c| c.replace(obs as *const TaskObs as usize));
    let mode = mode::get();
    let cold = if mode != 0 {
        // Timing alone, the common poll: untimed, no stamped wake, a stretch open.
        // SAFETY: as in `poll_start_rare`.
        if mode == TIMING
            && word & STAMPED == 0
            && !slot.is_null()
            && unsafe { &*slot }.timing.skip_poll()
        {
            u64::from(TIMING)
        } else {
            poll_start_cold(obs, word, mode, slot)
        }
    } else {
        0
    };
    PollGuard { prev, cold }
}

/// This thread starts driving worker `index` (whose watchdog slot is `slot`); the guard
/// restores what it drove before.
pub(crate) fn enter_worker(index: usize, slot: &PollSlot) -> WorkerScope {
    let index = u32::try_from(index).unwrap_or(NO_WORKER - 1);
    WorkerScope(WORKER.with(|w| {
        w.replace(Driving {
            index,
            bits: worker_bits(index),
            slot,
        })
    }))
}

/// The worker this thread drives stops running tasks for now (it goes to sleep, or the thread
/// stops driving it): its run stretch ends (if one is open: timing may be off by now).
pub(crate) fn close_run_stretch() {
    let slot = WORKER.with(|w| w.get()).slot;
    if !slot.is_null() {
        // SAFETY: the slot lives in the runtime's shared state, which the worker this thread
        // drives keeps alive.
        unsafe { &*slot }.timing.close_stretch();
    }
}

pub(crate) struct WorkerScope(Driving);

impl Drop for WorkerScope {
    fn drop(&mut self) {
        // The thread stops driving this worker: its run stretch ends here.
        close_run_stretch();
        WORKER.with(|w| w.set(self.0));
    }
}

/// A switch is on at poll start (`word`: the poller's word before it), and this is not the
/// common untimed poll with timing alone on: timing here, publishing to the watchdog slot and
/// the trace in `poll_start_rare`. Returns the guard's `cold` word: the switches in its low 3
/// bits, the start stamp (ticks) of a timed poll above them.
#[inline(never)]
fn poll_start_cold(obs: &TaskObs, word: u64, mode: u8, slot: *const PollSlot) -> u64 {
    let started = if mode & TIMING != 0 && !slot.is_null() {
        // SAFETY: as in `poll_start_rare`.
        timing_start(obs, word, &unsafe { &*slot }.timing)
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
        unsafe { &*slot }.publish(obs.id(), obs.location());
    }
    if mode & TRACE != 0 {
        let flow = match obs.ext() {
            Some(ext) if ext.pending_flow.load(Relaxed) != 0 => ext.pending_flow.swap(0, Relaxed),
            _ => 0,
        };
        trace::poll_start(obs.id(), flow);
    }
}

/// Bits of a `PollGuard::cold` word that hold the switches.
const MODE_BITS: u32 = 3;

/// The counting half of [`poll_start`]: one more poll of `obs`'s task, on the worker whose
/// word field is `worker` ([`worker_bits`]). Returns the poller's word as it was before.
#[inline(always)]
fn count_poll(obs: &TaskObs, worker: u64) -> u64 {
    // One more poll, on this worker; the cause and channel bits are taken and cleared.
    let word = obs.word.load(Relaxed);
    obs.word.store(
        (word & !FLAGS_MASK).wrapping_add(1 << POLLS_SHIFT) | worker,
        Relaxed,
    );
    // The common poll counts nothing else: its cause is the task's own wake alone (or it is
    // the first poll, marked so at spawn), no late wake came, and the count does not wrap.
    if word & CAUSE_MASK != SELF_BIT
        || obs.id_late.load(Relaxed).addr() > PAYLOAD_MASK
        || word >= POLLS_FULL
    {
        count_causes(obs, word);
    }
    word
}

/// Counts what caused a poll that is not a first poll or a lone self-wake's (`word`: the
/// poller's word before this poll started), taking the late bits; and carries a full poll
/// count into the `Ext`.
#[cold]
#[inline(never)]
fn count_causes(obs: &TaskObs, word: u64) {
    // (A late wake that arrives after this is counted by the next poll.)
    let late = match obs.id_late.load(Relaxed).addr() > PAYLOAD_MASK {
        false => 0,
        true => (update_id_late(&obs.id_late, |v| v & PAYLOAD_MASK).addr() >> LATE_SHIFT) as u64,
    };
    let first = word >> POLLS_SHIFT == 0;
    // A first poll's self bit is the mark `TaskObs::new` left, not a wake.
    let own = match first {
        true => word & CAUSE_MASK & !SELF_BIT,
        false => word & CAUSE_MASK,
    };
    let bits = own | late;
    if word >= POLLS_FULL {
        // The count in the word wrapped to 0 with this poll's increment; its bits are gone.
        let ext = obs.ext_or_install();
        bump_by(&ext.polls_carried, 1 << (64 - POLLS_SHIFT));
    }
    if bits == SELF_BIT || (bits == 0 && first) {
        return;
    }
    let ext = obs.ext_or_install();
    if bits == 0 {
        bump(&ext.uncaused);
        return;
    }
    bump(&ext.others);
    if bits & SELF_BIT != 0 {
        bump(&ext.also_self);
    }
    let mut others = bits & !SELF_BIT;
    while others != 0 {
        bump(&ext.wakes[(others.trailing_zeros() as usize).min(5)]);
        others &= others - 1;
    }
}

/// Timing on, on a worker (`timing`: its histograms): opens the worker's run stretch if none
/// is open, records the wake→poll latency of a stamped wake (`word`: the poller's word before
/// this poll), and decides whether to time this poll. Returns its start stamp if it is timed
/// (never 0), else 0. Reads the clock only for one of those three.
#[inline]
fn timing_start(obs: &TaskObs, word: u64, timing: &WorkerTiming) -> u64 {
    let (timed, stretch_open) = timing.poll_starts();
    if !(timed || !stretch_open || word & STAMPED != 0) {
        return 0;
    }
    let now = timing::ticks().max(1);
    // The first poll of a stretch (the worker woke up, or timing was just switched on) is
    // timed too: the clock is read anyway, and the gap left from before a pause is stale.
    let timed = timed || !stretch_open;
    if timed {
        timing.timed(now);
    }
    if !stretch_open {
        timing.open_stretch(now);
    }
    if word & STAMPED != 0 {
        // Stamped by the wake that scheduled this poll (only it writes the word then), or by
        // this task's previous poll's end: either happened before this poll started.
        if let Some(ext) = obs.ext() {
            let woken = ext.woken_at.load(Relaxed);
            if timing::is_current(woken) {
                timing
                    .wake_to_poll
                    .record_owned(timing::ticks_to_ns(now.saturating_sub(woken)));
            }
        }
    }
    if timed {
        now
    } else {
        0
    }
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
        // Nothing to do for an untimed poll when timing is the only switch.
        if (u64::from(mode) | self.cold) & !u64::from(TIMING) != 0 {
            self.end_cold(&header.obs, mode, ready);
        }
    }

    /// The poll was timed, or the trace or the live view was on at its start or is on now:
    /// timing here, the trace and the watchdog slot in `end_rare`.
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
            if obs.word.load(Relaxed) & SELF_BIT != 0 {
                trace::wake(obs.id(), WakeSource::SelfWake as usize, false);
            }
            trace::poll_end(obs.id(), ready);
        }
        let slot = WORKER.with(|w| w.get()).slot;
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
                    slot_ref.publish(outer.id(), outer.location())
                }
                _ => slot_ref.clear(),
            }
        }
    }
}

/// The end of a timed poll that started at `started`.
#[inline]
fn timing_end(obs: &TaskObs, started: u64) {
    let now = timing::ticks();
    let took = timing::ticks_to_ns(now.saturating_sub(started));
    // The task woke itself during this poll: its wake→poll latency runs from now. (The poller
    // is the word's only writer until the poll's state transition, which comes after this.)
    let word = obs.word.load(Relaxed);
    if word & SELF_BIT != 0 {
        // (A task only ever woken by itself has no `Ext` yet.)
        obs.ext_or_install().woken_at.store(now.max(1), Relaxed);
        obs.word.store(word | STAMPED, Relaxed);
    }
    let slot = WORKER.with(|w| w.get()).slot;
    if !slot.is_null() {
        // SAFETY: as in `poll_start_cold`.
        unsafe { &*slot }.timing.poll.record_owned(took);
    }
}

/// A task on a worker entered `block_on`: while the worker drives other work the blocked task
/// is not "in a long poll". The guard publishes it again when `block_on` returns.
pub(crate) fn blocking_section() -> BlockingSection {
    let task = CTX.with(|c| c.get()) & !TAG_MASK;
    let slot = WORKER.with(|w| w.get()).slot;
    if task != 0 && !slot.is_null() {
        // SAFETY: see `poll_start_cold`.
        unsafe { &*slot }.clear();
    }
    trace::block_on(true);
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
        BLOCKED.with(|b| b.set(self.prev));
        // SAFETY: the task is still mid-poll on this stack.
        let task = unsafe { ctx_task(self.task) };
        if let (Some(task), false) = (task, self.slot.is_null()) {
            // Only for a reader: a slot left published with nobody reading would be stale
            // when one comes.
            if super::watchdog::slots_read() {
                // SAFETY: its worker is alive while it is mid-poll.
                unsafe { &*self.slot }.publish(task.id(), task.location())
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
    obs.word.store(word | SELF_BIT, Relaxed);
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
        (_, Some(_)) => match WORKER.with(|w| w.get()).index {
            NO_WORKER => WakeSource::Outside,
            w if Some(w as usize) == last_worker_of(obs.word.load(Relaxed)) => {
                WakeSource::SameWorker
            }
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
    } else if obs.id_late.load(Relaxed).addr() & late_bit(bit) == 0 {
        update_id_late(&obs.id_late, |v| v | late_bit(bit));
    }
    if let Some(waker) = waker.filter(|t| !std::ptr::eq(*t, obs)) {
        let worker = WORKER.with(|w| w.get()).index;
        let packed = (waker.id() << 16) | u64::from(worker.min(0xFFFF));
        let ext = obs.ext_or_install();
        if ext.woken_by.load(Relaxed) != packed {
            ext.woken_by.store(packed, Relaxed);
        }
    }
    let mode = mode::get();
    if mode != 0 {
        let stamp = match first && mode & TIMING != 0 {
            true => timing::sample_wake(),
            false => 0,
        };
        if stamp != 0 || mode & TRACE != 0 {
            wake_extras(obs, source, stamp, mode);
        }
    }
}

/// Timing and trace of a wake; `stamp` (not 0): timing samples this wake, which scheduled the
/// idle task (the word's only writer until the task is queued, which comes after this) and is
/// the first `cause` wake since its last poll started, at that stamp.
#[cold]
#[inline(never)]
fn wake_extras(obs: &TaskObs, source: WakeSource, stamp: u64, mode: u8) {
    // (Self-wakes never come here: the poll's end stamps and traces them.)
    if stamp != 0 {
        obs.ext_or_install().woken_at.store(stamp, Relaxed);
        let word = obs.word.load(Relaxed);
        obs.word.store(word | STAMPED, Relaxed);
    }
    if mode & TRACE != 0 {
        let flow = trace::wake(obs.id(), source as usize, source == WakeSource::Reactor);
        if flow != 0 {
            obs.ext_or_install().pending_flow.store(flow, Relaxed);
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
    unsafe { ctx_task(CTX.with(|c| c.get())) }.map(|t| (t.id(), t.location()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Marks a self-wake the way `note_self_wake` does for a task mid-poll.
    fn self_wake(obs: &TaskObs) {
        obs.word.fetch_or(SELF_BIT, Relaxed);
    }

    /// Marks a wake from `source` that found the task running or queued (`late`).
    fn late_wake(obs: &TaskObs, source: WakeSource) {
        update_id_late(&obs.id_late, |v| v | late_bit(1 << source as u8));
    }

    #[test]
    fn lone_self_wakes_are_counted_without_an_ext() {
        let obs = TaskObs::new(Location::caller());
        count_poll(&obs, worker_bits(0));
        for _ in 0..5 {
            self_wake(&obs);
            count_poll(&obs, worker_bits(1));
        }
        assert_eq!(obs.polls(), 6);
        assert_eq!(obs.wake_counts().self_wake, 5);
        assert_eq!(obs.wake_counts().total(), 5);
        assert_eq!(obs.last_worker(), Some(1));
        assert!(obs.ext().is_none(), "a yield loop never needs its Ext");
    }

    /// `TaskObs::new` marks the first poll as if self-woken (so the common poll start is one
    /// compare): that mark is never counted as a wake.
    #[test]
    fn the_first_polls_mark_is_not_a_self_wake() {
        let quiet = TaskObs::new(Location::caller());
        count_poll(&quiet, worker_bits(0));
        assert_eq!((quiet.polls(), quiet.wake_counts().total()), (1, 0));
        assert!(
            quiet.ext().is_none(),
            "a first poll counts nothing out of line"
        );

        // Woken by another thread before its first poll (it was still scheduled: a late wake).
        let woken = TaskObs::new(Location::caller());
        late_wake(&woken, WakeSource::Outside);
        count_poll(&woken, worker_bits(0));
        let w = woken.wake_counts();
        assert_eq!((w.outside, w.self_wake, w.total()), (1, 0, 1), "{w:?}");
        assert_eq!(woken.ext().unwrap().also_self.load(Relaxed), 0);
    }

    #[test]
    fn self_wakes_stay_exact_next_to_other_sources() {
        let obs = TaskObs::new(Location::caller());
        count_poll(&obs, worker_bits(0)); // 1: first poll
        self_wake(&obs);
        count_poll(&obs, worker_bits(0)); // 2: self
        late_wake(&obs, WakeSource::Outside);
        count_poll(&obs, worker_bits(0)); // 3: outside
        self_wake(&obs);
        late_wake(&obs, WakeSource::Timer);
        late_wake(&obs, WakeSource::Outside);
        count_poll(&obs, worker_bits(0)); // 4: self + timer + outside
        self_wake(&obs);
        count_poll(&obs, worker_bits(0)); // 5: self
        count_poll(&obs, worker_bits(0)); // 6: no recorded cause
        let w = obs.wake_counts();
        assert_eq!(obs.polls(), 6);
        assert_eq!(
            (w.self_wake, w.outside, w.timer, w.same_worker, w.total()),
            (3, 2, 1, 0, 6),
            "{w:?}"
        );
        // The uncaused sixth poll is counted apart, not as a self-wake.
        assert_eq!(obs.ext().unwrap().uncaused.load(Relaxed), 1);
    }

    #[test]
    fn a_full_poll_count_carries_into_the_ext() {
        let obs = TaskObs::new(Location::caller());
        let full = (1u64 << (64 - POLLS_SHIFT)) - 1;
        obs.word.store(full << POLLS_SHIFT | SELF_BIT, Relaxed);
        assert_eq!(obs.polls(), full);
        count_poll(&obs, worker_bits(NO_WORKER));
        assert_eq!(
            obs.polls(),
            full + 1,
            "no poll lost when the word's count wraps"
        );
        assert_eq!(obs.word.load(Relaxed) >> POLLS_SHIFT, 0);
        assert_eq!(obs.wake_counts().self_wake, full);
        assert_eq!(obs.last_worker(), None);
        self_wake(&obs);
        count_poll(&obs, worker_bits(2));
        assert_eq!(obs.polls(), full + 2);
        assert_eq!(obs.wake_counts().self_wake, full + 1);
        assert_eq!(obs.last_worker(), Some(2));
    }

    #[test]
    fn worker_indexes_past_the_words_field_are_not_misattributed() {
        let obs = TaskObs::new(Location::caller());
        count_poll(&obs, worker_bits(8189));
        assert_eq!(obs.last_worker(), Some(8189));
        count_poll(&obs, worker_bits(8190));
        assert_eq!(
            obs.last_worker(),
            None,
            "too large for the word: unknown, not another worker"
        );
        count_poll(&obs, worker_bits(70_000));
        assert_eq!(obs.last_worker(), None);
        assert_eq!(
            obs.polls(),
            3,
            "the worker field never spills into the poll count"
        );
    }

    /// Two words per task: the spawn site is an index into the interned table, next to the id.
    #[test]
    fn sites_are_interned_once_and_read_back() {
        let a = Location::caller();
        let b = Location::caller();
        assert!(!std::ptr::eq(a, b));
        let (ia, ib) = (site_index(a), site_index(b));
        assert!(ia != 0 && ib != 0 && ia != ib, "{ia} {ib}");
        assert_eq!(site_index(a), ia, "a site keeps its index");
        assert!(std::ptr::eq(site_at(ia), a) && std::ptr::eq(site_at(ib), b));
        let obs = TaskObs::new(b);
        assert!(std::ptr::eq(obs.location(), b));
        assert_eq!(identity(obs.id_late.load(Relaxed).addr()).1, ib);
    }

    /// A task whose site finds the table full keeps it in an `Ext` from its spawn.
    #[test]
    fn a_site_that_is_not_interned_lives_in_the_ext() {
        let site = Location::caller();
        let obs = TaskObs {
            word: AtomicU64::new(SELF_BIT),
            id_late: AtomicPtr::new(ext_at_spawn(site, 77)),
        };
        assert!(obs.ext().is_some());
        assert_eq!(obs.id(), 77);
        assert!(std::ptr::eq(obs.location(), site));
        late_wake(&obs, WakeSource::Reactor);
        count_poll(&obs, worker_bits(0));
        count_poll(&obs, worker_bits(0));
        assert_eq!((obs.id(), obs.wake_counts().reactor), (77, 1));
    }

    /// Installing the `Ext` moves the id and the site into it and keeps the late bits, also
    /// when wakes on other threads set late bits during the install.
    #[test]
    fn the_ext_install_keeps_id_site_and_late_bits() {
        for round in 0..if cfg!(miri) { 4 } else { 200 } {
            let obs = Arc::new(TaskObs::new(Location::caller()));
            let (id, site) = (obs.id(), obs.location());
            count_poll(&obs, worker_bits(0));
            let barrier = Arc::new(std::sync::Barrier::new(3));
            let wakers: Vec<_> = [WakeSource::Outside, WakeSource::Timer]
                .into_iter()
                .map(|source| {
                    let (obs, barrier) = (obs.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        late_wake(&obs, source);
                    })
                })
                .collect();
            barrier.wait();
            let ext = obs.ext_or_install() as *const Ext;
            for w in wakers {
                w.join().unwrap();
            }
            assert!(std::ptr::eq(obs.ext().unwrap(), ext), "round {round}");
            assert_eq!(obs.id(), id, "round {round}");
            assert!(std::ptr::eq(obs.location(), site), "round {round}");
            count_poll(&obs, worker_bits(0));
            let w = obs.wake_counts();
            assert_eq!(
                (w.outside, w.timer, w.total()),
                (1, 1, 2),
                "round {round}: {w:?}"
            );
        }
    }

    #[test]
    fn the_ext_keeps_the_spawn_site_and_is_recycled() {
        let obs = TaskObs::new(Location::caller());
        let site = obs.location();
        late_wake(&obs, WakeSource::Reactor);
        count_poll(&obs, worker_bits(0));
        count_poll(&obs, worker_bits(0));
        let ext = obs.ext().expect("a reactor wake is counted in the Ext") as *const Ext;
        assert!(std::ptr::eq(obs.location(), site));
        assert_eq!(obs.wake_counts().reactor, 1);
        drop(obs);
        // The next install on this thread takes the one just given back, cleared.
        let again = TaskObs::new(Location::caller());
        let reused = again.ext_or_install();
        assert!(std::ptr::eq(reused, ext));
        assert_eq!(reused.wakes[WakeSource::Reactor as usize].load(Relaxed), 0);
        assert_eq!(again.wake_counts(), WakeCounts::default());
    }
}
