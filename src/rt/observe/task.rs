//! Per-task identity and counters, and the thread-local state the runtime's hooks consult.
//!
//! **Where it lives.** One word in the task header ([`TaskObs`]: the id and the spawn site's
//! index in the interned [`SITES`]), bits of the task's state word (`task::state::obs`: the
//! wake causes since the last poll, the channels the last poll noted, the last worker, the
//! poll count, carried into the `Ext` 2^15 at a time) and, for a task something other than itself has woken, an [`Ext`] the
//! header's word then points to (the id and site, the counters by source, "woken by", the
//! trace's and timing's per-task stamps). See `TaskObs` for why the header part is small.
//!
//! **Counting rides the runtime's own compare-and-swaps.** A wake leaves its *source* as a
//! cause bit in the CAS that marks the task notified (the runtime makes that CAS anyway; a
//! wake of a task that is already scheduled writes the word only when its source's bit is not
//! set yet). The poll start's CAS (`SCHEDULED → RUNNING`) clears the causes and the channels,
//! records the worker and adds one to the poll count, and the hook counts the causes from the
//! value that CAS replaced. The poll end's CAS (`RUNNING → idle`) folds in the channel kinds
//! the poll registered with (noted in a thread-local meanwhile). So the counters cost no
//! locked instruction and no write of their own, and no word of their own in the header.
//!
//! Who writes the counters (the `Ext`'s counts by source, its carried poll count): only the
//! thread polling the task — it holds `RUNNING`, so a relaxed load + store suffices. A counter
//! counts **polls caused by that source**, not raw `wake` calls: several wakes before one poll
//! count once per distinct source — three wakes from one thread before the poll count one; a
//! self-wake and a wake from a plain thread count one each. Yield `k` times: `k` self-wakes. A
//! poll caused by the task's own wake alone counts nothing but the poll: self-wakes are derived
//! from the poll count (see [`TaskObs::polls_and_wakes`]), so a yield loop never leaves the
//! header. "Woken by" (the latest waking task and its worker) is a relaxed store by the waker
//! — a fact, not a counter.
//!
//! **What the always-on part costs** (see DESIGN.md §1.11, "What it costs"): a spawn takes an
//! id from a per-thread block, checks a thread-local for a recorded spawn site (the executors'),
//! looks its site up in the interned table (one hashed load and compare) and writes one word;
//! a poll start adds the worker's bits and one poll to its CAS's new value and tests the value
//! it replaced (a first poll or a lone self-wake's counts nothing else), swaps the one-word
//! current-task thread-local (`CTX`) and loads the switch byte ([`mode`](super::mode)); a poll
//! end restores `CTX` and takes the noted channels; a self-wake is one thread-local compare,
//! and then one `or` on the state word instead of the wake's CAS loop (`State::notify_self`). A wake by another task or thread, and the next poll's count of it,
//! write the `Ext` (out of line). Everything behind a switch (timing, trace, the watchdog slot)
//! is out of line.

use std::cell::Cell;
use std::panic::Location;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::atomic::{AtomicPtr, AtomicU64};
use std::time::Instant;

use super::mode::{self, LIVE, TIMING, TRACE};
use super::timing::WorkerTiming;
use super::watchdog::PollSlot;
use super::{timing, trace};
use crate::rt::task::state::{obs, PollerBits, Snapshot, State};
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

/// The state word's observatory bits (see `task::state::obs`), as this module uses them.
const CAUSE_SHIFT: u32 = obs::CAUSE_SHIFT;
const CAUSE_MASK: usize = obs::CAUSE_MASK;
const CHANNEL_SHIFT: u32 = obs::CHANNEL_SHIFT;
const WORKER_SHIFT: u32 = obs::WORKER_SHIFT;
const WORKER_BITS: usize = obs::WORKER_MASK >> WORKER_SHIFT;
const POLLS_SHIFT: u32 = obs::POLLS_SHIFT;
/// The state word's cause bit of a self-wake.
const SELF_CAUSE: usize = 1 << (CAUSE_SHIFT + WakeSource::SelfWake as u32);
/// A state with this bit (the poll count's top bit) has 2^15 polls to carry into
/// `Ext::polls_carried` (see `task::state::obs`).
const POLLS_CARRY: usize = obs::POLLS_CARRY;

/// The state word's cause bit of `source`.
#[inline(always)]
const fn cause_bit(source: WakeSource) -> usize {
    1 << (CAUSE_SHIFT + source as u32)
}

/// A channel kind a receiving poll notes (bit `kind as u8` of the state word's channel bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Channel {
    Oneshot = 0,
    Mpsc = 1,
    Semaphore = 2,
}

/// The names of the channel kinds, by bit.
const CHANNELS: [&str; 3] = ["oneshot", "mpsc", "semaphore"];

/// `TaskObs::id_ext`, a pointer-sized word: either the task's identity — bit 0 clear, the id
/// in bits 1–40, the spawn site's index in [`SITES`] in bits 41–55 — or, once the task has an
/// [`Ext`] (which then holds both), that `Ext`'s address with bit 0 (`EXT_TAG`) set. A pointer
/// rather than a `u64`, so the `Ext`'s address keeps its provenance: the `Ext` is freed
/// through it.
const EXT_TAG: usize = 1;
const ID_SHIFT: u32 = 1;
/// Ids have 40 bits: unique among a process's first 2^40 (~1.1 × 10^12) tasks.
const ID_BITS: u32 = 40;
const ID_MASK: u64 = (1 << ID_BITS) - 1;
const SITE_SHIFT: u32 = ID_SHIFT + ID_BITS;
const SITE_BITS: u32 = 15;
const _: () = assert!(std::mem::align_of::<Ext>() > EXT_TAG);
#[cfg(not(target_pointer_width = "64"))]
compile_error!("the observatory packs a task's identity into a 64-bit pointer word");

