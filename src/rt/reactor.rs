//! The I/O reactor of one worker: a `mio::Poll`, a `mio::Waker` that interrupts it, a slab of
//! registrations, and a way to sleep until a deadline with sub-millisecond precision.
//!
//! # Sleeping until a deadline
//!
//! `epoll_wait` takes its timeout in milliseconds, rounded up (one reason tokio's timers fire
//! ~1 ms late). Linux 5.11 added `epoll_pwait2`, whose timeout is a `timespec`: one system call
//! per sleep, with nanosecond resolution. On older kernels (or where a sandbox refuses the
//! call, or with `SCRAIPE_NO_EPOLL_PWAIT2` set) the reactor falls back to a timerfd registered
//! in the same epoll set: `timerfd_settime` + `epoll_wait` per timed sleep (the timerfd is
//! never read: edge-triggered epoll reports its next expiry after a re-arm). On a timer-heavy
//! load the difference was measurable (issue 16): see DESIGN.md.
//!
//! Either way the reactor waits on mio's epoll descriptor itself (mio's `Poll::poll` offers
//! only `epoll_wait`) and decodes the events as mio does (`epoll_bits`); mio registers the
//! sources.
//!
//! Two more kinds of timerfd live in the set, both registered edge-triggered and never read:
//! the *tick clocks* of a worker that ticks for the runtime's timers ([`TickClocks`], made on
//! first use), and the driver's *watch* (`WATCH_TOKEN`, see `driver.rs`), which only ends a
//! sleep. Each worker holds an epoll fd, an eventfd, the watch, the two clocks once it has
//! ticked, and the one-shot timerfd on the fallback path.
//!
//! # Tokens
//!
//! A mio token is `generation << 32 | slot`. When a socket is dropped its slot is freed and its
//! generation bumped, so an event that was already queued in the kernel for the old socket
//! carries a stale generation and is ignored instead of waking whoever reuses the slot.
//!
//! # Readiness
//!
//! Sockets are registered once, edge-triggered, for both directions. Each registration keeps a
//! readiness word (`tick << 16 | bits`) and one waker per direction. An I/O operation:
//!
//! 1. [`Registration::poll_ready`] returns the current readiness and its tick, or stores the
//!    waker and returns `Pending`;
//! 2. the caller tries the syscall; on `WouldBlock` it calls
//!    [`Registration::clear_readiness`] with the tick it saw, which clears the bit only if no new
//!    event arrived in between (otherwise that event would be lost: edge-triggered epoll does
//!    not repeat itself).
//!
//! The reactor sets readiness *before* taking the wakers out under the waiter lock, and
//! `poll_ready` stores its waker *before* re-reading readiness under the same lock, so one side
//! always sees the other.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Release};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Token};
use parking_lot::Mutex;

use super::metrics::WorkerMetrics;

// Tokens pack `generation << 32 | slot` into a `usize`.
const _: () = assert!(
    usize::BITS == 64,
    "the reactor's tokens need a 64-bit usize (generation << 32 | slot)"
);

const WAKER_TOKEN: Token = Token(usize::MAX);
const TIMER_TOKEN: Token = Token(usize::MAX - 1);
/// The driver's watch (`Driver::arm_watch`): like the waker, its event only ends a sleep.
pub(crate) const WATCH_TOKEN: Token = Token(usize::MAX - 2);
/// The ticker's two clocks (`Reactor::arm_ticks`).
const CLOCK_TOKENS: [Token; 2] = [Token(usize::MAX - 3), Token(usize::MAX - 4)];

/// Readiness bits.
const READABLE: usize = 1 << 0;
const WRITABLE: usize = 1 << 1;
const READ_CLOSED: usize = 1 << 2;
const WRITE_CLOSED: usize = 1 << 3;
const ERROR: usize = 1 << 4;
/// The runtime shut down: every operation fails from now on.
const SHUTDOWN: usize = 1 << 5;
const BITS: usize = (1 << 16) - 1;
const TICK_ONE: usize = 1 << 16;

/// Which half of a socket an operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

impl Direction {
    fn mask(self) -> usize {
        match self {
            Direction::Read => READABLE | READ_CLOSED | ERROR | SHUTDOWN,
            Direction::Write => WRITABLE | WRITE_CLOSED | ERROR | SHUTDOWN,
        }
    }
    /// The bit an operation that hit `WouldBlock` may clear. Closed/error bits are terminal.
    fn clearable(self) -> usize {
        match self {
            Direction::Read => READABLE,
            Direction::Write => WRITABLE,
        }
    }
}

