//! A worker's **driver**: its reactor (mio `Poll`, registrations) and its timer queue,
//! turned by one thread at a time.
//!
//! Every worker owns one driver and turns it itself — every `event_interval` ticks, when it runs
//! out of tasks, and while it sleeps (it sleeps *in* its epoll wait, holding the driver). But a
//! worker may be busy for a long time inside one task: a CPU loop, a blocking call. Then
//! nothing polls its `Poll` or fires its timers, and every socket and timer registered there
//! stalls, even with sibling workers idle. So the poller sits behind a mutex and any thread of
//! the runtime may *try* to take it:
//!
//! * the owner turns it with `try_lock` in its tick-driven maintenance (skipping a turn if a
//!   sibling holds it: that sibling is doing the same work), and with `lock` to sleep in it;
//! * an idle sibling, before it sleeps and each time it wakes, looks for drivers that are
//!   *unattended*: not held (so the owner is not asleep in it) and not turned by their owner for
//!   [`STALL`]. It try-locks such a driver, fires its due timers and polls it without blocking.
//!   The wake-ups land on the sibling's own queue (the waking thread is a worker of the same
//!   runtime), where the sibling — idle by definition — runs them at once;
//! * a sibling that goes to sleep while some other driver is not held (its owner is awake,
//!   perhaps busy) sleeps at most [`STALL`], so it comes back to look;
//! * a sibling that went to sleep *without* that bound (every driver was held: everybody slept)
//!   says so in `owner_sleeps_unbounded`. An owner that wakes from its driver and starts running
//!   tasks rouses one such sleeper (`WorkerCx::rouse_an_unbounded_sleeper`), which re-parks with
//!   the bound — otherwise, if that first task blocked, nobody would look at its driver. When
//!   the driver holds nothing to look at (no timer, no socket, nothing else queued on the
//!   worker) the rouse is *owed* instead, and paid by the first timer or socket registration
//!   or local push of that worker before it sleeps again: a lone sync-bridge round trip then
//!   wakes one worker, not two (test `a_spaced_round_trip_wakes_one_worker`). The
//!   flag and the driver's lock form a Dekker pair (SeqCst fences on both sides): either the
//!   sleeper sees the owner's driver unheld and bounds its sleep, or the owner sees the flag.
//!
//! * a worker that sleeps *relying* on the runtime's ticker (see `worker/park.rs`) announces
//!   no unbounded sleep and is never roused: its *watch*, a timerfd in this driver's epoll set
//!   that the ticker pushes back each time it ticks, ends its sleep if the ticker stops.
//!
//! An idle runtime has every driver held by a sleeping owner, so nobody wakes periodically
//! (test `idle_runtime_burns_no_cpu`). Tests: `blocked_worker_timers_fire_on_an_idle_sibling`,
//! `blocked_worker_sockets_are_served_by_an_idle_sibling`.
//!
//! Registrations and timer entries do not need the poller: they hold the driver's
//! [`ReactorShared`] (registry, waker, slab) or go through its [`TimerQueue`], both usable from
//! any thread, and both with a *closed* state set under the lock their inserts take.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{fence, AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};

use super::metrics::WorkerMetrics;
use super::reactor::{Reactor, ReactorShared, TimerFd};
use super::time::TimerQueue;

/// How long a driver may go unturned by its awake owner before an idle sibling turns it; also
/// the longest a worker sleeps while some sibling is awake (and so might stall).
pub(crate) const STALL: Duration = Duration::from_millis(1);

pub(crate) struct Driver {
    /// The poller. Held by whoever turns the driver, including its owner while it sleeps.
    poller: Mutex<Reactor>,
    /// What registrations hold: the registry, the waker that interrupts a sleeping poller,
    /// the slab of sockets.
    pub(crate) io: Arc<ReactorShared>,
    pub(crate) timers: TimerQueue,
    /// When the owner last turned this driver, in nanoseconds since `epoch`.
    owner_turned_at: AtomicU64,
    epoch: Instant,
    /// The owner sleeps in this driver with no time bound (see the module docs).
    owner_sleeps_unbounded: AtomicBool,
    /// The owner sleeps *relying* on a sibling that ticks for the runtime's timers (see
    /// `worker/park.rs`): the ticker fires this driver's due timers on its ticks and keeps
    /// pushing `watch` back.
    relying: AtomicBool,
    /// A dead man's switch in this driver's epoll set: it ends a relying owner's sleep if the
    /// ticker stops pushing it back (it blocked in a task, or stopped ticking).
    watch: TimerFd,
    /// When `watch` expires, in nanoseconds since `epoch` (0: not armed).
    watch_at: AtomicU64,
    /// While the owner sleeps as the runtime's ticker: the tick it will wake at, in nanoseconds
    /// since `epoch`, plus one (0: none).
    tick_at: AtomicU64,
}

