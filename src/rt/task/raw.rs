//! One allocation per task: a cold part, the header, the scheduler handle and the future (later
//! its output), plus the type-erased functions that operate on it.
//!
//! ```text
//!                      ┌──────────────────────────────┐
//!                      │ Cold                         │  owned-task list links,
//!                      │                              │  join waker slot
//!  NonNull<Header> ──► ├──────────────────────────────┤
//!                      │ Header                       │  state word, vtable pointer
//!                      ├──────────────────────────────┤
//!                      │ scheduler: S                 │  where a wake sends the task
//!                      ├──────────────────────────────┤
//!                      │ stage: union {               │  the future, then
//!                      │   future: F,                 │  its output, then nothing —
//!                      │   output: Result<T, JoinErr> │  the state word says which
//!                      │ }                            │
//!                      └──────────────────────────────┘
//! ```
//!
//! Everything outside this file sees only `NonNull<Header>` plus the [`Vtable`], so queues,
//! wakers and the owned-task list are not generic over the future type.
//!
//! **Why the cold part comes first.** A poll writes the state word and the future; the list
//! links and the join waker are written once or twice in a task's life. The allocator puts
//! tasks next to each other (glibc: 16-byte aligned, one 8-byte size word between blocks), so
//! with the header first, one task's future and the next task's state word often shared a
//! cache line — and two workers polling neighbouring tasks bounced that line on every poll. With
//! the 32 cold bytes in front of the header, the next task's hot bytes start at least 40 bytes
//! after this one's end: the same allocation size, and (measured, `yield_many` at 2 workers)
//! what aligning every task to its own cache lines gives, without the cost of aligned
//! allocation. The cold part sits at a fixed offset before the header, so reaching it costs no
//! vtable load.

use std::any::Any;
use std::cell::UnsafeCell;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use super::state::{AfterPoll, StartPoll, State, WakeAction};
#[cfg(not(feature = "observatory"))]
use super::state::{PollerBits, WakeCause};
use super::JoinError;

/// Where a task goes when it is woken, and who keeps the list of live tasks.
pub(crate) trait Schedule: Send + Sync + Sized + 'static {
    /// The task was woken (or aborted) and must be polled again.
    fn schedule(&self, task: Notified);
    /// The task woke itself while it was being polled (e.g. `yield_now`). It goes where it cannot
    /// starve other tasks: the back of a queue.
    fn schedule_yield(&self, task: Notified) {
        self.schedule(task)
    }
    /// The task parks for the first time: link it into the owned-task list, which takes over
    /// `task`'s reference. Fails (handing the reference back) once the list is closed by
    /// shutdown; the runner then cancels the task instead of parking it.
    fn link(&self, task: OwnedRef) -> Result<(), OwnedRef>;
    /// The task completed: unlink it from the owned-task list if `linked` (it parked at least
    /// once). Returns true when it was in the list, in which case the caller also drops the
    /// list's reference. Called once per task, so a scheduler may count completions here.
    fn release(&self, task: NonNull<Header>, linked: bool) -> bool;
}

/// Links of the intrusive owned-task list; only touched under that list's shard lock.
#[derive(Default)]
pub(crate) struct Links {
    pub(crate) prev: Option<NonNull<Header>>,
    pub(crate) next: Option<NonNull<Header>>,
}

/// The part of every task that a poll never touches, just before the [`Header`] (see the
/// module docs for why it is not after it).
#[repr(C)]
pub(crate) struct Cold {
    /// Guarded by the owned-task list's shard lock.
    links: UnsafeCell<Links>,
    /// The `JoinHandle`'s waker. Ownership alternates through the `JOIN_WAKER` bit.
    awaiter: UnsafeCell<Option<Waker>>,
}

/// How far before a task's header its [`Cold`] part starts.
const COLD: usize = std::mem::size_of::<Cold>();

/// The type-erased part of every task that a poll uses.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) state: State,
    pub(crate) vtable: &'static Vtable,
    /// Identity and counters (feature `observatory`).
    #[cfg(feature = "observatory")]
    pub(crate) obs: crate::rt::observe::TaskObs,
}

