//! Timers: [`sleep`], [`sleep_until`], [`timeout`] and [`interval`].
//!
//! # Why buckets of exact deadlines
//!
//! Each worker keeps its timers in *buckets* (the deadline in units of [`BUCKET_NS`], about
//! 131 µs), each holding the entries due in it with their exact deadlines: a ring of the next
//! 512 buckets ([`Wheel`]; an insert is an index) and an ordered map for later ones. A hashed
//! wheel rounds every deadline to its slot width (tokio's wheel has 1 ms slots, one reason its
//! timers fire late); here the bucket only decides *where* an entry waits, the entry keeps its
//! exact deadline, and the earliest deadline of each bucket is kept, so a worker that sleeps
//! until it (with a nanosecond timeout, see `reactor.rs`) fires a timer within microseconds.
//!
//! Why not a binary heap (what this module used until issue 16)? On a timer-heavy load a worker
//! sleeps between firings, and its caches go cold meanwhile; a heap pop walks ~2·log2(n) items
//! spread over the array, most of them cache misses, for every timer fired. Measured on 1,000
//! tasks sleeping 1–50 ms in a loop, heap pops were a quarter of the runtime's CPU. A bucket
//! fires as one contiguous vector, taken out under the lock and woken outside it.
//!
//! Cancelling (dropping a `Sleep`) only flips a flag in its entry; the dead entry leaves when its
//! bucket fires, and the queue is compacted when dead entries outnumber live ones, so memory stays
//! proportional to live timers.
//!
//! A timer never fires early: an entry is marked fired only once `Instant::now() >= deadline`;
//! a `Sleep` completes when its entry has fired, or (before it registers) when the clock says so.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::context;
use super::driver::Driver;

const PENDING: u8 = 0;
const FIRED: u8 = 1;
const CANCELLED: u8 = 2;
/// The queue holding the entry was torn down (runtime shutdown) before the deadline: the `Sleep`
/// must register again — which fails loudly if no runtime is left — instead of waiting forever.
const ORPHANED: u8 = 3;

/// One registered deadline, shared by the `Sleep` and the heap.
pub(crate) struct TimerEntry {
    state: AtomicU8,
    waker: Mutex<Option<Waker>>,
}

/// Width of a bucket: 2^17 ns, about 131 µs. Narrow enough that the first bucket rarely
/// holds an entry that is not yet due (those are scanned again at the next firing), wide
/// enough that a coalesced wake-up (`COALESCE`, 500 µs) takes a few buckets, not one per timer.
const BUCKET_SHIFT: u32 = 17;
const BUCKET_NS: u64 = 1 << BUCKET_SHIFT;
/// How many emptied bucket vectors a queue keeps for reuse, and the largest it keeps.
const SPARE_VECS: usize = 32;
const SPARE_MAX_CAPACITY: usize = 1024;

/// A first poll reads the clock to see whether its deadline has passed only when the deadline
/// is this close to the driver's last turn stamp (see `Sleep::poll`).
const READ_CLOCK_WITHIN: Duration = Duration::from_millis(2);

/// One registered deadline in a bucket: nanoseconds since the queue's base, and the entry.
struct Item {
    at: u64,
    entry: Arc<TimerEntry>,
}

/// The entries of one bucket and the earliest deadline among them.
struct Bucket {
    earliest: u64,
    items: Vec<Item>,
}

impl Bucket {
    /// After entries left: makes `earliest` exact again. False when none is left (the caller
    /// removes the bucket).
    fn settle(&mut self) -> bool {
        match self.items.iter().map(|i| i.at).min() {
            Some(at) => {
                self.earliest = at;
                true
            }
            None => false,
        }
    }
}

/// How many buckets the ring of a [`Wheel`] holds: 512 × 131 µs, about 67 ms ahead.
const SLOTS: usize = 512;
const SLOT_WORDS: usize = SLOTS / 64;

/// The buckets of a queue by number, in order: a ring of `SLOTS` for buckets `cursor ..
/// cursor + SLOTS` (where nearly every timer of a busy worker lands — the sleeps, delays and
/// timeouts of the next 67 ms — so an insert is an index, not a walk down a tree whose nodes a
/// worker that slept has to fetch from memory again), and an ordered map for later ones,
/// moved into the ring as the cursor reaches them.
///
/// Invariants: a ring slot `i` holds at most one bucket, numbered `k ≡ i (mod SLOTS)` with
/// `cursor <= k < cursor + SLOTS`, and `occupied` has bit `i` set exactly then; every bucket in
/// `later` is numbered `cursor + SLOTS` or more. So the first bucket is the first occupied slot
/// from the cursor on (wrapping), else `later`'s first. No bucket is empty.
struct Wheel {
    ring: Box<[Option<(u64, Bucket)>]>,
    occupied: [u64; SLOT_WORDS],
    cursor: u64,
    later: BTreeMap<u64, Bucket>,
}

