//! The blocking pool: threads for work that would stall a reactor — DNS lookups (std's
//! resolver blocks), file I/O, CPU-heavy analysis. The async side hands a closure over and
//! awaits a `JoinHandle`; the pool runs it on a plain thread.
//!
//! Threads are started on demand up to a bound, and retire after sitting idle for
//! `keep_alive`, so a burst of DNS lookups does not leave hundreds of threads behind.
//! Jobs beyond the bound wait in a FIFO queue.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::task::{self, JoinHandle, Notified, Schedule};

pub(crate) struct BlockingPool {
    inner: Arc<Inner>,
}

struct Inner {
    /// The runtime, entered by every job so `spawn`, timers and sockets work inside it.
    /// Weak: the runtime owns this pool.
    runtime: std::sync::OnceLock<std::sync::Weak<super::scheduler::Shared>>,
    state: Mutex<State>,
    /// Idle threads wait here for jobs.
    work: Condvar,
    /// `shutdown` waits here for threads to exit.
    exited: Condvar,
    max_threads: usize,
    keep_alive: Duration,
    thread_name: String,
    stack_size: Option<usize>,
    /// Every job from spawn to completion, for the observatory's task table.
    #[cfg(feature = "observatory")]
    owned: task::list::OwnedTasks,
}

struct State {
    queue: VecDeque<Notified>,
    threads: usize,
    idle: usize,
    /// Notifications sent to idle threads that have not woken yet.
    pending_notifies: usize,
    shutdown: bool,
    next_id: usize,
}

#[derive(Clone)]
struct BlockingSchedule(Arc<Inner>);

impl Schedule for BlockingSchedule {
    fn schedule(&self, task: Notified) {
        push(&self.0, task);
    }
    /// Blocking jobs finish in their one poll, so only the eager link at spawn (feature
    /// `observatory`) calls this: the pool's own list feeds the task table. Without the
    /// feature they are listed nowhere: shutdown finds them in the pool's queue or waits for
    /// the thread running them.
    fn link(&self, task: task::raw::OwnedRef) -> Result<(), task::raw::OwnedRef> {
        #[cfg(feature = "observatory")]
        return self.0.owned.bind(task);
        #[cfg(not(feature = "observatory"))]
        {
            drop(task);
            Ok(())
        }
    }
    fn release(&self, task: std::ptr::NonNull<task::Header>, linked: bool) -> bool {
        #[cfg(feature = "observatory")]
        return linked && self.0.owned.remove(task);
        #[cfg(not(feature = "observatory"))]
        {
            let _ = (task, linked);
            false
        }
    }
}

/// Runs the closure once, on the first poll.
struct BlockingTask<F>(Option<F>);

impl<F> Unpin for BlockingTask<F> {}

impl<F: FnOnce() -> R, R> Future for BlockingTask<F> {
    type Output = R;
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<R> {
        let f = self
            .0
            .take()
            .expect("blocking task polled after completion");
        Poll::Ready(f())
    }
}