// SAFETY: the header's fields are atomic or immutable; the cold part's are guarded: `links` by
// the list lock, `awaiter` by the JOIN_WAKER protocol of the state word.
unsafe impl Send for Header {}
// SAFETY: as above.
unsafe impl Sync for Header {}

/// The cold part of the task whose header `ptr` points to.
///
/// # Safety
/// `ptr` is a live task made by [`allocate`] (its provenance covers the whole cell, as every
/// task pointer's does: they all derive from the cell's allocation).
#[inline]
unsafe fn cold<'a>(ptr: NonNull<Header>) -> &'a Cold {
    // SAFETY: every `Cell` has its `Cold` part `COLD` bytes before the header (checked in
    // `allocate`), inside the same allocation.
    unsafe { &*ptr.as_ptr().cast::<u8>().sub(COLD).cast::<Cold>() }
}

/// The owned-task list links of the task `ptr`.
///
/// # Safety
/// `ptr` is a live task; the caller holds the lock of the list shard the task belongs to for as
/// long as it uses the pointer.
#[inline]
pub(crate) unsafe fn links(ptr: NonNull<Header>) -> *mut Links {
    // SAFETY: forwarded from the caller.
    unsafe { cold(ptr) }.links.get()
}

/// Type-erased operations, one static instance per (future, scheduler) type pair.
///
/// # Safety
/// Every entry takes a pointer to a live task whose cell type matches this vtable; the
/// reference and state-bit obligations of each are those of the function it points to.
pub(crate) struct Vtable {
    /// Runs the task.
    // SAFETY (contract): the caller owns one reference, which this consumes.
    poll: unsafe fn(NonNull<Header>),
    /// Hands the task to its scheduler.
    // SAFETY (contract): consumes one reference the caller owns.
    schedule: unsafe fn(NonNull<Header>),
    /// Frees the allocation.
    // SAFETY (contract): only when the last reference is gone.
    dealloc: unsafe fn(NonNull<Header>),
    /// Moves the output into `*dst` (a `Poll<Result<T, JoinError>>`) if the task is complete,
    /// otherwise registers the waker.
    // SAFETY (contract): only the join handle calls it, with `dst` of that type.
    try_read_output: unsafe fn(NonNull<Header>, *mut (), &Waker),
    /// Drops the output (the handle went away after completion).
    // SAFETY (contract): only the join handle, after seeing `COMPLETE` without `OUTPUT_TAKEN`.
    drop_output: unsafe fn(NonNull<Header>),
    /// Drops the future on behalf of runtime shutdown.
    // SAFETY (contract): the caller holds `RUNNING` and one reference, which this consumes.
    shutdown: unsafe fn(NonNull<Header>),
}

/// The future, then its output, in the same bytes. Which one is live is told by the state
/// word: not `COMPLETE` → the future; `COMPLETE` without `OUTPUT_TAKEN` → the output;
/// both → nothing. (An enum would spend a tag word per task on what the state already knows.)
union Stage<F: Future> {
    future: ManuallyDrop<F>,
    output: ManuallyDrop<Result<F::Output, JoinError>>,
}

#[repr(C)]
struct Cell<F: Future, S> {
    cold: Cold,
    header: Header,
    scheduler: S,
    stage: UnsafeCell<Stage<F>>,
}

/// A reference to a task that must be run: what run queues hold. Owns one reference.
///
/// A queue entry is only ever dropped unrun when its queue is torn down or refuses pushes
/// (runtime shutdown). Dropping the entry of a task that never parked cancels the task (drops
/// its future, tells its `JoinHandle`): it is in no other list shutdown could find it in. A
/// task that has parked is in the owned-task list, whose shutdown step cancels it on the
/// shutting-down thread, so its entry only drops a reference — a waker that meets a closed
/// queue may be holding a lock of its own, and must not run the task's destructors.
pub(crate) struct Notified(NonNull<Header>);

// SAFETY: tasks are only created from `Send` futures and outputs, and the state word
// serialises all access to the future.
unsafe impl Send for Notified {}