/// Spawn sites, interned: a task without an `Ext` keeps its site as an index into this table
/// (15 bits of `id_ext`) instead of a third word in every task header. An open-addressing
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

/// A new task's `id_ext` when its site could not be interned: a fresh `Ext` holding the site,
/// tagged (nobody else can see the task yet: no CAS).
#[cold]
#[inline(never)]
fn ext_at_spawn(location: &'static Location<'static>, id: u64) -> *mut () {
    tagged(Box::into_raw(take_ext(location, id)))
}

/// An `id_ext` value naming `ext`.
#[inline]
fn tagged(ext: *mut Ext) -> *mut () {
    ext.cast::<()>().map_addr(|a| a | EXT_TAG)
}

/// The id and site index a `TaskObs::id_ext` value without an `Ext` holds.
#[inline(always)]
fn identity(v: usize) -> (u64, usize) {
    (
        (v >> ID_SHIFT) as u64 & ID_MASK,
        (v >> SITE_SHIFT) & ((1 << SITE_BITS) - 1),
    )
}

/// The observatory's part of a task header: one word, in the task's own allocation.
///
/// Why so little: the whole record in the header (104 bytes) made tasks with small futures cost
/// as much more as the observatory's code did — a task of the runtime benchmarks went from a
/// 72–96-byte allocation to 176–200 bytes, past the allocator's cheapest size classes (glibc's
/// fast bins end at 128-byte chunks) and twice the cache lines per task; a header padded by
/// 104 bytes *without* any observatory code measured the same +8 % on spawn_many_local and
/// +15 % on ping_pong at 2 workers. So only the task's identity lives here; what every poll
/// and wake updates lives in bits of the task's state word (`task::state::obs`), and the
/// counters by source in an [`Ext`] that a task gets the first time something other than
/// itself wakes it, or the trace or timing needs it. A task that completes in its first poll,
/// or only ever wakes itself (a yield loop: its self-wakes are derived), never gets one. (It
/// was three words, then two — the identity, and a "poller's word" with the causes, channels,
/// worker and poll count that the state word now carries. A feature-off build with 16 unused
/// header bytes measured +4 to +6 % on ping_pong at 2 workers, 8 bytes +1 to +3 %
/// (docs/observatory-costs.md, fifth session): at 2 workers a word per task is most of what
/// the counters cost.)
pub(crate) struct TaskObs {
    /// The id and spawn site (fixed at spawn), or the task's `Ext` once it has one (installed
    /// by one CAS, freed with the task). See `EXT_TAG`.
    id_ext: AtomicPtr<()>,
}

const _: () = assert!(std::mem::size_of::<TaskObs>() == 8);

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
    /// The task's id (moved here from `TaskObs::id_ext` when the `Ext` was installed).
    id: u64,
    /// The latest wake by a task: its id `<< 16 | worker` (`0xFFFF`: none); 0: never.
    woken_by: AtomicU64,
    /// The trace flow (socket event → wake) the next poll continues; 0: none.
    pending_flow: AtomicU64,
    /// When the first wake since the last poll came (timing clock ticks; 0: none), while
    /// timing: written by the wake that scheduled the task (before it is queued) or by the
    /// poll that woke itself (at its end), taken by the next poll start that times.
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
    /// Polls carried out of the state word's poll count (2^15 at a time). Polling thread only.
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
    /// The task blocked in `block_on` on this thread while the worker drives its loop (see
    /// [`blocking_section`]).
    static BLOCKED: Cell<Blocked> = const { Cell::new(Blocked::NONE) };
    /// This thread's block of task ids: the next one and the block's end.
    static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    /// The channel kinds the task being polled on this thread registered its waker with, in
    /// the state word's channel bits: the poll end takes them into its CAS. (A poll nested in
    /// another through `block_on` takes the outer poll's notes made before it: they are
    /// attributed to the inner task. The outer poll's last registration, the one it parks on,
    /// normally comes after.)
    static NOTED: Cell<usize> = const { Cell::new(0) };
}

/// The worker a thread drives, as its hooks need it ([`driving`]).
#[derive(Clone, Copy)]
pub(crate) struct Driving {
    /// Its index (`NO_WORKER`: none).
    index: u32,
    /// Its index as the state word's worker field ([`worker_bits`]), ready for a poll start
    /// to `or` in.
    bits: usize,
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

/// Worker `index` in the state word's worker field: `index + 1`, all ones past 253 (not
/// recorded), 0 for `NO_WORKER` (a thread of the blocking pool or `block_on`: none).
#[inline]
fn worker_bits(index: u32) -> usize {
    (index.wrapping_add(1) as usize).min(WORKER_BITS) << WORKER_SHIFT
}

/// The worker this thread drives, for a poll start: [`Driving::poller`] goes into the state
/// word's CAS, and the rest to [`poll_start`].
#[inline(always)]
pub(crate) fn driving() -> Driving {
    WORKER.with(|w| w.get())
}

impl Driving {
    /// This worker's part of a poll start's CAS.
    #[inline(always)]
    pub(crate) fn poller(self) -> PollerBits {
        PollerBits(self.bits)
    }
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
        let id_ext = match site_index(location) {
            // The site table is full: the site goes in an `Ext` from the start.
            0 => ext_at_spawn(location, id),
            index => {
                std::ptr::without_provenance_mut((id << ID_SHIFT) as usize | index << SITE_SHIFT)
            }
        };
        // (The state word's first poll mark is `State::new`'s.)
        TaskObs {
            id_ext: AtomicPtr::new(id_ext),
        }
    }

    /// The task's id: unique among the process's first 2^40 tasks.
    #[inline]
    pub(crate) fn id(&self) -> u64 {
        let v = self.id_ext.load(Acquire);
        match ext_of(v) {
            Some(ext) => ext.id,
            None => identity(v.addr()).0,
        }
    }

    /// Where the task was spawned.
    pub(crate) fn location(&self) -> &'static Location<'static> {
        let v = self.id_ext.load(Acquire);
        match ext_of(v) {
            Some(ext) => ext.location,
            None => site_at(identity(v.addr()).1),
        }
    }