impl Wheel {
    fn new() -> Wheel {
        Wheel {
            ring: (0..SLOTS).map(|_| None).collect(),
            occupied: [0; SLOT_WORDS],
            cursor: 0,
            later: BTreeMap::new(),
        }
    }

    fn slot(key: u64) -> usize {
        (key as usize) & (SLOTS - 1)
    }

    fn mark(&mut self, i: usize, on: bool) {
        let bit = 1u64 << (i % 64);
        if on {
            self.occupied[i / 64] |= bit;
        } else {
            self.occupied[i / 64] &= !bit;
        }
    }

    /// The first occupied ring slot from the cursor's on, wrapping around.
    fn first_slot(&self) -> Option<usize> {
        let start = Self::slot(self.cursor);
        let (w0, b0) = (start / 64, start % 64);
        let here = self.occupied[w0] & (!0u64 << b0);
        if here != 0 {
            return Some(w0 * 64 + here.trailing_zeros() as usize);
        }
        for step in 1..=SLOT_WORDS {
            let w = (w0 + step) % SLOT_WORDS;
            let mut bits = self.occupied[w];
            if step == SLOT_WORDS {
                // Back at the first word: only the slots before the cursor's.
                bits &= !(!0u64 << b0);
            }
            if bits != 0 {
                return Some(w * 64 + bits.trailing_zeros() as usize);
            }
        }
        None
    }

    /// The first bucket and its number.
    fn first(&self) -> Option<(u64, &Bucket)> {
        match self.first_slot() {
            Some(i) => self.ring[i].as_ref().map(|(k, b)| (*k, b)),
            None => self.later.iter().next().map(|(k, b)| (*k, b)),
        }
    }

    fn first_mut(&mut self) -> Option<(u64, &mut Bucket)> {
        match self.first_slot() {
            Some(i) => self.ring[i].as_mut().map(|(k, b)| (*k, b)),
            None => self.later.iter_mut().next().map(|(k, b)| (*k, b)),
        }
    }

    /// Bucket `key` (a number before the cursor counts as the cursor's: due as soon), made by
    /// `make` if there is none.
    fn get_or_insert(&mut self, key: u64, make: impl FnOnce() -> Bucket) -> &mut Bucket {
        let key = key.max(self.cursor);
        if key - self.cursor >= SLOTS as u64 {
            return self.later.entry(key).or_insert_with(make);
        }
        let i = Self::slot(key);
        if self.ring[i].is_none() {
            self.ring[i] = Some((key, make()));
            self.mark(i, true);
        }
        let (k, bucket) = self.ring[i].as_mut().expect("just filled");
        debug_assert_eq!(*k, key, "two buckets in one ring slot");
        bucket
    }

    /// Takes bucket `key` (a number `first`/`first_mut` returned) out.
    fn remove(&mut self, key: u64) -> Bucket {
        let i = Self::slot(key);
        if matches!(&self.ring[i], Some((k, _)) if *k == key) {
            self.mark(i, false);
            return self.ring[i].take().expect("checked").1;
        }
        self.later
            .remove(&key)
            .expect("removing a bucket that is not there")
    }

    /// Moves the cursor to bucket `to`; the caller has taken every bucket numbered before it.
    /// Buckets of `later` that now fall inside the ring move into it.
    fn advance(&mut self, to: u64) {
        if to <= self.cursor {
            return;
        }
        debug_assert!(self.first().is_none_or(|(k, _)| k >= to));
        self.cursor = to;
        while let Some(entry) = self.later.first_entry() {
            if *entry.key() - self.cursor >= SLOTS as u64 {
                break;
            }
            let (key, bucket) = entry.remove_entry();
            let i = Self::slot(key);
            debug_assert!(
                self.ring[i].is_none(),
                "a later bucket lands on a live slot"
            );
            self.ring[i] = Some((key, bucket));
            self.mark(i, true);
        }
    }

    /// Every bucket, in no particular order.
    fn buckets(&self) -> impl Iterator<Item = &Bucket> {
        self.ring
            .iter()
            .flatten()
            .map(|(_, b)| b)
            .chain(self.later.values())
    }