impl Notified {
    /// Polls the task once (or drops it if it was cancelled).
    #[inline]
    pub(crate) fn run(self) {
        let ptr = ManuallyDrop::new(self).0;
        // SAFETY: we own a reference, which `poll` consumes.
        unsafe { (ptr.as_ref().vtable.poll)(ptr) }
    }

    /// Cancels the task instead of running it (a queue that will never run is being emptied).
    pub(crate) fn cancel(self) {
        // SAFETY: we own one reference and pass it on.
        unsafe { shutdown_reference(ManuallyDrop::new(self).0) }
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        // SAFETY: we own one reference, which either call consumes. LINKED is stable while a
        // queue entry exists: only a runner sets it, and a runner consumed the entry.
        unsafe {
            if self.0.as_ref().state.load().is_linked() {
                drop_reference(self.0)
            } else {
                shutdown_reference(self.0)
            }
        }
    }
}

/// The owned-task list's reference to a task, taken out of the list at shutdown.
pub(crate) struct OwnedRef(NonNull<Header>);

// SAFETY: as for `Notified`.
unsafe impl Send for OwnedRef {}

impl OwnedRef {
    /// A new reference to a task the caller keeps alive (for the owned-task list).
    ///
    /// # Safety
    /// `ptr` is a live task and the caller owns a reference to it for the duration of the call.
    #[inline]
    pub(crate) unsafe fn new_ref(ptr: NonNull<Header>) -> OwnedRef {
        // SAFETY: the caller's reference keeps the header alive.
        unsafe { ptr.as_ref().state.ref_inc() };
        OwnedRef(ptr)
    }

    pub(crate) fn as_ptr(&self) -> NonNull<Header> {
        self.0
    }

    /// # Safety
    /// The caller transfers one reference it owns.
    pub(crate) unsafe fn from_raw(ptr: NonNull<Header>) -> OwnedRef {
        OwnedRef(ptr)
    }

    /// Cancels the task if no thread is polling it: drops the future and reports cancellation to
    /// the join handle. A task being polled right now is marked cancelled and its runner drops it.
    pub(crate) fn shutdown(self) {
        // SAFETY: we own one reference and pass it on.
        unsafe { shutdown_reference(ManuallyDrop::new(self).0) }
    }
}

impl Drop for OwnedRef {
    fn drop(&mut self) {
        // SAFETY: we own one reference.
        unsafe { drop_reference(self.0) }
    }
}

/// Allocates a task. Returns the run-queue entry and the join handle's pointer: two references.
/// (The owned-task list takes its own when the task first parks: see `LINKED`.)
#[cfg_attr(feature = "observatory", inline(always))]
pub(crate) fn allocate<F, S>(
    future: F,
    scheduler: S,
    #[cfg(feature = "observatory")] site: crate::rt::SpawnLoc,
) -> (Notified, NonNull<Header>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    #[cfg(not(feature = "observatory"))]
    let cell = Box::new(Cell {
        cold: Cold {
            links: UnsafeCell::new(Links::default()),
            awaiter: UnsafeCell::new(None),
        },
        header: Header {
            state: State::new(2),
            vtable: vtable::<F, S>(),
        },
        scheduler,
        stage: UnsafeCell::new(Stage {
            future: ManuallyDrop::new(future),
        }),
    });
    // With the observatory the header is half again as large, and `Box::new` of the whole cell
    // built it on the stack and copied it (a `memcpy` per spawn): write the fields in place.
    #[cfg(feature = "observatory")]
    let cell = {
        let mut cell = Box::<Cell<F, S>>::new_uninit();
        let p = cell.as_mut_ptr();
        // SAFETY: `p` points to an allocation sized and aligned for a `Cell<F, S>`; each field
        // is written exactly once (through raw places, never reading the uninitialised
        // memory), so the cell is initialised when `assume_init` runs.
        unsafe {
            std::ptr::addr_of_mut!((*p).cold).write(Cold {
                links: UnsafeCell::new(Links::default()),
                awaiter: UnsafeCell::new(None),
            });
            std::ptr::addr_of_mut!((*p).header).write(Header {
                state: State::new(2),
                vtable: vtable::<F, S>(),
                obs: crate::rt::observe::TaskObs::new(site),
            });
            std::ptr::addr_of_mut!((*p).scheduler).write(scheduler);
            std::ptr::addr_of_mut!((*p).stage).write(UnsafeCell::new(Stage {
                future: ManuallyDrop::new(future),
            }));
            cell.assume_init()
        }
    };
    const { assert!(std::mem::offset_of!(Cell<F, S>, header) == COLD) };
    let cell = Box::into_raw(cell);
    // SAFETY: `cell` is a live allocation (never null); the header pointer is derived from it
    // without an intermediate reference, so it keeps the whole cell's provenance (`cold` and
    // `cell` step back from it).
    let ptr = unsafe { NonNull::new_unchecked(std::ptr::addr_of_mut!((*cell).header)) };
    (Notified(ptr), ptr)
}

