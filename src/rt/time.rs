//! Timers: [`sleep`], [`sleep_until`], [`timeout`] and [`interval`].
//!
//! # Why a heap, not a wheel
//!
//! Each worker keeps a binary min-heap of `(deadline, sequence, entry)`. A hashed wheel gives
//! O(1) insertion but rounds every deadline to its slot width (tokio's wheel has 1 ms slots, one
//! reason its timers fire late); a heap keeps exact `Instant`s, so with the reactor's timerfd a
//! timer fires within microseconds of its deadline. Insertion is O(log n) — about 20 comparisons
//! for a million timers, cheaper than the request it guards. Cancelling (dropping a `Sleep`) only
//! flips a flag in its entry; the dead entry leaves the heap when its deadline passes, and the heap
//! is compacted when dead entries outnumber live ones, so memory stays proportional to live timers.
//!
//! A timer never fires early: an entry is marked fired only once `Instant::now() >= deadline`,
//! and `Sleep` re-checks the clock itself.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU8;
use std::sync::atomic::Ordering::{AcqRel, Acquire};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::context;
use super::driver::Driver;

const PENDING: u8 = 0;
const FIRED: u8 = 1;
const CANCELLED: u8 = 2;
/// The heap holding the entry was torn down (runtime shutdown) before the deadline: the `Sleep`
/// must register again — which fails loudly if no runtime is left — instead of waiting forever.
const ORPHANED: u8 = 3;

/// One registered deadline, shared by the `Sleep` and the heap.
pub(crate) struct TimerEntry {
    state: AtomicU8,
    waker: Mutex<Option<Waker>>,
}

struct HeapItem {
    deadline: Instant,
    seq: u64,
    entry: Arc<TimerEntry>,
}

impl PartialEq for HeapItem {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline && self.seq == other.seq
    }
}
impl Eq for HeapItem {}
impl PartialOrd for HeapItem {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapItem {
    // Reversed: BinaryHeap is a max-heap and we want the earliest deadline on top.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}

/// A worker's timers. Locked by its owner when firing and by whoever registers a timer (the
/// owner itself, or rarely a thread outside the runtime).
pub(crate) struct TimerQueue {
    inner: Mutex<Heap>,
    /// How late timers fired (feature `observatory`, while timing is on).
    #[cfg(feature = "observatory")]
    pub(crate) lateness: super::observe::timing::Histogram,
}

struct Heap {
    items: BinaryHeap<HeapItem>,
    seq: u64,
    /// Heap size after the last compaction; the next one happens at twice that.
    compact_at: usize,
    /// Set by `orphan_all` (shutdown) under this heap's lock; `insert` refuses from then on,
    /// so no entry can land in a heap nobody will ever fire.
    closed: bool,
}

impl TimerQueue {
    pub(crate) fn new() -> TimerQueue {
        TimerQueue {
            inner: Mutex::new(Heap {
                items: BinaryHeap::new(),
                seq: 0,
                compact_at: 1024,
                closed: false,
            }),
            #[cfg(feature = "observatory")]
            lateness: Default::default(),
        }
    }

    /// Registers a deadline. Returns whether it is now the earliest one, or `Err` once the
    /// heap was closed by shutdown.
    fn insert(&self, deadline: Instant, entry: Arc<TimerEntry>) -> Result<bool, Closed> {
        let mut heap = self.inner.lock();
        if heap.closed {
            return Err(Closed);
        }
        if heap.items.len() >= heap.compact_at {
            heap.items
                .retain(|i| i.entry.state.load(Acquire) == PENDING);
            heap.compact_at = (heap.items.len() * 2).max(1024);
        }
        heap.seq += 1;
        let seq = heap.seq;
        let earliest = heap.items.peek().is_none_or(|top| deadline < top.deadline);
        heap.items.push(HeapItem {
            deadline,
            seq,
            entry,
        });
        Ok(earliest)
    }

    /// Fires every timer whose deadline has passed. Returns how many tasks were woken.
    pub(crate) fn fire_due(&self, now: Instant) -> usize {
        let mut wake = Vec::new();
        {
            let mut heap = self.inner.lock();
            while let Some(top) = heap.items.peek() {
                if top.deadline > now {
                    break;
                }
                let item = heap.items.pop().expect("peeked");
                #[cfg(feature = "observatory")]
                super::observe::timing::timer_fired(&self.lateness, now - item.deadline);
                if item
                    .entry
                    .state
                    .compare_exchange(PENDING, FIRED, AcqRel, Acquire)
                    .is_ok()
                {
                    if let Some(w) = item.entry.waker.lock().take() {
                        wake.push(w);
                    }
                }
            }
        }
        let n = wake.len();
        #[cfg(feature = "observatory")]
        let _source = super::observe::WakeScope::enter(super::observe::WakeSource::Timer);
        for w in wake {
            w.wake();
        }
        n
    }

    /// Calls `f` with the deadline and waker of every pending entry (feature `observatory`: the
    /// "waits on" scan; heap lock, then each entry's waker lock, the order `fire` uses).
    #[cfg(feature = "observatory")]
    pub(crate) fn for_each_waiter(&self, mut f: impl FnMut(Instant, &Waker)) {
        let heap = self.inner.lock();
        for item in heap.items.iter() {
            if item.entry.state.load(Acquire) == PENDING {
                if let Some(w) = &*item.entry.waker.lock() {
                    f(item.deadline, w);
                }
            }
        }
    }

    /// The earliest pending deadline, skipping (and dropping) cancelled entries on top.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let mut heap = self.inner.lock();
        while let Some(top) = heap.items.peek() {
            if top.entry.state.load(Acquire) == CANCELLED {
                heap.items.pop();
                continue;
            }
            return Some(top.deadline);
        }
        None
    }

    /// How many entries the heap holds (cancelled ones not yet dropped included): a cheap hint
    /// of how busy this worker's timers are.
    pub(crate) fn len_hint(&self) -> usize {
        self.inner.lock().items.len()
    }

    /// Runtime shutdown: drops every entry and wakes its sleeper, marked orphaned, so a thread
    /// blocked on a timer of this runtime is told (see `Sleep::poll`) rather than left hanging.
    /// Tasks of the runtime are being cancelled anyway; their wake-ups are discarded.
    pub(crate) fn orphan_all(&self) {
        let items = {
            let mut heap = self.inner.lock();
            heap.closed = true;
            std::mem::take(&mut heap.items)
        };
        for item in items {
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

/// The heap was closed by runtime shutdown.
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
        if Instant::now() >= self.deadline {
            self.cancel();
            return Poll::Ready(());
        }
        let mut orphaned = false;
        if let Some(entry) = &self.entry {
            let mut slot = entry.waker.lock();
            match entry.state.load(Acquire) {
                // Fired means the clock passed the deadline; the check above raced with it.
                FIRED => return Poll::Ready(()),
                // Its heap is gone: fall through and register again.
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
        let entry = Arc::new(TimerEntry {
            state: AtomicU8::new(PENDING),
            waker: Mutex::new(Some(cx.waker().clone())),
        });
        let deadline = self.deadline;
        let driver = match self.driver.take() {
            // An orphaned entry means its driver shut down: ask the context again (which
            // panics with a clear message if no runtime is left).
            Some(driver) if !orphaned => driver,
            _ => current_timer_driver(),
        };
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