/// The poller, held: arm its wake-up and sleep in it.
pub(crate) struct Held<'a>(MutexGuard<'a, Reactor>);

impl Driver {
    pub(crate) fn new() -> std::io::Result<Driver> {
        let reactor = Reactor::new()?;
        let watch = TimerFd::new()?;
        reactor.shared().register_watch(&watch)?;
        Ok(Driver {
            io: reactor.shared().clone(),
            poller: Mutex::new(reactor),
            timers: TimerQueue::new(),
            owner_turned_at: AtomicU64::new(0),
            epoch: Instant::now(),
            owner_sleeps_unbounded: AtomicBool::new(false),
            relying: AtomicBool::new(false),
            watch,
            watch_at: AtomicU64::new(0),
            tick_at: AtomicU64::new(0),
        })
    }

    fn instant(&self, nanos: u64) -> Instant {
        self.epoch + Duration::from_nanos(nanos)
    }

    /// The owner is about to sleep relying on the ticker (or is awake again: `false`). The
    /// store is ordered before the caller's look at the ticker's `tick_at` (see
    /// `publish_tick`: a Dekker pair).
    pub(crate) fn set_relying(&self, relying: bool) {
        self.relying.store(relying, Relaxed);
        if relying {
            fence(SeqCst);
        }
    }

    /// Whether the owner sleeps (or is about to) relying on the ticker.
    pub(crate) fn is_relying(&self) -> bool {
        self.relying.load(Relaxed)
    }

    /// Arms the watch to expire at `at` (never before it).
    pub(crate) fn arm_watch(&self, at: Instant) {
        let nanos = self.now_nanos(at).max(1);
        if self.watch_at.swap(nanos, Relaxed) != nanos {
            self.watch.set_at(at);
        }
    }

    /// The owner is awake again after a sleep relying on the ticker: whatever its watch is
    /// armed for, the next `arm_watch` re-arms it (an expiry may be stale by then).
    pub(crate) fn forget_watch(&self) {
        self.watch_at.store(0, Relaxed);
    }

    /// Whether the owner is awake but has not turned this driver for `STALL`: stuck in a task,
    /// as far as its siblings can tell.
    pub(crate) fn is_stalled(&self) -> bool {
        self.is_stalled_at(Instant::now())
    }

    fn is_stalled_at(&self, now: Instant) -> bool {
        self.is_unheld()
            && self
                .now_nanos(now)
                .saturating_sub(self.owner_turned_at.load(Relaxed))
                >= STALL.as_nanos() as u64
    }

    /// The ticker, going to sleep until `tick`: if this driver's owner relies on it and its
    /// watch would expire within `STALL` of that tick, push the watch to `2 * STALL` after it.
    /// So a ticker that keeps ticking re-arms each sibling's watch about once per `STALL`
    /// (always behind its own next tick: cheap, see `reactor::TickClocks`), and one that
    /// stops is noticed within `2 * STALL` of its last tick.
    pub(crate) fn push_watch(&self, tick: Instant) {
        if !self.is_relying() {
            return;
        }
        let at = self.watch_at.load(Relaxed);
        if at != 0 && self.instant(at) >= tick + STALL {
            return;
        }
        self.arm_watch(tick + 2 * STALL);
    }

    /// The owner, as the runtime's ticker, sleeps until `tick` (`None`: it is awake, or sleeps
    /// without ticking). Ordered before the caller's look at its siblings' `relying` flags.
    pub(crate) fn publish_tick(&self, tick: Option<Instant>) {
        let v = tick.map_or(0, |t| self.now_nanos(t) + 1);
        self.tick_at.store(v, Relaxed);
        if tick.is_some() {
            fence(SeqCst);
        }
    }