/// Links a task into its owned-task list, which gets a reference of its own. Returns false
/// (and drops that reference again) when the list is closed: the runtime is shutting down.
///
/// # Safety
/// `ptr` is a live `Cell<F, S>` and the caller owns a reference.
unsafe fn link_into_list<F: Future, S: Schedule>(ptr: NonNull<Header>) -> bool {
    // SAFETY: forwarded from the caller.
    let cell = unsafe { cell::<F, S>(ptr) };
    // SAFETY: the caller's reference keeps the task alive.
    let owned = unsafe { OwnedRef::new_ref(ptr) };
    cell.scheduler.link(owned).is_ok()
}

/// Links a task that nobody else can see yet into its owned-task list and records `LINKED`
/// (the `observatory` wants spawned-but-unpolled tasks in its table). Returns false when the
/// list is closed.
///
/// # Safety
/// `ptr` is a live `Cell<F, S>` that no other thread can reach yet, and the caller owns a
/// reference.
#[cfg(feature = "observatory")]
pub(crate) unsafe fn link_at_spawn<F: Future, S: Schedule>(ptr: NonNull<Header>) -> bool {
    // SAFETY: forwarded from the caller.
    let linked = unsafe { link_into_list::<F, S>(ptr) };
    if linked {
        // SAFETY: as above.
        unsafe { ptr.as_ref() }.state.set_linked();
    }
    linked
}

fn vtable<F, S>() -> &'static Vtable
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    &Vtable {
        poll: poll::<F, S>,
        schedule: schedule::<F, S>,
        dealloc: dealloc::<F, S>,
        try_read_output: try_read_output::<F, S>,
        drop_output: drop_output::<F, S>,
        shutdown: shutdown::<F, S>,
    }
}

/// The cell of the task whose header `ptr` points to.
///
/// # Safety
/// `ptr` must point to the header of a live `Cell<F, S>`.
unsafe fn cell_ptr<F: Future, S>(ptr: NonNull<Header>) -> *mut Cell<F, S> {
    // SAFETY: guaranteed by the caller; the header is `COLD` bytes into the repr(C) cell.
    unsafe { ptr.as_ptr().cast::<u8>().sub(COLD).cast::<Cell<F, S>>() }
}

/// # Safety
/// `ptr` must point to the header of a live `Cell<F, S>`.
unsafe fn cell<'a, F: Future, S>(ptr: NonNull<Header>) -> &'a Cell<F, S> {
    // SAFETY: guaranteed by the caller.
    unsafe { &*cell_ptr::<F, S>(ptr) }
}

/// Cancels the task unless a thread is polling it (that thread cancels it when its poll returns).
///
/// # Safety
/// The caller owns one reference, which this consumes.
#[inline]
unsafe fn shutdown_reference(ptr: NonNull<Header>) {
    // SAFETY: `shutdown` consumes the reference when the transition claimed the task;
    // otherwise we drop it.
    unsafe {
        if ptr.as_ref().state.transition_to_shutdown() {
            (ptr.as_ref().vtable.shutdown)(ptr)
        } else {
            drop_reference(ptr)
        }
    }
}

/// Drops one reference and frees the task if it was the last.
///
/// # Safety
/// The caller owns the reference it drops.
#[inline]
pub(crate) unsafe fn drop_reference(ptr: NonNull<Header>) {
    // SAFETY: the caller's reference keeps the header alive until the decrement.
    unsafe {
        if ptr.as_ref().state.ref_dec() {
            (ptr.as_ref().vtable.dealloc)(ptr)
        }
    }
}