    /// The task's `Ext`, if it has one.
    #[inline(always)]
    fn ext(&self) -> Option<&Ext> {
        ext_of(self.id_ext.load(Acquire))
    }

    /// The task's `Ext`, installed now if it has none. Any thread may call this: the CAS that
    /// installs it publishes it (`Release`), and a thread that loses the race frees its own.
    #[cold]
    #[inline(never)]
    fn ext_or_install(&self) -> &Ext {
        let v = self.id_ext.load(Acquire);
        if let Some(ext) = ext_of(v) {
            return ext;
        }
        let (id, index) = identity(v.addr());
        self.install(site_at(index), id)
    }

    /// Installs an `Ext` for the task spawned at `location` with `id` (what `id_ext` holds
    /// until then), unless another thread just did: then that one.
    #[cold]
    #[inline(never)]
    fn install(&self, location: &'static Location<'static>, id: u64) -> &Ext {
        let fresh = Box::into_raw(take_ext(location, id));
        let cur = self.id_ext.load(Acquire);
        if ext_of(cur).is_none() {
            // The identity moves into the `Ext`.
            if self
                .id_ext
                .compare_exchange(cur, tagged(fresh), AcqRel, Acquire)
                .is_ok()
            {
                // SAFETY: just installed; freed only when the task is (`Drop`).
                return unsafe { &*fresh };
            }
        }
        // Another thread installed one (the identity word changes only that way): use it.
        // SAFETY: ours was never shared.
        give_back(unsafe { Box::from_raw(fresh) });
        self.ext().expect("an Ext was installed")
    }

    /// The poll count of a task whose state word is `state` (one load of it: see
    /// [`polls_and_wakes`](Self::polls_and_wakes)).
    pub(crate) fn polls(&self, state: Snapshot) -> u64 {
        let carried = self.ext().map_or(0, |e| e.polls_carried.load(Relaxed));
        (state.0 >> POLLS_SHIFT) as u64 + carried
    }

    /// The channels the last poll noted (`state`: the task's state word).
    pub(crate) fn channel_waits(state: Snapshot) -> impl Iterator<Item = WaitsOn> {
        let bits = (state.0 >> CHANNEL_SHIFT) as u8;
        CHANNELS
            .iter()
            .enumerate()
            .filter(move |(i, _)| bits & (1 << i) != 0)
            .map(|(_, kind)| WaitsOn::Channel { kind })
    }