    /// Keeps the buckets for which `keep` returns true.
    fn retain(&mut self, mut keep: impl FnMut(&mut Bucket) -> bool) {
        for i in 0..SLOTS {
            if let Some((_, bucket)) = &mut self.ring[i] {
                if !keep(bucket) {
                    self.ring[i] = None;
                    self.mark(i, false);
                }
            }
        }
        self.later.retain(|_, b| keep(b));
    }

    fn into_buckets(self) -> Vec<Bucket> {
        let mut all: Vec<Bucket> = self
            .ring
            .into_vec()
            .into_iter()
            .flatten()
            .map(|(_, b)| b)
            .collect();
        all.extend(self.later.into_values());
        all
    }
}

/// A worker's timers. Locked by its owner when firing and by whoever registers a timer (the
/// owner itself, or rarely a thread outside the runtime).
pub(crate) struct TimerQueue {
    inner: Mutex<Buckets>,
    /// `Buckets::len` and the earliest deadline held (`u64::MAX`: none), published under the
    /// lock for readers that must not take it: a worker with no timer due — every sync-bridge
    /// wake-up, most driver turns — checks these two words instead of locking the queue two or
    /// three times per turn. The earliest is a lower bound: entries only leave under the lock,
    /// which publishes it again.
    len_pub: AtomicUsize,
    earliest_pub: AtomicU64,
    /// Deadlines are kept as nanoseconds since this instant (a `u64` covers 584 years).
    base: Instant,
    /// How late timers fired (feature `observatory`, while timing is on).
    #[cfg(feature = "observatory")]
    pub(crate) lateness: super::observe::timing::Histogram,
}

struct Buckets {
    wheel: Wheel,
    /// Emptied bucket vectors kept for new buckets (at most `SPARE_VECS`): a bucket fills up
    /// one push at a time, and growing a fresh vector each time — three or four reallocations
    /// for the ~20 timers of a timer-heavy load's bucket, then a free — was a few per cent of
    /// that load's CPU.
    spare: Vec<Vec<Item>>,
    /// Entries in `wheel`, cancelled ones not yet dropped included.
    len: usize,
    /// `len` after the last compaction; the next one happens at twice that.
    compact_at: usize,
    /// Set by `orphan_all` (shutdown) under this lock; `insert` refuses from then on, so no
    /// entry can land in a queue nobody will ever fire.
    closed: bool,
}

impl TimerQueue {
    pub(crate) fn new() -> TimerQueue {
        TimerQueue {
            inner: Mutex::new(Buckets {
                wheel: Wheel::new(),
                spare: Vec::new(),
                len: 0,
                compact_at: 1024,
                closed: false,
            }),
            len_pub: AtomicUsize::new(0),
            earliest_pub: AtomicU64::new(u64::MAX),
            base: Instant::now(),
            #[cfg(feature = "observatory")]
            lateness: Default::default(),
        }
    }

    /// Publishes `q`'s length and, if known, its earliest deadline (else looks it up).
    fn publish(&self, q: &Buckets, earliest: Option<u64>) {
        self.len_pub.store(q.len, Relaxed);
        let earliest =
            earliest.unwrap_or_else(|| q.wheel.first().map_or(u64::MAX, |(_, b)| b.earliest));
        self.earliest_pub.store(earliest, Release);
    }

    /// `deadline` as nanoseconds since `base` (a deadline before `base` counts as `base`: it is
    /// due at once either way).
    fn to_ns(&self, deadline: Instant) -> u64 {
        let ns = deadline.saturating_duration_since(self.base).as_nanos();
        ns.min(u64::MAX as u128) as u64
    }

    fn to_instant(&self, ns: u64) -> Instant {
        self.base + Duration::from_nanos(ns)
    }

    /// Registers a deadline. Returns whether it is now the earliest one, or `Err` once the
    /// queue was closed by shutdown.
    fn insert(&self, deadline: Instant, entry: Arc<TimerEntry>) -> Result<bool, Closed> {
        let at = self.to_ns(deadline);
        let mut q = self.inner.lock();
        if q.closed {
            return Err(Closed);
        }
        if q.len >= q.compact_at {
            q.compact();
            self.publish(&q, None);
        }
        let earliest = q.wheel.first().is_none_or(|(_, b)| at < b.earliest);
        let q = &mut *q;
        let spare = &mut q.spare;
        let bucket = q.wheel.get_or_insert(at >> BUCKET_SHIFT, || Bucket {
            earliest: at,
            items: spare.pop().unwrap_or_default(),
        });
        bucket.earliest = bucket.earliest.min(at);
        bucket.items.push(Item { at, entry });
        q.len += 1;
        self.len_pub.store(q.len, Relaxed);
        if at < self.earliest_pub.load(Relaxed) {
            self.earliest_pub.store(at, Release);
        }
        Ok(earliest)
    }

