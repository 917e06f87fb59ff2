//! The scheduler trace: a flight recorder of small fixed records per thread, exported as
//! Chrome trace-event JSON (Perfetto and `chrome://tracing` open it).
//!
//! Every thread that records owns one ring and is its only writer. A ring is a queue of
//! segments of [`SEGMENT`] records; the writer fills the newest, and when it is full either
//! recycles the oldest segment or adds one, by the flight-recorder rule ([`TraceLimits`]):
//!
//! * at least `capacity` records are always kept (the size cap's floor);
//! * beyond it, records younger than `min_age` are kept too — so `trace.json?last=2s` returns
//!   the whole last 2 s when the rate allows —
//! * up to `max_capacity` records per thread, the hard limit that bounds memory at any rate.
//!
//! Segments beyond `capacity` are freed as soon as their newest record is older than `min_age`,
//! so memory returns to `capacity` after a burst.
//!
//! A slot is a seqlock: the writer stores an odd sequence number, the fields, then the even
//! number that names the record's position (`2 × position + 2`, its low 32 bits, in the same
//! word as the record's kind); a reader keeps a slot only when it reads the same word before
//! and after the fields, and the number matches the position the slot has in its segment's
//! current round. A record being overwritten while it is read is skipped, never returned torn.
//!
//! Recording is off until [`set_tracing`]`(true)`; while off each hook costs one relaxed load.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::{HashSet, VecDeque};
use std::panic::Location;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{fence, AtomicU64};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};

/// Records per segment: the unit a ring grows, recycles and frees by (32 KiB).
pub const SEGMENT: usize = 1024;

/// The flight recorder's limits, per recording thread (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceLimits {
    /// Records always kept (rounded up to whole segments).
    pub capacity: usize,
    /// Records younger than this are kept beyond `capacity`...
    pub min_age: Duration,
    /// ...up to this many records (the hard limit; at least `capacity`).
    pub max_capacity: usize,
}

impl Default for TraceLimits {
    /// 16,384 records (512 KiB), 2 s, at most 32,768 records (1 MiB) per thread.
    ///
    /// The hard limit is what a busy thread's ring grows to, and the ring is written
    /// sequentially: past the core's L2 cache (2 MiB here), every record's line comes from
    /// further out. With 131,072 records (5 MiB) the HTTP benchmark's trace cost +13.8 %,
    /// with 32,768 +10.1 % (21 interleaved rounds, docs/observatory-costs.md; records were
    /// 40 bytes then, 32 now).
    fn default() -> Self {
        TraceLimits {
            capacity: 1 << 14,
            min_age: Duration::from_secs(2),
            max_capacity: 1 << 15,
        }
    }
}

static LIMIT_CAPACITY: AtomicU64 = AtomicU64::new(1 << 14);
static LIMIT_MIN_AGE_NS: AtomicU64 = AtomicU64::new(2_000_000_000);
static LIMIT_MAX_CAPACITY: AtomicU64 = AtomicU64::new(1 << 15);

/// Sets the flight recorder's limits for every thread (applied as rings fill up).
///
/// ```
/// use std::time::Duration;
/// use scraipe::rt::observe::{set_trace_limits, trace_limits, TraceLimits};
/// set_trace_limits(TraceLimits { min_age: Duration::from_secs(5), ..TraceLimits::default() });
/// assert_eq!(trace_limits().min_age, Duration::from_secs(5));
/// ```
pub fn set_trace_limits(limits: TraceLimits) {
    LIMIT_CAPACITY.store(limits.capacity.max(1) as u64, Relaxed);
    LIMIT_MIN_AGE_NS.store(
        limits.min_age.as_nanos().min(u128::from(u64::MAX)) as u64,
        Relaxed,
    );
    LIMIT_MAX_CAPACITY.store(limits.max_capacity as u64, Relaxed);
}

/// The flight recorder's limits in force.
pub fn trace_limits() -> TraceLimits {
    TraceLimits {
        capacity: LIMIT_CAPACITY.load(Relaxed) as usize,
        min_age: Duration::from_nanos(LIMIT_MIN_AGE_NS.load(Relaxed)),
        max_capacity: LIMIT_MAX_CAPACITY.load(Relaxed) as usize,
    }
}

/// Flow ids are handed to threads in blocks of `FLOW_BLOCK` (as task ids are: no shared
/// `fetch_add` per socket event).
static NEXT_FLOW: AtomicU64 = AtomicU64::new(1);
const FLOW_BLOCK: u64 = 1024;