/// Readiness observed by `poll_ready`, to hand back to `clear_readiness`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadyEvent {
    tick: usize,
    dir: Direction,
}

/// The per-socket state shared between the reactor and the task using the socket.
pub(crate) struct ScheduledIo {
    readiness: AtomicUsize,
    waiters: Mutex<Waiters>,
}

/// Tasks waiting for one direction. Usually one; several when tasks share a socket (two tasks
/// calling `accept` on one listener). All are woken on readiness: each retries its operation,
/// and the ones that find `WouldBlock` register again.
#[derive(Default)]
struct WaiterList {
    first: Option<Waker>,
    more: Vec<Waker>,
}

impl WaiterList {
    fn register(&mut self, waker: &Waker) {
        match &self.first {
            None => self.first = Some(waker.clone()),
            Some(w) if w.will_wake(waker) => {}
            Some(_) => {
                if !self.more.iter().any(|w| w.will_wake(waker)) {
                    self.more.push(waker.clone());
                }
            }
        }
    }

    fn take_all(&mut self, into: &mut Vec<Waker>) {
        into.extend(self.first.take());
        into.append(&mut self.more);
    }
}

#[derive(Default)]
struct Waiters {
    readers: WaiterList,
    writers: WaiterList,
}

impl ScheduledIo {
    fn new() -> ScheduledIo {
        ScheduledIo {
            readiness: AtomicUsize::new(0),
            waiters: Mutex::new(Waiters::default()),
        }
    }

    /// Adds readiness bits (bumping the tick) and collects the wakers they concern.
    fn set_readiness(&self, bits: usize, wake: &mut Vec<Waker>) {
        let _ = self.readiness.fetch_update(AcqRel, Acquire, |cur| {
            Some(((cur & !BITS).wrapping_add(TICK_ONE)) | (cur & BITS) | bits)
        });
        let mut waiters = self.waiters.lock();
        if bits & Direction::Read.mask() != 0 {
            waiters.readers.take_all(wake);
        }
        if bits & Direction::Write.mask() != 0 {
            waiters.writers.take_all(wake);
        }
    }
}

/// The part of a reactor any thread may use: registering sockets, waking the poller.
pub(crate) struct ReactorShared {
    registry: mio::Registry,
    waker: mio::Waker,
    /// Registrations, and whether the reactor is closed: both under one lock, so a
    /// registration either lands before shutdown marks every entry, or is refused.
    slab: Mutex<Slab>,
    /// Wake-ups requested through `unpark` (for metrics).
    pub(crate) unparks: AtomicUsize,
    /// A wake-up was requested (`unpark`) and the owner has not been awake since to see it.
    ///
    /// Why the eventfd alone is not enough: its edge goes to whichever `epoll_wait` on this
    /// reactor comes first, and the owner's is not the only one — a sibling's non-blocking
    /// turn of an unattended driver (`Driver::turn_if_unattended`) polls it too. A producer
    /// that pops the owner from the sleepers and wakes it while the owner is on its way to
    /// sleep (after its last look at the queues, before it holds the poller) could have its
    /// edge collected by that turn; the owner then slept through its wake-up, unbounded if no
    /// sibling was awake when it chose its timeout — with the producer's work queued, the
    /// producer counting on the owner (counted as searching), and everyone asleep. So the
    /// request is also kept here, and the owner's sleep (`Reactor::sleep`), which takes the
    /// flag while it holds the poller (no other poll can run then), does not block if it was
    /// set. Cleared where the owner itself collects the edge.
    wake_pending: AtomicBool,
}