/// # Safety
/// The last reference is gone and `ptr` is a `Cell<F, S>` made by `allocate`.
unsafe fn dealloc<F: Future, S>(ptr: NonNull<Header>) {
    // SAFETY: the last reference is gone, so nobody else can reach the cell; it was allocated by
    // `Box::new` in `allocate`. The state word says which stage field is live.
    unsafe {
        let mut cell = Box::from_raw(cell_ptr::<F, S>(ptr));
        let state = cell.header.state.load();
        let stage = cell.stage.get_mut();
        if !state.is_complete() {
            ManuallyDrop::drop(&mut stage.future);
        } else if !state.is_output_taken() {
            ManuallyDrop::drop(&mut stage.output);
        }
        drop(cell);
    }
}

/// # Safety
/// `ptr` is a live `Cell<F, S>`; the caller transfers one reference.
unsafe fn schedule<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: the caller transfers one reference, which the `Notified` now owns.
    unsafe { cell::<F, S>(ptr).scheduler.schedule(Notified(ptr)) }
}

/// # Safety
/// `ptr` is a live `Cell<F, S>`; the caller transfers one reference (a queue entry's).
unsafe fn poll<F, S>(ptr: NonNull<Header>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    // SAFETY: the caller gave us a reference, so the cell is alive.
    let cell = unsafe { cell::<F, S>(ptr) };
    // With the observatory, the poll start's CAS also counts the poll and records the worker.
    #[cfg(feature = "observatory")]
    let driving = crate::rt::observe::driving();
    #[cfg(feature = "observatory")]
    let poller = driving.poller();
    #[cfg(not(feature = "observatory"))]
    let poller = PollerBits::NONE;
    let _prev = match cell.header.state.transition_to_running(poller) {
        (StartPoll::Poll, prev) => prev,
        // SAFETY: we hold RUNNING and one reference.
        (StartPoll::Cancel, _) => return unsafe { cancel::<F, S>(ptr) },
        // SAFETY: we own one reference.
        (StartPoll::Skip, _) => return unsafe { drop_reference(ptr) },
    };

    #[cfg(feature = "observatory")]
    let observed = crate::rt::observe::poll_start(&cell.header, _prev, driving);
    // The waker handed to the future borrows our reference; `clone` adds its own.
    // SAFETY: the raw waker's data is a live task pointer and the vtable matches it.
    let waker = ManuallyDrop::new(unsafe { Waker::from_raw(raw_waker(ptr)) });
    let mut cx = Context::from_waker(&waker);
    let polled = panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: RUNNING gives this thread exclusive access to the stage, which holds the future
        // (not complete); the future is never moved out of its heap allocation.
        let future = unsafe { &mut *(*cell.stage.get()).future };
        // SAFETY: pinned in place until it is dropped in place.
        unsafe { Pin::new_unchecked(future) }.poll(&mut cx)
    }));
    #[cfg(feature = "observatory")]
    let channels = observed.end(&cell.header, matches!(polled, Ok(Poll::Ready(_))));
    #[cfg(not(feature = "observatory"))]
    let channels = 0;

    match polled {
        // SAFETY: we still hold RUNNING and one reference, which `complete` consumes.
        Ok(Poll::Ready(output)) => unsafe { complete::<F, S>(ptr, Ok(output)) },
        Ok(Poll::Pending) => {
            let mut just_linked = false;
            if !cell.header.state.load().is_linked() {
                // First park: from now on no queue refers to the task, so the owned-task list
                // must, for shutdown to find it. Linked before the task goes idle (while we
                // hold RUNNING), so it cannot complete elsewhere before it is linked.
                // SAFETY: our reference keeps the task alive.
                if !unsafe { link_into_list::<F, S>(ptr) } {
                    // Shutting down: cancel instead of parking where nobody would look.
                    // SAFETY: we hold RUNNING and one reference, which `cancel` consumes.
                    return unsafe { cancel::<F, S>(ptr) };
                }
                just_linked = true;
            }
            match cell.header.state.transition_to_idle(channels) {
                // SAFETY: RUNNING was released; our reference is dropped.
                AfterPoll::Idle => unsafe { drop_reference(ptr) },
                AfterPoll::Reschedule => cell.scheduler.schedule_yield(Notified(ptr)),
                AfterPoll::Cancel => {
                    // Aborted during the poll that just linked the task: the CAS that would
                    // have recorded LINKED did not happen, so record it here, or completion
                    // would leave the task in the list.
                    if just_linked {
                        cell.header.state.set_linked();
                    }
                    // SAFETY: `transition_to_idle` kept RUNNING for us; `cancel` consumes our
                    // reference.
                    unsafe { cancel::<F, S>(ptr) }
                }
            }
        }
        // SAFETY: as for `Ready`: RUNNING and one reference are ours.
        Err(payload) => unsafe { complete::<F, S>(ptr, Err(JoinError::from_panic(payload))) },
    }
}

