//! The scheduler trace: a flight recorder of small fixed records per thread, exported as
//! Chrome trace-event JSON (Perfetto and `chrome://tracing` open it).
//!
//! Every thread that records owns one ring of [`CAPACITY`] records and is its only writer; the
//! ring overwrites its oldest records (flight-recorder mode), so memory is bounded by threads ×
//! capacity × 40 bytes, and an export sees the most recent past of every thread.
//!
//! A slot is a seqlock: the writer stores an odd sequence number, the fields, then the even
//! number that names the record's position; a reader keeps a slot only when it reads the same
//! even number (the right one for that position) before and after the fields. A record being
//! overwritten while it is read is skipped, never returned torn.
//!
//! Recording is off until [`set_tracing`]`(true)`; while off each hook costs one relaxed load.

use std::cell::{Cell, RefCell};
use std::collections::{HashSet, VecDeque};
use std::panic::Location;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{fence, AtomicBool, AtomicU64};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};

/// Records per thread ring.
pub const CAPACITY: usize = 1 << 14;

static TRACING: AtomicBool = AtomicBool::new(false);
static NEXT_FLOW: AtomicU64 = AtomicU64::new(1);

/// Turns the scheduler trace on or off for the whole process.
pub fn set_tracing(on: bool) {
    epoch();
    TRACING.store(on, Relaxed);
}

/// True while the trace records.
#[inline]
pub fn is_tracing() -> bool {
    TRACING.load(Relaxed)
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

pub(crate) fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
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
}

impl Source {
    fn encode(self) -> u32 {
        match self {
            Source::Lifo => 1,
            Source::Local => 2,
            Source::Injector => 3,
            Source::StolenFrom(w) => 4 + (w.min(250) as u32),
        }
    }
    fn describe(code: u32) -> String {
        match code {
            0 => "unknown".into(),
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
    pub(crate) ts: u64,
    pub(crate) kind: Kind,
    pub(crate) w: u32,
    pub(crate) a: u64,
    pub(crate) b: u64,
}

struct Slot {
    seq: AtomicU64,
    ts: AtomicU64,
    head: AtomicU64,
    a: AtomicU64,
    b: AtomicU64,
}

/// One thread's ring.
pub(crate) struct Ring {
    slots: Box<[Slot]>,
    next: AtomicU64,
    name: String,
    tid: i64,
}

impl Ring {
    pub(crate) fn new(name: String, tid: i64, capacity: usize) -> Ring {
        Ring {
            slots: (0..capacity.max(1))
                .map(|_| Slot {
                    seq: AtomicU64::new(0),
                    ts: AtomicU64::new(0),
                    head: AtomicU64::new(0),
                    a: AtomicU64::new(0),
                    b: AtomicU64::new(0),
                })
                .collect(),
            next: AtomicU64::new(0),
            name,
            tid,
        }
    }

    /// Appends a record. Only the owning thread calls this.
    pub(crate) fn push(&self, kind: Kind, w: u32, a: u64, b: u64) {
        let pos = self.next.load(Relaxed);
        let slot = &self.slots[(pos % self.slots.len() as u64) as usize];
        slot.seq.store(2 * pos + 1, Relaxed);
        // Orders the odd marker before the field stores (the seqlock writer's fence).
        fence(Release);
        slot.ts.store(now_ns(), Relaxed);
        slot.head
            .store(u64::from(kind as u8) | (u64::from(w) << 8), Relaxed);
        slot.a.store(a, Relaxed);
        slot.b.store(b, Relaxed);
        slot.seq.store(2 * pos + 2, Release);
        self.next.store(pos + 1, Release);
    }

    /// The records still in the ring, oldest first; slots being overwritten are skipped.
    pub(crate) fn read(&self) -> Vec<Record> {
        let next = self.next.load(Acquire);
        let cap = self.slots.len() as u64;
        let mut out = Vec::with_capacity(next.min(cap) as usize);
        for pos in next.saturating_sub(cap)..next {
            let slot = &self.slots[(pos % cap) as usize];
            let seq = slot.seq.load(Acquire);
            if seq != 2 * pos + 2 {
                continue;
            }
            let ts = slot.ts.load(Relaxed);
            let head = slot.head.load(Relaxed);
            let a = slot.a.load(Relaxed);
            let b = slot.b.load(Relaxed);
            // Orders the field loads before the re-check (the seqlock reader's fence).
            fence(Acquire);
            if slot.seq.load(Relaxed) != seq {
                continue;
            }
            let Some(kind) = Kind::from_u8(head as u8) else {
                continue;
            };
            out.push(Record {
                ts,
                kind,
                w: (head >> 8) as u32,
                a,
                b,
            });
        }
        out
    }
}

fn rings() -> &'static Mutex<Vec<Arc<Ring>>> {
    static RINGS: OnceLock<Mutex<Vec<Arc<Ring>>>> = OnceLock::new();
    RINGS.get_or_init(|| Mutex::new(Vec::new()))
}

thread_local! {
    static RING: RefCell<Option<Arc<Ring>>> = const { RefCell::new(None) };
    /// Flow ids of the wakers a reactor turn collected, in wake order.
    static PENDING_FLOWS: RefCell<VecDeque<u64>> = const { RefCell::new(VecDeque::new()) };
    /// Where the next poll's task came from (set by the worker loop).
    static SOURCE: Cell<(u32, u32)> = const { Cell::new((0, 0)) };
}

/// Rings of threads that have exited are dropped once this many rings exist.
const MAX_RINGS: usize = 256;

fn record(kind: Kind, w: u32, a: u64, b: u64) {
    let _ = RING.try_with(|r| {
        let mut r = r.borrow_mut();
        let ring = r.get_or_insert_with(|| {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("thread").to_string();
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() } as i64;
            let ring = Arc::new(Ring::new(name, tid, CAPACITY));
            let mut all = rings().lock();
            if all.len() >= MAX_RINGS {
                // Only the registry holds the ring of an exited thread.
                all.retain(|r| Arc::strong_count(r) > 1);
            }
            all.push(ring.clone());
            ring
        });
        ring.push(kind, w, a, b);
    });
}