    /// Fires every timer whose deadline has passed. Returns how many tasks were woken.
    pub(crate) fn fire_due(&self, now: Instant) -> usize {
        let now_ns = self.to_ns(now);
        if self.earliest_pub.load(Acquire) > now_ns {
            return 0;
        }
        let mut fired = 0;
        let mut spent = None;
        while let Some(mut due) = self.take_due(now_ns, spent.take()) {
            fired += self.fire_items(&mut due, now_ns);
            spent = Some(due);
        }
        if let Some(v) = spent {
            self.inner.lock().recycle(v);
        }
        fired
    }

    /// Takes the due entries of the first bucket, if any are due: the whole bucket when all its
    /// deadlines have passed (the common case: it lies before `now`'s bucket), else the due
    /// ones, split off under the lock. The caller fires them outside the lock. `spent`: the
    /// vector the caller emptied last, kept for reuse under the same lock.
    fn take_due(&self, now_ns: u64, spent: Option<Vec<Item>>) -> Option<Vec<Item>> {
        let mut q = self.inner.lock();
        if let Some(v) = spent {
            q.recycle(v);
        }
        let q = &mut *q;
        let now_key = now_ns >> BUCKET_SHIFT;
        let Some((key, first)) = q.wheel.first_mut() else {
            q.wheel.advance(now_key);
            self.publish(q, Some(u64::MAX));
            return None;
        };
        if first.earliest > now_ns {
            // Nothing more is due: every bucket before `now`'s has been taken.
            let earliest = first.earliest;
            q.wheel.advance(now_key.min(key));
            self.publish(q, Some(earliest));
            return None;
        }
        // Every deadline in a bucket whose last nanosecond is not after `now` has passed.
        let due = if (key << BUCKET_SHIFT) | (BUCKET_NS - 1) <= now_ns {
            q.wheel.remove(key).items
        } else {
            let mut due = q.spare.pop().unwrap_or_default();
            due.extend(first.items.extract_if(.., |i| i.at <= now_ns));
            if !first.settle() {
                let emptied = q.wheel.remove(key).items;
                q.recycle(emptied);
            }
            due
        };
        q.len -= due.len();
        self.publish(q, None);
        Some(due)
    }

    /// Fires taken-out items whose deadlines have passed (all of them): marks each entry fired
    /// unless it was cancelled, and wakes its waker.
    fn fire_items(&self, items: &mut Vec<Item>, now_ns: u64) -> usize {
        #[cfg(feature = "observatory")]
        let _source = super::observe::WakeScope::enter(super::observe::WakeSource::Timer);
        let mut n = 0;
        for item in items.drain(..) {
            debug_assert!(item.at <= now_ns);
            #[cfg(feature = "observatory")]
            super::observe::timing::timer_fired(
                &self.lateness,
                Duration::from_nanos(now_ns - item.at),
            );
            if item
                .entry
                .state
                .compare_exchange(PENDING, FIRED, AcqRel, Acquire)
                .is_ok()
            {
                let waker = item.entry.waker.lock().take();
                if let Some(w) = waker {
                    w.wake();
                    n += 1;
                }
            }
        }
        n
    }

    /// Calls `f` with the deadline and waker of every pending entry (feature `observatory`: the
    /// "waits on" scan; queue lock, then each entry's waker lock).
    #[cfg(feature = "observatory")]
    pub(crate) fn for_each_waiter(&self, mut f: impl FnMut(Instant, &Waker)) {
        let q = self.inner.lock();
        for item in q.wheel.buckets().flat_map(|b| b.items.iter()) {
            if item.entry.state.load(Acquire) == PENDING {
                if let Some(w) = &*item.entry.waker.lock() {
                    f(self.to_instant(item.at), w);
                }
            }
        }
    }