/// Drops the future and completes the task as cancelled.
///
/// # Safety
/// The caller holds `RUNNING` and owns one reference, which this consumes.
unsafe fn cancel<F, S>(ptr: NonNull<Header>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    // SAFETY: forwarded from the caller.
    unsafe { complete::<F, S>(ptr, Err(JoinError::cancelled())) }
}

/// # Safety
/// The caller (shutdown) claimed `RUNNING` and transfers one reference.
unsafe fn shutdown<F, S>(ptr: NonNull<Header>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    // SAFETY: `OwnedRef::shutdown` claimed RUNNING and passes its reference.
    unsafe { cancel::<F, S>(ptr) }
}

/// Stores the result (dropping the future), publishes COMPLETE, notifies the join handle,
/// unlinks the task and drops the runner's reference.
///
/// # Safety
/// The caller holds `RUNNING` and owns one reference, which this consumes.
unsafe fn complete<F, S>(ptr: NonNull<Header>, result: Result<F::Output, JoinError>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    // SAFETY: the caller's reference keeps the cell alive.
    let cell = unsafe { cell::<F, S>(ptr) };
    // SAFETY: RUNNING gives exclusive access to the stage, which holds the future. Drop it in
    // place first; a panicking destructor is caught so the worker survives and the handle
    // still hears back.
    let stage = cell.stage.get();
    // SAFETY: see above; the closure runs right here, still under RUNNING.
    let dropped = panic::catch_unwind(AssertUnwindSafe(|| unsafe {
        ManuallyDrop::drop(&mut (*stage).future)
    }));
    let result = match dropped {
        Ok(()) => result,
        Err(payload) => result.and(Err(JoinError::from_panic(payload))),
    };
    // SAFETY: the future is gone; the slot is ours to fill until COMPLETE is published.
    unsafe { (*stage).output = ManuallyDrop::new(result) };

    let prev = cell.header.state.transition_to_complete();
    if !prev.has_join_interest() {
        // Nobody will read the output: drop it here. The handle is gone, so the stage is ours.
        // SAFETY: the output was just written and nobody else can reach it.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| unsafe {
            ManuallyDrop::drop(&mut (*stage).output)
        }));
        cell.header.state.set_output_taken();
    } else if prev.has_join_waker() {
        // SAFETY: JOIN_WAKER was set when COMPLETE was published, so the slot belongs to the task
        // side and the handle can no longer write it.
        if let Some(waker) = unsafe { &*cell.cold.awaiter.get() } {
            waker.wake_by_ref();
        }
    }

    // A task that never parked was never linked: no list lock on the short-task path.
    let released = cell.scheduler.release(ptr, prev.is_linked());
    let last = if released {
        cell.header.state.ref_dec_twice()
    } else {
        cell.header.state.ref_dec()
    };
    if last {
        // SAFETY: that was the last reference.
        unsafe { dealloc::<F, S>(ptr) }
    }
}

