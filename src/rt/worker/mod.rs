//! One worker: the loop that runs tasks, polls its driver, steals, and (in `park.rs`)
//! goes to sleep.
//!
//! # One worker's loop (`WorkerCx::drive`)
//!
//! ```text
//! loop:
//!     poll the future being blocked on, if it was woken (nested block_on / Runtime::block_on)
//!     every event_interval ticks: fire due timers + poll the reactor without blocking
//!     every global_queue_interval ticks: take a batch from the injector first (run one)
//!     next task: LIFO slot → own deque → injector batch → deferred (yielded) tasks
//!     none: fire timers, poll reactor(0), steal from siblings, spin for spin_before_park,
//!           then park: register as sleeper, re-check all queues, epoll_wait (timerfd armed
//!           for the next deadline)
//! ```
//!
//! Fairness: a task that wakes itself during its own poll (e.g. `yield_now`) is deferred until
//! the deque and the injector are empty or the next driver turn, never the LIFO slot; the injector is checked every `global_queue_interval` ticks
//! even when the local queue is full; the reactor is polled every `event_interval` ticks even
//! when tasks keep coming, so a busy worker cannot starve I/O.
//!
//! # The sync bridge
//!
//! `block_on` called on a worker thread (from inside a task) does not block the thread: it
//! runs this same loop, polling the awaited future whenever its waker fires and other tasks in
//! between. That is what keeps a one-worker runtime alive when a task synchronously waits for
//! another task. See DESIGN.md for the limits.

mod park;
mod timer_spin;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{AcqRel, Relaxed, SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use crossbeam_deque::{Steal, Worker};

use super::budget;
use super::context;
#[cfg(feature = "observatory")]
use super::observe;
use super::reactor::ReactorShared;
use super::scheduler::{Config, Remote, Shared};
use super::task::Notified;
use super::Handle;

/// The parts of a worker only its driving thread touches.
pub(crate) struct Core {
    pub(crate) index: usize,
    local: Worker<Notified>,
    lifo: Cell<Option<Notified>>,
    lifo_polls: Cell<u32>,
    /// Tasks that woke themselves during their own poll (`yield_now`): they wait here until the
    /// deque and the injector are empty, or the next driver turn, as tokio defers them. Put at
    /// the back of the deque instead, two tasks yielding in a loop keep the deque from ever
    /// emptying, and remote spawns wait for the injector's turn every `global_queue_interval`
    /// ticks, one at a time (tokio's `spawn_many_remote_busy1` measured 270× slower that way).
    /// Never stolen, like the LIFO slot: a yielding task wants *other* work to run first.
    deferred: RefCell<Vec<Notified>>,
    /// True while this worker dispatches timer and socket events: tasks they wake go to the back
    /// of the deque in event order (the LIFO slot is for one task waking another).
    dispatching: Cell<bool>,
    /// Ticks left until the next reactor/timer check and the next injector-first pick. Counting
    /// down avoids two integer divisions per task.
    event_countdown: Cell<u32>,
    global_countdown: Cell<u32>,
    searching: Cell<bool>,
    rng: Cell<u32>,
    /// Set when the worker returns from sleeping in its driver; the first task it runs after
    /// that checks for siblings sleeping without a time bound (see driver.rs).
    woke_from_park: Cell<bool>,
    /// This worker woke from its driver and skipped rousing an unbounded sleeper because its
    /// driver held nothing to watch (no timer, no socket). Paid — the sleeper roused — as soon
    /// as this thread registers a timer or a socket with its own driver; forgotten when the
    /// worker goes back to sleep (`worker/park.rs`, "rousing").
    rouse_owed: Cell<bool>,
    /// Whether this worker's idle spin has been paying off lately (see `park.rs`).
    pub(super) spin_gate: Cell<crate::rt::block_on::SpinGate>,
    /// Set while tasks a timer wake-up fired are queued here: until this instant they do not
    /// wake a sibling (see `park::HANDOFF_AFTER`); after it, the next task run checks whether
    /// work is still queued and wakes one then.
    pub(super) handoff_at: Cell<Option<Instant>>,
    /// Tasks run since the hand-off deadline was last checked (see `handoff_late_timer_work`).
    pub(super) handoff_tasks: Cell<u8>,
}

impl Core {
    pub(crate) fn new(index: usize, local: Worker<Notified>, config: &Config) -> Core {
        Core {
            index,
            local,
            lifo: Cell::new(None),
            lifo_polls: Cell::new(0),
            deferred: RefCell::new(Vec::new()),
            dispatching: Cell::new(false),
            event_countdown: Cell::new(config.event_interval),
            global_countdown: Cell::new(config.global_queue_interval),
            searching: Cell::new(false),
            rng: Cell::new(0x9E37_79B9 ^ (index as u32).wrapping_mul(0x85EB_CA6B) | 1),
            woke_from_park: Cell::new(false),
            rouse_owed: Cell::new(false),
            spin_gate: Cell::new(crate::rt::block_on::SpinGate::new()),
            handoff_at: Cell::new(None),
            handoff_tasks: Cell::new(0),
        }
    }
}

/// What a thread driving a core works with; installed in the thread-local context.
pub(crate) struct WorkerCx {
    pub(crate) shared: Arc<Shared>,
    core: Box<Core>,
}

/// The waker of a future being blocked on by a worker: sets a flag, and interrupts the worker's
/// `poll` only if it is asleep in it.
struct Signal {
    notified: AtomicBool,
    sleeping: AtomicBool,
    reactor: Arc<ReactorShared>,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if self.notified.swap(true, SeqCst) {
            return;
        }
        if self.sleeping.load(SeqCst) {
            self.reactor.unpark();
        }
    }
}