    /// The earliest pending deadline. Cancelled entries in the first bucket are dropped on
    /// the way (a worker would otherwise wake for a timeout that was cancelled long ago).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if self.len_pub.load(Acquire) == 0 {
            return None;
        }
        let mut q = self.inner.lock();
        loop {
            let (key, bucket) = q.wheel.first_mut()?;
            let before = bucket.items.len();
            bucket
                .items
                .retain(|i| i.entry.state.load(Acquire) != CANCELLED);
            let dropped = before - bucket.items.len();
            let alive = bucket.settle();
            let earliest = bucket.earliest;
            if !alive {
                q.wheel.remove(key);
            }
            q.len -= dropped;
            if alive {
                self.publish(&q, Some(earliest));
                return Some(self.to_instant(earliest));
            }
            if q.len == 0 {
                self.publish(&q, Some(u64::MAX));
                return None;
            }
        }
    }

    /// How many entries the queue holds (cancelled ones not yet dropped included): a cheap hint
    /// of how busy this worker's timers are.
    pub(crate) fn len_hint(&self) -> usize {
        self.len_pub.load(Relaxed)
    }

    /// Runtime shutdown: drops every entry and wakes its sleeper, marked orphaned, so a thread
    /// blocked on a timer of this runtime is told (see `Sleep::poll`) rather than left hanging.
    /// Tasks of the runtime are being cancelled anyway; their wake-ups are discarded.
    pub(crate) fn orphan_all(&self) {
        let buckets = {
            let mut q = self.inner.lock();
            q.closed = true;
            q.len = 0;
            self.publish(&q, Some(u64::MAX));
            std::mem::replace(&mut q.wheel, Wheel::new()).into_buckets()
        };
        for item in buckets.into_iter().flat_map(|b| b.items) {
            if item
                .entry
                .state
                .compare_exchange(PENDING, ORPHANED, AcqRel, Acquire)
                .is_ok()
            {
                if let Some(w) = item.entry.waker.lock().take() {
                    w.wake();
                }
            }
        }
    }
}

impl Buckets {
    /// Keeps an emptied vector for the next new bucket (a few, and not huge ones).
    fn recycle(&mut self, mut v: Vec<Item>) {
        v.clear();
        if self.spare.len() < SPARE_VECS && v.capacity() <= SPARE_MAX_CAPACITY {
            self.spare.push(v);
        }
    }

    /// Drops cancelled entries (and buckets left empty), keeping each bucket's earliest exact.
    fn compact(&mut self) {
        self.wheel.retain(|b| {
            b.items.retain(|i| i.entry.state.load(Acquire) == PENDING);
            b.settle()
        });
        self.len = self.wheel.buckets().map(|b| b.items.len()).sum();
        self.compact_at = (self.len * 2).max(1024);
    }
}

/// The queue was closed by runtime shutdown.
#[derive(Debug)]
pub(crate) struct Closed;

/// A future that completes at a deadline. Created by [`sleep`] and [`sleep_until`].
///
/// The timer is registered with the runtime on first poll (with the worker polling it), so
/// creating a `Sleep` outside a runtime is fine as long as it is polled inside one.
///
/// Once registered, a `Sleep` holds its **driver** — the worker reactor + timer heap its entry
/// went into — and goes back to that driver when it is [reset](Sleep::reset) (an
/// [`Interval`] does so every tick), without asking the thread-local context again: the
/// context only answers "which driver?" for a sleep's first registration, as `Handle::current`
/// does for tokio's. Its entry fires on that driver whichever worker polls the task later.
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    deadline: Instant,
    entry: Option<Arc<TimerEntry>>,
    driver: Option<Arc<Driver>>,
}