    /// The poll count and the wake counts by source of the task whose state word is `state`,
    /// consistent with each other even while the task runs on another thread.
    ///
    /// The self-wakes are not counted on their own (a yield loop would write the task's `Ext`
    /// on every poll): every poll after the first has a cause, so they are the polls that had
    /// no other one — `polls − 1 − others − uncaused` — plus those that had the task's own
    /// wake as well as another (`also_self`). The counters are read first and the poll count
    /// after them (a poll start's CAS adds its poll before the hook bumps a counter), so no
    /// source counts more than `polls − 1` polls and the derived self-wakes use the same count
    /// the caller reports. (Two separate reads let a snapshot row show 50 self-wakes over 35
    /// polls: the task polled 16 more times between them — `tests/observatory_stress.rs`
    /// caught it.)
    pub(crate) fn polls_and_wakes(&self, state: &State) -> (u64, WakeCounts) {
        let Some(ext) = self.ext() else {
            // Never woken by anything but itself: every poll after the first was a self-wake.
            let polls = self.polls(state.load());
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
        let polls = self.polls(state.load());
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

    /// The worker that last polled the task whose state word is `state`.
    pub(crate) fn last_worker(state: Snapshot) -> Option<usize> {
        last_worker_of(state.0)
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
        if let Some(ext) = ext_ptr(*self.id_ext.get_mut()) {
            // SAFETY: installed by `ext_or_install` from `Box::into_raw` (this is that pointer,
            // untagged); the task is being freed, so nothing else can reach it.
            give_back(unsafe { Box::from_raw(ext) });
        }
    }
}

/// The worker a state word names (`None`: not polled on a worker yet, or an index past 253).
#[inline(always)]
fn last_worker_of(state: usize) -> Option<usize> {
    match (state >> WORKER_SHIFT) & WORKER_BITS {
        0 => None,
        w if w == WORKER_BITS => None,
        w => Some(w - 1),
    }
}

/// The `Ext` a `TaskObs::id_ext` value points to, if it is tagged.
#[inline(always)]
fn ext_of<'a>(v: *mut ()) -> Option<&'a Ext> {
    // SAFETY: a tagged value points to a live `Ext`, which lives as long as its task (the
    // caller's borrow of the task bounds `'a`).
    ext_ptr(v).map(|p| unsafe { &*p })
}

/// The `Ext` pointer in a tagged `TaskObs::id_ext` value.
#[inline(always)]
fn ext_ptr(v: *mut ()) -> Option<*mut Ext> {
    (v.addr() & EXT_TAG != 0).then(|| v.map_addr(|a| a & !EXT_TAG).cast::<Ext>())
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
/// the outer task when a poll nests inside another through `block_on`). `prev`: the state
/// word that the poll start's CAS replaced (it took the causes and added the poll and the
/// worker, `driving.poller()`).
///
/// With only the counters on, this is: a test of `prev` (a first poll, and a poll its own wake
/// alone caused — a yield loop's — count nothing else; any other cause is counted out of line,
/// in the task's `Ext`), the current task (a thread-local swap) and the switches (one byte
/// load).
#[inline(always)]
pub(crate) fn poll_start(header: &Header, prev: Snapshot, driving: Driving) -> PollGuard {
    let obs = &header.obs;
    count_poll(&header.state, obs, prev.0);
    let prev_ctx = CTX.with(|c| c.replace(obs as *const TaskObs as usize));
    let mode = mode::get();
    let cold = if mode != 0 {
        let slot = driving.slot;
        // Timing alone, the common poll: untimed, no stamped wake, a stretch open.
        // SAFETY: as in `poll_start_rare`.
        if mode == TIMING
            && !obs.stamped()
            && !slot.is_null()
            && unsafe { &*slot }.timing.skip_poll()
        {
            u64::from(TIMING)
        } else {
            poll_start_cold(obs, mode, slot)
        }
    } else {
        0
    };
    PollGuard {
        prev: prev_ctx,
        cold,
    }
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

/// A switch is on at poll start, and this is not the common untimed poll with timing alone
/// on: timing here, publishing to the watchdog slot and the trace in `poll_start_rare`.
/// Returns the guard's `cold` word: the switches in its low 3 bits, the start stamp (ticks) of
/// a timed poll above them.
#[inline(never)]
fn poll_start_cold(obs: &TaskObs, mode: u8, slot: *const PollSlot) -> u64 {
    let started = if mode & TIMING != 0 && !slot.is_null() {
        // SAFETY: as in `poll_start_rare`.
        timing_start(obs, &unsafe { &*slot }.timing)
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

/// The counting half of [`poll_start`]: `prev` is the task's state word `state` before this
/// poll's start took its causes (and added the poll).
#[inline(always)]
fn count_poll(state: &State, obs: &TaskObs, prev: usize) {
    // The common poll counts nothing else: its cause is the task's own wake alone (or it is
    // the first poll, marked so at spawn), and no count is to carry. One mask and compare.
    if (prev ^ SELF_CAUSE) & (CAUSE_MASK | POLLS_CARRY) != 0 {
        count_causes(state, obs, prev);
    }
}

/// Counts what caused a poll that is not a first poll or a lone self-wake's (`prev`: the
/// state word before this poll started), and carries the poll count's top bit into the `Ext`.
#[cold]
#[inline(never)]
fn count_causes(state: &State, obs: &TaskObs, prev: usize) {
    if prev & POLLS_CARRY != 0 {
        // Carried before the bit is cleared, so a reader in between counts the 2^15 polls
        // twice rather than not at all (no source then counts more than `polls - 1`).
        let ext = obs.ext_or_install();
        bump_by(&ext.polls_carried, (POLLS_CARRY >> POLLS_SHIFT) as u64);
        state.carry_polls();
    }
    // A first poll: no poll counted before (the count never returns to 0: it is carried at
    // 2^15 + 1, leaving 1).
    let first = prev >> POLLS_SHIFT == 0;
    let causes = ((prev & CAUSE_MASK) >> CAUSE_SHIFT) as u8;
    // A first poll's self bit is the mark `State::new` left, not a wake.
    const SELF: u8 = 1 << WakeSource::SelfWake as u8;
    let bits = match first {
        true => causes & !SELF,
        false => causes,
    };
    if bits == SELF || (bits == 0 && first) {
        return;
    }
    let ext = obs.ext_or_install();
    if bits == 0 {
        bump(&ext.uncaused);
        return;
    }
    bump(&ext.others);
    if bits & SELF != 0 {
        bump(&ext.also_self);
    }
    let mut others = bits & !SELF;
    while others != 0 {
        bump(&ext.wakes[(others.trailing_zeros() as usize).min(5)]);
        others &= others - 1;
    }
}

impl TaskObs {
    /// Timing stamped the wake that scheduled the task's next poll (or its own self-wake):
    /// `Ext::woken_at` holds the stamp.
    #[inline(always)]
    fn stamped(&self) -> bool {
        self.ext().is_some_and(|e| e.woken_at.load(Relaxed) != 0)
    }
}

/// Timing on, on a worker (`timing`: its histograms): opens the worker's run stretch if none
/// is open, records the wake→poll latency of a stamped wake (taking the stamp), and decides
/// whether to time this poll. Returns its start stamp if it is timed (never 0), else 0. Reads
/// the clock only for one of those three.
#[inline]
fn timing_start(obs: &TaskObs, timing: &WorkerTiming) -> u64 {
    let (timed, stretch_open) = timing.poll_starts();
    // Stamped by the wake that scheduled this poll (before the task was queued), or by this
    // task's previous poll's end: either happened before this poll started.
    let woken = obs.ext().map_or(0, |e| e.woken_at.load(Relaxed));
    if !(timed || !stretch_open || woken != 0) {
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
    if woken != 0 {
        if let Some(ext) = obs.ext() {
            ext.woken_at.store(0, Relaxed);
        }
        if timing::is_current(woken) {
            timing
                .wake_to_poll
                .record_owned(timing::ticks_to_ns(now.saturating_sub(woken)));
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
    /// The poll of `header`'s task returned (`ready`: with the output). Returns the channel
    /// kinds the poll registered its waker with, for the poll end's CAS
    /// (`State::transition_to_idle`).
    #[inline(always)]
    ///
    /// The switches are the ones the poll started with (a switch turned on mid-poll takes
    /// effect from the next poll: the trace gets no `poll end` without its `poll start`, and
    /// a slot that was not published is not cleared); one switched off mid-poll still ends
    /// what the start began.
    pub(crate) fn end(self, header: &Header, ready: bool) -> usize {
        CTX.with(|c| c.set(self.prev));
        let channels = NOTED.with(|n| n.replace(0));
        // Nothing to do for an untimed poll when timing is the only switch.
        if self.cold & !u64::from(TIMING) != 0 {
            self.end_cold(header, ready);
        }
        channels
    }

    /// The poll was timed, or the trace or the live view was on at its start: timing here,
    /// the trace and the watchdog slot in `end_rare`.
    #[inline(never)]
    fn end_cold(self, header: &Header, ready: bool) {
        let started = self.cold >> MODE_BITS;
        if started != 0 {
            timing_end(header, started);
        }
        let mode = (self.cold & ((1 << MODE_BITS) - 1)) as u8;
        if mode & (LIVE | TRACE) != 0 {
            self.end_rare(header, mode, ready);
        }
    }

    #[cold]
    #[inline(never)]
    fn end_rare(self, header: &Header, mode: u8, ready: bool) {
        let obs = &header.obs;
        if mode & TRACE != 0 {
            // The task woke itself during this poll (the self-wake left only its cause bit:
            // this poll's start cleared the causes).
            if header.state.load().0 & SELF_CAUSE != 0 {
                trace::wake(obs.id(), WakeSource::SelfWake as usize, false);
            }
            trace::poll_end(obs.id(), ready, crate::rt::budget::used());
        }
        let slot = WORKER.with(|w| w.get()).slot;
        if slot.is_null() {
            return;
        }
        if mode & LIVE != 0 {
            // SAFETY: as in `poll_start_cold`; the poll that set the slot is just ending. (A
            // task blocked in `block_on` further up this stack is published again, afresh, by
            // the next poll of the future it awaits or when its `block_on` returns.)
            unsafe { &*slot }.clear();
        }
    }
}

/// The end of a timed poll that started at `started`.
#[inline]
fn timing_end(header: &Header, started: u64) {
    let now = timing::ticks();
    let took = timing::ticks_to_ns(now.saturating_sub(started));
    // The task woke itself during this poll: its wake→poll latency runs from now. (No wake
    // stamps a running task: only the one that schedules an idle task does.)
    if header.state.load().0 & SELF_CAUSE != 0 {
        // (A task only ever woken by itself has no `Ext` yet.)
        header
            .obs
            .ext_or_install()
            .woken_at
            .store(now.max(1), Relaxed);
    }
    let slot = WORKER.with(|w| w.get()).slot;
    if !slot.is_null() {
        // SAFETY: as in `poll_start_cold`.
        unsafe { &*slot }.timing.poll.record_owned(took);
    }
}

/// The task blocked in `block_on` on a worker thread, its worker's slot, and the slot's
/// sequence number when the task was last known to be running there.
#[derive(Clone, Copy)]
pub(crate) struct Blocked {
    /// The blocked task's `CTX` word without its tag (0: none).
    task: usize,
    slot: *const PollSlot,
    /// While the slot's sequence number is still this, the worker has neither polled another
    /// task nor gone idle since the blocked task last ran: its poll is going on.
    mark: u64,
}

impl Blocked {
    const NONE: Blocked = Blocked {
        task: 0,
        slot: std::ptr::null(),
        mark: 0,
    };
}

/// A task on a worker entered `block_on`, and the worker now drives its loop until the awaited
/// future completes.
///
/// For the long-poll detector the task's poll goes on — its clock keeps running — for as long
/// as only the task's own code runs: the awaited future's polls and the worker's bookkeeping
/// between them. It pauses when the worker polls another task (that poll publishes itself) or
/// runs out of work ([`nested_worker_idles`]), and the task's next stretch is published as a
/// fresh poll ([`block_on_poll`], or the guard's drop when `block_on` returns). So
/// `block_on(sleep(…))` is no long poll, a future that blocks the worker is the task's, and 40
/// ms of computing on each side of a `block_on` of a ready future is one 80 ms poll.
pub(crate) fn blocking_section() -> BlockingSection {
    let task = CTX.with(|c| c.get()) & !TAG_MASK;
    let slot = WORKER.with(|w| w.get()).slot;
    trace::block_on(true);
    let mark = if slot.is_null() {
        0
    } else {
        // SAFETY: see `poll_start_cold`: the worker outlives its thread's frames.
        unsafe { &*slot }.seq()
    };
    let prev = BLOCKED.with(|b| b.replace(Blocked { task, slot, mark }));
    BlockingSection { prev }
}

/// Publishes the blocked task afresh if its worker did something else since the task last ran.
fn resume_blocked() {
    let blocked = BLOCKED.with(|b| b.get());
    if blocked.slot.is_null() || !super::watchdog::slots_read() {
        return;
    }
    // SAFETY: the worker outlives its thread's frames.
    let slot = unsafe { &*blocked.slot };
    if slot.seq() == blocked.mark {
        return; // its poll is going on
    }
    // SAFETY: the blocked task is mid-poll further up this stack.
    if let Some(task) = unsafe { ctx_task(blocked.task) } {
        slot.publish(task.id(), task.location());
        let mark = slot.seq();
        BLOCKED.with(|b| b.set(Blocked { mark, ..blocked }));
    }
}

/// The worker is about to poll the future a task blocked in `block_on` on this thread awaits:
/// that poll runs the blocked task's code, so the task is (still, or again) the one this
/// worker is polling.
pub(crate) fn block_on_poll() {
    resume_blocked();
}

/// The worker driving a `block_on` found nothing to run and is about to look for work or
/// sleep: the blocked task is not running meanwhile.
pub(crate) fn nested_worker_idles() {
    let blocked = BLOCKED.with(|b| b.get());
    if blocked.slot.is_null() {
        return;
    }
    // SAFETY: the worker outlives its thread's frames.
    let slot = unsafe { &*blocked.slot };
    if slot.seq() == blocked.mark && slot.current().is_some() {
        slot.clear();
    }
}

pub(crate) struct BlockingSection {
    prev: Blocked,
}

impl Drop for BlockingSection {
    fn drop(&mut self) {
        trace::block_on(false);
        // The task runs on after `block_on`: as the same poll if nothing else ran meanwhile.
        resume_blocked();
        BLOCKED.with(|b| b.set(self.prev));
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

/// Who is waking a task, as the CAS that marks it notified needs it (see
/// `task::state::obs`), in one register: the cause bit to leave when the task's last worker is
/// the waking thread's (in the state word's cause bits), the bit otherwise (the same, shifted
/// up by `OTHER_SHIFT`), and the waking thread's worker field (in the state word's worker
/// bits). Only a wake by a task running on a worker tells the two apart; every other source
/// has one bit.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct WakeCause(usize);

/// Where `WakeCause` keeps the "other worker" bit: above the worker field.
const OTHER_SHIFT: u32 = 18;
const _: () = assert!(CAUSE_MASK << OTHER_SHIFT & (CAUSE_MASK | obs::WORKER_MASK) == 0);

impl WakeCause {
    /// A wake whose source does not depend on the task's last worker.
    pub(crate) const fn fixed(source: WakeSource) -> WakeCause {
        WakeCause(cause_bit(source) | cause_bit(source) << OTHER_SHIFT)
    }

    /// A wake by a task polled on the worker whose state-word field is `worker` (see
    /// [`worker_bits`]; all ones — an index too large to record — is never "the same").
    const fn by_task_on(worker: usize) -> WakeCause {
        let other = cause_bit(WakeSource::OtherWorker) << OTHER_SHIFT;
        if worker == obs::WORKER_MASK {
            return WakeCause(cause_bit(WakeSource::OtherWorker) | other);
        }
        WakeCause(cause_bit(WakeSource::SameWorker) | other | worker)
    }

    /// The cause bit to set in state word `state`.
    #[inline(always)]
    pub(crate) fn bit(self, state: usize) -> usize {
        if (state ^ self.0) & obs::WORKER_MASK == 0 {
            self.0 & CAUSE_MASK
        } else {
            (self.0 >> OTHER_SHIFT) & CAUSE_MASK
        }
    }

    /// The task woke itself during its own poll.
    #[inline(always)]
    pub(crate) fn is_self(self) -> bool {
        self == WakeCause::fixed(WakeSource::SelfWake)
    }
}

/// Who is waking `header`'s task, from this thread's `CTX` and worker. A self-wake (the task
/// mid-poll on this thread, outside a driver turn: a driver's tag makes `CTX` differ from the
/// task's address) is one thread-local compare; its timing and trace records are made by the
/// poll's end (`timing_end`, `end_rare`), which finds its cause bit. Any other wake is
/// reported with [`on_other_wake`] after its state transition.
#[inline(always)]
pub(crate) fn wake_cause(header: &Header) -> WakeCause {
    let ctx = CTX.with(|c| c.get());
    if ctx == &header.obs as *const TaskObs as usize {
        return WakeCause::fixed(WakeSource::SelfWake);
    }
    other_cause(ctx)
}

#[inline]
fn other_cause(ctx: usize) -> WakeCause {
    match ctx & TAG_MASK {
        TAG_REACTOR => WakeCause::fixed(WakeSource::Reactor),
        TAG_TIMER => WakeCause::fixed(WakeSource::Timer),
        _ if ctx == 0 => WakeCause::fixed(WakeSource::Outside),
        // A task polled on this thread is waking it.
        _ => match WORKER.with(|w| w.get()) {
            Driving {
                index: NO_WORKER, ..
            } => WakeCause::fixed(WakeSource::Outside),
            driving => WakeCause::by_task_on(driving.bits),
        },
    }
}

/// After a wake of `header`'s task by anything but the task itself (`cause`; `prev`: the
/// state its CAS found): remembers which task caused it, and the wake's timing and trace.
/// `scheduled`: this wake moved the idle task to scheduled (the task is not in a queue yet, so
/// this runs before it can be polled).
#[inline(never)]
pub(crate) fn on_other_wake(header: &Header, cause: WakeCause, scheduled: bool, prev: Snapshot) {
    let obs = &header.obs;
    let ctx = CTX.with(|c| c.get());
    // SAFETY: `ctx` was just read from this thread's `CTX`.
    let waker = unsafe { ctx_task(ctx) };
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
        // The first cause since the task's last poll started.
        let first = scheduled && prev.0 & CAUSE_MASK == 0;
        let stamp = match first && mode & TIMING != 0 {
            true => timing::sample_wake(),
            false => 0,
        };
        if stamp != 0 || mode & TRACE != 0 {
            let source = WakeSource::ALL
                [((cause.bit(prev.0) >> CAUSE_SHIFT).trailing_zeros() as usize).min(5)];
            wake_extras(obs, source, stamp, mode);
        }
    }
}

/// Timing and trace of a wake; `stamp` (not 0): timing samples this wake, which scheduled the
/// idle task (before it is queued) and is the first cause since its last poll started, at that
/// stamp.
#[cold]
#[inline(never)]
fn wake_extras(obs: &TaskObs, source: WakeSource, stamp: u64, mode: u8) {
    // (Self-wakes never come here: the poll's end stamps and traces them.)
    if stamp != 0 {
        obs.ext_or_install().woken_at.store(stamp, Relaxed);
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
    if CTX.with(|c| c.get()) & !TAG_MASK != 0 {
        NOTED.with(|n| n.set(n.get() | 1 << (CHANNEL_SHIFT + kind as u32)));
    }
}

pub(crate) fn current() -> Option<(u64, &'static Location<'static>)> {
    // SAFETY: read from this thread's `CTX` just now.
    unsafe { ctx_task(CTX.with(|c| c.get())) }.map(|t| (t.id(), t.location()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::task::state::StartPoll;
    use std::sync::Arc;

    /// A task's observatory state as the runtime drives it: its state word and its header
    /// word, through the real transitions and the hooks' counting half.
    struct Task {
        state: State,
        obs: TaskObs,
    }

    impl Task {
        fn new() -> Task {
            Task::with(TaskObs::new(Location::caller()))
        }

        fn with(obs: TaskObs) -> Task {
            Task {
                state: State::new(2),
                obs,
            }
        }

        /// A poll on `worker`, during which `wakes` come (`SelfWake`: the task's own).
        fn poll_with(&self, worker: u32, wakes: &[WakeSource]) {
            let (start, prev) = self
                .state
                .transition_to_running(PollerBits(worker_bits(worker)));
            assert!(matches!(start, StartPoll::Poll));
            count_poll(&self.state, &self.obs, prev.0);
            for source in wakes {
                let _ = self
                    .state
                    .transition_to_notified_by_ref(WakeCause::fixed(*source));
            }
            let _ = self.state.transition_to_idle(0);
        }

        fn poll(&self, worker: u32) {
            self.poll_with(worker, &[]);
        }

        /// A poll on `worker` that wakes the task itself (a yield).
        fn poll_waking_itself(&self, worker: u32) {
            self.poll_with(worker, &[WakeSource::SelfWake]);
        }

        /// A wake from `source` while the task is not running.
        fn wake(&self, source: WakeSource) {
            let _ = self
                .state
                .transition_to_notified_by_ref(WakeCause::fixed(source));
        }

        fn polls(&self) -> u64 {
            self.obs.polls(self.state.load())
        }

        fn wake_counts(&self) -> WakeCounts {
            self.obs.polls_and_wakes(&self.state).1
        }

        fn last_worker(&self) -> Option<usize> {
            TaskObs::last_worker(self.state.load())
        }
    }

    #[test]
    fn lone_self_wakes_are_counted_without_an_ext() {
        let t = Task::new();
        for _ in 0..5 {
            t.poll_waking_itself(0);
        }
        t.poll(1);
        assert_eq!(t.polls(), 6);
        assert_eq!(t.wake_counts().self_wake, 5);
        assert_eq!(t.wake_counts().total(), 5);
        assert_eq!(t.last_worker(), Some(1));
        assert!(t.obs.ext().is_none(), "a yield loop never needs its Ext");
    }

    /// `State::new` marks the first poll as if self-woken (so the common poll start is one
    /// compare): that mark is never counted as a wake.
    #[test]
    fn the_first_polls_mark_is_not_a_self_wake() {
        let quiet = Task::new();
        quiet.poll(0);
        assert_eq!((quiet.polls(), quiet.wake_counts().total()), (1, 0));
        assert!(
            quiet.obs.ext().is_none(),
            "a first poll counts nothing out of line"
        );

        // Woken by another thread before its first poll (it was still scheduled).
        let woken = Task::new();
        woken.wake(WakeSource::Outside);
        woken.poll(0);
        let w = woken.wake_counts();
        assert_eq!((w.outside, w.self_wake, w.total()), (1, 0, 1), "{w:?}");
        assert_eq!(woken.obs.ext().unwrap().also_self.load(Relaxed), 0);
    }

    #[test]
    fn self_wakes_stay_exact_next_to_other_sources() {
        use WakeSource::{Outside, SelfWake, Timer};
        let t = Task::new();
        t.poll_waking_itself(0); // 1: first poll
        t.poll(0); // 2: self
        t.wake(Outside);
        t.poll_with(0, &[SelfWake, Timer, Outside]); // 3: outside
        t.poll_waking_itself(0); // 4: self + timer + outside
        t.poll(0); // 5: self
        t.poll(0); // 6: no recorded cause
        let w = t.wake_counts();
        assert_eq!(t.polls(), 6);
        assert_eq!(
            (w.self_wake, w.outside, w.timer, w.same_worker, w.total()),
            (3, 2, 1, 0, 6),
            "{w:?}"
        );
        // The uncaused sixth poll is counted apart, not as a self-wake.
        assert_eq!(t.obs.ext().unwrap().uncaused.load(Relaxed), 1);
    }

    /// A wake that finds the task already scheduled writes the state word only for a source
    /// not noted yet, and each source counts once per poll.
    #[test]
    fn repeated_wakes_before_a_poll_count_once_per_source() {
        let t = Task::new();
        t.poll(0);
        for _ in 0..3 {
            t.wake(WakeSource::Outside);
            t.wake(WakeSource::Reactor);
        }
        t.poll(0);
        let w = t.wake_counts();
        assert_eq!((w.outside, w.reactor, w.total()), (1, 1, 2), "{w:?}");
        assert_eq!(t.obs.ext().unwrap().others.load(Relaxed), 1);
    }

    /// A wake by a task names the same worker when that worker polled the target last.
    #[test]
    fn a_task_wake_tells_the_targets_worker_from_another() {
        let t = Task::new();
        t.poll(3);
        let by_worker = |index| WakeCause::by_task_on(worker_bits(index));
        let _ = t.state.transition_to_notified_by_ref(by_worker(3));
        t.poll(1);
        let _ = t.state.transition_to_notified_by_ref(by_worker(3));
        t.poll(3);
        let w = t.wake_counts();
        assert_eq!((w.same_worker, w.other_worker), (1, 1), "{w:?}");
    }

    #[test]
    fn a_full_poll_count_carries_into_the_ext() {
        let t = Task::new();
        let full = (POLLS_CARRY >> POLLS_SHIFT) as u64;
        // 2^15 polls, each woken by the one before (the first by the spawn's mark).
        t.state
            .store((full as usize) << POLLS_SHIFT | SELF_CAUSE | JOIN_INTEREST_AND_REFS);
        assert_eq!(t.polls(), full);
        t.poll_waking_itself(NO_WORKER);
        assert_eq!(
            t.polls(),
            full + 1,
            "no poll lost when the count is carried"
        );
        assert_eq!(
            t.state.load().0 >> POLLS_SHIFT,
            1,
            "the top bit went into the Ext"
        );
        assert_eq!(t.obs.ext().unwrap().polls_carried.load(Relaxed), full);
        assert_eq!(t.wake_counts().self_wake, full);
        assert_eq!(t.last_worker(), None);
        t.poll(2);
        assert_eq!(t.polls(), full + 2);
        assert_eq!(t.wake_counts().self_wake, full + 1);
        assert_eq!(t.last_worker(), Some(2));
        assert_eq!(
            t.state.load().ref_count(),
            2,
            "the count never spills into the refs"
        );
        assert!(t.obs.ext().unwrap().others.load(Relaxed) == 0);
    }

    /// A yield loop past several carries keeps an exact count (the carry is not a first poll,
    /// and the count never returns to 0).
    #[test]
    fn a_long_yield_loop_counts_every_poll() {
        let t = Task::new();
        let n = if cfg!(miri) { 40 } else { 70_000 };
        if cfg!(miri) {
            // Start just below a carry, so Miri crosses one too.
            t.state.store(
                ((POLLS_CARRY >> POLLS_SHIFT) - 20) << POLLS_SHIFT
                    | SELF_CAUSE
                    | JOIN_INTEREST_AND_REFS,
            );
        }
        let before = t.polls();
        for _ in 0..n {
            t.poll_waking_itself(0);
        }
        assert_eq!(t.polls(), before + n);
        assert_eq!(t.wake_counts().self_wake, before + n - 1);
        assert_eq!(t.obs.ext().unwrap().uncaused.load(Relaxed), 0);
    }

    /// An idle task's flags and two references (`State::new(2)` after its queue entry was
    /// polled and parked), for a hand-set state word.
    const JOIN_INTEREST_AND_REFS: usize =
        crate::rt::task::state::JOIN_INTEREST | (2 * crate::rt::task::state::REF_ONE);

    #[test]
    fn worker_indexes_past_the_field_are_not_misattributed() {
        let t = Task::new();
        t.poll(253);
        assert_eq!(t.last_worker(), Some(253));
        t.poll(254);
        assert_eq!(
            t.last_worker(),
            None,
            "too large for the field: unknown, not another worker"
        );
        t.poll(70_000);
        assert_eq!(t.last_worker(), None);
        assert_eq!(
            t.polls(),
            3,
            "the worker field never spills into the poll count"
        );
        assert_eq!(t.state.load().ref_count(), 2);
        // A wake by a task on such a worker is never taken for the same worker.
        let _ = t
            .state
            .transition_to_notified_by_ref(WakeCause::by_task_on(worker_bits(254)));
        t.poll(0);
        assert_eq!(t.wake_counts().other_worker, 1);
    }

    /// One word per task: the spawn site is an index into the interned table, next to the id.
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
        assert_eq!(identity(obs.id_ext.load(Relaxed).addr()).1, ib);
    }

    /// A task whose site finds the table full keeps it in an `Ext` from its spawn.
    #[test]
    fn a_site_that_is_not_interned_lives_in_the_ext() {
        let site = Location::caller();
        let t = Task::with(TaskObs {
            id_ext: AtomicPtr::new(ext_at_spawn(site, 77)),
        });
        assert!(t.obs.ext().is_some());
        assert_eq!(t.obs.id(), 77);
        assert!(std::ptr::eq(t.obs.location(), site));
        t.wake(WakeSource::Reactor);
        t.poll(0);
        t.poll(0);
        assert_eq!((t.obs.id(), t.wake_counts().reactor), (77, 1));
    }

    /// Installing the `Ext` moves the id and the site into it, once, also when wakes on other
    /// threads install it at the same time.
    #[test]
    fn the_ext_install_keeps_id_and_site_under_racing_wakes() {
        for round in 0..if cfg!(miri) { 4 } else { 200 } {
            let t = Arc::new(Task::new());
            let (id, site) = (t.obs.id(), t.obs.location());
            t.poll(0);
            let barrier = Arc::new(std::sync::Barrier::new(3));
            let wakers: Vec<_> = [WakeSource::Outside, WakeSource::Timer]
                .into_iter()
                .map(|source| {
                    let (t, barrier) = (t.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        t.wake(source);
                        t.obs.ext_or_install() as *const Ext as usize
                    })
                })
                .collect();
            barrier.wait();
            let ext = t.obs.ext_or_install() as *const Ext;
            for w in wakers {
                assert_eq!(w.join().unwrap(), ext as usize, "round {round}");
            }
            assert!(std::ptr::eq(t.obs.ext().unwrap(), ext), "round {round}");
            assert_eq!(t.obs.id(), id, "round {round}");
            assert!(std::ptr::eq(t.obs.location(), site), "round {round}");
            t.poll(0);
            let w = t.wake_counts();
            assert_eq!(
                (w.outside, w.timer, w.total()),
                (1, 1, 2),
                "round {round}: {w:?}"
            );
        }
    }

    #[test]
    fn the_ext_keeps_the_spawn_site_and_is_recycled() {
        let t = Task::new();
        let site = t.obs.location();
        t.wake(WakeSource::Reactor);
        t.poll(0);
        t.poll(0);
        let ext = t.obs.ext().expect("a reactor wake is counted in the Ext") as *const Ext;
        assert!(std::ptr::eq(t.obs.location(), site));
        assert_eq!(t.wake_counts().reactor, 1);
        drop(t);
        // The next install on this thread takes the one just given back, cleared.
        let again = Task::new();
        let reused = again.obs.ext_or_install();
        assert!(std::ptr::eq(reused, ext));
        assert_eq!(reused.wakes[WakeSource::Reactor as usize].load(Relaxed), 0);
        assert_eq!(again.wake_counts(), WakeCounts::default());
    }

    /// The channel kinds a poll notes reach the state word through the poll end's CAS, and
    /// the next poll start clears them.
    #[test]
    fn channel_notes_ride_the_poll_ends_cas() {
        let t = Task::new();
        let (_, prev) = t.state.transition_to_running(PollerBits(worker_bits(0)));
        count_poll(&t.state, &t.obs, prev.0);
        let bits = 1 << (CHANNEL_SHIFT + Channel::Mpsc as u32);
        let _ = t.state.transition_to_idle(bits);
        let waits: Vec<_> = TaskObs::channel_waits(t.state.load()).collect();
        assert_eq!(waits, vec![WaitsOn::Channel { kind: "mpsc" }]);
        t.poll(0);
        assert_eq!(TaskObs::channel_waits(t.state.load()).count(), 0);
        assert_eq!(t.state.load().ref_count(), 2);
    }
}