    /// The tick the owner sleeps until as the runtime's ticker, if it does.
    pub(crate) fn tick_at(&self) -> Option<Instant> {
        match self.tick_at.load(Relaxed) {
            0 => None,
            v => Some(self.instant(v - 1)),
        }
    }

    /// When this driver was created: the runtime's coalesced timer grid starts at worker 0's
    /// (see `worker/park.rs`).
    pub(crate) fn epoch(&self) -> Instant {
        self.epoch
    }

    fn now_nanos(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// The owner's non-blocking turn, first half: fire due timers. Returns how many tasks woke.
    pub(crate) fn fire_timers_as_owner(&self, now: Instant, metrics: &WorkerMetrics) -> usize {
        self.owner_turned_at.store(self.now_nanos(now), Relaxed);
        let fired = self.timers.fire_due(now);
        metrics.add_timers_fired(fired);
        fired
    }

    /// The owner's non-blocking turn, second half: poll for events without waiting. Returns
    /// how many were dispatched (0 when a sibling holds the poller: it does this work).
    pub(crate) fn poll_as_owner(&self, metrics: &WorkerMetrics) -> usize {
        // No socket registered: nothing a non-blocking poll could dispatch (see `has_sockets`);
        // a timer-only load saves a system call per turn.
        if !self.io.has_sockets() {
            return 0;
        }
        // try_lock: a sibling may be turning it, or a waker called inside the poll re-entered.
        match self.poller.try_lock() {
            Some(mut reactor) => reactor.poll_as_owner(metrics),
            None => 0,
        }
    }

    /// The owner's non-blocking turn: both halves.
    #[cfg(test)]
    pub(crate) fn turn_as_owner(&self, metrics: &WorkerMetrics) -> usize {
        self.fire_timers_as_owner(Instant::now(), metrics) + self.poll_as_owner(metrics)
    }

    /// The owner takes the poller to sleep in it (waiting for a sibling's short turn if one is
    /// in progress).
    pub(crate) fn hold(&self) -> Held<'_> {
        Held(self.poller.lock())
    }

    /// When the owner last turned this driver (or the driver was made): a clock reading from
    /// the past, so a lower bound of now.
    pub(crate) fn turn_stamp(&self) -> Instant {
        self.instant(self.owner_turned_at.load(Relaxed))
    }

    /// The owner is back from sleeping in its driver.
    pub(crate) fn mark_owner_turn_at(&self, now: Instant) {
        self.owner_turned_at.store(self.now_nanos(now), Relaxed);
    }

    /// Whether the poller is free right now: its owner is awake (running tasks or blocked in
    /// one), not asleep in it.
    pub(crate) fn is_unheld(&self) -> bool {
        !self.poller.is_locked()
    }

    /// A sibling's turn, taken only if the driver is unattended (see the module docs). Returns
    /// how many tasks it woke; they were scheduled on the calling worker.
    pub(crate) fn turn_if_unattended(&self, metrics: &WorkerMetrics) -> usize {
        let now = Instant::now();
        if !self.is_stalled_at(now) {
            return 0;
        }
        let Some(mut reactor) = self.poller.try_lock() else {
            return 0;
        };
        let fired = self.timers.fire_due(now);
        metrics.add_timers_fired(fired);
        // A plain poll: a wake-up meant for the owner whose edge this collects stays pending
        // for the owner's next sleep (`ReactorShared::wake_pending`).
        fired + reactor.poll(Some(Duration::ZERO), metrics)
    }

    /// The owner is about to sleep with no time bound: announce it (the announcement is ordered
    /// before the caller's look at its siblings' drivers).
    pub(crate) fn announce_unbounded_sleep(&self) {
        self.owner_sleeps_unbounded.store(true, Relaxed);
        fence(SeqCst);
    }

    /// The owner's sleep is bounded after all, or over.
    pub(crate) fn end_unbounded_sleep(&self) {
        self.owner_sleeps_unbounded.store(false, Relaxed);
    }

    /// Whether the owner sleeps with no time bound. The caller has issued a SeqCst fence after
    /// releasing its own driver.
    pub(crate) fn owner_sleeps_unbounded(&self) -> bool {
        self.owner_sleeps_unbounded.load(Relaxed)
    }

    /// Shutdown: fail every socket, orphan every timer; later registrations are refused.
    pub(crate) fn shutdown(&self) {
        self.poller.lock().shutdown();
        self.timers.orphan_all();
    }
}