impl Sleep {
    /// The instant this sleep completes at.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// True once the deadline has passed.
    pub fn is_elapsed(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Moves the deadline; the sleep becomes pending again if it is in the future.
    pub fn reset(&mut self, deadline: Instant) {
        self.cancel();
        self.deadline = deadline;
    }

    fn cancel(&mut self) {
        if let Some(entry) = self.entry.take() {
            let _ = entry
                .state
                .compare_exchange(PENDING, CANCELLED, AcqRel, Acquire);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // A registered sleep asks its entry, not the clock: the entry is fired only once the
        // clock has passed the deadline, and a pending one will be (by its driver's next
        // turn), so this needs no clock read — one `clock_gettime` less per timer, which on a
        // VM's paravirtual clock is not free.
        let mut orphaned = false;
        if let Some(entry) = &self.entry {
            let mut slot = entry.waker.lock();
            match entry.state.load(Acquire) {
                FIRED => return Poll::Ready(()),
                // Its queue is gone: check the clock and register again below.
                ORPHANED => orphaned = true,
                _ => {
                    match &*slot {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        _ => *slot = Some(cx.waker().clone()),
                    }
                    return Poll::Pending;
                }
            }
        }
        let deadline = self.deadline;
        let driver = match self.driver.take() {
            Some(driver) if !orphaned => Some(driver),
            // An orphaned entry means its driver shut down: ask the context again.
            _ => match context::timer_driver() {
                Some((driver, false)) => Some(driver),
                _ => None,
            },
        };
        // Already due? The driver's last turn stamp is a clock reading from the past, so a
        // deadline at or before it has passed; a deadline well after it (a sleep of more than
        // `READ_CLOCK_WITHIN`, as nearly every one) is registered without reading the clock —
        // should it have passed meanwhile after all, its entry is due and the driver's next turn
        // fires it. Only deadlines near the stamp read the clock, so a zero or tiny timeout
        // still completes in its first poll.
        let stamp = driver.as_ref().map(|d| d.turn_stamp());
        let due = match stamp {
            Some(stamp) if stamp >= deadline => true,
            Some(stamp) if deadline - stamp > READ_CLOCK_WITHIN => false,
            _ => Instant::now() >= deadline,
        };
        if due {
            // Keep the driver: a reset sleep (an `Interval`'s next tick) goes back to it, even
            // when polled from a thread outside the runtime.
            self.driver = driver;
            self.cancel();
            return Poll::Ready(());
        }
        // Outside a runtime, or on one shut down: a clear panic (`current_timer_driver`).
        let driver = driver.unwrap_or_else(current_timer_driver);
        let entry = Arc::new(TimerEntry {
            state: AtomicU8::new(PENDING),
            waker: Mutex::new(Some(cx.waker().clone())),
        });
        insert_timer(&driver, deadline, entry.clone());
        self.driver = Some(driver);
        self.entry = Some(entry);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// The driver for a sleep's first registration: the polling worker's own, or — from a thread
/// outside the runtime — some worker's.
fn current_timer_driver() -> Arc<Driver> {
    match context::timer_driver() {
        Some((driver, false)) => driver,
        Some((_, true)) => panic_shut_down(),
        None => panic!(
            "a scraipe timer (sleep/timeout/interval) was polled outside a scraipe runtime; \
             run it with Runtime::block_on, spawn it, or call Handle::enter first"
        ),
    }
}

/// Puts a timer in `driver`'s heap. A thread other than the driver's owner wakes the driver
/// when the new deadline is its earliest, so a sleeping owner re-arms its timerfd (the owner
/// re-arms it itself before it next sleeps).
fn insert_timer(driver: &Driver, deadline: Instant, entry: Arc<TimerEntry>) {
    match driver.timers.insert(deadline, entry) {
        Ok(earliest) => {
            if !context::registered_with(&driver.io) && earliest {
                driver.io.unpark();
            }
        }
        Err(Closed) => panic_shut_down(),
    }
}

fn panic_shut_down() -> ! {
    panic!(
        "a scraipe timer (sleep/timeout/interval) was polled on a runtime that has shut down; \
         it could never fire"
    )
}

/// Waits until `duration` has elapsed.
///
/// ```
/// use std::time::{Duration, Instant};
/// let rt = scraipe::rt::Runtime::new().unwrap();
/// let start = Instant::now();
/// rt.block_on(scraipe::rt::sleep(Duration::from_millis(5)));
/// assert!(start.elapsed() >= Duration::from_millis(5));
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    let deadline = Instant::now()
        .checked_add(duration)
        .unwrap_or_else(far_future);
    sleep_until(deadline)
}

/// Waits until `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        entry: None,
        driver: None,
    }
}

/// About 30 years from now: "never" for a deadline that overflowed.
pub(crate) fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}

/// The error of a [`timeout`] whose deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(_: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, "deadline has elapsed")
    }
}

/// A future with a deadline: see [`timeout`].
#[must_use = "futures do nothing unless polled"]
pub struct Timeout<F> {
    future: F,
    sleep: Sleep,
}

/// Runs `future`, giving up with [`Elapsed`] if it has not finished within `duration`.
/// The future is polled first, so one that is already ready wins even with a zero duration.
///
/// ```
/// use std::time::Duration;
/// use scraipe::rt::{sleep, timeout, Runtime};
/// let rt = Runtime::new().unwrap();
/// let slow = rt.block_on(timeout(Duration::from_millis(5), sleep(Duration::from_secs(10))));
/// assert!(slow.is_err());
/// let fast = rt.block_on(timeout(Duration::from_secs(10), async { 1 }));
/// assert_eq!(fast, Ok(1));
/// ```
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep(duration),
    }
}

/// Like [`timeout`] with an absolute deadline.
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep_until(deadline),
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: structural pinning: `future` is never moved out of `self`; `sleep` is Unpin.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        if let Poll::Ready(out) = future.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        match Pin::new(&mut this.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed(()))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Ticks at a fixed period. Created by [`interval`].
///
/// The first tick completes immediately. When ticks were missed (the task was busy for longer
/// than a period), the next tick fires at once and the schedule continues from the next multiple
/// of the period after now: missed ticks are skipped, not replayed in a burst.
#[derive(Debug)]
pub struct Interval {
    period: Duration,
    next: Instant,
    sleep: Option<Sleep>,
}