impl ReactorShared {
    /// Calls `f` with the token, direction (`"read"`/`"write"`) and waker of every waiter
    /// (feature `observatory`: the "waits on" scan; takes the slab lock, then each waiter lock,
    /// the order `Reactor::poll` uses).
    #[cfg(feature = "observatory")]
    pub(crate) fn for_each_waiter(&self, mut f: impl FnMut(usize, &'static str, &Waker)) {
        let slab = self.slab.lock();
        for (index, entry) in slab.entries.iter().enumerate() {
            let Some(io) = &entry.io else { continue };
            let token = ((entry.generation as usize) << 32) | index;
            let waiters = io.waiters.lock();
            for (dir, list) in [("read", &waiters.readers), ("write", &waiters.writers)] {
                for w in list.first.iter().chain(&list.more) {
                    f(token, dir, w);
                }
            }
        }
    }

    /// Whether any socket is registered. With none, a non-blocking poll can only find the
    /// waker's or a timerfd's event, which the next blocking poll reports just as well (an
    /// edge stays queued until some `epoll_wait` collects it), so the driver skips that poll.
    pub(crate) fn has_sockets(&self) -> bool {
        let slab = self.slab.lock();
        slab.entries.len() > slab.free.len()
    }

    /// Registers the driver's watch (`Driver::arm_watch`): its expiry ends the owner's sleep.
    pub(crate) fn register_watch(&self, watch: &TimerFd) -> io::Result<()> {
        watch.register(&self.registry, WATCH_TOKEN)
    }

    /// Interrupts the owner's `poll`, or makes its next one return at once.
    pub(crate) fn unpark(&self) {
        self.unparks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Before the edge: an owner that finds no edge (another poll collected it) finds this.
        self.wake_pending.store(true, Release);
        // An eventfd write cannot fail short of fd exhaustion; a lost wake-up would only delay
        // the owner until its next event or timer.
        let _ = self.waker.wake();
    }
}

struct Slab {
    entries: Vec<SlabEntry>,
    free: Vec<u32>,
    /// Set by `Reactor::shutdown` under the slab lock; `insert` refuses from then on.
    closed: bool,
}

struct SlabEntry {
    generation: u32,
    io: Option<Arc<ScheduledIo>>,
}

impl Slab {
    fn insert(&mut self, io: Arc<ScheduledIo>) -> io::Result<Token> {
        if self.closed {
            return Err(shutdown_error());
        }
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = u32::try_from(self.entries.len()).map_err(|_| {
                    io::Error::other("too many sockets registered with one reactor")
                })?;
                self.entries.push(SlabEntry {
                    generation: 0,
                    io: None,
                });
                i
            }
        };
        let entry = &mut self.entries[index as usize];
        entry.io = Some(io);
        Ok(Token(((entry.generation as usize) << 32) | index as usize))
    }

    fn get(&self, token: Token) -> Option<&Arc<ScheduledIo>> {
        let (index, generation) = (token.0 & 0xFFFF_FFFF, (token.0 >> 32) as u32);
        let entry = self.entries.get(index)?;
        if entry.generation != generation {
            return None;
        }
        entry.io.as_ref()
    }

    fn remove(&mut self, token: Token) {
        let (index, generation) = (token.0 & 0xFFFF_FFFF, (token.0 >> 32) as u32);
        if let Some(entry) = self.entries.get_mut(index) {
            if entry.generation == generation && entry.io.take().is_some() {
                entry.generation = entry.generation.wrapping_add(1);
                self.free.push(index as u32);
            }
        }
    }
}

/// The part of a reactor only its driving thread touches.
pub(crate) struct Reactor {
    poll: mio::Poll,
    shared: Arc<ReactorShared>,
    /// The timerfd fallback (see the module docs); `None`: sleeps end by `epoll_pwait2`'s
    /// timeout.
    timerfd: Option<TimerFd>,
    /// Receives the events of one wait.
    events: Vec<libc::epoll_event>,
    /// The deadline the next sleep must end by, if any. With the timerfd: the deadline it is
    /// armed for (kept until it fires). With `epoll_pwait2`: the deadline the next `poll`
    /// takes as its timeout (consumed by it).
    armed: Option<Instant>,
    /// The ticker's clocks, made on first use (see `arm_ticks`).
    clocks: Option<TickClocks>,
    wake_buf: Vec<Waker>,
    /// The last `poll` collected the waker's edge.
    saw_waker: bool,
}