thread_local! {
    /// This thread's block of flow ids: the next one and the block's end.
    static FLOWS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// `n` consecutive flow ids, unique in the process (never 0): from this thread's block when it
/// has room, else straight from the shared counter.
fn next_flows(n: u64) -> u64 {
    FLOWS.with(|f| {
        let (next, end) = f.get();
        if n <= 1 {
            super::task::next_in_block(f, &NEXT_FLOW, FLOW_BLOCK)
        } else if end - next >= n {
            f.set((next + n, end));
            next
        } else {
            NEXT_FLOW.fetch_add(n, std::sync::atomic::Ordering::Relaxed)
        }
    })
}

/// Turns the scheduler trace on or off for the whole process.
pub fn set_tracing(on: bool) {
    epoch();
    super::mode::set(super::mode::TRACE, on);
}

/// True while the trace records.
#[inline]
pub fn is_tracing() -> bool {
    super::mode::get() & super::mode::TRACE != 0
}

/// The trace clock's zero, in timing-clock ticks. Initialising it decides and calibrates the
/// clock (`timing::calibrate`), before any record is written: every ring calls it when it is
/// made, and `set_tracing` before recording starts.
fn epoch() -> u64 {
    static EPOCH: OnceLock<u64> = OnceLock::new();
    *EPOCH.get_or_init(|| {
        super::timing::calibrate();
        super::timing::ticks()
    })
}

/// The trace clock: ns since its zero. Records store raw ticks — one `rdtsc` per record where
/// the kernel keeps time with the TSC (see [`timing`](super::timing)), a `clock_gettime`
/// elsewhere — and are converted to ns when read, on the exporting thread.
pub(crate) fn now_ns() -> u64 {
    ticks_since_epoch_to_ns(super::timing::ticks())
}

/// A raw record stamp in ns since the trace clock's zero.
fn ticks_since_epoch_to_ns(ticks: u64) -> u64 {
    super::timing::ticks_to_ns(ticks.saturating_sub(epoch()))
}

/// What a record says. The payload fields `a`, `b` and the 24-bit `w` are per kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// a: task id, b: spawn location pointer.
    Spawn = 1,
    /// a: task id, b: flow id (0: none), w: queue source | local depth << 8.
    PollStart = 2,
    /// a: task id, w: 1 ready / 0 pending.
    PollEnd = 3,
    /// a: woken task id, b: flow id, w: wake source index.
    Wake = 4,
    /// a: victim worker, b: tasks moved, w: thief worker.
    Steal = 5,
    /// a: timeout ns (0: none).
    Park = 6,
    Unpark = 7,
    /// a: token, b: flow id, w: readiness bits.
    ReactorEvent = 8,
    /// a: lateness ns.
    TimerFire = 9,
    BlockOnEnter = 10,
    BlockOnExit = 11,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        use Kind::*;
        Some(match v {
            1 => Spawn,
            2 => PollStart,
            3 => PollEnd,
            4 => Wake,
            5 => Steal,
            6 => Park,
            7 => Unpark,
            8 => ReactorEvent,
            9 => TimerFire,
            10 => BlockOnEnter,
            11 => BlockOnExit,
            _ => return None,
        })
    }
}

/// Where the task a worker is about to poll came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Lifo,
    Local,
    Injector,
    /// Stolen from this worker (in the same steal that took a batch).
    StolenFrom(usize),
    /// The worker's deferred list: tasks that yielded, queued again once the rest is done.
    Deferred,
}

impl Source {
    fn encode(self) -> u32 {
        match self {
            Source::Lifo => 1,
            Source::Local => 2,
            Source::Injector => 3,
            Source::StolenFrom(w) => 4 + (w.min(250) as u32),
            Source::Deferred => 255,
        }
    }
    fn describe(code: u32) -> String {
        match code {
            // Not taken from a worker's queues: a blocking-pool job run on its thread.
            0 => "direct".into(),
            255 => "deferred".into(),
            1 => "lifo".into(),
            2 => "local".into(),
            3 => "injector".into(),
            n => format!("stolen from worker {}", n - 4),
        }
    }
}

/// A decoded record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    /// ns since the trace clock's zero (slots keep raw ticks; `Ring::read` converts).
    pub(crate) ts: u64,
    pub(crate) kind: Kind,
    pub(crate) w: u32,
    pub(crate) a: u64,
    pub(crate) b: u64,
}

/// One record: 32 bytes, two to a cache line (a 40-byte slot spread records over more lines
/// and cost the HTTP row's trace more; see docs/observatory-costs.md).
#[repr(C, align(32))]
struct Slot {
    /// The seqlock word: bits 0–31 the sequence number (`2 × position + 1` while the slot is
    /// written, `2 × position + 2` once it is, truncated to 32 bits), bits 32–39 the kind,
    /// bits 40–63 `w`. The kind and `w` ride in the word the writer stores last anyway.
    seq: AtomicU64,
    /// The raw stamp (timing-clock ticks).
    ts: AtomicU64,
    a: AtomicU64,
    b: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 32);

/// The low 32 bits a slot's seqlock word holds for `2 × pos + add` (`add`: 1 while the record
/// at `pos` is written, 2 once it is).
#[inline(always)]
fn seq32(pos: u64, add: u64) -> u64 {
    (2 * pos + add) & 0xFFFF_FFFF
}

/// A run of slots, filled in order.
struct Segment {
    slots: Box<[Slot]>,
    /// The position of its first record in the current round: older records in its slots are
    /// leftovers of the previous round, not yet overwritten.
    first_pos: AtomicU64,
}

