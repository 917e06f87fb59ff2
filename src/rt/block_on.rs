//! Blocking on a future: the sync bridge.
//!
//! * On a plain thread the future is polled on that thread; between polls the thread spins
//!   briefly (a round trip to a runtime worker usually completes within a few microseconds,
//!   far less than a futex sleep and wake-up), then parks until the future's waker fires.
//! * On a runtime worker thread (a task calling synchronous code that blocks) the worker does not
//!   block at all: it keeps running its scheduling loop — other tasks, its reactor, its timers —
//!   and polls the future whenever it is woken. That is what lets a task on a one-thread runtime
//!   wait for another task without deadlock. See `scheduler.rs` and DESIGN.md.

use std::cell::Cell;
use std::future::{Future, IntoFuture};
use std::pin::{pin, Pin};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{AcqRel, Acquire};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use super::context;
use super::worker::Interrupted;

/// How long a plain thread spins for a result before parking, when no runtime says otherwise.
const DEFAULT_SPIN: Duration = Duration::from_micros(25);

/// `spin` if this process may run on more than one CPU, else zero: with a single CPU (a
/// `taskset`, a cgroup limit) the thread we would wait for cannot run while we spin, so
/// spinning only delays it.
pub(crate) fn spin_if_parallel(spin: Duration) -> Duration {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cpus = *CPUS.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    if cpus > 1 {
        spin
    } else {
        Duration::ZERO
    }
}

/// Runs a future to completion from synchronous code, anywhere.
///
/// * From a plain thread: polls it here, parking between wake-ups. Timers and sockets used by the
///   future need a runtime: poll it inside one (e.g. `handle.spawn(fut).join()`), or enter one
///   with [`Handle::enter`](super::Handle::enter).
/// * From inside a runtime task: the worker keeps running its other tasks, timers and I/O while it
///   waits, so blocking on work that needs this very worker neither panics nor deadlocks — on a
///   pool of one thread, and nested several levels deep.
///
/// ```
/// use scraipe::rt::{block_on, Runtime};
/// let rt = Runtime::builder().worker_threads(1).build().unwrap();
/// let outer = rt.spawn(async {
///     // Synchronous code inside a task waits for another task on the same single worker.
///     let inner = scraipe::rt::spawn(async { 21 });
///     block_on(inner).unwrap() * 2
/// });
/// assert_eq!(outer.join().unwrap(), 42);
/// ```
///
/// # Panics
/// When called inside a task and the runtime shuts down before the future completes (the task
/// then finishes with a panic `JoinError`, and the worker exits normally).
pub fn block_on<F: IntoFuture>(future: F) -> F::Output {
    block_on_driving(pin!(future.into_future()), None)
}

/// `block_on`, optionally also giving `guest` (a runtime without worker threads, other than the
/// one this worker belongs to) a non-blocking turn between this worker's own tasks.
///
/// The rule: a worker thread that blocks keeps driving *its own* runtime, whatever it waits
/// for. It never takes another runtime's core and runs that runtime's loop instead — that
/// would stop this worker's queue, reactor and timers, and a future that needs them (a task
/// of this runtime) could never complete.
pub(crate) fn block_on_driving<F: Future>(
    mut future: Pin<&mut F>,
    guest: Option<&super::Handle>,
) -> F::Output {
    let nested = context::with_worker(|w| {
        #[cfg(feature = "observatory")]
        let _section = w.map(|_| super::observe::blocking_section());
        w.map(|w| match w.drive(future.as_mut(), false, guest) {
            Ok(out) => out,
            Err(Interrupted::Shutdown) => {
                panic!("the scraipe runtime shut down while a task was blocked in block_on")
            }
        })
    });
    match nested {
        Some(out) => out,
        None => park_on(future, spin_if_parallel(DEFAULT_SPIN), None),
    }
}

/// The waker of a plain thread blocked on a future.
pub(crate) struct ThreadSignal {
    notified: AtomicBool,
    thread: Thread,
}

impl Wake for ThreadSignal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.notified.swap(true, AcqRel) {
            // std's parker only makes a syscall if the thread is actually parked.
            self.thread.unpark();
        }
    }
}

impl ThreadSignal {
    pub(crate) fn new() -> Arc<ThreadSignal> {
        Arc::new(ThreadSignal {
            notified: AtomicBool::new(false),
            thread: std::thread::current(),
        })
    }

    /// Waits for a wake-up: spins for up to `spin` (if spinning pays on this thread, see
    /// [`CALLER_SPIN_PAYS`]), then parks (at most until `limit`, if given). Returns true if
    /// woken, false if the limit passed first.
    pub(crate) fn wait(&self, spin: Duration, limit: Option<Instant>) -> bool {
        let start = Instant::now();
        // A thread that has just woken a sleeping worker must not spin: the kernel tends to
        // run the woken worker on the waker's CPU, so our spin would delay the very completion
        // we wait for (measured: every such round trip took the whole spin, ~27 µs, instead
        // of ~5). Park at once and let the worker have the CPU.
        let woke_a_worker = WOKE_A_WORKER.with(|w| w.replace(false));
        let mut gate = CALLER_SPIN.with(Cell::get);
        if !spin.is_zero() && !woke_a_worker && gate.should_spin() {
            let mut spins = 0u32;
            let won = loop {
                if self.notified.load(Acquire) && self.notified.swap(false, AcqRel) {
                    break true;
                }
                if start.elapsed() >= spin {
                    break false;
                }
                spin_pause(&mut spins);
            };
            gate.record(won);
            CALLER_SPIN.with(|g| g.set(gate));
            if won {
                return true;
            }
        } else {
            CALLER_SPIN.with(|g| g.set(gate));
        }
        loop {
            if self.notified.swap(false, AcqRel) {
                return true;
            }
            match limit {
                None => std::thread::park(),
                Some(limit) => {
                    let now = Instant::now();
                    if now >= limit {
                        return false;
                    }
                    std::thread::park_timeout(limit - now);
                }
            }
        }
    }
}