impl Held<'_> {
    /// Makes the sleep end by `deadline` (never before).
    pub(crate) fn arm_timer(&mut self, deadline: Option<Instant>) {
        self.0.arm_timer(deadline)
    }

    /// Makes the sleep end at the grid tick `wake`, keeping `then` armed behind it (see
    /// `Reactor::arm_ticks`); falls back to `arm_timer`.
    pub(crate) fn arm_ticks(&mut self, wake: Instant, then: Instant) {
        if !self.0.arm_ticks(wake, then) {
            self.0.arm_timer(Some(wake));
        }
    }

    /// Sleeps until an event, a wake-up, the armed timer, or `timeout`.
    pub(crate) fn sleep(&mut self, timeout: Option<Duration>, metrics: &WorkerMetrics) -> usize {
        self.0.sleep(timeout, metrics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::reactor::Registration;

    #[test]
    fn a_driver_without_sockets_skips_its_idle_poll_but_loses_no_wake_up() {
        let driver = Driver::new().unwrap();
        let metrics = WorkerMetrics::default();
        assert!(!driver.io.has_sockets());
        // A wake-up requested while the owner is awake: the owner's non-blocking turn skips
        // the poll (no sockets), so the eventfd's edge stays queued and the next sleep returns
        // at once instead of waiting out its timeout.
        driver.io.unpark();
        assert_eq!(driver.turn_as_owner(&metrics), 0);
        let start = Instant::now();
        driver.hold().sleep(Some(Duration::from_secs(5)), &metrics);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the wake-up was lost: slept {:?}",
            start.elapsed()
        );

        // With a socket registered the turn polls again; deregistered, it skips again.
        // (`a_siblings_turn_does_not_swallow_the_owners_wake_up` below uses one.)
        let mut listener = mio::net::TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let registration = Registration::new(&mut listener, driver.io.clone()).unwrap();
        assert!(driver.io.has_sockets());
        registration.deregister(&mut listener);
        drop(registration);
        assert!(!driver.io.has_sockets());
    }

    /// The lost wake-up behind a rare hang of spawn_many_local at 2 workers (both workers asleep
    /// in `epoll_wait` with no timeout, the main thread's spawns queued in the injector): a
    /// producer wakes a worker on its way to sleep, and before the worker holds its poller a
    /// sibling's turn of the (unattended) driver collects the eventfd's edge. The owner's sleep
    /// must still end at once.
    #[test]
    fn a_siblings_turn_does_not_swallow_the_owners_wake_up() {
        let driver = Driver::new().unwrap();
        let metrics = WorkerMetrics::default();
        // A socket, so a turn really polls (without one it skips the poll and leaves the edge).
        let mut listener = mio::net::TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let registration = Registration::new(&mut listener, driver.io.clone()).unwrap();
        // The owner has not turned its driver for a while: a sibling may.
        std::thread::sleep(STALL * 2);
        assert!(driver.is_stalled_at(Instant::now()));

        // How long one sleep of the owner with a `timeout` bound takes.
        let slept = |timeout: Duration| {
            let start = Instant::now();
            driver.hold().sleep(Some(timeout), &metrics);
            start.elapsed()
        };
        let (long, short) = (Duration::from_secs(5), Duration::from_millis(30));

        driver.io.unpark(); // the producer's wake-up
        driver.turn_if_unattended(&metrics); // the sibling collects the edge
        let took = slept(long);
        assert!(
            took < Duration::from_secs(2),
            "the owner slept through its wake-up: {took:?}"
        );
        // Spent: the next sleep waits for its timeout.
        let took = slept(short);
        assert!(took >= Duration::from_millis(25), "{took:?}");

        // A wake-up the owner collects itself while awake (its own turn) is spent too: the
        // next sleep waits, as before this flag existed (no spurious wake-up).
        driver.io.unpark();
        assert_eq!(driver.poll_as_owner(&metrics), 0);
        let took = slept(short);
        assert!(took >= Duration::from_millis(25), "{took:?}");

        // And one that arrives during the sleep ends it.
        let io = driver.io.clone();
        let waker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            io.unpark();
        });
        assert!(slept(long) < Duration::from_secs(2));
        waker.join().unwrap();
        registration.deregister(&mut listener);
    }
}
