//! Tasks: one allocation each, a documented state word, a hand-written waker.
//!
//! * [`state`] — the atomic state word and every transition on it.
//! * [`raw`] — the allocation, the vtable and the waker.
//! * [`list`] — the owned-task list, so shutdown can drop every unfinished future.
//! * this file — [`JoinHandle`] and [`JoinError`], the public face of a task.

pub(crate) mod list;
pub(crate) mod raw;
pub(crate) mod state;

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};

pub(crate) use raw::{Header, Notified, Schedule};

/// Why a task produced no output. (One pointer wide, so it costs a task nothing to hold.)
#[derive(Clone, PartialEq, Eq)]
pub struct JoinError {
    /// `None`: cancelled; `Some`: the panic message. A thin `Box<String>` (8 bytes) rather than
    /// a `String` (24): the error sits in every task's output slot.
    #[allow(clippy::box_collection)]
    panic: Option<Box<String>>,
}

impl JoinError {
    pub(crate) fn cancelled() -> JoinError {
        JoinError { panic: None }
    }

    pub(crate) fn from_panic(payload: Box<dyn std::any::Any + Send>) -> JoinError {
        let message = raw::panic_message(&*payload);
        // Dropping an arbitrary payload can itself panic; a leak is the lesser evil here.
        std::mem::forget(payload);
        JoinError {
            panic: Some(Box::new(message)),
        }
    }

    /// The task was aborted, or the runtime shut down before it finished.
    pub fn is_cancelled(&self) -> bool {
        self.panic.is_none()
    }

    /// The task panicked.
    pub fn is_panic(&self) -> bool {
        self.panic.is_some()
    }

    /// The panic message, when the task panicked.
    pub fn panic_message(&self) -> Option<&str> {
        self.panic.as_deref().map(String::as_str)
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.panic {
            None => f.write_str("task was cancelled"),
            Some(m) => write!(f, "task panicked: {m}"),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.panic {
            None => f.write_str("JoinError::Cancelled"),
            Some(m) => write!(f, "JoinError::Panicked({m:?})"),
        }
    }
}

impl std::error::Error for JoinError {}

/// An owned permission to await a task's output.
///
/// * `.await` it from async code, or call [`join`](JoinHandle::join) from any thread — a plain
///   thread parks, a runtime worker keeps running its other tasks while it waits.
/// * [`abort`](JoinHandle::abort) cancels the task; [`is_finished`](JoinHandle::is_finished)
///   polls for completion without waiting.
/// * Dropping the handle detaches the task: it keeps running and its output is dropped.
///
/// A panic inside the task does not unwind into the worker: the handle yields a [`JoinError`]
/// carrying the panic message.
///
/// ```
/// let rt = scraipe::rt::Runtime::new().unwrap();
/// let handle = rt.spawn(async { 6 * 7 });
/// assert_eq!(handle.join().unwrap(), 42);
///
/// let failing = rt.spawn(async { panic!("boom") });
/// let err = failing.join().unwrap_err();
/// assert_eq!(err.panic_message(), Some("boom"));
/// ```
pub struct JoinHandle<T> {
    raw: NonNull<Header>,
    _output: PhantomData<T>,
}

// SAFETY: the handle only moves `T` out of the task, which requires `T: Send`; the header is Sync.
unsafe impl<T: Send> Send for JoinHandle<T> {}
// SAFETY: `&JoinHandle` only allows `abort`/`is_finished`, which touch atomics.
unsafe impl<T: Send> Sync for JoinHandle<T> {}

impl<T> Unpin for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    /// # Safety
    /// `raw` is a task whose output type is `T`, and the caller transfers the handle's reference.
    pub(crate) unsafe fn from_raw(raw: NonNull<Header>) -> JoinHandle<T> {
        JoinHandle {
            raw,
            _output: PhantomData,
        }
    }

    fn header(&self) -> &Header {
        // SAFETY: the handle's reference keeps the task alive.
        unsafe { self.raw.as_ref() }
    }

    /// Requests cancellation. A task that is not running is dropped at its next scheduling; a
    /// running one when its current poll returns. Awaiting the handle then yields a cancelled
    /// [`JoinError`] unless the task had already finished.
    pub fn abort(&self) {
        // SAFETY: the handle holds a reference.
        unsafe { raw::abort(self.raw) }
    }

    /// The task's id (feature `observatory`): unique in the process, as in
    /// [`Handle::observe_snapshot`](crate::rt::Handle::observe_snapshot).
    #[cfg(feature = "observatory")]
    pub fn id(&self) -> u64 {
        self.header().obs.id()
    }

    /// The task's poll count and wake counts by source (feature `observatory`; tests).
    #[cfg(all(test, feature = "observatory"))]
    pub(crate) fn polls_and_wakes(&self) -> (u64, crate::rt::observe::WakeCounts) {
        let header = self.header();
        header.obs.polls_and_wakes(&header.state)
    }

    /// True once the task has finished (with output, panic or cancellation).
    pub fn is_finished(&self) -> bool {
        self.header().state.load().is_complete()
    }

    /// Blocks the calling thread until the task finishes.
    ///
    /// From a plain thread this spins briefly, then parks. From inside a runtime worker it does not
    /// deadlock: the worker keeps polling its other tasks, its reactor and its timers until the
    /// output is ready (see [`crate::rt::block_on`]).
    pub fn join(self) -> Result<T, JoinError>
    where
        T: Send + 'static,
    {
        crate::rt::block_on(self)
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: we are the join handle of a task whose output is `T`.
        unsafe { raw::join_poll(self.raw, cx.waker()) }
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        // SAFETY: we are the join handle and are going away.
        unsafe { raw::join_drop(self.raw) }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Creates a task bound to `scheduler`. Returns its first run-queue entry and its join handle.
///
/// The task is linked into the owned-task list lazily, when it first parks (see
/// `state::LINKED`), so a task that finishes in its first poll never takes the list's lock.
/// With the `observatory` feature it is linked here, so the task table shows tasks that were
/// spawned but never polled; the entry is `None` when the list was already closed (shutdown)
/// and the task was cancelled at once.
#[cfg_attr(feature = "observatory", inline(always))]
pub(crate) fn spawn_task<F, S>(
    future: F,
    scheduler: S,
    #[cfg(feature = "observatory")] site: crate::rt::SpawnLoc,
) -> (Option<Notified>, JoinHandle<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    let (notified, raw) = crate::rt::sited!(raw::allocate(future, scheduler); site);
    // SAFETY: `raw` is the handle's reference of a task with output `F::Output`.
    let handle = unsafe { JoinHandle::from_raw(raw) };
    #[cfg(feature = "observatory")]
    // SAFETY: the queue entry's reference keeps the task alive.
    if crate::rt::observe::link_at_spawn() && !unsafe { raw::link_at_spawn::<F, S>(raw) } {
        // Dropping the unrun entry cancels the task.
        drop(notified);
        return (None, handle);
    }
    (Some(notified), handle)
}