/// Two timerfds a worker that ticks for the runtime (see `worker/park.rs`) keeps armed at its
/// next two grid ticks, re-arming only the one that fired, to the tick after the other's.
///
/// Why two: on the VM this was measured on, arming a timer that becomes the earliest on its CPU
/// is what a timed sleep mostly costs (the kernel reprograms the CPU's timer, which traps to
/// the hypervisor, charged to the arming thread). A timer armed *behind* a pending one needs no
/// reprogramming; the reprogram for the next tick then happens in the timer interrupt, which no
/// thread of ours pays for. A bare loop waking every 400 µs: 24–32 µs of CPU per wake-up with one
/// one-shot timeout, 12–14 µs with two clocks taking turns (DESIGN.md §1.5b, fourth pass).
struct TickClocks {
    fds: [TimerFd; 2],
    /// When each is armed to expire; `None` once its expiry was reported (or never armed).
    at: [Option<Instant>; 2],
}

/// Capacity of a reactor's event buffer.
const EVENTS: usize = 1024;

impl Reactor {
    pub(crate) fn new() -> io::Result<Reactor> {
        Reactor::with_pwait2(std::env::var_os("SCRAIPE_NO_EPOLL_PWAIT2").is_none())
    }

    /// A reactor that sleeps with `epoll_pwait2` if `try_pwait2` and the kernel has it, else
    /// with the timerfd fallback.
    fn with_pwait2(try_pwait2: bool) -> io::Result<Reactor> {
        let poll = mio::Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        let timerfd = if try_pwait2 && pwait2_works(&poll) {
            None
        } else {
            let fd = TimerFd::new()?;
            fd.register(poll.registry(), TIMER_TOKEN)?;
            Some(fd)
        };
        let shared = Arc::new(ReactorShared {
            registry,
            waker,
            slab: Mutex::new(Slab {
                entries: Vec::new(),
                free: Vec::new(),
                closed: false,
            }),
            unparks: AtomicUsize::new(0),
            wake_pending: AtomicBool::new(false),
        });
        Ok(Reactor {
            poll,
            shared,
            timerfd,
            events: Vec::with_capacity(EVENTS),
            armed: None,
            clocks: None,
            wake_buf: Vec::new(),
            saw_waker: false,
        })
    }

    /// Makes the next sleep end at the grid tick `wake` (never before it), with the second
    /// clock armed at `then`, the tick after (see [`TickClocks`]). In the steady state of a
    /// timer-heavy load, `wake` is the tick the other clock is already armed for, and the one
    /// system call made here re-arms the clock that just fired, behind it. Returns false if
    /// the clocks cannot be made (file descriptors exhausted); the caller arms the one-shot
    /// timer instead.
    pub(crate) fn arm_ticks(&mut self, wake: Instant, then: Instant) -> bool {
        let c = match &mut self.clocks {
            Some(c) => c,
            None => match TickClocks::new(&self.poll) {
                Ok(c) => self.clocks.insert(c),
                Err(e) => {
                    log::warn!("cannot make the tick clocks, sleeping with a timeout: {e}");
                    return false;
                }
            },
        };
        // The clock to end this sleep: one already armed for `wake`, else one that is not
        // armed for `then` (a clock armed for neither is stale: re-armed either way).
        let first = match c.at.iter().position(|a| *a == Some(wake)) {
            Some(i) => i,
            None => {
                let i = if c.at[0] == Some(then) { 1 } else { 0 };
                c.set(i, wake);
                i
            }
        };
        let other = 1 - first;
        if c.at[other] != Some(then) && then > wake {
            c.set(other, then);
        }
        true
    }

    pub(crate) fn shared(&self) -> &Arc<ReactorShared> {
        &self.shared
    }

    /// Makes sure the next sleep ends by `deadline` (never before it).
    pub(crate) fn arm_timer(&mut self, deadline: Option<Instant>) {
        let Some(fd) = &self.timerfd else {
            // `poll` turns it into its timeout: no system call here.
            self.armed = deadline;
            return;
        };
        let Some(deadline) = deadline else { return };
        if matches!(self.armed, Some(armed) if armed <= deadline) {
            return; // an earlier (or equal) wake-up is already armed
        }
        fd.set_at(deadline);
        self.armed = Some(deadline);
    }

    /// Whether this reactor sleeps with `epoll_pwait2` (false: the timerfd fallback).
    #[cfg(test)]
    pub(crate) fn uses_pwait2(&self) -> bool {
        self.timerfd.is_none()
    }