impl Segment {
    fn new(len: usize) -> Segment {
        Segment {
            slots: (0..len)
                .map(|_| Slot {
                    seq: AtomicU64::new(0),
                    ts: AtomicU64::new(0),
                    a: AtomicU64::new(0),
                    b: AtomicU64::new(0),
                })
                .collect(),
            first_pos: AtomicU64::new(0),
        }
    }

    /// The raw stamp (ticks) of its last record (it is full when this is asked).
    fn newest_ts(&self) -> u64 {
        self.slots.last().map_or(0, |s| s.ts.load(Relaxed))
    }
}

/// What only the owning thread touches.
struct Writer {
    seg: Arc<Segment>,
    /// The next slot in `seg`.
    index: usize,
    /// The next record's position (records ever written by this thread).
    pos: u64,
}

/// One thread's ring.
pub(crate) struct Ring {
    /// Oldest first; the last one is the writer's.
    segments: Mutex<VecDeque<Arc<Segment>>>,
    segment_len: usize,
    /// `None`: the process-wide [`trace_limits`].
    limits: Option<TraceLimits>,
    writer: UnsafeCell<Writer>,
    name: String,
    tid: i64,
}

// SAFETY: `writer` is only touched by `push`, which only the owning thread calls (the ring's
// single-writer contract); everything else is atomics or behind the mutex.
unsafe impl Sync for Ring {}

impl Ring {
    /// A ring of `segment_len`-record segments; `limits: None` follows [`set_trace_limits`].
    pub(crate) fn new(
        name: String,
        tid: i64,
        segment_len: usize,
        limits: Option<TraceLimits>,
    ) -> Ring {
        // Fixes the clock before this ring's first record (see `epoch`).
        epoch();
        let segment_len = segment_len.max(1);
        let first = Arc::new(Segment::new(segment_len));
        Ring {
            segments: Mutex::new(VecDeque::from([first.clone()])),
            segment_len,
            limits,
            writer: UnsafeCell::new(Writer {
                seg: first,
                index: 0,
                pos: 0,
            }),
            name,
            tid,
        }
    }

    /// Appends a record. Only the owning thread calls this.
    pub(crate) fn push(&self, kind: Kind, w: u32, a: u64, b: u64) {
        // SAFETY: only the owning thread calls `push` (see the `Sync` impl), so this is the
        // only reference to the writer state.
        let writer = unsafe { &mut *self.writer.get() };
        if writer.index == self.segment_len {
            self.start_segment(writer);
        }
        self.write(writer, super::timing::ticks(), kind, w, a, b);
    }

    /// [`push`](Self::push) when it calls nothing else: the segment has room and the clock
    /// is one `rdtsc` (most records; see `record`). Returns false, having written nothing,
    /// when it is not so.
    #[inline(always)]
    fn try_push_leaf(&self, kind: Kind, w: u32, a: u64, b: u64) -> bool {
        // SAFETY: as in `push`.
        let writer = unsafe { &mut *self.writer.get() };
        let Some(ts) = super::timing::tsc_ticks() else {
            return false;
        };
        if writer.index == self.segment_len {
            return false;
        }
        self.write(writer, ts, kind, w, a, b);
        true
    }

    /// The writer's segment is full: moves it to the next one.
    #[cold]
    #[inline(never)]
    fn start_segment(&self, writer: &mut Writer) {
        writer.seg = self.next_segment();
        writer.index = 0;
        // Before any slot of the new round (the slots' Release stores publish it).
        writer.seg.first_pos.store(writer.pos, Relaxed);
    }

    /// Writes the record into the writer's next slot (which exists: `index < segment_len`).
    #[inline(always)]
    fn write(&self, writer: &mut Writer, ts: u64, kind: Kind, w: u32, a: u64, b: u64) {
        let pos = writer.pos;
        let slot = &writer.seg.slots[writer.index];
        slot.seq.store(seq32(pos, 1), Relaxed);
        // Orders the odd marker before the field stores (the seqlock writer's fence).
        fence(Release);
        slot.ts.store(ts, Relaxed);
        slot.a.store(a, Relaxed);
        slot.b.store(b, Relaxed);
        let head = u64::from(kind as u8) | (u64::from(w & 0xFF_FFFF) << 8);
        slot.seq.store(seq32(pos, 2) | head << 32, Release);
        writer.index += 1;
        writer.pos = pos + 1;
    }

    /// The writer's segment is full: recycle the oldest one or add one (the flight-recorder
    /// rule of the module docs). Once per `segment_len` records: out of line, so `record`'s
    /// common path stays a leaf.
    #[cold]
    #[inline(never)]
    fn next_segment(&self) -> Arc<Segment> {
        let limits = self.limits.unwrap_or_else(trace_limits);
        let len = self.segment_len;
        // Full segments that hold `capacity` records, and the most segments in all.
        let floor = limits.capacity.div_ceil(len).max(1);
        let most = limits.max_capacity.div_ceil(len).max(floor) + 1;
        let min_age = limits.min_age.as_nanos().min(u128::from(u64::MAX)) as u64;
        let now = super::timing::ticks();
        let mut segments = self.segments.lock();
        let mut reuse = None;
        while segments.len() > floor {
            let front = segments.front().expect("more than floor");
            let age = super::timing::ticks_to_ns(now.saturating_sub(front.newest_ts()));
            let aged = age >= min_age;
            if !aged && segments.len() < most {
                break;
            }
            reuse = segments.pop_front();
        }
        let seg = reuse.unwrap_or_else(|| Arc::new(Segment::new(len)));
        segments.push_back(seg.clone());
        seg
    }

