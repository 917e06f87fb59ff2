//! loom models of the runtime's concurrent core. With `RUSTFLAGS="--cfg loom"` (`.ci/loom`)
//! each test explores every interleaving of a few threads (up to `LOOM_MAX_PREEMPTIONS`
//! preemptions) over the real code of:
//!
//! * the task state word (`task/state.rs`, `task/raw.rs`, `task/list.rs`): wake vs complete,
//!   abort vs wake vs run, JoinHandle drop vs completion, shutdown vs wake and run, and a wake
//!   racing the runtime's shutdown *and drop* (the use-after-free of issue 9, defect 1);
//! * the JOIN_WAKER hand-off between a polling `JoinHandle` and a completing task;
//! * the `oneshot` channel and the `Semaphore`;
//! * the idle/sleeper protocol (`idle.rs`): a push racing a worker falling asleep;
//! * the driver hand-off (`driver.rs`'s rule, over a loom mutex): an event posted while the
//!   owner is busy is handled by the owner or by a sibling, never by both, never by neither.
//!
//! Without `cfg(loom)` the same tests run as repeated stress tests on real threads, which is
//! also what `.ci/miri` runs under Miri.
//!
//! Pieces that talk to the kernel (mio, eventfd, timerfd) are outside the models; where a
//! protocol is built on them, the model replaces the syscall by what it promises (e.g. an
//! eventfd write by a flag the sleeper reads).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use std::sync::atomic::Ordering::{AcqRel, Acquire, Release, SeqCst};

#[cfg(loom)]
use loom::{
    model,
    sync::{
        atomic::{AtomicBool, AtomicUsize},
        Arc as ModelArc, Mutex as LoomMutex,
    },
    thread,
};
#[cfg(not(loom))]
use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize},
        Arc as ModelArc, Mutex as LoomMutex,
    },
    thread,
};

/// Without loom the same scenarios run as plain stress tests on real threads (and under Miri,
/// `.ci/miri`, which checks them for undefined behaviour, data races and leaks): a few
/// repetitions instead of an exhaustive search.
#[cfg(not(loom))]
fn model(f: impl Fn() + Sync + Send + 'static) {
    let runs = if cfg!(miri) { 3 } else { 200 };
    for _ in 0..runs {
        f();
    }
}

use super::idle::Idle;
use super::task::list::OwnedTasks;
use super::task::raw::OwnedRef;
use super::task::{self, Header, JoinError, JoinHandle, Notified, Schedule};

// ----- helpers -----

/// A waker that raises a flag.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Release);
    }
}

fn flag() -> (Arc<Flag>, Waker) {
    let f = Arc::new(Flag(AtomicBool::new(false)));
    let w = Waker::from(f.clone());
    (f, w)
}

/// A scheduler whose run queue is a vector; `release` unlinks from the owned list.
#[derive(Clone)]
struct Queue {
    tasks: Arc<LoomMutex<Vec<Notified>>>,
    list: Arc<OwnedTasks>,
}

impl Schedule for Queue {
    fn schedule(&self, task: Notified) {
        self.tasks.lock().unwrap().push(task);
    }
    fn link(&self, task: OwnedRef) -> Result<(), OwnedRef> {
        self.list.bind(task)
    }
    fn release(&self, task: std::ptr::NonNull<Header>, linked: bool) -> bool {
        linked && self.list.remove(task)
    }
}

impl Queue {
    fn new() -> Queue {
        Queue {
            tasks: Arc::new(LoomMutex::new(Vec::new())),
            list: Arc::new(OwnedTasks::new(1)),
        }
    }

    fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (notified, handle) = crate::rt::sited!(task::spawn_task(future, self.clone()); std::panic::Location::caller());
        if let Some(n) = notified {
            self.schedule(n);
        }
        handle
    }

    /// Runs queued tasks until the queue is empty.
    fn run_all(&self) {
        loop {
            let next = self.tasks.lock().unwrap().pop();
            match next {
                Some(t) => t.run(),
                None => return,
            }
        }
    }
}

/// A future that completes once its gate opens. Counts how often it is dropped.
struct Gated {
    gate: Arc<Gate>,
    drops: Arc<AtomicUsize>,
}

