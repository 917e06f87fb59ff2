//! Thread-local context: which worker (if any) this thread is driving, and which runtime
//! handle (if any) it has entered. Nothing here is global: each runtime is found through the
//! thread that uses it, so several runtimes coexist in one process.
//!
//! Lookup order for "the current runtime" (spawn, timers, new sockets): an entered handle first
//! (`Handle::enter`, or `Handle::block_on` of one runtime called from a worker of another),
//! then the worker this thread drives. A worker's loop hides any entered handle while it runs
//! its own tasks and shows it again only while it polls the future it is blocked on.

use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::sync::Arc;

use super::driver::Driver;
use super::reactor::ReactorShared;
use super::worker::WorkerCx;
use super::Handle;

thread_local! {
    /// The worker this thread is driving right now. Points into the driving function's frame,
    /// which outlives the guard that set it.
    static WORKER: Cell<Option<NonNull<WorkerCx>>> = const { Cell::new(None) };
    /// An explicitly entered runtime.
    static ENTERED: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// Restores the previous worker on drop.
pub(crate) struct WorkerGuard {
    prev: Option<NonNull<WorkerCx>>,
    /// The observatory's copy of "which worker" (its poll hooks read no other thread-local).
    #[cfg(feature = "observatory")]
    _observed: super::observe::WorkerScope,
}

pub(crate) fn enter_worker(cx: &WorkerCx) -> WorkerGuard {
    let prev = WORKER.with(|w| w.replace(Some(NonNull::from(cx))));
    WorkerGuard {
        prev,
        #[cfg(feature = "observatory")]
        _observed: super::observe::enter_worker(cx.index(), &cx.remote().obs_slot),
    }
}

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        WORKER.with(|w| w.set(self.prev));
    }
}

/// Runs `f` with the worker this thread drives, if any.
#[cfg_attr(feature = "observatory", inline(always))]
pub(crate) fn with_worker<R>(f: impl FnOnce(Option<&WorkerCx>) -> R) -> R {
    let ptr = WORKER.with(|w| w.get());
    // SAFETY: the pointer was set by `enter_worker` from a reference whose frame is still alive
    // (the guard restoring the previous value lives in that same frame).
    f(ptr.map(|p| unsafe { p.as_ref() }))
}

/// Guard returned by [`Handle::enter`]: restores the previously entered runtime on drop.
#[must_use = "the runtime is only entered while the guard lives"]
pub struct EnterGuard {
    prev: Option<Handle>,
    // Not Send: the guard must drop on the thread that entered.
    _not_send: std::marker::PhantomData<*const ()>,
}

pub(crate) fn enter(handle: Handle) -> EnterGuard {
    EnterGuard {
        prev: replace_entered(Some(handle)),
        _not_send: std::marker::PhantomData,
    }
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        replace_entered(self.prev.take());
    }
}

/// Swaps the entered handle (the worker loop hides it while running its own tasks).
pub(crate) fn replace_entered(handle: Option<Handle>) -> Option<Handle> {
    ENTERED.with(|e| std::mem::replace(&mut *e.borrow_mut(), handle))
}

fn entered() -> Option<Handle> {
    ENTERED.with(|e| e.borrow().clone())
}

/// Where new timers and sockets of the current thread go.
enum Target<'a> {
    /// This thread drives a worker of the runtime in question.
    Own(&'a WorkerCx),
    /// Some other runtime (or no worker at all): use one of its workers from the outside.
    Foreign(Handle),
}

fn with_target<R>(f: impl FnOnce(Option<Target<'_>>) -> R) -> R {
    let entered = entered();
    with_worker(|w| match (w, entered) {
        (Some(w), Some(h)) if Arc::ptr_eq(&w.shared, &h.shared) => f(Some(Target::Own(w))),
        (_, Some(h)) => f(Some(Target::Foreign(h))),
        (Some(w), None) => f(Some(Target::Own(w))),
        (None, None) => f(None),
    })
}

/// Runs `f` with the shared state of the runtime this thread is working for.
pub(crate) fn with_current_shared<R>(
    f: impl FnOnce(&Arc<super::scheduler::Shared>) -> R,
) -> Option<R> {
    // An entered handle is rare on a worker; checking it first costs one RefCell borrow.
    let entered = ENTERED.with(|e| e.borrow().as_ref().map(|h| h.shared.clone()));
    match entered {
        Some(shared) => Some(f(&shared)),
        None => with_worker(|w| w.map(|w| f(&w.shared))),
    }
}

/// The runtime this thread is working for.
pub(crate) fn current_handle() -> Option<Handle> {
    with_target(|t| match t? {
        Target::Own(w) => Some(w.handle()),
        Target::Foreign(h) => Some(h),
    })
}

/// The reactor a new socket should register with: this worker's own, or — from outside the
/// runtime — the next worker's in round-robin order.
pub(crate) fn current_reactor() -> Option<Arc<ReactorShared>> {
    with_target(|t| match t? {
        Target::Own(w) => Some(w.reactor_shared().clone()),
        Target::Foreign(h) => Some(h.shared.pick_remote().driver.io.clone()),
    })
}

/// The reactor for an accepted connection: round-robin over the current runtime's workers.
pub(crate) fn reactor_for_accepted() -> Option<Arc<ReactorShared>> {
    with_target(|t| match t? {
        Target::Own(w) => Some(w.shared.pick_remote().driver.io.clone()),
        Target::Foreign(h) => Some(h.shared.pick_remote().driver.io.clone()),
    })
}

/// The driver a new timer should go to — this worker's own, or from outside the runtime the
/// next worker's in round-robin order — and whether the runtime has shut down. Asked once per
/// `Sleep`, at its first registration; the `Sleep` then holds the driver (`time.rs`).
/// Returns `None` when the thread is outside any runtime.
pub(crate) fn timer_driver() -> Option<(Arc<Driver>, bool)> {
    with_target(|t| match t? {
        Target::Own(w) => Some((w.remote().driver.clone(), w.shared.is_shutdown())),
        Target::Foreign(h) => Some((
            h.shared.pick_remote().driver.clone(),
            h.shared.is_shutdown(),
        )),
    })
}

/// A timer or socket was just registered with the driver whose `ReactorShared` is `io`.
/// Returns whether that is the calling worker's own driver — the owner re-arms its timerfd
/// before it sleeps, so its registrations need no interrupt — and, if so, tells the worker
/// (it may owe its siblings a rouse: `WorkerCx::pay_owed_rouse`).
pub(crate) fn registered_with(io: &ReactorShared) -> bool {
    with_worker(
        |w| match w.filter(|w| std::ptr::eq(&**w.reactor_shared(), io)) {
            Some(w) => {
                w.pay_owed_rouse();
                true
            }
            None => false,
        },
    )
}