    /// The records still in the ring, oldest first; slots being overwritten are skipped.
    pub(crate) fn read(&self) -> Vec<Record> {
        let segments: Vec<Arc<Segment>> = self.segments.lock().iter().cloned().collect();
        // (index in its segment, then position; seqlock word; record)
        let mut out: Vec<(u64, u64, Record)> =
            Vec::with_capacity(segments.len() * self.segment_len);
        for seg in &segments {
            let from = out.len();
            for (index, slot) in seg.slots.iter().enumerate() {
                let word = slot.seq.load(Acquire);
                if word % 2 == 1 {
                    continue;
                }
                let ts = slot.ts.load(Relaxed);
                let a = slot.a.load(Relaxed);
                let b = slot.b.load(Relaxed);
                // Orders the field loads before the re-check (the seqlock reader's fence).
                fence(Acquire);
                if slot.seq.load(Relaxed) != word {
                    continue;
                }
                let Some(kind) = Kind::from_u8((word >> 32) as u8) else {
                    continue; // never written
                };
                let record = Record {
                    ts: ticks_since_epoch_to_ns(ts),
                    kind,
                    w: (word >> 40) as u32,
                    a,
                    b,
                };
                out.push((index as u64, word, record));
            }
            // Read after the slots: if any slot of a new round was seen, this is that round's
            // start. A slot of this round holds position `first + index`, which its sequence
            // number confirms; any other is a leftover of an older round (dropped: it would
            // leave a hole in the history; the recycled segment was the oldest). (A 32-bit
            // sequence number could only mistake a leftover exactly a multiple of 2^31
            // records older for a record of this round.)
            let first = seg.first_pos.load(Acquire);
            let mut keep = from;
            for j in from..out.len() {
                let (index, word, record) = out[j];
                let pos = first + index;
                if word & 0xFFFF_FFFF == seq32(pos, 2) {
                    out[keep] = (pos, word, record);
                    keep += 1;
                }
            }
            out.truncate(keep);
        }
        out.sort_unstable_by_key(|(pos, _, _)| *pos);
        out.into_iter().map(|(_, _, r)| r).collect()
    }
}

fn rings() -> &'static Mutex<Vec<Arc<Ring>>> {
    static RINGS: OnceLock<Mutex<Vec<Arc<Ring>>>> = OnceLock::new();
    RINGS.get_or_init(|| Mutex::new(Vec::new()))
}

thread_local! {
    /// This thread's ring, for the hot path: a plain pointer in a thread-local without a
    /// destructor (no registration check per access). Valid while `RING_OWNER` holds the ring;
    /// `RING_OWNER`'s destructor clears it first.
    static RING: Cell<*const Ring> = const { Cell::new(std::ptr::null()) };
    static RING_OWNER: RingOwner = const { RingOwner(RefCell::new(None)) };
    /// Flow ids of the wakers a reactor turn collected, one per waker, in wake order (each
    /// waker has its own flow, so an event that wakes two tasks starts two arrows).
    static PENDING_FLOWS: RefCell<VecDeque<u64>> = const { RefCell::new(VecDeque::new()) };
    /// `PENDING_FLOWS` may be non-empty (a traced reactor turn filled it): lets an untraced
    /// turn skip the per-waker pop and the clear.
    static FLOWS_PENDING: Cell<bool> = const { Cell::new(false) };
    /// The flow of the waker the reactor is waking right now (0: none); a task's wake takes
    /// it. Set per waker, so a waker that is not a task's (a `block_on` thread's) leaves its
    /// flow unused instead of shifting the later ones.
    static CURRENT_FLOW: Cell<u64> = const { Cell::new(0) };
    /// Where the next poll's task came from (set by the worker loop).
    static SOURCE: Cell<(u32, u32)> = const { Cell::new((0, 0)) };
}

/// Keeps this thread's ring alive while `RING` points at it.
struct RingOwner(RefCell<Option<Arc<Ring>>>);

impl Drop for RingOwner {
    fn drop(&mut self) {
        let _ = RING.try_with(|r| r.set(std::ptr::null()));
    }
}

/// Rings of threads that have exited are dropped once this many rings exist.
const MAX_RINGS: usize = 256;

/// Appends a record to this thread's ring. The common case — a ring exists, its segment has
/// room, the clock is the TSC — is a leaf (no call, so no registers to save); the rest is in
/// `record_slow`.
#[inline]
fn record(kind: Kind, w: u32, a: u64, b: u64) {
    let ring = RING.with(|r| r.get());
    // SAFETY: non-null only while `RING_OWNER` keeps the ring alive (see `RING`).
    if !ring.is_null() && unsafe { &*ring }.try_push_leaf(kind, w, a, b) {
        return;
    }
    record_slow(kind, w, a, b)
}