/// Called by a producer that woke a parked worker (see `ThreadSignal::wait`).
pub(crate) fn note_woke_a_worker() {
    WOKE_A_WORKER.with(|w| w.set(true));
}

thread_local! {
    /// Set when this thread woke a parked worker since its last wait.
    static WOKE_A_WORKER: Cell<bool> = const { Cell::new(false) };

    /// Whether this thread's spins before parking have been paying off lately.
    static CALLER_SPIN: Cell<SpinGate> = const { Cell::new(SpinGate::new()) };
}

/// Adaptive spinning, per thread: spin before parking only while spins have been winning.
///
/// A spin that ends with the wait still pending was pure cost — and on a small machine worse:
/// the thread it waits for may be queued on the very CPU the spinner holds. So after a lost
/// spin the thread skips spinning for its next 1 wait, after another lost one for 2, then 4,
/// ... up to `MAX_SKIP`; a spin that wins resets it. Back-to-back hand-offs (every spin wins)
/// keep spinning; spaced ones (every spin loses) spin once in `MAX_SKIP + 1` waits, which
/// costs next to nothing, and that occasional probe notices when spinning starts to win again.
/// The probe delays the call it lands on by the whole spin, so it must stay under 1 % of calls
/// (one in 256): at one in 65 it *was* the p99 of spaced round trips (53 µs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SpinGate {
    skip: u32,
    backoff: u32,
}

impl SpinGate {
    const MAX_SKIP: u32 = 255;

    pub(crate) const fn new() -> SpinGate {
        SpinGate {
            skip: 0,
            backoff: 0,
        }
    }

    /// Whether to spin this time (counts a skipped wait).
    pub(crate) fn should_spin(&mut self) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            false
        } else {
            true
        }
    }

    /// The outcome of a spin: `won` if what we waited for came while spinning.
    pub(crate) fn record(&mut self, won: bool) {
        if won {
            self.backoff = 0;
        } else {
            self.backoff = (self.backoff * 2).clamp(1, Self::MAX_SKIP);
            self.skip = self.backoff;
        }
    }
}

/// Something to try while waiting (see [`park_on`]); `Some` ends the wait with that value.
pub(crate) type Retry<'a, F> = &'a mut dyn FnMut(Pin<&mut F>) -> Option<<F as Future>::Output>;

/// Polls `future` on this thread until it completes. With `retry`, the wait is cut every
/// `retry.0` so the caller's `retry.1` can try something else (take over an idle core);
/// returning `Some` from it ends the wait with that value.
pub(crate) fn park_on<F: Future>(
    mut future: Pin<&mut F>,
    spin: Duration,
    mut retry: Option<(Duration, Retry<'_, F>)>,
) -> F::Output {
    let signal = ThreadSignal::new();
    let waker = Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        match &mut retry {
            None => {
                signal.wait(spin, None);
            }
            Some((every, attempt)) => {
                if !signal.wait(spin, Some(Instant::now() + *every)) {
                    if let Some(out) = attempt(future.as_mut()) {
                        return out;
                    }
                }
            }
        }
    }
}

/// One step of a spin-wait: a burst of CPU pause hints. (Yielding the core with `sched_yield`
/// was tried: on a loaded machine it hands the core to another process for a whole timeslice,
/// which made round trips ~10x slower, so the wait stays a pure, bounded spin.)
pub(crate) fn spin_pause(spins: &mut u32) {
    *spins += 1;
    for _ in 0..32 {
        std::hint::spin_loop();
    }
}

#[cfg(test)]
mod spin_gate_tests {
    use super::SpinGate;

    /// Waits that never find anything spin less and less, settling at one probe per 256
    /// waits — under 1 % of calls, so a probe's delay stays out of the p99; a won spin resets.
    #[test]
    fn losing_spins_settle_at_one_probe_per_256_waits() {
        let mut gate = SpinGate::new();
        let mut spins = 0;
        for _ in 0..10_000 {
            if gate.should_spin() {
                spins += 1;
                gate.record(false);
            }
        }
        // 1 + 2 + 4 + ... ramps up, then one spin every 256 waits.
        assert!(
            spins <= 10_000 / 256 + 10,
            "{spins} spins in 10,000 losing waits"
        );
        assert!(
            spins >= 10_000 / 256 - 2,
            "{spins} spins: the probe stopped"
        );
        let mut steady = 0;
        for _ in 0..2_560 {
            if gate.should_spin() {
                steady += 1;
                gate.record(false);
            }
        }
        assert_eq!(steady, 10, "one probe per 256 waits once settled");
        // A probe that wins re-enables spinning at once.
        while !gate.should_spin() {}
        gate.record(true);
        assert!(gate.should_spin());
    }
}