struct Gate {
    open: AtomicBool,
    waker: LoomMutex<Option<Waker>>,
}

impl Gate {
    fn new() -> Arc<Gate> {
        Arc::new(Gate {
            open: AtomicBool::new(false),
            waker: LoomMutex::new(None),
        })
    }

    fn open(&self) {
        self.open.store(true, SeqCst);
        let w = self.waker.lock().unwrap().take();
        if let Some(w) = w {
            w.wake();
        }
    }
}

impl Future for Gated {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        let mut slot = self.gate.waker.lock().unwrap();
        if self.gate.open.load(SeqCst) {
            return Poll::Ready(7);
        }
        *slot = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Gated {
    fn drop(&mut self) {
        self.drops.fetch_add(1, AcqRel);
    }
}

fn poll_handle<T>(h: &mut JoinHandle<T>, waker: &Waker) -> Poll<Result<T, JoinError>> {
    Pin::new(h).poll(&mut Context::from_waker(waker))
}

// ----- the task state word -----

/// A wake from another thread races the runner's poll: the task completes exactly once, with
/// its output, and the future is dropped exactly once.
#[test]
fn task_wake_vs_poll() {
    model(|| {
        let q = Queue::new();
        let gate = Gate::new();
        let drops = Arc::new(AtomicUsize::new(0));
        let mut h = q.spawn(Gated {
            gate: gate.clone(),
            drops: drops.clone(),
        });
        q.run_all();
        let opener = thread::spawn(move || gate.open());
        q.run_all();
        opener.join().unwrap();
        q.run_all();
        let (_, w) = flag();
        assert_eq!(poll_handle(&mut h, &w), Poll::Ready(Ok(7)));
        assert_eq!(drops.load(Acquire), 1);
    });
}

/// A future that wakes itself once (a yield) and then waits for its gate, counting its polls.
#[cfg(feature = "observatory")]
struct YieldThenGated {
    gate: Arc<Gate>,
    yielded: bool,
    polls: Arc<AtomicUsize>,
}

#[cfg(feature = "observatory")]
impl Future for YieldThenGated {
    type Output = u32;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        self.polls.fetch_add(1, AcqRel);
        let gate = self.gate.clone();
        let mut slot = gate.waker.lock().unwrap();
        if gate.open.load(SeqCst) {
            return Poll::Ready(7);
        }
        *slot = Some(cx.waker().clone());
        if !self.yielded {
            self.yielded = true;
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

/// With the observatory, a task's wake causes, last worker and poll count ride its state
/// word (§1.11): a self-wake's `fetch_or` (`State::notify_self`) and a wake from another thread
/// race the poll start's and the poll end's CASes. The task still completes exactly once, and
/// the state word's poll count is the number of polls the future saw, each after the first
/// with a counted cause. (loom does not model std's thread-locals, which the hooks use to tell
/// a self-wake from another, so which source a wake is counted under is not checked here; that
/// the protocol stays sound, every wake leaves a cause and no poll is lost or counted twice
/// is.)
#[cfg(feature = "observatory")]
#[test]
fn observatory_self_wake_vs_other_wake_vs_poll() {
    model(|| {
        let q = Queue::new();
        let gate = Gate::new();
        let polls = Arc::new(AtomicUsize::new(0));
        let mut h = q.spawn(YieldThenGated {
            gate: gate.clone(),
            yielded: false,
            polls: polls.clone(),
        });
        let opener = thread::spawn(move || gate.open());
        q.run_all();
        opener.join().unwrap();
        q.run_all();
        let (_, w) = flag();
        assert_eq!(poll_handle(&mut h, &w), Poll::Ready(Ok(7)));
        let (counted, wakes) = h.polls_and_wakes();
        let seen = polls.load(Acquire) as u64;
        assert_eq!(counted, seen, "{wakes:?}");
        // Every poll after the first had a cause; one woken by two sources counts for each.
        assert!(wakes.total() >= seen - 1, "{seen} polls: {wakes:?}");
        for source in crate::rt::observe::WakeSource::ALL {
            assert!(wakes.get(source) < seen, "{seen} polls: {wakes:?}");
        }
    });
}

/// abort() from one thread, a wake from another, the runner on a third: the future is dropped
/// once, and the handle reports either the output or cancellation.
#[test]
fn task_abort_vs_wake_vs_run() {
    model(|| {
        let q = Queue::new();
        let gate = Gate::new();
        let drops = Arc::new(AtomicUsize::new(0));
        let h = q.spawn(Gated {
            gate: gate.clone(),
            drops: drops.clone(),
        });
        q.run_all();
        let h = {
            let aborter = thread::spawn(move || {
                h.abort();
                h
            });
            let opener = thread::spawn(move || gate.open());
            q.run_all();
            opener.join().unwrap();
            let h = aborter.join().unwrap();
            q.run_all();
            h
        };
        let mut h = h;
        let (_, w) = flag();
        match poll_handle(&mut h, &w) {
            Poll::Ready(Ok(7)) => {}
            Poll::Ready(Err(e)) => assert!(e.is_cancelled()),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(drops.load(Acquire), 1);
    });
}

/// abort() races the task's *first* poll, which links the task into the owned-task list when
/// it returns `Pending` (lazy linking). However they interleave, the task ends cancelled and
/// **out of the list**: a task linked by a poll that then finds `CANCELLED` must still be
/// unlinked at completion, or the list would keep every such task until shutdown.
#[test]
fn task_abort_vs_first_poll_leaves_the_list_empty() {
    model(|| {
        let q = Queue::new();
        let drops = Arc::new(AtomicUsize::new(0));
        let h = Arc::new(LoomMutex::new(q.spawn(Gated {
            gate: Gate::new(),
            drops: drops.clone(),
        })));
        let aborter = {
            let h = h.clone();
            thread::spawn(move || h.lock().unwrap().abort())
        };
        q.run_all();
        aborter.join().unwrap();
        q.run_all();
        let (_, w) = flag();
        let mut h = h.lock().unwrap();
        assert!(matches!(poll_handle(&mut h, &w), Poll::Ready(Err(e)) if e.is_cancelled()));
        assert_eq!(drops.load(Acquire), 1);
        assert_eq!(
            q.list.close_and_take_all().len(),
            0,
            "a finished task stayed linked"
        );
    });
}

/// Output with a drop counter.
struct Out(Arc<AtomicUsize>);
impl Drop for Out {
    fn drop(&mut self) {
        self.0.fetch_add(1, AcqRel);
    }
}

/// The JoinHandle is dropped while the task completes: the output is dropped exactly once,
/// by whichever side comes second, and the allocation is freed (loom checks for leaks of its
/// own objects, and the `Out` counter checks the output).
#[test]
fn task_join_handle_drop_vs_complete() {
    model(|| {
        let q = Queue::new();
        let dropped = Arc::new(AtomicUsize::new(0));
        let d = dropped.clone();
        let h = q.spawn(async move { Out(d) });
        let dropper = thread::spawn(move || drop(h));
        q.run_all();
        dropper.join().unwrap();
        assert_eq!(dropped.load(Acquire), 1);
    });
}

/// Runtime shutdown (close the owned list, cancel every task) races a wake and a runner: the
/// future is dropped once, the handle hears back, nothing runs a dropped future.
#[test]
fn task_shutdown_vs_wake_and_run() {
    model(|| {
        let q = Queue::new();
        let gate = Gate::new();
        let drops = Arc::new(AtomicUsize::new(0));
        let mut h = q.spawn(Gated {
            gate: gate.clone(),
            drops: drops.clone(),
        });
        q.run_all();
        let list = q.list.clone();
        let shutdown = thread::spawn(move || {
            for t in list.close_and_take_all() {
                t.shutdown();
            }
        });
        let opener = thread::spawn(move || gate.open());
        q.run_all();
        shutdown.join().unwrap();
        opener.join().unwrap();
        q.run_all();
        let (_, w) = flag();
        match poll_handle(&mut h, &w) {
            Poll::Ready(Ok(7)) => {}
            Poll::Ready(Err(e)) => assert!(e.is_cancelled()),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(drops.load(Acquire), 1);
        // A task spawned after shutdown that parks is refused its link into the closed list
        // and cancelled by its runner instead of parking where nobody would look.
        let late_gate = Gate::new();
        let mut late = q.spawn(Gated {
            gate: late_gate,
            drops: drops.clone(),
        });
        q.run_all();
        assert!(matches!(poll_handle(&mut late, &w), Poll::Ready(Err(e)) if e.is_cancelled()));
        assert_eq!(drops.load(Acquire), 2);
    });
}

/// Lazy linking (`LINKED`): a task's *first* park races shutdown closing the owned list. The
/// task either links first (and shutdown cancels it, idle or mid-poll) or is refused (and its
/// runner cancels it): the future is dropped exactly once and the handle hears back either way.
/// Then a queue entry dropped unrun (a queue torn down at shutdown) cancels its task.
#[test]
fn task_first_park_vs_shutdown() {
    model(|| {
        let q = Queue::new();
        let drops = Arc::new(AtomicUsize::new(0));
        let mut h = q.spawn(Gated {
            gate: Gate::new(),
            drops: drops.clone(),
        });
        let list = q.list.clone();
        let shutdown = thread::spawn(move || {
            for t in list.close_and_take_all() {
                t.shutdown();
            }
        });
        q.run_all();
        shutdown.join().unwrap();
        q.run_all();
        let (_, w) = flag();
        assert!(matches!(poll_handle(&mut h, &w), Poll::Ready(Err(e)) if e.is_cancelled()));
        assert_eq!(drops.load(Acquire), 1);

        let mut queued = q.spawn(Gated {
            gate: Gate::new(),
            drops: drops.clone(),
        });
        q.tasks.lock().unwrap().clear();
        assert!(matches!(poll_handle(&mut queued, &w), Poll::Ready(Err(e)) if e.is_cancelled()));
        assert_eq!(drops.load(Acquire), 2);
    });
}

/// JOIN_WAKER hand-off: a handle polled (twice, with two different wakers) while the task
/// completes on another thread. After completion, the handle either got the output from a
/// poll or its *latest* waker was woken — a wake-up is never lost in the slot exchange.
#[test]
fn join_waker_handoff() {
    model(|| {
        let q = Queue::new();
        let gate = Gate::new();
        let drops = Arc::new(AtomicUsize::new(0));
        let mut h = q.spawn(Gated {
            gate: gate.clone(),
            drops,
        });
        q.run_all();
        let q2 = q.clone();
        let completer = thread::spawn(move || {
            gate.open();
            q2.run_all();
        });
        let (_, w1) = flag();
        let (f2, w2) = flag();
        let mut got = poll_handle(&mut h, &w1).is_ready();
        if !got {
            got = poll_handle(&mut h, &w2).is_ready();
        }
        completer.join().unwrap();
        if !got {
            assert!(f2.0.load(Acquire), "the join waker was lost");
            assert!(poll_handle(&mut h, &w2).is_ready());
        }
    });
}

/// The runtime's shared state as the task scheduler sees it: a run queue that shutdown closes,
/// held through an `Arc` by every task (as `TaskScheduler` holds `Arc<Shared>`).
struct RtState {
    queue: LoomMutex<Option<Vec<Notified>>>,
    list: OwnedTasks,
}

#[derive(Clone)]
struct RtSched(ModelArc<RtState>);

impl Schedule for RtSched {
    fn schedule(&self, task: Notified) {
        let mut q = self.0.queue.lock().unwrap();
        match q.as_mut() {
            Some(q) => q.push(task),
            // Closed by shutdown: the task stays in the owned list, which shutdown cancels.
            None => drop(task),
        }
    }
    fn link(&self, task: OwnedRef) -> Result<(), OwnedRef> {
        self.0.list.bind(task)
    }
    fn release(&self, task: std::ptr::NonNull<Header>, linked: bool) -> bool {
        linked && self.0.list.remove(task)
    }
}

/// Defect 1 of issue 9, as a model: a plain thread wakes an idle task while the runtime shuts
/// down and drops its own reference to the shared state. The waker's `schedule` must find the
/// state alive (the task owns an `Arc` of it), and once everything is dropped the state must be
/// freed — no cycle through a queue keeps it (under loom, its `Arc` is leak-checked).
#[test]
fn wake_races_runtime_shutdown_and_drop() {
    model(|| {
        let rt = ModelArc::new(RtState {
            queue: LoomMutex::new(Some(Vec::new())),
            list: OwnedTasks::new(1),
        });
        let gate = Gate::new();
        let drops = Arc::new(AtomicUsize::new(0));
        let (first, mut h) = crate::rt::sited!(task::spawn_task(
            Gated {
                gate: gate.clone(),
                drops: drops.clone(),
            },
            RtSched(rt.clone())
        ); std::panic::Location::caller());
        // Run it once so it parks on the gate, its waker stored there.
        first.expect("list open").run();
        let waker_thread = thread::spawn(move || gate.open());
        // Runtime::drop: close the queue, cancel every task, drain, release our reference.
        let queued = rt.queue.lock().unwrap().take().unwrap_or_default();
        for t in rt.list.close_and_take_all() {
            t.shutdown();
        }
        drop(queued);
        drop(rt);
        waker_thread.join().unwrap();
        let (_, w) = flag();
        match poll_handle(&mut h, &w) {
            Poll::Ready(Err(e)) => assert!(e.is_cancelled()),
            other => panic!("expected cancellation, got {other:?}"),
        }
        assert_eq!(drops.load(Acquire), 1);
    });
}

// ----- sync -----

/// oneshot: a send on one thread, a poll (and a re-poll with another waker) on another. A
/// pending receiver is woken, and the value arrives exactly once.
#[test]
fn oneshot_send_vs_poll() {
    use crate::rt::sync::oneshot;
    model(|| {
        let (tx, mut rx) = oneshot::channel::<u32>();
        let sender = thread::spawn(move || tx.send(5).is_ok());
        let (f, w) = flag();
        let first = Pin::new(&mut rx).poll(&mut Context::from_waker(&w));
        let sent = sender.join().unwrap();
        assert!(sent);
        match first {
            Poll::Ready(v) => assert_eq!(v, Ok(5)),
            Poll::Pending => {
                assert!(f.0.load(Acquire), "receiver not woken");
                let (_, w2) = flag();
                assert_eq!(
                    Pin::new(&mut rx).poll(&mut Context::from_waker(&w2)),
                    Poll::Ready(Ok(5))
                );
            }
        }
    });
}

/// oneshot: the receiver is dropped while the value is sent: the value is dropped exactly
/// once (by the receiver side or handed back to the sender).
#[test]
fn oneshot_send_vs_receiver_drop() {
    use crate::rt::sync::oneshot;
    model(|| {
        let dropped = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = oneshot::channel::<Out>();
        let d = dropped.clone();
        let sender = thread::spawn(move || {
            if let Err(back) = tx.send(Out(d)) {
                drop(back);
            }
        });
        drop(rx);
        sender.join().unwrap();
        assert_eq!(dropped.load(Acquire), 1);
    });
}

/// Semaphore with one permit, held; a waiter polls `acquire` while another thread releases the
/// permit. The waiter either gets the permit at once (the release came first) or is woken and
/// gets it on the next poll; never two holders, no lost wake-up, no lost permit.
#[test]
fn semaphore_release_vs_acquire() {
    use crate::rt::sync::Semaphore;
    model(|| {
        let sem = Arc::new(Semaphore::new(1));
        let held = sem.clone().try_acquire_owned().expect("one free permit");
        let releaser = thread::spawn(move || drop(held));
        let (f, w) = flag();
        let mut acquire = Box::pin(sem.clone().acquire_owned());
        let first = acquire.as_mut().poll(&mut Context::from_waker(&w));
        releaser.join().unwrap();
        let permit = match first {
            Poll::Ready(p) => p.unwrap(),
            Poll::Pending => {
                assert!(f.0.load(Acquire), "waiter not woken by the release");
                match acquire.as_mut().poll(&mut Context::from_waker(&w)) {
                    Poll::Ready(p) => p.unwrap(),
                    Poll::Pending => panic!("woken but no permit"),
                }
            }
        };
        assert_eq!(sem.available_permits(), 0, "two permit holders");
        drop(permit);
        assert_eq!(sem.available_permits(), 1);
    });
}

// ----- the idle/sleeper protocol -----

/// A producer pushes work and asks whom to wake while the only other worker falls asleep. The
/// worker announces its sleep (`Idle::park`), re-checks the queue, and sleeps only if empty.
/// No lost wake-up: the worker either saw the work or was picked to be woken.
#[test]
fn idle_push_vs_worker_falling_asleep() {
    model(|| {
        // Worker 0 is the producer (awake); worker 1 goes to sleep.
        let idle = Arc::new(Idle::new(2));
        let work = Arc::new(AtomicBool::new(false));
        let woken = Arc::new(AtomicBool::new(false));
        let (i2, w2, k2) = (idle.clone(), work.clone(), woken.clone());
        let sleeper = thread::spawn(move || {
            i2.park(1, false);
            // The re-check after announcing sleep. The real one reads the crossbeam queues,
            // with Acquire loads at most; the ordering comes from the fences in `Idle`.
            let saw_work = w2.load(Acquire);
            (saw_work, k2)
        });
        // A push is a Release store (crossbeam's deque and injector).
        work.store(true, Release);
        if let Some(idx) = idle.worker_to_notify() {
            assert_eq!(idx, 1);
            woken.store(true, SeqCst);
        }
        let (saw_work, woken) = sleeper.join().unwrap();
        assert!(
            saw_work || woken.load(SeqCst),
            "work pushed, worker asleep, nobody woken"
        );
    });
}

/// The last searcher takes its task and stops searching while a producer pushes more work;
/// a third worker sleeps. The searcher wakes a sleeper only if it sees work left queued, the
/// producer only if nobody searches: at least one of them must act on the second piece of work.
#[test]
fn idle_last_searcher_vs_push() {
    model(|| {
        let idle = Arc::new(Idle::new(3));
        idle.park(2, false);
        assert!(idle.try_start_searching());
        let more = Arc::new(AtomicBool::new(false));
        let (i2, m2) = (idle.clone(), more.clone());
        let searcher = thread::spawn(move || {
            // The real look at the queues uses Acquire loads at most.
            i2.stop_searching() && m2.load(Acquire) && i2.worker_to_notify().is_some()
        });
        more.store(true, Release);
        let producer_woke = idle.worker_to_notify().is_some();
        let searcher_woke = searcher.join().unwrap();
        assert!(
            producer_woke || searcher_woke,
            "work pushed while the last searcher stopped, and nobody woken"
        );
    });
}

// ----- the driver hand-off -----

/// The rule of `driver.rs`, over a loom mutex: the owner holds its poller while it sleeps and
/// try-locks it for a turn; a sibling try-locks it when it is unheld. An event posted while
/// the owner is busy is consumed exactly once, by the owner or the sibling.
#[test]
fn driver_handoff_event_consumed_once() {
    model(|| {
        // The poller: a count of pending events, consumed under the lock.
        let poller = Arc::new(LoomMutex::new(0usize));
        let consumed = Arc::new(AtomicUsize::new(0));
        // An event arrives (the kernel queues it in the epoll set).
        *poller.lock().unwrap() += 1;
        let turn = |poller: &LoomMutex<usize>, consumed: &AtomicUsize| {
            if let Ok(mut pending) = poller.try_lock() {
                consumed.fetch_add(*pending, AcqRel);
                *pending = 0;
            }
        };
        let (p2, c2) = (poller.clone(), consumed.clone());
        let sibling = thread::spawn(move || turn(&p2, &c2));
        // The owner comes back from its task and turns its driver.
        turn(&poller, &consumed);
        sibling.join().unwrap();
        // The owner then sleeps in it: it blocks on the lock and polls whatever is left.
        let mut left = poller.lock().unwrap();
        consumed.fetch_add(*left, AcqRel);
        *left = 0;
        drop(left);
        assert_eq!(consumed.load(Acquire), 1);
    });
}