#[cold]
#[inline(never)]
fn record_slow(kind: Kind, w: u32, a: u64, b: u64) {
    let mut ring = RING.with(|r| r.get());
    if ring.is_null() {
        ring = new_ring();
        if ring.is_null() {
            return; // the thread is exiting
        }
    }
    // SAFETY: non-null only while `RING_OWNER` keeps the ring alive (see `RING`).
    unsafe { &*ring }.push(kind, w, a, b);
}

/// Creates and registers this thread's ring; null when the thread is exiting.
#[cold]
fn new_ring() -> *const Ring {
    RING_OWNER
        .try_with(|owner| {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("thread").to_string();
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() } as i64;
            let ring = Arc::new(Ring::new(name, tid, SEGMENT, None));
            {
                let mut all = rings().lock();
                if all.len() >= MAX_RINGS {
                    // Only the registry holds the ring of an exited thread.
                    all.retain(|r| Arc::strong_count(r) > 1);
                }
                all.push(ring.clone());
            }
            let ptr = Arc::as_ptr(&ring);
            *owner.0.borrow_mut() = Some(ring);
            RING.with(|r| r.set(ptr));
            ptr
        })
        .unwrap_or(std::ptr::null())
}

// ----- hooks (each returns at once while tracing is off) -----

pub(crate) fn spawn(id: u64, location: &'static Location<'static>) {
    if is_tracing() {
        record(Kind::Spawn, 0, id, location as *const _ as u64);
    }
}

/// The worker loop took a task from `source`, with `depth()` tasks left in its local queue
/// (a closure: the deque's length is two atomic loads, paid only while tracing).
#[inline(always)]
pub(crate) fn source(source: Source, depth: impl FnOnce() -> usize) {
    if is_tracing() {
        source_cold(source, depth());
    }
}

#[cold]
#[inline(never)]
fn source_cold(source: Source, depth: usize) {
    SOURCE.with(|s| s.set((source.encode(), depth.min(0xFFFF) as u32)));
}

pub(crate) fn poll_start(id: u64, flow: u64) {
    if is_tracing() {
        let (src, depth) = SOURCE.with(|s| s.replace((0, 0)));
        record(Kind::PollStart, src | (depth << 8), id, flow);
    }
}

/// A poll ended; `budget_used`: units of the cooperative budget it spent (`None` outside a
/// budgeted poll).
pub(crate) fn poll_end(id: u64, ready: bool, budget_used: Option<u32>) {
    if is_tracing() {
        let budget = budget_used.map_or(0, |u| u64::from(u) + 1);
        record(Kind::PollEnd, u32::from(ready), id, budget);
    }
}

/// Records a wake; returns the flow id it continues (0: none).
pub(crate) fn wake(id: u64, source_index: usize, from_reactor: bool) -> u64 {
    let flow = if from_reactor {
        CURRENT_FLOW.with(|c| c.replace(0))
    } else {
        0
    };
    if is_tracing() {
        record(Kind::Wake, source_index as u32, id, flow);
    }
    flow
}

pub(crate) fn steal(from: usize, to: usize, count: usize) {
    if is_tracing() {
        record(Kind::Steal, to as u32, from as u64, count as u64);
    }
}

/// What a parking worker's sleep ends on besides a wake-up or I/O (the park's reason: it
/// found nothing to run, and this is what it waits for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParkUntil {
    /// Only a wake-up or I/O: no timer due.
    WakeOrIo = 0,
    /// Its own timer's deadline.
    TimerDeadline = 1,
    /// The runtime's timer tick (this worker ticks for everyone).
    Tick = 2,
    /// A sibling's tick (the ticker fires this worker's timers).
    SiblingTick = 3,
}

impl ParkUntil {
    fn describe(code: u32) -> &'static str {
        match code {
            1 => "timer deadline",
            2 => "timer tick",
            3 => "sibling's timer tick",
            _ => "wake-up or I/O",
        }
    }
}

pub(crate) fn park(timeout: Option<Duration>, until: ParkUntil) {
    // The worker sleeps: its run stretch ends.
    super::task::close_run_stretch();
    if is_tracing() {
        let ns = timeout.map_or(0, |t| t.as_nanos().min(u64::MAX as u128) as u64);
        record(Kind::Park, until as u32, ns, 0);
    }
}

/// The worker's sleep returned, having dispatched `events` I/O events.
pub(crate) fn unpark(events: usize) {
    if is_tracing() {
        record(Kind::Unpark, 0, events as u64, 0);
    }
}

/// A socket event that collected `wakers` wakers (they are woken later in this turn, in
/// order, each after [`next_reactor_waker`]). Each waker gets a flow id of its own: the ids
/// are consecutive, the first is in the record and their count beside the readiness bits.
pub(crate) fn reactor_event(token: usize, readiness: usize, wakers: usize) {
    if !is_tracing() {
        return;
    }
    let wakers = wakers.min(MAX_EVENT_FLOWS);
    let first = next_flows(wakers as u64);
    let w = (readiness as u32 & 0xFF) | ((wakers as u32) << 8);
    record(Kind::ReactorEvent, w, token as u64, first);
    PENDING_FLOWS.with(|p| {
        let mut p = p.borrow_mut();
        for i in 0..wakers as u64 {
            p.push_back(first + i);
        }
    });
    FLOWS_PENDING.with(|f| f.set(true));
}