impl BlockingPool {
    pub(crate) fn new(
        max_threads: usize,
        keep_alive: Duration,
        thread_name: String,
        stack_size: Option<usize>,
    ) -> BlockingPool {
        BlockingPool {
            inner: Arc::new(Inner {
                runtime: std::sync::OnceLock::new(),
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    threads: 0,
                    idle: 0,
                    pending_notifies: 0,
                    shutdown: false,
                    next_id: 0,
                }),
                work: Condvar::new(),
                exited: Condvar::new(),
                max_threads: max_threads.max(1),
                keep_alive,
                thread_name,
                stack_size,
                #[cfg(feature = "observatory")]
                owned: task::list::OwnedTasks::new(4),
            }),
        }
    }

    /// Lets jobs see the runtime as the current one (set once, right after the runtime is built).
    pub(crate) fn set_runtime(&self, shared: std::sync::Weak<super::scheduler::Shared>) {
        let _ = self.inner.runtime.set(shared);
    }

    pub(crate) fn spawn<F, R>(
        &self,
        f: F,
        #[cfg(feature = "observatory")] site: super::SpawnLoc,
    ) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (notified, handle) = super::sited!(
            task::spawn_task(BlockingTask(Some(f)), BlockingSchedule(self.inner.clone()));
            site
        );
        if let Some(n) = notified {
            push(&self.inner, n);
        }
        handle
    }

    /// Stops accepting jobs, cancels queued ones, and waits (until `deadline`) for running
    /// jobs to finish. Threads still busy after the deadline are left to finish on their own.
    pub(crate) fn shutdown(&self, deadline: Instant) {
        let queued: Vec<Notified> = {
            let mut state = self.inner.state.lock();
            state.shutdown = true;
            self.inner.work.notify_all();
            state.queue.drain(..).collect()
        };
        for task in queued {
            task.cancel();
        }
        // A job shutting its own runtime down cannot wait for its own thread.
        let me = CURRENT_POOL.with(|p| std::ptr::eq(p.get(), Arc::as_ptr(&self.inner)));
        let mut state = self.inner.state.lock();
        while state.threads > usize::from(me) {
            if self
                .inner
                .exited
                .wait_until(&mut state, deadline)
                .timed_out()
            {
                break;
            }
        }
    }

    pub(crate) fn threads(&self) -> usize {
        self.inner.state.lock().threads
    }

    /// Calls `f` with every job not yet finished (feature `observatory`).
    #[cfg(feature = "observatory")]
    pub(crate) fn for_each_task(&self, f: impl FnMut(&task::Header)) {
        self.inner.owned.for_each(f);
    }

    pub(crate) fn queue_depth(&self) -> usize {
        self.inner.state.lock().queue.len()
    }
}

fn push(inner: &Arc<Inner>, task: Notified) {
    let mut state = inner.state.lock();
    if state.shutdown {
        drop(state);
        task.cancel();
        return;
    }
    state.queue.push_back(task);
    if state.idle > state.pending_notifies {
        state.pending_notifies += 1;
        inner.work.notify_one();
        return;
    }
    if state.threads >= inner.max_threads {
        return; // queued until a thread frees up
    }
    state.threads += 1;
    state.next_id += 1;
    let id = state.next_id;
    drop(state);

    let mut builder = std::thread::Builder::new().name(format!("{}-{id}", inner.thread_name));
    if let Some(size) = inner.stack_size {
        builder = builder.stack_size(size);
    }
    let worker = inner.clone();
    if let Err(e) = builder.spawn(move || run(worker)) {
        log::error!("could not start a blocking-pool thread: {e}");
        let mut state = inner.state.lock();
        state.threads -= 1;
        if state.threads == 0 {
            // Nobody will ever run the queue: fail its jobs instead of letting them hang.
            let queued: Vec<Notified> = state.queue.drain(..).collect();
            drop(state);
            for t in queued {
                t.cancel();
            }
        }
    }
}

thread_local! {
    /// The pool this thread belongs to, if it is a blocking-pool thread.
    static CURRENT_POOL: std::cell::Cell<*const Inner> = const { std::cell::Cell::new(std::ptr::null()) };
}

fn run(inner: Arc<Inner>) {
    CURRENT_POOL.with(|p| p.set(Arc::as_ptr(&inner)));
    let mut state = inner.state.lock();
    loop {
        if let Some(task) = state.queue.pop_front() {
            drop(state);
            let runtime = inner.runtime.get().and_then(std::sync::Weak::upgrade);
            let _enter = runtime.map(|shared| super::context::enter(super::Handle { shared }));
            task.run();
            drop(_enter);
            state = inner.state.lock();
            continue;
        }
        if state.shutdown {
            break;
        }
        state.idle += 1;
        let timed_out = inner
            .work
            .wait_for(&mut state, inner.keep_alive)
            .timed_out();
        state.idle -= 1;
        if state.pending_notifies > 0 && !timed_out {
            state.pending_notifies -= 1;
        }
        if timed_out && state.queue.is_empty() && !state.shutdown {
            if state.pending_notifies > state.idle {
                // A notification meant for us arrived as we timed out; consume it.
                state.pending_notifies -= 1;
            }
            break;
        }
    }
    state.threads -= 1;
    inner.exited.notify_all();
}