/// # Safety
/// Called by the task's join handle only; `dst` points to a `Poll<Result<F::Output, JoinError>>`.
unsafe fn try_read_output<F: Future, S>(ptr: NonNull<Header>, dst: *mut (), waker: &Waker) {
    // SAFETY: the join handle's reference keeps the cell alive.
    let cell = unsafe { cell::<F, S>(ptr) };
    if can_read_output(&cell.header, &cell.cold, waker) {
        assert!(
            !cell.header.state.load().is_output_taken(),
            "JoinHandle polled after it returned its output"
        );
        // SAFETY: COMPLETE is set, the output was not taken, and the handle (still interested)
        // owns it: move it out and record that.
        let output = unsafe { ManuallyDrop::take(&mut (*cell.stage.get()).output) };
        cell.header.state.set_output_taken();
        // SAFETY: the caller passes a `*mut Poll<Result<F::Output, JoinError>>`.
        unsafe { *(dst as *mut Poll<Result<F::Output, JoinError>>) = Poll::Ready(output) }
    }
}

/// Returns true when the output can be read; otherwise leaves `waker` where the task will find it.
fn can_read_output(header: &Header, cold: &Cold, waker: &Waker) -> bool {
    let snapshot = header.state.load();
    if snapshot.is_complete() {
        return true;
    }
    if snapshot.has_join_waker() {
        // SAFETY: with JOIN_WAKER set the slot is only read, by either side.
        let same = unsafe { &*cold.awaiter.get() }
            .as_ref()
            .is_some_and(|w| w.will_wake(waker));
        if same {
            return false;
        }
        if header.state.unset_join_waker().is_err() {
            return true;
        }
    }
    // SAFETY: JOIN_WAKER is clear, so the slot belongs to the handle.
    unsafe { *cold.awaiter.get() = Some(waker.clone()) };
    header.state.set_join_waker().is_err()
}

/// # Safety
/// Called by the join handle only, after it saw `COMPLETE` without `OUTPUT_TAKEN`.
unsafe fn drop_output<F: Future, S>(ptr: NonNull<Header>) {
    // SAFETY: called by the handle after it saw COMPLETE while it still had join interest and
    // the output was not taken, so the output is the handle's alone.
    unsafe {
        let cell = cell::<F, S>(ptr);
        ManuallyDrop::drop(&mut (*cell.stage.get()).output);
        cell.header.state.set_output_taken();
    }
}

// ----- the join handle's view -----

/// Reads the output into `dst` if ready, otherwise stores the waker.
///
/// # Safety
/// `ptr` is a live task whose output type is `T`, and the caller is its join handle.
pub(crate) unsafe fn join_poll<T>(
    ptr: NonNull<Header>,
    waker: &Waker,
) -> Poll<Result<T, JoinError>> {
    let mut out: Poll<Result<T, JoinError>> = Poll::Pending;
    // SAFETY: `out` has the type `try_read_output` writes, by the caller's guarantee.
    unsafe { (ptr.as_ref().vtable.try_read_output)(ptr, &mut out as *mut _ as *mut (), waker) };
    out
}

/// The join handle is dropped: give up join interest (dropping a finished output) and the
/// handle's reference.
///
/// # Safety
/// The caller is the task's join handle and is going away.
pub(crate) unsafe fn join_drop(ptr: NonNull<Header>) {
    // SAFETY: the handle's reference keeps the task alive until `drop_reference`.
    unsafe {
        let header = ptr.as_ref();
        let prev = header.state.drop_join_interest();
        if prev.is_complete() && !prev.is_output_taken() {
            (header.vtable.drop_output)(ptr);
        }
        drop_reference(ptr);
    }
}

/// `JoinHandle::abort`.
///
/// # Safety
/// `ptr` is a live task (the caller holds a reference).
pub(crate) unsafe fn abort(ptr: NonNull<Header>) {
    // SAFETY: `transition_to_aborted` added the reference `schedule` consumes.
    unsafe {
        let header = ptr.as_ref();
        if let WakeAction::Schedule = header.state.transition_to_aborted() {
            (header.vtable.schedule)(ptr)
        }
    }
}

// ----- the waker -----

static WAKER_VTABLE: RawWakerVTable =
    RawWakerVTable::new(waker_clone, waker_wake, waker_wake_by_ref, waker_drop);

fn raw_waker(ptr: NonNull<Header>) -> RawWaker {
    RawWaker::new(ptr.as_ptr() as *const (), &WAKER_VTABLE)
}