/// The most flows one socket event starts (the count shares the record's 24-bit word with the
/// readiness bits).
const MAX_EVENT_FLOWS: usize = 0xFFFF;

/// The reactor is about to wake the next waker it collected: that waker's flow becomes the
/// current one, for a task's wake to take.
#[inline]
pub(crate) fn next_reactor_waker() {
    if FLOWS_PENDING.with(|f| f.get()) {
        next_reactor_waker_cold();
    }
}

#[cold]
#[inline(never)]
fn next_reactor_waker_cold() {
    let flow = PENDING_FLOWS
        .with(|p| p.borrow_mut().pop_front())
        .unwrap_or(0);
    CURRENT_FLOW.with(|c| c.set(flow));
}

/// The reactor turn's wake-ups are done: forget flows whose wakers were not tasks.
#[inline]
pub(crate) fn end_reactor_wakes() {
    if FLOWS_PENDING.with(|f| f.replace(false)) {
        let _ = PENDING_FLOWS.try_with(|p| p.borrow_mut().clear());
        let _ = CURRENT_FLOW.try_with(|c| c.set(0));
    }
}

pub(crate) fn timer_fire(lateness: Duration) {
    if is_tracing() {
        record(Kind::TimerFire, 0, lateness.as_nanos() as u64, 0);
    }
}

pub(crate) fn block_on(enter: bool) {
    if is_tracing() {
        let kind = if enter {
            Kind::BlockOnEnter
        } else {
            Kind::BlockOnExit
        };
        record(kind, 0, 0, 0);
    }
}

// ----- export -----

/// The flows a reactor event record starts: one per waker it collected.
fn event_flows(r: &Record) -> std::ops::Range<u64> {
    r.b..r.b + u64::from(r.w >> 8)
}

/// One exported event, rendered as soon as it is made (a trace holds tens of thousands: a
/// `Value` each cost hundreds of bytes and seconds to sort), with what filtering and ordering
/// need.
struct Event {
    tid: u64,
    /// µs; metadata (no `ts`) sorts first.
    ts: f64,
    /// A flow event's phase (`s`, `t`, `f`) and id.
    flow: Option<(u8, u64)>,
    json: String,
}

fn push(events: &mut Vec<Event>, e: Value) {
    let flow = match (e["ph"].as_str(), e["id"].as_u64()) {
        (Some(ph @ ("s" | "t" | "f")), Some(id)) => Some((ph.as_bytes()[0], id)),
        _ => None,
    };
    events.push(Event {
        tid: e["tid"].as_u64().unwrap_or(0),
        ts: e["ts"].as_f64().unwrap_or(f64::MIN),
        flow,
        json: e.to_string(),
    });
}