// ----- hooks (each returns at once while tracing is off) -----

pub(crate) fn spawn(id: u64, location: &'static Location<'static>) {
    if is_tracing() {
        record(Kind::Spawn, 0, id, location as *const _ as u64);
    }
}

/// The worker loop took a task from `source`, with `depth` tasks left in its local queue.
pub(crate) fn source(source: Source, depth: usize) {
    if is_tracing() {
        SOURCE.with(|s| s.set((source.encode(), depth.min(0xFFFF) as u32)));
    }
}

pub(crate) fn poll_start(id: u64, flow: u64) {
    if is_tracing() {
        let (src, depth) = SOURCE.with(|s| s.replace((0, 0)));
        record(Kind::PollStart, src | (depth << 8), id, flow);
    }
}

pub(crate) fn poll_end(id: u64, ready: bool) {
    if is_tracing() {
        record(Kind::PollEnd, u32::from(ready), id, 0);
    }
}

/// Records a wake; returns the flow id it continues (0: none).
pub(crate) fn wake(id: u64, source_index: usize, from_reactor: bool) -> u64 {
    let flow = if from_reactor {
        PENDING_FLOWS
            .with(|p| p.borrow_mut().pop_front())
            .unwrap_or(0)
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

pub(crate) fn park(timeout: Option<Duration>) {
    if is_tracing() {
        let ns = timeout.map_or(0, |t| t.as_nanos().min(u64::MAX as u128) as u64);
        record(Kind::Park, 0, ns, 0);
    }
}

pub(crate) fn unpark() {
    if is_tracing() {
        record(Kind::Unpark, 0, 0, 0);
    }
}

/// A socket event that collected `wakers` wakers (they are woken next, in order).
pub(crate) fn reactor_event(token: usize, readiness: usize, wakers: usize) {
    if !is_tracing() {
        return;
    }
    let flow = NEXT_FLOW.fetch_add(1, Relaxed);
    record(Kind::ReactorEvent, readiness as u32, token as u64, flow);
    PENDING_FLOWS.with(|p| p.borrow_mut().extend(std::iter::repeat_n(flow, wakers)));
}

/// The reactor turn's wake-ups are done: forget flows whose wakers were not tasks.
pub(crate) fn end_reactor_wakes() {
    let _ = PENDING_FLOWS.try_with(|p| p.borrow_mut().clear());
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

/// The recorded trace of the last `last` (everything when `None`) as Chrome trace-event JSON:
/// one track per thread, polls as slices, local queue depth as a counter, flow arrows from a
/// socket event to the wake it caused to the poll that followed.
pub fn trace_json(last: Option<Duration>) -> String {
    trace_value(last).to_string()
}

pub(crate) fn trace_value(last: Option<Duration>) -> Value {
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
                Kind::ReactorEvent => {
                    starts.insert(r.b);
                }
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
        events.push(
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
                    events.push(
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
                    events.push(json!({"ph": "X", "name": format!("poll task {}", r.a),
                        "cat": "poll", "pid": 1, "tid": tid, "ts": us(start.ts),
                        "dur": us(r.ts - start.ts),
                        "args": {"task": r.a, "ready": r.w == 1,
                                 "source": Source::describe(start.w & 0xFF)}}));
                    let flow = start.b;
                    if flow != 0 && starts.contains(&flow) && flow_ended.insert(flow) {
                        events.push(json!({"ph": "f", "bp": "e", "name": "wake", "cat": "flow",
                            "id": flow, "pid": 1, "tid": tid, "ts": us(start.ts)}));
                    }
                }
                Kind::Spawn => {
                    // SAFETY: only `&'static Location` pointers are recorded.
                    let loc = unsafe { &*(r.b as *const Location<'static>) };
                    events.push(
                        json!({"ph": "i", "s": "t", "name": "spawn", "pid": 1, "tid": tid,
                        "ts": ts, "args": {"task": r.a,
                                           "at": format!("{}:{}", loc.file(), loc.line())}}),
                    );
                }
                Kind::Wake => {
                    let source = super::WakeSource::ALL
                        .get(r.w as usize)
                        .map_or("?", |s| s.name());
                    events.push(
                        json!({"ph": "i", "s": "t", "name": "wake", "pid": 1, "tid": tid,
                        "ts": ts, "args": {"task": r.a, "source": source}}),
                    );
                    if r.b != 0 && starts.contains(&r.b) && ends.contains(&r.b) {
                        events.push(json!({"ph": "t", "name": "wake", "cat": "flow",
                            "id": r.b, "pid": 1, "tid": tid, "ts": ts}));
                    }
                }
                Kind::ReactorEvent => {
                    events.push(
                        json!({"ph": "i", "s": "t", "name": "socket event", "pid": 1,
                        "tid": tid, "ts": ts, "args": {"token": r.a, "readiness": r.w}}),
                    );
                    if ends.contains(&r.b) {
                        events.push(json!({"ph": "s", "name": "wake", "cat": "flow",
                            "id": r.b, "pid": 1, "tid": tid, "ts": ts}));
                    }
                }
                Kind::Steal => events.push(json!({"ph": "i", "s": "t", "name": "steal",
                    "pid": 1, "tid": tid, "ts": ts,
                    "args": {"from": r.a, "to": r.w, "tasks": r.b}})),
                Kind::Park => events.push(json!({"ph": "i", "s": "t", "name": "park",
                    "pid": 1, "tid": tid, "ts": ts, "args": {"timeout_ns": r.a}})),
                Kind::Unpark => events.push(json!({"ph": "i", "s": "t", "name": "unpark",
                    "pid": 1, "tid": tid, "ts": ts})),
                Kind::TimerFire => events.push(json!({"ph": "i", "s": "t", "name": "timer fired",
                    "pid": 1, "tid": tid, "ts": ts, "args": {"late_ns": r.a}})),
                Kind::BlockOnEnter => events.push(json!({"ph": "i", "s": "t",
                    "name": "block_on enter", "pid": 1, "tid": tid, "ts": ts})),
                Kind::BlockOnExit => events.push(json!({"ph": "i", "s": "t",
                    "name": "block_on exit", "pid": 1, "tid": tid, "ts": ts})),
            }
        }
    }
    // Flow ends whose poll never ended in the window were not emitted; drop their starts and
    // steps so every start has exactly one end.
    let finished: HashSet<u64> = events
        .iter()
        .filter(|e| e["ph"] == "f")
        .filter_map(|e| e["id"].as_u64())
        .collect();
    events.retain(|e| {
        !(e["ph"] == "s" || e["ph"] == "t")
            || e["id"].as_u64().is_some_and(|id| finished.contains(&id))
    });
    // Per thread in time order (slices were emitted when they ended); names first.
    events.sort_by(|x, y| {
        let key = |e: &Value| (e["tid"].as_u64(), e["ts"].as_f64().unwrap_or(f64::MIN));
        let (kx, ky) = (key(x), key(y));
        kx.0.cmp(&ky.0).then(kx.1.total_cmp(&ky.1))
    });
    json!({"traceEvents": events, "displayTimeUnit": "ns"})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader racing a writer that laps a tiny ring many times sees only whole records, in
    /// order, and after the writer stops, exactly the last `capacity` records.
    #[test]
    fn the_ring_wraps_without_torn_records() {
        let ring = Arc::new(Ring::new("test".into(), 0, 64));
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
        let last: Vec<u64> = ring.read().iter().map(|r| r.a).collect();
        assert_eq!(last, (N - 63..=N).collect::<Vec<_>>());
    }
}