    /// The owner's sleep: [`poll`](Self::poll) for at most `timeout`, except that it does not
    /// block when a wake-up was requested that no poll of the owner's has seen (another
    /// thread's poll may have collected its edge: see `ReactorShared::wake_pending`). The
    /// caller holds the poller (`&mut self`), so no other poll can collect an edge meanwhile.
    pub(crate) fn sleep(&mut self, timeout: Option<Duration>, metrics: &WorkerMetrics) -> usize {
        let pending = self.shared.wake_pending.swap(false, Acquire);
        let n = self.poll(
            if pending {
                Some(Duration::ZERO)
            } else {
                timeout
            },
            metrics,
        );
        // Awake again: a request made while we slept has done its job (its edge, if it is still
        // queued, ends the next sleep at once, as it always did).
        self.shared.wake_pending.store(false, Release);
        n
    }

    /// The owner's non-blocking turn while it is awake: a wake-up request it collects here has
    /// nothing left to do (the owner is awake), so it is forgotten, as the edge is.
    pub(crate) fn poll_as_owner(&mut self, metrics: &WorkerMetrics) -> usize {
        let n = self.poll(Some(Duration::ZERO), metrics);
        if self.saw_waker {
            self.shared.wake_pending.store(false, Release);
        }
        n
    }

    /// Waits for events (at most `timeout`, and with `epoll_pwait2` at most until the armed
    /// deadline; `None` = until woken) and wakes the tasks they concern. Returns the number of
    /// I/O events dispatched. As a sibling's turn of this reactor it leaves a wake-up request
    /// for the owner (`wake_pending`) in place even when it collects the request's edge.
    pub(crate) fn poll(&mut self, timeout: Option<Duration>, metrics: &WorkerMetrics) -> usize {
        let n = if self.timerfd.is_some() {
            wait(&self.poll, &mut self.events, timeout, false)
        } else {
            let timeout = match (timeout, self.armed.take()) {
                (t, None) => t,
                (t, Some(d)) => {
                    let left = d.saturating_duration_since(Instant::now());
                    Some(t.map_or(left, |t| t.min(left)))
                }
            };
            wait(&self.poll, &mut self.events, timeout, true)
        };
        let mut dispatched = 0;
        self.saw_waker = false;
        {
            // Taken at the first socket event: a wake-up by the waker or a clock alone (every
            // sync-bridge hand-off, every timer tick) needs no slab.
            let mut slab = None;
            for ev in &self.events[..n] {
                // Copies: `epoll_event` is packed on x86_64.
                let (events, token) = (ev.events, Token(ev.u64 as usize));
                match token {
                    WAKER_TOKEN => self.saw_waker = true,
                    WATCH_TOKEN => {}
                    // The fallback's deadline passed: a later one may be armed now.
                    TIMER_TOKEN => self.armed = None,
                    t if CLOCK_TOKENS.contains(&t) => {
                        if let Some(c) = self.clocks.as_mut() {
                            c.at[usize::from(t == CLOCK_TOKENS[1])] = None;
                        }
                    }
                    token => {
                        let slab = slab.get_or_insert_with(|| self.shared.slab.lock());
                        dispatched +=
                            dispatch_event(slab, token, epoll_bits(events), &mut self.wake_buf)
                    }
                }
            }
        }
        metrics.add_io_events(dispatched);
        // Wake outside the slab lock: waking schedules tasks, which must not nest inside it.
        #[cfg(feature = "observatory")]
        let _source = super::observe::WakeScope::enter(super::observe::WakeSource::Reactor);
        for waker in self.wake_buf.drain(..) {
            // The trace links each waker to the socket event that collected it.
            #[cfg(feature = "observatory")]
            super::observe::trace::next_reactor_waker();
            waker.wake();
        }
        dispatched
    }

    /// Marks every registration shut down and wakes its tasks, so pending I/O fails instead of
    /// hanging. Later registrations fail.
    pub(crate) fn shutdown(&mut self) {
        let mut wake = Vec::new();
        {
            let mut slab = self.shared.slab.lock();
            // Closed under the same lock `Slab::insert` checks: a registration racing with
            // this either is in `entries` now (and is marked below) or will be refused.
            slab.closed = true;
            for entry in &slab.entries {
                if let Some(io) = &entry.io {
                    io.set_readiness(SHUTDOWN, &mut wake);
                }
            }
        }
        for w in wake {
            w.wake();
        }
    }
}