/// The recorded trace of the last `last` (everything when `None`) as Chrome trace-event JSON:
/// one track per thread, polls as slices, local queue depth as a counter, flow arrows from a
/// socket event to the wake it caused to the poll that followed.
pub fn trace_json(last: Option<Duration>) -> String {
    let rings: Vec<Arc<Ring>> = rings().lock().clone();
    let now = now_ns();
    let since = last.map_or(0, |d| now.saturating_sub(d.as_nanos() as u64));
    let threads: Vec<(usize, &Ring, Vec<Record>)> = rings
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let recs = r.read().into_iter().filter(|x| x.ts >= since).collect();
            (i + 1, &**r, recs)
        })
        .collect();
    // A flow is drawn only when its start and its end are both in the window.
    let mut starts = HashSet::new();
    let mut ends = HashSet::new();
    for (_, _, recs) in &threads {
        for r in recs {
            match r.kind {
                Kind::ReactorEvent => starts.extend(event_flows(r)),
                Kind::PollStart if r.b != 0 => {
                    ends.insert(r.b);
                }
                _ => {}
            }
        }
    }
    let mut events = Vec::new();
    let us = |ns: u64| ns as f64 / 1000.0;
    for (tid, ring, recs) in &threads {
        let tid = *tid;
        push(
            &mut events,
            json!({"ph": "M", "name": "thread_name", "pid": 1, "tid": tid,
            "args": {"name": format!("{} (tid {})", ring.name, ring.tid)}}),
        );
        let mut open: Vec<&Record> = Vec::new();
        let mut flow_ended = HashSet::new();
        for r in recs {
            let ts = us(r.ts);
            match r.kind {
                Kind::PollStart => {
                    open.push(r);
                    push(
                        &mut events,
                        json!({"ph": "C", "name": "local queue", "pid": 1, "tid": tid,
                        "ts": ts, "args": {"depth": r.w >> 8}}),
                    );
                }
                Kind::PollEnd => {
                    // Pair with the innermost open poll of the same task; anything opened after
                    // it without an end (the ring lost it) is dropped.
                    let Some(at) = open.iter().rposition(|s| s.a == r.a) else {
                        continue;
                    };
                    let start = open[at];
                    open.truncate(at);
                    let mut args = json!({"task": r.a, "ready": r.w == 1,
                                          "source": Source::describe(start.w & 0xFF)});
                    if r.b != 0 {
                        args["budget_used"] = json!(r.b - 1);
                    }
                    push(
                        &mut events,
                        json!({"ph": "X", "name": format!("poll task {}", r.a),
                        "cat": "poll", "pid": 1, "tid": tid, "ts": us(start.ts),
                        "dur": us(r.ts - start.ts), "args": args}),
                    );
                    let flow = start.b;
                    if flow != 0 && starts.contains(&flow) && flow_ended.insert(flow) {
                        push(
                            &mut events,
                            json!({"ph": "f", "bp": "e", "name": "wake", "cat": "flow",
                            "id": flow, "pid": 1, "tid": tid, "ts": us(start.ts)}),
                        );
                    }
                }
                Kind::Spawn => {
                    // SAFETY: only `&'static Location` pointers are recorded.
                    let loc = unsafe { &*(r.b as *const Location<'static>) };
                    push(
                        &mut events,
                        json!({"ph": "i", "s": "t", "name": "spawn", "pid": 1, "tid": tid,
                        "ts": ts, "args": {"task": r.a,
                                           "at": format!("{}:{}", loc.file(), loc.line())}}),
                    );
                }
                Kind::Wake => {
                    let source = super::WakeSource::ALL
                        .get(r.w as usize)
                        .map_or("?", |s| s.name());
                    push(
                        &mut events,
                        json!({"ph": "i", "s": "t", "name": "wake", "pid": 1, "tid": tid,
                        "ts": ts, "args": {"task": r.a, "source": source}}),
                    );
                    if r.b != 0 && starts.contains(&r.b) && ends.contains(&r.b) {
                        push(
                            &mut events,
                            json!({"ph": "t", "name": "wake", "cat": "flow",
                            "id": r.b, "pid": 1, "tid": tid, "ts": ts}),
                        );
                    }
                }
                Kind::ReactorEvent => {
                    push(
                        &mut events,
                        json!({"ph": "i", "s": "t", "name": "socket event", "pid": 1,
                        "tid": tid, "ts": ts, "args": {"token": r.a, "readiness": r.w & 0xFF}}),
                    );
                    for flow in event_flows(r).filter(|f| ends.contains(f)) {
                        push(
                            &mut events,
                            json!({"ph": "s", "name": "wake", "cat": "flow",
                            "id": flow, "pid": 1, "tid": tid, "ts": ts}),
                        );
                    }
                }
                Kind::Steal => push(
                    &mut events,
                    json!({"ph": "i", "s": "t", "name": "steal",
                    "pid": 1, "tid": tid, "ts": ts,
                    "args": {"from": r.a, "to": r.w, "tasks": r.b}}),
                ),
                Kind::Park => push(
                    &mut events,
                    json!({"ph": "i", "s": "t", "name": "park",
                    "pid": 1, "tid": tid, "ts": ts,
                    "args": {"reason": "nothing to run", "until": ParkUntil::describe(r.w),
                             "timeout_ns": r.a}}),
                ),
                Kind::Unpark => push(
                    &mut events,
                    json!({"ph": "i", "s": "t", "name": "unpark",
                    "pid": 1, "tid": tid, "ts": ts, "args": {"io_events": r.a}}),
                ),
                Kind::TimerFire => push(
                    &mut events,
                    json!({"ph": "i", "s": "t", "name": "timer fired",
                    "pid": 1, "tid": tid, "ts": ts, "args": {"late_ns": r.a}}),
                ),
                Kind::BlockOnEnter => push(
                    &mut events,
                    json!({"ph": "i", "s": "t",
                    "name": "block_on enter", "pid": 1, "tid": tid, "ts": ts}),
                ),
                Kind::BlockOnExit => push(
                    &mut events,
                    json!({"ph": "i", "s": "t",
                    "name": "block_on exit", "pid": 1, "tid": tid, "ts": ts}),
                ),
            }
        }
    }
    // Flow ends whose poll never ended in the window were not emitted; drop their starts and
    // steps so every start has exactly one end.
    let finished: HashSet<u64> = events
        .iter()
        .filter_map(|e| e.flow.filter(|&(ph, _)| ph == b'f').map(|(_, id)| id))
        .collect();
    events.retain(|e| match e.flow {
        Some((b's' | b't', id)) => finished.contains(&id),
        _ => true,
    });
    // Per thread in time order (slices were emitted when they ended); names first.
    events.sort_by(|x, y| x.tid.cmp(&y.tid).then(x.ts.total_cmp(&y.ts)));
    let mut out =
        String::with_capacity(events.iter().map(|e| e.json.len() + 1).sum::<usize>() + 64);
    out.push_str(r#"{"traceEvents":["#);
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&e.json);
    }
    out.push_str(r#"],"displayTimeUnit":"ns"}"#);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(capacity: usize, min_age: Duration, max_capacity: usize) -> Option<TraceLimits> {
        Some(TraceLimits {
            capacity,
            min_age,
            max_capacity,
        })
    }

    fn positions(ring: &Ring) -> Vec<u64> {
        ring.read().iter().map(|r| r.a).collect()
    }

    /// A reader racing a writer that laps a tiny ring many times sees only whole records, in
    /// order, and after the writer stops, the last records without a hole: at least
    /// `capacity`, at most `capacity` + one segment.
    #[test]
    fn the_ring_wraps_without_torn_records() {
        let ring = Arc::new(Ring::new(
            "test".into(),
            0,
            16,
            limits(64, Duration::ZERO, 64),
        ));
        const N: u64 = 200_000;
        let writer = {
            let ring = ring.clone();
            std::thread::spawn(move || {
                for i in 1..=N {
                    ring.push(Kind::Wake, (i & 0xFF_FFFF) as u32, i, !i);
                }
            })
        };
        let mut reads = 0;
        while !writer.is_finished() || reads == 0 {
            let recs = ring.read();
            for pair in recs.windows(2) {
                assert!(pair[0].a < pair[1].a, "out of order: {pair:?}");
            }
            for r in &recs {
                assert_eq!(r.kind, Kind::Wake);
                assert_eq!(r.b, !r.a, "torn record {r:?}");
                assert_eq!(u64::from(r.w), r.a & 0xFF_FFFF, "torn record {r:?}");
            }
            reads += 1;
        }
        writer.join().unwrap();
        let last = positions(&ring);
        assert!((64..=80).contains(&last.len()), "{} kept", last.len());
        let from = N + 1 - last.len() as u64;
        assert_eq!(last, (from..=N).collect::<Vec<_>>());
    }

    /// A slot keeps 32 bits of its sequence number: a ring whose positions pass 2^31 (the
    /// number wraps) still returns its records in order, and drops its writer segment's
    /// leftovers of the previous round.
    #[test]
    fn records_past_the_32_bit_sequence_wrap_stay_ordered() {
        let ring = Ring::new("test".into(), 0, 16, limits(32, Duration::ZERO, 32));
        // The kept records straddle position 2^31 − 1, whose sequence number is 2^32 ≡ 0.
        let start = (1u64 << 31) - 70;
        // SAFETY: this thread is the ring's only writer, and nothing else touches it yet.
        unsafe { &mut *ring.writer.get() }.pos = start;
        ring.segments.lock()[0].first_pos.store(start, Relaxed);
        for i in 0..100u64 {
            ring.push(Kind::Wake, 7, start + i, !(start + i));
        }
        let recs = ring.read();
        // 100 written through 16-slot segments, at most 3 segments kept: the last 100 % 16 = 4
        // of the writer's segment and two full ones before it.
        let got: Vec<u64> = recs.iter().map(|r| r.a).collect();
        assert_eq!(got, (start + 100 - 36..start + 100).collect::<Vec<_>>());
        assert!(recs
            .iter()
            .all(|r| r.b == !r.a && r.w == 7 && r.kind == Kind::Wake));
    }

    /// Young records are kept past the size cap, up to the hard limit; once they age, the ring
    /// shrinks back to its capacity.
    #[test]
    fn the_flight_recorder_keeps_young_records_past_the_cap_up_to_the_hard_limit() {
        let ring = Ring::new(
            "test".into(),
            0,
            16,
            limits(64, Duration::from_millis(300), 1024),
        );
        for i in 1..=500 {
            ring.push(Kind::Wake, 0, i, 0);
        }
        // All 500 are younger than 300 ms: all kept, though the cap is 64.
        assert_eq!(positions(&ring), (1..=500).collect::<Vec<_>>());
        for i in 501..=5000 {
            ring.push(Kind::Wake, 0, i, 0);
        }
        // The hard limit: 1024 records (+ the segment being filled), the newest ones.
        let kept = positions(&ring);
        assert!((1024..=1040).contains(&kept.len()), "{} kept", kept.len());
        assert_eq!(*kept.last().unwrap(), 5000);
        assert_eq!(kept, (5001 - kept.len() as u64..=5000).collect::<Vec<_>>());
        // Everything ages past 300 ms; new records then recycle the old segments: what is
        // kept is the young records (all of them) and no more old ones than share a segment.
        std::thread::sleep(Duration::from_millis(350));
        for i in 5001..=5100 {
            ring.push(Kind::Wake, 0, i, 0);
        }
        let kept = positions(&ring);
        assert_eq!(*kept.last().unwrap(), 5100);
        assert!(kept[0] > 5000 - 16, "old records kept: {kept:?}");
        assert_eq!(kept, (kept[0]..=5100).collect::<Vec<_>>());
        assert!(ring.segments.lock().len() <= 100 / 16 + 2);
    }

    /// Without a minimum age the ring is a plain size-capped ring.
    #[test]
    fn without_a_minimum_age_the_ring_keeps_its_capacity() {
        let ring = Ring::new("test".into(), 0, 16, limits(64, Duration::ZERO, 1 << 20));
        for i in 1..=1000 {
            ring.push(Kind::Wake, 0, i, 0);
        }
        let kept = positions(&ring);
        assert!((64..=80).contains(&kept.len()), "{} kept", kept.len());
        assert_eq!(*kept.last().unwrap(), 1000);
    }
}