/// Creates an [`Interval`] with the given period, first tick now.
///
/// # Panics
/// If `period` is zero.
///
/// ```
/// use std::time::Duration;
/// let rt = scraipe::rt::Runtime::new().unwrap();
/// rt.block_on(async {
///     let mut every = scraipe::rt::interval(Duration::from_millis(2));
///     for _ in 0..3 {
///         every.tick().await;
///     }
/// });
/// ```
pub fn interval(period: Duration) -> Interval {
    assert!(period > Duration::ZERO, "interval period must be non-zero");
    Interval {
        period,
        next: Instant::now(),
        sleep: None,
    }
}

impl Interval {
    /// Waits for the next tick and returns its scheduled instant.
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Poll form of [`tick`](Interval::tick).
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        let next = self.next;
        let sleep = self.sleep.get_or_insert_with(|| sleep_until(next));
        if sleep.deadline() != next {
            sleep.reset(next);
        }
        if Pin::new(sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        let now = Instant::now();
        let mut following = next + self.period;
        if following <= now {
            let behind = now.duration_since(next).as_nanos() / self.period.as_nanos();
            following = next + self.period * (behind as u32 + 1);
        }
        self.next = following;
        Poll::Ready(next)
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::atomic::Ordering::Relaxed;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Relaxed);
        }
    }

    fn entry(count: &Arc<Count>) -> Arc<TimerEntry> {
        Arc::new(TimerEntry {
            state: AtomicU8::new(PENDING),
            waker: Mutex::new(Some(Waker::from(count.clone()))),
        })
    }

    /// Deadlines in one bucket, across buckets and far apart fire exactly when `now` passes
    /// them — never before — and `next_deadline` is always the exact earliest pending one.
    #[test]
    fn fires_exactly_the_due_entries_and_knows_the_exact_next_deadline() {
        let q = TimerQueue::new();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let base = q.base + Duration::from_millis(10);
        // Offsets in ns: three inside one bucket, one in the next, one far away.
        let offsets = [5_000u64, 1_000, 90_000, BUCKET_NS + 7, 50_000_000];
        let mut entries = Vec::new();
        for (i, off) in offsets.iter().enumerate() {
            let e = entry(&count);
            let earliest = q
                .insert(base + Duration::from_nanos(*off), e.clone())
                .unwrap();
            assert_eq!(earliest, i == 0 || *off == 1_000, "offset {off}");
            entries.push(e);
        }
        assert_eq!(q.len_hint(), 5);
        assert_eq!(q.next_deadline(), Some(base + Duration::from_nanos(1_000)));
        // Before the first deadline: nothing.
        assert_eq!(q.fire_due(base + Duration::from_nanos(999)), 0);
        // A partly due bucket is split: 1,000 and 5,000 fire, 90,000 stays.
        assert_eq!(q.fire_due(base + Duration::from_nanos(5_000)), 2);
        assert_eq!(count.0.load(Relaxed), 2);
        assert_eq!(q.next_deadline(), Some(base + Duration::from_nanos(90_000)));
        assert_eq!(q.len_hint(), 3);
        // Past the second bucket: 90,000 and BUCKET_NS + 7.
        assert_eq!(q.fire_due(base + Duration::from_nanos(2 * BUCKET_NS)), 2);
        assert_eq!(
            q.next_deadline(),
            Some(base + Duration::from_nanos(50_000_000))
        );
        for (e, fired) in entries.iter().zip([true, true, true, true, false]) {
            assert_eq!(e.state.load(Acquire) == FIRED, fired);
        }
        assert_eq!(q.fire_due(base + Duration::from_secs(1)), 1);
        assert_eq!((q.len_hint(), q.next_deadline()), (0, None));
    }

    /// Cancelled entries never wake anyone, are skipped by `next_deadline` (a worker does not
    /// wake for a timeout cancelled long ago), and compaction drops them so memory follows the
    /// live timers.
    #[test]
    fn cancelled_entries_are_skipped_and_compacted_away() {
        let q = TimerQueue::new();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let base = q.base + Duration::from_millis(1);
        let cancelled = entry(&count);
        q.insert(base, cancelled.clone()).unwrap();
        let live = entry(&count);
        q.insert(base + Duration::from_millis(5), live.clone())
            .unwrap();
        cancelled.state.store(CANCELLED, Release);
        assert_eq!(q.next_deadline(), Some(base + Duration::from_millis(5)));
        assert_eq!(q.len_hint(), 1);
        assert_eq!(q.fire_due(base + Duration::from_secs(1)), 1);
        assert_eq!(count.0.load(Relaxed), 1);

        // 3,000 inserts of which all but every tenth are cancelled: the queue compacts.
        let mut keep = Vec::new();
        for i in 0..3_000u64 {
            let e = entry(&count);
            q.insert(base + Duration::from_micros(10 * i + 1_000_000), e.clone())
                .unwrap();
            if i % 10 == 0 {
                keep.push(e);
            } else {
                e.state.store(CANCELLED, Release);
            }
        }
        assert!(q.len_hint() < 1_500, "not compacted: {}", q.len_hint());
        assert_eq!(q.fire_due(base + Duration::from_secs(10)), keep.len());
    }

    /// Shutdown wakes every pending sleeper, marked orphaned, and refuses new entries.
    #[test]
    fn orphan_all_wakes_pending_entries_and_closes_the_queue() {
        let q = TimerQueue::new();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let e = entry(&count);
        q.insert(q.base + Duration::from_secs(60), e.clone())
            .unwrap();
        q.orphan_all();
        assert_eq!(e.state.load(Acquire), ORPHANED);
        assert_eq!(count.0.load(Relaxed), 1);
        assert!(q.insert(q.base, entry(&count)).is_err());
    }

    /// A fired bucket's vector goes to the next new bucket with its capacity (no regrowing one
    /// push at a time), and the queue keeps only a few, not huge ones.
    #[test]
    fn fired_bucket_vectors_are_reused_for_new_buckets() {
        let q = TimerQueue::new();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let base = q.base + Duration::from_millis(1);
        for i in 0..20 {
            q.insert(base + Duration::from_nanos(i), entry(&count))
                .unwrap();
        }
        assert_eq!(q.fire_due(base + Duration::from_millis(1)), 20);
        assert_eq!(count.0.load(Relaxed), 20);
        let later = base + Duration::from_millis(5);
        q.insert(later, entry(&count)).unwrap();
        {
            let inner = q.inner.lock();
            let bucket = inner.wheel.buckets().next().expect("the new bucket");
            assert_eq!(bucket.items.len(), 1);
            assert!(
                bucket.items.capacity() >= 20,
                "a fresh vector: capacity {}",
                bucket.items.capacity()
            );
        }
        // Many fired buckets: at most SPARE_VECS vectors are kept.
        for b in 0..(SPARE_VECS as u64 * 2) {
            let at = later + Duration::from_nanos((b + 1) * BUCKET_NS);
            q.insert(at, entry(&count)).unwrap();
        }
        q.fire_due(later + Duration::from_secs(1));
        assert!(q.inner.lock().spare.len() <= SPARE_VECS);
        assert_eq!(q.len_hint(), 0);
    }

    /// The ring and the ordered map behind it against a plain list: random inserts (before the
    /// cursor, inside the ring, far beyond it), cancellations, and clock steps small and large
    /// (past the ring's 67 ms). After every step the same entries have fired — exactly those
    /// due — and `next_deadline` is the earliest live deadline.
    #[test]
    fn the_wheel_agrees_with_a_plain_list() {
        let q = TimerQueue::new();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let mut model: Vec<(Arc<TimerEntry>, u64)> = Vec::new();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut rand = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut now = 0u64;
        for step in 0..if cfg!(miri) { 60 } else { 3_000 } {
            for _ in 0..rand(40) {
                let at = match rand(10) {
                    0 => now.saturating_sub(rand(1_000_000)),
                    1 => now + 60_000_000 + rand(5_000_000_000),
                    _ => now + rand(60_000_000),
                };
                let e = entry(&count);
                q.insert(q.base + Duration::from_nanos(at), e.clone())
                    .unwrap();
                model.push((e, at));
            }
            for _ in 0..rand(5) {
                if !model.is_empty() {
                    let i = rand(model.len() as u64) as usize;
                    let _ = model[i]
                        .0
                        .state
                        .compare_exchange(PENDING, CANCELLED, AcqRel, Acquire);
                }
            }
            now += match rand(20) {
                0 => rand(200_000_000),
                _ => rand(600_000),
            };
            q.fire_due(q.base + Duration::from_nanos(now));
            model.retain(|(e, at)| match e.state.load(Acquire) {
                FIRED => {
                    assert!(*at <= now, "step {step}: fired {} ns early", at - now);
                    false
                }
                CANCELLED => false,
                _ => {
                    assert!(*at > now, "step {step}: due at {at}, now {now}, not fired");
                    true
                }
            });
            let next = model.iter().map(|(_, at)| *at).min();
            assert_eq!(
                q.next_deadline(),
                next.map(|at| q.base + Duration::from_nanos(at)),
                "step {step}"
            );
        }
    }
}