/// Puts the entered handle back when `drive` returns or unwinds.
struct EnteredGuard(Option<Handle>);

impl Drop for EnteredGuard {
    fn drop(&mut self) {
        context::replace_entered(self.0.take());
    }
}

/// Why `drive` returned without the future's output.
pub(crate) enum Interrupted {
    Shutdown,
}

impl WorkerCx {
    pub(crate) fn new(shared: Arc<Shared>, core: Box<Core>) -> WorkerCx {
        WorkerCx { shared, core }
    }

    pub(crate) fn into_core(self) -> Box<Core> {
        self.core
    }

    pub(crate) fn handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
        }
    }

    pub(crate) fn index(&self) -> usize {
        self.core.index
    }

    pub(crate) fn remote(&self) -> &Remote {
        &self.shared.remotes[self.core.index]
    }

    pub(crate) fn reactor_shared(&self) -> &Arc<ReactorShared> {
        &self.remote().driver.io
    }

    /// Schedules a task on this worker (called on this worker's thread only).
    pub(crate) fn push_local(&self, task: Notified, is_yield: bool) {
        let core = &self.core;
        self.pay_owed_rouse();
        if self.shared.is_shutdown() {
            drop(task);
            return;
        }
        if is_yield {
            // Runs after the queues are empty (or at the next driver turn): no sibling needs
            // waking for it.
            core.deferred.borrow_mut().push(task);
            return;
        }
        if !self.shared.config.lifo_slot || core.dispatching.get() {
            core.local.push(task);
        } else {
            match core.lifo.replace(Some(task)) {
                // The slot was free: this task runs next, no one else needs waking for it.
                None => return,
                Some(prev) => core.local.push(prev),
            }
        }
        self.notify_if_surplus();
    }

    /// Wakes a sibling only if this worker has more queued work than it is about to run itself
    /// (as tokio does): a chain of spawns or a ping-pong stays on one warm core instead of paying
    /// a wake-up and cross-core cache traffic per task. A searching worker will notify when it
    /// stops searching; a lone worker has nobody to wake.
    fn notify_if_surplus(&self) {
        let core = &self.core;
        if core.searching.get() || self.shared.remotes.len() == 1 {
            return;
        }
        if core.handoff_at.get().is_some() {
            return; // a timer batch: `run_task` decides after `HANDOFF_AFTER`
        }
        if !self.shared.idle.maybe_should_notify() {
            return;
        }
        let lifo = core.lifo.take();
        let queued = usize::from(lifo.is_some()) + core.local.len();
        core.lifo.set(lifo);
        if queued > 1 {
            self.shared.notify_parked();
        }
    }

    /// Spawns onto this worker's deque.
    pub(crate) fn push_spawned(&self, task: Notified) {
        self.pay_owed_rouse();
        self.core.local.push(task);
        self.notify_if_surplus();
    }

    /// Runs the worker loop until `future` completes.
    ///
    /// `top_level_pool_thread` is true only for a pool thread's outermost loop (whose future
    /// never completes): at shutdown it returns at once instead of giving the future a last
    /// poll. `guest` is another runtime, without worker threads, that the caller blocks on: it
    /// gets a non-blocking turn whenever this worker runs out of its own work, and this worker
    /// sleeps at most `GUEST_TURN` at a time so the guest's timers and sockets keep moving.
    pub(crate) fn drive<F: Future>(
        &self,
        mut future: Pin<&mut F>,
        top_level_pool_thread: bool,
        guest: Option<&Handle>,
    ) -> Result<F::Output, Interrupted> {
        let signal = Arc::new(Signal {
            notified: AtomicBool::new(true),
            sleeping: AtomicBool::new(false),
            reactor: self.reactor_shared().clone(),
        });
        let waker = Waker::from(signal.clone());
        let mut cx = Context::from_waker(&waker);
        // Our own tasks must not see a runtime entered by the code that called us; the awaited
        // future must (it may belong to that runtime). The guard restores it however we leave.
        let entered = EnteredGuard(context::replace_entered(None));
        let mut poll_awaited = |cx: &mut Context<'_>| {
            let hidden = context::replace_entered(entered.0.clone());
            // A fresh budget per poll: the blocked task's own budget may be spent, and the
            // future it waits for must still make progress.
            let budget = budget::start();
            // The blocked task's code runs here: a long poll of it is a long poll.
            #[cfg(feature = "observatory")]
            crate::rt::observe::block_on_poll();
            let res = future.as_mut().poll(cx);
            budget::restore(budget);
            context::replace_entered(hidden);
            res
        };
        loop {
            // Load first: the swap is a locked instruction, and most iterations see `false`.
            if signal.notified.load(Relaxed) && signal.notified.swap(false, AcqRel) {
                if let Poll::Ready(out) = poll_awaited(&mut cx) {
                    return Ok(out);
                }
            }
            if self.shared.is_shutdown() {
                if !top_level_pool_thread {
                    // Give the awaited future one last chance: shutdown wakes I/O with errors.
                    self.maintenance();
                    if let Poll::Ready(out) = poll_awaited(&mut cx) {
                        return Ok(out);
                    }
                }
                return Err(Interrupted::Shutdown);
            }
            match self.next_task() {
                Some(task) => self.run_task(task),
                None => match guest {
                    Some(guest) if guest.tick_as_guest() > 0 => {}
                    _ => self.idle(&signal, guest.is_some()),
                },
            }
        }
    }

    fn next_task(&self) -> Option<Notified> {
        let core = &self.core;
        let config = &self.shared.config;
        let events = core.event_countdown.get() - 1;
        if events == 0 {
            core.event_countdown.set(config.event_interval);
            self.maintenance();
        } else {
            core.event_countdown.set(events);
        }
        let global = core.global_countdown.get() - 1;
        if global == 0 {
            core.global_countdown.set(config.global_queue_interval);
            // A batch, not one task: behind a deque that never empties (a chain of tasks
            // that each spawn the next), one injected task per interval would let remote
            // spawns through at one per `global_queue_interval` polls — 1,000 spawns behind
            // two 10 µs chains took 172 ms. The batch (at most half the injector, at most
            // crossbeam's 32) goes to the back of our FIFO deque, behind the local work.
            if let Some(task) = self.steal_injected_batch() {
                return Some(task);
            }
        } else {
            core.global_countdown.set(global);
        }
        if let Some(task) = core.lifo.take() {
            let polls = core.lifo_polls.get();
            if polls < config.max_lifo_polls {
                core.lifo_polls.set(polls + 1);
                #[cfg(feature = "observatory")]
                observe::trace::source(observe::trace::Source::Lifo, || core.local.len());
                return Some(task);
            }
            core.local.push(task);
        }
        core.lifo_polls.set(0);
        if let Some(task) = core.local.pop() {
            #[cfg(feature = "observatory")]
            observe::trace::source(observe::trace::Source::Local, || core.local.len());
            return Some(task);
        }
        if let Some(task) = self.steal_injected_batch() {
            return Some(task);
        }
        self.take_deferred()
    }

    /// Moves the deferred (yielded) tasks to the back of the (FIFO) deque, in the order they
    /// yielded; returns whether there were any.
    fn flush_deferred(&self) -> bool {
        let core = &self.core;
        let mut deferred = core.deferred.borrow_mut();
        if deferred.is_empty() {
            return false;
        }
        for task in deferred.drain(..) {
            core.local.push(task);
        }
        true
    }

    /// With the deque and the injector empty: the deferred tasks, oldest first.
    fn take_deferred(&self) -> Option<Notified> {
        if !self.flush_deferred() {
            return None;
        }
        let task = self.core.local.pop();
        #[cfg(feature = "observatory")]
        if task.is_some() {
            let core = &self.core;
            observe::trace::source(observe::trace::Source::Deferred, || core.local.len());
        }
        task
    }

    fn steal_injected_batch(&self) -> Option<Notified> {
        if self.shared.injector.is_empty() {
            return None;
        }
        loop {
            match self.shared.injector.steal_batch_and_pop(&self.core.local) {
                Steal::Success(t) => {
                    #[cfg(feature = "observatory")]
                    {
                        let core = &self.core;
                        observe::trace::source(observe::trace::Source::Injector, || {
                            core.local.len()
                        });
                    }
                    return Some(t);
                }
                Steal::Retry => continue,
                Steal::Empty => return None,
            }
        }
    }

    fn run_task(&self, task: Notified) {
        let core = &self.core;
        if core.searching.get() {
            core.searching.set(false);
            if self.shared.idle.stop_searching() && self.shared.has_pending_work() {
                // We were the last one looking and more work is queued than we can take.
                self.shared.notify_parked();
            }
        }
        if core.woke_from_park.replace(false) && self.shared.remotes.len() > 1 {
            if self.driver_has_something_to_watch() {
                self.rouse_an_unbounded_sleeper();
            } else {
                core.rouse_owed.set(true);
            }
        }
        self.remote().metrics.add_poll();
        let budget = budget::start();
        task.run();
        budget::restore(budget);
        if core.handoff_at.get().is_some() {
            self.handoff_late_timer_work();
        }
    }

    /// Fires due timers and polls the reactor without blocking. Returns how many tasks that woke.
    fn maintenance(&self) -> usize {
        // Deferred tasks run no later than the next driver turn, even when the deque never
        // empties (what tokio does with its defer list).
        self.flush_deferred();
        let remote = self.remote();
        let was = self.core.dispatching.replace(true);
        // Tasks woken by timers hand off to a sibling only after `HANDOFF_AFTER` (see park.rs);
        // tasks woken by socket events notify as usual.
        let now = Instant::now();
        let fired = self.fire_timers_handing_off_late(now, || {
            let own = remote.driver.fire_timers_as_owner(now, &remote.metrics);
            // The ticker serves the timers of siblings asleep relying on it while it is busy
            // too, not only on its ticks (see park.rs).
            if self.shared.ticker.load(Relaxed) == self.core.index {
                own + self.fire_siblings_timers(now)
            } else {
                own
            }
        });
        let woken = fired + remote.driver.poll_as_owner(&remote.metrics);
        self.core.dispatching.set(was);
        woken
    }

    /// Turns the drivers of siblings that are busy (not asleep in their driver) and have not
    /// turned it for a while: their sockets and timers must not wait for them. Wake-ups land on
    /// this worker's queue. See `driver.rs`.
    fn assist_unattended_drivers(&self) -> usize {
        let shared = &self.shared;
        if shared.remotes.len() == 1 {
            return 0;
        }
        let was = self.core.dispatching.replace(true);
        let metrics = &self.remote().metrics;
        let mut woken = 0;
        for (idx, remote) in shared.remotes.iter().enumerate() {
            if idx != self.core.index {
                woken += remote.driver.turn_if_unattended(metrics);
            }
        }
        self.core.dispatching.set(was);
        woken
    }

    /// Tries to steal from siblings and the injector. The worker counts as *searching* (which
    /// makes producers skip waking others) only if fewer than half the workers already do; it
    /// steals either way, so visible work never waits for a searcher slot.
    fn steal_work(&self) -> Option<Notified> {
        let core = &self.core;
        let shared = &self.shared;
        if !core.searching.get() && shared.idle.try_start_searching() {
            core.searching.set(true);
        }
        let n = shared.remotes.len();
        let start = self.next_random() as usize % n;
        for i in 0..n {
            let idx = (start + i) % n;
            if idx == core.index {
                continue;
            }
            let stealer = &shared.remotes[idx].stealer;
            loop {
                let before = core.local.len();
                match stealer.steal_batch_and_pop(&core.local) {
                    Steal::Success(t) => {
                        let moved = core.local.len() - before + 1;
                        self.remote().metrics.add_steal(moved as u64);
                        #[cfg(feature = "observatory")]
                        {
                            observe::trace::steal(idx, core.index, moved);
                            let from = observe::trace::Source::StolenFrom(idx);
                            observe::trace::source(from, || core.local.len());
                        }
                        return Some(t);
                    }
                    Steal::Retry => continue,
                    Steal::Empty => break,
                }
            }
        }
        self.steal_injected_batch()
    }

    fn next_random(&self) -> u32 {
        // xorshift32: only used to spread steal attempts.
        let mut x = self.core.rng.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.core.rng.set(x);
        x
    }

    pub(super) fn has_local_work(&self) -> bool {
        // A Cell cannot be peeked: take the LIFO task out and put it back.
        let lifo = self.core.lifo.take();
        let has = lifo.is_some();
        self.core.lifo.set(lifo);
        has || !self.core.local.is_empty() || !self.core.deferred.borrow().is_empty()
    }

    /// Drops every task queued on this core (their tasks stay in the owned-task list, which
    /// shutdown cancels).
    pub(crate) fn drop_queued_tasks(&self) {
        let core = &self.core;
        drop(core.lifo.take());
        drop(std::mem::take(&mut *core.deferred.borrow_mut()));
        while let Some(task) = core.local.pop() {
            drop(task);
        }
    }

    /// Runs one scheduling round for a runtime driven by the application: timers and I/O
    /// without blocking, then at most `event_interval` tasks. Returns the number of tasks polled.
    pub(crate) fn tick(&self) -> usize {
        self.maintenance();
        let mut polled = 0;
        while polled < self.shared.config.event_interval as usize {
            match self.next_task() {
                Some(task) => {
                    self.run_task(task);
                    polled += 1;
                }
                None => break,
            }
        }
        if self.core.searching.replace(false) {
            self.shared.idle.stop_searching();
        }
        polled
    }
}