/// # Safety
/// `data` is the task pointer of a live waker (the `RawWakerVTable` contract).
unsafe fn waker_clone(data: *const ()) -> RawWaker {
    // SAFETY: a waker's data is a live task pointer; the clone owns a new reference.
    let ptr = unsafe { NonNull::new_unchecked(data as *mut Header) };
    // SAFETY: as above.
    unsafe { ptr.as_ref().state.ref_inc() };
    raw_waker(ptr)
}

/// # Safety
/// As for `waker_clone`; consumes the waker's reference.
unsafe fn waker_wake(data: *const ()) {
    // SAFETY: the waker owns one reference; it is either moved into the queue or dropped.
    unsafe {
        let ptr = NonNull::new_unchecked(data as *mut Header);
        // With the observatory, the transition also leaves the wake's cause (see
        // `observe::task`); a wake other than the task's own is reported after it, before the
        // task can be queued (and polled).
        #[cfg(feature = "observatory")]
        let cause = crate::rt::observe::wake_cause(ptr.as_ref());
        #[cfg(feature = "observatory")]
        if cause.is_self() {
            // Running on this thread: one `or` marks it notified (see `State::notify_self`).
            ptr.as_ref().state.notify_self();
            return drop_reference(ptr);
        }
        #[cfg(not(feature = "observatory"))]
        let cause = WakeCause;
        let (action, _prev) = ptr.as_ref().state.transition_to_notified_by_val(cause);
        #[cfg(feature = "observatory")]
        {
            let scheduled = matches!(action, WakeAction::Schedule);
            crate::rt::observe::on_other_wake(ptr.as_ref(), cause, scheduled, _prev);
        }
        match action {
            WakeAction::Schedule => (ptr.as_ref().vtable.schedule)(ptr),
            WakeAction::None => drop_reference(ptr),
        }
    }
}

/// # Safety
/// As for `waker_clone`; the waker's reference stays with it.
unsafe fn waker_wake_by_ref(data: *const ()) {
    // SAFETY: the borrowed waker keeps the task alive; a scheduled task got its own reference.
    unsafe {
        let ptr = NonNull::new_unchecked(data as *mut Header);
        // As in `waker_wake`. A self-wake returns at once: the running task is only marked
        // notified (its runner requeues it after the poll), so the cause need not live across
        // the transition.
        #[cfg(feature = "observatory")]
        let cause = crate::rt::observe::wake_cause(ptr.as_ref());
        #[cfg(feature = "observatory")]
        if cause.is_self() {
            // Running on this thread: one `or` marks it notified (see `State::notify_self`).
            ptr.as_ref().state.notify_self();
            return;
        }
        #[cfg(not(feature = "observatory"))]
        let cause = WakeCause;
        let (action, _prev) = ptr.as_ref().state.transition_to_notified_by_ref(cause);
        #[cfg(feature = "observatory")]
        {
            let scheduled = matches!(action, WakeAction::Schedule);
            crate::rt::observe::on_other_wake(ptr.as_ref(), cause, scheduled, _prev);
        }
        if let WakeAction::Schedule = action {
            (ptr.as_ref().vtable.schedule)(ptr)
        }
    }
}

/// # Safety
/// As for `waker_clone`; releases the waker's reference.
unsafe fn waker_drop(data: *const ()) {
    // SAFETY: the waker owned one reference.
    unsafe { drop_reference(NonNull::new_unchecked(data as *mut Header)) }
}

/// Extracts a readable message from a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The observatory is zero-cost when compiled out: the task's fixed part keeps its size (the
    /// cold part: two list links and the join waker; the header: state word and vtable). With
    /// the feature on the header grows by `TaskObs`.
    #[test]
    fn header_size_is_unchanged_without_the_observatory() {
        assert_eq!(std::mem::size_of::<Cold>(), 16 + 16);
        let base = 8 + 8;
        #[cfg(not(feature = "observatory"))]
        assert_eq!(std::mem::size_of::<Header>(), base);
        #[cfg(feature = "observatory")]
        assert_eq!(
            std::mem::size_of::<Header>(),
            base + 8,
            "one word of TaskObs (the rest rides the state word)"
        );
    }
}