/// A socket's registration with one reactor. Dropping it removes the slab entry; the owner must
/// call [`Registration::deregister`] with the source first.
pub(crate) struct Registration {
    io: Arc<ScheduledIo>,
    reactor: Arc<ReactorShared>,
    token: Token,
}

impl Registration {
    /// Registers `source` for both directions with `reactor`.
    pub(crate) fn new(
        source: &mut impl mio::event::Source,
        reactor: Arc<ReactorShared>,
    ) -> io::Result<Registration> {
        let io = Arc::new(ScheduledIo::new());
        let token = reactor.slab.lock().insert(io.clone())?;
        if let Err(e) =
            reactor
                .registry
                .register(source, token, Interest::READABLE | Interest::WRITABLE)
        {
            reactor.slab.lock().remove(token);
            return Err(e);
        }
        super::context::registered_with(&reactor);
        Ok(Registration { io, reactor, token })
    }

    /// Returns the readiness for `dir`, or stores the waker and returns `Pending`.
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
    ) -> Poll<io::Result<ReadyEvent>> {
        // Cooperative budget: a task whose sockets are always ready would otherwise never
        // return to the scheduler. Once its budget for this poll is spent it is rescheduled
        // (to the back of the queue) and this operation reports "not yet".
        if !super::budget::consume() {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let cur = self.io.readiness.load(Acquire);
        if cur & dir.mask() != 0 {
            return Poll::Ready(self.ready_event(cur, dir));
        }
        let mut waiters = self.io.waiters.lock();
        match dir {
            Direction::Read => waiters.readers.register(cx.waker()),
            Direction::Write => waiters.writers.register(cx.waker()),
        }
        let cur = self.io.readiness.load(Acquire);
        if cur & dir.mask() != 0 {
            return Poll::Ready(self.ready_event(cur, dir));
        }
        Poll::Pending
    }

    fn ready_event(&self, cur: usize, dir: Direction) -> io::Result<ReadyEvent> {
        if cur & SHUTDOWN != 0 {
            return Err(shutdown_error());
        }
        Ok(ReadyEvent {
            tick: cur >> 16,
            dir,
        })
    }

    /// Clears the direction's readiness if no event arrived since `ev` was observed.
    pub(crate) fn clear_readiness(&self, ev: ReadyEvent) {
        let _ = self.io.readiness.fetch_update(AcqRel, Acquire, |cur| {
            if cur >> 16 != ev.tick {
                return None;
            }
            Some(cur & !ev.dir.clearable())
        });
    }

    /// Runs a non-blocking operation until it stops saying `WouldBlock` (then waits for
    /// readiness) or `Interrupted` (then retries).
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            let ev = match self.poll_ready(cx, dir) {
                Poll::Ready(Ok(ev)) => ev,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.clear_readiness(ev),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                res => return Poll::Ready(res),
            }
        }
    }

    /// Like `poll_io` for reads into a buffer of `len` bytes: a short read means the socket
    /// buffer was drained, so readiness is cleared then and the next read waits for an event
    /// instead of spending a syscall on `WouldBlock`.
    pub(crate) fn poll_read_io(
        &self,
        cx: &mut Context<'_>,
        len: usize,
        mut op: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            let ev = match self.poll_ready(cx, Direction::Read) {
                Poll::Ready(Ok(ev)) => ev,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            match op() {
                Ok(n) => {
                    if n > 0 && n < len {
                        self.clear_readiness(ev);
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.clear_readiness(ev),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Removes the source from the poller. Errors are ignored: the fd is about to be closed,
    /// which removes it from epoll anyway.
    pub(crate) fn deregister(&self, source: &mut impl mio::event::Source) {
        let _ = self.reactor.registry.deregister(source);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.reactor.slab.lock().remove(self.token);
    }
}

pub(crate) fn shutdown_error() -> io::Error {
    io::Error::other("the scraipe runtime has shut down")
}

/// Sets the readiness of the socket `token` names (if it is still registered) and collects the
/// wakers to wake. Returns 1 for a socket's event, 0 for a stale one.
fn dispatch_event(slab: &Slab, token: Token, bits: usize, wake: &mut Vec<Waker>) -> usize {
    let Some(io) = slab.get(token) else { return 0 };
    #[cfg(feature = "observatory")]
    let before = wake.len();
    io.set_readiness(bits, wake);
    #[cfg(feature = "observatory")]
    super::observe::trace::reactor_event(token.0, bits, wake.len() - before);
    1
}

/// Raw epoll flags as our bits, read as mio reads them: readable on
/// `IN` or `PRI`; read-closed on `HUP`, or `IN` with `RDHUP`; write-closed on `HUP`, `OUT` with
/// `ERR`, or `ERR` alone.
fn epoll_bits(events: u32) -> usize {
    let has = |flag: libc::c_int| events & flag as u32 != 0;
    let mut bits = 0;
    if has(libc::EPOLLIN) || has(libc::EPOLLPRI) {
        bits |= READABLE;
    }
    if has(libc::EPOLLOUT) {
        bits |= WRITABLE;
    }
    if has(libc::EPOLLHUP) || (has(libc::EPOLLIN) && has(libc::EPOLLRDHUP)) {
        bits |= READ_CLOSED;
    }
    if has(libc::EPOLLHUP)
        || (has(libc::EPOLLOUT) && has(libc::EPOLLERR))
        || events == libc::EPOLLERR as u32
    {
        bits |= WRITE_CLOSED;
    }
    if has(libc::EPOLLERR) {
        bits |= ERROR;
    }
    bits
}

/// Whether `epoll_pwait2` works here (Linux ≥ 5.11, not refused by a sandbox): one
/// non-blocking call on the fresh epoll set.
fn pwait2_works(poll: &mio::Poll) -> bool {
    let mut events = Vec::with_capacity(1);
    wait_raw(poll, &mut events, Some(Duration::ZERO), true) >= 0
}

/// Waits on `poll`'s epoll set for events into `events` (up to its capacity) with
/// `epoll_pwait2` (`ns_timeout`) or `epoll_wait` (the timeout rounded up to whole ms, as mio
/// does). Returns the event count, or 0 after logging an error (`EINTR` is not one: epoll only
/// fails on programming errors, and a worker carries on rather than go down).
fn wait(
    poll: &mio::Poll,
    events: &mut Vec<libc::epoll_event>,
    timeout: Option<Duration>,
    ns_timeout: bool,
) -> usize {
    let n = wait_raw(poll, events, timeout, ns_timeout);
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            log::error!("reactor poll failed: {e}");
        }
        return 0;
    }
    n as usize
}

/// The system call itself: the event count, or -1 with `errno` set.
fn wait_raw(
    poll: &mio::Poll,
    events: &mut Vec<libc::epoll_event>,
    timeout: Option<Duration>,
    ns_timeout: bool,
) -> libc::c_long {
    events.clear();
    let cap = events.capacity().min(libc::c_int::MAX as usize) as libc::c_int;
    let fd = poll.as_raw_fd();
    let n = if ns_timeout {
        let ts = timeout.map(|d| libc::timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: the epoll fd is mio's and open for `poll`'s lifetime; `events` has room for
        // `cap` events; `ts_ptr` is null (no timeout) or points at `ts`, alive across the call;
        // a null sigmask with size 0 means "no mask change", as for epoll_wait.
        unsafe {
            libc::syscall(
                libc::SYS_epoll_pwait2,
                fd,
                events.as_mut_ptr(),
                cap,
                ts_ptr,
                std::ptr::null::<libc::sigset_t>(),
                0usize,
            )
        }
    } else {
        let ms = timeout.map_or(-1, |d| {
            d.checked_add(Duration::from_nanos(999_999))
                .unwrap_or(d)
                .as_millis()
                .min(libc::c_int::MAX as u128) as libc::c_int
        });
        // SAFETY: as above, without the timespec.
        libc::c_long::from(unsafe { libc::epoll_wait(fd, events.as_mut_ptr(), cap, ms) })
    };
    if n > 0 {
        // SAFETY: the kernel initialised the first `n` (≤ cap) events.
        unsafe { events.set_len(n as usize) };
    }
    n
}

impl TickClocks {
    fn new(poll: &mio::Poll) -> io::Result<TickClocks> {
        let fds = [TimerFd::new()?, TimerFd::new()?];
        for (fd, token) in fds.iter().zip(CLOCK_TOKENS) {
            fd.register(poll.registry(), token)?;
        }
        Ok(TickClocks {
            fds,
            at: [None, None],
        })
    }

    fn set(&mut self, i: usize, at: Instant) {
        self.fds[i].set_at(at);
        self.at[i] = Some(at);
    }
}

/// A CLOCK_MONOTONIC timerfd, so deadlines wake the poller with nanosecond precision instead
/// of epoll's millisecond timeout (which rounds up: tokio's timers fire ~1 ms late for it).
/// Registered edge-triggered and never read: re-arming resets its count, and each expiry
/// reports a new edge.
pub(crate) struct TimerFd {
    fd: RawFd,
}

impl TimerFd {
    pub(crate) fn new() -> io::Result<TimerFd> {
        // SAFETY: plain syscall with constant flags.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(TimerFd { fd })
    }

    /// Adds it to an epoll set (edge-triggered, as mio registers everything) under `token`.
    fn register(&self, registry: &mio::Registry, token: Token) -> io::Result<()> {
        registry.register(&mut SourceFd(&self.fd), token, Interest::READABLE)
    }

    /// One-shot expiry at `at` (never before: the delay is taken from a fresh clock read).
    pub(crate) fn set_at(&self, at: Instant) {
        let delay = at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1));
        self.set(delay);
    }

    /// One-shot expiry `delay` from now.
    fn set(&self, delay: Duration) {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: delay.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: delay.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `fd` is our open timerfd and `spec` a valid itimerspec.
        let rc = unsafe { libc::timerfd_settime(self.fd, 0, &spec, std::ptr::null_mut()) };
        if rc != 0 {
            log::error!("timerfd_settime failed: {}", io::Error::last_os_error());
        }
    }
}

impl AsRawFd for TimerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl Drop for TimerFd {
    fn drop(&mut self) {
        // SAFETY: we own the fd and close it once.
        unsafe { libc::close(self.fd) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ways of sleeping end at the armed deadline, never before it, sleep after sleep (the
    /// timerfd is never read: edge-triggered epoll reports each expiry after a re-arm), and an
    /// event (the waker) still ends a sleep early.
    #[test]
    fn both_clocks_wake_at_the_armed_deadline_and_never_before() {
        let metrics = WorkerMetrics::default();
        for try_pwait2 in [true, false] {
            let mut reactor = Reactor::with_pwait2(try_pwait2).unwrap();
            assert_eq!(
                reactor.uses_pwait2(),
                try_pwait2,
                "this kernel has epoll_pwait2"
            );
            for _ in 0..3 {
                let start = Instant::now();
                let deadline = start + Duration::from_millis(3);
                reactor.arm_timer(Some(deadline));
                // A bounded sleep longer than the deadline: the deadline ends it.
                reactor.poll(Some(Duration::from_secs(5)), &metrics);
                let now = Instant::now();
                assert!(now >= deadline, "woke {:?} early", deadline - now);
                assert!(
                    now - start < Duration::from_secs(2),
                    "slept through the deadline"
                );
            }
            // Nothing armed, woken by the waker: returns at once.
            reactor.shared().unpark();
            let start = Instant::now();
            reactor.poll(None, &metrics);
            assert!(start.elapsed() < Duration::from_secs(2));
        }
    }

    /// Raw epoll flags read as mio reads them.
    #[test]
    fn epoll_flags_read_as_mio_reads_them() {
        let f = |flags: &[libc::c_int]| epoll_bits(flags.iter().fold(0u32, |a, f| a | *f as u32));
        assert_eq!(f(&[libc::EPOLLIN]), READABLE);
        assert_eq!(f(&[libc::EPOLLPRI]), READABLE);
        assert_eq!(f(&[libc::EPOLLOUT]), WRITABLE);
        assert_eq!(
            f(&[libc::EPOLLIN, libc::EPOLLRDHUP]),
            READABLE | READ_CLOSED
        );
        assert_eq!(f(&[libc::EPOLLRDHUP]), 0);
        assert_eq!(f(&[libc::EPOLLHUP]), READ_CLOSED | WRITE_CLOSED);
        assert_eq!(
            f(&[libc::EPOLLOUT, libc::EPOLLERR]),
            WRITABLE | WRITE_CLOSED | ERROR
        );
        assert_eq!(f(&[libc::EPOLLERR]), WRITE_CLOSED | ERROR);
        assert_eq!(f(&[libc::EPOLLIN, libc::EPOLLERR]), READABLE | ERROR);
    }
}
